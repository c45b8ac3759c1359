/* sections.c — the data and train sections into data_spec and train_spec: keys, types, ranges,
 * PyTorch defaults, and paths resolved against the file that says them (and checked readable). */
#include "recipe_impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const FORMATS[] = {"idx", "npy", "csv", "folder"};

/* A path that must name a readable regular file (or a directory for folder roots). */
static const char *data_path(rctx *c, const ynode *src, const char *where, const char *key,
                             bool dir)
{
    const ynode *n = get(src, key);
    const char *what = arena_printf(c->a, "%s.%s", where, key);
    if (!n) {
        graft_diags_add(c->d, src->mark, "%s: needs %s: PATH", where, key);
        return NULL;
    }
    if (!parse_str(c, n, what)) return NULL;
    const char *p = resolve_path(c, n);
    if (!p) return NULL;
    struct stat st;
    if (stat(p, &st) != 0 || access(p, R_OK) != 0) {
        graft_diags_add(c->d, n->mark, "%s: cannot read %s: %s", what, p, strerror(errno));
        return NULL;
    }
    if (dir && !S_ISDIR(st.st_mode)) {
        graft_diags_add(c->d, n->mark, "%s: %s is not a directory", what, p);
        return NULL;
    }
    if (!dir && !S_ISREG(st.st_mode)) {
        graft_diags_add(c->d, n->mark, "%s: %s is not a regular file", what, p);
        return NULL;
    }
    return p;
}

static void parse_source(rctx *c, const ynode *n, const char *where, int def_format,
                         data_source *s)
{
    memset(s, 0, sizeof *s);
    s->label_column = -1;
    if (!want_map(c, n, where)) return;
    s->present = true;
    s->mark = n->mark;
    int f = def_format;
    const ynode *fn = get(n, "format");
    if (fn) f = parse_enum(c, fn, arena_printf(c->a, "%s.format", where), FORMATS, 4);
    else if (f < 0)
        graft_diags_add(c->d, n->mark, "%s: needs format: idx, npy, csv or folder", where);
    if (f < 0) return;
    s->format = (data_format)(DATA_IDX + f);
    switch (s->format) {
    case DATA_IDX:
    case DATA_NPY: {
        static const char *const keys[] = {"format", "images", "labels"};
        check_keys(c, n, arena_printf(c->a, "%s (format %s)", where, FORMATS[f]), keys, 3);
        s->images = data_path(c, n, where, "images", false);
        s->labels = data_path(c, n, where, "labels", false);
        break;
    }
    case DATA_CSV: {
        static const char *const keys[] = {"format", "path", "label_column"};
        check_keys(c, n, arena_printf(c->a, "%s (format csv)", where), keys, 3);
        s->path = data_path(c, n, where, "path", false);
        long lc;
        if (get_int(c, n, where, "label_column", -4096, 4095, "a column index (negative counts from the end)", &lc))
            s->label_column = (int)lc;
        break;
    }
    case DATA_FOLDER: {
        static const char *const keys[] = {"format", "root"};
        check_keys(c, n, arena_printf(c->a, "%s (format folder)", where), keys, 2);
        s->root = data_path(c, n, where, "root", true);
        break;
    }
    default: break;
    }
}

static int parse_floats(rctx *c, const ynode *n, const char *what, float *out, int max,
                        bool positive)
{
    if (n->kind != YNODE_SEQ) {
        /* one number for a one-channel input is common: mean: 0.2860 */
        double v;
        if (!parse_num(c, n, what, 0, 1e9, positive, false,
                       positive ? "a positive number or a list of them" : "a number or a list of numbers",
                       &v))
            return 0;
        out[0] = (float)v;
        return 1;
    }
    if (n->count == 0 || n->count > max) {
        graft_diags_add(c->d, n->mark, "%s: expected 1 to %d numbers, found %d", what, max,
                        n->count);
        return 0;
    }
    for (int i = 0; i < n->count; i++) {
        double v;
        if (!parse_num(c, n->items[i], what, positive ? 0 : -1e9, 1e9, positive, false,
                       positive ? "a positive number" : "a number", &v))
            return 0;
        out[i] = (float)v;
    }
    return n->count;
}

