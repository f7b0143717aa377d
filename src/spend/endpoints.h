/*
 * The spend endpoints, as admin routes (admin/admin.h):
 *
 *   GET  /user/spend           the caller's user (admins: ?user_id=): user_id,
 *                              total_spend, max_budget, budget_reset_at
 *   GET  /global/spend         admin read: spend of every call, max_budget
 *   POST /user/reset_budget    admin: {"user_id"} -> the user's spend is 0
 *   GET  /spend/logs           rows of lx_spend_logs, filtered by api_key,
 *                              user_id, request_id, start_date, end_date
 *                              (non-admins: their own key's rows only)
 *   GET  /global/spend/keys    admin read: keys by spend (?limit=, default 5)
 *   GET  /global/spend/models  admin read: models by spend (?limit=, default 5)
 *
 * Money is USD in JSON. Spend shown includes what this process has spent and
 * not committed to the store yet (see spend/budget.h), so a caller sees its
 * last call at once.
 */
#ifndef LX_SPEND_ENDPOINTS_H
#define LX_SPEND_ENDPOINTS_H

#include <stdint.h>

#include "admin/admin.h"
#include "spend/budget.h"

/* The process's budgets, for the spend shown (NULL: store values only). Set at start. */
void lx_spend_endpoints_set_budget(struct lx_budget *b);

/*
 * A key's, user's or team's spend to show, from a spend_nanos the caller
 * just read from the store: adds what this process has spent and not
 * committed yet (for /key/info, /user/info...). Any thread.
 */
int64_t lx_spend_current(enum lx_budget_scope kind, const char *id, int64_t store_spend);

void lx_spend_user_spend(struct lx_admin_ctx *ctx);
void lx_spend_global_spend(struct lx_admin_ctx *ctx);
void lx_spend_user_reset_budget(struct lx_admin_ctx *ctx);
void lx_spend_logs(struct lx_admin_ctx *ctx);
void lx_spend_global_keys(struct lx_admin_ctx *ctx);
void lx_spend_global_models(struct lx_admin_ctx *ctx);

#endif
