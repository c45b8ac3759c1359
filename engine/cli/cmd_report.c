/* cmd_report.c — `graft report RUN.json...`: merge `graft bench` runs from one or many machines
 * into side-by-side tables per device and per layer with ratios against a baseline device, as
 * text, Markdown or one self-contained HTML page with inline SVG charts (no network needed).
 * `graft report RUN_DIR...`: training runs side by side, their curves on the same axes (the page
 * comes from the library, graft_report_runs, as every run's own report.html does). */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base.h"
#include "bench.h"

#define REPORT_SCHEMA_MAX 2 /* the newest bench schema this reader understands (2 added cost_model) */

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

typedef struct rdev {
    char label[320];
    const char *host, *file, *spec, *recipe;
    json_t *dev; /* borrowed from its run */
} rdev;

typedef struct report {
    json_t **runs;
    int nruns;
    rdev *devs;
    int ndevs;
    const char **layers; /* union of layer names in first-seen order (borrowed) */
    const char **types;
    int nlayers;
    int base;
} report;

/* ---- reading the runs ---- */
static const char *str_of(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static double num_at(json_t *o, const char *path)
{
    /* "a.b.c" through nested objects; NAN when absent */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = o;
    for (char *save = NULL, *w = strtok_r(buf, ".", &save); w && v; w = strtok_r(NULL, ".", &save))
        v = json_object_get(v, w);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static json_t *layer_of(json_t *dev, const char *name)
{
    json_t *ls = json_object_get(dev, "layers"), *l;
    size_t i;
    json_array_foreach(ls, i, l) if (strcmp(str_of(l, "name"), name) == 0) return l;
    return NULL;
}

static int load_run(report *r, const char *file)
{
    json_error_t je;
    json_t *root = json_load_file(file, 0, &je);
    if (!root) {
        if (je.line > 0) fprintf(stderr, "%s:%d:%d: error: %s\n", file, je.line, je.column, je.text);
        else fprintf(stderr, "graft report: %s: %s\n", file, je.text);
        return 1;
    }
    json_t *sv = json_object_get(root, "schema_version");
    json_t *devs = json_object_get(root, "devices");
    if (!json_is_integer(sv) || !json_is_array(devs)) {
        fprintf(stderr, "graft report: %s: not a `graft bench --json` run (expected schema_version "
                        "and devices: [...])\n",
                file);
        json_decref(root);
        return 1;
    }
    if (json_integer_value(sv) < 1 || json_integer_value(sv) > REPORT_SCHEMA_MAX) {
        fprintf(stderr, "graft report: %s: schema_version %lld; this graft reads 1 to %d\n", file,
                (long long)json_integer_value(sv), REPORT_SCHEMA_MAX);
        json_decref(root);
        return 1;
    }
    r->runs[r->nruns++] = root;
    size_t i;
    json_t *d;
    json_array_foreach(devs, i, d)
    {
        if (!json_is_object(d)) continue;
        if (json_is_string(json_object_get(d, "error"))) {
            fprintf(stderr, "graft report: %s: device %s failed in that run (%s): skipped\n", file,
                    str_of(d, "spec"), str_of(d, "error"));
            continue;
        }
        rdev *x = &r->devs[r->ndevs];
        x->dev = d;
        x->file = file;
        x->host = str_of(root, "host");
        x->spec = str_of(d, "spec");
        x->recipe = str_of(json_object_get(root, "recipe"), "name");
        snprintf(x->label, sizeof x->label, "%s", str_of(json_object_get(d, "identity"), "device"));
        if (!x->label[0]) snprintf(x->label, sizeof x->label, "device %s", x->spec);
        /* the same device twice (two machines, two runs): tell them apart by host, then number */
        for (int j = 0; j < r->ndevs; j++)
            if (strcmp(r->devs[j].label, x->label) == 0) {
                char tmp[320];
                snprintf(tmp, sizeof tmp, "%.200s @ %.100s", x->label, x->host);
                snprintf(x->label, sizeof x->label, "%s", tmp);
                break;
            }
        for (int j = 0, n = 2; j < r->ndevs; j++)
            if (strcmp(r->devs[j].label, x->label) == 0) {
                char tmp[320];
                snprintf(tmp, sizeof tmp, "%.300s #%d", x->label, n++);
                snprintf(x->label, sizeof x->label, "%s", tmp);
                j = -1;
            }
        json_t *ls = json_object_get(d, "layers"), *l;
        size_t k;
        json_array_foreach(ls, k, l)
        {
            const char *name = str_of(l, "name");
            int j;
            for (j = 0; j < r->nlayers; j++)
                if (strcmp(r->layers[j], name) == 0) break;
            if (j == r->nlayers) {
                r->layers[r->nlayers] = name;
                r->types[r->nlayers++] = str_of(l, "type");
            }
        }
        r->ndevs++;
    }
    return 0;
}

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0) return true;
    return n == 0;
}

