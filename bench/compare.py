#!/usr/bin/python3
"""compare.py — Graft against the frameworks a user would pick instead, on the same CPU, in one run.

Contenders (each one missing is skipped with the reason printed; the script installs nothing):
  --torch-python PY   a Python with PyTorch 2.x from PyPI (MKL + oneDNN), the speed peer
  --tf-python PY      a Python with tensorflow-cpu and Keras 3, run twice: TF_ENABLE_ONEDNN_OPTS=1
                      and TF_ENABLE_ONEDNN_OPTS=0 (two rows)
  --debian-python PY  Debian's python3-torch 1.13 (default /usr/bin/python3; `none` to leave it
                      out): it links the reference BLAS, so it is an oracle here, not a speed peer
  --graft BUILD/graft Graft itself, on its usual device or GRAFT_DEVICE
  --torch-device cuda PyTorch on its GPU (TF32 off, synchronised), to compare with Graft on an
                      OpenCL GPU (GRAFT_DEVICE=nvidia); tests/gpu/run.sh does
Workloads (--parts, comma-separated; default train,gemm,transfer,startup):
  train     fmnist-cnn (configs/models/fmnist-cnn.yaml), batch 64, Adam lr 1e-3, on 10,000
            Fashion-MNIST training images, --threads threads (default 2): steady-state training
            images/s after --warmup steps, rounds alternating the contenders, best of --repeat.
            Graft runs `graft train configs/recipes/fmnist-pretrain.yaml` with --set overrides
            (all ten classes, 1,000 shots each, no test split, train.max_steps); its steady figure
            comes from two runs, WARMUP and WARMUP+STEPS steps, as STEPS*64 / (the difference of
            their summary.json train_seconds), so neither start-up nor the first steps count.
            Graft's rows: its first run on an empty cache (Graft's and PoCL's: a new machine;
            whatever the trainer does on a first run, e.g. compiling and tuning, is in its time),
            one epoch of the images timed as a whole process, beside each speed peer's first run
            of the same epoch, also a whole process (interpreter, import, data, every step);
            steady state with the cache that first run left; steady state after `graft tune
            --missing` in your GRAFT_CACHE_DIR (left out by --skip-tune). Each Graft row has
            one untimed short run before round 1, so its program caches are filled, and each
            round starts one contender later than the round before.
  gemm      SGEMM GFLOP/s at 1024^3 and the CNN's GEMMs as Graft issues them (--gemm-sizes
            1024,4096: those squares instead): Graft, numpy (Debian's python, --blas-dir),
            PyTorch (--torch-python if given, else Debian's)
  transfer  fmnist-feature-extract end to end: `graft train` vs PyTorch's usual loop and vs
            PyTorch with the frozen features cached by hand, rounds alternating the three (after
            one untimed Graft transfer that fills its caches), best of --repeat each, medians,
            and the median of each round's ratios (drift cancels within a round); Graft also
            once right after its own pretraining on empty program caches (what a user's first
            transfer sees)
  startup   a 1-step `graft train` with empty, then filled program caches
  vit       the small Vision Transformer (configs/models/vit-tiny-fmnist.yaml: patches of 7, dim
            64, 4 pre-norm blocks of 4 heads, MLP 128; 139,018 parameters), batch 64, AdamW lr 1e-3
            weight decay 0.05, on Fashion-MNIST classes 0-4 like configs/recipes/vit-fmnist-
            pretrain.yaml: steady-state training images/s, Graft (its cache as it is) against
            PyTorch eager with the same network written as a PyTorch user would
            (nn.MultiheadAttention, nn.LayerNorm, nn.GELU), rounds alternating, best of --repeat
  demo      `graft demo` end to end with empty caches (not in the default set: minutes)
The machine (CPU model, ISA class, cores, load, the OpenCL devices Graft sees) is printed first
and written with every figure to --json OUT.

--isa avx2 caps every contender at AVX2 + FMA on an AVX-512 machine, to measure what a machine
without AVX-512 gives (the same core, caches and clock: an approximation of an AVX2 CPU, labelled
so in the output): PoCL compiles for haswell with its avx2 kernel library (POCL_LLVM_CPU_NAME,
POCL_KERNELLIB_NAME: Graft sees the device pthread-haswell-..., with its own tuning results;
PoCL still reports the AVX-512 host's float vector width, 16, so GRAFT_DEVICE_VECTOR_WIDTH=8 gives
Graft the 8 a real AVX2 machine reports, and the tiles that fit its 16 ymm registers), PyTorch's
ATen kernels (ATEN_CPU_CAPABILITY=avx2), oneDNN in PyTorch and TensorFlow (ONEDNN_MAX_CPU_ISA=AVX2)
and MKL (MKL_ENABLE_INSTRUCTIONS=AVX2).

Usage: bench/compare.py [--graft BUILD/graft] [--torch-python PY] [--tf-python PY] [--isa avx2]
                        [--debian-python PY|none] [--torch-device cpu|cuda] [--gemm-sizes L]
                        [--parts LIST] [--repeat N] [--steps N]
                        [--warmup N] [--threads N] [--images N] [--quick] [--skip-tune]
                        [--blas-dir DIR] [--json OUT]
--quick: 10 timed steps after 3, 2,000 images, a shortened demo: to check that the script runs,
not to measure. Never run two benchmarks at once: the contenders share the CPU.

The BLAS Debian's numpy and PyTorch load is whatever libblas.so.3 resolves to (the script prints
it): the reference BLAS unless an optimised one is installed. --blas-dir puts a folder first on
LD_LIBRARY_PATH for Debian's python only, e.g. OpenBLAS unpacked without installing it:
    apt-get download libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb ob
    bench/compare.py --blas-dir ob/usr/lib/x86_64-linux-gnu/openblas-pthread
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the Python children (they slow OpenBLAS).
"""
import argparse
import gzip
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST = "/usr/share/datasets/fashion-mnist"
PRETRAIN = os.path.join(ROOT, "configs", "recipes", "fmnist-pretrain.yaml")
BATCH = 64
THREADS = 2  # the children's thread count (--threads); set in main() and in a child's args
TORCH_DEVICE = "cpu"  # where the PyTorch contenders compute (--torch-device)

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
cuda = len(sys.argv) > 4 and sys.argv[4] == "cuda"
sync = lambda: None
if lib == "torch":
    import torch
    torch.set_num_threads(int(sys.argv[3]))
    if cuda:  # cuBLAS in FP32, as Graft computes: no TF32
        torch.backends.cuda.matmul.allow_tf32 = False
        sync = torch.cuda.synchronize
