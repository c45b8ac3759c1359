/* model.c — model.input and model.layers (and transfer.head) into the typed graph: layer keys
 * through the registry's option tables, `activation:` sugar, unique names, `inputs:` resolved to
 * earlier layers, then shape inference with errors at each layer's mark. */
#include "recipe_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* activation: sugar names (the key table's, so the schema lists the same) */
#define ACTIVATIONS RECIPE_ACTIVATIONS

typedef struct pending {
    layer l;
    const ynode *node;        /* the layer's mapping */
    const ynode *inputs;      /* inputs: as written, or NULL = the previous layer */
    const ynode *name_node;
    bool generated;           /* made by activation sugar */
    bool bad;                 /* its keys had errors: no shape inference (nothing to cascade) */
} pending;

typedef struct layer_list {
    pending *items;
    int count, cap;
    graft_diags *d; /* where an allocation failure is noted (the layer would be missing) */
} layer_list;

static pending *list_add(layer_list *L)
{
    if (L->count == L->cap) {
        int cap = L->cap ? L->cap * 2 : 32;
        pending *n = realloc(L->items, (size_t)cap * sizeof *n);
        if (!n) {
            L->d->nomem = true;
            return NULL;
        }
        L->items = n;
        L->cap = cap;
    }
    pending *p = &L->items[L->count++];
    memset(p, 0, sizeof *p);
    p->l.lr_mult = 1.0f;
    return p;
}

static void parse_opt(rctx *c, layer *l, const layer_opt *o, const ynode *n)
{
    const char *what = arena_printf(c->a, "%s: %s", l->name, o->key);
    void *field = (char *)l + o->offset;
    long v;
    double f;
    switch (o->kind) {
    case LOPT_INT:
        if (parse_int(c, n, what, (long)o->lo, (long)o->hi, o->expect, &v)) *(int *)field = (int)v;
        break;
    case LOPT_PAD:
        if (n->kind == YNODE_SCALAR && !n->quoted && strcmp(n->value, "same") == 0) {
            ((int *)field)[0] = ((int *)field)[1] = GRAPH_PAD_SAME;
            break;
        }
        if (n->kind == YNODE_SCALAR && !n->quoted && strcmp(n->value, "valid") == 0) {
            ((int *)field)[0] = ((int *)field)[1] = 0;
            break;
        }
        __attribute__((fallthrough)); /* a number or [h, w] */
    case LOPT_PAIR:
        if (n->kind == YNODE_SEQ) {
            if (n->count != 2) {
                graft_diags_add(c->d, n->mark, "%s: expected %s, found a list of %d", what,
                                o->expect, n->count);
                break;
            }
            for (int i = 0; i < 2; i++)
                if (parse_int(c, n->items[i], what, (long)o->lo, (long)o->hi, o->expect, &v))
                    ((int *)field)[i] = (int)v;
        } else if (parse_int(c, n, what, (long)o->lo, (long)o->hi, o->expect, &v)) {
            ((int *)field)[0] = ((int *)field)[1] = (int)v;
        }
        break;
    case LOPT_FLOAT:
        if (parse_num(c, n, what, o->lo, o->hi, o->lo_open, o->hi_open, o->expect, &f))
            *(float *)field = (float)f;
        break;
    case LOPT_BOOL: parse_bool(c, n, what, (bool *)field); break;
    case LOPT_ENUM: {
        int k = 0;
        if (n->kind == YNODE_SCALAR)
            for (; o->choices[k]; k++)
                if (strcmp(n->value, o->choices[k]) == 0) break;
        if (n->kind == YNODE_SCALAR && o->choices[k])
            *(int *)field = k;
        else
            graft_diags_add(c->d, n->mark, "%s: expected %s, found %s", what, o->expect,
                            describe(c, n));
        break;
    }
    }
}

