/*
 * The spend endpoints (see endpoints.h). Each handler is one store round
 * trip through the worker's port; the answer adds this process's pending
 * spend to what the store returned.
 */
#include "spend/endpoints.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "core/alloc.h"
#include "core/time.h"
#include "spend/budget.h"
#include "spend/cost.h"
#include "spend/shared.h"

#define LOGS_MAX_ROWS 10000
#define TOP_DEFAULT 5
#define TOP_MAX 1000

static _Atomic(struct lx_budget *) g_budget;

void lx_spend_endpoints_set_budget(struct lx_budget *b)
{
    atomic_store(&g_budget, b);
}

static double usd(int64_t nanos)
{
    return (double)nanos / (double)LX_NANO_PER_USD;
}

int64_t lx_spend_current(enum lx_budget_scope kind, const char *id, int64_t store_spend)
{
    struct lx_budget *b = atomic_load(&g_budget);
    if (!b || !id) {
        return store_spend;
    }
    /* The store value was read just now: newer than any base the budget holds. */
    return lx_budget_spend(b, kind, id, store_spend, (int64_t)lx_mono_ms());
}

static void add_money_or_null(cJSON *o, const char *name, const char *cell)
{
    if (cell) {
        unsigned long long v = 0;
        bool neg = cell[0] == '-';
        if (lx_str_to_u64(lx_str_c(cell + neg), (unsigned long long)INT64_MAX, &v) == 0) {
            cJSON_AddNumberToObject(o, name, usd(neg ? -(int64_t)v : (int64_t)v));
            return;
        }
    }
    cJSON_AddNullToObject(o, name);
}

/* Unix seconds as "2026-11-21T08:00:00+00:00" (LiteLLM's datetime), or null. */
static void add_time_or_null(cJSON *o, const char *name, const char *cell)
{
    unsigned long long v = 0;
    if (!cell || lx_str_to_u64(lx_str_c(cell), (unsigned long long)INT64_MAX, &v) != 0) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    time_t t = (time_t)v;
    struct tm tm;
    char buf[40];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    cJSON_AddStringToObject(o, name, buf);
}

static void add_time_ms(cJSON *o, const char *name, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[48];
    char out[64];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, sizeof(out), "%s.%03d000+00:00", buf, (int)(ms % 1000));
    cJSON_AddStringToObject(o, name, out);
}

static void add_str_or_null(cJSON *o, const char *name, const char *v)
{
    if (v) {
        cJSON_AddStringToObject(o, name, v);
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

/* ---- /user/spend ---- */

static void on_user_spend(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    const char *uid = ctx->ud;
    if (res->n_rows == 0) {
        lx_admin_respond_error_param(ctx, 404, "user_id", "User not found: %s", uid);
        return;
    }
    int64_t spend =
        lx_spend_current(LX_BUDGET_USER, uid, lx_store_cell_int(res, 0, "spend_nanos", 0));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "user_id", uid);
    cJSON_AddNumberToObject(o, "total_spend", usd(spend));
    cJSON_AddNumberToObject(o, "spend", usd(spend));
    add_money_or_null(o, "max_budget", lx_store_cell(res, 0, "max_budget_nanos"));
    add_money_or_null(o, "soft_budget", lx_store_cell(res, 0, "soft_budget_nanos"));
    add_str_or_null(o, "budget_duration", lx_store_cell(res, 0, "budget_duration"));
    add_time_or_null(o, "budget_reset_at", lx_store_cell(res, 0, "budget_reset_at"));
    lx_admin_answer(ctx, o);
}

void lx_spend_user_spend(struct lx_admin_ctx *ctx)
{
    const char *asked = lx_admin_query(ctx, "user_id");
    const char *own = ctx->caller->user_id;
    const char *uid = asked && asked[0] ? asked : own;
    if (!uid) {
        lx_admin_respond_error_param(ctx, 400, "user_id",
                                     "Missing user_id: this key belongs to no user; pass "
                                     "?user_id= with an admin key");
        return;
    }
    if (!lx_admin_can_read_all(ctx->caller) && (!own || strcmp(uid, own) != 0)) {
        lx_admin_respond_error(ctx, 403, "Only admins can read the spend of another user");
        return;
    }
    ctx->ud = lx_arena_strndup(&ctx->arena, uid, strlen(uid));
    struct lx_store_param p = LX_SP_T(uid);
    struct lx_store_stmt st = {"SELECT user_id, spend_nanos, max_budget_nanos, soft_budget_nanos,"
                               " budget_duration, budget_reset_at FROM lx_users WHERE user_id = $1",
                               &p, 1};
    lx_admin_run(ctx, &st, 1, on_user_spend);
}

/* ---- /global/spend ---- */

static void on_global_spend(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct lx_budget *b = atomic_load(&g_budget);
    int64_t total = lx_store_cell_int(res, 0, "total", 0) + (b ? lx_budget_pending_global(b) : 0);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "spend", usd(total));
    cJSON_AddNumberToObject(o, "total_spend", usd(total));
    double max = ctx->cfg->litellm.max_budget;
    if (max >= 0) {
        cJSON_AddNumberToObject(o, "max_budget", max);
    } else {
        cJSON_AddNullToObject(o, "max_budget");
    }
    lx_admin_answer(ctx, o);
}

