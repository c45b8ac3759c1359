/* ahead.c — compile ahead: on PoCL a kernel is compiled for its work-group size the first time it
 * runs, one kernel after another, on one core (PoCL holds one compiler lock per process). On a
 * cold cache that is most of a first run. A helper process (`graft __compile-ahead`, started from
 * the CLI's own executable) takes the launches this process has enqueued but not yet run, and runs
 * each of them once, newest first, on zero-filled buffers of the same sizes: it compiles the same
 * programs with the same options and the same work-group sizes, so its kernels land in PoCL's
 * kernel cache under the keys this process looks up when its queue reaches them. The two meet in
 * the middle; a kernel both reach is compiled twice, never wrongly. Nothing the helper does
 * touches this process's buffers, results or files.
 *
 * GRAFT_COMPILE_AHEAD: auto (default: PoCL, at least two CPUs, and programs this context had to
 * build from cold or kernels no run on this cache launched: Graft's markers, per program, kernel
 * and work-group size), on (whenever the driver caches programs), off, or save:FILE (no helper: the
 * launches are appended to FILE, which `graft __compile-ahead --device SPEC FILE` replays; for
 * tests and for warming a cache by hand).
 *
 * The launch records carry every kernel argument, and OpenCL cannot read an argument back, so
 * kernel_arg() keeps a copy of each argument set while any context records. That copy (the
 * "shadow") is the runtime's only global state. */

#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- the argument shadow ---- */
#define SHADOW_CAP 4096 /* kernels; a full table stops recording */
#define ARG_MAX_BYTES 32
#define ARGS_MAX 32
typedef struct shadow_arg {
    uint32_t size;
    unsigned char set, null;
    unsigned char v[ARG_MAX_BYTES];
} shadow_arg;
typedef struct shadow_entry {
    cl_kernel k;
    shadow_arg a[ARGS_MAX];
} shadow_entry;

static pthread_mutex_t shadow_lock = PTHREAD_MUTEX_INITIALIZER;
static shadow_entry *shadow;
static int shadow_users, shadow_full;

static size_t slot_of(cl_kernel k)
{
    uintptr_t h = (uintptr_t)k;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (SHADOW_CAP - 1);
}

/* the entry for k (created when create is set); called with shadow_lock held */
static shadow_entry *shadow_find(cl_kernel k, int create)
{
    if (!shadow) return NULL;
    for (size_t i = slot_of(k), n = 0; n < SHADOW_CAP; i = (i + 1) & (SHADOW_CAP - 1), n++) {
        if (shadow[i].k == k) return &shadow[i];
        if (!shadow[i].k) {
            if (!create) return NULL;
            if (n > SHADOW_CAP / 2) { /* too crowded to stay cheap */
                shadow_full = 1;
                return NULL;
            }
            memset(&shadow[i], 0, sizeof shadow[i]);
            shadow[i].k = k;
            return &shadow[i];
        }
    }
    return NULL;
}

cl_int kernel_arg(cl_kernel k, cl_uint i, size_t size, const void *value)
{
    cl_int rc = clSetKernelArg(k, i, size, value);
    if (rc != CL_SUCCESS || !__atomic_load_n(&shadow_users, __ATOMIC_RELAXED)) return rc;
    pthread_mutex_lock(&shadow_lock);
    shadow_entry *s = shadow_find(k, 1);
    if (s && i < ARGS_MAX) {
        shadow_arg *a = &s->a[i];
        a->set = size <= ARG_MAX_BYTES || !value; /* a local buffer's size may be anything */
        a->size = (uint32_t)size;
        a->null = !value;
        if (value && size <= ARG_MAX_BYTES) memcpy(a->v, value, size);
    }
    pthread_mutex_unlock(&shadow_lock);
    return rc;
}

static void shadow_use(int delta)
{
    pthread_mutex_lock(&shadow_lock);
    if (delta > 0 && !shadow) shadow = calloc(SHADOW_CAP, sizeof *shadow);
    shadow_users += delta;
    pthread_mutex_unlock(&shadow_lock);
}

/* ---- the recording side (this process) ---- */
typedef enum { AHEAD_OFF, AHEAD_AUTO, AHEAD_ON, AHEAD_SAVE } ahead_mode;

