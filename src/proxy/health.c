/*
 * Deployment health checks: GET /health/models and the background checks
 * of general_settings.background_health_checks.
 *
 * A check round probes every deployment of a config snapshot at once, as
 * LiteLLM's health check does: a one-token chat completion ("ping",
 * max_tokens 1), or a one-word embedding for model_info.mode: embedding.
 * A mock_response deployment (and a wildcard one, which names no model to
 * ask for) is healthy without a call; one whose key variable is unset is
 * unhealthy without one. Results go to the shared
 * deployment stats (router.h), so every worker reports the same.
 *
 * /health/models (proxy admins only) answers LiteLLM's shape,
 * {"healthy_endpoints":[...],"unhealthy_endpoints":[...],"healthy_count":N,
 * "unhealthy_count":M}. With background checks it reports the last round's
 * results without calling anyone; without them it runs a round and answers
 * when it ends. A deployment cooling down after failed calls is reported
 * unhealthy either way. The unauthenticated /health never calls upstream.
 *
 * Background rounds run on worker 0 only, every health_check_interval
 * seconds (the first right after start). Ownership: a round is heap-allocated
 * with its own config reference and arena; it ends when its last probe ends,
 * when its client leaves (transfers cancelled), or when the worker stops
 * (lx_proxy__health_stop: the upstream is closed first, so its transfers are
 * gone and only memory is left to free).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/time.h"
#include "json/json.h"
#include "log/log.h"
#include "proxy/proxy_int.h"
#include "router/router.h"

#define PROBE_TIMEOUT_S 10.0
#define ERR_MAX 200

struct round;

struct probe {
    struct round *r;
    const struct lx_deployment *dep;
    struct lx_upstream_xfer *xfer;
    struct lx_buf body; /* request body */
    struct lx_buf resp; /* error answers, for the message */
    cJSON *json;        /* the request as the provider saw it; kept while it is in flight */
    int status;
    bool done;
    bool ok;
    char error[ERR_MAX + 64];
};

struct round {
    struct lx_proxy *px;
    struct lx_http_request *req; /* NULL for a background round */
    struct lx_config *cfg;
    struct lx_arena arena;
    struct probe *probes;
    size_t n, pending;
    struct round *next; /* in px->health->rounds */
};

struct lx_proxy_health {
    uv_timer_t *timer; /* background rounds; NULL when off */
    double interval_s;
    struct round *rounds; /* in flight */
};

static void round_unlink(struct round *r)
{
    struct lx_proxy_health *h = r->px->health;
    for (struct round **pp = &h->rounds; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            return;
        }
    }
}

static void round_free(struct round *r)
{
    round_unlink(r);
    for (size_t i = 0; i < r->n; i++) {
        lx_buf_fini(&r->probes[i].body);
        lx_buf_fini(&r->probes[i].resp);
        if (r->probes[i].json) {
            cJSON_Delete(r->probes[i].json);
        }
    }
    lx_free(r->probes);
    lx_arena_fini(&r->arena);
    lx_config_unref(r->cfg);
    lx_free(r);
}

/* ---- the answer ---- */

static int append_endpoint(struct lx_buf *b, const struct lx_deployment *d, const char *error)
{
    struct lx_str base = lx_provider_api_base(d);
    const char *q = base.p ? memchr(base.p, '?', base.n) : NULL;
    if (q) {
        base.n = (size_t)(q - base.p);
    }
    int rc = lx_buf_append_c(b, "{\"model\":");
    rc = rc ? rc : lx_json_append_string(b, lx_str_c(d->model));
    rc = rc ? rc : lx_buf_append_c(b, ",\"model_name\":");
    rc = rc ? rc : lx_json_append_string(b, lx_str_c(d->model_name));
    rc = rc ? rc : lx_buf_append_c(b, ",\"model_id\":");
    rc = rc ? rc : lx_json_append_string(b, lx_str_c(d->id));
    if (base.n) {
        rc = rc ? rc : lx_buf_append_c(b, ",\"api_base\":");
        rc = rc ? rc : lx_json_append_string(b, base);
    }
    if (error) {
        rc = rc ? rc : lx_buf_append_c(b, ",\"error\":");
        rc = rc ? rc : lx_json_append_string(b, lx_str_c(error));
    }
    return rc ? rc : lx_buf_append_c(b, "}");
}