void lx_spend_global_spend(struct lx_admin_ctx *ctx)
{
    struct lx_store_stmt st = {
        "SELECT spend_nanos AS total FROM lx_spend_totals WHERE scope = 'global'", NULL, 0};
    lx_admin_run(ctx, &st, 1, on_global_spend);
}

/* ---- /user/reset_budget ---- */

/*
 * The reset runs on the ledger thread, between two of its batches, so that
 * no commit races it (see spend/budget.h). The handler waits for it by
 * queueing trivial statements on its port: each answer comes back on this
 * loop, where the handler polls the reset's ticket.
 */
#define RESET_WAIT_MS 5000

struct reset_op {
    uint64_t ticket;
    uint64_t deadline;
    char *user_id;
    int64_t max_budget; /* once the reset ran */
    int64_t reset_at;
};

static void reset_op_free(void *ud)
{
    struct reset_op *op = ud;
    lx_free(op->user_id);
    lx_free(op);
}

/* The reset ran and the user exists: answer. */
static void reset_answer(void *ud)
{
    struct lx_admin_ctx *ctx = ud;
    const struct reset_op *op = ctx->ud;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "user_id", op->user_id);
    cJSON_AddNumberToObject(o, "spend", 0.0);
    cJSON_AddNumberToObject(o, "total_spend", 0.0);
    if (op->max_budget != LX_NO_LIMIT) {
        cJSON_AddNumberToObject(o, "max_budget", usd(op->max_budget));
    } else {
        cJSON_AddNullToObject(o, "max_budget");
    }
    char at[32];
    snprintf(at, sizeof(at), "%lld", (long long)op->reset_at);
    add_time_or_null(o, "budget_reset_at", op->reset_at ? at : NULL);
    cJSON_AddStringToObject(o, "status", "success");
    lx_admin_answer(ctx, o);
}

