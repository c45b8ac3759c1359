/* adabn.c — AdaBN (adapt.method: adabn): every batchnorm layer's running statistics re-estimated on
 * the unlabelled target data, no labels and no gradients; after training, or alone on trained
 * weights (`graft adapt`). The estimate is PyTorch's momentum=None: the plain average over the
 * target batches of each batch's mean and unbiased variance, with every batchnorm normalising by
 * its batch's statistics as the data flows through (the model in train mode, forward only). */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <stdlib.h>
#include <string.h>

graft_status train_adabn(graft_context *ctx, const graft_recipe *r, param_store *store,
                         const dataset *target, long *batches, graft_error *e)
{
    const graph *g0 = &r->graph;
    graft_status s = GRAFT_OK;
    if (batches) *batches = 0;
    if (target->n < 2)
        return err_set(e, GRAFT_STATUS_BAD_DATA, "AdaBN needs 2 or more target samples, found %ld",
                       target->n);
    /* a copy of the graph whose batchnorm layers keep only the last batch's statistics (momentum
     * 1): the host averages them */
    graph g = *g0;
    g.layers = malloc((size_t)g0->nlayers * sizeof *g.layers);
    double *acc = NULL;
    float *tmp = NULL;
    long total = 0, maxc = 0;
    if (!g.layers) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    memcpy(g.layers, g0->layers, (size_t)g0->nlayers * sizeof *g.layers);
    for (int i = 0; i < g.nlayers; i++)
        if (g.layers[i].type == GRAFT_LAYER_BATCHNORM) {
            g.layers[i].momentum = 1.0f;
            g.layers[i].aligned = true; /* never folded into its convolution: it must run */
            total += 2L * g.layers[i].out.d[0];
            if (g.layers[i].out.d[0] > maxc) maxc = g.layers[i].out.d[0];
        }
    if (!total) {
        free(g.layers);
        return GRAFT_OK; /* nothing to adapt (the recipe stage reports this for adapt: adabn) */
    }
    acc = calloc((size_t)total, sizeof *acc);
    tmp = malloc((size_t)maxc * sizeof *tmp);
    pipeline *p = NULL;
    if (!acc || !tmp) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    int B = r->train.batch_size;
    pipeline_options po = {.max_batch = B, .bn_restat = true};
    if ((s = pipeline_create(ctx, &g, &po, &p, e))) goto done;
    if ((s = pipeline_upload(p, store, e))) goto done;
    long nb = 0;
    for (long i = 0; i < target->n; i += B) {
        int n = (int)(target->n - i < B ? target->n - i : B);
        if (n < 2) break; /* a batch of one has no variance (PyTorch refuses it in train mode) */
        if ((s = pipeline_bn_restat(p, target->x + i * target->sample, n, e))) goto done;
        long at = 0;
        for (int l = 0; l < g.nlayers; l++) {
            if (g.layers[l].type != GRAFT_LAYER_BATCHNORM) continue;
            int c = g.layers[l].out.d[0];
            const char *which[2] = {".running_mean", ".running_var"};
            for (int k = 0; k < 2; k++) {
                if ((s = pipeline_read_tensor(p, l, which[k], tmp, e))) goto done;
                for (int j = 0; j < c; j++) acc[at + j] += tmp[j];
                at += c;
            }
        }
        nb++;
    }
    long at = 0;
    for (int l = 0; l < g.nlayers; l++) {
        const layer *ly = &g.layers[l];
        if (ly->type != GRAFT_LAYER_BATCHNORM) continue;
        int c = ly->out.d[0];
        const char *which[2] = {".running_mean", ".running_var"};
        for (int k = 0; k < 2; k++) {
            char name[1100];
            snprintf(name, sizeof name, "%s%s", ly->name, which[k]);
            param_entry *pe = store_find(store, name);
            if (!pe || pe->count != c) {
                s = err_set(e, GRAFT_STATUS_INTERNAL, "no host tensor for %s", name);
                goto done;
            }
            for (int j = 0; j < c; j++) pe->data[j] = (float)(acc[at + j] / (double)nb);
            at += c;
        }
    }
    if (batches) *batches = nb;
done:
    pipeline_free(p);
    free(acc);
    free(tmp);
    free(g.layers);
    return s;
}

/* adapt.target as a dataset: the recipe's normalisation, every sample (no classes filter, shots
 * or split: its labels are never read). */
graft_status train_load_target(const graft_recipe *r, dataset *out, graft_error *e)
{
    data_spec t = r->data;
    t.train = r->adapt.target;
    memset(&t.val, 0, sizeof t.val);
    memset(&t.test, 0, sizeof t.test);
    t.nclasses = 0;
    t.classes = NULL;
    t.shots = 0;
    t.val_split = 0;
    graft_status s = data_load(&t, r->graph.input, out, NULL, NULL, e);
    if (s && !e->line) {
        /* folder problems come without a position: give them the section's */
        char msg[sizeof e->message];
        snprintf(msg, sizeof msg, "%s", e->message);
        err_at(e, s, r->adapt.target.mark, "adapt.target: %s", msg);
    }
    return s;
}

/* adapt.source_test: labelled, with data.classes applied as to the other splits. */
graft_status train_load_source_test(const graft_recipe *r, dataset *out, graft_error *e)
{
    data_spec t = r->data;
    t.train = r->adapt.source_test;
    memset(&t.val, 0, sizeof t.val);
    memset(&t.test, 0, sizeof t.test);
    t.shots = 0;
    t.val_split = 0;
    return data_load(&t, r->graph.input, out, NULL, NULL, e);
}

graft_status graft_adapt(graft_recipe *r, const char *weights, const char *out_path,
                         const char *device, adapt_result *res, graft_error *e)
{
    memset(res, 0, sizeof *res);
    dataset target = {0};
    param_store store = {0};
    graft_context *ctx = NULL;
    graft_status s;
    if (!r->adapt.present || !r->adapt.target.present)
        return err_set(e, GRAFT_STATUS_BAD_RECIPE,
                       "%s has no adapt section with a target: nothing to adapt to", r->file);
    if ((s = train_load_target(r, &target, e))) goto done;
    graft_context_options co = {.device = device ? device : r->device};
    if ((s = graft_context_create(&co, &ctx, e))) goto done;
    if ((s = store_init(&store, &r->graph, r->train.seed, e))) goto done;
    int loaded = 0;
    if ((s = store_load_all(&store, &r->graph, weights, &loaded, e))) goto done;
    if ((s = train_adabn(ctx, r, &store, &target, &res->batches, e))) goto done;
    res->samples = target.n;
    const char *meta[] = {"format", "graft", "adapted", "adabn"};
    s = store_save(&store, out_path, meta, 2, e);
done:
    store_free(&store);
    dataset_free(&target);
    graft_context_free(ctx);
    return s;
}
