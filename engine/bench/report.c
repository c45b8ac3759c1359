/* report.c — `graft report RUN.json...` as a library call (graft_bench_report): `graft bench
 * --json` runs from one or many machines merged into side-by-side tables per device and per layer
 * with ratios against a baseline device, achieved GFLOP/s with each convolution's kernel path and
 * the cost model of a step, as text or Markdown, and one self-contained HTML page with inline SVG
 * charts (no network needed). */
#include "base.h"
#include "bench.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REPORT_SCHEMA_MAX 2 /* the newest bench schema this reader understands (2 added cost_model) */
#define REPORT_MAX_DEVICES 64 /* per run */

typedef struct rdev {
    char label[320];
    const char *host, *file, *spec, *recipe;
    json_t *dev;     /* borrowed from its run */
    json_t *by_name; /* its layers by name (the first of a name), for layer_of */
} rdev;

typedef struct report {
    json_t **runs;
    int nruns;
    rdev *devs;
    int ndevs;
    const char **layers; /* union of layer names in first-seen order (borrowed) */
    const char **types;
    int nlayers, caplayers;
    json_t *seen; /* the names in layers, as keys (a run may have many thousands) */
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
    char text[128];
    snprintf(text, sizeof text, "%s", path);
    json_t *v = o;
    for (char *save = NULL, *w = strtok_r(text, ".", &save); w && v; w = strtok_r(NULL, ".", &save))
        v = json_object_get(v, w);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static json_t *layer_of(const rdev *d, const char *name)
{
    return json_object_get(d->by_name, name);
}

/* name (of type) at the end of r's layer union; false when out of memory */
static bool add_layer(report *r, const char *name, const char *type)
{
    if (r->nlayers == r->caplayers) {
        int cap = r->caplayers ? 2 * r->caplayers : 64;
        const char **nl = realloc(r->layers, (size_t)cap * sizeof *nl);
        if (nl) r->layers = nl;
        const char **nt = nl ? realloc(r->types, (size_t)cap * sizeof *nt) : NULL;
        if (!nt) return false;
        r->types = nt;
        r->caplayers = cap;
    }
    if (json_object_set_new(r->seen, name, json_true())) return false;
    r->layers[r->nlayers] = name;
    r->types[r->nlayers++] = type;
    return true;
}

/* One run file into r: its devices (those that failed in it are named in notes and skipped) and
 * the union of their layers. */
static graft_status load_run(report *r, const char *file, buf *notes, graft_error *e)
{
    json_error_t je;
    json_t *root = json_load_file(file, 0, &je);
    if (!root) {
        if (je.line > 0) return err_at(e, GRAFT_STATUS_BAD_DATA, (graft_mark){file, je.line,
                                       je.column}, "%s", je.text);
        return err_set(e, GRAFT_STATUS_IO, "%s: %s", file, je.text);
    }
    json_t *sv = json_object_get(root, "schema_version");
    json_t *devs = json_object_get(root, "devices");
    graft_status s = GRAFT_OK;
    if (!json_is_integer(sv) || !json_is_array(devs))
        s = err_set(e, GRAFT_STATUS_BAD_DATA,
                    "%s: not a `graft bench --json` run (expected schema_version and devices: "
                    "[...])",
                    file);
    else if (json_integer_value(sv) < 1 || json_integer_value(sv) > REPORT_SCHEMA_MAX)
        s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: schema_version %lld; this graft reads 1 to %d",
                    file, (long long)json_integer_value(sv), REPORT_SCHEMA_MAX);
    else if (json_array_size(devs) > REPORT_MAX_DEVICES)
        s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: more than %d devices", file,
                    REPORT_MAX_DEVICES);
    if (s) {
        json_decref(root);
        return s;
    }
    r->runs[r->nruns++] = root;
    size_t i;
    json_t *d;
    json_array_foreach(devs, i, d)
    {
        if (!json_is_object(d)) continue;
        if (json_is_string(json_object_get(d, "error"))) {
            buf_printf(notes, "%s: device %s failed in that run (%s): skipped\n", file,
                       str_of(d, "spec"), str_of(d, "error"));
            continue;
        }
        rdev *x = &r->devs[r->ndevs];
        x->dev = d;
        if (!(x->by_name = json_object())) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
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
            if ((!json_object_get(x->by_name, name) && json_object_set(x->by_name, name, l)) ||
                (!json_object_get(r->seen, name) && !add_layer(r, name, str_of(l, "type")))) {
                json_decref(x->by_name);
                x->by_name = NULL;
                return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
            }
        }
        r->ndevs++;
    }
    return GRAFT_OK;
}

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0) return true;
    return n == 0;
}