static void on_reset_poll(void *ud, int rc, const struct lx_store_result *res,
                          const struct lx_error *err)
{
    (void)res;
    struct lx_admin_ctx *ctx = ud;
    struct reset_op *op = ctx->ud;
    struct lx_budget *b = atomic_load(&g_budget);
    if (rc || !b) {
        lx_admin_respond_store_error(ctx, rc ? rc : LX_EUNAVAIL, err);
        return;
    }
    int reset_rc = 0;
    bool found = false;
    int64_t max = LX_NO_LIMIT, reset_at = 0;
    if (!lx_budget_reset_poll(b, op->ticket, &reset_rc, &found, &max, &reset_at)) {
        if (lx_mono_ms() > op->deadline) {
            lx_admin_respond_error(ctx, 503,
                                   "The budget reset did not run in time; the "
                                   "database may be unavailable. Try again.");
            return;
        }
        struct lx_store_stmt st = {"SELECT 1 AS one", NULL, 0};
        lx_admin_exec(ctx, &st, 1, on_reset_poll);
        return;
    }
    if (reset_rc) {
        lx_admin_respond_store_error(ctx, reset_rc, NULL);
        return;
    }
    if (!found) {
        lx_admin_respond_error_param(ctx, 404, "user_id", "User not found: %s", op->user_id);
        return;
    }
    op->max_budget = max;
    op->reset_at = reset_at;
    /* Other instances sharing Redis see the reset at their next check (spend/shared.h). */
    if (lx_spend_shared_reset(b, LX_BUDGET_USER, op->user_id, reset_at, reset_answer, ctx) != 0) {
        reset_answer(ctx);
    }
}

void lx_spend_user_reset_budget(struct lx_admin_ctx *ctx)
{
    const char *uid = NULL;
    bool present = false;
    if (lx_admin_field_str(ctx, ctx->body, "user_id", &uid, &present)) {
        return; /* answered */
    }
    if (!present || !uid || !uid[0]) {
        lx_admin_respond_error_param(ctx, 400, "user_id", "Missing required parameter: 'user_id'");
        return;
    }
    struct lx_budget *b = atomic_load(&g_budget);
    if (!b) {
        lx_admin_respond_error(ctx, 503, "Budgets need general_settings.database_url");
        return;
    }
    struct reset_op *op = LX_NEW(struct reset_op);
    op->user_id = lx_strdup(uid);
    op->deadline = lx_mono_ms() + RESET_WAIT_MS;
    op->ticket = lx_budget_request_reset(b, LX_BUDGET_USER, uid);
    ctx->ud = op;
    ctx->ud_free = reset_op_free;
    struct lx_store_stmt st = {"SELECT 1 AS one", NULL, 0};
    lx_admin_exec(ctx, &st, 1, on_reset_poll);
}

/* ---- /spend/logs ---- */

/*
 * "YYYY-MM-DD" (optionally followed by "THH:MM:SS" or " HH:MM:SS"), UTC, as
 * unix milliseconds. Returns 0 or -1.
 */
LX_TESTABLE int lx_spend__parse_date_ms(const char *s, int64_t *out);
LX_TESTABLE int lx_spend__parse_date_ms(const char *s, int64_t *out)
{
    unsigned long long y, mo, d, h = 0, mi = 0, se = 0;
    size_t n = strlen(s);
    if (n < 10 || s[4] != '-' || s[7] != '-' || lx_str_to_u64((struct lx_str){s, 4}, 9999, &y) ||
        lx_str_to_u64((struct lx_str){s + 5, 2}, 12, &mo) ||
        lx_str_to_u64((struct lx_str){s + 8, 2}, 31, &d) || mo == 0 || d == 0 || y < 1970) {
        return -1;
    }
    if (n > 10) {
        if (n < 19 || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' || s[16] != ':' ||
            lx_str_to_u64((struct lx_str){s + 11, 2}, 23, &h) ||
            lx_str_to_u64((struct lx_str){s + 14, 2}, 59, &mi) ||
            lx_str_to_u64((struct lx_str){s + 17, 2}, 59, &se)) {
            return -1;
        }
    }
    struct tm tm = {0};
    tm.tm_year = (int)y - 1900;
    tm.tm_mon = (int)mo - 1;
    tm.tm_mday = (int)d;
    tm.tm_hour = (int)h;
    tm.tm_min = (int)mi;
    tm.tm_sec = (int)se;
    *out = (int64_t)timegm(&tm) * 1000;
    return 0;
}

