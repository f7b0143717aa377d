/*
 * /user/new, /user/info, /user/update, /user/delete, /user/list: LiteLLM's
 * internal-user endpoints over lx_users, with team memberships in
 * lx_team_members and the user's keys in lx_keys.
 *
 * Every change is one store batch (one transaction) that also writes its
 * audit row, and ends with a SELECT of the changed record so the answer shows
 * what the database now holds. Lookups that need several result sets (a user
 * with its keys and teams) chain round trips through ctx->ud. As in LiteLLM,
 * /user/new also creates a key for the user unless auto_create_key is false,
 * and /user/delete deletes the user's keys and memberships with it.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "admin/admin_int.h"
#include "auth/auth.h"
#include "core/alloc.h"
#include "core/rand.h"
#include "core/time.h"
#include "log/log.h"

#define MAX_IDS 1000
#define MAX_ID_LEN 512

/* ---- shared field checks ---- */

bool lx_admin__valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_ID_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

int lx_admin__field_id(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                       const char **out, bool *out_present)
{
    bool present = false;
    if (lx_admin_field_str(ctx, obj, name, out, &present)) {
        return -1;
    }
    if (present && !lx_admin__valid_id(*out)) {
        lx_admin_respond_error_param(ctx, 400, name,
                                     "%s must be 1 to %d characters without control characters",
                                     name, MAX_ID_LEN);
        return -1;
    }
    if (out_present) {
        *out_present = present;
    }
    return 0;
}

int lx_admin__field_limit(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                          long long *out, bool *out_present)
{
    bool present = false;
    if (lx_admin_field_int(ctx, obj, name, out, &present)) {
        return -1;
    }
    if (present && *out < 0) {
        lx_admin_respond_error_param(ctx, 400, name, "%s must be >= 0", name);
        return -1;
    }
    if (out_present) {
        *out_present = present;
    }
    return 0;
}

int lx_admin__field_role(struct lx_admin_ctx *ctx, const cJSON *obj, const char **out,
                         bool *out_present)
{
    bool present = false;
    if (lx_admin_field_str(ctx, obj, "user_role", out, &present)) {
        return -1;
    }
    if (present && lx_user_role_parse(*out) == LX_ROLE_UNSET) {
        lx_admin_respond_error_param(ctx, 400, "user_role",
                                     "Invalid user_role. Must be one of proxy_admin, "
                                     "proxy_admin_viewer, internal_user, internal_user_viewer, "
                                     "app_user");
        return -1;
    }
    if (out_present) {
        *out_present = present;
    }
    return 0;
}

/* A new virtual key: "sk-" + 24 url-safe characters, its SHA-256 hex and masked name. */
static int new_key(char key[28], char token[65], char name[16])
{
    unsigned char raw[18], md[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return LX_EINTERNAL;
    }
    static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    memcpy(key, "sk-", 3);
    for (size_t i = 0; i < 6; i++) {
        unsigned v = (unsigned)raw[3 * i] << 16 | (unsigned)raw[3 * i + 1] << 8 | raw[3 * i + 2];
        for (size_t k = 0; k < 4; k++) {
            key[3 + 4 * i + k] = b64u[(v >> (18 - 6 * k)) & 63];
        }
    }
    key[27] = '\0';
    unsigned int len = 0;
    if (!EVP_Digest(key, 27, md, &len, EVP_sha256(), NULL) || len != 32) {
        return LX_EINTERNAL;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        token[2 * i] = hex[md[i] >> 4];
        token[2 * i + 1] = hex[md[i] & 15];
    }
    token[64] = '\0';
    snprintf(name, 16, "sk-...%s", key + 23);
    return 0;
}

/* ---- /user/new ---- */

struct user_new {
    const char *user_id, *user_email, *user_alias, *user_role;
    const char *key_alias, *key_duration;
    long long key_duration_s;
    struct lx_admin__limits lim;
    const char **teams;      /* team ids */
    const char **team_roles; /* "user" or "admin", per team */
    size_t n_teams;
    bool auto_create_key;
    char key[28], token[65], key_name[16];
    int64_t expires;
};

