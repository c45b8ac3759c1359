/* cmd_plan.c — `graft plan RECIPE [--set K=V]... [--json]`: the compiled view of a recipe before
 * anything runs: per layer its output shape, parameters, frozen or trainable, whether its backward
 * runs, lr multiplier, which tensors load from the checkpoint and which are initialised; totals
 * and the feature-cache decision. Later stages append sections (memory from the compiler) through
 * plan_extend_json / plan_extend_table, so the table and the JSON stay one view. */
#include "cli.h"
#include "compile.h"
#include "recipe.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct plan_view {
    const graft_recipe *r;
    graph_plan plan; /* the compiler's own analysis: backward, caching, memory */
    bool *backward;  /* per layer, from plan */
    bool cache;
    char cache_reason[512];
    /* where the cache lives: device memory while every split's features fit in the budget */
    double cache_row_bytes, cache_device_budget; /* budget 0: no device found */
    char cache_device[256];
    /* whether training fits the recipe's device (the trainer's own check before epoch 1) */
    int fit; /* -1 no device, 0 does not fit, 1 fits */
    char fit_text[1700];
} plan_view;

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

/* The check graft train makes before epoch 1 (every freeze phase against the device's global
 * memory and largest allocation), so the plan says in advance whether training will start. */
static graft_status device_fit(plan_view *v, graft_recipe *r, graft_error *out)
{
    graft_device_info *list = NULL;
    int nd = 0, idx = 0;
    graft_error e = {0};
    bool fits;
    v->fit = -1;
    graft_status s = graft_devices_list(&list, &nd, &e);
    if (!s) s = graft_device_select(list, nd, r->device ? r->device : "", &idx, &e);
    if (!s) s = plan_check_memory(r, &list[idx], &r->transfer.freeze, &fits, &e);
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

static void cache_location_text(const plan_view *v, char *out, size_t n)
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
                 "device memory when the features of all splits (%.0f bytes per sample) fit in "
                 "%.3g of %s's memory (%.0f MiB: up to %.0f samples), else host memory",
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
    json_object_set_new(o, "total_bytes", json_integer((json_int_t)m->total));
    json_object_set_new(o, "activation_slots", json_integer(v->plan.nslots));
    json_object_set_new(o, "device_fits", v->fit < 0 ? json_null() : json_boolean(v->fit));
    json_object_set_new(o, "device_fit",
                        json_string(v->fit < 0 ? "no OpenCL device" : v->fit_text));
    json_object_set_new(root, "memory", o);
}

static void mib(const char *what, size_t bytes)
{
    printf("  %-36s %10.2f MiB\n", what, (double)bytes / (1 << 20));
}

static void plan_extend_table(const plan_view *v)
{
    const plan_memory *m = &v->plan.mem;
    printf("\ndevice memory for a training step at batch %d (the compiler's buffer plan):\n",
           v->r->train.batch_size);
    mib("weights and buffers", m->weights);
    mib("gradients (trainable only)", m->gradients);
    mib("optimizer state (+ L2-SP anchors)", m->optimizer);
    char what[96];
    snprintf(what, sizeof what, "activations (%d shared slots)", v->plan.nslots);
    mib(what, m->activations);
    mib("workspace (im2col)", m->workspace);
    mib("total", m->total);
    if (v->fit >= 0) printf("  %s\n", v->fit_text);
}

static const char *l_name(const graph *g, int i)
{
    return g->layers[i].name;
}

static json_t *plan_json(const plan_view *v)
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
        cache_location_text(v, where, sizeof where);
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
    plan_extend_json(o, v);
    return o;
}

