/*
 * Virtual keys: generation, hashing and masking. A key is "sk-" followed by
 * 22 URL-safe base64 characters of 16 random bytes (RAND_bytes), like
 * LiteLLM's secrets.token_urlsafe(16); the store keeps only its SHA-256 hex.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "auth/auth.h"

int lx_auth_key_generate(char *out, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[LX_AUTH_KEY_RANDOM_BYTES];
    if (n < LX_AUTH_KEY_LEN + 1 || RAND_bytes(raw, sizeof(raw)) != 1) {
        return LX_EIO;
    }
    memcpy(out, "sk-", 3);
    size_t o = 3;
    /* 16 bytes = 128 bits = 21 full sextets and 2 bits in a 22nd. */
    unsigned int acc = 0;
    int bits = 0;
    for (size_t i = 0; i < sizeof(raw); i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0) {
        out[o++] = alphabet[(acc << (6 - bits)) & 63];
    }
    out[o] = '\0';
    return 0;
}

void lx_auth_hex(const unsigned char digest[32], char out[65])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = '\0';
}

void lx_auth_key_hash(struct lx_str key, char out[65])
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key.p, key.n, h);
    lx_auth_hex(h, out);
}

bool lx_auth_is_token(struct lx_str s)
{
    if (s.n != 64) {
        return false;
    }
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

void lx_auth_token_of(struct lx_str key_or_token, char out[65])
{
    if (lx_auth_is_token(key_or_token)) {
        memcpy(out, key_or_token.p, 64);
        out[64] = '\0';
        return;
    }
    lx_auth_key_hash(key_or_token, out);
}

void lx_auth_key_mask(struct lx_str key, char *out, size_t n)
{
    if (n == 0) {
        return;
    }
    size_t tail = key.n >= 8 ? 4 : 0;
    snprintf(out, n, "sk-...%.*s", (int)tail, key.p + key.n - tail);
}
