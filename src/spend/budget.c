/*
 * Budgets (see budget.h). Scopes live in one chained hash table keyed by
 * "<kind><id>" ('k' token, 'u' user id, 't' team id); they are created on
 * first use and kept for the process's life (one per key, user and team
 * that spent or was checked).
 */
#include "spend/budget.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "auth/auth.h"
#include "core/alloc.h"
#include "core/time.h"
#include "log/log.h"
#include "spend/cost.h"

#define N_BUCKETS 4096u
#define GLOBAL_REFRESH_MS 5000u
#define RESET_EVERY_MS 1000u
#define RESET_BATCH 500

struct scope {
    struct scope *next;
    struct scope *next_dirty;
    enum lx_budget_scope kind;
    int64_t pending;     /* journaled here and in no base read yet */
    int64_t unrefreshed; /* the part of pending committed before the next base read */
    int64_t base;
    int64_t base_at_ms; /* monotonic; 0 = never read */
    bool watched;       /* has a budget: re-read after commits */
    bool dirty;         /* on the dirty list */
    bool soft_warned;
    /* Shared through Redis (spend/shared.h): the last counter read and its reset mark. */
    bool has_shared;
    int64_t shared;
    int64_t shared_period;  /* the budget_reset_at the counter belongs to */
    int64_t shared_mark_ms; /* wall ms of the last admin reset seen in Redis; 0 = none */
    int64_t base_wall_ms;   /* wall ms of the base read */
    char id[];              /* NUL-terminated */
};

struct reset_req {
    struct reset_req *next;
    uint64_t ticket;
    enum lx_budget_scope kind;
    char *id;
    int rc;
    bool found;
    int64_t max_budget;
    int64_t reset_at;
};

struct lx_budget {
    struct lx_store *store;
    lx_budget_wake_fn wake;
    void *wake_ud;
    struct reset_req *resets_queued;
    struct reset_req *resets_done;
    uint64_t next_ticket;
    uv_mutex_t lock;
    struct scope *buckets[N_BUCKETS];
    struct scope *dirty;
    int64_t global_pending;
    int64_t global_unrefreshed;
    int64_t global_base;
    bool global_watched;
    bool global_read;
    uint64_t global_read_at;
    bool global_has_shared;
    int64_t global_shared;
    uint64_t reset_at;
};

static int64_t now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall ms of a monotonic ms instant in the past. */
static int64_t mono_to_wall_ms(int64_t mono_ms)
{
    return now_wall_ms() - ((int64_t)lx_mono_ms() - mono_ms);
}

static uint64_t hash_of(enum lx_budget_scope kind, const char *s)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return h;
}

/* The scope, created when missing. Under the lock. */
static struct scope *find(struct lx_budget *b, enum lx_budget_scope kind, const char *id)
{
    struct scope **slot = &b->buckets[hash_of(kind, id) % N_BUCKETS];
    for (struct scope *s = *slot; s; s = s->next) {
        if (s->kind == kind && strcmp(s->id, id) == 0) {
            return s;
        }
    }
    size_t n = strlen(id);
    struct scope *s = lx_calloc(1, sizeof(*s) + n + 1);
    s->kind = kind;
    memcpy(s->id, id, n + 1);
    s->next = *slot;
    *slot = s;
    return s;
}

struct lx_budget *lx_budget_new(struct lx_store *store)
{
    struct lx_budget *b = LX_NEW(struct lx_budget);
    b->store = store;
    uv_mutex_init(&b->lock);
    return b;
}

void lx_budget_free(struct lx_budget *b)
{
    if (!b) {
        return;
    }
    for (size_t i = 0; i < N_BUCKETS; i++) {
        struct scope *s = b->buckets[i];
        while (s) {
            struct scope *next = s->next;
            lx_free(s);
            s = next;
        }
    }
    struct reset_req *lists[] = {b->resets_queued, b->resets_done};
    for (size_t i = 0; i < LX_ARRAY_LEN(lists); i++) {
        while (lists[i]) {
            struct reset_req *r = lists[i];
            lists[i] = r->next;
            lx_free(r->id);
            lx_free(r);
        }
    }
    uv_mutex_destroy(&b->lock);
    lx_free(b);
}

