/* adapt.c — the adapt section into adapt_spec: the unlabelled target data (checked against the
 * model input where the header says its shape), the methods, the aligned layer (resolved against
 * the graph, never the output layer), the trade-off weight and dann's schedule and discriminator. */
#include "recipe_impl.h"

#include "io.h"

#include <string.h>

/* none: the source-only baseline, with the target's test accuracy reported like the others' */
static const char *const METHODS[] = {"none", "adabn", "coral", "mmd", "dann"};
static unsigned method_bit(int k) { return k <= 0 ? 0u : 1u << (k - 1); }
static const char *const SCHEDULES[] = {"ganin", "constant"};

/* An IDX or NPY target's sample shape against the model input, from the file itself, so `graft
 * check` catches a target of another size or channel count. Folders are checked as they load. */
static void check_target_shape(rctx *c, const data_source *s, const ynode *images)
{
    const shape in = c->r->graph.input;
    if (!s->images || in.rank == 0 || (s->format != DATA_IDX && s->format != DATA_NPY)) return;
    int rank = 0;
    int64_t dims[8] = {0};
    graft_error e = {0};
    if (s->format == DATA_IDX) {
        idx_array a = {0};
        if (idx_read_header(s->images, &a, &e)) {
            graft_diags_add(c->d, images->mark, "adapt.target.images: %s", e.message);
            return;
        }
        rank = a.rank;
        memcpy(dims, a.shape, sizeof dims);
        idx_free(&a);
    } else {
        npy_array a = {0};
        if (npy_read(s->images, &a, &e)) {
            graft_diags_add(c->d, images->mark, "adapt.target.images: %s", e.message);
            return;
        }
        rank = a.rank;
        for (int i = 0; i < rank && i < 8; i++) dims[i] = a.shape[i];
        npy_free(&a);
    }
    /* per-sample shape as the data stage reads it: N×H×W is one channel */
    int64_t ch = rank == 4 ? dims[1] : 1, h = rank >= 3 ? dims[rank - 2] : 1,
            w = rank >= 2 ? dims[rank - 1] : 0;
    if (rank < 2 || rank > 4) {
        graft_diags_add(c->d, images->mark,
                        "adapt.target.images: %s: images must be N×F, N×H×W or N×C×H×W, found rank %d",
                        s->images, rank);
        return;
    }
    bool ok;
    if (in.rank == 3 && rank >= 3)
        ok = ch == in.d[0] && h == in.d[1] && w == in.d[2];
    else
        ok = ch * h * w == shape_size(in);
    if (!ok) {
        char want[64];
        shape_format(in, want, sizeof want);
        if (rank >= 3)
            graft_diags_add(c->d, images->mark,
                            "adapt.target: %s holds %lldx%lldx%lld images (channels x height x "
                            "width) but the model input is %s",
                            s->images, (long long)ch, (long long)h, (long long)w, want);
        else
            graft_diags_add(c->d, images->mark,
                            "adapt.target: %s holds samples of %lld values but the model input is %s",
                            s->images, (long long)w, want);
    }
}

static bool has_batchnorm(const graph *g)
{
    for (int i = 0; i < g->nlayers; i++)
        if (g->layers[i].type == GRAFT_LAYER_BATCHNORM) return true;
    return false;
}

/* dann's domain discriminator as a graph of its own: [d] -> hidden dense layers -> 1 logit */
static void build_discriminator(rctx *c, adapt_spec *as)
{
    graph *g = &as->disc_graph;
    const layer *al = &c->r->graph.layers[as->layer];
    g->input = (shape){.rank = 1, .d = {(int)shape_size(al->out)}};
    g->nlayers = as->ndisc + 1;
    g->layers = arena_alloc(c->a, (size_t)g->nlayers * sizeof *g->layers);
    if (!g->layers) {
        g->nlayers = 0;
        return;
    }
    const layer_kind *k = layer_kind_of(GRAFT_LAYER_DENSE);
    for (int i = 0; i < g->nlayers; i++) {
        layer *l = &g->layers[i];
        memset(l, 0, sizeof *l);
        if (k->defaults) k->defaults(l);
        l->type = GRAFT_LAYER_DENSE;
        l->name = arena_printf(c->a, "domain_disc.%d", i);
        l->mark = as->mark;
        l->ninputs = 1;
        l->inputs[0] = i - 1;
        l->units = i < as->ndisc ? as->disc[i] : 1;
        l->bias = true;
        l->lr_mult = 1.0f;
        l->fresh = true;
    }
    graph_infer_shapes(g, c->a, c->d);
}

