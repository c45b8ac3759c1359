#!/usr/bin/python3
"""PyTorch as the oracle: build the same network in PyTorch from a Graft model YAML, save its
state_dict as safetensors, and compare Graft's `predict` logits and the weights after one SGD step
and one Adam step on the same batch. This checks every forward and gradient end to end.

usage: oracle.py GRAFT MODEL.yaml|random:SEED [--batch N] [--workdir DIR] [--adamw]
Exit 0 when every comparison is within tolerance, 1 otherwise."""
import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
try:
    import yaml
except ImportError:  # GraftNet alone (bench/ under a PyTorch 2.x venv) needs no YAML
    yaml = None

torch.set_num_threads(2)
torch.backends.cudnn.deterministic = True

# ---- safetensors, by hand (Debian has no python3-safetensors) --------------------------------

def st_write(path, tensors, meta=None):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def st_read(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + a:8 + n + b], dtype=np.float32).reshape(t["shape"])
    return out

# ---- a Graft model YAML, interpreted with PyTorch's modules ------------------------------------

def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class HFAttention(nn.Module):
    """Hugging Face ViT's self-attention with its parameter names (ViTAttention, no dropout)."""

    def __init__(self, d, heads, bias):
        super().__init__()
        self.heads = heads
        self.attention = nn.Module()
        for n in ("query", "key", "value"):
            setattr(self.attention, n, nn.Linear(d, d, bias=bias))
        self.output = nn.Module()
        self.output.dense = nn.Linear(d, d, bias=bias)

    def forward(self, x):
        n, t, d = x.shape
        h = self.heads

        def split(m):
            return m(x).view(n, t, h, d // h).transpose(1, 2)
        q, k, v = split(self.attention.query), split(self.attention.key), split(self.attention.value)
        p = torch.softmax(q @ k.transpose(-1, -2) / (d // h) ** 0.5, dim=-1)
        return self.output.dense((p @ v).transpose(1, 2).reshape(n, t, d))


class TokenParam(nn.Module):
    """class_token / position_embedding: one parameter that Graft names after the layer itself."""

    def __init__(self, *shape):
        super().__init__()
        self.p = nn.Parameter(torch.randn(*shape) * 0.5)


class GraftNet(nn.Module):
    """The layers of a Graft model in order, each reading the previous layer or its `inputs:`."""

    def __init__(self, model):
        super().__init__()
        shape = list(model["input"])
        self.names, self.kinds, self.inputs, self.mods = [], [], [], nn.ModuleList()
        shapes = {}
        prev = None
        layers = []
        for spec in model["layers"]:
            layers.append(spec)
            if spec.get("activation"):
                layers.append({"name": spec["name"] + "_" + spec["activation"], "type": spec["activation"]})
        for spec in layers:
            t, name = spec["type"], spec["name"]
            ins = spec.get("inputs", [prev] if prev is not None else [None])
            in_shape = shapes[ins[0]] if ins[0] is not None else shape
            mod, out = None, in_shape
            if t == "conv2d":
                k, s = pair(spec["kernel"]), pair(spec.get("stride", 1))
                p = spec.get("padding", 0)
                if p == "same":
                    p = (k[0] // 2, k[1] // 2)
                elif p == "valid":
                    p = (0, 0)
                else:
                    p = pair(p)
                mod = nn.Conv2d(in_shape[0], spec["filters"], k, s, p, groups=spec.get("groups", 1),
                                bias=spec.get("bias", True))
                out = [spec["filters"], (in_shape[1] + 2 * p[0] - k[0]) // s[0] + 1,
                       (in_shape[2] + 2 * p[1] - k[1]) // s[1] + 1]
            elif t == "dense" and len(in_shape) == 2:  # tokens: the last axis
                mod = nn.Linear(in_shape[1], spec["units"], bias=spec.get("bias", True))
                out = [in_shape[0], spec["units"]]
            elif t == "dense":
                mod = nn.Linear(int(np.prod(in_shape)), spec["units"], bias=spec.get("bias", True))
                out = [spec["units"]]
            elif t == "patch_embed":
                p = spec["patch"]
                mod = nn.Conv2d(in_shape[0], spec["dim"], p, p, bias=spec.get("bias", True))
                out = [(in_shape[1] // p) * (in_shape[2] // p), spec["dim"]]
            elif t == "class_token":
                mod = TokenParam(1, 1, in_shape[1])
                out = [in_shape[0] + 1, in_shape[1]]
            elif t == "position_embedding":
                mod = TokenParam(1, in_shape[0], in_shape[1])
            elif t in ("token_select", "token_mean"):
                out = [in_shape[1]]
            elif t == "attention" and spec.get("names", "torch") == "hf":
                mod = HFAttention(in_shape[1], spec["heads"], spec.get("bias", True))
            elif t == "attention":
                mod = nn.MultiheadAttention(in_shape[1], spec["heads"], bias=spec.get("bias", True),
                                            batch_first=True)
            elif t == "batchnorm":
                cls = nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d
                mod = cls(in_shape[0], eps=spec.get("eps", 1e-5), momentum=spec.get("momentum", 0.1))
            elif t == "layernorm":
                mod = nn.LayerNorm(in_shape[-1], eps=spec.get("eps", 1e-5),
                                   elementwise_affine=spec.get("affine", True))
            elif t in ("maxpool", "avgpool"):
                k = pair(spec.get("size", 2))
                s = pair(spec.get("stride", spec.get("size", 2)))
                p = pair(spec.get("padding", 0))
                mod = (nn.MaxPool2d if t == "maxpool" else nn.AvgPool2d)(k, s, p)
                out = [in_shape[0], (in_shape[1] + 2 * p[0] - k[0]) // s[0] + 1,
                       (in_shape[2] + 2 * p[1] - k[1]) // s[1] + 1]
            elif t == "global_avgpool":
                out = [in_shape[0], 1, 1]
            elif t == "flatten":
                out = [int(np.prod(in_shape))]
            elif t == "dropout":
                mod = nn.Dropout(spec.get("rate", 0.5))
            elif t == "concat":
                out = [sum(shapes[i][0] for i in ins)] + list(in_shape[1:])
            self.names.append(name)
            self.kinds.append((t, spec))
            self.inputs.append(ins)
            self.mods.append(mod if mod is not None else nn.Identity())
            shapes[name] = out
            prev = name

    def forward(self, x):
        vals = {}
        last = None
        for name, (t, spec), ins, mod in zip(self.names, self.kinds, self.inputs, self.mods):
            xs = [vals[i] if i is not None else x for i in ins]
            a = xs[0]
            if t in ("conv2d", "batchnorm", "layernorm", "maxpool", "avgpool", "dropout"):
                y = mod(a)
            elif t == "dense":
                y = mod(a) if a.dim() == 3 else mod(a.flatten(1))
            elif t == "patch_embed":
                y = mod(a).flatten(2).transpose(1, 2)
            elif t == "class_token":
                y = torch.cat([mod.p.expand(a.shape[0], -1, -1), a], 1)
            elif t == "position_embedding":
                y = a + mod.p
            elif t == "token_select":
                y = a[:, spec.get("index", 0)]
            elif t == "token_mean":
                y = a.mean(1)
            elif t == "attention" and isinstance(mod, HFAttention):
                y = mod(a)
            elif t == "attention":
                y = mod(a, a, a, need_weights=False)[0]
            elif t == "relu":
                y = F.relu(a)
            elif t == "relu6":
                y = F.relu6(a)
            elif t == "leaky_relu":
                y = F.leaky_relu(a, spec.get("slope", 0.01))
            elif t == "gelu":
                y = F.gelu(a)
            elif t == "sigmoid":
                y = torch.sigmoid(a)
            elif t == "tanh":
                y = torch.tanh(a)
            elif t == "global_avgpool":
                y = a.mean(dim=(2, 3), keepdim=True)
            elif t == "flatten":
                y = a.flatten(1)
            elif t == "add":
                y = sum(xs)
            elif t == "concat":
                y = torch.cat(xs, 1)
            else:
                raise ValueError(t)
            vals[name] = y
            last = y
        return last

    def graft_state(self):
        out = {}
        for name, mod in zip(self.names, self.mods):
            for k, v in mod.state_dict().items():
                if k != "num_batches_tracked":
                    out[name if isinstance(mod, TokenParam) else f"{name}.{k}"] = v.detach().cpu().numpy().copy()
        return out

    def load_graft_state(self, st):
        for name, mod in zip(self.names, self.mods):
            own = mod.state_dict()
            for k in own:
                if k != "num_batches_tracked":
                    key = name if isinstance(mod, TokenParam) else f"{name}.{k}"
                    own[k] = torch.from_numpy(np.array(st[key])).to(own[k].device)
            mod.load_state_dict(own)


def random_model(seed):
    """A random small CNN: odd sizes, 1x1 and strided convs, groups, all activations, both pools."""
    r = random.Random(seed)
    c, h = r.choice([1, 3]), r.choice([11, 13, 16])
    layers, ch, size, i = [], c, h, 0
    acts = ["relu", "leaky_relu", "gelu", "sigmoid", "tanh", "relu6"]
    for _ in range(r.randint(2, 3)):
        k = r.choice([1, 3, 5]) if size >= 5 else 1
        s = r.choice([1, 2]) if size >= 6 else 1
        p = r.choice([0, k // 2])
        g = 1 if ch % 2 else r.choice([1, 2])
        f = r.choice([2, 3, 5, 6]) * g
        layers.append({"name": f"conv{i}", "type": "conv2d", "filters": f, "kernel": k, "stride": s,
                       "padding": p, "groups": g, "bias": r.choice([True, False])})
        size = (size + 2 * p - k) // s + 1
        ch = f
        if r.random() < 0.6:
            layers.append({"name": f"bn{i}", "type": "batchnorm"})
        layers.append({"name": f"act{i}", "type": r.choice(acts)})
        if size >= 4 and r.random() < 0.6:
            layers.append({"name": f"pool{i}", "type": r.choice(["maxpool", "avgpool"]), "size": 2})
            size //= 2
        i += 1
    layers.append({"name": "flat", "type": "flatten"})
    layers.append({"name": "fc1", "type": "dense", "units": r.choice([7, 12])})
    layers.append({"name": "fc1_act", "type": r.choice(acts)})
    layers.append({"name": "out", "type": "dense", "units": r.choice([3, 5, 10])})
    return {"input": [c, h, h], "layers": layers}


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1e-12, float(np.max(np.abs(b)))))


class Checks:
    """check(what, err, tol): prints one comparison line and counts those out of tolerance."""

    def __init__(self):
        self.failures = 0

    def __call__(self, what, err, tol):
        ok = err <= tol
        self.failures += 0 if ok else 1
        print(f"  {'ok  ' if ok else 'FAIL'} {what:48s} rel.err {err:.2e} (tol {tol:.0e})")


def run_graft(exe, *cmd):
    """Run `graft CMD...`; on failure print its output and exit the test."""
    r = subprocess.run([exe, *cmd], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        raise SystemExit(f"graft {cmd[0]} failed with exit {r.returncode}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("graft")
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workdir")
    ap.add_argument("--torch-device", default="cpu", help="where PyTorch computes (cuda on the GPU machine)")
    ap.add_argument("--adamw", action="store_true", help="also one AdamW step (weight decay 0.05)")
    args = ap.parse_args()
    dev = torch.device(args.torch_device)
    torch.backends.cuda.matmul.allow_tf32 = False  # FP32 references, not TF32
    torch.backends.cudnn.allow_tf32 = False
    work = args.workdir or tempfile.mkdtemp(prefix="graft-torch-")
    os.makedirs(work, exist_ok=True)
    if args.model.startswith("random:"):
        model = random_model(int(args.model.split(":")[1]))
        model_path = os.path.join(work, "model.yaml")
        with open(model_path, "w") as f:
            yaml.safe_dump({"name": "random", "model": model}, f, sort_keys=False)
    else:
        model_path = os.path.abspath(args.model)
        model = yaml.safe_load(open(model_path))
        model = model.get("model", model)
    # dropout makes masks that cannot match PyTorch's: compare with rate 0 on both sides
    drop_sets = []
    for idx, spec in enumerate(model["layers"]):
        if spec["type"] == "dropout":
            spec["rate"] = 0.0
            drop_sets += ["--set", f"model.layers.{idx}.rate=0"]

    torch.manual_seed(1234)
    net = GraftNet(model)
    for m in net.modules():  # non-trivial batchnorm state so eval mode is really checked
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        if isinstance(m, nn.LayerNorm) and m.elementwise_affine:  # not the identity affine
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    w0 = net.graft_state()
    st_write(os.path.join(work, "w0.safetensors"), w0)
    n = args.batch
    classes = model["layers"][-1].get("units")
    rng = np.random.default_rng(7)
    x = rng.standard_normal([n] + list(model["input"])).astype(np.float32)
    y = rng.integers(0, classes, n).astype(np.int64)
    np.save(os.path.join(work, "x.npy"), x)
    np.save(os.path.join(work, "y.npy"), y)
    recipe = {
        "name": "torch-oracle",
        "model": {"file": model_path} if not args.model.startswith("random:") else {"file": "model.yaml"},
        "data": {"train": {"format": "npy", "images": "x.npy", "labels": "y.npy"},
                 "test": {"format": "npy", "images": "x.npy", "labels": "y.npy"},
                 "val_split": 0, "seed": 1},
        "train": {"epochs": 1, "batch_size": n, "max_steps": 1},
        # (the data loader shuffles, but a step over the whole set is order-independent)
    }
    if os.path.isabs(recipe["model"]["file"]) is False and not args.model.startswith("random:"):
        recipe["model"]["file"] = model_path
    recipe_path = os.path.join(work, "recipe.yaml")
    with open(recipe_path, "w") as f:
        yaml.safe_dump(recipe, f, sort_keys=False)

    check = Checks()

    def graft(*cmd):
        run_graft(args.graft, *cmd)

    # 1. inference logits
    net.eval()
    net.to(dev)
    with torch.no_grad():
        ref = net(torch.from_numpy(x).to(dev)).cpu().numpy()
    out = os.path.join(work, "logits.npy")
    graft("predict", recipe_path, "--weights", os.path.join(work, "w0.safetensors"),
          "--input", os.path.join(work, "x.npy"), "--output", out, *drop_sets)
    check("predict logits", rel_err(np.load(out), ref), 1e-4)

    # 2. one optimizer step on the same batch, SGD and Adam, with PyTorch in float64: Adam's first
    # step is lr * g/(|g|+eps) elementwise, which turns the float32 noise of gradients near zero
    # into large parts of a step (on resnet-small at batch 64 PyTorch's own float32 step was
    # 1.2e-3 off its float64 one, Graft's 1.3e-5). eps 1e-5 (on both sides) keeps the rest of
    # that amplification below the tolerance while every part of the update formula still runs.
    net.double()
    xd = torch.from_numpy(x).to(dev).double()
    steps = [("sgd", 0.1, 0.0), ("adam", 1e-3, 0.0)] + ([("adamw", 1e-3, 0.05)] if args.adamw else [])

    def reference_step(opt, lr, wd, inp):
        """PyTorch's weights after one `opt` step from w0 on the batch inp (float64)."""
        net.load_graft_state(w0)
        net.train()
        if opt == "sgd":
            o = torch.optim.SGD(net.parameters(), lr=lr)
        elif opt == "adamw":
            o = torch.optim.AdamW(net.parameters(), lr=lr, eps=1e-5, weight_decay=wd)
        else:
            o = torch.optim.Adam(net.parameters(), lr=lr, eps=1e-5)
        o.zero_grad()
        F.cross_entropy(net(inp), torch.from_numpy(y).to(dev)).backward()
        o.step()
        return net.graft_state()

    for opt, lr, wd in steps:
        want = reference_step(opt, lr, wd, xd)
        run = os.path.join(work, f"run-{opt}")
        graft("train", recipe_path, "--quiet", "--out", run,
              "--set", "transfer.from=" + os.path.join(work, "w0.safetensors"),
              "--set", f"train.optimizer={opt}", "--set", f"train.lr={lr}",
              "--set", "train.eps=1e-5", "--set", f"train.weight_decay={wd}", *drop_sets)
        got = st_read(os.path.join(run, "last.safetensors"))
        # the update itself, relative to the largest update of the step: a parameter whose true
        # gradient is zero (a conv bias before batchnorm) must stay put up to float noise
        scale = max(float(np.max(np.abs(want[k] - w0[k]))) for k in want)
        failed_updates = []
        for name, ref_w in want.items():
            if name not in got:
                print(f"  FAIL {name} missing from last.safetensors")
                check.failures += 1
                continue
            check(f"{opt} step: weights {name}", rel_err(got[name], ref_w), 1e-3)
            if opt == "sgd":
                d_ref, d_got = ref_w - w0[name], got[name] - w0[name]
                denom = max(float(np.max(np.abs(d_ref))), 1e-3 * scale)
                err = float(np.max(np.abs(d_got - d_ref))) / denom
                check(f"{opt} step: update {name}", err, 1e-3)
                if err > 1e-3:
                    failed_updates.append((name, denom))
        if failed_updates:
            # Tell a wrong gradient from an ill-conditioned comparison: PyTorch's own float64
            # update with the input perturbed by 1e-6 (relative). A ReLU or max-pool that a change
            # that small decides the other way moves whole channels of the update (fmnist-cnn at
            # batch 16: 1.4e-2), and no float32 device can be held to 1e-3 there. The check still
            # fails; this only says how far the reference itself moves. Two perturbations find
            # some kinks, not all: at batch 16 a max-pool window of conv4 whose two largest
            # values differ by 4e-7 moved conv4's update by 4.9e-2 on the Winograd path, and
            # PyTorch with that window decided Graft's way matched Graft to 2e-6.
            spread = {k: 0.0 for k, _ in failed_updates}
            for seed in (101, 102):
                xp = xd * (1 + 1e-6 * torch.from_numpy(
                    np.random.default_rng(seed).standard_normal(x.shape)).to(dev))
                moved = reference_step(opt, lr, wd, xp)
                for k, denom in failed_updates:
                    dk = float(np.max(np.abs((moved[k] - w0[k]) - (want[k] - w0[k])))) / denom
                    spread[k] = max(spread[k], dk)
            for k, _ in failed_updates:
                print(f"  note {opt} step: update {k}: PyTorch float64 with the input perturbed by "
                      f"1e-6 moves it by {spread[k]:.2e}"
                      + (" (ill-conditioned here)" if spread[k] > 1e-3 else
                         " (not explained by these perturbations)"))
    # 3. two steps of SGD with momentum, weight decay, L2-SP toward the loaded weights and a
    # discriminative lr multiplier on the last layer: recipe regularisers end to end
    last = model["layers"][-1]["name"]
    alpha, wd, mom, lr, mult = 0.5, 1e-2, 0.9, 0.05, 0.25
    net.load_graft_state(w0)
    net.train()
    groups = []
    for name, mod in zip(net.names, net.mods):
        ps = list(mod.parameters())
        if ps:
            groups.append({"params": ps, "lr": lr * (mult if name == last else 1.0)})
    o = torch.optim.SGD(groups, lr=lr, momentum=mom, weight_decay=wd)
    anchors = {p: p.detach().clone() for g in groups for p in g["params"]}
    for _ in range(2):
        o.zero_grad()
        F.cross_entropy(net(xd), torch.from_numpy(y).to(dev)).backward()
        with torch.no_grad():
            for p_, a_ in anchors.items():
                p_.grad += alpha * (p_ - a_)
        o.step()
    want = net.graft_state()
    run = os.path.join(work, "run-l2sp")
    graft("train", recipe_path, "--quiet", "--out", run,
          "--set", "transfer.from=" + os.path.join(work, "w0.safetensors"),
          "--set", "train.optimizer=momentum", "--set", f"train.lr={lr}",
          "--set", f"train.momentum={mom}", "--set", f"train.weight_decay={wd}",
          "--set", f"train.l2sp={alpha}", "--set", f"train.lr_mult={{{last}: {mult}}}",
          "--set", "train.epochs=2", "--set", "train.max_steps=2", *drop_sets)
    got = st_read(os.path.join(run, "last.safetensors"))
    for name, ref_w in want.items():
        check(f"momentum+wd+l2sp+lr_mult 2 steps: {name}", rel_err(got[name], ref_w), 1e-3)
    print(f"{'PASS' if check.failures == 0 else 'FAIL'}: {check.failures} comparison(s) out of "
          "tolerance")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
