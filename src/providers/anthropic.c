/*
 * Anthropic Messages API (https://docs.anthropic.com/en/api/messages and
 * .../messages-streaming) behind OpenAI's chat completions, translated both
 * ways so that an OpenAI client cannot tell.
 *
 * Request (OpenAI chat body -> POST {api_base}/v1/messages):
 * - system and developer messages (anywhere in the list) become the top-level
 *   `system` list of text blocks, in order; user, assistant and tool messages
 *   become `messages`, consecutive turns of the same Anthropic role merged
 *   into one message with several blocks (tool results are user turns, so a
 *   run of tool messages and a following user message form one turn, tool
 *   results first as the API requires). Empty text is dropped: the API
 *   rejects empty text blocks.
 * - text parts, images (data: URLs as base64 sources, http(s) URLs as url
 *   sources; application/pdf becomes a document block), `file` parts with
 *   file_data, assistant tool_calls (tool_use, arguments parsed: invalid JSON
 *   is a 400) and tool messages (tool_result); cache_control on a part or a
 *   message is carried over as LiteLLM does.
 * - tools, tool_choice (auto / required=any / none / a named function) and
 *   parallel_tool_calls=false (disable_parallel_tool_use), max_tokens /
 *   max_completion_tokens (default ANT_DEFAULT_MAX_TOKENS: Anthropic requires
 *   the field), temperature, top_p, top_k, stop -> stop_sequences, user ->
 *   metadata.user_id, thinking (Anthropic's own, passed through), stream.
 * - response_format json_object / json_schema: Anthropic has no JSON mode;
 *   like LiteLLM's simplest variant we add a system instruction (with the
 *   schema, when given) rather than forcing a tool, so the answer stays in
 *   message.content and needs no special response handling.
 * - n > 1 is a 400. Everything else OpenAI-only (frequency_penalty,
 *   presence_penalty, logit_bias, seed, logprobs, stream_options,
 *   reasoning_effort, ...) is dropped. litellm_params defaults (the
 *   deployment's extra_params) fill fields the client did not send.
 *
 * Responses, errors and stream events are parsed with cJSON (allocations go
 * through lx_try_malloc) and written with a small JSON writer straight into
 * the caller's capped buffer; on failure the buffer is restored to its
 * previous length. Nothing trusts upstream bytes: every field is type
 * checked, token counts are bounded, ids and model names are capped, and the
 * stream state is a fixed-size struct in the call's arena.
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

/* Anthropic requires max_tokens; LiteLLM's default for Claude is 4096 as well. */
#define ANT_DEFAULT_MAX_TOKENS 4096
#define ANT_DEFAULT_VERSION "2023-06-01"
/* Content block indexes a stream may use (Anthropic numbers them from 0). */
#define ANT_MAX_BLOCKS 1024
/* Longest message id and model name accepted from a stream. */
#define ANT_MAX_NAME 255
/* Cap on one translated stream chunk (an upstream event is capped by the SSE parser). */
#define ANT_MAX_CHUNK_BYTES (64u << 20)

/* ---- shared helpers ---- */

/* Anthropic stop_reason -> OpenAI finish_reason; unknown and null are "stop". */
LX_TESTABLE const char *lx_anthropic_finish_reason(struct lx_str stop_reason);
LX_TESTABLE const char *lx_anthropic_finish_reason(struct lx_str r)
{
    if (lx_str_eq_c(r, "max_tokens") || lx_str_eq_c(r, "model_context_window_exceeded")) {
        return "length";
    }
    if (lx_str_eq_c(r, "tool_use")) {
        return "tool_calls";
    }
    if (lx_str_eq_c(r, "refusal")) {
        return "content_filter";
    }
    return "stop"; /* end_turn, stop_sequence, pause_turn, null */
}

/* Status an Anthropic error type stands for (https://docs.anthropic.com/en/api/errors). */
static int status_for_error_type(struct lx_str t)
{
    static const struct {
        const char *type;
        int status;
    } map[] = {
        {"invalid_request_error", 400}, {"authentication_error", 401},
        {"billing_error", 402},         {"permission_error", 403},
        {"not_found_error", 404},       {"request_too_large", 413},
        {"rate_limit_error", 429},      {"api_error", 500},
        {"timeout_error", 504},         {"overloaded_error", 503},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(map); i++) {
        if (lx_str_eq_c(t, map[i].type)) {
            return map[i].status;
        }
    }
    return 500;
}

/*
 * A token count: absent or null is 0; anything but a non-negative number up
 * to 2^53 is malformed (-1).
 */
struct usage {
    long long input, output, cache_creation, cache_read;
};

/* Update u with the counts usage carries (message_delta repeats only some). */
static int read_usage(const cJSON *usage, struct usage *u, bool only_present)
{
    static const char *const keys[] = {"input_tokens", "output_tokens",
                                       "cache_creation_input_tokens", "cache_read_input_tokens"};
    long long *dst[] = {&u->input, &u->output, &u->cache_creation, &u->cache_read};
    if (usage && !cJSON_IsNull(usage) && !cJSON_IsObject(usage)) {
        return -1;
    }
    for (size_t i = 0; i < LX_ARRAY_LEN(keys); i++) {
        const cJSON *v = lx_json_get(usage, keys[i]);
        if (only_present && (!v || cJSON_IsNull(v))) {
            continue;
        }
        long long n = lx_provider__token_count(usage, keys[i]);
        if (n < 0) {
            return -1;
        }
        *dst[i] = n;
    }
    return 0;
}

static void write_usage(struct lx_jw *w, const struct usage *u)
{
    /* Anthropic's input_tokens exclude cached tokens; OpenAI's prompt_tokens include them. */
    long long prompt = u->input + u->cache_creation + u->cache_read;
    lx_jw_key(w, "usage");
    lx_jw_open(w, '{');
    lx_jw_kint(w, "prompt_tokens", prompt);
    lx_jw_kint(w, "completion_tokens", u->output);
    lx_jw_kint(w, "total_tokens", prompt + u->output);
    lx_jw_key(w, "prompt_tokens_details");
    lx_jw_open(w, '{');
    lx_jw_kint(w, "cached_tokens", u->cache_read);
    lx_jw_close(w, '}');
    lx_jw_kint(w, "cache_creation_input_tokens", u->cache_creation);
    lx_jw_kint(w, "cache_read_input_tokens", u->cache_read);
    lx_jw_close(w, '}');
}

/* ---- request ---- */

enum turn { TURN_NONE, TURN_USER, TURN_ASSISTANT };

struct req {
    const struct lx_provider_call *call;
    struct lx_jw w;
    struct lx_error *err;
    enum turn turn; /* role of the open message, TURN_NONE before the first */
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

/* Open a block in a message of role t, closing the previous message if its role differs. */
static void begin_block(struct req *r, enum turn t)
{
    struct lx_jw *w = &r->w;
    if (r->turn != t) {
        if (r->turn != TURN_NONE) {
            lx_jw_close(w, ']');
            lx_jw_close(w, '}');
        }
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "role", t == TURN_USER ? LX_STR("user") : LX_STR("assistant"));
        lx_jw_key(w, "content");
        lx_jw_open(w, '[');
        r->turn = t;
    }
}

