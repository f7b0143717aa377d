/*
 * Helpers shared by the provider unit tests (test_anthropic.c,
 * test_gemini.c, test_ollama.c, test_bedrock.c): a deployment with unset
 * limits, building a request and comparing its body as a JSON tree,
 * translating responses and errors, and running a stream through a
 * translator and parsing what the client receives. Header-only; every
 * function is static and may go unused.
 *
 * The including file defines, before the #include:
 * - TEST_KEY: the api_key of the calls build_ep() makes (a string or NULL);
 * - optionally TEST_BUILD_REQUEST(call, out, err): how build_ep() builds the
 *   request (default: ops()->build_request), e.g. with a fixed clock;
 * - optionally TEST_GENERATED_IDS 1 when translated responses and chunks
 *   carry generated ids (chatcmpl-..., call_...): translate() then checks
 *   the top-level id and drops every generated id and "created" from the
 *   tree (by default it drops only the top-level "created"), and
 *   chunk_delta() is defined;
 * - optionally PROVIDER_TEST_REQUESTS_ONLY to take only the deployment and
 *   request helpers (up to req_is()), for a provider whose responses and
 *   streams have other shapes (Bedrock's event stream).
 * and defines ops() and test_dep(), declared here.
 */
#ifndef LX_TESTS_PROVIDER_TEST_H
#define LX_TESTS_PROVIDER_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/compiler.h"
#include "core/error.h"
#include "http/sse.h"
#include "providers/provider.h"

#ifndef TEST_KEY
#error "define TEST_KEY (the api_key of built requests, or NULL) before including provider_test.h"
#endif
#ifndef TEST_BUILD_REQUEST
#define TEST_BUILD_REQUEST(call, out, err) ops()->build_request((call), (out), (err))
#endif
#ifndef TEST_GENERATED_IDS
#define TEST_GENERATED_IDS 0
#endif

/* The provider under test; defined by the including file. */
static const struct lx_provider_ops *ops(void);
/* The deployment the helpers use; defined by the including file (see test_dep_init). */
static struct lx_deployment test_dep(void);

/* Zero d and leave every optional limit, cost and timeout unset, as the config loader does. */
static LX_UNUSED void test_dep_init(struct lx_deployment *d)
{
    memset(d, 0, sizeof(*d));
    d->timeout = -1;
    d->stream_timeout = -1;
    d->max_retries = -1;
    d->rpm = -1;
    d->tpm = -1;
    d->weight = 1;
    d->order = -1;
    d->input_cost_per_token = -1;
    d->output_cost_per_token = -1;
}

/* got equals the JSON text want (as trees); prints both when not. */
static LX_UNUSED int json_eq(const cJSON *got, const char *want)
{
    cJSON *w = cJSON_Parse(want);
    if (!w) {
        fprintf(stderr, "  bad expected JSON: %s\n", want);
        return 0;
    }
    int ok = got && cJSON_Compare(got, w, 1);
    if (!ok) {
        char *g = got ? cJSON_PrintUnformatted(got) : NULL;
        char *ws = cJSON_PrintUnformatted(w);
        fprintf(stderr, "  got:  %s\n  want: %s\n", g ? g : "(null)", ws ? ws : "?");
        cJSON_free(g);
        cJSON_free(ws);
    }
    cJSON_Delete(w);
    return ok;
}

/* ---- requests ---- */

struct built {
    int rc;
    struct lx_error err;
    struct lx_arena arena;
    struct lx_buf body;
    struct lx_provider_call call;
    struct lx_provider_request pr;
    cJSON *in;
    cJSON *out; /* the upstream body, parsed (NULL on failure) */
};

