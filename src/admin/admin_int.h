/*
 * Shared between the files of the admin module: the route handlers the
 * dispatch table in admin.c points to, one group per file.
 */
#ifndef LX_ADMIN_ADMIN_INT_H
#define LX_ADMIN_ADMIN_INT_H

#include "admin/admin.h"

/* Decode %XX and '+' into out (NUL-terminated); false on a bad escape, a NUL byte or no room. */
bool lx_admin__url_decode(struct lx_str in, char *out, size_t cap);
/* The raw value of `name` in a query string ("" for "name" alone), or p == NULL when absent. */
struct lx_str lx_admin__query_find(struct lx_str q, const char *name);

/* The {key} of a /key/{key}/regenerate path (with or without /v1), or p == NULL. */
struct lx_str lx_admin__path_key(struct lx_str path);
/* v as compact JSON text in the context's arena; NULL for NULL or out of memory. */
const char *lx_admin__print(struct lx_admin_ctx *ctx, const cJSON *v);

/* keys.c */
void lx_admin__key_generate(struct lx_admin_ctx *ctx);
void lx_admin__key_info(struct lx_admin_ctx *ctx);
void lx_admin__key_update(struct lx_admin_ctx *ctx);
void lx_admin__key_delete(struct lx_admin_ctx *ctx);
void lx_admin__key_regenerate(struct lx_admin_ctx *ctx);
void lx_admin__key_list(struct lx_admin_ctx *ctx);
void lx_admin__key_block(struct lx_admin_ctx *ctx);
void lx_admin__key_unblock(struct lx_admin_ctx *ctx);

/* users.c */
void lx_admin__user_new(struct lx_admin_ctx *ctx);
void lx_admin__user_info(struct lx_admin_ctx *ctx);
void lx_admin__user_update(struct lx_admin_ctx *ctx);
void lx_admin__user_delete(struct lx_admin_ctx *ctx);
void lx_admin__user_list(struct lx_admin_ctx *ctx);
/* An id (user, team): 1 to 512 characters, no control characters. */
bool lx_admin__valid_id(const char *s);
/* Field readers on top of lx_admin_field_*: same contract (-1 = answered 400). */
int lx_admin__field_id(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                       const char **out, bool *out_present);
int lx_admin__field_limit(struct lx_admin_ctx *ctx, const cJSON *obj, const char *name,
                          long long *out, bool *out_present);
int lx_admin__field_role(struct lx_admin_ctx *ctx, const cJSON *obj, const char **out,
                         bool *out_present);

/* teams.c */
void lx_admin__team_new(struct lx_admin_ctx *ctx);
void lx_admin__team_info(struct lx_admin_ctx *ctx);
void lx_admin__team_update(struct lx_admin_ctx *ctx);
void lx_admin__team_delete(struct lx_admin_ctx *ctx);
void lx_admin__team_list(struct lx_admin_ctx *ctx);
void lx_admin__team_member_add(struct lx_admin_ctx *ctx);
void lx_admin__team_member_delete(struct lx_admin_ctx *ctx);
void lx_admin__team_block(struct lx_admin_ctx *ctx);
void lx_admin__team_unblock(struct lx_admin_ctx *ctx);

/* models.c */
void lx_admin__model_new(struct lx_admin_ctx *ctx);
void lx_admin__model_info(struct lx_admin_ctx *ctx);
void lx_admin__model_delete(struct lx_admin_ctx *ctx);
void lx_admin__model_update(struct lx_admin_ctx *ctx);

/* rows.c: helpers of the user, team and model handlers */
/* Unix seconds as "2026-11-21T08:00:00Z". */
void lx_admin__iso_time(int64_t s, char out[32]);
/*
 * One store row as JSON: *_nanos columns as USD without the suffix, times as
 * ISO 8601, JSON columns parsed, integer and boolean columns typed. Columns
 * named in `skip` (NULL-terminated; may be NULL) are left out.
 */
cJSON *lx_admin__row_json(const struct lx_store_result *r, size_t row, const char *const *skip);
/* A copy in the context's arena (NULL stays NULL). */
const char *lx_admin__dup(struct lx_admin_ctx *ctx, const char *s);
/* The handler's state: size zeroed bytes in the context's arena, set as ctx->ud. */
void *lx_admin__state(struct lx_admin_ctx *ctx, size_t size);
/* A batch of statements whose arrays live in the context's arena. */
struct lx_admin__batch {
    struct lx_admin_ctx *ctx;
    struct lx_store_stmt *stmts;
    size_t n, cap;
};
void lx_admin__batch_init(struct lx_admin__batch *b, struct lx_admin_ctx *ctx, size_t cap);
/* Append a statement; returns its n_params parameters, all NULL, to fill. */
struct lx_store_param *lx_admin__batch_add(struct lx_admin__batch *b, const char *sql,
                                           size_t n_params);
