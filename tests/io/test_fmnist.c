/* test_fmnist.c — the real Fashion-MNIST files from Debian's dataset-fashion-mnist: all four
 * gzipped IDX files read with the right counts, sizes and class balance, and data_load producing
 * the transfer demo's split (classes 5-9, 100 shots, val_split 0.1, normalized). Skips (77) when
 * the package is not installed. */
#include "data.h"
#include "iotest.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"

static void check_pair(const char *images, const char *labels, long n)
{
    idx_array img, lab;
    double t0 = now_seconds();
    CHECK_OK(idx_read(images, &img, err));
    CHECK_OK(idx_read(labels, &lab, err));
    printf("%s: %.2f s\n", images, now_seconds() - t0);
    CHECK(img.type == 0x08 && img.rank == 3 && img.shape[0] == n && img.shape[1] == 28 &&
          img.shape[2] == 28 && img.count == (size_t)n * 784);
    CHECK(lab.type == 0x08 && lab.rank == 1 && lab.shape[0] == n);
    long per[10] = {0}, other = 0;
    for (long i = 0; lab.data && i < n; i++) {
        uint8_t l = ((uint8_t *)lab.data)[i];
        if (l < 10)
            per[l]++;
        else
            other++;
    }
    CHECK(other == 0);
    for (int c = 0; c < 10; c++) CHECKF(per[c] == n / 10, "class %d: %ld", c, per[c]);
    /* pixels span the whole byte range, and the mean is the well-known 0.2860 */
    double sum = 0;
    int lo = 255, hi = 0;
    for (size_t i = 0; img.data && i < img.count; i++) {
        int v = ((uint8_t *)img.data)[i];
        sum += v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    double mean = sum / (double)img.count / 255.0;
    CHECKF(lo == 0 && hi == 255 && fabs(mean - 0.2860) < 0.003, "min %d max %d mean %.4f", lo, hi,
           mean);
    idx_free(&img);
    idx_free(&lab);
}

int main(void)
{
    if (!fs_exists(FMNIST "train-images-idx3-ubyte.gz")) SKIP("Fashion-MNIST is not installed");
    check_pair(FMNIST "train-images-idx3-ubyte.gz", FMNIST "train-labels-idx1-ubyte.gz", 60000);
    check_pair(FMNIST "t10k-images-idx3-ubyte.gz", FMNIST "t10k-labels-idx1-ubyte.gz", 10000);

    data_spec s;
    memset(&s, 0, sizeof s);
    s.train = (data_source){.present = true, .format = DATA_IDX,
                            .images = FMNIST "train-images-idx3-ubyte.gz",
                            .labels = FMNIST "train-labels-idx1-ubyte.gz"};
    s.test = (data_source){.present = true, .format = DATA_IDX,
                           .images = FMNIST "t10k-images-idx3-ubyte.gz",
                           .labels = FMNIST "t10k-labels-idx1-ubyte.gz"};
    int classes[] = {5, 6, 7, 8, 9};
    s.nclasses = 5;
    s.classes = classes;
    s.shots = 100;
    s.val_split = 0.1;
    s.nnorm = 1;
    s.norm_mean[0] = 0.2860f;
    s.norm_std[0] = 0.3530f;
    s.seed = 1;
    dataset tr, va, te;
    shape in = {3, {1, 28, 28}};
    double t0 = now_seconds();
    CHECK_OK(data_load(&s, in, &tr, &va, &te, err));
    printf("data_load: %.2f s\n", now_seconds() - t0);
    CHECK(tr.n == 450 && va.n == 50 && te.n == 5000 && tr.nclasses == 5);
    long per[5] = {0};
    for (long i = 0; i < tr.n; i++) per[tr.y[i]]++;
    for (int c = 0; c < 5; c++) CHECKF(per[c] == 90, "train class %d: %ld", c, per[c]);
    memset(per, 0, sizeof per);
    for (long i = 0; i < te.n; i++) per[te.y[i]]++;
    for (int c = 0; c < 5; c++) CHECKF(per[c] == 1000, "test class %d: %ld", c, per[c]);
    CHECK(fabsf(tr.fill[0] - (-0.2860f / 0.3530f)) < 1e-6f);
    /* the pretraining split: classes 0-4, everything, default 10% held out */
    int pre[] = {0, 1, 2, 3, 4};
    s.classes = pre;
    s.shots = 0;
    dataset_free(&tr);
    dataset_free(&va);
    dataset_free(&te);
    CHECK_OK(data_load(&s, in, &tr, &va, NULL, err));
    CHECK(tr.n == 27000 && va.n == 3000);
    dataset_free(&tr);
    dataset_free(&va);
    return test_finish("test_fmnist");
}