static void user_new_done(void *ud, int rc, const struct lx_store_result *res,
                          const struct lx_error *err)
{
    struct lx_admin_ctx *ctx = ud;
    struct user_new *u = ctx->ud;
    if (rc == LX_ECONFLICT) {
        lx_admin_respond_error_param(ctx, 409, "user_id", "User with id %s already exists",
                                     u->user_id);
        return;
    }
    if (rc) {
        lx_admin_respond_store_error(ctx, rc, err);
        return;
    }
    if (res->n_rows == 0) {
        lx_admin_respond_error(ctx, 500, "the new user was not found after its creation");
        return;
    }
    cJSON *o = lx_admin__row_json(res, 0, NULL);
    lx_admin__add_strlist(o, "teams", u->teams, u->n_teams);
    if (u->auto_create_key) {
        cJSON_AddStringToObject(o, "key", u->key);
        cJSON_AddStringToObject(o, "key_name", u->key_name);
        if (u->key_alias) {
            cJSON_AddStringToObject(o, "key_alias", u->key_alias);
        } else {
            cJSON_AddNullToObject(o, "key_alias");
        }
        if (u->expires) {
            char iso[32];
            lx_admin__iso_time(u->expires, iso);
            cJSON_AddStringToObject(o, "expires", iso);
        } else {
            cJSON_AddNullToObject(o, "expires");
        }
    } else {
        cJSON_AddNullToObject(o, "key");
    }
    lx_auth_invalidate_user(u->user_id);
    lx_admin_answer(ctx, o);
}

static void user_new_insert(struct lx_admin_ctx *ctx)
{
    struct user_new *u = ctx->ud;
    int64_t now = lx_wall_s();
    struct lx_admin__batch b;
    lx_admin__batch_init(&b, ctx, 4 + u->n_teams);

    struct lx_store_param *p = lx_admin__batch_add(
        &b,
        "INSERT INTO lx_users (user_id, user_email, user_alias, user_role, models, "
        "max_budget_nanos, soft_budget_nanos, budget_duration, budget_reset_at, rpm_limit, "
        "tpm_limit, max_parallel_requests, metadata, created_at, updated_at) VALUES ($1, $2, $3, "
        "$4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
        14);
    p[0] = LX_SP_T(u->user_id);
    p[1] = LX_SP_T(u->user_email);
    p[2] = LX_SP_T(u->user_alias);
    p[3] = LX_SP_T(u->user_role);
    lx_admin__limits_params(&u->lim, NULL, now, p + 4);
    p[12] = LX_SP_T(u->lim.metadata);
    p[13] = LX_SP_I(now);

    /* Memberships of teams that exist; LiteLLM skips unknown teams too. */
    for (size_t i = 0; i < u->n_teams; i++) {
        p = lx_admin__batch_add(&b,
                                "INSERT INTO lx_team_members (team_id, user_id, role, created_at) "
                                "SELECT team_id, $2, $4, $3 FROM lx_teams WHERE team_id = $1 "
                                "ON CONFLICT (team_id, user_id) DO NOTHING",
                                4);
        p[0] = LX_SP_T(u->teams[i]);
        p[3] = LX_SP_T(u->team_roles[i]);
        p[1] = LX_SP_T(u->user_id);
        p[2] = LX_SP_I(now);
    }

    if (u->auto_create_key) {
        if (new_key(u->key, u->token, u->key_name)) {
            lx_admin_respond_error(ctx, 500, "cannot generate a key");
            return;
        }
        u->expires = u->key_duration ? now + u->key_duration_s : 0;
        p = lx_admin__batch_add(
            &b,
            "INSERT INTO lx_keys (token, key_name, key_alias, user_id, models, metadata, "
            "expires, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, '{}', $6, "
            "$7, $8, $8)",
            8);
        p[0] = LX_SP_T(u->token);
        p[1] = LX_SP_T(u->key_name);
        p[2] = LX_SP_T(u->key_alias);
        p[3] = LX_SP_T(u->user_id);
        p[4] = LX_SP_T(u->lim.models);
        p[5] = u->expires ? LX_SP_I(u->expires) : LX_SP_NUL;
        p[6] = LX_SP_T(lx_admin_caller_name(ctx));
        p[7] = LX_SP_I(now);
    }

    cJSON *after = cJSON_CreateObject();
    cJSON_AddStringToObject(after, "user_id", u->user_id);
    if (u->user_email) {
        cJSON_AddStringToObject(after, "user_email", u->user_email);
    }
    cJSON_AddStringToObject(after, "user_role", u->user_role);
    cJSON_AddItemToObject(after, "models", cJSON_Parse(u->lim.models));
    lx_admin__batch_audit(&b, "created", "lx_users", u->user_id, NULL, after);
    cJSON_Delete(after);

    p = lx_admin__batch_add(&b, "SELECT * FROM lx_users WHERE user_id = $1", 1);
    p[0] = LX_SP_T(u->user_id);

    lx_admin__batch_exec(&b, user_new_done);
}

