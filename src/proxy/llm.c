/*
 * The LLM endpoints: /chat/completions, /completions, /embeddings.
 *
 * A call is checked (JSON, model, required fields), mapped to a model group,
 * and then served by one or more attempts. An attempt asks the router for a
 * deployment of the current group and either answers locally
 * (mock_response) or goes upstream through the deployment's provider.
 * Non-streamed answers are buffered (capped by max_response_size_mb) so the
 * status and headers can reflect the whole answer; streamed answers are
 * parsed event by event and relayed as they come, and the client's response
 * starts only with the first event, so nothing reaches the client before the
 * upstream has actually answered.
 *
 * An attempt that fails before any byte reached the client is not answered:
 * attempt_failed() records the failure with the router (which may cool the
 * deployment down), keeps the error, and next_step() retries (another
 * deployment of the group when one is usable, else the same one after a
 * backoff that honours retry-after), moves on to a fallback group, or
 * answers the kept error. A stream whose first byte reached the client ends
 * with an error event instead; it never falls back.
 *
 * Ownership: a struct call is heap-allocated and ends in exactly one of two
 * places: an answer to the client (after the last attempt), or
 * on_client_abort() when the client went away first (it cancels the transfer
 * or the backoff timer). The request must not be touched after the call that
 * completes its response, so the call frees its own state before that.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "auth/auth.h"
#include "core/alloc.h"
#include "core/rand.h"
#include "core/time.h"
#include "http/sse.h"
#include "json/json.h"
#include "limits/limits.h"
#include "log/log.h"
#include "proxy/client.h"
#include "proxy/proxy_int.h"
#include "router/router.h"
#include "spend/budget.h"
#include "spend/cost.h"
#include "spend/shared.h"
#include "spend/usage.h"

#define SSE_MAX_EVENT_BYTES (8u << 20)
#define LX_MODEL_NAME_MAX 256
#define DEFAULT_FAILOVER_RETRIES 2 /* LiteLLM's default num_retries */

struct call {
    struct lx_proxy *px;
    struct lx_http_request *req;
    struct lx_config *cfg;  /* reference held for the whole call */
    struct lx_identity *id; /* the caller; reference held for the whole call */
    enum lx_endpoint ep;
    cJSON *json;
    bool stream;
    const struct lx_deployment *dep;
    const char *upstream_model; /* dep->upstream_model, wildcard resolved */
    const char *api_key;
    struct lx_buf up_body;
    struct lx_upstream_xfer *xfer;
    int up_status;
    struct lx_buf resp; /* buffered upstream body */
    struct lx_buf out;  /* SSE bytes for the client, per upstream read */
    struct lx_sse_parser sse;
    bool sse_init;
    const struct lx_provider_ops *ops;
    struct lx_provider_call pc; /* what the provider was asked; kept for translation */
    void *stream_state;         /* the provider's stream translation state */
    struct lx_error xlate_err;  /* why a translation failed */
    /* The client's wire format when it is not OpenAI's (see client.h). */
    const struct lx_client_adapter *client;
    void *client_state;
    struct lx_sse_parser client_sse; /* re-reads our OpenAI events for the adapter */
    bool client_sse_init;
    struct lx_buf client_out;
    struct lx_buf client_body; /* the client's request translated to OpenAI's format */
    struct lx_str body;        /* the OpenAI-format request body the call works on */
    bool started;              /* the client's streamed response has begun */
    char retry_after[32];      /* the upstream's retry-after header, relayed with errors */
    bool saw_event;
    bool provider_ended;    /* a translating provider emitted [DONE] or an error event */
    double timeout_s;       /* the upstream timeout that applies, for messages */
    struct lx_str api_base; /* without query string, for x-litellm-model-api-base */

    /* Routing: the group being tried, deployments tried in it, retries and fallbacks. */
    struct lx_route_req rr;
    struct lx_strlist req_fallbacks; /* the request's own "fallbacks", else empty */
    bool has_req_fallbacks;
    int num_retries;           /* -1: not configured: fail over to other deployments only */
    int retries;               /* retries in the current group */
    int total_retries;         /* over the whole call, for x-litellm-attempted-retries */
    int n_fallbacks;           /* fallback groups moved to */
    struct lx_strlist fb_list; /* the fallback chain being walked */
    size_t fb_next;
    bool fb_chosen;
    double req_timeout;  /* x-litellm-timeout in seconds; -1 = unset */
    bool attempt_open;   /* lx_router_begin without its end */
    uint64_t attempt_ns; /* when the attempt started */
    uint64_t ttft_us;    /* streams: time to the first event */
    uv_timer_t *backoff; /* pending retry after a wait; closed by call_free */
    int err_status;      /* the kept error of the last failed attempt */
    struct lx_buf err_body;
    struct lx_buf strip_body; /* the body without the router's own request keys */
    char hdr_retries[16];
    char hdr_fallbacks[16];
    long
        prompt_est; /* enable_pre_call_checks: estimated prompt tokens; 0 = not yet, -1 = unknown */
    /* Rate limits: the admission of this call, ended (slots released) in call_free. */
    struct lx_str model; /* the model asked for (request arena) */
    struct lx_limits_req *limits;
    bool admitted;                       /* the first attempt passed the admission */
    struct lx_spend_fetch *budget_fetch; /* shared budget counters being read, or NULL */
    const struct lx_model_group *group;  /* the group the model names, or NULL */
    bool recorded;                       /* the spend record is journaled */
    const char *end_user;                /* the request's `user`, or NULL */
    /*
     * Accounting, final before the response completes (call_settle): the
     * provider's real usage of the deployment that answered, and its cost in
     * nano-USD (0 when the model has no price). has_usage is false when the
     * answer reported none (an error, a stream cut before its usage).
     */
    struct lx_usage usage;
    int64_t cost_nanos;
    bool has_usage;
    bool include_usage;           /* the client asked for the stream's usage chunk */
    struct lx_str stream_options; /* the client's raw stream_options, or empty */
    bool settled;                 /* cost_nanos computed */
};

/* Record usage from the answer (the last report wins: stream reports are cumulative). */
static void call_set_usage(struct call *c, const struct lx_usage *u)
{
    c->usage = *u;
    c->has_usage = true;
}

/*
 * Fix the call's usage and cost, once, before the response completes: a
 * translated stream's usage is read from its translation state (which the
 * client may not have asked to see), then the usage is priced.
 */
static void call_settle(struct call *c)
{
    if (c->settled) {
        return;
    }
    c->settled = true;
    struct lx_usage u;
    if (c->stream_state && c->ops->stream_usage && c->ops->stream_usage(c->stream_state, &u)) {
        call_set_usage(c, &u);
    }
    if (c->has_usage && c->dep) {
        c->cost_nanos = lx_cost_for_deployment(c->dep, c->upstream_model, &c->usage);
        if (LX_LOG_ENABLED(LX_LOG_DEBUG)) {
            char usd[LX_COST_USD_MAX];
            lx_cost_format_usd(c->cost_nanos, usd, sizeof(usd));
            LX_DEBUG("call cost: id=%s deployment=%s model=%s prompt_tokens=%lld "
                     "completion_tokens=%lld cached_tokens=%lld cache_creation_tokens=%lld "
                     "cost_usd=%s",
                     c->req->id, c->dep->id, c->upstream_model, (long long)c->usage.prompt_tokens,
                     (long long)c->usage.completion_tokens, (long long)c->usage.cache_read_tokens,
                     (long long)c->usage.cache_creation_tokens, usd);
        }
    }
}

static void attempt(struct call *c);

/*
 * Stream translation states live in the request arena: release them while
 * the request still exists, before the call that completes the response.
 */
static void release_provider_stream(struct call *c)
{
    if (c->stream_state && c->ops->stream_free) {
        c->ops->stream_free(c->stream_state);
    }
    c->stream_state = NULL;
}

static void call_release_streams(struct call *c)
{
    call_settle(c);
    release_provider_stream(c);
    if (c->client_state && c->client->stream_free) {
        c->client->stream_free(c->client_state);
    }
    c->client_state = NULL;
}

static void on_backoff_closed(uv_handle_t *h)
{
    lx_free(h);
}

static long long call_tokens(const struct call *c);

static void call_free(struct call *c)
{
    call_settle(c); /* usage known so far, also when the client left mid-stream */
    lx_spend_fetch_cancel(c->budget_fetch);
    c->budget_fetch = NULL;
    if (c->limits) {
        /* The one place a call ends: in-flight slots can never leak. */
        lx_limits_req_end(c->limits, call_tokens(c));
        c->limits = NULL;
    }
    call_release_streams(c);
    if (c->attempt_open) {
        lx_router_end_abandoned(c->dep);
    }
    if (c->backoff) {
        uv_timer_stop(c->backoff);
        uv_close((uv_handle_t *)c->backoff, on_backoff_closed);
    }
    lx_buf_fini(&c->err_body);
    lx_buf_fini(&c->strip_body);
    if (c->json) {
        cJSON_Delete(c->json);
    }
    lx_buf_fini(&c->up_body);
    lx_buf_fini(&c->resp);
    lx_buf_fini(&c->out);
    if (c->sse_init) {
        lx_sse_fini(&c->sse);
    }
    if (c->client_sse_init) {
        lx_sse_fini(&c->client_sse);
    }
    lx_buf_fini(&c->client_out);
    lx_buf_fini(&c->client_body);
    lx_config_unref(c->cfg);
    lx_identity_unref(c->id);
    lx_free(c);
}

#define CALL_MAX_HEADERS 20

