/*
 * Spend journal and ledger: frame encoding and decoding, corrupt and cut
 * frames, segment files and their locks, batching, the store being down,
 * replay after a crash (idempotent), and exact sums in SQLite.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "core/crc32.h"
#include "core/time.h"
#include "lx_test.h"
#include "spend/budget.h"
#include "spend/journal.h"
#include "spend/ledger.h"
#include "store/store.h"

/* ---- helpers ---- */

static char *make_tmpdir(void)
{
    char tmpl[] = "/tmp/lx_ledger_XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? lx_strdup(d) : NULL;
}

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", dir);
    }
}

static int count_files(const char *dir, const char *suffix)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c '%s$'", dir, suffix);
    FILE *f = popen(cmd, "r");
    int n = 0;
    if (f) {
        if (fscanf(f, "%d", &n) != 1) {
            n = -1;
        }
        pclose(f);
    }
    return n;
}

static struct lx_spend_record rec(const char *id, int64_t spend)
{
    return (struct lx_spend_record){
        .request_id = id,
        .call_type = "acompletion",
        .api_key = "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        .user_id = "user1",
        .team_id = NULL,
        .model = "gpt-4o",
        .model_group = "gpt-4o",
        .model_id = "dep-1",
        .custom_llm_provider = "openai",
        .api_base = "https://api.openai.com/v1",
        .prompt_tokens = 10,
        .completion_tokens = 5,
        .total_tokens = 15,
        .spend_nanos = spend,
        .start_time_ms = 1763700000000,
        .end_time_ms = 1763700000123,
    };
}

/* A fake store: inserts rows once per request id (ON CONFLICT DO NOTHING) and sums spend. */
struct fake {
    uv_mutex_t lock;
    atomic_bool down;
    char **ids;
    size_t n_ids;
    size_t cap;
    int64_t spend;
    int64_t calls;
    int64_t attempts;   /* rows offered, duplicates included */
    const char *refuse; /* request id the store refuses (LX_EINVAL) */
};

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    uv_mutex_init(&f->lock);
}

static void fake_fini(struct fake *f)
{
    for (size_t i = 0; i < f->n_ids; i++) {
        lx_free(f->ids[i]);
    }
    lx_free(f->ids);
    uv_mutex_destroy(&f->lock);
}

static bool fake_has(struct fake *f, const char *id)
{
    for (size_t i = 0; i < f->n_ids; i++) {
        if (strcmp(f->ids[i], id) == 0) {
            return true;
        }
    }
    return false;
}

static int fake_sink(void *ud, const struct lx_spend_record *recs, size_t n, struct lx_error *err)
{
    struct fake *f = ud;
    if (atomic_load(&f->down)) {
        return lx_error_set(err, LX_EUNAVAIL, "store down");
    }
    uv_mutex_lock(&f->lock);
    for (size_t i = 0; i < n; i++) {
        if (f->refuse && strcmp(recs[i].request_id, f->refuse) == 0) {
            uv_mutex_unlock(&f->lock);
            return lx_error_set(err, LX_EINVAL, "refused");
        }
    }
    f->calls++;
    for (size_t i = 0; i < n; i++) {
        f->attempts++;
        if (fake_has(f, recs[i].request_id)) {
            continue;
        }
        if (f->n_ids == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 64;
            f->ids = lx_realloc(f->ids, f->cap * sizeof(*f->ids));
        }
        f->ids[f->n_ids++] = lx_strdup(recs[i].request_id);
        f->spend += recs[i].spend_nanos;
    }
    uv_mutex_unlock(&f->lock);
    return 0;
}

static struct lx_ledger *start_fake(const char *dir, struct fake *f, size_t batch_max)
{
    struct lx_error err = {0};
    struct lx_ledger_opts o = {
        .dir = dir, .sink = fake_sink, .sink_ud = f, .batch_ms = 20, .batch_max = batch_max};
    struct lx_ledger *l = lx_ledger_start(&o, &err);
    if (!l) {
        fprintf(stderr, "ledger start: %s\n", err.msg);
    }
    return l;
}

/* Write frames to a file as a crashed process would have left them. */
static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, p, n) != (ssize_t)n) {
        fprintf(stderr, "cannot write %s\n", path);
    }
    if (fd >= 0) {
        close(fd);
    }
}

/* ---- frames ---- */

LX_TEST(test_crc32)
{
    LX_CHECK_INT(lx_crc32(0, "123456789", 9), 0xCBF43926u);
    LX_CHECK_INT(lx_crc32(0, "", 0), 0);
}

