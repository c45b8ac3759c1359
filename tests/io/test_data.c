/* test_data.c — the dataset layer and the batcher: IDX/NPY/CSV sources, classes (filter, remap,
 * drop), shots, stratified val_split, normalize, the test split, every data error the trainer
 * relies on, and batcher determinism, coverage, skipping and augmentation. */
#include "data.h"
#include "iotest.h"

/* pixel k of sample i: distinct enough that every sample is recognisable */
static uint8_t pixel(long i, long k)
{
    return (uint8_t)((i * 37 + k * 11) % 251);
}

static int label_of(long i)
{
    return (int)(i % 4); /* classes 0..3, interleaved */
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* IDX u8 images N×H×W and labels N; cut bytes off the end of the image file when asked. */
static void write_idx(const char *img, const char *lab, long n, int h, int w, long nlabels,
                      size_t cut)
{
    size_t bytes = 16 + (size_t)n * (size_t)h * (size_t)w;
    unsigned char *b = malloc(bytes);
    b[0] = b[1] = 0, b[2] = 0x08, b[3] = 3;
    put_be32(b + 4, (uint32_t)n), put_be32(b + 8, (uint32_t)h), put_be32(b + 12, (uint32_t)w);
    for (long i = 0; i < n; i++)
        for (long k = 0; k < (long)h * w; k++) b[16 + i * h * w + k] = pixel(i, k);
    write_bytes(img, b, bytes - cut);
    free(b);
    unsigned char *l = malloc(8 + (size_t)nlabels);
    l[0] = l[1] = 0, l[2] = 0x08, l[3] = 1;
    put_be32(l + 4, (uint32_t)nlabels);
    for (long i = 0; i < nlabels; i++) l[8 + i] = (unsigned char)label_of(i);
    write_bytes(lab, l, 8 + (size_t)nlabels);
    free(l);
}

/* A version 1.0 .npy by hand (npy_write_f32 only writes float32): the dict, padded so the data
 * starts on a 64-byte boundary, then n bytes of data. */
static void write_npy_raw(const char *path, const char *dict, const void *data, size_t n)
{
    size_t len = strlen(dict), pre = 10 + len + 1, pad = (64 - pre % 64) % 64;
    size_t hl = len + 1 + pad, total = 10 + hl + n;
    unsigned char *b = malloc(total);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)hl, b[9] = (unsigned char)(hl >> 8);
    memcpy(b + 10, dict, len);
    memset(b + 10 + len, ' ', pad);
    b[10 + hl - 1] = '\n';
    if (n) memcpy(b + 10 + hl, data, n);
    write_bytes(path, b, total);
    free(b);
}

/* int64 labels f(0) .. f(n-1) */
static void write_npy_labels(const char *path, long n, int (*f)(long))
{
    char dict[128];
    snprintf(dict, sizeof dict, "{'descr': '<i8', 'fortran_order': False, 'shape': (%ld,), }", n);
    int64_t *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    for (long i = 0; i < n; i++) v[i] = f(i);
    write_npy_raw(path, dict, v, (size_t)n * 8);
    free(v);
}

static data_spec base_spec(const char *img, const char *lab)
{
    data_spec s;
    memset(&s, 0, sizeof s);
    s.train.present = true;
    s.train.format = DATA_IDX;
    s.train.images = img;
    s.train.labels = lab;
    s.val_split = 0;
    s.seed = 42;
    return s;
}

static const shape in_1x4x4 = {3, {1, 4, 4}};

