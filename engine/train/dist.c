/* dist.c — training across processes: MPI (Open MPI from Debian) when Graft is built with it
 * (-Dmpi=auto finds it) and the process was started by mpirun; otherwise rank 0 of 1 and nothing
 * here touches anything, so a run without MPI is exactly the one-process trainer.
 * Every wait on a peer is bounded: before each collective the ranks trade a token, polled with a
 * deadline, so a rank that hangs or died is named instead of waited for forever. */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifdef GRAFT_MPI
#include <mpi.h>
#endif

#ifdef GRAFT_MPI
static graft_status trade_places(dist *d, graft_error *e);
#endif

bool dist_built(void)
{
#ifdef GRAFT_MPI
    return true;
#else
    return false;
#endif
}

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

graft_status dist_init(dist *d, graft_error *e)
{
    memset(d, 0, sizeof *d);
    d->size = 1;
    /* GRAFT_DIST_TIMEOUT: seconds a step waits for its peers (the first step after compiling,
     * which cold kernel builds can delay by minutes, waits ten times as long) */
    d->timeout = env_int("GRAFT_DIST_TIMEOUT", 20);
    if (d->timeout < 1) d->timeout = 1;
    d->limit = d->timeout;
    /* started by mpirun (Open MPI, or PMI-based launchers) */
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK"))
        return GRAFT_OK;
#ifdef GRAFT_MPI
    int provided, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return err_set(e, GRAFT_STATUS_IO, "MPI_Init failed (%d)", rc);
    d->active = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    d->local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("MPI_LOCALRANKID", d->rank));
    return trade_places(d, e);
#else
    if (env_int("OMPI_COMM_WORLD_SIZE", env_int("PMI_SIZE", 1)) > 1)
        return err_set(e, GRAFT_STATUS_USAGE,
                       "started by mpirun, but this graft was built without MPI (install "
                       "libopenmpi-dev and rebuild: meson setup -Dmpi=enabled)");
    return GRAFT_OK;
#endif
}

void dist_finalize(dist *d)
{
    /* unhooked before freed: a signal handler may look at them (dist_lost_local) */
    long *pid = d->pid;
    unsigned long *host = d->host;
    d->pid = NULL;
    d->host = NULL;
    free(pid);
    free(host);
    free(d->pending);
    d->pending = NULL;
    d->npending = d->cap = 0;
#ifdef GRAFT_MPI
    if (d->active) MPI_Finalize();
#endif
    d->active = false;
}

