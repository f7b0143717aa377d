/*
 * libFuzzer target for secrets at rest: lx_secret_decrypt reads values from
 * the database, which an attacker with write access to it controls. Any input
 * either decrypts (only an authentic value can) or fails with LX_EINVAL and
 * no output; and a value encrypted here always decrypts back to the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/secret.h"
#include "core/alloc.h"
#include "core/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lx_secret_key key;
    lx_secret_key_derive("fuzz", 4, &key);
    char *in = lx_malloc(size + 1);
    memcpy(in, data, size);
    in[size] = '\0';

    char *out = NULL;
    size_t n = 0;
    int rc = lx_secret_decrypt(&key, "api_key", in, &out, &n);
    if (rc == 0) {
        if (!out || strlen(out) > n) {
            abort();
        }
        lx_secret_free(out);
    } else if (rc != LX_EINVAL || out) {
        abort();
    }

    /* Round trip of the input as a clear value (up to its first NUL). */
    size_t len = strlen(in);
    char *enc = NULL;
    if (lx_secret_encrypt(&key, "api_key", in, len, &enc) == 0) {
        if (lx_secret_decrypt(&key, "api_key", enc, &out, &n) != 0 || n != len ||
            memcmp(out, in, len) != 0) {
            abort();
        }
        lx_secret_free(out);
        lx_free(enc);
    }
    lx_free(in);
    return 0;
}
