#!/bin/sh
# test.sh — run every test: the normal build's whole suite, then the unit suites again under
# ASan+UBSan (build-asan/). Ends with one line "N passed, N failed, N skipped".
cd "$(dirname "$0")/.."
set -u
here=$(pwd)
meson test -C build --print-errorlogs --num-processes 2 "$@" > build/test-output.txt 2>&1
tail -n 12 build/test-output.txt

if [ ! -d build-asan ]; then
    CC=clang meson setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debug >/dev/null
fi
ninja -C build-asan >/dev/null || { echo "sanitizer build failed"; echo "0 passed, 1 failed"; exit 1; }
# Only PoCL is loaded here: Mesa's Clover throws C++ exceptions while it initialises, which a C
# program under ASan cannot intercept (CHECK failed: real___cxa_throw). Leaks inside PoCL/LLVM/the ICD loader are theirs: suppressed by library name only (tests/lsan.supp).
OCL_ICD_VENDORS=/etc/OpenCL/vendors/pocl.icd \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_odr_violation=0 \
LSAN_OPTIONS=suppressions=$here/tests/lsan.supp:print_suppressions=0 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --suite unit --print-errorlogs --num-processes 2 > build-asan/test-output.txt 2>&1
tail -n 12 build-asan/test-output.txt

/usr/bin/python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json <<'PY'
import json, sys
p = f = s = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        f += 1
        print(f"missing {path}")
        continue
    for line in lines:
        r = json.loads(line)
        res = r["result"]
        tag = "asan/" if "asan" in path else ""
        if res == "OK" or res == "EXPECTEDFAIL":
            p += 1
        elif res == "SKIP":
            s += 1
        else:
            f += 1
            print(f"FAILED: {tag}{r['name']} ({res})")
print(f"{p} passed, {f} failed, {s} skipped")
sys.exit(1 if f else 0)
PY
