/* Unit tests of the auth module (identity, cache) and the admin dispatch's pure parts. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "auth/auth_int.h"
#include "config/config.h"
#include "lx_test.h"
#include "store/store.h"

static struct lx_identity *make_id(const char *token, const char *user, const char *team,
                                   int64_t loaded_ms)
{
    struct lx_identity *id = lx_identity_new();
    snprintf(id->token, sizeof(id->token), "%s", token);
    id->user_id = user ? lx_arena_strndup(&id->arena, user, strlen(user)) : NULL;
    id->team_id = team ? lx_arena_strndup(&id->arena, team, strlen(team)) : NULL;
    id->loaded_at_ms = loaded_ms;
    return id;
}

LX_TEST(identity_refcount)
{
    struct lx_identity *id = lx_identity_new();
    LX_CHECK(!id->is_master);
    LX_CHECK_INT(id->key.max_budget_nanos, LX_NO_LIMIT);
    LX_CHECK_INT(id->user.rpm_limit, LX_NO_LIMIT);
    LX_CHECK(lx_identity_ref(id) == id);
    lx_identity_unref(id);
    lx_identity_unref(id);
    lx_identity_unref(NULL);
    struct lx_identity *m = lx_identity_new_master();
    LX_CHECK(m->is_master);
    LX_CHECK_INT(m->role, LX_ROLE_PROXY_ADMIN);
    lx_identity_unref(m);
}

LX_TEST(cache_ttl)
{
    lx_auth_cache_set_ttl_ms(1000);
    struct lx_identity *id = make_id("aa11", "u1", NULL, 5000);
    lx_auth_cache_put(id, lx_auth_cache_gen());
    lx_identity_unref(id);
    bool fresh = false;
    struct lx_identity *got = lx_auth_cache_get("aa11", 5500, &fresh);
    LX_CHECK(got != NULL);
    LX_CHECK(fresh);
    lx_identity_unref(got);
    got = lx_auth_cache_get("aa11", 6000, &fresh);
    LX_CHECK(got != NULL); /* stale entries stay, for store outages */
    LX_CHECK(!fresh);
    lx_identity_unref(got);
    LX_CHECK(lx_auth_cache_get("bb22", 5500, &fresh) == NULL);
    lx_auth_invalidate_all();
    LX_CHECK_INT(lx_auth_cache_size(), 0);
    lx_auth_cache_set_ttl_ms(30000);
}

LX_TEST(cache_replace)
{
    struct lx_identity *a = make_id("cc33", "u1", NULL, 1);
    struct lx_identity *b = make_id("cc33", "u2", NULL, 2);
    lx_auth_cache_put(a, lx_auth_cache_gen());
    lx_auth_cache_put(b, lx_auth_cache_gen());
    LX_CHECK_INT(lx_auth_cache_size(), 1);
    bool fresh;
    struct lx_identity *got = lx_auth_cache_get("cc33", 2, &fresh);
    LX_CHECK(got == b);
    lx_identity_unref(got);
    lx_identity_unref(a);
    lx_identity_unref(b);
    lx_auth_invalidate_all();
}

LX_TEST(cache_invalidation)
{
    struct lx_identity *ids[] = {
        make_id("k1", "alice", "t1", 1), make_id("k2", "alice", NULL, 1),
        make_id("k3", "bob", "t1", 1),   make_id("k4", "bob", NULL, 1),
        make_id("k5", NULL, NULL, 1),
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(ids); i++) {
        lx_auth_cache_put(ids[i], lx_auth_cache_gen());
        lx_identity_unref(ids[i]);
    }
    LX_CHECK_INT(lx_auth_cache_size(), 5);
    bool fresh;
    lx_auth_invalidate_user("alice");
    LX_CHECK_INT(lx_auth_cache_size(), 3);
    LX_CHECK(lx_auth_cache_get("k1", 1, &fresh) == NULL);
    LX_CHECK(lx_auth_cache_get("k2", 1, &fresh) == NULL);
    lx_auth_invalidate_team("t1");
    LX_CHECK_INT(lx_auth_cache_size(), 2);
    LX_CHECK(lx_auth_cache_get("k3", 1, &fresh) == NULL);
    lx_auth_invalidate_token("k5");
    LX_CHECK_INT(lx_auth_cache_size(), 1);
    struct lx_identity *got = lx_auth_cache_get("k4", 1, &fresh);
    LX_CHECK(got != NULL);
    lx_identity_unref(got);
    lx_auth_invalidate_user(NULL); /* no-op */
    LX_CHECK_INT(lx_auth_cache_size(), 1);
    lx_auth_invalidate_all();
    LX_CHECK_INT(lx_auth_cache_size(), 0);
}

