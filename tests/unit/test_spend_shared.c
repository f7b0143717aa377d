/*
 * Spend shared through Redis: decoding of the counter reads and of the add
 * script's reply, how a budget check combines the local view with a shared
 * counter (max, period, reset mark), and the add and reset scripts against a
 * real redis-server (skipped when it is not installed).
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "auth/identity.h"
#include "config/config.h"
#include "core/error.h"
#include "core/time.h"
#include "lx_test.h"
#include "spend/budget.h"
#include "spend/shared.h"

static redisReply *parse_resp(const char *resp, size_t n)
{
    redisReader *rd = redisReaderCreate();
    redisReaderFeed(rd, resp, n);
    void *rep = NULL;
    if (redisReaderGetReply(rd, &rep) != REDIS_OK) {
        rep = NULL;
    }
    redisReaderFree(rd);
    return rep;
}

#define RESP(s) parse_resp(s, sizeof(s) - 1)

LX_TEST(shared_decode_mget)
{
    struct lx_spend_shared__val v[4];
    redisReply *rep = RESP("*4\r\n$5\r\n12345\r\n$-1\r\n$-1\r\n$-1\r\n");
    LX_CHECK_INT(lx_spend_shared__decode_mget(rep, 2, v), 0);
    LX_CHECK(v[0].exists);
    LX_CHECK_INT(v[0].value, 12345);
    LX_CHECK_INT(v[0].mark_ms, 0);
    LX_CHECK(!v[1].exists);
    /* Shape errors: wrong count, wrong scope count. */
    LX_CHECK_INT(lx_spend_shared__decode_mget(rep, 1, v), LX_EUPSTREAM);
    LX_CHECK_INT(lx_spend_shared__decode_mget(rep, 3, v), LX_EUPSTREAM);
    freeReplyObject(rep);

    rep = RESP("*2\r\n$2\r\n-5\r\n$13\r\n1795252495982\r\n");
    LX_CHECK_INT(lx_spend_shared__decode_mget(rep, 1, v), 0);
    LX_CHECK_INT(v[0].value, -5);
    LX_CHECK_INT(v[0].mark_ms, 1795252495982LL);
    freeReplyObject(rep);

    /* Not integers, integers out of range, other types. */
    const char *bad[] = {
        "*2\r\n$3\r\n1.5\r\n$-1\r\n",
        "*2\r\n$0\r\n\r\n$-1\r\n",
        "*2\r\n$1\r\n-\r\n$-1\r\n",
        "*2\r\n$20\r\n99999999999999999999\r\n$-1\r\n",
        "*2\r\n:5\r\n$-1\r\n",
        "*2\r\n$2\r\n 5\r\n$-1\r\n",
        "-ERR boom\r\n",
        ":1\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rep = parse_resp(bad[i], strlen(bad[i]));
        LX_CHECK(rep != NULL);
        LX_CHECK_INT(lx_spend_shared__decode_mget(rep, 1, v), LX_EUPSTREAM);
        freeReplyObject(rep);
    }
    LX_CHECK_INT(lx_spend_shared__decode_mget(NULL, 1, v), LX_EUPSTREAM);
}

LX_TEST(shared_decode_add)
{
    struct lx_spend_shared__val v;
    redisReply *rep = RESP("*2\r\n:4000\r\n:17\r\n");
    LX_CHECK_INT(lx_spend_shared__decode_add(rep, &v), 0);
    LX_CHECK(v.exists);
    LX_CHECK_INT(v.value, 4000);
    LX_CHECK_INT(v.mark_ms, 17);
    freeReplyObject(rep);
    const char *bad[] = {"*1\r\n:1\r\n", "*2\r\n:1\r\n$1\r\n2\r\n", "-NOSCRIPT x\r\n", ":3\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rep = parse_resp(bad[i], strlen(bad[i]));
        LX_CHECK_INT(lx_spend_shared__decode_add(rep, &v), LX_EUPSTREAM);
        freeReplyObject(rep);
    }
}

