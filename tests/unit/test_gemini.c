/*
 * Unit tests for the Gemini provider (src/providers/gemini.c): OpenAI chat
 * requests into generateContent requests, GenerateContentResponses, errors
 * and SSE streams back into OpenAI's shapes. Expected bodies are compared
 * as JSON trees (cJSON_Compare), so member order does not matter but every
 * member does; generated ids and times are checked, then removed. Response
 * and stream fixtures follow the examples of
 * https://ai.google.dev/api/generate-content and the function-calling guide.
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
#include "providers/provider.h"

#define TEST_KEY "AIza-test-key"
#define TEST_GENERATED_IDS 1
#include "provider_test.h"

const char *lx_gemini_finish_reason(struct lx_str reason, bool has_tool_calls);
const char *lx_gemini_error_type(struct lx_str status, int http_status);

static const struct lx_provider_ops *ops(void)
{
    return lx_provider_ops_for(LX_PROVIDER_GEMINI);
}

static struct lx_deployment test_dep(void)
{
    struct lx_deployment d;
    test_dep_init(&d);
    d.model_name = "gemini-flash";
    d.id = "dep-gemini-1";
    d.model = "gemini/gemini-2.0-flash";
    d.provider.kind = LX_PROVIDER_GEMINI;
    d.provider.name = "gemini";
    d.provider.default_api_base = "https://generativelanguage.googleapis.com";
    d.provider.default_key_env = "GEMINI_API_KEY";
    d.upstream_model = "gemini-2.0-flash";
    return d;
}

/* ---- requests ---- */

LX_TEST(req_basic_and_headers)
{
    struct lx_deployment dep = test_dep();
    struct built b;
    build(&b, &dep,
          "{\"model\":\"gemini-flash\",\"messages\":[{\"role\":\"system\",\"content\":\"Be "
          "terse.\"},{\"role\":\"user\",\"content\":\"Hello\"}],\"temperature\":0.2,"
          "\"user\":\"u1\",\"stream_options\":{\"include_usage\":true}}");
    LX_CHECK_INT(b.rc, 0);
    LX_CHECK_STR(b.pr.url, "https://generativelanguage.googleapis.com/v1beta/models/"
                           "gemini-2.0-flash:generateContent");
    LX_CHECK(lx_str_eq_c(header(&b, "x-goog-api-key"), TEST_KEY));
    LX_CHECK(lx_str_eq_c(header(&b, "content-type"), "application/json"));
    LX_CHECK(header(&b, "authorization").p == NULL);
    LX_CHECK(json_eq(b.out, "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"Hello\"}]}],"
                            "\"systemInstruction\":{\"parts\":[{\"text\":\"Be terse.\"}]},"
                            "\"generationConfig\":{\"temperature\":0.2}}"));
    built_fini(&b);

    /* Streams use streamGenerateContent with alt=sse; the body is the same. */
    build(&b, &dep, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":true}");
    LX_CHECK_INT(b.rc, 0);
    LX_CHECK_STR(b.pr.url, "https://generativelanguage.googleapis.com/v1beta/models/"
                           "gemini-2.0-flash:streamGenerateContent?alt=sse");
    LX_CHECK(json_eq(b.out, "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"Hi\"}]}]}"));
    built_fini(&b);

    /* api_base with a version segment, a models/ model name, extra headers, no key. */
    dep.api_base = "http://127.0.0.1:9/mock/x=1/v1beta/";
    dep.upstream_model = "models/gemini-1.5-pro";
    struct lx_kv hdr = {"x-extra", "1"};
    dep.extra_headers = &hdr;
    dep.n_extra_headers = 1;
    memset(&b, 0, sizeof(b));
    lx_arena_init(&b.arena, NULL, 0, 4096);
    lx_buf_init(&b.body, 1 << 20);
    b.in = cJSON_Parse("{\"messages\":[]}");
    b.call = (struct lx_provider_call){.endpoint = LX_EP_CHAT,
                                       .dep = &dep,
                                       .json = b.in,
                                       .upstream_model = dep.upstream_model,
                                       .arena = &b.arena};
    b.pr.body = &b.body;
    LX_CHECK_INT(ops()->build_request(&b.call, &b.pr, &b.err), 0);
    LX_CHECK_STR(b.pr.url, "http://127.0.0.1:9/mock/x=1/v1beta/models/gemini-1.5-pro:"
                           "generateContent");
    LX_CHECK(header(&b, "x-goog-api-key").p == NULL);
    LX_CHECK(lx_str_eq_c(header(&b, "x-extra"), "1"));
    built_fini(&b);

    /* Only chat. */
    dep = test_dep();
    build_ep(&b, &dep, "{\"input\":\"x\"}", LX_EP_EMBEDDINGS);
    LX_CHECK_INT(b.rc, LX_EINVAL);
    LX_CHECK(b.body.len == 0);
    built_fini(&b);
}

