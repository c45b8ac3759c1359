/* data.h — the dataset layer the trainer uses: load the recipe's data sources (IDX, NPY, CSV) into
 * float datasets with the classes filter, shots, validation split and normalisation applied, and a
 * batcher that prepares shuffled, augmented batches on a worker thread one batch ahead. */
#ifndef GRAFT_DATA_H
#define GRAFT_DATA_H

#include "base.h"
#include "graph.h"
#include "recipe.h"

#include <stdbool.h>
#include <stdint.h>

/* n samples of `sample` floats each (c*h*w), laid out N×C×H×W; labels 0..nclasses-1. A vector
 * model input [F] is stored as c=1, h=1, w=F with rank 1. */
typedef struct dataset {
    long n;
    int c, h, w;
    long sample;
    float *x;     /* n * sample, normalised */
    int *y;       /* n */
    int nclasses; /* classes filter size, or (max label over all splits) + 1 */
    int rank;     /* 3 for images, 1 for vectors */
    float *fill;  /* c values: what a raw 0 (black) becomes after normalisation — crop padding */
    long *index;  /* n: each sample's row in its source file (for reports and tests) */
    const char *source; /* the images (or CSV) path, for messages; points into the spec */
    char *report; /* image folders with data.on_bad_image: skip: one "PATH: why" line per file
                   * left out, or NULL (owned) */
} dataset;

/* Load every source of spec for a model whose per-sample input is `input`:
 *  - idx: images u8 (÷255) or f32/f64, N×H×W (C=1) or N×C×H×W, labels rank 1 of any integer type;
 *  - npy: images f4/f8 or u1 (÷255), N×C×H×W, N×H×W (C=1) or N×F; labels i8/i4/i2/i1/u1/u2/u4,
 *    N or N×1;
 *  - csv: numeric rows with a label column; N×F, reshaped to the model input when the sizes match.
 * Image and label counts must agree; the sample shape must equal the model input (or have the same
 * number of values when one side is a flat vector); labels must be non-negative integers.
 * `classes` keeps those labels and maps them to 0..k-1 in the given order; other samples are
 * dropped; a kept class with no training example is an error. `shots` keeps N examples per class
 * of the training split (a seeded random choice, kept in file order). `val_split` then holds out
 * a stratified fraction of each class: round(n_c × val_split) examples chosen at random (seeded),
 * at most n_c − 1 so every class keeps a training example; with a `val` source that source is the
 * validation split instead. `normalize` (mean/std per channel, or one pair for all) applies to
 * every split. The test split gets the classes filter and normalisation, never shots. Any of val
 * and test may be NULL (not loaded); an absent source gives an empty dataset. On failure every
 * output is empty and the message names the file. */
graft_status data_load(const data_spec *spec, shape input, dataset *train, dataset *val,
                       dataset *test, graft_error *e);
void dataset_free(dataset *d);
/* The normalisation in force: spec itself, or (for RGB image folders without data.normalize) a
 * copy in scratch with ImageNet's mean and std. */
const data_spec *data_spec_resolve(const data_spec *spec, int channels, data_spec *scratch);

/* ---- batches ---- */
typedef struct batcher batcher;

/* Batches of batch_size samples (the last one of an epoch may be smaller; nothing is dropped).
 * shuffle: a new order each epoch; flip: horizontal flip with p = 0.5; crop_pad: random crop of
 * the original size from the image zero-padded by crop_pad on every side (padding = d->fill).
 * The order and the augmentation of an epoch are a pure function of (seed, epoch). The dataset
 * must outlive the batcher. */
graft_status batcher_create(const dataset *d, int batch_size, bool shuffle, bool flip, int crop_pad,
                            uint64_t seed, batcher **out, graft_error *e);
/* Random-resized-crop augmentation (torchvision's, scale [min_scale, 1], ratio [3/4, 4/3]) in
 * place of the pad-crop; 0 turns it off. Call before batcher_start_epoch. */
void batcher_set_resized_crop(batcher *b, float min_scale);
/* Begin an epoch (any number, in any order); the first batch starts being prepared at once. */
void batcher_start_epoch(batcher *b, int epoch);
/* The next batch of the epoch: x is n×C×H×W, y is n labels; both stay valid until the next call
 * to batcher_next, batcher_start_epoch, batcher_skip or batcher_free. false at the end of the
 * epoch (or before any batcher_start_epoch). */
bool batcher_next(batcher *b, const float **x, const int **y, int *n);
/* Skip the next `batches` batches of the current epoch, exactly as if they had been taken (resume
 * in the middle of an epoch). */
void batcher_skip(batcher *b, long batches);
long batcher_batches_per_epoch(const batcher *b);
/* Labels only: batcher_next hands out x = NULL and the samples are not copied; batcher_rows says
 * which rows of the dataset the batch holds (for samples that live on the device). Call before
 * batcher_start_epoch. */
void batcher_set_rows_only(batcher *b, bool on);
/* The dataset rows of the batch batcher_next handed out last (n of them), in batch order; valid
 * until the next batcher_start_epoch. */
const long *batcher_rows(const batcher *b);
void batcher_free(batcher *b);

/* The deterministic generator behind shots, splits, order and augmentation: splitmix64 over a
 * 64-bit state. Exposed so the trainer's own seeded choices use the same one. */
uint64_t data_rng_next(uint64_t *state);
uint64_t data_seed_mix(uint64_t seed, uint64_t stream);

#endif
