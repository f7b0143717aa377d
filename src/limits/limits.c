/*
 * Rate-limit counters (see limits.h for the model).
 *
 * The table is a fixed array of stripes, each a mutex and a bucket array of
 * chained entries, one entry per scope name. Entries are never freed while
 * the table lives, so a request keeps pointers to its entries from admission
 * to its end without another lookup. An entry belongs to one window at a
 * time; the first touch in a new window resets its counts (in-flight counts
 * carry over: requests span windows).
 *
 * Entry counts: `seen_*` is the last total Redis reported for the window
 * (0 without Redis), `delta_*` what this process counted without Redis and
 * has not pushed yet. The local view of a scope is seen + delta; without
 * Redis it is all delta.
 *
 * Admission locks the stripes of all the request's scopes in ascending order
 * (no deadlock between workers), checks every scope, then applies: that is
 * what makes it all-or-nothing across threads.
 */
#include "limits/limits.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/time.h"
#include "limits/limits_int.h"
#include "log/log.h"
#include "redis/redis.h"

#define N_STRIPES 64
#define N_BUCKETS 256

struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t window;
    long long seen_r, seen_t;
    long long delta_r, delta_t;
    long long inflight;
    int64_t full_window; /* a refusal for rpm/tpm happened in this window */
    long refs;           /* requests and Redis replies holding a pointer to the entry */
    size_t name_len;
    char name[];
};

struct stripe {
    pthread_mutex_t mu;
    struct entry *buckets[N_BUCKETS];
} __attribute__((aligned(64)));

struct lx_limits_table {
    struct stripe stripes[N_STRIPES];
    atomic_int window_s;
    _Atomic int64_t now_s;
};

struct lx_limits {
    uv_loop_t *loop;
    struct lx_limits_table *t;
    struct lx_redis *redis;
    uv_timer_t prune; /* drops entries of past windows nobody holds */
    char sha[41];
};

enum req_state { RQ_NEW, RQ_PENDING, RQ_ADMITTED, RQ_REFUSED };

struct slot {
    struct entry *e;
    struct stripe *st;
    uint64_t hash;
    long long rpm, tpm, par;
    bool par_taken;
    long long req_after; /* requests in the window after this one was counted */
    long long tok_used;  /* tokens in the window at admission */
    size_t name_len;
    char name[LX_LIMITS_NAME_MAX + 1];
};

/* A budget read with the admission (limits.h: lx_limits_req_add_budget). */
struct budget {
    char key[LX_LIMITS_BUDGET_KEY_MAX + 1];
    char mark[LX_LIMITS_BUDGET_KEY_MAX + 1];
    long long max, local, read_ms;
    bool exists; /* what the script read */
    long long value, mark_ms;
};

struct lx_limits_req {
    struct lx_limits *l;
    size_t n;
    enum req_state st;
    bool ended;    /* lx_limits_req_end ran while the admission was pending */
    bool finished; /* slots released and tokens added (lx_limits_req_finish) */
    bool tried_eval;
    int64_t window;
    int64_t now;
    int bad;
    enum lx_limits_kind kind;
    lx_limits_cb cb;
    void *ud;
    struct lx_buf cmd; /* Redis argument bytes */
    char hv[LX_LIMITS_MAX_HEADERS][24];
    size_t n_budgets;
    bool budgets_read; /* the admission was decided by the script: b_* hold its reads */
    struct slot s[LX_LIMITS_MAX_SCOPES];
    struct budget b[LX_LIMITS_MAX_BUDGETS];
};

const char lx_limits__script[] =
    "local m = tonumber(ARGV[#ARGV])\n"
    "local n = (#KEYS - 2 * m) / 2\n"
    "local v = redis.call('MGET', unpack(KEYS))\n"
    "local ok, bad, kind = 1, 0, 0\n"
    "for i = 1, n do\n"
    "  local r = tonumber(v[2*i-1]) or 0\n"
    "  local t = tonumber(v[2*i]) or 0\n"
    "  local rpm = tonumber(ARGV[2*i-1])\n"
    "  local tpm = tonumber(ARGV[2*i])\n"
    "  if ok == 1 and rpm >= 0 and r >= rpm then ok, bad, kind = 0, i, 1 end\n"
    "  if ok == 1 and tpm >= 0 and t >= tpm then ok, bad, kind = 0, i, 2 end\n"
    "end\n"
    "for j = 1, m do\n"
    "  local c = tonumber(v[2*n+2*j-1]) or 0\n"
    "  local mk = tonumber(v[2*n+2*j]) or 0\n"
    "  local a = 2*n + 1 + 3*(j-1)\n"
    "  local max, loc, rd = tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3])\n"
    "  if ok == 1 and (c >= max or (loc >= max and not (mk > rd))) then\n"
    "    ok, bad, kind = 0, n + j, 4\n"
    "  end\n"
    "end\n"
    "local ttl = tonumber(ARGV[2*n+1])\n"
    "local out = {ok, bad, kind}\n"
    "for i = 1, n do\n"
    "  local r = tonumber(v[2*i-1]) or 0\n"
    "  if ok == 1 then\n"
    "    r = redis.call('INCR', KEYS[2*i-1])\n"
    "    redis.call('EXPIRE', KEYS[2*i-1], ttl)\n"
    "  end\n"
    "  out[#out+1] = r\n"
    "  out[#out+1] = tonumber(v[2*i]) or 0\n"
    "end\n"
    "for j = 1, m do\n"
    "  out[#out+1] = v[2*n+2*j-1] and 1 or 0\n"
    "  out[#out+1] = tonumber(v[2*n+2*j-1]) or 0\n"
    "  out[#out+1] = tonumber(v[2*n+2*j]) or 0\n"
    "end\n"
    "return out\n";

/* ---- table ---- */

