/* fs.c — file helpers. Every file Graft writes goes through fs_write_atomic: written aside, flushed,
 * then renamed over the target, so a reader sees the old file or the new one, never half of one. */
#define _POSIX_C_SOURCE 200809L
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

graft_status fs_read_file(const char *path, size_t max_bytes, char **out, size_t *len,
                          graft_error *e)
{
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, GRAFT_STATUS_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return err_set(e, GRAFT_STATUS_IO, "%s is a directory, not a file", path);
    }
    /* read up to max_bytes + 1 so that a file larger than the limit is detected */
    size_t limit = max_bytes + 1, cap = limit < 4096 ? limit : 4096, n = 0;
    char *data = malloc(cap + 1);
    if (!data) {
        fclose(f);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory reading %s", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap >= limit) {
                free(data);
                fclose(f);
                return err_set(e, GRAFT_STATUS_IO, "%s is larger than %zu bytes", path, max_bytes);
            }
            cap = cap * 2 > limit ? limit : cap * 2;
            char *d = realloc(data, cap + 1);
            if (!d) {
                free(data);
                fclose(f);
                return err_set(e, GRAFT_STATUS_NOMEM, "out of memory reading %s", path);
            }
            data = d;
        }
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(data);
        return err_set(e, GRAFT_STATUS_IO, "error reading %s", path);
    }
    data[n] = 0;
    *out = data;
    if (len) *len = n;
    return GRAFT_OK;
}

graft_status fs_write_atomic(const char *path, const void *data, size_t len, graft_error *e)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return err_set(e, GRAFT_STATUS_IO, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return err_set(e, GRAFT_STATUS_IO, "cannot create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int er = errno;
            close(fd);
            unlink(tmp);
            /* a full disk (ENOSPC) or a file-size limit (EFBIG): the target is untouched */
            return err_set(e, GRAFT_STATUS_IO, "cannot write %s: %s; %s was not replaced", tmp,
                           strerror(er), path);
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 && errno != EINVAL) {
        int er = errno;
        close(fd);
        unlink(tmp);
        return err_set(e, GRAFT_STATUS_IO, "cannot flush %s: %s; %s was not replaced", tmp,
                       strerror(er), path);
    }
    if (close(fd) != 0) {
        int er = errno;
        unlink(tmp);
        return err_set(e, GRAFT_STATUS_IO, "cannot write %s: %s; %s was not replaced", tmp,
                       strerror(er), path);
    }
    if (rename(tmp, path) != 0) {
        int er = errno;
        unlink(tmp);
        return err_set(e, GRAFT_STATUS_IO, "cannot rename %s to %s: %s", tmp, path, strerror(er));
    }
    return GRAFT_OK;
}

bool fs_cache_dir(const char *dir, char *out, size_t n)
{
    const char *env = getenv("GRAFT_NO_CACHE");
    if (env && env[0] && strcmp(env, "0") != 0) return false;
    if (dir && dir[0])
        snprintf(out, n, "%s", dir);
    else if ((env = getenv("GRAFT_CACHE_DIR")) && env[0])
        snprintf(out, n, "%s", env);
    else if ((env = getenv("XDG_CACHE_HOME")) && env[0])
        snprintf(out, n, "%s/graft", env);
    else if ((env = getenv("HOME")) && env[0])
        snprintf(out, n, "%s/.cache/graft", env);
    else
        return false;
    return true;
}

graft_status fs_mkdir_p(const char *path, graft_error *e)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return err_set(e, GRAFT_STATUS_IO, "path too long: %s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return err_set(e, GRAFT_STATUS_IO, "cannot create directory %s: %s", p,
                           strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        return err_set(e, GRAFT_STATUS_IO, "cannot create directory %s: %s", p, strerror(errno));
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
        return err_set(e, GRAFT_STATUS_IO, "%s exists and is not a directory", p);
    return GRAFT_OK;
}

bool fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

void fs_dirname(const char *path, char *out, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, n, ".");
    else if (slash == path)
        snprintf(out, n, "/");
    else
        snprintf(out, n, "%.*s", (int)(slash - path), path);
}

void fs_join(const char *dir, const char *rel, char *out, size_t n)
{
    if (rel[0] == '/' || !dir || !dir[0] || strcmp(dir, ".") == 0)
        snprintf(out, n, "%s", rel);
    else
        snprintf(out, n, "%s/%s", dir, rel);
}