LX_TEST(req_roles_and_parts)
{
    /* Consecutive same-role turns merge; developer joins system; empty text is dropped. */
    LX_CHECK(req_is(
        "{\"messages\":[{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"A\"}]},"
        "{\"role\":\"user\",\"content\":\"one\"},{\"role\":\"user\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"two\"},{\"type\":\"text\",\"text\":\"\"},{\"type\":\"image_url\","
        "\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo=\"}},{\"type\":\"image_url\","
        "\"image_url\":{\"url\":\"https://example.com/cat.JPG?x=1\"}}]},"
        "{\"role\":\"system\",\"content\":\"B\"},"
        "{\"role\":\"assistant\",\"content\":\"ok\"},{\"role\":\"assistant\",\"content\":\"\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{\"file_id\":"
        "\"gs://bucket/doc.pdf\"}},{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"AAA=\","
        "\"format\":\"wav\"}}]}]}",
        "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"one\"},{\"text\":\"two\"},"
        "{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"iVBORw0KGgo=\"}},"
        "{\"fileData\":{\"mimeType\":\"image/jpeg\",\"fileUri\":\"https://example.com/"
        "cat.JPG?x=1\"}}]},"
        "{\"role\":\"model\",\"parts\":[{\"text\":\"ok\"}]},"
        "{\"role\":\"user\",\"parts\":[{\"fileData\":{\"mimeType\":\"application/pdf\","
        "\"fileUri\":\"gs://bucket/doc.pdf\"}},{\"inlineData\":{\"mimeType\":\"audio/wav\","
        "\"data\":\"AAA=\"}}]}],"
        "\"systemInstruction\":{\"parts\":[{\"text\":\"A\"},{\"text\":\"B\"}]}}"));
}

#define WEATHER_TOOL                                                                               \
    "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\","   \
    "\"parameters\":{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\"," \
    "\"additionalProperties\":false,\"properties\":{\"location\":{\"type\":\"string\"},"           \
    "\"strict\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{}}},"          \
    "\"required\":[\"location\"]},\"strict\":true}}"

LX_TEST(req_tools_and_choice)
{
    static const char *const want_decl =
        "\"tools\":[{\"functionDeclarations\":[{\"name\":\"get_weather\",\"description\":"
        "\"Weather\",\"parameters\":{\"type\":\"object\",\"properties\":{\"location\":{\"type\":"
        "\"string\"},\"strict\":{\"type\":\"object\",\"properties\":{}}},\"required\":"
        "[\"location\"]}},{\"name\":\"now\"}]}]";
    static const struct {
        const char *choice;
        const char *config;
    } cases[] = {
        {"", ""},
        {",\"tool_choice\":\"auto\"",
         ",\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"AUTO\"}}"},
        {",\"tool_choice\":\"none\"",
         ",\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"NONE\"}}"},
        {",\"tool_choice\":\"required\"",
         ",\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"ANY\"}}"},
        {",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"now\"}}",
         ",\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"ANY\",\"allowedFunctionNames\":"
         "[\"now\"]}}"},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(cases); i++) {
        char in[2048], want[2048];
        snprintf(in, sizeof(in),
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"w?\"}],\"tools\":[" WEATHER_TOOL
                 ",{\"type\":\"function\",\"function\":{\"name\":\"now\",\"parameters\":{"
                 "\"type\":\"object\",\"properties\":{}}}}]%s}",
                 cases[i].choice);
        snprintf(want, sizeof(want),
                 "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"w?\"}]}],%s%s}",
                 want_decl, cases[i].config);
        LX_CHECK(req_is(in, want));
    }
}

LX_TEST(req_tool_round_trip)
{
    /* The function name of a tool result comes from the call with the same id. */
    LX_CHECK(req_is(
        "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_a\",\"type\":"
        "\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"location\\\":"
        "\\\"Paris\\\"}\"}},{\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":"
        "\"get_time\",\"arguments\":\"\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_b\",\"content\":\"noon\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_a\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"sunny\"}]},{\"role\":\"user\",\"content\":\"thanks\"}]}",
        "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"Weather in Paris and Rome?\"}]},"
        "{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"get_weather\",\"args\":{"
        "\"location\":\"Paris\"}}},{\"functionCall\":{\"name\":\"get_time\",\"args\":{}}}]},"
        "{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":\"get_time\",\"response\":"
        "{\"content\":\"noon\"}}},{\"functionResponse\":{\"name\":\"get_weather\",\"response\":{"
        "\"content\":\"sunny\"}}},{\"text\":\"thanks\"}]}]}"));
    /* A tool message's own name serves when no call matches. */
    LX_CHECK(req_is("{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"x\",\"name\":\"f\","
                    "\"content\":\"r\"}]}",
                    "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":"
                    "\"f\",\"response\":{\"content\":\"r\"}}}]}]}"));
}

