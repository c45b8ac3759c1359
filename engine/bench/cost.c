/* cost.c — the bench stage's models: per-layer FLOPs and compulsory bytes, a training step's cost
 * per op family from the runtime's cost counters, the estimate for another device, and the JSON
 * objects for them and for a device's identity. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recipe.h"

const char *const BENCH_FAMILY_NAMES[FAM_COUNT] = {
    "conv", "dense", "batchnorm", "layernorm", "attention", "activation", "pool", "dropout", "loss", "optimizer",
    "layout", "gemm", "transfer", "other"};

static long input_size(const graph *g, int idx)
{
    return idx < 0 ? shape_size(g->input) : shape_size(g->layers[idx].out);
}

layer_cost bench_layer_cost(const graph *g, const layer *l, const layer_plan *lp, double n)
{
    layer_cost c = {0};
    double in = 0, out = (double)shape_size(l->out), params = 0;
    for (int j = 0; j < l->ninputs; j++) in += (double)input_size(g, l->inputs[j]);
    for (int j = 0; j < l->nparams; j++)
        if (!l->params[j].is_buffer) params += (double)l->params[j].count;
    bool dx = false;
    for (int j = 0; j < l->ninputs; j++) dx = dx || lp->need_dx[j];
    double per = 0; /* flops per output element (forward) for the element-wise kinds */
    switch (l->type) {
    case GRAFT_LAYER_CONV2D: {
        double g_ = l->groups > 0 ? l->groups : 1;
        double mac = n * out * ((double)l->in.d[0] / g_) * l->kernel[0] * l->kernel[1];
        c.fwd_flops = 2 * mac + (l->bias ? n * out : 0);
        c.bwd_flops = (dx ? 2 * mac : 0) + (lp->trains ? 2 * mac : 0);
        break;
    }
    case GRAFT_LAYER_DENSE: {
        double mac = n * in * l->units; /* in = T * D on tokens: T rows of D, each times [units, D] */
        c.fwd_flops = 2 * mac + (l->bias ? n * out : 0);
        c.bwd_flops = (dx ? 2 * mac : 0) + (lp->trains ? 2 * mac : 0);
        break;
    }
    case GRAFT_LAYER_PATCH_EMBED: { /* a dense GEMM over the patch rows */
        double mac = n * out * l->in.d[0] * l->patch * l->patch;
        c.fwd_flops = 2 * mac + (l->bias ? n * out : 0);
        c.bwd_flops = (dx ? 2 * mac : 0) + (lp->trains ? 2 * mac : 0);
        break;
    }
    case GRAFT_LAYER_ATTENTION: { /* projections, then QK^T and PV per head */
        double t = l->in.d[0], d = l->in.d[1];
        double mac = n * (4 * t * d * d + 2 * t * t * d);
        c.fwd_flops = 2 * mac;
        c.bwd_flops = lp->backward ? 4 * mac : 0;
        break;
    }
    case GRAFT_LAYER_CLASS_TOKEN:
    case GRAFT_LAYER_TOKEN_SELECT: per = 0; break;
    case GRAFT_LAYER_TOKEN_MEAN: per = in / (out > 0 ? out : 1); break;
    case GRAFT_LAYER_BATCHNORM: per = 4; break;
    case GRAFT_LAYER_LAYERNORM: per = 8; break; /* two passes for the statistics, then apply */
    case GRAFT_LAYER_MAXPOOL:
    case GRAFT_LAYER_AVGPOOL: per = (double)l->pool[0] * l->pool[1]; break;
    case GRAFT_LAYER_GLOBAL_AVGPOOL: per = in / (out > 0 ? out : 1); break;
    case GRAFT_LAYER_GELU:
    case GRAFT_LAYER_SIGMOID:
    case GRAFT_LAYER_TANH: per = 8; break;
    case GRAFT_LAYER_FLATTEN:
    case GRAFT_LAYER_CONCAT: per = 0; break;
    default: per = 1; break;
    }
    if (per > 0) {
        c.fwd_flops = n * out * per;
        c.bwd_flops = lp->backward ? n * out * per : 0;
    }
    c.fwd_bytes = 4 * (n * (in + out) + params);
    if (lp->backward) /* read dy and what the gradient needs (x), write dx and dW */
        c.bwd_bytes = 4 * (n * out + (dx || lp->trains ? n * in : 0) + (dx ? n * in : 0) +
                           (lp->trains ? 2 * params : 0));
    return c;
}

