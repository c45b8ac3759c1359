#!/usr/bin/env python3
"""vit_compare.py — the ViT transfer demo over seeds (what bench/vit_seeds.sh wrote to OUT:
graft-SEED/<run>/summary.json and torch-SEED.json): per row the test accuracy of every seed on
both sides, their means and sample standard deviations, and Graft - PyTorch with its standard
error. usage: vit_compare.py OUT [--json FILE]"""
import argparse
import glob
import json
import math
import os
import re

from adapt_compare import stats

ROWS = ["pretrain", "scratch", "linear-probe", "finetune", "gradual-unfreeze"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--json")
    a = ap.parse_args()
    g, t = {r: [] for r in ROWS}, {r: [] for r in ROWS}
    seeds = []
    for d in sorted(glob.glob(os.path.join(a.out, "graft-*"))):
        s = re.sub(r".*graft-", "", d)
        tp = os.path.join(a.out, f"torch-{s}.json")
        if not os.path.exists(tp):
            continue
        runs = {r: os.path.join(d, r, "summary.json") for r in ROWS}
        if not all(os.path.exists(p) for p in runs.values()):
            continue
        seeds.append(s)
        tr = json.load(open(tp))["results"]
        for r in ROWS:
            g[r].append(json.load(open(runs[r]))["test_accuracy"])
            t[r].append(tr[r]["accuracy"])
    print(f"seeds with both sides complete: {', '.join(seeds) or 'none'}")
    print(f"{'run':18s} {'Graft mean (sd)':>17s} {'PyTorch mean (sd)':>19s} {'diff':>7s} {'se':>6s}"
          "  per seed Graft / PyTorch")
    table = {}
    for r in ROWS:
        (gm, gs), (tm, ts) = stats(g[r]), stats(t[r])
        if gm is None:
            continue
        n = len(g[r])
        se = math.sqrt(((gs or 0) ** 2 + (ts or 0) ** 2) / n) if n > 1 else None
        per = "  ".join(f"{x:.4f}/{y:.4f}" for x, y in zip(g[r], t[r]))
        sd = lambda v: f"({v:.4f})" if v is not None else "(-)"  # noqa: E731
        print(f"{r:18s} {gm:8.4f} {sd(gs):>8s} {tm:10.4f} {sd(ts):>8s} {gm - tm:+7.4f} "
              f"{se if se is not None else float('nan'):6.4f}  {per}")
        table[r] = {"graft": g[r], "torch": t[r], "diff": gm - tm, "se": se}
    if a.json:
        json.dump({"seeds": seeds, "rows": table}, open(a.json, "w"), indent=2)


if __name__ == "__main__":
    main()
