/* layer_pool.c — maxpool and avgpool (size, stride = size by default, padding as PyTorch: at most
 * half the window), and global_avgpool, which keeps PyTorch's [C, 1, 1] (flatten follows). */
#include "graph.h"

#include <stddef.h>

static const layer_opt opts[] = {
    {"size", LOPT_PAIR, offsetof(layer, pool), 1, 1 << 12, false, false, true,
     "a positive integer or [h, w]", NULL},
    {"stride", LOPT_PAIR, offsetof(layer, pool_stride), 1, 1 << 12, false, false, false,
     "a positive integer or [h, w]", NULL},
    {"padding", LOPT_PAIR, offsetof(layer, pool_pad), 0, 1 << 12, false, false, false,
     "a non-negative integer or [h, w]", NULL},
};

static void defaults(layer *l)
{
    l->pool_stride[0] = l->pool_stride[1] = 0; /* 0 = the window size, resolved in infer */
    l->pool_pad[0] = l->pool_pad[1] = 0;
}

static bool infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    (void)a;
    const char *what = l->type == GRAFT_LAYER_MAXPOOL ? "maxpool" : "avgpool";
    if (in[0].rank != 3) {
        char s[64];
        shape_format(in[0], s, sizeof s);
        graft_diags_add(d, l->mark, "%s: %s needs a [C, H, W] input, got %s", l->name, what, s);
        return false;
    }
    for (int i = 0; i < 2; i++)
        if (l->pool_stride[i] == 0) l->pool_stride[i] = l->pool[i];
    if (l->pool[0] < 1 || l->pool[1] < 1 || l->pool_stride[0] < 1 || l->pool_stride[1] < 1)
        return false; /* already reported by the recipe stage */
    if (2 * l->pool_pad[0] > l->pool[0] || 2 * l->pool_pad[1] > l->pool[1]) {
        graft_diags_add(d, l->mark,
                        "%s: padding %dx%d is more than half of the %dx%d window (PyTorch "
                        "forbids it)",
                        l->name, l->pool_pad[0], l->pool_pad[1], l->pool[0], l->pool[1]);
        return false;
    }
    int hw[2];
    for (int i = 0; i < 2; i++) {
        int span = in[0].d[1 + i] + 2 * l->pool_pad[i] - l->pool[i];
        if (span < 0) {
            graft_diags_add(d, l->mark, "%s: %dx%d pooling of a %dx%d input", l->name, l->pool[0],
                            l->pool[1], in[0].d[1], in[0].d[2]);
            return false;
        }
        hw[i] = span / l->pool_stride[i] + 1;
    }
    l->out = (shape){3, {in[0].d[0], hw[0], hw[1]}};
    return true;
}

static bool global_infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    (void)a;
    if (in[0].rank != 3) {
        char s[64];
        shape_format(in[0], s, sizeof s);
        graft_diags_add(d, l->mark, "%s: global_avgpool needs a [C, H, W] input, got %s",
                        l->name, s);
        return false;
    }
    l->out = (shape){3, {in[0].d[0], 1, 1}};
    return true;
}

const layer_kind layer_maxpool_kind = {
    .type = GRAFT_LAYER_MAXPOOL,
    .name = "maxpool",
    .infer = infer,
    .opts = opts,
    .nopts = (int)ARRAY_LEN(opts),
    .defaults = defaults,
    .min_inputs = 1,
    .max_inputs = 1,
    .deterministic = true,
};

const layer_kind layer_avgpool_kind = {
    .type = GRAFT_LAYER_AVGPOOL,
    .name = "avgpool",
    .infer = infer,
    .opts = opts,
    .nopts = (int)ARRAY_LEN(opts),
    .defaults = defaults,
    .min_inputs = 1,
    .max_inputs = 1,
    .deterministic = true,
};

const layer_kind layer_global_avgpool_kind = {
    .type = GRAFT_LAYER_GLOBAL_AVGPOOL,
    .name = "global_avgpool",
    .infer = global_infer,
    .min_inputs = 1,
    .max_inputs = 1,
    .deterministic = true,
};