/* Build the upstream request for the client body json at endpoint ep; free with built_fini. */
static LX_UNUSED void build_ep(struct built *b, const struct lx_deployment *dep, const char *json,
                               enum lx_endpoint ep)
{
    memset(b, 0, sizeof(*b));
    lx_arena_init(&b->arena, NULL, 0, 4096);
    lx_buf_init(&b->body, 1 << 20);
    b->in = cJSON_Parse(json);
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(b->in, "stream");
    b->call = (struct lx_provider_call){
        .endpoint = ep,
        .dep = dep,
        .body = lx_str_c(json),
        .json = b->in,
        .stream = cJSON_IsTrue(stream),
        .api_key = TEST_KEY,
        .upstream_model = dep->upstream_model,
        .arena = &b->arena,
    };
    b->pr.body = &b->body;
    b->rc = TEST_BUILD_REQUEST(&b->call, &b->pr, &b->err);
    if (!b->rc) {
        b->out = cJSON_ParseWithLength(b->body.data, b->body.len);
    }
}

static LX_UNUSED void build(struct built *b, const struct lx_deployment *dep, const char *json)
{
    build_ep(b, dep, json, LX_EP_CHAT);
}

static LX_UNUSED void built_fini(struct built *b)
{
    cJSON_Delete(b->in);
    cJSON_Delete(b->out);
    lx_buf_fini(&b->body);
    lx_arena_fini(&b->arena);
}

/* Build the request and compare its body with want. */
static LX_UNUSED int req_is(const char *in, const char *want)
{
    struct lx_deployment dep = test_dep();
    struct built b;
    build(&b, &dep, in);
    int ok = b.rc == 0 && json_eq(b.out, want);
    if (b.rc) {
        fprintf(stderr, "  build failed: %d %s\n", b.rc, b.err.msg);
    }
    built_fini(&b);
    return ok;
}

#ifndef PROVIDER_TEST_REQUESTS_ONLY

/* The value of the request header name (case-insensitive), or LX_STR_NULL. */
static LX_UNUSED struct lx_str header(const struct built *b, const char *name)
{
    for (size_t i = 0; i < b->pr.n_headers; i++) {
        if (strcasecmp(b->pr.headers[i].name, name) == 0) {
            return b->pr.headers[i].value;
        }
    }
    return LX_STR_NULL;
}

/* Building must fail with code and a message containing needle. */
static LX_UNUSED int req_fails(const char *in, int code, const char *needle)
{
    struct lx_deployment dep = test_dep();
    struct built b;
    build(&b, &dep, in);
    int ok = b.rc == code && strstr(b.err.msg, needle) != NULL && b.body.len == 0;
    if (!ok) {
        fprintf(stderr, "  %s: rc=%d msg=\"%s\" (want %d, \"%s\")\n", in, b.rc, b.err.msg, code,
                needle);
    }
    built_fini(&b);
    return ok;
}

/* ---- responses and errors ---- */

/* Drop the members that differ from run to run (ids, times) from a tree, recursively. */
static LX_UNUSED void scrub(cJSON *j)
{
    if (!j) {
        return;
    }
    if (cJSON_IsObject(j)) {
        cJSON_DeleteItemFromObjectCaseSensitive(j, "created");
        cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        if (cJSON_IsString(id) && (strncmp(id->valuestring, "chatcmpl-", 9) == 0 ||
                                   strncmp(id->valuestring, "call_", 5) == 0)) {
            cJSON_DeleteItemFromObjectCaseSensitive(j, "id");
        }
    }
    cJSON *c;
    cJSON_ArrayForEach(c, j)
    {
        scrub(c);
    }
}

/*
 * Translate a response body; the result parsed, with "created" (and, with
 * TEST_GENERATED_IDS, the generated ids) checked and removed.
 */
