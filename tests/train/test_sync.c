/* test_sync.c — the training step without host synchronisation: the same steps run through the
 * non-blocking path (pinned staging, per-step statistics kept on the device and read back later)
 * and through the blocking path give bit-equal weights and the same loss and correct totals to
 * the bit, block the host at most once per step, and a non-finite loss is still reported with the
 * step that produced it.
 * usage: test_sync MODEL (tests/train/tiny-cnn.yaml) */
#include "model_recipe.h"

#include "compile.h"
#include "harness.h"

enum { STEPS = 12, B = 16 };

static uint64_t rng = 12345;
static float uniform(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 16777216.0f;
}

static pipeline *make(graft_context *ctx, graft_recipe *r, param_store *st)
{
    graft_error e = {0};
    pipeline_options po = {.max_batch = B, .training = true, .optimizer = r->train.optimizer,
                           .dropout_seed = 99};
    pipeline *p = NULL;
    if (store_init(st, &r->graph, 5, &e) || pipeline_create(ctx, &r->graph, &po, &p, &e) ||
        pipeline_upload(p, st, &e)) {
        fprintf(stderr, "pipeline: %s\n", e.message);
        exit(1);
    }
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    graft_recipe *r = model_recipe(argv[1]);
    if (!r) return 1;
    graft_context *ctx;
    graft_error e = {0};
    graft_context_options co = {0};
    if (graft_context_create(&co, &ctx, &e)) SKIP("no OpenCL device: %s", e.message);
    long in = shape_size(r->graph.input);
    float *x = malloc((size_t)STEPS * B * (size_t)in * sizeof(float));
    int *y = malloc((size_t)STEPS * B * sizeof(int));
    float *reused = malloc((size_t)B * (size_t)in * sizeof(float));
    int *reused_y = malloc(B * sizeof(int));
    if (!x || !y || !reused || !reused_y) return 1;
    for (long i = 0; i < (long)STEPS * B * in; i++) x[i] = uniform() * 2 - 1;
    for (int i = 0; i < STEPS * B; i++) y[i] = (int)(uniform() * 10) % 10;

    param_store sa = {0}, sb = {0};
    pipeline *pa = make(ctx, r, &sa), *pb = make(ctx, r, &sb);
    optim_hparams h = {.kind = r->train.optimizer, .lr = 2e-3f, .beta1 = 0.9f, .beta2 = 0.999f,
                       .eps = 1e-8f};
    double loss_b = 0;
    long correct_b = 0;
    pipeline_stats got = {0}, st;
    long syncs0 = pipeline_host_syncs(pa);
    for (int k = 0; k < STEPS; k++) {
        /* the caller's buffer is overwritten right after each step: the upload must have copied
         * it (into pinned staging) before returning */
        memcpy(reused, x + (size_t)k * B * (size_t)in, (size_t)B * (size_t)in * sizeof(float));
        memcpy(reused_y, y + k * B, B * sizeof(int));
        CHECK_OK(pipeline_train_step(pa, reused, reused_y, B, &h, NULL, err));
        memset(reused, 0x7f, (size_t)B * (size_t)in * sizeof(float));
        memset(reused_y, 0x7f, B * sizeof(int));
        step_result sr;
        CHECK_OK(pipeline_train_step(pb, x + (size_t)k * B * (size_t)in, y + k * B, B, &h, &sr,
                                     err));
        loss_b += sr.loss_sum;
        correct_b += sr.correct;
        if (k == STEPS / 2) { /* a progress update in the middle: non-blocking */
            CHECK_OK(pipeline_stats_read(pa, false, &st, err));
            got.loss_sum += st.loss_sum, got.correct += st.correct, got.samples += st.samples;
            got.steps += st.steps;
        }
    }
    CHECK_OK(pipeline_stats_read(pa, true, &st, err));
    got.loss_sum += st.loss_sum, got.correct += st.correct, got.samples += st.samples;
    got.steps += st.steps;
    long syncs = pipeline_host_syncs(pa) - syncs0;
    printf("non-blocking path: %ld host synchronisations in %d steps (blocking path: %ld)\n",
           syncs, STEPS, pipeline_host_syncs(pb));
    CHECKF(syncs <= STEPS, "%ld syncs for %d steps", syncs, STEPS);
    CHECK(pipeline_host_syncs(pb) >= STEPS);
    CHECKF(got.steps == STEPS && got.samples == (long)STEPS * B, "%ld steps, %ld samples",
           got.steps, got.samples);
    CHECKF(got.correct == correct_b, "correct %ld vs %ld", got.correct, correct_b);
    /* the same per-sample losses summed in the same order: the same bits */
    CHECKF(got.loss_sum == loss_b, "loss %.17g vs %.17g", got.loss_sum, loss_b);
    CHECK_OK(pipeline_download(pa, &sa, err));
    CHECK_OK(pipeline_download(pb, &sb, err));
    int differ = 0;
    for (int i = 0; i < sa.n; i++)
        differ += memcmp(sa.items[i].data, sb.items[i].data,
                         (size_t)sa.items[i].count * sizeof(float)) != 0;
    CHECKF(differ == 0, "%d tensors differ between the two paths", differ);

    /* evaluation: device-side statistics equal the blocking read-back */
    step_result er;
    CHECK_OK(pipeline_eval(pb, x, y, B, NULL, &er, err));
    CHECK_OK(pipeline_eval(pb, x, y, B, NULL, NULL, err));
    CHECK_OK(pipeline_stats_read(pb, true, &st, err));
    CHECK(st.samples == B && st.correct == er.correct);
    CHECK(st.loss_sum == er.loss_sum);

    /* a non-finite loss is still caught, with its step (a label outside the classes gives a NaN
     * loss; NaN inputs would not do: relu maps NaN to 0) */
    memcpy(reused, x, (size_t)B * (size_t)in * sizeof(float));
    memcpy(reused_y, y, B * sizeof(int));
    reused_y[3] = 99;
    graft_error ne = {0};
    graft_status s = pipeline_train_step(pa, reused, reused_y, B, &h, NULL, &ne);
    if (!s) s = pipeline_stats_read(pa, true, &st, &ne);
    CHECKF(s == GRAFT_STATUS_BAD_DATA && strstr(ne.message, "not finite") &&
               strstr(ne.message, "at step 13"),
           "%d: %s", (int)s, ne.message);

    pipeline_free(pa);
    pipeline_free(pb);
    store_free(&sa);
    store_free(&sb);
    graft_context_free(ctx);
    recipe_free(r);
    free(x), free(y), free(reused), free(reused_y);
    return test_finish("test_sync");
}
