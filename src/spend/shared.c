/*
 * Spend shared through Redis (see shared.h). Scripts are sent with EVALSHA
 * and, once per command after a NOSCRIPT (Redis restarted or flushed), EVAL;
 * the arguments of a script call are kept in its context for that retry.
 */
#include "spend/shared.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/time.h"
#include "log/log.h"

#define MAX_SCOPES 4
#define MAX_ARGS 16
#define ARG_BYTES 4096
#define NO_PERIOD_TTL_S (30 * 86400)
#define PERIOD_SLACK_S 60

/* KEYS: counter, reset mark. ARGV: delta, floor, local view's read (wall ms), ttl. */
const char lx_spend_shared__add_script[] =
    "local m = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
    "local floor = ARGV[2]\n"
    "if m > tonumber(ARGV[3]) then floor = ARGV[1] end\n"
    "local v\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  v = redis.call('INCRBY', KEYS[1], ARGV[1])\n"
    "  if v < tonumber(floor) then\n"
    "    redis.call('SET', KEYS[1], floor)\n"
    "    v = tonumber(floor)\n"
    "  end\n"
    "else\n"
    "  redis.call('SET', KEYS[1], floor)\n"
    "  v = tonumber(floor)\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "return {v, m}\n";

/* KEYS: counter, reset mark. ARGV: value, mark (wall ms), ttl. */
const char lx_spend_shared__reset_script[] = "redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])\n"
                                             "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])\n"
                                             "return 1\n";

static char add_sha[41], reset_sha[41];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void sha_hex(const char *script, char out[41])
{
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script, strlen(script), d);
    for (size_t i = 0; i < sizeof(d); i++) {
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
}

static void sha_init(void)
{
    sha_hex(lx_spend_shared__add_script, add_sha);
    sha_hex(lx_spend_shared__reset_script, reset_sha);
}

static _Thread_local struct lx_redis *tl_redis;

void lx_spend_shared_use(struct lx_redis *r)
{
    tl_redis = r;
}

static struct lx_redis *link_up(void)
{
    return tl_redis && lx_redis_is_up(tl_redis) ? tl_redis : NULL;
}

static int64_t now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- scopes of a caller ---- */

enum { KIND_GLOBAL = 3 };

struct target {
    int kind; /* enum lx_budget_scope, or KIND_GLOBAL */
    const char *id;
    int64_t period;
    int64_t store_spend;
};

static size_t collect(const struct lx_config *cfg, const struct lx_identity *id, struct target *out)
{
    size_t n = 0;
    if (id && !id->is_master) {
        if (id->token[0] && id->key.max_budget_nanos != LX_NO_LIMIT) {
            out[n++] = (struct target){LX_BUDGET_KEY, id->token, id->key.budget_reset_at,
                                       id->key.spend_nanos};
        }
        if (id->has_user && id->user_id && id->user_id[0] &&
            id->user.max_budget_nanos != LX_NO_LIMIT) {
            out[n++] = (struct target){LX_BUDGET_USER, id->user_id, id->user.budget_reset_at,
                                       id->user.spend_nanos};
        }
        if (id->has_team && id->team_id && id->team_id[0] &&
            id->team.max_budget_nanos != LX_NO_LIMIT) {
            out[n++] = (struct target){LX_BUDGET_TEAM, id->team_id, id->team.budget_reset_at,
                                       id->team.spend_nanos};
        }
    }
    if (cfg->litellm.max_budget >= 0) {
        out[n++] = (struct target){KIND_GLOBAL, "global", 0, 0};
    }
    return n;
}

bool lx_spend_shared_applies(const struct lx_config *cfg, const struct lx_identity *id)
{
    struct target t[MAX_SCOPES];
    return collect(cfg, id, t) > 0;
}

static const char kind_letter[] = {'k', 'u', 't', 'g'};

/* Append "<counter>\0<counter>:reset\0" for a scope to b; offsets and lengths out. */
static int put_keys(struct lx_buf *b, int kind, const char *id, int64_t period, size_t *offs,
                    size_t *lens)
{
    for (int k = 0; k < 2; k++) {
        size_t start = b->len;
        int rc = kind == KIND_GLOBAL ? lx_buf_printf(b, "lx:sp:g:0%s", k ? ":reset" : "")
                                     : lx_buf_printf(b, "lx:sp:%c:%s:%lld%s", kind_letter[kind], id,
                                                     (long long)period, k ? ":reset" : "");
        rc = rc ? rc : lx_buf_append(b, "", 1);
        if (rc) {
            return rc;
        }
        offs[k] = start;
        lens[k] = b->len - start - 1;
    }
    return 0;
}

