/*
 * The router: which deployment of a model group serves an attempt, how
 * upstream errors are classified, and the process-wide health and usage of
 * every deployment (in-flight calls, latency, failures and requests in the
 * current minute, cooldowns) that the choice is based on.
 *
 * Health is shared by all worker threads: one struct lx_dep_stats per
 * deployment id, held by a struct lx_router_table that lives as long as the
 * process. lx_router_bind points each deployment of a config snapshot at the
 * stats of its id, so a SIGHUP reload keeps the health of unchanged ids. Stats
 * fields are atomics; a deployment whose `stats` is NULL (a snapshot never
 * bound) is always healthy and nothing is recorded for it.
 *
 * Strategies (router_settings.routing_strategy): simple-shuffle (weighted
 * random by weight, else rpm, else tpm), least-busy (fewest calls in flight),
 * latency-based-routing (lowest latency EWMA; unmeasured first),
 * usage-based-routing and -v2 (fewest tokens this minute, deployments at
 * their rpm/tpm limit skipped), cost-based-routing (cheapest input+output
 * price per token: litellm_params / model_info prices, else the built-in
 * price table, spend/prices.h; unpriced deployments last). Before the strategy:
 * cooling deployments are skipped, deployments already tried by the request
 * are avoided while another exists, the lowest litellm_params.order wins, and
 * a group whose deployments all say model_info.mode: fallback is used in
 * config order (a primary and its standbys). Ties are broken at random.
 */
#ifndef LX_ROUTER_ROUTER_H
#define LX_ROUTER_ROUTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/str.h"

/* Error classes, as LiteLLM's retry_policy names them (`<Name>ErrorRetries`). */
enum lx_err_class {
    LX_ERRC_NONE = 0,
    LX_ERRC_BAD_REQUEST,    /* 400, 413, 422, ...: the request, not the deployment */
    LX_ERRC_AUTH,           /* 401, 403 */
    LX_ERRC_NOT_FOUND,      /* 404 */
    LX_ERRC_TIMEOUT,        /* 408, 504 from upstream, our own timeouts */
    LX_ERRC_RATE_LIMIT,     /* 429, every deployment cooling down */
    LX_ERRC_CONTEXT_WINDOW, /* a 400 saying the prompt exceeds the context window */
    LX_ERRC_CONTENT_POLICY, /* a 400 saying the content policy refused the request */
    LX_ERRC_SERVER,         /* 5xx, connection failures, malformed answers */
    LX_ERRC_COUNT,
};

/* Process-wide health and usage of one deployment id. */
struct lx_dep_stats {
    atomic_int in_flight;
    atomic_uint_fast64_t latency_us; /* EWMA of time to answer (streams: first token); 0 = none */
    atomic_int_fast64_t minute;      /* minute (monotonic) the per-minute counters count */
    atomic_int fails;                /* failures this minute */
    atomic_int successes;            /* successes this minute */
    atomic_llong rpm_used;           /* requests started this minute */
    atomic_llong tpm_used;           /* tokens answered this minute */
    atomic_int_fast64_t cooldown_until_ms; /* monotonic ms; 0 = not cooling */
    /* The last background or on-demand health check (see lx_router_note_check). */
    atomic_int check_state;         /* 0 = never checked, 1 = healthy, 2 = unhealthy */
    atomic_int_fast64_t checked_at; /* wall-clock seconds */
    char check_error[256];          /* last failure, under the table's lock */
};

struct lx_router_table;

/* A new, empty table. Any thread; free with lx_router_table_free after every bound config. */
struct lx_router_table *lx_router_table_new(void);
void lx_router_table_free(struct lx_router_table *t);

/*
 * Point every deployment of cfg at the stats of its id (created on first
 * sight). Call before the snapshot is shared with other threads (the thread
 * that loaded it). Deployment ids that leave the config keep their stats.
 */
void lx_router_bind(struct lx_router_table *t, struct lx_config *cfg);

/* The last health-check error of dep ("" when none), copied into out. Any thread. */
void lx_router_check_error(const struct lx_router_table *t, const struct lx_deployment *dep,
                           char *out, size_t cap);
/* Record a health check result (error NULL when healthy). Any thread. */
void lx_router_note_check(struct lx_router_table *t, const struct lx_deployment *dep,
                          const char *error);

