/* test_base.c — SHA-256 against FIPS 180-4 vectors, atomic writes, edit distance, diagnostics. */
#include "base.h"
#include "harness.h"

#include <math.h>
#include <unistd.h>

static void sha_hex(const char *s, size_t n, char *hex)
{
    uint8_t h[32];
    sha256(s, n, h);
    hex_encode(h, 32, hex);
}

int main(void)
{
    char hex[65];
    sha_hex("", 0, hex);
    CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    sha_hex("abc", 3, hex);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(two, strlen(two), hex);
    CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
    /* one million 'a', fed in uneven pieces to exercise block boundaries */
    sha256_ctx c;
    sha256_init(&c);
    char as[997];
    memset(as, 'a', sizeof as);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof as ? left : sizeof as;
        sha256_update(&c, as, n);
        left -= n;
    }
    uint8_t h[32];
    sha256_final(&c, h);
    hex_encode(h, 32, hex);
    CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);

    CHECK(edit_distance("kitten", "sitting") == 3);
    CHECK(edit_distance("", "abc") == 3);
    const char *cands[] = {"epochs", "batch_size", "optimizer", "lr"};
    CHECK(did_you_mean("epoch", cands, 4) && strcmp(did_you_mean("epoch", cands, 4), "epochs") == 0);
    CHECK(did_you_mean("optimiser", cands, 4) &&
          strcmp(did_you_mean("optimiser", cands, 4), "optimizer") == 0);
    CHECK(did_you_mean("zzzzzzzz", cands, 4) == NULL);

    char dir[] = "/tmp/graft-test-base-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    CHECK_OK(fs_mkdir_p(path, err));
    snprintf(path, sizeof path, "%s/a/file.txt", dir);
    CHECK_OK(fs_write_atomic(path, "hello", 5, err));
    CHECK_OK(fs_write_atomic(path, "world!", 6, err));
    char *data = NULL;
    size_t n = 0;
    CHECK_OK(fs_read_file(path, 1 << 20, &data, &n, err));
    CHECK(n == 6 && data && memcmp(data, "world!", 6) == 0);
    free(data);
    graft_error e = {0};
    CHECK(fs_read_file(path, 3, &data, &n, &e) == GRAFT_STATUS_IO && strstr(e.message, "larger"));
    snprintf(path, sizeof path, "%s/missing", dir);
    CHECK(fs_read_file(path, 100, &data, &n, &e) == GRAFT_STATUS_IO);
    CHECK(strstr(e.message, "cannot open") != NULL);

    graft_diags d = {0};
    graft_diags_add(&d, (graft_mark){"b.yaml", 3, 1}, "third");
    graft_diags_add(&d, (graft_mark){"a.yaml", 9, 2}, "first");
    graft_diags_add(&d, (graft_mark){"b.yaml", 1, 5}, "second");
    graft_diags_sort(&d);
    CHECK(d.count == 3 && strcmp(d.items[0].message, "first") == 0 &&
          strcmp(d.items[1].message, "second") == 0 && strcmp(d.items[2].message, "third") == 0);
    graft_diags_free(&d);

    CHECK(graft_exit_code(GRAFT_OK) == 0);
    CHECK(graft_exit_code(GRAFT_STATUS_BAD_RECIPE) == 2);
    CHECK(graft_exit_code(GRAFT_STATUS_USAGE) == 2);
    CHECK(graft_exit_code(GRAFT_STATUS_OPENCL) == 1);
    CHECK(graft_exit_code(GRAFT_STATUS_BAD_DATA) == 1);

    arena a = {0};
    char *s = arena_printf(&a, "%s.%d", "layer1", 0);
    CHECK(s && strcmp(s, "layer1.0") == 0);
    for (int i = 0; i < 5000; i++) CHECK(arena_alloc(&a, 100) != NULL);
    arena_free(&a);

    /* first_nonfinite_f32 against an element-by-element isfinite scan: NaN, +-Inf at block
     * edges (256) and in a short tail; huge, tiny and subnormal values are finite */
    enum { NF = 1000 };
    static float v[NF];
    for (int i = 0; i < NF; i++) v[i] = (float)(i % 7) * 1e30f - 3e30f;
    v[10] = 1e-45f;   /* subnormal */
    v[11] = 3.4e38f;  /* near FLT_MAX */
    v[12] = -0.0f;
    CHECK(first_nonfinite_f32(v, NF) == -1);
    CHECK(first_nonfinite_f32(v, 0) == -1);
    const long at[] = {0, 1, 255, 256, 257, 511, 767, 998, 999};
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < (int)(sizeof at / sizeof *at); i++) {
            float keep = v[at[i]];
            v[at[i]] = bad[b];
            long want = -1;
            for (long k = 0; k < NF && want < 0; k++)
                if (!isfinite(v[k])) want = k;
            CHECK(want == at[i] && first_nonfinite_f32(v, NF) == want);
            CHECK(first_nonfinite_f32(v, at[i]) == -1); /* n stops before it */
            v[at[i] + 1 < NF ? at[i] + 1 : 0] = NAN;    /* a second one after it: the first wins */
            CHECK(first_nonfinite_f32(v, NF) == (at[i] + 1 < NF ? at[i] : 0));
            v[at[i] + 1 < NF ? at[i] + 1 : 0] = at[i] + 1 < NF ? 1.0f : -3e30f;
            v[at[i]] = keep;
        }
    return test_finish("base");
}
