/*
 * AWS Bedrock behind OpenAI's chat completions, through the Converse API
 * (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html)
 * and ConverseStream (API_runtime_ConverseStream.html), translated both ways.
 *
 * Request (OpenAI chat body -> POST {base}/model/{modelId}/converse[-stream]):
 * - base is api_base, else https://bedrock-runtime.{region}.amazonaws.com;
 *   region is aws_region_name, else region_name, else $AWS_REGION, else
 *   $AWS_DEFAULT_REGION, else us-east-1. The model id is the deployment's
 *   upstream model without LiteLLM's "converse/" route prefix, percent-encoded
 *   as one path segment (':' and '/' of ids and ARNs included).
 * - Credentials are the deployment's aws_access_key_id / aws_secret_access_key
 *   / aws_session_token, else $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY /
 *   $AWS_SESSION_TOKEN (the token from the environment only with a key from
 *   the environment), read per request. The request is signed with SigV4
 *   (sigv4.h, service "bedrock") over content-type, host, x-amz-content-sha256,
 *   x-amz-date and x-amz-security-token; we send a Host header ourselves so
 *   that the signed value is the one on the wire.
 * - system and developer messages become `system` text blocks; user,
 *   assistant and tool messages become `messages`, consecutive turns of one
 *   role merged (tool results are user turns of toolResult blocks). Parts:
 *   text, images as base64 data: URLs ({image:{format,source:{bytes}}}; http
 *   URLs are a 400: Converse takes only bytes or S3 locations), assistant
 *   tool_calls (toolUse, arguments parsed: invalid JSON is a 400). Empty text
 *   is dropped (the API rejects empty text blocks).
 * - max_completion_tokens / max_tokens, temperature, top_p, stop ->
 *   inferenceConfig; tools -> toolConfig.tools[].toolSpec; tool_choice auto /
 *   required (any) / a named function (tool); "none" drops toolConfig. n > 1
 *   is a 400; every other OpenAI field is dropped. litellm_params defaults
 *   (the deployment's extra_params) fill fields the client did not send.
 *
 * Responses, errors and the binary event stream (eventstream.h) are parsed
 * with cJSON and written with a small JSON writer into the caller's capped
 * buffer, restored to its previous length on failure. Nothing trusts
 * upstream bytes: fields are type checked, token counts bounded, names
 * capped, and the stream state is a fixed-size heap struct plus two capped
 * buffers, all released by stream_free.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/rand.h"
#include "core/time.h"
#include "http/sse.h"
#include "json/json.h"
#include "json/writer.h"
#include "providers/eventstream.h"
#include "providers/provider.h"
#include "providers/provider_util.h"
#include "providers/sigv4.h"

#define BR_DEFAULT_REGION "us-east-1"
#define BR_SERVICE "bedrock"
/* contentBlockIndex values a stream may use. */
#define BR_MAX_BLOCKS 1024
/* Longest tool id or name accepted from a stream, and longest model id echoed. */
#define BR_MAX_NAME 255
/* Cap on one translated stream chunk (a message is capped by the event stream parser). */
#define BR_MAX_CHUNK_BYTES (64u << 20)
/* Longest credential or region string accepted. */
#define BR_MAX_CRED 4096

/* ---- shared helpers ---- */

/* The model id sent upstream: LiteLLM's "converse/" route prefix removed. */
static struct lx_str model_id(const struct lx_provider_call *call)
{
    const char *m = call->upstream_model ? call->upstream_model
                    : call->dep          ? call->dep->upstream_model
                                         : NULL;
    struct lx_str s = lx_str_c(m ? m : "");
    if (lx_str_has_prefix(s, LX_STR("converse/"))) {
        s = lx_str_sub(s, 9);
    }
    return s;
}

/* Converse stopReason -> OpenAI finish_reason; unknown and absent are "stop". */
LX_TESTABLE const char *lx_bedrock_finish_reason(struct lx_str stop_reason);
LX_TESTABLE const char *lx_bedrock_finish_reason(struct lx_str r)
{
    if (lx_str_eq_c(r, "max_tokens") || lx_str_eq_c(r, "model_context_window_exceeded")) {
        return "length";
    }
    if (lx_str_eq_c(r, "tool_use")) {
        return "tool_calls";
    }
    if (lx_str_eq_c(r, "guardrail_intervened") || lx_str_eq_c(r, "content_filtered")) {
        return "content_filter";
    }
    return "stop"; /* end_turn, stop_sequence */
}

/*
 * HTTP status of a Bedrock exception name, either spelling ("ThrottlingException"
 * in x-amzn-ErrorType / __type, "throttlingException" in streams); 0 if unknown.
 * Statuses from the Converse API reference, "Errors".
 */
LX_TESTABLE int lx_bedrock_exception_status(struct lx_str name);
LX_TESTABLE int lx_bedrock_exception_status(struct lx_str name)
{
    static const struct {
        const char *name;
        int status;
    } map[] = {
        {"ValidationException", 400},         {"AccessDeniedException", 403},
        {"UnrecognizedClientException", 403}, {"ResourceNotFoundException", 404},
        {"ModelTimeoutException", 408},       {"ModelErrorException", 424},
        {"ModelStreamErrorException", 424},   {"ThrottlingException", 429},
        {"ModelNotReadyException", 429},      {"ServiceQuotaExceededException", 429},
        {"InternalServerException", 500},     {"ServiceUnavailableException", 503},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(map); i++) {
        struct lx_str n = lx_str_c(map[i].name);
        if (name.n == n.n && name.n && (name.p[0] == n.p[0] || name.p[0] == (char)(n.p[0] + 32)) &&
            memcmp(name.p + 1, n.p + 1, n.n - 1) == 0) {
            return map[i].status;
        }
    }
    return 0;
}

/*
 * A token count: absent or null is 0; anything but a non-negative number up
 * to 2^53 is malformed (-1).
 */
struct usage {
    long long input, output, cache_read, cache_write;
};

