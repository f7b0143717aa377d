/*
 * libFuzzer target for spend journal replay: the input is the content of a
 * segment file a dead process left. It is parsed twice: frame by frame here
 * (decode, skip a corrupt frame to the next magic, stop at a cut frame), and
 * by a real ledger that takes the file over at start and replays it into a
 * counting sink. Both must find the same records; every record must encode
 * back to a frame that decodes to the same fields; nothing may crash or leak.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "log/log.h"
#include "spend/journal.h"
#include "spend/ledger.h"

struct count {
    size_t n;
    int64_t spend;
};

static int count_sink(void *ud, const struct lx_spend_record *recs, size_t n, struct lx_error *err)
{
    (void)err;
    struct count *c = ud;
    for (size_t i = 0; i < n; i++) {
        c->n++;
        c->spend += recs[i].spend_nanos;
    }
    return 0;
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_round_trip(const struct lx_spend_record *r)
{
    struct lx_buf b;
    lx_buf_init(&b, 1 << 20);
    struct lx_arena a;
    lx_arena_init(&a, NULL, 0, 4096);
    struct lx_spend_record d;
    size_t len = 0;
    if (lx_journal_encode(r, &b) != 0 || lx_journal_decode(b.data, b.len, &d, &a, &len) != 0 ||
        len != b.len) {
        abort();
    }
    const char *x[] = {r->request_id,
                       r->call_type,
                       r->api_key,
                       r->key_alias,
                       r->user_id,
                       r->team_id,
                       r->end_user,
                       r->model,
                       r->model_group,
                       r->model_id,
                       r->custom_llm_provider,
                       r->api_base};
    const char *y[] = {d.request_id,
                       d.call_type,
                       d.api_key,
                       d.key_alias,
                       d.user_id,
                       d.team_id,
                       d.end_user,
                       d.model,
                       d.model_group,
                       d.model_id,
                       d.custom_llm_provider,
                       d.api_base};
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++) {
        if (!same_str(x[i], y[i])) {
            abort();
        }
    }
    if (r->prompt_tokens != d.prompt_tokens || r->completion_tokens != d.completion_tokens ||
        r->total_tokens != d.total_tokens || r->cache_read_tokens != d.cache_read_tokens ||
        r->spend_nanos != d.spend_nanos || r->start_time_ms != d.start_time_ms ||
        r->end_time_ms != d.end_time_ms || r->cache_hit != d.cache_hit ||
        r->is_failure != d.is_failure) {
        abort();
    }
    lx_arena_fini(&a);
    lx_buf_fini(&b);
}

static const char *work_dir(void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/lx_fuzz_journal_%d", (int)getpid());
        lx_log_set_level(LX_LOG_CRITICAL);
    }
    return dir;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long live = lx_alloc_live();
    struct count direct = {0};
    struct lx_arena a;
    lx_arena_init(&a, NULL, 0, 4096);
    size_t pos = 0;
    while (pos < size) {
        struct lx_spend_record r;
        size_t len = 0;
        int rc = lx_journal_decode(data + pos, size - pos, &r, &a, &len);
        if (rc == 0) {
            if (len == 0 || len > size - pos) {
                abort();
            }
            check_round_trip(&r);
            direct.n++;
            direct.spend += r.spend_nanos;
            pos += len;
        } else if (rc == LX_EAGAIN) {
            break;
        } else if (rc == LX_EINVAL) {
            size_t skip = lx_journal_resync(data + pos, size - pos);
            if (skip == 0 || skip > size - pos) {
                abort();
            }
            pos += skip;
        } else {
            abort();
        }
    }
    lx_arena_fini(&a);

    /* The same bytes as a segment a dead process left, replayed by a ledger. */
    const char *dir = work_dir();
    struct lx_error err = {0};
    if (lx_journal_mkdir(dir, &err) != 0) {
        abort();
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/seg-0-fuzz-000000.lxj", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size)) {
        abort();
    }
    close(fd);
    struct count replayed = {0};
    struct lx_ledger_opts o = {.dir = dir, .sink = count_sink, .sink_ud = &replayed};
    struct lx_ledger *l = lx_ledger_start(&o, &err);
    if (!l) {
        abort();
    }
    lx_ledger_stop(l, 1000);
    if (access(path, F_OK) == 0) {
        abort(); /* a replayed segment is deleted */
    }
    if (replayed.n != direct.n || replayed.spend != direct.spend) {
        abort();
    }
    if (lx_alloc_live() != live) {
        abort();
    }
    return 0;
}