LX_TEST(req_params)
{
    LX_CHECK(req_is(
        "{\"messages\":[],\"top_p\":0.9,\"top_k\":40,\"max_tokens\":100,\"stop\":\"END\","
        "\"n\":2,\"seed\":7,\"presence_penalty\":0.5,\"frequency_penalty\":-0.5,"
        "\"logit_bias\":{\"1\":2},\"response_format\":{\"type\":\"json_object\"}}",
        "{\"contents\":[],\"generationConfig\":{\"topP\":0.9,\"topK\":40,\"presencePenalty\":0.5,"
        "\"frequencyPenalty\":-0.5,\"seed\":7,\"maxOutputTokens\":100,\"candidateCount\":2,"
        "\"stopSequences\":[\"END\"],\"responseMimeType\":\"application/json\"}}"));
    LX_CHECK(req_is(
        "{\"messages\":[],\"max_completion_tokens\":5,\"max_tokens\":100,\"stop\":[\"a\",\"b\"],"
        "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"strict\":"
        "true,\"schema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":"
        "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"additionalProperties\":false}}}}}}}",
        "{\"contents\":[],\"generationConfig\":{\"maxOutputTokens\":5,\"stopSequences\":[\"a\","
        "\"b\"],\"responseMimeType\":\"application/json\",\"responseSchema\":{\"type\":\"object\","
        "\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}}}}}}"));
    /* Deployment defaults fill what the client did not send. */
    struct lx_deployment dep = test_dep();
    cJSON *extra = cJSON_Parse("{\"temperature\":0.1,\"max_tokens\":9}");
    dep.extra_params = extra;
    struct built b;
    build(&b, &dep, "{\"messages\":[],\"temperature\":0.7}");
    LX_CHECK_INT(b.rc, 0);
    LX_CHECK(json_eq(b.out, "{\"contents\":[],\"generationConfig\":{\"temperature\":0.7,"
                            "\"maxOutputTokens\":9}}"));
    built_fini(&b);
    cJSON_Delete(extra);
}

LX_TEST(req_errors)
{
    LX_CHECK(req_fails("[1]", LX_EINVAL, "must be a JSON object"));
    LX_CHECK(req_fails("{\"model\":\"m\"}", LX_EINVAL, "messages must be an array"));
    LX_CHECK(
        req_fails("{\"messages\":[1]}", LX_EINVAL, "messages[0]: a message must be an object"));
    LX_CHECK(req_fails("{\"messages\":[{\"content\":\"x\"}]}", LX_EINVAL, "needs a string 'role'"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", LX_EINVAL,
                       "role 'wizard' is not supported by Gemini"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\"}]}", LX_EINVAL, "needs content"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\",\"content\":5}]}", LX_EINVAL,
                       "content must be a string or an array"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video\"}]}]}",
                       LX_EINVAL, "'video' is not supported"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                       "\"image_url\":{\"url\":\"data:image/png,abc\"}}]}]}",
                       LX_EINVAL, "base64"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                       "\"image_url\":{\"url\":\"nocolon\"}}]}]}",
                       LX_EINVAL, "absolute URL"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"t\","
                       "\"function\":{\"name\":\"f\",\"arguments\":\"{nope\"}}]}]}",
                       LX_EINVAL, "not valid JSON"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"t\","
                       "\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
                       LX_EINVAL, "must be a JSON object"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":{}}]}", LX_EINVAL,
                       "tool_calls must be an array"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"zz\",\"content\":"
                       "\"x\"}]}",
                       LX_EINVAL, "no assistant tool call matches"));
    LX_CHECK(
        req_fails("{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\"}]}]}",
                  LX_EINVAL, "system content parts must be text"));
    LX_CHECK(req_fails("{\"messages\":[],\"max_tokens\":0}", LX_EINVAL, "max_tokens must be"));
    LX_CHECK(req_fails("{\"messages\":[],\"n\":1.5}", LX_EINVAL, "n must be"));
    LX_CHECK(req_fails("{\"messages\":[],\"seed\":\"x\"}", LX_EINVAL, "seed must be"));
    LX_CHECK(req_fails("{\"messages\":[],\"temperature\":\"hot\"}", LX_EINVAL,
                       "temperature must be a number"));
    LX_CHECK(req_fails("{\"messages\":[],\"stop\":[1]}", LX_EINVAL, "stop must be"));
    LX_CHECK(req_fails("{\"messages\":[],\"tools\":{}}", LX_EINVAL, "tools must be an array"));
    LX_CHECK(req_fails("{\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":{}}]}",
                       LX_EINVAL, "needs function.name"));
    LX_CHECK(req_fails("{\"messages\":[],\"tools\":[{\"type\":\"code_interpreter\"}]}", LX_EINVAL,
                       "must be a function tool"));
    LX_CHECK(req_fails("{\"messages\":[],\"tool_choice\":\"maybe\"}", LX_EINVAL, "tool_choice"));
    LX_CHECK(req_fails("{\"messages\":[],\"tool_choice\":{\"type\":\"function\"}}", LX_EINVAL,
                       "function.name"));
    LX_CHECK(req_fails("{\"messages\":[],\"response_format\":\"json\"}", LX_EINVAL,
                       "response_format must be an object"));
}

LX_TEST(req_too_big)
{
    struct lx_deployment dep = test_dep();
    struct lx_arena arena;
    lx_arena_init(&arena, NULL, 0, 4096);
    const char *json =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"0123456789012345678901234567"
        "89012345678901234567890123456789\"}]}";
    cJSON *in = cJSON_Parse(json);
    struct lx_buf body;
    lx_buf_init(&body, 40);
    struct lx_provider_call call = {.endpoint = LX_EP_CHAT,
                                    .dep = &dep,
                                    .json = in,
                                    .upstream_model = dep.upstream_model,
                                    .arena = &arena};
    struct lx_provider_request pr = {.body = &body};
    struct lx_error err = {0};
    LX_CHECK_INT(ops()->build_request(&call, &pr, &err), LX_ETOOBIG);
    LX_CHECK_INT(body.len, 0);
    lx_buf_fini(&body);
    cJSON_Delete(in);
    lx_arena_fini(&arena);
}

