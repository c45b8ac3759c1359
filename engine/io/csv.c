/* csv.c — numeric CSV tables: comma-separated numbers, one column holding an integer label
 * (negative index counts from the end), an optional header row (the first row, when any of its
 * fields is not a number), blank lines skipped. Errors carry FILE:LINE:COL. */
#include "io.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void csv_free(csv_table *t)
{
    if (!t) return;
    free(t->x);
    free(t->labels);
    memset(t, 0, sizeof *t);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Parse the field [s, end) as a finite number; false when it is not one. */
static bool number(const char *s, const char *end, double *v)
{
    while (s < end && is_space(*s)) s++;
    while (end > s && is_space(end[-1])) end--;
    if (end - s >= 2 && *s == '"' && end[-1] == '"') s++, end--;
    char tmp[80];
    size_t n = (size_t)(end - s);
    if (n == 0 || n >= sizeof tmp) return false;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *stop;
    errno = 0;
    *v = strtod(tmp, &stop);
    return stop == tmp + n && isfinite(*v) && errno != ERANGE;
}

typedef struct line_iter {
    const char *p, *end;
    int lineno;
} line_iter;

/* The next line that is not blank: [*ls, *le) without the newline; false at the end. */
static bool next_line(line_iter *it, const char **ls, const char **le)
{
    while (it->p < it->end) {
        const char *s = it->p, *nl = memchr(s, '\n', (size_t)(it->end - s));
        const char *e = nl ? nl : it->end;
        it->p = nl ? nl + 1 : it->end;
        it->lineno++;
        const char *q = s;
        while (q < e && is_space(*q)) q++;
        if (q == e) continue;
        *ls = s;
        *le = e;
        return true;
    }
    return false;
}

static int count_fields(const char *s, const char *e)
{
    int n = 1;
    for (; s < e; s++) n += *s == ',';
    return n;
}

static graft_status parse(const char *path, const char *data, size_t len, int label_column,
                          csv_table *out, graft_error *e)
{
    memset(out, 0, sizeof *out);
    line_iter it = {data, data + len, 0};
    const char *ls, *le;
    if (!next_line(&it, &ls, &le))
        return err_set(e, GRAFT_STATUS_BAD_DATA, "%s: the CSV file has no rows", path);
    int cols = count_fields(ls, le), first_line = it.lineno;
    int label = label_column < 0 ? cols + label_column : label_column;
    if (label < 0 || label >= cols)
        return err_at(e, GRAFT_STATUS_BAD_DATA, (graft_mark){path, first_line, 1},
                      "label_column %d is outside the %d columns of this CSV file", label_column,
                      cols);
    if (cols < 2)
        return err_at(e, GRAFT_STATUS_BAD_DATA, (graft_mark){path, first_line, 1},
                      "the CSV file has only the label column, no features");
    /* header row: the first row, when some field in it is not a number */
    bool header = false;
    for (const char *f = ls; f <= le;) {
        const char *c = memchr(f, ',', (size_t)(le - f));
        const char *fe = c ? c : le;
        double v;
        if (!number(f, fe, &v)) header = true;
        f = fe + 1;
    }
    bool have = !header || next_line(&it, &ls, &le);
    long cap = 0;
    int features = cols - 1;
    graft_status s = GRAFT_OK;
    while (have) {
        int n = count_fields(ls, le);
        if (n != cols) {
            s = err_at(e, GRAFT_STATUS_BAD_DATA, (graft_mark){path, it.lineno, 1},
                       "expected %d columns (as on line %d), found %d", cols, first_line, n);
            goto error;
        }
        if (out->rows == cap) {
            long nc = cap ? cap * 2 : 256;
            float *x = realloc(out->x, (size_t)nc * (size_t)features * sizeof *x);
            if (x) out->x = x;
            int *y = realloc(out->labels, (size_t)nc * sizeof *y);
            if (y) out->labels = y;
            if (!x || !y) {
                s = err_set(e, GRAFT_STATUS_NOMEM, "%s: out of memory at line %d", path,
                            it.lineno);
                goto error;
            }
            cap = nc;
        }
        float *row = out->x + (size_t)out->rows * (size_t)features;
        int col = 0, k = 0;
        for (const char *f = ls; col < cols; col++) {
            const char *c = memchr(f, ',', (size_t)(le - f));
            const char *fe = c ? c : le;
            double v;
            if (!number(f, fe, &v)) {
                const char *a = f, *b = fe;
                while (a < b && is_space(*a)) a++;
                while (b > a && is_space(b[-1])) b--;
                s = err_at(e, GRAFT_STATUS_BAD_DATA,
                           (graft_mark){path, it.lineno, (int)(f - ls) + 1},
                           "column %d: '%.*s' is not a number", col + 1,
                           (int)(b - a > 40 ? 40 : b - a), a);
                goto error;
            }
            if (col == label) {
                if (v != floor(v) || fabs(v) > 1e9) {
                    s = err_at(e, GRAFT_STATUS_BAD_DATA,
                               (graft_mark){path, it.lineno, (int)(f - ls) + 1},
                               "label column %d: %g is not an integer class label", col + 1, v);
                    goto error;
                }
                out->labels[out->rows] = (int)v;
            } else {
                row[k++] = (float)v;
            }
            f = fe + 1;
        }
        out->rows++;
        have = next_line(&it, &ls, &le);
    }
    if (out->rows == 0) {
        s = err_set(e, GRAFT_STATUS_BAD_DATA, "%s: the CSV file has a header but no data rows",
                    path);
        goto error;
    }
    out->features = features;
    return GRAFT_OK;
error:
    csv_free(out);
    return s;
}

graft_status csv_read(const char *path, int label_column, csv_table *out, graft_error *e)
{
    memset(out, 0, sizeof *out);
    char *data = NULL;
    size_t len = 0;
    graft_status s = fs_read_file(path, (size_t)4 << 30, &data, &len, e);
    if (s) return s;
    s = parse(path, data, len, label_column, out, e);
    free(data);
    return s;
}

graft_status csv_read_mem(const char *name, const void *data, size_t len, int label_column,
                          csv_table *out, graft_error *e)
{
    return parse(name, data, len, label_column, out, e);
}