/* ---- tables: cells as strings, rendered as aligned text, Markdown or HTML ---- */
typedef struct table {
    int cols, rows;
    char **cell; /* rows * cols, row 0 = header */
} table;

static void table_init(table *t, int cols, int rows)
{
    t->cols = cols;
    t->rows = 0;
    t->cell = calloc((size_t)cols * (size_t)rows, sizeof *t->cell);
}

static void table_set(table *t, int row, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void table_set(table *t, int row, int col, const char *fmt, ...)
{
    if (!t->cell) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(t->cell[row * t->cols + col]);
    t->cell[row * t->cols + col] = strdup(buf);
    if (row + 1 > t->rows) t->rows = row + 1;
}

static const char *cell(const table *t, int r, int c)
{
    const char *s = t->cell ? t->cell[r * t->cols + c] : NULL;
    return s ? s : "";
}

static void table_free(table *t)
{
    if (t->cell)
        for (int i = 0; i < t->rows * t->cols; i++) free(t->cell[i]);
    free(t->cell);
}

/* Display width in characters (UTF-8 continuation bytes do not count). */
static int width(const char *s)
{
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static bool numeric(const char *s)
{
    return isdigit((unsigned char)s[0]) || strcmp(s, "-") == 0 ||
           (s[0] == '-' && isdigit((unsigned char)s[1])) || strcmp(s, "nan") == 0;
}

static void table_print(const table *t, bool md, FILE *to)
{
    int *w = calloc((size_t)t->cols, sizeof *w);
    bool *num = calloc((size_t)t->cols, sizeof *num);
    if (!w || !num) {
        free(w);
        free(num);
        return;
    }
    for (int c = 0; c < t->cols; c++) {
        num[c] = true; /* numbers read best right-aligned, names left-aligned */
        for (int r = 0; r < t->rows; r++) {
            if (width(cell(t, r, c)) > w[c]) w[c] = width(cell(t, r, c));
            if (r > 0 && !numeric(cell(t, r, c))) num[c] = false;
        }
    }
    for (int r = 0; r < t->rows; r++) {
        for (int c = 0; c < t->cols; c++) {
            const char *s = cell(t, r, c);
            int pad = w[c] - width(s);
            const char *sep = md ? "| " : c ? "  " : "";
            if (num[c]) fprintf(to, "%s%*s%s", sep, pad, "", s);
            else fprintf(to, "%s%s%*s", sep, s, pad, "");
            if (md) fputc(' ', to);
        }
        fprintf(to, md ? "|\n" : "\n");
        if (r == 0 && md) {
            for (int c = 0; c < t->cols; c++) {
                fputc('|', to);
                for (int k = 0; k < w[c] + 2; k++) fputc(num[c] && k == w[c] + 1 ? ':' : '-', to);
            }
            fprintf(to, "|\n");
        }
    }
    free(w);
    free(num);
}

static void fmt_ms(char *out, size_t n, json_t *phase)
{
    if (!json_is_object(phase) || num_at(phase, "events") == 0) {
        snprintf(out, n, "-");
        return;
    }
    snprintf(out, n, "%.3f%s", num_at(phase, "median_ms"),
             json_is_true(json_object_get(phase, "flagged")) ? "!" : "");
}

static double phase_ms(json_t *layer, const char *phase)
{
    double v = num_at(json_object_get(layer, phase), "median_ms");
    return isnan(v) ? 0 : v;
}

static void device_table(const report *r, table *t)
{
    static const char *const head[] = {"key", "device", "host", "platform", "driver", "CUs", "MHz",
                                       "peak GFLOP/s", "copy GB/s", "cold s", "warm s",
                                       "step ms", "images/s", "x baseline"};
    int nc = (int)(sizeof head / sizeof head[0]);
    table_init(t, nc, r->ndevs + 1);
    for (int c = 0; c < nc; c++) table_set(t, 0, c, "%s", head[c]);
    double base = num_at(r->devs[r->base].dev, "images_per_second");
    for (int i = 0; i < r->ndevs; i++) {
        json_t *d = r->devs[i].dev, *id = json_object_get(d, "identity");
        int row = i + 1;
        table_set(t, row, 0, "D%d", i + 1);
        table_set(t, row, 1, "%s%s", r->devs[i].label, i == r->base ? " (baseline)" : "");
        table_set(t, row, 2, "%s", r->devs[i].host);
        table_set(t, row, 3, "%s", str_of(id, "platform"));
        table_set(t, row, 4, "%s", str_of(id, "driver"));
        table_set(t, row, 5, "%.0f", num_at(id, "compute_units"));
        table_set(t, row, 6, "%.0f", num_at(id, "clock_mhz"));
        table_set(t, row, 7, "%.1f", num_at(d, "peak.best_gflops"));
        table_set(t, row, 8, "%.1f", num_at(d, "peak.copy_gbps"));
        table_set(t, row, 9, "%.2f", num_at(d, "start.cold_seconds"));
        table_set(t, row, 10, "%.2f", num_at(d, "start.warm_seconds"));
        table_set(t, row, 11, "%.2f%s", num_at(d, "step.median_ms"),
                  json_is_true(json_object_get(json_object_get(d, "step"), "flagged")) ? "!" : "");
        double ips = num_at(d, "images_per_second");
        table_set(t, row, 12, "%.1f", ips);
        table_set(t, row, 13, "%.2f", base > 0 ? ips / base : NAN);
    }
}

/* One row per layer: per device forward and backward medians, and (for every device but the
 * baseline) the speed-up of forward + backward against the baseline. */
static void layer_table(const report *r, table *t)
{
    int nc = 2 + 2 * r->ndevs + (r->ndevs - 1);
    table_init(t, nc, r->nlayers + 2);
    table_set(t, 0, 0, "layer");
    table_set(t, 0, 1, "type");
    int c = 2;
    for (int i = 0; i < r->ndevs; i++) {
        table_set(t, 0, c++, "D%d fwd", i + 1);
        table_set(t, 0, c++, "D%d bwd", i + 1);
    }
    for (int i = 0; i < r->ndevs; i++)
        if (i != r->base) table_set(t, 0, c++, "D%d x D%d", i + 1, r->base + 1);
    for (int li = 0; li <= r->nlayers; li++) {
        bool loss = li == r->nlayers;
        int row = li + 1;
        table_set(t, row, 0, "%s", loss ? "loss" : r->layers[li]);
        table_set(t, row, 1, "%s", loss ? "" : r->types[li]);
        json_t *bl = loss ? NULL : layer_of(r->devs[r->base].dev, r->layers[li]);
        double btot = loss ? num_at(r->devs[r->base].dev, "loss.median_ms")
                           : (bl ? phase_ms(bl, "forward") + phase_ms(bl, "backward") : NAN);
        c = 2;
        for (int i = 0; i < r->ndevs; i++) {
            char f[64], b[64];
            if (loss) {
                fmt_ms(f, sizeof f, json_object_get(r->devs[i].dev, "loss"));
                snprintf(b, sizeof b, "-");
            } else {
                json_t *l = layer_of(r->devs[i].dev, r->layers[li]);
                fmt_ms(f, sizeof f, l ? json_object_get(l, "forward") : NULL);
                fmt_ms(b, sizeof b, l ? json_object_get(l, "backward") : NULL);
            }
            table_set(t, row, c++, "%s", f);
            table_set(t, row, c++, "%s", b);
        }
        for (int i = 0; i < r->ndevs; i++) {
            if (i == r->base) continue;
            json_t *l = loss ? NULL : layer_of(r->devs[i].dev, r->layers[li]);
            double tot = loss ? num_at(r->devs[i].dev, "loss.median_ms")
                              : (l ? phase_ms(l, "forward") + phase_ms(l, "backward") : NAN);
            if (tot > 0 && btot > 0) table_set(t, row, c++, "%.2f", btot / tot);
            else table_set(t, row, c++, "-");
        }
    }
}

/* Achieved rates of the layers that do arithmetic (conv2d, dense): forward + backward GFLOP/s
 * and its % of each device's probed peak, so devices of different sizes compare by efficiency;
 * then each device's kernel path for the layer (layers[].kernel: conv2d in runs since it was
 * added, '-' otherwise), which tells a slow layer's fallback from a slow kernel. */
static void rate_table(const report *r, table *t)
{
    table_init(t, 2 + 3 * r->ndevs, r->nlayers + 1);
    table_set(t, 0, 0, "layer");
    table_set(t, 0, 1, "type");
    for (int i = 0; i < r->ndevs; i++) {
        table_set(t, 0, 2 + 2 * i, "D%d GFLOP/s", i + 1);
        table_set(t, 0, 3 + 2 * i, "D%d %% peak", i + 1);
        table_set(t, 0, 2 + 2 * r->ndevs + i, "D%d kernel", i + 1);
    }
    int row = 1;
    for (int li = 0; li < r->nlayers; li++) {
        if (strcmp(r->types[li], "conv2d") != 0 && strcmp(r->types[li], "dense") != 0) continue;
        table_set(t, row, 0, "%s", r->layers[li]);
        table_set(t, row, 1, "%s", r->types[li]);
        for (int i = 0; i < r->ndevs; i++) {
            json_t *l = layer_of(r->devs[i].dev, r->layers[li]);
            double fl = 0, ms = 0;
            for (int ph = 0; l && ph < 2; ph++) {
                json_t *p = json_object_get(l, ph ? "backward" : "forward");
                if (!json_is_object(p)) continue;
                fl += num_at(p, "flops");
                ms += num_at(p, "median_ms");
            }
            double gf = ms > 0 ? fl / (ms / 1e3) / 1e9 : 0;
            double peak = num_at(r->devs[i].dev, "peak.best_gflops");
            if (!l || !(ms > 0)) {
                table_set(t, row, 2 + 2 * i, "-");
                table_set(t, row, 3 + 2 * i, "-");
            } else {
                table_set(t, row, 2 + 2 * i, "%.1f", gf);
                table_set(t, row, 3 + 2 * i, "%.0f", peak > 0 ? 100 * gf / peak : NAN);
            }
            const char *k = l ? json_string_value(json_object_get(l, "kernel")) : NULL;
            table_set(t, row, 2 + 2 * r->ndevs + i, "%s", k ? k : "-");
        }
        row++;
    }
}

/* The cost model of one step per op family (schema 2): per device launches, host syncs, bytes
 * host->device and device->host (counted) and device-memory traffic (estimated); the total row and,
 * where the run asked for it, the estimate for another device. False when no device has one
 * (schema 1 runs). */
static bool cost_table(const report *r, table *t)
{
    int with = 0;
    for (int i = 0; i < r->ndevs; i++) with += json_is_object(json_object_get(r->devs[i].dev, "cost_model"));
    if (!with) return false;
    static const char *const cols[] = {"launches", "syncs", "H2D B", "D2H B", "traffic MB"};
    static const char *const keys[] = {"launches", "syncs", "h2d_bytes", "d2h_bytes", "traffic_bytes"};
    int per = 5, nc = 1 + per * r->ndevs;
    table_init(t, nc, FAM_COUNT + 3);
    table_set(t, 0, 0, "family");
    for (int i = 0; i < r->ndevs; i++)
        for (int k = 0; k < per; k++) table_set(t, 0, 1 + per * i + k, "D%d %s", i + 1, cols[k]);
    int row = 1;
    for (int f = 0; f <= FAM_COUNT; f++) {
        const char *name = f < FAM_COUNT ? BENCH_FAMILY_NAMES[f] : "total";
        bool any = false;
        for (int i = 0; i < r->ndevs; i++) {
            json_t *cm = json_object_get(r->devs[i].dev, "cost_model");
            any = any || json_object_get(f < FAM_COUNT ? json_object_get(cm, "families") : cm,
                                         name);
        }
        if (!any) continue;
        table_set(t, row, 0, "%s", name);
        for (int i = 0; i < r->ndevs; i++) {
            json_t *cm = json_object_get(r->devs[i].dev, "cost_model");
            json_t *c = json_object_get(f < FAM_COUNT ? json_object_get(cm, "families") : cm, name);
            for (int k = 0; k < per; k++) {
                double v = num_at(c, keys[k]);
                if (!cm || isnan(v)) table_set(t, row, 1 + per * i + k, "-");
                else if (k == 4) table_set(t, row, 1 + per * i + k, "%.2f", v / 1e6);
                else table_set(t, row, 1 + per * i + k, "%.0f", v);
            }
        }
        row++;
    }
    /* the estimate: ms per step in the launches column's place, images/s beside it */
    bool est = false;
    for (int i = 0; i < r->ndevs; i++)
        est = est || json_is_object(json_object_get(json_object_get(r->devs[i].dev, "cost_model"),
                                                    "estimate"));
    if (est) {
        table_set(t, row, 0, "ESTIMATE ms, img/s");
        for (int i = 0; i < r->ndevs; i++) {
            json_t *e = json_object_get(json_object_get(r->devs[i].dev, "cost_model"), "estimate");
            for (int k = 0; k < per; k++) table_set(t, row, 1 + per * i + k, "-");
            if (!json_is_object(e)) continue;
            table_set(t, row, 1 + per * i, "%.3f", num_at(e, "step_ms"));
            table_set(t, row, 2 + per * i, "%.0f", num_at(e, "images_per_second"));
        }
    }
    return true;
}

/* ---- HTML: one file, inline CSS and SVG, XHTML-clean so an XML parser can check it ---- */
static void esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t') fputc(*s, f);
        }
    }
}

