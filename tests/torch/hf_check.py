#!/usr/bin/python3
"""hf_check.py — the Hugging Face ViT layout against `transformers` itself: a randomly initialised
ViTForImageClassification from a small random ViTConfig (nothing downloaded), saved by its own
save_pretrained() (the Hub's layout, in transformers 4 and 5) and loaded as it is by the model tools/gen_torchvision.py's vit_hf() writes for the
same sizes; `graft predict` logits, the same with the layer norms' legacy gamma/beta names, and
the weights after one SGD step of `graft train` against one step of torch.optim.SGD.

usage: PYTHON hf_check.py GRAFT [--workdir DIR]   (PYTHON: a venv with transformers, /work/venv-hf)
Exit 0 when every comparison holds, 1 otherwise, 77 when transformers cannot be imported."""
import argparse
import os
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import transformers
    import yaml
except ImportError as exc:
    print(f"skip: transformers (or torch, numpy, yaml) is not installed for {sys.executable}: {exc}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
from oracle import Checks, run_graft, st_read, st_write, rel_err  # noqa: E402
import gen_torchvision  # noqa: E402

torch.set_num_threads(2)


def hub_state(net, work, tag):
    """The tensors as save_pretrained() writes them: the Hub's layout, which checkpoints on disk
    keep (transformers 5 names its modules vit.layers.N.attention.q_proj... in memory, yet still
    saves vit.encoder.layer.N.attention.attention.query...; 4.x uses the Hub's names in both)."""
    d = os.path.join(work, f"hf-{tag}")
    net.save_pretrained(d, safe_serialization=True)
    return st_read(os.path.join(d, "model.safetensors"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("graft")
    ap.add_argument("--workdir")
    a = ap.parse_args()
    work = a.workdir or tempfile.mkdtemp(prefix="graft-hf-")
    os.makedirs(work, exist_ok=True)
    check = Checks()

    def graft(*cmd):
        run_graft(a.graft, *cmd)

    # a small random configuration: 2 channels of 21x14 in patches of 7 (6 tokens + class token),
    # 3 heads of 8, 2 layers; no dropout, exact GELU, HF's default layer norm eps 1e-12
    cfg = transformers.ViTConfig(hidden_size=24, num_hidden_layers=2, num_attention_heads=3,
                                 intermediate_size=40, image_size=[21, 14], patch_size=7,
                                 num_channels=2, num_labels=5, hidden_act="gelu", qkv_bias=True,
                                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(1234)
    net = transformers.ViTForImageClassification(cfg).eval()
    with torch.no_grad():  # not the zero / identity starts, so every tensor is really used
        for k, v in net.named_parameters():
            v.add_(torch.randn_like(v) * 0.05)
    sd = hub_state(net, work, "w0")
    layers = gen_torchvision.vit_hf(7, 24, 2, 3, 40, 5, cfg.layer_norm_eps)
    model = os.path.join(work, "model.yaml")
    with open(model, "w") as f:
        yaml.safe_dump({"name": "hf-vit", "model": {"input": [2, 21, 14], "layers": layers}}, f,
                       sort_keys=False)
    names = set(gen_torchvision.graft_params(layers, [2, 21, 14]))
    missing, extra = sorted(set(sd) - names), sorted(names - set(sd))
    print(f"  {'ok  ' if not missing and not extra else 'FAIL'} {len(sd)} saved tensors map "
          f"(missing {missing[:3]}, extra {extra[:3]})")
    check.failures += 1 if missing or extra else 0
    w0 = os.path.join(work, "w0.safetensors")
    st_write(w0, sd)
    legacy = os.path.join(work, "w0-gamma-beta.safetensors")
    st_write(legacy, {(k[:-7] + ".gamma" if k.endswith(".weight") and "layernorm" in k else
                       k[:-5] + ".beta" if k.endswith(".bias") and "layernorm" in k else k): v
                      for k, v in sd.items()})
    n = 4
    rng = np.random.default_rng(7)
    x = rng.standard_normal([n, 2, 21, 14]).astype(np.float32)
    y = rng.integers(0, 5, n).astype(np.int64)
    np.save(os.path.join(work, "x.npy"), x)
    np.save(os.path.join(work, "y.npy"), y)
    recipe = os.path.join(work, "recipe.yaml")
    with open(recipe, "w") as f:
        yaml.safe_dump({"name": "hf-check", "model": {"file": model},
                        "data": {"train": {"format": "npy", "images": "x.npy", "labels": "y.npy"},
                                 "val_split": 0, "seed": 1},
                        "train": {"epochs": 1, "batch_size": n, "max_steps": 1}}, f, sort_keys=False)

    with torch.no_grad():
        ref = net(pixel_values=torch.from_numpy(x)).logits.numpy()
    for what, w in (("predict logits", w0), ("predict logits, legacy gamma/beta names", legacy)):
        out = os.path.join(work, "logits.npy")
        graft("predict", recipe, "--weights", w, "--input", os.path.join(work, "x.npy"), "--output", out)
        check(what, rel_err(np.load(out), ref), 1e-5)

    # one SGD step from the legacy-named checkpoint (transfer.from reads gamma/beta too)
    net.train()
    o = torch.optim.SGD(net.parameters(), lr=0.1)
    o.zero_grad()
    F.cross_entropy(net(pixel_values=torch.from_numpy(x)).logits, torch.from_numpy(y)).backward()
    o.step()
    want = hub_state(net, work, "sgd")
    run = os.path.join(work, "run-sgd")
    graft("train", recipe, "--quiet", "--out", run, "--set", "transfer.from=" + legacy,
          "--set", "train.optimizer=sgd", "--set", "train.lr=0.1")
    got = st_read(os.path.join(run, "last.safetensors"))
    worst, wname = 0.0, ""
    for k, v in want.items():
        e = rel_err(got[k], v)
        if e > worst:
            worst, wname = e, k
    check(f"SGD step: weights (worst {wname})", worst, 1e-4)
    # the update itself, relative to the largest update of the step: a tensor whose true gradient
    # is zero (the key bias: softmax ignores a shift of a whole row of scores) must stay put
    scale = max(float(np.max(np.abs(want[k] - sd[k]))) for k in want)
    worst, wname = 0.0, ""
    for k, v in want.items():
        d_ref, d_got = v - sd[k], got[k] - sd[k]
        e = float(np.max(np.abs(d_got - d_ref))) / max(float(np.max(np.abs(d_ref))), 1e-3 * scale)
        if e > worst:
            worst, wname = e, k
    check(f"SGD step: update (worst {wname})", worst, 1e-3)
    print(f"{'PASS' if check.failures == 0 else 'FAIL'}: transformers {transformers.__version__}")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
