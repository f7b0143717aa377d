/*
 * The admin API's dispatch: the route table, the role check, body parsing,
 * the context's lifetime and the answer helpers every admin handler uses.
 *
 * A context lives from lx_admin_dispatch until the one lx_admin_respond_*
 * call that answers. If the client leaves first, the abort callback clears
 * ctx->req, and the answer later only frees the context: handlers never
 * need to know.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin_int.h"
#include "core/alloc.h"
#include "core/rand.h"
#include "core/time.h"
#include "log/log.h"
#include "spend/endpoints.h"

#define ADMIN_MAX_QUERY_VALUE 4096
/* 1e9 USD in nano-USD still fits an int64 with room for sums. */
#define ADMIN_MAX_USD 1e9

/*
 * Every admin route. Paths are without /v1. Keep one line per route, in the
 * group of the file that implements it.
 */
static const struct lx_admin_route routes[] = {
    /* keys.c */
    {LX_HTTP_POST, "/key/generate", LX_PERM_SELF_WRITE, lx_admin__key_generate},
    {LX_HTTP_GET, "/key/info", LX_PERM_SELF_OR_READ, lx_admin__key_info},
    {LX_HTTP_POST, "/key/update", LX_PERM_SELF_WRITE, lx_admin__key_update},
    {LX_HTTP_POST, "/key/delete", LX_PERM_SELF_WRITE, lx_admin__key_delete},
    {LX_HTTP_POST, "/key/regenerate", LX_PERM_SELF_WRITE, lx_admin__key_regenerate},
    {LX_HTTP_GET, "/key/list", LX_PERM_SELF_OR_READ, lx_admin__key_list},
    {LX_HTTP_POST, "/key/block", LX_PERM_ADMIN, lx_admin__key_block},
    {LX_HTTP_POST, "/key/unblock", LX_PERM_ADMIN, lx_admin__key_unblock},

    /* users.c */
    {LX_HTTP_POST, "/user/new", LX_PERM_ADMIN, lx_admin__user_new},
    {LX_HTTP_GET, "/user/info", LX_PERM_SELF_OR_READ, lx_admin__user_info},
    {LX_HTTP_POST, "/user/update", LX_PERM_ADMIN, lx_admin__user_update},
    {LX_HTTP_POST, "/user/delete", LX_PERM_ADMIN, lx_admin__user_delete},
    {LX_HTTP_GET, "/user/list", LX_PERM_ADMIN_READ, lx_admin__user_list},

    /* teams.c */
    {LX_HTTP_POST, "/team/new", LX_PERM_ADMIN, lx_admin__team_new},
    {LX_HTTP_GET, "/team/info", LX_PERM_SELF_OR_READ, lx_admin__team_info},
    {LX_HTTP_POST, "/team/update", LX_PERM_ADMIN, lx_admin__team_update},
    {LX_HTTP_POST, "/team/delete", LX_PERM_ADMIN, lx_admin__team_delete},
    {LX_HTTP_GET, "/team/list", LX_PERM_SELF_OR_READ, lx_admin__team_list},
    {LX_HTTP_POST, "/team/member_add", LX_PERM_SELF_WRITE, lx_admin__team_member_add},
    {LX_HTTP_POST, "/team/member_delete", LX_PERM_SELF_WRITE, lx_admin__team_member_delete},
    {LX_HTTP_POST, "/team/block", LX_PERM_ADMIN, lx_admin__team_block},
    {LX_HTTP_POST, "/team/unblock", LX_PERM_ADMIN, lx_admin__team_unblock},

    /* models.c */
    {LX_HTTP_POST, "/model/new", LX_PERM_ADMIN, lx_admin__model_new},
    {LX_HTTP_GET, "/model/info", LX_PERM_SELF_OR_READ, lx_admin__model_info},
    {LX_HTTP_POST, "/model/delete", LX_PERM_ADMIN, lx_admin__model_delete},
    {LX_HTTP_POST, "/model/update", LX_PERM_ADMIN, lx_admin__model_update},

    /* spend and budgets (spend/endpoints.c) */
    {LX_HTTP_GET, "/user/spend", LX_PERM_SELF_OR_READ, lx_spend_user_spend},
    {LX_HTTP_GET, "/global/spend", LX_PERM_ADMIN_READ, lx_spend_global_spend},
    {LX_HTTP_POST, "/user/reset_budget", LX_PERM_ADMIN, lx_spend_user_reset_budget},
    {LX_HTTP_GET, "/spend/logs", LX_PERM_SELF_OR_READ, lx_spend_logs},
    {LX_HTTP_GET, "/global/spend/keys", LX_PERM_ADMIN_READ, lx_spend_global_keys},
    {LX_HTTP_GET, "/global/spend/models", LX_PERM_ADMIN_READ, lx_spend_global_models},
};