LX_TEST(test_encode_decode)
{
    struct lx_buf b;
    lx_buf_init(&b, 1 << 20);
    struct lx_spend_record r = rec("req-1", 1234567);
    r.key_alias = "alias";
    r.end_user = "";
    r.cache_read_tokens = 3;
    r.cache_hit = true;
    r.is_failure = true;
    r.prompt_tokens = INT64_MAX;
    r.completion_tokens = -1;
    LX_CHECK_INT(lx_journal_encode(&r, &b), 0);
    struct lx_arena a;
    lx_arena_init(&a, NULL, 0, 4096);
    struct lx_spend_record d;
    size_t len = 0;
    LX_CHECK_INT(lx_journal_decode(b.data, b.len, &d, &a, &len), 0);
    LX_CHECK_INT(len, b.len);
    LX_CHECK_STR(d.request_id, "req-1");
    LX_CHECK_STR(d.call_type, "acompletion");
    LX_CHECK_STR(d.api_key, r.api_key);
    LX_CHECK_STR(d.key_alias, "alias");
    LX_CHECK_STR(d.user_id, "user1");
    LX_CHECK(d.team_id == NULL);
    LX_CHECK_STR(d.end_user, "");
    LX_CHECK_STR(d.model, "gpt-4o");
    LX_CHECK_STR(d.model_group, "gpt-4o");
    LX_CHECK_STR(d.model_id, "dep-1");
    LX_CHECK_STR(d.custom_llm_provider, "openai");
    LX_CHECK_STR(d.api_base, "https://api.openai.com/v1");
    LX_CHECK_INT(d.prompt_tokens, INT64_MAX);
    LX_CHECK_INT(d.completion_tokens, -1);
    LX_CHECK_INT(d.total_tokens, 15);
    LX_CHECK_INT(d.cache_read_tokens, 3);
    LX_CHECK_INT(d.spend_nanos, 1234567);
    LX_CHECK_INT(d.start_time_ms, 1763700000000);
    LX_CHECK_INT(d.end_time_ms, 1763700000123);
    LX_CHECK(d.cache_hit);
    LX_CHECK(d.is_failure);
    LX_CHECK_STR(lx_spend_status(&d), "failure");

    /* Every cut of the frame is incomplete, never corrupt or a crash. */
    for (size_t cut = 0; cut < b.len; cut++) {
        size_t need = 0;
        LX_CHECK_INT(lx_journal_decode(b.data, cut, &d, &a, &need), LX_EAGAIN);
        LX_CHECK(need > cut);
    }
    /* Every flipped byte is caught (magic, length, checksum or payload). */
    for (size_t i = 0; i < b.len; i++) {
        b.data[i] ^= 0x5a;
        size_t need = 0;
        int rc = lx_journal_decode(b.data, b.len, &d, &a, &need);
        LX_CHECK(rc != 0);
        b.data[i] ^= 0x5a;
    }
    lx_arena_fini(&a);
    lx_buf_fini(&b);
}

LX_TEST(test_encode_limits)
{
    struct lx_buf b;
    lx_buf_init(&b, 1 << 20);
    struct lx_spend_record r = rec(NULL, 1);
    LX_CHECK_INT(lx_journal_encode(&r, &b), LX_EINVAL);
    LX_CHECK_INT(b.len, 0);
    char *big = lx_malloc(10000);
    memset(big, 'x', 9999);
    big[9999] = '\0';
    r = rec("req-big", 1);
    r.api_base = big;
    LX_CHECK_INT(lx_journal_encode(&r, &b), 0);
    struct lx_arena a;
    lx_arena_init(&a, NULL, 0, 4096);
    struct lx_spend_record d;
    size_t len;
    LX_CHECK_INT(lx_journal_decode(b.data, b.len, &d, &a, &len), 0);
    LX_CHECK_INT(strlen(d.api_base), LX_JOURNAL_MAX_STR);
    /* A buffer too small for the frame is left as it was. */
    struct lx_buf small;
    lx_buf_init(&small, 16);
    LX_CHECK_INT(lx_journal_encode(&r, &small), LX_ETOOBIG);
    LX_CHECK_INT(small.len, 0);
    lx_buf_fini(&small);
    lx_arena_fini(&a);
    lx_free(big);
    lx_buf_fini(&b);
}

