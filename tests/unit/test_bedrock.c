/*
 * Unit tests for the Bedrock provider (src/providers/bedrock.c): OpenAI chat
 * requests into Converse requests (URL, SigV4 headers, body), Converse
 * responses, errors and ConverseStream event streams back into OpenAI's
 * shapes. Bodies are compared as JSON trees (cJSON_Compare). Streams are
 * built here with lx_eventstream_encode, fed whole and split at every byte,
 * and the OpenAI events are summarised into one line per chunk so that the
 * random chunk id does not matter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"
#include "http/sse.h"
#include "lx_test.h"
#include "providers/eventstream.h"
#include "providers/provider.h"

const char *lx_bedrock_finish_reason(struct lx_str stop_reason);
int lx_bedrock_exception_status(struct lx_str name);
int lx_bedrock_build_at(const struct lx_provider_call *call, struct lx_provider_request *out,
                        struct lx_error *err, int64_t now);

#define MODEL "anthropic.claude-3-sonnet-20240229-v1:0"
#define NOW 1705311000 /* 2024-01-15T09:30:00Z */
/* Computed with Python hashlib/hmac (see req_signature_golden). */
#define BEDROCK_GOLDEN_SIG "424980d30950c639f529c9a99368d8a956f6589a85ad7d1128d9f59b653b3b59"

/* Signed at a fixed time so that the signature is known; no API key (SigV4 credentials). */
#define TEST_KEY NULL
#define TEST_BUILD_REQUEST(call, out, err) lx_bedrock_build_at((call), (out), (err), NOW)
#define PROVIDER_TEST_REQUESTS_ONLY
#include "provider_test.h"

static const struct lx_provider_ops *ops(void)
{
    return lx_provider_ops_for(LX_PROVIDER_BEDROCK);
}

static struct lx_deployment test_dep(void)
{
    struct lx_deployment d;
    test_dep_init(&d);
    d.model_name = "claude-bedrock";
    d.id = "dep-bedrock-1";
    d.model = "bedrock/" MODEL;
    d.provider.kind = LX_PROVIDER_BEDROCK;
    d.provider.name = "bedrock";
    d.upstream_model = MODEL;
    d.aws_access_key_id = "AKIDEXAMPLE";
    d.aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    d.aws_region_name = "us-west-2";
    return d;
}

static const char *header(const struct built *b, const char *name, char *buf, size_t cap)
{
    for (size_t i = 0; i < b->pr.n_headers; i++) {
        if (strcasecmp(b->pr.headers[i].name, name) == 0) {
            snprintf(buf, cap, "%.*s", LX_STR_FMT(b->pr.headers[i].value));
            return buf;
        }
    }
    return NULL;
}

static int req_fails(const struct lx_deployment *dep, const char *in, int code, const char *needle)
{
    struct built b;
    build(&b, dep, in);
    int ok = b.rc == code && strstr(b.err.msg, needle) != NULL && b.body.len == 0;
    if (!ok) {
        fprintf(stderr, "  %s: rc=%d msg=\"%s\" (want %d, \"%s\")\n", in, b.rc, b.err.msg, code,
                needle);
    }
    built_fini(&b);
    return ok;
}

#define WEATHER_TOOL                                                                               \
    "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\","   \
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}"

/* ---- request ---- */

LX_TEST(req_url_and_signature)
{
    struct lx_deployment dep = test_dep();
    struct built b;
    build(&b, &dep, "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}");
    LX_CHECK_INT(b.rc, 0);
    LX_CHECK_STR(b.pr.url, "https://bedrock-runtime.us-west-2.amazonaws.com/model/"
                           "anthropic.claude-3-sonnet-20240229-v1%3A0/converse");
    char v[1024];
    LX_CHECK_STR(header(&b, "host", v, sizeof(v)), "bedrock-runtime.us-west-2.amazonaws.com");
    LX_CHECK_STR(header(&b, "x-amz-date", v, sizeof(v)), "20240115T093000Z");
    LX_CHECK_STR(header(&b, "content-type", v, sizeof(v)), "application/json");
    LX_CHECK(header(&b, "x-amz-security-token", v, sizeof(v)) == NULL);
    const char *auth = header(&b, "authorization", v, sizeof(v));
    static const char prefix[] =
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/us-west-2/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, Signature=";
    LX_CHECK(auth && strncmp(auth, prefix, sizeof(prefix) - 1) == 0);
    LX_CHECK(auth && strlen(auth) == sizeof(prefix) - 1 + 64);
    LX_CHECK(
        json_eq(b.out, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"Hello\"}]}]}"));
    built_fini(&b);
}

/*
 * The whole signed request, against a signature computed independently
 * (Python hashlib/hmac over the canonical request botocore builds: path
 * segments encoded twice).
 */
