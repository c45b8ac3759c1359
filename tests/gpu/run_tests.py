#!/usr/bin/env python3
"""Run the registered meson tests of a carried build without meson (the GPU machine has none):
read build/meson-info/intro-tests.json and run each test's command with its environment, on the
device named by GRAFT_DEVICE. Writes one line per test and a JSON summary (rewritten after every
test, so a run stopped from outside still leaves what it did).
usage: run_tests.py BUILD_DIR OUT.json [--suite S]... [--python PYTHON] [--budget SECONDS]
                    [--max N] [--jobs N]
--budget: start no test after that many seconds, and cut each test's own limit to what is left
(such a test counts as failed, "timeout"; those never started are listed as NOT RUN).
--max: at most N tests (a dry run's short cut).
--jobs: run N tests at once (the GPU machine has 16 cores and kernel builds are per process)."""
import argparse
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("out")
ap.add_argument("--suite", action="append", default=[])
ap.add_argument("--python", default=None, help="interpreter to use for the torch/train tests")
ap.add_argument("--budget", type=float, default=None, help="seconds for all the tests")
ap.add_argument("--max", type=int, default=None, help="run at most this many tests")
ap.add_argument("--jobs", type=int, default=1, help="tests run at once")
a = ap.parse_args()
start = time.time()
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


def summary():
    json.dump({"device": os.environ.get("GRAFT_DEVICE", ""), "results": results},
              open(a.out + ".tmp", "w"), indent=1)
    os.replace(a.out + ".tmp", a.out)


results, counts, lock = [], {"OK": 0, "FAIL": 0, "SKIP": 0}, threading.Lock()


def run_one(t, suites):
    left = a.budget - (time.time() - start) if a.budget is not None else None
    if left is not None and left < 5:
        with lock:
            print(f"NOT RUN {t['name']} (budget spent)")
            results.append({"name": t["name"], "suites": suites, "status": "NOT RUN"})
        return
    cmd = [relocate(c) for c in t["cmd"]]
    if a.python and cmd[0].endswith("python3"):
        cmd[0] = a.python
    env = dict(os.environ)
    env.update({k: relocate(v) for k, v in t.get("env", {}).items()})
    if a.python:  # the shell tests' Python (tests/train: numpy), /usr/bin/python3 by default
        env["GRAFT_TEST_PYTHON"] = a.python
    if "GRAFT_DEVICE" in os.environ:  # the caller's device wins over the build's test env
        env["GRAFT_DEVICE"] = os.environ["GRAFT_DEVICE"]
    env["GRAFT_CACHE_DIR"] = os.environ.get("GRAFT_CACHE_DIR", env.get("GRAFT_CACHE_DIR", "/tmp/graft-cache"))
    t0 = time.time()
    try:
        r = subprocess.run(cmd, env=env, cwd=relocate(t.get("workdir")) or a.build, capture_output=True,
                           text=True, timeout=min(t.get("timeout", 600) * 2,
                                                  left if left is not None else 1e9))
        rc, out = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = -1, f"timeout after {e.timeout} s"
    except OSError as e:  # a program the build machine had and this one lacks (a venv's Python):
        rc, out = 77, f"cannot start here: {e}"  # a skip, as the test itself would report it
    secs = time.time() - t0
    status = "SKIP" if rc == 77 else ("OK" if rc == 0 else "FAIL")
    with lock:
        counts[status] += 1
        print(f"{status:4s} {t['name']:28s} {secs:7.1f} s", flush=True)
        if status == "FAIL":
            print("\n".join(out.splitlines()[-25:]))
        results.append({"name": t["name"], "suites": suites, "status": status, "seconds": secs,
                        "output_tail": out[-4000:]})
        summary()


chosen = []
for t in tests:
    suites = [s.split(":")[-1] for s in t.get("suite", [])]
    if a.suite and not any(s in a.suite for s in suites):
        continue
    if a.max is not None and len(chosen) >= a.max:
        print(f"NOT RUN {t['name']} (--max)")
        results.append({"name": t["name"], "suites": suites, "status": "NOT RUN"})
        continue
    chosen.append((t, suites))
with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
    for f in [pool.submit(run_one, t, suites) for t, suites in chosen]:
        f.result()
passed, failed, skipped = counts["OK"], counts["FAIL"], counts["SKIP"]
summary()
notrun = sum(r["status"] == "NOT RUN" for r in results)
print(f"{passed} passed, {failed} failed, {skipped} skipped, {notrun} not run")
sys.exit(1 if failed else 0)
