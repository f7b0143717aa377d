/*
 * The mock's application: routes, behaviour directives and OpenAI-shaped
 * answers (chat completions, legacy completions, embeddings, models), plain
 * or streamed as server-sent events. Anthropic's routes are handed to
 * mock_anthropic.c once the directives are parsed; the scratch memory, the
 * piece splitter and the SSE framing below serve both (mock.h).
 *
 * Directives (README.md) come from the CLI defaults, then a path prefix
 * /mock/<k=v,...>/, then x-mock-<k> headers; later sources win. Fault
 * directives are checked before the body is looked at, in this order: hang,
 * status, route, body; reset_after and malformed need to know whether the
 * request streams, so they come after the body is parsed.
 *
 * Memory: request JSON is parsed by cJSON into a per-thread arena (the hooks
 * are set once in lx_mock__json_init) that is rewound after every request,
 * and answers are formatted into per-thread scratch buffers, so a plain
 * answer costs no heap allocation. A stream copies what it needs (headers,
 * the chunk prefix, the content) into one allocation it owns.
 *
 * Token counts are deterministic, not a tokenizer: prompt_tokens is
 * ceil(content bytes / 4) (at least 1), completion_tokens the number of
 * whitespace-separated words of the answer.
 */
#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/rand.h"
#include "core/time.h"
#include "mock.h"

#define ARENA_BLOCK (64 * 1024)
#define ARENA_LIMIT (256u * 1024 * 1024)
#define SCRATCH_KEEP (1024 * 1024)
#define MAX_EMBED_INPUTS 2048
#define MAX_EMBED_DIMS 8192
#define MAX_EMBED_FLOATS (4u * 1024 * 1024)
#define DEFAULT_EMBED_DIMS 8
#define ID_HEX 24

/* ---- per-thread scratch ---- */

static _Thread_local struct lx_arena tls_arena;
static _Thread_local _Alignas(16) char tls_block[ARENA_BLOCK];
static _Thread_local struct lx_buf tls_head;
static _Thread_local struct lx_buf tls_body;
static _Thread_local struct lx_buf tls_event;
static _Thread_local bool tls_ready;

static void tls_rewind(void)
{
    if (tls_arena.head) {
        lx_arena_fini(&tls_arena);
    }
    lx_arena_init(&tls_arena, tls_block, sizeof(tls_block), ARENA_BLOCK);
    tls_arena.limit = ARENA_LIMIT;
}

static void tls_init(void)
{
    if (tls_ready) {
        return;
    }
    tls_rewind();
    lx_buf_init(&tls_head, 4096);
    lx_buf_init(&tls_body, LX_MOCK_MAX_OUT_BYTES);
    lx_buf_init(&tls_event, LX_MOCK_MAX_OUT_BYTES);
    tls_ready = true;
}

void lx_mock__thread_fini(void)
{
    if (!tls_ready) {
        return;
    }
    lx_arena_fini(&tls_arena);
    lx_buf_fini(&tls_head);
    lx_buf_fini(&tls_body);
    lx_buf_fini(&tls_event);
    tls_ready = false;
}

static void scratch_reset(struct lx_buf *b)
{
    if (b->cap > SCRATCH_KEEP) {
        lx_buf_fini(b);
    } else {
        lx_buf_reset(b);
    }
}

void *lx_mock__arena_alloc(size_t n)
{
    tls_init();
    return lx_arena_try_alloc(&tls_arena, n);
}

static void *arena_malloc(size_t n)
{
    return lx_mock__arena_alloc(n);
}

static void arena_free(void *p)
{
    (void)p; /* the arena is rewound after each request */
}

void lx_mock__json_init(void)
{
    cJSON_Hooks hooks = {.malloc_fn = arena_malloc, .free_fn = arena_free};
    cJSON_InitHooks(&hooks);
}

struct lx_buf *lx_mock__scratch_body(void)
{
    tls_init();
    lx_buf_reset(&tls_body);
    return &tls_body;
}

struct lx_buf *lx_mock__scratch_event(void)
{
    tls_init();
    lx_buf_reset(&tls_event);
    return &tls_event;
}

/* ---- small helpers ---- */

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

uint64_t lx_mock__count_words(struct lx_str s)
{
    uint64_t n = 0;
    bool in_word = false;
    for (size_t i = 0; i < s.n; i++) {
        bool sp = is_space(s.p[i]);
        if (!sp && !in_word) {
            n++;
        }
        in_word = !sp;
    }
    return n;
}

uint64_t lx_mock__tokens_for_bytes(uint64_t bytes)
{
    uint64_t t = (bytes + 3) / 4;
    return t ? t : 1;
}

struct lx_str lx_mock__make_id(char *out, size_t cap, const char *prefix)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(prefix);
    if (n + ID_HEX + 1 > cap) {
        n = 0;
    }
    memcpy(out, prefix, n);
    uint64_t a = lx_rand_u64();
    uint64_t b = lx_rand_u64();
    for (int i = 0; i < 16; i++) {
        out[n++] = hex[(a >> (i * 4)) & 15];
    }
    for (int i = 0; i < ID_HEX - 16; i++) {
        out[n++] = hex[(b >> (i * 4)) & 15];
    }
    out[n] = '\0';
    return (struct lx_str){out, n};
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 529:
        return "Overloaded"; /* 529 is not in RFC 9110; Anthropic uses it for overload */
    default:
        return status < 400 ? "OK" : "Error";
    }
}

/* ---- directives ---- */

enum dkey {
    D_LATENCY_MS,
    D_CHUNKS,
    D_INTERVAL_MS,
    D_CONTENT,
    D_ECHO,
    D_STATUS,
    D_RETRY_AFTER,
    D_ERROR_MESSAGE,
    D_RESET_AFTER,
    D_SLOW_HEADERS_MS,
    D_MALFORMED,
    D_HANG,
    D_CLOSE,
    D_USAGE_PROMPT,
    D_USAGE_COMPLETION,
    D_STREAM_ERROR,
    D_TOOL,
    D_STOP_REASON,
    D_CACHE_READ,
    D_CACHE_CREATION,
};

static const char *const dkey_names[] = {
    [D_LATENCY_MS] = "latency_ms",
    [D_CHUNKS] = "chunks",
    [D_INTERVAL_MS] = "interval_ms",
    [D_CONTENT] = "content",
    [D_ECHO] = "echo",
    [D_STATUS] = "status",
    [D_RETRY_AFTER] = "retry_after",
    [D_ERROR_MESSAGE] = "error_message",
    [D_RESET_AFTER] = "reset_after",
    [D_SLOW_HEADERS_MS] = "slow_headers_ms",
    [D_MALFORMED] = "malformed",
    [D_HANG] = "hang",
    [D_CLOSE] = "close",
    [D_USAGE_PROMPT] = "usage_prompt",
    [D_USAGE_COMPLETION] = "usage_completion",
    [D_STREAM_ERROR] = "stream_error",
    [D_TOOL] = "tool",
    [D_STOP_REASON] = "stop_reason",
    [D_CACHE_READ] = "cache_read",
    [D_CACHE_CREATION] = "cache_creation",
};

static void directives_init(struct lx_mock_directives *d, const struct lx_mock_config *cfg)
{
    memset(d, 0, sizeof(*d));
    d->latency_ms = cfg->latency_ms;
    d->chunks = cfg->chunks;
    d->interval_ms = cfg->interval_ms;
    d->content = cfg->content;
    d->retry_after = -1;
    d->reset_after = -1;
    d->usage_prompt = -1;
    d->usage_completion = -1;
    d->cache_read = -1;
    d->cache_creation = -1;
}

