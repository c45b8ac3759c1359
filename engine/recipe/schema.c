/* schema.c — typed getters over ynodes: every type, range and enum error says what was expected
 * and what was found, at the node's mark, and goes into the pass's graft_diags. */
#include "recipe_impl.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *describe(rctx *c, const ynode *n)
{
    if (!n || ynode_is_null(n)) return "nothing";
    if (n->kind == YNODE_MAP) return "a mapping";
    if (n->kind == YNODE_SEQ)
        return n->count == 1 ? "a list of 1 item" : arena_printf(c->a, "a list of %d items", n->count);
    size_t len = strlen(n->value);
    const char *q = n->quoted ? "the string \"" : "'", *e = n->quoted ? "\"" : "'";
    if (len > 40) return arena_printf(c->a, "%s%.37s...%s", q, n->value, e);
    return arena_printf(c->a, "%s%s%s", q, n->value, e);
}

void check_keys(rctx *c, const ynode *map, const char *where, const char *const *allowed, int n)
{
    if (!map || map->kind != YNODE_MAP) return;
    for (int i = 0; i < map->count; i++) {
        bool ok = false;
        for (int j = 0; j < n && !ok; j++) ok = strcmp(map->keys[i], allowed[j]) == 0;
        if (ok) continue;
        const char *dym = did_you_mean(map->keys[i], allowed, n);
        char in[256];
        if (where && where[0])
            snprintf(in, sizeof in, " in %s", where);
        else
            in[0] = 0;
        if (dym)
            graft_diags_add(c->d, map->key_marks[i], "unknown key '%s'%s (did you mean '%s'?)",
                            map->keys[i], in, dym);
        else
            graft_diags_add(c->d, map->key_marks[i], "unknown key '%s'%s", map->keys[i], in);
    }
}

const ynode *get(const ynode *map, const char *key)
{
    const ynode *n = ynode_get(map, key);
    return ynode_is_null(n) ? NULL : n;
}

bool want_map(rctx *c, const ynode *n, const char *what)
{
    if (!n || ynode_is_null(n)) return false;
    if (n->kind == YNODE_MAP) return true;
    graft_diags_add(c->d, n->mark, "%s: expected a mapping, found %s", what, describe(c, n));
    return false;
}

static bool scalar_text(const ynode *n)
{
    return n && n->kind == YNODE_SCALAR && !n->quoted;
}

bool parse_int(rctx *c, const ynode *n, const char *what, long lo, long hi, const char *expect,
               long *out)
{
    long v = 0;
    bool ok = scalar_text(n);
    if (ok) {
        char *end;
        errno = 0;
        v = strtol(n->value, &end, 10);
        ok = n->value[0] && !*end && errno == 0;
        if (!ok) {
            /* 1e3 or 64.0 are integers a user may write; accept exact ones */
            double dv = strtod(n->value, &end);
            ok = n->value[0] && !*end && isfinite(dv) && dv == floor(dv) && fabs(dv) < 1e15;
            v = ok ? (long)dv : 0;
        }
    }
    if (!ok || v < lo || v > hi) {
        graft_diags_add(c->d, n ? n->mark : (graft_mark){0}, "%s: expected %s, found %s", what,
                        expect, describe(c, n));
        return false;
    }
    *out = v;
    return true;
}

