#!/bin/sh
# oclgrind.sh — run a test under Oclgrind and fail when it reports anything: out-of-bounds
# accesses, data races, uninitialised reads, API errors. (Oclgrind itself only prints them.)
# -cl-opt-disable: with optimisation LLVM emits `freeze`, which the uninitialised-value checker
# cannot interpret and aborts on.
log=$(mktemp)
oclgrind --data-races --uninitialized --check-api --build-options -cl-opt-disable --log "$log" "$@"
rc=$?
if [ -s "$log" ]; then
    head -c 20000 "$log" >&2
    echo "oclgrind reported the problems above" >&2
    rc=1
fi
rm -f "$log"
exit $rc
