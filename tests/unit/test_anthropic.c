/*
 * Unit tests for the Anthropic provider (src/providers/anthropic.c): OpenAI
 * chat requests into Messages API requests, Messages responses, errors and
 * streams back into OpenAI's shapes. Expected bodies are compared as JSON
 * trees (cJSON_Compare), so member order does not matter but every member
 * does. The stream fixtures in data/anthropic/ are the examples of
 * https://docs.anthropic.com/en/api/messages-streaming, copied as written.
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

#define TEST_KEY "sk-ant-test"
#include "provider_test.h"

const char *lx_anthropic_finish_reason(struct lx_str stop_reason);

static const struct lx_provider_ops *ops(void)
{
    return lx_provider_ops_for(LX_PROVIDER_ANTHROPIC);
}

static struct lx_deployment test_dep(void)
{
    struct lx_deployment d;
    test_dep_init(&d);
    d.model_name = "claude-3-opus";
    d.id = "dep-anthropic-1";
    d.model = "anthropic/claude-3-opus-20240229";
    d.provider.kind = LX_PROVIDER_ANTHROPIC;
    d.provider.name = "anthropic";
    d.provider.default_api_base = "https://api.anthropic.com";
    d.provider.default_key_env = "ANTHROPIC_API_KEY";
    d.upstream_model = "claude-3-opus-20240229";
    return d;
}

/* ---- streams ---- */

static char *read_fixture(const char *file, size_t *out_n)
{
    const char *dir = getenv("LX_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof(path), "%s/anthropic/%s", dir ? dir : "data", file);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "  cannot open %s\n", path);
        return NULL;
    }
    struct lx_buf b;
    lx_buf_init(&b, 1 << 20);
    char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        if (lx_buf_append(&b, tmp, k)) {
            break;
        }
    }
    fclose(f);
    return lx_buf_take(&b, out_n);
}

/* Check the envelope of chunk i and return its delta (NULL if the shape is wrong). */
static const cJSON *chunk_delta(const struct stream_run *r, size_t i, const char *id,
                                const char *model, const char *finish)
{
    const cJSON *c = i < r->n ? r->ev[i] : NULL;
    if (!c) {
        fprintf(stderr, "  chunk %zu missing\n", i);
        return NULL;
    }
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(c, "choices");
    const cJSON *ch = cJSON_GetArrayItem(choices, 0);
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(c, "created");
    bool ok =
        lx_str_eq_c(lx_str_c(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id"))),
                    id) &&
        lx_str_eq_c(lx_str_c(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "object"))),
                    "chat.completion.chunk") &&
        lx_str_eq_c(lx_str_c(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "model"))),
                    model) &&
        cJSON_IsNumber(created) && created->valuedouble > 1.7e9 &&
        cJSON_GetArraySize(choices) == 1 &&
        cJSON_GetObjectItemCaseSensitive(ch, "index")->valueint == 0 &&
        cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(ch, "logprobs")) &&
        (finish ? lx_str_eq_c(lx_str_c(cJSON_GetStringValue(fr)), finish) : cJSON_IsNull(fr));
    if (!ok) {
        char *s = cJSON_PrintUnformatted(c);
        fprintf(stderr, "  chunk %zu has a bad envelope: %s\n", i, s ? s : "?");
        cJSON_free(s);
        return NULL;
    }
    return cJSON_GetObjectItemCaseSensitive(ch, "delta");
}

/* ---- request translation ---- */

LX_TEST(req_basic_and_headers)
{
    struct lx_deployment dep = test_dep();
    struct built b;
    build(&b, &dep,
          "{\"model\":\"claude-3-opus\",\"messages\":["
          "{\"role\":\"system\",\"content\":\"You are terse.\"},"
          "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"Answer in "
          "French.\"}]},"
          "{\"role\":\"user\",\"content\":\"Hello, Claude\"}],"
          "\"frequency_penalty\":0.5,\"presence_penalty\":0.1,\"logit_bias\":{\"1\":2},"
          "\"seed\":7,\"n\":1,\"logprobs\":false,\"stream_options\":{\"include_usage\":true},"
          "\"reasoning_effort\":\"low\",\"metadata\":{\"a\":\"b\"},\"store\":true}");
    LX_CHECK_INT(b.rc, 0);
    LX_CHECK(json_eq(b.out, "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":4096,"
                            "\"system\":[{\"type\":\"text\",\"text\":\"You are terse.\"},"
                            "{\"type\":\"text\",\"text\":\"Answer in French.\"}],"
                            "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                            "\"text\":\"Hello, Claude\"}]}]}"));
    LX_CHECK_STR(b.pr.url, "https://api.anthropic.com/v1/messages");
    struct lx_str h = header(&b, "x-api-key");
    LX_CHECK_MEM(h.p, h.n, "sk-ant-test");
    h = header(&b, "anthropic-version");
    LX_CHECK_MEM(h.p, h.n, "2023-06-01");
    h = header(&b, "content-type");
    LX_CHECK_MEM(h.p, h.n, "application/json");
    LX_CHECK(header(&b, "authorization").p == NULL);
    built_fini(&b);
}

