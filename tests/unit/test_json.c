/*
 * Unit tests for the JSON helpers: string escaping, the OpenAI error body,
 * the top-level rewriter and lx_json_find_top. Every output that should be
 * JSON is also parsed back with cJSON.
 */
#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/error.h"
#include "json/json.h"
#include "lx_test.h"

static bool parses(struct lx_str s)
{
    cJSON *j = cJSON_ParseWithLength(s.p, s.n);
    bool ok = j != NULL;
    cJSON_Delete(j);
    return ok;
}

struct esc_case {
    const char *in;
    size_t n; /* 0: strlen */
    const char *out;
    bool round_trips; /* cJSON decodes out back to in */
};

static const struct esc_case esc_cases[] = {
    {"", 0, "\"\"", true},
    {"abc", 0, "\"abc\"", true},
    {"\"\\/", 0, "\"\\\"\\\\/\"", true},
    {"\b\f\n\r\t", 0, "\"\\b\\f\\n\\r\\t\"", true},
    {"\x01\x1f\x7f", 0, "\"\\u0001\\u001f\x7f\"", true},
    {"a\0b", 3, "\"a\\u0000b\"", false}, /* cJSON strings stop at NUL */
    {"h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e", 0,
     "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e\"", true},
    {"\xff", 0, "\"\xef\xbf\xbd\"", false},
    {"\xc3", 0, "\"\xef\xbf\xbd\"", false},
    {"\xc3(", 0, "\"\xef\xbf\xbd(\"", false},
    {"\xe2\x82x", 0, "\"\xef\xbf\xbdx\"", false},
    {"\xe2\x82", 0, "\"\xef\xbf\xbd\"", false},
    {"\xed\xa0\x80", 0, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"", false}, /* surrogate */
    {"\xc0\xaf", 0, "\"\xef\xbf\xbd\xef\xbf\xbd\"", false},                 /* overlong */
    {"\xe0\x80\xaf", 0, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"", false},
    {"\xf4\x90\x80\x80", 0, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"", false},
    {"\xf0\x9f\x98x\"", 0, "\"\xef\xbf\xbdx\\\"\"", false},
    {"\xf4\x8f\xbf\xbf", 0, "\"\xf4\x8f\xbf\xbf\"", true}, /* U+10FFFF */
    {"\xef\xbb\xbf", 0, "\"\xef\xbb\xbf\"", true},
};

LX_TEST(json_escape_table)
{
    for (size_t i = 0; i < LX_ARRAY_LEN(esc_cases); i++) {
        const struct esc_case *tc = &esc_cases[i];
        struct lx_str in = {tc->in, tc->n ? tc->n : strlen(tc->in)};
        struct lx_buf b;
        lx_buf_init(&b, 1024);
        LX_CHECK_INT(lx_json_append_string(&b, in), 0);
        if (strcmp(b.data, tc->out) != 0) {
            fprintf(stderr, "  case %zu: got %s\n", i, b.data);
        }
        LX_CHECK_STR(b.data, tc->out);
        cJSON *j = cJSON_ParseWithLength(b.data, b.len);
        LX_CHECK(cJSON_IsString(j));
        if (tc->round_trips && cJSON_IsString(j)) {
            LX_CHECK_STR(j->valuestring, tc->in);
        }
        cJSON_Delete(j);
        lx_buf_fini(&b);
    }
}

LX_TEST(json_escape_limits_and_alloc)
{
    struct lx_buf b;
    lx_buf_init(&b, 10);
    LX_CHECK_INT(lx_buf_append_c(&b, "ab"), 0);
    LX_CHECK_INT(lx_json_append_string(&b, LX_STR("123456")), 0); /* 8 bytes: fits */
    LX_CHECK_STR(b.data, "ab\"123456\"");
    lx_buf_reset(&b);
    LX_CHECK_INT(lx_buf_append_c(&b, "ab"), 0);
    LX_CHECK_INT(lx_json_append_string(&b, LX_STR("\n\n\n\n")), LX_ETOOBIG); /* 10 escaped */
    LX_CHECK_STR(b.data, "ab");
    LX_CHECK_INT(lx_json_append_string(&b, LX_STR("1234567")), LX_ETOOBIG);
    LX_CHECK_INT(b.len, 2);
    lx_buf_fini(&b);

    for (long k = 0; k < 8; k++) {
        lx_buf_init(&b, 1 << 16);
        lx_alloc_fail_after(k, 1);
        int rc = lx_json_append_string(&b, LX_STR("a\x01\xff long enough to grow the buffer"));
        lx_alloc_fail_after(-1, 0);
        LX_CHECK(rc == 0 || rc == LX_ENOMEM);
        LX_CHECK(rc == 0 || b.len == 0);
        lx_buf_fini(&b);
    }
}

