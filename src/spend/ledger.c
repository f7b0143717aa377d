/*
 * The spend ledger (see ledger.h).
 *
 * Threads: each writer appends frames to its own segment (one write(2) per
 * record) and publishes the segment's new size with a release store; the
 * ledger thread reads frames up to the published size, so it never sees a
 * partial frame of a live segment. A segment's fd is closed and its memory
 * freed only by the ledger thread, and only once the writer has marked it
 * closed, so a writer never touches a freed segment. New segments are pushed
 * at the head of the list under the lock; only the ledger thread removes
 * them (under the lock too), so it can walk the list from a head read under
 * the lock without holding it.
 */
#include "spend/ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "core/alloc.h"
#include "core/time.h"
#include "log/log.h"
#include "spend/budget.h"

#define READ_CHUNK (1u << 20)
#define SCAN_MS 10000u
#define BACKOFF_MIN_MS 200u
#define BACKOFF_MAX_MS 5000u

struct seg {
    struct seg *next;
    char *path;
    const char *name; /* inside path */
    int fd;
    _Atomic uint64_t size; /* bytes of whole frames; final once closed */
    atomic_bool closed;    /* the writer is done with it */
    bool foreign;          /* left by another process */
    /* Ledger thread only. */
    uint64_t read_off; /* committed up to here */
    uint64_t next_off; /* read into the current batch up to here */
    uint64_t synced;
    bool warned;
};

struct lx_ledger {
    char *dir;
    int dir_fd;
    lx_ledger_sink_fn sink;
    void *sink_ud;
    struct lx_budget *budget;
    unsigned fsync_ms;
    unsigned batch_ms;
    size_t batch_max;
    size_t segment_bytes;
    char prefix[64];
    atomic_uint seq;

    uv_thread_t thread;
    bool thread_started;
    uv_mutex_t lock;
    uv_cond_t wake; /* the ledger thread waits here */
    uv_cond_t done; /* flush waiters wait here */
    struct seg *segs;
    bool stop;
    bool flush_req;
    uint64_t pass_started, pass_done;
    uint64_t backlog; /* bytes not committed, at the end of the last pass */
    atomic_bool dir_dirty;
    atomic_int_least64_t unread; /* records of our writers not committed yet */

    /* Ledger thread only. */
    char *rbuf; /* READ_CHUNK bytes */
    struct lx_arena arena;
    struct lx_spend_record *batch;
    bool *batch_own;
    size_t n_batch;
    size_t n_batch_own;
    atomic_bool store_down; /* written by the ledger thread, read by stats */
    unsigned backoff_ms;
    uint64_t retry_at;

    /* Stats. */
    atomic_uint_least64_t recorded, committed, replayed, corrupt, dropped, batches, failures;
    atomic_bool write_error_logged;
};

struct lx_ledger_writer {
    struct lx_ledger *l;
    struct seg *seg;
    struct lx_buf frame;
    uint64_t last_error_log_ms;
};

/* ---- segments ---- */

static struct seg *seg_new(char *path, int fd, uint64_t size, bool foreign)
{
    struct seg *s = LX_NEW(struct seg);
    s->path = path;
    const char *slash = strrchr(path, '/');
    s->name = slash ? slash + 1 : path;
    s->fd = fd;
    atomic_store(&s->size, size);
    atomic_store(&s->closed, foreign);
    s->foreign = foreign;
    return s;
}

static void seg_free(struct seg *s)
{
    if (s->fd >= 0) {
        close(s->fd);
    }
    lx_free(s->path);
    lx_free(s);
}

static void push_seg(struct lx_ledger *l, struct seg *s)
{
    uv_mutex_lock(&l->lock);
    s->next = l->segs;
    l->segs = s;
    uv_mutex_unlock(&l->lock);
    atomic_store(&l->dir_dirty, true);
}

static struct seg *head(struct lx_ledger *l)
{
    uv_mutex_lock(&l->lock);
    struct seg *s = l->segs;
    uv_mutex_unlock(&l->lock);
    return s;
}

static bool have_seg(struct lx_ledger *l, const char *name)
{
    for (struct seg *s = head(l); s; s = s->next) {
        if (strcmp(s->name, name) == 0) {
            return true;
        }
    }
    return false;
}

