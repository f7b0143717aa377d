/*
 * HTTP/1.1 server on a libuv loop: one struct lx_http_server per worker, fed
 * by its own listening socket. It parses requests with llhttp, enforces the
 * limits (header bytes → 431, body bytes → 413, header/body/idle/send
 * timeouts), and hands each complete request to one handler callback. It
 * answers pipelined requests strictly in order: the next request on a
 * connection is parsed only once the previous response is complete.
 *
 * Request lifetime: the server creates a request when its headers begin and
 * calls the handler once the body is complete. The handler answers with
 * lx_http_respond() or with lx_http_stream_start/write/end(); after the call
 * that completes the response the handler must not touch the request again.
 * If the client goes away first, the server calls the abort callback the
 * handler registered (lx_http_on_abort) from a top-level loop callback, never
 * from inside an lx_http_* call; the handler must stop using the request
 * before returning from it. Every function here runs on the server's loop
 * thread.
 */
#ifndef LX_HTTP_HTTP_H
#define LX_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/compiler.h"
#include "core/error.h"
#include "core/str.h"

struct lx_http_server;
struct lx_http_conn;

struct lx_http_header {
    struct lx_str name;
    struct lx_str value;
};

enum lx_http_method {
    LX_HTTP_OTHER = 0,
    LX_HTTP_GET,
    LX_HTTP_HEAD,
    LX_HTTP_POST,
    LX_HTTP_PUT,
    LX_HTTP_DELETE,
    LX_HTTP_PATCH,
    LX_HTTP_OPTIONS,
};

#define LX_HTTP_MAX_HEADERS 128
#define LX_HTTP_REQUEST_ID_MAX 128

struct lx_http_request {
    struct lx_arena arena; /* request lifetime; freed when the response completes */
    enum lx_http_method method;
    struct lx_str method_name;
    struct lx_str target; /* as received */
    struct lx_str path;   /* target without the query string */
    struct lx_str query;  /* after '?', may be empty */
    struct lx_http_header *headers;
    size_t n_headers;
    struct lx_buf body; /* decoded (chunked or Content-Length), capped */
    bool keep_alive;
    bool expect_continue;
    uint8_t http_minor;
    uint64_t start_ns; /* monotonic time the first byte arrived */
    /*
     * The call id: a fresh UUID per request, answered in x-litellm-call-id and
     * used as the spend-log row's request_id (unique, so it cannot collide
     * with another call's). NUL-terminated.
     */
    char id[LX_HTTP_REQUEST_ID_MAX + 1];
    /* The client's x-request-id when sane (echoed back as x-request-id), else "". */
    char client_id[LX_HTTP_REQUEST_ID_MAX + 1];
    struct lx_http_conn *conn;
    struct lx_str peer; /* "ip:port" of the client */
};

/* Server-wide limits. Applied to requests that start after they are set. */
struct lx_http_limits {
    size_t max_header_bytes;
    size_t max_body_bytes;
    uint64_t header_timeout_ms;    /* first byte of a request → end of its headers */
    uint64_t body_timeout_ms;      /* end of headers → end of body */
    uint64_t keepalive_timeout_ms; /* idle connection between requests */
    uint64_t send_timeout_ms;      /* queued response bytes making no progress */
};

/* Called once per complete request; the handler owns answering it. */
typedef void (*lx_http_handler_cb)(struct lx_http_request *req, void *ud);
/* The client left (or the server is closing) before the response completed. */
typedef void (*lx_http_abort_cb)(struct lx_http_request *req, void *ud);
/* Queued response bytes fell below the low watermark after having been above it. */
typedef void (*lx_http_drain_cb)(struct lx_http_request *req, void *ud);
/* Every connection of a shut-down server is closed. */
typedef void (*lx_http_closed_cb)(struct lx_http_server *srv, void *ud);

/*
 * Create a server that accepts on `listen_fd` (a bound, listening socket the
 * server takes ownership of). Returns NULL and fills err on failure (the fd
 * is then closed).
 */
struct lx_http_server *lx_http_server_new(uv_loop_t *loop, int listen_fd,
                                          const struct lx_http_limits *limits,
                                          lx_http_handler_cb handler, void *ud,
                                          struct lx_error *err);
void lx_http_server_set_limits(struct lx_http_server *srv, const struct lx_http_limits *limits);
/* Requests whose handler has been called and whose response is not complete. */
size_t lx_http_server_in_flight(const struct lx_http_server *srv);
size_t lx_http_server_connections(const struct lx_http_server *srv);
/*
 * Stop accepting, close idle connections, and close every other connection
 * once its current response completes. `cb` runs once no connection is
 * left (never inside this call).
 */
void lx_http_server_shutdown(struct lx_http_server *srv, lx_http_closed_cb cb, void *ud);
/*
 * Close the listener and every connection now (unfinished requests get their
 * abort callback). The server's memory is released from the last close
 * callback, so the loop must keep running; `cb` (may be NULL) runs just
 * before that. `srv` must not be used after this call.
 */
void lx_http_server_close(struct lx_http_server *srv, lx_http_closed_cb cb, void *ud);

/* Case-insensitive header lookup; the first match, or an empty slice with p == NULL. */
struct lx_str lx_http_header_get(const struct lx_http_request *req, struct lx_str name);

void lx_http_on_abort(struct lx_http_request *req, lx_http_abort_cb cb, void *ud);
void lx_http_on_drain(struct lx_http_request *req, lx_http_drain_cb cb, void *ud);

/*
 * Send a whole response. `headers` must not include Content-Length,
 * Transfer-Encoding, Connection or Date (the server writes those). The body
 * is copied if it cannot be written at once. Completes the request.
 */
int lx_http_respond(struct lx_http_request *req, int status, const struct lx_http_header *headers,
                    size_t n_headers, struct lx_str body);

/* An OpenAI-shaped error response: {"error":{"message","type","param","code"}}. */
int lx_http_respond_error(struct lx_http_request *req, int status, const char *type,
                          const char *param, const char *message);

/* Begin a chunked (streamed) response. */
int lx_http_stream_start(struct lx_http_request *req, int status,
                         const struct lx_http_header *headers, size_t n_headers);
/*
 * Queue data as one chunk. Returns 0, or LX_ECANCELED when the connection is
 * already broken (the abort callback will follow).
 */
int lx_http_stream_write(struct lx_http_request *req, struct lx_str data);
/* Final chunk; completes the request. */
int lx_http_stream_end(struct lx_http_request *req);
/* End a streamed response abruptly (no final chunk): the client sees a truncated body. */
void lx_http_stream_abort(struct lx_http_request *req);
/* Response bytes queued in the kernel-facing write queue, not yet written. */
size_t lx_http_pending_bytes(const struct lx_http_request *req);
/* True when pending bytes are above the high watermark: stop producing until drain. */
bool lx_http_should_pause(const struct lx_http_request *req);

/* Reason phrase for a status code ("OK", "Not Found"...). */
const char *lx_http_reason(int status);

/*
 * Create, bind and listen on a TCP socket with SO_REUSEPORT (so every worker
 * can have its own). port 0 picks an ephemeral port; out_port gets the port.
 * Returns the fd or a negative LX_E* code with err filled.
 */
int lx_http_listen_socket(const char *host, int port, int backlog, int *out_port,
                          struct lx_error *err);

#endif
