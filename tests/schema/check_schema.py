#!/usr/bin/python3
"""check_schema.py GRAFT SRC — the recipe JSON Schema against the checker, with an independent
validator (python3-jsonschema, Draft 7):
1. docs/recipe.schema.json is exactly what `graft schema` prints (regenerate with
   `build/graft schema --out docs/recipe.schema.json`), and is a valid Draft 7 schema;
2. every shipped recipe and model file (configs/**/*.yaml) carries the yaml-language-server line
   pointing at that file, validates against the schema, and passes `graft check` where it is a
   whole recipe whose checkpoint exists;
3. bad recipes the checker rejects (tests/bad) are rejected by the schema too, for the reason the
   table says, and a few good edits are accepted by both.
YAML is read as YAML 1.2 reads numbers (1e-3 is a float), as the YAML language server does."""
import glob
import json
import os
import re
import subprocess
import sys

try:
    import jsonschema
    import yaml
except ImportError as e:
    print(f"SKIP: {e} (Debian: python3-jsonschema, python3-yaml)")
    sys.exit(77)

G, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
fail = []


class Loader(yaml.SafeLoader):
    pass


# YAML 1.2 floats (PyYAML's 1.1 rules need a dot: 1e-3 would be a string)
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"),
    list("-+0123456789."))


def load(path):
    with open(path) as f:
        return yaml.load(f, Loader=Loader)


printed = subprocess.run([G, "schema"], capture_output=True, text=True, check=True).stdout
path = os.path.join(SRC, "docs/recipe.schema.json")
if open(path).read() != printed:
    fail.append("docs/recipe.schema.json differs from `graft schema`: run "
                "build/graft schema --out docs/recipe.schema.json")
schema = json.loads(printed)
jsonschema.Draft7Validator.check_schema(schema)
V = jsonschema.Draft7Validator(schema)

files = sorted(glob.glob(os.path.join(SRC, "configs/recipes/*.yaml")) +
               glob.glob(os.path.join(SRC, "configs/models/*.yaml")))
for f in files:
    first = open(f).readline().strip()
    want = "# yaml-language-server: $schema=" + os.path.relpath(path, os.path.dirname(f))
    if first != want:
        fail.append(f"{f}: first line {first!r}, expected {want!r}")
    errs = sorted(V.iter_errors(load(f)), key=lambda e: list(e.path))
    for e in errs[:3]:
        fail.append(f"{f}: schema: {'.'.join(map(str, e.path))}: {e.message[:200]}")
print(f"check_schema: {len(files)} shipped recipe and model files validate")

# bad recipes: both must reject; the schema's error sits at the key graft's message names
BAD = {
    "unknown-section.yaml": "",           # trian:
    "unknown-train-key.yaml": "train",    # lrr:
    "neg-epochs.yaml": "train.epochs",
    "bad-optimizer.yaml": "train.optimizer",
    "betas.yaml": "train.betas",
    "val-split.yaml": "data.val_split",
    "cache-fraction.yaml": "transfer.cache_device_fraction",
    "quoted-number.yaml": "train.epochs",
    "tune-mode.yaml": "train.tune",
    "rrc-range.yaml": "data.augment.random_resized_crop",
    "bad-int.yaml": "train.batch_size",
    "data-bad-format.yaml": "data.train",
    "bn-eps.yaml": "model.layers.0",
    "dropout-rate.yaml": "transfer.head.layers.0",
    "layer-unknown-key.yaml": "model.layers.0",
    "unknown-layer-type.yaml": "model.layers.0.type",
    "layer-no-name.yaml": "model.layers.0",
    "missing-filters.yaml": "model.layers.0",
}
bad_dir = os.path.join(SRC, "tests/bad")
for name, where in BAD.items():
    f = os.path.join(bad_dir, name)
    p = subprocess.run([G, "check", name], capture_output=True, text=True, cwd=bad_dir)
    if p.returncode != 2:
        fail.append(f"{name}: graft check exited {p.returncode}, expected 2")
    errs = list(V.iter_errors(load(f)))
    paths = [".".join(map(str, e.absolute_path)) for e in errs]
    # anyOf/if-then errors sit at the value's own path or below it
    if not errs:
        fail.append(f"{name}: graft check rejects it ({p.stderr.strip()[:120]}), the schema accepts it")
    elif not any(x == where or x.startswith(where + ".") or (where == "" and x == "") for x in paths):
        fail.append(f"{name}: the schema rejects it at {paths}, expected at {where!r}")
    else:
        print(f"ok: {name}: graft check and the schema both reject it ({where or 'top level'})")

# good edits pass both: the shipped pretrain recipe with overrides
good = load(os.path.join(SRC, "configs/recipes/fmnist-pretrain.yaml"))
for path_, value in (("train.lr", 1e-3), ("train.betas", [0.8, 0.99]), ("data.val_split", 0.0),
                     ("transfer.cache_features", False), ("train.schedule", "cosine")):
    d = json.loads(json.dumps(good))
    node = d
    keys = path_.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    errs = list(V.iter_errors(d))
    if errs:
        fail.append(f"--set {path_}={value}: the schema rejects a good value: {errs[0].message}")
    p = subprocess.run([G, "check", os.path.join(SRC, "configs/recipes/fmnist-pretrain.yaml"),
                        "--set", f"{path_}={json.dumps(value)}"], capture_output=True, text=True)
    if p.returncode:
        fail.append(f"--set {path_}={value}: graft check rejects it: {p.stderr.strip()[:200]}")
for f in fail:
    print("FAIL:", f)
sys.exit(1 if fail else 0)
