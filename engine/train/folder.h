/* folder.h — the ImageFolder data source (torchvision's convention: one sub-folder per class,
 * classes sorted by name): PNG and JPEG decoded to 8-bit pixels at the model's input size. */
#ifndef GRAFT_FOLDER_H
#define GRAFT_FOLDER_H

#include "base.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct folder_set {
    long n;         /* images kept */
    int c, h, w;    /* the model's input: every image is converted to this */
    uint8_t *pix;   /* n×c×h×w, 0..255 */
    int *y;         /* n labels: the class's position among the sorted sub-folders */
    int nclasses;
    char **classes; /* nclasses sub-folder names, sorted */
    char **files;   /* n paths, in label-then-name order (the sample's row) */
    long nbad;      /* files that could not be decoded (skipped, or the cause of the error) */
    char *report;   /* one line per bad file ("PATH: why"), or NULL */
} folder_set;

/* Read every file of every sub-folder of root (hidden files are ignored; the content decides,
 * not the name: PNG and JPEG are decoded, anything else is a bad file). Each image becomes
 * c channels (gray → replicated; RGB → gray by ITU-R 601 luma as Pillow's convert("L"); alpha
 * dropped, as Pillow's convert("RGB")), then its shorter side is resized to the model's larger
 * side (Pillow's antialiased bilinear filter, torchvision's Resize) and the centre cropped to h×w
 * (torchvision's CenterCrop). An image already h×w is kept pixel for pixel. Decoding runs on
 * `threads` worker threads (0: one per online CPU). With skip_bad, bad files are left out and
 * listed in report; without it the load fails and the message lists every bad file. */
graft_status folder_load(const char *root, int c, int h, int w, bool skip_bad, int threads,
                         folder_set *out, graft_error *e);
/* The same for a validation or test folder whose labels must be the training folder's: classes
 * (nclasses sorted names) gives the label of each sub-folder; a sub-folder not among them is an
 * error, a class with no sub-folder is fine. classes == NULL is folder_load. */
graft_status folder_load_as(const char *root, const char *const *classes, int nclasses, int c,
                            int h, int w, bool skip_bad, int threads, folder_set *out,
                            graft_error *e);
void folder_set_free(folder_set *s);

/* Decode one PNG or JPEG file into 8-bit pixels with its own channel count (1 gray, 2 gray+alpha,
 * 3 RGB, 4 RGBA), row-major interleaved; *pix is malloc'ed. For tests and `graft predict --image`. */
graft_status folder_decode(const char *path, uint8_t **pix, int *w, int *h, int *channels,
                           graft_error *e);

/* One image file as the model sees it: decoded, converted to c channels, resized and centre-cropped
 * to h×w exactly as folder_load does; out holds c×h×w planar pixels (0..255). */
graft_status folder_prepare(const char *path, int c, int h, int w, uint8_t *out, graft_error *e);
/* The class names of root (its sub-folders, sorted as labels are numbered); free each and *names. */
graft_status folder_classes(const char *root, char ***names, int *count, graft_error *e);

#endif