/* Append an empty statement slot (for lx_admin_audit_stmt). */
struct lx_store_stmt *lx_admin__batch_slot(struct lx_admin__batch *b);
/* Append an audit row; before and after are stored as their JSON text (NULL stays NULL). */
void lx_admin__batch_audit(struct lx_admin__batch *b, const char *action, const char *table,
                           const char *id, const cJSON *before, const cJSON *after);
/* Append a statement whose n parameters are the strings ids[0..n-1]. */
void lx_admin__batch_add_ids(struct lx_admin__batch *b, const char *sql, const char *const *ids,
                             size_t n);
/* Run the batch (lx_admin_exec, lx_admin_run). */
void lx_admin__batch_exec(struct lx_admin__batch *b, lx_store_cb cb);
void lx_admin__batch_run(struct lx_admin__batch *b, lx_admin_result_cb cb);
/*
 * An UPDATE's parameter for a column of the row read before (row 0 of r):
 * the body's value when present (an int < 0 is NULL), else the row's.
 */
struct lx_store_param lx_admin__keep_text(const struct lx_store_result *r, const char *col,
                                          const char *v, bool present);
struct lx_store_param lx_admin__keep_int(const struct lx_store_result *r, const char *col,
                                         long long v, bool present);
/*
 * head + "($first,...,$first+n-1)" + tail in the context's arena: the SQL
 * lives until the answer, after the statement ran.
 */
const char *lx_admin__sql_in(struct lx_admin_ctx *ctx, const char *head, size_t first, size_t n,
                             const char *tail);
/* A list of non-empty strings (at most max) copied into the arena; -1 = answered 400. */
int lx_admin__strlist(struct lx_admin_ctx *ctx, const cJSON *body, const char *name, size_t max,
                      const char ***out, size_t *out_n, bool *out_present);
void lx_admin__add_strlist(cJSON *o, const char *name, const char *const *items, size_t n);

/* The model access, budget and rate-limit fields of users and teams. */
struct lx_admin__limits {
    const char *models, *metadata; /* JSON text */
    const char *budget_duration;
    long long budget_s;
    int64_t max_budget, soft_budget; /* nano-USD */
    long long rpm, tpm, mpr;         /* rpm_limit, tpm_limit, max_parallel_requests */
    bool has_models, has_metadata, has_budget_duration, has_max_budget, has_soft_budget;
    bool has_rpm, has_tpm, has_mpr;
};
/* Nothing present; the budgets and limits LX_NO_LIMIT. */
void lx_admin__limits_init(struct lx_admin__limits *l);
/*
 * Read the fields of a body in the order models, metadata, budget_duration,
 * rpm_limit, tpm_limit, max_parallel_requests, max_budget, soft_budget
 * (-1 = answered 400). An explicit "max_budget": null is present, as no limit
 * (LiteLLM clears the budget).
 */
int lx_admin__field_limits(struct lx_admin_ctx *ctx, const cJSON *body, struct lx_admin__limits *l);
/*
 * The parameters of the columns models, max_budget_nanos, soft_budget_nanos,
 * budget_duration, budget_reset_at, rpm_limit, tpm_limit and
 * max_parallel_requests, in this order: of a new record when before is NULL
 * (what is absent is NULL), else of an update of before's row 0 (what is
 * absent keeps the row's value). A budget_duration given restarts the budget
 * period at now.
 */
void lx_admin__limits_params(const struct lx_admin__limits *l, const struct lx_store_result *before,
                             int64_t now, struct lx_store_param p[8]);

/*
 * /user/delete and /team/delete: the records named by a list of ids go with
 * their keys and team memberships, in one batch with an audit row per record.
 * What differs between the two is in the table.
 */
struct lx_admin__owner {
    const char *table;       /* "lx_users" */
    const char *id_col;      /* "user_id", also the column of lx_keys and lx_team_members */
    const char *ids_field;   /* the body's list: "user_ids" */
    const char *noun;        /* in messages: "User" */
    const char *kind;        /* in messages: "user" */
    const char *audit_after; /* the audit rows' updated_values: "{}" or NULL */
    lx_admin_result_cb done; /* answers; ctx->ud is the struct lx_admin__delete */
};
struct lx_admin__delete {
    const struct lx_admin__owner *owner;
    const char **ids;
    size_t n;
};
void lx_admin__delete_owners(struct lx_admin_ctx *ctx, const struct lx_admin__owner *o);

#endif