/* A count as decimal text: a static string for 0-9 (the usual case), else written into buf. */
static struct lx_str small_count(int v, char buf[16])
{
    static const char digits[] = "0123456789";
    if (v >= 0 && v < 10) {
        return (struct lx_str){digits + v, 1};
    }
    int len = snprintf(buf, 16, "%d", v);
    return (struct lx_str){buf, len > 0 ? (size_t)len : 0};
}

/* Common response headers naming the deployment that answered. */
static size_t call_headers(struct call *c, struct lx_http_header *h, bool sse)
{
    size_t n = 0;
    if (sse) {
        h[n++] = (struct lx_http_header){LX_STR("content-type"), LX_STR("text/event-stream")};
        h[n++] = (struct lx_http_header){LX_STR("cache-control"), LX_STR("no-cache")};
        h[n++] = (struct lx_http_header){LX_STR("x-accel-buffering"), LX_STR("no")};
    } else {
        h[n++] = (struct lx_http_header){LX_STR("content-type"), LX_STR("application/json")};
    }
    if (c->dep) {
        h[n++] = (struct lx_http_header){LX_STR("x-litellm-model-id"), lx_str_c(c->dep->id)};
        h[n++] =
            (struct lx_http_header){LX_STR("x-litellm-model-group"), lx_str_c(c->dep->model_name)};
        if (c->api_base.n) {
            h[n++] = (struct lx_http_header){LX_STR("x-litellm-model-api-base"), c->api_base};
        }
    }
    size_t nl = c->limits ? lx_limits_req_headers(c->limits, h + n) : 0;
    bool limit_retry = false;
    for (size_t i = n; i < n + nl; i++) {
        limit_retry = limit_retry || lx_str_eq_c(h[i].name, "retry-after");
    }
    n += nl;
    if (c->retry_after[0] && !limit_retry) {
        h[n++] = (struct lx_http_header){LX_STR("retry-after"), lx_str_c(c->retry_after)};
    }
    h[n++] = (struct lx_http_header){LX_STR("x-litellm-attempted-retries"),
                                     small_count(c->total_retries, c->hdr_retries)};
    h[n++] = (struct lx_http_header){LX_STR("x-litellm-attempted-fallbacks"),
                                     small_count(c->n_fallbacks, c->hdr_fallbacks)};
    return n;
}

/*
 * An OpenAI-format answer (a response, or an OpenAI error body) in the
 * client's format. Returns 0 and fills out, or non-zero to send the body as is.
 */