static void user_new_checked(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    for (size_t i = 0; i < res->n_rows; i++) {
        const char *k = lx_store_cell(res, i, "k");
        const char *v = lx_store_cell(res, i, "v");
        if (!k || !v) {
            continue;
        }
        if (strcmp(k, "id") == 0) {
            lx_admin_respond_error_param(ctx, 409, "user_id", "User with id %s already exists", v);
            return;
        }
        if (strcmp(k, "email") == 0) {
            lx_admin_respond_error_param(ctx, 409, "user_email",
                                         "User with email %s already exists", v);
            return;
        }
        if (strcmp(k, "alias") == 0) {
            lx_admin_respond_error_param(ctx, 409, "key_alias", "Key with alias %s already exists",
                                         v);
            return;
        }
    }
    user_new_insert(ctx);
}

/*
 * "teams": team ids, or LiteLLM's NewUserRequestTeam objects ({"team_id",
 * "user_role": "user" | "admin"}).
 */
static int parse_teams(struct lx_admin_ctx *ctx, const cJSON *body, struct user_new *u)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "teams");
    if (!v || cJSON_IsNull(v)) {
        return 0;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > MAX_IDS) {
        lx_admin_respond_error_param(ctx, 400, "teams",
                                     "teams must be a list of team ids or {\"team_id\", "
                                     "\"user_role\"} objects");
        return -1;
    }
    size_t n = (size_t)cJSON_GetArraySize(v);
    u->teams = lx_arena_alloc(&ctx->arena, (n + 1) * sizeof(*u->teams));
    u->team_roles = lx_arena_alloc(&ctx->arena, (n + 1) * sizeof(*u->team_roles));
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        const cJSON *id = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "team_id") : it;
        const cJSON *role =
            cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "user_role") : NULL;
        const char *r = cJSON_IsString(role) ? role->valuestring : "user";
        if (!cJSON_IsString(id) || !lx_admin__valid_id(id->valuestring) ||
            (role && !cJSON_IsNull(role) && !cJSON_IsString(role)) ||
            (strcmp(r, "user") != 0 && strcmp(r, "admin") != 0)) {
            lx_admin_respond_error_param(ctx, 400, "teams",
                                         "teams: each entry is a team id or {\"team_id\", "
                                         "\"user_role\": \"user\" | \"admin\"}");
            return -1;
        }
        u->teams[u->n_teams] = lx_admin__dup(ctx, id->valuestring);
        u->team_roles[u->n_teams++] = strcmp(r, "admin") == 0 ? "admin" : "user";
    }
    return 0;
}

