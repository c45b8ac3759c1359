/* sweep.c — `graft sweep`: a recipe's variants over a grid of --set values, the from-scratch
 * baseline always among them, each trained with early stopping on the validation split; frozen
 * features shared across variants (feature_pool); a state file written after every variant so a
 * killed sweep continues; the ranking, the best variant and a negative-transfer verdict. */
#define _POSIX_C_SOURCE 200809L
#include "rank.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SWEEP_FORMAT 1
#define SWEEP_MAX_VARIANTS 512

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void sweep_result_free(sweep_result *res)
{
    for (int i = 0; i < res->nvariants; i++) {
        sweep_variant *v = &res->v[i];
        for (int j = 0; j < v->nsets; j++)
            free(v->sets[j]);
        free(v->sets);
        free(v->picks);
        free(v->train_loss);
        free(v->val_curve_acc);
        free(v->val_curve_loss);
    }
    free(res->v);
    for (int i = 0; i < res->naxes; i++) {
        free(res->axes[i].key);
        for (int j = 0; j < res->axes[i].nvalues; j++)
            free(res->axes[i].values[j]);
        free(res->axes[i].values);
    }
    free(res->axes);
    memset(res, 0, sizeof *res);
}

/* ---- the grid ---- */

/* Where each value of a grid option starts (0-based offset into the option text), for positions. */
typedef struct grid_src {
    const char *option; /* "KEY=[...]" as given */
    int *offsets;
} grid_src;

static void diag_grid(graft_diags *d, const char *option, int col, const char *fmt, const char *a)
{
    char label[1200];
    snprintf(label, sizeof label, "--grid %s", option);
    graft_diags_add(d, (graft_mark){label, 1, col}, fmt, a);
}

/* Split "KEY=[v1, v2, ...]" (or "KEY=v" for one value) at the commas outside brackets, braces and
 * quotes. Problems go to d at their column. */
static bool grid_parse(const char *opt, sweep_axis *ax, grid_src *src, graft_diags *d)
{
    memset(ax, 0, sizeof *ax);
    src->option = opt;
    src->offsets = NULL;
    const char *eq = strchr(opt, '=');
    if (!eq || eq == opt) {
        diag_grid(d, opt, 1, "expected --grid KEY=[V1,V2,...] (e.g. %s)",
                  "--grid train.lr=[1e-3,3e-4]");
        return false;
    }
    ax->key = malloc((size_t)(eq - opt) + 1);
    if (!ax->key) return false;
    memcpy(ax->key, opt, (size_t)(eq - opt));
    ax->key[eq - opt] = 0;
    const char *v = eq + 1;
    size_t len = strlen(v);
    int base = (int)(v - opt); /* 0-based offset of the value part */
    const char *body = v;
    size_t blen = len;
    if (len && v[0] == '[') {
        if (v[len - 1] != ']') {
            diag_grid(d, opt, base + (int)len + 1, "the list of values has no closing ']'%s", "");
            return false;
        }
        body = v + 1;
        blen = len - 2;
    }
    int cap = 8;
    ax->values = malloc((size_t)cap * sizeof *ax->values);
    src->offsets = malloc((size_t)cap * sizeof *src->offsets);
    if (!ax->values || !src->offsets) return false;
    int depth = 0;
    char quote = 0;
    size_t start = 0;
    bool ok = true;
    for (size_t i = 0; i <= blen; i++) {
        char c = i < blen ? body[i] : 0;
        if (quote) {
            if (c == quote) quote = 0;
            if (c) continue;
        }
        if (c == '"' || c == '\'')
            quote = c;
        else if (c == '[' || c == '{')
            depth++;
        else if (c == ']' || c == '}')
            depth--;
        if (!(c == 0 || (c == ',' && depth == 0))) continue;
        size_t a = start, b = i;
        while (a < b && (body[a] == ' ' || body[a] == '\t'))
            a++;
        while (b > a && (body[b - 1] == ' ' || body[b - 1] == '\t'))
            b--;
        int col = base + (int)(body - v) + (int)a + 1;
        if (a == b) {
            diag_grid(d, opt, col, "expected a value here%s", "");
            ok = false;
        } else {
            if (ax->nvalues == cap) {
                cap *= 2;
                char **nv = realloc(ax->values, (size_t)cap * sizeof *nv);
                int *no = realloc(src->offsets, (size_t)cap * sizeof *no);
                if (nv) ax->values = nv;
                if (no) src->offsets = no;
                if (!nv || !no) return false;
            }
            char *val = malloc(b - a + 1);
            if (!val) return false;
            memcpy(val, body + a, b - a);
            val[b - a] = 0;
            src->offsets[ax->nvalues] = col - 1;
            ax->values[ax->nvalues++] = val;
        }
        start = i + 1;
    }
    if (quote || depth != 0) {
        diag_grid(d, opt, base + 1, "unbalanced %s in the list of values",
                  quote ? "quotes" : "brackets");
        ok = false;
    }
    for (int i = 0; ok && i < ax->nvalues; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(ax->values[i], ax->values[j]) == 0) {
                diag_grid(d, opt, src->offsets[i] + 1, "value '%s' is listed twice", ax->values[i]);
                ok = false;
            }
    return ok;
}

static bool is_transfer_key(const char *key)
{
    return strncmp(key, "transfer.", 9) == 0;
}

/* The last component of a key, for labels: transfer.freeze -> freeze. */
static const char *short_key(const char *key)
{
    const char *dot = strrchr(key, '.');
    return dot ? dot + 1 : key;
}

static void slug(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < n; p++) {
        char c = *p;
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '=' || c == '_';
        if (c == ' ')
            c = '_';
        else if (!keep)
            c = '-';
        out[o++] = c;
    }
    out[o] = 0;
}

static bool variant_add_set(sweep_variant *v, const char *s)
{
    char **ns = realloc(v->sets, (size_t)(v->nsets + 1) * sizeof *ns);
    if (!ns) return false;
    v->sets = ns;
    if (!(v->sets[v->nsets] = xstrdup(s))) return false;
    v->nsets++;
    return true;
}

/* Load one variant's recipe (all sets) and move its diagnostics to d, a grid value's problems
 * placed at the value in its --grid option. */