/* Current spend of s given the store value `store_spend` read at read_at_ms. Under the lock. */
static int64_t spend_of(const struct scope *s, int64_t store_spend, int64_t read_at_ms)
{
    if (s->base_at_ms && s->base_at_ms >= read_at_ms) {
        return s->base + s->pending; /* commits since the base read are still in pending */
    }
    /* A newer store value already holds what was committed. */
    return store_spend + s->pending - s->unrefreshed;
}

/* Wall ms of the store read spend_of uses. Under the lock. */
static int64_t read_wall_of(const struct scope *s, int64_t read_at_ms)
{
    if (s->base_at_ms && s->base_at_ms >= read_at_ms) {
        return s->base_wall_ms;
    }
    return read_at_ms ? mono_to_wall_ms(read_at_ms) : 0;
}

/*
 * The spend a check uses: the local view, or the shared counter of the same
 * period when it is higher; only the counter when an admin reset newer than
 * the local view's store read was seen (the local view predates the reset).
 * Under the lock.
 */
static int64_t combined_of(const struct scope *s, int64_t local, int64_t read_at_ms, int64_t period)
{
    if (!s->has_shared || s->shared_period != period) {
        return local;
    }
    if (s->shared_mark_ms && s->shared_mark_ms > read_wall_of(s, read_at_ms)) {
        return s->shared;
    }
    return LX_MAX(local, s->shared);
}

int64_t lx_budget_spend(struct lx_budget *b, enum lx_budget_scope kind, const char *id,
                        int64_t store_spend, int64_t read_at_ms)
{
    uv_mutex_lock(&b->lock);
    int64_t v = spend_of(find(b, kind, id), store_spend, read_at_ms);
    uv_mutex_unlock(&b->lock);
    return v;
}

int64_t lx_budget_local_view(struct lx_budget *b, enum lx_budget_scope kind, const char *id,
                             int64_t store_spend, int64_t read_at_ms, int64_t *out_read_wall_ms)
{
    uv_mutex_lock(&b->lock);
    const struct scope *s = find(b, kind, id);
    int64_t v = spend_of(s, store_spend, read_at_ms);
    *out_read_wall_ms = read_wall_of(s, read_at_ms);
    uv_mutex_unlock(&b->lock);
    return v;
}

int64_t lx_budget_local_global(struct lx_budget *b)
{
    uv_mutex_lock(&b->lock);
    int64_t v = b->global_base + b->global_pending;
    uv_mutex_unlock(&b->lock);
    return v;
}

void lx_budget_note_shared(struct lx_budget *b, enum lx_budget_scope kind, const char *id,
                           int64_t period, bool exists, int64_t value, int64_t mark_ms)
{
    uv_mutex_lock(&b->lock);
    struct scope *s = find(b, kind, id);
    s->has_shared = exists;
    s->shared = value;
    s->shared_period = period;
    s->shared_mark_ms = mark_ms;
    uv_mutex_unlock(&b->lock);
}

void lx_budget_note_shared_global(struct lx_budget *b, bool exists, int64_t value)
{
    uv_mutex_lock(&b->lock);
    b->global_has_shared = exists;
    b->global_shared = value;
    uv_mutex_unlock(&b->lock);
}

int64_t lx_budget_pending_global(struct lx_budget *b)
{
    uv_mutex_lock(&b->lock);
    int64_t v = b->global_pending - b->global_unrefreshed;
    uv_mutex_unlock(&b->lock);
    return v;
}

/* What this process has journaled and not committed for a scope (a reset writes it, negated). */
static int64_t pending_of(struct lx_budget *b, enum lx_budget_scope kind, const char *id)
{
    uv_mutex_lock(&b->lock);
    struct scope *s = find(b, kind, id);
    int64_t p = s->pending - s->unrefreshed;
    uv_mutex_unlock(&b->lock);
    return p;
}

/* The store now holds `base` for the scope (a reset wrote it). */
static void set_base(struct lx_budget *b, enum lx_budget_scope kind, const char *id, int64_t base)
{
    uv_mutex_lock(&b->lock);
    struct scope *s = find(b, kind, id);
    s->base = base;
    s->pending -= s->unrefreshed;
    s->unrefreshed = 0;
    s->base_at_ms = (int64_t)lx_mono_ms();
    s->base_wall_ms = now_wall_ms();
    s->soft_warned = false;
    s->has_shared = false; /* the counter of the old period: a reset writes a new one */
    uv_mutex_unlock(&b->lock);
}

