/* recipe_impl.h — private to engine/recipe: the validation context and the typed getters that turn
 * ynodes into values, each reporting "what was expected, what was found" at the node's mark. */
#ifndef GRAFT_RECIPE_IMPL_H
#define GRAFT_RECIPE_IMPL_H

#include "keys.h"
#include "recipe.h"

typedef struct rctx {
    arena *a;
    graft_diags *d;
    graft_recipe *r;
    const ynode *const *layer_nodes; /* per graph layer: its YAML mapping (for messages) */
} rctx;

/* "'abc'", "a mapping", "a sequence", "nothing" — for "expected X, found Y". */
const char *describe(rctx *c, const ynode *n);
/* Report every key of map not in allowed: "unknown key 'lrr' in train (did you mean 'lr'?)". */
void check_keys(rctx *c, const ynode *map, const char *where, const char *const *allowed, int n);
/* The value for key when present and not null. */
const ynode *get(const ynode *map, const char *key);
/* n must be a mapping (absent/null is fine: returns false without a message). */
bool want_map(rctx *c, const ynode *n, const char *what);

bool parse_int(rctx *c, const ynode *n, const char *what, long lo, long hi, const char *expect,
               long *out);
bool parse_num(rctx *c, const ynode *n, const char *what, double lo, double hi, bool lo_open,
               bool hi_open, const char *expect, double *out);
bool parse_bool(rctx *c, const ynode *n, const char *what, bool *out);
/* A plain or quoted scalar string (not a number check: any scalar text). */
const char *parse_str(rctx *c, const ynode *n, const char *what);
/* One of names (with did-you-mean), index or -1. */
int parse_enum(rctx *c, const ynode *n, const char *what, const char *const *names, int count);

/* The same, read from map[key]; absent or null leaves *out untouched and returns false. */
bool get_int(rctx *c, const ynode *map, const char *where, const char *key, long lo, long hi,
             const char *expect, long *out);
bool get_num(rctx *c, const ynode *map, const char *where, const char *key, double lo, double hi,
             bool lo_open, bool hi_open, const char *expect, double *out);
bool get_bool(rctx *c, const ynode *map, const char *where, const char *key, bool *out);
int get_enum(rctx *c, const ynode *map, const char *where, const char *key,
             const char *const *names, int count, int def);

/* The same, with the key's range, enum and "expected" text from the key table (keys.c); where is
 * the prefix of messages ("data.train"), section the table's section ("data.source.idx"). */
void check_section(rctx *c, const ynode *map, const char *where, const char *section);
bool key_int(rctx *c, const ynode *map, const char *where, const char *section, const char *key,
             long *out);
bool key_num(rctx *c, const ynode *map, const char *where, const char *section, const char *key,
             double *out);
int key_enum(rctx *c, const ynode *map, const char *where, const char *section, const char *key,
             int def);
/* One value of a list-valued key (train.betas, data.classes, ...) against the key's range. */
bool key_item_int(rctx *c, const ynode *n, const char *what, const char *section, const char *key,
                  long *out);
bool key_item_num(rctx *c, const ynode *n, const char *what, const char *section, const char *key,
                  double *out);
/* The table entry (never NULL for the keys the checker reads). */
const recipe_key *key_spec(const char *section, const char *key);

/* The folder a relative path in a node is resolved against: the folder of the file that says it,
 * or the working directory for --set values. */
void mark_dir(graft_mark m, char *out, size_t n);
/* Resolve a path node relative to its file; arena-allocated, normalised. */
const char *resolve_path(rctx *c, const ynode *n);

/* load.c: extends chains, model.file, --set. Returns the merged tree or NULL (problems in d). */
ynode *recipe_tree_load(arena *a, const char *file, const char *const *sets, int nsets,
                        graft_diags *d);
/* model.c: model.input and model.layers (and transfer.head) into r->graph. */
void recipe_build_graph(rctx *c, const ynode *model, const ynode *transfer);
/* transfer.c */
void recipe_parse_freeze(rctx *c, const ynode *n, const char *what, freeze_spec *f);
bool recipe_resolve_freeze(rctx *c, const freeze_spec *f, const char *what, bool apply);
void recipe_parse_transfer(rctx *c, const ynode *transfer);
void recipe_resolve_transfer(rctx *c, const ynode *train);
void recipe_check_checkpoint(rctx *c);
/* sections.c */
void recipe_parse_data(rctx *c, const ynode *data);
void recipe_parse_train(rctx *c, const ynode *train);
/* A data source mapping (format, images/labels, path, root) into s; labels_optional for sources
 * whose labels are never read (adapt.target). */
void recipe_parse_source(rctx *c, const ynode *n, const char *where, int def_format,
                         bool labels_optional, data_source *s);
/* adapt.c: the adapt section (after the graph and data are parsed). */
void recipe_parse_adapt(rctx *c, const ynode *adapt);

/* "/regex/" written as a layer selector. */
bool is_regex(const char *s);

#endif
