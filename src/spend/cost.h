/*
 * The cost of one call: token usage times the deployment's prices, as an
 * integer number of nano-USD (1e-9 USD), so that sums of costs are exact.
 *
 * Arithmetic is done in pico-USD (prices are pico-USD per token) and rounded
 * once per call, half up, to nano-USD; it saturates at INT64_MAX instead of
 * overflowing on absurd token counts. Cached prompt tokens are billed at the
 * cache-read price and cache writes at the cache-creation price (each at the
 * input price when the model has none); the rest of the prompt at the input
 * price; completion tokens (reasoning included) at the output price.
 */
#ifndef LX_SPEND_COST_H
#define LX_SPEND_COST_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "spend/prices.h"
#include "spend/usage.h"

/* Nano-USD in one USD. */
#define LX_NANO_PER_USD 1000000000LL

/* Size of a buffer that holds any lx_cost_format_usd output, NUL included. */
#define LX_COST_USD_MAX 32

/* The cost of usage at price p, in pico-USD (saturating). Pure. */
int64_t lx_cost_pico(const struct lx_price *p, const struct lx_usage *u);

/* The same rounded half up to nano-USD (saturating). Pure. */
int64_t lx_cost_nanos(const struct lx_price *p, const struct lx_usage *u);

/*
 * The cost of a call on a deployment: the price lx_price_resolve finds in the
 * built-in table for (dep, upstream_model), times usage. A model with no
 * price costs 0 and logs one warning per model name per process. Any thread.
 */
int64_t lx_cost_for_deployment(const struct lx_deployment *dep, const char *upstream_model,
                               const struct lx_usage *u);

/*
 * Write nano-USD as USD the way LiteLLM prints a cost (Python's str() of a
 * float): the shortest decimal that reads back as the same double, in fixed
 * notation ("0.000123", "0.0", "12.5") when the exponent is in [-4, 16), else
 * in scientific notation ("1.5e-05"). Returns the length written (buf is
 * NUL-terminated; cap >= LX_COST_USD_MAX always suffices).
 */
size_t lx_cost_format_usd(int64_t nanos, char *buf, size_t cap);

#endif