/* ---- tables ---- */
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

/* The step as graft train runs a recipe with a cached frozen prefix (devices[i].feature_cache),
 * a row per device that has one; false (t untouched) when none has. */
static bool cache_table(const report *r, table *t)
{
    static const char *const head[] = {"key",       "device",         "prefix through",
                                       "prefix ms", "prefix images/s", "step ms",
                                       "images/s",  "x baseline"};
    int nc = (int)(sizeof head / sizeof head[0]), n = 0;
    for (int i = 0; i < r->ndevs; i++) n += json_is_object(json_object_get(r->devs[i].dev,
                                                                           "feature_cache"));
    if (!n) return false;
    table_init(t, nc, n + 1);
    for (int c = 0; c < nc; c++) table_set(t, 0, c, "%s", head[c]);
    json_t *bc = json_object_get(r->devs[r->base].dev, "feature_cache");
    double base = num_at(bc, "images_per_second");
    for (int i = 0, row = 1; i < r->ndevs; i++) {
        json_t *fc = json_object_get(r->devs[i].dev, "feature_cache");
        if (!json_is_object(fc)) continue;
        table_set(t, row, 0, "D%d", i + 1);
        table_set(t, row, 1, "%s", r->devs[i].label);
        table_set(t, row, 2, "%s (%.0f layers)", str_of(fc, "through"), num_at(fc, "cut"));
        table_set(t, row, 3, "%.2f%s", num_at(fc, "feature_pass.median_ms"),
                  json_is_true(json_object_get(json_object_get(fc, "feature_pass"), "flagged"))
                      ? "!"
                      : "");
        table_set(t, row, 4, "%.1f", num_at(fc, "feature_images_per_second"));
        table_set(t, row, 5, "%.2f%s", num_at(fc, "step.median_ms"),
                  json_is_true(json_object_get(json_object_get(fc, "step"), "flagged")) ? "!"
                                                                                          : "");
        double ips = num_at(fc, "images_per_second");
        table_set(t, row, 6, "%.1f", ips);
        table_set(t, row++, 7, "%.2f", base > 0 ? ips / base : NAN);
    }
    return true;
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
        json_t *bl = loss ? NULL : layer_of(&r->devs[r->base], r->layers[li]);
        double btot = loss ? num_at(r->devs[r->base].dev, "loss.median_ms")
                           : (bl ? phase_ms(bl, "forward") + phase_ms(bl, "backward") : NAN);
        c = 2;
        for (int i = 0; i < r->ndevs; i++) {
            char f[64], b[64];
            if (loss) {
                fmt_ms(f, sizeof f, json_object_get(r->devs[i].dev, "loss"));
                snprintf(b, sizeof b, "-");
            } else {
                json_t *l = layer_of(&r->devs[i], r->layers[li]);
                fmt_ms(f, sizeof f, l ? json_object_get(l, "forward") : NULL);
                fmt_ms(b, sizeof b, l ? json_object_get(l, "backward") : NULL);
            }
            table_set(t, row, c++, "%s", f);
            table_set(t, row, c++, "%s", b);
        }
        for (int i = 0; i < r->ndevs; i++) {
            if (i == r->base) continue;
            json_t *l = loss ? NULL : layer_of(&r->devs[i], r->layers[li]);
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
            json_t *l = layer_of(&r->devs[i], r->layers[li]);
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


static const char *const PALETTE[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759",
                                      "#76b7b2", "#edc948", "#b07aa1", "#9c755f"};

/* A round axis maximum: 1, 2 or 5 times a power of ten at or above v. */
static double nice_max(double v)
{
    if (!(v > 0)) return 1;
    double p = pow(10, floor(log10(v)));
    return v <= p ? p : v <= 2 * p ? 2 * p : v <= 5 * p ? 5 * p : 10 * p;
}

static void svg_images_per_second(buf *f, const report *r)
{
    int lw = 320, cw = 420, bh = 22, gap = 8, top = 10;
    int h = top + r->ndevs * (bh + gap) + 30;
    double mx = 0;
    for (int i = 0; i < r->ndevs; i++) {
        double v = num_at(r->devs[i].dev, "images_per_second");
        if (v > mx) mx = v;
    }
    mx = nice_max(mx);
    buf_printf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "role=\"img\" aria-label=\"images per second per device\">\n",
            lw + cw + 160, h);
    for (int i = 0; i < r->ndevs; i++) {
        double v = num_at(r->devs[i].dev, "images_per_second");
        int y = top + i * (bh + gap);
        double w = v > 0 ? v / mx * cw : 0;
        buf_printf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"lab\">D%d ", lw - 6,
                y + bh / 2 + 4, i + 1);
        buf_html(f, r->devs[i].label);
        buf_printf(f, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\">"
                   "<title>",
                lw, y, w, bh, PALETTE[i % 8]);
        buf_html(f, r->devs[i].label);
        buf_printf(f, ": %.1f images/s</title></rect>\n", v);
        buf_printf(f, "<text x=\"%.1f\" y=\"%d\" class=\"val\">%.1f%s</text>\n", lw + w + 4,
                y + bh / 2 + 4, v, i == r->base ? " (baseline)" : "");
    }
    int ay = top + r->ndevs * (bh + gap);
    buf_printf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\"/>\n", lw, ay,
            lw + cw, ay);
    for (int k = 0; k <= 4; k++)
        buf_printf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"ax\">%g</text>\n",
                lw + cw * k / 4.0, ay + 16, mx * k / 4);
    buf_printf(f, "</svg>\n");
}

