/*
 * Who a request is: the caller's key resolved to its key, user and team
 * records. An identity is immutable and reference-counted: the auth cache
 * hands out references, a request keeps one to its end, and an admin change
 * replaces the cached identity rather than editing it.
 *
 * Money is int64 nano-USD (1 USD = 1e9); LX_NO_LIMIT (-1) marks an unset
 * budget or limit. Model lists are empty for "all models".
 */
#ifndef LX_AUTH_IDENTITY_H
#define LX_AUTH_IDENTITY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/arena.h"

#define LX_NO_LIMIT (-1)

/* Budget and limits of one scope (key, user or team). */
struct lx_scope_limits {
    int64_t max_budget_nanos;  /* LX_NO_LIMIT = none */
    int64_t soft_budget_nanos; /* LX_NO_LIMIT = none */
    int64_t spend_nanos;       /* as read from the store */
    int64_t budget_reset_at;   /* unix seconds; 0 = never */
    const char *budget_duration;
    long long rpm_limit; /* LX_NO_LIMIT = none */
    long long tpm_limit;
    long long max_parallel_requests;
    struct lx_strlist models; /* empty = all */
};

/* Per-model limit of a key (model_rpm_limit / model_tpm_limit). */
struct lx_model_limit {
    const char *model;
    long long rpm; /* LX_NO_LIMIT = none */
    long long tpm;
};

struct lx_identity {
    atomic_int refs;
    struct lx_arena arena; /* every string and array below */

    bool is_master;         /* the master key: everything allowed */
    enum lx_user_role role; /* effective role; master = LX_ROLE_PROXY_ADMIN */
    char token[65];         /* SHA-256 hex of the key ("" for the master key) */
    const char *key_alias;  /* NULL when unset */
    const char *key_name;   /* masked key, "sk-...wxyz" */
    const char *user_id;    /* NULL when the key has no user */
    const char *team_id;    /* NULL when the key has no team */
    int64_t expires;        /* unix seconds; 0 = never */
    bool blocked;           /* key or team blocked */

    struct lx_scope_limits key;
    bool has_user;
    struct lx_scope_limits user;
    bool has_team;
    struct lx_scope_limits team;

    struct lx_model_limit *model_limits;
    size_t n_model_limits;

    int64_t loaded_at_ms; /* when the record was read (monotonic ms), for the cache TTL */
};

/* Every budget and limit unset, models empty (all). */
void lx_scope_limits_init(struct lx_scope_limits *l);

/*
 * A blank identity with one reference: role internal_user, no limits. The
 * builder fills it before sharing it; after that it is read-only.
 */
struct lx_identity *lx_identity_new(void);
/* The master key's identity (is_master, proxy_admin), one reference. */
struct lx_identity *lx_identity_new_master(void);

/* Thread-safe. unref(NULL) does nothing. */
struct lx_identity *lx_identity_ref(struct lx_identity *id);
void lx_identity_unref(struct lx_identity *id);

#endif