static int read_usage(const cJSON *usage, struct usage *u)
{
    static const char *const keys[] = {"inputTokens", "outputTokens", "cacheReadInputTokens",
                                       "cacheWriteInputTokens"};
    long long *dst[] = {&u->input, &u->output, &u->cache_read, &u->cache_write};
    if (usage && !cJSON_IsNull(usage) && !cJSON_IsObject(usage)) {
        return -1;
    }
    for (size_t i = 0; i < LX_ARRAY_LEN(keys); i++) {
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
    /* inputTokens exclude tokens read from or written to the prompt cache; OpenAI's include them.
     */
    long long prompt = u->input + u->cache_read + u->cache_write;
    lx_jw_key(w, "usage");
    lx_jw_open(w, '{');
    lx_jw_kint(w, "prompt_tokens", prompt);
    lx_jw_kint(w, "completion_tokens", u->output);
    lx_jw_kint(w, "total_tokens", prompt + u->output);
    lx_jw_key(w, "prompt_tokens_details");
    lx_jw_open(w, '{');
    lx_jw_kint(w, "cached_tokens", u->cache_read);
    lx_jw_close(w, '}');
    lx_jw_kint(w, "cache_read_input_tokens", u->cache_read);
    lx_jw_kint(w, "cache_creation_input_tokens", u->cache_write);
    lx_jw_close(w, '}');
}

/* ---- request body ---- */

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

/* Converse's image format for a media type, or NULL. */
static const char *image_format(struct lx_str media)
{
    if (lx_str_case_eq(media, LX_STR("image/png"))) {
        return "png";
    }
    if (lx_str_case_eq(media, LX_STR("image/jpeg")) || lx_str_case_eq(media, LX_STR("image/jpg"))) {
        return "jpeg";
    }
    if (lx_str_case_eq(media, LX_STR("image/gif"))) {
        return "gif";
    }
    if (lx_str_case_eq(media, LX_STR("image/webp"))) {
        return "webp";
    }
    return NULL;
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

static int put_image(struct req *r, const char *where, struct lx_str url)
{
    struct lx_jw *w = &r->w;
    struct lx_str media, data;
    if (!lx_str_has_prefix(url, LX_STR("data:"))) {
        return req_fail(r, LX_EINVAL,
                        "%s: Bedrock accepts images only as base64 data: URLs (not http URLs)",
                        where);
    }
    if (!parse_data_url(url, &media, &data)) {
        return req_fail(r, LX_EINVAL, "%s: only base64 data URLs are supported", where);
    }
    const char *fmt = image_format(media);
    if (!fmt) {
        return req_fail(r, LX_EINVAL,
                        "%s: image type '%.*s' is not supported by Bedrock (png, jpeg, gif, webp)",
                        where, (int)LX_MIN(media.n, 64), media.p);
    }
    lx_jw_open(w, '{');
    lx_jw_key(w, "image");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "format", lx_str_c(fmt));
    lx_jw_key(w, "source");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "bytes", data);
    lx_jw_close(w, '}');
    lx_jw_close(w, '}');
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
    return lx_str_eq_c(type, "refusal") || lx_str_eq_c(type, "thinking") ||
           lx_str_eq_c(type, "redacted_thinking");
}

/* One OpenAI content part as a Converse content block at the writer's position. */
static int put_part(struct req *r, const char *where, const cJSON *part)
{
    struct lx_jw *w = &r->w;
    if (!cJSON_IsObject(part)) {
        return req_fail(r, LX_EINVAL, "%s: a content part must be an object", where);
    }
    struct lx_str type = lx_json_str_of(lx_json_get(part, "type"));
    if (lx_str_eq_c(type, "text")) {
        const cJSON *t = lx_json_get(part, "text");
        if (!cJSON_IsString(t)) {
            return req_fail(r, LX_EINVAL, "%s: a text part needs a string 'text'", where);
        }
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "text", lx_json_str_of(t));
        lx_jw_close(w, '}');
        return 0;
    }
    if (lx_str_eq_c(type, "image_url")) {
        const cJSON *iu = lx_json_get(part, "image_url");
        const cJSON *u = cJSON_IsObject(iu) ? lx_json_get(iu, "url") : iu;
        if (!cJSON_IsString(u)) {
            return req_fail(r, LX_EINVAL, "%s: an image_url part needs image_url.url", where);
        }
        return put_image(r, where, lx_json_str_of(u));
    }
    if (!type.p) {
        return req_fail(r, LX_EINVAL, "%s: a content part needs a string 'type'", where);
    }
    return req_fail(r, LX_EINVAL, "%s: content part type '%.*s' is not supported by Bedrock", where,
                    (int)LX_MIN(type.n, 64), type.p);
}

