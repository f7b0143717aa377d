/* Capped growable buffers; see buf.h for the contract. */
#include "core/buf.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

void lx_buf_init(struct lx_buf *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
}

void lx_buf_fini(struct lx_buf *b)
{
    LX_FREE(b->data);
    b->len = 0;
    b->cap = 0;
}

void lx_buf_reset(struct lx_buf *b)
{
    b->len = 0;
    if (b->data) {
        b->data[0] = '\0';
    }
}

void lx_buf_truncate(struct lx_buf *b, size_t len)
{
    if (len < b->len) {
        b->len = len;
        b->data[len] = '\0';
    }
}

int lx_buf_reserve(struct lx_buf *b, size_t extra)
{
    if (extra > b->limit - b->len) {
        return LX_ETOOBIG;
    }
    size_t need = b->len + extra;
    if (need <= b->cap && b->data) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap = cap * 2;
    }
    if (cap > b->limit) {
        cap = b->limit;
    }
    char *d = lx_try_realloc(b->data, cap + 1);
    if (!d) {
        return LX_ENOMEM;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

int lx_buf_append(struct lx_buf *b, const void *p, size_t n)
{
    int rc = lx_buf_reserve(b, n);
    if (rc) {
        return rc;
    }
    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int lx_buf_append_str(struct lx_buf *b, struct lx_str s)
{
    return lx_buf_append(b, s.p, s.n);
}

int lx_buf_append_c(struct lx_buf *b, const char *s)
{
    return lx_buf_append(b, s, strlen(s));
}

int lx_buf_vprintf(struct lx_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return LX_EINVAL;
    }
    if ((size_t)n < sizeof(small)) {
        return lx_buf_append(b, small, (size_t)n);
    }
    int rc = lx_buf_reserve(b, (size_t)n);
    if (rc) {
        return rc;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int lx_buf_printf(struct lx_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = lx_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void lx_buf_consume(struct lx_buf *b, size_t n)
{
    if (n >= b->len) {
        lx_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *lx_buf_take(struct lx_buf *b, size_t *out_len)
{
    char *d = b->data;
    if (out_len) {
        *out_len = b->len;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return d;
}
