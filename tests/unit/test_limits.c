/*
 * Rate limits: windows, all-or-nothing admission, in-flight release,
 * tokens, messages and headers, the Redis script's reply decoding, and the
 * Redis path against a real redis-server (fallback when it dies, resync
 * when it returns). The Redis tests are skipped when redis-server is not
 * installed.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "limits/limits.h"
#include "limits/limits_int.h"
#include "lx_test.h"

#define T0 1800000000 /* a window boundary: 1800000000 / 60 = 30000000 */

struct fixture {
    uv_loop_t loop;
    struct lx_limits_table *t;
    struct lx_limits *l;
};

static void fx_init(struct fixture *f)
{
    uv_loop_init(&f->loop);
    f->t = lx_limits_table_new();
    lx_limits_table_set_now(f->t, T0);
    f->l = lx_limits_new(&f->loop, f->t);
}

static void fx_fini(struct fixture *f)
{
    lx_limits_free(f->l);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_loop_close(&f->loop);
    lx_limits_table_free(f->t);
}

/* Admit a request over the given scopes synchronously (no Redis). */
static struct lx_limits_req *admit1(struct fixture *f, const struct lx_limits_scope *sc, size_t n,
                                    int *out_rc)
{
    struct lx_limits_req *r = lx_limits_req_new(f->l);
    for (size_t i = 0; i < n; i++) {
        LX_CHECK_INT(lx_limits_req_add(r, &sc[i]), 0);
    }
    *out_rc = lx_limits_admit(r, NULL, NULL);
    return r;
}

static long long count_req(struct fixture *f, const char *name)
{
    struct lx_limits_counts c;
    lx_limits_table_counts(f->t, name, &c);
    return c.requests;
}

LX_TEST(limits_window_rollover)
{
    struct fixture f;
    fx_init(&f);
    struct lx_limits_scope sc = {"global", 2, -1, -1};
    int rc;
    for (int i = 0; i < 2; i++) {
        lx_limits_req_end(admit1(&f, &sc, 1, &rc), 0);
        LX_CHECK_INT(rc, 0);
    }
    struct lx_limits_req *r = admit1(&f, &sc, 1, &rc);
    LX_CHECK_INT(rc, LX_ERATELIMIT);
    LX_CHECK_INT(lx_limits_req_retry_after(r), 60);
    lx_limits_req_end(r, 0);
    LX_CHECK_INT(count_req(&f, "global"), 2);
    /* Last second of the window: still refused, retry in 1 s. */
    lx_limits_table_set_now(f.t, T0 + 59);
    r = admit1(&f, &sc, 1, &rc);
    LX_CHECK_INT(rc, LX_ERATELIMIT);
    LX_CHECK_INT(lx_limits_req_retry_after(r), 1);
    lx_limits_req_end(r, 0);
    /* Next window: counts start again. */
    lx_limits_table_set_now(f.t, T0 + 60);
    LX_CHECK_INT(count_req(&f, "global"), 0);
    r = admit1(&f, &sc, 1, &rc);
    LX_CHECK_INT(rc, 0);
    lx_limits_req_end(r, 0);
    LX_CHECK_INT(count_req(&f, "global"), 1);
    fx_fini(&f);
}

LX_TEST(limits_all_or_nothing)
{
    struct fixture f;
    fx_init(&f);
    struct lx_limits_scope sc[2] = {{"global", 5, -1, -1}, {"user:u1", 1, -1, -1}};
    int rc;
    lx_limits_req_end(admit1(&f, sc, 2, &rc), 0);
    LX_CHECK_INT(rc, 0);
    struct lx_limits_req *r = admit1(&f, sc, 2, &rc);
    LX_CHECK_INT(rc, LX_ERATELIMIT);
    enum lx_limits_kind kind;
    LX_CHECK_INT(lx_limits_req_refused(r, &kind), 1);
    LX_CHECK_INT(kind, LX_LIMITS_RPM);
    LX_CHECK_STR(lx_limits_req_scope_name(r, 1), "user:u1");
    lx_limits_req_end(r, 0);
    /* The refused request counted nowhere. */
    LX_CHECK_INT(count_req(&f, "global"), 1);
    LX_CHECK_INT(count_req(&f, "user:u1"), 1);
    /* Another user still has room in the global scope. */
    struct lx_limits_scope sc2[2] = {{"global", 5, -1, -1}, {"user:u2", 1, -1, -1}};
    lx_limits_req_end(admit1(&f, sc2, 2, &rc), 0);
    LX_CHECK_INT(rc, 0);
    LX_CHECK_INT(count_req(&f, "global"), 2);
    fx_fini(&f);
}

