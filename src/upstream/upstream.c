/*
 * libcurl multi_socket on libuv (the pattern of curl's docs/examples/multi-uv.c).
 *
 * Sockets: curl tells us which fds to watch through the socket callback; each
 * gets a struct sock with a uv_poll_t, attached to curl's socket with
 * curl_multi_assign. When curl removes a socket, its poll handle is closed
 * and freed in the close callback.
 *
 * Transfers finish in check_done(), called after every curl_multi_socket_action
 * (a top-level loop callback), where the easy handle is removed from the multi
 * handle before on_done runs, so on_done may start new transfers or free the
 * caller's state freely.
 *
 * Easy handles are reset and kept in a small per-worker pool: creating one
 * costs more than a request's whole parse.
 */
#include "upstream/upstream.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/buf.h"
#include "log/log.h"

#define EASY_POOL_MAX 256
#define RESP_HEADERS_CAP (32 * 1024)
#define MAX_CONNECTS 1024
#define SWEEP_MS 100

struct lx_upstream {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    uv_timer_t sweep; /* idle-timeout checks, every SWEEP_MS while needed */
    bool sweeping;
    uint64_t releases; /* transfers released so far: tells the sweep when on_done released others */
    CURL *pool[EASY_POOL_MAX];
    size_t n_pool;
    size_t active;
    struct lx_upstream_xfer *xfers; /* active transfers, for close */
    bool closing;
    int open_handles; /* the timer and live socket polls */
    bool in_action;   /* inside curl_multi_socket_action */
};

struct lx_upstream_xfer {
    struct lx_upstream *u;
    struct lx_upstream_xfer *prev, *next;
    CURL *easy;
    struct curl_slist *slist;
    struct lx_upstream_cbs cbs;
    void *ud;
    struct lx_buf resp_headers; /* "name: value\r\n" lines of the final block */
    int result;                 /* a callback's abort code */
    bool headers_done;
    bool paused;
    uint64_t idle_timeout_ms; /* 0 = none */
    uint64_t last_rx;         /* uv_now() of the last byte (or the start) */
};

struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct lx_upstream *u;
};

static void check_done(struct lx_upstream *u);

static void maybe_free(struct lx_upstream *u)
{
    if (u->closing && u->open_handles == 0) {
        lx_free(u);
    }
}

static void on_sock_closed(uv_handle_t *h)
{
    struct sock *s = h->data;
    struct lx_upstream *u = s->u;
    lx_free(s);
    u->open_handles--;
    maybe_free(u);
}

