/* cmd_common.c — what the recipe-taking commands share: loading a recipe with its --set overrides
 * (printing every diagnostic) and the training progress display. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_load_recipe(const char *file, const char *const *sets, int nsets, graft_recipe **out)
{
    graft_diags d = {0};
    graft_status s = recipe_load(file, sets, nsets, out, &d);
    if (s == GRAFT_STATUS_NOMEM) {
        /* not the recipe's fault: one runtime error line, exit 1 */
        fprintf(stderr, "graft: error: out of memory while loading the recipe %s\n", file);
        graft_diags_free(&d);
        return 1;
    }
    if (s) {
        graft_diags_sort(&d);
        graft_diags_print(&d, stderr);
        if (d.count == 0) fprintf(stderr, "graft: error: cannot load recipe %s\n", file);
        graft_diags_free(&d);
        return graft_exit_code(s) ? graft_exit_code(s) : 2;
    }
    graft_diags_free(&d);
    return 0;
}

static void fmt_time(double s, char *out, size_t n)
{
    if (!isfinite(s) || s < 0) s = 0;
    int m = (int)(s / 60), sec = (int)s % 60;
    snprintf(out, n, "%d:%02d", m, sec);
}

void cli_progress(void *user, const train_progress *p)
{
    cli_progress_state *st = user;
    if (st->quiet) return;
    if (p->note) {
        if (st->tty && st->bar_open) fputc('\n', stderr);
        st->bar_open = false;
        fprintf(stderr, "epoch %d/%d: %s\n", p->epoch, p->epochs, p->note);
        return;
    }
    char eta[32];
    fmt_time(p->eta_seconds, eta, sizeof eta);
    if (!p->epoch_done) {
        if (!st->tty) return; /* plain output: one line per epoch */
        double now = now_seconds(); /* redraw at most ten times a second */
        if (p->batch < p->nbatches && now - st->last_draw < 0.1) return;
        st->last_draw = now;
        int width = 24, fill = p->nbatches ? (int)(width * p->batch / p->nbatches) : width;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\repoch %d/%d [%s] %ld/%ld loss %.4f acc %.4f %.0f img/s ETA %s   ",
                p->epoch, p->epochs, bar, p->batch, p->nbatches, p->loss, p->accuracy,
                p->images_per_second, eta);
        st->bar_open = true;
        return;
    }
    if (st->tty && st->bar_open) fputc('\r', stderr);
    fprintf(stderr, "epoch %d/%d: loss %.4f acc %.4f", p->epoch, p->epochs, p->loss, p->accuracy);
    if (isfinite(p->val_loss)) fprintf(stderr, "  val_loss %.4f val_acc %.4f", p->val_loss, p->val_accuracy);
    fprintf(stderr, "  lr %.3g  %.0f img/s%s\n", p->lr, p->images_per_second,
            st->tty ? "                    " : "");
    st->bar_open = false;
}

void cli_progress_init(cli_progress_state *st, bool quiet)
{
    memset(st, 0, sizeof *st);
    st->quiet = quiet;
    /* the redrawn bar only on a terminal that can take a carriage return; elsewhere (pipes, logs,
     * TERM=dumb) one plain line per epoch. graft prints no colour at all, so NO_COLOR holds. */
    const char *term = getenv("TERM");
    st->tty = isatty(2) && !(term && strcmp(term, "dumb") == 0);
}

const char *cli_configs_dir(void)
{
    if (access("configs/recipes", R_OK) == 0) return "configs";
    if (access(GRAFT_SOURCE_DIR "/configs/recipes", R_OK) == 0) return GRAFT_SOURCE_DIR "/configs";
    return GRAFT_DATA_DIR "/configs";
}

/* Collect "--set K=V" values (the recipe stage checks their form and reports it at the option);
 * returns false (after printing) when there are too many. */
bool cli_add_set(cli_args *a, const char *value, const char **sets, int *nsets, int max)
{
    if (*nsets >= max) {
        cli_usage_error(a, "too many --set options (at most %d)", max);
        return false;
    }
    sets[(*nsets)++] = value;
    return true;
}