static LX_UNUSED cJSON *translate(const char *body, int *out_rc, struct lx_error *err)
{
    struct lx_deployment dep = test_dep();
    struct lx_provider_call call = {.dep = &dep, .upstream_model = dep.upstream_model};
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    *out_rc = ops()->translate_response(&call, lx_str_c(body), &out, err);
    cJSON *j = NULL;
    if (!*out_rc) {
        j = cJSON_ParseWithLength(out.data, out.len);
        const cJSON *created = cJSON_GetObjectItemCaseSensitive(j, "created");
        if (!TEST_GENERATED_IDS) {
            if (!cJSON_IsNumber(created) || created->valuedouble < 1.7e9) {
                fprintf(stderr, "  bad created\n");
                cJSON_Delete(j);
                j = NULL;
            } else {
                cJSON_DeleteItemFromObjectCaseSensitive(j, "created");
            }
        } else {
            const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "id"));
            if (!cJSON_IsNumber(created) || created->valuedouble < 1.7e9 || !id ||
                strncmp(id, "chatcmpl-", 9) != 0) {
                fprintf(stderr, "  bad created or id\n");
                cJSON_Delete(j);
                j = NULL;
            } else {
                scrub(j);
            }
        }
    } else if (out.len) {
        fprintf(stderr, "  output left behind on failure\n");
        *out_rc = 1;
    }
    lx_buf_fini(&out);
    return j;
}

static LX_UNUSED int resp_is(const char *body, const char *want)
{
    struct lx_error err = {0};
    int rc;
    cJSON *j = translate(body, &rc, &err);
    if (rc) {
        fprintf(stderr, "  translate failed: %d %s\n", rc, err.msg);
    }
    int ok = !rc && json_eq(j, want);
    cJSON_Delete(j);
    return ok;
}

/* The translation must fail with LX_EUPSTREAM and a message. */
static LX_UNUSED int resp_fails(const char *body)
{
    struct lx_error err = {0};
    int rc;
    cJSON *j = translate(body, &rc, &err);
    cJSON_Delete(j);
    if (rc != LX_EUPSTREAM || !err.msg[0]) {
        fprintf(stderr, "  %s: rc=%d\n", body, rc);
        return 0;
    }
    return 1;
}

/* translate_error maps (status, body) to want_status and the OpenAI error body want. */
static LX_UNUSED int error_case(int status, const char *body, int want_status, const char *want)
{
    struct lx_deployment dep = test_dep();
    struct lx_provider_call call = {.dep = &dep};
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    int st = status;
    int rc = ops()->translate_error(&call, lx_str_c(body), &st, &out);
    cJSON *j = cJSON_ParseWithLength(out.data ? out.data : "", out.len);
    int ok = rc == 0 && st == want_status && json_eq(j, want);
    if (!ok) {
        fprintf(stderr, "  status %d -> %d (want %d), rc %d\n", status, st, want_status, rc);
    }
    cJSON_Delete(j);
    lx_buf_fini(&out);
    return ok;
}

/* ---- streams: what the client receives ---- */

#define MAX_EVENTS 64

struct stream_run {
    const struct lx_provider_ops *ops;
    void *state;
    struct lx_buf out;
    struct lx_error err;
    int rc;
    int end_rc;
    size_t n;
    cJSON *ev[MAX_EVENTS]; /* parsed data of each emitted event; NULL for [DONE] */
    bool is_done[MAX_EVENTS];
    /* What the state may point to while it lives (stream_open to stream_close). */
    struct lx_deployment dep;
    struct lx_arena arena;
    cJSON *in;
    struct lx_provider_call call;
};

static LX_UNUSED int collect_cb(void *ud, const struct lx_sse_event *ev)
{
    struct stream_run *r = ud;
    if (r->n == MAX_EVENTS || ev->name.n) {
        return -100;
    }
    r->is_done[r->n] = lx_str_eq_c(ev->data, "[DONE]");
    r->ev[r->n] = r->is_done[r->n] ? NULL : cJSON_ParseWithLength(ev->data.p, ev->data.n);
    if (!r->is_done[r->n] && !r->ev[r->n]) {
        return -101;
    }
    r->n++;
    return 0;
}

