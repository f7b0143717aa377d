/*
 * Route table, authentication and the small endpoints (health, models).
 * Routes match the path without the query string, with and without the
 * /v1 prefix. A known path with another method gets 405 and an Allow header.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "admin/admin.h"
#include "auth/auth.h"
#include "core/alloc.h"
#include "core/time.h"
#include "json/json.h"
#include "log/log.h"
#include "proxy/client.h"
#include "proxy/proxy_int.h"
#include "spend/shared.h"

#define MODEL_CREATED 1677610602 /* the fixed "created" LiteLLM reports for configured models */

/* Clients of Anthropic's routes get Anthropic's error shape, whatever fails. */
static const struct lx_client_adapter *client_for_path(struct lx_str path)
{
    if (lx_str_has_prefix(path, LX_STR("/v1/"))) {
        path = lx_str_sub(path, 3);
    }
    return lx_str_has_prefix(path, LX_STR("/messages")) ? &lx_client_anthropic : NULL;
}

void lx_proxy__error(struct lx_http_request *req, int status, const char *type, const char *param,
                     const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const struct lx_client_adapter *client = client_for_path(req->path);
    if (client) {
        struct lx_buf b;
        lx_buf_init(&b, 8192);
        if (client->error_body(status, type, lx_str_c(msg), &b) == 0) {
            static const struct lx_http_header h[] = {
                {LX_STR("content-type"), LX_STR("application/json")}};
            lx_http_respond(req, status, h, 1, lx_buf_str(&b));
            lx_buf_fini(&b);
            return;
        }
        lx_buf_fini(&b);
    }
    lx_http_respond_error(req, status, type, param, msg);
}

static void respond_json(struct lx_http_request *req, int status, struct lx_str body)
{
    static const struct lx_http_header h[] = {{LX_STR("content-type"), LX_STR("application/json")}};
    lx_http_respond(req, status, h, 1, body);
}

static void set_config(struct lx_proxy *px, struct lx_config *cfg)
{
    struct lx_config *old = px->cfg;
    px->cfg = lx_config_ref(cfg);
    px->has_master = cfg->general.master_key && cfg->general.master_key[0];
    lx_auth_cache_set_ttl_ms((uint64_t)(cfg->general.user_api_key_cache_ttl * 1000.0));
    if (px->has_master) {
        const char *k = cfg->general.master_key;
        SHA256((const unsigned char *)k, strlen(k), px->master_hash);
    }
    if (px->limits) {
        lx_limits_set_config(px->limits, cfg);
        /* A reload on the worker's thread may replace the link: never keep the old one. */
        lx_spend_shared_use(lx_limits_redis(px->limits));
    }
    lx_proxy__health_config(px);
    if (old) {
        lx_config_unref(old);
    }
}

struct lx_proxy *lx_proxy_new(uv_loop_t *loop, struct lx_upstream *up, struct lx_config *cfg,
                              const struct lx_proxy_env *env)
{
    struct lx_proxy *px = lx_calloc(1, sizeof(*px));
    px->loop = loop;
    px->up = up;
    px->env = *env;
    px->limits = lx_limits_new(loop, lx_limits_table_global());
    px->master_id = lx_identity_new_master();
    px->store = env->store;
    if (px->store) {
        px->store_port = lx_store_port_new(px->store, loop);
    }
    if (env->ledger) {
        px->ledger_writer = lx_ledger_writer_new(env->ledger);
    }
    set_config(px, cfg);
    return px;
}

void lx_proxy_free(struct lx_proxy *px)
{
    lx_proxy__health_stop(px);
    lx_spend_shared_use(NULL);
    lx_limits_free(px->limits);
    lx_store_port_close(px->store_port);
    px->store_port = NULL;
    lx_ledger_writer_free(px->ledger_writer);
    lx_config_unref(px->cfg);
    lx_identity_unref(px->master_id);
    OPENSSL_cleanse(px->master_hash, sizeof(px->master_hash));
    lx_free(px);
}

void lx_proxy_set_config(struct lx_proxy *px, struct lx_config *cfg)
{
    set_config(px, cfg);
}

void lx_proxy_set_draining(struct lx_proxy *px, bool draining)
{
    px->draining = draining;
}

static uint64_t secs_to_ms(double s)
{
    return s <= 0 ? 0 : (uint64_t)(s * 1000.0 + 0.5);
}