/* A lookup that read the store before an invalidation must not cache what it read. */
LX_TEST(cache_generation_race)
{
    uint64_t gen = lx_auth_cache_gen();
    lx_auth_invalidate_token("zz99");
    struct lx_identity *id = make_id("zz99", NULL, NULL, 1);
    lx_auth_cache_put(id, gen);
    lx_identity_unref(id);
    LX_CHECK_INT(lx_auth_cache_size(), 0);
}

LX_TEST(rbac_table)
{
    struct lx_identity *id = lx_identity_new();
    static const struct {
        enum lx_user_role role;
        bool admin, admin_read, self_read, self_write;
    } rows[] = {
        {LX_ROLE_PROXY_ADMIN, true, true, true, true},
        {LX_ROLE_PROXY_ADMIN_VIEWER, false, true, true, false},
        {LX_ROLE_INTERNAL_USER, false, false, true, true},
        {LX_ROLE_INTERNAL_USER_VIEWER, false, false, true, false},
        {LX_ROLE_APP_USER, false, false, true, false},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(rows); i++) {
        id->role = rows[i].role;
        LX_CHECK_INT(lx_admin_allowed(LX_PERM_ADMIN, id), rows[i].admin);
        LX_CHECK_INT(lx_admin_allowed(LX_PERM_ADMIN_READ, id), rows[i].admin_read);
        LX_CHECK_INT(lx_admin_allowed(LX_PERM_SELF_OR_READ, id), rows[i].self_read);
        LX_CHECK_INT(lx_admin_allowed(LX_PERM_SELF_WRITE, id), rows[i].self_write);
    }
    lx_identity_unref(id);
    struct lx_identity *m = lx_identity_new_master();
    LX_CHECK(lx_admin_allowed(LX_PERM_ADMIN, m));
    LX_CHECK(lx_admin_allowed(LX_PERM_SELF_WRITE, m));
    lx_identity_unref(m);
}

LX_TEST(admin_route_lookup)
{
    bool known = false;
    enum lx_http_method allowed = LX_HTTP_OTHER;
    const struct lx_admin_route *r =
        lx_admin_find(LX_STR("/key/generate"), LX_HTTP_POST, &known, &allowed);
    LX_CHECK(r != NULL);
    r = lx_admin_find(LX_STR("/key/generate"), LX_HTTP_GET, &known, &allowed);
    LX_CHECK(r == NULL);
    LX_CHECK(known);
    LX_CHECK_INT(allowed, LX_HTTP_POST);
    r = lx_admin_find(LX_STR("/key/nothing"), LX_HTTP_GET, &known, &allowed);
    LX_CHECK(r == NULL);
    LX_CHECK(!known);
    r = lx_admin_find(LX_STR("/key/sk-abc/regenerate"), LX_HTTP_POST, &known, &allowed);
    LX_CHECK(r != NULL && strcmp(r->path, "/key/regenerate") == 0);
    struct lx_str k = lx_admin__path_key(LX_STR("/v1/key/sk-abc/regenerate"));
    LX_CHECK_MEM(k.p, k.n, "sk-abc");
    LX_CHECK(lx_admin__path_key(LX_STR("/key/a/b/regenerate")).p == NULL);
    LX_CHECK(lx_admin__path_key(LX_STR("/key/regenerate")).p == NULL);
}

