/* pipeline.c — a compiled network: op structs built once per layer (kernels specialised to its
 * shapes), device buffers placed by the plan, and the forward / loss / backward / update sequence
 * enqueued for each batch. The frozen prefix runs forward only; nothing is allocated for its
 * gradients or optimizer state. */
#include "compile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct player {
    const layer *l;
    union {
        conv2d_op conv;
        dense_op dense;
        batchnorm_op bn;
        layernorm_op ln;
        attention_op attn;
        act_op act;
        pool_op pool;
        dropout_op drop;
    } op;
    bool has_op;
    cl_mem w[LAYER_MAX_PARAMS], g[LAYER_MAX_PARAMS], m[LAYER_MAX_PARAMS], v[LAYER_MAX_PARAMS],
        w0[LAYER_MAX_PARAMS];
    cl_mem idx;                    /* maxpool argmax */
    cl_mem aux;                    /* patch_embed: the input's patches as token rows */
    cl_mem wf, bf;                 /* conv2d with a folded batchnorm: its weights and bias */
    cl_mem save_mean, save_invstd; /* batchnorm batch statistics; layernorm row statistics */
    long t[LAYER_MAX_PARAMS];      /* optimizer steps per parameter */
    long aoff[LAYER_MAX_PARAMS];   /* where a trained tensor lies in the arenas (floats), or -1 */
    cl_mem
        keep[LAYER_MAX_PARAMS]; /* skip_nonfinite: batchnorm running statistics before the step */
    bool pool_fused; /* conv2d: its forward writes the pool after it (plan fused_pool) */
    /* conv2d in an evaluation pipeline (xpad_plan): the conv whose padded input this one's
     * forward writes (-1: none), and this one's padded input when a producer writes it */
    int pad_to;
    conv2d_xpad xpad;
    /* xpad_plan: the conv computed inside this one's forward (stem), or this conv computed
     * inside that one's (stem_into); -1: none */
    int stem, stem_into;
} player;

struct pipeline {
    graft_context *ctx;
    const graph *g;
    pipeline_options o;
    graph_plan plan;
    player *layers;
    cl_mem *slots;
    cl_mem input, scratch, workspace, labels, loss, correct;
    cl_mem rows; /* int [max_batch]: batch rows of a device-resident feature cache */
    xent_op xent;
    optim_op optim;
    bool has_xent, has_optim;
    /* The trained tensors' weights, gradients, optimizer moments and L2-SP anchors, each kind in
     * one buffer (layer order, each tensor at an aligned offset, zeros between), the tensors'
     * buffers sub-buffers of them: the update runs over neighbours with the same hyperparameters
     * in one launch instead of one per tensor. afloats: their length; aw0 made on first use. */
    cl_mem aw, ag, am, av, aw0;
    size_t afloats;
    align_op align;   /* adapt: the alignment loss (options.align) */
    cl_mem align_sum; /* its weighted value summed over steps (1 float) */
    long align_steps;
    int align_ns, align_nt; /* rows of the step in progress (0: no alignment term) */
    float align_weight, align_lambda;
    /* DANN's domain discriminator: dense layers (ReLU fused into all but the last), their
     * parameters [layer][weight, bias] with gradients and optimizer state, each layer's output
     * and output gradient, and the gradient it sends back to the features */
    int nd;
    dense_op dop[ADAPT_MAX_DISC + 1];
    dropout_op ddrop[ADAPT_MAX_DISC]; /* after each hidden layer when disc_dropout > 0 */
    cl_mem dw[ADAPT_MAX_DISC + 1][2], dg[ADAPT_MAX_DISC + 1][2], dm[ADAPT_MAX_DISC + 1][2],
        dv[ADAPT_MAX_DISC + 1][2];
    long dt[ADAPT_MAX_DISC + 1][2];
    cl_mem dact[ADAPT_MAX_DISC + 1], dgrad[ADAPT_MAX_DISC + 1], dfeat, dloss;
    uint64_t step;
    float *host_loss;
    int *host_correct;
    /* uploads: two pinned staging areas (input then labels) used in turn; staged[k] is the write
     * from stage[k] still in flight, waited for before stage[k] is filled again. The device input
     * and labels buffers need no second copy: the queue is in order, so a write enqueued after a
     * step's kernels cannot overtake them. */
    host_buffer stage[2];
    cl_event staged[2];
    int next_stage;
    /* step statistics kept on the device: the loss kernel of the i-th step since the last
     * read-back writes its per-sample loss and correct flags into slot i (slices of stat_loss /
     * stat_correct, stat_stride bytes apart); one non-blocking read of the used slots is in
     * flight at a time, and the host sums them in double, in order, when it lands */
    cl_mem stat_loss, stat_correct;
    cl_mem loss_slot[PIPELINE_STATS_SLOTS], correct_slot[PIPELINE_STATS_SLOTS];
    size_t stat_stride;
    host_buffer stat_host; /* the slots of stat_loss, then those of stat_correct */
    cl_event stat_read;
    cl_event logits_read; /* the last logits read of pipeline_eval(_rows)_async (NULL: none) */
    int pending, inflight;                   /* slots written / being read back */
    int pending_n[PIPELINE_STATS_SLOTS], inflight_n[PIPELINE_STATS_SLOTS]; /* samples per slot */
    uint64_t pending_first, inflight_first;  /* step number of slot 0 */
    pipeline_stats ready;                    /* read back, not yet handed out */
    pipeline_stats total;                    /* read back since pipeline_stats_total restarted */
    graft_error stat_error;                  /* a non-finite loss seen in a read-back */
    graft_status stat_status;
    uint64_t nonfinite_step; /* first step whose loss was not finite (1-based), 0 */
    double nonfinite_value;
    bool scan;         /* forward checks every layer (pipeline_set_scan) */
    int scan_layer;    /* first layer with non-finite values, or -1 */
    bool scan_weights; /* ... in its parameters rather than its output */
    long host_syncs;
    /* data parallelism (pipeline_train_grads): gradient buckets, one per trainable layer in the
     * order backward finishes them; each bucket's read into pinned host memory (grad_host, the
     * buckets back to back) is enqueued right after its layer's backward, so it travels while the
     * device runs the backward of the layers before it and the host can reduce it meanwhile */
    int nbuckets;
    int *bucket_layer;     /* layer index of each bucket */
    long *bucket_off;      /* first float of each bucket in grad_host */
    long *bucket_count;    /* floats in each bucket */
    int *layer_bucket;     /* per layer: its bucket, or -1 */
    cl_event *bucket_read; /* the read in flight of each bucket (NULL once waited for) */
    host_buffer grad_host;
    bool grads_out;        /* the backward in progress reads its buckets out */
    long row0;             /* the step's first row in the global batch (dropout masks) */
    /* train.sync_bn (options.sync_bn): a pipeline_train_grads step pauses at each training-mode
     * batchnorm with its per-plane partials being read into sync_host, and goes on when
     * pipeline_sync_resume hands it the whole global batch's partials */
    bool sync_step;          /* a pipeline_train_grads step is in progress */
    bool sync_paused;        /* ... and waits at batchnorm sync_layer (backward: sync_bwd) */
    int sync_layer;
    bool sync_bwd;
    const double *sync_global; /* set while resuming: the global partials of sync_N rows */
    int sync_N, sync_n;        /* rows of the global batch, of this step */
    cl_event sync_read;
    host_buffer sync_host;
    cl_mem step_loss, step_correct; /* the step's statistics slot */
};

const graph_plan *pipeline_plan(const pipeline *p)
{
    return &p->plan;
}

static cl_mem tensor_mem(const pipeline *p, int t)
{
    if (t < 0) return NULL;
    if (t == 0) return p->input;
    return p->slots[p->plan.tensors[t].slot];
}

static cl_mem Y(const pipeline *p, int layer_index)
{
    if (layer_index < p->o.first) return p->input;
    return tensor_mem(p, p->plan.y_tensor[layer_index]);
}

static cl_mem DY(const pipeline *p, int layer_index)
{
    if (layer_index < p->o.first) return NULL;
    return tensor_mem(p, p->plan.dy_tensor[layer_index]);
}

