/* model_recipe.h — a recipe around a model file, for the tests that build pipelines from a model
 * alone: the data files it names only have to exist (no data is loaded), and are gone again when
 * it returns. */
#ifndef GRAFT_TEST_MODEL_RECIPE_H
#define GRAFT_TEST_MODEL_RECIPE_H
#define _DEFAULT_SOURCE /* mkdtemp, realpath */
#include "recipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* NULL (after printing why) where the model does not load */
static graft_recipe *model_recipe(const char *model_file)
{
    char dir[] = "/tmp/graft-model-XXXXXX", path[256], model[4096];
    if (!mkdtemp(dir) || !realpath(model_file, model)) return NULL;
    const char *files[] = {"x.npy", "y.npy", "r.yaml"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        if (!f) return NULL;
        if (i == 2)
            fprintf(f, "model: {file: %s}\n"
                       "data: {train: {format: npy, images: x.npy, labels: y.npy}}\n"
                       "train: {optimizer: adam}\n",
                    model);
        fclose(f);
    }
    graft_recipe *r = NULL;
    graft_diags d = {0};
    graft_status ls = recipe_load(path, NULL, 0, &r, &d);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    if (ls) graft_diags_print(&d, stderr);
    graft_diags_free(&d);
    return ls ? NULL : r;
}
#endif