void lx_admin__user_new(struct lx_admin_ctx *ctx)
{
    struct user_new *u = lx_admin__state(ctx, sizeof(*u));
    struct lx_admin__limits *l = &u->lim;
    lx_admin__limits_init(l);
    u->auto_create_key = true;
    const cJSON *body = ctx->body;
    const char *team_id = NULL;
    bool present = false;
    if (lx_admin__field_id(ctx, body, "user_id", &u->user_id, NULL) ||
        lx_admin_field_str(ctx, body, "user_email", &u->user_email, NULL) ||
        lx_admin_field_str(ctx, body, "user_alias", &u->user_alias, NULL) ||
        lx_admin__field_role(ctx, body, &u->user_role, NULL) ||
        lx_admin_field_strlist_json(ctx, body, "models", &l->models, NULL) ||
        lx_admin_field_money(ctx, body, "max_budget", &l->max_budget, NULL) ||
        lx_admin_field_money(ctx, body, "soft_budget", &l->soft_budget, NULL) ||
        lx_admin_field_duration(ctx, body, "budget_duration", &l->budget_duration, &l->budget_s,
                                NULL) ||
        lx_admin__field_limit(ctx, body, "rpm_limit", &l->rpm, NULL) ||
        lx_admin__field_limit(ctx, body, "tpm_limit", &l->tpm, NULL) ||
        lx_admin__field_limit(ctx, body, "max_parallel_requests", &l->mpr, NULL) ||
        lx_admin_field_object_json(ctx, body, "metadata", &l->metadata, NULL) ||
        parse_teams(ctx, body, u) || lx_admin__field_id(ctx, body, "team_id", &team_id, NULL) ||
        lx_admin_field_bool(ctx, body, "auto_create_key", &u->auto_create_key, NULL) ||
        lx_admin_field_str(ctx, body, "key_alias", &u->key_alias, NULL) ||
        lx_admin_field_duration(ctx, body, "duration", &u->key_duration, &u->key_duration_s,
                                &present)) {
        return;
    }
    if (!u->user_id) {
        char id[37];
        lx_uuid4(id);
        u->user_id = lx_admin__dup(ctx, id);
    }
    if (!u->user_role) {
        u->user_role = "internal_user";
    }
    if (!l->models) {
        l->models = "[]";
    }
    if (!l->metadata) {
        l->metadata = "{}";
    }
    if (team_id) {
        /* The deprecated single team_id joins the teams list. */
        const char **t = lx_arena_alloc(&ctx->arena, (u->n_teams + 1) * sizeof(*t));
        const char **r = lx_arena_alloc(&ctx->arena, (u->n_teams + 1) * sizeof(*r));
        if (u->n_teams) {
            memcpy(t, u->teams, u->n_teams * sizeof(*t));
            memcpy(r, u->team_roles, u->n_teams * sizeof(*r));
        }
        t[u->n_teams] = team_id;
        r[u->n_teams++] = "user";
        u->teams = t;
        u->team_roles = r;
    }
    struct lx_store_param p[3] = {LX_SP_T(u->user_id), LX_SP_T(u->user_email),
                                  LX_SP_T(u->auto_create_key ? u->key_alias : NULL)};
    struct lx_store_stmt s = {
        "SELECT 'id' AS k, user_id AS v FROM lx_users WHERE user_id = $1 "
        "UNION ALL SELECT 'email', user_email FROM lx_users WHERE lower(user_email) = lower($2) "
        "UNION ALL SELECT 'alias', key_alias FROM lx_keys WHERE key_alias = $3",
        p, 3};
    lx_admin_run(ctx, &s, 1, user_new_checked);
}

/* ---- /user/info ---- */

struct user_info {
    const char *user_id;
    cJSON *info; /* ctx->doc.user_info (borrowed from it) */
};

