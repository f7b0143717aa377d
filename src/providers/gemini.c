/*
 * Google AI Studio's Gemini API (https://ai.google.dev/api/generate-content)
 * behind OpenAI's chat completions, translated both ways.
 *
 * Request (OpenAI chat body -> POST {api_base}/v1beta/models/{model}:generateContent,
 * streams :streamGenerateContent?alt=sse; the key goes in x-goog-api-key):
 * - system and developer messages (anywhere) become systemInstruction.parts;
 *   user, assistant and tool messages become `contents`, roles "user" and
 *   "model", consecutive turns of the same role merged into one Content.
 *   Empty text is dropped (the API rejects empty parts).
 * - text parts; image_url / file / input_audio parts: data: URLs become
 *   inlineData {mimeType, data}, other URLs (http(s), gs://) fileData
 *   {mimeType when known, fileUri}; assistant tool_calls become functionCall
 *   parts (arguments parsed: invalid JSON is a 400); a tool message becomes a
 *   functionResponse part of a user turn, its name taken from the assistant
 *   tool call with the same id (or the message's own `name`), its response
 *   {"content": <the tool's text>} as LiteLLM sends it.
 * - tools -> [{functionDeclarations}] with the JSON schemas cleaned of the
 *   keywords Gemini's OpenAPI subset rejects ($schema, additionalProperties,
 *   strict, ...); tool_choice auto/none/required/named ->
 *   toolConfig.functionCallingConfig {mode AUTO/NONE/ANY, allowedFunctionNames}.
 * - generationConfig: temperature, top_p, top_k, max_tokens /
 *   max_completion_tokens, stop, n (candidateCount), response_format
 *   (responseMimeType application/json, plus responseSchema for json_schema),
 *   seed, presence_penalty, frequency_penalty. Everything else OpenAI-only
 *   (user, logit_bias, stream_options, reasoning_effort, ...) is dropped.
 *   litellm_params defaults (the deployment's extra_params) fill fields the
 *   client did not send.
 *
 * Response: every candidate becomes a choice (index = the candidate's);
 * text parts are joined into content (thought parts into reasoning_content),
 * functionCall parts become tool_calls with generated ids "call_<24 hex>".
 * finishReason STOP -> "stop" ("tool_calls" when the candidate called a
 * function), MAX_TOKENS -> "length", SAFETY / RECITATION / BLOCKLIST /
 * PROHIBITED_CONTENT / SPII / IMAGE_SAFETY -> "content_filter"; a prompt
 * blocked by promptFeedback.blockReason (no candidates) is one choice with
 * empty content and "content_filter". usageMetadata: completion_tokens =
 * candidatesTokenCount + thoughtsTokenCount (as LiteLLM counts them),
 * prompt_tokens_details.cached_tokens = cachedContentTokenCount,
 * completion_tokens_details.reasoning_tokens = thoughtsTokenCount,
 * total_tokens = prompt + completion.
 *
 * Stream: every SSE event is one GenerateContentResponse; the first one is
 * preceded by the role chunk, text and thoughts become deltas, a
 * functionCall a complete tool_call delta. Gemini has no end-of-stream
 * marker: the event whose candidate carries finishReason (usageMetadata
 * comes with it) closes the stream: finish chunk, usage chunk when
 * stream_options.include_usage is true, then [DONE]; later events are
 * ignored. With n > 1 the first event carrying a finishReason ends it.
 *
 * Errors: {"error":{"code","message","status"}} (also inside a one-element
 * array, as streamGenerateContent answers) keep the HTTP status; the type
 * follows the gRPC status and `code` is the status string.
 *
 * Nothing trusts upstream bytes: every field is type checked, token counts
 * are bounded, ids and model names are capped, output goes through a small
 * JSON writer into the caller's capped buffer and is rolled back on failure.
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

/* Longest response id and model name accepted from upstream. */
#define GEM_MAX_NAME 255
/* Cap on one translated stream chunk (an upstream event is capped by the SSE parser). */
#define GEM_MAX_CHUNK_BYTES (64u << 20)
/* Choices a response may carry (candidateCount is at most 8 today). */
#define GEM_MAX_CANDIDATES 64
/* Tool calls of one assistant message searched for a tool message's name. */
#define GEM_MAX_CALL_SCAN 4096

/* ---- shared helpers ---- */

/* Gemini finishReason -> OpenAI finish_reason (FinishReason enum of the API reference). */
LX_TESTABLE const char *lx_gemini_finish_reason(struct lx_str reason, bool has_tool_calls);
LX_TESTABLE const char *lx_gemini_finish_reason(struct lx_str r, bool has_tool_calls)
{
    if (lx_str_eq_c(r, "MAX_TOKENS")) {
        return "length";
    }
    static const char *const filtered[] = {
        "SAFETY", "RECITATION",   "BLOCKLIST", "PROHIBITED_CONTENT",
        "SPII",   "IMAGE_SAFETY", "LANGUAGE"};
    for (size_t i = 0; i < LX_ARRAY_LEN(filtered); i++) {
        if (lx_str_eq_c(r, filtered[i])) {
            return "content_filter";
        }
    }
    /* STOP, OTHER, MALFORMED_FUNCTION_CALL, FINISH_REASON_UNSPECIFIED, future values. */
    return has_tool_calls ? "tool_calls" : "stop";
}

/* OpenAI error type for a google.rpc status string
 * (https://ai.google.dev/gemini-api/docs/troubleshooting). */
LX_TESTABLE const char *lx_gemini_error_type(struct lx_str status, int http_status);
LX_TESTABLE const char *lx_gemini_error_type(struct lx_str s, int http_status)
{
    if (lx_str_eq_c(s, "INVALID_ARGUMENT") || lx_str_eq_c(s, "FAILED_PRECONDITION") ||
        lx_str_eq_c(s, "OUT_OF_RANGE")) {
        return "invalid_request_error";
    }
    if (lx_str_eq_c(s, "UNAUTHENTICATED")) {
        return "authentication_error";
    }
    if (lx_str_eq_c(s, "PERMISSION_DENIED")) {
        return "permission_error";
    }
    if (lx_str_eq_c(s, "RESOURCE_EXHAUSTED")) {
        return "rate_limit_error";
    }
    if (lx_str_eq_c(s, "NOT_FOUND")) {
        return "not_found_error";
    }
    if (s.p) {
        return "api_error";
    }
    return lx_error_type_for_status(http_status);
}

/* A token count: absent or null is 0; anything but a number in [0, 2^53] is malformed (-1). */
struct usage {
    long long prompt, candidates, cached, thoughts;
};