LX_TEST(limits_parallel_release)
{
    struct fixture f;
    fx_init(&f);
    struct lx_limits_scope sc = {"key:abc", -1, -1, 2};
    int rc1, rc2, rc3;
    struct lx_limits_req *a = admit1(&f, &sc, 1, &rc1);
    struct lx_limits_req *b = admit1(&f, &sc, 1, &rc2);
    struct lx_limits_req *c = admit1(&f, &sc, 1, &rc3);
    LX_CHECK_INT(rc1, 0);
    LX_CHECK_INT(rc2, 0);
    LX_CHECK_INT(rc3, LX_ERATELIMIT);
    enum lx_limits_kind kind;
    LX_CHECK_INT(lx_limits_req_refused(c, &kind), 0);
    LX_CHECK_INT(kind, LX_LIMITS_PARALLEL);
    char msg[300];
    lx_limits_req_message(c, msg, sizeof(msg));
    LX_CHECK(strstr(msg, "max_parallel_requests 2") != NULL);
    LX_CHECK(strstr(msg, "abc") == NULL); /* the key's token is never named */
    lx_limits_req_end(c, 0);
    struct lx_limits_counts cnt;
    lx_limits_table_counts(f.t, "key:abc", &cnt);
    LX_CHECK_INT(cnt.in_flight, 2);
    lx_limits_req_end(a, 0);
    int rc4;
    struct lx_limits_req *d = admit1(&f, &sc, 1, &rc4);
    LX_CHECK_INT(rc4, 0);
    lx_limits_req_end(b, 0);
    lx_limits_req_end(d, 0);
    lx_limits_table_counts(f.t, "key:abc", &cnt);
    LX_CHECK_INT(cnt.in_flight, 0);
    /* In-flight slots carry over a window change. */
    struct lx_limits_req *e = admit1(&f, &sc, 1, &rc1);
    lx_limits_table_set_now(f.t, T0 + 61);
    lx_limits_table_counts(f.t, "key:abc", &cnt);
    LX_CHECK_INT(cnt.in_flight, 1);
    lx_limits_req_end(e, 0);
    lx_limits_table_counts(f.t, "key:abc", &cnt);
    LX_CHECK_INT(cnt.in_flight, 0);
    fx_fini(&f);
}

LX_TEST(limits_tokens_after_response)
{
    struct fixture f;
    fx_init(&f);
    struct lx_limits_scope sc = {"deployment:d1", -1, 100, -1};
    int rc;
    struct lx_limits_req *r = admit1(&f, &sc, 1, &rc);
    LX_CHECK_INT(rc, 0);
    LX_CHECK(lx_limits_req_wants_tokens(r));
    lx_limits_req_end(r, 60);
    r = admit1(&f, &sc, 1, &rc);
    LX_CHECK_INT(rc, 0);
    struct lx_http_header h[LX_LIMITS_MAX_HEADERS];
    size_t n = lx_limits_req_headers(r, h);
    LX_CHECK_INT(n, 3);
    LX_CHECK_MEM(h[0].name.p, h[0].name.n, "x-ratelimit-limit-tokens");
    LX_CHECK_MEM(h[0].value.p, h[0].value.n, "100");
    LX_CHECK_MEM(h[1].name.p, h[1].name.n, "x-ratelimit-remaining-tokens");
    LX_CHECK_MEM(h[1].value.p, h[1].value.n, "40");
    lx_limits_req_end(r, 45);
    r = admit1(&f, &sc, 1, &rc);
    LX_CHECK_INT(rc, LX_ERATELIMIT);
    char msg[300];
    lx_limits_req_message(r, msg, sizeof(msg));
    LX_CHECK_STR(msg, "Rate limit exceeded for deployment 'd1': tpm 100 reached. Retry in 60s.");
    n = lx_limits_req_headers(r, h);
    LX_CHECK_INT(n, 4);
    LX_CHECK_MEM(h[1].value.p, h[1].value.n, "0");
    LX_CHECK_MEM(h[3].name.p, h[3].name.n, "retry-after");
    LX_CHECK_MEM(h[3].value.p, h[3].value.n, "60");
    lx_limits_req_end(r, 0);
    fx_fini(&f);
}

