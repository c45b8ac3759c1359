/* data.c — datasets and batches for the trainer: reads the recipe's IDX/NPY/CSV sources through
 * io/, applies classes → shots → val_split → normalize, and prepares augmented batches on a worker
 * thread one batch ahead of the caller. Everything random is a pure function of the seed. */
#include "data.h"
#include "folder.h"
#include "io.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Labels above this are corruption (a float file read as labels, a wrong column), not classes. */
#define DATA_MAX_LABEL (1 << 20)

/* ---- the generator: splitmix64 (Steele, Lea, Flood 2014), tiny and well mixed ---- */
uint64_t data_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t data_seed_mix(uint64_t seed, uint64_t stream)
{
    uint64_t s = seed ^ (stream * 0xD1B54A32D192ED03ull);
    data_rng_next(&s);
    return data_rng_next(&s);
}

/* uniform in [0, n); the modulo bias is below 2^-40 for any n a data set has */
static uint64_t rng_below(uint64_t *state, uint64_t n)
{
    return data_rng_next(state) % n;
}

/* Random streams, so that changing one use (say, shots) never shifts another (the split). */
enum { STREAM_SHOTS = 1, STREAM_SPLIT = 2, STREAM_ORDER = 3, STREAM_AUGMENT = 4 };

void dataset_free(dataset *d)
{
    if (!d) return;
    free(d->x);
    free(d->y);
    free(d->fill);
    free(d->index);
    free(d->report);
    memset(d, 0, sizeof *d);
}

/* ---- a source as read from disk, before selection ---- */
typedef enum elem { EL_U8, EL_I8, EL_I16, EL_I32, EL_I64, EL_U16, EL_U32, EL_U64, EL_F32, EL_F64 } elem;

typedef struct raw_split {
    const char *images, *labels; /* paths, for messages */
    graft_mark mark;
    elem type;
    float scale; /* u8 pixels: 1/255 */
    void *data;  /* owned */
    /* an IDX or NPY source reads its header first and its rows only once the selection is
     * known: deferred names the images file (an NPY one when deferred_npy), packed maps a row to
     * its place in data (owned) */
    const char *deferred;
    bool deferred_npy;
    long *packed;
    long n;
    int rank; /* per sample: 1 (vector) or 3 (C×H×W) */
    int c, h, w;
    long sample;
    int *y; /* owned, n labels */
    char *report; /* owned: image folders' skipped files, or NULL */
    char **classes; /* owned: an image folder's class names (sub-folders, sorted), or NULL */
    int nclasses;
} raw_split;

static void raw_free(raw_split *r)
{
    free(r->data);
    free(r->packed);
    free(r->y);
    free(r->report);
    for (int i = 0; r->classes && i < r->nclasses; i++) free(r->classes[i]);
    free(r->classes);
    memset(r, 0, sizeof *r);
}