LX_TEST(req_deployment_settings)
{
    struct lx_deployment dep = test_dep();
    struct lx_kv hdrs[] = {{"anthropic-beta", "prompt-caching-2024-07-31"}, {"x-team", "a"}};
    dep.extra_headers = hdrs;
    dep.n_extra_headers = 2;
    dep.api_version = "2024-01-01";
    dep.api_base = "http://127.0.0.1:9000/";
    dep.extra_params = cJSON_Parse("{\"temperature\":0.2,\"max_tokens\":100}");
    struct built b;
    build(&b, &dep,
          "{\"model\":\"m\",\"temperature\":0.7,\"messages\":[{\"role\":\"user\","
          "\"content\":\"hi\"}]}");
    LX_CHECK_INT(b.rc, 0);
    LX_CHECK_STR(b.pr.url, "http://127.0.0.1:9000/v1/messages");
    struct lx_str h = header(&b, "anthropic-beta");
    LX_CHECK_MEM(h.p, h.n, "prompt-caching-2024-07-31");
    h = header(&b, "x-team");
    LX_CHECK_MEM(h.p, h.n, "a");
    h = header(&b, "anthropic-version");
    LX_CHECK_MEM(h.p, h.n, "2024-01-01");
    /* The client's temperature wins; the deployment's max_tokens fills the gap. */
    LX_CHECK(json_eq(b.out, "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":100,"
                            "\"temperature\":0.7,\"messages\":[{\"role\":\"user\",\"content\":"
                            "[{\"type\":\"text\",\"text\":\"hi\"}]}]}"));
    built_fini(&b);

    /* api_base given with the path, or with /v1. */
    dep.api_base = "https://gw.example.com/anthropic/v1/messages";
    build(&b, &dep, "{\"messages\":[]}");
    LX_CHECK_STR(b.pr.url, "https://gw.example.com/anthropic/v1/messages");
    built_fini(&b);
    dep.api_base = "https://gw.example.com/v1";
    build(&b, &dep, "{\"messages\":[]}");
    LX_CHECK_STR(b.pr.url, "https://gw.example.com/v1/messages");
    built_fini(&b);
    cJSON_Delete(dep.extra_params);
}

LX_TEST(req_role_merge)
{
    LX_CHECK(req_is("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
                    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"b\"},"
                    "{\"type\":\"text\",\"text\":\"\"}]},"
                    "{\"role\":\"system\",\"content\":\"sys\"},"
                    "{\"role\":\"assistant\",\"content\":\"c\"},"
                    "{\"role\":\"assistant\",\"content\":\"\"},"
                    "{\"role\":\"assistant\",\"content\":\"d\",\"name\":\"bot\"},"
                    "{\"role\":\"user\",\"content\":\"e\"}]}",
                    "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":4096,"
                    "\"system\":[{\"type\":\"text\",\"text\":\"sys\"}],\"messages\":["
                    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                    "{\"type\":\"text\",\"text\":\"b\"}]},"
                    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"c\"},"
                    "{\"type\":\"text\",\"text\":\"d\"}]},"
                    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"e\"}]}]}"));
}

LX_TEST(req_images)
{
    LX_CHECK(req_is(
        "{\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"What is in these?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo=\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://upload.wikimedia.org/a.jpg\","
        "\"detail\":\"high\"}},"
        "{\"type\":\"image_url\",\"image_url\":\"data:image/jpeg;base64,/9j/4AAQ\"},"
        "{\"type\":\"file\",\"file\":{\"file_data\":\"data:application/pdf;base64,JVBERi0=\"}}"
        "]}]}",
        "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":4096,\"messages\":[{\"role\":"
        "\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"What is in these?\"},"
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\","
        "\"data\":\"iVBORw0KGgo=\"}},"
        "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":"
        "\"https://upload.wikimedia.org/a.jpg\"}},"
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/jpeg\","
        "\"data\":\"/9j/4AAQ\"}},"
        "{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"media_type\":"
        "\"application/pdf\",\"data\":\"JVBERi0=\"}}]}]}"));
}

LX_TEST(req_cache_control)
{
    LX_CHECK(req_is(
        "{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"long\","
        "\"cache_control\":{\"type\":\"ephemeral\"}}]},"
        "{\"role\":\"user\",\"content\":\"q\",\"cache_control\":{\"type\":\"ephemeral\"}}]}",
        "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":4096,"
        "\"system\":[{\"type\":\"text\",\"text\":\"long\",\"cache_control\":{\"type\":"
        "\"ephemeral\"}}],"
        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"q\","
        "\"cache_control\":{\"type\":\"ephemeral\"}}]}]}"));
}

#define WEATHER_TOOL                                                                               \
    "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Get the "     \
    "current weather\",\"parameters\":{\"type\":\"object\",\"properties\":{\"location\":{"         \
    "\"type\":\"string\"}},\"required\":[\"location\"]}}}"
#define WEATHER_TOOL_ANT                                                                           \
    "{\"name\":\"get_weather\",\"description\":\"Get the current weather\",\"input_schema\":{"     \
    "\"type\":\"object\",\"properties\":{\"location\":{\"type\":\"string\"}},\"required\":["       \
    "\"location\"]}}"

/* tools plus a tool_choice / parallel_tool_calls tail; want is the expected tool_choice. */
static int tools_case(const char *tail, const char *want_choice)
{
    char in[2048], want[2048];
    snprintf(in, sizeof(in),
             "{\"messages\":[{\"role\":\"user\",\"content\":\"w?\"}],\"tools\":[" WEATHER_TOOL
             ",{\"type\":\"function\",\"function\":{\"name\":\"noop\"}}]%s}",
             tail);
    snprintf(
        want, sizeof(want),
        "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":4096,\"messages\":[{\"role\":"
        "\"user\",\"content\":[{\"type\":\"text\",\"text\":\"w?\"}]}],\"tools\":[" WEATHER_TOOL_ANT
        ",{\"name\":\"noop\",\"input_schema\":{\"type\":\"object\","
        "\"properties\":{}}}]%s%s}",
        want_choice ? ",\"tool_choice\":" : "", want_choice ? want_choice : "");
    return req_is(in, want);
}

