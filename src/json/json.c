/*
 * JSON escaping, error bodies and the top-level object rewriter; see json.h
 * for the contracts.
 *
 * The scanner works on a (pointer, end) pair and checks p < end before every
 * read. Nested values are scanned recursively with an explicit depth, capped
 * at LX_JSON_MAX_DEPTH, so the stack use is bounded by the cap and not by the
 * input. The rewriter emits output while it scans, in one pass; if the body
 * turns out to be malformed further on, the output buffer is rolled back to
 * where it was.
 */
#include "json/json.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"

#define X16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v

/* Bytes that end a run of plain string content: controls, '"' and '\\'. */
static const unsigned char str_stop[256] = {
    X16(1),
    X16(1),
    ['"'] = 1,
    ['\\'] = 1,
};

/* For output escaping: 1 = must be escaped, 2 = non-ASCII (check UTF-8). */
static const unsigned char esc_class[256] = {
    X16(1), X16(1), ['"'] = 1, ['\\'] = 1, [0x80] = X16(2), X16(2),
    X16(2), X16(2), X16(2),    X16(2),     X16(2),          X16(2),
};

static const char hex_digits[] = "0123456789abcdef";

/*
 * Word-at-a-time scanning (the "haszero"/"hasless" bit tricks): these are
 * non-zero iff some byte of the 8 loaded is one of the stop bytes. They only
 * answer "is there one"; the byte loop that follows finds which.
 */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t load8(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* '"', '\\' or a control character (< 0x20). */
static inline uint64_t has_str_stop(uint64_t v)
{
    uint64_t q = v ^ (ONES * '"');
    uint64_t b = v ^ (ONES * '\\');
    return (((q - ONES) & ~q) | ((b - ONES) & ~b) | ((v - ONES * 0x20) & ~v)) & HIGHS;
}

/* As has_str_stop, or a byte >= 0x80. */
static inline uint64_t has_esc_class(uint64_t v)
{
    return has_str_stop(v) | (v & HIGHS);
}

/* ---- output helpers ---- */

/* lx_buf_append without the call when the space is already reserved. The
 * NUL after the data is left to the caller's last lx_buf_append (or
 * terminate()). */
static inline int buf_put(struct lx_buf *b, const void *p, size_t n)
{
    if (LX_LIKELY(b->cap - b->len >= n && b->data)) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
    }
    return lx_buf_append(b, p, n);
}

static void terminate(struct lx_buf *b)
{
    if (b->data) {
        b->data[b->len] = '\0';
    }
}

static void rollback(struct lx_buf *b, size_t mark)
{
    b->len = mark;
    if (b->data) {
        b->data[mark] = '\0';
    }
}

/* Length of the valid UTF-8 sequence at p (> 0), or minus the length of the
 * maximal invalid subpart to replace with one U+FFFD (Unicode 15, 3.9). */
static int utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0xC2) {
        return -1; /* continuation byte or overlong lead */
    } else if (c < 0xE0) {
        need = 1;
    } else if (c < 0xF0) {
        need = 2;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlongs */
        hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (c < 0xF5) {
        need = 3;
        lo = c == 0xF0 ? 0x90 : 0x80; /* no overlongs */
        hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing above U+10FFFF */
    } else {
        return -1;
    }
    if (end - p < 2 || p[1] < lo || p[1] > hi) {
        return -1;
    }
    for (int i = 2; i <= need; i++) {
        if (end - p <= i || (p[i] & 0xC0) != 0x80) {
            return -i;
        }
    }
    return need + 1;
}

