/*
 * llmux-mock internals, shared by the files of tools/mock/.
 *
 * The mock is one process with one libuv loop per worker thread; each worker
 * owns its own SO_REUSEPORT listener and every connection it accepts, so a
 * connection, its parser and its responses are only ever touched by one
 * thread. What crosses threads is the inspection state (struct lx_mock_shared
 * and each worker's stats and last request): counters are relaxed atomics,
 * the last request of each worker sits behind that worker's mutex.
 *
 * Layers:
 *   mock.c         CLI, listeners, worker threads, signals.
 *   mock_http.c    HTTP/1.1 connections: llhttp parsing, pipelining (answers
 *                  leave in request order), a small response engine that runs
 *                  timed "step" functions, graceful close and TCP reset.
 *   mock_openai.c  routes, directives, OpenAI-shaped answers and streams,
 *                  and the per-thread scratch both API files write into.
 *   mock_anthropic.c  Anthropic Messages API answers and event streams.
 *   mock_gemini.c  Gemini generateContent answers and SSE streams.
 *   mock_ollama.c  Ollama /api/chat answers and NDJSON streams.
 *   mock_state.c   stats, last request, the /mock/ inspection answers.
 *   mock_json.c    an append-only JSON writer with a sticky error.
 *
 * Lifetimes: the request view (struct lx_mock_req) is valid only during
 * lx_mock__handle; anything a delayed response needs is copied into it.
 */
#ifndef LX_MOCK_MOCK_H
#define LX_MOCK_MOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>
#include <uv.h>

#include "core/buf.h"
#include "core/str.h"

#define LX_MOCK_MAX_HEAD_BYTES (64 * 1024)        /* request line plus headers: else 431 */
#define LX_MOCK_MAX_HEADERS 128                   /* else 431 */
#define LX_MOCK_MAX_BODY_BYTES (16 * 1024 * 1024) /* else 413 */
#define LX_MOCK_MAX_OUT_BYTES (256 * 1024 * 1024) /* one response's bytes */
#define LX_MOCK_MAX_DELAY_MS (24u * 3600 * 1000)
#define LX_MOCK_MAX_CHUNKS 1000000u
#define LX_MOCK_READ_BUF 65536

/* Command-line settings; immutable once the workers start. */
struct lx_mock_config {
    const char *host;
    unsigned port;
    unsigned threads;
    uint32_t latency_ms;
    uint32_t chunks; /* 0: one piece per word */
    uint32_t interval_ms;
    struct lx_str content;
    bool is_quiet;
};

/* Known paths, counted without locks; anything else goes to the "other" list. */
enum lx_mock_route {
    LX_MOCK_ROUTE_CHAT_V1,
    LX_MOCK_ROUTE_CHAT,
    LX_MOCK_ROUTE_COMPLETIONS_V1,
    LX_MOCK_ROUTE_COMPLETIONS,
    LX_MOCK_ROUTE_EMBEDDINGS_V1,
    LX_MOCK_ROUTE_EMBEDDINGS,
    LX_MOCK_ROUTE_MODELS_V1,
    LX_MOCK_ROUTE_MODELS,
    LX_MOCK_ROUTE_HEALTH,
    LX_MOCK_ROUTE_MESSAGES_V1, /* Anthropic from here on: see lx_mock_route_is_anthropic */
    LX_MOCK_ROUTE_MESSAGES,
    LX_MOCK_ROUTE_COUNT_TOKENS_V1,
    LX_MOCK_ROUTE_COUNT_TOKENS,
    LX_MOCK_ROUTE_COUNT,
    LX_MOCK_ROUTE_OTHER = LX_MOCK_ROUTE_COUNT,
};

extern const char *const lx_mock_route_paths[LX_MOCK_ROUTE_COUNT];

static inline bool lx_mock_route_is_anthropic(enum lx_mock_route r)
{
    return r >= LX_MOCK_ROUTE_MESSAGES_V1 && r <= LX_MOCK_ROUTE_COUNT_TOKENS;
}

