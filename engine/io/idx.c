/* idx.c — IDX files (the MNIST format): magic 0 0 TYPE RANK, RANK big-endian u32 dimensions, then
 * big-endian data. gzip-compressed files are detected by their magic (1f 8b) and inflated with zlib
 * into a buffer no larger than the header implies, so a decompression bomb costs nothing.
 *
 * A compressed file of at least IDX_DECODED_MIN bytes decoded whole is kept decoded in Graft's
 * cache folder (data/, fs_cache_dir), as torchvision keeps MNIST's raw files beside the .gz: the
 * next read maps that copy and touches only the rows it keeps. Fashion-MNIST's training images
 * take 0.17 s to inflate (47 MB) and a few ms mapped. The copy's name hashes the file's path,
 * device, inode, size, modification time and its gzip trailer (the CRC-32 and length of the data),
 * so an edited file is decoded afresh; the copy is written aside and renamed only after the
 * stream ended with a good CRC, and a copy that does not parse (or fits its header badly) is
 * removed and the file decoded again. GRAFT_NO_CACHE turns it off. */
#include "io.h"

#include <zlib.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* No IDX data set Graft trains on comes near this; anything larger is corruption or an attack. */
#define IDX_MAX_DATA ((uint64_t)2 << 30)
/* Compressed files decoding to less than this are not worth a decoded copy. */
#define IDX_DECODED_MIN ((uint64_t)1 << 20)

void idx_free(idx_array *a)
{
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

static int type_size(int type, const char **name)
{
    switch (type) {
    case 0x08: *name = "u8"; return 1;
    case 0x09: *name = "i8"; return 1;
    case 0x0B: *name = "i16"; return 2;
    case 0x0C: *name = "i32"; return 4;
    case 0x0D: *name = "f32"; return 4;
    case 0x0E: *name = "f64"; return 8;
    }
    *name = "?";
    return 0;
}

/* A source of decompressed bytes: either the raw buffer or a zlib stream over it. */
typedef struct source {
    const char *name;
    const unsigned char *raw;
    size_t len, pos; /* raw: read position */
    bool gz;
    z_stream zs;
    bool ended; /* gz: the last member ended */
    int tee;    /* gz: every decompressed byte is also written here (the decoded copy), or -1 */
    bool tee_failed;
} source;

static void tee_write(source *s, const unsigned char *p, size_t n)
{
    while (s->tee >= 0 && !s->tee_failed && n > 0) {
        ssize_t w = write(s->tee, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) s->tee_failed = true; /* a full disk: no copy this time, the read goes on */
        else p += w, n -= (size_t)w;
    }
}

/* Read up to n bytes into dst; *got says how many arrived (fewer only at the end of the data). */
static graft_status source_read(source *s, unsigned char *dst, size_t n, size_t *got,
                                graft_error *e)
{
    *got = 0;
    if (!s->gz) {
        size_t k = s->len - s->pos < n ? s->len - s->pos : n;
        memcpy(dst, s->raw + s->pos, k);
        s->pos += k;
        *got = k;
        return GRAFT_OK;
    }
    while (*got < n && !s->ended) {
        /* zlib counts in uInt; feed large requests in pieces */
        size_t want = n - *got;
        s->zs.next_out = dst + *got;
        s->zs.avail_out = want > (1u << 30) ? (1u << 30) : (uInt)want;
        uInt before = s->zs.avail_out;
        int r = inflate(&s->zs, Z_NO_FLUSH);
        tee_write(s, dst + *got, before - s->zs.avail_out);
        *got += before - s->zs.avail_out;
        if (r == Z_STREAM_END) {
            /* concatenated gzip members are one stream (gzip -c a b > c) */
            if (s->zs.avail_in >= 2 && s->zs.next_in[0] == 0x1f && s->zs.next_in[1] == 0x8b) {
                if (inflateReset(&s->zs) != Z_OK)
                    return err_set(e, GRAFT_STATUS_INTERNAL, "%s: inflateReset failed", s->name);
                continue;
            }
            if (s->zs.avail_in != 0)
                return err_set(e, GRAFT_STATUS_BAD_DATA,
                               "%s: %u bytes of garbage after the end of the gzip stream", s->name,
                               s->zs.avail_in);
            s->ended = true;
        } else if (r == Z_BUF_ERROR && s->zs.avail_in == 0) {
            return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: the gzip stream is truncated", s->name);
        } else if (r == Z_DATA_ERROR || r == Z_NEED_DICT) {
            return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: corrupt gzip data: %s", s->name,
                           s->zs.msg ? s->zs.msg : "invalid stream");
        } else if (r == Z_MEM_ERROR) {
            return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory inflating", s->name);
        } else if (r != Z_OK) {
            return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: gzip error %d", s->name, r);
        }
    }
    return GRAFT_OK;
}

