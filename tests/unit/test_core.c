/* Unit tests for core: buffers, arenas, string slices, durations of ids. */
#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/rand.h"
#include "core/str.h"
#include "lx_test.h"

LX_TEST(buf_caps_and_grows)
{
    struct lx_buf b;
    lx_buf_init(&b, 10);
    LX_CHECK_INT(lx_buf_append(&b, "hello", 5), 0);
    LX_CHECK_INT(lx_buf_append(&b, "world", 5), 0);
    LX_CHECK_INT(lx_buf_append(&b, "!", 1), LX_ETOOBIG);
    LX_CHECK_MEM(b.data, b.len, "helloworld");
    LX_CHECK_INT(b.data[b.len], 0);
    lx_buf_consume(&b, 5);
    LX_CHECK_MEM(b.data, b.len, "world");
    LX_CHECK_INT(lx_buf_printf(&b, "%d", 42), 0);
    LX_CHECK_MEM(b.data, b.len, "world42");
    lx_buf_fini(&b);
}

LX_TEST(buf_printf_long)
{
    struct lx_buf b;
    lx_buf_init(&b, 1 << 20);
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    LX_CHECK_INT(lx_buf_printf(&b, "<%s>", big), 0);
    LX_CHECK_INT(b.len, 1001);
    LX_CHECK_INT(b.data[0], '<');
    LX_CHECK_INT(b.data[1000], '>');
    lx_buf_fini(&b);
}

LX_TEST(buf_alloc_failure)
{
    struct lx_buf b;
    lx_buf_init(&b, 1 << 20);
    lx_alloc_fail_after(0, 0);
    LX_CHECK_INT(lx_buf_append(&b, "x", 1), LX_ENOMEM);
    LX_CHECK_INT(b.len, 0);
    LX_CHECK_INT(lx_buf_append(&b, "x", 1), 0);
    lx_buf_fini(&b);
}

LX_TEST(arena_alignment_and_blocks)
{
    char first[64];
    struct lx_arena a;
    lx_arena_init(&a, first, sizeof(first), 256);
    char *p1 = lx_arena_alloc(&a, 3);
    char *p2 = lx_arena_alloc(&a, 8);
    LX_CHECK(((unsigned long)p2 & 15) == 0);
    LX_CHECK(p1 != p2);
    char *big = lx_arena_alloc(&a, 1000); /* dedicated block */
    memset(big, 1, 1000);
    char *p3 = lx_arena_alloc(&a, 100);
    memset(p3, 2, 100);
    LX_CHECK_STR(lx_arena_printf(&a, "%s-%d", "a", 7), "a-7");
    a.limit = a.total + 10;
    void *no = lx_arena_try_alloc(&a, 100);
    LX_CHECK(no == NULL);
    lx_arena_fini(&a);
    /* After fini the arena starts again from the caller's first block. */
    a.limit = 0;
    char *again = lx_arena_alloc(&a, 16);
    LX_CHECK(again >= first && again < first + sizeof(first));
    lx_arena_fini(&a);
}

LX_TEST(str_helpers)
{
    unsigned long long v = 0;
    LX_CHECK_INT(lx_str_to_u64(LX_STR("12345"), 100000, &v), 0);
    LX_CHECK_INT(v, 12345);
    LX_CHECK_INT(lx_str_to_u64(LX_STR("123456"), 100000, &v), -1);
    LX_CHECK_INT(lx_str_to_u64(LX_STR("18446744073709551616"), ~0ull, &v), -1);
    LX_CHECK_INT(lx_str_to_u64(LX_STR(""), 10, &v), -1);
    LX_CHECK_INT(lx_str_to_u64(LX_STR("1a"), 100, &v), -1);
    LX_CHECK_INT(lx_hex_digit('0'), 0);
    LX_CHECK_INT(lx_hex_digit('9'), 9);
    LX_CHECK_INT(lx_hex_digit('a'), 10);
    LX_CHECK_INT(lx_hex_digit('F'), 15);
    LX_CHECK_INT(lx_hex_digit('g'), -1);
    LX_CHECK_INT(lx_hex_digit('/'), -1);
    LX_CHECK_INT(lx_hex_digit('\0'), -1);
    struct lx_str t = lx_str_trim(LX_STR("  a b \t"));
    LX_CHECK_MEM(t.p, t.n, "a b");
    LX_CHECK(lx_str_case_eq(LX_STR("Content-Length"), LX_STR("content-length")));
}

LX_TEST(uuid_shape)
{
    char a[37], b[37];
    lx_uuid4(a);
    lx_uuid4(b);
    LX_CHECK_INT(strlen(a), 36);
    LX_CHECK_INT(a[14], '4');
    LX_CHECK(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');
    LX_CHECK(strcmp(a, b) != 0);
    for (int i = 0; i < 1000; i++) {
        LX_CHECK(lx_rand_below(7) < 7);
    }
}

LX_TEST(error_table)
{
    LX_CHECK_INT(lx_error_http_status(LX_ETOOBIG), 413);
    LX_CHECK_INT(lx_error_http_status(LX_EHEADERS), 431);
    LX_CHECK_INT(lx_error_http_status(LX_ETIMEDOUT), 504);
    LX_CHECK_STR(lx_error_type_for_status(401), "authentication_error");
    LX_CHECK_STR(lx_error_type_for_status(404), "invalid_request_error");
}

LX_TEST_MAIN(LX_RUN(buf_caps_and_grows), LX_RUN(buf_printf_long), LX_RUN(buf_alloc_failure),
             LX_RUN(arena_alignment_and_blocks), LX_RUN(str_helpers), LX_RUN(uuid_shape),
             LX_RUN(error_table))