/* Fail each allocation in turn: every run fails cleanly (LX_ENOMEM, nothing written) or succeeds.
 */
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
        "\"temperature\":0.5,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
        "\"schema\":{\"type\":\"object\"}}}}";
    struct lx_deployment dep = test_dep();
    cJSON *in = cJSON_Parse(json);
    int successes = 0;
    for (long n = 0; n < 400 && !successes; n++) {
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
            LX_CHECK(err.msg[0] != '\0');
        }
        lx_buf_fini(&body);
        lx_arena_fini(&arena);
    }
    LX_CHECK_INT(successes, 1);
    cJSON_Delete(in);
}

/* ---- responses ---- */

/* https://ai.google.dev/api/generate-content#text_gen_text_only_prompt-SHELL (response). */
LX_TEST(resp_text)
{
    LX_CHECK(resp_is(
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Once upon a time, \"},{\"text\":"
        "\"there was a lamp.\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"avgLogprobs\":"
        "-0.3}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":10,"
        "\"totalTokenCount\":18,\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":8}]}"
        ","
        "\"modelVersion\":\"gemini-2.0-flash\"}",
        "{\"object\":\"chat.completion\",\"model\":\"gemini-2.0-flash\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"Once upon a time, there was a lamp.\"},"
        "\"finish_reason\":\"stop\",\"logprobs\":null}],\"usage\":{\"prompt_tokens\":8,"
        "\"completion_tokens\":10,\"total_tokens\":18,\"prompt_tokens_details\":{"
        "\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}"));
    /* responseId becomes the id; thoughts are reasoning and count as completion tokens. */
    struct lx_error err = {0};
    int rc;
    cJSON *j = translate(
        "{\"responseId\":\"abc123\",\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hm\","
        "\"thought\":true},{\"text\":\"42\"}]},\"finishReason\":\"MAX_TOKENS\"}],"
        "\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":1,"
        "\"thoughtsTokenCount\":7,\"cachedContentTokenCount\":3,\"totalTokenCount\":13}}",
        &rc, &err);
    LX_CHECK_INT(rc, 0);
    LX_CHECK(json_eq(j, "{\"object\":\"chat.completion\",\"model\":"
                        "\"gemini-2.0-flash\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                        "\"assistant\",\"content\":\"42\",\"reasoning_content\":\"hm\"},"
                        "\"finish_reason\":\"length\",\"logprobs\":null}],\"usage\":{"
                        "\"prompt_tokens\":5,\"completion_tokens\":8,\"total_tokens\":13,"
                        "\"prompt_tokens_details\":{\"cached_tokens\":3},"
                        "\"completion_tokens_details\":{\"reasoning_tokens\":7}}}"));
    cJSON_Delete(j);
    struct lx_deployment dep = test_dep();
    struct lx_provider_call call = {.dep = &dep, .upstream_model = dep.upstream_model};
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    LX_CHECK_INT(ops()->translate_response(
                     &call, LX_STR("{\"responseId\":\"abc123\",\"candidates\":[{}]}"), &out, &err),
                 0);
    j = cJSON_ParseWithLength(out.data, out.len);
    LX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "id")),
                 "chatcmpl-abc123");
    cJSON_Delete(j);
    lx_buf_fini(&out);
}

/* The function-calling guide's answer: a functionCall part, finishReason STOP. */
LX_TEST(resp_function_call)
{
    struct lx_error err = {0};
    int rc;
    cJSON *j = translate(
        "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":"
        "\"set_light_values\",\"args\":{\"brightness\":25,\"color_temp\":\"warm\"}}},"
        "{\"functionCall\":{\"name\":\"now\"}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":"
        "{\"promptTokenCount\":20,\"candidatesTokenCount\":9,\"totalTokenCount\":29}}",
        &rc, &err);
    LX_CHECK_INT(rc, 0);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0), "message");
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    LX_CHECK_INT(cJSON_GetArraySize(calls), 2);
    LX_CHECK(json_eq(j, "{\"object\":\"chat.completion\",\"model\":\"gemini-2.0-flash\","
                        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                        "null,\"tool_calls\":[{\"index\":0,\"type\":\"function\",\"function\":{"
                        "\"name\":\"set_light_values\",\"arguments\":\"{\\\"brightness\\\":25,"
                        "\\\"color_temp\\\":\\\"warm\\\"}\"}},{\"index\":1,\"type\":\"function\","
                        "\"function\":{\"name\":\"now\",\"arguments\":\"{}\"}}]},\"finish_reason\":"
                        "\"tool_calls\",\"logprobs\":null}],\"usage\":{\"prompt_tokens\":20,"
                        "\"completion_tokens\":9,\"total_tokens\":29,\"prompt_tokens_details\":{"
                        "\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":"
                        "0}}}"));
    cJSON_Delete(j);
    /* The ids were generated: call_ plus 24 hex digits, distinct. */
    j = translate("{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"a\"}},"
                  "{\"functionCall\":{\"name\":\"b\"}}]}}]}",
                  &rc, &err);
    LX_CHECK_INT(rc, 0);
    cJSON_Delete(j);
    struct lx_deployment dep = test_dep();
    struct lx_provider_call call = {.dep = &dep, .upstream_model = dep.upstream_model};
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    LX_CHECK_INT(ops()->translate_response(
                     &call,
                     LX_STR("{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{"
                            "\"name\":\"a\"}},{\"functionCall\":{\"name\":\"b\"}}]}}]}"),
                     &out, &err),
                 0);
    j = cJSON_ParseWithLength(out.data, out.len);
    calls = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0), "message"),
        "tool_calls");
    const char *id0 =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(calls, 0), "id"));
    const char *id1 =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(calls, 1), "id"));
    LX_CHECK(id0 && strncmp(id0, "call_", 5) == 0 && strlen(id0) == 29);
    LX_CHECK(id0 && id1 && strcmp(id0, id1) != 0);
    cJSON_Delete(j);
    lx_buf_fini(&out);
}