LX_TEST(json_error_body)
{
    struct lx_buf b;
    lx_buf_init(&b, 4096);
    LX_CHECK_INT(lx_json_error_body(&b, LX_STR("bad \"model\"\nline2"), "invalid_request_error",
                                    NULL, "400"),
                 0);
    LX_CHECK_STR(b.data, "{\"error\":{\"message\":\"bad \\\"model\\\"\\nline2\",\"type\":"
                         "\"invalid_request_error\",\"param\":null,\"code\":\"400\"}}");
    cJSON *j = cJSON_ParseWithLength(b.data, b.len);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    LX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message")),
                 "bad \"model\"\nline2");
    LX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "type")),
                 "invalid_request_error");
    LX_CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e, "param")));
    LX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "code")), "400");
    cJSON_Delete(j);

    lx_buf_reset(&b);
    LX_CHECK_INT(lx_json_error_body(&b, LX_STR(""), "auth_error", "model", NULL), 0);
    j = cJSON_ParseWithLength(b.data, b.len);
    e = cJSON_GetObjectItemCaseSensitive(j, "error");
    LX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "param")), "model");
    LX_CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e, "code")));
    cJSON_Delete(j);
    lx_buf_fini(&b);

    /* Cap and allocation failure leave the buffer as it was. */
    lx_buf_init(&b, 40);
    LX_CHECK_INT(lx_buf_append_c(&b, "x"), 0);
    LX_CHECK_INT(lx_json_error_body(&b, LX_STR("m"), "t", NULL, NULL), LX_ETOOBIG);
    LX_CHECK_STR(b.data, "x");
    lx_buf_fini(&b);
    for (long k = 0; k < 8; k++) {
        lx_buf_init(&b, 1 << 16);
        lx_alloc_fail_after(k, 1);
        int rc = lx_json_error_body(&b, LX_STR("m"), "t", "p", "c");
        lx_alloc_fail_after(-1, 0);
        LX_CHECK(rc == 0 || (rc == LX_ENOMEM && b.len == 0));
        lx_buf_fini(&b);
    }
}

#define MAX_CASE_EDITS 3

struct rw_case {
    const char *body;
    struct lx_json_edit edits[MAX_CASE_EDITS];
    const char *out;
};

#define SET(k, v)                                                                                  \
    {                                                                                              \
        LX_STR(k), LX_STR(v), LX_JSON_SET                                                          \
    }
#define SET_IF_ABSENT(k, v)                                                                        \
    {                                                                                              \
        LX_STR(k), LX_STR(v), LX_JSON_SET_IF_ABSENT                                                \
    }
#define REMOVE(k)                                                                                  \
    {                                                                                              \
        LX_STR(k), LX_STR_NULL, LX_JSON_REMOVE                                                     \
    }

