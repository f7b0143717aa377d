/*
 * The config loader: config.yaml -> struct lx_config. libyaml's document API
 * parses the whole file into a node graph (aliases point at their anchor's
 * node, so a billion-laughs document stays small in memory); a first walk
 * bounds the nesting depth and the node count after alias expansion, so every
 * later recursive walk is bounded too. Then the top-level sections are read
 * into the snapshot's arena. The loader follows PyYAML (which LiteLLM uses):
 * a duplicate key's later value wins, `<<` merge keys are honoured, and plain
 * scalars are typed by the YAML 1.1 rules where a value's type matters.
 *
 * Invariants: every string and array of the result lives in cfg->arena and
 * is copied out of libyaml's memory and out of getenv()'s; input-sized
 * allocations use the lx_try_* family so allocation-failure runs reach every
 * error path; no message ever contains a value that may be a secret (only
 * key names, variable names, model names and line numbers).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <yaml.h>

#include "config/config.h"
#include "core/alloc.h"
#include "log/log.h"

#define MAX_FILE_BYTES ((size_t)4 << 20)
#define MAX_DEPTH 64
#define MAX_NODES 1000000L /* after alias expansion */
#define MAX_MODELS 10000
#define ENV_PREFIX "os.environ/"

struct ld {
    const char *name; /* file name for messages */
    struct lx_config *cfg;
    struct lx_arena *a;
    yaml_document_t doc;
    struct lx_error *err;
    long budget;
    /* Set while reading a deployment's litellm_params: missing variables are not fatal there. */
    struct lx_deployment *dep;
    int dep_warned;
    const cJSON *stored; /* models added at run time (JSON array), or NULL */
    bool stored_strict;  /* a stored model that does not load fails the load */
};

/* ---- messages ---------------------------------------------------------- */

static int line_of(const yaml_node_t *n)
{
    return n ? (int)n->start_mark.line + 1 : 1;
}