/* One header of a parsed request: offsets into struct lx_mock_reqbuf.head. */
struct lx_mock_hdr {
    uint32_t name_off;
    uint32_t name_len;
    uint32_t val_off;
    uint32_t val_len;
};

/*
 * The bytes of one request. A connection fills one while parsing; when the
 * request is recorded as "last" it is swapped (not copied) with the worker's.
 */
struct lx_mock_reqbuf {
    struct lx_buf head; /* URL, then header names and values back to back */
    struct lx_buf idx;  /* struct lx_mock_hdr entries */
    struct lx_buf body; /* decoded body (chunked framing removed) */
    size_t url_len;
    const char *method; /* static string from llhttp */
};

/* A parsed request, borrowed for the duration of lx_mock__handle. */
struct lx_mock_req {
    const char *method;
    struct lx_str url;
    struct lx_str body;
    const struct lx_mock_hdr *hdrs;
    size_t nhdrs;
    const char *base; /* what hdrs offsets point into */
    bool is_http11;   /* HTTP/1.1 or later: chunked answers allowed */
    bool is_too_big;  /* the body passed LX_MOCK_MAX_BODY_BYTES and was dropped */
};

static inline struct lx_str lx_mock_hdr_name(const struct lx_mock_req *r, size_t i)
{
    return (struct lx_str){r->base + r->hdrs[i].name_off, r->hdrs[i].name_len};
}

static inline struct lx_str lx_mock_hdr_value(const struct lx_mock_req *r, size_t i)
{
    return (struct lx_str){r->base + r->hdrs[i].val_off, r->hdrs[i].val_len};
}

/* Per-worker counters; written by the owner, read and zeroed by any thread. */
struct lx_mock_stats {
    atomic_ullong requests;
    atomic_ullong conns;
    atomic_ullong by_route[LX_MOCK_ROUTE_COUNT];
    char pad[64]; /* keep the next worker's hot fields off this cache line */
};

/* The last recorded request of one worker; seq orders workers (0 = none). */
struct lx_mock_last {
    pthread_mutex_t mu;
    uint64_t seq;
    struct lx_mock_reqbuf rb;
};

struct lx_mock_conn;
struct lx_mock_worker;

/* Process-wide state every worker points to. */
struct lx_mock_shared {
    const struct lx_mock_config *cfg;
    struct lx_mock_worker *workers;
    unsigned nworkers;
    atomic_llong active_streams;
    atomic_ullong seq; /* request sequence, orders "last" across workers */
    pthread_mutex_t other_mu;
    struct lx_mock_other *others; /* counts of paths outside the route table */
    size_t nothers;
};

struct lx_mock_worker {
    unsigned index;
    struct lx_mock_shared *shared;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    uv_timer_t sweep; /* ends lingering closes that overstay */
    pthread_t thread;
    bool is_stopping;
    struct lx_mock_conn *conns; /* every open connection, for shutdown and sweeps */
    struct lx_mock_stats stats;
    struct lx_mock_last last;
    char rbuf[LX_MOCK_READ_BUF]; /* read buffer shared by all connections of the loop */
};

/*
 * Responses. A response is a step function the engine in mock_http.c calls
 * when the response reaches the head of its connection's queue (after
 * first_delay_ms) and then again after every delay it asks for. Each call
 * appends bytes to `out` and says what comes next.
 */
enum lx_mock_step {
    LX_MOCK_STEP_AGAIN, /* call again after *out_delay_ms (0: right away) */
    LX_MOCK_STEP_DONE,  /* the response is complete */
    LX_MOCK_STEP_RESET, /* send what is buffered, then reset the connection */
    LX_MOCK_STEP_HANG,  /* never finish; the connection stays open */
};

struct lx_mock_resp;
typedef enum lx_mock_step (*lx_mock_step_cb)(struct lx_mock_resp *r, struct lx_buf *out,
                                             uint32_t *out_delay_ms);
