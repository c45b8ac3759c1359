/* planview.c — the compiled view of a recipe before anything runs (what `graft plan` prints and
 * graft_recipe_plan_json returns): per layer its shape, parameters, freezing, backward, fusion,
 * checkpoint loading; totals, the feature-cache decision and the step's memory. */
#include "compile.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool plan_caches_prefix(const graft_recipe *r, const graph_plan *gp)
{
    return gp->cacheable && r->transfer.cache_features != CACHE_OFF && !recipe_aligns(r);
}

/* The feature cache's row size and the device-memory budget transfer.cache_device_fraction gives
 * on the recipe's device (the trainer decides with the same numbers once the data is loaded). */
static void cache_location(plan_view *v)
{
    const graft_recipe *r = v->r;
    if (!v->cache || v->plan.cache_cut < 1) return;
    v->cache_row_bytes = (double)shape_size(r->graph.layers[v->plan.cache_cut - 1].out) * 4.0;
    graft_device_info *list = NULL;
    int nd = 0, idx = 0;
    graft_error e = {0};
    if (!graft_devices_list(&list, &nd, &e) &&
        !graft_device_select(list, nd, r->device ? r->device : "", &idx, &e)) {
        v->cache_device_budget = r->transfer.cache_device_fraction * (double)list[idx].global_mem_bytes;
        snprintf(v->cache_device, sizeof v->cache_device, "%s", list[idx].name);
    }
    free(list);
}

void plan_view_cache_location(const plan_view *v, char *out, size_t n)
{
    const graft_recipe *r = v->r;
    if (!v->cache) {
        snprintf(out, n, "-");
    } else if (r->transfer.cache_device_fraction <= 0) {
        snprintf(out, n, "host memory (transfer.cache_device_fraction is 0)");
    } else if (v->cache_device_budget <= 0) {
        snprintf(out, n, "host memory (no OpenCL device to hold it)");
    } else {
        snprintf(out, n,
                 "device memory when the features of all splits (%.0f bytes per sample; of a "
                 "test split read only at the end, one batch) fit in %.3g of %s's memory "
                 "(%.0f MiB: up to %.0f samples), else host memory",
                 v->cache_row_bytes, r->transfer.cache_device_fraction, v->cache_device,
                 v->cache_device_budget / 1048576.0, v->cache_device_budget / v->cache_row_bytes);
    }
}

static json_t *shape_json(shape s)
{
    json_t *a = json_array();
    for (int i = 0; i < s.rank; i++) json_array_append_new(a, json_integer(s.d[i]));
    return a;
}

/* Memory as the compiler allocates it for a training step at train.batch_size. */
static void plan_extend_json(json_t *root, const plan_view *v)
{
    const plan_memory *m = &v->plan.mem;
    json_t *o = json_object();
    json_object_set_new(o, "batch_size", json_integer(v->r->train.batch_size));
    json_object_set_new(o, "weights_bytes", json_integer((json_int_t)m->weights));
    json_object_set_new(o, "gradients_bytes", json_integer((json_int_t)m->gradients));
    json_object_set_new(o, "optimizer_bytes", json_integer((json_int_t)m->optimizer));
    json_object_set_new(o, "activations_bytes", json_integer((json_int_t)m->activations));
    json_object_set_new(o, "workspace_bytes", json_integer((json_int_t)m->workspace));
    /* "device": the paths the recipe's device takes by default; "bound": any path's, at most */
    json_object_set_new(o, "workspace_of", json_string(v->ws_device ? "device" : "bound"));
    json_object_set_new(o, "total_bytes", json_integer((json_int_t)m->total));
    json_object_set_new(o, "activation_slots", json_integer(v->plan.nslots));
    json_object_set_new(o, "device_fits", v->fit < 0 ? json_null() : json_boolean(v->fit));
    json_object_set_new(o, "device_fit",
                        json_string(v->fit < 0 ? "no OpenCL device" : v->fit_text));
    json_object_set_new(root, "memory", o);
}

static const char *l_name(const graph *g, int i)
{
    return g->layers[i].name;
}

/* ---- adapt: the extra layers, buffers and losses of domain adaptation ---- */
static const char *const ADAPT_NAMES[] = {"adabn", "coral", "mmd", "dann"};

