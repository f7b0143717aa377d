/*
 * Growable byte buffers with a hard cap. Appending past the cap returns
 * LX_ETOOBIG and leaves the buffer unchanged; growth uses lx_try_realloc
 * (sizes come from input), so an allocation failure returns LX_ENOMEM. The
 * data is always followed by a NUL byte that is not counted in len, so a
 * buffer can be handed to parsers that want C strings.
 */
#ifndef LX_CORE_BUF_H
#define LX_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/compiler.h"
#include "core/str.h"

struct lx_buf {
    char *data;
    size_t len;
    size_t cap;   /* allocated bytes, excluding the NUL */
    size_t limit; /* hard cap on len */
};

void lx_buf_init(struct lx_buf *b, size_t limit);
void lx_buf_fini(struct lx_buf *b);
/* Forget the contents, keep the memory. */
void lx_buf_reset(struct lx_buf *b);
/*
 * Cut the contents back to their first len bytes (a length the buffer had
 * before, to undo a failed write); the NUL terminator follows them again. A
 * len at or past the current length changes nothing.
 */
void lx_buf_truncate(struct lx_buf *b, size_t len);
LX_MUST_CHECK int lx_buf_reserve(struct lx_buf *b, size_t extra);
LX_MUST_CHECK int lx_buf_append(struct lx_buf *b, const void *p, size_t n);
LX_MUST_CHECK int lx_buf_append_str(struct lx_buf *b, struct lx_str s);
LX_MUST_CHECK int lx_buf_append_c(struct lx_buf *b, const char *s);
LX_MUST_CHECK int lx_buf_printf(struct lx_buf *b, const char *fmt, ...) LX_PRINTF(2, 3);
LX_MUST_CHECK int lx_buf_vprintf(struct lx_buf *b, const char *fmt, va_list ap) LX_PRINTF(2, 0);
/* Drop the first n bytes. */
void lx_buf_consume(struct lx_buf *b, size_t n);
/* Hand the memory to the caller (free with lx_free); the buffer becomes empty. */
char *lx_buf_take(struct lx_buf *b, size_t *out_len);

static inline struct lx_str lx_buf_str(const struct lx_buf *b)
{
    return (struct lx_str){b->data ? b->data : "", b->len};
}

#endif
