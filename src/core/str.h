/*
 * String slices: a pointer and a length, not NUL-terminated. Slices borrow
 * the memory they point into; their owner (a request arena, a config
 * snapshot) outlives them.
 */
#ifndef LX_CORE_STR_H
#define LX_CORE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

struct lx_str {
    const char *p;
    size_t n;
};

#define LX_STR(lit) ((struct lx_str){(lit), sizeof(lit) - 1})
#define LX_STR_NULL ((struct lx_str){NULL, 0})
/* printf("%.*s", LX_STR_FMT(s)) */
#define LX_STR_FMT(s) (int)(s).n, (s).p

static inline struct lx_str lx_str_c(const char *s)
{
    return (struct lx_str){s, s ? strlen(s) : 0};
}

static inline bool lx_str_eq(struct lx_str a, struct lx_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static inline bool lx_str_eq_c(struct lx_str a, const char *b)
{
    return lx_str_eq(a, lx_str_c(b));
}

static inline bool lx_str_case_eq(struct lx_str a, struct lx_str b)
{
    return a.n == b.n && (a.n == 0 || strncasecmp(a.p, b.p, a.n) == 0);
}

static inline bool lx_str_has_prefix(struct lx_str s, struct lx_str prefix)
{
    return s.n >= prefix.n && memcmp(s.p, prefix.p, prefix.n) == 0;
}

static inline struct lx_str lx_str_sub(struct lx_str s, size_t from)
{
    return from >= s.n ? (struct lx_str){s.p + s.n, 0} : (struct lx_str){s.p + from, s.n - from};
}

/* Leading and trailing spaces and tabs removed. */
struct lx_str lx_str_trim(struct lx_str s);

/*
 * Parse a non-negative decimal integer that fills the whole slice. Returns 0,
 * or -1 on empty input, a non-digit, or a value above max.
 */
int lx_str_to_u64(struct lx_str s, unsigned long long max, unsigned long long *out);

/* Value of a hexadecimal digit (either case), or -1. */
int lx_hex_digit(char c);

#endif
