/*
 * Unit tests for the config loader: every YAML config block of the LiteLLM
 * proxy tutorial (tests/unit/data/config/tutorial_*.yaml, copied as written),
 * os.environ/ resolution, each error message with its file:line prefix,
 * warnings, duplicate keys, groups and lookups, stable ids, extra_params,
 * durations, hostile inputs, and allocation-failure injection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/alloc.h"
#include "log/log.h"
#include "lx_test.h"

static struct lx_config *load_fixture(const char *file, struct lx_error *err)
{
    const char *dir = getenv("LX_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof(path), "%s/config/%s", dir ? dir : "data", file);
    struct lx_config *cfg = lx_config_load(path, err);
    if (!cfg) {
        fprintf(stderr, "  load %s: %s\n", file, err->msg);
    }
    return cfg;
}

static struct lx_config *load_str(const char *yaml, struct lx_error *err)
{
    return lx_config_load_string("t.yaml", yaml, strlen(yaml), err);
}

/* Load must fail with exactly this message prefix. */
static int expect_error(const char *yaml, const char *prefix, int line)
{
    struct lx_error err;
    struct lx_config *cfg = load_str(yaml, &err);
    if (cfg) {
        fprintf(stderr, "  FAIL line %d: load succeeded, expected \"%s\"\n", line, prefix);
        lx_config_unref(cfg);
        return 0;
    }
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0) {
        fprintf(stderr, "  FAIL line %d: got \"%s\", expected prefix \"%s\"\n", line, err.msg,
                prefix);
        return 0;
    }
    return 1;
}
#define EXPECT_ERROR(yaml, prefix) LX_CHECK(expect_error((yaml), (prefix), __LINE__))

static void set_tutorial_env(void)
{
    setenv("OPENAI_API_KEY", "sk-test-openai", 1);
    setenv("ANTHROPIC_API_KEY", "sk-ant-test", 1);
}

/* ---- tutorial blocks --------------------------------------------------- */

LX_TEST(tutorial_basic)
{
    set_tutorial_env();
    struct lx_error err;
    struct lx_config *cfg = load_fixture("tutorial_basic.yaml", &err);
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    LX_CHECK_INT(cfg->n_deployments, 3);
    LX_CHECK_INT(cfg->n_warnings, 0);
    const struct lx_deployment *d = &cfg->deployments[0];
    LX_CHECK_STR(d->model_name, "gpt-4");
    LX_CHECK_STR(d->model, "gpt-4");
    LX_CHECK_INT(d->provider.kind, LX_PROVIDER_OPENAI);
    LX_CHECK_STR(d->upstream_model, "gpt-4");
    LX_CHECK_STR(d->api_key, "sk-test-openai");
    LX_CHECK(d->missing_env == NULL);
    LX_CHECK_INT(d->line, 3);
    d = &cfg->deployments[1];
    LX_CHECK_STR(d->model_name, "claude-3");
    LX_CHECK_INT(d->provider.kind, LX_PROVIDER_ANTHROPIC);
    LX_CHECK_STR(d->upstream_model, "claude-3-opus-20240229");
    LX_CHECK(d->provider.upstream_model.p == d->upstream_model);
    LX_CHECK_STR(d->api_key, "sk-ant-test");
    LX_CHECK_DBL(d->timeout, -1);
    LX_CHECK_DBL(d->weight, 1);
    LX_CHECK_INT(d->rpm, -1);
    LX_CHECK_STR(cfg->deployments[2].model_name, "gpt-3.5-turbo");
    LX_CHECK_STR(cfg->general.database_url, "sqlite:///litellm.db");
    LX_CHECK_STR(cfg->general.master_key, "sk-1234");
    LX_CHECK_STR(cfg->rate_limit_redis.host, "localhost");
    LX_CHECK_INT(cfg->rate_limit_redis.port, 6379);
    LX_CHECK_INT(cfg->n_groups, 3);
    LX_CHECK_STR(cfg->groups[0].name, "gpt-4");
    LX_CHECK_STR(cfg->groups[1].name, "claude-3");
    /* defaults */
    LX_CHECK_DBL(cfg->general.max_request_size_mb, 10);
    LX_CHECK_DBL(cfg->general.max_response_size_mb, 128);
    LX_CHECK_DBL(cfg->general.health_check_interval, 300);
    LX_CHECK_DBL(cfg->general.request_header_timeout, 30);
    LX_CHECK_DBL(cfg->general.request_body_timeout, 60);
    LX_CHECK_DBL(cfg->general.keepalive_timeout, 65);
    LX_CHECK_DBL(cfg->general.send_timeout, 120);
    LX_CHECK_DBL(cfg->general.drain_timeout, 30);
    LX_CHECK_DBL(cfg->general.max_header_size_kb, 32);
    LX_CHECK_DBL(cfg->litellm.request_timeout, 600);
    LX_CHECK_INT(cfg->general.global_max_rpm, -1);
    LX_CHECK_INT(cfg->litellm.num_retries, -1);
    LX_CHECK(cfg->router.routing_strategy == NULL);
    LX_CHECK(!cfg->cache.enabled);
    LX_CHECK(cfg->path != NULL && strstr(cfg->path, "tutorial_basic.yaml") != NULL);
    lx_config_unref(cfg);
}

LX_TEST(tutorial_auth_duplicate_general_settings)
{
    struct lx_error err;
    struct lx_config *cfg = load_fixture("tutorial_auth.yaml", &err);
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    /* general_settings appears twice: the later block wins, with one warning. */
    LX_CHECK_STR(cfg->general.database_url, "postgresql://user:pass@host:5432/litellm");
    LX_CHECK_INT(cfg->n_warnings, 1);
    LX_CHECK_INT(cfg->n_deployments, 0);
    LX_CHECK_INT(cfg->n_users, 2);
    const struct lx_user_cfg *u = &cfg->users[0];
    LX_CHECK_STR(u->user_id, "user1");
    LX_CHECK_STR(u->user_email, "user1@example.com");
    LX_CHECK_INT(u->user_role, LX_ROLE_APP_USER);
    LX_CHECK_DBL(u->max_budget, 100.0);
    LX_CHECK_INT(u->models.n, 2);
    LX_CHECK_STR(u->models.items[0], "gpt-3.5-turbo");
    LX_CHECK_STR(u->models.items[1], "claude-3-haiku-20240307");
    LX_CHECK_INT(u->rpm_limit, -1);
    LX_CHECK_INT(u->budget_duration_s, -1);
    LX_CHECK_INT(u->line, 7);
    u = &cfg->users[1];
    LX_CHECK_STR(u->user_id, "user2");
    LX_CHECK_DBL(u->max_budget, 50.0);
    LX_CHECK_INT(u->models.n, 1);
    lx_config_unref(cfg);
}