static bool name_ends(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int param_index(const layer *l, const char *suffix)
{
    for (int j = 0; j < l->nparams; j++)
        if (name_ends(l->params[j].name, suffix)) return j;
    return -1;
}

static cl_mem P(const player *pl, const char *suffix)
{
    int j = param_index(pl->l, suffix);
    return j < 0 ? NULL : pl->w[j];
}

static cl_mem G(const player *pl, const char *suffix)
{
    int j = param_index(pl->l, suffix);
    return j < 0 ? NULL : pl->g[j];
}

/* An attention layer's projections (grads: their gradient buffers) by its parameter names: the
 * packed in_proj tensors sliced per q, k, v, or Hugging Face's tensors of their own. */
static void attn_params_of(const player *pl, bool grads, attn_params *a)
{
    cl_mem (*get)(const player *, const char *) = grads ? G : P;
    const layer *l = pl->l;
    static const char *const qkv[3] = {"query", "key", "value"};
    for (int q = 0; q < 3; q++) {
        char w[64], b[64];
        if (l->names == ATTN_NAMES_TORCH) {
            a->w[q] = get(pl, ".in_proj_weight");
            a->b[q] = get(pl, ".in_proj_bias");
            a->w_off[q] = (size_t)q * (size_t)l->units * (size_t)l->units;
            a->b_off[q] = (size_t)q * (size_t)l->units;
        } else {
            snprintf(w, sizeof w, ".attention.%s.weight", qkv[q]);
            snprintf(b, sizeof b, ".attention.%s.bias", qkv[q]);
            a->w[q] = get(pl, w);
            a->b[q] = get(pl, b);
            a->w_off[q] = a->b_off[q] = 0;
        }
    }
    const bool t = l->names == ATTN_NAMES_TORCH;
    a->wo = get(pl, t ? ".out_proj.weight" : ".output.dense.weight");
    a->bo = get(pl, t ? ".out_proj.bias" : ".output.dense.bias");
}

static act_kind act_of(graft_layer_type t)
{
    switch (t) {
    case GRAFT_LAYER_RELU6: return ACT_RELU6;
    case GRAFT_LAYER_LEAKY_RELU: return ACT_LEAKY_RELU;
    case GRAFT_LAYER_GELU: return ACT_GELU;
    case GRAFT_LAYER_SIGMOID: return ACT_SIGMOID;
    case GRAFT_LAYER_TANH: return ACT_TANH;
    default: return ACT_RELU;
    }
}

/* Rows a per-token layer (dense, layernorm) works on in a batch of n: one per sample of [F], one
 * per token of [T, D]. */
static long token_rows(const layer *l, int n)
{
    return (long)n * shape_tokens(l->out);
}

static bool is_act(graft_layer_type t)
{
    return t == GRAFT_LAYER_RELU || t == GRAFT_LAYER_RELU6 || t == GRAFT_LAYER_LEAKY_RELU ||
           t == GRAFT_LAYER_GELU || t == GRAFT_LAYER_SIGMOID || t == GRAFT_LAYER_TANH;
}

static graft_status alloc(pipeline *p, size_t floats, cl_mem *m, graft_error *e)
{
    return buffer_create(p->ctx, floats * sizeof(float), m, e);
}

/* A tensor of count floats at off in an arena. */
static graft_status arena_slice(cl_mem arena, long off, long count, cl_mem *out, graft_error *e)
{
    cl_buffer_region region = {(size_t)off * sizeof(float), (size_t)count * sizeof(float)};
    cl_int rc;
    *out = clCreateSubBuffer(arena, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &region, &rc);
    graft_status s = cl_check(rc, "clCreateSubBuffer (a trained tensor)", e);
    if (s) *out = NULL;
    return s;
}

/* An arena of p->afloats zeros (the gaps between tensors must stay 0: the update runs over
 * them). */
static graft_status arena_create(pipeline *p, cl_mem *arena, graft_error *e)
{
    graft_status s = alloc(p, p->afloats, arena, e);
    if (!s) s = buffer_fill_f32(p->ctx, *arena, 0.f, p->afloats, e);
    return s;
}

/* No tensor in an arena: a buffer each. */
static void arena_none(pipeline *p)
{
    for (int i = 0; i < p->g->nlayers; i++)
        for (int j = 0; j < LAYER_MAX_PARAMS; j++) p->layers[i].aoff[j] = -1;
    p->afloats = 0;
}

static graft_status op_init(pipeline *p, player *pl, graft_error *e)
{
    graft_context *ctx = p->ctx;
    const layer *l = pl->l;
    graft_status s = GRAFT_OK;
    switch (l->type) {
    case GRAFT_LAYER_CONV2D: {
        conv2d_desc d;
        plan_conv_desc(l, &d);
        d.epi = plan_epilogue(p->g, &p->plan, (int)(pl - p->layers));
        d.fold_ready = plan_fold_ready(p->g, &p->plan, (int)(pl - p->layers), &d.epi_build);
        /* the path tuned for the forward alone where no backward runs through the layer */
        d.forward_only = !(p->o.training && p->plan.layers[pl - p->layers].backward);
        if (p->plan.layers[pl - p->layers].bn_fold >= 0) { /* the folded shift is its bias */
            d.bias = true;
            size_t k = (size_t)d.c / (size_t)d.groups * (size_t)d.kh * (size_t)d.kw;
            if ((s = alloc(p, (size_t)d.o * k, &pl->wf, e)) ||
                (s = alloc(p, (size_t)d.o, &pl->bf, e)))
                break;
        }
        /* a stem pair of the plan in a pipeline that never trains: xpad_plan may have the reader
         * compute the stem, and then neither builds a program of its own (unless a scan runs
         * them as they are) */
        const layer_plan *lp = &p->plan.layers[pl - p->layers];
        if (!p->o.training && !p->o.align && (lp->stem_into >= 0 || lp->stem >= 0))
            s = conv2d_op_init_lazy(ctx, &pl->op.conv, &d, e);
        else
            s = conv2d_op_init(ctx, &pl->op.conv, &d, e);
        if (!s && p->o.training && p->plan.layers[pl - p->layers].trains)
            s = conv2d_keep_input(ctx, &pl->op.conv, p->o.max_batch, e);
        /* its weights (or their fold) change only in pipeline_upload, which says so */
        pl->op.conv.w_const = !(p->o.training && p->plan.layers[pl - p->layers].trains);
        pl->pool_fused = !s && p->plan.layers[pl - p->layers].fused_pool >= 0 &&
                         conv2d_can_pool(&pl->op.conv);
        break;
    }
    case GRAFT_LAYER_DENSE:
    {
        epilogue ep = plan_epilogue(p->g, &p->plan, (int)(pl - p->layers));
        s = dense_op_init(ctx, &pl->op.dense, (int)shape_features(l->in), l->units, l->bias, e);
        if (!s) s = dense_op_set_epilogue(ctx, &pl->op.dense, &ep, e);
        /* its GEMMs' programs now, not at the first step: a transfer's head builds them while the
         * feature cache fills (compile_phase) */
        const layer_plan *lp = &p->plan.layers[pl - p->layers];
        if (!s)
            s = dense_prepare(ctx, &pl->op.dense, (int)token_rows(l, p->o.max_batch),
                              p->o.training && lp->trains, p->o.training && lp->need_dx[0], e);
        break;
    }
    case GRAFT_LAYER_BATCHNORM: {
        if (p->plan.layers[pl - p->layers].fused_into >= 0) return GRAFT_OK; /* folded: no op */
        int hw = l->out.rank == 3 ? l->out.d[1] * l->out.d[2] : 1;
        epilogue ep = plan_epilogue(p->g, &p->plan, (int)(pl - p->layers));
        s = batchnorm_op_init(ctx, &pl->op.bn, l->out.d[0], hw, l->momentum, l->eps, &ep, e);
        break;
    }
    case GRAFT_LAYER_PATCH_EMBED: /* patches as rows, then the shared dense GEMM path */
        s = dense_op_init(ctx, &pl->op.dense, l->in.d[0] * l->patch * l->patch, l->units, l->bias,
                          e);
        if (!s && (s = alloc(p, (size_t)p->o.max_batch * (size_t)shape_size(l->in), &pl->aux, e)))
            dense_op_free(&pl->op.dense);
        break;
    case GRAFT_LAYER_ATTENTION:
        s = attention_op_init(ctx, &pl->op.attn, l->in.d[0], l->in.d[1], l->heads, l->bias,
                              p->o.max_batch, p->o.training && p->plan.layers[pl - p->layers].backward,
                              attention_use_fused(l->in.d[0], l->in.d[1], l->heads, l->rate), l->rate, e);
        break;
    case GRAFT_LAYER_LAYERNORM:
        s = layernorm_op_init(ctx, &pl->op.ln, l->out.d[l->out.rank - 1], l->eps, l->affine, e);
        break;
    case GRAFT_LAYER_MAXPOOL:
    case GRAFT_LAYER_AVGPOOL:
    case GRAFT_LAYER_GLOBAL_AVGPOOL: {
        int of = p->plan.layers[pl - p->layers].pool_of;
        if (of >= 0 && p->layers[of].pool_fused) return GRAFT_OK; /* its conv runs it: no program */
        pool_kind k = l->type == GRAFT_LAYER_MAXPOOL   ? POOL_MAX
                      : l->type == GRAFT_LAYER_AVGPOOL ? POOL_AVG
                                                       : POOL_GLOBAL_AVG;
        int kh = k == POOL_GLOBAL_AVG ? l->in.d[1] : l->pool[0];
        int kw = k == POOL_GLOBAL_AVG ? l->in.d[2] : l->pool[1];
        int sh = k == POOL_GLOBAL_AVG ? 1 : l->pool_stride[0];
        int sw = k == POOL_GLOBAL_AVG ? 1 : l->pool_stride[1];
        int ph = k == POOL_GLOBAL_AVG ? 0 : l->pool_pad[0];
        int pw = k == POOL_GLOBAL_AVG ? 0 : l->pool_pad[1];
        s = pool_op_init(ctx, &pl->op.pool, k, l->in.d[0], l->in.d[1], l->in.d[2], kh, kw, sh, sw,
                         ph, pw, e);
        break;
    }
    case GRAFT_LAYER_DROPOUT:
        if (!p->o.training) return GRAFT_OK;
        s = dropout_op_init(ctx, &pl->op.drop, shape_size(l->out), l->rate, e);
        break;
    default:
        if (!is_act(l->type) || p->plan.layers[pl - p->layers].fused_into >= 0) return GRAFT_OK;
        s = act_op_init(ctx, &pl->op.act, act_of(l->type), shape_size(l->out), l->slope, e);
        break;
    }
    if (!s) pl->has_op = true;
    return s;
}

static void op_free(player *pl)
{
    if (!pl->has_op) return;
    switch (pl->l->type) {
    case GRAFT_LAYER_CONV2D: conv2d_op_free(&pl->op.conv); break;
    case GRAFT_LAYER_DENSE:
    case GRAFT_LAYER_PATCH_EMBED: dense_op_free(&pl->op.dense); break;
    case GRAFT_LAYER_BATCHNORM: batchnorm_op_free(&pl->op.bn); break;
    case GRAFT_LAYER_LAYERNORM: layernorm_op_free(&pl->op.ln); break;
    case GRAFT_LAYER_ATTENTION: attention_op_free(&pl->op.attn); break;
    case GRAFT_LAYER_MAXPOOL:
    case GRAFT_LAYER_AVGPOOL:
    case GRAFT_LAYER_GLOBAL_AVGPOOL: pool_op_free(&pl->op.pool); break;
    case GRAFT_LAYER_DROPOUT: dropout_op_free(&pl->op.drop); break;
    default: act_op_free(&pl->op.act); break;
    }
}

/* The tensor a conv2d's forward writes last: the fused pool's output, else its own. */
static int conv_out_tensor(const pipeline *p, int i)
{
    const layer_plan *lp = &p->plan.layers[i];
    return p->layers[i].pool_fused ? p->plan.y_tensor[lp->fused_pool] : p->plan.y_tensor[i];
}

/* Evaluation pipelines (no training, no alignment): a conv2d (with its fused activation,
 * folded batchnorm and pool) whose output only another conv2d on the rows or Winograd path
 * reads writes it straight into that conv's padded input, a buffer of its own zeroed once,
 * and the reader skips its padding pass (a copy of every activation in between: ~10 % of
 * fmnist-cnn's frozen prefix). Not where a scan for non-finite values runs (forward_from: it
 * reads the skipped tensor), and only while those buffers stay under an eighth of the
 * device's memory. GRAFT_XPAD=0 turns it off.
 * Where such a pair is a stem of the plan (plan_fusion) and the reader runs its forward on
 * Winograd F(4x4), the reader computes the stem inside its own forward instead
 * (conv2d_stem_init), from the stem's input: the stem's output is neither written nor read
 * again (fmnist-cnn's conv1: 6.4 MB a batch of 64; conv_wino4.cl), the values are the same to
 * the bit, and no padded input is made. Not in a scan either (both then run as without this
 * plan). GRAFT_STEM=0 turns only that off. */
static graft_status xpad_plan(pipeline *p, graft_error *e)
{
    const graph *g = p->g;
    for (int i = 0; i < g->nlayers; i++)
        p->layers[i].pad_to = p->layers[i].stem = p->layers[i].stem_into = -1;
    if (p->o.training || p->o.align) return GRAFT_OK;
    const char *env = getenv("GRAFT_XPAD"); /* 0: off, to compare (test_fusion.sh) */
    if (env && strcmp(env, "0") == 0) return GRAFT_OK;
    env = getenv("GRAFT_STEM"); /* 0: off, to compare (test_fusion.sh) */
    const bool stems = !(env && strcmp(env, "0") == 0);
    size_t total = 0, cap = p->ctx->info.global_mem_bytes / 8;
    for (int j = p->o.first; j < g->nlayers; j++) {
        player *pj = &p->layers[j];
        const layer *l = pj->l;
        if (l->type != GRAFT_LAYER_CONV2D || l->ninputs != 1 || l->inputs[0] < p->o.first)
            continue;
        const int t = p->plan.y_tensor[l->inputs[0]];
        int producer = -1, readers = 0;
        for (int k = p->o.first; k < g->nlayers; k++) {
            const layer *lk = &g->layers[k];
            if (lk->type == GRAFT_LAYER_CONV2D && p->layers[k].has_op && conv_out_tensor(p, k) == t)
                producer = k;
            if (p->plan.y_tensor[k] == t) continue; /* a view of it (fused, folded, flatten) */
            if (p->plan.layers[k].pool_of >= 0 && p->layers[p->plan.layers[k].pool_of].pool_fused)
                continue; /* written by its conv */
            for (int q = 0; q < lk->ninputs; q++)
                if (lk->inputs[q] >= p->o.first && p->plan.y_tensor[lk->inputs[q]] == t) readers++;
        }
        if (producer < 0 || readers != 1 || t == p->plan.y_tensor[g->nlayers - 1]) continue;
        player *pk = &p->layers[producer];
        if (stems && p->plan.layers[producer].stem_into == j && !pk->pool_fused &&
            !pk->xpad.buf) { /* the stem reads a plain input */
            bool fits = false;
            graft_status s = conv2d_stem_init(p->ctx, &pj->op.conv, &pk->op.conv, &fits, e);
            if (s) return s;
            if (fits) {
                pj->stem = producer;
                pk->stem_into = j;
                continue;
            }
        }
        conv2d_xpad xp, producer_own; /* the producer must be on the rows path too */
        if (!conv2d_xpad_layout(p->ctx, &pk->op.conv, 1, &producer_own) ||
            !conv2d_xpad_layout(p->ctx, &pj->op.conv, p->o.max_batch, &xp) ||
            total + xp.bytes > cap)
            continue;
        graft_status s = buffer_create(p->ctx, xp.bytes, &xp.buf, e);
        /* zeros from the host: the borders are never written (and Oclgrind sees them written) */
        if (!s) s = zero_from_host(p->ctx, xp.buf, xp.bytes, e);
        if (s) {
            if (xp.buf) clReleaseMemObject(xp.buf);
            return s;
        }
        total += xp.bytes;
        pj->xpad = xp;
        pk->pad_to = j;
    }
    return GRAFT_OK;
}

/* The convolutions' workspace, as large as the largest need of the ops this pipeline built, on
 * the paths they took, at its largest batch (the plan's mem.workspace is a bound over every path
 * and device): a frozen prefix whose wino4 layers read inputs the layer before padded, or a
 * stem, needs none, where the bound is an im2col column matrix (fmnist-feature-extract's 61 MiB
 * at batch 64); a GPU's igemm layers only their weight gradients' partial sums. A scan runs the
 * layers unfused (forward_from), so turning it on may grow it. */
static size_t workspace_need(const pipeline *p, bool scan)
{
    size_t need = 0;
    for (int i = p->o.first; i < p->g->nlayers; i++) {
        const player *pl = &p->layers[i];
        if (!pl->l || !pl->has_op || pl->l->type != GRAFT_LAYER_CONV2D) continue;
        if (!scan && pl->stem_into >= 0) continue; /* its reader computes it */
        const bool backward = p->o.training && p->plan.layers[i].backward;
        const bool padded = !scan && (pl->stem >= 0 || pl->xpad.buf);
        size_t b = conv2d_op_workspace_bytes(p->ctx, &pl->op.conv, p->o.max_batch, backward,
                                             padded);
        if (b > need) need = b;
    }
    return need;
}

/* workspace at least that need; the plan's memory says what is allocated (graft bench) */
static graft_status workspace_fit(pipeline *p, bool scan, graft_error *e)
{
    plan_memory *m = &p->plan.mem;
    size_t need = workspace_need(p, scan);
    if (need <= m->workspace) return GRAFT_OK; /* m->workspace: what is allocated */
    if (p->workspace) { /* released once the passes queued on it are done (OpenCL's rule) */
        clReleaseMemObject(p->workspace);
        p->workspace = NULL;
    }
    m->total -= m->workspace;
    m->workspace = 0;
    graft_status s = buffer_create(p->ctx, need, &p->workspace, e);
    if (!s) m->workspace = need, m->total += need;
    return s;
}

graft_status pipeline_create(graft_context *ctx, const graph *g, const pipeline_options *o,
                             pipeline **out, graft_error *e)
{
    *out = NULL;
    pipeline *p = calloc(1, sizeof *p);
    if (!p) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    p->ctx = ctx;
    p->g = g;
    p->o = *o;
    if (p->o.max_batch < 1) p->o.max_batch = 1;
    const size_t B = (size_t)p->o.max_batch;
    graft_status s = plan_analyse(g, o->training, o->bn_train, false, o->optimizer, o->l2sp,
                                  o->first, o->max_batch, &p->plan, e);
    if (s) {
        free(p);
        return s;
    }
    p->layers = calloc((size_t)g->nlayers, sizeof *p->layers);
    p->slots = calloc((size_t)(p->plan.nslots + 1), sizeof *p->slots);
    p->host_loss = malloc(B * sizeof(float));
    p->host_correct = malloc(B * sizeof(int));
    if (!p->layers || !p->slots || !p->host_loss || !p->host_correct) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        goto fail;
    }
    for (int sl = 0; sl < p->plan.nslots; sl++)
        if ((s = alloc(p, B * (size_t)p->plan.slot_size[sl], &p->slots[sl], e))) goto fail;
    if ((s = alloc(p, B * (size_t)p->plan.tensors[0].size, &p->input, e))) goto fail;
    if (p->plan.scratch_size && (s = alloc(p, B * (size_t)p->plan.scratch_size, &p->scratch, e)))
        goto fail;
    if ((s = buffer_create(ctx, B * sizeof(int), &p->labels, e))) goto fail;
    if ((s = alloc(p, B, &p->loss, e))) goto fail;
    if ((s = buffer_create(ctx, B * sizeof(int), &p->correct, e))) goto fail;
    if ((s = buffer_create(ctx, B * sizeof(int), &p->rows, e))) goto fail;
    /* mapped without waiting (the feature cache's prefix may still be running): the first
     * stage_take of each area waits for its map */
    for (int k = 0; k < 2; k++)
        if ((s = host_buffer_create(ctx, B * ((size_t)p->plan.tensors[0].size * sizeof(float) +
                                              2 * sizeof(int)),
                                    &p->stage[k], &p->staged[k], e)))
            goto fail;
    p->stat_stride = buffer_slice_stride(ctx, B * sizeof(float)); /* int and float: 4 bytes */
    if ((s = buffer_slices(ctx, PIPELINE_STATS_SLOTS, p->stat_stride, &p->stat_loss, p->loss_slot,
                           e)) ||
        (s = buffer_slices(ctx, PIPELINE_STATS_SLOTS, p->stat_stride, &p->stat_correct,
                           p->correct_slot, e)))
        goto fail;
    /* only read-backs enqueued after the map write there */
    cl_event stat_map = NULL;
    s = host_buffer_create(ctx, 2 * PIPELINE_STATS_SLOTS * p->stat_stride, &p->stat_host,
                           &stat_map, e);
    if (stat_map) clReleaseEvent(stat_map);
    if (s)
        goto fail;
    if (!o->features_only) {
        int k = (int)shape_size(g->layers[g->nlayers - 1].out);
        if ((s = xent_op_init(ctx, &p->xent, k, o->label_smoothing, e))) goto fail;
        p->has_xent = true;
    }
    if (o->training) {
        if ((s = optim_op_init(ctx, &p->optim, e))) goto fail;
        p->has_optim = true;
    }
    if (o->align) {
        const int al = o->align_layer;
        if (!o->training || al < o->first || al >= g->nlayers - 1) {
            s = err_set(e, GRAFT_STATUS_INTERNAL, "alignment on layer %d of %d", al, g->nlayers);
            goto fail;
        }
        if (!p->plan.layers[al].backward) {
            s = err_set(e, GRAFT_STATUS_BAD_RECIPE,
                        "adapt.layer: no gradient reaches '%s' (it and every layer before it are "
                        "frozen), so an alignment loss there trains nothing",
                        g->layers[al].name);
            goto fail;
        }
        const long d = shape_size(g->layers[al].out);
        if (o->align != ALIGN_DANN) {
            if ((s = align_op_init(ctx, &p->align, (align_kind)o->align, (int)d, o->max_batch, e)))
                goto fail;
        } else {
            const graph *dg = o->disc;
            if (!dg || dg->nlayers < 1 || dg->nlayers > ADAPT_MAX_DISC + 1 ||
                shape_size(dg->input) != d) {
                s = err_set(e, GRAFT_STATUS_INTERNAL, "DANN without a matching discriminator");
                goto fail;
            }
            p->nd = dg->nlayers;
            for (int L = 0; L < p->nd; L++) {
                const layer *l = &dg->layers[L];
                epilogue ep = {.kind = L < p->nd - 1 ? ACT_RELU + 1 : 0};
                if ((s = dense_op_init(ctx, &p->dop[L], (int)shape_size(l->in), l->units, true, e)) ||
                    (s = dense_op_set_epilogue(ctx, &p->dop[L], &ep, e)))
                    goto fail;
                for (int j = 0; j < 2; j++) {
                    size_t cnt = (size_t)l->params[j].count;
                    if ((s = alloc(p, cnt, &p->dw[L][j], e)) || (s = alloc(p, cnt, &p->dg[L][j], e)))
                        goto fail;
                    if (o->optimizer != OPT_SGD && (s = alloc(p, cnt, &p->dm[L][j], e))) goto fail;
                    if (o->optimizer >= OPT_ADAM && (s = alloc(p, cnt, &p->dv[L][j], e))) goto fail;
                }
                if (L < p->nd - 1 && o->disc_dropout > 0 &&
                    (s = dropout_op_init(ctx, &p->ddrop[L], l->units, o->disc_dropout, e)))
                    goto fail;
                if ((s = alloc(p, B * (size_t)l->units, &p->dact[L], e)) ||
                    (s = alloc(p, B * (size_t)l->units, &p->dgrad[L], e)))
                    goto fail;
            }
            if ((s = alloc(p, B * (size_t)d, &p->dfeat, e)) || (s = alloc(p, B, &p->dloss, e)))
                goto fail;
        }
        if ((s = alloc(p, 1, &p->align_sum, e)) ||
            (s = buffer_fill_f32(ctx, p->align_sum, 0.f, 1, e)))
            goto fail;
    }
    /* the arenas of the trained tensors (see struct pipeline) */
    arena_none(p);
    for (int i = o->first; i < g->nlayers; i++)
        for (int j = 0; j < LAYER_MAX_PARAMS; j++) {
            const layer *l = &g->layers[i];
            if (j >= l->nparams || !p->plan.layers[i].trains || l->params[j].is_buffer) continue;
            size_t off = buffer_slice_stride(ctx, p->afloats * sizeof(float)) / sizeof(float);
            p->layers[i].aoff[j] = (long)off;
            p->afloats = off + (size_t)l->params[j].count;
        }
    /* a model past one allocation keeps a buffer per tensor (and a launch per update); so does
     * GRAFT_ARENA=0, for comparisons (tests/train/test_fusion.sh: bitwise-equal training) */
    const char *arena_env = getenv("GRAFT_ARENA");
    if ((arena_env && strcmp(arena_env, "0") == 0) ||
        (ctx->info.max_alloc_bytes && p->afloats * sizeof(float) > ctx->info.max_alloc_bytes))
        arena_none(p);
    if (p->afloats &&
        ((s = arena_create(p, &p->aw, e)) || (s = arena_create(p, &p->ag, e)) ||
         (o->optimizer != OPT_SGD && (s = arena_create(p, &p->am, e))) ||
         (o->optimizer >= OPT_ADAM && (s = arena_create(p, &p->av, e)))))
        goto fail;
    for (int i = o->first; i < g->nlayers; i++) {
        player *pl = &p->layers[i];
        const layer *l = &g->layers[i];
        const layer_plan *lp = &p->plan.layers[i];
        pl->l = l;
        prof_set_label(ctx, "%s", l->name);
        if ((s = op_init(p, pl, e))) {
            err_prefix(e, "layer '%s'", l->name);
            goto fail;
        }
        for (int j = 0; j < l->nparams; j++) {
            const param_info *pi = &l->params[j];
            long off = pl->aoff[j], cnt = (long)pi->count;
            if (off >= 0) {
                if ((s = arena_slice(p->aw, off, cnt, &pl->w[j], e)) ||
                    (s = arena_slice(p->ag, off, cnt, &pl->g[j], e)) ||
                    (p->am && (s = arena_slice(p->am, off, cnt, &pl->m[j], e))) ||
                    (p->av && (s = arena_slice(p->av, off, cnt, &pl->v[j], e))))
                    goto fail;
                continue;
            }
            if ((s = alloc(p, (size_t)pi->count, &pl->w[j], e))) goto fail;
            if (!lp->trains || pi->is_buffer) continue;
            if ((s = alloc(p, (size_t)pi->count, &pl->g[j], e))) goto fail;
            if (o->optimizer != OPT_SGD && (s = alloc(p, (size_t)pi->count, &pl->m[j], e)))
                goto fail;
            if (o->optimizer >= OPT_ADAM && (s = alloc(p, (size_t)pi->count, &pl->v[j], e)))
                goto fail;
        }
        if (o->skip_nonfinite && lp->bn_batch_stats)
            for (int j = 0; j < l->nparams; j++)
                if (l->params[j].is_buffer &&
                    (s = alloc(p, (size_t)l->params[j].count, &pl->keep[j], e)))
                    goto fail;
        if (l->type == GRAFT_LAYER_MAXPOOL &&
            (s = buffer_create(ctx, B * (size_t)shape_size(l->out) * sizeof(int), &pl->idx, e)))
            goto fail;
        if (l->type == GRAFT_LAYER_BATCHNORM && (o->training || o->bn_restat)) {
            if ((s = alloc(p, (size_t)l->out.d[0], &pl->save_mean, e))) goto fail;
            if ((s = alloc(p, (size_t)l->out.d[0], &pl->save_invstd, e))) goto fail;
        }
        if (l->type == GRAFT_LAYER_LAYERNORM) { /* every forward writes them, evaluation too */
            size_t rows = B * (size_t)(shape_size(l->out) / l->out.d[l->out.rank - 1]);
            if ((s = alloc(p, rows, &pl->save_mean, e))) goto fail;
            if ((s = alloc(p, rows, &pl->save_invstd, e))) goto fail;
        }
    }
    /* the workspace: not the plan's bound over every path, what the paths taken need */
    p->plan.mem.total -= p->plan.mem.workspace;
    p->plan.mem.workspace = 0;
    if ((s = xpad_plan(p, e)) || (s = workspace_fit(p, false, e))) goto fail;
    *out = p;
    return GRAFT_OK;
fail:
    pipeline_free(p);
    return s;
}

