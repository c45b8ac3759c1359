/* cmd_eval.c — `graft eval RECIPE --weights W [--json]`: loss, accuracy, per-class accuracy and the
 * confusion matrix on the recipe's test split. */
#include "cli.h"
#include "train.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char EVAL_USAGE[] =
    "usage: graft eval RECIPE --weights W.safetensors [--set KEY=VALUE]... [--device SPEC] [--json]\n"
    "\n"
    "Evaluate weights on the recipe's test split: loss, accuracy, per-class accuracy and the\n"
    "confusion matrix (rows: true class, columns: predicted).\n";

int cmd_eval(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "eval", EVAL_USAGE, argc, argv);
    const char *opt, *pos, *recipe = NULL, *device = NULL, *weights = NULL;
    const char *sets[CLI_MAX_SETS];
    int nsets = 0;
    bool json = false;
    while (cli_next(&a, &opt, &pos)) {
        if (pos) {
            if (recipe) return cli_usage_error(&a, "unexpected argument '%s'", pos);
            recipe = pos;
        } else if (strcmp(opt, "--json") == 0) {
            json = true;
        } else if (strcmp(opt, "--set") == 0 || strcmp(opt, "--device") == 0 ||
                   strcmp(opt, "--weights") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) return 2;
            if (opt[2] == 's' && !cli_add_set(&a, v, sets, &nsets, CLI_MAX_SETS)) return 2;
            if (opt[2] == 'd') device = v;
            if (opt[2] == 'w') weights = v;
        } else {
            return cli_usage_error(&a, "unknown option %s", opt);
        }
    }
    if (!recipe) return cli_usage_error(&a, "missing RECIPE");
    if (!weights) return cli_usage_error(&a, "missing --weights");
    graft_recipe *r;
    int rc = cli_load_recipe(recipe, sets, nsets, &r);
    if (rc) return rc;
    eval_result res;
    graft_error e = {0};
    graft_status s = graft_evaluate(r, weights, device, &res, &e);
    recipe_free(r);
    if (s) return cli_fail(&e);
    if (json) {
        json_t *o = eval_result_json(&res); /* the library's, as graft_run_eval_json */
        char *t = json_dumps(o, JSON_INDENT(2));
        if (t) puts(t);
        free(t);
        json_decref(o);
    } else {
        printf("test: %ld images, loss %.4f, accuracy %.4f\n\nclass  accuracy  confusion (row: "
               "true, column: predicted)\n",
               res.n, res.loss, res.accuracy);
        for (int i = 0; i < res.k; i++) {
            long row = 0;
            for (int j = 0; j < res.k; j++) row += res.confusion[i * res.k + j];
            printf("%5d  %8.4f ", i, row ? (double)res.confusion[i * res.k + i] / row : 0.0);
            for (int j = 0; j < res.k; j++) printf(" %5ld", res.confusion[i * res.k + j]);
            printf("\n");
        }
    }
    eval_result_free(&res);
    return 0;
}
