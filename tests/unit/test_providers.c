/*
 * Unit tests for provider resolution (prefixes, model families, presets) and
 * the OpenAI-compatible request builders (URL, headers, body edits).
 */
#include <cjson/cJSON.h>

#include "lx_test.h"
#include "providers/kind.h"
#include "providers/provider.h"

static struct lx_provider_match parse(const char *model, const char *custom)
{
    struct lx_provider_match m;
    memset(&m, 0, sizeof(m));
    if (!lx_provider_parse_model(lx_str_c(model), lx_str_c(custom), &m)) {
        m.kind = LX_PROVIDER_UNKNOWN;
    }
    return m;
}

LX_TEST(prefixes_and_families)
{
    static const struct {
        const char *model;
        const char *custom;
        enum lx_provider_kind kind;
        const char *name;
        const char *upstream;
        const char *base;
    } cases[] = {
        {"openai/gpt-4o", "", LX_PROVIDER_OPENAI, "openai", "gpt-4o", "https://api.openai.com/v1"},
        {"gpt-4", "", LX_PROVIDER_OPENAI, "openai", "gpt-4", "https://api.openai.com/v1"},
        {"o3-mini", "", LX_PROVIDER_OPENAI, "openai", "o3-mini", "https://api.openai.com/v1"},
        {"text-embedding-3-small", "", LX_PROVIDER_OPENAI, "openai", "text-embedding-3-small",
         "https://api.openai.com/v1"},
        {"claude-3-opus-20240229", "", LX_PROVIDER_ANTHROPIC, "anthropic", "claude-3-opus-20240229",
         "https://api.anthropic.com"},
        {"anthropic/claude-3-5-haiku", "", LX_PROVIDER_ANTHROPIC, "anthropic", "claude-3-5-haiku",
         "https://api.anthropic.com"},
        {"azure/my-dep", "", LX_PROVIDER_AZURE, "azure", "my-dep", NULL},
        {"groq/llama3-70b-8192", "", LX_PROVIDER_OPENAI, "groq", "llama3-70b-8192",
         "https://api.groq.com/openai/v1"},
        {"mistral/mistral-large-latest", "", LX_PROVIDER_OPENAI, "mistral", "mistral-large-latest",
         "https://api.mistral.ai/v1"},
        {"deepseek/deepseek-chat", "", LX_PROVIDER_OPENAI, "deepseek", "deepseek-chat",
         "https://api.deepseek.com/v1"},
        {"together_ai/meta-llama/Llama-3-70b", "", LX_PROVIDER_OPENAI, "together_ai",
         "meta-llama/Llama-3-70b", "https://api.together.xyz/v1"},
        {"openrouter/anthropic/claude-3", "", LX_PROVIDER_OPENAI, "openrouter",
         "anthropic/claude-3", "https://openrouter.ai/api/v1"},
        {"xai/grok-2", "", LX_PROVIDER_OPENAI, "xai", "grok-2", "https://api.x.ai/v1"},
        {"hosted_vllm/llama", "", LX_PROVIDER_OPENAI, "hosted_vllm", "llama", NULL},
        {"gemini/gemini-1.5-pro", "", LX_PROVIDER_GEMINI, "gemini", "gemini-1.5-pro",
         "https://generativelanguage.googleapis.com"},
        {"bedrock/anthropic.claude-3-sonnet-20240229-v1:0", "", LX_PROVIDER_BEDROCK, "bedrock",
         "anthropic.claude-3-sonnet-20240229-v1:0", NULL},
        {"ollama_chat/llama3", "", LX_PROVIDER_OLLAMA, "ollama_chat", "llama3",
         "http://localhost:11434"},
        /* An explicit provider wins and strips its own prefix only. */
        {"my-model", "groq", LX_PROVIDER_OPENAI, "groq", "my-model",
         "https://api.groq.com/openai/v1"},
        {"groq/my-model", "groq", LX_PROVIDER_OPENAI, "groq", "my-model",
         "https://api.groq.com/openai/v1"},
        /* Unknown: no prefix, no family. */
        {"my-local-model", "", LX_PROVIDER_UNKNOWN, NULL, NULL, NULL},
        {"nope/x", "", LX_PROVIDER_UNKNOWN, NULL, NULL, NULL},
        {"x", "nope", LX_PROVIDER_UNKNOWN, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(cases); i++) {
        struct lx_provider_match m = parse(cases[i].model, cases[i].custom);
        LX_CHECK_INT(m.kind, cases[i].kind);
        if (m.kind == LX_PROVIDER_UNKNOWN) {
            continue;
        }
        LX_CHECK_STR(m.name, cases[i].name);
        LX_CHECK_MEM(m.upstream_model.p, m.upstream_model.n, cases[i].upstream);
        if (cases[i].base) {
            LX_CHECK_STR(m.default_api_base, cases[i].base);
        } else {
            LX_CHECK(m.default_api_base == NULL);
        }
    }
}

static struct lx_deployment make_dep(const char *model, const char *api_base)
{
    struct lx_deployment d;
    memset(&d, 0, sizeof(d));
    d.model_name = "group";
    d.model = model;
    lx_provider_parse_model(lx_str_c(model), LX_STR(""), &d.provider);
    d.upstream_model = model + (d.provider.upstream_model.p - model);
    d.api_base = api_base;
    return d;
}

static struct lx_str header(const struct lx_provider_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0) {
            return r->headers[i].value;
        }
    }
    return LX_STR_NULL;
}

