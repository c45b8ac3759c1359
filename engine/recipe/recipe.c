/* recipe.c — recipe_load: files → merged tree → every section validated in one pass → the typed
 * recipe with its graph, heads applied, freeze and lr_mult resolved, checkpoint shapes checked.
 * Also the resolved recipe as YAML, for the run directory. */
#include "recipe_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

static const char *default_name(rctx *c, const char *file)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".yaml") == 0) n -= 5;
    else if (n > 4 && strcmp(base + n - 4, ".yml") == 0) n -= 4;
    return arena_strndup(c->a, base, n);
}

static void cross_checks(rctx *c, const ynode *root)
{
    graft_recipe *r = c->r;
    const ynode *train = get(root, "train"), *data = get(root, "data");
    if (r->train.l2sp > 0 && !r->transfer.from)
        graft_diags_add(c->d, get(train, "l2sp")->mark,
                        "train.l2sp pulls toward the loaded weights: it needs transfer.from");
    if (r->train.early_stopping && data && r->data.val_split == 0 && !r->data.val.present) {
        const ynode *es = get(train, "early_stopping");
        graft_diags_add(c->d, es->mark,
                        "train.early_stopping monitors the validation set, but there is none "
                        "(data.val_split is 0 and there is no data.val)");
    }
    if (r->data.nclasses && r->graph.num_classes && r->graph.num_classes < r->data.nclasses) {
        const layer *last = &r->graph.layers[r->graph.nlayers - 1];
        graft_diags_add(c->d, last->mark, "%s: %d outputs for the %d classes of data.classes",
                        last->name, r->graph.num_classes, r->data.nclasses);
    }
    if (r->transfer.cache_features == CACHE_ON && r->graph.nlayers) {
        char why[512];
        if (!recipe_feature_cache(r, why, sizeof why)) {
            const ynode *t = get(root, "transfer");
            graft_diags_add(c->d, get(t, "cache_features")->mark,
                            "transfer.cache_features: on, but the features cannot be cached: %s",
                            why);
        }
    }
}

graft_status recipe_load(const char *file, const char *const *sets, int nsets, graft_recipe **out,
                         graft_diags *diags)
{
    *out = NULL;
    int before = diags->count;
    graft_recipe *r = calloc(1, sizeof *r);
    if (!r) {
        graft_diags_add(diags, (graft_mark){file, 0, 0}, "out of memory");
        return GRAFT_STATUS_NOMEM;
    }
    rctx c = {.a = &r->arena, .d = diags, .r = r};
    r->file = arena_strdup(&r->arena, file);
    r->transfer.head_first = -1;
    ynode *root = r->file ? recipe_tree_load(&r->arena, r->file, sets, nsets, diags) : NULL;
    if (!root) {
        bool nomem = diags->nomem || r->arena.failed || diags->count == before;
        if (diags->count == before)
            graft_diags_add(diags, (graft_mark){file, 0, 0}, "out of memory");
        recipe_free(r);
        return nomem ? GRAFT_STATUS_NOMEM : GRAFT_STATUS_BAD_RECIPE;
    }
    r->root = root;
    check_section(&c, root, "", "");
    const ynode *n = get(root, "name");
    r->name = n ? parse_str(&c, n, "name") : NULL;
    if (!r->name) r->name = default_name(&c, file);
    const ynode *transfer = get(root, "transfer");
    recipe_build_graph(&c, get(root, "model"), transfer);
    recipe_parse_transfer(&c, transfer);
    recipe_parse_data(&c, get(root, "data"));
    recipe_parse_train(&c, get(root, "train"));
    recipe_parse_adapt(&c, get(root, "adapt"));
    if ((n = get(root, "device")) && (r->device = parse_str(&c, n, "device"))) {
        /* the grammar of --device and GRAFT_DEVICE; which devices exist is known only at run time */
        devspec ds;
        graft_error de = {0};
        if (devspec_parse(r->device, &ds, &de)) graft_diags_add(c.d, n->mark, "device: %s", de.message);
    }
    if ((n = get(root, "output")) && parse_str(&c, n, "output")) r->output = resolve_path(&c, n);
    if (r->graph.nlayers) recipe_resolve_transfer(&c, get(root, "train"));
    recipe_check_checkpoint(&c);
    cross_checks(&c, root);
    /* an allocation that failed on the way leaves the recipe incomplete, whatever was reported */
    if (r->arena.failed || diags->nomem) {
        recipe_free(r);
        return GRAFT_STATUS_NOMEM;
    }
    if (diags->count > before) {
        recipe_free(r);
        return GRAFT_STATUS_BAD_RECIPE;
    }
    *out = r;
    return GRAFT_OK;
}

