/*
 * Unit tests for the Ollama provider (src/providers/ollama.c): OpenAI chat
 * requests into /api/chat requests, chat responses, errors and NDJSON
 * streams back into OpenAI's shapes. Fixtures are the examples of
 * https://github.com/ollama/ollama/blob/main/docs/api.md ("Generate a chat
 * completion"). Streams are fed whole and split at every byte position: the
 * client must see the same events either way.
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

#define TEST_KEY "ollama-test-key"
#define TEST_GENERATED_IDS 1
#include "provider_test.h"

const char *lx_ollama_finish_reason(struct lx_str done_reason, bool has_tool_calls);

static const struct lx_provider_ops *ops(void)
{
    return lx_provider_ops_for(LX_PROVIDER_OLLAMA);
}

static struct lx_deployment test_dep(void)
{
    struct lx_deployment d;
    test_dep_init(&d);
    d.model_name = "llama";
    d.id = "dep-ollama-1";
    d.model = "ollama_chat/llama3.2";
    d.provider.kind = LX_PROVIDER_OLLAMA;
    d.provider.name = "ollama_chat";
    d.provider.default_api_base = "http://localhost:11434";
    d.upstream_model = "llama3.2";
    return d;
}

/* ---- requests ---- */

LX_TEST(req_basic_and_headers)
{
    struct lx_deployment dep = test_dep();
    struct built b;
    build(&b, &dep,
          "{\"model\":\"llama\",\"messages\":[{\"role\":\"user\",\"content\":\"why is the sky "
          "blue?\"}],\"stream_options\":{\"include_usage\":true},\"user\":\"u\"}");
    LX_CHECK_INT(b.rc, 0);
    LX_CHECK_STR(b.pr.url, "http://localhost:11434/api/chat");
    LX_CHECK(lx_str_eq_c(header(&b, "content-type"), "application/json"));
    LX_CHECK(lx_str_eq_c(header(&b, "authorization"), "Bearer " TEST_KEY));
    LX_CHECK(json_eq(b.out, "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":"
                            "\"why is the sky blue?\"}],\"stream\":false}"));
    built_fini(&b);

    build(&b, &dep, "{\"messages\":[],\"stream\":true}");
    LX_CHECK_INT(b.rc, 0);
    LX_CHECK(json_eq(b.out, "{\"model\":\"llama3.2\",\"messages\":[],\"stream\":true}"));
    built_fini(&b);

    /* An api_base that names the endpoint already. */
    dep.api_base = "http://10.0.0.2:11434/api/chat/";
    build(&b, &dep, "{\"messages\":[]}");
    LX_CHECK_INT(b.rc, 0);
    LX_CHECK_STR(b.pr.url, "http://10.0.0.2:11434/api/chat");
    built_fini(&b);

    dep = test_dep();
    build_ep(&b, &dep, "{\"prompt\":\"x\"}", LX_EP_COMPLETIONS);
    LX_CHECK_INT(b.rc, LX_EINVAL);
    built_fini(&b);
}

LX_TEST(req_messages)
{
    LX_CHECK(req_is(
        "{\"messages\":[{\"role\":\"developer\",\"content\":\"Be brief.\"},{\"role\":\"user\","
        "\"content\":[{\"type\":\"text\",\"text\":\"What is \"},{\"type\":\"text\",\"text\":"
        "\"in this image?\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"data:image/png;base64,iVBORw0KGgo=\"}}]},{\"role\":\"assistant\",\"content\":null,"
        "\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
        "\"get_current_weather\",\"arguments\":\"{\\\"location\\\":\\\"Paris, FR\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"22C\"},"
        "{\"role\":\"assistant\",\"content\":\"It is 22C.\"}]}",
        "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":\"What is in this image?\",\"images\":[\"iVBORw0KGgo=\"]},"
        "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":"
        "\"get_current_weather\",\"arguments\":{\"location\":\"Paris, FR\"}}}]},"
        "{\"role\":\"tool\",\"content\":\"22C\",\"tool_name\":\"get_current_weather\"},"
        "{\"role\":\"assistant\",\"content\":\"It is 22C.\"}],\"stream\":false}"));
}

