/*
 * Helpers shared by the user, team and model handlers: store rows as
 * LiteLLM-shaped JSON, statement batches built in the context's arena, and
 * IN-lists of placeholders.
 *
 * Row conversion follows the schema's conventions (store/schema.c): money
 * columns `*_nanos` become USD numbers under the name without the suffix,
 * times become ISO 8601 strings, JSON columns are parsed, integer and
 * boolean columns are typed; NULL stays null.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admin/admin_int.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "core/str.h"

static const char *const time_cols[] = {"created_at",   "updated_at", "budget_reset_at", "expires",
                                        "last_used_at", "changed_at", "membership_at",   NULL};
static const char *const json_cols[] = {"models",          "metadata",       "model_rpm_limit",
                                        "model_tpm_limit", "litellm_params", "model_info",
                                        "before_value",    "updated_values", NULL};
static const char *const int_cols[] = {"rpm_limit", "tpm_limit",    "max_parallel_requests",
                                       "key_count", "member_count", NULL};
static const char *const bool_cols[] = {"blocked", NULL};

static bool in(const char *const *list, const char *s)
{
    for (; *list; list++) {
        if (strcmp(*list, s) == 0) {
            return true;
        }
    }
    return false;
}

void lx_admin__iso_time(int64_t s, char out[32])
{
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int64_t cell_i64(const char *c, bool *ok)
{
    unsigned long long v;
    bool neg = c[0] == '-';
    *ok = lx_str_to_u64(lx_str_c(neg ? c + 1 : c), (unsigned long long)INT64_MAX, &v) == 0;
    return *ok ? (neg ? -(int64_t)v : (int64_t)v) : 0;
}

cJSON *lx_admin__row_json(const struct lx_store_result *r, size_t row, const char *const *skip)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t c = 0; o && c < r->n_cols; c++) {
        const char *name = r->cols[c];
        const char *cell = r->cells[row * r->n_cols + c];
        if (skip && in(skip, name)) {
            continue;
        }
        size_t n = strlen(name);
        bool ok = false;
        if (n > 6 && strcmp(name + n - 6, "_nanos") == 0) {
            char key[64];
            snprintf(key, sizeof(key), "%.*s", (int)(n - 6), name);
            int64_t v = cell ? cell_i64(cell, &ok) : 0;
            if (ok) {
                cJSON_AddNumberToObject(o, key, (double)v / 1e9);
            } else {
                cJSON_AddNullToObject(o, key);
            }
        } else if (in(time_cols, name)) {
            int64_t v = cell ? cell_i64(cell, &ok) : 0;
            if (ok) {
                char iso[32];
                lx_admin__iso_time(v, iso);
                cJSON_AddStringToObject(o, name, iso);
            } else {
                cJSON_AddNullToObject(o, name);
            }
        } else if (in(json_cols, name)) {
            cJSON *j = cell ? cJSON_Parse(cell) : NULL;
            if (!j && strcmp(name, "models") == 0) {
                j = cJSON_CreateArray();
            } else if (!j) {
                j = cell ? cJSON_CreateString(cell) : cJSON_CreateNull();
            }
            cJSON_AddItemToObject(o, name, j);
        } else if (in(int_cols, name)) {
            int64_t v = cell ? cell_i64(cell, &ok) : 0;
            if (ok) {
                cJSON_AddNumberToObject(o, name, (double)v);
            } else {
                cJSON_AddNullToObject(o, name);
            }
        } else if (in(bool_cols, name)) {
            cJSON_AddBoolToObject(o, name, cell && strcmp(cell, "0") != 0);
        } else if (cell) {
            cJSON_AddStringToObject(o, name, cell);
        } else {
            cJSON_AddNullToObject(o, name);
        }
    }
    return o;
}

const char *lx_admin__dup(struct lx_admin_ctx *ctx, const char *s)
{
    return s ? lx_arena_strndup(&ctx->arena, s, strlen(s)) : NULL;
}

void lx_admin__batch_init(struct lx_admin__batch *b, struct lx_admin_ctx *ctx, size_t cap)
{
    b->ctx = ctx;
    b->n = 0;
    b->cap = cap;
    b->stmts = lx_arena_alloc(&ctx->arena, cap * sizeof(*b->stmts));
}

struct lx_store_param *lx_admin__batch_add(struct lx_admin__batch *b, const char *sql,
                                           size_t n_params)
{
    LX_ASSERT(b->n < b->cap);
    struct lx_store_param *p =
        n_params ? lx_arena_alloc(&b->ctx->arena, n_params * sizeof(*p)) : NULL;
    for (size_t i = 0; i < n_params; i++) {
        p[i] = LX_SP_NUL;
    }
    b->stmts[b->n++] = (struct lx_store_stmt){sql, p, n_params};
    return p;
}

struct lx_store_stmt *lx_admin__batch_slot(struct lx_admin__batch *b)
{
    LX_ASSERT(b->n < b->cap);
    return &b->stmts[b->n++];
}

const char *lx_admin__sql_in(struct lx_admin_ctx *ctx, const char *head, size_t first, size_t n,
                             const char *tail)
{
    size_t cap = strlen(head) + strlen(tail) + n * 12 + 8;
    char *s = lx_arena_alloc(&ctx->arena, cap);
    size_t o = (size_t)snprintf(s, cap, "%s(", head);
    for (size_t i = 0; i < n; i++) {
        o += (size_t)snprintf(s + o, cap - o, "%s$%zu", i ? "," : "", first + i);
    }
    snprintf(s + o, cap - o, ")%s", tail);
    return s;
}

int lx_admin__strlist(struct lx_admin_ctx *ctx, const cJSON *body, const char *name, size_t max,
                      const char ***out, size_t *out_n, bool *out_present)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    *out = NULL;
    *out_n = 0;
    if (out_present) {
        *out_present = false;
    }
    if (!v || cJSON_IsNull(v)) {
        return 0;
    }
    if (!cJSON_IsArray(v)) {
        lx_admin_respond_error_param(ctx, 400, name, "%s must be a list of strings", name);
        return -1;
    }
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n > max) {
        lx_admin_respond_error_param(ctx, 400, name, "%s: at most %zu items", name, max);
        return -1;
    }
    const char **items = lx_arena_alloc(&ctx->arena, (n ? n : 1) * sizeof(*items));
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        if (!cJSON_IsString(it) || !it->valuestring[0]) {
            lx_admin_respond_error_param(ctx, 400, name, "%s must be a list of non-empty strings",
                                         name);
            return -1;
        }
        items[i++] = lx_admin__dup(ctx, it->valuestring);
    }
    *out = items;
    *out_n = n;
    if (out_present) {
        *out_present = true;
    }
    return 0;
}

void lx_admin__add_strlist(cJSON *o, const char *name, const char *const *items, size_t n)
{
    cJSON *a = cJSON_AddArrayToObject(o, name);
    for (size_t i = 0; a && i < n; i++) {
        cJSON_AddItemToArray(a, cJSON_CreateString(items[i]));
    }
}

void *lx_admin__state(struct lx_admin_ctx *ctx, size_t size)
{
    void *p = lx_arena_alloc(&ctx->arena, size);
    memset(p, 0, size);
    ctx->ud = p;
    return p;
}

static void batch_audit_text(struct lx_admin__batch *b, const char *action, const char *table,
                             const char *id, const char *before, const char *after)
{
    struct lx_admin_audit *a = lx_arena_alloc(&b->ctx->arena, sizeof(*a));
    lx_admin_audit_stmt(b->ctx, a, action, table, id, before, after, lx_admin__batch_slot(b));
}

void lx_admin__batch_audit(struct lx_admin__batch *b, const char *action, const char *table,
                           const char *id, const cJSON *before, const cJSON *after)
{
    batch_audit_text(b, action, table, id, lx_admin__print(b->ctx, before),
                     lx_admin__print(b->ctx, after));
}

void lx_admin__batch_add_ids(struct lx_admin__batch *b, const char *sql, const char *const *ids,
                             size_t n)
{
    struct lx_store_param *p = lx_admin__batch_add(b, sql, n);
    for (size_t i = 0; i < n; i++) {
        p[i] = LX_SP_T(ids[i]);
    }
}

void lx_admin__batch_exec(struct lx_admin__batch *b, lx_store_cb cb)
{
    lx_admin_exec(b->ctx, b->stmts, b->n, cb);
}

void lx_admin__batch_run(struct lx_admin__batch *b, lx_admin_result_cb cb)
{
    lx_admin_run(b->ctx, b->stmts, b->n, cb);
}

struct lx_store_param lx_admin__keep_text(const struct lx_store_result *r, const char *col,
                                          const char *v, bool present)
{
    return LX_SP_T(present ? v : lx_store_cell(r, 0, col));
}

struct lx_store_param lx_admin__keep_int(const struct lx_store_result *r, const char *col,
                                         long long v, bool present)
{
    if (present) {
        return v >= 0 ? LX_SP_I(v) : LX_SP_NUL;
    }
    return lx_store_cell(r, 0, col) ? LX_SP_I(lx_store_cell_int(r, 0, col, 0)) : LX_SP_NUL;
}

/* ---- deleting users or teams ---- */

