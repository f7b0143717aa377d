/*
 * The ledger's store sink: one transaction per batch that inserts the
 * lx_spend_logs rows (ON CONFLICT (request_id) DO NOTHING, so a replayed
 * record is not counted twice) and adds the spend of the rows not applied
 * yet to their key, user, team and team member, then marks them applied.
 * Under PostgreSQL's read committed, another instance's concurrent batch
 * only ever sees its own unapplied rows: every batch marks the rows it
 * inserted before it commits.
 */
#include <string.h>

#include "core/alloc.h"
#include "spend/ledger.h"

static const char insert_sql[] =
    "INSERT INTO lx_spend_logs (request_id, call_type, api_key, key_alias, user_id, team_id,"
    " end_user, model, model_group, model_id, custom_llm_provider, api_base, prompt_tokens,"
    " completion_tokens, total_tokens, cache_read_tokens, spend_nanos, start_time_ms,"
    " end_time_ms, status, cache_hit, applied) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
    " $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, 0)"
    " ON CONFLICT (request_id) DO NOTHING";

/* Add the spend of rows not applied yet to their key, user, team and team member; mark them. */
static const char apply_keys_sql[] =
    "UPDATE lx_keys SET spend_nanos = spend_nanos + (SELECT COALESCE(SUM(s.spend_nanos), 0)"
    " FROM lx_spend_logs s WHERE s.applied = 0 AND s.api_key = lx_keys.token)"
    " WHERE token IN (SELECT api_key FROM lx_spend_logs WHERE applied = 0)";
static const char apply_users_sql[] =
    "UPDATE lx_users SET spend_nanos = spend_nanos + (SELECT COALESCE(SUM(s.spend_nanos), 0)"
    " FROM lx_spend_logs s WHERE s.applied = 0 AND s.user_id = lx_users.user_id)"
    " WHERE user_id IN (SELECT user_id FROM lx_spend_logs WHERE applied = 0)";
static const char apply_teams_sql[] =
    "UPDATE lx_teams SET spend_nanos = spend_nanos + (SELECT COALESCE(SUM(s.spend_nanos), 0)"
    " FROM lx_spend_logs s WHERE s.applied = 0 AND s.team_id = lx_teams.team_id)"
    " WHERE team_id IN (SELECT team_id FROM lx_spend_logs WHERE applied = 0)";
static const char apply_members_sql[] =
    "UPDATE lx_team_members SET spend_nanos = spend_nanos + (SELECT COALESCE(SUM(s.spend_nanos),"
    " 0) FROM lx_spend_logs s WHERE s.applied = 0 AND s.team_id = lx_team_members.team_id"
    " AND s.user_id = lx_team_members.user_id) WHERE team_id IN (SELECT team_id FROM"
    " lx_spend_logs WHERE applied = 0)";
static const char apply_global_sql[] =
    "UPDATE lx_spend_totals SET spend_nanos = spend_nanos + (SELECT COALESCE(SUM(spend_nanos), 0)"
    " FROM lx_spend_logs WHERE applied = 0) WHERE scope = 'global'";
static const char mark_sql[] = "UPDATE lx_spend_logs SET applied = 1 WHERE applied = 0";

#define N_COLS 21

int lx_ledger_store_sink(void *ud, const struct lx_spend_record *recs, size_t n,
                         struct lx_error *err)
{
    struct lx_store *store = ud;
    size_t n_stmts = n + 6;
    struct lx_store_stmt *stmts = lx_calloc(n_stmts, sizeof(*stmts));
    struct lx_store_param *params = lx_calloc(n * N_COLS, sizeof(*params));
    for (size_t i = 0; i < n; i++) {
        const struct lx_spend_record *r = &recs[i];
        struct lx_store_param *p = &params[i * N_COLS];
        const struct lx_store_param row[N_COLS] = {
            LX_SP_T(r->request_id),
            LX_SP_T(r->call_type),
            LX_SP_T(r->api_key),
            LX_SP_T(r->key_alias),
            LX_SP_T(r->user_id),
            LX_SP_T(r->team_id),
            LX_SP_T(r->end_user),
            LX_SP_T(r->model),
            LX_SP_T(r->model_group),
            LX_SP_T(r->model_id),
            LX_SP_T(r->custom_llm_provider),
            LX_SP_T(r->api_base),
            LX_SP_I(r->prompt_tokens),
            LX_SP_I(r->completion_tokens),
            LX_SP_I(r->total_tokens),
            LX_SP_I(r->cache_read_tokens),
            LX_SP_I(r->spend_nanos),
            LX_SP_I(r->start_time_ms),
            LX_SP_I(r->end_time_ms),
            LX_SP_T(lx_spend_status(r)),
            LX_SP_I(r->cache_hit ? 1 : 0),
        };
        memcpy(p, row, sizeof(row));
        stmts[i] = (struct lx_store_stmt){insert_sql, p, N_COLS};
    }
    stmts[n] = (struct lx_store_stmt){apply_keys_sql, NULL, 0};
    stmts[n + 1] = (struct lx_store_stmt){apply_users_sql, NULL, 0};
    stmts[n + 2] = (struct lx_store_stmt){apply_teams_sql, NULL, 0};
    stmts[n + 3] = (struct lx_store_stmt){apply_members_sql, NULL, 0};
    stmts[n + 4] = (struct lx_store_stmt){apply_global_sql, NULL, 0};
    stmts[n + 5] = (struct lx_store_stmt){mark_sql, NULL, 0};
    int rc = lx_store_exec_sync(store, stmts, n_stmts, NULL, err);
    lx_free(params);
    lx_free(stmts);
    return rc;
}
