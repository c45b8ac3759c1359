/* layer_act.c — element-wise activations: relu, relu6, leaky_relu (slope), gelu, sigmoid, tanh.
 * The output has the input's shape; no parameters. */
#include "graph.h"

#include <stddef.h>

static bool infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    (void)a;
    (void)d;
    l->out = in[0];
    return true;
}

static const layer_opt leaky_opts[] = {
    {"slope", LOPT_FLOAT, offsetof(layer, slope), -1e9, 1e9, false, false, false, "a number", NULL},
};

static void leaky_defaults(layer *l)
{
    l->slope = 0.01f; /* PyTorch LeakyReLU negative_slope */
}

#define ACT(var, t, nm)                                                                            \
    const layer_kind var = {.type = t, .name = nm, .infer = infer, .min_inputs = 1,              \
                            .max_inputs = 1, .deterministic = true}

ACT(layer_relu_kind, GRAFT_LAYER_RELU, "relu");
ACT(layer_relu6_kind, GRAFT_LAYER_RELU6, "relu6");
ACT(layer_gelu_kind, GRAFT_LAYER_GELU, "gelu");
ACT(layer_sigmoid_kind, GRAFT_LAYER_SIGMOID, "sigmoid");
ACT(layer_tanh_kind, GRAFT_LAYER_TANH, "tanh");

const layer_kind layer_leaky_relu_kind = {
    .type = GRAFT_LAYER_LEAKY_RELU,
    .name = "leaky_relu",
    .infer = infer,
    .opts = leaky_opts,
    .nopts = (int)ARRAY_LEN(leaky_opts),
    .defaults = leaky_defaults,
    .min_inputs = 1,
    .max_inputs = 1,
    .deterministic = true,
};
