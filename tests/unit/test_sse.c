/*
 * Unit tests for the SSE parser and encoder. Every parser case is run with
 * the stream in one piece, one byte at a time, and split at every position
 * (twice for the multi-event stream); all runs must see the same events, the
 * same result and the same truncation flag.
 */
#include "core/buf.h"
#include "core/error.h"
#include "http/sse.h"
#include "lx_test.h"

/* Events serialised as "name|data|id;" with lengths, so any byte is safe. */
struct collect {
    struct lx_buf log;
    int count;
    int stop_at; /* return 42 from the stop_at-th event (0-based); -1 never */
};

static void collect_init(struct collect *c)
{
    lx_buf_init(&c->log, 1 << 20);
    c->count = 0;
    c->stop_at = -1;
}

static int on_event(void *ud, const struct lx_sse_event *ev)
{
    struct collect *c = ud;
    int rc = lx_buf_append(&c->log, "[", 1);
    rc = rc ? rc : lx_buf_append_str(&c->log, ev->name);
    rc = rc ? rc : lx_buf_append(&c->log, "|", 1);
    rc = rc ? rc : lx_buf_append_str(&c->log, ev->data);
    rc = rc ? rc : lx_buf_append(&c->log, "|", 1);
    rc = rc ? rc : lx_buf_append_str(&c->log, ev->id);
    rc = rc ? rc : lx_buf_append(&c->log, "]", 1);
    LX_CHECK_INT(rc, 0);
    return c->count++ == c->stop_at ? 42 : 0;
}

struct outcome {
    int rc;
    bool truncated;
};

/* Feed input split at the given cut points (ascending, within [0, n]). */
static struct outcome run_cuts(const char *in, size_t n, const size_t *cuts, size_t n_cuts,
                               size_t max, struct collect *c)
{
    struct lx_sse_parser p;
    struct outcome o = {0, false};
    lx_sse_init(&p, max);
    size_t at = 0;
    for (size_t i = 0; i <= n_cuts && o.rc == 0; i++) {
        size_t to = i < n_cuts ? cuts[i] : n;
        o.rc = lx_sse_feed(&p, in + at, to - at, on_event, c);
        at = to;
    }
    int frc = lx_sse_finish(&p, &o.truncated);
    LX_CHECK_INT(frc, o.rc);
    lx_sse_fini(&p);
    return o;
}

static struct outcome run_bytes(const char *in, size_t n, size_t max, struct collect *c)
{
    struct lx_sse_parser p;
    struct outcome o = {0, false};
    lx_sse_init(&p, max);
    for (size_t i = 0; i < n && o.rc == 0; i++) {
        o.rc = lx_sse_feed(&p, in + i, 1, on_event, c);
    }
    int frc = lx_sse_finish(&p, &o.truncated);
    LX_CHECK_INT(frc, o.rc);
    lx_sse_fini(&p);
    return o;
}

/* Check that every way of splitting in gives the one-piece result. */
static void check_splits(const char *in, size_t n, size_t max, int three_way)
{
    struct collect ref, c;
    collect_init(&ref);
    struct outcome r = run_cuts(in, n, NULL, 0, max, &ref);

    collect_init(&c);
    struct outcome o = run_bytes(in, n, max, &c);
    LX_CHECK(lx_str_eq(lx_buf_str(&c.log), lx_buf_str(&ref.log)));
    LX_CHECK_INT(o.rc, r.rc);
    LX_CHECK_INT(o.truncated, r.truncated);
    lx_buf_fini(&c.log);

    for (size_t i = 0; i <= n; i++) {
        for (size_t j = three_way ? i : n; j <= n; j++) {
            size_t cuts[2] = {i, j};
            collect_init(&c);
            o = run_cuts(in, n, cuts, 2, max, &c);
            bool same = lx_str_eq(lx_buf_str(&c.log), lx_buf_str(&ref.log)) && o.rc == r.rc &&
                        o.truncated == r.truncated;
            if (!same) {
                fprintf(stderr, "  split %zu,%zu of \"%.*s\": got %.*s rc %d\n", i, j, (int)n, in,
                        (int)c.log.len, c.log.data ? c.log.data : "", o.rc);
            }
            LX_CHECK(same);
            lx_buf_fini(&c.log);
        }
    }
    lx_buf_fini(&ref.log);
}

