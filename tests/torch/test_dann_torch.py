#!/usr/bin/python3
"""test_dann_torch.py GRAFT WORKDIR — one DANN training step in Graft against PyTorch with the same
weights (feature extractor, classifier and domain discriminator), the same source and target
batches and the same lambda (and 20 steps under Ganin's schedule, SGD and Adam): a small CNN
with batchnorm, the features of fc1 through a gradient reversal layer into a discriminator
[16, 16] -> 1 trained with binary cross-entropy (source 1, target 0), the total loss CE(source) + weight * BCE, one SGD step and one Adam step. Every tensor
after the step (weights, discriminator, batchnorm running statistics) must agree. Also one SGD step
with the discriminator's dropout (its masks rebuilt here from Graft's Philox4x32-10 stream, see
cl/dropout.cl), a CORAL step and an MMD-free check that the target rows' labels are never read.
Last, 3 steps into a 5-batch epoch with each step's source and target rows taken where
tests/torch/graft_rng.py says Graft's shuffling batchers put them (what bench/adapt_torch.py
--graft-order relies on). Exit 77 without torch."""
import math
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import yaml
except ImportError as ex:
    print(f"SKIP: {ex}")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import GraftNet, st_read, st_write, rel_err  # noqa: E402
from graft_rng import data_seed_mix, dropout_key, dropout_mask, epoch_order  # noqa: E402

torch.set_num_threads(2)
graft, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)

MODEL = {"input": [3, 8, 8], "layers": [
    {"name": "conv1", "type": "conv2d", "filters": 4, "kernel": 3, "padding": 1},
    {"name": "bn1", "type": "batchnorm"},
    {"name": "relu1", "type": "relu"},
    {"name": "pool1", "type": "maxpool", "size": 2},
    {"name": "flatten", "type": "flatten"},
    {"name": "fc1", "type": "dense", "units": 12},
    {"name": "relu2", "type": "relu"},
    {"name": "fc2", "type": "dense", "units": 5}]}
NS, NT, WEIGHT, DISC = 8, 8, 0.7, [16, 16]


class GRL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


def coral(fs, ft):
    d = fs.shape[1]
    cs, ct = torch.cov(fs.T), torch.cov(ft.T)
    return ((cs - ct) ** 2).sum() / (4 * d * d)