static int read_usage(const cJSON *um, struct usage *u)
{
    if (um && !cJSON_IsNull(um) && !cJSON_IsObject(um)) {
        return -1;
    }
    static const char *const keys[] = {"promptTokenCount", "candidatesTokenCount",
                                       "cachedContentTokenCount", "thoughtsTokenCount"};
    long long *dst[] = {&u->prompt, &u->candidates, &u->cached, &u->thoughts};
    long long v[4];
    for (size_t i = 0; i < LX_ARRAY_LEN(keys); i++) {
        v[i] = lx_provider__token_count(um, keys[i]);
        if (v[i] < 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < LX_ARRAY_LEN(keys); i++) {
        *dst[i] = v[i];
    }
    return 0;
}

static void write_usage(struct lx_jw *w, const struct usage *u)
{
    long long completion = u->candidates + u->thoughts;
    lx_jw_key(w, "usage");
    lx_jw_open(w, '{');
    lx_jw_kint(w, "prompt_tokens", u->prompt);
    lx_jw_kint(w, "completion_tokens", completion);
    lx_jw_kint(w, "total_tokens", u->prompt + completion);
    lx_jw_key(w, "prompt_tokens_details");
    lx_jw_open(w, '{');
    lx_jw_kint(w, "cached_tokens", u->cached);
    lx_jw_close(w, '}');
    lx_jw_key(w, "completion_tokens_details");
    lx_jw_open(w, '{');
    lx_jw_kint(w, "reasoning_tokens", u->thoughts);
    lx_jw_close(w, '}');
    lx_jw_close(w, '}');
}

/*
 * A copy of a JSON schema without the keywords Gemini's Schema object
 * rejects. Only schema positions are cleaned: the names under "properties"
 * are property names, not keywords. NULL when out of memory.
 */
static void clean_schema(cJSON *s)
{
    static const char *const drop[] = {"$schema", "$id", "$comment", "additionalProperties",
                                       "strict"};
    if (!cJSON_IsObject(s)) {
        return;
    }
    for (size_t i = 0; i < LX_ARRAY_LEN(drop); i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(s, drop[i]);
    }
    cJSON *it;
    cJSON_ArrayForEach(it, s)
    {
        const char *k = it->string ? it->string : "";
        if (!strcmp(k, "properties") || !strcmp(k, "$defs") || !strcmp(k, "definitions")) {
            cJSON *p;
            cJSON_ArrayForEach(p, it)
            {
                clean_schema(p);
            }
        } else if (!strcmp(k, "items") || !strcmp(k, "not")) {
            clean_schema(it);
        } else if (!strcmp(k, "anyOf") || !strcmp(k, "oneOf") || !strcmp(k, "allOf") ||
                   !strcmp(k, "prefixItems")) {
            cJSON *p;
            cJSON_ArrayForEach(p, it)
            {
                clean_schema(p);
            }
        }
    }
}

/* ---- request ---- */

enum turn { TURN_NONE, TURN_USER, TURN_MODEL };

struct req {
    const struct lx_provider_call *call;
    struct lx_jw w;
    struct lx_error *err;
    enum turn turn;          /* role of the open Content, TURN_NONE before the first */
    const cJSON *last_calls; /* tool_calls of the latest assistant message */
    int call_cursor;         /* where the next tool message's call is expected */
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

/* Open a part in a Content of role t, closing the previous Content if its role differs. */
static void begin_part(struct req *r, enum turn t)
{
    struct lx_jw *w = &r->w;
    if (r->turn != t) {
        if (r->turn != TURN_NONE) {
            lx_jw_close(w, ']');
            lx_jw_close(w, '}');
        }
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "role", t == TURN_USER ? LX_STR("user") : LX_STR("model"));
        lx_jw_key(w, "parts");
        lx_jw_open(w, '[');
        r->turn = t;
    }
}

static void put_text_part(struct req *r, enum turn t, struct lx_str text)
{
    struct lx_jw *w = &r->w;
    begin_part(r, t);
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "text", text);
    lx_jw_close(w, '}');
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

/* A MIME type from a URL's extension, for fileData; NULL slice when unknown. */
static struct lx_str mime_for_url(struct lx_str url)
{
    static const struct {
        const char *ext, *mime;
    } map[] = {
        {".png", "image/png"},       {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"},
        {".webp", "image/webp"},     {".gif", "image/gif"},  {".heic", "image/heic"},
        {".pdf", "application/pdf"}, {".mp3", "audio/mp3"},  {".wav", "audio/wav"},
        {".mp4", "video/mp4"},       {".txt", "text/plain"},
    };
    size_t end = 0;
    while (end < url.n && url.p[end] != '?' && url.p[end] != '#') {
        end++;
    }
    for (size_t i = 0; i < LX_ARRAY_LEN(map); i++) {
        size_t n = strlen(map[i].ext);
        if (end >= n && strncasecmp(url.p + end - n, map[i].ext, n) == 0) {
            return lx_str_c(map[i].mime);
        }
    }
    return LX_STR_NULL;
}

/* A media part from a URL: a data: URL inline, else fileData. mime overrides the guess. */
static int put_media(struct req *r, enum turn t, const char *where, struct lx_str url,
                     struct lx_str mime)
{
    struct lx_jw *w = &r->w;
    struct lx_str media, data;
    if (lx_str_has_prefix(url, LX_STR("data:"))) {
        if (!parse_data_url(url, &media, &data)) {
            return req_fail(r, LX_EINVAL, "%s: only base64 data URLs are supported", where);
        }
        begin_part(r, t);
        lx_jw_open(w, '{');
        lx_jw_key(w, "inlineData");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "mimeType", mime.p ? mime : media);
        lx_jw_kstr(w, "data", data);
        lx_jw_close(w, '}');
        lx_jw_close(w, '}');
        return 0;
    }
    if (!url.n || memchr(url.p, ':', url.n) == NULL) {
        return req_fail(r, LX_EINVAL, "%s: the URL must be a data: URL or an absolute URL", where);
    }
    if (!mime.p) {
        mime = mime_for_url(url);
    }
    begin_part(r, t);
    lx_jw_open(w, '{');
    lx_jw_key(w, "fileData");
    lx_jw_open(w, '{');
    if (mime.p) {
        lx_jw_kstr(w, "mimeType", mime);
    }
    lx_jw_kstr(w, "fileUri", url);
    lx_jw_close(w, '}');
    lx_jw_close(w, '}');
    return 0;
}

static int put_part(struct req *r, enum turn t, const char *where, const cJSON *part)
{
    if (!cJSON_IsObject(part)) {
        return req_fail(r, LX_EINVAL, "%s: a content part must be an object", where);
    }
    struct lx_str type = lx_json_str_of(lx_json_get(part, "type"));
    if (lx_str_eq_c(type, "text")) {
        const cJSON *tx = lx_json_get(part, "text");
        if (!cJSON_IsString(tx)) {
            return req_fail(r, LX_EINVAL, "%s: a text part needs a string 'text'", where);
        }
        if (lx_json_str_of(tx).n) {
            put_text_part(r, t, lx_json_str_of(tx));
        }
        return 0;
    }
    if (lx_str_eq_c(type, "image_url")) {
        const cJSON *iu = lx_json_get(part, "image_url");
        const cJSON *u = cJSON_IsObject(iu) ? lx_json_get(iu, "url") : iu;
        if (!cJSON_IsString(u)) {
            return req_fail(r, LX_EINVAL, "%s: an image_url part needs image_url.url", where);
        }
        return put_media(r, t, where, lx_json_str_of(u), lx_json_str_of(lx_json_get(iu, "format")));
    }
    if (lx_str_eq_c(type, "file")) {
        const cJSON *f = lx_json_get(part, "file");
        const cJSON *fd = lx_json_get(f, "file_data");
        if (!cJSON_IsString(fd)) {
            fd = lx_json_get(f, "file_id");
        }
        if (!cJSON_IsString(fd)) {
            return req_fail(r, LX_EINVAL, "%s: a file part needs file.file_data or file.file_id",
                            where);
        }
        return put_media(r, t, where, lx_json_str_of(fd), lx_json_str_of(lx_json_get(f, "format")));
    }
    if (lx_str_eq_c(type, "input_audio")) {
        const cJSON *a = lx_json_get(part, "input_audio");
        struct lx_str data = lx_json_str_of(lx_json_get(a, "data"));
        struct lx_str fmt = lx_json_str_of(lx_json_get(a, "format"));
        if (!data.p || !fmt.p || fmt.n > 32) {
            return req_fail(r, LX_EINVAL, "%s: an input_audio part needs data and format", where);
        }
        char mime[48];
        snprintf(mime, sizeof(mime), "audio/%.*s", (int)fmt.n, fmt.p);
        struct lx_jw *w = &r->w;
        begin_part(r, t);
        lx_jw_open(w, '{');
        lx_jw_key(w, "inlineData");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "mimeType", lx_str_c(mime));
        lx_jw_kstr(w, "data", data);
        lx_jw_close(w, '}');
        lx_jw_close(w, '}');
        return 0;
    }
    if (lx_str_eq_c(type, "refusal") || lx_str_eq_c(type, "thinking") ||
        lx_str_eq_c(type, "redacted_thinking")) {
        return 0; /* assistant echoes with no Gemini input form */
    }
    if (!type.p) {
        return req_fail(r, LX_EINVAL, "%s: a content part needs a string 'type'", where);
    }
    return req_fail(r, LX_EINVAL, "%s: content part type '%.*s' is not supported by Gemini", where,
                    (int)LX_MIN(type.n, 64), type.p);
}

