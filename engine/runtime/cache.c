/* cache.c — the persistent cache: compiled program binaries now, tuning results and peak probes
 * later. An entry is trusted only if its magic, format, key hash, length and payload SHA-256 all
 * check out; anything else counts as a miss and is overwritten by the rebuilt entry. */
#define _POSIX_C_SOURCE 200809L
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char MAGIC[8] = {'G', 'R', 'A', 'F', 'T', 'C', 'C', 'H'};
#define HEADER_BYTES (8 + 4 + 4 + 32 + 8 + 32)

graft_status cache_open(cache *c, const char *dir, int disabled, graft_error *e)
{
    memset(c, 0, sizeof *c);
    char path[2048];
    if (disabled || !fs_cache_dir(dir, path, sizeof path))
        return GRAFT_OK; /* off, or nowhere to keep it: run without a disk cache */
    graft_status s = fs_mkdir_p(path, e);
    if (s) {
        err_prefix(e, "program cache");
        return s;
    }
    snprintf(c->dir, sizeof c->dir, "%s", path);
    return GRAFT_OK;
}

static void key_hash(const char *kind, const void *key, size_t keylen, uint8_t out[32])
{
    sha256_ctx h;
    sha256_init(&h);
    uint32_t fmt = CACHE_FORMAT;
    sha256_update(&h, &fmt, sizeof fmt);
    sha256_update(&h, kind, strlen(kind) + 1);
    sha256_update(&h, key, keylen);
    sha256_final(&h, out);
}

void cache_entry_path(const cache *c, const char *kind, const void *key, size_t keylen, char *out,
                      size_t n)
{
    uint8_t kh[32];
    char hex[65];
    key_hash(kind, key, keylen, kh);
    hex_encode(kh, 32, hex);
    snprintf(out, n, "%s/%s.%s", c->dir, hex, kind);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

graft_status cache_get(cache *c, const char *kind, const void *key, size_t keylen, void **data,
                       size_t *len)
{
    *data = NULL;
    *len = 0;
    if (!c->dir[0]) return GRAFT_OK;
    char path[2300];
    cache_entry_path(c, kind, key, keylen, path, sizeof path);
    if (!fs_exists(path)) {
        c->misses++;
        return GRAFT_OK;
    }
    char *raw;
    size_t n;
    if (fs_read_file(path, (size_t)1 << 30, &raw, &n, NULL)) {
        c->rejected++;
        return GRAFT_OK;
    }
    const uint8_t *p = (const uint8_t *)raw;
    uint8_t kh[32], ph[32];
    key_hash(kind, key, keylen, kh);
    bool ok = n >= HEADER_BYTES && memcmp(p, MAGIC, 8) == 0 && get_u32(p + 8) == CACHE_FORMAT && get_u32(p + 12) == 0 &&
              memcmp(p + 16, kh, 32) == 0 && get_u64(p + 48) == n - HEADER_BYTES;
    if (ok) {
        sha256(p + HEADER_BYTES, n - HEADER_BYTES, ph);
        ok = memcmp(p + 56, ph, 32) == 0;
    }
    if (!ok) {
        free(raw);
        c->rejected++;
        return GRAFT_OK;
    }
    size_t plen = n - HEADER_BYTES;
    memmove(raw, raw + HEADER_BYTES, plen);
    raw[plen] = 0;
    *data = raw;
    *len = plen;
    c->hits++;
    return GRAFT_OK;
}

graft_status cache_put(cache *c, const char *kind, const void *key, size_t keylen,
                       const void *data, size_t len, graft_error *e)
{
    if (!c->dir[0]) return GRAFT_OK;
    uint8_t *p = malloc(HEADER_BYTES + len);
    if (!p) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory writing a cache entry");
    memcpy(p, MAGIC, 8);
    put_u32(p + 8, CACHE_FORMAT);
    put_u32(p + 12, 0);
    key_hash(kind, key, keylen, p + 16);
    put_u64(p + 48, len);
    sha256(data, len, p + 56);
    memcpy(p + HEADER_BYTES, data, len);
    char path[2300];
    cache_entry_path(c, kind, key, keylen, path, sizeof path);
    graft_status s = fs_write_atomic(path, p, HEADER_BYTES + len, e);
    free(p);
    return s;
}