LX_TEST(req_tools_and_choice)
{
    LX_CHECK(tools_case("", NULL));
    LX_CHECK(tools_case(",\"tool_choice\":\"auto\"", "{\"type\":\"auto\"}"));
    LX_CHECK(tools_case(",\"tool_choice\":\"required\"", "{\"type\":\"any\"}"));
    LX_CHECK(tools_case(",\"tool_choice\":\"none\"", "{\"type\":\"none\"}"));
    LX_CHECK(tools_case(",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":"
                        "\"get_weather\"}}",
                        "{\"type\":\"tool\",\"name\":\"get_weather\"}"));
    LX_CHECK(tools_case(",\"parallel_tool_calls\":false",
                        "{\"type\":\"auto\",\"disable_parallel_tool_use\":true}"));
    LX_CHECK(tools_case(",\"parallel_tool_calls\":true", NULL));
    LX_CHECK(tools_case(",\"tool_choice\":\"required\",\"parallel_tool_calls\":false",
                        "{\"type\":\"any\",\"disable_parallel_tool_use\":true}"));
    LX_CHECK(tools_case(",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"x\"}},"
                        "\"parallel_tool_calls\":false",
                        "{\"type\":\"tool\",\"name\":\"x\",\"disable_parallel_tool_use\":true}"));
    LX_CHECK(tools_case(",\"tool_choice\":\"none\",\"parallel_tool_calls\":false",
                        "{\"type\":\"none\"}"));
    /* No tools: tool_choice is dropped (Anthropic rejects it without tools). */
    LX_CHECK(req_is("{\"messages\":[],\"tools\":[],\"tool_choice\":\"auto\"}",
                    "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":4096,"
                    "\"messages\":[]}"));
}

LX_TEST(req_tool_round_trip)
{
    LX_CHECK(req_is(
        "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather in SF and NYC?\"},"
        "{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":["
        "{\"id\":\"toolu_01A\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"{\\\"location\\\": \\\"San Francisco, CA\\\"}\"}},"
        "{\"id\":\"toolu_01B\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_01A\",\"content\":\"15 degrees\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_01B\",\"content\":[{\"type\":\"text\","
        "\"text\":\"20 degrees\"}]},"
        "{\"role\":\"user\",\"content\":\"Thanks. Which is warmer?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"toolu_01C\","
        "\"type\":\"function\",\"function\":{\"name\":\"noop\",\"arguments\":\"{}\"}}]}]}",
        "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":4096,\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Weather in SF and "
        "NYC?\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Checking.\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_01A\",\"name\":\"get_weather\",\"input\":{"
        "\"location\":\"San Francisco, CA\"}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_01B\",\"name\":\"get_weather\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
        "\"toolu_01A\",\"content\":\"15 degrees\"},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_01B\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"20 degrees\"}]},"
        "{\"type\":\"text\",\"text\":\"Thanks. Which is warmer?\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_01C\","
        "\"name\":\"noop\",\"input\":{}}]}]}"));
}

LX_TEST(req_params)
{
    LX_CHECK(req_is("{\"messages\":[],\"stop\":\"\\n\\nHuman:\",\"temperature\":1,"
                    "\"top_p\":0.9,\"top_k\":40,\"user\":\"user-123\",\"max_tokens\":50,"
                    "\"max_completion_tokens\":70,\"stream\":true}",
                    "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":70,\"messages\":[],"
                    "\"stop_sequences\":[\"\\n\\nHuman:\"],\"temperature\":1,\"top_p\":0.9,"
                    "\"top_k\":40,\"metadata\":{\"user_id\":\"user-123\"},\"stream\":true}"));
    LX_CHECK(req_is("{\"messages\":[],\"stop\":[\"END\",\"STOP\"],\"max_tokens\":1,"
                    "\"stream\":false,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024}}",
                    "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":1,\"messages\":[],"
                    "\"stop_sequences\":[\"END\",\"STOP\"],\"thinking\":{\"type\":\"enabled\","
                    "\"budget_tokens\":1024}}"));
    LX_CHECK(req_is("{\"messages\":[],\"stop\":[],\"temperature\":null}",
                    "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":4096,"
                    "\"messages\":[]}"));
}

LX_TEST(req_response_format)
{
    LX_CHECK(req_is("{\"messages\":[{\"role\":\"system\",\"content\":\"S\"}],"
                    "\"response_format\":{\"type\":\"json_object\"}}",
                    "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":4096,\"system\":["
                    "{\"type\":\"text\",\"text\":\"S\"},{\"type\":\"text\",\"text\":\"Respond "
                    "only with a valid JSON object, with no other text.\"}],\"messages\":[]}"));
    LX_CHECK(req_is(
        "{\"messages\":[],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
        "\"name\":\"x\",\"schema\":{\"type\":\"object\"}}}}",
        "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":4096,\"system\":[{\"type\":"
        "\"text\",\"text\":\"Respond only with a valid JSON object, with no other text, that "
        "conforms to this JSON schema: {\\\"type\\\":\\\"object\\\"}\"}],\"messages\":[]}"));
    LX_CHECK(req_is("{\"messages\":[],\"response_format\":{\"type\":\"text\"}}",
                    "{\"model\":\"claude-3-opus-20240229\",\"max_tokens\":4096,"
                    "\"messages\":[]}"));
}

LX_TEST(req_errors)
{
    LX_CHECK(req_fails("{\"model\":\"m\"}", LX_EINVAL, "messages must be an array"));
    LX_CHECK(req_fails("{\"messages\":{}}", LX_EINVAL, "messages must be an array"));
    LX_CHECK(req_fails("{\"messages\":[{\"content\":\"x\"}]}", LX_EINVAL,
                       "messages[0]: a message needs a string 'role'"));
    LX_CHECK(
        req_fails("{\"messages\":[1]}", LX_EINVAL, "messages[0]: a message must be an object"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", LX_EINVAL,
                       "role 'wizard' is not supported"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\"}]}", LX_EINVAL, "needs content"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\",\"content\":5}]}", LX_EINVAL,
                       "content must be a string or an array"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                       "\"input_audio\"}]}]}",
                       LX_EINVAL, "content part type 'input_audio' is not supported"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
                       LX_EINVAL, "needs a string 'text'"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                       "\"image_url\":{\"url\":\"ftp://x\"}}]}]}",
                       LX_EINVAL, "data: URL or an http(s) URL"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                       "\"image_url\":{\"url\":\"data:image/png,abc\"}}]}]}",
                       LX_EINVAL, "base64 data URLs"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"t1\","
                       "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
                       "\"{bad\"}}]}]}",
                       LX_EINVAL,
                       "messages[0]: function.arguments of tool call 't1' is not "
                       "valid JSON"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"t1\","
                       "\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
                       LX_EINVAL, "must be a JSON object"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":"
                       "{\"name\":\"f\"}}]}]}",
                       LX_EINVAL, "needs a string id"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", LX_EINVAL,
                       "tool_call_id"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":"
                       "\"image_url\"}]}]}",
                       LX_EINVAL, "system content parts must be text"));
    LX_CHECK(req_fails("{\"messages\":[],\"n\":2}", LX_EINVAL, "only n=1"));
    LX_CHECK(req_fails("{\"messages\":[],\"max_tokens\":0}", LX_EINVAL,
                       "max_tokens must be a positive integer"));
    LX_CHECK(req_fails("{\"messages\":[],\"max_completion_tokens\":1.5}", LX_EINVAL,
                       "max_completion_tokens must be a positive integer"));
    LX_CHECK(req_fails("{\"messages\":[],\"temperature\":\"hot\"}", LX_EINVAL,
                       "temperature must be a number"));
    LX_CHECK(req_fails("{\"messages\":[],\"stop\":[1]}", LX_EINVAL, "stop must be"));
    LX_CHECK(req_fails("{\"messages\":[],\"user\":5}", LX_EINVAL, "user must be a string"));
    LX_CHECK(req_fails("{\"messages\":[],\"tools\":{}}", LX_EINVAL, "tools must be an array"));
    LX_CHECK(req_fails("{\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":{}}]}",
                       LX_EINVAL, "tools[0] needs function.name"));
    LX_CHECK(req_fails("{\"messages\":[],\"tools\":[" WEATHER_TOOL "],\"tool_choice\":\"maybe\"}",
                       LX_EINVAL, "tool_choice must be"));
    LX_CHECK(req_fails("{\"messages\":[],\"tools\":[" WEATHER_TOOL "],\"tool_choice\":{\"type\":"
                       "\"function\"}}",
                       LX_EINVAL, "tool_choice needs function.name"));

    /* Not a chat endpoint; not an object. */
    struct lx_deployment dep = test_dep();
    struct built b;
    build_ep(&b, &dep, "{\"input\":\"x\"}", LX_EP_EMBEDDINGS);
    LX_CHECK_INT(b.rc, LX_EINVAL);
    LX_CHECK(strstr(b.err.msg, "only /chat/completions") != NULL);
    built_fini(&b);
    build(&b, &dep, "[1]");
    LX_CHECK_INT(b.rc, LX_EINVAL);
    built_fini(&b);
}

