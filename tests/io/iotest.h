/* iotest.h — helpers shared by the io tests: a scratch folder, writing raw bytes to a file, and
 * checking that a failed call's message contains the expected fragments. */
#ifndef GRAFT_IOTEST_H
#define GRAFT_IOTEST_H

#include "harness.h"
#include "io.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

static char t_dir[256];

static inline const char *tmp_dir(void)
{
    if (!t_dir[0]) {
        snprintf(t_dir, sizeof t_dir, "/tmp/graft-io-XXXXXX");
        if (!mkdtemp(t_dir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return t_dir;
}

/* A path in the scratch folder (a rotating set of static buffers). */
static inline const char *tmp_path(const char *name)
{
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 512, "%s/%s", tmp_dir(), name);
    return b;
}

static inline void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n)) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

/* true when msg contains every fragment (NULL-terminated list, '|' separated in one string) */
static inline int has_all(const char *msg, const char *frags)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", frags);
    for (char *save = NULL, *t = strtok_r(tmp, "|", &save); t; t = strtok_r(NULL, "|", &save))
        if (!strstr(msg, t)) return 0;
    return 1;
}

/* Check a failed call: status s is not OK, the status matches want (0 = any failure) and the
 * message has every fragment. */
#define CHECK_FAILS(s, err, want, frags, label)                                                    \
    do {                                                                                           \
        graft_status s_ = (s);                                                                     \
        CHECKF(s_ != GRAFT_OK, "%s: expected a failure", label);                                   \
        if (s_ != GRAFT_OK) {                                                                      \
            CHECKF((want) == 0 || s_ == (graft_status)(want), "%s: status %s", label,              \
                   graft_status_name(s_));                                                         \
            CHECKF(has_all((err).message, frags), "%s: message '%s' lacks '%s'", label,            \
                   (err).message, frags);                                                          \
        }                                                                                          \
    } while (0)

static inline void rm_tmp_dir(void)
{
    char cmd[600];
    if (t_dir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", t_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", t_dir);
    }
}

#endif
