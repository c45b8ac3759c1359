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
echo "kills $KILLS, epochs $EPOCHS, seed $SEED (rerun with the same seed to repeat the delays)"
T="--quiet --set train.epochs=$EPOCHS"

# the uninterrupted run, on its own empty cache; its duration bounds the random delays
t0=$($PY -c 'import time; print(time.time())')
GRAFT_CACHE_DIR=$W/cache-ref "$G" train base.yaml $T --out ref >ref.out 2>ref.err || { cat ref.err; bad "reference run"; exit 1; }
dur=$($PY -c "import time; print(time.time() - $t0)")
echo "uninterrupted run: $dur s"
# delays: uniform in [0, duration], from a seeded generator
$PY -c "
import random; r = random.Random($SEED)
print('\n'.join('%.3f' % r.uniform(0.02, $dur) for _ in range(10 * $KILLS)))" > delays.txt

export GRAFT_CACHE_DIR=$W/cache-kill
kills=0 restarts=0 line=0
while [ $kills -lt $KILLS ]; do
    line=$((line + 1))
    d=$(sed -n "${line}p" delays.txt)
    [ -z "$d" ] && { bad "ran out of delays"; break; }
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
