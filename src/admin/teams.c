/*
 * /team/new, /team/info, /team/update, /team/delete, /team/list,
 * /team/member_add, /team/member_delete: LiteLLM's team endpoints over
 * lx_teams and lx_team_members.
 *
 * LiteLLM keeps members in the team row (members_with_roles); here they are
 * rows of lx_team_members, and the answers rebuild members_with_roles from
 * them. A change is one batch (one transaction, with its audit row) ending
 * with a SELECT of the team; a second round trip reads the members, and
 * /team/info a third its keys. As in LiteLLM, adding a member who has no
 * user record yet creates one, deleting a team deletes its keys, and
 * member_add / member_delete are open to the team's admins as well.
 * /team/block and /team/unblock stop and restart every key of the team.
 */
#include <stdio.h>
#include <string.h>

#include "admin/admin_int.h"
#include "auth/auth.h"
#include "core/alloc.h"
#include "core/rand.h"
#include "core/time.h"
#include "log/log.h"

#define MAX_MEMBERS 1000

enum team_kind { T_NEW, T_UPDATE, T_ADD, T_DEL, T_INFO, T_BLOCK };

struct member {
    const char *user_id;    /* NULL when given by email only */
    const char *user_email; /* may be NULL */
    const char *role;       /* "admin" or "user" */
};

struct team_op {
    enum team_kind kind;
    const char *team_id;
    struct member *members;
    size_t n_members;
    int64_t max_budget_in_team;
};

/* A members_with_roles entry from a row of lx_team_members joined with lx_users. */
static cJSON *member_json(const struct lx_store_result *res, size_t i)
{
    cJSON *m = cJSON_CreateObject();
    const char *email = lx_store_cell(res, i, "user_email");
    cJSON_AddStringToObject(m, "user_id", lx_store_cell(res, i, "user_id"));
    if (email) {
        cJSON_AddStringToObject(m, "user_email", email);
    } else {
        cJSON_AddNullToObject(m, "user_email");
    }
    cJSON_AddStringToObject(m, "role", lx_store_cell(res, i, "role"));
    return m;
}

/* Is the caller an admin of the team (a member with role admin)? members: the team's array. */
static bool caller_role_in(const struct lx_admin_ctx *ctx, const cJSON *members, const char *role)
{
    const char *uid = ctx->caller->user_id;
    if (!uid) {
        return false;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, members)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "user_id");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (cJSON_IsString(id) && strcmp(id->valuestring, uid) == 0 &&
            (!role || (cJSON_IsString(r) && strcmp(r->valuestring, role) == 0))) {
            return true;
        }
    }
    return false;
}

static void team_keys_done(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct team_op *t = ctx->ud;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "team_id", t->team_id);
    cJSON *members = cJSON_GetObjectItemCaseSensitive(ctx->doc, "members_with_roles");
    cJSON *tm = cJSON_CreateArray();
    const cJSON *m;
    cJSON_ArrayForEach(m, members)
    {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "team_id", t->team_id);
        cJSON_AddItemToObject(o, "user_id",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(m, "user_id"), 1));
        cJSON_AddItemToObject(o, "spend",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(m, "spend"), 1));
        cJSON_AddNullToObject(o, "budget_id");
        const cJSON *mb = cJSON_GetObjectItemCaseSensitive(m, "max_budget_in_team");
        if (cJSON_IsNumber(mb)) {
            cJSON *bt = cJSON_AddObjectToObject(o, "litellm_budget_table");
            cJSON_AddNumberToObject(bt, "max_budget", mb->valuedouble);
        } else {
            cJSON_AddNullToObject(o, "litellm_budget_table");
        }
        cJSON_AddItemToArray(tm, o);
    }
    cJSON_AddItemToObject(doc, "team_info", ctx->doc);
    ctx->doc = NULL;
    cJSON *keys = cJSON_AddArrayToObject(doc, "keys");
    static const char *const skip[] = {"token", NULL};
    for (size_t i = 0; i < res->n_rows; i++) {
        cJSON_AddItemToArray(keys, lx_admin__row_json(res, i, skip));
    }
    cJSON_AddItemToObject(doc, "team_memberships", tm);
    lx_admin_answer(ctx, doc);
}