static void html_table(FILE *f, const table *t)
{
    fputs("<table>\n<thead><tr>", f);
    for (int c = 0; c < t->cols; c++) {
        fputs("<th>", f);
        esc(f, cell(t, 0, c));
        fputs("</th>", f);
    }
    fputs("</tr></thead>\n<tbody>\n", f);
    for (int r = 1; r < t->rows; r++) {
        fputs("<tr>", f);
        for (int c = 0; c < t->cols; c++) {
            const char *s = cell(t, r, c);
            bool num = c >= 1 && numeric(s);
            fprintf(f, "<td%s%s>", num ? " class=\"n\"" : "",
                    strchr(s, '!') ? " title=\"spread above 10%\"" : "");
            esc(f, s);
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</tbody>\n</table>\n", f);
}

static const char *const PALETTE[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759",
                                      "#76b7b2", "#edc948", "#b07aa1", "#9c755f"};

/* A round axis maximum: 1, 2 or 5 times a power of ten at or above v. */
static double nice_max(double v)
{
    if (!(v > 0)) return 1;
    double p = pow(10, floor(log10(v)));
    return v <= p ? p : v <= 2 * p ? 2 * p : v <= 5 * p ? 5 * p : 10 * p;
}

static void svg_images_per_second(FILE *f, const report *r)
{
    int lw = 320, cw = 420, bh = 22, gap = 8, top = 10;
    int h = top + r->ndevs * (bh + gap) + 30;
    double mx = 0;
    for (int i = 0; i < r->ndevs; i++) {
        double v = num_at(r->devs[i].dev, "images_per_second");
        if (v > mx) mx = v;
    }
    mx = nice_max(mx);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "role=\"img\" aria-label=\"images per second per device\">\n",
            lw + cw + 160, h);
    for (int i = 0; i < r->ndevs; i++) {
        double v = num_at(r->devs[i].dev, "images_per_second");
        int y = top + i * (bh + gap);
        double w = v > 0 ? v / mx * cw : 0;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"lab\">D%d ", lw - 6,
                y + bh / 2 + 4, i + 1);
        esc(f, r->devs[i].label);
        fprintf(f, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\">"
                   "<title>",
                lw, y, w, bh, PALETTE[i % 8]);
        esc(f, r->devs[i].label);
        fprintf(f, ": %.1f images/s</title></rect>\n", v);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"val\">%.1f%s</text>\n", lw + w + 4,
                y + bh / 2 + 4, v, i == r->base ? " (baseline)" : "");
    }
    int ay = top + r->ndevs * (bh + gap);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\"/>\n", lw, ay,
            lw + cw, ay);
    for (int k = 0; k <= 4; k++)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"ax\">%g</text>\n",
                lw + cw * k / 4.0, ay + 16, mx * k / 4);
    fputs("</svg>\n", f);
}

