/*
 * Unit tests for the Anthropic client adapter (src/proxy/client_anthropic.c):
 * Messages requests into OpenAI chat requests, chat completions, errors and
 * chunk streams back into Anthropic's shapes. Expected bodies are compared
 * as JSON trees (cJSON_Compare), so member order does not matter but every
 * member does. Request examples follow https://docs.anthropic.com/en/api/messages
 * and the tool-use guide; streams are compared event by event (name and
 * parsed data) against https://docs.anthropic.com/en/api/messages-streaming.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"
#include "http/sse.h"
#include "lx_test.h"
#include "proxy/client.h"

const char *lx_client_anthropic_stop_reason(struct lx_str finish, bool has_tools);
const char *lx_client_anthropic_error_type(int status, const char *openai_type);

static const struct lx_client_adapter *ad = &lx_client_anthropic;

/* ---- helpers ---- */

/* got equals the JSON text want (as trees); prints both when not. */
static int json_eq(const cJSON *got, const char *want)
{
    cJSON *w = cJSON_Parse(want);
    if (!w) {
        fprintf(stderr, "  bad expected JSON: %s\n", want);
        return 0;
    }
    int ok = got && cJSON_Compare(got, w, 1);
    if (!ok) {
        char *g = got ? cJSON_PrintUnformatted(got) : NULL;
        char *ws = cJSON_PrintUnformatted(w);
        fprintf(stderr, "  got:  %s\n  want: %s\n", g ? g : "(null)", ws ? ws : "?");
        cJSON_free(g);
        cJSON_free(ws);
    }
    cJSON_Delete(w);
    return ok;
}

/* Translate a request; returns the parsed output (NULL on failure, rc and err set). */
static cJSON *xreq(const char *body, int *rc, struct lx_error *err)
{
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    memset(err, 0, sizeof(*err));
    *rc = ad->translate_request(lx_str_c(body), &out, err);
    cJSON *j = *rc ? NULL : cJSON_ParseWithLength(out.data, out.len);
    if (*rc) {
        LX_CHECK_INT(out.len, 0);
    } else {
        LX_CHECK(j != NULL);
    }
    lx_buf_fini(&out);
    return j;
}

/* The request translates to exactly want. */
static void check_req(const char *body, const char *want)
{
    int rc;
    struct lx_error err;
    cJSON *j = xreq(body, &rc, &err);
    if (rc) {
        fprintf(stderr, "  translate_request: %d %s\n", rc, err.msg);
    }
    LX_CHECK_INT(rc, 0);
    LX_CHECK(json_eq(j, want));
    cJSON_Delete(j);
}

/* The request is rejected with LX_EINVAL and exactly msg. */
static void check_req_err(const char *body, const char *msg)
{
    int rc;
    struct lx_error err;
    cJSON *j = xreq(body, &rc, &err);
    LX_CHECK(j == NULL);
    cJSON_Delete(j);
    LX_CHECK_INT(rc, LX_EINVAL);
    LX_CHECK_INT(err.code, LX_EINVAL);
    LX_CHECK_STR(err.msg, msg);
}

static cJSON *xresp(const char *body, int *rc, struct lx_error *err)
{
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    memset(err, 0, sizeof(*err));
    *rc = ad->translate_response(lx_str_c(body), &out, err);
    cJSON *j = *rc ? NULL : cJSON_ParseWithLength(out.data, out.len);
    if (*rc) {
        LX_CHECK_INT(out.len, 0);
    }
    lx_buf_fini(&out);
    return j;
}

static void check_resp(const char *body, const char *want)
{
    int rc;
    struct lx_error err;
    cJSON *j = xresp(body, &rc, &err);
    if (rc) {
        fprintf(stderr, "  translate_response: %d %s\n", rc, err.msg);
    }
    LX_CHECK_INT(rc, 0);
    LX_CHECK(json_eq(j, want));
    cJSON_Delete(j);
}

/* ---- stream helpers ---- */

#define MAX_EVENTS 64

struct run {
    int rc; /* first failing translate_event result */
    struct lx_error err;
    int n; /* events parsed from the output */
    char *names[MAX_EVENTS];
    cJSON *data[MAX_EVENTS];
};

static int collect_cb(void *ud, const struct lx_sse_event *ev)
{
    struct run *r = ud;
    if (r->n >= MAX_EVENTS) {
        return LX_ETOOBIG;
    }
    r->names[r->n] = lx_strndup(ev->name.p ? ev->name.p : "", ev->name.n);
    r->data[r->n] = cJSON_ParseWithLength(ev->data.p, ev->data.n);
    r->n++;
    return 0;
}

/*
 * Feed the OpenAI event datas (NULL-terminated) to a fresh stream and parse
 * what it writes back as SSE. request is the translated request (may be NULL).
 */
static void run_stream(const char *request, const char *const *events, struct run *r)
{
    memset(r, 0, sizeof(*r));
    struct lx_arena arena;
    lx_arena_init(&arena, NULL, 0, 4096);
    cJSON *req = request ? cJSON_Parse(request) : NULL;
    void *st = ad->stream_new(&arena, req);
    LX_CHECK(st != NULL);
    struct lx_buf out;
    lx_buf_init(&out, 1 << 20);
    for (size_t i = 0; events[i] && st; i++) {
        size_t before = out.len;
        int rc = ad->translate_event(st, lx_str_c(events[i]), &out, &r->err);
        if (rc) {
            LX_CHECK_INT(out.len, before); /* a failed call writes nothing */
            r->rc = r->rc ? r->rc : rc;
        }
    }
    struct lx_sse_parser p;
    lx_sse_init(&p, 1 << 20);
    LX_CHECK_INT(lx_sse_feed(&p, out.data ? out.data : "", out.len, collect_cb, r), 0);
    bool truncated = true;
    LX_CHECK_INT(lx_sse_finish(&p, &truncated), 0);
    LX_CHECK(!truncated);
    lx_sse_fini(&p);
    lx_buf_fini(&out);
    if (st) {
        ad->stream_free(st);
    }
    lx_arena_fini(&arena);
    cJSON_Delete(req);
    /* Every event's data is a JSON object whose type is the event name. */
    for (int i = 0; i < r->n; i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->data[i], "type");
        LX_CHECK(cJSON_IsString(t) && strcmp(t->valuestring, r->names[i]) == 0);
    }
}

