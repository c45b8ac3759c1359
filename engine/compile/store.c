/* store.c — host copies of parameters, buffers and optimizer state, keyed by PyTorch names:
 * default initialisation, loading from and saving to safetensors checkpoints. */
#include "compile.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

param_entry *store_find(param_store *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->items[i].name, name) == 0) return &s->items[i];
    return NULL;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *x)
{
    return (double)(splitmix(x) >> 11) * (1.0 / 9007199254740992.0);
}

/* A standard normal draw (Box-Muller on two uniforms; the first is kept away from 0). */
static double normal01(uint64_t *x)
{
    const double u = 1.0 - uniform01(x), v = uniform01(x);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* PyTorch's defaults: conv and dense use kaiming_uniform(a=sqrt(5)) for the weight, which is
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias; batchnorm starts at
 * weight 1, bias 0, running mean 0, running variance 1. */
static void init_tensor(const layer *l, const param_info *pi, float *data, uint64_t *rng)
{
    if (l->type == GRAFT_LAYER_BATCHNORM || l->type == GRAFT_LAYER_LAYERNORM) {
        float v = (ends_with(pi->name, ".weight") || ends_with(pi->name, ".running_var")) ? 1.f : 0.f;
        for (long i = 0; i < pi->count; i++) data[i] = v;
        return;
    }
    if (l->type == GRAFT_LAYER_ATTENTION) {
        /* torch's MultiheadAttention: in_proj xavier_uniform over [3D, D], biases 0, out_proj a
         * Linear's U(+-1/sqrt(D)); Hugging Face's ViT: normal, std 0.02, biases 0 */
        const double d = l->units;
        const bool hf = l->names == ATTN_NAMES_HF, bias = ends_with(pi->name, "bias");
        double b = bias ? 0.0 : hf ? 0.02 : ends_with(pi->name, ".in_proj_weight")
                                                 ? sqrt(6.0 / (4.0 * d)) : 1.0 / sqrt(d);
        for (long i = 0; i < pi->count; i++)
            data[i] = (float)(hf ? normal01(rng) * b : (2.0 * uniform01(rng) - 1.0) * b);
        return;
    }
    if (l->type == GRAFT_LAYER_CLASS_TOKEN) { /* torchvision: zeros */
        for (long i = 0; i < pi->count; i++) data[i] = 0.f;
        return;
    }
    if (l->type == GRAFT_LAYER_POSITION_EMBEDDING) { /* torchvision: normal, std 0.02 */
        for (long i = 0; i < pi->count; i++) data[i] = (float)(0.02 * normal01(rng));
        return;
    }
    long fan_in = 1;
    if (l->type == GRAFT_LAYER_PATCH_EMBED)
        fan_in = (long)l->in.d[0] * l->patch * l->patch;
    else if (l->type == GRAFT_LAYER_CONV2D)
        fan_in = (long)(l->in.d[0] / (l->groups > 0 ? l->groups : 1)) * l->kernel[0] * l->kernel[1];
    else if (l->type == GRAFT_LAYER_DENSE)
        fan_in = shape_features(l->in);
    double bound = 1.0 / sqrt((double)(fan_in > 0 ? fan_in : 1));
    for (long i = 0; i < pi->count; i++) data[i] = (float)((2.0 * uniform01(rng) - 1.0) * bound);
}

static param_entry *store_add(param_store *s, const param_info *pi, graft_error *e)
{
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 32;
        param_entry *n = realloc(s->items, (size_t)cap * sizeof *n);
        if (!n) return NULL;
        s->items = n;
        s->cap = cap;
    }
    param_entry *p = &s->items[s->n];
    memset(p, 0, sizeof *p);
    p->name = strdup(pi->name);
    p->data = malloc((size_t)(pi->count ? pi->count : 1) * sizeof(float));
    if (!p->name || !p->data) {
        free(p->name);
        free(p->data);
        err_set(e, GRAFT_STATUS_NOMEM, "out of memory for %s", pi->name);
        return NULL;
    }
    p->rank = pi->rank;
    for (int d = 0; d < pi->rank && d < 4; d++) p->dims[d] = pi->dims[d];
    p->count = pi->count;
    p->is_buffer = pi->is_buffer;
    s->n++;
    return p;
}

