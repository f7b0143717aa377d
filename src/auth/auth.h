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
#include <stddef.h>
#include <stdint.h>

#include "auth/identity.h"
#include "config/config.h"
#include "core/error.h"
#include "core/str.h"
#include "store/store.h"

/* ---- keys (auth/token.c) ---- */

#define LX_AUTH_KEY_RANDOM_BYTES 16
#define LX_AUTH_KEY_LEN 25 /* "sk-" + 22 */

/* A new key into out (at least LX_AUTH_KEY_LEN + 1 bytes). Returns 0 or LX_EIO. */
int lx_auth_key_generate(char *out, size_t n);
/* SHA-256 of the key, lower-case hex: the store's lx_keys.token. */
void lx_auth_key_hash(struct lx_str key, char out[65]);
/* A 32-byte digest as 64 lower-case hex digits. */
void lx_auth_hex(const unsigned char digest[32], char out[65]);
/* 64 lower-case hex digits: already a token, not a key. */
bool lx_auth_is_token(struct lx_str s);
/* The token of a key, or the token itself (admin routes accept both, as LiteLLM's do). */
void lx_auth_token_of(struct lx_str key_or_token, char out[65]);
/* The masked form shown in listings: "sk-...wxyz". */
void lx_auth_key_mask(struct lx_str key, char *out, size_t n);

/* ---- resolving a key (auth/auth.c) ---- */

struct lx_auth_lookup;

/*
 * Completion of a store lookup, on the port's loop: rc 0 with `id` (a
 * reference the callee now owns), LX_EAUTH (no such key), LX_EUNAVAIL (the
 * store is down and the key is not cached) or LX_ECANCELED (shutdown).
 */
typedef void (*lx_auth_cb)(void *ud, int rc, struct lx_identity *id);

/*
 * Resolve a virtual key to its identity. `sha256` is the key's digest (32
 * bytes) when the caller has it already, else NULL. Returns 0 with *out_id (a new
 * reference) when the cache answers; LX_EAGAIN when a store lookup started
 * (cb runs later, exactly once, unless cancelled; *out_lookup is its handle);
 * LX_EUNAVAIL when the store is down and the key is not cached; LX_EAUTH for
 * a key that cannot be a virtual key. Loop thread of `port`.
 */
int lx_auth_resolve(struct lx_store *store, struct lx_store_port *port, struct lx_str key,
                    const unsigned char *sha256, struct lx_identity **out_id, lx_auth_cb cb,
                    void *ud, struct lx_auth_lookup **out_lookup);
/* The request went away: cb will not run. */
void lx_auth_lookup_cancel(struct lx_auth_lookup *l);

/*
 * Why an identity may not be used now (expired, blocked), as LiteLLM words
 * it, without the key; NULL when it may. `now` is unix seconds.
 */
const char *lx_auth_check(const struct lx_identity *id, int64_t now, char *buf, size_t n);

/*
 * May `id` call model group `model`? The key's, the user's and the team's
 * lists must all allow it (an empty list, "*", "all-proxy-models" allow
 * everything; a trailing star allows a prefix; a key's "all-team-models" defers
 * to the team). On refusal returns false and writes LiteLLM's message into
 * buf and the error type into *out_type.
 */
bool lx_auth_model_allowed(const struct lx_identity *id, struct lx_str model, char *buf, size_t n,
                           const char **out_type);

/*
 * The statement that reads a key with its user and team (one parameter: the
 * token), and the identity built from one of its rows (one reference;
 * loaded_at_ms = now). NULL on a malformed row.
 */
extern const char lx_auth_lookup_sql[];
struct lx_identity *lx_auth_identity_from_row(const struct lx_store_result *r, size_t row);

/* ---- start-up and the CLI (auth/users.c) ---- */

/*
 * Create or update the users of user_config: the values present in YAML win
 * over the stored ones, spend and everything else is kept. Blocking (the
 * store's sync API): at start, not on a loop thread.
 */
int lx_auth_sync_users(struct lx_store *store, const struct lx_config *cfg, struct lx_error *err);

/*
 * --generate_key: create a key for an existing user (with the user's models,
 * budget and limits) and write it into out. LX_ENOTFOUND (err names the
 * user) when there is no such user. Blocking.
 */
int lx_auth_generate_user_key(struct lx_store *store, const char *user_id, char *out, size_t n,
                              struct lx_error *err);

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
