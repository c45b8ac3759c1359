/* cmd_tune.c — `graft tune [RECIPE...] [--shape ...] [--device SPEC]`: run the GEMM tuner over
 * 1024^3 and the GEMM shapes of the shipped recipes' models (or the given ones; the derivation is
 * compile_gemm_shapes, shared with the trainer), printing each choice with its GFLOP/s and the
 * default's; the results persist in the program cache for gemm() to use. */
#include "cli.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"

const char TUNE_USAGE[] =
    "usage: graft tune [RECIPE...] [--shape MxNxK[:TA][:TB]]... [--no-defaults] [--missing]\n"
    "                  [--quick] [--device SPEC] [--json] [--quiet]\n"
    "\n"
    "Time every GEMM kernel that fits (Graft's CPU kernels with several tile sizes, its\n"
    "GPU-shaped tiled kernel, CLBlast parameter sets) on each shape (medians, operands past the\n"
    "cache), keep the fastest whose output matches if it beats the default by 7 % head to head,\n"
    "and store the choice in the program cache keyed by device, driver, CLBlast version and\n"
    "shape: gemm() in `graft train` and `graft bench gemm` use it from then on (a first\n"
    "`graft train` on a device tunes its own shapes within 60 s: train.tune, GRAFT_TUNE).\n"
    "Shapes: 1024^3 and the convolution and dense GEMMs (forward and both backward products)\n"
    "of each RECIPE at its batch size; with no RECIPE and no --shape, every shipped recipe\n"
    "(configs/recipes of the current directory, the source tree or the installed share/graft).\n"
    "Then the path of each of the recipes' convolution shapes: im2col + GEMM, the direct CPU\n"
    "kernel or the GPU-shaped implicit GEMM, forward + backward timed at the recipe's batch,\n"
    "the default replaced only by a path 7 % faster (GRAFT_CONV=PATH forces one instead).\n"
    "\n"
    "  --shape MxNxK[:ta][:tb]  one more shape, e.g. 32x50176x288 or 32x288x50176:tb\n"
    "  --no-defaults            skip 1024^3 and the shipped recipes (only RECIPE / --shape)\n"
    "  --missing                only the shapes without a tuning result in the cache\n"
    "  --quick                  the short candidate list a first `graft train` uses\n"
    "  --device SPEC            cpu, gpu, nvidia, pocl, P:D, or a name substring\n"
    "  --json                   print a JSON array: [{m, n, k, ta, tb, kernel, gflops,\n"
    "                           default_kernel, default_gflops, tried, seconds}]\n"
    "  --quiet                  no per-candidate lines on stderr\n";

#define MAX_SHAPES 256

#define MAX_CONVS 64

typedef struct shape_list {
    gemm_shape s[MAX_SHAPES];
    int n;
    /* the recipes' convolution shapes, whose path (im2col, direct, igemm) is tuned after the
     * GEMMs, at the batch of the first recipe that has them */
    conv2d_desc conv[MAX_CONVS];
    int conv_batch[MAX_CONVS];
    int nconv;
} shape_list;

static void add_conv(shape_list *l, const layer *ly, int batch)
{
    conv2d_desc d;
    plan_conv_desc(ly, &d);
    for (int i = 0; i < l->nconv; i++) { /* field by field: the struct has padding */
        const conv2d_desc *q = &l->conv[i];
        if (q->c == d.c && q->h == d.h && q->w == d.w && q->o == d.o && q->kh == d.kh &&
            q->kw == d.kw && q->sh == d.sh && q->sw == d.sw && q->ph == d.ph && q->pw == d.pw &&
            q->groups == d.groups && q->bias == d.bias)
            return;
    }
    if (l->nconv < MAX_CONVS) {
        l->conv[l->nconv] = d;
        l->conv_batch[l->nconv++] = batch;
    }
}

/* A shape as given, leading dimensions included (the tuner times it laid out that way). */
static void add(shape_list *l, const gemm_shape *s)
{
    if (s->m == 0 || s->n == 0 || s->k == 0) return;
    for (int i = 0; i < l->n; i++) /* field by field: the struct has padding */
        if (l->s[i].ta == s->ta && l->s[i].tb == s->tb && l->s[i].m == s->m &&
            l->s[i].n == s->n && l->s[i].k == s->k)
            return;
    if (l->n < MAX_SHAPES) l->s[l->n++] = *s;
}

