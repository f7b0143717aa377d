/*
 * Key -> identity on the request path, and the checks an identity answers:
 * expiry, blocking, model access.
 *
 * A lookup reads the key, its user and its team in one statement through
 * the worker's store port (off the loop). A cached identity younger than
 * the TTL answers at once; an older one is re-read, and still used when the
 * store cannot answer (down, or the read failed), so cached keys survive an
 * outage. An unknown key while the store is down is LX_EUNAVAIL (503), never
 * LX_EAUTH: an absent answer is not a "no".
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "auth/auth_int.h"
#include "core/alloc.h"
#include "core/time.h"
#include "log/log.h"

const char lx_auth_lookup_sql[] =
    "SELECT k.token, k.key_name, k.key_alias, k.user_id, k.team_id, k.models,"
    " k.max_budget_nanos, k.soft_budget_nanos, k.spend_nanos, k.budget_duration,"
    " k.budget_reset_at, k.rpm_limit, k.tpm_limit, k.max_parallel_requests,"
    " k.model_rpm_limit, k.model_tpm_limit, k.expires, k.blocked,"
    " u.user_id AS u_user_id, u.user_role AS u_user_role, u.models AS u_models,"
    " u.max_budget_nanos AS u_max_budget_nanos, u.soft_budget_nanos AS u_soft_budget_nanos,"
    " u.spend_nanos AS u_spend_nanos, u.budget_duration AS u_budget_duration,"
    " u.budget_reset_at AS u_budget_reset_at, u.rpm_limit AS u_rpm_limit,"
    " u.tpm_limit AS u_tpm_limit, u.max_parallel_requests AS u_max_parallel_requests,"
    " t.team_id AS t_team_id, t.models AS t_models, t.blocked AS t_blocked,"
    " t.max_budget_nanos AS t_max_budget_nanos, t.soft_budget_nanos AS t_soft_budget_nanos,"
    " t.spend_nanos AS t_spend_nanos, t.budget_duration AS t_budget_duration,"
    " t.budget_reset_at AS t_budget_reset_at, t.rpm_limit AS t_rpm_limit,"
    " t.tpm_limit AS t_tpm_limit, t.max_parallel_requests AS t_max_parallel_requests"
    " FROM lx_keys k LEFT JOIN lx_users u ON u.user_id = k.user_id"
    " LEFT JOIN lx_teams t ON t.team_id = k.team_id WHERE k.token = $1";

/* ---- building an identity from a row ---- */

static const char *cell(const struct lx_store_result *r, size_t row, const char *prefix,
                        const char *col)
{
    char name[64];
    snprintf(name, sizeof(name), "%s%s", prefix, col);
    return lx_store_cell(r, row, name);
}

static int64_t cell_int(const struct lx_store_result *r, size_t row, const char *prefix,
                        const char *col, int64_t dflt)
{
    char name[64];
    snprintf(name, sizeof(name), "%s%s", prefix, col);
    return lx_store_cell_int(r, row, name, dflt);
}

static const char *arena_dup(struct lx_identity *id, const char *s)
{
    return s ? lx_arena_strndup(&id->arena, s, strlen(s)) : NULL;
}

/* A JSON array of names ("[]" = all) into a list in the identity's arena. */
static int parse_models(struct lx_identity *id, const char *json, struct lx_strlist *out)
{
    *out = (struct lx_strlist){NULL, 0};
    if (!json || !json[0]) {
        return 0;
    }
    cJSON *a = cJSON_Parse(json);
    if (!cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return LX_EINVAL;
    }
    size_t n = (size_t)cJSON_GetArraySize(a);
    if (n) {
        out->items = lx_arena_alloc(&id->arena, n * sizeof(*out->items));
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, a)
    {
        if (cJSON_IsString(it)) {
            out->items[out->n++] = arena_dup(id, it->valuestring);
        }
    }
    cJSON_Delete(a);
    return 0;
}

