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

#include <cjson/cJSON.h>

#include "auth/identity.h"
#include "config/config.h"
#include "http/http.h"
#include "store/store.h"

/* What a route requires of its caller. */
enum lx_admin_perm {
    LX_PERM_ADMIN,        /* proxy_admin (or the master key) */
    LX_PERM_ADMIN_READ,   /* proxy_admin or proxy_admin_viewer */
    LX_PERM_SELF_OR_READ, /* any authenticated caller for their own records; admins for any */
};

struct lx_admin_ctx {
    struct lx_http_request *req;
    struct lx_identity *caller; /* reference held by the context */
    struct lx_config *cfg;      /* reference held by the context */
    struct lx_store *store;
    struct lx_store_port *port;
    cJSON *body; /* parsed JSON body (owned), or NULL for GET/DELETE without a body */
};

typedef void (*lx_admin_handler_fn)(struct lx_admin_ctx *ctx);

struct lx_admin_route {
    enum lx_http_method method;
    const char *path; /* without /v1 */
    enum lx_admin_perm perm;
    lx_admin_handler_fn fn;
};

/* Answer with a JSON document and free the context (its references and body). */
void lx_admin_respond_json(struct lx_admin_ctx *ctx, int status, const cJSON *doc);
/* Answer with an OpenAI-shaped error and free the context. */
void lx_admin_respond_error(struct lx_admin_ctx *ctx, int status, const char *fmt, ...)
    LX_PRINTF(3, 4);
/* Map a store failure to 503 (unavailable), 409 (conflict) or 500, and answer. */
void lx_admin_respond_store_error(struct lx_admin_ctx *ctx, int rc, const struct lx_error *err);

#endif
