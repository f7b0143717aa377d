/*
 * AWS Signature Version 4 signer (sigv4.h). The canonical request is built in
 * a caller's buffer in one pass; headers and query parameters are sorted on
 * small index arrays on the stack (their counts are capped), so the only
 * allocations are the output buffers' growth.
 *
 * Crypto is OpenSSL's one-shot EVP_Digest and HMAC with SHA-256.
 */
#include "providers/sigv4.h"

#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/error.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

static const char hex_lower[] = "0123456789abcdef";

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_lower[p[i] >> 4];
        out[2 * i + 1] = hex_lower[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void lx_sigv4_sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(p ? p : "", n, md, &len, EVP_sha256(), NULL) || len != 32) {
        memset(md, 0, sizeof(md)); /* cannot happen with the default provider */
        len = 32;
    }
    to_hex(md, 32, out);
}

void lx_sigv4_amz_date(int64_t unix_s, char out[17])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16) {
        memcpy(out, "19700101T000000Z", 17);
    }
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int lx_sigv4_uri_encode(struct lx_buf *out, struct lx_str s, bool keep_slash)
{
    static const char hex_upper[] = "0123456789ABCDEF";
    size_t mark = out->len;
    size_t i = 0;
    while (i < s.n) {
        size_t run = i;
        while (run < s.n &&
               (is_unreserved((unsigned char)s.p[run]) || (keep_slash && s.p[run] == '/'))) {
            run++;
        }
        int rc = lx_buf_append(out, s.p + i, run - i);
        if (!rc && run < s.n) {
            unsigned char c = (unsigned char)s.p[run];
            char esc[3] = {'%', hex_upper[c >> 4], hex_upper[c & 15]};
            rc = lx_buf_append(out, esc, 3);
            run++;
        }
        if (rc) {
            out->len = mark;
            if (out->data) {
                out->data[mark] = '\0';
            }
            return rc;
        }
        i = run;
    }
    return 0;
}

/* Percent-decode s (invalid escapes stay literal) and encode it again. */
static int reencode(struct lx_buf *out, struct lx_str s)
{
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (c == '%' && i + 2 < s.n && lx_hex_digit(s.p[i + 1]) >= 0 &&
            lx_hex_digit(s.p[i + 2]) >= 0) {
            c = (char)(lx_hex_digit(s.p[i + 1]) << 4 | lx_hex_digit(s.p[i + 2]));
            i += 2;
        }
        int rc = lx_sigv4_uri_encode(out, (struct lx_str){&c, 1}, false);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* Canonical URI: every segment of the wire path encoded once more; "/" when empty. */
static int put_uri(struct lx_buf *out, struct lx_str path)
{
    if (!path.n) {
        return lx_buf_append(out, "/", 1);
    }
    return lx_sigv4_uri_encode(out, path, true);
}

struct qparam {
    size_t k_off, k_len, v_off, v_len; /* into the scratch buffer */
};

static int cmp_slices(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) {
        return c;
    }
    return an < bn ? -1 : an > bn ? 1 : 0;
}

/* Insertion sort (n <= LX_SIGV4_MAX_QUERY): stable and needs no global context. */
static void sort_params(struct qparam *q, size_t n, const char *base)
{
    for (size_t i = 1; i < n; i++) {
        struct qparam x = q[i];
        size_t j = i;
        while (j > 0) {
            const struct qparam *y = &q[j - 1];
            int c = cmp_slices(base + y->k_off, y->k_len, base + x.k_off, x.k_len);
            if (!c) {
                c = cmp_slices(base + y->v_off, y->v_len, base + x.v_off, x.v_len);
            }
            if (c <= 0) {
                break;
            }
            q[j] = q[j - 1];
            j--;
        }
        q[j] = x;
    }
}

