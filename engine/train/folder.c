/* folder.c — the ImageFolder data source: lists root/CLASS/FILE, decodes PNG (libpng) and JPEG
 * (libjpeg-turbo) on worker threads, converts channels as Pillow does, then resizes and centre-crops
 * as torchvision's Resize + CenterCrop do on PIL images, so pixels match a PyTorch pipeline. */
#include "folder.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

/* A file bigger than this is not a training image (and reading it would only exhaust memory). */
#define FOLDER_MAX_FILE (256u << 20)
/* Neither side of a decoded image may exceed this (a 16k×16k RGBA image is already 1 GiB). */
#define FOLDER_MAX_SIDE 16384
/* The error message lists at most this many bad files; the report keeps all of them. */
#define FOLDER_LIST_MAX 20

/* ---- listing ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir that are directories (want_dirs) or not; hidden entries are skipped. */
static graft_status list_dir(const char *dir, bool want_dirs, char ***names, int *count,
                             graft_error *e)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return err_set(e, GRAFT_STATUS_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
    char **v = NULL;
    int n = 0, cap = 0;
    graft_status s = GRAFT_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue; /* a dangling link: not an entry worth a class */
        if (S_ISDIR(st.st_mode) != want_dirs) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) goto nomem;
            v = nv;
        }
        if (!(v[n] = strdup(de->d_name))) goto nomem;
        n++;
    }
    closedir(d);
    /* byte order, as Python's sorted() over str gives for ASCII names (torchvision's order) */
    if (n) qsort(v, (size_t)n, sizeof *v, cmp_str);
    *names = v;
    *count = n;
    return GRAFT_OK;
nomem:
    closedir(d);
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
    s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory listing the folder", dir);
    return s;
}

/* ---- decoding ---- */

static graft_status decode_png(const char *path, const unsigned char *data, size_t len,
                               uint8_t **pix, int *w, int *h, int *ch, graft_error *e)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&im, data, len))
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: not a readable PNG (%s)", path, im.message);
    if (im.width == 0 || im.height == 0 || im.width > FOLDER_MAX_SIDE || im.height > FOLDER_MAX_SIDE) {
        png_image_free(&im);
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: PNG of %ux%u pixels", path, im.width, im.height);
    }
    /* Read in the file's own colour family: asking libpng for gray from RGB (or RGB from gray with
     * alpha) would make it convert in linear light, which is not what Pillow does. */
    bool color = (im.format & PNG_FORMAT_FLAG_COLOR) != 0;
    bool alpha = (im.format & PNG_FORMAT_FLAG_ALPHA) != 0 || (im.format & PNG_FORMAT_FLAG_COLORMAP);
    im.format = color ? (alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB) : (alpha ? PNG_FORMAT_GA : PNG_FORMAT_GRAY);
    int c = (int)PNG_IMAGE_PIXEL_CHANNELS(im.format);
    size_t bytes = PNG_IMAGE_SIZE(im);
    uint8_t *p = malloc(bytes ? bytes : 1);
    if (!p) {
        png_image_free(&im);
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory for a %ux%u image", path, im.width, im.height);
    }
    if (!png_image_finish_read(&im, NULL, p, 0, NULL)) {
        free(p);
        graft_status s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: broken PNG (%s)", path, im.message);
        png_image_free(&im);
        return s;
    }
    *pix = p;
    *w = (int)im.width;
    *h = (int)im.height;
    *ch = c;
    png_image_free(&im);
    return GRAFT_OK;
}

/* libjpeg reports fatal errors through error_exit, which must not return: longjmp back. */
typedef struct jerr {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    bool warned;
} jerr;

static void jpeg_fail(j_common_ptr cinfo)
{
    jerr *j = (jerr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, j->message);
    longjmp(j->jump, 1);
}

/* Warnings (level -1) are corrupt data that libjpeg papers over — a truncated file comes out
 * padded with gray. Pillow refuses such files, so they count as broken here too. */
static void jpeg_note(j_common_ptr cinfo, int level)
{
    jerr *j = (jerr *)cinfo->err;
    if (level < 0 && !j->warned) {
        j->warned = true;
        (*cinfo->err->format_message)(cinfo, j->message);
    }
}

