/*
 * The HTTP/1.1 server: accept, parse, limit, dispatch, write.
 *
 * One connection has at most one request in progress. Bytes that arrive while
 * a request is being handled (pipelining) wait in `pending` and are parsed
 * once its response is complete, so responses go out in request order.
 * Reading continues while a request is handled so that a client that
 * disconnects is noticed at once and its upstream work cancelled; pending
 * bytes are capped, past the cap reading stops until the response is done.
 *
 * All reads land in one per-server buffer (the parser copies what it keeps),
 * so an idle connection costs only its handles and parser state.
 *
 * Connection states and their timer:
 *   IDLE      waiting for a request's first byte      keepalive_timeout
 *   HEADERS   receiving the header block              header deadline
 *   BODY      receiving the body                      body deadline
 *   HANDLING  handler called, response not complete   none (upstream timeouts rule)
 *   LINGER    response sent, write side shut down     short, then close
 * Whenever response bytes are queued and not draining, the send timeout
 * applies instead. The closing path always goes through uv_close on both
 * handles; the connection is freed in the last close callback, which is also
 * where an unfinished request's abort callback runs.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <llhttp.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/rand.h"
#include "core/time.h"
#include "http/http.h"
#include "json/json.h"
#include "log/log.h"

#define READ_BUF_BYTES 65536
#define PENDING_CAP_BYTES (256 * 1024)
#define HIGH_WATERMARK (128 * 1024)
#define LOW_WATERMARK (32 * 1024)
#define LINGER_MS 2000
#define REQUEST_ARENA_FIRST 2048
#define REQUEST_ARENA_BLOCK 8192

enum conn_state { ST_IDLE, ST_HEADERS, ST_BODY, ST_HANDLING, ST_LINGER, ST_CLOSING };

struct lx_http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    struct lx_http_server *srv;
    struct lx_http_conn *prev, *next;
    llhttp_t parser;
    enum conn_state state;
    int open_handles;
    struct lx_http_request *req;
    struct lx_buf pending; /* received, not yet parsed */
    struct lx_buf field;   /* header name being assembled */
    struct lx_buf value;   /* header value being assembled */
    size_t headers_cap;
    size_t header_bytes;
    uint64_t deadline_ms; /* for HEADERS / BODY, in uv_now() time */
    int parse_error;      /* HTTP status to answer a parse failure with */
    const char *parse_error_msg;
    bool dispatched;
    bool response_started;
    bool response_done;
    bool chunked;
    bool close_after; /* close once the current response is written */
    bool head_request;
    bool reading;
    bool driving;
    bool drive_again;
    bool drain_wanted;
    int status;
    size_t bytes_out;
    lx_http_abort_cb abort_cb;
    void *abort_ud;
    lx_http_drain_cb drain_cb;
    void *drain_ud;
    char peer[64];
};

struct lx_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listener_open;
    struct lx_http_limits limits;
    lx_http_handler_cb handler;
    void *ud;
    struct lx_http_conn *conns;
    size_t n_conns;
    size_t in_flight;
    bool shutting_down;
    bool closing;    /* lx_http_server_close called: free once every handle closed */
    int own_handles; /* listener and notify handles not yet closed */
    lx_http_closed_cb closed_cb;
    void *closed_ud;
    uv_idle_t notify; /* runs closed_cb outside lx_http_server_shutdown */
    bool notify_open;
    llhttp_settings_t settings;
    char read_buf[READ_BUF_BYTES];
};

struct write_req {
    uv_write_t w;
    struct lx_http_conn *conn;
    size_t len;
    char data[];
};

static void conn_close(struct lx_http_conn *c);
static void conn_drive(struct lx_http_conn *c);
static void conn_rearm_timer(struct lx_http_conn *c);
static void conn_after_response(struct lx_http_conn *c);
static void server_maybe_closed(struct lx_http_server *srv);
static void server_maybe_free(struct lx_http_server *srv);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---- small helpers ---- */

const char *lx_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 529:
        return "Site Overloaded";
    default:
        return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

static enum lx_http_method method_of(uint8_t m)
{
    switch (m) {
    case HTTP_GET:
        return LX_HTTP_GET;
    case HTTP_HEAD:
        return LX_HTTP_HEAD;
    case HTTP_POST:
        return LX_HTTP_POST;
    case HTTP_PUT:
        return LX_HTTP_PUT;
    case HTTP_DELETE:
        return LX_HTTP_DELETE;
    case HTTP_PATCH:
        return LX_HTTP_PATCH;
    case HTTP_OPTIONS:
        return LX_HTTP_OPTIONS;
    default:
        return LX_HTTP_OTHER;
    }
}

