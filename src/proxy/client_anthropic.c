/*
 * Anthropic's Messages API (https://docs.anthropic.com/en/api/messages and
 * .../messages-streaming) in front of the OpenAI-format pipeline, so that
 * Anthropic SDK clients can call POST /v1/messages on any configured model.
 *
 * Request (Messages -> OpenAI chat):
 * - model, max_tokens (both required, as the API requires them), messages
 *   (required, non-empty), system (a string or text blocks, joined with
 *   "\n") as a leading system message, stop_sequences -> stop,
 *   temperature, top_p, top_k (passed as is: OpenAI-compatible servers such
 *   as vLLM and Ollama accept it, and our Anthropic provider forwards it;
 *   api.openai.com itself rejects it), metadata.user_id -> user, stream (and
 *   always stream_options.include_usage, as message_delta needs the usage).
 * - user blocks: text -> text parts (one text block alone becomes a plain
 *   string), image (base64 source -> data: URL, url source -> URL),
 *   document (base64 -> a `file` part with file_data, plain text -> text),
 *   tool_result -> role "tool" messages placed before the rest of the user
 *   turn (string content, or its text blocks joined with "\n"; images inside
 *   a tool_result move to the user message that follows, as OpenAI's tool
 *   messages carry text only; is_error has no OpenAI form and is dropped).
 * - assistant blocks: text (concatenated into one content string) and
 *   tool_use -> tool_calls with the input serialised as `arguments`.
 * - thinking and redacted_thinking blocks, the `thinking` parameter,
 *   cache_control, service_tier and other Anthropic-only fields are dropped
 *   (an OpenAI upstream cannot use them, and a thinking-enabled Anthropic
 *   upstream would demand the signed blocks back).
 * - tools (custom tools only; server tools are a 400) -> function tools,
 *   tool_choice auto/any/tool/none -> "auto"/"required"/named/"none",
 *   disable_parallel_tool_use -> parallel_tool_calls false. Both are left
 *   out when there are no tools, as OpenAI rejects them then.
 * Invalid requests are LX_EINVAL with the API's wording ("<path>: <problem>").
 *
 * Response (chat.completion -> message): reasoning_content becomes a
 * thinking block, content (or a refusal) a text block when non-empty,
 * tool_calls (and a legacy function_call) tool_use blocks whose input is the
 * parsed arguments; arguments that are not a JSON object become {} (the
 * model's output is unusable as a tool input either way, and a 502 would
 * hide the rest of the answer). finish_reason stop -> end_turn (tool_use
 * when tool calls are present: some servers say "stop" there), length ->
 * max_tokens, tool_calls/function_call -> tool_use, content_filter ->
 * refusal. Usage follows Anthropic's meaning: input_tokens excludes cached
 * tokens (OpenAI's prompt_tokens includes them), cache_read_input_tokens is
 * prompt_tokens_details.cached_tokens, and the cache_*_input_tokens that
 * our Anthropic provider adds are carried back, so an Anthropic upstream's
 * numbers survive the round trip.
 *
 * Stream: OpenAI chunk events drive a small state machine; message_start on
 * the first chunk, content blocks opened lazily and closed when another
 * kind starts (Anthropic blocks never interleave; a tool call piece for an
 * OpenAI index whose block is already closed is dropped: OpenAI sends tool
 * calls one after another), and message_delta + message_stop at [DONE],
 * because the usage chunk follows the finish chunk. An OpenAI error event
 * becomes `event: error` and ends the translation. Events after the end are
 * ignored.
 *
 * Everything is parsed with cJSON (hooked to lx_try_malloc) and written with
 * a small JSON writer into the caller's capped buffer, which is restored to
 * its previous length when a call fails. Nothing trusts its input: every
 * field is type checked and token counts are clamped.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/rand.h"
#include "http/sse.h"
#include "json/json.h"
#include "json/writer.h"
#include "proxy/client.h"

/* Ids and model names copied into stream state or errors are capped. */
#define ID_MAX 128
#define MODEL_MAX 256
/* One event's JSON (a delta carries at most one upstream event's text). */
#define SCRATCH_MAX (32u << 20)
#define MAX_TOKENS_COUNT 1000000000000000LL

/* ---- helpers ---- */

static bool is_str(const cJSON *v)
{
    return v && cJSON_IsString(v) && v->valuestring;
}

static bool type_is(const cJSON *block, const char *t)
{
    const cJSON *ty = lx_json_get(block, "type");
    return is_str(ty) && strcmp(ty->valuestring, t) == 0;
}

/* A token count from an upstream: an integer in [0, MAX_TOKENS_COUNT], else 0. */
static long long count_of(const cJSON *v)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0)) {
        return 0;
    }
    double d = v->valuedouble;
    return d > (double)MAX_TOKENS_COUNT ? MAX_TOKENS_COUNT : (long long)d;
}

static bool too_deep(const cJSON *j, int depth)
{
    if (depth > LX_JSON_MAX_DEPTH) {
        return true;
    }
    for (const cJSON *c = j->child; c; c = c->next) {
        if (c->child && too_deep(c, depth + 1)) {
            return true;
        }
    }
    return false;
}

/*
 * Parse JSON; LX_EINVAL if it is not JSON or nests deeper than
 * LX_JSON_MAX_DEPTH (what we write nests a few levels deeper, and must
 * parse again: cJSON stops at 1000), LX_ENOMEM if cJSON ran out of memory.
 */
static int parse(struct lx_str s, cJSON **out)
{
    *out = cJSON_ParseWithLength(s.p ? s.p : "", s.n);
    if (*out && too_deep(*out, 1)) {
        cJSON_Delete(*out);
        *out = NULL;
        return LX_EINVAL;
    }
    if (*out) {
        return 0;
    }
    struct lx_str v;
    int rc = lx_json_find_top(s, LX_STR("model"), &v);
    /* Valid JSON (an object, found or not) that cJSON could not hold: memory. */
    return rc == 0 || rc == LX_ENOTFOUND ? LX_ENOMEM : LX_EINVAL;
}

/* "toolu_"/"msg_" plus 24 hex digits, as Anthropic's ids look. */
static void random_id(char *out, size_t n, const char *prefix)
{
    char u[37];
    char hex[25];
    size_t k = 0;
    lx_uuid4(u);
    for (size_t i = 0; u[i] && k < 24; i++) {
        if (u[i] != '-') {
            hex[k++] = u[i];
        }
    }
    hex[k] = '\0';
    snprintf(out, n, "%s%s", prefix, hex);
}

/* The message id for an OpenAI completion id: "msg_" + the id without "chatcmpl-". */
static void message_id(char *out, size_t n, const cJSON *id)
{
    struct lx_str s = lx_json_str_of(id);
    if (!s.n) {
        random_id(out, n, "msg_");
        return;
    }
    if (lx_str_has_prefix(s, LX_STR("chatcmpl-"))) {
        s = lx_str_sub(s, 9);
    }
    snprintf(out, n, "msg_%.*s", (int)LX_MIN(s.n, (size_t)ID_MAX), s.p);
}

/* ---- request ---- */

struct req {
    struct lx_jw w;
    struct lx_error *err;
    struct lx_buf tmp; /* data URLs, joined texts */
    int rc;
};

static int req_fail(struct req *r, const char *fmt, ...) LX_PRINTF(2, 3);

static int req_fail(struct req *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    r->rc = lx_error_vset(r->err, LX_EINVAL, fmt, ap);
    va_end(ap);
    return r->rc;
}