static int to_client_format(struct call *c, int *io_status, struct lx_str body, struct lx_buf *out)
{
    struct lx_error err = {0};
    if (*io_status >= 200 && *io_status < 300) {
        if (c->client->translate_response(body, out, &err) == 0) {
            return 0;
        }
        lx_buf_reset(out);
        *io_status = 502;
        LX_WARN("cannot translate a response for the %s client format: %s (id=%s)", c->client->name,
                err.msg, c->req->id);
        return c->client->error_body(502, "api_error", lx_str_c(err.msg), out);
    }
    cJSON *j = cJSON_ParseWithLength(body.p ? body.p : "", body.n);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type");
    int rc = c->client->error_body(
        *io_status, cJSON_IsString(t) ? t->valuestring : NULL,
        cJSON_IsString(m) ? lx_str_c(m->valuestring) : LX_STR("upstream error"), out);
    cJSON_Delete(j);
    return rc;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *call_type(const struct call *c)
{
    if (c->client) {
        return "anthropic_messages";
    }
    switch (c->ep) {
    case LX_EP_COMPLETIONS:
        return "atext_completion";
    case LX_EP_EMBEDDINGS:
        return "aembedding";
    default:
        return "acompletion";
    }
}

/*
 * Journal the call's spend record, once, before the last byte of its
 * response is sent: once the client has its answer, a crash cannot lose its
 * spend. Calls that never reached a deployment (malformed requests, unknown
 * models) are not billable and leave no record.
 */
static void call_record(struct call *c, bool success)
{
    struct lx_ledger_writer *w = c->px->ledger_writer;
    if (!w || !c->dep || c->recorded) {
        return;
    }
    c->recorded = true;
    call_settle(c);
    int64_t end = wall_ms();
    uint64_t elapsed_ns = lx_mono_ns() - c->req->start_ns;
    struct lx_spend_record r = {
        .request_id = c->req->id, /* x-litellm-call-id */
        .call_type = call_type(c),
        .model = c->upstream_model,
        .model_group = c->dep->model_name,
        .model_id = c->dep->id,
        .custom_llm_provider = c->dep->provider.name,
        .api_base =
            c->api_base.n ? lx_arena_strndup(&c->req->arena, c->api_base.p, c->api_base.n) : NULL,
        .start_time_ms = end - (int64_t)(elapsed_ns / 1000000u),
        .end_time_ms = end,
        .end_user = c->end_user,
        .is_failure = !success,
    };
    if (c->has_usage) {
        r.prompt_tokens = c->usage.prompt_tokens;
        r.completion_tokens = c->usage.completion_tokens;
        r.total_tokens = lx_usage_total(&c->usage);
        r.cache_read_tokens = c->usage.cache_read_tokens;
        r.spend_nanos = success ? c->cost_nanos : 0; /* a failed call costs nothing */
    }
    const struct lx_identity *id = c->id;
    if (id && !id->is_master) {
        r.api_key = id->token[0] ? id->token : NULL;
        r.key_alias = id->key_alias;
        r.user_id = id->user_id;
        r.team_id = id->team_id;
    }
    if (lx_ledger_record(w, &r) != 0) {
        LX_DEBUG("spend record of call %s not journaled", c->req->id);
    } else if (r.spend_nanos > 0 && c->px->env.budget) {
        /* Other instances see it at their next check (spend/shared.h). */
        lx_spend_shared_record(c->px->env.budget, c->cfg, c->id, r.spend_nanos);
    }
}

/* Answer with a whole body (OpenAI format) and end the call. */
static void call_respond(struct call *c, int status, struct lx_str body)
{
    struct lx_http_header h[CALL_MAX_HEADERS];
    size_t n = call_headers(c, h, false);
    char cost[LX_COST_USD_MAX];
    call_settle(c);
    if (status >= 200 && status < 300 && c->has_usage) {
        /* As LiteLLM prints it; streams carry no cost header (it is not known when headers leave).
         */
        lx_cost_format_usd(c->cost_nanos, cost, sizeof(cost));
        h[n++] = (struct lx_http_header){LX_STR("x-litellm-response-cost"), lx_str_c(cost)};
    }
    struct lx_http_request *req = c->req;
    struct lx_buf translated;
    lx_buf_init(&translated, LX_MAX(c->resp.limit, 1u << 20));
    if (c->client && to_client_format(c, &status, body, &translated) == 0) {
        body = lx_buf_str(&translated);
    }
    /* The body may live in the call: respond first (it copies what it cannot write), then free. */
    lx_http_on_abort(req, NULL, NULL);
    call_release_streams(c);
    call_record(c, status >= 200 && status < 300);
    if (c->limits) {
        /* Free the in-flight slot before the client can see the answer and send its next call. */
        lx_limits_req_finish(c->limits, call_tokens(c));
    }
    lx_http_respond(req, status, h, n, body);
    lx_buf_fini(&translated);
    call_free(c);
}

static int on_client_event(void *ud, const struct lx_sse_event *ev)
{
    struct call *c = ud;
    return c->client->translate_event(c->client_state, ev->data, &c->client_out, &c->xlate_err);
}

/*
 * Send OpenAI-format SSE bytes to the client, through the client adapter when
 * there is one. Returns 0 or LX_ECANCELED when the client is gone.
 */
static int emit(struct call *c, struct lx_str sse)
{
    if (!c->client) {
        return lx_http_stream_write(c->req, sse);
    }
    if (lx_sse_feed(&c->client_sse, sse.p, sse.n, on_client_event, c)) {
        LX_WARN("cannot translate a stream event for the %s client format: %s (id=%s)",
                c->client->name, c->xlate_err.msg, c->req->id);
        lx_buf_reset(&c->client_out);
        return LX_ECANCELED;
    }
    int rc = lx_http_stream_write(c->req, lx_buf_str(&c->client_out));
    lx_buf_reset(&c->client_out);
    return rc;
}

static void call_error(struct call *c, int status, const char *type, const char *param,
                       const char *fmt, ...) LX_PRINTF(5, 6);

static void call_error(struct call *c, int status, const char *type, const char *param,
                       const char *fmt, ...)
{
    char msg[1024];
    char code[16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(code, sizeof(code), "%d", status);
    struct lx_buf b;
    lx_buf_init(&b, 8192);
    if (lx_json_error_body(&b, lx_str_c(msg), type ? type : lx_error_type_for_status(status), param,
                           code)) {
        lx_buf_reset(&b);
    }
    call_respond(c, status, lx_buf_str(&b));
    lx_buf_fini(&b);
}

/* ---- local answers (mock_response) ---- */

/*
 * Rough token count of the text under node (strings under "content", "text",
 * "prompt" and "input", and bare array items): 4 bytes a token, at least 1.
 * Roles, types and ids are not text the model reads as tokens.
 */
static long estimate_tokens(const cJSON *node)
{
    size_t bytes = 0;
    const cJSON *stack[64];
    int sp = 0;
    if (node) {
        stack[sp++] = node;
    }
    while (sp > 0) {
        const cJSON *n = stack[--sp];
        if (cJSON_IsString(n) && n->valuestring) {
            const char *k = n->string;
            if (!k || !strcmp(k, "content") || !strcmp(k, "text") || !strcmp(k, "prompt") ||
                !strcmp(k, "input")) {
                bytes += strlen(n->valuestring);
            }
        }
        for (const cJSON *ch = n->child; ch; ch = ch->next) {
            if (sp < (int)LX_ARRAY_LEN(stack)) {
                stack[sp++] = ch;
            }
        }
    }
    long t = (long)((bytes + 3) / 4);
    return t > 0 ? t : 1;
}

static long count_words(const char *s)
{
    long n = 0;
    bool in = false;
    for (; *s; s++) {
        bool sp = *s == ' ' || *s == '\n' || *s == '\t';
        if (!sp && !in) {
            n++;
        }
        in = !sp;
    }
    return n;
}

static int mock_chunk(struct lx_buf *b, const char *id, long created, const char *model,
                      const char *object, struct lx_str delta_json, const char *finish)
{
    struct lx_buf ev;
    lx_buf_init(&ev, 1u << 20);
    int rc = lx_buf_printf(&ev, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":", id,
                           object, created);
    rc = rc ? rc : lx_json_append_string(&ev, lx_str_c(model));
    rc = rc ? rc : lx_buf_append_c(&ev, ",\"choices\":[{\"index\":0,");
    rc = rc ? rc : lx_buf_append_str(&ev, delta_json);
    rc = rc ? rc : lx_buf_append_c(&ev, ",\"finish_reason\":");
    rc = rc ? rc : lx_buf_append_c(&ev, finish ? finish : "null");
    rc = rc ? rc : lx_buf_append_c(&ev, "}]}");
    rc = rc ? rc : lx_sse_append_event(b, LX_STR(""), lx_buf_str(&ev));
    lx_buf_fini(&ev);
    return rc;
}

static void mock_stream(struct call *c, const char *content, long prompt_tokens,
                        long completion_tokens, bool include_usage)
{
    char id[64];
    char uuid[37];
    lx_uuid4(uuid);
    bool chat = c->ep == LX_EP_CHAT;
    snprintf(id, sizeof(id), "%s%s", chat ? "chatcmpl-" : "cmpl-", uuid);
    const char *object = chat ? "chat.completion.chunk" : "text_completion";
    const char *model = c->upstream_model;
    long created = (long)lx_wall_s();
    call_set_usage(c, &(struct lx_usage){.prompt_tokens = prompt_tokens,
                                         .completion_tokens = completion_tokens});
    struct lx_buf b, delta;
    lx_buf_init(&b, 64u << 20);
    lx_buf_init(&delta, 16u << 20);
    int rc = 0;
    if (chat) {
        rc = mock_chunk(&b, id, created, model, object,
                        LX_STR("\"delta\":{\"role\":\"assistant\",\"content\":\"\"}"), NULL);
    }
    /* One chunk per word, each keeping its leading space, as a model streams tokens. */
    const char *p = content;
    while (*p && !rc) {
        const char *q = p;
        while (*q == ' ') {
            q++;
        }
        while (*q && *q != ' ') {
            q++;
        }
        lx_buf_reset(&delta);
        rc = lx_buf_append_c(&delta, chat ? "\"delta\":{\"content\":" : "\"text\":");
        rc = rc ? rc : lx_json_append_string(&delta, (struct lx_str){p, (size_t)(q - p)});
        rc = rc ? rc : lx_buf_append_c(&delta, chat ? "}" : "");
        rc = rc ? rc : mock_chunk(&b, id, created, model, object, lx_buf_str(&delta), NULL);
        p = q;
    }
    if (!rc) {
        rc = mock_chunk(&b, id, created, model, object,
                        chat ? LX_STR("\"delta\":{}") : LX_STR("\"text\":\"\""), "\"stop\"");
    }
    if (!rc && include_usage) {
        rc = lx_buf_printf(&b,
                           "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":", id,
                           object, created);
        rc = rc ? rc : lx_json_append_string(&b, lx_str_c(model));
        rc =
            rc ? rc
               : lx_buf_printf(&b,
                               ",\"choices\":[],\"usage\":{\"prompt_tokens\":%ld,"
                               "\"completion_tokens\":%ld,\"total_tokens\":%ld}}\n\n",
                               prompt_tokens, completion_tokens, prompt_tokens + completion_tokens);
    }
    rc = rc ? rc : lx_buf_append_c(&b, "data: [DONE]\n\n");
    lx_buf_fini(&delta);
    if (rc) {
        lx_buf_fini(&b);
        call_error(c, 500, NULL, NULL, "Could not build the mock response");
        return;
    }
    struct lx_http_header h[CALL_MAX_HEADERS];
    size_t n = call_headers(c, h, true);
    struct lx_http_request *req = c->req;
    lx_http_on_abort(req, NULL, NULL);
    if (lx_http_stream_start(req, 200, h, n) == 0) {
        emit(c, lx_buf_str(&b));
    }
    call_record(c, true);
    lx_buf_fini(&b);
    call_free(c);
    lx_http_stream_end(req);
}

static void mock_embeddings(struct call *c)
{
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(c->json, "input");
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(c->json, "dimensions");
    int d = cJSON_IsNumber(dims) && dims->valuedouble >= 1 && dims->valuedouble <= 4096
                ? (int)dims->valuedouble
                : 8;
    int count = cJSON_IsArray(input) && !cJSON_IsNumber(cJSON_GetArrayItem(input, 0))
                    ? cJSON_GetArraySize(input)
                    : 1;
    struct lx_buf b;
    lx_buf_init(&b, 64u << 20);
    int rc = lx_buf_append_c(&b, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < count && !rc; i++) {
        rc = lx_buf_printf(&b, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":[",
                           i ? "," : "", i);
        for (int k = 0; k < d && !rc; k++) {
            rc = lx_buf_printf(&b, "%s%.6f", k ? "," : "", sin((double)(i * 31 + k + 1)));
        }
        rc = rc ? rc : lx_buf_append_c(&b, "]}");
    }
    long pt = estimate_tokens(input);
    call_set_usage(c, &(struct lx_usage){.prompt_tokens = pt});
    rc = rc ? rc : lx_buf_append_c(&b, "],\"model\":");
    rc = rc ? rc : lx_json_append_string(&b, lx_str_c(c->upstream_model));
    rc = rc ? rc
            : lx_buf_printf(&b, ",\"usage\":{\"prompt_tokens\":%ld,\"total_tokens\":%ld}}", pt, pt);
    if (rc) {
        lx_buf_fini(&b);
        call_error(c, 500, NULL, NULL, "Could not build the mock response");
        return;
    }
    call_respond(c, 200, lx_buf_str(&b));
    lx_buf_fini(&b);
}

static void answer_mock(struct call *c)
{
    if (c->ep == LX_EP_EMBEDDINGS) {
        mock_embeddings(c);
        return;
    }
    const char *content = c->dep->mock_response ? c->dep->mock_response : "";
    const cJSON *src =
        cJSON_GetObjectItemCaseSensitive(c->json, c->ep == LX_EP_CHAT ? "messages" : "prompt");
    long pt = estimate_tokens(src);
    long ct = count_words(content);
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(c->json, "stream_options");
    bool include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    if (c->stream) {
        mock_stream(c, content, pt, ct, include_usage);
        return;
    }
    call_set_usage(c, &(struct lx_usage){.prompt_tokens = pt, .completion_tokens = ct});
    char uuid[37];
    lx_uuid4(uuid);
    bool chat = c->ep == LX_EP_CHAT;
    struct lx_buf b;
    lx_buf_init(&b, 64u << 20);
    int rc = lx_buf_printf(&b, "{\"id\":\"%s%s\",\"object\":\"%s\",\"created\":%lld,\"model\":",
                           chat ? "chatcmpl-" : "cmpl-", uuid,
                           chat ? "chat.completion" : "text_completion", (long long)lx_wall_s());
    rc = rc ? rc : lx_json_append_string(&b, lx_str_c(c->upstream_model));
    if (chat) {
        rc = rc ? rc
                : lx_buf_append_c(&b, ",\"system_fingerprint\":null,\"choices\":[{\"index\":0,"
                                      "\"message\":{\"role\":\"assistant\",\"content\":");
        rc = rc ? rc : lx_json_append_string(&b, lx_str_c(content));
        rc = rc ? rc : lx_buf_append_c(&b, "},\"logprobs\":null,\"finish_reason\":\"stop\"}]");
    } else {
        rc = rc ? rc : lx_buf_append_c(&b, ",\"choices\":[{\"index\":0,\"text\":");
        rc = rc ? rc : lx_json_append_string(&b, lx_str_c(content));
        rc = rc ? rc : lx_buf_append_c(&b, ",\"logprobs\":null,\"finish_reason\":\"stop\"}]");
    }
    rc = rc ? rc
            : lx_buf_printf(&b,
                            ",\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,"
                            "\"total_tokens\":%ld}}",
                            pt, ct, pt + ct);
    if (rc) {
        lx_buf_fini(&b);
        call_error(c, 500, NULL, NULL, "Could not build the mock response");
        return;
    }
    call_respond(c, 200, lx_buf_str(&b));
    lx_buf_fini(&b);
}

/* ---- upstream relay ---- */

static void on_client_abort(struct lx_http_request *req, void *ud)
{
    (void)req;
    struct call *c = ud;
    if (c->xfer) {
        lx_upstream_cancel(c->xfer);
        c->xfer = NULL;
    }
    LX_DEBUG("client left; call for '%s' cancelled (id=%s)", c->model.p ? c->model.p : "", req->id);
    call_record(c, false);
    call_free(c);
}

static void on_client_drain(struct lx_http_request *req, void *ud)
{
    (void)req;
    struct call *c = ud;
    if (c->xfer) {
        lx_upstream_resume(c->xfer);
    }
}

static bool status_ok(int s)
{
    return s >= 200 && s < 300;
}

static int on_up_headers(void *ud, int status)
{
    struct call *c = ud;
    c->up_status = status;
    if (!status_ok(status) && c->xfer) {
        /* Keep a sane retry-after (seconds or an HTTP date) to relay with the error. */
        struct lx_str ra = lx_upstream_header_get(c->xfer, LX_STR("retry-after"));
        if (ra.n && ra.n < sizeof(c->retry_after)) {
            bool ok = true;
            for (size_t i = 0; i < ra.n; i++) {
                ok = ok && ra.p[i] >= 0x20 && ra.p[i] < 0x7f;
            }
            if (ok) {
                memcpy(c->retry_after, ra.p, ra.n);
                c->retry_after[ra.n] = '\0';
            }
        }
    }
    return 0;
}

/* A raw JSON value that is an empty array ("[]", whitespace allowed inside). */
static bool is_empty_array(struct lx_str v)
{
    if (v.n < 2 || v.p[0] != '[' || v.p[v.n - 1] != ']') {
        return false;
    }
    for (size_t i = 1; i + 1 < v.n; i++) {
        if (v.p[i] != ' ' && v.p[i] != '\t' && v.p[i] != '\n' && v.p[i] != '\r') {
            return false;
        }
    }
    return true;
}

static int on_sse_event(void *ud, const struct lx_sse_event *ev)
{
    struct call *c = ud;
    c->saw_event = true;
    if (c->stream_state) {
        return c->ops->translate_event(c->stream_state, ev, &c->out, &c->xlate_err);
    }
    /*
     * Pass-through: every event but [DONE] must be a JSON object, or the
     * client's SDK would fail on it with a parse error instead of an API error.
     */
    if (!lx_str_eq_c(ev->data, "[DONE]")) {
        static const struct lx_str keys[] = {LX_STR("usage"), LX_STR("choices")};
        struct lx_str v[2];
        if (lx_json_find_top_many(ev->data, keys, 2, v)) {
            return lx_error_set(&c->xlate_err, LX_EUPSTREAM, "an event is not valid JSON");
        }
        if (v[0].p && !lx_str_eq_c(v[0], "null")) {
            struct lx_usage u;
            if (lx_usage_parse_openai(v[0], &u) == 0) {
                call_set_usage(c, &u);
            }
            /* The usage-only chunk llmux asked for on the client's behalf: not relayed. */
            if (!c->include_usage && is_empty_array(v[1])) {
                return 0;
            }
        }
    }
    return lx_sse_append_event(&c->out, ev->name, ev->data);
}

static int start_client_stream(struct call *c)
{
    c->ttft_us = (lx_mono_ns() - c->attempt_ns) / 1000u;
    struct lx_http_header h[CALL_MAX_HEADERS];
    size_t n = call_headers(c, h, true);
    c->started = true;
    return lx_http_stream_start(c->req, 200, h, n);
}

static int on_up_data(void *ud, const char *data, size_t n)
{
    struct call *c = ud;
    if (!c->stream || !status_ok(c->up_status)) {
        int rc = lx_buf_append(&c->resp, data, n);
        return rc == LX_ETOOBIG ? LX_ETOOBIG : rc ? LX_ENOMEM : 0;
    }
    if (c->started && lx_http_should_pause(c->req)) {
        return LX_EAGAIN; /* the same bytes come again after the client drains */
    }
    int rc = c->ops && c->ops->stream_feed
                 ? c->ops->stream_feed(c->stream_state, data, n, &c->out, &c->xlate_err)
                 : lx_sse_feed(&c->sse, data, n, on_sse_event, c);
    if (rc) {
        if (rc != LX_ETOOBIG && !c->xlate_err.code) {
            lx_error_set(&c->xlate_err, LX_EUPSTREAM, "malformed event stream from upstream");
        }
        return rc == LX_ETOOBIG ? LX_ETOOBIG : LX_EUPSTREAM;
    }
    if (c->out.len == 0) {
        return 0;
    }
    if (!c->started && start_client_stream(c)) {
        return LX_ECANCELED;
    }
    c->saw_event = true;
    if (c->stream_state && (memmem(c->out.data, c->out.len, "data: [DONE]", 12) ||
                            memmem(c->out.data, c->out.len, "data: {\"error\"", 15))) {
        c->provider_ended = true;
    }
    rc = emit(c, lx_buf_str(&c->out));
    lx_buf_reset(&c->out);
    return rc ? LX_ECANCELED : 0;
}

/* Replace every occurrence of the provider key in an upstream body by "***". */
static void scrub_key(struct lx_buf *b, const char *key)
{
    size_t kn = key ? strlen(key) : 0;
    if (kn < 8 || b->len < kn) {
        return;
    }
    char *p = b->data;
    char *end = b->data + b->len;
    while ((p = memmem(p, (size_t)(end - p), key, kn))) {
        memset(p, '*', kn);
        p += kn;
    }
}

/* ---- attempts: outcome, retry, fallback ---- */

/* Tokens the answer reported so far (0 when unknown), for tpm accounting. */
static long long call_tokens(const struct call *c)
{
    return c->has_usage ? (long long)lx_usage_total(&c->usage) : 0;
}

/* The attempt answered; latency_us is the time to the answer (streams: to the first event). */
static void attempt_succeeded(struct call *c, uint64_t latency_us, long long tokens)
{
    if (c->attempt_open) {
        c->attempt_open = false;
        /* The minute of the answer is the attempt's start plus its latency: no clock read. */
        uint64_t now_ms = (c->attempt_ns / 1000u + latency_us) / 1000u;
        lx_router_end_ok(c->dep, now_ms, latency_us, tokens);
    }
}

/* Forget what one attempt left behind, so the next starts clean. */
static void reset_attempt(struct call *c)
{
    release_provider_stream(c);
    if (c->sse_init) {
        lx_sse_fini(&c->sse);
        c->sse_init = false;
    }
    lx_buf_reset(&c->up_body);
    lx_buf_reset(&c->resp);
    lx_buf_reset(&c->out);
    c->up_status = 0;
    c->xlate_err = (struct lx_error){0};
    c->saw_event = false;
    c->provider_ended = false;
    c->has_usage = false;
    c->pc = (struct lx_provider_call){0};
}

/* Answer the kept error of the last attempt. */
static void respond_kept_error(struct call *c)
{
    call_respond(c, c->err_status ? c->err_status : 502, lx_buf_str(&c->err_body));
}

static void keep_error(struct call *c, int status, struct lx_str body)
{
    lx_buf_reset(&c->err_body);
    c->err_status = status;
    if (lx_buf_append(&c->err_body, body.p ? body.p : "", body.n)) {
        lx_buf_reset(&c->err_body);
        char code[16];
        snprintf(code, sizeof(code), "%d", status);
        if (lx_json_error_body(&c->err_body, LX_STR("Upstream error"),
                               lx_error_type_for_status(status), NULL, code)) {
            lx_buf_reset(&c->err_body);
        }
    }
}

static void keep_error_msg(struct call *c, int status, const char *msg)
{
    char code[16];
    snprintf(code, sizeof(code), "%d", status);
    lx_buf_reset(&c->err_body);
    c->err_status = status;
    if (lx_json_error_body(&c->err_body, lx_str_c(msg), lx_error_type_for_status(status), NULL,
                           code)) {
        lx_buf_reset(&c->err_body);
    }
}

/* Move the call to the next fallback group that exists; false when none is left. */
static bool next_fallback(struct call *c, enum lx_err_class ec)
{
    if (!c->fb_chosen) {
        c->fb_chosen = true;
        c->fb_next = 0;
        c->fb_list = c->has_req_fallbacks && ec != LX_ERRC_BAD_REQUEST &&
                             ec != LX_ERRC_CONTEXT_WINDOW && ec != LX_ERRC_CONTENT_POLICY
                         ? c->req_fallbacks
                         : lx_router_fallbacks(c->cfg, c->model.p, ec);
        if (!c->fb_list.n && c->rr.group && strcmp(c->rr.group->name, c->model.p) != 0) {
            /* An alias or an id: the fallbacks may be configured under the group's name. */
            c->fb_list = lx_router_fallbacks(c->cfg, c->rr.group->name, ec);
        }
    }
    int max = lx_router_max_fallbacks(c->cfg);
    while (c->fb_next < c->fb_list.n && c->n_fallbacks < max) {
        const char *name = c->fb_list.items[c->fb_next++];
        const struct lx_model_group *g = lx_config_find_group(c->cfg, lx_str_c(name));
        if (!g || g->n == 0 || g == c->rr.group) {
            LX_DEBUG("fallback '%s' skipped: %s (id=%s)", name, g ? "same group" : "no such group",
                     c->req->id);
            continue;
        }
        c->n_fallbacks++;
        c->rr.group = g;
        c->rr.pinned = NULL;
        c->rr.n_tried = 0;
        c->retries = 0;
        LX_INFO("falling back from model group '%s' to '%s' (id=%s)", c->model.p, g->name,
                c->req->id);
        return true;
    }
    return false;
}

/* How many retries an error of class ec gets in the current group. */
static int retries_allowed(const struct call *c, enum lx_err_class ec, bool *out_failover_only)
{
    *out_failover_only = false;
    int policy = lx_router_policy_retries(c->cfg, c->rr.group->name, ec);
    if (policy >= 0) {
        return policy;
    }
    switch (ec) {
    case LX_ERRC_NONE:
    case LX_ERRC_BAD_REQUEST:
    case LX_ERRC_CONTEXT_WINDOW:
    case LX_ERRC_CONTENT_POLICY:
        return 0; /* the request itself is at fault: another try gets the same answer */
    case LX_ERRC_AUTH:
    case LX_ERRC_NOT_FOUND:
        /* A key or model a deployment does not accept: only another deployment can help. */
        *out_failover_only = true;
        return c->num_retries >= 0 ? c->num_retries : DEFAULT_FAILOVER_RETRIES;
    default:
        if (c->num_retries < 0) {
            *out_failover_only = true;
            return DEFAULT_FAILOVER_RETRIES;
        }
        return c->num_retries;
    }
}

static void on_backoff(uv_timer_t *t)
{
    struct call *c = t->data;
    uv_close((uv_handle_t *)t, on_backoff_closed);
    c->backoff = NULL;
    attempt(c);
}

/* After a failed attempt: retry, fall back, or answer the kept error. */
static void next_step(struct call *c, enum lx_err_class ec, double retry_after_s)
{
    bool failover_only;
    int allowed = retries_allowed(c, ec, &failover_only);
    c->rr.now_ms = lx_mono_ms();
    bool other = lx_router_has_untried(&c->rr);
    bool usable = other || lx_router_has_usable(&c->rr);
    if (c->retries < allowed && usable && (other || !failover_only)) {
        c->retries++;
        c->total_retries++;
        if (other) {
            attempt(c);
            return;
        }
        /* Only deployments already tried are left: wait before calling one again. */
        double wait = lx_router_backoff_s(c->cfg, c->retries - 1, retry_after_s);
        LX_INFO("retrying model group '%s' in %.2fs (retry %d of %d, id=%s)", c->rr.group->name,
                wait, c->retries, allowed, c->req->id);
        c->backoff = lx_malloc(sizeof(*c->backoff));
        uv_timer_init(c->px->loop, c->backoff);
        c->backoff->data = c;
        uv_timer_start(c->backoff, on_backoff, (uint64_t)(wait * 1000.0), 0);
        return;
    }
    if (next_fallback(c, ec)) {
        attempt(c);
        return;
    }
    respond_kept_error(c);
}

/*
 * The current attempt failed before any byte reached the client with an
 * OpenAI-shaped error body: record it, keep the error, and go on.
 */
static void attempt_failed(struct call *c, int status, enum lx_err_class ec, struct lx_str body)
{
    double retry_after_s = lx_router_parse_retry_after(lx_str_c(c->retry_after));
    if (c->attempt_open) {
        c->attempt_open = false;
        if (lx_router_end_fail(c->cfg, c->rr.group, c->dep, lx_mono_ms(), ec, status,
                               retry_after_s)) {
            LX_WARN("deployment %s of model group '%s' is cooling down after HTTP %d", c->dep->id,
                    c->dep->model_name, status);
        }
    }
    if (body.p != c->err_body.data) {
        keep_error(c, status, body);
    }
    reset_attempt(c);
    next_step(c, ec, retry_after_s);
}

/* Every deployment of the group is cooling down (or unusable): a 429 saying so. */
static void all_cooling(struct call *c, uint64_t wait_ms)
{
    uint64_t secs = (wait_ms + 999) / 1000;
    snprintf(c->retry_after, sizeof(c->retry_after), "%llu", (unsigned long long)(secs ? secs : 1));
    char msg[512];
    snprintf(msg, sizeof(msg),
             "No deployments available for model group '%s': every deployment is cooling down "
             "after recent failures. Try again in %llu second(s).",
             c->rr.group->name, (unsigned long long)(secs ? secs : 1));
    keep_error_msg(c, 429, msg);
    LX_WARN("%s (id=%s)", msg, c->req->id);
    c->retries = INT32_MAX / 2; /* no retry in a group that has nothing to offer now */
    if (next_fallback(c, LX_ERRC_RATE_LIMIT)) {
        c->retry_after[0] = '\0';
        attempt(c);
        return;
    }
    respond_kept_error(c);
}

/* End a started stream with an error event the OpenAI SDKs raise on. */
static void stream_fail(struct call *c, int status, const char *msg)
{
    if (c->attempt_open) {
        c->attempt_open = false;
        lx_router_end_fail(c->cfg, c->rr.group, c->dep, lx_mono_ms(),
                           lx_router_classify(status, LX_STR_NULL), status, 0);
    }
    struct lx_buf b;
    char code[16];
    snprintf(code, sizeof(code), "%d", status);
    lx_buf_init(&b, 8192);
    struct lx_buf ev;
    lx_buf_init(&ev, 8192);
    if (lx_json_error_body(&ev, lx_str_c(msg), lx_error_type_for_status(status), NULL, code) == 0) {
        if (lx_sse_append_event(&b, LX_STR(""), lx_buf_str(&ev)) == 0) {
            emit(c, lx_buf_str(&b));
        }
    }
    lx_buf_fini(&ev);
    lx_buf_fini(&b);
    struct lx_http_request *req = c->req;
    lx_http_on_abort(req, NULL, NULL);
    call_record(c, false);
    call_free(c);
    lx_http_stream_end(req);
}

static void fail(struct call *c, int status, const char *fmt, ...) LX_PRINTF(3, 4);

/*
 * An attempt failed for a reason of our own making (timeout, unreachable,
 * malformed answer): a started stream ends with an error event, anything
 * else goes to the next step with this error kept.
 */
static void fail(struct call *c, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    LX_WARN("upstream call failed: model_group=%s deployment=%s api_base=%.*s status=%d: %s id=%s",
            c->dep->model_name, c->dep->id, LX_STR_FMT(c->api_base), status, msg, c->req->id);
    if (c->started) {
        stream_fail(c, status, msg);
        return;
    }
    keep_error_msg(c, status, msg);
    attempt_failed(c, status, lx_router_classify(status, LX_STR_NULL), lx_buf_str(&c->err_body));
}

/* A failure that no other deployment would change (the response is too big, ...). */
static void fail_final(struct call *c, int status, const char *msg)
{
    c->num_retries = 0;
    c->fb_chosen = true;
    c->fb_list = (struct lx_strlist){NULL, 0};
    if (c->started) {
        stream_fail(c, status, msg);
        return;
    }
    keep_error_msg(c, status, msg);
    attempt_failed(c, status, LX_ERRC_NONE, lx_buf_str(&c->err_body));
}

static void finish_stream(struct call *c)
{
    bool truncated = false;
    if (c->ops->stream_end) {
        /* Raw framing (NDJSON, AWS event stream): the provider flushes or reports truncation. */
        if (c->ops->stream_end(c->stream_state, &c->out, &c->xlate_err)) {
            truncated = true;
        } else if (c->out.len) {
            if (!c->started && start_client_stream(c)) {
                truncated = true;
            } else {
                emit(c, lx_buf_str(&c->out));
            }
            lx_buf_reset(&c->out);
        }
    } else {
        lx_sse_finish(&c->sse, &truncated);
    }
    if (!c->started) {
        fail(c, 502, "Upstream returned no events for a stream request (model group '%s')",
             c->dep->model_name);
        return;
    }
    if (truncated) {
        fail(c, 502, "Upstream stream ended in the middle of an event");
        return;
    }
    if (c->stream_state && !c->ops->stream_end && !c->provider_ended) {
        /* A translated stream whose upstream closed before its final event: the answer is cut. */
        fail(c, 502, "Upstream stream ended before it was complete (model group '%s')",
             c->dep->model_name);
        return;
    }
    if (c->client) {
        /* Adapters close their stream at [DONE]; an upstream may end without one. */
        emit(c, LX_STR("data: [DONE]\n\n"));
    }
    attempt_succeeded(c, c->ttft_us, call_tokens(c));
    struct lx_http_request *req = c->req;
    lx_http_on_abort(req, NULL, NULL);
    call_record(c, true);
    call_free(c);
    lx_http_stream_end(req);
}

/* The upstream's error answer as an OpenAI error body in out; *io_status may change. */
static void upstream_error_body(struct call *c, int *io_status, struct lx_buf *out)
{
    scrub_key(&c->resp, c->api_key);
    LX_WARN("upstream error: model_group=%s deployment=%s api_base=%.*s status=%d id=%s",
            c->dep->model_name, c->dep->id, LX_STR_FMT(c->api_base), c->up_status, c->req->id);
    if (c->ops->translate_error &&
        c->ops->translate_error(&c->pc, lx_buf_str(&c->resp), io_status, out) == 0) {
        return;
    }
    lx_buf_reset(out);
    cJSON *j = cJSON_ParseWithLength(c->resp.data ? c->resp.data : "", c->resp.len);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsObject(e)) {
        /*
         * OpenAI-shaped: keep message, type and param; the code becomes the
         * status as a string, as LiteLLM reports it.
         */
        char code[16];
        snprintf(code, sizeof(code), "%d", *io_status);
        cJSON *cs = cJSON_CreateString(code);
        char *printed = NULL;
        if (cs) {
            if (cJSON_GetObjectItemCaseSensitive(e, "code")) {
                cJSON_ReplaceItemInObjectCaseSensitive(e, "code", cs);
            } else {
                cJSON_AddItemToObject(e, "code", cs);
            }
            printed = cJSON_PrintUnformatted(j);
        }
        cJSON_Delete(j);
        if (printed) {
            int rc = lx_buf_append_c(out, printed);
            cJSON_free(printed);
            if (rc == 0) {
                return;
            }
            lx_buf_reset(out);
        }
    } else {
        cJSON_Delete(j);
    }
    char msg[512];
    char code[16];
    snprintf(msg, sizeof(msg), "Upstream returned HTTP %d for model group '%s'", c->up_status,
             c->dep->model_name);
    snprintf(code, sizeof(code), "%d", *io_status);
    if (lx_json_error_body(out, lx_str_c(msg), lx_error_type_for_status(*io_status), NULL, code)) {
        lx_buf_reset(out);
    }
}

static void relay_error(struct call *c)
{
    int status = c->up_status >= 400 && c->up_status <= 599 ? c->up_status : 502;
    upstream_error_body(c, &status, &c->err_body);
    c->err_status = status;
    enum lx_err_class ec = lx_router_classify(status, lx_buf_str(&c->err_body));
    attempt_failed(c, status, ec, lx_buf_str(&c->err_body));
}

/* The usage of an OpenAI-format answer we built (a translated response). */
static void take_usage(struct call *c, struct lx_str body)
{
    struct lx_str raw = LX_STR_NULL;
    struct lx_usage u;
    if (lx_json_find_top(body, LX_STR("usage"), &raw) == 0 && lx_usage_parse_openai(raw, &u) == 0) {
        call_set_usage(c, &u);
    }
}

static void on_up_done(void *ud, int result, const struct lx_error *err)
{
    struct call *c = ud;
    c->xfer = NULL;
    if (result == LX_ECANCELED) {
        /* The client's connection broke while we wrote to it. */
        struct lx_http_request *req = c->req;
        lx_http_on_abort(req, NULL, NULL);
        call_record(c, false);
        call_free(c);
        lx_http_stream_abort(req);
        return;
    }
    if (result == LX_ETIMEDOUT) {
        fail(c, 504, "Upstream request timed out: %s %gs (model group '%s')",
             c->stream ? "no data for" : "no answer within", c->timeout_s, c->dep->model_name);
        return;
    }
    if (result == LX_ETOOBIG) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "Upstream response exceeds max_response_size_mb (model group '%s')",
                 c->dep->model_name);
        LX_WARN("%s (id=%s)", msg, c->req->id);
        fail_final(c, 502, msg);
        return;
    }
    if (result == LX_EUPSTREAM && c->xlate_err.code) {
        fail(c, 502, "Upstream sent a malformed stream for model group '%s': %s",
             c->dep->model_name, c->xlate_err.msg);
        return;
    }
    if (result) {
        fail(c, 502, "Upstream request failed for model group '%s': %s", c->dep->model_name,
             err ? err->msg : lx_strerror(result));
        return;
    }
    if (!status_ok(c->up_status)) {
        relay_error(c);
        return;
    }
    if (c->stream) {
        finish_stream(c);
        return;
    }
    uint64_t latency_us = (lx_mono_ns() - c->attempt_ns) / 1000u;
    if (c->ops->translate_response) {
        struct lx_buf out;
        struct lx_error xerr = {0};
        lx_buf_init(&out, c->resp.limit);
        if (c->ops->translate_response(&c->pc, lx_buf_str(&c->resp), &out, &xerr)) {
            lx_buf_fini(&out);
            fail(c, 502, "Upstream returned a malformed response for model group '%s': %s",
                 c->dep->model_name, xerr.msg);
            return;
        }
        take_usage(c, lx_buf_str(&out));
        attempt_succeeded(c, latency_us, call_tokens(c));
        call_respond(c, 200, lx_buf_str(&out));
        lx_buf_fini(&out);
        return;
    }
    /* Validate without building a tree: the scanner checks the whole object. */
    struct lx_str usage = LX_STR_NULL;
    bool ok = lx_json_find_top(lx_buf_str(&c->resp), LX_STR("usage"), &usage) != LX_EINVAL;
    struct lx_usage u;
    if (ok && usage.p && lx_usage_parse_openai(usage, &u) == 0) {
        call_set_usage(c, &u);
    }
    if (!ok) {
        fail(c, 502,
             "Upstream returned a malformed response (not a JSON object) for model group "
             "'%s'",
             c->dep->model_name);
        return;
    }
    attempt_succeeded(c, latency_us, call_tokens(c));
    call_respond(c, c->up_status, lx_buf_str(&c->resp));
}