const struct lx_admin_route *lx_admin_find(struct lx_str path, enum lx_http_method m,
                                           bool *out_known_path,
                                           enum lx_http_method *out_allowed_method)
{
    *out_known_path = false;
    for (size_t i = 0; i < LX_ARRAY_LEN(routes); i++) {
        if (!lx_str_eq_c(path, routes[i].path)) {
            continue;
        }
        if (routes[i].method == m) {
            return &routes[i];
        }
        *out_known_path = true;
        *out_allowed_method = routes[i].method;
    }
    /* LiteLLM's path form POST /key/{key}/regenerate. */
    static const struct lx_str pre = LX_STR("/key/"), post = LX_STR("/regenerate");
    if (path.n > pre.n + post.n && lx_str_has_prefix(path, pre) &&
        memcmp(path.p + path.n - post.n, post.p, post.n) == 0) {
        if (m == LX_HTTP_POST) {
            return lx_admin_find(LX_STR("/key/regenerate"), m, out_known_path, out_allowed_method);
        }
        *out_known_path = true;
        *out_allowed_method = LX_HTTP_POST;
    }
    return NULL;
}

struct lx_str lx_admin__path_key(struct lx_str path)
{
    if (lx_str_has_prefix(path, LX_STR("/v1/"))) {
        path = lx_str_sub(path, 3);
    }
    static const struct lx_str pre = LX_STR("/key/"), post = LX_STR("/regenerate");
    if (path.n <= pre.n + post.n || !lx_str_has_prefix(path, pre)) {
        return LX_STR_NULL;
    }
    struct lx_str k = {path.p + pre.n, path.n - pre.n - post.n};
    if (memcmp(k.p + k.n, post.p, post.n) != 0 || memchr(k.p, '/', k.n)) {
        return LX_STR_NULL;
    }
    return k;
}

/* ---- roles ---- */

bool lx_admin_is_admin(const struct lx_identity *caller)
{
    return caller->is_master || caller->role == LX_ROLE_PROXY_ADMIN;
}

bool lx_admin_can_read_all(const struct lx_identity *caller)
{
    return lx_admin_is_admin(caller) || caller->role == LX_ROLE_PROXY_ADMIN_VIEWER;
}

bool lx_admin_allowed(enum lx_admin_perm perm, const struct lx_identity *caller)
{
    switch (perm) {
    case LX_PERM_ADMIN:
        return lx_admin_is_admin(caller);
    case LX_PERM_ADMIN_READ:
        return lx_admin_can_read_all(caller);
    case LX_PERM_SELF_OR_READ:
        return true;
    case LX_PERM_SELF_WRITE:
        return lx_admin_is_admin(caller) || caller->role == LX_ROLE_INTERNAL_USER;
    }
    return false;
}

const char *lx_admin_caller_name(const struct lx_admin_ctx *ctx)
{
    const struct lx_identity *c = ctx->caller;
    if (c->user_id) {
        return c->user_id;
    }
    if (c->key_alias) {
        return c->key_alias;
    }
    return "default_user_id";
}

/* ---- context ---- */

static void ctx_free(struct lx_admin_ctx *ctx)
{
    if (ctx->req) {
        lx_http_on_abort(ctx->req, NULL, NULL);
    }
    if (ctx->body) {
        cJSON_Delete(ctx->body);
    }
    if (ctx->ud_free && ctx->ud) {
        ctx->ud_free(ctx->ud);
    }
    cJSON_Delete(ctx->doc);
    lx_identity_unref(ctx->caller);
    lx_config_unref(ctx->cfg);
    lx_arena_fini(&ctx->arena);
    lx_free(ctx);
}