struct lx_str lx_http_header_get(const struct lx_http_request *req, struct lx_str name)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        if (lx_str_case_eq(req->headers[i].name, name)) {
            return req->headers[i].value;
        }
    }
    return LX_STR_NULL;
}

/* The Date header value, formatted once per second per thread. */
static struct lx_str http_date(void)
{
    static _Thread_local char buf[40];
    static _Thread_local time_t last;
    static _Thread_local size_t len;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        len = strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return (struct lx_str){buf, len};
}

static bool request_id_ok(struct lx_str v)
{
    if (v.n == 0 || v.n > LX_HTTP_REQUEST_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < v.n; i++) {
        unsigned char ch = (unsigned char)v.p[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            return false;
        }
    }
    return true;
}

/* ---- request objects ---- */

struct request_block {
    struct lx_http_request req;
    _Alignas(16) char first[REQUEST_ARENA_FIRST];
};

static struct lx_http_request *request_new(struct lx_http_conn *c)
{
    struct request_block *b = lx_malloc(sizeof(*b));
    struct lx_http_request *r = &b->req;
    memset(r, 0, sizeof(*r));
    lx_arena_init(&r->arena, b->first, sizeof(b->first), REQUEST_ARENA_BLOCK);
    lx_buf_init(&r->body, c->srv->limits.max_body_bytes);
    r->conn = c;
    r->start_ns = lx_mono_ns();
    r->peer = lx_str_c(c->peer);
    c->headers_cap = 16;
    r->headers = lx_arena_alloc(&r->arena, c->headers_cap * sizeof(*r->headers));
    return r;
}

static void request_free(struct lx_http_request *r)
{
    if (!r) {
        return;
    }
    lx_buf_fini(&r->body);
    lx_arena_fini(&r->arena);
    lx_free(r); /* the request is the first member of its block */
}

static void conn_reset_request(struct lx_http_conn *c)
{
    request_free(c->req);
    c->req = NULL;
    c->dispatched = false;
    c->response_started = false;
    c->response_done = false;
    c->chunked = false;
    c->head_request = false;
    c->drain_wanted = false;
    c->abort_cb = NULL;
    c->drain_cb = NULL;
    c->parse_error = 0;
    c->parse_error_msg = NULL;
    c->header_bytes = 0;
    c->status = 0;
    c->bytes_out = 0;
    lx_buf_reset(&c->field);
    lx_buf_reset(&c->value);
}

/* ---- llhttp callbacks ---- */

static struct lx_http_conn *conn_of(llhttp_t *p)
{
    return p->data;
}

static int fail_parse(struct lx_http_conn *c, int status, const char *msg)
{
    c->parse_error = status;
    c->parse_error_msg = msg;
    return -1;
}

static int count_header_bytes(struct lx_http_conn *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->srv->limits.max_header_bytes) {
        return fail_parse(c, 431, "Request header fields too large");
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct lx_http_conn *c = conn_of(p);
    c->req = request_new(c);
    c->state = ST_HEADERS;
    c->deadline_ms = uv_now(c->srv->loop) + c->srv->limits.header_timeout_ms;
    conn_rearm_timer(c);
    return 0;
}

