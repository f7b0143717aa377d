/*
 * The configuration model: a LiteLLM-compatible config.yaml loaded into an
 * immutable, reference-counted snapshot. Every string and array of a snapshot
 * lives in the snapshot's own arena and is freed with its last reference, so
 * a request that took a reference can keep using pointers into it while a
 * SIGHUP reload swaps in a new snapshot.
 *
 * Secrets given as `os.environ/VAR` are resolved at load. In litellm_params a
 * missing variable does not stop the start (LiteLLM reads provider keys
 * lazily, and an example config names keys the user may not have yet): the
 * deployment records the variable in `missing_env` and its requests fail with
 * an error naming it. Everywhere else a missing variable is a load error.
 *
 * Unset optional numbers are negative (-1) unless stated otherwise; unset
 * strings are NULL.
 */
#ifndef LX_CONFIG_CONFIG_H
#define LX_CONFIG_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/str.h"
#include "providers/kind.h"

struct lx_kv {
    const char *key;
    const char *value;
};

struct lx_strlist {
    const char **items;
    size_t n;
};

/* One entry of fallback_mapping / *fallbacks: requests for `model` fall back to `to`, in order. */
struct lx_fallback {
    const char *model;
    struct lx_strlist to;
};

struct lx_fallback_list {
    struct lx_fallback *items;
    size_t n;
};

struct lx_dep_stats;

/* One entry of model_list. */
struct lx_deployment {
    int line;               /* line of the entry in the config file */
    size_t index;           /* position in model_list */
    const char *model_name; /* the model group clients ask for */
    const char *id;         /* model_info.id, or a stable hash of the entry */

    /* litellm_params */
    const char *model;                 /* as written: "openai/gpt-4o", "claude-3-opus-20240229" */
    struct lx_provider_match provider; /* resolved from model / custom_llm_provider */
    const char *upstream_model;        /* model without the provider prefix (NUL-terminated copy) */
    const char *custom_llm_provider;
    const char *api_key;  /* resolved, else the preset's key variable read at load, else NULL */
    const char *api_base; /* resolved; NULL = the preset's default */
    const char *api_version;
    const char *organization;
    const char *region_name;
    const char *aws_access_key_id;
    const char *aws_secret_access_key;
    const char *aws_session_token;
    const char *aws_region_name;
    const char *missing_env; /* first os.environ/ variable that was not set, or NULL */
    double timeout;          /* seconds; -1 = unset */
    double stream_timeout;   /* seconds; -1 = unset */
    int max_retries;         /* -1 = unset */
    long long rpm;           /* -1 = unset */
    long long tpm;           /* -1 = unset */
    double weight;           /* simple-shuffle weight; default 1 */
    int order;               /* deployment priority; -1 = unset */
    bool has_mock_response;
    const char *mock_response;    /* string (may be ""), valid when has_mock_response */
    double input_cost_per_token;  /* -1 = unset */
    double output_cost_per_token; /* -1 = unset */
    struct lx_kv *extra_headers;  /* litellm_params.extra_headers / headers */
    size_t n_extra_headers;
    /*
     * Other litellm_params keys (temperature, max_tokens, seed...): request
     * parameters sent to the provider when the request does not set them.
     * A JSON object owned by the snapshot, or NULL.
     */
    cJSON *extra_params;

    /* model_info */
    const char *mode; /* "loadbalance", "fallback", "chat", "embedding", ...; NULL = unset */
    const char *base_model;
    cJSON *model_info; /* the whole model_info mapping as JSON (owned), or NULL */

    /* Process-wide health and usage (router/router.h); set by lx_router_bind, else NULL. */
    struct lx_dep_stats *stats;
};

/* Deployments sharing a model_name, in config order. */
struct lx_model_group {
    const char *name;
    struct lx_deployment **deployments;
    size_t n;
    bool is_wildcard; /* name contains '*' */
};

enum lx_user_role {
    LX_ROLE_UNSET = 0,
    LX_ROLE_PROXY_ADMIN,
    LX_ROLE_PROXY_ADMIN_VIEWER,
    LX_ROLE_INTERNAL_USER,
    LX_ROLE_INTERNAL_USER_VIEWER,
    LX_ROLE_APP_USER,
};