static uint64_t hash_name(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static struct stripe *stripe_of(struct lx_limits_table *t, uint64_t h)
{
    return &t->stripes[h % N_STRIPES];
}

/* The entry of a name, created if absent; the stripe is locked. */
static struct entry *entry_get(struct stripe *st, uint64_t h, const char *name, size_t n,
                               bool create)
{
    struct entry **b = &st->buckets[(h / N_STRIPES) % N_BUCKETS];
    for (struct entry *e = *b; e; e = e->next) {
        if (e->hash == h && e->name_len == n && memcmp(e->name, name, n) == 0) {
            return e;
        }
    }
    if (!create) {
        return NULL;
    }
    struct entry *e = lx_calloc(1, sizeof(*e) + n + 1);
    e->hash = h;
    e->name_len = n;
    memcpy(e->name, name, n);
    e->window = -1;
    e->full_window = -1;
    e->next = *b;
    *b = e;
    return e;
}

static void entry_roll(struct entry *e, int64_t window)
{
    if (e->window != window) {
        e->window = window;
        e->seen_r = e->seen_t = 0;
        e->delta_r = e->delta_t = 0;
    }
}

struct lx_limits_table *lx_limits_table_new(void)
{
    struct lx_limits_table *t = lx_calloc(1, sizeof(*t));
    for (size_t i = 0; i < N_STRIPES; i++) {
        pthread_mutex_init(&t->stripes[i].mu, NULL);
    }
    atomic_store(&t->window_s, LX_LIMITS_WINDOW_S);
    return t;
}

void lx_limits_table_free(struct lx_limits_table *t)
{
    if (!t) {
        return;
    }
    for (size_t i = 0; i < N_STRIPES; i++) {
        for (size_t k = 0; k < N_BUCKETS; k++) {
            struct entry *e = t->stripes[i].buckets[k];
            while (e) {
                struct entry *next = e->next;
                lx_free(e);
                e = next;
            }
        }
        pthread_mutex_destroy(&t->stripes[i].mu);
    }
    lx_free(t);
}

static struct lx_limits_table *global_table;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    global_table = lx_limits_table_new();
}

struct lx_limits_table *lx_limits_table_global(void)
{
    pthread_once(&global_once, global_init);
    return global_table;
}

void lx_limits_table_set_window(struct lx_limits_table *t, int seconds)
{
    atomic_store(&t->window_s, seconds > 0 ? seconds : LX_LIMITS_WINDOW_S);
}

void lx_limits_table_set_now(struct lx_limits_table *t, int64_t now_s)
{
    atomic_store(&t->now_s, now_s);
}

static int64_t table_now(struct lx_limits_table *t)
{
    int64_t fixed = atomic_load_explicit(&t->now_s, memory_order_relaxed);
    return fixed ? fixed : lx_wall_s();
}

static int table_window_s(struct lx_limits_table *t)
{
    return atomic_load_explicit(&t->window_s, memory_order_relaxed);
}

void lx_limits_table_counts(struct lx_limits_table *t, const char *name,
                            struct lx_limits_counts *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = strlen(name);
    uint64_t h = hash_name(name, n);
    struct stripe *st = stripe_of(t, h);
    int64_t w = table_now(t) / table_window_s(t);
    pthread_mutex_lock(&st->mu);
    struct entry *e = entry_get(st, h, name, n, false);
    if (e) {
        out->in_flight = e->inflight;
        if (e->window == w) {
            out->requests = e->seen_r + e->delta_r;
            out->tokens = e->seen_t + e->delta_t;
            out->delta_requests = e->delta_r;
            out->delta_tokens = e->delta_t;
        }
    }
    pthread_mutex_unlock(&st->mu);
}

size_t lx_limits_table_prune(struct lx_limits_table *t)
{
    int64_t w = table_now(t) / table_window_s(t);
    size_t freed = 0;
    for (size_t i = 0; i < N_STRIPES; i++) {
        struct stripe *st = &t->stripes[i];
        pthread_mutex_lock(&st->mu);
        for (size_t k = 0; k < N_BUCKETS; k++) {
            struct entry **pp = &st->buckets[k];
            while (*pp) {
                struct entry *e = *pp;
                if (e->refs == 0 && e->inflight == 0 && e->window < w && e->full_window < w) {
                    *pp = e->next;
                    lx_free(e);
                    freed++;
                } else {
                    pp = &e->next;
                }
            }
        }
        pthread_mutex_unlock(&st->mu);
    }
    return freed;
}

size_t lx_limits_table_size(struct lx_limits_table *t)
{
    size_t n = 0;
    for (size_t i = 0; i < N_STRIPES; i++) {
        struct stripe *st = &t->stripes[i];
        pthread_mutex_lock(&st->mu);
        for (size_t k = 0; k < N_BUCKETS; k++) {
            for (struct entry *e = st->buckets[k]; e; e = e->next) {
                n++;
            }
        }
        pthread_mutex_unlock(&st->mu);
    }
    return n;
}

/* ---- locking the stripes of a request ---- */

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (struct stripe *const *)a;
    uintptr_t y = (uintptr_t) * (struct stripe *const *)b;
    return x < y ? -1 : x > y;
}

struct lockset {
    struct stripe *s[LX_LIMITS_MAX_SCOPES];
    size_t n;
};

static void lock_all(struct lx_limits_req *r, struct lockset *ls)
{
    ls->n = 0;
    for (size_t i = 0; i < r->n; i++) {
        ls->s[ls->n++] = r->s[i].st;
    }
    qsort(ls->s, ls->n, sizeof(ls->s[0]), cmp_ptr);
    size_t k = 0;
    for (size_t i = 0; i < ls->n; i++) {
        if (k == 0 || ls->s[k - 1] != ls->s[i]) {
            ls->s[k++] = ls->s[i];
        }
    }
    ls->n = k;
    for (size_t i = 0; i < ls->n; i++) {
        pthread_mutex_lock(&ls->s[i]->mu);
    }
}

static void unlock_all(struct lockset *ls)
{
    for (size_t i = ls->n; i > 0; i--) {
        pthread_mutex_unlock(&ls->s[i - 1]->mu);
    }
}

/* Entries of every slot, rolled to the request's window; stripes locked. */
static void bind_entries(struct lx_limits_req *r)
{
    for (size_t i = 0; i < r->n; i++) {
        struct slot *s = &r->s[i];
        if (!s->e) {
            s->e = entry_get(s->st, s->hash, s->name, s->name_len, true);
            s->e->refs++;
        }
        entry_roll(s->e, r->window);
    }
}

/* ---- limiter ---- */

static void on_redis_up(struct lx_redis *redis, void *ud);

static void on_prune(uv_timer_t *h)
{
    struct lx_limits *l = h->data;
    size_t n = lx_limits_table_prune(l->t);
    if (n) {
        LX_DEBUG("rate limits: %zu idle counter(s) of past windows dropped", n);
    }
}