LX_TEST(limits_headers_most_constrained)
{
    struct fixture f;
    fx_init(&f);
    struct lx_limits_scope sc[2] = {{"global", 1000, -1, -1}, {"key:k", 3, -1, -1}};
    int rc;
    lx_limits_table_set_now(f.t, T0 + 17);
    struct lx_limits_req *r = admit1(&f, sc, 2, &rc);
    struct lx_http_header h[LX_LIMITS_MAX_HEADERS];
    size_t n = lx_limits_req_headers(r, h);
    LX_CHECK_INT(n, 3);
    LX_CHECK_MEM(h[0].value.p, h[0].value.n, "3");
    LX_CHECK_MEM(h[1].value.p, h[1].value.n, "2");
    LX_CHECK_MEM(h[2].name.p, h[2].name.n, "x-ratelimit-reset-requests");
    LX_CHECK_MEM(h[2].value.p, h[2].value.n, "43");
    lx_limits_req_end(r, 0);
    /* A request with no scope: no headers, admitted. */
    r = lx_limits_req_new(f.l);
    LX_CHECK_INT(lx_limits_admit(r, NULL, NULL), 0);
    LX_CHECK_INT(lx_limits_req_headers(r, h), 0);
    lx_limits_req_end(r, 10);
    fx_fini(&f);
}

LX_TEST(limits_scopes_from_config_and_identity)
{
    struct fixture f;
    fx_init(&f);
    struct lx_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.general.global_max_rpm = 10;
    cfg.general.global_max_tpm = -1;
    struct lx_deployment dep;
    memset(&dep, 0, sizeof(dep));
    dep.id = "dep-1";
    dep.rpm = 1;
    dep.tpm = -1;
    struct lx_limits_req *r = lx_limits_req_new(f.l);
    lx_limits_req_add_config(r, &cfg, &dep);
    LX_CHECK_INT(lx_limits_req_count(r), 2);

    struct lx_identity id;
    memset(&id, 0, sizeof(id));
    snprintf(id.token, sizeof(id.token), "%s", "feedface");
    id.key.rpm_limit = 100;
    id.key.tpm_limit = -1;
    id.key.max_parallel_requests = -1;
    id.has_user = true;
    id.user_id = "u1";
    id.user.rpm_limit = -1;
    id.user.tpm_limit = -1;
    id.user.max_parallel_requests = -1; /* no limit: no scope */
    struct lx_model_limit ml = {"gpt-4", 5, -1};
    id.model_limits = &ml;
    id.n_model_limits = 1;
    lx_limits_req_add_identity(r, &id, "gpt-4");
    LX_CHECK_INT(lx_limits_req_count(r), 4);
    LX_CHECK_INT(lx_limits_admit(r, NULL, NULL), 0);
    LX_CHECK_STR(lx_limits_req_scope_name(r, 1), "deployment:dep-1");
    LX_CHECK_STR(lx_limits_req_scope_name(r, 2), "key:feedface");
    LX_CHECK_STR(lx_limits_req_scope_name(r, 3), "keymodel:feedface:gpt-4");
    lx_limits_req_end(r, 0);
    LX_CHECK(lx_limits_deployment_full(f.l, &dep));
    dep.id = "dep-2";
    LX_CHECK(!lx_limits_deployment_full(f.l, &dep));

    /* The master key has no limits. */
    id.is_master = true;
    r = lx_limits_req_new(f.l);
    lx_limits_req_add_identity(r, &id, "gpt-4");
    LX_CHECK_INT(lx_limits_req_count(r), 0);
    lx_limits_req_end(r, 0);

    /* Key-scope message names the limit, not the token. */
    id.is_master = false;
    id.key.rpm_limit = 1;
    id.n_model_limits = 0;
    for (int i = 0; i < 2; i++) {
        r = lx_limits_req_new(f.l);
        lx_limits_req_add_identity(r, &id, "gpt-4");
        int rc = lx_limits_admit(r, NULL, NULL);
        if (i == 1) {
            LX_CHECK_INT(rc, LX_ERATELIMIT);
            char msg[300];
            lx_limits_req_message(r, msg, sizeof(msg));
            LX_CHECK_STR(msg, "Rate limit exceeded for key: rpm_limit 1 reached. Retry in 60s.");
        }
        lx_limits_req_end(r, 0);
    }
    fx_fini(&f);
}

