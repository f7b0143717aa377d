/*
 * OpenAI and every OpenAI-compatible server (groq, mistral, deepseek, vLLM,
 * ... : one preset row each in kind.c). The client's body is forwarded byte
 * for byte except for two edits made by lx_json_rewrite: `model` becomes the
 * deployment's upstream model name, and litellm_params request defaults
 * (temperature, max_tokens, ...) are added when the client did not set them.
 */
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "providers/provider.h"
#include "providers/provider_util.h"

static const char *endpoint_suffix(enum lx_endpoint ep)
{
    switch (ep) {
    case LX_EP_COMPLETIONS:
        return "/completions";
    case LX_EP_EMBEDDINGS:
        return "/embeddings";
    default:
        return "/chat/completions";
    }
}

/*
 * Whether to ask the upstream for the usage chunk of a stream
 * (stream_options.include_usage, OpenAI's chat and legacy completions) that
 * the client did not ask for: llmux bills every stream from the usage the
 * provider reports. Not for servers known to reject the parameter: Mistral's
 * API refuses unknown fields (and sends usage in its last chunk anyway), and
 * Azure accepts stream_options only from API version 2024-09-01-preview.
 */
static bool wants_usage_option(const struct lx_provider_call *call)
{
    if (!call->stream || call->include_usage || call->endpoint == LX_EP_EMBEDDINGS) {
        return false;
    }
    const struct lx_deployment *dep = call->dep;
    const char *name = dep->provider.name ? dep->provider.name : "";
    if (!strcmp(name, "mistral") || !strcmp(name, "codestral")) {
        return false;
    }
    if (dep->provider.kind == LX_PROVIDER_AZURE && dep->api_version &&
        strncmp(dep->api_version, "2024-09-01", 10) < 0) {
        return false;
    }
    return true;
}

/* "model", the usage option of streams, and one SET_IF_ABSENT edit per deployment default. */
static int rewrite_body(const struct lx_provider_call *call, struct lx_buf *out,
                        struct lx_error *err)
{
    const struct lx_deployment *dep = call->dep;
    struct lx_json_edit edits[LX_JSON_MAX_EDITS];
    size_t n = 0;
    struct lx_buf model_json;
    lx_buf_init(&model_json, 4096);
    int rc = lx_json_append_string(&model_json, lx_str_c(call->upstream_model));
    if (rc) {
        lx_buf_fini(&model_json);
        return lx_error_set(err, rc, "model name too long");
    }
    edits[n++] = (struct lx_json_edit){LX_STR("model"), lx_buf_str(&model_json), LX_JSON_SET};
    struct lx_buf so_json;
    lx_buf_init(&so_json, 64 + call->stream_options.n);
    if (wants_usage_option(call)) {
        struct lx_str so = call->stream_options;
        rc = LX_EINVAL;
        if (so.p && so.p[0] == '{') {
            /* Keep the client's other stream options; only include_usage changes. */
            const struct lx_json_edit iu = {LX_STR("include_usage"), LX_STR("true"), LX_JSON_SET};
            rc = lx_json_rewrite(so, &iu, 1, &so_json);
        }
        if (rc) {
            lx_buf_reset(&so_json);
            rc = lx_buf_append_c(&so_json, "{\"include_usage\":true}");
        }
        if (rc == 0) {
            edits[n++] =
                (struct lx_json_edit){LX_STR("stream_options"), lx_buf_str(&so_json), LX_JSON_SET};
        }
    }
    char *printed[LX_JSON_MAX_EDITS];
    size_t n_printed = 0;
    if (dep->extra_params) {
        const cJSON *it;
        cJSON_ArrayForEach(it, dep->extra_params)
        {
            if (n == LX_JSON_MAX_EDITS || !it->string) {
                break;
            }
            char *v = cJSON_PrintUnformatted(it);
            if (!v) {
                continue;
            }
            printed[n_printed++] = v;
            edits[n++] =
                (struct lx_json_edit){lx_str_c(it->string), lx_str_c(v), LX_JSON_SET_IF_ABSENT};
        }
    }
    /* Room for the new model name and the defaults: no doubling reallocations on the hot path. */
    if (lx_buf_reserve(out, call->body.n + model_json.len + 64 + 256 * (n - 1))) {
        /* Over the cap or out of memory: the rewrite below grows the buffer as needed. */
    }
    rc = lx_json_rewrite(call->body, edits, n, out);
    for (size_t i = 0; i < n_printed; i++) {
        cJSON_free(printed[i]);
    }
    lx_buf_fini(&model_json);
    lx_buf_fini(&so_json);
    if (rc == LX_ETOOBIG) {
        return lx_error_set(err, rc, "Request body too large");
    }
    if (rc) {
        return lx_error_set(err, rc, "Request body is not a valid JSON object");
    }
    return 0;
}

