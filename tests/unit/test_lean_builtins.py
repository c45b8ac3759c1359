#!/usr/bin/env python3
"""test_lean_builtins.py — cl/builtins_lean.cl against opencl-c.h, the header PoCL would include in
its place (PoCL's copy, else the one of the clang found). For every function the lean header
declares, its overloads must be exactly the header's (OpenCL C 1.2, fp64 on), half excepted: a
missing one could make a call convert its arguments and pick another overload silently (a double
sqrt computed in float, say), an extra one could pick a function the driver's library lacks. And
every builtin a kernel in cl/ calls must be declared. Exit 77 (skip) without clang.

usage: test_lean_builtins.py SOURCE_DIR"""
import glob
import os
import re
import shutil
import subprocess
import sys

src_dir = sys.argv[1]
clang = shutil.which("clang") or shutil.which("clang-15")
if not clang:
    print("SKIP: no clang to preprocess opencl-c.h with")
    sys.exit(77)
# PoCL's own copy of the header (what it includes), else the one of this clang
inc = "/usr/share/pocl/include"
if not os.path.exists(os.path.join(inc, "opencl-c.h")):
    res = subprocess.run([clang, "-print-resource-dir"], capture_output=True, text=True)
    inc = os.path.join(res.stdout.strip(), "include")
full_h, base_h = (os.path.join(inc, f) for f in ("opencl-c.h", "opencl-c-base.h"))
if not os.path.exists(full_h):
    print(f"SKIP: {full_h} is missing")
    sys.exit(77)
CC1 = [clang, "-cc1", "-E", "-P", "-x", "cl", "-cl-std=CL1.2", "-triple",
       "x86_64-unknown-linux-gnu", "-cl-ext=+cl_khr_fp64", "-include", base_h]


def preprocess(path, extra=()):
    r = subprocess.run(CC1 + list(extra) + [path], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"preprocessing {path} failed:\n{r.stderr}")
    return r.stdout


ATTR = re.compile(r"__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)")
TYPES = set("""void bool char uchar short ushort int uint long ulong float double half size_t
    ptrdiff_t intptr_t uintptr_t cl_mem_fence_flags const volatile restrict __global __local
    __constant __private global local constant private unsigned signed event_t""".split())


def is_type(tok):
    return tok in TYPES or re.fullmatch(r"(u?(char|short|int|long)|float|double|half)(2|3|4|8|16)",
                                        tok) is not None


def param(p):
    """a parameter's type, without its name: 'const __global float *p' -> 'const __global float*'"""
    toks = re.findall(r"\w+|\*", p)
    if len(toks) > 1 and toks[-1] != "*" and not is_type(toks[-1]):
        toks = toks[:-1]
    return " ".join(toks).replace(" *", "*")


def declarations(text):
    """{name: {(return, (param types...), attributes), ...}} of the function declarations in text"""
    out = {}
    text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))  # pragmas
    for decl in text.split(";"):
        attrs = frozenset(a.strip() for m in ATTR.finditer(decl)
                          for a in m.group(0)[15:-2].split(","))
        decl = " ".join(ATTR.sub(" ", decl).split())
        m = re.fullmatch(r"(?:.*[}]\s*)?([\w\s\*]+?)\s*\b(\w+)\s*\(([^()]*)\)", decl)
        if not m:
            continue
        ret, name, args = m.groups()
        if name in TYPES or ret.strip() in ("", "typedef") or "typedef" in ret.split():
            continue
        params = () if args.strip() in ("", "void") else tuple(param(a) for a in args.split(","))
        out.setdefault(name, set()).add((" ".join(ret.split()), params, attrs))
    return out


full = declarations(preprocess(full_h))
lean = declarations(preprocess(os.path.join(src_dir, "cl", "builtins_lean.cl")))
fails = 0


def fail(msg):
    global fails
    fails += 1
    if fails <= 40:
        print("FAIL:", msg)


for name, overloads in sorted(lean.items()):
    if name not in full:
        fail(f"{name}: not a builtin of opencl-c.h")
        continue
    want = {o for o in full[name] if "half" not in repr(o)}
    def show(o):
        return f"{o[0]} {name}({', '.join(o[1])}) [{', '.join(sorted(o[2]))}]"
    for o in sorted(want - overloads, key=show):
        fail(f"{name}: overload {show(o)} missing (or its attributes differ)")
    for o in sorted(overloads - full[name], key=show):
        fail(f"{name}: {show(o)} is not in opencl-c.h (or its attributes differ)")

# every builtin the kernels call, directly or through vecw.cl's VLOAD(n) / VSTORE(n)
called = set()
for f in glob.glob(os.path.join(src_dir, "cl", "*.cl")):
    if f.endswith("builtins_lean.cl"):
        continue
    text = open(f).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    called |= {n for n in re.findall(r"\b(\w+)\s*\(", text) if n in full}
    if re.search(r"\bVLOAD\s*\(", text) or re.search(r"\bVSTORE\s*\(", text):
        called |= {f"v{op}{n}" for op in ("load", "store") for n in (2, 3, 4, 8, 16)}
for name in sorted(called - set(lean)):
    fail(f"cl/ calls {name}, which cl/builtins_lean.cl does not declare")

n = sum(len(v) for v in lean.values())
print(f"{full_h} (preprocessed by {clang}):")
print(f"{len(lean)} builtins, {n} overloads declared; {len(called)} called by cl/; "
      f"{len(full)} in opencl-c.h")
if fails:
    print(f"{fails} problems")
sys.exit(1 if fails else 0)
