/* safetensors.c — Graft's checkpoint format: an 8-byte little-endian header length, a JSON header
 * (jansson), then raw tensor bytes. The reader validates every field of the header before anything
 * uses it; the writer emits F32 tensors in name order with contiguous offsets, atomically. */
#include "io.h"

#include <jansson.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the io readers assume a little-endian host"
#endif

/* The Python library refuses headers above 100 MB; a longer one is corruption, not a checkpoint. */
#define ST_MAX_HEADER (100u * 1000u * 1000u)

static const struct {
    const char *name;
    st_dtype dtype;
    int size;
} dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
    {"I64", ST_I64, 8}, {"I32", ST_I32, 4}, {"I16", ST_I16, 2},   {"I8", ST_I8, 1},
    {"U8", ST_U8, 1},   {"BOOL", ST_BOOL, 1},
};

const char *st_dtype_name(st_dtype t)
{
    for (size_t i = 0; i < ARRAY_LEN(dtypes); i++)
        if (dtypes[i].dtype == t) return dtypes[i].name;
    return "?";
}

static int dtype_size(st_dtype t)
{
    for (size_t i = 0; i < ARRAY_LEN(dtypes); i++)
        if (dtypes[i].dtype == t) return dtypes[i].size;
    return 0;
}

void st_close(st_file *f)
{
    if (!f) return;
    for (int i = 0; i < f->ntensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    free(f);
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->ntensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key)
{
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

static int by_begin(const void *a, const void *b)
{
    const st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* A JSON number that is a non-negative integer (jansson keeps integers and reals apart; a real
 * like 3.0 is not accepted, as the Rust implementation does not). */
static bool json_uint(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v)) return false;
    json_int_t i = json_integer_value(v);
    if (i < 0) return false;
    *out = (uint64_t)i;
    return true;
}

static graft_status parse_metadata(st_file *f, json_t *meta, graft_error *e)
{
    if (!json_is_object(meta))
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: __metadata__ must be an object of strings, found a JSON %s", f->path,
                       json_is_array(meta) ? "array" : "scalar");
    size_t n = json_object_size(meta);
    f->meta_keys = calloc(n ? n : 1, sizeof *f->meta_keys);
    f->meta_values = calloc(n ? n : 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values)
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", f->path);
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v)
    {
        if (!json_is_string(v))
            return err_set(e, GRAFT_STATUS_BAD_DATA,
                           "%s: __metadata__ value of \"%s\" must be a string", f->path, k);
        f->meta_keys[f->nmeta] = strdup(k);
        f->meta_values[f->nmeta] = strdup(json_string_value(v));
        if (!f->meta_keys[f->nmeta] || !f->meta_values[f->nmeta]) {
            f->nmeta++;
            return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", f->path);
        }
        f->nmeta++;
    }
    return GRAFT_OK;
}

static graft_status parse_tensor(st_file *f, const char *name, json_t *v, uint64_t data_len,
                                 st_tensor *t, graft_error *e)
{
    const char *p = f->path;
    if (!json_is_object(v))
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: tensor \"%s\": entry must be an object", p,
                       name);
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    if (!dt || !sh || !off)
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: tensor \"%s\": missing \"%s\"", p, name,
                       !dt ? "dtype" : !sh ? "shape" : "data_offsets");
    if (!json_is_string(dt))
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: tensor \"%s\": dtype must be a string", p,
                       name);
    const char *ds = json_string_value(dt);
    int size = 0;
    for (size_t i = 0; i < ARRAY_LEN(dtypes); i++)
        if (strcmp(ds, dtypes[i].name) == 0) {
            t->dtype = dtypes[i].dtype;
            size = dtypes[i].size;
        }
    if (!size)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: tensor \"%s\": unknown dtype \"%.40s\" (expected F32, F16, BF16, F64, "
                       "I64, I32, I16, I8, U8 or BOOL)",
                       p, name, ds);
    if (!json_is_array(sh))
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: tensor \"%s\": shape must be a list", p,
                       name);
    if (json_array_size(sh) > ARRAY_LEN(t->shape))
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: tensor \"%s\": rank %zu is more than the %zu supported", p, name,
                       json_array_size(sh), ARRAY_LEN(t->shape));
    t->rank = (int)json_array_size(sh);
    uint64_t count = 1;
    bool overflow = false;
    for (int i = 0; i < t->rank; i++) {
        uint64_t d;
        if (!json_uint(json_array_get(sh, (size_t)i), &d))
            return err_set(e, GRAFT_STATUS_BAD_DATA,
                           "%s: tensor \"%s\": shape[%d] is not a non-negative integer", p, name,
                           i);
        if (d > INT64_MAX) overflow = true;
        t->shape[i] = (int64_t)d;
        if (d && count > UINT64_MAX / d) overflow = true;
        count *= d;
    }
    if (overflow || count > UINT64_MAX / (uint64_t)size)
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: tensor \"%s\": shape is absurdly large", p,
                       name);
    if (!json_is_array(off) || json_array_size(off) != 2)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: tensor \"%s\": data_offsets must be a list [begin, end]", p, name);
    if (!json_uint(json_array_get(off, 0), &t->begin) ||
        !json_uint(json_array_get(off, 1), &t->end))
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: tensor \"%s\": data_offsets must be non-negative integers", p, name);
    if (t->begin > t->end)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: tensor \"%s\": data_offsets begin %llu is after end %llu", p, name,
                       (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > data_len)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: tensor \"%s\": data_offsets end %llu is past the end of the data "
                       "section (%llu bytes)",
                       p, name, (unsigned long long)t->end, (unsigned long long)data_len);
    if (t->end - t->begin != count * (uint64_t)size)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: tensor \"%s\": shape and dtype %s need %llu bytes but data_offsets "
                       "span %llu",
                       p, name, ds, (unsigned long long)(count * (uint64_t)size),
                       (unsigned long long)(t->end - t->begin));
    t->name = strdup(name);
    if (!t->name) return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", p);
    return GRAFT_OK;
}

