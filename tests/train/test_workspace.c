/* test_workspace.c — the convolutions' workspace a pipeline allocates is what its ops use on the
 * paths they took (conv2d_op_workspace_bytes), never more than the plan's bound over every path
 * (plan_analyse's mem.workspace, an im2col column matrix for fmnist-cnn): an evaluation pipeline
 * whose convolutions read inputs the layer before padded, or compute their stem, allocates none
 * and gives the same logits (within rounding) as one whose convolutions pad their own inputs
 * (GRAFT_XPAD=0 GRAFT_STEM=0, its workspace sized for those copies); a scan (layers unfused) grows
 * it and still gives them; a training pipeline takes a step in what it allocated.
 * usage: test_workspace MODEL (configs/models/fmnist-cnn.yaml) */
#include "model_recipe.h"

#include "compile.h"
#include "harness.h"

#include <math.h>
#include <string.h>

enum { B = 64 };

static uint64_t rng = 777;
static float uniform(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 16777216.0f;
}

static pipeline *make(graft_context *ctx, graft_recipe *r, param_store *st, bool training)
{
    graft_error e = {0};
    pipeline_options po = {.max_batch = B, .training = training,
                           .optimizer = r->train.optimizer, .dropout_seed = 7};
    pipeline *p = NULL;
    if (pipeline_create(ctx, &r->graph, &po, &p, &e) || pipeline_upload(p, st, &e)) {
        fprintf(stderr, "pipeline: %s\n", e.message);
        exit(1);
    }
    return p;
}

static size_t bound(graft_recipe *r, bool training)
{
    graph_plan gp;
    graft_error e = {0};
    if (plan_analyse(&r->graph, training, false, false, r->train.optimizer, false, 0, B, &gp,
                     &e)) {
        fprintf(stderr, "plan: %s\n", e.message);
        exit(1);
    }
    size_t ws = gp.mem.workspace;
    plan_free(&gp);
    return ws;
}

/* a and b within float rounding of each other (bitwise on PoCL, test_fusion.sh; Mesa's llvmpipe
 * rounds the stem computed inside conv2 differently from conv1's own pass) */
static void same(const float *a, const float *b, long count, const char *what)
{
    if (!a || !b) return;
    double big = 0, diff = 0;
    for (long i = 0; i < count; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (fabs(a[i]) > big) big = fabs(a[i]);
        if (!(d <= diff)) diff = d; /* NaN too */
    }
    printf("%s: largest difference %.3g of %.3g%s\n", what, diff, big,
           memcmp(a, b, (size_t)count * sizeof(float)) ? "" : " (bitwise equal)");
    CHECKF(diff <= 1e-5 * big + 1e-6, "%s: logits differ by %g", what, diff);
}

static float *eval(pipeline *p, const float *x, long k, const char *what)
{
    graft_error e = {0};
    float *out = malloc((size_t)B * (size_t)k * sizeof(float));
    if (!out || pipeline_eval(p, x, NULL, B, out, NULL, &e)) {
        CHECKF(0, "%s: %s", what, e.message);
        free(out);
        return NULL;
    }
    return out;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    graft_recipe *r = model_recipe(argv[1]);
    if (!r) return 1;
    unsetenv("GRAFT_XPAD");
    unsetenv("GRAFT_STEM");
    graft_context *ctx;
    graft_error e = {0};
    graft_context_options co = {0};
    if (graft_context_create(&co, &ctx, &e)) SKIP("no OpenCL device: %s", e.message);
    param_store st = {0};
    if (store_init(&st, &r->graph, 5, &e)) {
        fprintf(stderr, "store: %s\n", e.message);
        return 1;
    }
    const long in = shape_size(r->graph.input),
               k = shape_size(r->graph.layers[r->graph.nlayers - 1].out);
    float *x = malloc((size_t)B * (size_t)in * sizeof(float));
    int *y = malloc(B * sizeof(int));
    if (!x || !y) return 1;
    for (long i = 0; i < (long)B * in; i++) x[i] = uniform() * 2 - 1;
    for (int i = 0; i < B; i++) y[i] = i % (int)k;

    const size_t eval_bound = bound(r, false), train_bound = bound(r, true);
    pipeline *pe = make(ctx, r, &st, false);
    setenv("GRAFT_XPAD", "0", 1);
    setenv("GRAFT_STEM", "0", 1);
    pipeline *po = make(ctx, r, &st, false);
    unsetenv("GRAFT_XPAD");
    unsetenv("GRAFT_STEM");
    const size_t wse = pipeline_plan(pe)->mem.workspace, wso = pipeline_plan(po)->mem.workspace;
    printf("evaluation at batch %d: workspace %zu bytes (%zu with every conv padding its own "
           "input), the plan's bound %zu\n", B, wse, wso, eval_bound);
    CHECKF(wse <= eval_bound && wso <= eval_bound, "evaluation workspace past the bound");
    /* where conv2 runs F(4x4) with conv1 as its stem and conv3, conv4 read padded inputs (CPUs,
     * default paths), no conv of the evaluation pads into the workspace */
    int conv2 = -1;
    for (int i = 0; i < r->graph.nlayers; i++)
        if (strcmp(r->graph.layers[i].name, "conv2") == 0) conv2 = i;
    char kern[128] = "";
    if (conv2 >= 0) pipeline_layer_kernel(pe, conv2, kern, sizeof kern);
    if (!getenv("GRAFT_CONV") && strcmp(kern, "wino4") == 0) {
        CHECKF(wse == 0, "evaluation with stems and padded inputs: workspace %zu, want 0", wse);
        CHECKF(wso > 0, "every conv padding its own input: no workspace for the copies");
    } else {
        printf("conv2 runs '%s' here: the zero-workspace check needs wino4 (not run)\n", kern);
    }
    float *le = eval(pe, x, k, "evaluation"), *lo = eval(po, x, k, "evaluation, own padding");
    same(le, lo, (long)B * k, "padded by the layer before or by the conv itself");
    /* a scan runs every layer on its own, padding into the workspace: it grows */
    CHECK_OK(pipeline_set_scan(pe, true, err));
    float *ls = eval(pe, x, k, "evaluation in a scan");
    bool in_weights;
    CHECKF(pipeline_scan_result(pe, &in_weights) == -1, "scan: a non-finite value found");
    same(le, ls, (long)B * k, "a scan against the fused evaluation");
    CHECK_OK(pipeline_set_scan(pe, false, err));
    free(le), free(lo), free(ls);
    pipeline_free(pe);
    pipeline_free(po);

    pipeline *pt = make(ctx, r, &st, true);
    const size_t wst = pipeline_plan(pt)->mem.workspace;
    printf("training at batch %d: workspace %zu bytes, the plan's bound %zu\n", B, wst,
           train_bound);
    CHECKF(wst <= train_bound, "training workspace past the bound");
    optim_hparams h = {.kind = r->train.optimizer, .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f,
                       .eps = 1e-8f};
    step_result sr = {0};
    CHECK_OK(pipeline_train_step(pt, x, y, B, &h, &sr, err));
    CHECKF(sr.loss_sum == sr.loss_sum && !sr.nonfinite, "training step: loss %g", sr.loss_sum);
    pipeline_free(pt);

    store_free(&st);
    free(x), free(y);
    graft_context_free(ctx);
    recipe_free(r);
    return test_finish("test_workspace");
}
