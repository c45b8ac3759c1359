/* layer_token.c — the layers that make and consume tokens [T, D] (a Vision Transformer's
 * embedding and pooling): patch_embed (a conv with stride = kernel = patch, flattened to tokens in
 * row-major patch order, as torchvision's conv_proj + flatten(2).transpose(1, 2)), class_token (a
 * learned token prepended), position_embedding (a learned [T, D] added), token_select (one token)
 * and token_mean (the mean over tokens). class_token and position_embedding hold one parameter
 * named after the layer itself, shaped [1, 1, D] and [1, T, D] as PyTorch keeps them, so a layer
 * named `class_token` or `encoder.pos_embedding` loads torchvision's tensor of that name. */
#include "graph.h"

#include <stddef.h>

static const layer_opt patch_opts[] = {
    {"dim", LOPT_INT, offsetof(layer, units), 1, 1 << 16, false, false, true, "a positive integer", NULL},
    {"patch", LOPT_INT, offsetof(layer, patch), 1, 1 << 12, false, false, true,
     "a positive integer", NULL},
    {"bias", LOPT_BOOL, offsetof(layer, bias), 0, 1, false, false, false, "true or false", NULL},
};

static const layer_opt select_opts[] = {
    {"index", LOPT_INT, offsetof(layer, index), 0, 1 << 20, false, false, false,
     "a non-negative integer", NULL},
};

static void patch_defaults(layer *l)
{
    l->bias = true;
}

static bool need_tokens(layer *l, shape in, graft_diags *d)
{
    if (in.rank == 2) return true;
    char s[64];
    shape_format(in, s, sizeof s);
    graft_diags_add(d, l->mark, "%s: %s needs tokens [T, D], got %s (start with patch_embed)",
                    l->name, layer_type_name(l->type), s);
    return false;
}

static bool patch_infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    if (in[0].rank != 3) {
        char s[64];
        shape_format(in[0], s, sizeof s);
        graft_diags_add(d, l->mark, "%s: patch_embed needs a [C, H, W] input, got %s", l->name, s);
        return false;
    }
    const int p = l->patch;
    if (p < 1) return false; /* already reported by the recipe stage */
    if (in[0].d[1] % p || in[0].d[2] % p) {
        graft_diags_add(d, l->mark, "%s: patch %d does not divide the %dx%d input", l->name, p,
                        in[0].d[1], in[0].d[2]);
        return false;
    }
    l->out = (shape){2, {(in[0].d[1] / p) * (in[0].d[2] / p), l->units, 0}};
    int w[4] = {l->units, in[0].d[0], p, p};
    if (!layer_add_param(l, a, "weight", 4, w, false)) return false;
    return !l->bias || layer_add_param(l, a, "bias", 1, w, false);
}

static bool class_infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    if (!need_tokens(l, in[0], d)) return false;
    l->out = (shape){2, {in[0].d[0] + 1, in[0].d[1], 0}};
    int t[3] = {1, 1, in[0].d[1]};
    return layer_add_param(l, a, NULL, 3, t, false);
}

static bool pos_infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    if (!need_tokens(l, in[0], d)) return false;
    l->out = in[0];
    int t[3] = {1, in[0].d[0], in[0].d[1]};
    return layer_add_param(l, a, NULL, 3, t, false);
}

static bool select_infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    (void)a;
    if (!need_tokens(l, in[0], d)) return false;
    if (l->index >= in[0].d[0]) {
        graft_diags_add(d, l->mark, "%s: index %d is past the last of %d tokens", l->name,
                        l->index, in[0].d[0]);
        return false;
    }
    l->out = (shape){1, {in[0].d[1], 0, 0}};
    return true;
}

static bool mean_infer(layer *l, const shape *in, int n, arena *a, graft_diags *d)
{
    (void)n;
    (void)a;
    if (!need_tokens(l, in[0], d)) return false;
    l->out = (shape){1, {in[0].d[1], 0, 0}};
    return true;
}

#define TOKEN_KIND(T, NAME, INFER, OPTS, NOPTS, DEFAULTS)                                          \
    {                                                                                              \
        .type = T, .name = NAME, .infer = INFER, .opts = OPTS, .nopts = NOPTS,                     \
        .defaults = DEFAULTS, .min_inputs = 1, .max_inputs = 1, .deterministic = true,             \
    }

const layer_kind layer_patch_embed_kind = TOKEN_KIND(GRAFT_LAYER_PATCH_EMBED, "patch_embed",
                                                     patch_infer, patch_opts,
                                                     (int)ARRAY_LEN(patch_opts), patch_defaults);
const layer_kind layer_class_token_kind =
    TOKEN_KIND(GRAFT_LAYER_CLASS_TOKEN, "class_token", class_infer, NULL, 0, NULL);
const layer_kind layer_position_embedding_kind =
    TOKEN_KIND(GRAFT_LAYER_POSITION_EMBEDDING, "position_embedding", pos_infer, NULL, 0, NULL);
const layer_kind layer_token_select_kind = TOKEN_KIND(
    GRAFT_LAYER_TOKEN_SELECT, "token_select", select_infer, select_opts,
    (int)ARRAY_LEN(select_opts), NULL);
const layer_kind layer_token_mean_kind =
    TOKEN_KIND(GRAFT_LAYER_TOKEN_MEAN, "token_mean", mean_infer, NULL, 0, NULL);
