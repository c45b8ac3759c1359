#!/usr/bin/python3
"""test_recipes.py — the configs/recipes torchvision recipes run on an image folder given with
--set: each passes `graft check`; resnet18-feature-extract and mobilenet_v2-head train two epochs
at 3x64x64 from torchvision's (randomly initialised) state_dict, with the backbone left exactly
as loaded, only the new head changed, and the frozen features cached.

usage: test_recipes.py GRAFT WORKDIR      exit 77 without numpy/PIL/torchvision"""
import gzip
import json
import os
import shutil
import subprocess
import sys

try:
    import numpy as np
    from PIL import Image
    import torchvision  # noqa: F401  (gen_torchvision.py --export needs it)
except ImportError as exc:
    print(f"skip: {exc}")
    sys.exit(77)

graft, work = sys.argv[1:3]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "torch"))
from oracle import st_read  # noqa: E402

SRC = "/usr/share/datasets/fashion-mnist"
if not os.path.isdir(SRC):
    print("skip: no Fashion-MNIST")
    sys.exit(77)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
failures = 0


def check(what, ok, detail=""):
    global failures
    failures += 0 if ok else 1
    print(f"  {'ok  ' if ok else 'FAIL'} {what} {detail}")


with gzip.open(os.path.join(SRC, "t10k-images-idx3-ubyte.gz")) as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
with gzip.open(os.path.join(SRC, "t10k-labels-idx1-ubyte.gz")) as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8)
folder = os.path.join(work, "images")
names = ["ankle boot", "bag", "sneaker"]  # class names with spaces, as users write them
for i, label in enumerate([9, 8, 7]):
    d = os.path.join(folder, names[i])
    os.makedirs(d)
    for j, k in enumerate(np.nonzero(y == label)[0][:16]):
        im = Image.fromarray(x[k]).resize((72, 80), Image.BILINEAR).convert("RGB")
        im.save(os.path.join(d, f"{j}.{'jpg' if j % 2 else 'png'}"))

gen = os.path.join(ROOT, "tools", "gen_torchvision.py")
recipes = {"resnet18-feature-extract": ("resnet18", "transfer.head.layers.0.units"),
           "resnet18-finetune": ("resnet18", "transfer.head.layers.0.units"),
           "vgg16-frozen-base": ("vgg16", "transfer.head.layers.3.units"),
           "mobilenet_v2-head": ("mobilenet_v2", "transfer.head.layers.1.units"),
           "vit_b_16-finetune": ("vit_b_16", "transfer.head.layers.0.units")}
weights = {}
for model in ("resnet18", "mobilenet_v2"):
    weights[model] = os.path.join(work, model + ".safetensors")
    subprocess.run(["/usr/bin/python3", gen, "--export", model, weights[model]], check=True, capture_output=True)
for name, (model, units) in recipes.items():
    # check reads no weights, only that transfer.from names a file: vgg16's 528 MB (and
    # vit_b_16's 346 MB) are not written
    w = weights.get(model, weights["resnet18"])
    r = subprocess.run([graft, "check", os.path.join(ROOT, "configs", "recipes", name + ".yaml"),
                        "--set", f"data.root={folder}", "--set", f"{units}=3", "--set", f"transfer.from={w}"],
                       capture_output=True, text=True)
    check(f"graft check {name}", r.returncode == 0, (r.stdout + r.stderr).strip()[-300:])

for name in ("resnet18-feature-extract", "mobilenet_v2-head"):
    model, units = recipes[name]
    w = weights[model]
    run = os.path.join(work, "run-" + name)
    r = subprocess.run([graft, "train", os.path.join(ROOT, "configs", "recipes", name + ".yaml"), "--quiet",
                        "--out", run, "--set", f"data.root={folder}", "--set", f"{units}=3",
                        "--set", f"transfer.from={w}", "--set", "model.input=[3, 64, 64]",
                        "--set", "train.epochs=2"], capture_output=True, text=True)
    check(f"graft train {name}", r.returncode == 0, (r.stdout + r.stderr).strip()[-300:])
    if r.returncode:
        continue
    summ = json.load(open(os.path.join(run, "summary.json")))
    check(f"{name}: the frozen features are cached", bool(summ.get("feature_cache")), str(summ.get("feature_cache")))
    before, after = st_read(w), st_read(os.path.join(run, "last.safetensors"))
    head = [k for k in after if k not in before or after[k].shape != before[k].shape]
    moved = [k for k in before if k in after and after[k].shape == before[k].shape
             and not np.array_equal(before[k], after[k])]
    check(f"{name}: the backbone is exactly as loaded", moved == [], str(moved[:5]))
    check(f"{name}: the new head is the 3-way layer", len(head) == 2 and all(after[k].shape[0] == 3 for k in head),
          str({k: after[k].shape for k in head}))
print(f"{'PASS' if failures == 0 else 'FAIL'}: {failures} check(s) failed")
sys.exit(1 if failures else 0)
