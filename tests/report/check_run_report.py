#!/usr/bin/python3
"""check_run_report.py PAGE.html RUN_DIR... — a training report page against the run files it was
drawn from: well-formed (an XML parser reads it), self-contained (nothing loads: no <script>,
<link>, <img>, src/href, url(), no address outside xmlns), one polyline per curve and run (loss and
accuracy: training + validation; learning rate), the legend names each run; for a single run also
the per-class accuracy bars, the confusion matrix cell by cell, the layout per phase and timing."""
import json
import re
import sys
import xml.etree.ElementTree as ET

page, dirs = sys.argv[1], sys.argv[2:]
raw = open(page, encoding="utf-8").read()
problems = []
root = ET.fromstring(raw.replace("<!DOCTYPE html>", "", 1))


def local(tag):
    return tag.rsplit("}", 1)[-1]


def texts(e):
    return "".join(e.itertext()).strip()


tags = [local(e.tag) for e in root.iter()]
for bad in ("link", "script", "img", "iframe", "object", "embed", "image", "use", "base"):
    if bad in tags:
        problems.append(f"has <{bad}>")
for e in root.iter():
    for k in e.attrib:
        if local(k) in ("src", "href", "srcset", "data", "action", "background"):
            problems.append(f"<{local(e.tag)}> has {local(k)}")
if re.search(r"url\s*\(|@import", raw):
    problems.append("CSS loads a resource")
if re.search(r"(https?|ftp):", re.sub(r"xmlns(:\w+)?=(\"[^\"]*\"|'[^']*')", "", raw)):
    problems.append("an address appears in the page")

runs = []
for d in dirs:
    metrics = [json.loads(x) for x in open(f"{d}/metrics.jsonl")]
    summary = json.load(open(f"{d}/summary.json"))
    runs.append((d, metrics, summary))

figs = [f for f in root.iter() if local(f.tag) == "figure"]
charts = {}
for f in figs:
    svg = [e for e in f.iter() if local(e.tag) == "svg"][0]
    title = [e for e in svg.iter() if local(e.tag) == "title"][0].text
    charts[title] = f
for title in ("Loss per epoch", "Accuracy per epoch", "Learning rate (start and end of each epoch)"):
    if title not in charts:
        problems.append(f"no chart {title!r}")
        continue
    f = charts[title]
    lines = [e for e in f.iter() if local(e.tag) == "polyline"]
    want = len(runs) * (1 if title.startswith("Learning") else 2)
    # a curve with gaps (no validation split) may be several polylines; here every run has one
    if len(lines) != want:
        problems.append(f"{title}: {len(lines)} curves, expected {want}")
    pts = [len(e.attrib["points"].split()) for e in lines]
    epochs = [len(m) for _, m, _ in runs for _ in range(1 if title.startswith("Learning") else 2)]
    if title.startswith("Learning"):
        epochs = [2 * n for n in epochs]
    if sorted(pts) != sorted(epochs):
        problems.append(f"{title}: points per curve {pts}, expected {epochs}")
    cap = texts([e for e in f.iter() if local(e.tag) == "figcaption"][0])
    if len(runs) > 1 and not all(d in cap for d, _, _ in runs):
        problems.append(f"{title}: the legend does not name every run: {cap!r}")
    marks = [e for e in f.iter() if local(e.tag) == "line" and e.attrib.get("class") == "mark"]
    nunf = sum(len(s.get("unfreeze_epochs", [])) for _, _, s in runs)
    if len(marks) != nunf:
        problems.append(f"{title}: {len(marks)} unfreeze marks, expected {nunf}")

alltext = texts(root)
if len(runs) == 1:
    d, metrics, s = runs[0]
    tables = [t for t in root.iter() if local(t.tag) == "table"]
    cm = [t for t in tables if t.attrib.get("class") == "cm"]
    if not cm:
        problems.append("no confusion matrix")
    else:
        rows = [[texts(c) for c in r] for r in cm[0] if local(r.tag) == "tr"][1:]
        got = [[int(x) for x in r[1:-1]] for r in rows]
        if got != s["confusion"]:
            problems.append("confusion matrix differs from summary.json")
        n = sum(map(sum, got))
        acc = sum(got[i][i] for i in range(len(got))) / n
        if abs(acc - s["test_accuracy"]) > 1e-9:
            problems.append(f"confusion diagonal {acc} != test accuracy {s['test_accuracy']}")
        for i, r in enumerate(got):
            if s["per_class_accuracy"][i] is not None and abs(r[i] / sum(r) - s["per_class_accuracy"][i]) > 1e-9:
                problems.append(f"per-class accuracy of class {i}")
    bars = [f for t, f in charts.items() if t == "Per-class test accuracy"]
    if not bars or len([e for e in bars[0].iter() if local(e.tag) == "rect"]) != len(s["per_class_accuracy"]):
        problems.append("per-class accuracy bars")
    for ph in s["phases"]:
        if f"from epoch {ph['from_epoch']}" not in alltext:
            problems.append(f"layout: no column for the phase from epoch {ph['from_epoch']}")
    for layer in s["layers"]:
        if layer["name"] not in alltext:
            problems.append(f"layout: no row for {layer['name']}")
    for part in ("loading data", "compiling", "training epochs", "test evaluation"):
        if part not in alltext:
            problems.append(f"timing: no {part!r}")
else:
    for d, _, s in runs:
        if d not in alltext:
            problems.append(f"run {d} not in the runs table")
for p in problems:
    print("check_run_report:", p)
print(f"check_run_report: {page}: {len(figs)} figures, {len(problems)} problems")
sys.exit(1 if problems else 0)