#define MAX_DELETE_IDS 1000

/* "<head><id_col> IN ($1,...,$n)" in the context's arena. */
static const char *sql_ids(struct lx_admin_ctx *ctx, const char *head, const char *table,
                           const char *id_col, size_t n)
{
    return lx_admin__sql_in(
        ctx, lx_arena_printf(&ctx->arena, "%s%s WHERE %s IN ", head, table, id_col), 1, n, "");
}

static void delete_rows(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct lx_admin__delete *d = ctx->ud;
    const struct lx_admin__owner *o = d->owner;
    for (size_t i = 0; i < d->n; i++) {
        bool found = false;
        for (size_t r = 0; r < res->n_rows && !found; r++) {
            const char *id = lx_store_cell(res, r, o->id_col);
            found = id && strcmp(id, d->ids[i]) == 0;
        }
        if (!found) {
            lx_admin_respond_error_param(ctx, 404, o->ids_field, "%s not found, passed %s=%s",
                                         o->noun, o->id_col, d->ids[i]);
            return;
        }
    }
    struct lx_admin__batch b;
    lx_admin__batch_init(&b, ctx, 3 + res->n_rows);
    lx_admin__batch_add_ids(&b, sql_ids(ctx, "DELETE FROM ", "lx_keys", o->id_col, d->n), d->ids,
                            d->n);
    lx_admin__batch_add_ids(&b, sql_ids(ctx, "DELETE FROM ", "lx_team_members", o->id_col, d->n),
                            d->ids, d->n);
    for (size_t r = 0; r < res->n_rows; r++) {
        cJSON *before = lx_admin__row_json(res, r, NULL);
        batch_audit_text(&b, "deleted", o->table,
                         lx_admin__dup(ctx, lx_store_cell(res, r, o->id_col)),
                         lx_admin__print(ctx, before), o->audit_after);
        cJSON_Delete(before);
    }
    lx_admin__batch_add_ids(&b, sql_ids(ctx, "DELETE FROM ", o->table, o->id_col, d->n), d->ids,
                            d->n);
    lx_admin__batch_run(&b, o->done);
}