static void team_members_done(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct team_op *t = ctx->ud;
    cJSON *members = cJSON_AddArrayToObject(ctx->doc, "members_with_roles");
    for (size_t i = 0; i < res->n_rows; i++) {
        cJSON *m = member_json(res, i);
        if (t->kind == T_INFO) {
            cJSON_AddNumberToObject(m, "spend",
                                    (double)lx_store_cell_int(res, i, "spend_nanos", 0) / 1e9);
            if (lx_store_cell(res, i, "max_budget_nanos")) {
                cJSON_AddNumberToObject(m, "max_budget_in_team",
                                        (double)lx_store_cell_int(res, i, "max_budget_nanos", 0) /
                                            1e9);
            }
        }
        cJSON_AddItemToArray(members, m);
    }
    switch (t->kind) {
    case T_INFO: {
        const struct lx_identity *c = ctx->caller;
        bool own_key = c->team_id && strcmp(c->team_id, t->team_id) == 0;
        if (!lx_admin_can_read_all(c) && !own_key && !caller_role_in(ctx, members, NULL)) {
            lx_admin_respond_error(ctx, 403, "User=%s not authorized to access this team=%s",
                                   c->user_id ? c->user_id : "(none)", t->team_id);
            return;
        }
        /* The members' spend and budgets are for the answer's team_memberships only. */
        struct lx_store_param p[2] = {LX_SP_T(t->team_id), LX_SP_I(lx_wall_s())};
        struct lx_store_stmt s = {"SELECT * FROM lx_keys WHERE team_id = $1 AND (expires IS NULL "
                                  "OR expires > $2) ORDER BY created_at",
                                  p, 2};
        lx_admin_run(ctx, &s, 1, team_keys_done);
        return;
    }
    case T_UPDATE: {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "team_id", t->team_id);
        cJSON_AddItemToObject(doc, "data", ctx->doc);
        ctx->doc = NULL;
        lx_admin_answer(ctx, doc);
        return;
    }
    case T_ADD: {
        /* LiteLLM's TeamAddMemberResponse: the team plus the added users. */
        cJSON *users = cJSON_AddArrayToObject(ctx->doc, "updated_users");
        cJSON *tms = cJSON_AddArrayToObject(ctx->doc, "updated_team_memberships");
        for (size_t i = 0; i < res->n_rows; i++) {
            const char *id = lx_store_cell(res, i, "user_id");
            const char *email = lx_store_cell(res, i, "user_email");
            for (size_t k = 0; k < t->n_members; k++) {
                const struct member *m = &t->members[k];
                bool hit = (m->user_id && id && strcmp(m->user_id, id) == 0) ||
                           (!m->user_id && m->user_email && email &&
                            strcasecmp(m->user_email, email) == 0);
                if (!hit) {
                    continue;
                }
                cJSON *u = cJSON_CreateObject();
                cJSON_AddStringToObject(u, "user_id", id);
                if (email) {
                    cJSON_AddStringToObject(u, "user_email", email);
                } else {
                    cJSON_AddNullToObject(u, "user_email");
                }
                cJSON_AddItemToArray(users, u);
                cJSON *tm = cJSON_CreateObject();
                cJSON_AddStringToObject(tm, "team_id", t->team_id);
                cJSON_AddStringToObject(tm, "user_id", id);
                cJSON_AddNumberToObject(tm, "spend", 0);
                cJSON_AddNullToObject(tm, "budget_id");
                cJSON_AddItemToArray(tms, tm);
                break;
            }
        }
        lx_admin_answer(ctx, ctx->doc);
        return;
    }
    case T_NEW:
    case T_DEL:
    case T_BLOCK: {
        lx_admin_answer(ctx, ctx->doc);
        return;
    }
    }
}

/* The team row arrived (last statement of a change, or the info lookup): read its members. */
static void team_row_done(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct team_op *t = ctx->ud;
    if (res->n_rows == 0) {
        lx_admin_respond_error_param(ctx, 404, "team_id", "Team not found, passed team id: %s.",
                                     t->team_id);
        return;
    }
    if (t->kind != T_NEW && t->kind != T_INFO) {
        lx_auth_invalidate_team(t->team_id);
    }
    ctx->doc = lx_admin__row_json(res, 0, NULL);
    struct lx_store_param p[1] = {LX_SP_T(t->team_id)};
    struct lx_store_stmt s = {
        "SELECT m.user_id, m.role, m.spend_nanos, m.max_budget_nanos, u.user_email FROM "
        "lx_team_members m LEFT JOIN lx_users u ON u.user_id = m.user_id WHERE m.team_id = $1 "
        "ORDER BY m.created_at, m.user_id",
        p, 1};
    lx_admin_run(ctx, &s, 1, team_members_done);
}

/* ---- member lists ---- */

