/*
 * Deployment choice, error classes and shared deployment health (router.h).
 *
 * Invariants: a deployment's stats pointer is set once, before its snapshot
 * is shared, and the stats it points to live until the table is freed, so
 * loop threads read and update them with atomics and no lock. Per-minute
 * counters reset when the first event of a new minute sees an older minute
 * number; a race there may lose a count at the minute boundary, which the
 * strategies tolerate. The table's lock guards only the id index and the
 * health-check error strings, never the request path.
 */
#include "router/router.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "core/alloc.h"
#include "core/rand.h"
#include "spend/prices.h"

#define DEFAULT_COOLDOWN_S 5.0 /* LiteLLM's default cooldown_time */
#define DEFAULT_MAX_FALLBACKS 5

struct entry {
    char *id;
    struct lx_dep_stats *st;
};

struct lx_router_table {
    uv_mutex_t mu;
    struct entry *items;
    size_t n, cap;
};

struct lx_router_table *lx_router_table_new(void)
{
    struct lx_router_table *t = LX_NEW(struct lx_router_table);
    uv_mutex_init(&t->mu);
    return t;
}

void lx_router_table_free(struct lx_router_table *t)
{
    if (!t) {
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        lx_free(t->items[i].id);
        lx_free(t->items[i].st);
    }
    lx_free(t->items);
    uv_mutex_destroy(&t->mu);
    lx_free(t);
}

static struct lx_dep_stats *stats_for(struct lx_router_table *t, const char *id)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->items[i].id, id) == 0) {
            return t->items[i].st;
        }
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->items = lx_realloc(t->items, t->cap * sizeof(*t->items));
    }
    struct lx_dep_stats *st = LX_NEW(struct lx_dep_stats);
    t->items[t->n++] = (struct entry){lx_strdup(id), st};
    return st;
}

void lx_router_bind(struct lx_router_table *t, struct lx_config *cfg)
{
    uv_mutex_lock(&t->mu);
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        struct lx_deployment *d = &cfg->deployments[i];
        d->stats = d->id ? stats_for(t, d->id) : NULL;
    }
    uv_mutex_unlock(&t->mu);
}

void lx_router_check_error(const struct lx_router_table *t, const struct lx_deployment *dep,
                           char *out, size_t cap)
{
    if (!cap) {
        return;
    }
    out[0] = '\0';
    if (!dep->stats) {
        return;
    }
    uv_mutex_lock((uv_mutex_t *)&t->mu);
    snprintf(out, cap, "%s", dep->stats->check_error);
    uv_mutex_unlock((uv_mutex_t *)&t->mu);
}

void lx_router_note_check(struct lx_router_table *t, const struct lx_deployment *dep,
                          const char *error)
{
    struct lx_dep_stats *st = dep->stats;
    if (!st) {
        return;
    }
    uv_mutex_lock(&t->mu);
    snprintf(st->check_error, sizeof(st->check_error), "%s", error ? error : "");
    uv_mutex_unlock(&t->mu);
    atomic_store(&st->checked_at, (int_fast64_t)time(NULL));
    atomic_store(&st->check_state, error ? 2 : 1);
}

/* ---- per-minute counters ---- */

static void roll_minute(struct lx_dep_stats *st, uint64_t now_ms)
{
    int_fast64_t m = (int_fast64_t)(now_ms / 60000u);
    int_fast64_t old = atomic_load_explicit(&st->minute, memory_order_relaxed);
    if (old == m) {
        return;
    }
    if (atomic_compare_exchange_strong(&st->minute, &old, m)) {
        atomic_store_explicit(&st->fails, 0, memory_order_relaxed);
        atomic_store_explicit(&st->successes, 0, memory_order_relaxed);
        atomic_store_explicit(&st->rpm_used, 0, memory_order_relaxed);
        atomic_store_explicit(&st->tpm_used, 0, memory_order_relaxed);
    }
}

bool lx_router_is_cooling(const struct lx_deployment *dep, uint64_t now_ms)
{
    const struct lx_dep_stats *st = dep->stats;
    if (!st) {
        return false;
    }
    int_fast64_t until = atomic_load_explicit(&st->cooldown_until_ms, memory_order_relaxed);
    return until > 0 && (uint64_t)until > now_ms;
}

