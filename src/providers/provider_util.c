/* Helpers shared by the translating providers; see provider_util.h. */
#include "providers/provider_util.h"

#include <stdint.h>
#include <string.h>

#include "core/rand.h"
#include "json/writer.h"

void lx_provider__call_id(char out[LX_PROVIDER_CALL_ID_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = lx_rand_u64(), b = lx_rand_u64();
    memcpy(out, "call_", 5);
    for (int i = 0; i < 16; i++) {
        out[5 + i] = hex[(a >> (i * 4)) & 15];
    }
    for (int i = 0; i < 8; i++) {
        out[21 + i] = hex[(b >> (i * 4)) & 15];
    }
    out[29] = '\0';
}

long long lx_provider__token_count(const cJSON *obj, const char *key)
{
    const cJSON *v = lx_json_get(obj, key);
    if (!v || cJSON_IsNull(v)) {
        return 0;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > LX_PROVIDER_MAX_TOKENS) {
        return -1;
    }
    return (long long)v->valuedouble;
}

const cJSON *lx_provider__param(const struct lx_provider_call *call, const char *key)
{
    const cJSON *v = lx_json_get(call->json, key);
    if (!v && call->dep && call->dep->extra_params) {
        v = lx_json_get(call->dep->extra_params, key);
    }
    return cJSON_IsNull(v) ? NULL : v;
}

void lx_provider__add_header(struct lx_provider_request *out, const char *name, struct lx_str value)
{
    if (out->n_headers < LX_PROVIDER_MAX_HEADERS) {
        out->headers[out->n_headers++] = (struct lx_upstream_header){name, value};
    }
}
