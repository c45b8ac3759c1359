#!/usr/bin/python3
"""The `graft demo` recipes in plain PyTorch (the usual loop, no feature caching), for the quality
bar and the end-to-end time comparison: pretrain fmnist-cnn on classes 0-4 (2 epochs, Adam 1e-3,
batch 64), then transfer to classes 5-9 with the first 100 training images per class, 30 epochs:
(a) scratch, (b) frozen through flatten + new dense128-relu-dropout-dense5 head, (c) frozen
through dense128 + new linear head, (d) full fine-tune at lr 3e-4; test on all 5,000 test images
of classes 5-9. usage: demo_torch.py [--epochs N] [--seeds S1,S2,...] [--json OUT]"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "torch"))
from oracle import GraftNet  # noqa: E402

torch.set_num_threads(os.cpu_count() or 2)
SRC = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def idx(name):
    with gzip.open(os.path.join(SRC, name)) as f:
        d = f.read()
    n = d[3]
    dims = [int.from_bytes(d[4 + 4 * i:8 + 4 * i], "big") for i in range(n)]
    return np.frombuffer(d, np.uint8, offset=4 + 4 * n).reshape(dims)


def prep(x):
    return torch.from_numpy(((x.astype(np.float32) / 255.0 - 0.2860) / 0.3530)[:, None])


def subset(x, y, classes, per_class=None):
    keep = []
    for c in classes:
        i = np.nonzero(y == c)[0]
        keep.append(i[:per_class] if per_class else i)
    keep = np.sort(np.concatenate(keep))
    ymap = {c: k for k, c in enumerate(classes)}
    return prep(x[keep]), torch.tensor([ymap[int(v)] for v in y[keep]])


def epoch(net, opt, x, y, g, bs=64):
    """One pass over x in the order g draws, an optimiser step per batch; the rows it saw."""
    perm = torch.randperm(len(x), generator=g)
    for i in range(0, len(x), bs):
        b = perm[i:i + bs]
        opt.zero_grad()
        F.cross_entropy(net(x[b]), y[b]).backward()
        opt.step()
    return len(x)


def train(net, params, x, y, epochs, lr, seed):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(epochs):
        net.train()
        for m in net.modules():  # frozen batchnorm keeps its running statistics
            if isinstance(m, nn.BatchNorm2d) and not m.weight.requires_grad:
                m.eval()
        epoch(net, opt, x, y, g)


def accuracy(net, x, y):
    net.eval()
    with torch.no_grad():
        return float(sum((net(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum() for i in range(0, len(x), 500))) / len(x)


def with_head(model, cut, new_layers):
    layers = model["layers"]
    k = [l["name"] for l in layers].index(cut)
    return {"input": model["input"], "layers": layers[:k] + new_layers}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--json")
    a = ap.parse_args()
    import yaml  # here, so vit_demo_torch.py can borrow the helpers in a venv without PyYAML
    base = yaml.safe_load(open(os.path.join(ROOT, "configs/models/fmnist-cnn.yaml")))["model"]
    xtr, ytr = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
    xte, yte = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
    px, py = subset(xtr, ytr, [0, 1, 2, 3, 4])
    tx, ty = subset(xtr, ytr, [5, 6, 7, 8, 9], 100)
    ex, ey = subset(xte, yte, [5, 6, 7, 8, 9])
    results = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        torch.manual_seed(seed)
        pre = GraftNet(with_head(base, "fc2", [{"name": "fc2", "type": "dense", "units": 5}]))
        t0 = time.time()
        train(pre, pre.parameters(), px, py, 2, 1e-3, seed)
        pre_s = time.time() - t0
        pre_state = pre.graft_state()
        print(f"seed {seed}: pretrain {pre_s:.0f} s ({2 * len(px) / pre_s:.0f} img/s), "
              f"classes 0-4 test accuracy {accuracy(pre, *subset(xte, yte, [0, 1, 2, 3, 4])):.4f}")
        head5 = [{"name": "fc2", "type": "dense", "units": 5}]
        variants = [
            ("(a) scratch", with_head(base, "fc2", head5), None, 1e-3),
            ("(b) frozen flatten + new head",
             with_head(base, "fc1", [{"name": "fc1", "type": "dense", "units": 128},
                                     {"name": "relu5", "type": "relu"},
                                     {"name": "dropout", "type": "dropout", "rate": 0.5}] + head5),
             "flatten", 1e-3),
            ("(c) frozen dense128 + linear", with_head(base, "fc2", head5), "fc1", 1e-3),
            ("(d) full fine-tune", with_head(base, "fc2", head5), "none", 3e-4),
        ]
        for label, model, freeze, lr in variants:
            torch.manual_seed(seed + 1)
            net = GraftNet(model)
            if freeze is not None:  # load every pretrained tensor the new model shares
                st = net.graft_state()
                for k in st:
                    if k in pre_state and pre_state[k].shape == st[k].shape and not k.startswith("fc2"):
                        if freeze == "flatten" and k.startswith("fc1"):
                            continue
                        st[k] = pre_state[k]
                net.load_graft_state(st)
            params = []
            frozen = True if freeze not in (None, "none") else False
            for name, mod in zip(net.names, net.mods):
                for p in mod.parameters():
                    p.requires_grad = not frozen
                    if not frozen:
                        params.append(p)
                if frozen and name == freeze:
                    frozen = False
            t0 = time.time()
            train(net, params, tx, ty, a.epochs, lr, seed)
            secs = time.time() - t0
            acc = accuracy(net, ex, ey)
            results.append({"seed": seed, "recipe": label, "accuracy": acc, "seconds": secs})
            print(f"  {label:32s} test accuracy {acc:.4f}  {secs:6.1f} s")
    if a.json:
        json.dump({"machine": os.uname().nodename, "torch": torch.__version__, "results": results},
                  open(a.json, "w"), indent=2)


if __name__ == "__main__":
    main()