static int parse_member(struct lx_admin_ctx *ctx, const cJSON *m, const char *field,
                        struct member *out)
{
    if (!cJSON_IsObject(m)) {
        lx_admin_respond_error_param(ctx, 400, field,
                                     "%s: each member is an object with user_id or user_email "
                                     "and role",
                                     field);
        return -1;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "user_id");
    const cJSON *email = cJSON_GetObjectItemCaseSensitive(m, "user_email");
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if ((id && !cJSON_IsNull(id) &&
         (!cJSON_IsString(id) || !lx_admin__valid_id(id->valuestring))) ||
        (email && !cJSON_IsNull(email) && !cJSON_IsString(email)) ||
        (role && !cJSON_IsNull(role) && !cJSON_IsString(role))) {
        lx_admin_respond_error_param(ctx, 400, field,
                                     "%s: user_id, user_email and role must be strings", field);
        return -1;
    }
    out->user_id = cJSON_IsString(id) ? lx_admin__dup(ctx, id->valuestring) : NULL;
    out->user_email = cJSON_IsString(email) && email->valuestring[0]
                          ? lx_admin__dup(ctx, email->valuestring)
                          : NULL;
    out->role = cJSON_IsString(role) ? lx_admin__dup(ctx, role->valuestring) : "user";
    if (!out->user_id && !out->user_email) {
        lx_admin_respond_error_param(ctx, 400, field,
                                     "%s: a member needs a user_id or a user_email", field);
        return -1;
    }
    if (strcmp(out->role, "admin") != 0 && strcmp(out->role, "user") != 0) {
        lx_admin_respond_error_param(ctx, 400, field, "%s: role must be 'admin' or 'user'", field);
        return -1;
    }
    return 0;
}

/* A member object or a list of them. */
static int parse_members(struct lx_admin_ctx *ctx, const cJSON *v, const char *field,
                         bool list_only, struct team_op *t)
{
    if (!v || cJSON_IsNull(v)) {
        return 0;
    }
    if (cJSON_IsObject(v) && !list_only) {
        t->members = lx_arena_alloc(&ctx->arena, sizeof(*t->members));
        t->n_members = 1;
        return parse_member(ctx, v, field, &t->members[0]);
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > MAX_MEMBERS) {
        lx_admin_respond_error_param(ctx, 400, field, "%s must be a list of at most %d members",
                                     field, MAX_MEMBERS);
        return -1;
    }
    size_t n = (size_t)cJSON_GetArraySize(v);
    t->members = lx_arena_alloc(&ctx->arena, (n + 1) * sizeof(*t->members));
    t->n_members = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, v)
    {
        if (parse_member(ctx, m, field, &t->members[t->n_members++])) {
            return -1;
        }
    }
    return 0;
}

/*
 * Statements that add the members: a user record for each one who has none
 * (LiteLLM creates them too), then the membership (the role is updated when
 * already a member).
 */
static void add_member_stmts(struct lx_admin_ctx *ctx, struct lx_admin__batch *b,
                             const struct team_op *t, int64_t now)
{
    for (size_t i = 0; i < t->n_members; i++) {
        const struct member *m = &t->members[i];
        struct lx_store_param *p;
        if (m->user_id) {
            p = lx_admin__batch_add(
                b,
                "INSERT INTO lx_users (user_id, user_email, user_role, created_at, updated_at) "
                "VALUES ($1, $2, 'internal_user', $3, $3) ON CONFLICT (user_id) DO NOTHING",
                3);
            p[0] = LX_SP_T(m->user_id);
            p[1] = LX_SP_T(m->user_email);
            p[2] = LX_SP_I(now);
            p = lx_admin__batch_add(
                b,
                "INSERT INTO lx_team_members (team_id, user_id, role, max_budget_nanos, "
                "created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (team_id, user_id) DO "
                "UPDATE SET role = excluded.role",
                5);
            p[0] = LX_SP_T(t->team_id);
            p[1] = LX_SP_T(m->user_id);
        } else {
            char id[37];
            lx_uuid4(id);
            p = lx_admin__batch_add(
                b,
                "INSERT INTO lx_users (user_id, user_email, user_role, created_at, updated_at) "
                "SELECT $1, $2, 'internal_user', $3, $3 WHERE NOT EXISTS (SELECT 1 FROM lx_users "
                "WHERE lower(user_email) = lower($2))",
                3);
            p[0] = LX_SP_T(lx_admin__dup(ctx, id));
            p[1] = LX_SP_T(m->user_email);
            p[2] = LX_SP_I(now);
            p = lx_admin__batch_add(
                b,
                "INSERT INTO lx_team_members (team_id, user_id, role, max_budget_nanos, "
                "created_at) SELECT $1, user_id, $3, $4, $5 FROM lx_users WHERE lower(user_email) "
                "= lower($2) ORDER BY created_at, user_id LIMIT 1 ON CONFLICT (team_id, user_id) "
                "DO UPDATE SET role = excluded.role",
                5);
            p[0] = LX_SP_T(t->team_id);
            p[1] = LX_SP_T(m->user_email);
        }
        p[2] = LX_SP_T(m->role);
        p[3] = t->max_budget_in_team >= 0 ? LX_SP_I(t->max_budget_in_team) : LX_SP_NUL;
        p[4] = LX_SP_I(now);
    }
}