void dist_abort(dist *d)
{
#ifdef GRAFT_MPI
    if (d->active && d->size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
    (void)d;
}

#ifdef GRAFT_MPI
static double clock_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#endif

#ifdef GRAFT_MPI
/* Trade a token with every peer (tag), polling until limit seconds: *missing gets the peers whose
 * token did not come, as "1, 3" (empty when all came). Requests left pending on a lost peer are
 * abandoned: the job is aborted after such an error. */
static graft_status trade_tokens(dist *d, int tag, long step, double limit, long *in, char *missing,
                                 size_t cap, graft_error *e)
{
    int n = d->size;
    MPI_Request *rq = calloc((size_t)(2 * n), sizeof *rq);
    if (!rq) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    for (int p = 0; p < 2 * n; p++)
        rq[p] = MPI_REQUEST_NULL;
    graft_status s = GRAFT_OK;
    for (int p = 0; p < n && !s; p++) {
        if (p == d->rank) continue;
        if (MPI_Irecv(&in[p], 1, MPI_LONG, p, tag, MPI_COMM_WORLD, &rq[p]) != MPI_SUCCESS ||
            MPI_Isend(&step, 1, MPI_LONG, p, tag, MPI_COMM_WORLD, &rq[n + p]) != MPI_SUCCESS)
            s = err_set(e, GRAFT_STATUS_IO, "rank %d: cannot reach rank %d", d->rank, p);
    }
    double t0 = clock_s();
    missing[0] = 0;
    while (!s) {
        int done;
        if (MPI_Testall(n, rq, &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS) {
            s = err_set(e, GRAFT_STATUS_IO, "rank %d: MPI failed waiting for its peers", d->rank);
            break;
        }
        if (done) break;
        if (clock_s() - t0 > limit) {
            size_t used = 0;
            for (int p = 0; p < n && used + 16 < cap; p++)
                if (p != d->rank && rq[p] != MPI_REQUEST_NULL)
                    used +=
                        (size_t)snprintf(missing + used, cap - used, "%s%d", used ? ", " : "", p);
            break;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    free(rq);
    return s;
}

/* Wait for a collective with a deadline; past it, name the peers that do not answer a token
 * (every live rank times out on the same collective and trades tokens at about the same time). */
static graft_status wait_bounded(dist *d, MPI_Request *rq, const char *what, graft_error *e)
{
    double t0 = clock_s();
    for (;;) {
        int done;
        if (MPI_Test(rq, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return err_set(e, GRAFT_STATUS_IO, "rank %d: MPI failed in %s", d->rank, what);
        if (done) return GRAFT_OK;
        if (clock_s() - t0 > d->limit) break;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    long *in = calloc((size_t)d->size, sizeof *in);
    char lost[512] = "";
    if (in) trade_tokens(d, 0x6a80, -1, 5.0, in, lost, sizeof lost, e);
    free(in);
    return err_set(e, GRAFT_STATUS_IO,
                   "lost rank %s: no answer within %.0f s in %s (it died or hangs); stopping (the "
                   "last complete checkpoint is kept)",
                   lost[0] ? lost : "(unknown)", d->limit, what);
}
#endif

#ifdef GRAFT_MPI
/* Who runs where: (pid, host hash: FNV-1a of the host name) of every rank. */
static graft_status trade_places(dist *d, graft_error *e)
{
    char name[256] = "";
    gethostname(name, sizeof name - 1);
    unsigned long h = 1469598103934665603UL;
    for (const char *c = name; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211UL;
    long mine[2] = {(long)getpid(), (long)h}, *all = calloc(2 * (size_t)d->size, sizeof *all);
    d->pid = calloc((size_t)d->size, sizeof *d->pid);
    d->host = calloc((size_t)d->size, sizeof *d->host);
    MPI_Request rq;
    graft_status s = GRAFT_OK;
    if (!all || !d->pid || !d->host) s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    else if (MPI_Iallgather(mine, 2, MPI_LONG, all, 2, MPI_LONG, MPI_COMM_WORLD, &rq) !=
             MPI_SUCCESS)
        s = err_set(e, GRAFT_STATUS_IO, "rank %d: MPI_Iallgather failed", d->rank);
    else s = wait_bounded(d, &rq, "the start", e);
    for (int p = 0; p < d->size && !s; p++) {
        d->pid[p] = all[2 * p];
        d->host[p] = (unsigned long)all[2 * p + 1];
    }
    free(all);
    return s;
}
#endif

graft_status dist_check_peers(dist *d, long step, double timeout, graft_error *e)
{
    if (d->size < 2) return GRAFT_OK;
#ifdef GRAFT_MPI
    long *in = calloc((size_t)d->size, sizeof *in);
    if (!in) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    char lost[512];
    graft_status s = trade_tokens(d, 0x6a7f, step, timeout, in, lost, sizeof lost, e);
    if (!s && lost[0])
        s = err_set(e, GRAFT_STATUS_IO,
                    "lost rank %s: no answer within %.0f s at step %ld (it died or hangs); "
                    "stopping (the last complete checkpoint is kept)",
                    lost, timeout, step);
    for (int p = 0; p < d->size && !s; p++)
        if (p != d->rank && in[p] != step)
            s = err_set(e, GRAFT_STATUS_INTERNAL, "rank %d is at step %ld, rank %d at step %ld", p,
                        in[p], d->rank, step);
    free(in);
    return s;
#else
    (void)step;
    (void)timeout;
    return err_set(e, GRAFT_STATUS_INTERNAL, "no MPI in this build");
#endif
}

graft_status dist_sum_f64(dist *d, double *x, int n, graft_error *e)
{
    if (d->size < 2 || n == 0) return GRAFT_OK;
#ifdef GRAFT_MPI
    MPI_Request rq;
    if (MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &rq) != MPI_SUCCESS)
        return err_set(e, GRAFT_STATUS_IO, "rank %d: MPI_Iallreduce failed", d->rank);
    return wait_bounded(d, &rq, "the metrics allreduce", e);
#else
    (void)x;
    return err_set(e, GRAFT_STATUS_INTERNAL, "no MPI in this build");
#endif
}

graft_status dist_barrier(dist *d, const char *what, double limit, graft_error *e)
{
    if (d->size < 2) return GRAFT_OK;
#ifdef GRAFT_MPI
    MPI_Request rq;
    if (MPI_Ibarrier(MPI_COMM_WORLD, &rq) != MPI_SUCCESS)
        return err_set(e, GRAFT_STATUS_IO, "rank %d: MPI_Ibarrier failed", d->rank);
    double keep = d->limit;
    d->limit = limit;
    graft_status s = wait_bounded(d, &rq, what, e);
    d->limit = keep;
    return s;
#else
    (void)what;
    (void)limit;
    return err_set(e, GRAFT_STATUS_INTERNAL, "no MPI in this build");
#endif
}

/* Whether process pid is gone: no such process, or a zombie not yet reaped (/proc/PID/stat's
 * state after the command's closing parenthesis). Only async-signal-safe calls. */
static bool process_gone(long pid)
{
    if (pid <= 0) return false;
    if (kill((pid_t)pid, 0) != 0) return errno == ESRCH;
    char path[48] = "/proc/", digits[24];
    int nd = 0;
    for (long v = pid; v > 0 && nd < 23; v /= 10) digits[nd++] = (char)('0' + v % 10);
    size_t at = strlen(path);
    while (nd > 0) path[at++] = digits[--nd];
    memcpy(path + at, "/stat", 6);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return errno == ENOENT;
    char buf[512];
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got <= 0) return false;
    buf[got] = 0;
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

int dist_lost_local(const dist *d, char *out, size_t cap)
{
    int n = 0;
    size_t used = 0;
    if (cap) out[0] = 0;
    for (int p = 0; d->pid && p < d->size; p++) {
        if (p == d->rank || d->host[p] != d->host[d->rank] || !process_gone(d->pid[p])) continue;
        char digits[16];
        int nd = 0;
        for (int v = p; nd == 0 || v > 0; v /= 10) digits[nd++] = (char)('0' + v % 10);
        if (used + (size_t)nd + 3 > cap) break;
        if (n) {
            out[used++] = ',';
            out[used++] = ' ';
        }
        while (nd > 0) out[used++] = digits[--nd];
        out[used] = 0;
        n++;
    }
    return n;
}

graft_status dist_sum_start(dist *d, float *x, long n, graft_error *e)
{
    if (d->size < 2 || n == 0) return GRAFT_OK;
#ifdef GRAFT_MPI
    if (n > 0x7fffffffL)
        return err_set(e, GRAFT_STATUS_UNSUPPORTED, "a gradient bucket of %ld floats", n);
    if (d->npending == d->cap) {
        int cap = d->cap ? 2 * d->cap : 32;
        MPI_Request *r = realloc(d->pending, (size_t)cap * sizeof *r);
        if (!r) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        d->pending = r;
        d->cap = cap;
    }
    MPI_Request *rq = (MPI_Request *)d->pending + d->npending;
    if (MPI_Iallreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, rq) !=
        MPI_SUCCESS)
        return err_set(e, GRAFT_STATUS_IO, "rank %d: MPI_Iallreduce failed", d->rank);
    d->npending++;
    return GRAFT_OK;
#else
    (void)x;
    return err_set(e, GRAFT_STATUS_INTERNAL, "no MPI in this build");
#endif
}

graft_status dist_sum_finish(dist *d, graft_error *e)
{
    graft_status s = GRAFT_OK;
#ifdef GRAFT_MPI
    for (int i = 0; i < d->npending && !s; i++)
        s = wait_bounded(d, (MPI_Request *)d->pending + i, "the gradient allreduce", e);
#endif
    (void)e;
    d->npending = 0;
    return s;
}
