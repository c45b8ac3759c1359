/* est_cli.c — the estimators on arrays from .npy files, for the numpy reference test
 * (test_estimators.py): prints {"logme": …, "hscore": …, "nce": …, "leep": …} with 17 digits.
 * usage: est_cli FEATURES.npy LABELS.npy K [LOGITS.npy]   (also: est_cli --eig MATRIX.npy) */
#include "rank.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double *as_double(const npy_array *a)
{
    double *d = malloc((a->count ? a->count : 1) * sizeof *d);
    for (size_t i = 0; d && i < a->count; i++)
        d[i] = a->kind == 'f' && a->itemsize == 8 ? ((double *)a->data)[i]
               : a->kind == 'f'                   ? ((float *)a->data)[i]
               : a->itemsize == 8                 ? (double)((int64_t *)a->data)[i]
                                                  : (double)((int32_t *)a->data)[i];
    return d;
}

static int fail(const graft_error *e)
{
    fprintf(stderr, "est_cli: %s\n", e->message);
    return 1;
}

int main(int argc, char **argv)
{
    graft_error e = {0};
    npy_array f = {0}, l = {0}, g = {0};
    if (argc == 3 && strcmp(argv[1], "--eig") == 0) {
        if (npy_read(argv[2], &f, &e)) return fail(&e);
        int n = (int)f.shape[0];
        double *a = as_double(&f), *w = malloc((size_t)n * sizeof *w),
               *v = malloc((size_t)n * n * sizeof *v);
        if (est_sym_eig(a, n, w, v, &e)) return fail(&e);
        printf("{\"w\": [");
        for (int i = 0; i < n; i++)
            printf("%s%.17g", i ? ", " : "", w[i]);
        printf("], \"v\": [");
        for (long i = 0; i < (long)n * n; i++)
            printf("%s%.17g", i ? ", " : "", v[i]);
        printf("]}\n");
        return 0;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: est_cli FEATURES.npy LABELS.npy K [LOGITS.npy]\n");
        return 2;
    }
    if (npy_read(argv[1], &f, &e) || npy_read(argv[2], &l, &e)) return fail(&e);
    long n = (long)f.shape[0];
    int d = (int)(f.count / (size_t)n), k = atoi(argv[3]);
    double *x = as_double(&f), *yd = as_double(&l);
    int *y = malloc((size_t)n * sizeof *y);
    for (long i = 0; i < n; i++)
        y[i] = (int)yd[i];
    double s;
    printf("{");
    if (est_logme(x, n, d, y, k, &s, &e)) return fail(&e);
    printf("\"logme\": %.17g", s);
    if (est_hscore(x, n, d, y, k, &s, &e)) return fail(&e);
    printf(", \"hscore\": %.17g", s);
    if (argc > 4) {
        if (npy_read(argv[4], &g, &e)) return fail(&e);
        int ks = (int)(g.count / (size_t)n);
        double *gd = as_double(&g);
        float *lg = malloc(g.count * sizeof *lg);
        for (size_t i = 0; i < g.count; i++)
            lg[i] = (float)gd[i];
        double *p = malloc(g.count * sizeof *p);
        int *z = malloc((size_t)n * sizeof *z);
        est_softmax_rows(lg, n, ks, p, z);
        if (est_nce(z, ks, y, k, n, &s, &e)) return fail(&e);
        printf(", \"nce\": %.17g", s);
        if (est_leep(p, ks, y, k, n, &s, &e)) return fail(&e);
        printf(", \"leep\": %.17g", s);
    }
    printf("}\n");
    return 0;
}