/*
 * The report over cfg's deployments: errs[i] is deployment i's error (NULL =
 * healthy) when a round just ran, else the shared stats say.
 */
static void respond_report(struct lx_proxy *px, struct lx_http_request *req,
                           const struct lx_config *cfg, const struct round *r)
{
    struct lx_buf ok, bad, out;
    lx_buf_init(&ok, 16u << 20);
    lx_buf_init(&bad, 16u << 20);
    lx_buf_init(&out, 32u << 20);
    size_t n_ok = 0, n_bad = 0;
    int rc = 0;
    uint64_t now = lx_mono_ms();
    for (size_t i = 0; i < cfg->n_deployments && !rc; i++) {
        const struct lx_deployment *d = &cfg->deployments[i];
        char err[ERR_MAX + 64];
        err[0] = '\0';
        bool healthy = true;
        if (r) {
            healthy = r->probes[i].ok;
            snprintf(err, sizeof(err), "%s", r->probes[i].error);
        } else if (d->stats && px->env.router && atomic_load(&d->stats->check_state) == 2) {
            healthy = false;
            lx_router_check_error(px->env.router, d, err, sizeof(err));
        }
        if (healthy && lx_router_is_cooling(d, now)) {
            healthy = false;
            snprintf(err, sizeof(err), "cooling down after recent failed calls");
        }
        struct lx_buf *b = healthy ? &ok : &bad;
        if (b->len) {
            rc = lx_buf_append_c(b, ",");
        }
        rc = rc ? rc : append_endpoint(b, d, healthy ? NULL : err);
        *(healthy ? &n_ok : &n_bad) += 1;
    }
    rc = rc ? rc : lx_buf_append_c(&out, "{\"healthy_endpoints\":[");
    rc = rc ? rc : lx_buf_append_str(&out, lx_buf_str(&ok));
    rc = rc ? rc : lx_buf_append_c(&out, "],\"unhealthy_endpoints\":[");
    rc = rc ? rc : lx_buf_append_str(&out, lx_buf_str(&bad));
    rc = rc ? rc
            : lx_buf_printf(&out, "],\"healthy_count\":%zu,\"unhealthy_count\":%zu}", n_ok, n_bad);
    lx_buf_fini(&ok);
    lx_buf_fini(&bad);
    if (rc) {
        lx_buf_fini(&out);
        lx_proxy__error(req, 500, NULL, NULL, "Could not build the health report");
        return;
    }
    static const struct lx_http_header h[] = {{LX_STR("content-type"), LX_STR("application/json")}};
    lx_http_respond(req, 200, h, 1, lx_buf_str(&out));
    lx_buf_fini(&out);
}

/* ---- probes ---- */

static void round_probe_done(struct round *r)
{
    if (--r->pending > 0) {
        return;
    }
    size_t n_bad = 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct probe *p = &r->probes[i];
        lx_router_note_check(r->px->env.router, p->dep, p->ok ? NULL : p->error);
        n_bad += !p->ok;
    }
    if (!r->req) {
        LX_DEBUG("health check: %zu of %zu deployment(s) unhealthy", n_bad, r->n);
        round_free(r);
        return;
    }
    struct lx_http_request *req = r->req;
    lx_http_on_abort(req, NULL, NULL);
    respond_report(r->px, req, r->cfg, r);
    round_free(r);
}

static void probe_finish(struct probe *p, bool ok, const char *fmt, ...) LX_PRINTF(3, 4);

static void probe_finish(struct probe *p, bool ok, const char *fmt, ...)
{
    p->done = true;
    p->ok = ok;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->error, sizeof(p->error), fmt, ap);
        va_end(ap);
    }
    round_probe_done(p->r);
}

static int on_probe_headers(void *ud, int status)
{
    struct probe *p = ud;
    p->status = status;
    return 0;
}

static int on_probe_data(void *ud, const char *data, size_t n)
{
    struct probe *p = ud;
    if (p->status >= 200 && p->status < 300) {
        return 0; /* a success needs no body */
    }
    size_t room = p->resp.limit > p->resp.len ? p->resp.limit - p->resp.len : 0;
    return room ? lx_buf_append(&p->resp, data, LX_MIN(n, room)) ? LX_ENOMEM : 0 : 0;
}

