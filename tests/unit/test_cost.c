/*
 * Prices, usage and cost: the integer arithmetic (exactness, rounding once,
 * cached tokens, saturation), LiteLLM-style USD formatting, price table
 * parsing and lookups (provider prefix, bare model, Azure base_model,
 * Bedrock ids, per-deployment overrides, unknown models), OpenAI usage
 * objects read without a tree, and the usage each translating provider's
 * stream reports whether or not the client asked for the usage chunk.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/arena.h"
#include "core/buf.h"
#include "http/sse.h"
#include "json/json.h"
#include "log/log.h"
#include "lx_test.h"
#include "providers/eventstream.h"
#include "providers/provider.h"
#include "spend/cost.h"
#include "spend/prices.h"
#include "spend/usage.h"

static struct lx_deployment dep_for(const char *model)
{
    struct lx_deployment d;
    memset(&d, 0, sizeof(d));
    d.input_cost_per_token = -1;
    d.output_cost_per_token = -1;
    d.model = model;
    d.model_name = "group";
    if (!lx_provider_parse_model(lx_str_c(model), LX_STR_NULL, &d.provider)) {
        d.provider.kind = LX_PROVIDER_OPENAI;
        d.provider.name = "openai";
        d.provider.upstream_model = lx_str_c(model);
    }
    d.upstream_model = d.provider.upstream_model.p;
    return d;
}

static struct lx_price price(int64_t in, int64_t out, int64_t cr, int64_t cc)
{
    return (struct lx_price){in, out, cr, cc, -1, -1, -1, NULL, NULL};
}

/* ---- arithmetic ---- */

LX_TEST(cost_exact_integers)
{
    /* gpt-4o: 2.5 USD / 1M input, 10 USD / 1M output. */
    struct lx_price p = price(2500000, 10000000, 1250000, -1);
    struct lx_usage u = {.prompt_tokens = 1000, .completion_tokens = 500};
    LX_CHECK_INT(lx_cost_pico(&p, &u), 1000LL * 2500000 + 500LL * 10000000);
    LX_CHECK_INT(lx_cost_nanos(&p, &u), 7500000); /* 0.0075 USD */
    /* A million requests of the same sum exactly, which doubles would not. */
    int64_t total = 0;
    for (int i = 0; i < 1000000; i++) {
        total += lx_cost_nanos(&p, &u);
    }
    LX_CHECK_INT(total, 7500000000000LL);
    struct lx_usage zero = {0};
    LX_CHECK_INT(lx_cost_nanos(&p, &zero), 0);
}

LX_TEST(cost_rounds_once_half_up)
{
    /* text-embedding-3-small: 20,000 pico-USD a token. */
    struct lx_price p = price(20000, 0, -1, -1);
    struct lx_usage u = {.prompt_tokens = 1};
    LX_CHECK_INT(lx_cost_nanos(&p, &u), 20);
    /* 0.15 USD / 1M = 150,000 pico: 3 tokens = 450,000 pico = 450 nano. */
    p = price(150000, 600000, -1, -1);
    u = (struct lx_usage){.prompt_tokens = 3};
    LX_CHECK_INT(lx_cost_nanos(&p, &u), 450);
    /* Sub-nano prices round once per request, not per token: 7 x 37.5 pico = 262.5 pico. */
    p = price(37500 / 1000, 0, -1, -1); /* 37 pico */
    p.input_pico = 37;
    u = (struct lx_usage){.prompt_tokens = 13}; /* 481 pico -> 0 nano */
    LX_CHECK_INT(lx_cost_nanos(&p, &u), 0);
    u.prompt_tokens = 14; /* 518 pico -> 1 nano (half up) */
    LX_CHECK_INT(lx_cost_nanos(&p, &u), 1);
    p.input_pico = 500;
    u.prompt_tokens = 1; /* exactly half */
    LX_CHECK_INT(lx_cost_nanos(&p, &u), 1);
    p.input_pico = 499;
    LX_CHECK_INT(lx_cost_nanos(&p, &u), 0);
}

LX_TEST(cost_cached_tokens)
{
    /* claude-3-5-sonnet: input 3, output 15, cache read 0.3, cache write 3.75 USD / 1M. */
    struct lx_price p = price(3000000, 15000000, 300000, 3750000);
    /* prompt_tokens include cache reads and writes (OpenAI's convention). */
    struct lx_usage u = {.prompt_tokens = 1000 + 2000 + 400,
                         .completion_tokens = 100,
                         .cache_read_tokens = 2000,
                         .cache_creation_tokens = 400};
    int64_t want = 1000LL * 3000000 + 2000LL * 300000 + 400LL * 3750000 + 100LL * 15000000;
    LX_CHECK_INT(lx_cost_pico(&p, &u), want);
    LX_CHECK_INT(lx_cost_nanos(&p, &u), want / 1000);
    /* No cache prices: cached tokens cost the input price. */
    struct lx_price q = price(3000000, 15000000, -1, -1);
    LX_CHECK_INT(lx_cost_pico(&q, &u), 3400LL * 3000000 + 100LL * 15000000);
    /* Inconsistent reports (cached > prompt) never bill more than the prompt. */
    struct lx_usage bad = {
        .prompt_tokens = 10, .cache_read_tokens = 50, .cache_creation_tokens = 7};
    LX_CHECK_INT(lx_cost_pico(&p, &bad), 10LL * 300000);
}