LX_TEST(query_strings)
{
    struct lx_str q = LX_STR("key=sk-abc%2B1&page=2&flag&user_id=a+b");
    struct lx_str v = lx_admin__query_find(q, "key");
    LX_CHECK_MEM(v.p, v.n, "sk-abc%2B1");
    v = lx_admin__query_find(q, "page");
    LX_CHECK_MEM(v.p, v.n, "2");
    v = lx_admin__query_find(q, "flag");
    LX_CHECK(v.p != NULL && v.n == 0);
    v = lx_admin__query_find(q, "pag");
    LX_CHECK(v.p == NULL);
    v = lx_admin__query_find(LX_STR(""), "key");
    LX_CHECK(v.p == NULL);
    char out[32];
    LX_CHECK(lx_admin__url_decode(LX_STR("sk-abc%2B1"), out, sizeof(out)));
    LX_CHECK_STR(out, "sk-abc+1");
    LX_CHECK(lx_admin__url_decode(LX_STR("a+b%20c"), out, sizeof(out)));
    LX_CHECK_STR(out, "a b c");
    LX_CHECK(!lx_admin__url_decode(LX_STR("bad%2"), out, sizeof(out)));
    LX_CHECK(!lx_admin__url_decode(LX_STR("bad%zz"), out, sizeof(out)));
    LX_CHECK(!lx_admin__url_decode(LX_STR("nul%00"), out, sizeof(out)));
    LX_CHECK(!lx_admin__url_decode(LX_STR("toolong"), out, 4));
}