LX_TEST(tutorial_rate_limit)
{
    struct lx_error err;
    struct lx_config *cfg = load_fixture("tutorial_rate_limit.yaml", &err);
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    LX_CHECK_INT(cfg->n_warnings, 0);
    LX_CHECK_STR(cfg->rate_limit_redis.host, "localhost");
    LX_CHECK_INT(cfg->rate_limit_redis.port, 6379);
    LX_CHECK(cfg->rate_limit_redis.password == NULL);
    LX_CHECK_INT(cfg->n_users, 2);
    LX_CHECK_STR(cfg->users[0].user_id, "premium_user");
    LX_CHECK_INT(cfg->users[0].rpm_limit, 100);
    LX_CHECK_INT(cfg->users[0].tpm_limit, 100000);
    LX_CHECK_DBL(cfg->users[0].max_budget, 500.0);
    LX_CHECK_INT(cfg->users[0].models.n, 2);
    LX_CHECK_STR(cfg->users[0].models.items[1], "claude-3");
    LX_CHECK_STR(cfg->users[1].user_id, "basic_user");
    LX_CHECK_INT(cfg->users[1].rpm_limit, 20);
    LX_CHECK_INT(cfg->users[1].tpm_limit, 10000);
    LX_CHECK_DBL(cfg->users[1].max_budget, 10.0);
    LX_CHECK_INT(cfg->general.global_max_rpm, 1000);
    LX_CHECK_INT(cfg->general.global_max_tpm, 1000000);
    lx_config_unref(cfg);
}

LX_TEST(tutorial_cost_tracking)
{
    struct lx_error err;
    struct lx_config *cfg = load_fixture("tutorial_cost.yaml", &err);
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    LX_CHECK_INT(cfg->n_warnings, 0);
    LX_CHECK_STR(cfg->general.database_url, "sqlite:///costs.db");
    LX_CHECK_INT(cfg->n_users, 1);
    LX_CHECK_STR(cfg->users[0].user_id, "team_a");
    LX_CHECK_DBL(cfg->users[0].max_budget, 200.0);
    LX_CHECK_INT(cfg->users[0].models.n, 3);
    LX_CHECK_STR(cfg->users[0].budget_duration, "30d");
    LX_CHECK_INT(cfg->users[0].budget_duration_s, 30 * 86400);
    LX_CHECK(cfg->litellm.cost_tracking);
    lx_config_unref(cfg);
}

LX_TEST(tutorial_fallbacks)
{
    set_tutorial_env();
    struct lx_error err;
    struct lx_config *cfg = load_fixture("tutorial_fallbacks.yaml", &err);
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    LX_CHECK_INT(cfg->n_warnings, 0);
    LX_CHECK_INT(cfg->n_deployments, 2);
    LX_CHECK_STR(cfg->deployments[0].mode, "fallback");
    LX_CHECK_STR(cfg->deployments[1].mode, "fallback");
    LX_CHECK_INT(cfg->deployments[1].provider.kind, LX_PROVIDER_ANTHROPIC);
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(cfg->deployments[0].model_info, "mode");
    LX_CHECK(cJSON_IsString(mode) && strcmp(mode->valuestring, "fallback") == 0);
    LX_CHECK_INT(cfg->fallback_mapping.n, 1);
    LX_CHECK_STR(cfg->fallback_mapping.items[0].model, "gpt-4");
    LX_CHECK_INT(cfg->fallback_mapping.items[0].to.n, 1);
    LX_CHECK_STR(cfg->fallback_mapping.items[0].to.items[0], "gpt-4-fallback");
    LX_CHECK_STR(cfg->general.database_url, "sqlite:///litellm.db");
    lx_config_unref(cfg);
}

LX_TEST(tutorial_loadbalance)
{
    setenv("OPENAI_API_KEY_1", "k1", 1);
    setenv("OPENAI_API_KEY_2", "k2", 1);
    unsetenv("OPENAI_API_KEY_3");
    struct lx_error err;
    struct lx_config *cfg = load_fixture("tutorial_loadbalance.yaml", &err);
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    LX_CHECK_INT(cfg->n_deployments, 3);
    LX_CHECK_INT(cfg->n_groups, 1);
    LX_CHECK_INT(cfg->groups[0].n, 3);
    LX_CHECK(cfg->groups[0].deployments[0] == &cfg->deployments[0]);
    LX_CHECK(cfg->groups[0].deployments[2] == &cfg->deployments[2]);
    LX_CHECK_STR(cfg->deployments[0].api_key, "k1");
    LX_CHECK_STR(cfg->deployments[1].api_key, "k2");
    /* A missing provider key is a warning, not a failure. */
    LX_CHECK(cfg->deployments[2].api_key == NULL);
    LX_CHECK_STR(cfg->deployments[2].missing_env, "OPENAI_API_KEY_3");
    LX_CHECK_INT(cfg->n_warnings, 1);
    for (size_t i = 0; i < 3; i++) {
        LX_CHECK_STR(cfg->deployments[i].mode, "loadbalance");
        LX_CHECK_INT(strlen(cfg->deployments[i].id), 64);
    }
    /* Identical entries still get distinct ids (the ordinal). */
    LX_CHECK(strcmp(cfg->deployments[0].id, cfg->deployments[1].id) != 0);
    LX_CHECK(strcmp(cfg->deployments[1].id, cfg->deployments[2].id) != 0);
    LX_CHECK(lx_config_find_deployment(cfg, lx_str_c(cfg->deployments[1].id)) ==
             &cfg->deployments[1]);
    lx_config_unref(cfg);
}

LX_TEST(tutorial_caching_later_block_wins)
{
    struct lx_error err;
    struct lx_config *cfg = load_fixture("tutorial_caching.yaml", &err);
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    LX_CHECK_INT(cfg->n_warnings, 1); /* the duplicate cache_settings */
    LX_CHECK(cfg->cache.enabled);
    LX_CHECK_STR(cfg->cache.type, "redis");
    LX_CHECK_STR(cfg->cache.redis.host, "localhost");
    LX_CHECK_INT(cfg->cache.redis.port, 6379);
    LX_CHECK_DBL(cfg->cache.similarity_threshold, 0.8);
    LX_CHECK(cfg->cache.redis.password == NULL);
    LX_CHECK_DBL(cfg->cache.ttl, 3600);
    lx_config_unref(cfg);
}

LX_TEST(tutorial_logging)
{
    struct lx_error err;
    struct lx_config *cfg = load_fixture("tutorial_logging.yaml", &err);
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    LX_CHECK_INT(cfg->n_warnings, 0);
    LX_CHECK_INT(cfg->general.log_level, LX_LOG_INFO);
    LX_CHECK_INT(cfg->n_loggers, 3);
    LX_CHECK_STR(cfg->loggers[0].type, "datadog");
    LX_CHECK_INT(cfg->loggers[0].n_params, 2);
    LX_CHECK_STR(cfg->loggers[0].params[0].key, "datadog_api_key");
    LX_CHECK_STR(cfg->loggers[0].params[0].value, "your-datadog-key");
    LX_CHECK_STR(cfg->loggers[0].params[1].key, "datadog_site");
    LX_CHECK_STR(cfg->loggers[0].params[1].value, "datadoghq.com");
    LX_CHECK_STR(cfg->loggers[1].type, "sentry");
    LX_CHECK_INT(cfg->loggers[1].n_params, 1);
    LX_CHECK_STR(cfg->loggers[1].params[0].value, "your-sentry-dsn");
    LX_CHECK_STR(cfg->loggers[2].type, "langsmith");
    LX_CHECK_INT(cfg->loggers[2].n_params, 2);
    LX_CHECK_INT(cfg->loggers[2].line, 15);
    lx_config_unref(cfg);
}