LX_TEST(req_too_big)
{
    struct lx_deployment dep = test_dep();
    struct built b;
    memset(&b, 0, sizeof(b));
    lx_arena_init(&b.arena, NULL, 0, 4096);
    lx_buf_init(&b.body, 64);
    const char *json = "{\"messages\":[{\"role\":\"user\",\"content\":\"a long enough message "
                       "to go past the 64-byte cap\"}]}";
    b.in = cJSON_Parse(json);
    b.call = (struct lx_provider_call){.endpoint = LX_EP_CHAT,
                                       .dep = &dep,
                                       .json = b.in,
                                       .upstream_model = dep.upstream_model,
                                       .arena = &b.arena};
    b.pr.body = &b.body;
    LX_CHECK_INT(ops()->build_request(&b.call, &b.pr, &b.err), LX_ETOOBIG);
    LX_CHECK_INT(b.body.len, 0);
    built_fini(&b);
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
    for (long n = 0; n < 200 && !successes; n++) {
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

/* ---- response translation ---- */

LX_TEST(resp_text)
{
    /* The example response of https://docs.anthropic.com/en/api/messages. */
    LX_CHECK(
        resp_is("{\"content\":[{\"text\":\"Hi! My name is Claude.\",\"type\":\"text\"}],"
                "\"id\":\"msg_013Zva2CMHLNnXjNJJKqJ2EF\",\"model\":\"claude-3-5-sonnet-20241022\","
                "\"role\":\"assistant\",\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
                "\"type\":\"message\",\"usage\":{\"input_tokens\":2095,\"output_tokens\":503}}",
                "{\"id\":\"msg_013Zva2CMHLNnXjNJJKqJ2EF\",\"object\":\"chat.completion\",\"model\":"
                "\"claude-3-5-sonnet-20241022\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                "\"assistant\",\"content\":\"Hi! My name is Claude.\"},\"finish_reason\":\"stop\","
                "\"logprobs\":null}],\"usage\":{\"prompt_tokens\":2095,\"completion_tokens\":503,"
                "\"total_tokens\":2598,\"prompt_tokens_details\":{\"cached_tokens\":0},"
                "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}"));
    /* Several text blocks are concatenated; thinking becomes reasoning_content. */
    LX_CHECK(resp_is(
        "{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\","
        "\"content\":[{\"type\":\"thinking\",\"thinking\":\"Let me think.\",\"signature\":"
        "\"sig\"},{\"type\":\"redacted_thinking\",\"data\":\"x\"},{\"type\":\"text\",\"text\":"
        "\"A\"},{\"type\":\"text\",\"text\":\"B\"}],\"stop_reason\":\"max_tokens\",\"usage\":"
        "{\"input_tokens\":1,\"output_tokens\":2}}",
        "{\"id\":\"msg_2\",\"object\":\"chat.completion\",\"model\":\"claude-x\",\"choices\":[{"
        "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"AB\",\"reasoning_content\":"
        "\"Let me think.\"},\"finish_reason\":\"length\",\"logprobs\":null}],\"usage\":{"
        "\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3,\"prompt_tokens_details\":"
        "{\"cached_tokens\":0},\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}"));
}

LX_TEST(resp_tool_use_and_cache_usage)
{
    /* The tool-use example of https://docs.anthropic.com/en/docs/build-with-claude/tool-use. */
    LX_CHECK(resp_is(
        "{\"id\":\"msg_01Aq9w938a90dw8q\",\"model\":\"claude-3-5-sonnet-20241022\","
        "\"stop_reason\":\"tool_use\",\"role\":\"assistant\",\"type\":\"message\",\"content\":["
        "{\"type\":\"text\",\"text\":\"<thinking>I need to use get_weather.</thinking>\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_01A09q90qw90lq917835lq9\",\"name\":"
        "\"get_weather\",\"input\":{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}}],"
        "\"usage\":{\"input_tokens\":100,\"output_tokens\":50,\"cache_creation_input_tokens\":"
        "1000,\"cache_read_input_tokens\":2000}}",
        "{\"id\":\"msg_01Aq9w938a90dw8q\",\"object\":\"chat.completion\",\"model\":"
        "\"claude-3-5-sonnet-20241022\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
        "\"assistant\",\"content\":\"<thinking>I need to use get_weather.</thinking>\","
        "\"tool_calls\":[{\"index\":0,\"id\":\"toolu_01A09q90qw90lq917835lq9\",\"type\":"
        "\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"location\\\":"
        "\\\"San Francisco, CA\\\",\\\"unit\\\":\\\"celsius\\\"}\"}}]},\"finish_reason\":"
        "\"tool_calls\",\"logprobs\":null}],\"usage\":{\"prompt_tokens\":3100,"
        "\"completion_tokens\":50,\"total_tokens\":3150,\"prompt_tokens_details\":{"
        "\"cached_tokens\":2000},\"cache_creation_input_tokens\":1000,"
        "\"cache_read_input_tokens\":2000}}"));
    /* Only tool calls: content is null. */
    LX_CHECK(resp_is(
        "{\"id\":\"m\",\"model\":\"c\",\"stop_reason\":\"tool_use\",\"content\":[{\"type\":"
        "\"tool_use\",\"id\":\"t1\",\"name\":\"a\",\"input\":{}},{\"type\":\"tool_use\",\"id\":"
        "\"t2\",\"name\":\"b\",\"input\":{\"x\":1}}],\"usage\":{\"input_tokens\":1,"
        "\"output_tokens\":1,\"cache_read_input_tokens\":null}}",
        "{\"id\":\"m\",\"object\":\"chat.completion\",\"model\":\"c\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":"
        "\"t1\",\"type\":\"function\",\"function\":{\"name\":\"a\",\"arguments\":\"{}\"}},{"
        "\"index\":1,\"id\":\"t2\",\"type\":\"function\",\"function\":{\"name\":\"b\","
        "\"arguments\":\"{\\\"x\\\":1}\"}}]},\"finish_reason\":\"tool_calls\",\"logprobs\":"
        "null}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2,"
        "\"prompt_tokens_details\":{\"cached_tokens\":0},\"cache_creation_input_tokens\":0,"
        "\"cache_read_input_tokens\":0}}"));
}

LX_TEST(resp_stop_reasons)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"\"end_turn\"", "stop"},          {"\"stop_sequence\"", "stop"},
        {"\"max_tokens\"", "length"},      {"\"tool_use\"", "tool_calls"},
        {"\"refusal\"", "content_filter"}, {"null", "stop"},
        {"\"pause_turn\"", "stop"},        {"\"something_new\"", "stop"},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(cases); i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"id\":\"m\",\"model\":\"c\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}],"
                 "\"stop_reason\":%s}",
                 cases[i].in);
        struct lx_error err = {0};
        int rc;
        cJSON *j = translate(body, &rc, &err);
        LX_CHECK_INT(rc, 0);
        const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
        LX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ch, "finish_reason")),
                     cases[i].out);
        cJSON_Delete(j);
    }
    LX_CHECK_STR(lx_anthropic_finish_reason(LX_STR_NULL), "stop");
}

