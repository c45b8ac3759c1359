/* test_npy.c — the NPY reader and writer: versions 1.0/2.0/3.0, every supported dtype, header
 * spelling variations (spaces, trailing commas, key order), a table of bad files, round trips;
 * the header-only read and the read of chosen rows against the full read. */
#include "iotest.h"

/* Build a .npy file: preamble of version major.0, the dict text, then ndata bytes of data. */
static size_t make_npy(unsigned char *out, int major, const char *dict, const void *data,
                       size_t ndata)
{
    size_t n = strlen(dict), pre = major == 1 ? 10 : 12;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) out[8 + i] = (unsigned char)(n >> (8 * i));
    memcpy(out + pre, dict, n);
    if (data)
        memcpy(out + pre + n, data, ndata);
    else
        memset(out + pre + n, 0, ndata);
    return pre + n + ndata;
}

static const struct bad_case {
    const char *label, *dict;
    size_t ndata;
    const char *expect;
} bad[] = {
    {"fortran", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", 24,
     "fortran_order arrays are not supported"},
    {"big endian", "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n", 8,
     "'>f4' is big-endian"},
    {"complex", "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }\n", 16,
     "unsupported dtype '<c8'"},
    {"float16", "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }\n", 4,
     "unsupported dtype '<f2'"},
    {"empty descr", "{'descr': '', 'fortran_order': False, 'shape': (2,), }\n", 4,
     "unsupported dtype ''"},
    {"structured", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }\n", 8,
     "structured (record) dtypes are not supported"},
    {"no shape", "{'descr': '<f4', 'fortran_order': False, }\n", 4, "header lacks 'shape'"},
    {"no descr", "{'fortran_order': False, 'shape': (1,)}\n", 4, "header lacks 'descr'"},
    {"no fortran", "{'descr': '<f4', 'shape': (1,)}\n", 4, "header lacks 'fortran_order'"},
    {"unknown key", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}\n", 4,
     "unexpected key 'x'"},
    {"negative dim", "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }\n", 4,
     "expected a non-negative integer at header byte 51"},
    {"bad tuple", "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }\n", 24,
     "expected ',' or ')' in the shape tuple"},
    {"no brace", "'descr': '<f4'\n", 4, "expected '{'"},
    {"unterminated", "{'descr': '<f4\n", 4, "closing quote"},
    {"bad bool", "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }\n", 4, "True or False"},
    {"after brace", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } x\n", 4,
     "the end of the header after '}'"},
    {"huge", "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 8,
     "absurdly large"},
    {"rank 9", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4,
     "rank above 8"},
    {"short data", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 20,
     "need 24 bytes of data but the file holds 20"},
    {"long data", "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n", 17,
     "need 16 bytes of data but the file holds 17"},
};

static void test_bad_table(void)
{
    static unsigned char file[4096];
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        size_t n = make_npy(file, 1, bad[i].dict, NULL, bad[i].ndata);
        const char *path = tmp_path("bad.npy");
        write_bytes(path, file, n);
        graft_error e = {0};
        npy_array a;
        CHECK_FAILS(npy_read(path, &a, &e), e, GRAFT_STATUS_BAD_DATA, bad[i].expect, bad[i].label);
        CHECKF(strstr(e.message, path) != NULL, "%s: names the file: %s", bad[i].label, e.message);
        CHECK(a.data == NULL);
        CHECK_FAILS(npy_read_mem("m.npy", file, n, &a, &e), e, GRAFT_STATUS_BAD_DATA,
                    bad[i].expect, bad[i].label);
    }
    graft_error e = {0};
    npy_array a;
    const char *path = tmp_path("x.npy");
    write_bytes(path, "PK\3\4 not npy", 12);
    CHECK_FAILS(npy_read(path, &a, &e), e, GRAFT_STATUS_BAD_DATA, "not a .npy file", "magic");
    write_bytes(path, "\x93NUMPY\x01", 7);
    CHECK_FAILS(npy_read(path, &a, &e), e, GRAFT_STATUS_BAD_DATA, "not a .npy file", "short");
    size_t n = make_npy(file, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 0, 4);
    file[6] = 4;
    CHECK_FAILS(npy_read_mem("v", file, n, &a, &e), e, GRAFT_STATUS_BAD_DATA,
                "version 4.0 is not supported", "v4");
    file[6] = 1, file[7] = 1;
    CHECK_FAILS(npy_read_mem("v", file, n, &a, &e), e, GRAFT_STATUS_BAD_DATA,
                "version 1.1 is not supported", "v1.1");
    file[7] = 0, file[8] = 0xff;
    CHECK_FAILS(npy_read_mem("v", file, n, &a, &e), e, GRAFT_STATUS_BAD_DATA,
                "runs past the end of the file", "header past end");
    n = make_npy(file, 2, "{}", 0, 0);
    file[11] = 0x7f;
    CHECK_FAILS(npy_read_mem("v", file, n, &a, &e), e, GRAFT_STATUS_BAD_DATA,
                "header length 2130706434 is absurd", "absurd");
    CHECK_FAILS(npy_read(tmp_path("none.npy"), &a, &e), e, GRAFT_STATUS_IO, "cannot open",
                "missing");
}