/* A message's content as blocks of a turn of role t. */
static int put_content(struct req *r, const char *where, enum turn t, const cJSON *content)
{
    struct lx_jw *w = &r->w;
    if (cJSON_IsString(content)) {
        struct lx_str s = lx_json_str_of(content);
        if (!s.n) {
            return 0;
        }
        begin_block(r, t);
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "text", s);
        lx_jw_close(w, '}');
        return 0;
    }
    if (!cJSON_IsArray(content)) {
        return req_fail(r, LX_EINVAL, "%s: content must be a string or an array of parts", where);
    }
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        if (part_is_empty(part)) {
            continue;
        }
        begin_block(r, t);
        int rc = put_part(r, where, part);
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
    lx_jw_key(w, "toolUse");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "toolUseId", id);
    lx_jw_kstr(w, "name", name);
    lx_jw_key(w, "input");
    if (input) {
        lx_jw_cjson(w, input);
    } else {
        lx_jw_lit(w, "{}");
    }
    lx_jw_close(w, '}');
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
    if (content && !cJSON_IsNull(content) && !cJSON_IsString(content) && !cJSON_IsArray(content)) {
        return req_fail(r, LX_EINVAL, "%s: content must be a string or an array of parts", where);
    }
    begin_block(r, TURN_USER);
    lx_jw_open(w, '{');
    lx_jw_key(w, "toolResult");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "toolUseId", id);
    lx_jw_key(w, "content");
    lx_jw_open(w, '[');
    size_t n = 0;
    if (cJSON_IsArray(content)) {
        const cJSON *part;
        cJSON_ArrayForEach(part, content)
        {
            if (part_is_empty(part)) {
                continue;
            }
            int rc = put_part(r, where, part);
            if (rc) {
                return rc;
            }
            n++;
        }
    }
    if (!n) {
        /* A string, or nothing: one text block (the API wants at least one). */
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "text", cJSON_IsString(content) ? lx_json_str_of(content) : LX_STR(""));
        lx_jw_close(w, '}');
    }
    lx_jw_close(w, ']');
    lx_jw_close(w, '}');
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
        int rc = 0;
        if (lx_str_eq_c(role, "system") || lx_str_eq_c(role, "developer")) {
            continue; /* written into `system` */
        } else if (lx_str_eq_c(role, "user")) {
            if (!content) {
                return req_fail(r, LX_EINVAL, "%s: a user message needs content", where);
            }
            rc = put_content(r, where, TURN_USER, content);
        } else if (lx_str_eq_c(role, "assistant")) {
            const cJSON *calls = lx_json_get(m, "tool_calls");
            if (content && !cJSON_IsNull(content)) {
                rc = put_content(r, where, TURN_ASSISTANT, content);
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
            return req_fail(r, LX_EINVAL, "%s: role '%.*s' is not supported by Bedrock", where,
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

static void open_system(struct lx_jw *w, bool *opened)
{
    if (!*opened) {
        lx_jw_key(w, "system");
        lx_jw_open(w, '[');
        *opened = true;
    }
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
        if (cJSON_IsString(content)) {
            if (lx_json_str_of(content).n) {
                open_system(w, &opened);
                lx_jw_open(w, '{');
                lx_jw_kstr(w, "text", lx_json_str_of(content));
                lx_jw_close(w, '}');
            }
            continue;
        }
        if (!cJSON_IsArray(content)) {
            return req_fail(r, LX_EINVAL, "%s: system content must be a string or text parts",
                            where);
        }
        const cJSON *part;
        cJSON_ArrayForEach(part, content)
        {
            const cJSON *t = lx_json_get(part, "text");
            if (!lx_str_eq_c(lx_json_str_of(lx_json_get(part, "type")), "text") ||
                !cJSON_IsString(t)) {
                return req_fail(r, LX_EINVAL, "%s: system content parts must be text", where);
            }
            if (lx_json_str_of(t).n) {
                open_system(w, &opened);
                lx_jw_open(w, '{');
                lx_jw_kstr(w, "text", lx_json_str_of(t));
                lx_jw_close(w, '}');
            }
        }
    }
    if (opened) {
        lx_jw_close(w, ']');
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

static int put_inference_config(struct req *r)
{
    const struct lx_provider_call *call = r->call;
    struct lx_jw *w = &r->w;
    const cJSON *mct = lx_provider__param(call, "max_completion_tokens");
    long long max_tokens = int_param(mct ? mct : lx_provider__param(call, "max_tokens"));
    if (max_tokens < 0) {
        return req_fail(r, LX_EINVAL, "%s must be a positive integer",
                        mct ? "max_completion_tokens" : "max_tokens");
    }
    const cJSON *temperature = lx_provider__param(call, "temperature");
    const cJSON *top_p = lx_provider__param(call, "top_p");
    if (temperature && !cJSON_IsNumber(temperature)) {
        return req_fail(r, LX_EINVAL, "temperature must be a number");
    }
    if (top_p && !cJSON_IsNumber(top_p)) {
        return req_fail(r, LX_EINVAL, "top_p must be a number");
    }
    const cJSON *stop = lx_provider__param(call, "stop");
    if (cJSON_IsArray(stop)) {
        const cJSON *s;
        cJSON_ArrayForEach(s, stop)
        {
            if (!cJSON_IsString(s)) {
                return req_fail(r, LX_EINVAL, "stop must be a string or a list of strings");
            }
        }
        if (!cJSON_GetArraySize(stop)) {
            stop = NULL;
        }
    } else if (stop && !cJSON_IsString(stop)) {
        return req_fail(r, LX_EINVAL, "stop must be a string or a list of strings");
    }
    if (!max_tokens && !temperature && !top_p && !stop) {
        return 0;
    }
    lx_jw_key(w, "inferenceConfig");
    lx_jw_open(w, '{');
    if (max_tokens) {
        lx_jw_kint(w, "maxTokens", max_tokens);
    }
    if (temperature) {
        lx_jw_key(w, "temperature");
        lx_jw_cjson(w, temperature);
    }
    if (top_p) {
        lx_jw_key(w, "topP");
        lx_jw_cjson(w, top_p);
    }
    if (cJSON_IsString(stop)) {
        lx_jw_key(w, "stopSequences");
        lx_jw_open(w, '[');
        lx_jw_str(w, lx_json_str_of(stop));
        lx_jw_close(w, ']');
    } else if (stop) {
        lx_jw_key(w, "stopSequences");
        lx_jw_cjson(w, stop);
    }
    lx_jw_close(w, '}');
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
    /* tool_choice first: "none" means the tools are not offered at all. */
    const cJSON *tc = lx_provider__param(r->call, "tool_choice");
    struct lx_str choice = LX_STR_NULL, name = LX_STR_NULL;
    if (cJSON_IsString(tc)) {
        struct lx_str s = lx_json_str_of(tc);
        if (lx_str_eq_c(s, "auto")) {
            choice = LX_STR("auto");
        } else if (lx_str_eq_c(s, "required")) {
            choice = LX_STR("any");
        } else if (lx_str_eq_c(s, "none")) {
            return 0;
        } else {
            return req_fail(r, LX_EINVAL, "tool_choice must be auto, required, none or a function");
        }
    } else if (cJSON_IsObject(tc)) {
        if (!lx_str_eq_c(lx_json_str_of(lx_json_get(tc, "type")), "function")) {
            return req_fail(r, LX_EINVAL, "tool_choice must be auto, required, none or a function");
        }
        choice = LX_STR("tool");
        name = lx_json_str_of(lx_json_get(lx_json_get(tc, "function"), "name"));
        if (!name.p) {
            return req_fail(r, LX_EINVAL, "tool_choice needs function.name");
        }
    } else if (tc) {
        return req_fail(r, LX_EINVAL, "tool_choice must be a string or an object");
    }
    if (!cJSON_GetArraySize(tools)) {
        return 0;
    }
    lx_jw_key(w, "toolConfig");
    lx_jw_open(w, '{');
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
        if (type.p && !lx_str_eq_c(type, "function")) {
            return req_fail(r, LX_EINVAL,
                            "tools[%zu]: tool type '%.*s' is not supported by Bedrock", i,
                            (int)LX_MIN(type.n, 64), type.p);
        }
        const cJSON *fn = lx_json_get(t, "function");
        struct lx_str fname = lx_json_str_of(lx_json_get(fn, "name"));
        if (!fname.p) {
            return req_fail(r, LX_EINVAL, "tools[%zu] needs function.name", i);
        }
        const cJSON *params = lx_json_get(fn, "parameters");
        if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params)) {
            return req_fail(r, LX_EINVAL, "tools[%zu].function.parameters must be an object", i);
        }
        lx_jw_open(w, '{');
        lx_jw_key(w, "toolSpec");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "name", fname);
        struct lx_str desc = lx_json_str_of(lx_json_get(fn, "description"));
        if (desc.n) {
            lx_jw_kstr(w, "description", desc);
        }
        lx_jw_key(w, "inputSchema");
        lx_jw_open(w, '{');
        lx_jw_key(w, "json");
        if (cJSON_IsObject(params)) {
            lx_jw_cjson(w, params);
        } else {
            lx_jw_lit(w, "{\"type\":\"object\",\"properties\":{}}");
        }
        lx_jw_close(w, '}');
        lx_jw_close(w, '}');
        lx_jw_close(w, '}');
        i++;
    }
    lx_jw_close(w, ']');
    if (choice.p) {
        lx_jw_key(w, "toolChoice");
        lx_jw_open(w, '{');
        if (lx_str_eq_c(choice, "tool")) {
            lx_jw_key(w, "tool");
            lx_jw_open(w, '{');
            lx_jw_kstr(w, "name", name);
            lx_jw_close(w, '}');
        } else {
            lx_jw_key(w, choice.p[0] == 'a' && choice.n == 3 ? "any" : "auto");
            lx_jw_lit(w, "{}");
        }
        lx_jw_close(w, '}');
    }
    lx_jw_close(w, '}');
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
    const cJSON *n = lx_provider__param(call, "n");
    if (n && !(cJSON_IsNumber(n) && n->valuedouble == 1)) {
        return req_fail(r, LX_EINVAL, "Bedrock supports only n=1");
    }
    lx_jw_open(w, '{');
    int rc = put_messages(r, messages);
    if (!rc) {
        rc = put_system(r, messages);
    }
    if (!rc) {
        rc = put_inference_config(r);
    }
    if (!rc) {
        rc = put_tools(r);
    }
    if (rc) {
        return rc;
    }
    lx_jw_close(w, '}');
    return 0;
}

