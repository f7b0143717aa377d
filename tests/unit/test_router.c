/* Router: strategies, cooldown rules, error classes, retry policy, fallbacks, shared stats. */
#include <stdio.h>
#include <string.h>

#include "lx_test.h"
#include "router/router.h"
#include "spend/prices.h"

static struct lx_config *load(const char *yaml)
{
    struct lx_error err = {0};
    struct lx_config *cfg = lx_config_load_string("t.yaml", yaml, strlen(yaml), &err);
    if (!cfg) {
        fprintf(stderr, "  config: %s\n", err.msg);
    }
    return cfg;
}

static const struct lx_model_group *group(const struct lx_config *cfg, const char *name)
{
    return lx_config_find_group(cfg, lx_str_c(name));
}

static struct lx_route_req rr_for(const struct lx_config *cfg, const char *name, uint64_t now)
{
    struct lx_route_req rr = {.cfg = cfg, .group = group(cfg, name), .now_ms = now};
    return rr;
}

/* How often each deployment (by index in the group) is picked in n tries. */
static void histogram(const struct lx_route_req *rr, int n, int *out)
{
    for (int i = 0; i < n; i++) {
        const struct lx_deployment *d = lx_router_pick(rr, NULL);
        for (size_t k = 0; k < rr->group->n; k++) {
            if (rr->group->deployments[k] == d) {
                out[k]++;
            }
        }
    }
}

#define TWO(name, extra_a, extra_b)                                                                \
    "  - model_name: " name "\n"                                                                   \
    "    litellm_params: {model: openai/a, api_key: k" extra_a "}\n"                               \
    "    model_info: {id: " name "-a}\n"                                                           \
    "  - model_name: " name "\n"                                                                   \
    "    litellm_params: {model: openai/b, api_key: k" extra_b "}\n"                               \
    "    model_info: {id: " name "-b}\n"

LX_TEST(classify_errors)
{
    LX_CHECK_INT(lx_router_classify(400, LX_STR("{\"error\":{\"message\":\"bad\"}}")),
                 LX_ERRC_BAD_REQUEST);
    LX_CHECK_INT(lx_router_classify(400, LX_STR("This model's maximum context length is 8192")),
                 LX_ERRC_CONTEXT_WINDOW);
    LX_CHECK_INT(lx_router_classify(400, LX_STR("{\"code\":\"context_length_exceeded\"}")),
                 LX_ERRC_CONTEXT_WINDOW);
    LX_CHECK_INT(lx_router_classify(400, LX_STR("prompt is too long: 210000 tokens")),
                 LX_ERRC_CONTEXT_WINDOW);
    LX_CHECK_INT(lx_router_classify(400, LX_STR("rejected by our Safety System")),
                 LX_ERRC_CONTENT_POLICY);
    LX_CHECK_INT(lx_router_classify(401, LX_STR_NULL), LX_ERRC_AUTH);
    LX_CHECK_INT(lx_router_classify(403, LX_STR_NULL), LX_ERRC_AUTH);
    LX_CHECK_INT(lx_router_classify(404, LX_STR_NULL), LX_ERRC_NOT_FOUND);
    LX_CHECK_INT(lx_router_classify(408, LX_STR_NULL), LX_ERRC_TIMEOUT);
    LX_CHECK_INT(lx_router_classify(504, LX_STR_NULL), LX_ERRC_TIMEOUT);
    LX_CHECK_INT(lx_router_classify(429, LX_STR_NULL), LX_ERRC_RATE_LIMIT);
    LX_CHECK_INT(lx_router_classify(418, LX_STR_NULL), LX_ERRC_BAD_REQUEST);
    LX_CHECK_INT(lx_router_classify(500, LX_STR("context length")), LX_ERRC_SERVER);
    LX_CHECK_INT(lx_router_classify(529, LX_STR_NULL), LX_ERRC_SERVER);
    LX_CHECK_STR(lx_router_class_policy_name(LX_ERRC_RATE_LIMIT), "RateLimitErrorRetries");
    LX_CHECK_STR(lx_router_class_policy_name(LX_ERRC_SERVER), "InternalServerErrorRetries");
    LX_CHECK(lx_router_class_policy_name(LX_ERRC_NONE) == NULL);
}

