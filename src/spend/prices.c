/*
 * The price table: a JSON file in LiteLLM's format parsed with cJSON into an
 * open-addressing hash table (FNV-1a, power-of-two capacity, at most half
 * full), and the per-deployment resolution rules LiteLLM applies.
 *
 * The built-in table is the file data/model_prices.json, turned into a C
 * array by the build (lx_prices_builtin_json); it is parsed once, published
 * with a release store and read without locks.
 */
#include "spend/prices.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/assert.h"
#include "log/log.h"

/* Generated from data/model_prices.json by the build. */
extern const unsigned char lx_prices_builtin_json[];
extern const size_t lx_prices_builtin_json_len;

struct slot {
    const char *key; /* NULL = empty */
    size_t klen;
    uint64_t hash;
    struct lx_price price;
};

struct lx_prices {
    struct lx_arena arena; /* keys and strings */
    struct slot *slots;
    size_t cap; /* power of two */
    size_t n;
};

static uint64_t fnv1a(struct lx_str s)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < s.n; i++) {
        h ^= (unsigned char)s.p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static struct slot *find_slot(const struct lx_prices *t, struct lx_str key, uint64_t h)
{
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct slot *s = &t->slots[i];
        if (!s->key || (s->hash == h && s->klen == key.n && memcmp(s->key, key.p, key.n) == 0)) {
            return s;
        }
    }
}

const struct lx_price *lx_prices_get(const struct lx_prices *t, struct lx_str key)
{
    if (!t || !key.n) {
        return NULL;
    }
    const struct slot *s = find_slot(t, key, fnv1a(key));
    return s->key ? &s->price : NULL;
}

size_t lx_prices_count(const struct lx_prices *t)
{
    return t ? t->n : 0;
}

void lx_prices_free(struct lx_prices *t)
{
    if (!t) {
        return;
    }
    lx_arena_fini(&t->arena);
    lx_free(t->slots);
    lx_free(t);
}

/* USD per token (a JSON number) -> pico-USD, rounded to the nearest; -2 when invalid. */
static int64_t usd_to_pico(double usd)
{
    if (!(usd >= 0) || usd >= 1.0) {
        return -2;
    }
    return (int64_t)llround(usd * (double)LX_PICO_PER_USD);
}

static int read_cost(const cJSON *entry, const char *field, int64_t *out, const char *model,
                     struct lx_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(entry, field);
    if (!v || cJSON_IsNull(v)) {
        return 0;
    }
    int64_t p = cJSON_IsNumber(v) ? usd_to_pico(v->valuedouble) : -2;
    if (p < 0) {
        return lx_error_set(err, LX_EINVAL, "price table: '%s': %s is not a cost in USD per token",
                            model, field);
    }
    *out = p;
    return 0;
}

static int read_limit(const cJSON *entry, const char *field, int64_t *out, const char *model,
                      struct lx_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(entry, field);
    if (!v || cJSON_IsNull(v)) {
        return 0;
    }
    /* LiteLLM's sample_spec documents these fields with strings; real entries use numbers. */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 1e15 ||
        v->valuedouble != floor(v->valuedouble)) {
        return lx_error_set(err, LX_EINVAL, "price table: '%s': %s is not a token count", model,
                            field);
    }
    *out = (int64_t)v->valuedouble;
    return 0;
}

static const char *read_string(struct lx_prices *t, const cJSON *entry, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(entry, field);
    if (!cJSON_IsString(v) || !v->valuestring) {
        return NULL;
    }
    return lx_arena_strndup(&t->arena, v->valuestring, strlen(v->valuestring));
}

static int parse_entry(struct lx_prices *t, const cJSON *e, struct lx_price *p,
                       struct lx_error *err)
{
    const char *m = e->string;
    *p = (struct lx_price){0, 0, -1, -1, -1, -1, -1, NULL, NULL};
    int rc = read_cost(e, "input_cost_per_token", &p->input_pico, m, err);
    rc = rc ? rc : read_cost(e, "output_cost_per_token", &p->output_pico, m, err);
    rc = rc ? rc : read_cost(e, "cache_read_input_token_cost", &p->cache_read_pico, m, err);
    rc = rc ? rc : read_cost(e, "cache_creation_input_token_cost", &p->cache_creation_pico, m, err);
    rc = rc ? rc : read_limit(e, "max_input_tokens", &p->max_input_tokens, m, err);
    rc = rc ? rc : read_limit(e, "max_output_tokens", &p->max_output_tokens, m, err);
    rc = rc ? rc : read_limit(e, "max_tokens", &p->max_tokens, m, err);
    if (rc) {
        return rc;
    }
    p->litellm_provider = read_string(t, e, "litellm_provider");
    p->mode = read_string(t, e, "mode");
    return 0;
}