void lx_router_begin(const struct lx_deployment *dep, uint64_t now_ms)
{
    struct lx_dep_stats *st = dep->stats;
    if (!st) {
        return;
    }
    roll_minute(st, now_ms);
    atomic_fetch_add_explicit(&st->in_flight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->rpm_used, 1, memory_order_relaxed);
}

void lx_router_end_abandoned(const struct lx_deployment *dep)
{
    if (dep->stats) {
        atomic_fetch_sub_explicit(&dep->stats->in_flight, 1, memory_order_relaxed);
    }
}

void lx_router_end_ok(const struct lx_deployment *dep, uint64_t now_ms, uint64_t latency_us,
                      long long tokens)
{
    struct lx_dep_stats *st = dep->stats;
    if (!st) {
        return;
    }
    atomic_fetch_sub_explicit(&st->in_flight, 1, memory_order_relaxed);
    roll_minute(st, now_ms);
    atomic_fetch_add_explicit(&st->successes, 1, memory_order_relaxed);
    if (tokens > 0) {
        atomic_fetch_add_explicit(&st->tpm_used, tokens, memory_order_relaxed);
    }
    /* EWMA with weight 1/5 for the new sample; a lost update under a race is harmless. */
    uint64_t old = atomic_load_explicit(&st->latency_us, memory_order_relaxed);
    uint64_t sample = latency_us ? latency_us : 1;
    uint64_t next = old ? (old * 4 + sample) / 5 : sample;
    atomic_store_explicit(&st->latency_us, next ? next : 1, memory_order_relaxed);
    /* A success ends a cooldown that a health check or an earlier failure started. */
}

static bool class_cools(enum lx_err_class ec)
{
    switch (ec) {
    case LX_ERRC_AUTH:
    case LX_ERRC_NOT_FOUND:
    case LX_ERRC_TIMEOUT:
    case LX_ERRC_RATE_LIMIT:
    case LX_ERRC_SERVER:
        return true;
    default:
        return false;
    }
}

bool lx_router_end_fail(const struct lx_config *cfg, const struct lx_model_group *group,
                        const struct lx_deployment *dep, uint64_t now_ms, enum lx_err_class ec,
                        int status, double retry_after_s)
{
    struct lx_dep_stats *st = dep->stats;
    if (!st) {
        return false;
    }
    atomic_fetch_sub_explicit(&st->in_flight, 1, memory_order_relaxed);
    if (!class_cools(ec)) {
        return false; /* the request was at fault, not the deployment */
    }
    roll_minute(st, now_ms);
    int fails = atomic_fetch_add_explicit(&st->fails, 1, memory_order_relaxed) + 1;
    int oks = atomic_load_explicit(&st->successes, memory_order_relaxed);
    if (cfg->router.disable_cooldowns || cfg->litellm.disable_cooldowns) {
        return false;
    }
    /* router_settings first, then litellm_settings (where LiteLLM's docs put them). */
    int allowed_fails =
        cfg->router.allowed_fails >= 0 ? cfg->router.allowed_fails : cfg->litellm.allowed_fails;
    double cooldown_time =
        cfg->router.cooldown_time >= 0 ? cfg->router.cooldown_time : cfg->litellm.cooldown_time;
    bool explicit_fails = allowed_fails >= 0;
    bool single = !group || group->n <= 1;
    /*
     * A group's only deployment is cooled down only when allowed_fails is set
     * explicitly: otherwise one bad minute would turn every error into a 429.
     */
    if (single && !explicit_fails) {
        return false;
    }
    bool cool;
    if (status == 401 || status == 404) {
        cool = true; /* a wrong key or model does not heal by retrying */
    } else if (explicit_fails) {
        cool = fails > allowed_fails;
    } else if (ec == LX_ERRC_RATE_LIMIT) {
        cool = true;
    } else {
        /* LiteLLM's default: more than half of this minute's calls failed. */
        cool = fails * 2 > fails + oks;
    }
    if (!cool) {
        return false;
    }
    double secs = cooldown_time >= 0 ? cooldown_time : DEFAULT_COOLDOWN_S;
    if (ec == LX_ERRC_RATE_LIMIT && retry_after_s > secs && retry_after_s <= 3600) {
        secs = retry_after_s; /* the provider said when it takes calls again */
    }
    if (secs <= 0) {
        return false;
    }
    atomic_store_explicit(&st->cooldown_until_ms, (int_fast64_t)(now_ms + (uint64_t)(secs * 1000)),
                          memory_order_relaxed);
    return true;
}

