/* Helpers shared by the translating providers; see provider_util.h. */
#include "providers/provider_util.h"

#include <stdint.h>
#include <string.h>

#include "core/rand.h"
#include "core/time.h"
#include "http/sse.h"
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

void lx_provider__chunk_begin(struct lx_jw *w, struct lx_buf *chunk, const char *id,
                              int64_t created, const char *model)
{
    lx_buf_reset(chunk);
    lx_jw_init(w, chunk);
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "id", lx_str_c(id));
    lx_jw_kstr(w, "object", LX_STR("chat.completion.chunk"));
    lx_jw_kint(w, "created", (long long)created);
    lx_jw_kstr(w, "model", lx_str_c(model));
}

void lx_provider__choice_begin(struct lx_jw *w, long long index)
{
    lx_jw_key(w, "choices");
    lx_jw_open(w, '[');
    lx_jw_open(w, '{');
    lx_jw_kint(w, "index", index);
    lx_jw_key(w, "delta");
    lx_jw_open(w, '{');
}

void lx_provider__choice_end(struct lx_jw *w, const char *finish)
{
    lx_jw_close(w, '}');
    lx_jw_klit(w, "logprobs", "null");
    lx_jw_key(w, "finish_reason");
    if (finish) {
        lx_jw_str(w, lx_str_c(finish));
    } else {
        lx_jw_lit(w, "null");
    }
    lx_jw_close(w, '}');
    lx_jw_close(w, ']');
}

int lx_provider__chunk_emit(struct lx_jw *w, struct lx_buf *out)
{
    lx_jw_close(w, '}');
    if (w->rc) {
        return w->rc;
    }
    return lx_sse_append_event(out, LX_STR(""), lx_buf_str(w->b));
}

void lx_provider__tool_call(struct lx_jw *w, size_t index, const char *id, struct lx_str name,
                            struct lx_str args)
{
    lx_jw_open(w, '{');
    lx_jw_kint(w, "index", (long long)index);
    lx_jw_kstr(w, "id", lx_str_c(id));
    lx_jw_kstr(w, "type", LX_STR("function"));
    lx_jw_key(w, "function");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "name", name);
    lx_jw_kstr(w, "arguments", args);
    lx_jw_close(w, '}');
    lx_jw_close(w, '}');
}

void lx_provider__message_begin(struct lx_jw *w, struct lx_str id, struct lx_str model)
{
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "id", id);
    lx_jw_kstr(w, "object", LX_STR("chat.completion"));
    lx_jw_kint(w, "created", (long long)lx_wall_s());
    lx_jw_kstr(w, "model", model);
    lx_jw_key(w, "choices");
    lx_jw_open(w, '[');
    lx_jw_open(w, '{');
    lx_jw_kint(w, "index", 0);
    lx_jw_key(w, "message");
    lx_jw_open(w, '{');
    lx_jw_kstr(w, "role", LX_STR("assistant"));
}
