/* plan.c — the compiler's analysis: which layers run backward, which train, which batchnorms use
 * batch statistics, whether the frozen prefix can be cached, and the buffer plan (activation and
 * gradient tensors placed in shared slots by liveness). `graft plan` prints exactly this. */
#include "compile.h"

#include <stdlib.h>
#include <string.h>

static bool has_trainable_params(const layer *l)
{
    for (int j = 0; j < l->nparams; j++)
        if (!l->params[j].is_buffer) return true;
    return false;
}

static void conv_desc_of(const layer *l, conv2d_desc *d)
{
    memset(d, 0, sizeof *d);
    d->c = l->in.d[0];
    d->h = l->in.d[1];
    d->w = l->in.d[2];
    d->o = l->filters;
    d->kh = l->kernel[0];
    d->kw = l->kernel[1];
    d->sh = l->stride[0];
    d->sw = l->stride[1];
    d->ph = l->pad[0];
    d->pw = l->pad[1];
    d->groups = l->groups;
    d->bias = l->bias;
    d->oh = l->out.d[1];
    d->ow = l->out.d[2];
}

void plan_conv_desc(const layer *l, conv2d_desc *d)
{
    conv_desc_of(l, d);
}

/* Is layer i's output passed through unchanged (a view) by this pipeline? A fused activation is
 * one too: its producer already wrote the activated values. */
static bool is_view(const layer *l, const layer_plan *lp, bool training)
{
    return l->type == GRAFT_LAYER_FLATTEN || (l->type == GRAFT_LAYER_DROPOUT && !training) ||
           lp->fused_into >= 0;
}

/* act_kind + 1 for an activation whose derivative can be taken from its output (what a fused
 * backward has), else 0. gelu needs its input; leaky_relu only with a positive slope (then
 * y > 0 exactly when x > 0). */
static int epilogue_kind(const layer *l)
{
    switch (l->type) {
    case GRAFT_LAYER_RELU: return ACT_RELU + 1;
    case GRAFT_LAYER_RELU6: return ACT_RELU6 + 1;
    case GRAFT_LAYER_LEAKY_RELU: return l->slope > 0.0f ? ACT_LEAKY_RELU + 1 : 0;
    case GRAFT_LAYER_SIGMOID: return ACT_SIGMOID + 1;
    case GRAFT_LAYER_TANH: return ACT_TANH + 1;
    default: return 0;
    }
}

epilogue plan_epilogue(const graph *g, const graph_plan *p, int i)
{
    epilogue ep = {0};
    if (i >= 0 && i < p->nlayers && p->layers[i].bn_fold >= 0) i = p->layers[i].bn_fold;
    if (i < 0 || i >= p->nlayers || p->layers[i].fused_act < 0) return ep;
    const layer *a = &g->layers[p->layers[i].fused_act];
    ep.kind = epilogue_kind(a);
    ep.slope = a->slope;
    return ep;
}

bool plan_fold_ready(const graph *g, const graph_plan *p, int i, epilogue *epi)
{
    *epi = (epilogue){0};
    if (i < 0 || i + 1 >= p->nlayers || p->layers[i].bn_fold >= 0) return false;
    const layer *l = &g->layers[i], *b = &g->layers[i + 1];
    if (l->type != GRAFT_LAYER_CONV2D || b->type != GRAFT_LAYER_BATCHNORM || b->ninputs != 1 ||
        b->inputs[0] != i)
        return false;
    *epi = plan_epilogue(g, p, i + 1);
    return true;
}

/* a conv2d of 3x3 kernels, stride 1, padding 1 and one group (its output the input's size) */
static bool conv_3x3_same(const layer *l)
{
    return l->type == GRAFT_LAYER_CONV2D && l->kernel[0] == 3 && l->kernel[1] == 3 &&
           l->stride[0] == 1 && l->stride[1] == 1 && l->pad[0] == 1 && l->pad[1] == 1 &&
           l->groups == 1;
}

/* GRAFT_FUSE=0 turns fusion off (to compare fused and unfused pipelines). */
static bool fusion_enabled(void)
{
    const char *v = getenv("GRAFT_FUSE");
    return !(v && strcmp(v, "0") == 0);
}