/* ---- URL, credentials, signature ---- */

/* A non-empty string up to BR_MAX_CRED bytes, or NULL. */
static const char *nonempty(const char *s)
{
    return s && *s && strlen(s) <= BR_MAX_CRED ? s : NULL;
}

/* Regions are lowercase letters, digits and '-' ("us-east-1", "us-gov-west-1"). */
static bool valid_region(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return false;
        }
    }
    return true;
}

static const char *resolve_region(const struct lx_deployment *dep)
{
    const char *r = nonempty(dep->aws_region_name);
    if (!r) {
        r = nonempty(dep->region_name);
    }
    if (!r) {
        r = nonempty(getenv("AWS_REGION"));
    }
    if (!r) {
        r = nonempty(getenv("AWS_DEFAULT_REGION"));
    }
    return r ? r : BR_DEFAULT_REGION;
}

struct creds {
    const char *key_id;
    const char *secret;
    const char *token; /* or NULL */
};

/* Credentials of a deployment, else of the environment; LX_ECONFIG naming what is missing. */
static int resolve_creds(const struct lx_deployment *dep, struct creds *c, struct lx_error *err)
{
    c->key_id = nonempty(dep->aws_access_key_id);
    c->secret = nonempty(dep->aws_secret_access_key);
    c->token = nonempty(dep->aws_session_token);
    bool from_env = !c->key_id;
    if (!c->key_id) {
        c->key_id = nonempty(getenv("AWS_ACCESS_KEY_ID"));
    }
    if (!c->secret) {
        c->secret = nonempty(getenv("AWS_SECRET_ACCESS_KEY"));
    }
    if (!c->token && from_env) {
        c->token = nonempty(getenv("AWS_SESSION_TOKEN"));
    }
    if (c->key_id && c->secret) {
        return 0;
    }
    const char *missing = !c->key_id && !c->secret ? "an access key id and a secret access key"
                          : !c->key_id             ? "an access key id"
                                                   : "a secret access key";
    return lx_error_set(err, LX_ECONFIG,
                        "Bedrock deployment of model group '%s' has no AWS credentials: %s "
                        "missing (set litellm_params.aws_access_key_id and "
                        "aws_secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                        dep->model_name ? dep->model_name : "?", missing);
}

/* Split "scheme://authority/path" into authority and path; LX_ECONFIG when it is not a URL. */
static int split_base(const struct lx_deployment *dep, struct lx_str base,
                      struct lx_str *out_authority, struct lx_str *out_path, struct lx_error *err)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 3 <= base.n; i++) {
        if (memcmp(base.p + i, "://", 3) == 0) {
            sep = base.p + i;
            break;
        }
    }
    bool bad = !sep || memchr(base.p, '?', base.n) || memchr(base.p, '#', base.n);
    if (!bad) {
        struct lx_str rest = {sep + 3, (size_t)(base.p + base.n - (sep + 3))};
        const char *slash = memchr(rest.p, '/', rest.n);
        struct lx_str auth = {rest.p, slash ? (size_t)(slash - rest.p) : rest.n};
        const char *at = memrchr(auth.p, '@', auth.n);
        if (at) {
            auth = (struct lx_str){at + 1, (size_t)(auth.p + auth.n - (at + 1))};
        }
        *out_authority = auth;
        *out_path = slash ? (struct lx_str){slash, (size_t)(rest.p + rest.n - slash)} : LX_STR("");
        bad = auth.n == 0;
    }
    if (bad) {
        return lx_error_set(err, LX_ECONFIG,
                            "api_base of the Bedrock deployment of model group '%s' must be an "
                            "http(s) URL without query or fragment",
                            dep->model_name ? dep->model_name : "?");
    }
    return 0;
}

/*
 * build_request at a given time (tests pin the clock to reproduce a
 * signature). On failure out->body is unchanged.
 */
LX_TESTABLE int lx_bedrock_build_at(const struct lx_provider_call *call,
                                    struct lx_provider_request *out, struct lx_error *err,
                                    int64_t now);