LX_TEST(cost_saturates)
{
    struct lx_price p = price(100000000, 100000000, -1, -1);
    struct lx_usage u = {.prompt_tokens = LX_USAGE_MAX_TOKENS,
                         .completion_tokens = LX_USAGE_MAX_TOKENS};
    LX_CHECK_INT(lx_cost_pico(&p, &u), INT64_MAX);
    LX_CHECK_INT(lx_cost_nanos(&p, &u), INT64_MAX / 1000);
    struct lx_usage neg = {.prompt_tokens = -5, .completion_tokens = -1};
    LX_CHECK_INT(lx_cost_pico(&p, &neg), 0);
}

static int fmt_is(int64_t nanos, const char *want)
{
    char buf[LX_COST_USD_MAX];
    size_t n = lx_cost_format_usd(nanos, buf, sizeof(buf));
    if (n != strlen(want) || strcmp(buf, want) != 0) {
        fprintf(stderr, "  format(%lld) = \"%s\", want \"%s\"\n", (long long)nanos, buf, want);
        return 0;
    }
    return 1;
}

LX_TEST(format_like_python)
{
    /* Python: str(x) of the float x = nanos / 1e9. */
    LX_CHECK(fmt_is(0, "0.0"));
    LX_CHECK(fmt_is(-3, "0.0"));
    LX_CHECK(fmt_is(123000, "0.000123"));
    LX_CHECK(fmt_is(100000, "0.0001"));
    LX_CHECK(fmt_is(15000, "1.5e-05"));
    LX_CHECK(fmt_is(10000, "1e-05"));
    LX_CHECK(fmt_is(4050, "4.05e-06"));
    LX_CHECK(fmt_is(1, "1e-09"));
    LX_CHECK(fmt_is(7500000, "0.0075"));
    LX_CHECK(fmt_is(1000000000, "1.0"));
    LX_CHECK(fmt_is(12500000000, "12.5"));
    LX_CHECK(fmt_is(123456789, "0.123456789"));
    LX_CHECK(fmt_is(100000000000000000, "100000000.0"));
    LX_CHECK(fmt_is(INT64_MAX / 1000, "9223372.036854776"));
    /* Against Python's own str() of the same floats (generated with CPython 3). */
    LX_CHECK(fmt_is(1LL, "1e-09"));
    LX_CHECK(fmt_is(9LL, "9e-09"));
    LX_CHECK(fmt_is(10LL, "1e-08"));
    LX_CHECK(fmt_is(99LL, "9.9e-08"));
    LX_CHECK(fmt_is(100LL, "1e-07"));
    LX_CHECK(fmt_is(123LL, "1.23e-07"));
    LX_CHECK(fmt_is(4050LL, "4.05e-06"));
    LX_CHECK(fmt_is(15000LL, "1.5e-05"));
    LX_CHECK(fmt_is(999999999LL, "0.999999999"));
    LX_CHECK(fmt_is(1000000000LL, "1.0"));
    LX_CHECK(fmt_is(1234567890123LL, "1234.567890123"));
    LX_CHECK(fmt_is(999999999999999LL, "999999.999999999"));
    LX_CHECK(fmt_is(1000000000000000LL, "1000000.0"));
    LX_CHECK(fmt_is(123456789012345678LL, "123456789.01234569"));
    LX_CHECK(fmt_is(9007199254740992LL, "9007199.254740993"));
    LX_CHECK(fmt_is(9007199254740993LL, "9007199.254740993"));
    LX_CHECK(fmt_is(9223372036854775LL, "9223372.036854776"));
    LX_CHECK(fmt_is(74607LL, "7.4607e-05"));
    LX_CHECK(fmt_is(262LL, "2.62e-07"));
    LX_CHECK(fmt_is(8118LL, "8.118e-06"));
    LX_CHECK(fmt_is(733629687074914LL, "733629.687074914"));
    LX_CHECK(fmt_is(3692764448279LL, "3692.764448279"));
    LX_CHECK(fmt_is(7994LL, "7.994e-06"));
    LX_CHECK(fmt_is(7LL, "7e-09"));
    LX_CHECK(fmt_is(299647660378LL, "299.647660378"));
    LX_CHECK(fmt_is(812381323017540LL, "812381.32301754"));
    LX_CHECK(fmt_is(79343271LL, "0.079343271"));
    LX_CHECK(fmt_is(5201LL, "5.201e-06"));
    LX_CHECK(fmt_is(1LL, "1e-09"));
    LX_CHECK(fmt_is(9LL, "9e-09"));
    LX_CHECK(fmt_is(7LL, "7e-09"));
    LX_CHECK(fmt_is(7081941LL, "0.007081941"));
    LX_CHECK(fmt_is(9LL, "9e-09"));
    LX_CHECK(fmt_is(58772278LL, "0.058772278"));
    LX_CHECK(fmt_is(4198878367200395LL, "4198878.367200395"));
    LX_CHECK(fmt_is(744020906464LL, "744.020906464"));
    LX_CHECK(fmt_is(61686933LL, "0.061686933"));
    char small[4];
    LX_CHECK_INT(lx_cost_format_usd(123000, small, sizeof(small)), 3);
    LX_CHECK_STR(small, "0.0");
}

