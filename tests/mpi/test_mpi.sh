#!/bin/sh
# test_mpi.sh — graft train under mpirun on real data (a Fashion-MNIST subset), two ranks on this
# machine (loopback, --oversubscribe, one PoCL device each): the weights equal one process's to
# 1e-5 (same global batch and seed; with train.sync_bn also for a batchnorm network; with
# train.split: throughput too), rank 0
# alone writes the run directory; a rank killed with SIGKILL mid-epoch makes the job exit
# non-zero within 60 s with graft's own message naming the lost rank, and a rank that hangs
# (SIGSTOP) is named by the survivor's own timeout; the last complete checkpoint stays whole and
# resumes on 1 or 2 ranks to the uninterrupted run's weights.
# usage: test_mpi.sh GRAFT SOURCE_DIR WORK_DIR MPIRUN
G=$(realpath "$1"); SRC=$(realpath "$2"); W=$3; MPIRUN=$4
PY=/usr/bin/python3
rm -rf "$W"; mkdir -p "$W/tests/train" "$W/configs/models"; cd "$W/tests/train" || exit 1
cp "$SRC/tests/train/ddp.yaml" "$SRC/tests/train/tiny-bn.yaml" .
cp "$SRC/configs/models/lenet5.yaml" ../../configs/models/
$PY "$SRC/tests/train/make_data.py" data >/dev/null || { echo "cannot make data"; exit 1; }
export POCL_DEVICES=pthread
MPI="$MPIRUN -n 2 --oversubscribe"
CMP="$PY $SRC/tests/train/compare.py"
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
same() { # same A B WHAT: last weights within 1e-5 relative
    out=$($CMP "$1/last.safetensors" "$2/last.safetensors" --tol 1e-5) && ok "$3: $out" \
      || bad "$3: $out"
}
one() { # one DIR ARGS...: graft train in one process
    od=$1; shift
    "$G" train ddp.yaml --quiet --out "$od" "$@" > "log-$od.txt" 2>&1 || { cat "log-$od.txt"; bad "$od"; }
}
json() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

# 1. two ranks = one process (20 steps of SGD with momentum, global batch 50); each rank its own
#    PoCL device through {local_rank}
one p1 --set train.max_steps=20
POCL_DEVICES="pthread pthread" $MPI "$G" train ddp.yaml --quiet --out p2 --device '0:{local_rank}' --set train.max_steps=20 \
    > log-p2.txt 2>&1 && ok "mpirun -n 2 ran" || { cat log-p2.txt; bad "mpirun -n 2"; }
same p2 p1 "2 ranks = 1 process"
[ "$(json p2/summary.json ranks)" = 2 ] && ok "summary.json: 2 ranks" || bad "summary.json ranks"
[ "$(grep -c 'test accuracy' log-p2.txt)" = 1 ] && ok "one summary line (rank 0)" \
  || bad "summary lines: $(grep -c 'test accuracy' log-p2.txt)"
ls -a p2 | grep -q '\.tmp\.' && bad "temporary files left" || ok "no temporary files"
# the epoch's metrics are reduced over the ranks: the same train loss as one process
$PY - <<'PY' && ok "metrics reduced over the ranks" || bad "metrics differ"
import json
a, b = (json.loads(open(f"{n}/metrics.jsonl").readline()) for n in ("p1", "p2"))
assert a["train_accuracy"] == b["train_accuracy"], (a, b)
assert abs(a["train_loss"] - b["train_loss"]) < 1e-5 * abs(a["train_loss"]), (a, b)
PY

# 1b. 2 ranks x 2 replicas each (4 workers, two PoCL devices per rank) = 1 process
POCL_DEVICES="pthread pthread" $MPI "$G" train ddp.yaml --quiet --out p4 --devices 0:0,0:1 \
    --set train.max_steps=20 > log-p4.txt 2>&1 && ok "mpirun -n 2 --devices 0:0,0:1 ran" \
    || { cat log-p4.txt; bad "mpirun -n 2 with 2 replicas per rank"; }
same p4 p1 "2 ranks x 2 replicas = 1 process"

# 1c. train.sync_bn across ranks: tiny-bn's batchnorm statistics over the global batch, 2 ranks
#     (and 2 ranks x 2 replicas) = 1 process, weights and running statistics; without it, differs
S="--set model.file=tiny-bn.yaml --set train.max_steps=10"
one sbn1 $S --set train.sync_bn=true
POCL_DEVICES="pthread pthread" $MPI "$G" train ddp.yaml --quiet --out sbn2 \
    --device '0:{local_rank}' $S --set train.sync_bn=true > log-sbn2.txt 2>&1 \
    || { cat log-sbn2.txt; bad "mpirun sync_bn"; }
same sbn2 sbn1 "sync_bn: 2 ranks = 1 process"
POCL_DEVICES="pthread pthread" $MPI "$G" train ddp.yaml --quiet --out sbn4 --devices 0:0,0:1 \
    $S --set train.sync_bn=true > log-sbn4.txt 2>&1 \
    || { cat log-sbn4.txt; bad "mpirun sync_bn x2"; }