/* What idx_parse stores: every row, the header only, or the rows keep[] marks. */
typedef enum idx_mode { IDX_ALL, IDX_HEADER, IDX_KEEP } idx_mode;

/* Stream the data of the IDX file, storing the rows (entries along the first dimension) that
 * keep[] marks, packed in file order; the others are inflated and thrown away. Storage grows with
 * what arrives, as in the full read. */
static graft_status read_kept_rows(source *src, const char *name, uint64_t rows, uint64_t row_bytes,
                                   const unsigned char *keep, idx_array *out, graft_error *e)
{
    uint64_t kept = 0;
    for (uint64_t r = 0; r < rows; r++) kept += keep[r] != 0;
    uint64_t want = kept * row_bytes;
    size_t cap = want < (64u << 10) ? (size_t)want : (64u << 10), at = 0;
    const size_t skip_size = 256u << 10;
    unsigned char *skip = malloc(skip_size);
    graft_status s = GRAFT_OK;
    out->data = malloc(cap ? cap : 1);
    if (!out->data || !skip) {
        free(skip);
        return err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", name);
    }
    for (uint64_t r = 0; r < rows && !s;) {
        size_t got;
        if (keep[r]) {
            while (at + row_bytes > cap) {
                size_t ncap = (uint64_t)cap * 2 > want ? (size_t)want : cap * 2;
                void *p2 = realloc(out->data, ncap);
                if (!p2) {
                    s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory", name);
                    break;
                }
                out->data = p2;
                cap = ncap;
            }
            if (s || (s = source_read(src, (unsigned char *)out->data + at, row_bytes, &got, e)))
                break;
            if (got < row_bytes) goto short_data;
            at += row_bytes;
            r++;
            continue;
        }
        /* a run of rows nobody uses: inflate it in large pieces and drop it (raw: step over) */
        uint64_t run = 0;
        while (r + run < rows && !keep[r + run]) run++;
        if (!src->gz) {
            if (src->len - src->pos < run * row_bytes) goto short_data;
            src->pos += (size_t)(run * row_bytes);
            r += run;
            continue;
        }
        for (uint64_t left = run * row_bytes; left && !s;) {
            size_t n = left < skip_size ? (size_t)left : skip_size;
            if ((s = source_read(src, skip, n, &got, e))) break;
            if (got < n) goto short_data;
            left -= n;
        }
        r += run;
        continue;
    short_data:
        s = err_set(e, GRAFT_STATUS_BAD_DATA,
                    "%s: the data ends before row %llu of %llu (%llu bytes per row)", name,
                    (unsigned long long)r + 1, (unsigned long long)rows,
                    (unsigned long long)row_bytes);
    }
    free(skip);
    if (!s) out->rows = (size_t)kept;
    return s;
}

/* tee: a file that receives the whole decompressed stream of a gzip file (or -1); the caller
 * keeps it only when this returns GRAFT_OK and *teed says every byte went there. */