LX_TEST(resp_malformed)
{
    static const char *bad[] = {
        "",
        "not json",
        "[1,2]",
        "{\"id\":\"m\"}",
        "{\"content\":{}}",
        "{\"content\":[{\"text\":\"no type\"}]}",
        "{\"content\":[{\"type\":\"text\"}]}",
        "{\"content\":[{\"type\":\"tool_use\",\"name\":\"f\"}]}",
        "{\"content\":[],\"usage\":{\"input_tokens\":-1}}",
        "{\"content\":[],\"usage\":{\"input_tokens\":\"5\"}}",
        "{\"content\":[],\"usage\":{\"output_tokens\":1e300}}",
        "{\"content\":[],\"usage\":7}",
        "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}",
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(bad); i++) {
        struct lx_error err = {0};
        int rc;
        cJSON *j = translate(bad[i], &rc, &err);
        if (rc != LX_EUPSTREAM) {
            fprintf(stderr, "  case %zu: rc=%d\n", i, rc);
        }
        LX_CHECK_INT(rc, LX_EUPSTREAM);
        LX_CHECK(err.msg[0] != '\0');
        cJSON_Delete(j);
    }
    struct lx_error err = {0};
    int rc;
    cJSON *j = translate("{\"type\":\"error\",\"error\":{\"message\":\"boom\"}}", &rc, &err);
    LX_CHECK(strstr(err.msg, "boom") != NULL);
    cJSON_Delete(j);
    /* Absent id and model: generated id, the requested model. */
    j = translate("{\"content\":[]}", &rc, &err);
    LX_CHECK_INT(rc, 0);
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "id"));
    LX_CHECK(id && strncmp(id, "chatcmpl-", 9) == 0 && strlen(id) == 45);
    LX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "model")),
                 "claude-3-opus-20240229");
    cJSON_Delete(j);
}

