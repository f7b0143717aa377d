/*
 * llmux-mock: a fake OpenAI and Anthropic LLM provider for llmux's tests and
 * benchmarks (see tools/mock/README.md). This file holds the command line,
 * the listening sockets, the worker threads and signal handling.
 *
 * Every worker gets its own listening socket on the same address with
 * SO_REUSEPORT, so the kernel spreads connections over the workers and no
 * connection ever moves between threads. The sockets are bound and listening
 * before the one "listening on" line is printed, so a test that read the line
 * can connect at once. SIGINT and SIGTERM stop every worker; the process then
 * frees everything and exits 0.
 */
#include "mock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <getopt.h>

#include "core/alloc.h"
#include "log/log.h"

#define MAX_THREADS 256
#define LISTEN_BACKLOG 4096

static void usage(FILE *f)
{
    fputs(
        "usage: llmux-mock [--host 127.0.0.1] [--port 0] [--threads N] [--latency-ms N]\n"
        "                  [--chunks N] [--interval-ms N] [--content TEXT] [--quiet]\n"
        "A fake OpenAI and Anthropic provider for tests and benchmarks; see tools/mock/README.md.\n"
        "  --host H         address to listen on (default 127.0.0.1)\n"
        "  --port N         port; 0 picks a free one (default 0)\n"
        "  --threads N      worker threads, one loop and SO_REUSEPORT listener each (default 1)\n"
        "  --latency-ms N   delay before every answer's headers (default 0)\n"
        "  --chunks N       content pieces per stream; 0 = one per word (default 0)\n"
        "  --interval-ms N  delay between stream events (default 0)\n"
        "  --content TEXT   answer text (default \"Hello! This is llmux-mock.\")\n"
        "  --quiet          log errors only\n"
        "It prints \"llmux-mock listening on HOST:PORT\" once listening; SIGTERM/SIGINT exit 0.\n",
        f);
}

static int parse_num(const char *opt, const char *arg, unsigned long long max, uint32_t *out)
{
    unsigned long long v;
    if (lx_str_to_u64(lx_str_c(arg), max, &v) != 0) {
        fprintf(stderr, "llmux-mock: --%s wants an integer from 0 to %llu, got '%s'\n", opt, max,
                arg);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_args(int argc, char **argv, struct lx_mock_config *cfg)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'h'},    {"port", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 't'}, {"latency-ms", required_argument, NULL, 'l'},
        {"chunks", required_argument, NULL, 'c'},  {"interval-ms", required_argument, NULL, 'i'},
        {"content", required_argument, NULL, 'C'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'H'},          {NULL, 0, NULL, 0},
    };
    uint32_t v;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            cfg->host = optarg;
            break;
        case 'p':
            if (parse_num("port", optarg, 65535, &v)) {
                return -1;
            }
            cfg->port = v;
            break;
        case 't':
            if (parse_num("threads", optarg, MAX_THREADS, &v) || v == 0) {
                fprintf(stderr, "llmux-mock: --threads must be 1..%d\n", MAX_THREADS);
                return -1;
            }
            cfg->threads = v;
            break;
        case 'l':
            if (parse_num("latency-ms", optarg, LX_MOCK_MAX_DELAY_MS, &cfg->latency_ms)) {
                return -1;
            }
            break;
        case 'c':
            if (parse_num("chunks", optarg, LX_MOCK_MAX_CHUNKS, &cfg->chunks)) {
                return -1;
            }
            break;
        case 'i':
            if (parse_num("interval-ms", optarg, LX_MOCK_MAX_DELAY_MS, &cfg->interval_ms)) {
                return -1;
            }
            break;
        case 'C':
            cfg->content = lx_str_c(optarg);
            break;
        case 'q':
            cfg->is_quiet = true;
            break;
        case 'H':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "llmux-mock: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/*
 * A bound, listening, non-blocking socket for host:port with SO_REUSEPORT so
 * the other workers can bind the same port. Writes the bound port and the
 * address as "H:P" (IPv6 as "[H]:P"). Returns the fd or -1.
 */
