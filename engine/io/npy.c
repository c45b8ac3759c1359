/* npy.c — NumPy .npy files (format versions 1.0, 2.0 and 3.0): the header is a Python dict literal,
 * parsed here by a small tokenizer rather than trusted; C order, little-endian only. The writer emits
 * version 1.0 float32 files that numpy.load reads. */
#include "io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* numpy itself refuses headers above 10000 bytes unless told otherwise; allow more, not absurdly. */
#define NPY_MAX_HEADER (1u << 20)

void npy_free(npy_array *a)
{
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---- the dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } ---- */
typedef struct lexer {
    const char *p, *end, *start, *name;
    graft_error *e;
} lexer;

static void skip_space(lexer *l)
{
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r'))
        l->p++;
}

static graft_status syntax(lexer *l, const char *what)
{
    skip_space(l);
    char found[24];
    if (l->p >= l->end)
        snprintf(found, sizeof found, "the end of the header");
    else {
        size_t n = 0;
        for (const char *q = l->p; q < l->end && n < 12; q++)
            found[n++] = (*q >= 32 && *q < 127) ? *q : '?';
        found[n] = 0;
    }
    return err_set(l->e, GRAFT_STATUS_BAD_DATA,
                   "%s: bad .npy header: expected %s at header byte %ld, found '%s'", l->name, what,
                   (long)(l->p - l->start), found);
}

static bool eat(lexer *l, char c)
{
    skip_space(l);
    if (l->p < l->end && *l->p == c) {
        l->p++;
        return true;
    }
    return false;
}

/* A quoted Python string without escapes (numpy never writes any in these keys). */
static graft_status string(lexer *l, char *out, size_t n)
{
    skip_space(l);
    if (l->p >= l->end || (*l->p != '\'' && *l->p != '"')) return syntax(l, "a quoted string");
    char q = *l->p++;
    size_t k = 0;
    while (l->p < l->end && *l->p != q) {
        if (*l->p == '\\' || k + 1 >= n) return syntax(l, "a short string without escapes");
        out[k++] = *l->p++;
    }
    if (l->p >= l->end) return syntax(l, "a closing quote");
    l->p++;
    out[k] = 0;
    return GRAFT_OK;
}

static graft_status integer(lexer *l, int64_t *v)
{
    skip_space(l);
    if (l->p >= l->end || *l->p < '0' || *l->p > '9') return syntax(l, "a non-negative integer");
    int64_t x = 0;
    while (l->p < l->end && *l->p >= '0' && *l->p <= '9') {
        if (x > (INT64_MAX - 9) / 10) return syntax(l, "an integer that fits in 64 bits");
        x = x * 10 + (*l->p++ - '0');
    }
    if (l->p < l->end && *l->p == 'L') l->p++; /* Python 2 long suffix */
    *v = x;
    return GRAFT_OK;
}

typedef struct npy_header {
    char descr[32];
    int fortran; /* -1 = missing */
    int rank;    /* -1 = missing */
    int64_t shape[8];
} npy_header;

static graft_status parse_dict(lexer *l, npy_header *h)
{
    graft_status s;
    h->fortran = h->rank = -1;
    h->descr[0] = 0;
    bool have_descr = false;
    if (!eat(l, '{')) return syntax(l, "'{'");
    while (!eat(l, '}')) {
        char key[32];
        if ((s = string(l, key, sizeof key))) return s;
        if (!eat(l, ':')) return syntax(l, "':'");
        if (strcmp(key, "descr") == 0) {
            skip_space(l);
            if (l->p < l->end && *l->p == '[')
                return err_set(l->e, GRAFT_STATUS_BAD_DATA,
                               "%s: structured (record) dtypes are not supported; save a plain "
                               "numeric array",
                               l->name);
            if ((s = string(l, h->descr, sizeof h->descr))) return s;
            have_descr = true;
        } else if (strcmp(key, "fortran_order") == 0) {
            skip_space(l);
            if (l->end - l->p >= 4 && memcmp(l->p, "True", 4) == 0)
                h->fortran = 1, l->p += 4;
            else if (l->end - l->p >= 5 && memcmp(l->p, "False", 5) == 0)
                h->fortran = 0, l->p += 5;
            else
                return syntax(l, "True or False");
        } else if (strcmp(key, "shape") == 0) {
            if (!eat(l, '(')) return syntax(l, "'(' opening the shape tuple");
            h->rank = 0;
            while (!eat(l, ')')) {
                if (h->rank == (int)ARRAY_LEN(h->shape))
                    return err_set(l->e, GRAFT_STATUS_BAD_DATA,
                                   "%s: rank above %d is not supported", l->name,
                                   (int)ARRAY_LEN(h->shape));
                if ((s = integer(l, &h->shape[h->rank++]))) return s;
                if (!eat(l, ',')) {
                    if (!eat(l, ')')) return syntax(l, "',' or ')' in the shape tuple");
                    break;
                }
            }
        } else {
            return err_set(l->e, GRAFT_STATUS_BAD_DATA,
                           "%s: unexpected key '%s' in the .npy header (expected descr, "
                           "fortran_order, shape)",
                           l->name, key);
        }
        if (!eat(l, ',')) {
            if (!eat(l, '}')) return syntax(l, "',' or '}'");
            break;
        }
    }
    skip_space(l);
    if (l->p != l->end) return syntax(l, "the end of the header after '}'");
    if (!have_descr || h->fortran < 0 || h->rank < 0)
        return err_set(l->e, GRAFT_STATUS_BAD_DATA, "%s: .npy header lacks '%s'", l->name,
                       !have_descr ? "descr" : h->fortran < 0 ? "fortran_order" : "shape");
    return GRAFT_OK;
}

