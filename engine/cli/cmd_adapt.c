/* cmd_adapt.c — `graft adapt RECIPE --weights W [--out W2]`: AdaBN on trained weights. Every
 * batchnorm layer's running statistics are re-estimated on the recipe's adapt.target (no labels,
 * no gradients); the adapted weights are written aside and renamed; with a data.test split the
 * accuracy before and after is printed. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char ADAPT_USAGE[] =
    "usage: graft adapt RECIPE --weights W.safetensors [--out OUT.safetensors] [--set KEY=VALUE]...\n"
    "                   [--device SPEC]\n"
    "\n"
    "AdaBN on trained weights: re-estimate every batchnorm layer's running statistics on the\n"
    "recipe's unlabelled adapt.target data (forward only, batch statistics averaged over the\n"
    "batches) and write the adapted weights to OUT (default: W with -adabn before .safetensors).\n"
    "With a data.test split (the labelled target test data) the test accuracy before and after\n"
    "adaptation is printed.\n";

int cmd_adapt(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "adapt", ADAPT_USAGE, argc, argv);
    const char *opt, *pos, *recipe = NULL, *device = NULL, *weights = NULL, *out = NULL;
    const char *sets[CLI_MAX_SETS];
    int nsets = 0;
    while (cli_next(&a, &opt, &pos)) {
        if (pos) {
            if (recipe) return cli_usage_error(&a, "unexpected argument '%s'", pos);
            recipe = pos;
        } else if (strcmp(opt, "--set") == 0 || strcmp(opt, "--device") == 0 ||
                   strcmp(opt, "--weights") == 0 || strcmp(opt, "--out") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) return 2;
            if (opt[2] == 's' && !cli_add_set(&a, v, sets, &nsets, CLI_MAX_SETS)) return 2;
            if (opt[2] == 'd') device = v;
            if (opt[2] == 'w') weights = v;
            if (opt[2] == 'o') out = v;
        } else {
            return cli_usage_error(&a, "unknown option %s", opt);
        }
    }
    if (!recipe) return cli_usage_error(&a, "missing RECIPE");
    if (!weights) return cli_usage_error(&a, "missing --weights");
    char def[4096];
    if (!out) {
        size_t n = strlen(weights), k = strlen(".safetensors");
        if (n > k && strcmp(weights + n - k, ".safetensors") == 0)
            snprintf(def, sizeof def, "%.*s-adabn.safetensors", (int)(n - k), weights);
        else
            snprintf(def, sizeof def, "%s-adabn.safetensors", weights);
        out = def;
    }
    if (strcmp(out, weights) == 0)
        return cli_usage_error(&a, "--out is the input weights file; write the adapted weights elsewhere");
    graft_recipe *r;
    int rc = cli_load_recipe(recipe, sets, nsets, &r);
    if (rc) return rc;
    graft_error e = {0};
    if (!r->adapt.present) {
        fprintf(stderr, "%s: error: the recipe has no adapt section (adapt: {target: ...}) to adapt to\n",
                recipe);
        recipe_free(r);
        return 2;
    }
    eval_result before = {0}, after = {0};
    bool have_test = r->data.test.present;
    graft_status s = have_test ? graft_evaluate(r, weights, device, &before, &e) : GRAFT_OK;
    adapt_result res;
    if (!s) s = graft_adapt(r, weights, out, device, &res, &e);
    if (!s && have_test) s = graft_evaluate(r, out, device, &after, &e);
    recipe_free(r);
    if (s) {
        eval_result_free(&before);
        eval_result_free(&after);
        return cli_fail(&e);
    }
    printf("AdaBN: batchnorm statistics from %ld target images (%ld batches) -> %s\n", res.samples,
           res.batches, out);
    if (have_test)
        printf("target test accuracy: %.4f before, %.4f after (%+.2f points)\n", before.accuracy,
               after.accuracy, 100 * (after.accuracy - before.accuracy));
    eval_result_free(&before);
    eval_result_free(&after);
    return 0;
}
