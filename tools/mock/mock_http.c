/*
 * The mock's HTTP/1.1 server: connections on one libuv loop, parsed by
 * llhttp, answered in request order.
 *
 * Parsing. All connections of a loop read into the worker's one read buffer;
 * llhttp callbacks copy what they need into the connection's request buffers
 * (capped: 431 for the head, 413 for the body), and on_message_complete hands
 * the request to lx_mock__handle at once, so pipelined requests are parsed
 * and turned into responses as fast as they arrive (RFC 9112 section 9.3.2).
 *
 * Answers. Each connection keeps a FIFO of responses; only the head runs. A
 * response is a step function (mock.h): the engine waits first_delay_ms, calls
 * it, and keeps calling it after each delay it asks for, until it is done,
 * asks for a reset, or hangs forever. A plain answer with nothing queued ahead
 * and no delay bypasses the queue: its bytes go straight into the output
 * buffer, which is written with uv_try_write when read processing ends, so the
 * benchmark path allocates nothing per request once buffers are warm.
 *
 * Closing. A graceful close (Connection: close) shuts down the write side
 * after the last byte and then keeps reading and discarding until the peer
 * closes or LINGER_MS pass, so a client that pipelined more requests does not
 * get an RST that destroys the answer it has not read yet. A reset sets
 * SO_LINGER {1, 0} once every queued byte was handed to the kernel, so close(2)
 * sends RST. End of input from the client closes the connection at once (the
 * client is gone; streams stop and active_streams drops).
 *
 * Memory of a handle is released only in its close callback: a connection in
 * on_conn_close, a response with a timer in on_resp_timer_close.
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"
#include "log/log.h"
#include "mock.h"

#define LINGER_MS 2000
#define SWEEP_MS 500
#define OUT_KEEP_BYTES (64 * 1024) /* larger output buffers are freed when empty */
#define LISTEN_BACKLOG 4096

enum conn_state {
    CONN_OPEN,
    CONN_RESETTING, /* waiting for queued writes, then RST */
    CONN_SHUTDOWN,  /* shutdown(SHUT_WR) pending */
    CONN_LINGER,    /* write side closed; discarding input until EOF */
    CONN_CLOSING,   /* uv_close called */
};

struct lx_mock_conn {
    uv_tcp_t tcp;
    struct lx_mock_worker *w;
    struct lx_mock_conn *prev;
    struct lx_mock_conn *next;
    llhttp_t parser;
    struct lx_mock_reqbuf rb;
    struct lx_mock_resp *head; /* answer being sent */
    struct lx_mock_resp *tail;
    struct lx_buf out; /* bytes not yet handed to libuv */
    uint64_t linger_deadline;
    uint32_t nwrites;  /* uv_write requests in flight */
    uint32_t name_off; /* current header name in rb.head */
    uint32_t name_len;
    uint32_t val_off;
    int refuse_status; /* set by a callback that refuses the input (431) */
    enum conn_state state;
    bool is_stopped;  /* no further request will be answered: ignore input */
    bool is_too_big;  /* the body of the current request passed the cap */
    bool wants_close; /* the current request asked to close */
    bool has_expect;  /* Expect: 100-continue */
};

struct write_req {
    uv_write_t req;
    char *data;
};

/* A complete answer whose bytes are known up front. */
struct fixed_resp {
    struct lx_mock_resp base;
    uint32_t slow_ms;
    int phase;
    size_t status_len; /* the status line, sent first when slow_ms > 0 */
    size_t len;
    char data[];
};

static void close_conn(struct lx_mock_conn *c);
static void run_head(struct lx_mock_conn *c);
static void start_read(struct lx_mock_conn *c);

struct lx_mock_worker *lx_mock__conn_worker(const struct lx_mock_conn *c)
{
    return c->w;
}

bool lx_mock__conn_wants_close(const struct lx_mock_conn *c)
{
    return c->wants_close;
}

/* ---- output ---- */

static void on_write(uv_write_t *req, int status)
{
    struct write_req *wr = LX_CONTAINER_OF(req, struct write_req, req);
    struct lx_mock_conn *c = req->data;
    lx_free(wr->data);
    lx_free(wr);
    c->nwrites--;
    if (status < 0) {
        close_conn(c);
        return;
    }
    if (c->state == CONN_RESETTING && c->nwrites == 0) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
            struct linger l = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        }
        close_conn(c);
    }
}