graft_status store_init(param_store *s, const graph *g, uint64_t seed, graft_error *e)
{
    uint64_t rng = seed * 0x2545F4914F6CDD1Dull + 1;
    for (int i = 0; i < g->nlayers; i++) {
        const layer *l = &g->layers[i];
        for (int j = 0; j < l->nparams; j++) {
            const param_info *pi = &l->params[j];
            param_entry *p = store_find(s, pi->name);
            if (p && p->count == pi->count) continue;
            if (p) { /* same name, new size (a new head): start again */
                free(p->data);
                free(p->m);
                free(p->v);
                free(p->anchor);
                p->m = p->v = p->anchor = NULL;
                p->data = malloc((size_t)pi->count * sizeof(float));
                if (!p->data) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
                p->count = pi->count;
                p->rank = pi->rank;
                for (int d = 0; d < pi->rank && d < 4; d++) p->dims[d] = pi->dims[d];
                p->loaded = false;
                p->t = 0;
            } else if (!(p = store_add(s, pi, e))) {
                return e && e->status ? e->status : err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
            }
            init_tensor(l, pi, p->data, &rng);
        }
    }
    return GRAFT_OK;
}

graft_status store_load(param_store *s, const graph *g, const char *path, bool want_anchor,
                        int *loaded, graft_error *e)
{
    st_file *f;
    graft_status st = st_open(path, &f, e);
    if (st) return st;
    int n = 0;
    for (int i = 0; i < g->nlayers && !st; i++) {
        const layer *l = &g->layers[i];
        if (l->fresh) continue;
        for (int j = 0; j < l->nparams && !st; j++) {
            const param_info *pi = &l->params[j];
            const st_tensor *t = st_find(f, pi->name);
            char old[512];
            if (!t && param_legacy_name(l, pi, old, sizeof old)) t = st_find(f, old);
            param_entry *p = store_find(s, pi->name);
            if (!t || !p) continue;
            long count = 1;
            for (int d = 0; d < t->rank; d++) count *= (long)t->shape[d];
            bool same = t->rank == pi->rank && count == pi->count;
            for (int d = 0; same && d < t->rank; d++) same = t->shape[d] == pi->dims[d];
            if (!same) {
                st = err_set(e, GRAFT_STATUS_BAD_DATA,
                             "%s: tensor %s has %ld elements in a different shape than the model's",
                             path, pi->name, count);
                break;
            }
            if ((st = st_read_f32(f, t, p->data, e))) break;
            /* a NaN or an infinity would look, later, like a loss that diverged */
            for (long k = 0; k < p->count; k++)
                if (!isfinite(p->data[k])) {
                    st =
                        err_set(e, GRAFT_STATUS_BAD_DATA,
                                "%s: tensor %s holds %s (element %ld); a checkpoint must be finite",
                                path, pi->name, isnan(p->data[k]) ? "NaN" : "an infinity", k);
                    break;
                }
            if (st) break;
            p->loaded = true;
            if (want_anchor && !p->is_buffer) {
                free(p->anchor);
                p->anchor = malloc((size_t)p->count * sizeof(float));
                if (!p->anchor) {
                    st = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
                    break;
                }
                memcpy(p->anchor, p->data, (size_t)p->count * sizeof(float));
            }
            n++;
        }
    }
    st_close(f);
    if (loaded) *loaded = n;
    return st;
}

graft_status store_load_all(param_store *s, const graph *g, const char *path, int *loaded,
                            graft_error *e)
{
    /* a copy of the layer list with nothing marked fresh: the checkpoint's head is wanted too */
    graph all = *g;
    layer *copy = malloc((size_t)(all.nlayers ? all.nlayers : 1) * sizeof *copy);
    if (!copy) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    memcpy(copy, g->layers, (size_t)all.nlayers * sizeof *copy);
    for (int i = 0; i < all.nlayers; i++) copy[i].fresh = false;
    all.layers = copy;
    graft_status st = store_load(s, &all, path, false, loaded, e);
    free(copy);
    return st;
}

/* which: 0 the model's tensors, 1 the optimizer state and anchors. With out set, the file's
 * bytes come back in memory (st_encode) instead of being written to path. */