static int put_num(struct lx_buf *b, long long v, size_t *off, size_t *len)
{
    size_t start = b->len;
    int rc = lx_buf_printf(b, "%lld", v);
    rc = rc ? rc : lx_buf_append(b, "", 1);
    if (rc) {
        return rc;
    }
    *off = start;
    *len = b->len - start - 1;
    return 0;
}

static long long ttl_for(int64_t period)
{
    if (period <= 0) {
        return NO_PERIOD_TTL_S;
    }
    int64_t left = period - lx_wall_s();
    return (long long)(left > 0 ? left : 0) + PERIOD_SLACK_S;
}

/* ---- reply decoding ---- */

/* A decimal int64 (optionally negative) filling the whole string. */
static int parse_i64(const char *s, size_t n, int64_t *out)
{
    char tmp[24];
    if (n == 0 || n >= sizeof(tmp)) {
        return LX_EUPSTREAM;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!(tmp[i] >= '0' && tmp[i] <= '9') && !(i == 0 && tmp[i] == '-' && n > 1)) {
            return LX_EUPSTREAM;
        }
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(tmp, &end, 10);
    if (errno || !end || *end) {
        return LX_EUPSTREAM;
    }
    *out = v;
    return 0;
}

int lx_spend_shared__decode_mget(const redisReply *rep, size_t n, struct lx_spend_shared__val *out)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY || n > MAX_SCOPES || rep->elements != 2 * n) {
        return LX_EUPSTREAM;
    }
    for (size_t i = 0; i < n; i++) {
        struct lx_spend_shared__val v = {0};
        for (size_t k = 0; k < 2; k++) {
            const redisReply *e = rep->element[2 * i + k];
            int64_t x = 0;
            if (!e) {
                return LX_EUPSTREAM;
            }
            if (e->type == REDIS_REPLY_NIL) {
                continue;
            }
            if (e->type != REDIS_REPLY_STRING || parse_i64(e->str, e->len, &x)) {
                return LX_EUPSTREAM;
            }
            if (k == 0) {
                v.exists = true;
                v.value = x;
            } else {
                v.mark_ms = x;
            }
        }
        out[i] = v;
    }
    return 0;
}

int lx_spend_shared__decode_add(const redisReply *rep, struct lx_spend_shared__val *out)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        return LX_EUPSTREAM;
    }
    for (size_t i = 0; i < 2; i++) {
        if (!rep->element[i] || rep->element[i]->type != REDIS_REPLY_INTEGER) {
            return LX_EUPSTREAM;
        }
    }
    *out = (struct lx_spend_shared__val){true, rep->element[0]->integer, rep->element[1]->integer};
    return 0;
}

static void note(struct lx_budget *b, int kind, const char *id, int64_t period,
                 const struct lx_spend_shared__val *v)
{
    if (kind == KIND_GLOBAL) {
        lx_budget_note_shared_global(b, v->exists, v->value);
    } else {
        lx_budget_note_shared(b, (enum lx_budget_scope)kind, id, period, v->exists, v->value,
                              v->mark_ms);
    }
}

/* A reply error that repeats on every request: warn every 10 s. */
static void warn_reply(const char *what, const redisReply *reply)
{
    static _Thread_local uint64_t last_ms;
    uint64_t now = lx_mono_ms();
    if (last_ms && now - last_ms < 10000) {
        return;
    }
    last_ms = now;
    LX_WARN("unexpected reply from redis to the shared-spend %s (%s); using local budgets", what,
            reply && reply->type == REDIS_REPLY_ERROR && reply->str ? reply->str
                                                                    : "not the expected shape");
}

/* ---- admission read ---- */

struct lx_spend_fetch {
    struct lx_budget *b;
    lx_spend_fetch_cb cb;
    void *ud;
    bool cancelled;
    size_t n;
    struct target t[MAX_SCOPES]; /* ids point into ids */
    char *ids[MAX_SCOPES];
};

static void fetch_free(struct lx_spend_fetch *f)
{
    for (size_t i = 0; i < f->n; i++) {
        lx_free(f->ids[i]);
    }
    lx_free(f);
}