int lx_json_append_string(struct lx_buf *b, struct lx_str s)
{
    size_t mark = b->len;
    /* The output is at least s.n + 2 bytes: reserve that in one go. */
    int rc = lx_buf_reserve(b, s.n + 2);
    if (rc) {
        return rc;
    }
    b->data[b->len++] = '"';
    const unsigned char *p = (const unsigned char *)s.p;
    const unsigned char *end = p ? p + s.n : p;
    while (p < end) {
        const unsigned char *run = p;
        for (;;) {
            while (end - p >= 8 && !has_esc_class(load8(p))) {
                p += 8;
            }
            while (p < end && esc_class[*p] == 0) {
                p++;
            }
            if (p == end || esc_class[*p] != 2) {
                break;
            }
            int n = utf8_seq(p, end);
            if (n < 0) {
                break;
            }
            p += n;
        }
        if (p > run) {
            rc = buf_put(b, run, (size_t)(p - run));
            if (rc) {
                goto fail;
            }
        }
        if (p == end) {
            break;
        }
        char e[6] = {'\\', 0};
        size_t en = 2;
        unsigned char c = *p;
        if (c >= 0x80) {
            p += -utf8_seq(p, end);
            e[0] = (char)0xEF;
            e[1] = (char)0xBF;
            e[2] = (char)0xBD;
            en = 3;
        } else {
            p++;
            switch (c) {
            case '"':
            case '\\':
                e[1] = (char)c;
                break;
            case '\b':
                e[1] = 'b';
                break;
            case '\f':
                e[1] = 'f';
                break;
            case '\n':
                e[1] = 'n';
                break;
            case '\r':
                e[1] = 'r';
                break;
            case '\t':
                e[1] = 't';
                break;
            default:
                memcpy(e, "\\u00", 4);
                e[4] = hex_digits[c >> 4];
                e[5] = hex_digits[c & 15];
                en = 6;
                break;
            }
        }
        rc = buf_put(b, e, en);
        if (rc) {
            goto fail;
        }
    }
    rc = lx_buf_append(b, "\"", 1);
    if (rc) {
        goto fail;
    }
    return 0;
fail:
    rollback(b, mark);
    return rc;
}

static int append_c_or_null(struct lx_buf *b, const char *s)
{
    if (!s) {
        return lx_buf_append(b, "null", 4);
    }
    return lx_json_append_string(b, lx_str_c(s));
}

int lx_json_error_body(struct lx_buf *b, struct lx_str message, const char *type, const char *param,
                       const char *code)
{
    size_t mark = b->len;
    int rc = lx_buf_append_c(b, "{\"error\":{\"message\":");
    if (rc == 0) {
        rc = lx_json_append_string(b, message);
    }
    if (rc == 0) {
        rc = lx_buf_append_c(b, ",\"type\":");
    }
    if (rc == 0) {
        rc = append_c_or_null(b, type);
    }
    if (rc == 0) {
        rc = lx_buf_append_c(b, ",\"param\":");
    }
    if (rc == 0) {
        rc = append_c_or_null(b, param);
    }
    if (rc == 0) {
        rc = lx_buf_append_c(b, ",\"code\":");
    }
    if (rc == 0) {
        rc = append_c_or_null(b, code);
    }
    if (rc == 0) {
        rc = lx_buf_append_c(b, "}}");
    }
    if (rc) {
        rollback(b, mark);
    }
    return rc;
}

/* ---- scanner ---- */

struct scanner {
    const char *p;
    const char *end;
};

static void skip_ws(struct scanner *s)
{
    const char *p = s->p;
    while (p < s->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }
    s->p = p;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)p[i];
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            d = (c | 0x20) - 'a' + 10;
        } else {
            return -1;
        }
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/*
 * A \u escape at p (p[0] == '\\', p[1] == 'u'), with its low surrogate if it
 * is a high one. Returns the number of bytes used (6 or 12) and the code
 * point, or 0 if malformed. RFC 8259 section 7 allows lone surrogates but
 * leaves their meaning open; cJSON rejects them and so do we.
 */
static size_t scan_u_escape(const char *p, const char *end, unsigned *out_cp)
{
    unsigned hi, lo;
    if (end - p < 6 || hex4(p + 2, &hi)) {
        return 0;
    }
    if (hi >= 0xDC00 && hi <= 0xDFFF) {
        return 0;
    }
    if (hi < 0xD800 || hi > 0xDBFF) {
        *out_cp = hi;
        return 6;
    }
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &lo) || lo < 0xDC00 ||
        lo > 0xDFFF) {
        return 0;
    }
    *out_cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    return 12;
}

/* s->p at the opening quote; leaves s->p after the closing quote. */
static int scan_string(struct scanner *s, bool *out_has_esc)
{
    const char *p = s->p + 1, *end = s->end;
    bool esc = false;
    for (;;) {
        while (end - p >= 8 && !has_str_stop(load8(p))) {
            p += 8;
        }
        while (p < end && !str_stop[(unsigned char)*p]) {
            p++;
        }
        if (p >= end || (unsigned char)*p < 0x20) {
            return LX_EINVAL; /* unterminated, or a raw control character */
        }
        if (*p == '"') {
            break;
        }
        esc = true;
        if (end - p < 2) {
            return LX_EINVAL;
        }
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            break;
        case 'u': {
            unsigned cp;
            size_t used = scan_u_escape(p, end, &cp);
            if (!used) {
                return LX_EINVAL;
            }
            p += used;
            break;
        }
        default:
            return LX_EINVAL;
        }
    }
    s->p = p + 1;
    if (out_has_esc) {
        *out_has_esc = esc;
    }
    return 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 8259 section 6: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)? */