typedef struct idmap {
    const void *ptr;
    size_t size; /* buffers: a freed buffer's address may come back with another size */
} idmap;

#define AHEAD_FAST 256
struct ahead {
    struct fast_slot {
        cl_kernel k;
        size_t d[4];
    } fast[AHEAD_FAST];
    ahead_mode mode;
    int recording;
    char save_path[1024];
    int fd;         /* the helper's socket, -1 before it starts */
    pid_t pid;      /* the helper, 0 when none */
    int dead;       /* the helper is gone or refused a batch: stop sending */
    uint64_t *seen; /* launch keys already sent (open addressing, 0 = empty) */
    size_t nseen, capseen;
    idmap *progs, *bufs;
    int nprogs, capprogs, nbufs, capbufs;
    char *batch; /* the lines not yet sent; those before `sealed` end with their checksum */
    size_t len, cap, sealed;
    long pending, launches_sent; /* launches in the batch; launches sent (or saved) */
    long cold;                   /* launches noted that no process ran before on this cache */
    int log;                     /* GRAFT_COMPILE_AHEAD_LOG */
};

static const char *helper_exe;

void ahead_set_helper(const char *exe)
{
    helper_exe = exe;
}

graft_status ahead_start(graft_context *ctx, graft_error *e)
{
    const char *v = getenv("GRAFT_COMPILE_AHEAD");
    ahead_mode m = AHEAD_AUTO;
    if (v && *v) {
        if (strcmp(v, "off") == 0)
            m = AHEAD_OFF;
        else if (strcmp(v, "on") == 0)
            m = AHEAD_ON;
        else if (strncmp(v, "save:", 5) == 0 && v[5])
            m = AHEAD_SAVE;
        else if (strcmp(v, "auto") != 0)
            return err_set(e, GRAFT_STATUS_USAGE, COMPILE_AHEAD_BAD_VALUE, v);
    }
    /* only a driver that compiles at first launch and keeps the result on disk (PoCL) gains */
    if (m == AHEAD_OFF || !ctx->driver_caches || !device_is_pocl(&ctx->info)) return GRAFT_OK;
    if ((m == AHEAD_AUTO || m == AHEAD_ON) && !helper_exe) return GRAFT_OK;
    if (m == AHEAD_AUTO && sysconf(_SC_NPROCESSORS_ONLN) < 2) return GRAFT_OK;
    struct ahead *a = calloc(1, sizeof *a);
    if (!a) return GRAFT_OK; /* no helper: slower, not wrong */
    a->mode = m;
    a->fd = -1;
    if (m == AHEAD_SAVE) snprintf(a->save_path, sizeof a->save_path, "%s", v + 5);
    a->recording = 1;
    const char *log = getenv("GRAFT_COMPILE_AHEAD_LOG");
    a->log = log && *log && strcmp(log, "0") != 0;
    shadow_use(1);
    ctx->ahead = a;
    return GRAFT_OK;
}

static void stop_recording(struct ahead *a)
{
    if (!a->recording) return;
    a->recording = 0;
    shadow_use(-1);
    free(a->batch);
    a->batch = NULL;
    a->len = a->cap = a->sealed = 0;
    a->pending = 0;
}

static int put(struct ahead *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int put(struct ahead *a, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n =
            vsnprintf(a->batch ? a->batch + a->len : NULL, a->batch ? a->cap - a->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return -1;
        if (a->batch && a->len + (size_t)n < a->cap) {
            a->len += (size_t)n;
            return 0;
        }
        size_t cap = a->cap ? a->cap * 2 : 16384;
        while (cap < a->len + (size_t)n + 1)
            cap *= 2;
        char *b = realloc(a->batch, cap);
        if (!b) return -1;
        a->batch = b;
        a->cap = cap;
    }
}

/* the id of ptr (of size) in map, -1 if new (then *added is the new id) */
static int map_id(idmap **map, int *n, int *cap, const void *ptr, size_t size, int *added)
{
    *added = -1;
    for (int i = 0; i < *n; i++)
        if ((*map)[i].ptr == ptr && (*map)[i].size == size) return i;
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 64;
        idmap *m = realloc(*map, (size_t)c * sizeof *m);
        if (!m) return -2;
        *map = m;
        *cap = c;
    }
    (*map)[*n] = (idmap){ptr, size};
    *added = *n;
    return (*n)++;
}