void lx_budget_set_waker(struct lx_budget *b, lx_budget_wake_fn fn, void *ud)
{
    uv_mutex_lock(&b->lock);
    b->wake = fn;
    b->wake_ud = ud;
    uv_mutex_unlock(&b->lock);
}

uint64_t lx_budget_request_reset(struct lx_budget *b, enum lx_budget_scope kind, const char *id)
{
    struct reset_req *r = LX_NEW(struct reset_req);
    r->kind = kind;
    r->id = lx_strdup(id);
    uv_mutex_lock(&b->lock);
    r->ticket = ++b->next_ticket;
    r->next = b->resets_queued;
    b->resets_queued = r;
    lx_budget_wake_fn wake = b->wake;
    void *wake_ud = b->wake_ud;
    uv_mutex_unlock(&b->lock);
    if (wake) {
        wake(wake_ud);
    }
    return r->ticket;
}

bool lx_budget_reset_poll(struct lx_budget *b, uint64_t ticket, int *out_rc, bool *out_found,
                          int64_t *out_max_budget, int64_t *out_reset_at)
{
    uv_mutex_lock(&b->lock);
    struct reset_req **pp = &b->resets_done;
    while (*pp && (*pp)->ticket != ticket) {
        pp = &(*pp)->next;
    }
    struct reset_req *r = *pp;
    if (r) {
        *pp = r->next;
    }
    uv_mutex_unlock(&b->lock);
    if (!r) {
        return false;
    }
    *out_rc = r->rc;
    *out_found = r->found;
    *out_max_budget = r->max_budget;
    *out_reset_at = r->reset_at;
    lx_free(r->id);
    lx_free(r);
    return true;
}

static const char *kind_name(enum lx_budget_scope kind)
{
    return kind == LX_BUDGET_KEY ? "key" : kind == LX_BUDGET_USER ? "user" : "team";
}

static void exceeded(char *msg, size_t cap, int64_t spend, int64_t max)
{
    char a[LX_COST_USD_MAX], m[LX_COST_USD_MAX];
    lx_cost_format_usd(spend, a, sizeof(a));
    lx_cost_format_usd(max, m, sizeof(m));
    snprintf(msg, cap, "Budget has been exceeded! Current cost: %s, Max budget: %s", a, m);
}

static void mark_dirty(struct lx_budget *b, struct scope *s);

/* Check one scope. Under the lock. */
static int check_scope(struct lx_budget *b, enum lx_budget_scope kind, const char *id,
                       const struct lx_scope_limits *lim, int64_t read_at_ms, char *msg, size_t cap)
{
    bool has_max = lim->max_budget_nanos != LX_NO_LIMIT;
    bool has_soft = lim->soft_budget_nanos != LX_NO_LIMIT;
    if (!id || !id[0] || (!has_max && !has_soft)) {
        return 0;
    }
    struct scope *s = find(b, kind, id);
    if (!s->watched) {
        s->watched = true;
        if (b->store) {
            mark_dirty(b, s); /* read its base on the ledger's next pass */
        }
    }
    int64_t spend =
        combined_of(s, spend_of(s, lim->spend_nanos, read_at_ms), read_at_ms, lim->budget_reset_at);
    if (has_soft && spend >= lim->soft_budget_nanos && !s->soft_warned) {
        char a[LX_COST_USD_MAX], m[LX_COST_USD_MAX];
        lx_cost_format_usd(spend, a, sizeof(a));
        lx_cost_format_usd(lim->soft_budget_nanos, m, sizeof(m));
        LX_WARN("budget alert: %s %s crossed its soft budget: spend %s USD, soft budget %s USD",
                kind_name(kind), kind == LX_BUDGET_KEY ? "(hashed token)" : id, a, m);
        s->soft_warned = true;
    }
    if (has_max && spend >= lim->max_budget_nanos) {
        exceeded(msg, cap, spend, lim->max_budget_nanos);
        return LX_EBUDGET;
    }
    return 0;
}

