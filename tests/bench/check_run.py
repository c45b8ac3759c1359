#!/usr/bin/env python3
"""check_run.py RUN.json NDEVICES LAYER,LAYER,... [INPUT_FLOATS [CUT]] — check a `graft bench --json`
run against docs/bench-schema.md: identity, peak, start, memory, step, per-layer timings and rates,
the cost model, and that every number agrees with the others (median within [min, max], flags from
the spread, GFLOP/s from flops and time, images/s from batch and step; launches = profiled events,
family sums = total, the estimate from its formula; with INPUT_FLOATS, the floats of one input
sample, the step's host->device bytes are exactly the batch and its labels). CUT: the recipe's
frozen prefix that graft train caches has that many layers (their conv2d/dense have no backward
then), and feature_cache must hold its step as trained; else feature_cache is null. Every field of
the cost model and of feature_cache must be documented in docs/bench-schema.md. Exit 1 with every
problem listed."""
import json
import math
import os
import re
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
check(run.get("schema_version") == 2, "schema_version is not 2")
input_floats = int(sys.argv[4]) if len(sys.argv) > 4 else None
cut = int(sys.argv[5]) if len(sys.argv) > 5 else 0
doc = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                        "bench-schema.md")).read()
documented = set(re.findall(r"`([a-z_0-9]+)`", doc))
COST_KEYS = ("launches", "clblast_calls", "gemm_calls", "syncs", "h2d_bytes", "d2h_bytes",
             "traffic_bytes", "flops")


def undocumented(obj, where):
    for k in obj:
        check(k in documented, f"{where}: field {k} is not in docs/bench-schema.md")