/* The upstream's error message, without the deployment's key, cut to ERR_MAX bytes. */
static void error_message(const struct probe *p, char *out, size_t cap)
{
    out[0] = '\0';
    cJSON *j = cJSON_ParseWithLength(p->resp.data ? p->resp.data : "", p->resp.len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_IsString(e) ? e : cJSON_GetObjectItemCaseSensitive(e, "message");
    if (!cJSON_IsString(m)) {
        m = cJSON_GetObjectItemCaseSensitive(j, "message");
    }
    if (cJSON_IsString(m)) {
        snprintf(out, cap, "%.*s", ERR_MAX, m->valuestring);
    }
    cJSON_Delete(j);
    const char *key = p->dep->api_key;
    size_t kn = key ? strlen(key) : 0;
    char *s = out;
    while (kn >= 8 && (s = strstr(s, key))) {
        memset(s, '*', kn);
    }
}

static void on_probe_done(void *ud, int result, const struct lx_error *err)
{
    struct probe *p = ud;
    p->xfer = NULL;
    if (result == LX_ETIMEDOUT) {
        probe_finish(p, false, "no answer within %gs", PROBE_TIMEOUT_S);
        return;
    }
    if (result) {
        probe_finish(p, false, "request failed: %s", err ? err->msg : lx_strerror(result));
        return;
    }
    if (p->status >= 200 && p->status < 300) {
        probe_finish(p, true, NULL);
        return;
    }
    char msg[ERR_MAX + 1];
    error_message(p, msg, sizeof(msg));
    probe_finish(p, false, "HTTP %d%s%s", p->status, msg[0] ? ": " : "", msg);
}

static void probe_start(struct probe *p)
{
    const struct lx_deployment *d = p->dep;
    if (d->has_mock_response || strchr(d->upstream_model, '*')) {
        /* A local answer needs no call; a wildcard names no model a probe could ask for. */
        probe_finish(p, true, NULL);
        return;
    }
    if (d->missing_env) {
        probe_finish(p, false, "environment variable %s is not set on the gateway", d->missing_env);
        return;
    }
    const struct lx_provider_ops *ops = lx_provider_ops_for(d->provider.kind);
    if (!ops) {
        probe_finish(p, false, "provider '%s' is not supported by this build", d->provider.name);
        return;
    }
    bool embedding = d->mode && strcmp(d->mode, "embedding") == 0;
    struct lx_buf *b = &p->body;
    int rc = lx_buf_append_c(b, "{\"model\":");
    rc = rc ? rc : lx_json_append_string(b, lx_str_c(d->upstream_model));
    rc = rc ? rc
            : lx_buf_append_c(b, embedding ? ",\"input\":\"ping\"}"
                                           : ",\"messages\":[{\"role\":\"user\",\"content\":"
                                             "\"ping\"}],\"max_tokens\":1}");
    cJSON *json = rc ? NULL : cJSON_ParseWithLength(b->data, b->len);
    if (!json) {
        probe_finish(p, false, "could not build the health check request");
        return;
    }
    struct lx_provider_call pc = {
        .endpoint = embedding ? LX_EP_EMBEDDINGS : LX_EP_CHAT,
        .dep = d,
        .body = lx_buf_str(b),
        .json = json,
        .api_key = d->api_key,
        .upstream_model = d->upstream_model,
        .arena = &p->r->arena,
    };
    struct lx_buf *up = lx_arena_alloc(&p->r->arena, sizeof(*up));
    lx_buf_init(up, 1u << 20);
    struct lx_provider_request pr = {.body = up};
    struct lx_error err = {0};
    rc = ops->build_request(&pc, &pr, &err);
    p->json = json;
    if (rc) {
        lx_buf_fini(up);
        probe_finish(p, false, "%s", err.msg);
        return;
    }
    /* The provider's body replaces ours: it lives as long as the probe. */
    lx_buf_fini(b);
    *b = *up;
    double t = d->timeout > 0 && d->timeout < PROBE_TIMEOUT_S ? d->timeout : PROBE_TIMEOUT_S;
    struct lx_upstream_req ur = {
        .url = pr.url,
        .headers = pr.headers,
        .n_headers = pr.n_headers,
        .body = lx_buf_str(b),
        .timeout_ms = (uint64_t)(t * 1000.0),
    };
    static const struct lx_upstream_cbs cbs = {on_probe_headers, on_probe_data, on_probe_done};
    p->xfer = lx_upstream_start(p->r->px->up, &ur, &cbs, p, &err);
    if (!p->xfer) {
        probe_finish(p, false, "request failed: %s", err.msg);
    }
}

static void on_round_client_abort(struct lx_http_request *req, void *ud)
{
    (void)req;
    struct round *r = ud;
    for (size_t i = 0; i < r->n; i++) {
        if (r->probes[i].xfer) {
            lx_upstream_cancel(r->probes[i].xfer);
            r->probes[i].xfer = NULL;
        }
    }
    round_free(r);
}

/* Start a round over px's current config; req NULL for a background round. */
static void round_start(struct lx_proxy *px, struct lx_http_request *req)
{
    struct round *r = LX_NEW(struct round);
    r->px = px;
    r->req = req;
    r->cfg = lx_config_ref(px->cfg);
    lx_arena_init(&r->arena, NULL, 0, 16384);
    r->n = r->cfg->n_deployments;
    r->probes = lx_calloc(r->n ? r->n : 1, sizeof(*r->probes));
    r->next = px->health->rounds;
    px->health->rounds = r;
    if (r->n == 0) {
        r->pending = 1;
        round_probe_done(r);
        return;
    }
    /* One extra count so that probes finishing inside probe_start cannot end the round early. */
    r->pending = r->n + 1;
    for (size_t i = 0; i < r->n; i++) {
        struct probe *p = &r->probes[i];
        p->r = r;
        p->dep = &r->cfg->deployments[i];
        lx_buf_init(&p->body, 1u << 20);
        lx_buf_init(&p->resp, 64u << 10);
    }
    if (req) {
        lx_http_on_abort(req, on_round_client_abort, r);
    }
    for (size_t i = 0; i < r->n; i++) {
        probe_start(&r->probes[i]);
    }
    round_probe_done(r);
}

/* ---- entry points ---- */

void lx_proxy__health_models(struct lx_proxy *px, struct lx_http_request *req,
                             const struct lx_identity *ident)
{
    if (!ident || (!ident->is_master && ident->role != LX_ROLE_PROXY_ADMIN)) {
        lx_proxy__error(req, 403, "auth_error", NULL,
                        "Only a proxy admin may read the health of deployments");
        return;
    }
    if (px->cfg->general.background_health_checks) {
        respond_report(px, req, px->cfg, NULL);
        return;
    }
    round_start(px, req);
}

static void on_timer(uv_timer_t *t)
{
    struct lx_proxy *px = t->data;
    round_start(px, NULL);
}

static void on_timer_closed(uv_handle_t *h)
{
    lx_free(h);
}

void lx_proxy__health_config(struct lx_proxy *px)
{
    if (!px->health) {
        px->health = LX_NEW(struct lx_proxy_health);
    }
    struct lx_proxy_health *h = px->health;
    const struct lx_general_settings *g = &px->cfg->general;
    bool want = g->background_health_checks && px->env.index == 0 && px->env.router;
    double interval = g->health_check_interval > 0 ? g->health_check_interval : 300;
    if (h->timer && (!want || interval != h->interval_s)) {
        uv_timer_stop(h->timer);
        uv_close((uv_handle_t *)h->timer, on_timer_closed);
        h->timer = NULL;
    }
    if (want && !h->timer) {
        h->timer = lx_malloc(sizeof(*h->timer));
        uv_timer_init(px->loop, h->timer);
        h->timer->data = px;
        h->interval_s = interval;
        uint64_t ms = (uint64_t)(interval * 1000.0);
        uv_timer_start(h->timer, on_timer, 0, ms ? ms : 1);
        uv_unref((uv_handle_t *)h->timer);
    }
}

void lx_proxy__health_stop(struct lx_proxy *px)
{
    struct lx_proxy_health *h = px->health;
    if (!h) {
        return;
    }
    if (h->timer) {
        uv_timer_stop(h->timer);
        uv_close((uv_handle_t *)h->timer, on_timer_closed);
    }
    /* The upstream is closed: its transfers are gone, without callbacks. */
    while (h->rounds) {
        struct round *r = h->rounds;
        if (r->req) {
            lx_http_on_abort(r->req, NULL, NULL);
        }
        round_free(r);
    }
    LX_FREE(px->health);
}
