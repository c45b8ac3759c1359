/* report.c — report.html of training runs: one self-contained page (inline SVG and CSS, no script,
 * nothing fetched) drawn from the files a run directory already holds (metrics.jsonl, summary.json):
 * loss, accuracy and learning-rate curves per epoch with the unfreeze steps marked, and for one run
 * per-class test accuracy, the confusion matrix, the frozen/trainable layout per phase and timing.
 * Several runs share the curves' axes (`graft report RUN_DIR...`). Written aside and renamed. */
#include "base.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct epoch_row {
    double epoch, train_loss, train_acc, val_loss, val_acc, lr, lr_start, seconds, ips;
} epoch_row;

typedef struct run_data {
    const char *dir;
    json_t *summary; /* NULL when the run has not finished */
    epoch_row *rows;
    int n;
} run_data;

static double num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static graft_status load_run(const char *dir, run_data *r, graft_error *e)
{
    memset(r, 0, sizeof *r);
    r->dir = dir;
    char path[4096], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    graft_status s = fs_read_file(path, 256 << 20, &text, &len, e);
    if (s) {
        err_set(e, GRAFT_STATUS_IO, "%s: not a training run directory (no readable metrics.jsonl)",
                dir);
        return s;
    }
    int cap = 0, lineno = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        json_error_t je;
        json_t *m = json_loads(line, 0, &je);
        if (!json_is_object(m)) {
            json_decref(m);
            free(text);
            return err_set(e, GRAFT_STATUS_BAD_DATA, "%s:%d: expected one JSON object per line",
                           path, lineno);
        }
        if (r->n == cap) {
            cap = cap ? 2 * cap : 64;
            epoch_row *g = realloc(r->rows, (size_t)cap * sizeof *g);
            if (!g) {
                json_decref(m);
                free(text);
                return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
            }
            r->rows = g;
        }
        epoch_row *w = &r->rows[r->n++];
        w->epoch = num(m, "epoch");
        w->train_loss = num(m, "train_loss");
        w->train_acc = num(m, "train_accuracy");
        w->val_loss = num(m, "val_loss");
        w->val_acc = num(m, "val_accuracy");
        w->lr = num(m, "lr");
        w->lr_start = num(m, "lr_start");
        w->seconds = num(m, "seconds");
        w->ips = num(m, "images_per_second");
        json_decref(m);
    }
    free(text);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    if (fs_exists(path)) {
        json_error_t je;
        r->summary = json_load_file(path, 0, &je);
        if (!json_is_object(r->summary))
            return err_set(e, GRAFT_STATUS_BAD_DATA, "%s:%d:%d: %s", path, je.line, je.column,
                           je.text);
    }
    return GRAFT_OK;
}

static void run_free(run_data *r)
{
    free(r->rows);
    json_decref(r->summary);
}

static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                     "#ff7f0e", "#17becf", "#8c564b", "#e377c2"};
#define NCOLORS (int)(sizeof COLORS / sizeof COLORS[0])

/* ---- line charts ---- */
typedef struct series {
    char label[512];
    const char *color;
    bool dashed;
    int n;
    const double *x, *y; /* n points; NAN y values are gaps */
    int stride;          /* in doubles between consecutive points */
} series;