static void user_info_teams(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct user_info *u = ctx->ud;
    cJSON *teams = cJSON_AddArrayToObject(ctx->doc, "teams");
    cJSON *ids = u->info ? cJSON_AddArrayToObject(u->info, "teams") : NULL;
    for (size_t i = 0; i < res->n_rows; i++) {
        cJSON_AddItemToArray(teams, lx_admin__row_json(res, i, NULL));
        if (ids) {
            cJSON_AddItemToArray(ids, cJSON_CreateString(lx_store_cell(res, i, "team_id")));
        }
    }
    lx_admin_answer(ctx, ctx->doc);
}

static void user_info_keys(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct user_info *u = ctx->ud;
    cJSON *keys = cJSON_AddArrayToObject(ctx->doc, "keys");
    for (size_t i = 0; i < res->n_rows; i++) {
        cJSON_AddItemToArray(keys, lx_admin__row_json(res, i, NULL));
    }
    struct lx_store_param p[1] = {LX_SP_T(u->user_id)};
    struct lx_store_stmt s = {
        u->user_id ? "SELECT t.* FROM lx_teams t JOIN lx_team_members m ON m.team_id = t.team_id "
                     "WHERE m.user_id = $1 ORDER BY t.team_alias, t.team_id"
                   : "SELECT * FROM lx_teams ORDER BY team_alias, team_id LIMIT 1000",
        p, u->user_id ? 1 : 0};
    lx_admin_run(ctx, &s, 1, user_info_teams);
}

static void user_info_row(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct user_info *u = ctx->ud;
    if (u->user_id && res->n_rows == 0) {
        lx_admin_respond_error_param(ctx, 404, "user_id", "User %s not found", u->user_id);
        return;
    }
    ctx->doc = cJSON_CreateObject();
    if (u->user_id) {
        cJSON_AddStringToObject(ctx->doc, "user_id", u->user_id);
        u->info = lx_admin__row_json(res, 0, NULL);
        cJSON_AddItemToObject(ctx->doc, "user_info", u->info);
    } else {
        cJSON_AddNullToObject(ctx->doc, "user_id");
        cJSON_AddNullToObject(ctx->doc, "user_info");
    }
    struct lx_store_param p[1] = {LX_SP_T(u->user_id)};
    struct lx_store_stmt s = {u->user_id
                                  ? "SELECT * FROM lx_keys WHERE user_id = $1 ORDER BY created_at"
                                  : "SELECT * FROM lx_keys ORDER BY created_at LIMIT 1000",
                              p, u->user_id ? 1 : 0};
    lx_admin_run(ctx, &s, 1, user_info_keys);
}

void lx_admin__user_info(struct lx_admin_ctx *ctx)
{
    struct user_info *u = lx_admin__state(ctx, sizeof(*u));
    u->user_id = lx_admin_query(ctx, "user_id");
    if (u->user_id && !*u->user_id) {
        u->user_id = NULL;
    }
    const struct lx_identity *c = ctx->caller;
    if (!u->user_id && !lx_admin_can_read_all(c)) {
        u->user_id = c->user_id;
        if (!u->user_id) {
            lx_admin_respond_error_param(ctx, 400, "user_id",
                                         "user_id is required: this key has no user");
            return;
        }
    }
    if (u->user_id && !lx_admin_can_read_all(c) &&
        (!c->user_id || strcmp(c->user_id, u->user_id))) {
        lx_admin_respond_error(ctx, 403,
                               "User=%s is not allowed to view the info of user_id=%s: only "
                               "admins can see other users",
                               c->user_id ? c->user_id : "(none)", u->user_id);
        return;
    }
    struct lx_store_param p[1] = {LX_SP_T(u->user_id)};
    struct lx_store_stmt s = {"SELECT * FROM lx_users WHERE user_id = $1", p, 1};
    if (!u->user_id) {
        /* An admin without a user: every key and team, as LiteLLM's admin view. */
        s.sql = "SELECT 1 AS one";
        s.n_params = 0;
    }
    lx_admin_run(ctx, &s, 1, user_info_row);
}