LX_PRINTF(3, 4) static int fail(struct ld *ld, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[LX_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return lx_error_set(ld->err, LX_ECONFIG, "%s:%d: %s", ld->name, line_of(n), msg);
}

static int nomem(struct ld *ld)
{
    return lx_error_set(ld->err, LX_ENOMEM, "%s: out of memory while loading the config", ld->name);
}

LX_PRINTF(3, 4) static void warn(struct ld *ld, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[LX_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ld->cfg->n_warnings++;
    LX_WARN("%s:%d: %s", ld->name, line_of(n), msg);
}

/* A printable, bounded copy of a key or name for messages. */
static const char *show(char *buf, size_t cap, struct lx_str s)
{
    size_t o = 0;
    for (size_t i = 0; i < s.n && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s.p[i];
        buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (o < s.n && o + 4 >= cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* ---- node helpers ------------------------------------------------------ */

static yaml_node_t *node(struct ld *ld, int idx)
{
    return yaml_document_get_node(&ld->doc, idx);
}

static struct lx_str sval(const yaml_node_t *n)
{
    return (struct lx_str){(const char *)n->data.scalar.value, n->data.scalar.length};
}

static bool is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* YAML 1.1 null: an empty plain scalar, ~, null. */
static bool is_null(const yaml_node_t *n)
{
    if (!n) {
        return true;
    }
    if (!is_plain(n)) {
        return false;
    }
    struct lx_str s = sval(n);
    return s.n == 0 || lx_str_eq_c(s, "~") || lx_str_eq_c(s, "null") || lx_str_eq_c(s, "Null") ||
           lx_str_eq_c(s, "NULL");
}

static int parse_bool(struct lx_str s, bool *out)
{
    static const char *const t[] = {"true", "True", "TRUE", "yes", "Yes",
                                    "YES",  "on",   "On",   "ON",  "1"};
    static const char *const f[] = {"false", "False", "FALSE", "no",  "No",
                                    "NO",    "off",   "Off",   "OFF", "0"};
    for (size_t i = 0; i < LX_ARRAY_LEN(t); i++) {
        if (lx_str_eq_c(s, t[i])) {
            *out = true;
            return 0;
        }
        if (lx_str_eq_c(s, f[i])) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/*
 * A YAML number: decimal integer or float with optional sign, exponent and
 * `_` separators (YAML 1.1). Not inf/nan/hex: configs never need them.
 * Sets *is_int when the text is an integer literal and fits long long.
 */
static int parse_number(struct lx_str s, double *out, bool *is_int, long long *out_ll)
{
    char tmp[80];
    size_t o = 0;
    bool digit = false, intlit = true;
    s = lx_str_trim(s);
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (c == '_') {
            continue;
        }
        if (c >= '0' && c <= '9') {
            digit = true;
        } else if (c == '.' || c == 'e' || c == 'E') {
            intlit = false;
        } else if (c == '+' || c == '-') {
            if (o != 0 && tmp[o - 1] != 'e' && tmp[o - 1] != 'E') {
                return -1;
            }
        } else {
            return -1;
        }
        if (o + 1 >= sizeof(tmp)) {
            return -1;
        }
        tmp[o++] = c;
    }
    if (!digit) {
        return -1;
    }
    tmp[o] = '\0';
    char *end;
    errno = 0;
    double d = strtod(tmp, &end);
    if (*end != '\0' || !isfinite(d)) {
        return -1;
    }
    *out = d;
    *is_int = false;
    if (intlit) {
        errno = 0;
        long long v = strtoll(tmp, &end, 10);
        if (*end == '\0' && errno == 0) {
            *is_int = true;
            *out_ll = v;
        }
    }
    return 0;
}

/* ---- arena copies ------------------------------------------------------ */

static int adup(struct ld *ld, struct lx_str s, const char **out)
{
    char *d = lx_arena_try_alloc(ld->a, s.n + 1);
    if (!d) {
        return nomem(ld);
    }
    if (s.n) {
        memcpy(d, s.p, s.n);
    }
    d[s.n] = '\0';
    *out = d;
    return 0;
}

static void *aalloc(struct ld *ld, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) {
        return NULL;
    }
    size_t bytes = count * size;
    void *p = lx_arena_try_alloc(ld->a, bytes ? bytes : 1);
    if (p) {
        memset(p, 0, bytes);
    }
    return p;
}

/* ---- mappings: merge keys and duplicate keys --------------------------- */

struct mpair {
    yaml_node_t *k;
    yaml_node_t *v;
    size_t ord;
    bool merged; /* came from a `<<` merge */
    bool drop;
};

struct pairs {
    struct mpair *p;
    size_t n;
    size_t cap;
};

static void pairs_fini(struct pairs *ps)
{
    LX_FREE(ps->p);
    ps->n = ps->cap = 0;
}

static int pairs_push(struct ld *ld, struct pairs *ps, yaml_node_t *k, yaml_node_t *v, bool merged)
{
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 16;
        struct mpair *np = lx_try_realloc(ps->p, cap * sizeof(*np));
        if (!np) {
            return nomem(ld);
        }
        ps->p = np;
        ps->cap = cap;
    }
    ps->p[ps->n] = (struct mpair){k, v, ps->n, merged, false};
    ps->n++;
    return 0;
}

static int collect_pairs(struct ld *ld, yaml_node_t *map, const char *where, struct pairs *ps,
                         bool merged)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node(ld, p->key);
        yaml_node_t *v = node(ld, p->value);
        if (!k || !v) {
            continue;
        }
        if (k->type != YAML_SCALAR_NODE) {
            return fail(ld, k, "%s: mapping keys must be strings", where);
        }
        if (memchr(k->data.scalar.value, 0, k->data.scalar.length)) {
            return fail(ld, k, "%s: a key contains a NUL byte", where);
        }
        if (is_plain(k) && lx_str_eq_c(sval(k), "<<")) {
            /* YAML 1.1 merge key: `<<: *base` or `<<: [*a, *b]`. */
            int rc = 0;
            if (v->type == YAML_MAPPING_NODE) {
                rc = collect_pairs(ld, v, where, ps, true);
            } else if (v->type == YAML_SEQUENCE_NODE) {
                for (yaml_node_item_t *it = v->data.sequence.items.start;
                     rc == 0 && it < v->data.sequence.items.top; it++) {
                    yaml_node_t *m = node(ld, *it);
                    if (!m || m->type != YAML_MAPPING_NODE) {
                        return fail(ld, m ? m : v, "%s: << expects a mapping or a list of mappings",
                                    where);
                    }
                    rc = collect_pairs(ld, m, where, ps, true);
                }
            } else {
                return fail(ld, v, "%s: << expects a mapping or a list of mappings", where);
            }
            if (rc) {
                return rc;
            }
            continue;
        }
        int rc = pairs_push(ld, ps, k, v, merged);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int cmp_key_ord(const void *pa, const void *pb)
{
    const struct mpair *a = *(const struct mpair *const *)pa;
    const struct mpair *b = *(const struct mpair *const *)pb;
    struct lx_str ka = sval(a->k), kb = sval(b->k);
    size_t n = LX_MIN(ka.n, kb.n);
    int c = n ? memcmp(ka.p, kb.p, n) : 0;
    if (c == 0 && ka.n != kb.n) {
        c = ka.n < kb.n ? -1 : 1;
    }
    if (c == 0) {
        c = a->ord < b->ord ? -1 : (a->ord > b->ord ? 1 : 0);
    }
    return c;
}

/*
 * The effective pairs of a mapping, in order: merges expanded, and of
 * duplicate keys only the one PyYAML keeps (the last explicit one; an
 * explicit key beats a merged one; among merged ones the first wins).
 * Duplicate explicit keys are warned about. The caller frees with pairs_fini.
 */
static int map_pairs(struct ld *ld, yaml_node_t *map, const char *where, struct pairs *out)
{
    struct pairs ps = {0};
    struct mpair **idx = NULL;
    int rc = collect_pairs(ld, map, where, &ps, false);
    if (rc || ps.n < 2) {
        goto out;
    }
    idx = lx_try_malloc(ps.n * sizeof(*idx));
    if (!idx) {
        rc = nomem(ld);
        goto out;
    }
    for (size_t i = 0; i < ps.n; i++) {
        idx[i] = &ps.p[i];
    }
    qsort(idx, ps.n, sizeof(*idx), cmp_key_ord);
    for (size_t i = 0; i < ps.n;) {
        size_t j = i + 1;
        while (j < ps.n && lx_str_eq(sval(idx[i]->k), sval(idx[j]->k))) {
            j++;
        }
        if (j - i > 1) {
            struct mpair *win = NULL;
            for (size_t x = i; x < j; x++) {
                if (!idx[x]->merged) {
                    win = idx[x]; /* the last explicit one (sorted by ord) */
                }
            }
            if (!win) {
                win = idx[i]; /* the first merged one */
            }
            for (size_t x = i; x < j; x++) {
                if (idx[x] == win) {
                    continue;
                }
                idx[x]->drop = true;
                if (!idx[x]->merged) {
                    char kb[72];
                    warn(ld, win->k,
                         "duplicate key '%s' in %s: the value at line %d replaces the one at "
                         "line %d",
                         show(kb, sizeof(kb), sval(win->k)), where, line_of(win->k),
                         line_of(idx[x]->k));
                }
            }
        }
        i = j;
    }
    size_t o = 0;
    for (size_t i = 0; i < ps.n; i++) {
        if (!ps.p[i].drop) {
            ps.p[o++] = ps.p[i];
        }
    }
    ps.n = o;
out:
    lx_free(idx);
    if (rc) {
        pairs_fini(&ps);
    }
    *out = ps;
    return rc;
}

/* The effective value of `key` in a mapping, or NULL. */
static yaml_node_t *pairs_get(const struct pairs *ps, const char *key)
{
    for (size_t i = 0; i < ps->n; i++) {
        if (lx_str_eq_c(sval(ps->p[i].k), key)) {
            return ps->p[i].v;
        }
    }
    return NULL;
}

/* ---- scalar values ----------------------------------------------------- */

/*
 * The text of a scalar with an `os.environ/VAR` reference resolved. *present
 * is false for a null, and for a missing variable inside litellm_params (the
 * deployment then records it in missing_env). The text may point into
 * libyaml's or the environment's memory: copy it before the next setenv.
 */
static int scalar_text(struct ld *ld, const yaml_node_t *n, const char *path, struct lx_str *out,
                       bool *present)
{
    *present = false;
    if (is_null(n)) {
        return 0;
    }
    struct lx_str s = sval(n);
    if (memchr(s.p, 0, s.n)) {
        return fail(ld, n, "%s: the value contains a NUL byte", path);
    }
    if (!lx_str_has_prefix(s, LX_STR(ENV_PREFIX))) {
        *out = s;
        *present = true;
        return 0;
    }
    struct lx_str var = lx_str_sub(s, sizeof(ENV_PREFIX) - 1);
    char vb[72];
    if (var.n == 0 || memchr(var.p, '=', var.n)) {
        return fail(ld, n, "%s: '%s' is not a valid environment variable reference", path,
                    show(vb, sizeof(vb), s));
    }
    const char *v = getenv(var.p); /* var is the NUL-terminated tail of the scalar */
    if (v) {
        *out = lx_str_c(v);
        *present = true;
        return 0;
    }
    show(vb, sizeof(vb), var);
    if (!ld->dep) {
        return fail(ld, n, "environment variable %s (%s) is not set", vb, path);
    }
    if (!ld->dep->missing_env) {
        int rc = adup(ld, var, &ld->dep->missing_env);
        if (rc) {
            return rc;
        }
        char nb[72];
        warn(ld, n,
             "model_list[%zu] (%s): environment variable %s is not set; requests to this "
             "deployment will fail until it is",
             ld->dep->index, show(nb, sizeof(nb), lx_str_c(ld->dep->model_name)), vb);
    } else {
        LX_DEBUG("%s:%d: model_list[%zu]: environment variable %s is not set either", ld->name,
                 line_of(n), ld->dep->index, vb);
    }
    return 0;
}

/* A string field: any scalar's text (numbers and booleans as written). */
static int get_str(struct ld *ld, const yaml_node_t *n, const char *path, const char **out)
{
    if (n->type != YAML_SCALAR_NODE) {
        return fail(ld, n, "%s: expected a string", path);
    }
    struct lx_str s;
    bool present;
    int rc = scalar_text(ld, n, path, &s, &present);
    if (rc) {
        return rc;
    }
    if (!present) {
        *out = NULL;
        return 0;
    }
    return adup(ld, s, out);
}

enum bound { B_NONE, B_NONNEG, B_POS };

static int check_bounds(struct ld *ld, const yaml_node_t *n, const char *path, double v,
                        enum bound b, double max)
{
    if (b == B_NONNEG && v < 0) {
        return fail(ld, n, "%s: must not be negative", path);
    }
    if (b == B_POS && !(v > 0)) {
        return fail(ld, n, "%s: must be greater than 0", path);
    }
    if (max > 0 && v > max) {
        return fail(ld, n, "%s: must be at most %g", path, max);
    }
    return 0;
}

/* A number (quoted numbers too, as pydantic accepts them). Null leaves *out unchanged. */
static int get_dbl(struct ld *ld, const yaml_node_t *n, const char *path, double *out, enum bound b,
                   double max)
{
    if (n->type != YAML_SCALAR_NODE) {
        return fail(ld, n, "%s: expected a number", path);
    }
    struct lx_str s;
    bool present, is_int;
    long long ll;
    double d;
    int rc = scalar_text(ld, n, path, &s, &present);
    if (rc || !present) {
        return rc;
    }
    if (parse_number(s, &d, &is_int, &ll) != 0) {
        return fail(ld, n, "%s: expected a number", path);
    }
    rc = check_bounds(ld, n, path, d, b, max);
    if (rc == 0) {
        *out = d;
    }
    return rc;
}

/* An integer in [lo, hi] after the bound check. Null leaves *out unchanged. */
static int get_ll(struct ld *ld, const yaml_node_t *n, const char *path, long long *out,
                  enum bound b, long long hi)
{
    if (n->type != YAML_SCALAR_NODE) {
        return fail(ld, n, "%s: expected an integer", path);
    }
    struct lx_str s;
    bool present, is_int;
    long long ll;
    double d;
    int rc = scalar_text(ld, n, path, &s, &present);
    if (rc || !present) {
        return rc;
    }
    if (parse_number(s, &d, &is_int, &ll) != 0) {
        return fail(ld, n, "%s: expected an integer", path);
    }
    if (!is_int) {
        /* pydantic accepts 10.0 for an int, not 10.5 */
        if (d != floor(d) || fabs(d) > 9.0e15) {
            return fail(ld, n, "%s: expected an integer", path);
        }
        ll = (long long)d;
    }
    rc = check_bounds(ld, n, path, (double)ll, b, 0);
    if (rc) {
        return rc;
    }
    if (ll > hi) {
        return fail(ld, n, "%s: must be at most %lld", path, hi);
    }
    *out = ll;
    return 0;
}

static int get_int(struct ld *ld, const yaml_node_t *n, const char *path, int *out, enum bound b,
                   int hi)
{
    long long v = *out;
    int rc = get_ll(ld, n, path, &v, b, hi);
    if (rc == 0) {
        if (v < INT_MIN) {
            return fail(ld, n, "%s: out of range", path);
        }
        *out = (int)v;
    }
    return rc;
}

static int get_bool(struct ld *ld, const yaml_node_t *n, const char *path, bool *out)
{
    if (n->type != YAML_SCALAR_NODE) {
        return fail(ld, n, "%s: expected true or false", path);
    }
    struct lx_str s;
    bool present;
    int rc = scalar_text(ld, n, path, &s, &present);
    if (rc || !present) {
        return rc;
    }
    if (parse_bool(lx_str_trim(s), out) != 0) {
        return fail(ld, n, "%s: expected true or false", path);
    }
    return 0;
}

/* A list of strings; a single string is accepted only when allow_scalar. */
static int get_list(struct ld *ld, const yaml_node_t *n, const char *path, struct lx_strlist *out,
                    bool allow_scalar)
{
    out->items = NULL;
    out->n = 0;
    if (is_null(n)) {
        return 0;
    }
    if (n->type == YAML_SCALAR_NODE) {
        if (!allow_scalar) {
            return fail(ld, n, "%s: expected a list of strings", path);
        }
        const char **items = aalloc(ld, 1, sizeof(*items));
        if (!items) {
            return nomem(ld);
        }
        int rc = get_str(ld, n, path, &items[0]);
        if (rc) {
            return rc;
        }
        out->items = items;
        out->n = items[0] ? 1 : 0;
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        return fail(ld, n, "%s: expected a list of strings", path);
    }
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    const char **items = aalloc(ld, cnt, sizeof(*items));
    if (!items) {
        return nomem(ld);
    }
    size_t o = 0;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = node(ld, n->data.sequence.items.start[i]);
        if (!it) {
            continue;
        }
        char ip[256];
        snprintf(ip, sizeof(ip), "%.160s[%zu]", path, i);
        if (it->type != YAML_SCALAR_NODE) {
            return fail(ld, it, "%s: expected a string", ip);
        }
        int rc = get_str(ld, it, ip, &items[o]);
        if (rc) {
            return rc;
        }
        if (items[o]) {
            o++;
        }
    }
    out->items = items;
    out->n = o;
    return 0;
}

/* ---- fallbacks --------------------------------------------------------- */

struct fbvec {
    struct lx_fallback *p;
    size_t n, cap;
};

static int fb_add_map(struct ld *ld, yaml_node_t *map, const char *path, struct fbvec *v)
{
    struct pairs ps;
    int rc = map_pairs(ld, map, path, &ps);
    for (size_t i = 0; rc == 0 && i < ps.n; i++) {
        if (v->n == v->cap) {
            size_t cap = v->cap ? v->cap * 2 : 8;
            struct lx_fallback *np = lx_try_realloc(v->p, cap * sizeof(*np));
            if (!np) {
                rc = nomem(ld);
                break;
            }
            v->p = np;
            v->cap = cap;
        }
        struct lx_fallback *f = &v->p[v->n];
        char kb[72], fp[256];
        snprintf(fp, sizeof(fp), "%.160s.%s", path, show(kb, sizeof(kb), sval(ps.p[i].k)));
        rc = adup(ld, sval(ps.p[i].k), &f->model);
        if (rc == 0) {
            rc = get_list(ld, ps.p[i].v, fp, &f->to, false);
        }
        if (rc == 0) {
            v->n++;
        }
    }
    pairs_fini(&ps);
    return rc;
}

/*
 * Fallbacks in either shape: LiteLLM's list of single-key maps
 * (`[{"gpt-4": ["gpt-3.5-turbo"]}]`) or a mapping of model -> list.
 */
static int get_fallbacks(struct ld *ld, yaml_node_t *n, const char *path,
                         struct lx_fallback_list *out)
{
    struct fbvec v = {0};
    int rc = 0;
    out->items = NULL;
    out->n = 0;
    if (is_null(n)) {
        return 0;
    }
    if (n->type == YAML_MAPPING_NODE) {
        rc = fb_add_map(ld, n, path, &v);
    } else if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             rc == 0 && it < n->data.sequence.items.top; it++) {
            yaml_node_t *m = node(ld, *it);
            if (!m || is_null(m)) {
                continue;
            }
            if (m->type != YAML_MAPPING_NODE) {
                rc = fail(ld, m, "%s: expected a mapping of model to a list of fallback models",
                          path);
                break;
            }
            rc = fb_add_map(ld, m, path, &v);
        }
    } else {
        rc = fail(ld, n, "%s: expected a mapping of model to a list of fallback models", path);
    }
    if (rc == 0 && v.n) {
        out->items = aalloc(ld, v.n, sizeof(*out->items));
        if (!out->items) {
            rc = nomem(ld);
        } else {
            memcpy(out->items, v.p, v.n * sizeof(*v.p));
            out->n = v.n;
        }
    }
    lx_free(v.p);
    return rc;
}

/* ---- string maps ------------------------------------------------------- */

/* A mapping of string -> scalar text, appended to *kv. */
static int get_kv(struct ld *ld, yaml_node_t *n, const char *path, struct lx_kv **kv, size_t *nkv)
{
    if (is_null(n)) {
        return 0;
    }
    if (n->type != YAML_MAPPING_NODE) {
        return fail(ld, n, "%s: expected a mapping", path);
    }
    struct pairs ps;
    int rc = map_pairs(ld, n, path, &ps);
    if (rc) {
        return rc;
    }
    struct lx_kv *arr = aalloc(ld, *nkv + ps.n, sizeof(*arr));
    if (!arr) {
        rc = nomem(ld);
        goto out;
    }
    if (*nkv) {
        memcpy(arr, *kv, *nkv * sizeof(*arr));
    }
    size_t o = *nkv;
    for (size_t i = 0; i < ps.n; i++) {
        char kb[72], fp[256];
        snprintf(fp, sizeof(fp), "%.160s.%s", path, show(kb, sizeof(kb), sval(ps.p[i].k)));
        const char *val = NULL;
        rc = get_str(ld, ps.p[i].v, fp, &val);
        if (rc) {
            goto out;
        }
        if (!val) {
            continue;
        }
        rc = adup(ld, sval(ps.p[i].k), &arr[o].key);
        if (rc) {
            goto out;
        }
        arr[o++].value = val;
    }
    *kv = arr;
    *nkv = o;
out:
    pairs_fini(&ps);
    return rc;
}

/* ---- YAML -> JSON (extra_params, model_info) --------------------------- */

static int to_json(struct ld *ld, yaml_node_t *n, const char *path, cJSON **out)
{
    cJSON *j = NULL;
    int rc = 0;
    *out = NULL;
    if (n->type == YAML_SCALAR_NODE) {
        struct lx_str s = sval(n);
        bool b, is_int;
        double d;
        long long ll;
        if (is_null(n)) {
            j = cJSON_CreateNull();
        } else if (is_plain(n) && !lx_str_eq_c(s, "1") && !lx_str_eq_c(s, "0") &&
                   parse_bool(s, &b) == 0) {
            j = cJSON_CreateBool(b);
        } else if (is_plain(n) && parse_number(s, &d, &is_int, &ll) == 0) {
            j = cJSON_CreateNumber(is_int ? (double)ll : d);
        } else {
            bool present;
            rc = scalar_text(ld, n, path, &s, &present);
            if (rc) {
                return rc;
            }
            /* Both libyaml's text and getenv()'s are NUL-terminated (NUL bytes were refused). */
            j = present ? cJSON_CreateString(s.p) : cJSON_CreateNull();
        }
        if (!j) {
            return nomem(ld);
        }
        *out = j;
        return 0;
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        j = cJSON_CreateArray();
        if (!j) {
            return nomem(ld);
        }
        size_t i = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++, i++) {
            yaml_node_t *c = node(ld, *it);
            cJSON *cj;
            char ip[256];
            if (!c) {
                continue;
            }
            snprintf(ip, sizeof(ip), "%.160s[%zu]", path, i);
            rc = to_json(ld, c, ip, &cj);
            if (rc) {
                goto fail;
            }
            cJSON_AddItemToArray(j, cj);
        }
        *out = j;
        return 0;
    }
    if (n->type == YAML_MAPPING_NODE) {
        struct pairs ps;
        j = cJSON_CreateObject();
        if (!j) {
            return nomem(ld);
        }
        rc = map_pairs(ld, n, path, &ps);
        if (rc) {
            goto fail;
        }
        for (size_t i = 0; i < ps.n; i++) {
            char kb[72], fp[256];
            cJSON *cj;
            snprintf(fp, sizeof(fp), "%.160s.%s", path, show(kb, sizeof(kb), sval(ps.p[i].k)));
            rc = to_json(ld, ps.p[i].v, fp, &cj);
            if (rc) {
                break;
            }
            if (!cJSON_AddItemToObject(j, (const char *)ps.p[i].k->data.scalar.value, cj)) {
                cJSON_Delete(cj);
                rc = nomem(ld);
                break;
            }
        }
        pairs_fini(&ps);
        if (rc) {
            goto fail;
        }
        *out = j;
        return 0;
    }
    return fail(ld, n, "%s: unsupported YAML node", path);
fail:
    cJSON_Delete(j);
    return rc;
}

