/*
 * Unit tests for the SigV4 signer (src/providers/sigv4.c) against AWS's
 * published Signature Version 4 test suite (aws-sig-v4-test-suite: service
 * "service", region us-east-1, 20150830T123600Z, AKIDEXAMPLE /
 * wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY): canonical request, string to
 * sign and Authorization header of each vector, as the suite's .creq, .sts
 * and .authz files give them.
 */
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "lx_test.h"
#include "providers/sigv4.h"

#define AK "AKIDEXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define DATE "20150830T123600Z"
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define CRED "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "

static const struct lx_sigv4_scope scope = {AK, SK, "us-east-1", "service", DATE};

struct vector {
    const char *name;
    const char *method;
    const char *path;
    const char *query;
    struct lx_sigv4_header headers[6];
    size_t n_headers;
    const char *payload;
    const char *creq;
    const char *sts; /* NULL: not checked */
    const char *authz;
};

#define H(n, v)                                                                                    \
    {                                                                                              \
        LX_STR(n), LX_STR(v)                                                                       \
    }
#define HOST H("Host", "example.amazonaws.com")
#define XDATE H("X-Amz-Date", DATE)

static const struct vector vectors[] = {
    {"get-vanilla",
     "GET",
     "/",
     "",
     {HOST, XDATE},
     2,
     "",
     "GET\n/"
     "\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA,
     "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"post-vanilla",
     "POST",
     "/",
     "",
     {HOST, XDATE},
     2,
     "",
     "POST\n/"
     "\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA,
     NULL,
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"get-vanilla-query-order-key-case",
     "GET",
     "/",
     "Param2=value2&Param1=value1",
     {HOST, XDATE},
     2,
     "",
     "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:"
     "20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA,
     "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
     "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
    {"post-x-www-form-urlencoded",
     "POST",
     "/",
     "",
     {H("Content-Type", "application/x-www-form-urlencoded"), HOST, XDATE},
     3,
     "Param1=value1",
     "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
     "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
     "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
     "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
     "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
     CRED "SignedHeaders=content-type;host;x-amz-date, "
          "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
    {"get-utf8",
     "GET",
     "/\xe1\x88\xb4",
     "",
     {HOST, XDATE},
     2,
     "",
     "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-"
     "date\n" EMPTY_SHA,
     "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
     "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
    {"get-header-value-trim",
     "GET",
     "/",
     "",
     {HOST, H("My-Header1", " value1"), H("My-Header2", " \"a   b   c\""), XDATE},
     4,
     "",
     "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:"
     "20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n" EMPTY_SHA,
     "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
     "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
     CRED "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
          "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
    {"get-header-key-duplicate",
     "GET",
     "/",
     "",
     {HOST, H("My-Header1", "value2"), H("My-Header1", "value2"), H("My-Header1", "value1"), XDATE},
     5,
     "",
     "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:"
     "20150830T123600Z\n\nhost;my-header1;x-amz-date\n" EMPTY_SHA,
     "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
     "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
     CRED "SignedHeaders=host;my-header1;x-amz-date, "
          "Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
    {"get-unreserved",
     "GET",
     "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
     "",
     {HOST, XDATE},
     2,
     "",
     "GET\n/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\nhost:example."
     "amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA,
     NULL,
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
};

static void check_vector(const struct vector *v)
{
    char hash[65];
    lx_sigv4_sha256_hex(v->payload, strlen(v->payload), hash);
    struct lx_sigv4_request r = {
        .method = lx_str_c(v->method),
        .path = lx_str_c(v->path),
        .query = lx_str_c(v->query),
        .headers = v->headers,
        .n_headers = v->n_headers,
        .payload_hash = lx_str_c(hash),
    };
    struct lx_buf creq, sh, sts, authz;
    lx_buf_init(&creq, 1 << 16);
    lx_buf_init(&sh, 1 << 16);
    lx_buf_init(&sts, 1 << 16);
    lx_buf_init(&authz, 1 << 16);
    LX_CHECK_INT(lx_sigv4_canonical_request(&r, &creq, &sh), 0);
    if (strcmp(creq.data ? creq.data : "", v->creq) != 0) {
        fprintf(stderr, "  %s: canonical request\n--- got\n%s\n--- want\n%s\n", v->name, creq.data,
                v->creq);
        LX_CHECK(0);
    }
    LX_CHECK_INT(lx_sigv4_string_to_sign(&scope, lx_buf_str(&creq), &sts), 0);
    if (v->sts && strcmp(sts.data ? sts.data : "", v->sts) != 0) {
        fprintf(stderr, "  %s: string to sign\n--- got\n%s\n--- want\n%s\n", v->name, sts.data,
                v->sts);
        LX_CHECK(0);
    }
    LX_CHECK_INT(lx_sigv4_authorization(&r, &scope, &authz), 0);
    if (strcmp(authz.data ? authz.data : "", v->authz) != 0) {
        fprintf(stderr, "  %s: authorization\n  got:  %s\n  want: %s\n", v->name, authz.data,
                v->authz);
        LX_CHECK(0);
    }
    lx_buf_fini(&creq);
    lx_buf_fini(&sh);
    lx_buf_fini(&sts);
    lx_buf_fini(&authz);
}

LX_TEST(aws_suite_vectors)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        check_vector(&vectors[i]);
    }
}

LX_TEST(sha256_and_dates)
{
    char h[65];
    lx_sigv4_sha256_hex("", 0, h);
    LX_CHECK_STR(h, EMPTY_SHA);
    lx_sigv4_sha256_hex("abc", 3, h);
    LX_CHECK_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    char d[17];
    lx_sigv4_amz_date(1440938160, d);
    LX_CHECK_STR(d, DATE);
    lx_sigv4_amz_date(951868799, d);
    LX_CHECK_STR(d, "20000229T235959Z");
    lx_sigv4_amz_date(0, d);
    LX_CHECK_STR(d, "19700101T000000Z");
}

LX_TEST(uri_encoding)
{
    struct lx_buf b;
    lx_buf_init(&b, 1024);
    LX_CHECK_INT(lx_sigv4_uri_encode(&b, LX_STR("a b/c~d*:%"), false), 0);
    LX_CHECK_STR(b.data, "a%20b%2Fc~d%2A%3A%25");
    lx_buf_reset(&b);
    LX_CHECK_INT(lx_sigv4_uri_encode(&b, LX_STR("/model/a%3Ab/converse"), true), 0);
    LX_CHECK_STR(b.data, "/model/a%253Ab/converse");
    lx_buf_fini(&b);
    /* Over the cap: LX_ETOOBIG and the buffer unchanged. */
    lx_buf_init(&b, 4);
    LX_CHECK_INT(lx_sigv4_uri_encode(&b, LX_STR("ab:"), false), LX_ETOOBIG);
    LX_CHECK_INT(b.len, 0);
    lx_buf_fini(&b);
}

/*
 * A Bedrock-shaped request: the model id travels once encoded and is signed
 * encoded twice. Expected values computed independently (Python hashlib/hmac,
 * botocore's double-encoding rule for non-S3 services).
 */
#define BEDROCK_AUTHZ                                                                              \
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/us-west-2/bedrock/aws4_request, "            \
    "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "       \
    "Signature=870e5e8b5882b6199b62317f5a2c9b7c925eaea7f76ae159517e859dd34b9724"

LX_TEST(bedrock_shaped)
{
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"Hello\"}]}]}";
    char hash[65];
    lx_sigv4_sha256_hex(body, strlen(body), hash);
    struct lx_sigv4_header h[] = {
        {LX_STR("content-type"), LX_STR("application/json")},
        {LX_STR("host"), LX_STR("bedrock-runtime.us-west-2.amazonaws.com")},
        {LX_STR("x-amz-content-sha256"), lx_str_c(hash)},
        {LX_STR("x-amz-date"), LX_STR("20240115T093000Z")},
        {LX_STR("x-amz-security-token"), LX_STR("FQoGZXIvYXdzEXAMPLETOKEN")},
    };
    struct lx_sigv4_request r = {
        .method = LX_STR("POST"),
        .path = LX_STR("/model/anthropic.claude-3-sonnet-20240229-v1%3A0/converse"),
        .headers = h,
        .n_headers = 5,
        .payload_hash = lx_str_c(hash),
    };
    struct lx_sigv4_scope s = {AK, SK, "us-west-2", "bedrock", "20240115T093000Z"};
    struct lx_buf creq, authz;
    lx_buf_init(&creq, 1 << 16);
    lx_buf_init(&authz, 1 << 16);
    LX_CHECK_INT(lx_sigv4_canonical_request(&r, &creq, NULL), 0);
    LX_CHECK(
        strstr(creq.data, "\n/model/anthropic.claude-3-sonnet-20240229-v1%253A0/converse\n\n"));
    LX_CHECK_INT(lx_sigv4_authorization(&r, &s, &authz), 0);
    LX_CHECK_STR(authz.data, BEDROCK_AUTHZ);
    lx_buf_fini(&creq);
    lx_buf_fini(&authz);
}

LX_TEST(refusals)
{
    struct lx_buf b;
    lx_buf_init(&b, 1 << 16);
    struct lx_sigv4_header h[] = {{LX_STR(""), LX_STR("x")}};
    struct lx_sigv4_request r = {.method = LX_STR("GET"), .headers = h, .n_headers = 1};
    LX_CHECK_INT(lx_sigv4_canonical_request(&r, &b, NULL), LX_EINVAL);
    LX_CHECK_INT(b.len, 0);
    struct lx_sigv4_scope bad = scope;
    bad.amz_date = "2015-08-30";
    char sig[65];
    LX_CHECK_INT(lx_sigv4_signature(&bad, LX_STR("x"), sig), LX_EINVAL);
    r.n_headers = 0;
    LX_CHECK_INT(lx_sigv4_authorization(&r, &bad, &b), LX_EINVAL);
    lx_buf_fini(&b);
}

LX_TEST(alloc_failure)
{
    const struct vector *v = &vectors[3];
    char hash[65];
    lx_sigv4_sha256_hex(v->payload, strlen(v->payload), hash);
    struct lx_sigv4_request r = {
        .method = lx_str_c(v->method),
        .path = lx_str_c(v->path),
        .query = LX_STR("b=2&a=1"),
        .headers = v->headers,
        .n_headers = v->n_headers,
        .payload_hash = lx_str_c(hash),
    };
    int ok = 0;
    for (long n = 0; n < 50 && !ok; n++) {
        struct lx_buf out;
        lx_buf_init(&out, 1 << 16);
        lx_alloc_fail_after(n, 0);
        int rc = lx_sigv4_authorization(&r, &scope, &out);
        lx_alloc_fail_after(-1, 0);
        if (rc == 0) {
            ok = 1;
            LX_CHECK(strstr(out.data, "SignedHeaders=content-type;host;x-amz-date, ") != NULL);
        } else {
            LX_CHECK_INT(rc, LX_ENOMEM);
            LX_CHECK_INT(out.len, 0);
        }
        lx_buf_fini(&out);
    }
    LX_CHECK(ok);
}

LX_TEST_MAIN(LX_RUN(aws_suite_vectors), LX_RUN(sha256_and_dates), LX_RUN(uri_encoding),
             LX_RUN(bedrock_shaped), LX_RUN(refusals), LX_RUN(alloc_failure))