int lx_budget_check(struct lx_budget *b, const struct lx_config *cfg, const struct lx_identity *id,
                    char *msg, size_t cap)
{
    int rc = 0;
    uv_mutex_lock(&b->lock);
    if (!id->is_master) {
        rc = check_scope(b, LX_BUDGET_KEY, id->token, &id->key, id->loaded_at_ms, msg, cap);
        if (!rc && id->has_user) {
            rc = check_scope(b, LX_BUDGET_USER, id->user_id, &id->user, id->loaded_at_ms, msg, cap);
        }
        if (!rc && id->has_team) {
            rc = check_scope(b, LX_BUDGET_TEAM, id->team_id, &id->team, id->loaded_at_ms, msg, cap);
        }
    }
    double max_usd = cfg->litellm.max_budget;
    if (!rc && max_usd >= 0) {
        b->global_watched = true;
        int64_t max = (int64_t)llround(max_usd * (double)LX_NANO_PER_USD);
        int64_t spend = b->global_base + b->global_pending;
        if (b->global_has_shared) {
            spend = LX_MAX(spend, b->global_shared);
        }
        /* Until the ledger thread has read the total once (within a pass), only our own spend
         * counts. */
        if (spend >= max) {
            exceeded(msg, cap, spend, max);
            rc = LX_EBUDGET;
        }
    }
    uv_mutex_unlock(&b->lock);
    return rc;
}

/* ---- ledger hooks ---- */

/* Queue s for a base read on the ledger's next pass. Under the lock. */
static void mark_dirty(struct lx_budget *b, struct scope *s)
{
    if (!s->dirty) {
        s->dirty = true;
        s->next_dirty = b->dirty;
        b->dirty = s;
    }
}

static void add_pending(struct lx_budget *b, enum lx_budget_scope kind, const char *id, int64_t v)
{
    if (id && id[0]) {
        find(b, kind, id)->pending += v;
    }
}

void lx_budget_on_record(struct lx_budget *b, const struct lx_spend_record *r)
{
    if (r->spend_nanos == 0) {
        return;
    }
    uv_mutex_lock(&b->lock);
    add_pending(b, LX_BUDGET_KEY, r->api_key, r->spend_nanos);
    add_pending(b, LX_BUDGET_USER, r->user_id, r->spend_nanos);
    add_pending(b, LX_BUDGET_TEAM, r->team_id, r->spend_nanos);
    b->global_pending += r->spend_nanos;
    uv_mutex_unlock(&b->lock);
}

static void commit_one(struct lx_budget *b, enum lx_budget_scope kind, const char *id, int64_t v,
                       bool own)
{
    if (!id || !id[0]) {
        return;
    }
    struct scope *s = find(b, kind, id);
    bool refreshed = s->watched && b->store;
    if (own) {
        /* A watched scope's base is re-read right after this commit; until then it stays pending.
         */
        if (refreshed) {
            s->unrefreshed += v;
        } else {
            s->pending -= v;
        }
    }
    if (refreshed) {
        mark_dirty(b, s);
    }
}

void lx_budget_on_commit(struct lx_budget *b, const struct lx_spend_record *r, bool own)
{
    if (r->spend_nanos == 0) {
        return;
    }
    uv_mutex_lock(&b->lock);
    commit_one(b, LX_BUDGET_KEY, r->api_key, r->spend_nanos, own);
    commit_one(b, LX_BUDGET_USER, r->user_id, r->spend_nanos, own);
    commit_one(b, LX_BUDGET_TEAM, r->team_id, r->spend_nanos, own);
    if (own) {
        /* The global total is re-read only while a global budget is set. */
        if (b->global_watched && b->store) {
            b->global_unrefreshed += r->spend_nanos;
        } else {
            b->global_pending -= r->spend_nanos;
        }
    }
    uv_mutex_unlock(&b->lock);
}

/* ---- ledger thread: reads and resets ---- */

static const char *const spend_sql[] = {
    "SELECT spend_nanos FROM lx_keys WHERE token = $1",
    "SELECT spend_nanos FROM lx_users WHERE user_id = $1",
    "SELECT spend_nanos FROM lx_teams WHERE team_id = $1",
};

