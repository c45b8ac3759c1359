/* test_recipe.c — the recipe stage from the inside: marks on every node, duplicate keys, aliases,
 * deep merge, extends chains, --set merging, defaults, freeze/lr_mult/unfreeze resolution, the
 * resolved YAML round trip, and hostile inputs that must fail cleanly within a second. */
#define _POSIX_C_SOURCE 200809L
#include "compile.h"
#include "recipe.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static const char *path_in(const char *name)
{
    static char p[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void write_file(const char *name, const char *text, size_t len)
{
    FILE *f = fopen(path_in(name), "wb");
    if (!f) {
        perror(name);
        exit(1);
    }
    fwrite(text, 1, len, f);
    fclose(f);
}

static void write_text(const char *name, const char *text)
{
    write_file(name, text, strlen(text));
}

/* True when some diagnostic sits at line:col and contains frag. */
static bool has_diag(const graft_diags *d, int line, int col, const char *frag)
{
    for (int i = 0; i < d->count; i++)
        if (d->items[i].line == line && d->items[i].col == col && strstr(d->items[i].message, frag))
            return true;
    return false;
}

static void dump_diags(const graft_diags *d)
{
    graft_diags_print(d, stderr);
}

static void test_marks(void)
{
    arena a = {0};
    graft_diags d = {0};
    const char *text = "name: x\n"
                       "train:\n"
                       "  lr: 0.1\n"
                       "  betas: [0.9, 0.99]\n"
                       "list:\n"
                       "  - {a: 1}\n"
                       "  - 'quoted'\n";
    ynode *r = yaml_parse(&a, "m.yaml", text, strlen(text), 0, 0, &d);
    CHECK(r && r->kind == YNODE_MAP && r->count == 3);
    CHECK(d.count == 0);
    if (!r) return;
    CHECK(r->mark.line == 1 && r->mark.col == 1);
    CHECK(r->key_marks[1].line == 2 && r->key_marks[1].col == 1);
    ynode *train = ynode_get(r, "train");
    CHECK(train->kind == YNODE_MAP && train->mark.line == 3 && train->mark.col == 3);
    ynode *lr = ynode_get(train, "lr");
    CHECK(lr->kind == YNODE_SCALAR && strcmp(lr->value, "0.1") == 0);
    CHECK(lr->mark.line == 3 && lr->mark.col == 7);
    CHECK(train->key_marks[0].line == 3 && train->key_marks[0].col == 3);
    ynode *betas = ynode_get(train, "betas");
    CHECK(betas->kind == YNODE_SEQ && betas->count == 2);
    CHECK(betas->mark.line == 4 && betas->mark.col == 10);
    CHECK(betas->items[1]->mark.line == 4 && betas->items[1]->mark.col == 16);
    ynode *list = ynode_get(r, "list");
    CHECK(list->items[0]->kind == YNODE_MAP && list->items[0]->mark.line == 6 &&
          list->items[0]->mark.col == 5);
    CHECK(list->items[0]->key_marks[0].col == 6);
    CHECK(list->items[1]->quoted && !lr->quoted);
    CHECK(strcmp(r->mark.file, "m.yaml") == 0);
    /* shifted marks, as for a --set value inside its option */
    ynode *v = yaml_parse(&a, "--set x=[1, 2]", "[1, 2]", 6, 0, 2, &d);
    CHECK(v && v->mark.col == 3 && v->items[1]->mark.col == 7);
    graft_diags_free(&d);
    arena_free(&a);
}

static void test_yaml_errors(void)
{
    arena a = {0};
    graft_diags d = {0};
    const char *dup = "a: 1\nb: 2\na: 3\n";
    ynode *r = yaml_parse(&a, "dup.yaml", dup, strlen(dup), 0, 0, &d);
    CHECK(r && d.count == 1 && has_diag(&d, 3, 1, "duplicate key 'a' (first at line 1)"));
    graft_diags_free(&d);
    const char *alias = "base: &b {x: 1, y: [1, 2]}\ncopy: *b\n";
    r = yaml_parse(&a, "alias.yaml", alias, strlen(alias), 0, 0, &d);
    CHECK(r && d.count == 0);
    if (r) {
        ynode *c = ynode_get(r, "copy");
        CHECK(c && c->kind == YNODE_MAP && c != ynode_get(r, "base"));
        CHECK(c && c->mark.line == 2 && ynode_get(c, "y")->count == 2);
    }
    const char *merge = "base: &b {x: 1, y: 2}\nm: {<<: *b, y: 3}\nn:\n  z: 0\n  <<: [{z: 9, w: 4}, *b]\n";
    r = yaml_parse(&a, "merge.yaml", merge, strlen(merge), 0, 0, &d);
    CHECK(r && d.count == 0);
    if (r) {
        ynode *m = ynode_get(r, "m"), *nn = ynode_get(r, "n");
        CHECK(m->count == 2 && strcmp(ynode_get(m, "y")->value, "3") == 0);
        CHECK(strcmp(ynode_get(m, "x")->value, "1") == 0 && ynode_find(m, "<<") < 0);
        CHECK(nn->count == 4 && strcmp(ynode_get(nn, "z")->value, "0") == 0);
        CHECK(strcmp(ynode_get(nn, "w")->value, "4") == 0 && strcmp(ynode_get(nn, "x")->value, "1") == 0);
    }
    const char *rec = "a: &a [1, *a]\n";
    r = yaml_parse(&a, "rec.yaml", rec, strlen(rec), 0, 0, &d);
    CHECK(!r && has_diag(&d, 1, 11, "unknown alias '*a'"));
    graft_diags_free(&d);
    arena_free(&a);
}

static void test_merge_and_extends(void)
{
    write_text("models/m.yaml", "model:\n"
                                "  input: [4]\n"
                                "  layers:\n"
                                "    - {name: fc1, type: dense, units: 8, activation: relu}\n"
                                "    - {name: layer1.0.fc, type: dense, units: 3}\n");
    write_text("base.yaml", "name: base\n"
                            "model: {file: models/m.yaml}\n"
                            "train: {epochs: 5, lr: 0.5, betas: [0.5, 0.6]}\n"
                            "output: out/base\n");
    write_text("mid/mid.yaml", "extends: ../base.yaml\n"
                               "train: {lr: 0.25, betas: [0.8, 0.9]}\n");
    write_text("top.yaml", "extends: mid/mid.yaml\n"
                           "name: top\n"
                           "train:\n"
                           "  batch_size: 7\n");
    graft_recipe *r = NULL;
    graft_diags d = {0};
    CHECK(recipe_load(path_in("top.yaml"), NULL, 0, &r, &d) == GRAFT_OK);
    dump_diags(&d);
    if (r) {
        CHECK(strcmp(r->name, "top") == 0);
        CHECK(r->train.epochs == 5 && r->train.lr == 0.25 && r->train.batch_size == 7);
        CHECK(r->train.beta1 == 0.8 && r->train.beta2 == 0.9); /* lists replace */
        CHECK(r->graph.nlayers == 3);
        CHECK(strcmp(r->graph.layers[1].name, "fc1_relu") == 0);
        CHECK(r->graph.layers[1].type == GRAFT_LAYER_RELU);
        CHECK(r->graph.num_classes == 3);
        /* output is relative to base.yaml, the file that says it */
        char want[600];
        snprintf(want, sizeof want, "%s/out/base", dir);
        CHECKF(r->output && strcmp(r->output, want) == 0, "output %s", r->output);
        /* marks name the file each node came from */
        CHECK(strstr(r->graph.layers[0].mark.file, "models/m.yaml") != NULL);
        CHECK(r->graph.layers[0].mark.line == 4);
        CHECK(strcmp(r->graph.layers[2].params[0].name, "layer1.0.fc.weight") == 0);
        CHECK(r->graph.layers[2].params[0].dims[0] == 3 && r->graph.layers[2].params[0].dims[1] == 8);
        /* defaults as in PyTorch */
        CHECK(r->train.optimizer == OPT_ADAM && r->train.eps == 1e-8 && r->train.momentum == 0.9);
        CHECK(r->train.weight_decay == 0 && r->train.schedule == SCHED_CONSTANT);
        CHECK(r->data.val_split == 0.1 && r->train.seed == 0);
        char *y = recipe_dump_yaml(r);
        CHECK(y && strstr(y, "batch_size: 7") && !strstr(y, "extends"));
        CHECK(y && strstr(y, "layer1.0.fc"));
        char absout[700];
        snprintf(absout, sizeof absout, "output: %s/out/base", dir);
        CHECKF(y && strstr(y, absout), "dump has no absolute output path:\n%s", y ? y : "(null)");
        /* the dump parses back to the same recipe */
        if (y) {
            write_text("models/dumped.yaml", y);
            graft_recipe *r2 = NULL;
            CHECK(recipe_load(path_in("models/dumped.yaml"), NULL, 0, &r2, &d) == GRAFT_OK);
            dump_diags(&d);
            if (r2) {
                CHECK(r2->graph.nlayers == 3 && r2->train.lr == 0.25 && r2->train.batch_size == 7);
                CHECK(graph_param_count(&r2->graph, false) == graph_param_count(&r->graph, false));
            }
            recipe_free(r2);
        }
        free(y);
    }
    recipe_free(r);
    graft_diags_free(&d);

    /* --set: scalars, lists, indexes into layers, dotted layer names, quoted components */
    const char *sets[] = {"train.lr=0.01",
                          "train.betas=[0.7, 0.75]",
                          "model.layers.0.units=16",
                          "train.lr_mult={fc1: 2}",
                          "train.lr_mult.layer1.0.fc=0.5",
                          "transfer.\"bn\"=train",
                          "transfer.freeze=fc1",
                          "name=\"set by --set\""};
    CHECK(recipe_load(path_in("top.yaml"), sets, (int)ARRAY_LEN(sets), &r, &d) == GRAFT_OK);
    dump_diags(&d);
    if (r) {
        CHECK(r->train.lr == 0.01 && r->train.beta1 == 0.7 && r->train.beta2 == 0.75);
        CHECK(r->graph.layers[0].units == 16 && r->graph.layers[2].params[0].dims[1] == 16);
        CHECK(r->graph.layers[0].lr_mult == 2.0f && r->graph.layers[2].lr_mult == 0.5f);
        CHECK(r->graph.layers[1].lr_mult == 1.0f);
        CHECK(r->graph.layers[0].frozen && !r->graph.layers[1].frozen);
        CHECK(strcmp(r->name, "set by --set") == 0);
        CHECK(r->transfer.bn_train);
        CHECK(graph_param_count(&r->graph, true) == 16 * 3 + 3);
    }
    recipe_free(r);
    graft_diags_free(&d);
    /* a new key under a missing parent is created and then reported as unknown */
    const char *bad[] = {"train.early_stopping.patiense=3", "trainn.lr=1"};
    CHECK(recipe_load(path_in("top.yaml"), bad, 2, &r, &d) == GRAFT_STATUS_BAD_RECIPE && !r);
    graft_diags_sort(&d);
    CHECK(d.count == 2);
    if (d.count == 2) {
        CHECK(strcmp(d.items[0].file, "--set train.early_stopping.patiense=3") == 0);
        CHECK(strstr(d.items[0].message, "did you mean 'patience'?") != NULL);
        CHECK(strstr(d.items[1].message, "unknown key 'trainn' (did you mean 'train'?)") != NULL);
    }
    graft_diags_free(&d);
}

static void test_transfer(void)
{
    write_text("t.yaml", "model:\n"
                         "  input: [1, 8, 8]\n"
                         "  layers:\n"
                         "    - {name: conv1, type: conv2d, filters: 4, kernel: 3, padding: same, bias: false}\n"
                         "    - {name: bn1, type: batchnorm}\n"
                         "    - {name: relu1, type: relu}\n"
                         "    - {name: conv2, type: conv2d, filters: 4, kernel: [3, 1], padding: [1, 0]}\n"
                         "    - {name: res, type: add, inputs: [conv2, relu1]}\n"
                         "    - {name: pool, type: maxpool, size: 3, stride: 2, padding: 1}\n"
                         "    - {name: flatten, type: flatten}\n"
                         "    - {name: fc, type: dense, units: 2}\n"
                         "transfer:\n"
                         "  freeze: [/conv.*/, bn1]\n"
                         "train:\n"
                         "  epochs: 6\n"
                         "  unfreeze:\n"
                         "    - {epoch: 3, freeze: 2}\n"
                         "    - {epoch: 5, freeze: none}\n");
    graft_recipe *r = NULL;
    graft_diags d = {0};
    CHECK(recipe_load(path_in("t.yaml"), NULL, 0, &r, &d) == GRAFT_OK);
    dump_diags(&d);
    if (!r) return;
    graph *g = &r->graph;
    CHECK(g->nlayers == 8);
    CHECK(g->layers[0].pad[0] == 1 && g->layers[0].nparams == 1);
    CHECK(g->layers[0].out.d[0] == 4 && g->layers[0].out.d[1] == 8);
    CHECK(g->layers[3].pad[0] == 1 && g->layers[3].pad[1] == 0 && g->layers[3].out.d[2] == 8);
    CHECK(g->layers[4].ninputs == 2 && g->layers[4].inputs[0] == 3 && g->layers[4].inputs[1] == 2);
    /* maxpool 3/2/1 of 8x8 -> 4x4 as in PyTorch */
    CHECK(g->layers[5].out.d[1] == 4 && g->layers[5].pool_stride[0] == 2);
    CHECK(g->layers[6].out.rank == 1 && g->layers[6].out.d[0] == 64);
    CHECK(g->layers[1].params[2].is_buffer && strcmp(g->layers[1].params[3].name, "bn1.running_var") == 0);
    CHECK(g->layers[1].eps == 1e-5f && g->layers[1].momentum == 0.1f);
    CHECK(g->layers[0].frozen && g->layers[1].frozen && !g->layers[2].frozen && g->layers[3].frozen);
    CHECK(graph_frozen_prefix(g) == 2);
    graph_plan gp;
    graft_error pe = {0};
    CHECK(plan_analyse(g, true, false, false, OPT_ADAM, false, 0, 4, &gp, &pe) == GRAFT_OK);
    bool bw[8];
    for (int i = 0; i < 8; i++) bw[i] = gp.layers[i].backward;
    plan_free(&gp);
    CHECK(!bw[0] && !bw[1] && !bw[2] && !bw[3] && !bw[4] && bw[7] && !bw[6]);
    char why[256];
    /* with unfreeze, caching is decided per phase; the first phase's prefix (2 layers) is cached */
    CHECK(recipe_feature_cache(r, why, sizeof why) == graph_feature_cache(g, false, false, why, sizeof why));
    CHECK(r->train.nunfreeze == 2 && r->train.unfreeze[0].epoch == 3);
    CHECK(r->train.unfreeze[0].freeze.kind == FREEZE_DEPTH);
    CHECK(recipe_apply_freeze(r, &r->train.unfreeze[0].freeze, &d) == GRAFT_OK);
    CHECK(g->layers[0].frozen && g->layers[1].frozen && !g->layers[3].frozen);
    CHECK(recipe_apply_freeze(r, &r->train.unfreeze[1].freeze, &d) == GRAFT_OK);
    CHECK(graph_frozen_prefix(g) == 0 && graph_param_count(g, true) == graph_param_count(g, false));
    freeze_spec through = {.kind = FREEZE_THROUGH, .through = "flatten"};
    CHECK(recipe_apply_freeze(r, &through, &d) == GRAFT_OK && graph_frozen_prefix(g) == 7);
    r->train.nunfreeze = 0;
    CHECK(recipe_feature_cache(r, why, sizeof why));
    CHECK(strstr(why, "through 'flatten'") != NULL);
    /* a prefix that ends inside the residual block cannot be cached: 'res' reads relu1 */
    freeze_spec two = {.kind = FREEZE_DEPTH, .depth = 4};
    CHECK(recipe_apply_freeze(r, &two, &d) == GRAFT_OK);
    CHECK(!recipe_feature_cache(r, why, sizeof why) && strstr(why, "'res' reads 'relu1'"));
    freeze_spec missing = {.kind = FREEZE_THROUGH, .through = "flaten"};
    CHECK(recipe_apply_freeze(r, &missing, &d) == GRAFT_STATUS_BAD_RECIPE);
    CHECK(d.count == 1 && strstr(d.items[0].message, "did you mean 'flatten'?"));
    graft_diags_free(&d);
    recipe_free(r);
}

static void test_data_paths(void)
{
    mkdir(path_in("data"), 0755);
    write_text("data/x.npy", "x");
    write_text("data/y.npy", "y");
    write_text("data/d.yaml", "model: {input: [4], layers: [{name: fc, type: dense, units: 2}]}\n"
                              "data:\n"
                              "  train: {format: npy, images: x.npy, labels: y.npy}\n"
                              "  test: {format: csv, path: x.npy}\n"
                              "  classes: [3, 1]\n"
                              "  shots: 10\n"
                              "  val_split: 0\n"
                              "  normalize: {mean: 0.5, std: 0.25}\n"
                              "  seed: 42\n");
    graft_recipe *r = NULL;
    graft_diags d = {0};
    CHECK(recipe_load(path_in("data/d.yaml"), NULL, 0, &r, &d) == GRAFT_OK);
    dump_diags(&d);
    if (r) {
        CHECK(r->data.train.present && r->data.train.format == DATA_NPY);
        CHECK(strcmp(r->data.train.images, path_in("data/x.npy")) == 0);
        CHECK(r->data.test.format == DATA_CSV && r->data.test.label_column == -1);
        CHECK(!r->data.val.present);
        CHECK(r->data.nclasses == 2 && r->data.classes[0] == 3 && r->data.classes[1] == 1);
        CHECK(r->data.shots == 10 && r->data.val_split == 0 && r->data.seed == 42);
        CHECK(r->data.nnorm == 1 && r->data.norm_mean[0] == 0.5f && r->data.norm_std[0] == 0.25f);
    }
    recipe_free(r);
    graft_diags_free(&d);
}

/* Hostile inputs: each must end in a clean error (or a clean result) within a second. */
static void timed_load(const char *name, const char *frag)
{
    graft_recipe *r = NULL;
    graft_diags d = {0};
    double t0 = now_seconds();
    graft_status s = recipe_load(path_in(name), NULL, 0, &r, &d);
    double dt = now_seconds() - t0;
    CHECKF(s == GRAFT_STATUS_BAD_RECIPE && !r, "%s: status %d", name, s);
    CHECKF(dt < 1.0, "%s took %.2f s", name, dt);
    bool found = false;
    for (int i = 0; i < d.count; i++) found |= strstr(d.items[i].message, frag) != NULL;
    CHECKF(found, "%s: no diagnostic with '%s'", name, frag);
    if (!found) dump_diags(&d);
    printf("%-16s %.3f s  %s\n", name, dt, d.count ? d.items[0].message : "");
    recipe_free(r);
    graft_diags_free(&d);
}

static void test_pathological(void)
{
    buf b = {0};
    /* billion laughs: 10 levels of 10 aliases = 10^10 nodes if expanded naively */
    buf_printf(&b, "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (int i = 1; i <= 9; i++)
        buf_printf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i,
                   i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    write_text("laughs.yaml", b.data);
    buf_free(&b);
    timed_load("laughs.yaml", "billion laughs");

    for (int i = 0; i < 100000; i++) buf_append(&b, "[", 1);
    write_text("deep.yaml", b.data);
    buf_free(&b);
    timed_load("deep.yaml", "nesting deeper than 64");
    for (int i = 0; i < 5000; i++) buf_printf(&b, "%*sk:\n", i * 2 > 200 ? 200 : i * 2, "");
    write_text("deepmap.yaml", b.data);
    buf_free(&b);
    timed_load("deepmap.yaml", "");

    write_file("nul.yaml", "name: a\0b\n", 10);
    timed_load("nul.yaml", "NUL byte");

    unsigned char garbage[65536];
    unsigned s = 12345;
    for (size_t i = 0; i < sizeof garbage; i++) {
        s = s * 1103515245u + 12345u;
        garbage[i] = (unsigned char)(s >> 16);
    }
    write_file("garbage.yaml", (const char *)garbage, sizeof garbage);
    timed_load("garbage.yaml", "");
    for (size_t i = 0; i < sizeof garbage; i++) garbage[i] |= 0x80; /* invalid UTF-8 only */
    write_file("utf8.yaml", (const char *)garbage, sizeof garbage);
    timed_load("utf8.yaml", "invalid YAML");

    char *line = malloc(1000001);
    if (line) {
        memcpy(line, "name: ", 6);
        memset(line + 6, 'x', 1000000 - 7);
        line[999999] = '\n';
        line[1000000] = 0;
        write_file("longline.yaml", line, 1000000);
        timed_load("longline.yaml", "no model");
        memset(line, 'y', 1000000);
        write_file("longkey.yaml", line, 1000000);
        timed_load("longkey.yaml", "expected a mapping");
        free(line);
    }
    b = (buf){0};
    for (int i = 0; i < 70000; i++) buf_printf(&b, "k%d: [1, 2, 3, 4, 5, 6]\n", i);
    write_text("huge.yaml", b.data);
    buf_free(&b);
    timed_load("huge.yaml", "larger than");
    for (int i = 0; i < 60000; i++) buf_printf(&b, "- [1, 2, 3]\n");
    write_text("nodes.yaml", b.data);
    buf_free(&b);
    timed_load("nodes.yaml", "more than");
    write_text("empty.yaml", "");
    timed_load("empty.yaml", "empty file");
    write_text("dir.yaml", "extends: .\n");
    timed_load("dir.yaml", "not a regular file");
    write_text("fifo.yaml", "extends: /dev/zero\n");
    timed_load("fifo.yaml", "not a regular file");
    write_text("selfext.yaml", "extends: selfext.yaml\n");
    timed_load("selfext.yaml", "extends cycle");
}

static const gemm_shape *find_shape(const gemm_shape *s, int n, bool ta, bool tb, size_t m,
                                    size_t nn, size_t k)
{
    for (int i = 0; i < n; i++)
        if (s[i].ta == ta && s[i].tb == tb && s[i].m == m && s[i].n == nn && s[i].k == k)
            return &s[i];
    return NULL;
}

static bool has_shape(const gemm_shape *s, int n, bool ta, bool tb, size_t m, size_t nn, size_t k)
{
    return find_shape(s, n, ta, tb, m, nn, k) != NULL;
}

static bool has_ld(const gemm_shape *s, size_t lda, size_t ldb, size_t ldc)
{
    return s && s->lda == lda && s->ldb == ldb && s->ldc == ldc;
}

/* The tuner's shapes of a convolution are the products op_conv.c issues: the forward over chunks
 * of about 4 MB of column matrix and product (8x3x3 + 16 rows of 784 floats = 269.5 KiB a
 * sample: 15 samples, and the last 4 of 64), the backward over the whole batch. */
static void test_conv_shapes(void)
{
    write_text("c.yaml", "model:\n"
                         "  input: [8, 28, 28]\n"
                         "  layers:\n"
                         "    - {name: conv1, type: conv2d, filters: 16, kernel: 3, padding: 1}\n"
                         "    - {name: flatten, type: flatten}\n"
                         "    - {name: fc, type: dense, units: 3}\n"
                         "train: {batch_size: 64}\n");
    graft_recipe *r = NULL;
    graft_diags d = {0};
    CHECK(recipe_load(path_in("c.yaml"), NULL, 0, &r, &d) == GRAFT_OK);
    dump_diags(&d);
    if (!r) return;
    gemm_shape s[COMPILE_MAX_GEMM_SHAPES];
    int n = compile_recipe_gemm_shapes(NULL, r, false, s, COMPILE_MAX_GEMM_SHAPES);
    CHECK(has_shape(s, n, false, false, 16, 15 * 784, 72));
    CHECK(has_shape(s, n, false, false, 16, 4 * 784, 72));
    CHECK(!has_shape(s, n, false, false, 16, 64 * 784, 72));
    CHECK(has_shape(s, n, true, false, 72, 64 * 784, 16));
    CHECK(has_shape(s, n, false, true, 16, 72, 64 * 784));
    /* with the padded row strides the pipeline uses (an odd number of 64-byte lines): 15 * 784 =
     * 735 lines already; 4 * 784 = 196 -> 197 lines = 3152 floats; 64 * 784 = 3136 -> 3137 lines */
    CHECK(has_ld(find_shape(s, n, false, false, 16, 15 * 784, 72), 0, 11760, 11760));
    CHECK(has_ld(find_shape(s, n, false, false, 16, 4 * 784, 72), 0, 3152, 3152));
    CHECK(has_ld(find_shape(s, n, true, false, 72, 64 * 784, 16), 0, 50192, 50192));
    CHECK(has_ld(find_shape(s, n, false, true, 16, 72, 64 * 784), 50192, 50192, 0));
    CHECK(has_ld(find_shape(s, n, false, true, 64, 3, 16 * 784), 0, 0, 0)); /* dense: tight */
    recipe_free(r);
    graft_diags_free(&d);
}

/* The tuner's shape list of an aligning recipe: the 2B-row products of its steps, DANN's
 * discriminator and the alignment GEMMs, beside the model's own at B. */
static void test_adapt_shapes(void)
{
    const char *model = "model:\n"
                        "  input: [1, 4, 4]\n"
                        "  layers:\n"
                        "    - {name: flatten, type: flatten}\n"
                        "    - {name: fc1, type: dense, units: 6}\n"
                        "    - {name: relu1, type: relu}\n"
                        "    - {name: fc2, type: dense, units: 3}\n"
                        "train: {batch_size: 8}\n";
    /* the unlabelled target: 4 images of 4x4, IDX uint8 */
    unsigned char idx[16 + 64] = {0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4};
    write_file("t.idx", (const char *)idx, sizeof idx);
    char text[2048];
    const char *methods[] = {"none", "coral", "mmd", "dann"};
    for (int m = 0; m < 4; m++) {
        snprintf(text, sizeof text,
                 "%sadapt:\n  method: %s\n%s  target: {format: idx, images: t.idx}\n%s", model,
                 methods[m], m ? "  layer: fc1\n" : "", m == 3 ? "  discriminator: {layers: [5]}\n" : "");
        write_text("a.yaml", text);
        graft_recipe *r = NULL;
        graft_diags d = {0};
        CHECK(recipe_load(path_in("a.yaml"), NULL, 0, &r, &d) == GRAFT_OK);
        dump_diags(&d);
        if (!r) continue;
        gemm_shape s[COMPILE_MAX_GEMM_SHAPES];
        int n = compile_recipe_gemm_shapes(NULL, r, false, s, COMPILE_MAX_GEMM_SHAPES);
        CHECKF(has_shape(s, n, false, true, 8, 6, 16), "%s: fc1 forward at B", methods[m]);
        bool aligns = m > 0;
        CHECKF(has_shape(s, n, false, true, 16, 6, 16) == aligns, "%s: fc1 forward at 2B",
               methods[m]);
        CHECKF(has_shape(s, n, true, false, 6, 16, 16) == aligns, "%s: fc1 weight grad at 2B",
               methods[m]);
        CHECKF(has_shape(s, n, true, false, 6, 6, 8) == (m == 1), "%s: CORAL covariance",
               methods[m]);
        CHECKF(has_shape(s, n, false, true, 16, 16, 6) == (m == 2), "%s: MMD Gram", methods[m]);
        CHECKF(has_shape(s, n, false, true, 16, 5, 6) == (m == 3), "%s: discriminator layer 0",
               methods[m]);
        CHECKF(has_shape(s, n, false, true, 16, 1, 5) == (m == 3), "%s: discriminator logit",
               methods[m]);
        recipe_free(r);
        graft_diags_free(&d);
    }
}

static void test_registry(void)
{
    int n;
    const layer_kind *const *k = layer_kinds(&n);
    CHECK(n == GRAFT_LAYER_COUNT);
    for (int i = 0; i < n; i++) {
        CHECKF(k[i]->type == (graft_layer_type)i, "registry slot %d holds %s", i, k[i]->name);
        CHECK(layer_kind_by_name(k[i]->name) == k[i]);
        CHECK(strcmp(layer_type_name((graft_layer_type)i), k[i]->name) == 0);
    }
    CHECK(layer_kind_by_name("relu6") && !layer_kind_by_name("conv"));
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/graft-recipe-test.XXXXXX");
    if (!mkdtemp(dir)) return 1;
    mkdir(path_in("models"), 0755);
    mkdir(path_in("mid"), 0755);
    test_registry();
    test_marks();
    test_yaml_errors();
    test_merge_and_extends();
    test_transfer();
    test_data_paths();
    test_adapt_shapes();
    test_conv_shapes();
    test_pathological();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_recipe");
}
