/* load.c — from files to one merged tree: extends chains (relative to the file that says them,
 * cycles reported with the chain), model: {file: PATH}, then each --set PATH=YAML applied. */
#include "recipe_impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct loader {
    arena *a;
    graft_diags *d;
    const char *chain[RECIPE_MAX_EXTENDS + 1]; /* canonical paths of the files being loaded */
    const char *shown[RECIPE_MAX_EXTENDS + 1]; /* the same, as written (for messages) */
    int depth;
} loader;

static const char *canonical(loader *L, const char *path)
{
    char buf[PATH_MAX];
    if (realpath(path, buf)) return arena_strdup(L->a, buf);
    return arena_strdup(L->a, path);
}

static ynode *load_file(loader *L, const char *path, graft_mark from);

/* Resolve a path-valued node (extends, model.file) relative to the file that says it. */
static const char *node_path(loader *L, const ynode *n, const char *what)
{
    if (!n || n->kind != YNODE_SCALAR || ynode_is_null(n)) {
        graft_diags_add(L->d, n ? n->mark : (graft_mark){0}, "%s: expected a file path, found %s",
                        what, !n || ynode_is_null(n) ? "nothing" : n->kind == YNODE_MAP ? "a mapping" : "a sequence");
        return NULL;
    }
    rctx c = {.a = L->a, .d = L->d};
    return resolve_path(&c, n);
}

static ynode *load_file(loader *L, const char *path, graft_mark from)
{
    const char *canon = canonical(L, path);
    if (!canon) return NULL;
    for (int i = 0; i < L->depth; i++) {
        if (strcmp(L->chain[i], canon) != 0) continue;
        buf b = {0};
        for (int j = i; j < L->depth; j++) buf_printf(&b, "%s -> ", L->shown[j]);
        buf_printf(&b, "%s", path);
        graft_diags_add(L->d, from, "extends cycle: %s", b.data ? b.data : path);
        buf_free(&b);
        return NULL;
    }
    if (L->depth >= RECIPE_MAX_EXTENDS) {
        graft_diags_add(L->d, from, "more than %d files in one extends chain", RECIPE_MAX_EXTENDS);
        return NULL;
    }
    ynode *root = yaml_load_file(L->a, path, from, L->d);
    if (!root) return NULL;
    L->chain[L->depth] = canon;
    L->shown[L->depth] = path;
    L->depth++;
    int ei = ynode_find(root, "extends");
    if (ei >= 0) {
        ynode *en = root->items[ei];
        ynode_remove(root, ei);
        const char *base_path = node_path(L, en, "extends");
        ynode *base = base_path ? load_file(L, base_path, en->mark) : NULL;
        root = base ? ynode_merge(L->a, base, root) : NULL;
    }
    L->depth--;
    return root;
}

/* model: {file: PATH, ...}: the file is loaded as a recipe (extends and all) and its model
 * section is the base over which the other keys of this model mapping are merged. */
static ynode *resolve_model_file(loader *L, ynode *root, int depth)
{
    ynode *model = ynode_get(root, "model");
    int fi = ynode_find(model, "file");
    if (fi < 0) return root;
    if (depth > RECIPE_MAX_EXTENDS) {
        graft_diags_add(L->d, model->mark, "model.file nested more than %d deep",
                        RECIPE_MAX_EXTENDS);
        return NULL;
    }
    ynode *fn = model->items[fi];
    ynode_remove(model, fi);
    const char *path = node_path(L, fn, "model.file");
    if (!path) return NULL;
    ynode *other = load_file(L, path, fn->mark);
    if (!other) return NULL;
    L->chain[L->depth] = canonical(L, path);
    L->shown[L->depth] = path;
    L->depth++;
    other = resolve_model_file(L, other, depth + 1);
    L->depth--;
    if (!other) return NULL;
    ynode *base = ynode_get(other, "model");
    if (!base || base->kind != YNODE_MAP) {
        graft_diags_add(L->d, fn->mark, "model.file: %s has no model: mapping", path);
        return NULL;
    }
    int mi = ynode_find(root, "model");
    root->items[mi] = ynode_merge(L->a, base, model);
    return root->items[mi] ? root : NULL;
}

/* Split "a.b.c" at dots; a component written in quotes ("layer1.0.conv1") keeps its dots. */
static int split_path(arena *a, const char *path, const char **comps, int max)
{
    int n = 0;
    const char *p = path;
    while (*p && n < max) {
        const char *start = p, *end;
        if (*p == '"') {
            start = ++p;
            while (*p && *p != '"') p++;
            end = p;
            if (*p == '"') p++;
        } else {
            while (*p && *p != '.') p++;
            end = p;
        }
        comps[n++] = arena_strndup(a, start, (size_t)(end - start));
        if (*p == '.') p++;
        else if (*p) return -1;
    }
    return *p ? -1 : n;
}