LX_TEST(resp_finish_reasons_and_blocks)
{
    static const struct {
        const char *in;
        const char *out;
    } map[] = {
        {"STOP", "stop"},
        {"MAX_TOKENS", "length"},
        {"SAFETY", "content_filter"},
        {"RECITATION", "content_filter"},
        {"BLOCKLIST", "content_filter"},
        {"PROHIBITED_CONTENT", "content_filter"},
        {"SPII", "content_filter"},
        {"OTHER", "stop"},
        {"", "stop"},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(map); i++) {
        LX_CHECK_STR(lx_gemini_finish_reason(lx_str_c(map[i].in), false), map[i].out);
    }
    LX_CHECK_STR(lx_gemini_finish_reason(LX_STR("STOP"), true), "tool_calls");
    LX_CHECK_STR(lx_gemini_finish_reason(LX_STR_NULL, false), "stop");

    /* A blocked prompt: no candidates, promptFeedback.blockReason. */
    LX_CHECK(resp_is("{\"promptFeedback\":{\"blockReason\":\"SAFETY\",\"safetyRatings\":[]},"
                     "\"usageMetadata\":{\"promptTokenCount\":7,\"totalTokenCount\":7}}",
                     "{\"object\":\"chat.completion\",\"model\":\"gemini-2.0-flash\",\"choices\":"
                     "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"\"},"
                     "\"finish_reason\":\"content_filter\",\"logprobs\":null}],\"usage\":{"
                     "\"prompt_tokens\":7,\"completion_tokens\":0,\"total_tokens\":7,"
                     "\"prompt_tokens_details\":{\"cached_tokens\":0},"
                     "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}"));
    /* A candidate stopped for safety has no content. Two candidates are two choices. */
    LX_CHECK(resp_is("{\"candidates\":[{\"finishReason\":\"SAFETY\",\"index\":0},{\"content\":{"
                     "\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"STOP\",\"index\":1}]}",
                     "{\"object\":\"chat.completion\",\"model\":\"gemini-2.0-flash\",\"choices\":"
                     "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"\"},"
                     "\"finish_reason\":\"content_filter\",\"logprobs\":null},{\"index\":1,"
                     "\"message\":{\"role\":\"assistant\",\"content\":\"b\"},\"finish_reason\":"
                     "\"stop\",\"logprobs\":null}],\"usage\":{\"prompt_tokens\":0,"
                     "\"completion_tokens\":0,\"total_tokens\":0,\"prompt_tokens_details\":{"
                     "\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":"
                     "0}}}"));
}

LX_TEST(resp_malformed)
{
    static const char *bad[] = {
        "",
        "not json",
        "[1]",
        "{}",
        "{\"candidates\":{}}",
        "{\"candidates\":[]}",
        "{\"candidates\":[1]}",
        "{\"candidates\":[{\"content\":[]}]}",
        "{\"candidates\":[{\"content\":{\"parts\":{}}}]}",
        "{\"candidates\":[{\"content\":{\"parts\":[1]}}]}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":5}]}}]}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{}}]}}]}",
        ("{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\","
         "\"args\":[1]}}]}}]}"),
        "{\"candidates\":[{\"finishReason\":5}]}",
        "{\"candidates\":[{\"index\":-1}]}",
        "{\"candidates\":[{\"index\":0.5}]}",
        "{\"candidates\":[{}],\"usageMetadata\":{\"promptTokenCount\":-1}}",
        "{\"candidates\":[{}],\"usageMetadata\":{\"promptTokenCount\":\"1\"}}",
        "{\"candidates\":[{}],\"usageMetadata\":[]}",
        "{\"candidates\":[{}],\"usageMetadata\":{\"thoughtsTokenCount\":1e300}}",
        "{\"error\":{\"code\":400,\"message\":\"bad\",\"status\":\"INVALID_ARGUMENT\"}}",
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(bad); i++) {
        if (!resp_fails(bad[i])) {
            fprintf(stderr, "  case %zu\n", i);
            LX_CHECK(0);
        }
    }
}

