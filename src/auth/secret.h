/*
 * Secrets at rest: provider keys and other secret litellm_params of models
 * stored through /model/new are kept in the store encrypted with AES-256-GCM.
 *
 * The key is the SHA-256 of LLMUX_SALT_KEY (or LITELLM_SALT_KEY) when one is
 * set, else of the master key. Each value gets a random 96-bit nonce and is
 * stored as tagged text: "lxenc:v1:" + base64(nonce | ciphertext | 16-byte
 * tag). The parameter's name is bound in as additional authenticated data, so
 * a value copied to another parameter fails to decrypt like a tampered one.
 *
 * Every function is pure computation on caller memory (any thread). Neither
 * the key nor a clear value ever reaches a log or an error message.
 */
#ifndef LX_AUTH_SECRET_H
#define LX_AUTH_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "core/compiler.h"

#define LX_SECRET_PREFIX "lxenc:v1:"

struct lx_secret_key {
    unsigned char k[32];
    bool is_set;
};

/*
 * Read LLMUX_SALT_KEY / LITELLM_SALT_KEY once, at start, before any worker
 * runs (later reloads that setenv cannot race with it). Idempotent.
 */
void lx_secret_init(void);

/* True when a salt key was found by lx_secret_init. */
bool lx_secret_has_salt(void);

/*
 * The encryption key: SHA-256 of the salt key read by lx_secret_init, else
 * of master_key (may be NULL). Returns 0, or LX_EINVAL (out->is_set false)
 * when neither is set.
 */
int lx_secret_key_get(const char *master_key, struct lx_secret_key *out) LX_MUST_CHECK;

/* SHA-256 of `material` (n bytes) as the key. */
void lx_secret_key_derive(const char *material, size_t n, struct lx_secret_key *out);

/* Whether s is an encrypted value ("lxenc:v1:..."). */
bool lx_secret_is_encrypted(const char *s);

/*
 * Whether a litellm_params name holds a secret: api_key, aws_secret_access_key,
 * aws_session_token, and any name ending in "_key" or containing "secret",
 * "token" (not "tokens": max_tokens is a count), "password" or "credential".
 */
bool lx_secret_param_is_secret(const char *name);

/*
 * Encrypt n bytes of plain text bound to `aad` (the parameter name; may be
 * NULL). On success *out is a NUL-terminated lx_malloc'd string the caller
 * frees. Returns 0, LX_ENOMEM, or LX_EINTERNAL (OpenSSL failure).
 */
int lx_secret_encrypt(const struct lx_secret_key *key, const char *aad, const char *plain, size_t n,
                      char **out) LX_MUST_CHECK;

/*
 * Decrypt an "lxenc:v1:" value. On success *out is the NUL-terminated clear
 * text (lx_malloc'd; the caller wipes and frees it with lx_secret_free) and
 * *out_len (may be NULL) its length. Returns 0, LX_EINVAL (not an encrypted
 * value, bad encoding, wrong key or tampered: the same answer, on purpose),
 * or LX_ENOMEM.
 */
int lx_secret_decrypt(const struct lx_secret_key *key, const char *aad, const char *enc, char **out,
                      size_t *out_len) LX_MUST_CHECK;

/* Wipe a NUL-terminated clear value and free it. NULL is fine. */
void lx_secret_free(char *clear);

#endif
