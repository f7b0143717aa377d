/*
 * The mock's AWS Bedrock runtime: POST /model/{modelId}/converse and
 * /model/{modelId}/converse-stream (Converse and ConverseStream, README.md
 * "AWS Bedrock Converse"). Requests must carry a well-formed SigV4
 * Authorization header; when MOCK_AWS_SECRET is set the signature itself is
 * recomputed from the request as received (raw path, signed headers, body)
 * and compared. Errors have Bedrock's shape: {"message": ...} with the
 * exception name in x-amzn-ErrorType.
 *
 * Streams are the binary AWS event stream (application/vnd.amazon.eventstream)
 * written with lx_eventstream_encode. The whole answer is framed up front
 * into one allocation, cut into groups of bytes that leave one step apart
 * (interval_ms), so the step function only copies the next group.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/rand.h"
#include "mock.h"
#include "providers/eventstream.h"
#include "providers/sigv4.h"

#define ERR_SUFFIX ":http://internal.amazon.com/coral/com.amazon.bedrock/"
#define SIG_MISMATCH                                                                               \
    "The request signature we calculated does not match the signature you provided. Check your "   \
    "AWS Secret Access Key and signing method. Consult the service documentation for details."

static struct lx_str jstr(const cJSON *j)
{
    return cJSON_IsString(j) && j->valuestring ? lx_str_c(j->valuestring) : LX_STR_NULL;
}

static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

/* "/model/{id}/converse" or ".../converse-stream"; *out_stream says which. */
static bool parse_path(struct lx_str path, bool *out_stream, struct lx_str *out_id)
{
    static const struct lx_str prefix = LX_STR("/model/");
    if (!lx_str_has_prefix(path, prefix)) {
        return false;
    }
    struct lx_str rest = lx_str_sub(path, prefix.n);
    const char *slash = memchr(rest.p, '/', rest.n);
    if (!slash || slash == rest.p) {
        return false;
    }
    struct lx_str id = {rest.p, (size_t)(slash - rest.p)};
    struct lx_str op = lx_str_sub(rest, id.n);
    bool stream = lx_str_eq_c(op, "/converse-stream");
    if (!stream && !lx_str_eq_c(op, "/converse")) {
        return false;
    }
    if (out_stream) {
        *out_stream = stream;
    }
    if (out_id) {
        *out_id = id;
    }
    return true;
}

bool lx_mock__bedrock_route(struct lx_str path)
{
    return parse_path(path, NULL, NULL);
}

