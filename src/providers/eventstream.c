/*
 * AWS event stream decoder and encoder (eventstream.h).
 *
 * Feed logic: while no message is buffered, whole messages are decoded in
 * place from the caller's bytes; the tail of a message that does not fit is
 * copied into p->buf, which then collects exactly the rest of that message
 * (its prelude, once complete, says how much) before it is decoded. So the
 * buffer never holds more than one message and never more than the cap.
 *
 */
#include "providers/eventstream.h"

#include <string.h>

#include "core/crc32.h"

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

void lx_eventstream_init(struct lx_eventstream_parser *p, size_t max_message)
{
    memset(p, 0, sizeof(*p));
    p->max_message = max_message ? max_message : LX_EVENTSTREAM_MAX_MESSAGE;
    if (p->max_message > UINT32_MAX) {
        p->max_message = UINT32_MAX;
    }
    lx_buf_init(&p->buf, p->max_message);
}

void lx_eventstream_fini(struct lx_eventstream_parser *p)
{
    lx_buf_fini(&p->buf);
}

bool lx_eventstream_pending(const struct lx_eventstream_parser *p)
{
    return p->buf.len > 0;
}

static int bad(struct lx_error *err, const char *what)
{
    if (err) {
        lx_error_set(err, LX_EUPSTREAM, "%s", what);
    }
    return LX_EUPSTREAM;
}

/*
 * Check a 12-byte prelude; *out_total is the message length. Returns 0,
 * LX_EUPSTREAM or LX_ETOOBIG (err set).
 */
static int check_prelude(const unsigned char *pre, size_t max, uint32_t *out_total,
                         struct lx_error *err)
{
    uint32_t total = be32(pre);
    uint32_t hlen = be32(pre + 4);
    if (lx_crc32(0, pre, 8) != be32(pre + 8)) {
        return bad(err, "event stream CRC mismatch in a message prelude");
    }
    if (total < LX_EVENTSTREAM_MIN_MESSAGE || hlen > total - LX_EVENTSTREAM_MIN_MESSAGE) {
        return bad(err, "event stream message with invalid lengths");
    }
    if (total > max) {
        if (err) {
            lx_error_set(err, LX_ETOOBIG,
                         "event stream message of %u bytes exceeds the cap of %zu bytes", total,
                         max);
        }
        return LX_ETOOBIG;
    }
    *out_total = total;
    return 0;
}

/* Pick the well-known headers out of a validated header block. */
static int parse_headers(struct lx_str h, struct lx_eventstream_message *out, struct lx_error *err)
{
    static const struct {
        const char *name;
        size_t off;
    } known[] = {
        {":message-type", offsetof(struct lx_eventstream_message, message_type)},
        {":event-type", offsetof(struct lx_eventstream_message, event_type)},
        {":exception-type", offsetof(struct lx_eventstream_message, exception_type)},
        {":error-code", offsetof(struct lx_eventstream_message, error_code)},
        {":error-message", offsetof(struct lx_eventstream_message, error_message)},
        {":content-type", offsetof(struct lx_eventstream_message, content_type)},
    };
    const unsigned char *p = (const unsigned char *)h.p;
    size_t n = h.n, i = 0;
    while (i < n) {
        size_t name_len = p[i++];
        if (name_len == 0 || name_len > n - i) {
            return bad(err, "event stream header with an invalid name length");
        }
        struct lx_str name = {(const char *)p + i, name_len};
        i += name_len;
        if (i >= n) {
            return bad(err, "event stream header without a value type");
        }
        unsigned type = p[i++];
        size_t vlen;
        bool is_string = false;
        switch (type) {
        case 0: /* bool true */
        case 1: /* bool false */
            vlen = 0;
            break;
        case 2: /* byte */
            vlen = 1;
            break;
        case 3: /* short */
            vlen = 2;
            break;
        case 4: /* int */
            vlen = 4;
            break;
        case 5: /* long */
        case 8: /* timestamp (ms since the epoch) */
            vlen = 8;
            break;
        case 9: /* uuid */
            vlen = 16;
            break;
        case 6: /* byte array */
        case 7: /* string */
            if (n - i < 2) {
                return bad(err, "event stream header value truncated");
            }
            vlen = (size_t)p[i] << 8 | p[i + 1];
            i += 2;
            is_string = type == 7;
            break;
        default:
            return bad(err, "event stream header with an unknown value type");
        }
        if (vlen > n - i) {
            return bad(err, "event stream header value truncated");
        }
        if (is_string) {
            for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
                if (lx_str_eq_c(name, known[k].name)) {
                    struct lx_str *dst = (struct lx_str *)(void *)((char *)out + known[k].off);
                    *dst = (struct lx_str){(const char *)p + i, vlen};
                }
            }
        }
        i += vlen;
    }
    return 0;
}

int lx_eventstream_decode(const unsigned char *m, size_t n, struct lx_eventstream_message *out,
                          struct lx_error *err)
{
    memset(out, 0, sizeof(*out));
    if (n < LX_EVENTSTREAM_MIN_MESSAGE || be32(m) != n) {
        return bad(err, "event stream message with invalid lengths");
    }
    uint32_t hlen = be32(m + 4);
    if (lx_crc32(0, m, 8) != be32(m + 8)) {
        return bad(err, "event stream CRC mismatch in a message prelude");
    }
    if (hlen > n - LX_EVENTSTREAM_MIN_MESSAGE) {
        return bad(err, "event stream message with invalid lengths");
    }
    if (lx_crc32(0, m, n - 4) != be32(m + n - 4)) {
        return bad(err, "event stream CRC mismatch in a message");
    }
    out->headers = (struct lx_str){(const char *)m + 12, hlen};
    out->payload =
        (struct lx_str){(const char *)m + 12 + hlen, n - LX_EVENTSTREAM_MIN_MESSAGE - hlen};
    return parse_headers(out->headers, out, err);
}

