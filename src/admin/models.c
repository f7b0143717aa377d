/*
 * /model/new, /model/info, /model/delete, and the stored models' way into
 * the config snapshot (see models.h).
 *
 * /model/new checks the entry with the config loader's own rules (a model
 * the gateway could not load is refused with 400, not stored), encrypts the
 * secret litellm_params, stores the row with its audit row in one
 * transaction, then asks the server to rebuild and swap the config; it
 * answers once every worker serves the new model. /model/delete works the
 * same way in reverse. /model/info reads the caller's snapshot: the file's
 * models and the stored ones, secrets masked.
 */
#include "admin/models.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "admin/admin_int.h"
#include "auth/secret.h"
#include "core/alloc.h"
#include "core/rand.h"
#include "core/time.h"
#include "log/log.h"

#define MASK "********"
#define STORE_OFF_MSG "Set `'STORE_MODEL_IN_DB='True'` in your env to enable this feature."

static _Atomic(lx_models_reload_fn) reload_hook;
/* The stored models last read (main thread only), for rebuilds while the database is down. */
static cJSON *last_loaded;
/* Fingerprint of lx_models (ids and update times) when last read; main thread only. */
static unsigned char last_fp[32];
static bool has_fp;

/*
 * XOR of SHA-256("id\nupdated_at") over the rows: independent of row order,
 * and any added, deleted or updated row changes it.
 */
static void fingerprint(const struct lx_store_result *res, unsigned char fp[32])
{
    memset(fp, 0, 32);
    for (size_t i = 0; i < res->n_rows; i++) {
        const char *id = lx_store_cell(res, i, "model_id");
        const char *at = lx_store_cell(res, i, "updated_at");
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        unsigned char md[32];
        unsigned int n = 0;
        if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
            EVP_DigestUpdate(c, id ? id : "", id ? strlen(id) : 0) &&
            EVP_DigestUpdate(c, "\n", 1) &&
            EVP_DigestUpdate(c, at ? at : "", at ? strlen(at) : 0) &&
            EVP_DigestFinal_ex(c, md, &n) && n == 32) {
            for (size_t k = 0; k < 32; k++) {
                fp[k] ^= md[k];
            }
        }
        EVP_MD_CTX_free(c);
    }
}

void lx_models_forget(void)
{
    cJSON_Delete(last_loaded);
    last_loaded = NULL;
    has_fp = false;
}

bool lx_models_store_changed(struct lx_store *s)
{
    struct lx_store_stmt st = {"SELECT model_id, updated_at FROM lx_models", NULL, 0};
    struct lx_store_result *res = NULL;
    struct lx_error err = {0};
    if (lx_store_exec_sync(s, &st, 1, &res, &err)) {
        return false;
    }
    unsigned char fp[32];
    fingerprint(res, fp);
    lx_store_result_free(res);
    return !has_fp || memcmp(fp, last_fp, 32) != 0;
}

void lx_models_set_reload_hook(lx_models_reload_fn fn)
{
    atomic_store(&reload_hook, fn);
}

/* ---- secrets in litellm_params ---- */

/* Put v in the place of it in obj, under its name (cJSON_ReplaceItemViaPointer keeps no name). */
static cJSON *replace_named(cJSON *obj, cJSON *it, cJSON *v)
{
    size_t n = strlen(it->string) + 1;
    v->string = cJSON_malloc(n);
    if (!v->string) {
        cJSON_Delete(v);
        return NULL;
    }
    memcpy(v->string, it->string, n);
    cJSON_ReplaceItemViaPointer(obj, it, v);
    return v;
}

/* A secret that was a JSON document (an object of credentials, say) is stored as JSON_TAG + the
 * encrypted JSON text. */
#define JSON_TAG "json:"

/*
 * Encrypt (enc) or decrypt every secret parameter of a litellm_params object
 * in place: strings, and documents (objects, arrays) as their JSON text. On a
 * decryption failure *bad names the parameter (never its value).
 */
