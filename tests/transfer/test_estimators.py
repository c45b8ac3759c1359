"""test_estimators.py — Graft's LogME, H-score, NCE and LEEP (through est_cli) against the numpy
float64 references of reference.py on random features (narrow and wide, with and without
structure), to 1e-6 relative; and the eigensolver against numpy.linalg.eigh.
usage: test_estimators.py EST_CLI WORKDIR"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

est, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(7)
failures = 0


def close(name, got, want, tol=1e-6):
    global failures
    rel = abs(got - want) / max(abs(want), 1e-300)
    ok = rel <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: graft {got:.12g} numpy {want:.12g} rel {rel:.2e}")
    if not ok:
        failures += 1


def run(f, y, k, logits=None):
    np.save(os.path.join(work, "f.npy"), f)
    np.save(os.path.join(work, "y.npy"), y.astype(np.int64))
    args = [est, os.path.join(work, "f.npy"), os.path.join(work, "y.npy"), str(k)]
    if logits is not None:
        np.save(os.path.join(work, "g.npy"), logits.astype(np.float32))
        args.append(os.path.join(work, "g.npy"))
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


# the eigensolver
for n in (1, 2, 7, 40):
    a = rng.normal(size=(n, n))
    a = a + a.T
    if n == 40:
        a[:, 3] = a[:, 5] = 0  # repeated zero eigenvalues
        a[3, :] = a[5, :] = 0
    np.save(os.path.join(work, "a.npy"), a)
    out = json.loads(subprocess.run([est, "--eig", os.path.join(work, "a.npy")], check=True,
                                    capture_output=True, text=True).stdout)
    w, v = np.array(out["w"]), np.array(out["v"]).reshape(n, n)
    wr = np.linalg.eigvalsh(a)
    err = np.abs(w - wr).max() / max(np.abs(wr).max(), 1)
    recon = np.abs(v.T @ np.diag(w) @ v - a).max() / max(np.abs(a).max(), 1)
    orth = np.abs(v @ v.T - np.eye(n)).max()
    ok = err < 1e-12 and recon < 1e-12 and orth < 1e-12
    print(f"{'ok  ' if ok else 'FAIL'} eig n={n}: eigenvalues {err:.1e}, VᵀΛV−A {recon:.1e}, "
          f"orthogonality {orth:.1e}")
    failures += not ok

cases = [
    ("narrow gaussian", 300, 24, 5),
    ("wide gaussian", 60, 150, 3),
    ("square-ish", 90, 80, 4),
]
for name, n, d, k in cases:
    y = rng.integers(0, k, size=n)
    y[:k] = np.arange(k)
    centers = rng.normal(size=(k, d)) * 0.8
    f = centers[y] + rng.normal(size=(n, d))
    logits = rng.normal(size=(n, 7)) + 2.0 * np.eye(7)[(y * 2) % 7]
    got = run(f, y, k, logits)
    close(f"{name} n={n} d={d} LogME", got["logme"], ref.logme(f, y, k))
    close(f"{name} n={n} d={d} LogME: the SVD reference agrees with the full-matrix one",
          ref.logme_svd(f, y, k), ref.logme_full(f, y, k), 1e-9)
    close(f"{name} n={n} d={d} H-score", got["hscore"], ref.hscore(f, y, k))
    close(f"{name} NCE", got["nce"], ref.nce(logits.astype(np.float32), y, k))
    close(f"{name} LEEP", got["leep"], ref.leep(logits.astype(np.float32), y, k))

# non-negative, sparse (ReLU-like) features with dead units: rank-deficient covariance
n, d, k = 120, 40, 4
y = rng.integers(0, k, size=n)
f = np.maximum(rng.normal(size=(n, d)) + (y[:, None] == (np.arange(d) % k)), 0)
f[:, :5] = 0
got = run(f, y, k)
close("relu features with dead units LogME", got["logme"], ref.logme(f, y, k))
close("relu features with dead units H-score", got["hscore"], ref.hscore(f, y, k))

# bad input: a label outside [0, K) is an error, not a crash
np.save(os.path.join(work, "f.npy"), np.zeros((4, 3)))
np.save(os.path.join(work, "y.npy"), np.array([0, 1, 2, 9]))
r = subprocess.run([est, os.path.join(work, "f.npy"), os.path.join(work, "y.npy"), "3"],
                   capture_output=True, text=True)
ok = r.returncode == 1 and "outside [0, 3)" in r.stderr
print(f"{'ok  ' if ok else 'FAIL'} bad label: {r.stderr.strip()}")
failures += not ok
sys.exit(1 if failures else 0)
