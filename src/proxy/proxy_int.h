/* Shared between the files of the proxy module. */
#ifndef LX_PROXY_PROXY_INT_H
#define LX_PROXY_PROXY_INT_H

#include <stdbool.h>

#include "auth/identity.h"
#include "config/config.h"
#include "http/http.h"
#include "limits/limits.h"
#include "providers/provider.h"
#include "proxy/proxy.h"
#include "spend/ledger.h"
#include "store/store.h"
#include "upstream/upstream.h"

struct lx_proxy_health;

struct lx_proxy {
    uv_loop_t *loop;
    struct lx_upstream *up;
    struct lx_config *cfg;
    unsigned char master_hash[32]; /* SHA-256 of the master key */
    bool has_master;
    struct lx_identity
        *master_id; /* the identity of the master key (and of everyone without one) */
    bool draining;
    struct lx_proxy_env env;
    struct lx_store *store;                 /* NULL without general_settings.database_url */
    struct lx_store_port *store_port;       /* this worker's port on store, or NULL */
    struct lx_limits *limits;               /* this worker's rate limiter (process-wide counters) */
    struct lx_ledger_writer *ledger_writer; /* this worker's spend journal writer, or NULL */
    struct lx_proxy_health *health;         /* health-check rounds and their timer (health.c) */
};

/* Answer an OpenAI-shaped error. */
void lx_proxy__error(struct lx_http_request *req, int status, const char *type, const char *param,
                     const char *fmt, ...) LX_PRINTF(5, 6);

struct lx_client_adapter;

/*
 * Serve an LLM endpoint (chat, completions, embeddings). `path_model` is the
 * model in an Azure-style path, or an empty slice; `client` translates a
 * non-OpenAI client format (NULL for OpenAI's). `id` is the caller's
 * identity; the call takes its own reference.
 */
void lx_proxy__llm(struct lx_proxy *px, struct lx_http_request *req, struct lx_identity *id,
                   enum lx_endpoint ep, struct lx_str path_model,
                   const struct lx_client_adapter *client);

/*
 * GET /health/models (health.c): proxy admins only; the last background
 * results, or a check round run now when background checks are off.
 */
void lx_proxy__health_models(struct lx_proxy *px, struct lx_http_request *req,
                             const struct lx_identity *ident);
/* Start, stop or re-time the background checks after px->cfg changed (worker 0 runs them). */
void lx_proxy__health_config(struct lx_proxy *px);
/* Release every round and the timer; call after the worker's upstream is closed. */
void lx_proxy__health_stop(struct lx_proxy *px);

#endif
