#!/usr/bin/env python3
"""Run the registered meson tests of a carried build without meson (the GPU machine has none):
read build/meson-info/intro-tests.json and run each test's command with its environment, on the
device named by GRAFT_DEVICE. Writes one line per test and a JSON summary.
usage: run_tests.py BUILD_DIR OUT.json [--suite S]... [--python PYTHON]"""
import argparse
import json
import os
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("out")
ap.add_argument("--suite", action="append", default=[])
ap.add_argument("--python", default=None, help="interpreter to use for the torch/train tests")
a = ap.parse_args()
tests = json.load(open(os.path.join(a.build, "meson-info", "intro-tests.json")))
# the build was configured elsewhere: map its absolute source and build paths onto this checkout
info = json.load(open(os.path.join(a.build, "meson-info", "meson-info.json")))["directories"]
old_src, old_build = info["source"], info["build"]
new_build = os.path.abspath(a.build)
new_src = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def relocate(v):
    if isinstance(v, str):
        return v.replace(old_build, new_build).replace(old_src, new_src)
    return v
results, passed, failed, skipped = [], 0, 0, 0
for t in tests:
    suites = [s.split(":")[-1] for s in t.get("suite", [])]
    if a.suite and not any(s in a.suite for s in suites):
        continue
    cmd = [relocate(c) for c in t["cmd"]]
    if a.python and cmd[0].endswith("python3"):
        cmd[0] = a.python
    env = dict(os.environ)
    env.update({k: relocate(v) for k, v in t.get("env", {}).items()})
    if "GRAFT_DEVICE" in os.environ:  # the caller's device wins over the build's test env
        env["GRAFT_DEVICE"] = os.environ["GRAFT_DEVICE"]
    env["GRAFT_CACHE_DIR"] = os.environ.get("GRAFT_CACHE_DIR", env.get("GRAFT_CACHE_DIR", "/tmp/graft-cache"))
    t0 = time.time()
    try:
        r = subprocess.run(cmd, env=env, cwd=relocate(t.get("workdir")) or a.build, capture_output=True,
                           text=True, timeout=t.get("timeout", 600) * 2)
        rc, out = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = -1, f"timeout after {e.timeout} s"
    secs = time.time() - t0
    status = "SKIP" if rc == 77 else ("OK" if rc == 0 else "FAIL")
    passed += status == "OK"
    failed += status == "FAIL"
    skipped += status == "SKIP"
    print(f"{status:4s} {t['name']:28s} {secs:7.1f} s", flush=True)
    if status == "FAIL":
        print("\n".join(out.splitlines()[-25:]))
    results.append({"name": t["name"], "suites": suites, "status": status, "seconds": secs,
                    "output_tail": out[-4000:]})
json.dump({"device": os.environ.get("GRAFT_DEVICE", ""), "results": results}, open(a.out, "w"), indent=1)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