static void release(cl_mem *m)
{
    if (*m) clReleaseMemObject(*m);
    *m = NULL;
}

void pipeline_free(pipeline *p)
{
    if (!p) return;
    if (p->ctx && p->ctx->queue) queue_finish(p->ctx, NULL);
    if (p->layers)
        for (int i = 0; i < p->g->nlayers; i++) {
            player *pl = &p->layers[i];
            if (!pl->l) continue;
            op_free(pl);
            for (int j = 0; j < LAYER_MAX_PARAMS; j++) {
                release(&pl->w[j]);
                release(&pl->g[j]);
                release(&pl->m[j]);
                release(&pl->v[j]);
                release(&pl->w0[j]);
                release(&pl->keep[j]);
            }
            release(&pl->idx);
            release(&pl->aux);
            release(&pl->xpad.buf);
            release(&pl->wf);
            release(&pl->bf);
            release(&pl->save_mean);
            release(&pl->save_invstd);
        }
    release(&p->aw); /* after their sub-buffers above */
    release(&p->ag);
    release(&p->am);
    release(&p->av);
    release(&p->aw0);
    if (p->slots)
        for (int s = 0; s < p->plan.nslots; s++) release(&p->slots[s]);
    release(&p->input);
    release(&p->scratch);
    release(&p->workspace);
    release(&p->labels);
    release(&p->loss);
    release(&p->correct);
    release(&p->rows);
    for (int k = 0; k < 2; k++) {
        if (p->staged[k]) clReleaseEvent(p->staged[k]);
        host_buffer_free(p->ctx, &p->stage[k]);
    }
    if (p->stat_read) clReleaseEvent(p->stat_read);
    if (p->logits_read) clReleaseEvent(p->logits_read);
    host_buffer_free(p->ctx, &p->stat_host);
    for (int k = 0; k < PIPELINE_STATS_SLOTS; k++) {
        release(&p->loss_slot[k]);
        release(&p->correct_slot[k]);
    }
    release(&p->stat_loss);
    release(&p->stat_correct);
    if (p->has_xent) xent_op_free(&p->xent);
    if (p->has_optim) optim_op_free(&p->optim);
    if (p->o.align && p->o.align != ALIGN_DANN) align_op_free(&p->align);
    for (int L = 0; L < p->nd; L++) {
        dense_op_free(&p->dop[L]);
        if (L < p->nd - 1) dropout_op_free(&p->ddrop[L]);
        for (int j = 0; j < 2; j++) {
            release(&p->dw[L][j]);
            release(&p->dg[L][j]);
            release(&p->dm[L][j]);
            release(&p->dv[L][j]);
        }
        release(&p->dact[L]);
        release(&p->dgrad[L]);
    }
    release(&p->dfeat);
    release(&p->dloss);
    release(&p->align_sum);
    for (int k = 0; k < p->nbuckets; k++)
        if (p->bucket_read[k]) clReleaseEvent(p->bucket_read[k]);
    host_buffer_free(p->ctx, &p->grad_host);
    if (p->sync_read) clReleaseEvent(p->sync_read);
    host_buffer_free(p->ctx, &p->sync_host);
    free(p->bucket_layer);
    free(p->bucket_off);
    free(p->bucket_count);
    free(p->layer_bucket);
    free(p->bucket_read);
    plan_free(&p->plan);
    free(p->layers);
    free(p->slots);
    free(p->host_loss);
    free(p->host_correct);
    free(p);
}

