/* Shared between the files of the auth module (and its unit tests). */
#ifndef LX_AUTH_AUTH_INT_H
#define LX_AUTH_AUTH_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"

/*
 * A new reference to the cached identity of `token`, or NULL. *out_fresh
 * tells whether it was loaded less than the TTL ago (monotonic ms).
 */
struct lx_identity *lx_auth_cache_get(const char *token, uint64_t now_ms, bool *out_fresh);
/* The invalidation generation; read it before a store lookup starts. */
uint64_t lx_auth_cache_gen(void);
/*
 * Cache `id` (a reference is taken) under id->token, replacing an older
 * entry, unless an invalidation happened since `gen`.
 */
void lx_auth_cache_put(struct lx_identity *id, uint64_t gen);
size_t lx_auth_cache_size(void);

#endif
