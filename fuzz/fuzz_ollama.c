/*
 * libFuzzer target for the Ollama provider. The first byte holds flags
 * (stream, API key present, which error status to try, the size of the
 * pieces the stream is fed in); the rest is split at 0xFF bytes into a
 * client request body, an upstream response body and an upstream NDJSON
 * stream. The request goes through build_request, the response through
 * translate_response and translate_error, and the stream through
 * stream_feed in pieces, then stream_end.
 *
 * Invariants: a successful translation writes valid JSON (checked with
 * cJSON, unless the output nests deeper than cJSON's limit) and a failed one
 * writes nothing and sets a message; translate_error always succeeds with a
 * 4xx/5xx status; what the stream translation writes parses back as an event
 * stream of JSON objects and "[DONE]", nothing follows [DONE] or an error
 * event, a failed stream_feed adds nothing and sets a message, a stream that
 * stream_end calls complete did end ([DONE] or an error event), and nothing
 * leaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "provider_fuzz.h"
#include "providers/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int statuses[] = {400, 401, 404, 500};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags;
    struct lx_str part[3];
    if (!fuzz_start(data, size, &flags, part)) {
        return 0;
    }

    const struct lx_provider_ops *ops = lx_provider_ops_for(LX_PROVIDER_OLLAMA);
    struct lx_deployment dep;
    memset(&dep, 0, sizeof(dep));
    dep.model_name = "llama";
    dep.id = "d1";
    dep.provider.kind = LX_PROVIDER_OLLAMA;
    dep.provider.default_api_base = "http://localhost:11434";
    dep.upstream_model = "llama3.2";
    struct lx_kv hdr = {"x-proxy", "p"};
    dep.extra_headers = &hdr;
    dep.n_extra_headers = 1;

    struct fuzz_call fc;
    fuzz_call_init(&fc, &dep, part[0], flags & 1, flags & 2 ? "ollama-fuzz" : NULL);

    fuzz_build_request(ops, &fc.call, NULL);
    struct lx_buf out;
    lx_buf_init(&out, 1 << 22);
    fuzz_translate_response(ops, &fc.call, part[1], statuses[(flags >> 2) & 3], &out);

    /* Stream, fed in pieces of 1 to 16 bytes (flags 0xF0: 0 means all at once). */
    struct lx_error err = {0};
    void *state = ops->stream_new(&fc.call);
    if (!state) {
        abort();
    }
    size_t step = (size_t)(flags >> 4);
    size_t off = 0;
    int feed_rc = 0;
    while (off < part[2].n && !feed_rc) {
        size_t k = step ? step : part[2].n;
        k = k < part[2].n - off ? k : part[2].n - off;
        size_t before = out.len;
        memset(&err, 0, sizeof(err));
        feed_rc = ops->stream_feed(state, part[2].p + off, k, &out, &err);
        if (feed_rc && (out.len != before || !err.msg[0])) {
            abort();
        }
        off += k;
    }
    int end_rc = 0;
    if (!feed_rc) {
        size_t before = out.len;
        end_rc = ops->stream_end(state, &out, &err);
        if (out.len != before) {
            abort(); /* NDJSON has nothing to flush at the end */
        }
    }
    ops->stream_free(state);

    struct client_check cc;
    check_client_stream(&out, &cc);
    if (!feed_rc && end_rc == 0 && !cc.ended) {
        abort(); /* complete per stream_end, yet the client saw no end */
    }

    lx_buf_fini(&out);
    fuzz_call_fini(&fc);
    return 0;
}
