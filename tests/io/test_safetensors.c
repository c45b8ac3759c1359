/* test_safetensors.c — the safetensors reader and writer: every validation path from a table of
 * crafted headers (through a file and from memory), exact dtype conversion (all 65536 halves
 * against an independent formula), and write → read round trips with metadata. */
#include "iotest.h"

#include <math.h>

/* 8-byte little-endian length + header + ndata zero bytes of data (or explicit data). */
static size_t make_st(unsigned char *out, const char *hdr, const void *data, size_t ndata)
{
    uint64_t n = strlen(hdr);
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)(n >> (8 * i));
    memcpy(out + 8, hdr, n);
    if (data)
        memcpy(out + 8 + n, data, ndata);
    else
        memset(out + 8 + n, 0, ndata);
    return 8 + n + ndata;
}

static const struct bad_case {
    const char *label, *header;
    size_t ndata;
    const char *expect; /* '|'-separated fragments */
} bad[] = {
    {"bad json", "{\"w\": {\"dtype\": \"F32\",", 0, "header is not valid JSON"},
    {"not an object", "[1, 2, 3]", 0, "header must be a JSON object"},
    {"garbage after json", "{} x", 0, "not valid JSON"},
    {"entry not object", "{\"w\": 3}", 0, "tensor \"w\"|entry must be an object"},
    {"no dtype", "{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
     "tensor \"w\"|missing \"dtype\""},
    {"no shape", "{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4,
     "tensor \"w\"|missing \"shape\""},
    {"no offsets", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4,
     "tensor \"w\"|missing \"data_offsets\""},
    {"dtype not string", "{\"w\": {\"dtype\": 32, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
     "tensor \"w\"|dtype must be a string"},
    {"unknown dtype", "{\"w\": {\"dtype\": \"F8_E4M3\", \"shape\": [1], \"data_offsets\": [0, 1]}}",
     1, "tensor \"w\"|unknown dtype \"F8_E4M3\""},
    {"shape not list", "{\"w\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}}", 16,
     "tensor \"w\"|shape must be a list"},
    {"negative shape", "{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4,
     "tensor \"w\"|shape[0] is not a non-negative integer"},
    {"real shape", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 1.5], \"data_offsets\": [0, 12]}}",
     12, "tensor \"w\"|shape[1] is not a non-negative integer"},
    {"string shape", "{\"w\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}",
     8, "shape[0] is not a non-negative integer"},
    {"rank 9",
     "{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4,
     "tensor \"w\"|rank 9"},
    {"huge shape",
     "{\"w\": {\"dtype\": \"F64\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 8]}}",
     8, "tensor \"w\"|absurdly large"},
    {"offsets not pair", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4,
     "tensor \"w\"|data_offsets must be a list [begin, end]"},
    {"negative offset", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}",
     4, "tensor \"w\"|non-negative integers"},
    {"begin after end", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}",
     8, "tensor \"w\"|begin 8 is after end 4"},
    {"end past data", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4,
     "tensor \"w\"|end 8 is past the end of the data section (4 bytes)"},
    {"size mismatch", "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8,
     "tensor \"w\"|need 12 bytes but data_offsets span 8"},
    {"f16 size mismatch",
     "{\"h\": {\"dtype\": \"F16\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}", 16,
     "tensor \"h\"|F16 need 8 bytes"},
    {"overlap",
     "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
     "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
     12, "tensor \"b\" (bytes 4..12) overlaps tensor \"a\" (bytes 0..8)"},
    {"same range",
     "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
     "\"b\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
     4, "overlaps"},
    {"duplicate name",
     "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
     "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
     8, "duplicate tensor name \"a\""},
    {"metadata not object", "{\"__metadata__\": \"x\"}", 0, "__metadata__ must be an object"},
    {"metadata value", "{\"__metadata__\": {\"epoch\": 3}}", 0,
     "__metadata__ value of \"epoch\" must be a string"},
};