/* ---- families ---- */
static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bench_family layer_family(graft_layer_type t)
{
    switch (t) {
    case GRAFT_LAYER_CONV2D: return FAM_CONV;
    case GRAFT_LAYER_DENSE:
    case GRAFT_LAYER_PATCH_EMBED: return FAM_DENSE;
    case GRAFT_LAYER_CLASS_TOKEN:
    case GRAFT_LAYER_POSITION_EMBEDDING:
    case GRAFT_LAYER_TOKEN_SELECT:
    case GRAFT_LAYER_TOKEN_MEAN: return FAM_LAYOUT;
    case GRAFT_LAYER_BATCHNORM: return FAM_BATCHNORM;
    case GRAFT_LAYER_LAYERNORM: return FAM_LAYERNORM;
    case GRAFT_LAYER_ATTENTION: return FAM_ATTENTION;
    case GRAFT_LAYER_MAXPOOL:
    case GRAFT_LAYER_AVGPOOL:
    case GRAFT_LAYER_GLOBAL_AVGPOOL: return FAM_POOL;
    case GRAFT_LAYER_DROPOUT: return FAM_DROPOUT;
    case GRAFT_LAYER_FLATTEN:
    case GRAFT_LAYER_CONCAT:
    case GRAFT_LAYER_ADD: return FAM_LAYOUT;
    default: return FAM_ACTIVATION;
    }
}

/* Kernels that only move data: the column matrix, packing, copies, fills. */
static bool layout_kernel(const char *k)
{
    return starts(k, "conv2d_im2col") || starts(k, "conv2d_col2im") || starts(k, "conv2d_pack") ||
           starts(k, "conv2d_unpack") || starts(k, "copy_") || starts(k, "fill") ||
           starts(k, "concat_") || starts(k, "accumulate_") || starts(k, "add2_") ||
           starts(k, "gather_rows"); /* a cached-feature step's batch from the device table */
}

int bench_label_layer(const graph *g, const char *label, int *phase)
{
    *phase = -1;
    if (strcmp(label, "loss") == 0) {
        *phase = BENCH_FWD;
        return g->nlayers;
    }
    const char *dot = strrchr(label, '.');
    if (!dot) return -1;
    *phase = strcmp(dot, ".fwd") == 0 ? BENCH_FWD : strcmp(dot, ".bwd") == 0 ? BENCH_BWD
             : strcmp(dot, ".update") == 0                                    ? BENCH_UPD
                                                                              : -1;
    if (*phase < 0) return -1;
    char name[96];
    size_t n = (size_t)(dot - label);
    if (n >= sizeof name) return -1;
    memcpy(name, label, n);
    name[n] = 0;
    return graph_find_layer(g, name);
}

bench_family bench_family_of(const graph *g, const char *label, const char *kernel)
{
    if (strcmp(kernel, "read") == 0 || strcmp(kernel, "write") == 0) return FAM_TRANSFER;
    if (starts(kernel, "gemm") || starts(kernel, "clblast")) return FAM_GEMM;
    if (layout_kernel(kernel)) return FAM_LAYOUT;
    if (strcmp(label, "loss") == 0) return FAM_LOSS;
    /* adapt: the alignment losses and DANN's discriminator (labels "<layer>.align" and
     * "domain_disc.N.update") count as loss and optimizer work */
    if (starts(kernel, "adapt_") || starts(kernel, "coral_") || starts(kernel, "mmd_") ||
        starts(kernel, "grl_") || starts(kernel, "bce_"))
        return FAM_LOSS;
    const char *dot = strrchr(label, '.');
    if (dot && strcmp(dot, ".align") == 0) return FAM_LOSS;
    if (starts(label, "domain_disc.")) return dot && strcmp(dot, ".update") == 0 ? FAM_OPTIMIZER : FAM_DENSE;
    int phase, li = bench_label_layer(g, label, &phase);
    if (li < 0 || li >= g->nlayers) return FAM_OTHER;
    if (phase == 2) return FAM_OPTIMIZER;
    return layer_family(g->layers[li].type);
}

