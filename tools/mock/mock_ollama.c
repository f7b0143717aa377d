/*
 * The mock's Ollama chat API: POST /api/chat, shaped as
 * https://github.com/ollama/ollama/blob/main/docs/api.md ("Generate a chat
 * completion") documents it. Errors are Ollama's {"error":"..."}.
 *
 * mock_openai.c parses the directives and handles hang; everything after
 * that happens here. Order of checks: status directive, method (405), body
 * size (413), JSON (400), fields (400: model required, messages a list of
 * objects whose content is a string, as Ollama's Go decoder demands, stream
 * a boolean, options an object); then reset_after / malformed and the
 * answer.
 *
 * Like Ollama, the answer streams unless the body says "stream": false: as
 * newline-delimited JSON (application/x-ndjson, chunked), one line per
 * content piece, a line with message.tool_calls for the tool directive, and
 * a last line with done:true, done_reason and the counts. The first line
 * leaves with the head, each further one interval_ms later; the done line
 * goes with the last piece.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/time.h"
#include "mock.h"

#define MAX_ERROR_MSG 256
#define TOOL_ARGS_JSON "{\"location\":\"Paris\"}"
#define TOOL_ARGS_WORDS 2

bool lx_mock__ollama_route(struct lx_str path)
{
    return lx_str_eq_c(path, "/api/chat");
}

static void ollama_error(struct lx_mock_conn *c, int status, struct lx_str msg,
                         const struct lx_mock_reply_opts *o)
{
    struct lx_mock_w w = {.b = lx_mock__scratch_body()};
    LX_MOCK_W_LIT(&w, "{\"error\":");
    lx_mock__w_str(&w, msg);
    LX_MOCK_W_LIT(&w, "}\n");
    if (!w.err) {
        lx_mock__reply(c, status, "application/json; charset=utf-8", o);
    }
}

static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

struct oll_in {
    struct lx_str model;
    struct lx_str last_user;
    uint64_t prompt_tokens;
    bool is_stream;
};

static int check_body(const cJSON *body, struct oll_in *in, char *msg, size_t cap)
{
    const cJSON *model = get(body, "model");
    if (!cJSON_IsString(model) || !model->valuestring[0]) {
        snprintf(msg, cap, "model is required");
        return -1;
    }
    in->model = lx_str_c(model->valuestring);
    const cJSON *stream = get(body, "stream");
    if (stream && !cJSON_IsBool(stream)) {
        snprintf(msg, cap,
                 "json: cannot unmarshal into Go struct field ChatRequest.stream of "
                 "type bool");
        return -1;
    }
    in->is_stream = !cJSON_IsFalse(stream); /* Ollama streams by default */
    const cJSON *options = get(body, "options");
    if (options && !cJSON_IsObject(options)) {
        snprintf(msg, cap,
                 "json: cannot unmarshal into Go struct field ChatRequest.options of "
                 "type map[string]interface {}");
        return -1;
    }
    const cJSON *messages = get(body, "messages");
    if (messages && !cJSON_IsArray(messages)) {
        snprintf(msg, cap,
                 "json: cannot unmarshal into Go struct field ChatRequest.messages of "
                 "type []api.Message");
        return -1;
    }
    uint64_t bytes = 0;
    const cJSON *last_user = NULL;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *role = get(m, "role");
        const cJSON *content = get(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            snprintf(msg, cap, "json: cannot unmarshal into Go value of type api.Message");
            return -1;
        }
        if (content && !cJSON_IsString(content)) {
            snprintf(msg, cap,
                     "json: cannot unmarshal %s into Go struct field "
                     "Message.messages.content of type string",
                     cJSON_IsArray(content) ? "array" : "value");
            return -1;
        }
        const cJSON *images = get(m, "images");
        if (images && !cJSON_IsArray(images)) {
            snprintf(msg, cap, "json: cannot unmarshal into Go struct field Message.images");
            return -1;
        }
        bytes += lx_mock__content_bytes(content);
        if (!strcmp(role->valuestring, "user")) {
            last_user = content;
        }
    }
    in->prompt_tokens = lx_mock__tokens_for_bytes(bytes);
    in->last_user = lx_mock__content_text(last_user);
    return 0;
}

/* ---- the answer ---- */

struct answer {
    struct lx_str model;
    struct lx_str text;
    struct lx_str tool;
    struct lx_str done_reason;
    struct lx_str error_message;
    uint64_t prompt_tokens;
    uint64_t eval_tokens;
    char created_at[40];
};

static void put_created(struct lx_mock_w *w, const struct answer *a)
{
    LX_MOCK_W_LIT(w, "{\"model\":");
    lx_mock__w_str(w, a->model);
    LX_MOCK_W_LIT(w, ",\"created_at\":");
    lx_mock__w_str(w, lx_str_c(a->created_at));
}

