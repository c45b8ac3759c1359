/* sources.c — lookup in the table of embedded cl/ sources generated at build time. */
#include "runtime.h"

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
