/*
 * Unit tests for the HTTP/1.1 server: a real server on a loopback socket,
 * its loop on a thread of its own, driven by blocking client sockets from the
 * test thread. Covers keep-alive, pipelining, chunked bodies, limits (413,
 * 431, 400), Expect: 100-continue, HTTP/1.0, timeouts, streamed responses,
 * request ids, client aborts and graceful shutdown.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "core/assert.h"
#include "http/http.h"
#include "lx_test.h"

struct fixture {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t cmd;
    uv_timer_t later;
    struct lx_http_server *srv;
    int port;
    atomic_int aborts;
    atomic_int closed_cb;
    atomic_int stop;
    atomic_int shutdown;
    struct lx_http_request *slow; /* a request answered by the timer */
};

static struct fixture fx;

static void on_abort(struct lx_http_request *req, void *ud)
{
    (void)ud;
    if (req == fx.slow) {
        fx.slow = NULL;
    }
    atomic_fetch_add(&fx.aborts, 1);
}

static void on_later(uv_timer_t *t)
{
    (void)t;
    if (fx.slow) {
        struct lx_http_request *r = fx.slow;
        fx.slow = NULL;
        lx_http_respond(r, 200, NULL, 0, LX_STR("late"));
    }
}

static void handler(struct lx_http_request *req, void *ud)
{
    (void)ud;
    if (lx_str_eq_c(req->path, "/echo")) {
        struct lx_http_header h[] = {{LX_STR("x-method"), req->method_name}};
        lx_http_respond(req, 200, h, 1, lx_buf_str(&req->body));
    } else if (lx_str_eq_c(req->path, "/stream")) {
        lx_http_stream_start(req, 200, NULL, 0);
        lx_http_stream_write(req, LX_STR("a"));
        lx_http_stream_write(req, LX_STR("bc"));
        lx_http_stream_end(req);
    } else if (lx_str_eq_c(req->path, "/slow")) {
        fx.slow = req;
        lx_http_on_abort(req, on_abort, NULL);
        uv_timer_start(&fx.later, on_later, 400, 0);
    } else {
        lx_http_respond_error(req, 404, NULL, NULL, "no such path");
    }
}

static void on_closed(struct lx_http_server *srv, void *ud)
{
    (void)srv;
    (void)ud;
    atomic_store(&fx.closed_cb, 1);
}

static void on_cmd(uv_async_t *a)
{
    (void)a;
    if (atomic_exchange(&fx.shutdown, 0)) {
        lx_http_server_shutdown(fx.srv, on_closed, NULL);
    }
    if (atomic_load(&fx.stop)) {
        lx_http_server_close(fx.srv, NULL, NULL);
        uv_close((uv_handle_t *)&fx.cmd, NULL);
        uv_close((uv_handle_t *)&fx.later, NULL);
    }
}

static void run_loop(void *arg)
{
    (void)arg;
    uv_run(&fx.loop, UV_RUN_DEFAULT);
}

static void start(size_t max_body, size_t max_header, uint64_t header_ms, uint64_t idle_ms)
{
    memset(&fx, 0, sizeof(fx));
    uv_loop_init(&fx.loop);
    uv_async_init(&fx.loop, &fx.cmd, on_cmd);
    uv_timer_init(&fx.loop, &fx.later);
    struct lx_error err = {0};
    int fd = lx_http_listen_socket("127.0.0.1", 0, 64, &fx.port, &err);
    LX_ASSERT(fd >= 0);
    struct lx_http_limits lim = {.max_header_bytes = max_header,
                                 .max_body_bytes = max_body,
                                 .header_timeout_ms = header_ms,
                                 .body_timeout_ms = header_ms,
                                 .keepalive_timeout_ms = idle_ms,
                                 .send_timeout_ms = 5000};
    fx.srv = lx_http_server_new(&fx.loop, fd, &lim, handler, NULL, &err);
    LX_ASSERT(fx.srv != NULL);
    uv_thread_create(&fx.thread, run_loop, NULL);
}

static void stop(void)
{
    atomic_store(&fx.stop, 1);
    uv_async_send(&fx.cmd);
    uv_thread_join(&fx.thread);
    uv_loop_close(&fx.loop);
}

static int client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    LX_ASSERT(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    return fd;
}

static void send_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