static graft_status variant_check(const sweep_options *o, const char *const *common, int ncommon,
                                  sweep_variant *v, const sweep_result *res, const grid_src *gs,
                                  graft_diags *d, graft_recipe **out)
{
    int n = o->nsets + ncommon + v->nsets;
    const char **sets = malloc((size_t)(n ? n : 1) * sizeof *sets);
    if (!sets) return GRAFT_STATUS_NOMEM;
    int k = 0;
    for (int i = 0; i < o->nsets; i++)
        sets[k++] = o->sets[i];
    for (int i = 0; i < ncommon; i++)
        sets[k++] = common[i];
    for (int i = 0; i < v->nsets; i++)
        sets[k++] = v->sets[i];
    graft_diags mine = {0};
    graft_status s = recipe_load(o->recipe, sets, n, out, &mine);
    free(sets);
    for (int i = 0; i < mine.count; i++) {
        graft_diag *g = &mine.items[i];
        const char *file = g->file;
        int col = g->col;
        char label[1200];
        /* "--set KEY=VALUE" made from a grid value: point into the --grid option instead */
        for (int a = 0; a < res->naxes; a++) {
            const char *pick = v->picks[a];
            if (!pick || !file || strncmp(file, "--set ", 6) != 0) continue;
            size_t kl = strlen(res->axes[a].key);
            if (strncmp(file + 6, res->axes[a].key, kl) != 0 || file[6 + kl] != '=' ||
                strcmp(file + 6 + kl + 1, pick) != 0)
                continue;
            int vi = 0;
            while (vi < res->axes[a].nvalues && strcmp(res->axes[a].values[vi], pick) != 0)
                vi++;
            snprintf(label, sizeof label, "--grid %s", gs[a].option);
            file = label;
            if (col > (int)kl + 1) col = gs[a].offsets[vi] + (col - (int)kl - 1);
            break;
        }
        /* the same problem in many variants is one problem */
        bool dup = false;
        for (int j = 0; j < d->count && !dup; j++)
            dup = d->items[j].line == g->line && d->items[j].col == col &&
                  strcmp(d->items[j].file ? d->items[j].file : "", file ? file : "") == 0 &&
                  strcmp(d->items[j].message, g->message) == 0;
        if (!dup) graft_diags_add(d, (graft_mark){file, g->line, col}, "%s", g->message);
    }
    graft_diags_free(&mine);
    return s;
}

graft_status sweep_plan(const sweep_options *o, sweep_result *res, graft_diags *diags,
                        graft_error *e)
{
    memset(res, 0, sizeof *res);
    res->best = res->baseline = -1;
    graft_status s = GRAFT_OK;
    grid_src *gs = calloc((size_t)(o->ngrids ? o->ngrids : 1), sizeof *gs);
    res->axes = calloc((size_t)(o->ngrids ? o->ngrids : 1), sizeof *res->axes);
    graft_recipe *base = NULL;
    if (!gs || !res->axes) {
        free(gs);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    }
    int before = diags->count;
    for (int i = 0; i < o->ngrids; i++) {
        grid_parse(o->grids[i], &res->axes[i], &gs[i], diags);
        res->naxes++;
        for (int j = 0; j < i; j++)
            if (res->axes[i].key && res->axes[j].key &&
                strcmp(res->axes[i].key, res->axes[j].key) == 0)
                diag_grid(diags, o->grids[i], 1, "%s is already a --grid axis", res->axes[i].key);
    }
    if (diags->count > before) {
        s = GRAFT_STATUS_BAD_RECIPE;
        goto done;
    }
    /* the recipe as written (with --set): the validation split, the output folder */
    {
        graft_diags bd = {0};
        if ((s = recipe_load(o->recipe, o->sets, o->nsets, &base, &bd))) {
            for (int i = 0; i < bd.count; i++)
                graft_diags_add(diags,
                                (graft_mark){bd.items[i].file, bd.items[i].line, bd.items[i].col},
                                "%s", bd.items[i].message);
            int nbd = bd.count;
            graft_diags_free(&bd);
            if (s != GRAFT_STATUS_BAD_RECIPE || nbd == 0) goto done;
            /* go on: the grid's values get checked too, so every problem shows at once (the
             * variants repeat the recipe's own problems; duplicates are dropped) */
            s = GRAFT_OK;
        }
        graft_diags_free(&bd);
    }
    graft_recipe fallback = {.name = "recipe"};
    fallback.data.val_split = 0;
    fallback.transfer.from = "";
    const graft_recipe *bs = base ? base : &fallback;
    char common_buf[4][128];
    const char *common[4];
    int ncommon = 0;
    bool have_val = bs->data.val.present || bs->data.val_split > 0;
    double vs = o->val_split > 0 ? o->val_split : 0.2;
    if (!have_val) {
        snprintf(common_buf[ncommon], sizeof common_buf[0], "data.val_split=%g", vs);
        common[ncommon] = common_buf[ncommon];
        ncommon++;
        snprintf(res->val_note, sizeof res->val_note,
                 "the recipe has no validation split: %g of each class's training images are held "
                 "out (--val-split)",
                 vs);
    } else {
        snprintf(res->val_note, sizeof res->val_note, "the recipe's validation split (%s)",
                 bs->data.val.present ? "data.val" : "data.val_split");
    }
    snprintf(common_buf[ncommon], sizeof common_buf[0],
             "train.early_stopping={monitor: %s, patience: %d}",
             o->metric_loss ? "val_loss" : "val_accuracy", o->patience > 0 ? o->patience : 5);
    common[ncommon] = common_buf[ncommon];
    ncommon++;
    if (o->max_epochs > 0 && (!base || bs->train.epochs > o->max_epochs)) {
        snprintf(common_buf[ncommon], sizeof common_buf[0], "train.epochs=%d", o->max_epochs);
        common[ncommon] = common_buf[ncommon];
        ncommon++;
    }
    if (o->out_dir)
        snprintf(res->out_dir, sizeof res->out_dir, "%s", o->out_dir);
    else
        snprintf(res->out_dir, sizeof res->out_dir, "runs/sweep-%s",
                 bs->name ? bs->name : "recipe");
    /* variants: the product of the axes, then one baseline per combination of the axes outside
     * transfer.* (scratch ignores transfer settings) */
    long total = 1, other = 1;
    for (int a = 0; a < res->naxes; a++) {
        total *= res->axes[a].nvalues;
        if (!is_transfer_key(res->axes[a].key)) other *= res->axes[a].nvalues;
        if (total > SWEEP_MAX_VARIANTS) break;
    }
    if (total + other > SWEEP_MAX_VARIANTS) {
        graft_diags_add(diags, (graft_mark){"--grid", 0, 0},
                        "the grid has %ld variants; at most %d are allowed", total + other,
                        SWEEP_MAX_VARIANTS);
        s = GRAFT_STATUS_BAD_RECIPE;
        goto done;
    }
    int nv = (int)(total + other);
    res->v = calloc((size_t)nv, sizeof *res->v);
    if (!res->v) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    bool scratch_ok = bs->transfer.from != NULL;
    for (int b = 0; b < 2; b++) {
        long count = b == 0 ? other : total;
        if (b == 0 && !scratch_ok) continue; /* the recipe trains from scratch already */
        for (long idx = 0; idx < count; idx++) {
            sweep_variant *v = &res->v[res->nvariants];
            v->baseline = b == 0;
            v->picks = calloc((size_t)(res->naxes ? res->naxes : 1), sizeof *v->picks);
            if (!v->picks) {
                s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
                goto done;
            }
            res->nvariants++;
            char label[512] = "";
            if (v->baseline) snprintf(label, sizeof label, "scratch");
            long rest = idx;
            for (int a = res->naxes - 1; a >= 0; a--) {
                if (v->baseline && is_transfer_key(res->axes[a].key)) continue;
                int vi = (int)(rest % res->axes[a].nvalues);
                rest /= res->axes[a].nvalues;
                v->picks[a] = res->axes[a].values[vi];
            }
            for (int a = 0; a < res->naxes; a++) {
                if (!v->picks[a]) continue;
                char set[2048];
                snprintf(set, sizeof set, "%s=%s", res->axes[a].key, v->picks[a]);
                if (!variant_add_set(v, set)) {
                    s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
                    goto done;
                }
                size_t l = strlen(label);
                snprintf(label + l, sizeof label - l, "%s%s=%s", l ? " " : "",
                         short_key(res->axes[a].key), v->picks[a]);
            }
            if (v->baseline) {
                bool ok = variant_add_set(v, "transfer.from=~") &&
                          variant_add_set(v, "transfer.freeze=none") &&
                          variant_add_set(v, "train.unfreeze=~");
                if (ok && bs->train.l2sp > 0) ok = variant_add_set(v, "train.l2sp=0");
                if (!ok) {
                    s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
                    goto done;
                }
            }
            if (!label[0]) snprintf(label, sizeof label, "recipe as written");
            snprintf(v->label, sizeof v->label, "%s", label);
            snprintf(v->id, sizeof v->id, "%02d", res->nvariants);
            char sl[200];
            slug(label, sl, sizeof sl);
            snprintf(v->dir, sizeof v->dir, "%s/%s-%s", res->out_dir, v->id, sl);
        }
    }
    /* every variant's recipe, every problem, before anything trains */
    before = diags->count;
    for (int i = 0; i < res->nvariants; i++) {
        graft_recipe *r = NULL;
        variant_check(o, common, ncommon, &res->v[i], res, gs, diags, &r);
        if (r && !res->val_images && diags->count == before) {
            /* the validation split's size, for the verdict's noise level */
            dataset tr = {0}, va = {0};
            graft_error de = {0};
            if (data_load(&r->data, r->graph.input, &tr, &va, NULL, &de) == GRAFT_OK)
                res->val_images = va.n;
            dataset_free(&tr);
            dataset_free(&va);
        }
        recipe_free(r);
    }
    /* the common sets go into each variant's own list (the state file and the runs keep them) */
    for (int i = 0; i < res->nvariants && diags->count == before; i++)
        for (int c = ncommon - 1; c >= 0; c--) {
            sweep_variant *v = &res->v[i];
            if (!variant_add_set(v, common[c])) {
                s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
                goto done;
            }
            /* move it to the front: grid values come after (and win) */
            char *t = v->sets[v->nsets - 1];
            memmove(v->sets + 1, v->sets, (size_t)(v->nsets - 1) * sizeof *v->sets);
            v->sets[0] = t;
        }
    if (diags->count > before) s = GRAFT_STATUS_BAD_RECIPE;
done:
    for (int i = 0; i < o->ngrids; i++)
        free(gs[i].offsets);
    free(gs);
    recipe_free(base);
    if (s == GRAFT_STATUS_BAD_RECIPE && e) err_set(e, s, "the sweep's recipes have errors");
    return s;
}