LX_TEST(tutorial_k8s_configmap)
{
    set_tutorial_env();
    struct lx_error err;
    struct lx_config *cfg = load_fixture("tutorial_k8s_configmap.yaml", &err);
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    LX_CHECK_INT(cfg->n_deployments, 1);
    LX_CHECK_STR(cfg->general.database_url, "postgresql://user:pass@postgres:5432/litellm");
    lx_config_unref(cfg);
}

/* ---- a full config ----------------------------------------------------- */

LX_TEST(full_config)
{
    unsetenv("LX_FULL_UNSET_AZURE_KEY");
    struct lx_error err;
    struct lx_config *cfg = load_fixture("full.yaml", &err);
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    /* x-common (unknown top-level key) and the unset Azure key. */
    LX_CHECK_INT(cfg->n_warnings, 2);
    LX_CHECK_INT(cfg->n_environment_variables, 2);
    LX_CHECK_STR(cfg->environment_variables[0].key, "LX_FULL_BASE");
    LX_CHECK_STR(getenv("LX_FULL_KEY"), "sk-full-key");

    LX_CHECK_INT(cfg->n_deployments, 5);
    const struct lx_deployment *d = &cfg->deployments[0];
    LX_CHECK_STR(d->id, "my-gpt-4o");
    LX_CHECK_STR(d->api_key, "sk-full-key");
    LX_CHECK_STR(d->api_base, "http://127.0.0.1:9999/v1");
    LX_CHECK_DBL(d->timeout, 30); /* from the << merge */
    LX_CHECK_INT(d->max_retries, 2);
    LX_CHECK_INT(d->rpm, 100);
    LX_CHECK_INT(d->tpm, 100000);
    LX_CHECK_DBL(d->weight, 2);
    LX_CHECK_STR(d->upstream_model, "gpt-4o");
    LX_CHECK_STR(d->mode, "chat");
    LX_CHECK_STR(d->base_model, "gpt-4o-2024-08-06");
    LX_CHECK_INT(d->n_extra_headers, 1);
    LX_CHECK_STR(d->extra_headers[0].key, "X-Team");
    LX_CHECK_STR(d->extra_headers[0].value, "research");
    char *json = cJSON_PrintUnformatted(d->extra_params);
    LX_CHECK_STR(json, "{\"temperature\":0.2,\"max_tokens\":256,\"seed\":42,\"stop\":[\"END\","
                       "\"STOP\"],\"response_format\":{\"type\":\"json_object\",\"strict\":true}}");
    cJSON_free(json);

    d = &cfg->deployments[1];
    LX_CHECK_INT(d->provider.kind, LX_PROVIDER_AZURE);
    LX_CHECK_STR(d->upstream_model, "my-deployment");
    LX_CHECK_STR(d->api_version, "2024-02-01");
    LX_CHECK_STR(d->missing_env, "LX_FULL_UNSET_AZURE_KEY");
    LX_CHECK(d->api_key == NULL);
    LX_CHECK_DBL(d->stream_timeout, 12.5);
    LX_CHECK_INT(d->order, 1);
    LX_CHECK(d->extra_params == NULL);
    LX_CHECK(d->model_info == NULL);

    d = &cfg->deployments[2];
    LX_CHECK_DBL(d->input_cost_per_token, 3e-6);
    LX_CHECK_DBL(d->output_cost_per_token, 0.000015);
    LX_CHECK(d->has_mock_response);
    LX_CHECK_STR(d->mock_response, "hello from mock");
    LX_CHECK(!cfg->deployments[0].has_mock_response);

    LX_CHECK_STR(cfg->general.master_key, "sk-master-literal");
    LX_CHECK_INT(cfg->general.log_level, LX_LOG_DEBUG);
    LX_CHECK_DBL(cfg->general.max_request_size_mb, 5);
    LX_CHECK_INT(cfg->general.global_max_rpm, 500);
    LX_CHECK(cfg->general.store_model_in_db);
    LX_CHECK_INT(cfg->general.alerting.n, 1);
    LX_CHECK_DBL(cfg->general.keepalive_timeout, 10);

    const struct lx_litellm_settings *l = &cfg->litellm;
    LX_CHECK_DBL(l->request_timeout, 120);
    LX_CHECK_INT(l->num_retries, 3);
    LX_CHECK(l->drop_params && l->json_logs);
    LX_CHECK_INT(l->fallbacks.n, 1);
    LX_CHECK_STR(l->fallbacks.items[0].model, "gpt-4o");
    LX_CHECK_STR(l->fallbacks.items[0].to.items[0], "claude");
    LX_CHECK_INT(l->context_window_fallbacks.n, 1);
    LX_CHECK_INT(l->context_window_fallbacks.items[0].to.n, 2);
    LX_CHECK_STR(l->context_window_fallbacks.items[0].to.items[1], "groq/llama3");
    LX_CHECK_INT(l->default_fallbacks.n, 1);
    LX_CHECK_INT(l->success_callback.n, 1);
    LX_CHECK_INT(l->callbacks.n, 1);
    LX_CHECK_STR(l->callbacks.items[0], "custom_callbacks.proxy_handler_instance");
    LX_CHECK_DBL(l->max_budget, 1000);
    LX_CHECK_INT(l->budget_duration_s, 30 * 86400);
    LX_CHECK(cfg->cache.enabled);
    LX_CHECK_STR(cfg->cache.type, "redis");
    LX_CHECK_STR(cfg->cache.redis.host, "redis.local");
    LX_CHECK_INT(cfg->cache.redis.port, 6380);
    LX_CHECK_DBL(cfg->cache.ttl, 60);
    LX_CHECK_STR(cfg->cache.namespace_, "llmux");

    const struct lx_router_settings *r = &cfg->router;
    LX_CHECK_STR(r->routing_strategy, "usage-based-routing-v2");
    LX_CHECK_INT(r->num_retries, 2);
    LX_CHECK_DBL(r->timeout, 30);
    LX_CHECK_INT(r->allowed_fails, 3);
    LX_CHECK_DBL(r->cooldown_time, 60);
    LX_CHECK_STR(r->redis.host, "localhost");
    LX_CHECK_INT(r->n_model_group_alias, 2);
    LX_CHECK_STR(r->model_group_alias[1].key, "hidden-claude");
    LX_CHECK_STR(r->model_group_alias[1].value, "claude");
    LX_CHECK_INT(r->n_retry_policy, 2);
    LX_CHECK_STR(r->retry_policy[0].key, "RateLimitErrorRetries");
    LX_CHECK_STR(r->retry_policy[0].value, "5");
    LX_CHECK(r->enable_pre_call_checks);

    LX_CHECK_INT(cfg->n_users, 1);
    LX_CHECK_INT(cfg->users[0].user_role, LX_ROLE_PROXY_ADMIN);
    LX_CHECK_INT(cfg->users[0].budget_duration_s, 7 * 86400);
    LX_CHECK_STR(cfg->rate_limit_redis.host, "rl.local");
    LX_CHECK_INT(cfg->rate_limit_redis.port, 6390);
    LX_CHECK_STR(cfg->rate_limit_redis.password, "sk-full-key");
    LX_CHECK_INT(cfg->n_loggers, 1);
    LX_CHECK_STR(cfg->loggers[0].params[0].value, "sk-full-key");
    LX_CHECK_STR(cfg->loggers[0].params[1].value, "10");

    /* Groups and lookups: exact, alias, then the most specific wildcard. */
    LX_CHECK_INT(cfg->n_groups, 4);
    LX_CHECK_STR(cfg->groups[0].name, "gpt-4o");
    LX_CHECK_INT(cfg->groups[0].n, 2);
    LX_CHECK(!cfg->groups[0].is_wildcard);
    LX_CHECK(cfg->groups[2].is_wildcard && cfg->groups[3].is_wildcard);
    const struct lx_model_group *g = lx_config_find_group(cfg, LX_STR("gpt-4o"));
    LX_CHECK(g == &cfg->groups[0]);
    g = lx_config_find_group(cfg, LX_STR("gpt4"));
    LX_CHECK(g == &cfg->groups[0]);
    g = lx_config_find_group(cfg, LX_STR("hidden-claude"));
    LX_CHECK(g && strcmp(g->name, "claude") == 0);
    g = lx_config_find_group(cfg, LX_STR("groq/llama3-70b"));
    LX_CHECK(g && strcmp(g->name, "groq/*") == 0);
    g = lx_config_find_group(cfg, LX_STR("mistral-large"));
    LX_CHECK(g && strcmp(g->name, "*") == 0);
    LX_CHECK(lx_config_find_deployment(cfg, LX_STR("my-gpt-4o")) == &cfg->deployments[0]);
    LX_CHECK(lx_config_find_deployment(cfg, LX_STR("nope")) == NULL);
    lx_config_unref(cfg);
}

