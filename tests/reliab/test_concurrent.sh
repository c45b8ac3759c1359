#!/bin/sh
# test_concurrent.sh — concurrency (issue 20, part 6): PROCS processes train at once with one
# shared kernel cache that is empty at the start (every process builds and writes the same
# entries at the same time). All must succeed, the cache must hold no corrupt entry, and every
# process's weights must equal a single process's bit for bit. A second round on the now-full
# cache must load every kernel from it (nothing rebuilt: no entry was rejected).
# usage: test_concurrent.sh GRAFT SOURCE_DIR WORK_DIR [PROCS]
G=$(realpath "$1"); SRC=$(realpath "$2"); W=$3; PROCS=${4:-4}
. "$SRC/tests/reliab/common.sh"
T="--quiet --set train.epochs=2"
GRAFT_CACHE_DIR=$W/cache-single "$G" train base.yaml $T --out single >single.out 2>single.err \
    || { cat single.err; bad "single run"; exit 1; }
export GRAFT_CACHE_DIR=$W/cache-shared
listing() { # the entries with their modification times: a rejected entry is rewritten
    $PY -c "import os, sys; d = sys.argv[1]; [print(f, os.stat(os.path.join(d, f)).st_mtime_ns) for f in sorted(os.listdir(d))]" cache-shared
}
for round in 1 2; do
    pids=""
    for i in $(seq 1 $PROCS); do
        "$G" train base.yaml $T --out "r$round-$i" >"r$round-$i.out" 2>"r$round-$i.err" &
        pids="$pids $!"
    done
    n=0
    for p in $pids; do wait $p && n=$((n + 1)); done
    [ $n = $PROCS ] && ok "round $round: $PROCS concurrent runs succeeded" \
        || { cat r$round-*.err; bad "round $round: only $n of $PROCS succeeded"; }
    same=0
    for i in $(seq 1 $PROCS); do cmp -s "r$round-$i/last.safetensors" single/last.safetensors && same=$((same + 1)); done
    [ $same = $PROCS ] && ok "round $round: every run's weights equal the single run's" \
        || bad "round $round: $same of $PROCS runs equal the single run"
    $PY "$SRC/tests/reliab/cache_check.py" cache-shared && ok "round $round: no corrupt cache entry" \
        || bad "round $round: corrupt cache entry"
    [ $round = 1 ] && listing > entries1.txt
done
listing > entries2.txt
cmp -s entries1.txt entries2.txt && ok "round 2 added and rewrote no entry (it loaded round 1's)" \
    || bad "round 2 rebuilt entries: $(diff entries1.txt entries2.txt | head -5)"
exit $fail
