#!/usr/bin/python3
"""tv_check.py — a configs/models torchvision config against torchvision itself (randomly
initialised, nothing downloaded): the parameter names and counts `graft plan --json` reports, the
torchvision state_dict saved as safetensors and loaded as it is, and `graft predict` logits
against the torchvision model in eval mode (BN running statistics set to non-trivial values).
With --train also one SGD step of a frozen-backbone recipe (new fc head) and of a full fine-tune.

usage: tv_check.py GRAFT NAME [--size S] [--batch N] [--tol T] [--train] [--workdir DIR]
Exit 0 when all comparisons hold, 1 otherwise, 77 without torchvision."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torchvision
    import yaml
except ImportError as exc:
    print(f"skip: {exc}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "torch"))
from oracle import st_read, st_write, rel_err  # noqa: E402  (the oracle's safetensors by hand)

torch.set_num_threads(2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("graft")
    ap.add_argument("name")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--tol", type=float, default=1e-4, help="logits: relative error allowed")
    ap.add_argument("--workdir")
    a = ap.parse_args()
    work = a.workdir or tempfile.mkdtemp(prefix="graft-tv-")
    os.makedirs(work, exist_ok=True)
    model_path = os.path.join(ROOT, "configs", "models", a.name + ".yaml")
    failures = 0

    def check(what, ok, detail=""):
        nonlocal failures
        failures += 0 if ok else 1
        print(f"  {'ok  ' if ok else 'FAIL'} {what} {detail}")

    def graft(*cmd):
        r = subprocess.run([a.graft, *cmd], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout, r.stderr)
            raise SystemExit(f"graft {cmd[0]} failed with exit {r.returncode}")
        return r.stdout

    torch.manual_seed(1234)
    net = getattr(torchvision.models, a.name)(weights=None)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        if a.name.startswith("vit"):  # torchvision starts the head and class token at zero
            net.heads.head.weight.normal_(0, 0.02)
            net.heads.head.bias.uniform_(-0.1, 0.1)
            net.class_token.normal_(0, 0.02)
    sd = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()
          if not k.endswith("num_batches_tracked")}

    # 1. names: every state_dict tensor is a Graft parameter, and the counts agree layer by layer
    plan = json.loads(graft("plan", model_path, "--set", f"model.input=[3, {a.size}, {a.size}]", "--json"))
    names = {t for L in plan["layers"] for t in L["init"] + L["load"]}
    check("parameter names", names == set(sd),
          f"({len(sd)} tensors; missing {sorted(set(sd) - names)[:3]}, extra {sorted(names - set(sd))[:3]})")
    want_total = sum(int(np.prod(v.shape)) for k, v in sd.items() if "running_" not in k)
    check("parameter count", plan["params_total"] == want_total,
          f"(Graft {plan['params_total']}, torchvision {want_total})")

    # 2. logits in eval mode, from the state_dict as it is
    w0 = os.path.join(work, "w0.safetensors")
    st_write(w0, sd)
    rng = np.random.default_rng(7)
    x = rng.standard_normal([a.batch, 3, a.size, a.size]).astype(np.float32)
    y = rng.integers(0, 1000, a.batch).astype(np.int64)
    np.save(os.path.join(work, "x.npy"), x)
    np.save(os.path.join(work, "y.npy"), y)
    recipe = os.path.join(work, "recipe.yaml")
    with open(recipe, "w") as f:
        f.write(f"""name: tv-{a.name}
model: {{file: {model_path}}}
data:
  train: {{format: npy, images: x.npy, labels: y.npy}}
  val_split: 0
  seed: 1
train: {{epochs: 1, batch_size: {a.batch}, max_steps: 1}}
""")
    size = ["--set", f"model.input=[3, {a.size}, {a.size}]"]
    net.eval()
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    out = os.path.join(work, "logits.npy")
    graft("predict", recipe, "--weights", w0, "--input", os.path.join(work, "x.npy"), "--output", out, *size)
    got = np.load(out)
    err = rel_err(got, ref)
    check("predict logits", got.shape == ref.shape and err <= a.tol, f"rel.err {err:.2e} (tol {a.tol:.0e})")

    if a.train:
        # 3. one SGD step: (a) frozen backbone (BN in eval mode) and the final layer trained;
        # (b) everything trained with BN in train mode (batch statistics). Dropout set to 0.
        last = "fc" if a.name.startswith("resnet") else "classifier.1"
        drop = []
        if a.name == "mobilenet_v2":
            net.classifier[0].p = 0.0
            names = [L["name"] for L in yaml.safe_load(open(model_path))["model"]["layers"]]
            drop = ["--set", f"model.layers.{names.index('classifier.0')}.rate=0"]
        for mode in ("frozen", "finetune"):
            net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
            params = getattr(net, last.split(".")[0])
            params = params.parameters() if mode == "frozen" else net.parameters()
            if mode == "frozen":
                net.eval()
            else:
                net.train()
            o = torch.optim.SGD(list(params), lr=0.1)
            o.zero_grad()
            F.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
            o.step()
            want = {k: v.detach().numpy() for k, v in net.state_dict().items()
                    if not k.endswith("num_batches_tracked")}
            run = os.path.join(work, "run-" + mode)
            extra = ["--set", "transfer.freeze=" + ("avgpool" if mode == "frozen" else "0")]
            if mode == "finetune":
                extra += ["--set", "transfer.bn=train"]
            graft("train", recipe, "--quiet", "--out", run, "--set", "transfer.from=" + w0,
                  "--set", "train.optimizer=sgd", "--set", "train.lr=0.1", *size, *extra, *drop)
            got = st_read(os.path.join(run, "last.safetensors"))
            worst, wname = 0.0, ""
            for k, v in want.items():
                if "running_" in k:
                    continue
                e = rel_err(got[k], v)
                if e > worst:
                    worst, wname = e, k
            check(f"{mode} SGD step: weights", worst <= 1e-3, f"worst rel.err {worst:.2e} at {wname} (tol 1e-3)")
            # the update itself, so a step that did nothing cannot pass on small lr alone
            scale = max(float(np.max(np.abs(want[k] - sd[k]))) for k in want)
            worst, wname = 0.0, ""
            for k, v in want.items():
                if "running_" in k:
                    continue
                d_ref, d_got = v - sd[k], got[k] - sd[k]
                e = float(np.max(np.abs(d_got - d_ref))) / max(float(np.max(np.abs(d_ref))), 1e-3 * scale)
                if e > worst:
                    worst, wname = e, k
            check(f"{mode} SGD step: update", worst <= 1e-2, f"worst rel.err {worst:.2e} at {wname} (tol 1e-2)")
    print(f"{'PASS' if failures == 0 else 'FAIL'}: {a.name} at 3x{a.size}x{a.size}, batch {a.batch}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
