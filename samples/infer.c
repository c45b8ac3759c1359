/* infer.c — a program that uses only graft.h: logits for every row of an .npy file with a
 * recipe's model and a checkpoint, then the predicted class of the first rows.
 * usage: infer RECIPE WEIGHTS INPUT.npy OUTPUT.npy */
#include <graft.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s RECIPE WEIGHTS INPUT.npy OUTPUT.npy\n", argv[0]);
        return 2;
    }
    graft_diags diags = {0};
    graft_recipe *recipe;
    if (graft_recipe_load(argv[1], NULL, 0, &recipe, &diags)) {
        graft_diags_print(&diags, stderr);
        graft_diags_free(&diags);
        return 2;
    }
    graft_error err = {0};
    long rows = 0;
    graft_status s = graft_run_predict(recipe, argv[2], argv[3], argv[4], NULL, &rows, &err);
    graft_recipe_free(recipe);
    if (s) {
        char line[2048];
        graft_error_format(&err, line, sizeof line);
        fprintf(stderr, "%s\n", line);
        return graft_exit_code(s);
    }
    printf("%s: logits for %ld rows\n", argv[4], rows);
    return 0;
}