/* Per layer, one bar per device: forward (solid) then backward (light) stacked, in ms. */
static void svg_layers(buf *f, const report *r)
{
    int lw = 150, cw = 560, bh = 12, gap = 14, top = 30 + 16 * r->ndevs;
    double mx = 0;
    int shown = 0;
    for (int li = 0; li < r->nlayers; li++) {
        double rowmax = 0;
        for (int i = 0; i < r->ndevs; i++) {
            json_t *l = layer_of(&r->devs[i], r->layers[li]);
            double v = l ? phase_ms(l, "forward") + phase_ms(l, "backward") : 0;
            if (v > rowmax) rowmax = v;
        }
        if (rowmax > mx) mx = rowmax;
        shown++;
    }
    mx = nice_max(mx);
    int h = top + shown * (r->ndevs * bh + gap) + 30;
    buf_printf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "role=\"img\" aria-label=\"per-layer time, forward and backward\">\n",
            lw + cw + 80, h);
    /* legend, one device a line (long names never overlap): colour per device, forward solid,
     * backward light */
    for (int i = 0; i < r->ndevs; i++) {
        buf_printf(f, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>", lw,
                6 + 16 * i, PALETTE[i % 8]);
        buf_printf(f, "<text x=\"%d\" y=\"%d\" class=\"ax\">D%d ", lw + 14, 15 + 16 * i, i + 1);
        buf_html(f, r->devs[i].label);
        buf_printf(f, "</text>\n");
    }
    buf_printf(f, "<text x=\"%d\" y=\"%d\" class=\"ax\">solid: forward, light: backward</text>\n",
            lw, 15 + 16 * r->ndevs);
    int y = top;
    for (int li = 0; li < r->nlayers; li++) {
        buf_printf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"lab\">", lw - 6,
                y + r->ndevs * bh / 2 + 4);
        buf_html(f, r->layers[li]);
        buf_printf(f, "</text>\n");
        for (int i = 0; i < r->ndevs; i++) {
            json_t *l = layer_of(&r->devs[i], r->layers[li]);
            double fw = l ? phase_ms(l, "forward") : 0, bw = l ? phase_ms(l, "backward") : 0;
            double wf = fw / mx * cw, wb = bw / mx * cw;
            buf_printf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\"><title>",
                    lw, y, wf, bh - 1, PALETTE[i % 8]);
            buf_html(f, r->devs[i].label);
            buf_printf(f, " ");
            buf_html(f, r->layers[li]);
            buf_printf(f, " forward %.3f ms</title></rect>\n", fw);
            buf_printf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\" "
                       "fill-opacity=\"0.45\"><title>",
                    lw + wf, y, wb, bh - 1, PALETTE[i % 8]);
            buf_html(f, r->devs[i].label);
            buf_printf(f, " ");
            buf_html(f, r->layers[li]);
            buf_printf(f, " backward %.3f ms</title></rect>\n", bw);
            buf_printf(f, "<text x=\"%.2f\" y=\"%d\" class=\"val\">%.2f</text>\n", lw + wf + wb + 3,
                    y + bh - 2, fw + bw);
            y += bh;
        }
        y += gap;
    }
    buf_printf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\"/>\n", lw, y - gap / 2,
            lw + cw, y - gap / 2);
    for (int k = 0; k <= 4; k++)
        buf_printf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"ax\">%g%s</text>\n",
                lw + cw * k / 4.0, y + 10, mx * k / 4, k == 4 ? " ms" : "");
    buf_printf(f, "</svg>\n");
}
/* ---- HTML: one file, inline CSS and SVG, XHTML-clean so an XML parser can check it ---- */
static void html_page(buf *f, const report *r, const table *dt, const table *lt, const table *rt,
                      const table *ct, const table *ft)
{
    buf_printf(f, "%s",
               "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
               "<meta charset=\"utf-8\"/>\n<title>graft bench report</title>\n<style>\n"
               "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}\n"
               "table{border-collapse:collapse;margin:8px 0 24px}\n"
               "th,td{border:1px solid #ccc;padding:3px 8px}th{background:#f0f0f0}\n"
               "td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
               "svg text{font:12px system-ui,sans-serif}svg .ax{fill:#555;font-size:11px}\n"
               "svg .val{fill:#333;font-size:11px}\n"
               "</style>\n</head>\n<body>\n<h1>graft bench report</h1>\n<p>");
    for (int i = 0; i < r->nruns; i++) {
        json_t *run = r->runs[i];
        buf_printf(f, "%sRun %d: recipe <b>", i ? "<br/>" : "", i + 1);
        buf_html(f, str_of(json_object_get(run, "recipe"), "name"));
        buf_printf(f, "</b> on host <b>");
        buf_html(f, str_of(run, "host"));
        buf_printf(f, "</b>, batch %.0f, %.0f steps after %.0f warm-up, %s inputs",
                   num_at(run, "settings.batch"), num_at(run, "settings.steps"),
                   num_at(run, "settings.warmup"),
                   str_of(json_object_get(run, "settings"), "input"));
        buf_printf(f, " (");
        buf_html(f, str_of(run, "created"));
        buf_printf(f, ")");
    }
    buf_printf(f, "</p>\n<p>Ratios are baseline time / device time (above 1: faster than the "
                  "baseline <b>");
    buf_html(f, r->devs[r->base].label);
    buf_printf(f, "</b>). A '!' marks a median whose spread (max-min)/median exceeds 10%%.</p>\n");
    buf_printf(f, "<h2>Images per second</h2>\n");
    svg_images_per_second(f, r);
    buf_printf(f, "<h2>Time per layer (ms per training step)</h2>\n");
    svg_layers(f, r);
    buf_printf(f, "<h2>Devices</h2>\n");
    table_html(dt, f);
    if (ft) {
        buf_printf(f, "<h2>As trained, with the feature cache (the frozen prefix once per sample, "
                      "then steps of the layers after it)</h2>\n");
        table_html(ft, f);
    }
    buf_printf(f, "<h2>Layers</h2>\n");
    table_html(lt, f);
    buf_printf(f, "<h2>Achieved GFLOP/s (forward + backward), %% of the probed peak, kernel "
                  "path</h2>\n");
    table_html(rt, f);
    if (ct->cell) {
        buf_printf(f, "<h2>Cost model of one training step per op family</h2>\n<p>Launches, host "
                      "synchronisations and host&#8596;device bytes are counted; device-memory "
                      "traffic is an estimate (docs/bench-schema.md); an ESTIMATE row is a lower "
                      "bound for the device the run was asked about, not a measurement.</p>\n");
        table_html(ct, f);
    }
    buf_printf(f, "</body>\n</html>\n");
}