/* One entry of user_config. */
struct lx_user_cfg {
    int line;
    const char *user_id;
    const char *user_email;
    enum lx_user_role user_role;
    double max_budget; /* USD; -1 = unset */
    struct lx_strlist models;
    long long rpm_limit;         /* -1 = unset */
    long long tpm_limit;         /* -1 = unset */
    const char *budget_duration; /* as written ("30d") */
    long long budget_duration_s; /* parsed; -1 = unset */
};

struct lx_redis_cfg {
    const char *host; /* NULL = not configured */
    int port;         /* default 6379 */
    const char *password;
    const char *username;
};

struct lx_cache_cfg {
    bool enabled;     /* litellm_settings.cache, or a cache_settings block */
    const char *type; /* "redis", "local", "redis-semantic", ...; NULL = unset */
    struct lx_redis_cfg redis;
    double similarity_threshold; /* -1 = unset */
    double ttl;                  /* seconds; -1 = unset */
    const char *namespace_;
};

/* One entry of `logging:` (the tutorial's exporters). */
struct lx_logger_cfg {
    int line;
    const char *type;     /* "datadog", "sentry", "langsmith", ... */
    struct lx_kv *params; /* every other key, values resolved (may be secrets) */
    size_t n_params;
};

struct lx_general_settings {
    const char *master_key; /* NULL = no auth */
    const char *database_url;
    int log_level;               /* enum lx_log_level; 0 = unset */
    double max_request_size_mb;  /* default 10 */
    double max_response_size_mb; /* cap on buffered upstream responses; default 128 */
    long long global_max_rpm;    /* -1 = unset */
    long long global_max_tpm;    /* -1 = unset */
    bool store_model_in_db;
    bool background_health_checks;
    double health_check_interval; /* seconds; default 300 */
    bool disable_spend_logs;
    /* Spend journal directory; NULL = "<database file>.journal" (SQLite), "llmux-journal"
     * (PostgreSQL). */
    const char *spend_journal_dir;
    struct lx_strlist alerting;
    /* HTTP server limits (llmux's own keys; seconds). */
    double request_header_timeout; /* default 30: whole header block must arrive in this time */
    double request_body_timeout;   /* default 60: whole body must arrive in this time */
    double keepalive_timeout;      /* default 65: idle keep-alive connections close after this */
    double send_timeout;  /* default 120: a client that reads nothing for this long is dropped */
    double drain_timeout; /* default 30: SIGTERM waits this long for in-flight requests */
    double max_header_size_kb; /* default 32 */
    /* Seconds a virtual key's identity is served from memory before a re-read; default 30. */
    double user_api_key_cache_ttl;
};

struct lx_litellm_settings {
    double request_timeout; /* seconds; default 600 */
    int num_retries;        /* -1 = unset */
    struct lx_fallback_list fallbacks;
    struct lx_fallback_list context_window_fallbacks;
    struct lx_fallback_list content_policy_fallbacks;
    struct lx_strlist default_fallbacks;
    int max_fallbacks;    /* -1 = unset */
    int allowed_fails;    /* -1 = unset; router_settings.allowed_fails wins */
    double cooldown_time; /* seconds; -1 = unset; router_settings.cooldown_time wins */
    bool disable_cooldowns;
    bool json_logs;
    bool drop_params;
    bool set_verbose;
    bool cost_tracking;
    double max_budget;           /* USD; -1 = unset */
    const char *budget_duration; /* as written */
    long long budget_duration_s; /* -1 = unset */
    struct lx_strlist success_callback;
    struct lx_strlist failure_callback;
    struct lx_strlist callbacks;
    bool turn_off_message_logging;
    bool redact_user_api_key_info;
};

/* One entry of router_settings.model_group_retry_policy. */
struct lx_group_retry_policy {
    const char *group;
    struct lx_kv *policy; /* error class -> count (decimal string) */
    size_t n_policy;
};