/* ---- results, the state file ---- */

static graft_status read_curves(sweep_variant *v, graft_error *e)
{
    char path[2600], *text;
    size_t n;
    snprintf(path, sizeof path, "%s/metrics.jsonl", v->dir);
    graft_status s = fs_read_file(path, 64 << 20, &text, &n, e);
    if (s) return s;
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    free(v->train_loss);
    free(v->val_curve_acc);
    free(v->val_curve_loss);
    v->train_loss = calloc((size_t)lines + 1, sizeof(double));
    v->val_curve_acc = calloc((size_t)lines + 1, sizeof(double));
    v->val_curve_loss = calloc((size_t)lines + 1, sizeof(double));
    v->nepochs = 0;
    if (!v->train_loss || !v->val_curve_acc || !v->val_curve_loss) {
        free(text);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    }
    char *p = text;
    while (*p && v->nepochs < lines) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        json_t *m = json_loads(p, 0, NULL);
        if (m) {
            json_t *vl = json_object_get(m, "val_loss"), *va = json_object_get(m, "val_accuracy");
            v->train_loss[v->nepochs] = json_number_value(json_object_get(m, "train_loss"));
            v->val_curve_acc[v->nepochs] = json_is_number(va) ? json_number_value(va) : NAN;
            v->val_curve_loss[v->nepochs] = json_is_number(vl) ? json_number_value(vl) : NAN;
            v->nepochs++;
            json_decref(m);
        }
        if (!nl) break;
        p = nl + 1;
    }
    free(text);
    return GRAFT_OK;
}

static json_t *num_or_null(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *curve_json(const double *c, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, num_or_null(c[i]));
    return a;
}

static json_t *signature(const sweep_options *o, const sweep_result *res)
{
    json_t *sig = json_object(), *sets = json_array(), *grids = json_array();
    char rp[PATH_MAX];
    json_object_set_new(sig, "format", json_integer(SWEEP_FORMAT));
    json_object_set_new(sig, "recipe", json_string(realpath(o->recipe, rp) ? rp : o->recipe));
    for (int i = 0; i < o->nsets; i++)
        json_array_append_new(sets, json_string(o->sets[i]));
    for (int i = 0; i < res->naxes; i++) {
        json_t *ax = json_object(), *vals = json_array();
        json_object_set_new(ax, "key", json_string(res->axes[i].key));
        for (int j = 0; j < res->axes[i].nvalues; j++)
            json_array_append_new(vals, json_string(res->axes[i].values[j]));
        json_object_set_new(ax, "values", vals);
        json_array_append_new(grids, ax);
    }
    json_object_set_new(sig, "sets", sets);
    json_object_set_new(sig, "grid", grids);
    json_object_set_new(sig, "metric", json_string(o->metric_loss ? "val_loss" : "val_accuracy"));
    /* the variants' own sets carry the validation split, patience and epochs */
    json_t *vs = json_array();
    for (int i = 0; i < res->nvariants; i++) {
        json_t *one = json_array();
        for (int j = 0; j < res->v[i].nsets; j++)
            json_array_append_new(one, json_string(res->v[i].sets[j]));
        json_array_append_new(vs, one);
    }
    json_object_set_new(sig, "variant_sets", vs);
    return sig;
}

/* Whether a ranks above b: the validation metric, ties (common on a small validation split) broken
 * by the other validation measure (loss for accuracy, accuracy for loss). */
bool sweep_better(const sweep_options *o, const sweep_variant *a, const sweep_variant *b)
{
    if (a->val_metric != b->val_metric)
        return o->metric_loss ? a->val_metric < b->val_metric : a->val_metric > b->val_metric;
    if (o->metric_loss) return a->val_accuracy > b->val_accuracy;
    return a->val_loss < b->val_loss;
}