LX_TEST(limits_retarget_to_another_deployment)
{
    struct fixture f;
    fx_init(&f);
    struct lx_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.general.global_max_rpm = -1;
    cfg.general.global_max_tpm = -1;
    struct lx_deployment a, b, c;
    memset(&a, 0, sizeof(a));
    a.id = "a";
    a.rpm = 5;
    a.tpm = 1000;
    b = a;
    b.id = "b";
    b.rpm = 1;
    c = a;
    c.id = "c";
    c.rpm = -1;
    c.tpm = -1;
    struct lx_limits_req *r = lx_limits_req_new(f.l);
    lx_limits_req_add_config(r, &cfg, &a);
    lx_limits_req_retarget(r, &b); /* before admission: nothing */
    LX_CHECK_INT(count_req(&f, "deployment:b"), 0);
    LX_CHECK_INT(lx_limits_admit(r, NULL, NULL), 0);
    lx_limits_req_retarget(r, &b); /* a retry on b */
    LX_CHECK_INT(count_req(&f, "deployment:a"), 1);
    LX_CHECK_INT(count_req(&f, "deployment:b"), 1);
    LX_CHECK(lx_limits_deployment_full(f.l, &b)); /* its rpm of 1 is used */
    lx_limits_req_retarget(r, &b);                /* same deployment: counted once */
    LX_CHECK_INT(count_req(&f, "deployment:b"), 1);
    lx_limits_req_end(r, 30); /* tokens go to b, the deployment that answered */
    struct lx_limits_counts cb, ca;
    lx_limits_table_counts(f.t, "deployment:b", &cb);
    lx_limits_table_counts(f.t, "deployment:a", &ca);
    LX_CHECK_INT(cb.tokens, 30);
    LX_CHECK_INT(ca.tokens, 0);
    /* Moving to a deployment without limits: no tokens charged anywhere. */
    r = lx_limits_req_new(f.l);
    lx_limits_req_add_config(r, &cfg, &a);
    LX_CHECK_INT(lx_limits_admit(r, NULL, NULL), 0);
    lx_limits_req_retarget(r, &c);
    lx_limits_req_end(r, 50);
    lx_limits_table_counts(f.t, "deployment:a", &ca);
    LX_CHECK_INT(ca.tokens, 0);
    LX_CHECK_INT(ca.requests, 2);
    /* A request admitted without a deployment scope gains one. */
    r = lx_limits_req_new(f.l);
    lx_limits_req_add_config(r, &cfg, &c);
    LX_CHECK_INT(lx_limits_admit(r, NULL, NULL), 0);
    lx_limits_req_retarget(r, &a);
    lx_limits_req_end(r, 7);
    lx_limits_table_counts(f.t, "deployment:a", &ca);
    LX_CHECK_INT(ca.requests, 3);
    LX_CHECK_INT(ca.tokens, 7);
    fx_fini(&f);
}