/* Parse one layer mapping; appends it (and its activation layer) to L. */
static void parse_layer(rctx *c, layer_list *L, const ynode *n, int index, bool fresh)
{
    if (n->kind != YNODE_MAP) {
        graft_diags_add(c->d, n->mark, "layer %d: expected a mapping with name and type, found %s",
                        index, describe(c, n));
        return;
    }
    const ynode *name_n = get(n, "name"), *type_n = get(n, "type");
    const char *name = NULL;
    if (!name_n)
        graft_diags_add(c->d, n->mark, "layer %d has no name", index);
    else if (name_n->kind != YNODE_SCALAR)
        graft_diags_add(c->d, name_n->mark, "layer %d: name: expected a string, found %s", index,
                        describe(c, name_n));
    else if (strcmp(name_n->value, "input") == 0 || is_regex(name_n->value))
        graft_diags_add(c->d, name_n->mark,
                        "layer name '%s' is reserved (it means %s)", name_n->value,
                        is_regex(name_n->value) ? "a regular expression" : "the network input");
    else
        name = name_n->value;
    const layer_kind *k = NULL;
    if (!type_n) {
        graft_diags_add(c->d, n->mark, "%s: layer has no type", name ? name : "layer");
    } else {
        k = type_n->kind == YNODE_SCALAR ? layer_kind_by_name(type_n->value) : NULL;
        if (!k) {
            int nk;
            const layer_kind *const *kinds = layer_kinds(&nk);
            const char *names[GRAFT_LAYER_COUNT];
            for (int i = 0; i < nk; i++) names[i] = kinds[i]->name;
            const char *dym =
                type_n->kind == YNODE_SCALAR ? did_you_mean(type_n->value, names, nk) : NULL;
            if (type_n->kind == YNODE_SCALAR && strcmp(type_n->value, "softmax") == 0)
                graft_diags_add(c->d, type_n->mark,
                                "softmax is part of the loss (cross-entropy on the logits): end "
                                "the network with its last dense layer");
            else
                graft_diags_add(c->d, type_n->mark, "unknown layer type %s%s%s%s",
                                describe(c, type_n), dym ? " (did you mean '" : "",
                                dym ? dym : "", dym ? "'?)" : "");
        }
    }
    if (!k) return;
    if (!name) name = arena_printf(c->a, "#%d", index); /* keep going to find other problems */

    /* allowed keys: common ones and the type's own */
    const char *allowed[32];
    int na = 0;
    allowed[na++] = "name";
    allowed[na++] = "type";
    allowed[na++] = "inputs";
    if (k->activation_sugar) allowed[na++] = "activation";
    for (int i = 0; i < k->nopts && na < 32; i++) allowed[na++] = k->opts[i].key;
    const char *where = arena_printf(c->a, "%s (%s)", name, k->name);
    check_keys(c, n, where, allowed, na);

    int errors_before = c->d->count;
    pending *p = list_add(L);
    if (!p) return;
    p->node = n;
    p->name_node = name_n;
    p->l.name = name;
    p->l.mark = n->mark;
    p->l.type = k->type;
    p->l.fresh = fresh;
    if (k->defaults) k->defaults(&p->l);
    for (int i = 0; i < k->nopts; i++) {
        const ynode *v = get(n, k->opts[i].key);
        if (v)
            parse_opt(c, &p->l, &k->opts[i], v);
        else if (k->opts[i].required)
            graft_diags_add(c->d, n->mark, "%s: %s needs '%s' (%s)", name, k->name,
                            k->opts[i].key, k->opts[i].expect);
    }
    p->inputs = get(n, "inputs");
    p->bad = c->d->count > errors_before;
    const ynode *act = k->activation_sugar ? get(n, "activation") : NULL;
    if (act && act->kind == YNODE_SCALAR && strcmp(act->value, "softmax") == 0) {
        graft_diags_add(c->d, act->mark,
                        "%s: activation: softmax is part of the loss (cross-entropy on the "
                        "logits): leave it out",
                        name);
    } else if (act) {
        int ai = parse_enum(c, act, arena_printf(c->a, "%s: activation", name), ACTIVATIONS,
                            RECIPE_NACTIVATIONS);
        if (ai >= 0) {
            const layer_kind *ak = layer_kind_by_name(ACTIVATIONS[ai]);
            pending *q = list_add(L);
            if (!q || !ak) return;
            q->node = n;
            q->name_node = act;
            q->l.name = arena_printf(c->a, "%s_%s", name, ACTIVATIONS[ai]);
            q->l.mark = act->mark;
            q->l.type = ak->type;
            q->l.fresh = fresh;
            q->generated = true;
            if (ak->defaults) ak->defaults(&q->l);
        }
    }
}