static int crypt_params(cJSON *lp, const struct lx_secret_key *key, bool enc, const char **bad)
{
    cJSON *it;
    cJSON_ArrayForEach(it, lp)
    {
        if (!it->string || !lx_secret_param_is_secret(it->string)) {
            continue;
        }
        bool doc = cJSON_IsObject(it) || cJSON_IsArray(it);
        if (!cJSON_IsString(it) && !(enc && doc)) {
            continue;
        }
        char *out = NULL, *text = NULL;
        int rc;
        if (enc) {
            text = doc ? cJSON_PrintUnformatted(it) : NULL;
            const char *plain = doc ? text : it->valuestring;
            rc = plain ? lx_secret_encrypt(key, it->string, plain, strlen(plain), &out) : LX_ENOMEM;
            if (rc == 0 && doc) {
                size_t n = strlen(out) + sizeof(JSON_TAG);
                char *tagged = lx_malloc(n);
                snprintf(tagged, n, JSON_TAG "%s", out);
                lx_free(out);
                out = tagged;
            }
            if (text) {
                OPENSSL_cleanse(text, strlen(text));
                cJSON_free(text);
            }
        } else {
            const char *v = it->valuestring;
            doc = strncmp(v, JSON_TAG, sizeof(JSON_TAG) - 1) == 0;
            if (doc) {
                v += sizeof(JSON_TAG) - 1;
            }
            if (!lx_secret_is_encrypted(v)) {
                continue; /* stored in clear by an older writer: used as is */
            }
            rc = lx_secret_decrypt(key, it->string, v, &out, NULL);
        }
        if (rc) {
            *bad = it->string;
            return rc;
        }
        cJSON *v = (!enc && doc) ? cJSON_Parse(out) : cJSON_CreateString(out);
        if (enc) {
            lx_free(out);
        } else {
            lx_secret_free(out);
        }
        if (!v && !enc && doc) {
            *bad = it->string;
            return LX_EINVAL;
        }
        if (!v || !(v = replace_named(lp, it, v))) {
            return LX_ENOMEM;
        }
        it = v;
    }
    return 0;
}

static void mask_params(cJSON *lp)
{
    cJSON *it;
    cJSON_ArrayForEach(it, lp)
    {
        if (it->string && lx_secret_param_is_secret(it->string) &&
            (cJSON_IsString(it) || cJSON_IsObject(it) || cJSON_IsArray(it))) {
            cJSON *v = cJSON_CreateString(MASK);
            if (!v || !(v = replace_named(lp, it, v))) {
                return;
            }
            it = v;
        }
    }
}

/* ---- loading at start and on rebuilds ---- */

/* A stored model's model_info: its id, and db_model true. */
static void set_id(cJSON *info, const char *id)
{
    cJSON_DeleteItemFromObjectCaseSensitive(info, "id");
    cJSON_AddStringToObject(info, "id", id);
    cJSON_DeleteItemFromObjectCaseSensitive(info, "db_model");
    cJSON_AddTrueToObject(info, "db_model");
}