static int append_part(struct lx_http_conn *c, struct lx_buf *b, const char *at, size_t n)
{
    if (count_header_bytes(c, n)) {
        return -1;
    }
    if (lx_buf_append(b, at, n)) {
        return fail_parse(c, 431, "Request header fields too large");
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    struct lx_http_conn *c = conn_of(p);
    return append_part(c, &c->field, at, n);
}

static int on_url_complete(llhttp_t *p)
{
    struct lx_http_conn *c = conn_of(p);
    struct lx_http_request *r = c->req;
    r->target = lx_arena_str(&r->arena, lx_buf_str(&c->field));
    const char *q = memchr(r->target.p, '?', r->target.n);
    if (q) {
        r->path = (struct lx_str){r->target.p, (size_t)(q - r->target.p)};
        r->query = (struct lx_str){q + 1, r->target.n - r->path.n - 1};
    } else {
        r->path = r->target;
        r->query = (struct lx_str){r->target.p + r->target.n, 0};
    }
    lx_buf_reset(&c->field);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct lx_http_conn *c = conn_of(p);
    return append_part(c, &c->field, at, n);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct lx_http_conn *c = conn_of(p);
    return append_part(c, &c->value, at, n);
}

static int on_header_value_complete(llhttp_t *p)
{
    struct lx_http_conn *c = conn_of(p);
    struct lx_http_request *r = c->req;
    if (count_header_bytes(c, 4)) {
        return -1;
    }
    if (r->n_headers == LX_HTTP_MAX_HEADERS) {
        return fail_parse(c, 431, "Too many request header fields");
    }
    if (r->n_headers == c->headers_cap) {
        size_t cap = c->headers_cap * 2;
        struct lx_http_header *h = lx_arena_alloc(&r->arena, cap * sizeof(*h));
        memcpy(h, r->headers, r->n_headers * sizeof(*h));
        r->headers = h;
        c->headers_cap = cap;
    }
    struct lx_http_header *h = &r->headers[r->n_headers++];
    h->name = lx_arena_str(&r->arena, lx_buf_str(&c->field));
    h->value = lx_arena_str(&r->arena, lx_str_trim(lx_buf_str(&c->value)));
    lx_buf_reset(&c->field);
    lx_buf_reset(&c->value);
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct lx_http_conn *c = conn_of(p);
    struct lx_http_request *r = c->req;
    struct lx_http_server *srv = c->srv;
    r->method = method_of(p->method);
    r->method_name = lx_str_c(llhttp_method_name((llhttp_method_t)p->method));
    r->http_minor = p->http_minor;
    r->keep_alive = llhttp_should_keep_alive(p) && !c->close_after;
    c->head_request = r->method == LX_HTTP_HEAD;

    struct lx_str rid = lx_http_header_get(r, LX_STR("x-request-id"));
    lx_uuid4(r->id);
    if (request_id_ok(rid)) {
        memcpy(r->client_id, rid.p, rid.n);
        r->client_id[rid.n] = '\0';
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > srv->limits.max_body_bytes) {
        return fail_parse(c, 413, "Request body too large");
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0 &&
        lx_buf_reserve(&r->body, (size_t)p->content_length)) {
        /* The exact size up front: no doubling reallocations, no slack held for the request. */
        return fail_parse(c, 500, "Out of memory");
    }
    struct lx_str expect = lx_http_header_get(r, LX_STR("expect"));
    if (expect.p) {
        if (!lx_str_case_eq(expect, LX_STR("100-continue"))) {
            return fail_parse(c, 417, "Unsupported Expect header");
        }
        r->expect_continue = true;
    }
    c->state = ST_BODY;
    c->deadline_ms = uv_now(srv->loop) + srv->limits.body_timeout_ms;
    conn_rearm_timer(c);
    if (r->expect_continue && r->http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
        /* Nothing else is queued before the response of this request starts. */
        int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (w != (int)b.len) {
            return fail_parse(c, 500, "Could not send 100 Continue");
        }
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct lx_http_conn *c = conn_of(p);
    int rc = lx_buf_append(&c->req->body, at, n);
    if (rc == LX_ETOOBIG) {
        return fail_parse(c, 413, "Request body too large");
    }
    if (rc) {
        return fail_parse(c, 500, "Out of memory");
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    (void)p;
    /* Stop here: the next pipelined request waits until this one is answered. */
    return HPE_PAUSED;
}

/* ---- writing ---- */

static void write_cb(uv_write_t *w, int status)
{
    struct write_req *wr = (struct write_req *)w;
    struct lx_http_conn *c = wr->conn;
    lx_free(wr);
    if (c->state == ST_CLOSING) {
        return;
    }
    if (status < 0) {
        conn_close(c);
        return;
    }
    size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (q == 0 && c->response_done) {
        conn_after_response(c);
        return;
    }
    conn_rearm_timer(c);
    if (c->drain_wanted && q < LOW_WATERMARK && c->req && c->drain_cb) {
        c->drain_wanted = false;
        c->drain_cb(c->req, c->drain_ud);
    }
}

/*
 * Write bufs in order after whatever is queued: try the socket first, queue a
 * copy of the rest. Returns 0 or LX_ECANCELED (the connection is closing).
 */
static int conn_write(struct lx_http_conn *c, uv_buf_t *bufs, unsigned nbufs)
{
    if (c->state == ST_CLOSING) {
        return LX_ECANCELED;
    }
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++) {
        total += bufs[i].len;
    }
    c->bytes_out += total;
    size_t done = 0;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        int w = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
        if (w >= 0) {
            done = (size_t)w;
        } else if (w != UV_EAGAIN) {
            conn_close(c);
            return LX_ECANCELED;
        }
    }
    if (done == total) {
        return 0;
    }
    struct write_req *wr = lx_try_malloc(sizeof(*wr) + (total - done));
    if (!wr) {
        conn_close(c);
        return LX_ECANCELED;
    }
    wr->conn = c;
    wr->len = total - done;
    size_t off = 0, skip = done;
    for (unsigned i = 0; i < nbufs; i++) {
        size_t n = bufs[i].len;
        if (skip >= n) {
            skip -= n;
            continue;
        }
        memcpy(wr->data + off, bufs[i].base + skip, n - skip);
        off += n - skip;
        skip = 0;
    }
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)wr->len);
    int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
    if (rc) {
        lx_free(wr);
        conn_close(c);
        return LX_ECANCELED;
    }
    conn_rearm_timer(c);
    return 0;
}

