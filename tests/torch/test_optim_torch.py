#!/usr/bin/python3
"""Cross-check of the optimizer test's double reference (tests/ops/test_optim.c) against
torch.optim itself: the C test, run with --dump, prints each problem (initial weights, the
gradient of every step, the lr schedule, hyperparameters) with its double reference result and the
OpenCL result; this replays it with torch.optim.SGD/Adam/AdamW in float64 (must equal the
reference to rounding) and float32 (must match the device like the C test's tolerance).
L2-SP is not in torch.optim: it is added to the gradient, alpha * (w - w0), as Graft defines it.

usage: test_optim_torch.py BUILD/tests/ops/test_optim     (exit 77 = skipped)"""
import subprocess
import sys

try:
    import torch
except ImportError:
    print("SKIP: no torch in this python")
    sys.exit(77)

KINDS = {0: "sgd", 1: "momentum", 2: "nesterov", 3: "adam", 4: "adamw"}


def parse(text):
    problems, cur = [], None
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "config":
            kv = dict(zip(f[2::2], f[3::2]))
            cur = {"name": f[1], "kind": int(kv["kind"]), "lrs": [], "g": []}
            for k in ("lr", "momentum", "beta1", "beta2", "eps", "wd", "l2sp"):
                cur[k] = float(kv[k])
            cur["steps"] = int(kv["steps"])
            problems.append(cur)
        elif f[0] == "lr":
            cur["lrs"].append(float(f[2]))
        elif f[0] == "w0":
            cur["w0"] = [float(x) for x in f[1:]]
        elif f[0] == "g":
            cur["g"].append([float(x) for x in f[1:]])
        elif f[0] in ("ref_w", "dev_w"):
            cur[f[0]] = [float(x) for x in f[1:]]
    return problems


def replay(p, dtype):
    w0 = torch.tensor(p["w0"], dtype=dtype)
    w = torch.nn.Parameter(w0.clone())
    kind = KINDS[p["kind"]]
    if kind in ("sgd", "momentum", "nesterov"):
        opt = torch.optim.SGD([w], lr=p["lr"], momentum=0.0 if kind == "sgd" else p["momentum"],
                              nesterov=kind == "nesterov", weight_decay=p["wd"])
    elif kind == "adam":
        opt = torch.optim.Adam([w], lr=p["lr"], betas=(p["beta1"], p["beta2"]), eps=p["eps"],
                               weight_decay=p["wd"])
    else:
        opt = torch.optim.AdamW([w], lr=p["lr"], betas=(p["beta1"], p["beta2"]), eps=p["eps"],
                                weight_decay=p["wd"])
    for t in range(p["steps"]):
        for group in opt.param_groups:
            group["lr"] = p["lrs"][t]
        g = torch.tensor(p["g"][t], dtype=dtype)
        if p["l2sp"] != 0:
            g = g + p["l2sp"] * (w.detach() - w0)
        w.grad = g
        opt.step()
    return w.detach().to(torch.float64)


def rel_delta(got, ref, w0):
    """max |got - ref| over max |ref - w0| (floored at 5% of max |ref|), as the C test does."""
    d = (got - ref).abs().max().item()
    return d / max((ref - w0).abs().max().item(), 0.05 * ref.abs().max().item())


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    run = subprocess.run([sys.argv[1], "--dump"], capture_output=True, text=True)
    if run.returncode == 77:
        print("SKIP:", run.stdout.strip())
        return 77
    if run.returncode != 0:
        print(run.stdout[-2000:], run.stderr[-2000:])
        return 1
    problems = parse(run.stdout)
    bad = 0
    for p in problems:
        w0 = torch.tensor(p["w0"], dtype=torch.float64)
        ref = torch.tensor(p["ref_w"], dtype=torch.float64)
        dev = torch.tensor(p["dev_w"], dtype=torch.float64)
        t64 = replay(p, torch.float64)
        t32 = replay(p, torch.float32)
        e_ref = rel_delta(ref, t64, w0)
        e_dev = rel_delta(dev, t32, w0)
        ok = e_ref < 1e-12 and e_dev < 1e-4
        bad += not ok
        print(f"{p['name']:<18} reference vs torch float64 {e_ref:.2e} (tol 1e-12)   "
              f"device vs torch float32 {e_dev:.2e} (tol 1e-4)  {'ok' if ok else 'FAIL'}")
    if len(problems) < 10:
        print(f"only {len(problems)} problems in the dump")
        bad += 1
    print(f"optim vs torch {torch.__version__}: {len(problems)} problems, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
