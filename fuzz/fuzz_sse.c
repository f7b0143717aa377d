/*
 * libFuzzer target for the SSE parser. The first byte picks the event cap
 * and the next two a split point; the rest is the stream. The stream is
 * parsed in one piece, in two pieces split at that point, and one byte at a
 * time (for short inputs); every run must produce the same events, result and
 * truncation flag. An event whose data is "STOP" makes the callback stop the
 * parse, to cover the stop path. Each event is also re-encoded with
 * lx_sse_append_event and must parse back to the same name and data (with
 * line breaks normalised to LF).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "http/sse.h"

struct run {
    struct lx_buf log;
    int rc;
    bool truncated;
};

static int reparse_cb(void *ud, const struct lx_sse_event *ev)
{
    struct lx_buf *b = ud;
    return lx_buf_append_str(b, ev->data) ? -100 : 0;
}

/* Encoding ev and parsing it back gives the same data. */
static void check_round_trip(const struct lx_sse_event *ev)
{
    if (memchr(ev->name.p, '\r', ev->name.n) || memchr(ev->name.p, '\n', ev->name.n)) {
        abort(); /* the parser never yields line breaks in a name */
    }
    struct lx_buf enc, back;
    lx_buf_init(&enc, 1 << 20);
    lx_buf_init(&back, 1 << 20);
    if (lx_sse_append_event(&enc, ev->name, ev->data) != 0) {
        abort();
    }
    struct lx_sse_parser p;
    lx_sse_init(&p, 1 << 20);
    bool truncated = true;
    if (lx_sse_feed(&p, enc.data, enc.len, reparse_cb, &back) != 0 ||
        lx_sse_finish(&p, &truncated) != 0 || truncated) {
        abort();
    }
    /* The parser's data has LF line breaks only, so it must come back as is. */
    if (!lx_str_eq(lx_buf_str(&back), ev->data)) {
        abort();
    }
    lx_sse_fini(&p);
    lx_buf_fini(&enc);
    lx_buf_fini(&back);
}

static int on_event(void *ud, const struct lx_sse_event *ev)
{
    struct lx_buf *log = ud;
    char len[64];
    int n = snprintf(len, sizeof(len), "%zu,%zu,%zu:", ev->name.n, ev->data.n, ev->id.n);
    if (lx_buf_append(log, len, (size_t)n) || lx_buf_append_str(log, ev->name) ||
        lx_buf_append_str(log, ev->data) || lx_buf_append_str(log, ev->id)) {
        abort();
    }
    if (memchr(ev->data.p, '\r', ev->data.n)) {
        abort();
    }
    return lx_str_eq_c(ev->data, "STOP") ? 7 : 0;
}

static void run_pieces(const char *in, size_t n, size_t max, size_t piece, size_t cut,
                       struct run *r)
{
    struct lx_sse_parser p;
    lx_sse_init(&p, max);
    lx_buf_init(&r->log, 1 << 24);
    r->rc = 0;
    if (piece) {
        for (size_t i = 0; i < n && r->rc == 0; i += piece) {
            r->rc = lx_sse_feed(&p, in + i, n - i < piece ? n - i : piece, on_event, &r->log);
        }
    } else {
        r->rc = lx_sse_feed(&p, in, cut, on_event, &r->log);
        if (r->rc == 0) {
            r->rc = lx_sse_feed(&p, in + cut, n - cut, on_event, &r->log);
        }
    }
    if (lx_sse_finish(&p, &r->truncated) != r->rc) {
        abort();
    }
    lx_sse_fini(&p);
}

static void same(const struct run *a, const struct run *b)
{
    if (a->rc != b->rc || a->truncated != b->truncated ||
        !lx_str_eq(lx_buf_str(&a->log), lx_buf_str(&b->log))) {
        abort();
    }
}

static int round_trip_cb(void *ud, const struct lx_sse_event *ev)
{
    (void)ud;
    check_round_trip(ev);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    size_t max = data[0] < 128 ? (size_t)data[0] + 1 : 1 << 16;
    const char *in = (const char *)data + 3;
    size_t n = size - 3;
    size_t cut = n ? ((size_t)data[1] << 8 | data[2]) % (n + 1) : 0;

    struct run whole, split, bytes;
    run_pieces(in, n, max, n ? n : 1, 0, &whole);
    run_pieces(in, n, max, 0, cut, &split);
    same(&whole, &split);
    if (n <= 4096) {
        run_pieces(in, n, max, 1, 0, &bytes);
        same(&whole, &bytes);
        lx_buf_fini(&bytes.log);
    }
    lx_buf_fini(&whole.log);
    lx_buf_fini(&split.log);

    struct lx_sse_parser p;
    lx_sse_init(&p, max);
    int rc = lx_sse_feed(&p, in, n, round_trip_cb, NULL);
    (void)rc;
    lx_sse_fini(&p);
    return 0;
}
