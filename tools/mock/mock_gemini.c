/*
 * The mock's Google Gemini API (AI Studio): POST
 * /v1beta/models/{model}:generateContent and :streamGenerateContent
 * (?alt=sse), shaped as https://ai.google.dev/api/generate-content documents
 * them. Every error has Google's shape
 * {"error":{"code":N,"message":M,"status":S}}.
 *
 * mock_openai.c parses the directives and handles hang; everything after
 * that happens here. Order of checks: status directive, method (405), API
 * key (x-goog-api-key header or ?key=, else 403 PERMISSION_DENIED as the
 * real API answers), body size (413), JSON, fields (400 INVALID_ARGUMENT,
 * with the API's wording); then reset_after / malformed and the answer.
 * Like the Anthropic routes, unknown top-level and generationConfig fields
 * are rejected so end-to-end tests catch OpenAI fields forwarded
 * untranslated.
 *
 * A stream sends one GenerateContentResponse per content piece (SSE,
 * "data: {json}\r\n\r\n" as the API frames it); the last one carries
 * finishReason, the functionCall part of the tool directive and the final
 * usageMetadata. The first event leaves with the head, each further one
 * interval_ms later.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/error.h"
#include "mock.h"

#define MAX_ERROR_MSG 256
#define TOOL_ARGS_JSON "{\"location\":\"Paris\"}"
#define TOOL_ARGS_WORDS 2 /* counted as candidate tokens, as the Anthropic mock does */

/* Top-level fields of GenerateContentRequest. */
static const char *const request_fields[] = {
    "contents",         "tools",         "toolConfig", "safetySettings", "systemInstruction",
    "generationConfig", "cachedContent",
};

/* Fields of GenerationConfig. */
static const char *const generation_fields[] = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "mediaResolution",
};

static const char *const route_prefixes[] = {"/v1beta/models/", "/v1/models/"};

/* ---- routes and errors ---- */

/* The model of a generateContent path, and whether it streams; false when path is not one. */
static bool parse_path(struct lx_str path, struct lx_str *model, bool *is_stream)
{
    for (size_t i = 0; i < LX_ARRAY_LEN(route_prefixes); i++) {
        struct lx_str pre = lx_str_c(route_prefixes[i]);
        if (!lx_str_has_prefix(path, pre)) {
            continue;
        }
        struct lx_str rest = lx_str_sub(path, pre.n);
        const char *colon = memchr(rest.p, ':', rest.n);
        if (!colon || colon == rest.p || memchr(rest.p, '/', (size_t)(colon - rest.p))) {
            return false;
        }
        struct lx_str method = lx_str_sub(rest, (size_t)(colon - rest.p) + 1);
        *model = (struct lx_str){rest.p, (size_t)(colon - rest.p)};
        if (lx_str_eq_c(method, "generateContent")) {
            *is_stream = false;
            return true;
        }
        if (lx_str_eq_c(method, "streamGenerateContent")) {
            *is_stream = true;
            return true;
        }
        return false;
    }
    return false;
}

bool lx_mock__gemini_route(struct lx_str path)
{
    struct lx_str model;
    bool is_stream;
    return parse_path(path, &model, &is_stream);
}

/* google.rpc status by HTTP status (https://ai.google.dev/gemini-api/docs/troubleshooting). */
static const char *rpc_status(int status)
{
    switch (status) {
    case 400:
        return "INVALID_ARGUMENT";
    case 401:
        return "UNAUTHENTICATED";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "NOT_FOUND";
    case 409:
        return "ABORTED";
    case 429:
        return "RESOURCE_EXHAUSTED";
    case 499:
        return "CANCELLED";
    case 501:
        return "UNIMPLEMENTED";
    case 503:
        return "UNAVAILABLE";
    case 504:
        return "DEADLINE_EXCEEDED";
    default:
        return status >= 500 ? "INTERNAL" : "INVALID_ARGUMENT";
    }
}

static void put_error_obj(struct lx_mock_w *w, int status, struct lx_str msg)
{
    LX_MOCK_W_LIT(w, "{\"error\":{\"code\":");
    lx_mock__w_u64(w, (uint64_t)status);
    LX_MOCK_W_LIT(w, ",\"message\":");
    lx_mock__w_str(w, msg);
    LX_MOCK_W_LIT(w, ",\"status\":");
    lx_mock__w_str(w, lx_str_c(rpc_status(status)));
    LX_MOCK_W_LIT(w, "}}");
}

