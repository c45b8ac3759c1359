/* graph.c — the layer registry and whole-graph passes: shape inference in order, parameter counts,
 * lookups and the frozen prefix. Each layer type lives in its own layer_*.c file. */
#include "graph.h"

#include <stdio.h>
#include <string.h>

extern const layer_kind layer_conv2d_kind, layer_dense_kind, layer_batchnorm_kind;
extern const layer_kind layer_relu_kind, layer_relu6_kind, layer_leaky_relu_kind, layer_gelu_kind,
    layer_sigmoid_kind, layer_tanh_kind;
extern const layer_kind layer_maxpool_kind, layer_avgpool_kind, layer_global_avgpool_kind;
extern const layer_kind layer_flatten_kind, layer_dropout_kind, layer_add_kind, layer_concat_kind;
extern const layer_kind layer_layernorm_kind, layer_patch_embed_kind, layer_class_token_kind,
    layer_position_embedding_kind, layer_token_select_kind, layer_token_mean_kind,
    layer_attention_kind;

/* In enum order, so registry[t]->type == t (checked by the graph unit test). */
static const layer_kind *const registry[GRAFT_LAYER_COUNT] = {
    &layer_conv2d_kind,  &layer_dense_kind,          &layer_batchnorm_kind, &layer_relu_kind,
    &layer_relu6_kind,   &layer_leaky_relu_kind,     &layer_gelu_kind,      &layer_sigmoid_kind,
    &layer_tanh_kind,    &layer_maxpool_kind,        &layer_avgpool_kind,   &layer_global_avgpool_kind,
    &layer_flatten_kind, &layer_dropout_kind,        &layer_add_kind,       &layer_concat_kind,
    &layer_layernorm_kind, &layer_patch_embed_kind, &layer_class_token_kind,
    &layer_position_embedding_kind, &layer_token_select_kind, &layer_token_mean_kind,
    &layer_attention_kind,
};

const layer_kind *const *layer_kinds(int *count)
{
    *count = GRAFT_LAYER_COUNT;
    return registry;
}

const layer_kind *layer_kind_by_name(const char *name)
{
    for (int i = 0; i < GRAFT_LAYER_COUNT; i++)
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    return NULL;
}

const layer_kind *layer_kind_of(graft_layer_type t)
{
    return (int)t >= 0 && t < GRAFT_LAYER_COUNT ? registry[t] : NULL;
}

const char *layer_type_name(graft_layer_type t)
{
    const layer_kind *k = layer_kind_of(t);
    return k ? k->name : "?";
}

void shape_format(shape s, char *out, size_t n)
{
    if (s.rank == 1)
        snprintf(out, n, "[%d]", s.d[0]);
    else if (s.rank == 2)
        snprintf(out, n, "[%d, %d]", s.d[0], s.d[1]);
    else if (s.rank == 3)
        snprintf(out, n, "[%d, %d, %d]", s.d[0], s.d[1], s.d[2]);
    else
        snprintf(out, n, "[?]");
}

bool layer_add_param(layer *l, arena *a, const char *suffix, int rank, const int *dims,
                     bool is_buffer)
{
    if (l->nparams >= LAYER_MAX_PARAMS) return false;
    param_info *p = &l->params[l->nparams];
    memset(p, 0, sizeof *p);
    p->name = suffix ? arena_printf(a, "%s.%s", l->name, suffix) : arena_printf(a, "%s", l->name);
    if (!p->name) return false;
    p->rank = rank;
    p->count = 1;
    for (int i = 0; i < rank; i++) {
        p->dims[i] = dims[i];
        p->count *= dims[i];
    }
    p->is_buffer = is_buffer;
    l->nparams++;
    return true;
}

bool param_legacy_name(const layer *l, const param_info *p, char *out, size_t n)
{
    if (l->type != GRAFT_LAYER_LAYERNORM) return false;
    const size_t len = strlen(l->name);
    if (strncmp(p->name, l->name, len) != 0) return false;
    const char *suffix = p->name + len;
    const char *old = strcmp(suffix, ".weight") == 0 ? "gamma" : strcmp(suffix, ".bias") == 0 ? "beta" : NULL;
    return old && (size_t)snprintf(out, n, "%s.%s", l->name, old) < n;
}