/* Per layer, one bar per device: forward (solid) then backward (light) stacked, in ms. */
static void svg_layers(FILE *f, const report *r)
{
    int lw = 150, cw = 560, bh = 12, gap = 14, top = 30 + 16 * r->ndevs;
    double mx = 0;
    int shown = 0;
    for (int li = 0; li < r->nlayers; li++) {
        double rowmax = 0;
        for (int i = 0; i < r->ndevs; i++) {
            json_t *l = layer_of(r->devs[i].dev, r->layers[li]);
            double v = l ? phase_ms(l, "forward") + phase_ms(l, "backward") : 0;
            if (v > rowmax) rowmax = v;
        }
        if (rowmax > mx) mx = rowmax;
        shown++;
    }
    mx = nice_max(mx);
    int h = top + shown * (r->ndevs * bh + gap) + 30;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "role=\"img\" aria-label=\"per-layer time, forward and backward\">\n",
            lw + cw + 80, h);
    /* legend, one device a line (long names never overlap): colour per device, forward solid,
     * backward light */
    for (int i = 0; i < r->ndevs; i++) {
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>", lw,
                6 + 16 * i, PALETTE[i % 8]);
        fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"ax\">D%d ", lw + 14, 15 + 16 * i, i + 1);
        esc(f, r->devs[i].label);
        fputs("</text>\n", f);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"ax\">solid: forward, light: backward</text>\n",
            lw, 15 + 16 * r->ndevs);
    int y = top;
    for (int li = 0; li < r->nlayers; li++) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"lab\">", lw - 6,
                y + r->ndevs * bh / 2 + 4);
        esc(f, r->layers[li]);
        fputs("</text>\n", f);
        for (int i = 0; i < r->ndevs; i++) {
            json_t *l = layer_of(r->devs[i].dev, r->layers[li]);
            double fw = l ? phase_ms(l, "forward") : 0, bw = l ? phase_ms(l, "backward") : 0;
            double wf = fw / mx * cw, wb = bw / mx * cw;
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\"><title>",
                    lw, y, wf, bh - 1, PALETTE[i % 8]);
            esc(f, r->devs[i].label);
            fputs(" ", f);
            esc(f, r->layers[li]);
            fprintf(f, " forward %.3f ms</title></rect>\n", fw);
            fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\" "
                       "fill-opacity=\"0.45\"><title>",
                    lw + wf, y, wb, bh - 1, PALETTE[i % 8]);
            esc(f, r->devs[i].label);
            fputs(" ", f);
            esc(f, r->layers[li]);
            fprintf(f, " backward %.3f ms</title></rect>\n", bw);
            fprintf(f, "<text x=\"%.2f\" y=\"%d\" class=\"val\">%.2f</text>\n", lw + wf + wb + 3,
                    y + bh - 2, fw + bw);
            y += bh;
        }
        y += gap;
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\"/>\n", lw, y - gap / 2,
            lw + cw, y - gap / 2);
    for (int k = 0; k <= 4; k++)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"ax\">%g%s</text>\n",
                lw + cw * k / 4.0, y + 10, mx * k / 4, k == 4 ? " ms" : "");
    fputs("</svg>\n", f);
}