static int put_content(struct req *r, enum turn t, const char *where, const cJSON *content)
{
    if (cJSON_IsString(content)) {
        if (lx_json_str_of(content).n) {
            put_text_part(r, t, lx_json_str_of(content));
        }
        return 0;
    }
    if (!cJSON_IsArray(content)) {
        return req_fail(r, LX_EINVAL, "%s: content must be a string or an array of parts", where);
    }
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        int rc = put_part(r, t, where, part);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* Parse function.arguments (a JSON string, or already an object) into *out (owned when parsed). */
static int parse_args(struct req *r, const char *where, const cJSON *args, cJSON **out_owned,
                      const cJSON **out)
{
    *out_owned = NULL;
    *out = NULL;
    if (!args || cJSON_IsNull(args)) {
        return 0;
    }
    if (cJSON_IsObject(args)) {
        *out = args;
        return 0;
    }
    if (!cJSON_IsString(args)) {
        return req_fail(r, LX_EINVAL, "%s: function.arguments must be a JSON string", where);
    }
    struct lx_str a = lx_str_trim(lx_json_str_of(args));
    if (!a.n) {
        return 0;
    }
    cJSON *parsed = cJSON_ParseWithLength(a.p, a.n);
    if (!parsed) {
        struct lx_str unused;
        if (lx_json_find_top(a, LX_STR(""), &unused) != LX_EINVAL) {
            return req_fail(r, LX_ENOMEM,
                            "Out of memory"); /* valid, but cJSON could not allocate */
        }
        return req_fail(r, LX_EINVAL, "%s: function.arguments is not valid JSON", where);
    }
    if (!cJSON_IsObject(parsed)) {
        cJSON_Delete(parsed);
        return req_fail(r, LX_EINVAL, "%s: function.arguments must be a JSON object", where);
    }
    *out_owned = parsed;
    *out = parsed;
    return 0;
}

static int put_function_call(struct req *r, const char *where, const cJSON *tc)
{
    struct lx_jw *w = &r->w;
    const cJSON *fn = lx_json_get(tc, "function");
    struct lx_str name = lx_json_str_of(lx_json_get(fn, "name"));
    if (!cJSON_IsObject(tc) || !name.p) {
        return req_fail(r, LX_EINVAL, "%s: a tool call needs function.name", where);
    }
    cJSON *owned;
    const cJSON *args;
    int rc = parse_args(r, where, lx_json_get(fn, "arguments"), &owned, &args);
    if (rc) {
        return rc;
    }
    begin_part(r, TURN_MODEL);
    lx_jw_open(w, '{');
    lx_jw_key(w, "functionCall");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "name", name);
    lx_jw_key(w, "args");
    if (args) {
        lx_jw_cjson(w, args);
    } else {
        lx_jw_lit(w, "{}");
    }
    lx_jw_close(w, '}');
    lx_jw_close(w, '}');
    cJSON_Delete(owned);
    return 0;
}

/* The function name of the tool call a tool message answers. */
static struct lx_str tool_name_for(struct req *r, const cJSON *msg)
{
    struct lx_str id = lx_json_str_of(lx_json_get(msg, "tool_call_id"));
    const cJSON *calls = r->last_calls;
    if (id.p && calls) {
        /* Tool messages usually answer the calls in order: look at the cursor first. */
        const cJSON *tc = cJSON_GetArrayItem(calls, r->call_cursor);
        if (lx_str_eq(lx_json_str_of(lx_json_get(tc, "id")), id)) {
            r->call_cursor++;
            return lx_json_str_of(lx_json_get(lx_json_get(tc, "function"), "name"));
        }
        int i = 0;
        cJSON_ArrayForEach(tc, calls)
        {
            if (i >= GEM_MAX_CALL_SCAN) {
                break;
            }
            if (lx_str_eq(lx_json_str_of(lx_json_get(tc, "id")), id)) {
                r->call_cursor = i + 1;
                return lx_json_str_of(lx_json_get(lx_json_get(tc, "function"), "name"));
            }
            i++;
        }
    }
    return lx_json_str_of(lx_json_get(msg, "name"));
}