static const struct rw_case rw_cases[] = {
    /* Replace in place; every other byte (numbers, nested "model") unchanged. */
    {"{\"model\":\"gpt-4\",\"n\":12345678901234567890,\"t\":1.0e+3,\"x\":[1,{\"model\":\"k\"}]}",
     {SET("model", "\"m2\"")},
     "{\"model\":\"m2\",\"n\":12345678901234567890,\"t\":1.0e+3,\"x\":[1,{\"model\":\"k\"}]}"},
    {"  {\n  \"model\" : \"a\" ,\n  \"b\": -0.5E-2\n}\n",
     {SET("model", "\"x\"")},
     "  {\n  \"model\" : \"x\" ,\n  \"b\": -0.5E-2\n}\n"},
    {"{\"a\":1}", {SET("model", "\"x\"")}, "{\"a\":1,\"model\":\"x\"}"},
    {"{\n  \"a\": 1\n}", {SET("model", "\"x\"")}, "{\n  \"a\": 1,\"model\":\"x\"\n}"},
    {"{}", {SET("model", "\"x\"")}, "{\"model\":\"x\"}"},
    {" { } ", {SET("model", "\"x\"")}, " {\"model\":\"x\" } "},
    {"{}", {SET_IF_ABSENT("a", "1"), SET("b", "[]")}, "{\"a\":1,\"b\":[]}"},
    {"{\"user\":\"u\"}", {SET_IF_ABSENT("user", "\"x\"")}, "{\"user\":\"u\"}"},
    {"{\"a\":1}", {SET_IF_ABSENT("user", "\"x\"")}, "{\"a\":1,\"user\":\"x\"}"},
    /* Removal, with the separating comma. */
    {"{\"a\":1,\"b\":2,\"c\":3}", {REMOVE("a")}, "{\"b\":2,\"c\":3}"},
    {"{\"a\":1,\"b\":2,\"c\":3}", {REMOVE("b")}, "{\"a\":1,\"c\":3}"},
    {"{\"a\":1,\"b\":2,\"c\":3}", {REMOVE("c")}, "{\"a\":1,\"b\":2}"},
    {"{\"a\":1,\"b\":2,\"c\":3}", {REMOVE("a"), REMOVE("b"), REMOVE("c")}, "{}"},
    {"{\"a\":1,\"b\":2,\"c\":3}", {REMOVE("a"), REMOVE("c")}, "{\"b\":2}"},
    {"{ \"a\": 1, \"b\": 2 }", {REMOVE("a")}, "{ \"b\": 2 }"},
    {"{ \"a\": 1, \"b\": 2 }", {REMOVE("b")}, "{ \"a\": 1 }"},
    {"{\"a\":1}", {REMOVE("a"), SET("b", "2")}, "{\"b\":2}"},
    {"{\"a\":1}", {REMOVE("zz")}, "{\"a\":1}"},
    /* Keys compare unescaped; the body keeps its spelling. */
    {"{\"\\u006dodel\":\"a\"}", {SET("model", "\"x\"")}, "{\"\\u006dodel\":\"x\"}"},
    {"{\"\\u006Dodel\":\"a\",\"b\":1}", {REMOVE("model")}, "{\"b\":1}"},
    {"{\"mod\\\"el\":1,\"a\\/b\":2,\"t\\tab\":3}",
     {REMOVE("mod\"el"), REMOVE("a/b"), REMOVE("t\tab")},
     "{}"},
    {"{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2,\"\\u00e9\":3}",
     {REMOVE("\xf0\x9f\x98\x80"), SET("\xc3\xa9", "4")},
     "{\"\\u00e9\":4}"},
    {"{\"modelx\":1,\"mode\":2,\"model\\u0000\":3}",
     {SET("model", "0")},
     "{\"modelx\":1,\"mode\":2,\"model\\u0000\":3,\"model\":0}"},
    /* Nested "model" keys are not top-level. */
    {"{\"messages\":[{\"model\":\"n\"}],\"meta\":{\"model\":\"n\"}}",
     {SET("model", "\"x\"")},
     "{\"messages\":[{\"model\":\"n\"}],\"meta\":{\"model\":\"n\"},\"model\":\"x\"}"},
    /* Duplicates: SET keeps the first position and drops the rest. */
    {"{\"model\":\"a\",\"x\":1,\"model\":\"b\"}",
     {SET("model", "\"c\"")},
     "{\"model\":\"c\",\"x\":1}"},
    {"{\"x\":0,\"model\":\"a\",\"model\":\"b\",\"y\":1}",
     {SET("model", "\"c\"")},
     "{\"x\":0,\"model\":\"c\",\"y\":1}"},
    {"{\"model\":\"a\",\"x\":1,\"model\":\"b\"}", {REMOVE("model")}, "{\"x\":1}"},
    {"{\"model\":\"a\",\"model\":\"b\"}",
     {SET_IF_ABSENT("model", "1")},
     "{\"model\":\"a\",\"model\":\"b\"}"},
    /* The first edit for a key wins. */
    {"{}", {SET("k", "1"), SET("k", "2"), REMOVE("k")}, "{\"k\":1}"},
    {"{\"k\":0}", {REMOVE("k"), SET("k", "2")}, "{}"},
    /* Keys of appended members are escaped. */
    {"{}", {SET("a\"b\n", "true")}, "{\"a\\\"b\\n\":true}"},
    /* Several edits on a realistic body. */
    {"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi \\\"there\\\"\"}],"
     "\"stream\":true,\"temperature\":0.7,\"max_tokens\":100}",
     {SET("model", "\"gpt-4o-2024-08-06\""), REMOVE("stream"),
      SET_IF_ABSENT("stream_options", "{\"include_usage\":true}")},
     "{\"model\":\"gpt-4o-2024-08-06\",\"messages\":[{\"role\":\"user\",\"content\":\"hi "
     "\\\"there\\\"\"}],\"temperature\":0.7,\"max_tokens\":100,"
     "\"stream_options\":{\"include_usage\":true}}"},
    {"{\"a\":[],\"b\":{},\"c\":\"\",\"d\":null,\"e\":false,\"f\":-0,\"g\":0.0e-0}",
     {REMOVE("zz")},
     "{\"a\":[],\"b\":{},\"c\":\"\",\"d\":null,\"e\":false,\"f\":-0,\"g\":0.0e-0}"},
};