/* ---- how a check combines the views ---- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct lx_identity *key_identity(int64_t max_budget, int64_t reset_at)
{
    struct lx_identity *id = lx_identity_new();
    snprintf(id->token, sizeof(id->token), "%s", "tok");
    id->key.max_budget_nanos = max_budget;
    id->key.budget_reset_at = reset_at;
    id->key.spend_nanos = 0;
    id->loaded_at_ms = (int64_t)lx_mono_ms();
    return id;
}

static void record(struct lx_budget *b, int64_t nanos)
{
    struct lx_spend_record r = {.request_id = "r", .call_type = "acompletion", .api_key = "tok"};
    r.spend_nanos = nanos;
    lx_budget_on_record(b, &r);
}

LX_TEST(shared_check_takes_the_higher_view)
{
    struct lx_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.litellm.max_budget = -1;
    struct lx_budget *b = lx_budget_new(NULL);
    struct lx_identity *id = key_identity(100, 0);
    char msg[256];
    record(b, 30);
    LX_CHECK_INT(lx_budget_check(b, &cfg, id, msg, sizeof(msg)), 0);
    /* Another instance spent: the counter is higher than our view. */
    lx_budget_note_shared(b, LX_BUDGET_KEY, "tok", 0, true, 100, 0);
    LX_CHECK_INT(lx_budget_check(b, &cfg, id, msg, sizeof(msg)), LX_EBUDGET);
    LX_CHECK(strstr(msg, "Budget has been exceeded!") == msg);
    /* A counter below our view changes nothing: 30 stays. */
    lx_budget_note_shared(b, LX_BUDGET_KEY, "tok", 0, true, 10, 0);
    LX_CHECK_INT(lx_budget_check(b, &cfg, id, msg, sizeof(msg)), 0);
    record(b, 70);
    LX_CHECK_INT(lx_budget_check(b, &cfg, id, msg, sizeof(msg)), LX_EBUDGET);
    /* A missing counter: the local view alone. */
    lx_budget_note_shared(b, LX_BUDGET_KEY, "tok", 0, false, 0, 0);
    LX_CHECK_INT(lx_budget_check(b, &cfg, id, msg, sizeof(msg)), LX_EBUDGET);
    lx_identity_unref(id);
    lx_budget_free(b);
}

LX_TEST(shared_check_period_and_reset_mark)
{
    struct lx_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.litellm.max_budget = -1;
    struct lx_budget *b = lx_budget_new(NULL);
    struct lx_identity *id = key_identity(100, 5000);
    char msg[256];
    /* A counter of another period (before a duration reset) is not this period's. */
    lx_budget_note_shared(b, LX_BUDGET_KEY, "tok", 4000, true, 500, 0);
    LX_CHECK_INT(lx_budget_check(b, &cfg, id, msg, sizeof(msg)), 0);
    lx_budget_note_shared(b, LX_BUDGET_KEY, "tok", 5000, true, 500, 0);
    LX_CHECK_INT(lx_budget_check(b, &cfg, id, msg, sizeof(msg)), LX_EBUDGET);
    /* Our view is over budget, but an admin reset newer than its store read happened: the
     * counter (written at the reset) is what counts. */
    record(b, 150);
    lx_budget_note_shared(b, LX_BUDGET_KEY, "tok", 5000, true, 20, wall_ms() + 60000);
    LX_CHECK_INT(lx_budget_check(b, &cfg, id, msg, sizeof(msg)), 0);
    /* A reset older than our view's read: both views count again. */
    lx_budget_note_shared(b, LX_BUDGET_KEY, "tok", 5000, true, 20, wall_ms() - 60000);
    LX_CHECK_INT(lx_budget_check(b, &cfg, id, msg, sizeof(msg)), LX_EBUDGET);
    lx_identity_unref(id);
    lx_budget_free(b);
}

LX_TEST(shared_check_global)
{
    struct lx_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.litellm.max_budget = 1e-7; /* 100 nano-USD */
    struct lx_budget *b = lx_budget_new(NULL);
    struct lx_identity *id = lx_identity_new_master();
    char msg[256];
    LX_CHECK_INT(lx_budget_check(b, &cfg, id, msg, sizeof(msg)), 0);
    lx_budget_note_shared_global(b, true, 100);
    LX_CHECK_INT(lx_budget_check(b, &cfg, id, msg, sizeof(msg)), LX_EBUDGET);
    lx_budget_note_shared_global(b, false, 0);
    LX_CHECK_INT(lx_budget_check(b, &cfg, id, msg, sizeof(msg)), 0);
    LX_CHECK(lx_spend_shared_applies(&cfg, id));
    cfg.litellm.max_budget = -1;
    LX_CHECK(!lx_spend_shared_applies(&cfg, id));
    lx_identity_unref(id);
    lx_budget_free(b);
}