/* ---- usage ---- */

LX_TEST(usage_openai_objects)
{
    struct lx_usage u;
    LX_CHECK_INT(lx_usage_parse_openai(LX_STR("{\"prompt_tokens\":12,\"completion_tokens\":3,"
                                              "\"total_tokens\":15}"),
                                       &u),
                 0);
    LX_CHECK_INT(u.prompt_tokens, 12);
    LX_CHECK_INT(u.completion_tokens, 3);
    LX_CHECK_INT(u.cache_read_tokens, 0);
    LX_CHECK_INT(lx_usage_total(&u), 15);
    /* OpenAI cached tokens and reasoning details. */
    LX_CHECK_INT(lx_usage_parse_openai(
                     LX_STR(" { \"prompt_tokens\" : 2006, \"completion_tokens\": 300,"
                            "\"prompt_tokens_details\":{\"cached_tokens\":1920,\"audio_tokens\":0},"
                            "\"completion_tokens_details\":{\"reasoning_tokens\":128}} "),
                     &u),
                 0);
    LX_CHECK_INT(u.prompt_tokens, 2006);
    LX_CHECK_INT(u.cache_read_tokens, 1920);
    LX_CHECK_INT(u.completion_tokens, 300);
    /* Anthropic-style fields as llmux's translators and LiteLLM write them. */
    LX_CHECK_INT(lx_usage_parse_openai(LX_STR("{\"prompt_tokens\":3400,\"completion_tokens\":100,"
                                              "\"prompt_tokens_details\":{\"cached_tokens\":null},"
                                              "\"cache_creation_input_tokens\":400,"
                                              "\"cache_read_input_tokens\":2000}"),
                                       &u),
                 0);
    LX_CHECK_INT(u.cache_read_tokens, 2000);
    LX_CHECK_INT(u.cache_creation_tokens, 400);
    /* Integral numbers written with a fraction; null counts. */
    LX_CHECK_INT(
        lx_usage_parse_openai(LX_STR("{\"prompt_tokens\":12.0,\"completion_tokens\":null}"), &u),
        0);
    LX_CHECK_INT(u.prompt_tokens, 12);
    LX_CHECK_INT(u.completion_tokens, 0);
    LX_CHECK_INT(lx_usage_parse_openai(LX_STR("{}"), &u), 0);
    LX_CHECK_INT(u.prompt_tokens, 0);
}

LX_TEST(usage_rejects)
{
    struct lx_usage u;
    LX_CHECK_INT(lx_usage_parse_openai(LX_STR("null"), &u), LX_ENOTFOUND);
    LX_CHECK_INT(lx_usage_parse_openai(LX_STR(""), &u), LX_ENOTFOUND);
    static const char *const bad[] = {
        "[1,2]",
        "\"usage\"",
        "{\"prompt_tokens\":-1}",
        "{\"prompt_tokens\":1.5}",
        "{\"prompt_tokens\":\"12\"}",
        "{\"prompt_tokens\":9007199254740993}",
        "{\"prompt_tokens\":1e300}",
        "{\"completion_tokens\":true}",
        "{\"prompt_tokens_details\":[]}",
        "{\"prompt_tokens_details\":{\"cached_tokens\":-3}}",
        "{\"prompt_tokens\":1",
        "{\"prompt_tokens\":01}",
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(bad); i++) {
        u.prompt_tokens = 77;
        int rc = lx_usage_parse_openai(lx_str_c(bad[i]), &u);
        if (rc != LX_EINVAL || u.prompt_tokens != 0) {
            fprintf(stderr, "  accepted %s (rc %d)\n", bad[i], rc);
            LX_CHECK(!"bad usage accepted");
        }
    }
    /* The largest count accepted is 2^53. */
    LX_CHECK_INT(lx_usage_parse_openai(LX_STR("{\"prompt_tokens\":9007199254740992}"), &u), 0);
    LX_CHECK_INT(u.prompt_tokens, LX_USAGE_MAX_TOKENS);
}

/* ---- the price table ---- */

