/*
 * The store: URL parsing, migrations, parameters, conflicts, transactions,
 * ports on a real libuv loop, result cells. The engine cases run on a SQLite
 * file in a temp dir, and again on PostgreSQL when LX_TEST_PG_URL is set
 * (scripts/pg-test.sh sets it); with LX_TEST_PG_CTL set too (a command taking
 * "stop" or "start"), the outage cases stop and restart the server.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "core/alloc.h"
#include "core/time.h"
#include "log/log.h"
#include "lx_test.h"
#include "store/store.h"
#include "store/store_int.h"

static char g_url[4096];
static char g_dir[256];
static const char *g_engine = "sqlite";

/* ---- URL parsing ---- */

static const char *kv(const struct lx_store__url *u, const char *k)
{
    const char *v = NULL;
    for (size_t i = 0; i < u->n_kv; i++) {
        if (strcmp(u->keys[i], k) == 0) {
            v = u->vals[i];
        }
    }
    return v;
}

LX_TEST(url_sqlite)
{
    struct lx_store__url u;
    struct lx_error err = {0};
    LX_CHECK_INT(lx_store__url_parse("sqlite:///llmux.db", &u, &err), 0);
    LX_CHECK_INT(u.kind, LX_STORE_SQLITE);
    LX_CHECK_STR(u.path, "llmux.db");
    LX_CHECK_STR(u.redacted, "sqlite:///llmux.db");
    lx_store__url_fini(&u);

    LX_CHECK_INT(lx_store__url_parse("sqlite:////var/lib/llmux/db.sqlite", &u, &err), 0);
    LX_CHECK_STR(u.path, "/var/lib/llmux/db.sqlite");
    lx_store__url_fini(&u);

    LX_CHECK_INT(lx_store__url_parse("SQLITE:///dir/my%20file.db?mode=x", &u, &err), 0);
    LX_CHECK_STR(u.path, "dir/my file.db");
    lx_store__url_fini(&u);

    LX_CHECK_INT(lx_store__url_parse("sqlite:///:memory:", &u, &err), 0);
    LX_CHECK_STR(u.path, ":memory:");
    lx_store__url_fini(&u);
}

LX_TEST(url_postgres)
{
    struct lx_store__url u;
    struct lx_error err = {0};
    LX_CHECK_INT(lx_store__url_parse("postgresql://llm:s3cr%40t@db.example:6543/litellm"
                                     "?sslmode=require&connection_limit=5&schema=llm",
                                     &u, &err),
                 0);
    LX_CHECK_INT(u.kind, LX_STORE_POSTGRES);
    LX_CHECK_STR(kv(&u, "user"), "llm");
    LX_CHECK_STR(kv(&u, "password"), "s3cr@t");
    LX_CHECK_STR(kv(&u, "host"), "db.example");
    LX_CHECK_STR(kv(&u, "port"), "6543");
    LX_CHECK_STR(kv(&u, "dbname"), "litellm");
    LX_CHECK_STR(kv(&u, "sslmode"), "require");
    LX_CHECK_STR(kv(&u, "options"), "-c search_path=llm");
    LX_CHECK(kv(&u, "connection_limit") == NULL);
    LX_CHECK_STR(kv(&u, "connect_timeout"), "3");
    LX_CHECK_STR(u.redacted, "postgresql://llm:***@db.example:6543/litellm"
                             "?sslmode=require&connection_limit=5&schema=llm");
    LX_CHECK(strstr(u.redacted, "s3cr") == NULL);
    LX_CHECK(u.keys[u.n_kv] == NULL && u.vals[u.n_kv] == NULL);
    lx_store__url_fini(&u);

    /* A password with a raw '@', no port, postgres:// */
    LX_CHECK_INT(lx_store__url_parse("postgres://u:p@ss@localhost/db", &u, &err), 0);
    LX_CHECK_STR(kv(&u, "password"), "p@ss");
    LX_CHECK_STR(kv(&u, "host"), "localhost");
    LX_CHECK(kv(&u, "port") == NULL);
    LX_CHECK_STR(u.redacted, "postgres://u:***@localhost/db");
    lx_store__url_fini(&u);

    /* IPv6, host lists, no user, password in the query */
    LX_CHECK_INT(lx_store__url_parse("postgresql://[::1]:5433,h2/db?password=pw&connect_timeout=9",
                                     &u, &err),
                 0);
    LX_CHECK_STR(kv(&u, "host"), "::1,h2");
    LX_CHECK_STR(kv(&u, "port"), "5433,");
    LX_CHECK_STR(kv(&u, "password"), "pw");
    LX_CHECK_STR(kv(&u, "connect_timeout"), "9");
    LX_CHECK(kv(&u, "user") == NULL);
    LX_CHECK_STR(u.redacted, "postgresql://[::1]:5433,h2/db?password=***&connect_timeout=9");
    lx_store__url_fini(&u);

    /* Local socket: no host at all, a user without password */
    LX_CHECK_INT(
        lx_store__url_parse("postgresql://me@/db?host=%2Fvar%2Frun%2Fpostgresql", &u, &err), 0);
    LX_CHECK_STR(kv(&u, "host"), "/var/run/postgresql");
    LX_CHECK_STR(kv(&u, "user"), "me");
    LX_CHECK(kv(&u, "password") == NULL);
    LX_CHECK_STR(u.redacted, "postgresql://me@/db?host=%2Fvar%2Frun%2Fpostgresql");
    lx_store__url_fini(&u);

    /* Decoded once: %2525 is "%25", not "%". */
    LX_CHECK_INT(lx_store__url_parse("postgresql://h%2525/db%2525?sslmode=a%2525", &u, &err), 0);
    LX_CHECK_STR(kv(&u, "host"), "h%25");
    LX_CHECK_STR(kv(&u, "dbname"), "db%25");
    LX_CHECK_STR(kv(&u, "sslmode"), "a%25");
    lx_store__url_fini(&u);

    LX_CHECK_INT(lx_store__url_parse("postgresql://h", &u, &err), 0);
    LX_CHECK_STR(kv(&u, "host"), "h");
    LX_CHECK(kv(&u, "dbname") == NULL);
    lx_store__url_fini(&u);
}

