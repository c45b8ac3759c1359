/* api.c — the public recipe/train/eval/predict entry points of graft.h, over the train stage. */
#include "train.h"

#include <string.h>

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
    train_options o = {.device = device, .out_dir = out_dir};
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
