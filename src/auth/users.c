/*
 * The tutorial's forms: user_config users written to the store at start,
 * and `--generate_key --user_id U` from the command line. Both run before
 * (or beside) the loops, through the store's blocking API.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "auth/auth.h"
#include "core/alloc.h"
#include "core/rand.h"
#include "core/time.h"
#include "log/log.h"

#define USER_COLS 9

struct user_stmt {
    char sql[2048];
    struct lx_store_param p[USER_COLS + 2];
    char *models; /* JSON text, owned */
    size_t n_params;
};

static char *models_json(const struct lx_strlist *l)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < l->n; i++) {
        cJSON_AddItemToArray(a, cJSON_CreateString(l->items[i]));
    }
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    char *out = lx_strdup(s ? s : "[]");
    cJSON_free(s);
    return out;
}

/*
 * INSERT ... ON CONFLICT DO UPDATE of the columns user_config sets: what
 * YAML leaves out keeps its stored value, spend is never touched.
 */
static void build_upsert(const struct lx_user_cfg *u, int64_t now, struct user_stmt *us)
{
    const char *cols[USER_COLS + 2];
    size_t n = 0;
    cols[n] = "user_id";
    us->p[n++] = LX_SP_T(u->user_id);
    if (u->user_email) {
        cols[n] = "user_email";
        us->p[n++] = LX_SP_T(u->user_email);
    }
    if (u->user_role != LX_ROLE_UNSET) {
        cols[n] = "user_role";
        us->p[n++] = LX_SP_T(lx_user_role_name(u->user_role));
    }
    if (u->models.n) {
        us->models = models_json(&u->models);
        cols[n] = "models";
        us->p[n++] = LX_SP_T(us->models);
    }
    if (u->max_budget >= 0) {
        cols[n] = "max_budget_nanos";
        us->p[n++] = LX_SP_I((int64_t)(u->max_budget * 1e9 + 0.5));
    }
    if (u->budget_duration && u->budget_duration_s > 0) {
        cols[n] = "budget_duration";
        us->p[n++] = LX_SP_T(u->budget_duration);
        cols[n] = "budget_reset_at";
        us->p[n++] = LX_SP_I(now + u->budget_duration_s);
    }
    if (u->rpm_limit >= 0) {
        cols[n] = "rpm_limit";
        us->p[n++] = LX_SP_I(u->rpm_limit);
    }
    if (u->tpm_limit >= 0) {
        cols[n] = "tpm_limit";
        us->p[n++] = LX_SP_I(u->tpm_limit);
    }
    cols[n] = "created_at";
    us->p[n++] = LX_SP_I(now);
    cols[n] = "updated_at";
    us->p[n++] = LX_SP_I(now);

    char names[512] = "", vals[256] = "", set[768] = "";
    size_t nl = 0, vl = 0, sl = 0;
    for (size_t i = 0; i < n; i++) {
        nl += (size_t)snprintf(names + nl, sizeof(names) - nl, "%s%s", i ? ", " : "", cols[i]);
        vl += (size_t)snprintf(vals + vl, sizeof(vals) - vl, "%s$%zu", i ? ", " : "", i + 1);
        if (i == 0 || strcmp(cols[i], "created_at") == 0) {
            continue;
        }
        if (strcmp(cols[i], "budget_reset_at") == 0) {
            /* A running budget period keeps its end. */
            sl += (size_t)snprintf(set + sl, sizeof(set) - sl,
                                   "%sbudget_reset_at = COALESCE(lx_users.budget_reset_at, "
                                   "excluded.budget_reset_at)",
                                   sl ? ", " : "");
        } else {
            sl += (size_t)snprintf(set + sl, sizeof(set) - sl, "%s%s = excluded.%s", sl ? ", " : "",
                                   cols[i], cols[i]);
        }
    }
    us->n_params = n;
    snprintf(us->sql, sizeof(us->sql),
             "INSERT INTO lx_users (%s) VALUES (%s) ON CONFLICT (user_id) DO UPDATE SET %s", names,
             vals, set);
}