static int scan_number(struct scanner *s)
{
    const char *p = s->p, *end = s->end;
    if (*p == '-') {
        p++;
    }
    if (p >= end || !is_digit(*p)) {
        return LX_EINVAL;
    }
    if (*p++ != '0') {
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) {
            return LX_EINVAL;
        }
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= end || !is_digit(*p)) {
            return LX_EINVAL;
        }
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    s->p = p;
    return 0;
}

static int scan_literal(struct scanner *s, const char *lit, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0) {
        return LX_EINVAL;
    }
    s->p += n;
    return 0;
}

static int scan_value(struct scanner *s, int depth);

/* An object or array at s->p, which is the container's depth-th level. */
static int scan_container(struct scanner *s, int depth)
{
    if (depth > LX_JSON_MAX_DEPTH) {
        return LX_EINVAL;
    }
    bool is_obj = *s->p == '{';
    char close = is_obj ? '}' : ']';
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    for (;;) {
        int rc;
        if (is_obj) {
            if (s->p >= s->end || *s->p != '"') {
                return LX_EINVAL;
            }
            rc = scan_string(s, NULL);
            if (rc) {
                return rc;
            }
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':') {
                return LX_EINVAL;
            }
            s->p++;
            skip_ws(s);
        }
        rc = scan_value(s, depth);
        if (rc) {
            return rc;
        }
        skip_ws(s);
        if (s->p >= s->end) {
            return LX_EINVAL;
        }
        if (*s->p == ',') {
            s->p++;
            skip_ws(s);
            continue;
        }
        if (*s->p != close) {
            return LX_EINVAL;
        }
        s->p++;
        return 0;
    }
}

/* A value at s->p inside a container at level depth. */
static int scan_value(struct scanner *s, int depth)
{
    if (s->p >= s->end) {
        return LX_EINVAL;
    }
    switch (*s->p) {
    case '"':
        return scan_string(s, NULL);
    case '{':
    case '[':
        return scan_container(s, depth + 1);
    case 't':
        return scan_literal(s, "true", 4);
    case 'f':
        return scan_literal(s, "false", 5);
    case 'n':
        return scan_literal(s, "null", 4);
    default:
        return scan_number(s);
    }
}

/* ---- top-level member iteration ---- */

struct member {
    const char *lead;      /* end of the previous value, or just after '{' */
    const char *comma;     /* the separator before this member; NULL for the first */
    const char *key;       /* the key's opening quote */
    struct lx_str key_raw; /* between the quotes, still escaped */
    bool key_has_esc;
    const char *value;
    const char *value_end;
};

struct top_iter {
    struct scanner s;
    const char *tail; /* after the loop: end of the last value (or after '{') */
    bool first;
};

static int top_begin(struct top_iter *it, struct lx_str body)
{
    it->s.p = body.p;
    it->s.end = body.p ? body.p + body.n : body.p;
    it->first = true;
    it->tail = NULL;
    skip_ws(&it->s);
    if (it->s.p >= it->s.end || *it->s.p != '{') {
        return LX_EINVAL;
    }
    it->s.p++;
    return 0;
}

/* Returns 1 with *m set, 0 after the closing brace (and only whitespace after
 * it), or LX_EINVAL. */
static int top_next(struct top_iter *it, struct member *m)
{
    struct scanner *s = &it->s;
    m->lead = s->p;
    m->comma = NULL;
    skip_ws(s);
    if (s->p >= s->end) {
        return LX_EINVAL;
    }
    if (*s->p == '}') {
        it->tail = m->lead;
        s->p++;
        skip_ws(s);
        return s->p == s->end ? 0 : LX_EINVAL; /* nothing but whitespace may follow */
    }
    if (!it->first) {
        if (*s->p != ',') {
            return LX_EINVAL;
        }
        m->comma = s->p++;
        skip_ws(s);
    }
    if (s->p >= s->end || *s->p != '"') {
        return LX_EINVAL;
    }
    m->key = s->p;
    int rc = scan_string(s, &m->key_has_esc);
    if (rc) {
        return rc;
    }
    m->key_raw = (struct lx_str){m->key + 1, (size_t)(s->p - m->key - 2)};
    skip_ws(s);
    if (s->p >= s->end || *s->p != ':') {
        return LX_EINVAL;
    }
    s->p++;
    skip_ws(s);
    m->value = s->p;
    rc = scan_value(s, 1);
    if (rc) {
        return rc;
    }
    m->value_end = s->p;
    it->first = false;
    return 1;
}