out = []
for m, n, k, ta, tb in shapes:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    if lib == "torch":
        a, b = torch.from_numpy(a), torch.from_numpy(b)
        if cuda:
            a, b = a.cuda(), b.cuda()
        f = lambda: torch.matmul(a.t() if ta else a, b.t() if tb else b)
    else:
        f = lambda: (a.T if ta else a) @ (b.T if tb else b)
    f(); sync()
    t0 = time.perf_counter(); f(); sync(); one = time.perf_counter() - t0
    per = max(1, min(200, int(0.05 / max(one, 1e-6))))
    best = one
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(per): f()
        sync()
        best = min(best, (time.perf_counter() - t0) / per)
    out.append(2.0 * m * n * k / best / 1e9)
# the CPU BLAS loaded (PyPI's PyTorch maps cuBLAS too, unused on the CPU)
blas = sorted({l.split()[-1] for l in open("/proc/self/maps")
               if ("blas" in l.lower() or "mkl" in l.lower()) and "cublas" not in l.lower()})
if cuda:
    blas = ["cuBLAS (CUDA " + str(torch.version.cuda) + ", " + torch.cuda.get_device_name() + ")"]
print(json.dumps({"gflops": out, "blas": blas}))
"""


def sh(cmd, env=None, check=True, timeout=3600):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        if check:
            sys.exit(f"command timed out after {timeout} s: {' '.join(cmd)}")
        return subprocess.CompletedProcess(cmd, 124, "", f"timed out after {timeout} s")
    if check and r.returncode != 0:
        sys.stderr.write(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}\n")
        raise SystemExit(1)
    return r


def last_json(r):
    """The JSON figure a child prints on its last line of stdout."""
    return json.loads(r.stdout.strip().splitlines()[-1])


def why_failed(r):
    tail = (r.stderr or r.stdout or "").strip().splitlines()
    return f"exit {r.returncode}: {tail[-1] if tail else 'no output'}"


# ---- the machine ----

def machine_info(graft):
    info = {"cpu": "?", "isa": "?", "cores": os.cpu_count() or 1}
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip()
        if key == "model name" and info["cpu"] == "?":
            info["cpu"] = val.strip()
        elif key == "flags" and info["isa"] == "?":
            flags = set(val.split())
            info["isa"] = ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags
                           else "SSE")
            info["fma"] = "fma" in flags
    info["load_average"] = list(os.getloadavg())
    r = sh([graft, "devices", "--json"], check=False)
    if r.returncode == 0:
        info["opencl"] = [{"name": d["name"], "platform_version": d.get("platform_version", ""),
                           "compute_units": d.get("compute_units")} for d in json.loads(r.stdout)]
    else:
        info["opencl"] = []
        info["opencl_error"] = why_failed(r)
    return info


ISA_CAPS = {"avx2": {"POCL_LLVM_CPU_NAME": "haswell", "POCL_KERNELLIB_NAME": "avx2",
                     "GRAFT_DEVICE_VECTOR_WIDTH": "8",
                     "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                     "DNNL_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}


def print_machine(m):
    print(f"machine: {m['cpu']}, {m['isa']}{' + FMA' if m.get('fma') else ''}, {m['cores']} "
          f"logical cores, load average {m['load_average'][0]:.2f}")
    if m.get("isa_cap"):
        print(f"  ISA capped at {m['isa_cap']} for every contender (an approximation of an "
              f"{m['isa_cap']} machine: same core, caches and clock): "
              + " ".join(f"{k}={v}" for k, v in ISA_CAPS[m['isa_cap'].lower()].items()))
    for d in m["opencl"]:
        # PoCL's CPU device names the LLVM target it compiles for: skylake-avx512, znver3, ...
        print(f"  OpenCL device: {d['name']} ({d['compute_units']} compute units; "
              f"{d['platform_version']})")
    if m["load_average"][0] > 0.5 * m["cores"]:
        print(f"  warning: the machine is busy (load {m['load_average'][0]:.1f} on {m['cores']} "
              "cores): the figures will move with it; measure on a quiet machine")
    if m.get("opencl_error"):
        print(f"  graft devices failed: {m['opencl_error']}")


# ---- the contenders ----

PROBE = r"""
import json, os, sys
kind = sys.argv[1]
out = {"python": sys.version.split()[0], "executable": sys.executable}
import numpy
out["numpy"] = numpy.__version__
if kind == "torch":
    import torch
    out["version"] = torch.__version__
    out["mkl"] = torch.backends.mkl.is_available()
    out["onednn"] = torch.backends.mkldnn.is_available()
    out["cuda"] = torch.cuda.is_available()
    if out["cuda"]:
        out["cuda_device"] = torch.cuda.get_device_name()
else:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import keras
    out["version"] = tf.__version__
    out["keras"] = keras.__version__