static void put_cache_control(struct lx_jw *w, const cJSON *cc)
{
    if (cJSON_IsObject(cc)) {
        lx_jw_key(w, "cache_control");
        lx_jw_cjson(w, cc);
    }
}

/* "data:<media type>[;params];base64,<data>" */
static bool parse_data_url(struct lx_str url, struct lx_str *media, struct lx_str *data)
{
    if (!lx_str_has_prefix(url, LX_STR("data:"))) {
        return false;
    }
    struct lx_str rest = lx_str_sub(url, 5);
    const char *comma = memchr(rest.p, ',', rest.n);
    if (!comma) {
        return false;
    }
    struct lx_str head = {rest.p, (size_t)(comma - rest.p)};
    if (head.n < 7 || memcmp(head.p + head.n - 7, ";base64", 7) != 0) {
        return false;
    }
    const char *semi = memchr(head.p, ';', head.n);
    *media = (struct lx_str){head.p, (size_t)(semi - head.p)};
    *data = lx_str_sub(rest, head.n + 1);
    return media->n > 0;
}

/* An image or document block from a URL: a data: URL inline, else a url source. */
static int put_media(struct req *r, const char *where, struct lx_str url, const cJSON *cc)
{
    struct lx_jw *w = &r->w;
    struct lx_str media, data;
    if (lx_str_has_prefix(url, LX_STR("data:"))) {
        if (!parse_data_url(url, &media, &data)) {
            return req_fail(r, LX_EINVAL, "%s: only base64 data URLs are supported", where);
        }
        bool pdf = lx_str_eq_c(media, "application/pdf");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "type", pdf ? LX_STR("document") : LX_STR("image"));
        lx_jw_key(w, "source");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "type", LX_STR("base64"));
        lx_jw_kstr(w, "media_type", media);
        lx_jw_kstr(w, "data", data);
        lx_jw_close(w, '}');
    } else if (lx_str_has_prefix(url, LX_STR("https://")) ||
               lx_str_has_prefix(url, LX_STR("http://"))) {
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "type", LX_STR("image"));
        lx_jw_key(w, "source");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "type", LX_STR("url"));
        lx_jw_kstr(w, "url", url);
        lx_jw_close(w, '}');
    } else {
        return req_fail(r, LX_EINVAL, "%s: the URL must be a data: URL or an http(s) URL", where);
    }
    put_cache_control(w, cc);
    lx_jw_close(w, '}');
    return 0;
}

/* Whether a content part produces no block (empty text, or a kind we drop). */
static bool part_is_empty(const cJSON *part)
{
    struct lx_str type = lx_json_str_of(lx_json_get(part, "type"));
    if (lx_str_eq_c(type, "text")) {
        const cJSON *t = lx_json_get(part, "text");
        return cJSON_IsString(t) && lx_json_str_of(t).n == 0;
    }
    /* Assistant refusals and echoed reasoning have no Anthropic input form. */
    return lx_str_eq_c(type, "refusal") || lx_str_eq_c(type, "thinking") ||
           lx_str_eq_c(type, "redacted_thinking");
}

/*
 * One OpenAI content part as an Anthropic block at the writer's position.
 * msg_cc is the message's cache_control, used when the part has none.
 */
static int put_part(struct req *r, const char *where, const cJSON *part, const cJSON *msg_cc)
{
    struct lx_jw *w = &r->w;
    if (!cJSON_IsObject(part)) {
        return req_fail(r, LX_EINVAL, "%s: a content part must be an object", where);
    }
    struct lx_str type = lx_json_str_of(lx_json_get(part, "type"));
    const cJSON *cc = lx_json_get(part, "cache_control");
    if (!cc) {
        cc = msg_cc;
    }
    if (lx_str_eq_c(type, "text")) {
        const cJSON *t = lx_json_get(part, "text");
        if (!cJSON_IsString(t)) {
            return req_fail(r, LX_EINVAL, "%s: a text part needs a string 'text'", where);
        }
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "type", LX_STR("text"));
        lx_jw_kstr(w, "text", lx_json_str_of(t));
        put_cache_control(w, cc);
        lx_jw_close(w, '}');
        return 0;
    }
    if (lx_str_eq_c(type, "image_url")) {
        const cJSON *iu = lx_json_get(part, "image_url");
        const cJSON *u = cJSON_IsObject(iu) ? lx_json_get(iu, "url") : iu;
        if (!cJSON_IsString(u)) {
            return req_fail(r, LX_EINVAL, "%s: an image_url part needs image_url.url", where);
        }
        return put_media(r, where, lx_json_str_of(u), cc);
    }
    if (lx_str_eq_c(type, "file")) {
        const cJSON *fd = lx_json_get(lx_json_get(part, "file"), "file_data");
        if (!cJSON_IsString(fd)) {
            return req_fail(r, LX_EINVAL,
                            "%s: a file part needs file.file_data (file ids are not supported "
                            "by Anthropic)",
                            where);
        }
        return put_media(r, where, lx_json_str_of(fd), cc);
    }
    if (!type.p) {
        return req_fail(r, LX_EINVAL, "%s: a content part needs a string 'type'", where);
    }
    return req_fail(r, LX_EINVAL, "%s: content part type '%.*s' is not supported by Anthropic",
                    where, (int)LX_MIN(type.n, 64), type.p);
}

/*
 * A message's content as blocks of a turn of role t: a string is one text
 * block; an array is one block per part. cc is the message's cache_control,
 * applied to its last block.
 */
