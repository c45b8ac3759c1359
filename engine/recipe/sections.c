/* sections.c — the data and train sections into data_spec and train_spec: keys, types, ranges,
 * PyTorch defaults, and paths resolved against the file that says them (and checked readable). */
#include "recipe_impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Key lists, ranges, enums and "expected" texts come from the key table (keys.c), which
 * `graft schema` turns into the JSON Schema too. */

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

void recipe_parse_source(rctx *c, const ynode *n, const char *where, int def_format,
                         bool labels_optional, data_source *s)
{
    memset(s, 0, sizeof *s);
    s->label_column = -1;
    if (!want_map(c, n, where)) return;
    s->present = true;
    s->mark = n->mark;
    s->unlabelled = labels_optional;
    int f = def_format;
    const ynode *fn = get(n, "format");
    const recipe_key *fk = key_spec("data.source", "format");
    if (fn) f = parse_enum(c, fn, arena_printf(c->a, "%s.format", where), fk->names, fk->nnames);
    else if (f < 0)
        graft_diags_add(c->d, n->mark, "%s: needs format: idx, npy, csv or folder", where);
    if (f < 0) return;
    s->format = (data_format)(DATA_IDX + f);
    switch (s->format) {
    case DATA_IDX:
    case DATA_NPY: {
        check_section(c, n, arena_printf(c->a, "%s (format %s)", where, fk->names[f]),
                      "data.source.idx");
        s->images = data_path(c, n, where, "images", false);
        if (!labels_optional || get(n, "labels"))
            s->labels = data_path(c, n, where, "labels", false);
        break;
    }
    case DATA_CSV: {
        check_section(c, n, arena_printf(c->a, "%s (format csv)", where), "data.source.csv");
        s->path = data_path(c, n, where, "path", false);
        long lc;
        if (key_int(c, n, where, "data.source.csv", "label_column", &lc)) s->label_column = (int)lc;
        break;
    }
    case DATA_FOLDER: {
        check_section(c, n, arena_printf(c->a, "%s (format folder)", where), "data.source.folder");
        s->root = data_path(c, n, where, "root", true);
        break;
    }
    default: break;
    }
}

/* data.normalize.mean / std: one number (a one-channel input, or every channel) or a list */
static int parse_floats(rctx *c, const ynode *n, const char *what, const char *key, float *out)
{
    const recipe_key *k = key_spec("data.normalize", key);
    if (n->kind != YNODE_SEQ) {
        /* one number for a one-channel input is common: mean: 0.2860 */
        double v;
        if (!parse_num(c, n, what, k->lo, k->hi, k->lo_open, k->hi_open,
                       arena_printf(c->a, "%s or a list of them", k->expect), &v))
            return 0;
        out[0] = (float)v;
        return 1;
    }
    if (n->count < k->list_min || n->count > k->list_max) {
        graft_diags_add(c->d, n->mark, "%s: expected %d to %d numbers, found %d", what,
                        k->list_min, k->list_max, n->count);
        return 0;
    }
    for (int i = 0; i < n->count; i++) {
        double v;
        if (!key_item_num(c, n->items[i], what, "data.normalize", key, &v)) return 0;
        out[i] = (float)v;
    }
    return n->count;
}

