/* keys.h — the recipe language as data: every section's keys with their type, range, enum and
 * meaning. The checker (sections.c, transfer.c, model.c, recipe.c) takes its key lists, ranges,
 * enums and "expected" texts from this table, and `graft schema` (schema_json.c) turns the same
 * table, with the layer registry's option tables, into a JSON Schema: the two cannot drift. */
#ifndef GRAFT_RECIPE_KEYS_H
#define GRAFT_RECIPE_KEYS_H

#include <stdbool.h>

typedef enum rkey_kind {
    RK_STR,    /* any scalar text */
    RK_PATH,   /* a path, relative to the file that says it */
    RK_INT,    /* an integer in [lo, hi] */
    RK_NUM,    /* a number in lo..hi (lo_open / hi_open exclude the ends) */
    RK_BOOL,   /* true or false (YAML 1.1 spellings too) */
    RK_ENUM,   /* one of names */
    RK_MAP,    /* a mapping: the section named by sub */
    RK_SOURCE, /* a data source: one of the data.source.* sections */
    RK_FREEZE, /* a freeze selector: a layer name, a depth, a list of names or /regexes/, none, all */
    RK_LAYERS, /* a list of layers (the layer registry) */
} rkey_kind;

typedef struct recipe_key {
    const char *section; /* "" = the top level, "train", "data.augment", ... */
    const char *key;
    rkey_kind kind;
    double lo, hi;
    bool lo_open, hi_open;
    const char *const *names; /* RK_ENUM */
    int nnames;
    const char *expect; /* what the user should write, for messages */
    const char *doc;    /* one line for the schema's description */
    const char *sub;    /* RK_MAP: the section's name */
    /* list forms: a list of list_min..list_max values (list_max 0 = no limit) instead of, or
     * (scalar_ok) as well as, a single value; map_values: a mapping of NAME: value */
    int list_min, list_max;
    bool list, scalar_ok, unique, map_values;
    bool list_ends_only; /* only list_min or list_max values (model.input: [N] or [C, H, W]) */
    bool bool_ok;  /* true/false accepted as well (enum and map keys with a boolean shorthand) */
    bool required; /* within its section, once the recipe is whole (see docs on partial files) */
    bool loader;   /* handled by the loader before checking (extends, model.file) */
} recipe_key;

/* The key of a section, or NULL (a bug in the caller: every key the checker reads is here). */
const recipe_key *recipe_key_find(const char *section, const char *key);
/* Every key of a section the checker accepts (loader keys excluded), for check_keys; count. */
int recipe_section_keys(const char *section, const char **out, int cap);
/* The whole table, and its sections in document order. */
const recipe_key *recipe_keys(int *count);
extern const char *const RECIPE_ACTIVATIONS[];
extern const int RECIPE_NACTIVATIONS;
extern const char *const RECIPE_TRUE[], *const RECIPE_FALSE[];
extern const int RECIPE_NBOOL;

#endif