void lx_proxy_http_limits(const struct lx_config *cfg, struct lx_http_limits *out)
{
    const struct lx_general_settings *g = &cfg->general;
    out->max_header_bytes = (size_t)(g->max_header_size_kb * 1024.0);
    out->max_body_bytes = (size_t)(g->max_request_size_mb * 1024.0 * 1024.0);
    out->header_timeout_ms = secs_to_ms(g->request_header_timeout);
    out->body_timeout_ms = secs_to_ms(g->request_body_timeout);
    out->keepalive_timeout_ms = secs_to_ms(g->keepalive_timeout);
    out->send_timeout_ms = secs_to_ms(g->send_timeout);
}

/* ---- authentication ---- */

/* The presented key: Authorization: Bearer, api-key, x-api-key or x-litellm-api-key. */
static struct lx_str presented_key(const struct lx_http_request *req)
{
    struct lx_str v = lx_http_header_get(req, LX_STR("authorization"));
    if (v.p) {
        if (v.n >= 7 && strncasecmp(v.p, "Bearer ", 7) == 0) {
            return lx_str_trim(lx_str_sub(v, 7));
        }
        return lx_str_trim(v);
    }
    static const struct lx_str others[] = {LX_STR("x-litellm-api-key"), LX_STR("api-key"),
                                           LX_STR("x-api-key")};
    for (size_t i = 0; i < LX_ARRAY_LEN(others); i++) {
        v = lx_http_header_get(req, others[i]);
        if (v.p) {
            return lx_str_trim(v);
        }
    }
    return LX_STR_NULL;
}

static void unauthorized(struct lx_http_request *req, const char *type, const char *msg)
{
    lx_proxy__error(req, 401, type, NULL, "%s", msg);
}

static bool is_master_key(const struct lx_proxy *px, const unsigned char h[SHA256_DIGEST_LENGTH])
{
    /* Compare digests in constant time: neither length nor content leaks through timing. */
    return CRYPTO_memcmp(h, px->master_hash, SHA256_DIGEST_LENGTH) == 0;
}

/* ---- health ---- */

static void handle_health(struct lx_proxy *px, struct lx_http_request *req)
{
    (void)px;
    respond_json(req, 200, LX_STR("{\"status\":\"healthy\"}"));
}

static void handle_liveliness(struct lx_proxy *px, struct lx_http_request *req)
{
    (void)px;
    respond_json(req, 200, LX_STR("\"I'm alive!\""));
}

static void handle_readiness(struct lx_proxy *px, struct lx_http_request *req)
{
    struct lx_buf b;
    lx_buf_init(&b, 4096);
    /* The store's last known state; an outage does not make the gateway unready. */
    const char *db = !px->store                  ? "Not connected"
                     : lx_store_is_up(px->store) ? "connected"
                                                 : "disconnected";
    int rc = lx_buf_printf(&b,
                           "{\"status\":\"%s\",\"db\":\"%s\",\"cache\":null,"
                           "\"litellm_version\":\"%s\",\"llmux_version\":\"%s\","
                           "\"workers\":%d,\"models\":%zu}",
                           px->draining ? "draining" : "healthy", db, LX_VERSION, LX_VERSION,
                           px->env.num_workers, px->cfg->n_groups);
    if (rc) {
        lx_buf_fini(&b);
        lx_proxy__error(req, 500, NULL, NULL, "out of memory");
        return;
    }
    respond_json(req, px->draining ? 503 : 200, lx_buf_str(&b));
    lx_buf_fini(&b);
}

/* ---- models ---- */

static int append_model(struct lx_buf *b, const char *id)
{
    int rc = lx_buf_append_c(b, "{\"id\":");
    rc = rc ? rc : lx_json_append_string(b, lx_str_c(id));
    rc = rc ? rc
            : lx_buf_printf(b, ",\"object\":\"model\",\"created\":%d,\"owned_by\":\"openai\"}",
                            MODEL_CREATED);
    return rc;
}

/* Listed for the caller: the groups their key, user and team may all use. */
static bool model_visible(const struct lx_identity *ident, const char *name)
{
    char msg[8];
    const char *type;
    return lx_auth_model_allowed(ident, lx_str_c(name), msg, sizeof(msg), &type);
}

