/*
 * Budgets: max_budget and soft_budget on keys, users and teams, the global
 * litellm_settings.max_budget, and budget_duration resets.
 *
 * A scope's current spend is what the store said plus what this process has
 * spent since and the store does not show yet:
 *
 *     spend = base + committed_since_base + pending
 *
 * where `pending` is journaled by this process and not yet committed (added
 * when a call is recorded, before its response completes, so the next
 * request already sees it), `base` the scope's spend_nanos as last read,
 * and `committed_since_base` what this process committed after that read.
 * The base is the newer of two reads: the caller's identity (read by auth,
 * refreshed after its TTL) and the ledger thread's own read, which it makes
 * right after each batch that touched a scope with a budget (one indexed
 * SELECT per scope). So one instance is exact, and other instances' spend
 * shows within a batch of theirs and our next read.
 *
 * A request is refused (400, budget_exceeded) when spend >= max_budget at
 * its start; calls already running finish, so the overshoot is at most the
 * calls in flight when the budget ran out.
 *
 * With Redis (spend/shared.h), instances also share per-scope counters of
 * the current budget period, and a check uses
 *
 *     spend = max(local view above, the scope's counter as last read)
 *
 * or the counter alone when it carries an admin reset mark newer than the
 * local view's store read (that view predates the reset). Admission reads
 * the counters just before the check, so other instances' spend counts at
 * once, not after their batch and our next read. The counter noted is only
 * the last one Redis returned (lx_budget_note_shared); a reset on this
 * instance drops it. Without Redis, or while it is down, the local view
 * (with the last counters seen) decides, as above.
 *
 * A reset sets a scope's spend_nanos to minus what this process still has
 * pending for it: those calls ran before the reset and belong to the old
 * period, and their commits bring the scope back to 0. Resets run on the
 * ledger thread, between batches, so no commit of ours races them.
 *
 * Resets: once a second the ledger thread zeroes spend_nanos and advances
 * budget_reset_at (now + budget_duration) for the keys, users and teams whose
 * reset time passed (guarded on the old budget_reset_at, so two instances
 * reset a scope once), sets budget_reset_at for scopes that have a duration
 * but no reset time yet, and drops the cached identities of what it reset.
 *
 * All functions are thread-safe (one mutex); lx_budget_tick runs on the
 * ledger thread only.
 */
#ifndef LX_SPEND_BUDGET_H
#define LX_SPEND_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/identity.h"
#include "config/config.h"
#include "spend/journal.h"
#include "store/store.h"

enum lx_budget_scope {
    LX_BUDGET_KEY,
    LX_BUDGET_USER,
    LX_BUDGET_TEAM,
};

struct lx_budget;

/* store may be NULL (no refreshes, no resets: tests). */
struct lx_budget *lx_budget_new(struct lx_store *store);
void lx_budget_free(struct lx_budget *b);

/*
 * Check the caller's budgets (key, user, team, then global) at the start of
 * a call. Returns 0, or LX_EBUDGET with msg filled with LiteLLM's wording:
 * "Budget has been exceeded! Current cost: X, Max budget: Y". Logs a soft
 * budget crossing once per scope and budget period. Any thread.
 */
int lx_budget_check(struct lx_budget *b, const struct lx_config *cfg, const struct lx_identity *id,
                    char *msg, size_t msg_cap);

/*
 * A scope's current spend, given the store's value read at read_at_ms
 * (monotonic; 0 when unknown). Any thread.
 */
int64_t lx_budget_spend(struct lx_budget *b, enum lx_budget_scope kind, const char *id,
                        int64_t store_spend, int64_t read_at_ms);

/*
 * The local view of a scope (what lx_budget_spend returns) and, in
 * *out_read_wall_ms, the wall-clock ms of the store read it rests on (0 when
 * none). Any thread.
 */
int64_t lx_budget_local_view(struct lx_budget *b, enum lx_budget_scope kind, const char *id,
                             int64_t store_spend, int64_t read_at_ms, int64_t *out_read_wall_ms);
/* The local view of the global total. Any thread. */
int64_t lx_budget_local_global(struct lx_budget *b);

/*
 * What Redis said about a scope's shared counter (spend/shared.h): it exists
 * (else value is ignored) with `value` nano-USD for the budget period
 * `period` (the scope's budget_reset_at; 0 without one), and the last admin
 * reset was at mark_ms (wall ms; 0 = none). Checks of the same period then
 * use max(local view, value), or value alone when mark_ms is newer than the
 * local view's store read. Any thread.
 */
void lx_budget_note_shared(struct lx_budget *b, enum lx_budget_scope kind, const char *id,
                           int64_t period, bool exists, int64_t value, int64_t mark_ms);
void lx_budget_note_shared_global(struct lx_budget *b, bool exists, int64_t value);

/* Spend journaled by this process and not committed yet, over every scope. */
int64_t lx_budget_pending_global(struct lx_budget *b);

/*
 * Ask the ledger thread to reset a scope's spend (POST /user/reset_budget).
 * Returns a ticket for lx_budget_reset_poll. Any thread.
 */
uint64_t lx_budget_request_reset(struct lx_budget *b, enum lx_budget_scope kind, const char *id);

/*
 * Whether the reset of `ticket` ran: false while queued. Once it ran, fills
 * *out_rc (0 or the store's error), *out_found (the scope's row existed),
 * *out_max_budget (nano-USD, LX_NO_LIMIT when unset) and *out_reset_at
 * (unix seconds, 0 when unset), and forgets the ticket. Any thread.
 */
bool lx_budget_reset_poll(struct lx_budget *b, uint64_t ticket, int *out_rc, bool *out_found,
                          int64_t *out_max_budget, int64_t *out_reset_at);

/* Called when a reset is queued, to wake the thread that runs lx_budget_tick. */
typedef void (*lx_budget_wake_fn)(void *ud);
void lx_budget_set_waker(struct lx_budget *b, lx_budget_wake_fn fn, void *ud);

/* ---- ledger hooks ---- */

/* A record was journaled by this process (its spend becomes pending). Any thread. */
void lx_budget_on_record(struct lx_budget *b, const struct lx_spend_record *r);
/* A record was committed; own = it was journaled by this process. Ledger thread. */
void lx_budget_on_commit(struct lx_budget *b, const struct lx_spend_record *r, bool own);
/* Re-read the scopes committed to, the global total, and run due resets. Ledger thread. */
void lx_budget_tick(struct lx_budget *b);

#endif
