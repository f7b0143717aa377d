/*
 * Provider kinds and the mapping from a LiteLLM model string
 * ("openai/gpt-4o", "claude-3-opus-20240229", "azure/my-deployment") to a
 * provider and the model name the provider expects. A pure function over a
 * static table: the config loader calls it to validate model_list at start.
 */
#ifndef LX_PROVIDERS_KIND_H
#define LX_PROVIDERS_KIND_H

#include <stdbool.h>

#include "core/str.h"

enum lx_provider_kind {
    LX_PROVIDER_UNKNOWN = 0,
    LX_PROVIDER_OPENAI,    /* OpenAI and every OpenAI-compatible server */
    LX_PROVIDER_AZURE,     /* Azure OpenAI */
    LX_PROVIDER_ANTHROPIC, /* Anthropic Messages API */
    LX_PROVIDER_GEMINI,    /* Google AI Studio generateContent */
    LX_PROVIDER_BEDROCK,   /* AWS Bedrock Converse */
    LX_PROVIDER_OLLAMA,    /* Ollama /api/chat */
};

struct lx_provider_match {
    enum lx_provider_kind kind;
    /* The preset's name ("openai", "groq", "anthropic"...), a static string. */
    const char *name;
    /* Default api_base of an OpenAI-compatible preset, or NULL. */
    const char *default_api_base;
    /* Environment variable that holds the provider key by default, or NULL. */
    const char *default_key_env;
    /* The model name sent upstream: the input without the provider prefix. */
    struct lx_str upstream_model;
};

/*
 * Resolve a model string. `custom_provider` (litellm_params.custom_llm_provider,
 * may be empty) overrides the prefix. Returns true and fills out, or false
 * when neither a known prefix nor a known model family matches.
 */
bool lx_provider_parse_model(struct lx_str model, struct lx_str custom_provider,
                             struct lx_provider_match *out);

/* "openai", "anthropic", ...: the kind's canonical name. */
const char *lx_provider_kind_name(enum lx_provider_kind kind);

#endif
