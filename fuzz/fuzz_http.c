/*
 * Fuzz the HTTP/1.1 server end to end: each input is written by a client
 * socket to a real lx_http_server on loopback (same thread, loop run by
 * hand), then the client half-closes and reads until the server closes.
 * Exercises parsing, limits, pipelining, chunked bodies, error responses and
 * the close paths; ASan/UBSan and the allocation counter catch the rest.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "core/alloc.h"
#include "http/http.h"
#include "log/log.h"

static uv_loop_t loop;
static struct lx_http_server *srv;
static int port;

static void handler(struct lx_http_request *req, void *ud)
{
    (void)ud;
    if (lx_str_eq_c(req->path, "/stream")) {
        lx_http_stream_start(req, 200, NULL, 0);
        lx_http_stream_write(req, lx_buf_str(&req->body));
        lx_http_stream_end(req);
        return;
    }
    struct lx_http_header h[] = {{LX_STR("x-path"), req->path}};
    lx_http_respond(req, 200, h, 1, lx_buf_str(&req->body));
}

static void init(void)
{
    lx_log_set_level(LX_LOG_ERROR);
    uv_loop_init(&loop);
    struct lx_error err;
    int fd = lx_http_listen_socket("127.0.0.1", 0, 128, &port, &err);
    if (fd < 0) {
        abort();
    }
    struct lx_http_limits lim = {.max_header_bytes = 2048,
                                 .max_body_bytes = 4096,
                                 .header_timeout_ms = 2000,
                                 .body_timeout_ms = 2000,
                                 .keepalive_timeout_ms = 2000,
                                 .send_timeout_ms = 2000};
    srv = lx_http_server_new(&loop, fd, &lim, handler, NULL, &err);
    if (!srv) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    if (!inited) {
        init();
        inited = 1;
    }
    if (size > 16384) {
        return 0;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) && errno != EINPROGRESS) {
        abort();
    }
    size_t off = 0;
    int shut = 0;
    char buf[65536];
    for (int iter = 0; iter < 10000; iter++) {
        if (off < size) {
            ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
            if (w > 0) {
                off += (size_t)w;
            }
        } else if (!shut) {
            shutdown(fd, SHUT_WR);
            shut = 1;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            break;
        }
    }
    close(fd);
    /* Let the server notice the close and release the connection. */
    for (int i = 0; i < 100 && lx_http_server_connections(srv) > 0; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    if (lx_http_server_connections(srv) > 0) {
        abort();
    }
    return 0;
}
