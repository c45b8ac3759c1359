/* main.c — `graft <command> [options]`: dispatch to the command files and shared argument helpers. */
#include "cli.h"
#include "runtime.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char DEVICES_USAGE[] =
    "usage: graft devices [--json]\n"
    "\n"
    "List every OpenCL device of every platform, with what the capability probe found.\n"
    "The spec column shows the P:D index accepted by --device and GRAFT_DEVICE.\n"
    "\n"
    "  --json   print a JSON array of objects instead of a table\n";

const char CHECK_USAGE[] =
    "usage: graft check RECIPE [--set PATH=VALUE]...\n"
    "\n"
    "Load a recipe (extends, model.file, --set), validate every section and build its graph.\n"
    "Prints `ok: N layers, P parameters (T trainable)`, or every problem as\n"
    "FILE:LINE:COL: error: MESSAGE and exits 2.\n"
    "\n"
    "  --set PATH=VALUE   override a key after extends; VALUE is YAML (repeatable), e.g.\n"
    "                     --set train.lr=0.01 --set data.classes=[5,6,7] --set model.layers.3.units=64\n";

const char PLAN_USAGE[] =
    "usage: graft plan RECIPE [--set PATH=VALUE]... [--json]\n"
    "\n"
    "Show the compiled view of a recipe before anything runs: each layer's output shape,\n"
    "parameters, frozen or trainable, whether its backward runs, its lr multiplier, which tensors\n"
    "load from the checkpoint and which are initialised, and whether frozen features are cached.\n"
    "\n"
    "  --set PATH=VALUE   override a key (repeatable)\n"
    "  --json             print one JSON object: {recipe, name, input_shape, checkpoint,\n"
    "                     layers: [{name, type, inputs, output_shape, params, frozen, fresh,\n"
    "                     backward, lr_mult, load: [...], init: [...]}], params_total,\n"
    "                     params_trainable, frozen_prefix, feature_cache: {used, reason}}\n";

extern const char TRAIN_USAGE[], EVAL_USAGE[], PREDICT_USAGE[], DEMO_USAGE[];
extern const char BENCH_USAGE[], TUNE_USAGE[];
extern const char ADAPT_USAGE[];
extern const char HELP_USAGE[], SCHEMA_USAGE[], RANK_USAGE[], SWEEP_USAGE[];

const cli_command cli_commands[] = {
    {"devices", "list OpenCL devices and their capabilities", DEVICES_USAGE, cmd_devices},
    {"check", "validate a recipe and print its size", CHECK_USAGE, cmd_check},
    {"plan", "show a recipe's layers, parameters, freezing and caching", PLAN_USAGE, cmd_plan},
    {"train", "train a recipe (from scratch or by transfer) into a run directory", TRAIN_USAGE,
     cmd_train},
    {"eval", "evaluate weights on the recipe's test split", EVAL_USAGE, cmd_eval},
    {"predict", "logits for an .npy input, as .npy", PREDICT_USAGE, cmd_predict},
    {"demo", "the transfer demo on Fashion-MNIST", DEMO_USAGE, cmd_demo},
    {"adapt", "AdaBN: batchnorm statistics of trained weights re-estimated on target data",
     ADAPT_USAGE, cmd_adapt},
    {"bench", "profile a recipe's training step; GEMM GFLOP/s (graft bench gemm)", BENCH_USAGE,
     cmd_bench},
    {"tune", "tune the GEMM kernels for a device; results persist in the cache", TUNE_USAGE,
     cmd_tune},
    {"report", "merge `graft bench` runs into per-device and per-layer tables, Markdown or HTML",
     REPORT_USAGE, cmd_report},
    {"schema", "print the recipe language's JSON Schema (for editors)", SCHEMA_USAGE, cmd_schema},
    {"help", "a command's help; the manual page (graft help --man)", HELP_USAGE, cmd_help},
    {"rank", "score candidate pretrained models for a recipe without training (LogME, H-score, "
     "NCE, LEEP)", RANK_USAGE, cmd_rank},
    {"sweep", "train a recipe's variants over a grid against scratch; flag negative transfer",
     SWEEP_USAGE, cmd_sweep},
    {NULL, NULL, NULL, NULL},
};