void recipe_parse_data(rctx *c, const ynode *d)
{
    data_spec *ds = &c->r->data;
    ds->val_split = 0.1;
    if (!want_map(c, d, "data")) return;
    static const char *const keys[] = {"train", "val",       "test",      "classes", "shots",
                                       "val_split", "normalize", "augment", "seed",  "format",
                                       "root", "on_bad_image"};
    check_keys(c, d, "data", keys, (int)ARRAY_LEN(keys));
    int def = -1;
    const ynode *fn = get(d, "format");
    if (fn) def = parse_enum(c, fn, "data.format", FORMATS, 4);
    const ynode *root = get(d, "root");
    if (root) {
        /* data: {format: folder, root: DIR}: the ImageFolder shorthand for the training source */
        if (def != DATA_FOLDER - DATA_IDX) {
            graft_diags_add(c->d, root->mark, "data.root is for format: folder (set data.format: folder)");
        } else if (get(d, "train")) {
            graft_diags_add(c->d, root->mark, "data.root and data.train both give the training source");
        } else {
            ds->train.present = true;
            ds->train.mark = d->mark;
            ds->train.format = DATA_FOLDER;
            ds->train.label_column = -1;
            ds->train.root = data_path(c, d, "data", "root", true);
        }
    }
    if (get(d, "train")) parse_source(c, get(d, "train"), "data.train", def, &ds->train);
    if (get(d, "val")) parse_source(c, get(d, "val"), "data.val", def, &ds->val);
    if (get(d, "test")) parse_source(c, get(d, "test"), "data.test", def, &ds->test);
    if (!ds->train.present && !root)
        graft_diags_add(c->d, d->mark, "data: needs a train source");
    /* image folders: a file that is not a readable image stops the load (listing every such
     * file), or with skip is left out and listed in the data set's report */
    static const char *const bad[] = {"stop", "skip"};
    bool skip = get_enum(c, d, "data", "on_bad_image", bad, 2, 0) == 1;
    ds->train.skip_bad_images = ds->val.skip_bad_images = ds->test.skip_bad_images = skip;

    const ynode *cl = get(d, "classes");
    if (cl) {
        if (cl->kind != YNODE_SEQ || cl->count == 0) {
            graft_diags_add(c->d, cl->mark, "data.classes: expected a list of labels, found %s",
                            describe(c, cl));
        } else {
            ds->classes = arena_alloc(c->a, (size_t)cl->count * sizeof *ds->classes);
            for (int i = 0; ds->classes && i < cl->count; i++) {
                long v;
                if (!parse_int(c, cl->items[i], "data.classes", 0, 1 << 24,
                               "a non-negative integer label", &v))
                    continue;
                bool dup = false;
                for (int j = 0; j < ds->nclasses; j++) dup |= ds->classes[j] == v;
                if (dup) {
                    graft_diags_add(c->d, cl->items[i]->mark, "data.classes: label %ld is listed twice", v);
                    continue;
                }
                ds->classes[ds->nclasses++] = (int)v;
            }
        }
    }
    long v;
    if (get_int(c, d, "data", "shots", 1, 1 << 30, "a positive integer", &v)) ds->shots = (int)v;
    get_num(c, d, "data", "val_split", 0, 1, false, true, "a fraction with 0 <= val_split < 1",
            &ds->val_split);
    if (get_int(c, d, "data", "seed", 0, 0x7fffffffL, "a non-negative integer", &v))
        ds->seed = (unsigned long)v;

    const ynode *nm = get(d, "normalize");
    if (nm && want_map(c, nm, "data.normalize")) {
        static const char *const nkeys[] = {"mean", "std"};
        check_keys(c, nm, "data.normalize", nkeys, 2);
        const ynode *mean = get(nm, "mean"), *std = get(nm, "std");
        if (!mean || !std) {
            graft_diags_add(c->d, nm->mark, "data.normalize: needs both mean and std");
        } else {
            int a = parse_floats(c, mean, "data.normalize.mean", ds->norm_mean, 16, false);
            int b = parse_floats(c, std, "data.normalize.std", ds->norm_std, 16, true);
            if (a && b && a != b)
                graft_diags_add(c->d, std->mark,
                                "data.normalize: %d means but %d standard deviations", a, b);
            else if (a && b)
                ds->nnorm = a;
            int ch = c->r->graph.input.rank == 3 ? c->r->graph.input.d[0] : 1;
            if (ds->nnorm && c->r->graph.input.rank && ds->nnorm != ch)
                graft_diags_add(c->d, mean->mark,
                                "data.normalize: %d values for a %d-channel input", ds->nnorm, ch);
        }
    }
    const ynode *au = get(d, "augment");
    if (au && want_map(c, au, "data.augment")) {
        static const char *const akeys[] = {"flip", "crop", "random_resized_crop"};
        check_keys(c, au, "data.augment", akeys, 3);
        const ynode *fl = get(au, "flip");
        if (fl) {
            static const char *const flips[] = {"horizontal", "none"};
            bool b;
            if (fl->kind == YNODE_SCALAR && !fl->quoted && strcmp(fl->value, "false") == 0)
                ds->flip = false;
            else if (fl->kind == YNODE_SCALAR && !fl->quoted && strcmp(fl->value, "true") == 0 &&
                     parse_bool(c, fl, "data.augment.flip", &b))
                ds->flip = true;
            else
                ds->flip = parse_enum(c, fl, "data.augment.flip", flips, 2) == 0;
        }
        if (get_int(c, au, "data.augment", "crop", 0, 1024, "a padding in pixels (>= 0)", &v))
            ds->crop_pad = (int)v;
        /* random_resized_crop: true (torchvision's scale 0.08..1, ratio 3/4..4/3) or the
         * smallest area fraction */
        const ynode *rr = get(au, "random_resized_crop");
        if (rr && rr->kind == YNODE_SCALAR && !rr->quoted &&
            (strcmp(rr->value, "true") == 0 || strcmp(rr->value, "false") == 0)) {
            ds->rrc_min_scale = strcmp(rr->value, "true") == 0 ? 0.08f : 0.f;
        } else if (rr) {
            double v2;
            if (parse_num(c, rr, "data.augment.random_resized_crop", 0, 1, true, false,
                          "true, false or the smallest area fraction in (0, 1]", &v2))
                ds->rrc_min_scale = (float)v2;
        }
        if (rr && ds->rrc_min_scale > 0 && ds->crop_pad > 0)
            graft_diags_add(c->d, rr->mark,
                            "data.augment: random_resized_crop and crop are alternatives; keep one");
        if (data_spec_augments(ds) && c->r->graph.input.rank == 1)
            graft_diags_add(c->d, au->mark, "data.augment: flips and crops need an image input [C, H, W]");
    }
}

