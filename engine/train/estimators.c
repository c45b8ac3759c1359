/* estimators.c — transferability estimators in float64 on the host: LogME, H-score, NCE and LEEP,
 * and the symmetric eigensolver they share. No device, no files: arrays in, a score out. */
#include "rank.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Householder reduction of the symmetric matrix in V (row-major, V[i*n+j]) to tridiagonal form:
 * d the diagonal, e the sub-diagonal (e[i] couples i-1 and i), V the accumulated transformation.
 * The EISPACK tred2 algorithm as JAMA writes it. */
static void tred2(int n, double *V, double *d, double *e)
{
#define A(i, j) V[(size_t)(i) * (size_t)n + (size_t)(j)]
    for (int j = 0; j < n; j++)
        d[j] = A(n - 1, j);
    for (int i = n - 1; i > 0; i--) {
        double scale = 0, h = 0;
        for (int k = 0; k < i; k++)
            scale += fabs(d[k]);
        if (scale == 0) {
            e[i] = d[i - 1];
            for (int j = 0; j < i; j++) {
                d[j] = A(i - 1, j);
                A(i, j) = 0;
                A(j, i) = 0;
            }
        } else {
            for (int k = 0; k < i; k++) {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            double f = d[i - 1], g = sqrt(h);
            if (f > 0) g = -g;
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for (int j = 0; j < i; j++)
                e[j] = 0;
            for (int j = 0; j < i; j++) {
                f = d[j];
                A(j, i) = f;
                g = e[j] + A(j, j) * f;
                for (int k = j + 1; k <= i - 1; k++) {
                    g += A(k, j) * d[k];
                    e[k] += A(k, j) * f;
                }
                e[j] = g;
            }
            f = 0;
            for (int j = 0; j < i; j++) {
                e[j] /= h;
                f += e[j] * d[j];
            }
            double hh = f / (h + h);
            for (int j = 0; j < i; j++)
                e[j] -= hh * d[j];
            for (int j = 0; j < i; j++) {
                f = d[j];
                g = e[j];
                for (int k = j; k <= i - 1; k++)
                    A(k, j) -= (f * e[k] + g * d[k]);
                d[j] = A(i - 1, j);
                A(i, j) = 0;
            }
        }
        d[i] = h;
    }
    for (int i = 0; i < n - 1; i++) {
        A(n - 1, i) = A(i, i);
        A(i, i) = 1;
        double h = d[i + 1];
        if (h != 0) {
            for (int k = 0; k <= i; k++)
                d[k] = A(k, i + 1) / h;
            for (int j = 0; j <= i; j++) {
                double g = 0;
                for (int k = 0; k <= i; k++)
                    g += A(k, i + 1) * A(k, j);
                for (int k = 0; k <= i; k++)
                    A(k, j) -= g * d[k];
            }
        }
        for (int k = 0; k <= i; k++)
            A(k, i + 1) = 0;
    }
    for (int j = 0; j < n; j++) {
        d[j] = A(n - 1, j);
        A(n - 1, j) = 0;
    }
    A(n - 1, n - 1) = 1;
    e[0] = 0;
#undef A
}

/* The implicit QL iteration on the tridiagonal (d, e), rotating the rows of W (W = Vᵀ, so each
 * rotation touches two contiguous rows: the eigenvectors come out one per row). EISPACK tql2. */
static bool tql2(int n, double *W, double *d, double *e)
{
    for (int i = 1; i < n; i++)
        e[i - 1] = e[i];
    e[n - 1] = 0;
    double f = 0, tst1 = 0;
    const double eps = 0x1p-52;
    for (int l = 0; l < n; l++) {
        double t = fabs(d[l]) + fabs(e[l]);
        if (t > tst1) tst1 = t;
        int m = l;
        while (m < n - 1 && fabs(e[m]) > eps * tst1)
            m++;
        if (m > l) {
            int iter = 0;
            do {
                if (++iter > 200) return false;
                double g = d[l];
                double p = (d[l + 1] - g) / (2 * e[l]);
                double r = hypot(p, 1);
                if (p < 0) r = -r;
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                double dl1 = d[l + 1];
                double h = g - d[l];
                for (int i = l + 2; i < n; i++)
                    d[i] -= h;
                f += h;
                p = d[m];
                double c = 1, c2 = 1, c3 = 1, el1 = e[l + 1], s = 0, s2 = 0;
                for (int i = m - 1; i >= l; i--) {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = hypot(p, e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    double *wi = W + (size_t)i * (size_t)n, *wi1 = wi + n;
                    for (int k = 0; k < n; k++) {
                        h = wi1[k];
                        wi1[k] = s * wi[k] + c * h;
                        wi[k] = c * wi[k] - s * h;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
            } while (fabs(e[l]) > eps * tst1);
        }
        d[l] += f;
        e[l] = 0;
    }
    return true;
}

graft_status est_sym_eig(const double *a, int n, double *w, double *vecs, graft_error *e)
{
    if (n <= 0) return GRAFT_OK;
    size_t nn = (size_t)n * (size_t)n;
    double *V = malloc(nn * sizeof *V), *sub = malloc((size_t)n * sizeof *sub);
    if (!V || !sub) {
        free(V);
        free(sub);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory for a %d x %d eigenproblem", n, n);
    }
    memcpy(V, a, nn * sizeof *V);
    tred2(n, V, w, sub);
    /* transpose: the QL rotations then work on rows */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            vecs[(size_t)j * n + i] = V[(size_t)i * n + j];
    bool ok = tql2(n, vecs, w, sub);
    free(sub);
    if (!ok) {
        free(V);
        return err_set(e, GRAFT_STATUS_INTERNAL, "the eigensolver did not converge (%d x %d)", n,
                       n);
    }
    /* ascending order (selection sort: n swaps of rows at most) */
    double *row = V; /* reuse as scratch */
    for (int i = 0; i < n - 1; i++) {
        int k = i;
        for (int j = i + 1; j < n; j++)
            if (w[j] < w[k]) k = j;
        if (k != i) {
            double t = w[i];
            w[i] = w[k];
            w[k] = t;
            memcpy(row, vecs + (size_t)i * n, (size_t)n * sizeof *row);
            memcpy(vecs + (size_t)i * n, vecs + (size_t)k * n, (size_t)n * sizeof *row);
            memcpy(vecs + (size_t)k * n, row, (size_t)n * sizeof *row);
        }
    }
    free(V);
    return GRAFT_OK;
}

static graft_status check_labels(const int *y, long n, int k, graft_error *e)
{
    if (n < 2)
        return err_set(e, GRAFT_STATUS_BAD_DATA, "at least 2 samples are needed, got %ld", n);
    if (k < 1) return err_set(e, GRAFT_STATUS_BAD_DATA, "no classes");
    for (long i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= k)
            return err_set(e, GRAFT_STATUS_BAD_DATA, "label %d of sample %ld is outside [0, %d)",
                           y[i], i, k);
    return GRAFT_OK;
}

/* The Gram matrix of the rows (x xᵀ, n×n) or of the columns (xᵀ x, d×d), whichever is smaller. */
static void gram(const double *x, long n, int d, bool rows, double *g)
{
    if (rows) {
        for (long i = 0; i < n; i++)
            for (long j = 0; j <= i; j++) {
                const double *a = x + i * d, *b = x + j * d;
                double s = 0;
                for (int t = 0; t < d; t++)
                    s += a[t] * b[t];
                g[i * n + j] = g[j * n + i] = s;
            }
    } else {
        memset(g, 0, (size_t)d * (size_t)d * sizeof *g);
        for (long r = 0; r < n; r++) {
            const double *a = x + r * d;
            for (int i = 0; i < d; i++) {
                double ai = a[i];
                if (ai == 0) continue;
                double *gi = g + (size_t)i * d;
                for (int j = 0; j <= i; j++)
                    gi[j] += ai * a[j];
            }
        }
        for (int i = 0; i < d; i++)
            for (int j = 0; j < i; j++)
                g[(size_t)j * d + i] = g[(size_t)i * d + j];
    }
}

/* The spectrum of x shared by every class: sigma (eigenvalues of xᵀx that are not zero) and, for
 * any target vector y, the coordinates u_iᵀ y of y on the left singular vectors. With n ≤ d the
 * eigenvectors of x xᵀ are those u_i; otherwise u_i = x v_i / sqrt(sigma_i) from xᵀ x. */
typedef struct spectrum {
    long n;
    int d, k;      /* k: eigenvalues kept */
    bool rows;     /* eigenvectors are in sample space */
    double *sigma; /* k */
    double *basis; /* k rows: u_i (length n) when rows, else x v_i / sqrt(sigma_i) (length n) */
} spectrum;

static void spectrum_free(spectrum *s)
{
    free(s->sigma);
    free(s->basis);
    memset(s, 0, sizeof *s);
}

/* Eigenvalues at most cutoff × the largest are zero: they are rounding noise of a rank-deficient
 * Gram matrix, and dividing by them would amplify noise. */
#define EST_EIG_CUTOFF 1e-10

static graft_status spectrum_of(const double *x, long n, int d, spectrum *s, graft_error *e)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->d = d;
    s->rows = n <= d;
    int m = s->rows ? (int)n : d;
    size_t mm = (size_t)m * (size_t)m;
    double *g = malloc(mm * sizeof *g), *v = malloc(mm * sizeof *v),
           *w = malloc((size_t)m * sizeof *w);
    s->sigma = malloc((size_t)m * sizeof *s->sigma);
    s->basis = malloc((size_t)m * (size_t)n * sizeof *s->basis);
    graft_status st = GRAFT_OK;
    if (!g || !v || !w || !s->sigma || !s->basis) {
        st = err_set(e, GRAFT_STATUS_NOMEM, "out of memory for the features' spectrum");
        goto done;
    }
    gram(x, n, d, s->rows, g);
    if ((st = est_sym_eig(g, m, w, v, e))) goto done;
    double top = w[m - 1] > 0 ? w[m - 1] : 0;
    for (int j = m - 1; j >= 0; j--) {
        if (!(w[j] > EST_EIG_CUTOFF * top)) break;
        const double *vj = v + (size_t)j * m;
        double *b = s->basis + (size_t)s->k * n;
        if (s->rows) {
            memcpy(b, vj, (size_t)n * sizeof *b);
        } else {
            double inv = 1.0 / sqrt(w[j]);
            for (long r = 0; r < n; r++) {
                const double *xr = x + r * d;
                double acc = 0;
                for (int t = 0; t < d; t++)
                    acc += xr[t] * vj[t];
                b[r] = acc * inv;
            }
        }
        s->sigma[s->k++] = w[j];
    }
done:
    free(g);
    free(v);
    free(w);
    if (st) spectrum_free(s);
    return st;
}

/* The evidence of one target, as the LogME paper's Algorithm 1 with the original authors' update
 * rule (1e-5 in the denominators of the updates); iterated to convergence (relative change of
 * α/β below 1e-12, at most 1000 steps) rather than a fixed 11 steps, so the score is the maximum
 * the fixed point reaches. x2: squared coordinates of y on the k singular directions; res0 the
 * part of |y|² outside them. Zero eigenvalues beyond k contribute log α each to log|A|. */
static double logme_evidence(const double *sigma, const double *x2, int k, double res0, long n,
                             int d)
{
    double alpha = 1, beta = 1, m2 = 0, res2 = 0, N = (double)n, D = (double)d;
    for (int it = 0; it < 1000; it++) {
        double t = alpha / beta, gamma = 0;
        m2 = 0;
        res2 = res0;
        for (int i = 0; i < k; i++) {
            double s = sigma[i], q = t + s;
            gamma += s / q;
            m2 += s * x2[i] / (q * q);
            double r = t / q;
            res2 += x2[i] * r * r;
        }
        alpha = gamma / (m2 + 1e-5);
        beta = (N - gamma) / (res2 + 1e-5);
        double t2 = alpha / beta;
        if (fabs(t2 - t) <= 1e-12 * t) break;
    }
    /* m and the residual at the final α, β */
    double t = alpha / beta, logdet = (D - k) * log(alpha);
    m2 = 0;
    res2 = res0;
    for (int i = 0; i < k; i++) {
        double s = sigma[i], q = t + s;
        m2 += s * x2[i] / (q * q);
        double r = t / q;
        res2 += x2[i] * r * r;
        logdet += log(alpha + beta * s);
    }
    double ev = D / 2 * log(alpha) + N / 2 * log(beta) - 0.5 * logdet - beta / 2 * res2 -
                alpha / 2 * m2 - N / 2 * log(2 * M_PI);
    return ev / N;
}

graft_status est_logme(const double *f, long n, int d, const int *y, int k, double *score,
                       graft_error *e)
{
    graft_status st = check_labels(y, n, k, e);
    if (st) return st;
    if (d < 1) return err_set(e, GRAFT_STATUS_BAD_DATA, "LogME: no features");
    spectrum sp;
    if ((st = spectrum_of(f, n, d, &sp, e))) return st;
    double *x2 = malloc((size_t)(sp.k ? sp.k : 1) * sizeof *x2);
    if (!x2) {
        spectrum_free(&sp);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    }
    double total = 0;
    for (int c = 0; c < k; c++) {
        double yy = 0, in = 0;
        for (long i = 0; i < n; i++)
            yy += y[i] == c;
        for (int j = 0; j < sp.k; j++) {
            const double *b = sp.basis + (size_t)j * n;
            double acc = 0;
            for (long i = 0; i < n; i++)
                if (y[i] == c) acc += b[i];
            x2[j] = acc * acc;
            in += x2[j];
        }
        double res0 = yy - in;
        if (res0 < 0) res0 = 0;
        total += logme_evidence(sp.sigma, x2, sp.k, res0, n, d);
    }
    free(x2);
    spectrum_free(&sp);
    *score = total / k;
    return GRAFT_OK;
}

graft_status est_hscore(const double *f, long n, int d, const int *y, int k, double *score,
                        graft_error *e)
{
    graft_status st = check_labels(y, n, k, e);
    if (st) return st;
    if (d < 1) return err_set(e, GRAFT_STATUS_BAD_DATA, "H-score: no features");
    /* centred features x; cov f = xᵀx/(n-1); cov g = Σ_c n_c δ_c δ_cᵀ/(n-1), δ_c = μ_c − μ.
     * tr(pinv(cov f) cov g) = Σ_c n_c δ_cᵀ pinv(xᵀx) δ_c, and with x = U S Vᵀ,
     * δᵀ pinv(xᵀx) δ = Σ_i ((x δ)·u_i)² / σ_i² (σ_i = s_i², eigenvalues of x xᵀ or xᵀx). */
    double *x = malloc((size_t)n * (size_t)d * sizeof *x), *mu = calloc((size_t)d, sizeof *mu),
           *mc = calloc((size_t)k * (size_t)d, sizeof *mc), *xd = malloc((size_t)n * sizeof *xd);
    long *cnt = calloc((size_t)k, sizeof *cnt);
    spectrum sp = {0};
    if (!x || !mu || !mc || !xd || !cnt) {
        st = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    for (long i = 0; i < n; i++) {
        cnt[y[i]]++;
        for (int t = 0; t < d; t++) {
            mu[t] += f[i * d + t];
            mc[(size_t)y[i] * d + t] += f[i * d + t];
        }
    }
    for (int t = 0; t < d; t++)
        mu[t] /= (double)n;
    for (long i = 0; i < n; i++)
        for (int t = 0; t < d; t++)
            x[i * d + t] = f[i * d + t] - mu[t];
    if ((st = spectrum_of(x, n, d, &sp, e))) goto done;
    double total = 0;
    for (int c = 0; c < k; c++) {
        if (!cnt[c]) continue;
        double *delta = mc + (size_t)c * d;
        for (int t = 0; t < d; t++)
            delta[t] = delta[t] / (double)cnt[c] - mu[t];
        for (long i = 0; i < n; i++) {
            double acc = 0;
            for (int t = 0; t < d; t++)
                acc += x[i * d + t] * delta[t];
            xd[i] = acc;
        }
        double q = 0;
        for (int j = 0; j < sp.k; j++) {
            const double *b = sp.basis + (size_t)j * n;
            double acc = 0;
            for (long i = 0; i < n; i++)
                acc += b[i] * xd[i];
            /* b = u_j exactly (rows) or x v_j / s_j = u_j: the same coordinate either way */
            q += acc * acc / (sp.sigma[j] * sp.sigma[j]);
        }
        total += (double)cnt[c] * q;
    }
    *score = total;
done:
    spectrum_free(&sp);
    free(x);
    free(mu);
    free(mc);
    free(xd);
    free(cnt);
    return st;
}

graft_status est_nce(const int *z, int ks, const int *y, int k, long n, double *score,
                     graft_error *e)
{
    graft_status st = check_labels(y, n, k, e);
    if (st) return st;
    for (long i = 0; i < n; i++)
        if (z[i] < 0 || z[i] >= ks)
            return err_set(e, GRAFT_STATUS_BAD_DATA, "NCE: source class %d outside [0, %d)", z[i],
                           ks);
    double *joint = calloc((size_t)ks * (size_t)k, sizeof *joint),
           *pz = calloc((size_t)ks, sizeof *pz);
    if (!joint || !pz) {
        free(joint);
        free(pz);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    }
    for (long i = 0; i < n; i++) {
        joint[(size_t)z[i] * k + y[i]] += 1.0 / (double)n;
        pz[z[i]] += 1.0 / (double)n;
    }
    double h = 0; /* H(Y|Z) = −Σ_z p(z) Σ_y p(y|z) log p(y|z) */
    for (int s = 0; s < ks; s++) {
        if (pz[s] <= 0) continue;
        for (int c = 0; c < k; c++) {
            double p = joint[(size_t)s * k + c] / pz[s];
            if (p > 0) h -= pz[s] * p * log(p);
        }
    }
    free(joint);
    free(pz);
    *score = -h;
    return GRAFT_OK;
}

graft_status est_leep(const double *p, int ks, const int *y, int k, long n, double *score,
                      graft_error *e)
{
    graft_status st = check_labels(y, n, k, e);
    if (st) return st;
    if (ks < 1) return err_set(e, GRAFT_STATUS_BAD_DATA, "LEEP: no source classes");
    /* joint P(y, z) = Σ_{i: y_i = y} θ(x_i)_z / n; P(y | z) = P(y, z) / P(z) */
    double *joint = calloc((size_t)k * (size_t)ks, sizeof *joint),
           *pz = calloc((size_t)ks, sizeof *pz);
    if (!joint || !pz) {
        free(joint);
        free(pz);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    }
    for (long i = 0; i < n; i++)
        for (int s = 0; s < ks; s++) {
            double v = p[i * ks + s] / (double)n;
            joint[(size_t)y[i] * ks + s] += v;
        }
    for (int c = 0; c < k; c++)
        for (int s = 0; s < ks; s++)
            pz[s] += joint[(size_t)c * ks + s];
    double total = 0;
    for (long i = 0; i < n; i++) {
        double ep = 0;
        for (int s = 0; s < ks; s++)
            if (pz[s] > 0) ep += p[i * ks + s] * joint[(size_t)y[i] * ks + s] / pz[s];
        total += log(ep);
    }
    free(joint);
    free(pz);
    *score = total / (double)n;
    return GRAFT_OK;
}

void est_softmax_rows(const float *logits, long n, int ks, double *p, int *z)
{
    for (long i = 0; i < n; i++) {
        const float *l = logits + i * ks;
        int best = 0;
        for (int s = 1; s < ks; s++)
            if (l[s] > l[best]) best = s;
        if (z) z[i] = best;
        if (!p) continue;
        double mx = l[best], sum = 0;
        for (int s = 0; s < ks; s++)
            sum += exp((double)l[s] - mx);
        for (int s = 0; s < ks; s++)
            p[i * ks + s] = exp((double)l[s] - mx) / sum;
    }
}