bool graph_infer_shapes(graph *g, arena *a, graft_diags *d)
{
    bool ok = true;
    /* A layer whose input failed gets rank 0 and reports nothing: one mistake, one message. */
    for (int i = 0; i < g->nlayers; i++) {
        layer *l = &g->layers[i];
        const layer_kind *k = layer_kind_of(l->type);
        shape ins[LAYER_MAX_INPUTS];
        bool inputs_ok = true;
        for (int j = 0; j < l->ninputs; j++) {
            int src = l->inputs[j];
            if (src >= i || src < -1) {
                graft_diags_add(d, l->mark, "%s: input %d is not an earlier layer", l->name, j);
                inputs_ok = false;
                continue;
            }
            ins[j] = src < 0 ? g->input : g->layers[src].out;
            if (ins[j].rank == 0) inputs_ok = false;
        }
        l->nparams = 0;
        l->out.rank = 0;
        if (!inputs_ok || !k || l->ninputs == 0) {
            ok = false;
            continue;
        }
        l->in = ins[0];
        if (!k->infer(l, ins, l->ninputs, a, d)) {
            l->out.rank = 0;
            ok = false;
        }
    }
    const layer *last = g->nlayers ? &g->layers[g->nlayers - 1] : NULL;
    g->num_classes = last && last->out.rank == 1 ? last->out.d[0] : 0;
    return ok;
}

long layer_param_count(const layer *l)
{
    long n = 0;
    for (int j = 0; j < l->nparams; j++)
        if (!l->params[j].is_buffer) n += l->params[j].count;
    return n;
}

long graph_param_count(const graph *g, bool trainable_only)
{
    long n = 0;
    for (int i = 0; i < g->nlayers; i++)
        if (!trainable_only || !g->layers[i].frozen) n += layer_param_count(&g->layers[i]);
    return n;
}

int graph_find_layer(const graph *g, const char *name)
{
    for (int i = 0; i < g->nlayers; i++)
        if (strcmp(g->layers[i].name, name) == 0) return i;
    return -1;
}

int graph_frozen_prefix(const graph *g)
{
    int k = 0;
    while (k < g->nlayers && g->layers[k].frozen) k++;
    return k;
}

bool graph_feature_cache(const graph *g, bool bn_train, bool augment, char *reason, size_t n)
{
    int k = graph_frozen_prefix(g);
    if (k == 0) {
        snprintf(reason, n, "no frozen prefix (the first layer trains)");
        return false;
    }
    if (k == g->nlayers) {
        snprintf(reason, n, "every layer is frozen: nothing trains");
        return false;
    }
    for (int i = 0; i < k; i++) {
        const layer *l = &g->layers[i];
        const layer_kind *lk = layer_kind_of(l->type);
        if (lk && !lk->deterministic) {
            snprintf(reason, n, "%s '%s' in the frozen prefix is random in training", lk->name,
                     l->name);
            return false;
        }
        if (l->type == GRAFT_LAYER_ATTENTION && l->rate > 0.0f) {
            snprintf(reason, n, "attention '%s' in the frozen prefix has dropout %g: random in "
                     "training", l->name, (double)l->rate);
            return false;
        }
        if (l->type == GRAFT_LAYER_BATCHNORM && bn_train) {
            snprintf(reason, n, "batchnorm '%s' in the frozen prefix trains (transfer.bn: train)",
                     l->name);
            return false;
        }
    }
    if (augment) {
        snprintf(reason, n, "data augmentation changes the inputs every epoch");
        return false;
    }
    for (int i = k; i < g->nlayers; i++)
        for (int j = 0; j < g->layers[i].ninputs; j++)
            if (g->layers[i].inputs[j] != k - 1 && g->layers[i].inputs[j] < k) {
                int src = g->layers[i].inputs[j];
                snprintf(reason, n, "'%s' reads '%s' inside the frozen prefix", g->layers[i].name,
                         src < 0 ? "input" : g->layers[src].name);
                return false;
            }
    snprintf(reason, n, "the frozen prefix (%d layers, through '%s') is deterministic", k,
             g->layers[k - 1].name);
    return true;
}
