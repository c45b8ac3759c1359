/* test_cache.c — cache keying and corruption: an entry comes back only under exactly its key, and a
 * truncated, bit-flipped, foreign or renamed entry is rejected, never trusted. */
#include "runtime.h"
#include "harness.h"

#include <sys/stat.h>
#include <unistd.h>

static void corrupt_flip(const char *path, long at)
{
    FILE *f = fopen(path, "r+b");
    if (!f) return;
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

int main(void)
{
    char dir[] = "/tmp/graft-test-cache-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    unsetenv("GRAFT_NO_CACHE");
    cache c;
    CHECK_OK(cache_open(&c, dir, 0, err));
    const char payload[] = "binary payload \x01\x02\x03 with bytes";
    void *data;
    size_t len;

    /* miss, put, hit */
    CHECK(cache_get(&c, "clbin", "key-a", 5, &data, &len) == GRAFT_OK && data == NULL);
    CHECK_OK(cache_put(&c, "clbin", "key-a", 5, payload, sizeof payload, err));
    CHECK(cache_get(&c, "clbin", "key-a", 5, &data, &len) == GRAFT_OK && data != NULL);
    CHECK(len == sizeof payload && data && memcmp(data, payload, len) == 0);
    free(data);

    /* keying: a different key, kind or key length is a different entry */
    CHECK(cache_get(&c, "clbin", "key-b", 5, &data, &len) == GRAFT_OK && data == NULL);
    CHECK(cache_get(&c, "tune", "key-a", 5, &data, &len) == GRAFT_OK && data == NULL);
    CHECK(cache_get(&c, "clbin", "key-a", 4, &data, &len) == GRAFT_OK && data == NULL);
    char pa[4096], pb[4096];
    cache_entry_path(&c, "clbin", "key-a", 5, pa, sizeof pa);
    cache_entry_path(&c, "clbin", "key-b", 5, pb, sizeof pb);
    CHECK(strcmp(pa, pb) != 0);

    /* every single-byte flip anywhere in the file is rejected */
    long size = file_size(pa);
    CHECK(size > 0);
    int rejected = 0;
    for (long at = 0; at < size; at++) {
        CHECK_OK(cache_put(&c, "clbin", "key-a", 5, payload, sizeof payload, err));
        corrupt_flip(pa, at);
        cache_get(&c, "clbin", "key-a", 5, &data, &len);
        if (data == NULL) rejected++;
        free(data);
    }
    CHECKF(rejected == size, "%d of %ld flips rejected", rejected, size);

    /* truncation at every length is rejected */
    rejected = 0;
    for (long keep = 0; keep < size; keep++) {
        CHECK_OK(cache_put(&c, "clbin", "key-a", 5, payload, sizeof payload, err));
        CHECK(truncate(pa, keep) == 0);
        cache_get(&c, "clbin", "key-a", 5, &data, &len);
        if (data == NULL) rejected++;
        free(data);
    }
    CHECKF(rejected == size, "%d of %ld truncations rejected", rejected, size);

    /* a foreign entry (valid, but for another key) copied over this one is rejected */
    CHECK_OK(cache_put(&c, "clbin", "key-b", 5, "other", 5, err));
    char *raw;
    size_t rawlen;
    CHECK_OK(fs_read_file(pb, 1 << 20, &raw, &rawlen, err));
    CHECK_OK(fs_write_atomic(pa, raw, rawlen, err));
    free(raw);
    CHECK(cache_get(&c, "clbin", "key-a", 5, &data, &len) == GRAFT_OK && data == NULL);
    /* a directory where the entry should be is ignored too */
    unlink(pa);
    CHECK(mkdir(pa, 0755) == 0);
    CHECK(cache_get(&c, "clbin", "key-a", 5, &data, &len) == GRAFT_OK && data == NULL);
    rmdir(pa);
    CHECK(c.rejected > 0);

    /* disabled: nothing read or written */
    cache off;
    CHECK_OK(cache_open(&off, dir, 1, err));
    CHECK(off.dir[0] == 0);
    CHECK_OK(cache_put(&off, "clbin", "key-z", 5, "x", 1, err));
    CHECK(cache_get(&off, "clbin", "key-z", 5, &data, &len) == GRAFT_OK && data == NULL);
    setenv("GRAFT_NO_CACHE", "1", 1);
    CHECK_OK(cache_open(&off, dir, 0, err));
    CHECK(off.dir[0] == 0);
    unsetenv("GRAFT_NO_CACHE");
    /* GRAFT_CACHE_DIR moves it */
    char moved[4200];
    snprintf(moved, sizeof moved, "%s/moved/deeper", dir);
    setenv("GRAFT_CACHE_DIR", moved, 1);
    CHECK_OK(cache_open(&off, NULL, 0, err));
    CHECK(strcmp(off.dir, moved) == 0);
    unsetenv("GRAFT_CACHE_DIR");
    return test_finish("cache");
}