static graft_status parse_descr(const char *name, const char *d, npy_array *a, graft_error *e)
{
    static const char *ok[] = {"f4", "f8", "u1", "i1", "i2", "i4", "i8", "u2", "u4", "u8", "b1"};
    char bo = d[0];
    const char *t = bo ? d + 1 : d;
    bool known = false;
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) known |= strcmp(t, ok[i]) == 0;
    if (bo == 0 || !strchr("<>|=", bo) || !known)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: unsupported dtype '%s' (supported: f4 f8 u1 i1 i2 i4 i8 u2 u4 u8 b1, "
                       "little-endian)",
                       name, d);
    a->kind = t[0];
    a->itemsize = t[1] - '0';
    if (bo == '>' && a->itemsize > 1)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: dtype '%s' is big-endian; save it little-endian (arr.astype('<%s'))",
                       name, d, t);
    return GRAFT_OK;
}

/* Parse the preamble and header in p[0..avail) (which holds at least the whole header when the
 * file is well formed). Fills everything in a but data; *data_at is where the data starts. */
static graft_status parse_preamble(const char *name, const unsigned char *p, size_t avail,
                                   uint64_t file_size, npy_array *a, size_t *data_at,
                                   graft_error *e)
{
    memset(a, 0, sizeof *a);
    if (avail < 10 || memcmp(p, "\x93NUMPY", 6) != 0)
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: not a .npy file (no \\x93NUMPY magic)", name);
    int major = p[6], minor = p[7];
    size_t hlen, pre;
    if (major == 1) {
        hlen = (size_t)p[8] | (size_t)p[9] << 8;
        pre = 10;
    } else if (major == 2 || major == 3) {
        if (avail < 12)
            return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: truncated .npy preamble", name);
        hlen = (size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
        pre = 12;
    } else {
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: .npy format version %d.%d is not supported (1.0, 2.0, 3.0 are)", name,
                       major, minor);
    }
    if (minor != 0)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: .npy format version %d.%d is not supported (1.0, 2.0, 3.0 are)", name,
                       major, minor);
    if (hlen > NPY_MAX_HEADER)
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: .npy header length %zu is absurd", name,
                       hlen);
    if (pre + hlen > avail)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: .npy header length %zu runs past the end of the file (%llu bytes)",
                       name, hlen, (unsigned long long)file_size);
    npy_header h;
    lexer l = {(const char *)p + pre, (const char *)p + pre + hlen, (const char *)p + pre, name, e};
    graft_status s = parse_dict(&l, &h);
    if (s) return s;
    if ((s = parse_descr(name, h.descr, a, e))) return s;
    if (h.fortran)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: fortran_order arrays are not supported; save a C-ordered array "
                       "(np.ascontiguousarray)",
                       name);
    a->rank = h.rank;
    uint64_t count = 1;
    for (int i = 0; i < h.rank; i++) {
        a->shape[i] = h.shape[i];
        uint64_t d = (uint64_t)h.shape[i];
        if (d && count > UINT64_MAX / 16 / d)
            return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: shape is absurdly large", name);
        count *= d;
    }
    uint64_t want = count * (uint64_t)a->itemsize, have = file_size - (pre + hlen);
    if (want != have)
        return err_set(e, GRAFT_STATUS_BAD_DATA,
                       "%s: the header's shape and dtype need %llu bytes of data but the file "
                       "holds %llu",
                       name, (unsigned long long)want, (unsigned long long)have);
    if (count > SIZE_MAX / (size_t)a->itemsize)
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: too large for this machine", name);
    a->count = (size_t)count;
    *data_at = pre + hlen;
    return GRAFT_OK;
}

graft_status npy_read_mem(const char *name, const void *data, size_t len, npy_array *out,
                          graft_error *e)
{
    size_t at = 0;
    graft_status s = parse_preamble(name, data, len, len, out, &at, e);
    if (s) return s;
    size_t bytes = out->count * (size_t)out->itemsize;
    out->data = malloc(bytes ? bytes : 1);
    if (!out->data) {
        memset(out, 0, sizeof *out);
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory for %zu bytes", name, bytes);
    }
    memcpy(out->data, (const char *)data + at, bytes);
    return GRAFT_OK;
}