#define WEATHER_TOOL                                                                               \
    "{\"type\":\"function\",\"function\":{\"name\":\"get_current_weather\",\"description\":"       \
    "\"Get the weather\",\"parameters\":{\"type\":\"object\",\"properties\":{\"location\":{"       \
    "\"type\":\"string\"}},\"required\":[\"location\"]}}}"

LX_TEST(req_params)
{
    LX_CHECK(req_is(
        "{\"messages\":[],\"tools\":[" WEATHER_TOOL "],\"tool_choice\":\"auto\",\"temperature\":0,"
        "\"top_p\":0.9,\"top_k\":20,\"max_tokens\":64,\"stop\":\"\\n\",\"seed\":42,"
        "\"presence_penalty\":0.1,\"frequency_penalty\":0.2,\"response_format\":{\"type\":"
        "\"json_object\"},\"logit_bias\":{},\"n\":1,\"keep_alive\":\"5m\"}",
        "{\"model\":\"llama3.2\",\"messages\":[],\"tools\":[" WEATHER_TOOL "],\"format\":\"json\","
        "\"keep_alive\":\"5m\",\"options\":{\"temperature\":0,\"top_p\":0.9,\"top_k\":20,"
        "\"seed\":42,\"presence_penalty\":0.1,\"frequency_penalty\":0.2,\"num_predict\":64,"
        "\"stop\":[\"\\n\"]},\"stream\":false}"));
    /* json_schema passes the schema; tool_choice none withholds the tools. */
    LX_CHECK(req_is("{\"messages\":[],\"tools\":[" WEATHER_TOOL "],\"tool_choice\":\"none\","
                    "\"max_completion_tokens\":3,\"stop\":[\"a\"],\"response_format\":{\"type\":"
                    "\"json_schema\",\"json_schema\":{\"name\":\"n\",\"schema\":{\"type\":"
                    "\"object\"}}}}",
                    "{\"model\":\"llama3.2\",\"messages\":[],\"format\":{\"type\":\"object\"},"
                    "\"options\":{\"num_predict\":3,\"stop\":[\"a\"]},\"stream\":false}"));
    struct lx_deployment dep = test_dep();
    cJSON *extra = cJSON_Parse("{\"temperature\":0.3,\"keep_alive\":-1}");
    dep.extra_params = extra;
    struct built b;
    build(&b, &dep, "{\"messages\":[]}");
    LX_CHECK_INT(b.rc, 0);
    LX_CHECK(json_eq(b.out, "{\"model\":\"llama3.2\",\"messages\":[],\"keep_alive\":-1,"
                            "\"options\":{\"temperature\":0.3},\"stream\":false}"));
    built_fini(&b);
    cJSON_Delete(extra);
}

LX_TEST(req_errors)
{
    LX_CHECK(req_fails("[]", LX_EINVAL, "must be a JSON object"));
    LX_CHECK(req_fails("{}", LX_EINVAL, "messages must be an array"));
    LX_CHECK(req_fails("{\"messages\":[1]}", LX_EINVAL, "a message must be an object"));
    LX_CHECK(req_fails("{\"messages\":[{}]}", LX_EINVAL, "needs a string 'role'"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}", LX_EINVAL,
                       "role 'function' is not supported by Ollama"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\"}]}", LX_EINVAL, "needs content"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\",\"content\":{}}]}", LX_EINVAL,
                       "content must be"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                       "\"image_url\":{\"url\":\"https://x/y.png\"}}]}]}",
                       LX_EINVAL, "base64 data: URLs"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\"}]}]}",
                       LX_EINVAL, "'file' is not supported"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
                       LX_EINVAL, "needs a string 'text'"));
    LX_CHECK(req_fails("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{"
                       "\"name\":\"f\",\"arguments\":\"{x\"}}]}]}",
                       LX_EINVAL, "must be a JSON object"));
    LX_CHECK(
        req_fails("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{}}]}]}",
                  LX_EINVAL, "needs function.name"));
    LX_CHECK(req_fails("{\"messages\":[],\"n\":2}", LX_EINVAL, "only n=1"));
    LX_CHECK(req_fails("{\"messages\":[],\"max_tokens\":-1}", LX_EINVAL, "max_tokens must be"));
    LX_CHECK(req_fails("{\"messages\":[],\"top_k\":\"x\"}", LX_EINVAL, "top_k must be a number"));
    LX_CHECK(req_fails("{\"messages\":[],\"stop\":5}", LX_EINVAL, "stop must be"));
    LX_CHECK(req_fails("{\"messages\":[],\"tools\":5}", LX_EINVAL, "tools must be an array"));
    LX_CHECK(req_fails("{\"messages\":[],\"tools\":[{}]}", LX_EINVAL, "needs function.name"));
    LX_CHECK(req_fails("{\"messages\":[],\"response_format\":1}", LX_EINVAL, "response_format"));
}