static void test_bad_table(void)
{
    static unsigned char file[4096];
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        size_t n = make_st(file, bad[i].header, NULL, bad[i].ndata);
        const char *path = tmp_path("bad.safetensors");
        write_bytes(path, file, n);
        graft_error e = {0};
        st_file *f = (st_file *)1;
        CHECK_FAILS(st_open(path, &f, &e), e, GRAFT_STATUS_BAD_DATA, bad[i].expect, bad[i].label);
        CHECKF(strstr(e.message, path) != NULL, "%s: message names the file: %s", bad[i].label,
               e.message);
        CHECK(f == NULL);
        graft_error e2 = {0};
        f = (st_file *)1;
        CHECK_FAILS(st_open_mem("mem.safetensors", file, n, &f, &e2), e2, GRAFT_STATUS_BAD_DATA,
                    bad[i].expect, bad[i].label);
        CHECK(f == NULL);
    }

    /* length-prefix problems: too short, past the end, absurd */
    graft_error e = {0};
    st_file *f = NULL;
    const char *p = tmp_path("short.safetensors");
    write_bytes(p, "\x05\0\0\0", 4);
    CHECK_FAILS(st_open(p, &f, &e), e, GRAFT_STATUS_BAD_DATA, "4 bytes is too short", "short");
    write_bytes(p, "", 0);
    CHECK_FAILS(st_open(p, &f, &e), e, GRAFT_STATUS_BAD_DATA, "0 bytes is too short", "empty");
    unsigned char b[32] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(p, b, 10);
    CHECK_FAILS(st_open(p, &f, &e), e, GRAFT_STATUS_BAD_DATA,
                "header length 100 runs past the end of the file (10 bytes)", "past end");
    unsigned char big[16] = {0, 0, 0, 0, 1, 0, 0, 0, '{', '}'};
    write_bytes(p, big, 10);
    CHECK_FAILS(st_open(p, &f, &e), e, GRAFT_STATUS_BAD_DATA, "header length 4294967296 is absurd",
                "absurd");
    CHECK_FAILS(st_open_mem("m", big, 10, &f, &e), e, GRAFT_STATUS_BAD_DATA, "m: header length",
                "absurd mem");
    CHECK_FAILS(st_open(tmp_path("missing.safetensors"), &f, &e), e, GRAFT_STATUS_IO,
                "cannot open", "missing");
    CHECK_FAILS(st_open(tmp_dir(), &f, &e), e, GRAFT_STATUS_IO, "not a regular file", "directory");
}

/* An independent IEEE half formula to compare the bit-twiddling converter against. */
static double half_ref(uint16_t h)
{
    int s = h >> 15, ex = (h >> 10) & 31, m = h & 1023;
    double v;
    if (ex == 0)
        v = ldexp(m, -24);
    else if (ex == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(1024 + m, ex - 25);
    return s ? -v : v;
}

static void test_half_exhaustive(void)
{
    int mismatches = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float got = st_half_to_float((uint16_t)h);
        double want = half_ref((uint16_t)h);
        if (isnan(want) ? !isnan(got) : ((double)got != want || !signbit(got) != !signbit(want)))
            mismatches++;
    }
    CHECKF(mismatches == 0, "%d half values convert wrongly", mismatches);
    CHECK(st_half_to_float(0x0001) == ldexpf(1, -24));
    CHECK(st_half_to_float(0x03ff) == ldexpf(1023, -24));
    CHECK(st_half_to_float(0x7bff) == 65504.0f);
    CHECK(isinf(st_half_to_float(0xfc00)) && st_half_to_float(0xfc00) < 0);
    CHECK(isnan(st_half_to_float(0x7e00)));
    CHECK(st_half_to_float(0x8000) == 0 && signbit(st_half_to_float(0x8000)));
}

