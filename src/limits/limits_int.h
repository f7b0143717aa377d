/* Shared between the limits module, its unit tests and its fuzz target. */
#ifndef LX_LIMITS_LIMITS_INT_H
#define LX_LIMITS_LIMITS_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "limits/limits.h"

/*
 * The admission script. KEYS: for each scope its request counter then its
 * token counter. ARGV: for each scope its rpm then tpm limit (-1 = none),
 * then the keys' TTL in seconds. Returns {ok, scope (1-based, 0 when ok),
 * kind (1 rpm, 2 tpm), then per scope: requests (after the increment when
 * ok), tokens}.
 */
extern const char lx_limits__script[];

struct lx_limits__admit_reply {
    bool ok;
    int bad; /* 0-based refused scope; -1 when ok */
    enum lx_limits_kind kind;
    long long requests[LX_LIMITS_MAX_SCOPES];
    long long tokens[LX_LIMITS_MAX_SCOPES];
};

/*
 * Decode the script's reply for n scopes. Returns 0, or LX_EUPSTREAM when
 * the reply does not have the script's shape (wrong type, count, or range).
 */
int lx_limits__decode_admit(const redisReply *rep, size_t n, struct lx_limits__admit_reply *out);

/* A Redis error reply saying the script is not loaded (EVALSHA → EVAL). */
bool lx_limits__is_noscript(const redisReply *rep);

/* An integer reply's value, or -1 when the reply is not a non-negative integer. */
long long lx_limits__int_reply(const redisReply *rep);

#endif
