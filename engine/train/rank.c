/* rank.c — `graft rank`: each candidate checkpoint's frozen prefix runs once over the recipe's
 * labelled training split (the feature cache's forward), its own source classifier runs over the
 * same images when it has one, and the estimators score the result without any training. A
 * candidate that cannot be scored is a row with its reason, never a failed call. */
#define _POSIX_C_SOURCE 200809L
#include "rank.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *const rank_estimator_names[RANK_NEST] = {"logme", "hscore", "nce", "leep"};

static void row_error(rank_row *row, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void row_error(rank_row *row, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(row->error, sizeof row->error, fmt, ap);
    va_end(ap);
    row->ok = false;
}

static void note(const rank_options *o, int i, const char *what)
{
    if (o->progress) o->progress(o->user, i, what);
}

/* Load the recipe file with the caller's --set values and a few of ours; on failure the first
 * diagnostic (with its position) goes into msg. */
static graft_status load_with(const char *file, const rank_options *o, const char *const *extra,
                              int nextra, graft_recipe **out, char *msg, size_t n)
{
    const char **sets = malloc((size_t)(o->nsets + nextra + 1) * sizeof *sets);
    if (!sets) {
        snprintf(msg, n, "out of memory");
        return GRAFT_STATUS_NOMEM;
    }
    for (int i = 0; i < o->nsets; i++)
        sets[i] = o->sets[i];
    for (int i = 0; i < nextra; i++)
        sets[o->nsets + i] = extra[i];
    graft_diags d = {0};
    graft_status s = recipe_load(file, sets, o->nsets + nextra, out, &d);
    free(sets);
    if (s) {
        graft_diags_sort(&d);
        if (d.count > 0) {
            const graft_diag *g = &d.items[0];
            if (g->line > 0)
                snprintf(msg, n, "%s:%d:%d: %s%s", g->file, g->line, g->col, g->message,
                         d.count > 1 ? " (and more)" : "");
            else
                snprintf(msg, n, "%s", g->message);
        } else {
            snprintf(msg, n, "cannot load %s", file);
        }
    }
    graft_diags_free(&d);
    return s;
}

/* The layer whose input the features are: o->layer, else transfer.head.cut, else the last. The
 * features must be the one tensor that crosses the cut (no later layer reads an earlier one). */
static int feature_cut(const graft_recipe *r, const char *layer, char *msg, size_t n)
{
    const graph *g = &r->graph;
    const char *name = layer ? layer : r->transfer.head_cut;
    int cut = name ? graph_find_layer(g, name) : g->nlayers - 1;
    if (cut < 0) {
        snprintf(msg, n, "%s names no layer of the model", name);
        return -1;
    }
    if (cut == 0) {
        snprintf(msg, n, "%s is the first layer: there is no prefix to score", g->layers[0].name);
        return -1;
    }
    for (int j = cut; j < g->nlayers; j++)
        for (int k = 0; k < g->layers[j].ninputs; k++) {
            int from = g->layers[j].inputs[k];
            if (from < cut - 1) {
                snprintf(msg, n,
                         "layer %s reads %s, before the cut at %s: the features at %s are not one "
                         "tensor (choose another --layer)",
                         g->layers[j].name, from < 0 ? "the input" : g->layers[from].name,
                         g->layers[cut].name, g->layers[cut].name);
                return -1;
            }
        }
    return cut;
}

/* Every tensor of layers [first, last) must come from the checkpoint; else the first missing. */
static const char *missing_tensor(const graph *g, int first, int last, int *count)
{
    const char *name = NULL;
    *count = 0;
    for (int i = first; i < last; i++)
        for (int j = 0; j < g->layers[i].nparams; j++)
            if (!g->layers[i].params[j].in_checkpoint) {
                if (!name) name = g->layers[i].params[j].name;
                (*count)++;
            }
    return name;
}

static graft_status write_npy(const char *dir, const char *name, int i, const float *data,
                              long rows, long cols, graft_error *e)
{
    char path[2300];
    if (i >= 0)
        snprintf(path, sizeof path, "%s/%s_%d.npy", dir, name, i);
    else
        snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    int64_t shp[2] = {rows, cols};
    return npy_write_f32(path, data, 2, shp, e);
}

/* The candidate's own model (the recipe's model without transfer.head, its last dense layer as
 * wide as the candidate's) over the images: logits n × *ks, or a reason in row->no_head. */
static graft_status source_logits(const char *file, const rank_options *o, const char *cand,
                                  graft_context *ctx, const dataset *d, rank_row *row,
                                  float **logits, int *ks, graft_error *e)
{
    *logits = NULL;
    *ks = 0;
    graft_recipe *r0 = NULL, *r1 = NULL;
    param_store st = {0};
    pipeline *p = NULL;
    st_file *f = NULL;
    char msg[1024];
    graft_status s = GRAFT_OK;
    const char *bare[] = {"transfer.from=~", "transfer.head=~", "transfer.freeze=none"};
    if (load_with(file, o, bare, 3, &r0, msg, sizeof msg)) {
        snprintf(row->no_head, sizeof row->no_head, "the recipe's model without its head: %s", msg);
        goto done;
    }
    const graph *g0 = &r0->graph;
    const layer *last = &g0->layers[g0->nlayers - 1];
    if (last->type != GRAFT_LAYER_DENSE) {
        snprintf(row->no_head, sizeof row->no_head,
                 "the model's last layer %s is a %s, not a dense classifier", last->name,
                 layer_type_name(last->type));
        goto done;
    }
    graft_error fe = {0};
    if (st_open(cand, &f, &fe)) {
        snprintf(row->no_head, sizeof row->no_head, "%s", fe.message);
        goto done;
    }
    char wname[300];
    snprintf(wname, sizeof wname, "%s.weight", last->name);
    const st_tensor *t = st_find(f, wname);
    if (!t || t->rank != 2 || t->shape[1] != shape_size(last->in) || t->shape[0] < 1 ||
        t->shape[0] > 100000) {
        snprintf(row->no_head, sizeof row->no_head,
                 t ? "its %s does not fit the model's %s (input %ld)"
                   : "it has no %s: no source classifier to run",
                 wname, last->name, shape_size(last->in));
        goto done;
    }
    int k = (int)t->shape[0];
    char from[2200], head[600];
    snprintf(from, sizeof from, "transfer.from=%s", cand);
    snprintf(head, sizeof head,
             "transfer.head={cut: %s, layers: [{name: %s, type: dense, units: %d}]}", last->name,
             last->name, k);
    const char *sets[] = {from, head, "transfer.freeze=none"};
    if (load_with(file, o, sets, 3, &r1, msg, sizeof msg)) {
        snprintf(row->no_head, sizeof row->no_head, "its own model does not load: %s", msg);
        goto done;
    }
    int missing;
    const char *m = missing_tensor(&r1->graph, 0, r1->graph.nlayers - 1, &missing);
    if (m) {
        snprintf(row->no_head, sizeof row->no_head,
                 "it has no %s (%d tensors missing): not this model's classifier", m, missing);
        goto done;
    }
    if ((s = store_init(&st, &r1->graph, r1->train.seed, e))) goto done;
    int loaded = 0;
    if ((s = store_load_all(&st, &r1->graph, cand, &loaded, e))) goto done;
    for (int i = 0; i < st.n; i++)
        if (!st.items[i].loaded) {
            snprintf(row->no_head, sizeof row->no_head, "it has no %s", st.items[i].name);
            goto done;
        }
    int B = r1->train.batch_size > 0 ? r1->train.batch_size : 64;
    pipeline_options po = {.max_batch = B};
    if ((s = pipeline_create(ctx, &r1->graph, &po, &p, e))) goto done;
    if ((s = pipeline_upload(p, &st, e))) goto done;
    float *out = malloc((size_t)d->n * (size_t)k * sizeof *out);
    if (!out) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    for (long i = 0; i < d->n && !s; i += B) {
        int n = (int)(d->n - i < B ? d->n - i : B);
        s = pipeline_eval(p, d->x + i * d->sample, NULL, n, out + i * k, NULL, e);
    }
    if (s) {
        free(out);
        goto done;
    }
    *logits = out;
    *ks = k;
done:
    if (f) st_close(f);
    pipeline_free(p);
    store_free(&st);
    recipe_free(r0);
    recipe_free(r1);
    return s;
}

/* One candidate: its features and scores into row. A returned failure is a device or memory
 * problem the caller turns into the row's error too. */
static graft_status rank_one(const char *file, const rank_options *o, int ci, const char *cand,
                             graft_context *ctx, const dataset *d, rank_row *row, graft_error *e)
{
    graft_recipe *r = NULL;
    param_store st = {0};
    float *feat = NULL, *logits = NULL;
    double *fd = NULL, *pd = NULL;
    int *z = NULL;
    graft_status s = GRAFT_OK;
    char msg[1024], from[2200];
    snprintf(from, sizeof from, "transfer.from=%s", cand);
    const char *sets[] = {from};
    {
        /* the file itself first, so its problems read as such rather than as a --set's */
        st_file *f = NULL;
        graft_error fe = {0};
        if (st_open(cand, &f, &fe)) {
            row_error(row, "%s", fe.message);
            goto done;
        }
        st_close(f);
    }
    if (load_with(file, o, sets, 1, &r, msg, sizeof msg)) {
        row_error(row, "%s", msg);
        goto done;
    }
    int cut = feature_cut(r, o->layer, msg, sizeof msg);
    if (cut < 0) {
        row_error(row, "%s", msg);
        goto done;
    }
    snprintf(row->layer, sizeof row->layer, "%s", r->graph.layers[cut].name);
    int missing;
    const char *m = missing_tensor(&r->graph, 0, cut, &missing);
    if (m) {
        row_error(row,
                  "%s has no %s (%d of the prefix's tensors missing): its weights do not fit this "
                  "recipe's model",
                  cand, m, missing);
        goto done;
    }
    if ((s = store_init(&st, &r->graph, r->train.seed, e))) goto done;
    int loaded = 0;
    if ((s = store_load(&st, &r->graph, cand, false, &loaded, e))) goto done;
    int B = r->train.batch_size > 0 ? r->train.batch_size : 64;
    note(o, ci, "features");
    double t0 = now_seconds();
    long fs;
    if ((s = train_prefix_features(ctx, &r->graph, cut, &st, d->x, d->n, d->sample, B, &feat, &fs,
                                   e)))
        goto done;
    row->feature_seconds = now_seconds() - t0;
    row->dim = (int)fs;
    row->n = d->n;
    row->classes = d->nclasses;
    fd = malloc((size_t)d->n * (size_t)fs * sizeof *fd);
    if (!fd) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    for (long i = 0; i < d->n * fs; i++) {
        fd[i] = feat[i];
        if (!isfinite(fd[i])) {
            row_error(row, "the features at %s are not finite (sample %ld)", row->layer, i / fs);
            goto done;
        }
    }
    int k = d->nclasses;
    note(o, ci, "logme");
    t0 = now_seconds();
    if ((s = est_logme(fd, d->n, (int)fs, d->y, k, &row->score[RANK_LOGME], e))) goto done;
    row->seconds[RANK_LOGME] = now_seconds() - t0;
    row->have[RANK_LOGME] = true;
    note(o, ci, "hscore");
    t0 = now_seconds();
    if ((s = est_hscore(fd, d->n, (int)fs, d->y, k, &row->score[RANK_HSCORE], e))) goto done;
    row->seconds[RANK_HSCORE] = now_seconds() - t0;
    row->have[RANK_HSCORE] = true;
    note(o, ci, "source head");
    t0 = now_seconds();
    int ks = 0;
    if ((s = source_logits(file, o, cand, ctx, d, row, &logits, &ks, e))) goto done;
    row->head_seconds = now_seconds() - t0;
    if (logits) {
        row->source_classes = ks;
        pd = malloc((size_t)d->n * (size_t)ks * sizeof *pd);
        z = malloc((size_t)d->n * sizeof *z);
        if (!pd || !z) {
            s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
            goto done;
        }
        t0 = now_seconds();
        est_softmax_rows(logits, d->n, ks, NULL, z);
        if ((s = est_nce(z, ks, d->y, k, d->n, &row->score[RANK_NCE], e))) goto done;
        row->seconds[RANK_NCE] = now_seconds() - t0;
        row->have[RANK_NCE] = true;
        t0 = now_seconds();
        est_softmax_rows(logits, d->n, ks, pd, NULL);
        if ((s = est_leep(pd, ks, d->y, k, d->n, &row->score[RANK_LEEP], e))) goto done;
        row->seconds[RANK_LEEP] = now_seconds() - t0;
        row->have[RANK_LEEP] = true;
    }
    if (o->features_out) {
        if ((s = write_npy(o->features_out, "features", ci, feat, d->n, fs, e))) goto done;
        if (logits && (s = write_npy(o->features_out, "source_logits", ci, logits, d->n, ks, e)))
            goto done;
    }
    row->ok = true;
done:
    recipe_free(r);
    store_free(&st);
    free(feat);
    free(logits);
    free(fd);
    free(pd);
    free(z);
    return s;
}

graft_status graft_rank(const char *recipe_file, const char *const *cands, int ncand,
                        const rank_options *o, rank_row *rows, graft_error *e)
{
    graft_recipe *base = NULL;
    graft_context *ctx = NULL;
    dataset tr = {0};
    graft_status s = GRAFT_OK;
    char msg[1024];
    for (int i = 0; i < ncand; i++) {
        memset(&rows[i], 0, sizeof rows[i]);
        rows[i].from = cands[i];
    }
    /* the data and the device come from the recipe as written, minus its checkpoint (which may
     * not exist: the candidates stand in for it) */
    const char *bare[] = {"transfer.from=~"};
    if ((s = load_with(recipe_file, o, bare, 1, &base, msg, sizeof msg))) {
        err_set(e, s, "%s", msg);
        goto done;
    }
    if ((s = data_load(&base->data, base->graph.input, &tr, NULL, NULL, e))) goto done;
    if (o->max_images > 0 && tr.n > o->max_images) tr.n = o->max_images;
    if (tr.n < 2) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA, "the training split has %ld images: nothing to rank",
                    tr.n);
        goto done;
    }
    graft_context_options co = {.device = o->device ? o->device : base->device};
    if ((s = graft_context_create(&co, &ctx, e))) goto done;
    if (o->features_out) {
        if ((s = fs_mkdir_p(o->features_out, e))) goto done;
        float *lab = malloc((size_t)tr.n * sizeof *lab);
        if (!lab) {
            s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
            goto done;
        }
        for (long i = 0; i < tr.n; i++)
            lab[i] = (float)tr.y[i];
        s = write_npy(o->features_out, "labels", -1, lab, tr.n, 1, e);
        free(lab);
        if (s) goto done;
    }
    for (int i = 0; i < ncand; i++) {
        graft_error ce = {0};
        graft_status cs = rank_one(recipe_file, o, i, cands[i], ctx, &tr, &rows[i], &ce);
        if (cs) {
            row_error(&rows[i], "%s", ce.message);
            /* a lost device or no memory will not get better for the next candidate */
            if (cs == GRAFT_STATUS_OPENCL || cs == GRAFT_STATUS_NOMEM) {
                *e = ce;
                s = cs;
                goto done;
            }
        }
    }