LX_TEST(req_alloc_failure)
{
    const char *json =
        "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":"
        "[{\"type\":\"text\",\"text\":\"hi\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"data:image/png;base64,AAAA\"}}]},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"t\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":[1,{\\\"b\\\":null}]}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"t\",\"content\":\"ok\"}],\"tools\":[" WEATHER_TOOL
        "],\"stop\":[\"x\"],\"temperature\":0.5,\"response_format\":{\"type\":\"json_schema\","
        "\"json_schema\":{\"schema\":{\"type\":\"object\"}}}}";
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

LX_TEST(resp_text)
{
    LX_CHECK(resp_is(
        "{\"model\":\"llama3.2\",\"created_at\":\"2023-12-12T14:13:43.416799Z\",\"message\":{"
        "\"role\":\"assistant\",\"content\":\"Hello! How are you today?\"},\"done\":true,"
        "\"total_duration\":5191566416,\"load_duration\":2154458,\"prompt_eval_count\":26,"
        "\"prompt_eval_duration\":383809000,\"eval_count\":298,\"eval_duration\":4799921000}",
        "{\"object\":\"chat.completion\",\"model\":\"llama3.2\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"Hello! How are you today?\"},"
        "\"finish_reason\":\"stop\",\"logprobs\":null}],\"usage\":{\"prompt_tokens\":26,"
        "\"completion_tokens\":298,\"total_tokens\":324}}"));
    LX_CHECK(resp_is("{\"message\":{\"role\":\"assistant\",\"content\":\"cut\",\"thinking\":"
                     "\"hmm\"},\"done\":true,\"done_reason\":\"length\"}",
                     "{\"object\":\"chat.completion\",\"model\":\"llama3.2\",\"choices\":[{"
                     "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"cut\","
                     "\"reasoning_content\":\"hmm\"},\"finish_reason\":\"length\",\"logprobs\":"
                     "null}],\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":0,"
                     "\"total_tokens\":0}}"));
    LX_CHECK_STR(lx_ollama_finish_reason(LX_STR("stop"), false), "stop");
    LX_CHECK_STR(lx_ollama_finish_reason(LX_STR("length"), false), "length");
    LX_CHECK_STR(lx_ollama_finish_reason(LX_STR("load"), false), "stop");
    LX_CHECK_STR(lx_ollama_finish_reason(LX_STR("stop"), true), "tool_calls");
}

/* "Chat request (with tools)" of the API docs. */
LX_TEST(resp_tool_calls)
{
    LX_CHECK(resp_is(
        "{\"model\":\"llama3.2\",\"created_at\":\"2024-07-22T20:33:28.123648Z\",\"message\":{"
        "\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":"
        "\"get_current_weather\",\"arguments\":{\"format\":\"celsius\",\"location\":\"Paris, "
        "FR\"}}},{\"function\":{\"name\":\"now\",\"arguments\":\"{}\"}}]},\"done_reason\":\"stop\","
        "\"done\":true,\"total_duration\":885095291,\"load_duration\":3753500,"
        "\"prompt_eval_count\":122,\"prompt_eval_duration\":328493000,\"eval_count\":33,"
        "\"eval_duration\":552222000}",
        "{\"object\":\"chat.completion\",\"model\":\"llama3.2\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,"
        "\"type\":\"function\",\"function\":{\"name\":\"get_current_weather\",\"arguments\":"
        "\"{\\\"format\\\":\\\"celsius\\\",\\\"location\\\":\\\"Paris, FR\\\"}\"}},{\"index\":1,"
        "\"type\":\"function\",\"function\":{\"name\":\"now\",\"arguments\":\"{}\"}}]},"
        "\"finish_reason\":\"tool_calls\",\"logprobs\":null}],\"usage\":{\"prompt_tokens\":122,"
        "\"completion_tokens\":33,\"total_tokens\":155}}"));
}

LX_TEST(resp_malformed)
{
    static const char *bad[] = {
        "",
        "nope",
        "[]",
        "{}",
        "{\"message\":\"x\"}",
        "{\"message\":{\"content\":5}}",
        "{\"message\":{\"thinking\":[]}}",
        "{\"message\":{\"tool_calls\":{}}}",
        "{\"message\":{\"tool_calls\":[{}]}}",
        "{\"message\":{\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":5}}]}}",
        "{\"message\":{},\"done_reason\":1}",
        "{\"message\":{},\"eval_count\":-1}",
        "{\"message\":{},\"prompt_eval_count\":\"3\"}",
        "{\"error\":\"model 'x' not found\"}",
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
    const char *body = "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"hi\","
                       "\"thinking\":\"t\",\"tool_calls\":[{\"function\":{\"name\":\"a\","
                       "\"arguments\":{\"k\":[1,2]}}}]},\"done\":true,\"eval_count\":1}";
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
            LX_CHECK(rc == LX_ENOMEM || rc == LX_EUPSTREAM);
            LX_CHECK_INT(out.len, 0);
        }
        lx_buf_fini(&out);
    }
    LX_CHECK_INT(successes, 1);
}