/* ---- choice ---- */

static bool was_tried(const struct lx_route_req *rr, const struct lx_deployment *d)
{
    for (size_t i = 0; i < rr->n_tried; i++) {
        if (rr->tried[i] == d) {
            return true;
        }
    }
    return false;
}

void lx_router_note_tried(struct lx_route_req *rr, const struct lx_deployment *dep)
{
    if (!was_tried(rr, dep) && rr->n_tried < LX_ROUTER_MAX_TRIED) {
        rr->tried[rr->n_tried++] = dep;
    }
}

enum strategy { S_SHUFFLE, S_LEAST_BUSY, S_LATENCY, S_USAGE, S_COST };

static enum strategy strategy_of(const struct lx_config *cfg)
{
    const char *s = cfg ? cfg->router.routing_strategy : NULL;
    if (!s || !strcmp(s, "simple-shuffle")) {
        return S_SHUFFLE;
    }
    if (!strcmp(s, "least-busy")) {
        return S_LEAST_BUSY;
    }
    if (!strcmp(s, "latency-based-routing")) {
        return S_LATENCY;
    }
    if (!strcmp(s, "cost-based-routing")) {
        return S_COST;
    }
    return S_USAGE; /* usage-based-routing, usage-based-routing-v2 */
}

/* Deployments at their rpm/tpm limit this minute (usage-based routing skips them). */
static bool at_limit(const struct lx_deployment *d, uint64_t now_ms)
{
    const struct lx_dep_stats *st = d->stats;
    if (!st || atomic_load_explicit(&st->minute, memory_order_relaxed) !=
                   (int_fast64_t)(now_ms / 60000u)) {
        return false;
    }
    if (d->rpm > 0 && atomic_load_explicit(&st->rpm_used, memory_order_relaxed) >= d->rpm) {
        return true;
    }
    return d->tpm > 0 && atomic_load_explicit(&st->tpm_used, memory_order_relaxed) >= d->tpm;
}

/* Candidate filter levels, most to least demanding. */
enum level { L_FRESH, L_ANY };

static bool eligible(const struct lx_route_req *rr, const struct lx_deployment *d, enum level lv)
{
    if (rr->pinned && d != rr->pinned) {
        return false;
    }
    if (lx_router_is_cooling(d, rr->now_ms)) {
        return false;
    }
    return lv == L_ANY || !was_tried(rr, d);
}

static double score(enum strategy s, const struct lx_deployment *d, uint64_t now_ms)
{
    const struct lx_dep_stats *st = d->stats;
    switch (s) {
    case S_LEAST_BUSY:
        return st ? (double)atomic_load_explicit(&st->in_flight, memory_order_relaxed) : 0;
    case S_LATENCY:
        return st ? (double)atomic_load_explicit(&st->latency_us, memory_order_relaxed) : 0;
    case S_USAGE: {
        if (!st || atomic_load_explicit(&st->minute, memory_order_relaxed) !=
                       (int_fast64_t)(now_ms / 60000u)) {
            return 0;
        }
        return (double)atomic_load_explicit(&st->tpm_used, memory_order_relaxed);
    }
    case S_COST: {
        /* The deployment's own prices, else the built-in price table's; unknown sorts last. */
        struct lx_price p;
        if (!lx_price_resolve(lx_prices_builtin(), d, NULL, &p, NULL)) {
            return INFINITY;
        }
        return (double)p.input_pico + (double)p.output_pico;
    }
    default:
        return 0;
    }
}

static double shuffle_weight(const struct lx_deployment *d, int basis)
{
    switch (basis) {
    case 0:
        return d->weight > 0 ? d->weight : 0;
    case 1:
        return d->rpm > 0 ? (double)d->rpm : 0;
    case 2:
        return d->tpm > 0 ? (double)d->tpm : 0;
    default:
        return 1;
    }
}