static int put_content(struct req *r, const char *where, enum turn t, const cJSON *content,
                       const cJSON *cc)
{
    struct lx_jw *w = &r->w;
    if (cJSON_IsString(content)) {
        struct lx_str s = lx_json_str_of(content);
        if (!s.n) {
            return 0;
        }
        begin_block(r, t);
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "type", LX_STR("text"));
        lx_jw_kstr(w, "text", s);
        put_cache_control(w, cc);
        lx_jw_close(w, '}');
        return 0;
    }
    if (!cJSON_IsArray(content)) {
        return req_fail(r, LX_EINVAL, "%s: content must be a string or an array of parts", where);
    }
    const cJSON *last = NULL;
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        if (!part_is_empty(part)) {
            last = part;
        }
    }
    cJSON_ArrayForEach(part, content)
    {
        if (part_is_empty(part)) {
            continue;
        }
        begin_block(r, t);
        int rc = put_part(r, where, part, part == last ? cc : NULL);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int put_tool_use(struct req *r, const char *where, const cJSON *tc)
{
    struct lx_jw *w = &r->w;
    const cJSON *fn = lx_json_get(tc, "function");
    struct lx_str id = lx_json_str_of(lx_json_get(tc, "id"));
    struct lx_str name = lx_json_str_of(lx_json_get(fn, "name"));
    if (!cJSON_IsObject(tc) || !id.p || !name.p) {
        return req_fail(r, LX_EINVAL, "%s: a tool call needs a string id and function.name", where);
    }
    const cJSON *args = lx_json_get(fn, "arguments");
    cJSON *parsed = NULL;
    const cJSON *input = args;
    if (cJSON_IsString(args)) {
        struct lx_str a = lx_str_trim(lx_json_str_of(args));
        if (a.n) {
            parsed = cJSON_ParseWithLength(a.p, a.n);
            struct lx_str unused;
            if (!parsed && lx_json_find_top(a, LX_STR(""), &unused) != LX_EINVAL) {
                /* A valid object cJSON could not parse: its allocation failed. */
                return req_fail(r, LX_ENOMEM, "Out of memory");
            }
            if (!parsed) {
                return req_fail(r, LX_EINVAL,
                                "%s: function.arguments of tool call '%.*s' is not valid JSON",
                                where, (int)LX_MIN(id.n, 64), id.p);
            }
        }
        input = parsed;
    }
    if (input && !cJSON_IsObject(input)) {
        cJSON_Delete(parsed);
        return req_fail(r, LX_EINVAL,
                        "%s: function.arguments of tool call '%.*s' must be a JSON object", where,
                        (int)LX_MIN(id.n, 64), id.p);
    }
    begin_block(r, TURN_ASSISTANT);
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "type", LX_STR("tool_use"));
    lx_jw_kstr(w, "id", id);
    lx_jw_kstr(w, "name", name);
    lx_jw_key(w, "input");
    if (input) {
        lx_jw_cjson(w, input);
    } else {
        lx_jw_lit(w, "{}");
    }
    lx_jw_close(w, '}');
    cJSON_Delete(parsed);
    return 0;
}

static int put_tool_result(struct req *r, const char *where, const cJSON *msg)
{
    struct lx_jw *w = &r->w;
    struct lx_str id = lx_json_str_of(lx_json_get(msg, "tool_call_id"));
    if (!id.p) {
        return req_fail(r, LX_EINVAL, "%s: a tool message needs a string tool_call_id", where);
    }
    const cJSON *content = lx_json_get(msg, "content");
    begin_block(r, TURN_USER);
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "type", LX_STR("tool_result"));
    lx_jw_kstr(w, "tool_use_id", id);
    if (cJSON_IsString(content)) {
        lx_jw_kstr(w, "content", lx_json_str_of(content));
    } else if (cJSON_IsArray(content)) {
        lx_jw_key(w, "content");
        lx_jw_open(w, '[');
        const cJSON *part;
        cJSON_ArrayForEach(part, content)
        {
            if (part_is_empty(part)) {
                continue;
            }
            int rc = put_part(r, where, part, NULL);
            if (rc) {
                return rc;
            }
        }
        lx_jw_close(w, ']');
    } else if (content && !cJSON_IsNull(content)) {
        return req_fail(r, LX_EINVAL, "%s: content must be a string or an array of parts", where);
    }
    put_cache_control(w, lx_json_get(msg, "cache_control"));
    lx_jw_close(w, '}');
    return 0;
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
        struct lx_str role = lx_json_str_of(lx_json_get(m, "role"));
        const cJSON *content = lx_json_get(m, "content");
        const cJSON *cc = lx_json_get(m, "cache_control");
        int rc = 0;
        if (lx_str_eq_c(role, "system") || lx_str_eq_c(role, "developer")) {
            continue; /* written into `system` */
        } else if (lx_str_eq_c(role, "user")) {
            if (!content) {
                return req_fail(r, LX_EINVAL, "%s: a user message needs content", where);
            }
            rc = put_content(r, where, TURN_USER, content, cc);
        } else if (lx_str_eq_c(role, "assistant")) {
            const cJSON *calls = lx_json_get(m, "tool_calls");
            if (content && !cJSON_IsNull(content)) {
                rc = put_content(r, where, TURN_ASSISTANT, content, calls ? NULL : cc);
            }
            if (!rc && calls && !cJSON_IsNull(calls)) {
                if (!cJSON_IsArray(calls)) {
                    return req_fail(r, LX_EINVAL, "%s: tool_calls must be an array", where);
                }
                const cJSON *tc;
                cJSON_ArrayForEach(tc, calls)
                {
                    rc = put_tool_use(r, where, tc);
                    if (rc) {
                        break;
                    }
                }
            }
        } else if (lx_str_eq_c(role, "tool")) {
            rc = put_tool_result(r, where, m);
        } else if (!cJSON_IsObject(m)) {
            return req_fail(r, LX_EINVAL, "%s: a message must be an object", where);
        } else if (!role.p) {
            return req_fail(r, LX_EINVAL, "%s: a message needs a string 'role'", where);
        } else {
            return req_fail(r, LX_EINVAL, "%s: role '%.*s' is not supported by Anthropic", where,
                            (int)LX_MIN(role.n, 64), role.p);
        }
        if (rc) {
            return rc;
        }
    }
    if (r->turn != TURN_NONE) {
        lx_jw_close(w, ']');
        lx_jw_close(w, '}');
    }
    lx_jw_close(w, ']');
    return 0;
}

/* The JSON-mode instruction for response_format (Anthropic has no native JSON mode). */
static int json_mode_text(struct req *r, const cJSON *rf, struct lx_buf *text)
{
    struct lx_str type = lx_json_str_of(lx_json_get(rf, "type"));
    if (lx_str_eq_c(type, "json_object")) {
        return lx_buf_append_c(text, "Respond only with a valid JSON object, with no other text.");
    }
    if (!lx_str_eq_c(type, "json_schema")) {
        return 0; /* "text" and unknown kinds: no instruction */
    }
    const cJSON *schema = lx_json_get(lx_json_get(rf, "json_schema"), "schema");
    if (!cJSON_IsObject(schema)) {
        return lx_buf_append_c(text, "Respond only with a valid JSON object, with no other text.");
    }
    char *s = cJSON_PrintUnformatted(schema);
    if (!s) {
        return LX_ENOMEM;
    }
    int rc = lx_buf_printf(text,
                           "Respond only with a valid JSON object, with no other text, that "
                           "conforms to this JSON schema: %s",
                           s);
    cJSON_free(s);
    (void)r;
    return rc;
}

