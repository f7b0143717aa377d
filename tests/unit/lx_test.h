/*
 * A header-only unit-test harness. A test file defines functions with
 * LX_TEST(name), lists them in LX_TEST_MAIN(...), and the binary prints one
 * line per failure and a last line "N passed, N failed". Each test checks
 * that it returns the live allocation count to where it started.
 */
#ifndef LX_TEST_H
#define LX_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

static int lx_test_failures_;
static int lx_test_current_failed_;

#define LX_TEST(name) static void name(void)

#define LX_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                      \
            lx_test_current_failed_ = 1;                                                           \
        }                                                                                          \
    } while (0)

#define LX_CHECK_INT(a, b)                                                                         \
    do {                                                                                           \
        long long lx_a_ = (long long)(a), lx_b_ = (long long)(b);                                  \
        if (lx_a_ != lx_b_) {                                                                      \
            fprintf(stderr, "  FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b, \
                    lx_a_, lx_b_);                                                                 \
            lx_test_current_failed_ = 1;                                                           \
        }                                                                                          \
    } while (0)

#define LX_CHECK_DBL(a, b)                                                                         \
    do {                                                                                           \
        double lx_a_ = (a), lx_b_ = (b);                                                           \
        if (fabs(lx_a_ - lx_b_) > 1e-9 * (fabs(lx_b_) + 1)) {                                      \
            fprintf(stderr, "  FAIL %s:%d: %s == %s (%g != %g)\n", __FILE__, __LINE__, #a, #b,     \
                    lx_a_, lx_b_);                                                                 \
            lx_test_current_failed_ = 1;                                                           \
        }                                                                                          \
    } while (0)

#define LX_CHECK_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *lx_a_ = (a), *lx_b_ = (b);                                                     \
        if (!lx_a_ || !lx_b_ || strcmp(lx_a_, lx_b_) != 0) {                                       \
            fprintf(stderr, "  FAIL %s:%d: %s == %s (\"%s\" != \"%s\")\n", __FILE__, __LINE__, #a, \
                    #b, lx_a_ ? lx_a_ : "(null)", lx_b_ ? lx_b_ : "(null)");                       \
            lx_test_current_failed_ = 1;                                                           \
        }                                                                                          \
    } while (0)

/* Compare a (pointer, length) slice with a C string. */
#define LX_CHECK_MEM(p, n, b)                                                                      \
    do {                                                                                           \
        const char *lx_p_ = (const char *)(p), *lx_b_ = (b);                                       \
        size_t lx_n_ = (n);                                                                        \
        if (!lx_p_ || lx_n_ != strlen(lx_b_) || memcmp(lx_p_, lx_b_, lx_n_) != 0) {                \
            fprintf(stderr, "  FAIL %s:%d: %s == \"%s\" (got \"%.*s\")\n", __FILE__, __LINE__, #p, \
                    lx_b_, lx_p_ ? (int)lx_n_ : 6, lx_p_ ? lx_p_ : "(null)");                      \
            lx_test_current_failed_ = 1;                                                           \
        }                                                                                          \
    } while (0)

static inline int lx_test_run_(const char *name, void (*fn)(void))
{
    long before = lx_alloc_live();
    lx_test_current_failed_ = 0;
    fn();
    long after = lx_alloc_live();
    if (after != before) {
        fprintf(stderr, "  FAIL %s: leaked %ld allocation(s)\n", name, after - before);
        lx_test_current_failed_ = 1;
    }
    if (lx_test_current_failed_) {
        fprintf(stderr, "FAILED %s\n", name);
        lx_test_failures_++;
        return 0;
    }
    return 1;
}

#define LX_RUN(fn) (passed += lx_test_run_(#fn, fn), total++)

#define LX_TEST_MAIN(...)                                                                          \
    int main(void)                                                                                 \
    {                                                                                              \
        int passed = 0, total = 0;                                                                 \
        lx_alloc_hook_cjson();                                                                     \
        __VA_ARGS__;                                                                               \
        printf("%d passed, %d failed\n", passed, total - passed);                                  \
        return passed == total ? 0 : 1;                                                            \
    }

#endif
