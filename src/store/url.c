/*
 * database_url parsing. LiteLLM's forms:
 *
 *   sqlite:///relative.db      a file relative to the working directory
 *   sqlite:////abs/path.db     an absolute path
 *   postgresql://user:pass@host:5432/db?sslmode=require  (also postgres://)
 *
 * A PostgreSQL URL becomes libpq keyword/value pairs (percent-decoded), so
 * that libpq never sees the URL itself and the URL's form is checked here,
 * with messages that never quote the password. Hosts may be lists
 * ("h1:5432,h2:5433") and IPv6 literals ("[::1]:5432"); an empty host means
 * libpq's default (the local socket). Query parameters libpq knows are passed
 * through; `schema=x` (Prisma's form, which LiteLLM documents) becomes
 * options=-c search_path=x; other Prisma parameters (connection_limit,
 * pool_timeout, pgbouncer, ...) are ignored. Every allocation is input-sized
 * and may fail (LX_ENOMEM); nothing leaks on any error path.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/str.h"
#include "store/store_int.h"

#define URL_MAX 8192

static const char *const pq_keywords[] = {
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "service",
    "target_session_attrs",
};

/* Percent-decode p[0..n) into a new string. %00 and bad escapes are LX_EINVAL. */
static int decode(const char *p, size_t n, char **out)
{
    struct lx_buf b;
    lx_buf_init(&b, URL_MAX);
    int rc = lx_buf_reserve(&b, n + 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char c = p[i];
        if (c == '%') {
            int hi = i + 2 < n ? lx_hex_digit(p[i + 1]) : -1;
            int lo = i + 2 < n ? lx_hex_digit(p[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                rc = LX_EINVAL;
                break;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '\0') {
            rc = LX_EINVAL;
            break;
        }
        rc = lx_buf_append(&b, &c, 1);
    }
    if (rc) {
        lx_buf_fini(&b);
        return rc;
    }
    b.data[b.len] = '\0'; /* reserve alone does not terminate an empty buffer */
    *out = lx_buf_take(&b, NULL);
    return 0;
}

static bool is_pq_keyword(const char *k)
{
    for (size_t i = 0; i < LX_ARRAY_LEN(pq_keywords); i++) {
        if (strcmp(k, pq_keywords[i]) == 0) {
            return true;
        }
    }
    return false;
}

void lx_store__url_fini(struct lx_store__url *u)
{
    lx_free(u->path);
    lx_free(u->redacted);
    for (size_t i = 0; i < u->n_kv; i++) {
        lx_free(u->keys[i]);
        lx_free(u->vals[i]);
    }
    lx_free(u->keys);
    lx_free(u->vals);
    memset(u, 0, sizeof(*u));
}

/* Append a pair; both strings are taken (freed on failure too). */
static int kv_add_take(struct lx_store__url *u, char *k, char *v)
{
    /* Keep room for the NULL terminators libpq wants. */
    size_t need = u->n_kv + 2;
    char **nk = lx_try_realloc(u->keys, need * sizeof(char *));
    if (!nk) {
        lx_free(k);
        lx_free(v);
        return LX_ENOMEM;
    }
    u->keys = nk;
    char **nv = lx_try_realloc(u->vals, need * sizeof(char *));
    if (!nv) {
        lx_free(k);
        lx_free(v);
        return LX_ENOMEM;
    }
    u->vals = nv;
    u->keys[u->n_kv] = k;
    u->vals[u->n_kv] = v;
    u->n_kv++;
    u->keys[u->n_kv] = NULL;
    u->vals[u->n_kv] = NULL;
    return 0;
}

/* Copy n bytes into a new string (already decoded text). */
static int copy(const char *p, size_t n, char **out)
{
    char *c = lx_try_malloc(n + 1);
    if (!c) {
        return LX_ENOMEM;
    }
    memcpy(c, p, n);
    c[n] = '\0';
    *out = c;
    return 0;
}

/* Add a pair; v[0..vn) is percent-decoded when raw is set, else copied. */
static int kv_add_ex(struct lx_store__url *u, const char *k, const char *v, size_t vn, bool raw)
{
    char *kk = NULL, *vv = NULL;
    int rc = copy(k, strlen(k), &kk);
    if (rc) {
        return rc;
    }
    rc = raw ? decode(v, vn, &vv) : copy(v, vn, &vv);
    if (rc) {
        lx_free(kk);
        return rc;
    }
    return kv_add_take(u, kk, vv);
}

/* A pair whose value comes straight from the URL (percent-encoded). */
static int kv_add(struct lx_store__url *u, const char *k, const char *v, size_t vn)
{
    return kv_add_ex(u, k, v, vn, true);
}

static bool has_key(const struct lx_store__url *u, const char *k)
{
    for (size_t i = 0; i < u->n_kv; i++) {
        if (strcmp(u->keys[i], k) == 0) {
            return true;
        }
    }
    return false;
}

static int parse_sqlite(const char *url, const char *rest, struct lx_store__url *u,
                        struct lx_error *err)
{
    /* rest follows "sqlite://": "/rel.db" or "//abs.db". */
    if (rest[0] != '/' || rest[1] == '\0' || rest[1] == '?') {
        return lx_error_set(err, LX_EINVAL,
                            "database_url: a SQLite URL names a file: sqlite:///relative.db or "
                            "sqlite:////absolute/path.db");
    }
    const char *p = rest + 1;
    size_t n = strcspn(p, "?#");
    if (n == 0) {
        return lx_error_set(err, LX_EINVAL, "database_url: the SQLite file name is empty");
    }
    int rc = decode(p, n, &u->path);
    if (rc) {
        return rc == LX_EINVAL ? lx_error_set(err, rc, "database_url: bad %%-escape in the path")
                               : lx_error_set(err, rc, "out of memory");
    }
    u->kind = LX_STORE_SQLITE;
    struct lx_buf b;
    lx_buf_init(&b, URL_MAX);
    if (lx_buf_append_c(&b, url)) {
        lx_buf_fini(&b);
        return lx_error_set(err, LX_ENOMEM, "out of memory");
    }
    u->redacted = lx_buf_take(&b, NULL);
    return 0;
}

static bool valid_port(const char *p, size_t n)
{
    unsigned long long v;
    return lx_str_to_u64((struct lx_str){p, n}, 65535, &v) == 0 && v > 0;
}

/* "h1:5432,[::1]:5433,h3" → host and port lists for libpq. */
static int parse_hosts(const char *p, size_t n, struct lx_store__url *u, struct lx_error *err)
{
    struct lx_buf hosts, ports;
    lx_buf_init(&hosts, URL_MAX);
    lx_buf_init(&ports, URL_MAX);
    bool any_port = false, any_host = false;
    int rc = 0;
    size_t i = 0;
    while (rc == 0) {
        size_t end = i;
        while (end < n && p[end] != ',') {
            if (p[end] == '[') {
                while (end < n && p[end] != ']') {
                    end++;
                }
            }
            if (end < n) {
                end++;
            }
        }
        const char *h = p + i;
        size_t hn = end - i, pn = 0;
        const char *port = NULL;
        if (hn > 0 && h[0] == '[') {
            const char *close = memchr(h, ']', hn);
            if (!close) {
                rc = lx_error_set(err, LX_EINVAL, "database_url: unterminated [ in the host");
                break;
            }
            size_t after = (size_t)(close - h) + 1;
            if (after < hn) {
                if (h[after] != ':') {
                    rc = lx_error_set(err, LX_EINVAL, "database_url: bad host");
                    break;
                }
                port = h + after + 1;
                pn = hn - after - 1;
            }
            h++;
            hn = (size_t)(close - h);
        } else {
            const char *colon = memchr(h, ':', hn);
            if (colon) {
                port = colon + 1;
                pn = hn - (size_t)(colon - h) - 1;
                hn = (size_t)(colon - h);
            }
        }
        if (port && !valid_port(port, pn)) {
            rc = lx_error_set(err, LX_EINVAL, "database_url: the port must be 1..65535");
            break;
        }
        char *dh = NULL;
        rc = decode(h, hn, &dh);
        if (rc) {
            if (rc == LX_EINVAL) {
                lx_error_set(err, rc, "database_url: bad %%-escape in the host");
            }
            break;
        }
        if (i > 0) {
            rc = lx_buf_append_c(&hosts, ",");
            rc = rc ? rc : lx_buf_append_c(&ports, ",");
        }
        rc = rc ? rc : lx_buf_append_c(&hosts, dh);
        rc = rc ? rc : lx_buf_append(&ports, port ? port : "", port ? pn : 0);
        any_host = any_host || dh[0] != '\0';
        any_port = any_port || port;
        lx_free(dh);
        if (end >= n) {
            break;
        }
        i = end + 1;
    }
    if (rc == 0 && any_host) {
        rc = kv_add_ex(u, "host", hosts.data ? hosts.data : "", hosts.len, false);
    }
    if (rc == 0 && any_port) {
        rc = kv_add_ex(u, "port", ports.data ? ports.data : "", ports.len, false);
    }
    lx_buf_fini(&hosts);
    lx_buf_fini(&ports);
    if (rc == LX_ENOMEM || rc == LX_ETOOBIG) {
        rc = lx_error_set(err, LX_ENOMEM, "out of memory");
    }
    return rc;
}

/* A schema name for search_path: letters, digits, '_' and '$' only, so it needs no quoting. */
static bool valid_schema(const char *s)
{
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '$')) {
            return false;
        }
    }
    return true;
}

