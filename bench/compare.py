#!/usr/bin/python3
"""compare.py — Graft against numpy/OpenBLAS and PyTorch on the same machine in one run (issue 6).

Workloads, each run by every contender back to back so the ratios share the machine's state:
  1. SGEMM GFLOP/s: 1024^3 and the GEMMs of the Fashion-MNIST CNN at batch 64 (forward and both
     backward products of each convolution and of fc1), as Graft issues them;
  2. fmnist-cnn training images/s (batch 64, Adam): PyTorch's eager loop vs `graft train`;
  3. the frozen-conv transfer recipe (fmnist-feature-extract: convs frozen, new dense head,
     30 epochs on 500 images) end to end: `graft train` vs PyTorch's usual loop and vs PyTorch
     with the frozen features computed once by hand;
  4. Graft's cold and warm start (empty vs filled program cache) to the end of a 1-step run.

Usage: bench/compare.py [--graft BUILD/graft] [--blas-dir DIR] [--quick] [--json OUT.json]
                        [--skip-tune]
Everything Graft writes goes to a temporary folder; the program cache is GRAFT_CACHE_DIR (or the
user's default), and `graft tune --missing` runs on the CNN's recipe first unless --skip-tune.

The BLAS that numpy and PyTorch load is whatever libblas.so.3 resolves to; the script prints it.
Debian's python3-numpy and python3-torch link the reference BLAS unless an optimised one is the
system's alternative. --blas-dir puts a folder first on LD_LIBRARY_PATH for the Python contenders
only, e.g. OpenBLAS unpacked without installing it:
    apt-get download libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb ob
    bench/compare.py --blas-dir ob/usr/lib/x86_64-linux-gnu/openblas-pthread
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for those children (they slow current OpenBLAS).
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST = "/usr/share/datasets/fashion-mnist"
PY = "/usr/bin/python3"
PRETRAIN = os.path.join(ROOT, "configs", "recipes", "fmnist-pretrain.yaml")

# (m, n, k, ta, tb, what) — op_conv.c / op_dense.c at batch 64 (see cmd_tune.c's layer_shapes)
SHAPES = [
    (1024, 1024, 1024, False, False, "square"),
    (32, 50176, 288, False, False, "conv2 fwd"),
    (288, 50176, 32, True, False, "conv2 bwd data"),
    (32, 288, 50176, False, True, "conv2 bwd weight"),
    (64, 12544, 288, False, False, "conv3 fwd"),
    (288, 12544, 64, True, False, "conv3 bwd data"),
    (64, 288, 12544, False, True, "conv3 bwd weight"),
    (64, 12544, 576, False, False, "conv4 fwd"),
    (576, 12544, 64, True, False, "conv4 bwd data"),
    (64, 576, 12544, False, True, "conv4 bwd weight"),
    (64, 128, 3136, False, True, "fc1 fwd"),
    (64, 3136, 128, False, False, "fc1 bwd data"),
    (128, 3136, 64, True, False, "fc1 bwd weight"),
]

# The numpy / PyTorch SGEMM timer, run in a child so OpenBLAS's environment can differ.
GEMM_CHILD = r"""
import json, sys, time
import numpy as np
lib = sys.argv[1]
shapes = json.loads(sys.argv[2])
if lib == "torch":
    import torch
    torch.set_num_threads(int(sys.argv[3]))
out = []
for m, n, k, ta, tb in shapes:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    if lib == "torch":
        a, b = torch.from_numpy(a), torch.from_numpy(b)
        f = lambda: torch.matmul(a.t() if ta else a, b.t() if tb else b)
    else:
        f = lambda: (a.T if ta else a) @ (b.T if tb else b)
    f()
    t0 = time.perf_counter(); f(); one = time.perf_counter() - t0
    per = max(1, min(200, int(0.05 / max(one, 1e-6))))
    best = one
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(per): f()
        best = min(best, (time.perf_counter() - t0) / per)
    out.append(2.0 * m * n * k / best / 1e9)