static graft_status decode_jpeg(const char *path, const unsigned char *data, size_t len,
                                uint8_t **pix, int *w, int *h, int *ch, graft_error *e)
{
    struct jpeg_decompress_struct cinfo;
    jerr j;
    memset(&j, 0, sizeof j);
    uint8_t *volatile p = NULL;
    cinfo.err = jpeg_std_error(&j.mgr);
    j.mgr.error_exit = jpeg_fail;
    j.mgr.emit_message = jpeg_note;
    if (setjmp(j.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(p);
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: broken JPEG (%s)", path, j.message);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: CMYK JPEG is not supported", path);
    }
    /* Pillow's defaults: islow DCT and fancy upsampling, which are libjpeg's defaults too */
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int W = (int)cinfo.output_width, H = (int)cinfo.output_height, C = cinfo.output_components;
    if (W <= 0 || H <= 0 || W > FOLDER_MAX_SIDE || H > FOLDER_MAX_SIDE) {
        jpeg_destroy_decompress(&cinfo);
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: JPEG of %dx%d pixels", path, W, H);
    }
    p = malloc((size_t)W * H * C);
    if (!p) {
        jpeg_destroy_decompress(&cinfo);
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory for a %dx%d image", path, W, H);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = p + (size_t)cinfo.output_scanline * W * C;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    if (j.warned) {
        free(p);
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: broken JPEG (%s)", path, j.message);
    }
    *pix = p;
    *w = W;
    *h = H;
    *ch = C;
    return GRAFT_OK;
}

graft_status folder_decode(const char *path, uint8_t **pix, int *w, int *h, int *channels,
                           graft_error *e)
{
    *pix = NULL;
    char *data = NULL;
    size_t len = 0;
    graft_status s = fs_read_file(path, FOLDER_MAX_FILE, &data, &len, e);
    if (s) return s;
    const unsigned char *u = (const unsigned char *)data;
    if (len >= 8 && memcmp(u, "\x89PNG\r\n\x1a\n", 8) == 0)
        s = decode_png(path, u, len, pix, w, h, channels, e);
    else if (len >= 3 && u[0] == 0xFF && u[1] == 0xD8 && u[2] == 0xFF)
        s = decode_jpeg(path, u, len, pix, w, h, channels, e);
    else
        s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: not a PNG or JPEG file%s", path,
                    len == 0 ? " (empty)" : "");
    free(data);
    return s;
}

/* ---- channels, resize, crop ---- */

/* Interleaved sc channels → interleaved dc (1 or 3) channels, as Pillow's convert("L"/"RGB"). */
static void convert_channels(const uint8_t *src, int sc, uint8_t *dst, int dc, long pixels)
{
    for (long i = 0; i < pixels; i++) {
        const uint8_t *s = src + i * sc;
        uint8_t *d = dst + i * dc;
        if (dc == 1) {
            if (sc <= 2) {
                d[0] = s[0];
            } else {
                /* Pillow's L24: ITU-R 601-2 luma in 16-bit fixed point, rounded */
                d[0] = (uint8_t)((s[0] * 19595u + s[1] * 38470u + s[2] * 7471u + 0x8000u) >> 16);
            }
        } else {
            uint8_t r = s[0], g = sc <= 2 ? s[0] : s[1], b = sc <= 2 ? s[0] : s[2];
            d[0] = r, d[1] = g, d[2] = b;
        }
    }
}

/* Pillow's resampling (libImaging/Resample.c) with the bilinear (triangle) filter, antialiased
 * by widening the support with the scale: coefficients in 22-bit fixed point, a horizontal pass
 * then a vertical one, each rounded to 8 bits — the same integer arithmetic, so the same bytes. */
#define PREC_BITS (32 - 8 - 2)

typedef struct coeffs {
    int ksize;
    int *bounds; /* out × (xmin, count) */
    int *k;      /* out × ksize */
} coeffs;

