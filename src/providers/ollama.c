/*
 * Ollama's chat API (https://github.com/ollama/ollama/blob/main/docs/api.md,
 * "Generate a chat completion") behind OpenAI's chat completions.
 *
 * Both LiteLLM prefixes, ollama/ and ollama_chat/, use POST {api_base}/api/chat
 * (LiteLLM sends ollama/ to /api/generate; /api/chat serves the same models,
 * keeps the roles and supports tools, so one path is enough). A key, when
 * configured (Ollama behind a proxy, ollama.com), goes in Authorization.
 *
 * Request: {model, messages, stream (always explicit: Ollama streams by
 * default), tools (OpenAI's function format, which Ollama accepts as is;
 * omitted with tool_choice "none"), format ("json" for json_object, the
 * schema for json_schema), options {temperature, top_p, top_k, num_predict,
 * stop, seed, presence_penalty, frequency_penalty}, keep_alive}. A message
 * keeps its role (developer becomes system), its content as one string
 * (text parts concatenated), images from base64 data URLs (Ollama cannot
 * fetch URLs: other URLs are a 400), assistant tool_calls as
 * {"function":{"name","arguments": <object>}} and, for a tool message,
 * tool_name from the assistant call it answers. n > 1 is a 400.
 *
 * Response: {model, created_at, message:{role, content, thinking?,
 * tool_calls?}, done, done_reason, prompt_eval_count, eval_count} becomes a
 * chat.completion: tool calls get ids "call_<24 hex>" and their arguments
 * as a JSON string, finish_reason is "tool_calls" when there are any,
 * "length" for done_reason "length", else "stop".
 *
 * Stream: newline-delimited JSON, not SSE, so the pipeline hands raw bytes
 * to stream_feed. A partial line is kept across calls (capped at
 * OLL_MAX_LINE_BYTES: LX_ETOOBIG); each complete line is one object: the
 * first is preceded by the role chunk; message.content and message.thinking
 * become deltas, message.tool_calls complete tool_call deltas; the line
 * with done:true gives the finish chunk, the usage chunk (only when
 * stream_options.include_usage is true) and [DONE]; {"error": "..."} becomes
 * an OpenAI error event. Both end the stream: later bytes are ignored.
 * stream_end reports truncation (non-zero) when the body ended inside a
 * line or before done:true.
 *
 * Errors: {"error":"model 'x' not found"} keeps the HTTP status; the type
 * follows the status and `code` is the status as a string.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/rand.h"
#include "core/time.h"
#include "http/sse.h"
#include "json/json.h"
#include "json/writer.h"
#include "providers/provider.h"
#include "providers/provider_util.h"

/* Longest model name accepted from upstream. */
#define OLL_MAX_NAME 255
/* Cap on one NDJSON line of a stream. */
#define OLL_MAX_LINE_BYTES (8u << 20)
/* Cap on one translated stream chunk. */
#define OLL_MAX_CHUNK_BYTES (64u << 20)
/* Tool calls of one assistant message searched for a tool message's name. */
#define OLL_MAX_CALL_SCAN 4096

/* ---- shared helpers ---- */

/* A token count: absent or null is 0; anything but a number in [0, 2^53] is malformed (-1). */
static void write_usage(struct lx_jw *w, long long prompt, long long completion)
{
    lx_jw_key(w, "usage");
    lx_jw_open(w, '{');
    lx_jw_kint(w, "prompt_tokens", prompt);
    lx_jw_kint(w, "completion_tokens", completion);
    lx_jw_kint(w, "total_tokens", prompt + completion);
    lx_jw_close(w, '}');
}

/* Ollama done_reason -> OpenAI finish_reason. */
LX_TESTABLE const char *lx_ollama_finish_reason(struct lx_str done_reason, bool has_tool_calls);
LX_TESTABLE const char *lx_ollama_finish_reason(struct lx_str r, bool has_tool_calls)
{
    if (has_tool_calls) {
        return "tool_calls";
    }
    return lx_str_eq_c(r, "length") ? "length" : "stop"; /* stop, load, unload, null */
}

/* A tool call's arguments as a JSON string in tmp: an object printed, a string as is. */
static int args_json(const cJSON *fn, struct lx_buf *tmp)
{
    const cJSON *args = lx_json_get(fn, "arguments");
    lx_buf_reset(tmp);
    if (cJSON_IsString(args)) {
        return lx_buf_append_str(tmp, lx_json_str_of(args));
    }
    if (!cJSON_IsObject(args)) {
        return lx_buf_append_c(tmp, "{}");
    }
    char *s = cJSON_PrintUnformatted(args);
    if (!s) {
        return LX_ENOMEM;
    }
    int rc = lx_buf_append_c(tmp, s);
    cJSON_free(s);
    return rc;
}