static int put_system(struct req *r, const cJSON *messages)
{
    struct lx_jw *w = &r->w;
    bool opened = false;
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        char where[48];
        snprintf(where, sizeof(where), "messages[%zu]", i++);
        struct lx_str role = lx_json_str_of(lx_json_get(m, "role"));
        if (!lx_str_eq_c(role, "system") && !lx_str_eq_c(role, "developer")) {
            continue;
        }
        const cJSON *content = lx_json_get(m, "content");
        const cJSON *cc = lx_json_get(m, "cache_control");
        const cJSON *part;
        if (cJSON_IsString(content)) {
            if (!lx_json_str_of(content).n) {
                continue;
            }
            if (!opened) {
                lx_jw_key(w, "system");
                lx_jw_open(w, '[');
                opened = true;
            }
            lx_jw_open(w, '{');
            lx_jw_kstr(w, "type", LX_STR("text"));
            lx_jw_kstr(w, "text", lx_json_str_of(content));
            put_cache_control(w, cc);
            lx_jw_close(w, '}');
            continue;
        }
        if (!cJSON_IsArray(content)) {
            return req_fail(r, LX_EINVAL, "%s: system content must be a string or text parts",
                            where);
        }
        cJSON_ArrayForEach(part, content)
        {
            const cJSON *t = lx_json_get(part, "text");
            if (!lx_str_eq_c(lx_json_str_of(lx_json_get(part, "type")), "text") ||
                !cJSON_IsString(t)) {
                return req_fail(r, LX_EINVAL, "%s: system content parts must be text", where);
            }
            if (!lx_json_str_of(t).n) {
                continue;
            }
            if (!opened) {
                lx_jw_key(w, "system");
                lx_jw_open(w, '[');
                opened = true;
            }
            lx_jw_open(w, '{');
            lx_jw_kstr(w, "type", LX_STR("text"));
            lx_jw_kstr(w, "text", lx_json_str_of(t));
            put_cache_control(
                w, lx_json_get(part, "cache_control") ? lx_json_get(part, "cache_control") : cc);
            lx_jw_close(w, '}');
        }
    }
    const cJSON *rf = lx_provider__param(r->call, "response_format");
    if (rf) {
        struct lx_buf text;
        lx_buf_init(&text, r->w.b->limit);
        int rc = json_mode_text(r, rf, &text);
        if (rc) {
            lx_buf_fini(&text);
            return rc == LX_ETOOBIG ? req_fail(r, rc, "Request body too large")
                                    : req_fail(r, rc, "Out of memory");
        }
        if (text.len) {
            if (!opened) {
                lx_jw_key(w, "system");
                lx_jw_open(w, '[');
                opened = true;
            }
            lx_jw_open(w, '{');
            lx_jw_kstr(w, "type", LX_STR("text"));
            lx_jw_kstr(w, "text", lx_buf_str(&text));
            lx_jw_close(w, '}');
        }
        lx_buf_fini(&text);
    }
    if (opened) {
        lx_jw_close(w, ']');
    }
    return 0;
}

static int put_tools(struct req *r)
{
    struct lx_jw *w = &r->w;
    const cJSON *tools = lx_provider__param(r->call, "tools");
    if (!tools) {
        return 0;
    }
    if (!cJSON_IsArray(tools)) {
        return req_fail(r, LX_EINVAL, "tools must be an array");
    }
    if (!cJSON_GetArraySize(tools)) {
        return 0;
    }
    lx_jw_key(w, "tools");
    lx_jw_open(w, '[');
    size_t i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        if (!cJSON_IsObject(t)) {
            return req_fail(r, LX_EINVAL, "tools[%zu] must be an object", i);
        }
        struct lx_str type = lx_json_str_of(lx_json_get(t, "type"));
        const cJSON *fn = lx_json_get(t, "function");
        if (type.p && !lx_str_eq_c(type, "function")) {
            /* Anthropic's own tool kinds (bash, text_editor, web_search...) pass as is. */
            lx_jw_cjson(w, t);
            i++;
            continue;
        }
        struct lx_str name = lx_json_str_of(lx_json_get(fn, "name"));
        if (!name.p) {
            return req_fail(r, LX_EINVAL, "tools[%zu] needs function.name", i);
        }
        const cJSON *params = lx_json_get(fn, "parameters");
        if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params)) {
            return req_fail(r, LX_EINVAL, "tools[%zu].function.parameters must be an object", i);
        }
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "name", name);
        struct lx_str desc = lx_json_str_of(lx_json_get(fn, "description"));
        if (desc.p) {
            lx_jw_kstr(w, "description", desc);
        }
        lx_jw_key(w, "input_schema");
        if (cJSON_IsObject(params)) {
            lx_jw_cjson(w, params);
        } else {
            lx_jw_lit(w, "{\"type\":\"object\",\"properties\":{}}");
        }
        put_cache_control(w, lx_json_get(t, "cache_control"));
        lx_jw_close(w, '}');
        i++;
    }
    lx_jw_close(w, ']');

    /* tool_choice, and parallel_tool_calls=false as disable_parallel_tool_use. */
    const cJSON *tc = lx_provider__param(r->call, "tool_choice");
    const cJSON *ptc = lx_provider__param(r->call, "parallel_tool_calls");
    bool no_parallel = cJSON_IsFalse(ptc);
    struct lx_str type = LX_STR_NULL, name = LX_STR_NULL;
    if (cJSON_IsString(tc)) {
        struct lx_str s = lx_json_str_of(tc);
        if (lx_str_eq_c(s, "auto")) {
            type = LX_STR("auto");
        } else if (lx_str_eq_c(s, "required")) {
            type = LX_STR("any");
        } else if (lx_str_eq_c(s, "none")) {
            type = LX_STR("none");
        } else {
            return req_fail(r, LX_EINVAL, "tool_choice must be auto, required, none or a function");
        }
    } else if (cJSON_IsObject(tc)) {
        struct lx_str t_type = lx_json_str_of(lx_json_get(tc, "type"));
        if (lx_str_eq_c(t_type, "function")) {
            type = LX_STR("tool");
            name = lx_json_str_of(lx_json_get(lx_json_get(tc, "function"), "name"));
        } else if (lx_str_eq_c(t_type, "tool")) {
            type = t_type;
            name = lx_json_str_of(lx_json_get(tc, "name"));
        } else if (lx_str_eq_c(t_type, "auto") || lx_str_eq_c(t_type, "any") ||
                   lx_str_eq_c(t_type, "none")) {
            type = t_type;
        } else {
            return req_fail(r, LX_EINVAL, "tool_choice must be auto, required, none or a function");
        }
        if (lx_str_eq_c(type, "tool") && !name.p) {
            return req_fail(r, LX_EINVAL, "tool_choice needs function.name");
        }
    } else if (tc) {
        return req_fail(r, LX_EINVAL, "tool_choice must be a string or an object");
    }
    if (!type.p && no_parallel) {
        type = LX_STR("auto");
    }
    if (type.p) {
        lx_jw_key(w, "tool_choice");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "type", type);
        if (name.p) {
            lx_jw_kstr(w, "name", name);
        }
        /* The "none" choice takes no other field. */
        if (no_parallel && !lx_str_eq_c(type, "none")) {
            lx_jw_klit(w, "disable_parallel_tool_use", "true");
        }
        lx_jw_close(w, '}');
    }
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

