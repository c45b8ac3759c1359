/* yaml.c — YAML text → ynode tree, with the mark (file, line, column; 1-based) of every scalar,
 * sequence, mapping and key. libyaml's event parser does the lexing; this file builds the tree,
 * expands aliases under a node budget, rejects duplicate keys, and bounds depth and size so that
 * hostile input (billion laughs, deep nesting, binary) fails fast with a clear message. */
#include "recipe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

ynode *ynode_new(arena *a, ynode_kind kind, graft_mark mark)
{
    ynode *n = arena_alloc(a, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->mark = mark;
    if (kind == YNODE_SCALAR) n->value = "";
    return n;
}

bool ynode_push(arena *a, ynode *p, const char *key, graft_mark key_mark, ynode *item)
{
    if (p->count == p->cap) {
        int cap = p->cap ? p->cap * 2 : 4;
        ynode **items = arena_alloc(a, (size_t)cap * sizeof *items);
        if (!items) return false;
        if (p->count) memcpy(items, p->items, (size_t)p->count * sizeof *items);
        p->items = items;
        if (p->kind == YNODE_MAP) {
            const char **keys = arena_alloc(a, (size_t)cap * sizeof *keys);
            graft_mark *marks = arena_alloc(a, (size_t)cap * sizeof *marks);
            if (!keys || !marks) return false;
            if (p->count) {
                memcpy(keys, p->keys, (size_t)p->count * sizeof *keys);
                memcpy(marks, p->key_marks, (size_t)p->count * sizeof *marks);
            }
            p->keys = keys;
            p->key_marks = marks;
        }
        p->cap = cap;
    }
    p->items[p->count] = item;
    if (p->kind == YNODE_MAP) {
        p->keys[p->count] = key;
        p->key_marks[p->count] = key_mark;
    }
    p->count++;
    return true;
}

void ynode_remove(ynode *map, int i)
{
    if (i < 0 || i >= map->count) return;
    for (int j = i; j + 1 < map->count; j++) {
        map->items[j] = map->items[j + 1];
        if (map->kind == YNODE_MAP) {
            map->keys[j] = map->keys[j + 1];
            map->key_marks[j] = map->key_marks[j + 1];
        }
    }
    map->count--;
}

int ynode_find(const ynode *map, const char *key)
{
    if (!map || map->kind != YNODE_MAP) return -1;
    for (int i = 0; i < map->count; i++)
        if (strcmp(map->keys[i], key) == 0) return i;
    return -1;
}

ynode *ynode_get(const ynode *map, const char *key)
{
    int i = ynode_find(map, key);
    return i < 0 ? NULL : map->items[i];
}

bool ynode_is_null(const ynode *n)
{
    if (!n) return true;
    if (n->kind != YNODE_SCALAR || n->quoted) return false;
    const char *v = n->value;
    return !v[0] || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

ynode *ynode_merge(arena *a, ynode *base, ynode *over)
{
    if (!base || !over || base->kind != YNODE_MAP || over->kind != YNODE_MAP) return over;
    for (int i = 0; i < over->count; i++) {
        int j = ynode_find(base, over->keys[i]);
        if (j < 0) {
            if (!ynode_push(a, base, over->keys[i], over->key_marks[i], over->items[i]))
                return NULL;
        } else {
            ynode *m = ynode_merge(a, base->items[j], over->items[i]);
            if (!m) return NULL;
            base->items[j] = m;
            base->key_marks[j] = over->key_marks[i];
        }
    }
    return base;
}

void path_normalize(char *p)
{
    /* Split on '/', fold "." and "name/..", and join again, in place (the result is never
     * longer than the input). */
    bool absolute = p[0] == '/';
    char *segs[512];
    int n = 0;
    char *save = NULL;
    size_t len = strlen(p);
    /* on the stack: an allocation failure here used to leave the path unnormalised */
    char copy[8192];
    if (len >= sizeof copy) return;
    memcpy(copy, p, len + 1);
    for (char *s = strtok_r(copy, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (strcmp(s, ".") == 0) continue;
        if (strcmp(s, "..") == 0 && n > 0 && strcmp(segs[n - 1], "..") != 0) {
            n--;
            continue;
        }
        if (strcmp(s, "..") == 0 && n == 0 && absolute) continue;
        if (n < (int)ARRAY_LEN(segs)) segs[n++] = s;
    }
    char *o = p;
    if (absolute) *o++ = '/';
    for (int i = 0; i < n; i++) {
        size_t m = strlen(segs[i]);
        if (i) *o++ = '/';
        memmove(o, segs[i], m);
        o += m;
    }
    if (o == p) *o++ = '.';
    *o = 0;
}

/* ---- the event-driven builder ---- */

typedef struct anchor {
    char *name;
    ynode *node;
} anchor;

typedef struct builder {
    arena *a;
    const char *name;
    int line0, col0;
    graft_diags *d;
    long nodes;
    anchor *anchors;
    int nanchors, cap_anchors;
    bool failed;
} builder;

typedef struct frame {
    ynode *node;
    char *anchor;          /* anchor of this container, registered when it closes */
    const char *key;       /* map: the key waiting for its value (NULL = expecting a key) */
    graft_mark key_mark;
    bool key_plain;        /* the key was an unquoted scalar (so "<<" is a merge key) */
    ynode *merges[8];      /* "<<: *base" sources, merged when the mapping closes */
    int nmerges;
} frame;

static graft_mark mark_of(const builder *b, yaml_mark_t m)
{
    int line = (int)m.line + 1 + b->line0;
    int col = (int)m.column + 1 + (m.line == 0 ? b->col0 : 0);
    return (graft_mark){b->name, line, col};
}

static bool count_node(builder *b, graft_mark at)
{
    if (++b->nodes <= RECIPE_MAX_NODES) return true;
    graft_diags_add(b->d, at,
                    "more than %d nodes (with aliases expanded): refusing to expand further "
                    "(a 'billion laughs' document?)",
                    RECIPE_MAX_NODES);
    b->failed = true;
    return false;
}

/* Copy a subtree for an alias, counting every node against the budget: sharing would make later
 * passes (merge, validation, dump) walk the same subtree exponentially often. */
static ynode *copy_tree(builder *b, const ynode *src, int depth)
{
    if (depth > RECIPE_MAX_DEPTH) {
        graft_diags_add(b->d, src->mark, "nesting deeper than %d levels", RECIPE_MAX_DEPTH);
        b->failed = true;
        return NULL;
    }
    if (!count_node(b, src->mark)) return NULL;
    ynode *n = ynode_new(b->a, src->kind, src->mark);
    if (!n) return NULL;
    n->value = src->value;
    n->quoted = src->quoted;
    for (int i = 0; i < src->count; i++) {
        ynode *c = copy_tree(b, src->items[i], depth + 1);
        if (!c) return NULL;
        if (!ynode_push(b->a, n, src->kind == YNODE_MAP ? src->keys[i] : NULL,
                        src->kind == YNODE_MAP ? src->key_marks[i] : src->mark, c))
            return NULL;
    }
    return n;
}

static bool add_anchor(builder *b, char *name, ynode *node)
{
    if (b->nanchors == b->cap_anchors) {
        int cap = b->cap_anchors ? b->cap_anchors * 2 : 8;
        anchor *n = realloc(b->anchors, (size_t)cap * sizeof *n);
        if (!n) return false;
        b->anchors = n;
        b->cap_anchors = cap;
    }
    /* a later anchor of the same name shadows the earlier one (YAML allows redefinition) */
    b->anchors[b->nanchors].name = strdup(name);
    if (!b->anchors[b->nanchors].name) return false;
    b->anchors[b->nanchors++].node = node;
    return true;
}

static ynode *find_anchor(builder *b, const char *name)
{
    for (int i = b->nanchors - 1; i >= 0; i--)
        if (strcmp(b->anchors[i].name, name) == 0) return b->anchors[i].node;
    return NULL;
}

/* Attach a finished node to the open container (or make it the root). */
static bool attach(builder *b, frame *stack, int depth, ynode **root, ynode *n)
{
    if (depth == 0) {
        *root = n;
        return true;
    }
    frame *f = &stack[depth - 1];
    if (f->node->kind == YNODE_SEQ) return ynode_push(b->a, f->node, NULL, n->mark, n);
    if (!f->key) {
        /* this node is a key */
        if (n->kind != YNODE_SCALAR) {
            graft_diags_add(b->d, n->mark, "a mapping key must be a scalar, found a %s",
                            n->kind == YNODE_MAP ? "mapping" : "sequence");
            b->failed = true;
            return false;
        }
        f->key = n->value;
        f->key_mark = n->mark;
        f->key_plain = !n->quoted;
        return true;
    }
    const char *key = f->key;
    f->key = NULL;
    if (f->key_plain && strcmp(key, "<<") == 0) {
        /* YAML merge key: the mapping (or list of mappings) supplies keys this mapping lacks;
         * explicit keys win wherever they are written, earlier sources win over later ones */
        int n_src = n->kind == YNODE_SEQ ? n->count : 1;
        for (int i = 0; i < n_src; i++) {
            ynode *src = n->kind == YNODE_SEQ ? n->items[i] : n;
            if (src->kind != YNODE_MAP || f->nmerges == (int)ARRAY_LEN(f->merges)) {
                graft_diags_add(b->d, src->mark,
                                "<<: expected a mapping or a list of at most 8 mappings to merge");
                b->failed = true;
                return false;
            }
            f->merges[f->nmerges++] = src;
        }
        return true;
    }
    int dup = ynode_find(f->node, key);
    if (dup >= 0) {
        graft_diags_add(b->d, f->key_mark, "duplicate key '%s' (first at line %d)", key,
                        f->node->key_marks[dup].line);
        return true; /* keep the first; go on to find other problems */
    }
    return ynode_push(b->a, f->node, key, f->key_mark, n);
}

static void parser_error(builder *b, yaml_parser_t *p)
{
    graft_mark at = mark_of(b, p->problem_mark);
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_MEMORY_ERROR) {
        problem = "out of memory";
        b->d->nomem = true;
    }
    if (p->context && mark_of(b, p->context_mark).line != at.line)
        graft_diags_add(b->d, at, "invalid YAML: %s %s (line %d)", problem, p->context,
                        mark_of(b, p->context_mark).line);
    else if (p->context)
        graft_diags_add(b->d, at, "invalid YAML: %s %s", problem, p->context);
    else
        graft_diags_add(b->d, at, "invalid YAML: %s", problem);
    b->failed = true;
}

static bool is_str_tag(const yaml_char_t *tag)
{
    return tag && (strcmp((const char *)tag, YAML_STR_TAG) == 0 ||
                   strcmp((const char *)tag, "!!str") == 0);
}

ynode *yaml_parse(arena *a, const char *name, const char *text, size_t len, int line0, int col0,
                  graft_diags *d)
{
    builder b = {.a = a, .name = name, .line0 = line0, .col0 = col0, .d = d};
    int diags_before = d->count;
    /* NUL bytes: libyaml would say "control characters are not allowed"; say what it means. */
    const char *nul = memchr(text, 0, len);
    if (nul) {
        int line = 1, col = 1;
        for (const char *p = text; p < nul; p++) {
            if (*p == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        graft_diags_add(d, (graft_mark){name, line + line0, col + (line == 1 ? col0 : 0)},
                        "NUL byte in the text: this is a binary file, not YAML");
        return NULL;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        d->nomem = true;
        graft_diags_add(d, (graft_mark){name, 0, 0}, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    frame stack[RECIPE_MAX_DEPTH + 1];
    int depth = 0, docs = 0;
    ynode *root = NULL;
    bool done = false;
    while (!done && !b.failed) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            parser_error(&b, &parser);
            break;
        }
        graft_mark at = mark_of(&b, ev.start_mark);
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = true; break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                graft_diags_add(d, at, "more than one YAML document (a recipe is one document)");
                b.failed = true;
            }
            break;
        case YAML_SCALAR_EVENT: {
            if (!count_node(&b, at)) break;
            ynode *n = ynode_new(a, YNODE_SCALAR, at);
            if (!n || !(n->value = arena_strndup(a, (const char *)ev.data.scalar.value,
                                                 ev.data.scalar.length))) {
                b.failed = true;
                break;
            }
            if (strlen(n->value) != ev.data.scalar.length) {
                graft_diags_add(d, at, "NUL character in a scalar");
                b.failed = true;
                break;
            }
            n->quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                        is_str_tag(ev.data.scalar.tag);
            if (ev.data.scalar.anchor && !add_anchor(&b, (char *)ev.data.scalar.anchor, n))
                b.failed = true;
            if (!b.failed && !attach(&b, stack, depth, &root, n)) b.failed = true;
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            if (depth >= RECIPE_MAX_DEPTH) {
                graft_diags_add(d, at, "nesting deeper than %d levels", RECIPE_MAX_DEPTH);
                b.failed = true;
                break;
            }
            if (!count_node(&b, at)) break;
            bool seq = ev.type == YAML_SEQUENCE_START_EVENT;
            ynode *n = ynode_new(a, seq ? YNODE_SEQ : YNODE_MAP, at);
            if (!n) {
                b.failed = true;
                break;
            }
            yaml_char_t *anc = seq ? ev.data.sequence_start.anchor : ev.data.mapping_start.anchor;
            char *an = anc ? arena_strdup(a, (const char *)anc) : NULL;
            stack[depth++] = (frame){.node = n, .anchor = an};
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
            frame f = stack[--depth];
            for (int i = 0; i < f.nmerges && !b.failed; i++)
                for (int j = 0; j < f.merges[i]->count; j++)
                    if (ynode_find(f.node, f.merges[i]->keys[j]) < 0 &&
                        !ynode_push(a, f.node, f.merges[i]->keys[j], f.merges[i]->key_marks[j],
                                    f.merges[i]->items[j]))
                        b.failed = true;
            if (f.anchor && !add_anchor(&b, f.anchor, f.node)) b.failed = true;
            if (!b.failed && !attach(&b, stack, depth, &root, f.node)) b.failed = true;
            break;
        }
        case YAML_ALIAS_EVENT: {
            const char *an = (const char *)ev.data.alias.anchor;
            ynode *target = find_anchor(&b, an);
            if (!target) {
                /* either never defined, or the alias sits inside its own anchor (recursion) */
                graft_diags_add(d, at, "unknown alias '*%s' (no complete anchor '&%s' before it)",
                                an, an);
                b.failed = true;
                break;
            }
            ynode *n = copy_tree(&b, target, depth);
            if (!n) {
                b.failed = true;
                break;
            }
            n->mark = at;
            if (!attach(&b, stack, depth, &root, n)) b.failed = true;
            break;
        }
        default: break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    for (int i = 0; i < b.nanchors; i++) free(b.anchors[i].name);
    free(b.anchors);
    if (b.failed) {
        if (d->count == diags_before) d->nomem = true; /* no problem named: an allocation failed */
        return NULL;
    }
    if (!root) {
        root = ynode_new(a, YNODE_SCALAR, (graft_mark){name, 1 + line0, 1 + col0});
        if (!root) d->nomem = true;
        if (!root) graft_diags_add(d, (graft_mark){name, 0, 0}, "out of memory");
    }
    return root;
}

ynode *yaml_load_file(arena *a, const char *path, graft_mark from, graft_diags *d)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        graft_diags_add(d, from, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        graft_diags_add(d, from, "%s is not a regular file", path);
        return NULL;
    }
    if (st.st_size > RECIPE_MAX_FILE_BYTES) {
        graft_diags_add(d, from, "%s is larger than %d bytes (a recipe is a small text file)",
                        path, RECIPE_MAX_FILE_BYTES);
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    graft_error e = {0};
    if (fs_read_file(path, RECIPE_MAX_FILE_BYTES, &text, &len, &e) != GRAFT_OK) {
        if (e.status == GRAFT_STATUS_NOMEM) d->nomem = true;
        graft_diags_add(d, from, "%s", e.message);
        return NULL;
    }
    const char *name = arena_strdup(a, path);
    ynode *root = name ? yaml_parse(a, name, text, len, 0, 0, d) : NULL;
    free(text);
    if (!root) return NULL;
    if (ynode_is_null(root)) {
        graft_diags_add(d, (graft_mark){name, 1, 1}, "empty file: expected a recipe mapping");
        return NULL;
    }
    if (root->kind != YNODE_MAP) {
        graft_diags_add(d, root->mark, "expected a mapping of sections at the top, found %s",
                        root->kind == YNODE_SEQ ? "a sequence" : "a scalar");
        return NULL;
    }
    return root;
}