/* ---- sections: field tables -------------------------------------------- */

enum fkind {
    FK_STR,
    FK_DBL,
    FK_INT,
    FK_LL,
    FK_BOOL,
    FK_LIST,     /* list of strings */
    FK_LIST1,    /* list of strings, or one string */
    FK_FALLBACK, /* struct lx_fallback_list */
    FK_PORT,     /* int 1..65535 */
};

enum { F_STRICT_ENV = 1, F_EMPTY_NULL = 2 };

struct field {
    const char *key;
    unsigned char kind;
    unsigned char bound;
    unsigned char flags;
    double max;
    size_t off;
};

#define FLD(k, kind, bound, type, member)                                                          \
    {                                                                                              \
        k, kind, bound, 0, 0, offsetof(type, member)                                               \
    }
#define FLDF(k, kind, bound, flags, max, type, member)                                             \
    {                                                                                              \
        k, kind, bound, flags, max, offsetof(type, member)                                         \
    }

/* Called for a key that is not in the table; sets *handled when it used the key. */
typedef int (*custom_cb)(struct ld *ld, const char *sect, yaml_node_t *k, yaml_node_t *v, void *ctx,
                         bool *handled);

struct section {
    const char *name;
    const struct field *fields;
    size_t n_fields;
    const char *const *known; /* accepted and ignored (NULL-terminated) */
    custom_cb custom;
};

static int apply_field(struct ld *ld, const struct field *f, void *base, yaml_node_t *v,
                       const char *path)
{
    char *p = (char *)base + f->off;
    struct lx_deployment *saved = ld->dep;
    int rc = 0;
    if (f->flags & F_STRICT_ENV) {
        ld->dep = NULL;
    }
    switch ((enum fkind)f->kind) {
    case FK_STR: {
        const char **s = (const char **)(void *)p;
        rc = get_str(ld, v, path, s);
        if (rc == 0 && (f->flags & F_EMPTY_NULL) && *s && **s == '\0') {
            *s = NULL;
        }
        break;
    }
    case FK_DBL:
        rc = get_dbl(ld, v, path, (double *)(void *)p, (enum bound)f->bound, f->max);
        break;
    case FK_INT:
        rc = get_int(ld, v, path, (int *)(void *)p, (enum bound)f->bound, INT_MAX);
        break;
    case FK_LL:
        rc = get_ll(ld, v, path, (long long *)(void *)p, (enum bound)f->bound, LLONG_MAX);
        break;
    case FK_BOOL:
        rc = get_bool(ld, v, path, (bool *)(void *)p);
        break;
    case FK_LIST:
    case FK_LIST1:
        rc = get_list(ld, v, path, (struct lx_strlist *)(void *)p, f->kind == FK_LIST1);
        break;
    case FK_FALLBACK:
        rc = get_fallbacks(ld, v, path, (struct lx_fallback_list *)(void *)p);
        break;
    case FK_PORT: {
        int port = *(int *)(void *)p;
        if (v->type != YAML_SCALAR_NODE) {
            rc = fail(ld, v, "%s: expected a port number (1-65535)", path);
            break;
        }
        rc = get_int(ld, v, path, &port, B_POS, 65535);
        if (rc == 0) {
            *(int *)(void *)p = port;
        }
        break;
    }
    }
    ld->dep = saved;
    return rc;
}

static bool in_list(const char *const *list, struct lx_str key)
{
    for (; list && *list; list++) {
        if (lx_str_eq_c(key, *list)) {
            return true;
        }
    }
    return false;
}

static int parse_section(struct ld *ld, yaml_node_t *map, const struct section *sec, void *base,
                         void *ctx)
{
    if (is_null(map)) {
        return 0;
    }
    if (map->type != YAML_MAPPING_NODE) {
        return fail(ld, map, "%s: expected a mapping", sec->name);
    }
    struct pairs ps;
    int rc = map_pairs(ld, map, sec->name, &ps);
    for (size_t i = 0; rc == 0 && i < ps.n; i++) {
        yaml_node_t *k = ps.p[i].k, *v = ps.p[i].v;
        struct lx_str key = sval(k);
        char kb[72], path[256];
        show(kb, sizeof(kb), key);
        snprintf(path, sizeof(path), "%.160s.%s", sec->name, kb);
        const struct field *f = NULL;
        for (size_t x = 0; x < sec->n_fields; x++) {
            if (lx_str_eq_c(key, sec->fields[x].key)) {
                f = &sec->fields[x];
                break;
            }
        }
        if (f) {
            rc = apply_field(ld, f, base, v, path);
            continue;
        }
        bool handled = false;
        if (sec->custom) {
            rc = sec->custom(ld, sec->name, k, v, ctx, &handled);
            if (rc || handled) {
                continue;
            }
        }
        if (in_list(sec->known, key)) {
            LX_DEBUG("%s:%d: %s is accepted but not used by llmux", ld->name, line_of(k), path);
            continue;
        }
        warn(ld, k, "unknown key '%s' in %s (ignored)", kb, sec->name);
    }
    pairs_fini(&ps);
    return rc;
}

/* ---- general_settings -------------------------------------------------- */

#define GS struct lx_general_settings
static const struct field general_fields[] = {
    FLD("master_key", FK_STR, B_NONE, GS, master_key),
    FLD("database_url", FK_STR, B_NONE, GS, database_url),
    FLD("max_request_size_mb", FK_DBL, B_POS, GS, max_request_size_mb),
    FLD("max_response_size_mb", FK_DBL, B_POS, GS, max_response_size_mb),
    FLD("global_max_rpm", FK_LL, B_NONNEG, GS, global_max_rpm),
    FLD("global_max_tpm", FK_LL, B_NONNEG, GS, global_max_tpm),
    FLD("store_model_in_db", FK_BOOL, B_NONE, GS, store_model_in_db),
    FLD("background_health_checks", FK_BOOL, B_NONE, GS, background_health_checks),
    FLD("health_check_interval", FK_DBL, B_POS, GS, health_check_interval),
    FLD("disable_spend_logs", FK_BOOL, B_NONE, GS, disable_spend_logs),
    FLD("spend_journal_dir", FK_STR, B_NONE, GS, spend_journal_dir),
    FLD("alerting", FK_LIST, B_NONE, GS, alerting),
    FLD("request_header_timeout", FK_DBL, B_POS, GS, request_header_timeout),
    FLD("request_body_timeout", FK_DBL, B_POS, GS, request_body_timeout),
    FLD("keepalive_timeout", FK_DBL, B_POS, GS, keepalive_timeout),
    FLD("send_timeout", FK_DBL, B_POS, GS, send_timeout),
    FLD("drain_timeout", FK_DBL, B_POS, GS, drain_timeout),
    FLD("max_header_size_kb", FK_DBL, B_POS, GS, max_header_size_kb),
    FLD("user_api_key_cache_ttl", FK_DBL, B_POS, GS, user_api_key_cache_ttl),
};
#undef GS

/* LiteLLM general_settings keys llmux accepts without using them. */
static const char *const general_known[] = {
    "alerting_threshold",
    "alert_types",
    "alert_to_webhook_url",
    "alerting_args",
    "proxy_batch_write_at",
    "proxy_budget_rescheduler_min_time",
    "proxy_budget_rescheduler_max_time",
    "database_connection_pool_limit",
    "database_connection_timeout",
    "database_args",
    "allow_requests_on_db_unavailable",
    "enforce_user_param",
    "disable_master_key_return",
    "custom_auth",
    "custom_auth_settings",
    "custom_key_generate",
    "custom_sso",
    "ui_access_mode",
    "allowed_routes",
    "admin_only_routes",
    "public_routes",
    "disable_reset_budget",
    "disable_adding_master_key_hash_to_db",
    "disable_retry_on_max_parallel_request_limit_error",
    "max_parallel_requests",
    "global_max_parallel_requests",
    "infer_model_from_keys",
    "key_management_system",
    "key_management_settings",
    "use_google_kms",
    "use_azure_key_vault",
    "store_prompts_in_spend_logs",
    "disable_prisma_schema_update",
    "enable_jwt_auth",
    "litellm_jwtauth",
    "allowed_ips",
    "enable_public_model_hub",
    "forward_openai_org_id",
    "forward_client_headers_to_llm_api",
    "pass_through_endpoints",
    "service_account_settings",
    "spend_report_frequency",
    "default_team_disabled",
    "embedding_model",
    "health_check_details",
    "user_header_name",
    "maximum_spend_logs_retention_period",
    "maximum_spend_logs_retention_interval",
    "enable_oauth2_auth",
    "enable_oauth2_proxy_auth",
    "oauth2_config_mappings",
    "use_x_forwarded_for",
    "moderation_model",
    "role_permissions",
    "allow_user_auth",
    "use_redis_transaction_buffer",
    "disable_error_logs",
    "disable_spend_updates",
    "disable_responses_id_security",
    "image_generation_model",
    "otel",
    NULL,
};