static void plan_table(const plan_view *v)
{
    const graft_recipe *r = v->r;
    const graph *g = &r->graph;
    char s[64];
    shape_format(g->input, s, sizeof s);
    printf("recipe %s (%s)\ninput %s\ncheckpoint %s\n\n", r->name, r->file, s,
           r->transfer.from ? r->transfer.from : "none (every tensor is initialised)");
    printf("%3s  %-24s %-14s %-16s %10s  %-9s %-8s %7s  %-16s %s\n", "#", "layer", "type",
           "output", "params", "state", "backward", "lr_mult", "weights", "kernel");
    for (int i = 0; i < g->nlayers; i++) {
        const layer *l = &g->layers[i];
        shape_format(l->out, s, sizeof s);
        int loaded = 0;
        for (int j = 0; j < l->nparams; j++) loaded += l->params[j].in_checkpoint;
        char w[32];
        if (!l->nparams) snprintf(w, sizeof w, "-");
        else if (loaded == l->nparams) snprintf(w, sizeof w, "load");
        else if (!loaded) snprintf(w, sizeof w, l->fresh ? "init (new head)" : "init");
        else snprintf(w, sizeof w, "load %d/%d", loaded, l->nparams);
        const char *state = l->frozen ? "frozen" : layer_param_count(l) ? "trainable" : "-";
        const layer_plan *lp = &v->plan.layers[i];
        char k[96] = "";
        if (lp->fused_into >= 0) { /* the layer whose kernels run it (through a folded bn) */
            int at = lp->fused_into;
            while (v->plan.layers[at].fused_into >= 0) at = v->plan.layers[at].fused_into;
            snprintf(k, sizeof k, "in %s", g->layers[at].name);
        } else if (lp->bn_fold >= 0) {
            int a = v->plan.layers[lp->bn_fold].fused_act;
            snprintf(k, sizeof k, "+ %s%s%s", g->layers[lp->bn_fold].name, a >= 0 ? " + " : "",
                     a >= 0 ? g->layers[a].name : "");
        } else if (lp->fused_act >= 0)
            snprintf(k, sizeof k, "+ %s", g->layers[lp->fused_act].name);
        char line[512];
        int len = snprintf(line, sizeof line, "%3d  %-24s %-14s %-16s %10ld  %-9s %-8s %7g  %-16s %s",
                           i, l->name, layer_type_name(l->type), s, layer_param_count(l), state,
                           v->backward[i] ? "yes" : "no", (double)l->lr_mult, w, k);
        while (len > 0 && len < (int)sizeof line && line[len - 1] == ' ') line[--len] = '\0';
        puts(line);
    }
    int nf = 0, nb = 0;
    for (int i = 0; i < g->nlayers; i++) {
        nf += v->plan.layers[i].fused_act >= 0;
        nb += v->plan.layers[i].bn_fold >= 0;
    }
    printf("\nfused: %d activation%s run%s as the epilogue of the layer before", nf,
           nf == 1 ? "" : "s", nf == 1 ? "s" : "");
    if (nb)
        printf("; %d eval-mode batchnorm%s folded into the convolution before (no backward there)",
               nb, nb == 1 ? "" : "s");
    printf(" (kernel column; GRAFT_FUSE=0 turns fusion off)\n");
    printf("\nparameters: %ld total, %ld trainable\n", graph_param_count(g, false),
           graph_param_count(g, true));
    printf("feature cache: %s: %s\n", v->cache ? "used" : "not used", v->cache_reason);
    if (v->cache) {
        char where[640];
        cache_location_text(v, where, sizeof where);
        printf("feature cache lives in: %s\n", where);
    }
    plan_extend_table(v);
}

int cmd_plan(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "plan", PLAN_USAGE, argc, argv);
    const char *file = NULL, *opt, *pos, *sets[CLI_MAX_SETS];
    int nsets = 0;
    bool json = false;
    while (cli_next(&a, &opt, &pos)) {
        if (pos) {
            if (file) return cli_usage_error(&a, "unexpected argument '%s'", pos);
            file = pos;
        } else if (strcmp(opt, "--set") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v || !cli_add_set(&a, v, sets, &nsets, CLI_MAX_SETS)) return 2;
        } else if (strcmp(opt, "--json") == 0) {
            json = true;
        } else {
            return cli_usage_error(&a, "unknown option %s", opt);
        }
    }
    if (!file) return cli_usage_error(&a, "missing RECIPE");
    graft_recipe *r;
    int rc = cli_load_recipe(file, sets, nsets, &r);
    if (rc) return rc;
    plan_view v = {.r = r};
    v.backward = calloc((size_t)r->graph.nlayers + 1, sizeof *v.backward);
    if (!v.backward) {
        recipe_free(r);
        fprintf(stderr, "graft: error: out of memory\n");
        return 1;
    }
    graft_error e = {0};
    const train_spec *t = &r->train;
    if (plan_analyse(&r->graph, true, r->transfer.bn_train, data_spec_augments(&r->data),
                     t->optimizer, t->l2sp > 0, 0, t->batch_size, &v.plan, &e)) {
        free(v.backward);
        recipe_free(r);
        return cli_fail(&e);
    }
    for (int i = 0; i < r->graph.nlayers; i++) v.backward[i] = v.plan.layers[i].backward;
    v.cache = v.plan.cacheable && r->transfer.cache_features != CACHE_OFF;
    snprintf(v.cache_reason, sizeof v.cache_reason, "%s%s",
             r->transfer.cache_features == CACHE_OFF ? "transfer.cache_features is off"
                                                     : v.plan.cache_reason,
             r->train.nunfreeze ? " (until the first train.unfreeze step; each phase decides "
                                  "again when it recompiles)"
                                : "");
    cache_location(&v);
    if (device_fit(&v, r, &e)) {
        plan_free(&v.plan);
        free(v.backward);
        recipe_free(r);
        return cli_fail(&e);
    }
    if (json) {
        json_t *o = plan_json(&v);
        char *text = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        if (text) puts(text);
        free(text);
        json_decref(o);
    } else {
        plan_table(&v);
    }
    free(v.backward);
    plan_free(&v.plan);
    recipe_free(r);
    return 0;
}