struct lx_limits *lx_limits_new(uv_loop_t *loop, struct lx_limits_table *t)
{
    struct lx_limits *l = LX_NEW(struct lx_limits);
    l->loop = loop;
    l->t = t;
    uv_timer_init(loop, &l->prune);
    l->prune.data = l;
    uint64_t every = (uint64_t)table_window_s(t) * 1000u;
    uv_timer_start(&l->prune, on_prune, every, every);
    uv_unref((uv_handle_t *)&l->prune);
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)lx_limits__script, strlen(lx_limits__script), d);
    for (size_t i = 0; i < sizeof(d); i++) {
        snprintf(l->sha + 2 * i, 3, "%02x", d[i]);
    }
    return l;
}

void lx_limits_set_redis(struct lx_limits *l, const struct lx_redis_cfg *rc)
{
    bool want = rc && rc->host && rc->host[0];
    if (l->redis && want && lx_redis_same_target(l->redis, rc)) {
        return;
    }
    if (l->redis) {
        lx_redis_close(l->redis);
        l->redis = NULL;
    }
    if (want) {
        l->redis = lx_redis_new(l->loop, rc, on_redis_up, l);
    }
}

void lx_limits_set_config(struct lx_limits *l, const struct lx_config *cfg)
{
    const struct lx_redis_cfg *rc = NULL;
    if (cfg->rate_limit_redis.host) {
        rc = &cfg->rate_limit_redis;
    } else if (cfg->router.redis.host) {
        rc = &cfg->router.redis;
    } else if (cfg->cache.redis.host && cfg->cache.type && !strncmp(cfg->cache.type, "redis", 5)) {
        rc = &cfg->cache.redis;
    }
    lx_limits_set_redis(l, rc);
}

struct lx_redis *lx_limits_redis(struct lx_limits *l)
{
    return l->redis;
}

bool lx_limits_redis_up(const struct lx_limits *l)
{
    return l->redis && lx_redis_is_up(l->redis);
}

static void on_limits_closed(uv_handle_t *h)
{
    lx_free(h->data);
}

void lx_limits_free(struct lx_limits *l)
{
    if (!l) {
        return;
    }
    if (l->redis) {
        lx_redis_close(l->redis);
        l->redis = NULL;
    }
    uv_close((uv_handle_t *)&l->prune, on_limits_closed);
}

bool lx_limits_deployment_full(struct lx_limits *l, const struct lx_deployment *dep)
{
    if (dep->rpm < 0 && dep->tpm < 0) {
        return false;
    }
    char name[LX_LIMITS_NAME_MAX + 1];
    int n = snprintf(name, sizeof(name), "deployment:%s", dep->id);
    if (n < 0 || (size_t)n >= sizeof(name)) {
        return false;
    }
    uint64_t h = hash_name(name, (size_t)n);
    struct stripe *st = stripe_of(l->t, h);
    int64_t w = table_now(l->t) / table_window_s(l->t);
    bool full = false;
    pthread_mutex_lock(&st->mu);
    struct entry *e = entry_get(st, h, name, (size_t)n, false);
    if (e && e->window == w) {
        full = e->full_window == w || (dep->rpm >= 0 && e->seen_r + e->delta_r >= dep->rpm) ||
               (dep->tpm >= 0 && e->seen_t + e->delta_t >= dep->tpm);
    }
    pthread_mutex_unlock(&st->mu);
    return full;
}

/* ---- requests ---- */

struct lx_limits_req *lx_limits_req_new(struct lx_limits *l)
{
    /* Slots are initialised when added: only the head of the struct needs zeroing. */
    struct lx_limits_req *r = lx_malloc(sizeof(*r));
    memset(r, 0, offsetof(struct lx_limits_req, s));
    r->l = l;
    r->bad = -1;
    lx_buf_init(&r->cmd, 64u << 10);
    return r;
}

int lx_limits_req_add(struct lx_limits_req *r, const struct lx_limits_scope *sc)
{
    if (sc->rpm < 0 && sc->tpm < 0 && sc->max_parallel < 0) {
        return 0;
    }
    size_t n = strlen(sc->name);
    if (r->n >= LX_LIMITS_MAX_SCOPES || n > LX_LIMITS_NAME_MAX) {
        return LX_ETOOBIG;
    }
    struct slot *s = &r->s[r->n++];
    memset(s, 0, offsetof(struct slot, name));
    memcpy(s->name, sc->name, n);
    s->name[n] = '\0';
    s->name_len = n;
    s->rpm = sc->rpm;
    s->tpm = sc->tpm;
    s->par = sc->max_parallel;
    s->hash = hash_name(s->name, n);
    s->st = stripe_of(r->l->t, s->hash);
    return 0;
}

static void add_named(struct lx_limits_req *r, long long rpm, long long tpm, long long par,
                      const char *fmt, ...) LX_PRINTF(5, 6);

static void add_named(struct lx_limits_req *r, long long rpm, long long tpm, long long par,
                      const char *fmt, ...)
{
    if (rpm < 0 && tpm < 0 && par < 0) {
        return;
    }
    char name[LX_LIMITS_NAME_MAX + 2];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n > LX_LIMITS_NAME_MAX) {
        LX_WARN("rate-limit scope name too long; limit not applied");
        return;
    }
    struct lx_limits_scope sc = {name, rpm, tpm, par};
    if (lx_limits_req_add(r, &sc)) {
        LX_WARN("too many rate-limit scopes for one request; '%.40s' not applied", name);
    }
}

void lx_limits_req_add_config(struct lx_limits_req *r, const struct lx_config *cfg,
                              const struct lx_deployment *dep)
{
    /* Hot path: no printf for these two names. */
    const struct lx_limits_scope g = {"global", cfg->general.global_max_rpm,
                                      cfg->general.global_max_tpm, -1};
    if (lx_limits_req_add(r, &g)) {
        LX_WARN("too many rate-limit scopes for one request; 'global' not applied");
    }
    if (dep && (dep->rpm >= 0 || dep->tpm >= 0)) {
        char name[LX_LIMITS_NAME_MAX + 1];
        size_t n = strlen(dep->id);
        if (n + 11 > LX_LIMITS_NAME_MAX) {
            LX_WARN("deployment id too long for a rate-limit scope; rpm/tpm not applied");
            return;
        }
        memcpy(name, "deployment:", 11);
        memcpy(name + 11, dep->id, n + 1);
        const struct lx_limits_scope d = {name, dep->rpm, dep->tpm, -1};
        if (lx_limits_req_add(r, &d)) {
            LX_WARN("too many rate-limit scopes for one request; deployment rpm/tpm not applied");
        }
    }
}