int lx_prices_parse(struct lx_str json, struct lx_prices **out, struct lx_error *err)
{
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json.p ? json.p : "", json.n);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lx_error_set(err, LX_EINVAL, "price table: not a JSON object");
    }
    size_t n = (size_t)cJSON_GetArraySize(root);
    struct lx_prices *t = lx_calloc(1, sizeof(*t));
    lx_arena_init(&t->arena, NULL, 0, 16384);
    t->cap = 16;
    while (t->cap < 2 * n + 2) {
        t->cap *= 2;
    }
    t->slots = lx_calloc(t->cap, sizeof(*t->slots));
    int rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        if (!cJSON_IsObject(e) || !e->string || !e->string[0] ||
            !strcmp(e->string, "sample_spec")) {
            continue;
        }
        struct lx_str key = lx_str_c(e->string);
        uint64_t h = fnv1a(key);
        struct slot *s = find_slot(t, key, h);
        if (s->key) {
            continue; /* a duplicate key: the first one wins, as cJSON's lookup does */
        }
        struct lx_price p;
        rc = parse_entry(t, e, &p, err);
        if (rc) {
            break;
        }
        s->key = lx_arena_strndup(&t->arena, key.p, key.n);
        s->klen = key.n;
        s->hash = h;
        s->price = p;
        t->n++;
    }
    cJSON_Delete(root);
    if (rc) {
        lx_prices_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* ---- the built-in table ---- */

static _Atomic(struct lx_prices *) builtin;
static pthread_mutex_t builtin_lock = PTHREAD_MUTEX_INITIALIZER;

const struct lx_prices *lx_prices_builtin(void)
{
    struct lx_prices *t = atomic_load_explicit(&builtin, memory_order_acquire);
    if (LX_LIKELY(t != NULL)) {
        return t;
    }
    pthread_mutex_lock(&builtin_lock);
    t = atomic_load_explicit(&builtin, memory_order_relaxed);
    if (!t) {
        struct lx_error err = {0};
        struct lx_str json = {(const char *)lx_prices_builtin_json, lx_prices_builtin_json_len};
        if (lx_prices_parse(json, &t, &err)) {
            LX_ERROR("the built-in price table does not parse: %s", err.msg);
            LX_ASSERT(!"built-in price table");
        }
        atomic_store_explicit(&builtin, t, memory_order_release);
    }
    pthread_mutex_unlock(&builtin_lock);
    return t;
}

void lx_prices_builtin_release(void)
{
    pthread_mutex_lock(&builtin_lock);
    struct lx_prices *t = atomic_exchange_explicit(&builtin, NULL, memory_order_acq_rel);
    pthread_mutex_unlock(&builtin_lock);
    lx_prices_free(t);
}

/* ---- resolution ---- */

static const struct lx_price *get_c(const struct lx_prices *t, const char *key, size_t n,
                                    const char **out_key)
{
    const struct lx_price *p = lx_prices_get(t, (struct lx_str){key, n});
    if (p && out_key) {
        const struct slot *s = LX_CONTAINER_OF(p, struct slot, price);
        *out_key = s->key;
    }
    return p;
}

/* "<prefix>/<model>" looked up through a stack buffer. */
static const struct lx_price *get_prefixed(const struct lx_prices *t, const char *prefix,
                                           const char *model, const char **out_key)
{
    char buf[512];
    size_t pn = strlen(prefix), mn = strlen(model);
    if (!pn || pn + 1 + mn > sizeof(buf)) {
        return NULL;
    }
    memcpy(buf, prefix, pn);
    buf[pn] = '/';
    memcpy(buf + pn + 1, model, mn);
    return get_c(t, buf, pn + 1 + mn, out_key);
}

/* Bedrock cross-region inference profiles prefix the model id with a geography. */
static const char *strip_bedrock_region(const char *m)
{
    static const char *const geo[] = {"us.", "eu.", "apac.",   "jp.",
                                      "au.", "ca.", "global.", "us-gov."};
    for (size_t i = 0; i < LX_ARRAY_LEN(geo); i++) {
        size_t n = strlen(geo[i]);
        if (!strncmp(m, geo[i], n)) {
            return m + n;
        }
    }
    return NULL;
}

static const struct lx_price *lookup(const struct lx_prices *t, const struct lx_deployment *dep,
                                     const char *model, const char **out_key)
{
    const struct lx_price *p = NULL;
    if (dep->base_model && dep->base_model[0]) {
        const char *b = dep->base_model;
        const char *slash = strchr(b, '/');
        if (dep->provider.name && !slash) {
            p = get_prefixed(t, dep->provider.name, b, out_key);
        }
        if (!p) {
            p = get_c(t, b, strlen(b), out_key);
        }
        if (!p && slash) {
            p = get_c(t, slash + 1, strlen(slash + 1), out_key);
        }
        if (p) {
            return p;
        }
    }
    /* The model as written; "<provider>/<model>" unless that is the same string. */
    bool written_is_prefixed = false;
    if (dep->model && model == dep->upstream_model) {
        p = get_c(t, dep->model, strlen(dep->model), out_key);
        size_t pn = dep->provider.name ? strlen(dep->provider.name) : 0;
        written_is_prefixed = pn && !strncmp(dep->model, dep->provider.name, pn) &&
                              dep->model[pn] == '/' && !strcmp(dep->model + pn + 1, model);
    }
    if (!p && dep->provider.name && !written_is_prefixed) {
        p = get_prefixed(t, dep->provider.name, model, out_key);
    }
    if (!p) {
        p = get_c(t, model, strlen(model), out_key);
    }
    if (!p && dep->provider.kind == LX_PROVIDER_BEDROCK) {
        const char *m = model;
        if (!strncmp(m, "converse/", 9)) {
            m += 9;
            p = get_c(t, m, strlen(m), out_key);
        }
        const char *bare = p ? NULL : strip_bedrock_region(m);
        if (bare) {
            p = get_c(t, bare, strlen(bare), out_key);
        }
    }
    return p;
}

/* A model_info cost override, or -1. */
static int64_t info_cost(const cJSON *info, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(info, field);
    return cJSON_IsNumber(v) ? usd_to_pico(v->valuedouble) : -1;
}

bool lx_price_resolve(const struct lx_prices *t, const struct lx_deployment *dep,
                      const char *upstream_model, struct lx_price *out, const char **out_key)
{
    const char *model = upstream_model ? upstream_model : dep->upstream_model;
    const char *key = NULL;
    const struct lx_price *p = t && model ? lookup(t, dep, model, &key) : NULL;
    if (out_key) {
        *out_key = p ? key : NULL;
    }
    bool known = p != NULL;
    *out = p ? *p : (struct lx_price){0, 0, -1, -1, -1, -1, -1, NULL, NULL};
    if (dep->model_info) {
        static const char *const fields[] = {"input_cost_per_token", "output_cost_per_token",
                                             "cache_read_input_token_cost",
                                             "cache_creation_input_token_cost"};
        int64_t *dst[] = {&out->input_pico, &out->output_pico, &out->cache_read_pico,
                          &out->cache_creation_pico};
        for (size_t i = 0; i < LX_ARRAY_LEN(fields); i++) {
            int64_t v = info_cost(dep->model_info, fields[i]);
            if (v >= 0) {
                *dst[i] = v;
                known = true;
            }
        }
    }
    int64_t in = dep->input_cost_per_token >= 0 ? usd_to_pico(dep->input_cost_per_token) : -1;
    int64_t outp = dep->output_cost_per_token >= 0 ? usd_to_pico(dep->output_cost_per_token) : -1;
    if (in >= 0) {
        out->input_pico = in;
        known = true;
    }
    if (outp >= 0) {
        out->output_pico = outp;
        known = true;
    }
    return known;
}

/* ---- one warning per unknown model ---- */

#define WARNED_MAX 4096

/*
 * Hashes of the names warned about (0 = empty slot), at most half full.
 * Requests for a known-unknown model only read (lock-free); the first sight
 * of a name inserts under the lock.
 */
static pthread_mutex_t warned_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t warned[WARNED_MAX * 2];
static size_t n_warned;

/* The slot of h, or of the empty slot where it would go. */
static size_t warned_slot(uint64_t h)
{
    size_t mask = LX_ARRAY_LEN(warned) - 1;
    size_t i = (size_t)h & mask;
    for (;;) {
        uint64_t v = atomic_load_explicit(&warned[i], memory_order_acquire);
        if (v == 0 || v == h) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

bool lx_prices_warn_unknown(const char *model)
{
    struct lx_str m = lx_str_c(model ? model : "");
    uint64_t h = fnv1a(m) | 1; /* never 0 */
    if (atomic_load_explicit(&warned[warned_slot(h)], memory_order_acquire) == h) {
        return false;
    }
    bool first = false;
    pthread_mutex_lock(&warned_lock);
    size_t i = warned_slot(h);
    if (atomic_load_explicit(&warned[i], memory_order_relaxed) == 0 && n_warned < WARNED_MAX) {
        atomic_store_explicit(&warned[i], h, memory_order_release);
        n_warned++;
        first = true;
    }
    pthread_mutex_unlock(&warned_lock);
    if (first) {
        LX_WARN("no price known for model '%.*s': its requests cost 0 (set input_cost_per_token "
                "and output_cost_per_token in litellm_params or model_info)",
                (int)LX_MIN(m.n, 256), m.p);
    }
    return first;
}