cJSON *lx_models_load_stored(struct lx_store *s, const struct lx_config *file_cfg,
                             struct lx_error *err)
{
    struct lx_store_stmt st = {"SELECT model_id, model_name, litellm_params, model_info, "
                               "updated_at FROM lx_models ORDER BY created_at, model_id",
                               NULL, 0};
    struct lx_store_result *res = NULL;
    if (lx_store_exec_sync(s, &st, 1, &res, err)) {
        return NULL;
    }
    fingerprint(res, last_fp);
    has_fp = true;
    struct lx_secret_key key;
    bool has_key = lx_secret_key_get(file_cfg->general.master_key, &key) == 0;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < res->n_rows; i++) {
        const char *id = lx_store_cell(res, i, "model_id");
        const char *name = lx_store_cell(res, i, "model_name");
        const char *lps = lx_store_cell(res, i, "litellm_params");
        const char *mis = lx_store_cell(res, i, "model_info");
        cJSON *lp = lps ? cJSON_Parse(lps) : NULL;
        cJSON *mi = mis ? cJSON_Parse(mis) : NULL;
        if (!cJSON_IsObject(mi)) {
            cJSON_Delete(mi);
            mi = cJSON_CreateObject();
        }
        const char *bad = NULL;
        int rc = cJSON_IsObject(lp) ? 0 : LX_EINVAL;
        if (rc == 0) {
            struct lx_secret_key none = {{0}, false};
            rc = crypt_params(lp, has_key ? &key : &none, false, &bad);
        }
        if (rc || !id || !name) {
            if (bad) {
                LX_WARN("stored model '%s' (id %s) skipped: its litellm_params.%s does not "
                        "decrypt (another LLMUX_SALT_KEY or master key, or an altered value)",
                        name ? name : "?", id ? id : "?", bad);
            } else {
                LX_WARN("stored model '%s' (id %s) skipped: unreadable row", name ? name : "?",
                        id ? id : "?");
            }
            cJSON_Delete(lp);
            cJSON_Delete(mi);
            continue;
        }
        set_id(mi, id);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "model_name", name);
        cJSON_AddItemToObject(m, "litellm_params", lp);
        cJSON_AddItemToObject(m, "model_info", mi);
        cJSON_AddItemToArray(arr, m);
    }
    memset(&key, 0, sizeof(key));
    lx_store_result_free(res);
    if (!arr) {
        lx_error_set(err, LX_ENOMEM, "out of memory reading the stored models");
    }
    return arr;
}

struct lx_config *lx_models_config_load(const char *path, struct lx_store *s, struct lx_error *err)
{
    struct lx_config *file = lx_config_load_with_models(path, NULL, err);
    if (!file || !s || !file->general.store_model_in_db) {
        return file;
    }
    struct lx_error serr = {0};
    cJSON *models = lx_models_load_stored(s, file, &serr);
    if (models) {
        cJSON_Delete(last_loaded);
        last_loaded = cJSON_Duplicate(models, true);
    } else if (last_loaded) {
        /* The database is unreachable: keep serving the models read last time. */
        LX_WARN("cannot read the stored models (%s); using the ones read before", serr.msg);
        models = cJSON_Duplicate(last_loaded, true);
    }
    if (!models) {
        LX_WARN("the stored models are left out of this config: %s", serr.msg);
        return file;
    }
    if (cJSON_GetArraySize(models) == 0) {
        cJSON_Delete(models);
        return file;
    }
    struct lx_config *cfg = lx_config_load_with_models(path, models, err);
    cJSON_Delete(models);
    if (cfg) {
        lx_config_unref(file);
        return cfg;
    }
    LX_WARN("the stored models are left out of this config: %s", err->msg);
    return file;
}

/* ---- /model/info ---- */

static void add_str(cJSON *o, const char *k, const char *v)
{
    if (v) {
        cJSON_AddStringToObject(o, k, v);
    }
}

static void add_num(cJSON *o, const char *k, double v)
{
    if (v >= 0) {
        cJSON_AddNumberToObject(o, k, v);
    }
}

cJSON *lx_models_params_json(const struct lx_deployment *d)
{
    cJSON *o = cJSON_CreateObject();
    add_str(o, "model", d->model);
    add_str(o, "custom_llm_provider", d->custom_llm_provider);
    add_str(o, "api_base", d->api_base);
    add_str(o, "api_version", d->api_version);
    add_str(o, "organization", d->organization);
    add_str(o, "region_name", d->region_name);
    add_str(o, "aws_region_name", d->aws_region_name);
    if (d->api_key) {
        cJSON_AddStringToObject(o, "api_key", MASK);
    }
    if (d->aws_access_key_id) {
        cJSON_AddStringToObject(o, "aws_access_key_id", MASK);
    }
    if (d->aws_secret_access_key) {
        cJSON_AddStringToObject(o, "aws_secret_access_key", MASK);
    }
    if (d->aws_session_token) {
        cJSON_AddStringToObject(o, "aws_session_token", MASK);
    }
    add_num(o, "timeout", d->timeout);
    add_num(o, "stream_timeout", d->stream_timeout);
    add_num(o, "max_retries", d->max_retries);
    add_num(o, "rpm", (double)d->rpm);
    add_num(o, "tpm", (double)d->tpm);
    if (d->weight != 1) {
        add_num(o, "weight", d->weight);
    }
    add_num(o, "order", d->order);
    add_num(o, "input_cost_per_token", d->input_cost_per_token);
    add_num(o, "output_cost_per_token", d->output_cost_per_token);
    if (d->has_mock_response) {
        cJSON_AddStringToObject(o, "mock_response", d->mock_response);
    }
    if (d->n_extra_headers) {
        /* Header values are often credentials: names only. */
        cJSON *h = cJSON_AddObjectToObject(o, "extra_headers");
        for (size_t i = 0; h && i < d->n_extra_headers; i++) {
            cJSON_AddStringToObject(h, d->extra_headers[i].key, MASK);
        }
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, d->extra_params)
    {
        if (it->string && !cJSON_GetObjectItemCaseSensitive(o, it->string)) {
            cJSON_AddItemToObject(o, it->string, cJSON_Duplicate(it, true));
        }
    }
    mask_params(o);
    return o;
}