static void on_listed(void *ud, const char *name)
{
    struct lx_ledger *l = ud;
    if (have_seg(l, name)) {
        return;
    }
    char *path = lx_malloc(strlen(l->dir) + strlen(name) + 2);
    memcpy(path, l->dir, strlen(l->dir));
    path[strlen(l->dir)] = '/';
    memcpy(path + strlen(l->dir) + 1, name, strlen(name) + 1);
    int fd = lx_journal_segment_adopt(path);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        lx_free(path);
        return;
    }
    LX_INFO("spend journal: replaying %s (%lld bytes) left by a process that stopped", path,
            (long long)st.st_size);
    push_seg(l, seg_new(path, fd, (uint64_t)st.st_size, true));
}

static void scan_orphans(struct lx_ledger *l)
{
    if (lx_journal_list(l->dir, on_listed, l) != 0) {
        LX_WARN("spend journal: cannot list %s: %s", l->dir, strerror(errno));
    }
}

/* Remove segments that are closed and fully committed. Ledger thread. */
static void reap(struct lx_ledger *l)
{
    uv_mutex_lock(&l->lock);
    struct seg **pp = &l->segs;
    while (*pp) {
        struct seg *s = *pp;
        if (atomic_load(&s->closed) && s->read_off == atomic_load(&s->size)) {
            *pp = s->next;
            unlink(s->path);
            seg_free(s);
            continue;
        }
        pp = &s->next;
    }
    uv_mutex_unlock(&l->lock);
}

static void sync_all(struct lx_ledger *l)
{
    for (struct seg *s = head(l); s; s = s->next) {
        uint64_t size = atomic_load(&s->size);
        if (size > s->synced && !s->foreign) {
            if (fdatasync(s->fd) != 0) {
                LX_WARN("spend journal: fdatasync %s: %s", s->path, strerror(errno));
            }
            s->synced = size;
        }
    }
    if (atomic_exchange(&l->dir_dirty, false) && fsync(l->dir_fd) != 0) {
        LX_WARN("spend journal: fsync %s: %s", l->dir, strerror(errno));
    }
}

/* ---- batches ---- */

/* Read frames of s from next_off into the batch. Ledger thread. */
static void fill_from(struct lx_ledger *l, struct seg *s)
{
    bool closed = atomic_load(&s->closed);
    uint64_t end = atomic_load(&s->size);
    uint64_t off = s->next_off;
    while (off < end && l->n_batch < l->batch_max) {
        size_t want = (size_t)LX_MIN(end - off, (uint64_t)READ_CHUNK);
        ssize_t got = pread(s->fd, l->rbuf, want, (off_t)off);
        if (got <= 0) {
            if (!s->warned) {
                LX_WARN("spend journal: cannot read %s at %" PRIu64 ": %s", s->path, off,
                        got < 0 ? strerror(errno) : "unexpected end of file");
                s->warned = true;
            }
            if (closed) {
                off = end; /* nothing more can be read from it */
            }
            break;
        }
        const char *buf = l->rbuf;
        size_t n = (size_t)got, pos = 0;
        bool again = false;
        while (pos < n && l->n_batch < l->batch_max) {
            size_t flen = 0;
            struct lx_spend_record *r = &l->batch[l->n_batch];
            int rc = lx_journal_decode(buf + pos, n - pos, r, &l->arena, &flen);
            if (rc == 0) {
                l->batch_own[l->n_batch] = !s->foreign;
                l->n_batch++;
                if (!s->foreign) {
                    l->n_batch_own++;
                } else {
                    atomic_fetch_add(&l->replayed, 1);
                }
                pos += flen;
                continue;
            }
            if (rc == LX_EAGAIN && off + pos + flen <= end && pos > 0) {
                again = true; /* the frame continues past this chunk: read from its start */
                break;
            }
            if (rc == LX_EAGAIN) {
                if (!closed) {
                    again = true; /* a live segment only grows by whole frames; wait */
                    break;
                }
                LX_WARN("spend journal: %s ends with a truncated record (%zu bytes); skipped",
                        s->path, n - pos);
                atomic_fetch_add(&l->corrupt, 1);
                pos = n;
                break;
            }
            size_t skip = lx_journal_resync(buf + pos, n - pos);
            LX_WARN("spend journal: corrupt record in %s at offset %" PRIu64 "; skipped %zu bytes",
                    s->path, off + pos, skip);
            atomic_fetch_add(&l->corrupt, 1);
            pos += skip;
        }
        off += pos;
        if (again && pos == 0) {
            break;
        }
    }
    s->next_off = off;
}