blas = sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.lower()})
print(json.dumps({"gflops": out, "blas": blas}))
"""


def sh(cmd, env=None, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        sys.stderr.write(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}\n")
        raise SystemExit(1)
    return r


def cores():
    return os.cpu_count() or 1


BLAS_DIR = None


def py_env():
    env = dict(os.environ)
    # a forced core type makes a current OpenBLAS pick a slower kernel than the CPU allows
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    if BLAS_DIR:
        env["LD_LIBRARY_PATH"] = BLAS_DIR + (":" + env["LD_LIBRARY_PATH"]
                                             if env.get("LD_LIBRARY_PATH") else "")
    return env


def py_gemm(lib, shapes):
    arg = json.dumps([[m, n, k, ta, tb] for m, n, k, ta, tb, _ in shapes])
    r = sh([PY, "-c", GEMM_CHILD, lib, arg, str(cores())], env=py_env())
    j = json.loads(r.stdout)
    return j["gflops"], j["blas"]


def py_part(part, steps=60):
    """Run one PyTorch workload of this script in a child with the Python contenders' env."""
    r = sh([PY, os.path.abspath(__file__), "--part", part, "--steps", str(steps)], env=py_env())
    return json.loads(r.stdout.strip().splitlines()[-1])


def graft_gemm(graft, shapes):
    out = []
    for m, n, k, ta, tb, _ in shapes:
        cmd = [graft, "bench", "gemm", "--m", str(m), "--n", str(n), "--k", str(k), "--json"]
        if ta:
            cmd.append("--ta")
        if tb:
            cmd.append("--tb")
        j = json.loads(sh(cmd).stdout)
        out.append((j["gflops"], j["kernel"].split(" ")[0], j["tuned"]))
    return out


def load_fmnist(n, classes=None, shots=None, split="train"):
    import numpy as np
    with gzip.open(f"{FMNIST}/{split}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(f"{FMNIST}/{split}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    if classes is not None:
        idx = np.concatenate([np.nonzero(y == c)[0][:shots] for c in classes])
        idx.sort()
        x, y = x[idx], y[idx] - min(classes)
    x = ((x.astype(np.float32) / 255.0) - 0.2860) / 0.3530
    return x[:n], y[:n].astype(np.int64)


def torch_model(classes=10):
    import torch.nn as nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, classes))


def torch_train_ips(steps):
    """PyTorch eager training, batch 64, Adam: images/s over `steps` steps after 3 warm-up."""
    import torch
    torch.set_num_threads(cores())
    torch.manual_seed(0)
    x, y = load_fmnist(64 * (steps + 3))
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model = torch_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step(i):
        xb, yb = x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
    for i in range(3):
        step(i)
    t0 = time.perf_counter()
    for i in range(3, 3 + steps):
        step(i)
    return 64 * steps / (time.perf_counter() - t0)


def torch_transfer(cached):
    """fmnist-feature-extract in PyTorch: convs frozen (eval mode, no grad), a new 3136-128-5 head,
    30 epochs of 500 images (100 per class 5-9), batch 64, Adam, then the test split of classes 5-9
    (5000 images) evaluated once, as `graft train` does. cached: the frozen features computed
    once by hand, then only the head trains. Returns wall seconds end to end."""
    import torch
    t0 = time.perf_counter()
    torch.set_num_threads(cores())
    torch.manual_seed(0)
    x, y = load_fmnist(500, classes=[5, 6, 7, 8, 9], shots=100)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    net = torch_model()
    backbone = net[:13]  # up to and including flatten
    for p in backbone.parameters():
        p.requires_grad = False
    backbone.eval()
    head = torch.nn.Sequential(torch.nn.Linear(3136, 128), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                               torch.nn.Linear(128, 5))
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    feats = None
    if cached:
        with torch.no_grad():
            feats = torch.cat([backbone(x[i:i + 256]) for i in range(0, len(x), 256)])
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            if cached:
                f = feats[idx]
            else:
                with torch.no_grad():
                    f = backbone(x[idx])
            opt.zero_grad()
            loss_fn(head(f), y[idx]).backward()
            opt.step()
    xt, yt = load_fmnist(None, classes=[5, 6, 7, 8, 9], shots=None, split="t10k")
    xt, yt = torch.from_numpy(xt), torch.from_numpy(yt)
    head.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(xt), 256):
            correct += int((head(backbone(xt[i:i + 256])).argmax(1) == yt[i:i + 256]).sum())
    return time.perf_counter() - t0