LX_TESTABLE int lx_bedrock_build_at(const struct lx_provider_call *call,
                                    struct lx_provider_request *out, struct lx_error *err,
                                    int64_t now)
{
    const struct lx_deployment *dep = call->dep;
    if (call->endpoint != LX_EP_CHAT) {
        return lx_error_set(err, LX_EINVAL,
                            "Bedrock deployments serve only /chat/completions (model group '%s')",
                            dep->model_name);
    }
    struct creds cr;
    int rc = resolve_creds(dep, &cr, err);
    if (rc) {
        return rc;
    }
    const char *region = resolve_region(dep);
    if (!valid_region(region)) {
        return lx_error_set(err, LX_ECONFIG,
                            "Bedrock deployment of model group '%s' has an invalid AWS region",
                            dep->model_name);
    }
    struct lx_str model = model_id(call);
    if (!model.n) {
        return lx_error_set(err, LX_ECONFIG, "Bedrock deployment of model group '%s' has no model",
                            dep->model_name);
    }
    struct lx_str base = lx_provider_api_base(dep);
    const char *def_base = NULL;
    if (!base.p) {
        def_base = lx_arena_printf(call->arena, "https://bedrock-runtime.%s.amazonaws.com", region);
        base = lx_str_c(def_base);
    }
    struct lx_str authority, base_path;
    rc = split_base(dep, base, &authority, &base_path, err);
    if (rc) {
        return rc;
    }

    /* The path: the base's own path, then /model/{id}/converse[-stream], the id one segment. */
    struct lx_buf path;
    lx_buf_init(&path, 1u << 16);
    rc = lx_buf_append_str(&path, base_path);
    if (!rc) {
        rc = lx_buf_append_c(&path, "/model/");
    }
    if (!rc) {
        rc = lx_sigv4_uri_encode(&path, model, false);
    }
    if (!rc) {
        rc = lx_buf_append_c(&path, call->stream ? "/converse-stream" : "/converse");
    }
    if (rc) {
        lx_buf_fini(&path);
        return lx_error_set(err, rc, "Bedrock model id too long");
    }
    const char *path_s = lx_arena_strndup(call->arena, path.data, path.len);
    lx_buf_fini(&path);
    const char *url = lx_arena_printf(call->arena, "%.*s%s",
                                      (int)(authority.p + authority.n - base.p), base.p, path_s);

    /* Body. */
    struct req r = {.call = call, .err = err};
    size_t mark = out->body->len;
    lx_jw_init(&r.w, out->body);
    rc = build_body(&r);
    if (!rc && r.w.rc) {
        rc = r.w.rc == LX_ETOOBIG ? lx_error_set(err, LX_ETOOBIG, "Request body too large")
                                  : lx_error_set(err, r.w.rc, "Out of memory");
    }
    if (rc) {
        lx_buf_truncate(out->body, mark);
        return rc;
    }
    struct lx_str body = {out->body->data + mark, out->body->len - mark};

    /* SigV4 over the headers we send, values exactly as sent. */
    char amz_date[17];
    lx_sigv4_amz_date(now, amz_date);
    char *payload_hash = lx_arena_alloc(call->arena, 65);
    lx_sigv4_sha256_hex(body.p, body.n, payload_hash);
    struct lx_str ctype = LX_STR("application/json");
    struct lx_str host = lx_arena_str(call->arena, authority);
    struct lx_str date = lx_arena_str(call->arena, lx_str_c(amz_date));
    struct lx_sigv4_header sh[5] = {
        {LX_STR("content-type"), ctype},
        {LX_STR("host"), host},
        {LX_STR("x-amz-content-sha256"), lx_str_c(payload_hash)},
        {LX_STR("x-amz-date"), date},
        {LX_STR("x-amz-security-token"), lx_str_c(cr.token)},
    };
    struct lx_sigv4_request sreq = {
        .method = LX_STR("POST"),
        .path = lx_str_c(path_s),
        .headers = sh,
        .n_headers = cr.token ? 5 : 4,
        .payload_hash = lx_str_c(payload_hash),
    };
    struct lx_sigv4_scope scope = {
        .access_key_id = cr.key_id,
        .secret_access_key = cr.secret,
        .region = region,
        .service = BR_SERVICE,
        .amz_date = amz_date,
    };
    struct lx_buf auth;
    lx_buf_init(&auth, 1u << 16);
    rc = lx_sigv4_authorization(&sreq, &scope, &auth);
    if (rc) {
        lx_buf_fini(&auth);
        lx_buf_truncate(out->body, mark);
        return rc == LX_ENOMEM ? lx_error_set(err, rc, "Out of memory")
                               : lx_error_set(err, LX_ECONFIG,
                                              "Could not sign the Bedrock request for model group "
                                              "'%s'",
                                              dep->model_name);
    }
    struct lx_str authz = lx_arena_str(call->arena, lx_buf_str(&auth));
    lx_buf_fini(&auth);

    out->url = url;
    lx_provider__add_header(out, "Host", host);
    lx_provider__add_header(out, "Content-Type", ctype);
    lx_provider__add_header(out, "Accept",
                            call->stream ? LX_STR("application/vnd.amazon.eventstream")
                                         : LX_STR("application/json"));
    lx_provider__add_header(out, "X-Amz-Date", date);
    lx_provider__add_header(out, "X-Amz-Content-Sha256", lx_str_c(payload_hash));
    if (cr.token) {
        lx_provider__add_header(out, "X-Amz-Security-Token", lx_str_c(cr.token));
    }
    lx_provider__add_header(out, "Authorization", authz);
    /* extra_headers go out unsigned (SigV4 checks only the signed ones). */
    for (size_t i = 0; i < dep->n_extra_headers; i++) {
        if (dep->extra_headers[i].key && dep->extra_headers[i].value) {
            lx_provider__add_header(out, dep->extra_headers[i].key,
                                    lx_str_c(dep->extra_headers[i].value));
        }
    }
    return 0;
}

static int bedrock_build(const struct lx_provider_call *call, struct lx_provider_request *out,
                         struct lx_error *err)
{
    return lx_bedrock_build_at(call, out, err, lx_wall_s());
}

/* ---- response ---- */

static int resp_fail(struct lx_error *err, int code, const char *msg)
{
    return lx_error_set(err, code, "%s", msg);
}

static int write_response(const struct lx_provider_call *call, const cJSON *j, struct lx_jw *w,
                          struct lx_buf *tmp, struct lx_error *err)
{
    const cJSON *msg = lx_json_get(lx_json_get(j, "output"), "message");
    const cJSON *content = lx_json_get(msg, "content");
    if (!cJSON_IsArray(content)) {
        return resp_fail(err, LX_EUPSTREAM, "Bedrock response has no output.message.content");
    }
    const cJSON *blk;
    size_t n_tools = 0;
    bool any_text = false, any_reasoning = false;
    cJSON_ArrayForEach(blk, content)
    {
        if (!cJSON_IsObject(blk)) {
            return resp_fail(err, LX_EUPSTREAM, "Bedrock content block is not an object");
        }
        const cJSON *t = lx_json_get(blk, "text");
        const cJSON *tu = lx_json_get(blk, "toolUse");
        if (t && !cJSON_IsString(t)) {
            return resp_fail(err, LX_EUPSTREAM, "Bedrock text block has no text");
        }
        any_text = any_text || t;
        if (tu) {
            if (!lx_json_str_of(lx_json_get(tu, "toolUseId")).p ||
                !lx_json_str_of(lx_json_get(tu, "name")).p) {
                return resp_fail(err, LX_EUPSTREAM,
                                 "Bedrock toolUse block lacks toolUseId or name");
            }
            n_tools++;
        }
        any_reasoning =
            any_reasoning ||
            cJSON_IsString(lx_json_get(
                lx_json_get(lx_json_get(blk, "reasoningContent"), "reasoningText"), "text"));
    }
    const cJSON *sr = lx_json_get(j, "stopReason");
    if (sr && !cJSON_IsString(sr)) {
        return resp_fail(err, LX_EUPSTREAM, "Bedrock response has an invalid stopReason");
    }
    struct usage u = {0};
    if (read_usage(lx_json_get(j, "usage"), &u)) {
        return resp_fail(err, LX_EUPSTREAM, "Bedrock response has invalid usage");
    }
    char uuid[37];
    lx_uuid4(uuid);
    char id[48];
    snprintf(id, sizeof(id), "chatcmpl-%s", uuid);

