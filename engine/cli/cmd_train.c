/* cmd_train.c — `graft train RECIPE [--set K=V]... [--device SPEC] [--out DIR] [--resume DIR]
 * [--quiet]`: train from scratch or from transfer.from and fill the run directory. */
#include "cli.h"
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char TRAIN_USAGE[] =
    "usage: graft train RECIPE [--set KEY=VALUE]... [--device SPEC] [--out DIR] [--resume DIR]\n"
    "                   [--devices SPEC,SPEC,...|all] [--quiet]\n"
    "\n"
    "Train the recipe's model (from scratch, or from transfer.from) and write the run directory:\n"
    "model.safetensors (best by the monitored metric), last.safetensors and state.safetensors\n"
    "(for --resume), metrics.jsonl, summary.json, recipe.yaml (the resolved recipe) and\n"
    "report.html (curves, per-class accuracy, confusion matrix, layout, timing: no network).\n"
    "\n"
    "  --set KEY=VALUE  override a recipe value (VALUE is YAML), e.g. --set train.lr=0.01\n"
    "  --device SPEC    cpu, gpu, nvidia, amd, intel, pocl, P:D or a name substring\n"
    "  --devices SPEC,SPEC,...|all  data parallelism: one replica per device, the batch split\n"
    "                   evenly, gradients averaged after backward (train.devices)\n"
    "  --out DIR        the run directory (default: the recipe's output:)\n"
    "  --resume DIR     continue the run in DIR exactly where its last checkpoint stopped\n"
    "  --quiet          print only the final summary\n";

int cmd_train(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "train", TRAIN_USAGE, argc, argv);
    const char *opt, *pos, *recipe = NULL, *device = NULL, *out = NULL, *resume = NULL,
               *devices = NULL;
    const char *sets[CLI_MAX_SETS];
    int nsets = 0;
    bool quiet = false;
    while (cli_next(&a, &opt, &pos)) {
        if (pos) {
            if (recipe) return cli_usage_error(&a, "unexpected argument '%s'", pos);
            recipe = pos;
        } else if (strcmp(opt, "--quiet") == 0) {
            quiet = true;
        } else if (strcmp(opt, "--devices") == 0) {
            if (!(devices = cli_value(&a, opt))) return 2;
        } else if (strcmp(opt, "--set") == 0 || strcmp(opt, "--device") == 0 ||
                   strcmp(opt, "--out") == 0 || strcmp(opt, "--resume") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) return 2;
            if (opt[2] == 's' && !cli_add_set(&a, v, sets, &nsets, CLI_MAX_SETS)) return 2;
            if (opt[2] == 'd') device = v;
            if (opt[2] == 'o') out = v;
            if (opt[2] == 'r') resume = v;
        } else {
            return cli_usage_error(&a, "unknown option %s", opt);
        }
    }
    if (!recipe) return cli_usage_error(&a, "missing RECIPE");
    if (device && devices) return cli_usage_error(&a, "--device and --devices exclude each other");
    graft_recipe *r;
    int rc = cli_load_recipe(recipe, sets, nsets, &r);
    if (rc) return rc;
    cli_progress_state ps;
    cli_progress_init(&ps, quiet);
    train_options o = {.device = device, .devices = devices, .out_dir = out, .resume = resume, .progress = cli_progress,
                       .user = &ps};
    train_summary sum;
    graft_error e = {0};
    graft_status s = graft_train(r, &o, &sum, &e);
    recipe_free(r);
    if (s) return cli_fail(&e);
    char test[96];
    if (isfinite(sum.test_accuracy))
        snprintf(test, sizeof test, "test accuracy %.4f, test loss %.4f", sum.test_accuracy,
                 sum.test_loss);
    else
        snprintf(test, sizeof test, "no test split");
    printf("%s: %s, best epoch %d of %d%s, %.1f s, %.0f img/s, "
           "%ld of %ld parameters trained, feature cache %s, device %s\n",
           sum.out_dir, test, sum.best_epoch, sum.epochs_run,
           sum.stopped_early ? " (stopped early)" : "", sum.train_seconds, sum.images_per_second,
           sum.params_trainable, sum.params_total, sum.feature_cache ? "on" : "off", sum.device);
    return 0;
}