/* Canonical query: names and values re-encoded, sorted by name then value. */
static int put_query(struct lx_buf *out, struct lx_str query)
{
    if (!query.n) {
        return 0;
    }
    struct qparam q[LX_SIGV4_MAX_QUERY];
    size_t n = 0;
    struct lx_buf scratch;
    lx_buf_init(&scratch, out->limit);
    int rc = 0;
    struct lx_str rest = query;
    while (rest.n && !rc) {
        const char *amp = memchr(rest.p, '&', rest.n);
        struct lx_str item = {rest.p, amp ? (size_t)(amp - rest.p) : rest.n};
        rest = amp ? lx_str_sub(rest, item.n + 1) : lx_str_sub(rest, rest.n);
        if (!item.n) {
            continue;
        }
        if (n == LX_SIGV4_MAX_QUERY) {
            rc = LX_EINVAL;
            break;
        }
        const char *eq = memchr(item.p, '=', item.n);
        struct lx_str k = {item.p, eq ? (size_t)(eq - item.p) : item.n};
        struct lx_str v = eq ? lx_str_sub(item, k.n + 1) : LX_STR("");
        q[n].k_off = scratch.len;
        rc = reencode(&scratch, k);
        q[n].k_len = scratch.len - q[n].k_off;
        q[n].v_off = scratch.len;
        if (!rc) {
            rc = reencode(&scratch, v);
        }
        q[n].v_len = scratch.len - q[n].v_off;
        n++;
    }
    if (!rc) {
        sort_params(q, n, scratch.data ? scratch.data : "");
        for (size_t i = 0; i < n && !rc; i++) {
            const char *b = scratch.data;
            if (i) {
                rc = lx_buf_append(out, "&", 1);
            }
            if (!rc) {
                rc = lx_buf_append(out, b + q[i].k_off, q[i].k_len);
            }
            if (!rc) {
                rc = lx_buf_append(out, "=", 1);
            }
            if (!rc) {
                rc = lx_buf_append(out, b + q[i].v_off, q[i].v_len);
            }
        }
    }
    lx_buf_fini(&scratch);
    return rc;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* Compare header names case-insensitively, as bytes of their lowercase forms. */
static int cmp_names(struct lx_str a, struct lx_str b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    for (size_t i = 0; i < n; i++) {
        char x = lower(a.p[i]), y = lower(b.p[i]);
        if (x != y) {
            return (unsigned char)x < (unsigned char)y ? -1 : 1;
        }
    }
    return a.n < b.n ? -1 : a.n > b.n ? 1 : 0;
}

static int put_lower(struct lx_buf *out, struct lx_str s)
{
    int rc = lx_buf_reserve(out, s.n);
    if (rc) {
        return rc;
    }
    for (size_t i = 0; i < s.n; i++) {
        out->data[out->len++] = lower(s.p[i]);
    }
    out->data[out->len] = '\0';
    return 0;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* A header value trimmed, with inner runs of spaces and tabs as one space. */
static int put_value(struct lx_buf *out, struct lx_str v)
{
    size_t b = 0, e = v.n;
    while (b < e && is_ws(v.p[b])) {
        b++;
    }
    while (e > b && is_ws(v.p[e - 1])) {
        e--;
    }
    for (size_t i = b; i < e;) {
        size_t run = i;
        while (run < e && !is_ws(v.p[run])) {
            run++;
        }
        int rc = lx_buf_append(out, v.p + i, run - i);
        if (rc) {
            return rc;
        }
        if (run < e) {
            rc = lx_buf_append(out, " ", 1);
            if (rc) {
                return rc;
            }
            while (run < e && is_ws(v.p[run])) {
                run++;
            }
        }
        i = run;
    }
    return 0;
}

int lx_sigv4_canonical_request(const struct lx_sigv4_request *r, struct lx_buf *out,
                               struct lx_buf *out_signed_headers)
{
    if (r->n_headers > LX_SIGV4_MAX_HEADERS) {
        return LX_EINVAL;
    }
    /* Stable insertion sort of header indexes by lowercase name. */
    size_t idx[LX_SIGV4_MAX_HEADERS];
    for (size_t i = 0; i < r->n_headers; i++) {
        if (!r->headers[i].name.n) {
            return LX_EINVAL;
        }
        size_t j = i;
        while (j > 0 && cmp_names(r->headers[idx[j - 1]].name, r->headers[i].name) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    size_t mark = out->len;
    size_t smark = out_signed_headers ? out_signed_headers->len : 0;
    int rc = lx_buf_append_str(out, r->method);
    if (!rc) {
        rc = lx_buf_append(out, "\n", 1);
    }
    if (!rc) {
        rc = put_uri(out, r->path);
    }
    if (!rc) {
        rc = lx_buf_append(out, "\n", 1);
    }
    if (!rc) {
        rc = put_query(out, r->query);
    }
    if (!rc) {
        rc = lx_buf_append(out, "\n", 1);
    }
    /* Canonical headers: one line per name, repeated names' values joined by ','. */
    for (size_t i = 0; i < r->n_headers && !rc; i++) {
        const struct lx_sigv4_header *h = &r->headers[idx[i]];
        bool same_as_prev = i > 0 && cmp_names(r->headers[idx[i - 1]].name, h->name) == 0;
        if (same_as_prev) {
            rc = lx_buf_append(out, ",", 1);
        } else {
            if (i > 0) {
                rc = lx_buf_append(out, "\n", 1);
            }
            if (!rc) {
                rc = put_lower(out, h->name);
            }
            if (!rc) {
                rc = lx_buf_append(out, ":", 1);
            }
            if (!rc && out_signed_headers) {
                if (i > 0) {
                    rc = lx_buf_append(out_signed_headers, ";", 1);
                }
                if (!rc) {
                    rc = put_lower(out_signed_headers, h->name);
                }
            }
        }
        if (!rc) {
            rc = put_value(out, h->value);
        }
    }
    if (!rc && r->n_headers) {
        rc = lx_buf_append(out, "\n", 1);
    }
    if (!rc) {
        rc = lx_buf_append(out, "\n", 1);
    }
    /* The signed headers line, the same list as out_signed_headers. */
    for (size_t i = 0; i < r->n_headers && !rc; i++) {
        const struct lx_sigv4_header *h = &r->headers[idx[i]];
        if (i > 0 && cmp_names(r->headers[idx[i - 1]].name, h->name) == 0) {
            continue;
        }
        if (i > 0) {
            rc = lx_buf_append(out, ";", 1);
        }
        if (!rc) {
            rc = put_lower(out, h->name);
        }
    }
    if (!rc) {
        rc = lx_buf_append(out, "\n", 1);
    }
    if (!rc) {
        rc = lx_buf_append_str(out, r->payload_hash);
    }
    if (rc) {
        out->len = mark;
        if (out->data) {
            out->data[mark] = '\0';
        }
        if (out_signed_headers) {
            out_signed_headers->len = smark;
            if (out_signed_headers->data) {
                out_signed_headers->data[smark] = '\0';
            }
        }
    }
    return rc;
}

static bool valid_amz_date(const char *d)
{
    if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z') {
        return false;
    }
    for (int i = 0; i < 15; i++) {
        if (i != 8 && (d[i] < '0' || d[i] > '9')) {
            return false;
        }
    }
    return true;
}

int lx_sigv4_string_to_sign(const struct lx_sigv4_scope *s, struct lx_str canonical_request,
                            struct lx_buf *out)
{
    if (!valid_amz_date(s->amz_date) || !s->region || !s->service) {
        return LX_EINVAL;
    }
    char hash[65];
    lx_sigv4_sha256_hex(canonical_request.p, canonical_request.n, hash);
    return lx_buf_printf(out, ALGORITHM "\n%s\n%.8s/%s/%s/aws4_request\n%s", s->amz_date,
                         s->amz_date, s->region, s->service, hash);
}

static void hmac(const void *key, size_t key_len, const void *msg, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    if (!HMAC(EVP_sha256(), key, (int)key_len, msg, n, out, &len)) {
        memset(out, 0, 32); /* cannot happen with the default provider */
    }
}

int lx_sigv4_signature(const struct lx_sigv4_scope *s, struct lx_str string_to_sign, char out[65])
{
    if (!valid_amz_date(s->amz_date) || !s->secret_access_key || !s->region || !s->service) {
        return LX_EINVAL;
    }
    /* kSecret = "AWS4" + secret; kDate, kRegion, kService, kSigning by HMAC chaining. */
    size_t sl = strlen(s->secret_access_key);
    if (sl > 256) {
        return LX_EINVAL;
    }
    unsigned char k_secret[4 + 256];
    memcpy(k_secret, "AWS4", 4);
    memcpy(k_secret + 4, s->secret_access_key, sl);
    unsigned char k[32];
    hmac(k_secret, 4 + sl, s->amz_date, 8, k);
    hmac(k, 32, s->region, strlen(s->region), k);
    hmac(k, 32, s->service, strlen(s->service), k);
    hmac(k, 32, "aws4_request", 12, k);
    unsigned char sig[32];
    hmac(k, 32, string_to_sign.p, string_to_sign.n, sig);
    to_hex(sig, 32, out);
    OPENSSL_cleanse(k_secret, sizeof(k_secret));
    OPENSSL_cleanse(k, sizeof(k));
    return 0;
}

int lx_sigv4_authorization(const struct lx_sigv4_request *r, const struct lx_sigv4_scope *s,
                           struct lx_buf *out)
{
    if (!s->access_key_id || !valid_amz_date(s->amz_date)) {
        return LX_EINVAL;
    }
    struct lx_buf creq, signed_headers, sts;
    lx_buf_init(&creq, out->limit);
    lx_buf_init(&signed_headers, out->limit);
    lx_buf_init(&sts, 4096);
    char sig[65];
    int rc = lx_sigv4_canonical_request(r, &creq, &signed_headers);
    if (!rc) {
        rc = lx_sigv4_string_to_sign(s, lx_buf_str(&creq), &sts);
    }
    if (!rc) {
        rc = lx_sigv4_signature(s, lx_buf_str(&sts), sig);
    }
    if (!rc) {
        rc = lx_buf_printf(out,
                           ALGORITHM " Credential=%s/%.8s/%s/%s/aws4_request, SignedHeaders=%.*s, "
                                     "Signature=%s",
                           s->access_key_id, s->amz_date, s->region, s->service,
                           LX_STR_FMT(lx_buf_str(&signed_headers)), sig);
    }
    lx_buf_fini(&creq);
    lx_buf_fini(&signed_headers);
    lx_buf_fini(&sts);
    return rc;
}
