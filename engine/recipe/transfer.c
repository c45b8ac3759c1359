/* transfer.c — the transfer section against the graph: freeze selectors (name, depth, list of
 * names and /regexes/, none, all) into layer.frozen, lr_mult rules into layer.lr_mult, the unfreeze
 * schedule, the checkpoint's tensor shapes against the model, and the feature-cache rule. */
#include "recipe_impl.h"

#include "io.h"

#include <dirent.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void recipe_parse_freeze(rctx *c, const ynode *n, const char *what, freeze_spec *f)
{
    memset(f, 0, sizeof *f);
    f->kind = FREEZE_NONE;
    if (!n || ynode_is_null(n)) return;
    f->mark = n->mark;
    if (n->kind == YNODE_MAP) {
        graft_diags_add(c->d, n->mark,
                        "%s: expected a layer name, a depth, a list of names or /regexes/, none or "
                        "all, found a mapping",
                        what);
        return;
    }
    if (n->kind == YNODE_SEQ) {
        f->kind = FREEZE_LIST;
        f->list = arena_alloc(c->a, (size_t)(n->count ? n->count : 1) * sizeof *f->list);
        if (!f->list) return;
        for (int i = 0; i < n->count; i++) {
            const ynode *s = n->items[i];
            if (s->kind != YNODE_SCALAR || ynode_is_null(s)) {
                graft_diags_add(c->d, s->mark, "%s: expected a layer name or /regex/, found %s",
                                what, describe(c, s));
                continue;
            }
            f->list[f->nlist++] = s->value;
        }
        return;
    }
    const char *v = n->value;
    if (!n->quoted && (strcmp(v, "none") == 0 || strcmp(v, "false") == 0)) return;
    if (!n->quoted && (strcmp(v, "all") == 0 || strcmp(v, "true") == 0)) {
        f->kind = FREEZE_ALL;
        return;
    }
    if (!n->quoted && v[0] >= '0' && v[0] <= '9') {
        long d;
        if (parse_int(c, n, what, 0, 1 << 20, "a layer name or a non-negative depth", &d)) {
            f->kind = FREEZE_DEPTH;
            f->depth = (int)d;
        }
        return;
    }
    if (is_regex(v)) {
        f->kind = FREEZE_LIST;
        f->list = arena_alloc(c->a, sizeof *f->list);
        if (f->list) f->list[f->nlist++] = v;
        return;
    }
    f->kind = FREEZE_THROUGH;
    f->through = v;
}

static void unknown_layer(rctx *c, graft_mark at, const char *what, const char *name)
{
    const graph *g = &c->r->graph;
    const char **names = malloc((size_t)(g->nlayers + 1) * sizeof *names);
    const char *dym = NULL;
    if (names) {
        for (int i = 0; i < g->nlayers; i++) names[i] = g->layers[i].name;
        dym = did_you_mean(name, names, g->nlayers);
    }
    if (dym)
        graft_diags_add(c->d, at, "%s: unknown layer '%s' (did you mean '%s'?)", what, name, dym);
    else
        graft_diags_add(c->d, at, "%s: unknown layer '%s'", what, name);
    free(names);
}

/* Compile "/re/" as a whole-name POSIX extended regex. */
static bool compile_regex(rctx *c, const char *pattern, graft_mark at, const char *what,
                          regex_t *re)
{
    size_t n = strlen(pattern);
    char *full = arena_printf(c->a, "^(%.*s)$", (int)(n - 2), pattern + 1);
    if (!full) return false;
    int rc = regcomp(re, full, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[256];
        regerror(rc, re, msg, sizeof msg);
        graft_diags_add(c->d, at, "%s: bad regular expression %s: %s", what, pattern, msg);
        return false;
    }
    return true;
}

/* Mark sel[i] for every layer the selector names; report unknown names and empty regexes. */
static bool select_layers(rctx *c, const char *pattern, graft_mark at, const char *what, bool *sel)
{
    const graph *g = &c->r->graph;
    if (is_regex(pattern)) {
        regex_t re;
        if (!compile_regex(c, pattern, at, what, &re)) return false;
        int hits = 0;
        for (int i = 0; i < g->nlayers; i++)
            if (regexec(&re, g->layers[i].name, 0, NULL, 0) == 0) {
                sel[i] = true;
                hits++;
            }
        regfree(&re);
        if (!hits) {
            graft_diags_add(c->d, at, "%s: %s matches no layer (it must match whole names)", what,
                            pattern);
            return false;
        }
        return true;
    }
    int i = graph_find_layer(g, pattern);
    if (i < 0) {
        unknown_layer(c, at, what, pattern);
        return false;
    }
    sel[i] = true;
    return true;
}

