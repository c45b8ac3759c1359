#!/usr/bin/env python3
"""adapt_torch.py — the PyTorch reference of Graft's domain adaptation recipes
(configs/recipes/fmnist-to-fmnistm-*.yaml) on the same data, architecture and schedule: fmnist-cnn
with 3 input channels, Adam 1e-3, batch 64, 3 epochs over the 30,000 source images; each aligning
step concatenates a source and a target batch (as Graft and TLlib do); the target stream cycles on
its own. Methods as Graft implements them (docs/adaptation.md):
  source-only  cross-entropy on the source batch
  adabn        source-only, then batchnorm statistics re-estimated on the target (momentum=None)
  coral        + weight * |Cs - Ct|_F^2 / (4 d^2) on fc1's output
  mmd          + weight * unbiased MK-MMD^2 on fc1's output (5 Gaussian kernels, bandwidth 2 s2 x
               {1/4 .. 4}, s2 = the batch's mean squared distance, no gradient through it)
  dann         + weight * BCE of a discriminator [256, 256] -> 1 behind a gradient reversal layer,
               lambda = 2 / (1 + exp(-10 p)) - 1

usage: adapt_torch.py DATA_DIR [--methods a,b,...] [--epochs 3] [--seed 0] [--json OUT]
                      [--init WEIGHTS] [--save-init WEIGHTS] [--graft-order] [--max-steps N]
                      [--float64] [--save-final PREFIX]
DATA_DIR is what tools/make_shift.py wrote. Prints one line per method and writes JSON with --json.
Run it with /work/venv-torch/bin/python (PyTorch 2.x) or /usr/bin/python3 (Debian's torch 1.13).

--graft-order replays Graft's random streams (tests/torch/graft_rng.py): the source and target
batches in the order `graft train --set train.seed=SEED` takes them, and the dropout masks Graft
draws. With --init from the same weights, the two engines then differ only in rounding.
--max-steps stops early as train.max_steps does (Ganin's p then runs over those steps);
--float64 trains in double (how far float32 rounding alone moves a run);
--save-final writes PREFIX-METHOD.safetensors (Graft's names, the discriminator's included)."""
import argparse
import copy
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# oracle.py (safetensors by hand) and graft_rng.py (Graft's random streams)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "torch"))

MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    data = open(path, "rb").read()
    _, _, rank = struct.unpack(">HBB", data[:4])
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(d, name, labels=True):
    x = read_idx(os.path.join(d, f"{name}-images.idx")).astype(np.float32) / 255.0
    x = torch.from_numpy((x - MEAN) / STD)
    y = torch.from_numpy(read_idx(os.path.join(d, f"{name}-labels.idx")).astype(np.int64)) if labels else None
    return x, y


