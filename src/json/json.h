/*
 * JSON helpers for the request hot path: string escaping, the OpenAI error
 * body, and a rewriter that forwards a client's JSON object upstream with a
 * few top-level edits and without re-serialising it, so unknown fields,
 * number spellings and whitespace pass through byte for byte.
 *
 * Full parsing (config, provider translation) uses cJSON. The rewriter and
 * lx_json_find_top use their own small scanner, which validates the whole
 * body against RFC 8259 (strings and escapes, numbers, literals, nesting up
 * to LX_JSON_MAX_DEPTH) without building a tree and never reads past the
 * slice. It is stricter than cJSON in the places where the RFC is: raw control
 * characters in strings, number syntax, lone UTF-16 surrogates in \u escapes
 * (which cJSON also rejects). It does not validate UTF-8 in strings; such
 * bytes pass through as they came.
 *
 * Duplicate top-level keys: cJSON's lookup returns the first occurrence, but
 * many upstream parsers (Python, JavaScript, Go) keep the last, so a body
 * like {"model":"a","model":"b"} means different things to us and to the
 * provider. lx_json_find_top follows cJSON (first occurrence); LX_JSON_SET
 * rewrites the first occurrence and deletes the later ones, so after a SET
 * every parser reads the value we set; LX_JSON_REMOVE deletes them all.
 */
#ifndef LX_JSON_JSON_H
#define LX_JSON_JSON_H

#include <stddef.h>

#include "core/buf.h"
#include "core/compiler.h"
#include "core/str.h"

/* Maximum nesting of objects and arrays, the top-level object included. */
#define LX_JSON_MAX_DEPTH 256
/* Maximum number of edits in one lx_json_rewrite call. */
#define LX_JSON_MAX_EDITS 64

/*
 * Append s as a JSON string literal, quotes included. '"', '\\' and control
 * characters are escaped (\b \f \n \r \t, others as \u00XX); valid UTF-8 is
 * copied as is; each maximal invalid UTF-8 subsequence (Unicode ch. 3,
 * "U+FFFD substitution of maximal subparts") becomes U+FFFD, so the output is
 * always valid JSON. Returns 0, LX_ETOOBIG or LX_ENOMEM; on failure b is
 * unchanged.
 */
LX_MUST_CHECK int lx_json_append_string(struct lx_buf *b, struct lx_str s);

/*
 * Append OpenAI's error shape:
 * {"error":{"message":"...","type":"...","param":null,"code":"..."}}
 * message is escaped as by lx_json_append_string; type, param and code are C
 * strings, NULL gives null. Returns 0, LX_ETOOBIG or LX_ENOMEM; on failure b
 * is unchanged.
 */
LX_MUST_CHECK int lx_json_error_body(struct lx_buf *b, struct lx_str message, const char *type,
                                     const char *param, const char *code);

enum lx_json_edit_op {
    LX_JSON_SET,           /* replace the value, or append the member if absent */
    LX_JSON_SET_IF_ABSENT, /* append the member only if the key is absent */
    LX_JSON_REMOVE,        /* delete every member with the key */
};

struct lx_json_edit {
    struct lx_str key;        /* unescaped key; matched against unescaped body keys */
    struct lx_str value_json; /* inserted verbatim: the caller guarantees valid JSON */
    enum lx_json_edit_op op;
};

/*
 * Append to out the top-level JSON object body with the edits applied.
 * Members are matched by their key after JSON unescaping ("\u006dodel" is
 * "model"). SET replaces the first occurrence's value in place and deletes
 * later duplicates; appended members go after the last member, in edit
 * order, as ,"key":value. Removing a member removes its separating comma, so
 * the output stays valid. Bytes of members not edited, and the whitespace
 * around them, are copied unchanged; with no effective edit the output equals
 * the input. Each key should appear in at most one edit; if it appears in
 * several, the first one applies and the rest are ignored.
 *
 * body and edits are borrowed. Returns 0; LX_EINVAL if body is not a single
 * valid JSON object (whitespace around it allowed), nests deeper than
 * LX_JSON_MAX_DEPTH, or n_edits > LX_JSON_MAX_EDITS; LX_ETOOBIG if out's
 * limit is reached; LX_ENOMEM. On failure out is unchanged.
 */
LX_MUST_CHECK int lx_json_rewrite(struct lx_str body, const struct lx_json_edit *edits,
                                  size_t n_edits, struct lx_buf *out);

/*
 * Find the first top-level member of the object body whose unescaped key is
 * key and set *out_value to the raw bytes of its value (a slice of body: for
 * a string, quotes and escapes included). The whole body is validated as by
 * lx_json_rewrite. Returns 0, LX_ENOTFOUND or LX_EINVAL.
 */
LX_MUST_CHECK int lx_json_find_top(struct lx_str body, struct lx_str key, struct lx_str *out_value);

/*
 * One pass over the object body: out_values[i] gets the raw value of the
 * first top-level member named keys[i], or an empty slice with p == NULL.
 * Validates the whole body as lx_json_find_top does. Returns 0 or LX_EINVAL.
 */
LX_MUST_CHECK int lx_json_find_top_many(struct lx_str body, const struct lx_str *keys,
                                        size_t n_keys, struct lx_str *out_values);

/*
 * The unescaped text of a raw JSON string value (quotes included, as
 * lx_json_find_top returns it, already validated) into out, NUL-terminated.
 * Returns 0, LX_EINVAL when raw is not a string, LX_ETOOBIG when it does not
 * fit in cap bytes.
 */
LX_MUST_CHECK int lx_json_string_value(struct lx_str raw, char *out, size_t cap, size_t *out_len);

#endif