static void test_idx_basic(void)
{
    const char *img = tmp_path("tr-img.idx"), *lab = tmp_path("tr-lab.idx");
    write_idx(img, lab, 40, 4, 4, 40, 0);
    data_spec s = base_spec(img, lab);
    dataset tr, va, te;
    CHECK_OK(data_load(&s, in_1x4x4, &tr, &va, &te, err));
    CHECK(tr.n == 40 && tr.c == 1 && tr.h == 4 && tr.w == 4 && tr.sample == 16 && tr.rank == 3);
    CHECK(tr.nclasses == 4 && va.n == 0 && te.n == 0);
    int bad = 0;
    for (long i = 0; i < tr.n; i++) {
        bad += tr.index[i] != i || tr.y[i] != label_of(i);
        for (long k = 0; k < 16; k++) bad += tr.x[i * 16 + k] != (float)pixel(i, k) / 255.0f;
    }
    CHECKF(bad == 0, "%d mismatches", bad);
    CHECK(tr.fill && tr.fill[0] == 0.0f);
    dataset_free(&tr);
    dataset_free(&va);
    dataset_free(&te);

    /* classes [3, 1]: label 3 -> 0, 1 -> 1, the rest dropped; file order kept; test filtered too */
    int classes[] = {3, 1};
    s.nclasses = 2;
    s.classes = classes;
    s.test = s.train;
    CHECK_OK(data_load(&s, in_1x4x4, &tr, NULL, &te, err));
    CHECK(tr.n == 20 && tr.nclasses == 2 && te.n == 20);
    bad = 0;
    for (long i = 0; i < tr.n; i++) {
        long row = tr.index[i];
        bad += (label_of(row) == 3 ? 0 : label_of(row) == 1 ? 1 : -1) != tr.y[i];
        bad += i > 0 && tr.index[i - 1] >= row;
        bad += tr.x[i * 16 + 5] != (float)pixel(row, 5) / 255.0f;
    }
    CHECKF(bad == 0, "%d mismatches", bad);
    dataset_free(&tr);
    dataset_free(&te);

    /* shots 3 per class, then val_split 1/3 -> 1 per class held out (stratified) */
    s.shots = 3;
    s.val_split = 1.0 / 3;
    s.test.present = false;
    dataset tr2, va2;
    CHECK_OK(data_load(&s, in_1x4x4, &tr, &va, NULL, err));
    CHECK_OK(data_load(&s, in_1x4x4, &tr2, &va2, NULL, err));
    CHECK(tr.n == 4 && va.n == 2);
    int per_tr[2] = {0}, per_va[2] = {0};
    for (long i = 0; i < tr.n; i++) per_tr[tr.y[i]]++;
    for (long i = 0; i < va.n; i++) per_va[va.y[i]]++;
    CHECK(per_tr[0] == 2 && per_tr[1] == 2 && per_va[0] == 1 && per_va[1] == 1);
    /* deterministic: the same seed chooses the same rows */
    CHECK(tr2.n == tr.n && va2.n == va.n);
    if (tr2.n == tr.n) CHECK(memcmp(tr.index, tr2.index, (size_t)tr.n * sizeof *tr.index) == 0);
    if (va2.n == va.n) CHECK(memcmp(va.index, va2.index, (size_t)va.n * sizeof *va.index) == 0);
    /* train and val are disjoint */
    for (long i = 0; i < tr.n; i++)
        for (long j = 0; j < va.n; j++) CHECK(tr.index[i] != va.index[j]);
    dataset_free(&tr2);
    dataset_free(&va2);
    /* another seed picks other rows (10 rows per class: a collision of all is unlikely) */
    bool differ = false;
    for (unsigned long seed = 1; seed < 6 && !differ; seed++) {
        s.seed = seed;
        CHECK_OK(data_load(&s, in_1x4x4, &tr2, NULL, NULL, err));
        differ = tr2.n != tr.n || memcmp(tr.index, tr2.index, (size_t)tr.n * sizeof *tr.index);
        dataset_free(&tr2);
    }
    CHECK(differ);
    dataset_free(&tr);
    dataset_free(&va);

    /* shots larger than a class keeps all of it; val_split never empties a class */
    s.seed = 42;
    s.shots = 1000;
    s.val_split = 0.5;
    CHECK_OK(data_load(&s, in_1x4x4, &tr, &va, NULL, err));
    CHECK(tr.n == 10 && va.n == 10);
    dataset_free(&tr);
    dataset_free(&va);
    s.shots = 1;
    s.val_split = 0.9;
    CHECK_OK(data_load(&s, in_1x4x4, &tr, &va, NULL, err));
    CHECK(tr.n == 2 && va.n == 0);
    dataset_free(&tr);
    dataset_free(&va);

    /* a val source replaces val_split; normalize applies to every split */
    s.shots = 0;
    s.val_split = 0.5;
    s.val = s.train;
    s.nnorm = 1;
    s.norm_mean[0] = 0.5f;
    s.norm_std[0] = 0.25f;
    CHECK_OK(data_load(&s, in_1x4x4, &tr, &va, NULL, err));
    CHECK(tr.n == 20 && va.n == 20);
    if (tr.n == 20 && va.n == 20) {
        float want = ((float)pixel(tr.index[3], 7) / 255.0f - 0.5f) / 0.25f;
        CHECK(fabsf(tr.x[3 * 16 + 7] - want) < 1e-6f);
        CHECK(fabsf(va.x[3 * 16 + 7] - want) < 1e-6f);
        CHECK(tr.fill[0] == -2.0f);
    }
    dataset_free(&tr);
    dataset_free(&va);
}

