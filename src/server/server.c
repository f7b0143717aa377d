/*
 * Workers and signals. A worker is driven by commands posted from the main
 * thread through a uv_async_t (a new config, drain); everything a worker owns
 * is touched only on its own thread. The config hand-over goes through a
 * small mutex-protected slot that the worker empties when woken.
 *
 * Worker shutdown order matters: the HTTP server closes first (unfinished
 * requests get their abort callbacks, which cancel their upstream
 * transfers), then the upstream multi handle, then the pipeline; the loop
 * returns once every handle is closed.
 */
#include "server/server.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "admin/models.h"
#include "core/alloc.h"
#include "http/http.h"
#include "log/log.h"
#include "proxy/proxy.h"
#include "router/router.h"
#include "spend/budget.h"
#include "spend/endpoints.h"
#include "spend/ledger.h"
#include "store/store.h"
#include "upstream/upstream.h"

struct worker {
    int index;
    uv_thread_t thread;
    uv_loop_t loop;
    int listen_fd;
    struct lx_http_server *http;
    struct lx_upstream *up;
    struct lx_proxy *px;
    uv_async_t async;
    uv_check_t log_check;
    uv_timer_t drain_timer;
    uv_mutex_t lock;
    struct lx_config *next_cfg;       /* under lock */
    uint64_t next_gen;                /* under lock: the generation of next_cfg */
    atomic_uint_fast64_t applied_gen; /* generation of the config in use */
    atomic_bool closed;               /* handles closed: no config will be applied any more */
    atomic_bool drain_requested;
    atomic_bool stop_now;
    bool draining;
    bool stopping;
    double drain_timeout;
    struct lx_config *start_cfg;
    struct lx_proxy_env env;
    struct main_state *main;
};

struct main_state {
    uv_loop_t *loop;
    struct worker *workers;
    int n;
    uv_async_t worker_exited;
    atomic_int exited;
    uv_signal_t sig_term, sig_int, sig_hup;
    const char *config_path;
    bool debug;
    struct lx_config *cfg;
    struct lx_router_table *router; /* deployment health shared by every worker */
    int signals_seen;
    struct lx_store *store;
    struct lx_ledger *ledger; /* NULL without a store */
    struct lx_budget *budget; /* NULL without a store */
    const char *db_url;       /* the database_url the store was opened with (start config) */
    struct lx_config *start_cfg;
    /* Config rebuilds asked for by /model/new and /model/delete (see admin/models.h). */
    uv_async_t rebuild_async;
    uv_mutex_t rebuild_lock;
    struct rebuild_req *pending; /* under rebuild_lock */
    struct rebuild_req *waiting; /* main thread: installed, waiting for every worker */
    uint64_t gen;                /* generation of the last config broadcast */
    uv_timer_t models_poll;      /* notices models another gateway stored */
};

/*
 * A worker's request for a config rebuild. Its async handle lives on the
 * requesting worker's loop; the main thread fills rc and signals it, after
 * which only that worker touches it.
 */
struct rebuild_req {
    uv_async_t async;
    lx_models_done_cb cb;
    void *ud;
    int rc;
    uint64_t gen;
    struct rebuild_req *next;
};

/* How often the main thread looks for models another gateway stored. */
#define LX_MODELS_POLL_MS 5000

static _Thread_local struct worker *tls_worker;
static struct main_state *the_main;

/* ---- worker ---- */