static void on_abort(struct lx_http_request *req, void *ud)
{
    (void)req;
    struct lx_admin_ctx *ctx = ud;
    ctx->req = NULL;
}

void lx_admin_respond_json(struct lx_admin_ctx *ctx, int status, const cJSON *doc)
{
    struct lx_http_request *req = ctx->req;
    if (req) {
        lx_http_on_abort(req, NULL, NULL);
        ctx->req = NULL;
        char *s = cJSON_PrintUnformatted(doc);
        if (!s) {
            lx_http_respond_error(req, 500, NULL, NULL, "out of memory");
        } else {
            static const struct lx_http_header h[] = {
                {LX_STR("content-type"), LX_STR("application/json")}};
            lx_http_respond(req, status, h, 1, lx_str_c(s));
            cJSON_free(s);
        }
    }
    ctx_free(ctx);
}

void lx_admin_answer(struct lx_admin_ctx *ctx, cJSON *doc)
{
    if (doc == ctx->doc) {
        ctx->doc = NULL;
    }
    lx_admin_respond_json(ctx, 200, doc);
    cJSON_Delete(doc);
}

static void respond_verror(struct lx_admin_ctx *ctx, int status, const char *param, const char *fmt,
                           va_list ap) LX_PRINTF(4, 0);

static void respond_verror(struct lx_admin_ctx *ctx, int status, const char *param, const char *fmt,
                           va_list ap)
{
    struct lx_http_request *req = ctx->req;
    if (req) {
        char msg[1024];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        lx_http_on_abort(req, NULL, NULL);
        ctx->req = NULL;
        lx_http_respond_error(req, status, NULL, param, msg);
    }
    ctx_free(ctx);
}

void lx_admin_respond_error(struct lx_admin_ctx *ctx, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_verror(ctx, status, NULL, fmt, ap);
    va_end(ap);
}

void lx_admin_respond_error_param(struct lx_admin_ctx *ctx, int status, const char *param,
                                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_verror(ctx, status, param, fmt, ap);
    va_end(ap);
}

void lx_admin_respond_store_error(struct lx_admin_ctx *ctx, int rc, const struct lx_error *err)
{
    switch (rc) {
    case LX_EUNAVAIL:
    case LX_ECANCELED:
        lx_admin_respond_error(ctx, 503, "The database is unavailable; try again shortly");
        return;
    case LX_ECONFLICT:
        lx_admin_respond_error(ctx, 409, "Already exists: %s",
                               err && err->msg[0] ? err->msg : "a unique value is taken");
        return;
    default:
        LX_ERROR("admin %s: store error: %s", ctx->route ? ctx->route->path : "?",
                 err && err->msg[0] ? err->msg : lx_strerror(rc));
        lx_admin_respond_error(ctx, 500, "Internal error while updating the database");
        return;
    }
}

void lx_admin_exec(struct lx_admin_ctx *ctx, const struct lx_store_stmt *stmts, size_t n,
                   lx_store_cb cb)
{
    int rc = lx_store_exec(ctx->port, stmts, n, cb, ctx);
    if (rc) {
        lx_admin_respond_store_error(ctx, rc, NULL);
    }
}

static void run_done(void *ud, int rc, const struct lx_store_result *res,
                     const struct lx_error *err)
{
    struct lx_admin_ctx *ctx = ud;
    lx_admin_result_cb cb = ctx->then;
    ctx->then = NULL;
    if (rc) {
        lx_admin_respond_store_error(ctx, rc, err);
        return;
    }
    cb(ctx, res);
}

void lx_admin_run(struct lx_admin_ctx *ctx, const struct lx_store_stmt *stmts, size_t n,
                  lx_admin_result_cb cb)
{
    ctx->then = cb;
    lx_admin_exec(ctx, stmts, n, run_done);
}

/* ---- dispatch ---- */

static bool method_has_body(enum lx_http_method m)
{
    return m == LX_HTTP_POST || m == LX_HTTP_PUT || m == LX_HTTP_PATCH || m == LX_HTTP_DELETE;
}