static void test_errors(void)
{
    const char *img = tmp_path("e-img.idx"), *lab = tmp_path("e-lab.idx");
    dataset tr, va, te;
    graft_error e = {0};
    data_spec s = base_spec(img, lab);

    write_idx(img, lab, 20, 4, 4, 20, 5); /* truncated image file */
    CHECK_FAILS(data_load(&s, in_1x4x4, &tr, &va, &te, &e), e, GRAFT_STATUS_BAD_DATA,
                "20x4x4 u8 needs 320 bytes of data, the file holds 315", "truncated idx");
    CHECK(strstr(e.message, img) != NULL);
    CHECK(tr.x == NULL && tr.n == 0);

    write_idx(img, lab, 20, 4, 4, 19, 0); /* count mismatch */
    CHECK_FAILS(data_load(&s, in_1x4x4, &tr, &va, &te, &e), e, GRAFT_STATUS_BAD_DATA,
                "holds 20 images but|holds 19 labels", "count mismatch");
    CHECK(strstr(e.message, img) && strstr(e.message, lab));

    write_idx(img, lab, 20, 4, 4, 20, 0);
    shape other = {3, {1, 5, 4}};
    CHECK_FAILS(data_load(&s, other, &tr, &va, &te, &e), e, GRAFT_STATUS_BAD_DATA,
                "samples are 1x4x4 (16 values) but the model input is 1x5x4 (20 values)",
                "image size");
    shape three = {3, {3, 4, 4}};
    CHECK_FAILS(data_load(&s, three, &tr, &va, &te, &e), e, GRAFT_STATUS_BAD_DATA,
                "1x4x4 (16 values) but the model input is 3x4x4", "channels");
    shape vec = {1, {20}};
    CHECK_FAILS(data_load(&s, vec, &tr, &va, &te, &e), e, GRAFT_STATUS_BAD_DATA,
                "the model input is 20 (20 values)", "vector size");
    /* the same values as a flat vector are fine */
    shape flat = {1, {16}};
    CHECK_OK(data_load(&s, flat, &tr, NULL, NULL, err));
    CHECK(tr.rank == 1 && tr.c == 1 && tr.h == 1 && tr.w == 16 && tr.n == 20);
    dataset_free(&tr);

    /* a class with no examples */
    int classes[] = {1, 9, 2};
    s.nclasses = 3;
    s.classes = classes;
    s.shots = 5;
    CHECK_FAILS(data_load(&s, in_1x4x4, &tr, &va, &te, &e), e, GRAFT_STATUS_BAD_DATA,
                "class 9 (data.classes[1]) has no examples in", "empty class");
    int dup[] = {1, 1};
    s.nclasses = 2;
    s.classes = dup;
    CHECK_FAILS(data_load(&s, in_1x4x4, &tr, &va, &te, &e), e, 0, "lists 1 twice", "dup class");
    s.nclasses = 0;
    s.shots = 0;

    /* normalize must match the channels; std must be positive */
    s.nnorm = 3;
    CHECK_FAILS(data_load(&s, in_1x4x4, &tr, &va, &te, &e), e, GRAFT_STATUS_BAD_RECIPE,
                "data.normalize has 3 mean/std values but the model input has 1 channel",
                "norm count");
    s.nnorm = 1;
    s.norm_std[0] = 0;
    CHECK_FAILS(data_load(&s, in_1x4x4, &tr, &va, &te, &e), e, 0, "std[0] is 0", "norm std");
    s.nnorm = 0;

    /* a missing labels file, a missing train source, a recipe mark on source errors */
    s.train.labels = tmp_path("nope.idx");
    CHECK_FAILS(data_load(&s, in_1x4x4, &tr, &va, &te, &e), e, GRAFT_STATUS_IO, "nope.idx",
                "missing labels");
    s.train.labels = lab;
    s.train.mark = (graft_mark){"recipe.yaml", 12, 3};
    write_idx(img, lab, 20, 4, 4, 19, 0);
    CHECK_FAILS(data_load(&s, in_1x4x4, &tr, &va, &te, &e), e, 0, "labels", "mark");
    CHECK(strcmp(e.file, "recipe.yaml") == 0 && e.line == 12 && e.col == 3);
    s.train.present = false;
    CHECK_FAILS(data_load(&s, in_1x4x4, &tr, &va, &te, &e), e, 0, "no data.train", "no train");

    /* label files that are not labels */
    s = base_spec(img, lab);
    write_idx(img, lab, 20, 4, 4, 20, 0);
    const char *fl = tmp_path("float-labels.npy");
    float fv[20] = {0};
    int64_t sh[1] = {20};
    CHECK_OK(npy_write_f32(fl, fv, 1, sh, err));
    s.train.format = DATA_NPY;
    s.train.images = tmp_path("img.npy");
    float px[20 * 16] = {0};
    int64_t ish[4] = {20, 1, 4, 4};
    CHECK_OK(npy_write_f32(s.train.images, px, 4, ish, err));
    s.train.labels = fl;
    CHECK_FAILS(data_load(&s, in_1x4x4, &tr, &va, &te, &e), e, GRAFT_STATUS_BAD_DATA,
                "labels must be integers", "float labels");
}