LX_TEST(resp_alloc_failure)
{
    const char *body =
        "{\"responseId\":\"r\",\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hello\"},"
        "{\"text\":\"hm\",\"thought\":true},{\"functionCall\":{\"name\":\"a\",\"args\":{\"k\":"
        "[1,2]}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":1}}";
    struct lx_deployment dep = test_dep();
    struct lx_provider_call call = {.dep = &dep, .upstream_model = dep.upstream_model};
    int successes = 0;
    for (long n = 0; n < 300 && !successes; n++) {
        struct lx_buf out;
        lx_buf_init(&out, 1 << 20);
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

LX_TEST(error_mapping)
{
    /* https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes */
    LX_CHECK(error_case(400,
                        "{\"error\":{\"code\":400,\"message\":\"API key not valid. Please pass a "
                        "valid API key.\",\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":"
                        "\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":"
                        "\"API_KEY_INVALID\"}]}}",
                        400,
                        "{\"error\":{\"message\":\"API key not valid. Please pass a valid API "
                        "key.\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":"
                        "\"INVALID_ARGUMENT\"}}"));
    LX_CHECK(error_case(429,
                        "{\"error\":{\"code\":429,\"message\":\"Resource has been exhausted\","
                        "\"status\":\"RESOURCE_EXHAUSTED\"}}",
                        429,
                        "{\"error\":{\"message\":\"Resource has been exhausted\",\"type\":"
                        "\"rate_limit_error\",\"param\":null,\"code\":\"RESOURCE_EXHAUSTED\"}}"));
    LX_CHECK(error_case(403,
                        "[{\"error\":{\"code\":403,\"message\":\"denied\",\"status\":"
                        "\"PERMISSION_DENIED\"}}]",
                        403,
                        "{\"error\":{\"message\":\"denied\",\"type\":\"permission_error\","
                        "\"param\":null,\"code\":\"PERMISSION_DENIED\"}}"));
    LX_CHECK(error_case(401,
                        "{\"error\":{\"code\":401,\"message\":\"no\",\"status\":"
                        "\"UNAUTHENTICATED\"}}",
                        401,
                        "{\"error\":{\"message\":\"no\",\"type\":\"authentication_error\","
                        "\"param\":null,\"code\":\"UNAUTHENTICATED\"}}"));
    LX_CHECK(error_case(503,
                        "{\"error\":{\"code\":503,\"message\":\"The model is overloaded.\","
                        "\"status\":\"UNAVAILABLE\"}}",
                        503,
                        "{\"error\":{\"message\":\"The model is overloaded.\",\"type\":"
                        "\"api_error\",\"param\":null,\"code\":\"UNAVAILABLE\"}}"));
    LX_CHECK(error_case(500, "{\"error\":{\"code\":500,\"message\":\"x\",\"status\":\"INTERNAL\"}}",
                        500,
                        "{\"error\":{\"message\":\"x\",\"type\":\"api_error\",\"param\":null,"
                        "\"code\":\"INTERNAL\"}}"));
    LX_CHECK(error_case(502, "<html>Bad gateway</html>", 502,
                        "{\"error\":{\"message\":\"Gemini returned HTTP 502\",\"type\":"
                        "\"server_error\",\"param\":null,\"code\":\"502\"}}"));
    LX_CHECK(error_case(404, "{\"error\":{\"message\":5,\"status\":7}}", 404,
                        "{\"error\":{\"message\":\"Gemini returned HTTP 404\",\"type\":"
                        "\"invalid_request_error\",\"param\":null,\"code\":\"404\"}}"));
    LX_CHECK_STR(lx_gemini_error_type(LX_STR("DEADLINE_EXCEEDED"), 504), "api_error");
}

/* ---- streams ---- */

/* The streaming example of the API reference, CRLF framed as the API sends it. */
#define GEM_EV(json) "data: " json "\r\n\r\n"
static const char stream_text_sse[] = GEM_EV(
    "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"The\"}],\"role\": "
    "\"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,"
    "\"totalTokenCount\": 8},\"modelVersion\": \"gemini-2.0-flash-001\",\"responseId\": "
    "\"r1\"}")
    GEM_EV("{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" lamp glowed.\"}],"
           "\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,"
           "\"totalTokenCount\": 8},\"modelVersion\": \"gemini-2.0-flash-001\"}")
        GEM_EV("{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" The end.\"}],\"role\": "
               "\"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {"
               "\"promptTokenCount\": 8,\"candidatesTokenCount\": 6,\"totalTokenCount\": 14},"
               "\"modelVersion\": \"gemini-2.0-flash-001\"}");

LX_TEST(stream_text)
{
    const char *model = "gemini-2.0-flash-001";
    struct stream_run r;
    stream_run(&r, "{\"stream\":true}", stream_text_sse, sizeof(stream_text_sse) - 1);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 6);
    LX_CHECK(json_eq(chunk_delta(&r, 0, model, NULL), "{\"role\":\"assistant\",\"content\":\"\"}"));
    LX_CHECK(json_eq(chunk_delta(&r, 1, model, NULL), "{\"content\":\"The\"}"));
    LX_CHECK(json_eq(chunk_delta(&r, 2, model, NULL), "{\"content\":\" lamp glowed.\"}"));
    LX_CHECK(json_eq(chunk_delta(&r, 3, model, NULL), "{\"content\":\" The end.\"}"));
    LX_CHECK(json_eq(chunk_delta(&r, 4, model, "stop"), "{}"));
    LX_CHECK(r.n == 6 && r.is_done[5]);
    LX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r.ev[0], "id")),
                 "chatcmpl-r1");
    LX_CHECK(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(r.ev[0], "id"),
                           cJSON_GetObjectItemCaseSensitive(r.ev[4], "id"), 1));
    LX_CHECK(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(r.ev[0], "created"),
                           cJSON_GetObjectItemCaseSensitive(r.ev[4], "created"), 1));
    stream_fini(&r);

    /* With stream_options.include_usage: a usage chunk before [DONE]. */
    stream_run(&r, "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}", stream_text_sse,
               sizeof(stream_text_sse) - 1);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 7);
    const cJSON *u = r.n > 5 ? r.ev[5] : NULL;
    LX_CHECK(json_eq(cJSON_GetObjectItemCaseSensitive(u, "choices"), "[]"));
    LX_CHECK(json_eq(cJSON_GetObjectItemCaseSensitive(u, "usage"),
                     "{\"prompt_tokens\":8,\"completion_tokens\":6,\"total_tokens\":14,"
                     "\"prompt_tokens_details\":{\"cached_tokens\":0},"
                     "\"completion_tokens_details\":{\"reasoning_tokens\":0}}"));
    LX_CHECK(r.n == 7 && r.is_done[6]);
    stream_fini(&r);
}