/* Read until EOF, `want` occurrences of "HTTP/1.1 " with complete bodies, or idle_ms of silence. */
static char *recv_some(int fd, int idle_ms, bool *out_eof)
{
    static char buf[65536];
    size_t len = 0;
    *out_eof = false;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, idle_ms);
        if (r <= 0) {
            break;
        }
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0) {
            *out_eof = true;
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) {
        n++;
    }
    return n;
}

LX_TEST(keep_alive_two_requests)
{
    start(1 << 20, 8192, 2000, 5000);
    int fd = client();
    bool eof;
    send_all(fd, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    char *r = recv_some(fd, 200, &eof);
    LX_CHECK(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    LX_CHECK(strstr(r, "x-method: GET\r\n") != NULL);
    LX_CHECK(strstr(r, "content-length: 0\r\n") != NULL);
    LX_CHECK(!eof);
    send_all(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    r = recv_some(fd, 200, &eof);
    LX_CHECK(strstr(r, "\r\n\r\nhello") != NULL);
    LX_CHECK(!eof);
    close(fd);
    stop();
}

LX_TEST(pipelined_in_order)
{
    start(1 << 20, 8192, 2000, 5000);
    int fd = client();
    bool eof;
    send_all(fd, "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\none"
                 "GET /stream HTTP/1.1\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nthree");
    char *r = recv_some(fd, 300, &eof);
    LX_CHECK_INT(count(r, "HTTP/1.1 200 OK"), 3);
    const char *a = strstr(r, "\r\n\r\none");
    const char *b = strstr(r, "1\r\na\r\n2\r\nbc\r\n0\r\n\r\n");
    const char *c = strstr(r, "\r\n\r\nthree");
    LX_CHECK(a && b && c && a < b && b < c);
    close(fd);
    stop();
}

LX_TEST(chunked_request_body)
{
    start(1 << 20, 8192, 2000, 5000);
    int fd = client();
    bool eof;
    send_all(fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n");
    char *r = recv_some(fd, 200, &eof);
    LX_CHECK(strstr(r, "content-length: 9\r\n") != NULL);
    LX_CHECK(strstr(r, "\r\n\r\nWikipedia") != NULL);
    close(fd);
    stop();
}

LX_TEST(body_limits_413)
{
    start(100, 8192, 2000, 5000);
    bool eof;
    int fd = client();
    send_all(fd, "POST /echo HTTP/1.1\r\nContent-Length: 1000\r\n\r\n");
    char *r = recv_some(fd, 500, &eof);
    LX_CHECK(strncmp(r, "HTTP/1.1 413 ", 13) == 0);
    LX_CHECK(strstr(r, "\"code\":\"413\"") != NULL);
    LX_CHECK(strstr(r, "connection: close") != NULL);
    LX_CHECK(eof);
    close(fd);
    fd = client();
    send_all(fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "64\r\n");
    char chunk[120];
    memset(chunk, 'x', 100);
    memcpy(chunk + 100, "\r\n64\r\n", 7);
    send_all(fd, chunk);
    send_all(fd, chunk);
    r = recv_some(fd, 500, &eof);
    LX_CHECK(strncmp(r, "HTTP/1.1 413 ", 13) == 0);
    close(fd);
    stop();
}

LX_TEST(header_limit_431_and_malformed_400)
{
    start(1 << 20, 256, 2000, 5000);
    bool eof;
    int fd = client();
    char big[600];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    send_all(fd, "GET /echo HTTP/1.1\r\nX-Big: ");
    send_all(fd, big);
    send_all(fd, "\r\n\r\n");
    char *r = recv_some(fd, 500, &eof);
    LX_CHECK(strncmp(r, "HTTP/1.1 431 ", 13) == 0);
    LX_CHECK(eof);
    close(fd);
    fd = client();
    send_all(fd, "GET /echo HTTP/9.9 nonsense\r\n\r\n");
    r = recv_some(fd, 500, &eof);
    LX_CHECK(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
    LX_CHECK(strstr(r, "\"error\":{\"message\":") != NULL);
    LX_CHECK(eof);
    close(fd);
    stop();
}

LX_TEST(expect_continue_and_http10)
{
    start(1 << 20, 8192, 2000, 5000);
    bool eof;
    int fd = client();
    send_all(fd, "POST /echo HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
    char *r = recv_some(fd, 200, &eof);
    LX_CHECK(strcmp(r, "HTTP/1.1 100 Continue\r\n\r\n") == 0);
    send_all(fd, "ok");
    r = recv_some(fd, 200, &eof);
    LX_CHECK(strncmp(r, "HTTP/1.1 200 OK", 15) == 0);
    LX_CHECK(strstr(r, "\r\n\r\nok") != NULL);
    close(fd);
    fd = client();
    send_all(fd, "GET /stream HTTP/1.0\r\n\r\n");
    r = recv_some(fd, 500, &eof);
    LX_CHECK(strstr(r, "connection: close") != NULL);
    LX_CHECK(strstr(r, "transfer-encoding") == NULL);
    LX_CHECK(strstr(r, "\r\n\r\nabc") != NULL);
    LX_CHECK(eof);
    close(fd);
    stop();
}

LX_TEST(timeouts_header_and_idle)
{
    start(1 << 20, 8192, 200, 300);
    bool eof;
    int fd = client();
    send_all(fd, "GET /echo HTTP/1.1\r\nHost: sl");
    char *r = recv_some(fd, 1500, &eof);
    LX_CHECK(strncmp(r, "HTTP/1.1 408 ", 13) == 0);
    LX_CHECK(eof);
    close(fd);
    fd = client();
    send_all(fd, "GET /echo HTTP/1.1\r\n\r\n");
    r = recv_some(fd, 1500, &eof);
    LX_CHECK(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    LX_CHECK(eof); /* closed after the idle timeout */
    close(fd);
    stop();
}

LX_TEST(request_id)
{
    start(1 << 20, 8192, 2000, 5000);
    bool eof;
    int fd = client();
    send_all(fd, "GET /echo HTTP/1.1\r\nX-Request-Id: abc-123\r\n\r\n");
    char *r = recv_some(fd, 200, &eof);
    /* The client's id is echoed; the call id stays llmux's own UUID. */
    LX_CHECK(strstr(r, "x-request-id: abc-123\r\n") != NULL);
    const char *cid = strstr(r, "x-litellm-call-id: ");
    LX_CHECK(cid && cid[19 + 8] == '-' && cid[19 + 36] == '\r');
    send_all(fd, "GET /echo HTTP/1.1\r\nX-Request-Id: bad id\r\n\r\n");
    r = recv_some(fd, 200, &eof);
    const char *id = strstr(r, "x-litellm-call-id: ");
    LX_CHECK(id && strstr(r, "bad id") == NULL && strstr(r, "x-request-id") == NULL);
    LX_CHECK(id && id[19 + 8] == '-' && id[19 + 36] == '\r');
    close(fd);
    stop();
}

LX_TEST(client_abort_calls_abort_cb)
{
    start(1 << 20, 8192, 2000, 5000);
    int fd = client();
    send_all(fd, "GET /slow HTTP/1.1\r\n\r\n");
    usleep(100 * 1000);
    close(fd);
    for (int i = 0; i < 100 && atomic_load(&fx.aborts) == 0; i++) {
        usleep(10 * 1000);
    }
    LX_CHECK_INT(atomic_load(&fx.aborts), 1);
    stop();
}

LX_TEST(shutdown_finishes_in_flight)
{
    start(1 << 20, 8192, 2000, 5000);
    bool eof;
    int idle = client();
    int fd = client();
    send_all(fd, "GET /slow HTTP/1.1\r\n\r\n");
    usleep(100 * 1000);
    atomic_store(&fx.shutdown, 1);
    uv_async_send(&fx.cmd);
    char *r = recv_some(idle, 300, &eof);
    LX_CHECK(eof); /* the idle connection is closed at once */
    r = recv_some(fd, 1000, &eof);
    LX_CHECK(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    LX_CHECK(strstr(r, "connection: close") != NULL);
    LX_CHECK(strstr(r, "\r\n\r\nlate") != NULL);
    LX_CHECK(eof);
    /* The server lingers until the client closes its side too. */
    close(idle);
    close(fd);
    for (int i = 0; i < 100 && !atomic_load(&fx.closed_cb); i++) {
        usleep(10 * 1000);
    }
    LX_CHECK_INT(atomic_load(&fx.closed_cb), 1);
    LX_CHECK_INT(atomic_load(&fx.aborts), 0);
    stop();
}

LX_TEST_MAIN(LX_RUN(keep_alive_two_requests), LX_RUN(pipelined_in_order),
             LX_RUN(chunked_request_body), LX_RUN(body_limits_413),
             LX_RUN(header_limit_431_and_malformed_400), LX_RUN(expect_continue_and_http10),
             LX_RUN(timeouts_header_and_idle), LX_RUN(request_id),
             LX_RUN(client_abort_calls_abort_cb), LX_RUN(shutdown_finishes_in_flight))
