/*
 * Rate limits: requests per minute (rpm), tokens per minute (tpm) and
 * requests in flight (max_parallel) over a list of scopes per request.
 *
 * A scope is a counter name plus its limits:
 *
 *   "global"                      general_settings.global_max_rpm / global_max_tpm
 *   "deployment:<id>"             litellm_params rpm / tpm of a deployment
 *   "key:<token>"                 a virtual key's rpm_limit / tpm_limit / max_parallel_requests
 *   "user:<user_id>"              the same on a user (across all the user's keys)
 *   "team:<team_id>"              the same on a team
 *   "keymodel:<token>:<model>"    model_rpm_limit / model_tpm_limit of a key for one model
 *
 * Windows are fixed: the current one is floor(now / 60 s). A request is
 * counted when it is admitted; its tokens are added from the provider's real
 * usage when it ends; its in-flight slot is held from admission to
 * lx_limits_req_end. Admission is all-or-nothing: either every scope has room
 * and every rpm counter is incremented, or nothing changes.
 *
 * Counters live in one process-wide table shared by every worker thread
 * (striped locks). When Redis is configured, rpm and tpm counters are shared
 * across instances through it: the admission of all scopes of a request is
 * one Lua script (EVALSHA, EVAL on NOSCRIPT) that checks every scope and
 * increments only if all pass; tokens are added with INCRBY; keys expire
 * after two windows. The table then caches the last totals Redis reported.
 * If Redis cannot be reached (refused, 50 ms command timeout, lost link),
 * the request is decided at once on the local table (the last Redis totals
 * plus what this process counted since), with no client error; those local
 * deltas are pushed to Redis when the link comes back, so the shared counts
 * of the current window resync. In-flight counts (max_parallel) are always
 * per process: a crashed instance can never leak slots in a shared store.
 *
 * How a request uses it (all on the worker's loop thread):
 *
 *   struct lx_limits_req *lr = lx_limits_req_new(lim);
 *   lx_limits_req_add_config(lr, cfg, dep);            // global + deployment
 *   lx_limits_req_add_identity(lr, id, model_group);   // key, user, team, keymodel
 *   switch (lx_limits_admit(lr, cb, ud)) { 0: go on; LX_ERATELIMIT: 429; LX_EAGAIN: wait for cb }
 *   ... lx_limits_req_headers(lr, ...) on the response ...
 *   lx_limits_req_end(lr, total_tokens);               // exactly once, on every path
 *
 * lx_limits_req_end is the only way to release a request; it also cancels a
 * pending admission (its callback then never runs), so calling it from the
 * one place where a call's state is freed makes a leaked slot impossible.
 */
#ifndef LX_LIMITS_LIMITS_H
#define LX_LIMITS_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "auth/identity.h"
#include "config/config.h"
#include "core/compiler.h"
#include "http/http.h"

#define LX_LIMITS_WINDOW_S 60
#define LX_LIMITS_MAX_SCOPES 8
#define LX_LIMITS_NAME_MAX 300

enum lx_limits_kind {
    LX_LIMITS_NONE = 0,
    LX_LIMITS_RPM = 1,
    LX_LIMITS_TPM = 2,
    LX_LIMITS_PARALLEL = 3,
};

struct lx_limits_scope {
    const char *name;       /* see above; copied */
    long long rpm;          /* -1 = none */
    long long tpm;          /* -1 = none */
    long long max_parallel; /* -1 = none */
};

/* ---- process-wide counters ---- */

struct lx_limits_table;

/* The process's table (created on first use, lives until exit). Thread-safe. */
struct lx_limits_table *lx_limits_table_global(void);
/* Separate tables, for tests. */
struct lx_limits_table *lx_limits_table_new(void);
void lx_limits_table_free(struct lx_limits_table *t);
/* Window length in seconds (default 60), for tests. */
void lx_limits_table_set_window(struct lx_limits_table *t, int seconds);
/* Fix the clock (unix seconds) for tests; 0 = the real clock. */
void lx_limits_table_set_now(struct lx_limits_table *t, int64_t now_s);

/* ---- the per-worker limiter ---- */

struct lx_limits;

/* A limiter for one worker loop over table t (borrowed; outlives the limiter). */
struct lx_limits *lx_limits_new(uv_loop_t *loop, struct lx_limits_table *t);
/*
 * Use the Redis a config names: rate_limit_config, else
 * router_settings.redis_host, else a redis cache_params/cache_settings; none
 * = local counters only. Reconnects only when the target changes.
 */
void lx_limits_set_config(struct lx_limits *l, const struct lx_config *cfg);
/* The same with an explicit target (NULL or no host = none). */
void lx_limits_set_redis(struct lx_limits *l, const struct lx_redis_cfg *rc);
struct lx_redis;
/* The limiter's Redis link (borrowed; replaced on a reload naming another target), or NULL. */
struct lx_redis *lx_limits_redis(struct lx_limits *l);
/* True when the Redis link is up (false without Redis). */
bool lx_limits_redis_up(const struct lx_limits *l);
/* Close; handles are released asynchronously, so the loop must keep running. */
void lx_limits_free(struct lx_limits *l);