static void run_free(struct run *r)
{
    for (int i = 0; i < r->n; i++) {
        lx_free(r->names[i]);
        cJSON_Delete(r->data[i]);
    }
    r->n = 0;
}

/* Event i is named name with data equal to want. */
static void check_event(const struct run *r, int i, const char *name, const char *want)
{
    if (i >= r->n) {
        fprintf(stderr, "  missing event %d (%s)\n", i, name);
        LX_CHECK(i < r->n);
        return;
    }
    LX_CHECK_STR(r->names[i], name);
    LX_CHECK(json_eq(r->data[i], want));
}

/* ---- requests ---- */

LX_TEST(req_basic_and_system)
{
    /* docs.anthropic.com/en/api/messages, "Basic request" and a system prompt. */
    check_req("{\"model\":\"claude-3-5-sonnet-20241022\",\"max_tokens\":1024,"
              "\"messages\":[{\"role\":\"user\",\"content\":\"Hello, world\"}]}",
              "{\"model\":\"claude-3-5-sonnet-20241022\",\"max_tokens\":1024,"
              "\"messages\":[{\"role\":\"user\",\"content\":\"Hello, world\"}]}");
    check_req("{\"model\":\"m\",\"max_tokens\":10,\"system\":\"Respond only in Spanish.\","
              "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}",
              "{\"model\":\"m\",\"max_tokens\":10,\"messages\":[{\"role\":\"system\",\"content\":"
              "\"Respond only in Spanish.\"},{\"role\":\"user\",\"content\":\"Hi\"}]}");
    /* System as text blocks (cache_control dropped), joined with a newline. */
    check_req("{\"model\":\"m\",\"max_tokens\":10,\"system\":[{\"type\":\"text\",\"text\":\"A\"},"
              "{\"type\":\"text\",\"text\":\"B\",\"cache_control\":{\"type\":\"ephemeral\"}}],"
              "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}",
              "{\"model\":\"m\",\"max_tokens\":10,\"messages\":[{\"role\":\"system\",\"content\":"
              "\"A\\nB\"},{\"role\":\"user\",\"content\":\"Hi\"}]}");
    /* An empty system prompt adds nothing. */
    check_req("{\"model\":\"m\",\"max_tokens\":10,\"system\":\"\","
              "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}",
              "{\"model\":\"m\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\","
              "\"content\":\"Hi\"}]}");
}

LX_TEST(req_multi_turn)
{
    /* "Multiple conversational turns" and a prefilled assistant turn. */
    check_req("{\"model\":\"m\",\"max_tokens\":1024,\"messages\":["
              "{\"role\":\"user\",\"content\":\"Hello there.\"},"
              "{\"role\":\"assistant\",\"content\":\"Hi, I'm Claude. How can I help you?\"},"
              "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Can you explain "
              "LLMs in plain English?\"}]},"
              "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Sure\"},"
              "{\"type\":\"text\",\"text\":\", gladly\"}]}]}",
              "{\"model\":\"m\",\"max_tokens\":1024,\"messages\":["
              "{\"role\":\"user\",\"content\":\"Hello there.\"},"
              "{\"role\":\"assistant\",\"content\":\"Hi, I'm Claude. How can I help you?\"},"
              "{\"role\":\"user\",\"content\":\"Can you explain LLMs in plain English?\"},"
              "{\"role\":\"assistant\",\"content\":\"Sure, gladly\"}]}");
    /* Several user text blocks stay parts. */
    check_req("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":["
              "{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}]}",
              "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":["
              "{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}]}");
}

LX_TEST(req_images_documents)
{
    /* "Vision": a base64 image and a URL image before the question. */
    check_req(
        "{\"model\":\"m\",\"max_tokens\":1024,\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/jpeg\","
        "\"data\":\"/9j/4AAQSkZJRg==\"}},"
        "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://example.com/a.png\"}},"
        "{\"type\":\"text\",\"text\":\"What is in the above image?\"}]}]}",
        "{\"model\":\"m\",\"max_tokens\":1024,\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,/9j/"
        "4AAQSkZJRg==\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/a.png\"}},"
        "{\"type\":\"text\",\"text\":\"What is in the above image?\"}]}]}");
    /* Documents: a base64 PDF as a file part, plain text as text. */
    check_req("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":["
              "{\"type\":\"document\",\"title\":\"a.pdf\",\"source\":{\"type\":\"base64\","
              "\"media_type\":\"application/pdf\",\"data\":\"JVBERi0=\"}},"
              "{\"type\":\"document\",\"source\":{\"type\":\"text\",\"media_type\":\"text/plain\","
              "\"data\":\"The grass is green.\"}}]}]}",
              "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":["
              "{\"type\":\"file\",\"file\":{\"file_data\":\"data:application/pdf;base64,JVBERi0=\","
              "\"filename\":\"a.pdf\"}},"
              "{\"type\":\"text\",\"text\":\"The grass is green.\"}]}]}");
    check_req_err("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":["
                  "{\"type\":\"image\",\"source\":{\"type\":\"file\",\"file_id\":\"f\"}}]}]}",
                  "messages.0.content.0.source.type: unsupported source type 'file'");
    check_req_err("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":["
                  "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"data\":\"x\"}}]}]}",
                  "messages.0.content.0.source.media_type: Field required");
}

static const char *const weather_tool =
    "{\"name\":\"get_weather\",\"description\":\"Get the current weather in a given location\","
    "\"input_schema\":{\"type\":\"object\",\"properties\":{\"location\":{\"type\":\"string\"}},"
    "\"required\":[\"location\"]}}";

static const char *const weather_fn =
    "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Get the "
    "current weather in a given location\",\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"location\":{\"type\":\"string\"}},\"required\":[\"location\"]}}}";

/* A request with the weather tool and the given tool_choice JSON (NULL: none). */
static void check_tool_choice(const char *choice, const char *want_choice)
{
    char body[2048], want[2048];
    snprintf(body, sizeof(body),
             "{\"model\":\"m\",\"max_tokens\":5,\"tools\":[%s]%s%s,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"}]}",
             weather_tool, choice ? ",\"tool_choice\":" : "", choice ? choice : "");
    snprintf(want, sizeof(want),
             "{\"model\":\"m\",\"max_tokens\":5,\"tools\":[%s]%s,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"}]}",
             weather_fn, want_choice ? want_choice : "");
    check_req(body, want);
}