/* ---- a step's cost ---- */
static void add_cost(bench_cost *a, const cost_row *r)
{
    a->launches += (double)r->launches;
    a->clblast_calls += (double)r->clblast_calls;
    a->gemm_calls += (double)r->gemm_calls;
    a->syncs += (double)r->syncs;
    a->h2d_bytes += r->h2d_bytes;
    a->d2h_bytes += r->d2h_bytes;
    a->traffic_bytes += r->traffic_bytes;
    a->flops += r->flops;
}

/* Floats per trainable parameter an update reads + writes: w, g and the state in, w and the state
 * out; l2sp reads the anchor too. */
static double update_floats(int optimizer, bool l2sp)
{
    int state = optimizer == OPT_SGD ? 0 : (optimizer == OPT_ADAM || optimizer == OPT_ADAMW) ? 2 : 1;
    return 3.0 + 2.0 * state + (l2sp ? 1 : 0);
}

/* Bytes a layout kernel moves for the whole batch (a row is one (label, kernel) pair, however
 * many launches it took): the column matrix is read or written once with the tensor on its other
 * side; the residual add and gradient accumulation read two tensors of the layer's output size
 * and write one; packing and copies read and write the layer's output (or gradient) once. */
static double layout_bytes(const graph *g, int li, const cost_row *r, double n)
{
    if (strcmp(r->kernel, "fill") == 0) return r->traffic_bytes; /* counted: 4 bytes a float */
    /* rows_gather: ROWS_GATHER_FLOATS of a row read and written a work-item (work-items past a
     * row's end, where the global size rounds up, are counted too: an upper bound) */
    if (starts(r->kernel, "gather_rows")) return 2.0 * 4 * ROWS_GATHER_FLOATS * r->items;
    if (li < 0) return 8 * r->items; /* no layer to size it by: one float in, one out per item */
    const layer *l = &g->layers[li];
    double in = 0, out = (double)shape_size(l->out);
    for (int j = 0; j < l->ninputs; j++) in += (double)input_size(g, l->inputs[j]);
    if (l->type == GRAFT_LAYER_CONV2D &&
        (starts(r->kernel, "conv2d_im2col") || starts(r->kernel, "conv2d_col2im"))) {
        double col = (double)l->in.d[0] * l->kernel[0] * l->kernel[1] * (double)l->out.d[1] *
                     (double)l->out.d[2];
        return 4 * n * (in + col);
    }
    if (starts(r->kernel, "add2_") || starts(r->kernel, "accumulate_"))
        return 12 * n * out; /* two tensors read, one written */
    return 8 * n * out;
}

/* The fused attention kernels (cl/attention.cl) of layer l at batch n: the per-head products
 * (2 t^2 d multiply-adds each), the softmax and its backward (~5 flops per score), and their
 * compulsory traffic: Q|K|V, the [n, heads, t, t] probabilities and scores' gradients, O and dO. */