static size_t n_edits_of(const struct rw_case *tc)
{
    size_t n = 0;
    while (n < MAX_CASE_EDITS && tc->edits[n].key.p) {
        n++;
    }
    return n;
}

LX_TEST(json_rewrite_table)
{
    for (size_t i = 0; i < LX_ARRAY_LEN(rw_cases); i++) {
        const struct rw_case *tc = &rw_cases[i];
        struct lx_buf out;
        lx_buf_init(&out, 1 << 16);
        int rc = lx_json_rewrite(lx_str_c(tc->body), tc->edits, n_edits_of(tc), &out);
        LX_CHECK_INT(rc, 0);
        if (rc == 0 && strcmp(out.data, tc->out) != 0) {
            fprintf(stderr, "  case %zu: got %s\n", i, out.data);
            LX_CHECK(0);
        }
        LX_CHECK(parses(lx_buf_str(&out)));
        lx_buf_fini(&out);
    }
}

/* A key with an embedded NUL: LX_STR keeps it (sizeof, not strlen). */
LX_TEST(json_rewrite_nul_key)
{
    struct lx_json_edit e = {LX_STR("a\0b"), LX_STR_NULL, LX_JSON_REMOVE};
    struct lx_buf out;
    lx_buf_init(&out, 1024);
    LX_CHECK_INT(lx_json_rewrite(LX_STR("{\"a\\u0000b\":1,\"a\":2}"), &e, 1, &out), 0);
    LX_CHECK_STR(out.data, "{\"a\":2}");
    lx_buf_fini(&out);
}

LX_TEST(json_rewrite_identity)
{
    static const char body[] =
        " {\"model\" :\"m\", \"n\": 12345678901234567890 ,\"f\":1.0e+3,"
        "\"s\":\"\\u00e9\\ud83d\\ude00\\n\xc3\xa9\",\"o\":{\"a\":[[],{}]}}\r\n";
    struct lx_buf out;
    lx_buf_init(&out, 1024);
    LX_CHECK_INT(lx_json_rewrite(LX_STR(body), NULL, 0, &out), 0);
    LX_CHECK_STR(out.data, body);
    lx_buf_reset(&out);
    struct lx_json_edit e = {LX_STR("model"), LX_STR("\"m\""), LX_JSON_SET};
    LX_CHECK_INT(lx_json_rewrite(LX_STR(body), &e, 1, &out), 0);
    LX_CHECK_STR(out.data, body);
    lx_buf_fini(&out);
}

