/*
 * The price table: what one token costs on each model llmux knows, in
 * LiteLLM's model_prices_and_context_window.json format (data/model_prices.json,
 * embedded into the binary at build time and parsed once at start).
 *
 * Prices are integers: pico-USD (1e-12 USD) per token, because some prices are
 * fractions of a nano-USD (text-embedding-3-small: 0.02 USD per million tokens
 * is 20,000 pico-USD a token). A price given with more precision than a
 * pico-USD is rounded to the nearest one.
 *
 * The table is immutable once parsed and may be read from any thread.
 */
#ifndef LX_SPEND_PRICES_H
#define LX_SPEND_PRICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/compiler.h"
#include "core/error.h"
#include "core/str.h"

/* Pico-USD in one USD. */
#define LX_PICO_PER_USD 1000000000000LL

struct lx_price {
    int64_t input_pico;           /* input_cost_per_token */
    int64_t output_pico;          /* output_cost_per_token */
    int64_t cache_read_pico;      /* cache_read_input_token_cost; -1 = the input price */
    int64_t cache_creation_pico;  /* cache_creation_input_token_cost; -1 = the input price */
    int64_t max_input_tokens;     /* -1 = unset */
    int64_t max_output_tokens;    /* -1 = unset */
    int64_t max_tokens;           /* -1 = unset */
    const char *litellm_provider; /* NULL = unset; owned by the table */
    const char *mode;             /* "chat", "embedding", "completion"...; NULL = unset */
};

struct lx_prices;

/*
 * Parse a price table (a JSON object of model name -> entry; entries that are
 * not objects, and LiteLLM's "sample_spec", are skipped; unknown fields are
 * ignored). A cost that is not a non-negative number below 1 USD a token, or a
 * token limit that is not a non-negative integer, fails the parse with err
 * naming the model. Returns 0 and *out (free with lx_prices_free), or
 * LX_EINVAL / LX_ENOMEM. Any thread; allocates.
 */
LX_MUST_CHECK int lx_prices_parse(struct lx_str json, struct lx_prices **out, struct lx_error *err);
void lx_prices_free(struct lx_prices *t);

/* Number of models in the table. */
size_t lx_prices_count(const struct lx_prices *t);

/* The entry for an exact model key ("gpt-4o", "gemini/gemini-2.0-flash"), or NULL. Borrowed. */
const struct lx_price *lx_prices_get(const struct lx_prices *t, struct lx_str key);

/*
 * The table shipped in the binary, parsed on first use (thread-safe; call it
 * once at start so no loop thread pays for the parse). Aborts if the embedded
 * file does not parse: the build ships a broken table only if a test missed it.
 */
const struct lx_prices *lx_prices_builtin(void);

/* Free the built-in table (at exit, and between unit tests); not concurrent with readers. */
void lx_prices_builtin_release(void);

/*
 * The price a deployment bills at for `upstream_model` (the model sent
 * upstream, wildcards resolved; NULL means dep->upstream_model). Looked up as
 * LiteLLM does: model_info.base_model (as written, then without its provider
 * prefix), the model as written in litellm_params, "<provider>/<model>",
 * the bare model, and for Bedrock the model without a cross-region inference
 * prefix ("us.", "eu.", "apac.", "jp.", "global."). Then per-deployment
 * overrides apply, litellm_params first, then model_info:
 * input_cost_per_token, output_cost_per_token, cache_read_input_token_cost,
 * cache_creation_input_token_cost.
 *
 * Returns true and fills *out when the table or an override prices the model;
 * false (and *out all zero, caches at the input price) when nothing does.
 * *out_key, when not NULL, gets the table key that matched (borrowed) or NULL.
 */
bool lx_price_resolve(const struct lx_prices *t, const struct lx_deployment *dep,
                      const char *upstream_model, struct lx_price *out, const char **out_key);

/*
 * Log one warning that `model` has no price and costs 0, the first time this
 * process sees that name (at most 4096 names are remembered; later unknown
 * names are not warned about). Returns true when it warned. Any thread.
 */
bool lx_prices_warn_unknown(const char *model);

#endif
