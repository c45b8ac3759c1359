/* schema_json.c — `graft schema`: the JSON Schema (draft-07, the dialect editors' YAML language
 * servers read best) of the recipe language, generated from the key table the checker uses
 * (keys.c) and the layer registry's option tables (graph/), so the two cannot drift.
 *
 * Files may be partial: a recipe that says `extends:` (or a model file) gives only some keys and
 * the merged whole is checked by `graft check`. So the schema requires no section or key at the
 * levels extends merges (mappings); it requires what a list item must hold (a layer's name, type
 * and required options; an unfreeze step's epoch), because lists are replaced whole, never merged.
 * What only the merged whole or the files can show (shapes, layer references, readable paths,
 * cross-section rules) stays with `graft check`. */
#include "graph.h"
#include "keys.h"
#include "recipe.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

static json_t *enum_of(const char *const *names, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_string(names[i]));
    json_t *o = json_object();
    json_object_set_new(o, "enum", a);
    return o;
}

static json_t *bool_schema(void)
{
    /* YAML 1.1 spellings graft also reads (a YAML 1.2 editor sees them as strings) */
    json_t *spell = json_array();
    for (int i = 0; i < RECIPE_NBOOL; i++) {
        json_array_append_new(spell, json_string(RECIPE_TRUE[i]));
        json_array_append_new(spell, json_string(RECIPE_FALSE[i]));
    }
    json_t *e = json_object();
    json_object_set_new(e, "enum", spell);
    return json_pack("{s:[{s:s},o]}", "anyOf", "type", "boolean", e);
}

static json_t *any_of2(json_t *a, json_t *b)
{
    return json_pack("{s:[o,o]}", "anyOf", a, b);
}

static void range(json_t *o, double lo, double hi, bool lo_open, bool hi_open, bool integer)
{
    json_t *(*mk)(double) = NULL;
    (void)mk;
    json_object_set_new(o, lo_open ? "exclusiveMinimum" : "minimum",
                        integer ? json_integer((json_int_t)lo) : json_real(lo));
    json_object_set_new(o, hi_open ? "exclusiveMaximum" : "maximum",
                        integer ? json_integer((json_int_t)hi) : json_real(hi));
}

static json_t *ref(const char *def)
{
    char buf[256];
    snprintf(buf, sizeof buf, "#/definitions/%s", def);
    return json_pack("{s:s}", "$ref", buf);
}

static json_t *array_of(json_t *items, int min, int max, bool unique)
{
    json_t *a = json_pack("{s:s,s:o}", "type", "array", "items", items);
    if (min > 0) json_object_set_new(a, "minItems", json_integer(min));
    if (max > 0) json_object_set_new(a, "maxItems", json_integer(max));
    if (unique) json_object_set_new(a, "uniqueItems", json_true());
    return a;
}

static json_t *freeze_schema(void)
{
    return json_pack("{s:[{s:s},{s:s,s:i},{s:s},{s:s,s:{s:s}}],s:s}", "anyOf", "type", "string",
                     "type", "integer", "minimum", 0, "type", "boolean", "type", "array", "items",
                     "type", "string", "description",
                     "a layer name (frozen through it), a depth (the first N layers), a list of "
                     "names or /regexes/, none (or false) or all (or true)");
}

static json_t *key_schema(const recipe_key *k)
{
    json_t *s = NULL;
    switch (k->kind) {
    case RK_STR:
    case RK_PATH: s = json_pack("{s:s}", "type", "string"); break;
    case RK_INT:
        s = json_pack("{s:s}", "type", "integer");
        range(s, k->lo, k->hi, k->lo_open, k->hi_open, true);
        break;
    case RK_NUM:
        s = json_pack("{s:s}", "type", "number");
        range(s, k->lo, k->hi, k->lo_open, k->hi_open, false);
        break;
    case RK_BOOL: s = bool_schema(); break;
    case RK_ENUM: s = enum_of(k->names, k->nnames); break;
    case RK_MAP: s = ref(k->sub); break;
    case RK_SOURCE: s = ref("data.source"); break;
    case RK_FREEZE: s = freeze_schema(); break;
    case RK_LAYERS: s = array_of(ref("layer"), 0, 0, false); break;
    }
    if (k->map_values) {
        s = json_pack("{s:s,s:o}", "type", "object", "additionalProperties", s);
    } else if (k->list && k->list_ends_only) {
        json_t *a = array_of(json_deep_copy(s), k->list_min, k->list_min, k->unique);
        json_t *b = array_of(s, k->list_max, k->list_max, k->unique);
        s = any_of2(a, b);
    } else if (k->list) {
        json_t *a = array_of(k->scalar_ok ? json_deep_copy(s) : s, k->list_min, k->list_max,
                             k->unique);
        s = k->scalar_ok ? any_of2(s, a) : a;
    }
    if (k->bool_ok) s = any_of2(json_pack("{s:s}", "type", "boolean"), s);
    json_t *out = json_object();
    if (k->doc) {
        char d[512];
        snprintf(d, sizeof d, "%s%s", k->doc,
                 k->required ? " (required once the recipe is whole)" : "");
        json_object_set_new(out, "description", json_string(d));
    }
    json_object_update(out, s);
    json_decref(s);
    return out;
}

/* A section as an object: its keys (loader keys too: extends, model.file), nothing else. */
static json_t *section_schema(const char *section, bool required)
{
    int n;
    const recipe_key *keys = recipe_keys(&n);
    json_t *props = json_object(), *req = json_array();
    for (int i = 0; i < n; i++) {
        if (strcmp(keys[i].section, section) != 0) continue;
        json_object_set_new(props, keys[i].key, key_schema(&keys[i]));
        if (required && keys[i].required) json_array_append_new(req, json_string(keys[i].key));
    }
    json_t *o = json_pack("{s:s,s:o,s:b}", "type", "object", "properties", props,
                          "additionalProperties", 0);
    if (json_array_size(req)) json_object_set_new(o, "required", req);
    else json_decref(req);
    return o;
}