static uint64_t ms_of(double s)
{
    return s > 0 ? (uint64_t)(s * 1000.0 + 0.5) : 0;
}

static void start_upstream(struct call *c)
{
    const struct lx_deployment *dep = c->dep;
    const struct lx_provider_ops *ops = lx_provider_ops_for(dep->provider.kind);
    if (!ops) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "Provider '%s' (model group '%s') is not supported by this llmux build",
                 dep->provider.name, dep->model_name);
        keep_error_msg(c, 501, msg);
        attempt_failed(c, 501, LX_ERRC_SERVER, lx_buf_str(&c->err_body));
        return;
    }
    c->ops = ops;
    c->pc = (struct lx_provider_call){
        .endpoint = c->ep,
        .dep = dep,
        .body = c->body,
        .json = c->json,
        .stream = c->stream,
        .api_key = c->api_key,
        .upstream_model = c->upstream_model,
        .arena = &c->req->arena,
        .stream_options = c->stream_options,
        .include_usage = c->include_usage,
    };
    struct lx_provider_request pr = {.body = &c->up_body};
    struct lx_error err = {0};
    int rc = ops->build_request(&c->pc, &pr, &err);
    if (rc) {
        int status = rc == LX_ETOOBIG ? 413 : rc == LX_EINVAL ? 400 : 500;
        keep_error_msg(c, status, err.msg);
        /* The request does not fit this provider; another deployment may take it. */
        attempt_failed(c, status, status == 500 ? LX_ERRC_SERVER : LX_ERRC_NONE,
                       lx_buf_str(&c->err_body));
        return;
    }
    const struct lx_config *cfg = c->cfg;
    double timeout = dep->timeout > 0          ? dep->timeout
                     : cfg->router.timeout > 0 ? cfg->router.timeout
                                               : cfg->litellm.request_timeout;
    double stream_timeout = dep->stream_timeout > 0          ? dep->stream_timeout
                            : cfg->router.stream_timeout > 0 ? cfg->router.stream_timeout
                                                             : timeout;
    if (c->req_timeout > 0) {
        timeout = c->req_timeout;
        stream_timeout = c->req_timeout;
    }
    c->timeout_s = c->stream ? stream_timeout : timeout;
    struct lx_upstream_req ur = {
        .url = pr.url,
        .headers = pr.headers,
        .n_headers = pr.n_headers,
        .body = lx_buf_str(&c->up_body),
        .timeout_ms = c->stream ? 0 : ms_of(timeout),
        .idle_timeout_ms = c->stream ? ms_of(stream_timeout) : 0,
        .stream = c->stream,
    };
    if (c->stream) {
        lx_sse_init(&c->sse, SSE_MAX_EVENT_BYTES);
        c->sse_init = true;
        if (ops->translate_event || ops->stream_feed) {
            c->stream_state = ops->stream_new(&c->pc);
            if (!c->stream_state) {
                call_error(c, 500, NULL, NULL, "Could not set up stream translation");
                return;
            }
        }
    }
    static const struct lx_upstream_cbs cbs = {on_up_headers, on_up_data, on_up_done};
    c->xfer = lx_upstream_start(c->px->up, &ur, &cbs, c, &err);
    if (!c->xfer) {
        keep_error_msg(c, 502, err.msg);
        attempt_failed(c, 502, LX_ERRC_SERVER, lx_buf_str(&c->err_body));
        return;
    }
}