static double nice_step(double span, int want)
{
    double raw = span / want, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

/* A chart of series over x, with vertical marks at the given x (unfreeze steps). */
static void chart(buf *b, const char *title, const char *ylabel, const series *s, int ns,
                  const double *marks, const char *const *mark_labels, int nmarks)
{
    const double W = 640, H = 300, L = 64, R = 16, T = 28, B = 44;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < ns; i++)
        for (int j = 0; j < s[i].n; j++) {
            double x = s[i].x[j * s[i].stride], y = s[i].y[j * s[i].stride];
            if (!isfinite(x) || !isfinite(y)) continue;
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
    buf_printf(b, "<figure><svg xmlns='http://www.w3.org/2000/svg' width='%g' height='%g' "
                  "viewBox='0 0 %g %g' role='img'><title>",
               W, H, W, H);
    buf_html(b, title);
    buf_printf(b, "</title><text x='%g' y='18' class='t'>", L);
    buf_html(b, title);
    buf_printf(b, "</text>");
    if (!isfinite(x0)) {
        buf_printf(b, "<text x='%g' y='%g'>no data</text></svg></figure>\n", L + 10, H / 2);
        return;
    }
    if (x1 - x0 < 1) x1 = x0 + 1;
    if (y1 - y0 < 1e-12) {
        double pad = fabs(y0) > 0 ? fabs(y0) * 0.1 : 1;
        y0 -= pad, y1 += pad;
    }
    double ys = nice_step(y1 - y0, 5), xs = nice_step(x1 - x0, 8);
    if (xs < 1) xs = 1;
    y0 = floor(y0 / ys) * ys, y1 = ceil(y1 / ys) * ys;
#define PX(x) (L + ((x) - x0) / (x1 - x0) * (W - L - R))
#define PY(y) (H - B - ((y) - y0) / (y1 - y0) * (H - T - B))
    buf_printf(b, "<rect x='%g' y='%g' width='%g' height='%g' class='plot'/>", L, T, W - L - R,
               H - T - B);
    for (double y = y0; y <= y1 + ys * 1e-6; y += ys)
        buf_printf(b, "<line x1='%g' x2='%g' y1='%.1f' y2='%.1f' class='grid'/>"
                      "<text x='%g' y='%.1f' class='yt'>%.4g</text>",
                   L, W - R, PY(y), PY(y), L - 4, PY(y) + 4, fabs(y) < ys * 1e-6 ? 0 : y);
    for (double x = ceil(x0 / xs) * xs; x <= x1 + 1e-9; x += xs)
        buf_printf(b, "<line x1='%.1f' x2='%.1f' y1='%g' y2='%g' class='grid'/>"
                      "<text x='%.1f' y='%g' class='xt'>%g</text>",
                   PX(x), PX(x), T, H - B, PX(x), H - B + 14, x);
    buf_printf(b, "<text x='%g' y='%g' class='xl'>epoch</text>", (L + W - R) / 2, H - 8);
    buf_printf(b, "<text transform='translate(14 %g) rotate(-90)' class='xl'>", (T + H - B) / 2);
    buf_html(b, ylabel);
    buf_printf(b, "</text>");
    for (int i = 0; i < nmarks; i++) {
        if (marks[i] < x0 || marks[i] > x1) continue;
        buf_printf(b, "<line x1='%.1f' x2='%.1f' y1='%g' y2='%g' class='mark'/>"
                      "<text x='%.1f' y='%g' class='mk'>",
                   PX(marks[i]), PX(marks[i]), T, H - B, PX(marks[i]) + 3, T + 12 + 11 * (i % 3));
        buf_html(b, mark_labels[i]);
        buf_printf(b, "</text>");
    }
    for (int i = 0; i < ns; i++) {
        bool open = false;
        int pts = 0;
        for (int j = 0; j < s[i].n; j++) {
            double x = s[i].x[j * s[i].stride], y = s[i].y[j * s[i].stride];
            if (!isfinite(x) || !isfinite(y)) {
                if (open) buf_printf(b, "'/>");
                open = false;
                continue;
            }
            if (!open)
                buf_printf(b, "<polyline fill='none' stroke='%s' stroke-width='2'%s points='",
                           s[i].color, s[i].dashed ? " stroke-dasharray='6 4'" : "");
            buf_printf(b, "%.1f,%.1f ", PX(x), PY(y));
            open = true;
            pts++;
        }
        if (open) buf_printf(b, "'/>");
        /* a lone point would not show as a line */
        for (int j = 0; pts <= 2 && j < s[i].n; j++) {
            double x = s[i].x[j * s[i].stride], y = s[i].y[j * s[i].stride];
            if (isfinite(x) && isfinite(y))
                buf_printf(b, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>", PX(x), PY(y),
                           s[i].color);
        }
    }
#undef PX
#undef PY
    buf_printf(b, "</svg><figcaption>");
    for (int i = 0; i < ns; i++) {
        buf_printf(b, "<span class='key'><svg width='28' height='10'><line x1='0' x2='28' y1='5' "
                      "y2='5' stroke='%s' stroke-width='2'%s/></svg>",
                   s[i].color, s[i].dashed ? " stroke-dasharray='6 4'" : "");
        buf_html(b, s[i].label);
        buf_printf(b, "</span>");
    }
    buf_printf(b, "</figcaption></figure>\n");
}

static const char *run_label(const run_data *r)
{
    const char *name = r->summary ? json_string_value(json_object_get(r->summary, "name")) : NULL;
    return name && *name ? name : r->dir;
}

/* The unfreeze steps of the runs (1-based epochs where the trainable set grows), drawn between
 * the epoch before and that epoch. */
static int unfreeze_marks(const run_data *runs, int n, double *marks, char (*labels)[300],
                          int cap)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        json_t *u = runs[i].summary ? json_object_get(runs[i].summary, "unfreeze_epochs") : NULL, *v;
        size_t j;
        json_array_foreach(u, j, v) if (k < cap) {
            snprintf(labels[k], sizeof labels[k], "unfreeze%s%s", n > 1 ? " " : "",
                     n > 1 ? runs[i].dir : "");
            marks[k++] = json_number_value(v) - 0.5;
        }
    }
    return k;
}