size_t plan_adapt_bytes(const graft_recipe *r, int batch)
{
    const adapt_spec *as = &r->adapt;
    if (!as->present || as->layer < 0 || !(as->methods & ADAPT_ALIGNING)) return 0;
    int d = (int)shape_size(r->graph.layers[as->layer].out), n = recipe_step_rows(r, batch);
    if (as->methods & ADAPT_CORAL) return align_op_bytes(ALIGN_CORAL, d, n);
    if (as->methods & ADAPT_MMD) return align_op_bytes(ALIGN_MMD, d, n);
    size_t bytes = 0;
    const graph *dg = &as->disc_graph;
    int state = r->train.optimizer >= OPT_ADAM ? 2 : r->train.optimizer == OPT_SGD ? 0 : 1;
    for (int i = 0; i < dg->nlayers; i++) {
        const layer *l = &dg->layers[i];
        for (int j = 0; j < l->nparams; j++) bytes += (size_t)l->params[j].count * 4 * (2 + state);
        bytes += 2 * (size_t)n * (size_t)l->units * 4;
    }
    return bytes + (size_t)n * (size_t)d * 4 + (size_t)n * 4;
}

static void adapt_json(json_t *root, const graft_recipe *r)
{
    const adapt_spec *as = &r->adapt;
    if (!as->present) return;
    json_t *o = json_object(), *m = json_array();
    for (int i = 0; i < 4; i++)
        if (as->methods & (1u << i)) json_array_append_new(m, json_string(ADAPT_NAMES[i]));
    json_object_set_new(o, "methods", m);
    bool al = (as->methods & ADAPT_ALIGNING) != 0;
    json_object_set_new(o, "layer", al ? json_string(r->graph.layers[as->layer].name) : json_null());
    json_object_set_new(o, "weight", json_real(as->weight));
    json_object_set_new(o, "step_rows", json_integer(recipe_step_rows(r, r->train.batch_size)));
    json_t *losses = json_array();
    json_array_append_new(losses, json_string("cross_entropy(source rows)"));
    if (as->methods & ADAPT_CORAL) json_array_append_new(losses, json_string("coral"));
    if (as->methods & ADAPT_MMD) json_array_append_new(losses, json_string("mmd"));
    if (as->methods & ADAPT_DANN) json_array_append_new(losses, json_string("bce(domain)"));
    json_object_set_new(o, "losses", losses);
    json_t *layers = json_array();
    if (as->methods & ADAPT_DANN) {
        json_t *grl = json_object();
        json_object_set_new(grl, "name", json_string("grl"));
        json_object_set_new(grl, "type", json_string("gradient_reversal"));
        json_object_set_new(grl, "schedule", json_string(as->schedule == ADAPT_SCHED_GANIN ? "ganin" : "constant"));
        json_array_append_new(layers, grl);
        for (int i = 0; i < as->disc_graph.nlayers; i++) {
            const layer *l = &as->disc_graph.layers[i];
            json_t *x = json_object();
            json_object_set_new(x, "name", json_string(l->name));
            json_object_set_new(x, "type", json_string("dense"));
            json_object_set_new(x, "units", json_integer(l->units));
            long pc = 0;
            for (int j = 0; j < l->nparams; j++) pc += l->params[j].count;
            json_object_set_new(x, "params", json_integer(pc));
            if (i < as->disc_graph.nlayers - 1 && as->disc_dropout > 0)
                json_object_set_new(x, "dropout", json_real(as->disc_dropout));
            json_array_append_new(layers, x);
        }
    }
    json_object_set_new(o, "extra_layers", layers);
    json_object_set_new(o, "extra_bytes",
                        json_integer((json_int_t)plan_adapt_bytes(r, r->train.batch_size)));
    json_t *bn = json_array();
    if (as->methods & ADAPT_ADABN)
        for (int i = 0; i < r->graph.nlayers; i++)
            if (r->graph.layers[i].type == GRAFT_LAYER_BATCHNORM)
                json_array_append_new(bn, json_string(r->graph.layers[i].name));
    json_object_set_new(o, "adabn_layers", bn);
    json_object_set_new(root, "adapt", o);
}



/* [[layer, partner], ...] for every layer whose plan field (an int of layer_plan at `field`)
 * names a partner */
