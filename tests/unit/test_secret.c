/* Unit tests for secrets at rest: AES-256-GCM round trips, tampering, wrong keys, encoding. */
#include <stdlib.h>

#include "auth/secret.h"
#include "core/error.h"
#include "lx_test.h"

static struct lx_secret_key key_of(const char *s)
{
    struct lx_secret_key k;
    lx_secret_key_derive(s, strlen(s), &k);
    return k;
}

LX_TEST(round_trip)
{
    struct lx_secret_key k = key_of("sk-master-1234");
    const char *values[] = {
        "sk-provider-abcdef0123456789", "", "x", "unicode: h\xc3\xa9llo \xe2\x82\xac",
        "a much longer value ......................................................"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char *enc = NULL, *dec = NULL;
        size_t n = 0;
        LX_CHECK_INT(lx_secret_encrypt(&k, "api_key", values[i], strlen(values[i]), &enc), 0);
        LX_CHECK(lx_secret_is_encrypted(enc));
        LX_CHECK(strncmp(enc, "lxenc:v1:", 9) == 0);
        LX_CHECK_INT(lx_secret_decrypt(&k, "api_key", enc, &dec, &n), 0);
        LX_CHECK_STR(dec, values[i]);
        LX_CHECK_INT(n, strlen(values[i]));
        lx_free(enc);
        lx_secret_free(dec);
    }
}

LX_TEST(no_clear_text_and_fresh_nonce)
{
    struct lx_secret_key k = key_of("salt");
    const char *secret = "sk-live-SECRETVALUE-0123456789";
    char *a = NULL, *b = NULL;
    LX_CHECK_INT(lx_secret_encrypt(&k, "api_key", secret, strlen(secret), &a), 0);
    LX_CHECK_INT(lx_secret_encrypt(&k, "api_key", secret, strlen(secret), &b), 0);
    LX_CHECK(a && b);
    if (a && b) {
        LX_CHECK(strstr(a, "SECRETVALUE") == NULL);
        LX_CHECK(strstr(a, secret) == NULL);
        LX_CHECK(strcmp(a, b) != 0); /* random nonce per value */
        for (const char *p = a; *p; p++) {
            LX_CHECK(*p >= 0x21 && *p < 0x7f); /* printable, storable text */
        }
    }
    lx_free(a);
    lx_free(b);
}

LX_TEST(wrong_key_fails)
{
    struct lx_secret_key k1 = key_of("one"), k2 = key_of("two");
    char *enc = NULL, *dec = (char *)"untouched";
    LX_CHECK_INT(lx_secret_encrypt(&k1, "api_key", "secret", 6, &enc), 0);
    LX_CHECK_INT(lx_secret_decrypt(&k2, "api_key", enc, &dec, NULL), LX_EINVAL);
    LX_CHECK(dec == NULL);
    /* Bound to the parameter name: moved to another field, it does not decrypt. */
    LX_CHECK_INT(lx_secret_decrypt(&k1, "aws_secret_access_key", enc, &dec, NULL), LX_EINVAL);
    LX_CHECK(dec == NULL);
    lx_free(enc);
}