static int fail(struct lx_eventstream_parser *p, int rc)
{
    p->error = rc;
    lx_buf_reset(&p->buf);
    return rc;
}

/* Buffering failed (the buffer's cap is the message cap, so only memory can run out). */
static int buffer_fail(struct lx_eventstream_parser *p, int rc, struct lx_error *err)
{
    rc = rc == LX_ETOOBIG ? LX_ETOOBIG : LX_ENOMEM;
    if (err) {
        lx_error_set(err, rc, "event stream: %s buffering a message", lx_strerror(rc));
    }
    return fail(p, rc);
}

static int deliver(struct lx_eventstream_parser *p, const unsigned char *m, size_t n,
                   lx_eventstream_cb cb, void *ud, struct lx_error *err)
{
    struct lx_eventstream_message msg;
    int rc = lx_eventstream_decode(m, n, &msg, err);
    if (!rc) {
        rc = cb(ud, &msg);
    }
    return rc ? fail(p, rc) : 0;
}

int lx_eventstream_feed(struct lx_eventstream_parser *p, const void *data, size_t n,
                        lx_eventstream_cb cb, void *ud, struct lx_error *err)
{
    if (p->error) {
        if (err && !err->code) {
            lx_error_set(err, p->error, "event stream parser stopped after an earlier error");
        }
        return p->error;
    }
    const unsigned char *d = data;
    while (n) {
        if (p->buf.len == 0) {
            /* Nothing buffered: decode whole messages in place. */
            if (n >= LX_EVENTSTREAM_PRELUDE_BYTES) {
                uint32_t total;
                int rc = check_prelude(d, p->max_message, &total, err);
                if (rc) {
                    return fail(p, rc);
                }
                if (n >= total) {
                    rc = deliver(p, d, total, cb, ud, err);
                    if (rc) {
                        return rc;
                    }
                    d += total;
                    n -= total;
                    continue;
                }
                p->total = total;
            } else {
                p->total = 0; /* prelude not complete yet */
            }
            int rc = lx_buf_append(&p->buf, d, n);
            return rc ? buffer_fail(p, rc, err) : 0;
        }
        /* Complete the prelude first, then exactly the rest of the message. */
        size_t want = p->total ? p->total - p->buf.len : LX_EVENTSTREAM_PRELUDE_BYTES - p->buf.len;
        size_t take = want < n ? want : n;
        int rc = lx_buf_append(&p->buf, d, take);
        if (rc) {
            return buffer_fail(p, rc, err);
        }
        d += take;
        n -= take;
        if (!p->total) {
            if (p->buf.len < LX_EVENTSTREAM_PRELUDE_BYTES) {
                return 0;
            }
            uint32_t total;
            rc = check_prelude((const unsigned char *)p->buf.data, p->max_message, &total, err);
            if (rc) {
                return fail(p, rc);
            }
            p->total = total;
            continue; /* a message is at least 16 bytes: more is needed */
        }
        if (p->buf.len == p->total) {
            rc = deliver(p, (const unsigned char *)p->buf.data, p->buf.len, cb, ud, err);
            if (rc) {
                return rc;
            }
            lx_buf_reset(&p->buf);
            p->total = 0;
        }
    }
    return 0;
}

int lx_eventstream_encode(struct lx_buf *out, const struct lx_eventstream_header *h,
                          size_t n_headers, struct lx_str payload)
{
    size_t hlen = 0;
    for (size_t i = 0; i < n_headers; i++) {
        size_t nl = strlen(h[i].name);
        if (nl == 0 || nl > 255 || h[i].value.n > 65535) {
            return LX_EINVAL;
        }
        hlen += 1 + nl + 1 + 2 + h[i].value.n;
    }
    if (hlen > UINT32_MAX - LX_EVENTSTREAM_MIN_MESSAGE ||
        payload.n > UINT32_MAX - LX_EVENTSTREAM_MIN_MESSAGE - hlen) {
        return LX_EINVAL;
    }
    size_t total = LX_EVENTSTREAM_MIN_MESSAGE + hlen + payload.n;
    int rc = lx_buf_reserve(out, total);
    if (rc) {
        return rc;
    }
    unsigned char *m = (unsigned char *)out->data + out->len;
    put_be32(m, (uint32_t)total);
    put_be32(m + 4, (uint32_t)hlen);
    put_be32(m + 8, lx_crc32(0, m, 8));
    size_t i = 12;
    for (size_t k = 0; k < n_headers; k++) {
        size_t nl = strlen(h[k].name);
        m[i++] = (unsigned char)nl;
        memcpy(m + i, h[k].name, nl);
        i += nl;
        m[i++] = 7;
        m[i++] = (unsigned char)(h[k].value.n >> 8);
        m[i++] = (unsigned char)h[k].value.n;
        if (h[k].value.n) {
            memcpy(m + i, h[k].value.p, h[k].value.n);
        }
        i += h[k].value.n;
    }
    if (payload.n) {
        memcpy(m + i, payload.p, payload.n);
    }
    i += payload.n;
    put_be32(m + i, lx_crc32(0, m, i));
    out->len += total;
    out->data[out->len] = '\0';
    return 0;
}