static int seen_add(struct ahead *a, uint64_t key)
{
    if (!key) key = 1;
    if (a->nseen * 2 >= a->capseen) {
        size_t c = a->capseen ? a->capseen * 2 : 1024;
        uint64_t *t = calloc(c, sizeof *t);
        if (!t) return -1;
        for (size_t i = 0; i < a->capseen; i++)
            if (a->seen[i])
                for (size_t j = a->seen[i] & (c - 1);; j = (j + 1) & (c - 1))
                    if (!t[j]) {
                        t[j] = a->seen[i];
                        break;
                    }
        free(a->seen);
        a->seen = t;
        a->capseen = c;
    }
    for (size_t j = key & (a->capseen - 1);; j = (j + 1) & (a->capseen - 1)) {
        if (a->seen[j] == key) return 0;
        if (!a->seen[j]) {
            a->seen[j] = key;
            a->nseen++;
            return 1;
        }
    }
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t batch_sum(const char *p, size_t n)
{
    return fnv(0xcbf29ce484222325ull, p, n);
}

/* launch() calls this before enqueueing: a launch whose (program, kernel, work-group size) is
 * new joins the next batch, with its arguments */
void ahead_note(graft_context *ctx, cl_kernel k, int dims, const size_t *global,
                const size_t *local)
{
    struct ahead *a = ctx->ahead;
    if (!a || !a->recording || a->dead) return;
    /* the common case, a kernel object launched again with the same sizes, costs one compare */
    size_t fast[4] = {(size_t)dims};
    for (int i = 0; i < dims; i++)
        fast[1 + i] = local ? local[i] : global[i];
    struct fast_slot *fs = &a->fast[slot_of(k) & (AHEAD_FAST - 1)];
    if (fs->k == k && memcmp(fs->d, fast, sizeof fast) == 0) return;
    fs->k = k;
    memcpy(fs->d, fast, sizeof fast);
    cl_program prog = NULL;
    char name[128];
    if (clGetKernelInfo(k, CL_KERNEL_PROGRAM, sizeof prog, &prog, NULL) != CL_SUCCESS ||
        clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL) != CL_SUCCESS)
        return;
    const char *src = NULL, *opts = NULL;
    program_lookup(ctx, prog, &src, &opts);
    if (!src) return; /* not one of ours (CLBlast's) */
    /* PoCL compiles per work-group size; without one it picks it from the global size */
    uint64_t key = fnv(fnv(fnv(0xcbf29ce484222325ull, &prog, sizeof prog), name, strlen(name)),
                       fast, sizeof fast);
    if (key == 0) key = 1;
    /* already sent? (look without inserting first: the arguments may be unknown) */
    if (a->capseen)
        for (size_t j = key & (a->capseen - 1); a->seen[j]; j = (j + 1) & (a->capseen - 1))
            if (a->seen[j] == key) return;
    cl_uint nargs = 0;
    if (clGetKernelInfo(k, CL_KERNEL_NUM_ARGS, sizeof nargs, &nargs, NULL) != CL_SUCCESS ||
        nargs > ARGS_MAX)
        return;
    shadow_arg args[ARGS_MAX];
    pthread_mutex_lock(&shadow_lock);
    shadow_entry *s = shadow_find(k, 0);
    if (s) memcpy(args, s->a, sizeof args);
    int full = shadow_full;
    pthread_mutex_unlock(&shadow_lock);
    if (full) {
        stop_recording(a);
        return;
    }
    if (!s) return;
    cl_kernel_arg_address_qualifier q[ARGS_MAX];
    for (cl_uint i = 0; i < nargs; i++)
        if (!args[i].set || clGetKernelArgInfo(k, i, CL_KERNEL_ARG_ADDRESS_QUALIFIER, sizeof q[i],
                                               &q[i], NULL) != CL_SUCCESS)
            return; /* an argument we cannot repeat: leave this one to this process */
    if (seen_add(a, key) < 0) return;
    /* PoCL compiled it before if an earlier process on this cache launched it so (Graft's
     * marker); a first launch is what the helper is for */
    if (kernel_first_launch(ctx, prog, name, fast, 1 + dims) > 0) a->cold++;
    size_t mark = a->len;
    int bad = 0, added;
    int pid = map_id(&a->progs, &a->nprogs, &a->capprogs, prog, 0, &added);
    if (pid < 0)
        bad = 1;
    else if (added >= 0)
        bad |= put(a, "P %d %s %s\n", pid, src, opts);
    int ids[ARGS_MAX];
    for (cl_uint i = 0; i < nargs && !bad; i++) {
        ids[i] = -1;
        if (q[i] != CL_KERNEL_ARG_ADDRESS_GLOBAL && q[i] != CL_KERNEL_ARG_ADDRESS_CONSTANT)
            continue;
        cl_mem m = NULL;
        memcpy(&m, args[i].v, sizeof m);
        if (args[i].null || !m) continue;
        size_t size = 0;
        if (clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof size, &size, NULL) != CL_SUCCESS) {
            bad = 1;
            break;
        }
        ids[i] = map_id(&a->bufs, &a->nbufs, &a->capbufs, m, size, &added);
        if (ids[i] < 0)
            bad = 1;
        else if (added >= 0)
            bad |= put(a, "B %d %zu\n", ids[i], size);
    }
    size_t g[3] = {1, 1, 1}, l[3] = {0, 0, 0};
    for (int i = 0; i < dims; i++) {
        g[i] = global[i];
        if (local) l[i] = local[i];
    }
    if (!bad)
        bad |= put(a, "L %d %s %d %zu %zu %zu %zu %zu %zu %u\n", pid, name, dims, g[0], g[1], g[2],
                   l[0], l[1], l[2], nargs);
    for (cl_uint i = 0; i < nargs && !bad; i++) {
        if (q[i] == CL_KERNEL_ARG_ADDRESS_LOCAL) {
            bad |= put(a, "A l %u\n", args[i].size);
        } else if (q[i] == CL_KERNEL_ARG_ADDRESS_GLOBAL || q[i] == CL_KERNEL_ARG_ADDRESS_CONSTANT) {
            bad |= ids[i] < 0 ? put(a, "A n\n") : put(a, "A b %d\n", ids[i]);
        } else {
            bad |= put(a, "A v %u ", args[i].size);
            for (uint32_t j = 0; j < args[i].size && !bad; j++)
                bad |= put(a, "%02x", args[i].v[j]);
            bad |= put(a, "\n");
        }
    }
    if (bad) { /* out of memory: drop what this launch wrote, and stop */
        a->len = mark;
        stop_recording(a);
        return;
    }
    a->pending++;
}