/* Keys compare case-insensitively, with '-' and '_' alike (x-mock-latency-ms works too). */
static int find_dkey(struct lx_str key)
{
    for (size_t k = 0; k < LX_ARRAY_LEN(dkey_names); k++) {
        const char *name = dkey_names[k];
        size_t i = 0;
        for (; i < key.n && name[i]; i++) {
            char a = key.p[i];
            a = (a >= 'A' && a <= 'Z') ? (char)(a + 32) : a;
            a = a == '-' ? '_' : a;
            if (a != name[i]) {
                break;
            }
        }
        if (i == key.n && !name[i]) {
            return (int)k;
        }
    }
    return -1;
}

static int parse_bool(struct lx_str v, bool *out)
{
    if (lx_str_eq_c(v, "1") || lx_str_case_eq(v, LX_STR("true")) ||
        lx_str_case_eq(v, LX_STR("yes")) || lx_str_case_eq(v, LX_STR("on"))) {
        *out = true;
        return 0;
    }
    if (lx_str_eq_c(v, "0") || lx_str_case_eq(v, LX_STR("false")) ||
        lx_str_case_eq(v, LX_STR("no")) || lx_str_case_eq(v, LX_STR("off"))) {
        *out = false;
        return 0;
    }
    return -1;
}

static int parse_u32(struct lx_str v, uint32_t max, uint32_t *out)
{
    unsigned long long x;
    if (lx_str_to_u64(v, max, &x) != 0) {
        return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

static int parse_i64(struct lx_str v, unsigned long long max, int64_t *out)
{
    unsigned long long x;
    if (lx_str_to_u64(v, max, &x) != 0) {
        return -1;
    }
    *out = (int64_t)x;
    return 0;
}

/* Apply one directive; value is borrowed for the request's lifetime. */
static int apply_directive(struct lx_mock_directives *d, struct lx_str key, struct lx_str v,
                           struct lx_error *err)
{
    int k = find_dkey(key);
    if (k < 0) {
        return lx_error_set(err, LX_EINVAL, "unknown mock directive '%.*s'", (int)LX_MIN(key.n, 64),
                            key.p);
    }
    int rc = 0;
    uint32_t status = 0;
    switch ((enum dkey)k) {
    case D_LATENCY_MS:
        rc = parse_u32(v, LX_MOCK_MAX_DELAY_MS, &d->latency_ms);
        break;
    case D_CHUNKS:
        rc = parse_u32(v, LX_MOCK_MAX_CHUNKS, &d->chunks);
        break;
    case D_INTERVAL_MS:
        rc = parse_u32(v, LX_MOCK_MAX_DELAY_MS, &d->interval_ms);
        break;
    case D_SLOW_HEADERS_MS:
        rc = parse_u32(v, LX_MOCK_MAX_DELAY_MS, &d->slow_headers_ms);
        break;
    case D_CONTENT:
        d->content = v;
        break;
    case D_ERROR_MESSAGE:
        d->error_message = v;
        break;
    case D_ECHO:
        rc = parse_bool(v, &d->echo);
        break;
    case D_MALFORMED:
        rc = parse_bool(v, &d->malformed);
        break;
    case D_HANG:
        rc = parse_bool(v, &d->hang);
        break;
    case D_CLOSE:
        rc = parse_bool(v, &d->close);
        break;
    case D_STREAM_ERROR:
        rc = parse_bool(v, &d->stream_error);
        break;
    case D_STATUS:
        rc = parse_u32(v, 599, &status);
        if (rc == 0 && status != 200 && status < 400) {
            rc = -1;
        }
        d->status = status == 200 ? 0 : status;
        break;
    case D_RETRY_AFTER:
        rc = parse_i64(v, 1000000000ull, &d->retry_after);
        break;
    case D_RESET_AFTER:
        rc = parse_i64(v, LX_MOCK_MAX_CHUNKS, &d->reset_after);
        break;
    case D_USAGE_PROMPT:
        rc = parse_i64(v, 1000000000000ull, &d->usage_prompt);
        break;
    case D_USAGE_COMPLETION:
        rc = parse_i64(v, 1000000000000ull, &d->usage_completion);
        break;
    case D_TOOL:
        d->tool = v;
        rc = v.n ? 0 : -1;
        break;
    case D_STOP_REASON:
        d->stop_reason = v;
        rc = v.n ? 0 : -1;
        break;
    case D_CACHE_READ:
        rc = parse_i64(v, 1000000000000ull, &d->cache_read);
        break;
    case D_CACHE_CREATION:
        rc = parse_i64(v, 1000000000000ull, &d->cache_creation);
        break;
    }
    if (rc) {
        return lx_error_set(err, LX_EINVAL, "invalid value for mock directive '%s'", dkey_names[k]);
    }
    return 0;
}

/* RFC 3986 percent-decoding into the arena ('+' stays '+': this is a path). */
static int url_decode(struct lx_str in, struct lx_str *out)
{
    char *d = lx_arena_try_alloc(&tls_arena, in.n + 1);
    if (!d) {
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < in.n; i++) {
        if (in.p[i] != '%') {
            d[n++] = in.p[i];
            continue;
        }
        if (i + 2 >= in.n) {
            return -1;
        }
        int hi = lx_hex_digit(in.p[i + 1]);
        int lo = lx_hex_digit(in.p[i + 2]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        d[n++] = (char)(hi << 4 | lo);
        i += 2;
    }
    d[n] = '\0';
    *out = (struct lx_str){d, n};
    return 0;
}

/* "k=v,k=v" from /mock/<seg>/; a bare key means "1". */
static int parse_path_directives(struct lx_str seg, struct lx_mock_directives *d,
                                 struct lx_error *err)
{
    while (seg.n) {
        const char *comma = memchr(seg.p, ',', seg.n);
        struct lx_str item = {seg.p, comma ? (size_t)(comma - seg.p) : seg.n};
        seg = comma ? lx_str_sub(seg, item.n + 1) : lx_str_sub(seg, seg.n);
        if (!item.n) {
            continue;
        }
        const char *eq = memchr(item.p, '=', item.n);
        struct lx_str key = {item.p, eq ? (size_t)(eq - item.p) : item.n};
        struct lx_str raw = eq ? lx_str_sub(item, key.n + 1) : LX_STR("1");
        struct lx_str key_dec;
        struct lx_str val;
        if (url_decode(key, &key_dec) != 0 || url_decode(raw, &val) != 0) {
            return lx_error_set(err, LX_EINVAL, "bad percent-encoding in mock directives");
        }
        int rc = apply_directive(d, key_dec, val, err);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int parse_header_directives(const struct lx_mock_req *req, struct lx_mock_directives *d,
                                   struct lx_error *err)
{
    for (size_t i = 0; i < req->nhdrs; i++) {
        struct lx_str name = lx_mock_hdr_name(req, i);
        if (name.n < 7 || strncasecmp(name.p, "x-mock-", 7) != 0) {
            continue;
        }
        int rc =
            apply_directive(d, lx_str_sub(name, 7), lx_str_trim(lx_mock_hdr_value(req, i)), err);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* ---- plain answers ---- */

static void put_head(struct lx_mock_w *w, int status, const char *ctype,
                     const struct lx_mock_reply_opts *o)
{
    LX_MOCK_W_LIT(w, "HTTP/1.1 ");
    lx_mock__w_u64(w, (uint64_t)status);
    LX_MOCK_W_LIT(w, " ");
    const char *reason = reason_phrase(status);
    lx_mock__w_raw(w, reason, strlen(reason));
    LX_MOCK_W_LIT(w, "\r\nContent-Type: ");
    lx_mock__w_raw(w, ctype, strlen(ctype));
    if (o->retry_after >= 0) {
        LX_MOCK_W_LIT(w, "\r\nRetry-After: ");
        lx_mock__w_u64(w, (uint64_t)o->retry_after);
    }
    if (o->is_close) {
        LX_MOCK_W_LIT(w, "\r\nConnection: close");
    }
}

/* Send tls_body (already formatted) with a head. */
void lx_mock__reply(struct lx_mock_conn *c, int status, const char *ctype,
                    const struct lx_mock_reply_opts *o)
{
    struct lx_mock_w w = {.b = &tls_head};
    lx_buf_reset(&tls_head);
    put_head(&w, status, ctype, o);
    LX_MOCK_W_LIT(&w, "\r\nContent-Length: ");
    lx_mock__w_u64(&w, tls_body.len);
    LX_MOCK_W_LIT(&w, "\r\n\r\n");
    if (w.err) {
        return; /* the head is ours and small: cannot happen */
    }
    struct lx_mock_send_opts so = {
        .latency_ms = o->latency_ms,
        .slow_headers_ms = o->slow_headers_ms,
        .is_close = o->is_close,
    };
    lx_mock__conn_send(c, lx_buf_str(&tls_head), lx_buf_str(&tls_body), &so);
    scratch_reset(&tls_body);
}

void lx_mock__put_stream_head(struct lx_mock_w *w, bool is_chunked, bool is_close)
{
    struct lx_mock_reply_opts o = {.retry_after = -1, .is_close = is_close};
    put_head(w, 200, "text/event-stream; charset=utf-8", &o);
    LX_MOCK_W_LIT(w, "\r\nCache-Control: no-cache");
    if (is_chunked) {
        LX_MOCK_W_LIT(w, "\r\nTransfer-Encoding: chunked");
    }
    LX_MOCK_W_LIT(w, "\r\n\r\n");
}

/* Per OpenAI's error reference: 429 is type "requests"; 401 carries code "invalid_api_key". */
static void error_kind(int status, const char **type, const char **code)
{
    *code = NULL;
    if (status == 429) {
        *type = "requests";
        *code = "rate_limit_exceeded";
    } else if (status == 401) {
        *type = "invalid_request_error";
        *code = "invalid_api_key";
    } else if (status >= 500) {
        *type = "server_error";
    } else {
        *type = "invalid_request_error";
    }
}

static void reply_error(struct lx_mock_conn *c, int status, struct lx_str msg, const char *param,
                        const struct lx_mock_reply_opts *o)
{
    const char *type;
    const char *code;
    error_kind(status, &type, &code);
    lx_buf_reset(&tls_body);
    struct lx_mock_w w = {.b = &tls_body};
    LX_MOCK_W_LIT(&w, "{\"error\":{\"message\":");
    lx_mock__w_str(&w, msg);
    LX_MOCK_W_LIT(&w, ",\"type\":");
    lx_mock__w_str(&w, lx_str_c(type));
    LX_MOCK_W_LIT(&w, ",\"param\":");
    if (param) {
        lx_mock__w_str(&w, lx_str_c(param));
    } else {
        LX_MOCK_W_LIT(&w, "null");
    }
    LX_MOCK_W_LIT(&w, ",\"code\":");
    if (code) {
        lx_mock__w_str(&w, lx_str_c(code));
    } else {
        LX_MOCK_W_LIT(&w, "null");
    }
    LX_MOCK_W_LIT(&w, "}}\n");
    lx_mock__reply(c, status, "application/json", o);
}

void lx_mock__send_error(struct lx_mock_conn *c, int status, const char *msg, bool is_close)
{
    tls_init();
    struct lx_mock_reply_opts o = {.retry_after = -1, .is_close = is_close};
    reply_error(c, status, lx_str_c(msg), NULL, &o);
}

static void reply_json(struct lx_mock_conn *c, int status, struct lx_str json,
                       const struct lx_mock_reply_opts *o)
{
    lx_buf_reset(&tls_body);
    if (lx_buf_append_str(&tls_body, json) != 0) {
        return;
    }
    lx_mock__reply(c, status, "application/json", o);
}

/* ---- streams ---- */

enum stream_phase {
    P_STATUS, /* status line not sent */
    P_HEAD,   /* rest of the head not sent (slow_headers_ms) */
    P_ROLE,   /* chat: the assistant role chunk */
    P_CONTENT,
    P_FINISH,
};

struct stream {
    struct lx_mock_resp base;
    struct lx_mock_shared *shared;
    enum stream_phase phase;
    bool is_chat;
    bool is_chunked;
    bool include_usage;
    bool malformed;
    bool stream_error;
    bool sent_first; /* an event went out: malformed injects after the first one */
    int64_t reset_after;
    uint32_t slow_ms;
    uint32_t interval_ms;
    struct lx_mock_pieces pieces;
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    int64_t cached_tokens; /* -1: no prompt_tokens_details */
    struct lx_str head;    /* status line and headers */
    size_t status_len;     /* of head */
    struct lx_str prefix;  /* chunk JSON up to and including "choices":[ */
    struct lx_str error_message;
    char data[];
};

static void stream_free(struct lx_mock_resp *r)
{
    struct stream *s = LX_CONTAINER_OF(r, struct stream, base);
    atomic_fetch_sub_explicit(&s->shared->active_streams, 1, memory_order_relaxed);
    lx_free(s);
}

int lx_mock__put_chunk(struct lx_buf *out, struct lx_str data, bool is_chunked)
{
    struct lx_mock_w w = {.b = out};
    if (is_chunked) {
        char hex[20];
        size_t i = sizeof(hex);
        size_t n = data.n;
        do {
            hex[--i] = "0123456789abcdef"[n & 15];
            n >>= 4;
        } while (n);
        lx_mock__w_raw(&w, hex + i, sizeof(hex) - i);
        LX_MOCK_W_LIT(&w, "\r\n");
    }
    lx_mock__w_raw(&w, data.p, data.n);
    if (is_chunked) {
        LX_MOCK_W_LIT(&w, "\r\n");
    }
    return w.err;
}

/* Frame tls_event as one SSE event ("data: ...\n\n") in one HTTP chunk. */
static int put_event(const struct stream *s, struct lx_buf *out)
{
    int rc = lx_mock__put_chunk(out, lx_buf_str(&tls_event), s->is_chunked);
    lx_buf_reset(&tls_event);
    return rc;
}

/* Start an event in tls_event: "data: " + prefix. */
static void put_usage(struct lx_mock_w *w, uint64_t prompt, uint64_t completion, int64_t cached);

static struct lx_mock_w event_begin(const struct stream *s)
{
    lx_buf_reset(&tls_event);
    struct lx_mock_w w = {.b = &tls_event};
    LX_MOCK_W_LIT(&w, "data: ");
    lx_mock__w_raw(&w, s->prefix.p, s->prefix.n);
    return w;
}

static int event_raw(const struct stream *s, struct lx_buf *out, struct lx_str data)
{
    lx_buf_reset(&tls_event);
    if (lx_buf_append_str(&tls_event, data) != 0) {
        return LX_ENOMEM;
    }
    return put_event(s, out);
}

static int event_end(const struct stream *s, struct lx_mock_w *w, struct lx_buf *out)
{
    LX_MOCK_W_LIT(w, "\n\n");
    return w->err ? w->err : put_event(s, out);
}

static int event_role(const struct stream *s, struct lx_buf *out)
{
    struct lx_mock_w w = event_begin(s);
    LX_MOCK_W_LIT(&w, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
                      "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]}");
    return event_end(s, &w, out);
}

static int event_piece(const struct stream *s, struct lx_buf *out, struct lx_str piece)
{
    struct lx_mock_w w = event_begin(s);
    if (s->is_chat) {
        LX_MOCK_W_LIT(&w, "{\"index\":0,\"delta\":{\"content\":");
        lx_mock__w_str(&w, piece);
        LX_MOCK_W_LIT(&w, "},\"logprobs\":null,\"finish_reason\":null}]}");
    } else {
        LX_MOCK_W_LIT(&w, "{\"text\":");
        lx_mock__w_str(&w, piece);
        LX_MOCK_W_LIT(&w, ",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}");
    }
    return event_end(s, &w, out);
}

static int event_error(const struct stream *s, struct lx_buf *out)
{
    lx_buf_reset(&tls_event);
    struct lx_mock_w w = {.b = &tls_event};
    LX_MOCK_W_LIT(&w, "data: {\"error\":{\"message\":");
    lx_mock__w_str(&w, s->error_message.p ? s->error_message : LX_STR("mock stream error"));
    LX_MOCK_W_LIT(&w, ",\"type\":\"server_error\",\"param\":null,\"code\":\"500\"}}");
    return event_end(s, &w, out);
}

/* The finish chunk, the usage chunk if asked for, [DONE] and the last HTTP chunk. */
static int event_finish(const struct stream *s, struct lx_buf *out)
{
    struct lx_mock_w w = event_begin(s);
    if (s->is_chat) {
        LX_MOCK_W_LIT(&w,
                      "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}");
    } else {
        LX_MOCK_W_LIT(&w,
                      "{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}]}");
    }
    int rc = event_end(s, &w, out);
    if (rc == 0 && s->include_usage) {
        /* stream_options.include_usage: one more chunk with empty choices. */
        w = event_begin(s);
        LX_MOCK_W_LIT(&w, "],");
        put_usage(&w, s->prompt_tokens, s->completion_tokens, s->cached_tokens);
        LX_MOCK_W_LIT(&w, "}");
        rc = event_end(s, &w, out);
    }
    if (rc == 0) {
        rc = event_raw(s, out, LX_STR("data: [DONE]\n\n"));
    }
    return rc;
}

static int end_body(const struct stream *s, struct lx_buf *out)
{
    return s->is_chunked ? lx_buf_append_c(out, "0\r\n\r\n") : 0;
}

void lx_mock__pieces_init(struct lx_mock_pieces *p, struct lx_str content, uint32_t chunks)
{
    memset(p, 0, sizeof(*p));
    p->content = content;
    if (chunks) {
        p->n = chunks;
        return;
    }
    p->is_words = true;
    uint64_t words = lx_mock__count_words(content);
    p->n = (uint32_t)LX_MIN(words, (uint64_t)UINT32_MAX);
    if (p->n == 0 && content.n) {
        p->n = 1; /* whitespace only: one piece */
    }
}

struct lx_str lx_mock__pieces_next(struct lx_mock_pieces *pc)
{
    const char *p = pc->content.p;
    size_t n = pc->content.n;
    size_t start = pc->pos;
    size_t end;
    if (pc->sent + 1 >= pc->n) {
        end = n; /* the last piece takes the rest, trailing whitespace included */
    } else if (pc->is_words) {
        end = start;
        while (end < n && is_space(p[end])) {
            end++;
        }
        while (end < n && !is_space(p[end])) {
            end++;
        }
    } else {
        end = (size_t)((uint64_t)n * (pc->sent + 1) / pc->n);
        while (end < n && ((unsigned char)p[end] & 0xc0) == 0x80) {
            end++; /* never split a UTF-8 sequence */
        }
        if (end < start) {
            end = start;
        }
    }
    pc->pos = end;
    pc->sent++;
    return (struct lx_str){p + start, end - start};
}

static int after_first_event(struct stream *s, struct lx_buf *out)
{
    if (s->sent_first) {
        return 0;
    }
    s->sent_first = true;
    return s->malformed ? event_raw(s, out, LX_STR("data: {not json\n\n")) : 0;
}

static enum lx_mock_step stream_step(struct lx_mock_resp *r, struct lx_buf *out,
                                     uint32_t *out_delay_ms)
{
    struct stream *s = LX_CONTAINER_OF(r, struct stream, base);
    tls_init();
    int rc = 0;
    switch (s->phase) {
    case P_STATUS:
        if (s->slow_ms) {
            if (lx_buf_append(out, s->head.p, s->status_len) != 0) {
                return LX_MOCK_STEP_RESET;
            }
            s->phase = P_HEAD;
            *out_delay_ms = s->slow_ms;
            return LX_MOCK_STEP_AGAIN;
        }
        s->phase = P_HEAD;
        s->status_len = 0;
        /* fall through */
    case P_HEAD:
        rc = lx_buf_append(out, s->head.p + s->status_len, s->head.n - s->status_len);
        s->phase = s->is_chat ? P_ROLE : P_CONTENT;
        if (rc) {
            return LX_MOCK_STEP_RESET;
        }
        if (!s->is_chat && s->reset_after == 0) {
            return LX_MOCK_STEP_RESET;
        }
        /* The first event goes out together with the head. */
        return stream_step(r, out, out_delay_ms);
    case P_ROLE:
        rc = event_role(s, out);
        if (rc == 0) {
            rc = after_first_event(s, out);
        }
        s->phase = P_CONTENT;
        if (rc || s->reset_after == 0) {
            return LX_MOCK_STEP_RESET;
        }
        *out_delay_ms = s->interval_ms;
        return LX_MOCK_STEP_AGAIN;
    case P_CONTENT:
        if (s->pieces.sent < s->pieces.n) {
            rc = event_piece(s, out, lx_mock__pieces_next(&s->pieces));
            if (rc == 0) {
                rc = after_first_event(s, out);
            }
            if (rc) {
                return LX_MOCK_STEP_RESET;
            }
            if (s->stream_error && s->pieces.sent == 1) {
                if (event_error(s, out) || end_body(s, out)) {
                    return LX_MOCK_STEP_RESET;
                }
                return LX_MOCK_STEP_DONE;
            }
            if (s->reset_after >= 0 && (uint64_t)s->reset_after <= s->pieces.sent) {
                return LX_MOCK_STEP_RESET;
            }
            *out_delay_ms = s->interval_ms;
            return LX_MOCK_STEP_AGAIN;
        }
        if (s->stream_error) {
            /* No content to follow: the error replaces the finish chunk. */
            if (event_error(s, out) || end_body(s, out)) {
                return LX_MOCK_STEP_RESET;
            }
            return LX_MOCK_STEP_DONE;
        }
        if (s->reset_after >= 0) {
            return LX_MOCK_STEP_RESET; /* fewer pieces than reset_after: never finish */
        }
        s->phase = P_FINISH;
        /* fall through */
    case P_FINISH:
        rc = event_finish(s, out);
        if (rc == 0) {
            rc = after_first_event(s, out);
        }
        if (rc || end_body(s, out)) {
            return LX_MOCK_STEP_RESET;
        }
        return LX_MOCK_STEP_DONE;
    }
    return LX_MOCK_STEP_RESET;
}

struct answer {
    int api; /* route group */
    struct lx_str model;
    struct lx_str content;
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    bool is_stream;
    bool include_usage;
};

static int start_stream(struct lx_mock_conn *c, const struct lx_mock_req *req,
                        const struct lx_mock_directives *d, const struct answer *a, bool is_chat,
                        bool is_close)
{
    struct lx_mock_shared *shared = lx_mock__conn_worker(c)->shared;
    char idbuf[48];
    struct lx_str id = lx_mock__make_id(idbuf, sizeof(idbuf), is_chat ? "chatcmpl-" : "cmpl-");

    /* The head. HTTP/1.0 has no chunked coding: the body ends when we close. */
    bool is_chunked = req->is_http11;
    if (!is_chunked) {
        is_close = true;
    }
    struct lx_mock_w w = {.b = &tls_head};
    lx_buf_reset(&tls_head);
    lx_mock__put_stream_head(&w, is_chunked, is_close);

    /* The prefix every chunk shares. */
    lx_buf_reset(&tls_body);
    struct lx_mock_w p = {.b = &tls_body};
    LX_MOCK_W_LIT(&p, "{\"id\":");
    lx_mock__w_str(&p, id);
    if (is_chat) {
        LX_MOCK_W_LIT(&p, ",\"object\":\"chat.completion.chunk\",\"created\":");
    } else {
        LX_MOCK_W_LIT(&p, ",\"object\":\"text_completion\",\"created\":");
    }
    lx_mock__w_u64(&p, (uint64_t)lx_wall_s());
    LX_MOCK_W_LIT(&p, ",\"model\":");
    lx_mock__w_str(&p, a->model);
    LX_MOCK_W_LIT(&p, ",\"choices\":[");
    if (w.err || p.err) {
        return LX_ENOMEM;
    }

    size_t extra = tls_head.len + tls_body.len + a->content.n + d->error_message.n;
    struct stream *s = lx_try_malloc(sizeof(*s) + extra);
    if (!s) {
        return LX_ENOMEM;
    }
    memset(s, 0, sizeof(*s));
    char *q = s->data;
    memcpy(q, tls_head.data, tls_head.len);
    s->head = (struct lx_str){q, tls_head.len};
    q += tls_head.len;
    memcpy(q, tls_body.data, tls_body.len);
    s->prefix = (struct lx_str){q, tls_body.len};
    q += tls_body.len;
    if (a->content.n) {
        memcpy(q, a->content.p, a->content.n);
    }
    lx_mock__pieces_init(&s->pieces, (struct lx_str){q, a->content.n}, d->chunks);
    q += a->content.n;
    if (d->error_message.p) {
        if (d->error_message.n) {
            memcpy(q, d->error_message.p, d->error_message.n);
        }
        s->error_message = (struct lx_str){q, d->error_message.n};
    }
    scratch_reset(&tls_body);

    const char *eol = memchr(s->head.p, '\n', s->head.n);
    s->status_len = eol ? (size_t)(eol - s->head.p) + 1 : s->head.n;
    s->shared = shared;
    s->phase = P_STATUS;
    s->is_chat = is_chat;
    s->is_chunked = is_chunked;
    s->include_usage = a->include_usage;
    s->malformed = d->malformed;
    s->stream_error = d->stream_error;
    s->reset_after = d->reset_after;
    s->slow_ms = d->slow_headers_ms;
    s->interval_ms = d->interval_ms;
    s->prompt_tokens = a->prompt_tokens;
    s->completion_tokens = a->completion_tokens;
    s->cached_tokens = d->cache_read;
    s->base.step = stream_step;
    s->base.free_fn = stream_free;
    s->base.first_delay_ms = d->latency_ms;
    s->base.is_close = is_close;
    atomic_fetch_add_explicit(&shared->active_streams, 1, memory_order_relaxed);
    lx_mock__conn_queue(c, &s->base);
    return 0;
}

/* ---- request bodies ---- */

static cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static struct lx_str jstr(const cJSON *j)
{
    return (struct lx_str){j->valuestring, strlen(j->valuestring)};
}

uint64_t lx_mock__content_bytes(const cJSON *content)
{
    if (cJSON_IsString(content)) {
        return strlen(content->valuestring);
    }
    uint64_t n = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *text = get(part, "text");
        if (cJSON_IsString(text)) {
            n += strlen(text->valuestring);
        }
    }
    return n;
}

struct lx_str lx_mock__content_text(const cJSON *content)
{
    if (cJSON_IsString(content)) {
        return jstr(content);
    }
    if (!cJSON_IsArray(content)) {
        return LX_STR("");
    }
    size_t n = (size_t)lx_mock__content_bytes(content);
    char *d = lx_arena_try_alloc(&tls_arena, n + 1);
    if (!d) {
        return LX_STR("");
    }
    size_t off = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *text = get(part, "text");
        if (cJSON_IsString(text)) {
            size_t len = strlen(text->valuestring);
            memcpy(d + off, text->valuestring, len);
            off += len;
        }
    }
    d[off] = '\0';
    return (struct lx_str){d, off};
}

static bool is_int_number(const cJSON *j)
{
    return cJSON_IsNumber(j) && j->valuedouble == floor(j->valuedouble) &&
           fabs(j->valuedouble) < 9007199254740992.0;
}

static bool is_token_array(const cJSON *j)
{
    if (!cJSON_IsArray(j)) {
        return false;
    }
    const cJSON *t;
    cJSON_ArrayForEach(t, j)
    {
        if (!is_int_number(t)) {
            return false;
        }
    }
    return true;
}

/*
 * A completions prompt or an embeddings input: a string, a list of strings,
 * a list of tokens, or a list of token lists. Counts items and tokens
 * (strings: ceil(bytes / 4)); the last string is kept for echo. -1 if the
 * shape is wrong.
 */
struct text_input {
    size_t items;
    uint64_t string_bytes;
    uint64_t tokens;
    struct lx_str last_string;
};

static int scan_input(const cJSON *in, struct text_input *out)
{
    memset(out, 0, sizeof(*out));
    out->last_string = LX_STR("");
    if (cJSON_IsString(in)) {
        out->items = 1;
        out->string_bytes = strlen(in->valuestring);
        out->last_string = jstr(in);
        return 0;
    }
    if (!cJSON_IsArray(in) || cJSON_GetArraySize(in) == 0) {
        return -1;
    }
    if (is_token_array(in)) {
        out->items = 1;
        out->tokens = (uint64_t)cJSON_GetArraySize(in);
        return 0;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, in)
    {
        if (cJSON_IsString(item)) {
            out->string_bytes += strlen(item->valuestring);
            out->last_string = jstr(item);
        } else if (is_token_array(item)) {
            out->tokens += (uint64_t)cJSON_GetArraySize(item);
        } else {
            return -1;
        }
        out->items++;
    }
    return 0;
}

static uint64_t input_tokens(const struct text_input *ti)
{
    uint64_t t = (ti->string_bytes + 3) / 4 + ti->tokens;
    return t ? t : 1;
}

/* ---- endpoints ---- */

static void reply_invalid(struct lx_mock_conn *c, const char *msg, const char *param,
                          const struct lx_mock_reply_opts *o)
{
    reply_error(c, 400, lx_str_c(msg), param, o);
}

/* OpenAI's usage object; cached >= 0 adds prompt_tokens_details.cached_tokens (the cache_read
 * directive). */
static void put_usage(struct lx_mock_w *w, uint64_t prompt, uint64_t completion, int64_t cached)
{
    LX_MOCK_W_LIT(w, "\"usage\":{\"prompt_tokens\":");
    lx_mock__w_u64(w, prompt);
    LX_MOCK_W_LIT(w, ",\"completion_tokens\":");
    lx_mock__w_u64(w, completion);
    LX_MOCK_W_LIT(w, ",\"total_tokens\":");
    lx_mock__w_u64(w, prompt + completion);
    if (cached >= 0) {
        LX_MOCK_W_LIT(w, ",\"prompt_tokens_details\":{\"cached_tokens\":");
        lx_mock__w_u64(w, (uint64_t)cached);
        LX_MOCK_W_LIT(w, "}");
    }
    LX_MOCK_W_LIT(w, "}");
}

static void answer_text(struct lx_mock_conn *c, const struct lx_mock_req *req,
                        const struct lx_mock_directives *d, struct answer *a, bool is_chat,
                        const struct lx_mock_reply_opts *o)
{
    if (d->usage_prompt >= 0) {
        a->prompt_tokens = (uint64_t)d->usage_prompt;
    }
    a->completion_tokens =
        d->usage_completion >= 0 ? (uint64_t)d->usage_completion : lx_mock__count_words(a->content);
    if (a->is_stream) {
        if (start_stream(c, req, d, a, is_chat, o->is_close) != 0) {
            reply_error(c, 500, LX_STR("mock out of memory"), NULL, o);
        }
        return;
    }
    if (d->reset_after >= 0) {
        lx_mock__conn_reset(c);
        return;
    }
    if (d->malformed) {
        reply_json(c, 200, LX_STR("{\"id\": \"chatcmpl-broken\", \"choices\": ["), o);
        return;
    }
    char idbuf[48];
    lx_buf_reset(&tls_body);
    struct lx_mock_w w = {.b = &tls_body};
    LX_MOCK_W_LIT(&w, "{\"id\":");
    lx_mock__w_str(&w, lx_mock__make_id(idbuf, sizeof(idbuf), is_chat ? "chatcmpl-" : "cmpl-"));
    if (is_chat) {
        LX_MOCK_W_LIT(&w, ",\"object\":\"chat.completion\",\"created\":");
    } else {
        LX_MOCK_W_LIT(&w, ",\"object\":\"text_completion\",\"created\":");
    }
    lx_mock__w_u64(&w, (uint64_t)lx_wall_s());
    LX_MOCK_W_LIT(&w, ",\"model\":");
    lx_mock__w_str(&w, a->model);
    if (is_chat) {
        LX_MOCK_W_LIT(&w, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                          "\"content\":");
        lx_mock__w_str(&w, a->content);
        LX_MOCK_W_LIT(&w, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],");
    } else {
        LX_MOCK_W_LIT(&w, ",\"choices\":[{\"text\":");
        lx_mock__w_str(&w, a->content);
        LX_MOCK_W_LIT(&w, ",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}],");
    }
    put_usage(&w, a->prompt_tokens, a->completion_tokens, d->cache_read);
    LX_MOCK_W_LIT(&w, "}\n");
    if (w.err) {
        reply_error(c, 500, LX_STR("answer too large"), NULL, o);
        return;
    }
    lx_mock__reply(c, 200, "application/json", o);
}

static void do_chat(struct lx_mock_conn *c, const struct lx_mock_req *req,
                    const struct lx_mock_directives *d, const cJSON *body, struct answer *a,
                    const struct lx_mock_reply_opts *o)
{
    const cJSON *messages = get(body, "messages");
    if (!cJSON_IsArray(messages)) {
        reply_invalid(c, "Missing required parameter: 'messages'.", "messages", o);
        return;
    }
    uint64_t bytes = 0;
    const cJSON *last_user = NULL;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        if (!cJSON_IsObject(m)) {
            reply_invalid(c, "Invalid type for 'messages': expected an array of objects.",
                          "messages", o);
            return;
        }
        const cJSON *content = get(m, "content");
        bytes += lx_mock__content_bytes(content);
        const cJSON *role = get(m, "role");
        if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0) {
            last_user = content;
        }
    }
    a->prompt_tokens = lx_mock__tokens_for_bytes(bytes);
    a->content = d->echo ? lx_mock__content_text(last_user) : d->content;
    answer_text(c, req, d, a, true, o);
}

static void do_completions(struct lx_mock_conn *c, const struct lx_mock_req *req,
                           const struct lx_mock_directives *d, const cJSON *body, struct answer *a,
                           const struct lx_mock_reply_opts *o)
{
    const cJSON *prompt = get(body, "prompt");
    struct text_input ti = {.last_string = LX_STR("")};
    if (prompt && !cJSON_IsNull(prompt) && scan_input(prompt, &ti) != 0) {
        reply_invalid(c,
                      "Invalid type for 'prompt': expected a string, an array of strings "
                      "or an array of token arrays.",
                      "prompt", o);
        return;
    }
    a->prompt_tokens = input_tokens(&ti);
    a->content = d->echo ? ti.last_string : d->content;
    answer_text(c, req, d, a, false, o);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 0x100000001b3ull;
    }
    return h;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A unit vector determined by the input's bytes (or tokens) only. */
static void embed(const cJSON *item, float *v, size_t dims)
{
    uint64_t h = 0xcbf29ce484222325ull;
    if (cJSON_IsString(item)) {
        h = fnv1a(h, item->valuestring, strlen(item->valuestring));
    } else {
        const cJSON *t;
        cJSON_ArrayForEach(t, item)
        {
            int64_t tok = (int64_t)t->valuedouble;
            h = fnv1a(h, &tok, sizeof(tok));
        }
    }
    double norm = 0;
    for (size_t i = 0; i < dims; i++) {
        double x = (double)(splitmix64(&h) >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
        v[i] = (float)x;
        norm += x * x;
    }
    norm = sqrt(norm);
    for (size_t i = 0; i < dims && norm > 0; i++) {
        v[i] = (float)(v[i] / norm);
    }
}

static void do_embeddings(struct lx_mock_conn *c, const struct lx_mock_directives *d,
                          const cJSON *body, struct answer *a, const struct lx_mock_reply_opts *o)
{
    const cJSON *input = get(body, "input");
    struct text_input ti;
    if (!input) {
        reply_invalid(c, "Missing required parameter: 'input'.", "input", o);
        return;
    }
    if (scan_input(input, &ti) != 0) {
        reply_invalid(c,
                      "Invalid type for 'input': expected a string, an array of strings or "
                      "an array of token arrays.",
                      "input", o);
        return;
    }
    if (ti.items > MAX_EMBED_INPUTS) {
        reply_invalid(c, "'input' has too many items (at most 2048).", "input", o);
        return;
    }
    size_t dims = DEFAULT_EMBED_DIMS;
    const cJSON *dj = get(body, "dimensions");
    if (dj && !cJSON_IsNull(dj)) {
        if (!is_int_number(dj) || dj->valuedouble < 1 || dj->valuedouble > MAX_EMBED_DIMS) {
            reply_invalid(c, "'dimensions' must be an integer between 1 and 8192.", "dimensions",
                          o);
            return;
        }
        dims = (size_t)dj->valuedouble;
    }
    if (dims * ti.items > MAX_EMBED_FLOATS) {
        reply_invalid(c, "too many embedding values requested", "dimensions", o);
        return;
    }
    bool is_base64 = false;
    const cJSON *ef = get(body, "encoding_format");
    if (ef && !cJSON_IsNull(ef)) {
        if (cJSON_IsString(ef) && strcmp(ef->valuestring, "base64") == 0) {
            is_base64 = true;
        } else if (!cJSON_IsString(ef) || strcmp(ef->valuestring, "float") != 0) {
            reply_invalid(c, "'encoding_format' must be 'float' or 'base64'.", "encoding_format",
                          o);
            return;
        }
    }
    if (d->reset_after >= 0) {
        lx_mock__conn_reset(c);
        return;
    }
    if (d->malformed) {
        reply_json(c, 200, LX_STR("{\"object\": \"list\", \"data\": ["), o);
        return;
    }
    float *v = lx_arena_try_alloc(&tls_arena, dims * sizeof(float));
    if (!v) {
        reply_error(c, 500, LX_STR("mock out of memory"), NULL, o);
        return;
    }
    uint64_t prompt = d->usage_prompt >= 0 ? (uint64_t)d->usage_prompt : input_tokens(&ti);
    lx_buf_reset(&tls_body);
    struct lx_mock_w w = {.b = &tls_body};
    LX_MOCK_W_LIT(&w, "{\"object\":\"list\",\"data\":[");
    /* A bare token list is one input; otherwise each array element is. */
    bool single = cJSON_IsString(input) || is_token_array(input);
    const cJSON *item = single ? input : input->child;
    for (size_t i = 0; item; i++) {
        embed(item, v, dims);
        if (i) {
            LX_MOCK_W_LIT(&w, ",");
        }
        LX_MOCK_W_LIT(&w, "{\"object\":\"embedding\",\"index\":");
        lx_mock__w_u64(&w, i);
        LX_MOCK_W_LIT(&w, ",\"embedding\":");
        if (is_base64) {
            /* Little-endian float32, as OpenAI encodes it. */
            LX_MOCK_W_LIT(&w, "\"");
            lx_mock__w_base64(&w, (const unsigned char *)v, dims * sizeof(float));
            LX_MOCK_W_LIT(&w, "\"");
        } else {
            LX_MOCK_W_LIT(&w, "[");
            for (size_t k = 0; k < dims; k++) {
                if (k) {
                    LX_MOCK_W_LIT(&w, ",");
                }
                lx_mock__w_float(&w, v[k]);
            }
            LX_MOCK_W_LIT(&w, "]");
        }
        LX_MOCK_W_LIT(&w, "}");
        item = single ? NULL : item->next;
    }
    LX_MOCK_W_LIT(&w, "],\"model\":");
    lx_mock__w_str(&w, a->model);
    LX_MOCK_W_LIT(&w, ",\"usage\":{\"prompt_tokens\":");
    lx_mock__w_u64(&w, prompt);
    LX_MOCK_W_LIT(&w, ",\"total_tokens\":");
    lx_mock__w_u64(&w, prompt);
    LX_MOCK_W_LIT(&w, "}}\n");
    if (w.err) {
        reply_error(c, 500, LX_STR("answer too large"), NULL, o);
        return;
    }
    lx_mock__reply(c, 200, "application/json", o);
}

static void put_model(struct lx_mock_w *w, struct lx_str id)
{
    LX_MOCK_W_LIT(w, "{\"id\":");
    lx_mock__w_str(w, id);
    LX_MOCK_W_LIT(w, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"llmux-mock\"}");
}

static void do_model(struct lx_mock_conn *c, struct lx_str id, const struct lx_mock_reply_opts *o)
{
    lx_buf_reset(&tls_body);
    struct lx_mock_w w = {.b = &tls_body};
    if (id.p) {
        put_model(&w, id);
    } else {
        LX_MOCK_W_LIT(&w, "{\"object\":\"list\",\"data\":[");
        put_model(&w, LX_STR("mock-model"));
        LX_MOCK_W_LIT(&w, "]}");
    }
    LX_MOCK_W_LIT(&w, "\n");
    if (w.err) {
        return;
    }
    lx_mock__reply(c, 200, "application/json", o);
}

/* ---- dispatch ---- */

static void do_inspect(struct lx_mock_conn *c, const struct lx_mock_req *req, struct lx_str what)
{
    struct lx_mock_shared *s = lx_mock__conn_worker(c)->shared;
    struct lx_mock_reply_opts o = {.retry_after = -1, .is_close = lx_mock__conn_wants_close(c)};
    bool is_get = strcmp(req->method, "GET") == 0;
    bool is_post = strcmp(req->method, "POST") == 0;
    if (lx_str_eq_c(what, "reset")) {
        if (!is_post) {
            reply_error(c, 405, LX_STR("use POST /mock/reset"), NULL, &o);
            return;
        }
        lx_mock__state_reset(s);
        reply_json(c, 200, LX_STR("{\"status\":\"ok\"}\n"), &o);
        return;
    }
    if (!is_get) {
        reply_error(c, 405, LX_STR("use GET"), NULL, &o);
        return;
    }
    lx_buf_reset(&tls_body);
    int rc = lx_str_eq_c(what, "last") ? lx_mock__last_render(s, &tls_body)
                                       : lx_mock__stats_render(s, &tls_body);
    if (rc == LX_ENOTFOUND) {
        reply_error(c, 404, LX_STR("no request recorded yet"), NULL, &o);
    } else if (rc) {
        reply_error(c, 500, LX_STR("mock out of memory"), NULL, &o);
    } else if (lx_buf_append_c(&tls_body, "\n") == 0) {
        lx_mock__reply(c, 200, "application/json", &o);
    }
}

static enum lx_mock_route match_route(struct lx_str path)
{
    for (size_t r = 0; r < LX_MOCK_ROUTE_COUNT; r++) {
        if (lx_str_eq_c(path, lx_mock_route_paths[r])) {
            return (enum lx_mock_route)r;
        }
    }
    return LX_MOCK_ROUTE_OTHER;
}

/* GET /v1/models/{id} and /models/{id}: the id, or a NULL slice. */
static struct lx_str model_id(struct lx_str path)
{
    static const struct lx_str prefixes[] = {LX_STR("/v1/models/"), LX_STR("/models/")};
    for (size_t i = 0; i < LX_ARRAY_LEN(prefixes); i++) {
        if (lx_str_has_prefix(path, prefixes[i]) && path.n > prefixes[i].n) {
            struct lx_str id = lx_str_sub(path, prefixes[i].n);
            if (!memchr(id.p, '/', id.n)) {
                return id;
            }
        }
    }
    return LX_STR_NULL;
}

int lx_mock__parse_body(const struct lx_mock_req *req, cJSON **out)
{
    cJSON *body = cJSON_ParseWithLength(req->body.p, req->body.n);
    if (!body && tls_arena.total > ARENA_LIMIT / 2) {
        return LX_ETOOBIG; /* the arena ran out: the body was too large, not broken */
    }
    if (!cJSON_IsObject(body)) {
        return LX_EINVAL;
    }
    *out = body;
    return 0;
}

static void handle_api(struct lx_mock_conn *c, const struct lx_mock_req *req,
                       enum lx_mock_route route, struct lx_str path,
                       const struct lx_mock_directives *d)
{
    struct lx_mock_reply_opts o = {
        .latency_ms = d->latency_ms,
        .slow_headers_ms = d->slow_headers_ms,
        .retry_after = d->retry_after,
        .is_close = d->close || lx_mock__conn_wants_close(c),
    };
    if (d->hang) {
        lx_mock__conn_hang(c);
        return;
    }
    if (lx_mock_route_is_anthropic(route)) {
        lx_mock__anthropic(c, req, route, d, &o);
        return;
    }
    if (lx_mock__gemini_route(path)) {
        lx_mock__gemini(c, req, path, d, &o);
        return;
    }
    if (lx_mock__ollama_route(path)) {
        lx_mock__ollama(c, req, d, &o);
        return;
    }
    if (lx_mock__bedrock_route(path)) {
        lx_mock__bedrock(c, req, path, d, &o);
        return;
    }
    if (d->status) {
        char msg[32];
        struct lx_str m = d->error_message;
        if (!m.p) {
            int n = snprintf(msg, sizeof(msg), "mock error %u", d->status);
            m = (struct lx_str){msg, n > 0 ? (size_t)n : 0};
        }
        reply_error(c, (int)d->status, m, NULL, &o);
        return;
    }
    bool is_get = strcmp(req->method, "GET") == 0;
    bool is_post = strcmp(req->method, "POST") == 0;
    struct lx_str mid = model_id(path);
    bool wants_get = route == LX_MOCK_ROUTE_MODELS_V1 || route == LX_MOCK_ROUTE_MODELS ||
                     route == LX_MOCK_ROUTE_HEALTH || mid.p;
    if (route == LX_MOCK_ROUTE_OTHER && !mid.p) {
        char msg[160];
        int n = snprintf(msg, sizeof(msg), "Invalid URL (%s %.*s)", req->method,
                         (int)LX_MIN(path.n, 100), path.p);
        reply_error(c, 404, (struct lx_str){msg, n > 0 ? LX_MIN((size_t)n, sizeof(msg) - 1) : 0},
                    NULL, &o);
        return;
    }
    if ((wants_get && !is_get) || (!wants_get && !is_post)) {
        char msg[160];
        int n = snprintf(msg, sizeof(msg), "Invalid method for URL (%s %.*s)", req->method,
                         (int)LX_MIN(path.n, 100), path.p);
        reply_error(c, 405, (struct lx_str){msg, n > 0 ? LX_MIN((size_t)n, sizeof(msg) - 1) : 0},
                    NULL, &o);
        return;
    }
    if (wants_get) {
        if (d->reset_after >= 0) {
            lx_mock__conn_reset(c);
        } else if (route == LX_MOCK_ROUTE_HEALTH) {
            reply_json(c, 200, LX_STR("{\"status\":\"ok\"}\n"), &o);
        } else {
            do_model(c, mid, &o);
        }
        return;
    }
    if (req->is_too_big) {
        reply_error(c, 413, LX_STR("request body too large"), NULL, &o);
        return;
    }
    cJSON *body = NULL;
    int prc = lx_mock__parse_body(req, &body);
    if (prc == LX_ETOOBIG) {
        reply_error(c, 413, LX_STR("request body too large to parse"), NULL, &o);
        return;
    }
    if (prc) {
        reply_invalid(c,
                      "We could not parse the JSON body of your request. (HINT: This likely "
                      "means you aren't using your HTTP library correctly. The OpenAI API expects "
                      "a JSON payload, but what was sent was not valid JSON.)",
                      NULL, &o);
        return;
    }
    const cJSON *model = get(body, "model");
    if (!cJSON_IsString(model)) {
        reply_invalid(c, "you must provide a model parameter", "model", &o);
        return;
    }
    struct answer a = {.model = jstr(model)};
    a.is_stream = cJSON_IsTrue(get(body, "stream"));
    a.include_usage = cJSON_IsTrue(get(get(body, "stream_options"), "include_usage"));
    switch (route) {
    case LX_MOCK_ROUTE_CHAT_V1:
    case LX_MOCK_ROUTE_CHAT:
        do_chat(c, req, d, body, &a, &o);
        break;
    case LX_MOCK_ROUTE_COMPLETIONS_V1:
    case LX_MOCK_ROUTE_COMPLETIONS:
        do_completions(c, req, d, body, &a, &o);
        break;
    default:
        do_embeddings(c, d, body, &a, &o);
        break;
    }
}

/*
 * Azure OpenAI: /openai/deployments/{deployment}/{chat/completions|completions|embeddings}
 * with ?api-version= and an api-key header. Returns the OpenAI route it maps to,
 * or LX_MOCK_ROUTE_OTHER when path has another shape.
 */
static enum lx_mock_route azure_route(struct lx_str path)
{
    static const struct lx_str prefix = LX_STR("/openai/deployments/");
    if (!lx_str_has_prefix(path, prefix)) {
        return LX_MOCK_ROUTE_OTHER;
    }
    struct lx_str rest = lx_str_sub(path, prefix.n);
    const char *slash = memchr(rest.p, '/', rest.n);
    if (!slash || slash == rest.p) {
        return LX_MOCK_ROUTE_OTHER;
    }
    struct lx_str tail = lx_str_sub(rest, (size_t)(slash - rest.p));
    if (lx_str_eq_c(tail, "/chat/completions")) {
        return LX_MOCK_ROUTE_CHAT_V1;
    }
    if (lx_str_eq_c(tail, "/completions")) {
        return LX_MOCK_ROUTE_COMPLETIONS_V1;
    }
    if (lx_str_eq_c(tail, "/embeddings")) {
        return LX_MOCK_ROUTE_EMBEDDINGS_V1;
    }
    return LX_MOCK_ROUTE_OTHER;
}

static bool req_has_header(const struct lx_mock_req *req, struct lx_str name)
{
    for (size_t i = 0; i < req->nhdrs; i++) {
        if (lx_str_case_eq(lx_mock_hdr_name(req, i), name) &&
            lx_str_trim(lx_mock_hdr_value(req, i)).n) {
            return true;
        }
    }
    return false;
}

static bool handle(struct lx_mock_conn *c, const struct lx_mock_req *req)
{
    struct lx_mock_worker *w = lx_mock__conn_worker(c);
    struct lx_str url = req->url;
    size_t plen = 0;
    while (plen < url.n && url.p[plen] != '?' && url.p[plen] != '#') {
        plen++;
    }
    struct lx_str path = {url.p, plen};
    struct lx_str seg = LX_STR_NULL;
    if (lx_str_has_prefix(path, LX_STR("/mock/")) || lx_str_eq_c(path, "/mock")) {
        struct lx_str rest = lx_str_sub(path, 6);
        const char *slash = memchr(rest.p, '/', rest.n);
        if (!slash) {
            if (lx_str_eq_c(rest, "last") || lx_str_eq_c(rest, "stats") ||
                lx_str_eq_c(rest, "reset")) {
                do_inspect(c, req, rest);
            } else {
                struct lx_mock_reply_opts o = {.retry_after = -1,
                                               .is_close = lx_mock__conn_wants_close(c)};
                reply_error(c, 404, LX_STR("unknown /mock/ endpoint (last, stats, reset)"), NULL,
                            &o);
            }
            return false;
        }
        seg = (struct lx_str){rest.p, (size_t)(slash - rest.p)};
        path = lx_str_sub(rest, seg.n);
    }
    enum lx_mock_route route = match_route(path);
    enum lx_mock_route azure = azure_route(path);
    lx_mock__stats_count(w, route, path);
    if (azure != LX_MOCK_ROUTE_OTHER) {
        struct lx_mock_reply_opts o = {.retry_after = -1, .is_close = lx_mock__conn_wants_close(c)};
        struct lx_str query = {url.p + plen, url.n - plen};
        if (!req_has_header(req, LX_STR("api-key"))) {
            reply_error(c, 401,
                        LX_STR("Access denied due to missing subscription key. Make sure to "
                               "include subscription key when making requests to an API."),
                        NULL, &o);
            return true;
        }
        if (!memmem(query.p, query.n, "api-version=", 12)) {
            reply_error(c, 404, LX_STR("Resource not found (api-version is required)"), NULL, &o);
            return true;
        }
        route = azure;
    }

    struct lx_mock_directives d;
    struct lx_error err;
    directives_init(&d, w->shared->cfg);
    if (parse_path_directives(seg, &d, &err) != 0 || parse_header_directives(req, &d, &err) != 0) {
        struct lx_mock_reply_opts o = {.retry_after = -1, .is_close = lx_mock__conn_wants_close(c)};
        if (lx_mock_route_is_anthropic(route)) {
            lx_mock__anthropic_error(c, 400, lx_str_c(err.msg), &o);
        } else {
            reply_error(c, 400, lx_str_c(err.msg), NULL, &o);
        }
        return true;
    }
    handle_api(c, req, route, path, &d);
    return true;
}

bool lx_mock__handle(struct lx_mock_conn *c, const struct lx_mock_req *req)
{
    tls_init();
    bool record = handle(c, req);
    tls_rewind();
    scratch_reset(&tls_body);
    return record;
}