print(json.dumps(out))
"""


def py_env(python, extra=None, blas_dir=None):
    env = dict(os.environ)
    # a forced core type makes a current OpenBLAS pick a slower kernel than the CPU allows
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OMP_NUM_THREADS"] = str(THREADS)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if blas_dir:
        env["LD_LIBRARY_PATH"] = blas_dir + (":" + env["LD_LIBRARY_PATH"]
                                             if env.get("LD_LIBRARY_PATH") else "")
    env.update(extra or {})
    return env


def probe(python, kind, blas_dir=None):
    """(facts, None) when `python` imports numpy and the framework, else (None, reason)."""
    if not python:
        return None, "not given"
    if python == "none":
        return None, "left out (none)"
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return None, f"{python}: no such executable"
    r = sh([python, "-c", PROBE, kind], env=py_env(python, blas_dir=blas_dir), check=False,
           timeout=300)
    if r.returncode != 0:
        what = "torch" if kind == "torch" else "tensorflow + keras"
        return None, f"{python} cannot import numpy and {what}: {why_failed(r)}"
    return last_json(r), None


def find_peers(args):
    """The training contenders other than Graft: [{key, label, python, kind, env, speed_peer}],
    and the reasons for those left out."""
    peers, skipped, facts = [], {}, {}
    t, why = probe(args.torch_python, "torch")
    major = t["version"].split(".")[0] if t else ""
    if t and not (major.isdigit() and int(major) >= 2):
        t, why = None, f"{args.torch_python} has PyTorch {t['version']}, not 2.x"
    if t and TORCH_DEVICE == "cuda" and not t["cuda"]:
        t, why = None, f"{args.torch_python}: PyTorch {t['version']} sees no CUDA device"
    if t:
        facts["torch"] = t
        where = (f"on {t['cuda_device']}, TF32 off" if TORCH_DEVICE == "cuda" else
                 f"MKL {'on' if t['mkl'] else 'off'}, oneDNN {'on' if t['onednn'] else 'off'}")
        peers.append({"key": "torch", "python": args.torch_python, "kind": "torch", "env": {},
                      "speed_peer": True,
                      "label": f"PyTorch {t['version']} eager ({where})"})
    else:
        skipped["torch"] = f"PyTorch 2.x: {why}"
    t, why = probe(args.tf_python, "tf")
    if t:
        facts["tf"] = t
        for onednn in ("1", "0"):
            peers.append({"key": f"tf-onednn{onednn}", "python": args.tf_python, "kind": "tf",
                          "env": {"TF_ENABLE_ONEDNN_OPTS": onednn}, "speed_peer": True,
                          "label": f"TensorFlow {t['version']} / Keras {t['keras']} model.fit, "
                                   f"TF_ENABLE_ONEDNN_OPTS={onednn}"})
    else:
        skipped["tf"] = f"TensorFlow/Keras: {why}"
    t, why = probe(args.debian_python, "torch", args.blas_dir)
    if t:
        facts["debian_torch"] = t
        peers.append({"key": "debian-torch", "python": args.debian_python, "kind": "torch",
                      "env": {}, "speed_peer": False, "blas_dir": args.blas_dir,
                      "label": f"Debian PyTorch {t['version']} eager ({args.debian_python})"})
    else:
        skipped["debian-torch"] = f"Debian's PyTorch: {why}"
    return peers, skipped, facts


def run_child(python, part, env, args, extra=(), steps=None, warmup=None):
    """One workload of this script in a child under `python`; its figure is the last JSON line.
    steps, warmup: instead of --steps and --warmup."""
    steps = args.steps if steps is None else steps
    warmup = args.warmup if warmup is None else warmup
    cmd = [python, os.path.abspath(__file__), "--part", part, "--steps", str(steps),
           "--warmup", str(warmup), "--threads", str(THREADS), "--images", str(args.images),
           "--torch-device", TORCH_DEVICE]
    return sh(cmd + list(extra), env=env, check=False)


# ---- the children: each runs under a contender's Python and prints one JSON line ----

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


def torch_train(steps, warmup, images):
    """PyTorch eager training, batch 64, Adam: images/s over `steps` steps after `warmup`,
    cycling over the first `images` training images."""
    import torch
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    dev = torch.device(TORCH_DEVICE)
    sync = lambda: None  # noqa: E731
    if dev.type == "cuda":  # FP32 as Graft computes, and every timed step finished
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        sync = torch.cuda.synchronize
    x, y = load_fmnist(images)
    x, y = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    nb = len(x) // BATCH
    model = torch_model().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step(i):
        j = i % nb
        xb, yb = x[j * BATCH:(j + 1) * BATCH], y[j * BATCH:(j + 1) * BATCH]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
    sync()
    t1 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    sync()
    t2 = time.perf_counter()
    return {"ips": BATCH * steps / (t2 - t1), "warmup_seconds": t1 - t0,
            "threads": torch.get_num_threads(), "device": str(dev)}


def torch_vit(classes=5):
    """vit-tiny-fmnist as a PyTorch user writes it (torchvision's ViT blocks: pre-norm, eps 1e-6,
    nn.MultiheadAttention, exact GELU)."""
    import torch
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, d, heads, mlp):
            super().__init__()
            self.ln_1 = nn.LayerNorm(d, eps=1e-6)
            self.self_attention = nn.MultiheadAttention(d, heads, batch_first=True)
            self.ln_2 = nn.LayerNorm(d, eps=1e-6)
            self.mlp = nn.Sequential(nn.Linear(d, mlp), nn.GELU(), nn.Dropout(0.0),
                                     nn.Linear(mlp, d), nn.Dropout(0.0))

        def forward(self, x):
            h = self.ln_1(x)
            x = x + self.self_attention(h, h, h, need_weights=False)[0]
            return x + self.mlp(self.ln_2(x))

    class ViT(nn.Module):
        def __init__(self, d=64, patch=7, depth=4, heads=4, mlp=128):
            super().__init__()
            self.conv_proj = nn.Conv2d(1, d, patch, stride=patch)
            self.class_token = nn.Parameter(torch.zeros(1, 1, d))
            self.pos_embedding = nn.Parameter(torch.empty(1, (28 // patch) ** 2 + 1, d)
                                              .normal_(std=0.02))
            self.layers = nn.Sequential(*[Block(d, heads, mlp) for _ in range(depth)])
            self.ln = nn.LayerNorm(d, eps=1e-6)
            self.head = nn.Linear(d, classes)

        def forward(self, x):
            x = self.conv_proj(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], 1)
            x = self.ln(self.layers(x + self.pos_embedding))
            return self.head(x[:, 0])
    return ViT()


def torch_vit_train(steps, warmup, images):
    """PyTorch eager training of torch_vit, batch 64, AdamW: images/s over `steps` steps after
    `warmup`, cycling over the first `images` images of classes 0-4."""
    import torch
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    x, y = load_fmnist(images, classes=range(5), shots=6000)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    nb = len(x) // BATCH
    model = torch_vit()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step(i):
        j = i % nb
        opt.zero_grad()
        loss_fn(model(x[j * BATCH:(j + 1) * BATCH]), y[j * BATCH:(j + 1) * BATCH]).backward()
        opt.step()
    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
    t1 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    t2 = time.perf_counter()
    return {"ips": BATCH * steps / (t2 - t1), "warmup_seconds": t1 - t0,
            "threads": torch.get_num_threads(),
            "parameters": sum(p.numel() for p in model.parameters())}


def keras_train(steps, warmup, images):
    """The same CNN in Keras 3 on TensorFlow, trained the way a Keras user does: model.fit on a
    repeated tf.data pipeline of the same images, batch 64, Adam lr 1e-3. Channels-last
    (28, 28, 1): Keras's default, and the layout TensorFlow's CPU convolutions implement (its
    NCHW Conv2D is GPU-only without oneDNN). model.fit runs a tf.function train step; Keras
    leaves XLA off on a machine without accelerators (jit_compile "auto"; reported). A callback
    stamps the end of every batch (after reading its loss, as a progress bar does):
    images/s over `steps` batches after `warmup`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import keras
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    keras.utils.set_random_seed(0)
    x, y = load_fmnist(images)
    x = x.transpose(0, 2, 3, 1).copy()  # NHWC
    L = keras.layers
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(32, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
        L.Conv2D(32, 3, padding="same"), L.ReLU(), L.MaxPooling2D(2),
        L.Conv2D(64, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
        L.Conv2D(64, 3, padding="same"), L.ReLU(), L.MaxPooling2D(2),
        L.Flatten(), L.Dense(128), L.ReLU(), L.Dropout(0.5), L.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH, drop_remainder=True).repeat()
    stamps = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            float((logs or {}).get("loss", 0.0))  # the step's result is there: it has finished
            stamps.append(time.perf_counter())
    t0 = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[Clock()])
    t2 = time.perf_counter()
    t1 = stamps[warmup - 1] if warmup else t0
    return {"ips": BATCH * steps / (stamps[-1] - t1), "warmup_seconds": t1 - t0,
            "fit_seconds": t2 - t0,
            "jit_compile": bool(getattr(model, "jit_compile", False)),
            "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(unset)")}