static const char *exception_for(int status)
{
    switch (status) {
    case 403:
        return "AccessDeniedException";
    case 404:
        return "ResourceNotFoundException";
    case 408:
        return "ModelTimeoutException";
    case 424:
        return "ModelErrorException";
    case 429:
        return "ThrottlingException";
    case 503:
        return "ServiceUnavailableException";
    default:
        return status >= 500 ? "InternalServerException" : "ValidationException";
    }
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

/* A head into b: status line, Content-Type, request id, optional error type, Retry-After. */
static void put_head(struct lx_mock_w *w, int status, const char *ctype, const char *error_type,
                     const struct lx_mock_reply_opts *o)
{
    LX_MOCK_W_LIT(w, "HTTP/1.1 ");
    lx_mock__w_u64(w, (uint64_t)status);
    LX_MOCK_W_LIT(w, " ");
    lx_mock__w_raw(w, reason(status), strlen(reason(status)));
    LX_MOCK_W_LIT(w, "\r\nContent-Type: ");
    lx_mock__w_raw(w, ctype, strlen(ctype));
    char uuid[37];
    lx_uuid4(uuid);
    LX_MOCK_W_LIT(w, "\r\nx-amzn-RequestId: ");
    lx_mock__w_raw(w, uuid, 36);
    if (error_type) {
        LX_MOCK_W_LIT(w, "\r\nx-amzn-ErrorType: ");
        lx_mock__w_raw(w, error_type, strlen(error_type));
        LX_MOCK_W_LIT(w, ERR_SUFFIX);
    }
    if (o->retry_after >= 0) {
        LX_MOCK_W_LIT(w, "\r\nRetry-After: ");
        lx_mock__w_u64(w, (uint64_t)o->retry_after);
    }
    if (o->is_close) {
        LX_MOCK_W_LIT(w, "\r\nConnection: close");
    }
}

/* Send body (in the scratch body buffer) with a Bedrock head. */
static void reply(struct lx_mock_conn *c, int status, const char *error_type, struct lx_buf *body,
                  const struct lx_mock_reply_opts *o)
{
    struct lx_buf *head = lx_mock__scratch_event();
    struct lx_mock_w w = {.b = head};
    put_head(&w, status, "application/json", error_type, o);
    LX_MOCK_W_LIT(&w, "\r\nContent-Length: ");
    lx_mock__w_u64(&w, body->len);
    LX_MOCK_W_LIT(&w, "\r\n\r\n");
    if (w.err) {
        return;
    }
    struct lx_mock_send_opts so = {
        .latency_ms = o->latency_ms,
        .slow_headers_ms = o->slow_headers_ms,
        .is_close = o->is_close,
    };
    lx_mock__conn_send(c, lx_buf_str(head), lx_buf_str(body), &so);
}

static void reply_error(struct lx_mock_conn *c, int status, const char *type, struct lx_str msg,
                        const struct lx_mock_reply_opts *o)
{
    struct lx_buf *body = lx_mock__scratch_body();
    struct lx_mock_w w = {.b = body};
    LX_MOCK_W_LIT(&w, "{\"message\":");
    lx_mock__w_str(&w, msg);
    LX_MOCK_W_LIT(&w, "}");
    if (!w.err) {
        reply(c, status, type ? type : exception_for(status), body, o);
    }
}

static void reply_errorf(struct lx_mock_conn *c, int status, const char *type,
                         const struct lx_mock_reply_opts *o, const char *fmt, ...) LX_PRINTF(5, 6);

static void reply_errorf(struct lx_mock_conn *c, int status, const char *type,
                         const struct lx_mock_reply_opts *o, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : LX_MIN((size_t)n, sizeof(msg) - 1);
    reply_error(c, status, type, (struct lx_str){msg, len}, o);
}

/* ---- SigV4 ---- */

static struct lx_str find_header(const struct lx_mock_req *req, struct lx_str name, size_t *from)
{
    for (size_t i = from ? *from : 0; i < req->nhdrs; i++) {
        if (lx_str_case_eq(lx_mock_hdr_name(req, i), name)) {
            if (from) {
                *from = i + 1;
            }
            return lx_mock_hdr_value(req, i);
        }
    }
    if (from) {
        *from = req->nhdrs;
    }
    return LX_STR_NULL;
}

static bool is_digits(struct lx_str s)
{
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') {
            return false;
        }
    }
    return s.n > 0;
}

/* The next ';' or '/'-separated item of *s. */
static struct lx_str next_item(struct lx_str *s, char sep)
{
    const char *e = memchr(s->p, sep, s->n);
    struct lx_str item = {s->p, e ? (size_t)(e - s->p) : s->n};
    *s = e ? lx_str_sub(*s, item.n + 1) : lx_str_sub(*s, s->n);
    return item;
}

struct authz {
    struct lx_str access_key, date, region, service, signed_headers, signature;
};

/* Parse "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..."; 0 or -1 (msg set). */
static int parse_authz(struct lx_str v, struct authz *a, const char **msg)
{
    memset(a, 0, sizeof(*a));
    static const struct lx_str alg = LX_STR("AWS4-HMAC-SHA256 ");
    if (!lx_str_has_prefix(v, alg)) {
        *msg = "Authorization header requires the AWS4-HMAC-SHA256 algorithm";
        return -1;
    }
    struct lx_str rest = lx_str_sub(v, alg.n);
    struct lx_str cred = LX_STR_NULL;
    while (rest.n) {
        struct lx_str item = lx_str_trim(next_item(&rest, ','));
        if (lx_str_has_prefix(item, LX_STR("Credential="))) {
            cred = lx_str_sub(item, 11);
        } else if (lx_str_has_prefix(item, LX_STR("SignedHeaders="))) {
            a->signed_headers = lx_str_sub(item, 14);
        } else if (lx_str_has_prefix(item, LX_STR("Signature="))) {
            a->signature = lx_str_sub(item, 10);
        }
    }
    if (!cred.n || !a->signed_headers.n || !a->signature.n) {
        *msg = "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
               "parameters";
        return -1;
    }
    a->access_key = next_item(&cred, '/');
    a->date = next_item(&cred, '/');
    a->region = next_item(&cred, '/');
    a->service = next_item(&cred, '/');
    struct lx_str term = next_item(&cred, '/');
    if (!a->access_key.n || a->date.n != 8 || !is_digits(a->date) || !a->region.n ||
        !lx_str_eq_c(term, "aws4_request") || cred.n) {
        *msg = "Credential should be scoped to a valid region, date, service and aws4_request";
        return -1;
    }
    if (!lx_str_eq_c(a->service, "bedrock")) {
        *msg = "Credential should be scoped to correct service: 'bedrock'";
        return -1;
    }
    if (a->signature.n != 64) {
        *msg = "Signature must be 64 hexadecimal digits";
        return -1;
    }
    for (size_t i = 0; i < 64; i++) {
        char ch = a->signature.p[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            *msg = "Signature must be 64 hexadecimal digits";
            return -1;
        }
    }
    return 0;
}