/* Weights are used only when some deployment sets them explicitly: weight, rpm, tpm. */
static int shuffle_basis(const struct lx_model_group *g)
{
    int basis = 3;
    for (size_t i = 0; i < g->n; i++) {
        const struct lx_deployment *d = g->deployments[i];
        if (d->weight != 1.0) {
            return 0;
        }
        if (d->rpm > 0 && basis > 1) {
            basis = 1;
        }
        if (d->tpm > 0 && basis > 2) {
            basis = 2;
        }
    }
    return basis;
}

/* The candidates of one pick: eligible at a level, of the lowest order, maybe with room. */
struct cand {
    const struct lx_route_req *rr;
    enum level lv;
    int min_order;  /* -1: no order set */
    bool need_room; /* skip deployments at their rpm/tpm limit */
};

static bool keep(const struct cand *c, const struct lx_deployment *d)
{
    return eligible(c->rr, d, c->lv) && (c->min_order < 0 || d->order == c->min_order) &&
           (!c->need_room || !at_limit(d, c->rr->now_ms));
}

/* Lowest score wins; ties at random (reservoir sampling). */
static const struct lx_deployment *best_by_score(const struct cand *c, enum strategy s)
{
    const struct lx_model_group *g = c->rr->group;
    const struct lx_deployment *best = NULL;
    double best_s = 0;
    uint64_t ties = 0;
    for (size_t i = 0; i < g->n; i++) {
        const struct lx_deployment *d = g->deployments[i];
        if (!keep(c, d)) {
            continue;
        }
        double sc = score(s, d, c->rr->now_ms);
        if (!best || sc < best_s) {
            best = d;
            best_s = sc;
            ties = 1;
        } else if (sc == best_s && lx_rand_below(++ties) == 0) {
            best = d;
        }
    }
    return best;
}

static const struct lx_deployment *weighted_shuffle(const struct cand *c)
{
    const struct lx_model_group *g = c->rr->group;
    int basis = shuffle_basis(g);
    double total = 0;
    const struct lx_deployment *last = NULL;
    for (size_t i = 0; i < g->n; i++) {
        if (keep(c, g->deployments[i])) {
            total += shuffle_weight(g->deployments[i], basis);
            last = g->deployments[i];
        }
    }
    if (total <= 0) {
        basis = 3; /* every candidate's weight is zero: uniform */
        for (size_t i = 0; i < g->n; i++) {
            total += keep(c, g->deployments[i]) ? 1 : 0;
        }
    }
    double r = (double)lx_rand_below(1u << 30) / (double)(1u << 30) * total;
    for (size_t i = 0; i < g->n; i++) {
        const struct lx_deployment *d = g->deployments[i];
        if (keep(c, d)) {
            r -= shuffle_weight(d, basis);
            if (r < 0) {
                return d;
            }
        }
    }
    return last;
}

static const struct lx_deployment *pick_level(const struct lx_route_req *rr, enum level lv)
{
    const struct lx_model_group *g = rr->group;
    struct cand c = {rr, lv, -1, false};
    size_t n_ok = 0;
    bool all_fallback_mode = g->n > 1;
    for (size_t i = 0; i < g->n; i++) {
        const struct lx_deployment *d = g->deployments[i];
        if (!d->mode || strcmp(d->mode, "fallback") != 0) {
            all_fallback_mode = false;
        }
        if (!eligible(rr, d, lv)) {
            continue;
        }
        n_ok++;
        if (d->order >= 0 && (c.min_order < 0 || d->order < c.min_order)) {
            c.min_order = d->order;
        }
    }
    if (n_ok == 0) {
        return NULL;
    }
    if (all_fallback_mode) {
        for (size_t i = 0; i < g->n; i++) {
            if (keep(&c, g->deployments[i])) {
                return g->deployments[i];
            }
        }
    }
    enum strategy s = strategy_of(rr->cfg);
    if (s == S_SHUFFLE) {
        return weighted_shuffle(&c);
    }
    if (s == S_USAGE) {
        /* Deployments at their rpm/tpm limit are skipped while another one has room. */
        c.need_room = true;
        const struct lx_deployment *d = best_by_score(&c, s);
        if (d) {
            return d;
        }
        c.need_room = false;
    }
    return best_by_score(&c, s);
}

