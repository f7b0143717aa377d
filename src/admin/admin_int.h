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

/* teams.c */

/* models.c */

#endif
