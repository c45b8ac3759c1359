/* sources.c — lookup in the tables of embedded cl/ sources and builtin declarations generated at
 * build time (tools/embed_cl.py). */
#include "runtime.h"

#include <stdlib.h>
#include <string.h>

extern const struct {
    const char *name;
    const char *src;
} graft_cl_sources[];

const char *cl_source_get(const char *name)
{
    for (int i = 0; graft_cl_sources[i].name; i++)
        if (strcmp(graft_cl_sources[i].name, name) == 0) return graft_cl_sources[i].src;
    return NULL;
}

int cl_source_count(void)
{
    int n = 0;
    while (graft_cl_sources[n].name) n++;
    return n;
}

const char *cl_source_name(int i)
{
    return graft_cl_sources[i].name;
}

/* cl/builtins_lean.cl expanded into its declarations by tools/embed_cl.py, by function name (sorted
 * as strcmp sorts), the double overloads apart. */
extern const struct {
    const char *name, *decls, *decls_fp64;
} graft_cl_builtins[];

static int ident_char(char c, int first)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (!first && c >= '0' && c <= '9');
}

static char *put(char *w, const char *s)
{
    size_t l = strlen(s);
    memcpy(w, s, l + 1);
    return w + l;
}

char *cl_builtin_decls(const char *src)
{
    int n = 0;
    while (graft_cl_builtins[n].name) n++;
    if (n == 0) { /* a table built without a preprocessor: the whole file */
        const char *all = cl_source_get("builtins_lean");
        return all ? strdup(all) : NULL;
    }
    unsigned char *used = calloc((size_t)n, 1);
    if (!used) return NULL;
    /* every identifier of the text names the builtin it spells, and those it is the stem of
     * before digits only: vload##n's `vload` names vload2 .. vload16. Words in comments and
     * strings count too; a declaration too many is harmless, one too few fails the build. */
    for (const char *p = src; *p;) {
        if (!ident_char(*p, 1) || (p > src && ident_char(p[-1], 0))) {
            p++;
            continue;
        }
        const char *q = p;
        while (ident_char(*q, 0)) q++;
        size_t len = (size_t)(q - p);
        int lo = 0, hi = n; /* the first name not below the word */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (strncmp(graft_cl_builtins[mid].name, p, len) < 0) lo = mid + 1;
            else hi = mid;
        }
        for (int j = lo; j < n && strncmp(graft_cl_builtins[j].name, p, len) == 0; j++) {
            const char *rest = graft_cl_builtins[j].name + len;
            while (*rest >= '0' && *rest <= '9') rest++;
            if (*rest == 0) used[j] = 1;
        }
        p = q;
    }
    size_t size = 32;
    for (int j = 0; j < n; j++)
        if (used[j])
            size += strlen(graft_cl_builtins[j].decls) + strlen(graft_cl_builtins[j].decls_fp64);
    char *out = malloc(size), *w = out;
    if (out) {
        for (int j = 0; j < n; j++)
            if (used[j]) w = put(w, graft_cl_builtins[j].decls);
        w = put(w, "#ifdef cl_khr_fp64\n");
        for (int j = 0; j < n; j++)
            if (used[j]) w = put(w, graft_cl_builtins[j].decls_fp64);
        put(w, "#endif\n");
    }
    free(used);
    return out;
}