/* A block's "type", or a 400 naming the block. */
static int block_type(struct req *r, const cJSON *b, int mi, int bi, struct lx_str *out)
{
    if (!cJSON_IsObject(b)) {
        return req_fail(r, "messages.%d.content.%d: Input should be a valid dictionary", mi, bi);
    }
    *out = lx_json_str_of(lx_json_get(b, "type"));
    if (!out->p) {
        return req_fail(r, "messages.%d.content.%d.type: Field required", mi, bi);
    }
    return 0;
}

/* Image (or base64 document) source as a URL: a data: URL or the url itself. */
static int source_url(struct req *r, const cJSON *src, const char *where, struct lx_str *out)
{
    if (!cJSON_IsObject(src)) {
        return req_fail(r, "%s.source: Field required", where);
    }
    struct lx_str t = lx_json_str_of(lx_json_get(src, "type"));
    if (lx_str_eq_c(t, "url")) {
        *out = lx_json_str_of(lx_json_get(src, "url"));
        if (!out->p) {
            return req_fail(r, "%s.source.url: Field required", where);
        }
        return 0;
    }
    if (!lx_str_eq_c(t, "base64")) {
        return req_fail(r, "%s.source.type: unsupported source type '%.*s'", where,
                        (int)LX_MIN(t.n, 64), t.p ? t.p : "");
    }
    struct lx_str mt = lx_json_str_of(lx_json_get(src, "media_type"));
    struct lx_str data = lx_json_str_of(lx_json_get(src, "data"));
    if (!mt.p || !data.p) {
        return req_fail(r, "%s.source.%s: Field required", where, mt.p ? "data" : "media_type");
    }
    lx_buf_reset(&r->tmp);
    int rc = lx_buf_append_c(&r->tmp, "data:");
    rc = rc ? rc : lx_buf_append_str(&r->tmp, mt);
    rc = rc ? rc : lx_buf_append_c(&r->tmp, ";base64,");
    rc = rc ? rc : lx_buf_append_str(&r->tmp, data);
    if (rc) {
        r->rc = lx_error_set(r->err, rc, "request too large");
        return rc;
    }
    *out = lx_buf_str(&r->tmp);
    return 0;
}

static void image_part(struct lx_jw *w, struct lx_str url)
{
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "type", LX_STR("image_url"));
    lx_jw_key(w, "image_url");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "url", url);
    lx_jw_close(w, '}');
    lx_jw_close(w, '}');
}

static void text_part(struct lx_jw *w, struct lx_str text)
{
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "type", LX_STR("text"));
    lx_jw_kstr(w, "text", text);
    lx_jw_close(w, '}');
}

/* Write the OpenAI content part for user block b (text, image or document). */
static int user_part(struct req *r, struct lx_jw *w, const cJSON *b, int mi, int bi)
{
    struct lx_str t = lx_json_str_of(lx_json_get(b, "type"));
    char where[64];
    snprintf(where, sizeof(where), "messages.%d.content.%d", mi, bi);
    if (lx_str_eq_c(t, "text")) {
        struct lx_str text = lx_json_str_of(lx_json_get(b, "text"));
        if (!text.p) {
            return req_fail(r, "%s.text: Field required", where);
        }
        text_part(w, text);
        return 0;
    }
    struct lx_str url = LX_STR_NULL;
    if (lx_str_eq_c(t, "image")) {
        if (source_url(r, lx_json_get(b, "source"), where, &url)) {
            return r->rc;
        }
        image_part(w, url);
        return 0;
    }
    /* document */
    const cJSON *src = lx_json_get(b, "source");
    if (type_is(src, "text")) {
        struct lx_str text = lx_json_str_of(lx_json_get(src, "data"));
        if (!text.p) {
            return req_fail(r, "%s.source.data: Field required", where);
        }
        text_part(w, text);
        return 0;
    }
    if (!type_is(src, "base64")) {
        return req_fail(r, "%s.source: only base64 and text document sources are supported", where);
    }
    if (source_url(r, src, where, &url)) {
        return r->rc;
    }
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "type", LX_STR("file"));
    lx_jw_key(w, "file");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "file_data", url);
    struct lx_str title = lx_json_str_of(lx_json_get(b, "title"));
    if (title.n) {
        lx_jw_kstr(w, "filename", title);
    }
    lx_jw_close(w, '}');
    lx_jw_close(w, '}');
    return 0;
}

/* Does a user block go into the user message (not a tool message, not dropped)? */
static bool is_user_part(struct lx_str t)
{
    return lx_str_eq_c(t, "text") || lx_str_eq_c(t, "image") || lx_str_eq_c(t, "document");
}

static bool is_dropped(struct lx_str t)
{
    return lx_str_eq_c(t, "thinking") || lx_str_eq_c(t, "redacted_thinking");
}

/* tool_result blocks of one user message as role "tool" messages. */
static int tool_results(struct req *r, const cJSON *content, int mi, int *out_images)
{
    struct lx_jw *w = &r->w;
    int bi = 0;
    *out_images = 0;
    for (const cJSON *b = content->child; b; b = b->next, bi++) {
        if (!type_is(b, "tool_result")) {
            continue;
        }
        struct lx_str id = lx_json_str_of(lx_json_get(b, "tool_use_id"));
        if (!id.p) {
            return req_fail(r, "messages.%d.content.%d.tool_use_id: Field required", mi, bi);
        }
        const cJSON *c = lx_json_get(b, "content");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "role", LX_STR("tool"));
        lx_jw_kstr(w, "tool_call_id", id);
        if (!c || cJSON_IsNull(c)) {
            lx_jw_kstr(w, "content", LX_STR(""));
        } else if (is_str(c)) {
            lx_jw_kstr(w, "content", lx_json_str_of(c));
        } else if (cJSON_IsArray(c)) {
            lx_buf_reset(&r->tmp);
            int rc = 0;
            bool first = true;
            int ci = 0;
            for (const cJSON *x = c->child; x && !rc; x = x->next, ci++) {
                if (type_is(x, "image")) {
                    (*out_images)++;
                    continue;
                }
                if (!type_is(x, "text") || !is_str(lx_json_get(x, "text"))) {
                    return req_fail(r,
                                    "messages.%d.content.%d.content.%d: only text and image "
                                    "blocks are supported in a tool_result",
                                    mi, bi, ci);
                }
                rc = first ? 0 : lx_buf_append_c(&r->tmp, "\n");
                rc = rc ? rc : lx_buf_append_str(&r->tmp, lx_json_str_of(lx_json_get(x, "text")));
                first = false;
            }
            if (rc) {
                r->rc = lx_error_set(r->err, rc, "request too large");
                return rc;
            }
            lx_jw_kstr(w, "content", lx_buf_str(&r->tmp));
        } else {
            return req_fail(r, "messages.%d.content.%d.content: Input should be a valid list", mi,
                            bi);
        }
        lx_jw_close(w, '}');
    }
    return 0;
}