static json_t *layer_pairs(const graph *g, const graph_plan *p, size_t field)
{
    json_t *pairs = json_array();
    for (int i = 0; i < g->nlayers; i++) {
        const int j = *(const int *)((const char *)&p->layers[i] + field);
        if (j < 0) continue;
        json_t *grp = json_array();
        json_array_append_new(grp, json_string(l_name(g, i)));
        json_array_append_new(grp, json_string(l_name(g, j)));
        json_array_append_new(pairs, grp);
    }
    return pairs;
}

json_t *plan_view_json(const plan_view *v)
{
    const graft_recipe *r = v->r;
    const graph *g = &r->graph;
    json_t *o = json_object();
    json_object_set_new(o, "recipe", json_string(r->file));
    json_object_set_new(o, "name", json_string(r->name));
    json_object_set_new(o, "input_shape", shape_json(g->input));
    json_object_set_new(o, "checkpoint", r->transfer.from ? json_string(r->transfer.from) : json_null());
    json_t *layers = json_array();
    for (int i = 0; i < g->nlayers; i++) {
        const layer *l = &g->layers[i];
        json_t *lo = json_object();
        json_object_set_new(lo, "name", json_string(l->name));
        json_object_set_new(lo, "type", json_string(layer_type_name(l->type)));
        json_t *ins = json_array();
        for (int j = 0; j < l->ninputs; j++)
            json_array_append_new(ins, json_string(l->inputs[j] < 0 ? "input" : g->layers[l->inputs[j]].name));
        json_object_set_new(lo, "inputs", ins);
        json_object_set_new(lo, "output_shape", shape_json(l->out));
        json_object_set_new(lo, "params", json_integer(layer_param_count(l)));
        json_object_set_new(lo, "frozen", json_boolean(l->frozen));
        json_object_set_new(lo, "fresh", json_boolean(l->fresh));
        json_object_set_new(lo, "backward", json_boolean(v->backward[i]));
        json_object_set_new(lo, "lr_mult", json_real(l->lr_mult));
        const layer_plan *lp = &v->plan.layers[i];
        json_object_set_new(lo, "fused_into", lp->fused_into >= 0
                                                  ? json_string(g->layers[lp->fused_into].name)
                                                  : json_null());
        json_object_set_new(lo, "epilogue", lp->fused_act >= 0
                                                ? json_string(g->layers[lp->fused_act].name)
                                                : json_null());
        json_object_set_new(lo, "folded_batchnorm", lp->bn_fold >= 0
                                                        ? json_string(g->layers[lp->bn_fold].name)
                                                        : json_null());
        json_t *load = json_array(), *init = json_array();
        for (int j = 0; j < l->nparams; j++)
            json_array_append_new(l->params[j].in_checkpoint ? load : init,
                                  json_string(l->params[j].name));
        json_object_set_new(lo, "load", load);
        json_object_set_new(lo, "init", init);
        json_array_append_new(layers, lo);
    }
    json_object_set_new(o, "layers", layers);
    json_object_set_new(o, "params_total", json_integer(graph_param_count(g, false)));
    json_object_set_new(o, "params_trainable", json_integer(graph_param_count(g, true)));
    json_object_set_new(o, "frozen_prefix", json_integer(graph_frozen_prefix(g)));
    json_t *fc = json_object();
    json_object_set_new(fc, "used", json_boolean(v->cache));
    json_object_set_new(fc, "reason", json_string(v->cache_reason));
    if (v->cache) {
        char where[640];
        plan_view_cache_location(v, where, sizeof where);
        json_object_set_new(fc, "location", json_string(where));
        json_object_set_new(fc, "bytes_per_sample", json_real(v->cache_row_bytes));
        json_object_set_new(fc, "device_budget_bytes", json_real(v->cache_device_budget));
    }
    json_object_set_new(o, "feature_cache", fc);
    json_t *groups = json_array();
    for (int i = 0; i < g->nlayers; i++) {
        const layer_plan *lp = &v->plan.layers[i];
        if (lp->fused_into >= 0) continue; /* in the group of its producer */
        if (lp->fused_act < 0 && lp->bn_fold < 0) continue;
        json_t *grp = json_array();
        json_array_append_new(grp, json_string(l_name(g, i)));
        int last = i;
        if (lp->bn_fold >= 0) {
            last = lp->bn_fold;
            json_array_append_new(grp, json_string(l_name(g, last)));
        }
        if (v->plan.layers[last].fused_act >= 0)
            json_array_append_new(grp, json_string(l_name(g, v->plan.layers[last].fused_act)));
        json_array_append_new(groups, grp);
    }
    json_object_set_new(o, "fused_groups", groups);
    /* a conv's forward writing the max-pool after it, where the conv runs the Winograd path
     * (CPUs; conv2d_can_pool); a conv computed inside the next conv's forward, where that runs
     * Winograd F(4x4) (CPUs; conv2d_stem_init) */
    json_object_set_new(o, "pool_groups",
                        layer_pairs(g, &v->plan, offsetof(layer_plan, fused_pool)));
    json_object_set_new(o, "stem_groups",
                        layer_pairs(g, &v->plan, offsetof(layer_plan, stem_into)));
    plan_extend_json(o, v);
    adapt_json(o, v->r);
    return o;
}