bool recipe_resolve_freeze(rctx *c, const freeze_spec *f, const char *what, bool apply)
{
    graph *g = &c->r->graph;
    if (!g->nlayers) return false;
    bool *sel = calloc((size_t)g->nlayers, sizeof *sel);
    if (!sel) {
        c->d->nomem = true;
        return false;
    }
    bool ok = true;
    switch (f->kind) {
    case FREEZE_NONE: break;
    case FREEZE_ALL:
        for (int i = 0; i < g->nlayers; i++) sel[i] = true;
        break;
    case FREEZE_DEPTH:
        if (f->depth > g->nlayers) {
            graft_diags_add(c->d, f->mark, "%s: depth %d is more than the %d layers", what,
                            f->depth, g->nlayers);
            ok = false;
            break;
        }
        for (int i = 0; i < f->depth; i++) sel[i] = true;
        break;
    case FREEZE_THROUGH: {
        int k = graph_find_layer(g, f->through);
        if (k < 0) {
            unknown_layer(c, f->mark, what, f->through);
            ok = false;
            break;
        }
        for (int i = 0; i <= k; i++) sel[i] = true;
        break;
    }
    case FREEZE_LIST:
        for (int j = 0; j < f->nlist; j++)
            if (!select_layers(c, f->list[j], f->mark, what, sel)) ok = false;
        break;
    }
    if (ok) {
        for (int i = 0; i < g->nlayers; i++) {
            if (sel[i] && g->layers[i].fresh && layer_param_count(&g->layers[i]) > 0) {
                graft_diags_add(c->d, f->mark,
                                "%s: this freezes '%s' of the new head, which is freshly "
                                "initialised and must train",
                                what, g->layers[i].name);
                ok = false;
                break;
            }
        }
    }
    if (ok && apply)
        for (int i = 0; i < g->nlayers; i++) g->layers[i].frozen = sel[i];
    free(sel);
    return ok;
}

graft_status recipe_apply_freeze(graft_recipe *r, const freeze_spec *f, graft_diags *diags)
{
    graft_diags local = {0};
    rctx c = {.a = &r->arena, .d = diags ? diags : &local, .r = r};
    bool ok = recipe_resolve_freeze(&c, f, "train.unfreeze.freeze", true);
    bool nomem = c.d->nomem;
    graft_diags_free(&local);
    return ok ? GRAFT_OK : nomem ? GRAFT_STATUS_NOMEM : GRAFT_STATUS_BAD_RECIPE;
}

void recipe_parse_transfer(rctx *c, const ynode *t)
{
    transfer_spec *ts = &c->r->transfer;
    ts->freeze.kind = FREEZE_NONE;
    ts->cache_features = CACHE_AUTO;
    ts->cache_device_fraction = 0.25;
    if (!want_map(c, t, "transfer")) return;
    check_section(c, t, "transfer", "transfer");
    const ynode *from = get(t, "from");
    if (from) {
        const char *p = parse_str(c, from, "transfer.from");
        if (p) {
            ts->from = resolve_path(c, from);
            ts->from_mark = from->mark;
        }
    }
    recipe_parse_freeze(c, get(t, "freeze"), "transfer.freeze", &ts->freeze);
    ts->bn_train = key_enum(c, t, "transfer", "transfer", "bn", 0) == 1;
    const recipe_key *ck = key_spec("transfer", "cache_features");
    const ynode *cn = get(t, "cache_features");
    if (cn) {
        /* YAML 1.1 habits: on/off/true/false all mean what they say */
        int v = -1;
        if (cn->kind == YNODE_SCALAR && !cn->quoted) {
            if (strcmp(cn->value, "true") == 0) v = 1;
            if (strcmp(cn->value, "false") == 0) v = 2;
        }
        if (v < 0) v = parse_enum(c, cn, "transfer.cache_features", ck->names, ck->nnames);
        ts->cache_features = v == 1 ? CACHE_ON : v == 2 ? CACHE_OFF : CACHE_AUTO;
    }
    key_num(c, t, "transfer", "transfer", "cache_device_fraction", &ts->cache_device_fraction);
}