/* Frees the whole response (it embeds struct lx_mock_resp). */
typedef void (*lx_mock_free_cb)(struct lx_mock_resp *r);

struct lx_mock_resp {
    struct lx_mock_resp *next;
    struct lx_mock_conn *conn; /* set by lx_mock__conn_queue */
    lx_mock_step_cb step;
    lx_mock_free_cb free_fn;
    uint32_t first_delay_ms;
    bool is_close;   /* close the connection once this response is complete */
    bool is_started; /* first_delay_ms has elapsed */
    bool has_timer;  /* timer was initialised: free only from its close callback */
    uv_timer_t timer;
};

/* Options for a complete, prebuilt response. */
struct lx_mock_send_opts {
    uint32_t latency_ms;      /* before the status line */
    uint32_t slow_headers_ms; /* between the status line and the rest */
    bool is_close;            /* Connection: close; the caller wrote the header */
};

/* Connection side (mock_http.c). All of these run on the connection's loop thread. */

/*
 * Initialise w's loop and adopt fd (bound and listening) as its listener.
 * Call before the worker's thread starts. Returns 0, or a libuv error after
 * tearing down the loop and closing fd.
 */
int lx_mock__worker_init(struct lx_mock_worker *w, int fd);
/* Thread entry: run the loop until lx_mock__worker_stop, then release the loop. */
void *lx_mock__worker_run(void *arg);
/* Close the listener and every connection; on the worker's thread (its stop async calls it). */
void lx_mock__worker_stop(struct lx_mock_worker *w);

struct lx_mock_worker *lx_mock__conn_worker(const struct lx_mock_conn *c);
/* True when the current request asked for the connection to close (HTTP/1.0, Connection: close). */
bool lx_mock__conn_wants_close(const struct lx_mock_conn *c);
/*
 * Answer with head + body (copied). Goes out at once when nothing is queued
 * ahead and no delay is asked for; otherwise it is queued.
 */
void lx_mock__conn_send(struct lx_mock_conn *c, struct lx_str head, struct lx_str body,
                        const struct lx_mock_send_opts *opts);
/* Queue a response; the connection owns r from now on and calls r->free_fn. */
void lx_mock__conn_queue(struct lx_mock_conn *c, struct lx_mock_resp *r);
/* Queue a never-ending answer or a TCP reset (after earlier answers leave). */
void lx_mock__conn_hang(struct lx_mock_conn *c);
void lx_mock__conn_reset(struct lx_mock_conn *c);

/* Application side (mock_openai.c), shared with mock_anthropic.c. Loop thread only. */

struct cJSON;
struct lx_mock_w;

/* One request's behaviour (README.md, "Directives"); strings borrow the request. */
struct lx_mock_directives {
    uint32_t latency_ms;
    uint32_t chunks;
    uint32_t interval_ms;
    uint32_t slow_headers_ms;
    uint32_t status; /* 0: normal answer */
    struct lx_str content;
    struct lx_str error_message; /* p == NULL: the API's default message */
    struct lx_str tool;          /* Anthropic: answer with a tool_use block; p == NULL: none */
    struct lx_str stop_reason;   /* Anthropic: p == NULL: end_turn, or tool_use with a tool */
    int64_t retry_after;         /* -1: no header */
    int64_t reset_after;         /* -1: no reset */
    int64_t usage_prompt;        /* -1: computed */
    int64_t usage_completion;
    int64_t cache_read; /* Anthropic usage.cache_*_input_tokens; -1: field absent */
    int64_t cache_creation;
    bool echo;
    bool malformed;
    bool hang;
    bool close;
    bool stream_error;
};

/* How a plain answer leaves. */
struct lx_mock_reply_opts {
    uint32_t latency_ms;
    uint32_t slow_headers_ms;
    int64_t retry_after; /* -1: none */
    bool is_close;
};