static void refresh_dirty(struct lx_budget *b)
{
    uv_mutex_lock(&b->lock);
    struct scope *list = b->dirty;
    b->dirty = NULL;
    uv_mutex_unlock(&b->lock);
    while (list) {
        struct scope *s = list;
        list = s->next_dirty;
        /*
         * Only this thread commits, so nothing of ours is committed between
         * this read and the update below: the read includes exactly the
         * commits counted in committed_since_base so far.
         */
        struct lx_store_param p = LX_SP_T(s->id);
        struct lx_store_stmt st = {spend_sql[s->kind], &p, 1};
        struct lx_store_result *r = NULL;
        struct lx_error err = {0};
        int rc = lx_store_exec_sync(b->store, &st, 1, &r, &err);
        uv_mutex_lock(&b->lock);
        s->dirty = false;
        if (rc == 0 && r->n_rows == 1) {
            s->base = lx_store_cell_int(r, 0, "spend_nanos", 0);
            s->pending -= s->unrefreshed;
            s->unrefreshed = 0;
            s->base_at_ms = (int64_t)lx_mono_ms();
            s->base_wall_ms = now_wall_ms();
        } else if (rc == 0) {
            /* No such row (a key deleted since): nothing to read; what was committed is gone. */
            s->pending -= s->unrefreshed;
            s->unrefreshed = 0;
        } else {
            mark_dirty(b, s); /* the store failed: read it on the next pass */
        }
        uv_mutex_unlock(&b->lock);
        lx_store_result_free(r);
    }
}

static void refresh_global(struct lx_budget *b, uint64_t now)
{
    uv_mutex_lock(&b->lock);
    bool due =
        b->global_watched && (!b->global_read || now - b->global_read_at >= GLOBAL_REFRESH_MS);
    uv_mutex_unlock(&b->lock);
    if (!due) {
        return;
    }
    struct lx_store_stmt st = {
        "SELECT spend_nanos AS total FROM lx_spend_totals WHERE scope = 'global'", NULL, 0};
    struct lx_store_result *r = NULL;
    struct lx_error err = {0};
    if (lx_store_exec_sync(b->store, &st, 1, &r, &err) == 0 && r->n_rows == 1) {
        uv_mutex_lock(&b->lock);
        b->global_base = lx_store_cell_int(r, 0, "total", 0);
        b->global_pending -= b->global_unrefreshed;
        b->global_unrefreshed = 0;
        b->global_read = true;
        b->global_read_at = now;
        uv_mutex_unlock(&b->lock);
    }
    lx_store_result_free(r);
}

struct reset_table {
    enum lx_budget_scope kind;
    const char *select_sql;
    const char *init_sql;
    const char *reset_sql;
};

static const struct reset_table reset_tables[] = {
    {LX_BUDGET_KEY,
     "SELECT token AS id, budget_duration, budget_reset_at FROM lx_keys WHERE budget_duration IS"
     " NOT NULL AND (budget_reset_at IS NULL OR budget_reset_at <= $1) LIMIT 500",
     "UPDATE lx_keys SET budget_reset_at = $2 WHERE token = $1 AND budget_reset_at IS NULL",
     "UPDATE lx_keys SET spend_nanos = $5, budget_reset_at = $2, updated_at = $4 WHERE token = $1"
     " AND budget_reset_at = $3"},
    {LX_BUDGET_USER,
     "SELECT user_id AS id, budget_duration, budget_reset_at FROM lx_users WHERE budget_duration"
     " IS NOT NULL AND (budget_reset_at IS NULL OR budget_reset_at <= $1) LIMIT 500",
     "UPDATE lx_users SET budget_reset_at = $2 WHERE user_id = $1 AND budget_reset_at IS NULL",
     "UPDATE lx_users SET spend_nanos = $5, budget_reset_at = $2, updated_at = $4 WHERE user_id ="
     " $1 AND budget_reset_at = $3"},
    {LX_BUDGET_TEAM,
     "SELECT team_id AS id, budget_duration, budget_reset_at FROM lx_teams WHERE budget_duration"
     " IS NOT NULL AND (budget_reset_at IS NULL OR budget_reset_at <= $1) LIMIT 500",
     "UPDATE lx_teams SET budget_reset_at = $2 WHERE team_id = $1 AND budget_reset_at IS NULL",
     "UPDATE lx_teams SET spend_nanos = $5, budget_reset_at = $2, updated_at = $4 WHERE team_id ="
     " $1 AND budget_reset_at = $3"},
};

static void invalidate(enum lx_budget_scope kind, const char *id)
{
    switch (kind) {
    case LX_BUDGET_KEY:
        lx_auth_invalidate_token(id);
        break;
    case LX_BUDGET_USER:
        lx_auth_invalidate_user(id);
        break;
    case LX_BUDGET_TEAM:
        lx_auth_invalidate_team(id);
        break;
    }
}