static int general_custom(struct ld *ld, const char *sect, yaml_node_t *k, yaml_node_t *v,
                          void *ctx, bool *handled)
{
    (void)ctx;
    if (!lx_str_eq_c(sval(k), "log_level")) {
        return 0;
    }
    *handled = true;
    char path[256];
    snprintf(path, sizeof(path), "%s.log_level", sect);
    const char *s = NULL;
    int rc = get_str(ld, v, path, &s);
    if (rc || !s) {
        return rc;
    }
    enum lx_log_level level;
    if (lx_log_parse_level(s, &level) != 0) {
        return fail(ld, v, "%s: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL", path);
    }
    ld->cfg->general.log_level = (int)level;
    return 0;
}

static const struct section general_section = {
    "general_settings", general_fields, LX_ARRAY_LEN(general_fields), general_known, general_custom,
};

/* ---- cache_settings / litellm_settings.cache_params --------------------- */

#define CC struct lx_cache_cfg
static const struct field cache_fields[] = {
    FLD("type", FK_STR, B_NONE, CC, type),
    FLD("host", FK_STR, B_NONE, CC, redis.host),
    FLD("port", FK_PORT, B_NONE, CC, redis.port),
    FLDF("password", FK_STR, B_NONE, F_EMPTY_NULL, 0, CC, redis.password),
    FLDF("username", FK_STR, B_NONE, F_EMPTY_NULL, 0, CC, redis.username),
    FLDF("similarity_threshold", FK_DBL, B_NONNEG, 0, 1, CC, similarity_threshold),
    FLD("ttl", FK_DBL, B_NONNEG, CC, ttl),
    FLD("namespace", FK_STR, B_NONE, CC, namespace_),
};
#undef CC

static const char *const cache_known[] = {
    "mode",
    "supported_call_types",
    "redis_semantic_cache_embedding_model",
    "redis_semantic_cache_use_async",
    "redis_startup_nodes",
    "service_name",
    "sentinel_nodes",
    "sentinel_password",
    "url",
    "ssl",
    "max_connections",
    "default_in_memory_ttl",
    "default_in_redis_ttl",
    "redis_flush_size",
    "s3_bucket_name",
    "s3_region_name",
    "s3_api_version",
    "s3_endpoint_url",
    "s3_aws_access_key_id",
    "s3_aws_secret_access_key",
    "s3_aws_session_token",
    "s3_path",
    "qdrant_api_base",
    "qdrant_api_key",
    "qdrant_collection_name",
    "qdrant_quantization_config",
    "qdrant_semantic_cache_embedding_model",
    "disk_cache_dir",
    "gcs_bucket_name",
    "gcs_path",
    NULL,
};

static const struct section cache_section = {
    "cache_settings", cache_fields, LX_ARRAY_LEN(cache_fields), cache_known, NULL,
};
static const struct section cache_params_section = {
    "litellm_settings.cache_params", cache_fields, LX_ARRAY_LEN(cache_fields), cache_known, NULL,
};

/* ---- litellm_settings -------------------------------------------------- */

#define LS struct lx_litellm_settings
static const struct field litellm_fields[] = {
    FLD("request_timeout", FK_DBL, B_POS, LS, request_timeout),
    FLD("num_retries", FK_INT, B_NONNEG, LS, num_retries),
    FLD("fallbacks", FK_FALLBACK, B_NONE, LS, fallbacks),
    FLD("context_window_fallbacks", FK_FALLBACK, B_NONE, LS, context_window_fallbacks),
    FLD("content_policy_fallbacks", FK_FALLBACK, B_NONE, LS, content_policy_fallbacks),
    FLD("default_fallbacks", FK_LIST, B_NONE, LS, default_fallbacks),
    FLD("max_fallbacks", FK_INT, B_NONNEG, LS, max_fallbacks),
    FLD("allowed_fails", FK_INT, B_NONNEG, LS, allowed_fails),
    FLD("cooldown_time", FK_DBL, B_NONNEG, LS, cooldown_time),
    FLD("disable_cooldowns", FK_BOOL, B_NONE, LS, disable_cooldowns),
    FLD("json_logs", FK_BOOL, B_NONE, LS, json_logs),
    FLD("drop_params", FK_BOOL, B_NONE, LS, drop_params),
    FLD("set_verbose", FK_BOOL, B_NONE, LS, set_verbose),
    FLD("cost_tracking", FK_BOOL, B_NONE, LS, cost_tracking),
    FLD("max_budget", FK_DBL, B_NONNEG, LS, max_budget),
    FLD("success_callback", FK_LIST1, B_NONE, LS, success_callback),
    FLD("failure_callback", FK_LIST1, B_NONE, LS, failure_callback),
    FLD("callbacks", FK_LIST1, B_NONE, LS, callbacks),
    FLD("turn_off_message_logging", FK_BOOL, B_NONE, LS, turn_off_message_logging),
    FLD("redact_user_api_key_info", FK_BOOL, B_NONE, LS, redact_user_api_key_info),
};
#undef LS

static const char *const litellm_known[] = {
    "telemetry",
    "modify_params",
    "enable_json_schema_validation",
    "default_team_settings",
    "service_callback",
    "input_callback",
    "callback_settings",
    "upperbound_key_generate_params",
    "enable_preview_features",
    "default_internal_user_params",
    "default_key_generate_params",
    "key_generation_settings",
    "max_internal_user_budget",
    "internal_user_budget_duration",
    "max_end_user_budget",
    "return_response_headers",
    "force_ipv4",
    "ssl_verify",
    "disable_end_user_cost_tracking",
    "disable_end_user_cost_tracking_prometheus_only",
    "global_disable_no_log_param",
    "routing_strategy_args",
    "provider_budget_config",
    "allowed_fails_policy",
    "retry_after",
    "model_group_retry_policy",
    "langfuse_default_tags",
    "mcp_aliases",
    "priority_reservation",
    "suppress_debug_info",
    "enable_azure_ad_token_refresh",
    "guardrails",
    "public_model_groups",
    "public_model_groups_links",
    "s3_callback_params",
    "datadog_params",
    "model_alias_map",
    "max_parallel_requests",
    "redact_messages_in_exceptions",
    "log_raw_request_response",
    "disable_token_counter",
    "disable_hf_tokenizer_download",
    "enable_loadbalancing_on_batch_endpoints",
    "tag_budget_config",
    "presidio_ad_hoc_recognizers",
    "output_parse_pii",
    "presidio_logging_only",
    "use_litellm_proxy",
    "num_retries_per_request",
    NULL,
};

static int parse_duration_field(struct ld *ld, yaml_node_t *v, const char *path,
                                const char **out_text, long long *out_s)
{
    const char *s = NULL;
    int rc = get_str(ld, v, path, &s);
    if (rc || !s) {
        return rc;
    }
    long long secs;
    if (lx_duration_parse(lx_str_c(s), &secs) != 0) {
        return fail(ld, v, "%s: expected a duration such as 30s, 30m, 1h, 30d, 1w or 1mo", path);
    }
    *out_text = s;
    *out_s = secs;
    return 0;
}

static int litellm_custom(struct ld *ld, const char *sect, yaml_node_t *k, yaml_node_t *v,
                          void *ctx, bool *handled)
{
    (void)ctx;
    struct lx_config *cfg = ld->cfg;
    struct lx_str key = sval(k);
    char path[256];
    snprintf(path, sizeof(path), "%.160s.%.*s", sect, (int)LX_MIN(key.n, 40), key.p);
    if (lx_str_eq_c(key, "budget_duration")) {
        *handled = true;
        return parse_duration_field(ld, v, path, &cfg->litellm.budget_duration,
                                    &cfg->litellm.budget_duration_s);
    }
    if (lx_str_eq_c(key, "cache")) {
        *handled = true;
        return get_bool(ld, v, path, &cfg->cache.enabled);
    }
    if (lx_str_eq_c(key, "cache_ttl")) {
        *handled = true;
        return get_dbl(ld, v, path, &cfg->cache.ttl, B_NONNEG, 0);
    }
    if (lx_str_eq_c(key, "cache_params")) {
        *handled = true;
        return parse_section(ld, v, &cache_params_section, &cfg->cache, NULL);
    }
    return 0;
}

static const struct section litellm_section = {
    "litellm_settings", litellm_fields, LX_ARRAY_LEN(litellm_fields), litellm_known, litellm_custom,
};

/* ---- router_settings --------------------------------------------------- */

#define RS struct lx_router_settings
static const struct field router_fields[] = {
    FLD("num_retries", FK_INT, B_NONNEG, RS, num_retries),
    FLD("timeout", FK_DBL, B_POS, RS, timeout),
    FLD("stream_timeout", FK_DBL, B_POS, RS, stream_timeout),
    FLD("retry_after", FK_DBL, B_NONNEG, RS, retry_after),
    FLD("allowed_fails", FK_INT, B_NONNEG, RS, allowed_fails),
    FLD("cooldown_time", FK_DBL, B_NONNEG, RS, cooldown_time),
    FLD("fallbacks", FK_FALLBACK, B_NONE, RS, fallbacks),
    FLD("context_window_fallbacks", FK_FALLBACK, B_NONE, RS, context_window_fallbacks),
    FLD("content_policy_fallbacks", FK_FALLBACK, B_NONE, RS, content_policy_fallbacks),
    FLD("default_fallbacks", FK_LIST, B_NONE, RS, default_fallbacks),
    FLD("max_fallbacks", FK_INT, B_NONNEG, RS, max_fallbacks),
    FLD("redis_host", FK_STR, B_NONE, RS, redis.host),
    FLD("redis_port", FK_PORT, B_NONE, RS, redis.port),
    FLDF("redis_password", FK_STR, B_NONE, F_EMPTY_NULL, 0, RS, redis.password),
    FLDF("redis_username", FK_STR, B_NONE, F_EMPTY_NULL, 0, RS, redis.username),
    FLD("enable_pre_call_checks", FK_BOOL, B_NONE, RS, enable_pre_call_checks),
    FLD("disable_cooldowns", FK_BOOL, B_NONE, RS, disable_cooldowns),
};
#undef RS

static const char *const router_known[] = {
    "routing_strategy_args",
    "provider_budget_config",
    "allowed_fails_policy",
    "redis_url",
    "redis_db",
    "cache_responses",
    "cache_kwargs",
    "client_ttl",
    "polling_interval",
    "default_litellm_params",
    "set_verbose",
    "debug_level",
    "default_max_parallel_requests",
    "default_priority",
    "enable_tag_filtering",
    "tag_filtering_match_any",
    "optional_pre_call_checks",
    "ignore_invalid_deployments",
    "router_general_settings",
    "assistants_config",
    "search_tools",
    "alerting_config",
    NULL,
};

static const char *const routing_strategies[] = {
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
    "cost-based-routing",
    NULL,
};