/* ---- the scripts on a real redis-server ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = 0;
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

static redisContext *connect_retry(int port)
{
    for (int i = 0; i < 200; i++) {
        redisContext *c = redisConnect("127.0.0.1", port);
        if (c && !c->err) {
            return c;
        }
        redisFree(c);
        usleep(10000);
    }
    return NULL;
}

/* EVAL the add script; returns the counter and fills *mark. */
static long long add(redisContext *c, const char *key, long long delta, long long floor,
                     long long read_wall, long long *mark)
{
    char mk[128];
    snprintf(mk, sizeof(mk), "%s:reset", key);
    redisReply *r = redisCommand(c, "EVAL %s 2 %s %s %lld %lld %lld 3600",
                                 lx_spend_shared__add_script, key, mk, delta, floor, read_wall);
    struct lx_spend_shared__val v = {0};
    long long out = -1;
    if (lx_spend_shared__decode_add(r, &v) == 0) {
        out = v.value;
        *mark = v.mark_ms;
    }
    freeReplyObject(r);
    return out;
}

static long long get_int(redisContext *c, const char *fmt, const char *key)
{
    redisReply *r = redisCommand(c, fmt, key);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        v = strtoll(r->str, NULL, 10);
    } else if (r && r->type == REDIS_REPLY_INTEGER) {
        v = r->integer;
    }
    freeReplyObject(r);
    return v;
}

LX_TEST(shared_scripts_on_redis)
{
    if (access("/usr/bin/redis-server", X_OK) != 0) {
        fprintf(stderr, "  (skipped: redis-server not installed)\n");
        return;
    }
    int port = free_port();
    pid_t pid = start_redis(port);
    redisContext *c = connect_retry(port);
    LX_CHECK(c != NULL);
    if (!c) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return;
    }
    long long mark = -1;
    const char *k = "lx:sp:k:tok:0";
    /* Created at the recording instance's view (its store read + pending, this call included). */
    LX_CHECK_INT(add(c, k, 10, 250, 1000, &mark), 250);
    LX_CHECK_INT(mark, 0);
    /* Then every instance adds its deltas. */
    LX_CHECK_INT(add(c, k, 10, 20, 1000, &mark), 260);
    /* An instance whose view is higher (spend the counter missed) raises it. */
    LX_CHECK_INT(add(c, k, 10, 400, 1000, &mark), 400);
    LX_CHECK_INT(get_int(c, "GET %s", k), 400);
    LX_CHECK(get_int(c, "TTL %s", k) > 3500);

    /* An admin reset: counter and mark written together. */
    redisReply *r =
        redisCommand(c, "EVAL %s 2 %s %s:reset 5 2000 3600", lx_spend_shared__reset_script, k, k);
    LX_CHECK(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    LX_CHECK_INT(get_int(c, "GET %s", k), 5);
    /* A view read before the reset (1000 < 2000) is stale: its floor is ignored. */
    LX_CHECK_INT(add(c, k, 10, 400, 1000, &mark), 15);
    LX_CHECK_INT(mark, 2000);
    /* A view read after it counts again. */
    LX_CHECK_INT(add(c, k, 10, 30, 2500, &mark), 30);
    /* A stale view creating a missing counter starts it at its delta alone. */
    r = redisCommand(c, "DEL %s", k);
    freeReplyObject(r);
    LX_CHECK_INT(add(c, k, 7, 400, 1000, &mark), 7);

    /* The MGET an admission sends decodes into the counter and its mark. */
    r = redisCommand(c, "MGET %s %s:reset lx:sp:u:none:0 lx:sp:u:none:0:reset", k, k);
    struct lx_spend_shared__val v[2];
    LX_CHECK_INT(lx_spend_shared__decode_mget(r, 2, v), 0);
    LX_CHECK(v[0].exists && v[0].value == 7 && v[0].mark_ms == 2000);
    LX_CHECK(!v[1].exists && v[1].mark_ms == 0);
    freeReplyObject(r);
    redisFree(c);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

LX_TEST_MAIN(LX_RUN(shared_decode_mget), LX_RUN(shared_decode_add),
             LX_RUN(shared_check_takes_the_higher_view), LX_RUN(shared_check_period_and_reset_mark),
             LX_RUN(shared_check_global), LX_RUN(shared_scripts_on_redis))
