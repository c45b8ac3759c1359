/* cmd_rank.c — `graft rank RECIPE --from A --from B …`: which pretrained model to start from,
 * scored on the target data without training (the work is graft_rank in train/rank.c). */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "rank.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char RANK_USAGE[] =
    "usage: graft rank RECIPE --from A.safetensors [--from B.safetensors]... [--layer NAME]\n"
    "                  [--by logme|hscore|nce|leep] [--max-images N] [--features-out DIR]\n"
    "                  [--set PATH=VALUE]... [--device SPEC] [--json] [--quiet]\n"
    "\n"
    "Which pretrained model should the recipe start from? Each candidate's frozen prefix runs "
    "once\n"
    "over the recipe's labelled training split on the device, and the features are scored without\n"
    "training (float64 on the host):\n"
    "  LogME    log evidence of Bayesian linear regression to the labels (You et al. 2021)\n"
    "  H-score  tr(cov(f)^-1 cov(E[f|y])): class separation of the features (Bao et al. 2019)\n"
    "  NCE      -H(target | source argmax) (Tran et al. 2019)\n"
    "  LEEP     log expected empirical prediction (Nguyen et al. 2020)\n"
    "NCE and LEEP need the candidate's own classifier: the recipe's model without its\n"
    "transfer.head, its last dense layer as wide as the candidate's; a candidate without one has\n"
    "them skipped, with the reason. Higher is better for all four. A candidate whose weights do\n"
    "not fit the recipe's model is an error row, not a failure of the command.\n"
    "\n"
    "  --from FILE        a candidate checkpoint (repeatable, at least one)\n"
    "  --layer NAME       features are the input of this layer (default: transfer.head.cut,\n"
    "                     else the input of the last layer)\n"
    "  --by EST           the estimator that orders the table (default logme)\n"
    "  --max-images N     score the first N images of the training split (default: all)\n"
    "  --features-out DIR write labels.npy, features_I.npy and source_logits_I.npy (float32)\n"
    "  --set PATH=VALUE   override a recipe key (repeatable)\n"
    "  --json             one JSON object: {recipe, images, classes, by, candidates: [{rank,\n"
    "                     from, ok, error, layer, dim, scores: {logme, hscore, nce, leep},\n"
    "                     seconds: {features, source_head, logme, ...}, skipped}]}\n";

static int by_key;

static int row_cmp(const void *pa, const void *pb)
{
    const rank_row *a = pa, *b = pb;
    bool ha = a->ok && a->have[by_key], hb = b->ok && b->have[by_key];
    if (ha != hb) return ha ? -1 : 1;
    if (a->ok != b->ok) return a->ok ? -1 : 1;
    if (!ha) return 0;
    return a->score[by_key] > b->score[by_key] ? -1 : a->score[by_key] < b->score[by_key] ? 1 : 0;
}

static void progress(void *user, int i, const char *what)
{
    const char *const *cands = user;
    if (strcmp(what, "features") == 0) fprintf(stderr, "rank: %s\n", cands[i]);
}