/* A retry_policy mapping: error class -> number of retries, kept as decimal text. */
static int parse_retry_policy(struct ld *ld, yaml_node_t *v, const char *path, struct lx_kv **out,
                              size_t *out_n)
{
    if (is_null(v)) {
        return 0;
    }
    if (v->type != YAML_MAPPING_NODE) {
        return fail(ld, v, "%s: expected a mapping", path);
    }
    struct pairs ps;
    int rc = map_pairs(ld, v, path, &ps);
    struct lx_kv *arr = NULL;
    if (rc == 0) {
        arr = aalloc(ld, ps.n, sizeof(*arr));
        if (!arr) {
            rc = nomem(ld);
        }
    }
    size_t o = 0;
    for (size_t i = 0; rc == 0 && i < ps.n; i++) {
        char kb[72], ap[256], num[32];
        long long cnt = -1;
        snprintf(ap, sizeof(ap), "%.160s.%s", path, show(kb, sizeof(kb), sval(ps.p[i].k)));
        rc = get_ll(ld, ps.p[i].v, ap, &cnt, B_NONNEG, 1000000);
        if (rc || cnt < 0) {
            continue;
        }
        snprintf(num, sizeof(num), "%lld", cnt);
        rc = adup(ld, sval(ps.p[i].k), &arr[o].key);
        if (rc == 0) {
            rc = adup(ld, lx_str_c(num), &arr[o].value);
        }
        o += rc == 0;
    }
    pairs_fini(&ps);
    if (rc == 0) {
        *out = arr;
        *out_n = o;
    }
    return rc;
}

static int router_custom(struct ld *ld, const char *sect, yaml_node_t *k, yaml_node_t *v, void *ctx,
                         bool *handled)
{
    (void)ctx;
    struct lx_router_settings *r = &ld->cfg->router;
    struct lx_str key = sval(k);
    char path[256];
    snprintf(path, sizeof(path), "%.160s.%.*s", sect, (int)LX_MIN(key.n, 40), key.p);
    if (lx_str_eq_c(key, "routing_strategy")) {
        *handled = true;
        const char *s = NULL;
        int rc = get_str(ld, v, path, &s);
        if (rc || !s) {
            return rc;
        }
        if (!in_list(routing_strategies, lx_str_c(s))) {
            return fail(ld, v,
                        "%s: expected one of simple-shuffle, least-busy, latency-based-routing, "
                        "usage-based-routing, usage-based-routing-v2, cost-based-routing",
                        path);
        }
        r->routing_strategy = s;
        return 0;
    }
    if (lx_str_eq_c(key, "model_group_alias")) {
        /* alias: group, or alias: {model: group, hidden: true} */
        *handled = true;
        if (is_null(v)) {
            return 0;
        }
        if (v->type != YAML_MAPPING_NODE) {
            return fail(ld, v, "%s: expected a mapping", path);
        }
        struct pairs ps;
        int rc = map_pairs(ld, v, path, &ps);
        struct lx_kv *arr = NULL;
        if (rc == 0) {
            arr = aalloc(ld, ps.n, sizeof(*arr));
            if (!arr) {
                rc = nomem(ld);
            }
        }
        size_t o = 0;
        for (size_t i = 0; rc == 0 && i < ps.n; i++) {
            yaml_node_t *val = ps.p[i].v;
            char kb[72], ap[256];
            snprintf(ap, sizeof(ap), "%.160s.%s", path, show(kb, sizeof(kb), sval(ps.p[i].k)));
            if (val->type == YAML_MAPPING_NODE) {
                struct pairs inner;
                rc = map_pairs(ld, val, ap, &inner);
                if (rc) {
                    break;
                }
                yaml_node_t *m = pairs_get(&inner, "model");
                pairs_fini(&inner);
                if (!m || is_null(m)) {
                    rc = fail(ld, val, "%s: model is required", ap);
                    break;
                }
                val = m;
            }
            const char *target = NULL;
            rc = get_str(ld, val, ap, &target);
            if (rc == 0 && target) {
                rc = adup(ld, sval(ps.p[i].k), &arr[o].key);
                arr[o].value = target;
                o += rc == 0;
            }
        }
        pairs_fini(&ps);
        if (rc == 0) {
            r->model_group_alias = arr;
            r->n_model_group_alias = o;
        }
        return rc;
    }
    if (lx_str_eq_c(key, "retry_policy")) {
        *handled = true;
        return parse_retry_policy(ld, v, path, &r->retry_policy, &r->n_retry_policy);
    }
    if (lx_str_eq_c(key, "model_group_retry_policy")) {
        /* group -> {error class: retries} */
        *handled = true;
        if (is_null(v)) {
            return 0;
        }
        if (v->type != YAML_MAPPING_NODE) {
            return fail(ld, v, "%s: expected a mapping of model group to retry_policy", path);
        }
        struct pairs ps;
        int rc = map_pairs(ld, v, path, &ps);
        struct lx_group_retry_policy *arr = NULL;
        if (rc == 0) {
            arr = aalloc(ld, ps.n, sizeof(*arr));
            if (!arr) {
                rc = nomem(ld);
            }
        }
        size_t o = 0;
        for (size_t i = 0; rc == 0 && i < ps.n; i++) {
            char kb[72], ap[256];
            snprintf(ap, sizeof(ap), "%.160s.%s", path, show(kb, sizeof(kb), sval(ps.p[i].k)));
            rc = parse_retry_policy(ld, ps.p[i].v, ap, &arr[o].policy, &arr[o].n_policy);
            if (rc == 0) {
                rc = adup(ld, sval(ps.p[i].k), &arr[o].group);
            }
            o += rc == 0;
        }
        pairs_fini(&ps);
        if (rc == 0) {
            r->group_retry_policy = arr;
            r->n_group_retry_policy = o;
        }
        return rc;
    }
    return 0;
}

static const struct section router_section = {
    "router_settings", router_fields, LX_ARRAY_LEN(router_fields), router_known, router_custom,
};

/* ---- rate_limit_config ------------------------------------------------- */

#define RC struct lx_redis_cfg
static const struct field redis_fields[] = {
    FLD("redis_host", FK_STR, B_NONE, RC, host),
    FLD("redis_port", FK_PORT, B_NONE, RC, port),
    FLDF("redis_password", FK_STR, B_NONE, F_EMPTY_NULL, 0, RC, password),
    FLDF("redis_username", FK_STR, B_NONE, F_EMPTY_NULL, 0, RC, username),
};
#undef RC

static const struct section rate_limit_section = {
    "rate_limit_config", redis_fields, LX_ARRAY_LEN(redis_fields), NULL, NULL,
};

/* ---- user_config ------------------------------------------------------- */

#define UC struct lx_user_cfg
static const struct field user_fields[] = {
    FLD("user_id", FK_STR, B_NONE, UC, user_id),
    FLD("user_email", FK_STR, B_NONE, UC, user_email),
    FLD("max_budget", FK_DBL, B_NONNEG, UC, max_budget),
    FLD("models", FK_LIST, B_NONE, UC, models),
    FLD("rpm_limit", FK_LL, B_NONNEG, UC, rpm_limit),
    FLD("tpm_limit", FK_LL, B_NONNEG, UC, tpm_limit),
};
#undef UC

static int user_custom(struct ld *ld, const char *sect, yaml_node_t *k, yaml_node_t *v, void *ctx,
                       bool *handled)
{
    struct lx_user_cfg *u = ctx;
    struct lx_str key = sval(k);
    char path[256];
    snprintf(path, sizeof(path), "%.160s.%.*s", sect, (int)LX_MIN(key.n, 40), key.p);
    if (lx_str_eq_c(key, "user_role")) {
        *handled = true;
        const char *s = NULL;
        int rc = get_str(ld, v, path, &s);
        if (rc || !s) {
            return rc;
        }
        u->user_role = lx_user_role_parse(s);
        if (u->user_role == LX_ROLE_UNSET) {
            return fail(ld, v,
                        "%s: expected one of proxy_admin, proxy_admin_viewer, internal_user, "
                        "internal_user_viewer, app_user",
                        path);
        }
        return 0;
    }
    if (lx_str_eq_c(key, "budget_duration")) {
        *handled = true;
        return parse_duration_field(ld, v, path, &u->budget_duration, &u->budget_duration_s);
    }
    return 0;
}

static int parse_users(struct ld *ld, yaml_node_t *n)
{
    if (is_null(n)) {
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        return fail(ld, n, "user_config: expected a list of users");
    }
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    struct lx_user_cfg *users = aalloc(ld, cnt, sizeof(*users));
    if (!users) {
        return nomem(ld);
    }
    ld->cfg->users = users;
    ld->cfg->n_users = 0;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *e = node(ld, n->data.sequence.items.start[i]);
        if (!e || e->type != YAML_MAPPING_NODE) {
            return fail(ld, e ? e : n, "user_config[%zu]: expected a mapping", i);
        }
        struct lx_user_cfg *u = &users[i];
        u->line = line_of(e);
        u->max_budget = -1;
        u->rpm_limit = -1;
        u->tpm_limit = -1;
        u->budget_duration_s = -1;
        char name[40];
        snprintf(name, sizeof(name), "user_config[%zu]", i);
        struct section sec = {name, user_fields, LX_ARRAY_LEN(user_fields), NULL, user_custom};
        int rc = parse_section(ld, e, &sec, u, u);
        if (rc) {
            return rc;
        }
        if (!u->user_id) {
            return fail(ld, e, "user_config[%zu]: user_id is required", i);
        }
        ld->cfg->n_users++;
    }
    return 0;
}

/* ---- logging ----------------------------------------------------------- */

static int parse_loggers(struct ld *ld, yaml_node_t *n)
{
    if (is_null(n)) {
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        return fail(ld, n, "logging: expected a list of loggers");
    }
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    struct lx_logger_cfg *lg = aalloc(ld, cnt, sizeof(*lg));
    if (!lg) {
        return nomem(ld);
    }
    ld->cfg->loggers = lg;
    ld->cfg->n_loggers = 0;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *e = node(ld, n->data.sequence.items.start[i]);
        char where[40];
        snprintf(where, sizeof(where), "logging[%zu]", i);
        if (!e || e->type != YAML_MAPPING_NODE) {
            return fail(ld, e ? e : n, "%s: expected a mapping with a type", where);
        }
        struct lx_logger_cfg *l = &lg[i];
        l->line = line_of(e);
        struct pairs ps;
        int rc = map_pairs(ld, e, where, &ps);
        if (rc) {
            return rc;
        }
        l->params = aalloc(ld, ps.n, sizeof(*l->params));
        if (!l->params) {
            rc = nomem(ld);
        }
        for (size_t x = 0; rc == 0 && x < ps.n; x++) {
            char kb[72], path[256];
            snprintf(path, sizeof(path), "%.160s.%s", where, show(kb, sizeof(kb), sval(ps.p[x].k)));
            if (lx_str_eq_c(sval(ps.p[x].k), "type")) {
                rc = get_str(ld, ps.p[x].v, path, &l->type);
                continue;
            }
            const char *val = NULL;
            rc = get_str(ld, ps.p[x].v, path, &val);
            if (rc == 0 && val) {
                rc = adup(ld, sval(ps.p[x].k), &l->params[l->n_params].key);
                l->params[l->n_params].value = val;
                l->n_params += rc == 0;
            }
        }
        pairs_fini(&ps);
        if (rc) {
            return rc;
        }
        if (!l->type || !*l->type) {
            return fail(ld, e, "%s: type is required", where);
        }
        ld->cfg->n_loggers++;
    }
    return 0;
}

/* ---- environment_variables --------------------------------------------- */