const struct lx_deployment *lx_router_pick(const struct lx_route_req *rr, uint64_t *out_wait_ms)
{
    const struct lx_model_group *g = rr->group;
    /* The common case: one deployment, nothing tried, not cooling. */
    if (g->n == 1 && !rr->pinned && !lx_router_is_cooling(g->deployments[0], rr->now_ms)) {
        return g->deployments[0];
    }
    const struct lx_deployment *d = pick_level(rr, L_FRESH);
    if (!d) {
        d = pick_level(rr, L_ANY);
    }
    if (d || !out_wait_ms) {
        return d;
    }
    uint64_t wait = UINT64_MAX;
    for (size_t i = 0; i < g->n; i++) {
        const struct lx_deployment *x = g->deployments[i];
        if ((rr->pinned && x != rr->pinned) || !x->stats) {
            continue;
        }
        uint64_t until = (uint64_t)atomic_load(&x->stats->cooldown_until_ms);
        if (until > rr->now_ms && until - rr->now_ms < wait) {
            wait = until - rr->now_ms;
        }
    }
    *out_wait_ms = wait == UINT64_MAX ? 1000 : wait;
    return NULL;
}

bool lx_router_has_untried(const struct lx_route_req *rr)
{
    const struct lx_model_group *g = rr->group;
    for (size_t i = 0; i < g->n; i++) {
        if (eligible(rr, g->deployments[i], L_FRESH)) {
            return true;
        }
    }
    return false;
}

bool lx_router_has_usable(const struct lx_route_req *rr)
{
    const struct lx_model_group *g = rr->group;
    for (size_t i = 0; i < g->n; i++) {
        if (eligible(rr, g->deployments[i], L_ANY)) {
            return true;
        }
    }
    return false;
}

/* ---- errors ---- */

static bool contains_ci(struct lx_str hay, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= hay.n; i++) {
        if (strncasecmp(hay.p + i, needle, n) == 0) {
            return true;
        }
    }
    return false;
}

enum lx_err_class lx_router_classify(int status, struct lx_str body)
{
    if (status == 400 || status == 413 || status == 422) {
        /* Wording from LiteLLM's exception mapping and the providers' documented errors. */
        static const char *const ctx[] = {
            "context_length_exceeded", "maximum context length", "context length",
            "context window",          "prompt is too long",     "input is too long",
            "too many tokens",         "exceeds the max",        "reduce the length",
        };
        static const char *const policy[] = {
            "content_policy_violation",  "content policy", "content_filter",
            "content management policy", "safety system",
        };
        for (size_t i = 0; i < sizeof(ctx) / sizeof(ctx[0]); i++) {
            if (contains_ci(body, ctx[i])) {
                return LX_ERRC_CONTEXT_WINDOW;
            }
        }
        for (size_t i = 0; i < sizeof(policy) / sizeof(policy[0]); i++) {
            if (contains_ci(body, policy[i])) {
                return LX_ERRC_CONTENT_POLICY;
            }
        }
        return LX_ERRC_BAD_REQUEST;
    }
    if (status == 401 || status == 403) {
        return LX_ERRC_AUTH;
    }
    if (status == 404) {
        return LX_ERRC_NOT_FOUND;
    }
    if (status == 408 || status == 504) {
        return LX_ERRC_TIMEOUT;
    }
    if (status == 429) {
        return LX_ERRC_RATE_LIMIT;
    }
    if (status >= 400 && status < 500) {
        return LX_ERRC_BAD_REQUEST;
    }
    return LX_ERRC_SERVER;
}

const char *lx_router_class_policy_name(enum lx_err_class ec)
{
    switch (ec) {
    case LX_ERRC_BAD_REQUEST:
        return "BadRequestErrorRetries";
    case LX_ERRC_AUTH:
        return "AuthenticationErrorRetries";
    case LX_ERRC_TIMEOUT:
        return "TimeoutErrorRetries";
    case LX_ERRC_RATE_LIMIT:
        return "RateLimitErrorRetries";
    case LX_ERRC_CONTENT_POLICY:
        return "ContentPolicyViolationErrorRetries";
    case LX_ERRC_SERVER:
        return "InternalServerErrorRetries";
    case LX_ERRC_CONTEXT_WINDOW:
        return "ContextWindowExceededErrorRetries";
    case LX_ERRC_NOT_FOUND:
        return "NotFoundErrorRetries";
    default:
        return NULL;
    }
}