LX_TEST(find_group_without_wildcards)
{
    struct lx_error err;
    struct lx_config *cfg = load_str("model_list:\n"
                                     "  - model_name: openai/*\n"
                                     "    litellm_params: {model: openai/*}\n"
                                     "  - model_name: openai/gpt-4*\n"
                                     "    litellm_params: {model: openai/gpt-4*}\n"
                                     "  - model_name: a\n"
                                     "    litellm_params: {model: gpt-4}\n",
                                     &err);
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    LX_CHECK(lx_config_find_group(cfg, LX_STR("claude")) == NULL);
    const struct lx_model_group *g = lx_config_find_group(cfg, LX_STR("openai/gpt-4o"));
    LX_CHECK(g && strcmp(g->name, "openai/gpt-4*") == 0);
    g = lx_config_find_group(cfg, LX_STR("openai/o1"));
    LX_CHECK(g && strcmp(g->name, "openai/*") == 0);
    LX_CHECK(lx_config_find_group(cfg, LX_STR("a")) == &cfg->groups[2]);
    LX_CHECK(lx_config_find_group(cfg, LX_STR("openai")) == NULL);
    LX_CHECK(lx_config_ref(cfg) == cfg);
    lx_config_unref(cfg);
    lx_config_unref(cfg);
}

/* ---- os.environ/ ------------------------------------------------------- */

LX_TEST(env_resolution)
{
    setenv("LX_T_MASTER", "sk-master-from-env", 1);
    setenv("LX_T_BASE", "http://localhost:1234", 1);
    unsetenv("OPENAI_API_KEY");
    struct lx_error err;
    struct lx_config *cfg = load_str("model_list:\n"
                                     "  - model_name: m\n"
                                     "    litellm_params:\n"
                                     "      model: openai/m\n"
                                     "      api_base: os.environ/LX_T_BASE\n"
                                     "general_settings:\n"
                                     "  master_key: os.environ/LX_T_MASTER\n",
                                     &err);
    LX_CHECK(cfg != NULL);
    if (cfg) {
        LX_CHECK_STR(cfg->general.master_key, "sk-master-from-env");
        LX_CHECK_STR(cfg->deployments[0].api_base, "http://localhost:1234");
        LX_CHECK(cfg->deployments[0].api_key == NULL); /* no key and no OPENAI_API_KEY */
        LX_CHECK_INT(cfg->n_warnings, 0);
        lx_config_unref(cfg);
    }
    /* Without api_key, the preset's variable is read at load time. */
    setenv("OPENAI_API_KEY", "sk-from-default-env", 1);
    cfg = load_str("model_list:\n"
                   "  - model_name: m\n"
                   "    litellm_params:\n"
                   "      model: openai/m\n",
                   &err);
    LX_CHECK(cfg != NULL);
    if (cfg) {
        LX_CHECK_STR(cfg->deployments[0].api_key, "sk-from-default-env");
        lx_config_unref(cfg);
    }
    unsetenv("OPENAI_API_KEY");
}

LX_TEST(env_missing_in_litellm_params_is_a_warning)
{
    unsetenv("LX_T_NOPE1");
    unsetenv("LX_T_NOPE2");
    struct lx_error err;
    struct lx_config *cfg = load_str("model_list:\n"
                                     "  - model_name: m\n"
                                     "    litellm_params:\n"
                                     "      model: openai/m\n"
                                     "      api_key: os.environ/LX_T_NOPE1\n"
                                     "      organization: os.environ/LX_T_NOPE2\n"
                                     "      extra_headers: {X-Key: os.environ/LX_T_NOPE2}\n",
                                     &err);
    LX_CHECK(cfg != NULL);
    if (cfg) {
        LX_CHECK_STR(cfg->deployments[0].missing_env, "LX_T_NOPE1");
        LX_CHECK(cfg->deployments[0].api_key == NULL);
        LX_CHECK(cfg->deployments[0].organization == NULL);
        LX_CHECK_INT(cfg->deployments[0].n_extra_headers, 0);
        LX_CHECK_INT(cfg->n_warnings, 1); /* one per deployment */
        lx_config_unref(cfg);
    }
}

LX_TEST(env_missing_elsewhere_is_an_error)
{
    unsetenv("LX_T_NOPE_MASTER");
    struct lx_error err;
    struct lx_config *cfg = load_str("model_list:\n"
                                     "  - model_name: m\n"
                                     "    litellm_params: {model: gpt-4o, api_key: sk-secret-9}\n"
                                     "general_settings:\n"
                                     "  database_url: postgres://u:pw-secret-7@h/db\n"
                                     "  master_key: os.environ/LX_T_NOPE_MASTER\n",
                                     &err);
    LX_CHECK(cfg == NULL);
    LX_CHECK_STR(err.msg, "t.yaml:6: environment variable LX_T_NOPE_MASTER "
                          "(general_settings.master_key) is not set");
    LX_CHECK_INT(err.code, LX_ECONFIG);
    LX_CHECK(strstr(err.msg, "secret") == NULL);

    EXPECT_ERROR("rate_limit_config:\n  redis_password: os.environ/LX_T_NOPE_MASTER\n",
                 "t.yaml:2: environment variable LX_T_NOPE_MASTER "
                 "(rate_limit_config.redis_password) is not set");
    EXPECT_ERROR("logging:\n  - type: x\n    key: os.environ/LX_T_NOPE_MASTER\n",
                 "t.yaml:3: environment variable LX_T_NOPE_MASTER (logging[0].key) is not set");
    /* The model itself must resolve: without it there is no provider. */
    EXPECT_ERROR("model_list:\n  - model_name: m\n    litellm_params:\n"
                 "      model: os.environ/LX_T_NOPE_MASTER\n",
                 "t.yaml:4: environment variable LX_T_NOPE_MASTER (litellm_params.model)");
}