LX_TEST(test_resync)
{
    struct lx_buf b;
    lx_buf_init(&b, 1 << 20);
    struct lx_spend_record r = rec("a", 1);
    LX_CHECK_INT(lx_buf_append_c(&b, "garbage!"), 0);
    LX_CHECK_INT(lx_journal_encode(&r, &b), 0);
    LX_CHECK_INT(lx_journal_resync(b.data, b.len), 8);
    LX_CHECK_INT(lx_journal_resync("LXJ", 3), 3);
    LX_CHECK_INT(lx_journal_resync("xLX", 3), 1); /* a cut magic may continue */
    lx_buf_fini(&b);
}

/* ---- ledger ---- */

struct writer_thread {
    struct lx_ledger *l;
    int index;
    int n;
};

static void write_many(void *arg)
{
    struct writer_thread *t = arg;
    struct lx_ledger_writer *w = lx_ledger_writer_new(t->l);
    for (int i = 0; i < t->n; i++) {
        char id[64];
        snprintf(id, sizeof(id), "w%d-%d", t->index, i);
        struct lx_spend_record r = rec(id, 1000 + i);
        if (lx_ledger_record(w, &r) != 0) {
            fprintf(stderr, "record failed\n");
        }
    }
    lx_ledger_writer_free(w);
}

LX_TEST(test_ledger_commits_everything)
{
    char *dir = make_tmpdir();
    struct fake f;
    fake_init(&f);
    struct lx_ledger *l = start_fake(dir, &f, 100);
    LX_CHECK(l != NULL);
    struct writer_thread t[3];
    uv_thread_t th[3];
    for (int i = 0; i < 3; i++) {
        t[i] = (struct writer_thread){l, i, 700};
        uv_thread_create(&th[i], write_many, &t[i]);
    }
    for (int i = 0; i < 3; i++) {
        uv_thread_join(&th[i]);
    }
    LX_CHECK_INT(lx_ledger_flush(l, 5000), 0);
    LX_CHECK_INT(f.n_ids, 2100);
    LX_CHECK_INT(f.attempts, 2100);
    int64_t want = 3 * (700 * 1000 + 699 * 700 / 2);
    LX_CHECK_INT(f.spend, want);
    LX_CHECK(f.calls >= 21); /* batches of at most 100 */
    struct lx_ledger_stats st;
    lx_ledger_get_stats(l, &st);
    LX_CHECK_INT(st.recorded, 2100);
    LX_CHECK_INT(st.committed, 2100);
    LX_CHECK_INT(st.backlog_bytes, 0);
    LX_CHECK_INT(st.segments, 0); /* writers freed: segments closed, committed, deleted */
    LX_CHECK_INT(count_files(dir, ".lxj"), 0);
    lx_ledger_stop(l, 1000);
    fake_fini(&f);
    rm_rf(dir);
    lx_free(dir);
}

LX_TEST(test_ledger_rotates_segments)
{
    char *dir = make_tmpdir();
    struct fake f;
    fake_init(&f);
    struct lx_error err = {0};
    struct lx_ledger_opts o = {.dir = dir, .sink = fake_sink, .sink_ud = &f, .segment_bytes = 4096};
    atomic_store(&f.down, true);
    struct lx_ledger *l = lx_ledger_start(&o, &err);
    struct lx_ledger_writer *w = lx_ledger_writer_new(l);
    for (int i = 0; i < 200; i++) {
        char id[32];
        snprintf(id, sizeof(id), "r%d", i);
        struct lx_spend_record r = rec(id, 1);
        LX_CHECK_INT(lx_ledger_record(w, &r), 0);
    }
    LX_CHECK(count_files(dir, ".lxj") > 5);
    atomic_store(&f.down, false);
    LX_CHECK_INT(lx_ledger_flush(l, 10000), 0);
    LX_CHECK_INT(f.n_ids, 200);
    LX_CHECK_INT(count_files(dir, ".lxj"), 1); /* the live segment stays */
    lx_ledger_writer_free(w);
    lx_ledger_stop(l, 1000);
    LX_CHECK_INT(count_files(dir, ".lxj"), 0);
    fake_fini(&f);
    rm_rf(dir);
    lx_free(dir);
}

