/*
 * Code shared by the libFuzzer targets of the translating providers
 * (fuzz_anthropic.c, fuzz_gemini.c, fuzz_ollama.c, fuzz_bedrock.c) and, for
 * the input split, fuzz_client_anthropic.c. Header-only; every function is
 * static and may go unused.
 *
 * An input is one byte of flags (each target reads its own bits) followed by
 * up to three parts separated by 0xFF bytes: a client request body, an
 * upstream response body and an upstream stream. The checks abort() on a
 * broken invariant, which is what libFuzzer reports:
 * - a successful translation writes valid JSON (unless it nests deeper than
 *   cJSON parses) and a failed one writes nothing and sets a message;
 * - translate_error always succeeds with a 4xx/5xx status;
 * - what a stream translation writes parses back as an event stream of JSON
 *   objects and "[DONE]", and nothing follows [DONE] or an error event.
 */
#ifndef LX_FUZZ_PROVIDER_FUZZ_H
#define LX_FUZZ_PROVIDER_FUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/compiler.h"
#include "core/error.h"
#include "core/str.h"
#include "http/sse.h"
#include "providers/provider.h"

/*
 * Route cJSON's allocations through lx_try_malloc (once per process), then
 * split data into *out_flags and part[3] (empty when absent). Returns false
 * for an empty input, which the target skips.
 */
static LX_UNUSED bool fuzz_start(const uint8_t *data, size_t size, uint8_t *out_flags,
                                 struct lx_str part[3])
{
    static int hooked;
    if (!hooked) {
        lx_alloc_hook_cjson();
        hooked = 1;
    }
    if (size < 1) {
        return false;
    }
    *out_flags = data[0];
    const char *p = (const char *)data + 1;
    const char *end = (const char *)data + size;
    for (int i = 0; i < 3; i++) {
        part[i] = LX_STR("");
    }
    for (int i = 0; i < 3 && p <= end; i++) {
        const char *sep = i < 2 ? memchr(p, 0xFF, (size_t)(end - p)) : NULL;
        const char *stop = sep ? sep : end;
        part[i] = (struct lx_str){p, (size_t)(stop - p)};
        if (!sep) {
            break;
        }
        p = sep + 1;
    }
    return true;
}

/* Maximum nesting of s outside strings (a deep output may exceed cJSON's parse limit). */
static LX_UNUSED size_t output_nesting(struct lx_str s)
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

/* s must be valid JSON, unless it nests too deep for cJSON. */
static LX_UNUSED void check_output_json(struct lx_str s)
{
    cJSON *j = cJSON_ParseWithLength(s.p, s.n);
    if (!j && output_nesting(s) < 900) {
        abort();
    }
    cJSON_Delete(j);
}

/* ---- one call of a provider ---- */

/* A call for dep (borrowed) with the client body, and what it owns. */
struct fuzz_call {
    struct lx_arena arena;
    cJSON *json;
    struct lx_provider_call call;
};

static LX_UNUSED void fuzz_call_init(struct fuzz_call *fc, const struct lx_deployment *dep,
                                     struct lx_str body, bool stream, const char *api_key)
{
    lx_arena_init(&fc->arena, NULL, 0, 4096);
    fc->json = cJSON_ParseWithLength(body.p, body.n);
    fc->call = (struct lx_provider_call){
        .endpoint = LX_EP_CHAT,
        .dep = dep,
        .body = body,
        .json = fc->json,
        .stream = stream,
        .api_key = api_key,
        .upstream_model = dep->upstream_model,
        .arena = &fc->arena,
    };
}

static LX_UNUSED void fuzz_call_fini(struct fuzz_call *fc)
{
    cJSON_Delete(fc->json);
    lx_arena_fini(&fc->arena);
}

/*
 * build_request: on success a URL, valid JSON and, when auth_header is not
 * NULL, a header of that exact name; on failure no body and a message.
 */
static LX_UNUSED void fuzz_build_request(const struct lx_provider_ops *ops,
                                         const struct lx_provider_call *call,
                                         const char *auth_header)
{
    struct lx_buf body;
    lx_buf_init(&body, 1 << 22);
    struct lx_provider_request pr = {.body = &body};
    struct lx_error err = {0};
    int rc = ops->build_request(call, &pr, &err);
    if (rc == 0) {
        bool has_auth = !auth_header;
        for (size_t i = 0; auth_header && i < pr.n_headers; i++) {
            has_auth = has_auth || strcmp(pr.headers[i].name, auth_header) == 0;
        }
        if (!pr.url || !has_auth) {
            abort();
        }
        check_output_json(lx_buf_str(&body));
    } else if (body.len || !err.msg[0]) {
        abort();
    }
    lx_buf_fini(&body);
}