LX_TEST(url_bad)
{
    static const char *const bad[] = {
        "",
        "mysql://u:p@h/db",
        "sqlite://",
        "sqlite:///",
        "sqlite://host/file.db",
        "sqlite:///a%zz.db",
        "sqlite:///a%00.db",
        "postgresql://u:secret@h:0/db",
        "postgresql://u:secret@h:70000/db",
        "postgresql://u:secret@h:54x/db",
        "postgresql://u:secret@[::1/db",
        "postgresql://u:secret@[::1]x/db",
        "postgresql://u:secret%zz@h/db",
        "postgresql://u:secret@h/d%b",
        "postgresql://u:secret@h/db?schema=a;drop",
        "postgresql://u:secret@h/db?sslmode=%",
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(bad); i++) {
        struct lx_store__url u;
        struct lx_error err = {0};
        int rc = lx_store__url_parse(bad[i], &u, &err);
        if (rc != LX_EINVAL) {
            fprintf(stderr, "  accepted or wrong code (%d): %s\n", rc, bad[i]);
        }
        LX_CHECK_INT(rc, LX_EINVAL);
        LX_CHECK_INT(err.code, LX_EINVAL);
        LX_CHECK(err.msg[0] != '\0');
        LX_CHECK(strstr(err.msg, "secret") == NULL);
    }
    struct lx_store__url u;
    struct lx_error err = {0};
    LX_CHECK_INT(lx_store__url_parse(NULL, &u, &err), LX_EINVAL);
}

LX_TEST(url_alloc_failures)
{
    static const char *const urls[] = {
        "sqlite:///llmux.db",
        "postgresql://llm:pw@[::1]:5433,h2:5/db?sslmode=require&schema=s&x=1&password=p",
    };
    for (size_t k = 0; k < LX_ARRAY_LEN(urls); k++) {
        int failures = 0;
        for (long n = 0; n < 200; n++) {
            struct lx_store__url u;
            struct lx_error err = {0};
            lx_alloc_fail_after(n, 0);
            int rc = lx_store__url_parse(urls[k], &u, &err);
            lx_alloc_fail_after(-1, 0);
            if (rc == 0) {
                lx_store__url_fini(&u);
                break;
            }
            LX_CHECK_INT(rc, LX_ENOMEM);
            failures++;
        }
        LX_CHECK(failures > 0);
    }
}

LX_TEST(placeholders)
{
    char sql[] = "SELECT '$1', \"$2\", $3 -- $4\n, /* $5 */ $10, 'it''s $6' || $7";
    lx_store__rewrite_placeholders(sql);
    LX_CHECK_STR(sql, "SELECT '$1', \"$2\", ?3 -- $4\n, /* $5 */ ?10, 'it''s $6' || ?7");
    char money[] = "SELECT $ || $a";
    lx_store__rewrite_placeholders(money);
    LX_CHECK_STR(money, "SELECT $ || $a");
}

LX_TEST(null_tests)
{
    const char *q = "SELECT 1 WHERE ($1 IS NULL OR user_id = $1) AND ($12 is not null) AND "
                    "'$3 IS NULL' = x AND $4 ISNULL AND $5=$6";
    LX_CHECK(lx_store__pg_null_tested(q, 1));
    LX_CHECK(lx_store__pg_null_tested(q, 12));
    LX_CHECK(!lx_store__pg_null_tested(q, 2));
    LX_CHECK(!lx_store__pg_null_tested(q, 3));
    LX_CHECK(!lx_store__pg_null_tested(q, 4));
    LX_CHECK(!lx_store__pg_null_tested(q, 5));
    LX_CHECK(lx_store__pg_null_tested("COALESCE(($2) IS NULL", 2));
}

