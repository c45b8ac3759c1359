"""test_sweep_demo.py — the issue's check, on its own: `graft sweep` over the demo's target recipe
(fmnist-finetune: classes 5-9, 100 images each, from the demo's pretrained fmnist-cnn) with
transfer.freeze=[none,conv2,conv4,flatten,fc1] finds the feature-extraction variant or a better
one, and flags freezing through dense128 (fc1) as negative transfer against scratch.
Long (the full pretrain and up to 30 epochs per variant): suite transfer-slow, which tools/test.sh
leaves out; run it with  meson test -C build --suite transfer-slow
usage: test_sweep_demo.py GRAFT SOURCE_ROOT WORKDIR  (GRAFT_DEMO_PRETRAIN=FILE reuses a pretrain)"""
import json
import os
import subprocess
import sys

graft, root, work = sys.argv[1:4]
if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    print("SKIP: Fashion-MNIST is not installed (dataset-fashion-mnist)")
    sys.exit(77)
os.makedirs(work, exist_ok=True)
recipes = os.path.join(root, "configs", "recipes")
pre = os.environ.get("GRAFT_DEMO_PRETRAIN") or os.path.join(work, "pretrain", "model.safetensors")
if not os.path.exists(pre):
    subprocess.run([graft, "train", os.path.join(recipes, "fmnist-pretrain.yaml"), "--out",
                    os.path.dirname(pre), "--quiet"], check=True)
out = os.path.join(work, "sweep")
r = subprocess.run([graft, "sweep", os.path.join(recipes, "fmnist-finetune.yaml"), "--set",
                    "transfer.from=" + pre, "--grid",
                    "transfer.freeze=[none,conv2,conv4,flatten,fc1]", "--out", out, "--quiet"],
                   capture_output=True, text=True)
print(r.stdout)
print(r.stderr[-2000:], file=sys.stderr)
if r.returncode != 0:
    sys.exit(1)
res = json.load(open(os.path.join(out, "sweep.json")))
v = {x["label"]: x for x in res["variants"]}
best = next(x for x in res["variants"] if x["id"] == res["best"])
fe = v["freeze=flatten"]
failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    failures += not cond


check(not best["baseline"] and best["label"] != "freeze=fc1",
      f"the best variant transfers: {best['label']}")
check(best["val_metric"] >= fe["val_metric"] and best["test_accuracy"] >= fe["test_accuracy"] - 0.01,
      f"it is feature extraction or better: {best['label']} val {best['val_metric']:.4f} test "
      f"{best['test_accuracy']:.4f}; freeze=flatten val {fe['val_metric']:.4f} test "
      f"{fe['test_accuracy']:.4f}")
fc1 = v["freeze=fc1"]
check(fc1["negative_transfer"] and fc1["margin"] > 0,
      f"frozen dense128 is negative transfer (margin {100 * (fc1['margin'] or 0):.2f} points)")
check("NEGATIVE TRANSFER: freeze=fc1" in r.stdout, "and the verdict is printed")
sys.exit(1 if failures else 0)
