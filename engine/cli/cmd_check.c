/* cmd_check.c — `graft check RECIPE [--set K=V]...`: load and validate a recipe; print one summary
 * line, or every problem as FILE:LINE:COL: error: MESSAGE and exit 2. */
#include "cli.h"
#include "recipe.h"

#include <stdio.h>
#include <string.h>

int cmd_check(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "check", CHECK_USAGE, argc, argv);
    const char *file = NULL, *opt, *pos, *sets[CLI_MAX_SETS];
    int nsets = 0;
    while (cli_next(&a, &opt, &pos)) {
        if (pos) {
            if (file) return cli_usage_error(&a, "unexpected argument '%s'", pos);
            file = pos;
        } else if (strcmp(opt, "--set") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v || !cli_add_set(&a, v, sets, &nsets, CLI_MAX_SETS)) return 2;
        } else {
            return cli_usage_error(&a, "unknown option %s", opt);
        }
    }
    if (!file) return cli_usage_error(&a, "missing RECIPE");
    graft_recipe *r;
    int rc = cli_load_recipe(file, sets, nsets, &r);
    if (rc) return rc;
    printf("ok: %d layers, %ld parameters (%ld trainable)\n", r->graph.nlayers,
           graph_param_count(&r->graph, false), graph_param_count(&r->graph, true));
    recipe_free(r);
    return 0;
}