long pipeline_input_size(const pipeline *p)
{
    return p->plan.tensors[0].size;
}

long pipeline_output_size(const pipeline *p)
{
    return shape_size(p->g->layers[p->g->nlayers - 1].out);
}

void pipeline_layer_kernel(const pipeline *p, int i, char *buf, size_t n)
{
    if (n) buf[0] = '\0';
    if (i < 0 || i >= p->g->nlayers) return;
    const player *pl = &p->layers[i];
    if (pl->has_op && pl->l->type == GRAFT_LAYER_CONV2D) conv2d_op_describe(&pl->op.conv, buf, n);
}

graft_status pipeline_upload(pipeline *p, param_store *s, graft_error *e)
{
    graft_context *ctx = p->ctx;
    graft_status st;
    for (int i = p->o.first; i < p->g->nlayers; i++) {
        player *pl = &p->layers[i];
        if (pl->l->type == GRAFT_LAYER_CONV2D) /* w_const's */
            pl->op.conv.wino_u_of = pl->op.conv.wino4_u_of = NULL;
        for (int j = 0; j < pl->l->nparams; j++) {
            const param_info *pi = &pl->l->params[j];
            param_entry *pe = store_find(s, pi->name);
            if (!pe || pe->count != pi->count)
                return err_set(e, GRAFT_STATUS_INTERNAL, "no host tensor for %s", pi->name);
            size_t bytes = (size_t)pi->count * sizeof(float);
            if ((st = buffer_write(ctx, pl->w[j], 0, pe->data, bytes, e))) return st;
            pl->t[j] = pe->t;
            if (pl->m[j]) {
                if (pe->m) st = buffer_write(ctx, pl->m[j], 0, pe->m, bytes, e);
                else st = buffer_fill_f32(ctx, pl->m[j], 0.f, (size_t)pi->count, e);
                if (st) return st;
            }
            if (pl->v[j]) {
                if (pe->v) st = buffer_write(ctx, pl->v[j], 0, pe->v, bytes, e);
                else st = buffer_fill_f32(ctx, pl->v[j], 0.f, (size_t)pi->count, e);
                if (st) return st;
            }
            if (p->o.l2sp && pl->g[j] && pe->anchor) {
                if (!pl->w0[j] && pl->aoff[j] >= 0) {
                    if (!p->aw0 && (st = arena_create(p, &p->aw0, e))) return st;
                    if ((st = arena_slice(p->aw0, pl->aoff[j], pi->count, &pl->w0[j], e)))
                        return st;
                }
                if (!pl->w0[j] && (st = alloc(p, (size_t)pi->count, &pl->w0[j], e))) return st;
                if ((st = buffer_write(ctx, pl->w0[j], 0, pe->anchor, bytes, e))) return st;
            }
        }
    }
    for (int L = 0; L < p->nd; L++)
        for (int j = 0; j < 2; j++) {
            const param_info *pi = &p->o.disc->layers[L].params[j];
            param_entry *pe = store_find(s, pi->name);
            if (!pe || pe->count != pi->count)
                return err_set(e, GRAFT_STATUS_INTERNAL, "no host tensor for %s", pi->name);
            size_t bytes = (size_t)pi->count * sizeof(float);
            if ((st = buffer_write(ctx, p->dw[L][j], 0, pe->data, bytes, e))) return st;
            p->dt[L][j] = pe->t;
            cl_mem mv[2] = {p->dm[L][j], p->dv[L][j]};
            float *hv[2] = {pe->m, pe->v};
            for (int q = 0; q < 2; q++) {
                if (!mv[q]) continue;
                st = hv[q] ? buffer_write(ctx, mv[q], 0, hv[q], bytes, e)
                           : buffer_fill_f32(ctx, mv[q], 0.f, (size_t)pi->count, e);
                if (st) return st;
            }
        }
    /* folded batchnorms: their conv's weights and bias, from the tensors just written (neither
     * layer runs backward, so they stay valid until the next upload) */
    for (int i = p->o.first; i < p->g->nlayers; i++) {
        int b = p->plan.layers[i].bn_fold;
        if (b < 0) continue;
        player *pl = &p->layers[i], *bn = &p->layers[b];
        const layer *l = pl->l;
        int k = l->in.d[0] / l->groups * l->kernel[0] * l->kernel[1];
        prof_set_label(ctx, "%s.fold", bn->l->name);
        if ((st = batchnorm_fold(ctx, bn->l->out.d[0], bn->l->eps, k, P(pl, ".weight"),
                                 P(pl, ".bias"), P(bn, ".weight"), P(bn, ".bias"),
                                 P(bn, ".running_mean"), P(bn, ".running_var"), pl->wf, pl->bf,
                                 e)))
            return st;
    }
    return GRAFT_OK;
}

/* Enqueue the read of m into *dst (allocated here the first time); pipeline_download waits once
 * for all of them. */
static graft_status read_into(graft_context *ctx, cl_mem m, float **dst, long count, graft_error *e)
{
    if (!*dst && !(*dst = malloc((size_t)count * sizeof(float))))
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    return transfer_read_async(ctx, m, 0, *dst, (size_t)count * sizeof(float), NULL, e);
}

static graft_status download_all(pipeline *p, param_store *s, graft_error *e);

/* Every trainable tensor and its optimizer state to the store: the reads are enqueued together
 * and waited for once (at each epoch end; one blocking read each was a host synchronisation each,
 * 12 for a two-layer head). */
graft_status pipeline_download(pipeline *p, param_store *s, graft_error *e)
{
    graft_status st = download_all(p, s, e);
    graft_error ignored = {0};
    /* after a failed enqueue the reads before it may still be writing to the store */
    graft_status f = queue_finish(p->ctx, st ? &ignored : e);
    return st ? st : f;
}

static graft_status download_all(pipeline *p, param_store *s, graft_error *e)
{
    graft_status st;
    for (int i = p->o.first; i < p->g->nlayers; i++) {
        player *pl = &p->layers[i];
        for (int j = 0; j < pl->l->nparams; j++) {
            const param_info *pi = &pl->l->params[j];
            param_entry *pe = store_find(s, pi->name);
            if (!pe) return err_set(e, GRAFT_STATUS_INTERNAL, "no host tensor for %s", pi->name);
            if ((st = read_into(p->ctx, pl->w[j], &pe->data, pi->count, e))) return st;
            if (pl->m[j] && (st = read_into(p->ctx, pl->m[j], &pe->m, pi->count, e))) return st;
            if (pl->v[j] && (st = read_into(p->ctx, pl->v[j], &pe->v, pi->count, e))) return st;
            if (pl->g[j]) pe->t = pl->t[j];
        }
    }
    for (int L = 0; L < p->nd; L++)
        for (int j = 0; j < 2; j++) {
            const param_info *pi = &p->o.disc->layers[L].params[j];
            param_entry *pe = store_find(s, pi->name);
            if (!pe) return err_set(e, GRAFT_STATUS_INTERNAL, "no host tensor for %s", pi->name);
            if ((st = read_into(p->ctx, p->dw[L][j], &pe->data, pi->count, e))) return st;
            if (p->dm[L][j] && (st = read_into(p->ctx, p->dm[L][j], &pe->m, pi->count, e))) return st;
            if (p->dv[L][j] && (st = read_into(p->ctx, p->dv[L][j], &pe->v, pi->count, e))) return st;
            pe->t = p->dt[L][j];
        }
    return GRAFT_OK;
}

/* ---- forward ---- */

static graft_status all_finite(graft_context *ctx, cl_mem m, size_t count, bool *finite,
                               graft_error *e)
{
    *finite = true;
    if (!m || !count) return GRAFT_OK;
    float *h = malloc(count * sizeof *h);
    if (!h) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    graft_status s = buffer_read(ctx, m, 0, h, count * sizeof *h, e);
    for (size_t k = 0; !s && k < count && *finite; k++)
        *finite = isfinite(h[k]);
    free(h);
    return s;
}

/* Scan mode (diagnosing a non-finite loss): after layer i ran, read its parameters and its output
 * back and remember it when either holds a NaN or an infinity. Blocking and slow; only for the
 * replay of one failing step. */
static graft_status scan_layer(pipeline *p, int i, int n, graft_error *e)
{
    const player *pl = &p->layers[i];
    bool ok = true;
    graft_status s = GRAFT_OK;
    if (i == p->o.first &&
        !(s = all_finite(p->ctx, p->input, (size_t)n * (size_t)p->plan.tensors[0].size, &ok, e)) &&
        !ok) {
        p->scan_layer = PIPELINE_SCAN_INPUT;
        return GRAFT_OK;
    }
    for (int j = 0; j < pl->l->nparams && ok && !s; j++)
        s = all_finite(p->ctx, pl->w[j], (size_t)pl->l->params[j].count, &ok, e);
    if (!s && !ok) {
        p->scan_layer = i;
        p->scan_weights = true;
        return GRAFT_OK;
    }
    int shown = p->plan.layers[i].fused_act >= 0 ? p->plan.layers[i].fused_act : i;
    if (!s)
        s = all_finite(p->ctx, Y(p, i), (size_t)n * (size_t)shape_size(p->g->layers[shown].out),
                       &ok, e);
    if (!s && !ok) p->scan_layer = i;
    return s;
}

/* sync_bn: stop the step at batchnorm i (forward or backward), its partials just computed into
 * op->part, and start reading them out. */
static graft_status sync_pause(pipeline *p, int i, bool bwd, int n, graft_error *e)
{
    p->sync_paused = true;
    p->sync_layer = i;
    p->sync_bwd = bwd;
    return batchnorm_sync_read(p->ctx, &p->layers[i].op.bn, n, p->sync_host.ptr, &p->sync_read, e);
}

/* Whether batchnorm i of a training step runs synchronised (train.sync_bn, batch statistics). */
static bool sync_bn_layer(const pipeline *p, int i)
{
    return p->sync_step && p->plan.layers[i].bn_batch_stats;
}

