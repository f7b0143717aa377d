/*
 * LiteLLM's admin API (/key/..., /user/..., /team/..., /model/...): request and
 * response shapes as LiteLLM's, backed by the store.
 *
 * A handler runs on the worker's loop thread with the caller's identity
 * already checked against the route's permission. It answers through
 * lx_admin_respond_* exactly once, usually from a store callback; it never
 * blocks (store work goes through the port). The body, when the route takes
 * one, is parsed before the handler runs (a malformed body gets 400 first).
 */
#ifndef LX_ADMIN_ADMIN_H
#define LX_ADMIN_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "auth/identity.h"
#include "config/config.h"
#include "core/arena.h"
#include "http/http.h"
#include "store/store.h"

/* What a route requires of its caller. */
enum lx_admin_perm {
    LX_PERM_ADMIN,        /* proxy_admin (or the master key) */
    LX_PERM_ADMIN_READ,   /* proxy_admin or proxy_admin_viewer */
    LX_PERM_SELF_OR_READ, /* any authenticated caller for their own records; admins for any */
    LX_PERM_SELF_WRITE,   /* changes to one's own records: internal_user and admins */
};

struct lx_admin_ctx;
/* What runs with the result of a lx_admin_run that succeeded. */
typedef void (*lx_admin_result_cb)(struct lx_admin_ctx *ctx, const struct lx_store_result *res);

struct lx_admin_ctx {
    struct lx_http_request *req;
    struct lx_identity *caller; /* reference held by the context */
    struct lx_config *cfg;      /* reference held by the context */
    struct lx_store *store;
    struct lx_store_port *port;
    cJSON *body; /* parsed JSON body (owned): an object, {} for an empty POST; NULL for GET */
    /*
     * Context lifetime: memory for the handler that must outlive a store
     * round trip. The request (and its arena) may go away meanwhile: after
     * the client left, req is NULL and lx_admin_respond_* only free.
     */
    struct lx_arena arena;
    const struct lx_admin_route *route;
    void *ud;   /* the handler's own state */
    cJSON *doc; /* an answer built over several round trips: freed with the context */
    /* When set, frees ud with the context (after the answer); else ud lives in the arena. */
    void (*ud_free)(void *ud);
    lx_admin_result_cb then; /* lx_admin_run's, while its statements run */
};

typedef void (*lx_admin_handler_fn)(struct lx_admin_ctx *ctx);

struct lx_admin_route {
    enum lx_http_method method;
    const char *path; /* without /v1 */
    enum lx_admin_perm perm;
    lx_admin_handler_fn fn;
};

/*
 * The route for a path (without /v1 and trailing slashes) and method. NULL
 * when none matches; *out_known_path is then set when the path exists with
 * another method (405), and *out_allowed_method to that method.
 */
const struct lx_admin_route *lx_admin_find(struct lx_str path, enum lx_http_method m,
                                           bool *out_known_path,
                                           enum lx_http_method *out_allowed_method);

/*
 * Run an admin route for an authenticated caller: permission check (403),
 * the store (500 without database_url), body parsing (400), then the
 * handler. (While the store is down, its statements fail fast with
 * LX_EUNAVAIL: lx_admin_respond_store_error answers 503.) Takes its own references on caller
 * and cfg. Loop thread of `port`; store and port may be NULL (no database).
 */
void lx_admin_dispatch(const struct lx_admin_route *r, struct lx_http_request *req,
                       struct lx_identity *caller, struct lx_config *cfg, struct lx_store *store,
                       struct lx_store_port *port);

/* The RBAC table: may `caller` use a route that requires `perm`? */
bool lx_admin_allowed(enum lx_admin_perm perm, const struct lx_identity *caller);
/* proxy_admin or the master key. */
bool lx_admin_is_admin(const struct lx_identity *caller);
/* proxy_admin, proxy_admin_viewer or the master key: may read every record. */
bool lx_admin_can_read_all(const struct lx_identity *caller);
/* Who made a change, for audit rows and created_by: the caller's user_id, else the key alias, else
 * "default_user_id" (LiteLLM's name for the master key). */
