/*
 * The mock's Anthropic Messages API: POST /v1/messages (plain or streamed)
 * and POST /v1/messages/count_tokens, shaped as docs.anthropic.com documents
 * them ("Messages", "Streaming Messages", "Errors").
 *
 * mock_openai.c parses the directives and handles hang; everything after
 * that happens here, and every error has Anthropic's shape
 * {"type":"error","error":{"type","message"}}. Order of checks: status
 * directive, method, x-api-key (401), anthropic-version, body size (413),
 * JSON, fields; then reset_after / malformed and the answer.
 *
 * Validation is strict on purpose: a top-level field the Messages API does
 * not know is a 400 "<field>: Extra inputs are not permitted", as the real
 * API answers, so end-to-end tests catch a gateway that forwards OpenAI
 * fields (n, frequency_penalty, stream_options, ...) untranslated.
 *
 * A stream is a step function like the OpenAI one (mock.h): message_start,
 * the first content_block_start and a ping leave with the head; then one
 * content_block_delta per step, interval_ms apart; the closing events leave
 * together after the last delta. reset_after and stream_error count deltas
 * of either kind (text_delta and input_json_delta). Memory: the request's
 * strings a stream needs are copied into the one allocation it owns.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/error.h"
#include "mock.h"

#define MAX_ERROR_MSG 256

/* The tool input the mock always "decides" on, and the pieces a stream sends it in. */
#define TOOL_INPUT_JSON "{\"location\":\"Paris\"}"
static const struct lx_str tool_input_pieces[] = {
    LX_STR("{\"location\":"),
    LX_STR(" \"Paris\""),
    LX_STR("}"),
};
#define TOOL_PIECES ((uint32_t)LX_ARRAY_LEN(tool_input_pieces))
#define TOOL_INPUT_WORDS 2 /* words of {"location": "Paris"}, counted as output tokens */

/* Top-level fields of POST /v1/messages (API reference, "Body parameters"). */
static const char *const message_fields[] = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_k",
    "top_p",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    "output_format",
    "output_config",
};

/* Top-level fields of POST /v1/messages/count_tokens. */
static const char *const count_fields[] = {
    "model",         "messages",      "system",      "tools",
    "tool_choice",   "thinking",      "mcp_servers", "context_management",
    "output_format", "output_config",
};

/* ---- errors ---- */

/* Error type by status, per the "Errors" page; other 4xx and 5xx take the generic ones. */
static const char *error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

void lx_mock__anthropic_error(struct lx_mock_conn *c, int status, struct lx_str msg,
                              const struct lx_mock_reply_opts *o)
{
    struct lx_mock_w w = {.b = lx_mock__scratch_body()};
    LX_MOCK_W_LIT(&w, "{\"type\":\"error\",\"error\":{\"type\":");
    lx_mock__w_str(&w, lx_str_c(error_type(status)));
    LX_MOCK_W_LIT(&w, ",\"message\":");
    lx_mock__w_str(&w, msg);
    LX_MOCK_W_LIT(&w, "}}\n");
    if (w.err) {
        return; /* a message from us or a directive; the buffer holds 256 MiB */
    }
    lx_mock__reply(c, status, "application/json", o);
}

static void invalid(struct lx_mock_conn *c, const char *msg, const struct lx_mock_reply_opts *o)
{
    lx_mock__anthropic_error(c, 400, lx_str_c(msg), o);
}

/* ---- request checks ---- */

static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static struct lx_str jstr(const cJSON *j)
{
    return (struct lx_str){j->valuestring, strlen(j->valuestring)};
}

static bool has_header(const struct lx_mock_req *req, struct lx_str name)
{
    for (size_t i = 0; i < req->nhdrs; i++) {
        if (lx_str_case_eq(lx_mock_hdr_name(req, i), name) &&
            lx_str_trim(lx_mock_hdr_value(req, i)).n) {
            return true;
        }
    }
    return false;
}

