/*
 * Token usage of one LLM call, in OpenAI's terms, as llmux bills it.
 *
 * prompt_tokens counts every input token, cached ones included (OpenAI's
 * convention; the translating providers convert Anthropic's and Bedrock's
 * input_tokens, which exclude cache reads and writes, into it).
 * cache_read_tokens is prompt_tokens_details.cached_tokens (or Anthropic's
 * cache_read_input_tokens), cache_creation_tokens Anthropic's
 * cache_creation_input_tokens; both are parts of prompt_tokens.
 * completion_tokens includes reasoning tokens.
 */
#ifndef LX_SPEND_USAGE_H
#define LX_SPEND_USAGE_H

#include <stdint.h>

#include "core/compiler.h"
#include "core/str.h"

/* Largest token count accepted from an upstream: 2^53, exact in a double. */
#define LX_USAGE_MAX_TOKENS 9007199254740992LL

struct lx_usage {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t cache_read_tokens;
    int64_t cache_creation_tokens;
};

/*
 * Read an OpenAI-format usage object from its raw JSON text (the value of a
 * response's "usage" member, as lx_json_find_top returns it) without building
 * a tree: prompt_tokens, completion_tokens, prompt_tokens_details.cached_tokens,
 * and cache_read_input_tokens / cache_creation_input_tokens when present (a
 * cached_tokens of 0 or absent falls back to cache_read_input_tokens). Absent or
 * null counts are 0. Returns 0; LX_ENOTFOUND when raw is JSON null or empty;
 * LX_EINVAL when it is not an object, or a count is not a number in
 * [0, LX_USAGE_MAX_TOKENS]. On failure *out is zeroed. Any thread.
 */
LX_MUST_CHECK int lx_usage_parse_openai(struct lx_str raw, struct lx_usage *out);

/* prompt_tokens + completion_tokens. */
static inline int64_t lx_usage_total(const struct lx_usage *u)
{
    return u->prompt_tokens + u->completion_tokens;
}

#endif
