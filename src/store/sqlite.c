/*
 * The SQLite engine: one connection in WAL mode (synchronous=NORMAL,
 * busy_timeout 5000 ms, foreign_keys on), used only by the store thread.
 *
 * Statements are written with PostgreSQL's $N placeholders; they are
 * rewritten to SQLite's ?N (same meaning: the N-th parameter) outside quotes
 * and comments, and the prepared statements are cached by SQL text. A batch
 * of more than one statement runs in BEGIN IMMEDIATE ... COMMIT, so that
 * another process writing the same file cannot make it fail half-way.
 *
 * Errors: a UNIQUE or PRIMARY KEY violation is LX_ECONFLICT; "no such table"
 * is LX_ENOTFOUND (the migrations use it); busy, locked and I/O failures are
 * LX_EUNAVAIL; anything else the statement's fault, LX_EINVAL. SQLite's
 * messages name columns, never bound values.
 */
#include <stdint.h>
#include <string.h>

#include <sqlite3.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "store/store_int.h"

#define CACHE_SIZE 64

struct cached {
    char *sql; /* the statement as given ($N form) */
    uint64_t hash;
    sqlite3_stmt *st;
};

struct sq {
    struct cached cache[CACHE_SIZE];
    size_t victim;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

static int map_error(sqlite3 *db, int rc, struct lx_error *err)
{
    int ext = sqlite3_extended_errcode(db);
    const char *msg = sqlite3_errmsg(db);
    int code;
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY) {
        code = LX_ECONFLICT;
    } else {
        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
        case SQLITE_IOERR:
        case SQLITE_FULL:
        case SQLITE_CANTOPEN:
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
        case SQLITE_PROTOCOL:
        case SQLITE_READONLY:
        case SQLITE_NOMEM:
            code = LX_EUNAVAIL;
            break;
        default:
            code = strncmp(msg, "no such table", 13) == 0 ? LX_ENOTFOUND : LX_EINVAL;
            break;
        }
    }
    return lx_error_set(err, code, "sqlite: %s", msg);
}

static void sq_disconnect(struct lx_store *s)
{
    struct sq *q = s->engine;
    if (q) {
        for (size_t i = 0; i < CACHE_SIZE; i++) {
            sqlite3_finalize(q->cache[i].st);
            lx_free(q->cache[i].sql);
        }
        LX_FREE(s->engine);
    }
    if (s->conn) {
        sqlite3_close_v2(s->conn);
        s->conn = NULL;
    }
}

static int sq_connect(struct lx_store *s, struct lx_error *err)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        s->url.path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        lx_error_set(err, LX_EUNAVAIL, "sqlite: %s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return LX_EUNAVAIL;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    rc = sqlite3_exec(db,
                      "PRAGMA journal_mode=WAL;"
                      "PRAGMA synchronous=NORMAL;"
                      "PRAGMA foreign_keys=ON;",
                      NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        lx_error_set(err, LX_EUNAVAIL, "sqlite: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        sqlite3_close_v2(db);
        return LX_EUNAVAIL;
    }
    s->conn = db;
    s->engine = LX_NEW(struct sq);
    return 0;
}

static int sq_script(struct lx_store *s, const char *sql, struct lx_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->conn, sql, NULL, NULL, &msg);
    sqlite3_free(msg);
    if (rc != SQLITE_OK) {
        return map_error(s->conn, rc, err);
    }
    return 0;
}

