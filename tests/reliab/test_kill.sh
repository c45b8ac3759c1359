#!/bin/sh
# test_kill.sh — kill -9 loop (issue 20, part 5): a training run (tiny CNN, EPOCHS epochs) is
# killed KILLS times with SIGKILL at random moments — during start-up and kernel builds into an
# empty kernel cache, mid-epoch, while checkpoints are written — and each time continued with
# --resume (or started again when no checkpoint exists yet). The final weights must equal an
# uninterrupted run's bit for bit (cmp), metrics.jsonl must hold the same epochs, the run
# directory no temporary file, and the kernel cache no corrupt entry.
# usage: test_kill.sh GRAFT SOURCE_DIR WORK_DIR [KILLS [EPOCHS [SEED]]]
G=$(realpath "$1"); SRC=$(realpath "$2"); W=$3
KILLS=${4:-5}; EPOCHS=${5:-8}; SEED=${6:-$(date +%s)}
. "$SRC/tests/reliab/common.sh"
echo "kills $KILLS, epochs $EPOCHS, seed $SEED (the same seed draws the same delay fractions)"
T="--quiet --set train.epochs=$EPOCHS"

# the uninterrupted run, on its own empty cache, then again on the now warm cache: the second's
# duration bounds the random delays (the first kills still land in kernel builds, since the
# killed runs start on an empty cache of their own and a cold start takes longer)
t0=$($PY -c 'import time; print(time.time())')
GRAFT_CACHE_DIR=$W/cache-ref "$G" train base.yaml $T --out ref >ref.out 2>ref.err || { cat ref.err; bad "reference run"; exit 1; }
cold=$($PY -c "import time; print(time.time() - $t0)")
t0=$($PY -c 'import time; print(time.time())')
GRAFT_CACHE_DIR=$W/cache-ref "$G" train base.yaml $T --out ref2 >ref2.out 2>ref2.err || { cat ref2.err; bad "reference run"; exit 1; }
dur=$($PY -c "import time; print(time.time() - $t0)")
cmp -s ref/last.safetensors ref2/last.safetensors && ok "two uninterrupted runs are bit-identical (warm run: $dur s)" \
    || bad "two uninterrupted runs differ"
# delays: a seeded uniform fraction of what the attempt has left to do: the kernel builds still
# missing from its cache (the cold run's extra time, scaled by the share of entries missing) plus
# the epochs not yet saved (the warm run's time, scaled) — so kills spread over builds, epochs and
# checkpoint writes instead of piling up in the first builds or missing short resumed runs
$PY -c "
import random; r = random.Random($SEED)
print('\n'.join('%.4f' % r.uniform(0.02, 1) for _ in range(10 * $KILLS)))" > fractions.txt
entries=$(ls cache-ref | wc -l)
delay_for() { # FRACTION
    $PY -c "
import os
have = len(os.listdir('cache-kill')) if os.path.isdir('cache-kill') else 0
saved = sum(1 for _ in open('k/metrics.jsonl')) if os.path.exists('k/last.safetensors') else 0
left = ($cold - $dur) * max(0, 1 - have / $entries) + $dur * (1 - saved / $EPOCHS) + 0.05
print('%.3f' % ($1 * left))"
}

# the two moments a random kill rarely hits, made by hand from runs of 2 and 3 epochs: killed
# between the renames of state and last (state of epoch 3, last.safetensors.next of epoch 3, last of
# epoch 2), and killed before them (both *.next written, neither renamed). --resume must roll the
# first forward and drop the second's, and both must end equal to the uninterrupted run.
GRAFT_CACHE_DIR=$W/cache-ref "$G" train base.yaml $T --set train.epochs=2 --out e2 >/dev/null 2>&1 || bad "2 epochs"
GRAFT_CACHE_DIR=$W/cache-ref "$G" train base.yaml $T --set train.epochs=3 --out e3 >/dev/null 2>&1 || bad "3 epochs"
cp -r e2 between; cp e3/state.safetensors between/; cp e3/last.safetensors between/last.safetensors.next
cp e3/metrics.jsonl between/
cp -r e2 before; cp e3/state.safetensors before/state.safetensors.next
cp e3/last.safetensors before/last.safetensors.next; cp e3/metrics.jsonl before/
for c in between before; do
    GRAFT_CACHE_DIR=$W/cache-ref "$G" train base.yaml $T --resume $c >$c.out 2>$c.err || { cat $c.err; bad "resume $c"; }
    cmp -s $c/last.safetensors ref/last.safetensors && [ -z "$(ls $c | grep -E '\.next|\.tmp')" ] \
        && ok "killed $c the renames: resumed to the uninterrupted run's weights" || bad "killed $c the renames"