LX_TEST(req_tools_and_tool_choice)
{
    check_tool_choice(NULL, NULL);
    check_tool_choice("{\"type\":\"auto\"}", ",\"tool_choice\":\"auto\"");
    check_tool_choice("{\"type\":\"any\"}", ",\"tool_choice\":\"required\"");
    check_tool_choice("{\"type\":\"none\"}", ",\"tool_choice\":\"none\"");
    check_tool_choice("{\"type\":\"tool\",\"name\":\"get_weather\"}",
                      ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":"
                      "\"get_weather\"}}");
    check_tool_choice("{\"type\":\"auto\",\"disable_parallel_tool_use\":true}",
                      ",\"tool_choice\":\"auto\",\"parallel_tool_calls\":false");
    check_tool_choice("{\"type\":\"any\",\"disable_parallel_tool_use\":false}",
                      ",\"tool_choice\":\"required\"");
    /* tool_choice without tools is dropped (OpenAI rejects it). */
    check_req("{\"model\":\"m\",\"max_tokens\":5,\"tool_choice\":{\"type\":\"auto\"},\"tools\":[],"
              "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
              "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
              "\"x\"}]}");
    /* A tool without a description. */
    check_req("{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"name\":\"f\",\"type\":\"custom\","
              "\"input_schema\":{\"type\":\"object\"}}],"
              "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
              "{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"type\":\"function\",\"function\":"
              "{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}}],"
              "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    check_req_err("{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"type\":\"web_search_20250305\","
                  "\"name\":\"web_search\"}],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                  "tools.0: tool type 'web_search_20250305' is not supported by this gateway");
    check_req_err("{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"name\":\"f\"}],"
                  "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                  "tools.0.input_schema: Field required");
    check_req_err("{\"model\":\"m\",\"max_tokens\":5,\"tools\":[],\"tool_choice\":{\"type\":\"x\"},"
                  "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                  "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'");
    check_req_err("{\"model\":\"m\",\"max_tokens\":5,\"tool_choice\":{\"type\":\"tool\"},"
                  "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                  "tool_choice.name: Field required");
}

LX_TEST(req_tool_use_round_trip)
{
    /* The tool-use guide's conversation: the tool_result comes before the user's text. */
    check_req(
        "{\"model\":\"m\",\"max_tokens\":1024,\"messages\":["
        "{\"role\":\"user\",\"content\":\"What's the weather like in San Francisco?\"},"
        "{\"role\":\"assistant\",\"content\":["
        "{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"sig\"},"
        "{\"type\":\"text\",\"text\":\"<thinking>I need to use get_weather</thinking>\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_01A09q90qw90lq917835lq9\",\"name\":\"get_weather\","
        "\"input\":{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}}]},"
        "{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"Thanks\"},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_01A09q90qw90lq917835lq9\","
        "\"content\":\"15 degrees\"}]}]}",
        "{\"model\":\"m\",\"max_tokens\":1024,\"messages\":["
        "{\"role\":\"user\",\"content\":\"What's the weather like in San Francisco?\"},"
        "{\"role\":\"assistant\",\"content\":\"<thinking>I need to use get_weather</thinking>\","
        "\"tool_calls\":[{\"id\":\"toolu_01A09q90qw90lq917835lq9\",\"type\":\"function\","
        "\"function\":{\"name\":\"get_weather\",\"arguments\":"
        "\"{\\\"location\\\":\\\"San Francisco, CA\\\",\\\"unit\\\":\\\"celsius\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_01A09q90qw90lq917835lq9\","
        "\"content\":\"15 degrees\"},"
        "{\"role\":\"user\",\"content\":\"Thanks\"}]}");
    /* Parallel tools, no text: content null; results as text blocks, images moved, empty. */
    check_req(
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":["
        "{\"role\":\"assistant\",\"content\":["
        "{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"a\",\"input\":{}},"
        "{\"type\":\"tool_use\",\"id\":\"t2\",\"name\":\"b\",\"input\":{\"x\":[1,2]}}]},"
        "{\"role\":\"user\",\"content\":["
        "{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":[{\"type\":\"text\","
        "\"text\":\"l1\"},{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"u\"}},"
        "{\"type\":\"text\",\"text\":\"l2\"}]},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"t2\",\"is_error\":true}]}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":["
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"a\",\"arguments\":\"{}\"}},"
        "{\"id\":\"t2\",\"type\":\"function\",\"function\":{\"name\":\"b\",\"arguments\":"
        "\"{\\\"x\\\":[1,2]}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"l1\\nl2\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"t2\",\"content\":\"\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"u\"}}]}"
        "]}");
    /* An assistant turn of thinking only disappears. */
    check_req(
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":["
        "{\"role\":\"user\",\"content\":\"a\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"redacted_thinking\",\"data\":\"x\"}]},"
        "{\"role\":\"user\",\"content\":\"b\"}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":["
        "{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]}");
}

LX_TEST(req_parameters)
{
    check_req("{\"model\":\"m\",\"max_tokens\":5,\"stream\":true,\"temperature\":0.5,"
              "\"top_p\":0.9,\"top_k\":40,\"stop_sequences\":[\"\\n\\nHuman:\",\"END\"],"
              "\"metadata\":{\"user_id\":\"u-1\"},\"thinking\":{\"type\":\"enabled\","
              "\"budget_tokens\":1024},\"service_tier\":\"auto\",\"unknown\":1,"
              "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
              "{\"model\":\"m\",\"max_tokens\":5,\"stream\":true,\"stream_options\":"
              "{\"include_usage\":true},\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,"
              "\"stop\":[\"\\n\\nHuman:\",\"END\"],\"user\":\"u-1\","
              "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    check_req("{\"model\":\"m\",\"max_tokens\":5,\"stream\":false,\"temperature\":null,"
              "\"stop_sequences\":[],\"metadata\":{},"
              "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
              "{\"model\":\"m\",\"max_tokens\":5,\"stream\":false,"
              "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
}

LX_TEST(req_invalid)
{
    static const struct {
        const char *body;
        const char *msg;
    } cases[] = {
        {"{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "model: Field required"},
        {"{\"model\":5,\"max_tokens\":5,\"messages\":[]}", "model: Input should be a valid string"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "max_tokens: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":\"5\",\"messages\":[]}",
         "max_tokens: Input should be a valid integer"},
        {"{\"model\":\"m\",\"max_tokens\":1.5,\"messages\":[]}",
         "max_tokens: Input should be a valid integer"},
        {"{\"model\":\"m\",\"max_tokens\":0,\"messages\":[]}",
         "max_tokens: Input should be greater than or equal to 1"},
        {"{\"model\":\"m\",\"max_tokens\":5}", "messages: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":{}}",
         "messages: Input should be a valid list"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}",
         "messages: at least one message is required"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"stream\":\"yes\",\"messages\":[1]}",
         "stream: Input should be a valid boolean"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"stop_sequences\":\"x\",\"messages\":[1]}",
         "stop_sequences: Input should be a valid list"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1]}",
         "messages.0: Input should be a valid dictionary"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]"
         "}",
         "messages: Unexpected role \"system\". The Messages API accepts a top-level `system` "
         "parameter, not \"system\" as an input message role."},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
         "messages.0.role: Input should be 'user' or 'assistant'"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\"}]}",
         "messages.0.content: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":5}]}",
         "messages.0.content: Input should be a valid list"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{}]}]}",
         "messages.0.content.0.type: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"text\"}]}]}",
         "messages.0.content.0.text: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"audio\"}]}]}",
         "messages.0.content.0.type: unsupported content block type 'audio'"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"tool_result\"}]}]}",
         "messages.0.content.0.tool_use_id: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":"
         "[{\"type\":\"tool_use\",\"id\":\"t\"}]}]}",
         "messages.0.content.0.name: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":"
         "[{\"type\":\"tool_result\",\"tool_use_id\":\"t\"}]}]}",
         "messages.0.content.0: tool_result blocks belong in user messages"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"system\":5,\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "system: Input should be a valid string or a list of text blocks"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"temperature\":\"hot\",\"messages\":[{\"role\":"
         "\"user\",\"content\":\"x\"}]}",
         "temperature: Input should be a valid number"},
        {"[1,2]", "Request body must be a JSON object"},
        {"{\"model\":", "Malformed JSON in request body"},
        {"", "Malformed JSON in request body"},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(cases); i++) {
        check_req_err(cases[i].body, cases[i].msg);
    }
}

