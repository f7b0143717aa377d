/*
 * libFuzzer target for the Bedrock provider (src/providers/bedrock.c). The
 * first byte holds flags (stream, session token, error status, framing,
 * fragment size); the rest is split at 0xFF bytes into a client request
 * body, an upstream response body and an upstream stream. With the framing
 * flag the stream part is a list of records separated by 0xFE, each a kind
 * byte (which event or exception) and a JSON payload, encoded here into valid
 * event stream messages so the fuzzer reaches the translation behind the
 * CRCs; without it the bytes go to the decoder raw.
 *
 * Invariants: a successful translation writes valid JSON (unless it nests
 * deeper than cJSON parses) and a failed one writes nothing and sets a
 * message; build_request signs (an Authorization header) or fails cleanly;
 * translate_error always succeeds; the stream output is an event stream of
 * JSON objects and "[DONE]", nothing follows [DONE] or an error event, and
 * nothing leaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"
#include "http/sse.h"
#include "providers/eventstream.h"
#include "providers/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t nesting(struct lx_str s)
{
    size_t depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
            max = depth > max ? depth : max;
        } else if ((c == '}' || c == ']') && depth) {
            depth--;
        }
    }
    return max;
}

static void check_json(struct lx_str s)
{
    cJSON *j = cJSON_ParseWithLength(s.p, s.n);
    if (!j && nesting(s) < 900) {
        abort();
    }
    cJSON_Delete(j);
}

struct client_check {
    bool ended;
};

static int client_event(void *ud, const struct lx_sse_event *ev)
{
    struct client_check *cc = ud;
    if (cc->ended || ev->name.n) {
        abort();
    }
    if (lx_str_eq_c(ev->data, "[DONE]")) {
        cc->ended = true;
        return 0;
    }
    cJSON *j = cJSON_ParseWithLength(ev->data.p, ev->data.n);
    if (!cJSON_IsObject(j)) {
        abort();
    }
    if (cJSON_GetObjectItemCaseSensitive(j, "error")) {
        cc->ended = true;
    }
    cJSON_Delete(j);
    return 0;
}

static const char *const kinds[] = {
    "messageStart",     "contentBlockStart",   "contentBlockDelta",
    "contentBlockStop", "messageStop",         "metadata",
    "somethingNew",     "throttlingException", "validationException",
};

/* Records "kind byte + payload" separated by 0xFE, as valid messages. */
static void frame_records(struct lx_str in, struct lx_buf *out)
{
    while (in.n) {
        const char *sep = memchr(in.p, 0xFE, in.n);
        struct lx_str rec = {in.p, sep ? (size_t)(sep - in.p) : in.n};
        in = sep ? lx_str_sub(in, rec.n + 1) : lx_str_sub(in, in.n);
        if (!rec.n) {
            continue;
        }
        size_t k = (unsigned char)rec.p[0] % (sizeof(kinds) / sizeof(kinds[0]));
        bool exc = k >= 7;
        struct lx_eventstream_header h[] = {
            {exc ? ":exception-type" : ":event-type", lx_str_c(kinds[k])},
            {":content-type", LX_STR("application/json")},
            {":message-type", exc ? LX_STR("exception") : LX_STR("event")},
        };
        if (lx_eventstream_encode(out, h, 3, lx_str_sub(rec, 1)) != 0) {
            return;
        }
    }
}