static int policy_lookup(const struct lx_kv *kv, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        unsigned long long v;
        if (kv[i].key && kv[i].value && !strcmp(kv[i].key, name) &&
            lx_str_to_u64(lx_str_c(kv[i].value), 1000000, &v) == 0) {
            return (int)v;
        }
    }
    return -1;
}

int lx_router_policy_retries(const struct lx_config *cfg, const char *group, enum lx_err_class ec)
{
    const char *name = lx_router_class_policy_name(ec);
    if (!name) {
        return -1;
    }
    const struct lx_router_settings *r = &cfg->router;
    for (size_t i = 0; group && i < r->n_group_retry_policy; i++) {
        const struct lx_group_retry_policy *gp = &r->group_retry_policy[i];
        if (gp->group && !strcmp(gp->group, group)) {
            int v = policy_lookup(gp->policy, gp->n_policy, name);
            if (v >= 0) {
                return v;
            }
        }
    }
    return policy_lookup(r->retry_policy, r->n_retry_policy, name);
}

static const struct lx_strlist *find_in(const struct lx_fallback_list *l, const char *model)
{
    const struct lx_strlist *star = NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (!l->items[i].model) {
            continue;
        }
        if (!strcmp(l->items[i].model, model)) {
            return &l->items[i].to;
        }
        if (!strcmp(l->items[i].model, "*")) {
            star = &l->items[i].to;
        }
    }
    return star;
}

struct lx_strlist lx_router_fallbacks(const struct lx_config *cfg, const char *model,
                                      enum lx_err_class ec)
{
    const struct lx_strlist none = {NULL, 0};
    const struct lx_strlist *r = NULL;
    if (ec == LX_ERRC_CONTEXT_WINDOW) {
        r = find_in(&cfg->router.context_window_fallbacks, model);
        r = r ? r : find_in(&cfg->litellm.context_window_fallbacks, model);
        return r ? *r : none;
    }
    if (ec == LX_ERRC_CONTENT_POLICY) {
        r = find_in(&cfg->router.content_policy_fallbacks, model);
        r = r ? r : find_in(&cfg->litellm.content_policy_fallbacks, model);
        return r ? *r : none;
    }
    if (ec == LX_ERRC_BAD_REQUEST) {
        return none;
    }
    r = find_in(&cfg->router.fallbacks, model);
    r = r ? r : find_in(&cfg->litellm.fallbacks, model);
    r = r ? r : find_in(&cfg->fallback_mapping, model);
    if (r) {
        return *r;
    }
    if (cfg->router.default_fallbacks.n) {
        return cfg->router.default_fallbacks;
    }
    return cfg->litellm.default_fallbacks;
}

int lx_router_max_fallbacks(const struct lx_config *cfg)
{
    if (cfg->router.max_fallbacks >= 0) {
        return cfg->router.max_fallbacks;
    }
    if (cfg->litellm.max_fallbacks >= 0) {
        return cfg->litellm.max_fallbacks;
    }
    return DEFAULT_MAX_FALLBACKS;
}

double lx_router_backoff_s(const struct lx_config *cfg, int retries_done, double retry_after_s)
{
    double min_s = cfg->router.retry_after > 0 ? cfg->router.retry_after : 0;
    if (retry_after_s > 0 && retry_after_s <= 60) {
        return retry_after_s > min_s ? retry_after_s : min_s;
    }
    double s = 0.5 * pow(2.0, retries_done < 0 ? 0 : retries_done > 10 ? 10 : retries_done);
    if (s > 8.0) {
        s = 8.0;
    }
    s *= 1.0 - 0.25 * ((double)lx_rand_below(1000) / 1000.0);
    return s > min_s ? s : min_s;
}

double lx_router_parse_retry_after(struct lx_str v)
{
    v = lx_str_trim(v);
    unsigned long long secs;
    if (v.n && lx_str_to_u64(v, 86400ull * 365, &secs) == 0) {
        return (double)secs;
    }
    return 0;
}
