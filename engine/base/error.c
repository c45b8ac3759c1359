/* error.c — the one error type: setting, formatting, exit codes, and diagnostics lists. */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *graft_status_name(graft_status s)
{
    switch (s) {
    case GRAFT_OK: return "ok";
    case GRAFT_STATUS_USAGE: return "usage";
    case GRAFT_STATUS_BAD_RECIPE: return "bad recipe";
    case GRAFT_STATUS_BAD_DATA: return "bad data";
    case GRAFT_STATUS_IO: return "i/o";
    case GRAFT_STATUS_OPENCL: return "opencl";
    case GRAFT_STATUS_NOMEM: return "out of memory";
    case GRAFT_STATUS_UNSUPPORTED: return "unsupported";
    case GRAFT_STATUS_INTERNAL: return "internal";
    }
    return "unknown";
}

int graft_exit_code(graft_status s)
{
    if (s == GRAFT_OK) return 0;
    if (s == GRAFT_STATUS_USAGE || s == GRAFT_STATUS_BAD_RECIPE) return 2;
    return 1;
}

graft_status err_vset(graft_error *e, graft_status s, graft_mark at, const char *fmt, va_list ap)
{
    if (!e) return s;
    e->status = s;
    e->file[0] = 0;
    e->line = at.line;
    e->col = at.col;
    if (at.file) snprintf(e->file, sizeof e->file, "%s", at.file);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    return s;
}

graft_status err_set(graft_error *e, graft_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(e, s, (graft_mark){0}, fmt, ap);
    va_end(ap);
    return s;
}

graft_status err_at(graft_error *e, graft_status s, graft_mark at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(e, s, at, fmt, ap);
    va_end(ap);
    return s;
}

void err_prefix(graft_error *e, const char *fmt, ...)
{
    if (!e) return;
    char pre[512], old[sizeof e->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->message, sizeof old);
    size_t n = strlen(pre);
    if (n > sizeof e->message - 3) n = sizeof e->message - 3;
    memcpy(e->message, pre, n);
    memcpy(e->message + n, ": ", 2);
    size_t left = sizeof e->message - n - 3;
    size_t m = strnlen(old, left);
    memcpy(e->message + n + 2, old, m);
    e->message[n + 2 + m] = 0;
}

void graft_error_format(const graft_error *e, char *out, size_t n)
{
    if (e->file[0] && e->line > 0)
        snprintf(out, n, "%s:%d:%d: error: %s", e->file, e->line, e->col, e->message);
    else if (e->file[0])
        snprintf(out, n, "%s: error: %s", e->file, e->message);
    else
        snprintf(out, n, "error: %s", e->message);
}

void graft_diags_add(graft_diags *d, graft_mark at, const char *fmt, ...)
{
    if (d->count == d->cap) {
        int cap = d->cap ? d->cap * 2 : 16;
        graft_diag *n = realloc(d->items, (size_t)cap * sizeof *n);
        if (!n) {
            d->nomem = true; /* drop the diagnostic rather than crash, but say so */
            return;
        }
        d->items = n;
        d->cap = cap;
    }
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    graft_diag *g = &d->items[d->count];
    g->file = strdup(at.file ? at.file : "");
    g->message = strdup(msg);
    g->line = at.line;
    g->col = at.col;
    if (!g->file || !g->message) {
        free(g->file);
        free(g->message);
        return;
    }
    d->count++;
}

static int diag_cmp(const graft_diag *a, const graft_diag *b)
{
    int c = strcmp(a->file, b->file);
    if (c) return c;
    if (a->line != b->line) return a->line < b->line ? -1 : 1;
    if (a->col != b->col) return a->col < b->col ? -1 : 1;
    return 0;
}

void graft_diags_sort(graft_diags *d)
{
    /* insertion sort: stable, and lists are short */
    for (int i = 1; i < d->count; i++) {
        graft_diag t = d->items[i];
        int j = i - 1;
        while (j >= 0 && diag_cmp(&d->items[j], &t) > 0) {
            d->items[j + 1] = d->items[j];
            j--;
        }
        d->items[j + 1] = t;
    }
}

void graft_diags_print(const graft_diags *d, FILE *to)
{
    for (int i = 0; i < d->count; i++) {
        const graft_diag *g = &d->items[i];
        if (g->file[0] && g->line > 0)
            fprintf(to, "%s:%d:%d: error: %s\n", g->file, g->line, g->col, g->message);
        else if (g->file[0])
            fprintf(to, "%s: error: %s\n", g->file, g->message);
        else
            fprintf(to, "error: %s\n", g->message);
    }
}

void graft_diags_free(graft_diags *d)
{
    for (int i = 0; i < d->count; i++) {
        free(d->items[i].file);
        free(d->items[i].message);
    }
    free(d->items);
    d->items = NULL;
    d->count = d->cap = 0;
}

int graft_diags_count(const graft_diags *d)
{
    return d ? d->count : 0;
}

void graft_diags_format(const graft_diags *d, int i, char *buf, size_t n)
{
    if (!n) return;
    buf[0] = 0;
    if (!d || i < 0 || i >= d->count) return;
    const graft_diag *g = &d->items[i];
    if (g->file[0] && g->line > 0)
        snprintf(buf, n, "%s:%d:%d: error: %s", g->file, g->line, g->col, g->message);
    else if (g->file[0])
        snprintf(buf, n, "%s: error: %s", g->file, g->message);
    else
        snprintf(buf, n, "error: %s", g->message);
}