static void curves(buf *b, const run_data *runs, int n)
{
    series *s = calloc((size_t)(4 * n), sizeof *s);
    double *lrx = NULL, *lry = NULL, marks[64];
    char (*labels)[300] = calloc(64, sizeof *labels);
    const char *lp[64];
    if (!s || !labels) {
        free(s);
        free(labels);
        b->failed = true;
        return;
    }
    int nm = unfreeze_marks(runs, n, marks, labels, 64);
    for (int i = 0; i < nm; i++) lp[i] = labels[i];
    const int stride = (int)(sizeof(epoch_row) / sizeof(double));
    for (int what = 0; what < 2; what++) {
        int ns = 0;
        for (int i = 0; i < n; i++) {
            const epoch_row *r0 = runs[i].rows;
            for (int v = 0; v < 2; v++) {
                series *t = &s[ns++];
                snprintf(t->label, sizeof t->label, "%s%s%s", n > 1 ? runs[i].dir : "",
                         n > 1 ? ": " : "", v ? "validation" : "training");
                t->color = COLORS[(n > 1 ? i : v) % NCOLORS];
                t->dashed = v && n > 1;
                t->n = runs[i].n;
                t->x = &r0->epoch;
                t->y = what == 0 ? (v ? &r0->val_loss : &r0->train_loss)
                                 : (v ? &r0->val_acc : &r0->train_acc);
                t->stride = stride;
            }
        }
        chart(b, what == 0 ? "Loss per epoch" : "Accuracy per epoch",
              what == 0 ? "loss" : "accuracy", s, ns, marks, lp, nm);
    }
    /* the learning rate at the start and end of each epoch: the schedule's shape (warm-up, steps,
     * cosine) between them is what train.schedule says */
    int most = 0;
    for (int i = 0; i < n; i++) most = runs[i].n > most ? runs[i].n : most;
    lrx = malloc((size_t)(2 * most * n + 1) * sizeof *lrx);
    lry = malloc((size_t)(2 * most * n + 1) * sizeof *lry);
    if (lrx && lry) {
        for (int i = 0; i < n; i++) {
            double *x = lrx + 2 * most * i, *y = lry + 2 * most * i;
            for (int j = 0; j < runs[i].n; j++) {
                const epoch_row *r = &runs[i].rows[j];
                x[2 * j] = r->epoch - 1, y[2 * j] = isfinite(r->lr_start) ? r->lr_start : r->lr;
                x[2 * j + 1] = r->epoch, y[2 * j + 1] = r->lr;
            }
            series *t = &s[i];
            memset(t, 0, sizeof *t);
            snprintf(t->label, sizeof t->label, "%s", n > 1 ? runs[i].dir : "learning rate");
            t->color = COLORS[i % NCOLORS];
            t->n = 2 * runs[i].n;
            t->x = x, t->y = y, t->stride = 1;
        }
        /* here x = epoch - 1 is an epoch's start: the unfreeze step of epoch E sits at E - 1 */
        for (int i = 0; i < nm; i++) marks[i] -= 0.5;
        chart(b, "Learning rate (start and end of each epoch)", "learning rate", s, n, marks, lp,
              nm);
    } else {
        b->failed = true;
    }
    free(lrx);
    free(lry);
    free(labels);
    free(s);
}