/* The tables as `graft report` prints them. */
static void text_tables(buf *o, const report *r, bool md, const table *dt, const table *lt,
                        const table *rt, const table *ct, bool cost, const table *ft)
{
    if (md) buf_printf(o, "## Devices (baseline: %s)\n\n", r->devs[r->base].label);
    else buf_printf(o, "Devices (baseline: %s)\n", r->devs[r->base].label);
    table_print(dt, md, o);
    if (ft) {
        buf_printf(o, md ? "\n## As trained, with the feature cache (the frozen prefix once per "
                           "sample, then steps of the layers after it)\n\n"
                         : "\nAs trained, with the feature cache: the frozen prefix once per "
                           "sample, then steps of the layers after it (x baseline: images/s)\n");
        table_print(ft, md, o);
    }
    buf_printf(o, md ? "\n## Layers (median ms per step; Dn x Db = baseline time / device time)\n\n"
                     : "\nLayers (median ms per step, keys as above; Dn x Db = baseline time / "
                       "device time; ! = spread > 10%%)\n");
    table_print(lt, md, o);
    buf_printf(o, md ? "\n## Achieved GFLOP/s (forward + backward) and %% of each device's probed "
                       "peak; kernel paths\n\n"
                     : "\nAchieved GFLOP/s (forward + backward) and %% of each device's probed "
                       "peak; kernel paths\n");
    table_print(rt, md, o);
    if (cost) {
        buf_printf(o, md ? "\n## Cost model of one training step per op family\n\n"
                         : "\nCost model of one training step per op family (launches, syncs, "
                           "bytes: counted; traffic: estimated)\n");
        table_print(ct, md, o);
    } else {
        buf_printf(o, md ? "\n(No cost model: these runs predate bench schema 2.)\n"
                         : "\nNo cost model: these runs predate bench schema 2.\n");
    }
}