/* Check message.tool_calls: NULL or an array of {function:{name, arguments?}}. */
static int check_tool_calls(const cJSON *calls)
{
    if (!calls || cJSON_IsNull(calls)) {
        return 0;
    }
    if (!cJSON_IsArray(calls)) {
        return -1;
    }
    const cJSON *tc;
    cJSON_ArrayForEach(tc, calls)
    {
        const cJSON *fn = lx_json_get(tc, "function");
        const cJSON *args = lx_json_get(fn, "arguments");
        if (!lx_json_str_of(lx_json_get(fn, "name")).p ||
            (args && !cJSON_IsNull(args) && !cJSON_IsObject(args) && !cJSON_IsString(args))) {
            return -1;
        }
    }
    return 0;
}

/* ---- request ---- */

struct req {
    const struct lx_provider_call *call;
    struct lx_jw w;
    struct lx_error *err;
    struct lx_buf text;      /* a message's content being joined */
    const cJSON *last_calls; /* tool_calls of the latest assistant message */
    int call_cursor;
};

static int req_fail(struct req *r, int code, const char *fmt, ...) LX_PRINTF(3, 4);

static int req_fail(struct req *r, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = lx_error_vset(r->err, code, fmt, ap);
    va_end(ap);
    return rc;
}

static int buf_fail(struct req *r, int rc)
{
    return rc == LX_ETOOBIG ? req_fail(r, rc, "Request body too large")
                            : req_fail(r, rc, "Out of memory");
}

/* The base64 payload of a data: URL; NULL slice when url is not one. */
static struct lx_str data_url_payload(struct lx_str url)
{
    if (!lx_str_has_prefix(url, LX_STR("data:"))) {
        return LX_STR_NULL;
    }
    const char *comma = memchr(url.p, ',', url.n);
    if (!comma) {
        return LX_STR_NULL;
    }
    size_t head = (size_t)(comma - url.p);
    if (head < 7 || memcmp(comma - 7, ";base64", 7) != 0) {
        return LX_STR_NULL;
    }
    return lx_str_sub(url, head + 1);
}

/* Write "content" (and "images" when the parts hold any) of one message. */
static int put_content(struct req *r, const char *where, const cJSON *content)
{
    struct lx_jw *w = &r->w;
    if (!content || cJSON_IsNull(content)) {
        lx_jw_kstr(w, "content", LX_STR(""));
        return 0;
    }
    if (cJSON_IsString(content)) {
        lx_jw_kstr(w, "content", lx_json_str_of(content));
        return 0;
    }
    if (!cJSON_IsArray(content)) {
        return req_fail(r, LX_EINVAL, "%s: content must be a string or an array of parts", where);
    }
    lx_buf_reset(&r->text);
    size_t n_images = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        struct lx_str type = lx_json_str_of(lx_json_get(part, "type"));
        if (lx_str_eq_c(type, "text")) {
            const cJSON *tx = lx_json_get(part, "text");
            if (!cJSON_IsString(tx)) {
                return req_fail(r, LX_EINVAL, "%s: a text part needs a string 'text'", where);
            }
            int rc = lx_buf_append_str(&r->text, lx_json_str_of(tx));
            if (rc) {
                return buf_fail(r, rc);
            }
        } else if (lx_str_eq_c(type, "image_url")) {
            const cJSON *iu = lx_json_get(part, "image_url");
            const cJSON *u = cJSON_IsObject(iu) ? lx_json_get(iu, "url") : iu;
            if (!cJSON_IsString(u)) {
                return req_fail(r, LX_EINVAL, "%s: an image_url part needs image_url.url", where);
            }
            if (!data_url_payload(lx_json_str_of(u)).p) {
                return req_fail(r, LX_EINVAL, "%s: Ollama takes images only as base64 data: URLs",
                                where);
            }
            n_images++;
        } else if (lx_str_eq_c(type, "refusal") || lx_str_eq_c(type, "thinking")) {
            continue;
        } else if (!type.p) {
            return req_fail(r, LX_EINVAL, "%s: a content part needs a string 'type'", where);
        } else {
            return req_fail(r, LX_EINVAL, "%s: content part type '%.*s' is not supported by Ollama",
                            where, (int)LX_MIN(type.n, 64), type.p);
        }
    }
    lx_jw_kstr(w, "content", lx_buf_str(&r->text));
    if (n_images) {
        lx_jw_key(w, "images");
        lx_jw_open(w, '[');
        cJSON_ArrayForEach(part, content)
        {
            if (lx_str_eq_c(lx_json_str_of(lx_json_get(part, "type")), "image_url")) {
                const cJSON *iu = lx_json_get(part, "image_url");
                const cJSON *u = cJSON_IsObject(iu) ? lx_json_get(iu, "url") : iu;
                lx_jw_str(w, data_url_payload(lx_json_str_of(u)));
            }
        }
        lx_jw_close(w, ']');
    }
    return 0;
}