static const int statuses[] = {400, 403, 404, 429, 500, 503, 424, 408};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int hooked;
    if (!hooked) {
        lx_alloc_hook_cjson();
        hooked = 1;
    }
    if (size < 1) {
        return 0;
    }
    long live = lx_alloc_live();
    uint8_t flags = data[0];
    const char *p = (const char *)data + 1;
    const char *end = (const char *)data + size;
    struct lx_str part[3] = {LX_STR(""), LX_STR(""), LX_STR("")};
    for (int i = 0; i < 3 && p <= end; i++) {
        const char *sep = i < 2 ? memchr(p, 0xFF, (size_t)(end - p)) : NULL;
        const char *stop = sep ? sep : end;
        part[i] = (struct lx_str){p, (size_t)(stop - p)};
        if (!sep) {
            break;
        }
        p = sep + 1;
    }

    const struct lx_provider_ops *ops = lx_provider_ops_for(LX_PROVIDER_BEDROCK);
    struct lx_deployment dep;
    memset(&dep, 0, sizeof(dep));
    dep.model_name = "bedrock";
    dep.id = "d1";
    dep.provider.kind = LX_PROVIDER_BEDROCK;
    dep.upstream_model = flags & 0x40 ? "converse/anthropic.claude-3-haiku-20240307-v1:0"
                                      : "anthropic.claude-3-sonnet-20240229-v1:0";
    dep.aws_access_key_id = "AKIDEXAMPLE";
    dep.aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    dep.aws_session_token = flags & 2 ? "token" : NULL;
    dep.aws_region_name = "us-west-2";
    dep.api_base = flags & 0x80 ? "http://127.0.0.1:9/mock/x=1" : NULL;

    struct lx_arena arena;
    lx_arena_init(&arena, NULL, 0, 4096);
    cJSON *json = cJSON_ParseWithLength(part[0].p, part[0].n);
    struct lx_provider_call call = {
        .endpoint = LX_EP_CHAT,
        .dep = &dep,
        .body = part[0],
        .json = json,
        .stream = flags & 1,
        .upstream_model = dep.upstream_model,
        .arena = &arena,
    };

    /* Request. */
    struct lx_buf body;
    lx_buf_init(&body, 1 << 22);
    struct lx_provider_request pr = {.body = &body};
    struct lx_error err = {0};
    int rc = ops->build_request(&call, &pr, &err);
    if (rc == 0) {
        bool has_auth = false;
        for (size_t i = 0; i < pr.n_headers; i++) {
            has_auth = has_auth || strcmp(pr.headers[i].name, "Authorization") == 0;
        }
        if (!pr.url || !has_auth) {
            abort();
        }
        check_json(lx_buf_str(&body));
    } else if (body.len || !err.msg[0]) {
        abort();
    }
    lx_buf_fini(&body);

    /* Response and error. */
    struct lx_buf out;
    lx_buf_init(&out, 1 << 22);
    memset(&err, 0, sizeof(err));
    rc = ops->translate_response(&call, part[1], &out, &err);
    if (rc == 0) {
        check_json(lx_buf_str(&out));
    } else if (out.len || !err.msg[0]) {
        abort();
    }
    lx_buf_reset(&out);
    int status = statuses[(flags >> 2) % (sizeof(statuses) / sizeof(statuses[0]))];
    if (ops->translate_error(&call, part[1], &status, &out) != 0 || status < 400 || status > 599) {
        abort();
    }
    check_json(lx_buf_str(&out));
    lx_buf_reset(&out);

    /* Stream. */
    struct lx_buf framed;
    lx_buf_init(&framed, 1 << 24);
    struct lx_str up = part[2];
    if (flags & 0x20) {
        frame_records(part[2], &framed);
        up = lx_buf_str(&framed);
    }
    void *st = ops->stream_new(&call);
    if (!st) {
        abort();
    }
    size_t frag = (size_t)((flags >> 3) & 3) * 7 + 1;
    if (!(flags & 0x10)) {
        frag = up.n ? up.n : 1;
    }
    rc = 0;
    for (size_t pos = 0; pos < up.n && !rc; pos += frag) {
        size_t before = out.len;
        memset(&err, 0, sizeof(err));
        rc = ops->stream_feed(st, up.p + pos, LX_MIN(frag, up.n - pos), &out, &err);
        if (rc && !err.msg[0]) {
            abort();
        }
        (void)before;
    }
    if (!rc) {
        memset(&err, 0, sizeof(err));
        if (ops->stream_end(st, &out, &err) != 0 && !err.msg[0]) {
            abort();
        }
    }
    ops->stream_free(st);
    lx_buf_fini(&framed);

    struct client_check cc = {0};
    struct lx_sse_parser sp;
    lx_sse_init(&sp, 1 << 24);
    bool truncated = true;
    if (lx_sse_feed(&sp, out.data ? out.data : "", out.len, client_event, &cc) != 0 ||
        lx_sse_finish(&sp, &truncated) != 0 || truncated) {
        abort();
    }
    lx_sse_fini(&sp);

    lx_buf_fini(&out);
    cJSON_Delete(json);
    lx_arena_fini(&arena);
    if (lx_alloc_live() != live) {
        abort();
    }
    return 0;
}
