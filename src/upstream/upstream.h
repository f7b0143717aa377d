/*
 * Upstream HTTP(S) transfers with libcurl's multi_socket API on a worker's
 * libuv loop: one curl multi handle per worker (its connection cache, DNS
 * cache and HTTP/2 multiplexing), one uv_poll_t per socket curl uses, one
 * uv_timer_t for curl's timeout, and a pool of easy handles reused across
 * requests.
 *
 * Every transfer: no Expect: 100-continue, no proxy unless one is given (the
 * proxy environment variables are not consulted), HTTP/2 over TLS when the
 * server offers it, HTTP/1.1 in clear text, TCP keep-alive, no signals.
 *
 * Callbacks: on_headers and on_data run inside curl's callbacks, so they
 * must not cancel the transfer themselves; they return a negative code
 * instead, which ends the transfer with that code. on_done runs exactly once
 * per started transfer, from a top-level loop callback, unless the transfer
 * was cancelled with lx_upstream_cancel (then never). All functions run on
 * the owning loop's thread.
 */
#ifndef LX_UPSTREAM_UPSTREAM_H
#define LX_UPSTREAM_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/error.h"
#include "core/str.h"

struct lx_upstream;
struct lx_upstream_xfer;

/* Response headers arrived (the final block: informational ones are skipped). */
typedef int (*lx_upstream_headers_cb)(void *ud, int status);
/*
 * Response body bytes. Return 0 when consumed, LX_EAGAIN to pause the
 * transfer (the same bytes are delivered again after lx_upstream_resume), or
 * a negative code to abort the transfer with it.
 */
typedef int (*lx_upstream_data_cb)(void *ud, const char *data, size_t n);
/* The transfer ended: result 0, or LX_ETIMEDOUT / LX_EUPSTREAM / a code a callback returned. */
typedef void (*lx_upstream_done_cb)(void *ud, int result, const struct lx_error *err);

struct lx_upstream_header {
    const char *name;
    struct lx_str value;
};

struct lx_upstream_req {
    const char *url;
    const char *method; /* NULL = POST when body.p is set, GET otherwise */
    const struct lx_upstream_header *headers;
    size_t n_headers;
    struct lx_str body; /* borrowed: must stay valid until on_done or cancel */
    /* Whole-transfer limit in ms (0 = none). */
    uint64_t timeout_ms;
    /* End with LX_ETIMEDOUT when no byte arrives for this long (0 = none); 100 ms granularity. */
    uint64_t idle_timeout_ms;
    uint64_t connect_timeout_ms; /* 0 = 10 s, capped by timeout_ms */
    const char *proxy;           /* NULL = none */
    bool stream;                 /* a streamed response: smaller receive buffer */
};

struct lx_upstream_cbs {
    lx_upstream_headers_cb on_headers;
    lx_upstream_data_cb on_data;
    lx_upstream_done_cb on_done;
};

/* One per worker loop. */
struct lx_upstream *lx_upstream_new(uv_loop_t *loop);
/*
 * Cancel every transfer (their on_done does not run) and release the multi
 * handle; memory goes once the loop has run the close callbacks.
 */
void lx_upstream_close(struct lx_upstream *u);
size_t lx_upstream_active(const struct lx_upstream *u);

/*
 * Start a transfer. Returns NULL and fills err if it could not be started;
 * then no callback runs.
 */
struct lx_upstream_xfer *lx_upstream_start(struct lx_upstream *u, const struct lx_upstream_req *req,
                                           const struct lx_upstream_cbs *cbs, void *ud,
                                           struct lx_error *err);
/* Stop a transfer now; none of its callbacks runs afterwards. Not from its own callbacks. */
void lx_upstream_cancel(struct lx_upstream_xfer *x);
/* Resume a transfer paused by on_data returning LX_EAGAIN. May call on_data before returning. */
void lx_upstream_resume(struct lx_upstream_xfer *x);
/* A response header by name (case-insensitive), valid until on_done returns. */
struct lx_str lx_upstream_header_get(const struct lx_upstream_xfer *x, struct lx_str name);

#endif
