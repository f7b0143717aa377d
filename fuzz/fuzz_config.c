/*
 * libFuzzer target for the YAML config loader: any input must load or fail
 * cleanly, without leaks, crashes or unbounded time. A loaded snapshot is
 * also queried (group and deployment lookups) and released.
 */
#include <stddef.h>
#include <stdint.h>

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
    struct lx_error err;
    struct lx_config *cfg = lx_config_load_string("fuzz.yaml", (const char *)data, size, &err);
    if (!cfg) {
        return 0;
    }
    (void)lx_config_find_group(cfg, LX_STR("gpt-4"));
    (void)lx_config_find_group(cfg, LX_STR("openai/gpt-4o"));
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        (void)lx_config_find_group(cfg, lx_str_c(cfg->deployments[i].model_name));
        (void)lx_config_find_deployment(cfg, lx_str_c(cfg->deployments[i].id));
    }
    lx_config_unref(cfg);
    return 0;
}