LX_TEST(error_mapping)
{
    LX_CHECK(error_case(404, "{\"error\":\"model 'llama9' not found, try pulling it first\"}", 404,
                        "{\"error\":{\"message\":\"model 'llama9' not found, try pulling it "
                        "first\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":"
                        "\"404\"}}"));
    LX_CHECK(error_case(500, "{\"error\":\"llama runner process has terminated\"}", 500,
                        "{\"error\":{\"message\":\"llama runner process has terminated\","
                        "\"type\":\"server_error\",\"param\":null,\"code\":\"500\"}}"));
    LX_CHECK(error_case(401, "{\"error\":{\"message\":\"unauthorized\"}}", 401,
                        "{\"error\":{\"message\":\"unauthorized\",\"type\":"
                        "\"authentication_error\",\"param\":null,\"code\":\"401\"}}"));
    LX_CHECK(error_case(502, "Bad Gateway", 502,
                        "{\"error\":{\"message\":\"Ollama returned HTTP 502\",\"type\":"
                        "\"server_error\",\"param\":null,\"code\":\"502\"}}"));
}

/* ---- streams ---- */

/*
 * Feed ndjson to a fresh stream in pieces of at most `step` bytes (0: whole),
 * then end it; the client's view is collected into r.
 */
static void stream_run_split(struct stream_run *r, const char *req_json, const char *ndjson,
                             size_t n, size_t step)
{
    stream_open(r, req_json);
    size_t off = 0;
    while (off < n && !r->rc) {
        size_t k = step ? LX_MIN(step, n - off) : n - off;
        r->rc = r->ops->stream_feed(r->state, ndjson + off, k, &r->out, &r->err);
        off += k;
    }
    if (!r->rc) {
        r->end_rc = r->ops->stream_end(r->state, &r->out, &r->err);
    }
    stream_close(r);
}

static void stream_run_ndjson(struct stream_run *r, const char *req_json, const char *ndjson)
{
    stream_run_split(r, req_json, ndjson, strlen(ndjson), 0);
}

/* The streaming example of "Generate a chat completion", shortened. */
static const char stream_text_ndjson[] =
    "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T08:52:19.385406455-07:00\",\"message\":{"
    "\"role\":\"assistant\",\"content\":\"The\",\"images\":null},\"done\":false}\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T08:52:19.4Z\",\"message\":{\"role\":"
    "\"assistant\",\"content\":\" sky is \\u00e9 blue\"},\"done\":false}\r\n"
    "\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T19:22:45.499127Z\",\"message\":{\"role\":"
    "\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":"
    "4883583458,\"load_duration\":1334875,\"prompt_eval_count\":26,\"prompt_eval_duration\":"
    "342546000,\"eval_count\":282,\"eval_duration\":4535599000}\n";