/*
 * A wildcard group (a model_name with one star) forwards the part of the
 * requested model the star matched: model_name "openai/<star>" with model
 * "openai/<star>" sends "gpt-4o" for a request of "openai/gpt-4o".
 */
static const char *resolve_wildcard(struct lx_http_request *req, const struct lx_model_group *g,
                                    const struct lx_deployment *dep, struct lx_str requested)
{
    const char *up_star = strchr(dep->upstream_model, '*');
    const char *g_star = strchr(g->name, '*');
    if (!g->is_wildcard || !up_star || !g_star) {
        return dep->upstream_model;
    }
    size_t pre = (size_t)(g_star - g->name);
    size_t post = strlen(g_star + 1);
    if (requested.n < pre + post) {
        return dep->upstream_model;
    }
    struct lx_str cap = {requested.p + pre, requested.n - pre - post};
    return lx_arena_printf(&req->arena, "%.*s%.*s%s", (int)(up_star - dep->upstream_model),
                           dep->upstream_model, LX_STR_FMT(cap), up_star + 1);
}

/* Parse the body into c->json once, when a translation or a local answer needs the tree. */
static int ensure_json(struct call *c)
{
    if (c->json) {
        return 0;
    }
    c->json = cJSON_ParseWithLength(c->body.p, c->body.n);
    return cJSON_IsObject(c->json) ? 0 : LX_EINVAL;
}