LX_TEST(req_too_big)
{
    struct lx_buf out;
    lx_buf_init(&out, 32);
    struct lx_error err = {0};
    int rc = ad->translate_request(
        LX_STR("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
               "\"content\":\"a message that does not fit into 32 bytes\"}]}"),
        &out, &err);
    LX_CHECK_INT(rc, LX_ETOOBIG);
    LX_CHECK_INT(out.len, 0);
    lx_buf_fini(&out);
}

/* ---- responses ---- */

LX_TEST(resp_text)
{
    check_resp("{\"id\":\"chatcmpl-abc123\",\"object\":\"chat.completion\",\"created\":1,"
               "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
               "\"assistant\",\"content\":\"Hello!\",\"refusal\":null},\"finish_reason\":"
               "\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,"
               "\"total_tokens\":11}}",
               "{\"id\":\"msg_abc123\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"
               "\"gpt-4o-mini\",\"content\":[{\"type\":\"text\",\"text\":\"Hello!\"}],"
               "\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,"
               "\"output_tokens\":2}}");
    /* Cached tokens: Anthropic's input_tokens exclude them. */
    check_resp("{\"id\":\"x\",\"model\":\"m\",\"choices\":[{\"message\":{\"content\":\"Hi\"},"
               "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":100,"
               "\"completion_tokens\":7,\"prompt_tokens_details\":{\"cached_tokens\":60}}}",
               "{\"id\":\"msg_x\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
               "\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}],\"stop_reason\":\"max_tokens\","
               "\"stop_sequence\":null,\"usage\":{\"input_tokens\":40,\"output_tokens\":7,"
               "\"cache_read_input_tokens\":60}}");
    /* Our Anthropic provider's usage comes back as Anthropic counted it. */
    check_resp("{\"id\":\"x\",\"model\":\"m\",\"choices\":[{\"message\":{\"content\":\"Hi\"},"
               "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":11,"
               "\"completion_tokens\":4,\"total_tokens\":15,\"prompt_tokens_details\":"
               "{\"cached_tokens\":5},\"cache_creation_input_tokens\":2,"
               "\"cache_read_input_tokens\":5}}",
               "{\"id\":\"msg_x\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
               "\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}],\"stop_reason\":\"end_turn\","
               "\"stop_sequence\":null,\"usage\":{\"input_tokens\":4,\"output_tokens\":4,"
               "\"cache_creation_input_tokens\":2,\"cache_read_input_tokens\":5}}");
    /* Empty content: no block; no usage: zeros; content parts joined; reasoning -> thinking. */
    check_resp("{\"id\":\"chatcmpl-1\",\"model\":\"m\",\"choices\":[{\"message\":{\"content\":"
               "\"\"},\"finish_reason\":\"stop\"}]}",
               "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
               "\"content\":[],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
               "\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}");
    check_resp("{\"id\":\"chatcmpl-1\",\"model\":\"m\",\"choices\":[{\"message\":{"
               "\"reasoning_content\":\"think\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
               "{\"type\":\"text\",\"text\":\"b\"}]},\"finish_reason\":\"stop\"}]}",
               "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
               "\"content\":[{\"type\":\"thinking\",\"thinking\":\"think\",\"signature\":\"\"},"
               "{\"type\":\"text\",\"text\":\"ab\"}],\"stop_reason\":\"end_turn\","
               "\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}");
    /* A refusal. */
    check_resp("{\"id\":\"chatcmpl-1\",\"model\":\"m\",\"choices\":[{\"message\":{\"content\":"
               "null,\"refusal\":\"I can't\"},\"finish_reason\":\"content_filter\"}]}",
               "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
               "\"content\":[{\"type\":\"text\",\"text\":\"I can't\"}],\"stop_reason\":\"refusal\","
               "\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}");
}