static int lab3(long i)
{
    return (int)(i % 3);
}
static int neg(long i)
{
    return i == 7 ? -1 : 0;
}

/* u8 images N×H×W as .npy ('|u1'), the same pixels as write_idx. */
static void write_npy_u8(const char *path, long n, int h, int w)
{
    char dict[128];
    snprintf(dict, sizeof dict, "{'descr': '|u1', 'fortran_order': False, 'shape': (%ld, %d, %d), }",
             n, h, w);
    unsigned char *px = malloc((size_t)n * h * w + 1);
    for (long i = 0; i < n; i++)
        for (long k = 0; k < (long)h * w; k++) px[i * h * w + k] = pixel(i, k);
    write_npy_raw(path, dict, px, (size_t)n * h * w);
    free(px);
}

/* An NPY source reads only the rows its selection keeps (npy_read_rows), and the selection is the
 * IDX source's: the same files as IDX and as NPY give bitwise the same splits. */
static void test_npy_rows_like_idx(void)
{
    const char *ii = tmp_path("sel-img.idx"), *il = tmp_path("sel-lab.idx");
    const char *ni = tmp_path("sel-img.npy"), *nl = tmp_path("sel-lab.npy");
    write_idx(ii, il, 90, 4, 4, 90, 0);
    write_npy_u8(ni, 90, 4, 4);
    write_npy_labels(nl, 90, label_of);
    data_spec s = base_spec(ii, il);
    int keep_classes[] = {3, 1}; /* dropped classes: rows the NPY read never touches */
    s.nclasses = 2;
    s.classes = keep_classes;
    s.shots = 4;
    s.val_split = 0.25;
    s.test = s.train;
    dataset a[3], b[3];
    CHECK_OK(data_load(&s, in_1x4x4, &a[0], &a[1], &a[2], err));
    s.train = (data_source){.present = true, .format = DATA_NPY, .images = ni, .labels = nl};
    s.test = s.train;
    CHECK_OK(data_load(&s, in_1x4x4, &b[0], &b[1], &b[2], err));
    for (int k = 0; k < 3; k++) {
        CHECKF(a[k].n == b[k].n && a[k].n > 0, "split %d: %ld and %ld samples", k, a[k].n,
               b[k].n);
        if (a[k].n == b[k].n && a[k].n > 0)
            CHECKF(memcmp(a[k].x, b[k].x, (size_t)a[k].n * 16 * sizeof(float)) == 0 &&
                       memcmp(a[k].y, b[k].y, (size_t)a[k].n * sizeof(int)) == 0,
                   "split %d differs between IDX and NPY", k);
        dataset_free(&a[k]);
        dataset_free(&b[k]);
    }
}