static int user_message(struct req *r, const cJSON *content, int mi)
{
    struct lx_jw *w = &r->w;
    /* Check every block first, so that errors do not depend on order. */
    int n_parts = 0;
    int bi = 0;
    const cJSON *only_text = NULL;
    for (const cJSON *b = content->child; b; b = b->next, bi++) {
        struct lx_str t = LX_STR_NULL;
        if (block_type(r, b, mi, bi, &t)) {
            return r->rc;
        }
        if (lx_str_eq_c(t, "text") && !is_str(lx_json_get(b, "text"))) {
            return req_fail(r, "messages.%d.content.%d.text: Field required", mi, bi);
        }
        if (is_user_part(t)) {
            n_parts++;
            only_text = lx_str_eq_c(t, "text") ? b : NULL;
        } else if (lx_str_eq_c(t, "tool_use")) {
            return req_fail(r,
                            "messages.%d.content.%d: tool_use blocks belong in assistant "
                            "messages",
                            mi, bi);
        } else if (!lx_str_eq_c(t, "tool_result") && !is_dropped(t)) {
            return req_fail(r, "messages.%d.content.%d.type: unsupported content block type '%.*s'",
                            mi, bi, (int)LX_MIN(t.n, 64), t.p);
        }
    }
    int images = 0;
    if (tool_results(r, content, mi, &images)) {
        return r->rc;
    }
    if (n_parts == 0 && images == 0) {
        return 0;
    }
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "role", LX_STR("user"));
    lx_jw_key(w, "content");
    if (n_parts == 1 && images == 0 && only_text) {
        lx_jw_str(w, lx_json_str_of(lx_json_get(only_text, "text")));
    } else {
        lx_jw_open(w, '[');
        bi = 0;
        for (const cJSON *b = content->child; b; b = b->next, bi++) {
            if (is_user_part(lx_json_str_of(lx_json_get(b, "type"))) &&
                user_part(r, w, b, mi, bi)) {
                return r->rc;
            }
        }
        /* Images returned by tools follow the user's own parts. */
        bi = 0;
        for (const cJSON *b = content->child; b && images; b = b->next, bi++) {
            const cJSON *c = lx_json_get(b, "content");
            if (!type_is(b, "tool_result") || !cJSON_IsArray(c)) {
                continue;
            }
            char where[80];
            int ci = 0;
            for (const cJSON *x = c->child; x; x = x->next, ci++) {
                struct lx_str url = LX_STR_NULL;
                if (!type_is(x, "image")) {
                    continue;
                }
                snprintf(where, sizeof(where), "messages.%d.content.%d.content.%d", mi, bi, ci);
                if (source_url(r, lx_json_get(x, "source"), where, &url)) {
                    return r->rc;
                }
                image_part(w, url);
            }
        }
        lx_jw_close(w, ']');
    }
    lx_jw_close(w, '}');
    return 0;
}

static int assistant_message(struct req *r, const cJSON *content, int mi)
{
    struct lx_jw *w = &r->w;
    int n_tools = 0;
    int bi = 0;
    lx_buf_reset(&r->tmp);
    bool has_text = false;
    for (const cJSON *b = content->child; b; b = b->next, bi++) {
        struct lx_str t = LX_STR_NULL;
        if (block_type(r, b, mi, bi, &t)) {
            return r->rc;
        }
        if (lx_str_eq_c(t, "text")) {
            struct lx_str text = lx_json_str_of(lx_json_get(b, "text"));
            if (!text.p) {
                return req_fail(r, "messages.%d.content.%d.text: Field required", mi, bi);
            }
            int rc = lx_buf_append_str(&r->tmp, text);
            if (rc) {
                r->rc = lx_error_set(r->err, rc, "request too large");
                return rc;
            }
            has_text = true;
        } else if (lx_str_eq_c(t, "tool_use")) {
            if (!is_str(lx_json_get(b, "id")) || !is_str(lx_json_get(b, "name"))) {
                return req_fail(r, "messages.%d.content.%d.%s: Field required", mi, bi,
                                is_str(lx_json_get(b, "id")) ? "name" : "id");
            }
            const cJSON *in = lx_json_get(b, "input");
            if (in && !cJSON_IsObject(in)) {
                return req_fail(
                    r, "messages.%d.content.%d.input: Input should be a valid dictionary", mi, bi);
            }
            n_tools++;
        } else if (lx_str_eq_c(t, "tool_result")) {
            return req_fail(r, "messages.%d.content.%d: tool_result blocks belong in user messages",
                            mi, bi);
        } else if (!is_dropped(t)) {
            return req_fail(r, "messages.%d.content.%d.type: unsupported content block type '%.*s'",
                            mi, bi, (int)LX_MIN(t.n, 64), t.p);
        }
    }
    if (!has_text && n_tools == 0) {
        return 0; /* only thinking: nothing an OpenAI model can read */
    }
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "role", LX_STR("assistant"));
    lx_jw_key(w, "content");
    if (has_text) {
        lx_jw_str(w, lx_buf_str(&r->tmp));
    } else {
        lx_jw_lit(w, "null");
    }
    if (n_tools) {
        lx_jw_key(w, "tool_calls");
        lx_jw_open(w, '[');
        for (const cJSON *b = content->child; b; b = b->next) {
            if (!type_is(b, "tool_use")) {
                continue;
            }
            const cJSON *in = lx_json_get(b, "input");
            char *args = in ? cJSON_PrintUnformatted(in) : NULL;
            if (in && !args) {
                r->rc = lx_error_set(r->err, LX_ENOMEM, "out of memory");
                return r->rc;
            }
            lx_jw_open(w, '{');
            lx_jw_kstr(w, "id", lx_json_str_of(lx_json_get(b, "id")));
            lx_jw_kstr(w, "type", LX_STR("function"));
            lx_jw_key(w, "function");
            lx_jw_open(w, '{');
            lx_jw_kstr(w, "name", lx_json_str_of(lx_json_get(b, "name")));
            lx_jw_kstr(w, "arguments", args ? lx_str_c(args) : LX_STR("{}"));
            lx_jw_close(w, '}');
            lx_jw_close(w, '}');
            cJSON_free(args);
        }
        lx_jw_close(w, ']');
    }
    lx_jw_close(w, '}');
    return 0;
}

static int messages(struct req *r, const cJSON *msgs)
{
    struct lx_jw *w = &r->w;
    int mi = 0;
    for (const cJSON *m = msgs->child; m && !r->rc && !w->rc; m = m->next, mi++) {
        if (!cJSON_IsObject(m)) {
            return req_fail(r, "messages.%d: Input should be a valid dictionary", mi);
        }
        struct lx_str role = lx_json_str_of(lx_json_get(m, "role"));
        bool user = lx_str_eq_c(role, "user");
        if (lx_str_eq_c(role, "system")) {
            return req_fail(r, "messages: Unexpected role \"system\". The Messages API accepts a "
                               "top-level `system` parameter, not \"system\" as an input message "
                               "role.");
        }
        if (!user && !lx_str_eq_c(role, "assistant")) {
            return req_fail(r, "messages.%d.role: Input should be 'user' or 'assistant'", mi);
        }
        const cJSON *c = lx_json_get(m, "content");
        if (!c) {
            return req_fail(r, "messages.%d.content: Field required", mi);
        }
        if (is_str(c)) {
            lx_jw_open(w, '{');
            lx_jw_kstr(w, "role", role);
            lx_jw_kstr(w, "content", lx_json_str_of(c));
            lx_jw_close(w, '}');
            continue;
        }
        if (!cJSON_IsArray(c)) {
            return req_fail(r, "messages.%d.content: Input should be a valid list", mi);
        }
        if (user ? user_message(r, c, mi) : assistant_message(r, c, mi)) {
            return r->rc;
        }
    }
    return r->rc;
}