static graft_status forward_from(pipeline *p, int from, int n, bool train, graft_error *e)
{
    graft_context *ctx = p->ctx;
    const graph *g = p->g;
    graft_status s = GRAFT_OK;
    for (int i = from; i < g->nlayers && !s && !p->sync_paused; i++) {
        player *pl = &p->layers[i];
        const layer *l = pl->l;
        const layer_plan *lp = &p->plan.layers[i];
        cl_mem x = Y(p, l->inputs[0]), y = Y(p, i);
        if (lp->fused_into >= 0) continue; /* its producer wrote it */
        if (lp->pool_of >= 0 && p->layers[lp->pool_of].pool_fused) continue; /* and this */
        if (pl->stem_into >= 0 && !p->scan) continue; /* its consumer computes it */
        prof_set_label(ctx, "%s.fwd", l->name);
        switch (l->type) {
        case GRAFT_LAYER_CONV2D:
            pl->op.conv.fwd_only = !(train && lp->backward);
            if (pl->stem >= 0 && !p->scan) { /* xpad_plan: the conv before it, inside */
                const player *ps = &p->layers[pl->stem];
                const layer_plan *sp = &p->plan.layers[pl->stem];
                const bool pool = pl->pool_fused, fold = lp->bn_fold >= 0,
                           sfold = sp->bn_fold >= 0;
                s = conv2d_fwd_stem(ctx, &pl->op.conv, n, Y(p, ps->l->inputs[0]),
                                    sfold ? ps->wf : P(ps, ".weight"),
                                    sfold ? ps->bf : P(ps, ".bias"),
                                    fold ? pl->wf : P(pl, ".weight"),
                                    fold ? pl->bf : P(pl, ".bias"),
                                    pool ? NULL : y, pool ? Y(p, lp->fused_pool) : NULL,
                                    pl->pad_to >= 0 ? &p->layers[pl->pad_to].xpad : NULL, e);
            } else if (!p->scan && (pl->pad_to >= 0 || pl->xpad.buf)) { /* xpad_plan */
                const bool pool = pl->pool_fused, fold = lp->bn_fold >= 0;
                s = conv2d_fwd_io(ctx, &pl->op.conv, n, x, pl->xpad.buf ? &pl->xpad : NULL,
                                  fold ? pl->wf : P(pl, ".weight"), fold ? pl->bf : P(pl, ".bias"),
                                  pool ? NULL : y, pool ? Y(p, lp->fused_pool) : NULL, NULL,
                                  pl->pad_to >= 0 ? &p->layers[pl->pad_to].xpad : NULL,
                                  p->workspace, e);
            } else if (pl->pool_fused) { /* and the max-pool after it */
                /* its full-size output and the pool's indexes: for a backward or a scan only */
                const bool keep = (train && lp->backward) || p->scan;
                s = conv2d_fwd_pool(ctx, &pl->op.conv, n, x, P(pl, ".weight"), P(pl, ".bias"),
                                    keep ? y : NULL, Y(p, lp->fused_pool),
                                    keep ? p->layers[lp->fused_pool].idx : NULL, p->workspace, e);
            }
            else if (lp->bn_fold >= 0) /* the batchnorm after it, folded in (pipeline_upload) */
                s = conv2d_fwd(ctx, &pl->op.conv, n, x, pl->wf, pl->bf, y, p->workspace, e);
            else
                s = conv2d_fwd(ctx, &pl->op.conv, n, x, P(pl, ".weight"), P(pl, ".bias"), y,
                               p->workspace, e);
            break;
        case GRAFT_LAYER_DENSE:
            s = dense_fwd(ctx, &pl->op.dense, (int)token_rows(l, n), x, P(pl, ".weight"),
                          P(pl, ".bias"), y, e);
            break;
        case GRAFT_LAYER_BATCHNORM:
            if (train && sync_bn_layer(p, i)) {
                if (!p->sync_global) {
                    s = batchnorm_sync_stats(ctx, &pl->op.bn, n, x, e);
                    if (!s) s = sync_pause(p, i, false, n, e);
                    break;
                }
                s = batchnorm_sync_fwd(ctx, &pl->op.bn, p->sync_N, p->sync_global, n, x,
                                       P(pl, ".weight"), P(pl, ".bias"), P(pl, ".running_mean"),
                                       P(pl, ".running_var"), pl->save_mean, pl->save_invstd, y,
                                       e);
                p->sync_global = NULL;
            } else if ((train && lp->bn_batch_stats) || p->o.bn_restat)
                s = batchnorm_fwd_train(ctx, &pl->op.bn, n, x, P(pl, ".weight"), P(pl, ".bias"),
                                        P(pl, ".running_mean"), P(pl, ".running_var"),
                                        pl->save_mean, pl->save_invstd, y, e);
            else
                s = batchnorm_fwd_eval(ctx, &pl->op.bn, n, x, P(pl, ".weight"), P(pl, ".bias"),
                                       P(pl, ".running_mean"), P(pl, ".running_var"), y, e);
            break;
        case GRAFT_LAYER_PATCH_EMBED:
            s = token_patches(ctx, n, l->in.d[0], l->in.d[1], l->in.d[2], l->patch, false, x,
                              pl->aux, e);
            if (!s)
                s = dense_fwd(ctx, &pl->op.dense, (int)token_rows(l, n), pl->aux,
                              P(pl, ".weight"), P(pl, ".bias"), y, e);
            break;
        case GRAFT_LAYER_CLASS_TOKEN: { /* its token in row 0, the input's tokens after it */
            const int t = l->in.d[0], d = l->in.d[1];
            s = token_broadcast(ctx, n, (t + 1) * d, d, pl->w[0], y, e);
            if (!s) s = concat_fwd(ctx, n, t, t + 1, 1, d, x, y, e);
            break;
        }
        case GRAFT_LAYER_POSITION_EMBEDDING:
            s = token_add(ctx, n, (int)shape_size(l->out), x, pl->w[0], y, e);
            break;
        case GRAFT_LAYER_TOKEN_SELECT: /* row `index` of each sample */
            s = concat_bwd(ctx, n, 1, l->in.d[0], l->index, l->in.d[1], x, y, e);
            break;
        case GRAFT_LAYER_ATTENTION: {
            attn_params w;
            attn_params_of(pl, false, &w);
            const attn_rng rng = {p->o.dropout_seed + (uint64_t)i, p->step, p->row0};
            s = attention_fwd(ctx, &pl->op.attn, n, x, &w, train ? &rng : NULL, y, e);
            break;
        }
        case GRAFT_LAYER_TOKEN_MEAN:
            s = token_mean_fwd(ctx, n, l->in.d[0], l->in.d[1], x, y, e);
            break;
        case GRAFT_LAYER_LAYERNORM:
            s = layernorm_fwd(ctx, &pl->op.ln, token_rows(l, n), x, P(pl, ".weight"), P(pl, ".bias"), y,
                              pl->save_mean, pl->save_invstd, e);
            break;
        case GRAFT_LAYER_MAXPOOL:
        case GRAFT_LAYER_AVGPOOL:
        case GRAFT_LAYER_GLOBAL_AVGPOOL:
            s = pool_fwd(ctx, &pl->op.pool, n, x, y, pl->idx, e);
            break;
        case GRAFT_LAYER_FLATTEN:
        case GRAFT_LAYER_DROPOUT:
            if (x == y) break; /* a view */
            if (l->type == GRAFT_LAYER_DROPOUT && train)
                s = dropout_fwd(ctx, &pl->op.drop, n, p->row0, p->o.dropout_seed + (uint64_t)i,
                                p->step, x, y, e);
            else
                s = copy_f32(ctx, (long)n * shape_size(l->out), x, y, e);
            break;
        case GRAFT_LAYER_ADD: {
            long count = (long)n * shape_size(l->out);
            s = add2_f32(ctx, count, x, Y(p, l->inputs[1]), y, e);
            for (int q = 2; q < l->ninputs && !s; q++)
                s = accumulate_f32(ctx, count, Y(p, l->inputs[q]), y, e);
            break;
        }
        case GRAFT_LAYER_CONCAT: {
            int hw = (int)(shape_size(l->out) / l->out.d[0]), c0 = 0;
            for (int q = 0; q < l->ninputs && !s; q++) {
                const layer *in = l->inputs[q] < 0 ? NULL : &g->layers[l->inputs[q]];
                int cx = in ? in->out.d[0] : g->input.d[0];
                s = concat_fwd(ctx, n, cx, l->out.d[0], c0, hw, Y(p, l->inputs[q]), y, e);
                c0 += cx;
            }
            break;
        }
        default:
            s = act_fwd(ctx, &pl->op.act, n, x, y, e);
            break;
        }
        if (s) err_prefix(e, "layer '%s' forward", l->name);
        if (!s && p->scan && p->scan_layer == -1) s = scan_layer(p, i, n, e);
    }
    return s;
}

static graft_status forward(pipeline *p, int n, bool train, graft_error *e)
{
    return forward_from(p, p->o.first, n, train, e);
}

/* ---- backward ---- */

/* Where layer i writes the gradient for its input q: straight into the input's DY, or into the
 * scratch buffer when it must be added to what another consumer wrote. */
static cl_mem dx_target(pipeline *p, int i, int q, bool *accumulate)
{
    *accumulate = p->plan.dx_accumulate[i * LAYER_MAX_INPUTS + q] != 0;
    return *accumulate ? p->scratch : DY(p, p->g->layers[i].inputs[q]);
}

static graft_status dx_finish(pipeline *p, int i, int q, int n, bool accumulate, graft_error *e)
{
    if (!accumulate) return GRAFT_OK;
    int in = p->g->layers[i].inputs[q];
    return accumulate_f32(p->ctx, (long)n * shape_size(p->g->layers[in].out), p->scratch,
                          DY(p, in), e);
}

/* The dropout key of the discriminator's hidden layer L: after the model's layers' keys. */
static uint64_t disc_seed(const pipeline *p, int L)
{
    return p->o.dropout_seed + (uint64_t)p->g->nlayers + (uint64_t)L;
}

/* DANN at the aligned layer i: the discriminator's forward on its output, binary cross-entropy
 * (source 1, target 0; the mean times the weight), the discriminator's backward into its
 * gradients, and the gradient reversal: the features' gradient gets -lambda times what reaches
 * the discriminator's input. */
static graft_status dann_step(pipeline *p, int i, graft_error *e)
{
    graft_context *ctx = p->ctx;
    const int ns = p->align_ns, n = ns + p->align_nt, last = p->nd - 1;
    cl_mem x = Y(p, i);
    graft_status s = GRAFT_OK;
    /* dropout after a hidden layer: in place on its (ReLU'd) output, the mask keyed by the step
     * and the layer like the model's own dropout layers; a dropped unit's output is 0, so the
     * ReLU derivative taken from that output is 0 there too */
    for (int L = 0; L <= last && !s; L++) {
        s = dense_fwd(ctx, &p->dop[L], n, L ? p->dact[L - 1] : x, p->dw[L][0], p->dw[L][1],
                      p->dact[L], e);
        if (!s && L < last && p->ddrop[L].fwd)
            s = dropout_fwd(ctx, &p->ddrop[L], n, 0, disc_seed(p, L), p->step, p->dact[L],
                            p->dact[L], e);
    }
    const float scale = p->align_weight / (float)n;
    if (!s) s = bce_fwd_bwd(ctx, n, ns, scale, p->dact[last], p->dloss, p->dgrad[last], e);
    if (!s) s = loss_sum_f32(ctx, n, scale, true, p->dloss, p->align_sum, e);
    for (int L = last; L >= 0 && !s; L--) {
        cl_mem in = L ? p->dact[L - 1] : x;
        if (L < last && p->ddrop[L].fwd)
            s = dropout_bwd(ctx, &p->ddrop[L], n, 0, disc_seed(p, L), p->step, p->dgrad[L],
                            p->dgrad[L], e);
        bool db_done = false;
        if (!s && L < last)
            s = dense_epi_grad(ctx, &p->dop[L], n, p->dgrad[L], p->dact[L], p->dg[L][1],
                               &db_done, e);
        if (!s)
            s = dense_bwd_weight(ctx, &p->dop[L], n, in, p->dgrad[L], p->dg[L][0],
                                 db_done ? NULL : p->dg[L][1], e);
        if (!s)
            s = dense_bwd_data(ctx, &p->dop[L], n, p->dgrad[L], p->dw[L][0],
                               L ? p->dgrad[L - 1] : p->dfeat, e);
    }
    if (!s)
        s = grl_bwd(ctx, (long)n * p->dop[0].in, p->align_lambda, p->dfeat, DY(p, i), e);
    return s;
}

/* Enqueue the read of layer i's gradient bucket (its tensors back to back in grad_host). */
static graft_status bucket_read_start(pipeline *p, int i, graft_error *e)
{
    int k = p->layer_bucket[i];
    player *pl = &p->layers[i];
    float *dst = (float *)p->grad_host.ptr + p->bucket_off[k];
    graft_status s = GRAFT_OK;
    int last = -1;
    for (int j = 0; j < pl->l->nparams; j++)
        if (pl->g[j]) last = j;
    for (int j = 0; j < pl->l->nparams && !s; j++) {
        if (!pl->g[j]) continue;
        long c = pl->l->params[j].count;
        s = transfer_read_async(p->ctx, pl->g[j], 0, dst, (size_t)c * sizeof(float),
                                j == last ? &p->bucket_read[k] : NULL, e);
        dst += c;
    }
    return s;
}