static void test_npy_csv(void)
{
    /* npy: float32 N×C×H×W images, int64 labels */
    const char *img = tmp_path("i.npy"), *lab = tmp_path("l.npy");
    float px[12 * 2 * 3 * 3];
    for (size_t i = 0; i < ARRAY_LEN(px); i++) px[i] = (float)i;
    int64_t sh[4] = {12, 2, 3, 3};
    CHECK_OK(npy_write_f32(img, px, 4, sh, err));
    write_npy_labels(lab, 12, lab3);
    data_spec s;
    memset(&s, 0, sizeof s);
    s.train = (data_source){.present = true, .format = DATA_NPY, .images = img, .labels = lab};
    s.nnorm = 2;
    s.norm_mean[0] = 1, s.norm_std[0] = 2, s.norm_mean[1] = -1, s.norm_std[1] = 0.5f;
    dataset tr;
    shape in = {3, {2, 3, 3}};
    CHECK_OK(data_load(&s, in, &tr, NULL, NULL, err));
    CHECK(tr.n == 12 && tr.nclasses == 3 && tr.c == 2);
    if (tr.n == 12) {
        CHECK(tr.x[5 * 18 + 4] == (px[5 * 18 + 4] - 1) / 2);      /* channel 0 */
        CHECK(tr.x[5 * 18 + 13] == (px[5 * 18 + 13] + 1) / 0.5f); /* channel 1 */
        CHECK(tr.y[5] == 2 && tr.fill[0] == -0.5f && tr.fill[1] == 2.0f);
    }
    dataset_free(&tr);
    /* N×F into a [2,3,3] model; the flat model takes N×C×H×W too */
    int64_t shf[2] = {12, 18};
    CHECK_OK(npy_write_f32(img, px, 2, shf, err));
    CHECK_OK(data_load(&s, in, &tr, NULL, NULL, err));
    CHECK(tr.n == 12 && tr.rank == 3 && tr.c == 2);
    dataset_free(&tr);
    /* a negative label is an error naming the file */
    write_npy_labels(lab, 12, neg);
    graft_error e = {0};
    CHECK_FAILS(data_load(&s, in, &tr, NULL, NULL, &e), e, GRAFT_STATUS_BAD_DATA,
                "label -1 of sample 7 is not a class index", "negative label");
    CHECK(strstr(e.message, lab) != NULL);

    /* csv: label last, features reshaped to the [1,2,2] model input */
    const char *csv = tmp_path("d.csv");
    const char *text = "a,b,c,d,label\n0,1,2,3,1\n4,5,6,7,0\n\n8,9,10,11,1\n";
    write_bytes(csv, text, strlen(text));
    memset(&s, 0, sizeof s);
    s.train = (data_source){.present = true, .format = DATA_CSV, .path = csv, .label_column = -1};
    s.test = s.train;
    shape in2 = {3, {1, 2, 2}};
    dataset te;
    CHECK_OK(data_load(&s, in2, &tr, NULL, &te, err));
    CHECK(tr.n == 3 && tr.nclasses == 2 && tr.h == 2 && te.n == 3);
    if (tr.n == 3) CHECK(tr.x[4] == 4 && tr.y[0] == 1 && tr.y[1] == 0 && tr.x[11] == 11);
    dataset_free(&tr);
    dataset_free(&te);
    shape in3 = {1, {5}};
    CHECK_FAILS(data_load(&s, in3, &tr, NULL, NULL, &e), e, GRAFT_STATUS_BAD_DATA,
                "samples are 4 (4 values) but the model input is 5", "csv size");
}