/* Encode a code point (<= 0x10FFFF, not a surrogate) as UTF-8. */
static size_t utf8_put(unsigned cp, unsigned char *o)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Does the (already validated) raw key unescape to want? */
static bool key_eq(struct lx_str raw, bool has_esc, struct lx_str want)
{
    if (!has_esc) {
        return raw.n == want.n && (raw.n == 0 || memcmp(raw.p, want.p, raw.n) == 0);
    }
    if (raw.n < want.n) {
        return false; /* unescaping never makes a key longer */
    }
    const char *p = raw.p, *end = raw.p + raw.n;
    size_t i = 0;
    while (p < end) {
        if (*p != '\\') {
            const char *q = memchr(p, '\\', (size_t)(end - p));
            size_t n = (size_t)((q ? q : end) - p);
            if (want.n - i < n || memcmp(want.p + i, p, n) != 0) {
                return false;
            }
            i += n;
            p += n;
            continue;
        }
        unsigned char u[4];
        size_t un = 1;
        switch (p[1]) {
        case 'b':
            u[0] = '\b';
            break;
        case 'f':
            u[0] = '\f';
            break;
        case 'n':
            u[0] = '\n';
            break;
        case 'r':
            u[0] = '\r';
            break;
        case 't':
            u[0] = '\t';
            break;
        case 'u': {
            unsigned cp = 0;
            size_t used = scan_u_escape(p, end, &cp);
            un = utf8_put(cp, u);
            p += used - 2;
            break;
        }
        default: /* '"', '\\', '/' */
            u[0] = (unsigned char)p[1];
            break;
        }
        p += 2;
        if (want.n - i < un || memcmp(want.p + i, u, un) != 0) {
            return false;
        }
        i += un;
    }
    return i == want.n;
}

int lx_json_find_top(struct lx_str body, struct lx_str key, struct lx_str *out_value)
{
    struct top_iter it;
    struct member m;
    bool found = false;
    int rc = top_begin(&it, body);
    while (rc == 0) {
        rc = top_next(&it, &m);
        if (rc != 1) {
            break;
        }
        rc = 0;
        if (!found && key_eq(m.key_raw, m.key_has_esc, key)) {
            found = true;
            *out_value = (struct lx_str){m.value, (size_t)(m.value_end - m.value)};
        }
    }
    if (rc) {
        return rc;
    }
    return found ? 0 : LX_ENOTFOUND;
}

int lx_json_find_top_many(struct lx_str body, const struct lx_str *keys, size_t n_keys,
                          struct lx_str *out_values)
{
    struct top_iter it;
    struct member m;
    for (size_t i = 0; i < n_keys; i++) {
        out_values[i] = LX_STR_NULL;
    }
    int rc = top_begin(&it, body);
    while (rc == 0) {
        rc = top_next(&it, &m);
        if (rc != 1) {
            break;
        }
        rc = 0;
        for (size_t i = 0; i < n_keys; i++) {
            /* Unescaped keys of another length cannot match: skip the call (the usual case). */
            if (!out_values[i].p && (m.key_has_esc || m.key_raw.n == keys[i].n) &&
                key_eq(m.key_raw, m.key_has_esc, keys[i])) {
                out_values[i] = (struct lx_str){m.value, (size_t)(m.value_end - m.value)};
                break;
            }
        }
    }
    return rc;
}

int lx_json_string_value(struct lx_str raw, char *out, size_t cap, size_t *out_len)
{
    if (raw.n < 2 || raw.p[0] != '"' || raw.p[raw.n - 1] != '"') {
        return LX_EINVAL;
    }
    struct lx_str in = {raw.p + 1, raw.n - 2};
    size_t o = 0;
    const char *p = in.p, *end = in.p + in.n;
    while (p < end) {
        unsigned char u[4];
        size_t un = 1;
        if (*p != '\\') {
            u[0] = (unsigned char)*p++;
        } else {
            switch (p[1]) {
            case 'b':
                u[0] = '\b';
                break;
            case 'f':
                u[0] = '\f';
                break;
            case 'n':
                u[0] = '\n';
                break;
            case 'r':
                u[0] = '\r';
                break;
            case 't':
                u[0] = '\t';
                break;
            case 'u': {
                unsigned cp = 0;
                size_t used = scan_u_escape(p, end, &cp);
                if (!used) {
                    return LX_EINVAL;
                }
                un = utf8_put(cp, u);
                p += used - 2;
                break;
            }
            default:
                u[0] = (unsigned char)p[1];
                break;
            }
            p += 2;
        }
        if (o + un >= cap) {
            return LX_ETOOBIG;
        }
        memcpy(out + o, u, un);
        o += un;
    }
    out[o] = '\0';
    if (out_len) {
        *out_len = o;
    }
    return 0;
}