static struct lx_store_param *select_team(struct lx_admin__batch *b, const char *team_id)
{
    struct lx_store_param *p =
        lx_admin__batch_add(b, "SELECT * FROM lx_teams WHERE team_id = $1", 1);
    p[0] = LX_SP_T(team_id);
    return p;
}

/* Rows of the team's current members (0 rows: no such team; NULL user_id: no members). */
static void select_members(struct lx_admin__batch *b, const char *team_id)
{
    struct lx_store_param *p = lx_admin__batch_add(
        b,
        "SELECT t.team_id AS team, m.user_id, m.role, u.user_email FROM lx_teams t LEFT JOIN "
        "lx_team_members m ON m.team_id = t.team_id LEFT JOIN lx_users u ON u.user_id = "
        "m.user_id WHERE t.team_id = $1",
        1);
    p[0] = LX_SP_T(team_id);
}

/*
 * Read the team and go on in cb with its row, or with members, with the rows
 * of its members (see select_members).
 */
static void read_team(struct lx_admin_ctx *ctx, const char *team_id, bool members,
                      lx_admin_result_cb cb)
{
    struct lx_admin__batch b;
    lx_admin__batch_init(&b, ctx, 1);
    if (members) {
        select_members(&b, team_id);
    } else {
        select_team(&b, team_id);
    }
    lx_admin__batch_run(&b, cb);
}

/* Answers 400 when the body named no team. */
static bool no_team_id(struct lx_admin_ctx *ctx, const struct team_op *t)
{
    if (!t->team_id) {
        lx_admin_respond_error_param(ctx, 400, "team_id", "No team id passed in (team_id)");
        return true;
    }
    return false;
}

static struct team_op *op_new(struct lx_admin_ctx *ctx, enum team_kind kind)
{
    struct team_op *t = lx_admin__state(ctx, sizeof(*t));
    t->kind = kind;
    t->max_budget_in_team = LX_NO_LIMIT;
    return t;
}

/* ---- /team/new ---- */

/* The new team is stored, unless its id was taken (LiteLLM's 400). */
static void team_created(void *ud, int rc, const struct lx_store_result *res,
                         const struct lx_error *err)
{
    struct lx_admin_ctx *ctx = ud;
    const struct team_op *t = ctx->ud;
    if (rc == LX_ECONFLICT) {
        lx_admin_respond_error_param(ctx, 400, "team_id",
                                     "Team id = %s already exists. Please use a different team id.",
                                     t->team_id);
        return;
    }
    if (rc) {
        lx_admin_respond_store_error(ctx, rc, err);
        return;
    }
    team_row_done(ctx, res);
}