static void test_dtypes(void)
{
    /* one tensor per dtype, laid out by hand */
    unsigned char data[256];
    size_t at = 0;
    uint16_t f16[4] = {0x3c00, 0x0001, 0x7c00, 0xc500}; /* 1, 2^-24, inf, -5 */
    memcpy(data + at, f16, 8), at += 8;
    uint16_t bf16[3] = {0x3f80, 0xc000, 0x4049}; /* 1, -2, 3.140625 */
    memcpy(data + at, bf16, 6), at += 6;
    at += 2; /* a gap is allowed */
    double f64[2] = {0.1, -1e300};
    memcpy(data + at, f64, 16), at += 16;
    int64_t i64[2] = {-5, 1LL << 40};
    memcpy(data + at, i64, 16), at += 16;
    int32_t i32[2] = {-7, 100000};
    memcpy(data + at, i32, 8), at += 8;
    int16_t i16[2] = {-300, 300};
    memcpy(data + at, i16, 4), at += 4;
    int8_t i8[2] = {-128, 127};
    memcpy(data + at, i8, 2), at += 2;
    uint8_t u8[2] = {0, 255};
    memcpy(data + at, u8, 2), at += 2;
    uint8_t bo[3] = {0, 1, 7};
    memcpy(data + at, bo, 3), at += 3;
    const char *hdr =
        "{\"__metadata__\": {\"format\": \"pt\", \"epoch\": \"3\"},"
        "\"h\": {\"dtype\": \"F16\", \"shape\": [2, 2], \"data_offsets\": [0, 8]},"
        "\"b\": {\"dtype\": \"BF16\", \"shape\": [3], \"data_offsets\": [8, 14]},"
        "\"scalar\": {\"dtype\": \"BF16\", \"shape\": [], \"data_offsets\": [14, 16]},"
        "\"d\": {\"dtype\": \"F64\", \"shape\": [2], \"data_offsets\": [16, 32]},"
        "\"l\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [32, 48]},"
        "\"i\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [48, 56]},"
        "\"s\": {\"dtype\": \"I16\", \"shape\": [2], \"data_offsets\": [56, 60]},"
        "\"c\": {\"dtype\": \"I8\", \"shape\": [2], \"data_offsets\": [60, 62]},"
        "\"u\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [62, 64]},"
        "\"o\": {\"dtype\": \"BOOL\", \"shape\": [3], \"data_offsets\": [64, 67]},"
        "\"z\": {\"dtype\": \"F32\", \"shape\": [0, 5], \"data_offsets\": [67, 67]}}";
    uint16_t sc = 0xbf00; /* -0.5 */
    memcpy(data + 14, &sc, 2);
    static unsigned char file[4096];
    size_t n = make_st(file, hdr, data, at);
    const char *path = tmp_path("dtypes.safetensors");
    write_bytes(path, file, n);
    for (int mem = 0; mem < 2; mem++) {
        st_file *f = NULL;
        graft_error e = {0};
        graft_status s = mem ? st_open_mem("m", file, n, &f, &e) : st_open(path, &f, &e);
        CHECKF(s == GRAFT_OK, "open: %s", e.message);
        if (s) return;
        CHECK(f->ntensors == 11);
        CHECK(f->nmeta == 2);
        CHECK(st_meta(f, "epoch") && strcmp(st_meta(f, "epoch"), "3") == 0);
        CHECK(st_meta(f, "nope") == NULL);
        CHECK(st_find(f, "nope") == NULL);
        float out[8];
        const st_tensor *t = st_find(f, "h");
        CHECK(t && t->dtype == ST_F16 && t->rank == 2 && t->shape[0] == 2 && t->shape[1] == 2);
        CHECK_OK(st_read_f32(f, t, out, err));
        CHECK(out[0] == 1.0f && out[1] == ldexpf(1, -24) && isinf(out[2]) && out[3] == -5.0f);
        CHECK_OK(st_read_f32(f, st_find(f, "b"), out, err));
        CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 3.140625f);
        t = st_find(f, "scalar");
        CHECK(t && t->rank == 0 && st_tensor_count(t) == 1);
        CHECK_OK(st_read_f32(f, t, out, err));
        CHECK(out[0] == -0.5f);
        CHECK_OK(st_read_f32(f, st_find(f, "d"), out, err));
        CHECK(out[0] == (float)0.1 && isinf(out[1]) && out[1] < 0);
        CHECK_OK(st_read_f32(f, st_find(f, "l"), out, err));
        CHECK(out[0] == -5.0f && out[1] == 1099511627776.0f);
        CHECK_OK(st_read_f32(f, st_find(f, "i"), out, err));
        CHECK(out[0] == -7.0f && out[1] == 100000.0f);
        CHECK_OK(st_read_f32(f, st_find(f, "s"), out, err));
        CHECK(out[0] == -300.0f && out[1] == 300.0f);
        CHECK_OK(st_read_f32(f, st_find(f, "c"), out, err));
        CHECK(out[0] == -128.0f && out[1] == 127.0f);
        CHECK_OK(st_read_f32(f, st_find(f, "u"), out, err));
        CHECK(out[0] == 0.0f && out[1] == 255.0f);
        CHECK_OK(st_read_f32(f, st_find(f, "o"), out, err));
        CHECK(out[0] == 0.0f && out[1] == 1.0f && out[2] == 1.0f);
        t = st_find(f, "z");
        CHECK(t && st_tensor_count(t) == 0);
        CHECK_OK(st_read_f32(f, t, out, err));
        CHECK(strcmp(st_dtype_name(st_find(f, "o")->dtype), "BOOL") == 0);
        st_close(f);
    }
}