static void gemini_error(struct lx_mock_conn *c, int status, struct lx_str msg,
                         const struct lx_mock_reply_opts *o)
{
    struct lx_mock_w w = {.b = lx_mock__scratch_body()};
    put_error_obj(&w, status, msg);
    LX_MOCK_W_LIT(&w, "\n");
    if (!w.err) {
        lx_mock__reply(c, status, "application/json; charset=UTF-8", o);
    }
}

static void invalid(struct lx_mock_conn *c, const char *msg, const struct lx_mock_reply_opts *o)
{
    gemini_error(c, 400, lx_str_c(msg), o);
}

/* ---- request checks ---- */

static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* The value of query parameter name in url, or a NULL slice. */
static struct lx_str query_param(struct lx_str url, const char *name)
{
    const char *q = memchr(url.p, '?', url.n);
    if (!q) {
        return LX_STR_NULL;
    }
    struct lx_str rest = lx_str_sub(url, (size_t)(q - url.p) + 1);
    size_t nl = strlen(name);
    while (rest.n) {
        const char *amp = memchr(rest.p, '&', rest.n);
        struct lx_str item = {rest.p, amp ? (size_t)(amp - rest.p) : rest.n};
        if (item.n > nl && !memcmp(item.p, name, nl) && item.p[nl] == '=') {
            return lx_str_sub(item, nl + 1);
        }
        rest = amp ? lx_str_sub(rest, item.n + 1) : lx_str_sub(rest, rest.n);
    }
    return LX_STR_NULL;
}

static bool has_key(const struct lx_mock_req *req)
{
    for (size_t i = 0; i < req->nhdrs; i++) {
        if (lx_str_case_eq(lx_mock_hdr_name(req, i), LX_STR("x-goog-api-key")) &&
            lx_str_trim(lx_mock_hdr_value(req, i)).n) {
            return true;
        }
    }
    return query_param(req->url, "key").n > 0;
}

static const char *first_unknown(const cJSON *obj, const char *const *fields, size_t n)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, obj)
    {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++) {
            known = strcmp(f->string, fields[i]) == 0;
        }
        if (!known) {
            return f->string;
        }
    }
    return NULL;
}

struct gem_in {
    uint64_t prompt_tokens;
    struct lx_str last_user; /* echo */
};

/* Check the body as the API would; on failure write the message into msg and return -1. */
static int check_body(const cJSON *body, struct gem_in *in, char *msg, size_t cap)
{
    const char *bad = first_unknown(body, request_fields, LX_ARRAY_LEN(request_fields));
    if (bad) {
        snprintf(msg, cap,
                 "Invalid JSON payload received. Unknown name \"%.100s\": Cannot find "
                 "field.",
                 bad);
        return -1;
    }
    const cJSON *gc = get(body, "generationConfig");
    if (gc && !cJSON_IsObject(gc)) {
        snprintf(msg, cap,
                 "Invalid JSON payload received. Unknown name \"generationConfig\": "
                 "Proto field is not repeating, cannot start list.");
        return -1;
    }
    bad = first_unknown(gc, generation_fields, LX_ARRAY_LEN(generation_fields));
    if (bad) {
        snprintf(msg, cap,
                 "Invalid JSON payload received. Unknown name \"%.100s\" at 'generation_config': "
                 "Cannot find field.",
                 bad);
        return -1;
    }
    const cJSON *contents = get(body, "contents");
    if (!cJSON_IsArray(contents) || !contents->child) {
        snprintf(msg, cap, "* GenerateContentRequest.contents: contents is not specified");
        return -1;
    }
    uint64_t bytes = 0;
    const cJSON *last_user = NULL;
    size_t i = 0;
    const cJSON *ct;
    cJSON_ArrayForEach(ct, contents)
    {
        const cJSON *role = get(ct, "role");
        const cJSON *parts = get(ct, "parts");
        if (!cJSON_IsObject(ct) || !cJSON_IsArray(parts) || !parts->child) {
            snprintf(msg, cap,
                     "* GenerateContentRequest.contents[%zu].parts: contents.parts must not be "
                     "empty.",
                     i);
            return -1;
        }
        if (role && !(cJSON_IsString(role) && (!strcmp(role->valuestring, "user") ||
                                               !strcmp(role->valuestring, "model")))) {
            snprintf(msg, cap, "Please use a valid role: user, model.");
            return -1;
        }
        const cJSON *p;
        cJSON_ArrayForEach(p, parts)
        {
            if (!cJSON_IsObject(p) || !p->child) {
                snprintf(msg, cap,
                         "* GenerateContentRequest.contents[%zu].parts: a part must have data", i);
                return -1;
            }
        }
        bytes += lx_mock__content_bytes(parts);
        if (!role || !strcmp(role->valuestring, "user")) {
            last_user = parts;
        }
        i++;
    }
    const cJSON *si = get(body, "systemInstruction");
    if (si && !cJSON_IsArray(get(si, "parts"))) {
        snprintf(msg, cap, "* GenerateContentRequest.system_instruction.parts: must be a list");
        return -1;
    }
    bytes += lx_mock__content_bytes(get(si, "parts"));
    in->prompt_tokens = lx_mock__tokens_for_bytes(bytes);
    in->last_user = lx_mock__content_text(last_user);
    return 0;
}