static size_t header_block_size(const struct lx_http_header *headers, size_t n)
{
    size_t s = 0;
    for (size_t i = 0; i < n; i++) {
        s += headers[i].name.n + headers[i].value.n + 4;
    }
    return s;
}

static void append_mem(char *out, size_t *off, const void *p, size_t n)
{
    memcpy(out + *off, p, n);
    *off += n;
}

/* Build the status line and headers into the request arena. */
static struct lx_str build_head(struct lx_http_conn *c, int status,
                                const struct lx_http_header *headers, size_t n_headers,
                                long long content_length)
{
    struct lx_http_request *r = c->req;
    struct lx_str date = http_date();
    size_t cap =
        256 + strlen(r->id) + strlen(r->client_id) + date.n + header_block_size(headers, n_headers);
    char *out = lx_arena_alloc(&r->arena, cap);
    const char *reason = lx_http_reason(status);
    int n = snprintf(out, cap, "HTTP/1.1 %d %s\r\ndate: ", status, reason);
    size_t off = (size_t)n;
    append_mem(out, &off, date.p, date.n);
    append_mem(out, &off, "\r\n", 2);
    for (size_t i = 0; i < n_headers; i++) {
        append_mem(out, &off, headers[i].name.p, headers[i].name.n);
        append_mem(out, &off, ": ", 2);
        append_mem(out, &off, headers[i].value.p, headers[i].value.n);
        append_mem(out, &off, "\r\n", 2);
    }
    append_mem(out, &off, "x-litellm-call-id: ", 19);
    append_mem(out, &off, r->id, strlen(r->id));
    append_mem(out, &off, "\r\n", 2);
    if (r->client_id[0]) {
        append_mem(out, &off, "x-request-id: ", 14);
        append_mem(out, &off, r->client_id, strlen(r->client_id));
        append_mem(out, &off, "\r\n", 2);
    }
    if (content_length >= 0) {
        off += (size_t)snprintf(out + off, cap - off, "content-length: %lld\r\n", content_length);
    } else if (c->chunked) {
        append_mem(out, &off, "transfer-encoding: chunked\r\n", 28);
    }
    if (r->keep_alive) {
        if (r->http_minor == 0) {
            append_mem(out, &off, "connection: keep-alive\r\n", 24);
        }
    } else {
        append_mem(out, &off, "connection: close\r\n", 19);
    }
    append_mem(out, &off, "\r\n", 2);
    return (struct lx_str){out, off};
}

static void access_log(struct lx_http_conn *c)
{
    struct lx_http_request *r = c->req;
    if (!LX_LOG_ENABLED(LX_LOG_INFO) || !r || !r->path.p) {
        return;
    }
    double ms = (double)(lx_mono_ns() - r->start_ns) / 1e6;
    LX_INFO("%s \"%.*s %.*s HTTP/1.%u\" %d %zu %.3fms id=%s%s%s", c->peer,
            LX_STR_FMT(r->method_name), LX_STR_FMT(r->path), r->http_minor, c->status, c->bytes_out,
            ms, r->id, r->client_id[0] ? " request_id=" : "", r->client_id);
}

static int finish_response(struct lx_http_conn *c)
{
    c->response_done = true;
    if (c->dispatched) {
        c->srv->in_flight--;
    }
    if (!c->req->keep_alive) {
        c->close_after = true;
    }
    access_log(c);
    if (c->state != ST_CLOSING && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        conn_after_response(c);
    }
    return 0;
}