static void test_dtypes_and_versions(void)
{
    static unsigned char file[4096];
    struct {
        const char *descr;
        char kind;
        int size;
        const void *data;
    } cases[] = {
        {"<f4", 'f', 4, (float[]){1.5f, -2, 3, 4, 5, 6}},
        {"<f8", 'f', 8, (double[]){1.5, -2, 3, 4, 5, 6}},
        {"|u1", 'u', 1, (uint8_t[]){0, 1, 2, 3, 254, 255}},
        {"|i1", 'i', 1, (int8_t[]){-128, 1, 2, 3, 4, 127}},
        {"<i2", 'i', 2, (int16_t[]){-300, 1, 2, 3, 4, 5}},
        {"<i4", 'i', 4, (int32_t[]){-70000, 1, 2, 3, 4, 5}},
        {"<i8", 'i', 8, (int64_t[]){-(1LL << 40), 1, 2, 3, 4, 5}},
        {"<u2", 'u', 2, (uint16_t[]){65535, 1, 2, 3, 4, 5}},
        {"<u4", 'u', 4, (uint32_t[]){4000000000u, 1, 2, 3, 4, 5}},
        {"|b1", 'b', 1, (uint8_t[]){0, 1, 1, 0, 1, 0}},
        {"=f4", 'f', 4, (float[]){1, 2, 3, 4, 5, 6}},
    };
    for (int major = 1; major <= 3; major++)
        for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
            char dict[200];
            /* vary spacing, key order and trailing commas the way other writers do */
            if (i % 3 == 0)
                snprintf(dict, sizeof dict,
                         "{'descr': '%s', 'fortran_order': False, 'shape': (2, 3), }          \n",
                         cases[i].descr);
            else if (i % 3 == 1)
                snprintf(dict, sizeof dict, "{\"shape\":(2,3,),\"fortran_order\":False,\"descr\":\"%s\"}",
                         cases[i].descr);
            else
                snprintf(dict, sizeof dict,
                         "{ 'fortran_order' : False ,\n 'shape' : ( 2 , 3 ) , 'descr' : '%s' , }\n",
                         cases[i].descr);
            size_t n = make_npy(file, major, dict, cases[i].data, 6 * (size_t)cases[i].size);
            npy_array a;
            graft_error e = {0};
            graft_status s = npy_read_mem("d.npy", file, n, &a, &e);
            CHECKF(s == GRAFT_OK, "v%d %s: %s", major, cases[i].descr, e.message);
            if (s) continue;
            CHECK(a.kind == cases[i].kind && a.itemsize == cases[i].size);
            CHECK(a.rank == 2 && a.shape[0] == 2 && a.shape[1] == 3 && a.count == 6);
            CHECK(memcmp(a.data, cases[i].data, 6 * (size_t)cases[i].size) == 0);
            npy_free(&a);
        }
    /* scalar and one-element tuple, and an empty array */
    npy_array a;
    size_t n = make_npy(file, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
                        (float[]){7.0f}, 4);
    CHECK_OK(npy_read_mem("s", file, n, &a, err));
    CHECK(a.rank == 0 && a.count == 1 && ((float *)a.data)[0] == 7.0f);
    npy_free(&a);
    n = make_npy(file, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }",
                 (int64_t[]){1, 2, 3, 4, 5}, 40);
    CHECK_OK(npy_read_mem("s", file, n, &a, err));
    CHECK(a.rank == 1 && a.shape[0] == 5 && ((int64_t *)a.data)[4] == 5);
    npy_free(&a);
    n = make_npy(file, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", 0, 0);
    CHECK_OK(npy_read_mem("s", file, n, &a, err));
    CHECK(a.rank == 2 && a.count == 0 && a.data != NULL);
    npy_free(&a);
}