/*
 * This thread's scratch buffers, emptied; valid until the next call for the
 * same buffer. The body buffer is what lx_mock__reply sends.
 */
struct lx_buf *lx_mock__scratch_body(void);
struct lx_buf *lx_mock__scratch_event(void);
/* From the per-request arena (rewound after lx_mock__handle); NULL when exhausted. */
void *lx_mock__arena_alloc(size_t n);
/*
 * Parse the request body into the arena: 0 and *out (a JSON object), LX_ETOOBIG
 * when the arena ran out, LX_EINVAL when the body is not a JSON object.
 */
int lx_mock__parse_body(const struct lx_mock_req *req, struct cJSON **out);
/* Send the scratch body with a head (Content-Length, Retry-After, Connection: close). */
void lx_mock__reply(struct lx_mock_conn *c, int status, const char *ctype,
                    const struct lx_mock_reply_opts *o);
/* An SSE answer's head ending in the blank line; not chunked means HTTP/1.0 (close). */
void lx_mock__put_stream_head(struct lx_mock_w *w, bool is_chunked, bool is_close);
/* One HTTP chunk holding data (plain bytes when not chunked). Returns 0 or a buf error. */
int lx_mock__put_chunk(struct lx_buf *out, struct lx_str data, bool is_chunked);
/* prefix plus 24 random hex digits, NUL-terminated in out. */
struct lx_str lx_mock__make_id(char *out, size_t cap, const char *prefix);
/* Words: maximal runs of bytes other than space, tab, CR, LF. */
uint64_t lx_mock__count_words(struct lx_str s);
/* ceil(bytes / 4), at least 1. */
uint64_t lx_mock__tokens_for_bytes(uint64_t bytes);
/* Bytes of a message content: a string, or the "text" of each part of an array. */
uint64_t lx_mock__content_bytes(const struct cJSON *content);
/* A message content as one string (text parts concatenated, in the arena); "" otherwise. */
struct lx_str lx_mock__content_text(const struct cJSON *content);

/*
 * A stream's content cut into pieces: one per word (each keeping the
 * whitespace before it) when chunks is 0, else chunks near-equal byte ranges
 * that never split a UTF-8 sequence. content is borrowed.
 */
struct lx_mock_pieces {
    struct lx_str content;
    uint32_t n;
    uint32_t sent;
    size_t pos;
    bool is_words;
};

void lx_mock__pieces_init(struct lx_mock_pieces *p, struct lx_str content, uint32_t chunks);
/* The next piece (call only while p->sent < p->n); counts it in p->sent. */
struct lx_str lx_mock__pieces_next(struct lx_mock_pieces *p);

/* Application side (mock_openai.c). */

/* An OpenAI-shaped error answer (also used for protocol errors). */
void lx_mock__send_error(struct lx_mock_conn *c, int status, const char *msg, bool is_close);

/*
 * Answer one request; the answer is queued on c in request order. Returns
 * true when the request is to be recorded as "last" (not a /mock/ call).
 */
bool lx_mock__handle(struct lx_mock_conn *c, const struct lx_mock_req *req);
/* Free this thread's scratch memory (before a worker thread exits). */
void lx_mock__thread_fini(void);
/* Route cJSON allocations to the per-thread request arena. Call once before threads start. */
void lx_mock__json_init(void);

/* Anthropic Messages API (mock_anthropic.c). */

/*
 * Answer POST /v1/messages and /v1/messages/count_tokens (route says which)
 * after the directives parsed and hang was handled; o holds the directives'
 * reply options. Every error has Anthropic's shape.
 */
void lx_mock__anthropic(struct lx_mock_conn *c, const struct lx_mock_req *req,
                        enum lx_mock_route route, const struct lx_mock_directives *d,
                        const struct lx_mock_reply_opts *o);
/* {"type":"error","error":{"type":<by status>,"message":msg}} */
void lx_mock__anthropic_error(struct lx_mock_conn *c, int status, struct lx_str msg,
                              const struct lx_mock_reply_opts *o);