static const char *const OPTIMIZERS[] = {"sgd", "momentum", "nesterov", "adam", "adamw"};
static const char *const SCHEDULES[] = {"constant", "step", "cosine"};
static const char *const TUNES[] = {"auto", "off", "full"};
static const char *const NONFINITES[] = {"stop", "skip_batch"};

void recipe_parse_train(rctx *c, const ynode *t)
{
    train_spec *ts = &c->r->train;
    ts->epochs = 10;
    ts->batch_size = 64;
    ts->optimizer = OPT_ADAM;
    ts->lr = 1e-3;
    ts->momentum = 0.9;
    ts->beta1 = 0.9;
    ts->beta2 = 0.999;
    ts->eps = 1e-8;
    ts->schedule = SCHED_CONSTANT;
    ts->gamma = 0.1;
    ts->monitor = MONITOR_VAL_LOSS;
    ts->patience = 5;
    if (!want_map(c, t, "train")) return;
    static const char *const keys[] = {
        "epochs",         "batch_size", "optimizer",    "lr",       "momentum",
        "betas",          "eps",        "weight_decay", "schedule", "warmup_epochs",
        "step_size",      "gamma",      "lr_mult",      "l2sp",     "label_smoothing",
        "early_stopping", "unfreeze",   "max_steps",    "seed",     "tune",
        "on_nonfinite"};
    check_keys(c, t, "train", keys, (int)ARRAY_LEN(keys));
    long v;
    if (get_int(c, t, "train", "epochs", 1, 1 << 24, "a positive integer", &v)) ts->epochs = (int)v;
    if (get_int(c, t, "train", "batch_size", 1, 1 << 20, "a positive integer", &v))
        ts->batch_size = (int)v;
    ts->optimizer = (optimizer_kind)get_enum(c, t, "train", "optimizer", OPTIMIZERS, 5, OPT_ADAM);
    get_num(c, t, "train", "lr", 0, 1e3, true, false, "a positive number", &ts->lr);
    get_num(c, t, "train", "momentum", 0, 1, false, true, "a number with 0 <= momentum < 1",
            &ts->momentum);
    const ynode *b = get(t, "betas");
    if (b) {
        if (b->kind != YNODE_SEQ || b->count != 2)
            graft_diags_add(c->d, b->mark, "train.betas: expected [beta1, beta2], found %s",
                            describe(c, b));
        else {
            parse_num(c, b->items[0], "train.betas", 0, 1, false, true,
                      "a number with 0 <= beta < 1", &ts->beta1);
            parse_num(c, b->items[1], "train.betas", 0, 1, false, true,
                      "a number with 0 <= beta < 1", &ts->beta2);
        }
    }
    get_num(c, t, "train", "eps", 0, 1, true, false, "a positive number", &ts->eps);
    get_num(c, t, "train", "weight_decay", 0, 1e3, false, false, "a non-negative number",
            &ts->weight_decay);
    ts->schedule = (schedule_kind)get_enum(c, t, "train", "schedule", SCHEDULES, 3, SCHED_CONSTANT);
    ts->tune = (tune_kind)get_enum(c, t, "train", "tune", TUNES, 3, TUNE_KIND_AUTO);
    ts->on_nonfinite =
        (nonfinite_kind)get_enum(c, t, "train", "on_nonfinite", NONFINITES, 2, NONFINITE_STOP);
    get_num(c, t, "train", "warmup_epochs", 0, 1e6, false, false, "a non-negative number",
            &ts->warmup_epochs);
    if (ts->warmup_epochs > ts->epochs)
        graft_diags_add(c->d, get(t, "warmup_epochs")->mark,
                        "train.warmup_epochs: %g is more than the %d epochs", ts->warmup_epochs,
                        ts->epochs);
    if (get_int(c, t, "train", "step_size", 1, 1 << 24, "a positive integer (epochs)", &v))
        ts->step_size = (int)v;
    get_num(c, t, "train", "gamma", 0, 1e3, true, false, "a positive number", &ts->gamma);
    if (ts->schedule == SCHED_STEP && ts->step_size == 0)
        graft_diags_add(c->d, get(t, "schedule")->mark,
                        "train.schedule: step needs train.step_size (epochs between decays)");
    get_num(c, t, "train", "l2sp", 0, 1e6, false, false, "a non-negative number", &ts->l2sp);
    get_num(c, t, "train", "label_smoothing", 0, 1, false, true,
            "a number with 0 <= label_smoothing < 1", &ts->label_smoothing);
    if (get_int(c, t, "train", "max_steps", 0, 0x7fffffffffffL, "a non-negative integer", &v))
        ts->max_steps = v;
    if (get_int(c, t, "train", "seed", 0, 0x7fffffffL, "a non-negative integer", &v))
        ts->seed = (unsigned long)v;
    const ynode *es = get(t, "early_stopping");
    if (es) {
        bool on;
        if (es->kind == YNODE_SCALAR) {
            if (parse_bool(c, es, "train.early_stopping", &on)) ts->early_stopping = on;
        } else if (want_map(c, es, "train.early_stopping")) {
            static const char *const ekeys[] = {"monitor", "patience", "min_delta"};
            check_keys(c, es, "train.early_stopping", ekeys, 3);
            static const char *const mons[] = {"val_loss", "val_accuracy"};
            ts->early_stopping = true;
            ts->monitor = (monitor_kind)get_enum(c, es, "train.early_stopping", "monitor", mons, 2,
                                                 MONITOR_VAL_LOSS);
            if (get_int(c, es, "train.early_stopping", "patience", 1, 1 << 24,
                        "a positive integer (epochs)", &v))
                ts->patience = (int)v;
            get_num(c, es, "train.early_stopping", "min_delta", 0, 1e9, false, false,
                    "a non-negative number", &ts->min_delta);
        }
    }
}
