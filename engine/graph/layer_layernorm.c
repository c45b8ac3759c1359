/* layer_layernorm.c — layer normalisation over the last axis (PyTorch nn.LayerNorm(D) with
 * elementwise_affine) of [F] or of each token of [T, D]: weight [D], bias [D]; no running
 * statistics, the same in training and evaluation. A [C, H, W] input is an error that suggests
 * flatten (PyTorch would normalise W). */
#include "graph.h"

#include <stddef.h>

static const layer_opt opts[] = {
    {"eps", LOPT_FLOAT, offsetof(layer, eps), 0, 1, true, false, false, "a positive number", NULL},
    {"affine", LOPT_BOOL, offsetof(layer, affine), 0, 1, false, false, false, "true or false", NULL},
};

static void defaults(layer *l)
{
    l->eps = 1e-5f;
    l->affine = true;
}

static bool infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    if (in[0].rank == 3) {
        char s[64];
        shape_format(in[0], s, sizeof s);
        graft_diags_add(d, l->mark,
                        "%s: layernorm normalises the features of a flat input or of tokens, got %s "
                        "(add a flatten layer before it)",
                        l->name, s);
        return false;
    }
    l->out = in[0];
    int c[1] = {in[0].d[in[0].rank - 1]};
    if (!l->affine) return true;
    return layer_add_param(l, a, "weight", 1, c, false) && layer_add_param(l, a, "bias", 1, c, false);
}

const layer_kind layer_layernorm_kind = {
    .type = GRAFT_LAYER_LAYERNORM,
    .name = "layernorm",
    .infer = infer,
    .opts = opts,
    .nopts = (int)ARRAY_LEN(opts),
    .defaults = defaults,
    .min_inputs = 1,
    .max_inputs = 1,
    .deterministic = true,
};
