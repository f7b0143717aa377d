/*
 * The process: N worker threads, each with its own libuv loop, listening
 * socket (SO_REUSEPORT), curl multi handle and request pipeline, plus the
 * main thread, which owns signals: SIGHUP reloads the config (workers swap
 * snapshots between requests), SIGTERM/SIGINT drain (stop accepting, finish
 * in-flight requests up to general_settings.drain_timeout, exit 0); a second
 * SIGTERM/SIGINT during the drain stops at once.
 */
#ifndef LX_SERVER_SERVER_H
#define LX_SERVER_SERVER_H

#include <stdbool.h>

#include "config/config.h"
#include "core/error.h"

struct lx_store;

struct lx_server_opts {
    const char *config_path; /* NULL: run with cfg as given, SIGHUP does nothing */
    const char *host;
    int port;
    int num_workers;
    bool debug; /* --detailed_debug: DEBUG level whatever the config says */
    /*
     * The store opened from general_settings.database_url, or NULL. Each
     * worker gets a port on it; the caller closes it after lx_server_run.
     */
    struct lx_store *store;
};

/*
 * Run until drained. Takes a reference on cfg. Returns the process exit
 * code (0 after a clean drain), or a negative LX_E* code with err filled
 * when it could not start (the port is taken, ...).
 */
int lx_server_run(const struct lx_server_opts *opts, struct lx_config *cfg, struct lx_error *err);

/* Apply a config's logging settings (log_level, json_logs, set_verbose). */
void lx_server_apply_logging(const struct lx_config *cfg);

#endif