static void socket_action(struct lx_upstream *u, curl_socket_t fd, int flags)
{
    int running;
    u->in_action = true;
    curl_multi_socket_action(u->multi, fd, flags, &running);
    u->in_action = false;
    check_done(u);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock *s = p->data;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    }
    if (events & UV_READABLE) {
        flags |= CURL_CSELECT_IN;
    }
    if (events & UV_WRITABLE) {
        flags |= CURL_CSELECT_OUT;
    }
    socket_action(s->u, s->fd, flags);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct lx_upstream *u = userp;
    struct sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, on_sock_closed);
            curl_multi_assign(u->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = lx_malloc(sizeof(*s));
        s->fd = fd;
        s->u = u;
        if (uv_poll_init_socket(u->loop, &s->poll, fd)) {
            lx_free(s);
            return -1;
        }
        s->poll.data = s;
        u->open_handles++;
        curl_multi_assign(u->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN) {
        events |= UV_READABLE;
    }
    if (what & CURL_POLL_OUT) {
        events |= UV_WRITABLE;
    }
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    struct lx_upstream *u = t->data;
    socket_action(u, CURL_SOCKET_TIMEOUT, 0);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct lx_upstream *u = userp;
    if (timeout_ms < 0) {
        uv_timer_stop(&u->timer);
    } else {
        /* 0 means "now", but socket_action must not be called from inside this callback. */
        uv_timer_start(&u->timer, on_timer, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

struct lx_upstream *lx_upstream_new(uv_loop_t *loop)
{
    struct lx_upstream *u = lx_calloc(1, sizeof(*u));
    u->loop = loop;
    u->multi = curl_multi_init();
    LX_ASSERT(u->multi != NULL);
    uv_timer_init(loop, &u->timer);
    u->timer.data = u;
    uv_timer_init(loop, &u->sweep);
    u->sweep.data = u;
    u->open_handles = 2;
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, (long)MAX_CONNECTS);
    curl_multi_setopt(u->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return u;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct lx_upstream *u = h->data;
    u->open_handles--;
    maybe_free(u);
}

static void xfer_release(struct lx_upstream_xfer *x)
{
    struct lx_upstream *u = x->u;
    u->releases++;
    curl_multi_remove_handle(u->multi, x->easy);
    if (x->prev) {
        x->prev->next = x->next;
    } else {
        u->xfers = x->next;
    }
    if (x->next) {
        x->next->prev = x->prev;
    }
    u->active--;
    if (u->n_pool < EASY_POOL_MAX && !u->closing) {
        curl_easy_reset(x->easy);
        u->pool[u->n_pool++] = x->easy;
    } else {
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->slist);
    lx_buf_fini(&x->resp_headers);
    lx_free(x);
}

void lx_upstream_close(struct lx_upstream *u)
{
    u->closing = true;
    while (u->xfers) {
        xfer_release(u->xfers);
    }
    for (size_t i = 0; i < u->n_pool; i++) {
        curl_easy_cleanup(u->pool[i]);
    }
    u->n_pool = 0;
    /* curl_multi_cleanup closes cached connections, calling the socket callback to remove them. */
    curl_multi_cleanup(u->multi);
    u->multi = NULL;
    uv_timer_stop(&u->timer);
    uv_close((uv_handle_t *)&u->timer, on_timer_closed);
    uv_timer_stop(&u->sweep);
    uv_close((uv_handle_t *)&u->sweep, on_timer_closed);
}

size_t lx_upstream_active(const struct lx_upstream *u)
{
    return u->active;
}

static size_t on_header_line(char *buf, size_t size, size_t n, void *ud)
{
    struct lx_upstream_xfer *x = ud;
    size_t len = size * n;
    x->last_rx = uv_now(x->u->loop);
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A new header block (after 100 Continue, or a redirect): start over. */
        lx_buf_reset(&x->resp_headers);
        return len;
    }
    if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
        long status = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && !x->headers_done) {
            x->headers_done = true;
            if (x->cbs.on_headers) {
                int rc = x->cbs.on_headers(x->ud, (int)status);
                if (rc < 0) {
                    x->result = rc;
                    return 0; /* abort */
                }
            }
        }
        return len;
    }
    /* Over the cap, extra headers are dropped: we only look up a few. */
    if (lx_buf_append(&x->resp_headers, buf, len)) {
        return len;
    }
    return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
    struct lx_upstream_xfer *x = ud;
    size_t len = size * n;
    x->last_rx = uv_now(x->u->loop);
    if (!x->headers_done) {
        /* Body without a blank line seen (curl always sends it, but be safe). */
        long status = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        x->headers_done = true;
        if (x->cbs.on_headers) {
            int rc = x->cbs.on_headers(x->ud, (int)status);
            if (rc < 0) {
                x->result = rc;
                return 0;
            }
        }
    }
    int rc = x->cbs.on_data(x->ud, buf, len);
    if (rc == LX_EAGAIN) {
        x->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (rc < 0) {
        x->result = rc;
        return 0;
    }
    return len;
}

static int map_curl_error(CURLcode cc)
{
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return LX_ETIMEDOUT;
    case CURLE_OUT_OF_MEMORY:
        return LX_ENOMEM;
    default:
        return LX_EUPSTREAM;
    }
}

static void check_done(struct lx_upstream *u)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(u->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        struct lx_upstream_xfer *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        LX_ASSERT(x != NULL);
        CURLcode cc = msg->data.result;
        struct lx_error err = {0};
        int result = 0;
        if (x->result) {
            result = x->result;
            lx_error_set(&err, result, "%s", lx_strerror(result));
        } else if (cc != CURLE_OK) {
            result = map_curl_error(cc);
            lx_error_set(&err, result, "%s", curl_easy_strerror(cc));
        }
        lx_upstream_done_cb done = x->cbs.on_done;
        void *ud = x->ud;
        xfer_release(x);
        done(ud, result, result ? &err : NULL);
    }
}

/*
 * Inactivity timeouts: curl's low-speed limit averages over a window, so a
 * stream that sends one small event every few seconds never trips it. Every
 * SWEEP_MS, transfers silent for longer than their idle timeout end with
 * LX_ETIMEDOUT. Paused transfers are silent by our choice and are skipped.
 */
static void on_sweep(uv_timer_t *t)
{
    struct lx_upstream *u = t->data;
    uint64_t now = uv_now(u->loop);
    bool any = false;
    struct lx_upstream_xfer *x = u->xfers;
    while (x) {
        struct lx_upstream_xfer *next = x->next;
        if (x->idle_timeout_ms) {
            any = true;
            if (!x->paused && now - x->last_rx >= x->idle_timeout_ms) {
                struct lx_error err;
                lx_error_set(&err, LX_ETIMEDOUT, "no data from upstream for %.1fs",
                             (double)x->idle_timeout_ms / 1000.0);
                lx_upstream_done_cb done = x->cbs.on_done;
                void *ud = x->ud;
                xfer_release(x);
                uint64_t releases = u->releases;
                done(ud, LX_ETIMEDOUT, &err);
                if (u->releases != releases) {
                    /* on_done released other transfers: `next` may be gone, start over. */
                    next = u->xfers;
                    any = false;
                }
            }
        }
        x = next;
    }
    if (!any) {
        u->sweeping = false;
        uv_timer_stop(&u->sweep);
    }
}

