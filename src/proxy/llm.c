/*
 * The LLM endpoints: /chat/completions, /completions, /embeddings.
 *
 * A call is checked (JSON, model, required fields), mapped to a model group
 * and a deployment, and then either answered locally (mock_response) or sent
 * upstream through the deployment's provider. Non-streamed answers are
 * buffered (capped by max_response_size_mb) so the status and headers can
 * reflect the whole answer; streamed answers are parsed event by event and
 * relayed as they come, and the client's response starts only with the
 * first event, so nothing reaches the client before the upstream has
 * actually answered.
 *
 * Ownership: a struct call is heap-allocated and ends in exactly one of two
 * places: call_finish() after the upstream transfer completed (it answers the
 * client), or on_client_abort() when the client went away first (it cancels
 * the transfer). The request must not be touched after the call that
 * completes its response, so the call frees its own state before that.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "auth/auth.h"
#include "core/alloc.h"
#include "core/rand.h"
#include "core/time.h"
#include "http/sse.h"
#include "json/json.h"
#include "log/log.h"
#include "proxy/client.h"
#include "proxy/proxy_int.h"
#include "router/router.h"
#include "spend/cost.h"
#include "spend/usage.h"

#define SSE_MAX_EVENT_BYTES (8u << 20)
#define LX_MODEL_NAME_MAX 256

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
    bool recorded;          /* the spend record is journaled */
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
    }
}

/*
 * Stream translation states live in the request arena: release them while
 * the request still exists, before the call that completes the response.
 */
static void call_release_streams(struct call *c)
{
    call_settle(c);
    if (c->stream_state && c->ops->stream_free) {
        c->ops->stream_free(c->stream_state);
    }
    c->stream_state = NULL;
    if (c->client_state && c->client->stream_free) {
        c->client->stream_free(c->client_state);
    }
    c->client_state = NULL;
}

static void call_free(struct call *c)
{
    call_release_streams(c);
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

#define CALL_MAX_HEADERS 12

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
    if (c->retry_after[0]) {
        h[n++] = (struct lx_http_header){LX_STR("retry-after"), lx_str_c(c->retry_after)};
    }
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
    LX_DEBUG("client left; upstream call for '%s' cancelled (id=%s)", c->dep->model_name, req->id);
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

/* End a started stream with an error event the OpenAI SDKs raise on. */
static void stream_fail(struct call *c, int status, const char *msg)
{
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
    call_error(c, status, NULL, NULL, "%s", msg);
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
    struct lx_http_request *req = c->req;
    lx_http_on_abort(req, NULL, NULL);
    call_record(c, true);
    call_free(c);
    lx_http_stream_end(req);
}

static void relay_error(struct call *c)
{
    scrub_key(&c->resp, c->api_key);
    int status = c->up_status >= 400 && c->up_status <= 599 ? c->up_status : 502;
    if (c->ops->translate_error) {
        struct lx_buf out;
        lx_buf_init(&out, 1u << 20);
        if (c->ops->translate_error(&c->pc, lx_buf_str(&c->resp), &status, &out) == 0) {
            LX_WARN("upstream error: model_group=%s deployment=%s api_base=%.*s status=%d id=%s",
                    c->dep->model_name, c->dep->id, LX_STR_FMT(c->api_base), c->up_status,
                    c->req->id);
            call_respond(c, status, lx_buf_str(&out));
            lx_buf_fini(&out);
            return;
        }
        lx_buf_fini(&out);
    }
    cJSON *j = cJSON_ParseWithLength(c->resp.data ? c->resp.data : "", c->resp.len);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    LX_WARN("upstream error: model_group=%s deployment=%s api_base=%.*s status=%d id=%s",
            c->dep->model_name, c->dep->id, LX_STR_FMT(c->api_base), c->up_status, c->req->id);
    if (cJSON_IsObject(e)) {
        /*
         * OpenAI-shaped: keep message, type and param; the code becomes the
         * status as a string, as LiteLLM reports it.
         */
        char code[16];
        snprintf(code, sizeof(code), "%d", status);
        cJSON *cs = cJSON_CreateString(code);
        char *out = NULL;
        if (cs) {
            if (cJSON_GetObjectItemCaseSensitive(e, "code")) {
                cJSON_ReplaceItemInObjectCaseSensitive(e, "code", cs);
            } else {
                cJSON_AddItemToObject(e, "code", cs);
            }
            out = cJSON_PrintUnformatted(j);
        }
        cJSON_Delete(j);
        if (out) {
            call_respond(c, status, lx_str_c(out));
            cJSON_free(out);
            return;
        }
        call_error(c, status, NULL, NULL, "Upstream returned HTTP %d for model group '%s'",
                   c->up_status, c->dep->model_name);
        return;
    }
    cJSON_Delete(j);
    call_error(c, status, NULL, NULL, "Upstream returned HTTP %d for model group '%s'",
               c->up_status, c->dep->model_name);
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
        fail(c, 502, "Upstream response exceeds max_response_size_mb (model group '%s')",
             c->dep->model_name);
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
        call_error(c, 501, "server_error", NULL,
                   "Provider '%s' (model group '%s') is not supported by this llmux build",
                   dep->provider.name, dep->model_name);
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
        call_error(c, status, NULL, NULL, "%s", err.msg);
        return;
    }
    const struct lx_config *cfg = c->cfg;
    double timeout = dep->timeout > 0          ? dep->timeout
                     : cfg->router.timeout > 0 ? cfg->router.timeout
                                               : cfg->litellm.request_timeout;
    double stream_timeout = dep->stream_timeout > 0          ? dep->stream_timeout
                            : cfg->router.stream_timeout > 0 ? cfg->router.stream_timeout
                                                             : timeout;
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
        call_error(c, 502, NULL, NULL, "%s", err.msg);
        return;
    }
    lx_http_on_abort(c->req, on_client_abort, c);
    lx_http_on_drain(c->req, on_client_drain, c);
}

