/*
 * The store's schema, as versioned migrations. A migration, once released,
 * never changes: a change is a new migration with the next version.
 *
 * Conventions (both engines): money is BIGINT nano-USD (`*_nanos`; 1 USD =
 * 1e9), so sums are exact; times are BIGINT unix seconds (`*_at`, `expires`)
 * or milliseconds (`*_ms`); booleans are INTEGER 0/1; lists and documents
 * are JSON text (`models` is a JSON array of model names, "[]" = all
 * models). NULL means "not set" (no budget, no limit, never expires).
 *
 * lx_keys.token is the SHA-256 (lower-case hex) of the key; the key itself is
 * never stored. key_name is the masked form shown in listings ("sk-...wxyz").
 *
 * lx_spend_logs.request_id is the primary key so that replaying the spend
 * journal after a crash inserts nothing twice (INSERT ... ON CONFLICT DO
 * NOTHING). `applied` = 0 marks rows whose spend has not been added to
 * their key, user and team yet: a ledger batch inserts its rows, adds the
 * sums of the unapplied rows to lx_keys / lx_users / lx_teams and marks them
 * applied, in one transaction (v2: and to the `global` row of lx_spend_totals,
 * so a global total is one row, not a scan).
 */
#include "core/compiler.h"
#include "store/store.h"

static const char v1_sql[] =
    "CREATE TABLE lx_users ("
    " user_id TEXT PRIMARY KEY,"
    " user_email TEXT,"
    " user_alias TEXT,"
    " user_role TEXT NOT NULL DEFAULT 'internal_user',"
    " models TEXT NOT NULL DEFAULT '[]',"
    " max_budget_nanos BIGINT,"
    " soft_budget_nanos BIGINT,"
    " spend_nanos BIGINT NOT NULL DEFAULT 0,"
    " budget_duration TEXT,"
    " budget_reset_at BIGINT,"
    " rpm_limit BIGINT,"
    " tpm_limit BIGINT,"
    " max_parallel_requests BIGINT,"
    " metadata TEXT NOT NULL DEFAULT '{}',"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL"
    ");"
    "CREATE TABLE lx_teams ("
    " team_id TEXT PRIMARY KEY,"
    " team_alias TEXT,"
    " models TEXT NOT NULL DEFAULT '[]',"
    " max_budget_nanos BIGINT,"
    " soft_budget_nanos BIGINT,"
    " spend_nanos BIGINT NOT NULL DEFAULT 0,"
    " budget_duration TEXT,"
    " budget_reset_at BIGINT,"
    " rpm_limit BIGINT,"
    " tpm_limit BIGINT,"
    " max_parallel_requests BIGINT,"
    " blocked INTEGER NOT NULL DEFAULT 0,"
    " metadata TEXT NOT NULL DEFAULT '{}',"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL"
    ");"
    "CREATE TABLE lx_team_members ("
    " team_id TEXT NOT NULL REFERENCES lx_teams(team_id) ON DELETE CASCADE,"
    " user_id TEXT NOT NULL,"
    " role TEXT NOT NULL DEFAULT 'user',"
    " max_budget_nanos BIGINT,"
    " spend_nanos BIGINT NOT NULL DEFAULT 0,"
    " created_at BIGINT NOT NULL,"
    " PRIMARY KEY (team_id, user_id)"
    ");"
    "CREATE INDEX lx_team_members_user ON lx_team_members(user_id);"
    "CREATE TABLE lx_keys ("
    " token TEXT PRIMARY KEY,"
    " key_name TEXT NOT NULL,"
    " key_alias TEXT UNIQUE,"
    " user_id TEXT,"
    " team_id TEXT,"
    " models TEXT NOT NULL DEFAULT '[]',"
    " max_budget_nanos BIGINT,"
    " soft_budget_nanos BIGINT,"
    " spend_nanos BIGINT NOT NULL DEFAULT 0,"
    " budget_duration TEXT,"
    " budget_reset_at BIGINT,"
    " rpm_limit BIGINT,"
    " tpm_limit BIGINT,"
    " max_parallel_requests BIGINT,"
    " model_rpm_limit TEXT,"
    " model_tpm_limit TEXT,"
    " expires BIGINT,"
    " blocked INTEGER NOT NULL DEFAULT 0,"
    " metadata TEXT NOT NULL DEFAULT '{}',"
    " created_by TEXT,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL,"
    " last_used_at BIGINT"
    ");"
    "CREATE INDEX lx_keys_user ON lx_keys(user_id);"
    "CREATE INDEX lx_keys_team ON lx_keys(team_id);"
    "CREATE TABLE lx_models ("
    " model_id TEXT PRIMARY KEY,"
    " model_name TEXT NOT NULL,"
    " litellm_params TEXT NOT NULL,"
    " model_info TEXT NOT NULL DEFAULT '{}',"
    " created_by TEXT,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL"
    ");"
    "CREATE TABLE lx_audit_log ("
    " id TEXT PRIMARY KEY,"
    " changed_at BIGINT NOT NULL,"
    " changed_by TEXT,"
    " action TEXT NOT NULL,"
    " table_name TEXT NOT NULL,"
    " object_id TEXT,"
    " before_value TEXT,"
    " updated_values TEXT"
    ");"
    "CREATE INDEX lx_audit_log_at ON lx_audit_log(changed_at);"
    "CREATE TABLE lx_spend_logs ("
    " request_id TEXT PRIMARY KEY,"
    " call_type TEXT NOT NULL,"
    " api_key TEXT,"
    " key_alias TEXT,"
    " user_id TEXT,"
    " team_id TEXT,"
    " end_user TEXT,"
    " model TEXT,"
    " model_group TEXT,"
    " model_id TEXT,"
    " custom_llm_provider TEXT,"
    " api_base TEXT,"
    " prompt_tokens BIGINT NOT NULL DEFAULT 0,"
    " completion_tokens BIGINT NOT NULL DEFAULT 0,"
    " total_tokens BIGINT NOT NULL DEFAULT 0,"
    " cache_read_tokens BIGINT NOT NULL DEFAULT 0,"
    " spend_nanos BIGINT NOT NULL DEFAULT 0,"
    " start_time_ms BIGINT NOT NULL,"
    " end_time_ms BIGINT NOT NULL,"
    " status TEXT NOT NULL,"
    " cache_hit INTEGER NOT NULL DEFAULT 0,"
    " applied INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX lx_spend_logs_key ON lx_spend_logs(api_key, start_time_ms);"
    "CREATE INDEX lx_spend_logs_user ON lx_spend_logs(user_id, start_time_ms);"
    "CREATE INDEX lx_spend_logs_time ON lx_spend_logs(start_time_ms);"
    "CREATE INDEX lx_spend_logs_unapplied ON lx_spend_logs(applied) WHERE applied = 0;";

/*
 * Running totals the ledger keeps in the same transaction as the rows, so a
 * total never needs a scan of lx_spend_logs (scope 'global': every row).
 */
static const char v2_sql[] = "CREATE TABLE lx_spend_totals ("
                             " scope TEXT PRIMARY KEY,"
                             " spend_nanos BIGINT NOT NULL DEFAULT 0"
                             ");"
                             "INSERT INTO lx_spend_totals (scope, spend_nanos)"
                             " SELECT 'global', COALESCE(SUM(spend_nanos), 0) FROM lx_spend_logs;";

const struct lx_store_migration lx_store_migrations[] = {
    {1, "keys, users, teams, models, audit log, spend logs", v1_sql},
    {2, "spend totals", v2_sql},
};

const size_t lx_store_n_migrations = LX_ARRAY_LEN(lx_store_migrations);
