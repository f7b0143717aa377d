/*
 * libFuzzer target for the Gemini provider. The first byte holds flags
 * (stream, API key present, which error status to try); the rest is split at
 * 0xFF bytes into a client request body, an upstream response body and an
 * upstream event stream. The request goes through build_request, the
 * response through translate_response and translate_error, and the stream,
 * parsed with lx_sse_feed, through translate_event.
 *
 * Invariants: a successful translation writes valid JSON (checked with
 * cJSON, unless the output nests deeper than cJSON's limit) and a failed one
 * writes nothing and sets a message; translate_error always succeeds with a
 * 4xx/5xx status; what the stream translation writes parses back as an event
 * stream of JSON objects and "[DONE]", nothing follows [DONE] or an error
 * event, and nothing leaks.
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
#include "providers/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Maximum nesting of s outside strings (a deep output may exceed cJSON's parse limit). */
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
    bool ended; /* [DONE] or an error event was seen */
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

struct upstream {
    const struct lx_provider_ops *ops;
    void *state;
    struct lx_buf *out;
    struct lx_error err;
};

static int upstream_event(void *ud, const struct lx_sse_event *ev)
{
    struct upstream *u = ud;
    size_t before = u->out->len;
    int rc = u->ops->translate_event(u->state, ev, u->out, &u->err);
    if (rc && (u->out->len != before || !u->err.msg[0])) {
        abort();
    }
    return rc;
}

static const int statuses[] = {400, 401, 403, 404, 429, 500, 503, 504};

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

    const struct lx_provider_ops *ops = lx_provider_ops_for(LX_PROVIDER_GEMINI);
    struct lx_deployment dep;
    memset(&dep, 0, sizeof(dep));
    dep.model_name = "gemini";
    dep.id = "d1";
    dep.provider.kind = LX_PROVIDER_GEMINI;
    dep.provider.default_api_base = "https://generativelanguage.googleapis.com";
    dep.upstream_model = "gemini-2.0-flash";
    struct lx_kv hdr = {"x-goog-user-project", "p"};
    dep.extra_headers = &hdr;
    dep.n_extra_headers = 1;

    struct lx_arena arena;
    lx_arena_init(&arena, NULL, 0, 4096);
    cJSON *json = cJSON_ParseWithLength(part[0].p, part[0].n);
    struct lx_provider_call call = {
        .endpoint = LX_EP_CHAT,
        .dep = &dep,
        .body = part[0],
        .json = json,
        .stream = flags & 1,
        .api_key = flags & 2 ? "AIza-fuzz" : NULL,
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
        if (!pr.url) {
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
    struct upstream u = {.ops = ops, .state = ops->stream_new(&call), .out = &out};
    if (!u.state) {
        abort();
    }
    struct lx_sse_parser sp;
    lx_sse_init(&sp, 1 << 20);
    (void)lx_sse_feed(&sp, part[2].p, part[2].n, upstream_event, &u);
    (void)lx_sse_finish(&sp, NULL);
    lx_sse_fini(&sp);
    ops->stream_free(u.state);

    struct client_check cc = {0};
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
    return 0;
}