static cJSON *deployment_json(const struct lx_deployment *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_name", d->model_name);
    cJSON_AddItemToObject(o, "litellm_params", lx_models_params_json(d));
    cJSON *mi = d->model_info ? cJSON_Duplicate(d->model_info, true) : cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(mi, "id");
    cJSON_AddStringToObject(mi, "id", d->id);
    if (!cJSON_GetObjectItemCaseSensitive(mi, "db_model")) {
        cJSON_AddFalseToObject(mi, "db_model");
    }
    add_str(mi, "mode", d->mode && !cJSON_GetObjectItemCaseSensitive(mi, "mode") ? d->mode : NULL);
    cJSON_AddItemToObject(o, "model_info", mi);
    return o;
}

static bool list_allows(const struct lx_strlist *l, const char *model)
{
    if (l->n == 0) {
        return true;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->items[i], model) == 0 || strcmp(l->items[i], "*") == 0 ||
            strcmp(l->items[i], "all-proxy-models") == 0) {
            return true;
        }
    }
    return false;
}

/* Non-admin callers see the models their key, user and team may use. */
static bool caller_may_use(const struct lx_identity *c, const char *model)
{
    if (lx_admin_can_read_all(c)) {
        return true;
    }
    return list_allows(&c->key.models, model) &&
           (!c->has_user || list_allows(&c->user.models, model)) &&
           (!c->has_team || list_allows(&c->team.models, model));
}

void lx_admin__model_info(struct lx_admin_ctx *ctx)
{
    const char *id = lx_admin_query(ctx, "litellm_model_id");
    if (id && !*id) {
        id = NULL;
    }
    const struct lx_config *cfg = ctx->cfg;
    cJSON *doc = cJSON_CreateObject();
    cJSON *data = cJSON_AddArrayToObject(doc, "data");
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        const struct lx_deployment *d = &cfg->deployments[i];
        if ((id && strcmp(d->id, id) != 0) || !caller_may_use(ctx->caller, d->model_name)) {
            continue;
        }
        cJSON_AddItemToArray(data, deployment_json(d));
    }
    if (id && cJSON_GetArraySize(data) == 0) {
        cJSON_Delete(doc);
        lx_admin_respond_error_param(ctx, 404, "litellm_model_id",
                                     "Model id = %s not found on litellm proxy", id);
        return;
    }
    lx_admin_answer(ctx, doc);
}

/* ---- /model/new and /model/delete ---- */

struct model_op {
    const char *model_id;
    cJSON *answer; /* sent once the new config is in place */
};

static void reloaded(void *ud, int rc)
{
    struct lx_admin_ctx *ctx = ud;
    struct model_op *m = ctx->ud;
    if (rc) {
        /* The change is stored: the next rebuild (SIGHUP, another change, a restart) applies it. */
        LX_WARN("model %s: the config could not be rebuilt now (%s); it applies on the next "
                "rebuild",
                m->model_id, lx_strerror(rc));
    }
    cJSON *answer = m->answer; /* m lives in the context, which the answer frees */
    m->answer = NULL;
    lx_admin_answer(ctx, answer);
}