LX_TEST(stream_text)
{
    struct stream_run r;
    stream_run_ndjson(&r, "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                      stream_text_ndjson);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.end_rc, 0);
    LX_CHECK_INT(r.n, 6);
    LX_CHECK(
        json_eq(chunk_delta(&r, 0, "llama3.2", NULL), "{\"role\":\"assistant\",\"content\":\"\"}"));
    LX_CHECK(json_eq(chunk_delta(&r, 1, "llama3.2", NULL), "{\"content\":\"The\"}"));
    LX_CHECK(
        json_eq(chunk_delta(&r, 2, "llama3.2", NULL), "{\"content\":\" sky is \\u00e9 blue\"}"));
    LX_CHECK(json_eq(chunk_delta(&r, 3, "llama3.2", "stop"), "{}"));
    LX_CHECK(json_eq(cJSON_GetObjectItemCaseSensitive(r.n > 4 ? r.ev[4] : NULL, "usage"),
                     "{\"prompt_tokens\":26,\"completion_tokens\":282,\"total_tokens\":308}"));
    LX_CHECK(json_eq(cJSON_GetObjectItemCaseSensitive(r.n > 4 ? r.ev[4] : NULL, "choices"), "[]"));
    LX_CHECK(r.n == 6 && r.is_done[5]);
    stream_fini(&r);

    /* Without include_usage: no usage chunk. */
    stream_run_ndjson(&r, "{\"stream\":true}", stream_text_ndjson);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 5);
    LX_CHECK(r.n == 5 && r.is_done[4]);
    stream_fini(&r);
}

/* Every split of the stream, at every byte and in every piece size up to 7, gives the same events.
 */
LX_TEST(stream_split_everywhere)
{
    const char *req = "{\"stream_options\":{\"include_usage\":true}}";
    size_t n = sizeof(stream_text_ndjson) - 1;
    struct stream_run whole;
    stream_run_split(&whole, req, stream_text_ndjson, n, 0);
    LX_CHECK_INT(whole.rc, 0);
    for (size_t i = 0; i < whole.n; i++) {
        scrub(whole.ev[i]);
    }
    /* Two pieces, cut at every position. */
    for (size_t cut = 0; cut <= n; cut++) {
        struct stream_run r;
        memset(&r, 0, sizeof(r));
        struct lx_deployment dep = test_dep();
        struct lx_arena arena;
        lx_arena_init(&arena, NULL, 0, 4096);
        cJSON *in = cJSON_Parse(req);
        struct lx_provider_call call = {
            .dep = &dep, .json = in, .stream = true, .upstream_model = "llama3.2", .arena = &arena};
        r.ops = ops();
        r.state = r.ops->stream_new(&call);
        lx_buf_init(&r.out, 1 << 20);
        r.rc = r.ops->stream_feed(r.state, stream_text_ndjson, cut, &r.out, &r.err);
        if (!r.rc) {
            r.rc = r.ops->stream_feed(r.state, stream_text_ndjson + cut, n - cut, &r.out, &r.err);
        }
        r.end_rc = r.ops->stream_end(r.state, &r.out, &r.err);
        r.ops->stream_free(r.state);
        lx_arena_fini(&arena);
        cJSON_Delete(in);
        stream_collect(&r);
        bool same = r.rc == 0 && r.end_rc == 0 && r.n == whole.n;
        for (size_t i = 0; same && i < r.n; i++) {
            scrub(r.ev[i]);
            same = r.is_done[i] == whole.is_done[i] &&
                   (r.is_done[i] || cJSON_Compare(r.ev[i], whole.ev[i], 1));
        }
        if (!same) {
            fprintf(stderr, "  cut at %zu differs\n", cut);
            LX_CHECK(0);
        }
        stream_fini(&r);
    }
    /* Small pieces of every size. */
    for (size_t step = 1; step <= 7; step++) {
        struct stream_run r;
        stream_run_split(&r, req, stream_text_ndjson, n, step);
        bool same = r.rc == 0 && r.end_rc == 0 && r.n == whole.n;
        for (size_t i = 0; same && i < r.n; i++) {
            scrub(r.ev[i]);
            same = r.is_done[i] || cJSON_Compare(r.ev[i], whole.ev[i], 1);
        }
        if (!same) {
            fprintf(stderr, "  step %zu differs\n", step);
            LX_CHECK(0);
        }
        stream_fini(&r);
    }
    stream_fini(&whole);
}