/* Validate header bytes hdr[0..hlen) of a file of file_size bytes. */
static graft_status parse_header(const char *path, const char *hdr, size_t hlen,
                                 uint64_t file_size, st_file **out, graft_error *e)
{
    *out = NULL;
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", path);
    }
    f->file_size = file_size;
    f->data_offset = 8 + (uint64_t)hlen;
    uint64_t data_len = file_size - f->data_offset;
    graft_status s = GRAFT_OK;
    json_error_t je;
    /* Duplicate keys are rejected by the parser: a duplicate tensor name would otherwise silently
     * shadow the first one. */
    json_t *root = json_loadb(hdr, hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (strstr(je.text, "duplicate object key")) {
            /* jansson says: duplicate object key near '"NAME"' */
            const char *k = strstr(je.text, "near '\""), *end = k ? strrchr(k, '"') : NULL;
            int n = k && end > k + 7 ? (int)(end - (k + 7)) : 0;
            s = err_set(e, GRAFT_STATUS_BAD_DATA,
                        "%s: duplicate tensor name \"%.*s\" in the header (header byte %d)", path,
                        n, k ? k + 7 : "", je.position);
        }
        else
            s = err_set(e, GRAFT_STATUS_BAD_DATA,
                        "%s: header is not valid JSON: %s (header byte %d)", path, je.text,
                        je.position);
        goto error;
    }
    if (!json_is_object(root)) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: header must be a JSON object", path);
        goto error;
    }
    size_t n = json_object_size(root);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", path);
        goto error;
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        if (strcmp(k, "__metadata__") == 0) {
            if ((s = parse_metadata(f, v, e))) goto error;
            continue;
        }
        if ((s = parse_tensor(f, k, v, data_len, &f->tensors[f->ntensors], e))) goto error;
        f->ntensors++;
    }
    /* Sorted by offset, any overlap shows up between neighbours. Zero-byte tensors overlap
     * nothing. */
    qsort(f->tensors, (size_t)f->ntensors, sizeof *f->tensors, by_begin);
    const st_tensor *prev = NULL;
    for (int i = 0; i < f->ntensors; i++) {
        const st_tensor *t = &f->tensors[i];
        if (t->begin == t->end) continue;
        if (prev && t->begin < prev->end) {
            s = err_set(e, GRAFT_STATUS_BAD_DATA,
                        "%s: tensor \"%s\" (bytes %llu..%llu) overlaps tensor \"%s\" (bytes "
                        "%llu..%llu)",
                        path, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                        prev->name, (unsigned long long)prev->begin,
                        (unsigned long long)prev->end);
            goto error;
        }
        prev = t;
    }
    json_decref(root);
    *out = f;
    return GRAFT_OK;
error:
    json_decref(root);
    st_close(f);
    return s;
}

static graft_status check_prefix(const char *path, const unsigned char *first8, uint64_t size,
                                 uint64_t *hlen, graft_error *e)
{
    if (size < 8)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: %llu bytes is too short for a safetensors file (the header length "
                       "alone takes 8)",
                       path, (unsigned long long)size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | first8[i];
    if (n > ST_MAX_HEADER)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: header length %llu is absurd (limit %u bytes); not a safetensors file?",
                       path, (unsigned long long)n, ST_MAX_HEADER);
    if (n > size - 8)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: header length %llu runs past the end of the file (%llu bytes)", path,
                       (unsigned long long)n, (unsigned long long)size);
    *hlen = n;
    return GRAFT_OK;
}

