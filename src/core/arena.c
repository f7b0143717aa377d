/*
 * Bump allocator. Blocks are linked newest first; a request that asks for
 * more than half a block gets a block of its own so the current block's tail
 * is not wasted.
 */
#include "core/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"

struct lx_arena_block {
    struct lx_arena_block *next;
    size_t size;
    _Alignas(16) char data[];
};

#define ALIGN 16

static char *align_up(char *p)
{
    return (char *)(((uintptr_t)p + (ALIGN - 1)) & ~(uintptr_t)(ALIGN - 1));
}

void lx_arena_init(struct lx_arena *a, void *initial, size_t initial_size, size_t block_size)
{
    a->head = NULL;
    a->first = initial;
    a->first_size = initial ? initial_size : 0;
    a->cur = initial;
    a->end = initial ? (char *)initial + initial_size : NULL;
    a->block_size = block_size ? block_size : 4096;
    a->total = 0;
    a->limit = 0;
}

void lx_arena_fini(struct lx_arena *a)
{
    struct lx_arena_block *b = a->head;
    while (b) {
        struct lx_arena_block *next = b->next;
        lx_free(b);
        b = next;
    }
    a->head = NULL;
    a->cur = a->first;
    a->end = a->first ? a->first + a->first_size : NULL;
    a->total = 0;
}

static void *grow(struct lx_arena *a, size_t n, int may_fail)
{
    size_t size = n > a->block_size / 2 ? n : a->block_size;
    struct lx_arena_block *b;
    if (may_fail) {
        b = lx_try_malloc(sizeof(*b) + size);
        if (!b) {
            return NULL;
        }
    } else {
        b = lx_malloc(sizeof(*b) + size);
    }
    b->size = size;
    if (size == n && a->head) {
        /* A dedicated block: keep allocating from the current one. */
        b->next = a->head->next;
        a->head->next = b;
        return b->data;
    }
    b->next = a->head;
    a->head = b;
    a->cur = b->data + n;
    a->end = b->data + size;
    return b->data;
}

static void *alloc(struct lx_arena *a, size_t n, int may_fail)
{
    if (a->limit && (n > a->limit || a->total > a->limit - n)) {
        return NULL;
    }
    a->total += n;
    if (a->cur) {
        char *p = align_up(a->cur);
        if (p <= a->end && (size_t)(a->end - p) >= n) {
            a->cur = p + n;
            return p;
        }
    }
    return grow(a, n, may_fail);
}

void *lx_arena_alloc(struct lx_arena *a, size_t n)
{
    void *p = alloc(a, n, 0);
    /* Only the arena's limit can refuse here: fixed sizes never reach it. */
    LX_ASSERT(p != NULL);
    return p;
}

void *lx_arena_try_alloc(struct lx_arena *a, size_t n)
{
    return alloc(a, n, 1);
}

char *lx_arena_strndup(struct lx_arena *a, const char *s, size_t n)
{
    char *d = lx_arena_alloc(a, n + 1);
    if (n) {
        memcpy(d, s, n);
    }
    d[n] = '\0';
    return d;
}

struct lx_str lx_arena_str(struct lx_arena *a, struct lx_str s)
{
    return (struct lx_str){lx_arena_strndup(a, s.p, s.n), s.n};
}

char *lx_arena_printf(struct lx_arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        n = 0;
    }
    char *d = lx_arena_alloc(a, (size_t)n + 1);
    vsnprintf(d, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return d;
}