LX_TEST(stream_tool_calls_and_after_done)
{
    const char *nd =
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":"
        "\"Need weather.\"},\"done\":false}\n"
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":"
        "[{\"function\":{\"name\":\"get_current_weather\",\"arguments\":{\"location\":\"Paris\"}}},"
        "{\"function\":{\"name\":\"now\",\"arguments\":{}}}]},\"done\":false}\n"
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
        "\"done_reason\":\"stop\",\"prompt_eval_count\":5,\"eval_count\":9}\n"
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"late\"},"
        "\"done\":false}\ngarbage\n";
    struct stream_run r;
    stream_run_ndjson(&r, "{}", nd);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.end_rc, 0);
    LX_CHECK_INT(r.n, 6);
    LX_CHECK(
        json_eq(chunk_delta(&r, 1, "qwen3", NULL), "{\"reasoning_content\":\"Need weather.\"}"));
    cJSON *d2 = cJSON_Duplicate(chunk_delta(&r, 2, "qwen3", NULL), 1);
    cJSON *d3 = cJSON_Duplicate(chunk_delta(&r, 3, "qwen3", NULL), 1);
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d2, "tool_calls"), 0), "id"));
    LX_CHECK(id && strncmp(id, "call_", 5) == 0 && strlen(id) == 29);
    scrub(d2);
    scrub(d3);
    LX_CHECK(json_eq(d2, "{\"tool_calls\":[{\"index\":0,\"type\":\"function\",\"function\":{"
                         "\"name\":\"get_current_weather\",\"arguments\":\"{\\\"location\\\":"
                         "\\\"Paris\\\"}\"}}]}"));
    LX_CHECK(json_eq(d3, "{\"tool_calls\":[{\"index\":1,\"type\":\"function\",\"function\":{"
                         "\"name\":\"now\",\"arguments\":\"{}\"}}]}"));
    cJSON_Delete(d2);
    cJSON_Delete(d3);
    LX_CHECK(json_eq(chunk_delta(&r, 4, "qwen3", "tool_calls"), "{}"));
    LX_CHECK(r.n == 6 && r.is_done[5]);
    stream_fini(&r);
}

LX_TEST(stream_error_line)
{
    struct stream_run r;
    stream_run_ndjson(&r, "{}",
                      "{\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}\n"
                      "{\"error\":\"an error was encountered while running the model\"}\n"
                      "{\"message\":{\"role\":\"assistant\",\"content\":\"x\"},\"done\":false}\n");
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.end_rc, 0);
    LX_CHECK_INT(r.n, 3);
    LX_CHECK(json_eq(r.n > 2 ? r.ev[2] : NULL,
                     "{\"error\":{\"message\":\"an error was encountered while running the "
                     "model\",\"type\":\"api_error\",\"param\":null,\"code\":\"500\"}}"));
    stream_fini(&r);
}