done
# killed before its first epoch was saved, while writing a file aside (NAME.tmp.PID of a process
# that is gone): with no checkpoint the next run is a fresh --out into that directory, not a
# resume, and it must drop the temporary too (the loop above hits this only by chance)
sh -c 'exit 0' & dead=$!; wait $dead
mkdir -p fresh && echo '{"half": ' > fresh/metrics.jsonl.tmp.$dead
GRAFT_CACHE_DIR=$W/cache-ref "$G" train base.yaml $T --set train.epochs=1 --out fresh >fresh.out 2>fresh.err ||
    { cat fresh.err; bad "fresh run into a killed run's directory"; }
[ -z "$(ls fresh | grep -E '\.tmp')" ] && ok "a fresh run drops a dead writer's temporary" ||
    bad "a fresh run left a dead writer's temporary: $(ls fresh | tr '\n' ' ')"

export GRAFT_CACHE_DIR=$W/cache-kill
kills=0 restarts=0 line=0
while [ $kills -lt $KILLS ]; do
    line=$((line + 1))
    f=$(sed -n "${line}p" fractions.txt)
    [ -z "$f" ] && { bad "ran out of delays"; break; }
    d=$(delay_for "$f")
    if [ -f k/last.safetensors ]; then mode="--resume k"; else mode="--out k"; fi
    "$G" train base.yaml $T $mode >>k.out 2>>k.err &
    pid=$!
    sleep "$d"
    if kill -9 $pid 2>/dev/null; then
        wait $pid 2>/dev/null
        kills=$((kills + 1))
        echo "kill $kills after $d s ($mode): $(cat k/metrics.jsonl 2>/dev/null | wc -l) epochs saved, $(ls k 2>/dev/null | tr '\n' ' ')"
    else
        wait $pid
        rc=$?
        [ $rc = 0 ] || { bad "a run between kills failed (exit $rc)"; tail -3 k.err; }
        # it finished before the kill: start over to place the remaining kills
        restarts=$((restarts + 1))
        rm -rf k
    fi
done
if [ -f k/last.safetensors ]; then mode="--resume k"; else mode="--out k"; fi
"$G" train base.yaml $T $mode >final.out 2>final.err || { cat final.err; bad "final resume"; }
cmp k/last.safetensors ref/last.safetensors && cmp k/model.safetensors ref/model.safetensors \
    && ok "after $kills kills (and $restarts runs that finished first): last and model bit-identical to the uninterrupted run" \
    || bad "weights differ from the uninterrupted run"
$PY - <<'PYEOF' && ok "metrics.jsonl: the same epochs and losses" || bad "metrics.jsonl differs"
import json
a = [json.loads(l) for l in open("k/metrics.jsonl")]
b = [json.loads(l) for l in open("ref/metrics.jsonl")]
keys = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "steps", "lr")
assert [[e[k] for k in keys] for e in a] == [[e[k] for k in keys] for e in b], (len(a), len(b))
PYEOF
left=$(ls k | grep -E '\.tmp|\.next')
[ -z "$left" ] && ok "no temporary files in the run directory" || bad "left in the run directory: $left"
$PY "$SRC/tests/reliab/cache_check.py" cache-kill && ok "no corrupt kernel-cache entry" || bad "corrupt cache entry"
exit $fail
