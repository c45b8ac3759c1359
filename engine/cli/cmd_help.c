/* cmd_help.c — `graft help [COMMAND]` and `graft help --man`: the graft(1) manual page rendered to
 * troff from the very texts `--help` prints (the command table's usage strings), the environment
 * the engine reads and the exit status of every graft_status. The build runs `graft help --man`
 * to make build/graft.1, so the manual cannot drift from --help. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

const char HELP_USAGE[] =
    "usage: graft help [COMMAND] [--man]\n"
    "\n"
    "Print the overview or COMMAND's help (the same text as `graft COMMAND --help`).\n"
    "\n"
    "  --man   print the whole manual page graft(1) as troff (the build installs it)\n";

/* The environment the engine and the program read, with what each does. */
static const char *const ENVIRONMENT[][2] = {
    {"GRAFT_DEVICE", "the device when neither --device nor the recipe's device: names one: cpu, "
                     "gpu, nvidia, amd, intel, pocl, P:D or a name substring"},
    {"GRAFT_CACHE_DIR", "where compiled programs, tuning results and decoded copies of gzip'ed "
                        "IDX files are kept (default $XDG_CACHE_HOME/graft, else ~/.cache/graft)"},
    {"GRAFT_NO_CACHE", "1: neither read nor write the on-disk cache (programs, decoded data)"},
    {"GRAFT_TUNE", "off, auto or full: the GEMM tuning a first training run on a device does "
                   "(overrides train.tune)"},
    {"GRAFT_FUSE", "0: no kernel fusion (activations run as their own kernels)"},
    {"GRAFT_XPAD", "0: in evaluation (and a frozen prefix), each convolution pads its own input "
                   "instead of the convolution before it writing it padded (the same results)"},
    {"GRAFT_LEAN_BUILTINS", "0: PoCL builds include clang's whole opencl-c.h instead of the "
                            "declarations of cl/builtins_lean.cl (slower program loads, the same "
                            "results); strict: a kernel needing a builtin missing there fails "
                            "instead of falling back"},
    {"GRAFT_CONV", "direct: the implicit-GEMM convolution instead of im2col + GEMM"},
    {"GRAFT_ATTN", "fused or gemm: attention's per-head products in the fused kernels or as "
                   "GEMMs, instead of the choice by size (attention dropout is always fused)"},
    {"NO_COLOR", "graft prints no colour in any case; progress bars are drawn only when standard "
                 "error is a terminal, otherwise one plain line per epoch is printed"},
};

/* Text to troff: escape backslashes, and a leading '.' or '\'' that troff would take as a request. */
static void troff_text(FILE *to, const char *s, bool literal)
{
    bool bol = true;
    for (; *s; s++) {
        if (bol && (*s == '.' || *s == '\'')) fputs("\\&", to);
        unsigned char u = (unsigned char)*s;
        if (u >= 0xC0) { /* UTF-8 (the help texts say N×C×H×W): troff's \[uXXXX] escape */
            int extra = u >= 0xF0 ? 3 : u >= 0xE0 ? 2 : 1;
            unsigned cp = u & (0x3F >> extra);
            for (int i = 0; i < extra && (s[1] & 0xC0) == 0x80; i++) cp = cp << 6 | (*++s & 0x3F);
            fprintf(to, "\\[u%04X]", cp);
            bol = false;
            continue;
        }
        if (*s == '\\') fputs("\\e", to);
        else if (*s == '-' && !literal) fputs("\\-", to);
        else fputc(*s, to);
        bol = *s == '\n';
    }
    if (!bol) fputc('\n', to);
}

