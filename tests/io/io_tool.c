/* io_tool.c — a small command-line door to the io readers and writers, so the Python
 * cross-checks (pycheck.py) can drive them: numpy and PyTorch write, Graft reads, and back. */
#include "io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const graft_error *e)
{
    fprintf(stderr, "error: %s\n", e->message);
    return 1;
}

/* every tensor of a safetensors file to DIR/NAME.npy (float32); metadata to stdout */
static int st2npy(const char *in, const char *dir)
{
    graft_error e = {0};
    st_file *f = NULL;
    if (st_open(in, &f, &e)) return fail(&e);
    for (int i = 0; i < f->nmeta; i++) printf("meta %s=%s\n", f->meta_keys[i], f->meta_values[i]);
    int rc = 0;
    for (int i = 0; i < f->ntensors && !rc; i++) {
        const st_tensor *t = &f->tensors[i];
        size_t n = st_tensor_count(t);
        float *x = malloc((n ? n : 1) * sizeof *x);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.npy", dir, t->name);
        if (!x || st_read_f32(f, t, x, &e) || npy_write_f32(path, x, t->rank, t->shape, &e))
            rc = fail(&e);
        printf("tensor %s %s\n", t->name, st_dtype_name(t->dtype));
        free(x);
    }
    st_close(f);
    return rc;
}

/* float32 .npy files to one safetensors file; each tensor named after its file (sans .npy) */
static int npy2st(const char *out, int n, char **in, int nmeta, char **meta)
{
    graft_error e = {0};
    st_out_tensor *t = calloc((size_t)n, sizeof *t);
    npy_array *a = calloc((size_t)n, sizeof *a);
    char **names = calloc((size_t)n, sizeof *names);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (npy_read(in[i], &a[i], &e)) {
            rc = fail(&e);
            break;
        }
        if (a[i].kind != 'f' || a[i].itemsize != 4 || a[i].rank > 4) {
            fprintf(stderr, "error: %s: want float32 of rank <= 4\n", in[i]);
            rc = 1;
            break;
        }
        const char *base = strrchr(in[i], '/') ? strrchr(in[i], '/') + 1 : in[i];
        names[i] = strdup(base);
        char *dot = strstr(names[i], ".npy");
        if (dot) *dot = 0;
        t[i].name = names[i];
        t[i].rank = a[i].rank;
        for (int d = 0; d < a[i].rank; d++) t[i].shape[d] = a[i].shape[d];
        t[i].data = a[i].data;
    }
    if (!rc && st_write(out, t, n, (const char *const *)meta, nmeta, &e)) rc = fail(&e);
    for (int i = 0; i < n; i++) {
        npy_free(&a[i]);
        free(names[i]);
    }
    free(t);
    free(a);
    free(names);
    return rc;
}

/* any supported .npy to float32 .npy */
static int npy2npy(const char *in, const char *out)
{
    graft_error e = {0};
    npy_array a;
    if (npy_read(in, &a, &e)) return fail(&e);
    float *x = malloc((a.count ? a.count : 1) * sizeof *x);
    for (size_t i = 0; x && i < a.count; i++) {
        const char *p = (const char *)a.data + i * (size_t)a.itemsize;
        double v = 0;
        switch (a.kind) {
        case 'f': v = a.itemsize == 4 ? *(const float *)p : *(const double *)p; break;
        case 'i':
            v = a.itemsize == 1   ? *(const int8_t *)p
                : a.itemsize == 2 ? *(const int16_t *)p
                : a.itemsize == 4 ? *(const int32_t *)p
                                  : (double)*(const int64_t *)p;
            break;
        default:
            v = a.itemsize == 1   ? *(const uint8_t *)p
                : a.itemsize == 2 ? *(const uint16_t *)p
                : a.itemsize == 4 ? *(const uint32_t *)p
                                  : (double)*(const uint64_t *)p;
        }
        x[i] = (float)v;
    }
    printf("%c%d rank %d count %zu\n", a.kind, a.itemsize, a.rank, a.count);
    int rc = npy_write_f32(out, x, a.rank, a.shape, &e) ? fail(&e) : 0;
    free(x);
    npy_free(&a);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "st2npy") == 0) return st2npy(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "npy2npy") == 0) return npy2npy(argv[2], argv[3]);
    if (argc >= 4 && strcmp(argv[1], "npy2st") == 0) {
        /* npy2st OUT A.npy B.npy ... [-- key value key value ...] */
        int n = 0;
        while (3 + n < argc && strcmp(argv[3 + n], "--") != 0) n++;
        int rest = argc - 3 - n - 1;
        return npy2st(argv[2], n, argv + 3, rest > 0 ? rest / 2 : 0, argv + 4 + n);
    }
    fprintf(stderr, "usage: io_tool st2npy IN DIR | npy2npy IN OUT | npy2st OUT A.npy... [-- K V...]\n");
    return 2;
}