/* ---- entry ---- */

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
    lx_buf_init(&c->up_body, req->body.limit + 4096);
    lx_buf_init(&c->resp, (size_t)(c->cfg->general.max_response_size_mb * 1024.0 * 1024.0));
    lx_buf_init(&c->out, SSE_MAX_EVENT_BYTES * 2);
    lx_buf_init(&c->client_out, SSE_MAX_EVENT_BYTES * 2);
    lx_buf_init(&c->client_body, req->body.limit + 65536);
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
    const struct lx_str keys[] = {LX_STR("model"), LX_STR("stream"), lx_str_c(field),
                                  LX_STR("stream_options")};
    struct lx_str vals[4];
    if (lx_json_find_top_many(c->body, keys, 4, vals)) {
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

    const struct lx_model_group *g = lx_config_find_group(c->cfg, model);
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
    if (!g || g->n == 0) {
        call_error(c, 400, NULL, "model",
                   "Invalid model name passed in model=%.*s. Call `/v1/models` to view available "
                   "models for your key.",
                   (int)LX_MIN(model.n, 256), model.p);
        return;
    }
    c->dep = lx_router_pick(g);
    c->upstream_model = resolve_wildcard(req, g, c->dep, model);
    struct lx_str base = lx_provider_api_base(c->dep);
    const char *q = base.p ? memchr(base.p, '?', base.n) : NULL;
    c->api_base = q ? (struct lx_str){base.p, (size_t)(q - base.p)} : base;
    if (c->dep->missing_env) {
        call_error(c, 500, NULL, NULL,
                   "Model group '%s' is not usable: environment variable %s is not set on the "
                   "gateway",
                   c->dep->model_name, c->dep->missing_env);
        return;
    }
    const struct lx_provider_ops *ops = lx_provider_ops_for(c->dep->provider.kind);
    bool translating = ops && (ops->translate_response || ops->translate_event || ops->stream_feed);
    if (c->client || c->dep->has_mock_response || translating) {
        c->json = cJSON_ParseWithLength(c->body.p, c->body.n);
        if (!cJSON_IsObject(c->json)) {
            call_error(c, 400, NULL, NULL, "Malformed JSON in request body");
            return;
        }
    }
    if (c->client && c->stream) {
        c->client_state = c->client->stream_new(&req->arena, c->json);
        if (!c->client_state) {
            call_error(c, 500, NULL, NULL, "Could not set up stream translation");
            return;
        }
        lx_sse_init(&c->client_sse, SSE_MAX_EVENT_BYTES);
        c->client_sse_init = true;
    }
    if (c->dep->has_mock_response) {
        answer_mock(c);
        return;
    }
    c->api_key = c->dep->api_key;
    start_upstream(c);
}
