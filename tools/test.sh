#!/bin/sh
# test.sh — every test: the whole suite on the default device (PoCL), the unit-level suites again
# under ASan+UBSan, and the op tests at small shapes on Mesa rusticl (llvmpipe) and under Oclgrind.
# Ends with one line "N passed, N failed, N skipped" over all runs.
cd "$(dirname "$0")/.."
here=$(pwd)
# a kernel calling a builtin cl/builtins_lean.cl does not declare fails its test on PoCL
# (users get a fallback build with the full header and a warning)
export GRAFT_LEAN_BUILTINS=strict
logs=""
run() { # run BUILD LOGBASE [ENV=VALUE...] -- MESON-TEST-ARGS...
    b=$1; base=$2; shift 2
    envs=""
    while [ "$1" != "--" ]; do envs="$envs $1"; shift; done
    shift
    echo "== $base: $envs meson test $*"
    env $envs meson test -C "$b" --logbase "$base" --print-errorlogs "$@" > "$b/$base.out" 2>&1
    grep -E "^ *[0-9]+/[0-9]+ " "$b/$base.out" | grep -vE " (OK|SKIP) " | head -20
    grep -E "^(Ok|Fail|Skipped|Timeout): " "$b/$base.out" | tr '\n' ' '; echo
    # (with --wrapper, meson appends the wrapper's name to the log's base name)
    log=$(ls "$b/meson-logs/$base".json "$b/meson-logs/$base"-*.json 2>/dev/null | head -1)
    logs="$logs ${log:-$b/meson-logs/$base.json}"
}

# 1. everything on the default device (suite mpi included: mpirun -n 2 --oversubscribe, as root
#    through OMPI_ALLOW_RUN_AS_ROOT in its test environment; built when MPI is found), but the
#    ten-minute folder-vs-arrays training comparison (run it with: meson test -C build --suite vision-slow) and the demo sweep of graft sweep
#    (meson test -C build --suite transfer-slow) and PoCL + rusticl data parallelism
#    (meson test -C build --suite ddp-slow)
run build all -- --num-processes 2 --no-suite vision-slow --no-suite transfer-slow --no-suite ddp-slow

# 2. ASan+UBSan (clang): unit-level suites. Only PoCL is loaded: Mesa's Clover throws C++
#    exceptions while it initialises, which a C program under ASan cannot intercept. Leaks inside
#    PoCL/LLVM/the ICD loader are theirs and suppressed by library name (tests/lsan.supp).
#    The same tree is the fault-injection build (inert unless GRAFT_FAULT is set): suite fault
#    fails the N-th allocation, buffer, kernel build and enqueue of graft's commands on purpose.
if [ ! -d build-asan ]; then
    CC=clang meson setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debug -Dfault_injection=true > /dev/null
fi
meson configure build-asan -Dfault_injection=true > /dev/null
if ninja -C build-asan > build-asan/ninja.log 2>&1; then
    run build-asan asan OCL_ICD_VENDORS=/etc/OpenCL/vendors/pocl.icd \
        ASAN_OPTIONS=detect_leaks=1:detect_odr_violation=0 \
        LSAN_OPTIONS=suppressions=$here/tests/lsan.supp:print_suppressions=0 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        -- --num-processes 2 --suite unit --suite recipe --suite bad --suite fuzz --suite io --suite cli \
        --suite fault
else
    tail -30 build-asan/ninja.log
    echo "sanitizer build failed"
    logs="$logs build-asan/missing.json"
fi

# 3. the op tests at small shapes on a second OpenCL implementation: Mesa rusticl on llvmpipe
run build rusticl RUSTICL_ENABLE=llvmpipe GRAFT_DEVICE=llvmpipe GRAFT_TEST_SMALL=1 \
    GRAFT_CACHE_DIR=$here/build/tests/graft-cache-rusticl -- --suite ops --no-suite ops-wide \
    --num-processes 2

# 4. ... and under Oclgrind, which checks every kernel for out-of-bounds accesses, data races and
#    uninitialised reads (tests/ops/oclgrind.sh fails the test on any finding)
run build oclgrind GRAFT_TEST_SMALL=1 GRAFT_CACHE_DIR=$here/build/tests/graft-cache-oclgrind \
    -- --suite ops --num-processes 2 --timeout-multiplier 4 --wrapper "sh $here/tests/ops/oclgrind.sh"

/usr/bin/python3 - $logs <<'PY'
import json, re, sys
import xml.etree.ElementTree as ET
p = f = s = 0


def junit(r):
    """A test that ran pytest with --junitxml (tests/python) counts its cases one by one."""
    cmd = " ".join(r.get("command") or [])
    m = re.search(r"(\S+pytest-junit\.xml)", cmd)
    if not m or r["result"] == "SKIP":
        return None
    try:
        cases = ET.parse(m.group(1)).getroot().iter("testcase")
    except (OSError, ET.ParseError):
        return None
    n = [0, 0, 0]
    for c in cases:
        kinds = {x.tag for x in c}
        n[1 if kinds & {"failure", "error"} else 2 if "skipped" in kinds else 0] += 1
    if r["result"] not in ("OK", "EXPECTEDFAIL") and not n[1]:
        n[1] += 1  # the runner itself failed (e.g. pip install)
    return n


for path in sys.argv[1:]:
    tag = path.split("/")[-1].replace(".json", "")
    try:
        lines = open(path).read().splitlines()
    except OSError:
        f += 1
        print(f"FAILED: {tag}: no test log")
        continue
    for line in lines:
        r = json.loads(line)
        res = r["result"]
        n = junit(r)
        if n:
            p, f, s = p + n[0], f + n[1], s + n[2]
            if n[1]:
                print(f"FAILED: {tag}: {r['name']} ({n[1]} pytest case(s) or the runner)")
            continue
        if res in ("OK", "EXPECTEDFAIL"):
            p += 1
        elif res == "SKIP":
            s += 1
        else:
            f += 1
            print(f"FAILED: {tag}: {r['name']} ({res})")
print(f"{p} passed, {f} failed, {s} skipped")
sys.exit(1 if f else 0)
PY
