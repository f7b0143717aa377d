/*
 * Cost arithmetic (integers only) and USD formatting.
 */
#include "spend/cost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

static int64_t sat_mul(int64_t tokens, int64_t price)
{
    int64_t r;
    if (tokens <= 0 || price <= 0) {
        return 0;
    }
    return __builtin_mul_overflow(tokens, price, &r) ? INT64_MAX : r;
}

int64_t lx_cost_pico(const struct lx_price *p, const struct lx_usage *u)
{
    int64_t cached = u->cache_read_tokens > 0 ? u->cache_read_tokens : 0;
    int64_t created = u->cache_creation_tokens > 0 ? u->cache_creation_tokens : 0;
    /* Cached and created tokens are parts of prompt_tokens; never bill them twice. */
    if (cached > u->prompt_tokens) {
        cached = u->prompt_tokens > 0 ? u->prompt_tokens : 0;
    }
    if (created > u->prompt_tokens - cached) {
        created = u->prompt_tokens - cached > 0 ? u->prompt_tokens - cached : 0;
    }
    int64_t plain = u->prompt_tokens - cached - created;
    int64_t cr = p->cache_read_pico >= 0 ? p->cache_read_pico : p->input_pico;
    int64_t cc = p->cache_creation_pico >= 0 ? p->cache_creation_pico : p->input_pico;
    int64_t sum = sat_mul(plain, p->input_pico);
    sum = sat_add(sum, sat_mul(cached, cr));
    sum = sat_add(sum, sat_mul(created, cc));
    sum = sat_add(sum, sat_mul(u->completion_tokens, p->output_pico));
    return sum;
}

int64_t lx_cost_nanos(const struct lx_price *p, const struct lx_usage *u)
{
    int64_t pico = lx_cost_pico(p, u);
    if (pico == INT64_MAX) {
        return INT64_MAX / 1000;
    }
    return pico / 1000 + (pico % 1000 >= 500 ? 1 : 0);
}

int64_t lx_cost_for_deployment(const struct lx_deployment *dep, const char *upstream_model,
                               const struct lx_usage *u)
{
    struct lx_price p;
    if (!lx_price_resolve(lx_prices_builtin(), dep, upstream_model, &p, NULL)) {
        lx_prices_warn_unknown(upstream_model ? upstream_model : dep->upstream_model);
        return 0;
    }
    return lx_cost_nanos(&p, u);
}

size_t lx_cost_format_usd(int64_t nanos, char *buf, size_t cap)
{
    if (cap == 0) {
        return 0;
    }
    if (nanos <= 0) {
        int n = snprintf(buf, cap, "0.0");
        return (size_t)n < cap ? (size_t)n : cap - 1;
    }
    /*
     * Python prints the shortest decimal that reads back as the same double.
     * The exact value is nanos x 1e-9; with at most 15 significant digits
     * (DBL_DIG) it is that shortest decimal, since no two decimals of 15
     * digits or fewer read as one double: integer work only, the usual case.
     */
    char digits[24];
    size_t nd = 0;
    long exp10;
    char tmp[24];
    size_t nt = 0;
    for (int64_t v = nanos; v > 0; v /= 10) {
        tmp[nt++] = (char)('0' + v % 10);
    }
    exp10 = (long)nt - 1 - 9;
    while (nt > 0) {
        digits[nd++] = tmp[--nt];
    }
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    if (nd > 15) {
        /* Shortest round-trip digits found the slow way. */
        double v = (double)nanos / (double)LX_NANO_PER_USD;
        char e[40];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(e, sizeof(e), "%.*e", prec - 1, v);
            if (strtod(e, NULL) == v) {
                break;
            }
        }
        /* e is "d.ddde[+-]XX": collect the digits and the exponent. */
        nd = 0;
        const char *q = e;
        for (; *q && *q != 'e'; q++) {
            if (*q >= '0' && *q <= '9' && nd < sizeof(digits) - 1) {
                digits[nd++] = *q;
            }
        }
        exp10 = *q == 'e' ? strtol(q + 1, NULL, 10) : 0;
        while (nd > 1 && digits[nd - 1] == '0') {
            nd--;
        }
    }
    digits[nd] = '\0';
    char out[64];
    size_t o = 0;
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (long i = -1; i > exp10; i--) {
                out[o++] = '0';
            }
            memcpy(out + o, digits, nd);
            o += nd;
        } else {
            size_t int_digits = (size_t)exp10 + 1;
            for (size_t i = 0; i < int_digits; i++) {
                out[o++] = i < nd ? digits[i] : '0';
            }
            out[o++] = '.';
            if (nd > int_digits) {
                memcpy(out + o, digits + int_digits, nd - int_digits);
                o += nd - int_digits;
            } else {
                out[o++] = '0';
            }
        }
        out[o] = '\0';
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, nd - 1);
            o += nd - 1;
        }
        out[o] = '\0';
        snprintf(out + o, sizeof(out) - o, "e%c%02ld", exp10 < 0 ? '-' : '+',
                 exp10 < 0 ? -exp10 : exp10);
        o = strlen(out);
    }
    size_t n = o < cap ? o : cap - 1;
    memcpy(buf, out, n);
    buf[n] = '\0';
    return n;
}
