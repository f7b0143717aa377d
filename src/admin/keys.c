/*
 * /key/... : LiteLLM's virtual-key admin routes, on lx_keys.
 *
 * Request and response shapes follow LiteLLM's GenerateKeyRequest /
 * GenerateKeyResponse, /key/info's {"key", "info"}, KeyListResponse... Money
 * is USD in JSON and nano-USD in the store; times are ISO 8601 in JSON and
 * unix seconds in the store. The raw key appears only in the answer of the
 * call that created it; the store holds its SHA-256.
 *
 * Every change is one batch (one transaction) with its audit row, and
 * invalidates the affected cached identities once the store confirmed it.
 * Handlers that need a read before their write (permissions, 404, the
 * audit's before-value) keep their state in ctx->ud across the two steps.
 *
 * Non-admin callers (internal_user) may create, change and delete only keys
 * of their own user_id, and read those (plus the key they call with).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "admin/admin_int.h"
#include "auth/auth.h"
#include "core/alloc.h"
#include "core/time.h"
#include "log/log.h"

#define MAX_KEYS_PER_DELETE 1000
#define MAX_SQL 4096
#define LIST_MAX_SIZE 100

/* ---- row -> JSON ---- */

static void iso_time(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
}

static void add_str(cJSON *o, const char *name, const char *v)
{
    if (v) {
        cJSON_AddStringToObject(o, name, v);
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

static void add_int(cJSON *o, const struct lx_store_result *r, size_t row, const char *col,
                    const char *name)
{
    const char *v = lx_store_cell(r, row, col);
    if (v) {
        cJSON_AddNumberToObject(o, name, (double)lx_store_cell_int(r, row, col, 0));
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

static void add_usd(cJSON *o, const struct lx_store_result *r, size_t row, const char *col,
                    const char *name, bool null_as_zero)
{
    const char *v = lx_store_cell(r, row, col);
    if (v || null_as_zero) {
        cJSON_AddNumberToObject(o, name, (double)lx_store_cell_int(r, row, col, 0) / 1e9);
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

static void add_time(cJSON *o, const struct lx_store_result *r, size_t row, const char *col,
                     const char *name)
{
    int64_t t = lx_store_cell_int(r, row, col, 0);
    if (lx_store_cell(r, row, col) && t > 0) {
        char buf[40];
        iso_time(t, buf, sizeof(buf));
        cJSON_AddStringToObject(o, name, buf);
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

/* A JSON text cell as a JSON value (fallback when absent or malformed). */
static void add_json(cJSON *o, const struct lx_store_result *r, size_t row, const char *col,
                     const char *name, const char *fallback)
{
    const char *v = lx_store_cell(r, row, col);
    cJSON *j = v ? cJSON_Parse(v) : NULL;
    if (!j && fallback) {
        j = cJSON_Parse(fallback);
    }
    if (j) {
        cJSON_AddItemToObject(o, name, j);
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

/* One lx_keys row in LiteLLM's LiteLLM_VerificationToken shape. */
static cJSON *key_json(const struct lx_store_result *r, size_t row)
{
    cJSON *o = cJSON_CreateObject();
    add_str(o, "token", lx_store_cell(r, row, "token"));
    add_str(o, "key_name", lx_store_cell(r, row, "key_name"));
    add_str(o, "key_alias", lx_store_cell(r, row, "key_alias"));
    add_usd(o, r, row, "spend_nanos", "spend", true);
    add_usd(o, r, row, "max_budget_nanos", "max_budget", false);
    add_usd(o, r, row, "soft_budget_nanos", "soft_budget", false);
    add_time(o, r, row, "expires", "expires");
    add_json(o, r, row, "models", "models", "[]");
    cJSON_AddItemToObject(o, "aliases", cJSON_CreateObject());
    cJSON_AddItemToObject(o, "config", cJSON_CreateObject());
    add_str(o, "user_id", lx_store_cell(r, row, "user_id"));
    add_str(o, "team_id", lx_store_cell(r, row, "team_id"));
    cJSON_AddItemToObject(o, "permissions", cJSON_CreateObject());
    add_int(o, r, row, "max_parallel_requests", "max_parallel_requests");
    add_json(o, r, row, "metadata", "metadata", "{}");
    cJSON_AddBoolToObject(o, "blocked", lx_store_cell_int(r, row, "blocked", 0) != 0);
    add_int(o, r, row, "tpm_limit", "tpm_limit");
    add_int(o, r, row, "rpm_limit", "rpm_limit");
    add_str(o, "budget_duration", lx_store_cell(r, row, "budget_duration"));
    add_time(o, r, row, "budget_reset_at", "budget_reset_at");
    cJSON_AddItemToObject(o, "allowed_cache_controls", cJSON_CreateArray());
    cJSON_AddItemToObject(o, "model_spend", cJSON_CreateObject());
    cJSON_AddItemToObject(o, "model_max_budget", cJSON_CreateObject());
    add_json(o, r, row, "model_rpm_limit", "model_rpm_limit", NULL);
    add_json(o, r, row, "model_tpm_limit", "model_tpm_limit", NULL);
    add_str(o, "created_by", lx_store_cell(r, row, "created_by"));
    add_str(o, "updated_by", lx_store_cell(r, row, "created_by"));
    add_time(o, r, row, "created_at", "created_at");
    add_time(o, r, row, "updated_at", "updated_at");
    add_time(o, r, row, "last_used_at", "last_active");
    return o;
}

/* ---- shared steps ---- */

/* May the caller read (or, when !read, change) a key of row_user? */
static bool owns(const struct lx_admin_ctx *ctx, const char *row_user, const char *row_token,
                 bool read)
{
    const struct lx_identity *c = ctx->caller;
    if (read ? lx_admin_can_read_all(c) : lx_admin_is_admin(c)) {
        return true;
    }
    if (row_token && c->token[0] && strcmp(row_token, c->token) == 0) {
        return true;
    }
    return c->user_id && row_user && strcmp(c->user_id, row_user) == 0;
}

static void respond_forbidden_key(struct lx_admin_ctx *ctx)
{
    lx_admin_respond_error(ctx, 403,
                           "You are not allowed to access this key. Your role=%s. Only the key's "
                           "user and proxy admins may",
                           lx_user_role_name(ctx->caller->role));
}

static void respond_not_found(struct lx_admin_ctx *ctx)
{
    lx_admin_respond_error_param(ctx, 404, "key", "Key not found in database");
}

/* The JSON of the body without the raw key, for audit rows. */
static const char *audit_body(struct lx_admin_ctx *ctx)
{
    cJSON *copy = cJSON_Duplicate(ctx->body, true);
    if (!copy) {
        return NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "key");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "new_key");
    const char *s = lx_admin__print(ctx, copy);
    cJSON_Delete(copy);
    return s;
}

/* ---- the settable fields of a key ---- */

enum field_kind {
    F_STR,
    F_INT,
    F_MONEY,
    F_LIST,
    F_OBJ,
    F_LIMITS, /* an object of non-negative integers (model_rpm_limit) */
    F_BOOL,
    F_EXPIRES,      /* "duration" -> expires */
    F_BUDGET_RESET, /* "budget_duration" -> budget_duration and budget_reset_at */
};

struct field_spec {
    const char *json;
    const char *column;
    enum field_kind kind;
    bool admin_only;
};

static const struct field_spec key_fields[] = {
    {"key_alias", "key_alias", F_STR, false},
    {"models", "models", F_LIST, false},
    {"max_budget", "max_budget_nanos", F_MONEY, false},
    {"soft_budget", "soft_budget_nanos", F_MONEY, false},
    {"spend", "spend_nanos", F_MONEY, true},
    {"budget_duration", "budget_duration", F_BUDGET_RESET, false},
    {"rpm_limit", "rpm_limit", F_INT, false},
    {"tpm_limit", "tpm_limit", F_INT, false},
    {"max_parallel_requests", "max_parallel_requests", F_INT, false},
    {"model_rpm_limit", "model_rpm_limit", F_LIMITS, false},
    {"model_tpm_limit", "model_tpm_limit", F_LIMITS, false},
    {"metadata", "metadata", F_OBJ, false},
    {"user_id", "user_id", F_STR, true},
    {"team_id", "team_id", F_STR, true},
    {"duration", "expires", F_EXPIRES, false},
    {"blocked", "blocked", F_BOOL, true},
};

#define MAX_SET (LX_ARRAY_LEN(key_fields) + 2)

/* Columns and values collected from a body. */
struct key_set {
    const char *cols[MAX_SET];
    struct lx_store_param vals[MAX_SET];
    size_t n;
    const char *user_id; /* as given */
    const char *team_id;
    const char *key_alias;
};

static void set_add(struct key_set *ks, const char *col, struct lx_store_param v)
{
    ks->cols[ks->n] = col;
    ks->vals[ks->n] = v;
    ks->n++;
}

static int check_limits(struct lx_admin_ctx *ctx, const char *name, const char *json)
{
    cJSON *o = cJSON_Parse(json);
    const cJSON *it;
    bool ok = cJSON_IsObject(o);
    if (ok) {
        cJSON_ArrayForEach(it, o)
        {
            if (!cJSON_IsNumber(it) || it->valuedouble < 0 ||
                it->valuedouble != floor(it->valuedouble)) {
                ok = false;
            }
        }
    }
    cJSON_Delete(o);
    if (!ok) {
        lx_admin_respond_error_param(ctx, 400, name,
                                     "Invalid value for '%s': expected an object of model names "
                                     "to non-negative integers",
                                     name);
        return -1;
    }
    return 0;
}

/*
 * Read the settable fields of the body into ks. A non-admin setting an
 * admin-only field gets 403 (user_id may be their own). Returns -1 when an
 * answer has been sent.
 */
static int collect_fields(struct lx_admin_ctx *ctx, struct key_set *ks)
{
    const cJSON *b = ctx->body;
    bool admin = lx_admin_is_admin(ctx->caller);
    int64_t now = lx_wall_s();
    for (size_t i = 0; i < LX_ARRAY_LEN(key_fields); i++) {
        const struct field_spec *f = &key_fields[i];
        bool present = false;
        const char *s = NULL;
        long long n = 0;
        int64_t money = 0;
        bool flag = false;
        int rc = 0;
        switch (f->kind) {
        case F_STR:
            rc = lx_admin_field_str(ctx, b, f->json, &s, &present);
            break;
        case F_INT:
            rc = lx_admin_field_int(ctx, b, f->json, &n, &present);
            break;
        case F_MONEY:
            rc = lx_admin_field_money(ctx, b, f->json, &money, &present);
            break;
        case F_LIST:
            rc = lx_admin_field_strlist_json(ctx, b, f->json, &s, &present);
            break;
        case F_OBJ:
        case F_LIMITS:
            rc = lx_admin_field_object_json(ctx, b, f->json, &s, &present);
            if (!rc && present && f->kind == F_LIMITS) {
                rc = check_limits(ctx, f->json, s);
            }
            break;
        case F_BOOL:
            rc = lx_admin_field_bool(ctx, b, f->json, &flag, &present);
            break;
        case F_EXPIRES:
        case F_BUDGET_RESET:
            rc = lx_admin_field_duration(ctx, b, f->json, &s, &n, &present);
            break;
        }
        if (rc) {
            return -1;
        }
        if (!present) {
            continue;
        }
        if (f->admin_only && !admin) {
            bool own_user = strcmp(f->json, "user_id") == 0 && ctx->caller->user_id &&
                            strcmp(s, ctx->caller->user_id) == 0;
            if (!own_user) {
                lx_admin_respond_error_param(ctx, 403, f->json,
                                             "Only proxy admins may set '%s'. Your role=%s",
                                             f->json, lx_user_role_name(ctx->caller->role));
                return -1;
            }
        }
        switch (f->kind) {
        case F_STR:
            if (strcmp(f->json, "user_id") == 0) {
                ks->user_id = s;
            } else if (strcmp(f->json, "team_id") == 0) {
                ks->team_id = s;
            } else if (strcmp(f->json, "key_alias") == 0) {
                ks->key_alias = s;
            }
            set_add(ks, f->column, LX_SP_T(s));
            break;
        case F_LIST:
        case F_OBJ:
        case F_LIMITS:
            set_add(ks, f->column, LX_SP_T(s));
            break;
        case F_INT:
            set_add(ks, f->column, LX_SP_I(n));
            break;
        case F_MONEY:
            set_add(ks, f->column, LX_SP_I(money));
            break;
        case F_BOOL:
            set_add(ks, f->column, LX_SP_I(flag ? 1 : 0));
            break;
        case F_EXPIRES:
            set_add(ks, f->column, LX_SP_I(now + n));
            break;
        case F_BUDGET_RESET:
            set_add(ks, "budget_duration", LX_SP_T(s));
            set_add(ks, "budget_reset_at", LX_SP_I(now + n));
            break;
        }
    }
    return 0;
}

/* ---- /key/generate ---- */

/*
 * A new key into key (cap bytes): custom, given in the body's `field`, which
 * must start with "sk-"; else a random one. Then its hash (token) and masked
 * name. -1 when answered.
 */
static int key_value(struct lx_admin_ctx *ctx, const char *field, const char *custom, char *key,
                     size_t cap, char token[65], char *name, size_t name_cap)
{
    if (custom) {
        size_t n = strlen(custom);
        if (n < 4 || strncmp(custom, "sk-", 3) != 0 || n >= cap) {
            lx_admin_respond_error_param(ctx, 400, field,
                                         "Invalid value for '%s': a custom key must start with "
                                         "'sk-' and be at most 255 characters",
                                         field);
            return -1;
        }
        memcpy(key, custom, n + 1);
    } else if (lx_auth_key_generate(key, cap)) {
        lx_admin_respond_error(ctx, 500, "Could not generate a key: no randomness available");
        return -1;
    }
    lx_auth_key_hash(lx_str_c(key), token);
    lx_auth_key_mask(lx_str_c(key), name, name_cap);
    return 0;
}

struct generate {
    char key[LX_AUTH_KEY_LEN + 256];
    char token[65];
    char key_name[32];
    struct key_set ks;
    struct lx_store_param params[MAX_SET + 8];
    struct lx_store_param user_params[2];
    struct lx_admin_audit audit;
    char *sql;
};

/* ctx->ud_free of /key/generate: the raw key does not outlive the answer. */
static void generate_free(void *ud)
{
    struct generate *g = ud;
    OPENSSL_cleanse(g->key, sizeof(g->key));
    lx_free(g);
}

static void on_generated(void *ud, int rc, const struct lx_store_result *res,
                         const struct lx_error *err)
{
    struct lx_admin_ctx *ctx = ud;
    struct generate *g = ctx->ud;
    if (rc == LX_ECONFLICT) {
        if (ctx->body && cJSON_GetObjectItemCaseSensitive(ctx->body, "key_alias")) {
            lx_admin_respond_error_param(ctx, 400, "key_alias",
                                         "Key with this alias or key value already exists. "
                                         "Unique key aliases across all keys are required.");
        } else {
            lx_admin_respond_error_param(ctx, 400, "key", "This key value is already in use");
        }
        return;
    }
    if (rc || res->n_rows == 0) {
        lx_admin_respond_store_error(ctx, rc ? rc : LX_EINTERNAL, err);
        return;
    }
    cJSON *o = key_json(res, 0);
    cJSON_AddStringToObject(o, "key", g->key);
    cJSON_AddStringToObject(o, "token_id", g->token);
    const cJSON *dur = cJSON_GetObjectItemCaseSensitive(ctx->body, "duration");
    cJSON_AddItemToObject(o, "duration",
                          cJSON_IsString(dur) ? cJSON_CreateString(dur->valuestring)
                                              : cJSON_CreateNull());
    lx_admin_answer(ctx, o);
}

/* Queue the user upsert, the key insert and the audit row. */
static void generate_write(struct lx_admin_ctx *ctx)
{
    struct generate *g = ctx->ud;
    struct key_set *ks = &g->ks;
    int64_t now = lx_wall_s();
    /* Fixed columns first: token, key_name, created_by, created_at, updated_at. */
    const char *fixed[] = {"token", "key_name", "created_by", "created_at", "updated_at"};
    struct lx_store_param fixed_v[] = {LX_SP_T(g->token), LX_SP_T(g->key_name),
                                       LX_SP_T(lx_admin_caller_name(ctx)), LX_SP_I(now),
                                       LX_SP_I(now)};
    size_t np = 0;
    char cols[1024] = "", vals[512] = "";
    size_t cl = 0, vl = 0;
    for (size_t i = 0; i < LX_ARRAY_LEN(fixed) + ks->n; i++) {
        const char *col = i < LX_ARRAY_LEN(fixed) ? fixed[i] : ks->cols[i - LX_ARRAY_LEN(fixed)];
        g->params[np++] = i < LX_ARRAY_LEN(fixed) ? fixed_v[i] : ks->vals[i - LX_ARRAY_LEN(fixed)];
        cl += (size_t)snprintf(cols + cl, sizeof(cols) - cl, "%s%s", i ? ", " : "", col);
        vl += (size_t)snprintf(vals + vl, sizeof(vals) - vl, "%s$%zu", i ? ", " : "", np);
    }
    g->sql = lx_arena_printf(&ctx->arena, "INSERT INTO lx_keys (%s) VALUES (%s) RETURNING *", cols,
                             vals);
    struct lx_store_stmt st[3];
    size_t n = 0;
    if (ks->user_id) {
        /* A key's user exists from its first key on, as LiteLLM creates it. */
        g->user_params[0] = LX_SP_T(ks->user_id);
        g->user_params[1] = LX_SP_I(now);
        st[n++] = (struct lx_store_stmt){
            "INSERT INTO lx_users (user_id, created_at, updated_at) VALUES ($1, $2, $2) "
            "ON CONFLICT (user_id) DO NOTHING",
            g->user_params, 2};
    }
    lx_admin_audit_stmt(ctx, &g->audit, "created", "lx_keys", g->token, NULL, audit_body(ctx),
                        &st[n++]);
    st[n++] = (struct lx_store_stmt){g->sql, g->params, np};
    lx_admin_exec(ctx, st, n, on_generated);
}

static void on_team_checked(void *ud, int rc, const struct lx_store_result *res,
                            const struct lx_error *err)
{
    struct lx_admin_ctx *ctx = ud;
    struct generate *g = ctx->ud;
    if (rc || res->n_rows == 0) {
        const char *team = g->ks.team_id; /* in the body, which the context owns */
        if (rc) {
            lx_admin_respond_store_error(ctx, rc, err);
        } else {
            lx_admin_respond_error_param(ctx, 400, "team_id", "Team not found: team_id='%.*s'", 200,
                                         team);
        }
        return;
    }
    generate_write(ctx);
}

void lx_admin__key_generate(struct lx_admin_ctx *ctx)
{
    struct generate *g = LX_NEW(struct generate);
    ctx->ud = g;
    ctx->ud_free = generate_free;
    if (collect_fields(ctx, &g->ks)) {
        return;
    }
    const struct lx_identity *c = ctx->caller;
    if (!lx_admin_is_admin(c)) {
        /* internal_user: keys for themselves only. */
        if (!c->user_id) {
            lx_admin_respond_error(ctx, 403,
                                   "Only keys tied to a user may create keys. Your role=%s",
                                   lx_user_role_name(c->role));
            return;
        }
        if (!g->ks.user_id) {
            g->ks.user_id = c->user_id;
            set_add(&g->ks, "user_id", LX_SP_T(c->user_id));
        }
    }
    const char *custom = NULL;
    bool has_custom = false;
    if (lx_admin_field_str(ctx, ctx->body, "key", &custom, &has_custom)) {
        return;
    }
    if (key_value(ctx, "key", has_custom ? custom : NULL, g->key, sizeof(g->key), g->token,
                  g->key_name, sizeof(g->key_name))) {
        return;
    }
    if (g->ks.team_id) {
        struct lx_store_param p[] = {LX_SP_T(g->ks.team_id)};
        struct lx_store_stmt st = {"SELECT team_id FROM lx_teams WHERE team_id = $1", p, 1};
        lx_admin_exec(ctx, &st, 1, on_team_checked);
        return;
    }
    generate_write(ctx);
}

/* ---- reads of one key: /key/info and the first step of the changes ---- */

typedef void (*key_read_fn)(struct lx_admin_ctx *ctx, const struct lx_store_result *res);

struct key_op {
    char token[65];
    const char *key_param; /* as the client gave it */
    key_read_fn next;
    struct key_set ks;
    struct lx_store_param params[MAX_SET + 8];
    struct lx_admin_audit audit;
    char *sql;
    const char *before; /* the row before the change, JSON */
    /* regenerate */
    char new_key[LX_AUTH_KEY_LEN + 256];
    char new_token[65];
    char new_name[32];
    char old_name[64];
    struct lx_store_param p2[8];
    struct lx_store_param p3[2];
    long long grace_s; /* regenerate: how long the old key stays valid */
    bool blocked;      /* block/unblock */
};

/* ctx->ud_free of the key operations: a new raw key does not outlive the answer. */
static void op_free(void *ud)
{
    struct key_op *op = ud;
    OPENSSL_cleanse(op->new_key, sizeof(op->new_key));
    lx_free(op);
}

static struct key_op *op_new(struct lx_admin_ctx *ctx)
{
    struct key_op *op = LX_NEW(struct key_op);
    ctx->ud = op;
    ctx->ud_free = op_free;
    return op;
}

static const char *row_json_text(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    cJSON *o = key_json(res, 0);
    const char *s = lx_admin__print(ctx, o);
    cJSON_Delete(o);
    return s;
}

static void info_answer(struct lx_admin_ctx *ctx, const struct lx_store_result *res);

static void on_key_read(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct key_op *op = ctx->ud;
    if (res->n_rows == 0) {
        respond_not_found(ctx);
        return;
    }
    if (!owns(ctx, lx_store_cell(res, 0, "user_id"), lx_store_cell(res, 0, "token"),
              op->next == info_answer)) {
        respond_forbidden_key(ctx);
        return;
    }
    op->before = row_json_text(ctx, res);
    op->next(ctx, res);
}

/*
 * Start an operation on one key named by `key` (raw or hashed): read it,
 * check the caller may touch it, then `next` runs with the row.
 */
static void key_op_start(struct lx_admin_ctx *ctx, struct key_op *op, const char *key,
                         key_read_fn next)
{
    op->key_param = key;
    op->next = next;
    lx_auth_token_of(lx_str_c(key), op->token);
    op->p3[0] = LX_SP_T(op->token);
    struct lx_store_stmt st = {"SELECT * FROM lx_keys WHERE token = $1", op->p3, 1};
    lx_admin_run(ctx, &st, 1, on_key_read);
}

/* The body's "key" (required). NULL when an answer has been sent. */
static const char *body_key(struct lx_admin_ctx *ctx)
{
    const char *key = NULL;
    bool present = false;
    if (lx_admin_field_str(ctx, ctx->body, "key", &key, &present)) {
        return NULL;
    }
    if (!present || !key[0]) {
        lx_admin_respond_error_param(ctx, 400, "key", "Missing required parameter: 'key'");
        return NULL;
    }
    return key;
}

static void info_answer(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct key_op *op = ctx->ud;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "key", op->key_param);
    cJSON_AddItemToObject(o, "info", key_json(res, 0));
    lx_admin_answer(ctx, o);
}

void lx_admin__key_info(struct lx_admin_ctx *ctx)
{
    const char *key = lx_admin_query(ctx, "key");
    if (!key || !key[0]) {
        if (!ctx->caller->token[0]) {
            lx_admin_respond_error_param(ctx, 400, "key",
                                         "Missing required parameter: 'key' (the master key has "
                                         "no key record)");
            return;
        }
        key = ctx->caller->token;
    }
    key_op_start(ctx, op_new(ctx), key, info_answer);
}

/* ---- /key/update, /key/block, /key/unblock ---- */

static void on_key_written(void *ud, int rc, const struct lx_store_result *res,
                           const struct lx_error *err)
{
    struct lx_admin_ctx *ctx = ud;
    struct key_op *op = ctx->ud;
    if (rc == LX_ECONFLICT) {
        lx_admin_respond_error_param(ctx, 400, "key_alias",
                                     "Key with this alias already exists. Unique key aliases "
                                     "across all keys are required.");
        return;
    }
    if (rc) {
        lx_admin_respond_store_error(ctx, rc, err);
        return;
    }
    if (res->n_rows == 0) {
        respond_not_found(ctx);
        return;
    }
    lx_auth_invalidate_token(op->token);
    cJSON *o = key_json(res, 0);
    cJSON_AddStringToObject(o, "key", op->key_param);
    lx_admin_answer(ctx, o);
}

/* UPDATE the collected columns of op->ks (plus updated_at) with an audit row. */
static void write_update(struct lx_admin_ctx *ctx, const char *action)
{
    struct key_op *op = ctx->ud;
    struct key_set *ks = &op->ks;
    char set[1024];
    size_t sl = 0;
    size_t np = 0;
    op->params[np++] = LX_SP_T(op->token);
    op->params[np++] = LX_SP_I(lx_wall_s());
    sl += (size_t)snprintf(set, sizeof(set), "updated_at = $2");
    for (size_t i = 0; i < ks->n; i++) {
        op->params[np++] = ks->vals[i];
        sl += (size_t)snprintf(set + sl, sizeof(set) - sl, ", %s = $%zu", ks->cols[i], np);
    }
    op->sql =
        lx_arena_printf(&ctx->arena, "UPDATE lx_keys SET %s WHERE token = $1 RETURNING *", set);
    struct lx_store_stmt st[2];
    lx_admin_audit_stmt(ctx, &op->audit, action, "lx_keys", op->token, op->before, audit_body(ctx),
                        &st[0]);
    st[1] = (struct lx_store_stmt){op->sql, op->params, np};
    lx_admin_exec(ctx, st, 2, on_key_written);
}

static void update_write(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    (void)res;
    write_update(ctx, "updated");
}

void lx_admin__key_update(struct lx_admin_ctx *ctx)
{
    const char *key = body_key(ctx);
    if (!key) {
        return;
    }
    struct key_op *op = op_new(ctx);
    if (collect_fields(ctx, &op->ks)) {
        return;
    }
    key_op_start(ctx, op, key, update_write);
}

static void block_write(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    (void)res;
    struct key_op *op = ctx->ud;
    set_add(&op->ks, "blocked", LX_SP_I(op->blocked ? 1 : 0));
    write_update(ctx, op->blocked ? "blocked" : "unblocked");
}

static void block(struct lx_admin_ctx *ctx, bool blocked)
{
    const char *key = body_key(ctx);
    if (!key) {
        return;
    }
    struct key_op *op = op_new(ctx);
    op->blocked = blocked;
    key_op_start(ctx, op, key, block_write);
}

void lx_admin__key_block(struct lx_admin_ctx *ctx)
{
    block(ctx, true);
}

void lx_admin__key_unblock(struct lx_admin_ctx *ctx)
{
    block(ctx, false);
}

/* ---- /key/regenerate ---- */

static void on_regenerated(void *ud, int rc, const struct lx_store_result *res,
                           const struct lx_error *err)
{
    struct lx_admin_ctx *ctx = ud;
    struct key_op *op = ctx->ud;
    if (rc == LX_ECONFLICT) {
        lx_admin_respond_error_param(ctx, 400, "new_key", "This key value is already in use");
        return;
    }
    if (rc || res->n_rows == 0) {
        lx_admin_respond_store_error(ctx, rc ? rc : LX_EINTERNAL, err);
        return;
    }
    lx_auth_invalidate_token(op->token);
    cJSON *o = key_json(res, 0);
    cJSON_AddStringToObject(o, "key", op->new_key);
    cJSON_AddStringToObject(o, "token_id", op->new_token);
    lx_admin_answer(ctx, o);
}

static void regenerate_write(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct key_op *op = ctx->ud;
    int64_t now = lx_wall_s();
    long long grace = op->grace_s;
    bool has_grace = grace > 0;
    snprintf(op->old_name, sizeof(op->old_name), "%s",
             lx_store_cell(res, 0, "key_name") ? lx_store_cell(res, 0, "key_name") : "");
    int64_t old_expires = lx_store_cell_int(res, 0, "expires", 0);
    struct lx_store_stmt st[4];
    size_t n = 0;
    /* The record moves to the new key: alias, limits and spend stay with it. */
    op->params[0] = LX_SP_T(op->token);
    op->params[1] = LX_SP_T(op->new_token);
    op->params[2] = LX_SP_T(op->new_name);
    op->params[3] = LX_SP_I(now);
    st[n++] = (struct lx_store_stmt){
        "UPDATE lx_keys SET token = $2, key_name = $3, updated_at = $4 WHERE token = $1",
        op->params, 4};
    if (has_grace && grace > 0) {
        /* The old key stays valid until the grace period ends, as a copy without alias. */
        int64_t until = now + grace;
        if (old_expires > 0 && old_expires < until) {
            until = old_expires;
        }
        op->p2[0] = LX_SP_T(op->token);
        op->p2[1] = LX_SP_T(op->new_token);
        op->p2[2] = LX_SP_T(op->old_name);
        op->p2[3] = LX_SP_I(until);
        op->p2[4] = LX_SP_I(now);
        st[n++] = (struct lx_store_stmt){
            "INSERT INTO lx_keys (token, key_name, key_alias, user_id, team_id, models,"
            " max_budget_nanos, soft_budget_nanos, spend_nanos, budget_duration, budget_reset_at,"
            " rpm_limit, tpm_limit, max_parallel_requests, model_rpm_limit, model_tpm_limit,"
            " expires, blocked, metadata, created_by, created_at, updated_at)"
            " SELECT $1, $3, NULL, user_id, team_id, models, max_budget_nanos, soft_budget_nanos,"
            " 0, budget_duration, budget_reset_at, rpm_limit, tpm_limit, max_parallel_requests,"
            " model_rpm_limit, model_tpm_limit, $4, blocked, metadata, created_by, created_at, $5"
            " FROM lx_keys WHERE token = $2",
            op->p2, 5};
    }
    lx_admin_audit_stmt(ctx, &op->audit, "regenerated", "lx_keys", op->token, NULL, audit_body(ctx),
                        &st[n++]);
    op->p3[0] = LX_SP_T(op->new_token);
    st[n++] = (struct lx_store_stmt){"SELECT * FROM lx_keys WHERE token = $1", op->p3, 1};
    lx_admin_exec(ctx, st, n, on_regenerated);
}

void lx_admin__key_regenerate(struct lx_admin_ctx *ctx)
{
    /* POST /key/{key}/regenerate names the key in the path. */
    struct lx_str in_path = lx_admin__path_key(ctx->req->path);
    const char *key = NULL;
    if (in_path.n) {
        char *k = lx_arena_alloc(&ctx->arena, in_path.n + 1);
        if (!lx_admin__url_decode(in_path, k, in_path.n + 1)) {
            lx_admin_respond_error_param(ctx, 400, "key", "Invalid key in the path");
            return;
        }
        key = k;
    } else {
        key = body_key(ctx);
    }
    if (!key) {
        return;
    }
    struct key_op *op = op_new(ctx);
    const char *custom = NULL;
    bool has_custom = false;
    const char *grace_text = NULL;
    bool has_grace = false;
    if (lx_admin_field_str(ctx, ctx->body, "new_key", &custom, &has_custom) ||
        lx_admin_field_duration(ctx, ctx->body, "grace_period", &grace_text, &op->grace_s,
                                &has_grace)) {
        return;
    }
    if (key_value(ctx, "new_key", has_custom ? custom : NULL, op->new_key, sizeof(op->new_key),
                  op->new_token, op->new_name, sizeof(op->new_name))) {
        return;
    }
    key_op_start(ctx, op, key, regenerate_write);
}

/* ---- /key/delete ---- */

struct del {
    const char **items; /* tokens, or aliases */
    size_t n;
    bool by_alias;
    struct lx_store_param *params;
    char *select_sql;
    char *delete_sql;
    char (*tokens)[65];
    size_t n_tokens;
    struct lx_admin_audit *audits;
    struct lx_store_stmt *stmts;
};

static void on_deleted(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    (void)res;
    struct del *d = ctx->ud;
    for (size_t i = 0; i < d->n_tokens; i++) {
        lx_auth_invalidate_token(d->tokens[i]);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "deleted_keys");
    for (size_t i = 0; i < d->n; i++) {
        cJSON_AddItemToArray(list, cJSON_CreateString(d->items[i]));
    }
    lx_admin_answer(ctx, o);
}

static void on_delete_read(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct del *d = ctx->ud;
    if (res->n_rows == 0) {
        lx_admin_respond_error_param(ctx, 404, "keys",
                                     "Key not found in database: none of the given keys exist");
        return;
    }
    if (res->n_rows < d->n) {
        lx_admin_respond_error_param(ctx, 404, "keys",
                                     "Failed to delete all keys: %zu of %zu not found in database",
                                     d->n - res->n_rows, d->n);
        return;
    }
    for (size_t i = 0; i < res->n_rows; i++) {
        if (!owns(ctx, lx_store_cell(res, i, "user_id"), lx_store_cell(res, i, "token"), false)) {
            respond_forbidden_key(ctx);
            return;
        }
    }
    d->n_tokens = res->n_rows;
    d->tokens = lx_arena_alloc(&ctx->arena, d->n_tokens * sizeof(*d->tokens));
    d->audits = lx_arena_alloc(&ctx->arena, d->n_tokens * sizeof(*d->audits));
    d->stmts = lx_arena_alloc(&ctx->arena, (d->n_tokens + 1) * sizeof(*d->stmts));
    for (size_t i = 0; i < d->n_tokens; i++) {
        snprintf(d->tokens[i], sizeof(d->tokens[i]), "%s", lx_store_cell(res, i, "token"));
        lx_admin_audit_stmt(ctx, &d->audits[i], "deleted", "lx_keys", d->tokens[i], NULL, NULL,
                            &d->stmts[i]);
    }
    d->stmts[d->n_tokens] = (struct lx_store_stmt){d->delete_sql, d->params, d->n};
    lx_admin_run(ctx, d->stmts, d->n_tokens + 1, on_deleted);
}

void lx_admin__key_delete(struct lx_admin_ctx *ctx)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(ctx->body, "keys");
    const cJSON *aliases = cJSON_GetObjectItemCaseSensitive(ctx->body, "key_aliases");
    bool by_alias = !cJSON_IsArray(keys) || cJSON_GetArraySize(keys) == 0;
    const cJSON *list = by_alias ? aliases : keys;
    const char *name = by_alias ? "key_aliases" : "keys";
    if ((keys && !cJSON_IsNull(keys) && !cJSON_IsArray(keys)) ||
        (aliases && !cJSON_IsNull(aliases) && !cJSON_IsArray(aliases))) {
        lx_admin_respond_error_param(ctx, 400, cJSON_IsArray(keys) ? "key_aliases" : "keys",
                                     "Invalid value: 'keys' and 'key_aliases' must be lists of "
                                     "strings");
        return;
    }
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
    if (n <= 0) {
        lx_admin_respond_error_param(ctx, 400, "keys",
                                     "Missing required parameter: 'keys' or 'key_aliases' (a "
                                     "non-empty list)");
        return;
    }
    if (n > MAX_KEYS_PER_DELETE) {
        lx_admin_respond_error_param(ctx, 400, name, "Too many keys in one call: at most %d",
                                     MAX_KEYS_PER_DELETE);
        return;
    }
    struct del *d = lx_admin__state(ctx, sizeof(*d));
    d->by_alias = by_alias;
    d->n = (size_t)n;
    d->items = lx_arena_alloc(&ctx->arena, d->n * sizeof(*d->items));
    d->params = lx_arena_alloc(&ctx->arena, d->n * sizeof(*d->params));
    struct lx_buf in;
    lx_buf_init(&in, 16u * MAX_KEYS_PER_DELETE);
    size_t i = 0;
    const cJSON *it;
    bool bad = false;
    cJSON_ArrayForEach(it, list)
    {
        if (!cJSON_IsString(it)) {
            bad = true;
            break;
        }
        d->items[i] = it->valuestring;
        if (by_alias) {
            d->params[i] = LX_SP_T(it->valuestring);
        } else {
            char *tok = lx_arena_alloc(&ctx->arena, 65);
            lx_auth_token_of(lx_str_c(it->valuestring), tok);
            d->params[i] = LX_SP_T(tok);
        }
        i++;
        if (lx_buf_printf(&in, "%s$%zu", i > 1 ? ", " : "", i)) {
            bad = true;
            break;
        }
    }
    if (bad) {
        lx_buf_fini(&in);
        lx_admin_respond_error_param(ctx, 400, name, "Invalid value for '%s': expected strings",
                                     name);
        return;
    }
    const char *col = by_alias ? "key_alias" : "token";
    d->select_sql =
        lx_arena_printf(&ctx->arena, "SELECT token, user_id FROM lx_keys WHERE %s IN (%.*s)", col,
                        (int)in.len, in.data);
    d->delete_sql = lx_arena_printf(&ctx->arena, "DELETE FROM lx_keys WHERE %s IN (%.*s)", col,
                                    (int)in.len, in.data);
    lx_buf_fini(&in);
    struct lx_store_stmt st = {d->select_sql, d->params, d->n};
    lx_admin_run(ctx, &st, 1, on_delete_read);
}

/* ---- /key/list ---- */

struct list {
    struct lx_store_param p[7];
    long long page;
    long long size;
    bool full;
    int64_t total;
};

static void on_list_page(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct list *l = ctx->ud;
    cJSON *o = cJSON_CreateObject();
    cJSON *keys = cJSON_AddArrayToObject(o, "keys");
    for (size_t i = 0; i < res->n_rows; i++) {
        cJSON_AddItemToArray(keys, l->full ? key_json(res, i)
                                           : cJSON_CreateString(lx_store_cell(res, i, "token")));
    }
    cJSON_AddNumberToObject(o, "total_count", (double)l->total);
    cJSON_AddNumberToObject(o, "current_page", (double)l->page);
    cJSON_AddNumberToObject(o, "total_pages", (double)((l->total + l->size - 1) / l->size));
    lx_admin_answer(ctx, o);
}

/* The casts type NULL parameters for PostgreSQL (an untyped NULL has no type to infer). */
#define LIST_WHERE                                                                                 \
    " WHERE (CAST($1 AS TEXT) IS NULL OR user_id = $1)"                                            \
    " AND (CAST($2 AS TEXT) IS NULL OR team_id = $2)"                                              \
    " AND (CAST($3 AS TEXT) IS NULL OR key_alias = $3) AND (CAST($4 AS TEXT) IS NULL OR token = "  \
    "$4)"

static void on_list_count(void *ud, int rc, const struct lx_store_result *res,
                          const struct lx_error *err)
{
    struct lx_admin_ctx *ctx = ud;
    struct list *l = ctx->ud;
    if (rc || res->n_rows == 0) {
        lx_admin_respond_store_error(ctx, rc ? rc : LX_EINTERNAL, err);
        return;
    }
    l->total = lx_store_cell_int(res, 0, "n", 0);
    l->p[4] = LX_SP_I(l->size);
    l->p[5] = LX_SP_I((l->page - 1) * l->size);
    struct lx_store_stmt st = {"SELECT * FROM lx_keys" LIST_WHERE
                               " ORDER BY created_at DESC, token LIMIT $5 OFFSET $6",
                               l->p, 6};
    lx_admin_run(ctx, &st, 1, on_list_page);
}

static int query_int(struct lx_admin_ctx *ctx, const char *name, long long dflt, long long lo,
                     long long hi, long long *out)
{
    const char *v = lx_admin_query(ctx, name);
    *out = dflt;
    if (!v) {
        return 0;
    }
    unsigned long long n = 0;
    if (lx_str_to_u64(lx_str_c(v), (unsigned long long)hi, &n) || (long long)n < lo) {
        lx_admin_respond_error_param(ctx, 400, name,
                                     "Invalid value for '%s': expected an integer between %lld "
                                     "and %lld",
                                     name, lo, hi);
        return -1;
    }
    *out = (long long)n;
    return 0;
}

void lx_admin__key_list(struct lx_admin_ctx *ctx)
{
    long long page, size;
    if (query_int(ctx, "page", 1, 1, 1000000, &page) ||
        query_int(ctx, "size", 10, 1, LIST_MAX_SIZE, &size)) {
        return;
    }
    const char *user_id = lx_admin_query(ctx, "user_id");
    const char *team_id = lx_admin_query(ctx, "team_id");
    const char *alias = lx_admin_query(ctx, "key_alias");
    const char *full = lx_admin_query(ctx, "return_full_object");
    const char *token = NULL;
    const struct lx_identity *c = ctx->caller;
    if (!lx_admin_can_read_all(c)) {
        /* Others' keys stay invisible: a user sees their own; a key without user, itself. */
        if (c->user_id) {
            if (user_id && strcmp(user_id, c->user_id) != 0) {
                lx_admin_respond_error_param(ctx, 403, "user_id",
                                             "You may only list your own keys. Your role=%s",
                                             lx_user_role_name(c->role));
                return;
            }
            user_id = c->user_id;
        } else {
            token = c->token;
        }
    }
    struct list *l = lx_admin__state(ctx, sizeof(*l));
    l->page = page;
    l->size = size;
    l->full =
        full && (strcmp(full, "true") == 0 || strcmp(full, "True") == 0 || strcmp(full, "1") == 0);
    l->p[0] = LX_SP_T(user_id && user_id[0] ? user_id : NULL);
    l->p[1] = LX_SP_T(team_id && team_id[0] ? team_id : NULL);
    l->p[2] = LX_SP_T(alias && alias[0] ? alias : NULL);
    l->p[3] = LX_SP_T(token);
    struct lx_store_stmt st = {"SELECT COUNT(*) AS n FROM lx_keys" LIST_WHERE, l->p, 4};
    lx_admin_exec(ctx, &st, 1, on_list_count);
}
