/* finetune.c — a program that uses only graft.h: load a recipe (with overrides from the command
 * line), fine-tune it into a run directory, then evaluate the best weights on the test split.
 * usage: finetune RECIPE OUT_DIR [KEY=VALUE]... */
#include <graft.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s RECIPE OUT_DIR [KEY=VALUE]...\n", argv[0]);
        return 2;
    }
    graft_diags diags = {0};
    graft_recipe *recipe;
    if (graft_recipe_load(argv[1], (const char *const *)argv + 3, argc - 3, &recipe, &diags)) {
        graft_diags_print(&diags, stderr);
        graft_diags_free(&diags);
        return 2;
    }
    int layers;
    long params, trainable;
    graft_recipe_size(recipe, &layers, &params, &trainable);
    printf("recipe: %d layers, %ld parameters, %ld trainable\n", layers, params, trainable);

    graft_error err = {0};
    graft_train_result res;
    if (graft_run_train(recipe, argv[2], NULL, &res, &err)) {
        char line[2048];
        graft_error_format(&err, line, sizeof line);
        fprintf(stderr, "%s\n", line);
        graft_recipe_free(recipe);
        return graft_exit_code(err.status);
    }
    printf("trained %d epochs in %.1f s (%.0f images/s), best epoch %d\n", res.epochs_run,
           res.train_seconds, res.images_per_second, res.best_epoch);

    char weights[4096];
    snprintf(weights, sizeof weights, "%s/model.safetensors", argv[2]);
    double loss, accuracy;
    if (graft_run_eval(recipe, weights, NULL, &loss, &accuracy, &err)) {
        fprintf(stderr, "eval: %s\n", err.message);
        graft_recipe_free(recipe);
        return graft_exit_code(err.status);
    }
    printf("test: loss %.4f, accuracy %.4f\n", loss, accuracy);
    graft_recipe_free(recipe);
    return 0;
}
