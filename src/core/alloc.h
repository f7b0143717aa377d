/*
 * Heap allocation. Every heap allocation in llmux goes through these
 * functions. Fixed-size allocations (lx_malloc, lx_calloc, lx_realloc,
 * lx_strdup) abort on out-of-memory; allocations whose size comes from input
 * use the lx_try_* variants, which return NULL so the caller can answer 413 or
 * 500 instead of dying.
 *
 * Every build counts live allocations (one relaxed atomic add per call), so
 * tests can assert that a scenario returns to its starting count. Tests can
 * also make the n-th following allocation fail (lx_alloc_fail_after) to drive
 * the error paths ("torture" runs).
 */
#ifndef LX_CORE_ALLOC_H
#define LX_CORE_ALLOC_H

#include <stddef.h>

#include "core/compiler.h"

void *lx_malloc(size_t n);
void *lx_calloc(size_t count, size_t size);
void *lx_realloc(void *p, size_t n);
char *lx_strdup(const char *s);
char *lx_strndup(const char *s, size_t n);
void lx_free(void *p);

/* May return NULL; also the ones that injected failures hit. */
LX_MUST_CHECK void *lx_try_malloc(size_t n);
LX_MUST_CHECK void *lx_try_realloc(void *p, size_t n);

/* Live allocations made through this module (all threads). */
long lx_alloc_live(void);

/*
 * Make the n-th lx_try_* call from now on fail (0 = the next one), and every
 * call after it if sticky is set. n < 0 turns injection off.
 */
void lx_alloc_fail_after(long n, int sticky);

/* Route cJSON's allocations through this module. */
void lx_alloc_hook_cjson(void);

#define LX_FREE(p)                                                                                 \
    do {                                                                                           \
        lx_free(p);                                                                                \
        (p) = NULL;                                                                                \
    } while (0)

#define LX_NEW(type) ((type *)lx_calloc(1, sizeof(type)))

#endif
