/* cmd_predict.c — `graft predict RECIPE --weights W --input X.npy --output Y.npy`: logits in
 * evaluation mode, as float32 .npy. */
#include "cli.h"
#include "train.h"

#include <stdio.h>
#include <string.h>

const char PREDICT_USAGE[] =
    "usage: graft predict RECIPE --weights W.safetensors --input X.npy --output Y.npy\n"
    "                     [--set KEY=VALUE]... [--device SPEC]\n"
    "\n"
    "Run the model in evaluation mode over every row of X (N×C×H×W or N×F, float32 or uint8)\n"
    "and write the logits [N, classes] as float32 .npy (written aside, then renamed).\n";

int cmd_predict(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "predict", PREDICT_USAGE, argc, argv);
    const char *opt, *pos, *recipe = NULL, *device = NULL, *weights = NULL, *in = NULL,
                           *out = NULL;
    const char *sets[CLI_MAX_SETS];
    int nsets = 0;
    while (cli_next(&a, &opt, &pos)) {
        if (pos) {
            if (recipe) return cli_usage_error(&a, "unexpected argument '%s'", pos);
            recipe = pos;
        } else if (strcmp(opt, "--set") == 0 || strcmp(opt, "--device") == 0 ||
                   strcmp(opt, "--weights") == 0 || strcmp(opt, "--input") == 0 ||
                   strcmp(opt, "--output") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) return 2;
            if (opt[2] == 's' && !cli_add_set(&a, v, sets, &nsets, CLI_MAX_SETS)) return 2;
            if (opt[2] == 'd') device = v;
            if (opt[2] == 'w') weights = v;
            if (opt[2] == 'i') in = v;
            if (opt[2] == 'o') out = v;
        } else {
            return cli_usage_error(&a, "unknown option %s", opt);
        }
    }
    if (!recipe) return cli_usage_error(&a, "missing RECIPE");
    if (!weights || !in || !out) return cli_usage_error(&a, "--weights, --input and --output are required");
    graft_recipe *r;
    int rc = cli_load_recipe(recipe, sets, nsets, &r);
    if (rc) return rc;
    long rows = 0;
    graft_error e = {0};
    graft_status s = graft_predict(r, weights, in, out, device, &rows, &e);
    recipe_free(r);
    if (s) return cli_fail(&e);
    printf("%s: logits for %ld inputs\n", out, rows);
    return 0;
}