static graft_status fail(graft_error *e, graft_mark at, graft_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static graft_status fail(graft_error *e, graft_mark at, graft_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(e, s, at.line > 0 ? at : (graft_mark){0}, fmt, ap);
    va_end(ap);
    return s;
}

/* Integer labels of any width into ints, checking the range. */
static graft_status convert_labels(raw_split *r, const void *data, elem t, size_t count,
                                   graft_error *e)
{
    r->y = malloc((count ? count : 1) * sizeof *r->y);
    if (!r->y) return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", r->labels);
    for (size_t i = 0; i < count; i++) {
        int64_t v = 0;
        switch (t) {
        case EL_U8: v = ((const uint8_t *)data)[i]; break;
        case EL_I8: v = ((const int8_t *)data)[i]; break;
        case EL_I16: v = ((const int16_t *)data)[i]; break;
        case EL_I32: v = ((const int32_t *)data)[i]; break;
        case EL_I64: v = ((const int64_t *)data)[i]; break;
        case EL_U16: v = ((const uint16_t *)data)[i]; break;
        case EL_U32: v = ((const uint32_t *)data)[i]; break;
        case EL_U64: {
            uint64_t u = ((const uint64_t *)data)[i];
            v = u > INT64_MAX ? -1 : (int64_t)u;
            break;
        }
        default:
            return err_set(e, GRAFT_STATUS_BAD_DATA,
                           "%s: labels must be integers, this file holds floating-point values",
                           r->labels);
        }
        if (v < 0 || v > DATA_MAX_LABEL)
            return err_set(e, GRAFT_STATUS_BAD_DATA,
                           "%s: label %lld of sample %zu is not a class index (0..%d)", r->labels,
                           (long long)v, i, DATA_MAX_LABEL);
        r->y[i] = (int)v;
    }
    return GRAFT_OK;
}

static bool npy_elem(const npy_array *a, elem *t)
{
    switch (a->kind) {
    case 'f': *t = a->itemsize == 4 ? EL_F32 : EL_F64; return true;
    case 'b':
    case 'u':
        *t = a->itemsize == 1 ? EL_U8 : a->itemsize == 2 ? EL_U16 : a->itemsize == 4 ? EL_U32 : EL_U64;
        return true;
    case 'i':
        *t = a->itemsize == 1 ? EL_I8 : a->itemsize == 2 ? EL_I16 : a->itemsize == 4 ? EL_I32 : EL_I64;
        return true;
    }
    return false;
}

static elem idx_elem(int type)
{
    switch (type) {
    case 0x08: return EL_U8;
    case 0x09: return EL_I8;
    case 0x0B: return EL_I16;
    case 0x0C: return EL_I32;
    case 0x0D: return EL_F32;
    default: return EL_F64;
    }
}

/* The per-sample layout of an array whose first dimension counts samples. */
static graft_status sample_layout(raw_split *r, int rank, const int64_t *shape, graft_error *e)
{
    if (rank < 2 || rank > 4)
        return fail(e, r->mark, GRAFT_STATUS_BAD_DATA,
                    "%s: images must be N×F, N×H×W or N×C×H×W, found rank %d", r->images, rank);
    for (int i = 1; i < rank; i++)
        if (shape[i] <= 0 || shape[i] > (1 << 24))
            return fail(e, r->mark, GRAFT_STATUS_BAD_DATA,
                        "%s: dimension %d of the images is %lld", r->images, i,
                        (long long)shape[i]);
    r->n = (long)shape[0];
    r->rank = rank == 2 ? 1 : 3;
    r->c = rank == 4 ? (int)shape[1] : 1;
    r->h = rank == 2 ? 1 : (int)shape[rank - 2];
    r->w = (int)shape[rank - 1];
    r->sample = (long)r->c * r->h * r->w;
    if (r->sample > (1L << 28))
        return fail(e, r->mark, GRAFT_STATUS_BAD_DATA, "%s: %ld values per sample is absurd",
                    r->images, r->sample);
    return GRAFT_OK;
}

/* Labels are a vector (N or N×1) with one entry per image, whatever file format holds them. */
static graft_status label_shape(const data_source *src, const raw_split *r, int rank,
                                const int64_t *shape, graft_error *e)
{
    if (rank != 1 && !(rank == 2 && shape[1] == 1))
        return fail(e, src->mark, GRAFT_STATUS_BAD_DATA,
                    "%s: labels must be a vector (N or N×1), found rank %d", src->labels, rank);
    if ((long)shape[0] != r->n)
        return fail(e, src->mark, GRAFT_STATUS_BAD_DATA, "%s holds %ld images but %s holds %lld labels",
                    src->images, r->n, src->labels, (long long)shape[0]);
    return GRAFT_OK;
}

/* The images' header and the labels; the image rows wait for fetch_rows. */
static graft_status load_idx(const data_source *src, raw_split *r, graft_error *e)
{
    idx_array img = {0}, lab = {0};
    graft_status s;
    if ((s = idx_read_header(src->images, &img, e))) return s;
    if ((s = sample_layout(r, img.rank, img.shape, e))) goto done;
    r->type = idx_elem(img.type);
    r->scale = r->type == EL_U8 ? 1.0f / 255.0f : 1.0f;
    r->deferred = src->images;
    if (!src->labels) { /* unlabelled (adapt.target): every sample is class 0 */
        r->y = calloc((size_t)(r->n ? r->n : 1), sizeof *r->y);
        if (!r->y) s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", src->images);
        goto done;
    }
    if ((s = idx_read(src->labels, &lab, e))) goto done;
    if ((s = label_shape(src, r, lab.rank, lab.shape, e))) goto done;
    s = convert_labels(r, lab.data, idx_elem(lab.type), lab.count, e);
done:
    idx_free(&img);
    idx_free(&lab);
    return s;
}

/* The images' header and the labels; the image rows wait for fetch_rows (as load_idx). */
static graft_status load_npy(const data_source *src, raw_split *r, graft_error *e)
{
    npy_array img = {0}, lab = {0};
    graft_status s;
    elem t;
    if ((s = npy_read_header(src->images, &img, e))) return s;
    if (!npy_elem(&img, &t)) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: unsupported element type", src->images);
        goto done;
    }
    if ((s = sample_layout(r, img.rank, img.shape, e))) goto done;
    r->type = t;
    r->scale = t == EL_U8 ? 1.0f / 255.0f : 1.0f;
    r->deferred = src->images;
    r->deferred_npy = true;
    if (!src->labels) { /* unlabelled (adapt.target): every sample is class 0 */
        r->y = calloc((size_t)(r->n ? r->n : 1), sizeof *r->y);
        if (!r->y) s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", src->images);
        goto done;
    }
    if ((s = npy_read(src->labels, &lab, e))) goto done;
    if ((s = label_shape(src, r, lab.rank, lab.shape, e))) goto done;
    if (!npy_elem(&lab, &t) || lab.kind == 'f' || lab.kind == 'b') {
        s = err_set(e, GRAFT_STATUS_BAD_DATA,
                    "%s: labels must be integers (int64, int32, uint8, ...), found '%c%d'",
                    src->labels, lab.kind, lab.itemsize);
        goto done;
    }
    s = convert_labels(r, lab.data, t, lab.count, e);
done:
    npy_free(&img);
    npy_free(&lab);
    return s;
}

static graft_status load_csv(const data_source *src, raw_split *r, graft_error *e)
{
    csv_table t = {0};
    graft_status s = csv_read(src->path, src->label_column, &t, e);
    if (s) return s;
    r->n = t.rows;
    r->rank = 1;
    r->c = r->h = 1;
    r->w = t.features;
    r->sample = t.features;
    r->type = EL_F32;
    r->scale = 1.0f;
    r->data = t.x;
    for (long i = 0; i < t.rows; i++)
        if (t.labels[i] < 0 || t.labels[i] > DATA_MAX_LABEL) {
            s = err_set(e, GRAFT_STATUS_BAD_DATA,
                        "%s: label %d of data row %ld is not a class index (0..%d)", src->path,
                        t.labels[i], i + 1, DATA_MAX_LABEL);
            free(t.labels);
            return s;
        }
    r->y = t.labels;
    return GRAFT_OK;
}

/* format: folder — folder.c decodes every image at the model's input size into 8-bit pixels; a
 * val or test folder takes its labels from the training folder's classes (ref) */