/* ---- deployment choice, rate limits, attempts ---- */

static void set_deployment(struct call *c, const struct lx_deployment *dep)
{
    c->dep = dep;
    c->retry_after[0] = '\0';
    c->upstream_model = resolve_wildcard(c->req, c->rr.group, dep, c->model);
    struct lx_str base = lx_provider_api_base(dep);
    const char *q = base.p ? memchr(base.p, '?', base.n) : NULL;
    c->api_base = q ? (struct lx_str){base.p, (size_t)(q - base.p)} : base;
}

/* enable_pre_call_checks: the prompt's estimated tokens (computed once), -1 when unknown. */
static long prompt_estimate(struct call *c)
{
    if (c->prompt_est == 0) {
        c->prompt_est = -1;
        if (ensure_json(c) == 0) {
            const char *k = c->ep == LX_EP_CHAT          ? "messages"
                            : c->ep == LX_EP_COMPLETIONS ? "prompt"
                                                         : "input";
            c->prompt_est = estimate_tokens(cJSON_GetObjectItemCaseSensitive(c->json, k));
        }
    }
    return c->prompt_est;
}

/* A deployment's context window: model_info.max_input_tokens, else the price table's; -1. */
static long long max_input_tokens(const struct lx_deployment *d)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(d->model_info, "max_input_tokens");
    if (cJSON_IsNumber(m) && m->valuedouble >= 1) {
        return (long long)m->valuedouble;
    }
    struct lx_price p;
    if (lx_price_resolve(lx_prices_builtin(), d, NULL, &p, NULL) && p.max_input_tokens > 0) {
        return p.max_input_tokens;
    }
    return -1;
}