static int parse_env(struct ld *ld, yaml_node_t *n)
{
    if (is_null(n)) {
        return 0;
    }
    if (n->type != YAML_MAPPING_NODE) {
        return fail(ld, n, "environment_variables: expected a mapping");
    }
    struct pairs ps;
    int rc = map_pairs(ld, n, "environment_variables", &ps);
    if (rc) {
        return rc;
    }
    struct lx_kv *arr = aalloc(ld, ps.n, sizeof(*arr));
    size_t o = 0;
    if (!arr) {
        rc = nomem(ld);
    }
    for (size_t i = 0; rc == 0 && i < ps.n; i++) {
        struct lx_str name = sval(ps.p[i].k);
        char kb[72], path[256];
        show(kb, sizeof(kb), name);
        snprintf(path, sizeof(path), "environment_variables.%s", kb);
        if (name.n == 0 || memchr(name.p, '=', name.n)) {
            rc =
                fail(ld, ps.p[i].k, "environment_variables: '%s' is not a valid variable name", kb);
            break;
        }
        const char *val = NULL;
        rc = get_str(ld, ps.p[i].v, path, &val);
        if (rc) {
            break;
        }
        if (!val) {
            warn(ld, ps.p[i].k, "environment_variables.%s has no value (ignored)", kb);
            continue;
        }
        rc = adup(ld, name, &arr[o].key);
        if (rc) {
            break;
        }
        arr[o].value = val;
        /*
         * setenv is not safe while other threads read the environment; a reload
         * runs beside the workers, so the environment is touched only when a
         * value really changes.
         */
        const char *cur = getenv(arr[o].key);
        if ((!cur || strcmp(cur, val) != 0) && setenv(arr[o].key, val, 1) != 0) {
            rc = fail(ld, ps.p[i].k, "environment_variables: cannot set %s: %s", kb,
                      strerror(errno));
            break;
        }
        o++;
    }
    pairs_fini(&ps);
    if (rc == 0) {
        ld->cfg->environment_variables = arr;
        ld->cfg->n_environment_variables = o;
    }
    return rc;
}

/* ---- model_list -------------------------------------------------------- */

#define DP struct lx_deployment
static const struct field lp_fields[] = {
    FLDF("model", FK_STR, B_NONE, F_STRICT_ENV, 0, DP, model),
    FLDF("custom_llm_provider", FK_STR, B_NONE, F_STRICT_ENV, 0, DP, custom_llm_provider),
    FLD("api_key", FK_STR, B_NONE, DP, api_key),
    FLD("api_base", FK_STR, B_NONE, DP, api_base),
    FLD("api_version", FK_STR, B_NONE, DP, api_version),
    FLD("organization", FK_STR, B_NONE, DP, organization),
    FLD("region_name", FK_STR, B_NONE, DP, region_name),
    FLD("aws_access_key_id", FK_STR, B_NONE, DP, aws_access_key_id),
    FLD("aws_secret_access_key", FK_STR, B_NONE, DP, aws_secret_access_key),
    FLD("aws_session_token", FK_STR, B_NONE, DP, aws_session_token),
    FLD("aws_region_name", FK_STR, B_NONE, DP, aws_region_name),
    FLD("timeout", FK_DBL, B_POS, DP, timeout),
    FLD("stream_timeout", FK_DBL, B_POS, DP, stream_timeout),
    FLD("max_retries", FK_INT, B_NONNEG, DP, max_retries),
    FLD("rpm", FK_LL, B_NONNEG, DP, rpm),
    FLD("tpm", FK_LL, B_NONNEG, DP, tpm),
    FLD("weight", FK_DBL, B_NONNEG, DP, weight),
    FLD("order", FK_INT, B_NONNEG, DP, order),
    FLD("input_cost_per_token", FK_DBL, B_NONNEG, DP, input_cost_per_token),
    FLD("output_cost_per_token", FK_DBL, B_NONNEG, DP, output_cost_per_token),
};
#undef DP

/* litellm_params keys outside the table: headers, mock_response, and request params. */
static int lp_custom(struct ld *ld, const char *sect, yaml_node_t *k, yaml_node_t *v, void *ctx,
                     bool *handled)
{
    struct lx_deployment *d = ctx;
    struct lx_str key = sval(k);
    char kb[72], path[256];
    snprintf(path, sizeof(path), "%.160s.%s", sect, show(kb, sizeof(kb), key));
    *handled = true;
    if (lx_str_eq_c(key, "extra_headers") || lx_str_eq_c(key, "headers")) {
        return get_kv(ld, v, path, &d->extra_headers, &d->n_extra_headers);
    }
    if (lx_str_eq_c(key, "mock_response")) {
        if (v->type != YAML_SCALAR_NODE) {
            return fail(ld, v, "%s: expected a string", path);
        }
        const char *s = NULL;
        int rc = get_str(ld, v, path, &s);
        if (rc == 0 && s) {
            d->mock_response = s;
            d->has_mock_response = true;
        }
        return rc;
    }
    /* Anything else is a request parameter LiteLLM passes to the provider. */
    cJSON *j;
    int rc = to_json(ld, v, path, &j);
    if (rc) {
        return rc;
    }
    if (!d->extra_params) {
        d->extra_params = cJSON_CreateObject();
        if (!d->extra_params) {
            cJSON_Delete(j);
            return nomem(ld);
        }
    }
    if (!cJSON_AddItemToObject(d->extra_params, (const char *)k->data.scalar.value, j)) {
        cJSON_Delete(j);
        return nomem(ld);
    }
    LX_DEBUG("%s:%d: model_list[%zu]: %s is sent to the provider as a request parameter", ld->name,
             line_of(k), d->index, path);
    return 0;
}

static const struct section lp_section = {
    "litellm_params", lp_fields, LX_ARRAY_LEN(lp_fields), NULL, lp_custom,
};

static int parse_model_info(struct ld *ld, struct lx_deployment *d, yaml_node_t *mi)
{
    if (is_null(mi)) {
        return 0;
    }
    if (mi->type != YAML_MAPPING_NODE) {
        return fail(ld, mi, "model_list[%zu]: model_info: expected a mapping", d->index);
    }
    struct pairs ps;
    int rc = map_pairs(ld, mi, "model_info", &ps);
    for (size_t i = 0; rc == 0 && i < ps.n; i++) {
        struct lx_str key = sval(ps.p[i].k);
        if (lx_str_eq_c(key, "id")) {
            rc = get_str(ld, ps.p[i].v, "model_info.id", &d->id);
            if (rc == 0 && d->id && !*d->id) {
                rc = fail(ld, ps.p[i].v, "model_info.id: must not be empty");
            }
        } else if (lx_str_eq_c(key, "mode")) {
            rc = get_str(ld, ps.p[i].v, "model_info.mode", &d->mode);
        } else if (lx_str_eq_c(key, "base_model")) {
            rc = get_str(ld, ps.p[i].v, "model_info.base_model", &d->base_model);
        }
    }
    pairs_fini(&ps);
    if (rc == 0) {
        rc = to_json(ld, mi, "model_info", &d->model_info);
    }
    return rc;
}

/*
 * No api_base: the preset's base variable, as LiteLLM reads it: the key
 * variable with _API_BASE for _API_KEY (OPENAI_API_BASE, ANTHROPIC_API_BASE,
 * AZURE_API_BASE, GROQ_API_BASE, ...), then the official SDKs' *_BASE_URL.
 * Read once per load, like the key.
 */
static int base_from_env(struct ld *ld, struct lx_deployment *d)
{
    const char *key_env = d->provider.default_key_env;
    size_t n = strlen(key_env);
    if (n < 8 || n > 64 || strcmp(key_env + n - 8, "_API_KEY") != 0) {
        return 0;
    }
    char name[80];
    const char *suffixes[] = {"_API_BASE", "_BASE_URL"};
    for (size_t i = 0; i < LX_ARRAY_LEN(suffixes); i++) {
        snprintf(name, sizeof(name), "%.*s%s", (int)(n - 8), key_env, suffixes[i]);
        const char *v = getenv(name);
        if (v && *v) {
            return adup(ld, lx_str_c(v), &d->api_base);
        }
    }
    return 0;
}

static int parse_deployment(struct ld *ld, yaml_node_t *e, struct lx_deployment *d)
{
    d->line = line_of(e);
    d->timeout = -1;
    d->stream_timeout = -1;
    d->max_retries = -1;
    d->rpm = -1;
    d->tpm = -1;
    d->weight = 1;
    d->order = -1;
    d->input_cost_per_token = -1;
    d->output_cost_per_token = -1;
    if (e->type != YAML_MAPPING_NODE) {
        return fail(ld, e, "model_list[%zu]: expected a mapping with model_name and litellm_params",
                    d->index);
    }
    char where[40];
    snprintf(where, sizeof(where), "model_list[%zu]", d->index);
    struct pairs ps;
    int rc = map_pairs(ld, e, where, &ps);
    if (rc) {
        return rc;
    }
    yaml_node_t *name = NULL, *lp = NULL, *mi = NULL;
    for (size_t i = 0; i < ps.n; i++) {
        struct lx_str key = sval(ps.p[i].k);
        if (lx_str_eq_c(key, "model_name")) {
            name = ps.p[i].v;
        } else if (lx_str_eq_c(key, "litellm_params")) {
            lp = ps.p[i].v;
        } else if (lx_str_eq_c(key, "model_info")) {
            mi = ps.p[i].v;
        } else {
            char kb[72];
            warn(ld, ps.p[i].k, "unknown key '%s' in %s (ignored)", show(kb, sizeof(kb), key),
                 where);
        }
    }
    pairs_fini(&ps);
    char nb[72];
    if (name) {
        rc = get_str(ld, name, "model_name", &d->model_name);
        if (rc) {
            return rc;
        }
    }
    if (!d->model_name || !*d->model_name) {
        return fail(ld, name ? name : e, "%s: model_name is required", where);
    }
    show(nb, sizeof(nb), lx_str_c(d->model_name));
    if (!lp || is_null(lp)) {
        return fail(ld, lp ? lp : e, "%s (%s): litellm_params is required", where, nb);
    }
    if (lp->type != YAML_MAPPING_NODE) {
        return fail(ld, lp, "%s (%s): litellm_params: expected a mapping", where, nb);
    }
    ld->dep = d;
    rc = parse_section(ld, lp, &lp_section, d, d);
    ld->dep = NULL;
    if (rc) {
        return rc;
    }
    if (!d->model || !*d->model) {
        return fail(ld, lp, "%s (%s): litellm_params.model is required", where, nb);
    }
    /* The model's line for messages: the last explicit `model:` (no merges, no warnings). */
    yaml_node_t *mnode = NULL;
    for (yaml_node_pair_t *p = lp->data.mapping.pairs.start; p < lp->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(ld, p->key);
        if (k && k->type == YAML_SCALAR_NODE && lx_str_eq_c(sval(k), "model")) {
            mnode = node(ld, p->value);
        }
    }
    if (!lx_provider_parse_model(lx_str_c(d->model), lx_str_c(d->custom_llm_provider),
                                 &d->provider)) {
        char mb[72], pb[72];
        show(mb, sizeof(mb), lx_str_c(d->model));
        if (d->custom_llm_provider) {
            return fail(ld, mnode ? mnode : lp,
                        "%s (%s): unknown custom_llm_provider '%s' for model '%s'", where, nb,
                        show(pb, sizeof(pb), lx_str_c(d->custom_llm_provider)), mb);
        }
        const char *slash = strchr(d->model, '/');
        if (slash) {
            show(pb, sizeof(pb), (struct lx_str){d->model, (size_t)(slash - d->model)});
            return fail(ld, mnode ? mnode : lp,
                        "%s (%s): cannot tell the provider of model '%s' (unknown prefix '%s'); "
                        "use a provider prefix like openai/",
                        where, nb, mb, pb);
        }
        return fail(ld, mnode ? mnode : lp,
                    "%s (%s): cannot tell the provider of model '%s'; use a provider prefix like "
                    "openai/%s",
                    where, nb, mb, mb);
    }
    rc = adup(ld, d->provider.upstream_model, &d->upstream_model);
    if (rc) {
        return rc;
    }
    d->provider.upstream_model = lx_str_c(d->upstream_model);
    /*
     * No api_key: the preset's variable (OPENAI_API_KEY, ...) is read here, once
     * per load, so requests never call getenv (which a reload's setenv could race).
     */
    if (!d->api_key && !d->missing_env && d->provider.default_key_env) {
        const char *v = getenv(d->provider.default_key_env);
        if (v && *v) {
            rc = adup(ld, lx_str_c(v), &d->api_key);
            if (rc) {
                return rc;
            }
        }
    }
    if (!d->api_base && !d->missing_env && d->provider.default_key_env) {
        rc = base_from_env(ld, d);
        if (rc) {
            return rc;
        }
    }
    if (mi) {
        rc = parse_model_info(ld, d, mi);
    }
    return rc;
}