/* freeze, lr_mult and unfreeze, once the graph exists */
void recipe_resolve_transfer(rctx *c, const ynode *train)
{
    graft_recipe *r = c->r;
    graph *g = &r->graph;
    recipe_resolve_freeze(c, &r->transfer.freeze, "transfer.freeze", true);

    const ynode *lm = train && train->kind == YNODE_MAP ? get(train, "lr_mult") : NULL;
    if (lm && want_map(c, lm, "train.lr_mult")) {
        r->train.lr_mult = arena_alloc(c->a, (size_t)(lm->count ? lm->count : 1) *
                                                 sizeof *r->train.lr_mult);
        bool *sel = calloc((size_t)(g->nlayers ? g->nlayers : 1), sizeof *sel);
        if (!sel || !r->train.lr_mult) c->d->nomem = true;
        for (int i = 0; sel && r->train.lr_mult && i < lm->count; i++) {
            double f;
            const char *what = arena_printf(c->a, "train.lr_mult.%s", lm->keys[i]);
            /* the factor and the layers are both checked: an entry wrong in both says both */
            bool good =
                key_item_num(c, lm->items[i], what, "train", "lr_mult", &f);
            memset(sel, 0, (size_t)g->nlayers * sizeof *sel);
            if (!g->nlayers ||
                !select_layers(c, lm->keys[i], lm->key_marks[i], "train.lr_mult", sel) || !good)
                continue;
            lr_mult_rule *rule = &r->train.lr_mult[r->train.nlr_mult++];
            rule->pattern = lm->keys[i];
            rule->factor = (float)f;
            rule->mark = lm->key_marks[i];
            /* later rules override earlier ones, so a general rule can come first */
            for (int j = 0; j < g->nlayers; j++)
                if (sel[j]) g->layers[j].lr_mult = rule->factor;
        }
        free(sel);
    }

    const ynode *uf = train && train->kind == YNODE_MAP ? get(train, "unfreeze") : NULL;
    if (!uf) return;
    if (uf->kind != YNODE_SEQ) {
        graft_diags_add(c->d, uf->mark,
                        "train.unfreeze: expected a list of {epoch: E, freeze: ...}, found %s",
                        describe(c, uf));
        return;
    }
    r->train.unfreeze = arena_alloc(c->a, (size_t)(uf->count ? uf->count : 1) *
                                              sizeof *r->train.unfreeze);
    if (!r->train.unfreeze) return;
    int last_epoch = 0;
    for (int i = 0; i < uf->count; i++) {
        const ynode *s = uf->items[i];
        if (!want_map(c, s, "train.unfreeze item")) {
            if (ynode_is_null(s))
                graft_diags_add(c->d, s->mark, "train.unfreeze: empty item");
            continue;
        }
        check_section(c, s, "train.unfreeze item", "train.unfreeze");
        unfreeze_step *st = &r->train.unfreeze[r->train.nunfreeze];
        /* every part of the item is checked, so an item wrong in two ways reports both */
        bool good = true;
        long e = 0;
        const ynode *en = get(s, "epoch");
        if (!en) {
            graft_diags_add(c->d, s->mark, "train.unfreeze: item needs epoch: E");
            good = false;
        } else if (!key_item_int(c, en, "train.unfreeze.epoch", "train.unfreeze", "epoch", &e)) {
            good = false;
        } else if (e > r->train.epochs) {
            graft_diags_add(c->d, en->mark,
                            "train.unfreeze: epoch %ld is past the last epoch (train.epochs is %d)",
                            e, r->train.epochs);
            good = false;
        } else if (e <= last_epoch) {
            graft_diags_add(c->d, en->mark,
                            "train.unfreeze: epochs must increase; %ld comes after %d", e,
                            last_epoch);
            good = false;
        } else {
            last_epoch = (int)e;
        }
        const ynode *fn = ynode_get(s, "freeze");
        if (!fn) {
            graft_diags_add(c->d, s->mark, "train.unfreeze: item needs freeze: LAYER, depth or none");
            continue;
        }
        st->epoch = (int)e;
        recipe_parse_freeze(c, fn, "train.unfreeze.freeze", &st->freeze);
        if (!st->freeze.mark.file) st->freeze.mark = fn->mark;
        if (recipe_resolve_freeze(c, &st->freeze, "train.unfreeze.freeze", false) && good)
            r->train.nunfreeze++;
    }
}

static void dims_format(const int64_t *d, int rank, char *out, size_t n)
{
    size_t o = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < rank && o < n; i++)
        o += (size_t)snprintf(out + o, n - o, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (o < n) snprintf(out + o, n - o, "]");
}

static void absolute(const char *path, char *out, size_t n)
{
    char cwd[4096];
    if (path[0] != '/' && getcwd(cwd, sizeof cwd))
        fs_join(cwd, path, out, n);
    else
        snprintf(out, n, "%s", path);
    path_normalize(out);
}

