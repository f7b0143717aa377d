/*
 * The store: llmux's database of keys, users, teams, run-time models, the
 * audit log and spend logs, on SQLite (the embedded default) or PostgreSQL,
 * behind one interface.
 *
 * SQL is written once, in the subset both engines accept: placeholders $1..$n
 * (rewritten to ?n for SQLite), INSERT ... ON CONFLICT ... DO UPDATE/NOTHING,
 * RETURNING, LIMIT/OFFSET; BIGINT for integers, money (int64 nano-USD) and
 * times (unix seconds, or milliseconds where a column says so); INTEGER 0/1
 * for booleans; TEXT for strings and JSON documents. Results come back as
 * text, as libpq's text mode and sqlite3_column_text() give them.
 *
 * Every statement runs off the loop threads: on the store's own thread,
 * which owns the one connection (SQLite in WAL mode; PostgreSQL through
 * libpq, reconnecting by itself after a connection loss). A loop thread talks
 * to the store through a port (one per loop): it queues statements and its
 * callback runs later on that loop. While the database is unreachable,
 * statements fail fast with LX_EUNAVAIL and lx_store_is_up() is false; the
 * store thread keeps trying to reconnect (backoff up to 2 s) and flips it
 * back when it succeeds.
 *
 * Schema migrations (store/schema.c) are applied by lx_store_open, each in
 * its own transaction, recorded in lx_schema_migrations; opening an
 * up-to-date database costs one query. Concurrent starts on PostgreSQL
 * serialise on an advisory lock.
 */
#ifndef LX_STORE_STORE_H
#define LX_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/error.h"

enum lx_store_kind {
    LX_STORE_SQLITE,
    LX_STORE_POSTGRES,
};

enum lx_store_ptype {
    LX_SP_NULL,
    LX_SP_TEXT,
    LX_SP_INT,
};

/* One bound parameter. Text is copied when a statement is queued. */
struct lx_store_param {
    enum lx_store_ptype type;
    const char *s; /* LX_SP_TEXT */
    int64_t i;     /* LX_SP_INT */
};

/* Text, or SQL NULL when s is NULL. */
#define LX_SP_T(x) ((struct lx_store_param){(x) ? LX_SP_TEXT : LX_SP_NULL, (x), 0})
#define LX_SP_I(x) ((struct lx_store_param){LX_SP_INT, NULL, (int64_t)(x)})
#define LX_SP_NUL ((struct lx_store_param){LX_SP_NULL, NULL, 0})

struct lx_store_stmt {
    const char *sql;
    const struct lx_store_param *params;
    size_t n_params;
};

/*
 * The rows of the last statement of a batch. cells[row * n_cols + col] is
 * NUL-terminated text or NULL for SQL NULL. `changes` counts the rows the
 * last statement inserted, updated or deleted.
 */
struct lx_store_result {
    size_t n_rows;
    size_t n_cols;
    char **cols;
    char **cells;
    int64_t changes;
};

/*
 * The cell of `col` (a column name) in `row`, or NULL (SQL NULL, no such
 * column or row). Borrowed from the result.
 */
const char *lx_store_cell(const struct lx_store_result *r, size_t row, const char *col);

/* int64 of a cell; `dflt` when NULL or not a number. */
int64_t lx_store_cell_int(const struct lx_store_result *r, size_t row, const char *col,
                          int64_t dflt);

void lx_store_result_free(struct lx_store_result *r);

/*
 * Completion of a queued batch, on the port's loop thread. rc is 0 or
 * LX_EUNAVAIL (database unreachable or overloaded), LX_ECONFLICT (a unique
 * constraint), LX_ENOTFOUND (no such table), LX_EINVAL (the statement was
 * refused), LX_ENOMEM, LX_ECANCELED (the port or store closed first).
 * `res` is valid during the call only (NULL when rc != 0); `err` carries a
 * message without parameter values when rc != 0.
 */
typedef void (*lx_store_cb)(void *ud, int rc, const struct lx_store_result *res,
                            const struct lx_error *err);

struct lx_store;
struct lx_store_port;

/*
 * Open the database named by a LiteLLM database_url:
 *   sqlite:///relative.db    (relative to the working directory)
 *   sqlite:////abs/path.db   (absolute)
 *   postgresql://user:pass@host:5432/db (also postgres://; query parameters
 *   such as sslmode are passed to libpq)
 * connects, applies pending migrations and starts the store thread.
 * Blocking: call at start, never on a loop thread. On failure returns NULL
 * and fills err; the message never contains the password.
 */
struct lx_store *lx_store_open(const char *url, struct lx_error *err);

/*
 * Stop the store thread after the queued statements ran, and close the
 * connection. Every port must be closed first.
 */
void lx_store_close(struct lx_store *s);

enum lx_store_kind lx_store_kind(const struct lx_store *s);

/* The database's last known state; any thread. */
bool lx_store_is_up(const struct lx_store *s);

/* The URL with the password replaced by "***", for logs. Borrowed from the store. */
const char *lx_store_url_redacted(const struct lx_store *s);

/* The schema version the database is at after lx_store_open. */
int lx_store_schema_version(const struct lx_store *s);

/*
 * A port for `loop`: callbacks of batches queued through it run on that
 * loop. Call on the loop's thread; close it on the same thread before the
 * loop ends. Closing cancels its pending batches (their callbacks run with
 * LX_ECANCELED before the port's handle is released).
 */
struct lx_store_port *lx_store_port_new(struct lx_store *s, uv_loop_t *loop);
void lx_store_port_close(struct lx_store_port *p);

/*
 * Queue statements; n > 1 run in one transaction (all or nothing). The SQL
 * strings must outlive the call (string literals); parameters are copied.
 * Returns 0 (cb will run once, later, on the port's loop) or LX_EUNAVAIL
 * (down, or LX_STORE_MAX_QUEUED batches waiting) / LX_ENOMEM / LX_EINVAL (no
 * statements) / LX_ECANCELED (the port is closing) (cb never runs). Loop
 * thread of the port only.
 */
int lx_store_exec(struct lx_store_port *p, const struct lx_store_stmt *stmts, size_t n,
                  lx_store_cb cb, void *ud) LX_MUST_CHECK;

/*
 * The same, blocking, for threads that are not loop threads (start-up, the
 * CLI, background writers). On success *out_res (may be NULL if unwanted)
 * holds the last statement's rows; free it with lx_store_result_free.
 */
int lx_store_exec_sync(struct lx_store *s, const struct lx_store_stmt *stmts, size_t n,
                       struct lx_store_result **out_res, struct lx_error *err) LX_MUST_CHECK;

/* ---- schema (store/schema.c) ---- */

struct lx_store_migration {
    int version;
    const char *name;
    const char *sql; /* one or more statements separated by ';', no parameters */
};

/* The migrations, by ascending version. */
extern const struct lx_store_migration lx_store_migrations[];
extern const size_t lx_store_n_migrations;

#endif
