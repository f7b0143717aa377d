/*
 * libFuzzer target for what the admin API and auth read from a client
 * before any check: query strings (lx_admin__query_find, lx_admin__url_decode)
 * and model names against access lists (lx_auth_model_allowed). A found value
 * lies inside the input; a decoded value is never longer than its raw form
 * and holds no NUL; decoding into a buffer one byte too small fails cleanly.
 * A model name is allowed by an empty list, by a list naming it exactly, and
 * the refusal message always names the model's prefix.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "auth/auth.h"
#include "core/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_query(struct lx_str q)
{
    static const char *names[] = {"key", "page", "size", "user_id", "return_full_object", "a", ""};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct lx_str v = lx_admin__query_find(q, names[i]);
        if (!v.p) {
            continue;
        }
        if (v.p < q.p || v.p + v.n > q.p + q.n) {
            abort();
        }
        char *out = lx_malloc(v.n + 1);
        if (lx_admin__url_decode(v, out, v.n + 1)) {
            size_t n = strlen(out);
            if (n > v.n) {
                abort();
            }
            /* Exactly enough room succeeds; one byte less fails. */
            if (n > 0) {
                char *small = lx_malloc(n);
                if (lx_admin__url_decode(v, small, n)) {
                    abort();
                }
                lx_free(small);
            }
        }
        lx_free(out);
    }
}

static void check_model(struct lx_str model)
{
    struct lx_identity *id = lx_identity_new();
    char msg[512];
    const char *type = NULL;
    if (!lx_auth_model_allowed(id, model, msg, sizeof(msg), &type)) {
        abort(); /* empty lists allow everything */
    }
    const char *items[] = {"gpt-4o", "openai/*", NULL};
    char *exact = lx_arena_strndup(&id->arena, model.p, model.n);
    items[2] = exact;
    id->key.models.items = items;
    id->key.models.n = memchr(model.p, '\0', model.n) ? 2 : 3;
    bool ok = lx_auth_model_allowed(id, model, msg, sizeof(msg), &type);
    if (id->key.models.n == 3 && !ok) {
        abort();
    }
    if (!ok && (!type || !strstr(msg, "Tried to access"))) {
        abort();
    }
    id->key.models.items = NULL;
    id->key.models.n = 0;
    lx_identity_unref(id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lx_str in = {(const char *)data, size};
    check_query(in);
    check_model(in);
    char tok[65];
    lx_auth_token_of(in, tok);
    if (strlen(tok) != 64 || !lx_auth_is_token(lx_str_c(tok))) {
        abort();
    }
    return 0;
}