/* With enable_pre_call_checks: the prompt does not fit the deployment's context window. */
static bool too_small(struct call *c, const struct lx_deployment *d)
{
    if (!c->cfg->router.enable_pre_call_checks) {
        return false;
    }
    long long max = max_input_tokens(d);
    return max > 0 && prompt_estimate(c) > max;
}

/*
 * The router's pick among the deployments of the current group that the
 * rate limits do not know to be over their rpm/tpm this minute. When every
 * usable one is full: the router's own pick if allow_full (the admission
 * then refuses with the details), else NULL. NULL with *out_wait_ms set when
 * every deployment is cooling down.
 */
static const struct lx_deployment *pick_deployment(struct call *c, uint64_t *out_wait_ms,
                                                   bool allow_full)
{
    struct lx_limits *lim = c->px->limits;
    /* The loop's cached clock (CLOCK_MONOTONIC, as lx_mono_ms): no clock read per request. */
    c->rr.now_ms = uv_now(c->px->loop);
    size_t saved = c->rr.n_tried;
    const struct lx_deployment *first_full = NULL;
    const struct lx_deployment *d = NULL;
    for (size_t i = 0; i <= c->rr.group->n; i++) {
        d = lx_router_pick(&c->rr, out_wait_ms);
        if (d && too_small(c, d)) {
            lx_router_note_tried(&c->rr, d); /* never sent a prompt it cannot take */
            d = NULL;
            continue;
        }
        if (!d || !lx_limits_deployment_full(lim, d)) {
            break;
        }
        first_full = first_full ? first_full : d;
        lx_router_note_tried(&c->rr, d); /* full ones count as tried for this pick only */
        d = NULL;
    }
    c->rr.n_tried = saved;
    if (d) {
        return d;
    }
    if (first_full) {
        return allow_full ? first_full : NULL;
    }
    return NULL;
}

static void admit(struct call *c);

/* Start the attempt on c->dep: answer locally or call the deployment. */
static void attempt_go(struct call *c)
{
    const struct lx_deployment *dep = c->dep;
    lx_router_note_tried(&c->rr, dep);
    c->attempt_ns = lx_mono_ns();
    lx_router_begin(dep, c->attempt_ns / 1000000u);
    c->attempt_open = true;
    lx_http_on_abort(c->req, on_client_abort, c);
    lx_http_on_drain(c->req, on_client_drain, c);
    if (dep->missing_env) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "Model group '%s' is not usable: environment variable %s is not set on the "
                 "gateway",
                 dep->model_name, dep->missing_env);
        LX_WARN("%s (id=%s)", msg, c->req->id);
        keep_error_msg(c, 500, msg);
        attempt_failed(c, 500, LX_ERRC_SERVER, lx_buf_str(&c->err_body));
        return;
    }
    const struct lx_provider_ops *ops = lx_provider_ops_for(dep->provider.kind);
    bool translating = ops && (ops->translate_response || ops->translate_event || ops->stream_feed);
    if ((c->client || dep->has_mock_response || translating) && ensure_json(c)) {
        call_error(c, 400, NULL, NULL, "Malformed JSON in request body");
        return;
    }
    if (c->client && c->stream && !c->client_state) {
        c->client_state = c->client->stream_new(&c->req->arena, c->json);
        if (!c->client_state) {
            call_error(c, 500, NULL, NULL, "Could not set up stream translation");
            return;
        }
        lx_sse_init(&c->client_sse, SSE_MAX_EVENT_BYTES);
        c->client_sse_init = true;
    }
    if (dep->has_mock_response) {
        attempt_succeeded(c, (lx_mono_ns() - c->attempt_ns) / 1000u, 0);
        answer_mock(c);
        return;
    }
    c->api_key = dep->api_key;
    start_upstream(c);
}

/*
 * enable_pre_call_checks: true when some deployment of the group can take the
 * prompt; otherwise the call moves on as after a context-window error
 * (context_window_fallbacks, else a 400 saying so) and false is returned.
 */
static bool group_fits(struct call *c)
{
    const struct lx_model_group *g = c->rr.group;
    long long largest = -1;
    for (size_t i = 0; i < g->n; i++) {
        const struct lx_deployment *d = g->deployments[i];
        if (c->rr.pinned && d != c->rr.pinned) {
            continue;
        }
        if (!too_small(c, d)) {
            return true;
        }
        largest = LX_MAX(largest, max_input_tokens(d));
    }
    char msg[512];
    snprintf(msg, sizeof(msg),
             "This model's maximum context length is %lld tokens. However, your messages resulted "
             "in about %ld tokens (model group '%s', checked before the call).",
             largest, prompt_estimate(c), g->name);
    LX_INFO("%s (id=%s)", msg, c->req->id);
    keep_error_msg(c, 400, msg);
    c->retry_after[0] = '\0';
    if (next_fallback(c, LX_ERRC_CONTEXT_WINDOW)) {
        attempt(c);
        return false;
    }
    respond_kept_error(c);
    return false;
}

/*
 * One attempt on a deployment of the current group. The first one passes the
 * rate-limit admission; retries and fallbacks belong to the call it admitted.
 */
static void attempt(struct call *c)
{
    if (c->cfg->router.enable_pre_call_checks && !group_fits(c)) {
        return;
    }
    uint64_t wait_ms = 0;
    const struct lx_deployment *dep = pick_deployment(c, &wait_ms, true);
    if (!dep) {
        all_cooling(c, wait_ms);
        return;
    }
    set_deployment(c, dep);
    if (!c->admitted) {
        admit(c);
        return;
    }
    /* A retry or fallback on another deployment counts there and is charged its tokens. */
    lx_limits_req_retarget(c->limits, dep);
    attempt_go(c);
}

static void on_admit_result(struct call *c, int rc)
{
    if (rc == 0) {
        c->admitted = true;
        attempt_go(c);
        return;
    }
    enum lx_limits_kind kind;
    int bad = lx_limits_req_refused(c->limits, &kind);
    const char *scope = lx_limits_req_scope_name(c->limits, bad);
    const struct lx_model_group *g = c->rr.group;
    if (scope && strncmp(scope, "deployment:", 11) == 0) {
        /* This deployment is full this minute; another one of the group may have room. */
        uint64_t wait_ms = 0;
        const struct lx_deployment *next = g->n > 1 ? pick_deployment(c, &wait_ms, false) : NULL;
        if (next && next != c->dep) {
            lx_limits_req_end(c->limits, 0);
            c->limits = NULL;
            set_deployment(c, next);
            admit(c);
            return;
        }
        if (g->n > 1) {
            c->dep = NULL;
            call_error(c, 429, NULL, NULL,
                       "Rate limit exceeded for model group '%s': every deployment is over its "
                       "rpm/tpm limit. Retry in %ds.",
                       g->name, lx_limits_req_retry_after(c->limits));
            return;
        }
    }
    char msg[600];
    lx_limits_req_message(c->limits, msg, sizeof(msg));
    /* Refused before any deployment was called: no deployment headers, no spend record. */
    c->dep = NULL;
    call_error(c, 429, NULL, NULL, "%s", msg);
}

static void on_admitted(void *ud, int result)
{
    struct call *c = ud;
    lx_http_on_abort(c->req, NULL, NULL);
    on_admit_result(c, result);
}

/*
 * Rate-limit admission of the call on its deployment: global and deployment
 * scopes from the config, key, user, team and per-model scopes from the
 * caller's identity (the model as the request named it, as LiteLLM keys
 * model_rpm_limit).
 */
static void admit(struct call *c)
{
    struct lx_limits_req *lr = lx_limits_req_new(c->px->limits);
    lx_limits_req_add_config(lr, c->cfg, c->dep);
    if (c->id && !c->id->is_master) {
        lx_limits_req_add_identity(lr, c->id, c->model.p);
    }
    c->limits = lr;
    int rc = lx_limits_admit(lr, on_admitted, c);
    if (rc == LX_EAGAIN) {
        /* Waiting for Redis: a client that leaves ends the call (and the admission). */
        lx_http_on_abort(c->req, on_client_abort, c);
        return;
    }
    on_admit_result(c, rc);
}

/* ---- entry ---- */

static const char *required_field(enum lx_endpoint ep)
{
    switch (ep) {
    case LX_EP_COMPLETIONS:
        return "prompt";
    case LX_EP_EMBEDDINGS:
        return "input";
    default:
        return "messages";
    }
}

/*
 * The request's own "fallbacks": a list of model names (or of objects with a
 * "model"), into the arena. Returns 0 or LX_EINVAL.
 */
static int parse_req_fallbacks(struct call *c, struct lx_str raw)
{
    cJSON *j = cJSON_ParseWithLength(raw.p, raw.n);
    if (!cJSON_IsArray(j)) {
        cJSON_Delete(j);
        return LX_EINVAL;
    }
    int n = cJSON_GetArraySize(j);
    const char **items = lx_arena_alloc(&c->req->arena, sizeof(*items) * (size_t)(n ? n : 1));
    size_t k = 0;
    const cJSON *it;
    int rc = 0;
    cJSON_ArrayForEach(it, j)
    {
        const cJSON *m = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "model") : it;
        if (!cJSON_IsString(m) || !m->valuestring[0]) {
            rc = LX_EINVAL;
            break;
        }
        items[k++] = lx_arena_strndup(&c->req->arena, m->valuestring, strlen(m->valuestring));
    }
    cJSON_Delete(j);
    c->req_fallbacks = (struct lx_strlist){items, k};
    c->has_req_fallbacks = rc == 0;
    return rc;
}