static void apply_and_answer(struct lx_admin_ctx *ctx)
{
    lx_models_reload_fn fn = atomic_load(&reload_hook);
    if (fn && fn(reloaded, ctx) == 0) {
        return;
    }
    reloaded(ctx, fn ? LX_EUNAVAIL : 0);
}

static void model_new_done(void *ud, int rc, const struct lx_store_result *res,
                           const struct lx_error *err)
{
    (void)res;
    struct lx_admin_ctx *ctx = ud;
    struct model_op *m = ctx->ud;
    if (rc == LX_ECONFLICT) {
        cJSON_Delete(m->answer);
        lx_admin_respond_error_param(ctx, 409, "model_info.id", "Model id = %s already exists",
                                     m->model_id);
        return;
    }
    if (rc) {
        cJSON_Delete(m->answer);
        lx_admin_respond_store_error(ctx, rc, err);
        return;
    }
    apply_and_answer(ctx);
}

static bool store_models_enabled(struct lx_admin_ctx *ctx)
{
    if (!ctx->cfg->general.store_model_in_db) {
        lx_admin_respond_error(ctx, 400, STORE_OFF_MSG);
        return false;
    }
    return true;
}

/*
 * Validate, encrypt and store an entry {"model_name", "litellm_params" (secrets in clear),
 * "model_info" (with id and db_model)}, taken over; then rebuild and answer. update: the row
 * exists (UPDATE) rather than new (INSERT).
 */