static void read_scope(struct lx_identity *id, const struct lx_store_result *r, size_t row,
                       const char *prefix, struct lx_scope_limits *s)
{
    s->max_budget_nanos = cell_int(r, row, prefix, "max_budget_nanos", LX_NO_LIMIT);
    s->soft_budget_nanos = cell_int(r, row, prefix, "soft_budget_nanos", LX_NO_LIMIT);
    s->spend_nanos = cell_int(r, row, prefix, "spend_nanos", 0);
    s->budget_reset_at = cell_int(r, row, prefix, "budget_reset_at", 0);
    s->budget_duration = arena_dup(id, cell(r, row, prefix, "budget_duration"));
    s->rpm_limit = cell_int(r, row, prefix, "rpm_limit", LX_NO_LIMIT);
    s->tpm_limit = cell_int(r, row, prefix, "tpm_limit", LX_NO_LIMIT);
    s->max_parallel_requests = cell_int(r, row, prefix, "max_parallel_requests", LX_NO_LIMIT);
}

static struct lx_model_limit *find_limit(struct lx_identity *id, const char *model)
{
    for (size_t i = 0; i < id->n_model_limits; i++) {
        if (strcmp(id->model_limits[i].model, model) == 0) {
            return &id->model_limits[i];
        }
    }
    return NULL;
}

/* model_rpm_limit / model_tpm_limit: {"model": n, ...}. */
static void read_model_limits(struct lx_identity *id, const char *rpm_json, const char *tpm_json)
{
    cJSON *docs[2] = {rpm_json ? cJSON_Parse(rpm_json) : NULL,
                      tpm_json ? cJSON_Parse(tpm_json) : NULL};
    size_t cap = 0;
    for (int d = 0; d < 2; d++) {
        cap += cJSON_IsObject(docs[d]) ? (size_t)cJSON_GetArraySize(docs[d]) : 0;
    }
    if (cap) {
        id->model_limits = lx_arena_alloc(&id->arena, cap * sizeof(*id->model_limits));
    }
    for (int d = 0; d < 2; d++) {
        if (!cJSON_IsObject(docs[d])) {
            continue;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, docs[d])
        {
            if (!cJSON_IsNumber(it) || !it->string) {
                continue;
            }
            struct lx_model_limit *l = find_limit(id, it->string);
            if (!l) {
                l = &id->model_limits[id->n_model_limits++];
                *l = (struct lx_model_limit){arena_dup(id, it->string), LX_NO_LIMIT, LX_NO_LIMIT};
            }
            if (d == 0) {
                l->rpm = (long long)it->valuedouble;
            } else {
                l->tpm = (long long)it->valuedouble;
            }
        }
    }
    cJSON_Delete(docs[0]);
    cJSON_Delete(docs[1]);
}

struct lx_identity *lx_auth_identity_from_row(const struct lx_store_result *r, size_t row)
{
    const char *token = lx_store_cell(r, row, "token");
    if (!token || strlen(token) != 64) {
        return NULL;
    }
    struct lx_identity *id = lx_identity_new();
    memcpy(id->token, token, 65);
    id->key_name = arena_dup(id, lx_store_cell(r, row, "key_name"));
    id->key_alias = arena_dup(id, lx_store_cell(r, row, "key_alias"));
    id->user_id = arena_dup(id, lx_store_cell(r, row, "user_id"));
    id->team_id = arena_dup(id, lx_store_cell(r, row, "team_id"));
    id->expires = lx_store_cell_int(r, row, "expires", 0);
    id->blocked = lx_store_cell_int(r, row, "blocked", 0) != 0;
    read_scope(id, r, row, "", &id->key);
    int rc = parse_models(id, lx_store_cell(r, row, "models"), &id->key.models);
    read_model_limits(id, lx_store_cell(r, row, "model_rpm_limit"),
                      lx_store_cell(r, row, "model_tpm_limit"));

