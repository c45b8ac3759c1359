#!/usr/bin/env python3
"""check_run.py RUN.json NDEVICES LAYER,LAYER,... — check a `graft bench --json` run against
docs/bench-schema.md: identity, peak, start, memory, step, per-layer timings and rates, and that
every number agrees with the others (median within [min, max], flags from the spread, GFLOP/s
from flops and time, images/s from batch and step). Exit 1 with every problem listed."""
import json
import math
import sys

problems = []


def check(cond, what):
    if not cond:
        problems.append(what)


def timing(t, where):
    for k in ("median_ms", "min_ms", "max_ms", "spread", "flagged"):
        check(k in t, f"{where}: no {k}")
    if problems:
        return
    check(0 <= t["min_ms"] <= t["median_ms"] * (1 + 1e-5) + 1e-9, f"{where}: min above median")
    check(t["median_ms"] <= t["max_ms"] * (1 + 1e-5) + 1e-9, f"{where}: median above max")
    if t["median_ms"] > 0:
        spread = (t["max_ms"] - t["min_ms"]) / t["median_ms"]
        check(abs(spread - t["spread"]) <= 1e-3 * max(1, spread), f"{where}: spread {t['spread']} != {spread}")
        check(t["flagged"] == (t["spread"] > 0.10), f"{where}: flagged {t['flagged']} with spread {t['spread']}")


run = json.load(open(sys.argv[1]))
ndev = int(sys.argv[2])
layers = sys.argv[3].split(",")
check(run.get("schema_version") == 1, "schema_version is not 1")
devs = run.get("devices", [])
check(len(devs) == ndev, f"{len(devs)} devices, expected {ndev}")
names = [d.get("identity", {}).get("device") for d in devs]
check(len(set(names)) == len(names), f"device names repeat: {names}")
batch = run["settings"]["batch"]
for d in devs:
    w = d.get("spec", "?")
    check(d.get("error") is None, f"{w}: error {d.get('error')}")
    idt = d["identity"]
    for k in ("platform", "vendor", "device", "driver", "opencl_version", "type"):
        check(isinstance(idt.get(k), str) and idt[k], f"{w}: identity.{k} empty")
    check(idt.get("compute_units", 0) > 0, f"{w}: no compute units")
    check("clock_mhz" in idt, f"{w}: no clock")
    pk = d["peak"]
    for t in ("float", "float4", "float8", "float16"):
        check(pk["gflops"].get(t, 0) > 0, f"{w}: peak {t} not measured")
    check(abs(pk["best_gflops"] - max(pk["gflops"].values())) < 1e-6 * pk["best_gflops"] + 1e-9, f"{w}: best_gflops is not the best")
    check(pk["copy_gbps"] > 0, f"{w}: no copy bandwidth")
    st = d["start"]
    check(st["cold_seconds"] > 0 and st["warm_seconds"] > 0, f"{w}: start times missing")
    check(st["programs_built"] > 0, f"{w}: cold start built no program (cache not empty?)")
    check(st["programs_built_warm"] == 0, f"{w}: warm start built {st['programs_built_warm']} programs")
    check(st["programs_loaded"] > 0, f"{w}: warm start loaded nothing from the cache")
    m = d["memory_bytes"]
    parts = m["weights"] + m["gradients"] + m["optimizer"] + m["activations"] + m["workspace"]
    check(m["total"] == parts and m["total"] > 0, f"{w}: memory total {m['total']} != {parts}")
    timing(d["step"], f"{w}: step")
    ips = batch / (d["step"]["median_ms"] / 1e3)
    check(abs(d["images_per_second"] - ips) < 1e-3 * ips, f"{w}: images_per_second {d['images_per_second']} != {ips}")
    got = [l["name"] for l in d["layers"]]
    check(got == layers, f"{w}: layers {got}, expected {layers}")
    for l in d["layers"]:
        lw = f"{w}: {l['name']}"
        timing(l["forward"], lw + ".forward")
        for ph in ("forward", "backward"):
            p = l[ph]
            if p is None:
                continue
            if p["median_ms"] > 0:
                gf = p["flops"] / (p["median_ms"] / 1e3) / 1e9
                check(abs(p["gflops"] - gf) <= 1e-3 * gf + 1e-6, f"{lw}.{ph}: gflops {p['gflops']} != {gf}")
                pct = 100 * p["gflops"] / pk["best_gflops"]
                check(abs(p["pct_peak_flops"] - pct) <= 1e-3 * pct + 1e-6, f"{lw}.{ph}: pct_peak_flops")
        if l["type"] in ("conv2d", "dense"):
            check(l["forward"]["events"] > 0 and l["forward"]["median_ms"] > 0, f"{lw}: forward not timed")
            check(l["backward"] is not None and l["backward"]["median_ms"] > 0, f"{lw}: backward not timed")
            check(l["forward"]["flops"] > 0 and l["backward"]["flops"] > 0, f"{lw}: no flops")
            check(l["update"] is not None, f"{lw}: no optimizer update timed")
    flagged = set(d["flagged"])
    for l in d["layers"]:
        f = l["forward"]["flagged"] or (l["backward"] or {}).get("flagged", False)
        check((l["name"] in flagged) == f, f"{w}: {l['name']} flagged list disagrees")
for p in problems:
    print("check_run:", p)
print(f"check_run: {len(devs)} devices, {len(problems)} problems")
sys.exit(1 if problems else 0)