LX_TEST(table_parse)
{
    struct lx_prices *t = NULL;
    struct lx_error err = {0};
    const char *json =
        "{\"sample_spec\":{\"input_cost_per_token\":\"x\"},"
        "\"m1\":{\"input_cost_per_token\":2.5e-06,\"output_cost_per_token\":1e-05,"
        "\"cache_read_input_token_cost\":1.25e-06,\"max_input_tokens\":128000,"
        "\"max_output_tokens\":16384,\"max_tokens\":16384,"
        "\"litellm_provider\":\"openai\",\"mode\":\"chat\",\"supports_vision\":true},"
        "\"emb\":{\"input_cost_per_token\":2e-08,\"mode\":\"embedding\"},"
        "\"odd\":{\"input_cost_per_token\":5.46875e-07},"
        "\"m1\":{\"input_cost_per_token\":1},"
        "\"not-an-object\":3}";
    LX_CHECK_INT(lx_prices_parse(lx_str_c(json), &t, &err), 0);
    LX_CHECK_INT(lx_prices_count(t), 3);
    const struct lx_price *p = lx_prices_get(t, LX_STR("m1"));
    LX_CHECK(p != NULL);
    if (p) {
        LX_CHECK_INT(p->input_pico, 2500000);
        LX_CHECK_INT(p->output_pico, 10000000);
        LX_CHECK_INT(p->cache_read_pico, 1250000);
        LX_CHECK_INT(p->cache_creation_pico, -1);
        LX_CHECK_INT(p->max_input_tokens, 128000);
        LX_CHECK_INT(p->max_output_tokens, 16384);
        LX_CHECK_STR(p->litellm_provider, "openai");
        LX_CHECK_STR(p->mode, "chat");
    }
    p = lx_prices_get(t, LX_STR("emb"));
    LX_CHECK(p && p->input_pico == 20000 && p->output_pico == 0 && p->max_tokens == -1);
    p = lx_prices_get(t, LX_STR("odd"));
    LX_CHECK(p && p->input_pico == 546875);
    LX_CHECK(lx_prices_get(t, LX_STR("sample_spec")) == NULL);
    LX_CHECK(lx_prices_get(t, LX_STR("m")) == NULL);
    LX_CHECK(lx_prices_get(t, LX_STR("")) == NULL);
    lx_prices_free(t);

    static const char *const bad[] = {
        "[]",
        "{",
        "{\"m\":{\"input_cost_per_token\":-1e-06}}",
        "{\"m\":{\"output_cost_per_token\":\"1e-06\"}}",
        "{\"m\":{\"input_cost_per_token\":2}}",
        "{\"m\":{\"max_tokens\":1.5}}",
        "{\"m\":{\"max_input_tokens\":-4}}",
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(bad); i++) {
        t = (struct lx_prices *)&err;
        if (lx_prices_parse(lx_str_c(bad[i]), &t, &err) != LX_EINVAL || t != NULL) {
            fprintf(stderr, "  accepted %s\n", bad[i]);
            LX_CHECK(!"bad table accepted");
        }
    }
    LX_CHECK(strstr(err.msg, "'m'") != NULL);
}

static int64_t cost_of(const struct lx_deployment *d, int64_t in, int64_t out)
{
    struct lx_usage u = {.prompt_tokens = in, .completion_tokens = out};
    return lx_cost_for_deployment(d, NULL, &u);
}

static const char *key_of(const struct lx_deployment *d)
{
    struct lx_price p;
    const char *key = NULL;
    lx_price_resolve(lx_prices_builtin(), d, NULL, &p, &key);
    return key ? key : "(none)";
}

LX_TEST(builtin_table)
{
    const struct lx_prices *t = lx_prices_builtin();
    LX_CHECK(lx_prices_count(t) > 150);
    LX_CHECK(lx_prices_builtin() == t);
    /* Every family the table must cover. */
    static const char *const keys[] = {"gpt-4o",
                                       "gpt-4o-mini",
                                       "gpt-4.1",
                                       "gpt-4.1-mini",
                                       "gpt-4.1-nano",
                                       "o1",
                                       "o3",
                                       "o3-mini",
                                       "o4-mini",
                                       "gpt-3.5-turbo",
                                       "gpt-4",
                                       "gpt-4-turbo",
                                       "text-embedding-3-small",
                                       "text-embedding-3-large",
                                       "claude-3-opus-20240229",
                                       "claude-3-haiku-20240307",
                                       "claude-3-5-sonnet-20241022",
                                       "claude-3-7-sonnet-20250219",
                                       "claude-sonnet-4-20250514",
                                       "claude-opus-4-20250514",
                                       "gemini/gemini-1.5-pro",
                                       "gemini/gemini-2.0-flash",
                                       "gemini/gemini-2.5-pro",
                                       "gemini/gemini-2.5-flash",
                                       "anthropic.claude-3-5-sonnet-20241022-v2:0",
                                       "amazon.nova-pro-v1:0",
                                       "meta.llama3-1-70b-instruct-v1:0",
                                       "mistral/mistral-large-latest",
                                       "groq/llama-3.3-70b-versatile",
                                       "deepseek/deepseek-chat",
                                       "azure/gpt-4o"};
    for (size_t i = 0; i < LX_ARRAY_LEN(keys); i++) {
        const struct lx_price *p = lx_prices_get(t, lx_str_c(keys[i]));
        if (!p || p->input_pico <= 0 || !p->litellm_provider || !p->mode) {
            fprintf(stderr, "  missing or incomplete: %s\n", keys[i]);
            LX_CHECK(!"price table entry");
        }
    }
    const struct lx_price *p = lx_prices_get(t, LX_STR("claude-3-opus-20240229"));
    LX_CHECK(p && p->input_pico == 15000000 && p->output_pico == 75000000 &&
             p->cache_read_pico == 1500000 && p->cache_creation_pico == 18750000 &&
             p->max_input_tokens == 200000);
    p = lx_prices_get(t, LX_STR("claude-3-haiku-20240307"));
    LX_CHECK(p && p->input_pico == 250000 && p->output_pico == 1250000);
    lx_prices_builtin_release();
}