const char *lx_admin_caller_name(const struct lx_admin_ctx *ctx);

/*
 * A query-string parameter, URL-decoded, copied into the context's arena;
 * NULL when absent. Call before the first store round trip.
 */
const char *lx_admin_query(struct lx_admin_ctx *ctx, const char *name);

/*
 * Body field readers. A missing field or JSON null leaves *out untouched
 * and returns 0 with *out_present (when given) false. A field of the wrong
 * type or out of range answers 400 naming the field and returns -1: the
 * context is then freed and the handler must return at once.
 */
int lx_admin_field_str(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                       const char **out, bool *out_present);
int lx_admin_field_int(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name, long long *out,
                       bool *out_present);
/* USD (a JSON number >= 0) into nano-USD. */
int lx_admin_field_money(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                         int64_t *out_nanos, bool *out_present);
int lx_admin_field_bool(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name, bool *out,
                        bool *out_present);
/* A duration string ("30d", "1h", ...) into seconds; *out_text gets the string. */
int lx_admin_field_duration(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                            const char **out_text, long long *out_seconds, bool *out_present);
/* An array of strings, printed as compact JSON ("[\"a\",\"b\"]") in the context arena. */
int lx_admin_field_strlist_json(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                                const char **out_json, bool *out_present);
/* An object, printed as compact JSON in the context arena. */
int lx_admin_field_object_json(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                               const char **out_json, bool *out_present);

/*
 * An audit-log row (lx_audit_log) for one change, as a statement to queue
 * with the change itself (same batch = same transaction). `a` holds the
 * parameters and must live until lx_store_exec returns. action: "created",
 * "updated", "deleted", "blocked", "unblocked", "regenerated". before and
 * updated are JSON documents or NULL; they must never hold a secret.
 */
struct lx_admin_audit {
    char id[37];
    struct lx_store_param p[8];
};
void lx_admin_audit_stmt(struct lx_admin_ctx *ctx, struct lx_admin_audit *a, const char *action,
                         const char *table, const char *object_id, const char *before,
                         const char *updated, struct lx_store_stmt *out);

/* Answer with a JSON document and free the context (its references and body). */
void lx_admin_respond_json(struct lx_admin_ctx *ctx, int status, const cJSON *doc);
/* Answer 200 with doc, which is taken over (freed; it may be ctx->doc), and free the context. */
void lx_admin_answer(struct lx_admin_ctx *ctx, cJSON *doc);
/* Answer with an OpenAI-shaped error and free the context. */
void lx_admin_respond_error(struct lx_admin_ctx *ctx, int status, const char *fmt, ...)
    LX_PRINTF(3, 4);
/* The same with the error's `param` set (the offending field). */
void lx_admin_respond_error_param(struct lx_admin_ctx *ctx, int status, const char *param,
                                  const char *fmt, ...) LX_PRINTF(4, 5);
/* Map a store failure to 503 (unavailable), 409 (conflict) or 500, and answer. */
void lx_admin_respond_store_error(struct lx_admin_ctx *ctx, int rc, const struct lx_error *err);

/*
 * Run statements on the context's port, cb(ctx, ...) with the result. When
 * they cannot be queued, answers with lx_admin_respond_store_error (the
 * context is then gone and cb never runs). The statements and their
 * parameters must live until the call returns.
 */
void lx_admin_exec(struct lx_admin_ctx *ctx, const struct lx_store_stmt *stmts, size_t n,
                   lx_store_cb cb);
/*
 * The same for a handler that has nothing to add to a store failure: when
 * the statements fail, their error is answered (lx_admin_respond_store_error);
 * when they succeed, cb(ctx, result) runs. Never inside the call itself.
 */
void lx_admin_run(struct lx_admin_ctx *ctx, const struct lx_store_stmt *stmts, size_t n,
                  lx_admin_result_cb cb);

#endif