void lx_limits_req_add_identity(struct lx_limits_req *r, const struct lx_identity *id,
                                const char *model)
{
    if (!id || id->is_master) {
        return;
    }
    add_named(r, id->key.rpm_limit, id->key.tpm_limit, id->key.max_parallel_requests, "key:%s",
              id->token);
    if (id->has_user && id->user_id) {
        add_named(r, id->user.rpm_limit, id->user.tpm_limit, id->user.max_parallel_requests,
                  "user:%s", id->user_id);
    }
    if (id->has_team && id->team_id) {
        add_named(r, id->team.rpm_limit, id->team.tpm_limit, id->team.max_parallel_requests,
                  "team:%s", id->team_id);
    }
    for (size_t i = 0; model && i < id->n_model_limits; i++) {
        const struct lx_model_limit *ml = &id->model_limits[i];
        if (ml->model && strcmp(ml->model, model) == 0) {
            add_named(r, ml->rpm, ml->tpm, -1, "keymodel:%s:%s", id->token, model);
            break;
        }
    }
}

size_t lx_limits_req_count(const struct lx_limits_req *r)
{
    return r->n;
}

static void note_view(struct lx_limits_req *r);

bool lx_limits_req_wants_tokens(const struct lx_limits_req *r)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->s[i].tpm >= 0) {
            return true;
        }
    }
    return false;
}

int lx_limits_req_add_budget(struct lx_limits_req *r, const char *counter_key, const char *mark_key,
                             int64_t max, int64_t local, int64_t local_read_ms)
{
    size_t kn = strlen(counter_key), mn = strlen(mark_key);
    if (r->n_budgets >= LX_LIMITS_MAX_BUDGETS || kn > LX_LIMITS_BUDGET_KEY_MAX ||
        mn > LX_LIMITS_BUDGET_KEY_MAX) {
        return LX_ETOOBIG;
    }
    struct budget *b = &r->b[r->n_budgets++];
    memcpy(b->key, counter_key, kn + 1);
    memcpy(b->mark, mark_key, mn + 1);
    b->max = max;
    b->local = local;
    b->read_ms = local_read_ms;
    b->exists = false;
    b->value = b->mark_ms = 0;
    return 0;
}

bool lx_limits_req_budget_read(const struct lx_limits_req *r, size_t i, bool *out_exists,
                               int64_t *out_value, int64_t *out_mark_ms)
{
    if (!r->budgets_read || i >= r->n_budgets) {
        return false;
    }
    *out_exists = r->b[i].exists;
    *out_value = r->b[i].value;
    *out_mark_ms = r->b[i].mark_ms;
    return true;
}

/* Take the in-flight slots of every scope with max_parallel, all or none; stripes locked. */
static bool take_parallel(struct lx_limits_req *r)
{
    for (size_t i = 0; i < r->n; i++) {
        struct slot *s = &r->s[i];
        if (s->par >= 0 && s->e->inflight >= s->par) {
            r->bad = (int)i;
            r->kind = LX_LIMITS_PARALLEL;
            note_view(r);
            return false;
        }
    }
    for (size_t i = 0; i < r->n; i++) {
        struct slot *s = &r->s[i];
        if (s->par >= 0) {
            s->e->inflight++;
            s->par_taken = true;
        }
    }
    return true;
}

static void release_parallel(struct lx_limits_req *r)
{
    bool any = false;
    for (size_t i = 0; i < r->n; i++) {
        any = any || r->s[i].par_taken;
    }
    if (!any) {
        return;
    }
    struct lockset ls;
    lock_all(r, &ls);
    for (size_t i = 0; i < r->n; i++) {
        struct slot *s = &r->s[i];
        if (s->par_taken) {
            s->e->inflight--;
            s->par_taken = false;
        }
    }
    unlock_all(&ls);
}

/* What the headers of a refused request show: the counts as they are; stripes locked. */
static void note_view(struct lx_limits_req *r)
{
    for (size_t i = 0; i < r->n; i++) {
        struct slot *s = &r->s[i];
        s->req_after = s->e->seen_r + s->e->delta_r;
        s->tok_used = s->e->seen_t + s->e->delta_t;
    }
}

/* rpm/tpm on the local view (last shared totals + local deltas); stripes locked. */
static bool decide_local(struct lx_limits_req *r)
{
    for (size_t i = 0; i < r->n; i++) {
        struct slot *s = &r->s[i];
        struct entry *e = s->e;
        if (s->rpm >= 0 && e->seen_r + e->delta_r >= s->rpm) {
            r->bad = (int)i;
            r->kind = LX_LIMITS_RPM;
            e->full_window = r->window;
            note_view(r);
            return false;
        }
        if (s->tpm >= 0 && e->seen_t + e->delta_t >= s->tpm) {
            r->bad = (int)i;
            r->kind = LX_LIMITS_TPM;
            e->full_window = r->window;
            note_view(r);
            return false;
        }
    }
    for (size_t i = 0; i < r->n; i++) {
        struct slot *s = &r->s[i];
        struct entry *e = s->e;
        e->delta_r++;
        s->req_after = e->seen_r + e->delta_r;
        s->tok_used = e->seen_t + e->delta_t;
        if (s->rpm >= 0 && s->req_after >= s->rpm) {
            e->full_window = r->window;
        }
    }
    return true;
}

/* Decide without Redis (par: also take in-flight slots). Returns 0 or LX_ERATELIMIT. */
static int admit_local(struct lx_limits_req *r, bool par)
{
    struct lockset ls;
    lock_all(r, &ls);
    bind_entries(r);
    bool ok = !par || take_parallel(r);
    if (ok && !decide_local(r)) {
        ok = false;
    }
    unlock_all(&ls);
    if (!ok) {
        release_parallel(r);
        r->st = RQ_REFUSED;
        return LX_ERATELIMIT;
    }
    r->st = RQ_ADMITTED;
    return 0;
}

/* ---- Redis admission ---- */

long long lx_limits__int_reply(const redisReply *rep)
{
    if (!rep || rep->type != REDIS_REPLY_INTEGER || rep->integer < 0) {
        return -1;
    }
    return rep->integer;
}

int lx_limits__decode_admit(const redisReply *rep, size_t n, struct lx_limits__admit_reply *out)
{
    return lx_limits__decode_admit_b(rep, n, 0, out);
}