struct sse_case {
    const char *in;
    size_t n; /* 0: strlen(in) */
    const char *events;
    bool truncated;
};

static const struct sse_case cases[] = {
    {"data: hello\n\n", 0, "[|hello|]", false},
    {"data: a\r\n\r\ndata: b\r\n\r\n", 0, "[|a|][|b|]", false},
    {"data: a\r\rdata: b\r\r", 0, "[|a|][|b|]", false},
    {"data: a\r\n\ndata: b\r\r\n", 0, "[|a|][|b|]", false},
    {"data: a\n\r\n", 0, "[|a|]", false},
    {"\n\n\r\ndata: a\n\n", 0, "[|a|]", false},
    {": ping\n\ndata: x\n\n: bye\n", 0, "[|x|]", false},
    {":\n\n", 0, "", false},
    {"\xEF\xBB\xBF"
     "data: x\n\n",
     0, "[|x|]", false},
    /* Only a BOM at the very start is skipped; elsewhere it is part of a field name. */
    {"data: a\n\n\xEF\xBB\xBF"
     "data: b\n\n",
     0, "[|a|]", false},
    {"\xEF\xBB\xBF\xEF\xBB\xBF"
     "data: x\n\n",
     0, "", false},
    {"\xEF\xBBx: 1\ndata: y\n\n", 0, "[|y|]", false},
    {"\xEF\xBB\n", 0, "", false},
    {"\xEF\xBB", 0, "", true},
    {"data: a\ndata: b\ndata:\n\n", 0, "[|a\nb\n|]", false},
    {"data:x\n\ndata:  y\n\n", 0, "[|x|][| y|]", false},
    {"data\n\n", 0, "[||]", false},
    {"data:\n\n", 0, "[||]", false},
    {"data: a:b: c\n\n", 0, "[|a:b: c|]", false},
    {"event: ping\n\n", 0, "", false},
    {"event: a\n\ndata: x\n\n", 0, "[|x|]", false},
    {"event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
     "event: content_block_delta\ndata: {\"delta\":{\"text\":\"Hi\"}}\n\n",
     0,
     "[message_start|{\"type\":\"message_start\"}|]"
     "[content_block_delta|{\"delta\":{\"text\":\"Hi\"}}|]",
     false},
    {"data: {\"choices\":[]}\n\ndata: [DONE]\n\n", 0, "[|{\"choices\":[]}|][|[DONE]|]", false},
    {"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", 0, "[|a|1][|b|1][|c|]", false},
    {"id: 7\ndata: a\n\nid: 8\0x\ndata: b\n\n", 32, "[|a|7][|b|7]", false},
    {"retry: 1000\nfoo: bar\nDATA: no\ndata : no\ndata: a\n\n", 0, "[|a|]", false},
    {"data: a\n", 0, "", true},
    {"data: a", 0, "", true},
    {"data: a\r", 0, "", true},
    {"event: x\n", 0, "", true},
    {": comment", 0, "", true},
    {"data: a\n\n: c\n", 0, "[|a|]", false},
    {"id: 5\n", 0, "", false},
    {"data: a\0b\n\n", 11, "[|a\0b|]", false},
};

LX_TEST(sse_table_all_splits)
{
    for (size_t i = 0; i < LX_ARRAY_LEN(cases); i++) {
        const struct sse_case *tc = &cases[i];
        size_t n = tc->n ? tc->n : strlen(tc->in);
        struct collect c;
        collect_init(&c);
        struct outcome o = run_cuts(tc->in, n, NULL, 0, 4096, &c);
        size_t en = strlen(tc->events);
        if (i == LX_ARRAY_LEN(cases) - 1) {
            en = 7; /* embedded NUL */
        }
        bool ok = c.log.len == en && memcmp(c.log.data ? c.log.data : "", tc->events, en) == 0;
        if (!ok) {
            fprintf(stderr, "  case %zu: got \"%.*s\"\n", i, (int)c.log.len,
                    c.log.data ? c.log.data : "");
        }
        LX_CHECK(ok);
        LX_CHECK_INT(o.rc, 0);
        LX_CHECK_INT(o.truncated, tc->truncated);
        lx_buf_fini(&c.log);
        check_splits(tc->in, n, 4096, 0);
    }
}

static const char openai_stream[] =
    ": OPENROUTER PROCESSING\r\n\r\n"
    "data: "
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-"
    "4o\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
    "data: "
    "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\\nlo\"}}]}\n\n"
    "event: error\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n"
    "id: 9\rdata: x\r\r"
    "data: [DONE]\n\n";

