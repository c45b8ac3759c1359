"""test_rank.py — `graft rank` on real Fashion-MNIST: candidates pretrained by Graft for a few
seconds, one without its classifier, one of another architecture, one that is not a checkpoint.
The scores graft prints equal the numpy references (reference.py) on the very features and source
logits it computed (--features-out), to 1e-6 relative; unusable candidates are error rows, and
usage and recipe errors exit 2 with positions.
usage: test_rank.py GRAFT SOURCE_ROOT WORKDIR"""
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

graft, root, work = sys.argv[1:4]
if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    print("SKIP: Fashion-MNIST is not installed (dataset-fashion-mnist)")
    sys.exit(77)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
recipes = os.path.join(root, "configs", "recipes")
failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    failures += not cond


def graft_run(*args, expect=0):
    r = subprocess.run([graft, *args], capture_output=True, text=True)
    if r.returncode != expect:
        print(r.stdout, r.stderr)
    check(r.returncode == expect, f"graft {' '.join(args[:2])}… exits {expect} (got {r.returncode})")
    return r


def read_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], np.float32).reshape(v["shape"])
    return out


def write_st(path, tensors):
    header, blobs, off = {}, [], 0
    for k, a in tensors.items():
        a = np.ascontiguousarray(a, np.float32)
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


pre = os.path.join(recipes, "fmnist-pretrain.yaml")
a = os.path.join(work, "a")
b = os.path.join(work, "b")
graft_run("train", pre, "--set", "data.shots=100", "--set", "train.epochs=1", "--out", a, "--quiet")
graft_run("train", pre, "--set", "data.shots=60", "--set", "data.classes=[0,1,2]", "--set",
          "train.epochs=1", "--set", "train.seed=3", "--out", b, "--quiet")
A, B = a + "/model.safetensors", b + "/model.safetensors"
headless = os.path.join(work, "headless.safetensors")
write_st(headless, {k: v for k, v in read_st(A).items() if not k.startswith("fc2.")})
other = os.path.join(work, "lenet-like.safetensors")
write_st(other, {"conv1.weight": np.zeros((6, 1, 5, 5)), "conv1.bias": np.zeros(6)})
junk = os.path.join(work, "junk.safetensors")
open(junk, "w").write("not a checkpoint\n")

feat = os.path.join(work, "feat")
r = graft_run("rank", os.path.join(recipes, "fmnist-feature-extract.yaml"), "--from", A, "--from",
              B, "--from", headless, "--from", other, "--from", junk, "--json", "--features-out",
              feat)
out = json.loads(r.stdout)
rows = {c["from"]: c for c in out["candidates"]}
check(out["images"] == 500 and out["classes"] == 5, f"500 images of 5 classes ({out['images']})")
labels = np.load(os.path.join(feat, "labels.npy")).reshape(-1).astype(int)
for path in (A, B, headless):
    c = rows[path]
    check(c["ok"] and c["layer"] == "fc1" and c["dim"] == 3136, f"{os.path.basename(path)}: "
          f"features at fc1's input, 3136 wide ({c['layer']}, {c['dim']})")
    f = np.load(os.path.join(feat, f"features_{c['index']}.npy")).astype(np.float64)
    for name, fn in (("logme", ref.logme), ("hscore", ref.hscore)):
        want, got = fn(f, labels, 5), c["scores"][name]
        rel = abs(got - want) / abs(want)
        check(rel <= 1e-6, f"{os.path.basename(path)} {name}: graft {got:.10g} numpy {want:.10g} "
              f"(rel {rel:.1e})")
    if path == headless:
        check(c["scores"]["nce"] is None and c["scores"]["leep"] is None
              and "fc2.weight" in (c["skipped"] or ""), f"headless: NCE/LEEP skipped: {c['skipped']}")
        continue
    g = np.load(os.path.join(feat, f"source_logits_{c['index']}.npy"))
    check(g.shape == (500, 10), f"source logits {g.shape}: the candidate's own 10-way fc2")
    for name, fn in (("nce", ref.nce), ("leep", ref.leep)):
        want, got = fn(g, labels, 5), c["scores"][name]
        rel = abs(got - want) / abs(want)
        check(rel <= 1e-6, f"{os.path.basename(path)} {name}: graft {got:.10g} numpy {want:.10g} "
              f"(rel {rel:.1e})")
check(not rows[other]["ok"] and "checkpoint has" in rows[other]["error"],
      f"other architecture is an error row: {rows[other]['error']}")
check(not rows[junk]["ok"] and "junk.safetensors" in rows[junk]["error"],
      f"not a checkpoint is an error row: {rows[junk]['error']}")
ranks = [c["rank"] for c in out["candidates"]]
check(ranks[:3] == [1, 2, 3] and ranks[3:] == [None, None], f"ranks, errors last: {ranks}")
logme = [c["scores"]["logme"] for c in out["candidates"][:3]]
check(logme == sorted(logme, reverse=True), "best first by LogME")

# a narrower layer (fc2's input: 128 after relu and dropout) where H-score is informative
feat2 = os.path.join(work, "feat2")
r = graft_run("rank", os.path.join(recipes, "fmnist-finetune.yaml"), "--from", A, "--layer", "fc2",
              "--by", "hscore", "--json", "--features-out", feat2)
c = json.loads(r.stdout)["candidates"][0]
f = np.load(os.path.join(feat2, "features_0.npy")).astype(np.float64)
for name, fn in (("logme", ref.logme), ("hscore", ref.hscore)):
    want, got = fn(f, labels, 5), c["scores"][name]
    check(c["dim"] == 128 and abs(got - want) <= 1e-6 * abs(want),
          f"--layer fc2 {name}: graft {got:.10g} numpy {want:.10g}")
check(c["scores"]["hscore"] < 3.99, f"H-score below K-1 on 128 features ({c['scores']['hscore']:.4f})")

# the table, and the commands' errors
r = graft_run("rank", os.path.join(recipes, "fmnist-feature-extract.yaml"), "--from", A, "--from",
              other)
check("LogME" in r.stdout and "error:" in r.stdout and "H-score is 4" in r.stdout,
      "the table names the estimators, the error row and the degenerate H-score")
r = graft_run("rank", os.path.join(recipes, "fmnist-feature-extract.yaml"), expect=2)
check("--from" in r.stderr, "no candidates: usage error")
r = graft_run("rank", os.path.join(recipes, "fmnist-feature-extract.yaml"), "--from", A, "--by",
              "auc", expect=2)
check("--by" in r.stderr, "bad --by: usage error")
r = graft_run("rank", os.path.join(recipes, "fmnist-feature-extract.yaml"), "--from", A, "--set",
              "train.lr=fast", expect=2)
check("--set train.lr=fast:1:" in r.stderr, f"recipe error with its position: {r.stderr.strip()}")
r = graft_run("rank", os.path.join(recipes, "fmnist-feature-extract.yaml"), "--from", A, "--layer",
              "nosuch", expect=1)
check("nosuch names no layer" in r.stdout, "an unknown --layer is the row's error; none ranked: exit 1")
sys.exit(1 if failures else 0)