LX_TEST(resp_tool_calls)
{
    check_resp("{\"id\":\"chatcmpl-t\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"message\":{"
               "\"role\":\"assistant\",\"content\":\"Let me check.\",\"tool_calls\":["
               "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
               "\"arguments\":\"{\\\"location\\\":\\\"Paris\\\"}\"}},"
               "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"broken\","
               "\"arguments\":\"{\\\"loc\"}},"
               "{\"id\":\"call_3\",\"type\":\"function\",\"function\":{\"name\":\"arr\","
               "\"arguments\":\"[1]\"}}]},\"finish_reason\":\"tool_calls\"}],"
               "\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":10}}",
               "{\"id\":\"msg_t\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"gpt-4o\","
               "\"content\":[{\"type\":\"text\",\"text\":\"Let me check.\"},"
               "{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":\"get_weather\",\"input\":"
               "{\"location\":\"Paris\"}},"
               "{\"type\":\"tool_use\",\"id\":\"call_2\",\"name\":\"broken\",\"input\":{}},"
               "{\"type\":\"tool_use\",\"id\":\"call_3\",\"name\":\"arr\",\"input\":{}}],"
               "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,"
               "\"usage\":{\"input_tokens\":20,\"output_tokens\":10}}");
    /* finish "stop" with tool calls is tool_use; a missing id gets a toolu_ id. */
    int rc;
    struct lx_error err;
    cJSON *j = xresp("{\"model\":\"m\",\"choices\":[{\"message\":{\"content\":null,"
                     "\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                     "\"finish_reason\":\"stop\"}]}",
                     &rc, &err);
    LX_CHECK_INT(rc, 0);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
    LX_CHECK_INT(cJSON_GetArraySize(content), 1);
    const cJSON *b = cJSON_GetArrayItem(content, 0);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(b, "id");
    LX_CHECK(cJSON_IsString(id) && strncmp(id->valuestring, "toolu_", 6) == 0 &&
             strlen(id->valuestring) == 30);
    LX_CHECK_STR(cJSON_GetObjectItemCaseSensitive(j, "stop_reason")->valuestring, "tool_use");
    const cJSON *mid = cJSON_GetObjectItemCaseSensitive(j, "id");
    LX_CHECK(cJSON_IsString(mid) && strncmp(mid->valuestring, "msg_", 4) == 0);
    cJSON_Delete(j);
}

LX_TEST(resp_finish_reasons)
{
    static const struct {
        const char *finish;
        bool tools;
        const char *want;
    } cases[] = {
        {"stop", false, "end_turn"},          {"length", false, "max_tokens"},
        {"tool_calls", false, "tool_use"},    {"function_call", false, "tool_use"},
        {"content_filter", false, "refusal"}, {"", false, "end_turn"},
        {"eos", false, "end_turn"},           {"stop", true, "tool_use"},
        {"length", true, "max_tokens"},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(cases); i++) {
        LX_CHECK_STR(lx_client_anthropic_stop_reason(lx_str_c(cases[i].finish), cases[i].tools),
                     cases[i].want);
    }
    /* Through translate_response, each documented value. */
    static const char *const pairs[][2] = {{"\"stop\"", "end_turn"},
                                           {"\"length\"", "max_tokens"},
                                           {"\"tool_calls\"", "tool_use"},
                                           {"\"content_filter\"", "refusal"},
                                           {"null", "end_turn"}};
    for (size_t i = 0; i < LX_ARRAY_LEN(pairs); i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"model\":\"m\",\"choices\":[{\"message\":{\"content\":\"x\"},"
                 "\"finish_reason\":%s}]}",
                 pairs[i][0]);
        int rc;
        struct lx_error err;
        cJSON *j = xresp(body, &rc, &err);
        LX_CHECK_INT(rc, 0);
        const cJSON *sr = cJSON_GetObjectItemCaseSensitive(j, "stop_reason");
        LX_CHECK(cJSON_IsString(sr) && strcmp(sr->valuestring, pairs[i][1]) == 0);
        cJSON_Delete(j);
    }
}

LX_TEST(resp_malformed)
{
    static const char *const bodies[] = {
        "", "{", "not json", "[1]", "{\"choices\":5}", "{\"error\":{\"message\":\"boom\"}}",
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(bodies); i++) {
        int rc;
        struct lx_error err;
        cJSON *j = xresp(bodies[i], &rc, &err);
        LX_CHECK(j == NULL);
        LX_CHECK_INT(rc, LX_EUPSTREAM);
        LX_CHECK(err.msg[0] != '\0');
        cJSON_Delete(j);
    }
    /* No choices at all: an empty message, not an error. */
    check_resp("{\"id\":\"chatcmpl-e\",\"model\":\"m\",\"choices\":[]}",
               "{\"id\":\"msg_e\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
               "\"content\":[],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
               "\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}");
}