/* A missing transfer.from that another recipe writes: the recipes beside the file that says
 * `from:` are read (extends merged, nothing else checked), and the one whose output: is the
 * checkpoint's run directory is named. Returns its path (arena) or NULL. */
static const char *recipe_that_makes(rctx *c, const char *checkpoint)
{
    char want[8192], dir[4096];
    absolute(checkpoint, want, sizeof want);
    char *slash = strrchr(want, '/');
    if (!slash) return NULL;
    *slash = 0; /* the run directory */
    mark_dir(c->r->transfer.from_mark, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d) return NULL;
    const char *found = NULL;
    char self[8192];
    absolute(c->r->file ? c->r->file : "", self, sizeof self);
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".yaml") != 0) continue;
        char file[8192], abs[8192];
        fs_join(dir, de->d_name, file, sizeof file);
        absolute(file, abs, sizeof abs);
        if (strcmp(abs, self) == 0) continue;
        arena a = {0};
        graft_diags quiet = {0};
        ynode *root = recipe_tree_load(&a, file, NULL, 0, &quiet);
        const ynode *out = root && root->kind == YNODE_MAP ? ynode_get(root, "output") : NULL;
        if (out && out->kind == YNODE_SCALAR) {
            char odir[4096], full[8192], oabs[8192];
            mark_dir(out->mark, odir, sizeof odir);
            fs_join(odir, out->value, full, sizeof full);
            absolute(full, oabs, sizeof oabs);
            if (strcmp(oabs, want) == 0) found = arena_strdup(c->a, file);
        }
        graft_diags_free(&quiet);
        arena_free(&a);
    }
    closedir(d);
    return found;
}

void recipe_check_checkpoint(rctx *c)
{
    graft_recipe *r = c->r;
    const char *path = r->transfer.from;
    if (!path) return;
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        int err = errno;
        const char *maker = err == ENOENT ? recipe_that_makes(c, path) : NULL;
        if (maker)
            graft_diags_add(c->d, r->transfer.from_mark,
                            "transfer.from: %s has not been made yet: train %s first", path, maker);
        else
            graft_diags_add(c->d, r->transfer.from_mark, "transfer.from: cannot read %s: %s", path,
                            strerror(err));
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        graft_diags_add(c->d, r->transfer.from_mark, "transfer.from: %s is not a regular file",
                        path);
        return;
    }
    st_file *f = NULL;
    graft_error e = {0};
    if (st_open(path, &f, &e) != GRAFT_OK) {
        graft_diags_add(c->d, r->transfer.from_mark,
                        "transfer.from: not a readable safetensors checkpoint: %s", e.message);
        return;
    }
    graph *g = &r->graph;
    for (int i = 0; i < g->nlayers; i++) {
        layer *l = &g->layers[i];
        if (l->fresh) continue;
        for (int j = 0; j < l->nparams; j++) {
            param_info *p = &l->params[j];
            const st_tensor *t = st_find(f, p->name);
            char old[512];
            if (!t && param_legacy_name(l, p, old, sizeof old)) t = st_find(f, old);
            if (!t) continue;
            bool same = t->rank == p->rank;
            for (int k = 0; same && k < p->rank; k++) same = t->shape[k] == p->dims[k];
            if (same) {
                p->in_checkpoint = true;
                continue;
            }
            char have[128], want[128];
            int64_t wd[4];
            for (int k = 0; k < p->rank; k++) wd[k] = p->dims[k];
            dims_format(t->shape, t->rank < 8 ? t->rank : 8, have, sizeof have);
            dims_format(wd, p->rank, want, sizeof want);
            graft_diags_add(c->d, l->mark, "%s: checkpoint has %s, model has %s", p->name, have,
                            want);
        }
    }
    st_close(f);
}

const char recipe_align_reason[] = "adapt: the target batches run the whole network every step";

bool recipe_aligns(const graft_recipe *r)
{
    return r->adapt.present && (r->adapt.methods & ADAPT_ALIGNING) != 0;
}

int recipe_step_rows(const graft_recipe *r, int batch)
{
    return recipe_aligns(r) ? 2 * batch : batch;
}

bool recipe_feature_cache(const graft_recipe *r, char *reason, size_t n)
{
    if (r->transfer.cache_features == CACHE_OFF) {
        snprintf(reason, n, "transfer.cache_features is off");
        return false;
    }
    /* with train.unfreeze the trainer decides again for each phase; this is the first phase */
    if (!graph_feature_cache(&r->graph, r->transfer.bn_train, data_spec_augments(&r->data),
                             reason, n))
        return false;
    if (recipe_aligns(r)) {
        snprintf(reason, n, "%s", recipe_align_reason);
        return false;
    }
    return true;
}