static int put_number(struct req *r, const char *key)
{
    const cJSON *v = lx_provider__param(r->call, key);
    if (!v) {
        return 0;
    }
    if (!cJSON_IsNumber(v)) {
        return req_fail(r, LX_EINVAL, "%s must be a number", key);
    }
    lx_jw_key(&r->w, key);
    lx_jw_cjson(&r->w, v);
    return 0;
}

static int put_params(struct req *r)
{
    const struct lx_provider_call *call = r->call;
    struct lx_jw *w = &r->w;
    const cJSON *n = lx_provider__param(call, "n");
    if (n && !(cJSON_IsNumber(n) && n->valuedouble == 1)) {
        return req_fail(r, LX_EINVAL, "Anthropic supports only n=1");
    }
    int rc = put_number(r, "temperature");
    if (!rc) {
        rc = put_number(r, "top_p");
    }
    if (!rc) {
        rc = put_number(r, "top_k");
    }
    if (rc) {
        return rc;
    }
    const cJSON *stop = lx_provider__param(call, "stop");
    if (cJSON_IsString(stop)) {
        lx_jw_key(w, "stop_sequences");
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
            lx_jw_key(w, "stop_sequences");
            lx_jw_cjson(w, stop);
        }
    } else if (stop) {
        return req_fail(r, LX_EINVAL, "stop must be a string or a list of strings");
    }
    const cJSON *user = lx_provider__param(call, "user");
    if (user && !cJSON_IsString(user)) {
        return req_fail(r, LX_EINVAL, "user must be a string");
    }
    if (user) {
        lx_jw_key(w, "metadata");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "user_id", lx_json_str_of(user));
        lx_jw_close(w, '}');
    }
    const cJSON *thinking = lx_provider__param(call, "thinking");
    if (cJSON_IsObject(thinking)) {
        lx_jw_key(w, "thinking");
        lx_jw_cjson(w, thinking);
    }
    if (call->stream) {
        lx_jw_klit(w, "stream", "true");
    }
    return 0;
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
    const cJSON *mct = lx_provider__param(call, "max_completion_tokens");
    long long max_tokens = int_param(mct ? mct : lx_provider__param(call, "max_tokens"));
    if (max_tokens < 0) {
        return req_fail(r, LX_EINVAL, "%s must be a positive integer",
                        mct ? "max_completion_tokens" : "max_tokens");
    }
    const char *model = call->upstream_model ? call->upstream_model
                        : call->dep          ? call->dep->upstream_model
                                             : NULL;
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "model", lx_str_c(model ? model : ""));
    lx_jw_kint(w, "max_tokens", max_tokens ? max_tokens : ANT_DEFAULT_MAX_TOKENS);
    int rc = put_system(r, messages);
    if (!rc) {
        rc = put_messages(r, messages);
    }
    if (!rc) {
        rc = put_tools(r);
    }
    if (!rc) {
        rc = put_params(r);
    }
    if (rc) {
        return rc;
    }
    lx_jw_close(w, '}');
    return 0;
}

static int anthropic_build(const struct lx_provider_call *call, struct lx_provider_request *out,
                           struct lx_error *err)
{
    const struct lx_deployment *dep = call->dep;
    if (call->endpoint != LX_EP_CHAT) {
        return lx_error_set(err, LX_EINVAL,
                            "Anthropic deployments serve only /chat/completions (model group "
                            "'%s')",
                            dep->model_name);
    }
    struct lx_str base = lx_provider_api_base(dep);
    if (!base.p) {
        base = LX_STR("https://api.anthropic.com");
    }
    /* LiteLLM accepts api_base with or without the /v1/messages path. */
    const char *suffix = "/v1/messages";
    if (base.n >= 12 && memcmp(base.p + base.n - 12, "/v1/messages", 12) == 0) {
        suffix = "";
    } else if (base.n >= 3 && memcmp(base.p + base.n - 3, "/v1", 3) == 0) {
        suffix = "/messages";
    }
    out->url = lx_arena_printf(call->arena, "%.*s%s", LX_STR_FMT(base), suffix);
    lx_provider__add_header(out, "content-type", LX_STR("application/json"));
    lx_provider__add_header(out, "anthropic-version",
                            lx_str_c(dep->api_version ? dep->api_version : ANT_DEFAULT_VERSION));
    if (call->api_key) {
        lx_provider__add_header(out, "x-api-key", lx_str_c(call->api_key));
    }
    /* extra_headers (anthropic-beta among them) are forwarded as given. */
    for (size_t i = 0; i < dep->n_extra_headers; i++) {
        if (dep->extra_headers[i].key && dep->extra_headers[i].value) {
            lx_provider__add_header(out, dep->extra_headers[i].key,
                                    lx_str_c(dep->extra_headers[i].value));
        }
    }

    struct req r = {.call = call, .err = err};
    size_t mark = out->body->len;
    lx_jw_init(&r.w, out->body);
    int rc = build_body(&r);
    if (!rc && r.w.rc) {
        rc = r.w.rc == LX_ETOOBIG ? lx_error_set(err, LX_ETOOBIG, "Request body too large")
                                  : lx_error_set(err, r.w.rc, "Out of memory");
    }
    if (rc) {
        lx_buf_truncate(out->body, mark);
    }
    return rc;
}

/* ---- response ---- */

static int resp_fail(struct lx_error *err, int code, const char *msg)
{
    return lx_error_set(err, code, "%s", msg);
}