/* ---- the answer ---- */

struct answer {
    struct lx_str model;
    struct lx_str text;
    struct lx_str tool; /* p == NULL: no functionCall part */
    struct lx_str finish;
    struct lx_str error_message;
    struct lx_str response_id;
    uint64_t prompt_tokens;
    uint64_t candidate_tokens;
};

static void put_usage(struct lx_mock_w *w, const struct answer *a, bool is_final)
{
    LX_MOCK_W_LIT(w, "\"usageMetadata\":{\"promptTokenCount\":");
    lx_mock__w_u64(w, a->prompt_tokens);
    if (is_final) {
        LX_MOCK_W_LIT(w, ",\"candidatesTokenCount\":");
        lx_mock__w_u64(w, a->candidate_tokens);
    }
    LX_MOCK_W_LIT(w, ",\"totalTokenCount\":");
    lx_mock__w_u64(w, a->prompt_tokens + (is_final ? a->candidate_tokens : 0));
    LX_MOCK_W_LIT(w, "}");
}

/* One GenerateContentResponse with text (omitted when empty and a tool follows). */
static void put_response(struct lx_mock_w *w, const struct answer *a, struct lx_str text,
                         bool is_final)
{
    LX_MOCK_W_LIT(w, "{\"candidates\":[{\"content\":{\"parts\":[");
    bool has_text = text.n || !(is_final && a->tool.p);
    if (has_text) {
        LX_MOCK_W_LIT(w, "{\"text\":");
        lx_mock__w_str(w, text);
        LX_MOCK_W_LIT(w, "}");
    }
    if (is_final && a->tool.p) {
        if (has_text) {
            LX_MOCK_W_LIT(w, ",");
        }
        LX_MOCK_W_LIT(w, "{\"functionCall\":{\"name\":");
        lx_mock__w_str(w, a->tool);
        LX_MOCK_W_LIT(w, ",\"args\":" TOOL_ARGS_JSON "}}");
    }
    LX_MOCK_W_LIT(w, "],\"role\":\"model\"}");
    if (is_final) {
        LX_MOCK_W_LIT(w, ",\"finishReason\":");
        lx_mock__w_str(w, a->finish);
    }
    LX_MOCK_W_LIT(w, ",\"index\":0}],");
    put_usage(w, a, is_final);
    LX_MOCK_W_LIT(w, ",\"modelVersion\":");
    lx_mock__w_str(w, a->model);
    LX_MOCK_W_LIT(w, ",\"responseId\":");
    lx_mock__w_str(w, a->response_id);
    LX_MOCK_W_LIT(w, "}");
}

/* ---- streams ---- */

enum stream_phase { P_STATUS, P_HEAD, P_EVENTS };

struct stream {
    struct lx_mock_resp base;
    struct lx_mock_shared *shared;
    struct answer a; /* strings point into data */
    enum stream_phase phase;
    bool is_chunked;
    bool malformed;
    bool stream_error;
    int64_t reset_after;
    uint32_t slow_ms;
    uint32_t interval_ms;
    uint32_t sent; /* events sent */
    uint32_t total;
    struct lx_mock_pieces pieces;
    struct lx_str head;
    size_t status_len;
    char data[];
};

static void stream_free(struct lx_mock_resp *r)
{
    struct stream *s = LX_CONTAINER_OF(r, struct stream, base);
    atomic_fetch_sub_explicit(&s->shared->active_streams, 1, memory_order_relaxed);
    lx_free(s);
}

static int put_sse(const struct stream *s, struct lx_buf *out, struct lx_mock_w *w)
{
    LX_MOCK_W_LIT(w, "\r\n\r\n");
    return w->err ? w->err : lx_mock__put_chunk(out, lx_buf_str(w->b), s->is_chunked);
}

static int ev_piece(struct stream *s, struct lx_buf *out)
{
    struct lx_str piece =
        s->pieces.sent < s->pieces.n ? lx_mock__pieces_next(&s->pieces) : LX_STR("");
    bool is_final = s->sent + 1 == s->total;
    struct lx_mock_w w = {.b = lx_mock__scratch_event()};
    LX_MOCK_W_LIT(&w, "data: ");
    put_response(&w, &s->a, piece, is_final);
    return put_sse(s, out, &w);
}