/* ---- batcher ---- */
static dataset synthetic(long n, int c, int h, int w)
{
    dataset d;
    memset(&d, 0, sizeof d);
    d.n = n, d.c = c, d.h = h, d.w = w, d.sample = (long)c * h * w, d.rank = 3;
    d.x = malloc((size_t)(n * d.sample) * sizeof *d.x);
    d.y = malloc((size_t)n * sizeof *d.y);
    d.fill = malloc((size_t)c * sizeof *d.fill);
    for (int k = 0; k < c; k++) d.fill[k] = -7.0f - (float)k;
    for (long i = 0; i < n; i++) {
        d.y[i] = (int)i; /* the label identifies the sample */
        for (long k = 0; k < d.sample; k++) d.x[i * d.sample + k] = (float)(i * 1000 + k);
    }
    return d;
}

/* All batches of one epoch, concatenated: labels and data. */
typedef struct epoch_rec {
    long n, nb;
    int sizes[64];
    int y[1024];
    float *x;
} epoch_rec;

static void run_epoch(batcher *b, int epoch, long skip, const dataset *d, epoch_rec *r)
{
    memset(r, 0, sizeof *r);
    r->x = malloc((size_t)(d->n * d->sample) * sizeof(float));
    batcher_start_epoch(b, epoch);
    batcher_skip(b, skip);
    const float *x;
    const int *y;
    int n;
    while (batcher_next(b, &x, &y, &n)) {
        r->sizes[r->nb++] = n;
        memcpy(r->y + r->n, y, (size_t)n * sizeof *y);
        memcpy(r->x + r->n * d->sample, x, (size_t)(n * d->sample) * sizeof *x);
        r->n += n;
    }
}