void recipe_parse_data(rctx *c, const ynode *d)
{
    data_spec *ds = &c->r->data;
    ds->val_split = 0.1;
    if (!want_map(c, d, "data")) return;
    check_section(c, d, "data", "data");
    int def = -1;
    if (get(d, "format")) def = key_enum(c, d, "data", "data", "format", -1);
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
    if (get(d, "train")) recipe_parse_source(c, get(d, "train"), "data.train", def, false, &ds->train);
    if (get(d, "val")) recipe_parse_source(c, get(d, "val"), "data.val", def, false, &ds->val);
    if (get(d, "test")) recipe_parse_source(c, get(d, "test"), "data.test", def, false, &ds->test);
    if (!ds->train.present && !root)
        graft_diags_add(c->d, d->mark, "data: needs a train source");
    /* image folders: a file that is not a readable image stops the load (listing every such
     * file), or with skip is left out and listed in the data set's report */
    bool skip = key_enum(c, d, "data", "data", "on_bad_image", 0) == 1;
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
                if (!key_item_int(c, cl->items[i], "data.classes", "data", "classes", &v))
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
    if (key_int(c, d, "data", "data", "shots", &v)) ds->shots = (int)v;
    key_num(c, d, "data", "data", "val_split", &ds->val_split);
    if (key_int(c, d, "data", "data", "seed", &v)) ds->seed = (unsigned long)v;

    const ynode *nm = get(d, "normalize");
    if (nm && want_map(c, nm, "data.normalize")) {
        check_section(c, nm, "data.normalize", "data.normalize");
        const ynode *mean = get(nm, "mean"), *std = get(nm, "std");
        if (!mean || !std) {
            graft_diags_add(c->d, nm->mark, "data.normalize: needs both mean and std");
        } else {
            int a = parse_floats(c, mean, "data.normalize.mean", "mean", ds->norm_mean);
            int b = parse_floats(c, std, "data.normalize.std", "std", ds->norm_std);
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
        check_section(c, au, "data.augment", "data.augment");
        const ynode *fl = get(au, "flip");
        if (fl) {
            const recipe_key *fk = key_spec("data.augment", "flip");
            bool b;
            if (fl->kind == YNODE_SCALAR && !fl->quoted && strcmp(fl->value, "false") == 0)
                ds->flip = false;
            else if (fl->kind == YNODE_SCALAR && !fl->quoted && strcmp(fl->value, "true") == 0 &&
                     parse_bool(c, fl, "data.augment.flip", &b))
                ds->flip = true;
            else
                ds->flip = parse_enum(c, fl, "data.augment.flip", fk->names, fk->nnames) == 0;
        }
        if (key_int(c, au, "data.augment", "data.augment", "crop", &v)) ds->crop_pad = (int)v;
        /* random_resized_crop: true (torchvision's scale 0.08..1, ratio 3/4..4/3) or the
         * smallest area fraction */
        const ynode *rr = get(au, "random_resized_crop");
        if (rr && rr->kind == YNODE_SCALAR && !rr->quoted &&
            (strcmp(rr->value, "true") == 0 || strcmp(rr->value, "false") == 0)) {
            ds->rrc_min_scale = strcmp(rr->value, "true") == 0 ? 0.08f : 0.f;
        } else if (rr) {
            double v2;
            if (key_item_num(c, rr, "data.augment.random_resized_crop", "data.augment",
                             "random_resized_crop", &v2))
                ds->rrc_min_scale = (float)v2;
        }
        if (rr && ds->rrc_min_scale > 0 && ds->crop_pad > 0)
            graft_diags_add(c->d, rr->mark,
                            "data.augment: random_resized_crop and crop are alternatives; keep one");
        if (data_spec_augments(ds) && c->r->graph.input.rank == 1)
            graft_diags_add(c->d, au->mark, "data.augment: flips and crops need an image input [C, H, W]");
    }
}


/* train.devices: a spec, "all", or a list of specs; kept as one comma-separated list, each item
 * checked against the device-spec grammar here (which devices exist is known only at run time). */
static void parse_devices(rctx *c, const ynode *n, train_spec *ts)
{
    if (!n) return;
    const char *w = "train.devices";
    buf b = {0};
    int count = n->kind == YNODE_SEQ ? n->count : 1;
    if (n->kind == YNODE_SEQ && (count < 1 || count > DEVSPEC_MAX_LIST)) {
        graft_diags_add(c->d, n->mark, "%s: expected 1 to %d device specs, found %d", w,
                        DEVSPEC_MAX_LIST, count);
        return;
    }
    bool ok = true;
    for (int i = 0; i < count; i++) {
        const ynode *it = n->kind == YNODE_SEQ ? n->items[i] : n;
        const char *spec = parse_str(c, it, w);
        if (!spec) {
            ok = false;
            continue;
        }
        devspec ds[DEVSPEC_MAX_LIST];
        int k;
        bool all;
        graft_error de = {0};
        if (devspec_parse_list(spec, ds, DEVSPEC_MAX_LIST, &k, &all, &de)) {
            graft_diags_add(c->d, it->mark, "%s: %s", w, de.message);
            ok = false;
        } else if (all && count > 1) {
            graft_diags_add(c->d, it->mark, "%s: all stands alone, not in a list", w);
            ok = false;
        }
        buf_printf(&b, "%s%s", i ? "," : "", spec);
    }
    if (ok && b.data && !b.failed) ts->devices = arena_strdup(c->a, b.data);
    buf_free(&b);
}

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
    check_section(c, t, "train", "train");
    long v;
    if (key_int(c, t, "train", "train", "epochs", &v)) ts->epochs = (int)v;
    if (key_int(c, t, "train", "train", "batch_size", &v)) ts->batch_size = (int)v;
    ts->optimizer = (optimizer_kind)key_enum(c, t, "train", "train", "optimizer", OPT_ADAM);
    key_num(c, t, "train", "train", "lr", &ts->lr);
    key_num(c, t, "train", "train", "momentum", &ts->momentum);
    const ynode *b = get(t, "betas");
    if (b) {
        if (b->kind != YNODE_SEQ || b->count != 2)
            graft_diags_add(c->d, b->mark, "train.betas: expected [beta1, beta2], found %s",
                            describe(c, b));
        else {
            key_item_num(c, b->items[0], "train.betas", "train", "betas", &ts->beta1);
            key_item_num(c, b->items[1], "train.betas", "train", "betas", &ts->beta2);
        }
    }
    key_num(c, t, "train", "train", "eps", &ts->eps);
    key_num(c, t, "train", "train", "weight_decay", &ts->weight_decay);
    ts->schedule = (schedule_kind)key_enum(c, t, "train", "train", "schedule", SCHED_CONSTANT);
    ts->tune = (tune_kind)key_enum(c, t, "train", "train", "tune", TUNE_KIND_AUTO);
    ts->on_nonfinite =
        (nonfinite_kind)key_enum(c, t, "train", "train", "on_nonfinite", NONFINITE_STOP);
    key_num(c, t, "train", "train", "warmup_epochs", &ts->warmup_epochs);
    if (ts->warmup_epochs > ts->epochs)
        graft_diags_add(c->d, get(t, "warmup_epochs")->mark,
                        "train.warmup_epochs: %g is more than the %d epochs", ts->warmup_epochs,
                        ts->epochs);
    if (key_int(c, t, "train", "train", "step_size", &v)) ts->step_size = (int)v;
    key_num(c, t, "train", "train", "gamma", &ts->gamma);
    if (ts->schedule == SCHED_STEP && ts->step_size == 0)
        graft_diags_add(c->d, get(t, "schedule")->mark,
                        "train.schedule: step needs train.step_size (epochs between decays)");
    key_num(c, t, "train", "train", "l2sp", &ts->l2sp);
    key_num(c, t, "train", "train", "label_smoothing", &ts->label_smoothing);
    if (key_int(c, t, "train", "train", "max_steps", &v)) ts->max_steps = v;
    ts->checkpoint_seconds = 1;
    key_num(c, t, "train", "train", "checkpoint_seconds", &ts->checkpoint_seconds);
    if (key_int(c, t, "train", "train", "seed", &v)) ts->seed = (unsigned long)v;
    parse_devices(c, get(t, "devices"), ts);
    get_bool(c, t, "train", "sync_bn", &ts->sync_bn);
    ts->split = (split_kind)key_enum(c, t, "train", "train", "split", SPLIT_EVEN);
    const ynode *es = get(t, "early_stopping");
    if (es) {
        bool on;
        if (es->kind == YNODE_SCALAR) {
            if (parse_bool(c, es, "train.early_stopping", &on)) ts->early_stopping = on;
        } else if (want_map(c, es, "train.early_stopping")) {
            const char *es_w = "train.early_stopping";
            check_section(c, es, es_w, es_w);
            ts->early_stopping = true;
            ts->monitor = (monitor_kind)key_enum(c, es, es_w, es_w, "monitor", MONITOR_VAL_LOSS);
            if (key_int(c, es, es_w, es_w, "patience", &v)) ts->patience = (int)v;
            key_num(c, es, es_w, es_w, "min_delta", &ts->min_delta);
        }
    }
}