/* ---- /user/update ---- */

struct user_update {
    const char *by_id, *by_email;
    const char *user_id;
    cJSON *before;
};

static void user_update_done(void *ud, int rc, const struct lx_store_result *res,
                             const struct lx_error *err)
{
    struct lx_admin_ctx *ctx = ud;
    struct user_update *u = ctx->ud;
    if (rc == LX_ECONFLICT) {
        lx_admin_respond_error(ctx, 409, "conflict with an existing user");
        return;
    }
    if (rc) {
        lx_admin_respond_store_error(ctx, rc, err);
        return;
    }
    lx_auth_invalidate_user(u->user_id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "user_id", u->user_id);
    cJSON_AddItemToObject(o, "data",
                          res->n_rows ? lx_admin__row_json(res, 0, NULL) : cJSON_CreateNull());
    lx_admin_answer(ctx, o);
}

static void user_update_row(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct user_update *u = ctx->ud;
    if (res->n_rows == 0) {
        if (u->by_id) {
            lx_admin_respond_error_param(ctx, 404, "user_id", "User %s not found", u->by_id);
        } else {
            lx_admin_respond_error_param(ctx, 404, "user_email", "User with email %s not found",
                                         u->by_email);
        }
        return;
    }
    u->user_id = lx_admin__dup(ctx, lx_store_cell(res, 0, "user_id"));
    const cJSON *body = ctx->body;
    const char *email = NULL, *alias = NULL, *role = NULL;
    int64_t spend = 0;
    bool has_email = false, has_alias = false, has_role = false, has_spend = false;
    struct lx_admin__limits l;
    lx_admin__limits_init(&l);
    if ((u->by_id && lx_admin_field_str(ctx, body, "user_email", &email, &has_email)) ||
        lx_admin_field_str(ctx, body, "user_alias", &alias, &has_alias) ||
        lx_admin__field_role(ctx, body, &role, &has_role) ||
        lx_admin__field_limits(ctx, body, &l) ||
        lx_admin_field_money(ctx, body, "spend", &spend, &has_spend)) {
        return;
    }
    /* LiteLLM ignores an empty models list. */
    if (l.has_models && strcmp(l.models, "[]") == 0) {
        l.has_models = false;
    }
    int64_t now = lx_wall_s();
    struct lx_admin__batch b;
    lx_admin__batch_init(&b, ctx, 3);
    struct lx_store_param *p = lx_admin__batch_add(
        &b,
        "UPDATE lx_users SET user_email = $2, user_alias = $3, user_role = $4, models = $5, "
        "max_budget_nanos = $6, soft_budget_nanos = $7, budget_duration = $8, budget_reset_at = "
        "$9, rpm_limit = $10, tpm_limit = $11, max_parallel_requests = $12, metadata = $13, "
        "spend_nanos = $14, updated_at = $15 WHERE user_id = $1",
        15);
    p[0] = LX_SP_T(u->user_id);
    p[1] = lx_admin__keep_text(res, "user_email", email, has_email);
    p[2] = lx_admin__keep_text(res, "user_alias", alias, has_alias);
    p[3] = lx_admin__keep_text(res, "user_role", role, has_role);
    lx_admin__limits_params(&l, res, now, p + 4);
    p[12] = lx_admin__keep_text(res, "metadata", l.metadata, l.has_metadata);
    p[13] = has_spend ? LX_SP_I(spend) : LX_SP_I(lx_store_cell_int(res, 0, "spend_nanos", 0));
    p[14] = LX_SP_I(now);

    cJSON *before = lx_admin__row_json(res, 0, NULL);
    cJSON *upd = cJSON_Duplicate(body, true);
    cJSON_DeleteItemFromObjectCaseSensitive(upd, "password");
    lx_admin__batch_audit(&b, "updated", "lx_users", u->user_id, before, upd);
    cJSON_Delete(before);
    cJSON_Delete(upd);

    p = lx_admin__batch_add(&b, "SELECT * FROM lx_users WHERE user_id = $1", 1);
    p[0] = LX_SP_T(u->user_id);
    lx_admin__batch_exec(&b, user_update_done);
}

