#!/usr/bin/env python3
"""adapt_compare.py — Graft's domain adaptation runs next to the PyTorch reference
(bench/adapt_torch.py --json): source and target test accuracy per method, the gain over
source-only, and Graft - PyTorch on the target.

usage: adapt_compare.py TORCH.json [--runs DIR]
DIR holds the run directories of configs/recipes/fmnist-to-fmnistm-*.yaml (default: runs)."""
import argparse
import json
import os


def graft_row(runs, method):
    d = os.path.join(runs, f"fmnist-to-fmnistm-{method}")
    p = os.path.join(d, "summary.json")
    if not os.path.exists(p):
        return None
    a = json.load(open(p))["adapt"]
    return {"source_test": a["source_test_accuracy"], "target_test": a["target_test_accuracy"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("torch_json")
    ap.add_argument("--runs", default="runs")
    a = ap.parse_args()
    ref = {r["method"]: r for r in json.load(open(a.torch_json))}
    methods = ["source-only", "adabn", "coral", "mmd", "dann"]
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