static int put_tool_calls(struct req *r, const char *where, const cJSON *calls)
{
    struct lx_jw *w = &r->w;
    if (!cJSON_IsArray(calls)) {
        return req_fail(r, LX_EINVAL, "%s: tool_calls must be an array", where);
    }
    r->last_calls = calls;
    r->call_cursor = 0;
    lx_jw_key(w, "tool_calls");
    lx_jw_open(w, '[');
    const cJSON *tc;
    cJSON_ArrayForEach(tc, calls)
    {
        const cJSON *fn = lx_json_get(tc, "function");
        struct lx_str name = lx_json_str_of(lx_json_get(fn, "name"));
        if (!name.p) {
            return req_fail(r, LX_EINVAL, "%s: a tool call needs function.name", where);
        }
        const cJSON *args = lx_json_get(fn, "arguments");
        cJSON *parsed = NULL;
        if (cJSON_IsString(args)) {
            struct lx_str a = lx_str_trim(lx_json_str_of(args));
            if (a.n) {
                parsed = cJSON_ParseWithLength(a.p, a.n);
                struct lx_str unused;
                if (!parsed && lx_json_find_top(a, LX_STR(""), &unused) != LX_EINVAL) {
                    return req_fail(r, LX_ENOMEM, "Out of memory");
                }
                if (!cJSON_IsObject(parsed)) {
                    cJSON_Delete(parsed);
                    return req_fail(r, LX_EINVAL,
                                    "%s: function.arguments must be a JSON object in a string",
                                    where);
                }
            }
            args = parsed;
        } else if (args && !cJSON_IsNull(args) && !cJSON_IsObject(args)) {
            return req_fail(r, LX_EINVAL, "%s: function.arguments must be a JSON string", where);
        }
        lx_jw_open(w, '{');
        lx_jw_key(w, "function");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "name", name);
        lx_jw_key(w, "arguments");
        if (cJSON_IsObject(args)) {
            lx_jw_cjson(w, args);
        } else {
            lx_jw_lit(w, "{}");
        }
        lx_jw_close(w, '}');
        lx_jw_close(w, '}');
        cJSON_Delete(parsed);
    }
    lx_jw_close(w, ']');
    return 0;
}

/* The function name of the assistant tool call a tool message answers, or a NULL slice. */
static struct lx_str tool_name_for(struct req *r, const cJSON *msg)
{
    struct lx_str name = lx_json_str_of(lx_json_get(msg, "name"));
    struct lx_str id = lx_json_str_of(lx_json_get(msg, "tool_call_id"));
    const cJSON *calls = r->last_calls;
    if (name.p || !id.p || !calls) {
        return name;
    }
    const cJSON *tc = cJSON_GetArrayItem(calls, r->call_cursor);
    if (lx_str_eq(lx_json_str_of(lx_json_get(tc, "id")), id)) {
        r->call_cursor++;
        return lx_json_str_of(lx_json_get(lx_json_get(tc, "function"), "name"));
    }
    int i = 0;
    cJSON_ArrayForEach(tc, calls)
    {
        if (i >= OLL_MAX_CALL_SCAN) {
            break;
        }
        if (lx_str_eq(lx_json_str_of(lx_json_get(tc, "id")), id)) {
            r->call_cursor = i + 1;
            return lx_json_str_of(lx_json_get(lx_json_get(tc, "function"), "name"));
        }
        i++;
    }
    return LX_STR_NULL;
}

static int put_messages(struct req *r, const cJSON *messages)
{
    struct lx_jw *w = &r->w;
    lx_jw_key(w, "messages");
    lx_jw_open(w, '[');
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        char where[48];
        snprintf(where, sizeof(where), "messages[%zu]", i++);
        if (!cJSON_IsObject(m)) {
            return req_fail(r, LX_EINVAL, "%s: a message must be an object", where);
        }
        struct lx_str role = lx_json_str_of(lx_json_get(m, "role"));
        const char *out_role = lx_str_eq_c(role, "system") || lx_str_eq_c(role, "developer")
                                   ? "system"
                               : lx_str_eq_c(role, "user")      ? "user"
                               : lx_str_eq_c(role, "assistant") ? "assistant"
                               : lx_str_eq_c(role, "tool")      ? "tool"
                                                                : NULL;
        if (!role.p) {
            return req_fail(r, LX_EINVAL, "%s: a message needs a string 'role'", where);
        }
        if (!out_role) {
            return req_fail(r, LX_EINVAL, "%s: role '%.*s' is not supported by Ollama", where,
                            (int)LX_MIN(role.n, 64), role.p);
        }
        const cJSON *content = lx_json_get(m, "content");
        if (!strcmp(out_role, "user") && !content) {
            return req_fail(r, LX_EINVAL, "%s: a user message needs content", where);
        }
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "role", lx_str_c(out_role));
        int rc = put_content(r, where, content);
        if (rc) {
            return rc;
        }
        const cJSON *calls = lx_json_get(m, "tool_calls");
        if (!strcmp(out_role, "assistant") && calls && !cJSON_IsNull(calls)) {
            rc = put_tool_calls(r, where, calls);
            if (rc) {
                return rc;
            }
        }
        if (!strcmp(out_role, "tool")) {
            struct lx_str name = tool_name_for(r, m);
            if (name.p) {
                lx_jw_kstr(w, "tool_name", name);
            }
        }
        lx_jw_close(w, '}');
    }
    lx_jw_close(w, ']');
    return 0;
}

