/* layer_conv2d.c — 2-D convolution (PyTorch Conv2d): keys, defaults, shape inference and the
 * parameters weight [O, C/groups, KH, KW] and bias [O]. */
#include "graph.h"

#include <stddef.h>

static const layer_opt opts[] = {
    {"filters", LOPT_INT, offsetof(layer, filters), 1, 1 << 20, false, false, true,
     "a positive integer", NULL},
    {"kernel", LOPT_PAIR, offsetof(layer, kernel), 1, 1 << 12, false, false, true,
     "a positive integer or [h, w]", NULL},
    {"stride", LOPT_PAIR, offsetof(layer, stride), 1, 1 << 12, false, false, false,
     "a positive integer or [h, w]", NULL},
    {"padding", LOPT_PAD, offsetof(layer, pad), 0, 1 << 12, false, false, false,
     "same, valid, a non-negative integer or [h, w]", NULL},
    {"groups", LOPT_INT, offsetof(layer, groups), 1, 1 << 20, false, false, false,
     "a positive integer", NULL},
    {"bias", LOPT_BOOL, offsetof(layer, bias), 0, 1, false, false, false, "true or false", NULL},
};

static void defaults(layer *l)
{
    l->stride[0] = l->stride[1] = 1;
    l->pad[0] = l->pad[1] = 0;
    l->groups = 1;
    l->bias = true;
}

static bool infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    char s[64];
    shape_format(in[0], s, sizeof s);
    if (in[0].rank != 3) {
        graft_diags_add(d, l->mark, "%s: conv2d needs a [C, H, W] input, got %s", l->name, s);
        return false;
    }
    if (l->groups < 1 || l->filters < 1 || l->kernel[0] < 1 || l->kernel[1] < 1 ||
        l->stride[0] < 1 || l->stride[1] < 1)
        return false; /* already reported by the recipe stage */
    int c = in[0].d[0];
    bool ok = true;
    if (c % l->groups) {
        graft_diags_add(d, l->mark, "%s: groups %d does not divide the %d input channels",
                        l->name, l->groups, c);
        ok = false;
    }
    if (l->filters % l->groups) {
        graft_diags_add(d, l->mark, "%s: groups %d does not divide the %d filters", l->name,
                        l->groups, l->filters);
        ok = false;
    }
    if (l->pad[0] == GRAPH_PAD_SAME || l->pad[1] == GRAPH_PAD_SAME) {
        if (l->stride[0] != 1 || l->stride[1] != 1) {
            graft_diags_add(d, l->mark,
                            "%s: padding: same needs stride 1 (as in PyTorch); give the padding "
                            "as a number",
                            l->name);
            return false;
        }
        if (l->kernel[0] % 2 == 0 || l->kernel[1] % 2 == 0) {
            graft_diags_add(d, l->mark,
                            "%s: padding: same with an even kernel (%dx%d) pads unevenly; give "
                            "the padding as a number",
                            l->name, l->kernel[0], l->kernel[1]);
            return false;
        }
        l->pad[0] = (l->kernel[0] - 1) / 2;
        l->pad[1] = (l->kernel[1] - 1) / 2;
    }
    int hw[2];
    for (int i = 0; i < 2; i++) {
        int span = in[0].d[1 + i] + 2 * l->pad[i] - l->kernel[i];
        if (span < 0) {
            graft_diags_add(d, l->mark, "%s: %dx%d kernel is larger than the padded %dx%d input",
                            l->name, l->kernel[0], l->kernel[1], in[0].d[1] + 2 * l->pad[0],
                            in[0].d[2] + 2 * l->pad[1]);
            return false;
        }
        hw[i] = span / l->stride[i] + 1;
    }
    if (!ok) return false;
    l->out = (shape){3, {l->filters, hw[0], hw[1]}};
    int w[4] = {l->filters, c / l->groups, l->kernel[0], l->kernel[1]};
    if (!layer_add_param(l, a, "weight", 4, w, false)) return false;
    if (l->bias && !layer_add_param(l, a, "bias", 1, w, false)) return false;
    return true;
}

const layer_kind layer_conv2d_kind = {
    .type = GRAFT_LAYER_CONV2D,
    .name = "conv2d",
    .infer = infer,
    .opts = opts,
    .nopts = (int)ARRAY_LEN(opts),
    .defaults = defaults,
    .min_inputs = 1,
    .max_inputs = 1,
    .activation_sugar = true,
    .deterministic = true,
};