class Net(nn.Module):
    """configs/models/fmnist-cnn.yaml with a 3-channel input."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.conv3, self.bn3 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(64 * 7 * 7, 128), nn.Linear(128, 10)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.max_pool2d(F.relu(self.conv4(x)), 2)
        f = self.fc1(x.flatten(1))
        return self.fc2(self.drop(F.relu(f))), f


class GraftDropout(nn.Module):
    """Graft's dropout masks (Philox, keyed by the seed and the layer's index, counted by step):
    set .step before each training forward."""

    def __init__(self, seed, index, rate=0.5):
        super().__init__()
        from graft_rng import dropout_key
        self.key, self.rate, self.step = dropout_key(seed, index), rate, 0

    def forward(self, x):
        if not self.training:
            return x
        from graft_rng import dropout_mask
        m = dropout_mask(self.key, self.step, x.numel(), self.rate)
        return x * torch.from_numpy(m).reshape(x.shape).to(x.dtype)


class GRL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


def coral(f, ns):
    fs, ft = f[:ns], f[ns:]
    d = f.shape[1]

    def cov(a):
        c = a - a.mean(0, keepdim=True)
        return c.T @ c / (a.shape[0] - 1)

    return ((cov(fs) - cov(ft)) ** 2).sum() / (4 * d * d)


def mmd(f, ns):
    n = f.shape[0]
    nt = n - ns
    d2 = torch.cdist(f, f).pow(2)
    s2 = d2.detach().mean()
    k = sum(torch.exp(-d2 / (2 * s2 * 2.0 ** m)) for m in range(-2, 3))
    src = torch.arange(n) < ns
    w = torch.where(src[:, None] & src[None, :], 1.0 / (ns * (ns - 1)),
                    torch.where(~src[:, None] & ~src[None, :], 1.0 / (nt * (nt - 1)), -1.0 / (ns * nt)))
    w = w * (1 - torch.eye(n))
    return (w * k).sum()


def evaluate(net, x, y, bs=500):
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), bs):
            xb = x[i:i + bs].to(net.fc1.weight.dtype)
            correct += (net(xb)[0].argmax(1) == y[i:i + bs]).sum().item()
    return correct / len(x)


def adabn(net, xt, bs=64):
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # the plain average over the batches
    net.train()
    with torch.no_grad():
        for i in range(0, len(xt), bs):
            if len(xt) - i >= 2:
                net(xt[i:i + bs].to(net.fc1.weight.dtype))


def run(method, data, epochs, seed, weight=1.0, bs=64, init=None, save_init=None,
        graft_order=False, max_steps=0, dtype=torch.float32):
    """init: start from these weights (safetensors with Graft's names, which are PyTorch's here:
    e.g. Graft's own initial state; DANN's discriminator as domain_disc.N when present);
    save_init: write the initial weights there first, the discriminator's included;
    graft_order: Graft's batch order and dropout masks (see the module's doc); dtype: float64
    runs the same computation in double (a reference for how far rounding moves a run).
    Returns the network, the seconds and the discriminator (None but for dann)."""
    torch.manual_seed(seed)
    xs, ys, xt, xst, yst, xtt, ytt = data
    net = Net()
    if graft_order:
        net.drop = GraftDropout(seed, 15)  # fmnist-cnn's dropout is its layer 15
    if init or save_init:
        from oracle import st_read, st_write
        sd = net.state_dict()
        if init:
            st = st_read(init)
            sd.update({k: torch.as_tensor(np.array(st[k])).reshape(sd[k].shape)
                       for k in sd if k in st})
            net.load_state_dict(sd)
    net.to(dtype)
    params = list(net.parameters())
    disc = None
    if method == "dann" or save_init:
        disc = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                             nn.Linear(256, 1))
        # Graft names the discriminator's dense layers domain_disc.0/1/2 (Sequential's 0/2/4)
        dnames = {f"domain_disc.{i // 2}.{w}": t for i in (0, 2, 4)
                  for w, t in (("weight", disc[i].weight), ("bias", disc[i].bias))}
        if init and all(k in st for k in dnames):
            with torch.no_grad():
                for k, t in dnames.items():
                    t.copy_(torch.as_tensor(np.array(st[k])).reshape(t.shape))
        if save_init:
            st_write(save_init, {**{k: v.detach().numpy() for k, v in net.state_dict().items()
                                    if not k.endswith("num_batches_tracked")},
                                 **{k: t.detach().numpy() for k, t in dnames.items()}})
        if method != "dann":
            disc = None
        else:
            disc.to(dtype)
            params += list(disc.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    g = torch.Generator().manual_seed(seed + 1)
    if graft_order:
        from graft_rng import data_seed_mix, epoch_order
        tseed, tepoch = data_seed_mix(seed, 0x7a29e7), 0
        tperm = torch.tensor(epoch_order(len(xt), tseed, 0))
    else:
        tperm = torch.randperm(len(xt), generator=g)
    tpos = 0
    nb = math.ceil(len(xs) / bs)
    total = epochs * nb if not 0 < max_steps < epochs * nb else max_steps
    aligning = method in ("coral", "mmd", "dann")
    net.train()
    step, t0 = 0, time.time()
    for ep in range(epochs):
        net.train()
        perm = (torch.tensor(epoch_order(len(xs), seed, ep)) if graft_order
                else torch.randperm(len(xs), generator=g))
        for b in range(nb):
            if max_steps and step >= max_steps:
                break
            idx = perm[b * bs:(b + 1) * bs]
            x, y, ns = xs[idx].to(dtype), ys[idx], len(idx)
            if aligning:
                if tpos >= len(xt):
                    if graft_order:
                        tepoch += 1
                        tperm = torch.tensor(epoch_order(len(xt), tseed, tepoch))
                    else:
                        tperm = torch.randperm(len(xt), generator=g)
                    tpos = 0
                tidx = tperm[tpos:tpos + bs]
                tpos += bs
                x = torch.cat([x, xt[tidx].to(dtype)])
            if graft_order:
                net.drop.step = step
            logits, f = net(x)
            loss = F.cross_entropy(logits[:ns], y)
            if aligning and ns >= 2 and len(x) - ns >= 2:
                if method == "coral":
                    loss = loss + weight * coral(f, ns)
                elif method == "mmd":
                    loss = loss + weight * mmd(f, ns)
                else:
                    p = step / total
                    lam = 2.0 / (1.0 + math.exp(-10 * p)) - 1.0
                    dom = torch.cat([torch.ones(ns, dtype=dtype),
                                     torch.zeros(len(x) - ns, dtype=dtype)])
                    loss = loss + weight * F.binary_cross_entropy_with_logits(
                        disc(GRL.apply(f, lam)).squeeze(1), dom)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    return net, time.time() - t0, disc


def result(method, net, data, seconds):
    xs, ys, xt, xst, yst, xtt, ytt = data
    src = evaluate(net, xst, yst)
    before = evaluate(net, xtt, ytt) if method == "adabn" else None
    if method == "adabn":
        adabn(net, xt)
    tgt = evaluate(net, xtt, ytt)
    return {"method": method, "source_test": src, "target_test": tgt,
            "target_before_adabn": before, "seconds": seconds}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("--methods", default="source-only,adabn,coral,mmd,dann")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", help="start every method from these weights (safetensors)")
    ap.add_argument("--save-init", help="write the initial weights (of the first method) here")
    ap.add_argument("--json")
    ap.add_argument("--graft-order", action="store_true",
                    help="Graft's batch order and dropout masks for this seed")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after N steps")
    ap.add_argument("--float64", action="store_true",
                    help="train in double precision (a reference for rounding studies)")
    ap.add_argument("--save-final", metavar="PREFIX",
                    help="write each method's final weights to PREFIX-METHOD.safetensors")
    ap.add_argument("--limit", type=int, default=0, help="first N source images only (smoke runs)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    xs, ys = load(a.data, "source-train")
    if a.limit:
        xs, ys = xs[:a.limit], ys[:a.limit]
    xt, _ = load(a.data, "target-train", labels=False)
    xst, yst = load(a.data, "source-test")
    xtt, ytt = load(a.data, "target-test")
    data = (xs, ys, xt, xst, yst, xtt, ytt)
    out = []
    trained = {}
    for m in a.methods.split(","):
        # adabn trains exactly as source-only does (same seed): one training serves both
        base = "source-only" if m == "adabn" else m
        if base not in trained:
            trained[base] = run(base, data, a.epochs, a.seed, init=a.init,
                                save_init=None if trained else a.save_init,
                                graft_order=a.graft_order, max_steps=a.max_steps,
                                dtype=torch.float64 if a.float64 else torch.float32)
        net, secs, disc = trained[base]
        if a.save_final and m != "adabn":
            from oracle import st_write
            st = {k: v.detach().float().numpy() for k, v in net.state_dict().items()
                  if not k.endswith("num_batches_tracked")}
            if disc is not None:
                st.update({f"domain_disc.{i // 2}.{w}":
                           getattr(disc[i], w).detach().float().numpy()
                           for i in (0, 2, 4) for w in ("weight", "bias")})
            st_write(f"{a.save_final}-{m}.safetensors", st)
        if m == "adabn":
            net = copy.deepcopy(net)
        r = result(m, net, data, secs)
        out.append(r)
        print(f"torch {torch.__version__} {m:12s} source test {r['source_test']:.4f}  "
              f"target test {r['target_test']:.4f}  ({r['seconds']:.0f} s)", flush=True)
        if a.json:
            with open(a.json + ".tmp", "w") as f:
                json.dump(out, f, indent=1)
            os.replace(a.json + ".tmp", a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
