#!/usr/bin/python3
"""run_bad.py GRAFT DIR TABLE — the bad-recipe table: every row must make `graft check` exit 2
quickly, print nothing on stdout, report the expected FILE:LINE:COL with the message fragment,
print only well-formed diagnostics, and leave DIR exactly as it was (nothing written)."""
import os, re, shlex, subprocess, sys, time

graft, folder, table = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]

def snapshot():
    out = {}
    for root, dirs, files in os.walk(folder):
        for f in files + dirs:
            p = os.path.join(root, f)
            st = os.lstat(p)
            out[p] = (st.st_size, st.st_mtime_ns)
    return out

diag = re.compile(r"^(.+:\d+:\d+|[^:]+): error: .+$")
rows, failures = 0, 0
before = snapshot()
for n, line in enumerate(open(table), 1):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    parts = [p.strip() for p in line.split(" | ")]
    if len(parts) != 3:
        print(f"{table}:{n}: malformed row"); failures += 1; continue
    args, pos, frag = shlex.split(parts[0]), parts[1], parts[2]
    rows += 1
    t0 = time.monotonic()
    p = subprocess.run([graft, "check"] + args, cwd=folder, capture_output=True, timeout=20)
    dt = time.monotonic() - t0
    err = p.stderr.decode(errors="replace").splitlines()
    problems = []
    if p.returncode != 2: problems.append(f"exit {p.returncode}, wanted 2")
    if p.stdout: problems.append(f"stdout not empty: {p.stdout[:200]!r}")
    if not err: problems.append("no diagnostics")
    for e in err:
        if not diag.match(e): problems.append(f"malformed diagnostic: {e}")
    if not any(e.startswith(pos + ": error: ") and frag in e for e in err):
        problems.append(f"expected '{pos}: error: ...{frag}...'")
    if dt > 5: problems.append(f"took {dt:.1f} s")
    if problems:
        failures += 1
        print(f"FAIL {parts[0]}: " + "; ".join(problems))
        for e in err: print("   ", e)
    else:
        print(f"ok   {parts[0]}  ->  {err[0] if len(err) == 1 else f'{len(err)} errors'}")
if snapshot() != before:
    print("FAIL: the folder changed: something was written"); failures += 1
print(f"{rows} bad recipes, {failures} failed")
if rows < 40:
    print("FAIL: the table must hold at least 40 cases"); failures += 1
sys.exit(1 if failures else 0)
