/* simple-shuffle: weights from weight, rpm or tpm, in that order of preference. */
#include "router/router.h"

#include "core/rand.h"

static double weight_of(const struct lx_deployment *d, int basis)
{
    switch (basis) {
    case 0:
        return d->weight > 0 ? d->weight : 0;
    case 1:
        return d->rpm > 0 ? (double)d->rpm : 0;
    default:
        return d->tpm > 0 ? (double)d->tpm : 0;
    }
}

const struct lx_deployment *lx_router_pick(const struct lx_model_group *group)
{
    if (group->n == 1) {
        return group->deployments[0];
    }
    /* Weights are used only when some deployment sets them explicitly. */
    int basis = -1;
    for (size_t i = 0; i < group->n && basis < 0; i++) {
        if (group->deployments[i]->weight != 1.0) {
            basis = 0;
        }
    }
    for (size_t i = 0; i < group->n && basis < 0; i++) {
        if (group->deployments[i]->rpm > 0) {
            basis = 1;
        }
    }
    for (size_t i = 0; i < group->n && basis < 0; i++) {
        if (group->deployments[i]->tpm > 0) {
            basis = 2;
        }
    }
    if (basis >= 0) {
        double total = 0;
        for (size_t i = 0; i < group->n; i++) {
            total += weight_of(group->deployments[i], basis);
        }
        if (total > 0) {
            double r = (double)lx_rand_below(1u << 30) / (double)(1u << 30) * total;
            for (size_t i = 0; i < group->n; i++) {
                r -= weight_of(group->deployments[i], basis);
                if (r < 0) {
                    return group->deployments[i];
                }
            }
            return group->deployments[group->n - 1];
        }
    }
    return group->deployments[lx_rand_below(group->n)];
}