graft_status st_open(const char *path, st_file **out, graft_error *e)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return err_set(e, GRAFT_STATUS_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return err_set(e, GRAFT_STATUS_IO, "%s is not a regular file", path);
    }
    uint64_t size = (uint64_t)sb.st_size, hlen = 0;
    unsigned char first8[8] = {0};
    size_t got = fread(first8, 1, 8, fp);
    graft_status s = check_prefix(path, first8, got < 8 ? got : size, &hlen, e);
    if (s) {
        fclose(fp);
        return s;
    }
    char *hdr = malloc(hlen ? hlen : 1);
    if (!hdr) {
        fclose(fp);
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory for a %llu-byte header", path,
                       (unsigned long long)hlen);
    }
    if (fread(hdr, 1, hlen, fp) != hlen) {
        free(hdr);
        fclose(fp);
        return err_set(e, GRAFT_STATUS_IO, "%s: cannot read the %llu-byte header", path,
                       (unsigned long long)hlen);
    }
    fclose(fp);
    s = parse_header(path, hdr, hlen, size, out, e);
    free(hdr);
    return s;
}

graft_status st_open_mem(const char *name, const void *data, size_t len, st_file **out,
                         graft_error *e)
{
    *out = NULL;
    uint64_t hlen = 0;
    graft_status s = check_prefix(name, data, len, &hlen, e);
    if (s) return s;
    s = parse_header(name, (const char *)data + 8, hlen, len, out, e);
    if (!s) (*out)->mem = data;
    return s;
}

/* IEEE 754 binary16 to binary32, exactly: subnormals are renormalised, inf and NaN keep their
 * class (and the NaN payload, shifted). */
float st_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {
            /* subnormal: value = man * 2^-24; shift until the implicit bit appears */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static void convert(st_dtype dt, const unsigned char *src, size_t count, float *out)
{
    for (size_t i = 0; i < count; i++) {
        const unsigned char *p = src + i * (size_t)dtype_size(dt);
        switch (dt) {
        case ST_F32: memcpy(&out[i], p, 4); break;
        case ST_F16: {
            uint16_t h;
            memcpy(&h, p, 2);
            out[i] = st_half_to_float(h);
            break;
        }
        case ST_BF16: {
            /* bfloat16 is the top half of a float32 */
            uint16_t h;
            memcpy(&h, p, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
            break;
        }
        case ST_F64: {
            double d;
            memcpy(&d, p, 8);
            out[i] = (float)d;
            break;
        }
        case ST_I64: {
            int64_t v;
            memcpy(&v, p, 8);
            out[i] = (float)v;
            break;
        }
        case ST_I32: {
            int32_t v;
            memcpy(&v, p, 4);
            out[i] = (float)v;
            break;
        }
        case ST_I16: {
            int16_t v;
            memcpy(&v, p, 2);
            out[i] = (float)v;
            break;
        }
        case ST_I8: out[i] = (float)(int8_t)p[0]; break;
        case ST_U8: out[i] = (float)p[0]; break;
        case ST_BOOL: out[i] = p[0] ? 1.0f : 0.0f; break;
        }
    }
}

size_t st_tensor_count(const st_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= (size_t)t->shape[i];
    return n;
}

graft_status st_read_f32(const st_file *f, const st_tensor *t, float *out, graft_error *e)
{
    size_t count = st_tensor_count(t), bytes = (size_t)(t->end - t->begin);
    if (bytes == 0) return GRAFT_OK;
    if (f->mem) {
        convert(t->dtype, (const unsigned char *)f->mem + f->data_offset + t->begin, count, out);
        return GRAFT_OK;
    }
    /* F32 is read straight into out; other dtypes go through a bounce buffer. */
    unsigned char *tmp = t->dtype == ST_F32 ? (unsigned char *)out : malloc(bytes);
    if (!tmp)
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: tensor \"%s\": out of memory", f->path,
                       t->name);
    graft_status s = GRAFT_OK;
    FILE *fp = fopen(f->path, "rb");
    if (!fp) {
        s = err_set(e, GRAFT_STATUS_IO, "cannot open %s: %s", f->path, strerror(errno));
        goto done;
    }
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || (uint64_t)sb.st_size != f->file_size) {
        s = err_set(e, GRAFT_STATUS_IO, "%s changed size since it was opened", f->path);
        goto done;
    }
    if (fseeko(fp, (off_t)(f->data_offset + t->begin), SEEK_SET) != 0 ||
        fread(tmp, 1, bytes, fp) != bytes) {
        s = err_set(e, GRAFT_STATUS_IO, "%s: tensor \"%s\": cannot read %zu bytes", f->path,
                    t->name, bytes);
        goto done;
    }
    if (t->dtype != ST_F32) convert(t->dtype, tmp, count, out);
done:
    if (fp) fclose(fp);
    if (tmp != (unsigned char *)out) free(tmp);
    return s;
}

