/*
 * libFuzzer target for the Anthropic client adapter
 * (src/proxy/client_anthropic.c). The first byte holds flags (an error
 * status to try, and whether and when to inject an allocation failure); the
 * rest is split at 0xFF bytes into a Messages request body, an OpenAI
 * chat.completion body and an OpenAI event stream. The request goes through
 * translate_request and count_tokens, the response through
 * translate_response and error_body, and the stream, parsed with
 * lx_sse_feed, event by event through translate_event (the stream state is
 * made from the translated request when there is one).
 *
 * Invariants: a successful call writes valid JSON (checked with cJSON) and a
 * failed one writes nothing, sets a message and returns a documented code;
 * error_body always succeeds; what the stream translation writes parses
 * back as Anthropic events (name equal to the data's type) in a legal order:
 * message_start first, content blocks numbered from 0 and never
 * interleaved, deltas only for the open block, message_delta then
 * message_stop, and nothing after message_stop or an error; nothing leaks.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"
#include "http/sse.h"
#include "provider_fuzz.h"
#include "proxy/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Allocation failure to inject in each translation call: -1 for none. */
static long fail_at = -1;

static void arm(void)
{
    if (fail_at >= 0) {
        lx_alloc_fail_after(fail_at, 0);
    }
}

static void disarm(void)
{
    lx_alloc_fail_after(-1, 0);
}

static void check_json(struct lx_str s)
{
    cJSON *j = cJSON_ParseWithLength(s.p, s.n);
    if (!cJSON_IsObject(j)) {
        abort();
    }
    cJSON_Delete(j);
}

/* A failed call: nothing written, a message, one of the codes allowed. */
static void check_failure(int rc, size_t written, const struct lx_error *err, int allowed)
{
    if (written || !err->msg[0] || (rc != allowed && rc != LX_ENOMEM && rc != LX_ETOOBIG)) {
        abort();
    }
}

/* The order of Anthropic events the client sees. */
struct order {
    bool started, delta_seen, ended;
    long long open; /* index of the open block, -1 when none */
    long long next; /* index of the next block */
};

static long long index_of(const cJSON *j)
{
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(j, "index");
    return cJSON_IsNumber(i) ? (long long)i->valuedouble : -2;
}

static int client_event(void *ud, const struct lx_sse_event *ev)
{
    struct order *o = ud;
    cJSON *j = cJSON_ParseWithLength(ev->data.p, ev->data.n);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (o->ended || !cJSON_IsString(t) || !ev->name.n || !lx_str_eq_c(ev->name, t->valuestring)) {
        abort();
    }
    const char *n = t->valuestring;
    bool ok;
    if (strcmp(n, "error") == 0) {
        ok = true;
        o->ended = true;
    } else if (strcmp(n, "message_start") == 0) {
        ok = !o->started;
        o->started = true;
    } else if (strcmp(n, "content_block_start") == 0) {
        ok = o->started && !o->delta_seen && o->open == -1 && index_of(j) == o->next;
        o->open = o->next++;
    } else if (strcmp(n, "content_block_delta") == 0) {
        ok = o->open >= 0 && index_of(j) == o->open;
    } else if (strcmp(n, "content_block_stop") == 0) {
        ok = o->open >= 0 && index_of(j) == o->open;
        o->open = -1;
    } else if (strcmp(n, "message_delta") == 0) {
        ok = o->started && o->open == -1 && !o->delta_seen;
        o->delta_seen = true;
    } else if (strcmp(n, "message_stop") == 0) {
        ok = o->delta_seen;
        o->ended = true;
    } else {
        ok = false;
    }
    cJSON_Delete(j);
    if (!ok) {
        abort();
    }
    return 0;
}

struct feed {
    void *state;
    struct lx_buf *out;
    struct lx_sse_parser *client;
    struct order order;
};

static int upstream_event(void *ud, const struct lx_sse_event *ev)
{
    struct feed *f = ud;
    struct lx_error err = {0};
    size_t before = f->out->len;
    arm();
    int rc = lx_client_anthropic.translate_event(f->state, ev->data, f->out, &err);
    disarm();
    if (rc) {
        check_failure(rc, f->out->len - before, &err, LX_EUPSTREAM);
        return rc;
    }
    /* Each call writes whole events. */
    if (lx_sse_feed(f->client, f->out->data + before, f->out->len - before, client_event,
                    &f->order)) {
        abort();
    }
    return 0;
}

static const int statuses[] = {400, 401, 403, 404, 413, 429, 500, 502, 503, 529, 418, 0};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags;
    struct lx_str part[3];
    if (!fuzz_start(data, size, &flags, part)) {
        return 0;
    }
    /* Bit 7: make the n-th allocation of each call fail (n from bits 4-6). */
    fail_at = flags & 0x80 ? (flags >> 4) & 7 : -1;

    /* Request. */
    struct lx_buf req;
    lx_buf_init(&req, 1 << 22);
    struct lx_error err = {0};
    arm();
    int rc = lx_client_anthropic.translate_request(part[0], &req, &err);
    disarm();
    if (rc == 0) {
        check_json(lx_buf_str(&req));
    } else {
        check_failure(rc, req.len, &err, LX_EINVAL);
    }
    struct lx_buf out;
    lx_buf_init(&out, 1 << 22);
    memset(&err, 0, sizeof(err));
    arm();
    rc = lx_client_anthropic_count_tokens(part[0], &out, &err);
    disarm();
    if (rc == 0) {
        check_json(lx_buf_str(&out));
    } else {
        check_failure(rc, out.len, &err, LX_EINVAL);
    }
    lx_buf_reset(&out);

    /* Response and error. */
    memset(&err, 0, sizeof(err));
    arm();
    rc = lx_client_anthropic.translate_response(part[1], &out, &err);
    disarm();
    if (rc == 0) {
        check_json(lx_buf_str(&out));
    } else {
        check_failure(rc, out.len, &err, LX_EUPSTREAM);
    }
    lx_buf_reset(&out);
    int status = statuses[(flags & 0x0f) % (sizeof(statuses) / sizeof(statuses[0]))];
    arm();
    rc = lx_client_anthropic.error_body(status, (flags & 1) ? "requests" : NULL, part[1], &out);
    disarm();
    if (rc == 0) {
        check_json(lx_buf_str(&out));
    } else if (rc != LX_ENOMEM || out.len) {
        abort();
    }
    lx_buf_reset(&out);

    /* Stream. */
    struct lx_arena arena;
    lx_arena_init(&arena, NULL, 0, 4096);
    cJSON *json = req.len ? cJSON_ParseWithLength(req.data, req.len) : NULL;
    struct lx_sse_parser up, client;
    lx_sse_init(&up, 1 << 20);
    lx_sse_init(&client, 1 << 22);
    arm();
    struct feed f = {.state = lx_client_anthropic.stream_new(&arena, json),
                     .out = &out,
                     .client = &client,
                     .order = {.open = -1}};
    disarm();
    if (f.state) {
        if (lx_sse_feed(&up, part[2].p, part[2].n, upstream_event, &f)) {
            /* a failed translation: checked in upstream_event */
        }
        bool truncated = false;
        (void)lx_sse_finish(&client, &truncated);
        if (truncated) {
            abort();
        }
        lx_client_anthropic.stream_free(f.state);
    } else if (fail_at < 0) {
        abort();
    }
    lx_sse_fini(&up);
    lx_sse_fini(&client);
    cJSON_Delete(json);
    lx_arena_fini(&arena);
    lx_buf_fini(&out);
    lx_buf_fini(&req);
    return 0;
}