static int parse_query(const char *q, size_t qn, struct lx_store__url *u, struct lx_buf *red,
                       struct lx_error *err)
{
    size_t i = 0;
    while (i < qn) {
        size_t end = i;
        while (end < qn && q[end] != '&') {
            end++;
        }
        const char *kp = q + i;
        size_t pn = end - i;
        if (pn > 0) {
            const char *eq = memchr(kp, '=', pn);
            size_t kn = eq ? (size_t)(eq - kp) : pn;
            const char *vp = eq ? eq + 1 : "";
            size_t vn = eq ? pn - kn - 1 : 0;
            char *k = NULL, *v = NULL;
            int rc = decode(kp, kn, &k);
            rc = rc ? rc : decode(vp, vn, &v);
            if (rc) {
                lx_free(k);
                return rc == LX_EINVAL ? lx_error_set(err, rc, "database_url: bad %%-escape")
                                       : lx_error_set(err, rc, "out of memory");
            }
            bool secret = strcmp(k, "password") == 0 || strcmp(k, "sslpassword") == 0;
            rc = lx_buf_append_c(red, red->len && strchr(red->data, '?') ? "&" : "?");
            rc = rc ? rc : lx_buf_append(red, kp, kn);
            if (eq) {
                rc = rc ? rc : lx_buf_append_c(red, "=");
                rc = rc ? rc : (secret ? lx_buf_append_c(red, "***") : lx_buf_append(red, vp, vn));
            }
            if (rc) {
                lx_free(k);
                lx_free(v);
                return lx_error_set(err, LX_ENOMEM, "out of memory");
            }
            if (strcmp(k, "schema") == 0) {
                if (!valid_schema(v)) {
                    lx_free(k);
                    lx_free(v);
                    return lx_error_set(err, LX_EINVAL,
                                        "database_url: schema= takes a plain schema name");
                }
                struct lx_buf o;
                lx_buf_init(&o, URL_MAX);
                rc = lx_buf_printf(&o, "-c search_path=%s", v);
                lx_free(k);
                lx_free(v);
                if (rc) {
                    lx_buf_fini(&o);
                    return lx_error_set(err, LX_ENOMEM, "out of memory");
                }
                rc = kv_add_ex(u, "options", o.data, o.len, false);
                lx_buf_fini(&o);
            } else if (is_pq_keyword(k)) {
                rc = kv_add_take(u, k, v);
            } else {
                /* Prisma-only parameters (connection_limit, pgbouncer, ...): not libpq's. */
                lx_free(k);
                lx_free(v);
            }
            if (rc) {
                return rc == LX_EINVAL ? lx_error_set(err, rc, "database_url: bad %%-escape")
                                       : lx_error_set(err, rc, "out of memory");
            }
        }
        i = end + 1;
    }
    return 0;
}