/* ---- errors ---- */

LX_TEST(error_bodies)
{
    static const struct {
        int status;
        const char *type;
    } cases[] = {
        {400, "invalid_request_error"},
        {401, "authentication_error"},
        {403, "permission_error"},
        {404, "not_found_error"},
        {413, "request_too_large"},
        {429, "rate_limit_error"},
        {500, "api_error"},
        {502, "api_error"},
        {503, "overloaded_error"},
        {504, "api_error"},
        {529, "overloaded_error"},
        {422, "api_error"},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(cases); i++) {
        struct lx_buf out;
        lx_buf_init(&out, 4096);
        LX_CHECK_INT(ad->error_body(cases[i].status, "server_error", LX_STR("bad \"thing\""), &out),
                     0);
        cJSON *j = cJSON_ParseWithLength(out.data, out.len);
        char want[256];
        snprintf(
            want, sizeof(want),
            "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"bad \\\"thing\\\"\"}}",
            cases[i].type);
        LX_CHECK(json_eq(j, want));
        cJSON_Delete(j);
        lx_buf_fini(&out);
    }
    /* Without a status, the OpenAI type or code decides. */
    LX_CHECK_STR(lx_client_anthropic_error_type(0, "requests"), "rate_limit_error");
    LX_CHECK_STR(lx_client_anthropic_error_type(0, "invalid_request_error"),
                 "invalid_request_error");
    LX_CHECK_STR(lx_client_anthropic_error_type(0, NULL), "api_error");
    /* A full buffer leaves it unchanged. */
    struct lx_buf small;
    lx_buf_init(&small, 10);
    LX_CHECK_INT(ad->error_body(500, NULL, LX_STR("a long message"), &small), LX_ETOOBIG);
    LX_CHECK_INT(small.len, 0);
    lx_buf_fini(&small);
}

/* ---- streams ---- */

#define CHUNK(delta, finish)                                                                       \
    "{\"id\":\"chatcmpl-s1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"        \
    "\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":" delta ",\"finish_reason\":" finish      \
    "}]}"

static const char *const usage_chunk =
    "{\"id\":\"chatcmpl-s1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"
    "\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,"
    "\"total_tokens\":15}}";

LX_TEST(stream_text)
{
    const char *const events[] = {
        CHUNK("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}", "null"),
        CHUNK("{\"content\":\"Hello\"}", "null"),
        CHUNK("{\"content\":\" world\"}", "null"),
        CHUNK("{}", "\"stop\""),
        usage_chunk,
        "[DONE]",
        NULL,
    };
    struct run r;
    run_stream("{\"model\":\"gpt-4o\",\"stream\":true}", events, &r);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 7);
    check_event(&r, 0, "message_start",
                "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_s1\",\"type\":\"message\","
                "\"role\":\"assistant\",\"model\":\"gpt-4o-mini\",\"content\":[],"
                "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
                "\"output_tokens\":0}}}");
    check_event(&r, 1, "content_block_start",
                "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
                "\"text\",\"text\":\"\"}}");
    check_event(&r, 2, "content_block_delta",
                "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
                "\"text\":\"Hello\"}}");
    check_event(&r, 3, "content_block_delta",
                "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
                "\"text\":\" world\"}}");
    check_event(&r, 4, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}");
    check_event(&r, 5, "message_delta",
                "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
                "\"stop_sequence\":null},\"usage\":{\"input_tokens\":12,\"output_tokens\":3}}");
    check_event(&r, 6, "message_stop", "{\"type\":\"message_stop\"}");
    run_free(&r);
}

LX_TEST(stream_tool_calls)
{
    /* OpenAI's documented shape: id and name first, then argument pieces; two calls. */
    const char *const events[] = {
        CHUNK("{\"role\":\"assistant\",\"content\":null}", "null"),
        CHUNK("{\"content\":\"Checking.\"}", "null"),
        CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"call_A\",\"type\":\"function\","
              "\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}",
              "null"),
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"location\\\"\"}}]}",
              "null"),
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":\\\"Paris\\\"}\"}}]}",
              "null"),
        CHUNK("{\"tool_calls\":[{\"index\":1,\"id\":\"call_B\",\"type\":\"function\","
              "\"function\":{\"name\":\"get_time\",\"arguments\":\"{}\"}}]}",
              "null"),
        /* a late piece for call 0, whose block is closed: dropped */
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\" \"}}]}", "null"),
        CHUNK("{}", "\"tool_calls\""),
        usage_chunk,
        "[DONE]",
        NULL,
    };
    struct run r;
    run_stream(NULL, events, &r);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 13);
    check_event(&r, 1, "content_block_start",
                "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
                "\"text\",\"text\":\"\"}}");
    check_event(&r, 2, "content_block_delta",
                "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
                "\"text\":\"Checking.\"}}");
    check_event(&r, 3, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}");
    check_event(&r, 4, "content_block_start",
                "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
                "\"tool_use\",\"id\":\"call_A\",\"name\":\"get_weather\",\"input\":{}}}");
    check_event(&r, 5, "content_block_delta",
                "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
                "\"input_json_delta\",\"partial_json\":\"{\\\"location\\\"\"}}");
    check_event(&r, 6, "content_block_delta",
                "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
                "\"input_json_delta\",\"partial_json\":\":\\\"Paris\\\"}\"}}");
    check_event(&r, 7, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}");
    check_event(&r, 8, "content_block_start",
                "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":"
                "\"tool_use\",\"id\":\"call_B\",\"name\":\"get_time\",\"input\":{}}}");
    check_event(&r, 9, "content_block_delta",
                "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
                "\"input_json_delta\",\"partial_json\":\"{}\"}}");
    check_event(&r, 10, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":2}");
    check_event(&r, 11, "message_delta",
                "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
                "\"stop_sequence\":null},\"usage\":{\"input_tokens\":12,\"output_tokens\":3}}");
    check_event(&r, 12, "message_stop", "{\"type\":\"message_stop\"}");
    run_free(&r);
}

