/* cmd_sweep.c — `graft sweep RECIPE --grid KEY=[V1,V2,…]…`: how much to freeze (and which learning
 * rate, …), with training from scratch always in the race (the work is sweep_* in train/sweep.c).
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "rank.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char SWEEP_USAGE[] =
    "usage: graft sweep RECIPE --grid KEY=[V1,V2,...]... [--set PATH=VALUE]... [--out DIR]\n"
    "                   [--metric val_accuracy|val_loss] [--patience N] [--val-split F]\n"
    "                   [--epochs N] [--budget DURATION] [--fresh] [--device SPEC] [--quiet]\n"
    "\n"
    "Train the recipe's variants over a grid of recipe keys, e.g.\n"
    "  --grid transfer.freeze=[none,conv2,conv4,flatten,fc1] --grid train.lr=[1e-3,3e-4]\n"
    "and always the from-scratch baseline (no transfer.from, nothing frozen; one per value of the\n"
    "axes outside transfer.*). Each variant trains with early stopping on the validation metric\n"
    "(a recipe without a validation split gets one, --val-split); variants whose frozen prefix is\n"
    "the same computation share its features. Prints the ranking on validation, the best variant\n"
    "with its test accuracy, and NEGATIVE TRANSFER for every variant worse than scratch on\n"
    "validation, with the margin. Writes DIR/sweep.json (after every variant) and DIR/sweep.html\n"
    "(inline SVG charts, no external resources); each variant's run is DIR/NN-LABEL/.\n"
    "A sweep stopped for any reason continues where it stopped when run again with the same\n"
    "arguments. Every --grid and --set value is checked before anything trains.\n"
    "\n"
    "  --grid KEY=[V...]  an axis: a recipe key and its values (YAML, repeatable)\n"
    "  --set PATH=VALUE   override a key in every variant (repeatable)\n"
    "  --out DIR          where it goes (default runs/sweep-NAME)\n"
    "  --metric M         val_accuracy (default) or val_loss: selection and early stopping\n"
    "  --patience N       epochs without improvement before stopping (default 5)\n"
    "  --val-split F      validation fraction when the recipe has none (default 0.2)\n"
    "  --epochs N         at most N epochs per variant\n"
    "  --budget DURATION  start no variant after this much training (90s, 10m, 1h); run again\n"
    "                     to continue\n"
    "  --fresh            start over in DIR instead of continuing\n";

static void note(void *user, const char *line)
{
    cli_progress_state *st = user;
    if (!st->quiet) fprintf(stderr, "%s\n", line);
}

static void progress(void *user, const train_progress *p)
{
    cli_progress(user, p);
}

static bool parse_duration(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0)) return false;
    if (!*end || strcmp(end, "s") == 0)
        *out = v;
    else if (strcmp(end, "m") == 0)
        *out = 60 * v;
    else if (strcmp(end, "h") == 0)
        *out = 3600 * v;
    else
        return false;
    return true;
}

int cmd_sweep(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "sweep", SWEEP_USAGE, argc, argv);
    const char *opt, *pos;
    const char *sets[CLI_MAX_SETS], *grids[CLI_MAX_SETS];
    int nsets = 0, ngrids = 0;
    sweep_options o = {.val_split = 0.2, .patience = 5};
    bool quiet = false;
    while (cli_next(&a, &opt, &pos)) {
        if (pos) {
            if (o.recipe) return cli_usage_error(&a, "unexpected argument '%s'", pos);
            o.recipe = pos;
            continue;
        }
        if (strcmp(opt, "--quiet") == 0) {
            quiet = true;
            continue;
        }
        if (strcmp(opt, "--fresh") == 0) {
            o.fresh = true;
            continue;
        }
        const char *names[] = {"--grid",      "--set",    "--out",    "--metric", "--patience",
                               "--val-split", "--epochs", "--budget", "--device"};
        int which = -1;
        for (int i = 0; i < (int)ARRAY_LEN(names); i++)
            if (strcmp(opt, names[i]) == 0) which = i;
        if (which < 0) return cli_usage_error(&a, "unknown option %s", opt);
        const char *v = cli_value(&a, opt);
        if (!v) return 2;
        char *end;
        switch (which) {
        case 0:
            if (ngrids >= CLI_MAX_SETS) return cli_usage_error(&a, "too many --grid options");
            grids[ngrids++] = v;
            break;
        case 1:
            if (!cli_add_set(&a, v, sets, &nsets, CLI_MAX_SETS)) return 2;
            break;
        case 2:
            o.out_dir = v;
            break;
        case 3:
            if (strcmp(v, "val_accuracy") == 0)
                o.metric_loss = false;
            else if (strcmp(v, "val_loss") == 0)
                o.metric_loss = true;
            else
                return cli_usage_error(&a, "--metric: expected val_accuracy or val_loss, got '%s'",
                                       v);
            break;
        case 4:
            o.patience = (int)strtol(v, &end, 10);
            if (*end || o.patience < 1 || o.patience > 1000)
                return cli_usage_error(&a, "--patience needs a number from 1 to 1000, got '%s'", v);
            break;
        case 5:
            o.val_split = strtod(v, &end);
            if (*end || !(o.val_split > 0 && o.val_split < 1))
                return cli_usage_error(&a, "--val-split needs a fraction between 0 and 1, got '%s'",
                                       v);
            break;
        case 6:
            o.max_epochs = (int)strtol(v, &end, 10);
            if (*end || o.max_epochs < 1 || o.max_epochs > 100000)
                return cli_usage_error(&a, "--epochs needs a positive number, got '%s'", v);
            break;
        case 7:
            if (!parse_duration(v, &o.budget_seconds))
                return cli_usage_error(
                    &a, "--budget: expected a duration such as 90s, 10m or 1h, got '%s'", v);
            break;
        case 8:
            o.device = v;
            break;
        }
    }
    if (!o.recipe) return cli_usage_error(&a, "missing RECIPE");
    if (!ngrids) return cli_usage_error(&a, "no --grid: give at least one KEY=[V1,V2,...]");
    o.sets = sets;
    o.nsets = nsets;
    o.grids = grids;
    o.ngrids = ngrids;
    cli_progress_state ps;
    cli_progress_init(&ps, quiet);
    o.progress = progress;
    o.note = note;
    o.user = &ps;
    sweep_result res;
    graft_diags d = {0};
    graft_error e = {0};
    graft_status s = sweep_plan(&o, &res, &d, &e);
    if (s) {
        int rc = graft_exit_code(s);
        if (d.count) {
            graft_diags_sort(&d);
            graft_diags_print(&d, stderr);
        } else {
            rc = cli_fail(&e);
        }
        graft_diags_free(&d);
        sweep_result_free(&res);
        return rc ? rc : 2;
    }
    graft_diags_free(&d);
    if (!quiet) {
        fprintf(stderr, "sweep: %d variants into %s; %s\n", res.nvariants, res.out_dir,
                res.val_note);
    }
    s = sweep_run(&o, &res, &e);
    int rc = 0;
    if (s) rc = cli_fail(&e);
    const char *metric = o.metric_loss ? "val_loss" : "val_accuracy";
    printf("\nSweep of %s over", o.recipe);
    for (int i = 0; i < res.naxes; i++)
        printf(" %s", res.axes[i].key);
    printf(" (%s; selection on %s)\n\n", res.val_note, metric);
    printf("%-4s %-44s %12s %9s %6s %6s %10s %6s  %s\n", "rank", "variant", metric, "test acc",
           "best", "epochs", "trainable", "cache", "vs scratch");
    /* best first */
    int *ord = malloc((size_t)(res.nvariants ? res.nvariants : 1) * sizeof *ord);
    int n = 0;
    for (int pass = 0; ord && pass < 2; pass++)
        for (int i = 0; i < res.nvariants; i++) {
            const sweep_variant *v = &res.v[i];
            bool ok = v->done && !v->failed && isfinite(v->val_metric);
            if ((pass == 0) != ok) continue;
            int j = n++;
            while (pass == 0 && j > 0) {
                const sweep_variant *u = &res.v[ord[j - 1]];
                if (!sweep_better(&o, v, u)) break;
                ord[j] = ord[j - 1];
                j--;
            }
            ord[j] = i;
        }
    for (int r = 0; ord && r < n; r++) {
        const sweep_variant *v = &res.v[ord[r]];
        if (!(v->done && !v->failed)) {
            printf("%-4s %-44.44s %s\n", "-", v->label, v->failed ? v->error : "not trained yet");
            continue;
        }
        char vs[64] = "";
        if (v->baseline)
            snprintf(vs, sizeof vs, "baseline");
        else if (v->negative)
            snprintf(vs, sizeof vs, o.metric_loss ? "worse by %.4f" : "worse by %.2f pts",
                     o.metric_loss ? v->margin : 100 * v->margin);
        else if (res.baseline >= 0 && v->val_metric == res.v[res.baseline].val_metric)
            snprintf(vs, sizeof vs, "tied");
        else if (res.baseline >= 0)
            snprintf(vs, sizeof vs, o.metric_loss ? "better by %.4f" : "better by %.2f pts",
                     o.metric_loss ? res.v[res.baseline].val_metric - v->val_metric
                                   : 100 * (v->val_metric - res.v[res.baseline].val_metric));
        printf("%-4d %-44.44s %12.4f %9.4f %6d %6d %10ld %6s  %s\n", r + 1, v->label, v->val_metric,
               v->test_accuracy, v->best_epoch, v->epochs_run, v->trainable,
               v->feature_cache ? "yes" : "no", vs);
    }
    free(ord);
    printf("\n");
    if (res.best >= 0)
        printf("BEST: %s (%s %.4f), test accuracy %.4f\n", res.v[res.best].label, metric,
               res.v[res.best].val_metric, res.v[res.best].test_accuracy);
    int neg = 0;
    for (int i = 0; i < res.nvariants; i++) {
        const sweep_variant *v = &res.v[i];
        if (!v->negative) continue;
        neg++;
        const sweep_variant *b = &res.v[res.baseline];
        if (o.metric_loss)
            printf(
                "NEGATIVE TRANSFER: %s: validation loss %.4f higher than %s (test accuracy %+.2f "
                "points)\n",
                v->label, v->margin, b->label, 100 * (v->test_accuracy - b->test_accuracy));
        else {
            char noise[160] = "";
            if (isfinite(v->noise))
                snprintf(noise, sizeof noise,
                         "; %s the noise of %ld validation images, 2 s.e. = %.2f points",
                         v->margin <= v->noise ? "within" : "beyond", res.val_images,
                         100 * v->noise);
            printf(
                "NEGATIVE TRANSFER: %s is %.2f points of validation accuracy worse than %s (test "
                "accuracy %+.2f points%s)\n",
                v->label, 100 * v->margin, b->label, 100 * (v->test_accuracy - b->test_accuracy),
                noise);
        }
    }
    if (!neg && res.baseline >= 0)
        printf("No negative transfer: every variant %sis at least as good as scratch on "
               "validation.\n",
               res.complete ? "" : "trained so far ");
    bool any_baseline = false;
    for (int i = 0; i < res.nvariants; i++) any_baseline |= res.v[i].baseline;
    if (!any_baseline)
        printf("No scratch baseline: the recipe loads no checkpoint (transfer.from), so every "
               "variant already trains from scratch.\n");
    if (res.pool_hits)
        printf("Frozen features reused across variants for %ld split%s (computed %ld).\n",
               res.pool_hits, res.pool_hits == 1 ? "" : "s", res.pool_misses);
    if (!res.complete)
        printf("The sweep is not finished%s: run the same command again to continue.\n",
               res.out_of_budget ? " (--budget spent)" : "");
    printf("Wrote %s/sweep.json and %s/sweep.html\n", res.out_dir, res.out_dir);
    sweep_result_free(&res);
    return rc;
}