static int write_html(const report *r, const table *dt, const table *lt, const table *rt,
                      const table *ct, const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "graft report: cannot write %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    fputs("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
          "<meta charset=\"utf-8\"/>\n<title>graft bench report</title>\n<style>\n"
          "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}\n"
          "table{border-collapse:collapse;margin:8px 0 24px}\n"
          "th,td{border:1px solid #ccc;padding:3px 8px}th{background:#f0f0f0}\n"
          "td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
          "svg text{font:12px system-ui,sans-serif}svg .ax{fill:#555;font-size:11px}\n"
          "svg .val{fill:#333;font-size:11px}\n"
          "</style>\n</head>\n<body>\n<h1>graft bench report</h1>\n<p>",
          f);
    for (int i = 0; i < r->nruns; i++) {
        json_t *run = r->runs[i];
        fprintf(f, "%sRun %d: recipe <b>", i ? "<br/>" : "", i + 1);
        esc(f, str_of(json_object_get(run, "recipe"), "name"));
        fputs("</b> on host <b>", f);
        esc(f, str_of(run, "host"));
        fprintf(f, "</b>, batch %.0f, %.0f steps after %.0f warm-up, %s inputs",
                num_at(run, "settings.batch"), num_at(run, "settings.steps"),
                num_at(run, "settings.warmup"), str_of(json_object_get(run, "settings"), "input"));
        fputs(" (", f);
        esc(f, str_of(run, "created"));
        fputs(")", f);
    }
    fputs("</p>\n<p>Ratios are baseline time / device time (above 1: faster than the baseline "
          "<b>",
          f);
    esc(f, r->devs[r->base].label);
    fputs("</b>). A '!' marks a median whose spread (max-min)/median exceeds 10%.</p>\n", f);
    fputs("<h2>Images per second</h2>\n", f);
    svg_images_per_second(f, r);
    fputs("<h2>Time per layer (ms per training step)</h2>\n", f);
    svg_layers(f, r);
    fputs("<h2>Devices</h2>\n", f);
    html_table(f, dt);
    fputs("<h2>Layers</h2>\n", f);
    html_table(f, lt);
    fputs("<h2>Achieved GFLOP/s (forward + backward), % of the probed peak, kernel path</h2>\n", f);
    html_table(f, rt);
    if (ct->cell) {
        fputs("<h2>Cost model of one training step per op family</h2>\n<p>Launches, host "
              "synchronisations and host&#8596;device bytes are counted; device-memory traffic is an "
              "estimate (docs/bench-schema.md); an ESTIMATE row is a lower bound for the device the "
              "run was asked about, not a measurement.</p>\n",
              f);
        html_table(f, ct);
    }
    fputs("</body>\n</html>\n", f);
    bool bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        fprintf(stderr, "graft report: cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return 1;
    }
    return 0;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* `graft report RUN_DIR...`: a table of the runs, and the page with their curves. */