/* Concatenate the `field` of every block of type `type`; *out_any tells whether one existed. */
static int concat_blocks(const cJSON *content, const char *type, const char *field,
                         struct lx_buf *b, bool *out_any)
{
    const cJSON *blk;
    cJSON_ArrayForEach(blk, content)
    {
        if (!lx_str_eq_c(lx_json_str_of(lx_json_get(blk, "type")), type)) {
            continue;
        }
        const cJSON *t = lx_json_get(blk, field);
        if (!cJSON_IsString(t)) {
            return LX_EUPSTREAM;
        }
        *out_any = true;
        int rc = lx_buf_append_str(b, lx_json_str_of(t));
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int write_response(const struct lx_provider_call *call, const cJSON *j, struct lx_jw *w,
                          struct lx_buf *tmp, struct lx_error *err)
{
    const cJSON *content = lx_json_get(j, "content");
    if (!cJSON_IsArray(content)) {
        return resp_fail(err, LX_EUPSTREAM, "Anthropic response has no content array");
    }
    const cJSON *blk;
    size_t n_tools = 0;
    cJSON_ArrayForEach(blk, content)
    {
        struct lx_str type = lx_json_str_of(lx_json_get(blk, "type"));
        if (!type.p) {
            return resp_fail(err, LX_EUPSTREAM, "Anthropic content block has no type");
        }
        if (lx_str_eq_c(type, "tool_use")) {
            if (!lx_json_str_of(lx_json_get(blk, "id")).p ||
                !lx_json_str_of(lx_json_get(blk, "name")).p) {
                return resp_fail(err, LX_EUPSTREAM, "Anthropic tool_use block lacks id or name");
            }
            n_tools++;
        }
    }
    struct usage u = {0};
    if (read_usage(lx_json_get(j, "usage"), &u, false)) {
        return resp_fail(err, LX_EUPSTREAM, "Anthropic response has invalid usage");
    }
    struct lx_str id = lx_json_str_of(lx_json_get(j, "id"));
    char gen_id[48];
    if (!id.p) {
        char uuid[37];
        lx_uuid4(uuid);
        snprintf(gen_id, sizeof(gen_id), "chatcmpl-%s", uuid);
        id = lx_str_c(gen_id);
    }
    struct lx_str model = lx_json_str_of(lx_json_get(j, "model"));
    if (!model.p) {
        model = lx_str_c(call->upstream_model ? call->upstream_model : "");
    }

    lx_provider__message_begin(w, id, model);
    bool any = false;
    lx_buf_reset(tmp);
    int rc = concat_blocks(content, "text", "text", tmp, &any);
    if (rc) {
        return rc == LX_EUPSTREAM ? resp_fail(err, rc, "Anthropic text block has no text")
                                  : resp_fail(err, rc, "Response too large or out of memory");
    }
    lx_jw_key(w, "content");
    if (any) {
        lx_jw_str(w, lx_buf_str(tmp));
    } else {
        lx_jw_lit(w, n_tools ? "null" : "\"\"");
    }
    any = false;
    lx_buf_reset(tmp);
    rc = concat_blocks(content, "thinking", "thinking", tmp, &any);
    if (rc) {
        return rc == LX_EUPSTREAM ? resp_fail(err, rc, "Anthropic thinking block has no text")
                                  : resp_fail(err, rc, "Response too large or out of memory");
    }
    if (any) {
        lx_jw_kstr(w, "reasoning_content", lx_buf_str(tmp));
    }
    if (n_tools) {
        lx_jw_key(w, "tool_calls");
        lx_jw_open(w, '[');
        size_t k = 0;
        cJSON_ArrayForEach(blk, content)
        {
            if (!lx_str_eq_c(lx_json_str_of(lx_json_get(blk, "type")), "tool_use")) {
                continue;
            }
            const cJSON *input = lx_json_get(blk, "input");
            lx_jw_open(w, '{');
            lx_jw_kint(w, "index", (long long)k++);
            lx_jw_kstr(w, "id", lx_json_str_of(lx_json_get(blk, "id")));
            lx_jw_kstr(w, "type", LX_STR("function"));
            lx_jw_key(w, "function");
            lx_jw_open(w, '{');
            lx_jw_kstr(w, "name", lx_json_str_of(lx_json_get(blk, "name")));
            lx_buf_reset(tmp);
            if (input) {
                char *s = cJSON_PrintUnformatted(input);
                if (!s) {
                    return resp_fail(err, LX_ENOMEM, "Out of memory");
                }
                rc = lx_buf_append_c(tmp, s);
                cJSON_free(s);
            } else {
                rc = lx_buf_append_c(tmp, "{}");
            }
            if (rc) {
                return resp_fail(err, rc, "Response too large or out of memory");
            }
            lx_jw_kstr(w, "arguments", lx_buf_str(tmp));
            lx_jw_close(w, '}');
            lx_jw_close(w, '}');
        }
        lx_jw_close(w, ']');
    }
    lx_jw_close(w, '}');
    lx_jw_kstr(w, "finish_reason",
               lx_str_c(lx_anthropic_finish_reason(lx_json_str_of(lx_json_get(j, "stop_reason")))));
    lx_jw_klit(w, "logprobs", "null");
    lx_jw_close(w, '}');
    lx_jw_close(w, ']');
    write_usage(w, &u);
    lx_jw_close(w, '}');
    return 0;
}

static int anthropic_response(const struct lx_provider_call *call, struct lx_str body,
                              struct lx_buf *out, struct lx_error *err)
{
    cJSON *j = cJSON_ParseWithLength(body.p ? body.p : "", body.n);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return resp_fail(err, LX_EUPSTREAM, "Anthropic response is not a JSON object");
    }
    if (lx_str_eq_c(lx_json_str_of(lx_json_get(j, "type")), "error")) {
        struct lx_str msg = lx_json_str_of(lx_json_get(lx_json_get(j, "error"), "message"));
        lx_error_set(err, LX_EUPSTREAM, "Anthropic returned an error: %.*s",
                     (int)LX_MIN(msg.n, 300), msg.p ? msg.p : "(no message)");
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
        rc = resp_fail(err, w.rc, "Response too large or out of memory");
    }
    if (rc) {
        lx_buf_truncate(out, mark);
    }
    lx_buf_fini(&tmp);
    cJSON_Delete(j);
    return rc;
}

/* ---- errors ---- */

static int anthropic_error(const struct lx_provider_call *call, struct lx_str body, int *io_status,
                           struct lx_buf *out)
{
    (void)call;
    int status = *io_status;
    if (status == 529) {
        status = 503; /* overloaded_error: https://docs.anthropic.com/en/api/errors */
    }
    cJSON *j = cJSON_ParseWithLength(body.p ? body.p : "", body.n);
    const cJSON *e = lx_json_get(j, "error");
    struct lx_str type = lx_json_str_of(lx_json_get(e, "type"));
    struct lx_str msg = lx_json_str_of(lx_json_get(e, "message"));
    char type_c[64];
    char fallback[96];
    if (type.p && type.n < sizeof(type_c)) {
        memcpy(type_c, type.p, type.n);
        type_c[type.n] = '\0';
    } else {
        snprintf(type_c, sizeof(type_c), "%s", lx_error_type_for_status(status));
    }
    if (!msg.p) {
        snprintf(fallback, sizeof(fallback), "Anthropic returned HTTP %d", *io_status);
        msg = lx_str_c(fallback);
    }
    char code[16];
    snprintf(code, sizeof(code), "%d", status);
    int rc = lx_json_error_body(out, msg, type_c, NULL, code);
    cJSON_Delete(j);
    if (!rc) {
        *io_status = status;
    }
    return rc;
}

/* ---- stream ---- */

enum block_kind { BLK_NONE, BLK_TEXT, BLK_TOOL, BLK_THINKING, BLK_OTHER };

/*
 * Stream translation state, one per streamed call, in the call's arena. The
 * usage counters stay readable after message_stop (include_usage says
 * whether the client asked for the usage chunk).
 */
struct ant_stream {
    struct lx_buf chunk; /* one translated event (heap; freed by stream_free) */
    int64_t created;
    struct usage usage;
    const char *finish; /* static string, or NULL before message_delta */
    bool include_usage; /* stream_options.include_usage */
    bool has_usage;     /* the upstream reported usage (message_start or message_delta) */
    bool started;       /* message_start seen */
    bool done;          /* message_stop or error seen: later events are ignored */
    size_t n_tools;
    char id[ANT_MAX_NAME + 1];
    char model[ANT_MAX_NAME + 1];
    unsigned char block_kind[ANT_MAX_BLOCKS];
    uint16_t tool_index[ANT_MAX_BLOCKS];
};

static void *anthropic_stream_new(const struct lx_provider_call *call)
{
    struct ant_stream *s = lx_arena_alloc(call->arena, sizeof(*s));
    memset(s, 0, sizeof(*s));
    lx_buf_init(&s->chunk, ANT_MAX_CHUNK_BYTES);
    s->created = lx_wall_s();
    s->include_usage =
        cJSON_IsTrue(lx_json_get(lx_json_get(call->json, "stream_options"), "include_usage"));
    const char *m = call->upstream_model ? call->upstream_model : "";
    snprintf(s->model, sizeof(s->model), "%s", m);
    return s;
}

static void anthropic_stream_free(void *state)
{
    struct ant_stream *s = state;
    lx_buf_fini(&s->chunk);
}

/* A chunk whose delta has one string field. */
static int emit_delta_str(struct ant_stream *s, struct lx_buf *out, const char *key,
                          struct lx_str v)
{
    struct lx_jw w;
    lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
    lx_provider__choice_begin(&w, 0);
    lx_jw_kstr(&w, key, v);
    lx_provider__choice_end(&w, NULL);
    return lx_provider__chunk_emit(&w, out);
}

static int emit_tool_delta(struct ant_stream *s, struct lx_buf *out, size_t index, struct lx_str id,
                           struct lx_str name, struct lx_str args)
{
    struct lx_jw w;
    lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
    lx_provider__choice_begin(&w, 0);
    lx_jw_key(&w, "tool_calls");
    lx_jw_open(&w, '[');
    lx_jw_open(&w, '{');
    lx_jw_kint(&w, "index", (long long)index);
    if (id.p) {
        lx_jw_kstr(&w, "id", id);
        lx_jw_kstr(&w, "type", LX_STR("function"));
    }
    lx_jw_key(&w, "function");
    lx_jw_open(&w, '{');
    if (name.p) {
        lx_jw_kstr(&w, "name", name);
    }
    lx_jw_kstr(&w, "arguments", args);
    lx_jw_close(&w, '}');
    lx_jw_close(&w, '}');
    lx_jw_close(&w, ']');
    lx_provider__choice_end(&w, NULL);
    return lx_provider__chunk_emit(&w, out);
}

static int ev_fail(struct lx_error *err, const char *what)
{
    return lx_error_set(err, LX_EUPSTREAM, "Anthropic stream: %s", what);
}

/* The content block index of an event, or -1. */
static int block_index(const cJSON *d)
{
    const cJSON *v = lx_json_get(d, "index");
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble >= ANT_MAX_BLOCKS ||
        floor(v->valuedouble) != v->valuedouble) {
        return -1;
    }
    return (int)v->valuedouble;
}

