/* devspec.c — the device-spec grammar of --device, --devices, GRAFT_DEVICE and the recipe's
 * device / train.devices: parsing is pure (no OpenCL), so recipe/ checks specs at load time and
 * runtime/ matches them against the devices it finds, both through this one file. */
#include "base.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool word_is(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

graft_status devspec_parse(const char *spec, devspec *out, graft_error *e)
{
    memset(out, 0, sizeof *out);
    if (!spec) spec = "";
    char s[128];
    if (strlen(spec) >= sizeof s)
        return err_set(e, GRAFT_STATUS_USAGE, "device spec is too long (%zu characters)",
                       strlen(spec));
    snprintf(s, sizeof s, "%s", spec);
    str_trim(s);
    if (!s[0]) {
        out->kind = DEVSPEC_DEFAULT;
        return GRAFT_OK;
    }
    if (word_is(s, "cpu") || word_is(s, "gpu")) {
        out->kind = DEVSPEC_TYPE;
        out->type = word_is(s, "cpu") ? GRAFT_DEVICE_CPU : GRAFT_DEVICE_GPU;
        return GRAFT_OK;
    }
    static const char *vendors[] = {"nvidia", "amd", "intel", "pocl"};
    for (size_t i = 0; i < ARRAY_LEN(vendors); i++)
        if (word_is(s, vendors[i])) {
            out->kind = DEVSPEC_VENDOR;
            snprintf(out->word, sizeof out->word, "%s", vendors[i]);
            return GRAFT_OK;
        }
    /* P:D — two non-negative integers; anything with a colon that is not that is an error, since
     * device names rarely contain colons and a typo like "0:" should not silently match a name. */
    const char *colon = strchr(s, ':');
    if (colon) {
        char *end;
        bool digits = isdigit((unsigned char)s[0]) && isdigit((unsigned char)colon[1]);
        long p = strtol(s, &end, 10);
        bool ok = digits && end == colon;
        long d = ok ? strtol(colon + 1, &end, 10) : -1;
        ok = ok && *end == 0 && p >= 0 && d >= 0 && p < 1000 && d < 1000;
        if (!ok)
            return err_set(e, GRAFT_STATUS_USAGE,
                           "bad device spec '%s': expected PLATFORM:DEVICE indexes such as 0:0", s);
        out->kind = DEVSPEC_INDEX;
        out->platform = (int)p;
        out->device = (int)d;
        return GRAFT_OK;
    }
    out->kind = DEVSPEC_SUBSTRING;
    snprintf(out->word, sizeof out->word, "%s", s);
    return GRAFT_OK;
}

static bool icontains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0) return true;
    return n == 0;
}

static bool vendor_match(const graft_device_info *d, const char *word)
{
    if (strcmp(word, "pocl") == 0)
        return icontains(d->platform, "portable computing language") ||
               icontains(d->platform, "pocl");
    if (strcmp(word, "amd") == 0)
        return icontains(d->vendor, "advanced micro devices") || icontains(d->vendor, "amd") ||
               icontains(d->platform, "amd");
    return icontains(d->vendor, word) || icontains(d->platform, word);
}

graft_status devspec_match(const devspec *s, const graft_device_info *list, int n, int *index,
                           graft_error *e)
{
    *index = -1;
    switch (s->kind) {
    case DEVSPEC_DEFAULT:
        for (int i = 0; i < n && *index < 0; i++)
            if (list[i].type == GRAFT_DEVICE_GPU) *index = i;
        for (int i = 0; i < n && *index < 0; i++)
            if (list[i].type == GRAFT_DEVICE_CPU) *index = i;
        if (*index < 0 && n > 0) *index = 0;
        break;
    case DEVSPEC_TYPE:
        for (int i = 0; i < n && *index < 0; i++)
            if (list[i].type == s->type) *index = i;
        break;
    case DEVSPEC_VENDOR:
        /* prefer a GPU of that vendor over its CPU device */
        for (int i = 0; i < n && *index < 0; i++)
            if (vendor_match(&list[i], s->word) && list[i].type == GRAFT_DEVICE_GPU) *index = i;
        for (int i = 0; i < n && *index < 0; i++)
            if (vendor_match(&list[i], s->word)) *index = i;
        break;
    case DEVSPEC_INDEX:
        for (int i = 0; i < n && *index < 0; i++)
            if (list[i].platform_index == s->platform && list[i].device_index == s->device)
                *index = i;
        break;
    case DEVSPEC_SUBSTRING:
        for (int i = 0; i < n && *index < 0; i++)
            if (icontains(list[i].name, s->word)) *index = i;
        for (int i = 0; i < n && *index < 0; i++)
            if (icontains(list[i].platform, s->word) || icontains(list[i].vendor, s->word))
                *index = i;
        break;
    }
    if (*index >= 0) return GRAFT_OK;
    char have[1024] = "";
    size_t used = 0;
    for (int i = 0; i < n && used + 1 < sizeof have; i++) {
        int w = snprintf(have + used, sizeof have - used, "%s%d:%d %s (%s)", i ? "; " : "",
                         list[i].platform_index, list[i].device_index, list[i].name,
                         graft_device_type_name(list[i].type));
        if (w < 0) break;
        used += (size_t)w;
    }
    const char *what = s->kind == DEVSPEC_TYPE    ? graft_device_type_name(s->type)
                       : s->kind == DEVSPEC_INDEX ? "that index"
                                                  : s->word;
    if (s->kind == DEVSPEC_INDEX)
        return err_set(e, GRAFT_STATUS_USAGE, "no device %d:%d; devices: %s", s->platform,
                       s->device, n ? have : "none");
    return err_set(e, GRAFT_STATUS_USAGE, "no device matches '%s'; devices: %s", what,
                   n ? have : "none");
}