static graft_status save_tensors(const param_store *s, const char *path, int which,
                                 const char *const *meta_kv, int nmeta, char **out,
                                 size_t *out_len, graft_error *e)
{
    st_out_tensor *t = calloc((size_t)(3 * s->n + 1), sizeof *t);
    char **names = calloc((size_t)(3 * s->n + 1), sizeof *names);
    if (!t || !names) {
        free(t);
        free(names);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    }
    int n = 0;
    graft_status st = GRAFT_OK;
    for (int i = 0; i < s->n && !st; i++) {
        const param_entry *p = &s->items[i];
        const float *src[3] = {p->data, NULL, NULL};
        const char *prefix[3] = {"", NULL, NULL};
        int k = 1;
        if (which == 1) { /* optimizer state and anchors */
            k = 0;
            if (p->m) src[k] = p->m, prefix[k++] = "optim.m.";
            if (p->v) src[k] = p->v, prefix[k++] = "optim.v.";
            if (p->anchor) src[k] = p->anchor, prefix[k++] = "l2sp.anchor.";
        }
        for (int j = 0; j < k; j++) {
            size_t len = strlen(prefix[j]) + strlen(p->name) + 1;
            names[n] = malloc(len);
            if (!names[n]) {
                st = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
                break;
            }
            snprintf(names[n], len, "%s%s", prefix[j], p->name);
            t[n].name = names[n];
            t[n].rank = p->rank;
            for (int d = 0; d < p->rank && d < 4; d++) t[n].shape[d] = p->dims[d];
            t[n].data = src[j];
            n++;
        }
    }
    if (!st)
        st = out ? st_encode(path, t, n, meta_kv, nmeta, out, out_len, e)
                 : st_write(path, t, n, meta_kv, nmeta, e);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(t);
    return st;
}

graft_status store_save(const param_store *s, const char *path, const char *const *meta_kv,
                        int nmeta, graft_error *e)
{
    return save_tensors(s, path, 0, meta_kv, nmeta, NULL, NULL, e);
}

graft_status store_save_state(const param_store *s, const char *path, const char *const *meta_kv,
                              int nmeta, graft_error *e)
{
    return save_tensors(s, path, 1, meta_kv, nmeta, NULL, NULL, e);
}

graft_status store_encode(const param_store *s, bool state, const char *path,
                          const char *const *meta_kv, int nmeta, char **out, size_t *out_len,
                          graft_error *e)
{
    return save_tensors(s, path, state ? 1 : 0, meta_kv, nmeta, out, out_len, e);
}

static graft_status load_into(st_file *f, const char *prefix, param_entry *p, float **dst,
                              graft_error *e)
{
    char name[1024];
    snprintf(name, sizeof name, "%s%s", prefix, p->name);
    const st_tensor *t = st_find(f, name);
    if (!t) {
        free(*dst);
        *dst = NULL;
        return GRAFT_OK;
    }
    long count = 1;
    for (int d = 0; d < t->rank; d++) count *= (long)t->shape[d];
    if (count != p->count)
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: %s has %ld elements, expected %ld", f->path,
                       name, count, p->count);
    if (!*dst && !(*dst = malloc((size_t)count * sizeof(float))))
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    return st_read_f32(f, t, *dst, e);
}

graft_status store_load_state(param_store *s, const char *path, st_file **meta_out, graft_error *e)
{
    st_file *f;
    graft_status st = st_open(path, &f, e);
    if (st) return st;
    for (int i = 0; i < s->n && !st; i++) {
        param_entry *p = &s->items[i];
        if ((st = load_into(f, "optim.m.", p, &p->m, e))) break;
        if ((st = load_into(f, "optim.v.", p, &p->v, e))) break;
        if ((st = load_into(f, "l2sp.anchor.", p, &p->anchor, e))) break;
    }
    if (st || !meta_out) st_close(f);
    else *meta_out = f;
    return st;
}

void store_free(param_store *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->items[i].name);
        free(s->items[i].data);
        free(s->items[i].m);
        free(s->items[i].v);
        free(s->items[i].anchor);
    }
    free(s->items);
    memset(s, 0, sizeof *s);
}