LX_TEST(test_ledger_store_down_then_back)
{
    char *dir = make_tmpdir();
    struct fake f;
    fake_init(&f);
    atomic_store(&f.down, true);
    struct lx_ledger *l = start_fake(dir, &f, 500);
    struct lx_ledger_writer *w = lx_ledger_writer_new(l);
    for (int i = 0; i < 50; i++) {
        char id[32];
        snprintf(id, sizeof(id), "d%d", i);
        struct lx_spend_record r = rec(id, 7);
        LX_CHECK_INT(lx_ledger_record(w, &r), 0);
    }
    /* A pass that finds the store down ends the wait: a stop does not hang on it. */
    LX_CHECK_INT(lx_ledger_flush(l, 60000), LX_EUNAVAIL);
    struct lx_ledger_stats st;
    lx_ledger_get_stats(l, &st);
    LX_CHECK(st.store_down);
    LX_CHECK(st.failures >= 1);
    LX_CHECK(st.backlog_bytes > 0);
    LX_CHECK_INT(f.n_ids, 0);
    atomic_store(&f.down, false);
    LX_CHECK_INT(lx_ledger_flush(l, 10000), 0);
    LX_CHECK_INT(f.n_ids, 50);
    LX_CHECK_INT(f.spend, 350);
    lx_ledger_get_stats(l, &st);
    LX_CHECK(!st.store_down);
    lx_ledger_writer_free(w);
    lx_ledger_stop(l, 1000);
    fake_fini(&f);
    rm_rf(dir);
    lx_free(dir);
}

LX_TEST(test_ledger_stop_keeps_uncommitted_for_replay)
{
    char *dir = make_tmpdir();
    struct fake f;
    fake_init(&f);
    atomic_store(&f.down, true);
    struct lx_ledger *l = start_fake(dir, &f, 500);
    struct lx_ledger_writer *w = lx_ledger_writer_new(l);
    for (int i = 0; i < 30; i++) {
        char id[32];
        snprintf(id, sizeof(id), "k%d", i);
        struct lx_spend_record r = rec(id, 3);
        LX_CHECK_INT(lx_ledger_record(w, &r), 0);
    }
    lx_ledger_writer_free(w);
    lx_ledger_stop(l, 200);
    LX_CHECK_INT(count_files(dir, ".lxj"), 1);
    /* The next start replays it before returning. */
    atomic_store(&f.down, false);
    l = start_fake(dir, &f, 500);
    LX_CHECK_INT(f.n_ids, 30);
    LX_CHECK_INT(f.spend, 90);
    struct lx_ledger_stats st;
    lx_ledger_get_stats(l, &st);
    LX_CHECK_INT(st.replayed, 30);
    LX_CHECK_INT(count_files(dir, ".lxj"), 0);
    lx_ledger_stop(l, 1000);
    fake_fini(&f);
    rm_rf(dir);
    lx_free(dir);
}

LX_TEST(test_replay_is_idempotent_and_skips_corrupt)
{
    char *dir = make_tmpdir();
    struct fake f;
    fake_init(&f);
    /* First run: 10 records committed. */
    struct lx_ledger *l = start_fake(dir, &f, 500);
    struct lx_ledger_writer *w = lx_ledger_writer_new(l);
    struct lx_buf file;
    lx_buf_init(&file, 1 << 20);
    for (int i = 0; i < 10; i++) {
        char id[32];
        snprintf(id, sizeof(id), "i%d", i);
        struct lx_spend_record r = rec(id, 100);
        LX_CHECK_INT(lx_ledger_record(w, &r), 0);
        LX_CHECK_INT(lx_journal_encode(&r, &file), 0);
    }
    LX_CHECK_INT(lx_ledger_flush(l, 5000), 0);
    lx_ledger_writer_free(w);
    lx_ledger_stop(l, 1000);
    LX_CHECK_INT(f.spend, 1000);

    /*
     * A segment a crashed process left: the same 10 records (committed
     * before the crash), garbage, 5 new records, a cut record at the end.
     */
    LX_CHECK_INT(lx_buf_append_c(&file, "\x01\x02garbage LXJ"), 0);
    for (int i = 10; i < 15; i++) {
        char id[32];
        snprintf(id, sizeof(id), "i%d", i);
        struct lx_spend_record r = rec(id, 100);
        LX_CHECK_INT(lx_journal_encode(&r, &file), 0);
    }
    size_t before = file.len;
    struct lx_spend_record cut = rec("cut", 100);
    LX_CHECK_INT(lx_journal_encode(&cut, &file), 0);
    write_file(dir, "seg-1-dead-000000.lxj", file.data, before + (file.len - before) / 2);
    write_file(dir, "seg-1-dead-000001.tmp", "", 0);

    l = start_fake(dir, &f, 4);
    LX_CHECK_INT(f.n_ids, 15);
    LX_CHECK_INT(f.spend, 1500);
    LX_CHECK_INT(f.attempts, 25);
    struct lx_ledger_stats st;
    lx_ledger_get_stats(l, &st);
    LX_CHECK_INT(st.replayed, 15);
    LX_CHECK_INT(st.corrupt, 2);
    LX_CHECK_INT(count_files(dir, ".lxj"), 0);
    LX_CHECK_INT(count_files(dir, ".tmp"), 0);
    lx_ledger_stop(l, 1000);
    lx_buf_fini(&file);
    fake_fini(&f);
    rm_rf(dir);
    lx_free(dir);
}