LX_TEST(environment_variables_block)
{
    unsetenv("LX_T_DEFINED");
    struct lx_error err;
    /* Defined after its use in the file: it is still exported first. */
    struct lx_config *cfg = load_str("general_settings:\n"
                                     "  master_key: os.environ/LX_T_DEFINED\n"
                                     "environment_variables:\n"
                                     "  LX_T_DEFINED: sk-defined-here\n"
                                     "  LX_T_NUM: 42\n",
                                     &err);
    LX_CHECK(cfg != NULL);
    if (cfg) {
        LX_CHECK_STR(cfg->general.master_key, "sk-defined-here");
        LX_CHECK_STR(getenv("LX_T_DEFINED"), "sk-defined-here");
        LX_CHECK_STR(getenv("LX_T_NUM"), "42");
        LX_CHECK_INT(cfg->n_environment_variables, 2);
        LX_CHECK_STR(cfg->environment_variables[1].key, "LX_T_NUM");
        lx_config_unref(cfg);
    }
    EXPECT_ERROR("environment_variables:\n  \"A=B\": x\n",
                 "t.yaml:2: environment_variables: 'A=B' is not a valid variable name");
    EXPECT_ERROR("environment_variables: [a]\n", "t.yaml:1: environment_variables: expected a");
}

/* ---- errors ------------------------------------------------------------ */

LX_TEST(error_messages)
{
    static const char head[] = "model_list:\n"
                               "  - model_name: m\n"
                               "    litellm_params:\n"
                               "      model: openai/m\n";
    char buf[1024];
#define WITH_PARAM(p) (snprintf(buf, sizeof(buf), "%s%s", head, p), buf)
    EXPECT_ERROR("general_settings:\n"
                 "  master_key: x\n"
                 "model_list:\n"
                 "  - model_name: m\n"
                 "    litellm_params:\n"
                 "      model: openai/m\n"
                 "      timeout: abc\n",
                 "t.yaml:7: litellm_params.timeout: expected a number");
    EXPECT_ERROR(WITH_PARAM("      rpm: 1.5\n"),
                 "t.yaml:5: litellm_params.rpm: expected an integer");
    EXPECT_ERROR(WITH_PARAM("      rpm: -1\n"),
                 "t.yaml:5: litellm_params.rpm: must not be negative");
    EXPECT_ERROR(WITH_PARAM("      timeout: 0\n"),
                 "t.yaml:5: litellm_params.timeout: must be greater than 0");
    EXPECT_ERROR(WITH_PARAM("      max_retries: [1]\n"),
                 "t.yaml:5: litellm_params.max_retries: expected an integer");
    EXPECT_ERROR(WITH_PARAM("      extra_headers: [a]\n"),
                 "t.yaml:5: litellm_params.extra_headers: expected a mapping");
    EXPECT_ERROR(WITH_PARAM("      mock_response: {a: 1}\n"),
                 "t.yaml:5: litellm_params.mock_response: expected a string");
    EXPECT_ERROR(WITH_PARAM("      api_key: [a]\n"),
                 "t.yaml:5: litellm_params.api_key: expected a string");
    EXPECT_ERROR("model_list: {a: 1}\n", "t.yaml:1: model_list: expected a list");
    EXPECT_ERROR("model_list:\n  - litellm_params: {model: gpt-4}\n",
                 "t.yaml:2: model_list[0]: model_name is required");
    EXPECT_ERROR("model_list:\n  - model_name: a\n",
                 "t.yaml:2: model_list[0] (a): litellm_params is required");
    EXPECT_ERROR("model_list:\n  - model_name: a\n    litellm_params: {api_key: x}\n",
                 "t.yaml:3: model_list[0] (a): litellm_params.model is required");
    EXPECT_ERROR("model_list:\n  - model_name: a\n    litellm_params: gpt-4\n",
                 "t.yaml:3: model_list[0] (a): litellm_params: expected a mapping");
    EXPECT_ERROR("model_list:\n  - model_name: a\n    litellm_params:\n      model: llama3\n",
                 "t.yaml:4: model_list[0] (a): cannot tell the provider of model 'llama3'; use a "
                 "provider prefix like openai/llama3");
    EXPECT_ERROR("model_list:\n  - model_name: a\n    litellm_params:\n      model: foo/bar\n",
                 "t.yaml:4: model_list[0] (a): cannot tell the provider of model 'foo/bar' "
                 "(unknown prefix 'foo'); use a provider prefix like openai/");
    EXPECT_ERROR("model_list:\n  - model_name: a\n    litellm_params:\n"
                 "      model: bar\n      custom_llm_provider: nope\n",
                 "t.yaml:4: model_list[0] (a): unknown custom_llm_provider 'nope'");
    EXPECT_ERROR("model_list:\n  - just-a-string\n", "t.yaml:2: model_list[0]: expected a mapping");
    EXPECT_ERROR("user_config:\n  - user_id: u\n    user_role: customer\n",
                 "t.yaml:3: user_config[0].user_role: expected one of proxy_admin");
    EXPECT_ERROR("user_config:\n  - user_email: a@b\n",
                 "t.yaml:2: user_config[0]: user_id is required");
    EXPECT_ERROR("user_config:\n  - user_id: u\n    models: gpt-4\n",
                 "t.yaml:3: user_config[0].models: expected a list of strings");
    EXPECT_ERROR("user_config:\n  - user_id: u\n    budget_duration: 30x\n",
                 "t.yaml:3: user_config[0].budget_duration: expected a duration");
    EXPECT_ERROR("litellm_settings:\n  budget_duration: soon\n",
                 "t.yaml:2: litellm_settings.budget_duration: expected a duration");
    EXPECT_ERROR("router_settings:\n  routing_strategy: fastest\n",
                 "t.yaml:2: router_settings.routing_strategy: expected one of simple-shuffle");
    EXPECT_ERROR("general_settings:\n  log_level: LOUD\n",
                 "t.yaml:2: general_settings.log_level: expected one of DEBUG");
    EXPECT_ERROR("general_settings:\n  max_request_size_mb: 0\n",
                 "t.yaml:2: general_settings.max_request_size_mb: must be greater than 0");
    EXPECT_ERROR("general_settings:\n  send_timeout: -5\n",
                 "t.yaml:2: general_settings.send_timeout: must be greater than 0");
    EXPECT_ERROR("general_settings:\n  store_model_in_db: maybe\n",
                 "t.yaml:2: general_settings.store_model_in_db: expected true or false");
    EXPECT_ERROR("general_settings: [1, 2]\n", "t.yaml:1: general_settings: expected a mapping");
    EXPECT_ERROR("rate_limit_config:\n  redis_port: 70000\n",
                 "t.yaml:2: rate_limit_config.redis_port: must be at most 65535");
    EXPECT_ERROR("cache_settings:\n  similarity_threshold: 1.5\n",
                 "t.yaml:2: cache_settings.similarity_threshold: must be at most 1");
    EXPECT_ERROR("litellm_settings:\n  fallbacks: gpt-4\n",
                 "t.yaml:2: litellm_settings.fallbacks: expected a mapping of model");
    EXPECT_ERROR("fallback_mapping:\n  gpt-4: gpt-3.5\n",
                 "t.yaml:2: fallback_mapping.gpt-4: expected a list of strings");
    EXPECT_ERROR("logging:\n  - dsn: x\n", "t.yaml:2: logging[0]: type is required");
    EXPECT_ERROR("- a\n- b\n", "t.yaml:1: the config must be a mapping");
    EXPECT_ERROR("model_list:\n  - model_name: a\n    litellm_params: {model: gpt-4}\n"
                 "    model_info: {id: x}\n"
                 "  - model_name: b\n    litellm_params: {model: gpt-4}\n"
                 "    model_info: {id: x}\n",
                 "t.yaml:5: model_list[1]: duplicate model_info.id 'x' (also used by "
                 "model_list[0] at line 2)");
    /* YAML syntax errors carry libyaml's line and problem. */
    EXPECT_ERROR("general_settings:\n  master_key: [a, b\n",
                 "t.yaml:3: did not find expected ',' or ']'");
    EXPECT_ERROR("a: b\n c: d\n", "t.yaml:2: mapping values are not allowed in this context");
    EXPECT_ERROR("a: *nope\n", "t.yaml:1: found undefined alias");
    EXPECT_ERROR("a: 1\n---\nb: 2\n", "t.yaml:2: expected a single YAML document");
    EXPECT_ERROR("general_settings:\n  master_key: \"a\\0b\"\n",
                 "t.yaml:2: general_settings.master_key: the value contains a NUL byte");
#undef WITH_PARAM
}

