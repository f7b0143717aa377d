/*
 * Unit tests for run-time models (src/admin/models.c) and the admin row
 * helpers (src/admin/rows.c): stored models read back with their secrets
 * decrypted, a tampered or foreign secret skips its model, the config built
 * from a file plus the store, change detection, masking in /model/info, and
 * store rows as LiteLLM-shaped JSON. Runs on a SQLite file, or on
 * LX_TEST_PG_URL when set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "admin/models.h"
#include "auth/secret.h"
#include "lx_test.h"

static char g_url[512];
static char g_dir[64];

static struct lx_store *open_store(void)
{
    struct lx_error err = {0};
    struct lx_store *s = lx_store_open(g_url, &err);
    if (!s) {
        fprintf(stderr, "  store: %s\n", err.msg);
    }
    return s;
}

static int exec1(struct lx_store *s, const char *sql, const struct lx_store_param *p, size_t n)
{
    struct lx_store_stmt st = {sql, p, n};
    struct lx_error err = {0};
    int rc = lx_store_exec_sync(s, &st, 1, NULL, &err);
    if (rc) {
        fprintf(stderr, "  exec: %s\n", err.msg);
    }
    return rc;
}

static int insert_model(struct lx_store *s, const char *id, const char *name, const char *params)
{
    struct lx_store_param p[] = {LX_SP_T(id), LX_SP_T(name), LX_SP_T(params), LX_SP_I(1000)};
    return exec1(s,
                 "INSERT INTO lx_models (model_id, model_name, litellm_params, model_info, "
                 "created_at, updated_at) VALUES ($1, $2, $3, '{\"note\":\"x\"}', $4, $4)",
                 p, 4);
}

static char *params_with_key(const char *master, const char *model, const char *clear)
{
    struct lx_secret_key k;
    lx_secret_key_derive(master, strlen(master), &k);
    char *enc = NULL;
    if (lx_secret_encrypt(&k, "api_key", clear, strlen(clear), &enc)) {
        return NULL;
    }
    char *out = lx_malloc(strlen(enc) + 256);
    snprintf(out, strlen(enc) + 256,
             "{\"model\":\"%s\",\"api_base\":\"http://127.0.0.1:9/v1\",\"api_key\":\"%s\"}", model,
             enc);
    lx_free(enc);
    return out;
}

static const struct cJSON *find_model(const cJSON *arr, const char *name)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "model_name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) {
            return m;
        }
    }
    return NULL;
}

LX_TEST(stored_models_round_trip)
{
    struct lx_store *s = open_store();
    LX_CHECK(s != NULL);
    if (!s) {
        return;
    }
    struct lx_error err = {0};
    struct lx_config *file =
        lx_config_load_string("t.yaml",
                              "general_settings:\n  master_key: sk-master\n"
                              "  store_model_in_db: true\n",
                              strlen("general_settings:\n  master_key: sk-master\n"
                                     "  store_model_in_db: true\n"),
                              &err);
    LX_CHECK(file != NULL);
    char *good = params_with_key("sk-master", "openai/gpt-4o", "sk-provider-good");
    char *foreign = params_with_key("another-master", "openai/gpt-4o", "sk-provider-foreign");
    char *tampered = params_with_key("sk-master", "openai/gpt-4o", "sk-provider-tampered");
    LX_CHECK(good && foreign && tampered);
    if (!file || !good || !foreign || !tampered) {
        goto out;
    }
    /* Flip one character of the ciphertext. */
    char *c = strstr(tampered, "lxenc:v1:") + 20;
    *c = *c == 'A' ? 'B' : 'A';
    LX_CHECK_INT(insert_model(s, "id-good", "good", good), 0);
    LX_CHECK_INT(insert_model(s, "id-foreign", "foreign", foreign), 0);
    LX_CHECK_INT(insert_model(s, "id-tampered", "tampered", tampered), 0);
    LX_CHECK_INT(insert_model(s, "id-clear", "clear",
                              "{\"model\":\"openai/x\",\"api_key\":\"os.environ/LX_T_KEY\"}"),
                 0);

    cJSON *arr = lx_models_load_stored(s, file, &err);
    LX_CHECK(arr != NULL);
    LX_CHECK_INT(cJSON_GetArraySize(arr), 2);
    const cJSON *g = find_model(arr, "good");
    LX_CHECK(g != NULL);
    if (g) {
        const cJSON *lp = cJSON_GetObjectItemCaseSensitive(g, "litellm_params");
        const cJSON *mi = cJSON_GetObjectItemCaseSensitive(g, "model_info");
        LX_CHECK_STR(cJSON_GetObjectItemCaseSensitive(lp, "api_key")->valuestring,
                     "sk-provider-good");
        LX_CHECK_STR(cJSON_GetObjectItemCaseSensitive(mi, "id")->valuestring, "id-good");
        LX_CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mi, "db_model")));
        LX_CHECK_STR(cJSON_GetObjectItemCaseSensitive(mi, "note")->valuestring, "x");
    }
    LX_CHECK(find_model(arr, "foreign") == NULL);
    LX_CHECK(find_model(arr, "tampered") == NULL);
    LX_CHECK(find_model(arr, "clear") != NULL);
    cJSON_Delete(arr);
    LX_CHECK(!lx_models_store_changed(s));

    /* The config: file models (none) plus the stored ones, os.environ/ resolved now. */
    setenv("LX_T_KEY", "sk-from-env", 1);
    char path[128];
    snprintf(path, sizeof(path), "%s/config.yaml", g_dir[0] ? g_dir : "/tmp");
    FILE *f = fopen(path, "w");
    LX_CHECK(f != NULL);
    if (f) {
        fputs("model_list:\n  - model_name: file-model\n    litellm_params:\n"
              "      model: openai/gpt-4o\n      api_key: sk-file\n"
              "general_settings:\n  master_key: sk-master\n  store_model_in_db: true\n",
              f);
        fclose(f);
        struct lx_config *cfg = lx_models_config_load(path, s, &err);
        LX_CHECK(cfg != NULL);
        if (cfg) {
            LX_CHECK_INT(cfg->n_deployments, 3);
            const struct lx_deployment *d = lx_config_find_deployment(cfg, LX_STR("id-good"));
            LX_CHECK(d && strcmp(d->api_key, "sk-provider-good") == 0);
            d = lx_config_find_deployment(cfg, LX_STR("id-clear"));
            LX_CHECK(d && strcmp(d->api_key, "sk-from-env") == 0);
            /* /model/info's view masks every secret. */
            cJSON *pj = lx_models_params_json(d);
            char *txt = cJSON_PrintUnformatted(pj);
            LX_CHECK(txt && !strstr(txt, "sk-from-env") && strstr(txt, "\"api_key\":\"********\""));
            cJSON_free(txt);
            cJSON_Delete(pj);
            lx_config_unref(cfg);
        }
        unlink(path);
    }
    unsetenv("LX_T_KEY");

    /* Another writer adds a model: the fingerprint tells. */
    LX_CHECK_INT(insert_model(s, "id-later", "later", "{\"model\":\"openai/y\"}"), 0);
    LX_CHECK(lx_models_store_changed(s));
    arr = lx_models_load_stored(s, file, &err);
    LX_CHECK(!lx_models_store_changed(s));
    cJSON_Delete(arr);