LX_TEST(cells)
{
    struct lx_store__rb rb;
    lx_store__rb_init(&rb);
    LX_CHECK_INT(lx_store__rb_col(&rb, "a"), 0);
    LX_CHECK_INT(lx_store__rb_col(&rb, "b"), 0);
    const char *vals[] = {"42", NULL, "-9223372036854775808", "x", "9223372036854775808", ""};
    for (size_t i = 0; i < LX_ARRAY_LEN(vals); i++) {
        LX_CHECK_INT(lx_store__rb_cell(&rb, vals[i], vals[i] ? strlen(vals[i]) : 0), 0);
    }
    struct lx_store_result *r = NULL;
    LX_CHECK_INT(lx_store__rb_finish(&rb, 7, &r), 0);
    LX_CHECK_INT(r->n_rows, 3);
    LX_CHECK_INT(r->n_cols, 2);
    LX_CHECK_INT(r->changes, 7);
    LX_CHECK_STR(r->cols[1], "b");
    LX_CHECK_STR(lx_store_cell(r, 0, "a"), "42");
    LX_CHECK(lx_store_cell(r, 0, "b") == NULL);
    LX_CHECK(lx_store_cell(r, 0, "c") == NULL);
    LX_CHECK(lx_store_cell(r, 3, "a") == NULL);
    LX_CHECK_INT(lx_store_cell_int(r, 0, "a", -1), 42);
    LX_CHECK_INT(lx_store_cell_int(r, 0, "b", -1), -1);
    LX_CHECK_INT(lx_store_cell_int(r, 1, "a", -1), INT64_MIN);
    LX_CHECK_INT(lx_store_cell_int(r, 1, "b", -1), -1);
    LX_CHECK_INT(lx_store_cell_int(r, 2, "a", -1), -1); /* overflow */
    LX_CHECK_INT(lx_store_cell_int(r, 2, "b", -1), -1); /* empty */
    lx_store_result_free(r);

    /* No rows, no columns. */
    lx_store__rb_init(&rb);
    LX_CHECK_INT(lx_store__rb_finish(&rb, 0, &r), 0);
    LX_CHECK_INT(r->n_rows, 0);
    LX_CHECK(lx_store_cell(r, 0, "a") == NULL);
    lx_store_result_free(r);
    LX_CHECK(lx_store_cell(NULL, 0, "a") == NULL);
}

/* ---- engine cases (SQLite, then PostgreSQL) ---- */

static struct lx_store *open_store(void)
{
    struct lx_error err = {0};
    struct lx_store *s = lx_store_open(g_url, &err);
    if (!s) {
        fprintf(stderr, "  open %s: %s\n", g_engine, err.msg);
    }
    return s;
}

static int exec1(struct lx_store *s, const char *sql, struct lx_store_result **out)
{
    struct lx_store_stmt st = {sql, NULL, 0};
    struct lx_error err = {0};
    int rc = lx_store_exec_sync(s, &st, 1, out, &err);
    if (rc && rc != LX_ECONFLICT) {
        fprintf(stderr, "  %s: %s\n", sql, err.msg);
    }
    return rc;
}

static void reset_test_table(struct lx_store *s)
{
    LX_CHECK_INT(exec1(s, "DROP TABLE IF EXISTS lx_test_t", NULL), 0);
    LX_CHECK_INT(exec1(s,
                       "CREATE TABLE lx_test_t (id TEXT PRIMARY KEY, n BIGINT, note TEXT,"
                       " uniq TEXT UNIQUE)",
                       NULL),
                 0);
}

static void drop_all(struct lx_store *s)
{
    LX_CHECK_INT(exec1(s, "DROP TABLE IF EXISTS lx_test_t", NULL), 0);
    static const char *const tables[] = {
        "lx_schema_migrations",
        "lx_team_members",
        "lx_teams",
        "lx_users",
        "lx_keys",
        "lx_models",
        "lx_audit_log",
        "lx_spend_logs",
        "lx_spend_totals",
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(tables); i++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", tables[i]);
        LX_CHECK_INT(exec1(s, sql, NULL), 0);
    }
}

LX_TEST(migrations)
{
    struct lx_store *s = open_store();
    LX_CHECK(s != NULL);
    if (!s) {
        return;
    }
    /* Back to an empty database, then open twice: migrate, then up to date. */
    drop_all(s);
    lx_store_close(s);

    uint64_t t0 = lx_mono_ns();
    s = open_store();
    uint64_t t1 = lx_mono_ns();
    LX_CHECK(s != NULL);
    if (!s) {
        return;
    }
    LX_CHECK_INT(lx_store_schema_version(s), lx_store__latest_version());
    LX_CHECK_INT(lx_store_kind(s),
                 strcmp(g_engine, "sqlite") == 0 ? LX_STORE_SQLITE : LX_STORE_POSTGRES);
    lx_store_close(s);

    uint64_t t2 = lx_mono_ns();
    s = open_store();
    uint64_t t3 = lx_mono_ns();
    LX_CHECK(s != NULL);
    if (!s) {
        return;
    }
    struct lx_store_result *r = NULL;
    LX_CHECK_INT(exec1(s, "SELECT version, name FROM lx_schema_migrations ORDER BY version", &r),
                 0);
    LX_CHECK_INT(r ? r->n_rows : 0, lx_store_n_migrations);
    for (size_t i = 0; r && i < r->n_rows; i++) {
        LX_CHECK_INT(lx_store_cell_int(r, i, "version", 0), (int64_t)(i + 1));
    }
    lx_store_result_free(r);
    /* Every table is there; the global total starts at 0. */
    LX_CHECK_INT(exec1(s, "SELECT COUNT(*) AS n FROM lx_keys", NULL), 0);
    LX_CHECK_INT(exec1(s, "SELECT COUNT(*) AS n FROM lx_spend_logs WHERE applied = 0", NULL), 0);
    r = NULL;
    LX_CHECK_INT(exec1(s, "SELECT spend_nanos FROM lx_spend_totals WHERE scope = 'global'", &r), 0);
    LX_CHECK_INT(r ? (int64_t)r->n_rows : 0, 1);
    LX_CHECK_INT(lx_store_cell_int(r, 0, "spend_nanos", -1), 0);
    lx_store_result_free(r);
    lx_store_close(s);
    printf("%s: open with migration %.2f ms, open up to date %.2f ms\n", g_engine,
           (double)(t1 - t0) / 1e6, (double)(t3 - t2) / 1e6);
}

