/*
 * Allocation wrappers: the only file that calls malloc/free directly. The
 * live counter is a relaxed atomic; it costs one locked add per call, which is
 * noise next to malloc itself.
 */
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static atomic_long live;
static atomic_long fail_countdown = -1;
static atomic_int fail_sticky;

LX_NORETURN static void oom(size_t n)
{
    fprintf(stderr, "llmux: out of memory allocating %zu bytes\n", n);
    abort();
}

static int should_fail(void)
{
    long c = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (LX_LIKELY(c < 0)) {
        return 0;
    }
    if (c == 0) {
        if (!atomic_load_explicit(&fail_sticky, memory_order_relaxed)) {
            atomic_store(&fail_countdown, -1);
        }
        return 1;
    }
    atomic_fetch_sub(&fail_countdown, 1);
    return 0;
}

void *lx_try_malloc(size_t n)
{
    if (should_fail()) {
        return NULL;
    }
    void *p = malloc(n ? n : 1);
    if (p) {
        atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    }
    return p;
}

void *lx_try_realloc(void *p, size_t n)
{
    if (should_fail()) {
        return NULL;
    }
    void *q = realloc(p, n ? n : 1);
    if (q && !p) {
        atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    }
    return q;
}

void *lx_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        oom(n);
    }
    atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

void *lx_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        oom(count * size);
    }
    atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

void *lx_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        oom(n);
    }
    if (!p) {
        atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    }
    return q;
}

char *lx_strndup(const char *s, size_t n)
{
    char *d = lx_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *lx_strdup(const char *s)
{
    return lx_strndup(s, strlen(s));
}

void lx_free(void *p)
{
    if (p) {
        atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
        free(p);
    }
}

long lx_alloc_live(void)
{
    return atomic_load(&live);
}

void lx_alloc_fail_after(long n, int sticky)
{
    atomic_store(&fail_sticky, sticky);
    atomic_store(&fail_countdown, n);
}

static void *cjson_malloc(size_t n)
{
    return lx_try_malloc(n);
}

void lx_alloc_hook_cjson(void)
{
    cJSON_Hooks hooks = {.malloc_fn = cjson_malloc, .free_fn = lx_free};
    cJSON_InitHooks(&hooks);
}
