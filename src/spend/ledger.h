/*
 * The spend ledger: every billable call's record reaches the store exactly
 * once, even through a kill -9.
 *
 * A worker records a call at its end with lx_ledger_record(): one write(2)
 * of one journal frame (spend/journal.h) to the worker's own segment file,
 * before the response's last byte is sent. From then on the record survives
 * the death of the process (the page cache keeps it); the ledger thread
 * fsyncs new bytes every fsync_ms (default 50 ms) for power loss.
 *
 * The ledger thread tails the segments and commits their records to the
 * store in batches (every batch_ms, default 100 ms, or as soon as batch_max,
 * default 500, records wait), each in one transaction that inserts the
 * lx_spend_logs rows (ON CONFLICT (request_id) DO NOTHING) and adds the
 * spend of the rows it inserted to their key, user and team (see the
 * `applied` column in store/schema.c). A segment is deleted once it is
 * closed (rotated at segment_bytes, or its writer freed) and every record in
 * it is committed. While the store is down, batches are retried with a
 * backoff (up to 5 s) and the journal grows; the outage is logged once.
 *
 * At start, and every 10 s, the ledger takes over the segments of the
 * directory that no live process holds (flock) and replays them: records
 * already in the store are skipped by the ON CONFLICT, so replay is
 * idempotent. A corrupt or truncated record is skipped with a warning.
 */
#ifndef LX_SPEND_LEDGER_H
#define LX_SPEND_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/compiler.h"
#include "core/error.h"
#include "spend/journal.h"
#include "store/store.h"

/*
 * Commit n records in one transaction. Returns 0, LX_EUNAVAIL (store down:
 * the batch is retried later) or another code (the batch is then retried
 * record by record and records that still fail are dropped with an error
 * log). Runs on the ledger thread (and in lx_ledger_start).
 */
typedef int (*lx_ledger_sink_fn)(void *ud, const struct lx_spend_record *recs, size_t n,
                                 struct lx_error *err);

struct lx_budget;

struct lx_ledger_opts {
    const char *dir;        /* journal directory; created if missing */
    lx_ledger_sink_fn sink; /* where batches go: lx_ledger_store_sink in production */
    void *sink_ud;
    /*
     * Budgets to keep informed (spend/budget.h), or NULL: records become
     * pending when journaled and committed after their batch; the ledger
     * thread runs lx_budget_tick after each pass.
     */
    struct lx_budget *budget;
    unsigned fsync_ms;    /* 0 = 50 */
    unsigned batch_ms;    /* 0 = 100 */
    size_t batch_max;     /* 0 = 500 */
    size_t segment_bytes; /* 0 = 4 MiB */
};

struct lx_ledger_stats {
    uint64_t recorded;      /* records written by this process's writers */
    uint64_t committed;     /* records committed to the store (replayed ones included) */
    uint64_t replayed;      /* records read from other processes' segments */
    uint64_t corrupt;       /* frames skipped as corrupt or truncated */
    uint64_t dropped;       /* records the store refused one by one */
    uint64_t batches;       /* successful sink calls */
    uint64_t failures;      /* failed sink calls */
    uint64_t backlog_bytes; /* journal bytes not committed yet */
    size_t segments;        /* segment files held */
    bool store_down;
};

struct lx_ledger;
struct lx_ledger_writer;

/*
 * Create the directory, take over and replay the segments left by processes
 * that died (synchronously, before returning, when the store is up), and
 * start the ledger thread. Blocking: call at start, not on a loop thread.
 * Returns NULL with err filled when the directory cannot be used.
 */
struct lx_ledger *lx_ledger_start(const struct lx_ledger_opts *opts, struct lx_error *err);

/*
 * Commit what the journal holds (waiting up to timeout_ms), stop the thread,
 * delete the segments that are fully committed and free the ledger. Every
 * writer must have been freed. Segments not committed (store down) stay for
 * the next start. Blocking.
 */
void lx_ledger_stop(struct lx_ledger *l, uint64_t timeout_ms);

/*
 * Wait until every record written before the call is committed. Returns 0,
 * LX_EUNAVAIL as soon as a pass finds the store unreachable (the journal
 * keeps the records), or LX_ETIMEDOUT after timeout_ms. Blocking; not on a
 * loop thread.
 */
int lx_ledger_flush(struct lx_ledger *l, uint64_t timeout_ms);

void lx_ledger_get_stats(struct lx_ledger *l, struct lx_ledger_stats *out);

/* The journal directory. Borrowed from the ledger. */
const char *lx_ledger_dir(const struct lx_ledger *l);

/*
 * A writer for one thread (a worker loop). Its segment file is created on
 * the first record. Free it on the same thread, before lx_ledger_stop.
 */
struct lx_ledger_writer *lx_ledger_writer_new(struct lx_ledger *l);
void lx_ledger_writer_free(struct lx_ledger_writer *w);

/*
 * Journal one record (copied). Returns 0 once it is in the page cache, or
 * LX_EINVAL (no request_id / call_type) or LX_EIO (the journal cannot be
 * written: disk full...; logged, rate-limited). Writer's thread only; a few
 * microseconds (one write(2)).
 */
int lx_ledger_record(struct lx_ledger_writer *w, const struct lx_spend_record *r);

/*
 * The journal directory for a store: `configured` when set
 * (general_settings.spend_journal_dir), else "<database file>.journal" for
 * sqlite:/// URLs and "llmux-journal" (in the working directory) for
 * PostgreSQL. Returns 0, or LX_EINVAL when the URL is not one the store
 * opens (no ledger then).
 */
int lx_ledger_dir_for(const char *database_url, const char *configured, char *out, size_t n);

/* The store sink (ud is the struct lx_store): inserts rows and applies their spend. */
int lx_ledger_store_sink(void *ud, const struct lx_spend_record *recs, size_t n,
                         struct lx_error *err);

#endif