/* A tool message's text: a string, or its text parts joined. */
static int tool_text(struct req *r, const char *where, const cJSON *content, struct lx_buf *b)
{
    if (cJSON_IsString(content)) {
        return lx_buf_append_str(b, lx_json_str_of(content));
    }
    if (!content || cJSON_IsNull(content)) {
        return 0;
    }
    if (!cJSON_IsArray(content)) {
        return req_fail(r, LX_EINVAL, "%s: content must be a string or an array of parts", where);
    }
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *tx = lx_json_get(part, "text");
        if (!lx_str_eq_c(lx_json_str_of(lx_json_get(part, "type")), "text") ||
            !cJSON_IsString(tx)) {
            return req_fail(r, LX_EINVAL, "%s: tool message content parts must be text", where);
        }
        int rc = lx_buf_append_str(b, lx_json_str_of(tx));
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int put_function_response(struct req *r, const char *where, const cJSON *msg)
{
    struct lx_jw *w = &r->w;
    struct lx_str name = tool_name_for(r, msg);
    if (!name.p) {
        return req_fail(r, LX_EINVAL,
                        "%s: no assistant tool call matches this tool message's tool_call_id",
                        where);
    }
    struct lx_buf text;
    lx_buf_init(&text, w->b->limit);
    int rc = tool_text(r, where, lx_json_get(msg, "content"), &text);
    if (rc) {
        lx_buf_fini(&text);
        if (rc == LX_EINVAL) {
            return rc; /* message set */
        }
        return rc == LX_ETOOBIG ? req_fail(r, rc, "Request body too large")
                                : req_fail(r, rc, "Out of memory");
    }
    begin_part(r, TURN_USER);
    lx_jw_open(w, '{');
    lx_jw_key(w, "functionResponse");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "name", name);
    lx_jw_key(w, "response");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "content", lx_buf_str(&text));
    lx_jw_close(w, '}');
    lx_jw_close(w, '}');
    lx_jw_close(w, '}');
    lx_buf_fini(&text);
    return 0;
}

static int put_contents(struct req *r, const cJSON *messages)
{
    struct lx_jw *w = &r->w;
    lx_jw_key(w, "contents");
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
        if (!cJSON_IsObject(m)) {
            return req_fail(r, LX_EINVAL, "%s: a message must be an object", where);
        }
        if (lx_str_eq_c(role, "system") || lx_str_eq_c(role, "developer")) {
            continue; /* written into systemInstruction */
        } else if (lx_str_eq_c(role, "user")) {
            if (!content) {
                return req_fail(r, LX_EINVAL, "%s: a user message needs content", where);
            }
            rc = put_content(r, TURN_USER, where, content);
        } else if (lx_str_eq_c(role, "assistant")) {
            const cJSON *calls = lx_json_get(m, "tool_calls");
            if (content && !cJSON_IsNull(content)) {
                rc = put_content(r, TURN_MODEL, where, content);
            }
            if (!rc && calls && !cJSON_IsNull(calls)) {
                if (!cJSON_IsArray(calls)) {
                    return req_fail(r, LX_EINVAL, "%s: tool_calls must be an array", where);
                }
                r->last_calls = calls;
                r->call_cursor = 0;
                const cJSON *tc;
                cJSON_ArrayForEach(tc, calls)
                {
                    rc = put_function_call(r, where, tc);
                    if (rc) {
                        break;
                    }
                }
            }
        } else if (lx_str_eq_c(role, "tool") || lx_str_eq_c(role, "function")) {
            rc = put_function_response(r, where, m);
        } else if (!role.p) {
            return req_fail(r, LX_EINVAL, "%s: a message needs a string 'role'", where);
        } else {
            return req_fail(r, LX_EINVAL, "%s: role '%.*s' is not supported by Gemini", where,
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
        const cJSON *single = cJSON_IsString(content) ? content : NULL;
        if (!single && !cJSON_IsArray(content)) {
            return req_fail(r, LX_EINVAL, "%s: system content must be a string or text parts",
                            where);
        }
        const cJSON *part = single ? single : content->child;
        for (; part; part = single ? NULL : part->next) {
            const cJSON *tx = single ? single : lx_json_get(part, "text");
            if (!single && (!lx_str_eq_c(lx_json_str_of(lx_json_get(part, "type")), "text") ||
                            !cJSON_IsString(tx))) {
                return req_fail(r, LX_EINVAL, "%s: system content parts must be text", where);
            }
            if (!lx_json_str_of(tx).n) {
                continue;
            }
            if (!opened) {
                lx_jw_key(w, "systemInstruction");
                lx_jw_open(w, '{');
                lx_jw_key(w, "parts");
                lx_jw_open(w, '[');
                opened = true;
            }
            lx_jw_open(w, '{');
            lx_jw_kstr(w, "text", lx_json_str_of(tx));
            lx_jw_close(w, '}');
        }
    }
    if (opened) {
        lx_jw_close(w, ']');
        lx_jw_close(w, '}');
    }
    return 0;
}

/* A cleaned copy of schema written at the writer's position. */
static int put_schema(struct req *r, const cJSON *schema)
{
    cJSON *copy = cJSON_Duplicate(schema, 1);
    if (!copy) {
        return req_fail(r, LX_ENOMEM, "Out of memory");
    }
    clean_schema(copy);
    lx_jw_cjson(&r->w, copy);
    cJSON_Delete(copy);
    return 0;
}

/* Whether a parameters schema declares nothing (Gemini rejects an object without properties). */
static bool schema_is_empty(const cJSON *params)
{
    const cJSON *props = lx_json_get(params, "properties");
    return !cJSON_IsObject(params) ||
           ((!props || !props->child) && !lx_json_get(params, "anyOf") &&
            !lx_json_get(params, "oneOf") && !lx_json_get(params, "$ref"));
}

static int put_tools(struct req *r)
{
    struct lx_jw *w = &r->w;
    const cJSON *tools = lx_provider__param(r->call, "tools");
    if (tools && !cJSON_IsArray(tools)) {
        return req_fail(r, LX_EINVAL, "tools must be an array");
    }
    if (tools && cJSON_GetArraySize(tools)) {
        lx_jw_key(w, "tools");
        lx_jw_open(w, '[');
        lx_jw_open(w, '{');
        lx_jw_key(w, "functionDeclarations");
        lx_jw_open(w, '[');
        size_t i = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, tools)
        {
            struct lx_str type = lx_json_str_of(lx_json_get(t, "type"));
            const cJSON *fn = lx_json_get(t, "function");
            if (!cJSON_IsObject(t) || (type.p && !lx_str_eq_c(type, "function"))) {
                return req_fail(r, LX_EINVAL, "tools[%zu] must be a function tool", i);
            }
            struct lx_str name = lx_json_str_of(lx_json_get(fn, "name"));
            if (!name.p) {
                return req_fail(r, LX_EINVAL, "tools[%zu] needs function.name", i);
            }
            const cJSON *params = lx_json_get(fn, "parameters");
            if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params)) {
                return req_fail(r, LX_EINVAL, "tools[%zu].function.parameters must be an object",
                                i);
            }
            lx_jw_open(w, '{');
            lx_jw_kstr(w, "name", name);
            struct lx_str desc = lx_json_str_of(lx_json_get(fn, "description"));
            if (desc.p) {
                lx_jw_kstr(w, "description", desc);
            }
            if (!schema_is_empty(params)) {
                lx_jw_key(w, "parameters");
                int rc = put_schema(r, params);
                if (rc) {
                    return rc;
                }
            }
            lx_jw_close(w, '}');
            i++;
        }
        lx_jw_close(w, ']');
        lx_jw_close(w, '}');
        lx_jw_close(w, ']');
    }

    const cJSON *tc = lx_provider__param(r->call, "tool_choice");
    const char *mode = NULL;
    struct lx_str name = LX_STR_NULL;
    if (cJSON_IsString(tc)) {
        struct lx_str s = lx_json_str_of(tc);
        mode = lx_str_eq_c(s, "auto")       ? "AUTO"
               : lx_str_eq_c(s, "none")     ? "NONE"
               : lx_str_eq_c(s, "required") ? "ANY"
                                            : NULL;
        if (!mode) {
            return req_fail(r, LX_EINVAL, "tool_choice must be auto, required, none or a function");
        }
    } else if (cJSON_IsObject(tc)) {
        name = lx_json_str_of(lx_json_get(lx_json_get(tc, "function"), "name"));
        if (!lx_str_eq_c(lx_json_str_of(lx_json_get(tc, "type")), "function") || !name.p) {
            return req_fail(r, LX_EINVAL, "tool_choice needs type 'function' and function.name");
        }
        mode = "ANY";
    } else if (tc) {
        return req_fail(r, LX_EINVAL, "tool_choice must be a string or an object");
    }
    if (mode) {
        lx_jw_key(w, "toolConfig");
        lx_jw_open(w, '{');
        lx_jw_key(w, "functionCallingConfig");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "mode", lx_str_c(mode));
        if (name.p) {
            lx_jw_key(w, "allowedFunctionNames");
            lx_jw_open(w, '[');
            lx_jw_str(w, name);
            lx_jw_close(w, ']');
        }
        lx_jw_close(w, '}');
        lx_jw_close(w, '}');
    }
    return 0;
}