LX_TEST(lookups)
{
    /* Bare model after the provider prefix. */
    struct lx_deployment d = dep_for("openai/gpt-4o-mini");
    LX_CHECK_STR(key_of(&d), "gpt-4o-mini");
    LX_CHECK_INT(cost_of(&d, 7, 5), 4050);
    /* A family name without a prefix (LiteLLM keys Anthropic models bare). */
    d = dep_for("claude-3-opus-20240229");
    LX_CHECK_STR(key_of(&d), "claude-3-opus-20240229");
    d = dep_for("anthropic/claude-3-haiku-20240307");
    LX_CHECK_STR(key_of(&d), "claude-3-haiku-20240307");
    LX_CHECK_INT(cost_of(&d, 1000, 1000), 1500000);
    /* "<provider>/<model>" keys. */
    d = dep_for("gemini/gemini-2.0-flash");
    LX_CHECK_STR(key_of(&d), "gemini/gemini-2.0-flash");
    d = dep_for("groq/llama-3.3-70b-versatile");
    LX_CHECK_STR(key_of(&d), "groq/llama-3.3-70b-versatile");
    d = dep_for("deepseek/deepseek-chat");
    LX_CHECK_STR(key_of(&d), "deepseek/deepseek-chat");
    d = dep_for("mistral/mistral-large-latest");
    LX_CHECK_STR(key_of(&d), "mistral/mistral-large-latest");
    /* Bedrock ids as LiteLLM keys them, a cross-region prefix, converse/. */
    d = dep_for("bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0");
    LX_CHECK_STR(key_of(&d), "anthropic.claude-3-5-sonnet-20241022-v2:0");
    d = dep_for("bedrock/us.amazon.nova-pro-v1:0");
    LX_CHECK_STR(key_of(&d), "us.amazon.nova-pro-v1:0");
    d = dep_for("bedrock/eu.meta.llama3-1-70b-instruct-v1:0");
    LX_CHECK_STR(key_of(&d), "meta.llama3-1-70b-instruct-v1:0");
    d = dep_for("bedrock/converse/amazon.nova-lite-v1:0");
    LX_CHECK_STR(key_of(&d), "amazon.nova-lite-v1:0");
    /* Azure: the deployment name, else model_info.base_model. */
    d = dep_for("azure/gpt-4o");
    LX_CHECK_STR(key_of(&d), "azure/gpt-4o");
    d = dep_for("azure/my-prod-deployment");
    LX_CHECK_STR(key_of(&d), "(none)");
    d.base_model = "azure/gpt-4o-mini";
    LX_CHECK_STR(key_of(&d), "azure/gpt-4o-mini");
    d.base_model = "gpt-4.1";
    LX_CHECK_STR(key_of(&d), "azure/gpt-4.1");
    d.base_model = "openai/o3-mini";
    LX_CHECK_STR(key_of(&d), "o3-mini");
    /* A wildcard deployment prices the model the request resolved to. */
    d = dep_for("openai/*");
    struct lx_usage u = {.prompt_tokens = 1000, .completion_tokens = 1000};
    LX_CHECK_INT(lx_cost_for_deployment(&d, "gpt-4o", &u), 12500000);
    lx_prices_builtin_release();
}

LX_TEST(overrides)
{
    struct lx_deployment d = dep_for("openai/gpt-4o");
    struct lx_price p;
    /* litellm_params costs replace the table's (others stay). */
    d.input_cost_per_token = 1e-06;
    LX_CHECK(lx_price_resolve(lx_prices_builtin(), &d, NULL, &p, NULL));
    LX_CHECK_INT(p.input_pico, 1000000);
    LX_CHECK_INT(p.output_pico, 10000000);
    LX_CHECK_INT(p.cache_read_pico, 1250000);
    /* model_info costs apply under litellm_params'. */
    cJSON *info = cJSON_Parse("{\"input_cost_per_token\":9e-06,\"output_cost_per_token\":2e-06,"
                              "\"cache_read_input_token_cost\":1e-07,\"id\":\"x\"}");
    d.model_info = info;
    LX_CHECK(lx_price_resolve(lx_prices_builtin(), &d, NULL, &p, NULL));
    LX_CHECK_INT(p.input_pico, 1000000);
    LX_CHECK_INT(p.output_pico, 2000000);
    LX_CHECK_INT(p.cache_read_pico, 100000);
    /* A model the table does not know, priced by its deployment alone. */
    struct lx_deployment own = dep_for("openai/my-finetune");
    LX_CHECK(!lx_price_resolve(lx_prices_builtin(), &own, NULL, &p, NULL));
    LX_CHECK_INT(p.input_pico, 0);
    own.input_cost_per_token = 5e-07;
    own.output_cost_per_token = 1.5e-06;
    LX_CHECK(lx_price_resolve(lx_prices_builtin(), &own, NULL, &p, NULL));
    LX_CHECK_INT(cost_of(&own, 1000, 100), 650000);
    struct lx_deployment own2 = dep_for("openai/my-finetune-2");
    own2.model_info = info;
    LX_CHECK_INT(cost_of(&own2, 1000, 100), 9000000 + 200000);
    cJSON_Delete(info);
    lx_prices_builtin_release();
}

