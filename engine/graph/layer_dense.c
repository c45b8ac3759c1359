/* layer_dense.c — fully connected layer (PyTorch Linear): weight [out, in], bias [out]. On tokens
 * [T, D] it applies to the last axis, [T, D] -> [T, units], as nn.Linear does. A 3-D input is an
 * error that suggests flatten, as PyTorch users expect to write it explicitly. */
#include "graph.h"

#include <stddef.h>

static const layer_opt opts[] = {
    {"units", LOPT_INT, offsetof(layer, units), 1, 1 << 24, false, false, true,
     "a positive integer", NULL},
    {"bias", LOPT_BOOL, offsetof(layer, bias), 0, 1, false, false, false, "true or false", NULL},
};

static void defaults(layer *l)
{
    l->bias = true;
}

static bool infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    if (in[0].rank == 3) {
        char s[64];
        shape_format(in[0], s, sizeof s);
        graft_diags_add(d, l->mark,
                        "%s: dense needs a flat input or tokens, got %s (add a flatten layer before it)",
                        l->name, s);
        return false;
    }
    l->out = in[0].rank == 2 ? (shape){2, {in[0].d[0], l->units, 0}} : (shape){1, {l->units, 0, 0}};
    int w[2] = {l->units, (int)shape_features(in[0])};
    if (!layer_add_param(l, a, "weight", 2, w, false)) return false;
    if (l->bias && !layer_add_param(l, a, "bias", 1, w, false)) return false;
    return true;
}

const layer_kind layer_dense_kind = {
    .type = GRAFT_LAYER_DENSE,
    .name = "dense",
    .infer = infer,
    .opts = opts,
    .nopts = (int)ARRAY_LEN(opts),
    .defaults = defaults,
    .min_inputs = 1,
    .max_inputs = 1,
    .activation_sugar = true,
    .deterministic = true,
};
