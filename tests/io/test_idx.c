/* test_idx.c — the IDX reader: raw and gzip files of every element type converted from big-endian,
 * a table of bad files (magic, type, rank, truncation with expected/found byte counts, trailing
 * data, corrupt and truncated gzip, a decompression bomb); the header-only read and the read of
 * chosen rows (raw and gzip, i16 for the byte order) against the full read; the decoded copy of a
 * large gzip file in the cache folder (written whole, used, replaced when bad, stale or not a
 * regular file, never written for a corrupt stream, a small file or under GRAFT_NO_CACHE). */
#include "iotest.h"

#include <dirent.h>
#include <sys/stat.h>
#include <zlib.h>

static size_t make_idx(unsigned char *out, int type, int rank, const uint32_t *dims,
                       const void *data, size_t ndata)
{
    out[0] = out[1] = 0;
    out[2] = (unsigned char)type;
    out[3] = (unsigned char)rank;
    for (int i = 0; i < rank; i++)
        for (int k = 0; k < 4; k++) out[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
    size_t h = 4 + 4 * (size_t)rank;
    if (data)
        memcpy(out + h, data, ndata);
    else
        memset(out + h, 0, ndata);
    return h + ndata;
}

static size_t gzip_bytes(unsigned char *out, size_t cap, const void *in, size_t n)
{
    z_stream zs = {0};
    if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) exit(1);
    zs.next_in = (unsigned char *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) exit(1);
    size_t got = zs.total_out;
    deflateEnd(&zs);
    return got;
}

static unsigned char raw[1 << 20], gz[1 << 20];

