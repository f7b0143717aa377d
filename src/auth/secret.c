/*
 * AES-256-GCM for secrets at rest (see secret.h). The encoding is
 * base64(nonce[12] | ciphertext[n] | tag[16]) behind a version tag, so a
 * later scheme can be told apart and both read during a migration.
 */
#include "auth/secret.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/alloc.h"
#include "core/error.h"

#define NONCE_LEN 12
#define TAG_LEN 16
/* Larger values are not provider keys; refusing them bounds every buffer here. */
#define MAX_PLAIN (64 * 1024)

static struct lx_secret_key salt_key;
static bool salt_read;

void lx_secret_init(void)
{
    if (salt_read) {
        return;
    }
    salt_read = true;
    const char *names[] = {"LLMUX_SALT_KEY", "LITELLM_SALT_KEY"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) {
            lx_secret_key_derive(v, strlen(v), &salt_key);
            return;
        }
    }
}

bool lx_secret_has_salt(void)
{
    return salt_key.is_set;
}

void lx_secret_key_derive(const char *material, size_t n, struct lx_secret_key *out)
{
    unsigned int len = 0;
    EVP_Digest(material, n, out->k, &len, EVP_sha256(), NULL);
    out->is_set = len == 32;
}

int lx_secret_key_get(const char *master_key, struct lx_secret_key *out)
{
    if (salt_key.is_set) {
        *out = salt_key;
        return 0;
    }
    if (master_key && *master_key) {
        lx_secret_key_derive(master_key, strlen(master_key), out);
        return out->is_set ? 0 : LX_EINTERNAL;
    }
    memset(out, 0, sizeof(*out));
    return LX_EINVAL;
}

bool lx_secret_is_encrypted(const char *s)
{
    return s && strncmp(s, LX_SECRET_PREFIX, sizeof(LX_SECRET_PREFIX) - 1) == 0;
}

bool lx_secret_param_is_secret(const char *name)
{
    if (!name) {
        return false;
    }
    size_t n = strlen(name);
    if (n >= 4 && strcmp(name + n - 4, "_key") == 0) {
        return true;
    }
    /* "token" but not "tokens": max_tokens and friends are counts. */
    bool token = strstr(name, "token") && !strstr(name, "tokens");
    return strcmp(name, "api_key") == 0 || strstr(name, "secret") || token ||
           strstr(name, "password") || strstr(name, "credential");
}

/* One AES-256-GCM pass; enc selects the direction. tag is read (decrypt) or written. */
static int gcm(const struct lx_secret_key *key, int enc, const unsigned char *nonce,
               const char *aad, const unsigned char *in, size_t n, unsigned char *out,
               unsigned char *tag)
{
    int ok = 0, len = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c) {
        return LX_ENOMEM;
    }
    ok = EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) &&
         EVP_CipherInit_ex(c, NULL, NULL, key->k, nonce, enc);
    if (ok && aad && *aad) {
        ok = EVP_CipherUpdate(c, NULL, &len, (const unsigned char *)aad, (int)strlen(aad));
    }
    if (ok && n > 0) {
        ok = EVP_CipherUpdate(c, out, &len, in, (int)n);
    }
    if (ok && !enc) {
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag);
    }
    if (ok) {
        ok = EVP_CipherFinal_ex(c, out + (n > 0 ? (size_t)len : 0), &len);
    }
    if (ok && enc) {
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag);
    }
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : (enc ? LX_EINTERNAL : LX_EINVAL);
}

int lx_secret_encrypt(const struct lx_secret_key *key, const char *aad, const char *plain, size_t n,
                      char **out)
{
    *out = NULL;
    if (!key->is_set) {
        return LX_EINVAL;
    }
    if (n > MAX_PLAIN) {
        return LX_ETOOBIG;
    }
    size_t raw_len = NONCE_LEN + n + TAG_LEN;
    unsigned char *raw = lx_try_malloc(raw_len);
    if (!raw) {
        return LX_ENOMEM;
    }
    int rc = 0;
    char *text = NULL;
    if (RAND_bytes(raw, NONCE_LEN) != 1) {
        rc = LX_EINTERNAL;
        goto out;
    }
    rc = gcm(key, 1, raw, aad, (const unsigned char *)plain, n, raw + NONCE_LEN,
             raw + NONCE_LEN + n);
    if (rc) {
        goto out;
    }
    size_t pre = sizeof(LX_SECRET_PREFIX) - 1;
    size_t b64 = 4 * ((raw_len + 2) / 3);
    text = lx_try_malloc(pre + b64 + 1);
    if (!text) {
        rc = LX_ENOMEM;
        goto out;
    }
    memcpy(text, LX_SECRET_PREFIX, pre);
    EVP_EncodeBlock((unsigned char *)text + pre, raw, (int)raw_len);
    text[pre + b64] = '\0';
    *out = text;
out:
    OPENSSL_cleanse(raw, raw_len);
    lx_free(raw);
    return rc;
}

static bool is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

int lx_secret_decrypt(const struct lx_secret_key *key, const char *aad, const char *enc, char **out,
                      size_t *out_len)
{
    *out = NULL;
    if (out_len) {
        *out_len = 0;
    }
    if (!key->is_set || !lx_secret_is_encrypted(enc)) {
        return LX_EINVAL;
    }
    const char *b = enc + sizeof(LX_SECRET_PREFIX) - 1;
    size_t bn = strlen(b);
    if (bn == 0 || bn % 4 != 0 || bn > 4 * ((NONCE_LEN + MAX_PLAIN + TAG_LEN + 2) / 3)) {
        return LX_EINVAL;
    }
    /* Canonical base64 only: padding at the end, nothing else outside the alphabet. */
    size_t pad = 0;
    for (size_t i = 0; i < bn; i++) {
        unsigned char c = (unsigned char)b[i];
        if (c == '=') {
            if (i + 2 < bn) {
                return LX_EINVAL;
            }
            pad++;
        } else if (pad || !is_b64(c)) {
            return LX_EINVAL;
        }
    }
    size_t raw_cap = bn / 4 * 3;
    if (raw_cap < pad + NONCE_LEN + TAG_LEN) {
        return LX_EINVAL;
    }
    unsigned char *raw = lx_try_malloc(raw_cap);
    if (!raw) {
        return LX_ENOMEM;
    }
    int rc = 0;
    char *clear = NULL;
    int got = EVP_DecodeBlock(raw, (const unsigned char *)b, (int)bn);
    if (got < 0 || (size_t)got != raw_cap) {
        rc = LX_EINVAL;
        goto out;
    }
    size_t raw_len = raw_cap - pad;
    size_t n = raw_len - NONCE_LEN - TAG_LEN;
    clear = lx_try_malloc(n + 1);
    if (!clear) {
        rc = LX_ENOMEM;
        goto out;
    }
    rc = gcm(key, 0, raw, aad, raw + NONCE_LEN, n, (unsigned char *)clear, raw + NONCE_LEN + n);
    if (rc) {
        OPENSSL_cleanse(clear, n + 1);
        LX_FREE(clear);
        goto out;
    }
    clear[n] = '\0';
    *out = clear;
    if (out_len) {
        *out_len = n;
    }
out:
    OPENSSL_cleanse(raw, raw_cap);
    lx_free(raw);
    return rc;
}

void lx_secret_free(char *clear)
{
    if (clear) {
        OPENSSL_cleanse(clear, strlen(clear));
    }
    lx_free(clear);
}