LX_TEST(retry_policy_and_backoff)
{
    struct lx_config *cfg = load("model_list: []\n"
                                 "router_settings:\n"
                                 "  retry_after: 2\n"
                                 "  retry_policy: {TimeoutErrorRetries: 4, "
                                 "AuthenticationErrorRetries: 0}\n"
                                 "  model_group_retry_policy:\n"
                                 "    gpt-4: {TimeoutErrorRetries: 1, RateLimitErrorRetries: 7}\n");
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    LX_CHECK_INT(lx_router_policy_retries(cfg, "other", LX_ERRC_TIMEOUT), 4);
    LX_CHECK_INT(lx_router_policy_retries(cfg, NULL, LX_ERRC_AUTH), 0);
    LX_CHECK_INT(lx_router_policy_retries(cfg, "other", LX_ERRC_SERVER), -1);
    LX_CHECK_INT(lx_router_policy_retries(cfg, "gpt-4", LX_ERRC_TIMEOUT), 1);
    LX_CHECK_INT(lx_router_policy_retries(cfg, "gpt-4", LX_ERRC_RATE_LIMIT), 7);
    LX_CHECK_INT(lx_router_policy_retries(cfg, "gpt-4", LX_ERRC_AUTH), 0); /* from retry_policy */
    /* retry-after within (0, 60] wins; never below router_settings.retry_after. */
    LX_CHECK_DBL(lx_router_backoff_s(cfg, 0, 7), 7);
    LX_CHECK_DBL(lx_router_backoff_s(cfg, 0, 1), 2);
    LX_CHECK_DBL(lx_router_backoff_s(cfg, 0, 0), 2);
    double b = lx_router_backoff_s(cfg, 5, 600); /* 0.5 * 32 capped at 8, minus jitter */
    LX_CHECK(b >= 6.0 && b <= 8.0);
    lx_config_unref(cfg);
    LX_CHECK_DBL(lx_router_parse_retry_after(LX_STR(" 12 ")), 12);
    LX_CHECK_DBL(lx_router_parse_retry_after(LX_STR("Wed, 21 Oct 2015 07:28:00 GMT")), 0);
    LX_CHECK_DBL(lx_router_parse_retry_after(LX_STR("")), 0);
    LX_CHECK_DBL(lx_router_parse_retry_after(LX_STR("-3")), 0);
}

LX_TEST(fallback_lookup)
{
    struct lx_config *cfg = load("model_list: []\n"
                                 "router_settings:\n"
                                 "  fallbacks: [{gpt-4: [claude]}]\n"
                                 "  context_window_fallbacks: [{gpt-4: [gpt-4-32k]}]\n"
                                 "  max_fallbacks: 3\n"
                                 "litellm_settings:\n"
                                 "  content_policy_fallbacks: [{'*': [lenient]}]\n"
                                 "  default_fallbacks: [last-resort]\n"
                                 "fallback_mapping:\n"
                                 "  gpt-3: [gpt-3-fallback]\n");
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    struct lx_strlist l = lx_router_fallbacks(cfg, "gpt-4", LX_ERRC_SERVER);
    LX_CHECK_INT(l.n, 1);
    LX_CHECK_STR(l.n ? l.items[0] : NULL, "claude");
    l = lx_router_fallbacks(cfg, "gpt-4", LX_ERRC_CONTEXT_WINDOW);
    LX_CHECK_STR(l.n ? l.items[0] : NULL, "gpt-4-32k");
    l = lx_router_fallbacks(cfg, "anything", LX_ERRC_CONTENT_POLICY);
    LX_CHECK_STR(l.n ? l.items[0] : NULL, "lenient");
    l = lx_router_fallbacks(cfg, "gpt-3", LX_ERRC_RATE_LIMIT);
    LX_CHECK_STR(l.n ? l.items[0] : NULL, "gpt-3-fallback");
    l = lx_router_fallbacks(cfg, "other", LX_ERRC_TIMEOUT);
    LX_CHECK_STR(l.n ? l.items[0] : NULL, "last-resort");
    LX_CHECK_INT(lx_router_fallbacks(cfg, "gpt-4", LX_ERRC_BAD_REQUEST).n, 0);
    LX_CHECK_INT(lx_router_fallbacks(cfg, "other", LX_ERRC_CONTEXT_WINDOW).n, 0);
    LX_CHECK_INT(lx_router_max_fallbacks(cfg), 3);
    lx_config_unref(cfg);
}