/* Hand the output buffer to the kernel, or to libuv when the socket is full. May close c. */
static void flush(struct lx_mock_conn *c)
{
    if (c->out.len == 0 || c->state == CONN_CLOSING) {
        return;
    }
    size_t off = 0;
    if (c->nwrites == 0) {
        uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n >= 0 && (size_t)n == c->out.len) {
            if (c->out.cap > OUT_KEEP_BYTES) {
                lx_buf_fini(&c->out);
            } else {
                lx_buf_reset(&c->out);
            }
            return;
        }
        if (n >= 0) {
            off = (size_t)n;
        } else if (n != UV_EAGAIN) {
            close_conn(c);
            return;
        }
    }
    struct write_req *wr = lx_malloc(sizeof(*wr));
    size_t len;
    wr->data = lx_buf_take(&c->out, &len);
    wr->req.data = c;
    uv_buf_t b = uv_buf_init(wr->data + off, (unsigned)(len - off));
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        lx_free(wr->data);
        lx_free(wr);
        close_conn(c);
        return;
    }
    c->nwrites++;
}

/* ---- responses ---- */

static void on_resp_timer_close(uv_handle_t *h)
{
    struct lx_mock_resp *r = h->data;
    r->free_fn(r);
}

static void resp_free(struct lx_mock_resp *r)
{
    if (r->has_timer) {
        uv_close((uv_handle_t *)&r->timer, on_resp_timer_close);
    } else {
        r->free_fn(r);
    }
}

static void on_resp_timer(uv_timer_t *t)
{
    struct lx_mock_resp *r = t->data;
    run_head(r->conn);
}

static void arm(struct lx_mock_resp *r, uint32_t delay_ms)
{
    if (!r->has_timer) {
        uv_timer_init(&r->conn->w->loop, &r->timer);
        r->timer.data = r;
        r->has_timer = true;
    }
    uv_timer_start(&r->timer, on_resp_timer, delay_ms, 0);
}

static struct lx_mock_resp *pop_head(struct lx_mock_conn *c)
{
    struct lx_mock_resp *r = c->head;
    c->head = r->next;
    if (!c->head) {
        c->tail = NULL;
    }
    return r;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct lx_mock_conn *c = req->data;
    lx_free(req);
    if (c->state == CONN_CLOSING) {
        return;
    }
    if (status < 0) {
        close_conn(c);
        return;
    }
    c->state = CONN_LINGER;
    c->linger_deadline = uv_now(&c->w->loop) + LINGER_MS;
    /* The read callbacks are the same; in CONN_LINGER they discard. */
    uv_read_stop((uv_stream_t *)&c->tcp);
    start_read(c);
}

/* Close gracefully once everything written so far has left. */
static void begin_close(struct lx_mock_conn *c)
{
    c->is_stopped = true;
    flush(c);
    if (c->state != CONN_OPEN) {
        return;
    }
    while (c->head) {
        resp_free(pop_head(c));
    }
    c->state = CONN_SHUTDOWN;
    uv_shutdown_t *req = lx_malloc(sizeof(*req));
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        lx_free(req);
        close_conn(c);
    }
}

static void begin_reset(struct lx_mock_conn *c)
{
    c->is_stopped = true;
    flush(c);
    if (c->state != CONN_OPEN) {
        return;
    }
    c->state = CONN_RESETTING;
    if (c->nwrites == 0) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
            struct linger l = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        }
        close_conn(c);
    }
    /* Otherwise on_write resets once the last queued write completed. */
}

/* Run the head response as far as it goes without waiting. */
static void run_head(struct lx_mock_conn *c)
{
    while (c->head && c->state == CONN_OPEN) {
        struct lx_mock_resp *r = c->head;
        if (!r->is_started) {
            r->is_started = true;
            if (r->first_delay_ms) {
                flush(c);
                if (c->state == CONN_OPEN) {
                    arm(r, r->first_delay_ms);
                }
                return;
            }
        }
        uint32_t delay = 0;
        enum lx_mock_step st = r->step(r, &c->out, &delay);
        switch (st) {
        case LX_MOCK_STEP_AGAIN:
            if (delay) {
                flush(c);
                if (c->state == CONN_OPEN) {
                    arm(r, delay);
                }
                return;
            }
            break;
        case LX_MOCK_STEP_HANG:
            flush(c);
            return;
        case LX_MOCK_STEP_RESET:
            resp_free(pop_head(c));
            begin_reset(c);
            return;
        case LX_MOCK_STEP_DONE: {
            bool is_close = r->is_close;
            resp_free(pop_head(c));
            if (is_close) {
                begin_close(c);
                return;
            }
            break;
        }
        }
    }
    flush(c);
}