LX_TEST(key_format_and_hash)
{
    char k1[LX_AUTH_KEY_LEN + 1], k2[LX_AUTH_KEY_LEN + 1];
    LX_CHECK_INT(lx_auth_key_generate(k1, sizeof(k1)), 0);
    LX_CHECK_INT(lx_auth_key_generate(k2, sizeof(k2)), 0);
    LX_CHECK_INT(strlen(k1), 25);
    LX_CHECK(strncmp(k1, "sk-", 3) == 0);
    LX_CHECK(strcmp(k1, k2) != 0);
    for (const char *p = k1 + 3; *p; p++) {
        LX_CHECK((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                 *p == '-' || *p == '_');
    }
    char small[10];
    LX_CHECK_INT(lx_auth_key_generate(small, sizeof(small)), LX_EIO);

    char h[65];
    lx_auth_key_hash(LX_STR("sk-1234"), h);
    /* sha256("sk-1234") */
    LX_CHECK_STR(h, "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b");
    LX_CHECK(lx_auth_is_token(lx_str_c(h)));
    LX_CHECK(!lx_auth_is_token(LX_STR("sk-1234")));
    char t[65];
    lx_auth_token_of(lx_str_c(h), t);
    LX_CHECK_STR(t, h);
    lx_auth_token_of(LX_STR("sk-1234"), t);
    LX_CHECK_STR(t, h);

    char m[32];
    lx_auth_key_mask(LX_STR("sk-abcdefghijwxyz"), m, sizeof(m));
    LX_CHECK_STR(m, "sk-...wxyz");
    lx_auth_key_mask(LX_STR("sk-ab"), m, sizeof(m));
    LX_CHECK_STR(m, "sk-...");
}

static void set_models(struct lx_identity *id, struct lx_strlist *l, const char **names, size_t n)
{
    l->items = lx_arena_alloc(&id->arena, (n ? n : 1) * sizeof(*l->items));
    l->n = n;
    for (size_t i = 0; i < n; i++) {
        l->items[i] = names[i];
    }
}

LX_TEST(model_intersection)
{
    struct lx_identity *id = lx_identity_new();
    char msg[512];
    const char *type = NULL;
    /* Every list empty: everything. */
    LX_CHECK(lx_auth_model_allowed(id, LX_STR("gpt-4"), msg, sizeof(msg), &type));

    const char *key_models[] = {"gpt-4", "gpt-3.5-turbo", "openai/*"};
    set_models(id, &id->key.models, key_models, 3);
    LX_CHECK(lx_auth_model_allowed(id, LX_STR("gpt-4"), msg, sizeof(msg), &type));
    LX_CHECK(lx_auth_model_allowed(id, LX_STR("openai/gpt-4o"), msg, sizeof(msg), &type));
    LX_CHECK(!lx_auth_model_allowed(id, LX_STR("claude-3"), msg, sizeof(msg), &type));
    LX_CHECK_STR(type, "key_model_access_denied");
    LX_CHECK_STR(msg, "key not allowed to access model. This key can only access "
                      "models=['gpt-4', 'gpt-3.5-turbo', 'openai/*']. Tried to access claude-3");

    /* The user's list narrows the key's. */
    const char *user_models[] = {"gpt-3.5-turbo"};
    id->has_user = true;
    set_models(id, &id->user.models, user_models, 1);
    LX_CHECK(lx_auth_model_allowed(id, LX_STR("gpt-3.5-turbo"), msg, sizeof(msg), &type));
    LX_CHECK(!lx_auth_model_allowed(id, LX_STR("gpt-4"), msg, sizeof(msg), &type));
    LX_CHECK_STR(type, "user_model_access_denied");

    /* And the team's. */
    const char *team_models[] = {"gpt-4"};
    id->has_team = true;
    set_models(id, &id->team.models, team_models, 1);
    LX_CHECK(!lx_auth_model_allowed(id, LX_STR("gpt-3.5-turbo"), msg, sizeof(msg), &type));
    LX_CHECK_STR(type, "team_model_access_denied");

    /* all-team-models defers the key to its team; all-proxy-models allows all. */
    const char *defer[] = {"all-team-models"};
    set_models(id, &id->key.models, defer, 1);
    const char *everything[] = {"all-proxy-models"};
    set_models(id, &id->user.models, everything, 1);
    LX_CHECK(lx_auth_model_allowed(id, LX_STR("gpt-4"), msg, sizeof(msg), &type));
    LX_CHECK(!lx_auth_model_allowed(id, LX_STR("claude-3"), msg, sizeof(msg), &type));
    LX_CHECK_STR(type, "team_model_access_denied");
    lx_identity_unref(id);

    struct lx_identity *m = lx_identity_new_master();
    set_models(m, &m->key.models, key_models, 1);
    LX_CHECK(lx_auth_model_allowed(m, LX_STR("anything"), msg, sizeof(msg), &type));
    lx_identity_unref(m);
}

LX_TEST(expiry_and_blocking)
{
    struct lx_identity *id = lx_identity_new();
    char msg[256];
    LX_CHECK(lx_auth_check(id, 1000, msg, sizeof(msg)) == NULL);
    id->expires = 2000;
    LX_CHECK(lx_auth_check(id, 1999, msg, sizeof(msg)) == NULL);
    const char *why = lx_auth_check(id, 2000, msg, sizeof(msg));
    LX_CHECK(why && strstr(why, "Expired Key") != NULL);
    LX_CHECK(why && strstr(why, "1970-01-01T00:33:20+00:00") != NULL);
    id->expires = 0;
    id->blocked = true;
    why = lx_auth_check(id, 1000, msg, sizeof(msg));
    LX_CHECK(why && strstr(why, "Key is blocked") != NULL);
    lx_identity_unref(id);
}

LX_TEST(role_names)
{
    static const char *names[] = {"proxy_admin", "proxy_admin_viewer", "internal_user",
                                  "internal_user_viewer", "app_user"};
    for (size_t i = 0; i < LX_ARRAY_LEN(names); i++) {
        enum lx_user_role r = lx_user_role_parse(names[i]);
        LX_CHECK(r != LX_ROLE_UNSET);
        LX_CHECK_STR(lx_user_role_name(r), names[i]);
    }
    LX_CHECK_INT(lx_user_role_parse("root"), LX_ROLE_UNSET);
    LX_CHECK_INT(lx_user_role_parse(""), LX_ROLE_UNSET);
}

/* A store row as lx_auth_lookup_sql returns it. */
LX_TEST(identity_from_row)
{
    char *cols[] = {"token",
                    "key_name",
                    "key_alias",
                    "user_id",
                    "team_id",
                    "models",
                    "max_budget_nanos",
                    "spend_nanos",
                    "rpm_limit",
                    "model_rpm_limit",
                    "model_tpm_limit",
                    "expires",
                    "blocked",
                    "u_user_id",
                    "u_user_role",
                    "u_models",
                    "u_max_budget_nanos",
                    "t_team_id",
                    "t_models",
                    "t_blocked"};
    char *cells[] = {"88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
                     "sk-...1234",
                     "alias",
                     "alice",
                     "t1",
                     "[\"gpt-4o\",\"gpt-4\"]",
                     "5000000000",
                     "12",
                     "7",
                     "{\"gpt-4o\":5}",
                     "{\"gpt-4o\":50,\"gpt-4\":60}",
                     "1900000000",
                     "0",
                     "alice",
                     "proxy_admin_viewer",
                     "[\"gpt-4o\"]",
                     NULL,
                     "t1",
                     "[]",
                     "1"};
    struct lx_store_result r = {1, LX_ARRAY_LEN(cols), cols, cells, 0};
    struct lx_identity *id = lx_auth_identity_from_row(&r, 0);
    LX_CHECK(id != NULL);
    if (!id) {
        return;
    }
    LX_CHECK_STR(id->token, cells[0]);
    LX_CHECK_STR(id->key_alias, "alias");
    LX_CHECK_STR(id->user_id, "alice");
    LX_CHECK_STR(id->team_id, "t1");
    LX_CHECK_INT(id->key.models.n, 2);
    LX_CHECK_STR(id->key.models.items[1], "gpt-4");
    LX_CHECK_INT(id->key.max_budget_nanos, 5000000000LL);
    LX_CHECK_INT(id->key.spend_nanos, 12);
    LX_CHECK_INT(id->key.rpm_limit, 7);
    LX_CHECK_INT(id->key.tpm_limit, LX_NO_LIMIT);
    LX_CHECK_INT(id->expires, 1900000000LL);
    LX_CHECK(id->has_user);
    LX_CHECK_INT(id->role, LX_ROLE_PROXY_ADMIN_VIEWER);
    LX_CHECK_INT(id->user.models.n, 1);
    LX_CHECK_INT(id->user.max_budget_nanos, LX_NO_LIMIT);
    LX_CHECK(id->has_team);
    LX_CHECK(id->blocked); /* the team is blocked */
    LX_CHECK_INT(id->n_model_limits, 2);
    for (size_t i = 0; i < id->n_model_limits; i++) {
        if (strcmp(id->model_limits[i].model, "gpt-4o") == 0) {
            LX_CHECK_INT(id->model_limits[i].rpm, 5);
            LX_CHECK_INT(id->model_limits[i].tpm, 50);
        } else {
            LX_CHECK_STR(id->model_limits[i].model, "gpt-4");
            LX_CHECK_INT(id->model_limits[i].rpm, LX_NO_LIMIT);
            LX_CHECK_INT(id->model_limits[i].tpm, 60);
        }
    }
    lx_identity_unref(id);

    /* A malformed models list or token is refused, not half-read. */
    cells[5] = "{not json";
    LX_CHECK(lx_auth_identity_from_row(&r, 0) == NULL);
    cells[5] = "[]";
    cells[0] = "short";
    LX_CHECK(lx_auth_identity_from_row(&r, 0) == NULL);
}

/* The store URL the store-backed cases run on: LX_TEST_PG_URL when set, else a SQLite file. */
static char g_url[512];
static char g_dir[64];

static struct lx_store *open_store(void)
{
    struct lx_error err = {0};
    struct lx_store *s = lx_store_open(g_url, &err);
    if (!s) {
        fprintf(stderr, "  store: %s\n", err.msg);
    }
    return s;
}

static int64_t query_int(struct lx_store *s, const char *sql, const char *arg)
{
    struct lx_store_param p[] = {LX_SP_T(arg)};
    struct lx_store_stmt st = {sql, p, 1};
    struct lx_store_result *r = NULL;
    struct lx_error err = {0};
    if (lx_store_exec_sync(s, &st, 1, &r, &err)) {
        return -999;
    }
    int64_t v = r->n_rows ? lx_store_cell_int(r, 0, "v", -998) : -997;
    lx_store_result_free(r);
    return v;
}

/* user_config upserts, then --generate_key's key, read back as an identity. */
LX_TEST(sync_users_and_generate)
{
    struct lx_store *s = open_store();
    LX_CHECK(s != NULL);
    if (!s) {
        return;
    }
    static const char yaml1[] = "user_config:\n"
                                "  - user_id: cli-u1\n"
                                "    user_role: app_user\n"
                                "    max_budget: 2.5\n"
                                "    models: [\"gpt-4o\"]\n"
                                "    rpm_limit: 10\n";
    static const char yaml2[] = "user_config:\n"
                                "  - user_id: cli-u1\n"
                                "    models: [\"gpt-4o\", \"gpt-4\"]\n";
    struct lx_error err = {0};
    struct lx_config *c1 = lx_config_load_string("t1", yaml1, sizeof(yaml1) - 1, &err);
    struct lx_config *c2 = lx_config_load_string("t2", yaml2, sizeof(yaml2) - 1, &err);
    LX_CHECK(c1 && c2);
    if (!c1 || !c2) {
        lx_store_close(s);
        return;
    }
    LX_CHECK_INT(lx_auth_sync_users(s, c1, &err), 0);
    /* Stored spend survives the next start; values absent from YAML are kept. */
    struct lx_store_param p[] = {LX_SP_T("cli-u1")};
    struct lx_store_stmt st = {"UPDATE lx_users SET spend_nanos = 77 WHERE user_id = $1", p, 1};
    LX_CHECK_INT(lx_store_exec_sync(s, &st, 1, NULL, &err), 0);
    LX_CHECK_INT(lx_auth_sync_users(s, c2, &err), 0);
    LX_CHECK_INT(query_int(s, "SELECT spend_nanos AS v FROM lx_users WHERE user_id = $1", "cli-u1"),
                 77);
    LX_CHECK_INT(
        query_int(s, "SELECT max_budget_nanos AS v FROM lx_users WHERE user_id = $1", "cli-u1"),
        2500000000LL);
    LX_CHECK_INT(query_int(s, "SELECT rpm_limit AS v FROM lx_users WHERE user_id = $1", "cli-u1"),
                 10);

    char key[64];
    LX_CHECK_INT(lx_auth_generate_user_key(s, "cli-u1", key, sizeof(key), &err), 0);
    LX_CHECK(strncmp(key, "sk-", 3) == 0 && strlen(key) == 25);
    LX_CHECK_INT(lx_auth_generate_user_key(s, "nobody", key, sizeof(key), &err), LX_ENOTFOUND);
    LX_CHECK(strstr(err.msg, "unknown user 'nobody'") != NULL);
    LX_CHECK_INT(lx_auth_generate_user_key(s, "cli-u1", key, sizeof(key), &err), 0);

    /* The request path's statement reads it back with its user. */
    char token[65];
    lx_auth_key_hash(lx_str_c(key), token);
    struct lx_store_param tp[] = {{LX_SP_TEXT, token, 0}};
    struct lx_store_stmt q = {lx_auth_lookup_sql, tp, 1};
    struct lx_store_result *r = NULL;
    LX_CHECK_INT(lx_store_exec_sync(s, &q, 1, &r, &err), 0);
    if (r) {
        LX_CHECK_INT(r->n_rows, 1);
        struct lx_identity *id = r->n_rows ? lx_auth_identity_from_row(r, 0) : NULL;
        LX_CHECK(id != NULL);
        if (id) {
            LX_CHECK_STR(id->user_id, "cli-u1");
            LX_CHECK_INT(id->role, LX_ROLE_APP_USER);
            LX_CHECK_INT(id->key.models.n, 2);
            LX_CHECK_INT(id->user.spend_nanos, 77);
            LX_CHECK_INT(id->key.max_budget_nanos, 2500000000LL);
            LX_CHECK(!id->has_team);
            lx_identity_unref(id);
        }
        lx_store_result_free(r);
    }
    LX_CHECK_INT(query_int(s,
                           "SELECT COUNT(*) AS v FROM lx_audit_log WHERE action = 'created' AND "
                           "object_id = $1",
                           token),
                 1);
    lx_config_unref(c1);
    lx_config_unref(c2);
    lx_store_close(s);
}

static void store_setup(void)
{
    const char *pg = getenv("LX_TEST_PG_URL");
    if (pg && pg[0]) {
        snprintf(g_url, sizeof(g_url), "%s", pg);
        return;
    }
    snprintf(g_dir, sizeof(g_dir), "/tmp/lx-test-auth-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(g_url, sizeof(g_url), "sqlite:///%s/auth.db", g_dir);
}

static void store_teardown(void)
{
    static const char *files[] = {"auth.db", "auth.db-wal", "auth.db-shm"};
    if (!g_dir[0]) {
        return;
    }
    for (size_t i = 0; i < LX_ARRAY_LEN(files); i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s/%s", g_dir, files[i]);
        unlink(p);
    }
    rmdir(g_dir);
}

LX_TEST_MAIN(store_setup(), LX_RUN(sync_users_and_generate), LX_RUN(identity_from_row),
             LX_RUN(key_format_and_hash), LX_RUN(model_intersection), LX_RUN(expiry_and_blocking),
             LX_RUN(role_names), LX_RUN(identity_refcount), LX_RUN(cache_ttl),
             LX_RUN(cache_replace), LX_RUN(cache_invalidation), LX_RUN(cache_generation_race),
             LX_RUN(rbac_table), LX_RUN(admin_route_lookup), LX_RUN(query_strings),
             store_teardown())