static void test_batcher(void)
{
    dataset d = synthetic(103, 2, 5, 6);
    batcher *b = NULL, *b2 = NULL;
    CHECK_OK(batcher_create(&d, 16, true, false, 0, 7, &b, err));
    CHECK_OK(batcher_create(&d, 16, true, false, 0, 7, &b2, err));
    if (!b || !b2) return;
    CHECK(batcher_batches_per_epoch(b) == 7);
    const float *x;
    const int *y;
    int n;
    CHECK(!batcher_next(b, &x, &y, &n)); /* no epoch started */
    epoch_rec a, a2, c, sk;
    run_epoch(b, 3, 0, &d, &a);
    CHECK(a.nb == 7 && a.n == 103 && a.sizes[0] == 16 && a.sizes[6] == 7);
    /* every sample exactly once, with its own data */
    int seen[103] = {0}, bad = 0;
    for (long i = 0; i < a.n; i++) {
        seen[a.y[i]]++;
        bad += memcmp(a.x + i * d.sample, d.x + (long)a.y[i] * d.sample,
                      (size_t)d.sample * sizeof(float)) != 0;
    }
    for (int i = 0; i < 103; i++) bad += seen[i] != 1;
    CHECKF(bad == 0, "coverage: %d problems", bad);
    /* same seed and epoch -> same batches, from another batcher and after other epochs */
    run_epoch(b2, 3, 0, &d, &a2);
    CHECK(memcmp(a.y, a2.y, sizeof a.y) == 0);
    free(a2.x);
    run_epoch(b, 4, 0, &d, &c);
    CHECK(memcmp(a.y, c.y, 103 * sizeof(int)) != 0);
    free(c.x);
    run_epoch(b, 3, 0, &d, &a2);
    CHECK(memcmp(a.y, a2.y, sizeof a.y) == 0);
    free(a2.x);
    /* skipping 4 batches resumes exactly where an uninterrupted epoch would be */
    run_epoch(b2, 3, 4, &d, &sk);
    CHECK(sk.nb == 3 && sk.n == 103 - 64);
    CHECK(memcmp(sk.y, a.y + 64, (size_t)sk.n * sizeof(int)) == 0);
    free(sk.x);
    /* skip in the middle of an epoch, after taking some */
    batcher_start_epoch(b2, 3);
    for (int i = 0; i < 2; i++) batcher_next(b2, &x, &y, &n);
    batcher_skip(b2, 3);
    CHECK(batcher_next(b2, &x, &y, &n) && n == 16 && y[0] == a.y[80]);
    batcher_skip(b2, 100);
    CHECK(!batcher_next(b2, &x, &y, &n));
    /* abandon an epoch half way: the next epoch starts clean */
    batcher_start_epoch(b2, 3);
    batcher_next(b2, &x, &y, &n);
    run_epoch(b2, 3, 0, &d, &a2);
    CHECK(a2.n == 103 && memcmp(a.y, a2.y, sizeof a.y) == 0);
    free(a2.x);
    free(a.x);
    batcher_free(b);
    batcher_free(b2);

    /* no shuffle: file order */
    CHECK_OK(batcher_create(&d, 50, false, false, 0, 7, &b, err));
    run_epoch(b, 1, 0, &d, &a);
    bad = 0;
    for (int i = 0; i < 103; i++) bad += a.y[i] != i;
    CHECK(bad == 0 && a.nb == 3 && a.sizes[2] == 3);
    free(a.x);
    batcher_free(b);

    /* augmentation: each output is the sample shifted by (dy, dx) in [-pad, pad], maybe
     * mirrored, with fill outside; flips happen about half the time; deterministic per epoch */
    int pad = 2;
    CHECK_OK(batcher_create(&d, 10, true, true, pad, 99, &b, err));
    run_epoch(b, 1, 0, &d, &a);
    run_epoch(b, 1, 0, &d, &a2);
    CHECK(memcmp(a.x, a2.x, (size_t)(d.n * d.sample) * sizeof(float)) == 0);
    int flips = 0, unexplained = 0, shifted = 0;
    for (long i = 0; i < a.n; i++) {
        const float *out = a.x + i * d.sample, *in = d.x + (long)a.y[i] * d.sample;
        bool found = false;
        for (int f = 0; f < 2 && !found; f++)
            for (int dy = -pad; dy <= pad && !found; dy++)
                for (int dx = -pad; dx <= pad && !found; dx++) {
                    bool ok = true;
                    for (int ch = 0; ch < d.c && ok; ch++)
                        for (int yy = 0; yy < d.h && ok; yy++)
                            for (int xx = 0; xx < d.w && ok; xx++) {
                                int sy = yy + dy, sx = (f ? d.w - 1 - xx : xx) + dx;
                                float want = sy >= 0 && sy < d.h && sx >= 0 && sx < d.w
                                                 ? in[(ch * d.h + sy) * d.w + sx]
                                                 : d.fill[ch];
                                ok = out[(ch * d.h + yy) * d.w + xx] == want;
                            }
                    if (ok) {
                        found = true;
                        flips += f;
                        shifted += dy || dx;
                    }
                }
        unexplained += !found;
    }
    CHECKF(unexplained == 0, "%d augmented samples are not a crop/flip of their source",
           unexplained);
    CHECKF(flips > 30 && flips < 73, "%d of 103 flipped", flips);
    CHECK(shifted > 60);
    free(a.x);
    free(a2.x);
    batcher_free(b);

    /* augmentation needs images; batch size must be positive */
    dataset v = d;
    v.rank = 1;
    graft_error e = {0};
    CHECK_FAILS(batcher_create(&v, 8, true, true, 0, 1, &b, &e), e, 0, "needs image inputs",
                "vector aug");
    CHECK_FAILS(batcher_create(&d, 0, true, false, 0, 1, &b, &e), e, 0, "batch size", "bs 0");
    /* an empty dataset has no batches */
    dataset z = synthetic(0, 1, 2, 2);
    CHECK_OK(batcher_create(&z, 4, true, false, 0, 1, &b, err));
    if (b) {
        batcher_start_epoch(b, 1);
        CHECK(!batcher_next(b, &x, &y, &n) && n == 0);
        batcher_free(b);
    }
    dataset_free(&z);
    dataset_free(&d);
}

int main(void)
{
    test_idx_basic();
    test_errors();
    test_npy_csv();
    test_npy_rows_like_idx();
    test_batcher();
    rm_tmp_dir();
    return test_finish("test_data");
}