/* A positive integer parameter; 0 when absent, -1 when invalid. */
static long long int_param(const cJSON *v)
{
    if (!v) {
        return 0;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1) || v->valuedouble > 1e9 ||
        floor(v->valuedouble) != v->valuedouble) {
        return -1;
    }
    return (long long)v->valuedouble;
}

struct opts {
    struct req *r;
    bool opened;
};

static void opt_key(struct opts *o, const char *key)
{
    struct lx_jw *w = &o->r->w;
    if (!o->opened) {
        lx_jw_key(w, "options");
        lx_jw_open(w, '{');
        o->opened = true;
    }
    lx_jw_key(w, key);
}

static int put_options(struct req *r)
{
    const struct lx_provider_call *call = r->call;
    struct lx_jw *w = &r->w;
    struct opts o = {.r = r};
    static const char *const numbers[][2] = {
        {"temperature", "temperature"},
        {"top_p", "top_p"},
        {"top_k", "top_k"},
        {"seed", "seed"},
        {"presence_penalty", "presence_penalty"},
        {"frequency_penalty", "frequency_penalty"},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(numbers); i++) {
        const cJSON *v = lx_provider__param(call, numbers[i][0]);
        if (!v) {
            continue;
        }
        if (!cJSON_IsNumber(v)) {
            return req_fail(r, LX_EINVAL, "%s must be a number", numbers[i][0]);
        }
        opt_key(&o, numbers[i][1]);
        lx_jw_cjson(w, v);
    }
    const cJSON *mct = lx_provider__param(call, "max_completion_tokens");
    long long max_tokens = int_param(mct ? mct : lx_provider__param(call, "max_tokens"));
    if (max_tokens < 0) {
        return req_fail(r, LX_EINVAL, "%s must be a positive integer",
                        mct ? "max_completion_tokens" : "max_tokens");
    }
    if (max_tokens) {
        opt_key(&o, "num_predict");
        lx_jw_int(w, max_tokens);
    }
    const cJSON *stop = lx_provider__param(call, "stop");
    if (cJSON_IsString(stop)) {
        opt_key(&o, "stop");
        lx_jw_open(w, '[');
        lx_jw_str(w, lx_json_str_of(stop));
        lx_jw_close(w, ']');
    } else if (cJSON_IsArray(stop)) {
        const cJSON *s;
        cJSON_ArrayForEach(s, stop)
        {
            if (!cJSON_IsString(s)) {
                return req_fail(r, LX_EINVAL, "stop must be a string or a list of strings");
            }
        }
        if (cJSON_GetArraySize(stop)) {
            opt_key(&o, "stop");
            lx_jw_cjson(w, stop);
        }
    } else if (stop) {
        return req_fail(r, LX_EINVAL, "stop must be a string or a list of strings");
    }
    if (o.opened) {
        lx_jw_close(w, '}');
    }
    return 0;
}

static int put_params(struct req *r)
{
    const struct lx_provider_call *call = r->call;
    struct lx_jw *w = &r->w;
    const cJSON *n = lx_provider__param(call, "n");
    if (n && !(cJSON_IsNumber(n) && n->valuedouble == 1)) {
        return req_fail(r, LX_EINVAL, "Ollama supports only n=1");
    }
    const cJSON *tools = lx_provider__param(call, "tools");
    const cJSON *tc = lx_provider__param(call, "tool_choice");
    if (tools && !cJSON_IsArray(tools)) {
        return req_fail(r, LX_EINVAL, "tools must be an array");
    }
    const cJSON *t;
    size_t i = 0;
    cJSON_ArrayForEach(t, tools)
    {
        if (!cJSON_IsObject(t) ||
            !lx_json_str_of(lx_json_get(lx_json_get(t, "function"), "name")).p) {
            return req_fail(r, LX_EINVAL, "tools[%zu] needs function.name", i);
        }
        i++;
    }
    /* Ollama has no tool_choice: "none" is honoured by not offering the tools. */
    if (i && !lx_str_eq_c(lx_json_str_of(tc), "none")) {
        lx_jw_key(w, "tools");
        lx_jw_cjson(w, tools);
    }
    const cJSON *rf = lx_provider__param(call, "response_format");
    if (rf && !cJSON_IsObject(rf)) {
        return req_fail(r, LX_EINVAL, "response_format must be an object");
    }
    struct lx_str rf_type = lx_json_str_of(lx_json_get(rf, "type"));
    const cJSON *schema = lx_json_get(lx_json_get(rf, "json_schema"), "schema");
    if (lx_str_eq_c(rf_type, "json_schema") && cJSON_IsObject(schema)) {
        lx_jw_key(w, "format");
        lx_jw_cjson(w, schema);
    } else if (lx_str_eq_c(rf_type, "json_object") || lx_str_eq_c(rf_type, "json_schema")) {
        lx_jw_kstr(w, "format", LX_STR("json"));
    }
    const cJSON *ka = lx_provider__param(call, "keep_alive");
    if (cJSON_IsString(ka) || cJSON_IsNumber(ka)) {
        lx_jw_key(w, "keep_alive");
        lx_jw_cjson(w, ka);
    }
    return put_options(r);
}

