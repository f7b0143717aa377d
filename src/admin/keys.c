/*
 * /key/... : LiteLLM's virtual-key admin routes.
 */
#include "admin/admin_int.h"

static void not_yet(struct lx_admin_ctx *ctx)
{
    lx_admin_respond_error(ctx, 501, "%s is not available yet", ctx->route->path);
}

void lx_admin__key_generate(struct lx_admin_ctx *ctx)
{
    not_yet(ctx);
}

void lx_admin__key_info(struct lx_admin_ctx *ctx)
{
    not_yet(ctx);
}

void lx_admin__key_update(struct lx_admin_ctx *ctx)
{
    not_yet(ctx);
}

void lx_admin__key_delete(struct lx_admin_ctx *ctx)
{
    not_yet(ctx);
}

void lx_admin__key_regenerate(struct lx_admin_ctx *ctx)
{
    not_yet(ctx);
}

void lx_admin__key_list(struct lx_admin_ctx *ctx)
{
    not_yet(ctx);
}

void lx_admin__key_block(struct lx_admin_ctx *ctx)
{
    not_yet(ctx);
}

void lx_admin__key_unblock(struct lx_admin_ctx *ctx)
{
    not_yet(ctx);
}