static int parse_postgres(const char *url, size_t scheme_len, struct lx_store__url *u,
                          struct lx_error *err)
{
    u->kind = LX_STORE_POSTGRES;
    const char *a = url + scheme_len; /* after "://" */
    size_t an = strcspn(a, "/?#");
    const char *path = a + an;
    const char *at = NULL;
    for (size_t i = 0; i < an; i++) {
        if (a[i] == '@') {
            at = a + i; /* the last '@': a password may hold an unescaped one */
        }
    }
    struct lx_buf red;
    lx_buf_init(&red, URL_MAX);
    int rc = lx_buf_append(&red, url, scheme_len);
    const char *hostp = a;
    if (rc == 0 && at) {
        size_t un = (size_t)(at - a);
        const char *colon = memchr(a, ':', un);
        size_t usern = colon ? (size_t)(colon - a) : un;
        if (usern > 0) {
            rc = kv_add(u, "user", a, usern);
        }
        if (rc == 0 && colon) {
            rc = kv_add(u, "password", colon + 1, un - usern - 1);
        }
        if (rc == LX_EINVAL) {
            lx_buf_fini(&red);
            return lx_error_set(err, rc, "database_url: bad %%-escape in the user or password");
        }
        rc = rc ? rc : lx_buf_append(&red, a, usern);
        rc = rc ? rc : lx_buf_append_c(&red, colon ? ":***@" : "@");
        hostp = at + 1;
    }
    if (rc) {
        lx_buf_fini(&red);
        return lx_error_set(err, LX_ENOMEM, "out of memory");
    }
    size_t hn = (size_t)(a + an - hostp);
    rc = parse_hosts(hostp, hn, u, err);
    if (rc) {
        lx_buf_fini(&red);
        return rc;
    }
    rc = lx_buf_append(&red, hostp, hn);
    const char *q = NULL;
    size_t qn = 0;
    if (rc == 0 && *path == '/') {
        size_t dn = strcspn(path + 1, "?#");
        if (dn > 0) {
            rc = kv_add(u, "dbname", path + 1, dn);
            if (rc == LX_EINVAL) {
                lx_buf_fini(&red);
                return lx_error_set(err, rc, "database_url: bad %%-escape in the database name");
            }
        }
        rc = rc ? rc : lx_buf_append(&red, path, dn + 1);
        path += dn + 1;
    }
    if (rc == 0 && *path == '?') {
        q = path + 1;
        qn = strcspn(q, "#");
    } else if (rc == 0 && *path != '\0' && *path != '#') {
        lx_buf_fini(&red);
        return lx_error_set(err, LX_EINVAL, "database_url: bad PostgreSQL URL");
    }
    if (rc) {
        lx_buf_fini(&red);
        return lx_error_set(err, LX_ENOMEM, "out of memory");
    }
    if (q) {
        rc = parse_query(q, qn, u, &red, err);
        if (rc) {
            lx_buf_fini(&red);
            return rc;
        }
    }
    /* Defaults that make an outage visible quickly; the URL may override them. */
    if (!has_key(u, "connect_timeout")) {
        rc = kv_add(u, "connect_timeout", "3", 1);
    }
    if (rc == 0 && !has_key(u, "application_name")) {
        rc = kv_add(u, "application_name", "llmux", 5);
    }
    /*
     * A peer that vanished (no RST: a partition, a paused VM) must not hold
     * the store thread for hours: TCP keepalives notice an idle dead link in
     * ~25 s, tcp_user_timeout a link with unacknowledged data in 30 s.
     */
    static const char *const tcp[][2] = {{"keepalives_idle", "10"},
                                         {"keepalives_interval", "5"},
                                         {"keepalives_count", "3"},
                                         {"tcp_user_timeout", "30000"}};
    for (size_t i = 0; rc == 0 && i < LX_ARRAY_LEN(tcp); i++) {
        if (!has_key(u, tcp[i][0])) {
            rc = kv_add(u, tcp[i][0], tcp[i][1], strlen(tcp[i][1]));
        }
    }
    if (rc == 0 && !red.data) {
        rc = LX_ENOMEM;
    }
    if (rc) {
        lx_buf_fini(&red);
        return lx_error_set(err, LX_ENOMEM, "out of memory");
    }
    u->redacted = lx_buf_take(&red, NULL);
    return 0;
}

int lx_store__url_parse(const char *url, struct lx_store__url *out, struct lx_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!url || !*url) {
        return lx_error_set(err, LX_EINVAL, "database_url is empty");
    }
    if (strlen(url) > URL_MAX / 2) {
        return lx_error_set(err, LX_EINVAL, "database_url is too long");
    }
    int rc;
    if (strncasecmp(url, "sqlite://", 9) == 0) {
        rc = parse_sqlite(url, url + 9, out, err);
    } else if (strncasecmp(url, "postgresql://", 13) == 0) {
        rc = parse_postgres(url, 13, out, err);
    } else if (strncasecmp(url, "postgres://", 11) == 0) {
        rc = parse_postgres(url, 11, out, err);
    } else {
        rc = lx_error_set(err, LX_EINVAL,
                          "database_url: unsupported scheme (use sqlite:///file.db or "
                          "postgresql://user:password@host:5432/db)");
    }
    if (rc) {
        lx_store__url_fini(out);
        /* Only an allocation failure is LX_ENOMEM; every other failure is the URL's. */
        if (rc != LX_ENOMEM) {
            rc = LX_EINVAL;
            if (err) {
                err->code = rc;
            }
        }
    }
    return rc;
}