/*
 * Check the request's signature. Returns 0, or an HTTP status with *type and
 * *msg set (static strings).
 */
static int check_signature(const struct lx_mock_req *req, const char **type, const char **msg)
{
    struct lx_str v = lx_str_trim(find_header(req, LX_STR("authorization"), NULL));
    *type = "IncompleteSignatureException";
    if (!v.n) {
        *type = "MissingAuthenticationTokenException";
        *msg = "Missing Authentication Token";
        return 403;
    }
    struct authz a;
    if (parse_authz(v, &a, msg)) {
        return 403;
    }
    struct lx_str date = lx_str_trim(find_header(req, LX_STR("x-amz-date"), NULL));
    if (date.n != 16 || date.p[8] != 'T' || date.p[15] != 'Z' || memcmp(date.p, a.date.p, 8) != 0) {
        *msg = "X-Amz-Date must be YYYYMMDDTHHMMSSZ and match the Credential date";
        return 403;
    }
    /* SignedHeaders: host and x-amz-date at least, each one present. */
    struct lx_sigv4_header hs[LX_SIGV4_MAX_HEADERS];
    size_t n = 0;
    bool has_host = false, has_date = false;
    struct lx_str list = a.signed_headers;
    while (list.n) {
        struct lx_str name = next_item(&list, ';');
        has_host = has_host || lx_str_eq_c(name, "host");
        has_date = has_date || lx_str_eq_c(name, "x-amz-date");
        size_t from = 0;
        bool found = false;
        for (;;) {
            struct lx_str val = find_header(req, name, &from);
            if (!val.p) {
                break;
            }
            found = true;
            if (n == LX_SIGV4_MAX_HEADERS) {
                *msg = "Too many signed headers";
                return 403;
            }
            hs[n++] = (struct lx_sigv4_header){name, val};
        }
        if (!found) {
            *msg = "A header listed in SignedHeaders is missing from the request";
            return 403;
        }
    }
    if (!has_host || !has_date) {
        *msg = "SignedHeaders must include host and x-amz-date";
        return 403;
    }
    char body_hash[65];
    lx_sigv4_sha256_hex(req->body.p, req->body.n, body_hash);
    struct lx_str ch = lx_str_trim(find_header(req, LX_STR("x-amz-content-sha256"), NULL));
    if (ch.p && !lx_str_eq_c(ch, body_hash)) {
        *type = "InvalidSignatureException";
        *msg = "The provided x-amz-content-sha256 header does not match what was computed.";
        return 400;
    }
    const char *secret = getenv("MOCK_AWS_SECRET");
    if (!secret || !*secret) {
        return 0; /* format only */
    }
    const char *q = memchr(req->url.p, '?', req->url.n);
    struct lx_str path = {req->url.p, q ? (size_t)(q - req->url.p) : req->url.n};
    struct lx_str query =
        q ? (struct lx_str){q + 1, (size_t)(req->url.p + req->url.n - q - 1)} : LX_STR("");
    struct lx_sigv4_request sr = {
        .method = lx_str_c(req->method),
        .path = path,
        .query = query,
        .headers = hs,
        .n_headers = n,
        .payload_hash = lx_str_c(body_hash),
    };
    char ak[129], region[65], amz_date[17];
    if (a.access_key.n >= sizeof(ak) || a.region.n >= sizeof(region)) {
        *msg = "Credential too long";
        return 403;
    }
    memcpy(ak, a.access_key.p, a.access_key.n);
    ak[a.access_key.n] = '\0';
    memcpy(region, a.region.p, a.region.n);
    region[a.region.n] = '\0';
    memcpy(amz_date, date.p, 16);
    amz_date[16] = '\0';
    struct lx_sigv4_scope scope = {ak, secret, region, "bedrock", amz_date};
    struct lx_buf creq, sts;
    lx_buf_init(&creq, 1u << 20);
    lx_buf_init(&sts, 1u << 16);
    char sig[65];
    int rc = lx_sigv4_canonical_request(&sr, &creq, NULL);
    if (!rc) {
        rc = lx_sigv4_string_to_sign(&scope, lx_buf_str(&creq), &sts);
    }
    if (!rc) {
        rc = lx_sigv4_signature(&scope, lx_buf_str(&sts), sig);
    }
    lx_buf_fini(&creq);
    lx_buf_fini(&sts);
    if (rc || memcmp(sig, a.signature.p, 64) != 0) {
        *type = "InvalidSignatureException";
        *msg = SIG_MISMATCH;
        return 403;
    }
    return 0;
}