/* Rank by the validation metric, find the best variant and the best baseline, and the verdict:
 * every transfer variant worse than the best baseline on validation is negative transfer. */
static void sweep_rank(const sweep_options *o, sweep_result *res)
{
    res->best = res->baseline = -1;
    for (int i = 0; i < res->nvariants; i++) {
        sweep_variant *v = &res->v[i];
        v->negative = false;
        v->margin = 0;
        if (!v->done || v->failed || !isfinite(v->val_metric)) continue;
        if (res->best < 0 || sweep_better(o, v, &res->v[res->best])) res->best = i;
        if (v->baseline && (res->baseline < 0 || sweep_better(o, v, &res->v[res->baseline])))
            res->baseline = i;
    }
    if (res->baseline < 0) return;
    double ref = res->v[res->baseline].val_metric;
    for (int i = 0; i < res->nvariants; i++) {
        sweep_variant *v = &res->v[i];
        if (v->baseline || !v->done || v->failed || !isfinite(v->val_metric)) continue;
        double worse = o->metric_loss ? v->val_metric - ref : ref - v->val_metric;
        if (worse > 0) {
            v->negative = true;
            v->margin = worse;
        }
        v->noise = NAN;
        if (!o->metric_loss && res->val_images > 0) {
            double a = v->val_metric, b = ref, n = (double)res->val_images;
            v->noise = 2 * sqrt((a * (1 - a) + b * (1 - b)) / n);
        }
    }
}

static const sweep_options *order_opt;
static const sweep_result *order_res;
static int order_cmp(const void *pa, const void *pb)
{
    const sweep_variant *a = &order_res->v[*(const int *)pa], *b = &order_res->v[*(const int *)pb];
    bool ha = a->done && !a->failed && isfinite(a->val_metric);
    bool hb = b->done && !b->failed && isfinite(b->val_metric);
    if (ha != hb) return ha ? -1 : 1;
    if (!ha) return *(const int *)pa - *(const int *)pb;
    if (sweep_better(order_opt, a, b)) return -1;
    if (sweep_better(order_opt, b, a)) return 1;
    return *(const int *)pa - *(const int *)pb;
}

/* Indexes of the variants, best first. malloc'ed. */
static int *sweep_order(const sweep_options *o, const sweep_result *res)
{
    int *idx = malloc((size_t)(res->nvariants ? res->nvariants : 1) * sizeof *idx);
    if (!idx) return NULL;
    for (int i = 0; i < res->nvariants; i++)
        idx[i] = i;
    order_opt = o;
    order_res = res;
    qsort(idx, (size_t)res->nvariants, sizeof *idx, order_cmp);
    return idx;
}

static graft_status write_state(const sweep_options *o, sweep_result *res, graft_error *e)
{
    sweep_rank(o, res);
    json_t *root = json_object(), *vars = json_array();
    json_object_set_new(root, "signature", signature(o, res));
    json_object_set_new(root, "complete", json_boolean(res->complete));
    json_object_set_new(root, "metric", json_string(o->metric_loss ? "val_loss" : "val_accuracy"));
    json_object_set_new(root, "validation", json_string(res->val_note));
    json_object_set_new(root, "validation_images", json_integer(res->val_images));
    for (int i = 0; i < res->nvariants; i++) {
        const sweep_variant *v = &res->v[i];
        json_t *j = json_object(), *picks = json_object();
        json_object_set_new(j, "id", json_string(v->id));
        json_object_set_new(j, "label", json_string(v->label));
        json_object_set_new(j, "dir", json_string(v->dir));
        json_object_set_new(j, "baseline", json_boolean(v->baseline));
        for (int a = 0; a < res->naxes; a++)
            json_object_set_new(picks, res->axes[a].key,
                                v->picks[a] ? json_string(v->picks[a]) : json_null());
        json_object_set_new(j, "grid", picks);
        json_object_set_new(j, "status",
                            json_string(v->failed ? "failed"
                                        : v->done ? "done"
                                                  : "pending"));
        if (v->failed) json_object_set_new(j, "error", json_string(v->error));
        if (v->done && !v->failed) {
            json_object_set_new(j, "val_metric", num_or_null(v->val_metric));
            json_object_set_new(j, "val_accuracy", num_or_null(v->val_accuracy));
            json_object_set_new(j, "val_loss", num_or_null(v->val_loss));
            json_object_set_new(j, "test_accuracy", num_or_null(v->test_accuracy));
            json_object_set_new(j, "test_loss", num_or_null(v->test_loss));
            json_object_set_new(j, "best_epoch", json_integer(v->best_epoch));
            json_object_set_new(j, "epochs_run", json_integer(v->epochs_run));
            json_object_set_new(j, "stopped_early", json_boolean(v->stopped_early));
            json_object_set_new(j, "feature_cache", json_boolean(v->feature_cache));
            json_object_set_new(j, "seconds", json_real(v->seconds));
            json_object_set_new(j, "params_trainable", json_integer(v->trainable));
            json_object_set_new(j, "negative_transfer", json_boolean(v->negative));
            json_object_set_new(j, "margin", v->negative ? json_real(v->margin) : json_null());
            json_object_set_new(j, "noise", v->baseline ? json_null() : num_or_null(v->noise));
            json_object_set_new(j, "within_noise",
                                v->negative && isfinite(v->noise)
                                    ? json_boolean(v->margin <= v->noise)
                                    : json_null());
            json_t *curves = json_object();
            json_object_set_new(curves, "train_loss", curve_json(v->train_loss, v->nepochs));
            json_object_set_new(curves, "val_accuracy", curve_json(v->val_curve_acc, v->nepochs));
            json_object_set_new(curves, "val_loss", curve_json(v->val_curve_loss, v->nepochs));
            json_object_set_new(j, "curves", curves);
        }
        json_array_append_new(vars, j);
    }
    json_object_set_new(root, "variants", vars);
    int *ord = sweep_order(o, res);
    json_t *ranking = json_array();
    for (int i = 0; ord && i < res->nvariants; i++)
        if (res->v[ord[i]].done && !res->v[ord[i]].failed)
            json_array_append_new(ranking, json_string(res->v[ord[i]].id));
    free(ord);
    json_object_set_new(root, "ranking", ranking);
    json_object_set_new(root, "best",
                        res->best >= 0 ? json_string(res->v[res->best].id) : json_null());
    json_object_set_new(root, "baseline",
                        res->baseline >= 0 ? json_string(res->v[res->baseline].id) : json_null());
    json_object_set_new(root, "feature_pool",
                        json_pack("{s:I, s:I}", "reused", (json_int_t)res->pool_hits, "computed",
                                  (json_int_t)res->pool_misses));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(root);
    if (!text) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    char path[2200];
    snprintf(path, sizeof path, "%s/sweep.json", res->out_dir);
    size_t len = strlen(text);
    text[len] = 0;
    graft_status s = fs_write_atomic(path, text, len, e);
    free(text);
    return s;
}

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A sweep.json of the same sweep in out_dir: take its finished variants. A different sweep there
 * is an error (never overwritten silently). */