LX_TEST(sse_stream_three_way_splits)
{
    struct collect c;
    collect_init(&c);
    struct outcome o = run_cuts(openai_stream, sizeof(openai_stream) - 1, NULL, 0, 4096, &c);
    LX_CHECK_INT(o.rc, 0);
    LX_CHECK_INT(o.truncated, 0);
    LX_CHECK_INT(c.count, 5);
    LX_CHECK(strstr(c.log.data, "[error|{\"a\":\n1}|]") != NULL);
    LX_CHECK(strstr(c.log.data, "[|x|9][|[DONE]|9]") != NULL);
    lx_buf_fini(&c.log);
    check_splits(openai_stream, sizeof(openai_stream) - 1, 4096, 1);
}

static int check_borrowed(void *ud, const struct lx_sse_event *ev)
{
    const struct lx_str *in = ud;
    LX_CHECK(ev->data.p >= in->p && ev->data.p + ev->data.n <= in->p + in->n);
    LX_CHECK(ev->name.n == 0 || (ev->name.p >= in->p && ev->name.p < in->p + in->n));
    return 0;
}

/* A whole event inside one feed is passed as slices of it: no copy, no heap. */
LX_TEST(sse_zero_copy_fast_path)
{
    static const char in[] = "event: delta\ndata: {\"x\":1}\n\ndata: [DONE]\n\n";
    struct lx_str s = LX_STR(in);
    struct lx_sse_parser p;
    lx_sse_init(&p, 1024);
    long before = lx_alloc_live();
    for (int i = 0; i < 3; i++) {
        LX_CHECK_INT(lx_sse_feed(&p, s.p, s.n, check_borrowed, &s), 0);
    }
    LX_CHECK_INT(lx_alloc_live(), before);
    LX_CHECK_INT(lx_sse_finish(&p, NULL), 0);
    lx_sse_fini(&p);
}

LX_TEST(sse_cap_exceeded)
{
    /* A line over the cap. */
    static const char long_line[] = "data: a\n\ndata: 0123456789abcdef\n\ndata: b\n\n";
    struct collect c;
    collect_init(&c);
    struct outcome o = run_cuts(long_line, sizeof(long_line) - 1, NULL, 0, 16, &c);
    LX_CHECK_INT(o.rc, LX_ETOOBIG);
    LX_CHECK_STR(c.log.data, "[|a|]");
    lx_buf_fini(&c.log);
    check_splits(long_line, sizeof(long_line) - 1, 16, 0);

    /* Lines within the cap whose joined data is over it. */
    static const char joined[] = "data: 12345\ndata: 12345\n\ndata: 1\ndata: 2\ndata: 3\n\n"
                                 "data: 12345\ndata: 12345\ndata: 1\n\n";
    collect_init(&c);
    o = run_cuts(joined, sizeof(joined) - 1, NULL, 0, 12, &c);
    LX_CHECK_INT(o.rc, LX_ETOOBIG);
    LX_CHECK_STR(c.log.data, "[|12345\n12345|][|1\n2\n3|]");
    lx_buf_fini(&c.log);
    check_splits(joined, sizeof(joined) - 1, 12, 0);

    /* An unterminated line over the cap fails as soon as it is seen. */
    struct lx_sse_parser p;
    lx_sse_init(&p, 8);
    LX_CHECK_INT(lx_sse_feed(&p, "data: 1234", 10, on_event, NULL), LX_ETOOBIG);
    LX_CHECK_INT(lx_sse_feed(&p, "\n\n", 2, on_event, NULL), LX_ETOOBIG); /* sticky */
    bool truncated = false;
    LX_CHECK_INT(lx_sse_finish(&p, &truncated), LX_ETOOBIG);
    LX_CHECK(truncated);
    /* finish resets: the parser takes a new stream. */
    collect_init(&c);
    LX_CHECK_INT(lx_sse_feed(&p, "data: ok\n\n", 10, on_event, &c), 0);
    LX_CHECK_STR(c.log.data, "[|ok|]");
    LX_CHECK_INT(lx_sse_finish(&p, &truncated), 0);
    LX_CHECK(!truncated);
    lx_buf_fini(&c.log);
    lx_sse_fini(&p);
}