static void run_resets(struct lx_budget *b)
{
    int64_t now = lx_wall_s();
    for (size_t t = 0; t < LX_ARRAY_LEN(reset_tables); t++) {
        const struct reset_table *rt = &reset_tables[t];
        struct lx_store_param p = LX_SP_I(now);
        struct lx_store_stmt st = {rt->select_sql, &p, 1};
        struct lx_store_result *r = NULL;
        struct lx_error err = {0};
        if (lx_store_exec_sync(b->store, &st, 1, &r, &err) != 0) {
            return; /* the store is down: the next tick retries */
        }
        for (size_t i = 0; i < r->n_rows; i++) {
            const char *id = lx_store_cell(r, i, "id");
            const char *dur = lx_store_cell(r, i, "budget_duration");
            long long secs = 0;
            if (!id || !dur || lx_duration_parse(lx_str_c(dur), &secs) || secs <= 0) {
                continue;
            }
            bool is_new = lx_store_cell(r, i, "budget_reset_at") == NULL;
            int64_t old = lx_store_cell_int(r, i, "budget_reset_at", 0);
            int64_t base = -pending_of(b, rt->kind, id);
            struct lx_store_param up[5] = {LX_SP_T(id), LX_SP_I(now + secs), LX_SP_I(old),
                                           LX_SP_I(now), LX_SP_I(base)};
            struct lx_store_stmt us = {is_new ? rt->init_sql : rt->reset_sql, up, is_new ? 2 : 5};
            struct lx_store_result *ur = NULL;
            if (lx_store_exec_sync(b->store, &us, 1, &ur, &err) != 0) {
                continue;
            }
            bool applied = ur->changes > 0;
            lx_store_result_free(ur);
            if (is_new || !applied) {
                continue;
            }
            set_base(b, rt->kind, id, base);
            invalidate(rt->kind, id);
            LX_INFO("budget reset: %s %s (budget_duration %s)", kind_name(rt->kind),
                    rt->kind == LX_BUDGET_KEY ? "(hashed token)" : id, dur);
        }
        lx_store_result_free(r);
    }
}

static const char *const admin_reset_sql[] = {
    "UPDATE lx_keys SET spend_nanos = $2, updated_at = $3 WHERE token = $1"
    " RETURNING max_budget_nanos, budget_reset_at",
    "UPDATE lx_users SET spend_nanos = $2, updated_at = $3 WHERE user_id = $1"
    " RETURNING max_budget_nanos, budget_reset_at",
    "UPDATE lx_teams SET spend_nanos = $2, updated_at = $3 WHERE team_id = $1"
    " RETURNING max_budget_nanos, budget_reset_at",
};

/* Run the resets admins asked for. */
static void run_requested_resets(struct lx_budget *b)
{
    uv_mutex_lock(&b->lock);
    struct reset_req *list = b->resets_queued;
    b->resets_queued = NULL;
    uv_mutex_unlock(&b->lock);
    while (list) {
        struct reset_req *r = list;
        list = r->next;
        int64_t base = -pending_of(b, r->kind, r->id);
        struct lx_store_param p[3] = {LX_SP_T(r->id), LX_SP_I(base), LX_SP_I(lx_wall_s())};
        struct lx_store_stmt st = {admin_reset_sql[r->kind], p, 3};
        struct lx_store_result *res = NULL;
        struct lx_error err = {0};
        r->rc = lx_store_exec_sync(b->store, &st, 1, &res, &err);
        r->max_budget = LX_NO_LIMIT;
        if (r->rc == 0 && res->n_rows == 1) {
            r->found = true;
            r->max_budget = lx_store_cell_int(res, 0, "max_budget_nanos", LX_NO_LIMIT);
            r->reset_at = lx_store_cell_int(res, 0, "budget_reset_at", 0);
            set_base(b, r->kind, r->id, base);
            invalidate(r->kind, r->id);
            LX_INFO("budget reset by an admin: %s %s", kind_name(r->kind),
                    r->kind == LX_BUDGET_KEY ? "(hashed token)" : r->id);
        }
        lx_store_result_free(res);
        uv_mutex_lock(&b->lock);
        r->next = b->resets_done;
        b->resets_done = r;
        uv_mutex_unlock(&b->lock);
    }
}

void lx_budget_tick(struct lx_budget *b)
{
    if (!b->store || !lx_store_is_up(b->store)) {
        return;
    }
    uint64_t now = lx_mono_ms();
    run_requested_resets(b);
    refresh_dirty(b);
    refresh_global(b, now);
    if (now >= b->reset_at) {
        b->reset_at = now + RESET_EVERY_MS;
        run_resets(b);
    }
}