static void store_entry(struct lx_admin_ctx *ctx, cJSON *entry, bool update)
{
    struct model_op *m = ctx->ud;
    cJSON *params = cJSON_GetObjectItemCaseSensitive(entry, "litellm_params");
    cJSON *info = cJSON_GetObjectItemCaseSensitive(entry, "model_info");
    const char *name = cJSON_GetObjectItemCaseSensitive(entry, "model_name")->valuestring;
    /* The entry as the loader will see it: refused now rather than skipped at every load. */
    struct lx_error err = {0};
    if (lx_config_check_model(entry, &err)) {
        cJSON_Delete(entry);
        lx_admin_respond_error_param(ctx, 400, "litellm_params", "Invalid model: %s", err.msg);
        return;
    }
    const char *bad = NULL;
    struct lx_secret_key key;
    if (lx_secret_key_get(ctx->cfg->general.master_key, &key) != 0) {
        /* Without a key nothing secret can be stored; a model without secrets is fine. */
        cJSON *it;
        cJSON_ArrayForEach(it, params)
        {
            bool valued = cJSON_IsString(it) || cJSON_IsObject(it) || cJSON_IsArray(it);
            if (valued && it->string && lx_secret_param_is_secret(it->string)) {
                cJSON_Delete(entry);
                lx_admin_respond_error_param(
                    ctx, 400, it->string,
                    "litellm_params.%s cannot be stored: set LLMUX_SALT_KEY (or "
                    "general_settings.master_key) to encrypt secrets at rest",
                    it->string);
                return;
            }
        }
    }
    int rc = crypt_params(params, &key, true, &bad);
    memset(&key, 0, sizeof(key));
    char *lp_s = rc ? NULL : cJSON_PrintUnformatted(params);
    char *mi_s = rc ? NULL : cJSON_PrintUnformatted(info);
    if (!lp_s || !mi_s) {
        cJSON_free(lp_s);
        cJSON_free(mi_s);
        cJSON_Delete(entry);
        lx_admin_respond_error(ctx, 500, "cannot encrypt the model's secrets");
        return;
    }
    /* What the answer and the audit log show: the entry with secrets masked. */
    mask_params(params);
    m->answer = cJSON_CreateObject();
    cJSON_AddStringToObject(m->answer, "model_id", m->model_id);
    cJSON_AddStringToObject(m->answer, "model_name", name);
    cJSON_AddItemToObject(m->answer, "litellm_params", cJSON_Duplicate(params, true));
    cJSON_AddItemToObject(m->answer, "model_info", cJSON_Duplicate(info, true));
    if (!update) {
        cJSON_AddStringToObject(m->answer, "created_by", lx_admin_caller_name(ctx));
    }
    cJSON_AddStringToObject(m->answer, "updated_by", lx_admin_caller_name(ctx));

    int64_t now = lx_wall_s();
    struct lx_admin__batch b;
    lx_admin__batch_init(&b, ctx, 2);
    struct lx_store_param *p;
    if (update) {
        p = lx_admin__batch_add(&b,
                                "UPDATE lx_models SET model_name = $2, litellm_params = $3, "
                                "model_info = $4, updated_at = $5 WHERE model_id = $1",
                                5);
        p[4] = LX_SP_I(now);
    } else {
        p = lx_admin__batch_add(
            &b,
            "INSERT INTO lx_models (model_id, model_name, litellm_params, model_info, created_by, "
            "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            6);
        p[4] = LX_SP_T(lx_admin_caller_name(ctx));
        p[5] = LX_SP_I(now);
    }
    p[0] = LX_SP_T(m->model_id);
    p[1] = LX_SP_T(lx_admin__dup(ctx, name));
    p[2] = LX_SP_T(lx_admin__dup(ctx, lp_s));
    p[3] = LX_SP_T(lx_admin__dup(ctx, mi_s));
    cJSON_free(lp_s);
    cJSON_free(mi_s);
    lx_admin__batch_audit(&b, update ? "updated" : "created", "lx_models", m->model_id, NULL,
                          entry);
    cJSON_Delete(entry);
    rc = lx_store_exec(ctx->port, b.stmts, b.n, model_new_done, ctx);
    if (rc) {
        cJSON_Delete(m->answer);
        m->answer = NULL;
        lx_admin_respond_store_error(ctx, rc, NULL);
    }
}

/* model_info with its id and db_model set by llmux. */
static cJSON *info_with_id(const cJSON *mi, const char *id)
{
    cJSON *info = cJSON_IsObject(mi) ? cJSON_Duplicate(mi, true) : cJSON_CreateObject();
    set_id(info, id);
    return info;
}

void lx_admin__model_new(struct lx_admin_ctx *ctx)
{
    if (!store_models_enabled(ctx)) {
        return;
    }
    const cJSON *body = ctx->body;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "model_name");
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(body, "litellm_params");
    const cJSON *mi = cJSON_GetObjectItemCaseSensitive(body, "model_info");
    if (!cJSON_IsString(name) || !name->valuestring[0]) {
        lx_admin_respond_error_param(ctx, 400, "model_name", "model_name (a string) is required");
        return;
    }
    if (!cJSON_IsObject(lp)) {
        lx_admin_respond_error_param(ctx, 400, "litellm_params",
                                     "litellm_params (an object with at least 'model') is "
                                     "required");
        return;
    }
    if (mi && !cJSON_IsNull(mi) && !cJSON_IsObject(mi)) {
        lx_admin_respond_error_param(ctx, 400, "model_info", "model_info must be an object");
        return;
    }
    const cJSON *idj = cJSON_GetObjectItemCaseSensitive(mi, "id");
    if (idj && !cJSON_IsNull(idj) &&
        (!cJSON_IsString(idj) || !lx_admin__valid_id(idj->valuestring))) {
        lx_admin_respond_error_param(ctx, 400, "model_info.id",
                                     "model_info.id must be a non-empty string");
        return;
    }
    struct model_op *m = lx_admin__state(ctx, sizeof(*m));
    if (cJSON_IsString(idj)) {
        m->model_id = lx_admin__dup(ctx, idj->valuestring);
    } else {
        char id[37];
        lx_uuid4(id);
        m->model_id = lx_admin__dup(ctx, id);
    }
    if (lx_config_find_deployment(ctx->cfg, lx_str_c(m->model_id))) {
        lx_admin_respond_error_param(ctx, 409, "model_info.id", "Model id = %s already exists",
                                     m->model_id);
        return;
    }
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddStringToObject(entry, "model_name", name->valuestring);
    cJSON_AddItemToObject(entry, "litellm_params", cJSON_Duplicate(lp, true));
    cJSON_AddItemToObject(entry, "model_info", info_with_id(mi, m->model_id));
    store_entry(ctx, entry, false);
}