static int parse_models(struct ld *ld, yaml_node_t *n)
{
    if (is_null(n)) {
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        return fail(ld, n, "model_list: expected a list of models");
    }
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt > MAX_MODELS) {
        return fail(ld, n, "model_list: %zu entries; the limit is %d", cnt, MAX_MODELS);
    }
    struct lx_deployment *deps = aalloc(ld, cnt, sizeof(*deps));
    if (!deps) {
        return nomem(ld);
    }
    /* Counted up front so lx_config_unref frees the JSON of a half-read list. */
    ld->cfg->deployments = deps;
    ld->cfg->n_deployments = cnt;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *e = node(ld, n->data.sequence.items.start[i]);
        deps[i].index = i;
        if (!e) {
            return fail(ld, n, "model_list[%zu]: missing entry", i);
        }
        int rc = parse_deployment(ld, e, &deps[i]);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/*
 * Models added at run time (the store's lx_models rows, secrets already
 * decrypted) become deployments after the file's model_list. Each is printed
 * as JSON, which is YAML, and read by the same code as a model_list entry, so
 * os.environ/ references, providers and every litellm_params key behave as in
 * the file. One that does not load is skipped with a warning naming its
 * model_name and id (the loader's messages never contain values).
 */
static int walk(struct ld *ld, yaml_node_t *n, int depth);
static int yaml_error(struct ld *ld, yaml_parser_t *p, const char *yaml, size_t len);

static int parse_stored_models(struct ld *ld)
{
    const cJSON *models = ld->stored;
    if (!cJSON_IsArray(models) || cJSON_GetArraySize(models) <= 0) {
        return 0;
    }
    struct lx_config *cfg = ld->cfg;
    size_t base = cfg->n_deployments, extra = (size_t)cJSON_GetArraySize(models);
    if (base + extra > MAX_MODELS) {
        return lx_error_set(ld->err, LX_ECONFIG,
                            "%s: %zu models in the file and %zu in the store; the limit is %d",
                            ld->name, base, extra, MAX_MODELS);
    }
    struct lx_deployment *deps = aalloc(ld, base + extra, sizeof(*deps));
    if (!deps) {
        return nomem(ld);
    }
    if (base) {
        memcpy(deps, cfg->deployments, base * sizeof(*deps));
    }
    cfg->deployments = deps;
    const cJSON *m;
    cJSON_ArrayForEach(m, models)
    {
        size_t o = cfg->n_deployments;
        struct lx_deployment *d = &deps[o];
        memset(d, 0, sizeof(*d));
        d->index = o;
        const cJSON *mi = cJSON_GetObjectItemCaseSensitive(m, "model_info");
        const cJSON *idj = cJSON_GetObjectItemCaseSensitive(mi, "id");
        const cJSON *namej = cJSON_GetObjectItemCaseSensitive(m, "model_name");
        char ib[72], nb[72], where[128];
        show(ib, sizeof(ib), lx_str_c(cJSON_IsString(idj) ? idj->valuestring : "?"));
        show(nb, sizeof(nb), lx_str_c(cJSON_IsString(namej) ? namej->valuestring : "?"));
        snprintf(where, sizeof(where), "stored model %s", ib);

        struct lx_error e = {0};
        struct ld sub = {.name = where, .cfg = cfg, .a = ld->a, .err = &e, .budget = ld->budget};
        char *text = cJSON_PrintUnformatted(m);
        if (!text) {
            return nomem(ld);
        }
        yaml_parser_t parser;
        int rc = 0;
        if (!yaml_parser_initialize(&parser)) {
            cJSON_free(text);
            return nomem(ld);
        }
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
        if (!yaml_parser_load(&parser, &sub.doc)) {
            rc = yaml_error(&sub, &parser, text, strlen(text));
            yaml_parser_delete(&parser);
        } else {
            yaml_parser_delete(&parser);
            yaml_node_t *root = yaml_document_get_root_node(&sub.doc);
            rc = walk(&sub, root, 0);
            if (rc == 0) {
                rc = root ? parse_deployment(&sub, root, d)
                          : lx_error_set(&e, LX_ECONFIG, "%s: empty", where);
            }
            yaml_document_delete(&sub.doc);
        }
        cJSON_free(text);
        if (rc == 0 && d->id) {
            for (size_t i = 0; i < o; i++) {
                if (deps[i].id && strcmp(deps[i].id, d->id) == 0) {
                    rc = lx_error_set(&e, LX_ECONFIG, "%s: its id is also used by model_list[%zu]",
                                      where, i);
                    break;
                }
            }
        }
        if (rc == LX_ENOMEM) {
            cJSON_Delete(d->extra_params);
            cJSON_Delete(d->model_info);
            return nomem(ld);
        }
        if (rc) {
            cJSON_Delete(d->extra_params);
            cJSON_Delete(d->model_info);
            memset(d, 0, sizeof(*d));
            if (ld->stored_strict) {
                return lx_error_set(ld->err, rc, "%s", e.msg);
            }
            cfg->n_warnings++;
            LX_WARN("stored model '%s' (id %s) skipped: %s", nb, ib, e.msg);
            continue;
        }
        cfg->n_deployments = o + 1;
    }
    return 0;
}

/* ---- ids and groups ---------------------------------------------------- */

static int sha256_hex(const struct lx_deployment *d, const char *ordinal, unsigned char *raw,
                      char *hex)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) {
        return LX_ENOMEM;
    }
    const char *parts[] = {d->model_name,
                           "\n",
                           d->model,
                           "\n",
                           d->api_base ? d->api_base : "",
                           "\n",
                           d->api_version ? d->api_version : "",
                           ordinal ? "\n" : "",
                           ordinal ? ordinal : ""};
    int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (size_t i = 0; ok && i < LX_ARRAY_LEN(parts); i++) {
        ok = EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]));
    }
    if (ok) {
        ok = EVP_DigestFinal_ex(ctx, md, &mdlen);
    }
    EVP_MD_CTX_free(ctx);
    if (!ok || mdlen != 32) {
        return LX_ENOMEM;
    }
    if (raw) {
        memcpy(raw, md, 32);
    }
    if (hex) {
        static const char digits[] = "0123456789abcdef";
        for (unsigned i = 0; i < 32; i++) {
            hex[2 * i] = digits[md[i] >> 4];
            hex[2 * i + 1] = digits[md[i] & 15];
        }
        hex[64] = '\0';
    }
    return 0;
}

struct idsort {
    unsigned char digest[32];
    size_t index;
};

static int cmp_idsort(const void *pa, const void *pb)
{
    const struct idsort *a = pa, *b = pb;
    int c = memcmp(a->digest, b->digest, 32);
    if (c == 0) {
        c = a->index < b->index ? -1 : (a->index > b->index ? 1 : 0);
    }
    return c;
}

static int cmp_dep_id(const void *pa, const void *pb)
{
    const struct lx_deployment *a = *(const struct lx_deployment *const *)pa;
    const struct lx_deployment *b = *(const struct lx_deployment *const *)pb;
    int c = strcmp(a->id, b->id);
    if (c == 0) {
        c = a->index < b->index ? -1 : (a->index > b->index ? 1 : 0);
    }
    return c;
}

/*
 * Stable ids for deployments without model_info.id: SHA-256 of the
 * identifying fields (never a secret) plus an ordinal among identical ones,
 * so an unchanged config keeps its ids across reloads.
 */
static int assign_ids(struct ld *ld)
{
    struct lx_config *cfg = ld->cfg;
    size_t n = cfg->n_deployments;
    if (n == 0) {
        return 0;
    }
    int rc = 0;
    struct lx_deployment **byid = NULL;
    struct idsort *s = lx_try_malloc(n * sizeof(*s));
    if (!s) {
        return nomem(ld);
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (cfg->deployments[i].id) {
            continue;
        }
        s[m].index = i;
        if (sha256_hex(&cfg->deployments[i], NULL, s[m].digest, NULL) != 0) {
            rc = nomem(ld);
            goto out;
        }
        m++;
    }
    qsort(s, m, sizeof(*s), cmp_idsort);
    size_t ordinal = 0;
    for (size_t i = 0; i < m; i++) {
        ordinal = (i > 0 && memcmp(s[i].digest, s[i - 1].digest, 32) == 0) ? ordinal + 1 : 0;
        char ord[24], hex[65];
        snprintf(ord, sizeof(ord), "%zu", ordinal);
        struct lx_deployment *d = &cfg->deployments[s[i].index];
        if (sha256_hex(d, ord, NULL, hex) != 0) {
            rc = nomem(ld);
            goto out;
        }
        rc = adup(ld, lx_str_c(hex), &d->id);
        if (rc) {
            goto out;
        }
    }
    byid = lx_try_malloc(n * sizeof(*byid));
    if (!byid) {
        rc = nomem(ld);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        byid[i] = &cfg->deployments[i];
    }
    qsort(byid, n, sizeof(*byid), cmp_dep_id);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(byid[i]->id, byid[i - 1]->id) == 0) {
            char ib[72];
            struct lx_deployment *later = byid[i];
            rc = lx_error_set(ld->err, LX_ECONFIG,
                              "%s:%d: model_list[%zu]: duplicate model_info.id '%s' (also used by "
                              "model_list[%zu] at line %d)",
                              ld->name, later->line, later->index,
                              show(ib, sizeof(ib), lx_str_c(later->id)), byid[i - 1]->index,
                              byid[i - 1]->line);
            goto out;
        }
    }
out:
    lx_free(s);
    lx_free(byid);
    return rc;
}

static int cmp_dep_name(const void *pa, const void *pb)
{
    const struct lx_deployment *a = *(const struct lx_deployment *const *)pa;
    const struct lx_deployment *b = *(const struct lx_deployment *const *)pb;
    int c = strcmp(a->model_name, b->model_name);
    if (c == 0) {
        c = a->index < b->index ? -1 : (a->index > b->index ? 1 : 0);
    }
    return c;
}

static int cmp_group_first(const void *pa, const void *pb)
{
    const struct lx_model_group *a = pa, *b = pb;
    size_t x = a->deployments[0]->index, y = b->deployments[0]->index;
    return x < y ? -1 : (x > y ? 1 : 0);
}

/* Deployments grouped by model_name, groups in order of first appearance. */
static int build_groups(struct ld *ld)
{
    struct lx_config *cfg = ld->cfg;
    size_t n = cfg->n_deployments;
    if (n == 0) {
        return 0;
    }
    struct lx_deployment **sorted = aalloc(ld, n, sizeof(*sorted));
    struct lx_model_group *groups = aalloc(ld, n, sizeof(*groups));
    if (!sorted || !groups) {
        return nomem(ld);
    }
    for (size_t i = 0; i < n; i++) {
        sorted[i] = &cfg->deployments[i];
    }
    qsort(sorted, n, sizeof(*sorted), cmp_dep_name);
    size_t g = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && strcmp(sorted[i]->model_name, sorted[j]->model_name) == 0) {
            j++;
        }
        /* The run is sorted by index: config order within the group. */
        groups[g].name = sorted[i]->model_name;
        groups[g].deployments = &sorted[i];
        groups[g].n = j - i;
        groups[g].is_wildcard = strchr(sorted[i]->model_name, '*') != NULL;
        g++;
        i = j;
    }
    qsort(groups, g, sizeof(*groups), cmp_group_first);
    cfg->groups = groups;
    cfg->n_groups = g;
    return 0;
}