/* Parse r->out as the client would; every event must be JSON or [DONE]. */
static LX_UNUSED void stream_collect(struct stream_run *r)
{
    struct lx_sse_parser p;
    lx_sse_init(&p, 1 << 20);
    int rc = lx_sse_feed(&p, r->out.data ? r->out.data : "", r->out.len, collect_cb, r);
    bool truncated = true;
    int rc2 = lx_sse_finish(&p, &truncated);
    lx_sse_fini(&p);
    if (rc || rc2 || truncated) {
        fprintf(stderr, "  client stream does not parse: %d %d %d\n", rc, rc2, truncated);
        r->rc = r->rc ? r->rc : -200;
    }
}

/* Reset r and start a stream of test_dep() for the client request req_json. */
static LX_UNUSED void stream_open(struct stream_run *r, const char *req_json)
{
    memset(r, 0, sizeof(*r));
    r->dep = test_dep();
    lx_arena_init(&r->arena, NULL, 0, 4096);
    r->in = cJSON_Parse(req_json);
    r->call = (struct lx_provider_call){.endpoint = LX_EP_CHAT,
                                        .dep = &r->dep,
                                        .json = r->in,
                                        .stream = true,
                                        .upstream_model = r->dep.upstream_model,
                                        .arena = &r->arena};
    r->ops = ops();
    r->state = r->ops->stream_new(&r->call);
    lx_buf_init(&r->out, 1 << 20);
}

/* Free the stream stream_open started, then collect the client's view (stream_collect). */
static LX_UNUSED void stream_close(struct stream_run *r)
{
    r->ops->stream_free(r->state);
    r->state = NULL;
    lx_arena_fini(&r->arena);
    cJSON_Delete(r->in);
    r->in = NULL;
    stream_collect(r);
}

static LX_UNUSED int feed_cb(void *ud, const struct lx_sse_event *ev)
{
    struct stream_run *r = ud;
    return r->ops->translate_event(r->state, ev, &r->out, &r->err);
}

/* Run an upstream SSE text through the translator; the client request is req_json. */
static LX_UNUSED void stream_run(struct stream_run *r, const char *req_json, const char *sse,
                                 size_t n)
{
    stream_open(r, req_json);
    struct lx_sse_parser p;
    lx_sse_init(&p, 1 << 20);
    r->rc = lx_sse_feed(&p, sse, n, feed_cb, r);
    bool truncated = false;
    (void)lx_sse_finish(&p, &truncated);
    lx_sse_fini(&p);
    stream_close(r);
}

static LX_UNUSED void stream_fini(struct stream_run *r)
{
    for (size_t i = 0; i < r->n; i++) {
        cJSON_Delete(r->ev[i]);
    }
    lx_buf_fini(&r->out);
}

#if TEST_GENERATED_IDS
/*
 * The delta of chunk i, checking the envelope (object, model, a generated
 * chatcmpl- id) and finish_reason. (Without generated ids the test file
 * checks the id it expects with its own chunk_delta.)
 */
static LX_UNUSED const cJSON *chunk_delta(const struct stream_run *r, size_t i, const char *model,
                                          const char *finish)
{
    const cJSON *c = i < r->n ? r->ev[i] : NULL;
    if (!c) {
        fprintf(stderr, "  chunk %zu missing\n", i);
        return NULL;
    }
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "choices"), 0);
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
    const char *obj = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "object"));
    const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "model"));
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id"));
    bool ok = obj && !strcmp(obj, "chat.completion.chunk") && m && !strcmp(m, model) && id &&
              !strncmp(id, "chatcmpl-", 9) &&
              (finish ? cJSON_IsString(fr) && !strcmp(fr->valuestring, finish) : cJSON_IsNull(fr));
    if (!ok) {
        char *s = cJSON_PrintUnformatted(c);
        fprintf(stderr, "  chunk %zu has a bad envelope: %s\n", i, s ? s : "?");
        cJSON_free(s);
        return NULL;
    }
    return cJSON_GetObjectItemCaseSensitive(ch, "delta");
}
#endif /* TEST_GENERATED_IDS */

#endif /* PROVIDER_TEST_REQUESTS_ONLY */

#endif