/* A positive integer parameter; 0 when absent, -1 when invalid. */
static long long int_param(const cJSON *v, double min)
{
    if (!v) {
        return 0;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= min) || v->valuedouble > 1e9 ||
        floor(v->valuedouble) != v->valuedouble) {
        return -1;
    }
    return (long long)v->valuedouble;
}

struct gen_cfg {
    struct req *r;
    bool opened;
};

static void gen_key(struct gen_cfg *g, const char *key)
{
    struct lx_jw *w = &g->r->w;
    if (!g->opened) {
        lx_jw_key(w, "generationConfig");
        lx_jw_open(w, '{');
        g->opened = true;
    }
    lx_jw_key(w, key);
}

static int gen_number(struct gen_cfg *g, const char *from, const char *to)
{
    const cJSON *v = lx_provider__param(g->r->call, from);
    if (!v) {
        return 0;
    }
    if (!cJSON_IsNumber(v)) {
        return req_fail(g->r, LX_EINVAL, "%s must be a number", from);
    }
    gen_key(g, to);
    lx_jw_cjson(&g->r->w, v);
    return 0;
}

static int put_generation_config(struct req *r)
{
    const struct lx_provider_call *call = r->call;
    struct lx_jw *w = &r->w;
    struct gen_cfg g = {.r = r};
    static const char *const numbers[][2] = {
        {"temperature", "temperature"},
        {"top_p", "topP"},
        {"top_k", "topK"},
        {"presence_penalty", "presencePenalty"},
        {"frequency_penalty", "frequencyPenalty"},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(numbers); i++) {
        int rc = gen_number(&g, numbers[i][0], numbers[i][1]);
        if (rc) {
            return rc;
        }
    }
    const cJSON *seed = lx_provider__param(call, "seed");
    if (seed && (!cJSON_IsNumber(seed) || floor(seed->valuedouble) != seed->valuedouble ||
                 fabs(seed->valuedouble) > 2147483647.0)) {
        return req_fail(r, LX_EINVAL, "seed must be a 32-bit integer");
    }
    if (seed) {
        gen_key(&g, "seed");
        lx_jw_int(w, (long long)seed->valuedouble);
    }
    const cJSON *mct = lx_provider__param(call, "max_completion_tokens");
    const cJSON *mt = mct ? mct : lx_provider__param(call, "max_tokens");
    long long max_tokens = int_param(mt, 1);
    if (max_tokens < 0) {
        return req_fail(r, LX_EINVAL, "%s must be a positive integer",
                        mct ? "max_completion_tokens" : "max_tokens");
    }
    if (max_tokens) {
        gen_key(&g, "maxOutputTokens");
        lx_jw_int(w, max_tokens);
    }
    long long n = int_param(lx_provider__param(call, "n"), 1);
    if (n < 0) {
        return req_fail(r, LX_EINVAL, "n must be a positive integer");
    }
    if (n > 1) {
        gen_key(&g, "candidateCount");
        lx_jw_int(w, n);
    }
    const cJSON *stop = lx_provider__param(call, "stop");
    if (cJSON_IsString(stop)) {
        gen_key(&g, "stopSequences");
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
            gen_key(&g, "stopSequences");
            lx_jw_cjson(w, stop);
        }
    } else if (stop) {
        return req_fail(r, LX_EINVAL, "stop must be a string or a list of strings");
    }
    const cJSON *rf = lx_provider__param(call, "response_format");
    struct lx_str rf_type = lx_json_str_of(lx_json_get(rf, "type"));
    if (rf && !cJSON_IsObject(rf)) {
        return req_fail(r, LX_EINVAL, "response_format must be an object");
    }
    if (lx_str_eq_c(rf_type, "json_object") || lx_str_eq_c(rf_type, "json_schema")) {
        gen_key(&g, "responseMimeType");
        lx_jw_str(w, LX_STR("application/json"));
        const cJSON *schema = lx_json_get(lx_json_get(rf, "json_schema"), "schema");
        if (lx_str_eq_c(rf_type, "json_schema") && cJSON_IsObject(schema)) {
            gen_key(&g, "responseSchema");
            int rc = put_schema(r, schema);
            if (rc) {
                return rc;
            }
        }
    }
    if (g.opened) {
        lx_jw_close(w, '}');
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
    lx_jw_open(w, '{');
    int rc = put_contents(r, messages);
    if (!rc) {
        rc = put_system(r, messages);
    }
    if (!rc) {
        rc = put_tools(r);
    }
    if (!rc) {
        rc = put_generation_config(r);
    }
    if (rc) {
        return rc;
    }
    lx_jw_close(w, '}');
    return 0;
}