static void runs_table(buf *b, const run_data *runs, int n)
{
    buf_printf(b, "<h2>Runs</h2><table><tr><th></th><th>run</th><th>directory</th><th>epochs</th>"
                  "<th>best epoch</th><th>test accuracy</th><th>test loss</th>"
                  "<th>best val accuracy</th><th>train s</th><th>images/s</th><th>device</th></tr>\n");
    for (int i = 0; i < n; i++) {
        const run_data *r = &runs[i];
        double best = NAN;
        for (int j = 0; j < r->n; j++)
            if (isfinite(r->rows[j].val_acc) && !(r->rows[j].val_acc <= best)) best = r->rows[j].val_acc;
        buf_printf(b, "<tr><td><span class='sw' style='background:%s'></span></td><td>",
                   COLORS[i % NCOLORS]);
        buf_html(b, run_label(r));
        buf_printf(b, "</td><td>");
        buf_html(b, r->dir);
        json_t *sm = r->summary;
        buf_printf(b, "</td><td>%d</td>", r->n);
        if (sm) {
            buf_printf(b, "<td>%d</td>", (int)num(sm, "best_epoch"));
            if (isfinite(num(sm, "test_accuracy")))
                buf_printf(b, "<td>%.4f</td><td>%.4f</td>", num(sm, "test_accuracy"), num(sm, "test_loss"));
            else
                buf_printf(b, "<td>-</td><td>-</td>");
        } else {
            buf_printf(b, "<td colspan='3'>unfinished (no summary.json)</td>");
        }
        if (isfinite(best)) buf_printf(b, "<td>%.4f</td>", best);
        else buf_printf(b, "<td>-</td>");
        if (sm) {
            buf_printf(b, "<td>%.1f</td><td>%.0f</td><td>", num(sm, "train_seconds"),
                       num(sm, "images_per_second"));
            buf_html(b, json_string_value(json_object_get(sm, "device")));
            buf_printf(b, "</td>");
        } else {
            buf_printf(b, "<td>-</td><td>-</td><td>-</td>");
        }
        buf_printf(b, "</tr>\n");
    }
    buf_printf(b, "</table>\n");
}

static void per_class(buf *b, json_t *sm)
{
    json_t *pc = json_object_get(sm, "per_class_accuracy"), *cm = json_object_get(sm, "confusion");
    json_t *lab = json_object_get(sm, "class_labels");
    size_t k = json_array_size(pc);
    if (!k || json_array_size(cm) != k) return;
    buf_printf(b, "<h2>Test split: per-class accuracy</h2>\n");
    const double W = 640, rowh = 20, L = 90;
    double H = (double)k * rowh + 30;
    buf_printf(b, "<figure><svg xmlns='http://www.w3.org/2000/svg' width='%g' height='%g' "
                  "viewBox='0 0 %g %g' role='img'><title>Per-class test accuracy</title>",
               W, H, W, H);
    for (int t = 0; t <= 10; t += 2)
        buf_printf(b, "<line x1='%.1f' x2='%.1f' y1='0' y2='%g' class='grid'/>"
                      "<text x='%.1f' y='%g' class='xt'>%.1f</text>",
                   L + t / 10.0 * (W - L - 60), L + t / 10.0 * (W - L - 60), H - 24,
                   L + t / 10.0 * (W - L - 60), H - 8, t / 10.0);
    for (size_t i = 0; i < k; i++) {
        double a = json_number_value(json_array_get(pc, i));
        double y = (double)i * rowh + 2;
        buf_printf(b, "<text x='%g' y='%.1f' class='yt'>class %lld</text>", L - 6, y + 13,
                   (long long)json_integer_value(json_array_get(lab, i)));
        if (json_is_number(json_array_get(pc, i)))
            buf_printf(b, "<rect x='%g' y='%.1f' width='%.1f' height='%g' fill='%s'/>"
                          "<text x='%.1f' y='%.1f'>%.3f</text>",
                       L, y, a * (W - L - 60), rowh - 5, COLORS[0], L + a * (W - L - 60) + 4,
                       y + 12, a);
        else
            buf_printf(b, "<text x='%g' y='%.1f'>no test samples</text>", L + 4, y + 12);
    }
    buf_printf(b, "</svg></figure>\n");
    buf_printf(b, "<h2>Test split: confusion matrix</h2><p>Rows: true class; columns: predicted "
                  "class; shading: the fraction of the row.</p><table class='cm'><tr><th>true \\ "
                  "predicted</th>");
    for (size_t j = 0; j < k; j++)
        buf_printf(b, "<th>%lld</th>", (long long)json_integer_value(json_array_get(lab, j)));
    buf_printf(b, "<th>samples</th></tr>\n");
    for (size_t i = 0; i < k; i++) {
        json_t *row = json_array_get(cm, i);
        long long tot = 0;
        for (size_t j = 0; j < k; j++) tot += json_integer_value(json_array_get(row, j));
        buf_printf(b, "<tr><th>%lld</th>", (long long)json_integer_value(json_array_get(lab, i)));
        for (size_t j = 0; j < k; j++) {
            long long c = json_integer_value(json_array_get(row, j));
            double f = tot ? (double)c / (double)tot : 0;
            buf_printf(b, "<td style='background:rgba(%s,%.3f)%s'>%lld</td>",
                       i == j ? "31,119,180" : "214,39,40", f,
                       f > 0.6 ? ";color:#fff" : "", c);
        }
        buf_printf(b, "<td>%lld</td></tr>\n", tot);
    }
    buf_printf(b, "</table>\n");
}