LX_TEST(shuffle_weights)
{
    struct lx_config *cfg = load("model_list:\n" TWO("w", ", weight: 3", ", weight: 1")
                                     TWO("r", ", rpm: 100", ", rpm: 300") TWO("u", "", ""));
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    struct lx_route_req rr = rr_for(cfg, "w", 1000);
    int h[2] = {0, 0};
    histogram(&rr, 4000, h);
    LX_CHECK(h[0] > 2800 && h[0] < 3200); /* 3000 expected */
    rr = rr_for(cfg, "r", 1000);
    int hr[2] = {0, 0};
    histogram(&rr, 4000, hr);
    LX_CHECK(hr[1] > 2800 && hr[1] < 3200);
    rr = rr_for(cfg, "u", 1000);
    int hu[2] = {0, 0};
    histogram(&rr, 4000, hu);
    LX_CHECK(hu[0] > 1800 && hu[0] < 2200);
    lx_config_unref(cfg);
}

LX_TEST(cooldown_rules)
{
    struct lx_router_table *t = lx_router_table_new();
    struct lx_config *cfg =
        load("model_list:\n" TWO("g", "", "") "  - model_name: solo\n"
                                              "    litellm_params: {model: "
                                              "openai/s, api_key: k}\n"
                                              "router_settings: {cooldown_time: "
                                              "10}\n");
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        lx_router_table_free(t);
        return;
    }
    lx_router_bind(t, cfg);
    const struct lx_model_group *g = group(cfg, "g");
    const struct lx_deployment *a = g->deployments[0];
    const struct lx_deployment *b = g->deployments[1];
    uint64_t now = 120000;
    /* A 400 neither counts nor cools; 500s cool once more than half of the minute's calls fail. */
    lx_router_begin(a, now);
    LX_CHECK(!lx_router_end_fail(cfg, g, a, now, LX_ERRC_BAD_REQUEST, 400, 0));
    lx_router_begin(a, now);
    lx_router_end_ok(a, now, 1000, 10);
    lx_router_begin(a, now);
    lx_router_end_ok(a, now, 1000, 10);
    lx_router_begin(a, now);
    LX_CHECK(!lx_router_end_fail(cfg, g, a, now, LX_ERRC_SERVER, 500, 0)); /* 1 of 3 failed */
    lx_router_begin(a, now);
    LX_CHECK(!lx_router_end_fail(cfg, g, a, now, LX_ERRC_SERVER, 500, 0)); /* 2 of 4 */
    lx_router_begin(a, now);
    LX_CHECK(lx_router_end_fail(cfg, g, a, now, LX_ERRC_SERVER, 500, 0)); /* 3 of 5 */
    LX_CHECK(lx_router_is_cooling(a, now + 9999));
    LX_CHECK(!lx_router_is_cooling(a, now + 10000));
    LX_CHECK_INT(atomic_load(&a->stats->in_flight), 0);
    /* While a cools, every pick is b; with both cooling, NULL and the wait. */
    struct lx_route_req rr = rr_for(cfg, "g", now + 1);
    for (int i = 0; i < 20; i++) {
        LX_CHECK(lx_router_pick(&rr, NULL) == b);
    }
    lx_router_begin(b, now);
    LX_CHECK(lx_router_end_fail(cfg, g, b, now + 2000, LX_ERRC_AUTH, 401, 0)); /* 401: at once */
    uint64_t wait = 0;
    LX_CHECK(lx_router_pick(&rr, &wait) == NULL);
    LX_CHECK_INT(wait, 9999);
    LX_CHECK(!lx_router_has_usable(&rr));
    /* A 429's retry-after longer than cooldown_time is the cooldown. */
    lx_router_begin(b, now);
    LX_CHECK(lx_router_end_fail(cfg, g, b, now, LX_ERRC_RATE_LIMIT, 429, 30));
    LX_CHECK(lx_router_is_cooling(b, now + 29000));
    /* The only deployment of a group is not cooled without an explicit allowed_fails. */
    const struct lx_model_group *solo = group(cfg, "solo");
    lx_router_begin(solo->deployments[0], now);
    LX_CHECK(!lx_router_end_fail(cfg, solo, solo->deployments[0], now, LX_ERRC_AUTH, 401, 0));
    lx_config_unref(cfg);
    lx_router_table_free(t);
}