static int gemini_build(const struct lx_provider_call *call, struct lx_provider_request *out,
                        struct lx_error *err)
{
    const struct lx_deployment *dep = call->dep;
    if (call->endpoint != LX_EP_CHAT) {
        return lx_error_set(err, LX_EINVAL,
                            "Gemini deployments serve only /chat/completions (model group '%s')",
                            dep->model_name);
    }
    struct lx_str base = lx_provider_api_base(dep);
    if (!base.p) {
        base = LX_STR("https://generativelanguage.googleapis.com");
    }
    const char *model = call->upstream_model ? call->upstream_model : dep->upstream_model;
    struct lx_str m = lx_str_c(model ? model : "");
    if (lx_str_has_prefix(m, LX_STR("models/"))) {
        m = lx_str_sub(m, 7); /* the API's resource name form */
    }
    if (!m.n || memchr(m.p, '/', m.n) || memchr(m.p, '?', m.n) || memchr(m.p, '#', m.n)) {
        return lx_error_set(err, LX_ECONFIG, "Gemini model name '%.*s' is not valid",
                            (int)LX_MIN(m.n, 100), m.p ? m.p : "");
    }
    /* LiteLLM accepts api_base with or without the version segment. */
    const char *version = "/v1beta";
    if ((base.n >= 7 && memcmp(base.p + base.n - 7, "/v1beta", 7) == 0) ||
        (base.n >= 3 && memcmp(base.p + base.n - 3, "/v1", 3) == 0)) {
        version = "";
    }
    out->url = lx_arena_printf(call->arena, "%.*s%s/models/%.*s:%s", LX_STR_FMT(base), version,
                               LX_STR_FMT(m),
                               call->stream ? "streamGenerateContent?alt=sse" : "generateContent");
    lx_provider__add_header(out, "Content-Type", LX_STR("application/json"));
    lx_provider__add_header(out, "User-Agent", LX_STR("llmux/" LX_VERSION));
    if (call->api_key) {
        lx_provider__add_header(out, "x-goog-api-key", lx_str_c(call->api_key));
    }
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
    return lx_error_set(err, code, "Gemini: %s", msg);
}

/* What one candidate holds, checked. */
struct cand {
    const cJSON *parts; /* array or NULL */
    size_t n_calls;
    bool has_text;
    bool has_thought;
    struct lx_str finish; /* NULL slice: none */
    long long index;
};

static int read_candidate(const cJSON *c, long long fallback_index, struct cand *out)
{
    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(c)) {
        return -1;
    }
    const cJSON *content = lx_json_get(c, "content");
    if (content && !cJSON_IsObject(content)) {
        return -1;
    }
    const cJSON *parts = lx_json_get(content, "parts");
    if (parts && !cJSON_IsArray(parts)) {
        return -1;
    }
    out->parts = parts;
    const cJSON *fr = lx_json_get(c, "finishReason");
    if (fr && !cJSON_IsNull(fr) && !cJSON_IsString(fr)) {
        return -1;
    }
    out->finish = lx_json_str_of(fr);
    const cJSON *idx = lx_json_get(c, "index");
    out->index = fallback_index;
    if (idx) {
        if (!cJSON_IsNumber(idx) || !(idx->valuedouble >= 0) ||
            idx->valuedouble >= GEM_MAX_CANDIDATES || floor(idx->valuedouble) != idx->valuedouble) {
            return -1;
        }
        out->index = (long long)idx->valuedouble;
    }
    const cJSON *p;
    cJSON_ArrayForEach(p, parts)
    {
        if (!cJSON_IsObject(p)) {
            return -1;
        }
        const cJSON *tx = lx_json_get(p, "text");
        const cJSON *fc = lx_json_get(p, "functionCall");
        if (tx && !cJSON_IsString(tx)) {
            return -1;
        }
        if (tx) {
            if (cJSON_IsTrue(lx_json_get(p, "thought"))) {
                out->has_thought = true;
            } else {
                out->has_text = true;
            }
        }
        if (fc) {
            const cJSON *args = lx_json_get(fc, "args");
            if (!lx_json_str_of(lx_json_get(fc, "name")).p ||
                (args && !cJSON_IsNull(args) && !cJSON_IsObject(args))) {
                return -1;
            }
            out->n_calls++;
        }
    }
    return 0;
}

/* Join the text of the parts that are (or are not) thoughts. */
static int join_text(const cJSON *parts, bool thoughts, struct lx_buf *b)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, parts)
    {
        const cJSON *tx = lx_json_get(p, "text");
        if (cJSON_IsString(tx) && cJSON_IsTrue(lx_json_get(p, "thought")) == thoughts) {
            int rc = lx_buf_append_str(b, lx_json_str_of(tx));
            if (rc) {
                return rc;
            }
        }
    }
    return 0;
}

/* args as a JSON string in tmp ("{}" when absent). */
static int args_json(const cJSON *fc, struct lx_buf *tmp)
{
    const cJSON *args = lx_json_get(fc, "args");
    lx_buf_reset(tmp);
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

static int write_choice(struct lx_jw *w, const struct cand *c, struct lx_buf *tmp,
                        struct lx_error *err)
{
    lx_jw_open(w, '{');
    lx_jw_kint(w, "index", c->index);
    lx_jw_key(w, "message");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "role", LX_STR("assistant"));
    lx_buf_reset(tmp);
    int rc = join_text(c->parts, false, tmp);
    if (rc) {
        return resp_fail(err, rc, "response too large or out of memory");
    }
    lx_jw_key(w, "content");
    if (c->has_text || !c->n_calls) {
        lx_jw_str(w, lx_buf_str(tmp));
    } else {
        lx_jw_lit(w, "null");
    }
    if (c->has_thought) {
        lx_buf_reset(tmp);
        rc = join_text(c->parts, true, tmp);
        if (rc) {
            return resp_fail(err, rc, "response too large or out of memory");
        }
        lx_jw_kstr(w, "reasoning_content", lx_buf_str(tmp));
    }
    if (c->n_calls) {
        lx_jw_key(w, "tool_calls");
        lx_jw_open(w, '[');
        size_t k = 0;
        const cJSON *p;
        cJSON_ArrayForEach(p, c->parts)
        {
            const cJSON *fc = lx_json_get(p, "functionCall");
            if (!fc) {
                continue;
            }
            rc = args_json(fc, tmp);
            if (rc) {
                return resp_fail(err, rc, "response too large or out of memory");
            }
            char id[32];
            lx_provider__call_id(id);
            lx_provider__tool_call(w, k++, id, lx_json_str_of(lx_json_get(fc, "name")),
                                   lx_buf_str(tmp));
        }
        lx_jw_close(w, ']');
    }
    lx_jw_close(w, '}');
    lx_jw_kstr(w, "finish_reason", lx_str_c(lx_gemini_finish_reason(c->finish, c->n_calls > 0)));
    lx_jw_klit(w, "logprobs", "null");
    lx_jw_close(w, '}');
    return 0;
}