static void on_logs(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < res->n_rows; i++) {
        cJSON *o = cJSON_CreateObject();
        add_str_or_null(o, "request_id", lx_store_cell(res, i, "request_id"));
        add_str_or_null(o, "call_type", lx_store_cell(res, i, "call_type"));
        add_str_or_null(o, "api_key", lx_store_cell(res, i, "api_key"));
        add_money_or_null(o, "spend", lx_store_cell(res, i, "spend_nanos"));
        cJSON_AddNumberToObject(o, "total_tokens",
                                (double)lx_store_cell_int(res, i, "total_tokens", 0));
        cJSON_AddNumberToObject(o, "prompt_tokens",
                                (double)lx_store_cell_int(res, i, "prompt_tokens", 0));
        cJSON_AddNumberToObject(o, "completion_tokens",
                                (double)lx_store_cell_int(res, i, "completion_tokens", 0));
        add_time_ms(o, "startTime", lx_store_cell_int(res, i, "start_time_ms", 0));
        add_time_ms(o, "endTime", lx_store_cell_int(res, i, "end_time_ms", 0));
        add_str_or_null(o, "model", lx_store_cell(res, i, "model"));
        add_str_or_null(o, "model_id", lx_store_cell(res, i, "model_id"));
        add_str_or_null(o, "model_group", lx_store_cell(res, i, "model_group"));
        add_str_or_null(o, "custom_llm_provider", lx_store_cell(res, i, "custom_llm_provider"));
        add_str_or_null(o, "api_base", lx_store_cell(res, i, "api_base"));
        add_str_or_null(o, "user", lx_store_cell(res, i, "user_id"));
        add_str_or_null(o, "team_id", lx_store_cell(res, i, "team_id"));
        add_str_or_null(o, "end_user", lx_store_cell(res, i, "end_user"));
        const char *hit = lx_store_cell(res, i, "cache_hit");
        cJSON_AddStringToObject(o, "cache_hit", hit && hit[0] == '1' ? "True" : "False");
        add_str_or_null(o, "status", lx_store_cell(res, i, "status"));
        cJSON *md = cJSON_AddObjectToObject(o, "metadata");
        add_str_or_null(md, "user_api_key_alias", lx_store_cell(res, i, "key_alias"));
        add_str_or_null(md, "status", lx_store_cell(res, i, "status"));
        cJSON_AddNumberToObject(md, "cache_read_tokens",
                                (double)lx_store_cell_int(res, i, "cache_read_tokens", 0));
        cJSON_AddItemToArray(arr, o);
    }
    lx_admin_answer(ctx, arr);
}

void lx_spend_logs(struct lx_admin_ctx *ctx)
{
    const char *api_key = lx_admin_query(ctx, "api_key");
    const char *user_id = lx_admin_query(ctx, "user_id");
    const char *request_id = lx_admin_query(ctx, "request_id");
    const char *start = lx_admin_query(ctx, "start_date");
    const char *end = lx_admin_query(ctx, "end_date");
    char token[65];
    if (api_key && api_key[0]) {
        lx_auth_token_of(lx_str_c(api_key), token);
        api_key = lx_arena_strndup(&ctx->arena, token, strlen(token));
    } else {
        api_key = NULL;
    }
    if (!lx_admin_can_read_all(ctx->caller)) {
        /* Others see the rows of the key they call with, and nothing else. */
        if (!ctx->caller->token[0] || (api_key && strcmp(api_key, ctx->caller->token) != 0)) {
            lx_admin_respond_error(ctx, 403, "Only admins can read the spend logs of other keys");
            return;
        }
        api_key = ctx->caller->token;
    }
    int64_t from = 0, to = INT64_MAX;
    if (start && start[0] && lx_spend__parse_date_ms(start, &from)) {
        lx_admin_respond_error_param(ctx, 400, "start_date",
                                     "Invalid start_date: expected YYYY-MM-DD");
        return;
    }
    if (end && end[0]) {
        if (lx_spend__parse_date_ms(end, &to)) {
            lx_admin_respond_error_param(ctx, 400, "end_date",
                                         "Invalid end_date: expected YYYY-MM-DD");
            return;
        }
        if (strlen(end) == 10) {
            to += 86400 * 1000; /* a date alone includes its whole day */
        }
    }
    struct lx_store_param p[6] = {
        LX_SP_T(api_key),
        LX_SP_T(user_id && user_id[0] ? user_id : NULL),
        LX_SP_T(request_id && request_id[0] ? request_id : NULL),
        LX_SP_I(from),
        LX_SP_I(to),
        LX_SP_I(LOGS_MAX_ROWS),
    };
    struct lx_store_stmt st = {
        "SELECT * FROM lx_spend_logs WHERE (CAST($1 AS TEXT) IS NULL OR api_key = CAST($1 AS TEXT))"
        " AND (CAST($2 AS TEXT) IS NULL OR user_id = CAST($2 AS TEXT))"
        " AND (CAST($3 AS TEXT) IS NULL OR request_id = CAST($3 AS TEXT))"
        " AND start_time_ms >= $4 AND start_time_ms < $5"
        " ORDER BY start_time_ms DESC LIMIT $6",
        p, 6};
    lx_admin_run(ctx, &st, 1, on_logs);
}