LX_TEST(openai_build_request)
{
    char first[1024];
    struct lx_arena arena;
    lx_arena_init(&arena, first, sizeof(first), 4096);
    struct lx_deployment d = make_dep("groq/llama3", "http://10.0.0.1:8000/v1/");
    cJSON *extra = cJSON_Parse("{\"temperature\":0.2,\"max_tokens\":64}");
    d.extra_params = extra;
    const char *body = "{\"model\":\"fast\",\"messages\":[],\"max_tokens\":5,\"seed\":1e400}";
    struct lx_provider_call call = {.endpoint = LX_EP_CHAT,
                                    .dep = &d,
                                    .body = lx_str_c(body),
                                    .api_key = "sk-up",
                                    .upstream_model = d.upstream_model,
                                    .arena = &arena};
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    struct lx_provider_request r = {.body = &out};
    struct lx_error err = {0};
    const struct lx_provider_ops *ops = lx_provider_ops_for(d.provider.kind);
    LX_CHECK_INT(ops->build_request(&call, &r, &err), 0);
    /* The trailing slash of api_base is dropped; the endpoint is appended. */
    LX_CHECK_STR(r.url, "http://10.0.0.1:8000/v1/chat/completions");
    struct lx_str auth = header(&r, "Authorization");
    LX_CHECK_MEM(auth.p, auth.n, "Bearer sk-up");
    /* model substituted, client max_tokens kept, deployment temperature added, 1e400 untouched. */
    LX_CHECK_MEM(out.data, out.len,
                 "{\"model\":\"llama3\",\"messages\":[],\"max_tokens\":5,\"seed\":1e400,"
                 "\"temperature\":0.2}");
    lx_buf_fini(&out);
    cJSON_Delete(extra);
    lx_arena_fini(&arena);
}

LX_TEST(azure_build_request)
{
    char first[1024];
    struct lx_arena arena;
    lx_arena_init(&arena, first, sizeof(first), 4096);
    struct lx_deployment d = make_dep("azure/gpt4-prod", "https://example.openai.azure.com");
    d.api_version = "2024-06-01";
    struct lx_provider_call call = {.endpoint = LX_EP_EMBEDDINGS,
                                    .dep = &d,
                                    .body = LX_STR("{\"input\":\"x\"}"),
                                    .api_key = "az-key",
                                    .upstream_model = d.upstream_model,
                                    .arena = &arena};
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    struct lx_provider_request r = {.body = &out};
    struct lx_error err = {0};
    LX_CHECK_INT(lx_provider_ops_for(LX_PROVIDER_AZURE)->build_request(&call, &r, &err), 0);
    LX_CHECK_STR(r.url, "https://example.openai.azure.com/openai/deployments/gpt4-prod/"
                        "embeddings?api-version=2024-06-01");
    struct lx_str key = header(&r, "api-key");
    LX_CHECK_MEM(key.p, key.n, "az-key");
    LX_CHECK(header(&r, "Authorization").p == NULL);
    LX_CHECK_MEM(out.data, out.len, "{\"input\":\"x\",\"model\":\"gpt4-prod\"}");
    lx_buf_fini(&out);
    lx_arena_fini(&arena);
}

LX_TEST(missing_api_base_and_bad_body)
{
    char first[1024];
    struct lx_arena arena;
    lx_arena_init(&arena, first, sizeof(first), 4096);
    struct lx_deployment d = make_dep("hosted_vllm/llama", NULL);
    struct lx_provider_call call = {.endpoint = LX_EP_CHAT,
                                    .dep = &d,
                                    .body = LX_STR("{\"model\":\"x\"}"),
                                    .upstream_model = d.upstream_model,
                                    .arena = &arena};
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    struct lx_provider_request r = {.body = &out};
    struct lx_error err = {0};
    const struct lx_provider_ops *ops = lx_provider_ops_for(LX_PROVIDER_OPENAI);
    LX_CHECK_INT(ops->build_request(&call, &r, &err), LX_ECONFIG);
    LX_CHECK(strstr(err.msg, "api_base") != NULL);
    d.api_base = "http://h/v1";
    call.body = LX_STR("{\"model\":\"x\",}");
    LX_CHECK_INT(ops->build_request(&call, &r, &err), LX_EINVAL);
    lx_buf_fini(&out);
    lx_arena_fini(&arena);
}

LX_TEST_MAIN(LX_RUN(prefixes_and_families), LX_RUN(openai_build_request),
             LX_RUN(azure_build_request), LX_RUN(missing_api_base_and_bad_body))
