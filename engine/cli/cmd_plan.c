/* cmd_plan.c — `graft plan RECIPE [--set K=V]... [--json]`: the compiled view of a recipe before
 * anything runs: per layer its output shape, parameters, frozen or trainable, whether its backward
 * runs, lr multiplier, which tensors load from the checkpoint and which are initialised; totals
 * and the feature-cache decision. The view and its JSON are built by the library
 * (compile/planview.c, also graft_recipe_plan_json); this file prints the table. */
#include "cli.h"
#include "compile.h"
#include "recipe.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void mib(const char *what, size_t bytes)
{
    printf("  %-36s %10.2f MiB\n", what, (double)bytes / (1 << 20));
}

static void plan_extend_table(const plan_view *v)
{
    const plan_memory *m = &v->plan.mem;
    const bool al = recipe_aligns(v->r);
    printf("\ndevice memory for a training step at batch %d%s (the compiler's buffer plan):\n",
           v->r->train.batch_size * (al ? 2 : 1), al ? " (source + target)" : "");
    mib("weights and buffers", m->weights);
    mib("gradients (trainable only)", m->gradients);
    mib("optimizer state (+ L2-SP anchors)", m->optimizer);
    char what[96];
    snprintf(what, sizeof what, "activations (%d shared slots)", v->plan.nslots);
    mib(what, m->activations);
    mib(v->ws_device ? "workspace (the device's conv paths)" : "workspace (at most, any path)",
        m->workspace);
    mib("total", m->total);
    if (v->fit >= 0) printf("  %s\n", v->fit_text);
}

/* ---- adapt: the extra layers, buffers and losses of domain adaptation ---- */
static const char *const ADAPT_NAMES[] = {"adabn", "coral", "mmd", "dann"};

static void adapt_table(const graft_recipe *r)
{
    const adapt_spec *as = &r->adapt;
    if (!as->present) return;
    char m[64] = "";
    for (int i = 0; i < 4; i++)
        if (as->methods & (1u << i))
            snprintf(m + strlen(m), sizeof m - strlen(m), "%s%s", m[0] ? " + " : "", ADAPT_NAMES[i]);
    printf("\nadapt: %s; target %s\n", m[0] ? m : "none (source-only: both domains are reported)",
           as->target.images ? as->target.images : as->target.path ? as->target.path
                                                                    : as->target.root);
    if (as->methods & ADAPT_ALIGNING) {
        const layer *al = &r->graph.layers[as->layer];
        char s[64];
        shape_format(al->out, s, sizeof s);
        printf("  each step: %d source + %d target rows through the network (batch %d); the\n"
               "  classification loss reads the source rows only\n",
               r->train.batch_size, r->train.batch_size, 2 * r->train.batch_size);
        const char *loss = as->methods & ADAPT_CORAL ? "CORAL |Cs - Ct|^2 / (4 d^2)"
                           : as->methods & ADAPT_MMD ? "multi-kernel MMD^2 (5 Gaussian kernels)"
                                                     : "binary cross-entropy of the discriminator";
        printf("  extra loss: %g x %s on %s %s%s\n", as->weight, loss, al->name, s,
               al->type == GRAFT_LAYER_DENSE || al->type == GRAFT_LAYER_CONV2D ||
                       al->type == GRAFT_LAYER_BATCHNORM
                   ? " (its own output: no activation fused into it)"
                   : "");
        if (as->methods & ADAPT_DANN) {
            const graph *dg = &as->disc_graph;
            if (as->schedule == ADAPT_SCHED_GANIN)
                printf("  gradient reversal after %s: -lambda x grad, lambda = 2/(1+exp(-%g p)) - 1\n",
                       al->name, as->gamma);
            else
                printf("  gradient reversal after %s: -grad (lambda 1)\n", al->name);
            long params = 0;
            for (int i = 0; i < dg->nlayers; i++) {
                const layer *l = &dg->layers[i];
                shape_format(l->out, s, sizeof s);
                long pc = 0;
                for (int j = 0; j < l->nparams; j++) pc += l->params[j].count;
                params += pc;
                char drop[48] = "";
                if (as->disc_dropout > 0)
                    snprintf(drop, sizeof drop, " + dropout %g", as->disc_dropout);
                printf("  extra layer %-20s dense %-10s %8ld params%s%s\n", l->name, s, pc,
                       i + 1 < dg->nlayers ? " + relu" : " -> logit (source 1, target 0)",
                       i + 1 < dg->nlayers ? drop : "");
            }
            printf("  discriminator parameters: %ld (trained with train.optimizer)\n", params);
        }
        printf("  extra device memory: %.2f MiB\n",
               (double)plan_adapt_bytes(r, r->train.batch_size) / (1 << 20));
    }
    if (as->methods & ADAPT_ADABN) {
        printf("  after training (AdaBN): running statistics of");
        for (int i = 0; i < r->graph.nlayers; i++)
            if (r->graph.layers[i].type == GRAFT_LAYER_BATCHNORM)
                printf(" %s", r->graph.layers[i].name);
        printf(" re-estimated on the target\n");
    }
}