/* The prepared statement for sql, from the cache or new (then cached). */
static int prepare(struct lx_store *s, const char *sql, sqlite3_stmt **out, struct lx_error *err)
{
    struct sq *q = s->engine;
    uint64_t h = fnv1a(sql);
    for (size_t i = 0; i < CACHE_SIZE; i++) {
        if (q->cache[i].st && q->cache[i].hash == h && strcmp(q->cache[i].sql, sql) == 0) {
            *out = q->cache[i].st;
            return 0;
        }
    }
    size_t n = strlen(sql);
    char *copy = lx_try_malloc(n + 1);
    char *rewritten = lx_try_malloc(n + 1);
    if (!copy || !rewritten) {
        lx_free(copy);
        lx_free(rewritten);
        return lx_error_set(err, LX_ENOMEM, "out of memory");
    }
    memcpy(copy, sql, n + 1);
    memcpy(rewritten, sql, n + 1);
    lx_store__rewrite_placeholders(rewritten);
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc =
        sqlite3_prepare_v3(s->conn, rewritten, (int)n + 1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
    lx_free(rewritten);
    if (rc != SQLITE_OK || !st) {
        lx_free(copy);
        if (rc == SQLITE_OK) {
            return lx_error_set(err, LX_EINVAL, "sqlite: empty statement");
        }
        return map_error(s->conn, rc, err);
    }
    struct cached *c = &q->cache[q->victim];
    q->victim = (q->victim + 1) % CACHE_SIZE;
    sqlite3_finalize(c->st);
    lx_free(c->sql);
    c->sql = copy;
    c->hash = h;
    c->st = st;
    *out = st;
    return 0;
}

static int bind_params(sqlite3_stmt *st, const struct lx_store_stmt *stmt, struct lx_error *err)
{
    int want = sqlite3_bind_parameter_count(st);
    if ((size_t)want > stmt->n_params) {
        return lx_error_set(err, LX_EINVAL, "statement expects %d parameter(s), %zu given", want,
                            stmt->n_params);
    }
    for (size_t i = 0; i < stmt->n_params && (int)i < want; i++) {
        const struct lx_store_param *p = &stmt->params[i];
        int rc;
        if (p->type == LX_SP_INT) {
            rc = sqlite3_bind_int64(st, (int)i + 1, p->i);
        } else if (p->type == LX_SP_TEXT && p->s) {
            rc = sqlite3_bind_text(st, (int)i + 1, p->s, (int)strlen(p->s), SQLITE_STATIC);
        } else {
            rc = sqlite3_bind_null(st, (int)i + 1);
        }
        if (rc != SQLITE_OK) {
            return lx_error_set(err, LX_EINVAL, "sqlite: cannot bind parameter %zu", i + 1);
        }
    }
    return 0;
}

/* Run one statement; rows are collected when out is set. */
static int run_one(struct lx_store *s, const struct lx_store_stmt *stmt,
                   struct lx_store_result **out, struct lx_error *err)
{
    sqlite3 *db = s->conn;
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, stmt->sql, &st, err);
    if (rc) {
        return rc;
    }
    rc = bind_params(st, stmt, err);
    struct lx_store__rb rb;
    lx_store__rb_init(&rb);
    int ncol = sqlite3_column_count(st);
    for (int c = 0; rc == 0 && out && c < ncol; c++) {
        rc = lx_store__rb_col(&rb, sqlite3_column_name(st, c));
    }
    while (rc == 0) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE) {
            break;
        }
        if (src != SQLITE_ROW) {
            rc = map_error(db, src, err);
            break;
        }
        for (int c = 0; out && rc == 0 && c < ncol; c++) {
            if (sqlite3_column_type(st, c) == SQLITE_NULL) {
                rc = lx_store__rb_cell(&rb, NULL, 0);
            } else {
                const char *t = (const char *)sqlite3_column_text(st, c);
                int n = sqlite3_column_bytes(st, c);
                rc = lx_store__rb_cell(&rb, t ? t : "", t ? (size_t)n : 0);
            }
        }
        if (rc == LX_ENOMEM || rc == LX_ETOOBIG) {
            rc = lx_error_set(err, rc, "the result is too large");
        }
    }
    int64_t changes = sqlite3_stmt_readonly(st) ? 0 : sqlite3_changes64(db);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == 0 && out) {
        rc = lx_store__rb_finish(&rb, changes, out);
        if (rc) {
            return lx_error_set(err, rc, "out of memory");
        }
    }
    lx_store__rb_fini(&rb);
    return rc;
}

static int sq_run(struct lx_store *s, const struct lx_store_stmt *stmts, size_t n,
                  struct lx_store_result **out, struct lx_error *err)
{
    if (out) {
        *out = NULL;
    }
    bool tx = n > 1;
    int rc = 0;
    if (tx) {
        rc = sq_script(s, "BEGIN IMMEDIATE", err);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = run_one(s, &stmts[i], i + 1 == n ? out : NULL, err);
    }
    if (tx && rc == 0) {
        rc = sq_script(s, "COMMIT", err);
    }
    if (rc) {
        if (tx && !sqlite3_get_autocommit(s->conn)) {
            struct lx_error ignored = {0};
            (void)sq_script(s, "ROLLBACK", &ignored);
        }
        if (out && *out) {
            lx_store_result_free(*out);
            *out = NULL;
        }
    }
    return rc;
}

static bool sq_alive(struct lx_store *s)
{
    (void)s;
    return true;
}

const struct lx_store__engine lx_store__sqlite = {
    .name = "sqlite",
    .connect = sq_connect,
    .disconnect = sq_disconnect,
    .run = sq_run,
    .script = sq_script,
    .begin_sql = "BEGIN IMMEDIATE",
    .lock = NULL,
    .alive = sq_alive,
};