def cost_model(d, w, cm=None, skip=0):
    """d's cost_model, or cm: feature_cache's, whose step runs only the layers from index skip
    on and uploads row numbers and labels instead of the batch"""
    cached = cm is not None
    cm = cm if cached else d.get("cost_model")
    check(isinstance(cm, dict), f"{w}: no cost_model")
    if not isinstance(cm, dict):
        return
    undocumented(cm, f"{w}: cost_model")
    tot, fams, rows = cm["total"], cm["families"], cm["rows"]
    undocumented(tot, f"{w}: cost_model.total")
    for name, f in fams.items():
        check(name in documented, f"{w}: family {name} not documented")
        undocumented(f, f"{w}: cost_model.families.{name}")
    for k in COST_KEYS:
        s = sum(f[k] for f in fams.values())
        check(abs(s - tot[k]) <= 1e-5 * max(1, abs(tot[k])), f"{w}: families' {k} sum {s} != total {tot[k]}")
        if k in ("launches", "gemm_calls", "syncs", "h2d_bytes", "d2h_bytes"):
            r = sum(x[k] for x in rows)
            check(r == tot[k], f"{w}: rows' {k} sum {r} != total {tot[k]}")
    for r in rows:
        undocumented(r, f"{w}: cost_model.rows")
    fills = sum(x["launches"] for x in rows if x["kernel"] == "fill")
    check(tot["launches"] - fills == cm["profiled_events"],
          f"{w}: {tot['launches']} launches ({fills} fills) but {cm['profiled_events']} profiled events")
    # every layer with kernels launched some under its forward label; the step has at least as
    # many launches as such layers, one GEMM per conv/dense forward, and host syncs are counted
    for li, l in enumerate(d["layers"]):
        fwd = sum(x["launches"] for x in rows if x["label"] == l["name"] + ".fwd")
        if li < skip:
            check(fwd == 0 and not any(x["label"].startswith(l["name"] + ".") for x in rows),
                  f"{w}: {l['name']} is in the cached prefix but its step runs it")
            continue
        check((fwd > 0) == (l["forward"]["events"] > 0), f"{w}: {l['name']}.fwd: {fwd} launches counted, {l['forward']['events']} profiled")
        if l["type"] in ("conv2d", "dense"):
            g = sum(x["gemm_calls"] for x in rows if x["label"] == l["name"] + ".fwd")
            check(g >= 1 or fwd >= 1, f"{w}: {l['name']}.fwd: no launch and no GEMM")
    with_kernels = sum(1 for li, l in enumerate(d["layers"]) if li >= skip and l["forward"]["events"] > 0)
    check(tot["launches"] >= with_kernels, f"{w}: {tot['launches']} launches for {with_kernels} layers")
    check(tot["traffic_bytes"] > 0 and tot["flops"] > 0, f"{w}: no traffic or flops estimate")
    check(fams.get("gemm", {}).get("gemm_calls", 0) == tot["gemm_calls"], f"{w}: GEMM calls outside the gemm family")
    check(tot["syncs"] == sum(x["syncs"] for x in rows if x["family"] == "transfer") +
          sum(x["syncs"] for x in rows if x["kernel"] in ("finish", "wait")), f"{w}: a sync not from a transfer or a wait")
    if cached:  # an int32 row number and label a sample, never the samples
        check(tot["h2d_bytes"] == batch * 8,
              f"{w}: {tot['h2d_bytes']} bytes host->device for a step on cached features, expected {batch * 8}")
    elif input_floats is not None:
        want = batch * (input_floats * 4 + 4)
        check(tot["h2d_bytes"] == want, f"{w}: {tot['h2d_bytes']} bytes host->device, expected {want} (batch + labels)")
    model = run["settings"].get("model")
    est = cm["estimate"]
    check((model is None) == (est is None), f"{w}: estimate {est} for settings.model {model}")
    if est is not None:
        undocumented(est, f"{w}: cost_model.estimate")
        lm = tot["launches"] * model["launch_us"] / 1e3
        mm = tot["traffic_bytes"] / (model["bandwidth_gbs"] * 1e9) * 1e3
        cmp = tot["flops"] / (model["peak_gflops"] * 1e9) * 1e3 if model["peak_gflops"] > 0 else 0
        step = lm + max(mm, cmp)
        check(abs(est["step_ms"] - step) <= 1e-4 * step, f"{w}: estimate step_ms {est['step_ms']} != {step}")
        check(abs(est["images_per_second"] - batch / (step / 1e3)) <= 1e-3 * est["images_per_second"],
              f"{w}: estimate images_per_second")

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
    # the optimizer updates a run of neighbouring trained tensors in one launch, labelled with the
    # run's first layer: the first trained layer has an update, later ones may not
    updated = False
    for li, l in enumerate(d["layers"]):
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
        if l["type"] in ("conv2d", "dense") and li < cut:  # frozen, and nothing before it trains
            check(l["frozen"] and l["backward"] is None and l["update"] is None,
                  f"{lw}: in the cached prefix but trained or differentiated")
        elif l["type"] in ("conv2d", "dense"):
            check(l["forward"]["events"] > 0 and l["forward"]["median_ms"] > 0, f"{lw}: forward not timed")
            check(l["backward"] is not None and l["backward"]["median_ms"] > 0, f"{lw}: backward not timed")
            check(l["forward"]["flops"] > 0 and l["backward"]["flops"] > 0, f"{lw}: no flops")
            check(l["update"] is not None or updated, f"{lw}: no optimizer update timed")
        if l.get("update") is not None:
            updated = True
        # the path a conv2d's kernels take (conv2d_op_describe); null for every other layer
        k = l.get("kernel", "missing")
        if l["type"] == "conv2d":
            check(isinstance(k, str) and re.fullmatch(
                r"(im2col|direct|igemm|rows|wino|wino4)( \(eval wino4\))?", k) is not None,
                f"{lw}: kernel {k!r} is not a conv path")
        else:
            check(k is None, f"{lw}: kernel {k!r} for a {l['type']} layer")
    cost_model(d, w)
    fc = d.get("feature_cache", "missing")
    if cut:
        check(isinstance(fc, dict), f"{w}: feature_cache {fc!r}, expected a cached prefix of {cut} layers")
    else:
        check(fc is None, f"{w}: feature_cache {fc!r} for a recipe without a cached prefix")
    if isinstance(fc, dict):
        undocumented(fc, f"{w}: feature_cache")
        check(fc["cut"] == cut and fc["through"] == layers[cut - 1],
              f"{w}: feature_cache cut {fc['cut']} through {fc['through']}")
        for k, rate in (("feature_pass", "feature_images_per_second"), ("step", "images_per_second")):
            timing(fc[k], f"{w}: feature_cache.{k}")
            want = batch / (fc[k]["median_ms"] / 1e3)
            check(fc[k]["median_ms"] > 0 and abs(fc[rate] - want) <= 1e-3 * want,
                  f"{w}: feature_cache.{rate} {fc[rate]} != {want}")
        cost_model(d, f"{w}: feature_cache", fc.get("cost_model"), cut)
        # the whole network's step runs the prefix as well: the cached one launches fewer kernels
        ct, ft = fc["cost_model"]["total"], d["cost_model"]["total"]
        check(0 < ct["launches"] < ft["launches"] and ct["flops"] < ft["flops"],
              f"{w}: cached step's {ct['launches']} launches / {ct['flops']} flops against the whole step's {ft['launches']} / {ft['flops']}")
    flagged = set(d["flagged"])
    for l in d["layers"]:
        f = l["forward"]["flagged"] or (l["backward"] or {}).get("flagged", False)
        check((l["name"] in flagged) == f, f"{w}: {l['name']} flagged list disagrees")
for p in problems:
    print("check_run:", p)
print(f"check_run: {len(devs)} devices, {len(problems)} problems")
sys.exit(1 if problems else 0)