static graft_status resume_state(const sweep_options *o, sweep_result *res, graft_error *e)
{
    char path[2200];
    snprintf(path, sizeof path, "%s/sweep.json", res->out_dir);
    if (!fs_exists(path) || o->fresh) return GRAFT_OK;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: %s (line %d): cannot continue this sweep; --fresh starts over", path,
                       je.text, je.line);
    json_t *sig = signature(o, res);
    bool same = json_equal(sig, json_object_get(root, "signature"));
    json_decref(sig);
    if (!same) {
        json_decref(root);
        return err_set(e, GRAFT_STATUS_USAGE,
                       "%s holds a different sweep (recipe, --set, --grid or options differ): use "
                       "another --out, or --fresh to start over there",
                       res->out_dir);
    }
    res->continuing = true;
    json_t *fp = json_object_get(root, "feature_pool");
    res->pool_hits = (long)jnum(fp, "reused") > 0 ? (long)jnum(fp, "reused") : 0;
    res->pool_misses = (long)jnum(fp, "computed") > 0 ? (long)jnum(fp, "computed") : 0;
    json_t *vars = json_object_get(root, "variants");
    for (int i = 0; i < res->nvariants && i < (int)json_array_size(vars); i++) {
        json_t *j = json_array_get(vars, (size_t)i);
        sweep_variant *v = &res->v[i];
        const char *st = json_string_value(json_object_get(j, "status"));
        if (!st || strcmp(st, "done") != 0) continue;
        v->done = true;
        v->val_metric = jnum(j, "val_metric");
        v->val_accuracy = jnum(j, "val_accuracy");
        v->val_loss = jnum(j, "val_loss");
        v->test_accuracy = jnum(j, "test_accuracy");
        v->test_loss = jnum(j, "test_loss");
        v->best_epoch = (int)jnum(j, "best_epoch");
        v->epochs_run = (int)jnum(j, "epochs_run");
        v->stopped_early = json_is_true(json_object_get(j, "stopped_early"));
        v->feature_cache = json_is_true(json_object_get(j, "feature_cache"));
        v->seconds = jnum(j, "seconds");
        v->trainable = (long)jnum(j, "params_trainable");
        if (read_curves(v, e)) {
            /* the run directory is gone: train the variant again */
            v->done = false;
            continue;
        }
        res->resumed++;
    }
    json_decref(root);
    return GRAFT_OK;
}

static void say(const sweep_options *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const sweep_options *o, const char *fmt, ...)
{
    if (!o->note) return;
    char line[3000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->note(o->user, line);
}

static graft_status train_variant(const sweep_options *o, sweep_variant *v, feature_pool *pool,
                                  bool continuing, graft_error *e)
{
    int n = o->nsets + v->nsets;
    const char **sets = malloc((size_t)(n ? n : 1) * sizeof *sets);
    if (!sets) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    for (int i = 0; i < o->nsets; i++)
        sets[i] = o->sets[i];
    for (int i = 0; i < v->nsets; i++)
        sets[o->nsets + i] = v->sets[i];
    graft_diags d = {0};
    graft_recipe *r = NULL;
    graft_status s = recipe_load(o->recipe, sets, n, &r, &d);
    free(sets);
    if (s) {
        err_set(e, s, "%s", d.count ? d.items[0].message : "cannot load the recipe");
        graft_diags_free(&d);
        return s;
    }
    graft_diags_free(&d);
    char state[2600], summary[2600];
    snprintf(state, sizeof state, "%s/state.safetensors", v->dir);
    snprintf(summary, sizeof summary, "%s/summary.json", v->dir);
    json_t *done = continuing && fs_exists(summary) ? json_load_file(summary, 0, NULL) : NULL;
    if (done) {
        /* killed after the run finished but before the state file said so: take its summary */
        recipe_free(r);
        say(o, "  already trained in %s", v->dir);
        v->test_accuracy = jnum(done, "test_accuracy");
        v->test_loss = jnum(done, "test_loss");
        v->best_epoch = (int)jnum(done, "best_epoch");
        v->epochs_run = (int)jnum(done, "epochs_run");
        v->stopped_early = json_is_true(json_object_get(done, "stopped_early"));
        v->feature_cache = json_is_true(json_object_get(done, "feature_cache"));
        v->trainable = (long)jnum(done, "params_trainable");
        v->seconds = jnum(done, "train_seconds");
        json_decref(done);
        goto curves;
    }
    bool resume = continuing && fs_exists(state);
    train_options to = {.device = o->device,
                        .out_dir = v->dir,
                        .resume = resume ? v->dir : NULL,
                        .progress = o->progress,
                        .user = o->user,
                        .pool = pool};
    train_summary sum;
    if (resume) say(o, "  continuing from its last finished epoch in %s", v->dir);
    s = graft_train(r, &to, &sum, e);
    recipe_free(r);
    if (s) return s;
    v->test_accuracy = sum.test_accuracy;
    v->test_loss = sum.test_loss;
    v->best_epoch = sum.best_epoch;
    v->epochs_run = sum.epochs_run;
    v->stopped_early = sum.stopped_early;
    v->feature_cache = sum.feature_cache;
    v->trainable = sum.params_trainable;
    v->seconds = sum.train_seconds;
curves:
    if ((s = read_curves(v, e))) return s;
    int b = v->best_epoch - 1;
    v->val_accuracy = b >= 0 && b < v->nepochs ? v->val_curve_acc[b] : NAN;
    v->val_loss = b >= 0 && b < v->nepochs ? v->val_curve_loss[b] : NAN;
    v->val_metric = o->metric_loss ? v->val_loss : v->val_accuracy;
    v->done = true;
    return GRAFT_OK;
}

graft_status sweep_run(const sweep_options *o, sweep_result *res, graft_error *e)
{
    graft_status s = fs_mkdir_p(res->out_dir, e);
    if (s) return s;
    if ((s = resume_state(o, res, e))) return s;
    if (res->resumed)
        say(o, "continuing the sweep in %s: %d of %d variants already finished", res->out_dir,
            res->resumed, res->nvariants);
    if ((s = write_state(o, res, e))) return s;
    feature_pool pool = {0};
    long hits0 = res->pool_hits, misses0 = res->pool_misses; /* from earlier runs of this sweep */
    double spent = 0;
    for (int i = 0; i < res->nvariants; i++) {
        sweep_variant *v = &res->v[i];
        if (v->done) continue;
        if (o->budget_seconds > 0 && spent >= o->budget_seconds) {
            res->out_of_budget = true;
            say(o, "budget of %.0f s spent: %s and later variants wait (run again to continue)",
                o->budget_seconds, v->label);
            break;
        }
        say(o, "variant %d/%d: %s%s", i + 1, res->nvariants, v->label,
            v->baseline ? " (the from-scratch baseline)" : "");
        double t0 = now_seconds();
        graft_error ve = {0};
        graft_status vs = train_variant(o, v, &pool, res->continuing, &ve);
        spent += now_seconds() - t0;
        if (vs) {
            /* a device or memory failure ends the sweep (resumable); a variant's own failure
             * (e.g. nothing left to train) is its row */
            if (vs == GRAFT_STATUS_OPENCL || vs == GRAFT_STATUS_NOMEM || vs == GRAFT_STATUS_IO) {
                *e = ve;
                s = vs;
                break;
            }
            v->done = v->failed = true;
            snprintf(v->error, sizeof v->error, "%s", ve.message);
            say(o, "  failed: %s", ve.message);
        } else {
            say(o, "  val %s %.4f at epoch %d of %d%s, test accuracy %.4f",
                o->metric_loss ? "loss" : "accuracy", v->val_metric, v->best_epoch, v->epochs_run,
                v->stopped_early ? " (stopped early)" : "", v->test_accuracy);
        }
        res->pool_hits = hits0 + pool.hits;
        res->pool_misses = misses0 + pool.misses;
        graft_status ws = write_state(o, res, e);
        if (ws) {
            s = ws;
            break;
        }
    }
    feature_pool_free(&pool);
    res->complete = true;
    for (int i = 0; i < res->nvariants; i++)
        res->complete = res->complete && res->v[i].done;
    graft_status ws = write_state(o, res, s ? NULL : e);
    if (!s) s = ws;
    char *html = sweep_html(o, res);
    if (html) {
        char path[2200];
        snprintf(path, sizeof path, "%s/sweep.html", res->out_dir);
        graft_status hs = fs_write_atomic(path, html, strlen(html), s ? NULL : e);
        if (!s) s = hs;
        free(html);
    }
    return s;
}

/* ---- the HTML page: inline SVG, no scripts, no external resources ---- */

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define NPAL ((int)(sizeof palette / sizeof palette[0]))

typedef struct chart {
    double x0, y0, w, h; /* plot area inside the SVG */
    double xmin, xmax, ymin, ymax;
} chart;

static double cx(const chart *c, double x)
{
    return c->x0 + (c->xmax > c->xmin ? (x - c->xmin) / (c->xmax - c->xmin) : 0.5) * c->w;
}
static double cy(const chart *c, double y)
{
    return c->y0 + c->h - (c->ymax > c->ymin ? (y - c->ymin) / (c->ymax - c->ymin) : 0.5) * c->h;
}

static void chart_frame(buf *b, const chart *c, const char *ylabel, const char *xlabel, int yticks,
                        bool percent)
{
    buf_printf(b,
               "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff\" "
               "stroke=\"#999\"/>\n",
               c->x0, c->y0, c->w, c->h);
    for (int i = 0; i <= yticks; i++) {
        double v = c->ymin + (c->ymax - c->ymin) * i / yticks, y = cy(c, v);
        buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                   c->x0, y, c->x0 + c->w, y);
        if (percent)
            buf_printf(
                b,
                "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.0f%%</text>\n",
                c->x0 - 4, y + 4, 100 * v);
        else
            buf_printf(
                b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.3g</text>\n",
                c->x0 - 4, y + 4, v);
    }
    buf_printf(b,
               "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" transform=\"rotate(-90 %.1f %.1f)\" "
               "text-anchor=\"middle\">",
               c->x0 - 48, c->y0 + c->h / 2, c->x0 - 48, c->y0 + c->h / 2);
    buf_html(b, ylabel);
    buf_printf(b, "</text>\n<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">",
               c->x0 + c->w / 2, c->y0 + c->h + 40);
    buf_html(b, xlabel);
    buf_printf(b, "</text>\n");
}