LX_TEST(test_live_segments_are_not_replayed)
{
    char *dir = make_tmpdir();
    struct fake fa, fb;
    fake_init(&fa);
    fake_init(&fb);
    atomic_store(&fa.down, true);
    struct lx_ledger *a = start_fake(dir, &fa, 500);
    struct lx_ledger_writer *w = lx_ledger_writer_new(a);
    struct lx_spend_record r = rec("live-1", 5);
    LX_CHECK_INT(lx_ledger_record(w, &r), 0);
    /* A second instance on the same directory leaves A's locked segment alone. */
    struct lx_ledger *b = start_fake(dir, &fb, 500);
    LX_CHECK_INT(fb.n_ids, 0);
    struct lx_ledger_stats st;
    lx_ledger_get_stats(b, &st);
    LX_CHECK_INT(st.segments, 0);
    lx_ledger_stop(b, 100);
    atomic_store(&fa.down, false);
    LX_CHECK_INT(lx_ledger_flush(a, 5000), 0);
    LX_CHECK_INT(fa.n_ids, 1);
    lx_ledger_writer_free(w);
    lx_ledger_stop(a, 1000);
    fake_fini(&fa);
    fake_fini(&fb);
    rm_rf(dir);
    lx_free(dir);
}

LX_TEST(test_refused_record_is_dropped_alone)
{
    char *dir = make_tmpdir();
    struct fake f;
    fake_init(&f);
    f.refuse = "bad";
    struct lx_ledger *l = start_fake(dir, &f, 500);
    struct lx_ledger_writer *w = lx_ledger_writer_new(l);
    const char *ids[] = {"g1", "bad", "g2"};
    for (int i = 0; i < 3; i++) {
        struct lx_spend_record r = rec(ids[i], 1);
        LX_CHECK_INT(lx_ledger_record(w, &r), 0);
    }
    LX_CHECK_INT(lx_ledger_flush(l, 5000), 0);
    LX_CHECK_INT(f.n_ids, 2);
    struct lx_ledger_stats st;
    lx_ledger_get_stats(l, &st);
    LX_CHECK_INT(st.dropped, 1);
    lx_ledger_writer_free(w);
    lx_ledger_stop(l, 1000);
    fake_fini(&f);
    rm_rf(dir);
    lx_free(dir);
}

LX_TEST(test_dir_for)
{
    char d[256];
    LX_CHECK_INT(lx_ledger_dir_for("sqlite:///llmux.db", NULL, d, sizeof(d)), 0);
    LX_CHECK_STR(d, "llmux.db.journal");
    LX_CHECK_INT(lx_ledger_dir_for("sqlite:////var/lib/llmux/db.sqlite", NULL, d, sizeof(d)), 0);
    LX_CHECK_STR(d, "/var/lib/llmux/db.sqlite.journal");
    LX_CHECK_INT(lx_ledger_dir_for("sqlite:///x.db?mode=rwc", NULL, d, sizeof(d)), 0);
    LX_CHECK_STR(d, "x.db.journal");
    LX_CHECK_INT(lx_ledger_dir_for("postgresql://u:p@h/db", NULL, d, sizeof(d)), 0);
    LX_CHECK_STR(d, "llmux-journal");
    LX_CHECK_INT(lx_ledger_dir_for("postgres://h/db", "/srv/j", d, sizeof(d)), 0);
    LX_CHECK_STR(d, "/srv/j");
    LX_CHECK_INT(lx_ledger_dir_for(NULL, NULL, d, sizeof(d)), LX_EINVAL);
    LX_CHECK_INT(lx_ledger_dir_for("mysql://h/db", NULL, d, sizeof(d)), LX_EINVAL);
    LX_CHECK_INT(lx_ledger_dir_for("sqlite:///", NULL, d, sizeof(d)), LX_EINVAL);
}

/* ---- the store sink over SQLite ---- */

static int exec1(struct lx_store *s, const char *sql)
{
    struct lx_error err = {0};
    struct lx_store_stmt st = {sql, NULL, 0};
    int rc = lx_store_exec_sync(s, &st, 1, NULL, &err);
    if (rc) {
        fprintf(stderr, "%s: %s\n", sql, err.msg);
    }
    return rc;
}