static int system_message(struct req *r, const cJSON *sys)
{
    if (!sys || cJSON_IsNull(sys)) {
        return 0;
    }
    struct lx_str text;
    if (is_str(sys)) {
        text = lx_json_str_of(sys);
    } else if (cJSON_IsArray(sys)) {
        lx_buf_reset(&r->tmp);
        int i = 0;
        int rc = 0;
        for (const cJSON *b = sys->child; b && !rc; b = b->next, i++) {
            if (!type_is(b, "text") || !is_str(lx_json_get(b, "text"))) {
                return req_fail(r, "system.%d: Input should be a text block", i);
            }
            rc = i ? lx_buf_append_c(&r->tmp, "\n") : 0;
            rc = rc ? rc : lx_buf_append_str(&r->tmp, lx_json_str_of(lx_json_get(b, "text")));
        }
        if (rc) {
            r->rc = lx_error_set(r->err, rc, "request too large");
            return rc;
        }
        text = lx_buf_str(&r->tmp);
    } else {
        return req_fail(r, "system: Input should be a valid string or a list of text blocks");
    }
    if (text.n) {
        lx_jw_open(&r->w, '{');
        lx_jw_kstr(&r->w, "role", LX_STR("system"));
        lx_jw_kstr(&r->w, "content", text);
        lx_jw_close(&r->w, '}');
    }
    return 0;
}

static int tools(struct req *r, const cJSON *ts)
{
    struct lx_jw *w = &r->w;
    lx_jw_key(w, "tools");
    lx_jw_open(w, '[');
    int i = 0;
    for (const cJSON *t = ts->child; t; t = t->next, i++) {
        if (!cJSON_IsObject(t)) {
            return req_fail(r, "tools.%d: Input should be a valid dictionary", i);
        }
        struct lx_str ty = lx_json_str_of(lx_json_get(t, "type"));
        if (ty.p && !lx_str_eq_c(ty, "custom")) {
            return req_fail(r, "tools.%d: tool type '%.*s' is not supported by this gateway", i,
                            (int)LX_MIN(ty.n, 64), ty.p);
        }
        struct lx_str name = lx_json_str_of(lx_json_get(t, "name"));
        const cJSON *schema = lx_json_get(t, "input_schema");
        if (!name.p) {
            return req_fail(r, "tools.%d.name: Field required", i);
        }
        if (!cJSON_IsObject(schema)) {
            return req_fail(r, "tools.%d.input_schema: Field required", i);
        }
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "type", LX_STR("function"));
        lx_jw_key(w, "function");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "name", name);
        struct lx_str desc = lx_json_str_of(lx_json_get(t, "description"));
        if (desc.p) {
            lx_jw_kstr(w, "description", desc);
        }
        lx_jw_key(w, "parameters");
        lx_jw_cjson(w, schema);
        lx_jw_close(w, '}');
        lx_jw_close(w, '}');
    }
    lx_jw_close(w, ']');
    return 0;
}

static int tool_choice(struct req *r, const cJSON *tc, bool has_tools)
{
    struct lx_jw *w = &r->w;
    if (!tc || cJSON_IsNull(tc)) {
        return 0;
    }
    if (!cJSON_IsObject(tc)) {
        return req_fail(r, "tool_choice: Input should be a valid dictionary");
    }
    struct lx_str t = lx_json_str_of(lx_json_get(tc, "type"));
    struct lx_str name = lx_json_str_of(lx_json_get(tc, "name"));
    if (lx_str_eq_c(t, "tool") && !name.p) {
        return req_fail(r, "tool_choice.name: Field required");
    }
    if (!lx_str_eq_c(t, "auto") && !lx_str_eq_c(t, "any") && !lx_str_eq_c(t, "tool") &&
        !lx_str_eq_c(t, "none")) {
        return req_fail(r, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'");
    }
    if (!has_tools) {
        return 0; /* OpenAI rejects tool_choice without tools */
    }
    lx_jw_key(w, "tool_choice");
    if (lx_str_eq_c(t, "tool")) {
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "type", LX_STR("function"));
        lx_jw_key(w, "function");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "name", name);
        lx_jw_close(w, '}');
        lx_jw_close(w, '}');
    } else {
        lx_jw_str(w, lx_str_eq_c(t, "any") ? LX_STR("required") : t);
    }
    if (cJSON_IsTrue(lx_json_get(tc, "disable_parallel_tool_use"))) {
        lx_jw_key(w, "parallel_tool_calls");
        lx_jw_lit(w, "false");
    }
    return 0;
}

/* A number parameter copied as is (null means absent). */
static int copy_number(struct req *r, const cJSON *in, const char *from, const char *to)
{
    const cJSON *v = lx_json_get(in, from);
    if (!v || cJSON_IsNull(v)) {
        return 0;
    }
    if (!cJSON_IsNumber(v)) {
        return req_fail(r, "%s: Input should be a valid number", from);
    }
    lx_jw_key(&r->w, to);
    lx_jw_cjson(&r->w, v);
    return 0;
}

/* Top-level fields that must be checked before anything is written. */
static int check_request(struct req *r, const cJSON *in)
{
    const cJSON *model = lx_json_get(in, "model");
    if (!model) {
        return req_fail(r, "model: Field required");
    }
    if (!is_str(model)) {
        return req_fail(r, "model: Input should be a valid string");
    }
    const cJSON *mt = lx_json_get(in, "max_tokens");
    if (!mt || cJSON_IsNull(mt)) {
        return req_fail(r, "max_tokens: Field required");
    }
    if (!cJSON_IsNumber(mt) || mt->valuedouble != floor(mt->valuedouble) ||
        fabs(mt->valuedouble) > 9007199254740992.0) {
        return req_fail(r, "max_tokens: Input should be a valid integer");
    }
    if (mt->valuedouble < 1) {
        return req_fail(r, "max_tokens: Input should be greater than or equal to 1");
    }
    const cJSON *msgs = lx_json_get(in, "messages");
    if (!msgs || cJSON_IsNull(msgs)) {
        return req_fail(r, "messages: Field required");
    }
    if (!cJSON_IsArray(msgs)) {
        return req_fail(r, "messages: Input should be a valid list");
    }
    if (!msgs->child) {
        return req_fail(r, "messages: at least one message is required");
    }
    const cJSON *s = lx_json_get(in, "stream");
    if (s && !cJSON_IsBool(s) && !cJSON_IsNull(s)) {
        return req_fail(r, "stream: Input should be a valid boolean");
    }
    const cJSON *stop = lx_json_get(in, "stop_sequences");
    if (stop && !cJSON_IsNull(stop)) {
        if (!cJSON_IsArray(stop)) {
            return req_fail(r, "stop_sequences: Input should be a valid list");
        }
        int i = 0;
        for (const cJSON *x = stop->child; x; x = x->next, i++) {
            if (!is_str(x)) {
                return req_fail(r, "stop_sequences.%d: Input should be a valid string", i);
            }
        }
    }
    const cJSON *md = lx_json_get(in, "metadata");
    if (md && !cJSON_IsNull(md) && !cJSON_IsObject(md)) {
        return req_fail(r, "metadata: Input should be a valid dictionary");
    }
    const cJSON *uid = lx_json_get(md, "user_id");
    if (uid && !cJSON_IsNull(uid) && !is_str(uid)) {
        return req_fail(r, "metadata.user_id: Input should be a valid string");
    }
    const cJSON *ts = lx_json_get(in, "tools");
    if (ts && !cJSON_IsNull(ts) && !cJSON_IsArray(ts)) {
        return req_fail(r, "tools: Input should be a valid list");
    }
    return 0;
}