static void put_tool_calls(struct lx_mock_w *w, const struct answer *a)
{
    LX_MOCK_W_LIT(w, ",\"tool_calls\":[{\"function\":{\"name\":");
    lx_mock__w_str(w, a->tool);
    LX_MOCK_W_LIT(w, ",\"arguments\":" TOOL_ARGS_JSON "}}]");
}

/* The counters of the done line, after done_reason. */
static void put_done(struct lx_mock_w *w, const struct answer *a)
{
    LX_MOCK_W_LIT(w, ",\"done_reason\":");
    lx_mock__w_str(w, a->done_reason);
    LX_MOCK_W_LIT(w, ",\"done\":true,\"total_duration\":5191566416,\"load_duration\":2154458,"
                     "\"prompt_eval_count\":");
    lx_mock__w_u64(w, a->prompt_tokens);
    LX_MOCK_W_LIT(w, ",\"prompt_eval_duration\":383809000,\"eval_count\":");
    lx_mock__w_u64(w, a->eval_tokens);
    LX_MOCK_W_LIT(w, ",\"eval_duration\":4799921000}");
}

/* ---- streams ---- */

enum stream_phase { P_STATUS, P_HEAD, P_LINES };

struct stream {
    struct lx_mock_resp base;
    struct lx_mock_shared *shared;
    struct answer a;
    enum stream_phase phase;
    bool is_chunked;
    bool malformed;
    bool stream_error;
    int64_t reset_after;
    uint32_t slow_ms;
    uint32_t interval_ms;
    uint32_t sent;  /* content lines sent (the tool line included) */
    uint32_t total; /* content lines to send */
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

static int put_line(const struct stream *s, struct lx_buf *out, struct lx_mock_w *w)
{
    LX_MOCK_W_LIT(w, "\n");
    return w->err ? w->err : lx_mock__put_chunk(out, lx_buf_str(w->b), s->is_chunked);
}

/* The next content line: a piece, or the tool call after the pieces. */
static int line_content(struct stream *s, struct lx_buf *out)
{
    struct lx_mock_w w = {.b = lx_mock__scratch_event()};
    put_created(&w, &s->a);
    LX_MOCK_W_LIT(&w, ",\"message\":{\"role\":\"assistant\",\"content\":");
    if (s->pieces.sent < s->pieces.n) {
        lx_mock__w_str(&w, lx_mock__pieces_next(&s->pieces));
    } else {
        LX_MOCK_W_LIT(&w, "\"\"");
        if (s->a.tool.p) {
            put_tool_calls(&w, &s->a);
        }
    }
    LX_MOCK_W_LIT(&w, "},\"done\":false}");
    return put_line(s, out, &w);
}

static int line_done(struct stream *s, struct lx_buf *out)
{
    struct lx_mock_w w = {.b = lx_mock__scratch_event()};
    put_created(&w, &s->a);
    LX_MOCK_W_LIT(&w, ",\"message\":{\"role\":\"assistant\",\"content\":\"\"}");
    put_done(&w, &s->a);
    return put_line(s, out, &w);
}

static int end_body(const struct stream *s, struct lx_buf *out)
{
    return s->is_chunked ? lx_buf_append_c(out, "0\r\n\r\n") : 0;
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
        s->phase = P_LINES;
        if (s->reset_after == 0) {
            return LX_MOCK_STEP_RESET;
        }
        /* fall through */
    case P_LINES:
        if (s->sent < s->total) {
            if (line_content(s, out)) {
                return LX_MOCK_STEP_RESET;
            }
            s->sent++;
            if (s->sent == 1 && s->malformed &&
                lx_mock__put_chunk(out, LX_STR("{not json\n"), s->is_chunked)) {
                return LX_MOCK_STEP_RESET;
            }
            if (s->stream_error) {
                struct lx_mock_w w = {.b = lx_mock__scratch_event()};
                LX_MOCK_W_LIT(&w, "{\"error\":");
                lx_mock__w_str(&w, s->a.error_message.p ? s->a.error_message
                                                        : LX_STR("mock stream error"));
                LX_MOCK_W_LIT(&w, "}");
                if (put_line(s, out, &w) || end_body(s, out)) {
                    return LX_MOCK_STEP_RESET;
                }
                return LX_MOCK_STEP_DONE;
            }
            if (s->reset_after >= 0 && (uint64_t)s->reset_after <= s->sent) {
                return LX_MOCK_STEP_RESET;
            }
            if (s->sent < s->total) {
                *out_delay_ms = s->interval_ms;
                return LX_MOCK_STEP_AGAIN;
            }
        }
        if (s->reset_after >= 0) {
            return LX_MOCK_STEP_RESET; /* fewer lines than reset_after: never finish */
        }
        if (line_done(s, out) || end_body(s, out)) {
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
    bool is_chunked = req->is_http11;
    if (!is_chunked) {
        is_close = true;
    }
    struct lx_buf *hb = lx_mock__scratch_body();
    struct lx_mock_w w = {.b = hb};
    LX_MOCK_W_LIT(&w, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson");
    if (is_close) {
        LX_MOCK_W_LIT(&w, "\r\nConnection: close");
    }
    if (is_chunked) {
        LX_MOCK_W_LIT(&w, "\r\nTransfer-Encoding: chunked");
    }
    LX_MOCK_W_LIT(&w, "\r\n\r\n");
    if (w.err) {
        return LX_ENOMEM;
    }
    size_t extra =
        hb->len + a->model.n + a->text.n + a->tool.n + a->done_reason.n + a->error_message.n;
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
    s->a.done_reason = stash(&q, a->done_reason);
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
    lx_mock__pieces_init(&s->pieces, s->a.text, d->chunks);
    s->total = s->pieces.n + (s->a.tool.p ? 1 : 0);
    s->base.step = stream_step;
    s->base.free_fn = stream_free;
    s->base.first_delay_ms = d->latency_ms;
    s->base.is_close = is_close;
    atomic_fetch_add_explicit(&shared->active_streams, 1, memory_order_relaxed);
    lx_mock__conn_queue(c, &s->base);
    return 0;
}

/* ---- dispatch ---- */

void lx_mock__ollama(struct lx_mock_conn *c, const struct lx_mock_req *req,
                     const struct lx_mock_directives *d, const struct lx_mock_reply_opts *o)
{
    char msg[MAX_ERROR_MSG];
    if (d->status) {
        struct lx_str m = d->error_message;
        if (!m.p) {
            int n = snprintf(msg, sizeof(msg), "mock error %u", d->status);
            m = (struct lx_str){msg, n > 0 ? (size_t)n : 0};
        }
        ollama_error(c, (int)d->status, m, o);
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        ollama_error(c, 405, LX_STR("405 method not allowed"), o);
        return;
    }
    if (req->is_too_big) {
        ollama_error(c, 413, LX_STR("request body too large"), o);
        return;
    }
    cJSON *body = NULL;
    int rc = lx_mock__parse_body(req, &body);
    if (rc == LX_ETOOBIG) {
        ollama_error(c, 413, LX_STR("request body too large to parse"), o);
        return;
    }
    if (rc) {
        ollama_error(c, 400, LX_STR("invalid character in JSON body"), o);
        return;
    }
    struct oll_in in = {0};
    if (check_body(body, &in, msg, sizeof(msg)) != 0) {
        ollama_error(c, 400, lx_str_c(msg), o);
        return;
    }
    if (d->reset_after >= 0 && !in.is_stream) {
        lx_mock__conn_reset(c);
        return;
    }
    if (d->malformed && !in.is_stream) {
        struct lx_buf *b = lx_mock__scratch_body();
        if (lx_buf_append_c(b, "{\"model\": \"broken\", \"message\": {") == 0) {
            lx_mock__reply(c, 200, "application/json; charset=utf-8", o);
        }
        return;
    }
    struct answer a = {
        .model = in.model,
        .text = d->echo ? in.last_user : d->content,
        .tool = d->tool,
        .done_reason = d->stop_reason.p ? d->stop_reason : LX_STR("stop"),
        .error_message = d->error_message,
        .prompt_tokens = d->usage_prompt >= 0 ? (uint64_t)d->usage_prompt : in.prompt_tokens,
    };
    a.eval_tokens = d->usage_completion >= 0
                        ? (uint64_t)d->usage_completion
                        : lx_mock__count_words(a.text) + (a.tool.p ? TOOL_ARGS_WORDS : 0);
    time_t now = (time_t)lx_wall_s();
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(a.created_at, sizeof(a.created_at), "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
    if (in.is_stream) {
        if (start_stream(c, req, d, &a, o->is_close) != 0) {
            ollama_error(c, 500, LX_STR("mock out of memory"), o);
        }
        return;
    }
    struct lx_mock_w w = {.b = lx_mock__scratch_body()};
    put_created(&w, &a);
    LX_MOCK_W_LIT(&w, ",\"message\":{\"role\":\"assistant\",\"content\":");
    lx_mock__w_str(&w, a.text);
    if (a.tool.p) {
        put_tool_calls(&w, &a);
    }
    LX_MOCK_W_LIT(&w, "}");
    put_done(&w, &a);
    LX_MOCK_W_LIT(&w, "\n");
    if (w.err) {
        ollama_error(c, 500, LX_STR("answer too large"), o);
        return;
    }
    lx_mock__reply(c, 200, "application/json; charset=utf-8", o);
}