static void on_fetch_reply(void *ud, int result, const redisReply *reply)
{
    struct lx_spend_fetch *f = ud;
    struct lx_spend_shared__val v[MAX_SCOPES];
    if (result == 0 && lx_spend_shared__decode_mget(reply, f->n, v) == 0) {
        for (size_t i = 0; i < f->n; i++) {
            note(f->b, f->t[i].kind, f->t[i].id, f->t[i].period, &v[i]);
        }
    } else if (result == 0) {
        warn_reply("read", reply);
    }
    if (!f->cancelled) {
        f->cb(f->ud);
    }
    fetch_free(f);
}

int lx_spend_shared_fetch(struct lx_budget *b, const struct lx_config *cfg,
                          const struct lx_identity *id, lx_spend_fetch_cb cb, void *ud,
                          struct lx_spend_fetch **out_fetch)
{
    *out_fetch = NULL;
    struct lx_redis *r = link_up();
    if (!r || !b) {
        return 0;
    }
    struct target t[MAX_SCOPES];
    size_t n = collect(cfg, id, t);
    if (n == 0) {
        return 0;
    }
    struct lx_buf kb;
    lx_buf_init(&kb, ARG_BYTES * 4);
    size_t offs[1 + 2 * MAX_SCOPES], lens[1 + 2 * MAX_SCOPES];
    const char *argv[1 + 2 * MAX_SCOPES];
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = put_keys(&kb, t[i].kind, t[i].id, t[i].period, offs + 1 + 2 * i, lens + 1 + 2 * i);
    }
    if (rc) {
        lx_buf_fini(&kb);
        return 0;
    }
    argv[0] = "MGET";
    lens[0] = 4;
    for (size_t i = 1; i < 1 + 2 * n; i++) {
        argv[i] = kb.data + offs[i];
    }
    struct lx_spend_fetch *f = LX_NEW(struct lx_spend_fetch);
    f->b = b;
    f->cb = cb;
    f->ud = ud;
    f->n = n;
    for (size_t i = 0; i < n; i++) {
        f->ids[i] = lx_strdup(t[i].id);
        f->t[i] = t[i];
        f->t[i].id = f->ids[i];
    }
    rc = lx_redis_command(r, (int)(1 + 2 * n), argv, lens, on_fetch_reply, f);
    lx_buf_fini(&kb);
    if (rc) {
        fetch_free(f);
        return 0;
    }
    *out_fetch = f;
    return LX_EAGAIN;
}

void lx_spend_fetch_cancel(struct lx_spend_fetch *f)
{
    if (f) {
        f->cancelled = true;
    }
}

/* ---- scripts: adds and resets ---- */

struct scall {
    const char *script;
    const char *sha;
    bool tried_eval;
    struct lx_buf args; /* keys then arguments, NUL-separated */
    int argc;
    size_t offs[MAX_ARGS], lens[MAX_ARGS];
    struct lx_budget *b;
    int kind;
    char *id;
    int64_t period;
    int64_t value; /* resets: the value written */
    int64_t mark;  /* resets: the mark written */
    lx_spend_reset_cb cb;
    void *ud;
};

static void scall_free(struct scall *sc)
{
    lx_buf_fini(&sc->args);
    lx_free(sc->id);
    lx_free(sc);
}

static void on_script_reply(void *ud, int result, const redisReply *reply);

static int scall_send(struct lx_redis *r, struct scall *sc, bool eval)
{
    const char *argv[3 + MAX_ARGS];
    size_t lens[3 + MAX_ARGS];
    argv[0] = eval ? "EVAL" : "EVALSHA";
    lens[0] = strlen(argv[0]);
    argv[1] = eval ? sc->script : sc->sha;
    lens[1] = strlen(argv[1]);
    argv[2] = "2";
    lens[2] = 1;
    for (int i = 0; i < sc->argc; i++) {
        argv[3 + i] = sc->args.data + sc->offs[i];
        lens[3 + i] = sc->lens[i];
    }
    return lx_redis_command(r, 3 + sc->argc, argv, lens, on_script_reply, sc);
}

static bool is_noscript(const redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ERROR && rep->str && rep->len >= 8 &&
           memcmp(rep->str, "NOSCRIPT", 8) == 0;
}