static int by_name(const void *a, const void *b)
{
    const st_out_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

graft_status st_encode(const char *path, const st_out_tensor *t, int n, const char *const *meta_kv,
                       int nmeta, char **out, size_t *out_len, graft_error *e)
{
    graft_status s = GRAFT_OK;
    *out = NULL;
    *out_len = 0;
    const st_out_tensor **order = calloc(n > 0 ? (size_t)n : 1, sizeof *order);
    json_t *root = json_object();
    char *text = NULL, *file = NULL;
    if (!order || !root) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < n; i++) order[i] = &t[i];
    qsort(order, (size_t)n, sizeof *order, by_name);
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const st_out_tensor *o = order[i];
        if (!o->name || !o->name[0] || strcmp(o->name, "__metadata__") == 0) {
            s = err_set(e, GRAFT_STATUS_INTERNAL, "%s: tensor %d has no usable name", path, i);
            goto done;
        }
        if (i > 0 && strcmp(order[i - 1]->name, o->name) == 0) {
            s = err_set(e, GRAFT_STATUS_INTERNAL, "%s: tensor \"%s\" given twice", path, o->name);
            goto done;
        }
        uint64_t count = 1;
        bool bad = o->rank < 0 || o->rank > 4;
        for (int d = 0; !bad && d < o->rank; d++) {
            bad = o->shape[d] < 0;
            count *= (uint64_t)o->shape[d];
        }
        if (bad || (count && !o->data)) {
            s = err_set(e, GRAFT_STATUS_INTERNAL, "%s: tensor \"%s\": bad rank, shape or no data",
                        path, o->name);
            goto done;
        }
        json_t *shape = json_array(), *offs = json_array(), *ent = json_object();
        for (int d = 0; d < o->rank; d++) json_array_append_new(shape, json_integer(o->shape[d]));
        json_array_append_new(offs, json_integer((json_int_t)offset));
        json_array_append_new(offs, json_integer((json_int_t)(offset + count * 4)));
        offset += count * 4;
        json_object_set_new(ent, "dtype", json_string("F32"));
        json_object_set_new(ent, "shape", shape);
        json_object_set_new(ent, "data_offsets", offs);
        if (json_object_set_new(root, o->name, ent) != 0) {
            s = err_set(e, GRAFT_STATUS_NOMEM, "%s: tensor \"%s\": cannot describe it",
                        path, o->name);
            goto done;
        }
    }
    if (nmeta > 0) {
        json_t *meta = json_object();
        for (int i = 0; i < nmeta; i++)
            if (!meta_kv[2 * i] || !meta_kv[2 * i + 1] ||
                json_object_set_new(meta, meta_kv[2 * i], json_string(meta_kv[2 * i + 1]))) {
                json_decref(meta);
                s = err_set(e, GRAFT_STATUS_INTERNAL, "%s: metadata entry %d is not valid UTF-8",
                            path, i);
                goto done;
            }
        json_object_set_new(root, "__metadata__", meta);
    }
    text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "%s: cannot encode the header", path);
        goto done;
    }
    /* Pad with spaces so the data section starts 8-byte aligned, as the Python library does. */
    size_t hlen = strlen(text), padded = (hlen + 7) / 8 * 8;
    size_t total = 8 + padded + (size_t)offset;
    file = malloc(total);
    if (!file) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory for %zu bytes", path, total);
        goto done;
    }
    for (int i = 0; i < 8; i++) file[i] = (char)((uint64_t)padded >> (8 * i) & 0xff);
    memcpy(file + 8, text, hlen);
    memset(file + 8 + hlen, ' ', padded - hlen);
    char *p = file + 8 + padded;
    for (int i = 0; i < n; i++) {
        size_t c = 1;
        for (int d = 0; d < order[i]->rank; d++) c *= (size_t)order[i]->shape[d];
        if (c) memcpy(p, order[i]->data, c * 4);
        p += c * 4;
    }
    *out = file;
    *out_len = total;
    file = NULL;
done:
    free(file);
    free(text);
    json_decref(root);
    free(order);
    return s;
}

graft_status st_write(const char *path, const st_out_tensor *t, int n, const char *const *meta_kv,
                      int nmeta, graft_error *e)
{
    char *file;
    size_t len;
    graft_status s = st_encode(path, t, n, meta_kv, nmeta, &file, &len, e);
    if (!s) s = fs_write_atomic(path, file, len, e);
    free(file);
    return s;
}
