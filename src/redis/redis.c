/*
 * The worker's Redis link. States:
 *
 *   DOWN --(retry timer)--> RESOLVING --(address)--> CONNECTING --(connected)-->
 *   [AUTHING --(AUTH ok)-->] UP --(timeout / loss)--> DOWN
 *
 * Only UP accepts commands. Pending commands are kept in send order (Redis
 * answers in order), so the oldest one's deadline is the one the deadline
 * timer watches. Tearing a link down from our side (timeout) goes through
 * redisAsyncFree, which runs every pending hiredis callback with a NULL
 * reply; the context's `data` is cleared first so our disconnect hook knows
 * the teardown is ours. hiredis 0.14 has no timeouts of its own, hence the
 * timer.
 */
#include "redis/redis.h"

#include <stdio.h>
#include <string.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>

#include "core/alloc.h"
#include "core/time.h"
#include "log/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

enum state { ST_DOWN, ST_RESOLVING, ST_CONNECTING, ST_AUTHING, ST_UP, ST_CLOSED };

struct pend {
    struct lx_redis *r;
    lx_redis_reply_cb cb;
    void *ud;
    uint64_t deadline_ms;
    struct pend *prev, *next;
};

struct lx_redis {
    uv_loop_t *loop;
    char *host;
    int port;
    char *password;
    char *username;
    lx_redis_up_cb up_cb;
    void *up_ud;

    enum state st;
    redisAsyncContext *ac;
    uv_getaddrinfo_t resolve;
    bool resolving;      /* resolve request in flight */
    uv_timer_t deadline; /* command and connect deadlines */
    uv_timer_t retry;
    int open_handles;
    uint64_t connect_deadline_ms;
    uint64_t backoff_ms;
    bool timed_out; /* the current teardown is a command timeout */
    bool logged_down;

    struct pend *head, *tail;
    struct lx_redis_stats stats;
};

static void start_resolve(struct lx_redis *r);
static void on_deadline(uv_timer_t *t);
static void on_retry(uv_timer_t *t);