LX_TEST(hostile_inputs)
{
    /* Nesting depth. */
    char deep[400];
    size_t o = 0;
    o += (size_t)snprintf(deep, sizeof(deep), "a: ");
    for (int i = 0; i < 100; i++) {
        deep[o++] = '[';
    }
    for (int i = 0; i < 100; i++) {
        deep[o++] = ']';
    }
    deep[o] = '\0';
    EXPECT_ERROR(deep, "t.yaml:1: nesting deeper than 64 levels");
    /* A recursive alias. */
    EXPECT_ERROR("a: &x [*x]\n", "t.yaml:1: nesting deeper than 64 levels");
    EXPECT_ERROR("a: &x {b: *x}\n", "t.yaml:1: nesting deeper than 64 levels");
    /* Billion laughs. */
    EXPECT_ERROR("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                 "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                 "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                 "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                 "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                 "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
                 "t.yaml:");
    struct lx_error err;
    LX_CHECK(lx_config_load_string("big.yaml", "", (size_t)5 << 20, &err) == NULL);
    LX_CHECK(strstr(err.msg, "big.yaml: the config is 5242880 bytes; the limit is 4 MiB") ==
             err.msg);
    /* model_list entry cap. */
    size_t n = 10001, cap = n * 4 + 32;
    char *many = lx_malloc(cap);
    o = (size_t)snprintf(many, cap, "model_list:\n");
    for (size_t i = 0; i < n; i++) {
        memcpy(many + o, "- 1\n", 4);
        o += 4;
    }
    many[o] = '\0';
    EXPECT_ERROR(many, "t.yaml:2: model_list: 10001 entries; the limit is 10000");
    lx_free(many);
    LX_CHECK(lx_config_load("/nonexistent/llmux.yaml", &err) == NULL);
    LX_CHECK_INT(err.code, LX_EIO);
    LX_CHECK(strstr(err.msg, "/nonexistent/llmux.yaml: cannot open") == err.msg);
}

/* ---- warnings, duplicates, scalars ------------------------------------- */

LX_TEST(empty_config)
{
    struct lx_error err;
    static const char *const empties[] = {"", "# only a comment\n", "~\n", "---\n"};
    for (size_t i = 0; i < LX_ARRAY_LEN(empties); i++) {
        struct lx_config *cfg = load_str(empties[i], &err);
        LX_CHECK(cfg != NULL);
        if (cfg) {
            LX_CHECK_INT(cfg->n_deployments, 0);
            LX_CHECK_INT(cfg->n_groups, 0);
            LX_CHECK_DBL(cfg->general.max_request_size_mb, 10);
            LX_CHECK(lx_config_find_group(cfg, LX_STR("gpt-4")) == NULL);
            lx_config_unref(cfg);
        }
    }
}

LX_TEST(unknown_keys_warn)
{
    struct lx_error err;
    struct lx_config *cfg = load_str("general_settings:\n"
                                     "  master_kye: x\n"           /* typo: warning */
                                     "  alerting_threshold: 300\n" /* known LiteLLM key: silent */
                                     "litellm_settings:\n"
                                     "  telemetry: false\n"  /* silent */
                                     "  set_verbsoe: true\n" /* warning */
                                     "router_settings:\n"
                                     "  routing_strategy_args: {ttl: 1}\n"
                                     "mcp_servers: {}\n" /* unknown top-level: warning */
                                     "model_list:\n"
                                     "  - model_name: m\n"
                                     "    litellm_params: {model: gpt-4, top_p: 0.5}\n"
                                     "    tpm: 5\n", /* not inside litellm_params: warning */
                                     &err);
    LX_CHECK(cfg != NULL);
    if (cfg) {
        LX_CHECK_INT(cfg->n_warnings, 4);
        LX_CHECK(cfg->general.master_key == NULL);
        LX_CHECK_INT(cfg->deployments[0].tpm, -1);
        const cJSON *tp =
            cJSON_GetObjectItemCaseSensitive(cfg->deployments[0].extra_params, "top_p");
        LX_CHECK(cJSON_IsNumber(tp) && tp->valuedouble == 0.5);
        lx_config_unref(cfg);
    }
}

LX_TEST(duplicate_keys_later_wins)
{
    struct lx_error err;
    struct lx_config *cfg = load_str("general_settings:\n"
                                     "  master_key: first\n"
                                     "  master_key: second\n"
                                     "model_list:\n"
                                     "  - model_name: m\n"
                                     "    litellm_params:\n"
                                     "      model: gpt-4\n"
                                     "      temperature: 0.1\n"
                                     "      temperature: 0.9\n"
                                     "      rpm: 1\n"
                                     "      rpm: 2\n",
                                     &err);
    LX_CHECK(cfg != NULL);
    if (cfg) {
        LX_CHECK_STR(cfg->general.master_key, "second");
        LX_CHECK_INT(cfg->deployments[0].rpm, 2);
        const cJSON *t =
            cJSON_GetObjectItemCaseSensitive(cfg->deployments[0].extra_params, "temperature");
        LX_CHECK(cJSON_IsNumber(t) && t->valuedouble == 0.9);
        LX_CHECK_INT(cJSON_GetArraySize(cfg->deployments[0].extra_params), 1);
        LX_CHECK_INT(cfg->n_warnings, 3);
        lx_config_unref(cfg);
    }
}