static const char *const malformed[] = {
    "",
    "   ",
    "[]",
    "\"s\"",
    "1",
    "null",
    "{",
    "}",
    "{\"a\"",
    "{\"a\":",
    "{\"a\":1",
    "{\"a\":1,}",
    "{,}",
    "{,\"a\":1}",
    "{\"a\":1,,\"b\":2}",
    "{\"a\" 1}",
    "{\"a\":1 \"b\":2}",
    "{\"a\":1}x",
    "{\"a\":1}{}",
    "{\"a\":1}}",
    "{\"a\":[1,2}",
    "{\"a\":[1,2,]}",
    "{\"a\":{]}",
    "{\"a\":{\"b\"}}",
    "{\"a\":{\"b\":1,}}",
    "{\"a\":\"\\x\"}",
    "{\"a\":\"\\u12\"}",
    "{\"a\":\"\\u12G4\"}",
    "{\"a\":\"\x01\"}",
    "{\"a\":\"\n\"}",
    "{\"a\":\"\x1f\"}",
    "{\"a\":\"\\ud800\"}",
    "{\"a\":\"\\udc00\"}",
    "{\"a\":\"\\ud800\\u0041\"}",
    "{\"a\":\"\\ud800\\n\"}",
    "{\"\\ud800\":1}",
    "{\"a\":01}",
    "{\"a\":1.}",
    "{\"a\":.5}",
    "{\"a\":-}",
    "{\"a\":-a}",
    "{\"a\":1e}",
    "{\"a\":1e+}",
    "{\"a\":+1}",
    "{\"a\":0x1}",
    "{\"a\":tru}",
    "{\"a\":nul}",
    "{\"a\":True}",
    "{\"a\":NaN}",
    "{\"a\":Infinity}",
    "{\"a\":1 2}",
    "{a:1}",
    "{'a':1}",
    "{\"a\":1,\"b\"}",
    "{\"a\":\"abc",
    "{\"a\":\"abc\\",
    "{\"a\":\"abc\\\"}",
    "\xef\xbb\xbf{}",
    "{\"a\":1}\x0b",
};

static void check_malformed(struct lx_str body)
{
    struct lx_buf out;
    lx_buf_init(&out, 1 << 16);
    LX_CHECK_INT(lx_buf_append_c(&out, "pre"), 0);
    struct lx_json_edit e = {LX_STR("a"), LX_STR("1"), LX_JSON_SET};
    int rc = lx_json_rewrite(body, &e, 1, &out);
    if (rc != LX_EINVAL) {
        fprintf(stderr, "  accepted: %.*s\n", LX_STR_FMT(body));
    }
    LX_CHECK_INT(rc, LX_EINVAL);
    LX_CHECK_STR(out.data, "pre");
    struct lx_str v;
    LX_CHECK_INT(lx_json_find_top(body, LX_STR("a"), &v), LX_EINVAL);
    lx_buf_fini(&out);
}

LX_TEST(json_rewrite_malformed)
{
    for (size_t i = 0; i < LX_ARRAY_LEN(malformed); i++) {
        check_malformed(lx_str_c(malformed[i]));
    }
    check_malformed(LX_STR("{}\0"));
    check_malformed(LX_STR("{\"a\":\"\0\"}"));
    check_malformed(LX_STR_NULL);
    /* Every proper prefix of a valid object is malformed. */
    static const char body[] =
        "{\"model\":\"m\",\"x\":[1,-2.5e+3,{\"k\":\"\\u00e9\\ud83d\\ude00\"}],"
        "\"t\":true,\"f\":false,\"n\":null}";
    for (size_t n = 0; n < sizeof(body) - 1; n++) {
        check_malformed((struct lx_str){body, n});
    }
}

static void nest(struct lx_buf *b, int levels, char open, char close)
{
    LX_CHECK_INT(lx_buf_append_c(b, "{\"a\":"), 0);
    for (int i = 0; i < levels; i++) {
        LX_CHECK_INT(lx_buf_append(b, open == '{' ? "{\"k\":" : "[", open == '{' ? 5 : 1), 0);
    }
    LX_CHECK_INT(lx_buf_append_c(b, "1"), 0);
    for (int i = 0; i < levels; i++) {
        LX_CHECK_INT(lx_buf_append(b, &close, 1), 0);
    }
    LX_CHECK_INT(lx_buf_append_c(b, "}"), 0);
}

