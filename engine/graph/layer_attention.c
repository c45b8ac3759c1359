/* layer_attention.c — multi-head self-attention on tokens [T, D] (PyTorch nn.MultiheadAttention
 * with batch_first, query = key = value): heads (D divisible by them), bias, and the parameter
 * names: `names: torch` (default) gives torchvision's packed <name>.in_proj_weight [3D, D],
 * <name>.in_proj_bias [3D], <name>.out_proj.weight/.bias; `names: hf` gives Hugging Face ViT's
 * <name>.attention.query/key/value.weight/.bias and <name>.output.dense.weight/.bias. */
#include "graph.h"

#include <stddef.h>
#include <stdio.h>

static const char *const NAME_CHOICES[] = {"torch", "hf", NULL};

static const layer_opt opts[] = {
    {"heads", LOPT_INT, offsetof(layer, heads), 1, 1 << 12, false, false, true,
     "a positive integer", NULL},
    {"dim", LOPT_INT, offsetof(layer, units), 1, 1 << 16, false, false, false,
     "a positive integer (the input's token size)", NULL},
    {"dropout", LOPT_FLOAT, offsetof(layer, rate), 0, 1, false, true, false,
     "a number in [0, 1)", NULL},
    {"bias", LOPT_BOOL, offsetof(layer, bias), 0, 1, false, false, false, "true or false", NULL},
    {"names", LOPT_ENUM, offsetof(layer, names), 0, 0, false, false, false, "torch or hf",
     NAME_CHOICES},
};

static void defaults(layer *l)
{
    l->bias = true;
    l->names = ATTN_NAMES_TORCH;
}

static bool infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    if (in[0].rank != 2) {
        char s[64];
        shape_format(in[0], s, sizeof s);
        graft_diags_add(d, l->mark, "%s: attention needs tokens [T, D], got %s (start with "
                        "patch_embed)", l->name, s);
        return false;
    }
    const int dim = in[0].d[1];
    bool ok = true;
    if (l->units && l->units != dim) {
        graft_diags_add(d, l->mark, "%s: dim %d differs from the input's token size %d", l->name,
                        l->units, dim);
        ok = false;
    }
    if (l->heads < 1) return false; /* already reported by the recipe stage */
    if (dim % l->heads) {
        graft_diags_add(d, l->mark, "%s: %d heads do not divide the token size %d", l->name,
                        l->heads, dim);
        ok = false;
    }
    if (l->rate > 0.0f && dim / l->heads > ATTN_FUSED_MAX_DH) {
        graft_diags_add(d, l->mark, "%s: attention dropout needs heads of at most %d features "
                        "(the fused kernels'); these have %d", l->name, ATTN_FUSED_MAX_DH,
                        dim / l->heads);
        ok = false;
    }
    if (!ok) return false;
    l->units = dim;
    l->out = in[0];
    int w3[2] = {3 * dim, dim}, w[2] = {dim, dim};
    if (l->names == ATTN_NAMES_TORCH) {
        if (!layer_add_param(l, a, "in_proj_weight", 2, w3, false)) return false;
        if (l->bias && !layer_add_param(l, a, "in_proj_bias", 1, w3, false)) return false;
    } else {
        static const char *const qkv[3] = {"query", "key", "value"};
        for (int p = 0; p < 3; p++) {
            char s[64];
            snprintf(s, sizeof s, "attention.%s.weight", qkv[p]);
            if (!layer_add_param(l, a, s, 2, w, false)) return false;
            snprintf(s, sizeof s, "attention.%s.bias", qkv[p]);
            if (l->bias && !layer_add_param(l, a, s, 1, w, false)) return false;
        }
    }
    const char *out = l->names == ATTN_NAMES_TORCH ? "out_proj" : "output.dense";
    char s[64];
    snprintf(s, sizeof s, "%s.weight", out);
    if (!layer_add_param(l, a, s, 2, w, false)) return false;
    snprintf(s, sizeof s, "%s.bias", out);
    return !l->bias || layer_add_param(l, a, s, 1, w, false);
}

const layer_kind layer_attention_kind = {
    .type = GRAFT_LAYER_ATTENTION,
    .name = "attention",
    .infer = infer,
    .opts = opts,
    .nopts = (int)ARRAY_LEN(opts),
    .defaults = defaults,
    .min_inputs = 1,
    .max_inputs = 1,
    .deterministic = true,
};
