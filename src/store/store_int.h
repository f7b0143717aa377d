/*
 * Shared by the files of the store module: the store and job structures,
 * the parsed database URL, the result builder and the engine operations
 * (store/sqlite.c, store/postgres.c). Engine functions run on the store
 * thread only (or on the opening thread before the store thread starts).
 */
#ifndef LX_STORE_STORE_INT_H
#define LX_STORE_STORE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/buf.h"
#include "core/compiler.h"
#include "core/error.h"
#include "store/store.h"

/* Batches waiting for the store thread beyond which new ones are refused (LX_EUNAVAIL). */
#define LX_STORE_MAX_QUEUED 20000

/* Largest result a statement may return (text of every cell together). */
#define LX_STORE_MAX_RESULT_BYTES (256u * 1024 * 1024)

/* ---- database URL ---- */

struct lx_store__url {
    enum lx_store_kind kind;
    char *path;     /* SQLite: the file name (":memory:" allowed) */
    char *redacted; /* the URL with the password replaced by "***" */
    /* PostgreSQL: libpq keywords and values, NULL-terminated, for PQconnectdbParams. */
    char **keys;
    char **vals;
    size_t n_kv;
};

/*
 * Parse a database_url. Returns 0, LX_EINVAL (err says why, without the
 * password) or LX_ENOMEM. On failure *out holds nothing to free.
 */
LX_MUST_CHECK int lx_store__url_parse(const char *url, struct lx_store__url *out,
                                      struct lx_error *err);
void lx_store__url_fini(struct lx_store__url *u);

/* ---- jobs ---- */

/*
 * One queued batch with its own copies of the parameters (one allocation:
 * the job, then the statements, then the parameters, then their text).
 */
struct lx_store__job {
    struct lx_store__job *next;
    struct lx_store_port *port; /* NULL: a synchronous job */
    lx_store_cb cb;
    void *ud;
    struct lx_store_stmt *stmts;
    size_t n;
    /* outcome */
    int rc;
    struct lx_store_result *res;
    struct lx_error err;
    bool done;     /* sync jobs: finished */
    bool canceled; /* the port closed while the job ran: drop it without a callback */
};

/* ---- result builder ---- */

struct lx_store__rb {
    struct lx_buf text; /* column names, then cells, each followed by a NUL */
    size_t *offs;       /* per column name then per cell: offset in text, SIZE_MAX = NULL */
    size_t n_offs, cap_offs;
    size_t n_cols;
};

void lx_store__rb_init(struct lx_store__rb *rb);
void lx_store__rb_fini(struct lx_store__rb *rb);
/* Add a column name (before any cell) or a cell (p NULL = SQL NULL). 0 / LX_ENOMEM / LX_ETOOBIG. */
LX_MUST_CHECK int lx_store__rb_col(struct lx_store__rb *rb, const char *name);
LX_MUST_CHECK int lx_store__rb_cell(struct lx_store__rb *rb, const char *p, size_t n);
/* The result (one allocation); the builder is emptied. */
LX_MUST_CHECK int lx_store__rb_finish(struct lx_store__rb *rb, int64_t changes,
                                      struct lx_store_result **out);

/* ---- engines ---- */

struct lx_store__engine {
    const char *name;
    /* Connect (or reconnect); 0 or LX_EUNAVAIL / LX_EINVAL with err set. */
    int (*connect)(struct lx_store *s, struct lx_error *err);
    void (*disconnect)(struct lx_store *s);
    /* Run a batch (a transaction when n > 1); out gets the last statement's rows. */
    int (*run)(struct lx_store *s, const struct lx_store_stmt *stmts, size_t n,
               struct lx_store_result **out, struct lx_error *err);
    /* Run statements separated by ';' without parameters or results. */
    int (*script)(struct lx_store *s, const char *sql, struct lx_error *err);
    /* The statement that opens a migration's transaction. */
    const char *begin_sql;
    /* Serialise migrations between processes (NULL: nothing to do). */
    int (*lock)(struct lx_store *s, bool take, struct lx_error *err);
    /* Is the connection still usable (after a failure)? */
    bool (*alive)(struct lx_store *s);
};

extern const struct lx_store__engine lx_store__sqlite;
extern const struct lx_store__engine lx_store__postgres;

struct lx_store {
    enum lx_store_kind kind;
    const struct lx_store__engine *eng;
    struct lx_store__url url;
    void *conn;   /* sqlite3 * or PGconn * */
    void *engine; /* engine private state (statement cache) */

    uv_thread_t thread;
    bool thread_started;
    uv_mutex_t lock;
    uv_cond_t wake;    /* the store thread: a job, a stop, a reconnect */
    uv_cond_t sync_cv; /* synchronous callers: their job is done */
    struct lx_store__job *head, *tail;
    size_t queued; /* jobs in the queue */
    struct lx_store__job *running;
    bool stopping;
    atomic_bool up;
    uint64_t retry_at_ms;
    uint64_t backoff_ms;
    int schema_version;
    unsigned n_ports; /* open ports (under lock) */
};

/* SQLite: `$N` → `?N` outside quotes and comments, in place (same length). */
void lx_store__rewrite_placeholders(char *sql);

/* PostgreSQL: is parameter n (1-based) tested with "$n IS [NOT] NULL" in sql? */
bool lx_store__pg_null_tested(const char *sql, size_t n);

/* Latest schema version known to this build. */
int lx_store__latest_version(void);

#endif