LX_TEST(stream_thinking_and_length)
{
    const char *const events[] = {
        CHUNK("{\"reasoning_content\":\"Let me think\"}", "null"),
        CHUNK("{\"content\":\"Answer\"}", "null"),
        CHUNK("{}", "\"length\""),
        "[DONE]",
        NULL,
    };
    struct run r;
    run_stream("{\"model\":\"grp\"}", events, &r);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 9);
    check_event(&r, 1, "content_block_start",
                "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
                "\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}");
    check_event(&r, 2, "content_block_delta",
                "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                "\"thinking_delta\",\"thinking\":\"Let me think\"}}");
    check_event(&r, 3, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}");
    check_event(&r, 4, "content_block_start",
                "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
                "\"text\",\"text\":\"\"}}");
    check_event(&r, 7, "message_delta",
                "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\","
                "\"stop_sequence\":null},\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}");
    run_free(&r);
}

LX_TEST(stream_edge_cases)
{
    /* [DONE] alone: a complete empty message, model from the request; later events ignored. */
    const char *const done_only[] = {"[DONE]", CHUNK("{\"content\":\"late\"}", "null"), NULL};
    struct run r;
    run_stream("{\"model\":\"my-group\"}", done_only, &r);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 3);
    LX_CHECK_STR(r.names[0], "message_start");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r.data[0], "message");
    LX_CHECK_STR(cJSON_GetObjectItemCaseSensitive(m, "model")->valuestring, "my-group");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
    LX_CHECK(cJSON_IsString(id) && strncmp(id->valuestring, "msg_", 4) == 0);
    LX_CHECK_STR(r.names[1], "message_delta");
    LX_CHECK_STR(r.names[2], "message_stop");
    run_free(&r);

    /* Empty choices, missing fields, a choice with n > 1, usage in the first chunk. */
    const char *const odd[] = {
        "{\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":0}}",
        "{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}},5]}",
        "{\"choices\":[{\"delta\":null,\"finish_reason\":\"stop\"}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[5,{}]}}]}",
        "[DONE]",
        NULL,
    };
    run_stream(NULL, odd, &r);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 6);
    LX_CHECK_STR(r.names[0], "message_start");
    m = cJSON_GetObjectItemCaseSensitive(r.data[0], "message");
    LX_CHECK(json_eq(cJSON_GetObjectItemCaseSensitive(m, "usage"),
                     "{\"input_tokens\":7,\"output_tokens\":0}"));
    check_event(&r, 2, "content_block_delta",
                "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
                "\"text\":\"x\"}}");
    check_event(&r, 3, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}");
    check_event(&r, 4, "message_delta",
                "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
                "\"stop_sequence\":null},\"usage\":{\"input_tokens\":7,\"output_tokens\":0}}");
    run_free(&r);
}

LX_TEST(stream_error_event)
{
    /* llm.c's own error event after a started stream. */
    const char *const events[] = {
        CHUNK("{\"content\":\"Hi\"}", "null"),
        "{\"error\":{\"message\":\"Upstream request timed out\",\"type\":\"timeout\","
        "\"param\":null,\"code\":\"504\"}}",
        CHUNK("{\"content\":\"ignored\"}", "null"),
        "[DONE]",
        NULL,
    };
    struct run r;
    run_stream(NULL, events, &r);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_INT(r.n, 4);
    check_event(&r, 3, "error",
                "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
                "\"Upstream request timed out\"}}");
    run_free(&r);

    /* An error as the first event: nothing but the error; rate limits by code. */
    const char *const first[] = {
        "{\"error\":{\"message\":\"slow down\",\"type\":\"requests\",\"code\":"
        "\"rate_limit_exceeded\"}}",
        NULL,
    };
    run_stream(NULL, first, &r);
    LX_CHECK_INT(r.n, 1);
    check_event(&r, 0, "error",
                "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":"
                "\"slow down\"}}");
    run_free(&r);

    const char *const numeric[] = {"{\"error\":{\"message\":\"busy\",\"code\":529}}",
                                   "{\"error\":\"plain\"}", NULL};
    run_stream(NULL, numeric, &r);
    LX_CHECK_INT(r.n, 1);
    check_event(&r, 0, "error",
                "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
                "\"busy\"}}");
    run_free(&r);
}

LX_TEST(stream_malformed)
{
    static const char *const bad[] = {"{not json", "[1,2]", "42", "", "\"str\""};
    for (size_t i = 0; i < LX_ARRAY_LEN(bad); i++) {
        const char *const events[] = {CHUNK("{\"content\":\"Hi\"}", "null"), bad[i], NULL};
        struct run r;
        run_stream(NULL, events, &r);
        LX_CHECK_INT(r.rc, LX_EUPSTREAM);
        LX_CHECK(r.err.msg[0] != '\0');
        LX_CHECK_INT(r.n, 3); /* message_start, block start, delta: nothing from the bad one */
        run_free(&r);
    }
}

/* ---- count_tokens ---- */