static void test_types(void)
{
    uint32_t dims[] = {2, 3};
    /* big-endian encodings of the same six values */
    unsigned char be16[12], be32[24], bef[24], bed[48];
    int16_t v16[6] = {-300, 1, 2, 3, 4, 32767};
    int32_t v32[6] = {-70000, 1, 2, 3, 4, 2000000000};
    float vf[6] = {1.5f, -2.25f, 3, 4, 5, 1e-20f};
    double vd[6] = {0.1, -2, 3, 4, 5, 1e300};
    for (int i = 0; i < 6; i++) {
        uint16_t u = (uint16_t)v16[i];
        be16[2 * i] = (unsigned char)(u >> 8), be16[2 * i + 1] = (unsigned char)u;
        uint32_t w = (uint32_t)v32[i], fb;
        memcpy(&fb, &vf[i], 4);
        uint64_t db;
        memcpy(&db, &vd[i], 8);
        for (int k = 0; k < 4; k++) {
            be32[4 * i + k] = (unsigned char)(w >> (24 - 8 * k));
            bef[4 * i + k] = (unsigned char)(fb >> (24 - 8 * k));
        }
        for (int k = 0; k < 8; k++) bed[8 * i + k] = (unsigned char)(db >> (56 - 8 * k));
    }
    uint8_t u8[6] = {0, 1, 2, 128, 254, 255};
    int8_t i8[6] = {-128, -1, 0, 1, 2, 127};
    struct {
        int type;
        const void *be, *host;
        int size;
    } cases[] = {
        {0x08, u8, u8, 1},     {0x09, i8, i8, 1},     {0x0B, be16, v16, 2},
        {0x0C, be32, v32, 4},  {0x0D, bef, vf, 4},    {0x0E, bed, vd, 8},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        for (int zip = 0; zip < 2; zip++) {
            size_t n = make_idx(raw, cases[i].type, 2, dims, cases[i].be, 6 * (size_t)cases[i].size);
            const unsigned char *file = raw;
            if (zip) {
                n = gzip_bytes(gz, sizeof gz, raw, n);
                file = gz;
            }
            const char *path = tmp_path(zip ? "t.idx.gz" : "t.idx");
            write_bytes(path, file, n);
            idx_array a;
            graft_error e = {0};
            graft_status s = idx_read(path, &a, &e);
            CHECKF(s == GRAFT_OK, "type %02x zip %d: %s", cases[i].type, zip, e.message);
            if (s) continue;
            CHECK(a.type == cases[i].type && a.rank == 2 && a.shape[0] == 2 && a.shape[1] == 3);
            CHECK(a.count == 6);
            CHECKF(memcmp(a.data, cases[i].host, 6 * (size_t)cases[i].size) == 0,
                   "type %02x values", cases[i].type);
            idx_free(&a);
        }
    /* rank 4, and two concatenated gzip members (gzip -c a b) form one file */
    uint32_t d4[] = {2, 1, 2, 2};
    unsigned char px[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t n = make_idx(raw, 0x08, 4, d4, px, 8);
    static unsigned char two[256];
    size_t g1 = gzip_bytes(two, sizeof two, raw, 10);
    size_t g2 = gzip_bytes(two + g1, sizeof two - g1, raw + 10, n - 10);
    idx_array a;
    /* 196,608 bytes: the inflate buffer grows past its first 64 KiB */
    uint32_t dm[] = {3, 256, 256};
    static unsigned char pix[3 * 256 * 256];
    for (size_t i = 0; i < sizeof pix; i++) pix[i] = (unsigned char)(i * 7 + i / 251);
    size_t nm = make_idx(raw, 0x08, 3, dm, pix, sizeof pix);
    size_t gm = gzip_bytes(gz, sizeof gz, raw, nm);
    CHECK_OK(idx_read_mem("mid", gz, gm, &a, err));
    CHECK(a.count == sizeof pix && a.data && memcmp(a.data, pix, sizeof pix) == 0);
    idx_free(&a);
    CHECK_OK(idx_read_mem("multi", two, g1 + g2, &a, err));
    CHECK(a.rank == 4 && a.count == 8 && a.shape[3] == 2 && ((uint8_t *)a.data)[7] == 8);
    idx_free(&a);
}

static void test_bad(void)
{
    uint32_t d[] = {10, 3};
    graft_error e = {0};
    idx_array a;
    const char *path = tmp_path("bad.idx");
    size_t n;

#define BAD_RAW(label, bytes, len, frag)                                                           \
    do {                                                                                           \
        write_bytes(path, bytes, len);                                                             \
        CHECK_FAILS(idx_read(path, &a, &e), e, GRAFT_STATUS_BAD_DATA, frag, label);                \
        CHECKF(strstr(e.message, path) != NULL, "%s names the file: %s", label, e.message);        \
        CHECK(a.data == NULL);                                                                     \
        /* the same bytes gzipped give the same verdict (with the stream named as such) */         \
        size_t g_ = gzip_bytes(gz, sizeof gz, bytes, len);                                         \
        CHECK_FAILS(idx_read_mem("z", gz, g_, &a, &e), e, GRAFT_STATUS_BAD_DATA, "z: ",            \
                    label " (gz)");                                                                \
    } while (0)

    BAD_RAW("short", "\0\0\x08", 3, "3 bytes is too short for an IDX file");
    BAD_RAW("magic", "\x01\0\x08\x01\0\0\0\0", 8, "not an IDX file: magic 01 00 08 01");
    BAD_RAW("type", "\0\0\x07\x01\0\0\0\0", 8, "unknown IDX element type 0x07");
    BAD_RAW("rank 0", "\0\0\x08\0", 4, "IDX rank 0 is outside 1..4");
    BAD_RAW("rank 5", "\0\0\x08\x05\0\0\0\0", 8, "IDX rank 5 is outside 1..4");
    BAD_RAW("short dims", "\0\0\x08\x03\0\0\0\x01\0\0", 10,
            "truncated IDX header: 3 dimensions need 12 bytes, found 6");
    n = make_idx(raw, 0x08, 2, d, NULL, 29);
    BAD_RAW("truncated", raw, n, "10x3 u8 needs 30 bytes of data");
    write_bytes(path, raw, n);
    CHECK_FAILS(idx_read(path, &a, &e), e, 0, "10x3 u8 needs 30 bytes of data, the file holds 29",
                "truncated counts");
    n = make_idx(raw, 0x0C, 2, d, NULL, 100);
    write_bytes(path, raw, n);
    CHECK_FAILS(idx_read(path, &a, &e), e, 0, "10x3 i32 needs 120 bytes of data, the file holds 100",
                "truncated i32");
    size_t g = gzip_bytes(gz, sizeof gz, raw, n);
    CHECK_FAILS(idx_read_mem("z", gz, g, &a, &e), e, 0,
                "10x3 i32 needs 120 bytes of data, the decompressed stream holds 100",
                "truncated gz counts");
    n = make_idx(raw, 0x08, 2, d, NULL, 31);
    write_bytes(path, raw, n);
    CHECK_FAILS(idx_read(path, &a, &e), e, 0, "needs 30 bytes of data, the file holds 31", "long");
    g = gzip_bytes(gz, sizeof gz, raw, n);
    CHECK_FAILS(idx_read_mem("z", gz, g, &a, &e), e, 0,
                "the decompressed stream holds more than the 30 bytes", "long gz");

    /* gzip damage: cut short, flipped bytes, trailing garbage */
    n = make_idx(raw, 0x08, 2, d, NULL, 30);
    g = gzip_bytes(gz, sizeof gz, raw, n);
    CHECK_FAILS(idx_read_mem("z", gz, g - 12, &a, &e), e, GRAFT_STATUS_BAD_DATA,
                "gzip stream is truncated", "gz cut");
    unsigned char dam[256];
    memcpy(dam, gz, g);
    for (size_t i = 10; i < g - 8; i++) dam[i] ^= 0x5a;
    CHECK_FAILS(idx_read_mem("z", dam, g, &a, &e), e, GRAFT_STATUS_BAD_DATA, "z: ", "gz corrupt");
    memcpy(dam, gz, g);
    memcpy(dam + g, "junk", 4);
    CHECK_FAILS(idx_read_mem("z", dam, g + 4, &a, &e), e, GRAFT_STATUS_BAD_DATA,
                "4 bytes of garbage after the end of the gzip stream", "gz trailing");

    /* A bomb: the header claims 2 bytes, the stream inflates to 64 MiB. Refused after 3 bytes of
     * output, without ever allocating the rest. */
    size_t big = 64u << 20;
    unsigned char *bomb = calloc(1, big);
    uint32_t one[] = {2};
    make_idx(bomb, 0x08, 1, one, NULL, 2);
    static unsigned char gzb[1 << 20];
    g = gzip_bytes(gzb, sizeof gzb, bomb, big);
    free(bomb);
    double t0 = now_seconds();
    CHECK_FAILS(idx_read_mem("bomb", gzb, g, &a, &e), e, GRAFT_STATUS_BAD_DATA,
                "holds more than the 2 bytes", "bomb");
    CHECK(now_seconds() - t0 < 1.0);
    /* a tiny gzip file whose header claims 1 GiB: refused after inflating what is there, with
     * memory growing only with the data that arrives */
    uint32_t gig[] = {1024, 1024, 1024};
    n = make_idx(raw, 0x08, 3, gig, NULL, 10);
    g = gzip_bytes(gz, sizeof gz, raw, n);
    t0 = now_seconds();
    CHECK_FAILS(idx_read_mem("claim", gz, g, &a, &e), e, GRAFT_STATUS_BAD_DATA,
                "1024x1024x1024 u8 needs 1073741824 bytes of data, the decompressed stream holds 10",
                "claim");
    CHECK(now_seconds() - t0 < 0.1);
    /* dimensions past the 2 GiB cap are refused before any allocation */
    uint32_t huge[] = {60000, 1000, 1000};
    n = make_idx(raw, 0x08, 3, huge, NULL, 0);
    write_bytes(path, raw, n);
    CHECK_FAILS(idx_read(path, &a, &e), e, GRAFT_STATUS_BAD_DATA,
                "dimensions 60000x1000x1000 u8 imply more than the 2147483648-byte limit", "cap");
    uint32_t huge2[] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    n = make_idx(raw, 0x0E, 4, huge2, NULL, 0);
    CHECK_FAILS(idx_read_mem("m", raw, n, &a, &e), e, GRAFT_STATUS_BAD_DATA, "limit", "cap 4d");
    CHECK_FAILS(idx_read(tmp_path("none.idx"), &a, &e), e, GRAFT_STATUS_IO, "cannot open",
                "missing");
    /* an empty dimension is a valid (empty) array */
    uint32_t zero[] = {0, 28, 28};
    n = make_idx(raw, 0x08, 3, zero, NULL, 0);
    CHECK_OK(idx_read_mem("m", raw, n, &a, err));
    CHECK(a.count == 0 && a.shape[1] == 28);
    idx_free(&a);
}

static void test_rows(void)
{
    /* 300 rows of 5x7 i16: big enough that skipped runs span several inflate calls */
    enum { R = 300, P = 35 };
    uint32_t d[] = {R, 5, 7};
    static unsigned char be[R * P * 2];
    for (int i = 0; i < R * P; i++) {
        uint16_t v = (uint16_t)(i * 37 + i / 11);
        be[2 * i] = (unsigned char)(v >> 8), be[2 * i + 1] = (unsigned char)v;
    }
    size_t n = make_idx(raw, 0x0B, 3, d, be, sizeof be);
    size_t g = gzip_bytes(gz, sizeof gz, raw, n);
    unsigned char keep[R];
    for (int i = 0; i < R; i++) keep[i] = (i % 7 == 3) || (i > 200 && i < 205) || i == R - 1;
    keep[0] = 1;
    for (int z = 0; z < 2; z++) {
        const char *path = tmp_path(z ? "rows.idx.gz" : "rows.idx");
        write_bytes(path, z ? gz : raw, z ? g : n);
        idx_array all, h, part;
        CHECK_OK(idx_read(path, &all, err));
        CHECK_OK(idx_read_header(path, &h, err));
        CHECK(h.data == NULL && h.type == 0x0B && h.rank == 3 && h.shape[0] == R && h.shape[2] == 7);
        CHECK_OK(idx_read_rows(path, keep, R, &part, err));
        size_t k = 0;
        int same = 1;
        for (int i = 0; i < R; i++) {
            if (!keep[i]) continue;
            same &= memcmp((int16_t *)part.data + k * P, (int16_t *)all.data + (size_t)i * P,
                           P * sizeof(int16_t)) == 0;
            k++;
        }
        CHECKF(part.rows == k && part.count == k * P && same, "%s: %zu rows", path, part.rows);
        idx_free(&part);
        graft_error e = {0};
        CHECK_FAILS(idx_read_rows(path, keep, R - 1, &part, &e), e, GRAFT_STATUS_BAD_DATA,
                    "300 rows, expected 299", "row count");
        /* a truncated file still fails when the missing rows are not wanted */
        write_bytes(path, z ? gz : raw, z ? g - 20 : n - 100);
        unsigned char first[R] = {1};
        CHECK(idx_read_rows(path, first, R, &part, &e) == GRAFT_STATUS_BAD_DATA);
        idx_free(&all);
    }
}

/* Files in dir (0 when it does not exist); name gets the path of one that is not skip. */
static int count_files(const char *dir, const char *skip, char *name, size_t n)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int k = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (name && (!skip || strcmp(p, skip) != 0)) snprintf(name, n, "%s", p);
        k++;
    }
    closedir(d);
    return k;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Rows 1, 2 and the last of a file of R rows of P bytes each (value: row * 7 + column + salt). */
static int rows_are(const idx_array *a, int R, int P, int salt)
{
    const int want[] = {1, 2, R - 1};
    if (a->rows != 3) return 0;
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < P; j++)
            if (((unsigned char *)a->data)[(size_t)k * P + j] !=
                (unsigned char)(want[k] * 7 + j + salt))
                return 0;
    return 1;
}

