#!/bin/sh
# fuzz.sh — run every libFuzzer target for a given time each (issue 20, part 8).
# usage: sh tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s; targets: recipe
#        safetensors npy idx). The 30-minute campaign: sh tools/fuzz.sh 1800
# Builds build-fuzz (clang, ASan+UBSan, the library instrumented with -fsanitize=fuzzer-no-link)
# when it is missing. Each target starts from its corpus in tests/fuzz/corpus/ (read only; new
# inputs go to build-fuzz/fuzz-out/TARGET/corpus) and writes any crash to
# build-fuzz/fuzz-out/TARGET/crash-*. A crash is a bug: fix it and copy the input into
# tests/fuzz/crashes/TARGET/, where the fuzz suite (fuzz_recipe_corpus, io_fuzz_regress) replays
# it in every build. Exit 1 when any target crashed. Runs at nice 19.
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-recipe safetensors npy idx}
if [ ! -d build-fuzz ]; then
    CC=clang meson setup build-fuzz -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args=-fsanitize=fuzzer-no-link > /dev/null || exit 1
fi
path_of() { [ "$1" = recipe ] && echo tests/fuzz/fuzz_recipe || echo "tests/io/fuzz_$1"; }
for t in $targets; do
    nice -n 19 ninja -C build-fuzz "$(path_of "$t")" > build-fuzz/fuzz-ninja.log 2>&1 \
        || { tail -20 build-fuzz/fuzz-ninja.log; exit 1; }
done
export OCL_ICD_VENDORS=/etc/OpenCL/vendors/pocl.icd
export ASAN_OPTIONS=detect_leaks=1:detect_odr_violation=0
export LSAN_OPTIONS=suppressions=$here/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
for t in $targets; do
    out=build-fuzz/fuzz-out/$t
    mkdir -p "$out/corpus"
    extra=""
    [ "$t" = recipe ] && extra="-max_len=4096 -dict=tests/fuzz/recipe.dict"
    [ "$t" != recipe ] && extra="-max_len=65536"
    # -rss_limit_mb: the readers refuse sizes they cannot back; 2 GiB is the fuzzer's default
    nice -n 19 "build-fuzz/$(path_of "$t")" $extra -max_total_time="$secs" -timeout=30 \
        -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" "tests/fuzz/corpus/$t" \
        > "$out/log.txt" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log.txt")
    crashes=$(ls "$out" | grep -E '^(crash|leak|timeout|oom)-' | wc -l)
    echo "$t: ${secs} s, ${runs:-?} executions, exit $rc, $crashes crash files in $out"
    if [ $rc != 0 ] || [ "$crashes" != 0 ]; then
        status=1
        grep -E "ERROR|SUMMARY" "$out/log.txt" | head -5
    fi
done
exit $status
