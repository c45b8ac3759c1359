#!/usr/bin/env python3
"""adapt_compare.py — Graft's domain adaptation runs next to the PyTorch reference
(bench/adapt_torch.py --json): source and target test accuracy per method, the gain over
source-only, and Graft - PyTorch on the target.

usage: adapt_compare.py TORCH.json [--runs DIR]
       adapt_compare.py --seeds-dir OUT
DIR holds the run directories of configs/recipes/fmnist-to-fmnistm-*.yaml (default: runs).
OUT is what bench/adapt_seeds.sh wrote (graft-SEED/ run directories and adabn.txt, torch-SEED.json
per seed): one row per method with the target accuracy of every seed on both sides, their means
and sample standard deviations, and the difference of the means with its standard error."""
import argparse
import glob
import json
import math
import os
import re


def graft_row(runs, method):
    d = os.path.join(runs, f"fmnist-to-fmnistm-{method}")
    p = os.path.join(d, "summary.json")
    if not os.path.exists(p):
        return None
    a = json.load(open(p))["adapt"]
    return {"source_test": a["source_test_accuracy"], "target_test": a["target_test_accuracy"]}


METHODS = ["source-only", "adabn", "coral", "mmd", "dann"]


def graft_seed(d):
    """{method: target test accuracy} of one seed's Graft runs (adabn from `graft adapt`'s output)."""
    out = {}
    for m in METHODS:
        r = graft_row(d, m)
        if r:
            out[m] = r["target_test"]
    try:
        t = open(os.path.join(d, "adabn.txt")).read()
        x = re.search(r"target test accuracy: [0-9.]+ before, ([0-9.]+) after", t)
        if x:
            out["adabn"] = float(x.group(1))
    except OSError:
        pass
    return out


def stats(v):
    n = len(v)
    if not n:
        return None, None
    mu = sum(v) / n
    sd = math.sqrt(sum((x - mu) ** 2 for x in v) / (n - 1)) if n > 1 else None
    return mu, sd


def seeds_table(root):
    g, t = {}, {}
    for d in sorted(glob.glob(os.path.join(root, "graft-*"))):
        g[d.rsplit("-", 1)[1]] = graft_seed(d)
    for p in sorted(glob.glob(os.path.join(root, "torch-*.json"))):
        t[p.rsplit("-", 1)[1][:-5]] = {r["method"]: r["target_test"] for r in json.load(open(p))}
    seeds = sorted(set(g) | set(t), key=lambda x: (len(x), x))
    print(f"seeds: {' '.join(seeds)}; target test accuracy in points (Fashion-M test, 10,000 images)")
    print(f"{'method':12s} | {'Graft per seed':24s} {'mean':>6s} {'sd':>5s} | {'PyTorch per seed':24s} "
          f"{'mean':>6s} {'sd':>5s} | {'diff':>6s} {'se':>5s} | {'paired':>6s} {'sd':>5s} {'n':>2s} | "
          f"{'gain G':>6s} {'gain T':>6s}")
    means = {}
    for m in METHODS:
        gv = [100 * g[s][m] for s in seeds if m in g.get(s, {})]
        tv = [100 * t[s][m] for s in seeds if m in t.get(s, {})]
        (gm, gs), (tm, ts) = stats(gv), stats(tv)
        means[m] = (gm, tm)

        def f(x, w=6, p=1):
            return f"{x:{w}.{p}f}" if x is not None else f"{'-':>{w}s}"

        diff = gm - tm if gm is not None and tm is not None else None
        se = (math.sqrt(gs ** 2 / len(gv) + ts ** 2 / len(tv))
              if gs is not None and ts is not None else None)
        base = means.get("source-only", (None, None))
        gg = gm - base[0] if gm is not None and base[0] is not None and m != "source-only" else None
        tg = tm - base[1] if tm is not None and base[1] is not None and m != "source-only" else None
        # paired: Graft - PyTorch within each seed that has both (the same start with PAIRED=1)
        pv = [100 * (g[s][m] - t[s][m]) for s in seeds
              if m in g.get(s, {}) and m in t.get(s, {})]
        pm, ps = stats(pv)
        print(f"{m:12s} | {' '.join(f'{x:5.1f}' for x in gv):24s} {f(gm)} {f(gs, 5)} | "
              f"{' '.join(f'{x:5.1f}' for x in tv):24s} {f(tm)} {f(ts, 5)} | "
              f"{f(diff, 6)} {f(se, 5)} | {f(pm, 6)} {f(ps, 5)} {len(pv):2d} | {f(gg)} {f(tg)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("torch_json", nargs="?")
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--seeds-dir")
    a = ap.parse_args()
    if a.seeds_dir:
        seeds_table(a.seeds_dir)
        return
    if not a.torch_json:
        ap.error("TORCH.json or --seeds-dir OUT")
    ref = {r["method"]: r for r in json.load(open(a.torch_json))}
    methods = METHODS
    g = {m: graft_row(a.runs, m) for m in methods}
    print(f"{'method':12s} {'graft src':>9s} {'graft tgt':>9s} {'gain':>7s} | {'torch src':>9s} "
          f"{'torch tgt':>9s} {'gain':>7s} | {'tgt diff':>8s}")
    for m in methods:
        gr, tr = g.get(m), ref.get(m)

        def f(r, k):
            return f"{r[k]:9.4f}" if r and r.get(k) is not None else f"{'-':>9s}"

        def gain(r, base):
            if not r or not base:
                return f"{'-':>7s}"
            return f"{100 * (r['target_test'] - base['target_test']):+7.2f}"

        diff = (f"{100 * (gr['target_test'] - tr['target_test']):+8.2f}" if gr and tr else f"{'-':>8s}")
        print(f"{m:12s} {f(gr, 'source_test')} {f(gr, 'target_test')} {gain(gr, g['source-only'])} | "
              f"{f(tr, 'source_test')} {f(tr, 'target_test')} {gain(tr, ref.get('source-only'))} | {diff}")


if __name__ == "__main__":
    main()