void lx_admin__delete_owners(struct lx_admin_ctx *ctx, const struct lx_admin__owner *o)
{
    struct lx_admin__delete *d = lx_admin__state(ctx, sizeof(*d));
    d->owner = o;
    bool present = false;
    if (lx_admin__strlist(ctx, ctx->body, o->ids_field, MAX_DELETE_IDS, &d->ids, &d->n, &present)) {
        return;
    }
    if (!present || d->n == 0) {
        lx_admin_respond_error_param(ctx, 400, o->ids_field, "No %s id passed in (%s)", o->kind,
                                     o->ids_field);
        return;
    }
    struct lx_admin__batch b;
    lx_admin__batch_init(&b, ctx, 1);
    lx_admin__batch_add_ids(&b, sql_ids(ctx, "SELECT * FROM ", o->table, o->id_col, d->n), d->ids,
                            d->n);
    lx_admin__batch_run(&b, delete_rows);
}

/* ---- the limits of users and teams ---- */

void lx_admin__limits_init(struct lx_admin__limits *l)
{
    memset(l, 0, sizeof(*l));
    l->max_budget = l->soft_budget = LX_NO_LIMIT;
    l->rpm = l->tpm = l->mpr = LX_NO_LIMIT;
}

int lx_admin__field_limits(struct lx_admin_ctx *ctx, const cJSON *body, struct lx_admin__limits *l)
{
    if (lx_admin_field_strlist_json(ctx, body, "models", &l->models, &l->has_models) ||
        lx_admin_field_object_json(ctx, body, "metadata", &l->metadata, &l->has_metadata) ||
        lx_admin_field_duration(ctx, body, "budget_duration", &l->budget_duration, &l->budget_s,
                                &l->has_budget_duration) ||
        lx_admin__field_limit(ctx, body, "rpm_limit", &l->rpm, &l->has_rpm) ||
        lx_admin__field_limit(ctx, body, "tpm_limit", &l->tpm, &l->has_tpm) ||
        lx_admin__field_limit(ctx, body, "max_parallel_requests", &l->mpr, &l->has_mpr) ||
        lx_admin_field_money(ctx, body, "max_budget", &l->max_budget, &l->has_max_budget) ||
        lx_admin_field_money(ctx, body, "soft_budget", &l->soft_budget, &l->has_soft_budget)) {
        return -1;
    }
    const cJSON *mb = cJSON_GetObjectItemCaseSensitive(body, "max_budget");
    if (mb && cJSON_IsNull(mb)) {
        l->has_max_budget = true;
        l->max_budget = LX_NO_LIMIT;
    }
    return 0;
}