int lx_http_respond(struct lx_http_request *req, int status, const struct lx_http_header *headers,
                    size_t n_headers, struct lx_str body)
{
    struct lx_http_conn *c = req->conn;
    LX_ASSERT(!c->response_started);
    c->response_started = true;
    c->status = status;
    if (c->srv->shutting_down) {
        req->keep_alive = false;
    }
    struct lx_str head = build_head(c, status, headers, n_headers, (long long)body.n);
    uv_buf_t bufs[2] = {uv_buf_init((char *)head.p, (unsigned)head.n),
                        uv_buf_init((char *)body.p, (unsigned)body.n)};
    int rc = conn_write(c, bufs, c->head_request || body.n == 0 ? 1 : 2);
    finish_response(c);
    return rc;
}

int lx_http_respond_error(struct lx_http_request *req, int status, const char *type,
                          const char *param, const char *message)
{
    struct lx_buf b;
    char code[16];
    snprintf(code, sizeof(code), "%d", status);
    lx_buf_init(&b, 64 * 1024);
    int rc = lx_json_error_body(&b, lx_str_c(message),
                                type ? type : lx_error_type_for_status(status), param, code);
    if (rc) {
        lx_buf_fini(&b);
        return lx_http_respond(req, 500, NULL, 0, LX_STR(""));
    }
    static const struct lx_http_header h[] = {{LX_STR("content-type"), LX_STR("application/json")}};
    rc = lx_http_respond(req, status, h, 1, lx_buf_str(&b));
    lx_buf_fini(&b);
    return rc;
}

int lx_http_stream_start(struct lx_http_request *req, int status,
                         const struct lx_http_header *headers, size_t n_headers)
{
    struct lx_http_conn *c = req->conn;
    LX_ASSERT(!c->response_started);
    c->response_started = true;
    c->status = status;
    if (c->srv->shutting_down) {
        req->keep_alive = false;
    }
    if (req->http_minor == 0) {
        /* HTTP/1.0 has no chunked encoding: the end of the body is the close. */
        req->keep_alive = false;
        c->chunked = false;
    } else {
        c->chunked = true;
    }
    struct lx_str head = build_head(c, status, headers, n_headers, -1);
    uv_buf_t b = uv_buf_init((char *)head.p, (unsigned)head.n);
    return conn_write(c, &b, 1);
}

int lx_http_stream_write(struct lx_http_request *req, struct lx_str data)
{
    struct lx_http_conn *c = req->conn;
    LX_ASSERT(c->response_started && !c->response_done);
    if (data.n == 0 || c->head_request) {
        return c->state == ST_CLOSING ? LX_ECANCELED : 0;
    }
    if (!c->chunked) {
        uv_buf_t b = uv_buf_init((char *)data.p, (unsigned)data.n);
        return conn_write(c, &b, 1);
    }
    char size_line[24];
    int n = snprintf(size_line, sizeof(size_line), "%zx\r\n", data.n);
    uv_buf_t bufs[3] = {uv_buf_init(size_line, (unsigned)n),
                        uv_buf_init((char *)data.p, (unsigned)data.n),
                        uv_buf_init((char *)"\r\n", 2)};
    return conn_write(c, bufs, 3);
}

int lx_http_stream_end(struct lx_http_request *req)
{
    struct lx_http_conn *c = req->conn;
    LX_ASSERT(c->response_started && !c->response_done);
    int rc = 0;
    if (c->chunked && !c->head_request) {
        uv_buf_t b = uv_buf_init((char *)"0\r\n\r\n", 5);
        rc = conn_write(c, &b, 1);
    }
    finish_response(c);
    return rc;
}

void lx_http_stream_abort(struct lx_http_request *req)
{
    struct lx_http_conn *c = req->conn;
    c->response_done = true;
    if (c->dispatched) {
        c->srv->in_flight--;
    }
    c->close_after = true;
    access_log(c);
    conn_close(c);
}

size_t lx_http_pending_bytes(const struct lx_http_request *req)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&req->conn->tcp);
}

bool lx_http_should_pause(const struct lx_http_request *req)
{
    struct lx_http_conn *c = req->conn;
    if (lx_http_pending_bytes(req) >= HIGH_WATERMARK) {
        c->drain_wanted = true;
        return true;
    }
    return false;
}

void lx_http_on_abort(struct lx_http_request *req, lx_http_abort_cb cb, void *ud)
{
    req->conn->abort_cb = cb;
    req->conn->abort_ud = ud;
}

void lx_http_on_drain(struct lx_http_request *req, lx_http_drain_cb cb, void *ud)
{
    req->conn->drain_cb = cb;
    req->conn->drain_ud = ud;
}