LX_TEST(sse_callback_stops)
{
    static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    struct collect c;
    collect_init(&c);
    c.stop_at = 1;
    struct lx_sse_parser p;
    lx_sse_init(&p, 64);
    LX_CHECK_INT(lx_sse_feed(&p, in, sizeof(in) - 1, on_event, &c), 42);
    LX_CHECK_STR(c.log.data, "[|1|][|2|]");
    LX_CHECK_INT(lx_sse_feed(&p, in, sizeof(in) - 1, on_event, &c), 42);
    LX_CHECK_INT(c.count, 2);
    LX_CHECK_INT(lx_sse_finish(&p, NULL), 42);
    lx_sse_fini(&p);
    lx_buf_fini(&c.log);

    /* Byte by byte, and with the stop inside a carried-over line. */
    for (size_t cut = 0; cut < sizeof(in); cut++) {
        size_t cuts[1] = {cut};
        collect_init(&c);
        c.stop_at = 1;
        struct outcome o = run_cuts(in, sizeof(in) - 1, cuts, 1, 64, &c);
        LX_CHECK_INT(o.rc, 42);
        LX_CHECK_STR(c.log.data, "[|1|][|2|]");
        lx_buf_fini(&c.log);
    }
}

LX_TEST(sse_finish_reports_truncation)
{
    struct lx_sse_parser p;
    struct collect c;
    collect_init(&c);
    lx_sse_init(&p, 64);
    bool truncated = true;
    LX_CHECK_INT(lx_sse_finish(&p, &truncated), 0); /* empty stream */
    LX_CHECK(!truncated);
    LX_CHECK_INT(lx_sse_feed(&p, "data: a\n\ndata: {\"par", 20, on_event, &c), 0);
    LX_CHECK_INT(lx_sse_finish(&p, &truncated), 0);
    LX_CHECK(truncated);
    LX_CHECK_STR(c.log.data, "[|a|]");
    /* The reset dropped the partial event. */
    LX_CHECK_INT(lx_sse_feed(&p, "data: b\n\n", 9, on_event, &c), 0);
    LX_CHECK_STR(c.log.data, "[|a|][|b|]");
    LX_CHECK_INT(lx_sse_feed(&p, "data: c\r", 8, on_event, &c), 0);
    LX_CHECK_INT(lx_sse_feed(&p, "\n\r", 2, on_event, &c), 0);
    LX_CHECK_INT(lx_sse_finish(&p, &truncated), 0);
    LX_CHECK(!truncated);
    LX_CHECK_STR(c.log.data, "[|a|][|b|][|c|]");
    lx_sse_fini(&p);
    lx_buf_fini(&c.log);
}

struct enc_case {
    const char *name;
    const char *data;
    const char *wire;   /* NULL: not checked */
    const char *parsed; /* data after parsing */
};

static const struct enc_case enc_cases[] = {
    {"", "{\"a\":1}", "data: {\"a\":1}\n\n", "{\"a\":1}"},
    {"message_start", "{}", "event: message_start\ndata: {}\n\n", "{}"},
    {"", "", "data: \n\n", ""},
    {"", "a\nb", "data: a\ndata: b\n\n", "a\nb"},
    {"", "a\r\nb\rc\n", "data: a\ndata: b\ndata: c\ndata: \n\n", "a\nb\nc\n"},
    {"", "\n", "data: \ndata: \n\n", "\n"},
    {"", "\r\n\r\n", NULL, "\n\n"},
    {"x", " lead", "event: x\ndata:  lead\n\n", " lead"},
    {"", ":not a comment", NULL, ":not a comment"},
    {"", "data: nested\n\ndata: x", NULL, "data: nested\n\ndata: x"},
    {"e:v", "\r", NULL, "\n"},
};

static int expect_one(void *ud, const struct lx_sse_event *ev)
{
    struct collect *c = ud;
    c->count++;
    return lx_buf_append_str(&c->log, ev->data) ? -1 : 0;
}