static graft_status backward_from(pipeline *p, int from, int n, graft_error *e)
{
    graft_context *ctx = p->ctx;
    const graph *g = p->g;
    graft_status s = GRAFT_OK;
    for (int i = from; i >= p->o.first && !s; i--) {
        player *pl = &p->layers[i];
        const layer *l = pl->l;
        const layer_plan *lp = &p->plan.layers[i];
        if (i == p->o.align_layer && p->align_ns) {
            /* every reader of this output has written its gradient: add the alignment term's */
            prof_set_label(ctx, "%s.align", l->name);
            s = p->o.align == ALIGN_DANN
                    ? dann_step(p, i, e)
                    : align_fwd_bwd(ctx, &p->align, p->align_ns, p->align_nt, Y(p, i),
                                    p->align_weight, DY(p, i), p->align_sum, true, e);
            if (s) break;
            p->align_steps++;
        }
        if (!lp->backward || lp->fused_into >= 0) continue;
        if (lp->pool_of >= 0 && p->layers[lp->pool_of].pool_fused) continue; /* its conv's */
        cl_mem x = Y(p, l->inputs[0]), y = Y(p, i), dy = DY(p, i);
        bool acc = false;
        cl_mem dx = lp->need_dx[0] ? dx_target(p, i, 0, &acc) : NULL;
        prof_set_label(ctx, "%s.bwd", l->name);
        switch (l->type) {
        case GRAFT_LAYER_CONV2D:
            if (pl->pool_fused) /* from the pool's gradient: its backward did not run */
                s = conv2d_bwd_pool(ctx, &pl->op.conv, n, x, y, DY(p, lp->fused_pool),
                                    p->layers[lp->fused_pool].idx, P(pl, ".weight"), dx,
                                    lp->trains ? G(pl, ".weight") : NULL,
                                    lp->trains ? G(pl, ".bias") : NULL, p->workspace, e);
            else
                s = conv2d_bwd(ctx, &pl->op.conv, n, x, y, dy, P(pl, ".weight"), dx,
                               lp->trains ? G(pl, ".weight") : NULL,
                               lp->trains ? G(pl, ".bias") : NULL, p->workspace, e);
            break;
        case GRAFT_LAYER_DENSE: {
            const int rows = (int)token_rows(l, n);
            bool db_done = false;
            s = dense_epi_grad(ctx, &pl->op.dense, rows, dy, y, lp->trains ? G(pl, ".bias") : NULL,
                               &db_done, e);
            if (!s && dx) s = dense_bwd_data(ctx, &pl->op.dense, rows, dy, P(pl, ".weight"), dx, e);
            if (!s && lp->trains)
                s = dense_bwd_weight(ctx, &pl->op.dense, rows, x, dy, G(pl, ".weight"),
                                     db_done ? NULL : G(pl, ".bias"), e);
            break;
        }
        case GRAFT_LAYER_BATCHNORM:
            if (dx && sync_bn_layer(p, i)) {
                /* through the global statistics: dx needs the global batch's sums */
                if (!p->sync_global) {
                    s = batchnorm_sync_grads(ctx, &pl->op.bn, n, x, y, dy, pl->save_mean,
                                             pl->save_invstd, lp->trains ? G(pl, ".weight") : NULL,
                                             lp->trains ? G(pl, ".bias") : NULL, e);
                    if (!s) s = sync_pause(p, i, true, n, e);
                    break;
                }
                s = batchnorm_sync_bwd(ctx, &pl->op.bn, p->sync_N, p->sync_global, n, x, y, dy,
                                       P(pl, ".weight"), pl->save_mean, pl->save_invstd, dx, e);
                p->sync_global = NULL;
            } else if (lp->bn_batch_stats)
                s = batchnorm_bwd(ctx, &pl->op.bn, n, x, y, dy, P(pl, ".weight"), pl->save_mean,
                                  pl->save_invstd, dx, lp->trains ? G(pl, ".weight") : NULL,
                                  lp->trains ? G(pl, ".bias") : NULL, e);
            else
                s = batchnorm_bwd_eval(ctx, &pl->op.bn, n, x, y, dy, P(pl, ".weight"),
                                       P(pl, ".running_mean"), P(pl, ".running_var"), dx,
                                       lp->trains ? G(pl, ".weight") : NULL,
                                       lp->trains ? G(pl, ".bias") : NULL, e);
            break;
        case GRAFT_LAYER_PATCH_EMBED: { /* the weight gradient reads the patches before dx reuses them */
            const int rows = (int)token_rows(l, n);
            if (lp->trains)
                s = dense_bwd_weight(ctx, &pl->op.dense, rows, pl->aux, dy, G(pl, ".weight"),
                                     G(pl, ".bias"), e);
            if (!s && dx) s = dense_bwd_data(ctx, &pl->op.dense, rows, dy, P(pl, ".weight"), pl->aux, e);
            if (!s && dx)
                s = token_patches(ctx, n, l->in.d[0], l->in.d[1], l->in.d[2], l->patch, true,
                                  pl->aux, dx, e);
            break;
        }
        case GRAFT_LAYER_CLASS_TOKEN: {
            const int t = l->in.d[0], d = l->in.d[1];
            if (lp->trains) s = token_batch_sum(ctx, n, (t + 1) * d, d, dy, pl->g[0], e);
            if (!s && dx) s = concat_bwd(ctx, n, t, t + 1, 1, d, dy, dx, e);
            break;
        }
        case GRAFT_LAYER_POSITION_EMBEDDING: {
            const int len = (int)shape_size(l->out);
            if (lp->trains) s = token_batch_sum(ctx, n, len, len, dy, pl->g[0], e);
            if (!s && dx) s = copy_f32(ctx, (long)n * len, dy, dx, e);
            break;
        }
        case GRAFT_LAYER_TOKEN_SELECT:
            if (!dx) break;
            s = buffer_fill_f32(ctx, dx, 0.0f, (size_t)n * (size_t)shape_size(l->in), e);
            if (!s) s = concat_fwd(ctx, n, 1, l->in.d[0], l->index, l->in.d[1], dy, dx, e);
            break;
        case GRAFT_LAYER_ATTENTION: {
            attn_params w, gr;
            attn_params_of(pl, false, &w);
            attn_params_of(pl, true, &gr);
            const attn_rng rng = {p->o.dropout_seed + (uint64_t)i, p->step, p->row0};
            s = attention_bwd(ctx, &pl->op.attn, n, x, dy, &w, &rng, dx, lp->trains ? &gr : NULL,
                              e);
            break;
        }
        case GRAFT_LAYER_TOKEN_MEAN:
            if (dx) s = token_mean_bwd(ctx, n, l->in.d[0], l->in.d[1], dy, dx, e);
            break;
        case GRAFT_LAYER_LAYERNORM:
            s = layernorm_bwd(ctx, &pl->op.ln, token_rows(l, n), x, dy, P(pl, ".weight"),
                              pl->save_mean, pl->save_invstd, dx,
                              lp->trains ? G(pl, ".weight") : NULL,
                              lp->trains ? G(pl, ".bias") : NULL, e);
            break;
        case GRAFT_LAYER_MAXPOOL:
        case GRAFT_LAYER_AVGPOOL:
        case GRAFT_LAYER_GLOBAL_AVGPOOL:
            if (dx) s = pool_bwd(ctx, &pl->op.pool, n, dy, pl->idx, dx, e);
            break;
        case GRAFT_LAYER_FLATTEN:
        case GRAFT_LAYER_DROPOUT:
            if (!dx || dx == dy) break; /* a view shares its input's gradient */
            if (l->type == GRAFT_LAYER_DROPOUT)
                s = dropout_bwd(ctx, &pl->op.drop, n, p->row0, p->o.dropout_seed + (uint64_t)i,
                                p->step, dy, dx, e);
            else
                s = copy_f32(ctx, (long)n * shape_size(l->out), dy, dx, e);
            break;
        case GRAFT_LAYER_ADD:
            for (int q = 0; q < l->ninputs && !s; q++) {
                if (!lp->need_dx[q]) continue;
                cl_mem t = dx_target(p, i, q, &acc);
                s = copy_f32(ctx, (long)n * shape_size(l->out), dy, t, e);
                if (!s) s = dx_finish(p, i, q, n, acc, e);
            }
            dx = NULL;
            break;
        case GRAFT_LAYER_CONCAT: {
            int hw = (int)(shape_size(l->out) / l->out.d[0]), c0 = 0;
            for (int q = 0; q < l->ninputs && !s; q++) {
                int in = l->inputs[q];
                int cx = in < 0 ? g->input.d[0] : g->layers[in].out.d[0];
                if (lp->need_dx[q]) {
                    cl_mem t = dx_target(p, i, q, &acc);
                    s = concat_bwd(ctx, n, cx, l->out.d[0], c0, hw, dy, t, e);
                    if (!s) s = dx_finish(p, i, q, n, acc, e);
                }
                c0 += cx;
            }
            dx = NULL;
            break;
        }
        default:
            if (dx) s = act_bwd(ctx, &pl->op.act, n, x, y, dy, dx, e);
            break;
        }
        if (!s && p->sync_paused) break; /* dx comes when the step resumes at this layer */
        if (!s && dx && dx != dy) s = dx_finish(p, i, 0, n, acc, e);
        if (!s && p->grads_out && p->layer_bucket[i] >= 0) s = bucket_read_start(p, i, e);
        if (s) err_prefix(e, "layer '%s' backward", l->name);
    }
    return s;
}

static graft_status backward(pipeline *p, int n, graft_error *e)
{
    return backward_from(p, p->g->nlayers - 1, n, e);
}

/* One launch over the arenas' run [r0, r1) with the run's hyperparameters. */
static graft_status update_run(pipeline *p, const optim_hparams *h, bool anchored, long r0, long r1,
                               graft_error *e)
{
    return optim_step_at(p->ctx, &p->optim, h, r0, r1 - r0, p->aw, p->ag, p->am, p->av,
                         anchored ? p->aw0 : NULL, e);
}

static graft_status update(pipeline *p, const optim_hparams *base, graft_error *e)
{
    graft_status s = GRAFT_OK;
    /* neighbours in the arenas with the same lr, step count and L2-SP anchoring (usually every
     * trained tensor: one launch; an lr_mult or a later unfreeze starts a new run) update
     * together; the profile labels a run with its first layer */
    optim_hparams run = {0};
    bool run_w0 = false;
    long r0 = -1, r1 = 0;
    for (int i = p->o.first; i < p->g->nlayers && !s; i++) {
        player *pl = &p->layers[i];
        if (!p->plan.layers[i].trains) continue;
        optim_hparams h = *base;
        h.lr = base->lr * pl->l->lr_mult;
        for (int j = 0; j < pl->l->nparams && !s; j++) {
            if (!pl->g[j]) continue;
            h.t = ++pl->t[j];
            h.l2sp = pl->w0[j] ? base->l2sp : 0.f;
            bool w0 = pl->w0[j] != NULL;
            long off = pl->aoff[j], end = off + pl->l->params[j].count;
            if (off >= 0 && r0 >= 0 && h.lr == run.lr && h.t == run.t && h.l2sp == run.l2sp &&
                w0 == run_w0) {
                r1 = end;
                continue;
            }
            if (r0 >= 0 && (s = update_run(p, &run, run_w0, r0, r1, e))) break;
            r0 = -1;
            prof_set_label(p->ctx, "%s.update", pl->l->name);
            if (off < 0) {
                s = optim_step(p->ctx, &p->optim, &h, pl->l->params[j].count, pl->w[j], pl->g[j],
                               pl->m[j], pl->v[j], pl->w0[j], e);
                continue;
            }
            run = h;
            run_w0 = w0;
            r0 = off;
            r1 = end;
        }
    }
    if (!s && r0 >= 0) s = update_run(p, &run, run_w0, r0, r1, e);
    /* the discriminator trains only on steps that ran it */
    for (int L = 0; L < p->nd && !s && p->align_ns; L++) {
        optim_hparams h = *base;
        h.l2sp = 0.f;
        prof_set_label(p->ctx, "domain_disc.%d.update", L);
        for (int j = 0; j < 2 && !s; j++) {
            h.t = ++p->dt[L][j];
            s = optim_step(p->ctx, &p->optim, &h, p->o.disc->layers[L].params[j].count,
                           p->dw[L][j], p->dg[L][j], p->dm[L][j], p->dv[L][j], NULL, e);
        }
    }
    return s;
}

/* The next pinned staging area: input [max_batch, input], then labels [max_batch], then rows
 * [max_batch]. The only wait is for the upload from the same area two batches ago (so the host runs
 * at most two steps ahead of the device), and it blocks only when the device is that far behind. */
static graft_status stage_take(pipeline *p, int n, char **stage, int *k, graft_error *e)
{
    if (n < 1 || n > p->o.max_batch)
        return err_set(e, GRAFT_STATUS_INTERNAL, "batch of %d for a pipeline built for %d", n,
                       p->o.max_batch);
    *k = p->next_stage;
    p->next_stage ^= 1;
    *stage = p->stage[*k].ptr;
    return transfer_wait(p->ctx, &p->staged[*k], &p->host_syncs, e);
}

static size_t stage_labels_at(const pipeline *p)
{
    return (size_t)p->o.max_batch * (size_t)p->plan.tensors[0].size * sizeof(float);
}

/* Copy the batch into staging and enqueue its upload without waiting. */
static graft_status upload_batch(pipeline *p, const float *x, const int *labels, int n,
                                 graft_error *e)
{
    char *stage;
    int k;
    prof_set_label(p->ctx, "upload");
    graft_status s = stage_take(p, n, &stage, &k, e);
    if (s) return s;
    size_t xbytes = (size_t)n * (size_t)p->plan.tensors[0].size * sizeof(float);
    size_t lab_at = stage_labels_at(p);
    memcpy(stage, x, xbytes);
    if (labels) memcpy(stage + lab_at, labels, (size_t)n * sizeof(int));
    /* in order: when the last write's event completes, both are done */
    s = transfer_write_async(p->ctx, p->input, 0, stage, xbytes, labels ? NULL : &p->staged[k], e);
    if (!s && labels)
        s = transfer_write_async(p->ctx, p->labels, 0, stage + lab_at, (size_t)n * sizeof(int),
                                 &p->staged[k], e);
    return s;
}

/* The batch as rows of a device-resident table (the feature cache): only the row numbers and
 * labels travel; the rows are gathered into the input on the device. */
static graft_status upload_rows(pipeline *p, cl_mem table, const long *rows, const int *labels,
                                int n, graft_error *e)
{
    char *stage;
    int k;
    prof_set_label(p->ctx, "upload"); /* as upload_batch: the writes are not the last layer's */
    graft_status s = stage_take(p, n, &stage, &k, e);
    if (s) return s;
    size_t lab_at = stage_labels_at(p), rows_at = lab_at + (size_t)p->o.max_batch * sizeof(int);
    int *r = (int *)(stage + rows_at);
    for (int i = 0; i < n; i++) r[i] = (int)rows[i];
    if (labels) memcpy(stage + lab_at, labels, (size_t)n * sizeof(int));
    s = transfer_write_async(p->ctx, p->rows, 0, r, (size_t)n * sizeof(int),
                             labels ? NULL : &p->staged[k], e);
    if (!s && labels)
        s = transfer_write_async(p->ctx, p->labels, 0, stage + lab_at, (size_t)n * sizeof(int),
                                 &p->staged[k], e);
    prof_set_label(p->ctx, "gather");
    if (!s)
        s = rows_gather(p->ctx, n, (int)p->plan.tensors[0].size, table, p->rows, p->input, e);
    return s;
}

