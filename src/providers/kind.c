/*
 * The provider prefix table. Prefixes follow LiteLLM's names so existing
 * configs resolve unchanged; OpenAI-compatible presets differ only in their
 * default api_base and key variable.
 */
#include "providers/kind.h"

#include "core/compiler.h"

struct preset {
    const char *prefix;
    enum lx_provider_kind kind;
    const char *api_base;
    const char *key_env;
};

static const struct preset presets[] = {
    {"openai", LX_PROVIDER_OPENAI, "https://api.openai.com/v1", "OPENAI_API_KEY"},
    {"text-completion-openai", LX_PROVIDER_OPENAI, "https://api.openai.com/v1", "OPENAI_API_KEY"},
    {"azure", LX_PROVIDER_AZURE, NULL, "AZURE_API_KEY"},
    {"azure_ai", LX_PROVIDER_OPENAI, NULL, "AZURE_AI_API_KEY"},
    {"anthropic", LX_PROVIDER_ANTHROPIC, "https://api.anthropic.com", "ANTHROPIC_API_KEY"},
    {"gemini", LX_PROVIDER_GEMINI, "https://generativelanguage.googleapis.com", "GEMINI_API_KEY"},
    {"bedrock", LX_PROVIDER_BEDROCK, NULL, NULL},
    {"ollama", LX_PROVIDER_OLLAMA, "http://localhost:11434", NULL},
    {"ollama_chat", LX_PROVIDER_OLLAMA, "http://localhost:11434", NULL},
    {"groq", LX_PROVIDER_OPENAI, "https://api.groq.com/openai/v1", "GROQ_API_KEY"},
    {"mistral", LX_PROVIDER_OPENAI, "https://api.mistral.ai/v1", "MISTRAL_API_KEY"},
    {"deepseek", LX_PROVIDER_OPENAI, "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"},
    {"together_ai", LX_PROVIDER_OPENAI, "https://api.together.xyz/v1", "TOGETHERAI_API_KEY"},
    {"fireworks_ai", LX_PROVIDER_OPENAI, "https://api.fireworks.ai/inference/v1",
     "FIREWORKS_AI_API_KEY"},
    {"openrouter", LX_PROVIDER_OPENAI, "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"},
    {"xai", LX_PROVIDER_OPENAI, "https://api.x.ai/v1", "XAI_API_KEY"},
    {"perplexity", LX_PROVIDER_OPENAI, "https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"},
    {"hosted_vllm", LX_PROVIDER_OPENAI, NULL, "HOSTED_VLLM_API_KEY"},
    {"lm_studio", LX_PROVIDER_OPENAI, "http://localhost:1234/v1", "LM_STUDIO_API_KEY"},
};

/* Model families recognised without a prefix, as LiteLLM does. */
static const struct {
    const char *prefix;
    const char *preset;
} families[] = {
    {"gpt-", "openai"},
    {"chatgpt-", "openai"},
    {"o1", "openai"},
    {"o3", "openai"},
    {"o4", "openai"},
    {"text-embedding-", "openai"},
    {"davinci", "openai"},
    {"babbage", "openai"},
    {"omni-moderation", "openai"},
    {"text-moderation", "openai"},
    {"dall-e", "openai"},
    {"whisper", "openai"},
    {"tts-", "openai"},
    {"ft:gpt-", "openai"},
    {"claude-", "anthropic"},
    {"claude", "anthropic"},
};

static const struct preset *find_preset(struct lx_str name)
{
    for (size_t i = 0; i < LX_ARRAY_LEN(presets); i++) {
        if (lx_str_eq_c(name, presets[i].prefix)) {
            return &presets[i];
        }
    }
    return NULL;
}

static void fill(struct lx_provider_match *out, const struct preset *p, struct lx_str model)
{
    out->kind = p->kind;
    out->name = p->prefix;
    out->default_api_base = p->api_base;
    out->default_key_env = p->key_env;
    out->upstream_model = model;
}

bool lx_provider_parse_model(struct lx_str model, struct lx_str custom_provider,
                             struct lx_provider_match *out)
{
    const struct preset *p;
    if (custom_provider.n) {
        p = find_preset(custom_provider);
        if (!p) {
            return false;
        }
        /* With an explicit provider the prefix, if it names the same one, is still stripped. */
        struct lx_str m = model;
        if (m.n > custom_provider.n + 1 && lx_str_has_prefix(m, custom_provider) &&
            m.p[custom_provider.n] == '/') {
            m = lx_str_sub(m, custom_provider.n + 1);
        }
        fill(out, p, m);
        return true;
    }
    const char *slash = memchr(model.p, '/', model.n);
    if (slash) {
        struct lx_str prefix = {model.p, (size_t)(slash - model.p)};
        p = find_preset(prefix);
        if (p) {
            fill(out, p, lx_str_sub(model, prefix.n + 1));
            return true;
        }
    }
    for (size_t i = 0; i < LX_ARRAY_LEN(families); i++) {
        if (lx_str_has_prefix(model, lx_str_c(families[i].prefix))) {
            fill(out, find_preset(lx_str_c(families[i].preset)), model);
            return true;
        }
    }
    return false;
}

const char *lx_provider_kind_name(enum lx_provider_kind kind)
{
    switch (kind) {
    case LX_PROVIDER_OPENAI:
        return "openai";
    case LX_PROVIDER_AZURE:
        return "azure";
    case LX_PROVIDER_ANTHROPIC:
        return "anthropic";
    case LX_PROVIDER_GEMINI:
        return "gemini";
    case LX_PROVIDER_BEDROCK:
        return "bedrock";
    case LX_PROVIDER_OLLAMA:
        return "ollama";
    default:
        return "unknown";
    }
}