static int write_response(const struct lx_provider_call *call, const cJSON *j, struct lx_jw *w,
                          struct lx_buf *tmp, struct lx_error *err)
{
    const cJSON *cands = lx_json_get(j, "candidates");
    if (cands && !cJSON_IsNull(cands) && !cJSON_IsArray(cands)) {
        return resp_fail(err, LX_EUPSTREAM, "candidates is not an array");
    }
    struct lx_str block =
        lx_json_str_of(lx_json_get(lx_json_get(j, "promptFeedback"), "blockReason"));
    int n_cands = cJSON_GetArraySize(cands);
    if (!n_cands && !block.p) {
        return resp_fail(err, LX_EUPSTREAM, "response has no candidates");
    }
    if (n_cands > GEM_MAX_CANDIDATES) {
        return resp_fail(err, LX_EUPSTREAM, "too many candidates");
    }
    struct usage u = {0};
    if (read_usage(lx_json_get(j, "usageMetadata"), &u)) {
        return resp_fail(err, LX_EUPSTREAM, "invalid usageMetadata");
    }
    struct lx_str rid = lx_json_str_of(lx_json_get(j, "responseId"));
    char gen_id[64];
    if (rid.p && rid.n && rid.n <= GEM_MAX_NAME) {
        snprintf(gen_id, sizeof(gen_id), "chatcmpl-%.*s", (int)LX_MIN(rid.n, 48), rid.p);
    } else {
        char uuid[37];
        lx_uuid4(uuid);
        snprintf(gen_id, sizeof(gen_id), "chatcmpl-%s", uuid);
    }
    struct lx_str model = lx_json_str_of(lx_json_get(j, "modelVersion"));
    if (!model.p || model.n > GEM_MAX_NAME) {
        model = lx_str_c(call->upstream_model ? call->upstream_model : "");
    }
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "id", lx_str_c(gen_id));
    lx_jw_kstr(w, "object", LX_STR("chat.completion"));
    lx_jw_kint(w, "created", (long long)lx_wall_s());
    lx_jw_kstr(w, "model", model);
    lx_jw_key(w, "choices");
    lx_jw_open(w, '[');
    if (!n_cands) {
        lx_jw_open(w, '{');
        lx_jw_kint(w, "index", 0);
        lx_jw_key(w, "message");
        lx_jw_open(w, '{');
        lx_jw_kstr(w, "role", LX_STR("assistant"));
        lx_jw_kstr(w, "content", LX_STR(""));
        lx_jw_close(w, '}');
        lx_jw_kstr(w, "finish_reason", LX_STR("content_filter"));
        lx_jw_klit(w, "logprobs", "null");
        lx_jw_close(w, '}');
    }
    long long i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cands)
    {
        struct cand cd;
        if (read_candidate(c, i++, &cd)) {
            return resp_fail(err, LX_EUPSTREAM, "malformed candidate");
        }
        int rc = write_choice(w, &cd, tmp, err);
        if (rc) {
            return rc;
        }
    }
    lx_jw_close(w, ']');
    write_usage(w, &u);
    lx_jw_close(w, '}');
    return 0;
}

/* The error object of a Gemini error body: {"error":{...}} or [{"error":{...}}]. */
static const cJSON *error_object(const cJSON *j)
{
    if (cJSON_IsArray(j)) {
        j = cJSON_GetArrayItem(j, 0);
    }
    const cJSON *e = lx_json_get(j, "error");
    return cJSON_IsObject(e) ? e : NULL;
}