LX_TEST(req_signature_golden)
{
    struct lx_deployment dep = test_dep();
    dep.aws_session_token = "FQoGZXIvYXdzEXAMPLETOKEN";
    dep.api_base = "http://127.0.0.1:4010/mock/chunks=2/";
    struct built b;
    build(&b, &dep,
          "{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}"
          "]}");
    LX_CHECK_INT(b.rc, 0);
    LX_CHECK_STR(b.pr.url, "http://127.0.0.1:4010/mock/chunks=2/model/"
                           "anthropic.claude-3-sonnet-20240229-v1%3A0/converse-stream");
    LX_CHECK_MEM(b.body.data, b.body.len,
                 "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"Hello\"}]}]}");
    char v[1024];
    LX_CHECK_STR(header(&b, "host", v, sizeof(v)), "127.0.0.1:4010");
    LX_CHECK_STR(header(&b, "x-amz-security-token", v, sizeof(v)), "FQoGZXIvYXdzEXAMPLETOKEN");
    LX_CHECK_STR(header(&b, "accept", v, sizeof(v)), "application/vnd.amazon.eventstream");
    LX_CHECK_STR(header(&b, "authorization", v, sizeof(v)),
                 "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/us-west-2/bedrock/aws4_request, "
                 "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-"
                 "token, Signature=" BEDROCK_GOLDEN_SIG);
    built_fini(&b);
}