graft_status devspec_parse_list(const char *specs, devspec *out, int cap, int *n, bool *all,
                                graft_error *e)
{
    *n = 0;
    *all = false;
    char s[1024];
    if (!specs || strlen(specs) >= sizeof s)
        return err_set(e, GRAFT_STATUS_USAGE, "device list is %s", specs ? "too long" : "missing");
    snprintf(s, sizeof s, "%s", specs);
    str_trim(s);
    if (strcasecmp(s, "all") == 0) {
        *all = true;
        return GRAFT_OK;
    }
    /* split by hand: strtok would skip an empty item ("cpu,,gpu"), which is a typo to report */
    for (char *tok = s, *next; tok; tok = next) {
        next = strchr(tok, ',');
        if (next) *next++ = 0;
        str_trim(tok);
        if (!*tok)
            return err_set(e, GRAFT_STATUS_USAGE, "empty device spec in the list '%s'", specs);
        if (*n == cap)
            return err_set(e, GRAFT_STATUS_USAGE, "more than %d devices in the list '%s'", cap,
                           specs);
        graft_status st = devspec_parse(tok, &out[*n], e);
        if (st) return st;
        ++*n;
    }
    if (!*n) return err_set(e, GRAFT_STATUS_USAGE, "empty device list");
    return GRAFT_OK;
}

graft_status devspec_match_list(const char *specs, const graft_device_info *list, int count,
                                int *idx, int cap, int *n, graft_error *e)
{
    devspec ds[DEVSPEC_MAX_LIST];
    bool all;
    int k;
    *n = 0;
    graft_status st = devspec_parse_list(specs, ds, DEVSPEC_MAX_LIST, &k, &all, e);
    if (st) return st;
    if (all) {
        if (!count) return err_set(e, GRAFT_STATUS_USAGE, "--devices all: no OpenCL device found");
        for (int i = 0; i < count && i < cap; i++)
            idx[(*n)++] = i;
        return GRAFT_OK;
    }
    if (k > cap) return err_set(e, GRAFT_STATUS_USAGE, "more than %d devices", cap);
    for (int i = 0; i < k; i++) {
        if ((st = devspec_match(&ds[i], list, count, &idx[i], e))) return st;
        for (int j = 0; j < i; j++)
            if (idx[j] == idx[i])
                return err_set(e, GRAFT_STATUS_USAGE,
                               "device %d:%d (%s) is named twice in '%s': one replica per device",
                               list[idx[i]].platform_index, list[idx[i]].device_index,
                               list[idx[i]].name, specs);
    }
    *n = k;
    return GRAFT_OK;
}

void devspec_local_rank(const char *spec, int local_rank, char *out, size_t n)
{
    static const char key[] = "{local_rank}";
    size_t used = 0;
    if (n) out[0] = 0;
    while (*spec && used + 1 < n) {
        if (strncmp(spec, key, sizeof key - 1) == 0) {
            int w = snprintf(out + used, n - used, "%d", local_rank);
            if (w < 0) break;
            used = used + (size_t)w < n ? used + (size_t)w : n - 1;
            spec += sizeof key - 1;
        } else {
            out[used++] = *spec++;
            out[used] = 0;
        }
    }
}
