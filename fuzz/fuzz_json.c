/*
 * libFuzzer target for the JSON rewriter and lx_json_find_top. Whatever the
 * scanner accepts, cJSON must accept too; the output of every successful
 * rewrite must parse with cJSON and carry the edits (model replaced, stream
 * removed, user present); a found value must parse on its own and, unless
 * the body has keys cJSON cannot compare (embedded \u0000), equal cJSON's
 * first-occurrence lookup. lx_json_append_string output must always parse.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"
#include "json/json.h"

static cJSON *parse(struct lx_str s)
{
    return cJSON_ParseWithLength(s.p, s.n);
}

static void check_rewrite(struct lx_str body, bool accepted_by_cjson)
{
    static const struct lx_json_edit edits[] = {
        {LX_STR("model"), LX_STR("\"gpt-4o\""), LX_JSON_SET},
        {LX_STR("stream"), LX_STR_NULL, LX_JSON_REMOVE},
        {LX_STR("user"), LX_STR("{\"id\":[1,2.5e3,null]}"), LX_JSON_SET_IF_ABSENT},
    };
    struct lx_buf out;
    lx_buf_init(&out, 1 << 22);
    int rc = lx_json_rewrite(body, edits, LX_ARRAY_LEN(edits), &out);
    if (rc == 0) {
        if (!accepted_by_cjson) {
            abort(); /* we are stricter than cJSON, never laxer */
        }
        cJSON *j = parse(lx_buf_str(&out));
        if (!j) {
            abort();
        }
        /* cJSON's keys are C strings: "model\u0000" reads as "model" there. */
        if (!memmem(body.p, body.n, "\\u0000", 6)) {
            cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
            if (!cJSON_IsString(model) || strcmp(model->valuestring, "gpt-4o") != 0 ||
                cJSON_GetObjectItemCaseSensitive(j, "stream") ||
                !cJSON_GetObjectItemCaseSensitive(j, "user")) {
                abort();
            }
        }
        cJSON_Delete(j);
        /* The edits are idempotent: rewriting the output again changes nothing. */
        struct lx_buf again;
        lx_buf_init(&again, 1 << 22);
        if (lx_json_rewrite(lx_buf_str(&out), edits, LX_ARRAY_LEN(edits), &again) != 0 ||
            !lx_str_eq(lx_buf_str(&again), lx_buf_str(&out))) {
            abort();
        }
        lx_buf_fini(&again);
    } else if (rc != LX_EINVAL) {
        abort();
    }
    if (rc != 0 && out.len != 0) {
        abort();
    }
    lx_buf_fini(&out);

    /* Identity without edits. */
    lx_buf_init(&out, 1 << 22);
    rc = lx_json_rewrite(body, NULL, 0, &out);
    if (rc == 0 && !lx_str_eq(lx_buf_str(&out), body)) {
        abort();
    }
    lx_buf_fini(&out);
}

static void check_find(struct lx_str body, const char *key)
{
    struct lx_str v;
    int rc = lx_json_find_top(body, lx_str_c(key), &v);
    if (rc != 0) {
        if (rc != LX_EINVAL && rc != LX_ENOTFOUND) {
            abort();
        }
        return;
    }
    if (v.p < body.p || v.p + v.n > body.p + body.n) {
        abort();
    }
    cJSON *val = parse(v);
    if (!val) {
        abort();
    }
    /*
     * Compare printed forms, not cJSON_Compare: that looks object members up by
     * name, so nested duplicate keys, and infinities (inf - inf is NaN), never
     * compare equal even for the same bytes.
     */
    if (!memmem(body.p, body.n, "\\u0000", 6)) {
        cJSON *j = parse(body);
        cJSON *first = cJSON_GetObjectItemCaseSensitive(j, key);
        char *a = first ? cJSON_PrintUnformatted(first) : NULL;
        char *b = cJSON_PrintUnformatted(val);
        bool same = a && b && strcmp(a, b) == 0;
        bool printed = first && a && b; /* printing may fail under allocation limits */
        cJSON_free(a);
        cJSON_free(b);
        cJSON_Delete(j);
        if (!first || (printed && !same)) {
            abort();
        }
    }
    cJSON_Delete(val);
}

/* One multi-key pass must agree with one lx_json_find_top per key. */
static void check_find_many(struct lx_str body)
{
    const struct lx_str keys[] = {LX_STR("model"), LX_STR("stream"), LX_STR("messages")};
    struct lx_str many[3];
    int rc = lx_json_find_top_many(body, keys, 3, many);
    for (size_t i = 0; i < 3; i++) {
        struct lx_str one = LX_STR_NULL;
        int r1 = lx_json_find_top(body, keys[i], &one);
        if ((rc == LX_EINVAL) != (r1 == LX_EINVAL)) {
            abort();
        }
        if (rc == 0 && (one.p != many[i].p || one.n != many[i].n)) {
            abort();
        }
        if (rc == 0 && many[i].p && many[i].p[0] == '"') {
            char out[64];
            size_t n;
            int sr = lx_json_string_value(many[i], out, sizeof(out), &n);
            if (sr != 0 && sr != LX_ETOOBIG) {
                abort();
            }
        }
    }
}

static void check_escape(struct lx_str s)
{
    struct lx_buf out;
    lx_buf_init(&out, 1 << 22);
    if (lx_json_append_string(&out, s) != 0) {
        abort();
    }
    cJSON *j = parse(lx_buf_str(&out));
    if (!cJSON_IsString(j)) {
        abort();
    }
    /* Our own scanner accepts it as a value too. */
    struct lx_buf obj;
    lx_buf_init(&obj, 1 << 22);
    struct lx_str v;
    if (lx_buf_append_c(&obj, "{\"k\":") || lx_buf_append_str(&obj, lx_buf_str(&out)) ||
        lx_buf_append_c(&obj, "}") || lx_json_find_top(lx_buf_str(&obj), LX_STR("k"), &v) != 0) {
        abort();
    }
    cJSON_Delete(j);
    lx_buf_fini(&obj);
    lx_buf_fini(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int hooked;
    if (!hooked) {
        lx_alloc_hook_cjson();
        hooked = 1;
    }
    struct lx_str body = {(const char *)data, size};
    cJSON *j = parse(body);
    bool accepted = j != NULL;
    cJSON_Delete(j);
    check_rewrite(body, accepted);
    check_find(body, "model");
    check_find(body, "messages");
    check_find_many(body);
    if (size < 4096) {
        check_escape(body);
    }
    return 0;
}
