#!/usr/bin/python3
"""The ViT transfer recipes (configs/recipes/vit-fmnist-*.yaml) in plain PyTorch, the usual loop
without feature caching, for the quality bar and the img/s comparison: pretrain vit-tiny-fmnist on
classes 0-4 (3 epochs, AdamW 1e-3, weight decay 0.05, batch 64; the model's own 10-way head, as
Graft's recipe keeps it), then classes 5-9 from the first 100
training images per class, 30 epochs: scratch, linear probe (frozen through class_select),
fine-tune with layer-wise lr decay 0.8 (lr 5e-4), gradual unfreezing (head; + block 3 from epoch
11; all from epoch 21; lr 5e-4); test on all 5,000 test images of classes 5-9. The network is
tests/torch/oracle.py's GraftNet over the layer list tools/gen_torchvision.py writes.
usage: vit_demo_torch.py [--epochs N] [--pre-epochs N] [--seed S] [--threads N] [--pre-classes N]
                         [--init WEIGHTS] [--json OUT]"""
import argparse
import json
import os
import re
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "torch"))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from oracle import GraftNet, TokenParam, st_read  # noqa: E402
import gen_torchvision  # noqa: E402
from demo_torch import idx, subset, accuracy, epoch  # noqa: E402

torch.set_num_threads(os.cpu_count() or 2)
LWD = [(r"conv_proj|class_token|encoder\.pos_embedding", 0.32768)] + \
      [(rf"encoder\.layers\.encoder_layer_{i}\..*", 0.8 ** (4 - i)) for i in range(4)]


def model(classes):
    layers = gen_torchvision.build("vit-tiny-fmnist")
    layers[-1] = dict(layers[-1], units=classes)
    net = GraftNet({"input": [1, 28, 28], "layers": layers})
    with torch.no_grad():  # torchvision's starts (as Graft's store does): class token 0, positions 0.02
        for name, mod in zip(net.names, net.mods):
            if isinstance(mod, TokenParam):
                mod.p.zero_() if name == "class_token" else mod.p.normal_(0, 0.02)
    return net


def train(net, x, y, epochs, lr, seed, frozen_through=None, lr_mult=(), unfreeze=()):
    """AdamW over the layers after frozen_through (None: all); unfreeze: [(epoch, layer|None)]."""
    g = torch.Generator().manual_seed(seed)

    def optimizer(cut):
        groups, trains = [], cut is None
        for name, mod in zip(net.names, net.mods):
            ps = list(mod.parameters())
            for p in ps:
                p.requires_grad = trains
            if trains and ps:
                mult = 1.0
                for rx, m in lr_mult:
                    if re.fullmatch(rx, name):
                        mult = m
                groups.append({"params": ps, "lr": lr * mult})
            if name == cut:
                trains = True
        return torch.optim.AdamW(groups, lr=lr, weight_decay=0.05)
    opt, seen = optimizer(frozen_through), 0
    t0 = time.time()
    for ep in range(1, epochs + 1):
        for e, cut in unfreeze:
            if e == ep:
                opt = optimizer(cut)
        net.train()
        seen += epoch(net, opt, x, y, g)
    return seen / (time.time() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--pre-epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pre-classes", type=int, default=10,
                    help="the pretrained head's outputs (10: vit-tiny-fmnist's own head, which "
                    "configs/recipes/vit-fmnist-pretrain.yaml keeps for classes 0-4)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                    help="PyTorch's threads (1 on a loaded machine: its OpenMP threads wait on "
                    "each other when the cores are busy)")
    ap.add_argument("--init", help="start pretraining from these weights (safetensors, Graft's "
                    "names: e.g. Graft's own initial state) instead of PyTorch's initialisation")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    xtr, ytr = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
    xte, yte = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
    px, py = subset(xtr, ytr, [0, 1, 2, 3, 4])
    tx, ty = subset(xtr, ytr, [5, 6, 7, 8, 9], 100)
    ex, ey = subset(xte, yte, [5, 6, 7, 8, 9])
    torch.manual_seed(a.seed)
    pre = model(a.pre_classes)
    if a.init:
        st = pre.graft_state()
        st.update({k: torch.as_tensor(v).reshape(st[k].shape) for k, v in st_read(a.init).items()
                   if k in st})
        pre.load_graft_state(st)
    ips = train(pre, px, py, a.pre_epochs, 1e-3, a.seed)
    pre_acc = accuracy(pre, *subset(xte, yte, [0, 1, 2, 3, 4]))
    print(f"pretrain: {ips:.0f} img/s training, classes 0-4 test accuracy {pre_acc:.4f}")
    pre_state = pre.graft_state()
    results = {"pretrain": {"accuracy": pre_acc, "train_img_per_s": ips}}
    variants = [("scratch", None, {}), ("linear-probe", "class_select", {}),
                ("finetune", "none", {"lr": 5e-4, "lr_mult": LWD}),
                ("gradual-unfreeze", "class_select",
                 {"lr": 5e-4, "unfreeze": [(11, "encoder.layers.encoder_layer_2.add_2"), (21, None)]})]
    for label, freeze, kw in variants:
        torch.manual_seed(a.seed + 1)
        net = model(5)
        if freeze is not None:  # every pretrained tensor except the new head
            st = net.graft_state()
            st.update({k: v for k, v in pre_state.items() if not k.startswith("heads.")})
            net.load_graft_state(st)
        t0 = time.time()
        train(net, tx, ty, a.epochs, kw.get("lr", 1e-3), a.seed,
              None if freeze in (None, "none") else freeze, kw.get("lr_mult", ()), kw.get("unfreeze", ()))
        acc = accuracy(net, ex, ey)
        results[label] = {"accuracy": acc, "seconds": time.time() - t0}
        print(f"  {label:18s} test accuracy {acc:.4f}  {time.time() - t0:6.1f} s")
    if a.json:
        json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results},
                  open(a.json, "w"), indent=2)


if __name__ == "__main__":
    main()