static void plan_fusion(const graph *g, int first, const int *nconsumers, graph_plan *p)
{
    for (int i = 0; i < g->nlayers; i++)
        p->layers[i].fused_act = p->layers[i].fused_into = p->layers[i].bn_fold =
            p->layers[i].fused_pool = p->layers[i].pool_of = p->layers[i].stem =
                p->layers[i].stem_into = -1;
    if (!fusion_enabled()) return;
    for (int i = first; i + 1 < g->nlayers; i++) {
        const layer *l = &g->layers[i], *a = &g->layers[i + 1];
        if (l->type != GRAFT_LAYER_CONV2D && l->type != GRAFT_LAYER_BATCHNORM &&
            l->type != GRAFT_LAYER_DENSE)
            continue;
        if (!epilogue_kind(a) || a->ninputs != 1 || a->inputs[0] != i || nconsumers[i] != 1)
            continue;
        if (l->aligned) continue; /* adapt.layer reads its pre-activation output */
        p->layers[i].fused_act = i + 1;
        p->layers[i + 1].fused_into = i;
    }
    for (int i = first; i < g->nlayers; i++) {
        const layer *l = &g->layers[i];
        const int in = p->layers[i].fused_act >= 0 ? p->layers[i].fused_act : i, j = in + 1;
        if (l->type != GRAFT_LAYER_CONV2D || l->aligned || j >= g->nlayers) continue;
        const layer *pl = &g->layers[j];
        if (pl->type != GRAFT_LAYER_MAXPOOL || pl->ninputs != 1 || pl->inputs[0] != in ||
            nconsumers[in] != 1 || pl->aligned || pl->pool[0] != 2 || pl->pool[1] != 2 ||
            pl->pool_stride[0] != 2 || pl->pool_stride[1] != 2 || pl->pool_pad[0] != 0 ||
            pl->pool_pad[1] != 0 || l->out.d[1] % 2 || l->out.d[2] % 2)
            continue;
        p->layers[i].fused_pool = j;
        p->layers[j].pool_of = i;
    }
    /* eval-mode batchnorm into the conv2d before it (after the activations: the batchnorm's own
     * fused activation moves with it); GRAFT_FOLD_BN=0 turns only this off (float rounding
     * differs from the unfolded pipeline by ~1e-7 relative, unlike activation fusion) */
    const char *fold = getenv("GRAFT_FOLD_BN");
    if (fold && strcmp(fold, "0") == 0) return;
    for (int i = first; i + 1 < g->nlayers; i++) {
        const layer *l = &g->layers[i], *b = &g->layers[i + 1];
        const layer_plan *lp = &p->layers[i], *bp = &p->layers[i + 1];
        if (l->type != GRAFT_LAYER_CONV2D || b->type != GRAFT_LAYER_BATCHNORM ||
            b->ninputs != 1 || b->inputs[0] != i || nconsumers[i] != 1 || lp->backward ||
            bp->backward || bp->bn_batch_stats || lp->fused_act >= 0 || b->aligned)
            continue; /* aligned: its own output is read (adapt.layer, AdaBN's statistics) */
        p->layers[i].bn_fold = i + 1;
        p->layers[i + 1].fused_into = i;
    }
    /* a stem: a conv of at most CONV2D_STEM_MAX_C channels in (3x3, stride 1, padding 1, one
     * group, no pool after it), whose output (through its folded batchnorm and activation) only
     * a 3x3, stride-1, padding-1 conv of 8+ channels in and out reads, neither running backward:
     * the reader's forward may compute it (conv2d_stem_init, where the reader runs Winograd
     * F(4x4), CPUs; the pipeline decides), and it then launches nothing */
    for (int i = first; i < g->nlayers; i++) {
        const layer *l = &g->layers[i];
        if (!conv_3x3_same(l) || l->in.d[0] > CONV2D_STEM_MAX_C || l->aligned ||
            p->layers[i].backward || p->layers[i].fused_pool >= 0)
            continue;
        int out = p->layers[i].bn_fold >= 0 ? p->layers[i].bn_fold : i;
        if (p->layers[out].fused_act >= 0) out = p->layers[out].fused_act;
        if (nconsumers[out] != 1 || g->layers[out].aligned) continue;
        for (int j = out + 1; j < g->nlayers; j++) {
            const layer *c = &g->layers[j];
            if (c->ninputs != 1 || c->inputs[0] != out) continue;
            if (conv_3x3_same(c) && c->in.d[0] >= 8 && c->filters >= 8 && !c->aligned &&
                !p->layers[j].backward) {
                p->layers[i].stem_into = j;
                p->layers[j].stem = i;
            }
            break;
        }
    }
}