static int commit_one_by_one(struct lx_ledger *l)
{
    for (size_t i = 0; i < l->n_batch; i++) {
        struct lx_error err = {0};
        int rc = l->sink(l->sink_ud, &l->batch[i], 1, &err);
        if (rc == LX_EUNAVAIL) {
            return rc;
        }
        if (rc) {
            LX_ERROR("spend ledger: the store refused the record of call %s (%s); dropped",
                     l->batch[i].request_id, err.msg);
            atomic_fetch_add(&l->dropped, 1);
        }
    }
    return 0;
}

/*
 * Commit everything readable now, batch by batch. Returns false when the
 * store failed (the offsets are rewound for a retry).
 */
static bool run_batches(struct lx_ledger *l)
{
    for (;;) {
        l->n_batch = 0;
        l->n_batch_own = 0;
        for (struct seg *s = head(l); s; s = s->next) {
            s->next_off = s->read_off;
        }
        for (struct seg *s = head(l); s && l->n_batch < l->batch_max; s = s->next) {
            fill_from(l, s);
        }
        bool moved = false;
        for (struct seg *s = head(l); s; s = s->next) {
            moved = moved || s->next_off != s->read_off;
        }
        if (!moved) {
            lx_arena_fini(&l->arena);
            return true;
        }
        int rc = 0;
        if (l->n_batch) {
            struct lx_error err = {0};
            rc = l->sink(l->sink_ud, l->batch, l->n_batch, &err);
            if (rc && rc != LX_EUNAVAIL && rc != LX_ECANCELED) {
                LX_WARN("spend ledger: a batch of %zu records failed (%s); retrying one by one",
                        l->n_batch, err.msg);
                rc = commit_one_by_one(l);
            }
            if (rc) {
                atomic_fetch_add(&l->failures, 1);
                if (!atomic_load(&l->store_down)) {
                    LX_ERROR("spend ledger: the store is unavailable (%s); spend records wait in "
                             "the journal at %s and are retried",
                             err.msg[0] ? err.msg : lx_strerror(rc), l->dir);
                }
                atomic_store(&l->store_down, true);
                l->backoff_ms =
                    l->backoff_ms ? LX_MIN(l->backoff_ms * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
                l->retry_at = lx_mono_ms() + l->backoff_ms;
                lx_arena_fini(&l->arena);
                return false;
            }
            atomic_fetch_add(&l->batches, 1);
            for (size_t i = 0; i < l->n_batch && l->budget; i++) {
                lx_budget_on_commit(l->budget, &l->batch[i], l->batch_own[i]);
            }
        }
        if (atomic_load(&l->store_down)) {
            LX_INFO("spend ledger: the store is back; committing the journal");
        }
        atomic_store(&l->store_down, false);
        l->backoff_ms = 0;
        atomic_fetch_add(&l->committed, l->n_batch);
        atomic_fetch_sub(&l->unread, (int_least64_t)l->n_batch_own);
        for (struct seg *s = head(l); s; s = s->next) {
            s->read_off = s->next_off;
        }
        lx_arena_fini(&l->arena);
        reap(l);
    }
}

static uint64_t backlog_of(struct lx_ledger *l)
{
    uint64_t b = 0;
    for (struct seg *s = l->segs; s; s = s->next) {
        b += atomic_load(&s->size) - s->read_off;
    }
    return b;
}

static void ledger_main(void *arg)
{
    struct lx_ledger *l = arg;
    uint64_t now = lx_mono_ms();
    uint64_t next_sync = now + l->fsync_ms;
    uint64_t next_batch = now + l->batch_ms;
    uint64_t next_scan = now + SCAN_MS;
    uv_mutex_lock(&l->lock);
    while (!l->stop) {
        now = lx_mono_ms();
        bool backoff = atomic_load(&l->store_down) && now < l->retry_at;
        bool full = atomic_load(&l->unread) >= (int_least64_t)l->batch_max && !backoff;
        if (!l->flush_req && !full) {
            uint64_t until = LX_MIN(next_sync, backoff ? l->retry_at : next_batch);
            if (until > now) {
                uv_cond_timedwait(&l->wake, &l->lock, (until - now) * 1000000u);
            }
        }
        if (l->stop) {
            break;
        }
        bool flush = l->flush_req;
        l->flush_req = false;
        l->pass_started++;
        uv_mutex_unlock(&l->lock);

        now = lx_mono_ms();
        if (now >= next_sync || flush) {
            sync_all(l);
            next_sync = now + l->fsync_ms;
        }
        bool due =
            now >= next_batch || flush || atomic_load(&l->unread) >= (int_least64_t)l->batch_max;
        if (due && (!atomic_load(&l->store_down) || flush || now >= l->retry_at)) {
            run_batches(l);
            next_batch = lx_mono_ms() + l->batch_ms;
        }
        if (l->budget) {
            lx_budget_tick(l->budget);
        }
        if (now >= next_scan) {
            scan_orphans(l);
            next_scan = now + SCAN_MS;
        }
        reap(l);

        uv_mutex_lock(&l->lock);
        l->pass_done = l->pass_started;
        l->backlog = backlog_of(l);
        uv_cond_broadcast(&l->done);
    }
    uv_mutex_unlock(&l->lock);
}

/* ---- public ---- */

/* A budget reset was queued: run a pass now. */
static void wake_for_budget(void *ud)
{
    struct lx_ledger *l = ud;
    uv_mutex_lock(&l->lock);
    l->flush_req = true;
    uv_cond_signal(&l->wake);
    uv_mutex_unlock(&l->lock);
}

struct lx_ledger *lx_ledger_start(const struct lx_ledger_opts *o, struct lx_error *err)
{
    if (lx_journal_mkdir(o->dir, err)) {
        return NULL;
    }
    int dir_fd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        lx_error_set(err, LX_EIO, "cannot open spend journal directory %s: %s", o->dir,
                     strerror(errno));
        return NULL;
    }
    struct lx_ledger *l = LX_NEW(struct lx_ledger);
    l->dir = lx_strdup(o->dir);
    l->dir_fd = dir_fd;
    l->sink = o->sink;
    l->sink_ud = o->sink_ud;
    l->budget = o->budget;
    l->fsync_ms = o->fsync_ms ? o->fsync_ms : 50;
    l->batch_ms = o->batch_ms ? o->batch_ms : 100;
    l->batch_max = o->batch_max ? o->batch_max : 500;
    l->segment_bytes = o->segment_bytes ? o->segment_bytes : 4u << 20;
    uint64_t t = (uint64_t)lx_wall_s() * 1000000000u + lx_mono_ns() % 1000000000u;
    snprintf(l->prefix, sizeof(l->prefix), "seg-%d-%" PRIx64, (int)getpid(), t);
    uv_mutex_init(&l->lock);
    uv_cond_init(&l->wake);
    uv_cond_init(&l->done);
    l->rbuf = lx_malloc(READ_CHUNK);
    lx_arena_init(&l->arena, NULL, 0, 64u << 10);
    l->batch = lx_calloc(l->batch_max, sizeof(*l->batch));
    l->batch_own = lx_calloc(l->batch_max, sizeof(*l->batch_own));

    /* Replay what previous processes left before the first request is served. */
    scan_orphans(l);
    if (l->segs) {
        run_batches(l);
        reap(l);
        if (l->segs) {
            LX_WARN("spend journal: %" PRIu64 " bytes from a previous run wait for the store",
                    backlog_of(l));
        } else {
            LX_INFO("spend journal: replayed %" PRIu64 " record(s) from a previous run",
                    (uint64_t)atomic_load(&l->replayed));
        }
    }
    if (uv_thread_create(&l->thread, ledger_main, l) != 0) {
        lx_error_set(err, LX_EIO, "cannot start the spend ledger thread");
        lx_ledger_stop(l, 0);
        return NULL;
    }
    l->thread_started = true;
    if (l->budget) {
        lx_budget_set_waker(l->budget, wake_for_budget, l);
    }
    return l;
}