/* ---- /model/update ---- */

/*
 * The stored row of the model to change was read: false when answered (no
 * such row: 400 for a model of the config file, else 404).
 * fix says what to do with one of the config file ("change it in").
 */
static bool row_found(struct lx_admin_ctx *ctx, const struct lx_store_result *res,
                      const char *param, const char *fix)
{
    const struct model_op *m = ctx->ud;
    if (res->n_rows) {
        return true;
    }
    if (lx_config_find_deployment(ctx->cfg, lx_str_c(m->model_id))) {
        lx_admin_respond_error_param(ctx, 400, param,
                                     "Model id = %s is defined in the config file, not stored: "
                                     "%s the config file",
                                     m->model_id, fix);
    } else {
        lx_admin_respond_error_param(ctx, 404, param, "Model with id=%s not found in db",
                                     m->model_id);
    }
    return false;
}

/* Overlay the non-null members of `over` on `base` (both objects). */
static void overlay(cJSON *base, const cJSON *over)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, over)
    {
        if (!it->string || cJSON_IsNull(it)) {
            continue;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(base, it->string);
        cJSON_AddItemToObject(base, it->string, cJSON_Duplicate(it, true));
    }
}

static void model_update_row(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct model_op *m = ctx->ud;
    if (!row_found(ctx, res, "model_info.id", "change it in")) {
        return;
    }
    const cJSON *body = ctx->body;
    const char *lps = lx_store_cell(res, 0, "litellm_params");
    const char *mis = lx_store_cell(res, 0, "model_info");
    cJSON *params = lps ? cJSON_Parse(lps) : NULL;
    cJSON *old_info = mis ? cJSON_Parse(mis) : NULL;
    if (!cJSON_IsObject(params)) {
        cJSON_Delete(params);
        params = cJSON_CreateObject();
    }
    /* The stored secrets in clear, unless the update gives them again. */
    const char *bad = NULL;
    struct lx_secret_key key;
    bool has_key = lx_secret_key_get(ctx->cfg->general.master_key, &key) == 0;
    struct lx_secret_key none = {{0}, false};
    const cJSON *new_lp = cJSON_GetObjectItemCaseSensitive(body, "litellm_params");
    int rc = crypt_params(params, has_key ? &key : &none, false, &bad);
    /* A secret that does not decrypt but is given again is dropped; the rest still decrypt. */
    while (rc == LX_EINVAL && bad && cJSON_GetObjectItemCaseSensitive(new_lp, bad)) {
        cJSON_DeleteItemFromObjectCaseSensitive(params, bad);
        bad = NULL;
        rc = crypt_params(params, has_key ? &key : &none, false, &bad);
    }
    memset(&key, 0, sizeof(key));
    if (rc) {
        char which[128];
        snprintf(which, sizeof(which), "%s", bad ? bad : "?"); /* bad lives in params */
        cJSON_Delete(params);
        cJSON_Delete(old_info);
        lx_admin_respond_error_param(ctx, 400, "litellm_params",
                                     "the stored litellm_params.%s does not decrypt (another "
                                     "LLMUX_SALT_KEY or master key): give it again",
                                     which);
        return;
    }
    overlay(params, new_lp);
    cJSON *info = info_with_id(old_info, m->model_id);
    cJSON_Delete(old_info);
    overlay(info, cJSON_GetObjectItemCaseSensitive(body, "model_info"));
    set_id(info, m->model_id);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "model_name");
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddStringToObject(entry, "model_name",
                            cJSON_IsString(name) && name->valuestring[0]
                                ? name->valuestring
                                : lx_store_cell(res, 0, "model_name"));
    cJSON_AddItemToObject(entry, "litellm_params", params);
    cJSON_AddItemToObject(entry, "model_info", info);
    store_entry(ctx, entry, true);
}