/* What the checks learned from a valid body. */
struct msg_in {
    struct lx_str model;
    struct lx_str last_user;     /* echo: the last user message's text */
    struct lx_str stop_sequence; /* the first stop_sequences entry; p == NULL: none */
    uint64_t input_tokens;
    bool is_stream;
};

/*
 * Check body as the Messages API would; on failure write the message into
 * msg (cap bytes) and return -1. Messages follow the API's pydantic style,
 * "<field path>: <problem>".
 */
static int check_body(const cJSON *body, bool is_count, struct msg_in *in, char *msg, size_t cap)
{
    const char *const *fields = is_count ? count_fields : message_fields;
    size_t nfields = is_count ? LX_ARRAY_LEN(count_fields) : LX_ARRAY_LEN(message_fields);
    const cJSON *f;
    cJSON_ArrayForEach(f, body)
    {
        bool is_known = false;
        for (size_t i = 0; i < nfields && !is_known; i++) {
            is_known = strcmp(f->string, fields[i]) == 0;
        }
        if (!is_known) {
            snprintf(msg, cap, "%.100s: Extra inputs are not permitted", f->string);
            return -1;
        }
    }
    const cJSON *model = get(body, "model");
    if (!model) {
        snprintf(msg, cap, "model: Field required");
        return -1;
    }
    if (!cJSON_IsString(model)) {
        snprintf(msg, cap, "model: Input should be a valid string");
        return -1;
    }
    in->model = jstr(model);
    if (!is_count) {
        const cJSON *mt = get(body, "max_tokens");
        if (!mt) {
            snprintf(msg, cap, "max_tokens: Field required");
            return -1;
        }
        if (!cJSON_IsNumber(mt) || mt->valuedouble != floor(mt->valuedouble) ||
            fabs(mt->valuedouble) > 9007199254740992.0) {
            snprintf(msg, cap, "max_tokens: Input should be a valid integer");
            return -1;
        }
        if (mt->valuedouble < 1) {
            snprintf(msg, cap, "max_tokens: Input should be greater than or equal to 1");
            return -1;
        }
        const cJSON *stream = get(body, "stream");
        if (stream && !cJSON_IsBool(stream)) {
            snprintf(msg, cap, "stream: Input should be a valid boolean");
            return -1;
        }
        in->is_stream = cJSON_IsTrue(stream);
        const cJSON *stops = get(body, "stop_sequences");
        if (stops && !cJSON_IsArray(stops)) {
            snprintf(msg, cap, "stop_sequences: Input should be a valid list");
            return -1;
        }
        if (stops && cJSON_IsString(stops->child)) {
            in->stop_sequence = jstr(stops->child);
        }
    }
    const cJSON *messages = get(body, "messages");
    if (!messages) {
        snprintf(msg, cap, "messages: Field required");
        return -1;
    }
    if (!cJSON_IsArray(messages)) {
        snprintf(msg, cap, "messages: Input should be a valid list");
        return -1;
    }
    if (!messages->child) {
        snprintf(msg, cap, "messages: at least one message is required");
        return -1;
    }
    uint64_t bytes = 0;
    const cJSON *last_user = NULL;
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        if (!cJSON_IsObject(m)) {
            snprintf(msg, cap, "messages.%zu: Input should be a valid dictionary", i);
            return -1;
        }
        const cJSON *role = get(m, "role");
        if (!role) {
            snprintf(msg, cap, "messages.%zu.role: Field required", i);
            return -1;
        }
        if (cJSON_IsString(role) && strcmp(role->valuestring, "system") == 0) {
            /* The real API's wording for the most common OpenAI-ism. */
            snprintf(msg, cap,
                     "messages: Unexpected role \"system\". The Messages API accepts a top-level "
                     "`system` parameter, not \"system\" as an input message role.");
            return -1;
        }
        bool is_user = cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0;
        if (!is_user && !(cJSON_IsString(role) && strcmp(role->valuestring, "assistant") == 0)) {
            snprintf(msg, cap, "messages.%zu.role: Input should be 'user' or 'assistant'", i);
            return -1;
        }
        const cJSON *content = get(m, "content");
        if (!content) {
            snprintf(msg, cap, "messages.%zu.content: Field required", i);
            return -1;
        }
        if (!cJSON_IsString(content) && !cJSON_IsArray(content)) {
            snprintf(msg, cap, "messages.%zu.content: Input should be a valid list", i);
            return -1;
        }
        bytes += lx_mock__content_bytes(content);
        if (is_user) {
            last_user = content;
        }
        i++;
    }
    const cJSON *system = get(body, "system");
    if (system && !cJSON_IsString(system) && !cJSON_IsArray(system)) {
        snprintf(msg, cap, "system: Input should be a valid list");
        return -1;
    }
    /* The system prompt counts as it would inside an OpenAI messages array. */
    bytes += lx_mock__content_bytes(system);
    in->input_tokens = lx_mock__tokens_for_bytes(bytes);
    in->last_user = lx_mock__content_text(last_user);
    return 0;
}