int lx_limits__decode_admit_b(const redisReply *rep, size_t n, size_t m,
                              struct lx_limits__admit_reply *out)
{
    memset(out, 0, sizeof(*out));
    out->bad = -1;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || n > LX_LIMITS_MAX_SCOPES ||
        m > LX_LIMITS_MAX_BUDGETS || rep->elements != 3 + 2 * n + 3 * m) {
        return LX_EUPSTREAM;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        /* Counts are never negative; a budget's counter (3 + 2n + 3j + 1) may be. */
        bool money = i >= 3 + 2 * n && (i - 3 - 2 * n) % 3 == 1;
        if (!rep->element[i] || rep->element[i]->type != REDIS_REPLY_INTEGER ||
            (rep->element[i]->integer < 0 && !money)) {
            return LX_EUPSTREAM;
        }
    }
    long long ok = rep->element[0]->integer;
    long long bad = rep->element[1]->integer;
    long long kind = rep->element[2]->integer;
    if (ok == 1) {
        if (bad != 0 || kind != 0) {
            return LX_EUPSTREAM;
        }
    } else if (ok == 0) {
        bool scope =
            bad >= 1 && (size_t)bad <= n && (kind == LX_LIMITS_RPM || kind == LX_LIMITS_TPM);
        bool budget = (size_t)bad > n && (size_t)bad <= n + m && kind == LX_LIMITS_BUDGET;
        if (!scope && !budget) {
            return LX_EUPSTREAM;
        }
    } else {
        return LX_EUPSTREAM;
    }
    out->ok = ok == 1;
    out->bad = ok == 1 ? -1 : (int)bad - 1;
    out->kind = ok == 1 ? LX_LIMITS_NONE : (enum lx_limits_kind)kind;
    for (size_t i = 0; i < n; i++) {
        out->requests[i] = rep->element[3 + 2 * i]->integer;
        out->tokens[i] = rep->element[4 + 2 * i]->integer;
    }
    for (size_t j = 0; j < m; j++) {
        const size_t at = 3 + 2 * n + 3 * j;
        if (rep->element[at]->integer > 1) {
            return LX_EUPSTREAM;
        }
        out->b_exists[j] = rep->element[at]->integer == 1;
        out->b_value[j] = rep->element[at + 1]->integer;
        out->b_mark[j] = rep->element[at + 2]->integer;
    }
    return 0;
}

bool lx_limits__is_noscript(const redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ERROR && rep->str && rep->len >= 8 &&
           memcmp(rep->str, "NOSCRIPT", 8) == 0;
}

static int ttl_s(struct lx_limits_table *t)
{
    return 2 * table_window_s(t) + 5;
}

/* Append a NUL-separated argument; offsets go into offs/lens. */
static int put_arg(struct lx_buf *b, size_t *offs, size_t *lens, int *argc, const char *fmt, ...)
    LX_PRINTF(5, 6);

static int put_arg(struct lx_buf *b, size_t *offs, size_t *lens, int *argc, const char *fmt, ...)
{
    size_t start = b->len;
    va_list ap;
    va_start(ap, fmt);
    int rc = lx_buf_vprintf(b, fmt, ap);
    va_end(ap);
    rc = rc ? rc : lx_buf_append(b, "", 1);
    if (rc) {
        return rc;
    }
    offs[*argc] = start;
    lens[*argc] = b->len - start - 1;
    (*argc)++;
    return 0;
}

static void on_admit_reply(void *ud, int result, const redisReply *reply);

/* EVALSHA (or EVAL after NOSCRIPT) of the admission script. */
static int send_admit(struct lx_limits_req *r, bool eval)
{
    enum { MAX_ARGS = 4 + 4 * LX_LIMITS_MAX_SCOPES + 5 * LX_LIMITS_MAX_BUDGETS + 2 };
    size_t offs[MAX_ARGS], lens[MAX_ARGS];
    const char *argv[MAX_ARGS];
    int argc = 0;
    struct lx_buf *b = &r->cmd;
    lx_buf_reset(b);
    int rc = put_arg(b, offs, lens, &argc, "%s", eval ? "EVAL" : "EVALSHA");
    rc = rc ? rc : put_arg(b, offs, lens, &argc, "%s", eval ? lx_limits__script : r->l->sha);
    rc = rc ? rc : put_arg(b, offs, lens, &argc, "%zu", 2 * r->n + 2 * r->n_budgets);
    for (size_t i = 0; i < r->n && !rc; i++) {
        const struct slot *s = &r->s[i];
        rc = put_arg(b, offs, lens, &argc, "lx:rl:%lld:%s:r", (long long)r->window, s->name);
        rc = rc ? rc
                : put_arg(b, offs, lens, &argc, "lx:rl:%lld:%s:t", (long long)r->window, s->name);
    }
    for (size_t j = 0; j < r->n_budgets && !rc; j++) {
        rc = put_arg(b, offs, lens, &argc, "%s", r->b[j].key);
        rc = rc ? rc : put_arg(b, offs, lens, &argc, "%s", r->b[j].mark);
    }
    for (size_t i = 0; i < r->n && !rc; i++) {
        rc = put_arg(b, offs, lens, &argc, "%lld", r->s[i].rpm);
        rc = rc ? rc : put_arg(b, offs, lens, &argc, "%lld", r->s[i].tpm);
    }
    rc = rc ? rc : put_arg(b, offs, lens, &argc, "%d", ttl_s(r->l->t));
    for (size_t j = 0; j < r->n_budgets && !rc; j++) {
        rc = put_arg(b, offs, lens, &argc, "%lld", r->b[j].max);
        rc = rc ? rc : put_arg(b, offs, lens, &argc, "%lld", r->b[j].local);
        rc = rc ? rc : put_arg(b, offs, lens, &argc, "%lld", r->b[j].read_ms);
    }
    rc = rc ? rc : put_arg(b, offs, lens, &argc, "%zu", r->n_budgets);
    if (rc) {
        return rc;
    }
    for (int i = 0; i < argc; i++) {
        argv[i] = b->data + offs[i];
    }
    return lx_redis_command(r->l->redis, argc, argv, lens, on_admit_reply, r);
}

static void req_free(struct lx_limits_req *r);

static void finish_pending(struct lx_limits_req *r, int result)
{
    if (r->ended) {
        req_free(r);
        return;
    }
    r->cb(r->ud, result);
}

