/*
 * The PostgreSQL engine: one libpq connection, used only by the store
 * thread, with blocking calls (the store thread exists so that they never
 * block a loop).
 *
 * Parameters go out typed, in text format: text as OID 25, integers as OID
 * 20 (int8) written in decimal, NULL untyped (OID 0, PostgreSQL infers it)
 * unless the statement tests it with `$n IS NULL` (then text).
 * Results come back in text format.
 *
 * Connection loss. Before a statement, an idle connection whose socket is
 * readable has been told something (an admin shutdown, a restart): it is
 * read, and if the connection is dead it is re-established once, so a
 * server restart between two statements costs no error. A connection found
 * dead otherwise makes the batch fail with LX_EUNAVAIL and `alive` false; the
 * store thread then reconnects with backoff (store.c).
 *
 * Errors map by SQLSTATE: 23505 (unique violation) → LX_ECONFLICT; 42P01
 * (undefined table) → LX_ENOTFOUND; 08P01 (parameters that do not match) →
 * LX_EINVAL; the rest of class 08 (connection), 57P01-57P03
 * (shutdown, cannot connect now), class 53 (resources), 40001/40P01
 * (serialization, deadlock), 25006 (read-only: a failover in progress), 57014
 * (canceled, statement_timeout) → LX_EUNAVAIL; anything else → LX_EINVAL. Only
 * the primary message is kept: DETAIL quotes the values of a violated key.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "core/alloc.h"
#include "store/store_int.h"

#define OID_INT8 20
#define OID_TEXT 25
/* The advisory lock key that serialises migrations ("llmux" in ASCII). */
#define MIGRATION_LOCK_KEY 465877579128LL

static void set_conn_error(PGconn *c, int code, struct lx_error *err, const char *what)
{
    const char *m = c ? PQerrorMessage(c) : "out of memory";
    /* One line for the logs: libpq's messages span several, with tabs. */
    char line[400];
    size_t n = 0;
    for (const char *p = m; *p && n + 1 < sizeof(line); p++) {
        bool space = *p == '\n' || *p == '\t' || *p == '\r' || *p == ' ';
        if (space && (n == 0 || line[n - 1] == ' ')) {
            continue;
        }
        line[n++] = space ? ' ' : *p;
    }
    while (n > 0 && line[n - 1] == ' ') {
        n--;
    }
    line[n] = '\0';
    /* libpq's connection messages name host, port and user, never the password. */
    lx_error_set(err, code, "postgresql: %s%s%s", what, n ? ": " : "", line);
}

/* Notices ("relation already exists, skipping") are not errors: libpq would print them. */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int pg_connect(struct lx_store *s, struct lx_error *err)
{
    PGconn *c =
        PQconnectdbParams((const char *const *)s->url.keys, (const char *const *)s->url.vals, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        set_conn_error(c, LX_EUNAVAIL, err, "cannot connect");
        PQfinish(c);
        return LX_EUNAVAIL;
    }
    if (PQsetClientEncoding(c, "UTF8") != 0) {
        set_conn_error(c, LX_EUNAVAIL, err, "cannot use UTF8");
        PQfinish(c);
        return LX_EUNAVAIL;
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    s->conn = c;
    return 0;
}

static void pg_disconnect(struct lx_store *s)
{
    if (s->conn) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
}

static bool pg_alive(struct lx_store *s)
{
    return s->conn && PQstatus(s->conn) == CONNECTION_OK;
}

static int map_sqlstate(const char *st)
{
    if (!st) {
        return LX_EINVAL;
    }
    if (strcmp(st, "23505") == 0) {
        return LX_ECONFLICT;
    }
    if (strcmp(st, "42P01") == 0) {
        return LX_ENOTFOUND;
    }
    if (strcmp(st, "08P01") == 0) {
        /* Protocol violation: the statement's parameters do not match it; the connection is fine.
         */
        return LX_EINVAL;
    }
    if (strncmp(st, "08", 2) == 0 || strncmp(st, "53", 2) == 0 || strcmp(st, "57P01") == 0 ||
        strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0 || strcmp(st, "40001") == 0 ||
        strcmp(st, "40P01") == 0 || strcmp(st, "25006") == 0 || strcmp(st, "57014") == 0) {
        return LX_EUNAVAIL;
    }
    return LX_EINVAL;
}

/* 0 when res succeeded; else the mapped code with err set. Does not clear res. */
static int check(PGconn *c, PGresult *res, struct lx_error *err)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        return 0;
    }
    if (!res || PQstatus(c) != CONNECTION_OK) {
        set_conn_error(c, LX_EUNAVAIL, err, "connection lost");
        return LX_EUNAVAIL;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    int code = map_sqlstate(state);
    return lx_error_set(err, code, "postgresql: %s (%s)", msg ? msg : PQresStatus(st),
                        state ? state : "?");
}