static int translate_request(struct lx_str body, struct lx_buf *out, struct lx_error *err)
{
    cJSON *in = NULL;
    int rc = parse(body, &in);
    if (rc) {
        return lx_error_set(err, rc,
                            rc == LX_ENOMEM ? "out of memory" : "Malformed JSON in request body");
    }
    struct req r = {.err = err};
    size_t start = out->len;
    lx_buf_init(&r.tmp, out->limit);
    lx_jw_init(&r.w, out);
    struct lx_jw *w = &r.w;
    if (!cJSON_IsObject(in)) {
        req_fail(&r, "Request body must be a JSON object");
        goto out;
    }
    if (check_request(&r, in)) {
        goto out;
    }
    lx_jw_open(w, '{');
    lx_jw_key(w, "model");
    lx_jw_cjson(w, lx_json_get(in, "model"));
    lx_jw_key(w, "messages");
    lx_jw_open(w, '[');
    if (system_message(&r, lx_json_get(in, "system")) ||
        messages(&r, lx_json_get(in, "messages"))) {
        goto out;
    }
    lx_jw_close(w, ']');
    lx_jw_key(w, "max_tokens");
    lx_jw_cjson(w, lx_json_get(in, "max_tokens"));
    const cJSON *s = lx_json_get(in, "stream");
    if (cJSON_IsBool(s)) {
        lx_jw_key(w, "stream");
        lx_jw_lit(w, cJSON_IsTrue(s) ? "true" : "false");
    }
    if (cJSON_IsTrue(s)) {
        /* message_start and message_delta carry usage: ask for OpenAI's usage chunk. */
        lx_jw_key(w, "stream_options");
        lx_jw_lit(w, "{\"include_usage\":true}");
    }
    if (copy_number(&r, in, "temperature", "temperature") ||
        copy_number(&r, in, "top_p", "top_p") || copy_number(&r, in, "top_k", "top_k")) {
        goto out;
    }
    const cJSON *stop = lx_json_get(in, "stop_sequences");
    if (cJSON_IsArray(stop) && stop->child) {
        lx_jw_key(w, "stop");
        lx_jw_cjson(w, stop);
    }
    struct lx_str user = lx_json_str_of(lx_json_get(lx_json_get(in, "metadata"), "user_id"));
    if (user.p) {
        lx_jw_kstr(w, "user", user);
    }
    const cJSON *ts = lx_json_get(in, "tools");
    bool has_tools = cJSON_IsArray(ts) && ts->child;
    if (has_tools && tools(&r, ts)) {
        goto out;
    }
    if (tool_choice(&r, lx_json_get(in, "tool_choice"), has_tools)) {
        goto out;
    }
    lx_jw_close(w, '}');
out:
    rc = r.rc ? r.rc : w->rc;
    if (rc && !r.rc) {
        lx_error_set(err, rc,
                     rc == LX_ETOOBIG ? "Request too large after translation" : "out of memory");
    }
    if (rc) {
        lx_buf_truncate(out, start);
    }
    lx_buf_fini(&r.tmp);
    cJSON_Delete(in);
    return rc;
}

/* ---- response ---- */

LX_TESTABLE const char *lx_client_anthropic_stop_reason(struct lx_str finish, bool has_tools);

/* OpenAI finish_reason -> Anthropic stop_reason. */
LX_TESTABLE const char *lx_client_anthropic_stop_reason(struct lx_str finish, bool has_tools)
{
    if (lx_str_eq_c(finish, "length")) {
        return "max_tokens";
    }
    if (lx_str_eq_c(finish, "tool_calls") || lx_str_eq_c(finish, "function_call")) {
        return "tool_use";
    }
    if (lx_str_eq_c(finish, "content_filter")) {
        return "refusal";
    }
    /* "stop", null or a server's own word; with tool calls the client must run them. */
    return has_tools ? "tool_use" : "end_turn";
}

struct usage {
    long long input, output, cache_read, cache_creation;
    bool has_cache_read, has_cache_creation;
};

static void usage_read(const cJSON *u, struct usage *out)
{
    memset(out, 0, sizeof(*out));
    long long prompt = count_of(lx_json_get(u, "prompt_tokens"));
    out->output = count_of(lx_json_get(u, "completion_tokens"));
    const cJSON *cr = lx_json_get(u, "cache_read_input_tokens");
    if (!cJSON_IsNumber(cr)) {
        cr = lx_json_get(lx_json_get(u, "prompt_tokens_details"), "cached_tokens");
    }
    const cJSON *cc = lx_json_get(u, "cache_creation_input_tokens");
    out->has_cache_read = cJSON_IsNumber(cr);
    out->has_cache_creation = cJSON_IsNumber(cc);
    out->cache_read = count_of(cr);
    out->cache_creation = count_of(cc);
    /* OpenAI's prompt_tokens include cached tokens; Anthropic's input_tokens do not. */
    long long in = prompt - out->cache_read - out->cache_creation;
    out->input = in > 0 ? in : 0;
}

static void usage_write(struct lx_jw *w, const struct usage *u)
{
    lx_jw_key(w, "usage");
    lx_jw_open(w, '{');
    lx_jw_kint(w, "input_tokens", u->input);
    lx_jw_kint(w, "output_tokens", u->output);
    if (u->has_cache_creation) {
        lx_jw_kint(w, "cache_creation_input_tokens", u->cache_creation);
    }
    if (u->has_cache_read) {
        lx_jw_kint(w, "cache_read_input_tokens", u->cache_read);
    }
    lx_jw_close(w, '}');
}

/* The text of a message's content: a string, or the text of its parts. */
static int content_text(const cJSON *c, struct lx_buf *tmp, struct lx_str *out)
{
    if (is_str(c)) {
        *out = lx_json_str_of(c);
        return 0;
    }
    lx_buf_reset(tmp);
    *out = LX_STR_NULL;
    if (!cJSON_IsArray(c)) {
        return 0;
    }
    for (const cJSON *p = c->child; p; p = p->next) {
        struct lx_str t = lx_json_str_of(lx_json_get(p, "text"));
        int rc = t.n ? lx_buf_append_str(tmp, t) : 0;
        if (rc) {
            return rc;
        }
    }
    *out = lx_buf_str(tmp);
    return 0;
}

/* A tool_use block for an OpenAI tool call (or legacy function_call). */
static int tool_use_block(struct lx_jw *w, const cJSON *id, const cJSON *fn)
{
    char gen[ID_MAX];
    struct lx_str sid = lx_json_str_of(id);
    if (!sid.n) {
        random_id(gen, sizeof(gen), "toolu_");
        sid = lx_str_c(gen);
    }
    const cJSON *args = lx_json_get(fn, "arguments");
    cJSON *parsed = NULL;
    if (is_str(args)) {
        int rc = parse(lx_json_str_of(args), &parsed);
        if (rc == LX_ENOMEM) {
            return rc;
        }
    }
    const cJSON *input = cJSON_IsObject(parsed) ? parsed : cJSON_IsObject(args) ? args : NULL;
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "type", LX_STR("tool_use"));
    lx_jw_kstr(w, "id", sid);
    lx_jw_kstr(w, "name",
               lx_json_str_of(lx_json_get(fn, "name")).p ? lx_json_str_of(lx_json_get(fn, "name"))
                                                         : LX_STR(""));
    lx_jw_key(w, "input");
    if (input) {
        lx_jw_cjson(w, input);
    } else {
        lx_jw_lit(w, "{}"); /* not an object: unusable as a tool input (see top) */
    }
    lx_jw_close(w, '}');
    cJSON_Delete(parsed);
    return 0;
}