/* The blocking read-back of one batch's loss (callers that pass a step_result). */
static graft_status read_loss(pipeline *p, int n, step_result *r, graft_error *e)
{
    graft_status s = buffer_read(p->ctx, p->loss, 0, p->host_loss, (size_t)n * sizeof(float), e);
    if (!s) s = buffer_read(p->ctx, p->correct, 0, p->host_correct, (size_t)n * sizeof(int), e);
    if (s) return s;
    p->host_syncs++;
    r->loss_sum = 0;
    r->correct = 0;
    for (int i = 0; i < n; i++) {
        r->loss_sum += p->host_loss[i];
        r->correct += p->host_correct[i];
    }
    if (!isfinite(r->loss_sum))
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "the loss is not finite (%g): training diverged; lower train.lr",
                       r->loss_sum);
    return GRAFT_OK;
}

/* Finish the read-back in flight: add its slots to p->ready (each slot's samples in order, in
 * double, as the blocking read-back does, so the totals are the same bits) and remember the first
 * non-finite step. */
static graft_status stats_land(pipeline *p, graft_error *e)
{
    if (!p->inflight) return GRAFT_OK;
    graft_status s = transfer_wait(p->ctx, &p->stat_read, &p->host_syncs, e);
    if (s) return s;
    const char *host = p->stat_host.ptr;
    size_t half = PIPELINE_STATS_SLOTS * p->stat_stride;
    for (int i = 0; i < p->inflight; i++) {
        const float *ls = (const float *)(host + (size_t)i * p->stat_stride);
        const int *cs = (const int *)(host + half + (size_t)i * p->stat_stride);
        double sum = 0;
        long correct = 0;
        for (int j = 0; j < p->inflight_n[i]; j++) {
            sum += ls[j];
            correct += cs[j];
        }
        if (!isfinite(sum) && !p->stat_status) {
            p->nonfinite_step = p->inflight_first + 1 + (uint64_t)i;
            p->nonfinite_value = sum;
            unsigned long long a = (unsigned long long)p->inflight_first + 1,
                               b = a + (unsigned long long)p->inflight - 1;
            p->stat_status = err_set(
                &p->stat_error, GRAFT_STATUS_BAD_DATA,
                "the loss is not finite (%g) at step %llu (steps %llu-%llu read back together): "
                "training diverged; lower train.lr",
                sum, a + (unsigned long long)i, a, b);
        }
        p->ready.loss_sum += sum;
        p->ready.correct += correct;
        p->ready.samples += p->inflight_n[i];
        p->total.loss_sum += sum;
        p->total.correct += correct;
        p->total.samples += p->inflight_n[i];
    }
    p->ready.steps += p->inflight;
    p->total.steps += p->inflight;
    p->inflight = 0;
    return GRAFT_OK;
}

/* Start reading back the slots written since the last read-back. The read is enqueued behind the
 * steps that wrote them; later steps reuse the slots from 0, which the in-order queue runs only
 * after the read. */
static graft_status stats_request(pipeline *p, graft_error *e)
{
    if (!p->pending) return GRAFT_OK;
    graft_status s = stats_land(p, e);
    if (s) return s;
    char *host = p->stat_host.ptr;
    size_t used = (size_t)p->pending * p->stat_stride;
    s = transfer_read_async(p->ctx, p->stat_loss, 0, host, used, NULL, e);
    if (!s)
        s = transfer_read_async(p->ctx, p->stat_correct, 0,
                                host + PIPELINE_STATS_SLOTS * p->stat_stride, used, &p->stat_read,
                                e);
    if (s) return s;
    p->inflight = p->pending;
    memcpy(p->inflight_n, p->pending_n, (size_t)p->pending * sizeof *p->pending_n);
    p->inflight_first = p->pending_first;
    p->pending = 0;
    return GRAFT_OK;
}

/* The loss outputs of the next step: the blocking path's buffers when the caller reads them at
 * once (r), else the next statistics slot (making room first when all are used). */
static graft_status stats_slot(pipeline *p, bool blocking, cl_mem *loss, cl_mem *correct,
                               graft_error *e)
{
    *loss = p->loss;
    *correct = p->correct;
    if (blocking) return GRAFT_OK;
    graft_status s;
    if (p->pending == PIPELINE_STATS_SLOTS && (s = stats_request(p, e))) return s;
    *loss = p->loss_slot[p->pending];
    *correct = p->correct_slot[p->pending];
    return GRAFT_OK;
}

/* The step wrote its slot: count it. */
static void stats_filled(pipeline *p, int n)
{
    if (!p->pending) p->pending_first = p->step;
    p->pending_n[p->pending++] = n;
}

graft_status pipeline_stats_read(pipeline *p, bool wait, pipeline_stats *out, graft_error *e)
{
    memset(out, 0, sizeof *out);
    graft_status s = GRAFT_OK;
    if (p->inflight && (wait || transfer_done(p->stat_read))) s = stats_land(p, e);
    if (!s && !p->inflight) s = stats_request(p, e);
    if (!s && wait) s = stats_land(p, e);
    if (s) return s;
    *out = p->ready;
    memset(&p->ready, 0, sizeof p->ready);
    if (p->stat_status) {
        s = p->stat_status;
        *e = p->stat_error;
        p->stat_status = GRAFT_OK;
    }
    return s;
}

void pipeline_stats_total(pipeline *p, pipeline_stats *out, bool restart)
{
    *out = p->total;
    if (restart) memset(&p->total, 0, sizeof p->total);
}

long pipeline_host_syncs(const pipeline *p)
{
    return p->host_syncs;
}

/* skip_nonfinite: keep (or put back) the running statistics that a training-mode batchnorm
 * forward updates, so a skipped batch leaves no trace. */
static graft_status keep_buffers(pipeline *p, bool restore, graft_error *e)
{
    graft_status s = GRAFT_OK;
    for (int i = p->o.first; i < p->g->nlayers && !s; i++) {
        player *pl = &p->layers[i];
        for (int j = 0; j < pl->l->nparams && !s; j++) {
            if (!pl->keep[j]) continue;
            size_t bytes = (size_t)pl->l->params[j].count * sizeof(float);
            s = restore ? buffer_copy_async(p->ctx, pl->keep[j], 0, pl->w[j], 0, bytes, e)
                        : buffer_copy_async(p->ctx, pl->w[j], 0, pl->keep[j], 0, bytes, e);
        }
    }
    return s;
}

/* The step of a skip_nonfinite pipeline: forward and loss, a blocking read of the loss, and the
 * backward and update only when it is finite (else r->nonfinite and nothing changes). */
static graft_status train_body_checked(pipeline *p, int n, const optim_hparams *h, step_result *r,
                                       graft_error *e)
{
    graft_status s = keep_buffers(p, false, e);
    if (!s) s = forward(p, n, true, e);
    int last = p->g->nlayers - 1;
    if (!s)
        s = xent_fwd_bwd(p->ctx, &p->xent, n, Y(p, last), p->labels, p->loss, p->correct,
                         p->plan.layers[last].backward ? DY(p, last) : NULL, e);
    if (!s) s = buffer_read(p->ctx, p->loss, 0, p->host_loss, (size_t)n * sizeof(float), e);
    if (!s) s = buffer_read(p->ctx, p->correct, 0, p->host_correct, (size_t)n * sizeof(int), e);
    if (s) return s;
    p->host_syncs++;
    r->loss_sum = 0;
    r->correct = 0;
    for (int i = 0; i < n; i++) {
        r->loss_sum += p->host_loss[i];
        r->correct += p->host_correct[i];
    }
    r->nonfinite = !isfinite(r->loss_sum);
    if (r->nonfinite) return keep_buffers(p, true, e);
    if (!s) s = backward(p, n, e);
    if (!s) s = update(p, h, e);
    return s;
}

/* Forward, loss, statistics, backward and update of a batch already in p->input / p->labels. */
static graft_status train_body(pipeline *p, int n, const optim_hparams *h, step_result *r,
                               graft_error *e)
{
    if (r) r->nonfinite = false;
    if (r && p->o.skip_nonfinite) return train_body_checked(p, n, h, r, e);
    cl_mem loss, correct;
    graft_status s = stats_slot(p, r != NULL, &loss, &correct, e);
    if (!s) s = forward(p, n, true, e);
    if (!s) {
        prof_set_label(p->ctx, "loss");
        int last = p->g->nlayers - 1;
        s = xent_fwd_bwd(p->ctx, &p->xent, n, Y(p, last), p->labels, loss, correct,
                         p->plan.layers[last].backward ? DY(p, last) : NULL, e);
        if (!s && !r) stats_filled(p, n);
    }
    if (!s) s = backward(p, n, e);
    if (!s) s = update(p, h, e);
    if (!s && r) s = read_loss(p, n, r, e);
    return s;
}

graft_status pipeline_train_step(pipeline *p, const float *x, const int *labels, int n,
                                 const optim_hparams *h, step_result *r, graft_error *e)
{
    if (!p->o.training) return err_set(e, GRAFT_STATUS_INTERNAL, "not a training pipeline");
    graft_status s = upload_batch(p, x, labels, n, e);
    if (!s) s = train_body(p, n, h, r, e);
    p->step++;
    return s;
}

graft_status pipeline_train_step_adapt(pipeline *p, const float *x, const int *labels, int ns,
                                       int nt, const optim_hparams *h, float weight,
                                       float lambda, graft_error *e)
{
    if (!p->o.training || !p->o.align)
        return err_set(e, GRAFT_STATUS_INTERNAL, "not an adaptation pipeline");
    const int n = ns + nt;
    graft_status s = upload_batch(p, x, labels, n, e);
    cl_mem loss, correct;
    if (!s) s = stats_slot(p, false, &loss, &correct, e);
    if (!s) s = forward(p, n, true, e);
    if (!s) {
        /* the classification loss over the labelled source rows; the target rows' logits get
         * no gradient from it */
        prof_set_label(p->ctx, "loss");
        int last = p->g->nlayers - 1;
        cl_mem dlast = p->plan.layers[last].backward ? DY(p, last) : NULL;
        s = xent_fwd_bwd(p->ctx, &p->xent, ns, Y(p, last), p->labels, loss, correct, dlast, e);
        long k = shape_size(p->g->layers[last].out);
        if (!s && dlast) s = zero_rows_f32(p->ctx, (long)ns * k, (long)nt * k, dlast, e);
        if (!s) stats_filled(p, ns);
    }
    p->align_ns = ns >= 2 && nt >= 2 ? ns : 0;
    p->align_nt = nt;
    p->align_weight = weight;
    p->align_lambda = lambda;
    if (!s) s = backward(p, n, e);
    if (!s) s = update(p, h, e);
    p->align_ns = 0;
    p->step++;
    return s;
}

graft_status pipeline_align_read(pipeline *p, double *sum, long *steps, graft_error *e)
{
    *sum = 0;
    *steps = 0;
    if (!p->o.align) return GRAFT_OK;
    float v = 0;
    graft_status s = buffer_read(p->ctx, p->align_sum, 0, &v, sizeof v, e);
    if (!s) s = buffer_fill_f32(p->ctx, p->align_sum, 0.f, 1, e);
    if (s) return s;
    p->host_syncs++;
    *sum = v;
    *steps = p->align_steps;
    p->align_steps = 0;
    return GRAFT_OK;
}

graft_status pipeline_bn_restat(pipeline *p, const float *x, int n, graft_error *e)
{
    if (!p->o.bn_restat) return err_set(e, GRAFT_STATUS_INTERNAL, "not an AdaBN pipeline");
    graft_status s = upload_batch(p, x, NULL, n, e);
    return s ? s : forward(p, n, false, e);
}

graft_status pipeline_read_tensor(pipeline *p, int layer, const char *suffix, float *out,
                                  graft_error *e)
{
    if (layer < p->o.first || layer >= p->g->nlayers)
        return err_set(e, GRAFT_STATUS_INTERNAL, "no layer %d in the pipeline", layer);
    const player *pl = &p->layers[layer];
    int j = param_index(pl->l, suffix);
    if (j < 0) return err_set(e, GRAFT_STATUS_INTERNAL, "%s has no %s", pl->l->name, suffix);
    p->host_syncs++;
    return buffer_read(p->ctx, pl->w[j], 0, out, (size_t)pl->l->params[j].count * sizeof(float),
                       e);
}

graft_status pipeline_train_step_rows(pipeline *p, cl_mem table, const long *rows,
                                      const int *labels, int n, const optim_hparams *h,
                                      step_result *r, graft_error *e)
{
    if (!p->o.training) return err_set(e, GRAFT_STATUS_INTERNAL, "not a training pipeline");
    graft_status s = upload_rows(p, table, rows, labels, n, e);
    if (!s) s = train_body(p, n, h, r, e);
    p->step++;
    return s;
}

/* Forward in evaluation mode of a batch already uploaded, then loss and logits. */
static graft_status eval_body(pipeline *p, bool labels, int n, float *logits, bool async,
                              step_result *r, graft_error *e)
{
    cl_mem loss, correct;
    graft_status s = labels ? stats_slot(p, r != NULL, &loss, &correct, e) : GRAFT_OK;
    if (!s) s = forward(p, n, false, e);
    int last = p->g->nlayers - 1;
    if (!s && labels) {
        prof_set_label(p->ctx, "loss");
        s = xent_fwd_bwd(p->ctx, &p->xent, n, Y(p, last), p->labels, loss, correct, NULL, e);
        if (!s) {
            if (r) s = read_loss(p, n, r, e);
            else stats_filled(p, n);
        }
    }
    const size_t bytes = (size_t)n * (size_t)pipeline_output_size(p) * sizeof(float);
    if (!s && logits && async) {
        /* the queue is in order: the last read's event covers the ones before it */
        if (p->logits_read) clReleaseEvent(p->logits_read);
        p->logits_read = NULL;
        s = transfer_read_async(p->ctx, Y(p, last), 0, logits, bytes, &p->logits_read, e);
    } else if (!s && logits) {
        s = buffer_read(p->ctx, Y(p, last), 0, logits, bytes, e);
        p->host_syncs++;
    }
    return s;
}