static void test_round_trip(void)
{
    float w[2 * 3 * 3 * 3], bias[2], big[1000];
    for (size_t i = 0; i < ARRAY_LEN(w); i++) w[i] = (float)i * 0.25f - 3.0f;
    bias[0] = -1.5f, bias[1] = 1e-30f;
    for (size_t i = 0; i < ARRAY_LEN(big); i++) big[i] = sinf((float)i);
    st_out_tensor t[] = {
        {"conv1.weight", 4, {2, 3, 3, 3}, w},
        {"conv1.bias", 1, {2}, bias},
        {"a.big", 2, {10, 100}, big},
        {"empty", 2, {0, 7}, NULL},
    };
    const char *meta[] = {"recipe", "ab\"c\\d", "epoch", "12"};
    const char *path = tmp_path("rt.safetensors");
    CHECK_OK(st_write(path, t, 4, meta, 2, err));
    CHECK(!fs_exists(tmp_path("rt.safetensors.tmp")));
    st_file *f = NULL;
    CHECK_OK(st_open(path, &f, err));
    if (!f) return;
    CHECK(f->ntensors == 4);
    CHECK(f->data_offset % 8 == 0);
    CHECK(f->file_size == f->data_offset + 4 * (54 + 2 + 1000));
    /* contiguous, in name order: a.big, conv1.bias, conv1.weight, empty */
    const st_tensor *a = st_find(f, "a.big"), *cb = st_find(f, "conv1.bias"),
                    *cw = st_find(f, "conv1.weight"), *em = st_find(f, "empty");
    CHECK(a && cb && cw && em);
    if (a && cb && cw && em) {
        CHECK(a->begin == 0 && a->end == 4000);
        CHECK(cb->begin == 4000 && cb->end == 4008);
        CHECK(cw->begin == 4008 && cw->end == 4008 + 216);
        CHECK(em->begin == em->end && em->rank == 2 && em->shape[1] == 7);
        CHECK(cw->rank == 4 && cw->shape[0] == 2 && cw->shape[3] == 3 && cw->dtype == ST_F32);
        float r[1000];
        CHECK_OK(st_read_f32(f, cw, r, err));
        CHECK(memcmp(r, w, sizeof w) == 0);
        CHECK_OK(st_read_f32(f, cb, r, err));
        CHECK(memcmp(r, bias, sizeof bias) == 0);
        CHECK_OK(st_read_f32(f, a, r, err));
        CHECK(memcmp(r, big, sizeof big) == 0);
    }
    CHECK(st_meta(f, "recipe") && strcmp(st_meta(f, "recipe"), "ab\"c\\d") == 0);
    CHECK(st_meta(f, "epoch") && strcmp(st_meta(f, "epoch"), "12") == 0);
    st_close(f);

    /* the header is padded with spaces, not NULs */
    char *raw = NULL;
    size_t len = 0;
    CHECK_OK(fs_read_file(path, 1 << 20, &raw, &len, err));
    if (raw) {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | (unsigned char)raw[i];
        CHECK(hl % 8 == 0 && raw[8] == '{');
        size_t k = 8 + hl;
        while (k > 8 && raw[k - 1] == ' ') k--;
        CHECK(raw[k - 1] == '}');
        free(raw);
    }

    /* the writer refuses nonsense instead of writing a file the reader rejects */
    graft_error e = {0};
    st_out_tensor dup[] = {{"x", 1, {1}, bias}, {"x", 1, {1}, bias}};
    CHECK_FAILS(st_write(tmp_path("dup.safetensors"), dup, 2, NULL, 0, &e), e, 0, "given twice",
                "dup");
    CHECK(!fs_exists(tmp_path("dup.safetensors")));
    st_out_tensor nodata[] = {{"x", 1, {3}, NULL}};
    CHECK_FAILS(st_write(tmp_path("nd.safetensors"), nodata, 1, NULL, 0, &e), e, 0, "no data",
                "no data");
    /* zero tensors, no metadata: still a valid file */
    CHECK_OK(st_write(path, NULL, 0, NULL, 0, err));
    CHECK_OK(st_open(path, &f, err));
    if (f) CHECK(f->ntensors == 0 && f->nmeta == 0);
    st_close(f);
}

int main(void)
{
    test_bad_table();
    test_half_exhaustive();
    test_dtypes();
    test_round_trip();
    rm_tmp_dir();
    return test_finish("test_safetensors");
}