static graft_status load_folder(const data_source *src, shape input, const raw_split *ref,
                                raw_split *r, graft_error *e)
{
    if (input.rank != 3)
        return fail(e, src->mark, GRAFT_STATUS_BAD_DATA,
                    "%s: an image folder needs a C×H×W model input", src->root);
    folder_set f;
    graft_status s = folder_load_as(src->root, ref ? (const char *const *)ref->classes : NULL,
                                    ref ? ref->nclasses : 0, input.d[0], input.d[1], input.d[2],
                                    src->skip_bad_images, 0, &f, e);
    if (s) return s;
    r->type = EL_U8;
    r->scale = 1.0f / 255.0f;
    r->n = f.n;
    r->rank = 3;
    r->c = f.c, r->h = f.h, r->w = f.w;
    r->sample = (long)f.c * f.h * f.w;
    r->data = f.pix;
    r->y = f.y;
    r->report = f.report;
    r->classes = f.classes;
    r->nclasses = f.nclasses;
    f.pix = NULL, f.y = NULL, f.report = NULL, f.classes = NULL, f.nclasses = 0;
    folder_set_free(&f);
    return GRAFT_OK;
}

static void dims_text(int rank, int c, int h, int w, char *out, size_t n)
{
    if (rank == 1)
        snprintf(out, n, "%ld", (long)c * h * w);
    else
        snprintf(out, n, "%dx%dx%d", c, h, w);
}

static graft_status load_source(const char *split, const data_source *src, shape input,
                                const raw_split *ref, raw_split *r, graft_error *e)
{
    memset(r, 0, sizeof *r);
    r->images = src->format == DATA_CSV ? src->path : src->images;
    r->labels = src->format == DATA_CSV ? src->path : src->labels;
    r->mark = src->mark;
    graft_status s;
    switch (src->format) {
    case DATA_IDX:
    case DATA_NPY:
        if (!src->images || (!src->labels && !src->unlabelled))
            return fail(e, src->mark, GRAFT_STATUS_BAD_RECIPE,
                        "data.%s needs both images and labels", split);
        s = src->format == DATA_IDX ? load_idx(src, r, e) : load_npy(src, r, e);
        break;
    case DATA_CSV:
        if (!src->path)
            return fail(e, src->mark, GRAFT_STATUS_BAD_RECIPE, "data.%s needs a path", split);
        s = load_csv(src, r, e);
        break;
    case DATA_FOLDER:
        r->images = r->labels = src->root;
        s = load_folder(src, input, ref && ref->classes ? ref : NULL, r, e);
        break;
    default:
        return fail(e, src->mark, GRAFT_STATUS_UNSUPPORTED,
                    "data.%s: this source format is not supported by this build", split);
    }
    if (s) {
        raw_free(r);
        return s;
    }
    /* The model's view: exact C×H×W, or the same number of values when either side is flat. */
    long want = shape_size(input);
    bool same = input.rank == 3 && r->rank == 3 && input.d[0] == r->c && input.d[1] == r->h &&
                input.d[2] == r->w;
    if (!same && !((input.rank == 1 || r->rank == 1) && want == r->sample)) {
        char have[64], need[64];
        dims_text(r->rank, r->c, r->h, r->w, have, sizeof have);
        dims_text(input.rank, input.rank == 3 ? input.d[0] : 1, input.rank == 3 ? input.d[1] : 1,
                  input.rank == 3 ? input.d[2] : input.d[0], need, sizeof need);
        s = fail(e, src->mark, GRAFT_STATUS_BAD_DATA,
                 "%s: samples are %s (%ld values) but the model input is %s (%ld values)",
                 r->images, have, r->sample, need, want);
        raw_free(r);
        return s;
    }
    r->rank = input.rank;
    r->c = input.rank == 3 ? input.d[0] : 1;
    r->h = input.rank == 3 ? input.d[1] : 1;
    r->w = input.rank == 3 ? input.d[2] : input.d[0];
    return GRAFT_OK;
}

/* ---- selection ---- */

/* Samples of r that survive the classes filter, with their mapped labels. */
typedef struct selection {
    long n;
    long *rows;
    int *labels;
} selection;