LX_TEST(tamper_fails)
{
    struct lx_secret_key k = key_of("k");
    char *enc = NULL, *dec = NULL;
    LX_CHECK_INT(lx_secret_encrypt(&k, "api_key", "sk-abc", 6, &enc), 0);
    size_t n = strlen(enc);
    /* Flip each base64 character in turn to another alphabet character. */
    for (size_t i = 9; i < n; i++) {
        if (enc[i] == '=') {
            continue;
        }
        char saved = enc[i];
        enc[i] = saved == 'A' ? 'B' : 'A';
        int rc = lx_secret_decrypt(&k, "api_key", enc, &dec, NULL);
        if (rc == 0) {
            /* Only the unused low bits of the last character may change without effect. */
            LX_CHECK(i >= n - 3);
            lx_secret_free(dec);
            dec = NULL;
        }
        enc[i] = saved;
    }
    /* Truncated, extended, bad alphabet, bad prefix, empty. */
    char buf[256];
    snprintf(buf, sizeof(buf), "%.*s", (int)(n - 4), enc);
    LX_CHECK_INT(lx_secret_decrypt(&k, "api_key", buf, &dec, NULL), LX_EINVAL);
    snprintf(buf, sizeof(buf), "%sAAAA", enc);
    LX_CHECK_INT(lx_secret_decrypt(&k, "api_key", buf, &dec, NULL), LX_EINVAL);
    snprintf(buf, sizeof(buf), "%s", enc);
    buf[12] = '*';
    LX_CHECK_INT(lx_secret_decrypt(&k, "api_key", buf, &dec, NULL), LX_EINVAL);
    LX_CHECK_INT(lx_secret_decrypt(&k, "api_key", "lxenc:v2:AAAA", &dec, NULL), LX_EINVAL);
    LX_CHECK_INT(lx_secret_decrypt(&k, "api_key", "lxenc:v1:", &dec, NULL), LX_EINVAL);
    LX_CHECK_INT(lx_secret_decrypt(&k, "api_key", "lxenc:v1:AAAA", &dec, NULL), LX_EINVAL);
    LX_CHECK_INT(lx_secret_decrypt(&k, "api_key", "lxenc:v1:A=AA", &dec, NULL), LX_EINVAL);
    LX_CHECK_INT(lx_secret_decrypt(&k, "api_key", "sk-clear", &dec, NULL), LX_EINVAL);
    LX_CHECK(dec == NULL);
    lx_free(enc);
}

LX_TEST(key_choice)
{
    struct lx_secret_key k;
    /* No salt in this test's environment: the master key decides. */
    unsetenv("LLMUX_SALT_KEY");
    unsetenv("LITELLM_SALT_KEY");
    lx_secret_init();
    LX_CHECK(!lx_secret_has_salt());
    LX_CHECK_INT(lx_secret_key_get(NULL, &k), LX_EINVAL);
    LX_CHECK(!k.is_set);
    LX_CHECK_INT(lx_secret_key_get("sk-1234", &k), 0);
    struct lx_secret_key m = key_of("sk-1234");
    LX_CHECK(k.is_set && memcmp(k.k, m.k, 32) == 0);
    struct lx_secret_key unset = {{0}, false};
    char *enc = NULL;
    LX_CHECK_INT(lx_secret_encrypt(&unset, "api_key", "x", 1, &enc), LX_EINVAL);
    LX_CHECK(enc == NULL);
}

LX_TEST(secret_names)
{
    LX_CHECK(lx_secret_param_is_secret("api_key"));
    LX_CHECK(lx_secret_param_is_secret("aws_secret_access_key"));
    LX_CHECK(lx_secret_param_is_secret("aws_session_token"));
    LX_CHECK(lx_secret_param_is_secret("vertex_credentials"));
    LX_CHECK(lx_secret_param_is_secret("azure_ad_token"));
    LX_CHECK(lx_secret_param_is_secret("client_secret"));
    LX_CHECK(!lx_secret_param_is_secret("api_base"));
    LX_CHECK(!lx_secret_param_is_secret("max_tokens"));
    LX_CHECK(!lx_secret_param_is_secret("max_completion_tokens"));
    LX_CHECK(!lx_secret_param_is_secret("model"));
    LX_CHECK(!lx_secret_param_is_secret("aws_region_name"));
    LX_CHECK(!lx_secret_param_is_secret(NULL));
}

LX_TEST(alloc_failure)
{
    struct lx_secret_key k = key_of("k");
    char *enc = NULL, *dec = NULL;
    lx_alloc_fail_after(0, 0);
    LX_CHECK_INT(lx_secret_encrypt(&k, "api_key", "abc", 3, &enc), LX_ENOMEM);
    LX_CHECK(enc == NULL);
    LX_CHECK_INT(lx_secret_encrypt(&k, "api_key", "abc", 3, &enc), 0);
    lx_alloc_fail_after(1, 0);
    LX_CHECK_INT(lx_secret_decrypt(&k, "api_key", enc, &dec, NULL), LX_ENOMEM);
    LX_CHECK(dec == NULL);
    lx_alloc_fail_after(-1, 0);
    lx_free(enc);
}

LX_TEST_MAIN(LX_RUN(round_trip), LX_RUN(no_clear_text_and_fresh_nonce), LX_RUN(wrong_key_fails),
             LX_RUN(tamper_fails), LX_RUN(key_choice), LX_RUN(secret_names), LX_RUN(alloc_failure))