LX_TEST(limits_prune_idle_counters)
{
    struct fixture f;
    fx_init(&f);
    struct lx_limits_scope a = {"user:a", 10, -1, -1};
    struct lx_limits_scope b = {"user:b", 10, -1, 1};
    int rc;
    lx_limits_req_end(admit1(&f, &a, 1, &rc), 0);
    struct lx_limits_req *held = admit1(&f, &b, 1, &rc); /* still running */
    LX_CHECK_INT(lx_limits_table_size(f.t), 2);
    /* Same window: nothing goes, its counts still matter. */
    LX_CHECK_INT(lx_limits_table_prune(f.t), 0);
    lx_limits_table_set_now(f.t, T0 + 60);
    /* Next window: the idle counter goes; the one a running request holds stays. */
    LX_CHECK_INT(lx_limits_table_prune(f.t), 1);
    LX_CHECK_INT(lx_limits_table_size(f.t), 1);
    lx_limits_req_end(held, 0);
    LX_CHECK_INT(lx_limits_table_prune(f.t), 1);
    LX_CHECK_INT(lx_limits_table_size(f.t), 0);
    /* A pruned scope starts again from zero. */
    lx_limits_req_end(admit1(&f, &a, 1, &rc), 0);
    LX_CHECK_INT(rc, 0);
    LX_CHECK_INT(count_req(&f, "user:a"), 1);
    fx_fini(&f);
}

LX_TEST(limits_scope_caps)
{
    struct fixture f;
    fx_init(&f);
    struct lx_limits_req *r = lx_limits_req_new(f.l);
    char name[32];
    for (int i = 0; i < LX_LIMITS_MAX_SCOPES; i++) {
        snprintf(name, sizeof(name), "user:%d", i);
        struct lx_limits_scope sc = {name, 5, -1, -1};
        LX_CHECK_INT(lx_limits_req_add(r, &sc), 0);
    }
    struct lx_limits_scope extra = {"team:x", 5, -1, -1};
    LX_CHECK_INT(lx_limits_req_add(r, &extra), LX_ETOOBIG);
    char longname[LX_LIMITS_NAME_MAX + 10];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    struct lx_limits_req *r2 = lx_limits_req_new(f.l);
    struct lx_limits_scope lsc = {longname, 5, -1, -1};
    LX_CHECK_INT(lx_limits_req_add(r2, &lsc), LX_ETOOBIG);
    struct lx_limits_scope none = {"user:none", -1, -1, -1};
    LX_CHECK_INT(lx_limits_req_add(r2, &none), 0);
    LX_CHECK_INT(lx_limits_req_count(r2), 0);
    lx_limits_req_end(r2, 0);
    LX_CHECK_INT(lx_limits_admit(r, NULL, NULL), 0);
    lx_limits_req_end(r, 0);
    fx_fini(&f);
}

/* Threads hammering one scope: exactly the limit gets in. */
struct hammer {
    struct fixture *f;
    int admitted;
};

static void hammer_main(void *arg)
{
    struct hammer *h = arg;
    struct lx_limits_scope sc[2] = {{"global", 1000, -1, -1}, {"team:t", -1, -1, 4}};
    for (int i = 0; i < 400; i++) {
        int rc;
        struct lx_limits_req *r = admit1(h->f, sc, 2, &rc);
        if (rc == 0) {
            h->admitted++;
        }
        lx_limits_req_end(r, 1);
    }
}

