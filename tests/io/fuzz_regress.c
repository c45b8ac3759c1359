/* fuzz_regress.c — every fuzz corpus file and crash reproducer of the io readers, run through the
 * file and the in-memory entry points in a normal build: nothing may crash, known-good seeds must
 * still be accepted and known-bad ones refused. Usage: fuzz_regress CORPUS_ROOT CRASHES_ROOT. */
#include "iotest.h"

#include <dirent.h>

static const char *accept_list[] = {
    "safetensors/f32", "safetensors/mixed", "safetensors/empty", "safetensors/meta-only",
    "safetensors/unpadded", "npy/f4-v1", "npy/u1-v2", "npy/i8-v3", "npy/b1", "npy/scalar",
    "npy/empty", "npy/spaces", "idx/u8-raw", "idx/u8-gz", "idx/labels", "idx/i16", "idx/i32-gz",
    "idx/f32", "idx/f64", "idx/two-members",
};
static const char *reject_list[] = {"safetensors/truncated", "npy/fortran", "idx/truncated"};

static int expectation(const char *fmt, const char *name)
{
    char key[300];
    snprintf(key, sizeof key, "%s/%s", fmt, name);
    for (size_t i = 0; i < ARRAY_LEN(accept_list); i++)
        if (strcmp(key, accept_list[i]) == 0) return 1;
    for (size_t i = 0; i < ARRAY_LEN(reject_list); i++)
        if (strcmp(key, reject_list[i]) == 0) return -1;
    return 0;
}

/* Run one file through both entry points; both must agree. Returns 1 accepted, 0 refused. */
static int run_one(const char *fmt, const char *path)
{
    char *data = NULL;
    size_t len = 0;
    graft_error e = {0};
    if (fs_read_file(path, 64u << 20, &data, &len, &e)) {
        CHECKF(0, "%s: %s", path, e.message);
        return 0;
    }
    int ok_file = 0, ok_mem = 0;
    if (strcmp(fmt, "safetensors") == 0) {
        for (int mem = 0; mem < 2; mem++) {
            st_file *f = NULL;
            graft_status s = mem ? st_open_mem(path, data, len, &f, &e) : st_open(path, &f, &e);
            if (s) continue;
            int all = 1;
            for (int i = 0; i < f->ntensors; i++) {
                size_t n = st_tensor_count(&f->tensors[i]);
                float *x = malloc(n ? n * sizeof *x : 1);
                all &= x && st_read_f32(f, &f->tensors[i], x, &e) == GRAFT_OK;
                free(x);
            }
            st_close(f);
            *(mem ? &ok_mem : &ok_file) = all;
        }
    } else if (strcmp(fmt, "npy") == 0) {
        npy_array a;
        ok_file = npy_read(path, &a, &e) == GRAFT_OK;
        npy_free(&a);
        ok_mem = npy_read_mem(path, data, len, &a, &e) == GRAFT_OK;
        npy_free(&a);
    } else {
        idx_array a;
        ok_file = idx_read(path, &a, &e) == GRAFT_OK;
        idx_free(&a);
        ok_mem = idx_read_mem(path, data, len, &a, &e) == GRAFT_OK;
        idx_free(&a);
    }
    CHECKF(ok_file == ok_mem, "%s: file and memory readers disagree (%d vs %d)", path, ok_file,
           ok_mem);
    free(data);
    return ok_file;
}

static int run_dir(const char *root, const char *fmt, bool expect)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", root, fmt);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, accepted = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.') continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        int ok = run_one(fmt, path);
        accepted += ok;
        n++;
        int want = expect ? expectation(fmt, ent->d_name) : 0;
        CHECKF(want == 0 || (want > 0) == (ok > 0), "%s: %s, expected %s", path,
               ok ? "accepted" : "refused", want > 0 ? "accepted" : "refused");
    }
    closedir(d);
    printf("%s: %d files, %d accepted\n", dir, n, accepted);
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_regress CORPUS_ROOT CRASHES_ROOT\n");
        return 2;
    }
    const char *fmts[] = {"safetensors", "npy", "idx"};
    for (int i = 0; i < 3; i++) {
        int n = run_dir(argv[1], fmts[i], true);
        CHECKF(n >= 7, "%s: only %d corpus files", fmts[i], n);
        run_dir(argv[2], fmts[i], false);
    }
    return test_finish("fuzz_regress");
}