struct lx_router_settings {
    const char *routing_strategy; /* validated name; NULL = simple-shuffle */
    int num_retries;              /* -1 = unset */
    double timeout;               /* seconds; -1 = unset */
    double stream_timeout;        /* seconds; -1 = unset */
    double retry_after;           /* seconds; -1 = unset */
    int allowed_fails;            /* -1 = unset */
    double cooldown_time;         /* seconds; -1 = unset */
    struct lx_fallback_list fallbacks;
    struct lx_fallback_list context_window_fallbacks;
    struct lx_fallback_list content_policy_fallbacks;
    struct lx_strlist default_fallbacks;
    int max_fallbacks; /* -1 = unset */
    struct lx_redis_cfg redis;
    struct lx_kv *model_group_alias; /* alias -> model group */
    size_t n_model_group_alias;
    struct lx_kv *retry_policy; /* error class -> count (value as decimal string) */
    size_t n_retry_policy;
    struct lx_group_retry_policy *group_retry_policy; /* model_group_retry_policy */
    size_t n_group_retry_policy;
    bool enable_pre_call_checks;
    bool disable_cooldowns;
};

struct lx_config {
    atomic_int refs;
    struct lx_arena arena; /* every string and array below */
    const char *path;
    int64_t loaded_at; /* wall-clock seconds */

    struct lx_deployment *deployments;
    size_t n_deployments;
    struct lx_model_group *groups; /* in order of first appearance */
    size_t n_groups;

    struct lx_general_settings general;
    struct lx_litellm_settings litellm;
    struct lx_router_settings router;

    struct lx_user_cfg *users; /* user_config */
    size_t n_users;
    struct lx_redis_cfg rate_limit_redis;     /* rate_limit_config */
    struct lx_fallback_list fallback_mapping; /* the tutorial's fallback_mapping */
    struct lx_cache_cfg cache;                /* cache_settings / litellm_settings.cache_params */
    struct lx_logger_cfg *loggers;            /* logging */
    size_t n_loggers;
    struct lx_kv *environment_variables;
    size_t n_environment_variables;

    int n_warnings; /* how many warnings the load logged */
};

/*
 * Load and validate a config file. Warnings (unknown keys, duplicate keys,
 * unset provider keys) are logged as "file:line: message" and counted. On
 * failure returns NULL and fills err with "file:line: message"; no secret
 * value ever appears in a message. The result has one reference.
 * environment_variables are exported (setenv) before os.environ/ references
 * are resolved. Blocking (reads the file): never on a loop thread.
 */
struct lx_config *lx_config_load(const char *path, struct lx_error *err);

/* The same from a string; `name` is used in messages in place of a path. */
struct lx_config *lx_config_load_string(const char *name, const char *yaml, size_t len,
                                        struct lx_error *err);

/*
 * lx_config_load plus models added at run time: `models` (borrowed; may be
 * NULL) is a JSON array of {"model_name", "litellm_params", "model_info"}
 * objects, secrets in clear, model_info.id set. They become deployments after
 * the file's model_list, read exactly like its entries (os.environ/
 * references resolved now). One that does not load is skipped with a
 * warning naming its model_name and id. path NULL = no config file.
 */
struct lx_config *lx_config_load_with_models(const char *path, const cJSON *models,
                                             struct lx_error *err);

/*
 * Check one model_list entry given as JSON ({"model_name", "litellm_params",
 * "model_info"}) the way the loader reads it. Returns 0, or LX_ECONFIG with
 * err saying what is wrong (never a value). Computation only (and getenv
 * for os.environ/ references).
 */
int lx_config_check_model(const cJSON *model, struct lx_error *err);

/* Thread-safe reference counting. */
struct lx_config *lx_config_ref(struct lx_config *cfg);
void lx_config_unref(struct lx_config *cfg);

/*
 * Find the model group for a requested model: exact name first, then
 * router_settings.model_group_alias, then wildcard groups (a name with a "*",
 * the longest matching pattern wins). NULL when nothing matches.
 */
const struct lx_model_group *lx_config_find_group(const struct lx_config *cfg, struct lx_str model);

/* The deployment whose id is `id`, or NULL. */
const struct lx_deployment *lx_config_find_deployment(const struct lx_config *cfg,
                                                      struct lx_str id);

/*
 * Parse a LiteLLM duration ("30s", "30m", "1h", "30d", "1w", "1mo"; "mo" is
 * 30 days) into seconds. Returns 0 or LX_EINVAL.
 */
int lx_duration_parse(struct lx_str s, long long *out_seconds);

/* "proxy_admin", ... -> role; LX_ROLE_UNSET when unknown. */
enum lx_user_role lx_user_role_parse(const char *s);
const char *lx_user_role_name(enum lx_user_role role);

#endif