static void on_script_reply(void *ud, int result, const redisReply *reply)
{
    struct scall *sc = ud;
    struct lx_redis *r = link_up();
    if (result == 0 && is_noscript(reply) && !sc->tried_eval && r) {
        sc->tried_eval = true;
        if (scall_send(r, sc, true) == 0) {
            return;
        }
    }
    if (sc->cb) {
        /* A reset: note what was written (when it was) and answer. */
        if (result == 0 && reply && reply->type == REDIS_REPLY_INTEGER) {
            struct lx_spend_shared__val v = {true, sc->value, sc->mark};
            note(sc->b, sc->kind, sc->id, sc->period, &v);
        } else if (result == 0) {
            warn_reply("reset", reply);
        }
        sc->cb(sc->ud);
    } else if (result == 0) {
        struct lx_spend_shared__val v;
        if (lx_spend_shared__decode_add(reply, &v) == 0) {
            note(sc->b, sc->kind, sc->id, sc->period, &v);
        } else {
            warn_reply("add", reply);
        }
    }
    scall_free(sc);
}

static struct scall *scall_new(struct lx_budget *b, int kind, const char *id, int64_t period,
                               bool reset)
{
    pthread_once(&sha_once, sha_init);
    struct scall *sc = LX_NEW(struct scall);
    sc->script = reset ? lx_spend_shared__reset_script : lx_spend_shared__add_script;
    sc->sha = reset ? reset_sha : add_sha;
    sc->b = b;
    sc->kind = kind;
    sc->id = lx_strdup(id);
    sc->period = period;
    lx_buf_init(&sc->args, ARG_BYTES);
    return sc;
}

/* Append numbers as script arguments after the two keys. */
static int scall_args(struct scall *sc, int n, ...)
{
    int rc = put_keys(&sc->args, sc->kind, sc->id, sc->period, sc->offs, sc->lens);
    sc->argc = 2;
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n && !rc; i++) {
        rc = put_num(&sc->args, va_arg(ap, long long), &sc->offs[sc->argc], &sc->lens[sc->argc]);
        sc->argc++;
    }
    va_end(ap);
    return rc;
}

void lx_spend_shared_record(struct lx_budget *b, const struct lx_config *cfg,
                            const struct lx_identity *id, int64_t spend_nanos)
{
    struct lx_redis *r = link_up();
    if (!r || !b || spend_nanos <= 0) {
        return;
    }
    struct target t[MAX_SCOPES];
    size_t n = collect(cfg, id, t);
    for (size_t i = 0; i < n; i++) {
        int64_t floor, read_wall = 0;
        if (t[i].kind == KIND_GLOBAL) {
            floor = lx_budget_local_global(b);
            read_wall = INT64_MAX; /* no reset of the global total: the floor always holds */
        } else {
            floor = lx_budget_local_view(b, (enum lx_budget_scope)t[i].kind, t[i].id,
                                         t[i].store_spend, id->loaded_at_ms, &read_wall);
        }
        struct scall *sc = scall_new(b, t[i].kind, t[i].id, t[i].period, false);
        if (scall_args(sc, 4, (long long)spend_nanos, (long long)floor, (long long)read_wall,
                       ttl_for(t[i].period)) ||
            scall_send(r, sc, false)) {
            scall_free(sc);
            return; /* the link went down: the next add re-floors the counters */
        }
    }
    /*
     * Redis gets the adds before the client gets its answer (a few µs, one
     * non-blocking write): the client's next call, on any instance, finds
     * this spend in the counters.
     */
    lx_redis_flush(r);
}

int lx_spend_shared_reset(struct lx_budget *b, enum lx_budget_scope kind, const char *id,
                          int64_t period, lx_spend_reset_cb cb, void *ud)
{
    struct lx_redis *r = link_up();
    if (!r || !b) {
        return LX_EUNAVAIL;
    }
    int64_t read_wall = 0;
    struct scall *sc = scall_new(b, (int)kind, id, period, true);
    sc->value = lx_budget_local_view(b, kind, id, 0, 0, &read_wall);
    sc->mark = now_wall_ms();
    sc->cb = cb;
    sc->ud = ud;
    if (scall_args(sc, 3, (long long)sc->value, (long long)sc->mark, ttl_for(period)) ||
        scall_send(r, sc, false)) {
        scall_free(sc);
        return LX_EUNAVAIL;
    }
    return 0;
}