static int translate_response(struct lx_str body, struct lx_buf *out, struct lx_error *err)
{
    cJSON *j = NULL;
    int rc = parse(body, &j);
    if (rc) {
        return lx_error_set(err, rc == LX_ENOMEM ? LX_ENOMEM : LX_EUPSTREAM,
                            rc == LX_ENOMEM ? "out of memory"
                                            : "the upstream response is not valid JSON");
    }
    size_t start = out->len;
    struct lx_buf tmp;
    lx_buf_init(&tmp, out->limit);
    struct lx_jw w;
    lx_jw_init(&w, out);
    const cJSON *choices = lx_json_get(j, "choices");
    if (!cJSON_IsObject(j)) {
        rc = lx_error_set(err, LX_EUPSTREAM, "the upstream response is not a JSON object");
        goto out;
    }
    if (!choices && lx_json_get(j, "error")) {
        struct lx_str m = lx_json_str_of(lx_json_get(lx_json_get(j, "error"), "message"));
        rc = lx_error_set(err, LX_EUPSTREAM, "the upstream answered with an error: %.*s",
                          (int)LX_MIN(m.n, 300), m.p ? m.p : "");
        goto out;
    }
    if (choices && !cJSON_IsArray(choices)) {
        rc = lx_error_set(err, LX_EUPSTREAM, "the upstream response has no valid choices");
        goto out;
    }
    const cJSON *msg = lx_json_get(cJSON_GetArrayItem(choices, 0), "message");
    const cJSON *calls = lx_json_get(msg, "tool_calls");
    const cJSON *fcall = lx_json_get(msg, "function_call");
    bool has_tools = (cJSON_IsArray(calls) && calls->child) || cJSON_IsObject(fcall);
    char id[ID_MAX + 8];
    message_id(id, sizeof(id), lx_json_get(j, "id"));
    struct lx_str model = lx_json_str_of(lx_json_get(j, "model"));

    lx_jw_open(&w, '{');
    lx_jw_kstr(&w, "id", lx_str_c(id));
    lx_jw_kstr(&w, "type", LX_STR("message"));
    lx_jw_kstr(&w, "role", LX_STR("assistant"));
    lx_jw_kstr(&w, "model", model.p ? model : LX_STR(""));
    lx_jw_key(&w, "content");
    lx_jw_open(&w, '[');
    struct lx_str reasoning = lx_json_str_of(lx_json_get(msg, "reasoning_content"));
    if (!reasoning.n) {
        reasoning = lx_json_str_of(lx_json_get(msg, "reasoning"));
    }
    if (reasoning.n) {
        lx_jw_open(&w, '{');
        lx_jw_kstr(&w, "type", LX_STR("thinking"));
        lx_jw_kstr(&w, "thinking", reasoning);
        lx_jw_kstr(&w, "signature", LX_STR(""));
        lx_jw_close(&w, '}');
    }
    struct lx_str text;
    rc = content_text(lx_json_get(msg, "content"), &tmp, &text);
    if (rc) {
        lx_error_set(err, rc, "response too large");
        goto out;
    }
    if (!text.n) {
        text = lx_json_str_of(lx_json_get(msg, "refusal"));
    }
    if (text.n) {
        lx_jw_open(&w, '{');
        lx_jw_kstr(&w, "type", LX_STR("text"));
        lx_jw_kstr(&w, "text", text);
        lx_jw_close(&w, '}');
    }
    for (const cJSON *tc = cJSON_IsArray(calls) ? calls->child : NULL; tc && !rc; tc = tc->next) {
        if (cJSON_IsObject(lx_json_get(tc, "function"))) {
            rc = tool_use_block(&w, lx_json_get(tc, "id"), lx_json_get(tc, "function"));
        }
    }
    if (!rc && cJSON_IsObject(fcall)) {
        rc = tool_use_block(&w, NULL, fcall);
    }
    if (rc) {
        lx_error_set(err, rc, "out of memory");
        goto out;
    }
    lx_jw_close(&w, ']');
    struct lx_str finish =
        lx_json_str_of(lx_json_get(cJSON_GetArrayItem(choices, 0), "finish_reason"));
    const char *stop = lx_client_anthropic_stop_reason(finish, has_tools);
    if (!text.n && lx_str_eq_c(finish, "content_filter")) {
        stop = "refusal";
    }
    lx_jw_kstr(&w, "stop_reason", lx_str_c(stop));
    lx_jw_key(&w, "stop_sequence");
    lx_jw_lit(&w, "null");
    struct usage u;
    usage_read(lx_json_get(j, "usage"), &u);
    usage_write(&w, &u);
    lx_jw_close(&w, '}');
    rc = w.rc;
    if (rc) {
        lx_error_set(err, rc, rc == LX_ETOOBIG ? "response too large" : "out of memory");
    }
out:
    if (rc) {
        lx_buf_truncate(out, start);
    }
    lx_buf_fini(&tmp);
    cJSON_Delete(j);
    return rc;
}

/* ---- errors ---- */

LX_TESTABLE const char *lx_client_anthropic_error_type(int status, const char *openai_type);

/*
 * Anthropic's error type for a status (docs.anthropic.com/en/api/errors);
 * without a usable status, from the OpenAI type or code.
 */
LX_TESTABLE const char *lx_client_anthropic_error_type(int status, const char *openai_type)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
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
    case 503:
    case 529:
        return "overloaded_error";
    default:
        break;
    }
    if (status >= 400 && status <= 599) {
        return "api_error";
    }
    struct lx_str t = lx_str_c(openai_type ? openai_type : "");
    static const char *const same[] = {
        "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
        "request_too_large",     "rate_limit_error",     "overloaded_error", "api_error"};
    for (size_t i = 0; i < LX_ARRAY_LEN(same); i++) {
        if (lx_str_eq_c(t, same[i])) {
            return same[i];
        }
    }
    if (lx_str_eq_c(t, "requests") || lx_str_eq_c(t, "rate_limit_exceeded") ||
        lx_str_eq_c(t, "tokens") || lx_str_eq_c(t, "insufficient_quota")) {
        return "rate_limit_error";
    }
    if (lx_str_eq_c(t, "invalid_api_key")) {
        return "authentication_error";
    }
    return "api_error";
}

static int write_error(struct lx_buf *out, const char *type, struct lx_str message)
{
    size_t start = out->len;
    struct lx_jw w;
    lx_jw_init(&w, out);
    lx_jw_open(&w, '{');
    lx_jw_kstr(&w, "type", LX_STR("error"));
    lx_jw_key(&w, "error");
    lx_jw_open(&w, '{');
    lx_jw_kstr(&w, "type", lx_str_c(type));
    lx_jw_kstr(&w, "message", message.p ? message : LX_STR(""));
    lx_jw_close(&w, '}');
    lx_jw_close(&w, '}');
    if (w.rc) {
        lx_buf_truncate(out, start);
    }
    return w.rc;
}

static int error_body(int status, const char *type, struct lx_str message, struct lx_buf *out)
{
    return write_error(out, lx_client_anthropic_error_type(status, type), message);
}

/* ---- stream ---- */

enum block { BLOCK_NONE, BLOCK_TEXT, BLOCK_THINKING, BLOCK_TOOL };

struct stream {
    struct lx_buf scratch; /* one event's JSON */
    struct lx_jw w;
    char model[MODEL_MAX]; /* the request's model, until a chunk names one */
    char tool_id[ID_MAX];  /* id of the last tool call (truncated) */
    bool started;          /* message_start sent */
    bool ended;            /* message_stop or an error sent */
    enum block open;       /* the kind of the open block */
    long long index;       /* Anthropic index of the open block */
    long long n_blocks;    /* blocks opened so far */
    long long n_tools;     /* tool_use blocks opened so far */
    long long tool_index;  /* OpenAI index of the last tool call */
    struct lx_str finish;  /* last finish_reason (static or in finish_buf) */
    char finish_buf[32];
    struct usage usage;
};

static struct lx_jw *ev_begin(struct stream *s)
{
    lx_buf_reset(&s->scratch);
    lx_jw_init(&s->w, &s->scratch);
    return &s->w;
}

static int ev_end(struct stream *s, struct lx_buf *out, const char *name)
{
    if (s->w.rc) {
        return s->w.rc;
    }
    return lx_sse_append_event(out, lx_str_c(name), lx_buf_str(&s->scratch));
}