static void cache_check(const graph *g, bool training, bool bn_train, bool augment, graph_plan *p)
{
    p->cache_cut = graph_frozen_prefix(g);
    if (!training) {
        p->cacheable = false;
        snprintf(p->cache_reason, sizeof p->cache_reason, "not training");
        return;
    }
    p->cacheable = graph_feature_cache(g, bn_train, augment, p->cache_reason,
                                       sizeof p->cache_reason);
}

void plan_workspace_on(const graph *g, graph_plan *p, const graft_device_info *info,
                       bool training, int max_batch)
{
    size_t ws = 0;
    for (int i = p->first; i < g->nlayers; i++) {
        const layer *l = &g->layers[i];
        if (l->type != GRAFT_LAYER_CONV2D) continue;
        conv2d_desc d;
        conv_desc_of(l, &d);
        const layer_plan *lp = &p->layers[i];
        size_t b = conv2d_workspace_bytes_on(info, &d, max_batch, training && lp->backward,
                                             training && lp->trains);
        if (b > ws) ws = b;
    }
    p->mem.total = p->mem.total - p->mem.workspace + ws;
    p->mem.workspace = ws;
}

graft_status plan_analyse(const graph *g, bool training, bool bn_train, bool augment,
                          int optimizer_kind, bool l2sp, int first, int max_batch, graph_plan *p,
                          graft_error *e)
{
    memset(p, 0, sizeof *p);
    const int nl = g->nlayers;
    p->first = first;
    p->nlayers = nl;
    p->layers = calloc((size_t)nl, sizeof *p->layers);
    p->y_tensor = malloc((size_t)nl * sizeof(int));
    p->dy_tensor = malloc((size_t)nl * sizeof(int));
    p->dx_accumulate = calloc((size_t)nl * LAYER_MAX_INPUTS, sizeof(int));
    /* tensors: 0 = the pipeline input, then at most one Y and one DY per layer */
    p->tensors = calloc((size_t)(2 * nl + 1), sizeof *p->tensors);
    int *nconsumers = calloc((size_t)nl + 1, sizeof(int));
    if (!p->layers || !p->y_tensor || !p->dy_tensor || !p->dx_accumulate || !p->tensors ||
        !nconsumers) {
        free(nconsumers);
        plan_free(p);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory planning");
    }
    cache_check(g, training, bn_train, augment, p);

    const int L = nl - first;
    const int t_loss = L;
#define FWD(i) ((i) - first)
#define BWD(i) (L + 1 + (nl - 1 - (i)))
    /* which layers train and which run backward */
    for (int i = first; i < nl; i++) {
        const layer *l = &g->layers[i];
        layer_plan *lp = &p->layers[i];
        lp->trains = training && !l->frozen && has_trainable_params(l);
        lp->backward = lp->trains;
        for (int q = 0; q < l->ninputs; q++) {
            int in = l->inputs[q];
            if (in >= first && p->layers[in].backward) lp->backward = true;
        }
        lp->bn_batch_stats =
            training && l->type == GRAFT_LAYER_BATCHNORM && (!l->frozen || bn_train);
        for (int q = 0; q < l->ninputs; q++) {
            int in = l->inputs[q];
            lp->need_dx[q] = lp->backward && in >= first && p->layers[in].backward;
            nconsumers[in < first ? nl : in]++;
        }
    }
    plan_fusion(g, first, nconsumers, p);

    /* output tensors, aliased through views when the viewed tensor has no other reader */
    int nt = 1;
    p->tensors[0] = (tensor_plan){.size = 0, .slot = -1, .def = -1, .last = -1};
    for (int i = first; i < nl; i++) {
        const layer *l = &g->layers[i];
        int in = l->inputs[0];
        int src = in < first ? 0 : p->y_tensor[in];
        if (is_view(l, &p->layers[i], training) && nconsumers[in < first ? nl : in] == 1) {
            p->y_tensor[i] = src;
        } else {
            p->y_tensor[i] = nt;
            p->tensors[nt++] = (tensor_plan){.size = shape_size(l->out), .def = FWD(i),
                                             .last = FWD(i)};
        }
    }
    if (first > 0) p->tensors[0].size = shape_size(g->layers[first - 1].out);
    else p->tensors[0].size = shape_size(g->input);
#define USE(t, time)                                                                               \
    do {                                                                                           \
        if (p->tensors[t].last < (time)) p->tensors[t].last = (time);                             \
    } while (0)
    for (int i = first; i < nl; i++) {
        const layer *l = &g->layers[i];
        layer_plan *lp = &p->layers[i];
        for (int q = 0; q < l->ninputs; q++) {
            int in = l->inputs[q];
            int t = in < first ? 0 : p->y_tensor[in];
            USE(t, FWD(i));
            if (lp->backward) {
                USE(t, BWD(i));
                if (in >= first) p->layers[in].keeps_output = true;
            }
        }
        if (lp->backward) USE(p->y_tensor[i], BWD(i));
    }
    USE(p->y_tensor[nl - 1], t_loss);
    for (int i = first; i < nl; i++) /* a fused pool's output is written at its conv's step */
        if (p->layers[i].pool_of >= 0 && p->y_tensor[i] > 0)
            p->tensors[p->y_tensor[i]].def = FWD(p->layers[i].pool_of);

    /* gradient tensors: DY of layer i is written by the first consumer (in backward order) that
     * needs dx for it, or by the loss for the last layer; views share their input's DY */
    for (int i = 0; i < nl; i++) p->dy_tensor[i] = -1;
    for (int i = first; i < nl; i++) {
        const layer *l = &g->layers[i];
        if (!p->layers[i].backward) continue;
        int in = l->inputs[0];
        bool alias = is_view(l, &p->layers[i], training) && in >= first && p->y_tensor[i] == p->y_tensor[in] &&
                     p->layers[in].backward;
        if (alias) continue; /* resolved below, after the input's DY exists */
        p->dy_tensor[i] = nt;
        p->tensors[nt++] = (tensor_plan){.size = shape_size(l->out), .def = 1 << 30, .last = -1};
    }
    /* views: walk forward so chains of views resolve to the first real tensor */
    for (int i = first; i < nl; i++)
        if (p->layers[i].backward && p->dy_tensor[i] < 0) p->dy_tensor[i] = p->dy_tensor[g->layers[i].inputs[0]];
    for (int i = first; i < nl; i++) {
        int t = p->dy_tensor[i];
        if (t < 0) continue;
        USE(t, BWD(i));
        if (i == nl - 1 && p->tensors[t].def > t_loss) p->tensors[t].def = t_loss;
    }
    for (int i = first; i < nl; i++) /* a fused pool's gradient is read by its conv's backward */
        if (p->layers[i].pool_of >= 0 && p->dy_tensor[i] >= 0)
            USE(p->dy_tensor[i], BWD(p->layers[i].pool_of));
    /* writers of each DY tensor, in backward order: the first overwrites, the rest accumulate */
    int *written = calloc((size_t)nt, sizeof(int));
    if (!written) {
        free(nconsumers);
        plan_free(p);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory planning");
    }
    if (p->dy_tensor[nl - 1] >= 0) written[p->dy_tensor[nl - 1]] = 1; /* the loss writes it */
    for (int i = nl - 1; i >= first; i--) {
        const layer *l = &g->layers[i];
        layer_plan *lp = &p->layers[i];
        if (!lp->backward) continue;
        bool view_alias = is_view(l, &p->layers[i], training) && p->dy_tensor[i] == p->dy_tensor[l->inputs[0]];
        for (int q = 0; q < l->ninputs; q++) {
            if (!lp->need_dx[q]) continue;
            int t = p->dy_tensor[l->inputs[q]];
            if (view_alias) continue; /* shares the tensor: nothing is written */
            p->dx_accumulate[i * LAYER_MAX_INPUTS + q] = written[t] ? 1 : 0;
            if (p->tensors[t].def > BWD(i)) p->tensors[t].def = BWD(i);
            written[t] = 1;
        }
    }
    free(written);
    free(nconsumers);

    /* slots: greedy by definition time, best fit among slots whose last reader came earlier */
    p->ntensors = nt;
    p->slot_size = calloc((size_t)nt, sizeof(long));
    long *slot_free_at = calloc((size_t)nt, sizeof(long));
    int *order = malloc((size_t)nt * sizeof(int));
    if (!p->slot_size || !slot_free_at || !order) {
        free(slot_free_at);
        free(order);
        plan_free(p);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory planning");
    }
    int no = 0;
    for (int t = 1; t < nt; t++)
        if (p->tensors[t].last >= 0 || p->tensors[t].def < (1 << 30)) order[no++] = t;
    for (int a = 1; a < no; a++) { /* insertion sort by def */
        int t = order[a], b = a - 1;
        while (b >= 0 && p->tensors[order[b]].def > p->tensors[t].def) {
            order[b + 1] = order[b];
            b--;
        }
        order[b + 1] = t;
    }
    for (int a = 0; a < no; a++) {
        tensor_plan *tp = &p->tensors[order[a]];
        if (tp->last < tp->def) tp->last = tp->def; /* written but never read again */
        int best = -1;
        for (int s = 0; s < p->nslots; s++) {
            if (slot_free_at[s] >= tp->def) continue;
            if (best < 0) {
                best = s;
                continue;
            }
            bool fits = p->slot_size[s] >= tp->size, bfits = p->slot_size[best] >= tp->size;
            if ((fits && (!bfits || p->slot_size[s] < p->slot_size[best])) ||
                (!fits && !bfits && p->slot_size[s] > p->slot_size[best]))
                best = s;
        }
        if (best < 0) best = p->nslots++;
        if (p->slot_size[best] < tp->size) p->slot_size[best] = tp->size;
        slot_free_at[best] = tp->last;
        tp->slot = best;
    }
    free(slot_free_at);
    free(order);

    /* memory, from the same numbers the pipeline allocates */
    size_t f = sizeof(float), B = (size_t)max_batch;
    plan_memory *m = &p->mem;
    int state_per_param = optimizer_kind >= OPT_ADAM ? 2 : optimizer_kind == OPT_SGD ? 0 : 1;
    long scratch = 0;
    for (int i = first; i < nl; i++) {
        const layer *l = &g->layers[i];
        for (int j = 0; j < l->nparams; j++) {
            size_t bytes = (size_t)l->params[j].count * f;
            m->weights += bytes;
            if (p->layers[i].trains && !l->params[j].is_buffer) {
                m->gradients += bytes;
                m->optimizer += bytes * (size_t)state_per_param + (l2sp ? bytes : 0);
            }
        }
        for (int q = 0; q < l->ninputs; q++)
            if (p->dx_accumulate[i * LAYER_MAX_INPUTS + q] && l->inputs[q] >= first) {
                long sz = shape_size(g->layers[l->inputs[q]].out);
                if (sz > scratch) scratch = sz;
            }
        if (l->type == GRAFT_LAYER_ATTENTION) /* Q|K|V, scores, head outputs (+ gradients) */
            m->activations += B * (size_t)attention_buffer_floats(l->in.d[0], l->in.d[1], l->heads,
                                                                  training && p->layers[i].backward) * f;
        if (l->type == GRAFT_LAYER_PATCH_EMBED) /* its patch rows */
            m->activations += B * (size_t)shape_size(l->in) * f;
        if (l->type == GRAFT_LAYER_MAXPOOL) m->activations += B * (size_t)shape_size(l->out) * sizeof(int);
        if (l->type == GRAFT_LAYER_BATCHNORM) m->activations += 2 * (size_t)l->out.d[0] * f;
        if (l->type == GRAFT_LAYER_LAYERNORM) /* the saved row statistics */
            m->activations += 2 * B * (size_t)(shape_size(l->out) / l->out.d[l->out.rank - 1]) * f;
        if (l->type == GRAFT_LAYER_CONV2D) {
            conv2d_desc d;
            conv_desc_of(l, &d);
            size_t ws = conv2d_workspace_bytes(&d, max_batch);
            if (ws > m->workspace) m->workspace = ws;
            /* a training layer's padded input, kept from its forward for its weight gradient */
            if (training && p->layers[i].trains) m->activations += conv2d_keep_bytes(&d, max_batch);
        }
    }
    p->scratch_size = scratch;
    for (int s = 0; s < p->nslots; s++) m->activations += B * (size_t)p->slot_size[s] * f;
    m->activations += B * (size_t)p->tensors[0].size * f + B * (size_t)scratch * f;
    m->total = m->weights + m->gradients + m->optimizer + m->activations + m->workspace;
    (void)e;
    return GRAFT_OK;
#undef FWD
#undef BWD
#undef USE
}

void plan_free(graph_plan *p)
{
    free(p->layers);
    free(p->y_tensor);
    free(p->dy_tensor);
    free(p->dx_accumulate);
    free(p->tensors);
    free(p->slot_size);
    memset(p, 0, sizeof *p);
}