void lx_admin__model_update(struct lx_admin_ctx *ctx)
{
    if (!store_models_enabled(ctx)) {
        return;
    }
    const cJSON *body = ctx->body;
    const cJSON *mi = cJSON_GetObjectItemCaseSensitive(body, "model_info");
    const cJSON *idj = cJSON_GetObjectItemCaseSensitive(mi, "id");
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(body, "litellm_params");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "model_name");
    if (!cJSON_IsString(idj) || !lx_admin__valid_id(idj->valuestring)) {
        lx_admin_respond_error_param(ctx, 400, "model_info.id",
                                     "model_info.id (the model to update) is required");
        return;
    }
    if ((lp && !cJSON_IsNull(lp) && !cJSON_IsObject(lp)) || (mi && !cJSON_IsObject(mi))) {
        lx_admin_respond_error_param(ctx, 400, "litellm_params",
                                     "litellm_params and model_info must be objects");
        return;
    }
    if (name && !cJSON_IsNull(name) && !cJSON_IsString(name)) {
        lx_admin_respond_error_param(ctx, 400, "model_name", "model_name must be a string");
        return;
    }
    struct model_op *m = lx_admin__state(ctx, sizeof(*m));
    m->model_id = lx_admin__dup(ctx, idj->valuestring);
    struct lx_store_param p[1] = {LX_SP_T(m->model_id)};
    struct lx_store_stmt s = {"SELECT model_id, model_name, litellm_params, model_info FROM "
                              "lx_models WHERE model_id = $1",
                              p, 1};
    lx_admin_run(ctx, &s, 1, model_update_row);
}

static void model_delete_done(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    (void)res;
    struct model_op *m = ctx->ud;
    m->answer = cJSON_CreateObject();
    char msg[600];
    snprintf(msg, sizeof(msg), "Model: %s deleted successfully", m->model_id);
    cJSON_AddStringToObject(m->answer, "message", msg);
    apply_and_answer(ctx);
}

static void model_delete_row(struct lx_admin_ctx *ctx, const struct lx_store_result *res)
{
    struct model_op *m = ctx->ud;
    if (!row_found(ctx, res, "id", "remove it from")) {
        return;
    }
    /* The audit row keeps the model without its (encrypted) secrets. */
    cJSON *before = cJSON_CreateObject();
    cJSON_AddStringToObject(before, "model_name", lx_store_cell(res, 0, "model_name"));
    const char *lps = lx_store_cell(res, 0, "litellm_params");
    cJSON *lp = lps ? cJSON_Parse(lps) : NULL;
    if (lp) {
        mask_params(lp);
        cJSON_AddItemToObject(before, "litellm_params", lp);
    }
    cJSON *after = cJSON_CreateObject(); /* stored as "{}" */
    struct lx_admin__batch b;
    lx_admin__batch_init(&b, ctx, 2);
    lx_admin__batch_audit(&b, "deleted", "lx_models", m->model_id, before, after);
    cJSON_Delete(before);
    cJSON_Delete(after);
    struct lx_store_param *p =
        lx_admin__batch_add(&b, "DELETE FROM lx_models WHERE model_id = $1", 1);
    p[0] = LX_SP_T(m->model_id);
    lx_admin__batch_run(&b, model_delete_done);
}

void lx_admin__model_delete(struct lx_admin_ctx *ctx)
{
    if (!store_models_enabled(ctx)) {
        return;
    }
    struct model_op *m = lx_admin__state(ctx, sizeof(*m));
    if (lx_admin__field_id(ctx, ctx->body, "id", &m->model_id, NULL)) {
        return;
    }
    if (!m->model_id) {
        lx_admin_respond_error_param(ctx, 400, "id", "id (the model's id) is required");
        return;
    }
    struct lx_store_param p[1] = {LX_SP_T(m->model_id)};
    struct lx_store_stmt s = {"SELECT model_id, model_name, litellm_params FROM lx_models WHERE "
                              "model_id = $1",
                              p, 1};
    lx_admin_run(ctx, &s, 1, model_delete_row);
}