static int on_message_start(struct ant_stream *s, const cJSON *d, struct lx_buf *out,
                            struct lx_error *err)
{
    if (s->started) {
        return ev_fail(err, "message_start sent twice");
    }
    const cJSON *msg = lx_json_get(d, "message");
    struct lx_str id = lx_json_str_of(lx_json_get(msg, "id"));
    struct lx_str model = lx_json_str_of(lx_json_get(msg, "model"));
    if (!id.p || id.n > ANT_MAX_NAME || model.n > ANT_MAX_NAME) {
        return ev_fail(err, "message_start without a valid message id");
    }
    if (read_usage(lx_json_get(msg, "usage"), &s->usage, false)) {
        return ev_fail(err, "message_start with invalid usage");
    }
    s->has_usage = s->has_usage || cJSON_IsObject(lx_json_get(msg, "usage"));
    memcpy(s->id, id.p, id.n);
    s->id[id.n] = '\0';
    if (model.p) {
        memcpy(s->model, model.p, model.n);
        s->model[model.n] = '\0';
    }
    s->started = true;
    struct lx_jw w;
    lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
    lx_provider__choice_begin(&w, 0);
    lx_jw_kstr(&w, "role", LX_STR("assistant"));
    lx_jw_kstr(&w, "content", LX_STR(""));
    lx_provider__choice_end(&w, NULL);
    return lx_provider__chunk_emit(&w, out);
}

static int on_block_start(struct ant_stream *s, const cJSON *d, struct lx_buf *out,
                          struct lx_error *err)
{
    int idx = block_index(d);
    const cJSON *blk = lx_json_get(d, "content_block");
    struct lx_str type = lx_json_str_of(lx_json_get(blk, "type"));
    if (idx < 0 || !type.p) {
        return ev_fail(err, "content_block_start without a valid index and type");
    }
    if (s->block_kind[idx] != BLK_NONE) {
        return ev_fail(err, "content_block_start for a block already started");
    }
    if (lx_str_eq_c(type, "text")) {
        s->block_kind[idx] = BLK_TEXT;
        struct lx_str t = lx_json_str_of(lx_json_get(blk, "text"));
        return t.n ? emit_delta_str(s, out, "content", t) : 0;
    }
    if (lx_str_eq_c(type, "thinking")) {
        s->block_kind[idx] = BLK_THINKING;
        struct lx_str t = lx_json_str_of(lx_json_get(blk, "thinking"));
        return t.n ? emit_delta_str(s, out, "reasoning_content", t) : 0;
    }
    if (lx_str_eq_c(type, "tool_use")) {
        struct lx_str id = lx_json_str_of(lx_json_get(blk, "id"));
        struct lx_str name = lx_json_str_of(lx_json_get(blk, "name"));
        if (!id.p || !name.p) {
            return ev_fail(err, "tool_use block without id or name");
        }
        s->block_kind[idx] = BLK_TOOL;
        s->tool_index[idx] = (uint16_t)s->n_tools++;
        return emit_tool_delta(s, out, s->tool_index[idx], id, name, LX_STR(""));
    }
    s->block_kind[idx] = BLK_OTHER; /* server tools, redacted thinking...: not shown */
    return 0;
}

