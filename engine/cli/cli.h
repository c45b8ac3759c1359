/* cli.h — the graft program: one file per command, sharing argument helpers. Only cli/ prints. */
#ifndef GRAFT_CLI_H
#define GRAFT_CLI_H

#include "graft.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct cli_command {
    const char *name;
    const char *summary;
    const char *usage; /* full --help text */
    int (*run)(int argc, char **argv);
} cli_command;

/* Argument scanning: positional arguments and --opt VALUE / --opt=VALUE / --flag. */
typedef struct cli_args {
    int argc, i;
    char **argv;
    const char *cmd;
    const char *usage;
} cli_args;

void cli_args_init(cli_args *a, const char *cmd, const char *usage, int argc, char **argv);
/* Next argument; sets *opt to the option name ("--json") or NULL for a positional; returns false
 * at the end. */
bool cli_next(cli_args *a, const char **opt, const char **positional);
/* The value of the option just returned (from "=VALUE" or the next argument); NULL = missing,
 * already reported. */
const char *cli_value(cli_args *a, const char *opt);
/* Print "graft CMD: MESSAGE" + usage hint to stderr; returns 2. */
int cli_usage_error(const cli_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line "graft: error: …" (with position when known); returns the exit code of e->status. */
int cli_fail(const graft_error *e);
bool cli_is_help(const char *s);

int cmd_devices(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_adapt(int argc, char **argv);
int cmd_bench(int argc, char **argv); /* cmd_bench.c: graft bench gemm */
int cmd_tune(int argc, char **argv);  /* cmd_tune.c: the GEMM tuner */
int bench_recipe_main(int argc, char **argv); /* bench_recipe.c: graft bench RECIPE */
extern const char BENCH_RECIPE_USAGE[];
int cmd_report(int argc, char **argv); /* cmd_report.c: graft report RUN.json... */
extern const char REPORT_USAGE[];
int cmd_rank(int argc, char **argv);  /* cmd_rank.c: transferability of candidate sources */
int cmd_sweep(int argc, char **argv); /* cmd_sweep.c: a recipe's variants over a grid */

/* ---- shared by the recipe-taking commands (cmd_common.c) ---- */
struct graft_recipe;
struct train_progress;
#define CLI_MAX_SETS 64
/* Load a recipe with --set overrides; prints every diagnostic. 0 or the exit code. */
int cli_load_recipe(const char *file, const char *const *sets, int nsets,
                    struct graft_recipe **out);
bool cli_add_set(cli_args *a, const char *value, const char **sets, int *nsets, int max);
typedef struct cli_progress_state {
    bool quiet, tty, bar_open;
    double last_draw;
} cli_progress_state;
void cli_progress_init(cli_progress_state *st, bool quiet);
void cli_progress(void *user, const struct train_progress *p);
int cmd_check(int argc, char **argv);
int cmd_plan(int argc, char **argv);
extern const char CHECK_USAGE[], PLAN_USAGE[];

extern const cli_command cli_commands[];
/* The overview `graft --help` prints (main.c). */
void cli_usage(FILE *to);
int cmd_help(int argc, char **argv); /* cmd_help.c: graft help [COMMAND], the man page */
/* Where the shipped configs are: ./configs, else the source tree's, else the installed copy
 * (DATADIR/graft/configs). */
const char *cli_configs_dir(void);
int cmd_schema(int argc, char **argv); /* cmd_schema.c: graft schema */

#endif