static void attn_fused_cost(const layer *l, const char *kernel, double n, bench_cost *c)
{
    const double t = l->in.d[0], d = l->in.d[1], h = l->heads > 0 ? l->heads : 1;
    const double prod = 4 * n * t * t * d, soft = 5 * n * h * t * t; /* one product: 2 MAC */
    const double rows = 4 * n * t * d, scores = 4 * n * h * t * t;   /* bytes of [nT, D], P */
    if (strcmp(kernel, "attn_fused_fwd") == 0) { /* QK^T, softmax, PV: read QKV, write P, O */
        c->flops += prod + soft + prod;
        c->traffic_bytes += 3 * rows + scores + rows;
    } else if (strcmp(kernel, "attn_fused_bwd_rows") == 0) { /* dO V^T, dS, dS K */
        c->flops += prod + soft + prod;
        c->traffic_bytes += 3 * rows + scores + 2 * scores + rows; /* K, V, dO, P; dP, dQ */
    } else { /* attn_fused_bwd_cols: P'^T dO, dS^T Q */
        c->flops += 2 * prod;
        c->traffic_bytes += 2 * scores + 2 * rows + 2 * rows;
    }
}

void bench_step_cost(const cost_row *rows, int nrows, const graph *g, const graph_plan *gp,
                     int optimizer, bool l2sp, double n, bench_cost fam[FAM_COUNT + 1])
{
    memset(fam, 0, (FAM_COUNT + 1) * sizeof *fam);
    /* per layer and phase: bit 1 = kernels of its own ran (not GEMM, not layout), bit 2 = GEMM
     * calls ran under its label */
    int L = g->nlayers;
    unsigned char(*ran)[3] = calloc((size_t)(L > 0 ? L : 1), sizeof *ran);
    if (!ran) return; /* out of memory: no estimate */
    bool loss_ran = false;
    for (int i = 0; i < nrows; i++) {
        const cost_row *r = &rows[i];
        bench_family f = bench_family_of(g, r->label, r->kernel);
        add_cost(&fam[f], r); /* counts, and the GEMM and fill traffic */
        int phase, li = bench_label_layer(g, r->label, &phase);
        if (li >= L) li = -1;
        if (f == FAM_LAYOUT) fam[f].traffic_bytes += layout_bytes(g, li, r, n) - r->traffic_bytes;
        if (f == FAM_LOSS && r->launches) loss_ran = true;
        if (li < 0 || phase < 0) continue;
        if (f == FAM_ATTENTION && starts(r->kernel, "attn_fused_")) {
            /* the per-head products themselves: counted here, so the layer's own kernels below
             * stay its projections' bias epilogue */
            if (r->launches) attn_fused_cost(&g->layers[li], r->kernel, n, &fam[f]);
            continue;
        }
        if (f == FAM_GEMM && r->gemm_calls) ran[li][phase] |= 2;
        /* layout rows are costed above, row by row */
        if (r->launches && f != FAM_LAYOUT &&
            (f == FAM_OPTIMIZER || layer_family(g->layers[li].type) == f))
            ran[li][phase] |= 1;
    }
    /* the update runs over neighbouring tensors in one launch, labelled with the run's first
     * layer (pipeline.c, update), and the runs cover every trained tensor from the first one on:
     * each layer the plan trains from the first labelled one on was updated */
    int first_update = -1;
    for (int li = L - 1; li >= 0; li--)
        if (ran[li][2] & 1) first_update = li;
    if (first_update >= 0 && gp)
        for (int li = first_update; li < L; li++)
            if (gp->layers[li].trains) ran[li][2] |= 1;
    for (int li = 0; li < L; li++) {
        const layer *l = &g->layers[li];
        layer_cost lc = bench_layer_cost(g, l, &gp->layers[li], n);
        bench_family f = layer_family(l->type);
        double out = n * (double)shape_size(l->out), bias = l->bias ? out : 0;
        /* with GEMM calls under its label, a conv or dense layer's own kernels are its epilogue
         * (bias): one pass over y, or a read of dy; without, they did the whole op */
        if (ran[li][0] & 1) {
            bool epi = (ran[li][0] & 2) != 0;
            fam[f].traffic_bytes += epi ? 8 * out : lc.fwd_bytes;
            fam[f].flops += epi ? bias : lc.fwd_flops;
        }
        if (ran[li][1] & 1) {
            bool epi = (ran[li][1] & 2) != 0;
            fam[f].traffic_bytes += epi ? 4 * out : lc.bwd_bytes;
            fam[f].flops += epi ? bias : lc.bwd_flops;
        }
        if (ran[li][2] & 1) {
            double params = 0;
            for (int j = 0; j < l->nparams; j++)
                if (!l->params[j].is_buffer) params += (double)l->params[j].count;
            fam[FAM_OPTIMIZER].traffic_bytes += 4 * params * update_floats(optimizer, l2sp);
            fam[FAM_OPTIMIZER].flops += 10 * params;
        }
    }
    free(ran);
    if (loss_ran) { /* logits and labels in; their gradient, the loss and correctness out */
        double classes = g->num_classes > 0 ? g->num_classes : 1;
        fam[FAM_LOSS].traffic_bytes += 4 * n * (2 * classes + 3);
        fam[FAM_LOSS].flops += 5 * n * classes;
    }
    for (int f = 0; f < FAM_COUNT; f++) {
        bench_cost *t = &fam[FAM_COUNT], *a = &fam[f];
        t->launches += a->launches;
        t->clblast_calls += a->clblast_calls;
        t->gemm_calls += a->gemm_calls;
        t->syncs += a->syncs;
        t->h2d_bytes += a->h2d_bytes;
        t->d2h_bytes += a->d2h_bytes;
        t->traffic_bytes += a->traffic_bytes;
        t->flops += a->flops;
    }
}