LX_TEST(limits_threads_exact)
{
    struct fixture f;
    fx_init(&f);
    struct hammer h[4];
    uv_thread_t th[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){&f, 0};
        uv_thread_create(&th[i], hammer_main, &h[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        uv_thread_join(&th[i]);
        total += h[i].admitted;
    }
    LX_CHECK_INT(total, 1000);
    LX_CHECK_INT(count_req(&f, "global"), 1000);
    struct lx_limits_counts c;
    lx_limits_table_counts(f.t, "team:t", &c);
    LX_CHECK_INT(c.in_flight, 0);
    fx_fini(&f);
}

/* ---- reply decoding ---- */

static redisReply *parse_resp(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    redisReaderFeed(rd, resp, strlen(resp));
    void *rep = NULL;
    if (redisReaderGetReply(rd, &rep) != REDIS_OK) {
        rep = NULL;
    }
    redisReaderFree(rd);
    return rep;
}

LX_TEST(limits_decode_replies)
{
    struct lx_limits__admit_reply ar;
    redisReply *rep = parse_resp("*7\r\n:1\r\n:0\r\n:0\r\n:3\r\n:18\r\n:7\r\n:0\r\n");
    LX_CHECK_INT(lx_limits__decode_admit(rep, 2, &ar), 0);
    LX_CHECK(ar.ok);
    LX_CHECK_INT(ar.bad, -1);
    LX_CHECK_INT(ar.requests[0], 3);
    LX_CHECK_INT(ar.tokens[0], 18);
    LX_CHECK_INT(ar.requests[1], 7);
    /* Wrong scope count for the same reply. */
    LX_CHECK_INT(lx_limits__decode_admit(rep, 1, &ar), LX_EUPSTREAM);
    freeReplyObject(rep);

    rep = parse_resp("*5\r\n:0\r\n:1\r\n:2\r\n:3\r\n:500\r\n");
    LX_CHECK_INT(lx_limits__decode_admit(rep, 1, &ar), 0);
    LX_CHECK(!ar.ok);
    LX_CHECK_INT(ar.bad, 0);
    LX_CHECK_INT(ar.kind, LX_LIMITS_TPM);
    freeReplyObject(rep);

    static const char *bad[] = {
        "*5\r\n:0\r\n:2\r\n:1\r\n:3\r\n:5\r\n",      /* scope out of range */
        "*5\r\n:0\r\n:1\r\n:3\r\n:3\r\n:5\r\n",      /* unknown kind */
        "*5\r\n:2\r\n:0\r\n:0\r\n:3\r\n:5\r\n",      /* ok not 0/1 */
        "*5\r\n:1\r\n:1\r\n:0\r\n:3\r\n:5\r\n",      /* ok with a refused scope */
        "*5\r\n:1\r\n:0\r\n:0\r\n:-3\r\n:5\r\n",     /* negative count */
        "*5\r\n:1\r\n:0\r\n:0\r\n$1\r\n3\r\n:5\r\n", /* string element */
        "*5\r\n:1\r\n:0\r\n:0\r\n*0\r\n:5\r\n",      /* nested array */
        ":1\r\n",                                    /* not an array */
        "$-1\r\n",                                   /* nil */
        "-ERR boom\r\n",                             /* error */
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(bad); i++) {
        rep = parse_resp(bad[i]);
        LX_CHECK(rep != NULL);
        LX_CHECK_INT(lx_limits__decode_admit(rep, 1, &ar), LX_EUPSTREAM);
        LX_CHECK(!lx_limits__is_noscript(rep));
        freeReplyObject(rep);
    }
    LX_CHECK_INT(lx_limits__decode_admit(NULL, 1, &ar), LX_EUPSTREAM);
    rep = parse_resp("-NOSCRIPT No matching script. Please use EVAL.\r\n");
    LX_CHECK(lx_limits__is_noscript(rep));
    freeReplyObject(rep);
    rep = parse_resp(":42\r\n");
    LX_CHECK_INT(lx_limits__int_reply(rep), 42);
    freeReplyObject(rep);
    rep = parse_resp("+OK\r\n");
    LX_CHECK_INT(lx_limits__int_reply(rep), -1);
    freeReplyObject(rep);
}

/* ---- Redis ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

static pid_t start_redis(int port)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", 1);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", "/tmp", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop_redis(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static bool redis_installed(void)
{
    return access("/usr/bin/redis-server", X_OK) == 0;
}

/* Run the loop until *flag or up to ms milliseconds. */
static void spin(uv_loop_t *loop, bool (*cond)(void *), void *arg, int ms)
{
    for (int i = 0; i < ms; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (cond && cond(arg)) {
            return;
        }
        usleep(1000);
    }
}

static bool is_up(void *arg)
{
    return lx_limits_redis_up(arg);
}

struct waiter {
    int calls;
    int result;
};

static void on_done(void *ud, int result)
{
    struct waiter *w = ud;
    w->calls++;
    w->result = result;
}

static bool waiter_done(void *arg)
{
    return ((struct waiter *)arg)->calls > 0;
}

/* Admit through Redis when it is up; returns the decision. */
static int admit_wait(struct fixture *f, const struct lx_limits_scope *sc, bool *out_async,
                      long long tokens)
{
    struct lx_limits_req *r = lx_limits_req_new(f->l);
    LX_CHECK_INT(lx_limits_req_add(r, sc), 0);
    struct waiter w = {0, -100};
    int rc = lx_limits_admit(r, on_done, &w);
    *out_async = rc == LX_EAGAIN;
    if (rc == LX_EAGAIN) {
        spin(&f->loop, waiter_done, &w, 2000);
        LX_CHECK_INT(w.calls, 1);
        rc = w.result;
    }
    lx_limits_req_end(r, rc == 0 ? tokens : 0);
    return rc;
}

static long long redis_get(int port, const char *key)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    long long v = -1;
    if (c && !c->err) {
        redisReply *rep = redisCommand(c, "GET %s", key);
        if (rep && rep->type == REDIS_REPLY_STRING) {
            v = strtoll(rep->str, NULL, 10);
        } else if (rep && rep->type == REDIS_REPLY_NIL) {
            v = 0;
        }
        freeReplyObject(rep);
    }
    redisFree(c);
    return v;
}