static struct curl_slist *append_header(struct curl_slist *l, const char *name, struct lx_str value)
{
    char small[512];
    char *line = small;
    size_t nl = strlen(name);
    size_t need = nl + 2 + value.n + 1;
    if (need > sizeof(small)) {
        line = lx_malloc(need);
    }
    memcpy(line, name, nl);
    memcpy(line + nl, ": ", 2);
    memcpy(line + nl + 2, value.p, value.n);
    line[need - 1] = '\0';
    struct curl_slist *r = curl_slist_append(l, line);
    if (line != small) {
        lx_free(line);
    }
    return r;
}

struct lx_upstream_xfer *lx_upstream_start(struct lx_upstream *u, const struct lx_upstream_req *req,
                                           const struct lx_upstream_cbs *cbs, void *ud,
                                           struct lx_error *err)
{
    LX_ASSERT(!u->closing);
    CURL *e = u->n_pool ? u->pool[--u->n_pool] : curl_easy_init();
    if (!e) {
        lx_error_set(err, LX_ENOMEM, "cannot create a transfer");
        return NULL;
    }
    struct lx_upstream_xfer *x = lx_calloc(1, sizeof(*x));
    x->u = u;
    x->easy = e;
    x->cbs = *cbs;
    x->ud = ud;
    lx_buf_init(&x->resp_headers, RESP_HEADERS_CAP);

    struct curl_slist *l = NULL;
    for (size_t i = 0; i < req->n_headers; i++) {
        l = append_header(l, req->headers[i].name, req->headers[i].value);
    }
    /* An empty value removes a header curl would add itself. */
    l = curl_slist_append(l, "Expect:");
    x->slist = l;

    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(e, CURLOPT_PROXY, req->proxy ? req->proxy : "");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header_line);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (req->stream) {
        curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
    }
    if (req->body.p) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body.n);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body.p);
    }
    if (req->method) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    uint64_t connect_ms = req->connect_timeout_ms ? req->connect_timeout_ms : 10000;
    if (req->timeout_ms && connect_ms > req->timeout_ms) {
        connect_ms = req->timeout_ms;
    }
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    if (req->timeout_ms) {
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    }
    x->idle_timeout_ms = req->idle_timeout_ms;
    x->last_rx = uv_now(u->loop);

    CURLMcode mc = curl_multi_add_handle(u->multi, e);
    if (mc != CURLM_OK) {
        lx_error_set(err, LX_EUPSTREAM, "cannot start transfer: %s", curl_multi_strerror(mc));
        curl_slist_free_all(l);
        lx_buf_fini(&x->resp_headers);
        curl_easy_cleanup(e);
        lx_free(x);
        return NULL;
    }
    x->next = u->xfers;
    if (u->xfers) {
        u->xfers->prev = x;
    }
    u->xfers = x;
    u->active++;
    if (x->idle_timeout_ms && !u->sweeping) {
        u->sweeping = true;
        uv_timer_start(&u->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    }
    return x;
}

void lx_upstream_cancel(struct lx_upstream_xfer *x)
{
    LX_ASSERT(!x->u->in_action);
    xfer_release(x);
}

void lx_upstream_resume(struct lx_upstream_xfer *x)
{
    if (!x->paused) {
        return;
    }
    x->paused = false;
    struct lx_upstream *u = x->u;
    curl_easy_pause(x->easy, CURLPAUSE_CONT);
    /* Unpausing may have finished the transfer or changed what curl waits for. */
    if (!u->in_action) {
        socket_action(u, CURL_SOCKET_TIMEOUT, 0);
    }
}

struct lx_str lx_upstream_header_get(const struct lx_upstream_xfer *x, struct lx_str name)
{
    const char *p = x->resp_headers.data;
    const char *end = p + x->resp_headers.len;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) {
            eol = end;
        }
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon && (size_t)(colon - p) == name.n && strncasecmp(p, name.p, name.n) == 0) {
            return lx_str_trim((struct lx_str){
                colon + 1, (size_t)(eol - colon - 1) - (eol > colon + 1 && eol[-1] == '\r')});
        }
        p = eol + 1;
    }
    return LX_STR_NULL;
}