static void on_admit_reply(void *ud, int result, const redisReply *reply)
{
    struct lx_limits_req *r = ud;
    if (result == 0 && lx_limits__is_noscript(reply) && !r->tried_eval && !r->ended &&
        r->l->redis) {
        r->tried_eval = true;
        if (send_admit(r, true) == 0) {
            return;
        }
    }
    struct lx_limits__admit_reply ar;
    if (result == 0 && lx_limits__decode_admit_b(reply, r->n, r->n_budgets, &ar) == 0) {
        r->budgets_read = true;
        for (size_t j = 0; j < r->n_budgets; j++) {
            r->b[j].exists = ar.b_exists[j];
            r->b[j].value = ar.b_value[j];
            r->b[j].mark_ms = ar.b_mark[j];
        }
        struct lockset ls;
        lock_all(r, &ls);
        for (size_t i = 0; i < r->n; i++) {
            struct slot *s = &r->s[i];
            struct entry *e = s->e;
            entry_roll(e, r->window);
            if (e->window == r->window) {
                e->seen_r = LX_MAX(e->seen_r, ar.requests[i]);
                e->seen_t = LX_MAX(e->seen_t, ar.tokens[i]);
            }
            s->req_after = ar.requests[i] + e->delta_r;
            s->tok_used = ar.tokens[i] + e->delta_t;
            if ((!ar.ok && ar.bad == (int)i) || (ar.ok && s->rpm >= 0 && s->req_after >= s->rpm)) {
                e->full_window = r->window;
            }
        }
        unlock_all(&ls);
        if (ar.ok) {
            r->st = RQ_ADMITTED;
            finish_pending(r, 0);
            return;
        }
        r->bad = ar.bad;
        r->kind = ar.kind;
        r->st = RQ_REFUSED;
        release_parallel(r);
        finish_pending(r, LX_ERATELIMIT);
        return;
    }
    if (result == 0) {
        /* A persistent error (OOM, BUSY, ...) would repeat on every request: warn every 10 s. */
        static _Thread_local uint64_t last_warn_ms;
        uint64_t now_ms = lx_mono_ms();
        if (!last_warn_ms || now_ms - last_warn_ms >= 10000) {
            last_warn_ms = now_ms;
            LX_WARN("unexpected reply from redis to the rate-limit script (%s); deciding locally",
                    reply && reply->type == REDIS_REPLY_ERROR && reply->str
                        ? reply->str
                        : "not the script's result");
        }
    }
    /* Redis unreachable or confused: decide on local counts, no client error. */
    finish_pending(r, admit_local(r, false));
}

int lx_limits_admit(struct lx_limits_req *r, lx_limits_cb cb, void *ud)
{
    if (r->n == 0) {
        r->st = RQ_ADMITTED;
        return 0;
    }
    r->now = table_now(r->l->t);
    r->window = r->now / table_window_s(r->l->t);
    bool shared = false;
    for (size_t i = 0; i < r->n; i++) {
        shared = shared || r->s[i].rpm >= 0 || r->s[i].tpm >= 0;
    }
    if (!shared || !lx_limits_redis_up(r->l)) {
        return admit_local(r, true);
    }
    /* In-flight slots are per process: take them first, then ask Redis for the rest. */
    struct lockset ls;
    lock_all(r, &ls);
    bind_entries(r);
    bool ok = take_parallel(r);
    unlock_all(&ls);
    if (!ok) {
        r->st = RQ_REFUSED;
        return LX_ERATELIMIT;
    }
    if (send_admit(r, false) != 0) {
        return admit_local(r, false); /* Redis unusable now: decide here; the slots are taken */
    }
    r->cb = cb;
    r->ud = ud;
    r->st = RQ_PENDING;
    return LX_EAGAIN;
}

/* ---- refusals and headers ---- */

int lx_limits_req_refused(const struct lx_limits_req *r, enum lx_limits_kind *out_kind)
{
    if (out_kind) {
        *out_kind = r->st == RQ_REFUSED ? r->kind : LX_LIMITS_NONE;
    }
    return r->st == RQ_REFUSED ? r->bad : -1;
}

const char *lx_limits_req_scope_name(const struct lx_limits_req *r, int index)
{
    return index >= 0 && (size_t)index < r->n ? r->s[index].name : NULL;
}

int lx_limits_req_retry_after(const struct lx_limits_req *r)
{
    if (r->st == RQ_REFUSED && r->kind == LX_LIMITS_PARALLEL) {
        return 1;
    }
    int w = table_window_s(r->l->t);
    int64_t left = (r->window + 1) * w - r->now;
    return left < 1 ? 1 : (int)left;
}

/* How a message names a scope; never the key's token. */
static void scope_label(const struct slot *s, char *out, size_t n, const char **rpm_name,
                        const char **tpm_name)
{
    const char *name = s->name;
    *rpm_name = "rpm_limit";
    *tpm_name = "tpm_limit";
    if (strcmp(name, "global") == 0) {
        snprintf(out, n, "global");
        *rpm_name = "global_max_rpm";
        *tpm_name = "global_max_tpm";
    } else if (strncmp(name, "deployment:", 11) == 0) {
        snprintf(out, n, "deployment '%.200s'", name + 11);
        *rpm_name = "rpm";
        *tpm_name = "tpm";
    } else if (strncmp(name, "key:", 4) == 0) {
        snprintf(out, n, "key");
    } else if (strncmp(name, "user:", 5) == 0) {
        snprintf(out, n, "user '%.200s'", name + 5);
    } else if (strncmp(name, "team:", 5) == 0) {
        snprintf(out, n, "team '%.200s'", name + 5);
    } else if (strncmp(name, "keymodel:", 9) == 0) {
        const char *m = strchr(name + 9, ':');
        snprintf(out, n, "model '%.200s' of key", m ? m + 1 : "?");
        *rpm_name = "model_rpm_limit";
        *tpm_name = "model_tpm_limit";
    } else {
        snprintf(out, n, "'%.200s'", name);
    }
}