static void plan_table(const plan_view *v)
{
    const graft_recipe *r = v->r;
    const graph *g = &r->graph;
    char s[64];
    shape_format(g->input, s, sizeof s);
    printf("recipe %s (%s)\ninput %s\ncheckpoint %s\n\n", r->name, r->file, s,
           r->transfer.from ? r->transfer.from : "none (every tensor is initialised)");
    /* columns as wide as the longest name and type (ViT's encoder.layers.encoder_layer_11.ln_1) */
    int nw = 24, tw = 14;
    for (int i = 0; i < g->nlayers; i++) {
        int a = (int)strlen(g->layers[i].name), b = (int)strlen(layer_type_name(g->layers[i].type));
        nw = a > nw ? a : nw;
        tw = b > tw ? b : tw;
    }
    printf("%3s  %-*s %-*s %-16s %10s  %-9s %-8s %7s  %-16s %s\n", "#", nw, "layer", tw, "type",
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
        else if (lp->pool_of >= 0) /* where the conv runs Winograd */
            snprintf(k, sizeof k, "in %s (Winograd)", g->layers[lp->pool_of].name);
        if (lp->fused_pool >= 0) {
            size_t used = strlen(k);
            snprintf(k + used, sizeof k - used, "%s+ %s", used ? " " : "",
                     g->layers[lp->fused_pool].name);
        }
        if (lp->stem_into >= 0) { /* where the reader runs Winograd F(4x4) */
            size_t used = strlen(k);
            snprintf(k + used, sizeof k - used, "%sin %s (Winograd)", used ? ", " : "",
                     g->layers[lp->stem_into].name);
        }
        char line[512];
        int len = snprintf(line, sizeof line, "%3d  %-*s %-*s %-16s %10ld  %-9s %-8s %7g  %-16s %s",
                           i, nw, l->name, tw, layer_type_name(l->type), s, layer_param_count(l), state,
                           v->backward[i] ? "yes" : "no", (double)l->lr_mult, w, k);
        while (len > 0 && len < (int)sizeof line && line[len - 1] == ' ') line[--len] = '\0';
        puts(line);
    }
    int nf = 0, nb = 0, np = 0, ns = 0;
    for (int i = 0; i < g->nlayers; i++) {
        nf += v->plan.layers[i].fused_act >= 0;
        nb += v->plan.layers[i].bn_fold >= 0;
        np += v->plan.layers[i].fused_pool >= 0;
        ns += v->plan.layers[i].stem_into >= 0;
    }
    printf("\nfused: %d activation%s run%s as the epilogue of the layer before", nf,
           nf == 1 ? "" : "s", nf == 1 ? "s" : "");
    if (nb)
        printf("; %d eval-mode batchnorm%s folded into the convolution before (no backward there)",
               nb, nb == 1 ? "" : "s");
    if (np)
        printf("; %d 2x2 max-pool%s written by the convolution before where it runs Winograd "
               "(CPUs)", np, np == 1 ? "" : "s");
    if (ns)
        printf("; %d convolution%s of few channels computed inside the next one's forward where "
               "that runs Winograd F(4x4) (CPUs)", ns, ns == 1 ? "" : "s");
    printf(" (kernel column; GRAFT_FUSE=0 turns fusion off)\n");
    printf("\nparameters: %ld total, %ld trainable\n", graph_param_count(g, false),
           graph_param_count(g, true));
    printf("feature cache: %s: %s\n", v->cache ? "used" : "not used", v->cache_reason);
    if (v->cache) {
        char where[640];
        plan_view_cache_location(v, where, sizeof where);
        printf("feature cache lives in: %s\n", where);
    }
    plan_extend_table(v);
    adapt_table(r);
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
    plan_view v;
    graft_error e = {0};
    if (plan_view_build(r, &v, &e)) {
        recipe_free(r);
        return cli_fail(&e);
    }
    if (json) {
        json_t *o = plan_view_json(&v);
        char *text = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        if (text) puts(text);
        free(text);
        json_decref(o);
    } else {
        plan_table(&v);
    }
    plan_view_free(&v);
    recipe_free(r);
    return 0;
}