void recipe_parse_adapt(rctx *c, const ynode *n)
{
    adapt_spec *as = &c->r->adapt;
    memset(as, 0, sizeof *as);
    as->layer = -1;
    as->weight = 1.0;
    as->gamma = 10.0;
    as->disc[0] = as->disc[1] = 256;
    as->ndisc = 2;
    if (!want_map(c, n, "adapt")) return;
    as->present = true;
    as->mark = n->mark;
    static const char *const keys[] = {"target", "source_test", "method", "layer", "weight",
                                       "schedule", "gamma", "discriminator"};
    check_keys(c, n, "adapt", keys, (int)ARRAY_LEN(keys));
    const graph *g = &c->r->graph;

    /* method: one name or a list (adabn combines with the others) */
    const ynode *m = get(n, "method");
    if (!m) {
        graft_diags_add(c->d, n->mark, "adapt: needs method: none, adabn, coral, mmd or dann (or a list)");
    } else if (m->kind == YNODE_SEQ) {
        if (m->count == 0) graft_diags_add(c->d, m->mark, "adapt.method: an empty list");
        for (int i = 0; i < m->count; i++) {
            int k = parse_enum(c, m->items[i], "adapt.method", METHODS, 5);
            if (k < 0) continue;
            if (k == 0 && m->count > 1)
                graft_diags_add(c->d, m->items[i]->mark, "adapt.method: none with other methods");
            if (as->methods & method_bit(k))
                graft_diags_add(c->d, m->items[i]->mark, "adapt.method: %s is listed twice",
                                METHODS[k]);
            as->methods |= method_bit(k);
        }
    } else {
        int k = parse_enum(c, m, "adapt.method", METHODS, 5);
        if (k >= 0) as->methods = method_bit(k);
    }
    unsigned aligning = as->methods & ADAPT_ALIGNING;
    if (aligning & (aligning - 1))
        graft_diags_add(c->d, m->mark,
                        "adapt.method: coral, mmd and dann are alternatives (each is an alignment "
                        "loss on adapt.layer); keep one, with adabn if you like");
    if (aligning && c->r->train.on_nonfinite == NONFINITE_SKIP_BATCH)
        graft_diags_add(c->d, m->mark,
                        "adapt.method: coral, mmd and dann train a source and a target batch in one "
                        "step, which train.on_nonfinite: skip_batch cannot skip; use stop");
    if ((as->methods & ADAPT_ADABN) && g->nlayers && !has_batchnorm(g))
        graft_diags_add(c->d, m->mark,
                        "adapt.method: adabn re-estimates batchnorm statistics, but the model has "
                        "no batchnorm layer");

    /* target: the unlabelled target-domain training data */
    const ynode *t = get(n, "target");
    if (!t) {
        graft_diags_add(c->d, n->mark, "adapt: needs target: {format: idx|npy|folder|csv, ...}");
    } else {
        recipe_parse_source(c, t, "adapt.target", -1, true, &as->target);
        if (as->target.present && t->kind == YNODE_MAP)
            check_target_shape(c, &as->target, get(t, "images") ? get(t, "images") : t);
    }
    const ynode *st = get(n, "source_test");
    if (st) recipe_parse_source(c, st, "adapt.source_test", -1, false, &as->source_test);

    /* layer: whose output is aligned; the default is the last layer's input */
    const ynode *ln = get(n, "layer");
    if (g->nlayers) {
        const int last = g->nlayers - 1;
        if (ln) {
            const char *name = parse_str(c, ln, "adapt.layer");
            as->layer_mark = ln->mark;
            int i = name ? graph_find_layer(g, name) : -1;
            if (name && i < 0) {
                graft_diags_add(c->d, ln->mark, "adapt.layer: no layer named '%s' in the model", name);
            } else if (name && i >= last) {
                graft_diags_add(c->d, ln->mark,
                                "adapt.layer: '%s' is the output layer (the classifier head); align "
                                "the features before it, e.g. '%s'",
                                name, g->layers[last].inputs[0] >= 0
                                          ? g->layers[g->layers[last].inputs[0]].name
                                          : "(none)");
            } else if (name) {
                as->layer = i;
            }
        } else {
            as->layer = g->layers[last].inputs[0];
            as->layer_mark = n->mark;
            if (as->layer < 0 && aligning)
                graft_diags_add(c->d, n->mark,
                                "adapt: the model's only layer reads the input; set adapt.layer");
        }
        /* no activation fuses into the aligned layer: it reads that layer's own output */
        if (as->layer >= 0 && aligning) c->r->graph.layers[as->layer].aligned = true;
    }
    get_num(c, n, "adapt", "weight", 0, 1e6, true, false, "a positive number", &as->weight);
    as->schedule =
        (adapt_schedule)get_enum(c, n, "adapt", "schedule", SCHEDULES, 2, ADAPT_SCHED_GANIN);
    get_num(c, n, "adapt", "gamma", 0, 1e6, true, false, "a positive number", &as->gamma);
    const ynode *sc = get(n, "schedule");
    if ((sc || get(n, "gamma")) && !(as->methods & ADAPT_DANN))
        graft_diags_add(c->d, (sc ? sc : get(n, "gamma"))->mark,
                        "adapt.%s is for method dann (the gradient-reversal coefficient)",
                        sc ? "schedule" : "gamma");
    if (ln && !aligning)
        graft_diags_add(c->d, ln->mark,
                        "adapt.layer is for coral, mmd and dann (adabn adapts every batchnorm layer)");

    const ynode *dn = get(n, "discriminator");
    if (dn && !(as->methods & ADAPT_DANN))
        graft_diags_add(c->d, dn->mark, "adapt.discriminator is for method dann");
    if (dn && want_map(c, dn, "adapt.discriminator")) {
        static const char *const dkeys[] = {"layers", "dropout"};
        check_keys(c, dn, "adapt.discriminator", dkeys, 2);
        const ynode *ls = get(dn, "layers");
        if (ls && (ls->kind != YNODE_SEQ || ls->count > ADAPT_MAX_DISC)) {
            graft_diags_add(c->d, ls->mark,
                            "adapt.discriminator.layers: expected a list of at most %d widths, found %s",
                            ADAPT_MAX_DISC, describe(c, ls));
        } else if (ls) {
            as->ndisc = 0;
            for (int i = 0; i < ls->count; i++) {
                long v;
                if (parse_int(c, ls->items[i], "adapt.discriminator.layers", 1, 1 << 16,
                              "a positive width", &v))
                    as->disc[as->ndisc++] = (int)v;
            }
        }
        get_num(c, dn, "adapt.discriminator", "dropout", 0, 1, false, true,
                "a number with 0 <= dropout < 1", &as->disc_dropout);
    }
    if ((as->methods & ADAPT_DANN) && as->layer >= 0) build_discriminator(c, as);
}
