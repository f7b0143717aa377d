/*
 * libFuzzer target for the AWS event stream decoder (src/providers/eventstream.c).
 * The first byte seeds the fragment sizes; the rest is the stream. It is fed
 * once whole and once in fragments of varying sizes, and both runs must
 * deliver the same messages (types and payloads, in order) and end with the
 * same result and the same pending state. Every delivered message, encoded
 * again with its string headers, must decode to the same fields. Nothing may
 * leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"
#include "providers/eventstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct log {
    struct lx_buf b; /* event type, payload length and bytes of each message */
};

static void log_str(struct lx_buf *b, struct lx_str s)
{
    uint32_t n = (uint32_t)s.n;
    if (lx_buf_append(b, &n, sizeof(n)) || lx_buf_append(b, s.p ? s.p : "", s.n)) {
        abort(); /* the log's cap is far above any input */
    }
}

static void check_reencode(const struct lx_eventstream_message *m)
{
    struct lx_eventstream_header h[3];
    size_t n = 0;
    if (m->event_type.n) {
        h[n++] = (struct lx_eventstream_header){":event-type", m->event_type};
    }
    if (m->message_type.n) {
        h[n++] = (struct lx_eventstream_header){":message-type", m->message_type};
    }
    if (m->exception_type.n) {
        h[n++] = (struct lx_eventstream_header){":exception-type", m->exception_type};
    }
    struct lx_buf b;
    lx_buf_init(&b, 64u << 20);
    if (lx_eventstream_encode(&b, h, n, m->payload) != 0) {
        abort();
    }
    struct lx_eventstream_message d;
    if (lx_eventstream_decode((const unsigned char *)b.data, b.len, &d, NULL) != 0 ||
        !lx_str_eq(d.event_type, m->event_type) || !lx_str_eq(d.message_type, m->message_type) ||
        !lx_str_eq(d.exception_type, m->exception_type) || !lx_str_eq(d.payload, m->payload)) {
        abort();
    }
    lx_buf_fini(&b);
}

static int on_msg(void *ud, const struct lx_eventstream_message *m)
{
    struct log *l = ud;
    log_str(&l->b, m->event_type);
    log_str(&l->b, m->message_type);
    log_str(&l->b, m->exception_type);
    log_str(&l->b, m->payload);
    check_reencode(m);
    return 0;
}

static int run(const uint8_t *p, size_t n, uint8_t seed, bool split, struct log *l, bool *pending)
{
    struct lx_eventstream_parser ps;
    lx_eventstream_init(&ps, 1u << 16); /* a small cap, so the fuzzer reaches it */
    struct lx_error err = {0};
    int rc = 0;
    size_t pos = 0;
    uint32_t x = seed * 2654435761u + 1;
    while (pos < n && !rc) {
        size_t step = n - pos;
        if (split) {
            x = x * 1103515245u + 12345u;
            step = LX_MIN(step, (size_t)(x >> 16) % 23 + 1);
        }
        rc = lx_eventstream_feed(&ps, p + pos, step, on_msg, l, &err);
        pos += step;
    }
    if (rc && (!err.code || !err.msg[0])) {
        abort();
    }
    *pending = lx_eventstream_pending(&ps);
    lx_eventstream_fini(&ps);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    long live = lx_alloc_live();
    struct log a, b;
    lx_buf_init(&a.b, 256u << 20);
    lx_buf_init(&b.b, 256u << 20);
    bool pa, pb;
    int ra = run(data + 1, size - 1, data[0], false, &a, &pa);
    int rb = run(data + 1, size - 1, data[0], true, &b, &pb);
    if (ra != rb || pa != pb || a.b.len != b.b.len ||
        (a.b.len && memcmp(a.b.data, b.b.data, a.b.len) != 0)) {
        abort();
    }
    lx_buf_fini(&a.b);
    lx_buf_fini(&b.b);
    if (lx_alloc_live() != live) {
        abort();
    }
    return 0;
}