/* x-litellm-timeout: seconds (a decimal number); -1 when absent or invalid. */
static double header_timeout(const struct lx_http_request *req)
{
    struct lx_str v = lx_str_trim(lx_http_header_get(req, LX_STR("x-litellm-timeout")));
    char tmp[32];
    if (!v.n || v.n >= sizeof(tmp)) {
        return -1;
    }
    memcpy(tmp, v.p, v.n);
    tmp[v.n] = '\0';
    char *end = NULL;
    double t = strtod(tmp, &end);
    return end && *end == '\0' && t > 0 && t < 86400 ? t : -1;
}

static void on_budget_fetched(void *ud);
static void call_begin(struct call *c);

void lx_proxy__llm(struct lx_proxy *px, struct lx_http_request *req, struct lx_identity *id,
                   enum lx_endpoint ep, struct lx_str path_model,
                   const struct lx_client_adapter *client)
{
    struct call *c = lx_calloc(1, sizeof(*c));
    c->px = px;
    c->req = req;
    c->cfg = lx_config_ref(px->cfg);
    c->id = lx_identity_ref(id);
    c->ep = ep;
    c->num_retries = -1;
    c->req_timeout = -1;
    lx_buf_init(&c->up_body, req->body.limit + 4096);
    lx_buf_init(&c->resp, (size_t)(c->cfg->general.max_response_size_mb * 1024.0 * 1024.0));
    lx_buf_init(&c->out, SSE_MAX_EVENT_BYTES * 2);
    lx_buf_init(&c->client_out, SSE_MAX_EVENT_BYTES * 2);
    lx_buf_init(&c->client_body, req->body.limit + 65536);
    lx_buf_init(&c->err_body, 1u << 20);
    lx_buf_init(&c->strip_body, req->body.limit + 4096);
    c->body = lx_buf_str(&req->body);

    if (req->body.len == 0) {
        call_error(c, 400, NULL, NULL, "Request body is empty: expected a JSON object");
        return;
    }
    if (client) {
        struct lx_error err = {0};
        c->client = client;
        int rc = client->translate_request(c->body, &c->client_body, &err);
        if (rc) {
            call_error(c,
                       rc == LX_ETOOBIG  ? 413
                       : rc == LX_EINVAL ? 400
                                         : 500,
                       NULL, NULL, "%s", err.msg);
            return;
        }
        c->body = lx_buf_str(&c->client_body);
    }
    /*
     * One validating pass over the body picks out what routing needs; the
     * cJSON tree is built only when a translation or a local answer needs it.
     */
    const char *field = required_field(ep);
    const struct lx_str keys[] = {
        LX_STR("model"),     LX_STR("stream"),      lx_str_c(field), LX_STR("stream_options"),
        LX_STR("fallbacks"), LX_STR("num_retries"), LX_STR("user")};
    struct lx_str vals[7];
    if (lx_json_find_top_many(c->body, keys, 7, vals)) {
        call_error(c, 400, NULL, NULL,
                   "Malformed JSON in request body: expected a single JSON object");
        return;
    }
    struct lx_str model = path_model;
    char model_buf[LX_MODEL_NAME_MAX + 1];
    if (!model.n) {
        size_t mn = 0;
        int rc = vals[0].p ? lx_json_string_value(vals[0], model_buf, sizeof(model_buf), &mn)
                           : LX_ENOTFOUND;
        if (rc || mn == 0 || memchr(model_buf, '\0', mn)) {
            call_error(c, 400, NULL, "model",
                       rc == LX_ENOTFOUND ? "Missing required parameter: 'model'."
                       : rc == LX_ETOOBIG
                           ? "Invalid 'model': longer than 256 bytes"
                           : "Invalid type for 'model': expected a non-empty string");
            return;
        }
        model = (struct lx_str){model_buf, mn};
    }
    if (!vals[2].p || lx_str_eq_c(vals[2], "null")) {
        call_error(c, 400, NULL, field, "Missing required parameter: '%s'.", field);
        return;
    }
    if (ep == LX_EP_CHAT && vals[2].p[0] != '[') {
        call_error(c, 400, NULL, field, "Invalid type for 'messages': expected an array");
        return;
    }
    struct lx_str sv = vals[1];
    if (sv.p && !lx_str_eq_c(sv, "true") && !lx_str_eq_c(sv, "false") && !lx_str_eq_c(sv, "null")) {
        call_error(c, 400, NULL, "stream", "Invalid type for 'stream': expected a boolean");
        return;
    }
    c->stream = ep != LX_EP_EMBEDDINGS && sv.p && lx_str_eq_c(sv, "true");
    c->stream_options = vals[3];
    if (c->stream && vals[3].p && vals[3].p[0] == '{') {
        struct lx_str iu = LX_STR_NULL;
        c->include_usage =
            lx_json_find_top(vals[3], LX_STR("include_usage"), &iu) == 0 && lx_str_eq_c(iu, "true");
    }
    if (vals[6].p && vals[6].p[0] == '"') {
        /* OpenAI's `user`: the end user the spend record names. */
        char user[LX_MODEL_NAME_MAX + 1];
        size_t un = 0;
        if (lx_json_string_value(vals[6], user, sizeof(user), &un) == 0 && un &&
            !memchr(user, '\0', un)) {
            c->end_user = lx_arena_strndup(&req->arena, user, un);
        }
    }
    /* NUL-terminated copy: the caller's buffer does not outlive an admission waiting for Redis. */
    c->model = (struct lx_str){lx_arena_strndup(&req->arena, model.p, model.n), model.n};

    /* The router's own request keys: read, then removed from what goes upstream. */
    if (vals[4].p || vals[5].p) {
        if (vals[4].p && !lx_str_eq_c(vals[4], "null") && parse_req_fallbacks(c, vals[4])) {
            call_error(c, 400, NULL, "fallbacks",
                       "Invalid 'fallbacks': expected a list of model names");
            return;
        }
        unsigned long long nr;
        if (vals[5].p && !lx_str_eq_c(vals[5], "null")) {
            if (lx_str_to_u64(vals[5], 100, &nr)) {
                call_error(c, 400, NULL, "num_retries",
                           "Invalid 'num_retries': expected an integer from 0 to 100");
                return;
            }
            c->num_retries = (int)nr;
        }
        const struct lx_json_edit edits[] = {
            {LX_STR("fallbacks"), LX_STR_NULL, LX_JSON_REMOVE},
            {LX_STR("num_retries"), LX_STR_NULL, LX_JSON_REMOVE},
        };
        if (lx_json_rewrite(c->body, edits, 2, &c->strip_body)) {
            call_error(c, 413, NULL, NULL, "Request body too large");
            return;
        }
        c->body = lx_buf_str(&c->strip_body);
    }

    const struct lx_model_group *g = lx_config_find_group(c->cfg, model);
    if (!g || g->n == 0) {
        /* model: <model_info.id> targets one deployment. */
        const struct lx_deployment *pin = lx_config_find_deployment(c->cfg, model);
        g = pin ? lx_config_find_group(c->cfg, lx_str_c(pin->model_name)) : NULL;
        c->rr.pinned = g ? pin : NULL;
    }
    if (!c->id->is_master) {
        /* A key may name an alias of a group it may use, or the group itself. */
        char msg[1024];
        const char *type = NULL;
        if (!lx_auth_model_allowed(c->id, model, msg, sizeof(msg), &type) &&
            !(g && lx_auth_model_allowed(c->id, lx_str_c(g->name), NULL, 0, &type))) {
            call_error(c, 401, type, "model", "%s", msg);
            return;
        }
    }
    c->group = g;
    if (c->px->env.budget) {
        /*
         * With Redis, other instances' spend too: one MGET, only when a
         * budget applies, before the check (a counter may also say that an
         * admin reset made this instance's own view stale).
         */
        if (lx_spend_shared_fetch(c->px->env.budget, c->cfg, c->id, on_budget_fetched, c,
                                  &c->budget_fetch) == LX_EAGAIN) {
            lx_http_on_abort(req, on_client_abort, c);
            return;
        }
    }
    call_begin(c);
}

/* The shared budget counters are read (or could not be): check, then go on. */
static void on_budget_fetched(void *ud)
{
    struct call *c = ud;
    c->budget_fetch = NULL;
    lx_http_on_abort(c->req, NULL, NULL);
    call_begin(c);
}

/* Check the budgets, then route the call in its group (NULL: the model is unknown). */
static void call_begin(struct call *c)
{
    struct lx_http_request *req = c->req;
    const struct lx_model_group *g = c->group;
    if (c->px->env.budget) {
        char msg[256];
        if (lx_budget_check(c->px->env.budget, c->cfg, c->id, msg, sizeof(msg)) == LX_EBUDGET) {
            call_error(c, 400, "budget_exceeded", NULL, "%s", msg);
            return;
        }
    }
    if (!g || g->n == 0) {
        call_error(c, 400, NULL, "model",
                   "Invalid model name passed in model=%.*s. Call `/v1/models` to view available "
                   "models for your key.",
                   (int)LX_MIN(c->model.n, 256), c->model.p);
        return;
    }
    c->rr.cfg = c->cfg;
    c->rr.group = g;
    if (c->num_retries < 0) {
        const struct lx_config *cfg = c->cfg;
        c->num_retries = cfg->router.num_retries >= 0    ? cfg->router.num_retries
                         : cfg->litellm.num_retries >= 0 ? cfg->litellm.num_retries
                                                         : -1;
    }
    if (c->num_retries < 0 && g->n == 1 && g->deployments[0]->max_retries >= 0) {
        c->num_retries = g->deployments[0]->max_retries;
    }
    c->req_timeout = header_timeout(req);
    attempt(c);
}