LX_TEST(json_rewrite_depth_cap)
{
    for (int obj = 0; obj < 2; obj++) {
        struct lx_buf body, out;
        lx_buf_init(&body, 1 << 20);
        lx_buf_init(&out, 1 << 20);
        nest(&body, LX_JSON_MAX_DEPTH - 1, obj ? '{' : '[', obj ? '}' : ']');
        struct lx_json_edit e = {LX_STR("model"), LX_STR("\"x\""), LX_JSON_SET};
        LX_CHECK_INT(lx_json_rewrite(lx_buf_str(&body), &e, 1, &out), 0);
        LX_CHECK(parses(lx_buf_str(&out)));
        lx_buf_reset(&body);
        lx_buf_reset(&out);
        nest(&body, LX_JSON_MAX_DEPTH, obj ? '{' : '[', obj ? '}' : ']');
        LX_CHECK_INT(lx_json_rewrite(lx_buf_str(&body), &e, 1, &out), LX_EINVAL);
        LX_CHECK_INT(out.len, 0);
        lx_buf_fini(&body);
        lx_buf_fini(&out);
    }
    /* Far deeper input stops at the cap instead of exhausting the stack. */
    struct lx_buf body, out;
    lx_buf_init(&body, 1 << 20);
    lx_buf_init(&out, 1 << 20);
    LX_CHECK_INT(lx_buf_append_c(&body, "{\"a\":"), 0);
    for (int i = 0; i < 200000; i++) {
        LX_CHECK_INT(lx_buf_append(&body, "[", 1), 0);
    }
    LX_CHECK_INT(lx_json_rewrite(lx_buf_str(&body), NULL, 0, &out), LX_EINVAL);
    lx_buf_fini(&body);
    lx_buf_fini(&out);
}

LX_TEST(json_rewrite_output_cap)
{
    static const char body[] = "{\"model\":\"a\",\"messages\":[]}";
    struct lx_json_edit e = {LX_STR("model"), LX_STR("\"bbbb\""), LX_JSON_SET};
    const char *want = "{\"model\":\"bbbb\",\"messages\":[]}";
    size_t n = strlen(want);
    struct lx_buf out;
    lx_buf_init(&out, 2 + n - 1);
    LX_CHECK_INT(lx_buf_append_c(&out, "xy"), 0);
    LX_CHECK_INT(lx_json_rewrite(LX_STR(body), &e, 1, &out), LX_ETOOBIG);
    LX_CHECK_STR(out.data, "xy");
    out.limit++;
    LX_CHECK_INT(lx_json_rewrite(LX_STR(body), &e, 1, &out), 0);
    LX_CHECK_MEM(out.data + 2, out.len - 2, want);
    lx_buf_fini(&out);

    /* An output smaller than the input fits a limit the input would not. */
    struct lx_json_edit rm = {LX_STR("messages"), LX_STR_NULL, LX_JSON_REMOVE};
    lx_buf_init(&out, 15);
    LX_CHECK_INT(lx_json_rewrite(LX_STR(body), &rm, 1, &out), 0);
    LX_CHECK_STR(out.data, "{\"model\":\"a\"}");
    lx_buf_fini(&out);

    struct lx_json_edit many[LX_JSON_MAX_EDITS + 1];
    for (size_t i = 0; i < LX_ARRAY_LEN(many); i++) {
        many[i] = rm;
    }
    lx_buf_init(&out, 1024);
    LX_CHECK_INT(lx_json_rewrite(LX_STR(body), many, LX_JSON_MAX_EDITS, &out), 0);
    LX_CHECK_INT(lx_json_rewrite(LX_STR(body), many, LX_ARRAY_LEN(many), &out), LX_EINVAL);
    lx_buf_fini(&out);
}

LX_TEST(json_rewrite_alloc_failures)
{
    static const char body[] = "{\"model\":\"a\",\"messages\":[{\"role\":\"user\"}]}";
    struct lx_json_edit e[2] = {
        {LX_STR("model"), LX_STR("\"b\""), LX_JSON_SET},
        {LX_STR("user"), LX_STR("\"u\""), LX_JSON_SET_IF_ABSENT},
    };
    bool completed = false;
    for (long k = 0; k < 16 && !completed; k++) {
        struct lx_buf out;
        lx_buf_init(&out, 1 << 16);
        lx_alloc_fail_after(k, 1);
        int rc = lx_json_rewrite(LX_STR(body), e, 2, &out);
        lx_alloc_fail_after(-1, 0);
        if (rc == 0) {
            LX_CHECK_STR(out.data,
                         "{\"model\":\"b\",\"messages\":[{\"role\":\"user\"}],\"user\":\"u\"}");
            completed = true;
        } else {
            LX_CHECK_INT(rc, LX_ENOMEM);
            LX_CHECK_INT(out.len, 0);
        }
        lx_buf_fini(&out);
    }
    LX_CHECK(completed);
}