LX_TEST(allowed_fails_and_disable)
{
    struct lx_router_table *t = lx_router_table_new();
    struct lx_config *cfg =
        load("model_list:\n" TWO("g", "", "") "  - model_name: solo\n"
                                              "    litellm_params: {model: "
                                              "openai/s, api_key: k}\n"
                                              "router_settings: {allowed_fails: "
                                              "1}\n");
    struct lx_config *off = load("model_list:\n" TWO("g", "", "") "router_settings:\n"
                                                                  "  disable_cooldowns: true\n");
    LX_CHECK(cfg && off);
    if (!cfg || !off) {
        lx_config_unref(cfg);
        lx_config_unref(off);
        lx_router_table_free(t);
        return;
    }
    lx_router_bind(t, cfg);
    const struct lx_model_group *solo = group(cfg, "solo");
    const struct lx_deployment *s = solo->deployments[0];
    uint64_t now = 600000;
    lx_router_begin(s, now);
    LX_CHECK(!lx_router_end_fail(cfg, solo, s, now, LX_ERRC_SERVER, 500, 0));
    lx_router_begin(s, now);
    LX_CHECK(lx_router_end_fail(cfg, solo, s, now, LX_ERRC_SERVER, 500, 0));
    LX_CHECK(lx_router_is_cooling(s, now + 4999)); /* default cooldown_time: 5 s */
    LX_CHECK(!lx_router_is_cooling(s, now + 5000));
    /* A new minute starts the count again. */
    lx_router_begin(s, now + 60000);
    LX_CHECK(!lx_router_end_fail(cfg, solo, s, now + 60000, LX_ERRC_SERVER, 500, 0));

    lx_router_bind(t, off);
    const struct lx_model_group *g = group(off, "g");
    for (int i = 0; i < 5; i++) {
        lx_router_begin(g->deployments[0], now);
        LX_CHECK(!lx_router_end_fail(off, g, g->deployments[0], now, LX_ERRC_AUTH, 401, 0));
    }
    lx_config_unref(cfg);
    lx_config_unref(off);
    lx_router_table_free(t);
}

LX_TEST(litellm_settings_cooldowns)
{
    struct lx_router_table *t = lx_router_table_new();
    struct lx_config *cfg = load("model_list:\n"
                                 "  - model_name: solo\n"
                                 "    litellm_params: {model: openai/s, api_key: k}\n"
                                 "litellm_settings: {allowed_fails: 0, cooldown_time: 2}\n");
    LX_CHECK(cfg != NULL);
    if (cfg) {
        lx_router_bind(t, cfg);
        const struct lx_model_group *g = group(cfg, "solo");
        lx_router_begin(g->deployments[0], 1000);
        LX_CHECK(lx_router_end_fail(cfg, g, g->deployments[0], 1000, LX_ERRC_TIMEOUT, 504, 0));
        LX_CHECK(lx_router_is_cooling(g->deployments[0], 2999));
        LX_CHECK(!lx_router_is_cooling(g->deployments[0], 3000));
    }
    lx_config_unref(cfg);
    lx_router_table_free(t);
}