LX_TEST(limits_redis_shared_fallback_resync)
{
    if (!redis_installed()) {
        fprintf(stderr, "  (skipped: redis-server not installed)\n");
        return;
    }
    int port = free_port();
    pid_t pid = start_redis(port);
    struct fixture f;
    fx_init(&f);
    struct lx_redis_cfg rc = {"127.0.0.1", port, NULL, NULL};
    lx_limits_set_redis(f.l, &rc);
    /* Retry until redis-server listens (reconnects back off from 100 ms). */
    spin(&f.loop, is_up, f.l, 5000);
    LX_CHECK(lx_limits_redis_up(f.l));

    struct lx_limits_scope sc = {"global", 4, 1000, -1};
    bool async;
    LX_CHECK_INT(admit_wait(&f, &sc, &async, 10), 0);
    LX_CHECK(async);
    LX_CHECK_INT(admit_wait(&f, &sc, &async, 5), 0);
    spin(&f.loop, NULL, NULL, 50); /* token INCRBYs */
    char key_r[64], key_t[64];
    snprintf(key_r, sizeof(key_r), "lx:rl:%d:global:r", T0 / 60);
    snprintf(key_t, sizeof(key_t), "lx:rl:%d:global:t", T0 / 60);
    LX_CHECK_INT(redis_get(port, key_r), 2);
    LX_CHECK_INT(redis_get(port, key_t), 15);

    /* Another process's admissions (a second instance) count too. */
    redisContext *other = redisConnect("127.0.0.1", port);
    freeReplyObject(redisCommand(other, "INCRBY %s 1", key_r));
    redisFree(other);

    /* Redis dies: decisions fall back to local counts (2 seen + 1 other = 3 known at most). */
    stop_redis(pid);
    LX_CHECK_INT(admit_wait(&f, &sc, &async, 7),
                 0); /* 3rd: the send fails or the reply never comes */
    spin(&f.loop, NULL, NULL, 100);
    LX_CHECK(!lx_limits_redis_up(f.l));
    int rc4 = admit_wait(&f, &sc, &async, 0);
    LX_CHECK(!async); /* decided at once while Redis is down */
    struct lx_limits_counts c;
    lx_limits_table_counts(f.t, "global", &c);
    LX_CHECK(c.delta_requests >= 1);
    /* Seen 2 from Redis (the other instance's +1 was not seen yet) + local deltas up to 4. */
    LX_CHECK_INT(rc4, 0);
    LX_CHECK_INT(admit_wait(&f, &sc, &async, 0), LX_ERATELIMIT);
    lx_limits_table_counts(f.t, "global", &c);
    LX_CHECK_INT(c.requests, 4);
    LX_CHECK_INT(c.delta_requests, 2);
    LX_CHECK_INT(c.delta_tokens, 7);

    /* Redis returns (empty: no persistence): local deltas are pushed. */
    pid = start_redis(port);
    spin(&f.loop, is_up, f.l, 8000);
    LX_CHECK(lx_limits_redis_up(f.l));
    spin(&f.loop, NULL, NULL, 100);
    LX_CHECK_INT(redis_get(port, key_r), 2);
    LX_CHECK_INT(redis_get(port, key_t), 7);
    lx_limits_table_counts(f.t, "global", &c);
    LX_CHECK_INT(c.delta_requests, 0);
    LX_CHECK_INT(c.delta_tokens, 0);
    /* Shared again: two more fit in Redis' count of 2 for a limit of 4. */
    LX_CHECK_INT(admit_wait(&f, &sc, &async, 0), 0);
    LX_CHECK(async);
    LX_CHECK_INT(admit_wait(&f, &sc, &async, 0), 0);
    LX_CHECK_INT(admit_wait(&f, &sc, &async, 0), LX_ERATELIMIT);
    LX_CHECK_INT(redis_get(port, key_r), 4);

    /* A request that ends while its admission is pending frees itself on the reply. */
    struct lx_limits_scope sc2 = {"user:p", 10, -1, 1};
    struct lx_limits_req *r = lx_limits_req_new(f.l);
    LX_CHECK_INT(lx_limits_req_add(r, &sc2), 0);
    struct waiter w = {0, -100};
    LX_CHECK_INT(lx_limits_admit(r, on_done, &w), LX_EAGAIN);
    lx_limits_req_end(r, 0);
    lx_limits_table_counts(f.t, "user:p", &c);
    LX_CHECK_INT(c.in_flight, 0);
    spin(&f.loop, NULL, NULL, 100);
    LX_CHECK_INT(w.calls, 0);

    stop_redis(pid);
    fx_fini(&f);
}