/* ---- the answer ---- */

/* Everything an answer says, plain or streamed. */
struct answer {
    struct lx_str model;
    struct lx_str text;
    struct lx_str tool; /* p == NULL: no tool_use block */
    struct lx_str stop_reason;
    struct lx_str stop_sequence; /* p == NULL: null */
    struct lx_str error_message; /* p == NULL: "Overloaded" */
    uint64_t input_tokens;
    uint64_t output_tokens;
    int64_t cache_read; /* -1: absent */
    int64_t cache_creation;
    bool has_text; /* a text block; without a tool always, with one only if text is not empty */
};

static void put_usage_in(struct lx_mock_w *w, const struct answer *a)
{
    LX_MOCK_W_LIT(w, "\"input_tokens\":");
    lx_mock__w_u64(w, a->input_tokens);
    if (a->cache_creation >= 0) {
        LX_MOCK_W_LIT(w, ",\"cache_creation_input_tokens\":");
        lx_mock__w_u64(w, (uint64_t)a->cache_creation);
    }
    if (a->cache_read >= 0) {
        LX_MOCK_W_LIT(w, ",\"cache_read_input_tokens\":");
        lx_mock__w_u64(w, (uint64_t)a->cache_read);
    }
}

static void put_stop(struct lx_mock_w *w, const struct answer *a)
{
    LX_MOCK_W_LIT(w, "\"stop_reason\":");
    lx_mock__w_str(w, a->stop_reason);
    LX_MOCK_W_LIT(w, ",\"stop_sequence\":");
    if (a->stop_sequence.p) {
        lx_mock__w_str(w, a->stop_sequence);
    } else {
        LX_MOCK_W_LIT(w, "null");
    }
}

static void answer_plain(struct lx_mock_conn *c, const struct answer *a,
                         const struct lx_mock_reply_opts *o)
{
    char idbuf[48];
    struct lx_mock_w w = {.b = lx_mock__scratch_body()};
    LX_MOCK_W_LIT(&w, "{\"id\":");
    lx_mock__w_str(&w, lx_mock__make_id(idbuf, sizeof(idbuf), "msg_"));
    LX_MOCK_W_LIT(&w, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    lx_mock__w_str(&w, a->model);
    LX_MOCK_W_LIT(&w, ",\"content\":[");
    if (a->has_text) {
        LX_MOCK_W_LIT(&w, "{\"type\":\"text\",\"text\":");
        lx_mock__w_str(&w, a->text);
        LX_MOCK_W_LIT(&w, "}");
    }
    if (a->tool.p) {
        if (a->has_text) {
            LX_MOCK_W_LIT(&w, ",");
        }
        LX_MOCK_W_LIT(&w, "{\"type\":\"tool_use\",\"id\":");
        lx_mock__w_str(&w, lx_mock__make_id(idbuf, sizeof(idbuf), "toolu_"));
        LX_MOCK_W_LIT(&w, ",\"name\":");
        lx_mock__w_str(&w, a->tool);
        LX_MOCK_W_LIT(&w, ",\"input\":" TOOL_INPUT_JSON "}");
    }
    LX_MOCK_W_LIT(&w, "],");
    put_stop(&w, a);
    LX_MOCK_W_LIT(&w, ",\"usage\":{");
    put_usage_in(&w, a);
    LX_MOCK_W_LIT(&w, ",\"output_tokens\":");
    lx_mock__w_u64(&w, a->output_tokens);
    LX_MOCK_W_LIT(&w, "}}\n");
    if (w.err) {
        lx_mock__anthropic_error(c, 500, LX_STR("answer too large"), o);
        return;
    }
    lx_mock__reply(c, 200, "application/json", o);
}

/* ---- streams ---- */

enum stream_phase {
    P_STATUS, /* status line not sent */
    P_HEAD,   /* rest of the head, message_start, the first block start and a ping */
    P_TEXT,   /* text_delta events */
    P_TOOL,   /* input_json_delta events */
    P_FINISH,
};

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
    uint32_t deltas;    /* content_block_delta events sent, text and JSON */
    uint32_t tool_sent; /* JSON pieces sent */
    struct lx_mock_pieces pieces;
    struct lx_str head;
    size_t status_len; /* of head */
    struct lx_str msg_id;
    struct lx_str tool_id;
    char data[];
};

