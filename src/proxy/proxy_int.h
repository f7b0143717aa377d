/* Shared between the files of the proxy module. */
#ifndef LX_PROXY_PROXY_INT_H
#define LX_PROXY_PROXY_INT_H

#include <stdbool.h>

#include "config/config.h"
#include "http/http.h"
#include "limits/limits.h"
#include "providers/provider.h"
#include "proxy/proxy.h"
#include "upstream/upstream.h"

struct lx_proxy {
    uv_loop_t *loop;
    struct lx_upstream *up;
    struct lx_config *cfg;
    unsigned char master_hash[32]; /* SHA-256 of the master key */
    bool has_master;
    bool draining;
    struct lx_proxy_env env;
    struct lx_limits *limits; /* this worker's rate limiter (process-wide counters) */
};

/* Answer an OpenAI-shaped error. */
void lx_proxy__error(struct lx_http_request *req, int status, const char *type, const char *param,
                     const char *fmt, ...) LX_PRINTF(5, 6);

struct lx_client_adapter;

/*
 * Serve an LLM endpoint (chat, completions, embeddings). `path_model` is the
 * model in an Azure-style path, or an empty slice; `client` translates a
 * non-OpenAI client format (NULL for OpenAI's).
 */
void lx_proxy__llm(struct lx_proxy *px, struct lx_http_request *req, enum lx_endpoint ep,
                   struct lx_str path_model, const struct lx_client_adapter *client);

#endif