static graft_status idx_parse(const char *name, const void *data, size_t len, idx_mode mode,
                              const unsigned char *keep, size_t nkeep, int tee, bool *teed,
                              idx_array *out, graft_error *e)
{
    memset(out, 0, sizeof *out);
    if (teed) *teed = false;
    const unsigned char *p = data;
    source src = {.name = name, .raw = p, .len = len, .tee = -1};
    graft_status s = GRAFT_OK;
    const char *what = "file";
    if (len >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
        src.gz = true;
        what = "decompressed stream";
        src.zs.next_in = (unsigned char *)p;
        if (len > UINT32_MAX)
            return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: compressed file too large", name);
        src.zs.avail_in = (uInt)len;
        if (inflateInit2(&src.zs, 16 + MAX_WBITS) != Z_OK) /* 16: expect a gzip wrapper */
            return err_set(e, GRAFT_STATUS_NOMEM, "%s: cannot initialise zlib", name);
        src.tee = mode == IDX_HEADER ? -1 : tee;
    }
    unsigned char hdr[4 + 4 * 4];
    size_t got = 0;
    if ((s = source_read(&src, hdr, 4, &got, e))) goto error;
    if (got < 4) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA,
                    "%s: %zu bytes is too short for an IDX file (the magic takes 4)", name, got);
        goto error;
    }
    const char *tname;
    int size = type_size(hdr[2], &tname), rank = hdr[3];
    if (hdr[0] != 0 || hdr[1] != 0) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA,
                    "%s: not an IDX file: magic %02x %02x %02x %02x does not start with 00 00",
                    name, hdr[0], hdr[1], hdr[2], hdr[3]);
        goto error;
    }
    if (!size) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA,
                    "%s: unknown IDX element type 0x%02x (expected 08 u8, 09 i8, 0B i16, 0C i32, "
                    "0D f32 or 0E f64)",
                    name, hdr[2]);
        goto error;
    }
    if (rank < 1 || rank > 4) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: IDX rank %d is outside 1..4", name, rank);
        goto error;
    }
    if ((s = source_read(&src, hdr + 4, 4 * (size_t)rank, &got, e))) goto error;
    if (got < 4 * (size_t)rank) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA,
                    "%s: truncated IDX header: %d dimensions need %d bytes, found %zu", name, rank,
                    4 * rank, got);
        goto error;
    }
    uint64_t count = 1;
    char dims[64] = "";
    for (int i = 0; i < rank; i++) {
        const unsigned char *d = hdr + 4 + 4 * i;
        uint64_t v = (uint64_t)d[0] << 24 | (uint64_t)d[1] << 16 | (uint64_t)d[2] << 8 | d[3];
        out->shape[i] = (int64_t)v;
        count = v == 0 ? 0 : count > IDX_MAX_DATA / v ? IDX_MAX_DATA + 1 : count * v;
        size_t dl = strlen(dims);
        snprintf(dims + dl, sizeof dims - dl, "%s%llu", i ? "x" : "", (unsigned long long)v);
    }
    uint64_t bytes = count * (uint64_t)size;
    if (count > IDX_MAX_DATA || bytes > IDX_MAX_DATA) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA,
                    "%s: dimensions %s %s imply more than the %llu-byte limit", name, dims, tname,
                    (unsigned long long)IDX_MAX_DATA);
        goto error;
    }
    /* Raw files: check the length before allocating anything. */
    if (!src.gz && src.len - src.pos != bytes) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA,
                    "%s: %s %s needs %llu bytes of data, the file holds %zu", name, dims, tname,
                    (unsigned long long)bytes, src.len - src.pos);
        goto error;
    }
    if (mode == IDX_HEADER) {
        if (src.gz) inflateEnd(&src.zs);
        out->type = hdr[2];
        out->rank = rank;
        return GRAFT_OK;
    }
    if (mode == IDX_KEEP) {
        if ((uint64_t)out->shape[0] != nkeep) {
            s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: %llu rows, expected %zu", name,
                        (unsigned long long)out->shape[0], nkeep);
            goto error;
        }
        uint64_t row_bytes = out->shape[0] ? bytes / (uint64_t)out->shape[0] : 0;
        if ((s = read_kept_rows(&src, name, (uint64_t)out->shape[0], row_bytes, keep, out, e)))
            goto error;
        got = bytes;
        count = (uint64_t)out->rows * (row_bytes / (uint64_t)size);
        goto check_end;
    }
    /* Raw data is all there (checked above). Inflated data grows with what actually arrives,
     * never past what the header implies: a 40-byte file claiming 2 GiB costs 64 KiB, not 2 GiB. */
    size_t cap = src.gz ? (bytes < (64u << 10) ? (size_t)bytes : (64u << 10)) : (size_t)bytes;
    out->data = malloc(cap ? cap : 1);
    got = 0;
    for (;;) {
        if (!out->data) {
            s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory for %zu bytes", name, cap);
            goto error;
        }
        size_t more = 0;
        if ((s = source_read(&src, (unsigned char *)out->data + got, cap - got, &more, e))) {
            got += more;
            if (strstr(e ? e->message : "", "truncated"))
                err_set(e, GRAFT_STATUS_BAD_DATA,
                        "%s: the gzip stream is truncated: %s %s needs %llu bytes of data, found "
                        "%zu",
                        name, dims, tname, (unsigned long long)bytes, got);
            goto error;
        }
        got += more;
        if (got < cap || cap == bytes) break;
        size_t ncap = cap * 2 > bytes ? (size_t)bytes : cap * 2;
        void *p2 = realloc(out->data, ncap);
        if (!p2) {
            s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory for %zu bytes", name, ncap);
            goto error;
        }
        out->data = p2;
        cap = ncap;
    }
    if (got < bytes) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: %s %s needs %llu bytes of data, the %s holds %zu",
                    name, dims, tname, (unsigned long long)bytes, what, got);
        goto error;
    }
    out->rows = (size_t)out->shape[0];
