/* Shared between the limits module, its unit tests and its fuzz target. */
#ifndef LX_LIMITS_LIMITS_INT_H
#define LX_LIMITS_LIMITS_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "limits/limits.h"

/*
 * The admission script. KEYS: for each scope its request counter then its
 * token counter, then for each budget its counter and reset mark. ARGV: for
 * each scope its rpm then tpm limit (-1 = none), the keys' TTL in seconds,
 * for each budget its max, the local view and the local view's read (wall
 * ms), then the number of budgets. Returns {ok, scope or budget (1-based,
 * budgets after the scopes; 0 when ok), kind (1 rpm, 2 tpm, 4 budget), then
 * per scope: requests (after the increment when ok), tokens; then per
 * budget: counter exists (0/1), counter, mark}.
 */
extern const char lx_limits__script[];

struct lx_limits__admit_reply {
    bool ok;
    int bad; /* 0-based refused scope; -1 when ok */
    enum lx_limits_kind kind;
    long long requests[LX_LIMITS_MAX_SCOPES];
    long long tokens[LX_LIMITS_MAX_SCOPES];
    bool b_exists[LX_LIMITS_MAX_BUDGETS];
    long long b_value[LX_LIMITS_MAX_BUDGETS];
    long long b_mark[LX_LIMITS_MAX_BUDGETS];
};

/*
 * Decode the script's reply for n scopes. Returns 0, or LX_EUPSTREAM when
 * the reply does not have the script's shape (wrong type, count, or range).
 */
int lx_limits__decode_admit(const redisReply *rep, size_t n, struct lx_limits__admit_reply *out);
/* The same for n scopes and m budgets. */
int lx_limits__decode_admit_b(const redisReply *rep, size_t n, size_t m,
                              struct lx_limits__admit_reply *out);

/* A Redis error reply saying the script is not loaded (EVALSHA → EVAL). */
bool lx_limits__is_noscript(const redisReply *rep);

/* An integer reply's value, or -1 when the reply is not a non-negative integer. */
long long lx_limits__int_reply(const redisReply *rep);

#endif
