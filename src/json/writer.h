/*
 * A small streaming JSON writer with a sticky error, used by the translating
 * providers (src/providers/) and the Anthropic client adapter
 * (src/proxy/client_anthropic.c) to write their output straight into the
 * caller's capped buffer, plus the two cJSON accessors those translators read
 * their input with.
 *
 * The writer inserts the commas: each value or key is preceded by a comma
 * unless it opens its container or follows a key. The first failure of an
 * append (LX_ETOOBIG, LX_ENOMEM) is kept in rc and every later call becomes a
 * no-op, so a translator writes a whole document and checks rc once at the
 * end. The writer never undoes output: on failure the caller truncates the
 * buffer to the length it had before (lx_buf_truncate).
 *
 * Nesting is fixed by the calling code, never by input: opening more than
 * LX_JW_MAX_DEPTH - 1 containers is a programming error and asserts. Keys are
 * literals of the calling code and are written without escaping; strings
 * (lx_jw_str, lx_jw_kstr) are escaped as by lx_json_append_string.
 *
 * A writer is plain caller storage with nothing to free; it borrows the
 * buffer, which must outlive it. Not thread-safe; any thread.
 */
#ifndef LX_JSON_WRITER_H
#define LX_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/str.h"

/* Containers open at once, plus one for the top level. */
#define LX_JW_MAX_DEPTH 16

struct lx_jw {
    struct lx_buf *b;            /* borrowed output buffer */
    int rc;                      /* first failure (LX_ETOOBIG, LX_ENOMEM), or 0 */
    int depth;                   /* containers open */
    bool first[LX_JW_MAX_DEPTH]; /* nothing written yet at this depth */
    bool after_key;              /* the next value follows a key: no comma */
};

/*
 * Start writing at the end of b (borrowed; must outlive w). rc becomes 0.
 * Nothing is written.
 */
void lx_jw_init(struct lx_jw *w, struct lx_buf *b);

/*
 * Write an object member's key and the colon: ,"key": (comma as needed). key
 * is a NUL-terminated literal that needs no JSON escaping; it is copied as
 * is. The next call writes the member's value. Errors are kept in w->rc.
 */
void lx_jw_key(struct lx_jw *w, const char *key);

/*
 * Open a container: c is '{' or '['. Asserts (a bug in the caller) when
 * LX_JW_MAX_DEPTH - 1 are already open. Errors are kept in w->rc; the
 * nesting is tracked even after an error.
 */
void lx_jw_open(struct lx_jw *w, char c);

/* Close the innermost open container: c is '}' or ']'. Errors are kept in w->rc. */
void lx_jw_close(struct lx_jw *w, char c);

/*
 * Write s (borrowed) as a JSON string, escaped as by lx_json_append_string
 * (invalid UTF-8 becomes U+FFFD). Errors are kept in w->rc.
 */
void lx_jw_str(struct lx_jw *w, struct lx_str s);

/*
 * Write lit, NUL-terminated JSON text supplied by the calling code (true,
 * null, a number, or a constant object), as is. Errors are kept in w->rc.
 */
void lx_jw_lit(struct lx_jw *w, const char *lit);

/* Write v as a JSON number. Errors are kept in w->rc. */
void lx_jw_int(struct lx_jw *w, long long v);

/*
 * Write the cJSON value v (borrowed) serialised without whitespace. cJSON
 * allocates the text through lx_try_malloc, so this may fail with
 * LX_ENOMEM; errors are kept in w->rc.
 */
void lx_jw_cjson(struct lx_jw *w, const cJSON *v);

/* lx_jw_key then lx_jw_str. */
void lx_jw_kstr(struct lx_jw *w, const char *key, struct lx_str s);

/* lx_jw_key then lx_jw_lit. */
void lx_jw_klit(struct lx_jw *w, const char *key, const char *lit);

/* lx_jw_key then lx_jw_int. */
void lx_jw_kint(struct lx_jw *w, const char *key, long long v);

/*
 * The member key of obj (borrowed; the result points into it), or NULL when
 * obj is not an object (NULL included) or has no such member. Keys compare
 * case-sensitively; with duplicate keys the first wins, as in cJSON.
 */
const cJSON *lx_json_get(const cJSON *obj, const char *key);

/*
 * The text of v when it is a string (a slice of v's storage, borrowed), else
 * LX_STR_NULL (p == NULL), for NULL too.
 */
struct lx_str lx_json_str_of(const cJSON *v);

#endif