def graft_train(graft, recipe, out, sets, env=None):
    cmd = [graft, "train", recipe, "--out", out, "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    sh(cmd, env=env)
    wall = time.perf_counter() - t0
    with open(os.path.join(out, "summary.json")) as f:
        return wall, json.load(f)


def gemm_part(graft, res):
    print("\n== SGEMM GFLOP/s (FP32) ==", flush=True)
    g = graft_gemm(graft, SHAPES)
    npy, blas_np = py_gemm("numpy", SHAPES)
    tor, blas_pt = py_gemm("torch", SHAPES)
    print(f"numpy loads {', '.join(blas_np) or '?'}; PyTorch loads {', '.join(blas_pt) or '?'}")
    res["blas"] = {"numpy": blas_np, "torch": blas_pt}
    print(f"{'shape':>24} {'what':<17} {'graft':>7} {'numpy':>7} {'torch':>7}"
          f" {'g/np':>6} {'g/pt':>6}  kernel")
    rows = []
    for (m, n, k, ta, tb, what), (gg, kern, tuned), gn, gt in zip(SHAPES, g, npy, tor):
        name = f"{m}x{n}x{k}{' ta' if ta else ''}{' tb' if tb else ''}"
        print(f"{name:>24} {what:<17} {gg:7.1f} {gn:7.1f} {gt:7.1f} {gg / gn:6.2f} "
              f"{gg / gt:6.2f}  {kern}{'' if tuned else ' (untuned)'}")
        rows.append({"shape": name, "what": what, "graft": gg, "numpy": gn, "torch": gt,
                     "kernel": kern, "tuned": tuned})
    res["gemm"] = rows


def pretrained(graft, tmp, steps=60):
    """A checkpoint of fmnist-cnn for the transfer workload (a short pretrain run)."""
    ckpt = os.path.join(tmp, "pre", "model.safetensors")
    if not os.path.exists(ckpt):
        graft_train(graft, PRETRAIN, os.path.join(tmp, "pre"),
                    [f"train.max_steps={steps}", "train.epochs=1"])
    return ckpt


def train_part(graft, res, tmp, steps, repeat):
    print("\n== fmnist-cnn training, batch 64, Adam (images/s) ==", flush=True)
    pts, gis = [], []
    for r in range(repeat):
        pts.append(py_part("train", steps))
        _, summ = graft_train(graft, PRETRAIN, os.path.join(tmp, "pre"),
                              [f"train.max_steps={steps}", "train.epochs=1"])
        gis.append(summ["images_per_second"])
        print(f"  round {r + 1}: PyTorch {pts[-1]:.0f}, Graft {gis[-1]:.0f}", flush=True)
    pt, gi = max(pts), max(gis)
    print(f"PyTorch {pt:.0f} img/s, Graft {gi:.0f} img/s (best of {repeat}): ratio {gi / pt:.2f}")
    res["train"] = {"torch": pt, "graft": gi, "steps": steps, "torch_all": pts, "graft_all": gis}


def transfer_part(graft, res, tmp):
    print("\n== frozen-conv transfer (fmnist-feature-extract), end to end (s) ==", flush=True)
    fe = os.path.join(ROOT, "configs", "recipes", "fmnist-feature-extract.yaml")
    ckpt = pretrained(graft, tmp)
    gw, gs = graft_train(graft, fe, os.path.join(tmp, "fe"), [f"transfer.from={ckpt}"])
    tu = py_part("transfer-loop")
    tc = py_part("transfer-cached")
    print(f"Graft {gw:.1f} s, of which training {gs.get('train_seconds', 0):.1f} s (feature cache "
          f"{'on' if gs.get('feature_cache') else 'off'}, test accuracy "
          f"{gs.get('test_accuracy', 0):.3f}); PyTorch usual loop {tu:.1f} s ({tu / gw:.1f}x "
          f"Graft's time); PyTorch with features cached by hand {tc:.1f} s ({tc / gw:.2f}x)")
    res["transfer"] = {"graft": gw, "graft_train_seconds": gs.get("train_seconds"),
                       "torch_loop": tu, "torch_cached": tc,
                       "graft_feature_cache": gs.get("feature_cache")}


def startup_part(graft, res, tmp):
    """A 1-step run with empty program caches (Graft's and PoCL's), then the same run again."""
    print("\n== start-up: a 1-step run with empty, then filled program caches (s) ==", flush=True)
    env = dict(os.environ)
    env["GRAFT_CACHE_DIR"] = os.path.join(tmp, "cache")
    env["POCL_CACHE_DIR"] = os.path.join(tmp, "pocl-cache")  # PoCL's own kernel cache too
    os.makedirs(env["POCL_CACHE_DIR"], exist_ok=True)
    one = ["train.max_steps=1", "train.epochs=1"]
    cold, _ = graft_train(graft, PRETRAIN, os.path.join(tmp, "cold"), one, env)
    warm, _ = graft_train(graft, PRETRAIN, os.path.join(tmp, "warm"), one, env)
    print(f"cold {cold:.1f} s, warm {warm:.1f} s (whole process: loading 30,000 images, one step, "
          f"the test-set evaluation and checkpoints included)")
    res["startup"] = {"cold": cold, "warm": warm}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graft", default=os.path.join(ROOT, "build", "graft"))
    ap.add_argument("--quick", action="store_true", help="20 training steps (noisier)")
    ap.add_argument("--skip-tune", action="store_true")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--blas-dir", help="a folder with the libblas.so.3 numpy and PyTorch load")
    ap.add_argument("--steps", type=int, default=60, help="training steps timed (default 60)")
    ap.add_argument("--parts", default="gemm,train,transfer,startup",
                    help="which workloads, comma-separated (default all)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="alternate PyTorch and Graft training this many times, keep each best")
    ap.add_argument("--part", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:  # a child: one PyTorch workload, its figure as JSON on the last line
        if args.part == "train":
            print(json.dumps(torch_train_ips(args.steps)))
        elif args.part == "transfer-loop":
            print(json.dumps(torch_transfer(cached=False)))
        elif args.part == "transfer-cached":
            print(json.dumps(torch_transfer(cached=True)))
        return
    global BLAS_DIR
    BLAS_DIR = os.path.abspath(args.blas_dir) if args.blas_dir else None
    graft = os.path.abspath(args.graft)
    if not os.path.exists(graft):
        sys.exit(f"no graft program at {graft} (build it, or pass --graft)")
    parts = set(args.parts.split(","))
    unknown = parts - {"gemm", "train", "transfer", "startup"}
    if unknown:
        sys.exit(f"unknown --parts {', '.join(sorted(unknown))}: expected gemm, train, transfer, "
                 "startup")
    tmp = tempfile.mkdtemp(prefix="graft-compare-")
    cpu = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t")
    res = {"machine": {"cpu": cpu, "cores": cores()}}
    try:
        dev = json.loads(sh([graft, "devices", "--json"]).stdout)
        res["machine"]["opencl"] = [f"{d['name']} ({d['platform_version']})" for d in dev]
        if not args.skip_tune:
            print("tuning the CNN's GEMMs (graft tune --missing: only shapes not tuned yet) ...",
                  flush=True)
            t0 = time.perf_counter()
            scratch = os.path.join(ROOT, "configs", "recipes", "fmnist-scratch.yaml")
            sh([graft, "tune", scratch, "--shape", "1024x1024x1024", "--missing", "--quiet"])
            res["tune_seconds"] = time.perf_counter() - t0
        if "gemm" in parts:
            gemm_part(graft, res)
        if "train" in parts:
            train_part(graft, res, tmp, 20 if args.quick else args.steps, args.repeat)
        if "transfer" in parts:
            transfer_part(graft, res, tmp)
        if "startup" in parts:
            startup_part(graft, res, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