static void test_decoded(void)
{
    enum { R = 1100, P = 1024 }; /* 1.1 MB decoded: past IDX_DECODED_MIN */
    static unsigned char data[R * P], big[R * P + 64], bgz[R * P + 4096];
    const char *cache = tmp_path("cache"), *copies = tmp_path("cache/data");
    setenv("GRAFT_CACHE_DIR", cache, 1);
    unsetenv("GRAFT_NO_CACHE");
    uint32_t d[] = {R, P};
    unsigned char keep[R] = {0};
    keep[1] = keep[2] = keep[R - 1] = 1;
    const char *path = tmp_path("big.idx.gz");
    char old[1024] = ""; /* the first copy */
    for (int salt = 0; salt < 2; salt++) {
        for (int i = 0; i < R * P; i++) data[i] = (unsigned char)((i / P) * 7 + i % P + salt);
        size_t n = make_idx(big, 0x08, 2, d, data, sizeof data);
        size_t g = gzip_bytes(bgz, sizeof bgz, big, n);
        write_bytes(path, bgz, g); /* salt 1: the same path and size class, new content */
        idx_array a = {0};
        CHECK_OK(idx_read_rows(path, keep, R, &a, err));
        CHECKF(rows_are(&a, R, P, salt), "decoded rows (salt %d)", salt);
        idx_free(&a);
        char copy[1024] = "";
        int nf = count_files(copies, old, copy, sizeof copy); /* the copy of this content */
        CHECKF(nf == salt + 1 && file_size(copy) == (long)n, "%d copies, this one %ld bytes (want "
               "%zu)", nf, file_size(copy), n);
        if (salt == 0) snprintf(old, sizeof old, "%s", copy);
        /* the second read comes from the copy: the same rows, and (white box) a byte changed in
         * the copy shows up, which proves it was read */
        CHECK_OK(idx_read_rows(path, keep, R, &a, err));
        CHECKF(rows_are(&a, R, P, salt), "rows from the copy (salt %d)", salt);
        idx_free(&a);
        FILE *f = fopen(copy, "r+b");
        CHECK(f != NULL);
        if (!f) return;
        fseek(f, 12 + P, SEEK_SET); /* past the 12-byte header: row 1, column 0 */
        fputc(0xEE, f);
        fclose(f);
        CHECK_OK(idx_read_rows(path, keep, R, &a, err));
        CHECK(a.rows == 3 && ((unsigned char *)a.data)[0] == 0xEE);
        idx_free(&a);
        idx_array h = {0};
        CHECK_OK(idx_read_header(path, &h, err));
        CHECK(h.data == NULL && h.rank == 2 && h.shape[0] == R && h.shape[1] == P);
        /* a copy cut short is refused, removed and written again from the file */
        CHECK(truncate(copy, 5000) == 0);
        CHECK_OK(idx_read_rows(path, keep, R, &a, err));
        CHECKF(rows_are(&a, R, P, salt), "rows after a short copy (salt %d)", salt);
        idx_free(&a);
        nf = count_files(copies, NULL, NULL, 0);
        CHECKF(nf == salt + 1 && file_size(copy) == (long)n, "rewritten copy: %d files, %ld bytes",
               nf, file_size(copy));
        /* a FIFO where the copy goes is not opened for reading (it would block): it is replaced */
        CHECK(unlink(copy) == 0 && mkfifo(copy, 0644) == 0);
        CHECK_OK(idx_read_rows(path, keep, R, &a, err));
        CHECKF(rows_are(&a, R, P, salt), "rows with a FIFO for a copy (salt %d)", salt);
        idx_free(&a);
        CHECKF(file_size(copy) == (long)n, "the FIFO replaced: %ld bytes", file_size(copy));
        if (salt == 0) {
            /* a corrupt stream of the same file: the error, and no copy or leftover for it */
            size_t mid = g / 2;
            bgz[mid] ^= 0x55;
            const char *bad = tmp_path("bad.idx.gz");
            write_bytes(bad, bgz, g);
            graft_error e = {0};
            CHECK(idx_read_rows(bad, keep, R, &a, &e) == GRAFT_STATUS_BAD_DATA);
            CHECKF(count_files(copies, NULL, NULL, 0) == 1, "%d files after a corrupt stream",
                   count_files(copies, NULL, NULL, 0));
            bgz[mid] ^= 0x55;
        }
    }
    /* GRAFT_NO_CACHE: neither read nor written */
    const char *other = tmp_path("other.idx.gz");
    size_t n = make_idx(big, 0x08, 2, d, data, sizeof data);
    write_bytes(other, bgz, gzip_bytes(bgz, sizeof bgz, big, n));
    setenv("GRAFT_NO_CACHE", "1", 1);
    idx_array a = {0};
    CHECK_OK(idx_read_rows(other, keep, R, &a, err));
    CHECK(rows_are(&a, R, P, 1));
    idx_free(&a);
    CHECK(count_files(copies, NULL, NULL, 0) == 2);
    unsetenv("GRAFT_NO_CACHE");
    /* a small file gets no copy */
    uint32_t ds[] = {10, 10};
    n = make_idx(raw, 0x08, 2, ds, NULL, 100);
    const char *small = tmp_path("small.idx.gz");
    write_bytes(small, gz, gzip_bytes(gz, sizeof gz, raw, n));
    CHECK_OK(idx_read(small, &a, err));
    idx_free(&a);
    CHECK(count_files(copies, NULL, NULL, 0) == 2);
}

int main(void)
{
    test_types();
    test_bad();
    test_rows();
    test_decoded();
    rm_tmp_dir();
    return test_finish("test_idx");
}