static int on_block_delta(struct ant_stream *s, const cJSON *d, struct lx_buf *out,
                          struct lx_error *err)
{
    int idx = block_index(d);
    const cJSON *delta = lx_json_get(d, "delta");
    struct lx_str type = lx_json_str_of(lx_json_get(delta, "type"));
    if (idx < 0 || !type.p) {
        return ev_fail(err, "content_block_delta without a valid index and type");
    }
    if (s->block_kind[idx] == BLK_NONE) {
        return ev_fail(err, "content_block_delta for a block that was not started");
    }
    if (lx_str_eq_c(type, "text_delta")) {
        const cJSON *t = lx_json_get(delta, "text");
        if (!cJSON_IsString(t)) {
            return ev_fail(err, "text_delta without text");
        }
        return lx_json_str_of(t).n ? emit_delta_str(s, out, "content", lx_json_str_of(t)) : 0;
    }
    if (lx_str_eq_c(type, "thinking_delta")) {
        const cJSON *t = lx_json_get(delta, "thinking");
        if (!cJSON_IsString(t)) {
            return ev_fail(err, "thinking_delta without thinking");
        }
        return lx_json_str_of(t).n ? emit_delta_str(s, out, "reasoning_content", lx_json_str_of(t))
                                   : 0;
    }
    if (lx_str_eq_c(type, "input_json_delta")) {
        const cJSON *pj = lx_json_get(delta, "partial_json");
        if (!cJSON_IsString(pj)) {
            return ev_fail(err, "input_json_delta without partial_json");
        }
        if (s->block_kind[idx] != BLK_TOOL || !lx_json_str_of(pj).n) {
            return 0; /* a server tool's input, or an empty piece */
        }
        return emit_tool_delta(s, out, s->tool_index[idx], LX_STR_NULL, LX_STR_NULL,
                               lx_json_str_of(pj));
    }
    return 0; /* signature_delta, citations_delta, future kinds */
}

static int on_message_delta(struct ant_stream *s, const cJSON *d, struct lx_error *err)
{
    const cJSON *delta = lx_json_get(d, "delta");
    const cJSON *sr = lx_json_get(delta, "stop_reason");
    if (sr && !cJSON_IsNull(sr) && !cJSON_IsString(sr)) {
        return ev_fail(err, "message_delta with an invalid stop_reason");
    }
    if (cJSON_IsString(sr)) {
        s->finish = lx_anthropic_finish_reason(lx_json_str_of(sr));
    }
    /* usage in message_delta is cumulative (messages-streaming, "Event types"). */
    if (read_usage(lx_json_get(d, "usage"), &s->usage, true)) {
        return ev_fail(err, "message_delta with invalid usage");
    }
    s->has_usage = s->has_usage || cJSON_IsObject(lx_json_get(d, "usage"));
    return 0;
}

static int on_message_stop(struct ant_stream *s, struct lx_buf *out)
{
    struct lx_jw w;
    lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
    lx_provider__choice_begin(&w, 0);
    lx_provider__choice_end(&w, s->finish ? s->finish : "stop");
    int rc = lx_provider__chunk_emit(&w, out);
    if (!rc && s->include_usage) {
        lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
        lx_jw_key(&w, "choices");
        lx_jw_lit(&w, "[]");
        write_usage(&w, &s->usage);
        rc = lx_provider__chunk_emit(&w, out);
    }
    if (!rc) {
        rc = lx_sse_append_event(out, LX_STR(""), LX_STR("[DONE]"));
    }
    s->done = true;
    return rc;
}

static int on_error_event(struct ant_stream *s, const cJSON *d, struct lx_buf *out)
{
    const cJSON *e = lx_json_get(d, "error");
    struct lx_str type = lx_json_str_of(lx_json_get(e, "type"));
    struct lx_str msg = lx_json_str_of(lx_json_get(e, "message"));
    char code[16];
    snprintf(code, sizeof(code), "%d", status_for_error_type(type));
    lx_buf_reset(&s->chunk);
    char type_c[64];
    snprintf(type_c, sizeof(type_c), "%.*s", (int)LX_MIN(type.n, sizeof(type_c) - 1),
             type.p ? type.p : "");
    int rc = lx_json_error_body(
        &s->chunk, msg.p ? msg : LX_STR("Anthropic reported an error mid-stream"),
        type.p && type.n < sizeof(type_c) ? type_c : "api_error", NULL, code);
    if (!rc) {
        rc = lx_sse_append_event(out, LX_STR(""), lx_buf_str(&s->chunk));
    }
    s->done = true;
    return rc;
}

static int dispatch(struct ant_stream *s, struct lx_str type, const cJSON *d, struct lx_buf *out,
                    struct lx_error *err)
{
    if (lx_str_eq_c(type, "ping")) {
        return 0;
    }
    if (lx_str_eq_c(type, "error")) {
        return on_error_event(s, d, out);
    }
    if (lx_str_eq_c(type, "message_start")) {
        return on_message_start(s, d, out, err);
    }
    bool known = lx_str_eq_c(type, "content_block_start") ||
                 lx_str_eq_c(type, "content_block_delta") ||
                 lx_str_eq_c(type, "content_block_stop") || lx_str_eq_c(type, "message_delta") ||
                 lx_str_eq_c(type, "message_stop");
    if (!known) {
        return 0; /* the docs ask clients to ignore event types they do not know */
    }
    if (!s->started) {
        return ev_fail(err, "event before message_start");
    }
    if (lx_str_eq_c(type, "content_block_start")) {
        return on_block_start(s, d, out, err);
    }
    if (lx_str_eq_c(type, "content_block_delta")) {
        return on_block_delta(s, d, out, err);
    }
    if (lx_str_eq_c(type, "message_delta")) {
        return on_message_delta(s, d, err);
    }
    if (lx_str_eq_c(type, "message_stop")) {
        return on_message_stop(s, out);
    }
    return 0; /* content_block_stop */
}

static int anthropic_event(void *state, const struct lx_sse_event *ev, struct lx_buf *out,
                           struct lx_error *err)
{
    struct ant_stream *s = state;
    if (s->done) {
        return 0;
    }
    cJSON *d = cJSON_ParseWithLength(ev->data.p ? ev->data.p : "", ev->data.n);
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return ev_fail(err, "event data is not a JSON object");
    }
    /* The data's type and the SSE event name agree; the data's is authoritative. */
    struct lx_str type = lx_json_str_of(lx_json_get(d, "type"));
    if (!type.p) {
        type = ev->name;
    }
    if (!type.n) {
        cJSON_Delete(d);
        return ev_fail(err, "event without a type");
    }
    size_t mark = out->len;
    int rc = dispatch(s, type, d, out, err);
    cJSON_Delete(d);
    if (rc) {
        lx_buf_truncate(out, mark);
        if (rc != LX_EUPSTREAM) {
            lx_error_set(err, rc, "Anthropic stream: %s translating an event",
                         rc == LX_ETOOBIG ? "output too large" : lx_strerror(rc));
        }
    }
    return rc;
}

static bool anthropic_stream_usage(void *state, struct lx_usage *out)
{
    const struct ant_stream *s = state;
    const struct usage *u = &s->usage;
    *out = (struct lx_usage){
        .prompt_tokens = u->input + u->cache_creation + u->cache_read,
        .completion_tokens = u->output,
        .cache_read_tokens = u->cache_read,
        .cache_creation_tokens = u->cache_creation,
    };
    return s->has_usage;
}

const struct lx_provider_ops lx_provider_anthropic = {
    .name = "anthropic",
    .stream_usage = anthropic_stream_usage,
    .build_request = anthropic_build,
    .translate_response = anthropic_response,
    .translate_error = anthropic_error,
    .stream_new = anthropic_stream_new,
    .translate_event = anthropic_event,
    .stream_free = anthropic_stream_free,
};