/* The recipe's GEMMs (every product of every layer: `graft tune` does not know which layers a
 * run will freeze, nor which path the convolutions' tuning below picks) at its batch size into
 * the list; returns how many were new. */
static int graph_shapes(shape_list *l, const graft_recipe *r)
{
    size_t n = (size_t)(r->train.batch_size > 0 ? r->train.batch_size : 64);
    gemm_shape s[COMPILE_MAX_GEMM_SHAPES];
    int count = compile_recipe_gemm_shapes(NULL, r, false, s, COMPILE_MAX_GEMM_SHAPES);
    int before = l->n;
    for (int i = 0; i < count; i++) add(l, &s[i]);
    for (int i = 0; i < r->graph.nlayers; i++)
        if (r->graph.layers[i].type == GRAFT_LAYER_CONV2D)
            add_conv(l, &r->graph.layers[i], (int)n);
    return l->n - before;
}

static int recipe_shapes(shape_list *l, const char *file, bool quiet)
{
    graft_recipe *r = NULL;
    int rc = cli_load_recipe(file, NULL, 0, &r);
    if (rc) return rc;
    int added = graph_shapes(l, r);
    if (!quiet)
        fprintf(stderr, "%s: %d new GEMM shapes at batch %d\n", file, added,
                r->train.batch_size > 0 ? r->train.batch_size : 64);
    recipe_free(r);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int shipped_recipes(shape_list *l, bool quiet)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/recipes", cli_configs_dir());
    DIR *d = opendir(dir);
    if (!d) {
        if (!quiet) fprintf(stderr, "graft tune: no shipped recipes at %s\n", dir);
        return 0;
    }
    char *names[128];
    int nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < 128) {
        size_t len = strlen(de->d_name);
        if (len > 5 && strcmp(de->d_name + len - 5, ".yaml") == 0) names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof names[0], cmp_str);
    int rc = 0;
    for (int i = 0; i < nn; i++) {
        char path[2048];
        if (!names[i]) continue;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        /* a recipe that needs a checkpoint not produced yet cannot load: skip it */
        graft_recipe *r = NULL;
        graft_diags dg = {0};
        if (recipe_load(path, NULL, 0, &r, &dg) == GRAFT_OK) {
            int added = graph_shapes(l, r);
            if (!quiet)
                fprintf(stderr, "%s: %d new GEMM shapes at batch %d\n", names[i], added,
                        r->train.batch_size > 0 ? r->train.batch_size : 64);
            recipe_free(r);
        } else if (!quiet)
            fprintf(stderr, "%s: skipped (does not load here)\n", names[i]);
        graft_diags_free(&dg);
        free(names[i]);
    }
    return rc;
}

static bool parse_shape(const char *t, gemm_shape *s)
{
    unsigned long long m, n, k;
    int used = 0;
    if (sscanf(t, "%llux%llux%llu%n", &m, &n, &k, &used) != 3) return false;
    if (m == 0 || n == 0 || k == 0 || m > (1ull << 30) || n > (1ull << 30) || k > (1ull << 30))
        return false;
    *s = (gemm_shape){.ta = false, .tb = false, .m = (size_t)m, .n = (size_t)n, .k = (size_t)k};
    const char *p = t + used;
    while (*p == ':') {
        if (strncmp(p, ":ta", 3) == 0) s->ta = true;
        else if (strncmp(p, ":tb", 3) == 0) s->tb = true;
        else return false;
        p += 3;
    }
    return *p == 0;
}

typedef struct progress_state {
    bool quiet;
} progress_state;

static void on_candidate(void *user, const gemm_shape *s, const gemm_choice *ch, double gflops)
{
    progress_state *ps = user;
    if (ps->quiet) return;
    char d[320];
    gemm_choice_describe(ch, d, sizeof d);
    (void)s;
    if (gflops == -1) fprintf(stderr, "    %-56s failed to build or run: skipped\n", d);
    else if (gflops == -2) fprintf(stderr, "    %-56s WRONG RESULT: rejected\n", d);
    else fprintf(stderr, "    %-56s %7.1f GFLOP/s\n", d, gflops);
}