void lx_mock__conn_queue(struct lx_mock_conn *c, struct lx_mock_resp *r)
{
    r->next = NULL;
    r->conn = c;
    r->is_started = false;
    r->has_timer = false;
    if (c->state != CONN_OPEN || c->is_stopped) {
        r->free_fn(r);
        return;
    }
    if (r->is_close) {
        c->is_stopped = true;
    }
    bool was_idle = c->head == NULL;
    if (c->tail) {
        c->tail->next = r;
    } else {
        c->head = r;
    }
    c->tail = r;
    if (was_idle) {
        run_head(c);
    }
}

static enum lx_mock_step fixed_step(struct lx_mock_resp *r, struct lx_buf *out,
                                    uint32_t *out_delay_ms)
{
    struct fixed_resp *f = LX_CONTAINER_OF(r, struct fixed_resp, base);
    if (f->phase == 0 && f->slow_ms) {
        /* RFC 9112 allows the head to arrive in pieces; clients must cope. */
        if (lx_buf_append(out, f->data, f->status_len) != 0) {
            return LX_MOCK_STEP_RESET;
        }
        f->phase = 1;
        *out_delay_ms = f->slow_ms;
        return LX_MOCK_STEP_AGAIN;
    }
    size_t from = f->phase == 0 ? 0 : f->status_len;
    if (lx_buf_append(out, f->data + from, f->len - from) != 0) {
        return LX_MOCK_STEP_RESET;
    }
    return LX_MOCK_STEP_DONE;
}

static void plain_free(struct lx_mock_resp *r)
{
    lx_free(r);
}

void lx_mock__conn_send(struct lx_mock_conn *c, struct lx_str head, struct lx_str body,
                        const struct lx_mock_send_opts *opts)
{
    if (c->state != CONN_OPEN || c->is_stopped) {
        return;
    }
    if (!c->head && !opts->latency_ms && !opts->slow_headers_ms) {
        if (lx_buf_append_str(&c->out, head) != 0 || lx_buf_append_str(&c->out, body) != 0) {
            close_conn(c);
            return;
        }
        if (opts->is_close) {
            begin_close(c);
        }
        return; /* flushed when the read callback ends, together with pipelined answers */
    }
    struct fixed_resp *f = lx_try_malloc(sizeof(*f) + head.n + body.n);
    if (!f) {
        close_conn(c);
        return;
    }
    memset(f, 0, sizeof(*f));
    f->base.step = fixed_step;
    f->base.free_fn = plain_free;
    f->base.first_delay_ms = opts->latency_ms;
    f->base.is_close = opts->is_close;
    f->slow_ms = opts->slow_headers_ms;
    f->len = head.n + body.n;
    memcpy(f->data, head.p, head.n);
    memcpy(f->data + head.n, body.p, body.n);
    const char *eol = memchr(head.p, '\n', head.n);
    f->status_len = eol ? (size_t)(eol - head.p) + 1 : head.n;
    lx_mock__conn_queue(c, &f->base);
}

static enum lx_mock_step hang_step(struct lx_mock_resp *r, struct lx_buf *out,
                                   uint32_t *out_delay_ms)
{
    (void)r;
    (void)out;
    (void)out_delay_ms;
    return LX_MOCK_STEP_HANG;
}

static enum lx_mock_step reset_step(struct lx_mock_resp *r, struct lx_buf *out,
                                    uint32_t *out_delay_ms)
{
    (void)r;
    (void)out;
    (void)out_delay_ms;
    return LX_MOCK_STEP_RESET;
}

static void queue_simple(struct lx_mock_conn *c, lx_mock_step_cb step, uint32_t delay_ms)
{
    struct lx_mock_resp *r = LX_NEW(struct lx_mock_resp);
    r->step = step;
    r->free_fn = plain_free;
    r->first_delay_ms = delay_ms;
    lx_mock__conn_queue(c, r);
}

void lx_mock__conn_hang(struct lx_mock_conn *c)
{
    queue_simple(c, hang_step, 0);
}

void lx_mock__conn_reset(struct lx_mock_conn *c)
{
    queue_simple(c, reset_step, 0);
    c->is_stopped = true; /* nothing after a reset can be answered */
}

/* ---- parsing ---- */