static void selection_free(selection *s)
{
    free(s->rows);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

static graft_status select_classes(const data_spec *spec, const raw_split *r, int *map, int nmap,
                                   selection *out, graft_error *e)
{
    memset(out, 0, sizeof *out);
    out->rows = malloc((size_t)(r->n ? r->n : 1) * sizeof *out->rows);
    out->labels = malloc((size_t)(r->n ? r->n : 1) * sizeof *out->labels);
    if (!out->rows || !out->labels) {
        selection_free(out);
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", r->images);
    }
    for (long i = 0; i < r->n; i++) {
        int l = r->y[i];
        if (spec->nclasses > 0) {
            l = l < nmap ? map[l] : -1;
            if (l < 0) continue; /* a label outside classes is dropped */
        }
        out->rows[out->n] = i;
        out->labels[out->n++] = l;
    }
    return GRAFT_OK;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Choose k of the n positions in pos[] at random: afterwards pos[0..k) are the chosen ones
 * (a partial Fisher-Yates shuffle), sorted back into file order; the others follow in no
 * particular order (no caller reads their order: shots keeps the first part alone, the
 * validation split marks the rest as training). */
static void choose(long *pos, long n, long k, uint64_t *rng)
{
    for (long i = 0; i < k; i++) {
        long j = i + (long)rng_below(rng, (uint64_t)(n - i));
        long t = pos[i];
        pos[i] = pos[j];
        pos[j] = t;
    }
    qsort(pos, (size_t)k, sizeof *pos, cmp_long);
}

/* shots, then the stratified validation split, on the training selection (positions into it).
 * keep[i]: 0 dropped, 1 train, 2 validation. */
static graft_status shots_and_split(const data_spec *spec, const selection *sel, int nclasses,
                                    bool split, char *keep, const char *file, graft_error *e)
{
    graft_status s = GRAFT_OK;
    long *count = calloc((size_t)nclasses, sizeof *count);
    long *start = calloc((size_t)nclasses + 1, sizeof *start);
    long *pos = malloc((size_t)(sel->n ? sel->n : 1) * sizeof *pos);
    if (!count || !start || !pos) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", file);
        goto done;
    }
    for (long i = 0; i < sel->n; i++) count[sel->labels[i]]++;
    for (int c = 0; c < nclasses; c++) start[c + 1] = start[c] + count[c];
    {
        long *fillp = calloc((size_t)nclasses, sizeof *fillp);
        if (!fillp) {
            s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", file);
            goto done;
        }
        for (long i = 0; i < sel->n; i++) {
            int c = sel->labels[i];
            pos[start[c] + fillp[c]++] = i; /* per class, in file order */
        }
        free(fillp);
    }
    uint64_t shot_rng = data_seed_mix(spec->seed, STREAM_SHOTS);
    uint64_t split_rng = data_seed_mix(spec->seed, STREAM_SPLIT);
    memset(keep, 0, (size_t)sel->n);
    for (int c = 0; c < nclasses; c++) {
        long *p = pos + start[c], n = count[c];
        if (spec->shots > 0 && n > spec->shots) {
            choose(p, n, spec->shots, &shot_rng);
            n = spec->shots;
        }
        long hold = 0;
        if (split && spec->val_split > 0) {
            hold = (long)((double)n * spec->val_split + 0.5);
            if (hold > n - 1) hold = n - 1; /* every class keeps a training example */
            if (hold < 0) hold = 0;
            choose(p, n, hold, &split_rng);
        }
        for (long i = 0; i < n; i++) keep[p[i]] = i < hold ? 2 : 1;
    }
done:
    free(count);
    free(start);
    free(pos);
    return s;
}

/* Read the image rows a split uses (sel, or those keep[] does not drop) from a deferred source:
 * an IDX one inflates the others (gzip) but neither stores nor converts them, an NPY one never
 * reads them. */
static graft_status fetch_rows(raw_split *r, const selection *sel, const char *keep,
                               graft_error *e)
{
    if (!r->deferred || r->data) return GRAFT_OK;
    unsigned char *mask = calloc((size_t)(r->n ? r->n : 1), 1);
    r->packed = malloc((size_t)(r->n ? r->n : 1) * sizeof *r->packed);
    if (!mask || !r->packed) {
        free(mask);
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", r->images);
    }
    for (long i = 0; i < sel->n; i++)
        if (!keep || keep[i]) mask[sel->rows[i]] = 1;
    long k = 0;
    for (long i = 0; i < r->n; i++) r->packed[i] = mask[i] ? k++ : -1;
    void *data = NULL;
    long rows = 0, per = 0;
    graft_status s;
    if (r->deferred_npy) {
        npy_array img;
        s = npy_read_rows(r->deferred, mask, (size_t)r->n, &img, e);
        if (!s) {
            rows = img.rank ? (long)img.shape[0] : 1;
            per = rows ? (long)(img.count / (size_t)rows) : 0;
            data = img.data;
        }
    } else {
        idx_array img;
        s = idx_read_rows(r->deferred, mask, (size_t)r->n, &img, e);
        if (!s) {
            rows = (long)img.rows;
            per = rows ? (long)(img.count / img.rows) : 0;
            data = img.data;
        }
    }
    free(mask);
    if (s) return s;
    if (rows != k || (k && per != r->sample)) {
        free(data);
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: the file changed while it was read",
                       r->images);
    }
    r->data = data;
    return GRAFT_OK;
}

/* Convert the chosen rows of r into d (normalised), keep[] selecting rows where keep[i] == want
 * (keep == NULL: every row of sel). */