def main():
    torch.manual_seed(7)
    rng = np.random.default_rng(7)
    xs = rng.normal(0, 1, (NS, 3, 8, 8)).astype(np.float32)
    # the target domain: shifted and rescaled inputs
    xt = (rng.normal(0, 1, (NT, 3, 8, 8)) * 1.5 + 0.4).astype(np.float32)
    ys = rng.integers(0, 5, NS).astype(np.int64)
    ys[:5] = np.arange(5)
    yt = np.full(NT, 4, np.int64)  # never read: Graft must not use target labels
    for name, a in [("xs", xs), ("ys", ys), ("xt", xt), ("yt", yt)]:
        np.save(os.path.join(work, name + ".npy"), a)
    # the dropout case: masks are positional, and Graft shuffles the rows of its batches, so every
    # source row is the same example and every target row too (the order then cannot matter)
    rows = {"xs": np.repeat(xs[:1], NS, 0), "ys": np.repeat(ys[:1], NS), "xt": np.repeat(xt[:1], NT, 0),
            "yt": yt}
    for name, a in rows.items():
        np.save(os.path.join(work, name + "1.npy"), a)
    # the order case: 5 batches of distinct rows a side, so a step's batch depends on the order in
    # which Graft's batchers shuffle them (tests/torch/graft_rng.py replays it; bench/adapt_torch.py
    # --graft-order relies on that)
    big = {"xs": rng.normal(0, 1, (5 * NS, 3, 8, 8)).astype(np.float32),
           "ys": rng.integers(0, 5, 5 * NS).astype(np.int64),
           "xt": (rng.normal(0, 1, (5 * NT, 3, 8, 8)) * 1.5 + 0.4).astype(np.float32),
           "yt": np.full(5 * NT, 4, np.int64)}
    for name, a in big.items():
        np.save(os.path.join(work, name + "N.npy"), a)
    net = GraftNet(MODEL)
    disc = []
    width = 12
    for i, u in enumerate(DISC + [1]):
        disc.append(nn.Linear(width, u))
        width = u
    state = net.graft_state()
    for i, m in enumerate(disc):
        state[f"domain_disc.{i}.weight"] = m.weight.detach().numpy().copy()
        state[f"domain_disc.{i}.bias"] = m.bias.detach().numpy().copy()
    st_write(os.path.join(work, "w0.safetensors"), state)
    with open(os.path.join(work, "model.yaml"), "w") as f:
        yaml.safe_dump({"name": "dann-test", "model": MODEL}, f, sort_keys=False)

    failures = 0

    def check(what, err, tol):
        nonlocal failures
        ok = err <= tol
        failures += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {what:44s} rel.err {err:.2e} (tol {tol:.0e})")

    SEED, DROP, STEPS = 3, 0.5, 20

    def run(method, opt, lr, drop=0.0, steps=1, order=False):
        d = "N" if order else "1" if drop else ""
        recipe = {
            "name": f"{method}-step", "model": {"file": "model.yaml"},
            "data": {"train": {"format": "npy", "images": f"xs{d}.npy", "labels": f"ys{d}.npy"},
                     "val_split": 0},
            "adapt": {"method": method, "layer": "fc1", "weight": WEIGHT,
                      "target": {"format": "npy", "images": f"xt{d}.npy",
                                 "labels": "ytN.npy" if order else "yt.npy"}},
            "transfer": {"from": "w0.safetensors"},
            "train": {"epochs": 1 if order else steps, "batch_size": NS, "max_steps": steps, "optimizer": opt,
                      "lr": lr,
                      "eps": 1e-5, "seed": SEED},
        }
        if method == "dann":
            recipe["adapt"].update({"schedule": "constant" if steps == 1 else "ganin",
                                    "discriminator": {"layers": DISC, "dropout": drop}})
        rp = os.path.join(work, f"{method}-{opt}-{drop}-{steps}{d}.yaml")
        with open(rp, "w") as f:
            yaml.safe_dump(recipe, f, sort_keys=False)
        out = os.path.join(work, f"run-{method}-{opt}-{drop}-{steps}{d}")
        r = subprocess.run([graft, "train", rp, "--quiet", "--out", out], capture_output=True,
                           text=True, env=dict(os.environ, GRAFT_TUNE="off"))
        if r.returncode:
            print(r.stdout, r.stderr)
            raise SystemExit(f"graft train failed with exit {r.returncode}")
        return st_read(os.path.join(out, "last.safetensors"))

    # the last two: STEPS steps on the same batches (a one-batch source epoch; the target stream
    # cycles its NT rows) with Ganin's schedule, so the discriminator's optimizer state and lambda
    # over training are checked too (row order within a batch changes no sum's meaning); the
    # last: 3 steps of a 5-batch epoch, each step's rows where graft_rng says Graft takes them
    for method, opt, lr, drop, steps, order in [
            ("dann", "sgd", 0.1, 0.0, 1, False), ("dann", "adam", 1e-3, 0.0, 1, False),
            ("dann", "sgd", 0.1, DROP, 1, False), ("coral", "sgd", 0.1, 0.0, 1, False),
            ("dann", "sgd", 0.1, 0.0, STEPS, False), ("dann", "adam", 1e-3, 0.0, STEPS, False),
            ("dann", "sgd", 0.1, 0.0, 3, True)]:
        what = "one step" if steps == 1 else f"{steps} steps, Ganin's schedule"
        if order:
            what += ", batches in Graft's shuffled order"
        print(f"{method}, {opt} (lr {lr}), {what}, {NS} source + {NT} target rows, weight {WEIGHT}"
              + (f", discriminator dropout {drop}" if drop else ""))
        got = run(method, opt, lr, drop, steps, order)
        tnet = GraftNet(MODEL)
        tnet.load_graft_state(state)
        tdisc = [nn.Linear(m.in_features, m.out_features) for m in disc]
        for i, m in enumerate(tdisc):
            m.weight.data = torch.from_numpy(state[f"domain_disc.{i}.weight"].copy())
            m.bias.data = torch.from_numpy(state[f"domain_disc.{i}.bias"].copy())
        params = list(tnet.parameters()) + (
            [p for m in tdisc for p in m.parameters()] if method == "dann" else [])
        o = (torch.optim.SGD(params, lr=lr) if opt == "sgd"
             else torch.optim.Adam(params, lr=lr, eps=1e-5))
        feats = {}
        fc1 = tnet.mods[tnet.names.index("fc1")]
        fc1.register_forward_hook(lambda m, i, out: feats.__setitem__("f", out))
        for k in range(steps):
            # Graft's lambda before step k of steps: 2 / (1 + exp(-10 k / steps)) - 1
            lam = 1.0 if steps == 1 else 2.0 / (1.0 + math.exp(-10.0 * k / steps)) - 1.0
            tnet.train()
            bs, bys, bt = (rows["xs"], rows["ys"], rows["xt"]) if drop else (xs, ys, xt)
            if order:
                so = epoch_order(5 * NS, SEED, 0)[k * NS:(k + 1) * NS]
                to = epoch_order(5 * NT, data_seed_mix(SEED, 0x7a29e7), 0)[k * NT:(k + 1) * NT]
                bs, bys, bt = big["xs"][so], big["ys"][so], big["xt"][to]
            x = torch.from_numpy(np.concatenate([bs, bt]))
            logits = tnet(x)
            loss = F.cross_entropy(logits[:NS], torch.from_numpy(bys))
            f = feats["f"]
            if method == "dann":
                h = GRL.apply(f, lam)
                for i, m in enumerate(tdisc):
                    h = m(h)
                    if i < len(tdisc) - 1:
                        h = F.relu(h)
                        if drop:
                            # Graft keys the discriminator's masks after the model's layers' keys
                            key = dropout_key(SEED, len(MODEL["layers"]) + i)
                            mask = dropout_mask(key, 0, h.numel(), drop).reshape(h.shape)
                            if i == 0:
                                print(f"  discriminator layer 0 keeps {mask.astype(bool).mean():.2f} "
                                      "of its units")
                            h = h * torch.from_numpy(mask)
                dom = torch.cat([torch.ones(NS), torch.zeros(NT)])
                loss = loss + WEIGHT * F.binary_cross_entropy_with_logits(h.squeeze(1), dom)
            else:
                loss = loss + WEIGHT * coral(f[:NS], f[NS:])
            o.zero_grad()
            loss.backward()
            o.step()
        want = tnet.graft_state()
        if method == "dann":
            for i, m in enumerate(tdisc):
                want[f"domain_disc.{i}.weight"] = m.weight.detach().numpy()
                want[f"domain_disc.{i}.bias"] = m.bias.detach().numpy()
        for k in sorted(want):
            if k not in got:
                print(f"  FAIL {k}: not in Graft's checkpoint")
                failures += 1
                continue
            moved = rel_err(want[k], state[k]) if k in state else 1.0
            check(f"{k} (moved {moved:.1e})", rel_err(got[k], want[k]),
                  2e-4 if opt == "sgd" else 5e-4)
    print("test_dann_torch:", "FAILED" if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