int lx_ledger_flush(struct lx_ledger *l, uint64_t timeout_ms)
{
    uint64_t deadline = lx_mono_ms() + timeout_ms;
    int rc = 0;
    uv_mutex_lock(&l->lock);
    uint64_t target = l->pass_started + 1;
    for (;;) {
        if (l->pass_done >= target && l->backlog == 0) {
            break;
        }
        uint64_t now = lx_mono_ms();
        if (now >= deadline) {
            rc = LX_ETIMEDOUT;
            break;
        }
        if (l->pass_done >= target && atomic_load(&l->store_down)) {
            /* A whole pass found the store down: the journal keeps the records. */
            rc = LX_EUNAVAIL;
            break;
        }
        if (l->pass_done >= target) {
            target = l->pass_started + 1; /* a pass ran but left a backlog: ask again */
        }
        l->flush_req = true;
        uv_cond_signal(&l->wake);
        uv_cond_timedwait(&l->done, &l->lock, LX_MIN(deadline - now, (uint64_t)100) * 1000000u);
    }
    uv_mutex_unlock(&l->lock);
    return rc;
}

void lx_ledger_stop(struct lx_ledger *l, uint64_t timeout_ms)
{
    if (l->budget) {
        lx_budget_set_waker(l->budget, NULL, NULL);
    }
    if (l->thread_started) {
        for (struct seg *s = head(l); s; s = s->next) {
            atomic_store(&s->closed, true);
        }
        int frc = timeout_ms ? lx_ledger_flush(l, timeout_ms) : 0;
        if (frc == LX_EUNAVAIL) {
            LX_ERROR("spend ledger: the store is unreachable; %s keeps the journal for the next "
                     "start",
                     l->dir);
        } else if (frc) {
            LX_ERROR("spend ledger: the store did not take the journal within %" PRIu64
                     " ms; %s keeps it for the next start",
                     timeout_ms, l->dir);
        }
        uv_mutex_lock(&l->lock);
        l->stop = true;
        uv_cond_signal(&l->wake);
        uv_mutex_unlock(&l->lock);
        uv_thread_join(&l->thread);
    }
    sync_all(l);
    reap(l);
    while (l->segs) {
        struct seg *s = l->segs;
        l->segs = s->next;
        seg_free(s); /* keeps the file: uncommitted records are replayed at the next start */
    }
    close(l->dir_fd);
    lx_free(l->batch);
    lx_free(l->batch_own);
    lx_arena_fini(&l->arena);
    lx_free(l->rbuf);
    uv_cond_destroy(&l->wake);
    uv_cond_destroy(&l->done);
    uv_mutex_destroy(&l->lock);
    lx_free(l->dir);
    lx_free(l);
}