/* Google Gemini generateContent (mock_gemini.c). */

/* Whether path (no query) is /v1beta/models/{model}:generateContent or :streamGenerateContent. */
bool lx_mock__gemini_route(struct lx_str path);
/* Answer it after the directives parsed and hang was handled; errors have Google's shape. */
void lx_mock__gemini(struct lx_mock_conn *c, const struct lx_mock_req *req, struct lx_str path,
                     const struct lx_mock_directives *d, const struct lx_mock_reply_opts *o);

/* Ollama /api/chat (mock_ollama.c). */

bool lx_mock__ollama_route(struct lx_str path);
/* Answer it (NDJSON stream unless "stream": false); errors are {"error":"..."}. */
void lx_mock__ollama(struct lx_mock_conn *c, const struct lx_mock_req *req,
                     const struct lx_mock_directives *d, const struct lx_mock_reply_opts *o);

/* AWS Bedrock Converse / ConverseStream (mock_bedrock.c). */

/* Whether path (no query) is /model/{modelId}/converse or /model/{modelId}/converse-stream. */
bool lx_mock__bedrock_route(struct lx_str path);
/* Answer it (SigV4 checked; streams are AWS event streams); errors are Bedrock-shaped. */
void lx_mock__bedrock(struct lx_mock_conn *c, const struct lx_mock_req *req, struct lx_str path,
                      const struct lx_mock_directives *d, const struct lx_mock_reply_opts *o);

/* Inspection state (mock_state.c). Any thread. */

void lx_mock__shared_init(struct lx_mock_shared *s, const struct lx_mock_config *cfg,
                          struct lx_mock_worker *workers, unsigned n);
void lx_mock__shared_fini(struct lx_mock_shared *s);
/* Count one request to `path` (route LX_MOCK_ROUTE_OTHER: looked up by path). */
void lx_mock__stats_count(struct lx_mock_worker *w, enum lx_mock_route route, struct lx_str path);
/* Swap rb into the worker's "last" slot; rb gets the old slot's buffers, emptied. */
void lx_mock__last_store(struct lx_mock_worker *w, struct lx_mock_reqbuf *rb);
/* Render /mock/last into b; returns 0, LX_ENOTFOUND when nothing was recorded, or a buf error. */
int lx_mock__last_render(struct lx_mock_shared *s, struct lx_buf *b);
int lx_mock__stats_render(struct lx_mock_shared *s, struct lx_buf *b);
void lx_mock__state_reset(struct lx_mock_shared *s);

void lx_mock__reqbuf_init(struct lx_mock_reqbuf *rb);
void lx_mock__reqbuf_fini(struct lx_mock_reqbuf *rb);
/* Empty it for the next request; drops memory that a large request left behind. */
void lx_mock__reqbuf_reset(struct lx_mock_reqbuf *rb);

/* JSON writer (mock_json.c): appends to b; the first failure sticks in err. */
struct lx_mock_w {
    struct lx_buf *b;
    int err;
};

void lx_mock__w_raw(struct lx_mock_w *w, const char *p, size_t n);
void lx_mock__w_u64(struct lx_mock_w *w, uint64_t v);
/* A JSON string with quotes; invalid UTF-8 becomes U+FFFD so the output stays valid. */
void lx_mock__w_str(struct lx_mock_w *w, struct lx_str s);
/* The string's escaped bytes only (no quotes). */
void lx_mock__w_str_body(struct lx_mock_w *w, struct lx_str s);
/* A float with enough digits to round-trip a float32. */
void lx_mock__w_float(struct lx_mock_w *w, float v);
void lx_mock__w_base64(struct lx_mock_w *w, const unsigned char *p, size_t n);

#define LX_MOCK_W_LIT(w, lit) lx_mock__w_raw((w), (lit), sizeof(lit) - 1)

#endif
