/*
 * libFuzzer target for the database_url parser. Any input either parses or
 * fails with LX_EINVAL (never another code: no allocation fails here) and a
 * message. On success the libpq pairs are NULL-terminated C strings and a
 * password (in the user info or the query) shows as "***" in the redacted URL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "store/store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = lx_malloc(size + 1);
    memcpy(url, data, size);
    url[size] = '\0';
    struct lx_store__url u;
    struct lx_error err = {0};
    int rc = lx_store__url_parse(url, &u, &err);
    if (rc == 0) {
        if (!u.redacted) {
            abort();
        }
        if (u.kind == LX_STORE_SQLITE && (!u.path || !*u.path)) {
            abort();
        }
        if (u.kind == LX_STORE_POSTGRES) {
            if (u.keys[u.n_kv] || u.vals[u.n_kv]) {
                abort();
            }
            for (size_t i = 0; i < u.n_kv; i++) {
                if (!u.keys[i] || !u.vals[i]) {
                    abort();
                }
                /* A non-empty password, wherever it came from, shows as *** when redacted. */
                if ((strcmp(u.keys[i], "password") == 0 || strcmp(u.keys[i], "sslpassword") == 0) &&
                    u.vals[i][0] && !strstr(u.redacted, "***")) {
                    abort();
                }
            }
        }
        lx_store__url_fini(&u);
    } else if (rc != LX_EINVAL || err.code != LX_EINVAL || !err.msg[0]) {
        abort();
    }
    lx_free(url);
    return 0;
}