static void maybe_release(struct lx_redis *r)
{
    if (r->st == ST_CLOSED && r->open_handles == 0 && !r->resolving) {
        lx_free(r->host);
        lx_free(r->password);
        lx_free(r->username);
        lx_free(r);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct lx_redis *r = h->data;
    r->open_handles--;
    maybe_release(r);
}

static void pend_unlink(struct lx_redis *r, struct pend *p)
{
    if (p->prev) {
        p->prev->next = p->next;
    } else {
        r->head = p->next;
    }
    if (p->next) {
        p->next->prev = p->prev;
    } else {
        r->tail = p->prev;
    }
    r->stats.pending--;
}

static void arm_deadline(struct lx_redis *r)
{
    uint64_t due = 0;
    if (r->st == ST_CONNECTING || r->st == ST_AUTHING) {
        due = r->connect_deadline_ms;
    } else if (r->head) {
        due = r->head->deadline_ms;
    }
    if (!due) {
        uv_timer_stop(&r->deadline);
        return;
    }
    uint64_t now = lx_mono_ms();
    uv_timer_start(&r->deadline, on_deadline, due > now ? due - now : 0, 0);
}

static void schedule_retry(struct lx_redis *r)
{
    if (r->st == ST_CLOSED) {
        return;
    }
    r->st = ST_DOWN;
    r->stats.failures++;
    uv_timer_stop(&r->deadline);
    if (!r->logged_down) {
        LX_WARN("redis %s:%d unreachable; using local counters until it is back", r->host, r->port);
        r->logged_down = true;
    }
    uv_timer_start(&r->retry, on_retry, r->backoff_ms, 0);
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* Tear the link down from our side; pending callbacks run with NULL replies. */
static void drop_link(struct lx_redis *r)
{
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
}

static void on_deadline(uv_timer_t *t)
{
    struct lx_redis *r = t->data;
    uint64_t now = lx_mono_ms();
    if (r->st == ST_CONNECTING || r->st == ST_AUTHING) {
        if (now >= r->connect_deadline_ms) {
            r->st = ST_DOWN;
            drop_link(r);
            schedule_retry(r);
            return;
        }
    } else if (r->head && now >= r->head->deadline_ms) {
        r->stats.timeouts++;
        r->timed_out = true;
        r->st = ST_DOWN;
        drop_link(r);
        r->timed_out = false;
        schedule_retry(r);
        return;
    }
    arm_deadline(r);
}

static void on_retry(uv_timer_t *t)
{
    struct lx_redis *r = t->data;
    if (r->st == ST_DOWN) {
        start_resolve(r);
    }
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct pend *p = privdata;
    struct lx_redis *r = p->r;
    pend_unlink(r, p);
    int result = 0;
    if (!reply) {
        result = r->st == ST_CLOSED ? LX_ECANCELED : r->timed_out ? LX_ETIMEDOUT : LX_EUNAVAIL;
    }
    p->cb(p->ud, result, reply);
    lx_free(p);
    if (r->st == ST_UP) {
        arm_deadline(r);
    }
}

static int send_argv(struct lx_redis *r, int argc, const char **argv, const size_t *lens,
                     lx_redis_reply_cb cb, void *ud)
{
    struct pend *p = LX_NEW(struct pend);
    p->r = r;
    p->cb = cb;
    p->ud = ud;
    p->deadline_ms = lx_mono_ms() + LX_REDIS_CMD_TIMEOUT_MS;
    p->prev = r->tail;
    if (r->tail) {
        r->tail->next = p;
    } else {
        r->head = p;
    }
    r->tail = p;
    r->stats.pending++;
    if (redisAsyncCommandArgv(r->ac, on_reply, p, argc, argv, lens) != REDIS_OK) {
        pend_unlink(r, p);
        lx_free(p);
        return LX_EUNAVAIL;
    }
    r->stats.sent++;
    if (p == r->head) {
        arm_deadline(r);
    }
    return 0;
}

static void became_up(struct lx_redis *r)
{
    r->st = ST_UP;
    r->stats.connects++;
    r->backoff_ms = BACKOFF_MIN_MS;
    if (r->logged_down) {
        LX_INFO("redis %s:%d is back", r->host, r->port);
        r->logged_down = false;
    }
    arm_deadline(r);
    if (r->up_cb) {
        r->up_cb(r, r->up_ud);
    }
}

static void on_auth(void *ud, int result, const redisReply *reply)
{
    struct lx_redis *r = ud;
    if (r->st != ST_AUTHING) {
        return;
    }
    if (result || !reply || reply->type == REDIS_REPLY_ERROR) {
        /* The reply text of a refused AUTH never contains the password. */
        LX_WARN("redis %s:%d refused the connection handshake: %s", r->host, r->port,
                reply && reply->type == REDIS_REPLY_ERROR ? reply->str : lx_strerror(result));
        /* Tear down from the deadline timer, outside hiredis' callback. */
        r->connect_deadline_ms = 1;
        r->st = ST_CONNECTING;
        arm_deadline(r);
        return;
    }
    became_up(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct lx_redis *r = ac->data;
    if (!r) {
        return;
    }
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        r->ac = NULL;
        schedule_retry(r);
        return;
    }
    /*
     * A TCP connect alone does not prove a live server (a stopped process's
     * kernel still accepts): the link is up only once AUTH, or a PING,
     * has been answered within the connect deadline.
     */
    int rc;
    r->st = ST_AUTHING;
    if (r->password && r->username) {
        const char *argv[3] = {"AUTH", r->username, r->password};
        size_t lens[3] = {4, strlen(r->username), strlen(r->password)};
        rc = send_argv(r, 3, argv, lens, on_auth, r);
    } else if (r->password) {
        const char *argv[2] = {"AUTH", r->password};
        size_t lens[2] = {4, strlen(r->password)};
        rc = send_argv(r, 2, argv, lens, on_auth, r);
    } else {
        const char *argv[1] = {"PING"};
        size_t lens[1] = {4};
        rc = send_argv(r, 1, argv, lens, on_auth, r);
    }
    if (rc) {
        r->connect_deadline_ms = 1;
        arm_deadline(r);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct lx_redis *r = ac->data;
    if (!r) {
        return; /* our own teardown */
    }
    /* hiredis frees the context after this callback. */
    r->ac = NULL;
    schedule_retry(r);
}

static void connect_to(struct lx_redis *r, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, r->port);
    if (!ac) {
        schedule_retry(r);
        return;
    }
    if (ac->err) {
        redisAsyncFree(ac);
        schedule_retry(r);
        return;
    }
    ac->data = r;
    if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
        ac->data = NULL;
        redisAsyncFree(ac);
        schedule_retry(r);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->st = ST_CONNECTING;
    r->connect_deadline_ms = lx_mono_ms() + LX_REDIS_CONNECT_TIMEOUT_MS;
    arm_deadline(r);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct lx_redis *r = req->data;
    r->resolving = false;
    if (r->st == ST_CLOSED) {
        uv_freeaddrinfo(res);
        maybe_release(r);
        return;
    }
    char ip[64] = "";
    if (status == 0 && res) {
        if (res->ai_family == AF_INET) {
            uv_ip4_name((const struct sockaddr_in *)res->ai_addr, ip, sizeof(ip));
        } else if (res->ai_family == AF_INET6) {
            uv_ip6_name((const struct sockaddr_in6 *)res->ai_addr, ip, sizeof(ip));
        }
    }
    uv_freeaddrinfo(res);
    if (!ip[0]) {
        schedule_retry(r);
        return;
    }
    connect_to(r, ip);
}

static void start_resolve(struct lx_redis *r)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    r->resolve.data = r;
    r->st = ST_RESOLVING;
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    if (uv_getaddrinfo(r->loop, &r->resolve, on_resolved, r->host, port, &hints) != 0) {
        schedule_retry(r);
        return;
    }
    r->resolving = true;
}

struct lx_redis *lx_redis_new(uv_loop_t *loop, const struct lx_redis_cfg *cfg, lx_redis_up_cb up,
                              void *ud)
{
    struct lx_redis *r = LX_NEW(struct lx_redis);
    r->loop = loop;
    r->host = lx_strdup(cfg->host ? cfg->host : "127.0.0.1");
    r->port = cfg->port > 0 ? cfg->port : 6379;
    r->password = cfg->password && cfg->password[0] ? lx_strdup(cfg->password) : NULL;
    r->username = cfg->username && cfg->username[0] ? lx_strdup(cfg->username) : NULL;
    r->up_cb = up;
    r->up_ud = ud;
    r->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(loop, &r->deadline);
    uv_timer_init(loop, &r->retry);
    r->deadline.data = r;
    r->retry.data = r;
    r->open_handles = 2;
    start_resolve(r);
    return r;
}

void lx_redis_close(struct lx_redis *r)
{
    if (r->st == ST_CLOSED) {
        return;
    }
    r->st = ST_CLOSED;
    drop_link(r);
    if (r->resolving) {
        uv_cancel((uv_req_t *)&r->resolve);
    }
    uv_close((uv_handle_t *)&r->deadline, on_handle_closed);
    uv_close((uv_handle_t *)&r->retry, on_handle_closed);
}

bool lx_redis_is_up(const struct lx_redis *r)
{
    return r->st == ST_UP;
}

static bool str_same(const char *a, const char *b)
{
    if (!a || !a[0]) {
        return !b || !b[0];
    }
    return b && strcmp(a, b) == 0;
}

bool lx_redis_same_target(const struct lx_redis *r, const struct lx_redis_cfg *cfg)
{
    int port = cfg->port > 0 ? cfg->port : 6379;
    return str_same(r->host, cfg->host ? cfg->host : "127.0.0.1") && r->port == port &&
           str_same(r->password, cfg->password) && str_same(r->username, cfg->username);
}

int lx_redis_command(struct lx_redis *r, int argc, const char **argv, const size_t *lens,
                     lx_redis_reply_cb cb, void *ud)
{
    if (r->st != ST_UP || !r->ac) {
        return LX_EUNAVAIL;
    }
    return send_argv(r, argc, argv, lens, cb, ud);
}

void lx_redis_flush(struct lx_redis *r)
{
    if (r->st != ST_UP || !r->ac) {
        return;
    }
    /*
     * The context's own write, not redisAsyncHandleWrite: on an error that
     * one tears the link down and runs every pending callback inside this
     * call. Here the error stays in the context for the next loop event.
     */
    int done = 0;
    (void)redisBufferWrite(&r->ac->c, &done);
}

void lx_redis_get_stats(const struct lx_redis *r, struct lx_redis_stats *out)
{
    *out = r->stats;
}