/* ---- connection lifecycle ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct lx_http_conn *c = h->data;
    if (--c->open_handles > 0) {
        return;
    }
    struct lx_http_server *srv = c->srv;
    if (c->req && c->dispatched && !c->response_done) {
        srv->in_flight--;
        c->status = 499;
        access_log(c);
        if (c->abort_cb) {
            c->abort_cb(c->req, c->abort_ud);
        }
    }
    request_free(c->req);
    lx_buf_fini(&c->pending);
    lx_buf_fini(&c->field);
    lx_buf_fini(&c->value);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        srv->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    srv->n_conns--;
    lx_free(c);
    server_maybe_closed(srv);
    server_maybe_free(srv);
}

static void conn_close(struct lx_http_conn *c)
{
    if (c->state == ST_CLOSING) {
        return;
    }
    c->state = ST_CLOSING;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timer(uv_timer_t *t)
{
    struct lx_http_conn *c = t->data;
    switch (c->state) {
    case ST_HEADERS:
    case ST_BODY:
        if (!c->response_started && c->req) {
            /* Slow or stuck client: answer 408 and close. */
            c->req->keep_alive = false;
            c->close_after = true;
            c->dispatched = false;
            lx_http_respond_error(c->req, 408, "timeout", NULL, "Request timed out");
            return;
        }
        conn_close(c);
        return;
    default:
        /* Idle keep-alive, linger, or a client that stopped reading its response. */
        conn_close(c);
        return;
    }
}

static void conn_rearm_timer(struct lx_http_conn *c)
{
    struct lx_http_server *srv = c->srv;
    uint64_t now = uv_now(srv->loop);
    uint64_t delay = 0;
    if (c->state == ST_CLOSING) {
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > 0) {
        delay = srv->limits.send_timeout_ms;
    } else {
        switch (c->state) {
        case ST_IDLE:
            delay = srv->limits.keepalive_timeout_ms;
            break;
        case ST_HEADERS:
        case ST_BODY:
            delay = c->deadline_ms > now ? c->deadline_ms - now : 1;
            break;
        case ST_LINGER:
            delay = LINGER_MS;
            break;
        default:
            uv_timer_stop(&c->timer);
            return;
        }
    }
    uv_timer_start(&c->timer, on_timer, delay, 0);
}

static void on_shutdown(uv_shutdown_t *s, int status)
{
    struct lx_http_conn *c = s->data;
    if (c->state == ST_CLOSING) {
        return;
    }
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->state = ST_LINGER;
    conn_rearm_timer(c);
}

/* The response is complete and every byte of it has been handed to the kernel. */
static void conn_after_response(struct lx_http_conn *c)
{
    bool close_after = c->close_after || c->srv->shutting_down;
    conn_reset_request(c);
    if (close_after) {
        /* Half-close and drain what the client still sends, so our last bytes are not reset. */
        c->state = ST_LINGER;
        c->shutdown_req.data = c;
        if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown)) {
            conn_close(c);
            return;
        }
        uv_timer_stop(&c->timer);
        return;
    }
    c->state = ST_IDLE;
    llhttp_resume(&c->parser);
    conn_rearm_timer(c);
    if (!c->reading) {
        conn_drive(c);
        /* The pending bytes are parsed; read again once nothing is waiting. */
        if (c->state == ST_IDLE || c->state == ST_HEADERS || c->state == ST_BODY) {
            c->reading = true;
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        }
        return;
    }
    conn_drive(c);
}

static void dispatch(struct lx_http_conn *c)
{
    struct lx_http_request *r = c->req;
    c->state = ST_HANDLING;
    c->dispatched = true;
    c->srv->in_flight++;
    conn_rearm_timer(c);
    c->srv->handler(r, c->srv->ud);
}

static void respond_parse_error(struct lx_http_conn *c, int status, const char *msg)
{
    if (!c->req) {
        c->req = request_new(c);
    }
    if (!c->req->id[0]) {
        lx_uuid4(c->req->id);
    }
    if (!c->req->method_name.n) {
        c->req->method_name = LX_STR("-");
    }
    if (!c->req->path.p) {
        c->req->path = LX_STR("-");
    }
    c->req->keep_alive = false;
    c->close_after = true;
    c->state = ST_HANDLING;
    c->dispatched = false;
    lx_http_respond_error(c->req, status, NULL, NULL, msg);
}

/*
 * Parse bytes as the start of (or more of) the current request. Bytes past
 * a complete request are kept in `pending`. Returns true if a request was
 * completed (dispatched or answered with an error).
 */