static void layout(buf *b, json_t *sm)
{
    json_t *layers = json_object_get(sm, "layers"), *phases = json_object_get(sm, "phases");
    if (!json_array_size(layers)) return;
    size_t np = json_array_size(phases);
    buf_printf(b, "<h2>Layers: frozen and trainable</h2><p>One column per phase of training "
                  "(the trainable set changes at each unfreeze step).</p><table><tr><th>#</th>"
                  "<th>layer</th><th>type</th><th>output</th><th>parameters</th>");
    for (size_t p = 0; p < np; p++)
        buf_printf(b, "<th>from epoch %lld<br/>(%lld trainable)</th>",
                   (long long)json_integer_value(json_object_get(json_array_get(phases, p), "from_epoch")),
                   (long long)json_integer_value(json_object_get(json_array_get(phases, p),
                                                                 "trainable_params")));
    buf_printf(b, "</tr>\n");
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l) {
        buf_printf(b, "<tr><td>%zu</td><td>", i);
        buf_html(b, json_string_value(json_object_get(l, "name")));
        buf_printf(b, "%s</td><td>", json_is_true(json_object_get(l, "fresh")) ? " (new head)" : "");
        buf_html(b, json_string_value(json_object_get(l, "type")));
        buf_printf(b, "</td><td>");
        json_t *sh = json_object_get(l, "output_shape"), *d;
        size_t j;
        json_array_foreach(sh, j, d) buf_printf(b, "%s%lld", j ? "&#215;" : "", (long long)json_integer_value(d));
        long long params = json_integer_value(json_object_get(l, "params"));
        buf_printf(b, "</td><td>%lld</td>", params);
        for (size_t p = 0; p < np; p++) {
            json_t *tr = json_object_get(json_array_get(phases, p), "trainable");
            bool t = json_is_true(json_array_get(tr, i));
            buf_printf(b, "%s", !params ? "<td>-</td>" : t ? "<td class='tr'>trainable</td>"
                                                           : "<td class='fr'>frozen</td>");
        }
        buf_printf(b, "</tr>\n");
    }
    buf_printf(b, "</table>\n");
}

static void timing(buf *b, const run_data *r)
{
    json_t *tm = json_object_get(r->summary, "timing");
    buf_printf(b, "<h2>Timing</h2><table><tr><th>part</th><th>seconds</th></tr>\n");
    static const char *const parts[][2] = {
        {"data_seconds", "loading data"},           {"compile_seconds", "compiling (and feature cache)"},
        {"train_seconds", "training epochs"},       {"validation_seconds", "validation"},
        {"test_seconds", "test evaluation"},        {"wall_seconds", "whole run (this process)"}};
    for (size_t i = 0; tm && i < sizeof parts / sizeof parts[0]; i++)
        if (isfinite(num(tm, parts[i][0])))
            buf_printf(b, "<tr><td>%s</td><td>%.2f</td></tr>\n", parts[i][1], num(tm, parts[i][0]));
    buf_printf(b, "<tr><td>training throughput</td><td>%.0f images/s</td></tr>\n",
               num(r->summary, "images_per_second"));
    buf_printf(b, "</table>\n<table><tr><th>epoch</th><th>seconds</th><th>images/s</th>"
                  "<th>lr (end)</th><th>train loss</th><th>train acc</th><th>val loss</th>"
                  "<th>val acc</th></tr>\n");
    for (int j = 0; j < r->n; j++) {
        const epoch_row *e = &r->rows[j];
        buf_printf(b, "<tr><td>%g</td><td>%.2f</td><td>%.0f</td><td>%.4g</td><td>%.4f</td>"
                      "<td>%.4f</td>",
                   e->epoch, e->seconds, e->ips, e->lr, e->train_loss, e->train_acc);
        if (isfinite(e->val_loss)) buf_printf(b, "<td>%.4f</td><td>%.4f</td></tr>\n", e->val_loss, e->val_acc);
        else buf_printf(b, "<td>-</td><td>-</td></tr>\n");
    }
    buf_printf(b, "</table>\n");
}