void lx_admin_dispatch(const struct lx_admin_route *r, struct lx_http_request *req,
                       struct lx_identity *caller, struct lx_config *cfg, struct lx_store *store,
                       struct lx_store_port *port)
{
    if (!lx_admin_allowed(r->perm, caller)) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "user not allowed to access this route, role=%s. Trying to access: %s",
                 lx_user_role_name(caller->role), r->path);
        lx_http_respond_error(req, 403, "auth_error", NULL, msg);
        return;
    }
    if (!store || !port) {
        lx_http_respond_error(req, 500, NULL, NULL,
                              "DB not connected: set general_settings.database_url to use the "
                              "admin API");
        return;
    }
    cJSON *body = NULL;
    if (method_has_body(req->method)) {
        if (req->body.len == 0) {
            body = cJSON_CreateObject();
        } else {
            body = cJSON_ParseWithLength((const char *)req->body.data, req->body.len);
            if (!cJSON_IsObject(body)) {
                if (body) {
                    cJSON_Delete(body);
                }
                lx_http_respond_error(req, 400, NULL, NULL,
                                      "Malformed JSON in request body: expected a JSON object");
                return;
            }
        }
        if (!body) {
            lx_http_respond_error(req, 500, NULL, NULL, "out of memory");
            return;
        }
    }
    struct lx_admin_ctx *ctx = LX_NEW(struct lx_admin_ctx);
    ctx->req = req;
    ctx->caller = lx_identity_ref(caller);
    ctx->cfg = lx_config_ref(cfg);
    ctx->store = store;
    ctx->port = port;
    ctx->body = body;
    ctx->route = r;
    lx_arena_init(&ctx->arena, NULL, 0, 4096);
    lx_http_on_abort(req, on_abort, ctx);
    r->fn(ctx);
}

/* ---- query strings ---- */