static int message_start(struct stream *s, const cJSON *chunk, struct lx_buf *out)
{
    char id[ID_MAX + 8];
    message_id(id, sizeof(id), lx_json_get(chunk, "id"));
    struct lx_str model = lx_json_str_of(lx_json_get(chunk, "model"));
    if (!model.n) {
        model = lx_str_c(s->model);
    }
    const cJSON *u = lx_json_get(chunk, "usage");
    if (cJSON_IsObject(u)) {
        usage_read(u, &s->usage);
    }
    struct lx_jw *w = ev_begin(s);
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "type", LX_STR("message_start"));
    lx_jw_key(w, "message");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "id", lx_str_c(id));
    lx_jw_kstr(w, "type", LX_STR("message"));
    lx_jw_kstr(w, "role", LX_STR("assistant"));
    lx_jw_kstr(w, "model", (struct lx_str){model.p, LX_MIN(model.n, (size_t)MODEL_MAX)});
    lx_jw_key(w, "content");
    lx_jw_lit(w, "[]");
    lx_jw_key(w, "stop_reason");
    lx_jw_lit(w, "null");
    lx_jw_key(w, "stop_sequence");
    lx_jw_lit(w, "null");
    lx_jw_key(w, "usage");
    lx_jw_open(w, '{');
    lx_jw_kint(w, "input_tokens", s->usage.input);
    lx_jw_kint(w, "output_tokens", 0);
    lx_jw_close(w, '}');
    lx_jw_close(w, '}');
    lx_jw_close(w, '}');
    s->started = true;
    return ev_end(s, out, "message_start");
}

static int block_close(struct stream *s, struct lx_buf *out)
{
    if (s->open == BLOCK_NONE) {
        return 0;
    }
    struct lx_jw *w = ev_begin(s);
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "type", LX_STR("content_block_stop"));
    lx_jw_kint(w, "index", s->index);
    lx_jw_close(w, '}');
    s->open = BLOCK_NONE;
    return ev_end(s, out, "content_block_stop");
}

/* Close the open block and start one of kind k; w is left inside content_block. */
static struct lx_jw *block_start_begin(struct stream *s, struct lx_buf *out, enum block k, int *rc)
{
    *rc = block_close(s, out);
    s->open = k;
    s->index = s->n_blocks++;
    struct lx_jw *w = ev_begin(s);
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "type", LX_STR("content_block_start"));
    lx_jw_kint(w, "index", s->index);
    lx_jw_key(w, "content_block");
    lx_jw_open(w, '{');
    return w;
}

static int block_start_end(struct stream *s, struct lx_buf *out)
{
    lx_jw_close(&s->w, '}');
    lx_jw_close(&s->w, '}');
    return ev_end(s, out, "content_block_start");
}

/* A delta for the open block: {"type":dtype, key: value}. */
static int block_delta(struct stream *s, struct lx_buf *out, const char *dtype, const char *key,
                       struct lx_str value)
{
    struct lx_jw *w = ev_begin(s);
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "type", LX_STR("content_block_delta"));
    lx_jw_kint(w, "index", s->index);
    lx_jw_key(w, "delta");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "type", lx_str_c(dtype));
    lx_jw_kstr(w, key, value);
    lx_jw_close(w, '}');
    lx_jw_close(w, '}');
    return ev_end(s, out, "content_block_delta");
}

static int text_piece(struct stream *s, struct lx_buf *out, enum block k, struct lx_str piece)
{
    int rc = 0;
    if (s->open != k) {
        struct lx_jw *w = block_start_begin(s, out, k, &rc);
        if (k == BLOCK_TEXT) {
            lx_jw_kstr(w, "type", LX_STR("text"));
            lx_jw_kstr(w, "text", LX_STR(""));
        } else {
            lx_jw_kstr(w, "type", LX_STR("thinking"));
            lx_jw_kstr(w, "thinking", LX_STR(""));
            lx_jw_kstr(w, "signature", LX_STR(""));
        }
        rc = rc ? rc : block_start_end(s, out);
    }
    if (rc) {
        return rc;
    }
    return k == BLOCK_TEXT ? block_delta(s, out, "text_delta", "text", piece)
                           : block_delta(s, out, "thinking_delta", "thinking", piece);
}

static bool same_tool_id(const struct stream *s, struct lx_str id)
{
    size_t n = strlen(s->tool_id);
    return LX_MIN(id.n, sizeof(s->tool_id) - 1) == n && memcmp(id.p, s->tool_id, n) == 0;
}

static int tool_piece(struct stream *s, struct lx_buf *out, const cJSON *tc)
{
    const cJSON *ix = lx_json_get(tc, "index");
    bool has_index = cJSON_IsNumber(ix);
    long long index = count_of(ix);
    struct lx_str id = lx_json_str_of(lx_json_get(tc, "id"));
    const cJSON *fn = lx_json_get(tc, "function");
    struct lx_str name = lx_json_str_of(lx_json_get(fn, "name"));
    struct lx_str args = lx_json_str_of(lx_json_get(fn, "arguments"));
    bool same =
        s->n_tools > 0 && (!has_index || index == s->tool_index) && (!id.n || same_tool_id(s, id));
    if (same || (s->n_tools > 0 && has_index && index < s->tool_index && !id.n && !name.n)) {
        /* A piece of the current call, or of one whose block is closed (dropped: see top). */
        if (s->open != BLOCK_TOOL || !same || !args.n) {
            return 0;
        }
        return block_delta(s, out, "input_json_delta", "partial_json", args);
    }
    if (!id.n && !name.n && !args.n) {
        return 0; /* nothing to start a block with */
    }
    char gen[ID_MAX];
    if (!id.n) {
        random_id(gen, sizeof(gen), "toolu_");
        id = lx_str_c(gen);
    }
    s->tool_index = has_index ? index : s->n_tools ? s->tool_index + 1 : 0;
    s->n_tools++;
    snprintf(s->tool_id, sizeof(s->tool_id), "%.*s", (int)LX_MIN(id.n, sizeof(s->tool_id) - 1),
             id.p);
    int rc = 0;
    struct lx_jw *w = block_start_begin(s, out, BLOCK_TOOL, &rc);
    lx_jw_kstr(w, "type", LX_STR("tool_use"));
    lx_jw_kstr(w, "id", id);
    lx_jw_kstr(w, "name", name.p ? name : LX_STR(""));
    lx_jw_key(w, "input");
    lx_jw_lit(w, "{}");
    rc = rc ? rc : block_start_end(s, out);
    if (!rc && args.n) {
        rc = block_delta(s, out, "input_json_delta", "partial_json", args);
    }
    return rc;
}

static int stream_finish(struct stream *s, struct lx_buf *out)
{
    int rc = block_close(s, out);
    if (rc) {
        return rc;
    }
    struct lx_jw *w = ev_begin(s);
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "type", LX_STR("message_delta"));
    lx_jw_key(w, "delta");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "stop_reason",
               lx_str_c(lx_client_anthropic_stop_reason(s->finish, s->n_tools > 0)));
    lx_jw_key(w, "stop_sequence");
    lx_jw_lit(w, "null");
    lx_jw_close(w, '}');
    usage_write(w, &s->usage);
    lx_jw_close(w, '}');
    rc = ev_end(s, out, "message_delta");
    w = ev_begin(s);
    lx_jw_lit(w, "{\"type\":\"message_stop\"}");
    rc = rc ? rc : ev_end(s, out, "message_stop");
    s->ended = true;
    return rc;
}