LX_TEST(params_and_nulls)
{
    struct lx_store *s = open_store();
    if (!s) {
        LX_CHECK(0);
        return;
    }
    reset_test_table(s);
    struct lx_store_param ps[] = {LX_SP_T("k1"), LX_SP_I(-42), LX_SP_T(NULL), LX_SP_NUL};
    struct lx_store_stmt ins = {"INSERT INTO lx_test_t (id, n, note, uniq) VALUES ($1, $2, $3, $4)",
                                ps, 4};
    struct lx_error err = {0};
    struct lx_store_result *r = NULL;
    LX_CHECK_INT(lx_store_exec_sync(s, &ins, 1, &r, &err), 0);
    LX_CHECK_INT(r ? r->changes : -1, 1);
    LX_CHECK_INT(r ? (long long)r->n_rows : -1, 0);
    lx_store_result_free(r);

    /* Parameters out of order and reused; INT64 extremes. */
    struct lx_store_param p2[] = {LX_SP_I(INT64_MAX), LX_SP_T("k2")};
    struct lx_store_stmt ins2 = {"INSERT INTO lx_test_t (id, n, note) VALUES ($2, $1, $2)", p2, 2};
    LX_CHECK_INT(lx_store_exec_sync(s, &ins2, 1, NULL, &err), 0);

    struct lx_store_param sp[] = {LX_SP_T("k%")};
    struct lx_store_stmt sel = {"SELECT id, n, note, uniq FROM lx_test_t WHERE id LIKE $1 "
                                "ORDER BY id",
                                sp, 1};
    LX_CHECK_INT(lx_store_exec_sync(s, &sel, 1, &r, &err), 0);
    LX_CHECK_INT(r->n_rows, 2);
    LX_CHECK_INT(r->n_cols, 4);
    LX_CHECK_INT(r->changes, 0);
    LX_CHECK_STR(lx_store_cell(r, 0, "id"), "k1");
    LX_CHECK_INT(lx_store_cell_int(r, 0, "n", 0), -42);
    LX_CHECK(lx_store_cell(r, 0, "note") == NULL);
    LX_CHECK(lx_store_cell(r, 0, "uniq") == NULL);
    LX_CHECK_INT(lx_store_cell_int(r, 1, "n", 0), INT64_MAX);
    LX_CHECK_STR(lx_store_cell(r, 1, "note"), "k2");
    lx_store_result_free(r);

    /* An optional filter: `$1 IS NULL OR col = $1`, with NULL and with a value. */
    struct lx_store_param fnull[] = {LX_SP_NUL, LX_SP_I(0)};
    struct lx_store_param fval[] = {LX_SP_T("k2"), LX_SP_I(0)};
    struct lx_store_stmt filt = {"SELECT COUNT(*) AS c FROM lx_test_t WHERE ($1 IS NULL OR id = $1)"
                                 " AND n > $2",
                                 fnull, 2};
    LX_CHECK_INT(lx_store_exec_sync(s, &filt, 1, &r, &err), 0);
    LX_CHECK_INT(lx_store_cell_int(r, 0, "c", -1), 1);
    lx_store_result_free(r);
    filt.params = fval;
    LX_CHECK_INT(lx_store_exec_sync(s, &filt, 1, &r, &err), 0);
    LX_CHECK_INT(lx_store_cell_int(r, 0, "c", -1), 1);
    lx_store_result_free(r);
    /* NULL into a BIGINT column, by update. */
    struct lx_store_param setnull[] = {LX_SP_NUL, LX_SP_T("k1")};
    struct lx_store_stmt clr = {"UPDATE lx_test_t SET n = $1 WHERE id = $2", setnull, 2};
    LX_CHECK_INT(lx_store_exec_sync(s, &clr, 1, &r, &err), 0);
    LX_CHECK_INT(r ? r->changes : -1, 1);
    lx_store_result_free(r);

    /* UPDATE ... RETURNING, changes counted. */
    struct lx_store_param up[] = {LX_SP_I(5)};
    struct lx_store_stmt upd = {"UPDATE lx_test_t SET n = $1 RETURNING id", up, 1};
    LX_CHECK_INT(lx_store_exec_sync(s, &upd, 1, &r, &err), 0);
    LX_CHECK_INT(r->n_rows, 2);
    LX_CHECK_INT(r->changes, 2);
    lx_store_result_free(r);

    /* Too few parameters, bad SQL: refused with LX_EINVAL, and no value in the message. */
    struct lx_store_param few[] = {LX_SP_T("secret-value")};
    struct lx_store_stmt bad = {"INSERT INTO lx_test_t (id, n) VALUES ($1, $2)", few, 1};
    LX_CHECK_INT(lx_store_exec_sync(s, &bad, 1, NULL, &err), LX_EINVAL);
    LX_CHECK(strstr(err.msg, "secret-value") == NULL);
    struct lx_store_stmt syn = {"SELEKT 1", NULL, 0};
    LX_CHECK_INT(lx_store_exec_sync(s, &syn, 1, NULL, &err), LX_EINVAL);
    LX_CHECK_INT(lx_store_exec_sync(s, NULL, 0, NULL, &err), LX_EINVAL);
    lx_store_close(s);
}