    id->has_user = lx_store_cell(r, row, "u_user_id") != NULL;
    if (id->has_user) {
        read_scope(id, r, row, "u_", &id->user);
        rc = rc ? rc : parse_models(id, lx_store_cell(r, row, "u_models"), &id->user.models);
        enum lx_user_role role = lx_user_role_parse(lx_store_cell(r, row, "u_user_role"));
        id->role = role == LX_ROLE_UNSET ? LX_ROLE_INTERNAL_USER : role;
    }
    id->has_team = lx_store_cell(r, row, "t_team_id") != NULL;
    if (id->has_team) {
        read_scope(id, r, row, "t_", &id->team);
        rc = rc ? rc : parse_models(id, lx_store_cell(r, row, "t_models"), &id->team.models);
        if (lx_store_cell_int(r, row, "t_blocked", 0)) {
            id->blocked = true;
        }
    }
    if (rc) {
        LX_WARN("key %s: malformed models list in the store", id->key_name ? id->key_name : "");
        lx_identity_unref(id);
        return NULL;
    }
    id->loaded_at_ms = (int64_t)lx_mono_ms();
    return id;
}

/* ---- lookups ---- */

struct lx_auth_lookup {
    lx_auth_cb cb;
    void *ud;
    bool cancelled;
    uint64_t gen;
    struct lx_identity *stale; /* the cached identity past its TTL, or NULL */
    char token[65];
};

static void lookup_free(struct lx_auth_lookup *l)
{
    lx_identity_unref(l->stale);
    lx_free(l);
}

static void on_lookup(void *ud, int rc, const struct lx_store_result *res,
                      const struct lx_error *err)
{
    struct lx_auth_lookup *l = ud;
    if (l->cancelled) {
        lookup_free(l);
        return;
    }
    struct lx_identity *id = NULL;
    int out = 0;
    if (rc == 0 && res->n_rows == 0) {
        /* Deleted (or never existed): drop what this process still cached. */
        if (l->stale) {
            lx_auth_invalidate_token(l->token);
        }
        out = LX_EAUTH;
    } else if (rc == 0) {
        id = lx_auth_identity_from_row(res, 0);
        if (id) {
            lx_auth_cache_put(id, l->gen);
        } else {
            out = LX_EAUTH;
        }
    } else if (l->stale) {
        /* The store could not answer: a known key keeps working. */
        LX_DEBUG("auth: store lookup failed (%s); using the cached identity",
                 err && err->msg[0] ? err->msg : lx_strerror(rc));
        id = l->stale;
        l->stale = NULL;
    } else {
        out = rc == LX_ECANCELED ? LX_ECANCELED : LX_EUNAVAIL;
    }
    lx_auth_cb cb = l->cb;
    void *cb_ud = l->ud;
    lookup_free(l);
    cb(cb_ud, out, id);
}

int lx_auth_resolve(struct lx_store *store, struct lx_store_port *port, struct lx_str key,
                    const unsigned char *sha256, struct lx_identity **out_id, lx_auth_cb cb,
                    void *ud, struct lx_auth_lookup **out_lookup)
{
    *out_id = NULL;
    *out_lookup = NULL;
    if (key.n < 4 || memcmp(key.p, "sk-", 3) != 0) {
        return LX_EAUTH;
    }
    char token[65];
    if (sha256) {
        lx_auth_hex(sha256, token);
    } else {
        lx_auth_key_hash(key, token);
    }
    bool fresh = false;
    struct lx_identity *cached = lx_auth_cache_get(token, lx_mono_ms(), &fresh);
    if (cached && (fresh || !store || !lx_store_is_up(store))) {
        *out_id = cached;
        return 0;
    }
    if (!store || !port || !lx_store_is_up(store)) {
        return LX_EUNAVAIL;
    }
    struct lx_auth_lookup *l = LX_NEW(struct lx_auth_lookup);
    l->cb = cb;
    l->ud = ud;
    l->stale = cached;
    l->gen = lx_auth_cache_gen();
    memcpy(l->token, token, sizeof(token));
    struct lx_store_param p[] = {LX_SP_T(l->token)};
    struct lx_store_stmt st = {lx_auth_lookup_sql, p, 1};
    int rc = lx_store_exec(port, &st, 1, on_lookup, l);
    if (rc) {
        l->stale = NULL;
        lookup_free(l);
        if (cached) {
            *out_id = cached;
            return 0;
        }
        return LX_EUNAVAIL;
    }
    *out_lookup = l;
    return LX_EAGAIN;
}