static int report_run_dirs(const char **dirs, int n, bool md, const char *html)
{
    table t = {0};
    table_init(&t, 8, n + 1);
    if (!t.cell) return 1;
    const char *head[] = {"run", "directory", "epochs", "best epoch", "test acc", "test loss",
                          "best val acc", "train s"};
    for (int c = 0; c < 8; c++) table_set(&t, 0, c, "%s", head[c]);
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/summary.json", dirs[i]);
        json_t *sm = json_load_file(path, 0, NULL);
        snprintf(path, sizeof path, "%s/metrics.jsonl", dirs[i]);
        FILE *f = fopen(path, "r");
        int epochs = 0;
        double best = NAN;
        char line[4096];
        while (f && fgets(line, sizeof line, f)) {
            json_t *m = json_loads(line, 0, NULL);
            double v = json_number_value(json_object_get(m, "val_accuracy"));
            if (json_is_number(json_object_get(m, "val_accuracy")) && !(v <= best)) best = v;
            epochs++;
            json_decref(m);
        }
        if (f) fclose(f);
        const char *name = json_string_value(json_object_get(sm, "name"));
        table_set(&t, i + 1, 0, "%s", name && *name ? name : "-");
        table_set(&t, i + 1, 1, "%s", dirs[i]);
        table_set(&t, i + 1, 2, "%d", epochs);
        if (sm) {
            json_t *ta = json_object_get(sm, "test_accuracy"), *tl = json_object_get(sm, "test_loss");
            table_set(&t, i + 1, 3, "%lld", (long long)json_integer_value(json_object_get(sm, "best_epoch")));
            if (json_is_number(ta)) table_set(&t, i + 1, 4, "%.4f", json_number_value(ta));
            else table_set(&t, i + 1, 4, "-");
            if (json_is_number(tl)) table_set(&t, i + 1, 5, "%.4f", json_number_value(tl));
            else table_set(&t, i + 1, 5, "-");
            table_set(&t, i + 1, 7, "%.1f", json_number_value(json_object_get(sm, "train_seconds")));
        } else {
            for (int c = 3; c < 8; c++) table_set(&t, i + 1, c, "-");
            table_set(&t, i + 1, 3, "unfinished");
        }
        if (isfinite(best)) table_set(&t, i + 1, 6, "%.4f", best);
        else table_set(&t, i + 1, 6, "-");
        json_decref(sm);
    }
    graft_error e = {0};
    const char *out = html ? html : "report.html";
    graft_status s = graft_report_runs(dirs, n, out, &e);
    if (s) {
        table_free(&t);
        return cli_fail(&e);
    }
    if (md) printf("## Training runs\n\n");
    else printf("Training runs\n");
    table_print(&t, md, stdout);
    table_free(&t);
    fflush(stdout);
    fprintf(stderr, "graft report: wrote %s\n", out);
    return 0;
}

