/* cmd_train.c — `graft train RECIPE [--set K=V]... [--device SPEC] [--out DIR] [--resume DIR]
 * [--quiet]`: train from scratch or from transfer.from and fill the run directory. */
#include "cli.h"
#include "train.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Under mpirun, a rank that dies makes mpirun end the others with SIGTERM (and SIGKILL a second
 * later): say which rank was lost when its process on this host is gone (mpirun reaped it before
 * it sent this), else that some rank was, then go (async-signal-safe calls only). */
static char lost_prefix[64];
static const dist *lost_dist;
static void say(const char *s)
{
    ssize_t w = write(STDERR_FILENO, s, strlen(s));
    (void)w;
}
static void on_sigterm(int sig)
{
    (void)sig;
    char lost[128];
    int n = lost_dist ? dist_lost_local(lost_dist, lost, sizeof lost) : 0;
    say(lost_prefix);
    if (n) {
        say(n > 1 ? "ranks " : "rank ");
        say(lost);
        say(n > 1 ? " were" : " was");
        say(" lost (the process is gone: killed, or it ended the job after its own error); "
            "mpirun stopped the job; the last complete checkpoint is kept\n");
    } else {
        say("stopped by mpirun: a rank on another host was lost (mpirun names it); the last "
            "complete checkpoint is kept\n");
    }
    _exit(1);
}

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
    "                   evenly or by measured speed (train.split), gradients averaged after\n"
    "                   backward (train.devices; train.sync_bn: batchnorm over the whole batch)\n"
    "  --out DIR        the run directory (default: the recipe's output:)\n"
    "  --resume DIR     continue the run in DIR exactly where its last checkpoint stopped\n"
    "  --quiet          print only the final summary\n"
    "\n"
    "Across processes: mpirun -n N graft train RECIPE (a build with MPI): each rank drives its\n"
    "device (--device or GRAFT_DEVICE, where {local_rank} is the rank's number on its node),\n"
    "trains on its share of every global batch, gradients are summed with MPI_Allreduce; rank 0\n"
    "alone writes the run directory. A rank that dies or does not answer for GRAFT_DIST_TIMEOUT\n"
    "seconds (default 20) stops the job with an error naming it.\n";

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
    static dist d; /* static: the SIGTERM handler reads it until the process ends */
    graft_error de = {0};
    if (dist_init(&d, &de)) return cli_fail(&de);
    if (d.size > 1) {
        snprintf(lost_prefix, sizeof lost_prefix, "graft: error: rank %d of %d: ", d.rank,
                 d.size);
        lost_dist = &d;
        signal(SIGTERM, on_sigterm);
    }
    if (device && devices) return cli_usage_error(&a, "--device and --devices exclude each other");
    graft_recipe *r;
    int rc = cli_load_recipe(recipe, sets, nsets, &r);
    if (rc) {
        dist_abort(&d); /* every rank loads the same recipe: none waits for this one */
        dist_finalize(&d);
        return rc;
    }
    cli_progress_state ps;
    /* across processes, rank 0 alone shows progress and the summary */
    cli_progress_init(&ps, quiet || d.rank > 0);
    train_options o = {.device = device, .devices = devices, .out_dir = out, .resume = resume,
                       .progress = d.rank > 0 ? NULL : cli_progress, .user = &ps,
                       .dist = d.size > 1 ? &d : NULL};
    train_summary sum;
    graft_error e = {0};
    graft_status s = graft_train(r, &o, &sum, &e);
    recipe_free(r);
    if (s) {
        if (d.size > 1) err_prefix(&e, "rank %d of %d", d.rank, d.size);
        rc = cli_fail(&e);
        dist_abort(&d); /* the job ends with this rank: the others are not left waiting */
        return rc;
    }
    dist_finalize(&d);
    if (d.rank > 0) return 0;
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
