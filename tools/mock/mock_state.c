/*
 * Inspection state: request counters and the last request, readable from any
 * worker thread through /mock/stats and /mock/last.
 *
 * Counters live per worker (relaxed atomics on the worker's own cache lines,
 * so the hot path never contends) and are summed when read. Paths outside the
 * route table are counted in a small list under a mutex, capped at MAX_OTHERS
 * entries plus one "(other)" bucket so that a client probing random URLs
 * cannot grow memory without bound. Each worker keeps its own last request
 * behind its own mutex; a process-wide sequence number says which worker's is
 * the newest. Storing one swaps buffers instead of copying them.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "mock.h"

#define MAX_OTHERS 256
#define MAX_OTHER_PATH 256
#define KEEP_HEAD_BYTES (16 * 1024)
#define KEEP_BODY_BYTES (256 * 1024)

struct lx_mock_other {
    char *path;
    size_t len;
    uint64_t count;
};

const char *const lx_mock_route_paths[LX_MOCK_ROUTE_COUNT] = {
    [LX_MOCK_ROUTE_CHAT_V1] = "/v1/chat/completions",
    [LX_MOCK_ROUTE_CHAT] = "/chat/completions",
    [LX_MOCK_ROUTE_COMPLETIONS_V1] = "/v1/completions",
    [LX_MOCK_ROUTE_COMPLETIONS] = "/completions",
    [LX_MOCK_ROUTE_EMBEDDINGS_V1] = "/v1/embeddings",
    [LX_MOCK_ROUTE_EMBEDDINGS] = "/embeddings",
    [LX_MOCK_ROUTE_MODELS_V1] = "/v1/models",
    [LX_MOCK_ROUTE_MODELS] = "/models",
    [LX_MOCK_ROUTE_HEALTH] = "/health",
    [LX_MOCK_ROUTE_MESSAGES_V1] = "/v1/messages",
    [LX_MOCK_ROUTE_MESSAGES] = "/messages",
    [LX_MOCK_ROUTE_COUNT_TOKENS_V1] = "/v1/messages/count_tokens",
    [LX_MOCK_ROUTE_COUNT_TOKENS] = "/messages/count_tokens",
};

void lx_mock__reqbuf_init(struct lx_mock_reqbuf *rb)
{
    lx_buf_init(&rb->head, LX_MOCK_MAX_HEAD_BYTES);
    lx_buf_init(&rb->idx, LX_MOCK_MAX_HEADERS * sizeof(struct lx_mock_hdr));
    lx_buf_init(&rb->body, LX_MOCK_MAX_BODY_BYTES);
    rb->url_len = 0;
    rb->method = NULL;
}

void lx_mock__reqbuf_fini(struct lx_mock_reqbuf *rb)
{
    lx_buf_fini(&rb->head);
    lx_buf_fini(&rb->idx);
    lx_buf_fini(&rb->body);
}

static void buf_reset_keep(struct lx_buf *b, size_t keep)
{
    if (b->cap > keep) {
        lx_buf_fini(b);
    } else {
        lx_buf_reset(b);
    }
}

void lx_mock__reqbuf_reset(struct lx_mock_reqbuf *rb)
{
    buf_reset_keep(&rb->head, KEEP_HEAD_BYTES);
    lx_buf_reset(&rb->idx);
    buf_reset_keep(&rb->body, KEEP_BODY_BYTES);
    rb->url_len = 0;
    rb->method = NULL;
}

void lx_mock__shared_init(struct lx_mock_shared *s, const struct lx_mock_config *cfg,
                          struct lx_mock_worker *workers, unsigned n)
{
    s->cfg = cfg;
    s->workers = workers;
    s->nworkers = n;
    atomic_init(&s->active_streams, 0);
    atomic_init(&s->seq, 0);
    pthread_mutex_init(&s->other_mu, NULL);
    s->others = NULL;
    s->nothers = 0;
    for (unsigned i = 0; i < n; i++) {
        struct lx_mock_worker *w = &workers[i];
        w->index = i;
        w->shared = s;
        atomic_init(&w->stats.requests, 0);
        atomic_init(&w->stats.conns, 0);
        for (size_t r = 0; r < LX_MOCK_ROUTE_COUNT; r++) {
            atomic_init(&w->stats.by_route[r], 0);
        }
        pthread_mutex_init(&w->last.mu, NULL);
        w->last.seq = 0;
        lx_mock__reqbuf_init(&w->last.rb);
    }
}

static void others_clear(struct lx_mock_shared *s)
{
    for (size_t i = 0; i < s->nothers; i++) {
        lx_free(s->others[i].path);
    }
    LX_FREE(s->others);
    s->nothers = 0;
}

void lx_mock__shared_fini(struct lx_mock_shared *s)
{
    for (unsigned i = 0; i < s->nworkers; i++) {
        lx_mock__reqbuf_fini(&s->workers[i].last.rb);
        pthread_mutex_destroy(&s->workers[i].last.mu);
    }
    others_clear(s);
    pthread_mutex_destroy(&s->other_mu);
}

static void count_other(struct lx_mock_shared *s, struct lx_str path)
{
    if (path.n > MAX_OTHER_PATH) {
        path = LX_STR("(other)");
    }
    pthread_mutex_lock(&s->other_mu);
    for (size_t i = 0; i < s->nothers; i++) {
        if (lx_str_eq((struct lx_str){s->others[i].path, s->others[i].len}, path)) {
            s->others[i].count++;
            goto out;
        }
    }
    if (s->nothers >= MAX_OTHERS) {
        /* The last slot is the "(other)" bucket once the list is full. */
        path = LX_STR("(other)");
        for (size_t i = 0; i < s->nothers; i++) {
            if (lx_str_eq((struct lx_str){s->others[i].path, s->others[i].len}, path)) {
                s->others[i].count++;
                goto out;
            }
        }
    }
    if (!s->others) {
        s->others = lx_calloc(MAX_OTHERS + 1, sizeof(*s->others));
    }
    s->others[s->nothers].path = lx_strndup(path.p, path.n);
    s->others[s->nothers].len = path.n;
    s->others[s->nothers].count = 1;
    s->nothers++;