done:
    dataset_free(&tr);
    graft_context_free(ctx);
    recipe_free(base);
    return s;
}

/* ---- the public door (graft.h) ---- */

graft_status graft_run_rank(const char *recipe_file, const char *const *sets, int nsets,
                            const char *const *candidates, int n, const char *layer,
                            const char *device, graft_rank_result *out, graft_error *err)
{
    rank_row *rows = calloc((size_t)(n > 0 ? n : 1), sizeof *rows);
    if (!rows) return err_set(err, GRAFT_STATUS_NOMEM, "out of memory");
    rank_options o = {.sets = sets, .nsets = nsets, .layer = layer, .device = device};
    graft_status s = graft_rank(recipe_file, candidates, n, &o, rows, err);
    for (int i = 0; i < n && !s; i++) {
        graft_rank_result *r = &out[i];
        const rank_row *w = &rows[i];
        memset(r, 0, sizeof *r);
        r->ok = w->ok;
        snprintf(r->error, sizeof r->error, "%.1000s", w->error);
        snprintf(r->skipped, sizeof r->skipped, "%.500s", w->no_head);
        snprintf(r->layer, sizeof r->layer, "%s", w->layer);
        r->dim = w->dim;
        r->images = w->n;
        r->seconds = w->feature_seconds + w->head_seconds;
        for (int k = 0; k < GRAFT_EST_COUNT && k < RANK_NEST; k++) {
            r->has[k] = w->have[k];
            r->score[k] = w->score[k];
            r->seconds += w->seconds[k];
        }
    }
    free(rows);
    return s;
}

graft_status graft_logme(const double *f, long n, int d, const int *y, int k, double *score,
                         graft_error *err)
{
    return est_logme(f, n, d, y, k, score, err);
}

graft_status graft_hscore(const double *f, long n, int d, const int *y, int k, double *score,
                          graft_error *err)
{
    return est_hscore(f, n, d, y, k, score, err);
}

graft_status graft_nce(const int *z, int ks, const int *y, int k, long n, double *score,
                       graft_error *err)
{
    return est_nce(z, ks, y, k, n, score, err);
}

graft_status graft_leep(const double *p, int ks, const int *y, int k, long n, double *score,
                        graft_error *err)
{
    return est_leep(p, ks, y, k, n, score, err);
}