void lx_admin__team_new(struct lx_admin_ctx *ctx)
{
    struct team_op *t = op_new(ctx, T_NEW);
    const cJSON *body = ctx->body;
    const char *alias = NULL;
    bool blocked = false;
    struct lx_admin__limits l;
    lx_admin__limits_init(&l);
    if (lx_admin__field_id(ctx, body, "team_id", &t->team_id, NULL) ||
        lx_admin_field_str(ctx, body, "team_alias", &alias, NULL) ||
        lx_admin__field_limits(ctx, body, &l) ||
        lx_admin_field_bool(ctx, body, "blocked", &blocked, NULL) ||
        parse_members(ctx, cJSON_GetObjectItemCaseSensitive(body, "members_with_roles"),
                      "members_with_roles", true, t)) {
        return;
    }
    if (!t->team_id) {
        char id[37];
        lx_uuid4(id);
        t->team_id = lx_admin__dup(ctx, id);
    }
    /* The creator joins as an admin of the team (LiteLLM), unless listed already. */
    const char *me = ctx->caller->user_id;
    bool listed = false;
    for (size_t i = 0; me && i < t->n_members; i++) {
        listed = listed || (t->members[i].user_id && strcmp(t->members[i].user_id, me) == 0);
    }
    if (me && !listed) {
        struct member *m = lx_arena_alloc(&ctx->arena, (t->n_members + 1) * sizeof(*m));
        if (t->n_members) {
            memcpy(m, t->members, t->n_members * sizeof(*m));
        }
        m[t->n_members++] = (struct member){me, NULL, "admin"};
        t->members = m;
    }
    int64_t now = lx_wall_s();
    struct lx_admin__batch b;
    lx_admin__batch_init(&b, ctx, 3 + 2 * t->n_members);
    struct lx_store_param *p = lx_admin__batch_add(
        &b,
        "INSERT INTO lx_teams (team_id, team_alias, models, max_budget_nanos, soft_budget_nanos, "
        "budget_duration, budget_reset_at, rpm_limit, tpm_limit, max_parallel_requests, blocked, "
        "metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
        "$12, $13, $13)",
        13);
    p[0] = LX_SP_T(t->team_id);
    p[1] = LX_SP_T(alias);
    if (!l.models) {
        l.models = "[]";
    }
    lx_admin__limits_params(&l, NULL, now, p + 2);
    p[10] = LX_SP_I(blocked ? 1 : 0);
    p[11] = LX_SP_T(l.metadata ? l.metadata : "{}");
    p[12] = LX_SP_I(now);
    add_member_stmts(ctx, &b, t, now);
    lx_admin__batch_audit(&b, "created", "lx_teams", t->team_id, NULL, body);
    select_team(&b, t->team_id);
    lx_admin__batch_exec(&b, team_created);
}

/* ---- /team/info ---- */

void lx_admin__team_info(struct lx_admin_ctx *ctx)
{
    struct team_op *t = op_new(ctx, T_INFO);
    t->team_id = lx_admin_query(ctx, "team_id");
    if (!t->team_id || !*t->team_id) {
        lx_admin_respond_error_param(ctx, 400, "team_id",
                                     "Malformed request. No team id passed in (team_id).");
        return;
    }
    read_team(ctx, t->team_id, false, team_row_done);
}

/* ---- /team/update ---- */

static void team_update_row(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct team_op *t = ctx->ud;
    if (res->n_rows == 0) {
        lx_admin_respond_error_param(ctx, 404, "team_id", "Team not found, passed team_id=%s",
                                     t->team_id);
        return;
    }
    const cJSON *body = ctx->body;
    const char *alias = NULL;
    bool blocked = false, has_alias = false, has_blocked = false;
    struct lx_admin__limits l;
    lx_admin__limits_init(&l);
    if (lx_admin_field_str(ctx, body, "team_alias", &alias, &has_alias) ||
        lx_admin__field_limits(ctx, body, &l) ||
        lx_admin_field_bool(ctx, body, "blocked", &blocked, &has_blocked)) {
        return;
    }
    int64_t now = lx_wall_s();
    struct lx_admin__batch b;
    lx_admin__batch_init(&b, ctx, 3);
    struct lx_store_param *p = lx_admin__batch_add(
        &b,
        "UPDATE lx_teams SET team_alias = $2, models = $3, max_budget_nanos = $4, "
        "soft_budget_nanos = $5, budget_duration = $6, budget_reset_at = $7, rpm_limit = $8, "
        "tpm_limit = $9, max_parallel_requests = $10, blocked = $11, metadata = $12, updated_at "
        "= $13 WHERE team_id = $1",
        13);
    p[0] = LX_SP_T(t->team_id);
    p[1] = lx_admin__keep_text(res, "team_alias", alias, has_alias);
    lx_admin__limits_params(&l, res, now, p + 2);
    p[10] =
        has_blocked ? LX_SP_I(blocked ? 1 : 0) : LX_SP_I(lx_store_cell_int(res, 0, "blocked", 0));
    p[11] = lx_admin__keep_text(res, "metadata", l.metadata, l.has_metadata);
    p[12] = LX_SP_I(now);
    cJSON *before = lx_admin__row_json(res, 0, NULL);
    lx_admin__batch_audit(&b, "updated", "lx_teams", t->team_id, before, body);
    cJSON_Delete(before);
    select_team(&b, t->team_id);
    lx_admin__batch_run(&b, team_row_done);
}

void lx_admin__team_update(struct lx_admin_ctx *ctx)
{
    struct team_op *t = op_new(ctx, T_UPDATE);
    if (lx_admin__field_id(ctx, ctx->body, "team_id", &t->team_id, NULL)) {
        return;
    }
    if (no_team_id(ctx, t)) {
        return;
    }
    read_team(ctx, t->team_id, false, team_update_row);
}