LX_TEST(resp_alloc_failure)
{
    const char *body =
        "{\"id\":\"m\",\"model\":\"c\",\"stop_reason\":\"tool_use\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"hello\"},{\"type\":\"thinking\",\"thinking\":\"hmm\"},{\"type\":"
        "\"tool_use\",\"id\":\"t1\",\"name\":\"a\",\"input\":{\"k\":[1,2]}}],\"usage\":{"
        "\"input_tokens\":1,\"output_tokens\":1}}";
    struct lx_deployment dep = test_dep();
    struct lx_provider_call call = {.dep = &dep, .upstream_model = dep.upstream_model};
    int successes = 0;
    for (long n = 0; n < 200 && !successes; n++) {
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
    LX_CHECK(error_case(529,
                        "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
                        "\"Overloaded\"}}",
                        503,
                        "{\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\","
                        "\"param\":null,\"code\":\"503\"}}"));
    LX_CHECK(error_case(429,
                        "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":"
                        "\"Number of request tokens has exceeded your per-minute rate limit\"}}",
                        429,
                        "{\"error\":{\"message\":\"Number of request tokens has exceeded your "
                        "per-minute rate limit\",\"type\":\"rate_limit_error\",\"param\":null,"
                        "\"code\":\"429\"}}"));
    LX_CHECK(error_case(401,
                        "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\","
                        "\"message\":\"invalid x-api-key\"},\"request_id\":\"req_1\"}",
                        401,
                        "{\"error\":{\"message\":\"invalid x-api-key\",\"type\":"
                        "\"authentication_error\",\"param\":null,\"code\":\"401\"}}"));
    static const int keep[] = {400, 403, 404, 413, 500};
    for (size_t i = 0; i < LX_ARRAY_LEN(keep); i++) {
        char want[256];
        snprintf(want, sizeof(want),
                 "{\"error\":{\"message\":\"m\",\"type\":\"t\",\"param\":null,\"code\":\"%d\"}}",
                 keep[i]);
        LX_CHECK(error_case(keep[i],
                            "{\"type\":\"error\",\"error\":{\"type\":\"t\",\"message\":"
                            "\"m\"}}",
                            keep[i], want));
    }
    LX_CHECK(error_case(502, "<html>Bad gateway</html>", 502,
                        "{\"error\":{\"message\":\"Anthropic returned HTTP 502\",\"type\":"
                        "\"server_error\",\"param\":null,\"code\":\"502\"}}"));
    LX_CHECK(error_case(529, "", 503,
                        "{\"error\":{\"message\":\"Anthropic returned HTTP 529\",\"type\":"
                        "\"server_error\",\"param\":null,\"code\":\"503\"}}"));
    LX_CHECK(error_case(400, "{\"error\":{\"message\":5}}", 400,
                        "{\"error\":{\"message\":\"Anthropic returned HTTP 400\",\"type\":"
                        "\"invalid_request_error\",\"param\":null,\"code\":\"400\"}}"));
}

/* ---- streams ---- */

LX_TEST(stream_text)
{
    size_t n;
    char *sse = read_fixture("stream_text.sse", &n);
    LX_CHECK(sse != NULL);
    if (!sse) {
        return;
    }
    const char *id = "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY";
    const char *model = "claude-3-5-sonnet-20241022";
    struct stream_run r;
    stream_run(&r, "{\"stream\":true}", sse, n);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 5);
    LX_CHECK(
        json_eq(chunk_delta(&r, 0, id, model, NULL), "{\"role\":\"assistant\",\"content\":\"\"}"));
    LX_CHECK(json_eq(chunk_delta(&r, 1, id, model, NULL), "{\"content\":\"Hello\"}"));
    LX_CHECK(json_eq(chunk_delta(&r, 2, id, model, NULL), "{\"content\":\"!\"}"));
    LX_CHECK(json_eq(chunk_delta(&r, 3, id, model, "stop"), "{}"));
    LX_CHECK(r.is_done[4]);
    /* Every chunk of one stream shares its created time. */
    LX_CHECK(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(r.ev[0], "created"),
                           cJSON_GetObjectItemCaseSensitive(r.ev[3], "created"), 1));
    stream_fini(&r);

    /* With stream_options.include_usage: a usage chunk before [DONE]. */
    stream_run(&r, "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}", sse, n);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 6);
    const cJSON *u = r.n > 4 ? r.ev[4] : NULL;
    LX_CHECK(json_eq(cJSON_GetObjectItemCaseSensitive(u, "choices"), "[]"));
    LX_CHECK(json_eq(cJSON_GetObjectItemCaseSensitive(u, "usage"),
                     "{\"prompt_tokens\":25,\"completion_tokens\":15,\"total_tokens\":40,"
                     "\"prompt_tokens_details\":{\"cached_tokens\":0},"
                     "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}"));
    LX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(u, "id")), id);
    LX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(u, "object")),
                 "chat.completion.chunk");
    LX_CHECK(r.n == 6 && r.is_done[5]);
    stream_fini(&r);
    lx_free(sse);
}