bool parse_num(rctx *c, const ynode *n, const char *what, double lo, double hi, bool lo_open,
               bool hi_open, const char *expect, double *out)
{
    double v = 0;
    bool ok = scalar_text(n);
    if (ok) {
        char *end;
        v = strtod(n->value, &end);
        ok = n->value[0] && !*end && isfinite(v);
    }
    if (ok) ok = (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    if (!ok) {
        graft_diags_add(c->d, n ? n->mark : (graft_mark){0}, "%s: expected %s, found %s", what,
                        expect, describe(c, n));
        return false;
    }
    *out = v;
    return true;
}

bool parse_bool(rctx *c, const ynode *n, const char *what, bool *out)
{
    const char *const *t = RECIPE_TRUE, *const *f = RECIPE_FALSE;
    if (scalar_text(n)) {
        for (int i = 0; i < RECIPE_NBOOL; i++) {
            if (strcmp(n->value, t[i]) == 0) return *out = true;
            if (strcmp(n->value, f[i]) == 0) return !(*out = false);
        }
    }
    graft_diags_add(c->d, n ? n->mark : (graft_mark){0}, "%s: expected true or false, found %s",
                    what, describe(c, n));
    return false;
}

const char *parse_str(rctx *c, const ynode *n, const char *what)
{
    if (n && n->kind == YNODE_SCALAR && !ynode_is_null(n)) return n->value;
    graft_diags_add(c->d, n ? n->mark : (graft_mark){0}, "%s: expected a string, found %s", what,
                    describe(c, n));
    return NULL;
}

int parse_enum(rctx *c, const ynode *n, const char *what, const char *const *names, int count)
{
    if (n && n->kind == YNODE_SCALAR) {
        for (int i = 0; i < count; i++)
            if (strcmp(n->value, names[i]) == 0) return i;
    }
    buf b = {0};
    for (int i = 0; i < count; i++) buf_printf(&b, "%s%s", i ? (i + 1 == count ? " or " : ", ") : "", names[i]);
    const char *dym = n && n->kind == YNODE_SCALAR ? did_you_mean(n->value, names, count) : NULL;
    graft_diags_add(c->d, n ? n->mark : (graft_mark){0}, "%s: expected %s, found %s%s%s%s", what,
                    b.data ? b.data : "?", describe(c, n), dym ? " (did you mean '" : "",
                    dym ? dym : "", dym ? "'?)" : "");
    buf_free(&b);
    return -1;
}

static const char *key_what(rctx *c, const char *where, const char *key)
{
    if (!where || !where[0]) return key;
    const char *s = arena_printf(c->a, "%s.%s", where, key);
    return s ? s : key;
}

bool get_int(rctx *c, const ynode *map, const char *where, const char *key, long lo, long hi,
             const char *expect, long *out)
{
    const ynode *n = get(map, key);
    return n && parse_int(c, n, key_what(c, where, key), lo, hi, expect, out);
}

bool get_num(rctx *c, const ynode *map, const char *where, const char *key, double lo, double hi,
             bool lo_open, bool hi_open, const char *expect, double *out)
{
    const ynode *n = get(map, key);
    return n && parse_num(c, n, key_what(c, where, key), lo, hi, lo_open, hi_open, expect, out);
}

bool get_bool(rctx *c, const ynode *map, const char *where, const char *key, bool *out)
{
    const ynode *n = get(map, key);
    return n && parse_bool(c, n, key_what(c, where, key), out);
}

int get_enum(rctx *c, const ynode *map, const char *where, const char *key,
             const char *const *names, int count, int def)
{
    const ynode *n = get(map, key);
    if (!n) return def;
    int v = parse_enum(c, n, key_what(c, where, key), names, count);
    return v < 0 ? def : v;
}

void mark_dir(graft_mark m, char *out, size_t n)
{
    if (!m.file || strncmp(m.file, "--set ", 6) == 0) {
        snprintf(out, n, ".");
        return;
    }
    fs_dirname(m.file, out, n);
}

const char *resolve_path(rctx *c, const ynode *n)
{
    char dir[4096], full[8192];
    mark_dir(n->mark, dir, sizeof dir);
    fs_join(dir, n->value, full, sizeof full);
    path_normalize(full);
    const char *p = arena_strdup(c->a, full);
    /* The merged tree keeps the absolute path, so the resolved recipe written into a run
     * directory means the same files wherever it is read from. */
    char cwd[4096], abs[8192];
    if (p && full[0] != '/' && getcwd(cwd, sizeof cwd)) {
        fs_join(cwd, full, abs, sizeof abs);
        path_normalize(abs);
        const char *a = arena_strdup(c->a, abs);
        if (a) ((ynode *)n)->value = a;
    } else if (p) {
        ((ynode *)n)->value = p;
    }
    return p;
}

bool is_regex(const char *s)
{
    size_t n = strlen(s);
    return n >= 2 && s[0] == '/' && s[n - 1] == '/';
}

const recipe_key *key_spec(const char *section, const char *key)
{
    const recipe_key *k = recipe_key_find(section, key);
    /* every key the checker reads is in the table; a missing one is a bug caught by any test */
    static const recipe_key missing = {"?", "?", RK_STR, .expect = "(a key missing from keys.c)"};
    return k ? k : &missing;
}

void check_section(rctx *c, const ynode *map, const char *where, const char *section)
{
    const char *keys[64];
    int n = recipe_section_keys(section, keys, 64);
    check_keys(c, map, where, keys, n);
}

bool key_int(rctx *c, const ynode *map, const char *where, const char *section, const char *key,
             long *out)
{
    const recipe_key *k = key_spec(section, key);
    return get_int(c, map, where, key, (long)k->lo, (long)k->hi, k->expect, out);
}

bool key_num(rctx *c, const ynode *map, const char *where, const char *section, const char *key,
             double *out)
{
    const recipe_key *k = key_spec(section, key);
    return get_num(c, map, where, key, k->lo, k->hi, k->lo_open, k->hi_open, k->expect, out);
}

int key_enum(rctx *c, const ynode *map, const char *where, const char *section, const char *key,
             int def)
{
    const recipe_key *k = key_spec(section, key);
    return get_enum(c, map, where, key, k->names, k->nnames, def);
}

bool key_item_int(rctx *c, const ynode *n, const char *what, const char *section, const char *key,
                  long *out)
{
    const recipe_key *k = key_spec(section, key);
    return parse_int(c, n, what, (long)k->lo, (long)k->hi, k->expect, out);
}

bool key_item_num(rctx *c, const ynode *n, const char *what, const char *section, const char *key,
                  double *out)
{
    const recipe_key *k = key_spec(section, key);
    return parse_num(c, n, what, k->lo, k->hi, k->lo_open, k->hi_open, k->expect, out);
}