LX_TEST(sse_encoder_round_trip)
{
    for (size_t i = 0; i < LX_ARRAY_LEN(enc_cases); i++) {
        const struct enc_case *tc = &enc_cases[i];
        struct lx_buf out;
        lx_buf_init(&out, 4096);
        LX_CHECK_INT(lx_sse_append_event(&out, lx_str_c(tc->name), lx_str_c(tc->data)), 0);
        if (tc->wire) {
            LX_CHECK_STR(out.data, tc->wire);
        }
        struct lx_sse_parser p;
        struct collect c;
        collect_init(&c);
        lx_sse_init(&p, 4096);
        LX_CHECK_INT(lx_sse_feed(&p, out.data, out.len, expect_one, &c), 0);
        bool truncated = true;
        LX_CHECK_INT(lx_sse_finish(&p, &truncated), 0);
        LX_CHECK(!truncated);
        LX_CHECK_INT(c.count, 1);
        LX_CHECK_MEM(c.log.data ? c.log.data : "", c.log.len, tc->parsed);
        lx_sse_fini(&p);
        lx_buf_fini(&c.log);
        lx_buf_fini(&out);
    }
}

LX_TEST(sse_encoder_errors)
{
    struct lx_buf out;
    lx_buf_init(&out, 20);
    LX_CHECK_INT(lx_buf_append_c(&out, "keep"), 0);
    LX_CHECK_INT(lx_sse_append_event(&out, LX_STR("a\nb"), LX_STR("x")), LX_EINVAL);
    LX_CHECK_INT(lx_sse_append_event(&out, LX_STR("a\rb"), LX_STR("x")), LX_EINVAL);
    /* "data: 0123456789\n\n" is 18 bytes: over the 16 left. */
    LX_CHECK_INT(lx_sse_append_event(&out, LX_STR_NULL, LX_STR("0123456789")), LX_ETOOBIG);
    LX_CHECK_STR(out.data, "keep");
    LX_CHECK_INT(lx_sse_append_event(&out, LX_STR_NULL, LX_STR("01234567")), 0);
    LX_CHECK_INT(out.len, 20);
    LX_CHECK_INT(lx_sse_append_event(&out, LX_STR_NULL, LX_STR_NULL), LX_ETOOBIG);
    lx_buf_fini(&out);

    lx_buf_init(&out, 1024);
    lx_alloc_fail_after(0, 0);
    LX_CHECK_INT(lx_sse_append_event(&out, LX_STR("e"), LX_STR("x")), LX_ENOMEM);
    LX_CHECK_INT(out.len, 0);
    LX_CHECK_INT(lx_sse_append_event(&out, LX_STR("e"), LX_STR("x")), 0);
    lx_buf_fini(&out);
}

/* With every allocation from the k-th on failing, a split stream either parses
 * fully or stops with LX_ENOMEM, and nothing leaks. */
LX_TEST(sse_alloc_failures)
{
    static const char in[] = "\xEF\xBB\xBF"
                             "id: 1\nevent: e\ndata: a\ndata: b\n\ndata: c\n\n";
    size_t n = sizeof(in) - 1;
    struct collect ref;
    collect_init(&ref);
    size_t cuts[2] = {2, 20};
    struct outcome r = run_cuts(in, n, cuts, 2, 256, &ref);
    LX_CHECK_INT(r.rc, 0);
    LX_CHECK_STR(ref.log.data, "[e|a\nb|1][|c|1]");
    bool completed = false;
    for (long k = 0; k < 64 && !completed; k++) {
        for (int mode = 0; mode < 2; mode++) {
            struct collect c;
            collect_init(&c);
            if (lx_buf_reserve(&c.log, 256)) {
                LX_CHECK(0);
            }
            lx_alloc_fail_after(k, 1);
            struct outcome o = mode ? run_bytes(in, n, 256, &c) : run_cuts(in, n, cuts, 2, 256, &c);
            lx_alloc_fail_after(-1, 0);
            if (o.rc == 0) {
                LX_CHECK(lx_str_eq(lx_buf_str(&c.log), lx_buf_str(&ref.log)));
                completed = mode == 1;
            } else {
                LX_CHECK_INT(o.rc, LX_ENOMEM);
            }
            lx_buf_fini(&c.log);
        }
    }
    LX_CHECK(completed);
    lx_buf_fini(&ref.log);
}

LX_TEST_MAIN(LX_RUN(sse_table_all_splits), LX_RUN(sse_stream_three_way_splits),
             LX_RUN(sse_zero_copy_fast_path), LX_RUN(sse_cap_exceeded), LX_RUN(sse_callback_stops),
             LX_RUN(sse_finish_reports_truncation), LX_RUN(sse_encoder_round_trip),
             LX_RUN(sse_encoder_errors), LX_RUN(sse_alloc_failures))