static int gemini_response(const struct lx_provider_call *call, struct lx_str body,
                           struct lx_buf *out, struct lx_error *err)
{
    cJSON *j = cJSON_ParseWithLength(body.p ? body.p : "", body.n);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return resp_fail(err, LX_EUPSTREAM, "response is not a JSON object");
    }
    const cJSON *e = error_object(j);
    if (e) {
        struct lx_str msg = lx_json_str_of(lx_json_get(e, "message"));
        lx_error_set(err, LX_EUPSTREAM, "Gemini returned an error: %.*s", (int)LX_MIN(msg.n, 300),
                     msg.p ? msg.p : "(no message)");
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

static int gemini_error(const struct lx_provider_call *call, struct lx_str body, int *io_status,
                        struct lx_buf *out)
{
    (void)call;
    cJSON *j = cJSON_ParseWithLength(body.p ? body.p : "", body.n);
    const cJSON *e = error_object(j);
    struct lx_str status = lx_json_str_of(lx_json_get(e, "status"));
    struct lx_str msg = lx_json_str_of(lx_json_get(e, "message"));
    char fallback[96];
    if (!msg.p) {
        snprintf(fallback, sizeof(fallback), "Gemini returned HTTP %d", *io_status);
        msg = lx_str_c(fallback);
    }
    char code[48];
    if (status.p && status.n && status.n < sizeof(code)) {
        snprintf(code, sizeof(code), "%.*s", (int)status.n, status.p);
    } else {
        status = LX_STR_NULL;
        snprintf(code, sizeof(code), "%d", *io_status);
    }
    int rc = lx_json_error_body(out, msg, lx_gemini_error_type(status, *io_status), NULL, code);
    cJSON_Delete(j);
    return rc;
}

/* ---- stream ---- */

struct gem_stream {
    struct lx_buf chunk; /* one translated chunk (heap; freed by stream_free) */
    struct lx_buf tmp;   /* function call arguments */
    int64_t created;
    struct usage usage;
    bool include_usage;
    bool has_usage; /* an event carried usageMetadata */
    bool started;   /* the role chunk went out */
    bool done;      /* [DONE] or an error went out: later events are ignored */
    size_t n_tools;
    char id[64];
    char model[GEM_MAX_NAME + 1];
};

static void *gemini_stream_new(const struct lx_provider_call *call)
{
    struct gem_stream *s = lx_arena_alloc(call->arena, sizeof(*s));
    memset(s, 0, sizeof(*s));
    lx_buf_init(&s->chunk, GEM_MAX_CHUNK_BYTES);
    lx_buf_init(&s->tmp, GEM_MAX_CHUNK_BYTES);
    s->created = lx_wall_s();
    s->include_usage =
        cJSON_IsTrue(lx_json_get(lx_json_get(call->json, "stream_options"), "include_usage"));
    char uuid[37];
    lx_uuid4(uuid);
    snprintf(s->id, sizeof(s->id), "chatcmpl-%s", uuid);
    snprintf(s->model, sizeof(s->model), "%s", call->upstream_model ? call->upstream_model : "");
    return s;
}

static void gemini_stream_free(void *state)
{
    struct gem_stream *s = state;
    lx_buf_fini(&s->chunk);
    lx_buf_fini(&s->tmp);
}

static int emit_delta_str(struct gem_stream *s, struct lx_buf *out, long long index,
                          const char *key, struct lx_str v)
{
    struct lx_jw w;
    lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
    lx_provider__choice_begin(&w, index);
    lx_jw_kstr(&w, key, v);
    lx_provider__choice_end(&w, NULL);
    return lx_provider__chunk_emit(&w, out);
}

static int emit_finish(struct gem_stream *s, struct lx_buf *out, long long index,
                       const char *finish)
{
    struct lx_jw w;
    lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
    lx_provider__choice_begin(&w, index);
    lx_provider__choice_end(&w, finish);
    return lx_provider__chunk_emit(&w, out);
}

static int emit_end(struct gem_stream *s, struct lx_buf *out)
{
    int rc = 0;
    if (s->include_usage) {
        struct lx_jw w;
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

static int ev_fail(struct lx_error *err, const char *what)
{
    return lx_error_set(err, LX_EUPSTREAM, "Gemini stream: %s", what);
}

static int on_error_chunk(struct gem_stream *s, const cJSON *e, struct lx_buf *out)
{
    struct lx_str status = lx_json_str_of(lx_json_get(e, "status"));
    struct lx_str msg = lx_json_str_of(lx_json_get(e, "message"));
    const cJSON *code_v = lx_json_get(e, "code");
    int http = cJSON_IsNumber(code_v) && code_v->valuedouble >= 400 && code_v->valuedouble < 600
                   ? (int)code_v->valuedouble
                   : 500;
    char code[48];
    if (status.p && status.n && status.n < sizeof(code)) {
        snprintf(code, sizeof(code), "%.*s", (int)status.n, status.p);
    } else {
        status = LX_STR_NULL;
        snprintf(code, sizeof(code), "%d", http);
    }
    lx_buf_reset(&s->chunk);
    int rc =
        lx_json_error_body(&s->chunk, msg.p ? msg : LX_STR("Gemini reported an error mid-stream"),
                           lx_gemini_error_type(status, http), NULL, code);
    if (!rc) {
        rc = lx_sse_append_event(out, LX_STR(""), lx_buf_str(&s->chunk));
    }
    s->done = true;
    return rc;
}

static int on_candidate(struct gem_stream *s, const struct cand *c, struct lx_buf *out,
                        bool *out_finished)
{
    int rc = 0;
    const cJSON *p;
    bool calls = false;
    cJSON_ArrayForEach(p, c->parts)
    {
        const cJSON *tx = lx_json_get(p, "text");
        const cJSON *fc = lx_json_get(p, "functionCall");
        if (cJSON_IsString(tx) && lx_json_str_of(tx).n) {
            rc = emit_delta_str(s, out, c->index,
                                cJSON_IsTrue(lx_json_get(p, "thought")) ? "reasoning_content"
                                                                        : "content",
                                lx_json_str_of(tx));
        }
        if (!rc && fc) {
            calls = true;
            rc = args_json(fc, &s->tmp);
            if (!rc) {
                char id[32];
                lx_provider__call_id(id);
                struct lx_jw w;
                lx_provider__chunk_begin(&w, &s->chunk, s->id, s->created, s->model);
                lx_provider__choice_begin(&w, c->index);
                lx_jw_key(&w, "tool_calls");
                lx_jw_open(&w, '[');
                lx_provider__tool_call(&w, s->n_tools++, id,
                                       lx_json_str_of(lx_json_get(fc, "name")),
                                       lx_buf_str(&s->tmp));
                lx_jw_close(&w, ']');
                lx_provider__choice_end(&w, NULL);
                rc = lx_provider__chunk_emit(&w, out);
            }
        }
        if (rc) {
            return rc;
        }
    }
    if (c->finish.p) {
        *out_finished = true;
        rc = emit_finish(s, out, c->index, lx_gemini_finish_reason(c->finish, calls || s->n_tools));
    }
    return rc;
}

static int dispatch(struct gem_stream *s, const cJSON *d, struct lx_buf *out, struct lx_error *err)
{
    const cJSON *e = error_object(d);
    if (e) {
        return on_error_chunk(s, e, out);
    }
    const cJSON *cands = lx_json_get(d, "candidates");
    if (cands && !cJSON_IsNull(cands) && !cJSON_IsArray(cands)) {
        return ev_fail(err, "candidates is not an array");
    }
    if (cJSON_GetArraySize(cands) > GEM_MAX_CANDIDATES) {
        return ev_fail(err, "too many candidates");
    }
    struct cand cd[8];
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cands)
    {
        struct cand tmp;
        if (read_candidate(c, n, &tmp)) {
            return ev_fail(err, "malformed candidate");
        }
        if (n < (int)LX_ARRAY_LEN(cd)) {
            cd[n] = tmp;
        }
        n++;
    }
    if (n > (int)LX_ARRAY_LEN(cd)) {
        return ev_fail(err, "too many candidates");
    }
    const cJSON *um = lx_json_get(d, "usageMetadata");
    if (um && read_usage(um, &s->usage)) {
        return ev_fail(err, "invalid usageMetadata");
    }
    s->has_usage = s->has_usage || cJSON_IsObject(um);
    struct lx_str rid = lx_json_str_of(lx_json_get(d, "responseId"));
    struct lx_str model = lx_json_str_of(lx_json_get(d, "modelVersion"));
    struct lx_str block =
        lx_json_str_of(lx_json_get(lx_json_get(d, "promptFeedback"), "blockReason"));
    int rc = 0;
    if (!s->started) {
        if (rid.p && rid.n && rid.n <= 48) {
            snprintf(s->id, sizeof(s->id), "chatcmpl-%.*s", (int)rid.n, rid.p);
        }
        if (model.p && model.n <= GEM_MAX_NAME) {
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
    bool finished = false;
    for (int i = 0; i < n && !rc; i++) {
        rc = on_candidate(s, &cd[i], out, &finished);
    }
    if (!rc && !n && block.p) {
        finished = true;
        rc = emit_finish(s, out, 0, "content_filter");
    }
    if (!rc && finished) {
        rc = emit_end(s, out);
    }
    return rc;
}

static int gemini_event(void *state, const struct lx_sse_event *ev, struct lx_buf *out,
                        struct lx_error *err)
{
    struct gem_stream *s = state;
    if (s->done) {
        return 0;
    }
    cJSON *d = cJSON_ParseWithLength(ev->data.p ? ev->data.p : "", ev->data.n);
    if (!cJSON_IsObject(d) && !(cJSON_IsArray(d) && error_object(d))) {
        cJSON_Delete(d);
        return ev_fail(err, "event data is not a JSON object");
    }
    size_t mark = out->len;
    bool was_started = s->started;
    int rc = dispatch(s, d, out, err);
    cJSON_Delete(d);
    if (rc) {
        lx_buf_truncate(out, mark);
        s->started = was_started;
        s->done = false;
        if (rc != LX_EUPSTREAM) {
            lx_error_set(err, rc, "Gemini stream: %s translating an event",
                         rc == LX_ETOOBIG ? "output too large" : lx_strerror(rc));
        }
    }
    return rc;
}

static bool gemini_stream_usage(void *state, struct lx_usage *out)
{
    const struct gem_stream *s = state;
    const struct usage *u = &s->usage;
    *out = (struct lx_usage){
        .prompt_tokens = u->prompt,
        .completion_tokens = u->candidates + u->thoughts,
        .cache_read_tokens = u->cached,
    };
    return s->has_usage;
}

const struct lx_provider_ops lx_provider_gemini = {
    .name = "gemini",
    .stream_usage = gemini_stream_usage,
    .build_request = gemini_build,
    .translate_response = gemini_response,
    .translate_error = gemini_error,
    .stream_new = gemini_stream_new,
    .translate_event = gemini_event,
    .stream_free = gemini_stream_free,
};