void lx_admin__user_update(struct lx_admin_ctx *ctx)
{
    struct user_update *u = lx_admin__state(ctx, sizeof(*u));
    if (lx_admin__field_id(ctx, ctx->body, "user_id", &u->by_id, NULL) ||
        lx_admin_field_str(ctx, ctx->body, "user_email", &u->by_email, NULL)) {
        return;
    }
    if (!u->by_id && !u->by_email) {
        lx_admin_respond_error_param(ctx, 400, "user_id",
                                     "Either user_id or user_email must be provided");
        return;
    }
    struct lx_store_param p[1] = {LX_SP_T(u->by_id ? u->by_id : u->by_email)};
    struct lx_store_stmt s = {u->by_id ? "SELECT * FROM lx_users WHERE user_id = $1"
                                       : "SELECT * FROM lx_users WHERE lower(user_email) = "
                                         "lower($1) ORDER BY created_at LIMIT 1",
                              p, 1};
    lx_admin_run(ctx, &s, 1, user_update_row);
}

/* ---- /user/delete ---- */

static void user_delete_done(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct lx_admin__delete *d = ctx->ud;
    for (size_t i = 0; i < d->n; i++) {
        lx_auth_invalidate_user(d->ids[i]);
    }
    /* LiteLLM answers with the number of deleted users. */
    lx_admin_answer(ctx, cJSON_CreateNumber((double)res->changes));
}

static const struct lx_admin__owner user_owner = {
    .table = "lx_users",
    .id_col = "user_id",
    .ids_field = "user_ids",
    .noun = "User",
    .kind = "user",
    .audit_after = "{}",
    .done = user_delete_done,
};

void lx_admin__user_delete(struct lx_admin_ctx *ctx)
{
    lx_admin__delete_owners(ctx, &user_owner);
}

/* ---- /user/list ---- */

struct user_list {
    long long page, page_size;
};

static void user_list_count(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct user_list *u = ctx->ud;
    int64_t total = res->n_rows ? lx_store_cell_int(res, 0, "n", 0) : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "users", ctx->doc);
    ctx->doc = NULL;
    cJSON_AddNumberToObject(o, "total", (double)total);
    cJSON_AddNumberToObject(o, "page", (double)u->page);
    cJSON_AddNumberToObject(o, "page_size", (double)u->page_size);
    cJSON_AddNumberToObject(o, "total_pages", (double)((total + u->page_size - 1) / u->page_size));
    lx_admin_answer(ctx, o);
}

/* The filters of both statements: $1 role, $2 email part, $3 team, $4.. ids. */
#define USER_LIST_WHERE                                                                            \
    " WHERE ($1 IS NULL OR u.user_role = $1)"                                                      \
    " AND ($2 IS NULL OR lower(u.user_email) LIKE '%' || lower($2) || '%')"                        \
    " AND ($3 IS NULL OR u.user_id IN (SELECT user_id FROM lx_team_members WHERE team_id = $3))"

struct user_list_q {
    struct lx_store_param p[5 + MAX_IDS]; /* role, email, team, limit, offset, ids */
    struct lx_store_param c[3 + MAX_IDS]; /* the same without limit and offset */
    size_t n_ids;
};

static const char *user_list_sql(struct lx_admin_ctx *ctx, const char *head, size_t first_id,
                                 size_t n_ids, const char *tail)
{
    if (n_ids == 0) {
        return lx_arena_printf(&ctx->arena, "%s%s%s", head, USER_LIST_WHERE, tail);
    }
    const char *in = lx_admin__sql_in(ctx, " AND u.user_id IN ", first_id, n_ids, "");
    return lx_arena_printf(&ctx->arena, "%s%s%s%s", head, USER_LIST_WHERE, in, tail);
}