out:
    pthread_mutex_unlock(&s->other_mu);
}

void lx_mock__stats_count(struct lx_mock_worker *w, enum lx_mock_route route, struct lx_str path)
{
    atomic_fetch_add_explicit(&w->stats.requests, 1, memory_order_relaxed);
    if (route < LX_MOCK_ROUTE_COUNT) {
        atomic_fetch_add_explicit(&w->stats.by_route[route], 1, memory_order_relaxed);
    } else {
        count_other(w->shared, path);
    }
}

void lx_mock__last_store(struct lx_mock_worker *w, struct lx_mock_reqbuf *rb)
{
    uint64_t seq = atomic_fetch_add_explicit(&w->shared->seq, 1, memory_order_relaxed) + 1;
    pthread_mutex_lock(&w->last.mu);
    struct lx_mock_reqbuf tmp = w->last.rb;
    w->last.rb = *rb;
    w->last.seq = seq;
    pthread_mutex_unlock(&w->last.mu);
    *rb = tmp;
    lx_mock__reqbuf_reset(rb);
}

/* Header names are RFC 9110 tokens (llhttp checks): lowercasing is all they need. */
static void write_lower(struct lx_mock_w *w, struct lx_str s)
{
    char tmp[256];
    while (s.n) {
        size_t n = LX_MIN(s.n, sizeof(tmp));
        for (size_t i = 0; i < n; i++) {
            char ch = s.p[i];
            tmp[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
        }
        lx_mock__w_str_body(w, (struct lx_str){tmp, n});
        s = lx_str_sub(s, n);
    }
}

static void render_last(const struct lx_mock_reqbuf *rb, struct lx_mock_w *w)
{
    struct lx_mock_req r = {
        .hdrs = (const struct lx_mock_hdr *)(void *)rb->idx.data,
        .nhdrs = rb->idx.len / sizeof(struct lx_mock_hdr),
        .base = rb->head.data,
    };
    LX_MOCK_W_LIT(w, "{\"method\":");
    lx_mock__w_str(w, lx_str_c(rb->method ? rb->method : ""));
    LX_MOCK_W_LIT(w, ",\"path\":");
    lx_mock__w_str(w, (struct lx_str){rb->head.data ? rb->head.data : "", rb->url_len});
    LX_MOCK_W_LIT(w, ",\"headers\":{");
    bool first = true;
    for (size_t i = 0; i < r.nhdrs; i++) {
        struct lx_str name = lx_mock_hdr_name(&r, i);
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) {
            seen = lx_str_case_eq(lx_mock_hdr_name(&r, j), name);
        }
        if (seen) {
            continue;
        }
        if (!first) {
            LX_MOCK_W_LIT(w, ",");
        }
        first = false;
        LX_MOCK_W_LIT(w, "\"");
        write_lower(w, name);
        LX_MOCK_W_LIT(w, "\":\"");
        lx_mock__w_str_body(w, lx_str_trim(lx_mock_hdr_value(&r, i)));
        /* RFC 9110 section 5.3: repeated fields combine into one list. */
        for (size_t j = i + 1; j < r.nhdrs; j++) {
            if (lx_str_case_eq(lx_mock_hdr_name(&r, j), name)) {
                LX_MOCK_W_LIT(w, ", ");
                lx_mock__w_str_body(w, lx_str_trim(lx_mock_hdr_value(&r, j)));
            }
        }
        LX_MOCK_W_LIT(w, "\"");
    }
    LX_MOCK_W_LIT(w, "},\"body\":");
    lx_mock__w_str(w, lx_buf_str(&rb->body));
    LX_MOCK_W_LIT(w, "}");
}