static int end_body(const struct stream *s, struct lx_buf *out)
{
    return s->is_chunked ? lx_buf_append_c(out, "0\r\n\r\n") : 0;
}

static enum lx_mock_step fail_stream(const struct stream *s, struct lx_buf *out)
{
    struct lx_mock_w w = {.b = lx_mock__scratch_event()};
    LX_MOCK_W_LIT(&w, "data: ");
    put_error_obj(&w, 500, s->a.error_message.p ? s->a.error_message : LX_STR("mock stream error"));
    if (put_sse(s, out, &w) || end_body(s, out)) {
        return LX_MOCK_STEP_RESET;
    }
    return LX_MOCK_STEP_DONE;
}

static enum lx_mock_step stream_step(struct lx_mock_resp *r, struct lx_buf *out,
                                     uint32_t *out_delay_ms)
{
    struct stream *s = LX_CONTAINER_OF(r, struct stream, base);
    switch (s->phase) {
    case P_STATUS:
        if (s->slow_ms) {
            if (lx_buf_append(out, s->head.p, s->status_len) != 0) {
                return LX_MOCK_STEP_RESET;
            }
            s->phase = P_HEAD;
            *out_delay_ms = s->slow_ms;
            return LX_MOCK_STEP_AGAIN;
        }
        s->status_len = 0;
        /* fall through */
    case P_HEAD:
        if (lx_buf_append(out, s->head.p + s->status_len, s->head.n - s->status_len) != 0) {
            return LX_MOCK_STEP_RESET;
        }
        s->phase = P_EVENTS;
        if (s->reset_after == 0) {
            return LX_MOCK_STEP_RESET;
        }
        /* The first event goes out with the head. */
        /* fall through */
    case P_EVENTS:
        if (ev_piece(s, out)) {
            return LX_MOCK_STEP_RESET;
        }
        s->sent++;
        if (s->sent == 1 && s->malformed &&
            lx_mock__put_chunk(out, LX_STR("data: {not json\r\n\r\n"), s->is_chunked)) {
            return LX_MOCK_STEP_RESET;
        }
        if (s->stream_error) {
            return fail_stream(s, out);
        }
        if (s->reset_after >= 0 && (uint64_t)s->reset_after <= s->sent) {
            return LX_MOCK_STEP_RESET;
        }
        if (s->sent == s->total) {
            return end_body(s, out) ? LX_MOCK_STEP_RESET : LX_MOCK_STEP_DONE;
        }
        *out_delay_ms = s->interval_ms;
        return LX_MOCK_STEP_AGAIN;
    }
    return LX_MOCK_STEP_RESET;
}

static struct lx_str stash(char **q, struct lx_str v)
{
    if (!v.p) {
        return LX_STR_NULL;
    }
    if (v.n) {
        memcpy(*q, v.p, v.n);
    }
    struct lx_str r = {*q, v.n};
    *q += v.n;
    return r;
}

static int start_stream(struct lx_mock_conn *c, const struct lx_mock_req *req,
                        const struct lx_mock_directives *d, const struct answer *a, bool is_close)
{
    struct lx_mock_shared *shared = lx_mock__conn_worker(c)->shared;
    bool is_chunked = req->is_http11;
    if (!is_chunked) {
        is_close = true;
    }
    struct lx_buf *hb = lx_mock__scratch_body();
    struct lx_mock_w w = {.b = hb};
    lx_mock__put_stream_head(&w, is_chunked, is_close);
    if (w.err) {
        return LX_ENOMEM;
    }
    size_t extra = hb->len + a->model.n + a->text.n + a->tool.n + a->finish.n + a->error_message.n +
                   a->response_id.n;
    struct stream *s = lx_try_malloc(sizeof(*s) + extra);
    if (!s) {
        return LX_ENOMEM;
    }
    memset(s, 0, sizeof(*s));
    char *q = s->data;
    s->head = stash(&q, lx_buf_str(hb));
    s->a = *a;
    s->a.model = stash(&q, a->model);
    s->a.text = stash(&q, a->text);
    s->a.tool = stash(&q, a->tool);
    s->a.finish = stash(&q, a->finish);
    s->a.error_message = stash(&q, a->error_message);
    s->a.response_id = stash(&q, a->response_id);
    lx_buf_reset(hb);
    const char *eol = memchr(s->head.p, '\n', s->head.n);
    s->status_len = eol ? (size_t)(eol - s->head.p) + 1 : s->head.n;
    s->shared = shared;
    s->phase = P_STATUS;
    s->is_chunked = is_chunked;
    s->malformed = d->malformed;
    s->stream_error = d->stream_error;
    s->reset_after = d->reset_after;
    s->slow_ms = d->slow_headers_ms;
    s->interval_ms = d->interval_ms;
    lx_mock__pieces_init(&s->pieces, s->a.text, d->chunks);
    s->total = s->pieces.n ? s->pieces.n : 1;
    s->base.step = stream_step;
    s->base.free_fn = stream_free;
    s->base.first_delay_ms = d->latency_ms;
    s->base.is_close = is_close;
    atomic_fetch_add_explicit(&shared->active_streams, 1, memory_order_relaxed);
    lx_mock__conn_queue(c, &s->base);
    return 0;
}