static int build_body(struct req *r)
{
    const struct lx_provider_call *call = r->call;
    struct lx_jw *w = &r->w;
    if (!cJSON_IsObject(call->json)) {
        return req_fail(r, LX_EINVAL, "The request body must be a JSON object");
    }
    const cJSON *messages = lx_json_get(call->json, "messages");
    if (!cJSON_IsArray(messages)) {
        return req_fail(r, LX_EINVAL, "messages must be an array");
    }
    const char *model = call->upstream_model ? call->upstream_model
                        : call->dep          ? call->dep->upstream_model
                                             : NULL;
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "model", lx_str_c(model ? model : ""));
    int rc = put_messages(r, messages);
    if (!rc) {
        rc = put_params(r);
    }
    if (rc) {
        return rc;
    }
    lx_jw_klit(w, "stream", call->stream ? "true" : "false");
    lx_jw_close(w, '}');
    return 0;
}

static int ollama_build(const struct lx_provider_call *call, struct lx_provider_request *out,
                        struct lx_error *err)
{
    const struct lx_deployment *dep = call->dep;
    if (call->endpoint != LX_EP_CHAT) {
        return lx_error_set(err, LX_EINVAL,
                            "Ollama deployments serve only /chat/completions (model group '%s')",
                            dep->model_name);
    }
    struct lx_str base = lx_provider_api_base(dep);
    if (!base.p) {
        base = LX_STR("http://localhost:11434");
    }
    /* An api_base that already names the endpoint is used as is. */
    const char *suffix = "/api/chat";
    if (base.n >= 9 && memcmp(base.p + base.n - 9, "/api/chat", 9) == 0) {
        suffix = "";
    }
    out->url = lx_arena_printf(call->arena, "%.*s%s", LX_STR_FMT(base), suffix);
    lx_provider__add_header(out, "Content-Type", LX_STR("application/json"));
    lx_provider__add_header(out, "User-Agent", LX_STR("llmux/" LX_VERSION));
    if (call->api_key) {
        lx_provider__add_header(out, "Authorization",
                                lx_str_c(lx_arena_printf(call->arena, "Bearer %s", call->api_key)));
    }
    for (size_t i = 0; i < dep->n_extra_headers; i++) {
        if (dep->extra_headers[i].key && dep->extra_headers[i].value) {
            lx_provider__add_header(out, dep->extra_headers[i].key,
                                    lx_str_c(dep->extra_headers[i].value));
        }
    }
    struct req r = {.call = call, .err = err};
    lx_buf_init(&r.text, out->body->limit);
    size_t mark = out->body->len;
    lx_jw_init(&r.w, out->body);
    int rc = build_body(&r);
    if (!rc && r.w.rc) {
        rc = buf_fail(&r, r.w.rc);
    }
    if (rc) {
        lx_buf_truncate(out->body, mark);
    }
    lx_buf_fini(&r.text);
    return rc;
}

/* ---- response ---- */

static int resp_fail(struct lx_error *err, int code, const char *msg)
{
    return lx_error_set(err, code, "Ollama: %s", msg);
}