/* No api_base: OPENAI_API_BASE / ANTHROPIC_BASE_URL as LiteLLM and the SDKs read them. */
LX_TEST(api_base_from_env)
{
    static const char yaml[] =
        "model_list:\n"
        "  - model_name: gpt-4\n"
        "    litellm_params: {model: gpt-4, api_key: k}\n"
        "  - model_name: claude-3\n"
        "    litellm_params: {model: claude-3-opus-20240229, api_key: k}\n"
        "  - model_name: pinned\n"
        "    litellm_params: {model: gpt-4, api_key: k, api_base: http://x}\n";
    setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1", 1);
    unsetenv("ANTHROPIC_API_BASE");
    setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:8", 1);
    struct lx_error err;
    struct lx_config *cfg = lx_config_load_string("t.yaml", yaml, sizeof(yaml) - 1, &err);
    unsetenv("OPENAI_API_BASE");
    unsetenv("ANTHROPIC_BASE_URL");
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    LX_CHECK_STR(cfg->deployments[0].api_base, "http://127.0.0.1:9/v1");
    LX_CHECK_STR(cfg->deployments[1].api_base, "http://127.0.0.1:8");
    LX_CHECK_STR(cfg->deployments[2].api_base, "http://x");
    lx_config_unref(cfg);
    cfg = lx_config_load_string("t.yaml", yaml, sizeof(yaml) - 1, &err);
    LX_CHECK(cfg != NULL);
    if (cfg) {
        LX_CHECK(cfg->deployments[0].api_base == NULL);
        lx_config_unref(cfg);
    }
}

LX_TEST(scalar_forms)
{
    struct lx_error err;
    struct lx_config *cfg = load_str("general_settings:\n"
                                     "  global_max_rpm: \"10\"\n"
                                     "  global_max_tpm: 1_000_000\n"
                                     "  max_request_size_mb: 10.5\n"
                                     "  health_check_interval: 1e2\n"
                                     "  store_model_in_db: yes\n"
                                     "  background_health_checks: On\n"
                                     "  disable_spend_logs: \"true\"\n"
                                     "  master_key: 12345\n"
                                     "  database_url: null\n"
                                     "model_list:\n"
                                     "  - model_name: 42\n"
                                     "    litellm_params:\n"
                                     "      model: gpt-4\n"
                                     "      rpm: 10.0\n"
                                     "      mock_response: 3.5\n"
                                     "      n: 2\n"
                                     "      logprobs: off\n"
                                     "      user: '123'\n"
                                     "      nothing: ~\n"
                                     "      big: -12345678901\n",
                                     &err);
    LX_CHECK(cfg != NULL);
    if (!cfg) {
        return;
    }
    LX_CHECK_INT(cfg->general.global_max_rpm, 10);
    LX_CHECK_INT(cfg->general.global_max_tpm, 1000000);
    LX_CHECK_DBL(cfg->general.max_request_size_mb, 10.5);
    LX_CHECK_DBL(cfg->general.health_check_interval, 100);
    LX_CHECK(cfg->general.store_model_in_db);
    LX_CHECK(cfg->general.background_health_checks);
    LX_CHECK(cfg->general.disable_spend_logs);
    LX_CHECK_STR(cfg->general.master_key, "12345");
    LX_CHECK(cfg->general.database_url == NULL);
    const struct lx_deployment *d = &cfg->deployments[0];
    LX_CHECK_STR(d->model_name, "42");
    LX_CHECK_INT(d->rpm, 10);
    LX_CHECK(d->has_mock_response);
    LX_CHECK_STR(d->mock_response, "3.5");
    char *json = cJSON_PrintUnformatted(d->extra_params);
    LX_CHECK_STR(json, "{\"n\":2,\"logprobs\":false,\"user\":\"123\",\"nothing\":null,"
                       "\"big\":-12345678901}");
    cJSON_free(json);
    lx_config_unref(cfg);
}

LX_TEST(stable_ids)
{
    static const char a[] = "model_list:\n"
                            "  - model_name: m\n"
                            "    litellm_params: {model: gpt-4, api_key: k1}\n"
                            "  - model_name: m\n"
                            "    litellm_params: {model: gpt-4, api_key: k2}\n"
                            "  - model_name: n\n"
                            "    litellm_params: {model: gpt-4}\n";
    static const char b[] = "model_list:\n"
                            "  - model_name: m\n"
                            "    litellm_params: {model: gpt-4, api_key: other-secret}\n"
                            "  - model_name: m\n"
                            "    litellm_params: {model: gpt-4, api_base: http://x}\n"
                            "  - model_name: n\n"
                            "    litellm_params: {model: gpt-4}\n";
    struct lx_error err;
    struct lx_config *c1 = load_str(a, &err);
    struct lx_config *c2 = load_str(a, &err);
    struct lx_config *c3 = load_str(b, &err);
    LX_CHECK(c1 && c2 && c3);
    if (c1 && c2 && c3) {
        for (size_t i = 0; i < 3; i++) {
            LX_CHECK_STR(c1->deployments[i].id, c2->deployments[i].id);
        }
        /* The api_key is no part of the id; api_base is. */
        LX_CHECK_STR(c1->deployments[0].id, c3->deployments[0].id);
        LX_CHECK(strcmp(c1->deployments[1].id, c3->deployments[1].id) != 0);
        LX_CHECK(strcmp(c1->deployments[0].id, c1->deployments[1].id) != 0);
        LX_CHECK_STR(c1->deployments[2].id, c3->deployments[2].id);
        /* sha256("m\ngpt-4\n\n\n0") */
        LX_CHECK_STR(c1->deployments[0].id,
                     "a047757e3362a491830b80cb0298c66e54cfa8b5d38dcbcceb4260ca1bab616f");
    }
    lx_config_unref(c1);
    lx_config_unref(c2);
    lx_config_unref(c3);
}

LX_TEST(durations)
{
    static const struct {
        const char *in;
        int rc;
        long long secs;
    } cases[] = {
        {"30s", 0, 30},
        {"30m", 0, 1800},
        {"1h", 0, 3600},
        {"30d", 0, 2592000},
        {"1w", 0, 604800},
        {"1mo", 0, 2592000},
        {"2mo", 0, 5184000},
        {"45", 0, 45},
        {" 7d ", 0, 604800},
        {"0", LX_EINVAL, 0},
        {"0d", LX_EINVAL, 0},
        {"-1d", LX_EINVAL, 0},
        {"", LX_EINVAL, 0},
        {"d", LX_EINVAL, 0},
        {"1y", LX_EINVAL, 0},
        {"1.5h", LX_EINVAL, 0},
        {"1 h", LX_EINVAL, 0},
        {"99999999999999999999s", LX_EINVAL, 0},
        {"9223372036854775807mo", LX_EINVAL, 0},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(cases); i++) {
        long long out = -7;
        int rc = lx_duration_parse(lx_str_c(cases[i].in), &out);
        if (rc != cases[i].rc || (rc == 0 && out != cases[i].secs)) {
            fprintf(stderr, "  FAIL duration \"%s\": rc %d out %lld\n", cases[i].in, rc, out);
            lx_test_current_failed_ = 1;
        }
    }
}