/* what read_file stores: everything, the header only (data NULL), or the rows keep[] marks */
typedef enum npy_mode { NPY_ALL, NPY_HEADER, NPY_KEEP } npy_mode;

static graft_status read_file(const char *path, npy_mode mode, const unsigned char *keep,
                              size_t nkeep, npy_array *out, graft_error *e)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, GRAFT_STATUS_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return err_set(e, GRAFT_STATUS_IO, "%s is not a regular file", path);
    }
    /* Read enough for the longest header we accept, then the data straight into place. */
    size_t cap = 12 + NPY_MAX_HEADER, avail;
    unsigned char *head = malloc(cap);
    if (!head) {
        fclose(f);
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", path);
    }
    avail = fread(head, 1, cap, f);
    size_t at = 0;
    graft_status s = parse_preamble(path, head, avail, (uint64_t)sb.st_size, out, &at, e);
    free(head);
    if (s || mode == NPY_HEADER) {
        fclose(f);
        return s;
    }
    /* rows: along the first dimension (a rank-0 array is one row) */
    size_t rows = out->rank ? (size_t)out->shape[0] : 1, kept = rows;
    size_t row_bytes = rows ? out->count / rows * (size_t)out->itemsize : 0;
    if (mode == NPY_KEEP) {
        if (rows != nkeep) {
            fclose(f);
            s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: %zu rows, expected %zu", path, rows, nkeep);
            memset(out, 0, sizeof *out);
            return s;
        }
        kept = 0;
        for (size_t r = 0; r < rows; r++) kept += keep[r] != 0;
    }
    size_t bytes = kept * row_bytes;
    out->data = malloc(bytes ? bytes : 1);
    if (!out->data) {
        fclose(f);
        memset(out, 0, sizeof *out);
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory for %zu bytes", path, bytes);
    }
    /* runs of consecutive kept rows, each one read (the rest is never read) */
    size_t done = 0;
    for (size_t r = 0; r < rows && !s;) {
        if (mode == NPY_KEEP && !keep[r]) {
            r++;
            continue;
        }
        size_t run = 1;
        while (r + run < rows && (mode != NPY_KEEP || keep[r + run])) run++;
        if (fseeko(f, (off_t)(at + r * row_bytes), SEEK_SET) != 0 ||
            fread((char *)out->data + done, 1, run * row_bytes, f) != run * row_bytes)
            s = err_set(e, GRAFT_STATUS_IO, "%s: cannot read %zu bytes of data", path,
                        run * row_bytes);
        done += run * row_bytes;
        r += run;
    }
    fclose(f);
    if (s) {
        npy_free(out);
        return s;
    }
    if (mode == NPY_KEEP && out->rank) {
        out->shape[0] = (int64_t)kept;
        out->count = kept * (rows ? out->count / rows : 0);
    }
    return GRAFT_OK;
}

graft_status npy_read(const char *path, npy_array *out, graft_error *e)
{
    return read_file(path, NPY_ALL, NULL, 0, out, e);
}

graft_status npy_read_header(const char *path, npy_array *out, graft_error *e)
{
    return read_file(path, NPY_HEADER, NULL, 0, out, e);
}

graft_status npy_read_rows(const char *path, const unsigned char *keep, size_t nkeep,
                           npy_array *out, graft_error *e)
{
    return read_file(path, NPY_KEEP, keep, nkeep, out, e);
}

graft_status npy_write_f32(const char *path, const float *data, int rank, const int64_t *shape,
                           graft_error *e)
{
    if (rank < 0 || rank > 8)
        return err_set(e, GRAFT_STATUS_INTERNAL, "%s: rank %d out of range", path, rank);
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int i = 0; i < rank; i++) {
        if (shape[i] < 0)
            return err_set(e, GRAFT_STATUS_INTERNAL, "%s: negative dimension", path);
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld%s", (long long)shape[i],
                      rank == 1 ? "," : i + 1 < rank ? ", " : "");
        count *= (size_t)shape[i];
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    /* Pad with spaces and end with '\n' so the data starts on a 64-byte boundary (numpy does). */
    size_t hlen = (size_t)n + 1, total_pre = (10 + hlen + 63) / 64 * 64;
    hlen = total_pre - 10;
    size_t bytes = count * 4, total = total_pre + bytes;
    unsigned char *file = malloc(total);
    if (!file) return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", path);
    memcpy(file, "\x93NUMPY\x01\x00", 8);
    file[8] = (unsigned char)(hlen & 0xff);
    file[9] = (unsigned char)(hlen >> 8);
    memcpy(file + 10, dict, (size_t)n);
    memset(file + 10 + n, ' ', hlen - (size_t)n - 1);
    file[total_pre - 1] = '\n';
    if (bytes) memcpy(file + total_pre, data, bytes);
    graft_status s = fs_write_atomic(path, file, total, e);
    free(file);
    return s;
}
