/* evaluate.c — `graft eval` and `graft predict`: weights into an evaluation pipeline, then the test
 * split (loss, accuracy, confusion) or an .npy input (logits). */
#include "train.h"
#include "folder.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A store with every tensor of the graph, filled from a checkpoint (head layers included). */
static graft_status load_weights(graft_recipe *r, const char *weights, param_store *s,
                                 graft_error *e)
{
    graft_status st = store_init(s, &r->graph, r->train.seed, e);
    if (st) return st;
    int loaded = 0;
    st = store_load_all(s, &r->graph, weights, &loaded, e);
    if (st) return st;
    int want = 0;
    for (int i = 0; i < s->n; i++) want += s->items[i].loaded ? 0 : 1;
    if (want > 0) {
        for (int i = 0; i < s->n; i++)
            if (!s->items[i].loaded)
                return err_set(e, GRAFT_STATUS_BAD_DATA,
                               "%s has no tensor %s (and %d more are missing): these weights do "
                               "not belong to this recipe's model",
                               weights, s->items[i].name, want - 1);
    }
    return GRAFT_OK;
}

static graft_status eval_pipeline(graft_recipe *r, const char *weights, const char *device,
                                  graft_context **ctx, pipeline **p, param_store *s, graft_error *e)
{
    graft_context_options co = {.device = device ? device : r->device};
    graft_status st = load_weights(r, weights, s, e);
    if (st) return st;
    if ((st = graft_context_create(&co, ctx, e))) return st;
    pipeline_options po = {.max_batch = r->train.batch_size > 0 ? r->train.batch_size : 64};
    if ((st = pipeline_create(*ctx, &r->graph, &po, p, e))) return st;
    return pipeline_upload(*p, s, e);
}

graft_status eval_batches(pipeline *p, pipeline *prefix, const float *x, long sample,
                          cl_mem table, const int *y, long n, int B, long *confusion,
                          graft_error *e)
{
    if (prefix && !table) return err_set(e, GRAFT_STATUS_INTERNAL, "eval_batches: no table");
    long k = pipeline_output_size(p);
    long *rows = table ? malloc((size_t)B * sizeof *rows) : NULL;
    /* the confusion matrix needs the logits: read back without waiting into a chunk of 8
     * batches, waited for and tallied once it is full (one wait per 8 batches instead of one
     * per batch) */
    long chunk = 8L * B;
    if (chunk > n) chunk = n > 0 ? n : 1;
    float *logits = confusion ? malloc((size_t)chunk * (size_t)k * sizeof *logits) : NULL;
    if ((table && !rows) || (confusion && !logits)) {
        free(rows);
        free(logits);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    }
    graft_status s = GRAFT_OK;
    long c0 = 0; /* the first sample of the chunk */
    for (long i = 0; i < n && !s; i += B) {
        int m = (int)(n - i < B ? n - i : B);
        float *dst = logits ? logits + (i - c0) * k : NULL;
        if (table) {
            /* (in order on the queue: the head reads the rows before the next batch's land) */
            if (prefix) s = pipeline_forward_features_to(prefix, x + i * sample, m, table, 0, e);
            for (int j = 0; j < m; j++) rows[j] = prefix ? j : i + j;
            if (!s) s = pipeline_eval_rows_async(p, table, rows, y + i, m, dst, e);
        } else {
            s = pipeline_eval_async(p, x + i * sample, y + i, m, dst, e);
        }
        const long end = i + m;
        if (!s && logits && (end - c0 + B > chunk || end == n)) {
            if (!(s = pipeline_logits_wait(p, e))) {
                for (long q = c0; q < end; q++) {
                    const float *row = logits + (q - c0) * k;
                    long best = 0;
                    for (long c = 1; c < k; c++)
                        if (row[c] > row[best]) best = c;
                    int truth = y[q];
                    if (truth >= 0 && truth < k) confusion[truth * k + best]++;
                }
                c0 = end;
            }
        }
    }
    if (s && logits) {
        graft_error ig = {0};
        pipeline_logits_wait(p, &ig); /* nothing lands in freed memory */
    }
    free(rows);
    free(logits);
    return s;
}