LX_TEST(json_find_top)
{
    struct lx_str v = LX_STR_NULL;
    static const char body[] = " {\"messages\":[{\"model\":\"inner\"}],\"model\" : \"gpt-4o\" ,"
                               "\"o\":{\"b\":[1,2]} ,\"n\":-1.5e3,\"model\":\"second\"} ";
    LX_CHECK_INT(lx_json_find_top(LX_STR(body), LX_STR("model"), &v), 0);
    LX_CHECK_MEM(v.p, v.n, "\"gpt-4o\"");
    LX_CHECK_INT(lx_json_find_top(LX_STR(body), LX_STR("o"), &v), 0);
    LX_CHECK_MEM(v.p, v.n, "{\"b\":[1,2]}");
    LX_CHECK_INT(lx_json_find_top(LX_STR(body), LX_STR("n"), &v), 0);
    LX_CHECK_MEM(v.p, v.n, "-1.5e3");
    LX_CHECK_INT(lx_json_find_top(LX_STR(body), LX_STR("b"), &v), LX_ENOTFOUND);
    LX_CHECK_INT(lx_json_find_top(LX_STR("{}"), LX_STR(""), &v), LX_ENOTFOUND);
    LX_CHECK_INT(lx_json_find_top(LX_STR("{\"\":1}"), LX_STR(""), &v), 0);
    LX_CHECK_MEM(v.p, v.n, "1");
    LX_CHECK_INT(lx_json_find_top(LX_STR("{\"m\\u006fdel\":\"x\\\"y\"}"), LX_STR("model"), &v), 0);
    LX_CHECK_MEM(v.p, v.n, "\"x\\\"y\"");
    /* Same answer as cJSON's lookup: the first occurrence. */
    cJSON *j = cJSON_ParseWithLength(body, sizeof(body) - 1);
    LX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "model")), "gpt-4o");
    cJSON_Delete(j);
    /* A valid prefix with a match does not hide a malformed rest. */
    LX_CHECK_INT(lx_json_find_top(LX_STR("{\"model\":\"a\",}"), LX_STR("model"), &v), LX_EINVAL);
}

LX_TEST(json_find_top_many_and_string_value)
{
    const char *body = "{\"stream\":true,\"mo\\u0064el\":\"gpt-\\u00e9\\n\","
                       "\"messages\":[{\"model\":\"inner\"}],\"model\":\"second\"}";
    const struct lx_str keys[] = {LX_STR("model"), LX_STR("stream"), LX_STR("messages"),
                                  LX_STR("absent")};
    struct lx_str v[4];
    LX_CHECK_INT(lx_json_find_top_many(lx_str_c(body), keys, 4, v), 0);
    LX_CHECK_MEM(v[0].p, v[0].n, "\"gpt-\\u00e9\\n\""); /* the first top-level "model" */
    LX_CHECK_MEM(v[1].p, v[1].n, "true");
    LX_CHECK(v[2].p && v[2].p[0] == '[');
    LX_CHECK(v[3].p == NULL);
    char out[16];
    size_t n = 0;
    LX_CHECK_INT(lx_json_string_value(v[0], out, sizeof(out), &n), 0);
    LX_CHECK_MEM(out, n, "gpt-\xc3\xa9\n");
    LX_CHECK_INT(lx_json_string_value(v[1], out, sizeof(out), &n), LX_EINVAL);
    LX_CHECK_INT(lx_json_string_value(LX_STR("\"0123456789abcdefXYZ\""), out, sizeof(out), &n),
                 LX_ETOOBIG);
    LX_CHECK_INT(lx_json_find_top_many(LX_STR("{\"model\":\"x\",}"), keys, 4, v), LX_EINVAL);
    LX_CHECK_INT(lx_json_find_top_many(LX_STR("[1]"), keys, 4, v), LX_EINVAL);
}

LX_TEST_MAIN(LX_RUN(json_escape_table), LX_RUN(json_escape_limits_and_alloc),
             LX_RUN(json_error_body), LX_RUN(json_rewrite_table), LX_RUN(json_rewrite_nul_key),
             LX_RUN(json_rewrite_identity), LX_RUN(json_rewrite_malformed),
             LX_RUN(json_rewrite_depth_cap), LX_RUN(json_rewrite_output_cap),
             LX_RUN(json_rewrite_alloc_failures), LX_RUN(json_find_top),
             LX_RUN(json_find_top_many_and_string_value))