/* ---- the document ------------------------------------------------------ */

/* Bound depth (recursive aliases included) and the size after alias expansion. */
static int walk(struct ld *ld, yaml_node_t *n, int depth)
{
    if (!n) {
        return 0;
    }
    if (--ld->budget < 0) {
        return fail(ld, n, "the config has more than %ld nodes after alias expansion", MAX_NODES);
    }
    if (depth > MAX_DEPTH) {
        return fail(ld, n, "nesting deeper than %d levels (or a recursive alias)", MAX_DEPTH);
    }
    int rc = 0;
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             rc == 0 && it < n->data.sequence.items.top; it++) {
            rc = walk(ld, node(ld, *it), depth + 1);
        }
    } else if (n->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             rc == 0 && p < n->data.mapping.pairs.top; p++) {
            rc = walk(ld, node(ld, p->key), depth + 1);
            if (rc == 0) {
                rc = walk(ld, node(ld, p->value), depth + 1);
            }
        }
    }
    return rc;
}

static int yaml_error(struct ld *ld, yaml_parser_t *p, const char *yaml, size_t len)
{
    if (p->error == YAML_MEMORY_ERROR) {
        return nomem(ld);
    }
    size_t line;
    if (p->error == YAML_READER_ERROR) {
        line = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            line += yaml[i] == '\n';
        }
    } else {
        line = p->problem_mark.line + 1;
    }
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->context) {
        return lx_error_set(ld->err, LX_ECONFIG, "%s:%zu: %s (%s)", ld->name, line, problem,
                            p->context);
    }
    return lx_error_set(ld->err, LX_ECONFIG, "%s:%zu: %s", ld->name, line, problem);
}

static const char *const top_keys[] = {
    "model_list",
    "general_settings",
    "litellm_settings",
    "router_settings",
    "environment_variables",
    "user_config",
    "rate_limit_config",
    "fallback_mapping",
    "cache_settings",
    "logging",
    NULL,
};

static int load_root(struct ld *ld, yaml_node_t *root)
{
    struct lx_config *cfg = ld->cfg;
    if (is_null(root)) {
        int rc = parse_stored_models(ld);
        if (rc == 0) {
            rc = assign_ids(ld);
        }
        return rc ? rc : build_groups(ld);
    }
    if (root->type != YAML_MAPPING_NODE) {
        return fail(ld, root, "the config must be a mapping (model_list:, general_settings:, ...)");
    }
    struct pairs ps;
    int rc = map_pairs(ld, root, "the top-level mapping", &ps);
    if (rc) {
        return rc;
    }
    /* environment_variables first: later os.environ/ references may use them. */
    yaml_node_t *env = pairs_get(&ps, "environment_variables");
    if (env) {
        rc = parse_env(ld, env);
    }
    for (size_t i = 0; rc == 0 && i < ps.n; i++) {
        struct lx_str key = sval(ps.p[i].k);
        yaml_node_t *v = ps.p[i].v;
        if (lx_str_eq_c(key, "model_list")) {
            rc = parse_models(ld, v);
        } else if (lx_str_eq_c(key, "general_settings")) {
            rc = parse_section(ld, v, &general_section, &cfg->general, NULL);
        } else if (lx_str_eq_c(key, "litellm_settings")) {
            rc = parse_section(ld, v, &litellm_section, &cfg->litellm, NULL);
        } else if (lx_str_eq_c(key, "router_settings")) {
            rc = parse_section(ld, v, &router_section, &cfg->router, NULL);
        } else if (lx_str_eq_c(key, "user_config")) {
            rc = parse_users(ld, v);
        } else if (lx_str_eq_c(key, "rate_limit_config")) {
            rc = parse_section(ld, v, &rate_limit_section, &cfg->rate_limit_redis, NULL);
        } else if (lx_str_eq_c(key, "fallback_mapping")) {
            rc = get_fallbacks(ld, v, "fallback_mapping", &cfg->fallback_mapping);
        } else if (lx_str_eq_c(key, "cache_settings")) {
            if (!is_null(v)) {
                cfg->cache.enabled = true;
            }
            rc = parse_section(ld, v, &cache_section, &cfg->cache, NULL);
        } else if (lx_str_eq_c(key, "logging")) {
            rc = parse_loggers(ld, v);
        } else if (!in_list(top_keys, key)) {
            char kb[72];
            warn(ld, ps.p[i].k, "unknown top-level key '%s' (ignored)", show(kb, sizeof(kb), key));
        }
    }
    pairs_fini(&ps);
    if (rc == 0) {
        rc = parse_stored_models(ld);
    }
    if (rc == 0) {
        rc = assign_ids(ld);
    }
    if (rc == 0) {
        rc = build_groups(ld);
    }
    return rc;
}

static void set_defaults(struct lx_config *cfg)
{
    struct lx_general_settings *g = &cfg->general;
    g->max_request_size_mb = 10;
    g->max_response_size_mb = 128;
    g->global_max_rpm = -1;
    g->global_max_tpm = -1;
    g->health_check_interval = 300;
    g->user_api_key_cache_ttl = 30;
    g->request_header_timeout = 30;
    g->request_body_timeout = 60;
    g->keepalive_timeout = 65;
    g->send_timeout = 120;
    g->drain_timeout = 30;
    g->max_header_size_kb = 32;

    struct lx_litellm_settings *l = &cfg->litellm;
    l->request_timeout = 600;
    l->num_retries = -1;
    l->max_fallbacks = -1;
    l->allowed_fails = -1;
    l->cooldown_time = -1;
    l->max_budget = -1;
    l->budget_duration_s = -1;

    struct lx_router_settings *r = &cfg->router;
    r->num_retries = -1;
    r->timeout = -1;
    r->stream_timeout = -1;
    r->retry_after = -1;
    r->allowed_fails = -1;
    r->cooldown_time = -1;
    r->max_fallbacks = -1;
    r->redis.port = 6379;

    cfg->rate_limit_redis.port = 6379;
    cfg->cache.redis.port = 6379;
    cfg->cache.similarity_threshold = -1;
    cfg->cache.ttl = -1;
}

static struct lx_config *load_string(const char *name, const char *yaml, size_t len,
                                     const cJSON *stored, bool strict, struct lx_error *err)
{
    struct lx_error scratch;
    if (!err) {
        err = &scratch;
    }
    err->code = 0;
    err->msg[0] = '\0';
    if (!name) {
        name = "config";
    }
    if (len > MAX_FILE_BYTES) {
        lx_error_set(err, LX_ECONFIG, "%s: the config is %zu bytes; the limit is %zu MiB", name,
                     len, MAX_FILE_BYTES >> 20);
        return NULL;
    }
    struct lx_config *cfg = LX_NEW(struct lx_config);
    atomic_init(&cfg->refs, 1);
    lx_arena_init(&cfg->arena, NULL, 0, 16384);
    cfg->loaded_at = (int64_t)time(NULL);
    set_defaults(cfg);

    struct ld ld = {.name = name,
                    .cfg = cfg,
                    .a = &cfg->arena,
                    .err = err,
                    .budget = MAX_NODES,
                    .stored = stored,
                    .stored_strict = strict};
    int rc = adup(&ld, lx_str_c(name), &cfg->path);
    if (rc) {
        goto out;
    }
    ld.name = cfg->path;

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        rc = nomem(&ld);
        goto out;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)(yaml ? yaml : ""), len);
    if (!yaml_parser_load(&parser, &ld.doc)) {
        rc = yaml_error(&ld, &parser, yaml, len);
        yaml_parser_delete(&parser);
        goto out;
    }
    yaml_node_t *root = yaml_document_get_root_node(&ld.doc);
    if (root) {
        /* PyYAML's safe_load refuses a stream of several documents; so do we. */
        yaml_document_t next;
        if (!yaml_parser_load(&parser, &next)) {
            rc = yaml_error(&ld, &parser, yaml, len);
        } else {
            if (yaml_document_get_root_node(&next)) {
                rc = lx_error_set(err, LX_ECONFIG, "%s:%d: expected a single YAML document",
                                  ld.name, (int)next.start_mark.line + 1);
            }
            yaml_document_delete(&next);
        }
    }
    yaml_parser_delete(&parser);
    if (rc == 0) {
        rc = walk(&ld, root, 0);
    }
    if (rc == 0) {
        rc = load_root(&ld, root);
    }
    yaml_document_delete(&ld.doc);
out:
    if (rc) {
        if (err->code == 0) {
            lx_error_set(err, rc, "%s: %s", name, lx_strerror(rc));
        }
        lx_config_unref(cfg);
        return NULL;
    }
    return cfg;
}

struct lx_config *lx_config_load_string(const char *name, const char *yaml, size_t len,
                                        struct lx_error *err)
{
    return load_string(name, yaml, len, NULL, false, err);
}

int lx_config_check_model(const cJSON *model, struct lx_error *err)
{
    cJSON *arr = cJSON_CreateArray();
    cJSON *copy = cJSON_Duplicate(model, true);
    if (!arr || !copy || !cJSON_AddItemToArray(arr, copy)) {
        cJSON_Delete(arr);
        cJSON_Delete(copy);
        return lx_error_set(err, LX_ENOMEM, "out of memory");
    }
    struct lx_config *cfg = load_string("model", "", 0, arr, true, err);
    cJSON_Delete(arr);
    if (!cfg) {
        return err && err->code ? err->code : LX_ECONFIG;
    }
    lx_config_unref(cfg);
    return 0;
}

struct lx_config *lx_config_load(const char *path, struct lx_error *err)
{
    return lx_config_load_with_models(path, NULL, err);
}

struct lx_config *lx_config_load_with_models(const char *path, const cJSON *models,
                                             struct lx_error *err)
{
    if (!path) {
        return load_string("(no config)", "", 0, models, false, err);
    }
    struct lx_error scratch;
    if (!err) {
        err = &scratch;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lx_error_set(err, LX_EIO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        lx_error_set(err, LX_EIO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (S_ISREG(st.st_mode) && (size_t)st.st_size > MAX_FILE_BYTES) {
        lx_error_set(err, LX_ECONFIG, "%s: the config is %lld bytes; the limit is %zu MiB", path,
                     (long long)st.st_size, MAX_FILE_BYTES >> 20);
        close(fd);
        return NULL;
    }
    /* Read at most one byte past the cap, so a growing or special file is bounded too. */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536;
    size_t len = 0;
    char *buf = lx_try_malloc(cap);
    struct lx_config *cfg = NULL;
    if (!buf) {
        lx_error_set(err, LX_ENOMEM, "%s: out of memory reading the config", path);
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > MAX_FILE_BYTES) {
                lx_error_set(err, LX_ECONFIG, "%s: the config is larger than the limit of %zu MiB",
                             path, MAX_FILE_BYTES >> 20);
                goto out;
            }
            size_t ncap = LX_MIN(cap * 2, MAX_FILE_BYTES + 1);
            char *nb = lx_try_realloc(buf, ncap);
            if (!nb) {
                lx_error_set(err, LX_ENOMEM, "%s: out of memory reading the config", path);
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            lx_error_set(err, LX_EIO, "%s: cannot read: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0) {
            break;
        }
        len += (size_t)r;
    }
    cfg = load_string(path, buf, len, models, false, err);
out:
    lx_free(buf);
    close(fd);
    return cfg;
}