static int write_response(const struct lx_provider_call *call, const cJSON *j, struct lx_jw *w,
                          struct lx_buf *tmp, struct lx_error *err)
{
    const cJSON *msg = lx_json_get(j, "message");
    if (!cJSON_IsObject(msg)) {
        return resp_fail(err, LX_EUPSTREAM, "response has no message object");
    }
    const cJSON *content = lx_json_get(msg, "content");
    const cJSON *thinking = lx_json_get(msg, "thinking");
    const cJSON *calls = lx_json_get(msg, "tool_calls");
    const cJSON *dr = lx_json_get(j, "done_reason");
    if ((content && !cJSON_IsNull(content) && !cJSON_IsString(content)) ||
        (thinking && !cJSON_IsNull(thinking) && !cJSON_IsString(thinking)) ||
        (dr && !cJSON_IsNull(dr) && !cJSON_IsString(dr)) || check_tool_calls(calls)) {
        return resp_fail(err, LX_EUPSTREAM, "malformed message");
    }
    long long prompt = lx_provider__token_count(j, "prompt_eval_count");
    long long completion = lx_provider__token_count(j, "eval_count");
    if (prompt < 0 || completion < 0) {
        return resp_fail(err, LX_EUPSTREAM, "invalid token counts");
    }
    size_t n_calls = (size_t)cJSON_GetArraySize(calls);
    struct lx_str model = lx_json_str_of(lx_json_get(j, "model"));
    if (!model.p || model.n > OLL_MAX_NAME) {
        model = lx_str_c(call->upstream_model ? call->upstream_model : "");
    }
    char id[48], uuid[37];
    lx_uuid4(uuid);
    snprintf(id, sizeof(id), "chatcmpl-%s", uuid);
    lx_provider__message_begin(w, lx_str_c(id), model);
    struct lx_str text = lx_json_str_of(content);
    lx_jw_key(w, "content");
    if (text.n || !n_calls) {
        lx_jw_str(w, text.p ? text : LX_STR(""));
    } else {
        lx_jw_lit(w, "null");
    }
    if (lx_json_str_of(thinking).n) {
        lx_jw_kstr(w, "reasoning_content", lx_json_str_of(thinking));
    }
    if (n_calls) {
        lx_jw_key(w, "tool_calls");
        lx_jw_open(w, '[');
        size_t k = 0;
        const cJSON *tc;
        cJSON_ArrayForEach(tc, calls)
        {
            const cJSON *fn = lx_json_get(tc, "function");
            int rc = args_json(fn, tmp);
            if (rc) {
                return resp_fail(err, rc, "response too large or out of memory");
            }
            char cid[32];
            lx_provider__call_id(cid);
            lx_provider__tool_call(w, k++, cid, lx_json_str_of(lx_json_get(fn, "name")),
                                   lx_buf_str(tmp));
        }
        lx_jw_close(w, ']');
    }
    lx_jw_close(w, '}');
    lx_jw_kstr(w, "finish_reason",
               lx_str_c(lx_ollama_finish_reason(lx_json_str_of(dr), n_calls > 0)));
    lx_jw_klit(w, "logprobs", "null");
    lx_jw_close(w, '}');
    lx_jw_close(w, ']');
    write_usage(w, prompt, completion);
    lx_jw_close(w, '}');
    return 0;
}

static int ollama_response(const struct lx_provider_call *call, struct lx_str body,
                           struct lx_buf *out, struct lx_error *err)
{
    cJSON *j = cJSON_ParseWithLength(body.p ? body.p : "", body.n);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return resp_fail(err, LX_EUPSTREAM, "response is not a JSON object");
    }
    struct lx_str e = lx_json_str_of(lx_json_get(j, "error"));
    if (e.p) {
        lx_error_set(err, LX_EUPSTREAM, "Ollama returned an error: %.*s", (int)LX_MIN(e.n, 300),
                     e.p);
        cJSON_Delete(j);
        return LX_EUPSTREAM;
    }
    struct lx_buf tmp;
    lx_buf_init(&tmp, out->limit);
    struct lx_jw w;
    size_t mark = out->len;
    lx_jw_init(&w, out);
    int rc = write_response(call, j, &w, &tmp, err);
    if (!rc && w.rc) {
        rc = resp_fail(err, w.rc, "response too large or out of memory");
    }
    if (rc) {
        lx_buf_truncate(out, mark);
    }
    lx_buf_fini(&tmp);
    cJSON_Delete(j);
    return rc;
}

/* ---- errors ---- */

/* The message of an Ollama error body: {"error":"..."} (or OpenAI's {"error":{"message"}}). */
static struct lx_str error_message(const cJSON *j)
{
    const cJSON *e = lx_json_get(j, "error");
    struct lx_str m = lx_json_str_of(e);
    return m.p ? m : lx_json_str_of(lx_json_get(e, "message"));
}

static int ollama_error(const struct lx_provider_call *call, struct lx_str body, int *io_status,
                        struct lx_buf *out)
{
    (void)call;
    cJSON *j = cJSON_ParseWithLength(body.p ? body.p : "", body.n);
    struct lx_str msg = error_message(j);
    char fallback[96];
    if (!msg.p) {
        snprintf(fallback, sizeof(fallback), "Ollama returned HTTP %d", *io_status);
        msg = lx_str_c(fallback);
    }
    char code[16];
    snprintf(code, sizeof(code), "%d", *io_status);
    int rc = lx_json_error_body(out, msg, lx_error_type_for_status(*io_status), NULL, code);
    cJSON_Delete(j);
    return rc;
}

/* ---- stream ---- */