static void handle_models(struct lx_proxy *px, struct lx_http_request *req,
                          const struct lx_identity *ident, struct lx_str id)
{
    const struct lx_config *cfg = px->cfg;
    struct lx_buf b;
    lx_buf_init(&b, 64u << 20);
    int rc = 0;
    if (id.n) {
        const struct lx_model_group *g = NULL;
        for (size_t i = 0; i < cfg->n_groups; i++) {
            if (lx_str_eq_c(id, cfg->groups[i].name) && model_visible(ident, cfg->groups[i].name)) {
                g = &cfg->groups[i];
            }
        }
        if (!g) {
            lx_buf_fini(&b);
            lx_proxy__error(req, 404, "invalid_request_error", "model",
                            "The model '%.*s' does not exist", LX_STR_FMT(id));
            return;
        }
        rc = append_model(&b, g->name);
    } else {
        rc = lx_buf_append_c(&b, "{\"object\":\"list\",\"data\":[");
        for (size_t i = 0; i < cfg->n_groups && !rc; i++) {
            if (cfg->groups[i].is_wildcard || !model_visible(ident, cfg->groups[i].name)) {
                continue;
            }
            if (b.data[b.len - 1] == '}') {
                rc = lx_buf_append(&b, ",", 1);
            }
            rc = rc ? rc : append_model(&b, cfg->groups[i].name);
        }
        rc = rc ? rc : lx_buf_append_c(&b, "]}");
    }
    if (rc) {
        lx_buf_fini(&b);
        lx_proxy__error(req, 500, NULL, NULL, "out of memory");
        return;
    }
    respond_json(req, 200, lx_buf_str(&b));
    lx_buf_fini(&b);
}

/* ---- Anthropic clients ---- */

static void handle_count_tokens(struct lx_http_request *req)
{
    struct lx_buf b;
    struct lx_error err = {0};
    lx_buf_init(&b, 4096);
    int rc = lx_client_anthropic_count_tokens(lx_buf_str(&req->body), &b, &err);
    if (rc) {
        lx_buf_fini(&b);
        lx_proxy__error(req, rc == LX_EINVAL ? 400 : 500, NULL, NULL, "%s", err.msg);
        return;
    }
    respond_json(req, 200, lx_buf_str(&b));
    lx_buf_fini(&b);
}

/* ---- routing ---- */

enum route_id {
    R_NONE,
    R_HEALTH,
    R_HEALTH_MODELS,
    R_LIVELINESS,
    R_READINESS,
    R_MODELS,
    R_MODEL,
    R_CHAT,
    R_COMPLETIONS,
    R_EMBEDDINGS,
    R_MESSAGES,
    R_COUNT_TOKENS,
};

struct route {
    const char *path;
    enum lx_http_method method;
    enum route_id id;
    bool open; /* no authentication */
};

static const struct route routes[] = {
    {"/health", LX_HTTP_GET, R_HEALTH, true},
    {"/health/models", LX_HTTP_GET, R_HEALTH_MODELS, false},
    {"/health/liveliness", LX_HTTP_GET, R_LIVELINESS, true},
    {"/health/liveness", LX_HTTP_GET, R_LIVELINESS, true},
    {"/health/readiness", LX_HTTP_GET, R_READINESS, true},
    {"/models", LX_HTTP_GET, R_MODELS, false},
    {"/chat/completions", LX_HTTP_POST, R_CHAT, false},
    {"/completions", LX_HTTP_POST, R_COMPLETIONS, false},
    {"/embeddings", LX_HTTP_POST, R_EMBEDDINGS, false},
    {"/messages", LX_HTTP_POST, R_MESSAGES, false},
    {"/messages/count_tokens", LX_HTTP_POST, R_COUNT_TOKENS, false},
};

static const char *method_allow(enum lx_http_method m)
{
    return m == LX_HTTP_GET ? "GET, HEAD" : "POST";
}

static void not_found(struct lx_http_request *req)
{
    lx_proxy__error(req, 404, "invalid_request_error", NULL, "Unknown route: %.*s %.*s",
                    LX_STR_FMT(req->method_name), (int)LX_MIN(req->path.n, 200), req->path.p);
}

static void method_not_allowed(struct lx_http_request *req, enum lx_http_method allowed)
{
    struct lx_buf b;
    lx_buf_init(&b, 4096);
    char msg[300];
    snprintf(msg, sizeof(msg), "Method %.*s not allowed on %.*s; use %s",
             LX_STR_FMT(req->method_name), (int)LX_MIN(req->path.n, 200), req->path.p,
             method_allow(allowed));
    if (lx_json_error_body(&b, lx_str_c(msg), "invalid_request_error", NULL, "405")) {
        lx_buf_fini(&b);
        lx_http_respond(req, 405, NULL, 0, LX_STR(""));
        return;
    }
    struct lx_http_header h[] = {{LX_STR("content-type"), LX_STR("application/json")},
                                 {LX_STR("allow"), lx_str_c(method_allow(allowed))}};
    lx_http_respond(req, 405, h, 2, lx_buf_str(&b));
    lx_buf_fini(&b);
}