bench_estimate bench_estimate_step(const bench_cost *total, double launch_us, double bandwidth_gbs,
                                   double peak_gflops)
{
    bench_estimate e = {.launch_us = launch_us, .bandwidth_gbs = bandwidth_gbs,
                        .peak_gflops = peak_gflops};
    e.launch_s = total->launches * launch_us * 1e-6;
    e.memory_s = bandwidth_gbs > 0 ? total->traffic_bytes / (bandwidth_gbs * 1e9) : 0;
    e.compute_s = peak_gflops > 0 ? total->flops / (peak_gflops * 1e9) : 0;
    e.step_s = e.launch_s + (e.memory_s > e.compute_s ? e.memory_s : e.compute_s);
    return e;
}

/* ---- JSON ---- */
static json_t *cost_obj(const bench_cost *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "launches", json_integer((json_int_t)a->launches));
    json_object_set_new(o, "clblast_calls", json_integer((json_int_t)a->clblast_calls));
    json_object_set_new(o, "gemm_calls", json_integer((json_int_t)a->gemm_calls));
    json_object_set_new(o, "syncs", json_integer((json_int_t)a->syncs));
    json_object_set_new(o, "h2d_bytes", json_integer((json_int_t)a->h2d_bytes));
    json_object_set_new(o, "d2h_bytes", json_integer((json_int_t)a->d2h_bytes));
    json_object_set_new(o, "traffic_bytes", json_real(a->traffic_bytes));
    json_object_set_new(o, "flops", json_real(a->flops));
    return o;
}

json_t *bench_cost_json(const cost_row *rows, int nrows, const graph *g,
                        const bench_cost fam[FAM_COUNT + 1], int profiled_events)
{
    json_t *o = json_object(), *fj = json_object(), *rj_all = json_array();
    for (int f = 0; f < FAM_COUNT; f++)
        if (fam[f].launches || fam[f].syncs || fam[f].h2d_bytes || fam[f].d2h_bytes ||
            fam[f].traffic_bytes)
            json_object_set_new(fj, BENCH_FAMILY_NAMES[f], cost_obj(&fam[f]));
    json_object_set_new(o, "families", fj);
    json_object_set_new(o, "total", cost_obj(&fam[FAM_COUNT]));
    json_object_set_new(o, "profiled_events", json_integer(profiled_events));
    for (int i = 0; i < nrows; i++) {
        const cost_row *r = &rows[i];
        json_t *rj = json_object();
        json_object_set_new(rj, "label", json_string(r->label));
        json_object_set_new(rj, "kernel", json_string(r->kernel));
        json_object_set_new(rj, "family",
                            json_string(BENCH_FAMILY_NAMES[bench_family_of(g, r->label, r->kernel)]));
        json_object_set_new(rj, "launches", json_integer(r->launches));
        json_object_set_new(rj, "gemm_calls", json_integer(r->gemm_calls));
        json_object_set_new(rj, "syncs", json_integer(r->syncs));
        json_object_set_new(rj, "work_items", json_real(r->items));
        json_object_set_new(rj, "h2d_bytes", json_integer((json_int_t)r->h2d_bytes));
        json_object_set_new(rj, "d2h_bytes", json_integer((json_int_t)r->d2h_bytes));
        json_array_append_new(rj_all, rj);
    }
    json_object_set_new(o, "rows", rj_all);
    return o;
}