void lx_ledger_get_stats(struct lx_ledger *l, struct lx_ledger_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->recorded = atomic_load(&l->recorded);
    out->committed = atomic_load(&l->committed);
    out->replayed = atomic_load(&l->replayed);
    out->corrupt = atomic_load(&l->corrupt);
    out->dropped = atomic_load(&l->dropped);
    out->batches = atomic_load(&l->batches);
    out->failures = atomic_load(&l->failures);
    uv_mutex_lock(&l->lock);
    out->backlog_bytes = l->backlog;
    for (struct seg *s = l->segs; s; s = s->next) {
        out->segments++;
    }
    out->store_down = atomic_load(&l->store_down);
    uv_mutex_unlock(&l->lock);
}

const char *lx_ledger_dir(const struct lx_ledger *l)
{
    return l->dir;
}

/* ---- writers ---- */

struct lx_ledger_writer *lx_ledger_writer_new(struct lx_ledger *l)
{
    struct lx_ledger_writer *w = LX_NEW(struct lx_ledger_writer);
    w->l = l;
    lx_buf_init(&w->frame, LX_JOURNAL_HEADER + LX_JOURNAL_MAX_PAYLOAD);
    return w;
}

static void writer_close_seg(struct lx_ledger_writer *w)
{
    if (w->seg) {
        atomic_store(&w->seg->closed, true);
        w->seg = NULL;
        uv_cond_signal(&w->l->wake);
    }
}