static void single_header(buf *b, const run_data *r)
{
    json_t *sm = r->summary;
    buf_printf(b, "<dl>");
    double ta = num(sm, "test_accuracy");
    if (isfinite(ta))
        buf_printf(b, "<dt>test accuracy</dt><dd><b>%.4f</b> (loss %.4f)</dd>", ta,
                   num(sm, "test_loss"));
    buf_printf(b, "<dt>epochs</dt><dd>%d run, best %d%s</dd>", (int)num(sm, "epochs_run"),
               (int)num(sm, "best_epoch"),
               json_is_true(json_object_get(sm, "stopped_early")) ? ", stopped early" : "");
    buf_printf(b, "<dt>parameters</dt><dd>%.0f, %.0f trainable at the end</dd>",
               num(sm, "params_total"), num(sm, "params_trainable"));
    buf_printf(b, "<dt>device</dt><dd>");
    buf_html(b, json_string_value(json_object_get(sm, "device")));
    buf_printf(b, "</dd><dt>feature cache</dt><dd>%s: ",
               json_is_true(json_object_get(sm, "feature_cache")) ? "used" : "not used");
    buf_html(b, json_string_value(json_object_get(sm, "feature_cache_reason")));
    buf_printf(b, "</dd></dl>\n");
    json_t *u = json_object_get(sm, "unfreeze_epochs"), *v;
    size_t j;
    if (json_array_size(u)) {
        buf_printf(b, "<p>Unfreeze steps (dotted lines on the curves): ");
        json_array_foreach(u, j, v) buf_printf(b, "%sat epoch %lld", j ? ", " : "", (long long)json_integer_value(v));
        buf_printf(b, ".</p>\n");
    }
}

static const char CSS[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1320px}"
    "h1{font-size:22px}h2{font-size:17px;margin-top:28px}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:right}th{background:#f3f3f3}td:nth-child(2){text-align:left}"
    "figure{display:inline-block;margin:8px 10px 8px 0;vertical-align:top}"
    "figcaption{font-size:12px}.key{margin-right:14px;white-space:nowrap}"
    ".key svg{vertical-align:middle;margin-right:4px}"
    "svg text{font:11px system-ui,sans-serif;fill:#333}svg .t{font-size:13px;font-weight:600}"
    ".yt{text-anchor:end}.xt,.xl{text-anchor:middle}.mk{fill:#777;font-size:10px}"
    ".plot{fill:#fff;stroke:#999}.grid{stroke:#e4e4e4}.mark{stroke:#777;stroke-dasharray:2 3}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dt{color:#666}dd{margin:0}"
    ".sw{display:inline-block;width:12px;height:12px}.tr{background:#e3f1e3}.fr{background:#eee;"
    "color:#777}.cm td{min-width:34px;text-align:center}";