static int on_message_begin(llhttp_t *p)
{
    struct lx_mock_conn *c = p->data;
    lx_mock__reqbuf_reset(&c->rb);
    c->name_off = 0;
    c->name_len = 0;
    c->val_off = 0;
    c->is_too_big = false;
    c->wants_close = false;
    c->has_expect = false;
    return 0;
}

static int head_append(struct lx_mock_conn *c, const char *at, size_t n)
{
    if (lx_buf_append(&c->rb.head, at, n) != 0) {
        c->refuse_status = 431;
        return HPE_USER;
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    return head_append(p->data, at, n);
}

static int on_url_complete(llhttp_t *p)
{
    struct lx_mock_conn *c = p->data;
    c->rb.url_len = c->rb.head.len;
    c->name_off = (uint32_t)c->rb.head.len;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    return head_append(p->data, at, n);
}

static int on_header_field_complete(llhttp_t *p)
{
    struct lx_mock_conn *c = p->data;
    c->name_len = (uint32_t)c->rb.head.len - c->name_off;
    c->val_off = (uint32_t)c->rb.head.len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    return head_append(p->data, at, n);
}

static int on_header_value_complete(llhttp_t *p)
{
    struct lx_mock_conn *c = p->data;
    struct lx_mock_hdr h = {
        .name_off = c->name_off,
        .name_len = c->name_len,
        .val_off = c->val_off,
        .val_len = (uint32_t)c->rb.head.len - c->val_off,
    };
    if (lx_buf_append(&c->rb.idx, &h, sizeof(h)) != 0) {
        c->refuse_status = 431;
        return HPE_USER;
    }
    c->name_off = (uint32_t)c->rb.head.len;
    struct lx_str name = {c->rb.head.data + h.name_off, h.name_len};
    struct lx_str val = lx_str_trim((struct lx_str){c->rb.head.data + h.val_off, h.val_len});
    if (lx_str_case_eq(name, LX_STR("expect")) && lx_str_case_eq(val, LX_STR("100-continue"))) {
        c->has_expect = true;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct lx_mock_conn *c = p->data;
    c->rb.method = llhttp_method_name((llhttp_method_t)llhttp_get_method(p));
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > LX_MOCK_MAX_BODY_BYTES) {
        c->is_too_big = true;
    }
    /*
     * RFC 9110 section 10.1.1: answer 100 Continue so the client sends the
     * body without waiting. Only when nothing is queued ahead: an interim
     * answer must not overtake the answers to earlier pipelined requests.
     */
    if (c->has_expect && !c->is_too_big && !c->head && llhttp_get_http_minor(p) >= 1) {
        if (lx_buf_append_c(&c->out, "HTTP/1.1 100 Continue\r\n\r\n") == 0) {
            flush(c);
        }
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct lx_mock_conn *c = p->data;
    if (c->is_too_big) {
        return 0; /* keep parsing to stay in sync; the answer is 413 */
    }
    if (lx_buf_append(&c->rb.body, at, n) != 0) {
        c->is_too_big = true;
        lx_buf_fini(&c->rb.body);
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct lx_mock_conn *c = p->data;
    if (c->state != CONN_OPEN || c->is_stopped) {
        return HPE_PAUSED;
    }
    c->wants_close = !llhttp_should_keep_alive(p);
    struct lx_mock_req req = {
        .method = c->rb.method ? c->rb.method : "GET",
        .url = {c->rb.head.data ? c->rb.head.data : "", c->rb.url_len},
        .body = lx_buf_str(&c->rb.body),
        .hdrs = (const struct lx_mock_hdr *)(void *)c->rb.idx.data,
        .nhdrs = c->rb.idx.len / sizeof(struct lx_mock_hdr),
        .base = c->rb.head.data,
        .is_http11 = llhttp_get_http_major(p) > 1 ||
                     (llhttp_get_http_major(p) == 1 && llhttp_get_http_minor(p) >= 1),
        .is_too_big = c->is_too_big,
    };
    bool record = lx_mock__handle(c, &req);
    if (record) {
        lx_mock__last_store(c->w, &c->rb);
    }
    lx_mock__reqbuf_reset(&c->rb);
    if (c->state != CONN_OPEN || c->is_stopped) {
        return HPE_PAUSED; /* stop parsing: later requests get no answer */
    }
    return 0;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- connections ---- */

static void on_conn_close(uv_handle_t *h)
{
    struct lx_mock_conn *c = h->data;
    struct lx_mock_worker *w = c->w;
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        w->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    lx_mock__reqbuf_fini(&c->rb);
    lx_buf_fini(&c->out);
    lx_free(c);
}

static void close_conn(struct lx_mock_conn *c)
{
    if (c->state == CONN_CLOSING) {
        return;
    }
    c->state = CONN_CLOSING;
    c->is_stopped = true;
    while (c->head) {
        resp_free(pop_head(c));
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct lx_mock_conn *c = h->data;
    /* Safe to share: libuv calls the read callback before the next allocation. */
    *buf = uv_buf_init(c->w->rbuf, sizeof(c->w->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct lx_mock_conn *c = s->data;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        close_conn(c); /* EOF or error: the client is gone (see the top of the file) */
        return;
    }
    if (c->state != CONN_OPEN || c->is_stopped) {
        return; /* lingering close, or answers are still leaving before a close */
    }
    enum llhttp_errno err = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (c->state == CONN_CLOSING) {
        return;
    }
    if (err != HPE_OK && !c->is_stopped) {
        int status = c->refuse_status ? c->refuse_status : 400;
        const char *msg =
            status == 431 ? "request header fields too large" : llhttp_get_error_reason(&c->parser);
        lx_mock__send_error(c, status, msg ? msg : "malformed HTTP request", true);
        c->is_stopped = true;
    }
    if (c->is_stopped && c->state == CONN_OPEN) {
        uv_read_stop(s);
    }
    flush(c);
}

static void start_read(struct lx_mock_conn *c)
{
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        close_conn(c);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct lx_mock_worker *w = server->data;
    if (status < 0) {
        LX_WARN("llmux-mock: accept: %s", uv_strerror(status));
        return;
    }
    struct lx_mock_conn *c = LX_NEW(struct lx_mock_conn);
    c->w = w;
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    c->next = w->conns;
    if (w->conns) {
        w->conns->prev = c;
    }
    w->conns = c;
    lx_mock__reqbuf_init(&c->rb);
    lx_buf_init(&c->out, LX_MOCK_MAX_OUT_BYTES);
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        close_conn(c);
        return;
    }
    atomic_fetch_add_explicit(&w->stats.conns, 1, memory_order_relaxed);
    uv_tcp_nodelay(&c->tcp, 1); /* stream events are small and must not wait for ACKs */
    start_read(c);
}

/* ---- workers ---- */

static void on_sweep(uv_timer_t *t)
{
    struct lx_mock_worker *w = t->data;
    uint64_t now = uv_now(&w->loop);
    struct lx_mock_conn *c = w->conns;
    while (c) {
        struct lx_mock_conn *next = c->next;
        if (c->state == CONN_LINGER && now >= c->linger_deadline) {
            close_conn(c);
        }
        c = next;
    }
}

static void on_stop(uv_async_t *a)
{
    lx_mock__worker_stop(a->data);
}

void lx_mock__worker_stop(struct lx_mock_worker *w)
{
    if (w->is_stopping) {
        return;
    }
    w->is_stopping = true;
    uv_close((uv_handle_t *)&w->listener, NULL);
    uv_close((uv_handle_t *)&w->stop, NULL);
    uv_close((uv_handle_t *)&w->sweep, NULL);
    for (struct lx_mock_conn *c = w->conns; c; c = c->next) {
        close_conn(c);
    }
}

int lx_mock__worker_init(struct lx_mock_worker *w, int fd)
{
    int rc = uv_loop_init(&w->loop);
    if (rc) {
        return rc;
    }
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w;
    uv_async_init(&w->loop, &w->stop, on_stop);
    w->stop.data = w;
    uv_timer_init(&w->loop, &w->sweep);
    w->sweep.data = w;
    uv_timer_start(&w->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    rc = uv_tcp_open(&w->listener, fd);
    if (rc) {
        close(fd); /* not adopted by the handle */
    } else {
        rc = uv_listen((uv_stream_t *)&w->listener, LISTEN_BACKLOG, on_connection);
    }
    if (rc) {
        lx_mock__worker_stop(w);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
    }
    return rc;
}

void *lx_mock__worker_run(void *arg)
{
    struct lx_mock_worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Only closed handles are left; a second run lets their callbacks finish. */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->loop) != 0) {
        LX_WARN("llmux-mock: worker %u: loop still busy at exit", w->index);
    }
    lx_mock__thread_fini();
    return NULL;
}