int lx_auth_sync_users(struct lx_store *store, const struct lx_config *cfg, struct lx_error *err)
{
    if (cfg->n_users == 0) {
        return 0;
    }
    struct user_stmt *us = lx_calloc(cfg->n_users, sizeof(*us));
    struct lx_store_stmt *st = lx_calloc(cfg->n_users, sizeof(*st));
    int64_t now = lx_wall_s();
    for (size_t i = 0; i < cfg->n_users; i++) {
        build_upsert(&cfg->users[i], now, &us[i]);
        st[i] = (struct lx_store_stmt){us[i].sql, us[i].p, us[i].n_params};
    }
    int rc = lx_store_exec_sync(store, st, cfg->n_users, NULL, err);
    for (size_t i = 0; i < cfg->n_users; i++) {
        lx_free(us[i].models);
    }
    lx_free(us);
    lx_free(st);
    if (rc) {
        return rc;
    }
    LX_INFO("user_config: %zu user(s) written to the store", cfg->n_users);
    return 0;
}

int lx_auth_generate_user_key(struct lx_store *store, const char *user_id, char *out, size_t n,
                              struct lx_error *err)
{
    struct lx_store_param up[] = {LX_SP_T(user_id)};
    struct lx_store_stmt q = {"SELECT user_id, models, max_budget_nanos, budget_duration,"
                              " budget_reset_at, rpm_limit, tpm_limit FROM lx_users"
                              " WHERE user_id = $1",
                              up, 1};
    struct lx_store_result *res = NULL;
    int rc = lx_store_exec_sync(store, &q, 1, &res, err);
    if (rc) {
        return rc;
    }
    if (res->n_rows == 0) {
        lx_store_result_free(res);
        return lx_error_set(err, LX_ENOTFOUND,
                            "unknown user '%s': add it to user_config or create it with /user/new",
                            user_id);
    }
    char key[LX_AUTH_KEY_LEN + 1];
    char token[65];
    char name[32];
    if (lx_auth_key_generate(key, sizeof(key)) || n <= strlen("sk-") + 22) {
        lx_store_result_free(res);
        return lx_error_set(err, LX_EIO, "could not generate a key: no randomness available");
    }
    lx_auth_key_hash(lx_str_c(key), token);
    lx_auth_key_mask(lx_str_c(key), name, sizeof(name));
    int64_t now = lx_wall_s();
    const char *models = lx_store_cell(res, 0, "models");
    const char *budget = lx_store_cell(res, 0, "max_budget_nanos");
    const char *rpm = lx_store_cell(res, 0, "rpm_limit");
    const char *tpm = lx_store_cell(res, 0, "tpm_limit");
    struct lx_store_param kp[] = {
        {LX_SP_TEXT, token, 0},
        {LX_SP_TEXT, name, 0},
        LX_SP_T(user_id),
        LX_SP_T(models ? models : "[]"),
        budget ? LX_SP_I(lx_store_cell_int(res, 0, "max_budget_nanos", 0)) : LX_SP_NUL,
        LX_SP_T(lx_store_cell(res, 0, "budget_duration")),
        lx_store_cell(res, 0, "budget_reset_at")
            ? LX_SP_I(lx_store_cell_int(res, 0, "budget_reset_at", 0))
            : LX_SP_NUL,
        rpm ? LX_SP_I(lx_store_cell_int(res, 0, "rpm_limit", 0)) : LX_SP_NUL,
        tpm ? LX_SP_I(lx_store_cell_int(res, 0, "tpm_limit", 0)) : LX_SP_NUL,
        LX_SP_I(now),
    };
    char audit_id[37];
    lx_uuid4(audit_id);
    struct lx_store_param ap[] = {{LX_SP_TEXT, audit_id, 0}, LX_SP_I(now), {LX_SP_TEXT, token, 0}};
    struct lx_store_stmt st[] = {
        {"INSERT INTO lx_keys (token, key_name, user_id, models, max_budget_nanos, budget_duration,"
         " budget_reset_at, rpm_limit, tpm_limit, created_by, created_at, updated_at)"
         " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'cli', $10, $10)",
         kp, LX_ARRAY_LEN(kp)},
        {"INSERT INTO lx_audit_log (id, changed_at, changed_by, action, table_name, object_id,"
         " updated_values) VALUES ($1, $2, 'cli', 'created', 'lx_keys', $3,"
         " '{\"source\":\"--generate_key\"}')",
         ap, LX_ARRAY_LEN(ap)},
    };
    rc = lx_store_exec_sync(store, st, LX_ARRAY_LEN(st), NULL, err);
    lx_store_result_free(res);
    if (rc == 0) {
        snprintf(out, n, "%s", key);
    }
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}