LX_TEST(roles)
{
    LX_CHECK_INT(lx_user_role_parse("proxy_admin"), LX_ROLE_PROXY_ADMIN);
    LX_CHECK_INT(lx_user_role_parse("proxy_admin_viewer"), LX_ROLE_PROXY_ADMIN_VIEWER);
    LX_CHECK_INT(lx_user_role_parse("internal_user"), LX_ROLE_INTERNAL_USER);
    LX_CHECK_INT(lx_user_role_parse("internal_user_viewer"), LX_ROLE_INTERNAL_USER_VIEWER);
    LX_CHECK_INT(lx_user_role_parse("app_user"), LX_ROLE_APP_USER);
    LX_CHECK_INT(lx_user_role_parse("customer"), LX_ROLE_UNSET);
    LX_CHECK_INT(lx_user_role_parse("team"), LX_ROLE_UNSET);
    LX_CHECK_INT(lx_user_role_parse("PROXY_ADMIN"), LX_ROLE_UNSET);
    LX_CHECK_INT(lx_user_role_parse(NULL), LX_ROLE_UNSET);
    LX_CHECK_STR(lx_user_role_name(LX_ROLE_INTERNAL_USER_VIEWER), "internal_user_viewer");
    LX_CHECK_STR(lx_user_role_name(LX_ROLE_APP_USER), "app_user");
}

/* ---- allocation failures ----------------------------------------------- */

LX_TEST(alloc_failure_injection)
{
    unsetenv("LX_FULL_UNSET_AZURE_KEY");
    const char *dir = getenv("LX_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof(path), "%s/config/full.yaml", dir ? dir : "data");
    int saved = lx_log_level_current;
    lx_log_set_level(LX_LOG_CRITICAL);
    int ok = 0, failed = 0;
    for (long n = 0; n < 2000; n++) {
        struct lx_error err;
        lx_alloc_fail_after(n, 0);
        struct lx_config *cfg = lx_config_load(path, &err);
        lx_alloc_fail_after(-1, 0);
        if (cfg) {
            LX_CHECK_INT(cfg->n_deployments, 5);
            lx_config_unref(cfg);
            ok++;
            if (ok > 3) {
                break; /* past the last allocation: every later n succeeds too */
            }
        } else {
            failed++;
            if (err.code != LX_ENOMEM) {
                fprintf(stderr, "  FAIL n=%ld: %s\n", n, err.msg);
                lx_test_current_failed_ = 1;
                break;
            }
        }
    }
    lx_log_set_level((enum lx_log_level)saved);
    LX_CHECK(failed > 20);
    LX_CHECK(ok > 0);
}

/* Models added at run time join the file's model_list; a bad one is skipped, not fatal. */
LX_TEST(stored_models)
{
    setenv("LX_TEST_STORED_KEY", "sk-from-env", 1);
    const char *json =
        "[{\"model_name\":\"db-gpt\",\"litellm_params\":{\"model\":\"openai/gpt-4o\","
        "\"api_key\":\"sk-clear\",\"api_base\":\"http://127.0.0.1:9/v1\",\"temperature\":0.5},"
        "\"model_info\":{\"id\":\"uuid-1\",\"db_model\":true}},"
        "{\"model_name\":\"bad\",\"litellm_params\":{\"model\":\"nosuchprovider/x\"},"
        "\"model_info\":{\"id\":\"uuid-2\"}},"
        "{\"model_name\":\"env\",\"litellm_params\":{\"model\":\"openai/gpt-4o-mini\","
        "\"api_key\":\"os.environ/LX_TEST_STORED_KEY\"},\"model_info\":{\"id\":\"uuid-3\"}},"
        "{\"model_name\":\"dup\",\"litellm_params\":{\"model\":\"openai/x\"},"
        "\"model_info\":{\"id\":\"uuid-1\"}}]";
    cJSON *models = cJSON_Parse(json);
    LX_CHECK(models != NULL);
    struct lx_error err = {0};
    struct lx_config *cfg = lx_config_load_with_models(NULL, models, &err);
    LX_CHECK(cfg != NULL);
    if (cfg) {
        LX_CHECK_INT(cfg->n_deployments, 2);
        LX_CHECK_INT(cfg->n_groups, 2);
        const struct lx_deployment *d = lx_config_find_deployment(cfg, LX_STR("uuid-1"));
        LX_CHECK(d != NULL);
        if (d) {
            LX_CHECK_STR(d->model_name, "db-gpt");
            LX_CHECK_STR(d->api_key, "sk-clear");
            LX_CHECK_STR(d->api_base, "http://127.0.0.1:9/v1");
            LX_CHECK(d->extra_params && cJSON_GetObjectItem(d->extra_params, "temperature"));
            LX_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(d->model_info, "db_model")));
        }
        d = lx_config_find_deployment(cfg, LX_STR("uuid-3"));
        LX_CHECK(d && d->api_key && strcmp(d->api_key, "sk-from-env") == 0);
        LX_CHECK(lx_config_find_deployment(cfg, LX_STR("uuid-2")) == NULL);
        LX_CHECK(cfg->n_warnings >= 2);
        lx_config_unref(cfg);
    }
    /* With a file: the file's models first, then the stored ones. */
    const char *dir = getenv("LX_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof(path), "%s/config/tutorial_basic.yaml", dir ? dir : "data");
    set_tutorial_env();
    struct lx_config *file = lx_config_load(path, &err);
    cfg = lx_config_load_with_models(path, models, &err);
    LX_CHECK(file && cfg);
    if (file && cfg) {
        LX_CHECK_INT(cfg->n_deployments, file->n_deployments + 2);
        LX_CHECK_STR(cfg->deployments[file->n_deployments].model_name, "db-gpt");
        LX_CHECK(lx_config_find_group(cfg, LX_STR("db-gpt")) != NULL);
    }
    lx_config_unref(file);
    lx_config_unref(cfg);
    cJSON_Delete(models);
    unsetenv("LX_TEST_STORED_KEY");
}

LX_TEST_MAIN(LX_RUN(tutorial_basic), LX_RUN(tutorial_auth_duplicate_general_settings),
             LX_RUN(tutorial_rate_limit), LX_RUN(tutorial_cost_tracking),
             LX_RUN(tutorial_fallbacks), LX_RUN(tutorial_loadbalance),
             LX_RUN(tutorial_caching_later_block_wins), LX_RUN(tutorial_logging),
             LX_RUN(tutorial_k8s_configmap), LX_RUN(full_config),
             LX_RUN(find_group_without_wildcards), LX_RUN(env_resolution),
             LX_RUN(env_missing_in_litellm_params_is_a_warning),
             LX_RUN(env_missing_elsewhere_is_an_error), LX_RUN(environment_variables_block),
             LX_RUN(error_messages), LX_RUN(hostile_inputs), LX_RUN(empty_config),
             LX_RUN(unknown_keys_warn), LX_RUN(duplicate_keys_later_wins),
             LX_RUN(api_base_from_env), LX_RUN(scalar_forms), LX_RUN(stable_ids), LX_RUN(durations),
             LX_RUN(roles), LX_RUN(alloc_failure_injection), LX_RUN(stored_models))