struct oll_stream {
    struct lx_buf line;  /* a line not yet complete (heap) */
    struct lx_buf chunk; /* one translated chunk (heap) */
    struct lx_buf tmp;   /* tool call arguments (heap) */
    int64_t created;
    long long prompt, completion;
    bool include_usage;
    bool has_usage; /* the done:true line reported counts */
    bool started;   /* the role chunk went out */
    bool done;      /* [DONE] or an error went out: later bytes are ignored */
    size_t n_tools;
    char id[48];
    char model[OLL_MAX_NAME + 1];
};

static void *ollama_stream_new(const struct lx_provider_call *call)
{
    struct oll_stream *s = lx_arena_alloc(call->arena, sizeof(*s));
    memset(s, 0, sizeof(*s));
    lx_buf_init(&s->line, OLL_MAX_LINE_BYTES);
    lx_buf_init(&s->chunk, OLL_MAX_CHUNK_BYTES);
    lx_buf_init(&s->tmp, OLL_MAX_CHUNK_BYTES);
    s->created = lx_wall_s();
    s->include_usage =
        cJSON_IsTrue(lx_json_get(lx_json_get(call->json, "stream_options"), "include_usage"));
    char uuid[37];
    lx_uuid4(uuid);
    snprintf(s->id, sizeof(s->id), "chatcmpl-%s", uuid);
    snprintf(s->model, sizeof(s->model), "%s", call->upstream_model ? call->upstream_model : "");
    return s;
}

static void ollama_stream_free(void *state)
{
    struct oll_stream *s = state;
    lx_buf_fini(&s->line);
    lx_buf_fini(&s->chunk);
    lx_buf_fini(&s->tmp);
}

static int emit_delta_str(struct oll_stream *s, struct lx_buf *out, const char *key,
                          struct lx_str v)
{
    struct lx_jw w;
    lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
    lx_provider__choice_begin(&w, 0);
    lx_jw_kstr(&w, key, v);
    lx_provider__choice_end(&w, NULL);
    return lx_provider__chunk_emit(&w, out);
}

static int line_fail(struct lx_error *err, const char *what)
{
    return lx_error_set(err, LX_EUPSTREAM, "Ollama stream: %s", what);
}

static int on_error_line(struct oll_stream *s, struct lx_str msg, struct lx_buf *out)
{
    lx_buf_reset(&s->chunk);
    int rc = lx_json_error_body(&s->chunk, msg.n ? msg : LX_STR("Ollama reported an error"),
                                "api_error", NULL, "500");
    if (!rc) {
        rc = lx_sse_append_event(out, LX_STR(""), lx_buf_str(&s->chunk));
    }
    s->done = true;
    return rc;
}

static int on_object(struct oll_stream *s, const cJSON *j, struct lx_buf *out, struct lx_error *err)
{
    const cJSON *e = lx_json_get(j, "error");
    if (e) {
        return on_error_line(s, error_message(j), out);
    }
    const cJSON *msg = lx_json_get(j, "message");
    const cJSON *content = lx_json_get(msg, "content");
    const cJSON *thinking = lx_json_get(msg, "thinking");
    const cJSON *calls = lx_json_get(msg, "tool_calls");
    const cJSON *done = lx_json_get(j, "done");
    const cJSON *dr = lx_json_get(j, "done_reason");
    if ((msg && !cJSON_IsObject(msg)) ||
        (content && !cJSON_IsNull(content) && !cJSON_IsString(content)) ||
        (thinking && !cJSON_IsNull(thinking) && !cJSON_IsString(thinking)) ||
        (done && !cJSON_IsBool(done)) || (dr && !cJSON_IsNull(dr) && !cJSON_IsString(dr)) ||
        check_tool_calls(calls)) {
        return line_fail(err, "malformed line");
    }
    if (!msg && !cJSON_IsTrue(done)) {
        return line_fail(err, "a line without message or done");
    }
    long long prompt = 0, completion = 0;
    if (cJSON_IsTrue(done)) {
        prompt = lx_provider__token_count(j, "prompt_eval_count");
        completion = lx_provider__token_count(j, "eval_count");
        if (prompt < 0 || completion < 0) {
            return line_fail(err, "invalid token counts");
        }
    }
    int rc = 0;
    if (!s->started) {
        struct lx_str model = lx_json_str_of(lx_json_get(j, "model"));
        if (model.p && model.n <= OLL_MAX_NAME) {
            memcpy(s->model, model.p, model.n);
            s->model[model.n] = '\0';
        }
        struct lx_jw w;
        lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
        lx_provider__choice_begin(&w, 0);
        lx_jw_kstr(&w, "role", LX_STR("assistant"));
        lx_jw_kstr(&w, "content", LX_STR(""));
        lx_provider__choice_end(&w, NULL);
        rc = lx_provider__chunk_emit(&w, out);
        s->started = true;
    }
    if (!rc && lx_json_str_of(thinking).n) {
        rc = emit_delta_str(s, out, "reasoning_content", lx_json_str_of(thinking));
    }
    if (!rc && lx_json_str_of(content).n) {
        rc = emit_delta_str(s, out, "content", lx_json_str_of(content));
    }
    const cJSON *tc;
    cJSON_ArrayForEach(tc, calls)
    {
        if (rc) {
            break;
        }
        const cJSON *fn = lx_json_get(tc, "function");
        rc = args_json(fn, &s->tmp);
        if (!rc) {
            char id[32];
            lx_provider__call_id(id);
            struct lx_jw w;
            lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
            lx_provider__choice_begin(&w, 0);
            lx_jw_key(&w, "tool_calls");
            lx_jw_open(&w, '[');
            lx_provider__tool_call(&w, s->n_tools++, id, lx_json_str_of(lx_json_get(fn, "name")),
                                   lx_buf_str(&s->tmp));
            lx_jw_close(&w, ']');
            lx_provider__choice_end(&w, NULL);
            rc = lx_provider__chunk_emit(&w, out);
        }
    }
    if (rc || !cJSON_IsTrue(done)) {
        return rc;
    }
    s->prompt = prompt;
    s->completion = completion;
    s->has_usage = true;
    struct lx_jw w;
    lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
    lx_provider__choice_begin(&w, 0);
    lx_provider__choice_end(&w, lx_ollama_finish_reason(lx_json_str_of(dr), s->n_tools > 0));
    rc = lx_provider__chunk_emit(&w, out);
    if (!rc && s->include_usage) {
        lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
        lx_jw_key(&w, "choices");
        lx_jw_lit(&w, "[]");
        write_usage(&w, s->prompt, s->completion);
        rc = lx_provider__chunk_emit(&w, out);
    }
    if (!rc) {
        rc = lx_sse_append_event(out, LX_STR(""), LX_STR("[DONE]"));
    }
    s->done = true;
    return rc;
}