LX_TEST(count_tokens)
{
    static const struct {
        const char *body;
        int rc;
        const char *want;
    } cases[] = {
        /* "abcd" + "hello world!" = 16 bytes -> 4 */
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"abcd\"},"
         "{\"role\":\"assistant\",\"content\":\"hello world!\"}]}",
         0, "{\"input_tokens\":4}"},
        /* system blocks + text blocks + tool_result: 5 + 4 + 3 = 12 -> 3 */
        {"{\"system\":[{\"type\":\"text\",\"text\":\"12345\"}],\"messages\":[{\"role\":\"user\","
         "\"content\":[{\"type\":\"text\",\"text\":\"abcd\"},{\"type\":\"tool_result\","
         "\"tool_use_id\":\"t\",\"content\":\"xyz\"}]}]}",
         0, "{\"input_tokens\":3}"},
        {"{\"system\":\"s\",\"messages\":[]}", 0, "{\"input_tokens\":1}"},
        {"{\"messages\":[]}", 0, "{\"input_tokens\":1}"},
        {"{\"model\":\"m\"}", LX_EINVAL, NULL},
        {"{\"messages\":5}", LX_EINVAL, NULL},
        {"[]", LX_EINVAL, NULL},
        {"nope", LX_EINVAL, NULL},
    };
    for (size_t i = 0; i < LX_ARRAY_LEN(cases); i++) {
        struct lx_buf out;
        lx_buf_init(&out, 4096);
        struct lx_error err = {0};
        int rc = lx_client_anthropic_count_tokens(lx_str_c(cases[i].body), &out, &err);
        LX_CHECK_INT(rc, cases[i].rc);
        if (cases[i].want) {
            LX_CHECK_MEM(out.data, out.len, cases[i].want);
        } else {
            LX_CHECK(err.msg[0] != '\0');
        }
        lx_buf_fini(&out);
    }
}

/* ---- allocation failures ---- */

static const char *const torture_req =
    "{\"model\":\"m\",\"max_tokens\":64,\"stream\":true,\"system\":[{\"type\":\"text\",\"text\":"
    "\"sys\"}],\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}}],"
    "\"tool_choice\":{\"type\":\"tool\",\"name\":\"f\"},\"messages\":["
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image\","
    "\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"iVBOR\"}}]},"
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"b\"},{\"type\":"
    "\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{\"k\":[1,2,3]}}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
    "\"content\":[{\"type\":\"text\",\"text\":\"r\"}]},{\"type\":\"text\",\"text\":\"c\"}]}]}";

static const char *const torture_resp =
    "{\"id\":\"chatcmpl-z\",\"model\":\"m\",\"choices\":[{\"message\":{\"content\":\"hi\","
    "\"reasoning_content\":\"t\",\"tool_calls\":[{\"id\":\"c\",\"function\":{\"name\":\"f\","
    "\"arguments\":\"{\\\"a\\\":{\\\"b\\\":[1]}}\"}}]},\"finish_reason\":\"tool_calls\"}],"
    "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}";

LX_TEST(alloc_failures_request_response)
{
    int successes[3] = {0};
    for (long n = 0; n < 400; n++) {
        for (int which = 0; which < 3; which++) {
            struct lx_buf out;
            lx_buf_init(&out, 1 << 20);
            struct lx_error err = {0};
            lx_alloc_fail_after(n, 0);
            int rc = which == 0 ? ad->translate_request(lx_str_c(torture_req), &out, &err)
                     : which == 1
                         ? ad->translate_response(lx_str_c(torture_resp), &out, &err)
                         : lx_client_anthropic_count_tokens(lx_str_c(torture_req), &out, &err);
            lx_alloc_fail_after(-1, 0);
            if (rc == 0) {
                successes[which]++;
                cJSON *j = cJSON_ParseWithLength(out.data, out.len);
                LX_CHECK(j != NULL);
                cJSON_Delete(j);
            } else {
                LX_CHECK_INT(rc, LX_ENOMEM);
                LX_CHECK_INT(out.len, 0);
                LX_CHECK(err.msg[0] != '\0');
            }
            lx_buf_fini(&out);
        }
    }
    LX_CHECK(successes[0] > 0 && successes[1] > 0 && successes[2] > 0);
}

LX_TEST(alloc_failures_stream)
{
    const char *const events[] = {
        CHUNK("{\"content\":\"Hi\"}", "null"),
        CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"name\":\"f\","
              "\"arguments\":\"{}\"}}]}",
              "null"),
        CHUNK("{}", "\"tool_calls\""),
        usage_chunk,
        "[DONE]",
        NULL,
    };
    int successes = 0;
    for (long n = 0; n < 200; n++) {
        struct lx_arena arena;
        lx_arena_init(&arena, NULL, 0, 4096);
        struct lx_buf out;
        lx_buf_init(&out, 1 << 20);
        lx_alloc_fail_after(n, 0);
        void *st = ad->stream_new(&arena, NULL);
        int rc = st ? 0 : LX_ENOMEM;
        for (size_t i = 0; events[i] && !rc; i++) {
            struct lx_error err = {0};
            size_t before = out.len;
            rc = ad->translate_event(st, lx_str_c(events[i]), &out, &err);
            if (rc) {
                LX_CHECK_INT(rc, LX_ENOMEM);
                LX_CHECK_INT(out.len, before);
            }
        }
        lx_alloc_fail_after(-1, 0);
        successes += rc == 0;
        if (st) {
            ad->stream_free(st);
        }
        lx_buf_fini(&out);
        lx_arena_fini(&arena);
    }
    LX_CHECK(successes > 0);
}

LX_TEST_MAIN(LX_RUN(req_basic_and_system), LX_RUN(req_multi_turn), LX_RUN(req_images_documents),
             LX_RUN(req_tools_and_tool_choice), LX_RUN(req_tool_use_round_trip),
             LX_RUN(req_parameters), LX_RUN(req_invalid), LX_RUN(req_too_big), LX_RUN(resp_text),
             LX_RUN(resp_tool_calls), LX_RUN(resp_finish_reasons), LX_RUN(resp_malformed),
             LX_RUN(error_bodies), LX_RUN(stream_text), LX_RUN(stream_tool_calls),
             LX_RUN(stream_thinking_and_length), LX_RUN(stream_edge_cases),
             LX_RUN(stream_error_event), LX_RUN(stream_malformed), LX_RUN(count_tokens),
             LX_RUN(alloc_failures_request_response), LX_RUN(alloc_failures_stream))