/*
 * An idle connection with something to read was told to go away (or the
 * server is gone): read it, and if the connection is dead, re-establish it
 * once before the next statement.
 */
static int ensure_connection(struct lx_store *s, struct lx_error *err)
{
    PGconn *c = s->conn;
    if (!c) {
        return lx_error_set(err, LX_EUNAVAIL, "postgresql: not connected");
    }
    /*
     * A FATAL message ("terminating connection ...") and the end of the
     * stream may arrive as separate reads: keep reading while there is
     * something to read, so that a dead connection shows as one.
     */
    for (int i = 0; i < 8 && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE;
         i++) {
        struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
        if (pfd.fd < 0 || poll(&pfd, 1, 0) <= 0) {
            break;
        }
        if (!PQconsumeInput(c)) {
            break;
        }
        PGnotify *n;
        while ((n = PQnotifies(c)) != NULL) {
            PQfreemem(n);
        }
    }
    if (PQstatus(c) != CONNECTION_OK) {
        PQreset(c);
        if (PQstatus(c) != CONNECTION_OK) {
            set_conn_error(c, LX_EUNAVAIL, err, "connection lost");
            return LX_EUNAVAIL;
        }
    }
    return 0;
}

static int exec_simple(PGconn *c, const char *sql, struct lx_error *err)
{
    PGresult *res = PQexec(c, sql);
    int rc = check(c, res, err);
    PQclear(res);
    return rc;
}

static int pg_script(struct lx_store *s, const char *sql, struct lx_error *err)
{
    if (!s->conn) {
        return lx_error_set(err, LX_EUNAVAIL, "postgresql: not connected");
    }
    return exec_simple(s->conn, sql, err);
}

static int collect(PGresult *res, struct lx_store_result **out, struct lx_error *err)
{
    struct lx_store__rb rb;
    lx_store__rb_init(&rb);
    int nf = PQnfields(res), nt = PQntuples(res);
    int rc = 0;
    for (int f = 0; rc == 0 && f < nf; f++) {
        rc = lx_store__rb_col(&rb, PQfname(res, f));
    }
    for (int t = 0; rc == 0 && t < nt; t++) {
        for (int f = 0; rc == 0 && f < nf; f++) {
            if (PQgetisnull(res, t, f)) {
                rc = lx_store__rb_cell(&rb, NULL, 0);
            } else {
                rc = lx_store__rb_cell(&rb, PQgetvalue(res, t, f), (size_t)PQgetlength(res, t, f));
            }
        }
    }
    /* Rows inserted, updated or deleted; a SELECT's row count is not a change. */
    int64_t changes = 0;
    const char *tag = PQcmdStatus(res);
    const char *ct = tag && strncmp(tag, "SELECT", 6) == 0 ? "" : PQcmdTuples(res);
    for (; ct && *ct >= '0' && *ct <= '9'; ct++) {
        changes = changes * 10 + (*ct - '0');
    }
    if (rc == 0) {
        rc = lx_store__rb_finish(&rb, changes, out);
    }
    lx_store__rb_fini(&rb);
    if (rc) {
        return lx_error_set(err, rc, "the result is too large");
    }
    return 0;
}

/*
 * Is parameter n tested with "$n IS [NOT] NULL" (outside quotes)? PostgreSQL
 * cannot infer a type from that test alone, so a NULL sent there goes as
 * text (any other use of the parameter then has to accept text too, as
 * `$1 IS NULL OR user_id = $1` does).
 */