static struct lx_store_param limit_param(long long v)
{
    return v >= 0 ? LX_SP_I(v) : LX_SP_NUL;
}

void lx_admin__limits_params(const struct lx_admin__limits *l, const struct lx_store_result *before,
                             int64_t now, struct lx_store_param p[8])
{
    if (!before) {
        p[0] = LX_SP_T(l->models);
        p[1] = limit_param(l->max_budget);
        p[2] = limit_param(l->soft_budget);
        p[3] = LX_SP_T(l->budget_duration);
        p[4] = l->budget_duration ? LX_SP_I(now + l->budget_s) : LX_SP_NUL;
        p[5] = limit_param(l->rpm);
        p[6] = limit_param(l->tpm);
        p[7] = limit_param(l->mpr);
        return;
    }
    p[0] = lx_admin__keep_text(before, "models", l->models, l->has_models);
    p[1] = lx_admin__keep_int(before, "max_budget_nanos", l->max_budget, l->has_max_budget);
    p[2] = lx_admin__keep_int(before, "soft_budget_nanos", l->soft_budget, l->has_soft_budget);
    p[3] =
        lx_admin__keep_text(before, "budget_duration", l->budget_duration, l->has_budget_duration);
    p[4] = l->has_budget_duration ? LX_SP_I(now + l->budget_s)
                                  : lx_admin__keep_int(before, "budget_reset_at", 0, false);
    p[5] = lx_admin__keep_int(before, "rpm_limit", l->rpm, l->has_rpm);
    p[6] = lx_admin__keep_int(before, "tpm_limit", l->tpm, l->has_tpm);
    p[7] = lx_admin__keep_int(before, "max_parallel_requests", l->mpr, l->has_mpr);
}