/* Up to this many deployments of one request are remembered as tried. */
#define LX_ROUTER_MAX_TRIED 16

/* What a request asks of the router. */
struct lx_route_req {
    const struct lx_config *cfg;
    const struct lx_model_group *group;
    const struct lx_deployment *pinned; /* model: <model_info.id>: only this one */
    const struct lx_deployment *tried[LX_ROUTER_MAX_TRIED];
    size_t n_tried;
    uint64_t now_ms; /* lx_mono_ms() */
};

/*
 * Choose a deployment. Returns it, or NULL when every deployment of the group
 * is cooling down; then *out_wait_ms (if not NULL) is how long until the
 * first one is usable again. Any thread; never blocks.
 */
const struct lx_deployment *lx_router_pick(const struct lx_route_req *rr, uint64_t *out_wait_ms);

/* True when a deployment other than those tried is usable now. */
bool lx_router_has_untried(const struct lx_route_req *rr);

/* True when some deployment (tried or not) is usable now. */
bool lx_router_has_usable(const struct lx_route_req *rr);

/* Record a deployment in rr->tried (once; silently capped). */
void lx_router_note_tried(struct lx_route_req *rr, const struct lx_deployment *dep);

/* An attempt on dep starts: counts it in flight and in this minute's requests. */
void lx_router_begin(const struct lx_deployment *dep, uint64_t now_ms);
/* It succeeded after latency_us, answering `tokens` tokens (0 = unknown). */
void lx_router_end_ok(const struct lx_deployment *dep, uint64_t now_ms, uint64_t latency_us,
                      long long tokens);
/*
 * It failed with an error of class `ec` (HTTP status `status`, upstream
 * retry-after `retry_after_s`, 0 = none). Counts the failure and cools the
 * deployment down when the rules say so (docs/internals/router.md). Returns
 * true when it was put in cooldown.
 */
bool lx_router_end_fail(const struct lx_config *cfg, const struct lx_model_group *group,
                        const struct lx_deployment *dep, uint64_t now_ms, enum lx_err_class ec,
                        int status, double retry_after_s);
/* The attempt ended without an outcome (the client left): only leaves the in-flight count. */
void lx_router_end_abandoned(const struct lx_deployment *dep);

/* Whether dep is cooling down at now_ms. */
bool lx_router_is_cooling(const struct lx_deployment *dep, uint64_t now_ms);

/*
 * The class of an upstream error: its HTTP status and its OpenAI-shaped error
 * body (message and code are searched for context-window and content-policy
 * wording as LiteLLM's exception mapping does). body may be empty.
 */
enum lx_err_class lx_router_classify(int status, struct lx_str body);

/* LiteLLM's retry_policy key for a class ("RateLimitErrorRetries"), or NULL. */
const char *lx_router_class_policy_name(enum lx_err_class ec);

/*
 * The retries for a class in a model group: model_group_retry_policy's count
 * for the group, else retry_policy's, else -1 when neither names the class.
 */
int lx_router_policy_retries(const struct lx_config *cfg, const char *group, enum lx_err_class ec);

/*
 * The fallback model groups configured for `model` (the requested name or
 * its group name) and an error class: context_window_fallbacks for
 * context-window errors, content_policy_fallbacks for content-policy errors,
 * nothing for other bad requests, and otherwise fallbacks (router_settings,
 * then litellm_settings), the tutorial's fallback_mapping, then
 * default_fallbacks. A "*" entry matches any model. Returns the list, or an
 * empty one.
 */
struct lx_strlist lx_router_fallbacks(const struct lx_config *cfg, const char *model,
                                      enum lx_err_class ec);

/* max_fallbacks (router_settings, then litellm_settings; default 5). */
int lx_router_max_fallbacks(const struct lx_config *cfg);

/*
 * Seconds to wait before retrying the same deployment after `retries_done`
 * retries: the upstream's retry-after when it is in (0, 60], else
 * exponential backoff from 0.5 s (×2 per retry, capped at 8 s, minus up to
 * 25% jitter); never less than router_settings.retry_after.
 */
double lx_router_backoff_s(const struct lx_config *cfg, int retries_done, double retry_after_s);

/* Parse a Retry-After value: delta-seconds (RFC 9110 §10.2.3); 0 when absent or a date. */
double lx_router_parse_retry_after(struct lx_str v);

#endif
