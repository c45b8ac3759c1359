#!/usr/bin/python3
"""Compare two safetensors files tensor by tensor.
usage: compare.py A B [--tol T] [--only PREFIX] [--expect-differ]
Exit 0 when every tensor is within T (max abs difference relative to max |B|; T=0 means bitwise
equal), or, with --expect-differ, when at least one selected tensor differs by more than T."""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
from oracle import st_read  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("a")
ap.add_argument("b")
ap.add_argument("--tol", type=float, default=0.0)
ap.add_argument("--only", default="")
ap.add_argument("--expect-differ", action="store_true")
args = ap.parse_args()
a, b = st_read(args.a), st_read(args.b)
names = sorted(k for k in b if k.startswith(args.only))
if not names or set(k for k in a if k.startswith(args.only)) != set(names):
    sys.exit(f"tensor names differ: {sorted(a)} vs {sorted(b)}")
worst, where = 0.0, ""
for k in names:
    d = float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) if a[k].size else 0.0
    rel = d / max(1e-12, float(np.max(np.abs(b[k])))) if args.tol > 0 else d
    if rel > worst:
        worst, where = rel, k
print(f"largest difference {worst:.3e} in {where or '-'} over {len(names)} tensors")
differ = worst > args.tol
sys.exit(0 if differ == args.expect_differ else 1)