LX_TEST(unknown_model_costs_zero_warns_once)
{
    struct lx_deployment d = dep_for("openai/unknown-model-for-test-1");
    LX_CHECK_INT(cost_of(&d, 1000, 1000), 0);
    /* The first request warned; later ones do not. */
    LX_CHECK(!lx_prices_warn_unknown("unknown-model-for-test-1"));
    LX_CHECK(lx_prices_warn_unknown("unknown-model-for-test-2"));
    LX_CHECK(!lx_prices_warn_unknown("unknown-model-for-test-2"));
    lx_prices_builtin_release();
}

static void *warn_many(void *arg)
{
    int *firsts = arg;
    char name[64];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "threaded-unknown-model-%d", i);
        *firsts += lx_prices_warn_unknown(name) ? 1 : 0;
    }
    return NULL;
}

LX_TEST(unknown_warnings_across_threads)
{
    /* Workers race on the same names: each name is warned about exactly once. */
    lx_log_set_level(LX_LOG_ERROR);
    pthread_t th[4];
    int firsts[4] = {0};
    for (int i = 0; i < 4; i++) {
        LX_CHECK_INT(pthread_create(&th[i], NULL, warn_many, &firsts[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    lx_log_set_level(LX_LOG_INFO);
    LX_CHECK_INT(firsts[0] + firsts[1] + firsts[2] + firsts[3], 200);
}

/* ---- usage reported by translated streams ---- */

struct stream_case {
    const struct lx_provider_ops *ops;
    const char *model;
    bool include_usage;
};

static int feed_event(void *ud, const struct lx_sse_event *ev)
{
    void **a = ud;
    const struct lx_provider_ops *ops = a[0];
    struct lx_error err = {0};
    return ops->translate_event(a[1], ev, a[2], &err);
}

/*
 * Run upstream bytes through a provider's stream translator; return whether
 * it reported usage, fill *u, and count the usage chunks the client would see.
 */
static bool stream_usage(const struct stream_case *sc, struct lx_str up, struct lx_usage *u,
                         int *usage_chunks)
{
    struct lx_deployment d = dep_for(sc->model);
    struct lx_arena arena;
    lx_arena_init(&arena, NULL, 0, 4096);
    cJSON *json = cJSON_Parse(sc->include_usage
                                  ? "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
                                  : "{\"stream\":true}");
    struct lx_provider_call call = {.endpoint = LX_EP_CHAT,
                                    .dep = &d,
                                    .json = json,
                                    .stream = true,
                                    .upstream_model = d.upstream_model,
                                    .arena = &arena};
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    struct lx_error err = {0};
    void *st = sc->ops->stream_new(&call);
    int rc = 0;
    if (sc->ops->stream_feed) {
        rc = sc->ops->stream_feed(st, up.p, up.n, &out, &err);
        rc = rc ? rc : sc->ops->stream_end(st, &out, &err);
    } else {
        struct lx_sse_parser sp;
        lx_sse_init(&sp, 1 << 20);
        void *a[3] = {(void *)sc->ops, st, &out};
        rc = lx_sse_feed(&sp, up.p, up.n, feed_event, a);
        lx_sse_fini(&sp);
    }
    LX_CHECK_INT(rc, 0);
    bool has = sc->ops->stream_usage(st, u);
    sc->ops->stream_free(st);
    *usage_chunks = 0;
    for (const char *q = out.data; q && (q = strstr(q, "\"choices\":[],\"usage\"")); q++) {
        (*usage_chunks)++;
    }
    lx_buf_fini(&out);
    cJSON_Delete(json);
    lx_arena_fini(&arena);
    return has;
}

static char *read_fixture(const char *file, size_t *out_n)
{
    const char *dir = getenv("LX_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "data", file);
    FILE *f = fopen(path, "rb");
    struct lx_buf b;
    lx_buf_init(&b, 1 << 20);
    char tmp[4096];
    size_t k;
    while (f && (k = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        if (lx_buf_append(&b, tmp, k)) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return lx_buf_take(&b, out_n);
}

LX_TEST(stream_usage_anthropic)
{
    size_t n = 0;
    char *sse = read_fixture("anthropic/stream_text.sse", &n);
    LX_CHECK(n > 0);
    for (int asked = 0; asked < 2; asked++) {
        struct stream_case sc = {&lx_provider_anthropic, "anthropic/claude-3-5-sonnet-20241022",
                                 asked};
        struct lx_usage u;
        int chunks = -1;
        LX_CHECK(stream_usage(&sc, (struct lx_str){sse, n}, &u, &chunks));
        /* message_start's input_tokens, message_delta's cumulative output_tokens. */
        LX_CHECK_INT(u.prompt_tokens, 25);
        LX_CHECK_INT(u.completion_tokens, 15);
        LX_CHECK_INT(chunks, asked);
    }
    lx_free(sse);
    /* Cache reads and writes are parts of the prompt. */
    const char *cached =
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
        "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-3-5-sonnet-20241022\","
        "\"usage\":{\"input_tokens\":10,\"output_tokens\":1,\"cache_creation_input_tokens\":400,"
        "\"cache_read_input_tokens\":2000}}}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
        "\"usage\":{\"output_tokens\":7}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    struct stream_case sc = {&lx_provider_anthropic, "claude-3-5-sonnet-20241022", false};
    struct lx_usage u;
    int chunks = -1;
    LX_CHECK(stream_usage(&sc, lx_str_c(cached), &u, &chunks));
    LX_CHECK_INT(u.prompt_tokens, 2410);
    LX_CHECK_INT(u.cache_read_tokens, 2000);
    LX_CHECK_INT(u.cache_creation_tokens, 400);
    LX_CHECK_INT(u.completion_tokens, 7);
    LX_CHECK_INT(chunks, 0);
    struct lx_deployment d = dep_for("claude-3-5-sonnet-20241022");
    LX_CHECK_INT(lx_cost_for_deployment(&d, NULL, &u),
                 (10LL * 3000000 + 2000LL * 300000 + 400LL * 3750000 + 7LL * 15000000) / 1000);
    /* A stream cut before message_start reports nothing. */
    LX_CHECK(!stream_usage(&sc, LX_STR("event: ping\ndata: {\"type\":\"ping\"}\n\n"), &u, &chunks));
    lx_prices_builtin_release();
}

LX_TEST(stream_usage_gemini)
{
    const char *sse =
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},"
        "\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":8,\"totalTokenCount\":8},"
        "\"modelVersion\":\"gemini-2.0-flash\",\"responseId\":\"r1\"}\r\n\r\n"
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}],\"role\":\"model\"},"
        "\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":8,"
        "\"candidatesTokenCount\":4,\"thoughtsTokenCount\":6,\"cachedContentTokenCount\":2,"
        "\"totalTokenCount\":18},\"modelVersion\":\"gemini-2.0-flash\",\"responseId\":\"r1\"}"
        "\r\n\r\n";
    for (int asked = 0; asked < 2; asked++) {
        struct stream_case sc = {&lx_provider_gemini, "gemini/gemini-2.0-flash", asked};
        struct lx_usage u;
        int chunks = -1;
        LX_CHECK(stream_usage(&sc, lx_str_c(sse), &u, &chunks));
        LX_CHECK_INT(u.prompt_tokens, 8);
        LX_CHECK_INT(u.completion_tokens, 10);
        LX_CHECK_INT(u.cache_read_tokens, 2);
        LX_CHECK_INT(chunks, asked);
    }
    lx_prices_builtin_release();
}

LX_TEST(stream_usage_ollama)
{
    const char *nd = "{\"model\":\"llama3\",\"created_at\":\"2024-01-01T00:00:00Z\","
                     "\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}\n"
                     "{\"model\":\"llama3\",\"created_at\":\"2024-01-01T00:00:00Z\","
                     "\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
                     "\"done_reason\":\"stop\",\"prompt_eval_count\":26,\"eval_count\":3}\n";
    for (int asked = 0; asked < 2; asked++) {
        struct stream_case sc = {&lx_provider_ollama, "ollama/llama3", asked};
        struct lx_usage u;
        int chunks = -1;
        LX_CHECK(stream_usage(&sc, lx_str_c(nd), &u, &chunks));
        LX_CHECK_INT(u.prompt_tokens, 26);
        LX_CHECK_INT(u.completion_tokens, 3);
        LX_CHECK_INT(chunks, asked);
    }
}

static void put_br_event(struct lx_buf *b, const char *type, const char *payload)
{
    struct lx_eventstream_header h[] = {
        {":event-type", lx_str_c(type)},
        {":content-type", LX_STR("application/json")},
        {":message-type", LX_STR("event")},
    };
    if (lx_eventstream_encode(b, h, 3, lx_str_c(payload)) != 0) {
        abort();
    }
}

LX_TEST(stream_usage_bedrock)
{
    struct lx_buf up;
    lx_buf_init(&up, 1 << 20);
    put_br_event(&up, "messageStart", "{\"role\":\"assistant\"}");
    put_br_event(&up, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}");
    put_br_event(&up, "contentBlockStop", "{\"contentBlockIndex\":0}");
    put_br_event(&up, "messageStop", "{\"stopReason\":\"end_turn\"}");
    put_br_event(
        &up, "metadata",
        "{\"usage\":{\"inputTokens\":10,\"outputTokens\":5,\"cacheReadInputTokens\":100,"
        "\"cacheWriteInputTokens\":20,\"totalTokens\":135},\"metrics\":{\"latencyMs\":9}}");
    for (int asked = 0; asked < 2; asked++) {
        struct stream_case sc = {&lx_provider_bedrock,
                                 "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", asked};
        struct lx_usage u;
        int chunks = -1;
        LX_CHECK(stream_usage(&sc, lx_buf_str(&up), &u, &chunks));
        LX_CHECK_INT(u.prompt_tokens, 130);
        LX_CHECK_INT(u.cache_read_tokens, 100);
        LX_CHECK_INT(u.cache_creation_tokens, 20);
        LX_CHECK_INT(u.completion_tokens, 5);
        LX_CHECK_INT(chunks, asked);
    }
    lx_buf_fini(&up);
}

/* ---- usage of translated (non-streamed) answers, as the pipeline reads it ---- */

static int translated_usage(const struct lx_provider_ops *ops, const char *model, const char *body,
                            struct lx_usage *u)
{
    struct lx_deployment d = dep_for(model);
    struct lx_arena arena;
    lx_arena_init(&arena, NULL, 0, 4096);
    cJSON *json = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    struct lx_provider_call call = {.endpoint = LX_EP_CHAT,
                                    .dep = &d,
                                    .json = json,
                                    .upstream_model = d.upstream_model,
                                    .arena = &arena};
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    struct lx_error err = {0};
    int rc = ops->translate_response(&call, lx_str_c(body), &out, &err);
    struct lx_str raw = LX_STR_NULL;
    if (!rc) {
        rc = lx_json_find_top(lx_buf_str(&out), LX_STR("usage"), &raw);
    }
    if (!rc) {
        rc = lx_usage_parse_openai(raw, u);
    }
    lx_buf_fini(&out);
    cJSON_Delete(json);
    lx_arena_fini(&arena);
    return rc;
}

LX_TEST(translated_response_usage)
{
    struct lx_usage u;
    /* Anthropic Messages API response (docs.anthropic.com, "Messages"), with prompt caching. */
    LX_CHECK_INT(
        translated_usage(&lx_provider_anthropic, "claude-3-haiku-20240307",
                         "{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\","
                         "\"model\":\"claude-3-haiku-20240307\",\"content\":[{\"type\":\"text\","
                         "\"text\":\"Hi!\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
                         "\"usage\":{\"input_tokens\":21,\"output_tokens\":305,"
                         "\"cache_creation_input_tokens\":188086,\"cache_read_input_tokens\":9}}",
                         &u),
        0);
    LX_CHECK_INT(u.prompt_tokens, 21 + 188086 + 9);
    LX_CHECK_INT(u.completion_tokens, 305);
    LX_CHECK_INT(u.cache_read_tokens, 9);
    LX_CHECK_INT(u.cache_creation_tokens, 188086);
    struct lx_deployment d = dep_for("claude-3-haiku-20240307");
    LX_CHECK_INT(lx_cost_for_deployment(&d, NULL, &u),
                 (21LL * 250000 + 188086LL * 300000 + 9LL * 30000 + 305LL * 1250000 + 500) / 1000);
    /* Gemini generateContent (ai.google.dev, "GenerateContentResponse"). */
    LX_CHECK_INT(translated_usage(&lx_provider_gemini, "gemini/gemini-2.5-flash",
                                  "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],"
                                  "\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],"
                                  "\"usageMetadata\":{\"promptTokenCount\":11,"
                                  "\"candidatesTokenCount\":7,\"thoughtsTokenCount\":20,"
                                  "\"cachedContentTokenCount\":4,\"totalTokenCount\":38},"
                                  "\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r\"}",
                                  &u),
                 0);
    LX_CHECK_INT(u.prompt_tokens, 11);
    LX_CHECK_INT(u.completion_tokens, 27);
    LX_CHECK_INT(u.cache_read_tokens, 4);
    /* Bedrock Converse (docs.aws.amazon.com, "Converse" response syntax). */
    LX_CHECK_INT(translated_usage(&lx_provider_bedrock, "bedrock/amazon.nova-pro-v1:0",
                                  "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":"
                                  "[{\"text\":\"Hi\"}]}},\"stopReason\":\"end_turn\",\"usage\":"
                                  "{\"inputTokens\":30,\"outputTokens\":12,\"totalTokens\":42,"
                                  "\"cacheReadInputTokens\":8,\"cacheWriteInputTokens\":2},"
                                  "\"metrics\":{\"latencyMs\":300}}",
                                  &u),
                 0);
    LX_CHECK_INT(u.prompt_tokens, 40);
    LX_CHECK_INT(u.completion_tokens, 12);
    LX_CHECK_INT(u.cache_read_tokens, 8);
    LX_CHECK_INT(u.cache_creation_tokens, 2);
    /* Ollama /api/chat (github.com/ollama/ollama docs/api.md). */
    LX_CHECK_INT(translated_usage(&lx_provider_ollama, "ollama/llama3",
                                  "{\"model\":\"llama3\",\"created_at\":\"2023-12-12T14:13:43Z\","
                                  "\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},"
                                  "\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":26,"
                                  "\"eval_count\":298}",
                                  &u),
                 0);
    LX_CHECK_INT(u.prompt_tokens, 26);
    LX_CHECK_INT(u.completion_tokens, 298);
    lx_prices_builtin_release();
}

LX_TEST_MAIN(LX_RUN(cost_exact_integers), LX_RUN(cost_rounds_once_half_up),
             LX_RUN(cost_cached_tokens), LX_RUN(cost_saturates), LX_RUN(format_like_python),
             LX_RUN(usage_openai_objects), LX_RUN(usage_rejects), LX_RUN(table_parse),
             LX_RUN(builtin_table), LX_RUN(lookups), LX_RUN(overrides),
             LX_RUN(unknown_model_costs_zero_warns_once), LX_RUN(unknown_warnings_across_threads),
             LX_RUN(stream_usage_anthropic), LX_RUN(stream_usage_gemini),
             LX_RUN(stream_usage_ollama), LX_RUN(stream_usage_bedrock),
             LX_RUN(translated_response_usage))