int cmd_tune(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "tune", TUNE_USAGE, argc, argv);
    const char *opt, *pos, *device = NULL;
    bool json = false, quiet = false, defaults = true, missing = false, quick = false;
    shape_list *l = calloc(1, sizeof *l);
    const char *recipes[64];
    int nrecipes = 0, rc = 0;
    if (!l) {
        fprintf(stderr, "graft tune: out of memory\n");
        return 1;
    }
    while (cli_next(&a, &opt, &pos)) {
        if (!opt) {
            if (nrecipes >= 64) {
                rc = cli_usage_error(&a, "too many recipes");
                goto out;
            }
            recipes[nrecipes++] = pos;
        } else if (strcmp(opt, "--json") == 0) json = true;
        else if (strcmp(opt, "--quiet") == 0) quiet = true;
        else if (strcmp(opt, "--no-defaults") == 0) defaults = false;
        else if (strcmp(opt, "--missing") == 0) missing = true;
        else if (strcmp(opt, "--quick") == 0) quick = true;
        else if (strcmp(opt, "--device") == 0 || strcmp(opt, "--shape") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) {
                rc = 2;
                goto out;
            }
            if (strcmp(opt, "--device") == 0) device = v;
            else {
                gemm_shape s;
                if (!parse_shape(v, &s)) {
                    rc = cli_usage_error(&a, "--shape %s: expected MxNxK with optional :ta :tb", v);
                    goto out;
                }
                add(l, &s);
            }
        } else {
            rc = cli_usage_error(&a, "unknown option %s", opt);
            goto out;
        }
    }
    for (int i = 0; i < nrecipes; i++)
        if ((rc = recipe_shapes(l, recipes[i], quiet))) goto out;
    const gemm_shape square = {.m = 1024, .n = 1024, .k = 1024};
    if (defaults && nrecipes == 0 && l->n == 0) {
        add(l, &square);
        shipped_recipes(l, quiet);
    } else if (defaults && nrecipes == 0) add(l, &square);

    graft_error e = {0};
    graft_context *ctx = NULL;
    graft_context_options co = {.device = device};
    if (graft_context_create(&co, &ctx, &e)) {
        rc = cli_fail(&e);
        goto out;
    }
    const graft_device_info *d = graft_context_device(ctx);
    if (!ctx->cache.dir[0])
        fprintf(stderr, "graft tune: warning: the program cache is off (GRAFT_NO_CACHE): the "
                        "results will not be kept\n");
    if (!quiet)
        fprintf(stderr, "tuning %d GEMM shapes on %s (%s); results go to the program cache\n",
                l->n, d->name, d->platform);
    json_t *arr = json_array();
    progress_state ps = {quiet};
    double total = 0;
    for (int i = 0; i < l->n; i++) {
        const gemm_shape *s = &l->s[i];
        if (!quiet)
            fprintf(stderr, "[%d/%d] %zux%zux%zu%s%s\n", i + 1, l->n, s->m, s->n, s->k,
                    s->ta ? " ta" : "", s->tb ? " tb" : "");
        if (missing) {
            bool tuned = false;
            gemm_choice have = gemm_choose(ctx, s, &tuned);
            if (tuned) {
                char desc[320];
                gemm_choice_describe(&have, desc, sizeof desc);
                if (!quiet) fprintf(stderr, "    already tuned: %s\n", desc);
                continue;
            }
        }
        tune_result r;
        tune_options topt = {.quick = quick};
        if (tune_gemm_with(ctx, s, &topt, on_candidate, &ps, &r, &e)) {
            rc = cli_fail(&e);
            break;
        }
        total += r.seconds;
        char best[320], dflt[320];
        gemm_choice_describe(&r.best, best, sizeof best);
        gemm_choice_describe(&r.deflt, dflt, sizeof dflt);
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "m", json_integer((json_int_t)s->m));
            json_object_set_new(o, "n", json_integer((json_int_t)s->n));
            json_object_set_new(o, "k", json_integer((json_int_t)s->k));
            json_object_set_new(o, "ta", json_boolean(s->ta));
            json_object_set_new(o, "tb", json_boolean(s->tb));
            json_object_set_new(o, "kernel", json_string(best));
            json_object_set_new(o, "gflops", json_real(r.best_gflops));
            json_object_set_new(o, "default_kernel", json_string(dflt));
            json_object_set_new(o, "default_gflops", json_real(r.default_gflops));
            json_object_set_new(o, "tried", json_integer(r.tried));
            json_object_set_new(o, "seconds", json_real(r.seconds));
            json_array_append_new(arr, o);
        } else {
            printf("%6zu x %6zu x %6zu %s%s  %7.1f GFLOP/s  %s  (default %.1f; %d tried, %.1f s)\n",
                   s->m, s->n, s->k, s->ta ? "ta" : "  ", s->tb ? "tb" : "  ", r.best_gflops,
                   best, r.default_gflops, r.tried, r.seconds);
            fflush(stdout);
        }
    }
    /* then the path of each convolution shape, with the tuned GEMMs in place */
    const char *forced = getenv("GRAFT_CONV");
    if (forced && *forced && l->nconv && !quiet)
        fprintf(stderr, "GRAFT_CONV=%s: the convolution paths are not tuned\n", forced);
    for (int i = 0; rc == 0 && !(forced && *forced) && i < l->nconv; i++) {
        const conv2d_desc *c = &l->conv[i];
        char what[160];
        snprintf(what, sizeof what, "conv %dx%dx%d -> %d, kernel %dx%d, stride %dx%d, pad %dx%d%s%s",
                 c->c, c->h, c->w, c->o, c->kh, c->kw, c->sh, c->sw, c->ph, c->pw,
                 c->groups > 1 ? ", groups" : "", c->bias ? ", bias" : "");
        if (missing && conv2d_path_tuned(ctx, c)) {
            if (!quiet) fprintf(stderr, "%s: already tuned\n", what);
            continue;
        }
        conv_tune_result cr;
        double t0 = now_seconds();
        if (conv2d_tune(ctx, c, l->conv_batch[i], quick, 0, &cr, &e)) {
            rc = cli_fail(&e);
            break;
        }
        total += now_seconds() - t0;
        if (json) {
            json_t *o = json_object(), *sec = json_object();
            json_object_set_new(o, "conv", json_string(what));
            json_object_set_new(o, "batch", json_integer(l->conv_batch[i]));
            json_object_set_new(o, "path", json_string(conv2d_path_name(cr.best)));
            json_object_set_new(o, "default_path", json_string(conv2d_path_name(cr.deflt)));
            for (int p = 0; p < CONV_PATHS; p++)
                if (cr.seconds[p] > 0)
                    json_object_set_new(sec, conv2d_path_name((conv_path)p),
                                        json_real(cr.seconds[p]));
            json_object_set_new(o, "seconds", sec);
            json_t *fsec = json_object();
            for (int p = 0; p < CONV_PATHS; p++)
                if (cr.fwd_seconds[p] > 0)
                    json_object_set_new(fsec, conv2d_path_name((conv_path)p),
                                        json_real(cr.fwd_seconds[p]));
            json_object_set_new(o, "path_forward_only", json_string(conv2d_path_name(cr.best_fwd)));
            json_object_set_new(o, "default_path_forward_only",
                                json_string(conv2d_path_name(cr.deflt_fwd)));
            json_object_set_new(o, "forward_seconds", fsec);
            json_array_append_new(arr, o);
        } else {
            printf("%s at batch %d: %s  (", what, l->conv_batch[i], conv2d_path_name(cr.best));
            const char *sep = "";
            for (int p = 0; p < CONV_PATHS; p++)
                if (cr.seconds[p] > 0) {
                    printf("%s%s %.2f ms", sep, conv2d_path_name((conv_path)p), 1e3 * cr.seconds[p]);
                    sep = ", ";
                }
            printf(" per forward + backward; default %s)", conv2d_path_name(cr.deflt));
            if (cr.fwd_seconds[cr.best_fwd] > 0) /* layers that run no backward */
                printf("; forward alone: %s %.2f ms (default %s)", conv2d_path_name(cr.best_fwd),
                       1e3 * cr.fwd_seconds[cr.best_fwd], conv2d_path_name(cr.deflt_fwd));
            printf("\n");
            fflush(stdout);
        }
    }
    if (json && rc == 0) {
        char *txt = json_dumps(arr, JSON_INDENT(2));
        if (txt) puts(txt);
        free(txt);
    }
    json_decref(arr);
    if (!quiet && rc == 0)
        fprintf(stderr, "tuned %d GEMM shapes and %d convolution paths in %.1f s\n", l->n,
                forced && *forced ? 0 : l->nconv, total);
    graft_context_free(ctx);
out:
    free(l);
    return rc;
}