int lx_mock__last_render(struct lx_mock_shared *s, struct lx_buf *b)
{
    unsigned best = 0;
    uint64_t best_seq = 0;
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct lx_mock_last *l = &s->workers[i].last;
        pthread_mutex_lock(&l->mu);
        if (l->seq > best_seq) {
            best_seq = l->seq;
            best = i;
        }
        pthread_mutex_unlock(&l->mu);
    }
    if (best_seq == 0) {
        return LX_ENOTFOUND;
    }
    struct lx_mock_last *l = &s->workers[best].last;
    struct lx_mock_w w = {.b = b};
    pthread_mutex_lock(&l->mu);
    if (l->seq == 0) {
        w.err = LX_ENOTFOUND; /* a reset came in between */
    } else {
        render_last(&l->rb, &w);
    }
    pthread_mutex_unlock(&l->mu);
    return w.err;
}

int lx_mock__stats_render(struct lx_mock_shared *s, struct lx_buf *b)
{
    uint64_t requests = 0;
    uint64_t conns = 0;
    uint64_t by_route[LX_MOCK_ROUTE_COUNT] = {0};
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct lx_mock_stats *st = &s->workers[i].stats;
        requests += atomic_load_explicit(&st->requests, memory_order_relaxed);
        conns += atomic_load_explicit(&st->conns, memory_order_relaxed);
        for (size_t r = 0; r < LX_MOCK_ROUTE_COUNT; r++) {
            by_route[r] += atomic_load_explicit(&st->by_route[r], memory_order_relaxed);
        }
    }
    long long active = atomic_load_explicit(&s->active_streams, memory_order_relaxed);
    struct lx_mock_w w = {.b = b};
    LX_MOCK_W_LIT(&w, "{\"requests\":");
    lx_mock__w_u64(&w, requests);
    LX_MOCK_W_LIT(&w, ",\"active_streams\":");
    lx_mock__w_u64(&w, active > 0 ? (uint64_t)active : 0);
    LX_MOCK_W_LIT(&w, ",\"by_path\":{");
    bool first = true;
    for (size_t r = 0; r < LX_MOCK_ROUTE_COUNT; r++) {
        if (!by_route[r]) {
            continue;
        }
        if (!first) {
            LX_MOCK_W_LIT(&w, ",");
        }
        first = false;
        lx_mock__w_str(&w, lx_str_c(lx_mock_route_paths[r]));
        LX_MOCK_W_LIT(&w, ":");
        lx_mock__w_u64(&w, by_route[r]);
    }
    pthread_mutex_lock(&s->other_mu);
    for (size_t i = 0; i < s->nothers; i++) {
        if (!first) {
            LX_MOCK_W_LIT(&w, ",");
        }
        first = false;
        lx_mock__w_str(&w, (struct lx_str){s->others[i].path, s->others[i].len});
        LX_MOCK_W_LIT(&w, ":");
        lx_mock__w_u64(&w, s->others[i].count);
    }
    pthread_mutex_unlock(&s->other_mu);
    LX_MOCK_W_LIT(&w, "},\"connections_accepted\":");
    lx_mock__w_u64(&w, conns);
    LX_MOCK_W_LIT(&w, "}");
    return w.err;
}

void lx_mock__state_reset(struct lx_mock_shared *s)
{
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct lx_mock_worker *w = &s->workers[i];
        atomic_store_explicit(&w->stats.requests, 0, memory_order_relaxed);
        atomic_store_explicit(&w->stats.conns, 0, memory_order_relaxed);
        for (size_t r = 0; r < LX_MOCK_ROUTE_COUNT; r++) {
            atomic_store_explicit(&w->stats.by_route[r], 0, memory_order_relaxed);
        }
        pthread_mutex_lock(&w->last.mu);
        w->last.seq = 0;
        pthread_mutex_unlock(&w->last.mu);
    }
    pthread_mutex_lock(&s->other_mu);
    others_clear(s);
    pthread_mutex_unlock(&s->other_mu);
}