/* ---- dispatch ---- */

void lx_mock__gemini(struct lx_mock_conn *c, const struct lx_mock_req *req, struct lx_str path,
                     const struct lx_mock_directives *d, const struct lx_mock_reply_opts *o)
{
    char msg[MAX_ERROR_MSG];
    struct lx_str model = LX_STR_NULL;
    bool is_stream = false;
    (void)parse_path(path, &model, &is_stream);
    if (d->status) {
        struct lx_str m = d->error_message;
        if (!m.p) {
            int n = snprintf(msg, sizeof(msg), "mock error %u", d->status);
            m = (struct lx_str){msg, n > 0 ? (size_t)n : 0};
        }
        gemini_error(c, (int)d->status, m, o);
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        gemini_error(c, 405, LX_STR("Method not allowed; use POST"), o);
        return;
    }
    if (!has_key(req)) {
        gemini_error(c, 403,
                     LX_STR("Method doesn't allow unregistered callers (callers without "
                            "established identity). Please use API Key or other form of API "
                            "consumer identity to call this API."),
                     o);
        return;
    }
    if (req->is_too_big) {
        gemini_error(c, 413, LX_STR("Request payload size exceeds the limit"), o);
        return;
    }
    cJSON *body = NULL;
    int rc = lx_mock__parse_body(req, &body);
    if (rc == LX_ETOOBIG) {
        gemini_error(c, 413, LX_STR("Request payload too large to parse"), o);
        return;
    }
    if (rc) {
        invalid(c, "Invalid JSON payload received. Unexpected token.", o);
        return;
    }
    struct gem_in in = {0};
    if (check_body(body, &in, msg, sizeof(msg)) != 0) {
        invalid(c, msg, o);
        return;
    }
    if (is_stream && !lx_str_eq_c(query_param(req->url, "alt"), "sse")) {
        /* Without alt=sse the API streams one JSON array; the mock speaks only SSE. */
        invalid(c, "llmux-mock: streamGenerateContent needs ?alt=sse", o);
        return;
    }
    if (d->reset_after >= 0 && !is_stream) {
        lx_mock__conn_reset(c);
        return;
    }
    if (d->malformed && !is_stream) {
        struct lx_buf *b = lx_mock__scratch_body();
        if (lx_buf_append_c(b, "{\"candidates\": [{\"content\": {\"parts\": [") == 0) {
            lx_mock__reply(c, 200, "application/json; charset=UTF-8", o);
        }
        return;
    }
    char idbuf[48];
    struct answer a = {
        .model = model,
        .text = d->echo ? in.last_user : d->content,
        .tool = d->tool,
        .finish = d->stop_reason.p ? d->stop_reason : LX_STR("STOP"),
        .error_message = d->error_message,
        .response_id = lx_mock__make_id(idbuf, sizeof(idbuf), ""),
        .prompt_tokens = d->usage_prompt >= 0 ? (uint64_t)d->usage_prompt : in.prompt_tokens,
    };
    a.candidate_tokens = d->usage_completion >= 0
                             ? (uint64_t)d->usage_completion
                             : lx_mock__count_words(a.text) + (a.tool.p ? TOOL_ARGS_WORDS : 0);
    if (is_stream) {
        if (start_stream(c, req, d, &a, o->is_close) != 0) {
            gemini_error(c, 500, LX_STR("mock out of memory"), o);
        }
        return;
    }
    struct lx_mock_w w = {.b = lx_mock__scratch_body()};
    put_response(&w, &a, a.text, true);
    LX_MOCK_W_LIT(&w, "\n");
    if (w.err) {
        gemini_error(c, 500, LX_STR("answer too large"), o);
        return;
    }
    lx_mock__reply(c, 200, "application/json; charset=UTF-8", o);
}