bool lx_store__pg_null_tested(const char *sql, size_t n)
{
    for (const char *p = sql; *p; p++) {
        if (*p == '\'' || *p == '"') {
            char q = *p++;
            while (*p && *p != q) {
                p++;
            }
            if (!*p) {
                break;
            }
            continue;
        }
        if (*p != '$' || p[1] < '0' || p[1] > '9') {
            continue;
        }
        size_t v = 0;
        const char *d = p + 1;
        while (*d >= '0' && *d <= '9' && v < 100000) {
            v = v * 10 + (size_t)(*d++ - '0');
        }
        if (v != n) {
            continue;
        }
        const char *w = d;
        while (*w == ' ' || *w == '\t' || *w == '\n' || *w == ')') {
            w++;
        }
        if (w > d && (w[0] == 'I' || w[0] == 'i') && (w[1] == 'S' || w[1] == 's') &&
            (w[2] == ' ' || w[2] == '\t' || w[2] == '\n')) {
            return true;
        }
    }
    return false;
}

static int run_one(PGconn *c, const struct lx_store_stmt *stmt, struct lx_store_result **out,
                   struct lx_error *err)
{
    size_t np = stmt->n_params;
    Oid *types = NULL;
    const char **vals = NULL;
    char(*ints)[24] = NULL;
    if (np) {
        types = lx_try_malloc(np * sizeof(*types));
        vals = lx_try_malloc(np * sizeof(*vals));
        ints = lx_try_malloc(np * sizeof(*ints));
        if (!types || !vals || !ints) {
            lx_free(types);
            lx_free(vals);
            lx_free(ints);
            return lx_error_set(err, LX_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < np; i++) {
        const struct lx_store_param *p = &stmt->params[i];
        if (p->type == LX_SP_INT) {
            types[i] = OID_INT8;
            snprintf(ints[i], sizeof(ints[i]), "%" PRId64, p->i);
            vals[i] = ints[i];
        } else if (p->type == LX_SP_TEXT && p->s) {
            types[i] = OID_TEXT;
            vals[i] = p->s;
        } else {
            types[i] = lx_store__pg_null_tested(stmt->sql, i + 1) ? OID_TEXT : 0;
            vals[i] = NULL;
        }
    }
    PGresult *res = PQexecParams(c, stmt->sql, (int)np, types, vals, NULL, NULL, 0);
    lx_free(types);
    lx_free(vals);
    lx_free(ints);
    int rc = check(c, res, err);
    if (rc == 0 && out) {
        rc = collect(res, out, err);
    }
    PQclear(res);
    return rc;
}

static int pg_run(struct lx_store *s, const struct lx_store_stmt *stmts, size_t n,
                  struct lx_store_result **out, struct lx_error *err)
{
    if (out) {
        *out = NULL;
    }
    int rc = ensure_connection(s, err);
    if (rc) {
        return rc;
    }
    PGconn *c = s->conn;
    bool tx = n > 1;
    if (tx) {
        rc = exec_simple(c, "BEGIN", err);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = run_one(c, &stmts[i], i + 1 == n ? out : NULL, err);
    }
    if (tx && rc == 0) {
        rc = exec_simple(c, "COMMIT", err);
    }
    if (rc) {
        if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
            struct lx_error ignored = {0};
            (void)exec_simple(c, "ROLLBACK", &ignored);
        }
        if (out && *out) {
            lx_store_result_free(*out);
            *out = NULL;
        }
    }
    return rc;
}

static int pg_lock(struct lx_store *s, bool take, struct lx_error *err)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "SELECT %s(%lld)", take ? "pg_advisory_lock" : "pg_advisory_unlock",
             MIGRATION_LOCK_KEY);
    return pg_script(s, sql, err);
}

const struct lx_store__engine lx_store__postgres = {
    .name = "postgresql",
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .run = pg_run,
    .script = pg_script,
    .begin_sql = "BEGIN",
    .lock = pg_lock,
    .alive = pg_alive,
};