static bool ok_variant(const sweep_variant *v)
{
    return v->done && !v->failed;
}

/* Validation and test accuracy against the freeze axis (or each variant when the grid has no
 * transfer.freeze): one pair of lines per combination of the other axes, scratch dashed. */
static void chart_freeze(buf *b, const sweep_result *res)
{
    int fa = -1;
    for (int a = 0; a < res->naxes; a++)
        if (strcmp(res->axes[a].key, "transfer.freeze") == 0) fa = a;
    double lo = 1, hi = 0;
    for (int i = 0; i < res->nvariants; i++) {
        const sweep_variant *v = &res->v[i];
        if (!ok_variant(v)) continue;
        double xs[2] = {v->val_accuracy, v->test_accuracy};
        for (int k = 0; k < 2; k++)
            if (isfinite(xs[k])) {
                lo = xs[k] < lo ? xs[k] : lo;
                hi = xs[k] > hi ? xs[k] : hi;
            }
    }
    if (hi < lo) {
        lo = 0;
        hi = 1;
    }
    /* ticks every 10 points (every 5 when the range is narrow) */
    double step = hi - lo > 0.3 ? 0.1 : 0.05;
    lo = floor(lo / step + 1e-9) * step;
    hi = ceil(hi / step - 1e-9) * step;
    if (hi - lo < step) hi = lo + step;
    int ticks = (int)lround((hi - lo) / step);
    int npos = 0;
    const char *names[SWEEP_MAX_VARIANTS];
    if (fa >= 0) {
        for (int j = 0; j < res->axes[fa].nvalues; j++)
            names[npos++] = res->axes[fa].values[j];
    } else {
        for (int i = 0; i < res->nvariants; i++)
            if (!res->v[i].baseline) names[npos++] = res->v[i].label;
    }
    double W = 860, H = 360;
    chart c = {.x0 = 70,
               .y0 = 20,
               .w = 520,
               .h = 260,
               .xmin = -0.5,
               .xmax = npos - 0.5,
               .ymin = lo,
               .ymax = hi};
    buf_printf(b,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"accuracy vs freeze depth\">\n",
               W, H, W, H);
    chart_frame(b, &c, "accuracy", fa >= 0 ? "transfer.freeze (frozen through)" : "variant", ticks,
                true);
    for (int j = 0; j < npos; j++) {
        buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">",
                   cx(&c, j), c.y0 + c.h + 16);
        buf_html(b, names[j]);
        buf_printf(b, "</text>\n");
    }
    /* series: combinations of the other axes; each variant belongs to the one its picks make */
    int series = 0;
    double ly = c.y0 + 8;
    for (int i = 0; i < res->nvariants; i++) {
        const sweep_variant *v = &res->v[i];
        if (v->baseline) continue;
        /* the first variant of a combination starts its series */
        bool first = true;
        for (int k = 0; k < i && first; k++) {
            if (res->v[k].baseline) continue;
            bool same = true;
            for (int a = 0; a < res->naxes && same && fa >= 0; a++)
                if (a != fa) same = strcmp(res->v[k].picks[a], v->picks[a]) == 0;
            first = !same;
        }
        if (!first) continue;
        char rest[512] = "";
        for (int a = 0; a < res->naxes; a++) {
            if (a == fa) continue;
            size_t l = strlen(rest);
            snprintf(rest + l, sizeof rest - l, "%s%s=%s", l ? " " : "",
                     short_key(res->axes[a].key), v->picks[a]);
        }
        const char *col = palette[series % NPAL];
        for (int kind = 0; kind < 2; kind++) {
            buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                       col, kind ? " stroke-dasharray=\"1 0\" opacity=\"0.55\"" : "");
            for (int k = 0; k < res->nvariants; k++) {
                const sweep_variant *u = &res->v[k];
                if (u->baseline || !ok_variant(u)) continue;
                bool same = true;
                for (int a = 0; a < res->naxes && same && fa >= 0; a++)
                    if (a != fa) same = strcmp(u->picks[a], v->picks[a]) == 0;
                if (!same) continue;
                int pos = 0;
                if (fa >= 0) {
                    while (pos < npos && strcmp(names[pos], u->picks[fa]) != 0)
                        pos++;
                } else {
                    while (pos < npos && strcmp(names[pos], u->label) != 0)
                        pos++;
                }
                double y = kind ? u->test_accuracy : u->val_accuracy;
                if (isfinite(y)) buf_printf(b, "%.1f,%.1f ", cx(&c, pos), cy(&c, y));
            }
            buf_printf(b, "\"/>\n");
            for (int k = 0; k < res->nvariants; k++) {
                const sweep_variant *u = &res->v[k];
                if (u->baseline || !ok_variant(u)) continue;
                bool same = true;
                for (int a = 0; a < res->naxes && same && fa >= 0; a++)
                    if (a != fa) same = strcmp(u->picks[a], v->picks[a]) == 0;
                if (!same) continue;
                int pos = 0;
                if (fa >= 0) {
                    while (pos < npos && strcmp(names[pos], u->picks[fa]) != 0)
                        pos++;
                } else {
                    while (pos < npos && strcmp(names[pos], u->label) != 0)
                        pos++;
                }
                double y = kind ? u->test_accuracy : u->val_accuracy;
                if (!isfinite(y)) continue;
                if (kind)
                    buf_printf(
                        b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"%s\"/>\n",
                        cx(&c, pos) - 4, cy(&c, y) - 4, col);
                else
                    buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\"%s/>\n",
                               cx(&c, pos), cy(&c, y), col,
                               u->negative ? " stroke=\"#000\" stroke-width=\"2\"" : "");
            }
        }
        buf_printf(b,
                   "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\"/><text x=\"%.1f\" "
                   "y=\"%.1f\" font-size=\"11\">validation%s%s</text>\n",
                   c.x0 + c.w + 14, ly, col, c.x0 + c.w + 24, ly + 4, rest[0] ? " " : "", rest);
        buf_printf(b,
                   "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"%s\"/><text "
                   "x=\"%.1f\" y=\"%.1f\" font-size=\"11\">test%s%s</text>\n",
                   c.x0 + c.w + 10, ly + 14, col, c.x0 + c.w + 24, ly + 22, rest[0] ? " " : "",
                   rest);
        ly += 36;
        series++;
        if (fa < 0) break; /* one series over all variants */
    }
    for (int i = 0; i < res->nvariants; i++) {
        const sweep_variant *v = &res->v[i];
        if (!v->baseline || !ok_variant(v)) continue;
        double y = cy(&c, v->val_accuracy);
        buf_printf(b,
                   "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\" "
                   "stroke-dasharray=\"6 4\"/>\n",
                   c.x0, y, c.x0 + c.w, y);
        buf_printf(b,
                   "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\" "
                   "stroke-dasharray=\"6 4\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">",
                   c.x0 + c.w + 6, ly, c.x0 + c.w + 22, ly, c.x0 + c.w + 24, ly + 4);
        buf_html(b, v->label);
        buf_printf(b, " (validation)</text>\n");
        ly += 18;
    }
    buf_printf(b, "</svg>\n");
}