void recipe_free(graft_recipe *r)
{
    if (!r) return;
    arena_free(&r->arena);
    free(r);
}

/* ---- the merged tree as YAML (libyaml's emitter does the quoting) ---- */

static int write_buf(void *data, unsigned char *p, size_t n)
{
    buf_append(data, p, n);
    return !((buf *)data)->failed;
}

static bool emit(yaml_emitter_t *em, yaml_event_t *ev)
{
    return yaml_emitter_emit(em, ev) != 0;
}

static bool emit_scalar(yaml_emitter_t *em, const char *s, bool quoted)
{
    yaml_event_t ev;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), !quoted, 1,
                                 quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
    return emit(em, &ev);
}

static bool emit_node(yaml_emitter_t *em, const ynode *n, int depth, bool in_seq)
{
    yaml_event_t ev;
    if (n->kind == YNODE_SCALAR) return emit_scalar(em, n->value, n->quoted);
    /* short lists of scalars read best inline: input: [1, 28, 28] */
    bool flow = n->kind == YNODE_SEQ && n->count <= 8;
    for (int i = 0; flow && i < n->count; i++) flow = n->items[i]->kind == YNODE_SCALAR;
    if (n->kind == YNODE_SEQ) {
        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                             flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
        if (!emit(em, &ev)) return false;
        for (int i = 0; i < n->count; i++)
            if (!emit_node(em, n->items[i], depth + 1, true)) return false;
        yaml_sequence_end_event_initialize(&ev);
        return emit(em, &ev);
    }
    /* a list item whose values are all scalars (a layer) reads best on one line */
    bool flat = depth > 0 && n->count <= 12;
    for (int i = 0; flat && i < n->count; i++) {
        const ynode *v = n->items[i];
        flat = v->kind == YNODE_SCALAR && strlen(v->value) < 40;
        if (v->kind == YNODE_SEQ) {
            flat = v->count <= 4;
            for (int j = 0; flat && j < v->count; j++) flat = v->items[j]->kind == YNODE_SCALAR;
        }
    }
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                        flat && in_seq ? YAML_FLOW_MAPPING_STYLE
                                                       : YAML_BLOCK_MAPPING_STYLE);
    if (!emit(em, &ev)) return false;
    for (int i = 0; i < n->count; i++)
        if (!emit_scalar(em, n->keys[i], false) || !emit_node(em, n->items[i], depth + 1, false))
            return false;
    yaml_mapping_end_event_initialize(&ev);
    return emit(em, &ev);
}

char *recipe_dump_yaml(const graft_recipe *r)
{
    buf b = {0};
    yaml_emitter_t em;
    if (!r->root || !yaml_emitter_initialize(&em)) return NULL;
    yaml_emitter_set_output(&em, write_buf, &b);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, 100);
    yaml_event_t ev;
    bool ok = true;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    ok = ok && emit(&em, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    ok = ok && emit(&em, &ev);
    ok = ok && emit_node(&em, r->root, 0, false);
    yaml_document_end_event_initialize(&ev, 1);
    ok = ok && emit(&em, &ev);
    yaml_stream_end_event_initialize(&ev);
    ok = ok && emit(&em, &ev);
    yaml_emitter_delete(&em);
    if (!ok || b.failed) {
        buf_free(&b);
        return NULL;
    }
    return b.data;
}