static graft_status build(const data_spec *spec, const raw_split *r, const selection *sel,
                          const char *keep, char want, int nclasses, dataset *d, graft_error *e)
{
    memset(d, 0, sizeof *d);
    long n = 0;
    for (long i = 0; i < sel->n; i++) n += !keep || keep[i] == want;
    d->n = n;
    d->rank = r->rank;
    d->c = r->c, d->h = r->h, d->w = r->w;
    d->sample = r->sample;
    d->nclasses = nclasses;
    d->source = r->images;
    if (r->report && !(d->report = strdup(r->report)))
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", r->images);
    d->x = malloc((size_t)(n ? n : 1) * (size_t)r->sample * sizeof *d->x);
    d->y = malloc((size_t)(n ? n : 1) * sizeof *d->y);
    d->index = malloc((size_t)(n ? n : 1) * sizeof *d->index);
    d->fill = malloc((size_t)d->c * sizeof *d->fill);
    if (!d->x || !d->y || !d->index || !d->fill) {
        dataset_free(d);
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory for %ld samples", r->images, n);
    }
    long hw = (long)r->h * r->w;
    /* what a raw 0 becomes: the value crop padding uses */
    for (int c = 0; c < d->c; c++)
        d->fill[c] = spec->nnorm ? (0.0f - spec->norm_mean[c]) / spec->norm_std[c] : 0.0f;
    /* bytes (Fashion-MNIST, PNG, JPEG): each channel's 256 values converted once, by the same
     * operations as below, so a lookup gives the same bits */
    const int nch = r->rank == 3 ? d->c : 1; /* normalisation channels */
    float *lut = NULL;
    if (r->type == EL_U8 && nch > 0 && (lut = malloc((size_t)nch * 256 * sizeof *lut)))
        for (int c = 0; c < nch; c++)
            for (int u = 0; u < 256; u++) {
                float v = (float)u;
                if (r->scale != 1.0f) v = v / 255.0f;
                if (spec->nnorm) v = (v - spec->norm_mean[c]) / spec->norm_std[c];
                lut[c * 256 + u] = v;
            }
    long k = 0;
    for (long i = 0; i < sel->n; i++) {
        if (keep && keep[i] != want) continue;
        long row = sel->rows[i];
        float *dst = d->x + (size_t)k * (size_t)r->sample;
        size_t base = (size_t)(r->packed ? r->packed[row] : row) * (size_t)r->sample;
        long from = 0; /* the elements done by lookup */
        if (lut) {
            const uint8_t *src = (const uint8_t *)r->data + base;
            const long per = r->rank == 3 ? hw : r->sample; /* elements a channel */
            bool finite = true;
            for (int c = 0; c < nch; c++) {
                const float *t = lut + c * 256;
                for (long q = c * per; q < (c + 1) * per; q++)
                    finite &= isfinite(dst[q] = t[src[q]]) != 0;
            }
            if (finite) from = r->sample; /* else the loop below names the element */
        }
        for (long j = from; j < r->sample; j++) {
            size_t at = base + (size_t)j;
            float v;
            switch (r->type) {
            case EL_U8: v = ((const uint8_t *)r->data)[at]; break;
            case EL_I8: v = ((const int8_t *)r->data)[at]; break;
            case EL_I16: v = ((const int16_t *)r->data)[at]; break;
            case EL_I32: v = (float)((const int32_t *)r->data)[at]; break;
            case EL_I64: v = (float)((const int64_t *)r->data)[at]; break;
            case EL_U16: v = ((const uint16_t *)r->data)[at]; break;
            case EL_U32: v = (float)((const uint32_t *)r->data)[at]; break;
            case EL_U64: v = (float)((const uint64_t *)r->data)[at]; break;
            case EL_F32: v = ((const float *)r->data)[at]; break;
            default: v = (float)((const double *)r->data)[at]; break;
            }
            /* the same operations as torchvision's ToTensor (÷255) and Normalize ((x-m)/s), in
             * the same order, so the values match PyTorch's bit for bit */
            if (r->scale != 1.0f) v = v / 255.0f;
            if (spec->nnorm) {
                int c = r->rank == 3 ? (int)(j / hw) : 0;
                v = (v - spec->norm_mean[c]) / spec->norm_std[c];
            }
            if (!isfinite(v)) {
                /* a NaN or an infinity would poison the weights silently (relu turns NaN into 0,
                 * so even the loss can stay finite): refuse it here, where it can be named */
                long at_row = row;
                dataset_free(d);
                free(lut);
                return err_set(e, GRAFT_STATUS_BAD_DATA,
                               "%s: sample %ld holds %s (element %ld%s); the inputs must be finite",
                               r->images, at_row, isnan(v) ? "NaN" : "an infinity", j,
                               spec->nnorm ? ", after data.normalize" : "");
            }
            dst[j] = v;
        }
        d->y[k] = sel->labels[i];
        d->index[k] = row;
        k++;
    }
    free(lut);
    return GRAFT_OK;
}

static void empty_dataset(dataset *d)
{
    if (d) memset(d, 0, sizeof *d);
}

const data_spec *data_spec_resolve(const data_spec *spec, int channels, data_spec *scratch)
{
    /* RGB image folders default to ImageNet's mean/std, which torchvision's weights expect */
    if (spec->train.format == DATA_FOLDER && spec->nnorm == 0 && channels == 3) {
        static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
        *scratch = *spec;
        scratch->nnorm = 3;
        memcpy(scratch->norm_mean, mean, sizeof mean);
        memcpy(scratch->norm_std, std, sizeof std);
        return scratch;
    }
    return spec;
}

