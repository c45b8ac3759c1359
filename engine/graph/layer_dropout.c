/* layer_dropout.c — dropout (PyTorch Dropout, rate = p, default 0.5): random in training, so a
 * frozen prefix containing it cannot have its features cached. */
#include "graph.h"

#include <stddef.h>

static const layer_opt opts[] = {
    {"rate", LOPT_FLOAT, offsetof(layer, rate), 0, 1, false, true, false,
     "a number with 0 <= rate < 1", NULL},
};

static void defaults(layer *l)
{
    l->rate = 0.5f;
}

static bool infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    (void)a;
    (void)d;
    l->out = in[0];
    return true;
}

const layer_kind layer_dropout_kind = {
    .type = GRAFT_LAYER_DROPOUT,
    .name = "dropout",
    .infer = infer,
    .opts = opts,
    .nopts = (int)ARRAY_LEN(opts),
    .defaults = defaults,
    .min_inputs = 1,
    .max_inputs = 1,
    .deterministic = false,
};