bool lx_admin__url_decode(struct lx_str in, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < in.n; i++) {
        char c = in.p[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= in.n) {
                return false;
            }
            int hi = lx_hex_digit(in.p[i + 1]);
            int lo = lx_hex_digit(in.p[i + 2]);
            if (hi < 0 || lo < 0) {
                return false;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap) {
            return false;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

struct lx_str lx_admin__query_find(struct lx_str q, const char *name)
{
    size_t nl = strlen(name);
    size_t i = 0;
    while (i <= q.n) {
        size_t end = i;
        while (end < q.n && q.p[end] != '&') {
            end++;
        }
        struct lx_str part = {q.p + i, end - i};
        const char *eq = memchr(part.p, '=', part.n);
        size_t kn = eq ? (size_t)(eq - part.p) : part.n;
        if (kn == nl && memcmp(part.p, name, nl) == 0) {
            return eq ? (struct lx_str){eq + 1, part.n - kn - 1} : (struct lx_str){part.p, 0};
        }
        i = end + 1;
    }
    return LX_STR_NULL;
}

const char *lx_admin_query(struct lx_admin_ctx *ctx, const char *name)
{
    if (!ctx->req || !ctx->req->query.n) {
        return NULL;
    }
    struct lx_str raw = lx_admin__query_find(ctx->req->query, name);
    if (!raw.p || raw.n >= ADMIN_MAX_QUERY_VALUE) {
        return NULL;
    }
    char *out = lx_arena_alloc(&ctx->arena, raw.n + 1);
    if (!lx_admin__url_decode(raw, out, raw.n + 1)) {
        return NULL;
    }
    return out;
}

/* ---- body fields ---- */

static const cJSON *field(const cJSON *obj, const char *name, bool *out_present)
{
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;
    if (v && cJSON_IsNull(v)) {
        v = NULL;
    }
    if (out_present) {
        *out_present = v != NULL;
    }
    return v;
}

static int bad_field(struct lx_admin_ctx *ctx, const char *name, const char *what)
{
    lx_admin_respond_error_param(ctx, 400, name, "Invalid value for '%s': expected %s", name, what);
    return -1;
}

int lx_admin_field_str(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                       const char **out, bool *out_present)
{
    const cJSON *v = field(obj, name, out_present);
    if (!v) {
        return 0;
    }
    if (!cJSON_IsString(v)) {
        return bad_field(ctx, name, "a string");
    }
    *out = v->valuestring;
    return 0;
}

int lx_admin_field_int(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name, long long *out,
                       bool *out_present)
{
    const cJSON *v = field(obj, name, out_present);
    if (!v) {
        return 0;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (!cJSON_IsNumber(v) || !isfinite(d) || d < 0 || d > 9e15 || d != floor(d)) {
        return bad_field(ctx, name, "a non-negative integer");
    }
    *out = (long long)d;
    return 0;
}

int lx_admin_field_money(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                         int64_t *out_nanos, bool *out_present)
{
    const cJSON *v = field(obj, name, out_present);
    if (!v) {
        return 0;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (!cJSON_IsNumber(v) || !isfinite(d) || d < 0 || d > ADMIN_MAX_USD) {
        return bad_field(ctx, name, "a non-negative number of USD");
    }
    *out_nanos = (int64_t)llround(d * 1e9);
    return 0;
}

int lx_admin_field_bool(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name, bool *out,
                        bool *out_present)
{
    const cJSON *v = field(obj, name, out_present);
    if (!v) {
        return 0;
    }
    if (!cJSON_IsBool(v)) {
        return bad_field(ctx, name, "a boolean");
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

int lx_admin_field_duration(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                            const char **out_text, long long *out_seconds, bool *out_present)
{
    const cJSON *v = field(obj, name, out_present);
    if (!v) {
        return 0;
    }
    long long s = 0;
    if (!cJSON_IsString(v) || lx_duration_parse(lx_str_c(v->valuestring), &s)) {
        return bad_field(ctx, name,
                         "a duration such as \"30s\", \"30m\", \"1h\", \"30d\" or \"1mo\"");
    }
    *out_text = v->valuestring;
    *out_seconds = s;
    return 0;
}

const char *lx_admin__print(struct lx_admin_ctx *ctx, const cJSON *v)
{
    char *s = cJSON_PrintUnformatted(v);
    if (!s) {
        return NULL;
    }
    char *out = lx_arena_strndup(&ctx->arena, s, strlen(s));
    cJSON_free(s);
    return out;
}

static bool is_strlist(const cJSON *v)
{
    const cJSON *it;
    if (!cJSON_IsArray(v)) {
        return false;
    }
    cJSON_ArrayForEach(it, v)
    {
        if (!cJSON_IsString(it)) {
            return false;
        }
    }
    return true;
}

/* A field that is a JSON document: `what` when is_ok fails, else its text in the context arena. */
static int field_json(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                      bool (*is_ok)(const cJSON *), const char *what, const char **out_json,
                      bool *out_present)
{
    const cJSON *v = field(obj, name, out_present);
    if (!v) {
        return 0;
    }
    if (!is_ok(v)) {
        return bad_field(ctx, name, what);
    }
    const char *s = lx_admin__print(ctx, v);
    if (!s) {
        lx_admin_respond_error(ctx, 500, "out of memory");
        return -1;
    }
    *out_json = s;
    return 0;
}

int lx_admin_field_strlist_json(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                                const char **out_json, bool *out_present)
{
    return field_json(ctx, obj, name, is_strlist, "a list of strings", out_json, out_present);
}

static bool is_object(const cJSON *v)
{
    return cJSON_IsObject(v);
}

int lx_admin_field_object_json(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                               const char **out_json, bool *out_present)
{
    return field_json(ctx, obj, name, is_object, "an object", out_json, out_present);
}

/* ---- audit log ---- */

void lx_admin_audit_stmt(struct lx_admin_ctx *ctx, struct lx_admin_audit *a, const char *action,
                         const char *table, const char *object_id, const char *before,
                         const char *updated, struct lx_store_stmt *out)
{
    lx_uuid4(a->id);
    a->p[0] = LX_SP_T(a->id);
    a->p[1] = LX_SP_I(lx_wall_s());
    a->p[2] = LX_SP_T(lx_admin_caller_name(ctx));
    a->p[3] = LX_SP_T(action);
    a->p[4] = LX_SP_T(table);
    a->p[5] = LX_SP_T(object_id);
    a->p[6] = LX_SP_T(before);
    a->p[7] = LX_SP_T(updated);
    *out = (struct lx_store_stmt){
        "INSERT INTO lx_audit_log (id, changed_at, changed_by, action, table_name, object_id, "
        "before_value, updated_values) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        a->p, 8};
}
