/*
 * libFuzzer target for the Anthropic provider. The first byte holds flags
 * (stream, API key present, which error status to try); the rest is split at
 * 0xFF bytes into a client request body, an upstream response body and an
 * upstream event stream. The request goes through build_request, the
 * response through translate_response and translate_error, and the stream,
 * parsed with lx_sse_feed, through translate_event.
 *
 * Invariants: a successful translation writes valid JSON (checked with
 * cJSON, unless the output nests deeper than cJSON's limit) and a failed one
 * writes nothing and sets a message; translate_error always succeeds with a
 * 4xx/5xx status; what the stream translation writes parses back as an event
 * stream of JSON objects and "[DONE]", nothing follows [DONE] or an error
 * event, and nothing leaks.
 */
#include <stdint.h>
#include <string.h>

#include "core/compiler.h"
#include "provider_fuzz.h"
#include "providers/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int statuses[] = {400, 401, 404, 429, 500, 529, 503, 413};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags;
    struct lx_str part[3];
    if (!fuzz_start(data, size, &flags, part)) {
        return 0;
    }

    const struct lx_provider_ops *ops = lx_provider_ops_for(LX_PROVIDER_ANTHROPIC);
    struct lx_deployment dep;
    memset(&dep, 0, sizeof(dep));
    dep.model_name = "claude";
    dep.id = "d1";
    dep.provider.kind = LX_PROVIDER_ANTHROPIC;
    dep.provider.default_api_base = "https://api.anthropic.com";
    dep.upstream_model = "claude-3-5-sonnet-20241022";
    struct lx_kv hdr = {"anthropic-beta", "tools-2024-04-04"};
    dep.extra_headers = &hdr;
    dep.n_extra_headers = 1;

    fuzz_sse_provider(ops, &dep, "sk-ant-fuzz", statuses, LX_ARRAY_LEN(statuses), flags, part);
    return 0;
}