/*
 * Azure-style /openai/deployments/{model}/{chat/completions|completions|embeddings}:
 * sets the endpoint and model, returns true when the path has that shape.
 */
static bool match_azure(struct lx_str path, enum route_id *out_id, struct lx_str *out_model)
{
    static const struct lx_str prefix = LX_STR("/openai/deployments/");
    if (!lx_str_has_prefix(path, prefix)) {
        return false;
    }
    struct lx_str rest = lx_str_sub(path, prefix.n);
    const char *slash = memchr(rest.p, '/', rest.n);
    if (!slash || slash == rest.p) {
        return false;
    }
    struct lx_str model = {rest.p, (size_t)(slash - rest.p)};
    struct lx_str tail = lx_str_sub(rest, model.n);
    if (lx_str_eq_c(tail, "/chat/completions")) {
        *out_id = R_CHAT;
    } else if (lx_str_eq_c(tail, "/completions")) {
        *out_id = R_COMPLETIONS;
    } else if (lx_str_eq_c(tail, "/embeddings")) {
        *out_id = R_EMBEDDINGS;
    } else {
        return false;
    }
    *out_model = model;
    return true;
}

/* Where an authenticated request goes. */
struct target {
    enum route_id id;
    struct lx_str path_model; /* in the request's memory */
    const struct lx_admin_route *admin;
};

static void route(struct lx_proxy *px, struct lx_http_request *req, struct lx_identity *ident,
                  const struct target *t);

/* A request waiting for its key's store lookup. */
struct pending_auth {
    struct lx_proxy *px;
    struct lx_http_request *req;
    struct target t;
    struct lx_auth_lookup *lookup;
};

/* Serve with a resolved identity (a reference the caller keeps) after its checks. */
static void proceed(struct lx_proxy *px, struct lx_http_request *req, struct lx_identity *ident,
                    const struct target *t)
{
    char msg[256];
    const char *why = lx_auth_check(ident, lx_wall_s(), msg, sizeof(msg));
    if (why) {
        unauthorized(req, ident->blocked ? "auth_error" : "expired_key", why);
        return;
    }
    route(px, req, ident, t);
}

static void unknown_key(struct lx_proxy *px, struct lx_http_request *req, int rc,
                        const struct target *t)
{
    if (!px->has_master) {
        /* No master key: the gateway is open; an unknown key is just no key. */
        route(px, req, px->master_id, t);
    } else if (rc == LX_EAUTH) {
        unauthorized(req, "authentication_error",
                     "Authentication Error, Invalid proxy server token passed.");
    } else if (rc == LX_ECANCELED) {
        lx_proxy__error(req, 503, NULL, NULL, "The gateway is shutting down");
    } else {
        lx_proxy__error(req, 503, NULL, NULL,
                        "Authentication is temporarily unavailable: the key store cannot be "
                        "reached. Try again shortly.");
    }
}

static void on_pending_abort(struct lx_http_request *req, void *ud)
{
    (void)req;
    struct pending_auth *p = ud;
    lx_auth_lookup_cancel(p->lookup);
    lx_free(p);
}

static void on_key_resolved(void *ud, int rc, struct lx_identity *ident)
{
    struct pending_auth *p = ud;
    struct lx_http_request *req = p->req;
    struct lx_proxy *px = p->px;
    struct target t = p->t;
    lx_http_on_abort(req, NULL, NULL);
    lx_free(p);
    if (rc) {
        unknown_key(px, req, rc, &t);
        return;
    }
    proceed(px, req, ident, &t);
    lx_identity_unref(ident);
}

/*
 * Authenticate and serve: the master key (constant-time), else a virtual key
 * through the identity cache and the store. Without a master key the gateway
 * is open (as LiteLLM's): every caller is the admin, except that a virtual
 * key found in the store narrows what its holder may do.
 */
