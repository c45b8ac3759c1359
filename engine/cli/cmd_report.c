/* cmd_report.c — `graft report RUN.json...`: `graft bench` runs from one or many machines merged
 * into side-by-side tables (the library's graft_bench_report, engine/bench/report.c).
 * `graft report RUN_DIR...`: training runs side by side, a table and one page with their curves on
 * the same axes (graft_report_runs_table and graft_report_runs, engine/train/report.c). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char REPORT_USAGE[] =
    "usage: graft report RUN.json... [--baseline DEVICE] [--md] [--html OUT.html]\n"
    "       graft report RUN_DIR... [--md] [--html OUT.html]\n"
    "\n"
    "Training runs (directories `graft train` wrote): one row per run (epochs, best epoch, test\n"
    "accuracy and loss, best validation accuracy, training time) and one HTML page with every\n"
    "run's loss, accuracy and learning-rate curves on the same axes (default OUT.html:\n"
    "report.html in the current directory). Each run directory also holds its own report.html.\n"
    "\n"
    "Merge `graft bench RECIPE --json` runs (one or many devices each, from any machines) into\n"
    "tables: one row per device (identity, peak, cold/warm start, step time, images/s) and one\n"
    "row per layer with each device's forward and backward median and the speed-up against the\n"
    "baseline (baseline time / device time: above 1 is faster). Timings with a spread above 10%\n"
    "carry '!'. The conv and dense layers' achieved GFLOP/s and % of peak follow, with each\n"
    "device's kernel path per convolution (runs without one show '-'). Runs of bench schema 2\n"
    "add the cost model of one step per op family (launches, host syncs, host<->device bytes,\n"
    "device-memory traffic estimate) and, when the run asked for one, the estimate for another\n"
    "device; schema 1 runs show '-' there.\n"
    "\n"
    "  --baseline DEVICE  the device the ratios compare with: a substring of its name, host or\n"
    "                     spec (default: the first device of the first run)\n"
    "  --md               print Markdown tables instead of aligned text\n"
    "  --html OUT.html    also write one HTML page with inline SVG charts (per-layer time\n"
    "                     stacked forward/backward, images/s per device); it loads nothing else\n";

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A library error as `graft report` words it: the JSON file's position when it has one. */
static int report_fail(const graft_error *e)
{
    if (e->file[0] && e->line > 0) return cli_fail(e);
    fprintf(stderr, "graft report: %s\n", e->message);
    return graft_exit_code(e->status);
}

/* `graft report RUN_DIR...`: the table of the runs, and the page with their curves. */
static int report_run_dirs(const char **dirs, int n, bool md, const char *html)
{
    graft_error e = {0};
    const char *out = html ? html : "report.html";
    char *text = NULL;
    graft_status s = graft_report_runs_table(dirs, n, md, &text, &e);
    if (!s) s = graft_report_runs(dirs, n, out, &e);
    if (s) {
        graft_free(text);
        return cli_fail(&e);
    }
    printf(md ? "## Training runs\n\n%s" : "Training runs\n%s", text);
    graft_free(text);
    fflush(stdout);
    fprintf(stderr, "graft report: wrote %s\n", out);
    return 0;
}

int cmd_report(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "report", REPORT_USAGE, argc, argv);
    graft_bench_report_options o = {0};
    const char *opt, *pos;
    bool md = false;
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    int nfiles = 0, code = 0;
    if (!files) return 1;
    while (cli_next(&a, &opt, &pos)) {
        if (!opt) files[nfiles++] = pos;
        else if (strcmp(opt, "--md") == 0) md = true;
        else if (strcmp(opt, "--baseline") == 0 || strcmp(opt, "--html") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) {
                free(files);
                return 2;
            }
            if (strcmp(opt, "--baseline") == 0) o.baseline = v;
            else o.html = v;
        } else {
            free(files);
            return cli_usage_error(&a, "unknown option %s", opt);
        }
    }
    if (nfiles == 0) {
        free(files);
        return cli_usage_error(&a, "expected one or more RUN.json files from `graft bench --json`"
                                   " or training run directories");
    }
    int ndirs = 0;
    for (int i = 0; i < nfiles; i++) ndirs += is_dir(files[i]);
    if (ndirs) {
        if (ndirs != nfiles || o.baseline) {
            free(files);
            return cli_usage_error(&a, ndirs != nfiles
                                           ? "expected either RUN.json files or run directories, "
                                             "not both"
                                           : "--baseline is for RUN.json files from graft bench");
        }
        code = report_run_dirs(files, nfiles, md, o.html);
        free(files);
        return code;
    }
    o.markdown = md;
    char *text = NULL, *notes = NULL;
    graft_error e = {0};
    graft_status s = graft_bench_report(files, nfiles, &o, &text, &notes, &e);
    /* the devices a run could not bench, one a line, before the tables */
    for (char *save = NULL, *l = notes ? strtok_r(notes, "\n", &save) : NULL; l;
         l = strtok_r(NULL, "\n", &save))
        fprintf(stderr, "graft report: %s\n", l);
    if (s) code = report_fail(&e);
    else {
        fputs(text, stdout);
        fflush(stdout);
        if (o.html) fprintf(stderr, "graft report: wrote %s\n", o.html);
    }
    graft_free(text);
    graft_free(notes);
    free(files);
    return code;
}