/* ---- /team/member_add and /team/member_delete ---- */

/* May the caller manage this team's members: a proxy admin, or an admin of the team. */
static bool may_manage(const struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    if (lx_admin_is_admin(ctx->caller)) {
        return true;
    }
    const char *me = ctx->caller->user_id;
    for (size_t i = 0; me && i < res->n_rows; i++) {
        const char *id = lx_store_cell(res, i, "user_id");
        const char *role = lx_store_cell(res, i, "role");
        if (id && role && strcmp(id, me) == 0 && strcmp(role, "admin") == 0) {
            return true;
        }
    }
    return false;
}

static bool is_member(const struct lx_store_result *res, const char *user_id,
                      const char *user_email)
{
    for (size_t i = 0; i < res->n_rows; i++) {
        const char *id = lx_store_cell(res, i, "user_id");
        const char *email = lx_store_cell(res, i, "user_email");
        if ((user_id && id && strcmp(user_id, id) == 0) ||
            (user_email && email && strcasecmp(user_email, email) == 0)) {
            return true;
        }
    }
    return false;
}

/*
 * The team's members were read for member_add (adding) or member_delete:
 * false when answered (no such team, the caller may not manage it).
 */
static bool members_checked(struct lx_admin_ctx *ctx, const struct lx_store_result *res,
                            bool adding)
{
    const struct team_op *t = ctx->ud;
    if (res->n_rows == 0) {
        if (adding) {
            lx_admin_respond_error_param(ctx, 404, "team_id", "Team not found for team_id=%s",
                                         t->team_id);
        } else {
            lx_admin_respond_error_param(ctx, 404, "team_id", "Team id=%s does not exist in db",
                                         t->team_id);
        }
        return false;
    }
    if (!may_manage(ctx, res)) {
        lx_admin_respond_error(ctx, 403,
                               "Call not allowed. User not proxy admin OR team admin. "
                               "route=/team/%s, team_id=%s",
                               adding ? "member_add" : "member_delete", t->team_id);
        return false;
    }
    return true;
}

static void member_add_checked(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct team_op *t = ctx->ud;
    if (!members_checked(ctx, res, true)) {
        return;
    }
    for (size_t i = 0; i < t->n_members; i++) {
        const struct member *m = &t->members[i];
        if (is_member(res, m->user_id, m->user_id ? NULL : m->user_email)) {
            lx_admin_respond_error_param(ctx, 400, "member", "User=%s already in team=%s",
                                         m->user_id ? m->user_id : m->user_email, t->team_id);
            return;
        }
    }
    int64_t now = lx_wall_s();
    struct lx_admin__batch b;
    lx_admin__batch_init(&b, ctx, 2 + 2 * t->n_members);
    add_member_stmts(ctx, &b, t, now);
    lx_admin__batch_audit(&b, "updated", "lx_teams", t->team_id, NULL, ctx->body);
    select_team(&b, t->team_id);
    lx_admin__batch_run(&b, team_row_done);
}

void lx_admin__team_member_add(struct lx_admin_ctx *ctx)
{
    struct team_op *t = op_new(ctx, T_ADD);
    const cJSON *member = cJSON_GetObjectItemCaseSensitive(ctx->body, "member");
    if (lx_admin__field_id(ctx, ctx->body, "team_id", &t->team_id, NULL) ||
        lx_admin_field_money(ctx, ctx->body, "max_budget_in_team", &t->max_budget_in_team, NULL) ||
        parse_members(ctx, member, "member", false, t)) {
        return;
    }
    if (no_team_id(ctx, t)) {
        return;
    }
    if (t->n_members == 0) {
        lx_admin_respond_error_param(ctx, 400, "member", "No member/members passed in (member)");
        return;
    }
    read_team(ctx, t->team_id, true, member_add_checked);
}

