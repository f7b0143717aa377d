/*
 * The request pipeline of one worker: route table, authentication, body
 * checks, deployment choice, provider call, response relay. One struct
 * lx_proxy per worker loop; lx_proxy_handle is the HTTP server's handler.
 *
 * Each request takes a reference on the worker's current config snapshot
 * when it starts and keeps it to the end, so a reload never changes a
 * request in flight.
 */
#ifndef LX_PROXY_PROXY_H
#define LX_PROXY_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "config/config.h"
#include "http/http.h"
#include "upstream/upstream.h"

struct lx_proxy;
struct lx_ledger;
struct lx_budget;
struct lx_store;

struct lx_router_table;

/* Shared, read-only process facts the pipeline reports (readiness, version). */
struct lx_proxy_env {
    int num_workers;
    int index;                      /* this worker's number, from 0 */
    struct lx_router_table *router; /* deployment health shared by all workers, or NULL */
    struct lx_store *store; /* general_settings.database_url's store, or NULL; outlives the proxy */
    struct lx_ledger *ledger; /* spend ledger; NULL when no store is configured */
    struct lx_budget *budget; /* budgets over the ledger; NULL when no store is configured */
};

/*
 * Takes a reference on cfg. With env->store set, opens a store port on loop
 * (px->store_port); lx_proxy_free closes it, which runs the callbacks of its
 * pending batches with LX_ECANCELED.
 */
struct lx_proxy *lx_proxy_new(uv_loop_t *loop, struct lx_upstream *up, struct lx_config *cfg,
                              const struct lx_proxy_env *env);
/* Drops the proxy's reference; requests in flight keep theirs. */
void lx_proxy_free(struct lx_proxy *px);
/* Use cfg (a new reference is taken) for requests that start from now on. */
void lx_proxy_set_config(struct lx_proxy *px, struct lx_config *cfg);
/* Readiness turns to 503 from now on (the worker is draining). */
void lx_proxy_set_draining(struct lx_proxy *px, bool draining);

/* HTTP handler; ud is the struct lx_proxy. */
void lx_proxy_handle(struct lx_http_request *req, void *ud);

/* The limits the HTTP server should apply for a config. */
void lx_proxy_http_limits(const struct lx_config *cfg, struct lx_http_limits *out);

#endif