static void user_list_rows(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct user_list *u = ctx->ud;
    ctx->doc = cJSON_CreateArray();
    for (size_t i = 0; i < res->n_rows; i++) {
        cJSON_AddItemToArray(ctx->doc, lx_admin__row_json(res, i, NULL));
    }
    struct user_list_q *q = (struct user_list_q *)(u + 1);
    memcpy(q->c, q->p, 3 * sizeof(q->c[0]));
    memcpy(q->c + 3, q->p + 5, q->n_ids * sizeof(q->c[0]));
    struct lx_store_stmt s = {
        user_list_sql(ctx, "SELECT COUNT(*) AS n FROM lx_users u", 4, q->n_ids, ""), q->c,
        3 + q->n_ids};
    lx_admin_run(ctx, &s, 1, user_list_count);
}

static int query_int(struct lx_admin_ctx *ctx, const char *name, long long lo, long long hi,
                     long long *out)
{
    const char *v = lx_admin_query(ctx, name);
    if (!v) {
        return 0;
    }
    unsigned long long n;
    if (lx_str_to_u64(lx_str_c(v), (unsigned long long)hi, &n) || (long long)n < lo) {
        lx_admin_respond_error_param(ctx, 400, name, "%s must be an integer between %lld and %lld",
                                     name, lo, hi);
        return -1;
    }
    *out = (long long)n;
    return 0;
}

void lx_admin__user_list(struct lx_admin_ctx *ctx)
{
    struct user_list *u = lx_admin__state(ctx, sizeof(*u) + sizeof(struct user_list_q));
    struct user_list_q *q = (struct user_list_q *)(u + 1);
    u->page = 1;
    u->page_size = 25;
    if (query_int(ctx, "page", 1, 1000000, &u->page) ||
        query_int(ctx, "page_size", 1, 100, &u->page_size)) {
        return;
    }
    const char *role = lx_admin_query(ctx, "role");
    const char *email = lx_admin_query(ctx, "user_email");
    const char *team = lx_admin_query(ctx, "team");
    const char *ids = lx_admin_query(ctx, "user_ids");
    if (role && lx_user_role_parse(role) == LX_ROLE_UNSET) {
        lx_admin_respond_error_param(ctx, 400, "role", "Invalid role filter");
        return;
    }
    q->p[0] = LX_SP_T(role && *role ? role : NULL);
    q->p[1] = LX_SP_T(email && *email ? email : NULL);
    q->p[2] = LX_SP_T(team && *team ? team : NULL);
    q->p[3] = LX_SP_I(u->page_size);
    q->p[4] = LX_SP_I((u->page - 1) * u->page_size);
    if (ids && *ids) {
        /* Comma-separated, split in place in the context's copy. */
        char *s = (char *)ids;
        while (s && *s && q->n_ids < MAX_IDS) {
            char *comma = strchr(s, ',');
            if (comma) {
                *comma = '\0';
            }
            struct lx_str t = lx_str_trim(lx_str_c(s));
            if (t.n) {
                q->p[5 + q->n_ids++] = LX_SP_T(lx_arena_strndup(&ctx->arena, t.p, t.n));
            }
            s = comma ? comma + 1 : NULL;
        }
    }
    /* $4 and $5 are LIMIT and OFFSET; the count statement ignores them. */
    const char *sql = user_list_sql(
        ctx,
        "SELECT u.*, (SELECT COUNT(*) FROM lx_keys k WHERE k.user_id = u.user_id) AS key_count "
        "FROM lx_users u",
        6, q->n_ids, " ORDER BY u.created_at DESC, u.user_id LIMIT $4 OFFSET $5");
    struct lx_store_stmt s = {sql, q->p, 5 + q->n_ids};
    lx_admin_run(ctx, &s, 1, user_list_rows);
}