/* An OpenAI error event ({"error":{...}} or {"error":"..."}) as Anthropic's. */
static int stream_error(struct stream *s, const cJSON *e, struct lx_buf *out)
{
    struct lx_str msg = is_str(e) ? lx_json_str_of(e) : lx_json_str_of(lx_json_get(e, "message"));
    const cJSON *code = lx_json_get(e, "code");
    int status = 0;
    if (cJSON_IsNumber(code)) {
        status = code->valuedouble >= 100 && code->valuedouble < 600 ? (int)code->valuedouble : 0;
    } else if (is_str(code)) {
        unsigned long long v;
        if (lx_str_to_u64(lx_json_str_of(code), 599, &v) == 0 && v >= 100) {
            status = (int)v;
        }
    }
    const char *type = lx_json_str_of(lx_json_get(e, "type")).p;
    if (!type && is_str(code)) {
        type = code->valuestring;
    }
    const char *at = lx_client_anthropic_error_type(status, type);
    if (!status && is_str(code) && strcmp(at, "api_error") == 0) {
        at = lx_client_anthropic_error_type(0, code->valuestring);
    }
    s->ended = true;
    lx_buf_reset(&s->scratch);
    int rc = write_error(&s->scratch, at, msg.p ? msg : LX_STR("upstream stream error"));
    return rc ? rc : lx_sse_append_event(out, LX_STR("error"), lx_buf_str(&s->scratch));
}

static int stream_chunk(struct stream *s, const cJSON *j, struct lx_buf *out)
{
    int rc = 0;
    if (!s->started) {
        rc = message_start(s, j, out);
    }
    const cJSON *choices = lx_json_get(j, "choices");
    for (const cJSON *ch = cJSON_IsArray(choices) ? choices->child : NULL; ch && !rc;
         ch = ch->next) {
        const cJSON *ci = lx_json_get(ch, "index");
        if (ci && count_of(ci) != 0) {
            continue; /* n > 1: Anthropic has one message */
        }
        const cJSON *d = lx_json_get(ch, "delta");
        struct lx_str r = lx_json_str_of(lx_json_get(d, "reasoning_content"));
        if (!r.n) {
            r = lx_json_str_of(lx_json_get(d, "reasoning"));
        }
        if (r.n) {
            rc = text_piece(s, out, BLOCK_THINKING, r);
        }
        struct lx_str t = lx_json_str_of(lx_json_get(d, "content"));
        if (!t.n) {
            t = lx_json_str_of(lx_json_get(d, "refusal"));
        }
        if (!rc && t.n) {
            rc = text_piece(s, out, BLOCK_TEXT, t);
        }
        const cJSON *tcs = lx_json_get(d, "tool_calls");
        for (const cJSON *tc = cJSON_IsArray(tcs) ? tcs->child : NULL; tc && !rc; tc = tc->next) {
            if (cJSON_IsObject(tc)) {
                rc = tool_piece(s, out, tc);
            }
        }
        struct lx_str f = lx_json_str_of(lx_json_get(ch, "finish_reason"));
        if (f.n) {
            size_t n = LX_MIN(f.n, sizeof(s->finish_buf) - 1);
            memcpy(s->finish_buf, f.p, n);
            s->finish_buf[n] = '\0';
            s->finish = (struct lx_str){s->finish_buf, n};
        }
    }
    const cJSON *u = lx_json_get(j, "usage");
    if (!rc && cJSON_IsObject(u)) {
        usage_read(u, &s->usage);
    }
    return rc;
}

static void *stream_new(struct lx_arena *arena, const cJSON *request)
{
    struct stream *s = lx_arena_try_alloc(arena, sizeof(*s));
    if (!s) {
        return NULL;
    }
    memset(s, 0, sizeof(*s));
    lx_buf_init(&s->scratch, SCRATCH_MAX);
    struct lx_str m = lx_json_str_of(lx_json_get(request, "model"));
    snprintf(s->model, sizeof(s->model), "%.*s", (int)LX_MIN(m.n, sizeof(s->model) - 1),
             m.p ? m.p : "");
    return s;
}

static void stream_free(void *state)
{
    struct stream *s = state;
    lx_buf_fini(&s->scratch);
}

static int translate_event(void *state, struct lx_str data, struct lx_buf *out,
                           struct lx_error *err)
{
    struct stream *s = state;
    if (s->ended) {
        return 0;
    }
    size_t start = out->len;
    int rc;
    if (lx_str_eq_c(lx_str_trim(data), "[DONE]")) {
        rc = s->started ? 0 : message_start(s, NULL, out);
        rc = rc ? rc : stream_finish(s, out);
        goto out;
    }
    cJSON *j = NULL;
    rc = parse(data, &j);
    if (rc == LX_EINVAL || (!rc && !cJSON_IsObject(j))) {
        cJSON_Delete(j);
        lx_buf_truncate(out, start);
        return lx_error_set(err, LX_EUPSTREAM, "an upstream stream event is not a JSON object");
    }
    if (!rc) {
        const cJSON *e = lx_json_get(j, "error");
        rc = cJSON_IsObject(e) || is_str(e) ? stream_error(s, e, out) : stream_chunk(s, j, out);
    }
    cJSON_Delete(j);
out:
    if (rc) {
        lx_buf_truncate(out, start);
        lx_error_set(err, rc, "cannot translate a stream event: %s", lx_strerror(rc));
    }
    return rc;
}

const struct lx_client_adapter lx_client_anthropic = {
    .name = "anthropic",
    .translate_request = translate_request,
    .translate_response = translate_response,
    .error_body = error_body,
    .stream_new = stream_new,
    .translate_event = translate_event,
    .stream_free = stream_free,
};

/* ---- count_tokens ---- */

/* Bytes of text in a content value: a string, or blocks' text (tool results included). */
static size_t text_bytes(const cJSON *c, int depth)
{
    if (is_str(c)) {
        return strlen(c->valuestring);
    }
    size_t n = 0;
    for (const cJSON *b = cJSON_IsArray(c) && depth < 4 ? c->child : NULL; b; b = b->next) {
        const cJSON *t = lx_json_get(b, "text");
        if (is_str(t)) {
            n += strlen(t->valuestring);
        }
        if (type_is(b, "tool_result")) {
            n += text_bytes(lx_json_get(b, "content"), depth + 1);
        }
    }
    return n;
}

int lx_client_anthropic_count_tokens(struct lx_str body, struct lx_buf *out, struct lx_error *err)
{
    cJSON *j = NULL;
    int rc = parse(body, &j);
    if (rc) {
        return lx_error_set(err, rc,
                            rc == LX_ENOMEM ? "out of memory" : "Malformed JSON in request body");
    }
    const cJSON *msgs = lx_json_get(j, "messages");
    if (!cJSON_IsObject(j)) {
        rc = lx_error_set(err, LX_EINVAL, "Request body must be a JSON object");
    } else if (!msgs) {
        rc = lx_error_set(err, LX_EINVAL, "messages: Field required");
    } else if (!cJSON_IsArray(msgs)) {
        rc = lx_error_set(err, LX_EINVAL, "messages: Input should be a valid list");
    } else {
        size_t bytes = text_bytes(lx_json_get(j, "system"), 0);
        for (const cJSON *m = msgs->child; m; m = m->next) {
            bytes += text_bytes(lx_json_get(m, "content"), 0);
        }
        size_t n = (bytes + 3) / 4;
        rc = lx_buf_printf(out, "{\"input_tokens\":%zu}", n ? n : 1);
        if (rc) {
            lx_error_set(err, rc, "out of memory");
        }
    }
    cJSON_Delete(j);
    return rc;
}
