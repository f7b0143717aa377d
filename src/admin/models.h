/*
 * Models added at run time (/model/new, /model/delete, stored in lx_models
 * when general_settings.store_model_in_db is true) and their place in the
 * running config: a snapshot is the config file's model_list plus the stored
 * models, built on the main thread at start, on SIGHUP, and after every
 * /model/new or /model/delete, and swapped in on every worker.
 *
 * Secret litellm_params (auth/secret.h) are stored encrypted and decrypted
 * only while a snapshot is built; a model whose secret does not decrypt
 * (another key, an altered value) is left out with a warning naming the
 * model, never the value.
 */
#ifndef LX_ADMIN_MODELS_H
#define LX_ADMIN_MODELS_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "core/error.h"
#include "store/store.h"

/* Completion of a config rebuild: rc 0 once every worker uses the new snapshot. */
typedef void (*lx_models_done_cb)(void *ud, int rc);

/*
 * Rebuild the config with the store's models and swap it in on every
 * worker. Called on a worker's loop thread; returns 0 and cb runs later on
 * that thread, exactly once; or returns an error and cb never runs.
 */
typedef int (*lx_models_reload_fn)(lx_models_done_cb cb, void *ud);

/* Installed by the server before the workers start; NULL = no rebuild (answers at once). */
void lx_models_set_reload_hook(lx_models_reload_fn fn);

/*
 * The stored models as the JSON array lx_config_load_with_models takes
 * (secrets decrypted; model_info.id and db_model set). Caller deletes it.
 * Blocking: start-up and the main thread only. NULL with err set when the
 * store cannot be read.
 */
cJSON *lx_models_load_stored(struct lx_store *s, const struct lx_config *file_cfg,
                             struct lx_error *err);

/*
 * The config file (path may be NULL) plus, when a store is open and
 * store_model_in_db is true, the stored models. Blocking; main thread. While
 * the store cannot be read, the models read last time are used (none at the
 * first load), with a warning.
 */
struct lx_config *lx_models_config_load(const char *path, struct lx_store *s, struct lx_error *err);

/*
 * Whether lx_models changed since lx_models_load_stored last read it
 * (another gateway on the same database added or deleted a model). Blocking;
 * main thread. False while the database cannot be read.
 */
bool lx_models_store_changed(struct lx_store *s);

/* Forget the models kept for rebuilds while the database is down (at exit; main thread). */
void lx_models_forget(void);

/* litellm_params of a deployment as JSON, secrets masked (what /model/info shows). */
cJSON *lx_models_params_json(const struct lx_deployment *d);

#endif