static void helper_spawn(graft_context *ctx, struct ahead *a)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        a->dead = 1;
        return;
    }
    char spec[32];
    snprintf(spec, sizeof spec, "%d:%d", ctx->info.platform_index, ctx->info.device_index);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    /* dup2 onto itself would keep close-on-exec */
    int child = sv[1] == 3 ? fcntl(sv[1], F_DUPFD_CLOEXEC, 4) : sv[1];
    posix_spawn_file_actions_adddup2(&fa, child, 3);
    if (!a->log) {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    char *argv[] = {"graft", "__compile-ahead", "--device", spec, "--fd", "3", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, helper_exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (child != sv[1]) close(child);
    close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        a->dead = 1;
        return;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    a->fd = sv[0];
    a->pid = pid;
}

/* At a host synchronisation: the launches recorded since the last one go to the helper (started
 * on the first batch that holds a kernel no run on this cache launched, or once this context
 * built programs from cold) or to the save file. */
void ahead_flush(graft_context *ctx)
{
    struct ahead *a = ctx->ahead;
    if (!a || !a->recording || a->dead) return;
    if (a->fd < 0 && a->mode == AHEAD_AUTO && !a->cold &&
        (ctx->programs_built == 0 || ctx->slowest_build < 0.15)) {
        /* warm so far: every program came from PoCL's cache (Graft's markers say so, or no
         * build took long: PoCL's warm build only preprocesses, ~40 ms against 0.2-0.5 s cold),
         * and every kernel was launched so before (a transfer after its pretraining builds no
         * program but launches kernels that training never ran, 0.5-0.7 s each to compile).
         * Nothing to send: the batch goes, and the ids it named start again. Recording goes on,
         * for the kernels a later phase brings (an evaluation's after the training steps); the
         * argument shadow it keeps cost nothing measurable (warm transfer, median of 8 with and
         * without: 1.03 and 1.04 s). */
        a->len = a->sealed = 0;
        a->pending = 0;
        a->nprogs = a->nbufs = 0;
        return;
    }
    if (!a->len) return;
    if (a->mode == AHEAD_SAVE) {
        FILE *f = fopen(a->save_path, "a");
        int ok = f && fwrite(a->batch, 1, a->len, f) == a->len &&
                 fprintf(f, "E %016llx\n", (unsigned long long)batch_sum(a->batch, a->len)) > 0;
        if (f && fclose(f) != 0) ok = 0;
        if (!ok) {
            fprintf(stderr,
                    "graft: warning: GRAFT_COMPILE_AHEAD: cannot write %s (%s); "
                    "recording stops\n",
                    a->save_path, strerror(errno));
            stop_recording(a);
            return;
        }
        a->launches_sent += a->pending;
        a->len = 0;
        a->pending = 0;
        return;
    }
    if (a->fd < 0) {
        helper_spawn(ctx, a);
        if (a->dead) {
            stop_recording(a);
            return;
        }
    }
    /* the batch ends with its checksum: the helper runs nothing it did not read whole */
    if (a->len > a->sealed &&
        put(a, "E %016llx\n",
            (unsigned long long)batch_sum(a->batch + a->sealed, a->len - a->sealed))) {
        stop_recording(a);
        return;
    }
    if (a->log) fprintf(stderr, "compile-ahead: %.3f sent %zu bytes\n", now_seconds(), a->len);
    /* packets of whole launches, each under 64 KiB; what a full socket refuses (the helper is
     * still starting, or behind) waits for the next synchronisation */
    size_t off = 0;
    while (off < a->len) {
        size_t end = off, limit = off + 60000;
        long launches = 0;
        for (const char *p = a->batch + off; p < a->batch + a->len;) {
            const char *nl = memchr(p, '\n', (size_t)(a->batch + a->len - p));
            size_t next = (size_t)(nl - a->batch) + 1;
            /* cut before a line starting a launch (P, B or L) once the packet is big enough */
            if (next > limit && end > off && (*p == 'P' || *p == 'B' || *p == 'L')) break;
            launches += *p == 'L';
            end = next;
            p = a->batch + next;
        }
        if (send(a->fd, a->batch + off, end - off, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) a->dead = 1;
            break;
        }
        a->launches_sent += launches;
        off = end;
    }
    memmove(a->batch, a->batch + off, a->len - off);
    a->len -= off;
    a->sealed = a->len;
    a->pending = 0;
    if (a->dead) stop_recording(a);
}

long ahead_launches_sent(const graft_context *ctx)
{
    return ctx->ahead ? ((struct ahead *)ctx->ahead)->launches_sent : 0;
}

int ahead_helper_started(const graft_context *ctx)
{
    return ctx->ahead && ((struct ahead *)ctx->ahead)->pid > 0;
}

void ahead_stop(graft_context *ctx)
{
    struct ahead *a = ctx->ahead;
    if (!a) return;
    if (a->mode == AHEAD_SAVE) ahead_flush(ctx);
    stop_recording(a);
    if (a->fd >= 0) close(a->fd);
    if (a->pid > 0) {
        /* its work is for this run only from here on: what it finished is in the cache */
        kill(a->pid, SIGKILL);
        while (waitpid(a->pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    free(a->seen);
    free(a->progs);
    free(a->bufs);
    free(a);
    ctx->ahead = NULL;
}

/* ---- the helper ---- */
typedef struct h_prog {
    char *source, *options;
    cl_program program;
    int failed;
} h_prog;
typedef struct h_arg {
    char kind; /* 'b' buffer, 'n' null buffer, 'l' local, 'v' value */
    int buf;
    uint32_t size;
    unsigned char v[ARG_MAX_BYTES];
} h_arg;
typedef struct h_launch {
    int prog, dims, nargs, got; /* got: the arguments read so far */
    char name[128];
    size_t g[3], l[3];
    h_arg *args;
} h_launch;

typedef struct helper {
    graft_context *ctx;
    h_prog *progs;
    int nprogs;
    size_t *buf_size;
    cl_mem *bufs;
    int nbufs;
    size_t bytes, budget;
    h_launch *pend;
    int npend, cappend;
    uint64_t *done;
    size_t ndone, capdone;
    long ran;
    int log;
} helper;

static int grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap) return 0;
    int c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return -1;
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(c - *cap) * elem);
    *p = q;
    *cap = c;
    return 0;
}

static cl_mem helper_buffer(helper *h, int id)
{
    if (id < 0 || id >= h->nbufs || !h->buf_size[id]) return NULL;
    if (h->bufs[id]) return h->bufs[id];
    if (h->bytes + h->buf_size[id] > h->budget) return NULL;
    graft_error e = {0};
    cl_mem m;
    if (buffer_create(h->ctx, h->buf_size[id], &m, &e)) return NULL;
    unsigned char zero = 0; /* zeros: indices read from memory (labels, rows) stay in range */
    if (clEnqueueFillBuffer(h->ctx->queue, m, &zero, 1, 0, h->buf_size[id], 0, NULL, NULL) !=
        CL_SUCCESS) {
        clReleaseMemObject(m);
        return NULL;
    }
    h->bytes += h->buf_size[id];
    return h->bufs[id] = m;
}

static void helper_run(helper *h, h_launch *L)
{
    if (L->prog < 0 || L->prog >= h->nprogs || !h->progs[L->prog].source) return;
    h_prog *p = &h->progs[L->prog];
    uint64_t key =
        fnv(fnv(fnv(0xcbf29ce484222325ull, &L->prog, sizeof L->prog), L->name, strlen(L->name)),
            L->l[0] ? (const void *)L->l : (const void *)L->g, sizeof L->g);
    for (size_t i = 0; i < h->ndone; i++)
        if (h->done[i] == key) return;
    if (h->ndone == h->capdone) {
        int c = (int)h->capdone;
        if (grow((void **)&h->done, &c, (int)h->ndone + 1, sizeof *h->done)) return;
        h->capdone = (size_t)c;
    }
    h->done[h->ndone++] = key;
    if (p->failed) return;
    if (!p->program) {
        graft_error e = {0};
        if (program_get(h->ctx, p->source, p->options, &p->program, &e)) {
            p->failed = 1;
            return;
        }
    }
    cl_int rc;
    cl_kernel k = clCreateKernel(p->program, L->name, &rc);
    if (rc != CL_SUCCESS) return;
    for (int i = 0; i < L->nargs && rc == CL_SUCCESS; i++) {
        h_arg *a = &L->args[i];
        if (a->kind == 'l') {
            rc = clSetKernelArg(k, (cl_uint)i, a->size, NULL);
        } else if (a->kind == 'v') {
            rc = clSetKernelArg(k, (cl_uint)i, a->size, a->v);
        } else {
            cl_mem m = a->kind == 'b' ? helper_buffer(h, a->buf) : NULL;
            if (a->kind == 'b' && !m)
                rc = CL_OUT_OF_RESOURCES; /* over budget: skip it */
            else
                rc = clSetKernelArg(k, (cl_uint)i, sizeof m, &m);
        }
    }
    double t0 = now_seconds();
    graft_error e = {0};
    if (rc == CL_SUCCESS && !launch(h->ctx, k, L->dims, L->g, L->l[0] ? L->l : NULL, NULL, &e) &&
        !queue_finish(h->ctx, &e)) {
        h->ran++;
        if (h->log)
            fprintf(stderr, "compile-ahead helper: %.3f %s (%s) %.3f s\n", now_seconds(), L->name,
                    p->source, now_seconds() - t0);
    }
    clReleaseKernel(k);
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* one line of the protocol; returns -1 on a line it cannot read */
static int helper_line(helper *h, char *line)
{
    int id;
    if (line[0] == 'P' && line[1] == ' ') {
        int n = 0;
        char src[64];
        if (sscanf(line + 2, "%d %63s %n", &id, src, &n) < 2 || id < 0 || id > 10000) return -1;
        if (grow((void **)&h->progs, &h->nprogs, id + 1, sizeof *h->progs)) return -1;
        free(h->progs[id].source);
        free(h->progs[id].options);
        h->progs[id].source = strdup(src);
        h->progs[id].options = strdup(n ? line + 2 + n : "");
        h->progs[id].program = NULL;
        h->progs[id].failed = !h->progs[id].source || !h->progs[id].options;
        return 0;
    }
    if (line[0] == 'B' && line[1] == ' ') {
        size_t size;
        if (sscanf(line + 2, "%d %zu", &id, &size) != 2 || id < 0 || id > 1000000) return -1;
        int cap = h->nbufs, cap2 = h->nbufs;
        if (grow((void **)&h->buf_size, &cap, id + 1, sizeof *h->buf_size) ||
            grow((void **)&h->bufs, &cap2, id + 1, sizeof *h->bufs))
            return -1;
        h->nbufs = cap < cap2 ? cap : cap2;
        if (h->bufs[id]) { /* an id is never reused with another size; keep it simple anyway */
            clReleaseMemObject(h->bufs[id]);
            h->bytes -= h->buf_size[id];
            h->bufs[id] = NULL;
        }
        h->buf_size[id] = size;
        return 0;
    }
    if (line[0] == 'L' && line[1] == ' ') {
        if (grow((void **)&h->pend, &h->cappend, h->npend + 1, sizeof *h->pend)) return -1;
        h_launch *L = &h->pend[h->npend];
        memset(L, 0, sizeof *L);
        if (sscanf(line + 2, "%d %127s %d %zu %zu %zu %zu %zu %zu %d", &L->prog, L->name, &L->dims,
                   &L->g[0], &L->g[1], &L->g[2], &L->l[0], &L->l[1], &L->l[2], &L->nargs) != 10 ||
            L->dims < 1 || L->dims > 3 || L->nargs < 0 || L->nargs > ARGS_MAX)
            return -1;
        double items = 1;
        for (int i = 0; i < L->dims; i++) {
            if (!L->g[i] || (L->l[0] && (!L->l[i] || L->g[i] % L->l[i]))) return -1;
            items *= (double)L->g[i];
        }
        if (items > 4294967296.0) return -1; /* nothing Graft launches is that large */
        if (!(L->args = calloc((size_t)(L->nargs ? L->nargs : 1), sizeof *L->args))) return -1;
        h->npend++;
        return 0;
    }
    if (line[0] == 'A' && line[1] == ' ' && h->npend) {
        h_launch *L = &h->pend[h->npend - 1];
        if (L->got >= L->nargs) return -1;
        h_arg *a = &L->args[L->got];
        char kind = line[2];
        if (kind == 'b') {
            if (sscanf(line + 4, "%d", &a->buf) != 1) return -1;
        } else if (kind == 'l') {
            if (sscanf(line + 4, "%u", &a->size) != 1) return -1;
        } else if (kind == 'v') {
            int n = 0;
            if (sscanf(line + 4, "%u %n", &a->size, &n) != 1 || a->size > ARG_MAX_BYTES) return -1;
            const char *x = line + 4 + n;
            for (uint32_t j = 0; j < a->size; j++) {
                int hi = hexval(x[2 * j]), lo = hi < 0 ? -1 : hexval(x[2 * j + 1]);
                if (lo < 0) return -1;
                a->v[j] = (unsigned char)(hi * 16 + lo);
            }
        } else if (kind != 'n') {
            return -1;
        }
        a->kind = kind;
        L->got++;
        return 0;
    }
    return -1;
}

/* The newest launch first: the queue of the process it helps starts at the oldest. */
static void helper_run_pending(helper *h)
{
    for (int i = h->npend - 1; i >= 0; i--) {
        if (h->pend[i].got == h->pend[i].nargs) helper_run(h, &h->pend[i]);
        free(h->pend[i].args);
    }
    h->npend = 0;
}

/* One line of input. A batch's lines are kept until its "E CHECKSUM" line; a batch that does not
 * check out is dropped whole (counted in *bad), so nothing half-read ever runs. */
static void helper_input(helper *h, const char *line, size_t n, char **batch, size_t *len,
                         size_t *cap, int *bad)
{
    unsigned long long want;
    char tail;
    if (line[0] == 'E' && sscanf(line, "E %16llx%c", &want, &tail) == 1) {
        if (batch_sum(*batch ? *batch : "", *len) != want) {
            ++*bad;
        } else {
            for (size_t i = 0; i < *len;) {
                char *nl = memchr(*batch + i, '\n', *len - i);
                *nl = 0;
                if (helper_line(h, *batch + i)) ++*bad;
                i = (size_t)(nl - *batch) + 1;
            }
            helper_run_pending(h);
        }
        for (int i = 0; i < h->npend; i++)
            free(h->pend[i].args);
        h->npend = 0;
        *len = 0;
        return;
    }
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : 65536;
        while (c < *len + n + 1)
            c *= 2;
        char *b = realloc(*batch, c);
        if (!b) {
            ++*bad;
            return;
        }
        *batch = b;
        *cap = c;
    }
    memcpy(*batch + *len, line, n);
    (*batch)[*len + n] = '\n';
    *len += n + 1;
}

int ahead_helper_main(int argc, char **argv)
{
    const char *spec = NULL, *file = NULL;
    int fd = -1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            spec = argv[++i];
        else if (strcmp(argv[i], "--fd") == 0 && i + 1 < argc)
            fd = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !file)
            file = argv[i];
        else {
            fprintf(stderr, "usage: graft __compile-ahead --device SPEC (--fd N | FILE)\n");
            return 2;
        }
    }
    if (fd < 0 && !file) {
        fprintf(stderr, "usage: graft __compile-ahead --device SPEC (--fd N | FILE)\n");
        return 2;
    }
    if (fd >= 0) {
        /* a helper outlives nothing: it dies with the process it works for */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1) return 0;
    } else if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "graft: error: cannot open %s: %s\n", file, strerror(errno));
        return 1;
    }
    /* build from source, as the process it helps does: a driver binary would compile every
     * kernel for every work-group size */
    setenv("GRAFT_PROGRAM_CACHE", "driver", 1);
    setenv("GRAFT_COMPILE_AHEAD", "off", 1);
    graft_context_options o = {.device = spec, .no_cache = 1};
    helper h = {0};
    const char *log = getenv("GRAFT_COMPILE_AHEAD_LOG");
    h.log = log && *log && strcmp(log, "0") != 0;
    graft_error e = {0};
    if (graft_context_create(&o, &h.ctx, &e)) {
        fprintf(stderr, "graft: error: %s\n", e.message);
        return 1;
    }
    uint64_t mem = h.ctx->info.global_mem_bytes;
    h.budget = mem ? (size_t)(mem / 8) : ((size_t)1 << 30);
    if (h.budget > ((size_t)2 << 30)) h.budget = (size_t)2 << 30;
    size_t cap = 1 << 20, len = 0, blen = 0, bcap = 0;
    char *buf = malloc(cap), *batch = NULL;
    int bad = 0;
    while (buf) {
        if (len == cap) { /* a line longer than the buffer: nothing sends those */
            bad++;
            len = 0;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
        size_t start = 0;
        for (size_t i = 0; i < len; i++)
            if (buf[i] == '\n') {
                buf[i] = 0;
                helper_input(&h, buf + start, i - start, &batch, &blen, &bcap, &bad);
                start = i + 1;
            }
        memmove(buf, buf + start, len - start);
        len -= start;
    }
    free(buf);
    free(batch);
    if (blen) bad++; /* a batch without its end */
    if (file)
        printf("compile-ahead: ran %ld launches, %d unreadable lines or batches\n", h.ran, bad);
    for (int i = 0; i < h.nbufs; i++)
        if (h.bufs[i]) clReleaseMemObject(h.bufs[i]);
    for (int i = 0; i < h.nprogs; i++) {
        free(h.progs[i].source);
        free(h.progs[i].options);
    }
    for (int i = 0; i < h.npend; i++)
        free(h.pend[i].args);
    free(h.pend);
    free(h.progs);
    free(h.bufs);
    free(h.buf_size);
    free(h.done);
    graft_context_free(h.ctx);
    if (file) close(fd);
    return bad ? 1 : 0;
}