static void parse_layers(rctx *c, layer_list *L, const ynode *seq, const char *what, bool fresh)
{
    if (!seq) return;
    if (seq->kind != YNODE_SEQ) {
        graft_diags_add(c->d, seq->mark, "%s: expected a list of layers, found %s", what,
                        describe(c, seq));
        return;
    }
    for (int i = 0; i < seq->count; i++) parse_layer(c, L, seq->items[i], i, fresh);
}

/* Report duplicate names among items [from, count) against all earlier items. */
static void check_duplicates(rctx *c, layer_list *L, int from)
{
    for (int i = from; i < L->count; i++)
        for (int j = 0; j < i; j++) {
            if (strcmp(L->items[i].l.name, L->items[j].l.name) != 0) continue;
            const ynode *nn = L->items[i].name_node;
            graft_diags_add(c->d, nn ? nn->mark : L->items[i].l.mark,
                            "duplicate layer name '%s' (first at %s:%d)", L->items[i].l.name,
                            L->items[j].l.mark.file ? L->items[j].l.mark.file : "?",
                            L->items[j].l.mark.line);
            break;
        }
}

static int find_pending(const layer_list *L, const char *name)
{
    for (int i = 0; i < L->count; i++)
        if (strcmp(L->items[i].l.name, name) == 0) return i;
    return -1;
}

static void suggest_layer(rctx *c, const layer_list *L, graft_mark at, const char *prefix,
                          const char *name)
{
    const char **names = malloc((size_t)(L->count + 1) * sizeof *names);
    const char *dym = NULL;
    if (names) {
        for (int i = 0; i < L->count; i++) names[i] = L->items[i].l.name;
        dym = did_you_mean(name, names, L->count);
    }
    if (dym)
        graft_diags_add(c->d, at, "%sunknown layer '%s' (did you mean '%s'?)", prefix, name, dym);
    else
        graft_diags_add(c->d, at, "%sunknown layer '%s'", prefix, name);
    free(names);
}

static void resolve_inputs(rctx *c, layer_list *L)
{
    for (int i = 0; i < L->count; i++) {
        pending *p = &L->items[i];
        layer *l = &p->l;
        const layer_kind *k = layer_kind_of(l->type);
        if (!p->inputs || p->generated) {
            l->ninputs = 1;
            l->inputs[0] = i - 1;
        } else {
            const ynode *in = p->inputs;
            int n = in->kind == YNODE_SEQ ? in->count : 1;
            if (in->kind == YNODE_MAP || n == 0 || n > LAYER_MAX_INPUTS) {
                graft_diags_add(c->d, in->mark, "%s: inputs: expected a list of 1 to %d layer names, found %s",
                                l->name, LAYER_MAX_INPUTS, describe(c, in));
                l->ninputs = 0;
                continue;
            }
            l->ninputs = n;
            for (int j = 0; j < n; j++) {
                const ynode *s = in->kind == YNODE_SEQ ? in->items[j] : in;
                if (s->kind != YNODE_SCALAR) {
                    graft_diags_add(c->d, s->mark, "%s: inputs: expected a layer name, found %s",
                                    l->name, describe(c, s));
                    l->ninputs = 0;
                    break;
                }
                if (strcmp(s->value, "input") == 0) {
                    l->inputs[j] = -1;
                    continue;
                }
                int src = find_pending(L, s->value);
                if (src < 0) {
                    suggest_layer(c, L, s->mark, arena_printf(c->a, "%s: inputs: ", l->name),
                                  s->value);
                    l->ninputs = 0;
                    break;
                }
                if (src >= i) {
                    graft_diags_add(c->d, s->mark,
                                    "%s: inputs: '%s' comes %s; inputs must be earlier layers",
                                    l->name, s->value, src == i ? "from the layer itself" : "later");
                    l->ninputs = 0;
                    break;
                }
                l->inputs[j] = src;
            }
        }
        if (l->ninputs && (l->ninputs < k->min_inputs || l->ninputs > k->max_inputs)) {
            graft_mark at = p->inputs ? p->inputs->mark : l->mark;
            if (k->min_inputs > 1)
                graft_diags_add(c->d, at, "%s: %s needs inputs: [a, b, ...] (at least %d layers)",
                                l->name, k->name, k->min_inputs);
            else
                graft_diags_add(c->d, at, "%s: %s takes one input, found %d", l->name, k->name,
                                l->ninputs);
            l->ninputs = 0;
        }
    }
}