/* Validation accuracy (or loss) per epoch, one line per variant. */
static void chart_curves(buf *b, const sweep_options *o, const sweep_result *res)
{
    int maxe = 1;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < res->nvariants; i++) {
        const sweep_variant *v = &res->v[i];
        if (!ok_variant(v)) continue;
        maxe = v->nepochs > maxe ? v->nepochs : maxe;
        const double *cv = o->metric_loss ? v->val_curve_loss : v->val_curve_acc;
        for (int k = 0; k < v->nepochs; k++)
            if (isfinite(cv[k])) {
                lo = cv[k] < lo ? cv[k] : lo;
                hi = cv[k] > hi ? cv[k] : hi;
            }
    }
    if (!(hi >= lo)) {
        lo = 0;
        hi = 1;
    }
    int ticks = 5;
    if (!o->metric_loss) {
        double step = hi - lo > 0.3 ? 0.1 : 0.05;
        lo = floor(lo / step + 1e-9) * step;
        hi = ceil(hi / step - 1e-9) * step;
        if (hi - lo < step) hi = lo + step;
        ticks = (int)lround((hi - lo) / step);
    }
    if (hi - lo < 1e-6) hi = lo + 0.05;
    double W = 860, H = 380;
    chart c = {.x0 = 70,
               .y0 = 20,
               .w = 520,
               .h = 280,
               .xmin = 1,
               .xmax = maxe > 1 ? maxe : 2,
               .ymin = lo,
               .ymax = hi};
    buf_printf(b,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"learning curves\">\n",
               W, H, W, H);
    chart_frame(b, &c, o->metric_loss ? "validation loss" : "validation accuracy", "epoch", ticks,
                !o->metric_loss);
    int step = maxe > 20 ? 5 : maxe > 10 ? 2 : 1;
    for (int ep = 1; ep <= maxe; ep += step)
        buf_printf(
            b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%d</text>\n",
            cx(&c, ep), c.y0 + c.h + 16, ep);
    int k = 0;
    for (int i = 0; i < res->nvariants; i++) {
        const sweep_variant *v = &res->v[i];
        if (!ok_variant(v)) continue;
        const char *col = v->baseline ? "#000" : palette[k % NPAL];
        const double *cv = o->metric_loss ? v->val_curve_loss : v->val_curve_acc;
        buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s points=\"", col,
                   v->baseline ? " stroke-dasharray=\"6 4\"" : "");
        for (int ep = 0; ep < v->nepochs; ep++)
            if (isfinite(cv[ep])) buf_printf(b, "%.1f,%.1f ", cx(&c, ep + 1), cy(&c, cv[ep]));
        buf_printf(b, "\"/>\n");
        double ly = c.y0 + 8 + 16 * k;
        buf_printf(b,
                   "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"2\"%s/><text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">",
                   c.x0 + c.w + 10, ly, c.x0 + c.w + 28, ly, col,
                   v->baseline ? " stroke-dasharray=\"6 4\"" : "", c.x0 + c.w + 32, ly + 4);
        buf_html(b, v->label);
        buf_printf(b, "</text>\n");
        k++;
    }
    buf_printf(b, "</svg>\n");
}