LX_TEST(unicode)
{
    struct lx_store *s = open_store();
    if (!s) {
        LX_CHECK(0);
        return;
    }
    reset_test_table(s);
    const char *text = "héllo — 日本語 🚀 \"quoted\" 'single' $1 \\ back";
    struct lx_store_param ps[] = {LX_SP_T("u"), LX_SP_T(text)};
    struct lx_store_stmt ins = {"INSERT INTO lx_test_t (id, note) VALUES ($1, $2)", ps, 2};
    struct lx_error err = {0};
    LX_CHECK_INT(lx_store_exec_sync(s, &ins, 1, NULL, &err), 0);
    struct lx_store_result *r = NULL;
    LX_CHECK_INT(exec1(s, "SELECT note, '$1' AS lit FROM lx_test_t", &r), 0);
    LX_CHECK_STR(lx_store_cell(r, 0, "note"), text);
    LX_CHECK_STR(lx_store_cell(r, 0, "lit"), "$1");
    lx_store_result_free(r);
    lx_store_close(s);
}

LX_TEST(conflicts_and_rollback)
{
    struct lx_store *s = open_store();
    if (!s) {
        LX_CHECK(0);
        return;
    }
    reset_test_table(s);
    struct lx_error err = {0};
    struct lx_store_param a[] = {LX_SP_T("a"), LX_SP_T("ua")};
    struct lx_store_param b[] = {LX_SP_T("b"), LX_SP_T("ua")};
    struct lx_store_param a2[] = {LX_SP_T("a"), LX_SP_T("other")};
    const char *ins = "INSERT INTO lx_test_t (id, uniq) VALUES ($1, $2)";
    struct lx_store_stmt st = {ins, a, 2};
    LX_CHECK_INT(lx_store_exec_sync(s, &st, 1, NULL, &err), 0);
    st.params = a2; /* primary key */
    LX_CHECK_INT(lx_store_exec_sync(s, &st, 1, NULL, &err), LX_ECONFLICT);
    st.params = b; /* unique column */
    LX_CHECK_INT(lx_store_exec_sync(s, &st, 1, NULL, &err), LX_ECONFLICT);
    LX_CHECK(strstr(err.msg, "ua") == NULL || strstr(err.msg, "uniq") != NULL);

    /* ON CONFLICT DO NOTHING is not an error, and changes nothing. */
    struct lx_store_stmt dn = {"INSERT INTO lx_test_t (id) VALUES ($1) ON CONFLICT DO NOTHING", a,
                               1};
    struct lx_store_result *r = NULL;
    LX_CHECK_INT(lx_store_exec_sync(s, &dn, 1, &r, &err), 0);
    LX_CHECK_INT(r ? r->changes : -1, 0);
    lx_store_result_free(r);

    /* A batch is all or nothing: the first insert is rolled back with the failing second. */
    struct lx_store_param c[] = {LX_SP_T("c"), LX_SP_T("uc")};
    struct lx_store_stmt batch[] = {{ins, c, 2}, {ins, b, 2}};
    LX_CHECK_INT(lx_store_exec_sync(s, batch, 2, NULL, &err), LX_ECONFLICT);
    LX_CHECK_INT(exec1(s, "SELECT COUNT(*) AS n FROM lx_test_t", &r), 0);
    LX_CHECK_INT(lx_store_cell_int(r, 0, "n", -1), 1);
    lx_store_result_free(r);

    /* A good batch commits; the result is the last statement's. */
    struct lx_store_param d[] = {LX_SP_T("d"), LX_SP_T("ud")};
    struct lx_store_stmt good[] = {
        {ins, c, 2}, {ins, d, 2}, {"SELECT id FROM lx_test_t ORDER BY id", NULL, 0}};
    LX_CHECK_INT(lx_store_exec_sync(s, good, 3, &r, &err), 0);
    LX_CHECK_INT(r ? r->n_rows : 0, 3);
    LX_CHECK_STR(lx_store_cell(r, 2, "id"), "d");
    lx_store_result_free(r);
    lx_store_close(s);
}

/* ---- ports on a loop ---- */

struct acall {
    int order[64];
    int rc[64];
    int64_t val[64];
    int n;
};

struct aone {
    struct acall *calls;
    int index;
};

static void on_done(void *ud, int rc, const struct lx_store_result *res, const struct lx_error *err)
{
    struct aone *one = ud;
    struct acall *c = one->calls;
    LX_CHECK(rc == 0 ? res != NULL && err == NULL : res == NULL && err != NULL);
    if (c->n < 64) {
        c->order[c->n] = one->index;
        c->rc[c->n] = rc;
        c->val[c->n] = res ? lx_store_cell_int(res, 0, "v", -1) : -1;
        c->n++;
    }
}