static void member_delete_checked(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct team_op *t = ctx->ud;
    const struct member *m = &t->members[0];
    if (!members_checked(ctx, res, false)) {
        return;
    }
    if (!is_member(res, m->user_id, m->user_email)) {
        lx_admin_respond_error_param(ctx, 400, m->user_id ? "user_id" : "user_email",
                                     "User not found in team");
        return;
    }
    struct lx_admin__batch b;
    lx_admin__batch_init(&b, ctx, 3);
    struct lx_store_param *p = lx_admin__batch_add(
        &b,
        "DELETE FROM lx_team_members WHERE team_id = $1 AND (user_id = $2 OR user_id IN (SELECT "
        "user_id FROM lx_users WHERE lower(user_email) = lower($3)))",
        3);
    p[0] = LX_SP_T(t->team_id);
    p[1] = LX_SP_T(m->user_id);
    p[2] = LX_SP_T(m->user_email);
    cJSON *upd = cJSON_CreateObject();
    cJSON_AddStringToObject(upd, "removed_member", m->user_id ? m->user_id : m->user_email);
    lx_admin__batch_audit(&b, "updated", "lx_teams", t->team_id, NULL, upd);
    cJSON_Delete(upd);
    select_team(&b, t->team_id);
    lx_admin__batch_run(&b, team_row_done);
}

void lx_admin__team_member_delete(struct lx_admin_ctx *ctx)
{
    struct team_op *t = op_new(ctx, T_DEL);
    t->members = lx_arena_alloc(&ctx->arena, sizeof(*t->members));
    memset(t->members, 0, sizeof(*t->members));
    t->n_members = 1;
    if (lx_admin__field_id(ctx, ctx->body, "team_id", &t->team_id, NULL) ||
        lx_admin__field_id(ctx, ctx->body, "user_id", &t->members[0].user_id, NULL) ||
        lx_admin_field_str(ctx, ctx->body, "user_email", &t->members[0].user_email, NULL)) {
        return;
    }
    if (no_team_id(ctx, t)) {
        return;
    }
    if (!t->members[0].user_id && !t->members[0].user_email) {
        lx_admin_respond_error_param(ctx, 400, "user_id",
                                     "Either user_id or user_email needs to be passed in");
        return;
    }
    read_team(ctx, t->team_id, true, member_delete_checked);
}

/* ---- /team/delete ---- */

static void team_delete_done(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    (void)res;
    struct lx_admin__delete *d = ctx->ud;
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "deleted_teams");
    for (size_t i = 0; i < d->n; i++) {
        lx_auth_invalidate_team(d->ids[i]);
        cJSON_AddItemToArray(a, cJSON_CreateString(d->ids[i]));
    }
    lx_admin_answer(ctx, o);
}

static const struct lx_admin__owner team_owner = {
    .table = "lx_teams",
    .id_col = "team_id",
    .ids_field = "team_ids",
    .noun = "Team",
    .kind = "team",
    .audit_after = NULL,
    .done = team_delete_done,
};

void lx_admin__team_delete(struct lx_admin_ctx *ctx)
{
    lx_admin__delete_owners(ctx, &team_owner);
}

/* ---- /team/list ---- */

struct team_list {
    const char *user_id;
};

static cJSON *find_team(cJSON *teams, const char *team_id)
{
    cJSON *t;
    cJSON_ArrayForEach(t, teams)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(t, "team_id");
        if (cJSON_IsString(id) && team_id && strcmp(id->valuestring, team_id) == 0) {
            return t;
        }
    }
    return NULL;
}

static void team_list_keys(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    static const char *const skip[] = {"token", NULL};
    for (size_t i = 0; i < res->n_rows; i++) {
        cJSON *t = find_team(ctx->doc, lx_store_cell(res, i, "team_id"));
        if (t) {
            cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(t, "keys"),
                                 lx_admin__row_json(res, i, skip));
        }
    }
    lx_admin_answer(ctx, ctx->doc);
}

#define TEAM_LIST_FILTER                                                                           \
    "($1 IS NULL OR team_id IN (SELECT team_id FROM lx_team_members WHERE user_id = $1))"

static void team_list_members(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct team_list *l = ctx->ud;
    for (size_t i = 0; i < res->n_rows; i++) {
        const char *tid = lx_store_cell(res, i, "team_id");
        cJSON *t = find_team(ctx->doc, tid);
        if (!t) {
            continue;
        }
        cJSON *m = member_json(res, i);
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(t, "members_with_roles"), m);
        cJSON *tm = cJSON_CreateObject();
        cJSON_AddStringToObject(tm, "team_id", tid);
        cJSON_AddStringToObject(tm, "user_id", lx_store_cell(res, i, "user_id"));
        cJSON_AddNumberToObject(tm, "spend",
                                (double)lx_store_cell_int(res, i, "spend_nanos", 0) / 1e9);
        cJSON_AddNullToObject(tm, "budget_id");
        if (!l->user_id || strcmp(l->user_id, lx_store_cell(res, i, "user_id")) == 0) {
            cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(t, "team_memberships"), tm);
        } else {
            cJSON_Delete(tm);
        }
    }
    struct lx_store_param p[1] = {LX_SP_T(l->user_id)};
    struct lx_store_stmt s = {
        "SELECT * FROM lx_keys WHERE team_id IS NOT NULL AND " TEAM_LIST_FILTER
        " ORDER BY created_at",
        p, 1};
    lx_admin_run(ctx, &s, 1, team_list_keys);
}