graft_status graft_report_runs(const char *const *dirs, int n, const char *out_html,
                               graft_error *err)
{
    if (n < 1) return err_set(err, GRAFT_STATUS_USAGE, "no run directories");
    run_data *runs = calloc((size_t)n, sizeof *runs);
    if (!runs) return err_set(err, GRAFT_STATUS_NOMEM, "out of memory");
    graft_status s = GRAFT_OK;
    for (int i = 0; i < n && !s; i++) s = load_run(dirs[i], &runs[i], err);
    buf b = {0};
    if (s) goto done;
    buf_printf(&b, "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'/>"
                   "<meta name='generator' content='graft %s'/><title>",
               GRAFT_VERSION);
    if (n == 1) {
        buf_html(&b, run_label(&runs[0]));
        buf_printf(&b, " — graft training report");
    } else {
        buf_printf(&b, "%d graft training runs", n);
    }
    buf_printf(&b, "</title><style>%s</style></head><body>\n<h1>", CSS);
    if (n == 1) {
        buf_html(&b, run_label(&runs[0]));
        buf_printf(&b, "</h1><p>Run directory <code>");
        buf_html(&b, runs[0].dir);
        buf_printf(&b, "</code>%s</p>\n", runs[0].summary ? "" : " — unfinished: no summary.json yet");
        if (runs[0].summary) single_header(&b, &runs[0]);
    } else {
        buf_printf(&b, "%d training runs</h1><p>Curves share their axes; training solid, "
                       "validation dashed, one colour per run.</p>\n", n);
        runs_table(&b, runs, n);
    }
    buf_printf(&b, "<h2>Curves</h2>\n");
    curves(&b, runs, n);
    if (n == 1 && runs[0].summary) {
        per_class(&b, runs[0].summary);
        layout(&b, runs[0].summary);
        timing(&b, &runs[0]);
    }
    buf_printf(&b, "<p><small>Written by graft %s from metrics.jsonl and summary.json.</small></p>"
                   "</body></html>\n",
               GRAFT_VERSION);
    if (b.failed) {
        s = err_set(err, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    s = fs_write_atomic(out_html, b.data, b.len, err);
done:
    buf_free(&b);
    for (int i = 0; i < n; i++) run_free(&runs[i]);
    free(runs);
    return s;
}

graft_status graft_report_runs_table(const char *const *dirs, int n, int markdown, char **text,
                                     graft_error *err)
{
    *text = NULL;
    if (n < 1) return err_set(err, GRAFT_STATUS_USAGE, "no run directories");
    static const char *const head[] = {"run",       "directory", "epochs",       "best epoch",
                                       "test acc",  "test loss", "best val acc", "train s"};
    table t = {0};
    table_init(&t, 8, n + 1);
    if (!t.cell) return err_set(err, GRAFT_STATUS_NOMEM, "out of memory");
    for (int c = 0; c < 8; c++) table_set(&t, 0, c, "%s", head[c]);
    graft_status s = GRAFT_OK;
    for (int i = 0; i < n && !s; i++) {
        run_data r;
        if ((s = load_run(dirs[i], &r, err))) {
            run_free(&r);
            break;
        }
        double best = NAN;
        for (int j = 0; j < r.n; j++)
            if (isfinite(r.rows[j].val_acc) && !(r.rows[j].val_acc <= best)) best = r.rows[j].val_acc;
        json_t *sm = r.summary;
        const char *name = json_string_value(json_object_get(sm, "name"));
        table_set(&t, i + 1, 0, "%s", name && *name ? name : "-");
        table_set(&t, i + 1, 1, "%s", dirs[i]);
        table_set(&t, i + 1, 2, "%d", r.n);
        if (sm) {
            double be = num(sm, "best_epoch");
            if (isfinite(be)) table_set(&t, i + 1, 3, "%.0f", be);
            else table_set(&t, i + 1, 3, "-");
            if (isfinite(num(sm, "test_accuracy"))) {
                table_set(&t, i + 1, 4, "%.4f", num(sm, "test_accuracy"));
                table_set(&t, i + 1, 5, "%.4f", num(sm, "test_loss"));
            } else {
                table_set(&t, i + 1, 4, "-");
                table_set(&t, i + 1, 5, "-");
            }
            table_set(&t, i + 1, 7, "%.1f", num(sm, "train_seconds"));
        } else {
            table_set(&t, i + 1, 3, "unfinished");
            for (int c = 4; c < 8; c++) table_set(&t, i + 1, c, "-");
        }
        if (isfinite(best)) table_set(&t, i + 1, 6, "%.4f", best);
        else table_set(&t, i + 1, 6, "-");
        run_free(&r);
    }
    buf b = {0};
    if (!s) table_print(&t, markdown != 0, &b);
    table_free(&t);
    if (!s && (b.failed || !(*text = b.data ? b.data : strdup(""))))
        s = err_set(err, GRAFT_STATUS_NOMEM, "out of memory");
    else if (!s)
        b.data = NULL;
    buf_free(&b);
    return s;
}