json_t *bench_estimate_json(const bench_estimate *est, double batch)
{
    json_t *o = json_object();
    json_object_set_new(o, "launch_us", json_real(est->launch_us));
    json_object_set_new(o, "bandwidth_gbs", json_real(est->bandwidth_gbs));
    json_object_set_new(o, "peak_gflops", json_real(est->peak_gflops));
    json_object_set_new(o, "launch_ms", json_real(est->launch_s * 1e3));
    json_object_set_new(o, "memory_ms", json_real(est->memory_s * 1e3));
    json_object_set_new(o, "compute_ms", json_real(est->compute_s * 1e3));
    json_object_set_new(o, "step_ms", json_real(est->step_s * 1e3));
    json_object_set_new(o, "images_per_second",
                        json_real(est->step_s > 0 ? batch / est->step_s : 0));
    return o;
}

json_t *bench_device_json(const graft_device_info *d, const char *name_key)
{
    char spec[32];
    snprintf(spec, sizeof spec, "%d:%d", d->platform_index, d->device_index);
    json_t *o = json_object();
    json_object_set_new(o, "spec", json_string(spec));
    json_object_set_new(o, "platform_index", json_integer(d->platform_index));
    json_object_set_new(o, "device_index", json_integer(d->device_index));
    json_object_set_new(o, name_key, json_string(d->name));
    json_object_set_new(o, "vendor", json_string(d->vendor));
    json_object_set_new(o, "type", json_string(graft_device_type_name(d->type)));
    json_object_set_new(o, "platform", json_string(d->platform));
    json_object_set_new(o, "platform_version", json_string(d->platform_version));
    json_object_set_new(o, "driver", json_string(d->driver));
    json_object_set_new(o, "opencl_version", json_string(d->cl_version));
    json_object_set_new(o, "opencl_c_version", json_string(d->cl_c_version));
    json_object_set_new(o, "compute_units", json_integer(d->compute_units));
    json_object_set_new(o, "clock_mhz", json_integer(d->clock_mhz));
    json_object_set_new(o, "global_mem_bytes", json_integer((json_int_t)d->global_mem_bytes));
    json_object_set_new(o, "local_mem_bytes", json_integer((json_int_t)d->local_mem_bytes));
    json_object_set_new(o, "max_alloc_bytes", json_integer((json_int_t)d->max_alloc_bytes));
    json_object_set_new(o, "max_work_group_size", json_integer((json_int_t)d->max_work_group_size));
    json_t *v = json_object();
    json_object_set_new(v, "char", json_integer(d->vec_char));
    json_object_set_new(v, "short", json_integer(d->vec_short));
    json_object_set_new(v, "int", json_integer(d->vec_int));
    json_object_set_new(v, "long", json_integer(d->vec_long));
    json_object_set_new(v, "float", json_integer(d->vec_float));
    json_object_set_new(v, "double", json_integer(d->vec_double));
    json_object_set_new(v, "half", json_integer(d->vec_half));
    json_object_set_new(o, "preferred_vector_width", v);
    int pc = program_cache_by_driver(d);
    json_object_set_new(o, "program_cache",
                        pc < 0 ? json_null() : json_string(pc ? "driver" : "graft"));
    json_object_set_new(o, "fp16", json_boolean(d->fp16));
    json_object_set_new(o, "fp64", json_boolean(d->fp64));
    return o;
}