void lx_limits_req_message(const struct lx_limits_req *r, char *out, size_t n)
{
    if (r->st != RQ_REFUSED || r->bad < 0) {
        snprintf(out, n, "Rate limit exceeded.");
        return;
    }
    if (r->kind == LX_LIMITS_BUDGET || (size_t)r->bad >= r->n) {
        snprintf(out, n, "Budget has been exceeded!");
        return;
    }
    const struct slot *s = &r->s[r->bad];
    char label[256];
    const char *rpm_name, *tpm_name;
    scope_label(s, label, sizeof(label), &rpm_name, &tpm_name);
    int retry = lx_limits_req_retry_after(r);
    switch (r->kind) {
    case LX_LIMITS_RPM:
        snprintf(out, n, "Rate limit exceeded for %s: %s %lld reached. Retry in %ds.", label,
                 rpm_name, s->rpm, retry);
        break;
    case LX_LIMITS_TPM:
        snprintf(out, n, "Rate limit exceeded for %s: %s %lld reached. Retry in %ds.", label,
                 tpm_name, s->tpm, retry);
        break;
    default:
        snprintf(out, n,
                 "Rate limit exceeded for %s: max_parallel_requests %lld reached (requests "
                 "in flight). Retry in %ds.",
                 label, s->par, retry);
        break;
    }
}

/* Decimal text of v into out (at least 24 bytes): snprintf costs more than the rest of a header. */
static struct lx_str fmt_ll(char *out, long long v)
{
    char tmp[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t k = 0;
    if (v < 0) {
        out[k++] = '-';
    }
    while (n) {
        out[k++] = tmp[--n];
    }
    out[k] = '\0';
    return (struct lx_str){out, k};
}

size_t lx_limits_req_headers(const struct lx_limits_req *r, struct lx_http_header *h)
{
    if (r->st != RQ_ADMITTED && r->st != RQ_REFUSED) {
        return 0;
    }
    struct lx_limits_req *w = (struct lx_limits_req *)r; /* header values live in r */
    int rs = -1, ts = -1;
    long long rrem = 0, trem = 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct slot *s = &r->s[i];
        if (s->rpm >= 0) {
            long long rem = r->st == RQ_REFUSED && r->bad == (int)i && r->kind == LX_LIMITS_RPM
                                ? 0
                                : LX_MAX(0, s->rpm - s->req_after);
            if (rs < 0 || rem < rrem) {
                rs = (int)i;
                rrem = rem;
            }
        }
        if (s->tpm >= 0) {
            long long rem = LX_MAX(0, s->tpm - s->tok_used);
            if (ts < 0 || rem < trem) {
                ts = (int)i;
                trem = rem;
            }
        }
    }
    size_t n = 0;
    int reset = lx_limits_req_retry_after(r);
    if (r->st == RQ_REFUSED && r->kind == LX_LIMITS_PARALLEL) {
        int w_s = table_window_s(r->l->t);
        int64_t left = (r->window + 1) * w_s - r->now;
        reset = left < 1 ? 1 : (int)left;
    }
    static const struct lx_str names[] = {
        LX_STR("x-ratelimit-limit-requests"),   LX_STR("x-ratelimit-remaining-requests"),
        LX_STR("x-ratelimit-reset-requests"),   LX_STR("x-ratelimit-limit-tokens"),
        LX_STR("x-ratelimit-remaining-tokens"), LX_STR("x-ratelimit-reset-tokens"),
    };
    if (rs >= 0) {
        h[n] = (struct lx_http_header){names[0], fmt_ll(w->hv[n], r->s[rs].rpm)};
        n++;
        h[n] = (struct lx_http_header){names[1], fmt_ll(w->hv[n], rrem)};
        n++;
        h[n] = (struct lx_http_header){names[2], fmt_ll(w->hv[n], reset)};
        n++;
    }
    if (ts >= 0) {
        h[n] = (struct lx_http_header){names[3], fmt_ll(w->hv[n], r->s[ts].tpm)};
        n++;
        h[n] = (struct lx_http_header){names[4], fmt_ll(w->hv[n], trem)};
        n++;
        h[n] = (struct lx_http_header){names[5], fmt_ll(w->hv[n], reset)};
        n++;
    }
    if (r->st == RQ_REFUSED) {
        h[n] = (struct lx_http_header){LX_STR("retry-after"),
                                       fmt_ll(w->hv[n], lx_limits_req_retry_after(r))};
        n++;
    }
    return n;
}

/* ---- tokens and resync ---- */

struct add_ctx {
    struct lx_limits_table *t;
    struct entry *e;
    struct stripe *st;
    int64_t window;
    long long req_delta; /* what this command adds, given back on failure */
    long long tok_delta;
    bool is_tokens;
};

static void on_expire_reply(void *ud, int result, const redisReply *reply)
{
    (void)ud;
    (void)result;
    (void)reply;
}

static void on_add_reply(void *ud, int result, const redisReply *reply)
{
    struct add_ctx *a = ud;
    long long total = result == 0 ? lx_limits__int_reply(reply) : -1;
    pthread_mutex_lock(&a->st->mu);
    if (a->e->window == a->window) {
        if (total >= 0) {
            if (a->is_tokens) {
                a->e->seen_t = LX_MAX(a->e->seen_t, total);
            } else {
                a->e->seen_r = LX_MAX(a->e->seen_r, total);
            }
        } else {
            /* Not applied: keep it local, to push on the next reconnect. */
            a->e->delta_r += a->req_delta;
            a->e->delta_t += a->tok_delta;
        }
    }
    a->e->refs--;
    pthread_mutex_unlock(&a->st->mu);
    lx_free(a);
}

/* INCRBY + EXPIRE of one counter; e's stripe is locked. Returns 0 or LX_EUNAVAIL (nothing sent). */
static int send_add(struct lx_limits *l, struct entry *e, struct stripe *st, int64_t window,
                    bool tokens, long long by)
{
    char key[LX_LIMITS_NAME_MAX + 64];
    char num[32], ttl[16];
    int kn = snprintf(key, sizeof(key), "lx:rl:%lld:%.*s:%c", (long long)window, (int)e->name_len,
                      e->name, tokens ? 't' : 'r');
    snprintf(num, sizeof(num), "%lld", by);
    snprintf(ttl, sizeof(ttl), "%d", ttl_s(l->t));
    struct add_ctx *a = LX_NEW(struct add_ctx);
    *a = (struct add_ctx){l->t, e, st, window, tokens ? 0 : by, tokens ? by : 0, tokens};
    const char *argv[3] = {"INCRBY", key, num};
    size_t lens[3] = {6, (size_t)kn, strlen(num)};
    if (lx_redis_command(l->redis, 3, argv, lens, on_add_reply, a)) {
        lx_free(a);
        return LX_EUNAVAIL;
    }
    e->refs++; /* the reply holds it */
    const char *ev[3] = {"EXPIRE", key, ttl};
    size_t el[3] = {6, (size_t)kn, strlen(ttl)};
    if (lx_redis_command(l->redis, 3, ev, el, on_expire_reply, NULL)) {
        LX_DEBUG("redis EXPIRE not sent");
    }
    return 0;
}