graft_status graft_evaluate(graft_recipe *r, const char *weights, const char *device,
                            eval_result *out, graft_error *e)
{
    memset(out, 0, sizeof *out);
    dataset tr = {0}, va = {0}, te = {0};
    param_store s = {0};
    graft_context *ctx = NULL;
    pipeline *p = NULL;
    graft_status st = data_load(&r->data, r->graph.input, &tr, &va, &te, e);
    if (st) goto done;
    if (te.n == 0) {
        st = err_set(e, GRAFT_STATUS_BAD_RECIPE, "the recipe has no test split (data.test)");
        goto done;
    }
    if ((st = eval_pipeline(r, weights, device, &ctx, &p, &s, e))) goto done;
    int k = (int)pipeline_output_size(p), B = r->train.batch_size > 0 ? r->train.batch_size : 64;
    out->k = k;
    out->confusion = calloc((size_t)k * (size_t)k, sizeof(long));
    if (!out->confusion) {
        st = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    if ((st = eval_batches(p, NULL, te.x, te.sample, NULL, te.y, te.n, B, out->confusion, e)))
        goto done;
    pipeline_stats ps;
    if ((st = pipeline_stats_read(p, true, &ps, e))) goto done;
    if (ps.samples != te.n) {
        st = err_set(e, GRAFT_STATUS_INTERNAL, "evaluation read back %ld of %ld samples",
                     ps.samples, te.n);
        goto done;
    }
    out->n = te.n;
    out->loss = ps.loss_sum / (double)te.n;
    out->accuracy = (double)ps.correct / (double)te.n;
done:
    pipeline_free(p);
    graft_context_free(ctx);
    store_free(&s);
    dataset_free(&tr);
    dataset_free(&va);
    dataset_free(&te);
    if (st) eval_result_free(out);
    return st;
}

json_t *eval_result_json(const eval_result *res)
{
    json_t *o = json_object(), *pc = json_array(), *cm = json_array();
    json_object_set_new(o, "loss", json_real(res->loss));
    json_object_set_new(o, "accuracy", json_real(res->accuracy));
    json_object_set_new(o, "n", json_integer(res->n));
    for (int i = 0; i < res->k; i++) {
        long row = 0;
        json_t *r2 = json_array();
        for (int j = 0; j < res->k; j++) {
            row += res->confusion[i * res->k + j];
            json_array_append_new(r2, json_integer(res->confusion[i * res->k + j]));
        }
        json_array_append_new(pc, row ? json_real((double)res->confusion[i * res->k + i] / row)
                                      : json_null());
        json_array_append_new(cm, r2);
    }
    json_object_set_new(o, "per_class_accuracy", pc);
    json_object_set_new(o, "confusion", cm);
    return o;
}

void eval_result_free(eval_result *r)
{
    free(r->confusion);
    r->confusion = NULL;
}

/* Rows of the model input from raw values: float32/float64 are taken as already preprocessed;
 * uint8 pixels are scaled to [0, 1] and normalised with the recipe's data.normalize, as training
 * data is. */
static graft_status rows_from(const graft_recipe *r, const void *data, char kind, int itemsize,
                              long n, float *x, graft_error *e)
{
    long sample = shape_size(r->graph.input);
    if (kind == 'f' && itemsize == 4) {
        memcpy(x, data, (size_t)n * (size_t)sample * sizeof(float));
    } else if (kind == 'f' && itemsize == 8) {
        for (long i = 0; i < n * sample; i++) x[i] = (float)((const double *)data)[i];
    } else if (kind == 'u' && itemsize == 1) {
        int c = r->graph.input.rank == 3 ? r->graph.input.d[0] : 1;
        long hw = sample / c;
        for (long i = 0; i < n * sample; i++) {
            float v = ((const unsigned char *)data)[i] / 255.f;
            int ch = (int)((i % sample) / hw);
            if (r->data.nnorm) v = (v - r->data.norm_mean[ch % r->data.nnorm]) /
                                   r->data.norm_std[ch % r->data.nnorm];
            x[i] = v;
        }
    } else {
        return err_set(e, GRAFT_STATUS_BAD_DATA, "expected float32, float64 or uint8 data");
    }
    return GRAFT_OK;
}

graft_status graft_predict_rows(graft_recipe *r, const char *weights, const char *device,
                                const void *data, char kind, int itemsize, long n, float *logits,
                                graft_error *e)
{
    param_store s = {0};
    graft_context *ctx = NULL;
    pipeline *p = NULL;
    long sample = shape_size(r->graph.input);
    float *x = malloc((size_t)(n > 0 ? n : 1) * (size_t)sample * sizeof(float));
    graft_status st = x ? GRAFT_OK : err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    if (!st) st = rows_from(r, data, kind, itemsize, n, x, e);
    if (!st) st = eval_pipeline(r, weights, device, &ctx, &p, &s, e);
    if (st) goto done;
    long k = pipeline_output_size(p);
    int B = r->train.batch_size > 0 ? r->train.batch_size : 64;
    for (long i = 0; i < n; i += B) {
        int m = (int)(n - i < B ? n - i : B);
        if ((st = pipeline_eval(p, x + i * sample, NULL, m, logits + i * k, NULL, e))) goto done;
    }
done:
    free(x);
    pipeline_free(p);
    graft_context_free(ctx);
    store_free(&s);
    return st;
}

graft_status graft_predict(graft_recipe *r, const char *weights, const char *input,
                           const char *output, const char *device, long *rows, graft_error *e)
{
    npy_array a = {0};
    float *y = NULL;
    graft_status st = npy_read(input, &a, e);
    if (st) return st;
    long sample = shape_size(r->graph.input);
    long n = a.rank > 0 ? (long)a.shape[0] : 0;
    long per = 1;
    for (int d = 1; d < a.rank; d++) per *= (long)a.shape[d];
    if (a.rank < 2 || per != sample || n < 1) {
        char want[64];
        shape_format(r->graph.input, want, sizeof want);
        st = err_set(e, GRAFT_STATUS_BAD_DATA,
                     "%s: expected N rows of the model input %s (%ld values each), found an array "
                     "of rank %d with %ld values per row",
                     input, want, sample, a.rank, per);
        goto done;
    }
    if (!((a.kind == 'f' && (a.itemsize == 4 || a.itemsize == 8)) ||
          (a.kind == 'u' && a.itemsize == 1))) {
        st = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: expected float32, float64 or uint8 data",
                     input);
        goto done;
    }
    long k = shape_size(r->graph.layers[r->graph.nlayers - 1].out);
    y = malloc((size_t)n * (size_t)k * sizeof(float));
    if (!y) {
        st = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    if ((st = graft_predict_rows(r, weights, device, a.data, a.kind, a.itemsize, n, y, e)))
        goto done;
    int64_t shp[2] = {n, k};
    st = npy_write_f32(output, y, 2, shp, e);
    if (!st && rows) *rows = n;
done:
    free(y);
    npy_free(&a);
    return st;
}

graft_status graft_predict_images(graft_recipe *r, const char *weights, const char *const *files,
                                  int nfiles, const char *device, float **probs, int *k,
                                  graft_error *e)
{
    *probs = NULL;
    *k = 0;
    const shape in = r->graph.input;
    if (in.rank != 3)
        return err_set(e, GRAFT_STATUS_BAD_RECIPE,
                       "--image needs a model whose input is an image [C, H, W]");
    int c = in.d[0], h = in.d[1], w = in.d[2];
    long sample = shape_size(in);
    data_spec scratch;
    const data_spec *ds = data_spec_resolve(&r->data, c, &scratch);
    float *x = malloc((size_t)nfiles * (size_t)sample * sizeof(float));
    uint8_t *pix = malloc((size_t)sample);
    param_store s = {0};
    graft_context *ctx = NULL;
    pipeline *p = NULL;
    float *y = NULL;
    graft_status st = GRAFT_OK;
    if (!x || !pix) {
        st = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    /* the evaluation transform of the folder source, then the recipe's normalisation */
    for (int i = 0; i < nfiles; i++) {
        if ((st = folder_prepare(files[i], c, h, w, pix, e))) goto done;
        for (long j = 0; j < sample; j++) {
            float v = pix[j] / 255.f;
            int ch = (int)(j / ((long)h * w));
            if (ds->nnorm) v = (v - ds->norm_mean[ch]) / ds->norm_std[ch];
            x[(long)i * sample + j] = v;
        }
    }
    if ((st = eval_pipeline(r, weights, device, &ctx, &p, &s, e))) goto done;
    *k = (int)pipeline_output_size(p);
    int B = r->train.batch_size > 0 ? r->train.batch_size : 64;
    y = malloc((size_t)nfiles * (size_t)*k * sizeof(float));
    if (!y) {
        st = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < nfiles; i += B) {
        int m = nfiles - i < B ? nfiles - i : B;
        if ((st = pipeline_eval(p, x + (long)i * sample, NULL, m, y + (long)i * *k, NULL, e)))
            goto done;
    }
    for (int i = 0; i < nfiles; i++) { /* softmax, stable */
        float *row = y + (long)i * *k, mx = row[0];
        double sum = 0;
        for (int j = 1; j < *k; j++) mx = row[j] > mx ? row[j] : mx;
        for (int j = 0; j < *k; j++) sum += exp((double)row[j] - mx);
        for (int j = 0; j < *k; j++) row[j] = (float)(exp((double)row[j] - mx) / sum);
    }
    *probs = y;
    y = NULL;
done:
    free(x);
    free(pix);
    free(y);
    pipeline_free(p);
    graft_context_free(ctx);
    store_free(&s);
    return st;
}
