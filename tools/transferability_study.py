#!/usr/bin/python3
"""transferability_study.py — do Graft's transferability estimators predict what fine-tuning
reaches? Pre-trains candidate source models with Graft that differ in what they learned (source
class subsets, source data sizes, epochs, one random init), scores each with `graft rank` on the
target recipe's data (LogME, H-score, NCE, LEEP), fine-tunes each on the target, and reports the
Kendall rank correlation between every estimator's scores and the test accuracies reached.
Writes WORK/study.json and prints a Markdown table (docs/transferability.md has one run).

usage: tools/transferability_study.py [--graft build/graft] [--work runs/tau] [--seeds 1]
Everything is cached in WORK: a rerun only does what is missing."""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from scipy.stats import kendalltau

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
recipes = os.path.join(root, "configs", "recipes")

# name, what it learned, --set values for fmnist-pretrain.yaml (classes 0-4 of Fashion-MNIST,
# 6,000 images each, 2 epochs unless changed). The target is classes 5-9, 100 images each.
CANDIDATES = [
    ("full", "classes 0-4, 30,000 images, 2 epochs", []),
    ("600x5", "classes 0-4, 3,000 images, 2 epochs", ["data.shots=600"]),
    ("100x5-1ep", "classes 0-4, 500 images, 1 epoch", ["data.shots=100", "train.epochs=1"]),
    ("tshirt-trouser", "classes 0-1, 2,000 images, 2 epochs",
     ["data.classes=[0,1]", "data.shots=1000"]),
    ("pullover-dress-coat", "classes 2-4, 3,000 images, 2 epochs",
     ["data.classes=[2,3,4]", "data.shots=1000"]),
    ("slow-lr", "classes 0-4, 5,000 images, 1 epoch at lr 1e-5",
     ["data.shots=1000", "train.epochs=1", "train.lr=1e-5"]),
    ("random", "random initialisation (one step at lr 1e-12)",
     ["data.shots=10", "train.max_steps=1", "train.lr=1e-12"]),
]
# name, recipe, what, default epochs (the fine-tune trains every layer: 10 epochs keep the study
# to minutes on a 2-core machine; the frozen base trains only its head on cached features)
TARGETS = [
    ("fine-tune", "fmnist-finetune.yaml",
     "every layer trains at lr 3e-4 (features for ranking: fc2's input, 128)", 10),
    ("feature extraction", "fmnist-feature-extract.yaml",
     "frozen through flatten, new dense128 head (features: fc1's input, 3136)", 30),
]
ESTIMATORS = ["logme", "hscore", "nce", "leep"]


def run(args, quiet=True):
    t0 = time.time()
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(args)}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r.stdout, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--graft", default=os.path.join(root, "build", "graft"))
    ap.add_argument("--work", default=os.path.join(root, "runs", "tau"))
    ap.add_argument("--seeds", type=int, default=1, help="fine-tuning seeds averaged per pair")
    ap.add_argument("--epochs", type=int, default=0,
                    help="training epochs on the target (default: 10 fine-tune, 30 frozen base)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    env_note = "GRAFT_TUNE=%s" % os.environ.get("GRAFT_TUNE", "(unset)")
    study = {"candidates": [], "targets": [], "note": env_note}
    models = {}
    for name, what, sets in CANDIDATES:
        out = os.path.join(a.work, "source-" + name)
        model = os.path.join(out, "model.safetensors")
        if not os.path.exists(os.path.join(out, "summary.json")):
            args = [a.graft, "train", os.path.join(recipes, "fmnist-pretrain.yaml"), "--out", out,
                    "--quiet"]
            for s in sets:
                args += ["--set", s]
            _, secs = run(args)
            print(f"pretrained {name} in {secs:.0f} s", file=sys.stderr)
        summ = json.load(open(os.path.join(out, "summary.json")))
        models[name] = model
        study["candidates"].append({"name": name, "what": what, "sets": sets,
                                    "source_test_accuracy": summ["test_accuracy"]})
    for tname, recipe, what, default_epochs in TARGETS:
        epochs = a.epochs or default_epochs
        rpath = os.path.join(recipes, recipe)
        args = [a.graft, "rank", rpath, "--json"]
        for name, _, _ in CANDIDATES:
            args += ["--from", models[name]]
        text, secs = run(args)
        ranked = json.loads(text)
        by_file = {c["from"]: c for c in ranked["candidates"]}
        rows = []
        for name, _, _ in CANDIDATES:
            c = by_file[models[name]]
            accs = []
            for seed in range(a.seeds):
                out = os.path.join(a.work, f"target-{recipe[:-5]}-{name}-s{seed}")
                if not os.path.exists(os.path.join(out, "summary.json")):
                    _, s2 = run([a.graft, "train", rpath, "--set", "transfer.from=" + models[name],
                                 "--set", f"train.seed={seed + 1}", "--set",
                                 f"train.epochs={epochs}", "--out", out, "--quiet"])
                    print(f"{tname}: fine-tuned {name} (seed {seed + 1}) in {s2:.0f} s",
                          file=sys.stderr)
                accs.append(json.load(open(os.path.join(out, "summary.json")))["test_accuracy"])
            rows.append({"name": name, "scores": c["scores"], "layer": c["layer"], "dim": c["dim"],
                         "test_accuracy": float(np.mean(accs)), "accuracies": accs,
                         "rank_seconds": sum(c["seconds"].values())})
        taus = {}
        acc = [r["test_accuracy"] for r in rows]
        for est in ESTIMATORS:
            sc = [r["scores"][est] for r in rows]
            if any(v is None for v in sc):
                taus[est] = None
                continue
            # scores equal to rounding (H-score is exactly K-1 whenever the features are wider
            # than the images) are ties, not an order
            sc = [float(f"{v:.9g}") for v in sc]
            t, p = kendalltau(sc, acc)
            taus[est] = {"tau": None if np.isnan(t) else float(t),
                         "p": None if np.isnan(p) else float(p)}
        study["targets"].append({"name": tname, "recipe": recipe, "what": what, "rows": rows,
                                 "epochs": epochs, "seeds": a.seeds,
                                 "kendall": taus, "rank_seconds_total": secs,
                                 "images": ranked["images"]})
    path = os.path.join(a.work, "study.json")
    json.dump(study, open(path, "w"), indent=2)
    # the Markdown tables
    print("| candidate | what it learned | source test acc |")
    print("| --- | --- | --- |")
    for c in study["candidates"]:
        print(f"| {c['name']} | {c['what']} | {c['source_test_accuracy']:.4f} |")
    for t in study["targets"]:
        print(f"\n#### Target: {t['name']} (`{t['recipe']}`: {t['what']}; {t['epochs']} epochs, "
              f"{t['seeds']} seed{'s' if t['seeds'] > 1 else ''})\n")
        print("| candidate | LogME | H-score | NCE | LEEP | test accuracy after training |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for r in t["rows"]:
            s = r["scores"]
            f = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
            print(f"| {r['name']} | {f(s['logme'])} | {f(s['hscore'])} | {f(s['nce'])} | "
                  f"{f(s['leep'])} | {r['test_accuracy']:.4f} |")
        cells = []
        for est in ESTIMATORS:
            k = t["kendall"][est]
            cells.append("n/a (all equal)" if k and k["tau"] is None else "-" if not k
                         else f"{k['tau']:+.3f} (p {k['p']:.2f})")
        print(f"| **Kendall τ** | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | |")
        print(f"\n(`graft rank` over {t['images']} images took {t['rank_seconds_total']:.1f} s "
              f"for all {len(t['rows'])} candidates)")
    print(f"\nwrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