/* One complete line (without its LF). Blank lines are skipped. */
static int on_line(struct oll_stream *s, struct lx_str line, struct lx_buf *out,
                   struct lx_error *err)
{
    line = lx_str_trim(line);
    if (!line.n) {
        return 0;
    }
    cJSON *j = cJSON_ParseWithLength(line.p, line.n);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return line_fail(err, "a line is not a JSON object");
    }
    int rc = on_object(s, j, out, err);
    cJSON_Delete(j);
    return rc;
}

static int ollama_feed(void *state, const char *data, size_t n, struct lx_buf *out,
                       struct lx_error *err)
{
    struct oll_stream *s = state;
    size_t mark = out->len;
    int rc = 0;
    while (n && !s->done && !rc) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (!nl || s->line.len) {
            rc = lx_buf_append(&s->line, data, take);
            if (rc) {
                break;
            }
            if (nl) {
                rc = on_line(s, lx_buf_str(&s->line), out, err);
                lx_buf_reset(&s->line);
            }
        } else {
            rc = on_line(s, (struct lx_str){data, take}, out, err); /* no copy when whole */
        }
        take += nl ? 1 : 0;
        data += take;
        n -= take;
    }
    if (rc) {
        lx_buf_truncate(out, mark);
        if (rc == LX_ETOOBIG && s->line.len + n > OLL_MAX_LINE_BYTES) {
            lx_error_set(err, rc, "Ollama stream: a line is longer than %u bytes",
                         OLL_MAX_LINE_BYTES);
        } else if (rc != LX_EUPSTREAM) {
            lx_error_set(err, rc, "Ollama stream: %s translating a line",
                         rc == LX_ETOOBIG ? "output too large" : lx_strerror(rc));
        }
        s->done = true; /* the stream is broken: nothing more is translated */
    }
    return rc;
}

static int ollama_end(void *state, struct lx_buf *out, struct lx_error *err)
{
    struct oll_stream *s = state;
    (void)out;
    if (s->done) {
        return 0;
    }
    if (lx_str_trim(lx_buf_str(&s->line)).n) {
        lx_error_set(err, LX_EUPSTREAM, "Ollama stream ended in the middle of a line");
        return 1;
    }
    lx_error_set(err, LX_EUPSTREAM, "Ollama stream ended before done:true");
    return 1;
}

static bool ollama_stream_usage(void *state, struct lx_usage *out)
{
    const struct oll_stream *s = state;
    *out = (struct lx_usage){.prompt_tokens = s->prompt, .completion_tokens = s->completion};
    return s->has_usage;
}

const struct lx_provider_ops lx_provider_ollama = {
    .name = "ollama",
    .stream_usage = ollama_stream_usage,
    .build_request = ollama_build,
    .translate_response = ollama_response,
    .translate_error = ollama_error,
    .stream_new = ollama_stream_new,
    .stream_free = ollama_stream_free,
    .stream_feed = ollama_feed,
    .stream_end = ollama_end,
};
