/*
 * Request arenas: bump allocation from a list of blocks, freed all at once.
 * The first block can live inside the owning struct so a small request never
 * touches the heap. Allocations are 16-byte aligned.
 */
#ifndef LX_CORE_ARENA_H
#define LX_CORE_ARENA_H

#include <stddef.h>

#include "core/compiler.h"
#include "core/str.h"

struct lx_arena_block;

struct lx_arena {
    struct lx_arena_block *head; /* heap blocks, newest first */
    char *cur;
    char *end;
    char *first; /* the caller's initial block, reused after lx_arena_fini */
    size_t first_size;
    size_t block_size;
    size_t total; /* bytes handed out, for caps */
    size_t limit; /* 0 = none */
};

/* Use `initial` (may be NULL) as the first block. */
void lx_arena_init(struct lx_arena *a, void *initial, size_t initial_size, size_t block_size);
/* Free every heap block; the arena can be used again (from `initial`). */
void lx_arena_fini(struct lx_arena *a);
/* Aborts on out-of-memory: for fixed, small sizes. */
void *lx_arena_alloc(struct lx_arena *a, size_t n);
/* NULL on out-of-memory or past the arena's limit: for input-sized requests. */
LX_MUST_CHECK void *lx_arena_try_alloc(struct lx_arena *a, size_t n);
char *lx_arena_strndup(struct lx_arena *a, const char *s, size_t n);
struct lx_str lx_arena_str(struct lx_arena *a, struct lx_str s);
char *lx_arena_printf(struct lx_arena *a, const char *fmt, ...) LX_PRINTF(2, 3);

#endif