LX_TEST(stats_survive_rebind)
{
    struct lx_router_table *t = lx_router_table_new();
    struct lx_config *c1 = load("model_list:\n" TWO("g", "", ""));
    struct lx_config *c2 = load("model_list:\n" TWO("g", "", "") "  - model_name: g\n"
                                                                 "    litellm_params: {model: "
                                                                 "openai/c, api_key: k}\n"
                                                                 "    model_info: {id: g-c}\n");
    LX_CHECK(c1 && c2);
    if (!c1 || !c2) {
        lx_config_unref(c1);
        lx_config_unref(c2);
        lx_router_table_free(t);
        return;
    }
    lx_router_bind(t, c1);
    lx_router_bind(t, c2);
    LX_CHECK(c1->deployments[0].stats == c2->deployments[0].stats);
    LX_CHECK(c1->deployments[1].stats == c2->deployments[1].stats);
    LX_CHECK(c2->deployments[2].stats != NULL);
    LX_CHECK(c2->deployments[2].stats != c1->deployments[0].stats);
    lx_router_note_check(t, &c2->deployments[2], "HTTP 500: down");
    char buf[64];
    lx_router_check_error(t, &c2->deployments[2], buf, sizeof(buf));
    LX_CHECK_STR(buf, "HTTP 500: down");
    LX_CHECK_INT(atomic_load(&c2->deployments[2].stats->check_state), 2);
    lx_router_note_check(t, &c2->deployments[2], NULL);
    lx_router_check_error(t, &c2->deployments[2], buf, sizeof(buf));
    LX_CHECK_STR(buf, "");
    lx_config_unref(c1);
    lx_config_unref(c2);
    lx_router_table_free(t);
}

