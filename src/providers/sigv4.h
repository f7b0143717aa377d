/*
 * AWS Signature Version 4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/
 * reference_sigv-create-signed-request.html) for header-signed requests.
 *
 * The signer is a pure function of its inputs (no clock, no environment):
 * the caller passes the x-amz-date value, so tests can reproduce AWS's
 * published test-suite vectors exactly. The canonical URI is the request path
 * *as sent on the wire* with each segment URI-encoded once more, which is the
 * double encoding every non-S3 service expects (a Bedrock model id
 * "a:b" travels as "a%3Ab" and is signed as "a%253Ab"); paths are not
 * normalised ("." and ".." are kept) because the callers build them.
 * Canonical header values are trimmed and inner runs of spaces collapse to
 * one; repeated header names are joined with ',' in the order given.
 *
 * Everything is written into capped lx_bufs: functions return 0, LX_ENOMEM,
 * LX_ETOOBIG, or LX_EINVAL for input the signer refuses (too many headers or
 * query parameters, an empty header name, a malformed x-amz-date).
 * Thread-safe; no state.
 */
#ifndef LX_PROVIDERS_SIGV4_H
#define LX_PROVIDERS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/compiler.h"
#include "core/str.h"

/* Signed headers and query parameters one request may carry. */
#define LX_SIGV4_MAX_HEADERS 32
#define LX_SIGV4_MAX_QUERY 64

struct lx_sigv4_header {
    struct lx_str name; /* any case; lowercased in the canonical request */
    struct lx_str value;
};

/* The parts of the HTTP request that are signed. Everything is borrowed. */
struct lx_sigv4_request {
    struct lx_str method;
    struct lx_str path;  /* "/..." as sent (percent-encoded where the URL needs it) */
    struct lx_str query; /* after '?', as sent; may be empty */
    const struct lx_sigv4_header *headers;
    size_t n_headers;
    struct lx_str payload_hash; /* lowercase hex SHA-256 of the body */
};

/* Who signs, where, and when. Borrowed C strings. */
struct lx_sigv4_scope {
    const char *access_key_id;
    const char *secret_access_key;
    const char *region;
    const char *service;
    const char *amz_date; /* "YYYYMMDDTHHMMSSZ"; its first 8 characters are the scope date */
};

/* Lowercase hex SHA-256 of p[0..n) into out (64 characters plus NUL). */
void lx_sigv4_sha256_hex(const void *p, size_t n, char out[65]);

/* The x-amz-date form of a Unix time ("20150830T123600Z"). */
void lx_sigv4_amz_date(int64_t unix_s, char out[17]);

/*
 * Append s URI-encoded as SigV4 wants: unreserved characters (A-Z a-z 0-9
 * - . _ ~) as they are, every other byte as %XX (uppercase hex); '/' is kept
 * when keep_slash is set.
 */
LX_MUST_CHECK int lx_sigv4_uri_encode(struct lx_buf *out, struct lx_str s, bool keep_slash);

/*
 * Append the canonical request of r to out and, when out_signed_headers is
 * not NULL, the signed-headers list ("host;x-amz-date") to it.
 */
LX_MUST_CHECK int lx_sigv4_canonical_request(const struct lx_sigv4_request *r, struct lx_buf *out,
                                             struct lx_buf *out_signed_headers);

/* Append the string to sign for a canonical request. */
LX_MUST_CHECK int lx_sigv4_string_to_sign(const struct lx_sigv4_scope *s,
                                          struct lx_str canonical_request, struct lx_buf *out);

/* The hex signature of a string to sign (64 characters plus NUL). Returns 0 or LX_EINVAL. */
LX_MUST_CHECK int lx_sigv4_signature(const struct lx_sigv4_scope *s, struct lx_str string_to_sign,
                                     char out[65]);

/*
 * Append the whole Authorization header value for r:
 * "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request,
 * SignedHeaders=host;x-amz-date, Signature=<hex>". The headers of r must
 * include host and x-amz-date (the caller sends exactly those values).
 */
LX_MUST_CHECK int lx_sigv4_authorization(const struct lx_sigv4_request *r,
                                         const struct lx_sigv4_scope *s, struct lx_buf *out);

#endif