static void add_common_headers(const struct lx_provider_call *call, struct lx_provider_request *out)
{
    const struct lx_deployment *dep = call->dep;
    lx_provider__add_header(out, "Content-Type", LX_STR("application/json"));
    lx_provider__add_header(out, "User-Agent", LX_STR("llmux/" LX_VERSION));
    for (size_t i = 0; i < dep->n_extra_headers; i++) {
        if (dep->extra_headers[i].value) {
            lx_provider__add_header(out, dep->extra_headers[i].key,
                                    lx_str_c(dep->extra_headers[i].value));
        }
    }
}

static int openai_build(const struct lx_provider_call *call, struct lx_provider_request *out,
                        struct lx_error *err)
{
    const struct lx_deployment *dep = call->dep;
    struct lx_str base = lx_provider_api_base(dep);
    if (!base.p) {
        return lx_error_set(err, LX_ECONFIG,
                            "Deployment of model group '%s' has no api_base: set "
                            "litellm_params.api_base",
                            dep->model_name);
    }
    out->url =
        lx_arena_printf(call->arena, "%.*s%s", LX_STR_FMT(base), endpoint_suffix(call->endpoint));
    add_common_headers(call, out);
    if (call->api_key) {
        lx_provider__add_header(out, "Authorization",
                                lx_str_c(lx_arena_printf(call->arena, "Bearer %s", call->api_key)));
    }
    if (dep->organization) {
        lx_provider__add_header(out, "OpenAI-Organization", lx_str_c(dep->organization));
    }
    return rewrite_body(call, out->body, err);
}

static int azure_build(const struct lx_provider_call *call, struct lx_provider_request *out,
                       struct lx_error *err)
{
    const struct lx_deployment *dep = call->dep;
    struct lx_str base = lx_provider_api_base(dep);
    if (!base.p) {
        return lx_error_set(err, LX_ECONFIG, "Azure deployment of model group '%s' has no api_base",
                            dep->model_name);
    }
    /* https://learn.microsoft.com/azure/ai-services/openai/reference: the deployment is in the
     * path. */
    const char *version = dep->api_version ? dep->api_version : "2024-10-21";
    out->url = lx_arena_printf(call->arena, "%.*s/openai/deployments/%s%s?api-version=%s",
                               LX_STR_FMT(base), call->upstream_model,
                               endpoint_suffix(call->endpoint), version);
    add_common_headers(call, out);
    if (call->api_key) {
        lx_provider__add_header(out, "api-key", lx_str_c(call->api_key));
    }
    return rewrite_body(call, out->body, err);
}

static const struct lx_provider_ops openai_ops = {.name = "openai", .build_request = openai_build};
static const struct lx_provider_ops azure_ops = {.name = "azure", .build_request = azure_build};

const struct lx_provider_ops *lx_provider_ops_for(enum lx_provider_kind kind)
{
    switch (kind) {
    case LX_PROVIDER_OPENAI:
        return &openai_ops;
    case LX_PROVIDER_AZURE:
        return &azure_ops;
    case LX_PROVIDER_ANTHROPIC:
        return &lx_provider_anthropic;
    case LX_PROVIDER_BEDROCK:
        return &lx_provider_bedrock;
    case LX_PROVIDER_GEMINI:
        return &lx_provider_gemini;
    case LX_PROVIDER_OLLAMA:
        return &lx_provider_ollama;
    default:
        return NULL;
    }
}

struct lx_str lx_provider_api_base(const struct lx_deployment *dep)
{
    struct lx_str b = lx_str_c(dep->api_base ? dep->api_base : dep->provider.default_api_base);
    while (b.n && b.p[b.n - 1] == '/') {
        b.n--;
    }
    return b.p && b.n ? b : LX_STR_NULL;
}
