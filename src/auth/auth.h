/*
 * Authentication: a presented key resolved to an identity (auth/identity.h).
 *
 * The cache is process-wide (every worker shares it) and maps the key's
 * SHA-256 hex to an identity reference. Entries are fresh for a TTL (30 s by
 * default); a stale entry is re-read from the store, and is still used while
 * the store is down. "Not found" is never cached. Admin changes made by this
 * process invalidate the entries they affect at once; another process's
 * changes show after the TTL. Every function here is thread-safe.
 */
#ifndef LX_AUTH_AUTH_H
#define LX_AUTH_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "auth/identity.h"

/* Freshness of cached identities, in milliseconds (default 30000). */
void lx_auth_cache_set_ttl_ms(uint64_t ttl_ms);

/*
 * Drop the cached identities of a key (SHA-256 hex of the key), of every key
 * of a user, or of every key of a team; or all of them. Call after the
 * store confirmed a change.
 */
void lx_auth_invalidate_token(const char *token);
void lx_auth_invalidate_user(const char *user_id);
void lx_auth_invalidate_team(const char *team_id);
void lx_auth_invalidate_all(void);

#endif