/*
 * translate_response of body, then translate_error of it with status, into
 * out (empty, capped; left empty).
 */
static LX_UNUSED void fuzz_translate_response(const struct lx_provider_ops *ops,
                                              const struct lx_provider_call *call,
                                              struct lx_str body, int status, struct lx_buf *out)
{
    struct lx_error err = {0};
    int rc = ops->translate_response(call, body, out, &err);
    if (rc == 0) {
        check_output_json(lx_buf_str(out));
    } else if (out->len || !err.msg[0]) {
        abort();
    }
    lx_buf_reset(out);
    if (ops->translate_error(call, body, &status, out) != 0 || status < 400 || status > 599) {
        abort();
    }
    check_output_json(lx_buf_str(out));
    lx_buf_reset(out);
}

/* ---- streams ---- */

/* What the client has seen of a translated stream. */
struct client_check {
    bool ended; /* [DONE] or an error event was seen */
};

static LX_UNUSED int client_check_event(void *ud, const struct lx_sse_event *ev)
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

/* out, a whole translated stream, must parse as the client parses it; cc gets what it saw. */
static LX_UNUSED void check_client_stream(const struct lx_buf *out, struct client_check *cc)
{
    *cc = (struct client_check){0};
    struct lx_sse_parser sp;
    lx_sse_init(&sp, 1 << 24);
    bool truncated = true;
    if (lx_sse_feed(&sp, out->data ? out->data : "", out->len, client_check_event, cc) != 0 ||
        lx_sse_finish(&sp, &truncated) != 0 || truncated) {
        abort();
    }
    lx_sse_fini(&sp);
}

struct sse_upstream {
    const struct lx_provider_ops *ops;
    void *state;
    struct lx_buf *out;
    struct lx_error err;
};

static LX_UNUSED int sse_upstream_event(void *ud, const struct lx_sse_event *ev)
{
    struct sse_upstream *u = ud;
    size_t before = u->out->len;
    int rc = u->ops->translate_event(u->state, ev, u->out, &u->err);
    if (rc && (u->out->len != before || !u->err.msg[0])) {
        abort();
    }
    return rc;
}

/*
 * Parse the upstream SSE text with lx_sse_feed and translate it event by
 * event into out (a failed event adds nothing and sets a message), then
 * check what the client receives.
 */
static LX_UNUSED void fuzz_sse_stream(const struct lx_provider_ops *ops,
                                      const struct lx_provider_call *call, struct lx_str sse,
                                      struct lx_buf *out)
{
    struct sse_upstream u = {.ops = ops, .state = ops->stream_new(call), .out = out};
    if (!u.state) {
        abort();
    }
    struct lx_sse_parser sp;
    lx_sse_init(&sp, 1 << 20);
    (void)lx_sse_feed(&sp, sse.p, sse.n, sse_upstream_event, &u);
    (void)lx_sse_finish(&sp, NULL);
    lx_sse_fini(&sp);
    ops->stream_free(u.state);

    struct client_check cc;
    check_client_stream(out, &cc);
}

/*
 * The whole check of a provider whose stream is SSE (Anthropic, Gemini):
 * flags bit 0 asks for a stream, bit 1 for an API key (api_key), bits 2-7
 * pick the status translate_error gets from statuses[n_statuses]; part[0]
 * goes through build_request, part[1] through translate_response and
 * translate_error, part[2] through fuzz_sse_stream. dep is borrowed.
 */
static LX_UNUSED void fuzz_sse_provider(const struct lx_provider_ops *ops,
                                        const struct lx_deployment *dep, const char *api_key,
                                        const int *statuses, size_t n_statuses, uint8_t flags,
                                        const struct lx_str part[3])
{
    struct fuzz_call fc;
    fuzz_call_init(&fc, dep, part[0], flags & 1, flags & 2 ? api_key : NULL);

    fuzz_build_request(ops, &fc.call, NULL);
    struct lx_buf out;
    lx_buf_init(&out, 1 << 22);
    fuzz_translate_response(ops, &fc.call, part[1], statuses[(flags >> 2) % n_statuses], &out);
    fuzz_sse_stream(ops, &fc.call, part[2], &out);

    lx_buf_fini(&out);
    fuzz_call_fini(&fc);
}

#endif