static int64_t query_int(struct lx_store *s, const char *sql)
{
    struct lx_error err = {0};
    struct lx_store_stmt st = {sql, NULL, 0};
    struct lx_store_result *r = NULL;
    if (lx_store_exec_sync(s, &st, 1, &r, &err) != 0) {
        fprintf(stderr, "%s: %s\n", sql, err.msg);
        return -1;
    }
    int64_t v = r->n_rows && r->cells[0] ? lx_store_cell_int(r, 0, r->cols[0], -1) : -1;
    lx_store_result_free(r);
    return v;
}

LX_TEST(test_store_sink_exact_sums)
{
    char *dir = make_tmpdir();
    char url[300], jdir[300];
    snprintf(url, sizeof(url), "sqlite:///%s/llmux.db", dir);
    snprintf(jdir, sizeof(jdir), "%s/journal", dir);
    struct lx_error err = {0};
    struct lx_store *s = lx_store_open(url, &err);
    LX_CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "store: %s\n", err.msg);
        lx_free(dir);
        return;
    }
    LX_CHECK_INT(exec1(s, "INSERT INTO lx_keys (token, key_name, user_id, team_id, created_at,"
                          " updated_at) VALUES ('k1', 'sk-...k1', 'u1', 't1', 0, 0),"
                          " ('k2', 'sk-...k2', 'u1', NULL, 0, 0)"),
                 0);
    LX_CHECK_INT(exec1(s, "INSERT INTO lx_users (user_id, created_at, updated_at) VALUES"
                          " ('u1', 0, 0), ('u2', 0, 0)"),
                 0);
    LX_CHECK_INT(exec1(s, "INSERT INTO lx_teams (team_id, created_at, updated_at) VALUES"
                          " ('t1', 0, 0)"),
                 0);
    LX_CHECK_INT(exec1(s, "INSERT INTO lx_team_members (team_id, user_id, created_at) VALUES"
                          " ('t1', 'u1', 0)"),
                 0);

    struct lx_ledger_opts o = {
        .dir = jdir, .sink = lx_ledger_store_sink, .sink_ud = s, .batch_max = 64};
    struct lx_ledger *l = lx_ledger_start(&o, &err);
    LX_CHECK(l != NULL);
    struct lx_ledger_writer *w = lx_ledger_writer_new(l);
    struct lx_buf file;
    lx_buf_init(&file, 1 << 22);
    int64_t k1 = 0, k2 = 0;
    for (int i = 0; i < 1000; i++) {
        char id[32];
        snprintf(id, sizeof(id), "s%d", i);
        struct lx_spend_record r = rec(id, 1000003 + i);
        bool first = i % 3 != 0;
        r.api_key = first ? "k1" : "k2";
        r.user_id = "u1";
        r.team_id = first ? "t1" : NULL;
        *(first ? &k1 : &k2) += r.spend_nanos;
        LX_CHECK_INT(lx_ledger_record(w, &r), 0);
        if (i < 100) {
            LX_CHECK_INT(lx_journal_encode(&r, &file), 0);
        }
    }
    LX_CHECK_INT(lx_ledger_flush(l, 10000), 0);
    lx_ledger_writer_free(w);
    lx_ledger_stop(l, 1000);

    /* A replay of records already in the store changes nothing. */
    write_file(jdir, "seg-1-replay-000000.lxj", file.data, file.len);
    l = lx_ledger_start(&o, &err);
    struct lx_ledger_stats st;
    lx_ledger_get_stats(l, &st);
    LX_CHECK_INT(st.replayed, 100);
    lx_ledger_stop(l, 1000);

    LX_CHECK_INT(query_int(s, "SELECT COUNT(*) FROM lx_spend_logs"), 1000);
    LX_CHECK_INT(query_int(s, "SELECT COUNT(*) FROM lx_spend_logs WHERE applied = 0"), 0);
    LX_CHECK_INT(query_int(s, "SELECT spend_nanos FROM lx_keys WHERE token = 'k1'"), k1);
    LX_CHECK_INT(query_int(s, "SELECT spend_nanos FROM lx_keys WHERE token = 'k2'"), k2);
    LX_CHECK_INT(query_int(s, "SELECT spend_nanos FROM lx_users WHERE user_id = 'u1'"), k1 + k2);
    LX_CHECK_INT(query_int(s, "SELECT spend_nanos FROM lx_users WHERE user_id = 'u2'"), 0);
    LX_CHECK_INT(query_int(s, "SELECT spend_nanos FROM lx_teams WHERE team_id = 't1'"), k1);
    LX_CHECK_INT(query_int(s, "SELECT spend_nanos FROM lx_team_members WHERE team_id = 't1'"), k1);
    LX_CHECK_INT(query_int(s, "SELECT SUM(spend_nanos) FROM lx_spend_logs WHERE api_key = 'k1'"),
                 k1);
    /* The global total is kept in the same transactions: it equals the rows' sum. */
    LX_CHECK_INT(query_int(s, "SELECT spend_nanos FROM lx_spend_totals WHERE scope = 'global'"),
                 query_int(s, "SELECT SUM(spend_nanos) FROM lx_spend_logs"));

    /*
     * Budgets over the store: spend stays exact through pending, commit and
     * the base re-read; a reset leaves 0 once pending records commit.
     */
    struct lx_budget *b = lx_budget_new(s);
    struct lx_config *cfg = lx_config_load_string("t", "", 0, &err);
    struct lx_identity *id = lx_identity_new();
    snprintf(id->token, sizeof(id->token), "%s", "k2");
    id->key.spend_nanos = k2;
    id->key.max_budget_nanos = k2 + 3000;
    id->loaded_at_ms = (int64_t)lx_mono_ms();
    char msg[256];
    LX_CHECK_INT(lx_budget_check(b, cfg, id, msg, sizeof(msg)), 0);
    o.budget = b;
    o.batch_ms = 10000; /* commits only when flushed */
    l = lx_ledger_start(&o, &err);
    w = lx_ledger_writer_new(l);
    for (int i = 0; i < 2; i++) {
        char rid[32];
        snprintf(rid, sizeof(rid), "b%d", i);
        struct lx_spend_record r = rec(rid, 1000);
        r.api_key = "k2";
        r.user_id = NULL;
        LX_CHECK_INT(lx_ledger_record(w, &r), 0);
    }
    LX_CHECK_INT(lx_budget_check(b, cfg, id, msg, sizeof(msg)), 0); /* k2 + 2000 */
    struct lx_spend_record r3 = rec("b2", 1000);
    r3.api_key = "k2";
    LX_CHECK_INT(lx_ledger_record(w, &r3), 0);
    LX_CHECK_INT(lx_budget_check(b, cfg, id, msg, sizeof(msg)), LX_EBUDGET); /* k2 + 3000 */
    LX_CHECK_INT(lx_ledger_flush(l, 5000), 0);
    LX_CHECK_INT(lx_ledger_flush(l, 5000), 0); /* a pass after the commit re-read the base */
    LX_CHECK_INT(lx_budget_spend(b, LX_BUDGET_KEY, "k2", 0, 0), k2 + 3000);
    LX_CHECK_INT(lx_budget_check(b, cfg, id, msg, sizeof(msg)), LX_EBUDGET);
    /* A reset while a record is pending: the store holds minus it, then 0 once committed. */
    struct lx_spend_record r4 = rec("b3", 500);
    r4.api_key = "k2";
    LX_CHECK_INT(lx_ledger_record(w, &r4), 0);
    uint64_t ticket = lx_budget_request_reset(b, LX_BUDGET_KEY, "k2");
    int rrc = -1;
    bool found = false;
    int64_t max = 0, reset_at = 0;
    for (int i = 0; i < 200 && !lx_budget_reset_poll(b, ticket, &rrc, &found, &max, &reset_at);
         i++) {
        usleep(10000);
    }
    LX_CHECK_INT(rrc, 0);
    LX_CHECK(found);
    LX_CHECK_INT(max, LX_NO_LIMIT); /* the row has no max_budget */
    LX_CHECK_INT(lx_budget_spend(b, LX_BUDGET_KEY, "k2", 0, 0), 0);
    LX_CHECK_INT(lx_budget_check(b, cfg, id, msg, sizeof(msg)), 0);
    LX_CHECK_INT(lx_ledger_flush(l, 5000), 0);
    LX_CHECK_INT(query_int(s, "SELECT spend_nanos FROM lx_keys WHERE token = 'k2'"), 0);
    lx_ledger_writer_free(w);
    lx_ledger_stop(l, 1000);
    lx_identity_unref(id);
    lx_config_unref(cfg);
    lx_budget_free(b);
    lx_buf_fini(&file);
    lx_store_close(s);
    rm_rf(dir);
    lx_free(dir);
}