int cmd_report(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "report", REPORT_USAGE, argc, argv);
    const char *baseline = NULL, *html = NULL, *opt, *pos;
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
            if (strcmp(opt, "--baseline") == 0) baseline = v;
            else html = v;
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
        if (ndirs != nfiles || baseline) {
            free(files);
            return cli_usage_error(&a, ndirs != nfiles
                                           ? "expected either RUN.json files or run directories, "
                                             "not both"
                                           : "--baseline is for RUN.json files from graft bench");
        }
        code = report_run_dirs(files, nfiles, md, html);
        free(files);
        return code;
    }
    report r = {0};
    r.runs = calloc((size_t)nfiles, sizeof *r.runs);
    /* room for every device of every run and every layer name */
    size_t maxdev = 0, maxlay = 0;
    for (int i = 0; i < nfiles; i++) {
        maxdev += 64;
        maxlay += 64 * 1024;
    }
    r.devs = calloc(maxdev, sizeof *r.devs);
    r.layers = calloc(maxlay, sizeof *r.layers);
    r.types = calloc(maxlay, sizeof *r.types);
    table dt = {0}, lt = {0}, rt = {0}, ct = {0};
    if (!r.runs || !r.devs || !r.layers || !r.types) {
        code = 1;
        goto done;
    }
    for (int i = 0; i < nfiles && !code; i++) {
        json_t *devs;
        /* a run may list at most 64 devices here: refuse more rather than overflow */
        json_t *peek = json_load_file(files[i], 0, NULL);
        devs = peek ? json_object_get(peek, "devices") : NULL;
        if (devs && json_array_size(devs) > 64) {
            fprintf(stderr, "graft report: %s: more than 64 devices\n", files[i]);
            code = 1;
        }
        json_decref(peek);
        if (!code) code = load_run(&r, files[i]);
    }
    if (code) goto done;
    if (r.ndevs == 0) {
        fprintf(stderr, "graft report: no device ran successfully in %s%s\n", files[0],
                nfiles > 1 ? " or the other runs" : "");
        code = 1;
        goto done;
    }
    if (baseline) {
        r.base = -1;
        for (int i = 0; i < r.ndevs && r.base < 0; i++)
            if (contains_ci(r.devs[i].label, baseline) || strcmp(r.devs[i].spec, baseline) == 0)
                r.base = i;
        if (r.base < 0) {
            fprintf(stderr, "graft report: --baseline %s matches no device; the runs have:\n",
                    baseline);
            for (int i = 0; i < r.ndevs; i++)
                fprintf(stderr, "  %s (spec %s, %s)\n", r.devs[i].label, r.devs[i].spec,
                        r.devs[i].file);
            code = 2;
            goto done;
        }
    }
    device_table(&r, &dt);
    layer_table(&r, &lt);
    rate_table(&r, &rt);
    if (!dt.cell || !lt.cell || !rt.cell) {
        fprintf(stderr, "graft report: out of memory\n");
        code = 1;
        goto done;
    }
    if (md) printf("## Devices (baseline: %s)\n\n", r.devs[r.base].label);
    else printf("Devices (baseline: %s)\n", r.devs[r.base].label);
    table_print(&dt, md, stdout);
    printf(md ? "\n## Layers (median ms per step; Dn x Db = baseline time / device time)\n\n"
              : "\nLayers (median ms per step, keys as above; Dn x Db = baseline time / device "
                "time; ! = spread > 10%%)\n");
    table_print(&lt, md, stdout);
    printf(md ? "\n## Achieved GFLOP/s (forward + backward) and %% of each device's probed peak; "
                "kernel paths\n\n"
              : "\nAchieved GFLOP/s (forward + backward) and %% of each device's probed peak; kernel "
                "paths\n");
    table_print(&rt, md, stdout);
    if (cost_table(&r, &ct)) {
        printf(md ? "\n## Cost model of one training step per op family\n\n"
                  : "\nCost model of one training step per op family (launches, syncs, bytes: "
                    "counted; traffic: estimated)\n");
        table_print(&ct, md, stdout);
    } else
        printf(md ? "\n(No cost model: these runs predate bench schema 2.)\n"
                  : "\nNo cost model: these runs predate bench schema 2.\n");
    fflush(stdout);
    if (html) {
        code = write_html(&r, &dt, &lt, &rt, &ct, html);
        if (!code) fprintf(stderr, "graft report: wrote %s\n", html);
    }
done:
    table_free(&dt);
    table_free(&lt);
    table_free(&rt);
    table_free(&ct);
    for (int i = 0; i < r.nruns; i++) json_decref(r.runs[i]);
    free(r.runs);
    free(r.devs);
    free(r.layers);
    free(r.types);
    free(files);
    return code;
}
