/* ckpt.c — a run's epoch end on disk, written on a thread of its own. The trainer encodes the
 * epoch's files in memory (metrics.jsonl, the model's tensors, the optimizer state) and hands them
 * over; the next epoch trains while they are written, renamed and flushed (on ext4 the renames
 * over the previous pair cost as much as the writes: ~8 ms an epoch for fmnist-cnn's 7 MB, more
 * than a frozen-feature epoch's training, which is why trainer.c hands over at most one epoch end
 * every train.checkpoint_seconds). One epoch end is in flight at most: the next hand-over
 * waits for it, so the files on disk are never more than one hand-over behind, and a failed write
 * (a full disk) stops the run at the next epoch end, or at the run's end, with the same message
 * the synchronous write gave. Epoch ends larger than CKPT_BACKGROUND_MAX are written at once, so
 * a large model never holds two copies of its state through an epoch. */
#include "train.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CKPT_BACKGROUND_MAX ((size_t)256 << 20)

struct ckpt_writer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool started, quit, pending; /* pending: a job handed over and not yet written */
    ckpt_job job;
    graft_status status; /* the last job's result, until someone takes it */
    graft_error err;
};

void ckpt_job_clear(ckpt_job *j)
{
    free(j->metrics);
    free(j->model);
    free(j->state);
    free(j->best_model);
    memset(j, 0, sizeof *j);
}

/* The order that a kill or a full disk at any point leaves resumable: metrics.jsonl (resume keeps
 * only the lines of finished epochs), model.safetensors when best or an earlier best is pending
 * (an epoch that reruns after a kill rewrites it the same), then the pair state + last, which must
 * describe the same epoch: both are written complete as *.next first (a full disk fails here, the
 * previous pair untouched), then renamed state first, last second. A kill between the two renames
 * leaves last.safetensors.next with state's epoch, which the resume rolls forward. */
graft_status ckpt_commit(const ckpt_job *j, graft_error *e)
{
    char path[2300], state[2300], last[2300], state_next[2400], last_next[2400];
    snprintf(path, sizeof path, "%s/metrics.jsonl", j->dir);
    graft_status s = fs_write_atomic(path, j->metrics ? j->metrics : "", j->metrics_len, e);
    if (!s && (j->best || j->best_model)) {
        snprintf(path, sizeof path, "%s/model.safetensors", j->dir);
        s = fs_write_atomic(path, j->best ? j->model : j->best_model,
                            j->best ? j->model_len : j->best_model_len, e);
    }
    snprintf(state, sizeof state, "%s/state.safetensors", j->dir);
    snprintf(last, sizeof last, "%s/last.safetensors", j->dir);
    snprintf(state_next, sizeof state_next, "%s.next", state);
    snprintf(last_next, sizeof last_next, "%s.next", last);
    if (!s) s = fs_write_atomic(state_next, j->state, j->state_len, e);
    if (!s) s = fs_write_atomic(last_next, j->model, j->model_len, e);
    if (!s && rename(state_next, state) != 0)
        s = err_set(e, GRAFT_STATUS_IO, "cannot rename %s to %s: %s", state_next, state,
                    strerror(errno));
    if (!s && rename(last_next, last) != 0)
        s = err_set(e, GRAFT_STATUS_IO, "cannot rename %s to %s: %s", last_next, last,
                    strerror(errno));
    if (s) {
        unlink(state_next);
        unlink(last_next);
        if (fs_exists(state))
            err_prefix(
                e, "the checkpoint of epoch %d was not saved (the previous one in %s is intact)",
                j->epoch, j->dir);
    }
    return s;
}

static void *writer_main(void *arg)
{
    ckpt_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->pending && !w->quit) pthread_cond_wait(&w->cond, &w->lock);
        if (!w->pending) break;
        pthread_mutex_unlock(&w->lock);
        graft_error err = {0};
        graft_status s = ckpt_commit(&w->job, &err);
        pthread_mutex_lock(&w->lock);
        ckpt_job_clear(&w->job);
        if (s && !w->status) { /* the first failure is the one to report */
            w->status = s;
            w->err = err;
        }
        w->pending = false;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

graft_status ckpt_wait(ckpt_writer *w, graft_error *e)
{
    if (!w) return GRAFT_OK;
    pthread_mutex_lock(&w->lock);
    while (w->pending) pthread_cond_wait(&w->cond, &w->lock);
    graft_status s = w->status;
    if (s) *e = w->err;
    w->status = GRAFT_OK;
    pthread_mutex_unlock(&w->lock);
    return s;
}

/* The writer for *wp, created (thread started) at the first call; NULL when there is none to be
 * had, and the caller writes at once. */
static ckpt_writer *writer_for(ckpt_writer **wp)
{
    if (!*wp && (*wp = calloc(1, sizeof **wp))) {
        ckpt_writer *w = *wp;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        /* signals (Ctrl-C's stop flag, SIGXFSZ ignored) stay with the training thread */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        w->started = pthread_create(&w->thread, NULL, writer_main, w) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    return *wp && (*wp)->started ? *wp : NULL;
}

graft_status ckpt_submit(ckpt_writer **wp, ckpt_job *job, graft_error *e)
{
    graft_status s = ckpt_wait(*wp, e);
    ckpt_writer *w = NULL;
    if (!s && job->metrics_len + job->model_len + job->state_len <= CKPT_BACKGROUND_MAX)
        w = writer_for(wp);
    if (s || !w) { /* a failure before, a large epoch end or no thread: written now, or never */
        if (!s) s = ckpt_commit(job, e);
        ckpt_job_clear(job);
        return s;
    }
    pthread_mutex_lock(&w->lock);
    w->job = *job;
    memset(job, 0, sizeof *job);
    w->pending = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return GRAFT_OK;
}

void ckpt_free(ckpt_writer *w)
{
    if (!w) return;
    if (w->started) {
        pthread_mutex_lock(&w->lock);
        w->quit = true; /* after the job in flight, if any: its files are finished, not cut */
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
    }
    ckpt_job_clear(&w->job);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}