LX_TEST(stream_function_call_and_after_end)
{
    const char *sse =
        GEM_EV("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hm\",\"thought\":true},"
               "{\"text\":\"Checking.\"}],\"role\":\"model\"}}]}")
            GEM_EV("{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":"
                   "\"get_weather\",\"args\":{\"location\":\"Paris\"}}},{\"functionCall\":{"
                   "\"name\":\"now\",\"args\":{}}}],\"role\":\"model\"},\"finishReason\":"
                   "\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3,"
                   "\"candidatesTokenCount\":4,\"thoughtsTokenCount\":2}}")
                GEM_EV("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"late\"}]}}]}");
    struct stream_run r;
    stream_run(&r, "{\"stream_options\":{\"include_usage\":true}}", sse, strlen(sse));
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 8);
    const char *m = "gemini-2.0-flash";
    LX_CHECK(json_eq(chunk_delta(&r, 1, m, NULL), "{\"reasoning_content\":\"hm\"}"));
    LX_CHECK(json_eq(chunk_delta(&r, 2, m, NULL), "{\"content\":\"Checking.\"}"));
    cJSON *d3 = cJSON_Duplicate(chunk_delta(&r, 3, m, NULL), 1);
    cJSON *d4 = cJSON_Duplicate(chunk_delta(&r, 4, m, NULL), 1);
    const char *id3 = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d3, "tool_calls"), 0), "id"));
    LX_CHECK(id3 && strncmp(id3, "call_", 5) == 0);
    scrub(d3);
    scrub(d4);
    LX_CHECK(json_eq(d3, "{\"tool_calls\":[{\"index\":0,\"type\":\"function\",\"function\":{"
                         "\"name\":\"get_weather\",\"arguments\":\"{\\\"location\\\":"
                         "\\\"Paris\\\"}\"}}]}"));
    LX_CHECK(json_eq(d4, "{\"tool_calls\":[{\"index\":1,\"type\":\"function\",\"function\":{"
                         "\"name\":\"now\",\"arguments\":\"{}\"}}]}"));
    cJSON_Delete(d3);
    cJSON_Delete(d4);
    LX_CHECK(json_eq(chunk_delta(&r, 5, m, "tool_calls"), "{}"));
    LX_CHECK(json_eq(cJSON_GetObjectItemCaseSensitive(r.n > 6 ? r.ev[6] : NULL, "usage"),
                     "{\"prompt_tokens\":3,\"completion_tokens\":6,\"total_tokens\":9,"
                     "\"prompt_tokens_details\":{\"cached_tokens\":0},"
                     "\"completion_tokens_details\":{\"reasoning_tokens\":2}}"));
    LX_CHECK(r.n == 8 && r.is_done[7]); /* the event after the end adds nothing */
    stream_fini(&r);
}

LX_TEST(stream_blocked_and_error)
{
    const char *sse = GEM_EV("{\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"},"
                             "\"usageMetadata\":{\"promptTokenCount\":4}}");
    struct stream_run r;
    stream_run(&r, "{}", sse, strlen(sse));
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 3);
    LX_CHECK(json_eq(chunk_delta(&r, 1, "gemini-2.0-flash", "content_filter"), "{}"));
    LX_CHECK(r.n == 3 && r.is_done[2]);
    stream_fini(&r);

    /* An error mid-stream becomes an OpenAI error event; nothing follows it. */
    sse = GEM_EV("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}]}}]}") GEM_EV(
        "{\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":"
        "\"UNAVAILABLE\"}}") GEM_EV("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}]},"
                                    "\"finishReason\":\"STOP\"}]}");
    stream_run(&r, "{}", sse, strlen(sse));
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 3);
    LX_CHECK(json_eq(r.n > 2 ? r.ev[2] : NULL,
                     "{\"error\":{\"message\":\"The model is overloaded.\",\"type\":\"api_error\","
                     "\"param\":null,\"code\":\"UNAVAILABLE\"}}"));
    stream_fini(&r);
}