LX_TEST(async_port)
{
    struct lx_store *s = open_store();
    if (!s) {
        LX_CHECK(0);
        return;
    }
    reset_test_table(s);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct lx_store_port *p = lx_store_port_new(s, &loop);
    struct acall calls = {0};
    struct aone ones[20];
    for (int i = 0; i < 20; i++) {
        ones[i] = (struct aone){&calls, i};
        struct lx_store_param ps[] = {LX_SP_I(i)};
        struct lx_store_stmt st = {"SELECT $1 + 1 AS v", ps, 1};
        LX_CHECK_INT(lx_store_exec(p, &st, 1, on_done, &ones[i]), 0);
    }
    /* Never inside the call. */
    LX_CHECK_INT(calls.n, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    LX_CHECK_INT(calls.n, 20);
    for (int i = 0; i < calls.n; i++) {
        LX_CHECK_INT(calls.order[i], i);
        LX_CHECK_INT(calls.rc[i], 0);
        LX_CHECK_INT(calls.val[i], i + 1);
    }
    /* A conflict arrives as a code. */
    struct aone c1 = {&calls, 100};
    struct lx_store_param k[] = {LX_SP_T("same")};
    struct lx_store_stmt ins = {"INSERT INTO lx_test_t (id) VALUES ($1)", k, 1};
    LX_CHECK_INT(lx_store_exec(p, &ins, 1, on_done, &c1), 0);
    LX_CHECK_INT(lx_store_exec(p, &ins, 1, on_done, &c1), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    LX_CHECK_INT(calls.n, 22);
    LX_CHECK_INT(calls.rc[20], 0);
    LX_CHECK_INT(calls.rc[21], LX_ECONFLICT);
    LX_CHECK_INT(lx_store_exec(p, NULL, 0, on_done, &c1), LX_EINVAL);

    lx_store_port_close(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    LX_CHECK_INT(uv_loop_close(&loop), 0);
    lx_store_close(s);
}

LX_TEST(port_close_cancels)
{
    struct lx_store *s = open_store();
    if (!s) {
        LX_CHECK(0);
        return;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct lx_store_port *p = lx_store_port_new(s, &loop);
    struct lx_store_port *other = lx_store_port_new(s, &loop);
    struct acall calls = {0}, other_calls = {0};
    struct aone ones[30];
    /* Slow statements, so that some are still queued when the port closes. */
    const char *slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                       "WHERE x < 200000) SELECT MAX(x) AS v FROM c";
    struct lx_store_stmt st = {slow, NULL, 0};
    for (int i = 0; i < 30; i++) {
        ones[i] = (struct aone){i % 3 == 0 ? &other_calls : &calls, i};
        LX_CHECK_INT(lx_store_exec(i % 3 == 0 ? other : p, &st, 1, on_done, &ones[i]), 0);
    }
    lx_store_port_close(p);
    /* Every callback of the closed port ran, once, with LX_ECANCELED. */
    LX_CHECK_INT(calls.n, 20);
    for (int i = 0; i < calls.n; i++) {
        LX_CHECK_INT(calls.rc[i], LX_ECANCELED);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    LX_CHECK_INT(calls.n, 20);
    /* The other port is untouched. */
    LX_CHECK_INT(other_calls.n, 10);
    for (int i = 0; i < other_calls.n; i++) {
        LX_CHECK_INT(other_calls.rc[i], 0);
        LX_CHECK_INT(other_calls.val[i], 200000);
    }
    /* Queued on the second port, then closed while the loop is not running. */
    struct aone late = {&other_calls, 99};
    LX_CHECK_INT(lx_store_exec(other, &st, 1, on_done, &late), 0);
    lx_store_port_close(other);
    LX_CHECK_INT(other_calls.n, 11);
    LX_CHECK_INT(other_calls.rc[10], LX_ECANCELED);
    uv_run(&loop, UV_RUN_DEFAULT);
    LX_CHECK_INT(uv_loop_close(&loop), 0);
    lx_store_close(s);
}

static void count_cb(void *ud, int rc, const struct lx_store_result *res,
                     const struct lx_error *err)
{
    (void)res;
    (void)err;
    int *counts = ud;
    counts[rc == 0 ? 0 : rc == LX_ECANCELED ? 1 : 2]++;
}

/* A store that cannot keep up refuses new batches instead of queueing without bound. */
LX_TEST(queue_bound)
{
    struct lx_store *s = open_store();
    if (!s) {
        LX_CHECK(0);
        return;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct lx_store_port *p = lx_store_port_new(s, &loop);
    int counts[3] = {0};
    struct lx_store_stmt slow = {"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                                 "WHERE x < 3000000) SELECT MAX(x) AS v FROM c",
                                 NULL, 0};
    struct lx_store_stmt quick = {"SELECT 1 AS v", NULL, 0};
    LX_CHECK_INT(lx_store_exec(p, &slow, 1, count_cb, counts), 0);
    int accepted = 1, refused = 0;
    for (int i = 0; i < LX_STORE_MAX_QUEUED + 10; i++) {
        int rc = lx_store_exec(p, &quick, 1, count_cb, counts);
        if (rc == 0) {
            accepted++;
        } else {
            LX_CHECK_INT(rc, LX_EUNAVAIL);
            refused++;
        }
    }
    LX_CHECK(refused >= 10);
    LX_CHECK(accepted <= LX_STORE_MAX_QUEUED + 1);
    lx_store_port_close(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    LX_CHECK_INT(counts[0] + counts[1] + counts[2], accepted);
    LX_CHECK_INT(counts[2], 0);
    LX_CHECK_INT(uv_loop_close(&loop), 0);
    lx_store_close(s);
}

/* Several loop threads share one store. */
struct tstate {
    struct lx_store *s;
    int ok;
};

static void on_thread_done(void *ud, int rc, const struct lx_store_result *res,
                           const struct lx_error *err)
{
    (void)err;
    struct tstate *t = ud;
    if (rc == 0 && lx_store_cell_int(res, 0, "v", 0) == 7) {
        t->ok++;
    }
}

static void thread_main(void *arg)
{
    struct tstate *t = arg;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct lx_store_port *p = lx_store_port_new(t->s, &loop);
    for (int i = 0; i < 200; i++) {
        struct lx_store_stmt st = {"SELECT 7 AS v", NULL, 0};
        if (lx_store_exec(p, &st, 1, on_thread_done, t) != 0) {
            break;
        }
        if (i % 50 == 49) {
            uv_run(&loop, UV_RUN_DEFAULT);
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    lx_store_port_close(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

LX_TEST(threads)
{
    struct lx_store *s = open_store();
    if (!s) {
        LX_CHECK(0);
        return;
    }
    struct tstate ts[3];
    uv_thread_t th[3];
    uint64_t t0 = lx_mono_ns();
    for (int i = 0; i < 3; i++) {
        ts[i] = (struct tstate){s, 0};
        uv_thread_create(&th[i], thread_main, &ts[i]);
    }
    for (int i = 0; i < 3; i++) {
        uv_thread_join(&th[i]);
        LX_CHECK_INT(ts[i].ok, 200);
    }
    printf("%s: 600 async statements from 3 loops in %.1f ms\n", g_engine,
           (double)(lx_mono_ns() - t0) / 1e6);
    lx_store_close(s);
}

/* ---- PostgreSQL outage ---- */

static int pg_ctl(const char *what)
{
    const char *ctl = getenv("LX_TEST_PG_CTL");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s >/dev/null 2>&1", ctl, what);
    return system(cmd);
}

LX_TEST(pg_outage)
{
    struct lx_store *s = open_store();
    if (!s) {
        LX_CHECK(0);
        return;
    }
    LX_CHECK(lx_store_is_up(s));
    LX_CHECK_INT(pg_ctl("stop"), 0);
    /* The first statement after the loss finds the connection dead. */
    struct lx_error err = {0};
    uint64_t t0 = lx_mono_ns();
    int rc = exec1(s, "SELECT 1 AS v", NULL);
    LX_CHECK_INT(rc, LX_EUNAVAIL);
    LX_CHECK(!lx_store_is_up(s));
    /* While down: refused at once, sync and async. */
    struct lx_store_stmt st = {"SELECT 1 AS v", NULL, 0};
    LX_CHECK_INT(lx_store_exec_sync(s, &st, 1, NULL, &err), LX_EUNAVAIL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct lx_store_port *p = lx_store_port_new(s, &loop);
    struct acall calls = {0};
    struct aone one = {&calls, 0};
    LX_CHECK_INT(lx_store_exec(p, &st, 1, on_done, &one), LX_EUNAVAIL);
    double fail_ms = (double)(lx_mono_ns() - t0) / 1e6;
    LX_CHECK(fail_ms < 1000);

    LX_CHECK_INT(pg_ctl("start"), 0);
    uint64_t t1 = lx_mono_ns();
    while (!lx_store_is_up(s) && lx_mono_ns() - t1 < 10000000000ull) {
        usleep(20000);
    }
    double back_ms = (double)(lx_mono_ns() - t1) / 1e6;
    LX_CHECK(lx_store_is_up(s));
    LX_CHECK(back_ms < 3500);
    LX_CHECK_INT(lx_store_exec(p, &st, 1, on_done, &one), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    LX_CHECK_INT(calls.n, 1);
    LX_CHECK_INT(calls.rc[0], 0);
    lx_store_port_close(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    /* A restart between two statements, while the store is up, costs no error. */
    LX_CHECK_INT(pg_ctl("stop"), 0);
    LX_CHECK_INT(pg_ctl("start"), 0);
    LX_CHECK_INT(exec1(s, "SELECT 1 AS v", NULL), 0);
    LX_CHECK(lx_store_is_up(s));
    printf("postgresql outage: failed in %.1f ms, up again %.0f ms after the restart\n", fail_ms,
           back_ms);
    lx_store_close(s);
}

/* Two instances starting together on an empty database: both open, v1 applied once. */
static void opener(void *arg)
{
    struct lx_error err = {0};
    struct lx_store **out = arg;
    *out = lx_store_open(g_url, &err);
    if (!*out) {
        fprintf(stderr, "  concurrent open: %s\n", err.msg);
    }
}

LX_TEST(concurrent_open)
{
    struct lx_store *s = open_store();
    if (!s) {
        LX_CHECK(0);
        return;
    }
    drop_all(s);
    lx_store_close(s);
    struct lx_store *a = NULL, *b = NULL;
    uv_thread_t ta, tb;
    uv_thread_create(&ta, opener, &a);
    uv_thread_create(&tb, opener, &b);
    uv_thread_join(&ta);
    uv_thread_join(&tb);
    LX_CHECK(a != NULL);
    LX_CHECK(b != NULL);
    if (a) {
        struct lx_store_result *r = NULL;
        LX_CHECK_INT(exec1(a, "SELECT COUNT(*) AS n FROM lx_schema_migrations", &r), 0);
        LX_CHECK_INT(lx_store_cell_int(r, 0, "n", -1), (int64_t)lx_store_n_migrations);
        lx_store_result_free(r);
    }
    lx_store_close(a);
    lx_store_close(b);
}

LX_TEST(open_failures)
{
    struct lx_error err = {0};
    LX_CHECK(lx_store_open("sqlite:////nonexistent-dir/x/y.db", &err) == NULL);
    LX_CHECK(err.code != 0);
    LX_CHECK(strstr(err.msg, "nonexistent-dir") != NULL);
    LX_CHECK(lx_store_open("postgresql://u:topsecret@127.0.0.1:1/db", &err) == NULL);
    LX_CHECK_INT(err.code, LX_EUNAVAIL);
    LX_CHECK(strstr(err.msg, "topsecret") == NULL);
    LX_CHECK(strstr(err.msg, "u:***@127.0.0.1:1") != NULL);
    LX_CHECK(lx_store_open("redis://h", &err) == NULL);
    LX_CHECK_INT(err.code, LX_EINVAL);
}

static int g_passed, g_total;

/*
 * Create (or drop) database `name` through the server of `url`; on create,
 * g_url becomes `url` with that database.
 */
static int with_database(const char *url, const char *name, bool create)
{
    struct lx_error err = {0};
    struct lx_store *s = lx_store_open(url, &err);
    if (!s) {
        fprintf(stderr, "postgresql: %s\n", err.msg);
        return -1;
    }
    char sql[160];
    snprintf(sql, sizeof(sql), "%s DATABASE %s%s", create ? "CREATE" : "DROP",
             create ? "" : "IF EXISTS ", name);
    if (create) {
        char drop[160];
        snprintf(drop, sizeof(drop), "DROP DATABASE IF EXISTS %s", name);
        (void)exec1(s, drop, NULL);
    }
    int rc = exec1(s, sql, NULL);
    lx_store_close(s);
    if (rc == 0 && create) {
        const char *host = strstr(url, "://");
        const char *slash = host ? strchr(host + 3, '/') : NULL;
        const char *query = slash ? strchr(slash, '?') : NULL;
        size_t head = slash ? (size_t)(slash - url) : strlen(url);
        snprintf(g_url, sizeof(g_url), "%.*s/%s%s", (int)head, url, name, query ? query : "");
    }
    return rc;
}

static void run_engine(void)
{
    int passed = 0, total = 0;
    LX_RUN(migrations);
    LX_RUN(params_and_nulls);
    LX_RUN(unicode);
    LX_RUN(conflicts_and_rollback);
    LX_RUN(async_port);
    LX_RUN(port_close_cancels);
    LX_RUN(threads);
    LX_RUN(concurrent_open);
    g_passed += passed;
    g_total += total;
}

int main(void)
{
    int passed = 0, total = 0;
    lx_alloc_hook_cjson();
    lx_log_set_level(LX_LOG_ERROR);
    LX_RUN(url_sqlite);
    LX_RUN(url_postgres);
    LX_RUN(url_bad);
    LX_RUN(url_alloc_failures);
    LX_RUN(placeholders);
    LX_RUN(null_tests);
    LX_RUN(cells);
    LX_RUN(open_failures);

    snprintf(g_dir, sizeof(g_dir), "/tmp/lx_test_store.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_url, sizeof(g_url), "sqlite:///%s/t.db", g_dir);
    run_engine();
    LX_RUN(queue_bound);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", g_dir);
    }

    const char *pg = getenv("LX_TEST_PG_URL");
    if (pg && *pg) {
        /* A database of our own, so that other test binaries may share the cluster. */
        char dbname[64];
        snprintf(dbname, sizeof(dbname), "lx_test_store_%ld", (long)getpid());
        if (with_database(pg, dbname, true) != 0) {
            printf("0 passed, 1 failed\n");
            return 1;
        }
        g_engine = "postgresql";
        run_engine();
        if (getenv("LX_TEST_PG_CTL")) {
            LX_RUN(pg_outage);
        }
        if (with_database(pg, dbname, false) != 0) {
            total++;
        }
    } else {
        printf("postgresql: LX_TEST_PG_URL not set, engine cases ran on SQLite only\n");
    }
    passed += g_passed;
    total += g_total;
    printf("%d passed, %d failed\n", passed, total - passed);
    return passed == total ? 0 : 1;
}