graft_status data_load(const data_spec *spec, shape input, dataset *train, dataset *val,
                       dataset *test, graft_error *e)
{
    empty_dataset(train);
    empty_dataset(val);
    empty_dataset(test);
    raw_split rtrain = {0}, rval = {0}, rtest = {0};
    selection strain = {0}, sval = {0}, stest = {0};
    char *keep = NULL;
    int *map = NULL, nmap = 0;
    graft_status s = GRAFT_OK;
    if (!spec->train.present)
        return err_set(e, GRAFT_STATUS_BAD_RECIPE, "the recipe has no data.train source");
    if (input.rank != 1 && input.rank != 3)
        return err_set(e, GRAFT_STATUS_INTERNAL, "model input rank %d", input.rank);
    if (spec->val_split < 0 || spec->val_split >= 1)
        return err_at(e, GRAFT_STATUS_BAD_RECIPE, spec->train.mark,
                      "data.val_split must be in [0, 1), found %g", spec->val_split);
    int channels = input.rank == 3 ? input.d[0] : 1;
    data_spec imagenet;
    spec = data_spec_resolve(spec, channels, &imagenet);
    if (spec->nnorm && spec->nnorm != channels)
        return err_set(e, GRAFT_STATUS_BAD_RECIPE,
                       "data.normalize has %d mean/std values but the model input has %d "
                       "channel%s",
                       spec->nnorm, channels, channels == 1 ? "" : "s");
    for (int c = 0; c < spec->nnorm; c++)
        if (!(spec->norm_std[c] > 0))
            return err_set(e, GRAFT_STATUS_BAD_RECIPE,
                           "data.normalize: std[%d] is %g; it must be positive", c,
                           spec->norm_std[c]);

    if ((s = load_source("train", &spec->train, input, NULL, &rtrain, e))) goto error;
    bool use_val = val && spec->val.present;
    if (use_val && (s = load_source("val", &spec->val, input, &rtrain, &rval, e))) goto error;
    if (test && spec->test.present && (s = load_source("test", &spec->test, input, &rtrain, &rtest, e)))
        goto error;

    /* classes: label -> position in the list (or -1) */
    int nclasses = spec->nclasses;
    if (nclasses > 0) {
        for (int i = 0; i < nclasses; i++) {
            if (spec->classes[i] < 0 || spec->classes[i] > DATA_MAX_LABEL) {
                s = err_set(e, GRAFT_STATUS_BAD_RECIPE, "data.classes: %d is not a class label",
                            spec->classes[i]);
                goto error;
            }
            if (spec->classes[i] + 1 > nmap) nmap = spec->classes[i] + 1;
        }
        map = malloc((size_t)nmap * sizeof *map);
        if (!map) {
            s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
            goto error;
        }
        for (int i = 0; i < nmap; i++) map[i] = -1;
        for (int i = 0; i < nclasses; i++) {
            if (map[spec->classes[i]] >= 0) {
                s = err_set(e, GRAFT_STATUS_BAD_RECIPE, "data.classes lists %d twice",
                            spec->classes[i]);
                goto error;
            }
            map[spec->classes[i]] = i;
        }
    } else {
        const raw_split *all[] = {&rtrain, &rval, &rtest};
        for (int k = 0; k < 3; k++)
            for (long i = 0; i < all[k]->n; i++)
                if (all[k]->y[i] + 1 > nclasses) nclasses = all[k]->y[i] + 1;
    }
    if ((s = select_classes(spec, &rtrain, map, nmap, &strain, e))) goto error;
    if (strain.n == 0) {
        s = fail(e, spec->train.mark, GRAFT_STATUS_BAD_DATA, "%s: no training examples%s",
                 rtrain.images, spec->nclasses ? " of the listed classes" : "");
        goto error;
    }
    if (spec->nclasses > 0) {
        long *per = calloc((size_t)nclasses, sizeof *per);
        if (!per) {
            s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
            goto error;
        }
        for (long i = 0; i < strain.n; i++) per[strain.labels[i]]++;
        for (int c = 0; c < nclasses; c++)
            if (per[c] == 0) {
                s = fail(e, spec->train.mark, GRAFT_STATUS_BAD_DATA,
                         "class %d (data.classes[%d]) has no examples in %s", spec->classes[c], c,
                         rtrain.images);
                free(per);
                goto error;
            }
        free(per);
    }
    keep = malloc((size_t)strain.n);
    if (!keep) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        goto error;
    }
    if ((s = shots_and_split(spec, &strain, nclasses, !spec->val.present, keep, rtrain.images, e)))
        goto error;
    if ((s = fetch_rows(&rtrain, &strain, keep, e))) goto error;
    if ((s = build(spec, &rtrain, &strain, keep, 1, nclasses, train, e))) goto error;
    if (val) {
        if (use_val) {
            if ((s = select_classes(spec, &rval, map, nmap, &sval, e))) goto error;
            s = fetch_rows(&rval, &sval, NULL, e);
            if (!s) s = build(spec, &rval, &sval, NULL, 0, nclasses, val, e);
        } else {
            s = build(spec, &rtrain, &strain, keep, 2, nclasses, val, e);
        }
        if (s) goto error;
    }
    if (test && spec->test.present) {
        if ((s = select_classes(spec, &rtest, map, nmap, &stest, e))) goto error;
        if ((s = fetch_rows(&rtest, &stest, NULL, e))) goto error;
        if ((s = build(spec, &rtest, &stest, NULL, 0, nclasses, test, e))) goto error;
    }
    goto done;
error:
    dataset_free(train);
    dataset_free(val);
    dataset_free(test);
done:
    free(keep);
    free(map);
    selection_free(&strain);
    selection_free(&sval);
    selection_free(&stest);
    raw_free(&rtrain);
    raw_free(&rval);
    raw_free(&rtest);
    return s;
}

/* ---- the batcher: one worker thread fills the slot the caller is not using ---- */
struct batcher {
    const dataset *d;
    int bs, pad;
    float rrc; /* random-resized-crop: smallest area fraction (0 = off) */
    bool shuffle, flip;
    bool rows_only; /* labels and row numbers only: the samples live elsewhere (device cache) */
    uint64_t seed;
    long nb; /* batches per epoch */
    int epoch;
    bool started;
    long *order;
    float *x[2];
    int *y[2];
    int count[2];
    long ready[2]; /* which batch each slot holds (-1: none) */
    int pending;   /* the slot that holds or receives batch `next` */
    long next;     /* the next batch batcher_next hands out */
    /* worker */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long job; /* batch to prepare (-1: none) */
    int job_slot;
    bool busy, quit;
};

static void quiesce(batcher *b);

/* torchvision's RandomResizedCrop on an already h×w image: an area fraction in [min_scale, 1] and
 * an aspect ratio in [3/4, 4/3] (log-uniform), ten tries, else the whole image; the crop is
 * resized back to h×w bilinearly (half-pixel centres, as torch's interpolate without
 * align_corners), then flipped if asked. */