LX_TEST(stream_tool_use)
{
    size_t n;
    char *sse = read_fixture("stream_tool.sse", &n);
    LX_CHECK(sse != NULL);
    if (!sse) {
        return;
    }
    const char *id = "msg_014p7gG3wDgGV9EUtLvnow3U";
    const char *model = "claude-3-haiku-20240307";
    struct stream_run r;
    stream_run(&r, "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}", sse, n);
    LX_CHECK_INT(r.rc, 0);
    static const char *want[] = {
        "{\"role\":\"assistant\",\"content\":\"\"}",
        "{\"content\":\"Okay\"}",
        "{\"content\":\", let\"}",
        "{\"content\":\"'s check the weather.\"}",
        ("{\"tool_calls\":[{\"index\":0,\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"type\":"
         "\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}"),
        "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"location\\\":\"}}]}",
        "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\" \\\"San\"}}]}",
        "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\" Francisc\"}}]}",
        "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"o,\"}}]}",
        "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\" CA\\\"\"}}]}",
        "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\", \"}}]}",
        "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"unit\\\": \\\"fah\"}}]}",
        "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"renheit\\\"}\"}}]}",
    };
    size_t k = LX_ARRAY_LEN(want);
    LX_CHECK_INT(r.n, k + 3);
    for (size_t i = 0; i < k; i++) {
        LX_CHECK(json_eq(chunk_delta(&r, i, id, model, NULL), want[i]));
    }
    LX_CHECK(json_eq(chunk_delta(&r, k, id, model, "tool_calls"), "{}"));
    LX_CHECK(json_eq(cJSON_GetObjectItemCaseSensitive(r.n > k + 1 ? r.ev[k + 1] : NULL, "usage"),
                     "{\"prompt_tokens\":472,\"completion_tokens\":89,\"total_tokens\":561,"
                     "\"prompt_tokens_details\":{\"cached_tokens\":0},"
                     "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}"));
    LX_CHECK(r.n == k + 3 && r.is_done[k + 2]);

    /* The concatenated argument pieces are the tool's input. */
    struct lx_buf args;
    lx_buf_init(&args, 4096);
    for (size_t i = 4; i < k && i < r.n; i++) {
        const cJSON *d = chunk_delta(&r, i, id, model, NULL);
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d, "tool_calls"), 0), "function");
        LX_CHECK_INT(lx_buf_append_c(&args, cJSON_GetStringValue(
                                                cJSON_GetObjectItemCaseSensitive(fn, "arguments"))),
                     0);
    }
    LX_CHECK_MEM(args.data, args.len,
                 "{\"location\": \"San Francisco, CA\", \"unit\": \"fahrenheit\"}");
    lx_buf_fini(&args);
    stream_fini(&r);
    lx_free(sse);
}

#define EV(type, data) "event: " type "\ndata: " data "\n\n"
#define MSG_START                                                                                  \
    EV("message_start",                                                                            \
       "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_x\",\"type\":"                       \
       "\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-t\","                 \
       "\"usage\":{\"input_tokens\":10,\"output_tokens\":1,"                                       \
       "\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":4}}}")

LX_TEST(stream_thinking_and_two_tools)
{
    const char *sse =
        MSG_START EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                            "\"content_block\":{\"type\":\"thinking\","
                                            "\"thinking\":\"\"}}")
            EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                      "{\"type\":\"thinking_delta\",\"thinking\":\"Hmm.\"}}")
                EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
                                          "\"delta\":{\"type\":\"signature_delta\","
                                          "\"signature\":\"abc\"}}")
                    EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}")
                        EV("content_block_start",
                           "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{"
                           "\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"a\",\"input\":{}}}")
                            EV("content_block_start",
                               "{\"type\":\"content_block_start\",\"index\":2,"
                               "\"content_block\":{\"type\":\"tool_use\",\"id\":\"t2\","
                               "\"name\":\"b\",\"input\":{}}}")
                                EV("content_block_delta",
                                   "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{"
                                   "\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}")
                                    EV("message_delta",
                                       "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                                       "\"max_tokens\"},\"usage\":{\"output_tokens\":7}}")
                                        EV("message_stop", "{\"type\":\"message_stop\"}")
                                            EV("message_stop", "{\"type\":\"message_stop\"}");
    struct stream_run r;
    stream_run(&r, "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}", sse,
               strlen(sse));
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 8);
    LX_CHECK(
        json_eq(chunk_delta(&r, 1, "msg_x", "claude-t", NULL), "{\"reasoning_content\":\"Hmm.\"}"));
    LX_CHECK(json_eq(chunk_delta(&r, 2, "msg_x", "claude-t", NULL),
                     "{\"tool_calls\":[{\"index\":0,\"id\":\"t1\",\"type\":\"function\","
                     "\"function\":{\"name\":\"a\",\"arguments\":\"\"}}]}"));
    LX_CHECK(json_eq(chunk_delta(&r, 3, "msg_x", "claude-t", NULL),
                     "{\"tool_calls\":[{\"index\":1,\"id\":\"t2\",\"type\":\"function\","
                     "\"function\":{\"name\":\"b\",\"arguments\":\"\"}}]}"));
    LX_CHECK(json_eq(chunk_delta(&r, 4, "msg_x", "claude-t", NULL),
                     "{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{}\"}}]}"));
    LX_CHECK(json_eq(chunk_delta(&r, 5, "msg_x", "claude-t", "length"), "{}"));
    LX_CHECK(r.n == 8 && r.is_done[7]); /* the second message_stop adds nothing */
    stream_fini(&r);

    /* Cache tokens count as prompt tokens in the usage chunk. */
    const char *sse2 = MSG_START EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{"
                                                     "\"stop_reason\":\"end_turn\"},\"usage\":{"
                                                     "\"output_tokens\":2}}")
        EV("message_stop", "{\"type\":\"message_stop\"}");
    stream_run(&r, "{\"stream_options\":{\"include_usage\":true}}", sse2, strlen(sse2));
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 4);
    LX_CHECK(json_eq(cJSON_GetObjectItemCaseSensitive(r.n > 2 ? r.ev[2] : NULL, "usage"),
                     "{\"prompt_tokens\":17,\"completion_tokens\":2,\"total_tokens\":19,"
                     "\"prompt_tokens_details\":{\"cached_tokens\":4},"
                     "\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":4}"));
    stream_fini(&r);
}