same sbn4 sbn1 "sync_bn: 2 ranks x 2 replicas = 1 process"
POCL_DEVICES="pthread pthread" $MPI "$G" train ddp.yaml --quiet --out nosbn2 \
    --device '0:{local_rank}' $S > log-nosbn2.txt 2>&1 \
    || { cat log-nosbn2.txt; bad "mpirun without sync_bn"; }
$CMP nosbn2/last.safetensors sbn1/last.safetensors --tol 1e-5 --expect-differ > bn.txt \
  && ok "without sync_bn 2 ranks differ ($(cat bn.txt))" || bad "without sync_bn: $(cat bn.txt)"

# 1d. train.split: throughput across ranks: every rank's timings summed, the same split on both
#     (summary.json: two row counts summing to the batch), and still equal to one process
POCL_DEVICES="pthread pthread" $MPI "$G" train ddp.yaml --quiet --out tp2 \
    --device '0:{local_rank}' --set train.max_steps=20 --set train.split=throughput \
    > log-tp2.txt 2>&1 \
    || { cat log-tp2.txt; bad "mpirun split throughput"; }
same tp2 p1 "split: throughput, 2 ranks = 1 process"
$PY - <<'PY' && ok "summary.json: the split over the ranks" || bad "split over the ranks"
import json
sp = json.load(open("tp2/summary.json"))["split"]
print(sp)
assert sp["mode"] == "throughput" and len(sp["rows"]) == 2 and sum(sp["rows"]) == 50, sp
assert all(v > 0 for v in sp["images_per_second"]), sp
PY

# 2. a rank killed (SIGKILL) or stopped (SIGSTOP) after two epochs: non-zero within 60 s, the
#    lost rank named, the checkpoint whole; resume on 1 and 2 ranks = the uninterrupted run
rank1() { # the pid of rank 1 under mpirun $1 (its children's environment says the rank)
    for c in $(pgrep -P "$1"); do
        grep -qz "OMPI_COMM_WORLD_RANK=1" "/proc/$c/environ" 2>/dev/null && { echo "$c"; return; }
    done
}
S="--set data.val_split=0.2 --set train.epochs=100"
for sig in KILL STOP; do
    d=k-$sig
    GRAFT_DIST_TIMEOUT=10 $MPI "$G" train ddp.yaml --quiet --out $d $S > log-$d.txt 2>&1 &
    mp=$!
    i=0
    while [ "$(cat $d/metrics.jsonl 2>/dev/null | wc -l)" -lt 2 ] && [ $i -lt 6000 ]; do
        sleep 0.02; i=$((i + 1))
    done
    r1=$(rank1 $mp)
    [ -n "$r1" ] || { bad "$sig: no rank 1 found"; kill -9 $mp; wait $mp; continue; }
    t0=$(date +%s)
    kill -$sig "$r1"
    i=0
    while kill -0 $mp 2>/dev/null && [ $i -lt 900 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 $mp 2>/dev/null; then
        bad "$sig: still running after 90 s"; kill -9 "$r1" $mp 2>/dev/null
    fi
    wait $mp; rc=$?
    secs=$(($(date +%s) - t0))
    [ $rc != 0 ] && [ $secs -le 60 ] && ok "$sig of rank 1: exit $rc after $secs s" \
      || bad "$sig of rank 1: exit $rc after $secs s"
    grep -q "rank 1" log-$d.txt && ok "$sig: the lost rank is named: $(grep -m1 'rank 1' log-$d.txt)" \
      || { cat log-$d.txt; bad "$sig: rank 1 not named"; }
    [ $sig = STOP ] && { grep -q "lost rank 1" log-$d.txt && ok "STOP: graft's own timeout named it" \
      || bad "STOP: no 'lost rank 1' from graft"; }
    [ $sig = KILL ] && { grep -q "graft: error: rank 0 of 2: rank 1 was lost" log-$d.txt \
      && ok "KILL: graft itself named it: $(grep -m1 'graft: error' log-$d.txt)" \
      || bad "KILL: no 'rank 1 was lost' from graft"; }
    done_epochs=$(wc -l < $d/metrics.jsonl)
    [ "$done_epochs" -lt 100 ] && ok "$sig: killed after $done_epochs epochs" || bad "$sig: finished"
    E=$((done_epochs + 1))
    cp -r $d $d-2
    "$G" train ddp.yaml --quiet --resume $d $S --set train.epochs=$E > log-$d-r1.txt 2>&1 \
      || { cat log-$d-r1.txt; bad "$sig: resume on 1 process"; }
    $MPI "$G" train ddp.yaml --quiet --resume $d-2 $S --set train.epochs=$E > log-$d-r2.txt 2>&1 \
      || { cat log-$d-r2.txt; bad "$sig: resume on 2 ranks"; }
    one ref-$E-$sig $S --set train.epochs=$E
    same $d ref-$E-$sig "$sig: resumed on 1 process = uninterrupted"
    same $d-2 ref-$E-$sig "$sig: resumed on 2 ranks = uninterrupted"
done
exit $fail