/* The check graft train makes before epoch 1 (every freeze phase against the device's global
 * memory and largest allocation), so the plan says in advance whether training will start.
 * plan_check_memory applies each phase's freeze to r and puts the current one back. */
static graft_status device_fit(plan_view *v, graft_recipe *r, graft_error *out)
{
    graft_device_info *list = NULL;
    int nd = 0, idx = 0;
    graft_error e = {0};
    bool fits;
    v->fit = -1;
    graft_status s = graft_devices_list(&list, &nd, &e);
    if (!s) s = graft_device_select(list, nd, r->device ? r->device : "", &idx, &e);
    if (!s) { /* the workspace the device's conv paths use, not the bound over all of them */
        plan_workspace_on(&r->graph, &v->plan, &list[idx], true,
                          recipe_step_rows(r, r->train.batch_size));
        v->ws_device = true;
        s = plan_check_memory(r, &list[idx], &r->transfer.freeze, &fits, &e);
    }
    if (s == GRAFT_STATUS_NOMEM) {
        /* the check itself ran out of memory: a failure, not an unknown device */
        free(list);
        *out = e;
        return s;
    }
    if (!s) {
        v->fit = fits;
        if (fits)
            snprintf(v->fit_text, sizeof v->fit_text, "fits %s (%.1f MiB global memory)",
                     list[idx].name, (double)list[idx].global_mem_bytes / 1048576.0);
        else
            snprintf(v->fit_text, sizeof v->fit_text, "does not fit: %s", e.message);
    }
    free(list);
    return GRAFT_OK;
}

graft_status plan_view_build(const graft_recipe *r, plan_view *v, graft_error *e)
{
    memset(v, 0, sizeof *v);
    v->r = r;
    v->backward = calloc((size_t)r->graph.nlayers + 1, sizeof *v->backward);
    if (!v->backward) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    const train_spec *t = &r->train;
    if (plan_analyse(&r->graph, true, r->transfer.bn_train, data_spec_augments(&r->data),
                     t->optimizer, t->l2sp > 0, 0, recipe_step_rows(r, t->batch_size), &v->plan,
                     e)) {
        free(v->backward);
        v->backward = NULL;
        return e->status ? e->status : GRAFT_STATUS_INTERNAL;
    }
    for (int i = 0; i < r->graph.nlayers; i++) v->backward[i] = v->plan.layers[i].backward;
    v->cache = plan_caches_prefix(r, &v->plan);
    snprintf(v->cache_reason, sizeof v->cache_reason, "%s%s",
             r->transfer.cache_features == CACHE_OFF ? "transfer.cache_features is off"
             : recipe_aligns(r) && v->plan.cacheable ? recipe_align_reason
                                                     : v->plan.cache_reason,
             r->train.nunfreeze ? " (until the first train.unfreeze step; each phase decides "
                                  "again when it recompiles)"
                                : "");
    cache_location(v);
    graft_status s = device_fit(v, (graft_recipe *)r, e);
    if (s) plan_view_free(v);
    return s;
}

void plan_view_free(plan_view *v)
{
    free(v->backward);
    v->backward = NULL;
    plan_free(&v->plan);
}
