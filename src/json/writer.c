/* The JSON writer and cJSON accessors; see writer.h for the contract. */
#include "json/writer.h"

#include <string.h>

#include "core/assert.h"
#include "core/error.h"
#include "json/json.h"

void lx_jw_init(struct lx_jw *w, struct lx_buf *b)
{
    memset(w, 0, sizeof(*w));
    w->b = b;
    w->first[0] = true;
}

static void jw_raw(struct lx_jw *w, const char *p, size_t n)
{
    if (!w->rc) {
        w->rc = lx_buf_append(w->b, p, n);
    }
}

#define JW_LIT(w, lit) jw_raw((w), (lit), sizeof(lit) - 1)

/* The comma before a value, unless it follows a key or opens a container. */
static void jw_sep(struct lx_jw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth]) {
        JW_LIT(w, ",");
    }
    w->first[w->depth] = false;
}

void lx_jw_key(struct lx_jw *w, const char *key)
{
    if (!w->first[w->depth]) {
        JW_LIT(w, ",");
    }
    w->first[w->depth] = false;
    JW_LIT(w, "\"");
    jw_raw(w, key, strlen(key));
    JW_LIT(w, "\":");
    w->after_key = true;
}

void lx_jw_open(struct lx_jw *w, char c)
{
    jw_sep(w);
    jw_raw(w, &c, 1);
    LX_ASSERT(w->depth + 1 < LX_JW_MAX_DEPTH); /* our own structure, never input-driven */
    w->depth++;
    w->first[w->depth] = true;
}

void lx_jw_close(struct lx_jw *w, char c)
{
    jw_raw(w, &c, 1);
    w->depth--;
}

void lx_jw_str(struct lx_jw *w, struct lx_str s)
{
    jw_sep(w);
    if (!w->rc) {
        w->rc = lx_json_append_string(w->b, s);
    }
}

void lx_jw_lit(struct lx_jw *w, const char *lit)
{
    jw_sep(w);
    jw_raw(w, lit, strlen(lit));
}

void lx_jw_int(struct lx_jw *w, long long v)
{
    jw_sep(w);
    if (!w->rc) {
        w->rc = lx_buf_printf(w->b, "%lld", v);
    }
}

void lx_jw_cjson(struct lx_jw *w, const cJSON *v)
{
    jw_sep(w);
    if (w->rc) {
        return;
    }
    char *s = cJSON_PrintUnformatted(v);
    if (!s) {
        w->rc = LX_ENOMEM;
        return;
    }
    w->rc = lx_buf_append_c(w->b, s);
    cJSON_free(s);
}

void lx_jw_kstr(struct lx_jw *w, const char *key, struct lx_str s)
{
    lx_jw_key(w, key);
    lx_jw_str(w, s);
}

void lx_jw_klit(struct lx_jw *w, const char *key, const char *lit)
{
    lx_jw_key(w, key);
    lx_jw_lit(w, lit);
}

void lx_jw_kint(struct lx_jw *w, const char *key, long long v)
{
    lx_jw_key(w, key);
    lx_jw_int(w, v);
}

const cJSON *lx_json_get(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

struct lx_str lx_json_str_of(const cJSON *v)
{
    return cJSON_IsString(v) && v->valuestring ? lx_str_c(v->valuestring) : LX_STR_NULL;
}
