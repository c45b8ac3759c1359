/* cmd_check.c — `graft check RECIPE [--set K=V]...`: load and validate a recipe; print one summary
 * line, or every problem as FILE:LINE:COL: error: MESSAGE and exit 2. */
#include "cli.h"
#include "recipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_check(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "check", CHECK_USAGE, argc, argv);
    const char *file = NULL, *opt, *pos;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int nsets = 0;
    if (!sets) return 1;
    while (cli_next(&a, &opt, &pos)) {
        if (pos) {
            if (file) {
                free(sets);
                return cli_usage_error(&a, "unexpected argument '%s'", pos);
            }
            file = pos;
        } else if (strcmp(opt, "--set") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) {
                free(sets);
                return 2;
            }
            sets[nsets++] = v;
        } else {
            free(sets);
            return cli_usage_error(&a, "unknown option %s", opt);
        }
    }
    if (!file) {
        free(sets);
        return cli_usage_error(&a, "missing RECIPE");
    }
    graft_recipe *r = NULL;
    graft_diags d = {0};
    graft_status s = recipe_load(file, sets, nsets, &r, &d);
    free(sets);
    if (s != GRAFT_OK) {
        graft_diags_sort(&d);
        graft_diags_print(&d, stderr);
        graft_diags_free(&d);
        return graft_exit_code(s);
    }
    printf("ok: %d layers, %ld parameters (%ld trainable)\n", r->graph.nlayers,
           graph_param_count(&r->graph, false), graph_param_count(&r->graph, true));
    graft_diags_free(&d);
    recipe_free(r);
    return 0;
}