int cmd_rank(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "rank", RANK_USAGE, argc, argv);
    const char *opt, *pos, *recipe = NULL, *layer = NULL, *device = NULL, *by = "logme",
                           *fout = NULL;
    const char *sets[CLI_MAX_SETS], *cands[256];
    int nsets = 0, ncand = 0;
    long max_images = 0;
    bool json = false, quiet = false;
    while (cli_next(&a, &opt, &pos)) {
        if (pos) {
            if (recipe) return cli_usage_error(&a, "unexpected argument '%s'", pos);
            recipe = pos;
        } else if (strcmp(opt, "--json") == 0) {
            json = true;
        } else if (strcmp(opt, "--quiet") == 0) {
            quiet = true;
        } else if (strcmp(opt, "--from") == 0 || strcmp(opt, "--layer") == 0 ||
                   strcmp(opt, "--device") == 0 || strcmp(opt, "--by") == 0 ||
                   strcmp(opt, "--set") == 0 || strcmp(opt, "--max-images") == 0 ||
                   strcmp(opt, "--features-out") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) return 2;
            if (strcmp(opt, "--from") == 0) {
                if (ncand >= (int)ARRAY_LEN(cands))
                    return cli_usage_error(&a, "too many --from candidates (at most %d)",
                                           (int)ARRAY_LEN(cands));
                cands[ncand++] = v;
            } else if (strcmp(opt, "--set") == 0) {
                if (!cli_add_set(&a, v, sets, &nsets, CLI_MAX_SETS)) return 2;
            } else if (strcmp(opt, "--layer") == 0) {
                layer = v;
            } else if (strcmp(opt, "--device") == 0) {
                device = v;
            } else if (strcmp(opt, "--by") == 0) {
                by = v;
            } else if (strcmp(opt, "--features-out") == 0) {
                fout = v;
            } else {
                char *end;
                max_images = strtol(v, &end, 10);
                if (*end || max_images < 2)
                    return cli_usage_error(
                        &a, "--max-images needs a number of at least 2, got '%s'", v);
            }
        } else {
            return cli_usage_error(&a, "unknown option %s", opt);
        }
    }
    if (!recipe) return cli_usage_error(&a, "missing RECIPE");
    if (!ncand) return cli_usage_error(&a, "no candidates: give --from FILE at least once");
    by_key = -1;
    for (int i = 0; i < RANK_NEST; i++)
        if (strcmp(by, rank_estimator_names[i]) == 0) by_key = i;
    if (by_key < 0)
        return cli_usage_error(&a, "--by: expected logme, hscore, nce or leep, got '%s'", by);
    /* the recipe's own errors come out in full, positions and all, before anything runs */
    {
        graft_recipe *r;
        const char *all[CLI_MAX_SETS + 1];
        for (int i = 0; i < nsets; i++)
            all[i] = sets[i];
        all[nsets] = "transfer.from=~";
        int rc = cli_load_recipe(recipe, all, nsets + 1, &r);
        if (rc) return rc;
        graft_recipe_free(r);
    }
    rank_row *rows = calloc((size_t)ncand, sizeof *rows);
    if (!rows) return 1;
    rank_options o = {.sets = sets,
                      .nsets = nsets,
                      .layer = layer,
                      .device = device,
                      .max_images = max_images,
                      .features_out = fout,
                      .progress = quiet || json ? NULL : progress,
                      .user = cands};
    graft_error e = {0};
    double t0 = now_seconds();
    graft_status s = graft_rank(recipe, cands, ncand, &o, rows, &e);
    double total = now_seconds() - t0;
    if (s) {
        free(rows);
        return cli_fail(&e);
    }
    for (int i = 0; i < ncand; i++)
        rows[i].from = cands[i]; /* keep input order for ties */
    rank_row *sorted = malloc((size_t)ncand * sizeof *sorted);
    if (!sorted) {
        free(rows);
        return 1;
    }
    memcpy(sorted, rows, (size_t)ncand * sizeof *sorted);
    qsort(sorted, (size_t)ncand, sizeof *sorted, row_cmp);
    long images = 0;
    int ok = 0, classes = 0;
    for (int i = 0; i < ncand; i++)
        if (sorted[i].ok) {
            images = sorted[i].n;
            classes = sorted[i].classes;
            ok++;
        }
    if (json) {
        json_t *root = json_object(), *arr = json_array();
        json_object_set_new(root, "recipe", json_string(recipe));
        json_object_set_new(root, "images", json_integer(images));
        json_object_set_new(root, "classes", json_integer(classes));
        json_object_set_new(root, "by", json_string(by));
        json_object_set_new(root, "seconds", json_real(total));
        for (int i = 0; i < ncand; i++) {
            const rank_row *r = &sorted[i];
            json_t *c = json_object(), *sc = json_object(), *secs = json_object();
            json_object_set_new(c, "rank", r->ok ? json_integer(i + 1) : json_null());
            json_object_set_new(c, "from", json_string(r->from));
            json_object_set_new(c, "ok", json_boolean(r->ok));
            json_object_set_new(c, "error", r->ok ? json_null() : json_string(r->error));
            json_object_set_new(c, "layer", json_string(r->layer));
            json_object_set_new(c, "dim", json_integer(r->dim));
            json_object_set_new(c, "source_classes", json_integer(r->source_classes));
            json_object_set_new(c, "skipped",
                                r->no_head[0] ? json_string(r->no_head) : json_null());
            json_object_set_new(secs, "features", json_real(r->feature_seconds));
            json_object_set_new(secs, "source_head", json_real(r->head_seconds));
            for (int k = 0; k < RANK_NEST; k++) {
                json_object_set_new(sc, rank_estimator_names[k],
                                    r->have[k] ? json_real(r->score[k]) : json_null());
                json_object_set_new(secs, rank_estimator_names[k], json_real(r->seconds[k]));
            }
            json_object_set_new(c, "scores", sc);
            json_object_set_new(c, "seconds", secs);
            /* the candidate's index in the command line (features_I.npy) */
            for (int k = 0; k < ncand; k++)
                if (rows[k].from == r->from) json_object_set_new(c, "index", json_integer(k));
            json_array_append_new(arr, c);
        }
        json_object_set_new(root, "candidates", arr);
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        json_decref(root);
        if (text) puts(text);
        free(text);
    } else {
        printf("\nTransferability of %d candidate%s for %s (%ld training images), best first by "
               "%s\n\n",
               ncand, ncand == 1 ? "" : "s", recipe, images, by);
        printf("%-4s %-40s %-10s %6s %10s %9s %9s %9s %8s\n", "rank", "candidate", "features",
               "dim", "LogME", "H-score", "NCE", "LEEP", "seconds");
        for (int i = 0; i < ncand; i++) {
            const rank_row *r = &sorted[i];
            const char *name = r->from;
            size_t len = strlen(name);
            char shown[48];
            if (len > 40)
                snprintf(shown, sizeof shown, "...%s", name + len - 37);
            else
                snprintf(shown, sizeof shown, "%s", name);
            if (!r->ok) {
                printf("%-4s %-40s error: %s\n", "-", shown, r->error);
                continue;
            }
            char cols[RANK_NEST][32];
            for (int k = 0; k < RANK_NEST; k++) {
                if (r->have[k])
                    snprintf(cols[k], sizeof cols[k], "%.4f", r->score[k]);
                else
                    snprintf(cols[k], sizeof cols[k], "-");
            }
            double secs = r->feature_seconds + r->head_seconds;
            for (int k = 0; k < RANK_NEST; k++)
                secs += r->seconds[k];
            printf("%-4d %-40s %-10s %6d %10s %9s %9s %9s %8.2f\n", i + 1, shown, r->layer, r->dim,
                   cols[0], cols[1], cols[2], cols[3], secs);
        }
        for (int i = 0; i < ncand; i++)
            if (sorted[i].ok && sorted[i].dim >= sorted[i].n - 1) {
                printf(
                    "H-score is %d (classes - 1) whenever the features have more dimensions than "
                    "there are images (%d >= %ld - 1): it cannot separate candidates at this "
                    "layer; try --layer with a narrower one or more images\n",
                    sorted[i].classes - 1, sorted[i].dim, sorted[i].n);
                break;
            }
        for (int i = 0; i < ncand; i++)
            if (sorted[i].ok && sorted[i].no_head[0])
                printf("NCE and LEEP skipped for %s: %s\n", sorted[i].from, sorted[i].no_head);
        printf("\n(features: the input of that layer; seconds: the frozen prefix and the source\n"
               "classifier on the device plus the four estimators on the host; %.1f s in all)\n",
               total);
    }
    free(sorted);
    free(rows);
    return ok ? 0 : 1;
}
