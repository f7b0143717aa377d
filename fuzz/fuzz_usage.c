/*
 * libFuzzer target for what llmux reads to bill a request: OpenAI-format
 * usage objects from upstream answers (lx_usage_parse_openai, a tree-less
 * scan of untrusted bytes) and price tables (lx_prices_parse). The first
 * byte picks the parser; the rest is the input.
 *
 * Usage: a parse that succeeds gives counts in [0, 2^53], and when cJSON reads
 * the same text as an object with integer counts they agree; the cost of the
 * result at a fixed price is never negative and formats to a decimal that
 * reads back within a nano-USD. Price tables: every priced entry is
 * non-negative, looking up each key cJSON sees finds an entry (or the key was
 * skipped), and pricing the parsed usage of the input never overflows.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "spend/cost.h"
#include "spend/prices.h"
#include "spend/usage.h"

static void check_count(const cJSON *obj, const char *key, int64_t got)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 1e15 &&
        v->valuedouble == floor(v->valuedouble) && (double)got != v->valuedouble) {
        abort();
    }
}

static void fuzz_usage(const char *in, size_t n)
{
    struct lx_usage u;
    int rc = lx_usage_parse_openai((struct lx_str){in, n}, &u);
    if (rc) {
        if (u.prompt_tokens || u.completion_tokens || u.cache_read_tokens ||
            u.cache_creation_tokens) {
            abort(); /* failure leaves *out zeroed */
        }
        return;
    }
    const int64_t *c[] = {&u.prompt_tokens, &u.completion_tokens, &u.cache_read_tokens,
                          &u.cache_creation_tokens};
    for (size_t i = 0; i < 4; i++) {
        if (*c[i] < 0 || *c[i] > LX_USAGE_MAX_TOKENS) {
            abort();
        }
    }
    cJSON *j = cJSON_ParseWithLength(in, n);
    if (cJSON_IsObject(j)) {
        check_count(j, "prompt_tokens", u.prompt_tokens);
        check_count(j, "completion_tokens", u.completion_tokens);
    }
    cJSON_Delete(j);
    struct lx_price p = {2500000, 10000000, 1250000, 3750000, -1, -1, -1, NULL, NULL};
    int64_t nanos = lx_cost_nanos(&p, &u);
    if (nanos < 0) {
        abort();
    }
    char buf[LX_COST_USD_MAX];
    size_t len = lx_cost_format_usd(nanos, buf, sizeof(buf));
    if (len == 0 || len >= sizeof(buf) || strlen(buf) != len) {
        abort();
    }
    double back = strtod(buf, NULL) * 1e9;
    if (fabs(back - (double)nanos) > 1.0 + (double)nanos * 1e-15) {
        abort();
    }
}

static void fuzz_table(const char *in, size_t n)
{
    struct lx_prices *t = NULL;
    struct lx_error err = {0};
    if (lx_prices_parse((struct lx_str){in, n}, &t, &err) != 0) {
        if (t || !err.msg[0]) {
            abort();
        }
        return;
    }
    cJSON *j = cJSON_ParseWithLength(in, n);
    const cJSON *e;
    cJSON_ArrayForEach(e, j)
    {
        if (!cJSON_IsObject(e) || !e->string || !e->string[0] ||
            !strcmp(e->string, "sample_spec")) {
            continue;
        }
        const struct lx_price *p = lx_prices_get(t, lx_str_c(e->string));
        if (!p || p->input_pico < 0 || p->output_pico < 0 || p->cache_read_pico < -1 ||
            p->cache_creation_pico < -1) {
            abort();
        }
        struct lx_usage u = {LX_USAGE_MAX_TOKENS, LX_USAGE_MAX_TOKENS, 7, 3};
        if (lx_cost_nanos(p, &u) < 0) {
            abort();
        }
    }
    cJSON_Delete(j);
    lx_prices_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int hooked;
    if (!hooked) {
        lx_alloc_hook_cjson();
        hooked = 1;
    }
    if (size < 1) {
        return 0;
    }
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] & 1) {
        fuzz_table(in, n);
    } else {
        fuzz_usage(in, n);
    }
    return 0;
}