check_end:
    if (src.gz) {
        /* More output than the header implies means a bad header (or a bomb): refuse it. */
        unsigned char extra;
        if ((s = source_read(&src, &extra, 1, &got, e))) goto error;
        if (got) {
            s = err_set(e, GRAFT_STATUS_BAD_DATA,
                        "%s: the decompressed stream holds more than the %llu bytes of data that "
                        "%s %s needs",
                        name, (unsigned long long)bytes, dims, tname);
            goto error;
        }
        inflateEnd(&src.zs);
        if (teed) *teed = src.tee >= 0 && !src.tee_failed;
    }
    /* big-endian to host order */
    unsigned char *b = out->data;
    for (uint64_t i = 0; i < count && size > 1; i++) {
        unsigned char *q = b + i * (uint64_t)size;
        for (int k = 0; k < size / 2; k++) {
            unsigned char t = q[k];
            q[k] = q[size - 1 - k];
            q[size - 1 - k] = t;
        }
    }
    out->type = hdr[2];
    out->rank = rank;
    out->count = (size_t)count;
    return GRAFT_OK;
error:
    if (src.gz) inflateEnd(&src.zs);
    idx_free(out);
    return s;
}

graft_status idx_read_mem(const char *name, const void *data, size_t len, idx_array *out,
                          graft_error *e)
{
    return idx_parse(name, data, len, IDX_ALL, NULL, 0, -1, NULL, out, e);
}

/* The decoded copy's path for the gzip file at path (false: not gzip, smaller decoded than
 * IDX_DECODED_MIN, no cache folder, or the file cannot be identified). The key: path, device,
 * inode, size, mtime and the gzip trailer. */