static void test_write(void)
{
    float d[2 * 3 * 4 * 5];
    for (size_t i = 0; i < ARRAY_LEN(d); i++) d[i] = (float)i / 7.0f - 3;
    int64_t shapes[][4] = {{0}, {120}, {2, 60}, {2, 3, 4, 5}};
    int ranks[] = {0, 1, 2, 4};
    for (int k = 0; k < 4; k++) {
        const char *path = tmp_path("w.npy");
        CHECK_OK(npy_write_f32(path, d, ranks[k], shapes[k], err));
        char *raw = NULL;
        size_t len = 0;
        CHECK_OK(fs_read_file(path, 1 << 20, &raw, &len, err));
        if (raw) {
            size_t hl = (unsigned char)raw[8] | (size_t)(unsigned char)raw[9] << 8;
            CHECK((10 + hl) % 64 == 0 && raw[10 + hl - 1] == '\n');
            free(raw);
        }
        npy_array a;
        CHECK_OK(npy_read(path, &a, err));
        size_t count = 1;
        for (int i = 0; i < ranks[k]; i++) count *= (size_t)shapes[k][i];
        CHECK(a.kind == 'f' && a.itemsize == 4 && a.rank == ranks[k] && a.count == count);
        for (int i = 0; i < ranks[k]; i++) CHECK(a.shape[i] == shapes[k][i]);
        if (a.data) CHECK(memcmp(a.data, d, count * 4) == 0);
        npy_free(&a);
    }
}

/* The header-only read and the read of chosen rows against the full read: scattered rows, runs,
 * none, all; a wrong row count and a file cut short fail. */
static void test_rows(void)
{
    enum { R = 37, P = 6 };
    float d[R * P];
    for (int i = 0; i < R * P; i++) d[i] = (float)i * 0.5f - 7;
    int64_t sh[3] = {R, 2, 3};
    const char *path = tmp_path("rows.npy");
    CHECK_OK(npy_write_f32(path, d, 3, sh, err));
    npy_array h;
    CHECK_OK(npy_read_header(path, &h, err));
    CHECK(h.data == NULL && h.rank == 3 && h.shape[0] == R && h.count == R * P && h.kind == 'f');
    unsigned char keep[R];
    for (int pattern = 0; pattern < 4; pattern++) {
        size_t k = 0;
        for (int i = 0; i < R; i++) {
            keep[i] = pattern == 0   ? (i % 5 == 1 || (i > 20 && i < 26) || i == R - 1)
                      : pattern == 1 ? 0
                      : pattern == 2 ? 1
                                     : i == 0;
            k += keep[i];
        }
        npy_array a;
        CHECK_OK(npy_read_rows(path, keep, R, &a, err));
        int same = a.count == k * P && a.shape[0] == (int64_t)k && a.shape[1] == 2;
        size_t j = 0;
        for (int i = 0; i < R && same; i++)
            if (keep[i]) same = memcmp((float *)a.data + j++ * P, d + i * P, P * 4) == 0;
        CHECKF(same, "pattern %d: %zu rows", pattern, k);
        npy_free(&a);
    }
    graft_error e = {0};
    npy_array a;
    CHECK_FAILS(npy_read_rows(path, keep, R - 1, &a, &e), e, GRAFT_STATUS_BAD_DATA,
                "37 rows, expected 36", "row count");
    /* cut short: the header's length check fails before any row is read */
    char *raw = NULL;
    size_t len = 0;
    CHECK_OK(fs_read_file(path, 1 << 20, &raw, &len, err));
    if (raw) {
        write_bytes(path, raw, len - 4);
        free(raw);
        unsigned char first[R] = {1};
        CHECK(npy_read_rows(path, first, R, &a, &e) == GRAFT_STATUS_BAD_DATA);
        CHECK(npy_read_header(path, &h, &e) == GRAFT_STATUS_BAD_DATA);
    }
}

int main(void)
{
    test_bad_table();
    test_dtypes_and_versions();
    test_write();
    test_rows();
    rm_tmp_dir();
    return test_finish("test_npy");
}