LX_TEST(stream_truncated_and_malformed)
{
    /* Ends inside a line, or before done:true: stream_end reports it and adds nothing. */
    struct stream_run r;
    stream_run_ndjson(&r, "{}",
                      "{\"message\":{\"content\":\"a\"},\"done\":false}\n{\"message\":{\"con");
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK(r.end_rc != 0);
    LX_CHECK(strstr(r.err.msg, "middle of a line") != NULL);
    LX_CHECK_INT(r.n, 2);
    stream_fini(&r);
    stream_run_ndjson(&r, "{}", "{\"message\":{\"content\":\"a\"},\"done\":false}\n  \n");
    LX_CHECK(r.end_rc != 0);
    LX_CHECK(strstr(r.err.msg, "before done") != NULL);
    stream_fini(&r);

    static const char *bad[] = {
        "not json\n",
        "[1]\n",
        "{\"message\":\"x\"}\n",
        "{\"done\":false}\n",
        "{\"message\":{\"content\":5}}\n",
        "{\"message\":{},\"done\":\"yes\"}\n",
        "{\"message\":{\"tool_calls\":[{\"function\":{}}]}}\n",
        "{\"message\":{},\"done\":true,\"eval_count\":-2}\n",
        "{\"message\":{\"content\":\"ok\"}}\n{nope}\n",
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(bad); i++) {
        stream_run_ndjson(&r, "{}", bad[i]);
        if (r.rc != LX_EUPSTREAM) {
            fprintf(stderr, "  case %zu: rc=%d\n", i, r.rc);
        }
        LX_CHECK_INT(r.rc, LX_EUPSTREAM);
        LX_CHECK(strncmp(r.err.msg, "Ollama stream: ", 15) == 0);
        stream_fini(&r);
    }
}

/* A line over the cap is LX_ETOOBIG, whether it arrives whole or in pieces. */
LX_TEST(stream_line_cap)
{
    size_t n = (8u << 20) + 16;
    char *big = lx_malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    struct stream_run r;
    stream_run_split(&r, "{}", big, n, 1u << 20);
    LX_CHECK_INT(r.rc, LX_ETOOBIG);
    LX_CHECK(strstr(r.err.msg, "longer than") != NULL);
    LX_CHECK_INT(r.out.len, 0);
    stream_fini(&r);
    lx_free(big);
}

LX_TEST(stream_alloc_failure)
{
    const char *nd =
        "{\"model\":\"m\",\"message\":{\"content\":\"a\",\"thinking\":\"t\"},\"done\":false}\n"
        "{\"message\":{\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{\"x\":[1]}}}]}}"
        "\n"
        "{\"message\":{},\"done\":true,\"eval_count\":1}\n";
    struct lx_deployment dep = test_dep();
    cJSON *in = cJSON_Parse("{\"stream_options\":{\"include_usage\":true}}");
    int successes = 0;
    for (long k = 0; k < 400 && !successes; k++) {
        struct lx_arena arena;
        lx_arena_init(&arena, NULL, 0, 4096);
        struct lx_provider_call call = {
            .dep = &dep, .json = in, .upstream_model = "m", .arena = &arena};
        void *st = ops()->stream_new(&call);
        struct lx_buf out;
        lx_buf_init(&out, 1 << 20);
        struct lx_error err = {0};
        size_t half = strlen(nd) / 2;
        lx_alloc_fail_after(k, 0);
        int rc = ops()->stream_feed(st, nd, half, &out, &err);
        size_t mark = out.len;
        if (!rc) {
            rc = ops()->stream_feed(st, nd + half, strlen(nd) - half, &out, &err);
        }
        lx_alloc_fail_after(-1, 0);
        if (rc == 0) {
            successes++;
            LX_CHECK_INT(ops()->stream_end(st, &out, &err), 0);
        } else {
            LX_CHECK(rc == LX_ENOMEM || rc == LX_EUPSTREAM);
            LX_CHECK(err.msg[0] != '\0');
            LX_CHECK(out.len <= mark);
        }
        ops()->stream_free(st);
        lx_buf_fini(&out);
        lx_arena_fini(&arena);
    }
    LX_CHECK_INT(successes, 1);
    cJSON_Delete(in);
}

LX_TEST_MAIN(LX_RUN(req_basic_and_headers), LX_RUN(req_messages), LX_RUN(req_params),
             LX_RUN(req_errors), LX_RUN(req_alloc_failure), LX_RUN(resp_text),
             LX_RUN(resp_tool_calls), LX_RUN(resp_malformed), LX_RUN(resp_alloc_failure),
             LX_RUN(error_mapping), LX_RUN(stream_text), LX_RUN(stream_split_everywhere),
             LX_RUN(stream_tool_calls_and_after_done), LX_RUN(stream_error_line),
             LX_RUN(stream_truncated_and_malformed), LX_RUN(stream_line_cap),
             LX_RUN(stream_alloc_failure))