static void authenticate(struct lx_proxy *px, struct lx_http_request *req, const struct target *t)
{
    struct lx_str key = presented_key(req);
    if (key.n == 0) {
        if (!px->has_master) {
            route(px, req, px->master_id, t);
            return;
        }
        unauthorized(req, "authentication_error",
                     "Authentication Error: no API key passed. Send 'Authorization: Bearer "
                     "<key>'.");
        return;
    }
    /* One digest serves the master-key comparison and the virtual-key lookup. */
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key.p, key.n, h);
    if (px->has_master && is_master_key(px, h)) {
        route(px, req, px->master_id, t);
        return;
    }
    if (!px->store) {
        unknown_key(px, req, LX_EAUTH, t);
        return;
    }
    struct pending_auth *p = lx_malloc(sizeof(*p));
    *p = (struct pending_auth){px, req, *t, NULL};
    struct lx_identity *ident = NULL;
    int rc =
        lx_auth_resolve(px->store, px->store_port, key, h, &ident, on_key_resolved, p, &p->lookup);
    if (rc == LX_EAGAIN) {
        lx_http_on_abort(req, on_pending_abort, p);
        return;
    }
    lx_free(p);
    if (rc) {
        unknown_key(px, req, rc, t);
        return;
    }
    proceed(px, req, ident, t);
    lx_identity_unref(ident);
}

void lx_proxy_handle(struct lx_http_request *req, void *ud)
{
    struct lx_proxy *px = ud;
    struct lx_str path = req->path;
    struct lx_str path_model = LX_STR_NULL;
    lx_spend_shared_use(lx_limits_redis(px->limits)); /* the shared-spend link of this loop */
    enum lx_http_method m = req->method == LX_HTTP_HEAD ? LX_HTTP_GET : req->method;

    if (lx_str_has_prefix(path, LX_STR("/v1/")) || lx_str_eq_c(path, "/v1")) {
        path = lx_str_sub(path, 3);
    }
    while (path.n > 1 && path.p[path.n - 1] == '/') {
        path.n--;
    }
    const struct route *r = NULL;
    enum route_id id = R_NONE;
    for (size_t i = 0; i < LX_ARRAY_LEN(routes); i++) {
        if (lx_str_eq_c(path, routes[i].path)) {
            r = &routes[i];
            id = r->id;
            break;
        }
    }
    enum lx_http_method want = LX_HTTP_POST;
    bool open = false;
    const struct lx_admin_route *admin = NULL;
    bool admin_path = false;
    if (r) {
        want = r->method;
        open = r->open;
    } else if (match_azure(path, &id, &path_model)) {
        want = LX_HTTP_POST;
    } else if (lx_str_has_prefix(path, LX_STR("/models/")) && path.n > 8) {
        id = R_MODEL;
        want = LX_HTTP_GET;
        path_model = lx_str_sub(path, 8);
    } else if ((admin = lx_admin_find(path, m, &admin_path, &want)) != NULL) {
        want = m;
    } else if (!admin_path) {
        not_found(req);
        return;
    }
    if (m != want) {
        method_not_allowed(req, want);
        return;
    }
    struct target t = {id, path_model, admin};
    if (open) {
        route(px, req, NULL, &t);
        return;
    }
    authenticate(px, req, &t);
}

/* Serve an authenticated (or open: ident NULL) request. */
static void route(struct lx_proxy *px, struct lx_http_request *req, struct lx_identity *ident,
                  const struct target *t)
{
    struct lx_str path_model = t->path_model;
    if (t->admin) {
        lx_admin_dispatch(t->admin, req, ident, px->cfg, px->store, px->store_port);
        return;
    }
    switch (t->id) {
    case R_HEALTH:
        handle_health(px, req);
        return;
    case R_HEALTH_MODELS:
        lx_proxy__health_models(px, req, ident);
        return;
    case R_LIVELINESS:
        handle_liveliness(px, req);
        return;
    case R_READINESS:
        handle_readiness(px, req);
        return;
    case R_MODELS:
        handle_models(px, req, ident, LX_STR_NULL);
        return;
    case R_MODEL:
        handle_models(px, req, ident, path_model);
        return;
    case R_CHAT:
        lx_proxy__llm(px, req, ident, LX_EP_CHAT, path_model, NULL);
        return;
    case R_COMPLETIONS:
        lx_proxy__llm(px, req, ident, LX_EP_COMPLETIONS, path_model, NULL);
        return;
    case R_EMBEDDINGS:
        lx_proxy__llm(px, req, ident, LX_EP_EMBEDDINGS, path_model, NULL);
        return;
    case R_MESSAGES:
        lx_proxy__llm(px, req, ident, LX_EP_CHAT, LX_STR_NULL, &lx_client_anthropic);
        return;
    case R_COUNT_TOKENS:
        handle_count_tokens(req);
        return;
    default:
        not_found(req);
        return;
    }
}