static bool conn_feed(struct lx_http_conn *c, const char *data, size_t n)
{
    enum llhttp_errno e = llhttp_execute(&c->parser, data, n);
    if (e == HPE_OK) {
        return false;
    }
    if (e == HPE_PAUSED) {
        const char *stop = llhttp_get_error_pos(&c->parser);
        size_t used = stop ? (size_t)(stop - data) : n;
        if (used < n) {
            /* pending is empty here: conn_drive hands it to us whole. */
            if (lx_buf_append(&c->pending, data + used, n - used)) {
                respond_parse_error(c, 413, "Too much pipelined data");
                return true;
            }
        }
        dispatch(c);
        return true;
    }
    int status = c->parse_error ? c->parse_error : 400;
    const char *msg = c->parse_error_msg;
    char buf[160];
    if (!msg) {
        snprintf(buf, sizeof(buf), "Malformed HTTP request: %s", llhttp_errno_name(e));
        msg = buf;
    }
    respond_parse_error(c, status, msg);
    return true;
}

/* Parse pending pipelined bytes while the connection is ready for a request. */
static void conn_drive(struct lx_http_conn *c)
{
    if (c->driving) {
        c->drive_again = true;
        return;
    }
    c->driving = true;
    do {
        c->drive_again = false;
        if ((c->state == ST_IDLE || c->state == ST_HEADERS || c->state == ST_BODY) &&
            c->pending.len > 0) {
            size_t len;
            char *data = lx_buf_take(&c->pending, &len);
            lx_buf_init(&c->pending, PENDING_CAP_BYTES);
            conn_feed(c, data, len);
            lx_free(data);
        }
    } while (c->drive_again);
    c->driving = false;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct lx_http_conn *c = h->data;
    *buf = uv_buf_init(c->srv->read_buf, sizeof(c->srv->read_buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct lx_http_conn *c = s->data;
    if (nread == 0 || c->state == ST_CLOSING) {
        return;
    }
    if (nread < 0) {
        /* EOF or error. A client that half-closes while waiting is treated as gone, as nginx does.
         */
        conn_close(c);
        return;
    }
    switch (c->state) {
    case ST_LINGER:
        return; /* discard */
    case ST_HANDLING:
        if (lx_buf_append(&c->pending, buf->base, (size_t)nread)) {
            /* Too much pipelined data: stop reading until this response is done. */
            uv_read_stop(s);
            c->reading = false;
        }
        return;
    default:
        break;
    }
    if (c->pending.len > 0) {
        if (lx_buf_append(&c->pending, buf->base, (size_t)nread)) {
            respond_parse_error(c, 413, "Too much pipelined data");
            return;
        }
        conn_drive(c);
        return;
    }
    conn_feed(c, buf->base, (size_t)nread);
    conn_drive(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct lx_http_server *srv = listener->data;
    if (status < 0) {
        LX_WARN("accept failed: %s", uv_strerror(status));
        return;
    }
    struct lx_http_conn *c = lx_calloc(1, sizeof(*c));
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->next = srv->conns;
    if (srv->conns) {
        srv->conns->prev = c;
    }
    srv->conns = c;
    srv->n_conns++;
    lx_buf_init(&c->pending, PENDING_CAP_BYTES);
    lx_buf_init(&c->field, srv->limits.max_header_bytes);
    lx_buf_init(&c->value, srv->limits.max_header_bytes);
    llhttp_init(&c->parser, HTTP_REQUEST, &srv->settings);
    c->parser.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp)) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof(ip));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
        }
        snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
    }
    c->state = ST_IDLE;
    if (srv->shutting_down) {
        c->close_after = true;
    }
    conn_rearm_timer(c);
    c->reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- server ---- */

struct lx_http_server *lx_http_server_new(uv_loop_t *loop, int listen_fd,
                                          const struct lx_http_limits *limits,
                                          lx_http_handler_cb handler, void *ud,
                                          struct lx_error *err)
{
    struct lx_http_server *srv = lx_calloc(1, sizeof(*srv));
    srv->loop = loop;
    srv->limits = *limits;
    srv->handler = handler;
    srv->ud = ud;
    llhttp_settings_init(&srv->settings);
    srv->settings.on_message_begin = on_message_begin;
    srv->settings.on_url = on_url;
    srv->settings.on_url_complete = on_url_complete;
    srv->settings.on_header_field = on_header_field;
    srv->settings.on_header_value = on_header_value;
    srv->settings.on_header_value_complete = on_header_value_complete;
    srv->settings.on_headers_complete = on_headers_complete;
    srv->settings.on_body = on_body;
    srv->settings.on_message_complete = on_message_complete;
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    srv->listener_open = true;
    srv->own_handles = 2;
    uv_idle_init(srv->loop, &srv->notify);
    srv->notify.data = srv;
    srv->notify_open = true;
    int rc = uv_tcp_open(&srv->listener, listen_fd);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&srv->listener, 4096, on_connection);
    }
    if (rc) {
        lx_error_set(err, LX_EIO, "listen: %s", uv_strerror(rc));
        close(listen_fd);
        lx_http_server_close(srv, NULL, NULL);
        return NULL;
    }
    return srv;
}

