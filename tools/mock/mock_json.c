/*
 * Append-only JSON writer for the mock's answers. Every function is a no-op
 * once w->err is set, so callers write a whole document and check err once.
 * Strings are escaped per RFC 8259 section 7; input that is not valid UTF-8
 * (clients may send anything) is replaced by U+FFFD so the answer always
 * parses.
 */
#include <stdio.h>
#include <string.h>

#include "mock.h"

void lx_mock__w_raw(struct lx_mock_w *w, const char *p, size_t n)
{
    if (w->err) {
        return;
    }
    w->err = lx_buf_append(w->b, p, n);
}

void lx_mock__w_u64(struct lx_mock_w *w, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    lx_mock__w_raw(w, tmp + i, sizeof(tmp) - i);
}

/* Length of the valid UTF-8 sequence at p (RFC 3629 section 4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) {
            return 0;
        }
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)) {
            return 0; /* overlong, or a UTF-16 surrogate */
        }
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80) {
            return 0;
        }
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)) {
            return 0;
        }
        return 4;
    }
    return 0;
}

void lx_mock__w_str_body(struct lx_mock_w *w, struct lx_str s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s.p;
    size_t i = 0;
    size_t run = 0; /* start of bytes that need no escaping */
    while (i < s.n && !w->err) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t len = utf8_len(p + i, s.n - i);
            if (len) {
                i += len;
                continue;
            }
        }
        lx_mock__w_raw(w, s.p + run, i - run);
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        switch (c) {
        case '"':
            LX_MOCK_W_LIT(w, "\\\"");
            break;
        case '\\':
            LX_MOCK_W_LIT(w, "\\\\");
            break;
        case '\n':
            LX_MOCK_W_LIT(w, "\\n");
            break;
        case '\r':
            LX_MOCK_W_LIT(w, "\\r");
            break;
        case '\t':
            LX_MOCK_W_LIT(w, "\\t");
            break;
        default:
            if (c >= 0x80) {
                LX_MOCK_W_LIT(w, "\\ufffd");
            } else {
                lx_mock__w_raw(w, esc, sizeof(esc));
            }
            break;
        }
        i++;
        run = i;
    }
    lx_mock__w_raw(w, s.p + run, i - run);
}

void lx_mock__w_str(struct lx_mock_w *w, struct lx_str s)
{
    LX_MOCK_W_LIT(w, "\"");
    lx_mock__w_str_body(w, s);
    LX_MOCK_W_LIT(w, "\"");
}

void lx_mock__w_float(struct lx_mock_w *w, float v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%.9g", (double)v);
    if (n > 0 && (size_t)n < sizeof(tmp)) {
        lx_mock__w_raw(w, tmp, (size_t)n);
    } else {
        LX_MOCK_W_LIT(w, "0");
    }
}

void lx_mock__w_base64(struct lx_mock_w *w, const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char quad[4];
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        quad[0] = tbl[v >> 18];
        quad[1] = tbl[(v >> 12) & 63];
        quad[2] = tbl[(v >> 6) & 63];
        quad[3] = tbl[v & 63];
        lx_mock__w_raw(w, quad, 4);
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        quad[0] = tbl[v >> 18];
        quad[1] = tbl[(v >> 12) & 63];
        quad[2] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        quad[3] = '=';
        lx_mock__w_raw(w, quad, 4);
    }
}