static void resized_crop(const float *src, float *dst, int c, int h, int w, float min_scale,
                         bool flip, uint64_t *rng)
{
    int cw = w, ch = h, x0 = 0, y0 = 0;
    for (int attempt = 0; attempt < 10; attempt++) {
        double u1 = (double)(data_rng_next(rng) >> 11) * 0x1p-53;
        double u2 = (double)(data_rng_next(rng) >> 11) * 0x1p-53;
        double area = (min_scale + (1.0 - min_scale) * u1) * (double)h * w;
        double ratio = exp(log(3.0 / 4.0) + (log(4.0 / 3.0) - log(3.0 / 4.0)) * u2);
        int tw = (int)lround(sqrt(area * ratio)), th = (int)lround(sqrt(area / ratio));
        if (tw >= 1 && th >= 1 && tw <= w && th <= h) {
            cw = tw;
            ch = th;
            x0 = (int)(data_rng_next(rng) % (uint64_t)(w - cw + 1));
            y0 = (int)(data_rng_next(rng) % (uint64_t)(h - ch + 1));
            break;
        }
    }
    double sy = (double)ch / h, sx = (double)cw / w;
    long hw = (long)h * w;
    for (int y = 0; y < h; y++) {
        double fy = (y + 0.5) * sy - 0.5;
        if (fy < 0) fy = 0;
        int iy = (int)fy;
        if (iy > ch - 1) iy = ch - 1;
        int iy1 = iy + 1 < ch ? iy + 1 : ch - 1;
        float wy = (float)(fy - iy);
        for (int x = 0; x < w; x++) {
            double fx = (x + 0.5) * sx - 0.5;
            if (fx < 0) fx = 0;
            int ix = (int)fx;
            if (ix > cw - 1) ix = cw - 1;
            int ix1 = ix + 1 < cw ? ix + 1 : cw - 1;
            float wx = (float)(fx - ix);
            int ox = flip ? w - 1 - x : x;
            for (int k = 0; k < c; k++) {
                const float *p = src + k * hw + (long)y0 * w + x0;
                float a = p[(long)iy * w + ix], bb = p[(long)iy * w + ix1];
                float cc = p[(long)iy1 * w + ix], d = p[(long)iy1 * w + ix1];
                float top = a + (bb - a) * wx, bot = cc + (d - cc) * wx;
                dst[k * hw + (long)y * w + ox] = top + (bot - top) * wy;
            }
        }
    }
}

void batcher_set_resized_crop(batcher *b, float min_scale)
{
    pthread_mutex_lock(&b->mu);
    quiesce(b); /* a batch being prepared would mix the old and new settings */
    b->rrc = b->d->rank == 3 ? min_scale : 0;
    pthread_mutex_unlock(&b->mu);
}

static void fill_batch(batcher *b, int slot, long k)
{
    const dataset *d = b->d;
    long first = k * b->bs, n = d->n - first < b->bs ? d->n - first : b->bs;
    int h = d->h, w = d->w;
    long hw = (long)h * w;
    for (long j = 0; j < n; j++) {
        long pos = first + j, i = b->order[pos];
        b->y[slot][j] = d->y[i];
        if (b->rows_only) continue; /* d->x may be NULL: the samples live on the device */
        const float *src = d->x + (size_t)i * (size_t)d->sample;
        float *dst = b->x[slot] + (size_t)j * (size_t)d->sample;
        bool flip = false;
        int dy = 0, dx = 0;
        if (b->rrc > 0) {
            uint64_t rng = data_seed_mix(data_seed_mix(b->seed, STREAM_AUGMENT),
                                         (uint64_t)(uint32_t)b->epoch << 40 ^ (uint64_t)pos);
            flip = b->flip && (data_rng_next(&rng) & 1);
            resized_crop(src, dst, d->c, h, w, b->rrc, flip, &rng);
            continue;
        }
        if (b->flip || b->pad) {
            /* keyed by (seed, epoch, position in the epoch): skipping batches needs no replay */
            uint64_t rng = data_seed_mix(data_seed_mix(b->seed, STREAM_AUGMENT),
                                         (uint64_t)(uint32_t)b->epoch << 40 ^ (uint64_t)pos);
            uint64_t r = data_rng_next(&rng);
            flip = b->flip && (r & 1);
            if (b->pad) {
                uint64_t span = 2 * (uint64_t)b->pad + 1;
                dy = (int)((r >> 8) % span) - b->pad;
                dx = (int)((r >> 32) % span) - b->pad;
            }
        }
        if (!flip && !dy && !dx) {
            memcpy(dst, src, (size_t)d->sample * sizeof *dst);
            continue;
        }
        /* out(y, x) = in(y + dy, x' + dx) with x' = flip ? w-1-x : x; outside = fill (a padded 0) */
        for (int c = 0; c < d->c; c++) {
            float pad = d->fill ? d->fill[c] : 0.0f;
            const float *sc = src + c * hw;
            float *dc = dst + c * hw;
            for (int y = 0; y < h; y++) {
                int sy = y + dy;
                float *row = dc + (long)y * w;
                if (sy < 0 || sy >= h) {
                    for (int x = 0; x < w; x++) row[x] = pad;
                    continue;
                }
                const float *srow = sc + (long)sy * w;
                for (int x = 0; x < w; x++) {
                    int sx = (flip ? w - 1 - x : x) + dx;
                    row[x] = sx >= 0 && sx < w ? srow[sx] : pad;
                }
            }
        }
    }
    b->count[slot] = (int)n;
}