LX_TEST(stream_error_event)
{
    const char *sse =
        MSG_START EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                            "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
            EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                      "{\"type\":\"text_delta\",\"text\":\"Hel\"}}")
                EV("error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                            "\"message\":\"Overloaded\"}}")
                    EV("content_block_delta",
                       "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                       "\"text_delta\",\"text\":\"lo\"}}")
                        EV("message_stop", "{\"type\":\"message_stop\"}");
    struct stream_run r;
    stream_run(&r, "{}", sse, strlen(sse));
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 3);
    LX_CHECK(json_eq(r.n > 2 ? r.ev[2] : NULL,
                     "{\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\","
                     "\"param\":null,\"code\":\"503\"}}"));
    stream_fini(&r);
}

LX_TEST(stream_ignores_unknown_and_ping)
{
    const char *sse = EV("ping", "{\"type\":\"ping\"}")
        MSG_START EV("future_event", "{\"type\":\"future_event\",\"x\":1}")
            EV("", "{\"type\":\"message_stop\"}");
    struct stream_run r;
    stream_run(&r, "{}", sse, strlen(sse));
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 3);
    LX_CHECK(json_eq(chunk_delta(&r, 1, "msg_x", "claude-t", "stop"), "{}"));
    stream_fini(&r);
}

LX_TEST(stream_malformed)
{
    static const char *bad[] = {
        EV("message_start", "not json"),
        EV("message_start", "[1]"),
        EV("", "{\"no_type\":1}"),
        EV("message_start", "{\"type\":\"message_start\",\"message\":{}}"),
        EV("message_start", "{\"type\":\"message_start\"}"),
        EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                  "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"),
        EV("message_stop", "{\"type\":\"message_stop\"}"),
        MSG_START MSG_START,
        MSG_START EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
                                            "\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}"),
        MSG_START EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":-1,"
                                            "\"content_block\":{\"type\":\"text\"}}"),
        MSG_START EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":1e9,"
                                            "\"content_block\":{\"type\":\"text\"}}"),
        MSG_START EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0.5,"
                                            "\"content_block\":{\"type\":\"text\"}}"),
        MSG_START EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0}"),
        MSG_START EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                            "\"content_block\":{\"type\":\"tool_use\"}}"),
        MSG_START EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                            "\"content_block\":{\"type\":\"text\"}}")
            EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                      "\"content_block\":{\"type\":\"text\"}}"),
        MSG_START EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                            "\"content_block\":{\"type\":\"text\"}}")
            EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
                                      "\"delta\":{\"type\":\"text_delta\"}}"),
        MSG_START EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                            "\"content_block\":{\"type\":\"tool_use\",\"id\":"
                                            "\"t\",\"name\":\"n\"}}")
            EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
                                      "\"delta\":{\"type\":\"input_json_delta\","
                                      "\"partial_json\":5}}"),
        MSG_START EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                                      "5}}"),
        MSG_START EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{},\"usage\":{"
                                      "\"output_tokens\":-3}}"),
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(bad); i++) {
        struct stream_run r;
        stream_run(&r, "{}", bad[i], strlen(bad[i]));
        if (r.rc != LX_EUPSTREAM) {
            fprintf(stderr, "  case %zu: rc=%d\n", i, r.rc);
        }
        LX_CHECK_INT(r.rc, LX_EUPSTREAM);
        LX_CHECK(strncmp(r.err.msg, "Anthropic stream: ", 18) == 0);
        stream_fini(&r);
    }
}

/* Fail each allocation of a whole tool-use stream in turn: clean failures, no leaks. */
LX_TEST(stream_alloc_failure)
{
    size_t n;
    char *sse = read_fixture("stream_tool.sse", &n);
    LX_CHECK(sse != NULL);
    if (!sse) {
        return;
    }
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
        int rc = lx_sse_feed(&p, sse, n, feed_cb, &r);
        lx_alloc_fail_after(-1, 0);
        if (rc == 0) {
            successes++;
        } else if (rc == LX_EUPSTREAM || rc == LX_ENOMEM) {
            LX_CHECK(r.err.msg[0] != '\0');
        } else {
            LX_CHECK_INT(rc, LX_ENOMEM); /* the SSE parser's own allocation */
        }
        lx_sse_fini(&p);
        r.ops->stream_free(r.state);
        lx_buf_fini(&r.out);
        lx_arena_fini(&arena);
    }
    LX_CHECK_INT(successes, 1);
    cJSON_Delete(in);
    lx_free(sse);
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
        .name = LX_STR("message_start"),
        .data = LX_STR("{\"type\":\"message_start\",\"message\":{\"id\":\"m1\"}}")};
    LX_CHECK_INT(ops()->translate_event(st, &ev, &out, &err), LX_ETOOBIG);
    LX_CHECK_INT(out.len, 0);
    LX_CHECK(err.msg[0] != '\0');
    ops()->stream_free(st);
    lx_buf_fini(&out);
    lx_arena_fini(&arena);
}

LX_TEST_MAIN(LX_RUN(req_basic_and_headers), LX_RUN(req_deployment_settings), LX_RUN(req_role_merge),
             LX_RUN(req_images), LX_RUN(req_cache_control), LX_RUN(req_tools_and_choice),
             LX_RUN(req_tool_round_trip), LX_RUN(req_params), LX_RUN(req_response_format),
             LX_RUN(req_errors), LX_RUN(req_too_big), LX_RUN(req_alloc_failure), LX_RUN(resp_text),
             LX_RUN(resp_tool_use_and_cache_usage), LX_RUN(resp_stop_reasons),
             LX_RUN(resp_malformed), LX_RUN(resp_alloc_failure), LX_RUN(error_mapping),
             LX_RUN(stream_text), LX_RUN(stream_tool_use), LX_RUN(stream_thinking_and_two_tools),
             LX_RUN(stream_error_event), LX_RUN(stream_ignores_unknown_and_ping),
             LX_RUN(stream_malformed), LX_RUN(stream_alloc_failure), LX_RUN(stream_output_cap))