/* ---- budgets ---- */

int lx_spend__parse_date_ms(const char *s, int64_t *out);

LX_TEST(test_parse_date)
{
    int64_t ms = 0;
    LX_CHECK_INT(lx_spend__parse_date_ms("2026-11-21", &ms), 0);
    LX_CHECK_INT(ms, 1795219200000LL);
    LX_CHECK_INT(lx_spend__parse_date_ms("2026-11-21T01:02:03", &ms), 0);
    LX_CHECK_INT(ms, 1795219200000LL + 3723000);
    LX_CHECK_INT(lx_spend__parse_date_ms("2026-13-01", &ms), -1);
    LX_CHECK_INT(lx_spend__parse_date_ms("yesterday", &ms), -1);
    LX_CHECK_INT(lx_spend__parse_date_ms("2026-11-21X", &ms), -1);
}

static struct lx_identity *key_identity(int64_t store_spend, int64_t max, int64_t soft)
{
    struct lx_identity *id = lx_identity_new();
    snprintf(id->token, sizeof(id->token), "%s", "tok1");
    id->key.spend_nanos = store_spend;
    id->key.max_budget_nanos = max;
    id->key.soft_budget_nanos = soft;
    id->user_id = "u1";
    id->has_user = true;
    id->user.max_budget_nanos = LX_NO_LIMIT;
    id->user.soft_budget_nanos = LX_NO_LIMIT;
    id->loaded_at_ms = (int64_t)lx_mono_ms();
    return id;
}