static void *worker(void *arg)
{
    batcher *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->quit && b->job < 0) pthread_cond_wait(&b->cv, &b->mu);
        if (b->quit) break;
        long k = b->job;
        int slot = b->job_slot;
        b->job = -1;
        b->busy = true;
        pthread_mutex_unlock(&b->mu);
        fill_batch(b, slot, k);
        pthread_mutex_lock(&b->mu);
        b->busy = false;
        b->ready[slot] = k;
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* With the lock held: cancel any queued job and wait until the worker is idle. */
static void quiesce(batcher *b)
{
    b->job = -1;
    while (b->busy) pthread_cond_wait(&b->cv, &b->mu);
    b->ready[0] = b->ready[1] = -1;
}

/* With the lock held: hand out batch k next, and start preparing it. */
static void restart_at(batcher *b, long k)
{
    quiesce(b);
    b->next = k < b->nb ? k : b->nb;
    b->pending = 0;
    if (b->next < b->nb) {
        b->job = b->next;
        b->job_slot = 0;
        pthread_cond_broadcast(&b->cv);
    }
}

graft_status batcher_create(const dataset *d, int batch_size, bool shuffle, bool flip, int crop_pad,
                            uint64_t seed, batcher **out, graft_error *e)
{
    *out = NULL;
    if (batch_size < 1)
        return err_set(e, GRAFT_STATUS_INTERNAL, "batch size %d must be positive", batch_size);
    if (crop_pad < 0)
        return err_set(e, GRAFT_STATUS_INTERNAL, "crop padding %d must not be negative", crop_pad);
    if ((flip || crop_pad) && d->rank != 3)
        return err_set(e, GRAFT_STATUS_BAD_RECIPE,
                       "data.augment (flip, crop) needs image inputs [C, H, W]; this model takes "
                       "vectors");
    batcher *b = calloc(1, sizeof *b);
    if (!b) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory for the batcher");
    b->d = d;
    b->bs = batch_size;
    b->shuffle = shuffle;
    b->flip = flip;
    b->pad = crop_pad;
    b->seed = seed;
    b->nb = (d->n + batch_size - 1) / batch_size;
    b->job = -1;
    b->ready[0] = b->ready[1] = -1;
    size_t per = (size_t)(d->n < batch_size ? (d->n ? d->n : 1) : batch_size);
    b->order = malloc((size_t)(d->n ? d->n : 1) * sizeof *b->order);
    for (int s = 0; s < 2; s++) {
        b->x[s] = malloc(per * (size_t)(d->sample ? d->sample : 1) * sizeof(float));
        b->y[s] = malloc(per * sizeof(int));
    }
    if (!b->order || !b->x[0] || !b->x[1] || !b->y[0] || !b->y[1]) {
        for (int s = 0; s < 2; s++) free(b->x[s]), free(b->y[s]);
        free(b->order);
        free(b);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory for two batches of %d", batch_size);
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    if (pthread_create(&b->thread, NULL, worker, b) != 0) {
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        for (int s = 0; s < 2; s++) free(b->x[s]), free(b->y[s]);
        free(b->order);
        free(b);
        return err_set(e, GRAFT_STATUS_NOMEM, "cannot start the batch worker thread");
    }
    *out = b;
    return GRAFT_OK;
}

void batcher_start_epoch(batcher *b, int epoch)
{
    pthread_mutex_lock(&b->mu);
    quiesce(b); /* the worker reads order; change it only while it is idle */
    b->epoch = epoch;
    b->started = true;
    for (long i = 0; i < b->d->n; i++) b->order[i] = i;
    if (b->shuffle) {
        uint64_t rng = data_seed_mix(data_seed_mix(b->seed, STREAM_ORDER), (uint64_t)(uint32_t)epoch);
        for (long i = b->d->n - 1; i > 0; i--) {
            long j = (long)rng_below(&rng, (uint64_t)i + 1);
            long t = b->order[i];
            b->order[i] = b->order[j];
            b->order[j] = t;
        }
    }
    restart_at(b, 0);
    pthread_mutex_unlock(&b->mu);
}

bool batcher_next(batcher *b, const float **x, const int **y, int *n)
{
    pthread_mutex_lock(&b->mu);
    if (!b->started || b->next >= b->nb) {
        pthread_mutex_unlock(&b->mu);
        *n = 0;
        return false;
    }
    int slot = b->pending;
    while (b->ready[slot] != b->next) pthread_cond_wait(&b->cv, &b->mu);
    /* the caller gives back the other slot: prepare the batch after this one there */
    if (b->next + 1 < b->nb) {
        b->job = b->next + 1;
        b->job_slot = 1 - slot;
        b->ready[1 - slot] = -1;
        b->pending = 1 - slot;
        pthread_cond_broadcast(&b->cv);
    }
    b->next++;
    pthread_mutex_unlock(&b->mu);
    *x = b->rows_only ? NULL : b->x[slot];
    *y = b->y[slot];
    *n = b->count[slot];
    return true;
}

void batcher_set_rows_only(batcher *b, bool on)
{
    pthread_mutex_lock(&b->mu);
    quiesce(b);
    b->rows_only = on;
    pthread_mutex_unlock(&b->mu);
}

const long *batcher_rows(const batcher *b)
{
    return b->next > 0 ? b->order + (b->next - 1) * b->bs : NULL;
}

void batcher_skip(batcher *b, long batches)
{
    if (batches <= 0) return;
    pthread_mutex_lock(&b->mu);
    if (b->started) restart_at(b, b->next + batches);
    pthread_mutex_unlock(&b->mu);
}

long batcher_batches_per_epoch(const batcher *b)
{
    return b->nb;
}

void batcher_free(batcher *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->quit = true;
    b->job = -1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    for (int s = 0; s < 2; s++) free(b->x[s]), free(b->y[s]);
    free(b->order);
    free(b);
}
