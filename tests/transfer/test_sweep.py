"""test_sweep.py — `graft sweep` end to end on a small Fashion-MNIST transfer: --grid/--set values
checked before anything trains (positions inside the --grid option, exit 2, nothing written); the
scratch baseline always added; the verdict is exactly "worse than the best scratch on validation"
with the margin; frozen features shared by variants with the same prefix; a sweep killed in the
middle continues and ends with the same numbers for what had finished; a different sweep in the
same folder is refused; the HTML page has its charts inline and loads nothing.
usage: test_sweep.py GRAFT SOURCE_ROOT WORKDIR"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

graft, root, work = sys.argv[1:4]
if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    print("SKIP: Fashion-MNIST is not installed (dataset-fashion-mnist)")
    sys.exit(77)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
recipes = os.path.join(root, "configs", "recipes")
target = os.path.join(recipes, "fmnist-finetune.yaml")
failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    failures += not cond


def run(*args, expect=0):
    r = subprocess.run([graft, *args], capture_output=True, text=True)
    if r.returncode != expect:
        print(r.stdout[-3000:], r.stderr[-3000:])
    check(r.returncode == expect, f"graft {args[0]} exits {expect} (got {r.returncode})")
    return r


pre = os.path.join(work, "pre")
run("train", os.path.join(recipes, "fmnist-pretrain.yaml"), "--set", "data.shots=200", "--set",
    "train.epochs=1", "--out", pre, "--quiet")
frm = "transfer.from=" + pre + "/model.safetensors"

# every bad value, at its place, before anything trains
out_bad = os.path.join(work, "bad")
r = run("sweep", target, "--set", frm, "--grid", "transfer.freeze=[flatten,bogus]", "--grid",
        "train.lr=[1e-3,fast]", "--set", "train.epochs=many", "--out", out_bad, expect=2)
check("--grid transfer.freeze=[flatten,bogus]:1:26: error: transfer.freeze: unknown layer 'bogus'"
      in r.stderr, "a bad freeze value is reported at its column of --grid")
check("--grid train.lr=[1e-3,fast]:1:16: error:" in r.stderr, "a bad lr value at its column")
check("--set train.epochs=many:1:" in r.stderr, "a bad --set value as --set reports it")
check(not os.path.exists(out_bad), "nothing written when values are bad")
r = run("sweep", target, "--grid", "train.lr=[1e-3,", expect=2)
check("--grid train.lr=[1e-3,:1:" in r.stderr and "']'" in r.stderr, "an unclosed list")
r = run("sweep", target, "--set", frm, expect=2)
check("--grid" in r.stderr, "no --grid is a usage error")

# a sweep, killed after its first variant, then continued
out = os.path.join(work, "sweep")
args = ["sweep", target, "--set", frm, "--grid", "transfer.freeze=[flatten,fc1]", "--grid",
        "train.lr=[1e-3,3e-4]", "--epochs", "3", "--out", out]
p = subprocess.Popen([graft, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
state = os.path.join(out, "sweep.json")
deadline = time.time() + 300
killed_after = None
while time.time() < deadline and p.poll() is None:
    time.sleep(0.05)
    try:
        s = json.load(open(state))
    except (OSError, ValueError):
        continue
    done = [v for v in s["variants"] if v["status"] == "done"]
    if len(done) >= 1:  # the second scratch run is still ahead: the kill lands mid-sweep
        p.send_signal(signal.SIGKILL)
        killed_after = {v["id"]: v for v in json.load(open(state))["variants"] if v["status"] == "done"}
        break
p.wait()
check(killed_after is not None and p.returncode == -signal.SIGKILL,
      f"killed with {len(killed_after or {})} variants finished")
r = run(*args)
check("continuing the sweep" in r.stderr, "the second run continues the first")
res = json.load(open(state))
check(res["complete"], "the sweep is complete")
labels = [v["label"] for v in res["variants"]]
check(labels[:2] == ["scratch lr=1e-3", "scratch lr=3e-4"] and len(labels) == 6,
      f"baselines first, one per lr, then the grid: {labels}")
for vid, before in (killed_after or {}).items():
    after = next(v for v in res["variants"] if v["id"] == vid)
    check(after["val_metric"] == before["val_metric"] and after["test_accuracy"] == before["test_accuracy"],
          f"variant {vid} kept from the first run ({after['label']})")
base = next(v for v in res["variants"] if v["id"] == res["baseline"])
check(base["baseline"] and base["val_metric"] == max(v["val_metric"] for v in res["variants"] if v["baseline"]),
      "the verdict's reference is the best scratch run")
for v in res["variants"]:
    if v["baseline"]:
        continue
    worse = base["val_metric"] - v["val_metric"]
    check(v["negative_transfer"] == (worse > 0) and
          (not v["negative_transfer"] or abs(v["margin"] - worse) < 1e-9),
          f"{v['label']}: negative transfer {v['negative_transfer']} (margin {v['margin']})")
    if v["negative_transfer"]:
        a, b, n = v["val_metric"], base["val_metric"], res["validation_images"]
        noise = 2 * ((a * (1 - a) + b * (1 - b)) / n) ** 0.5
        check(abs(v["noise"] - noise) < 1e-9 and v["within_noise"] == (v["margin"] <= noise),
              f"{v['label']}: noise level {v['noise']:.4f} on {n} validation images")
    check(v["feature_cache"], f"{v['label']}: trained on cached frozen features")
    check(len(v["curves"]["val_accuracy"]) == v["epochs_run"], f"{v['label']}: a learning curve")
best = next(v for v in res["variants"] if v["id"] == res["best"])
check(best["val_metric"] == max(v["val_metric"] for v in res["variants"]), "best = highest val accuracy")
check(res["ranking"][0] == res["best"] and len(res["ranking"]) == 6, "ranking best first")
check(res["feature_pool"]["reused"] >= 3,
      f"frozen features shared across the lr values ({res['feature_pool']})")
for v in res["variants"]:
    check(os.path.exists(os.path.join(v["dir"], "model.safetensors")), f"{v['id']} has its run")
m = re.search(r"BEST: (.*) \(val_accuracy", r.stdout)
check(m and m.group(1) == best["label"], "the printed best matches the JSON")
neg = [v for v in res["variants"] if v["negative_transfer"]]
check(r.stdout.count("NEGATIVE TRANSFER:") == len(neg), f"{len(neg)} verdicts printed")
check(res["validation_images"] == 100, f"100 validation images (0.2 of 500): {res['validation_images']}")

# the same folder with another grid is refused, --fresh starts over
r = run("sweep", target, "--set", frm, "--grid", "transfer.freeze=[flatten]", "--out", out, expect=2)
check("different sweep" in r.stderr, "another sweep in the same folder is refused")

html = open(os.path.join(out, "sweep.html")).read()
check(html.count("<svg") == 2 and "<script" not in html and " src=" not in html
      and "href=" not in html and "url(" not in html and "@import" not in html,
      "sweep.html: two inline SVG charts, nothing loaded from anywhere")
check(all(v["label"] in html for v in res["variants"]), "every variant on the page")
sys.exit(1 if failures else 0)