static void team_list_rows(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct team_list *l = ctx->ud;
    ctx->doc = cJSON_CreateArray();
    for (size_t i = 0; i < res->n_rows; i++) {
        cJSON *t = lx_admin__row_json(res, i, NULL);
        cJSON_AddArrayToObject(t, "members_with_roles");
        cJSON_AddArrayToObject(t, "team_memberships");
        cJSON_AddArrayToObject(t, "keys");
        cJSON_AddItemToArray(ctx->doc, t);
    }
    struct lx_store_param p[1] = {LX_SP_T(l->user_id)};
    struct lx_store_stmt s = {
        "SELECT m.team_id, m.user_id, m.role, m.spend_nanos, u.user_email FROM lx_team_members m "
        "LEFT JOIN lx_users u ON u.user_id = m.user_id WHERE ($1 IS NULL OR m.team_id IN (SELECT "
        "team_id FROM lx_team_members WHERE user_id = $1))"
        " ORDER BY m.created_at, m.user_id",
        p, 1};
    lx_admin_run(ctx, &s, 1, team_list_members);
}

void lx_admin__team_list(struct lx_admin_ctx *ctx)
{
    struct team_list *l = lx_admin__state(ctx, sizeof(*l));
    l->user_id = lx_admin_query(ctx, "user_id");
    if (l->user_id && !*l->user_id) {
        l->user_id = NULL;
    }
    const struct lx_identity *c = ctx->caller;
    if (!lx_admin_can_read_all(c) &&
        (!l->user_id || !c->user_id || strcmp(l->user_id, c->user_id) != 0)) {
        lx_admin_respond_error(ctx, 401,
                               "Only admin users can query all teams/other teams. Your user "
                               "role=%s",
                               lx_user_role_name(c->role));
        return;
    }
    struct lx_store_param p[1] = {LX_SP_T(l->user_id)};
    struct lx_store_stmt s = {
        "SELECT * FROM lx_teams WHERE " TEAM_LIST_FILTER " ORDER BY team_alias, team_id", p, 1};
    lx_admin_run(ctx, &s, 1, team_list_rows);
}

/* ---- /team/block and /team/unblock ---- */

struct team_block {
    struct team_op op; /* first: ctx->ud is read as a team_op by team_row_done */
    bool blocked;
};

static void team_block_row(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct team_block *tb = ctx->ud;
    struct team_op *t = &tb->op;
    if (res->n_rows == 0) {
        lx_admin_respond_error_param(ctx, 404, "team_id", "Team not found, passed team_id=%s",
                                     t->team_id);
        return;
    }
    struct lx_admin__batch b;
    lx_admin__batch_init(&b, ctx, 3);
    struct lx_store_param *p = lx_admin__batch_add(
        &b, "UPDATE lx_teams SET blocked = $2, updated_at = $3 WHERE team_id = $1", 3);
    p[0] = LX_SP_T(t->team_id);
    p[1] = LX_SP_I(tb->blocked ? 1 : 0);
    p[2] = LX_SP_I(lx_wall_s());
    lx_admin__batch_audit(&b, tb->blocked ? "blocked" : "unblocked", "lx_teams", t->team_id, NULL,
                          NULL);
    select_team(&b, t->team_id);
    lx_admin__batch_run(&b, team_row_done);
}

static void team_set_blocked(struct lx_admin_ctx *ctx, bool blocked)
{
    struct team_block *tb = lx_admin__state(ctx, sizeof(*tb));
    tb->op.kind = T_BLOCK;
    tb->op.max_budget_in_team = LX_NO_LIMIT;
    tb->blocked = blocked;
    struct team_op *t = &tb->op;
    if (lx_admin__field_id(ctx, ctx->body, "team_id", &t->team_id, NULL)) {
        return;
    }
    if (no_team_id(ctx, t)) {
        return;
    }
    read_team(ctx, t->team_id, false, team_block_row);
}

void lx_admin__team_block(struct lx_admin_ctx *ctx)
{
    team_set_blocked(ctx, true);
}

void lx_admin__team_unblock(struct lx_admin_ctx *ctx)
{
    team_set_blocked(ctx, false);
}