LX_TEST(strategies)
{
    struct lx_router_table *t = lx_router_table_new();
    struct lx_config *busy = load("router_settings: {routing_strategy: least-busy}\n"
                                  "model_list:\n" TWO("lb", "", ""));
    struct lx_config *lat = load("router_settings: {routing_strategy: latency-based-routing}\n"
                                 "model_list:\n" TWO("lat", "", ""));
    struct lx_config *use = load("router_settings: {routing_strategy: usage-based-routing-v2}\n"
                                 "model_list:\n" TWO("use", ", rpm: 2", ", tpm: 100000"));
    struct lx_config *cost = load(
        "router_settings: {routing_strategy: cost-based-routing}\n"
        "model_list:\n" TWO("g", ", input_cost_per_token: 0.00001",
                            ", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002")
            TWO("h", "", ", output_cost_per_token: 0.5"));
    LX_CHECK(busy && lat && use && cost);
    if (!busy || !lat || !use || !cost) {
        goto out;
    }
    uint64_t now = 3600000;
    /* least-busy: fewest in flight. */
    lx_router_bind(t, busy);
    const struct lx_model_group *g = group(busy, "lb");
    lx_router_begin(g->deployments[0], now);
    struct lx_route_req rr = rr_for(busy, "lb", now);
    for (int i = 0; i < 10; i++) {
        LX_CHECK(lx_router_pick(&rr, NULL) == g->deployments[1]);
    }
    lx_router_end_abandoned(g->deployments[0]);
    /* latency: the unmeasured one first, then the lower EWMA. */
    lx_router_bind(t, lat);
    g = group(lat, "lat");
    lx_router_begin(g->deployments[0], now);
    lx_router_end_ok(g->deployments[0], now, 50000, 0);
    rr = rr_for(lat, "lat", now);
    LX_CHECK(lx_router_pick(&rr, NULL) == g->deployments[1]);
    lx_router_begin(g->deployments[1], now);
    lx_router_end_ok(g->deployments[1], now, 90000, 0);
    LX_CHECK(lx_router_pick(&rr, NULL) == g->deployments[0]);
    /* usage: fewest tokens this minute, skipping a deployment at its rpm. */
    lx_router_bind(t, use);
    g = group(use, "use");
    lx_router_begin(g->deployments[1], now);
    lx_router_end_ok(g->deployments[1], now, 1, 500);
    rr = rr_for(use, "use", now);
    LX_CHECK(lx_router_pick(&rr, NULL) == g->deployments[0]);
    lx_router_begin(g->deployments[0], now);
    lx_router_end_ok(g->deployments[0], now, 1, 10);
    lx_router_begin(g->deployments[0], now);
    lx_router_end_ok(g->deployments[0], now, 1, 10);
    LX_CHECK(lx_router_pick(&rr, NULL) == g->deployments[1]); /* a is at rpm 2 */
    rr.now_ms = now + 60000;                                  /* next minute: room again */
    int seen_a = 0;
    for (int i = 0; i < 40; i++) {
        seen_a += lx_router_pick(&rr, NULL) == g->deployments[0];
    }
    LX_CHECK(seen_a > 0);
    /* cost: cheapest first; unknown prices last; tried ones avoided while others exist. */
    lx_router_bind(t, cost);
    rr = rr_for(cost, "g", now);
    g = rr.group;
    LX_CHECK(lx_router_pick(&rr, NULL) == g->deployments[1]);
    lx_router_note_tried(&rr, g->deployments[1]);
    LX_CHECK(lx_router_has_untried(&rr));
    LX_CHECK(lx_router_pick(&rr, NULL) == g->deployments[0]);
    lx_router_note_tried(&rr, g->deployments[0]);
    LX_CHECK(!lx_router_has_untried(&rr));
    LX_CHECK(lx_router_has_usable(&rr));
    LX_CHECK(lx_router_pick(&rr, NULL) != NULL); /* only tried ones left: one of them again */
    rr = rr_for(cost, "h", now);
    LX_CHECK(lx_router_pick(&rr, NULL) == rr.group->deployments[1]);
    /* pinned: only that deployment. */
    rr = rr_for(cost, "g", now);
    rr.pinned = rr.group->deployments[0];
    LX_CHECK(lx_router_pick(&rr, NULL) == rr.group->deployments[0]);
out:
    lx_prices_builtin_release();
    lx_config_unref(busy);
    lx_config_unref(lat);
    lx_config_unref(use);
    lx_config_unref(cost);
    lx_router_table_free(t);
}

LX_TEST(order_and_fallback_mode)
{
    struct lx_config *cfg = load("model_list:\n" TWO(
        "o", ", order: 2", ", order: 1") "  - model_name: f\n"
                                         "    litellm_params: {model: openai/p, api_key: k}\n"
                                         "    model_info: {id: f-primary, mode: fallback}\n"
                                         "  - model_name: f\n"
                                         "    litellm_params: {model: openai/s, api_key: k}\n"
                                         "    model_info: {id: f-standby, mode: fallback}\n");
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    struct lx_route_req rr = rr_for(cfg, "o", 1000);
    for (int i = 0; i < 10; i++) {
        LX_CHECK(lx_router_pick(&rr, NULL) == rr.group->deployments[1]);
    }
    rr = rr_for(cfg, "f", 1000);
    for (int i = 0; i < 10; i++) {
        LX_CHECK(lx_router_pick(&rr, NULL) == rr.group->deployments[0]);
    }
    lx_router_note_tried(&rr, rr.group->deployments[0]);
    LX_CHECK(lx_router_pick(&rr, NULL) == rr.group->deployments[1]);
    lx_config_unref(cfg);
}

LX_TEST_MAIN(LX_RUN(classify_errors), LX_RUN(retry_policy_and_backoff), LX_RUN(fallback_lookup),
             LX_RUN(shuffle_weights), LX_RUN(cooldown_rules), LX_RUN(allowed_fails_and_disable),
             LX_RUN(litellm_settings_cooldowns), LX_RUN(stats_survive_rebind), LX_RUN(strategies),
             LX_RUN(order_and_fallback_mode))