static void man_page(FILE *to)
{
    fprintf(to, ".TH GRAFT 1 \"\" \"graft %s\" \"User Commands\"\n", GRAFT_VERSION);
    fputs(".SH NAME\ngraft \\- transfer learning from YAML recipes, compiled to OpenCL kernels\n", to);
    fputs(".SH SYNOPSIS\n.B graft\n.I command\n[\\fIoptions\\fR]\n.br\n.B graft\n"
          "\\-\\-version | \\-\\-help | help [\\fIcommand\\fR]\n", to);
    fputs(".SH DESCRIPTION\n", to);
    troff_text(to,
               "graft reads a recipe (YAML: model, data, transfer, train sections), checks it, "
               "compiles it into a pipeline of OpenCL kernels and trains, evaluates or predicts "
               "with it. Recipe problems are all reported in one pass as FILE:LINE:COL: error: "
               "MESSAGE. Each command below is shown with the text its --help option prints.",
               false);
    fputs(".SH COMMANDS\n", to);
    for (int i = 0; cli_commands[i].name; i++) {
        fprintf(to, ".SS %s\n", cli_commands[i].name);
        troff_text(to, cli_commands[i].summary, false);
        fputs(".PP\n.nf\n", to);
        troff_text(to, cli_commands[i].usage, true);
        fputs(".fi\n", to);
    }
    fputs(".SH OPTIONS\n.TP\n.B \\-\\-version\nthe library version and the versions of the OpenCL "
          "ICD loader and platforms, CLBlast and libyaml\n.TP\n.B \\-\\-help\nthe list of "
          "commands; after a command, its help\n", to);
    fputs(".SH ENVIRONMENT\n", to);
    for (size_t i = 0; i < sizeof ENVIRONMENT / sizeof ENVIRONMENT[0]; i++) {
        fprintf(to, ".TP\n.B %s\n", ENVIRONMENT[i][0]);
        troff_text(to, ENVIRONMENT[i][1], false);
    }
    fputs(".SH EXIT STATUS\n", to);
    for (int code = 0; code <= 2; code++) {
        fprintf(to, ".TP\n.B %d\n", code);
        const char *sep = "";
        if (code == 0) fputs("success", to);
        for (int s = GRAFT_STATUS_USAGE; s <= GRAFT_STATUS_INTERNAL; s++)
            if (graft_exit_code((graft_status)s) == code) {
                fprintf(to, "%s%s", sep, graft_status_name((graft_status)s));
                sep = ", ";
            }
        fputs(code == 2 ? " (the command line or the recipe is wrong; nothing ran)\n"
              : code == 1 ? " (the run failed: data, files, the OpenCL device, memory)\n"
                          : "\n",
              to);
    }
    fputs(".SH DIAGNOSTICS\n", to);
    troff_text(to,
               "Problems in a recipe or another file that has positions are printed as\n"
               "FILE:LINE:COL: error: MESSAGE, one per line, every problem of the pass at once, "
               "sorted by position; other failures as graft: error: MESSAGE; a wrong command "
               "line as graft COMMAND: MESSAGE followed by the command's usage. Messages say what "
               "was expected and what was found. Progress goes to standard error, results to "
               "standard output.",
               false);
    fputs(".SH FILES\n", to);
    troff_text(to,
               "A training run directory holds model.safetensors (best weights), "
               "last.safetensors and state.safetensors (exact resume), metrics.jsonl (one line "
               "per epoch), summary.json, recipe.yaml (the merged recipe) and report.html (curves, "
               "per-class accuracy, confusion matrix, layout, timing); every file is written "
               "aside and renamed.",
               false);
    fputs(".SH SEE ALSO\n", to);
    troff_text(to, "graft.h (the C API; pkg-config --cflags --libs graft), the Python package "
                   "graft (python/).", false);
}

int cmd_help(int argc, char **argv)
{
    bool man = false;
    const char *cmd = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--man") == 0) man = true;
        else if (argv[i][0] == '-' && !cli_is_help(argv[i])) {
            fprintf(stderr, "graft help: unknown option %s\n%s", argv[i], HELP_USAGE);
            return 2;
        } else if (!cli_is_help(argv[i])) {
            if (cmd) {
                fprintf(stderr, "graft help: unexpected argument '%s'\n%s", argv[i], HELP_USAGE);
                return 2;
            }
            cmd = argv[i];
        }
    }
    if (man) {
        man_page(stdout);
        return 0;
    }
    if (!cmd) {
        cli_usage(stdout);
        return 0;
    }
    for (int i = 0; cli_commands[i].name; i++)
        if (strcmp(cli_commands[i].name, cmd) == 0) {
            fputs(cli_commands[i].usage, stdout);
            return 0;
        }
    fprintf(stderr, "graft help: unknown command '%s'\n", cmd);
    cli_usage(stderr);
    return 2;
}