char *sweep_html(const sweep_options *o, const sweep_result *res)
{
    buf b = {0};
    int *ord = sweep_order(o, res);
    if (!ord) return NULL;
    const char *metric = o->metric_loss ? "val_loss" : "val_accuracy";
    buf_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                   "<title>graft sweep: ");
    buf_html(&b, o->recipe);
    buf_printf(
        &b, "</title>\n<style>body{font-family:sans-serif;margin:24px;max-width:1000px;color:#222}"
            "table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;"
            "padding:4px 8px;text-align:right}td:nth-child(2),th:nth-child(2){text-align:left}"
            "tr.neg td{background:#fde2e2}tr.best td{background:#e2f5e2}tr.base td{background:#eef}"
            ".verdict{padding:8px 12px;border-left:4px solid #c00;background:#fff4f4;margin:6px 0}"
            ".ok{border-left-color:#080;background:#f4fff4}</style></head><body>\n");
    buf_printf(&b, "<h1>graft sweep</h1>\n<p>Recipe <code>");
    buf_html(&b, o->recipe);
    buf_printf(&b, "</code>");
    for (int i = 0; i < o->nsets; i++) {
        buf_printf(&b, " <code>--set ");
        buf_html(&b, o->sets[i]);
        buf_printf(&b, "</code>");
    }
    buf_printf(&b, ". Grid:");
    for (int a = 0; a < res->naxes; a++) {
        buf_printf(&b, " <code>");
        buf_html(&b, res->axes[a].key);
        buf_printf(&b, " = [");
        for (int j = 0; j < res->axes[a].nvalues; j++) {
            if (j) buf_printf(&b, ", ");
            buf_html(&b, res->axes[a].values[j]);
        }
        buf_printf(&b, "]</code>");
    }
    buf_printf(&b, ". Selection on <b>%s</b> with early stopping; ", metric);
    buf_html(&b, res->val_note);
    buf_printf(&b, ".%s</p>\n",
               res->complete ? "" : " <b>The sweep is not finished</b>: run it again to continue.");
    if (res->best >= 0) {
        const sweep_variant *bv = &res->v[res->best];
        buf_printf(&b, "<p class=\"verdict ok\">Best variant: <b>");
        buf_html(&b, bv->label);
        buf_printf(&b, "</b>, %s %.4f, test accuracy <b>%.4f</b>.</p>\n", metric, bv->val_metric,
                   bv->test_accuracy);
    }
    int neg = 0;
    for (int i = 0; i < res->nvariants; i++) {
        const sweep_variant *v = &res->v[i];
        if (!v->negative) continue;
        neg++;
        buf_printf(&b, "<p class=\"verdict\"><b>Negative transfer</b>: ");
        buf_html(&b, v->label);
        if (o->metric_loss)
            buf_printf(&b, " has validation loss %.4f higher than scratch", v->margin);
        else
            buf_printf(&b, " is %.2f points of validation accuracy worse than scratch",
                       100 * v->margin);
        buf_printf(&b, " (test: %+.2f points)",
                   100 * (v->test_accuracy - res->v[res->baseline].test_accuracy));
        if (isfinite(v->noise))
            buf_printf(&b,
                       v->margin <= v->noise ? "; <i>within the noise of %ld validation images "
                                               "(2 s.e. = %.2f points)</i>"
                                             : "; beyond the noise of %ld validation images (2 "
                                               "s.e. = %.2f points)",
                       res->val_images, 100 * v->noise);
        buf_printf(&b, ".</p>\n");
    }
    if (!neg && res->baseline >= 0)
        buf_printf(&b, "<p class=\"verdict ok\">No negative transfer: every variant is at least as "
                       "good as scratch on validation.</p>\n");
    buf_printf(&b,
               "<h2>Ranking</h2>\n<table><tr><th>rank</th><th>variant</th><th>%s</th><th>test "
               "accuracy</th><th>best epoch</th><th>epochs</th><th>trainable</th><th>feature "
               "cache</th><th>seconds</th><th>vs scratch</th></tr>\n",
               metric);
    for (int r = 0; r < res->nvariants; r++) {
        const sweep_variant *v = &res->v[ord[r]];
        const char *cls = v->negative           ? "neg"
                          : ord[r] == res->best ? "best"
                          : v->baseline         ? "base"
                                                : "";
        buf_printf(&b, "<tr class=\"%s\"><td>%d</td><td>", cls, r + 1);
        buf_html(&b, v->label);
        if (!ok_variant(v)) {
            buf_printf(&b, "</td><td colspan=\"8\">");
            buf_html(&b, v->failed ? v->error : "not trained yet");
            buf_printf(&b, "</td></tr>\n");
            continue;
        }
        char vs[64] = "";
        if (v->negative)
            snprintf(vs, sizeof vs, o->metric_loss ? "worse by %.4f" : "worse by %.2f pts",
                     o->metric_loss ? v->margin : 100 * v->margin);
        else if (v->baseline)
            snprintf(vs, sizeof vs, "baseline");
        else if (res->baseline >= 0 && v->val_metric == res->v[res->baseline].val_metric)
            snprintf(vs, sizeof vs, "tied");
        else if (res->baseline >= 0)
            snprintf(vs, sizeof vs, o->metric_loss ? "better by %.4f" : "better by %.2f pts",
                     o->metric_loss ? res->v[res->baseline].val_metric - v->val_metric
                                    : 100 * (v->val_metric - res->v[res->baseline].val_metric));
        buf_printf(&b,
                   "</td><td>%.4f</td><td>%.4f</td><td>%d</td><td>%d%s</td><td>%ld</td><td>%s</td>"
                   "<td>%.1f</td><td>%s</td></tr>\n",
                   v->val_metric, v->test_accuracy, v->best_epoch, v->epochs_run,
                   v->stopped_early ? " (early stop)" : "", v->trainable,
                   v->feature_cache ? "yes" : "no", v->seconds, vs);
    }
    buf_printf(
        &b, "</table>\n<p>Frozen-feature splits reused across variants: %ld (computed: %ld).</p>\n",
        res->pool_hits, res->pool_misses);
    buf_printf(&b, "<h2>Validation and test accuracy vs freeze depth</h2>\n");
    chart_freeze(&b, res);
    buf_printf(&b, "<h2>Learning curves</h2>\n");
    chart_curves(&b, o, res);
    buf_printf(&b,
               "<p style=\"color:#777;font-size:12px\">Written by graft %s sweep. Every run "
               "directory holds its metrics.jsonl, summary.json and checkpoints; sweep.json holds "
               "these numbers.</p>\n</body></html>\n",
               GRAFT_VERSION);
    free(ord);
    if (b.failed) {
        buf_free(&b);
        return NULL;
    }
    return b.data;
}
