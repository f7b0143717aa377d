/*
 * llmux entry point: command line, config, start. Wiring only; the process
 * model lives in server/, the request path in proxy/.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "admin/models.h"
#include "auth/auth.h"
#include "auth/secret.h"
#include "config/config.h"
#include "core/alloc.h"
#include "core/str.h"
#include "log/log.h"
#include "server/server.h"
#include "spend/prices.h"
#include "store/store.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: llmux [--config FILE] [--port N] [--host ADDR] [--num_workers N]\n"
               "             [--check] [--detailed_debug] [--version] [--help]\n"
               "       llmux --config FILE --generate_key --user_id USER\n"
               "\n"
               "  --config FILE      LiteLLM-compatible config.yaml\n"
               "  --port N           port to listen on (default 4000; 0 picks a free one)\n"
               "  --host ADDR        address to listen on (default 0.0.0.0)\n"
               "  --num_workers N    worker threads (default: number of CPU cores)\n"
               "  --check            validate the config and exit\n"
               "  --detailed_debug   log at DEBUG level\n"
               "  --generate_key     create a virtual key for --user_id and print it\n");
}

struct args {
    const char *config;
    const char *host;
    const char *user_id;
    long port;
    long workers;
    bool check;
    bool debug;
    bool generate_key;
};

static int parse_long(const char *name, const char *v, long lo, long hi, long *out)
{
    unsigned long long n;
    if (!v || lx_str_to_u64(lx_str_c(v), (unsigned long long)hi, &n) || (long)n < lo) {
        fprintf(stderr, "llmux: %s expects an integer between %ld and %ld\n", name, lo, hi);
        return -1;
    }
    *out = (long)n;
    return 0;
}

/* Accepts "--flag value" and "--flag=value", and dashes or underscores in names. */
static int parse_args(int argc, char **argv, struct args *a)
{
    for (int i = 1; i < argc; i++) {
        char name[64];
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
        if (n >= sizeof(name)) {
            n = sizeof(name) - 1;
        }
        memcpy(name, arg, n);
        name[n] = '\0';
        for (char *p = name + 2; *p; p++) {
            if (*p == '-') {
                *p = '_';
            }
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
        bool takes = strcmp(name, "--config") == 0 || strcmp(name, "--port") == 0 ||
                     strcmp(name, "--host") == 0 || strcmp(name, "--num_workers") == 0 ||
                     strcmp(name, "--user_id") == 0;
        if (takes && !eq) {
            i++;
        }
        if (takes && !val) {
            fprintf(stderr, "llmux: %s needs a value\n", name);
            return -1;
        }
        if (strcmp(name, "--config") == 0 || strcmp(name, "__c") == 0) {
            a->config = val;
        } else if (strcmp(name, "--port") == 0) {
            if (parse_long("--port", val, 0, 65535, &a->port)) {
                return -1;
            }
        } else if (strcmp(name, "--host") == 0) {
            a->host = val;
        } else if (strcmp(name, "--num_workers") == 0) {
            if (parse_long("--num_workers", val, 1, 256, &a->workers)) {
                return -1;
            }
        } else if (strcmp(name, "--user_id") == 0) {
            a->user_id = val;
        } else if (strcmp(name, "--check") == 0) {
            a->check = true;
        } else if (strcmp(name, "--detailed_debug") == 0 || strcmp(name, "--debug") == 0) {
            a->debug = true;
        } else if (strcmp(name, "--generate_key") == 0) {
            a->generate_key = true;
        } else if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(name, "--version") == 0 || strcmp(name, "-v") == 0) {
            printf("llmux %s\n", LX_VERSION);
            exit(0);
        } else {
            fprintf(stderr, "llmux: unknown option '%s'\n", arg);
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

/*
 * --generate_key --user_id U: write user_config to the store (the user may
 * exist only there so far), create a key for U, print it alone on stdout.
 * A gateway running on the same database accepts it at once: its cache
 * never remembers a key as unknown.
 */
static int generate_key(const struct lx_config *cfg, const char *user_id)
{
    if (!user_id || !user_id[0]) {
        fprintf(stderr, "llmux: --generate_key needs --user_id USER\n");
        return 2;
    }
    if (!cfg->general.database_url) {
        fprintf(stderr, "llmux: --generate_key needs general_settings.database_url in the "
                        "config (the key store)\n");
        return 1;
    }
    struct lx_error err = {0};
    struct lx_store *store = lx_store_open(cfg->general.database_url, &err);
    if (!store) {
        fprintf(stderr, "llmux: cannot open the database: %s\n", err.msg);
        return 1;
    }
    char key[512];
    int rc = lx_auth_sync_users(store, cfg, &err);
    if (rc == 0) {
        rc = lx_auth_generate_user_key(store, user_id, key, sizeof(key), &err);
    }
    lx_store_close(store);
    if (rc) {
        fprintf(stderr, "llmux: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", key);
    fflush(stdout);
    OPENSSL_cleanse(key, sizeof(key));
    return 0;
}

int main(int argc, char **argv)
{
    struct args a = {.host = "0.0.0.0", .port = 4000, .workers = 0};
    if (parse_args(argc, argv, &a)) {
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    lx_alloc_hook_cjson();
    if (a.debug) {
        lx_log_set_level(LX_LOG_DEBUG);
    }

    struct lx_error err = {0};
    struct lx_config *cfg = a.config ? lx_config_load(a.config, &err)
                                     : lx_config_load_string("(no config)", "", 0, &err);
    if (!cfg) {
        fprintf(stderr, "llmux: %s\n", err.msg);
        return 1;
    }
    /* Before any thread runs: a reload's setenv cannot race with this getenv. */
    lx_secret_init();
    if (a.check) {
        printf("llmux: %s is valid: %zu model group(s), %zu deployment(s), %d warning(s)\n",
               a.config ? a.config : "(no config)", cfg->n_groups, cfg->n_deployments,
               cfg->n_warnings);
        lx_config_unref(cfg);
        return 0;
    }
    if (a.generate_key) {
        int rc = generate_key(cfg, a.user_id);
        lx_config_unref(cfg);
        return rc;
    }
    lx_server_apply_logging(cfg);
    if (a.debug) {
        lx_log_set_level(LX_LOG_DEBUG);
    }
    if (!a.config) {
        LX_WARN("no --config given: no models are configured");
    }
    /* Parse the price table now, not on a worker's first request; name unpriced models once. */
    const struct lx_prices *prices = lx_prices_builtin();
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        const struct lx_deployment *dep = &cfg->deployments[i];
        struct lx_price p;
        if (!strchr(dep->upstream_model, '*') && !lx_price_resolve(prices, dep, NULL, &p, NULL)) {
            lx_prices_warn_unknown(dep->upstream_model);
        }
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "llmux: cannot initialise libcurl\n");
        lx_config_unref(cfg);
        return 1;
    }
    long workers = a.workers;
    if (workers <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n > 0 ? n : 1;
    }
    struct lx_store *store = NULL;
    if (cfg->general.database_url) {
        /* Opening creates a SQLite file and applies migrations: not for --check. */
        store = lx_store_open(cfg->general.database_url, &err);
        if (!store) {
            fprintf(stderr, "llmux: %s\n", err.msg);
            lx_config_unref(cfg);
            curl_global_cleanup();
            return 1;
        }
        if (lx_auth_sync_users(store, cfg, &err)) {
            fprintf(stderr, "llmux: user_config: %s\n", err.msg);
            lx_store_close(store);
            lx_config_unref(cfg);
            curl_global_cleanup();
            return 1;
        }
        if (cfg->general.store_model_in_db) {
            /* Models added with /model/new join the file's model_list. */
            struct lx_config *full = lx_models_config_load(a.config, store, &err);
            if (full) {
                lx_config_unref(cfg);
                cfg = full;
            }
        }
    }
    struct lx_server_opts opts = {
        .config_path = a.config,
        .host = a.host,
        .port = (int)a.port,
        .num_workers = (int)workers,
        .debug = a.debug,
        .store = store,
    };
    int rc = lx_server_run(&opts, cfg, &err);
    lx_models_forget();
    /* Every worker closed its port on its own loop; now the store thread can stop. */
    lx_store_close(store);
    lx_config_unref(cfg);
    lx_prices_builtin_release();
    curl_global_cleanup();
    if (rc < 0) {
        fprintf(stderr, "llmux: %s\n", err.msg);
        return 1;
    }
    return rc;
}