graft_status pipeline_eval_rows_async(pipeline *p, cl_mem table, const long *rows,
                                      const int *labels, int n, float *logits, graft_error *e)
{
    graft_status s = upload_rows(p, table, rows, labels, n, e);
    return s ? s : eval_body(p, labels != NULL, n, logits, true, NULL, e);
}

graft_status pipeline_eval_async(pipeline *p, const float *x, const int *labels, int n,
                                 float *logits, graft_error *e)
{
    graft_status s = upload_batch(p, x, labels, n, e);
    return s ? s : eval_body(p, labels != NULL, n, logits, true, NULL, e);
}

graft_status pipeline_logits_wait(pipeline *p, graft_error *e)
{
    if (!p->logits_read) {
        /* after a failed enqueue, reads before it may still be in flight */
        return queue_finish(p->ctx, e);
    }
    return transfer_wait(p->ctx, &p->logits_read, &p->host_syncs, e); /* counted if it blocks */
}

graft_status pipeline_eval(pipeline *p, const float *x, const int *labels, int n, float *logits,
                           step_result *r, graft_error *e)
{
    graft_status s = upload_batch(p, x, labels, n, e);
    return s ? s : eval_body(p, labels != NULL, n, logits, false, r, e);
}


graft_status pipeline_forward_features(pipeline *p, const float *x, int n, float *out,
                                       graft_error *e)
{
    graft_status s = upload_batch(p, x, NULL, n, e);
    if (!s) s = forward(p, n, false, e);
    if (!s) {
        s = buffer_read(p->ctx, Y(p, p->g->nlayers - 1), 0, out,
                        (size_t)n * (size_t)pipeline_output_size(p) * sizeof(float), e);
        p->host_syncs++;
    }
    return s;
}

graft_status pipeline_forward_features_to(pipeline *p, const float *x, int n, cl_mem table,
                                          long first_row, graft_error *e)
{
    if (n < 1 || n > p->o.max_batch)
        return err_set(e, GRAFT_STATUS_INTERNAL, "batch of %d for a pipeline built for %d", n,
                       p->o.max_batch);
    /* straight from x, which the caller keeps (no staging copy, no wait for a staging area): the
     * host enqueues every batch at once and is free while the device works through them */
    prof_set_label(p->ctx, "upload");
    graft_status s = transfer_write_async(
        p->ctx, p->input, 0, x, (size_t)n * (size_t)p->plan.tensors[0].size * sizeof(float),
        NULL, e);
    if (!s) s = forward(p, n, false, e);
    size_t row = (size_t)pipeline_output_size(p) * sizeof(float);
    if (!s)
        s = buffer_copy_async(p->ctx, Y(p, p->g->nlayers - 1), 0, table, (size_t)first_row * row,
                              (size_t)n * row, e);
    return s;
}

graft_status pipeline_stats_poll(pipeline *p, graft_error *e)
{
    if (p->inflight && transfer_done(p->stat_read)) {
        graft_status s = stats_land(p, e);
        if (s) return s;
    }
    if (p->stat_status) *e = p->stat_error;
    return p->stat_status;
}

bool pipeline_nonfinite(const pipeline *p, uint64_t *step, double *value)
{
    *step = p->nonfinite_step;
    *value = p->nonfinite_value;
    return p->nonfinite_step != 0;
}

graft_status pipeline_stats_reset(pipeline *p, graft_error *e)
{
    graft_status s = stats_land(p, e);
    p->pending = 0;
    memset(&p->ready, 0, sizeof p->ready);
    memset(&p->total, 0, sizeof p->total);
    p->stat_status = GRAFT_OK;
    p->nonfinite_step = 0;
    return s;
}

graft_status pipeline_set_scan(pipeline *p, bool on, graft_error *e)
{
    graft_status s = on ? workspace_fit(p, true, e) : GRAFT_OK;
    if (s) return s;
    p->scan = on;
    p->scan_layer = -1;
    p->scan_weights = false;
    return GRAFT_OK;
}

int pipeline_scan_result(const pipeline *p, bool *in_weights)
{
    *in_weights = p->scan_weights;
    return p->scan_layer;
}

void pipeline_set_step(pipeline *p, uint64_t step)
{
    p->step = step;
}

uint64_t pipeline_step(const pipeline *p)
{
    return p->step;
}

/* The buckets of a training pipeline, in backward order (built on first use). */
static graft_status buckets_init(pipeline *p, graft_error *e)
{
    if (p->bucket_layer) return GRAFT_OK;
    int L = p->g->nlayers;
    p->layer_bucket = malloc((size_t)L * sizeof *p->layer_bucket);
    p->bucket_layer = malloc((size_t)L * sizeof *p->bucket_layer);
    p->bucket_off = malloc((size_t)L * sizeof *p->bucket_off);
    p->bucket_count = malloc((size_t)L * sizeof *p->bucket_count);
    p->bucket_read = calloc((size_t)L, sizeof *p->bucket_read);
    if (!p->layer_bucket || !p->bucket_layer || !p->bucket_off || !p->bucket_count ||
        !p->bucket_read)
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory for gradient buckets");
    long total = 0;
    for (int i = L - 1; i >= 0; i--) {
        p->layer_bucket[i] = -1;
        if (i < p->o.first || !p->plan.layers[i].trains) continue;
        player *pl = &p->layers[i];
        long c = 0;
        for (int j = 0; j < pl->l->nparams; j++)
            if (pl->g[j]) c += pl->l->params[j].count;
        if (!c) continue;
        int k = p->nbuckets++;
        p->layer_bucket[i] = k;
        p->bucket_layer[k] = i;
        p->bucket_off[k] = total;
        p->bucket_count[k] = c;
        total += c;
    }
    if (p->o.align || p->nd)
        return err_set(e, GRAFT_STATUS_UNSUPPORTED,
                       "domain adaptation does not run on several devices (train.devices)");
    return host_buffer_create(p->ctx, (size_t)(total ? total : 1) * sizeof(float), &p->grad_host,
                              NULL, e);
}

graft_status pipeline_grad_layout(pipeline *p, int *nbuckets, const long **offsets,
                                  const long **counts, graft_error *e)
{
    graft_status s = buckets_init(p, e);
    if (s) return s;
    *nbuckets = p->nbuckets;
    *offsets = p->bucket_off;
    *counts = p->bucket_count;
    return GRAFT_OK;
}

/* The rest of a pipeline_train_grads step: forward from layer fwd (-1: forward is done), the
 * loss, backward from layer bwd (when forward was done), until its end or a sync_bn pause. */
static graft_status grads_run(pipeline *p, int fwd, int bwd, graft_error *e)
{
    const int n = p->sync_n, last = p->g->nlayers - 1;
    graft_status s = GRAFT_OK;
    if (fwd >= 0) {
        s = forward_from(p, fwd, n, true, e);
        if (!s && !p->sync_paused) {
            prof_set_label(p->ctx, "loss");
            s = xent_fwd_bwd(p->ctx, &p->xent, n, Y(p, last), p->labels, p->step_loss,
                             p->step_correct, p->plan.layers[last].backward ? DY(p, last) : NULL,
                             e);
            if (!s) stats_filled(p, n);
        }
        bwd = last;
    }
    if (!s && !p->sync_paused) {
        p->grads_out = true;
        s = backward_from(p, bwd, n, e);
        p->grads_out = false;
    }
    if (s || !p->sync_paused) {
        p->row0 = 0;
        p->sync_step = p->sync_paused = false;
    }
    /* the queue runs the reads; flush so a device of another platform starts now */
    if (!s) s = cl_check(clFlush(p->ctx->queue), "clFlush", e);
    return s;
}

/* sync_bn: pinned memory for the largest batchnorm's partials of a batch (in double). */
static graft_status sync_init(pipeline *p, graft_error *e)
{
    if (p->sync_host.ptr || !p->o.sync_bn) return GRAFT_OK;
    long most = 1;
    for (int i = p->o.first; i < p->g->nlayers; i++)
        if (p->g->layers[i].type == GRAFT_LAYER_BATCHNORM && p->layers[i].op.bn.c > most)
            most = p->layers[i].op.bn.c;
    size_t bytes = 2 * (size_t)most * (size_t)p->o.max_batch * sizeof(double);
    return host_buffer_create(p->ctx, bytes, &p->sync_host, NULL, e);
}

graft_status pipeline_train_grads(pipeline *p, const float *x, const int *labels, int n,
                                  long row0, graft_error *e)
{
    if (!p->o.training || p->o.skip_nonfinite)
        return err_set(e, GRAFT_STATUS_INTERNAL, "not a plain training pipeline");
    if (p->sync_step) return err_set(e, GRAFT_STATUS_INTERNAL, "a sync_bn step is in progress");
    graft_status s = buckets_init(p, e);
    if (!s) s = sync_init(p, e);
    p->row0 = row0;
    if (!s) s = upload_batch(p, x, labels, n, e);
    if (!s) s = stats_slot(p, false, &p->step_loss, &p->step_correct, e);
    if (s) return s;
    p->sync_n = n;
    p->sync_step = p->o.sync_bn;
    p->sync_paused = false;
    return grads_run(p, p->o.first, -1, e);
}

bool pipeline_grads_ready(const pipeline *p)
{
    for (int k = 0; k < p->nbuckets; k++)
        if (p->bucket_read[k] && !transfer_done(p->bucket_read[k])) return false;
    return true;
}

bool pipeline_sync_ready(const pipeline *p)
{
    return !p->sync_read || transfer_done(p->sync_read);
}

int pipeline_sync_points(const pipeline *p, pipeline_sync_point *out, int cap)
{
    int k = 0;
    if (!p->o.sync_bn || !p->o.training) return 0;
    for (int pass = 0; pass < 2; pass++)
        for (int j = p->o.first; j < p->g->nlayers; j++) {
            int i = pass ? p->g->nlayers - 1 - (j - p->o.first) : j;
            const layer_plan *lp = &p->plan.layers[i];
            if (p->g->layers[i].type != GRAFT_LAYER_BATCHNORM || !lp->bn_batch_stats ||
                lp->fused_into >= 0)
                continue;
            if (pass && (!lp->backward || !lp->need_dx[0])) continue;
            if (k < cap) out[k] = (pipeline_sync_point){i, pass == 1, p->layers[i].op.bn.c};
            k++;
        }
    return k;
}

graft_status pipeline_sync_gather(pipeline *p, const pipeline_sync_point *at, int first, int N,
                                  double scale, double *global, graft_error *e)
{
    if (!p->sync_paused || p->sync_layer != at->layer || p->sync_bwd != at->backward)
        return err_set(e, GRAFT_STATUS_INTERNAL, "replica not at batchnorm %d (%s)", at->layer,
                       at->backward ? "backward" : "forward");
    graft_status s = transfer_wait(p->ctx, &p->sync_read, &p->host_syncs, e);
    if (!s)
        batchnorm_part_gather(&p->layers[at->layer].op.bn, p->sync_host.ptr, p->sync_n, first,
                              N, scale, global);
    return s;
}

graft_status pipeline_sync_resume(pipeline *p, int N, const double *global, graft_error *e)
{
    if (!p->sync_paused) return err_set(e, GRAFT_STATUS_INTERNAL, "no sync_bn step paused");
    int i = p->sync_layer;
    bool bwd = p->sync_bwd;
    p->sync_paused = false;
    p->sync_global = global;
    p->sync_N = N;
    graft_status s = bwd ? grads_run(p, -1, i, e) : grads_run(p, i, -1, e);
    p->sync_global = NULL;
    return s;
}

graft_status pipeline_grad_bucket_wait(pipeline *p, int k, float **data, graft_error *e)
{
    if (k < 0 || k >= p->nbuckets)
        return err_set(e, GRAFT_STATUS_INTERNAL, "no gradient bucket %d", k);
    graft_status s = transfer_wait(p->ctx, &p->bucket_read[k], &p->host_syncs, e);
    *data = (float *)p->grad_host.ptr + p->bucket_off[k];
    return s;
}

graft_status pipeline_apply_grads(pipeline *p, const float *grads, const optim_hparams *h,
                                  graft_error *e)
{
    graft_status s = buckets_init(p, e); /* a replica with no rows this step has none yet */
    for (int k = 0; k < p->nbuckets && !s; k++) {
        player *pl = &p->layers[p->bucket_layer[k]];
        const float *src = grads + p->bucket_off[k];
        for (int j = 0; j < pl->l->nparams && !s; j++) {
            if (!pl->g[j]) continue;
            long c = pl->l->params[j].count;
            s = buffer_write(p->ctx, pl->g[j], 0, src, (size_t)c * sizeof(float), e);
            src += c;
        }
    }
    if (!s) s = update(p, h, e);
    p->step++;
    return s;
}