static void stream_free(struct lx_mock_resp *r)
{
    struct stream *s = LX_CONTAINER_OF(r, struct stream, base);
    atomic_fetch_sub_explicit(&s->shared->active_streams, 1, memory_order_relaxed);
    lx_free(s);
}

/* Start "event: <type>\ndata: " in the event scratch buffer. */
static struct lx_mock_w ev_begin(const char *type)
{
    struct lx_mock_w w = {.b = lx_mock__scratch_event()};
    LX_MOCK_W_LIT(&w, "event: ");
    lx_mock__w_raw(&w, type, strlen(type));
    LX_MOCK_W_LIT(&w, "\ndata: ");
    return w;
}

/* End the event and frame it as one HTTP chunk. */
static int ev_end(const struct stream *s, struct lx_mock_w *w, struct lx_buf *out)
{
    LX_MOCK_W_LIT(w, "\n\n");
    return w->err ? w->err : lx_mock__put_chunk(out, lx_buf_str(w->b), s->is_chunked);
}

static int ev_message_start(const struct stream *s, struct lx_buf *out)
{
    struct lx_mock_w w = ev_begin("message_start");
    LX_MOCK_W_LIT(&w, "{\"type\":\"message_start\",\"message\":{\"id\":");
    lx_mock__w_str(&w, s->msg_id);
    LX_MOCK_W_LIT(&w, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    lx_mock__w_str(&w, s->a.model);
    LX_MOCK_W_LIT(&w, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{");
    put_usage_in(&w, &s->a);
    LX_MOCK_W_LIT(&w, ",\"output_tokens\":1}}}");
    return ev_end(s, &w, out);
}

static int ev_block_start(const struct stream *s, struct lx_buf *out, uint32_t index, bool is_tool)
{
    struct lx_mock_w w = ev_begin("content_block_start");
    LX_MOCK_W_LIT(&w, "{\"type\":\"content_block_start\",\"index\":");
    lx_mock__w_u64(&w, index);
    if (is_tool) {
        LX_MOCK_W_LIT(&w, ",\"content_block\":{\"type\":\"tool_use\",\"id\":");
        lx_mock__w_str(&w, s->tool_id);
        LX_MOCK_W_LIT(&w, ",\"name\":");
        lx_mock__w_str(&w, s->a.tool);
        LX_MOCK_W_LIT(&w, ",\"input\":{}}}");
    } else {
        LX_MOCK_W_LIT(&w, ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
    }
    return ev_end(s, &w, out);
}

static int ev_delta(const struct stream *s, struct lx_buf *out, uint32_t index, bool is_json,
                    struct lx_str piece)
{
    struct lx_mock_w w = ev_begin("content_block_delta");
    LX_MOCK_W_LIT(&w, "{\"type\":\"content_block_delta\",\"index\":");
    lx_mock__w_u64(&w, index);
    if (is_json) {
        LX_MOCK_W_LIT(&w, ",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":");
    } else {
        LX_MOCK_W_LIT(&w, ",\"delta\":{\"type\":\"text_delta\",\"text\":");
    }
    lx_mock__w_str(&w, piece);
    LX_MOCK_W_LIT(&w, "}}");
    return ev_end(s, &w, out);
}

static int ev_block_stop(const struct stream *s, struct lx_buf *out, uint32_t index)
{
    struct lx_mock_w w = ev_begin("content_block_stop");
    LX_MOCK_W_LIT(&w, "{\"type\":\"content_block_stop\",\"index\":");
    lx_mock__w_u64(&w, index);
    LX_MOCK_W_LIT(&w, "}");
    return ev_end(s, &w, out);
}

static int ev_simple(const struct stream *s, struct lx_buf *out, const char *type)
{
    struct lx_mock_w w = ev_begin(type);
    LX_MOCK_W_LIT(&w, "{\"type\":");
    lx_mock__w_str(&w, lx_str_c(type));
    LX_MOCK_W_LIT(&w, "}");
    return ev_end(s, &w, out);
}

/* The last block's stop, message_delta, message_stop. */
static int ev_finish(const struct stream *s, struct lx_buf *out)
{
    int rc = ev_block_stop(s, out, s->a.has_text && s->a.tool.p ? 1 : 0);
    if (rc) {
        return rc;
    }
    struct lx_mock_w w = ev_begin("message_delta");
    LX_MOCK_W_LIT(&w, "{\"type\":\"message_delta\",\"delta\":{");
    put_stop(&w, &s->a);
    LX_MOCK_W_LIT(&w, "},\"usage\":{\"output_tokens\":");
    lx_mock__w_u64(&w, s->a.output_tokens);
    LX_MOCK_W_LIT(&w, "}}");
    rc = ev_end(s, &w, out);
    return rc ? rc : ev_simple(s, out, "message_stop");
}

static int end_body(const struct stream *s, struct lx_buf *out)
{
    return s->is_chunked ? lx_buf_append_c(out, "0\r\n\r\n") : 0;
}

/* "Error events" in the streaming docs: an error event, then the stream ends. */
static enum lx_mock_step fail_stream(const struct stream *s, struct lx_buf *out)
{
    struct lx_mock_w w = ev_begin("error");
    LX_MOCK_W_LIT(&w, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":");
    lx_mock__w_str(&w, s->a.error_message.p ? s->a.error_message : LX_STR("Overloaded"));
    LX_MOCK_W_LIT(&w, "}}");
    if (ev_end(s, &w, out) || end_body(s, out)) {
        return LX_MOCK_STEP_RESET;
    }
    return LX_MOCK_STEP_DONE;
}

static enum lx_mock_step after_delta(struct stream *s, struct lx_buf *out, int rc,
                                     uint32_t *out_delay_ms)
{
    s->deltas++;
    if (rc) {
        return LX_MOCK_STEP_RESET;
    }
    if (s->stream_error && s->deltas == 1) {
        return fail_stream(s, out);
    }
    if (s->reset_after >= 0 && (uint64_t)s->reset_after <= s->deltas) {
        return LX_MOCK_STEP_RESET;
    }
    *out_delay_ms = s->interval_ms;
    return LX_MOCK_STEP_AGAIN;
}

static enum lx_mock_step stream_step(struct lx_mock_resp *r, struct lx_buf *out,
                                     uint32_t *out_delay_ms)
{
    struct stream *s = LX_CONTAINER_OF(r, struct stream, base);
    int rc = 0;
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
        rc = lx_buf_append(out, s->head.p + s->status_len, s->head.n - s->status_len);
        if (rc == 0) {
            rc = ev_message_start(s, out);
        }
        if (rc == 0 && s->malformed) {
            struct lx_str bad = LX_STR("event: content_block_delta\ndata: {not json\n\n");
            rc = lx_mock__put_chunk(out, bad, s->is_chunked);
        }
        if (rc == 0) {
            rc = ev_block_start(s, out, 0, !s->a.has_text);
        }
        if (rc == 0) {
            rc = ev_simple(s, out, "ping");
        }
        s->phase = s->a.has_text ? P_TEXT : P_TOOL;
        if (rc || s->reset_after == 0) {
            return LX_MOCK_STEP_RESET;
        }
        *out_delay_ms = s->interval_ms;
        return LX_MOCK_STEP_AGAIN;
    case P_TEXT:
        if (s->pieces.sent < s->pieces.n) {
            rc = ev_delta(s, out, 0, false, lx_mock__pieces_next(&s->pieces));
            return after_delta(s, out, rc, out_delay_ms);
        }
        s->phase = P_TOOL;
        if (s->a.tool.p) {
            /* The text block ends and the tool block starts with its first piece. */
            if (ev_block_stop(s, out, 0) || ev_block_start(s, out, 1, true)) {
                return LX_MOCK_STEP_RESET;
            }
        }
        /* fall through */
    case P_TOOL:
        if (s->a.tool.p && s->tool_sent < TOOL_PIECES) {
            rc = ev_delta(s, out, s->a.has_text ? 1 : 0, true, tool_input_pieces[s->tool_sent]);
            s->tool_sent++;
            return after_delta(s, out, rc, out_delay_ms);
        }
        s->phase = P_FINISH;
        /* fall through */
    case P_FINISH:
        if (s->stream_error) {
            return fail_stream(s, out); /* no delta went out: the error replaces the end */
        }
        if (s->reset_after >= 0) {
            return LX_MOCK_STEP_RESET; /* fewer deltas than reset_after: never finish */
        }
        if (ev_finish(s, out) || end_body(s, out)) {
            return LX_MOCK_STEP_RESET;
        }
        return LX_MOCK_STEP_DONE;
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
    /* HTTP/1.0 has no chunked coding: the body ends when we close. */
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
    char msg_id[48];
    char tool_id[48];
    struct lx_str mid = lx_mock__make_id(msg_id, sizeof(msg_id), "msg_");
    struct lx_str tid = lx_mock__make_id(tool_id, sizeof(tool_id), "toolu_");
    size_t extra = hb->len + mid.n + tid.n + a->model.n + a->text.n + a->tool.n + a->stop_reason.n +
                   a->stop_sequence.n + a->error_message.n;
    struct stream *s = lx_try_malloc(sizeof(*s) + extra);
    if (!s) {
        return LX_ENOMEM;
    }
    memset(s, 0, sizeof(*s));
    char *q = s->data;
    s->head = stash(&q, lx_buf_str(hb));
    s->msg_id = stash(&q, mid);
    s->tool_id = stash(&q, tid);
    s->a = *a;
    s->a.model = stash(&q, a->model);
    s->a.text = stash(&q, a->text);
    s->a.tool = stash(&q, a->tool);
    s->a.stop_reason = stash(&q, a->stop_reason);
    s->a.stop_sequence = stash(&q, a->stop_sequence);
    s->a.error_message = stash(&q, a->error_message);
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
    lx_mock__pieces_init(&s->pieces, s->a.has_text ? s->a.text : LX_STR(""), d->chunks);
    s->base.step = stream_step;
    s->base.free_fn = stream_free;
    s->base.first_delay_ms = d->latency_ms;
    s->base.is_close = is_close;
    atomic_fetch_add_explicit(&shared->active_streams, 1, memory_order_relaxed);
    lx_mock__conn_queue(c, &s->base);
    return 0;
}

/* ---- dispatch ---- */

void lx_mock__anthropic(struct lx_mock_conn *c, const struct lx_mock_req *req,
                        enum lx_mock_route route, const struct lx_mock_directives *d,
                        const struct lx_mock_reply_opts *o)
{
    bool is_count = route == LX_MOCK_ROUTE_COUNT_TOKENS_V1 || route == LX_MOCK_ROUTE_COUNT_TOKENS;
    char msg[MAX_ERROR_MSG];
    if (d->status) {
        struct lx_str m = d->error_message;
        if (!m.p) {
            int n = snprintf(msg, sizeof(msg), "mock error %u", d->status);
            m = (struct lx_str){msg, n > 0 ? (size_t)n : 0};
        }
        lx_mock__anthropic_error(c, (int)d->status, m, o);
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        lx_mock__anthropic_error(c, 405, LX_STR("Method not allowed; use POST"), o);
        return;
    }
    if (!has_header(req, LX_STR("x-api-key"))) {
        lx_mock__anthropic_error(c, 401, LX_STR("x-api-key header is required"), o);
        return;
    }
    if (!has_header(req, LX_STR("anthropic-version"))) {
        invalid(c, "anthropic-version: header is required", o);
        return;
    }
    if (req->is_too_big) {
        lx_mock__anthropic_error(c, 413, LX_STR("Request exceeds the maximum allowed size"), o);
        return;
    }
    cJSON *body = NULL;
    int rc = lx_mock__parse_body(req, &body);
    if (rc == LX_ETOOBIG) {
        lx_mock__anthropic_error(c, 413, LX_STR("Request body too large to parse"), o);
        return;
    }
    if (rc) {
        invalid(c, "The request body is not valid JSON.", o);
        return;
    }
    struct msg_in in = {.model = LX_STR_NULL};
    if (check_body(body, is_count, &in, msg, sizeof(msg)) != 0) {
        invalid(c, msg, o);
        return;
    }
    uint64_t input_tokens = d->usage_prompt >= 0 ? (uint64_t)d->usage_prompt : in.input_tokens;
    if (d->reset_after >= 0 && (is_count || !in.is_stream)) {
        lx_mock__conn_reset(c);
        return;
    }
    if (is_count) {
        if (d->malformed) {
            struct lx_buf *b = lx_mock__scratch_body();
            if (lx_buf_append_c(b, "{\"input_tokens\": ") == 0) {
                lx_mock__reply(c, 200, "application/json", o);
            }
            return;
        }
        struct lx_mock_w w = {.b = lx_mock__scratch_body()};
        LX_MOCK_W_LIT(&w, "{\"input_tokens\":");
        lx_mock__w_u64(&w, input_tokens);
        LX_MOCK_W_LIT(&w, "}\n");
        if (w.err == 0) {
            lx_mock__reply(c, 200, "application/json", o);
        }
        return;
    }
    if (d->malformed && !in.is_stream) {
        struct lx_buf *b = lx_mock__scratch_body();
        if (lx_buf_append_c(b, "{\"id\": \"msg_broken\", \"type\": \"message\", \"content\": [") ==
            0) {
            lx_mock__reply(c, 200, "application/json", o);
        }
        return;
    }
    struct answer a = {
        .model = in.model,
        .text = d->echo ? in.last_user : d->content,
        .tool = d->tool,
        .error_message = d->error_message,
        .input_tokens = input_tokens,
        .cache_read = d->cache_read,
        .cache_creation = d->cache_creation,
    };
    a.has_text = !a.tool.p || a.text.n;
    if (d->stop_reason.p) {
        a.stop_reason = d->stop_reason;
    } else {
        a.stop_reason = a.tool.p ? LX_STR("tool_use") : LX_STR("end_turn");
    }
    if (lx_str_eq_c(a.stop_reason, "stop_sequence")) {
        a.stop_sequence = in.stop_sequence; /* the request's first, if it has one */
    }
    if (d->usage_completion >= 0) {
        a.output_tokens = (uint64_t)d->usage_completion;
    } else {
        a.output_tokens =
            (a.has_text ? lx_mock__count_words(a.text) : 0) + (a.tool.p ? TOOL_INPUT_WORDS : 0);
    }
    if (!in.is_stream) {
        answer_plain(c, &a, o);
        return;
    }
    if (start_stream(c, req, d, &a, o->is_close) != 0) {
        lx_mock__anthropic_error(c, 500, LX_STR("mock out of memory"), o);
    }
}