/* Push this process's local deltas of the current window to Redis. */
static void on_redis_up(struct lx_redis *redis, void *ud)
{
    (void)redis;
    struct lx_limits *l = ud;
    struct lx_limits_table *t = l->t;
    int64_t w = table_now(t) / table_window_s(t);
    unsigned pushed = 0;
    for (size_t i = 0; i < N_STRIPES; i++) {
        struct stripe *st = &t->stripes[i];
        pthread_mutex_lock(&st->mu);
        for (size_t k = 0; k < N_BUCKETS; k++) {
            for (struct entry *e = st->buckets[k]; e; e = e->next) {
                if (e->window != w || (e->delta_r == 0 && e->delta_t == 0)) {
                    continue;
                }
                long long dr = e->delta_r, dt = e->delta_t;
                e->delta_r = e->delta_t = 0;
                /*
                 * The add replies lock this stripe: they run later (Redis
                 * answers on a later loop turn), never inside this call.
                 */
                if (dr && send_add(l, e, st, w, false, dr)) {
                    e->delta_r += dr;
                }
                if (dt && send_add(l, e, st, w, true, dt)) {
                    e->delta_t += dt;
                }
                pushed++;
            }
        }
        pthread_mutex_unlock(&st->mu);
    }
    if (pushed) {
        LX_INFO("rate limits: pushed local counts of %u scope(s) to redis", pushed);
    }
}

void lx_limits_req_retarget(struct lx_limits_req *r, const struct lx_deployment *dep)
{
    if (r->st != RQ_ADMITTED) {
        return;
    }
    char name[LX_LIMITS_NAME_MAX + 1];
    int nn = snprintf(name, sizeof(name), "deployment:%s", dep->id);
    if (nn < 0 || (size_t)nn >= sizeof(name)) {
        return;
    }
    struct slot *s = NULL;
    for (size_t i = 0; i < r->n; i++) {
        if (strncmp(r->s[i].name, "deployment:", 11) == 0) {
            s = &r->s[i];
        }
    }
    if (s && s->name_len == (size_t)nn && memcmp(s->name, name, (size_t)nn) == 0) {
        return;
    }
    if (dep->rpm < 0 && dep->tpm < 0) {
        if (s) {
            s->tpm = -1; /* its tokens go to a deployment without limits */
        }
        return;
    }
    if (!s) {
        if (r->n >= LX_LIMITS_MAX_SCOPES) {
            return;
        }
        s = &r->s[r->n++];
    } else if (s->e) {
        pthread_mutex_lock(&s->st->mu);
        s->e->refs--;
        pthread_mutex_unlock(&s->st->mu);
    }
    memset(s, 0, offsetof(struct slot, name));
    memcpy(s->name, name, (size_t)nn + 1);
    s->name_len = (size_t)nn;
    s->rpm = dep->rpm;
    s->tpm = dep->tpm;
    s->par = -1;
    s->hash = hash_name(s->name, s->name_len);
    s->st = stripe_of(r->l->t, s->hash);
    struct lx_limits *l = r->l;
    int64_t w = table_now(l->t) / table_window_s(l->t);
    pthread_mutex_lock(&s->st->mu);
    s->e = entry_get(s->st, s->hash, s->name, s->name_len, true);
    s->e->refs++;
    entry_roll(s->e, w);
    bool sent = lx_limits_redis_up(l) && send_add(l, s->e, s->st, w, false, 1) == 0;
    if (!sent) {
        s->e->delta_r++;
    }
    s->req_after = s->e->seen_r + s->e->delta_r + (sent ? 1 : 0);
    s->tok_used = s->e->seen_t + s->e->delta_t;
    if (s->rpm >= 0 && s->req_after >= s->rpm) {
        s->e->full_window = w;
    }
    pthread_mutex_unlock(&s->st->mu);
}

static void req_free(struct lx_limits_req *r)
{
    bool bound = false;
    for (size_t i = 0; i < r->n; i++) {
        bound = bound || r->s[i].e;
    }
    if (bound) {
        struct lockset ls;
        lock_all(r, &ls);
        for (size_t i = 0; i < r->n; i++) {
            if (r->s[i].e) {
                r->s[i].e->refs--;
            }
        }
        unlock_all(&ls);
    }
    lx_buf_fini(&r->cmd);
    lx_free(r);
}

/* Release in-flight slots and add tokens, once; the request's stripes are locked. */
static void settle_locked(struct lx_limits_req *r, long long tokens)
{
    if (r->finished) {
        return;
    }
    r->finished = true;
    struct lx_limits *l = r->l;
    int64_t w = table_now(l->t) / table_window_s(l->t);
    bool up = tokens > 0 && lx_limits_redis_up(l);
    for (size_t i = 0; i < r->n; i++) {
        struct slot *s = &r->s[i];
        if (s->par_taken) {
            s->e->inflight--;
            s->par_taken = false;
        }
        if (r->st == RQ_ADMITTED && tokens > 0 && s->tpm >= 0) {
            /* Redis replies come on a later loop turn: sending under the lock is safe. */
            if (!(up && send_add(l, s->e, s->st, w, true, tokens) == 0)) {
                entry_roll(s->e, w);
                s->e->delta_t += tokens;
            }
        }
    }
}

void lx_limits_req_finish(struct lx_limits_req *r, long long tokens)
{
    if (r->finished || r->n == 0 || r->st == RQ_PENDING) {
        return;
    }
    struct lockset ls;
    lock_all(r, &ls);
    settle_locked(r, tokens);
    unlock_all(&ls);
}

void lx_limits_req_end(struct lx_limits_req *r, long long tokens)
{
    if (r->n == 0) {
        lx_buf_fini(&r->cmd);
        lx_free(r);
        return;
    }
    bool pending = r->st == RQ_PENDING;
    struct lockset ls;
    lock_all(r, &ls);
    settle_locked(r, tokens);
    for (size_t i = 0; i < r->n && !pending; i++) {
        struct slot *s = &r->s[i];
        if (s->e) {
            s->e->refs--;
            s->e = NULL;
        }
    }
    unlock_all(&ls);
    if (pending) {
        /* The Redis reply frees the request; its callback will not run. */
        r->ended = true;
        return;
    }
    lx_buf_fini(&r->cmd);
    lx_free(r);
}
