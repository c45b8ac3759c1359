/* table.c — tables of string cells for reports: rendered as aligned text or Markdown (numbers
 * right-aligned, names left-aligned) and as HTML, into a growable buffer. */
#include "base.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void table_init(table *t, int cols, int rows)
{
    t->cols = cols;
    t->rows = 0;
    t->cell = calloc((size_t)cols * (size_t)rows, sizeof *t->cell);
}

void table_set(table *t, int row, int col, const char *fmt, ...)
{
    if (!t->cell) return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    free(t->cell[row * t->cols + col]);
    t->cell[row * t->cols + col] = strdup(text);
    if (row + 1 > t->rows) t->rows = row + 1;
}

const char *table_cell(const table *t, int r, int c)
{
    const char *s = t->cell ? t->cell[r * t->cols + c] : NULL;
    return s ? s : "";
}

void table_free(table *t)
{
    if (t->cell)
        for (int i = 0; i < t->rows * t->cols; i++) free(t->cell[i]);
    free(t->cell);
    t->cell = NULL;
}

/* Display width in characters (UTF-8 continuation bytes do not count). */
static int width(const char *s)
{
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

bool table_numeric(const char *s)
{
    return isdigit((unsigned char)s[0]) || strcmp(s, "-") == 0 ||
           (s[0] == '-' && isdigit((unsigned char)s[1])) || strcmp(s, "nan") == 0;
}

void table_print(const table *t, bool md, buf *to)
{
    int *w = calloc((size_t)t->cols, sizeof *w);
    bool *num = calloc((size_t)t->cols, sizeof *num);
    if (!w || !num) {
        free(w);
        free(num);
        to->failed = true;
        return;
    }
    for (int c = 0; c < t->cols; c++) {
        num[c] = true; /* numbers read best right-aligned, names left-aligned */
        for (int r = 0; r < t->rows; r++) {
            if (width(table_cell(t, r, c)) > w[c]) w[c] = width(table_cell(t, r, c));
            if (r > 0 && !table_numeric(table_cell(t, r, c))) num[c] = false;
        }
    }
    for (int r = 0; r < t->rows; r++) {
        for (int c = 0; c < t->cols; c++) {
            const char *s = table_cell(t, r, c);
            int pad = w[c] - width(s);
            const char *sep = md ? "| " : c ? "  " : "";
            if (num[c]) buf_printf(to, "%s%*s%s", sep, pad, "", s);
            else buf_printf(to, "%s%s%*s", sep, s, pad, "");
            if (md) buf_append(to, " ", 1);
        }
        buf_printf(to, md ? "|\n" : "\n");
        if (r == 0 && md) {
            for (int c = 0; c < t->cols; c++) {
                buf_append(to, "|", 1);
                for (int k = 0; k < w[c] + 2; k++)
                    buf_append(to, num[c] && k == w[c] + 1 ? ":" : "-", 1);
            }
            buf_printf(to, "|\n");
        }
    }
    free(w);
    free(num);
}

void buf_html(buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': buf_printf(b, "&amp;"); break;
        case '<': buf_printf(b, "&lt;"); break;
        case '>': buf_printf(b, "&gt;"); break;
        case '"': buf_printf(b, "&quot;"); break;
        default:
            /* control characters have no place in XHTML text */
            if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t') buf_append(b, s, 1);
        }
    }
}

void table_html(const table *t, buf *b)
{
    buf_printf(b, "<table>\n<thead><tr>");
    for (int c = 0; c < t->cols; c++) {
        buf_printf(b, "<th>");
        buf_html(b, table_cell(t, 0, c));
        buf_printf(b, "</th>");
    }
    buf_printf(b, "</tr></thead>\n<tbody>\n");
    for (int r = 1; r < t->rows; r++) {
        buf_printf(b, "<tr>");
        for (int c = 0; c < t->cols; c++) {
            const char *s = table_cell(t, r, c);
            bool num = c >= 1 && table_numeric(s);
            buf_printf(b, "<td%s%s>", num ? " class=\"n\"" : "",
                       strchr(s, '!') ? " title=\"spread above 10%\"" : "");
            buf_html(b, s);
            buf_printf(b, "</td>");
        }
        buf_printf(b, "</tr>\n");
    }
    buf_printf(b, "</tbody>\n</table>\n");
}