static void worker_close_handles(struct worker *w)
{
    /* No later config reaches this worker: rebuilds stop waiting for it. */
    atomic_store(&w->closed, true);
    uv_async_send(&w->main->rebuild_async);
    uv_close((uv_handle_t *)&w->async, NULL);
    uv_close((uv_handle_t *)&w->log_check, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
}

static void on_http_closed(struct lx_http_server *srv, void *ud)
{
    (void)srv;
    struct worker *w = ud;
    w->http = NULL;
    lx_upstream_close(w->up);
    w->up = NULL;
    lx_proxy_free(w->px);
    w->px = NULL;
    worker_close_handles(w);
}

static void worker_stop(struct worker *w)
{
    if (w->stopping) {
        return;
    }
    w->stopping = true;
    uv_timer_stop(&w->drain_timer);
    if (w->http) {
        struct lx_http_server *http = w->http;
        lx_http_server_close(http, on_http_closed, w);
    }
}

static void on_drained(struct lx_http_server *srv, void *ud)
{
    (void)srv;
    struct worker *w = ud;
    LX_DEBUG("worker %d drained", w->index);
    worker_stop(w);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct worker *w = t->data;
    LX_WARN("worker %d: drain timeout (%.0fs) reached with %zu request(s) in flight; closing them",
            w->index, w->drain_timeout, w->http ? lx_http_server_in_flight(w->http) : 0);
    worker_stop(w);
}

static void worker_drain(struct worker *w)
{
    if (w->draining || w->stopping) {
        return;
    }
    w->draining = true;
    lx_proxy_set_draining(w->px, true);
    uv_timer_start(&w->drain_timer, on_drain_timeout, (uint64_t)(w->drain_timeout * 1000.0), 0);
    lx_http_server_shutdown(w->http, on_drained, w);
}

static void on_async(uv_async_t *a)
{
    struct worker *w = a->data;
    uv_mutex_lock(&w->lock);
    struct lx_config *cfg = w->next_cfg;
    uint64_t gen = w->next_gen;
    w->next_cfg = NULL;
    uv_mutex_unlock(&w->lock);
    if (cfg) {
        if (!w->stopping) {
            struct lx_http_limits limits;
            lx_proxy_set_config(w->px, cfg);
            lx_proxy_http_limits(cfg, &limits);
            lx_http_server_set_limits(w->http, &limits);
            w->drain_timeout = cfg->general.drain_timeout;
        }
        lx_config_unref(cfg);
        atomic_store(&w->applied_gen, gen);
        uv_async_send(&w->main->rebuild_async);
    }
    if (atomic_load(&w->stop_now)) {
        worker_stop(w);
    } else if (atomic_load(&w->drain_requested)) {
        worker_drain(w);
    }
}

static void on_log_check(uv_check_t *h)
{
    (void)h;
    lx_log_flush();
}

static void worker_main(void *arg)
{
    struct worker *w = arg;
    tls_worker = w;
    lx_log_thread_buffer(true);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    lx_log_thread_buffer(false);
    atomic_fetch_add(&w->main->exited, 1);
    uv_async_send(&w->main->worker_exited);
}

/* Create the worker's loop and handles on the main thread, so start errors are reported there. */
static int worker_init(struct worker *w, struct lx_config *cfg, struct lx_error *err)
{
    uv_loop_init(&w->loop);
    uv_mutex_init(&w->lock);
    uv_async_init(&w->loop, &w->async, on_async);
    w->async.data = w;
    uv_check_init(&w->loop, &w->log_check);
    uv_check_start(&w->log_check, on_log_check);
    uv_unref((uv_handle_t *)&w->log_check);
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    w->drain_timeout = cfg->general.drain_timeout;
    struct lx_http_limits limits;
    lx_proxy_http_limits(cfg, &limits);
    w->up = lx_upstream_new(&w->loop);
    w->px = lx_proxy_new(&w->loop, w->up, cfg, &w->env);
    w->http = lx_http_server_new(&w->loop, w->listen_fd, &limits, lx_proxy_handle, w->px, err);
    w->listen_fd = -1;
    if (!w->http) {
        return LX_EIO;
    }
    return 0;
}

/* ---- main thread ---- */

void lx_server_apply_logging(const struct lx_config *cfg)
{
    if (cfg->general.log_level) {
        lx_log_set_level((enum lx_log_level)cfg->general.log_level);
    } else if (cfg->litellm.set_verbose) {
        lx_log_set_level(LX_LOG_DEBUG);
    }
    lx_log_set_json(cfg->litellm.json_logs);
}

static void broadcast(struct main_state *m, struct lx_config *cfg, bool drain, bool stop)
{
    for (int i = 0; i < m->n; i++) {
        struct worker *w = &m->workers[i];
        if (cfg) {
            uv_mutex_lock(&w->lock);
            if (w->next_cfg) {
                lx_config_unref(w->next_cfg);
            }
            w->next_cfg = lx_config_ref(cfg);
            w->next_gen = m->gen;
            uv_mutex_unlock(&w->lock);
        }
        if (drain) {
            atomic_store(&w->drain_requested, true);
        }
        if (stop) {
            atomic_store(&w->stop_now, true);
        }
        uv_async_send(&w->async);
    }
}

/* The config file plus the stored models; NULL (err set) when the file does not load. */
static struct lx_config *load_config(struct main_state *m, struct lx_error *err)
{
    return lx_models_config_load(m->config_path, m->store, err);
}

/* Make cfg (reference taken over) the running config, on every worker. */
static void install(struct main_state *m, struct lx_config *cfg)
{
    lx_server_apply_logging(cfg);
    if (m->debug) {
        lx_log_set_level(LX_LOG_DEBUG);
    }
    lx_router_bind(m->router, cfg);
    m->gen++;
    broadcast(m, cfg, false, false);
    lx_config_unref(m->cfg);
    m->cfg = cfg;
}

static void reload(struct main_state *m)
{
    if (!m->config_path) {
        LX_WARN("SIGHUP: no --config file to reload");
        return;
    }
    struct lx_error err = {0};
    struct lx_config *cfg = load_config(m, &err);
    if (!cfg) {
        LX_ERROR("config reload refused, keeping the running config: %s", err.msg);
        return;
    }
    const char *new_url = cfg->general.database_url;
    if ((new_url == NULL) != (m->db_url == NULL) || (new_url && strcmp(new_url, m->db_url) != 0)) {
        /* The store is opened once; moving to another database needs a restart. */
        LX_WARN("general_settings.database_url changed: restart llmux to use it; "
                "keeping %s",
                m->store ? lx_store_url_redacted(m->store) : "no database");
    }
    const char *jd = cfg->general.spend_journal_dir;
    const char *old_jd = m->start_cfg->general.spend_journal_dir;
    if (m->ledger && ((jd == NULL) != (old_jd == NULL) || (jd && strcmp(jd, old_jd) != 0))) {
        LX_WARN("general_settings.spend_journal_dir changed: restart llmux to use it; keeping %s",
                lx_ledger_dir(m->ledger));
    }
    install(m, cfg);
    LX_INFO("config reloaded from %s: %zu model group(s), %zu deployment(s)", m->config_path,
            cfg->n_groups, cfg->n_deployments);
}

/* ---- config rebuilds for run-time models ---- */

static void free_rebuild_req(uv_handle_t *h)
{
    lx_free(h->data);
}

/* On the requesting worker's loop: the rebuild is done (or failed). */
static void on_rebuild_done(uv_async_t *a)
{
    struct rebuild_req *r = a->data;
    r->cb(r->ud, r->rc);
    uv_close((uv_handle_t *)a, free_rebuild_req);
}

/* The models hook (admin/models.h): any worker's loop thread. */
static int request_rebuild(lx_models_done_cb cb, void *ud)
{
    struct worker *w = tls_worker;
    struct main_state *m = the_main;
    if (!w || !m || w->stopping) {
        return LX_EUNAVAIL;
    }
    struct rebuild_req *r = LX_NEW(struct rebuild_req);
    uv_async_init(&w->loop, &r->async, on_rebuild_done);
    r->async.data = r;
    r->cb = cb;
    r->ud = ud;
    uv_mutex_lock(&m->rebuild_lock);
    r->next = m->pending;
    m->pending = r;
    uv_mutex_unlock(&m->rebuild_lock);
    uv_async_send(&m->rebuild_async);
    return 0;
}

/* Rebuild the config from the file and the store, and install it. */
static bool rebuild(struct main_state *m)
{
    struct lx_error err = {0};
    struct lx_config *cfg = load_config(m, &err);
    if (!cfg) {
        LX_ERROR("config rebuild refused, keeping the running config: %s", err.msg);
        return false;
    }
    install(m, cfg);
    LX_INFO("config rebuilt with the stored models: %zu model group(s), %zu deployment(s)",
            cfg->n_groups, cfg->n_deployments);
    return true;
}

/*
 * Another gateway on the same database may add or delete models: look every
 * few seconds (one small query) and rebuild when the stored models changed.
 */
static void on_models_poll(uv_timer_t *t)
{
    struct main_state *m = t->data;
    if (!m->store || !m->cfg->general.store_model_in_db || m->signals_seen) {
        return;
    }
    if (lx_models_store_changed(m->store)) {
        LX_INFO("the stored models changed in the database");
        rebuild(m);
    }
}

static void rebuild_complete(struct rebuild_req *r, int rc)
{
    r->rc = rc;
    uv_async_send(&r->async); /* r belongs to its worker from here on */
}

static bool all_applied(const struct main_state *m, uint64_t gen)
{
    for (int i = 0; i < m->n; i++) {
        const struct worker *w = &m->workers[i];
        if (!atomic_load(&w->closed) && atomic_load(&w->applied_gen) < gen) {
            return false;
        }
    }
    return true;
}

/*
 * Main thread: rebuild once for every request queued meanwhile, then answer
 * each request when every worker has switched to a config at least as new.
 */
static void on_rebuild(uv_async_t *a)
{
    struct main_state *m = a->data;
    uv_mutex_lock(&m->rebuild_lock);
    struct rebuild_req *todo = m->pending;
    m->pending = NULL;
    uv_mutex_unlock(&m->rebuild_lock);
    if (todo) {
        bool ok = rebuild(m);
        while (todo) {
            struct rebuild_req *r = todo;
            todo = r->next;
            if (!ok) {
                rebuild_complete(r, LX_ECONFIG);
                continue;
            }
            r->gen = m->gen;
            r->next = m->waiting;
            m->waiting = r;
        }
    }
    struct rebuild_req **pp = &m->waiting;
    while (*pp) {
        struct rebuild_req *r = *pp;
        if (all_applied(m, r->gen)) {
            *pp = r->next;
            rebuild_complete(r, 0);
        } else {
            pp = &r->next;
        }
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct main_state *m = h->data;
    if (signum == SIGHUP) {
        reload(m);
        return;
    }
    m->signals_seen++;
    if (m->signals_seen == 1) {
        LX_INFO("%s: draining (up to %.0fs for in-flight requests)", strsignal(signum),
                m->cfg->general.drain_timeout);
        broadcast(m, NULL, true, false);
    } else {
        LX_WARN("%s again: stopping now", strsignal(signum));
        broadcast(m, NULL, false, true);
    }
}

static void on_worker_exited(uv_async_t *a)
{
    struct main_state *m = a->data;
    on_rebuild(&m->rebuild_async);
    if (atomic_load(&m->exited) == m->n) {
        uv_stop(m->loop);
    }
}

/* How long a stop waits for the store to take the spend journal. */
#define LEDGER_STOP_MS 10000

/*
 * The spend ledger over the store; it replays what a previous process left
 * in the journal before any request is served.
 */
static int start_ledger(struct main_state *m, const struct lx_config *cfg, struct lx_error *err)
{
    char dir[4096];
    if (lx_ledger_dir_for(cfg->general.database_url, cfg->general.spend_journal_dir, dir,
                          sizeof(dir))) {
        return lx_error_set(err, LX_ECONFIG,
                            "cannot derive the spend journal directory; set "
                            "general_settings.spend_journal_dir");
    }
    m->budget = lx_budget_new(m->store);
    struct lx_ledger_opts o = {
        .dir = dir, .sink = lx_ledger_store_sink, .sink_ud = m->store, .budget = m->budget};
    m->ledger = lx_ledger_start(&o, err);
    if (!m->ledger) {
        lx_budget_free(m->budget);
        return err->code ? err->code : LX_EIO;
    }
    lx_spend_endpoints_set_budget(m->budget);
    LX_INFO("spend journal: %s", dir);
    return 0;
}

int lx_server_run(const struct lx_server_opts *opts, struct lx_config *cfg, struct lx_error *err)
{
    struct main_state m;
    memset(&m, 0, sizeof(m));
    m.n = opts->num_workers;
    m.config_path = opts->config_path;
    m.debug = opts->debug;
    m.cfg = lx_config_ref(cfg);
    m.router = lx_router_table_new();
    lx_router_bind(m.router, cfg);
    m.start_cfg = lx_config_ref(cfg);
    m.db_url = cfg->general.database_url;
    m.store = opts->store;
    int rc = 0;
    if (m.store && start_ledger(&m, cfg, err)) {
        lx_config_unref(m.cfg);
        lx_config_unref(m.start_cfg);
        return LX_EIO;
    }
    m.workers = lx_calloc((size_t)m.n, sizeof(*m.workers));

    /* All sockets first: with port 0 the first one picks the port the others share. */
    int port = opts->port;
    for (int i = 0; i < m.n; i++) {
        int fd = lx_http_listen_socket(opts->host, port, 4096, &port, err);
        if (fd < 0) {
            for (int k = 0; k < i; k++) {
                close(m.workers[k].listen_fd);
            }
            lx_free(m.workers);
            if (m.ledger) {
                lx_ledger_stop(m.ledger, LEDGER_STOP_MS);
                lx_spend_endpoints_set_budget(NULL);
                lx_budget_free(m.budget);
            }
            lx_config_unref(m.cfg);
            lx_router_table_free(m.router);
            lx_config_unref(m.start_cfg);
            return fd;
        }
        m.workers[i].listen_fd = fd;
    }

    uv_loop_t *loop = uv_default_loop();
    m.loop = loop;
    uv_async_init(loop, &m.worker_exited, on_worker_exited);
    m.worker_exited.data = &m;
    uv_async_init(loop, &m.rebuild_async, on_rebuild);
    m.rebuild_async.data = &m;
    uv_mutex_init(&m.rebuild_lock);
    the_main = &m;
    lx_models_set_reload_hook(request_rebuild);
    uv_timer_init(loop, &m.models_poll);
    m.models_poll.data = &m;
    if (m.store) {
        uv_timer_start(&m.models_poll, on_models_poll, LX_MODELS_POLL_MS, LX_MODELS_POLL_MS);
    }
    uv_signal_t *sigs[] = {&m.sig_term, &m.sig_int, &m.sig_hup};
    int signums[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(loop, sigs[i]);
        sigs[i]->data = &m;
        uv_signal_start(sigs[i], on_signal, signums[i]);
    }

    int started = 0;
    for (int i = 0; i < m.n; i++) {
        struct worker *w = &m.workers[i];
        w->index = i;
        w->main = &m;
        w->env.num_workers = m.n;
        w->env.index = i;
        w->env.router = m.router;
        w->env.store = m.store;
        w->env.ledger = m.ledger;
        w->env.budget = m.budget;
        if (worker_init(w, cfg, err)) {
            rc = LX_EIO;
            break;
        }
        if (uv_thread_create(&w->thread, worker_main, w)) {
            rc = lx_error_set(err, LX_EIO, "cannot start worker thread");
            break;
        }
        started++;
    }
    if (rc == 0) {
        printf("llmux: listening on http://%s:%d (%d worker%s)\n", opts->host, port, m.n,
               m.n == 1 ? "" : "s");
        fflush(stdout);
        LX_INFO("llmux %s listening on http://%s:%d with %d worker(s), %zu model group(s)",
                LX_VERSION, opts->host, port, m.n, cfg->n_groups);
        if (!cfg->general.master_key) {
            LX_WARN("no general_settings.master_key: the gateway accepts requests without "
                    "authentication");
        }
        uv_run(loop, UV_RUN_DEFAULT);
    } else {
        broadcast(&m, NULL, false, true);
        for (int i = m.n - 1; i >= started; i--) {
            if (m.workers[i].listen_fd >= 0) {
                close(m.workers[i].listen_fd);
            }
        }
    }
    for (int i = 0; i < started; i++) {
        uv_thread_join(&m.workers[i].thread);
    }
    for (int i = 0; i < m.n; i++) {
        struct worker *w = &m.workers[i];
        if (i < started || w->up) {
            if (i >= started) {
                /* Initialised but never ran: close what worker_init opened. */
                worker_stop(w);
                if (!w->http && w->up) {
                    lx_upstream_close(w->up);
                    lx_proxy_free(w->px);
                    worker_close_handles(w);
                }
                uv_run(&w->loop, UV_RUN_DEFAULT);
            }
            if (w->next_cfg) {
                lx_config_unref(w->next_cfg);
            }
            uv_loop_close(&w->loop);
            uv_mutex_destroy(&w->lock);
        }
    }
    for (int i = 0; i < 3; i++) {
        uv_close((uv_handle_t *)sigs[i], NULL);
    }
    /* Every worker loop ended, so every rebuild request was answered. */
    lx_models_set_reload_hook(NULL);
    the_main = NULL;
    uv_close((uv_handle_t *)&m.worker_exited, NULL);
    uv_close((uv_handle_t *)&m.rebuild_async, NULL);
    uv_close((uv_handle_t *)&m.models_poll, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_mutex_destroy(&m.rebuild_lock);
    uv_loop_close(loop);
    lx_free(m.workers);
    if (m.ledger) {
        /* Every worker (and its journal writer) is gone: commit what the journal holds. */
        lx_ledger_stop(m.ledger, LEDGER_STOP_MS);
        lx_spend_endpoints_set_budget(NULL);
        lx_budget_free(m.budget);
    }
    lx_config_unref(m.cfg);
    lx_router_table_free(m.router);
    lx_config_unref(m.start_cfg);
    if (rc == 0) {
        LX_INFO("llmux stopped");
        lx_log_flush();
    }
    return rc;
}