void lx_http_server_set_limits(struct lx_http_server *srv, const struct lx_http_limits *limits)
{
    srv->limits = *limits;
}

size_t lx_http_server_in_flight(const struct lx_http_server *srv)
{
    return srv->in_flight;
}

size_t lx_http_server_connections(const struct lx_http_server *srv)
{
    return srv->n_conns;
}

static void on_notify(uv_idle_t *h)
{
    struct lx_http_server *srv = h->data;
    uv_idle_stop(h);
    if (srv->closed_cb && !srv->closing) {
        lx_http_closed_cb cb = srv->closed_cb;
        srv->closed_cb = NULL;
        cb(srv, srv->closed_ud);
    }
}

static void server_maybe_closed(struct lx_http_server *srv)
{
    if (srv->shutting_down && srv->n_conns == 0 && srv->closed_cb && srv->notify_open) {
        uv_idle_start(&srv->notify, on_notify);
    }
}

static void server_maybe_free(struct lx_http_server *srv)
{
    if (srv->closing && srv->own_handles == 0 && srv->n_conns == 0) {
        if (srv->closed_cb) {
            srv->closed_cb(srv, srv->closed_ud);
        }
        lx_free(srv);
    }
}

static void on_own_handle_closed(uv_handle_t *h)
{
    struct lx_http_server *srv = h->data;
    srv->own_handles--;
    server_maybe_free(srv);
}

void lx_http_server_shutdown(struct lx_http_server *srv, lx_http_closed_cb cb, void *ud)
{
    srv->shutting_down = true;
    srv->closed_cb = cb;
    srv->closed_ud = ud;
    if (srv->listener_open) {
        srv->listener_open = false;
        uv_close((uv_handle_t *)&srv->listener, on_own_handle_closed);
    }
    for (struct lx_http_conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        c->close_after = true;
        if (c->state == ST_IDLE && c->pending.len == 0) {
            conn_close(c);
        }
    }
    server_maybe_closed(srv);
}

void lx_http_server_close(struct lx_http_server *srv, lx_http_closed_cb cb, void *ud)
{
    srv->shutting_down = true;
    srv->closing = true;
    srv->closed_cb = cb;
    srv->closed_ud = ud;
    if (srv->listener_open) {
        srv->listener_open = false;
        uv_close((uv_handle_t *)&srv->listener, on_own_handle_closed);
    }
    if (srv->notify_open) {
        srv->notify_open = false;
        uv_close((uv_handle_t *)&srv->notify, on_own_handle_closed);
    }
    for (struct lx_http_conn *c = srv->conns; c; c = c->next) {
        conn_close(c);
    }
}

int lx_http_listen_socket(const char *host, int port, int backlog, int *out_port,
                          struct lx_error *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t slen;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (uv_ip4_addr(host, port, a4) == 0) {
        slen = sizeof(*a4);
    } else if (uv_ip6_addr(host, port, a6) == 0) {
        slen = sizeof(*a6);
    } else {
        return lx_error_set(err, LX_EINVAL, "invalid --host '%s': expected an IP address", host);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return lx_error_set(err, LX_EIO, "socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) {
        int e = errno;
        close(fd);
        return lx_error_set(err, LX_EIO, "SO_REUSEPORT: %s", strerror(e));
    }
    if (bind(fd, (struct sockaddr *)&ss, slen) || listen(fd, backlog)) {
        int e = errno;
        close(fd);
        return lx_error_set(err, LX_EIO, "cannot listen on %s:%d: %s", host, port, strerror(e));
    }
    if (out_port) {
        struct sockaddr_storage bound;
        socklen_t blen = sizeof(bound);
        getsockname(fd, (struct sockaddr *)&bound, &blen);
        *out_port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                     : ((struct sockaddr_in6 *)&bound)->sin6_port);
    }
    return fd;
}