void lx_auth_lookup_cancel(struct lx_auth_lookup *l)
{
    if (l) {
        l->cancelled = true;
    }
}

/* ---- checks ---- */

static void iso_time(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
}

const char *lx_auth_check(const struct lx_identity *id, int64_t now, char *buf, size_t n)
{
    if (id->is_master) {
        return NULL;
    }
    if (id->blocked) {
        snprintf(buf, n,
                 "Authentication Error - Key is blocked. Update via `/key/unblock` if you're "
                 "admin.");
        return buf;
    }
    if (id->expires > 0 && id->expires <= now) {
        char exp[40], cur[40];
        iso_time(id->expires, exp, sizeof(exp));
        iso_time(now, cur, sizeof(cur));
        snprintf(buf, n,
                 "Authentication Error - Expired Key. Key Expiry time %s and current time %s", exp,
                 cur);
        return buf;
    }
    return NULL;
}

static bool list_allows(const struct lx_strlist *l, struct lx_str model)
{
    if (l->n == 0) {
        return true;
    }
    for (size_t i = 0; i < l->n; i++) {
        const char *m = l->items[i];
        if (strcmp(m, "*") == 0 || strcmp(m, "all-proxy-models") == 0 || lx_str_eq_c(model, m)) {
            return true;
        }
        size_t ml = strlen(m);
        if (ml > 1 && m[ml - 1] == '*' && model.n >= ml - 1 && memcmp(model.p, m, ml - 1) == 0) {
            return true;
        }
    }
    return false;
}

static bool list_has(const struct lx_strlist *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->items[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* "['a', 'b']", as LiteLLM prints a Python list. */
static void print_list(const struct lx_strlist *l, char *out, size_t n)
{
    size_t o = 0;
    o += (size_t)snprintf(out + o, n - o, "[");
    for (size_t i = 0; i < l->n && o < n; i++) {
        o += (size_t)snprintf(out + o, n - o, "%s'%s'", i ? ", " : "", l->items[i]);
    }
    if (o < n) {
        snprintf(out + o, n - o, "]");
    }
}

bool lx_auth_model_allowed(const struct lx_identity *id, struct lx_str model, char *buf, size_t n,
                           const char **out_type)
{
    if (id->is_master) {
        return true;
    }
    char list[1024];
    int mn = (int)LX_MIN(model.n, 256);
    bool key_defers = id->has_team && list_has(&id->key.models, "all-team-models");
    if (!key_defers && !list_allows(&id->key.models, model)) {
        print_list(&id->key.models, list, sizeof(list));
        snprintf(buf, n,
                 "key not allowed to access model. This key can only access models=%s. Tried to "
                 "access %.*s",
                 list, mn, model.p);
        *out_type = "key_model_access_denied";
        return false;
    }
    if (id->has_team && !list_allows(&id->team.models, model)) {
        print_list(&id->team.models, list, sizeof(list));
        snprintf(buf, n,
                 "team not allowed to access model. This team can only access models=%s. Tried "
                 "to access %.*s",
                 list, mn, model.p);
        *out_type = "team_model_access_denied";
        return false;
    }
    if (id->has_user && !list_allows(&id->user.models, model)) {
        print_list(&id->user.models, list, sizeof(list));
        snprintf(buf, n,
                 "user not allowed to access model. This user can only access models=%s. Tried "
                 "to access %.*s",
                 list, mn, model.p);
        *out_type = "user_model_access_denied";
        return false;
    }
    return true;
}