void cli_usage(FILE *to)
{
    fprintf(to, "usage: graft <command> [options]\n"
                "       graft --version | --help | help COMMAND\n\ncommands:\n");
    for (int i = 0; cli_commands[i].name; i++)
        fprintf(to, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
    fprintf(to, "\nRun `graft <command> --help` for a command's options.\n"
                "Devices are chosen with --device SPEC or GRAFT_DEVICE: cpu, gpu, nvidia, amd, "
                "intel, pocl, P:D, or a name substring.\n");
}

bool cli_is_help(const char *s)
{
    return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0;
}

void cli_args_init(cli_args *a, const char *cmd, const char *usage_text, int argc, char **argv)
{
    a->argc = argc;
    a->argv = argv;
    a->i = 0;
    a->cmd = cmd;
    a->usage = usage_text;
}

static char opt_buf[128];

bool cli_next(cli_args *a, const char **opt, const char **positional)
{
    *opt = NULL;
    *positional = NULL;
    if (a->i >= a->argc) return false;
    const char *s = a->argv[a->i++];
    if (s[0] == '-' && s[1] == '-' && s[2]) {
        const char *eq = strchr(s, '=');
        size_t n = eq ? (size_t)(eq - s) : strlen(s);
        if (n >= sizeof opt_buf) n = sizeof opt_buf - 1;
        memcpy(opt_buf, s, n);
        opt_buf[n] = 0;
        *opt = opt_buf;
        return true;
    }
    if (s[0] == '-' && s[1] && s[1] != '-' && s[2] == 0) {
        snprintf(opt_buf, sizeof opt_buf, "%s", s);
        *opt = opt_buf;
        return true;
    }
    *positional = s;
    return true;
}

const char *cli_value(cli_args *a, const char *opt)
{
    const char *last = a->argv[a->i - 1];
    const char *eq = strchr(last, '=');
    if (last[0] == '-' && last[1] == '-' && eq) return eq + 1;
    if (a->i < a->argc) return a->argv[a->i++];
    cli_usage_error(a, "option %s needs a value", opt);
    return NULL;
}

int cli_usage_error(const cli_args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "graft %s: ", a->cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", a->usage);
    return 2;
}

int cli_fail(const graft_error *e)
{
    if (e->file[0] && e->line > 0)
        fprintf(stderr, "%s:%d:%d: error: %s\n", e->file, e->line, e->col, e->message);
    else
        fprintf(stderr, "graft: error: %s\n", e->message);
    return graft_exit_code(e->status);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_usage(stderr);
        return 2;
    }
    /* a file-size limit (ulimit -f) makes write() fail with EFBIG, reported like a full disk,
     * instead of killing the process mid-file */
    signal(SIGXFSZ, SIG_IGN);
    const char *cmd = argv[1];
    if (cli_is_help(cmd)) {
        cli_usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        char text[4096];
        graft_version_text(text, sizeof text);
        fputs(text, stdout);
        return 0;
    }
    /* the compile-ahead helper (engine/runtime/ahead.c) is this program, started by itself */
    if (strcmp(cmd, "__compile-ahead") == 0) return ahead_helper_main(argc - 2, argv + 2);
    ahead_set_helper("/proc/self/exe");
    for (int i = 0; cli_commands[i].name; i++) {
        if (strcmp(cli_commands[i].name, cmd) != 0) continue;
        for (int j = 2; j < argc; j++)
            if (cli_is_help(argv[j])) {
                fputs(cli_commands[i].usage, stdout);
                return 0;
            }
        return cli_commands[i].run(argc - 2, argv + 2);
    }
    fprintf(stderr, "graft: unknown command '%s'\n\n", cmd);
    cli_usage(stderr);
    return 2;
}
