/* Unit tests of the auth module (identity, cache) and the admin dispatch's pure parts. */
#include <string.h>

#include "admin/admin_int.h"
#include "auth/auth_int.h"
#include "lx_test.h"

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
        {LX_ROLE_APP_USER, false, false, false, false},
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

LX_TEST_MAIN(LX_RUN(identity_refcount), LX_RUN(cache_ttl), LX_RUN(cache_replace),
             LX_RUN(cache_invalidation), LX_RUN(cache_generation_race), LX_RUN(rbac_table),
             LX_RUN(admin_route_lookup), LX_RUN(query_strings))