static double triangle(double x)
{
    if (x < 0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static bool coeffs_make(int in, int out, coeffs *c)
{
    double scale = (double)in / out, fscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * fscale;
    int ksize = (int)ceil(support) * 2 + 1;
    c->ksize = ksize;
    c->bounds = malloc((size_t)out * 2 * sizeof *c->bounds);
    c->k = malloc((size_t)out * (size_t)ksize * sizeof *c->k);
    double *pre = malloc((size_t)ksize * sizeof *pre);
    if (!c->bounds || !c->k || !pre) {
        free(pre);
        return false;
    }
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / fscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        int x = 0;
        for (; x < xmax; x++) {
            double w = triangle((x + xmin - center + 0.5) * ss);
            pre[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) pre[x] /= ww;
        for (; x < ksize; x++) pre[x] = 0;
        for (x = 0; x < ksize; x++)
            c->k[xx * ksize + x] = pre[x] < 0 ? (int)(-0.5 + pre[x] * (1 << PREC_BITS))
                                              : (int)(0.5 + pre[x] * (1 << PREC_BITS));
        c->bounds[xx * 2] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    free(pre);
    return true;
}

static void coeffs_free(coeffs *c)
{
    free(c->bounds);
    free(c->k);
}

static uint8_t clip8(long long v)
{
    v >>= PREC_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Resize interleaved ch-channel src (sw×sh) to dst (dw×dh); Pillow skips a pass whose size does
 * not change, and so does this. */
static bool resize(const uint8_t *src, int sw, int sh, int ch, uint8_t *dst, int dw, int dh)
{
    if (sw == dw && sh == dh) {
        memcpy(dst, src, (size_t)sw * sh * ch);
        return true;
    }
    uint8_t *tmp = NULL;
    coeffs cx = {0}, cy = {0};
    bool ok = false;
    const uint8_t *rows = src;
    if (sw != dw) {
        if (!coeffs_make(sw, dw, &cx) || !(tmp = malloc((size_t)dw * sh * ch))) goto done;
        for (int y = 0; y < sh; y++)
            for (int x = 0; x < dw; x++) {
                int xmin = cx.bounds[2 * x], xn = cx.bounds[2 * x + 1];
                const int *k = cx.k + (size_t)x * cx.ksize;
                for (int c = 0; c < ch; c++) {
                    long long ss = 1LL << (PREC_BITS - 1);
                    for (int i = 0; i < xn; i++)
                        ss += (long long)src[((size_t)y * sw + xmin + i) * ch + c] * k[i];
                    tmp[((size_t)y * dw + x) * ch + c] = clip8(ss);
                }
            }
        rows = tmp;
    }
    if (sh != dh) {
        if (!coeffs_make(sh, dh, &cy)) goto done;
        for (int y = 0; y < dh; y++) {
            int ymin = cy.bounds[2 * y], yn = cy.bounds[2 * y + 1];
            const int *k = cy.k + (size_t)y * cy.ksize;
            for (int x = 0; x < dw; x++)
                for (int c = 0; c < ch; c++) {
                    long long ss = 1LL << (PREC_BITS - 1);
                    for (int i = 0; i < yn; i++)
                        ss += (long long)rows[((size_t)(ymin + i) * dw + x) * ch + c] * k[i];
                    dst[((size_t)y * dw + x) * ch + c] = clip8(ss);
                }
        }
    } else {
        memcpy(dst, rows, (size_t)dw * dh * ch);
    }
    ok = true;
done:
    free(tmp);
    coeffs_free(&cx);
    coeffs_free(&cy);
    return ok;
}

/* One file → c×h×w planar pixels at out: decode, convert, resize the shorter side to max(h, w)
 * (torchvision's Resize(int): the longer side is int(size × long / short)), centre crop with
 * torchvision's round-half-to-even offsets. */
graft_status folder_prepare(const char *path, int c, int h, int w, uint8_t *out, graft_error *e)
{
    uint8_t *raw = NULL, *conv = NULL, *big = NULL;
    int iw, ih, ic;
    graft_status s = folder_decode(path, &raw, &iw, &ih, &ic, e);
    if (s) return s;
    int side = h > w ? h : w, rw, rh;
    if (iw <= ih) {
        rw = side;
        rh = (int)((long long)side * ih / iw);
    } else {
        rh = side;
        rw = (int)((long long)side * iw / ih);
    }
    if (iw == w && ih == h) rw = w, rh = h; /* already the model's size: keep every pixel */
    conv = malloc((size_t)iw * ih * c);
    big = malloc((size_t)rw * rh * c);
    if (!conv || !big) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", path);
        goto done;
    }
    convert_channels(raw, ic, conv, c, (long)iw * ih);
    if (!resize(conv, iw, ih, c, big, rw, rh)) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory resizing", path);
        goto done;
    }
    int top = (int)nearbyint((rh - h) / 2.0), left = (int)nearbyint((rw - w) / 2.0);
    for (int k = 0; k < c; k++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                out[((size_t)k * h + y) * w + x] = big[((size_t)(top + y) * rw + left + x) * c + k];
done:
    free(raw);
    free(conv);
    free(big);
    return s;
}

/* ---- the loader ---- */

typedef struct job {
    char **paths;
    long n;
    int c, h, w;
    uint8_t *pix;
    char **why; /* per file: NULL, or the message of its failure */
    bool *nomem;
    long next;
    pthread_mutex_t mu;
} job;

static void *work(void *arg)
{
    job *j = arg;
    size_t sample = (size_t)j->c * j->h * j->w;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        long i = j->next++;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->n) break;
        graft_error e = {0};
        if (folder_prepare(j->paths[i], j->c, j->h, j->w, j->pix + (size_t)i * sample, &e)) {
            j->why[i] = strdup(e.message);
            if (!j->why[i]) *j->nomem = true;
        }
    }
    return NULL;
}

void folder_set_free(folder_set *s)
{
    if (!s) return;
    for (int i = 0; s->classes && i < s->nclasses; i++) free(s->classes[i]);
    for (long i = 0; s->files && i < s->n; i++) free(s->files[i]);
    free(s->classes);
    free(s->files);
    free(s->pix);
    free(s->y);
    free(s->report);
    memset(s, 0, sizeof *s);
}

graft_status folder_load(const char *root, int c, int h, int w, bool skip_bad, int threads,
                         folder_set *out, graft_error *e)
{
    return folder_load_as(root, NULL, 0, c, h, w, skip_bad, threads, out, e);
}

/* The label of each sub-folder: its position in classes (-1 when absent). */
static graft_status map_classes(const char *root, char **dirs, int ndirs, const char *const *classes,
                                int nclasses, int *label, graft_error *e)
{
    for (int k = 0; k < ndirs; k++) {
        label[k] = -1;
        for (int j = 0; j < nclasses; j++)
            if (strcmp(dirs[k], classes[j]) == 0) label[k] = j;
        if (label[k] < 0) {
            buf known = {0};
            for (int j = 0; j < nclasses && j < 12; j++) buf_printf(&known, "%s%s", j ? ", " : "", classes[j]);
            graft_status s = err_set(e, GRAFT_STATUS_BAD_DATA,
                                     "%s/%s: class '%s' is not one of the training folder's %d "
                                     "classes (%s%s)",
                                     root, dirs[k], dirs[k], nclasses, known.data ? known.data : "",
                                     nclasses > 12 ? ", ..." : "");
            buf_free(&known);
            return s;
        }
    }
    return GRAFT_OK;
}

graft_status folder_load_as(const char *root, const char *const *classes, int nclasses, int c,
                            int h, int w, bool skip_bad, int threads, folder_set *out,
                            graft_error *e)
{
    memset(out, 0, sizeof *out);
    out->c = c, out->h = h, out->w = w;
    if ((c != 1 && c != 3) || h <= 0 || w <= 0)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: an image folder feeds a 1- or 3-channel image input, not %dx%dx%d", root, c, h, w);
    graft_status s;
    char **paths = NULL, **why = NULL;
    int *labels = NULL;
    long n = 0, cap = 0;
    buf report = {0};
    char **dirs = NULL;
    int ndirs = 0, *dir_label = NULL;
    if ((s = list_dir(root, true, &dirs, &ndirs, e))) return s;
    if (ndirs == 0) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: no class sub-folders (expected ROOT/CLASS/IMAGE files)", root);
        goto error;
    }
    dir_label = malloc((size_t)ndirs * sizeof *dir_label);
    if (!dir_label) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", root);
        goto error;
    }
    if (classes) {
        if ((s = map_classes(root, dirs, ndirs, classes, nclasses, dir_label, e))) goto error;
        out->classes = calloc((size_t)nclasses, sizeof *out->classes);
        if (!out->classes) {
            s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", root);
            goto error;
        }
        out->nclasses = nclasses;
        for (int j = 0; j < nclasses; j++)
            if (!(out->classes[j] = strdup(classes[j]))) {
                s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", root);
                goto error;
            }
    } else {
        for (int k = 0; k < ndirs; k++) dir_label[k] = k;
        out->classes = dirs, out->nclasses = ndirs;
        dirs = NULL, ndirs = 0;
    }
    int nd = dirs ? ndirs : out->nclasses;
    for (int k = 0; k < nd; k++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root, dirs ? dirs[k] : out->classes[k]);
        char **files;
        int nf;
        if ((s = list_dir(dir, false, &files, &nf, e))) goto error;
        for (int i = 0; i < nf; i++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                char **np = realloc(paths, (size_t)cap * sizeof *np);
                int *nl = np ? realloc(labels, (size_t)cap * sizeof *nl) : NULL;
                if (np) paths = np;
                if (nl) labels = nl;
                if (!np || !nl) {
                    for (int q = 0; q < nf; q++) free(files[q]);
                    free(files);
                    s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory listing images", root);
                    goto error;
                }
            }
            size_t L = strlen(dir) + strlen(files[i]) + 2;
            paths[n] = malloc(L);
            if (!paths[n]) {
                for (int q = 0; q < nf; q++) free(files[q]);
                free(files);
                s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory listing images", root);
                goto error;
            }
            snprintf(paths[n], L, "%s/%s", dir, files[i]);
            labels[n++] = dir_label[k];
        }
        for (int q = 0; q < nf; q++) free(files[q]);
        free(files);
    }
    if (n == 0) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: the class folders hold no files", root);
        goto error;
    }
    size_t sample = (size_t)c * h * w;
    out->pix = malloc((size_t)n * sample);
    why = calloc((size_t)n, sizeof *why);
    if (!out->pix || !why) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory for %ld images of %dx%dx%d", root, n, c, h, w);
        goto error;
    }
    bool nomem = false;
    job j = {.paths = paths, .n = n, .c = c, .h = h, .w = w, .pix = out->pix, .why = why, .nomem = &nomem};
    if (threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (int)(cpus > 16 ? 16 : cpus) : 1;
    }
    if (threads > n) threads = (int)n;
    pthread_mutex_init(&j.mu, NULL);
    pthread_t tid[16];
    int started = 0;
    for (int t = 1; t < threads && t < 16; t++)
        if (pthread_create(&tid[started], NULL, work, &j) == 0) started++;
    work(&j); /* this thread decodes too; with no extra thread it does all of it */
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&j.mu);
    if (nomem) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", root);
        goto error;
    }
    /* the bad files, in order: every one in the report, the first few in an error message */
    for (long i = 0; i < n; i++)
        if (why[i]) {
            out->nbad++;
            buf_printf(&report, "%s\n", why[i]);
        }
    if (report.failed) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", root);
        goto error;
    }
    if (out->nbad && !skip_bad) {
        buf msg = {0};
        long listed = 0;
        for (long i = 0; i < n && listed < FOLDER_LIST_MAX; i++)
            if (why[i]) {
                buf_printf(&msg, "\n  %s", why[i]);
                listed++;
            }
        s = err_set(e, GRAFT_STATUS_BAD_DATA,
                    "%s: %ld of %ld files are not readable images (data.on_bad_image: skip leaves "
                    "them out):%s%s",
                    root, out->nbad, n, msg.data ? msg.data : "",
                    out->nbad > listed ? "\n  ..." : "");
        buf_free(&msg);
        goto error;
    }
    if (out->nbad == n) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: none of the %ld files is a readable image:%s%s", root, n,
                    why[0] ? "\n  " : "", why[0] ? why[0] : "");
        goto error;
    }
    /* keep the good ones, compacted in place */
    long k = 0;
    for (long i = 0; i < n; i++) {
        if (why[i]) {
            free(paths[i]);
            continue;
        }
        if (k != i) memmove(out->pix + (size_t)k * sample, out->pix + (size_t)i * sample, sample);
        paths[k] = paths[i];
        labels[k] = labels[i];
        k++;
    }
    out->n = k;
    out->files = paths;
    out->y = labels;
    out->report = report.data;
    for (long i = 0; i < n; i++) free(why[i]);
    free(why);
    for (int k = 0; k < ndirs; k++) free(dirs[k]);
    free(dirs);
    free(dir_label);
    return GRAFT_OK;
error:
    for (int k = 0; k < ndirs; k++) free(dirs[k]);
    free(dirs);
    free(dir_label);
    if (why)
        for (long i = 0; i < n; i++) free(why[i]);
    free(why);
    if (!out->files) {
        for (long i = 0; paths && i < n; i++) free(paths[i]);
        free(paths);
        free(labels);
    }
    buf_free(&report);
    out->n = 0;
    folder_set_free(out);
    return s;
}

graft_status folder_classes(const char *root, char ***names, int *count, graft_error *e)
{
    return list_dir(root, true, names, count, e);
}