static json_t *layer_opt_schema(const layer_opt *o)
{
    json_t *num = json_pack("{s:s}", "type", o->kind == LOPT_FLOAT ? "number" : "integer");
    if (o->kind != LOPT_BOOL) range(num, o->lo, o->hi, o->lo_open, o->hi_open, o->kind != LOPT_FLOAT);
    json_t *s;
    switch (o->kind) {
    case LOPT_PAIR: s = any_of2(json_deep_copy(num), array_of(num, 2, 2, false)); break;
    case LOPT_PAD:
        s = json_pack("{s:[{s:[s,s]},o,o]}", "anyOf", "enum", "same", "valid", json_deep_copy(num),
                      array_of(num, 2, 2, false));
        break;
    case LOPT_BOOL:
        json_decref(num);
        s = bool_schema();
        break;
    case LOPT_ENUM:
        json_decref(num);
        s = json_pack("{s:[]}", "enum");
        for (int k = 0; o->choices[k]; k++)
            json_array_append_new(json_object_get(s, "enum"), json_string(o->choices[k]));
        break;
    default: s = num; break;
    }
    json_object_set_new(s, "description", json_string(o->expect));
    return s;
}

/* "layer": name and type, then the type's own keys (the registry's option tables). */
static void layer_schemas(json_t *defs)
{
    int nk;
    const layer_kind *const *kinds = layer_kinds(&nk);
    json_t *names = json_array(), *all = json_array();
    for (int i = 0; i < nk; i++) {
        const layer_kind *k = kinds[i];
        json_array_append_new(names, json_string(k->name));
        json_t *props = json_object(), *req = json_array();
        json_object_set_new(props, "name", json_pack("{s:s,s:s}", "type", "string", "description",
                                                     "unique within the model"));
        json_object_set_new(props, "type", json_pack("{s:s}", "const", k->name));
        json_object_set_new(props, "inputs",
                            json_pack("{s:[{s:s},{s:s,s:{s:s}}],s:s}", "anyOf", "type", "string",
                                      "type", "array", "items", "type", "string", "description",
                                      "earlier layers (or input) feeding this one; default: the "
                                      "layer before"));
        json_array_append_new(req, json_string("name"));
        json_array_append_new(req, json_string("type"));
        if (k->activation_sugar) {
            json_t *a = enum_of(RECIPE_ACTIVATIONS, RECIPE_NACTIVATIONS);
            json_object_set_new(a, "description", json_string("an activation layer after this one"));
            json_object_set_new(props, "activation", a);
        }
        for (int j = 0; j < k->nopts; j++) {
            json_object_set_new(props, k->opts[j].key, layer_opt_schema(&k->opts[j]));
            if (k->opts[j].required) json_array_append_new(req, json_string(k->opts[j].key));
        }
        char def[64];
        snprintf(def, sizeof def, "layer.%s", k->name);
        json_object_set_new(defs, def, json_pack("{s:s,s:o,s:o,s:b}", "type", "object",
                                                 "properties", props, "required", req,
                                                 "additionalProperties", 0));
        json_array_append_new(all, json_pack("{s:{s:{s:{s:s}},s:[s]},s:o}", "if", "properties",
                                             "type", "const", k->name, "required", "type", "then",
                                             ref(def)));
    }
    json_object_set_new(defs, "layer",
                        json_pack("{s:s,s:s,s:[s,s],s:{s:{s:o},s:{s:s}},s:o}", "description",
                                  "one layer: name, type and the type's options", "type", "object",
                                  "required", "name", "type", "properties", "type", "enum", names,
                                  "name", "type", "string", "allOf", all));
}

graft_status graft_recipe_schema_json(char **json, graft_error *err)
{
    *json = NULL;
    json_t *defs = json_object();
    int n;
    const recipe_key *keys = recipe_keys(&n);
    /* every section a key points to, once */
    for (int i = 0; i < n; i++)
        if (keys[i].kind == RK_MAP && !json_object_get(defs, keys[i].sub))
            json_object_set_new(defs, keys[i].sub,
                                section_schema(keys[i].sub, keys[i].list /* list items */));
    json_t *src = json_array();
    const char *branches[] = {"data.source.idx", "data.source.csv", "data.source.folder"};
    for (int i = 0; i < 3; i++) json_array_append_new(src, section_schema(branches[i], false));
    json_object_set_new(defs, "data.source",
                        json_pack("{s:s,s:o}", "description",
                                  "a data source: idx or npy images and labels, a csv file, or an "
                                  "image folder (format may come from data.format)",
                                  "anyOf", src));
    layer_schemas(defs);
    json_t *root = section_schema("", false);
    json_t *top = json_pack("{s:s,s:s,s:s}", "$schema", "http://json-schema.org/draft-07/schema#",
                            "title", "Graft recipe",
                            "description",
                            "A Graft recipe or a part of one (files that extend another, model "
                            "files): every key present is checked; required keys are checked by "
                            "`graft check` on the merged recipe. Generated by `graft schema` from "
                            "the checker's own tables.");
    json_object_update(top, root);
    json_decref(root);
    json_object_set_new(top, "definitions", defs);
    *json = json_dumps(top, JSON_INDENT(2));
    json_decref(top);
    return *json ? GRAFT_OK : err_set(err, GRAFT_STATUS_NOMEM, "out of memory");
}