/* ---- body validation (the Converse API's own wording where we know it) ---- */

static bool allowed_key(const char *k, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(k, keys[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* 0, or writes a message into msg and returns 400. */
static int validate(const cJSON *body, char *msg, size_t cap)
{
    static const char *const top[] = {"messages",
                                      "system",
                                      "inferenceConfig",
                                      "toolConfig",
                                      "guardrailConfig",
                                      "additionalModelRequestFields",
                                      "additionalModelResponseFieldPaths",
                                      "promptVariables",
                                      "requestMetadata",
                                      "performanceConfig"};
    static const char *const inference[] = {"maxTokens", "temperature", "topP", "stopSequences"};
    const cJSON *it;
    cJSON_ArrayForEach(it, body)
    {
        if (!allowed_key(it->string, top, LX_ARRAY_LEN(top))) {
            snprintf(msg, cap,
                     "Malformed input request: extraneous key [%s] is not permitted, please "
                     "reformat your input and try again.",
                     it->string);
            return 400;
        }
    }
    const cJSON *messages = get(body, "messages");
    if (!cJSON_IsArray(messages) || !cJSON_GetArraySize(messages)) {
        snprintf(msg, cap,
                 "A conversation must start with a user message. Try again with a "
                 "conversation that starts with a user message.");
        return 400;
    }
    int i = 0;
    struct lx_str prev = LX_STR_NULL;
    cJSON_ArrayForEach(it, messages)
    {
        struct lx_str role = jstr(get(it, "role"));
        if (!lx_str_eq_c(role, "user") && !lx_str_eq_c(role, "assistant")) {
            snprintf(msg, cap,
                     "1 validation error detected: Value at 'messages.%d.member.role' "
                     "failed to satisfy constraint: Member must satisfy enum value set: "
                     "[user, assistant]",
                     i + 1);
            return 400;
        }
        if (i == 0 && !lx_str_eq_c(role, "user")) {
            snprintf(msg, cap,
                     "A conversation must start with a user message. Try again with a "
                     "conversation that starts with a user message.");
            return 400;
        }
        if (prev.p && lx_str_eq(prev, role)) {
            snprintf(msg, cap,
                     "A conversation must alternate between user and assistant roles. "
                     "Make sure the conversation alternates between user and assistant "
                     "roles and try again.");
            return 400;
        }
        prev = role;
        const cJSON *content = get(it, "content");
        if (!cJSON_IsArray(content) || !cJSON_GetArraySize(content)) {
            snprintf(msg, cap,
                     "The content field in the Message object at messages.%d is empty. "
                     "Add a ContentBlock object to the content field and try again.",
                     i);
            return 400;
        }
        int k = 0;
        const cJSON *blk;
        cJSON_ArrayForEach(blk, content)
        {
            const cJSON *text = get(blk, "text");
            if (!cJSON_IsObject(blk) || !blk->child || blk->child->next) {
                snprintf(msg, cap,
                         "messages.%d.content.%d: a ContentBlock must have exactly one "
                         "member",
                         i, k);
                return 400;
            }
            if (text && (!cJSON_IsString(text) || !text->valuestring[0])) {
                snprintf(msg, cap,
                         "The text field in the ContentBlock object at "
                         "messages.%d.content.%d is blank. Add text to the text field, "
                         "and try again.",
                         i, k);
                return 400;
            }
            k++;
        }
        i++;
    }
    const cJSON *ic = get(body, "inferenceConfig");
    cJSON_ArrayForEach(it, ic)
    {
        if (!allowed_key(it->string, inference, LX_ARRAY_LEN(inference))) {
            snprintf(msg, cap,
                     "Malformed input request: extraneous key [inferenceConfig.%s] is "
                     "not permitted",
                     it->string);
            return 400;
        }
    }
    const cJSON *tc = get(body, "toolConfig");
    if (tc) {
        const cJSON *tools = get(tc, "tools");
        if (!cJSON_IsArray(tools) || !cJSON_GetArraySize(tools)) {
            snprintf(msg, cap, "toolConfig.tools must be a non-empty list");
            return 400;
        }
        cJSON_ArrayForEach(it, tools)
        {
            const cJSON *spec = get(it, "toolSpec");
            if (!jstr(get(spec, "name")).n ||
                !cJSON_IsObject(get(get(spec, "inputSchema"), "json"))) {
                snprintf(msg, cap,
                         "toolConfig.tools: each tool needs toolSpec.name and "
                         "toolSpec.inputSchema.json");
                return 400;
            }
        }
    }
    return 0;
}

/* ---- answers ---- */

struct answer {
    struct lx_str text;
    struct lx_str tool;
    struct lx_str stop_reason;
    uint64_t input_tokens;
    uint64_t output_tokens;
    int64_t cache_read;
};

static void put_usage(struct lx_mock_w *w, const struct answer *a)
{
    LX_MOCK_W_LIT(w, "{\"inputTokens\":");
    lx_mock__w_u64(w, a->input_tokens);
    LX_MOCK_W_LIT(w, ",\"outputTokens\":");
    lx_mock__w_u64(w, a->output_tokens);
    LX_MOCK_W_LIT(w, ",\"totalTokens\":");
    lx_mock__w_u64(w, a->input_tokens + a->output_tokens);
    if (a->cache_read >= 0) {
        LX_MOCK_W_LIT(w, ",\"cacheReadInputTokens\":");
        lx_mock__w_u64(w, (uint64_t)a->cache_read);
    }
    LX_MOCK_W_LIT(w, "}");
}

static void answer_json(struct lx_mock_conn *c, const struct answer *a,
                        const struct lx_mock_reply_opts *o)
{
    struct lx_buf *body = lx_mock__scratch_body();
    struct lx_mock_w w = {.b = body};
    LX_MOCK_W_LIT(&w, "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[");
    bool first = true;
    if (a->text.n || !a->tool.p) {
        LX_MOCK_W_LIT(&w, "{\"text\":");
        lx_mock__w_str(&w, a->text);
        LX_MOCK_W_LIT(&w, "}");
        first = false;
    }
    if (a->tool.p) {
        char idbuf[48];
        if (!first) {
            LX_MOCK_W_LIT(&w, ",");
        }
        LX_MOCK_W_LIT(&w, "{\"toolUse\":{\"toolUseId\":");
        lx_mock__w_str(&w, lx_mock__make_id(idbuf, sizeof(idbuf), "tooluse_"));
        LX_MOCK_W_LIT(&w, ",\"name\":");
        lx_mock__w_str(&w, a->tool);
        LX_MOCK_W_LIT(&w, ",\"input\":{\"location\":\"Paris\"}}}");
    }
    LX_MOCK_W_LIT(&w, "]}},\"stopReason\":");
    lx_mock__w_str(&w, a->stop_reason);
    LX_MOCK_W_LIT(&w, ",\"usage\":");
    put_usage(&w, a);
    LX_MOCK_W_LIT(&w, ",\"metrics\":{\"latencyMs\":1}}\n");
    if (!w.err) {
        reply(c, 200, NULL, body, o);
    }
}

/* A stream: pre-framed bytes cut into groups that leave interval_ms apart. */
struct br_stream {
    struct lx_mock_resp base;
    struct lx_mock_shared *shared;
    size_t n_groups;
    size_t next;
    bool is_reset_end; /* reset after the last group instead of finishing */
    uint32_t interval_ms;
    const size_t *ends; /* end offset of each group in data */
    const char *data;
};

static void stream_free(struct lx_mock_resp *r)
{
    struct br_stream *s = LX_CONTAINER_OF(r, struct br_stream, base);
    atomic_fetch_sub_explicit(&s->shared->active_streams, 1, memory_order_relaxed);
    lx_free(s);
}

static enum lx_mock_step stream_step(struct lx_mock_resp *r, struct lx_buf *out,
                                     uint32_t *out_delay_ms)
{
    struct br_stream *s = LX_CONTAINER_OF(r, struct br_stream, base);
    size_t start = s->next ? s->ends[s->next - 1] : 0;
    if (lx_buf_append(out, s->data + start, s->ends[s->next] - start) != 0) {
        return LX_MOCK_STEP_RESET;
    }
    s->next++;
    if (s->next == s->n_groups) {
        return s->is_reset_end ? LX_MOCK_STEP_RESET : LX_MOCK_STEP_DONE;
    }
    *out_delay_ms = s->interval_ms;
    return LX_MOCK_STEP_AGAIN;
}

struct framer {
    struct lx_buf data; /* framed bytes */
    struct lx_buf ends; /* size_t group ends */
    bool is_chunked;
    int err;
};

/* One event stream message, in one HTTP chunk. */
static void frame(struct framer *f, const char *kind, const char *type, struct lx_str payload,
                  bool corrupt)
{
    if (f->err) {
        return;
    }
    bool exc = strcmp(kind, "exception") == 0;
    struct lx_eventstream_header h[] = {
        {exc ? ":exception-type" : ":event-type", lx_str_c(type)},
        {":content-type", LX_STR("application/json")},
        {":message-type", lx_str_c(kind)},
    };
    struct lx_buf *m = lx_mock__scratch_event();
    f->err = lx_eventstream_encode(m, h, 3, payload);
    if (!f->err && corrupt) {
        m->data[m->len - 1] ^= 0x5A; /* the message CRC no longer matches */
    }
    if (!f->err) {
        f->err = lx_mock__put_chunk(&f->data, lx_buf_str(m), f->is_chunked);
    }
}

static void event(struct framer *f, const char *type, const char *payload)
{
    frame(f, "event", type, lx_str_c(payload), false);
}

static void end_group(struct framer *f)
{
    if (!f->err) {
        f->err = lx_buf_append(&f->ends, &f->data.len, sizeof(size_t));
    }
}

static void text_delta(struct framer *f, int index, struct lx_str piece)
{
    struct lx_buf *p = lx_mock__scratch_body();
    struct lx_mock_w w = {.b = p};
    LX_MOCK_W_LIT(&w, "{\"contentBlockIndex\":");
    lx_mock__w_u64(&w, (uint64_t)index);
    LX_MOCK_W_LIT(&w, ",\"delta\":{\"text\":");
    lx_mock__w_str(&w, piece);
    LX_MOCK_W_LIT(&w, "}}");
    if (w.err) {
        f->err = w.err;
        return;
    }
    frame(f, "event", "contentBlockDelta", lx_buf_str(p), false);
}

static void tool_delta(struct framer *f, int index, const char *piece)
{
    struct lx_buf *p = lx_mock__scratch_body();
    struct lx_mock_w w = {.b = p};
    LX_MOCK_W_LIT(&w, "{\"contentBlockIndex\":");
    lx_mock__w_u64(&w, (uint64_t)index);
    LX_MOCK_W_LIT(&w, ",\"delta\":{\"toolUse\":{\"input\":");
    lx_mock__w_str(&w, lx_str_c(piece));
    LX_MOCK_W_LIT(&w, "}}}");
    if (w.err) {
        f->err = w.err;
        return;
    }
    frame(f, "event", "contentBlockDelta", lx_buf_str(p), false);
}

static void block_stop(struct framer *f, int index)
{
    char p[64];
    snprintf(p, sizeof(p), "{\"contentBlockIndex\":%d}", index);
    event(f, "contentBlockStop", p);
}

static void exception(struct framer *f, struct lx_str message)
{
    struct lx_buf *p = lx_mock__scratch_body();
    struct lx_mock_w w = {.b = p};
    LX_MOCK_W_LIT(&w, "{\"message\":");
    lx_mock__w_str(&w, message.p ? message : LX_STR("mock stream error"));
    LX_MOCK_W_LIT(&w, "}");
    if (w.err) {
        f->err = w.err;
        return;
    }
    frame(f, "exception", "modelStreamErrorException", lx_buf_str(p), false);
}

static void closing(struct framer *f, const struct answer *a, int last_block)
{
    if (last_block >= 0) {
        block_stop(f, last_block);
    }
    struct lx_buf *p = lx_mock__scratch_body();
    struct lx_mock_w w = {.b = p};
    LX_MOCK_W_LIT(&w, "{\"stopReason\":");
    lx_mock__w_str(&w, a->stop_reason);
    LX_MOCK_W_LIT(&w, "}");
    if (w.err) {
        f->err = w.err;
        return;
    }
    frame(f, "event", "messageStop", lx_buf_str(p), false);
    p = lx_mock__scratch_body();
    w = (struct lx_mock_w){.b = p};
    LX_MOCK_W_LIT(&w, "{\"usage\":");
    put_usage(&w, a);
    LX_MOCK_W_LIT(&w, ",\"metrics\":{\"latencyMs\":1}}");
    if (w.err) {
        f->err = w.err;
        return;
    }
    frame(f, "event", "metadata", lx_buf_str(p), false);
}

static void terminate(struct framer *f)
{
    if (!f->err && f->is_chunked) {
        f->err = lx_buf_append_c(&f->data, "0\r\n\r\n");
    }
}

static int start_stream(struct lx_mock_conn *c, const struct lx_mock_req *req,
                        const struct lx_mock_directives *d, const struct answer *a, bool is_close)
{
    struct framer f = {.is_chunked = req->is_http11};
    if (!f.is_chunked) {
        is_close = true;
    }
    lx_buf_init(&f.data, LX_MOCK_MAX_OUT_BYTES);
    lx_buf_init(&f.ends, LX_MOCK_MAX_OUT_BYTES);
    struct lx_mock_w w = {.b = &f.data};
    struct lx_mock_reply_opts ho = {.retry_after = -1, .is_close = is_close};
    put_head(&w, 200, "application/vnd.amazon.eventstream", NULL, &ho);
    if (f.is_chunked) {
        LX_MOCK_W_LIT(&w, "\r\nTransfer-Encoding: chunked");
    }
    LX_MOCK_W_LIT(&w, "\r\n\r\n");
    f.err = w.err;
    bool reset_end = false;
    bool done = false;
    int64_t deltas = 0;

    /* Group 0: head, messageStart (and the corrupt frame). */
    event(&f, "messageStart", "{\"role\":\"assistant\"}");
    if (d->malformed) {
        frame(&f, "event", "contentBlockDelta",
              LX_STR("{\"contentBlockIndex\":0,\"delta\":{\"text\":\"corrupt\"}}"), true);
    }
    end_group(&f);
    if (d->reset_after == 0) {
        reset_end = done = true;
    }
    /* Text deltas, one group each. */
    struct lx_mock_pieces pieces;
    lx_mock__pieces_init(&pieces, a->text, d->chunks);
    int block = -1;
    while (!done && pieces.sent < pieces.n) {
        block = 0;
        text_delta(&f, 0, lx_mock__pieces_next(&pieces));
        deltas++;
        if (d->stream_error && deltas == 1) {
            exception(&f, d->error_message);
            terminate(&f);
            done = true;
        } else if (d->reset_after == deltas) {
            reset_end = done = true;
        }
        end_group(&f);
    }
    /* The tool block: start with its first input piece, then two more pieces. */
    static const char *const input[] = {"{\"location\":", " \"Paris\"", "}"};
    for (size_t k = 0; !done && a->tool.p && k < 3; k++) {
        if (k == 0) {
            if (block == 0) {
                block_stop(&f, 0);
            }
            block++;
            struct lx_buf *p = lx_mock__scratch_body();
            struct lx_mock_w pw = {.b = p};
            char idbuf[48];
            LX_MOCK_W_LIT(&pw, "{\"contentBlockIndex\":");
            lx_mock__w_u64(&pw, (uint64_t)block);
            LX_MOCK_W_LIT(&pw, ",\"start\":{\"toolUse\":{\"toolUseId\":");
            lx_mock__w_str(&pw, lx_mock__make_id(idbuf, sizeof(idbuf), "tooluse_"));
            LX_MOCK_W_LIT(&pw, ",\"name\":");
            lx_mock__w_str(&pw, a->tool);
            LX_MOCK_W_LIT(&pw, "}}}");
            if (pw.err) {
                f.err = pw.err;
            } else {
                frame(&f, "event", "contentBlockStart", lx_buf_str(p), false);
            }
        }
        tool_delta(&f, block, input[k]);
        deltas++;
        if (d->stream_error && deltas == 1) {
            exception(&f, d->error_message);
            terminate(&f);
            done = true;
        } else if (d->reset_after == deltas) {
            reset_end = done = true;
        }
        end_group(&f);
    }
    if (!done) {
        if (d->reset_after >= 0) {
            reset_end = true; /* fewer deltas than reset_after: never finish */
        } else {
            if (d->stream_error) {
                exception(&f, d->error_message); /* no delta to follow */
            } else {
                closing(&f, a, block);
            }
            terminate(&f);
            end_group(&f);
        }
    }
    if (f.err) {
        lx_buf_fini(&f.data);
        lx_buf_fini(&f.ends);
        return LX_ENOMEM;
    }
    size_t n_groups = f.ends.len / sizeof(size_t);
    struct br_stream *s = lx_try_malloc(sizeof(*s) + f.ends.len + f.data.len);
    if (!s) {
        lx_buf_fini(&f.data);
        lx_buf_fini(&f.ends);
        return LX_ENOMEM;
    }
    memset(s, 0, sizeof(*s));
    char *mem = (char *)(s + 1);
    memcpy(mem, f.ends.data, f.ends.len);
    memcpy(mem + f.ends.len, f.data.data, f.data.len);
    s->ends = (const size_t *)(void *)mem;
    s->data = mem + f.ends.len;
    s->n_groups = n_groups;
    s->is_reset_end = reset_end;
    s->interval_ms = d->interval_ms;
    s->shared = lx_mock__conn_worker(c)->shared;
    s->base.step = stream_step;
    s->base.free_fn = stream_free;
    s->base.first_delay_ms = d->latency_ms;
    s->base.is_close = is_close;
    lx_buf_fini(&f.data);
    lx_buf_fini(&f.ends);
    atomic_fetch_add_explicit(&s->shared->active_streams, 1, memory_order_relaxed);
    lx_mock__conn_queue(c, &s->base);
    return 0;
}

void lx_mock__bedrock(struct lx_mock_conn *c, const struct lx_mock_req *req, struct lx_str path,
                      const struct lx_mock_directives *d, const struct lx_mock_reply_opts *o)
{
    bool is_stream = false;
    (void)parse_path(path, &is_stream, NULL);
    if (d->status) {
        char msg[32];
        struct lx_str m = d->error_message;
        if (!m.p) {
            int n = snprintf(msg, sizeof(msg), "mock error %u", d->status);
            m = (struct lx_str){msg, n > 0 ? (size_t)n : 0};
        }
        reply_error(c, (int)d->status, NULL, m, o);
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        reply_errorf(c, 405, "UnknownOperationException", o, "%s is not supported on %.*s",
                     req->method, (int)LX_MIN(path.n, 200), path.p);
        return;
    }
    const char *type = NULL, *msg = NULL;
    int st = check_signature(req, &type, &msg);
    if (st) {
        reply_error(c, st, type, lx_str_c(msg), o);
        return;
    }
    if (req->is_too_big) {
        reply_error(c, 413, "ValidationException", LX_STR("Request body too large"), o);
        return;
    }
    cJSON *body = NULL;
    int prc = lx_mock__parse_body(req, &body);
    if (prc) {
        reply_error(c, prc == LX_ETOOBIG ? 413 : 400, "ValidationException",
                    LX_STR("Malformed input request, please reformat your input and try again."),
                    o);
        return;
    }
    char vmsg[512];
    st = validate(body, vmsg, sizeof(vmsg));
    if (st) {
        reply_error(c, st, "ValidationException", lx_str_c(vmsg), o);
        return;
    }
    if (d->reset_after >= 0 && !is_stream) {
        lx_mock__conn_reset(c);
        return;
    }
    if (d->malformed && !is_stream) {
        struct lx_buf *b = lx_mock__scratch_body();
        if (lx_buf_append_c(b, "{\"output\":{\"message\":{\"content\":[") == 0) {
            reply(c, 200, NULL, b, o);
        }
        return;
    }
    /* Tokens: ceil(text bytes / 4) over messages and system, as for the other APIs. */
    uint64_t bytes = 0;
    const cJSON *m;
    struct lx_str last_user = LX_STR("");
    cJSON_ArrayForEach(m, get(body, "messages"))
    {
        bytes += lx_mock__content_bytes(get(m, "content"));
        if (lx_str_eq_c(jstr(get(m, "role")), "user")) {
            last_user = lx_mock__content_text(get(m, "content"));
        }
    }
    bytes += lx_mock__content_bytes(get(body, "system"));
    struct answer a = {
        .text = d->echo ? last_user : d->content,
        .tool = d->tool,
        .stop_reason = d->stop_reason.p ? d->stop_reason
                       : d->tool.p      ? LX_STR("tool_use")
                                        : LX_STR("end_turn"),
        .cache_read = d->cache_read,
    };
    a.input_tokens =
        d->usage_prompt >= 0 ? (uint64_t)d->usage_prompt : lx_mock__tokens_for_bytes(bytes);
    a.output_tokens = d->usage_completion >= 0 ? (uint64_t)d->usage_completion
                                               : lx_mock__count_words(a.text) + (d->tool.p ? 2 : 0);
    if (!is_stream) {
        answer_json(c, &a, o);
        return;
    }
    if (start_stream(c, req, d, &a, o->is_close) != 0) {
        reply_error(c, 500, "InternalServerException", LX_STR("mock out of memory"), o);
    }
}
