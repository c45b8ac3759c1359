/* layer_flatten.c — flatten [C, H, W] to [C*H*W] (a [N] input passes through unchanged). */
#include "graph.h"

static bool infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    (void)a;
    long size = shape_size(in[0]);
    if (size > (1L << 30)) {
        graft_diags_add(d, l->mark, "%s: flattened size %ld is too large", l->name, size);
        return false;
    }
    l->out = (shape){1, {(int)size, 0, 0}};
    return true;
}

const layer_kind layer_flatten_kind = {
    .type = GRAFT_LAYER_FLATTEN,
    .name = "flatten",
    .infer = infer,
    .min_inputs = 1,
    .max_inputs = 1,
    .deterministic = true,
};
