/*
 * Identity objects: reference counting and construction. An identity is
 * built once (from the master key, or from the store's key, user and team
 * rows) and never changes afterwards, so any thread may read it while it
 * holds a reference.
 */
#include "auth/identity.h"

#include "core/alloc.h"

void lx_scope_limits_init(struct lx_scope_limits *l)
{
    *l = (struct lx_scope_limits){
        .max_budget_nanos = LX_NO_LIMIT,
        .soft_budget_nanos = LX_NO_LIMIT,
        .rpm_limit = LX_NO_LIMIT,
        .tpm_limit = LX_NO_LIMIT,
        .max_parallel_requests = LX_NO_LIMIT,
    };
}

struct lx_identity *lx_identity_new(void)
{
    struct lx_identity *id = LX_NEW(struct lx_identity);
    atomic_init(&id->refs, 1);
    lx_arena_init(&id->arena, NULL, 0, 1024);
    id->role = LX_ROLE_INTERNAL_USER;
    lx_scope_limits_init(&id->key);
    lx_scope_limits_init(&id->user);
    lx_scope_limits_init(&id->team);
    return id;
}

struct lx_identity *lx_identity_new_master(void)
{
    struct lx_identity *id = lx_identity_new();
    id->is_master = true;
    id->role = LX_ROLE_PROXY_ADMIN;
    return id;
}

struct lx_identity *lx_identity_ref(struct lx_identity *id)
{
    atomic_fetch_add_explicit(&id->refs, 1, memory_order_relaxed);
    return id;
}

void lx_identity_unref(struct lx_identity *id)
{
    if (!id) {
        return;
    }
    if (atomic_fetch_sub_explicit(&id->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    lx_arena_fini(&id->arena);
    lx_free(id);
}