def torch_transfer(cached):
    """fmnist-feature-extract in PyTorch: convs frozen (eval mode, no grad), a new 3136-128-5 head,
    30 epochs of 500 images (100 per class 5-9), batch 64, Adam, then the test split of classes 5-9
    (5000 images) evaluated once, as `graft train` does. cached: the frozen features computed
    once by hand, then only the head trains. Returns wall seconds end to end."""
    import torch
    t0 = time.perf_counter()
    torch.set_num_threads(THREADS)
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


# ---- Graft ----

def graft_train(graft, recipe, out, sets, env=None):
    cmd = [graft, "train", recipe, "--out", out, "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    sh(cmd, env=env)
    wall = time.perf_counter() - t0
    with open(os.path.join(out, "summary.json")) as f:
        return wall, json.load(f)


def train_sets(images, steps):
    """fmnist-pretrain turned into the train workload: ten classes, images/10 shots each (so
    `images` images), no test split, stopped after `steps` steps."""
    per_epoch = math.ceil(images / BATCH)
    return ["data.classes=[0,1,2,3,4,5,6,7,8,9]", f"data.shots={images // 10}",
            "data.test=null", "data.val_split=0", f"train.max_steps={steps}",
            f"train.epochs={steps // per_epoch + 1}"]


def graft_env(cache=None, pocl_cache=None):
    env = dict(os.environ)
    env["POCL_MAX_PTHREAD_COUNT"] = str(THREADS)  # PoCL's CPU device: one thread per core
    if cache:
        env["GRAFT_CACHE_DIR"] = cache
    if pocl_cache:
        os.makedirs(pocl_cache, exist_ok=True)
        env["POCL_CACHE_DIR"] = pocl_cache
    return env


def vit_sets(steps):
    """vit-fmnist-pretrain turned into the vit workload: no test split, `steps` steps."""
    return ["data.test=null", f"train.max_steps={steps}", "train.epochs=1"]


def graft_steady(graft, tmp, args, env, recipe=PRETRAIN, sets=None):
    """Steady-state images/s: two runs of WARMUP and WARMUP+STEPS steps; the difference of their
    training seconds is the time of the STEPS steps after the warm-up (summary.json's own
    images_per_second counts from the first step, so it includes the first launches).
    sets(steps): the --set list (default train_sets for the CNN workload)."""
    sets = sets or (lambda steps: train_sets(args.images, steps))
    _, short = graft_train(graft, recipe, os.path.join(tmp, "short"), sets(args.warmup), env)
    _, long = graft_train(graft, recipe, os.path.join(tmp, "long"),
                          sets(args.warmup + args.steps), env)
    dt = long["train_seconds"] - short["train_seconds"]
    return {"ips": BATCH * args.steps / dt if dt > 0 else None,
            "summary_ips": long["images_per_second"], "warmup_seconds": short["train_seconds"]}


def epoch_steps(args):
    """Steps in one epoch of the --images images (the last, partial batch included)."""
    return math.ceil(args.images / BATCH)


def graft_first_run(graft, tmp, args):
    """The first run on a new machine: Graft's and PoCL's caches empty, one epoch of the --images
    images (the issue's workload: 10,000 images, 157 steps), timed as a whole process (loading
    the images, compiling, anything the trainer tunes, training, writing the checkpoint). Leaves
    its cache for the "fresh cache" steady rows."""
    env = graft_env(os.path.join(tmp, "fresh-cache"), os.path.join(tmp, "fresh-pocl"))
    steps = epoch_steps(args)
    wall, summ = graft_train(graft, PRETRAIN, os.path.join(tmp, "first"),
                             train_sets(args.images, steps), env)
    return {"wall_seconds": wall, "steps": steps, "ips_all_included": BATCH * steps / wall,
            "summary_ips": summ["images_per_second"], "train_seconds": summ["train_seconds"]}


def peer_first_run(row, args):
    """A peer's first run, the same epoch as graft_first_run: its whole process (the interpreter
    starting, the framework's import, loading the images, every step), timed from outside."""
    part = "train-torch" if row["kind"] == "torch" else "train-keras"
    steps = epoch_steps(args)
    t0 = time.perf_counter()
    r = run_child(row["python"], part, py_env(row["python"], row["env"], row.get("blas_dir")),
                  args, steps=steps, warmup=0)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        return {"failed": why_failed(r)}
    return {"wall_seconds": wall, "steps": steps, "ips_all_included": BATCH * steps / wall}


def graft_gemm(graft, shapes):
    out = []
    for m, n, k, ta, tb, _ in shapes:
        cmd = [graft, "bench", "gemm", "--m", str(m), "--n", str(n), "--k", str(k), "--json"]
        if ta:
            cmd.append("--ta")
        if tb:
            cmd.append("--tb")
        j = json.loads(sh(cmd, env=graft_env()).stdout)
        out.append((j["gflops"], j["kernel"].split(" ")[0], j["tuned"]))
    return out


# ---- the workloads ----

def train_part(graft, res, tmp, args, peers):
    print(f"\n== fmnist-cnn training, batch {BATCH}, Adam, {args.images} images, {THREADS} threads:"
          f" steady-state images/s ({args.steps} steps after {args.warmup}) ==", flush=True)
    print(f"  first runs: one epoch of the {args.images} images ({epoch_steps(args)} steps), "
          "each a whole process; Graft's with its and PoCL's caches empty ...", flush=True)
    first = graft_first_run(graft, tmp, args)
    print(f"  Graft first run: {first['wall_seconds']:.1f} s for {first['steps']} steps = "
          f"{first['ips_all_included']:.0f} img/s with everything included (training loop alone "
          f"{first['summary_ips']:.0f} img/s)", flush=True)
    peer_first = {}
    for p in peers:
        if p["speed_peer"]:
            peer_first[p["key"]] = f = peer_first_run(p, args)
            print(f"  {p['key']} first run: " + (f"FAILED ({f['failed']})" if "failed" in f else
                  f"{f['wall_seconds']:.1f} s = {f['ips_all_included']:.0f} img/s with "
                  "everything included"), flush=True)
    rows = [dict(p) for p in peers]
    rows.append({"key": "graft-fresh", "graft": True, "speed_peer": False,
                 "label": "Graft, the cache its first run left (no `graft tune`)",
                 "env": graft_env(os.path.join(tmp, "fresh-cache"),
                                  os.path.join(tmp, "fresh-pocl"))})
    if not args.skip_tune:
        rows.append({"key": "graft-tuned", "graft": True, "speed_peer": False,
                     "label": "Graft after `graft tune --missing` (your GRAFT_CACHE_DIR)",
                     "env": graft_env()})
    for row in rows:
        row["all"], row["failed"] = [], None
        # one short run first, untimed: the rounds measure filled program caches. Without it a
        # cache that `graft tune` filled with GEMMs alone, or one of another ISA, compiles in
        # round 1's shorter run and the difference of the two runs means nothing (a round-1
        # figure of 22,345 img/s, capped at AVX2 on a fresh machine).
        if row.get("graft"):
            graft_train(graft, PRETRAIN, os.path.join(tmp, "prime"),
                        train_sets(args.images, args.warmup), row["env"])
    for rnd in range(args.repeat):
        line = []
        # each round starts one contender later: none always runs right after the same other
        # (graft-tuned after graft-fresh read 1-4 % below it in every round, 2026-12-06)
        k = rnd % len(rows)
        for row in rows[k:] + rows[:k]:
            if row["failed"]:
                continue
            if row.get("graft"):
                fig = graft_steady(graft, tmp, args, row["env"])
                if fig["ips"] is None:
                    line.append(f"{row['key']} (no steady figure: the longer run was not slower)")
                    continue
            else:
                part = "train-torch" if row["kind"] == "torch" else "train-keras"
                r = run_child(row["python"], part,
                              py_env(row["python"], row["env"], row.get("blas_dir")), args)
                if r.returncode != 0:
                    row["failed"] = why_failed(r)
                    line.append(f"{row['key']} FAILED ({row['failed']})")
                    continue
                fig = last_json(r)
            row["all"].append(fig)
            line.append(f"{row['key']} {fig['ips']:.0f}")
        print(f"  round {rnd + 1}: " + ", ".join(line), flush=True)
    table = []
    for row in rows:
        ips = [f["ips"] for f in row["all"]]
        table.append({"key": row["key"], "label": row["label"], "speed_peer": row["speed_peer"],
                      "best": max(ips) if ips else None, "all": ips, "failed": row["failed"],
                      "details": row["all"]})
    best_peer = max((t for t in table if t["speed_peer"] and t["best"]),
                    key=lambda t: t["best"], default=None)
    print(f"\n  {'contender':<78} {'best img/s':>10}  all rounds")
    for t in sorted(table, key=lambda t: -(t["best"] or 0)):
        figs = " / ".join(f"{v:.0f}" for v in t["all"])
        print(f"  {t['label']:<78} {(t['best'] or 0):10.0f}  {figs or t['failed'] or '-'}")
    print(f"\n  first run, one epoch ({first['steps']} steps), whole process, img/s (s):")
    print(f"  {'Graft, empty caches':<78} {first['ips_all_included']:10.0f}  "
          f"({first['wall_seconds']:.1f} s)")
    for key, f in peer_first.items():
        label = next(p["label"] for p in peers if p["key"] == key)
        print(f"  {label:<78} " + (f"{'-':>10}  {f['failed']}" if "failed" in f else
                                   f"{f['ips_all_included']:10.0f}  ({f['wall_seconds']:.1f} s)"))
    ratios = {}
    if best_peer:
        print(f"\n  best peer: {best_peer['label']} ({best_peer['best']:.0f} img/s)")
        for t in table:
            if t["key"].startswith("graft") and t["best"]:
                ratios[t["key"]] = t["best"] / best_peer["best"]
                print(f"  ratio {t['label']} / best peer: {ratios[t['key']]:.2f}")
        ratios["graft-first-run"] = first["ips_all_included"] / best_peer["best"]
        print(f"  ratio Graft first run (everything included) / best peer's steady state: "
              f"{ratios['graft-first-run']:.2f}")
        done = [(k, f) for k, f in peer_first.items() if "failed" not in f]
        for key, f in done:
            ratios[f"graft-first-run/{key}-first-run"] = r = (first["ips_all_included"] /
                                                              f["ips_all_included"])
            print(f"  ratio Graft first run / {key} first run (both everything included): "
                  f"{r:.2f}")
    else:
        print("\n  no speed peer ran (give --torch-python and/or --tf-python): no ratios")
    res["train"] = {"images": args.images, "batch": BATCH, "threads": THREADS,
                    "steps": args.steps, "warmup": args.warmup, "repeat": args.repeat,
                    "contenders": table, "graft_first_run": first,
                    "peer_first_runs": peer_first,
                    "best_peer": best_peer["key"] if best_peer else None, "ratios": ratios}


def vit_part(graft, res, tmp, args, torch_python):
    recipe = os.path.join(ROOT, "configs", "recipes", "vit-fmnist-pretrain.yaml")
    print(f"\n== vit-tiny-fmnist training, batch {BATCH}, AdamW, classes 0-4, {THREADS} threads: "
          f"steady-state images/s ({args.steps} steps after {args.warmup}) ==", flush=True)
    rows = {"graft": [], "torch": []}
    failed = None
    for rnd in range(args.repeat):
        g = graft_steady(graft, tmp, args, graft_env(), recipe, vit_sets)
        if g["ips"]:
            rows["graft"].append(g["ips"])
        line = f"  round {rnd + 1}: graft {g['ips'] or 0:.0f}"
        if torch_python and not failed:
            r = run_child(torch_python, "vit-torch", py_env(torch_python), args)
            if r.returncode != 0:
                failed = why_failed(r)
            else:
                t = last_json(r)
                rows["torch"].append(t["ips"])
                line += f", pytorch {t['ips']:.0f} ({t['parameters']} parameters)"
        print(line + (f", pytorch FAILED ({failed})" if failed else ""), flush=True)
    best = {k: max(v) if v else None for k, v in rows.items()}
    ratio = best["graft"] / best["torch"] if best["graft"] and best["torch"] else None
    print(f"  best: Graft {best['graft'] or 0:.0f} img/s, PyTorch "
          f"{best['torch'] or 0:.0f} img/s" + (f": ratio {ratio:.2f}" if ratio else ""))
    res["vit"] = {"batch": BATCH, "threads": THREADS, "steps": args.steps,
                  "warmup": args.warmup, "repeat": args.repeat, "graft": rows["graft"],
                  "torch": rows["torch"], "torch_python": torch_python, "torch_failed": failed,
                  "ratio": ratio}


def gemm_part(graft, res, args, torch_python):
    print("\n== SGEMM GFLOP/s (FP32) ==", flush=True)
    shapes = ([(n, n, n, False, False, "square") for n in args.gemm_sizes] if args.gemm_sizes
              else SHAPES)
    g = graft_gemm(graft, shapes)
    arg = json.dumps([[m, n, k, ta, tb] for m, n, k, ta, tb, _ in shapes])
    cols = [("numpy", args.debian_python, "numpy", args.blas_dir),
            ("torch", torch_python, "torch", args.blas_dir if torch_python == args.debian_python
             else None)]
    figs, blas = {}, {}
    for name, python, lib, blas_dir in cols:
        if not python or python == "none":
            continue
        r = sh([python, "-c", GEMM_CHILD, lib, arg, str(THREADS),
                TORCH_DEVICE if lib == "torch" else "cpu"],
               env=py_env(python, blas_dir=blas_dir), check=False)
        if r.returncode != 0:
            print(f"  {name} ({python}) skipped: {why_failed(r)}")
            continue
        j = last_json(r)
        figs[name], blas[name] = j["gflops"], j["blas"]
        print(f"  {name}: {python}, loads {', '.join(j['blas']) or 'its own BLAS (none named blas)'}")
    res["blas"] = blas
    names = list(figs)
    print(f"{'shape':>24} {'what':<17} {'graft':>7} " + " ".join(f"{n:>7}" for n in names)
          + " " + " ".join(f"{'g/' + n[:2]:>6}" for n in names) + "  kernel")
    rows = []
    for i, ((m, n, k, ta, tb, what), (gg, kern, tuned)) in enumerate(zip(shapes, g)):
        name = f"{m}x{n}x{k}{' ta' if ta else ''}{' tb' if tb else ''}"
        other = [figs[c][i] for c in names]
        print(f"{name:>24} {what:<17} {gg:7.1f} " + " ".join(f"{v:7.1f}" for v in other) + " "
              + " ".join(f"{gg / v:6.2f}" for v in other)
              + f"  {kern}{'' if tuned else ' (untuned)'}")
        row = {"shape": name, "what": what, "graft": gg, "kernel": kern, "tuned": tuned}
        row.update({c: figs[c][i] for c in names})
        rows.append(row)
    res["gemm"] = {"threads": THREADS, "torch_python": torch_python, "torch_device": TORCH_DEVICE,
                   "rows": rows}


def pretrained(graft, tmp, steps=60, name="pre", env=None):
    """A checkpoint of fmnist-cnn for the transfer workload (a short pretrain run into tmp/name,
    under env: graft_env() by default)."""
    ckpt = os.path.join(tmp, name, "model.safetensors")
    if not os.path.exists(ckpt):
        graft_train(graft, PRETRAIN, os.path.join(tmp, name),
                    [f"train.max_steps={steps}", "train.epochs=1"], env or graft_env())
    return ckpt


def transfer_part(graft, res, tmp, args, torch_python):
    print("\n== frozen-conv transfer (fmnist-feature-extract), end to end (s) ==", flush=True)
    fe = os.path.join(ROOT, "configs", "recipes", "fmnist-feature-extract.yaml")
    # first: a pretraining on empty program caches, then the transfer from it, timed (the
    # programs it needs beyond the pretraining's are compiled in that time)
    cold_env = graft_env(os.path.join(tmp, "fe-cache"), os.path.join(tmp, "fe-pocl-cache"))
    cold_ckpt = pretrained(graft, tmp, name="pre-cold", env=cold_env)
    gcold, _ = graft_train(graft, fe, os.path.join(tmp, "fe-cold"), [f"transfer.from={cold_ckpt}"],
                           cold_env)
    ckpt = pretrained(graft, tmp)
    env = py_env(torch_python, blas_dir=args.blas_dir if torch_python == args.debian_python
                 else None)
    # rounds alternating the three, best of --repeat each: a single PyTorch loop moved by 40 %
    # between runs on the shared VM (8.0 to 13.5 s in one hour)
    gws, tus, tcs, gs = [], [], [], {}
    # one untimed transfer first: the rounds are warm transfers, and on a fresh machine (or
    # under --isa) the programs the transfer needs beyond the pretraining's are built once here
    graft_train(graft, fe, os.path.join(tmp, "fe"), [f"transfer.from={ckpt}"], graft_env())
    for _ in range(max(1, args.repeat)):
        gw, gsum = graft_train(graft, fe, os.path.join(tmp, "fe"), [f"transfer.from={ckpt}"],
                               graft_env())
        if not gws or gw < min(gws):
            gs = gsum
        gws.append(gw)
        tus.append(last_json(sh([torch_python, os.path.abspath(__file__), "--part",
                                 "transfer-loop", "--threads", str(THREADS)], env=env)))
        tcs.append(last_json(sh([torch_python, os.path.abspath(__file__), "--part",
                                 "transfer-cached", "--threads", str(THREADS)], env=env)))
    gw, tu, tc = min(gws), min(tus), min(tcs)
    runs = lambda v: " / ".join(f"{x:.1f}" for x in v)
    print(f"rounds (s): Graft {runs(gws)}; PyTorch usual loop {runs(tus)}; hand-cached "
          f"{runs(tcs)}")
    print(f"Graft {gw:.1f} s, of which training {gs.get('train_seconds', 0):.1f} s (feature cache "
          f"{'on' if gs.get('feature_cache') else 'off'}, test accuracy "
          f"{gs.get('test_accuracy', 0):.3f}); PyTorch ({torch_python}) usual loop {tu:.1f} s "
          f"({tu / gw:.1f}x Graft's time); PyTorch with features cached by hand {tc:.1f} s "
          f"({tc / gw:.2f}x) (best of {len(gws)} each)")
    # the medians too: a best of N of a loop that moves by 40 % swings the ratio of bests
    mg, mu, mc = statistics.median(gws), statistics.median(tus), statistics.median(tcs)
    print(f"medians: Graft {mg:.2f} s, PyTorch usual loop {mu:.1f} s ({mu / mg:.1f}x), "
          f"hand-cached {mc:.1f} s ({mc / mg:.2f}x)")
    # and round by round: a round's contenders ran within seconds of each other, so the ratio of
    # each round cancels the VM's slower drift (minutes) that bests and medians each take whole
    pu = [u / g for g, u in zip(gws, tus)]
    pc = [c / g for g, c in zip(gws, tcs)]
    print(f"per round, the usual loop over Graft: {' / '.join(f'{x:.1f}' for x in pu)} (median "
          f"{statistics.median(pu):.1f}x); hand-cached over Graft: median "
          f"{statistics.median(pc):.2f}x")
    print(f"Graft right after its own pretraining, program caches empty before that: {gcold:.1f} s "
          f"({tu / gcold:.1f}x the usual loop, {tc / gcold:.2f}x the hand-cached)")
    res["transfer"] = {"graft": gw, "graft_after_cold_pretrain": gcold,
                       "medians": {"graft": mg, "torch_loop": mu, "torch_cached": mc},
                       "round_ratio_medians": {"torch_loop": statistics.median(pu),
                                               "torch_cached": statistics.median(pc)},
                       "rounds": {
                           "graft": gws, "torch_loop": tus, "torch_cached": tcs},
                       "graft_train_seconds": gs.get("train_seconds"),
                       "torch_python": torch_python, "torch_loop": tu, "torch_cached": tc,
                       "graft_feature_cache": gs.get("feature_cache")}


def startup_part(graft, res, tmp):
    """A 1-step run with empty program caches (Graft's and PoCL's), then the same run again."""
    print("\n== start-up: a 1-step run with empty, then filled program caches (s) ==", flush=True)
    env = graft_env(os.path.join(tmp, "cache"), os.path.join(tmp, "pocl-cache"))
    one = ["train.max_steps=1", "train.epochs=1"]
    cold, _ = graft_train(graft, PRETRAIN, os.path.join(tmp, "cold"), one, env)
    warm, _ = graft_train(graft, PRETRAIN, os.path.join(tmp, "warm"), one, env)
    print(f"cold {cold:.1f} s, warm {warm:.1f} s (whole process: loading 30,000 images, one step, "
          f"the test-set evaluation and checkpoints included)")
    res["startup"] = {"cold": cold, "warm": warm}


def demo_part(graft, res, tmp, quick):
    """`graft demo` end to end as on a new machine: Graft's and PoCL's caches empty. --quick
    shortens it (pretrain stopped after 20 steps, 1 transfer epoch) to check the part runs."""
    print("\n== graft demo end to end, empty caches (s) ==", flush=True)
    env = graft_env(os.path.join(tmp, "demo-cache"), os.path.join(tmp, "demo-pocl"))
    cmd = [graft, "demo", "--out", os.path.join(tmp, "demo"), "--quiet"]
    if quick:
        configs = os.path.join(tmp, "configs")
        shutil.copytree(os.path.join(ROOT, "configs"), configs)
        pre = os.path.join(configs, "recipes", "fmnist-pretrain.yaml")
        text = open(pre).read()
        if "\n  epochs: 2\n" not in text:
            sys.exit(f"--quick demo: {pre} no longer has '  epochs: 2' to shorten")
        open(pre, "w").write(text.replace("\n  epochs: 2\n", "\n  epochs: 2\n  max_steps: 20\n"))
        cmd += ["--configs", configs, "--epochs", "1"]
    t0 = time.perf_counter()
    r = sh(cmd, env=env)
    wall = time.perf_counter() - t0
    print(r.stdout.rstrip())
    print(f"graft demo: {wall:.1f} s end to end ({int(wall // 60)} min {wall % 60:.0f} s)"
          f"{' (shortened by --quick: not a measurement)' if quick else ''}")
    res["demo"] = {"wall_seconds": wall, "quick": quick, "table": r.stdout}


PARTS = ["train", "gemm", "transfer", "startup", "vit", "demo"]


def main():
    global THREADS, TORCH_DEVICE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graft", default=os.path.join(ROOT, "build", "graft"))
    ap.add_argument("--torch-python", help="a Python with PyTorch 2.x (e.g. a venv's bin/python)")
    ap.add_argument("--tf-python", help="a Python with tensorflow-cpu and Keras 3")
    ap.add_argument("--torch-device", choices=["cpu", "cuda"], default="cpu",
                    help="where PyTorch computes (cuda: its GPU beside Graft's GRAFT_DEVICE)")
    ap.add_argument("--gemm-sizes", type=lambda v: [int(x) for x in v.split(",")],
                    help="the gemm part times these squares (e.g. 1024,4096), not the CNN's GEMMs")
    ap.add_argument("--debian-python", default="/usr/bin/python3",
                    help="Debian's Python with python3-torch (default /usr/bin/python3; none)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny settings to check the script runs (figures are not measurements)")
    ap.add_argument("--skip-tune", action="store_true",
                    help="no `graft tune --missing` first, and no tuned Graft row")
    ap.add_argument("--json", help="write the machine and every figure here")
    ap.add_argument("--isa", choices=sorted(ISA_CAPS), help="cap every contender at this ISA")
    ap.add_argument("--blas-dir", help="a folder with the libblas.so.3 Debian's python loads")
    ap.add_argument("--steps", type=int, default=60, help="training steps timed (default 60)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    ap.add_argument("--images", type=int, default=10000,
                    help="training images, a multiple of 10 (default 10000)")
    ap.add_argument("--threads", type=int, default=2, help="threads per contender (default 2)")
    ap.add_argument("--parts", default="train,gemm,transfer,startup",
                    help=f"comma-separated, of {','.join(PARTS)} (default all but demo)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="training rounds, contenders alternating; best of them (default 3)")
    ap.add_argument("--part", help=argparse.SUPPRESS)
    args = ap.parse_args()
    THREADS = max(1, args.threads)
    TORCH_DEVICE = args.torch_device
    if args.part:  # a child: one workload, its figure as JSON on the last line
        if args.part == "train-torch":
            print(json.dumps(torch_train(args.steps, args.warmup, args.images)))
        elif args.part == "vit-torch":
            print(json.dumps(torch_vit_train(args.steps, args.warmup, args.images)))
        elif args.part == "train-keras":
            print(json.dumps(keras_train(args.steps, args.warmup, args.images)))
        elif args.part == "transfer-loop":
            print(json.dumps(torch_transfer(cached=False)))
        elif args.part == "transfer-cached":
            print(json.dumps(torch_transfer(cached=True)))
        return
    if args.quick:
        args.steps, args.warmup, args.images, args.repeat = 10, 3, 2000, 1
    if args.steps < 1 or args.warmup < 1 or args.repeat < 1:
        sys.exit("--steps, --warmup and --repeat must be at least 1")
    if args.images < 640 or args.images % 10 or args.images > 60000:
        sys.exit("--images: a multiple of 10 from 640 to 60000 expected")
    graft = os.path.abspath(args.graft)
    if not os.path.exists(graft):
        sys.exit(f"no graft program at {graft} (build it, or pass --graft)")
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        sys.exit(f"unknown --parts {', '.join(sorted(unknown))}: expected {', '.join(PARTS)}")
    if args.isa:  # before anything starts: every child inherits the caps
        os.environ.update(ISA_CAPS[args.isa])
    res = {"machine": machine_info(graft), "threads": THREADS,
           "command": " ".join([sys.argv[0]] + sys.argv[1:])}
    if args.isa:
        res["machine"]["isa_cap"] = args.isa.upper()
    print_machine(res["machine"])
    peers, skipped, facts = ([], {}, {})
    if "train" in parts or "gemm" in parts or "transfer" in parts or "vit" in parts:
        peers, skipped, facts = find_peers(args)
    for p in peers:
        print(f"contender: {p['label']}")
    for why in skipped.values():
        print(f"skipped: {why}")
    res["peers"] = {"found": {p["key"]: p["label"] for p in peers}, "skipped": skipped,
                    "facts": facts}
    torch_python = (args.torch_python if "torch" in facts
                    else args.debian_python if "debian_torch" in facts and TORCH_DEVICE == "cpu"
                    else None)
    tmp = tempfile.mkdtemp(prefix="graft-compare-")
    try:
        if not args.skip_tune and ("train" in parts or "gemm" in parts):
            print("tuning the CNN's GEMMs (graft tune --missing: only shapes not tuned yet) ...",
                  flush=True)
            t0 = time.perf_counter()
            scratch = os.path.join(ROOT, "configs", "recipes", "fmnist-scratch.yaml")
            sh([graft, "tune", scratch, "--shape", "1024x1024x1024", "--missing", "--quiet"],
               env=graft_env())
            res["tune_seconds"] = time.perf_counter() - t0
        for part in parts:
            if part == "train":
                train_part(graft, res, tmp, args, peers)
            elif part == "gemm":
                gemm_part(graft, res, args, torch_python)
            elif part in ("transfer",) and not torch_python:
                print(f"\n== {part}: skipped, no PyTorch found ==")
            elif part == "transfer":
                transfer_part(graft, res, tmp, args, torch_python)
            elif part == "vit":
                vit_part(graft, res, tmp, args, args.torch_python if "torch" in facts else None)
            elif part == "startup":
                startup_part(graft, res, tmp)
            elif part == "demo":
                demo_part(graft, res, tmp, args.quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["machine"]["load_average_end"] = list(os.getloadavg())
    print(f"\nload average at the end: {res['machine']['load_average_end'][0]:.2f}")
    if args.json:
        tmpjson = args.json + ".tmp"
        with open(tmpjson, "w") as f:
            json.dump(res, f, indent=2)
        os.replace(tmpjson, args.json)


if __name__ == "__main__":
    main()
