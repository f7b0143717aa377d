/*
 * libFuzzer target for models added at run time: a JSON document (what
 * /model/new receives and lx_models holds) is checked as one model
 * (lx_config_check_model) and loaded as a list of stored models
 * (lx_config_load_with_models). Any input must load, be skipped or be
 * refused cleanly, without leaks or crashes; whatever loads can be looked up.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "config/config.h"
#include "core/alloc.h"
#include "log/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialized;
    if (!initialized) {
        lx_alloc_hook_cjson();
        lx_log_set_level(LX_LOG_CRITICAL);
        initialized = 1;
    }
    cJSON *doc = cJSON_ParseWithLength((const char *)data, size);
    if (!doc) {
        return 0;
    }
    struct lx_error err = {0};
    if (cJSON_IsObject(doc)) {
        int rc = lx_config_check_model(doc, &err);
        if (rc != 0 && (err.code == 0 || !err.msg[0])) {
            abort();
        }
    }
    cJSON *list = doc;
    if (!cJSON_IsArray(doc)) {
        list = cJSON_CreateArray();
        cJSON_AddItemToArray(list, doc);
    }
    struct lx_config *cfg = lx_config_load_with_models(NULL, list, &err);
    if (cfg) {
        if (cfg->n_deployments > (size_t)cJSON_GetArraySize(list)) {
            abort();
        }
        for (size_t i = 0; i < cfg->n_deployments; i++) {
            if (!cfg->deployments[i].id || !cfg->deployments[i].model_name) {
                abort();
            }
            (void)lx_config_find_group(cfg, lx_str_c(cfg->deployments[i].model_name));
            (void)lx_config_find_deployment(cfg, lx_str_c(cfg->deployments[i].id));
        }
        lx_config_unref(cfg);
    }
    cJSON_Delete(list);
    return 0;
}