graft_status graft_bench_report(const char *const *files, int n,
                                const graft_bench_report_options *opt, char **text, char **notes,
                                graft_error *err)
{
    *text = NULL;
    if (notes) *notes = NULL;
    const graft_bench_report_options none = {0};
    if (!opt) opt = &none;
    if (n < 1)
        return err_set(err, GRAFT_STATUS_USAGE,
                       "expected one or more RUN.json files from `graft bench --json`");
    report r = {0};
    buf out = {0}, nb = {0}, page = {0};
    table dt = {0}, lt = {0}, rt = {0}, ct = {0}, ft = {0};
    graft_status s = GRAFT_OK;
    r.runs = calloc((size_t)n, sizeof *r.runs);
    /* room for every device of every run (load_run grows the layer names as it meets them) */
    r.devs = calloc((size_t)n * REPORT_MAX_DEVICES, sizeof *r.devs);
    r.seen = json_object();
    if (!r.runs || !r.devs || !r.seen) {
        s = err_set(err, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n && !s; i++) s = load_run(&r, files[i], &nb, err);
    if (s) goto done;
    if (r.ndevs == 0) {
        s = err_set(err, GRAFT_STATUS_BAD_DATA, "no device ran successfully in %s%s", files[0],
                    n > 1 ? " or the other runs" : "");
        goto done;
    }
    if (opt->baseline) {
        r.base = -1;
        for (int i = 0; i < r.ndevs && r.base < 0; i++)
            if (contains_ci(r.devs[i].label, opt->baseline) ||
                strcmp(r.devs[i].spec, opt->baseline) == 0)
                r.base = i;
        if (r.base < 0) {
            buf list = {0};
            for (int i = 0; i < r.ndevs; i++)
                buf_printf(&list, "\n  %s (spec %s, %s)", r.devs[i].label, r.devs[i].spec,
                           r.devs[i].file);
            s = err_set(err, GRAFT_STATUS_USAGE,
                        "--baseline %s matches no device; the runs have:%s", opt->baseline,
                        list.data ? list.data : "");
            buf_free(&list);
            goto done;
        }
    }
    device_table(&r, &dt);
    layer_table(&r, &lt);
    rate_table(&r, &rt);
    bool cost = cost_table(&r, &ct), cached = cache_table(&r, &ft);
    if (!dt.cell || !lt.cell || !rt.cell || (cost && !ct.cell) || (cached && !ft.cell)) {
        s = err_set(err, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    text_tables(&out, &r, opt->markdown != 0, &dt, &lt, &rt, &ct, cost, cached ? &ft : NULL);
    if (opt->html) html_page(&page, &r, &dt, &lt, &rt, &ct, cached ? &ft : NULL);
    if (out.failed || nb.failed || page.failed) {
        s = err_set(err, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    /* written aside and renamed: a page is whole or absent */
    if (opt->html && (s = fs_write_atomic(opt->html, page.data, page.len, err))) goto done;
    *text = out.data ? out.data : strdup("");
    out.data = NULL;
    if (notes) {
        *notes = nb.data ? nb.data : strdup("");
        nb.data = NULL;
    }
    if (!*text || (notes && !*notes)) {
        free(*text);
        *text = NULL;
        if (notes) {
            free(*notes);
            *notes = NULL;
        }
        s = err_set(err, GRAFT_STATUS_NOMEM, "out of memory");
    }
done:
    table_free(&dt);
    table_free(&lt);
    table_free(&rt);
    table_free(&ct);
    table_free(&ft);
    buf_free(&out);
    buf_free(&nb);
    buf_free(&page);
    for (int i = 0; i < r.nruns; i++) json_decref(r.runs[i]);
    free(r.runs);
    for (int i = 0; i < r.ndevs; i++) json_decref(r.devs[i].by_name);
    free(r.devs);
    free(r.layers);
    free(r.types);
    json_decref(r.seen);
    return s;
}
