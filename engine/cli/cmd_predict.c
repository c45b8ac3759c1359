/* cmd_predict.c — `graft predict RECIPE --weights W --input X.npy --output Y.npy`: logits in
 * evaluation mode, as float32 .npy. */
#include "cli.h"
#include "folder.h"
#include "train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char PREDICT_USAGE[] =
    "usage: graft predict RECIPE --weights W.safetensors --input X.npy --output Y.npy\n"
    "                     [--set KEY=VALUE]... [--device SPEC]\n"
    "       graft predict RECIPE --weights W.safetensors --image FILE [--image FILE]... [--top K]\n"
    "\n"
    "Run the model in evaluation mode over every row of X (N×C×H×W or N×F, float32 or uint8)\n"
    "and write the logits [N, classes] as float32 .npy (written aside, then renamed); or, with\n"
    "--image, print the top K classes (default 3) of each PNG or JPEG file, prepared as the\n"
    "recipe's image folders are for evaluation, with the class names of its data.train folder\n"
    "(or its data.classes labels).\n";

/* Class names: the training folder's sub-folders, else the recipe's classes labels, else indexes. */
static char *class_name(const graft_recipe *r, char **folder_names, int nfolder, int j)
{
    static char buf[32];
    if (j < nfolder) return folder_names[j];
    if (j < r->data.nclasses) snprintf(buf, sizeof buf, "label %d", r->data.classes[j]);
    else snprintf(buf, sizeof buf, "class %d", j);
    return buf;
}

static int predict_images(graft_recipe *r, const char *weights, const char *device,
                          const char *const *images, int nimages, int top)
{
    float *probs;
    int k;
    graft_error e = {0};
    if (graft_predict_images(r, weights, images, nimages, device, &probs, &k, &e))
        return cli_fail(&e);
    char **names = NULL;
    int nnames = 0;
    if (r->data.train.format == DATA_FOLDER && r->data.train.root &&
        folder_classes(r->data.train.root, &names, &nnames, NULL) != GRAFT_OK)
        nnames = 0;
    if (top > k) top = k;
    for (int i = 0; i < nimages; i++) {
        const float *p = probs + (long)i * k;
        printf("%s\n", images[i]);
        bool used[4096] = {false};
        for (int t = 0; t < top && t < 4096; t++) {
            int best = -1;
            for (int j = 0; j < k && j < 4096; j++)
                if (!used[j] && (best < 0 || p[j] > p[best])) best = j;
            used[best] = true;
            printf("  %d. %-24s %.4f\n", t + 1, class_name(r, names, nnames, best), p[best]);
        }
    }
    for (int i = 0; i < nnames; i++) free(names[i]);
    free(names);
    free(probs);
    return 0;
}

int cmd_predict(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "predict", PREDICT_USAGE, argc, argv);
    const char *opt, *pos, *recipe = NULL, *device = NULL, *weights = NULL, *in = NULL,
                           *out = NULL;
    const char *sets[CLI_MAX_SETS], *images[CLI_MAX_SETS];
    int nsets = 0, nimages = 0, top = 3;
    while (cli_next(&a, &opt, &pos)) {
        if (pos) {
            if (recipe) return cli_usage_error(&a, "unexpected argument '%s'", pos);
            recipe = pos;
        } else if (strcmp(opt, "--image") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) return 2;
            if (nimages >= CLI_MAX_SETS) return cli_usage_error(&a, "at most %d images", CLI_MAX_SETS);
            images[nimages++] = v;
        } else if (strcmp(opt, "--top") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) return 2;
            top = atoi(v);
            if (top < 1 || top > 1000) return cli_usage_error(&a, "--top needs 1 to 1000, got '%s'", v);
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
    if (!weights) return cli_usage_error(&a, "--weights is required");
    if (nimages && (in || out)) return cli_usage_error(&a, "--image and --input/--output exclude each other");
    if (!nimages && (!in || !out)) return cli_usage_error(&a, "--input and --output are required (or --image)");
    graft_recipe *r;
    int rc = cli_load_recipe(recipe, sets, nsets, &r);
    if (rc) return rc;
    if (nimages) {
        rc = predict_images(r, weights, device, images, nimages, top);
        recipe_free(r);
        return rc;
    }
    long rows = 0;
    graft_error e = {0};
    graft_status s = graft_predict(r, weights, in, out, device, &rows, &e);
    recipe_free(r);
    if (s) return cli_fail(&e);
    printf("%s: logits for %ld inputs\n", out, rows);
    return 0;
}