LX_TEST(test_budget_pending_counts_at_once)
{
    struct lx_budget *b = lx_budget_new(NULL);
    struct lx_error err = {0};
    struct lx_config *cfg = lx_config_load_string("t", "", 0, &err);
    struct lx_identity *id = key_identity(1000000000, 3000000000, LX_NO_LIMIT); /* $1 of $3 */
    char msg[256] = "";
    LX_CHECK_INT(lx_budget_check(b, cfg, id, msg, sizeof(msg)), 0);
    struct lx_spend_record r = rec("b1", 1500000000);
    r.api_key = "tok1";
    lx_budget_on_record(b, &r);
    LX_CHECK_INT(lx_budget_check(b, cfg, id, msg, sizeof(msg)), 0); /* $2.5 */
    r.request_id = "b2";
    lx_budget_on_record(b, &r);
    LX_CHECK_INT(lx_budget_check(b, cfg, id, msg, sizeof(msg)), LX_EBUDGET); /* $4 */
    LX_CHECK_STR(msg, "Budget has been exceeded! Current cost: 4.0, Max budget: 3.0");
    LX_CHECK_INT(lx_budget_spend(b, LX_BUDGET_KEY, "tok1", 1000000000, id->loaded_at_ms),
                 4000000000LL);
    /* Replayed records of another process were never pending here. */
    lx_budget_on_commit(b, &r, false);
    LX_CHECK_INT(lx_budget_pending_global(b), 3000000000LL);
    lx_identity_unref(id);
    lx_config_unref(cfg);
    lx_budget_free(b);
}

LX_TEST(test_budget_global)
{
    struct lx_budget *b = lx_budget_new(NULL);
    struct lx_error err = {0};
    const char *y = "litellm_settings:\n  max_budget: 0.5\n";
    struct lx_config *cfg = lx_config_load_string("t", y, strlen(y), &err);
    LX_CHECK(cfg != NULL);
    struct lx_identity *id = lx_identity_new_master();
    char msg[256] = "";
    LX_CHECK_INT(lx_budget_check(b, cfg, id, msg, sizeof(msg)), 0);
    struct lx_spend_record r = rec("g1", 500000000);
    lx_budget_on_record(b, &r);
    LX_CHECK_INT(lx_budget_check(b, cfg, id, msg, sizeof(msg)), LX_EBUDGET);
    LX_CHECK_STR(msg, "Budget has been exceeded! Current cost: 0.5, Max budget: 0.5");
    lx_identity_unref(id);
    lx_config_unref(cfg);
    lx_budget_free(b);
}

LX_TEST_MAIN(LX_RUN(test_parse_date); LX_RUN(test_budget_pending_counts_at_once);
             LX_RUN(test_budget_global); LX_RUN(test_store_sink_exact_sums); LX_RUN(test_dir_for);
             LX_RUN(test_crc32); LX_RUN(test_encode_decode); LX_RUN(test_encode_limits);
             LX_RUN(test_resync); LX_RUN(test_ledger_commits_everything);
             LX_RUN(test_ledger_rotates_segments); LX_RUN(test_ledger_store_down_then_back);
             LX_RUN(test_ledger_stop_keeps_uncommitted_for_replay);
             LX_RUN(test_replay_is_idempotent_and_skips_corrupt);
             LX_RUN(test_live_segments_are_not_replayed);
             LX_RUN(test_refused_record_is_dropped_alone))