LX_TEST(limits_redis_unreachable_is_local)
{
    /* Nothing listens on the port: admissions never wait. */
    struct fixture f;
    fx_init(&f);
    struct lx_redis_cfg rc = {"127.0.0.1", free_port(), NULL, NULL};
    lx_limits_set_redis(f.l, &rc);
    spin(&f.loop, NULL, NULL, 50);
    LX_CHECK(!lx_limits_redis_up(f.l));
    struct lx_limits_scope sc = {"global", 1, -1, -1};
    int r1, r2;
    lx_limits_req_end(admit1(&f, &sc, 1, &r1), 0);
    lx_limits_req_end(admit1(&f, &sc, 1, &r2), 0);
    LX_CHECK_INT(r1, 0);
    LX_CHECK_INT(r2, LX_ERATELIMIT);
    fx_fini(&f);
}

LX_TEST_MAIN(LX_RUN(limits_window_rollover), LX_RUN(limits_all_or_nothing),
             LX_RUN(limits_parallel_release), LX_RUN(limits_tokens_after_response),
             LX_RUN(limits_headers_most_constrained),
             LX_RUN(limits_scopes_from_config_and_identity), LX_RUN(limits_scope_caps),
             LX_RUN(limits_prune_idle_counters), LX_RUN(limits_retarget_to_another_deployment),
             LX_RUN(limits_threads_exact), LX_RUN(limits_decode_replies),
             LX_RUN(limits_redis_unreachable_is_local), LX_RUN(limits_redis_shared_fallback_resync))