/* ---- rewriter ---- */

static int put(struct lx_buf *b, const char *from, const char *to)
{
    return to > from ? buf_put(b, from, (size_t)(to - from)) : 0;
}

static int append_member(struct lx_buf *out, const struct lx_json_edit *e, bool comma)
{
    int rc = comma ? lx_buf_append(out, ",", 1) : 0;
    if (rc == 0) {
        rc = lx_json_append_string(out, e->key);
    }
    if (rc == 0) {
        rc = lx_buf_append(out, ":", 1);
    }
    if (rc == 0) {
        rc = lx_buf_append_str(out, e->value_json);
    }
    return rc;
}

/* Index of the first edit whose key the member has, or -1. */
static int match_edit(const struct lx_json_edit *edits, size_t n, const struct member *m)
{
    for (size_t i = 0; i < n; i++) {
        if (key_eq(m->key_raw, m->key_has_esc, edits[i].key)) {
            return (int)i;
        }
    }
    return -1;
}

/* Is edit i shadowed by an earlier edit with the same key? */
static bool shadowed(const struct lx_json_edit *edits, size_t i)
{
    for (size_t j = 0; j < i; j++) {
        if (lx_str_eq(edits[j].key, edits[i].key)) {
            return true;
        }
    }
    return false;
}

int lx_json_rewrite(struct lx_str body, const struct lx_json_edit *edits, size_t n_edits,
                    struct lx_buf *out)
{
    if (n_edits > LX_JSON_MAX_EDITS) {
        return LX_EINVAL;
    }
    size_t mark = out->len;
    uint64_t seen = 0; /* bit i: edit i's key occurs in body */
    size_t kept = 0;   /* members written so far */
    struct top_iter it;
    struct member m;

    /* One reserve for the likely output size, capped so that an output that
     * shrinks (removals) is not refused because the input was near the limit. */
    size_t want = body.n;
    for (size_t i = 0; i < n_edits; i++) {
        want += edits[i].key.n * 6 + edits[i].value_json.n + 4;
    }
    int rc = lx_buf_reserve(out, LX_MIN(want, out->limit - out->len));
    if (rc) {
        goto fail;
    }
    rc = top_begin(&it, body);
    if (rc) {
        goto fail;
    }
    rc = put(out, body.p, it.s.p); /* through '{' */
    while (rc == 0) {
        rc = top_next(&it, &m);
        if (rc != 1) {
            break;
        }
        rc = 0;
        const char *value_json = NULL;
        size_t value_json_n = 0;
        int e = match_edit(edits, n_edits, &m);
        if (e >= 0) {
            bool dup = seen >> e & 1;
            seen |= (uint64_t)1 << e;
            if (edits[e].op == LX_JSON_REMOVE || (edits[e].op == LX_JSON_SET && dup)) {
                continue; /* dropped, with the separator in front of it */
            }
            if (edits[e].op == LX_JSON_SET) {
                value_json = edits[e].value_json.p;
                value_json_n = edits[e].value_json.n;
            }
        }
        if (m.comma && kept == 0) {
            /* Earlier members were dropped: this one becomes the first. */
            rc = put(out, m.lead, m.comma);
            if (rc == 0) {
                rc = put(out, m.comma + 1, m.key);
            }
        } else {
            rc = put(out, m.lead, m.key);
        }
        if (rc == 0 && value_json) {
            rc = put(out, m.key, m.value);
            if (rc == 0) {
                rc = buf_put(out, value_json, value_json_n);
            }
        } else if (rc == 0) {
            rc = put(out, m.key, m.value_end);
        }
        kept++;
    }
    if (rc) {
        goto fail;
    }
    for (size_t i = 0; i < n_edits; i++) {
        if (edits[i].op == LX_JSON_REMOVE || (seen >> i & 1) || shadowed(edits, i)) {
            continue;
        }
        rc = append_member(out, &edits[i], kept > 0);
        if (rc) {
            goto fail;
        }
        kept++;
    }
    /* Whitespace before '}', the brace, whitespace after it. */
    rc = put(out, it.tail, body.p + body.n);
    if (rc) {
        goto fail;
    }
    terminate(out);
    return 0;
fail:
    rollback(out, mark);
    return rc;
}