    lx_provider__message_begin(w, lx_str_c(id), model_id(call));
    lx_jw_key(w, "content");
    if (any_text) {
        lx_buf_reset(tmp);
        int rc = 0;
        cJSON_ArrayForEach(blk, content)
        {
            struct lx_str t = lx_json_str_of(lx_json_get(blk, "text"));
            if (t.n && !rc) {
                rc = lx_buf_append_str(tmp, t);
            }
        }
        if (rc) {
            return resp_fail(err, rc, "Response too large or out of memory");
        }
        lx_jw_str(w, lx_buf_str(tmp));
    } else {
        lx_jw_lit(w, n_tools ? "null" : "\"\"");
    }
    if (any_reasoning) {
        lx_buf_reset(tmp);
        int rc = 0;
        cJSON_ArrayForEach(blk, content)
        {
            struct lx_str t = lx_json_str_of(lx_json_get(
                lx_json_get(lx_json_get(blk, "reasoningContent"), "reasoningText"), "text"));
            if (t.n && !rc) {
                rc = lx_buf_append_str(tmp, t);
            }
        }
        if (rc) {
            return resp_fail(err, rc, "Response too large or out of memory");
        }
        lx_jw_kstr(w, "reasoning_content", lx_buf_str(tmp));
    }
    if (n_tools) {
        lx_jw_key(w, "tool_calls");
        lx_jw_open(w, '[');
        size_t k = 0;
        cJSON_ArrayForEach(blk, content)
        {
            const cJSON *tu = lx_json_get(blk, "toolUse");
            if (!tu) {
                continue;
            }
            const cJSON *input = lx_json_get(tu, "input");
            lx_jw_open(w, '{');
            lx_jw_kint(w, "index", (long long)k++);
            lx_jw_kstr(w, "id", lx_json_str_of(lx_json_get(tu, "toolUseId")));
            lx_jw_kstr(w, "type", LX_STR("function"));
            lx_jw_key(w, "function");
            lx_jw_open(w, '{');
            lx_jw_kstr(w, "name", lx_json_str_of(lx_json_get(tu, "name")));
            lx_buf_reset(tmp);
            int rc;
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
    lx_jw_kstr(w, "finish_reason", lx_str_c(lx_bedrock_finish_reason(lx_json_str_of(sr))));
    lx_jw_klit(w, "logprobs", "null");
    lx_jw_close(w, '}');
    lx_jw_close(w, ']');
    write_usage(w, &u);
    lx_jw_close(w, '}');
    return 0;
}

static int bedrock_response(const struct lx_provider_call *call, struct lx_str body,
                            struct lx_buf *out, struct lx_error *err)
{
    cJSON *j = cJSON_ParseWithLength(body.p ? body.p : "", body.n);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return resp_fail(err, LX_EUPSTREAM, "Bedrock response is not a JSON object");
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

/* "com.amazon.coral.validate#ValidationException" or "ValidationException:http://..." -> name. */
static struct lx_str exception_name(struct lx_str t)
{
    const char *hash = memrchr(t.p ? t.p : "", '#', t.n);
    if (hash) {
        t = (struct lx_str){hash + 1, (size_t)(t.p + t.n - (hash + 1))};
    }
    const char *colon = memchr(t.p ? t.p : "", ':', t.n);
    if (colon) {
        t.n = (size_t)(colon - t.p);
    }
    return t;
}

/*
 * Bedrock errors are {"message": "..."} with the exception name in the
 * x-amzn-ErrorType header (some services also put it in "__type"). The
 * status is kept; the OpenAI type follows the status.
 */
static int bedrock_error(const struct lx_provider_call *call, struct lx_str body, int *io_status,
                         struct lx_buf *out)
{
    (void)call;
    int status = *io_status;
    cJSON *j = cJSON_ParseWithLength(body.p ? body.p : "", body.n);
    struct lx_str msg = lx_json_str_of(lx_json_get(j, "message"));
    if (!msg.p) {
        msg = lx_json_str_of(lx_json_get(j, "Message"));
    }
    struct lx_str type = exception_name(lx_json_str_of(lx_json_get(j, "__type")));
    char text[1024];
    if (!msg.p) {
        snprintf(text, sizeof(text), "Bedrock returned HTTP %d", status);
    } else if (type.n && type.n < 64) {
        snprintf(text, sizeof(text), "%.*s: %.*s", LX_STR_FMT(type), (int)LX_MIN(msg.n, 900),
                 msg.p);
    } else {
        snprintf(text, sizeof(text), "%.*s", (int)LX_MIN(msg.n, 1000), msg.p);
    }
    char code[16];
    snprintf(code, sizeof(code), "%d", status);
    int rc = lx_json_error_body(out, lx_str_c(text), lx_error_type_for_status(status), NULL, code);
    cJSON_Delete(j);
    return rc;
}

/* ---- stream ---- */

enum block_kind { BLK_NONE, BLK_TEXT, BLK_TOOL, BLK_OTHER };

/*
 * Stream translation state, one per streamed call, on the heap with the
 * parser's and the chunk's buffers; all released by stream_free. out and err
 * are the current feed's.
 */
struct br_stream {
    struct lx_eventstream_parser parser;
    struct lx_buf chunk; /* one translated event */
    struct lx_buf *out;
    struct lx_error *err;
    int64_t created;
    struct usage usage;
    const char *finish; /* static string, or NULL before messageStop */
    bool include_usage; /* stream_options.include_usage */
    bool has_usage;     /* a metadata event reported usage */
    bool started;       /* messageStart seen */
    bool stopped;       /* messageStop seen */
    bool done;          /* [DONE] or an error event written: later messages are ignored */
    size_t n_tools;
    char id[48];
    char model[BR_MAX_NAME + 1];
    unsigned char block_kind[BR_MAX_BLOCKS];
    uint16_t tool_index[BR_MAX_BLOCKS];
};

/*
 * The state is heap memory, not arena memory: llm.c may end the request (and
 * free its arena) before it calls stream_free, e.g. when a streamed call is
 * answered with an upstream error, so stream_free must not touch the arena.
 */
static void *bedrock_stream_new(const struct lx_provider_call *call)
{
    struct br_stream *s = lx_calloc(1, sizeof(*s));
    lx_eventstream_init(&s->parser, LX_EVENTSTREAM_MAX_MESSAGE);
    lx_buf_init(&s->chunk, BR_MAX_CHUNK_BYTES);
    s->created = lx_wall_s();
    s->include_usage =
        cJSON_IsTrue(lx_json_get(lx_json_get(call->json, "stream_options"), "include_usage"));
    char uuid[37];
    lx_uuid4(uuid);
    snprintf(s->id, sizeof(s->id), "chatcmpl-%s", uuid);
    struct lx_str m = model_id(call);
    snprintf(s->model, sizeof(s->model), "%.*s", (int)LX_MIN(m.n, BR_MAX_NAME), m.p);
    return s;
}

static void bedrock_stream_free(void *state)
{
    struct br_stream *s = state;
    lx_eventstream_fini(&s->parser);
    lx_buf_fini(&s->chunk);
    lx_free(s);
}

static int emit_delta_str(struct br_stream *s, const char *key, struct lx_str v)
{
    struct lx_jw w;
    lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
    lx_provider__choice_begin(&w, 0);
    lx_jw_kstr(&w, key, v);
    lx_provider__choice_end(&w, NULL);
    return lx_provider__chunk_emit(&w, s->out);
}

static int emit_tool_delta(struct br_stream *s, size_t index, struct lx_str id, struct lx_str name,
                           struct lx_str args)
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
    return lx_provider__chunk_emit(&w, s->out);
}

static int ev_fail(struct br_stream *s, const char *what)
{
    return lx_error_set(s->err, LX_EUPSTREAM, "Bedrock stream: %s", what);
}

/* contentBlockIndex of an event, or -1. */
static int block_index(const cJSON *d)
{
    const cJSON *v = lx_json_get(d, "contentBlockIndex");
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble >= BR_MAX_BLOCKS ||
        floor(v->valuedouble) != v->valuedouble) {
        return -1;
    }
    return (int)v->valuedouble;
}

static int on_message_start(struct br_stream *s)
{
    if (s->started) {
        return ev_fail(s, "messageStart sent twice");
    }
    s->started = true;
    struct lx_jw w;
    lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
    lx_provider__choice_begin(&w, 0);
    lx_jw_kstr(&w, "role", LX_STR("assistant"));
    lx_jw_kstr(&w, "content", LX_STR(""));
    lx_provider__choice_end(&w, NULL);
    return lx_provider__chunk_emit(&w, s->out);
}

static int on_block_start(struct br_stream *s, const cJSON *d)
{
    int idx = block_index(d);
    if (idx < 0) {
        return ev_fail(s, "contentBlockStart without a valid contentBlockIndex");
    }
    if (s->block_kind[idx] != BLK_NONE) {
        return ev_fail(s, "contentBlockStart for a block already started");
    }
    const cJSON *tu = lx_json_get(lx_json_get(d, "start"), "toolUse");
    if (!tu) {
        s->block_kind[idx] = BLK_OTHER;
        return 0;
    }
    struct lx_str id = lx_json_str_of(lx_json_get(tu, "toolUseId"));
    struct lx_str name = lx_json_str_of(lx_json_get(tu, "name"));
    if (!id.p || !name.p || id.n > BR_MAX_NAME || name.n > BR_MAX_NAME) {
        return ev_fail(s, "toolUse block start without a valid toolUseId and name");
    }
    s->block_kind[idx] = BLK_TOOL;
    s->tool_index[idx] = (uint16_t)s->n_tools++;
    return emit_tool_delta(s, s->tool_index[idx], id, name, LX_STR(""));
}

static int on_block_delta(struct br_stream *s, const cJSON *d)
{
    int idx = block_index(d);
    const cJSON *delta = lx_json_get(d, "delta");
    if (idx < 0 || !cJSON_IsObject(delta)) {
        return ev_fail(s, "contentBlockDelta without a valid contentBlockIndex and delta");
    }
    const cJSON *text = lx_json_get(delta, "text");
    if (text) {
        if (!cJSON_IsString(text)) {
            return ev_fail(s, "text delta is not a string");
        }
        if (s->block_kind[idx] == BLK_TOOL) {
            return ev_fail(s, "text delta in a toolUse block");
        }
        s->block_kind[idx] = BLK_TEXT; /* text blocks have no contentBlockStart */
        return lx_json_str_of(text).n ? emit_delta_str(s, "content", lx_json_str_of(text)) : 0;
    }
    const cJSON *tu = lx_json_get(delta, "toolUse");
    if (tu) {
        const cJSON *input = lx_json_get(tu, "input");
        if (!cJSON_IsString(input)) {
            return ev_fail(s, "toolUse delta without a string input");
        }
        if (s->block_kind[idx] != BLK_TOOL) {
            return ev_fail(s, "toolUse delta for a block that is not a started toolUse");
        }
        return lx_json_str_of(input).n ? emit_tool_delta(s, s->tool_index[idx], LX_STR_NULL,
                                                         LX_STR_NULL, lx_json_str_of(input))
                                       : 0;
    }
    const cJSON *rt = lx_json_get(lx_json_get(delta, "reasoningContent"), "text");
    if (cJSON_IsString(rt) && lx_json_str_of(rt).n) {
        return emit_delta_str(s, "reasoning_content", lx_json_str_of(rt));
    }
    return 0; /* reasoning signatures, citations, future kinds */
}

static int on_message_stop(struct br_stream *s, const cJSON *d)
{
    const cJSON *sr = lx_json_get(d, "stopReason");
    if (sr && !cJSON_IsString(sr)) {
        return ev_fail(s, "messageStop with an invalid stopReason");
    }
    s->finish = lx_bedrock_finish_reason(lx_json_str_of(sr));
    s->stopped = true;
    return 0;
}

/* The finish chunk, the usage chunk when asked for, and [DONE]. */
static int finish_stream(struct br_stream *s)
{
    struct lx_jw w;
    lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
    lx_provider__choice_begin(&w, 0);
    lx_provider__choice_end(&w, s->finish ? s->finish : "stop");
    int rc = lx_provider__chunk_emit(&w, s->out);
    if (!rc && s->include_usage) {
        lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
        lx_jw_key(&w, "choices");
        lx_jw_lit(&w, "[]");
        write_usage(&w, &s->usage);
        rc = lx_provider__chunk_emit(&w, s->out);
    }
    if (!rc) {
        rc = lx_sse_append_event(s->out, LX_STR(""), LX_STR("[DONE]"));
    }
    s->done = true;
    return rc;
}

static int on_metadata(struct br_stream *s, const cJSON *d)
{
    if (read_usage(lx_json_get(d, "usage"), &s->usage)) {
        return ev_fail(s, "metadata with invalid usage");
    }
    s->has_usage = s->has_usage || cJSON_IsObject(lx_json_get(d, "usage"));
    return finish_stream(s);
}

/* An exception or error message: one OpenAI error event, then nothing more. */
static int on_exception(struct br_stream *s, const struct lx_eventstream_message *m, const cJSON *d)
{
    struct lx_str type = m->exception_type.n ? m->exception_type : m->error_code;
    struct lx_str msg = lx_json_str_of(lx_json_get(d, "message"));
    if (!msg.p) {
        msg = lx_json_str_of(lx_json_get(d, "Message"));
    }
    if (!msg.p && m->error_message.n) {
        msg = m->error_message;
    }
    int status = lx_bedrock_exception_status(type);
    if (!status) {
        status = 500;
    }
    char text[1024];
    if (msg.p) {
        snprintf(text, sizeof(text), "%.*s: %.*s", (int)LX_MIN(type.n, 64), type.p ? type.p : "",
                 (int)LX_MIN(msg.n, 900), msg.p);
    } else {
        snprintf(text, sizeof(text), "Bedrock reported %.*s mid-stream", (int)LX_MIN(type.n, 64),
                 type.n ? type.p : "an error");
    }
    char code[16];
    snprintf(code, sizeof(code), "%d", status);
    lx_buf_reset(&s->chunk);
    int rc =
        lx_json_error_body(&s->chunk, lx_str_c(text), lx_error_type_for_status(status), NULL, code);
    if (!rc) {
        rc = lx_sse_append_event(s->out, LX_STR(""), lx_buf_str(&s->chunk));
    }
    s->done = true;
    return rc;
}

static int dispatch(struct br_stream *s, const struct lx_eventstream_message *m)
{
    bool is_exception =
        lx_str_eq_c(m->message_type, "exception") || lx_str_eq_c(m->message_type, "error");
    if (!is_exception && m->message_type.n && !lx_str_eq_c(m->message_type, "event")) {
        return 0; /* unknown message kinds are skipped */
    }
    struct lx_str t = m->event_type;
    bool known = lx_str_eq_c(t, "messageStart") || lx_str_eq_c(t, "contentBlockStart") ||
                 lx_str_eq_c(t, "contentBlockDelta") || lx_str_eq_c(t, "contentBlockStop") ||
                 lx_str_eq_c(t, "messageStop") || lx_str_eq_c(t, "metadata");
    if (!is_exception && !known) {
        return 0; /* event types added later are ignored */
    }
    cJSON *d = NULL;
    if (m->payload.n) {
        d = cJSON_ParseWithLength(m->payload.p, m->payload.n);
        if (!cJSON_IsObject(d)) {
            cJSON_Delete(d);
            if (is_exception) {
                return on_exception(s, m, NULL);
            }
            return ev_fail(s, "event payload is not a JSON object");
        }
    }
    int rc;
    if (is_exception) {
        rc = on_exception(s, m, d);
    } else if (lx_str_eq_c(t, "messageStart")) {
        rc = on_message_start(s);
    } else if (!s->started) {
        rc = ev_fail(s, "event before messageStart");
    } else if (lx_str_eq_c(t, "contentBlockStart")) {
        rc = on_block_start(s, d);
    } else if (lx_str_eq_c(t, "contentBlockDelta")) {
        rc = on_block_delta(s, d);
    } else if (lx_str_eq_c(t, "messageStop")) {
        rc = on_message_stop(s, d);
    } else if (lx_str_eq_c(t, "metadata")) {
        rc = on_metadata(s, d);
    } else {
        rc = 0; /* contentBlockStop */
    }
    cJSON_Delete(d);
    return rc;
}

static int on_message(void *ud, const struct lx_eventstream_message *m)
{
    struct br_stream *s = ud;
    if (s->done) {
        return 0;
    }
    size_t mark = s->out->len;
    int rc = dispatch(s, m);
    if (rc) {
        lx_buf_truncate(s->out, mark);
        if (rc != LX_EUPSTREAM) {
            lx_error_set(s->err, rc, "Bedrock stream: %s translating an event",
                         rc == LX_ETOOBIG ? "output too large" : lx_strerror(rc));
        }
    }
    return rc;
}

static int bedrock_stream_feed(void *state, const char *data, size_t n, struct lx_buf *out,
                               struct lx_error *err)
{
    struct br_stream *s = state;
    s->out = out;
    s->err = err;
    int rc = lx_eventstream_feed(&s->parser, data, n, on_message, s, err);
    s->out = NULL;
    s->err = NULL;
    if (rc == LX_ETOOBIG) {
        /* An oversized frame or event is a broken upstream, not a client's 413. */
        if (err) {
            err->code = LX_EUPSTREAM;
        }
        return LX_EUPSTREAM;
    }
    return rc;
}

static int bedrock_stream_end(void *state, struct lx_buf *out, struct lx_error *err)
{
    struct br_stream *s = state;
    if (lx_eventstream_pending(&s->parser)) {
        return lx_error_set(err, LX_EUPSTREAM, "Bedrock stream ended in the middle of a message");
    }
    if (s->done || s->parser.error) {
        return 0;
    }
    if (!s->stopped) {
        /* The connection ended between frames but before messageStop: the answer is cut. */
        return lx_error_set(err, LX_EUPSTREAM, "Bedrock stream ended before messageStop");
    }
    /* messageStop without metadata: finish without usage numbers. */
    s->out = out;
    s->err = err;
    size_t mark = out->len;
    int rc = finish_stream(s);
    if (rc) {
        lx_buf_truncate(out, mark);
        lx_error_set(err, rc, "Bedrock stream: %s finishing the stream", lx_strerror(rc));
    }
    s->out = NULL;
    s->err = NULL;
    return rc;
}

static bool bedrock_stream_usage(void *state, struct lx_usage *out)
{
    const struct br_stream *s = state;
    const struct usage *u = &s->usage;
    *out = (struct lx_usage){
        .prompt_tokens = u->input + u->cache_read + u->cache_write,
        .completion_tokens = u->output,
        .cache_read_tokens = u->cache_read,
        .cache_creation_tokens = u->cache_write,
    };
    return s->has_usage;
}

const struct lx_provider_ops lx_provider_bedrock = {
    .name = "bedrock",
    .stream_usage = bedrock_stream_usage,
    .build_request = bedrock_build,
    .translate_response = bedrock_response,
    .translate_error = bedrock_error,
    .stream_new = bedrock_stream_new,
    .stream_feed = bedrock_stream_feed,
    .stream_end = bedrock_stream_end,
    .stream_free = bedrock_stream_free,
};
