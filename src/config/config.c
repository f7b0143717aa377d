/*
 * Config snapshots after loading: reference counting, lookups used on the
 * request path (model group, deployment by id), and the small value parsers
 * shared with other modules (durations, user roles). A snapshot is immutable
 * once lx_config_load returns it, so every function here except unref only
 * reads and is safe from any thread.
 */
#include "config/config.h"

#include <limits.h>

#include "core/alloc.h"

struct lx_config *lx_config_ref(struct lx_config *cfg)
{
    if (cfg) {
        atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
    }
    return cfg;
}

void lx_config_unref(struct lx_config *cfg)
{
    if (!cfg) {
        return;
    }
    if (atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        cJSON_Delete(cfg->deployments[i].extra_params);
        cJSON_Delete(cfg->deployments[i].model_info);
    }
    lx_arena_fini(&cfg->arena);
    lx_free(cfg);
}

/* Glob match where '*' matches any run of characters (iterative, no recursion). */
static bool glob_match(const char *pat, struct lx_str s)
{
    size_t pi = 0, si = 0, star_p = (size_t)-1, star_s = 0;
    size_t pn = strlen(pat);
    while (si < s.n) {
        if (pi < pn && pat[pi] == '*') {
            star_p = pi++;
            star_s = si;
        } else if (pi < pn && pat[pi] == s.p[si]) {
            pi++;
            si++;
        } else if (star_p != (size_t)-1) {
            pi = star_p + 1;
            si = ++star_s;
        } else {
            return false;
        }
    }
    while (pi < pn && pat[pi] == '*') {
        pi++;
    }
    return pi == pn;
}

static const struct lx_model_group *find_exact(const struct lx_config *cfg, struct lx_str model)
{
    for (size_t i = 0; i < cfg->n_groups; i++) {
        if (lx_str_eq_c(model, cfg->groups[i].name)) {
            return &cfg->groups[i];
        }
    }
    return NULL;
}

const struct lx_model_group *lx_config_find_group(const struct lx_config *cfg, struct lx_str model)
{
    if (!cfg || !model.p) {
        return NULL;
    }
    const struct lx_model_group *g = find_exact(cfg, model);
    if (g) {
        return g;
    }
    for (size_t i = 0; i < cfg->router.n_model_group_alias; i++) {
        if (lx_str_eq_c(model, cfg->router.model_group_alias[i].key)) {
            g = find_exact(cfg, lx_str_c(cfg->router.model_group_alias[i].value));
            if (g) {
                return g;
            }
            break;
        }
    }
    /* The most specific pattern (most literal characters) wins; ties go to the first. */
    size_t best_score = 0;
    for (size_t i = 0; i < cfg->n_groups; i++) {
        const struct lx_model_group *c = &cfg->groups[i];
        if (!c->is_wildcard || !glob_match(c->name, model)) {
            continue;
        }
        size_t score = 0;
        for (const char *p = c->name; *p; p++) {
            score += *p != '*';
        }
        if (!g || score > best_score) {
            g = c;
            best_score = score;
        }
    }
    return g;
}

const struct lx_deployment *lx_config_find_deployment(const struct lx_config *cfg, struct lx_str id)
{
    if (!cfg || !id.p) {
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        if (cfg->deployments[i].id && lx_str_eq_c(id, cfg->deployments[i].id)) {
            return &cfg->deployments[i];
        }
    }
    return NULL;
}

int lx_duration_parse(struct lx_str s, long long *out_seconds)
{
    s = lx_str_trim(s);
    size_t digits = 0;
    while (digits < s.n && s.p[digits] >= '0' && s.p[digits] <= '9') {
        digits++;
    }
    if (digits == 0) {
        return LX_EINVAL;
    }
    unsigned long long v;
    if (lx_str_to_u64((struct lx_str){s.p, digits}, (unsigned long long)LLONG_MAX, &v) != 0) {
        return LX_EINVAL;
    }
    struct lx_str unit = lx_str_sub(s, digits);
    unsigned long long mult;
    if (unit.n == 0 || lx_str_eq_c(unit, "s")) {
        mult = 1;
    } else if (lx_str_eq_c(unit, "m")) {
        mult = 60;
    } else if (lx_str_eq_c(unit, "h")) {
        mult = 3600;
    } else if (lx_str_eq_c(unit, "d")) {
        mult = 86400;
    } else if (lx_str_eq_c(unit, "w")) {
        mult = 7 * 86400;
    } else if (lx_str_eq_c(unit, "mo")) {
        mult = 30 * 86400;
    } else {
        return LX_EINVAL;
    }
    if (v == 0 || v > (unsigned long long)LLONG_MAX / mult) {
        return LX_EINVAL;
    }
    *out_seconds = (long long)(v * mult);
    return 0;
}

static const char *const role_names[] = {
    [LX_ROLE_UNSET] = "unset",
    [LX_ROLE_PROXY_ADMIN] = "proxy_admin",
    [LX_ROLE_PROXY_ADMIN_VIEWER] = "proxy_admin_viewer",
    [LX_ROLE_INTERNAL_USER] = "internal_user",
    [LX_ROLE_INTERNAL_USER_VIEWER] = "internal_user_viewer",
    [LX_ROLE_APP_USER] = "app_user",
};

enum lx_user_role lx_user_role_parse(const char *s)
{
    if (!s) {
        return LX_ROLE_UNSET;
    }
    for (size_t i = LX_ROLE_PROXY_ADMIN; i < LX_ARRAY_LEN(role_names); i++) {
        if (strcmp(s, role_names[i]) == 0) {
            return (enum lx_user_role)i;
        }
    }
    return LX_ROLE_UNSET;
}

const char *lx_user_role_name(enum lx_user_role role)
{
    if ((size_t)role < LX_ARRAY_LEN(role_names)) {
        return role_names[role];
    }
    return "unset";
}
