/* api.c — the public recipe/train/eval/predict entry points of graft.h, over the train stage. */
#include "bench.h"
#include "train.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

graft_status graft_devices_json(char **json, graft_error *err)
{
    *json = NULL;
    graft_device_info *d;
    int n;
    graft_status s = graft_devices_list(&d, &n, err);
    if (s) return s;
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(arr, bench_device_json(&d[i], "name"));
    free(d);
    *json = json_dumps(arr, JSON_INDENT(2));
    json_decref(arr);
    return *json ? GRAFT_OK : err_set(err, GRAFT_STATUS_NOMEM, "out of memory");
}

int graft_recipe_input_shape(const graft_recipe *r, long dims[4])
{
    shape in = r->graph.input;
    for (int i = 0; i < in.rank && i < 4; i++) dims[i] = in.d[i];
    return in.rank;
}

long graft_recipe_output_size(const graft_recipe *r)
{
    return r->graph.nlayers ? shape_size(r->graph.layers[r->graph.nlayers - 1].out) : 0;
}

graft_status graft_recipe_plan_json(const graft_recipe *r, char **json, graft_error *err)
{
    *json = NULL;
    plan_view v;
    graft_status s = plan_view_build(r, &v, err);
    if (s) return s;
    json_t *o = plan_view_json(&v);
    plan_view_free(&v);
    *json = o ? json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(o);
    return *json ? GRAFT_OK : err_set(err, GRAFT_STATUS_NOMEM, "out of memory");
}

graft_status graft_recipe_load(const char *file, const char *const *sets, int nsets,
                               graft_recipe **out, graft_diags *diags)
{
    return recipe_load(file, sets, nsets, out, diags);
}

void graft_recipe_free(graft_recipe *r)
{
    recipe_free(r);
}

void graft_recipe_size(const graft_recipe *r, int *layers, long *params, long *trainable)
{
    if (layers) *layers = r->graph.nlayers;
    if (params) *params = graph_param_count(&r->graph, false);
    if (trainable) *trainable = graph_param_count(&r->graph, true);
}

graft_status graft_run_train(graft_recipe *r, const char *out_dir, const char *device,
                             graft_train_result *res, graft_error *err)
{
    graft_train_options o = {.out_dir = out_dir, .device = device};
    return graft_run_train_opts(r, &o, res, err);
}

typedef struct progress_relay {
    graft_progress_fn fn;
    void *user;
} progress_relay;

static void relay(void *user, const train_progress *p)
{
    const progress_relay *r = user;
    graft_progress g = {.epoch = p->epoch, .epochs = p->epochs, .batch = p->batch,
                        .batches = p->nbatches, .loss = p->loss, .accuracy = p->accuracy,
                        .images_per_second = p->images_per_second, .eta_seconds = p->eta_seconds,
                        .epoch_done = p->epoch_done, .val_loss = p->val_loss,
                        .val_accuracy = p->val_accuracy, .lr = p->lr, .note = p->note};
    r->fn(r->user, &g);
}

graft_status graft_run_train_opts(graft_recipe *r, const graft_train_options *opt,
                                  graft_train_result *res, graft_error *err)
{
    progress_relay pr = {.fn = opt->progress, .user = opt->user};
    train_options o = {.device = opt->device, .out_dir = opt->out_dir, .resume = opt->resume,
                       .progress = opt->progress ? relay : NULL, .user = &pr,
                       .stop = opt->stop};
    train_summary s;
    graft_status st = graft_train(r, &o, &s, err);
    if (st) return st;
    memset(res, 0, sizeof *res);
    res->test_accuracy = s.test_accuracy;
    res->test_loss = s.test_loss;
    res->best_epoch = s.best_epoch;
    res->epochs_run = s.epochs_run;
    res->train_seconds = s.train_seconds;
    res->images_per_second = s.images_per_second;
    res->feature_cache = s.feature_cache;
    snprintf(res->run_dir, sizeof res->run_dir, "%s", s.out_dir);
    return GRAFT_OK;
}

graft_status graft_run_eval(graft_recipe *r, const char *weights, const char *device,
                            double *loss, double *accuracy, graft_error *err)
{
    eval_result res;
    graft_status st = graft_evaluate(r, weights, device, &res, err);
    if (st) return st;
    *loss = res.loss;
    *accuracy = res.accuracy;
    eval_result_free(&res);
    return GRAFT_OK;
}

graft_status graft_run_predict(graft_recipe *r, const char *weights, const char *input_npy,
                               const char *output_npy, const char *device, long *rows,
                               graft_error *err)
{
    return graft_predict(r, weights, input_npy, output_npy, device, rows, err);
}

graft_status graft_run_eval_json(graft_recipe *r, const char *weights, const char *device,
                                 char **json, graft_error *err)
{
    *json = NULL;
    eval_result res;
    graft_status st = graft_evaluate(r, weights, device, &res, err);
    if (st) return st;
    json_t *o = eval_result_json(&res);
    eval_result_free(&res);
    *json = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    return *json ? GRAFT_OK : err_set(err, GRAFT_STATUS_NOMEM, "out of memory");
}

graft_status graft_run_predict_rows(graft_recipe *r, const char *weights, const char *device,
                                    const void *data, graft_dtype dtype, long rows, float *logits,
                                    graft_error *err)
{
    if (rows < 1) return err_set(err, GRAFT_STATUS_USAGE, "expected at least one row, got %ld", rows);
    char kind = dtype == GRAFT_DTYPE_U8 ? 'u' : 'f';
    int size = dtype == GRAFT_DTYPE_U8 ? 1 : dtype == GRAFT_DTYPE_F64 ? 8 : 4;
    if (dtype != GRAFT_DTYPE_F32 && dtype != GRAFT_DTYPE_F64 && dtype != GRAFT_DTYPE_U8)
        return err_set(err, GRAFT_STATUS_USAGE, "unknown graft_dtype %d", (int)dtype);
    return graft_predict_rows(r, weights, device, data, kind, size, rows, logits, err);
}
