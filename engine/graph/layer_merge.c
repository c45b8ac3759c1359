/* layer_merge.c — layers with several inputs: add (residual connections; all shapes equal) and
 * concat (along channels for [C, H, W], along features for [N]). */
#include "graph.h"

#include <stdio.h>

static bool add_infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)a;
    for (int i = 1; i < n; i++) {
        bool same = in[i].rank == in[0].rank;
        for (int j = 0; same && j < in[0].rank; j++) same = in[i].d[j] == in[0].d[j];
        if (!same) {
            char s0[64], si[64];
            shape_format(in[0], s0, sizeof s0);
            shape_format(in[i], si, sizeof si);
            graft_diags_add(d, l->mark, "%s: add needs equal shapes, got %s and %s", l->name, s0,
                            si);
            return false;
        }
    }
    l->out = in[0];
    return true;
}

static bool concat_infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)a;
    shape out = in[0];
    for (int i = 1; i < n; i++) {
        bool fits = in[i].rank == in[0].rank &&
                    (in[0].rank == 1 || (in[i].d[1] == in[0].d[1] && in[i].d[2] == in[0].d[2]));
        if (!fits) {
            char s0[64], si[64];
            shape_format(in[0], s0, sizeof s0);
            shape_format(in[i], si, sizeof si);
            graft_diags_add(d, l->mark,
                            "%s: concat needs inputs that differ only in channels, got %s and %s",
                            l->name, s0, si);
            return false;
        }
        out.d[0] += in[i].d[0];
    }
    l->out = out;
    return true;
}

const layer_kind layer_add_kind = {
    .type = GRAFT_LAYER_ADD,
    .name = "add",
    .infer = add_infer,
    .min_inputs = 2,
    .max_inputs = LAYER_MAX_INPUTS,
    .deterministic = true,
};

const layer_kind layer_concat_kind = {
    .type = GRAFT_LAYER_CONCAT,
    .name = "concat",
    .infer = concat_infer,
    .min_inputs = 2,
    .max_inputs = LAYER_MAX_INPUTS,
    .deterministic = true,
};