/*
 * True when a deployment is known to be over its rpm or tpm in the current
 * window (from this process's view: local counts and the last Redis totals),
 * so the router can pick another one.
 */
bool lx_limits_deployment_full(struct lx_limits *l, const struct lx_deployment *dep);

/* ---- one request ---- */

struct lx_limits_req;

struct lx_limits_req *lx_limits_req_new(struct lx_limits *l);

/*
 * Add a scope (copied). A scope with no limit at all is skipped. Returns 0,
 * or LX_ETOOBIG past LX_LIMITS_MAX_SCOPES scopes or a name longer than
 * LX_LIMITS_NAME_MAX. Only before lx_limits_admit.
 */
int lx_limits_req_add(struct lx_limits_req *r, const struct lx_limits_scope *s);
/* "global" (global_max_rpm/tpm) and "deployment:<id>" (litellm_params rpm/tpm); dep may be NULL. */
void lx_limits_req_add_config(struct lx_limits_req *r, const struct lx_config *cfg,
                              const struct lx_deployment *dep);
/*
 * The caller's scopes: key:<token> (key rpm_limit, tpm_limit,
 * max_parallel_requests), user:<id>, team:<id> (when the identity has them)
 * and keymodel:<token>:<model> for the key's model limit of `model` (the
 * model group asked for). The master key has no limits. Auth calls this
 * once the identity is known.
 */
void lx_limits_req_add_identity(struct lx_limits_req *r, const struct lx_identity *id,
                                const char *model);
size_t lx_limits_req_count(const struct lx_limits_req *r);
/* Some scope has a tpm limit: the caller should report the answer's tokens at the end. */
bool lx_limits_req_wants_tokens(const struct lx_limits_req *r);

/*
 * The admitted call moved to another deployment (a retry or a fallback):
 * count one request on dep's scope without a check (the router skips
 * deployments lx_limits_deployment_full reports), and charge the call's
 * tokens to dep at the end instead of the deployment it was admitted on.
 * Nothing happens before admission, for the same deployment, or when
 * neither deployment has rpm/tpm. Loop thread of the request's limiter.
 */
void lx_limits_req_retarget(struct lx_limits_req *r, const struct lx_deployment *dep);

/* Admission result for a pending admission: 0 (admitted) or LX_ERATELIMIT. */
typedef void (*lx_limits_cb)(void *ud, int result);

/*
 * Decide the request. Returns 0 (admitted now), LX_ERATELIMIT (refused now:
 * nothing was counted), or LX_EAGAIN: the decision waits for Redis and `cb`
 * runs exactly once later with 0 or LX_ERATELIMIT (never when the request
 * ended first). With no scope, returns 0 at once.
 */
int lx_limits_admit(struct lx_limits_req *r, lx_limits_cb cb, void *ud);

/*
 * Why a refused request was refused: the scope's index and kind, a message
 * naming the limit ("Rate limit exceeded for key: rpm_limit 100 reached...")
 * and the seconds until the window ends (retry-after).
 */
int lx_limits_req_refused(const struct lx_limits_req *r, enum lx_limits_kind *out_kind);
const char *lx_limits_req_scope_name(const struct lx_limits_req *r, int index);
void lx_limits_req_message(const struct lx_limits_req *r, char *out, size_t n);
int lx_limits_req_retry_after(const struct lx_limits_req *r);

/*
 * x-ratelimit-{limit,remaining,reset}-{requests,tokens} for the most
 * constrained scope (and retry-after when refused), into h (room for 7).
 * Values live in r. Returns how many were written (0 when no rpm/tpm applies).
 */
#define LX_LIMITS_MAX_HEADERS 7
size_t lx_limits_req_headers(const struct lx_limits_req *r, struct lx_http_header *h);

/*
 * Release the request's in-flight slots and add its tokens now, before its
 * response completes (so the client's next request, on any worker, finds the
 * slot free); r stays valid (its header values too) until lx_limits_req_end,
 * which then does not count again. Nothing while an admission is pending.
 */
void lx_limits_req_finish(struct lx_limits_req *r, long long tokens);

/*
 * End the request: release its in-flight slots, add `tokens` (its total
 * usage; 0 when none) to the tpm counters of its scopes, cancel a pending
 * admission, free r. Exactly once per request, on every path.
 */
void lx_limits_req_end(struct lx_limits_req *r, long long tokens);

/* ---- counters, for tests and diagnostics ---- */

struct lx_limits_counts {
    long long requests; /* this window: last shared total + local delta */
    long long tokens;
    long long in_flight;
    long long delta_requests; /* counted locally, not (yet) in Redis */
    long long delta_tokens;
};
/*
 * Drop the counters of past windows that no request holds (a worker's
 * limiter does it every window). Returns how many were dropped.
 */
size_t lx_limits_table_prune(struct lx_limits_table *t);
/* Counters in the table. */
size_t lx_limits_table_size(struct lx_limits_table *t);
/* Counts of a scope in the current window (zeros for an unknown scope). */
void lx_limits_table_counts(struct lx_limits_table *t, const char *name,
                            struct lx_limits_counts *out);

#endif
