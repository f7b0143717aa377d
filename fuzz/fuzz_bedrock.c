/*
 * libFuzzer target for the Bedrock provider (src/providers/bedrock.c). The
 * first byte holds flags (stream, session token, error status, framing,
 * fragment size); the rest is split at 0xFF bytes into a client request
 * body, an upstream response body and an upstream stream. With the framing
 * flag the stream part is a list of records separated by 0xFE, each a kind
 * byte (which event or exception) and a JSON payload, encoded here into valid
 * event stream messages so the fuzzer reaches the translation behind the
 * CRCs; without it the bytes go to the decoder raw.
 *
 * Invariants: a successful translation writes valid JSON (unless it nests
 * deeper than cJSON parses) and a failed one writes nothing and sets a
 * message; build_request signs (an Authorization header) or fails cleanly;
 * translate_error always succeeds; the stream output is an event stream of
 * JSON objects and "[DONE]", nothing follows [DONE] or an error event, and
 * nothing leaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"
#include "provider_fuzz.h"
#include "providers/eventstream.h"
#include "providers/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const kinds[] = {
    "messageStart",     "contentBlockStart",   "contentBlockDelta",
    "contentBlockStop", "messageStop",         "metadata",
    "somethingNew",     "throttlingException", "validationException",
};

/* Records "kind byte + payload" separated by 0xFE, as valid messages. */
static void frame_records(struct lx_str in, struct lx_buf *out)
{
    while (in.n) {
        const char *sep = memchr(in.p, 0xFE, in.n);
        struct lx_str rec = {in.p, sep ? (size_t)(sep - in.p) : in.n};
        in = sep ? lx_str_sub(in, rec.n + 1) : lx_str_sub(in, in.n);
        if (!rec.n) {
            continue;
        }
        size_t k = (unsigned char)rec.p[0] % (sizeof(kinds) / sizeof(kinds[0]));
        bool exc = k >= 7;
        struct lx_eventstream_header h[] = {
            {exc ? ":exception-type" : ":event-type", lx_str_c(kinds[k])},
            {":content-type", LX_STR("application/json")},
            {":message-type", exc ? LX_STR("exception") : LX_STR("event")},
        };
        if (lx_eventstream_encode(out, h, 3, lx_str_sub(rec, 1)) != 0) {
            return;
        }
    }
}

static const int statuses[] = {400, 403, 404, 429, 500, 503, 424, 408};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags;
    struct lx_str part[3];
    if (!fuzz_start(data, size, &flags, part)) {
        return 0;
    }
    long live = lx_alloc_live();

    const struct lx_provider_ops *ops = lx_provider_ops_for(LX_PROVIDER_BEDROCK);
    struct lx_deployment dep;
    memset(&dep, 0, sizeof(dep));
    dep.model_name = "bedrock";
    dep.id = "d1";
    dep.provider.kind = LX_PROVIDER_BEDROCK;
    dep.upstream_model = flags & 0x40 ? "converse/anthropic.claude-3-haiku-20240307-v1:0"
                                      : "anthropic.claude-3-sonnet-20240229-v1:0";
    dep.aws_access_key_id = "AKIDEXAMPLE";
    dep.aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    dep.aws_session_token = flags & 2 ? "token" : NULL;
    dep.aws_region_name = "us-west-2";
    dep.api_base = flags & 0x80 ? "http://127.0.0.1:9/mock/x=1" : NULL;

    struct fuzz_call fc;
    fuzz_call_init(&fc, &dep, part[0], flags & 1, NULL);

    fuzz_build_request(ops, &fc.call, "Authorization");
    struct lx_buf out;
    lx_buf_init(&out, 1 << 22);
    int status = statuses[(flags >> 2) % (sizeof(statuses) / sizeof(statuses[0]))];
    fuzz_translate_response(ops, &fc.call, part[1], status, &out);

    /* Stream. */
    struct lx_buf framed;
    lx_buf_init(&framed, 1 << 24);
    struct lx_str up = part[2];
    if (flags & 0x20) {
        frame_records(part[2], &framed);
        up = lx_buf_str(&framed);
    }
    void *st = ops->stream_new(&fc.call);
    if (!st) {
        abort();
    }
    size_t frag = (size_t)((flags >> 3) & 3) * 7 + 1;
    if (!(flags & 0x10)) {
        frag = up.n ? up.n : 1;
    }
    struct lx_error err;
    int rc = 0;
    for (size_t pos = 0; pos < up.n && !rc; pos += frag) {
        size_t before = out.len;
        memset(&err, 0, sizeof(err));
        rc = ops->stream_feed(st, up.p + pos, LX_MIN(frag, up.n - pos), &out, &err);
        if (rc && !err.msg[0]) {
            abort();
        }
        (void)before;
    }
    if (!rc) {
        memset(&err, 0, sizeof(err));
        if (ops->stream_end(st, &out, &err) != 0 && !err.msg[0]) {
            abort();
        }
    }
    ops->stream_free(st);
    lx_buf_fini(&framed);

    struct client_check cc;
    check_client_stream(&out, &cc);

    lx_buf_fini(&out);
    fuzz_call_fini(&fc);
    if (lx_alloc_live() != live) {
        abort();
    }
    return 0;
}
