/* layer_batchnorm.c — batch normalisation over channels (PyTorch BatchNorm2d on [C, H, W],
 * BatchNorm1d on [F]): weight, bias, and the buffers running_mean, running_var. */
#include "graph.h"

#include <stddef.h>

static const layer_opt opts[] = {
    {"momentum", LOPT_FLOAT, offsetof(layer, momentum), 0, 1, false, false, false,
     "a number in [0, 1]", NULL},
    {"eps", LOPT_FLOAT, offsetof(layer, eps), 0, 1, true, false, false, "a positive number", NULL},
};

static void defaults(layer *l)
{
    l->momentum = 0.1f;
    l->eps = 1e-5f;
}

static bool infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    if (in[0].rank == 2) {
        graft_diags_add(d, l->mark,
                        "%s: batchnorm normalises channels of [C, H, W] or [F], got tokens [%d, %d] "
                        "(use layernorm)",
                        l->name, in[0].d[0], in[0].d[1]);
        return false;
    }
    l->out = in[0];
    int c[1] = {in[0].d[0]};
    return layer_add_param(l, a, "weight", 1, c, false) && layer_add_param(l, a, "bias", 1, c, false) &&
           layer_add_param(l, a, "running_mean", 1, c, true) &&
           layer_add_param(l, a, "running_var", 1, c, true);
}

const layer_kind layer_batchnorm_kind = {
    .type = GRAFT_LAYER_BATCHNORM,
    .name = "batchnorm",
    .infer = infer,
    .opts = opts,
    .nopts = (int)ARRAY_LEN(opts),
    .defaults = defaults,
    .min_inputs = 1,
    .max_inputs = 1,
    .deterministic = true, /* in training mode it uses batch statistics, but frozen it is fixed */
};
