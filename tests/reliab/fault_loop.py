#!/usr/bin/python3
"""fault_loop.py — the fault-injection loop (issue 20, part 1), for a graft built with
-Dfault_injection=true (best under ASan+UBSan, as tools/test.sh builds it).

For each command (check, plan, train a few steps, eval, predict) and each kind of fault (alloc,
buffer, build, enqueue) it first counts the calls of a clean run (GRAFT_FAULT_REPORT), then runs
the command with GRAFT_FAULT=KIND:N for N = 1, 2, 3 ... up to one past the count (--all) or for a
sample of N (the first three, then evenly spaced; --sample K). Every run must either succeed (a
fault Graft recovers from: a kernel-cache entry not written, say) or fail with exactly one line
`graft: error: ...` and exit 1; in both cases the sanitizers must stay quiet (they exit 86/87 here),
the output folder must hold no partial file (no *.tmp*, *.next, every .safetensors/.npy/.json
whole), and the kernel cache no partial entry.

usage: fault_loop.py GRAFT SOURCE_DIR WORK_DIR (--all | --sample K) [--commands check,plan,...]
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("graft")
ap.add_argument("src")
ap.add_argument("work")
g = ap.add_mutually_exclusive_group(required=True)
g.add_argument("--all", action="store_true")
g.add_argument("--sample", type=int)
ap.add_argument("--commands", default="check,plan,train,eval,predict")
ap.add_argument("--kinds", default="alloc,buffer,build,enqueue")
args = ap.parse_args()

graft = os.path.abspath(args.graft)
src = os.path.abspath(args.src)
work = os.path.abspath(args.work)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
os.chdir(work)
for f in ("base.yaml", "tiny-cnn.yaml"):
    shutil.copy(os.path.join(src, "tests", "train", f), f)
subprocess.run(["/usr/bin/python3", os.path.join(src, "tests", "train", "make_data.py"), "data"],
               check=True, stdout=subprocess.DEVNULL)

env = dict(os.environ)
env["GRAFT_TUNE"] = "off"
env["GRAFT_CACHE_DIR"] = os.path.join(work, "cache")
env["OCL_ICD_VENDORS"] = env.get("OCL_ICD_VENDORS", "/etc/OpenCL/vendors/pocl.icd")
env["ASAN_OPTIONS"] = "detect_leaks=1:detect_odr_violation=0:exitcode=86"
env["LSAN_OPTIONS"] = ("suppressions=" + os.path.join(src, "tests", "lsan.supp") +
                       ":print_suppressions=0:exitcode=86")
env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1:exitcode=87"
env.pop("GRAFT_FAULT", None)

TRAIN = ["train", "base.yaml", "--quiet", "--out", "out/run", "--set", "train.epochs=1",
         "--set", "train.max_steps=3"]
COMMANDS = {
    "check": ["check", "base.yaml"],
    "plan": ["plan", "base.yaml"],
    "train": TRAIN,
    "eval": ["eval", "base.yaml", "--weights", "model.safetensors"],
    "predict": ["predict", "base.yaml", "--weights", "model.safetensors", "--input",
                "data/x_test.npy", "--output", "out/logits.npy"],
}


def run(cmd, fault=None, report=None, cold=False):
    e = dict(env)
    if cold:
        # kernel builds from source: an empty cache each time (a warm one loads binaries, and a
        # failed binary build is recovered by building the source)
        shutil.rmtree("cache-cold", ignore_errors=True)
        os.makedirs("cache-cold")
        e["GRAFT_CACHE_DIR"] = os.path.join(work, "cache-cold")
    if fault:
        e["GRAFT_FAULT"] = fault
    if report:
        e["GRAFT_FAULT_REPORT"] = report
    shutil.rmtree("out", ignore_errors=True)
    os.makedirs("out")
    p = subprocess.run([graft] + cmd, env=e, capture_output=True, timeout=600)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def whole(path):
    """None when the file is complete, else why not."""
    data = open(path, "rb").read()
    if path.endswith(".safetensors"):
        if len(data) < 8:
            return "shorter than a header"
        (n,) = struct.unpack("<Q", data[:8])
        try:
            h = json.loads(data[8:8 + n])
        except ValueError:
            return "header is not JSON"
        end = max([t["data_offsets"][1] for k, t in h.items() if k != "__metadata__"] + [0])
        return None if len(data) == 8 + n + end else f"{len(data)} bytes, header says {8 + n + end}"
    if path.endswith(".npy"):
        import numpy as np
        try:
            np.load(path)
        except Exception as ex:  # noqa: BLE001 - any failure means partial
            return str(ex)
        return None
    if path.endswith(".json") or path.endswith(".jsonl"):
        try:
            for line in (data.decode().splitlines() if path.endswith("l") else [data.decode()]):
                json.loads(line)
        except ValueError as ex:
            return str(ex)
    return None


def partial_files():
    bad = []
    for root in ("out", "cache", "cache-cold"):
        for d, _, files in os.walk(root):
            for f in files:
                p = os.path.join(d, f)
                if ".tmp" in f or f.endswith(".next"):
                    bad.append(p + " (temporary)")
                else:
                    why = whole(p)
                    if why:
                        bad.append(f"{p} ({why})")
    return bad


def result_bytes(name):
    path = {"train": "out/run/last.safetensors", "predict": "out/logits.npy"}.get(name)
    return open(path, "rb").read() if path and os.path.exists(path) else None


# a model for eval and predict, and a warm kernel cache (the clean runs fill it)
rc, out, err = run(TRAIN)
if rc != 0:
    sys.exit(f"the clean training run failed: {err}")
shutil.copy("out/run/model.safetensors", "model.safetensors")

failures = runs = tracer_retries = 0
t0 = time.monotonic()
for name in args.commands.split(","):
    cmd = COMMANDS[name]
    for kind in args.kinds.split(","):
        cold = kind == "build"
        rc, out, err = run(cmd, report="counts.txt", cold=cold)
        if rc != 0:
            print(f"FAIL {name}: the clean run failed: {err}")
            failures += 1
            continue
        counts = dict((k, int(v)) for k, v in (l.split() for l in open("counts.txt")))
        clean_out, clean_file = out, result_bytes(name)
        total = counts.get(kind, 0)
        if args.all:
            ns = list(range(1, total + 2))
        else:
            ns = sorted(set([1, 2, 3] + [1 + (total * i) // args.sample for i in range(args.sample)]
                            + [total + 1]))
            ns = [n for n in ns if n <= total + 1]
        nfail = nrec = 0
        recovered = []
        for n in ns:
            runs += 1
            rc, out, err = run(cmd, fault=f"{kind}:{n}", cold=cold)
            # LeakSanitizer's own tracer sometimes crashes at exit after PoCL built a kernel from
            # source (seen without any fault injected too; docs/reliability.md): that is not a
            # leak report, so the run is repeated, and only a crash every time counts
            for _ in range(3):
                if "LeakSanitizer has encountered a fatal error" not in err:
                    break
                tracer_retries += 1
                rc, out, err = run(cmd, fault=f"{kind}:{n}", cold=cold)
            lines = err.splitlines()
            problems = []
            if rc in (86, 87):
                problems.append("sanitizer report")
            elif rc == 0:
                nrec += 1
                recovered.append(n)
                # a fault Graft recovered from must not change what it printed or wrote
                if name in ("check", "plan", "eval") and out != clean_out:
                    problems.append("recovered, but printed something else:\n" + out)
                if name in ("train", "predict") and result_bytes(name) != clean_file:
                    problems.append("recovered, but wrote different results")
            elif rc != 1:
                problems.append(f"exit {rc}, wanted 1")
            elif len(lines) != 1 or not lines[0].startswith("graft: error: "):
                problems.append(f"{len(lines)} stderr lines, wanted one 'graft: error: ...'")
            else:
                nfail += 1
            problems += partial_files()
            if problems:
                failures += 1
                print(f"FAIL {name} {kind}:{n}: " + "; ".join(problems))
                for l in lines[-40:]:
                    print("    " + l)
        # the loop ends with a run that completes: counts can differ a little between runs (a
        # kernel built in one run is loaded from the cache in the next), so go on past the count
        n = ns[-1]
        while rc != 0 and n < total + 50:
            n += 1
            runs += 1
            rc, out, err = run(cmd, fault=f"{kind}:{n}", cold=cold)
            if rc in (86, 87) or (rc != 0 and (rc != 1 or len(err.splitlines()) != 1)):
                failures += 1
                print(f"FAIL {name} {kind}:{n}: exit {rc}:\n{err[-4000:]}")
        if rc != 0:
            failures += 1
            print(f"FAIL {name} {kind}: no run completed up to N = {n}")
        print(f"{name:8s} {kind:8s} {total:5d} calls, {len(ns):5d} runs: {nfail} clean errors, "
              f"{nrec} recovered {recovered[:12]}", flush=True)
print(f"{runs} runs in {time.monotonic() - t0:.0f} s, {failures} failures, "
      f"{tracer_retries} reruns after a LeakSanitizer tracer crash")
sys.exit(1 if failures else 0)
