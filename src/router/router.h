/*
 * Deployment choice within a model group. For now: simple-shuffle, a
 * weighted random pick (litellm_params.weight, else rpm, else tpm, else
 * uniform), as LiteLLM's default strategy.
 */
#ifndef LX_ROUTER_ROUTER_H
#define LX_ROUTER_ROUTER_H

#include "config/config.h"

/* A deployment of the group; never NULL for a group with deployments. */
const struct lx_deployment *lx_router_pick(const struct lx_model_group *group);

#endif
