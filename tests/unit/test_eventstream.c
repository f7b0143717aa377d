/*
 * Unit tests for the AWS event stream decoder (src/providers/eventstream.c):
 * the CRC-32 check value, AWS's "empty message" encoding, frames built here
 * (all ten header value types) fed whole and split at every byte, and the
 * failures: bad prelude CRC, bad message CRC, invalid lengths, bad headers,
 * an oversized message, a stream cut mid-message, callback stops and
 * allocation failures.
 */
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/crc32.h"
#include "core/error.h"
#include "lx_test.h"
#include "providers/eventstream.h"

struct seen {
    int n;
    char event_type[8][32];
    char payload[8][128];
    char message_type[8][16];
    char exception_type[8][32];
    int stop_at; /* return LX_ECANCELED at this message (1-based); 0: never */
};

static void copy(char *dst, size_t cap, struct lx_str s)
{
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    if (n) {
        memcpy(dst, s.p, n);
    }
    dst[n] = '\0';
}

static int on_msg(void *ud, const struct lx_eventstream_message *m)
{
    struct seen *s = ud;
    if (s->n < 8) {
        copy(s->event_type[s->n], sizeof(s->event_type[0]), m->event_type);
        copy(s->payload[s->n], sizeof(s->payload[0]), m->payload);
        copy(s->message_type[s->n], sizeof(s->message_type[0]), m->message_type);
        copy(s->exception_type[s->n], sizeof(s->exception_type[0]), m->exception_type);
    }
    s->n++;
    return s->stop_at && s->n == s->stop_at ? LX_ECANCELED : 0;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A frame with raw header bytes, CRCs computed here. Returns its length. */
static size_t frame(unsigned char *out, const unsigned char *hdr, size_t hlen, const char *payload)
{
    size_t pl = strlen(payload);
    size_t total = 16 + hlen + pl;
    put_be32(out, (uint32_t)total);
    put_be32(out + 4, (uint32_t)hlen);
    put_be32(out + 8, lx_crc32(0, out, 8));
    memcpy(out + 12, hdr, hlen);
    memcpy(out + 12 + hlen, payload, pl);
    put_be32(out + total - 4, lx_crc32(0, out, total - 4));
    return total;
}

/* Header bytes: one of every value type, then :event-type and :message-type strings. */
static size_t all_types_headers(unsigned char *h, const char *event)
{
    size_t i = 0;
    static const struct {
        const char *name;
        unsigned char type;
        size_t len; /* value bytes (for 6/7: after the u16 length) */
    } fixed[] = {{"t", 0, 0}, {"f", 1, 0}, {"b", 2, 1}, {"s", 3, 2},  {"i", 4, 4},
                 {"l", 5, 8}, {"a", 6, 3}, {"x", 7, 2}, {"ts", 8, 8}, {"u", 9, 16}};
    for (size_t k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++) {
        size_t nl = strlen(fixed[k].name);
        h[i++] = (unsigned char)nl;
        memcpy(h + i, fixed[k].name, nl);
        i += nl;
        h[i++] = fixed[k].type;
        if (fixed[k].type == 6 || fixed[k].type == 7) {
            h[i++] = 0;
            h[i++] = (unsigned char)fixed[k].len;
        }
        memset(h + i, 0xAB, fixed[k].len);
        i += fixed[k].len;
    }
    const char *names[] = {":event-type", ":message-type"};
    const char *values[] = {event, "event"};
    for (int k = 0; k < 2; k++) {
        size_t nl = strlen(names[k]), vl = strlen(values[k]);
        h[i++] = (unsigned char)nl;
        memcpy(h + i, names[k], nl);
        i += nl;
        h[i++] = 7;
        h[i++] = (unsigned char)(vl >> 8);
        h[i++] = (unsigned char)vl;
        memcpy(h + i, values[k], vl);
        i += vl;
    }
    return i;
}

LX_TEST(crc32_check_value)
{
    LX_CHECK_INT(lx_crc32(0, "123456789", 9), 0xCBF43926u);
    LX_CHECK_INT(lx_crc32(0, "", 0), 0);
    /* Incremental equals one-shot. */
    LX_CHECK_INT(lx_crc32(lx_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
}

/* AWS's encoding test vector "empty_message": no headers, no payload. */
LX_TEST(empty_message_vector)
{
    static const unsigned char m[] = {0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00,
                                      0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff};
    struct lx_eventstream_parser p;
    lx_eventstream_init(&p, 0);
    struct seen s = {0};
    struct lx_error err = {0};
    LX_CHECK_INT(lx_eventstream_feed(&p, m, sizeof(m), on_msg, &s, &err), 0);
    LX_CHECK_INT(s.n, 1);
    LX_CHECK_STR(s.payload[0], "");
    LX_CHECK(!lx_eventstream_pending(&p));
    lx_eventstream_fini(&p);

    struct lx_buf b;
    lx_buf_init(&b, 1024);
    LX_CHECK_INT(lx_eventstream_encode(&b, NULL, 0, LX_STR("")), 0);
    LX_CHECK_INT(b.len, sizeof(m));
    LX_CHECK(b.len == sizeof(m) && memcmp(b.data, m, sizeof(m)) == 0);
    lx_buf_fini(&b);
}

/* Three messages (all header types) fed whole, then split at every byte position. */
LX_TEST(split_everywhere)
{
    unsigned char stream[1024];
    unsigned char h[256];
    size_t n = 0;
    n += frame(stream + n, h, all_types_headers(h, "messageStart"), "{\"role\":\"assistant\"}");
    n += frame(stream + n, h, all_types_headers(h, "contentBlockDelta"),
               "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}");
    n += frame(stream + n, h, all_types_headers(h, "metadata"), "");
    for (size_t cut1 = 0; cut1 <= n; cut1++) {
        for (size_t cut2 = cut1; cut2 <= n; cut2 += (cut1 % 7) + 1) {
            struct lx_eventstream_parser p;
            lx_eventstream_init(&p, 0);
            struct seen s = {0};
            struct lx_error err = {0};
            int rc = lx_eventstream_feed(&p, stream, cut1, on_msg, &s, &err);
            if (!rc) {
                rc = lx_eventstream_feed(&p, stream + cut1, cut2 - cut1, on_msg, &s, &err);
            }
            if (!rc) {
                rc = lx_eventstream_feed(&p, stream + cut2, n - cut2, on_msg, &s, &err);
            }
            LX_CHECK_INT(rc, 0);
            LX_CHECK_INT(s.n, 3);
            LX_CHECK_STR(s.event_type[0], "messageStart");
            LX_CHECK_STR(s.event_type[1], "contentBlockDelta");
            LX_CHECK_STR(s.event_type[2], "metadata");
            LX_CHECK_STR(s.message_type[1], "event");
            LX_CHECK_STR(s.payload[0], "{\"role\":\"assistant\"}");
            LX_CHECK_STR(s.payload[2], "");
            LX_CHECK(!lx_eventstream_pending(&p));
            lx_eventstream_fini(&p);
            if (lx_test_current_failed_) {
                fprintf(stderr, "  cuts %zu %zu\n", cut1, cut2);
                return;
            }
        }
    }
    /* One byte at a time. */
    struct lx_eventstream_parser p;
    lx_eventstream_init(&p, 0);
    struct seen s = {0};
    for (size_t i = 0; i < n; i++) {
        LX_CHECK_INT(lx_eventstream_feed(&p, stream + i, 1, on_msg, &s, NULL), 0);
    }
    LX_CHECK_INT(s.n, 3);
    LX_CHECK(!lx_eventstream_pending(&p));
    lx_eventstream_fini(&p);
}

static int feed_all(const unsigned char *m, size_t n, size_t max, struct seen *s,
                    struct lx_error *err)
{
    struct lx_eventstream_parser p;
    lx_eventstream_init(&p, max);
    int rc = lx_eventstream_feed(&p, m, n, on_msg, s, err);
    /* Sticky: the next feed fails the same way. */
    if (rc) {
        struct lx_error e2 = {0};
        LX_CHECK_INT(lx_eventstream_feed(&p, "x", 1, on_msg, s, &e2), rc);
    }
    lx_eventstream_fini(&p);
    return rc;
}

LX_TEST(corrupt_frames)
{
    unsigned char h[256];
    unsigned char m[512];
    size_t hl = all_types_headers(h, "messageStart");
    size_t n = frame(m, h, hl, "{}");
    struct seen s = {0};
    struct lx_error err = {0};

    /* Bad prelude CRC. */
    m[9] ^= 1;
    LX_CHECK_INT(feed_all(m, n, 0, &s, &err), LX_EUPSTREAM);
    LX_CHECK(strstr(err.msg, "event stream CRC mismatch") != NULL);
    m[9] ^= 1;

    /* Bad message CRC: a payload byte flipped. */
    memset(&err, 0, sizeof(err));
    m[n - 6] ^= 0x40;
    LX_CHECK_INT(feed_all(m, n, 0, &s, &err), LX_EUPSTREAM);
    LX_CHECK(strstr(err.msg, "event stream CRC mismatch") != NULL);
    m[n - 6] ^= 0x40;

    /* Bad message CRC, split across feeds. */
    memset(&err, 0, sizeof(err));
    m[n - 1] ^= 0xFF;
    struct lx_eventstream_parser p;
    lx_eventstream_init(&p, 0);
    LX_CHECK_INT(lx_eventstream_feed(&p, m, 20, on_msg, &s, &err), 0);
    LX_CHECK_INT(lx_eventstream_feed(&p, m + 20, n - 20, on_msg, &s, &err), LX_EUPSTREAM);
    LX_CHECK(strstr(err.msg, "CRC mismatch") != NULL);
    lx_eventstream_fini(&p);
    m[n - 1] ^= 0xFF;
    LX_CHECK_INT(s.n, 0);

    /* Oversize: refused from the prelude, before buffering. */
    memset(&err, 0, sizeof(err));
    LX_CHECK_INT(feed_all(m, 12, n - 1, &s, &err), LX_ETOOBIG);
    LX_CHECK(strstr(err.msg, "exceeds") != NULL);
    unsigned char big[12];
    put_be32(big, (16u << 20) + 1);
    put_be32(big + 4, 0);
    put_be32(big + 8, lx_crc32(0, big, 8));
    memset(&err, 0, sizeof(err));
    LX_CHECK_INT(feed_all(big, 12, 0, &s, &err), LX_ETOOBIG);

    /* Invalid lengths with a valid prelude CRC. */
    unsigned char small[16];
    put_be32(small, 15);
    put_be32(small + 4, 0);
    put_be32(small + 8, lx_crc32(0, small, 8));
    memset(&err, 0, sizeof(err));
    LX_CHECK_INT(feed_all(small, 16, 0, &s, &err), LX_EUPSTREAM);
    put_be32(small, 16);
    put_be32(small + 4, 1);
    put_be32(small + 8, lx_crc32(0, small, 8));
    memset(&err, 0, sizeof(err));
    LX_CHECK_INT(feed_all(small, 16, 0, &s, &err), LX_EUPSTREAM);

    /* Bad headers with correct CRCs: unknown type, zero name length, value past the block. */
    const unsigned char bad_type[] = {1, 'x', 10};
    const unsigned char zero_name[] = {0, 7, 0, 0};
    const unsigned char past_end[] = {1, 'x', 7, 0, 9, 'a'};
    const unsigned char no_type[] = {2, 'a', 'b'};
    const unsigned char fixed_short[] = {1, 'u', 9, 1, 2, 3};
    const unsigned char *bads[] = {bad_type, zero_name, past_end, no_type, fixed_short};
    size_t lens[] = {sizeof(bad_type), sizeof(zero_name), sizeof(past_end), sizeof(no_type),
                     sizeof(fixed_short)};
    for (size_t i = 0; i < 5; i++) {
        n = frame(m, bads[i], lens[i], "{}");
        memset(&err, 0, sizeof(err));
        LX_CHECK_INT(feed_all(m, n, 0, &s, &err), LX_EUPSTREAM);
        LX_CHECK(strstr(err.msg, "header") != NULL);
    }
    LX_CHECK_INT(s.n, 0);
}

LX_TEST(truncated_and_stop)
{
    unsigned char h[256];
    unsigned char m[1024];
    size_t hl = all_types_headers(h, "messageStop");
    size_t n1 = frame(m, h, hl, "{\"stopReason\":\"end_turn\"}");
    size_t n2 = frame(m + n1, h, hl, "{}");
    struct lx_eventstream_parser p;
    lx_eventstream_init(&p, 0);
    struct seen s = {0};
    LX_CHECK_INT(lx_eventstream_feed(&p, m, n1 + 5, on_msg, &s, NULL), 0);
    LX_CHECK_INT(s.n, 1);
    LX_CHECK(lx_eventstream_pending(&p)); /* the stream ends here: truncated */
    lx_eventstream_fini(&p);

    /* A callback's non-zero return stops the parse and sticks. */
    lx_eventstream_init(&p, 0);
    memset(&s, 0, sizeof(s));
    s.stop_at = 1;
    LX_CHECK_INT(lx_eventstream_feed(&p, m, n1 + n2, on_msg, &s, NULL), LX_ECANCELED);
    LX_CHECK_INT(s.n, 1);
    LX_CHECK_INT(lx_eventstream_feed(&p, m, n1, on_msg, &s, NULL), LX_ECANCELED);
    LX_CHECK_INT(s.n, 1);
    lx_eventstream_fini(&p);
}

LX_TEST(encode_roundtrip)
{
    struct lx_buf b;
    lx_buf_init(&b, 1 << 16);
    struct lx_eventstream_header hs[] = {
        {":message-type", LX_STR("exception")},
        {":exception-type", LX_STR("throttlingException")},
        {":content-type", LX_STR("application/json")},
    };
    LX_CHECK_INT(lx_eventstream_encode(&b, hs, 3, LX_STR("{\"message\":\"slow down\"}")), 0);
    struct lx_eventstream_message msg;
    struct lx_error err = {0};
    LX_CHECK_INT(lx_eventstream_decode((const unsigned char *)b.data, b.len, &msg, &err), 0);
    LX_CHECK_MEM(msg.message_type.p, msg.message_type.n, "exception");
    LX_CHECK_MEM(msg.exception_type.p, msg.exception_type.n, "throttlingException");
    LX_CHECK_MEM(msg.content_type.p, msg.content_type.n, "application/json");
    LX_CHECK_MEM(msg.payload.p, msg.payload.n, "{\"message\":\"slow down\"}");
    LX_CHECK_INT(msg.event_type.n, 0);
    struct lx_eventstream_header too_long = {"n", {"", 70000}};
    LX_CHECK_INT(lx_eventstream_encode(&b, &too_long, 1, LX_STR("")), LX_EINVAL);
    lx_buf_fini(&b);
}

LX_TEST(alloc_failure)
{
    unsigned char h[256];
    unsigned char m[1024];
    size_t n = frame(m, h, all_types_headers(h, "messageStart"), "{}");
    int ok = 0;
    for (long k = 0; k < 20 && !ok; k++) {
        struct lx_eventstream_parser p;
        lx_eventstream_init(&p, 0);
        struct seen s = {0};
        struct lx_error err = {0};
        lx_alloc_fail_after(k, 0);
        /* Split so that the parser must buffer. */
        int rc = lx_eventstream_feed(&p, m, 5, on_msg, &s, &err);
        if (!rc) {
            rc = lx_eventstream_feed(&p, m + 5, n - 5, on_msg, &s, &err);
        }
        lx_alloc_fail_after(-1, 0);
        if (rc == 0) {
            ok = 1;
            LX_CHECK_INT(s.n, 1);
        } else {
            LX_CHECK_INT(rc, LX_ENOMEM);
        }
        lx_eventstream_fini(&p);
    }
    LX_CHECK(ok);
}

LX_TEST_MAIN(LX_RUN(crc32_check_value), LX_RUN(empty_message_vector), LX_RUN(split_everywhere),
             LX_RUN(corrupt_frames), LX_RUN(truncated_and_stop), LX_RUN(encode_roundtrip),
             LX_RUN(alloc_failure))