out:
    lx_models_forget();
    exec1(s, "DELETE FROM lx_models", NULL, 0);
    lx_free(good);
    lx_free(foreign);
    lx_free(tampered);
    lx_config_unref(file);
    lx_store_close(s);
}

LX_TEST(check_model)
{
    struct lx_error err = {0};
    cJSON *m = cJSON_Parse("{\"model_name\":\"x\",\"litellm_params\":{\"model\":\"openai/x\","
                           "\"rpm\":10},\"model_info\":{\"id\":\"a\"}}");
    LX_CHECK_INT(lx_config_check_model(m, &err), 0);
    cJSON_Delete(m);
    m = cJSON_Parse("{\"model_name\":\"x\",\"litellm_params\":{\"model\":\"bogus/x\"},"
                    "\"model_info\":{\"id\":\"a\"}}");
    LX_CHECK_INT(lx_config_check_model(m, &err), LX_ECONFIG);
    LX_CHECK(strstr(err.msg, "bogus") != NULL);
    cJSON_Delete(m);
    m = cJSON_Parse("{\"model_name\":\"x\",\"litellm_params\":{\"model\":\"openai/x\","
                    "\"timeout\":\"soon\",\"api_key\":\"sk-do-not-show\"},"
                    "\"model_info\":{\"id\":\"a\"}}");
    LX_CHECK_INT(lx_config_check_model(m, &err), LX_ECONFIG);
    LX_CHECK(strstr(err.msg, "timeout") != NULL);
    LX_CHECK(strstr(err.msg, "sk-do-not-show") == NULL);
    cJSON_Delete(m);
}

LX_TEST(row_json)
{
    char *cols[] = {"user_id",  "max_budget_nanos", "spend_nanos", "created_at", "models",
                    "metadata", "rpm_limit",        "blocked",     "token",      "budget_reset_at"};
    char *cells[] = {"u1",        "12500000000", "0", "0",   "[\"a\",\"b\"]",
                     "{\"k\":1}", "7",           "1", "abc", NULL};
    struct lx_store_result r = {.n_rows = 1, .n_cols = 10, .cols = cols, .cells = cells};
    static const char *const skip[] = {"token", NULL};
    cJSON *o = lx_admin__row_json(&r, 0, skip);
    char *s = cJSON_PrintUnformatted(o);
    LX_CHECK_STR(s, "{\"user_id\":\"u1\",\"max_budget\":12.5,\"spend\":0,\"created_at\":"
                    "\"1970-01-01T00:00:00Z\",\"models\":[\"a\",\"b\"],\"metadata\":{\"k\":1},"
                    "\"rpm_limit\":7,\"blocked\":true,\"budget_reset_at\":null}");
    cJSON_free(s);
    cJSON_Delete(o);
}

static void setup(void)
{
    lx_secret_init();
    const char *pg = getenv("LX_TEST_PG_URL");
    if (pg && pg[0]) {
        snprintf(g_url, sizeof(g_url), "%s", pg);
        return;
    }
    snprintf(g_dir, sizeof(g_dir), "/tmp/lx-test-models-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(g_url, sizeof(g_url), "sqlite:///%s/models.db", g_dir);
}

static void teardown(void)
{
    static const char *files[] = {"models.db", "models.db-wal", "models.db-shm"};
    if (!g_dir[0]) {
        return;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s/%s", g_dir, files[i]);
        unlink(p);
    }
    rmdir(g_dir);
}

LX_TEST_MAIN(setup(), LX_RUN(stored_models_round_trip), LX_RUN(check_model), LX_RUN(row_json),
             teardown())