static void parse_input_shape(rctx *c, const ynode *n, shape *s)
{
    s->rank = 0;
    if (!n) return;
    if (n->kind != YNODE_SEQ || (n->count != 1 && n->count != 3)) {
        graft_diags_add(c->d, n->mark, "model.input: expected [C, H, W] or [N], found %s",
                        n->kind == YNODE_SEQ ? arena_printf(c->a, "a list of %d", n->count)
                                             : describe(c, n));
        return;
    }
    shape t = {n->count, {0, 0, 0}};
    for (int i = 0; i < n->count; i++) {
        long v;
        if (!key_item_int(c, n->items[i], "model.input", "model", "input", &v))
            return;
        t.d[i] = (int)v;
    }
    *s = t;
}

void recipe_build_graph(rctx *c, const ynode *model, const ynode *transfer)
{
    graph *g = &c->r->graph;
    memset(g, 0, sizeof *g);
    if (!model) {
        graft_diags_add(c->d, (graft_mark){c->r->file, 0, 0},
                        "no model: section (give model: {file: PATH} or model.input and "
                        "model.layers)");
        return;
    }
    if (!want_map(c, model, "model")) return;
    check_section(c, model, "model", "model");
    const ynode *in = get(model, "input"), *layers = get(model, "layers");
    if (!in) graft_diags_add(c->d, model->mark, "model: needs input: [C, H, W] or [N]");
    if (!layers) graft_diags_add(c->d, model->mark, "model: needs layers: [...]");
    parse_input_shape(c, in, &g->input);

    layer_list L = {.d = c->d};
    parse_layers(c, &L, layers, "model.layers", false);
    if (layers && layers->kind == YNODE_SEQ && layers->count == 0)
        graft_diags_add(c->d, layers->mark, "model.layers: the list is empty");
    check_duplicates(c, &L, 0);

    /* transfer.head: cut LAYER and everything after it, append the new layers (fresh) */
    c->r->transfer.head_first = -1;
    const ynode *head = transfer && transfer->kind == YNODE_MAP ? get(transfer, "head") : NULL;
    if (head && want_map(c, head, "transfer.head")) {
        check_section(c, head, "transfer.head", "transfer.head");
        const ynode *cut = get(head, "cut"), *hl = get(head, "layers");
        int at = L.count;
        if (!cut) {
            graft_diags_add(c->d, head->mark, "transfer.head: needs cut: LAYER (the first layer to drop)");
        } else if (cut->kind != YNODE_SCALAR) {
            graft_diags_add(c->d, cut->mark, "transfer.head.cut: expected a layer name, found %s",
                            describe(c, cut));
        } else {
            at = find_pending(&L, cut->value);
            if (at < 0) {
                suggest_layer(c, &L, cut->mark, "transfer.head.cut: ", cut->value);
                at = L.count;
            } else {
                c->r->transfer.head_cut = cut->value;
            }
        }
        if (!hl) graft_diags_add(c->d, head->mark, "transfer.head: needs layers: [...] (the new head)");
        L.count = at;
        c->r->transfer.head_first = at;
        int before = L.count;
        parse_layers(c, &L, hl, "transfer.head.layers", true);
        check_duplicates(c, &L, before);
    }

    resolve_inputs(c, &L);
    g->nlayers = L.count;
    g->layers = arena_alloc(c->a, (size_t)(L.count ? L.count : 1) * sizeof *g->layers);
    const ynode **nodes = arena_alloc(c->a, (size_t)(L.count ? L.count : 1) * sizeof *nodes);
    if (!g->layers || !nodes) {
        free(L.items);
        g->nlayers = 0;
        return;
    }
    for (int i = 0; i < L.count; i++) {
        if (L.items[i].bad) L.items[i].l.ninputs = 0;
        g->layers[i] = L.items[i].l;
        nodes[i] = L.items[i].node;
    }
    c->layer_nodes = nodes;
    free(L.items);
    if (g->input.rank) graph_infer_shapes(g, c->a, c->d);
    if (g->nlayers && g->input.rank) {
        const layer *last = &g->layers[g->nlayers - 1];
        if (last->out.rank == 3 || last->out.rank == 2) {
            char s[64];
            shape_format(last->out, s, sizeof s);
            graft_diags_add(c->d, last->mark,
                            "%s: the last layer outputs %s; a classifier ends in [classes] "
                            "(add %s and dense)",
                            last->name, s,
                            last->out.rank == 3 ? "flatten" : "token_select or token_mean");
        }
    }
}
