/*
 * Budgets exact across instances: spend shared through Redis.
 *
 * When Redis is configured (the rate limiter's link, see limits.h), every
 * recorded call with a cost adds it to one counter per budget scope of the
 * caller that has a max_budget (key, user, team) and to the global counter
 * when litellm_settings.max_budget is set:
 *
 *     lx:sp:k:<token>:<period>     lx:sp:u:<user_id>:<period>
 *     lx:sp:t:<team_id>:<period>   lx:sp:g:0
 *
 * where <period> is the scope's budget_reset_at (0 without a duration), so a
 * duration reset starts a fresh counter. TTL: 60 s past the period's end, or
 * 30 days (renewed by every add) without a duration.
 *
 * Counters start from the store's view: the add is one script that, in one
 * atomic step, sets counter = max(counter + delta, floor), where floor is the
 * recording instance's local view of the scope (store read + its own pending
 * spend, this call included; spend/budget.h), and creates a missing counter
 * at floor. So a counter is never below any instance's view at its last
 * record, and it misses nothing recorded while it existed.
 *
 * An admin reset (/user/reset_budget) sets the counter to the resetting
 * instance's view after the reset and writes a reset mark (wall ms) beside
 * it (`<counter>:reset`). An instance whose local view rests on a store read
 * older than the mark knows that view predates the reset: its checks use the
 * counter alone, and its adds do not raise the counter to its stale floor,
 * until its next store read.
 *
 * Admission reads the counters (and marks) of the caller's budget scopes in
 * one MGET, only for requests that have a max_budget somewhere and only while
 * the link is up; the check then uses max(local view, counter) (budget.h).
 *
 * Races and their outcome (never an under-count beyond what today's local
 * view already misses):
 * - two instances creating a counter: the script is atomic; the second adds.
 * - calls recorded while Redis was down, or before a restarted Redis has the
 *   counter: missing from the counter until their instance's next add raises
 *   it to that instance's floor; every check also takes the local view, which
 *   holds them once committed and re-read.
 * - Redis down: checks use the local view and the last counter values seen
 *   (a counter never goes down within a period but by a reset); no client
 *   error. Adds are not retried: the next add re-floors the counter.
 * - an add that reaches Redis after its record was committed and re-read by
 *   another instance that then floored the counter may count that call twice
 *   in the counter (an over-count, needs a 100 ms Redis delay).
 *
 * Everything runs on a worker's loop thread; nothing blocks it.
 */
#ifndef LX_SPEND_SHARED_H
#define LX_SPEND_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "auth/identity.h"
#include "config/config.h"
#include "core/compiler.h"
#include "redis/redis.h"
#include "spend/budget.h"

/*
 * The Redis link of the calling loop thread (the worker's rate-limit link,
 * borrowed; NULL = none). The proxy sets it before serving each request.
 */
void lx_spend_shared_use(struct lx_redis *r);

/* The caller has a max_budget somewhere (key, user, team or global). */
bool lx_spend_shared_applies(const struct lx_config *cfg, const struct lx_identity *id);

struct lx_spend_fetch;
typedef void (*lx_spend_fetch_cb)(void *ud);

/*
 * Read the shared counters of the caller's budget scopes into b. Returns
 * LX_EAGAIN when a read was sent: `cb` runs exactly once later (on a reply,
 * an error or a timeout; the counters seen are noted in b) unless cancelled,
 * and *out_fetch is the handle to cancel. Returns 0 when nothing is to be
 * read (no budget, no link, link down): check at once. Loop thread.
 */
int lx_spend_shared_fetch(struct lx_budget *b, const struct lx_config *cfg,
                          const struct lx_identity *id, lx_spend_fetch_cb cb, void *ud,
                          struct lx_spend_fetch **out_fetch);
/* The callback of a pending fetch will not run (its memory goes with the reply). */
void lx_spend_fetch_cancel(struct lx_spend_fetch *f);

/*
 * Add a recorded call's spend (already journaled, so pending in b) to the
 * shared counters of the caller's budget scopes. Fire and forget: the
 * replies update b's notes. Loop thread.
 */
void lx_spend_shared_record(struct lx_budget *b, const struct lx_config *cfg,
                            const struct lx_identity *id, int64_t spend_nanos);

/*
 * After an admin reset of a scope (its spend rewritten in the store and in
 * b): set its shared counter of `period` to this instance's view and write
 * the reset mark. Returns 0 and `cb` runs once the write is answered (or
 * failed), or LX_EUNAVAIL (no link; cb never runs). Loop thread.
 */
typedef void (*lx_spend_reset_cb)(void *ud);
int lx_spend_shared_reset(struct lx_budget *b, enum lx_budget_scope kind, const char *id,
                          int64_t period, lx_spend_reset_cb cb, void *ud);

/* ---- internals, for tests and the fuzz target ---- */

struct lx_spend_shared__val {
    bool exists;
    int64_t value;   /* the counter, nano-USD */
    int64_t mark_ms; /* the reset mark; 0 = none */
};

/*
 * Decode an MGET reply for n scopes (counter, mark per scope: nil or a
 * decimal integer). Returns 0 or LX_EUPSTREAM.
 */
int lx_spend_shared__decode_mget(const redisReply *rep, size_t n, struct lx_spend_shared__val *out);
/* Decode the add script's reply {counter, mark}. Returns 0 or LX_EUPSTREAM. */
int lx_spend_shared__decode_add(const redisReply *rep, struct lx_spend_shared__val *out);

extern const char lx_spend_shared__add_script[];
extern const char lx_spend_shared__reset_script[];

#endif