void lx_ledger_writer_free(struct lx_ledger_writer *w)
{
    if (!w) {
        return;
    }
    writer_close_seg(w);
    lx_buf_fini(&w->frame);
    lx_free(w);
}

static int writer_open_seg(struct lx_ledger_writer *w, struct lx_error *err)
{
    struct lx_ledger *l = w->l;
    for (int attempt = 0; attempt < 3; attempt++) {
        char name[96];
        snprintf(name, sizeof(name), "%s-%06u", l->prefix, atomic_fetch_add(&l->seq, 1));
        char *path = NULL;
        int fd = lx_journal_segment_create(l->dir, name, &path, err);
        if (fd >= 0) {
            w->seg = seg_new(path, fd, 0, false);
            push_seg(l, w->seg);
            return 0;
        }
    }
    return LX_EIO;
}

static void write_failed(struct lx_ledger_writer *w, const char *what, int e)
{
    uint64_t now = lx_mono_ms();
    if (now - w->last_error_log_ms >= 10000 || !w->last_error_log_ms) {
        LX_ERROR("spend journal: %s in %s: %s; spend of calls is not journaled", what, w->l->dir,
                 strerror(e));
        w->last_error_log_ms = now;
    }
}

int lx_ledger_record(struct lx_ledger_writer *w, const struct lx_spend_record *r)
{
    struct lx_ledger *l = w->l;
    lx_buf_reset(&w->frame);
    int rc = lx_journal_encode(r, &w->frame);
    if (rc) {
        return rc;
    }
    if (w->seg && atomic_load(&w->seg->size) + w->frame.len > l->segment_bytes) {
        writer_close_seg(w);
    }
    if (!w->seg) {
        struct lx_error err = {0};
        if (writer_open_seg(w, &err)) {
            write_failed(w, err.msg, EIO);
            return LX_EIO;
        }
    }
    struct seg *s = w->seg;
    uint64_t size = atomic_load(&s->size);
    size_t done = 0;
    while (done < w->frame.len) {
        ssize_t n = write(s->fd, w->frame.data + done, w->frame.len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int e = n < 0 ? errno : ENOSPC;
            /* Cut the torn frame so the segment stays whole frames, and start another. */
            if (done && ftruncate(s->fd, (off_t)size) != 0) {
                LX_WARN("spend journal: cannot cut a torn record in %s", s->path);
            }
            writer_close_seg(w);
            write_failed(w, "cannot write a record", e);
            return LX_EIO;
        }
        done += (size_t)n;
    }
    if (l->budget) {
        /* Pending before the size is published: the commit that subtracts it comes after. */
        lx_budget_on_record(l->budget, r);
    }
    atomic_store(&s->size, size + w->frame.len);
    atomic_fetch_add(&l->recorded, 1);
    if (atomic_fetch_add(&l->unread, 1) + 1 >= (int_least64_t)l->batch_max) {
        uv_cond_signal(&l->wake);
    }
    return 0;
}

int lx_ledger_dir_for(const char *url, const char *configured, char *out, size_t n)
{
    if (configured && configured[0]) {
        return snprintf(out, n, "%s", configured) < (int)n ? 0 : LX_EINVAL;
    }
    if (!url) {
        return LX_EINVAL;
    }
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
        return snprintf(out, n, "llmux-journal") < (int)n ? 0 : LX_EINVAL;
    }
    if (strncmp(url, "sqlite:///", 10) != 0 || !url[10]) {
        return LX_EINVAL;
    }
    const char *path = url + 10; /* "rel.db", or "/abs.db" from sqlite:////abs.db */
    size_t len = strcspn(path, "?");
    if (len == 0 || len + sizeof(".journal") > n) {
        return LX_EINVAL;
    }
    memcpy(out, path, len);
    memcpy(out + len, ".journal", sizeof(".journal"));
    return 0;
}