LX_TEST(stream_malformed)
{
    static const char *bad[] = {
        GEM_EV("not json"),
        GEM_EV("[1]"),
        GEM_EV("5"),
        GEM_EV("{\"candidates\":{}}"),
        GEM_EV("{\"candidates\":[1]}"),
        GEM_EV("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":1}]}}]}"),
        GEM_EV("{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"args\":{}}}]}}]}"),
        GEM_EV("{\"candidates\":[{\"index\":99}]}"),
        GEM_EV("{\"candidates\":[{}],\"usageMetadata\":{\"promptTokenCount\":-4}}"),
        (GEM_EV("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"ok\"}]}}]}")
             GEM_EV("{\"candidates\":[{\"finishReason\":[]}]}")),
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(bad); i++) {
        struct stream_run r;
        stream_run(&r, "{}", bad[i], strlen(bad[i]));
        if (r.rc != LX_EUPSTREAM) {
            fprintf(stderr, "  case %zu: rc=%d\n", i, r.rc);
        }
        LX_CHECK_INT(r.rc, LX_EUPSTREAM);
        LX_CHECK(strncmp(r.err.msg, "Gemini stream: ", 15) == 0);
        stream_fini(&r);
    }
}

/* Fail each allocation of a whole stream in turn: clean failures, no leaks. */
LX_TEST(stream_alloc_failure)
{
    const char *sse = GEM_EV("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}")
        GEM_EV("{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\","
               "\"args\":{\"x\":[1]}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{"
               "\"promptTokenCount\":1}}");
    struct lx_deployment dep = test_dep();
    cJSON *in = cJSON_Parse("{\"stream_options\":{\"include_usage\":true}}");
    int successes = 0;
    for (long k = 0; k < 400 && !successes; k++) {
        struct lx_arena arena;
        lx_arena_init(&arena, NULL, 0, 4096);
        struct lx_provider_call call = {
            .dep = &dep, .json = in, .upstream_model = "m", .arena = &arena};
        struct stream_run r;
        memset(&r, 0, sizeof(r));
        r.ops = ops();
        r.state = r.ops->stream_new(&call);
        lx_buf_init(&r.out, 1 << 20);
        struct lx_sse_parser p;
        lx_sse_init(&p, 1 << 20);
        lx_alloc_fail_after(k, 0);
        int rc = lx_sse_feed(&p, sse, strlen(sse), feed_cb, &r);
        lx_alloc_fail_after(-1, 0);
        if (rc == 0) {
            successes++;
        } else if (rc == LX_EUPSTREAM || rc == LX_ENOMEM) {
            LX_CHECK(r.err.msg[0] != '\0' || rc == LX_ENOMEM);
        } else {
            LX_CHECK_INT(rc, LX_ENOMEM);
        }
        lx_sse_fini(&p);
        r.ops->stream_free(r.state);
        lx_buf_fini(&r.out);
        lx_arena_fini(&arena);
    }
    LX_CHECK_INT(successes, 1);
    cJSON_Delete(in);
}

/* A chunk cap reached mid-event leaves out as it was and reports the failure. */
LX_TEST(stream_output_cap)
{
    struct lx_deployment dep = test_dep();
    struct lx_arena arena;
    lx_arena_init(&arena, NULL, 0, 4096);
    struct lx_provider_call call = {.dep = &dep, .upstream_model = "m", .arena = &arena};
    void *st = ops()->stream_new(&call);
    struct lx_buf out;
    lx_buf_init(&out, 40);
    struct lx_error err = {0};
    struct lx_sse_event ev = {
        .data = LX_STR("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]}}]}")};
    LX_CHECK_INT(ops()->translate_event(st, &ev, &out, &err), LX_ETOOBIG);
    LX_CHECK_INT(out.len, 0);
    LX_CHECK(err.msg[0] != '\0');
    ops()->stream_free(st);
    lx_buf_fini(&out);
    lx_arena_fini(&arena);
}

LX_TEST_MAIN(LX_RUN(req_basic_and_headers), LX_RUN(req_roles_and_parts),
             LX_RUN(req_tools_and_choice), LX_RUN(req_tool_round_trip), LX_RUN(req_params),
             LX_RUN(req_errors), LX_RUN(req_too_big), LX_RUN(req_alloc_failure), LX_RUN(resp_text),
             LX_RUN(resp_function_call), LX_RUN(resp_finish_reasons_and_blocks),
             LX_RUN(resp_malformed), LX_RUN(resp_alloc_failure), LX_RUN(error_mapping),
             LX_RUN(stream_text), LX_RUN(stream_function_call_and_after_end),
             LX_RUN(stream_blocked_and_error), LX_RUN(stream_malformed),
             LX_RUN(stream_alloc_failure), LX_RUN(stream_output_cap))