static int open_listener(const char *host, unsigned port, unsigned *out_port, char *out_addr,
                         size_t addr_cap)
{
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
    };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "llmux-mock: cannot resolve %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    int last_errno = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0) {
            break;
        }
        last_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "llmux-mock: cannot listen on %s:%u: %s\n", host, port,
                strerror(last_errno));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
            *out_port = ntohs(s6->sin6_port);
            snprintf(out_addr, addr_cap, "[%s]:%u", ip, *out_port);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
            *out_port = ntohs(s4->sin_port);
            snprintf(out_addr, addr_cap, "%s:%u", ip, *out_port);
        }
    }
    return fd;
}

/* 10,000 slow streams need more descriptors than the usual soft limit of 1024. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

struct main_ctx {
    uv_signal_t sigint;
    uv_signal_t sigterm;
    struct lx_mock_worker *workers;
    unsigned n;
};

static void on_signal(uv_signal_t *h, int signum)
{
    struct main_ctx *m = h->data;
    LX_INFO("llmux-mock: signal %d, stopping", signum);
    for (unsigned i = 0; i < m->n; i++) {
        uv_async_send(&m->workers[i].stop);
    }
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_close((uv_handle_t *)&m->sigterm, NULL);
}

/* Tear down workers whose loops were set up but never ran. */
static void discard_workers(struct lx_mock_worker *workers, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        lx_mock__worker_stop(&workers[i]);
        uv_run(&workers[i].loop, UV_RUN_DEFAULT);
        uv_loop_close(&workers[i].loop);
    }
}

int main(int argc, char **argv)
{
    struct lx_mock_config cfg = {
        .host = "127.0.0.1",
        .threads = 1,
        .content = LX_STR("Hello! This is llmux-mock."),
    };
    if (parse_args(argc, argv, &cfg) != 0) {
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a client that left shows up as EPIPE, not a signal */
    raise_nofile();
    lx_log_set_level(cfg.is_quiet ? LX_LOG_ERROR : LX_LOG_INFO);
    lx_mock__json_init();

    struct lx_mock_worker *workers = lx_calloc(cfg.threads, sizeof(*workers));
    struct lx_mock_shared shared;
    lx_mock__shared_init(&shared, &cfg, workers, cfg.threads);
    unsigned ready = 0;
    unsigned port = cfg.port;
    char addr[INET6_ADDRSTRLEN + 16] = "";
    for (; ready < cfg.threads; ready++) {
        /* The first bind may pick the port; the others join it. */
        int fd = open_listener(cfg.host, port, &port, addr, sizeof(addr));
        if (fd < 0) {
            goto fail;
        }
        int rc = lx_mock__worker_init(&workers[ready], fd);
        if (rc) {
            fprintf(stderr, "llmux-mock: listen: %s\n", uv_strerror(rc));
            goto fail;
        }
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct main_ctx m = {.workers = workers, .n = cfg.threads};
    uv_signal_init(&loop, &m.sigint);
    uv_signal_init(&loop, &m.sigterm);
    m.sigint.data = &m;
    m.sigterm.data = &m;
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);

    printf("llmux-mock listening on %s\n", addr);
    fflush(stdout);
    for (unsigned i = 0; i < cfg.threads; i++) {
        int rc = pthread_create(&workers[i].thread, NULL, lx_mock__worker_run, &workers[i]);
        if (rc != 0) {
            /* Out of threads at startup: nothing sensible is left to do. */
            fprintf(stderr, "llmux-mock: pthread_create: %s\n", strerror(rc));
            abort();
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < cfg.threads; i++) {
        pthread_join(workers[i].thread, NULL);
    }
    uv_loop_close(&loop);
    lx_mock__shared_fini(&shared);
    lx_free(workers);
    return 0;

fail:
    discard_workers(workers, ready);
    lx_mock__shared_fini(&shared);
    lx_free(workers);
    return 1;
}