static bool all_digits(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

static void apply_set(loader *L, ynode *root, const char *opt)
{
    const char *label = arena_printf(L->a, "--set %s", opt);
    if (!label) return;
    graft_mark at = {label, 1, 1};
    const char *eq = strchr(opt, '=');
    if (!eq || eq == opt) {
        graft_diags_add(L->d, at, "expected --set PATH=VALUE (e.g. --set train.lr=0.01)");
        return;
    }
    char *path = arena_strndup(L->a, opt, (size_t)(eq - opt));
    const char *comps[64];
    int nc = path ? split_path(L->a, path, comps, 64) : -1;
    for (int i = 0; i < nc; i++)
        if (!comps[i] || !comps[i][0]) nc = -1;
    if (nc <= 0) {
        graft_diags_add(L->d, at, "bad path '%s': expected keys separated by dots", path ? path : "");
        return;
    }
    size_t vlen = strlen(eq + 1);
    ynode *value = yaml_parse(L->a, label, eq + 1, vlen, 0, (int)(eq - opt) + 1, L->d);
    if (!value) return;
    /* walk down; missing keys are created (the schema then reports unknown ones at this mark) */
    ynode *node = root;
    const char *walked = "";
    for (int i = 0; i < nc;) {
        if (node->kind == YNODE_SEQ) {
            if (!all_digits(comps[i])) {
                graft_diags_add(L->d, at, "%s%s is a list: expected an index, found '%s'", walked,
                                walked[0] ? "" : "(top)", comps[i]);
                return;
            }
            long k = strtol(comps[i], NULL, 10);
            if (k >= node->count) {
                graft_diags_add(L->d, at, "index %ld is past the end of %s (%d items)", k, walked,
                                node->count);
                return;
            }
            if (i + 1 == nc) {
                node->items[k] = value;
                return;
            }
            walked = arena_printf(L->a, "%s.%s", walked, comps[i]);
            node = node->items[k];
            i++;
            continue;
        }
        if (node->kind != YNODE_MAP) {
            graft_diags_add(L->d, at, "%s is %s, not a mapping: cannot set '%s' inside it",
                            walked, ynode_is_null(node) ? "empty" : "a scalar", comps[i]);
            return;
        }
        /* greedy: the longest run of components that names an existing key (layer names and
         * lr_mult keys may contain dots) */
        int found = -1, used = 0;
        char joined[1024] = "";
        for (int j = i; j < nc; j++) {
            size_t jl = strlen(joined);
            snprintf(joined + jl, sizeof joined - jl, "%s%s", j > i ? "." : "", comps[j]);
            int k = ynode_find(node, joined);
            if (k >= 0) {
                found = k;
                used = j - i + 1;
            }
        }
        if (found < 0 && strcmp(walked, "train.lr_mult") == 0) {
            /* lr_mult keys are layer names, which may contain dots (layer1.0.conv1): the rest of
             * the path is one key */
            if (!ynode_push(L->a, node, arena_strdup(L->a, joined), at, value)) return;
            return;
        }
        if (found < 0) {
            /* a new key: the rest of the path nests under it */
            ynode *child = i + 1 == nc ? value : ynode_new(L->a, YNODE_MAP, at);
            if (!child || !ynode_push(L->a, node, comps[i], at, child)) return;
            if (i + 1 == nc) return;
            walked = arena_printf(L->a, "%s%s%s", walked, walked[0] ? "." : "", comps[i]);
            node = child;
            i++;
            continue;
        }
        if (i + used == nc) {
            node->items[found] = value;
            node->key_marks[found] = at;
            return;
        }
        if (ynode_is_null(node->items[found])) {
            ynode *m = ynode_new(L->a, YNODE_MAP, at);
            if (!m) return;
            node->items[found] = m;
        }
        walked = arena_printf(L->a, "%s%s%s", walked, walked[0] ? "." : "", node->keys[found]);
        node = node->items[found];
        i += used;
    }
}

static bool sets_model_file(const char *opt)
{
    return strncmp(opt, "model=", 6) == 0 || strncmp(opt, "model.file=", 11) == 0;
}

ynode *recipe_tree_load(arena *a, const char *file, const char *const *sets, int nsets,
                        graft_diags *d)
{
    loader L = {.a = a, .d = d};
    int before = d->count;
    ynode *root = load_file(&L, file, (graft_mark){file, 0, 0});
    if (!root) return NULL;
    /* --set model.file=… must choose the file before it is loaded; every other --set applies to
     * the complete tree, so `--set model.layers.3.units=64` reaches a layer of the model file */
    for (int i = 0; i < nsets; i++)
        if (sets_model_file(sets[i])) apply_set(&L, root, sets[i]);
    if (d->count > before) return NULL;
    root = resolve_model_file(&L, root, 0);
    if (!root) return NULL;
    for (int i = 0; i < nsets; i++)
        if (!sets_model_file(sets[i])) apply_set(&L, root, sets[i]);
    int ei = ynode_find(root, "extends");
    if (ei >= 0)
        graft_diags_add(d, root->key_marks[ei],
                        "extends is applied before --set: it cannot be set from the command line");
    return d->count > before ? NULL : root;
}