static bool decoded_path(const char *path, char *out, size_t n)
{
    char dir[2048], real[PATH_MAX];
    struct stat st;
    if (!fs_cache_dir(NULL, dir, sizeof dir) || !realpath(path, real) || stat(real, &st) != 0 ||
        !S_ISREG(st.st_mode) || st.st_size < 18)
        return false;
    unsigned char magic[2], trailer[8];
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b &&
              pread(fd, trailer, sizeof trailer, st.st_size - 8) == (ssize_t)sizeof trailer;
    close(fd);
    if (!ok) return false; /* not gzip: read as it is */
    /* ISIZE, the trailer's last 4 bytes: the data's length (mod 2^32, exact below IDX_MAX_DATA).
     * A small file gets no copy, and no copy is looked for or written aside for it. */
    uint32_t isize = (uint32_t)trailer[4] | (uint32_t)trailer[5] << 8 |
                     (uint32_t)trailer[6] << 16 | (uint32_t)trailer[7] << 24;
    if (isize < IDX_DECODED_MIN) return false;
    sha256_ctx h;
    sha256_init(&h);
    static const char kind[] = "graft decoded idx 1";
    sha256_update(&h, kind, sizeof kind);
    sha256_update(&h, real, strlen(real) + 1);
    int64_t id[6] = {(int64_t)st.st_dev, (int64_t)st.st_ino, (int64_t)st.st_size,
                     (int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec,
                     (int64_t)st.st_ctim.tv_sec};
    sha256_update(&h, id, sizeof id);
    sha256_update(&h, trailer, sizeof trailer);
    uint8_t d[32];
    char hex[65];
    sha256_final(&h, d);
    hex_encode(d, 32, hex);
    return snprintf(out, n, "%s/data/%s.idx", dir, hex) < (int)n;
}

/* The decoded copy, mapped and parsed as a raw file (errors name the original); 1 done (*s its
 * result), 0 no usable copy (a bad one is removed). */
static int read_decoded(const char *path, const char *copy, idx_mode mode,
                        const unsigned char *keep, size_t nkeep, idx_array *out,
                        graft_status *s, graft_error *e)
{
    int fd = open(copy, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO there must not hang us */
    if (fd < 0) return 0;
    struct stat st;
    void *m = MAP_FAILED;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return 0;
    if (mode == IDX_KEEP) madvise(m, (size_t)st.st_size, MADV_RANDOM);
    graft_error mine = {0};
    *s = idx_parse(path, m, (size_t)st.st_size, mode, keep, nkeep, -1, NULL, out, &mine);
    munmap(m, (size_t)st.st_size);
    if (*s == GRAFT_STATUS_BAD_DATA) { /* the copy, not the file: decode the file again */
        unlink(copy);
        return 0;
    }
    if (*s) *e = mine;
    return 1;
}

static graft_status read_file(const char *path, idx_mode mode, const unsigned char *keep,
                              size_t nkeep, idx_array *out, graft_error *e)
{
    memset(out, 0, sizeof *out);
    char copy[2400], tmp[2500];
    bool cached = decoded_path(path, copy, sizeof copy);
    graft_status s;
    if (cached && read_decoded(path, copy, mode, keep, nkeep, out, &s, e)) return s;
    char *data = NULL;
    size_t len = 0;
    s = fs_read_file(path, (size_t)IDX_MAX_DATA + 64, &data, &len, e);
    if (s) return s;
    int tee = -1;
    if (cached && mode != IDX_HEADER) {
        char dir[2450];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", copy, (long)getpid());
        fs_dirname(copy, dir, sizeof dir);
        graft_error ignored = {0};
        if (fs_mkdir_p(dir, &ignored) == GRAFT_OK)
            tee = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    bool teed = false;
    s = idx_parse(path, data, len, mode, keep, nkeep, tee, &teed, out, e);
    free(data);
    if (tee >= 0) {
        /* the copy stays only whole: the stream ended with a good CRC, every byte written */
        if (close(tee) != 0 || s || !teed || rename(tmp, copy) != 0) unlink(tmp);
    }
    return s;
}

graft_status idx_read(const char *path, idx_array *out, graft_error *e)
{
    return read_file(path, IDX_ALL, NULL, 0, out, e);
}

graft_status idx_read_header(const char *path, idx_array *out, graft_error *e)
{
    return read_file(path, IDX_HEADER, NULL, 0, out, e);
}

graft_status idx_read_rows(const char *path, const unsigned char *keep, size_t nkeep,
                           idx_array *out, graft_error *e)
{
    return read_file(path, IDX_KEEP, keep, nkeep, out, e);
}
