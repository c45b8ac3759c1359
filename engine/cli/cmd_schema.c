/* cmd_schema.c — `graft schema [--out FILE]`: the recipe language's JSON Schema, from the library
 * (graft_recipe_schema_json), for editors (the YAML language server) and other validators. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

const char SCHEMA_USAGE[] =
    "usage: graft schema [--out FILE]\n"
    "\n"
    "Print the JSON Schema (draft-07) of the recipe language: every section and key with its\n"
    "type, range and enum, and every layer type with its options, generated from the tables\n"
    "`graft check` uses. Files may be partial (extends, model files): the schema requires no\n"
    "section; `graft check` checks the merged recipe. Point an editor at it with a first line\n"
    "  # yaml-language-server: $schema=PATH/TO/recipe.schema.json\n"
    "\n"
    "  --out FILE   write FILE (aside, then renamed) instead of printing\n";

int cmd_schema(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "schema", SCHEMA_USAGE, argc, argv);
    const char *out = NULL, *opt, *pos;
    while (cli_next(&a, &opt, &pos)) {
        if (pos) return cli_usage_error(&a, "unexpected argument '%s'", pos);
        if (strcmp(opt, "--out") == 0) {
            if (!(out = cli_value(&a, opt))) return 2;
        } else {
            return cli_usage_error(&a, "unknown option %s", opt);
        }
    }
    graft_error e = {0};
    char *json;
    if (graft_recipe_schema_json(&json, &e)) return cli_fail(&e);
    size_t len = strlen(json);
    int code = 0;
    if (out) {
        char *withnl = malloc(len + 2);
        if (!withnl) {
            free(json);
            return 1;
        }
        memcpy(withnl, json, len);
        withnl[len] = '\n';
        if (fs_write_atomic(out, withnl, len + 1, &e)) code = cli_fail(&e);
        free(withnl);
    } else {
        puts(json);
    }
    graft_free(json);
    return code;
}