/* ---- /global/spend/keys, /global/spend/models ---- */

/* A top list: sql with $1 the ?limit= (default TOP_DEFAULT), answered by cb. */
static void top_query(struct lx_admin_ctx *ctx, const char *sql, lx_admin_result_cb cb)
{
    const char *v = lx_admin_query(ctx, "limit");
    unsigned long long n = TOP_DEFAULT;
    if (v && v[0] && (lx_str_to_u64(lx_str_c(v), TOP_MAX, &n) || n == 0)) {
        lx_admin_respond_error_param(ctx, 400, "limit", "Invalid limit: expected 1 to %d", TOP_MAX);
        return;
    }
    struct lx_store_param p = LX_SP_I((long long)n);
    struct lx_store_stmt st = {sql, &p, 1};
    lx_admin_run(ctx, &st, 1, cb);
}

static void on_top_keys(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < res->n_rows; i++) {
        const char *token = lx_store_cell(res, i, "token");
        cJSON *o = cJSON_CreateObject();
        add_str_or_null(o, "api_key", token);
        cJSON_AddNumberToObject(o, "total_spend",
                                usd(lx_spend_current(LX_BUDGET_KEY, token,
                                                     lx_store_cell_int(res, i, "spend_nanos", 0))));
        add_str_or_null(o, "key_alias", lx_store_cell(res, i, "key_alias"));
        add_str_or_null(o, "key_name", lx_store_cell(res, i, "key_name"));
        add_str_or_null(o, "user_id", lx_store_cell(res, i, "user_id"));
        cJSON_AddItemToArray(arr, o);
    }
    lx_admin_answer(ctx, arr);
}

void lx_spend_global_keys(struct lx_admin_ctx *ctx)
{
    top_query(ctx,
              "SELECT token, key_alias, key_name, user_id, spend_nanos FROM lx_keys"
              " ORDER BY spend_nanos DESC, token LIMIT $1",
              on_top_keys);
}

static void on_top_models(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < res->n_rows; i++) {
        cJSON *o = cJSON_CreateObject();
        add_str_or_null(o, "model", lx_store_cell(res, i, "model"));
        cJSON_AddNumberToObject(o, "total_spend", usd(lx_store_cell_int(res, i, "spend", 0)));
        cJSON_AddItemToArray(arr, o);
    }
    lx_admin_answer(ctx, arr);
}

void lx_spend_global_models(struct lx_admin_ctx *ctx)
{
    top_query(ctx,
              "SELECT model, SUM(spend_nanos) AS spend FROM lx_spend_logs"
              " GROUP BY model ORDER BY spend DESC, model LIMIT $1",
              on_top_models);
}