LX_TEST(req_region_and_model)
{
    struct lx_deployment dep = test_dep();
    dep.aws_region_name = NULL;
    dep.region_name = "eu-central-1";
    dep.upstream_model = "converse/arn:aws:bedrock:eu-central-1:123:inference-profile/eu.x";
    struct built b;
    build(&b, &dep, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    LX_CHECK_INT(b.rc, 0);
    LX_CHECK_STR(b.pr.url, "https://bedrock-runtime.eu-central-1.amazonaws.com/model/"
                           "arn%3Aaws%3Abedrock%3Aeu-central-1%3A123%3Ainference-profile%2Feu.x/"
                           "converse");
    built_fini(&b);

    /* Environment fallbacks: region, then credentials with a session token. */
    dep = test_dep();
    dep.aws_region_name = NULL;
    dep.aws_access_key_id = NULL;
    dep.aws_secret_access_key = NULL;
    setenv("AWS_REGION", "ap-south-1", 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    setenv("AWS_SESSION_TOKEN", "envtoken", 1);
    build(&b, &dep, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    LX_CHECK_INT(b.rc, 0);
    char v[1024];
    LX_CHECK(strstr(b.pr.url, "bedrock-runtime.ap-south-1.") != NULL);
    LX_CHECK(strstr(header(&b, "authorization", v, sizeof(v)),
                    "Credential=AKIDENV/20240115/ap-south-1/bedrock/aws4_request") != NULL);
    LX_CHECK_STR(header(&b, "x-amz-security-token", v, sizeof(v)), "envtoken");
    built_fini(&b);
    unsetenv("AWS_REGION");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");

    /* No region anywhere: us-east-1. */
    dep = test_dep();
    dep.aws_region_name = NULL;
    unsetenv("AWS_DEFAULT_REGION");
    build(&b, &dep, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    LX_CHECK(b.rc == 0 && strstr(b.pr.url, "bedrock-runtime.us-east-1.") != NULL);
    built_fini(&b);
}

LX_TEST(req_missing_credentials)
{
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    struct lx_deployment dep = test_dep();
    const char *in = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    dep.aws_secret_access_key = NULL;
    LX_CHECK(req_fails(&dep, in, LX_ECONFIG, "a secret access key missing"));
    dep.aws_access_key_id = NULL;
    LX_CHECK(req_fails(&dep, in, LX_ECONFIG, "an access key id and a secret access key missing"));
    dep = test_dep();
    dep.aws_access_key_id = "";
    LX_CHECK(req_fails(&dep, in, LX_ECONFIG, "claude-bedrock"));
    /* The secret never appears in a message. */
    struct built b;
    build(&b, &dep, in);
    LX_CHECK(strstr(b.err.msg, "wJalr") == NULL);
    built_fini(&b);
    dep = test_dep();
    dep.aws_region_name = "us-east-1/../x";
    LX_CHECK(req_fails(&dep, in, LX_ECONFIG, "invalid AWS region"));
    dep = test_dep();
    dep.api_base = "bedrock.local";
    LX_CHECK(req_fails(&dep, in, LX_ECONFIG, "must be an http(s) URL"));
}

LX_TEST(req_messages)
{
    LX_CHECK(req_is(
        "{\"model\":\"m\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"Be terse.\"},"
        "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"Dev.\"}]},"
        "{\"role\":\"user\",\"content\":\"Hi\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"\"},{\"type\":\"text\","
        "\"text\":\"again\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"data:image/png;base64,iVBOR\"}}]},"
        "{\"role\":\"assistant\",\"content\":\"Let me check.\",\"tool_calls\":[{\"id\":\"t1\","
        "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
        "\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"18C\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"t2\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"x\"}]},"
        "{\"role\":\"user\",\"content\":\"thanks\"}],"
        "\"max_tokens\":100,\"temperature\":0.5,\"top_p\":0.9,\"stop\":\"END\","
        "\"frequency_penalty\":1,\"user\":\"u\",\"stream_options\":{\"include_usage\":true}}",
        "{\"system\":[{\"text\":\"Be terse.\"},{\"text\":\"Dev.\"}],"
        "\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"text\":\"Hi\"},{\"text\":\"again\"},{\"image\":{"
        "\"format\":\"png\",\"source\":{\"bytes\":\"iVBOR\"}}}]},"
        "{\"role\":\"assistant\",\"content\":[{\"text\":\"Let me check.\"},{\"toolUse\":{"
        "\"toolUseId\":\"t1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}}}]},"
        "{\"role\":\"user\",\"content\":[{\"toolResult\":{\"toolUseId\":\"t1\",\"content\":[{"
        "\"text\":\"18C\"}]}},{\"toolResult\":{\"toolUseId\":\"t2\",\"content\":[{\"text\":\"x\"}]}"
        "},{\"text\":\"thanks\"}]}],"
        "\"inferenceConfig\":{\"maxTokens\":100,\"temperature\":0.5,\"topP\":0.9,"
        "\"stopSequences\":[\"END\"]}}"));
}

LX_TEST(req_tools)
{
    LX_CHECK(
        req_is("{\"messages\":[{\"role\":\"user\",\"content\":\"w?\"}],\"tools\":[" WEATHER_TOOL
               "],\"tool_choice\":\"required\",\"max_completion_tokens\":7,\"stop\":[\"a\","
               "\"b\"]}",
               "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"w?\"}]}],"
               "\"inferenceConfig\":{\"maxTokens\":7,\"stopSequences\":[\"a\",\"b\"]},"
               "\"toolConfig\":{\"tools\":[{\"toolSpec\":{\"name\":\"get_weather\","
               "\"description\":\"Weather\",\"inputSchema\":{\"json\":{\"type\":\"object\","
               "\"properties\":{\"city\":{\"type\":\"string\"}}}}}}],\"toolChoice\":{\"any\":{}"
               "}}}"));
    LX_CHECK(
        req_is("{\"messages\":[{\"role\":\"user\",\"content\":\"w?\"}],\"tools\":[" WEATHER_TOOL
               "],\"tool_choice\":\"auto\"}",
               "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"w?\"}]}],"
               "\"toolConfig\":{\"tools\":[{\"toolSpec\":{\"name\":\"get_weather\","
               "\"description\":\"Weather\",\"inputSchema\":{\"json\":{\"type\":\"object\","
               "\"properties\":{\"city\":{\"type\":\"string\"}}}}}}],\"toolChoice\":{\"auto\":"
               "{}}}}"));
    LX_CHECK(req_is(
        "{\"messages\":[{\"role\":\"user\",\"content\":\"w?\"}],\"tools\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"f\"}}],\"tool_choice\":{\"type\":\"function\",\"function\":{"
        "\"name\":\"f\"}}}",
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"w?\"}]}],\"toolConfig\":{"
        "\"tools\":[{\"toolSpec\":{\"name\":\"f\",\"inputSchema\":{\"json\":{\"type\":\"object\","
        "\"properties\":{}}}}}],\"toolChoice\":{\"tool\":{\"name\":\"f\"}}}}"));
    /* "none": the tools are not offered. */
    LX_CHECK(
        req_is("{\"messages\":[{\"role\":\"user\",\"content\":\"w?\"}],\"tools\":[" WEATHER_TOOL
               "],\"tool_choice\":\"none\"}",
               "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"w?\"}]}]}"));
}

LX_TEST(req_defaults_from_deployment)
{
    struct lx_deployment dep = test_dep();
    dep.extra_params = cJSON_Parse("{\"temperature\":0.1,\"max_tokens\":50}");
    struct built b;
    build(&b, &dep, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0.7}");
    LX_CHECK(json_eq(b.out, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}],"
                            "\"inferenceConfig\":{\"maxTokens\":50,\"temperature\":0.7}}"));
    built_fini(&b);
    cJSON_Delete(dep.extra_params);
}

LX_TEST(req_errors)
{
    struct lx_deployment dep = test_dep();
    LX_CHECK(req_fails(&dep,
                       "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                       "\"image_url\":{\"url\":\"https://x/y.png\"}}]}]}",
                       LX_EINVAL, "only as base64 data: URLs"));
    LX_CHECK(req_fails(&dep,
                       "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                       "\"image_url\":{\"url\":\"data:image/bmp;base64,AA\"}}]}]}",
                       LX_EINVAL, "image type 'image/bmp'"));
    LX_CHECK(req_fails(&dep, "{\"messages\":{}}", LX_EINVAL, "messages must be an array"));
    LX_CHECK(req_fails(&dep, "[]", LX_EINVAL, "must be a JSON object"));
    LX_CHECK(req_fails(&dep, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}",
                       LX_EINVAL, "n=1"));
    LX_CHECK(req_fails(&dep,
                       "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}",
                       LX_EINVAL, "max_tokens must be a positive integer"));
    LX_CHECK(req_fails(&dep, "{\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}", LX_EINVAL,
                       "role 'bot'"));
    LX_CHECK(req_fails(&dep,
                       "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\","
                       "\"function\":{\"name\":\"f\",\"arguments\":\"{nope\"}}]}]}",
                       LX_EINVAL, "not valid JSON"));
    LX_CHECK(req_fails(&dep,
                       "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
                       "\"code_interpreter\"}]}",
                       LX_EINVAL, "not supported by Bedrock"));
    LX_CHECK(
        req_fails(&dep,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[" WEATHER_TOOL
                  "],\"tool_choice\":\"sometimes\"}",
                  LX_EINVAL, "tool_choice"));
    LX_CHECK(req_fails(&dep, "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", LX_EINVAL,
                       "tool_call_id"));
    /* Other endpoints are not served. */
    struct built b;
    memset(&b, 0, sizeof(b));
    lx_arena_init(&b.arena, NULL, 0, 4096);
    lx_buf_init(&b.body, 1 << 20);
    b.call =
        (struct lx_provider_call){.endpoint = LX_EP_EMBEDDINGS, .dep = &dep, .arena = &b.arena};
    b.pr.body = &b.body;
    LX_CHECK_INT(ops()->build_request(&b.call, &b.pr, &b.err), LX_EINVAL);
    built_fini(&b);
}

LX_TEST(req_alloc_failure)
{
    const char *json =
        "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"},{\"type\":"
        "\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]},"
        "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"t\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{\\\"a\\\":[1,2,{\\\"b\\\":null}]}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"t\",\"content\":\"ok\"}],"
        "\"tools\":[" WEATHER_TOOL "],\"tool_choice\":\"required\",\"stop\":[\"x\"],"
        "\"temperature\":0.5}";
    struct lx_deployment dep = test_dep();
    dep.aws_session_token = "tok";
    cJSON *in = cJSON_Parse(json);
    int successes = 0;
    for (long n = 0; n < 300 && !successes; n++) {
        struct lx_arena arena;
        lx_arena_init(&arena, NULL, 0, 4096);
        struct lx_buf body;
        lx_buf_init(&body, 1 << 20);
        struct lx_provider_call call = {.endpoint = LX_EP_CHAT,
                                        .dep = &dep,
                                        .json = in,
                                        .upstream_model = dep.upstream_model,
                                        .arena = &arena};
        struct lx_provider_request pr = {.body = &body};
        struct lx_error err = {0};
        lx_alloc_fail_after(n, 0);
        int rc = ops()->build_request(&call, &pr, &err);
        lx_alloc_fail_after(-1, 0);
        if (rc == 0) {
            successes++;
            cJSON *out = cJSON_ParseWithLength(body.data, body.len);
            LX_CHECK(out != NULL);
            cJSON_Delete(out);
        } else {
            LX_CHECK_INT(rc, LX_ENOMEM);
            LX_CHECK_INT(body.len, 0);
        }
        lx_buf_fini(&body);
        lx_arena_fini(&arena);
    }
    LX_CHECK_INT(successes, 1);
    cJSON_Delete(in);
}

/* ---- response ---- */

struct resp {
    int rc;
    struct lx_error err;
    cJSON *out;
    struct lx_buf buf;
};

static void translate(struct resp *r, const char *body)
{
    struct lx_deployment dep = test_dep();
    struct lx_arena arena;
    lx_arena_init(&arena, NULL, 0, 4096);
    struct lx_provider_call call = {
        .endpoint = LX_EP_CHAT, .dep = &dep, .upstream_model = "converse/" MODEL, .arena = &arena};
    memset(r, 0, sizeof(*r));
    lx_buf_init(&r->buf, 1 << 20);
    r->rc = ops()->translate_response(&call, lx_str_c(body), &r->buf, &r->err);
    r->out = r->rc ? NULL : cJSON_ParseWithLength(r->buf.data, r->buf.len);
    lx_arena_fini(&arena);
}

static void resp_fini(struct resp *r)
{
    cJSON_Delete(r->out);
    lx_buf_fini(&r->buf);
}

/* Compare without the generated id and the clock. */
static int resp_is(const char *body, const char *want)
{
    struct resp r;
    translate(&r, body);
    int ok = 0;
    if (r.rc) {
        fprintf(stderr, "  translate failed: %s\n", r.err.msg);
    } else {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(r.out, "id");
        ok = cJSON_IsString(id) && strncmp(id->valuestring, "chatcmpl-", 9) == 0 &&
             strlen(id->valuestring) == 9 + 36 &&
             cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(r.out, "created"));
        cJSON_DeleteItemFromObjectCaseSensitive(r.out, "id");
        cJSON_DeleteItemFromObjectCaseSensitive(r.out, "created");
        ok = ok && json_eq(r.out, want);
    }
    resp_fini(&r);
    return ok;
}

#define USAGE_10_5                                                                                 \
    "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15,"                 \
    "\"prompt_tokens_details\":{\"cached_tokens\":0},\"cache_read_input_tokens\":0,"               \
    "\"cache_creation_input_tokens\":0}"

LX_TEST(resp_text)
{
    LX_CHECK(resp_is(
        "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":\"Hello\"},{"
        "\"text\":\" there\"}]}},\"stopReason\":\"end_turn\",\"usage\":{\"inputTokens\":10,"
        "\"outputTokens\":5,\"totalTokens\":15},\"metrics\":{\"latencyMs\":12}}",
        "{\"object\":\"chat.completion\",\"model\":\"" MODEL "\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"Hello there\"},\"finish_reason\":"
        "\"stop\",\"logprobs\":null}]," USAGE_10_5 "}"));
    /* Cached tokens count in prompt_tokens. */
    LX_CHECK(resp_is(
        "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":\"x\"}]}},"
        "\"stopReason\":\"max_tokens\",\"usage\":{\"inputTokens\":3,\"outputTokens\":1,"
        "\"cacheReadInputTokens\":4,\"cacheWriteInputTokens\":2}}",
        "{\"object\":\"chat.completion\",\"model\":\"" MODEL "\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"x\"},\"finish_reason\":\"length\","
        "\"logprobs\":null}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,"
        "\"total_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":4},"
        "\"cache_read_input_tokens\":4,\"cache_creation_input_tokens\":2}}"));
}

LX_TEST(resp_tools)
{
    LX_CHECK(resp_is(
        "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"toolUse\":{"
        "\"toolUseId\":\"tooluse_1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}}},"
        "{\"toolUse\":{\"toolUseId\":\"tooluse_2\",\"name\":\"f\"}}]}},\"stopReason\":"
        "\"tool_use\",\"usage\":{\"inputTokens\":10,\"outputTokens\":5}}",
        "{\"object\":\"chat.completion\",\"model\":\"" MODEL "\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":"
        "\"tooluse_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
        "\"{\\\"city\\\":\\\"Paris\\\"}\"}},{\"index\":1,\"id\":\"tooluse_2\",\"type\":"
        "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":"
        "\"tool_calls\",\"logprobs\":null}]," USAGE_10_5 "}"));
}

LX_TEST(resp_finish_reasons)
{
    LX_CHECK_STR(lx_bedrock_finish_reason(LX_STR("end_turn")), "stop");
    LX_CHECK_STR(lx_bedrock_finish_reason(LX_STR("stop_sequence")), "stop");
    LX_CHECK_STR(lx_bedrock_finish_reason(LX_STR("max_tokens")), "length");
    LX_CHECK_STR(lx_bedrock_finish_reason(LX_STR("tool_use")), "tool_calls");
    LX_CHECK_STR(lx_bedrock_finish_reason(LX_STR("guardrail_intervened")), "content_filter");
    LX_CHECK_STR(lx_bedrock_finish_reason(LX_STR("content_filtered")), "content_filter");
    LX_CHECK_STR(lx_bedrock_finish_reason(LX_STR_NULL), "stop");
}

LX_TEST(resp_malformed)
{
    static const char *bad[] = {
        "",
        "[]",
        "{\"output\":{}}",
        "{\"output\":{\"message\":{\"content\":[{\"text\":5}]}}}",
        "{\"output\":{\"message\":{\"content\":[{\"toolUse\":{\"name\":\"x\"}}]}}}",
        "{\"output\":{\"message\":{\"content\":[]}},\"usage\":{\"inputTokens\":-1}}",
        "{\"output\":{\"message\":{\"content\":[]}},\"stopReason\":7}",
        "{\"output\":{\"message\":{\"content\":[5]}}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct resp r;
        translate(&r, bad[i]);
        LX_CHECK_INT(r.rc, LX_EUPSTREAM);
        LX_CHECK_INT(r.buf.len, 0);
        LX_CHECK(r.err.msg[0] != '\0');
        resp_fini(&r);
    }
}

LX_TEST(resp_alloc_failure)
{
    const char *body =
        "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":\"a\"},{"
        "\"toolUse\":{\"toolUseId\":\"t\",\"name\":\"f\",\"input\":{\"k\":[1,2]}}}]}},"
        "\"stopReason\":\"tool_use\",\"usage\":{\"inputTokens\":1,\"outputTokens\":2}}";
    int successes = 0;
    for (long n = 0; n < 200 && !successes; n++) {
        struct lx_buf out;
        lx_buf_init(&out, 1 << 20);
        struct lx_deployment dep = test_dep();
        struct lx_provider_call call = {.dep = &dep, .upstream_model = MODEL};
        struct lx_error err = {0};
        lx_alloc_fail_after(n, 0);
        int rc = ops()->translate_response(&call, lx_str_c(body), &out, &err);
        lx_alloc_fail_after(-1, 0);
        if (rc == 0) {
            successes++;
        } else {
            LX_CHECK(rc == LX_ENOMEM || rc == LX_EUPSTREAM); /* cJSON cannot tell OOM apart */
            LX_CHECK_INT(out.len, 0);
        }
        lx_buf_fini(&out);
    }
    LX_CHECK_INT(successes, 1);
}

/* ---- errors ---- */

static int error_is(const char *body, int status, int want_status, const char *want)
{
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    int s = status;
    int rc = ops()->translate_error(NULL, lx_str_c(body), &s, &out);
    cJSON *j = rc ? NULL : cJSON_ParseWithLength(out.data, out.len);
    int ok = rc == 0 && s == want_status && json_eq(j, want);
    cJSON_Delete(j);
    lx_buf_fini(&out);
    return ok;
}

LX_TEST(error_mapping)
{
    LX_CHECK(error_is("{\"message\":\"The provided model identifier is invalid.\"}", 400, 400,
                      "{\"error\":{\"message\":\"The provided model identifier is invalid.\","
                      "\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"400\"}}"));
    LX_CHECK(error_is("{\"message\":\"Too many requests, please wait.\"}", 429, 429,
                      "{\"error\":{\"message\":\"Too many requests, please wait.\",\"type\":"
                      "\"rate_limit_error\",\"param\":null,\"code\":\"429\"}}"));
    LX_CHECK(error_is("{\"Message\":\"denied\",\"__type\":\"com.amazon.coral#"
                      "AccessDeniedException\"}",
                      403, 403,
                      "{\"error\":{\"message\":\"AccessDeniedException: denied\",\"type\":"
                      "\"permission_error\",\"param\":null,\"code\":\"403\"}}"));
    LX_CHECK(error_is("<html>bad gateway</html>", 503, 503,
                      "{\"error\":{\"message\":\"Bedrock returned HTTP 503\",\"type\":"
                      "\"server_error\",\"param\":null,\"code\":\"503\"}}"));
    LX_CHECK_INT(lx_bedrock_exception_status(LX_STR("ThrottlingException")), 429);
    LX_CHECK_INT(lx_bedrock_exception_status(LX_STR("throttlingException")), 429);
    LX_CHECK_INT(lx_bedrock_exception_status(LX_STR("modelStreamErrorException")), 424);
    LX_CHECK_INT(lx_bedrock_exception_status(LX_STR("ServiceUnavailableException")), 503);
    LX_CHECK_INT(lx_bedrock_exception_status(LX_STR("NopeException")), 0);
}

/* ---- stream ---- */

static void put_event(struct lx_buf *b, const char *type, const char *payload)
{
    struct lx_eventstream_header h[] = {
        {":event-type", lx_str_c(type)},
        {":content-type", LX_STR("application/json")},
        {":message-type", LX_STR("event")},
    };
    if (lx_eventstream_encode(b, h, 3, lx_str_c(payload)) != 0) {
        abort();
    }
}

static void put_exception(struct lx_buf *b, const char *type, const char *payload)
{
    struct lx_eventstream_header h[] = {
        {":exception-type", lx_str_c(type)},
        {":content-type", LX_STR("application/json")},
        {":message-type", LX_STR("exception")},
    };
    if (lx_eventstream_encode(b, h, 3, lx_str_c(payload)) != 0) {
        abort();
    }
}

/* Summarise OpenAI SSE output: one line per event. */
struct summary {
    struct lx_buf text;
};

static int summarise_event(void *ud, const struct lx_sse_event *ev)
{
    struct summary *s = ud;
    int rc = 0;
    if (lx_str_eq_c(ev->data, "[DONE]")) {
        return lx_buf_append_c(&s->text, "[DONE]\n");
    }
    cJSON *j = cJSON_ParseWithLength(ev->data.p, ev->data.n);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (e) {
        char *p = cJSON_PrintUnformatted(e);
        rc = lx_buf_printf(&s->text, "error %s\n", p);
        cJSON_free(p);
        cJSON_Delete(j);
        return rc;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (!cJSON_IsString(id) || strncmp(id->valuestring, "chatcmpl-", 9) != 0 ||
        !cJSON_GetObjectItemCaseSensitive(j, "created")) {
        rc = lx_buf_append_c(&s->text, "BAD CHUNK HEAD\n");
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (!cJSON_IsString(model) || strcmp(model->valuestring, MODEL) != 0) {
        rc = lx_buf_append_c(&s->text, "BAD MODEL\n");
    }
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    const cJSON *c0 = cJSON_GetArrayItem(choices, 0);
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    if (c0) {
        char *d = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c0, "delta"));
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
        rc = lx_buf_printf(&s->text, "delta %s finish %s\n", d,
                           cJSON_IsString(fr) ? fr->valuestring : "null");
        cJSON_free(d);
    } else if (usage) {
        char *u = cJSON_PrintUnformatted(usage);
        rc = lx_buf_printf(&s->text, "usage %s\n", u);
        cJSON_free(u);
    }
    cJSON_Delete(j);
    return rc;
}

struct run {
    int rc;     /* first feed error */
    int end_rc; /* stream_end's */
    struct lx_error err;
    struct summary sum;
};

/* Feed upstream bytes split at `cut` (and at 2*cut...; cut 0 = whole), then end. */
static void run_stream(struct run *r, const char *req_json, struct lx_str up, size_t cut)
{
    struct lx_deployment dep = test_dep();
    struct lx_arena arena;
    lx_arena_init(&arena, NULL, 0, 4096);
    cJSON *json = cJSON_Parse(req_json);
    struct lx_provider_call call = {.endpoint = LX_EP_CHAT,
                                    .dep = &dep,
                                    .json = json,
                                    .stream = true,
                                    .upstream_model = MODEL,
                                    .arena = &arena};
    memset(r, 0, sizeof(*r));
    lx_buf_init(&r->sum.text, 1 << 20);
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    void *st = ops()->stream_new(&call);
    size_t pos = 0;
    while (pos < up.n && !r->rc) {
        size_t n = cut ? LX_MIN(cut, up.n - pos) : up.n;
        r->rc = ops()->stream_feed(st, up.p + pos, n, &out, &r->err);
        pos += n;
    }
    if (!r->rc) {
        r->end_rc = ops()->stream_end(st, &out, &r->err);
    }
    ops()->stream_free(st);
    struct lx_sse_parser sp;
    lx_sse_init(&sp, 1 << 20);
    bool truncated = false;
    if (lx_sse_feed(&sp, out.data ? out.data : "", out.len, summarise_event, &r->sum) != 0 ||
        lx_sse_finish(&sp, &truncated) != 0 || truncated) {
        lx_buf_reset(&r->sum.text);
        LX_CHECK(!"the output is not a clean event stream");
    }
    lx_sse_fini(&sp);
    lx_buf_fini(&out);
    cJSON_Delete(json);
    lx_arena_fini(&arena);
}

static void run_fini(struct run *r)
{
    lx_buf_fini(&r->sum.text);
}

static void text_stream(struct lx_buf *b)
{
    put_event(b, "messageStart", "{\"role\":\"assistant\"}");
    put_event(b, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hello\"}}");
    put_event(b, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\" world\"}}");
    put_event(b, "contentBlockStop", "{\"contentBlockIndex\":0}");
    put_event(b, "messageStop", "{\"stopReason\":\"end_turn\"}");
    put_event(b, "metadata",
              "{\"usage\":{\"inputTokens\":10,\"outputTokens\":5,\"totalTokens\":15},"
              "\"metrics\":{\"latencyMs\":100}}");
}

#define TEXT_SUMMARY                                                                               \
    "delta {\"role\":\"assistant\",\"content\":\"\"} finish null\n"                                \
    "delta {\"content\":\"Hello\"} finish null\n"                                                  \
    "delta {\"content\":\" world\"} finish null\n"                                                 \
    "delta {} finish stop\n"

LX_TEST(stream_text_split_everywhere)
{
    struct lx_buf up;
    lx_buf_init(&up, 1 << 20);
    text_stream(&up);
    for (size_t cut = 0; cut <= up.len; cut++) {
        struct run r;
        run_stream(&r, "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                   lx_buf_str(&up), cut);
        LX_CHECK_INT(r.rc, 0);
        LX_CHECK_INT(r.end_rc, 0);
        LX_CHECK_STR(r.sum.text.data,
                     TEXT_SUMMARY "usage {\"prompt_tokens\":10,\"completion_tokens\":5,"
                                  "\"total_tokens\":15,\"prompt_tokens_details\":{"
                                  "\"cached_tokens\":0},\"cache_read_input_tokens\":0,"
                                  "\"cache_creation_input_tokens\":0}\n[DONE]\n");
        run_fini(&r);
        if (lx_test_current_failed_) {
            fprintf(stderr, "  cut %zu\n", cut);
            break;
        }
    }
    /* Without include_usage: no usage chunk. */
    struct run r;
    run_stream(&r, "{\"stream\":true}", lx_buf_str(&up), 0);
    LX_CHECK_STR(r.sum.text.data, TEXT_SUMMARY "[DONE]\n");
    run_fini(&r);
    lx_buf_fini(&up);
}

LX_TEST(stream_tools)
{
    struct lx_buf up;
    lx_buf_init(&up, 1 << 20);
    put_event(&up, "messageStart", "{\"role\":\"assistant\"}");
    put_event(&up, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hm.\"}}");
    put_event(&up, "contentBlockStop", "{\"contentBlockIndex\":0}");
    put_event(&up, "contentBlockStart",
              "{\"contentBlockIndex\":1,\"start\":{\"toolUse\":{\"toolUseId\":\"tooluse_A\","
              "\"name\":\"get_weather\"}}}");
    put_event(&up, "contentBlockDelta",
              "{\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":\"{\\\"city\\\":\"}}}");
    put_event(&up, "contentBlockDelta",
              "{\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":\"\\\"Paris\\\"}\"}}}");
    put_event(&up, "contentBlockStop", "{\"contentBlockIndex\":1}");
    put_event(&up, "messageStop", "{\"stopReason\":\"tool_use\"}");
    put_event(&up, "metadata", "{\"usage\":{\"inputTokens\":1,\"outputTokens\":2}}");
    struct run r;
    run_stream(&r, "{}", lx_buf_str(&up), 7);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_STR(r.sum.text.data,
                 "delta {\"role\":\"assistant\",\"content\":\"\"} finish null\n"
                 "delta {\"content\":\"Hm.\"} finish null\n"
                 "delta {\"tool_calls\":[{\"index\":0,\"id\":\"tooluse_A\",\"type\":\"function\","
                 "\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]} finish null\n"
                 "delta {\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":"
                 "\"}}]} finish null\n"
                 "delta {\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}"
                 "\"}}]} finish null\n"
                 "delta {} finish tool_calls\n[DONE]\n");
    run_fini(&r);
    lx_buf_fini(&up);
}

LX_TEST(stream_exception)
{
    struct lx_buf up;
    lx_buf_init(&up, 1 << 20);
    put_event(&up, "messageStart", "{\"role\":\"assistant\"}");
    put_event(&up, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}");
    put_exception(&up, "throttlingException", "{\"message\":\"Too many tokens\"}");
    put_event(&up, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"late\"}}");
    struct run r;
    run_stream(&r, "{}", lx_buf_str(&up), 0);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.end_rc, 0);
    LX_CHECK_STR(r.sum.text.data,
                 "delta {\"role\":\"assistant\",\"content\":\"\"} finish null\n"
                 "delta {\"content\":\"Hi\"} finish null\n"
                 "error {\"message\":\"throttlingException: Too many tokens\",\"type\":"
                 "\"rate_limit_error\",\"param\":null,\"code\":\"429\"}\n");
    run_fini(&r);
    lx_buf_fini(&up);
}

LX_TEST(stream_truncated_and_no_metadata)
{
    struct lx_buf up;
    lx_buf_init(&up, 1 << 20);
    text_stream(&up);
    /* Cut inside the last message: stream_end reports truncation. */
    struct run r;
    run_stream(&r, "{}", (struct lx_str){up.data, up.len - 3}, 0);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK(r.end_rc != 0);
    LX_CHECK(strstr(r.err.msg, "middle of a message") != NULL);
    run_fini(&r);
    /* messageStop then the end, no metadata: finish and [DONE] from stream_end. */
    lx_buf_reset(&up);
    put_event(&up, "messageStart", "{\"role\":\"assistant\"}");
    put_event(&up, "messageStop", "{\"stopReason\":\"max_tokens\"}");
    run_stream(&r, "{}", lx_buf_str(&up), 0);
    LX_CHECK_INT(r.end_rc, 0);
    LX_CHECK_STR(r.sum.text.data, "delta {\"role\":\"assistant\",\"content\":\"\"} finish null\n"
                                  "delta {} finish length\n[DONE]\n");
    run_fini(&r);
    lx_buf_fini(&up);
}

LX_TEST(stream_malformed)
{
    struct lx_buf up;
    lx_buf_init(&up, 1 << 20);
    /* A bad message CRC. */
    text_stream(&up);
    up.data[40] ^= 1;
    struct run r;
    run_stream(&r, "{}", lx_buf_str(&up), 0);
    LX_CHECK_INT(r.rc, LX_EUPSTREAM);
    LX_CHECK(strstr(r.err.msg, "event stream CRC mismatch") != NULL);
    run_fini(&r);
    /* Events out of order or with bad payloads. */
    static const char *const bad[][2] = {
        {"contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"x\"}}"},
        {"messageStart", "not json"},
        {"messageStart", "{}"},
    };
    for (size_t i = 0; i < 3; i++) {
        lx_buf_reset(&up);
        if (i == 2) {
            put_event(&up, "messageStart", "{}");
        }
        put_event(&up, bad[i][0], bad[i][1]);
        run_stream(&r, "{}", lx_buf_str(&up), 0);
        LX_CHECK_INT(r.rc, LX_EUPSTREAM);
        LX_CHECK(r.err.msg[0] != '\0');
        run_fini(&r);
    }
    static const char *const bad_deltas[] = {
        "{\"contentBlockIndex\":-1,\"delta\":{\"text\":\"x\"}}",
        "{\"contentBlockIndex\":5000,\"delta\":{\"text\":\"x\"}}",
        "{\"contentBlockIndex\":0,\"delta\":{\"text\":5}}",
        "{\"contentBlockIndex\":0,\"delta\":{\"toolUse\":{\"input\":\"x\"}}}",
    };
    for (size_t i = 0; i < 4; i++) {
        lx_buf_reset(&up);
        put_event(&up, "messageStart", "{}");
        put_event(&up, "contentBlockDelta", bad_deltas[i]);
        run_stream(&r, "{}", lx_buf_str(&up), 0);
        LX_CHECK_INT(r.rc, LX_EUPSTREAM);
        run_fini(&r);
    }
    /* Unknown event types are skipped. */
    lx_buf_reset(&up);
    put_event(&up, "messageStart", "{}");
    put_event(&up, "somethingNew", "{\"x\":1}");
    put_event(&up, "metadata", "{\"usage\":{}}");
    run_stream(&r, "{}", lx_buf_str(&up), 0);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_STR(r.sum.text.data, "delta {\"role\":\"assistant\",\"content\":\"\"} finish null\n"
                                  "delta {} finish stop\n[DONE]\n");
    run_fini(&r);
    lx_buf_fini(&up);
}

LX_TEST(stream_alloc_failure)
{
    struct lx_buf up;
    lx_buf_init(&up, 1 << 20);
    text_stream(&up);
    struct lx_deployment dep = test_dep();
    cJSON *json = cJSON_Parse("{\"stream_options\":{\"include_usage\":true}}");
    int successes = 0;
    for (long k = 0; k < 400 && !successes; k++) {
        struct lx_arena arena;
        lx_arena_init(&arena, NULL, 0, 4096);
        struct lx_provider_call call = {
            .dep = &dep, .json = json, .stream = true, .upstream_model = MODEL, .arena = &arena};
        struct lx_buf out;
        lx_buf_init(&out, 1 << 20);
        void *st = ops()->stream_new(&call);
        struct lx_error err = {0};
        lx_alloc_fail_after(k, 0);
        int rc = ops()->stream_feed(st, up.data, 30, &out, &err);
        if (!rc) {
            rc = ops()->stream_feed(st, up.data + 30, up.len - 30, &out, &err);
        }
        if (!rc) {
            rc = ops()->stream_end(st, &out, &err);
        }
        lx_alloc_fail_after(-1, 0);
        if (!rc) {
            successes++;
            LX_CHECK(strstr(out.data, "[DONE]") != NULL);
        } else {
            LX_CHECK(rc == LX_ENOMEM || rc == LX_EUPSTREAM);
            LX_CHECK(err.msg[0] != '\0');
        }
        ops()->stream_free(st);
        lx_buf_fini(&out);
        lx_arena_fini(&arena);
    }
    LX_CHECK_INT(successes, 1);
    cJSON_Delete(json);
    lx_buf_fini(&up);
}

LX_TEST_MAIN(LX_RUN(req_url_and_signature), LX_RUN(req_signature_golden),
             LX_RUN(req_region_and_model), LX_RUN(req_missing_credentials), LX_RUN(req_messages),
             LX_RUN(req_tools), LX_RUN(req_defaults_from_deployment), LX_RUN(req_errors),
             LX_RUN(req_alloc_failure), LX_RUN(resp_text), LX_RUN(resp_tools),
             LX_RUN(resp_finish_reasons), LX_RUN(resp_malformed), LX_RUN(resp_alloc_failure),
             LX_RUN(error_mapping), LX_RUN(stream_text_split_everywhere), LX_RUN(stream_tools),
             LX_RUN(stream_exception), LX_RUN(stream_truncated_and_no_metadata),
             LX_RUN(stream_malformed), LX_RUN(stream_alloc_failure))
