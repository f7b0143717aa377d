/*
 * The process-wide identity cache: key hash (SHA-256 hex) -> identity
 * reference, under one mutex (a lookup holds it for a hash, a string
 * compare and a reference increment).
 *
 * Invalidation races: a lookup that misses reads the store, then inserts.
 * An admin change that lands between the read and the insert must win, so
 * every invalidation bumps a generation counter and an insert carries the
 * generation its read started under; an older one is not cached (the
 * request still uses what it read).
 *
 * The table has a fixed number of buckets and a cap on entries; at the cap
 * an insert evicts one entry found from a rotating cursor.
 */
#include <pthread.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/alloc.h"

#define CACHE_BUCKETS 4096u
#define CACHE_MAX_ENTRIES 100000u

struct entry {
    struct entry *next;
    struct lx_identity *id; /* holds a reference; id->token is the key */
};

static struct {
    pthread_mutex_t mu;
    struct entry *buckets[CACHE_BUCKETS];
    size_t n;
    size_t cursor;
    uint64_t gen;
    uint64_t ttl_ms;
} cache = {.mu = PTHREAD_MUTEX_INITIALIZER, .ttl_ms = 30000};

static size_t bucket_of(const char *token)
{
    /* The token is a uniformly distributed hex digest: its first digits are a fine hash. */
    size_t h = 0;
    for (int i = 0; i < 8 && token[i]; i++) {
        h = h * 31 + (unsigned char)token[i];
    }
    return h % CACHE_BUCKETS;
}

void lx_auth_cache_set_ttl_ms(uint64_t ttl_ms)
{
    pthread_mutex_lock(&cache.mu);
    cache.ttl_ms = ttl_ms;
    pthread_mutex_unlock(&cache.mu);
}

uint64_t lx_auth_cache_gen(void)
{
    pthread_mutex_lock(&cache.mu);
    uint64_t g = cache.gen;
    pthread_mutex_unlock(&cache.mu);
    return g;
}

struct lx_identity *lx_auth_cache_get(const char *token, uint64_t now_ms, bool *out_fresh)
{
    struct lx_identity *found = NULL;
    pthread_mutex_lock(&cache.mu);
    for (struct entry *e = cache.buckets[bucket_of(token)]; e; e = e->next) {
        if (strcmp(e->id->token, token) == 0) {
            found = lx_identity_ref(e->id);
            *out_fresh = now_ms < (uint64_t)e->id->loaded_at_ms + cache.ttl_ms;
            break;
        }
    }
    pthread_mutex_unlock(&cache.mu);
    return found;
}

/* Unlink and release the entry *pp points to. Under the lock. */
static void drop(struct entry **pp, struct lx_identity **out_release)
{
    struct entry *e = *pp;
    *pp = e->next;
    *out_release = e->id;
    lx_free(e);
    cache.n--;
}

static struct lx_identity *evict_one(void)
{
    for (size_t i = 0; i < CACHE_BUCKETS; i++) {
        size_t b = (cache.cursor + i) % CACHE_BUCKETS;
        if (cache.buckets[b]) {
            struct lx_identity *rel = NULL;
            drop(&cache.buckets[b], &rel);
            cache.cursor = b + 1;
            return rel;
        }
    }
    return NULL;
}

void lx_auth_cache_put(struct lx_identity *id, uint64_t gen)
{
    struct lx_identity *release[2] = {NULL, NULL};
    struct entry *fresh = LX_NEW(struct entry);
    fresh->id = lx_identity_ref(id);
    pthread_mutex_lock(&cache.mu);
    if (gen != cache.gen) {
        pthread_mutex_unlock(&cache.mu);
        lx_identity_unref(fresh->id);
        lx_free(fresh);
        return;
    }
    struct entry **pp = &cache.buckets[bucket_of(id->token)];
    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id->token, id->token) == 0) {
            drop(pp, &release[0]);
            break;
        }
    }
    if (cache.n >= CACHE_MAX_ENTRIES) {
        release[1] = evict_one();
    }
    struct entry **head = &cache.buckets[bucket_of(id->token)];
    fresh->next = *head;
    *head = fresh;
    cache.n++;
    pthread_mutex_unlock(&cache.mu);
    /* The last reference may free an arena: outside the lock. */
    lx_identity_unref(release[0]);
    lx_identity_unref(release[1]);
}

enum match_kind { M_TOKEN, M_USER, M_TEAM, M_ALL };

static bool matches(const struct lx_identity *id, enum match_kind k, const char *v)
{
    switch (k) {
    case M_TOKEN:
        return strcmp(id->token, v) == 0;
    case M_USER:
        return id->user_id && strcmp(id->user_id, v) == 0;
    case M_TEAM:
        return id->team_id && strcmp(id->team_id, v) == 0;
    case M_ALL:
        return true;
    }
    return false;
}

static void invalidate(enum match_kind k, const char *v)
{
    if (k != M_ALL && !v) {
        return;
    }
    struct entry *dead = NULL;
    pthread_mutex_lock(&cache.mu);
    cache.gen++;
    size_t from = 0, to = CACHE_BUCKETS;
    if (k == M_TOKEN) {
        from = bucket_of(v);
        to = from + 1;
    }
    for (size_t b = from; b < to; b++) {
        struct entry **pp = &cache.buckets[b];
        while (*pp) {
            struct entry *e = *pp;
            if (matches(e->id, k, v)) {
                *pp = e->next;
                e->next = dead;
                dead = e;
                cache.n--;
            } else {
                pp = &e->next;
            }
        }
    }
    pthread_mutex_unlock(&cache.mu);
    while (dead) {
        struct entry *next = dead->next;
        lx_identity_unref(dead->id);
        lx_free(dead);
        dead = next;
    }
}

void lx_auth_invalidate_token(const char *token)
{
    invalidate(M_TOKEN, token);
}

void lx_auth_invalidate_user(const char *user_id)
{
    invalidate(M_USER, user_id);
}

void lx_auth_invalidate_team(const char *team_id)
{
    invalidate(M_TEAM, team_id);
}

void lx_auth_invalidate_all(void)
{
    invalidate(M_ALL, NULL);
}

size_t lx_auth_cache_size(void)
{
    pthread_mutex_lock(&cache.mu);
    size_t n = cache.n;
    pthread_mutex_unlock(&cache.mu);
    return n;
}
