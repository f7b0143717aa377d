/*
 * The PostgreSQL engine (libpq). Not connected yet in this build: opening a
 * postgresql:// URL fails with a clear message.
 */
#include "store/store_int.h"

static int pg_connect(struct lx_store *s, struct lx_error *err)
{
    (void)s;
    return lx_error_set(err, LX_EUNAVAIL, "PostgreSQL support is not available in this build");
}

static void pg_disconnect(struct lx_store *s)
{
    (void)s;
}

static int pg_run(struct lx_store *s, const struct lx_store_stmt *stmts, size_t n,
                  struct lx_store_result **out, struct lx_error *err)
{
    (void)s;
    (void)stmts;
    (void)n;
    (void)out;
    return lx_error_set(err, LX_EUNAVAIL, "not connected");
}

static int pg_script(struct lx_store *s, const char *sql, struct lx_error *err)
{
    (void)s;
    (void)sql;
    return lx_error_set(err, LX_EUNAVAIL, "not connected");
}

static bool pg_alive(struct lx_store *s)
{
    (void)s;
    return false;
}

const struct lx_store__engine lx_store__postgres = {
    .name = "postgresql",
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .run = pg_run,
    .script = pg_script,
    .begin_sql = "BEGIN",
    .lock = NULL,
    .alive = pg_alive,
};
