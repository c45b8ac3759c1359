#!/bin/sh
# test_train.sh — the trainer's contract on real data (a Fashion-MNIST subset): exact resume after
# SIGKILL mid-epoch, feature caching on/off equivalence, early stopping that stops and restores,
# gradual unfreezing at the right epoch (also across a resume), eval agreeing with the summary,
# and bad data that fails cleanly without leaving a run directory.
# usage: test_train.sh GRAFT SOURCE_DIR WORK_DIR
G=$(realpath "$1"); SRC=$2; W=$3
PY=${GRAFT_TEST_PYTHON:-/usr/bin/python3}  # run_tests.py names the GPU machine's
rm -rf "$W"; mkdir -p "$W"; cd "$W" || exit 1
cp "$SRC/tests/train/base.yaml" "$SRC/tests/train/tiny-cnn.yaml" .
$PY "$SRC/tests/train/make_data.py" data >/dev/null || { echo "cannot make data"; exit 1; }
CMP="$PY $SRC/tests/train/compare.py"
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
run() { # run NAME ARGS... : graft train, quiet, into run-NAME
    name=$1; shift
    "$G" train base.yaml --quiet --out "run-$name" "$@" > "log-$name.txt" 2>&1
}
json() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

# 1. a reference run, then the same run killed mid-epoch and resumed: identical weights
run ref --set train.epochs=6 || { cat log-ref.txt; bad "reference run"; }
[ -f run-ref/model.safetensors ] && [ -f run-ref/last.safetensors ] && [ -f run-ref/metrics.jsonl ] \
  && [ -f run-ref/summary.json ] && [ -f run-ref/recipe.yaml ] && ok "run directory complete" \
  || bad "run directory incomplete: $(ls run-ref)"
[ "$(wc -l < run-ref/metrics.jsonl)" = 6 ] && ok "metrics.jsonl has 6 epochs" || bad "metrics.jsonl"
# an epoch's loss and accuracy are the same bits however the progress display's reads grouped the
# steps: fmnist-pretrain's 60 steps read back after every third (GRAFT_PROGRESS_READ_STEPS=3) and
# never before the epoch's end (1000); partial sums added up by read (as before) differ in the
# last bits there, since its per-sample losses span more than a double holds exactly
for k in 3 1000; do
    GRAFT_PROGRESS_READ_STEPS=$k "$G" train "$SRC/configs/recipes/fmnist-pretrain.yaml" --quiet \
        --out "run-read$k" --set train.max_steps=60 --set train.epochs=1 --set data.test=null \
        > "log-read$k.txt" 2>&1 || { cat "log-read$k.txt"; bad "fmnist-pretrain, reads every $k steps"; }
done
$PY - run-read3/metrics.jsonl run-read1000/metrics.jsonl <<'PY' && ok "epoch totals independent of the progress reads" || bad "epoch totals depend on the progress reads"
import json, sys
a, b = ([json.loads(l) for l in open(f)] for f in sys.argv[1:3])
keys = ("train_loss", "train_accuracy")
diff = [(x["epoch"], k, repr(x[k]), repr(y[k])) for x, y in zip(a, b) for k in keys if x[k] != y[k]]
print(diff or "equal")
sys.exit(len(a) != 1 or len(b) != 1 or bool(diff))
PY
# the training loop waits for the device at most once per step (no per-step read-back)
$PY -c "import json,sys; v=json.load(open('run-ref/summary.json'))['host_syncs_per_step']; print(v); sys.exit(not 0 <= v <= 1)" \
    > syncs.txt && ok "host synchronisations per step: $(cat syncs.txt)" || bad "host synchronisations per step: $(cat syncs.txt)"
# (a checkpoint every epoch: the kill lands after two written ones)
"$G" train base.yaml --out run-kill --set train.epochs=6 --set train.checkpoint_seconds=0 \
    > log-kill.txt 2>&1 &
pid=$!
i=0
while [ "$(cat run-kill/metrics.jsonl 2>/dev/null | wc -l)" -lt 2 ] && [ $i -lt 3000 ]; do
    sleep 0.02; i=$((i + 1))
done
# now somewhere in the third epoch
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
epochs_done=$(cat run-kill/metrics.jsonl 2>/dev/null | wc -l)
if [ "$epochs_done" -ge 6 ]; then
    bad "the run finished before it could be killed"
else
    ok "killed after $epochs_done epochs"
    "$G" train base.yaml --quiet --resume run-kill --set train.epochs=6 > log-resume.txt 2>&1 \
        || { cat log-resume.txt; bad "resume"; }
    $CMP run-kill/last.safetensors run-ref/last.safetensors && ok "resumed weights are bitwise equal" \
        || bad "resumed weights differ from the uninterrupted run"
    [ "$(wc -l < run-kill/metrics.jsonl)" = 6 ] && ok "resumed metrics.jsonl has 6 epochs" \
        || bad "resumed metrics.jsonl: $(wc -l < run-kill/metrics.jsonl) lines"
fi

# 1b. train.checkpoint_seconds: at most one epoch-end checkpoint in that time, the run's last
# always; the best epoch's model is kept until then. The files end as with a checkpoint every
# epoch; a kill between checkpoints loses the epochs since the last one, nothing else. (The
# learning rate x50 in epoch 6 makes epoch 5 the best, whose model waits for the last checkpoint.)
LR6="--set train.schedule=step --set train.step_size=5 --set train.gamma=50"
run every --set train.epochs=6 $LR6 --set train.checkpoint_seconds=0 || { cat log-every.txt; bad "every epoch"; }
run rare --set train.epochs=6 $LR6 --set train.checkpoint_seconds=1e9 || { cat log-rare.txt; bad "rare"; }
[ "$(json run-every/summary.json best_epoch)" = 5 ] && [ "$(json run-rare/summary.json best_epoch)" = 5 ] \
    && ok "best epoch 5 of 6 both ways" || bad "best epochs: $(json run-every/summary.json best_epoch), $(json run-rare/summary.json best_epoch)"
$CMP run-rare/last.safetensors run-every/last.safetensors && $CMP run-rare/model.safetensors run-every/model.safetensors \
    && $CMP run-rare/model.safetensors run-every/last.safetensors --expect-differ \
    && [ "$(json run-rare/summary.json test_accuracy)" = "$(json run-every/summary.json test_accuracy)" ] \
    && ok "checkpoint_seconds 1e9: last, the best epoch's model and the test accuracy as with a checkpoint every epoch" \
    || bad "checkpoint_seconds changed the weights"
$PY - <<'PY' && ok "metrics.jsonl the same, 6 checkpoints written against 1" || bad "checkpoint counts or metrics"
import json
a, b = ([json.loads(l) for l in open(f"run-{d}/metrics.jsonl")] for d in ("every", "rare"))
k = ("epoch", "train_loss", "val_loss", "val_accuracy", "steps", "lr")
assert [[e[x] for x in k] for e in a] == [[e[x] for x in k] for e in b], (a, b)
n = [json.load(open(f"run-{d}/summary.json"))["checkpoints"] for d in ("every", "rare")]
assert n == [6, 1], n
PY
"$G" train base.yaml --out run-rk --set train.epochs=6 --set train.checkpoint_seconds=1e9 \
    > log-rk.txt 2>&1 &
pid=$!
i=0
while ! grep -q "epoch 2/6: loss" log-rk.txt 2>/dev/null && [ $i -lt 3000 ]; do
    sleep 0.02; i=$((i + 1))
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
if grep -q "test accuracy" log-rk.txt; then
    bad "the checkpoint_seconds run finished before it could be killed"
else
    [ ! -e run-rk/last.safetensors ] && [ ! -s run-rk/metrics.jsonl ] \
        && ok "killed after $(grep -c 'epoch [0-9]/6: loss' log-rk.txt) epochs with checkpoint_seconds 1e9: none written yet" \
        || bad "a checkpoint was written before checkpoint_seconds passed: $(ls run-rk)"
fi

# 2. graft eval with the best weights agrees with summary.json
"$G" eval base.yaml --weights run-ref/model.safetensors --json > eval.json 2> eval.err || { cat eval.err; bad "eval"; }
$PY - <<'PY' || bad "eval vs summary"
import json
e, s = json.load(open("eval.json")), json.load(open("run-ref/summary.json"))
assert abs(e["accuracy"] - s["test_accuracy"]) < 1e-6, (e["accuracy"], s["test_accuracy"])
assert abs(e["loss"] - s["test_loss"]) < 1e-4, (e["loss"], s["test_loss"])
assert sum(map(sum, e["confusion"])) == e["n"] == 400
# the run's own test pass (its logits read back 8 batches at a time) counted the same
assert e["confusion"] == s["confusion"], (e["confusion"], s["confusion"])
assert s["test_accuracy"] > 0.5, s  # it learned something
print("ok: eval accuracy", e["accuracy"], "equals summary; per class", e["per_class_accuracy"])
PY

# 3. feature caching on and off give the same weights (frozen convs, dropout in the head)
for c in on off; do
    run "cache-$c" --set transfer.from=run-ref/model.safetensors --set transfer.freeze=flatten \
        --set transfer.cache_features=$c --set train.epochs=2 || { cat "log-cache-$c.txt"; bad "cache $c"; }
done
[ "$(json run-cache-on/summary.json feature_cache)" = True ] && ok "cache on used" || bad "cache on not used"
[ "$(json run-cache-off/summary.json feature_cache)" = False ] && ok "cache off not used" || bad "cache off used"
# the same cache in host memory instead of device memory: bit-equal weights
run cache-host --set transfer.from=run-ref/model.safetensors --set transfer.freeze=flatten \
    --set transfer.cache_features=on --set transfer.cache_device_fraction=0 --set train.epochs=2 \
    || { cat log-cache-host.txt; bad "cache in host memory"; }
[ "$(json run-cache-on/summary.json feature_cache_device)" = True ] \
    && [ "$(json run-cache-host/summary.json feature_cache_device)" = False ] \
    && ok "feature cache in device memory by default, in host memory with fraction 0" \
    || bad "feature cache location: $(json run-cache-on/summary.json feature_cache_device) $(json run-cache-host/summary.json feature_cache_device)"
$CMP run-cache-on/last.safetensors run-cache-host/last.safetensors --tol 0 \
    && ok "device and host feature caches give bitwise equal weights" || bad "device and host caches differ"
# the device cache made the test split's features as it evaluated them; the host cache stored
# them with the others: the same test results, bit for bit
$PY - <<'PY' || bad "test split made at the end differs from the stored one"
import json
d, h = json.load(open("run-cache-on/summary.json")), json.load(open("run-cache-host/summary.json"))
assert d["feature_cache_test_streamed"] and not h["feature_cache_test_streamed"], (d, h)
assert d["test_loss"] == h["test_loss"] and d["confusion"] == h["confusion"], (d, h)
print("ok: test split streamed at the end equals the stored features:", d["test_loss"])
PY
# a test split streamed at the end takes one batch of the device's cache budget, not the whole
# split: a fraction between the two still keeps the cache on the device (960 training, 240
# validation and 400 test images, batch 32)
F=$("$G" devices --json | $PY -c "
import json, sys
mem = json.load(sys.stdin)[0]['global_mem_bytes']
s = json.load(open('run-cache-on/summary.json'))
row = 4
for d in next(l for l in s['layers'] if l['name'] == 'flatten')['output_shape']: row *= d
print('%.6e' % ((960 + 240 + 32 + 960 + 240 + 400) / 2 * row / mem))")
run cache-tight --set transfer.from=run-ref/model.safetensors --set transfer.freeze=flatten \
    --set transfer.cache_features=on --set transfer.cache_device_fraction=$F --set train.epochs=2 \
    || { cat log-cache-tight.txt; bad "cache with a tight device budget"; }
$PY - <<'PY' || bad "tight device budget: the streamed test split was counted whole"
import json
d, t = json.load(open("run-cache-on/summary.json")), json.load(open("run-cache-tight/summary.json"))
assert t["feature_cache_device"] and t["feature_cache_test_streamed"], t
assert t["test_loss"] == d["test_loss"], (t["test_loss"], d["test_loss"])
print("ok: device cache within a budget short of the whole test split's features")
PY
$CMP run-cache-on/last.safetensors run-cache-off/last.safetensors --tol 1e-4 \
    && ok "cached and uncached runs agree" || bad "cached and uncached weights differ"
$CMP run-cache-on/last.safetensors run-ref/model.safetensors --only conv --tol 0 \
    && ok "frozen convolutions untouched" || bad "frozen layers changed"
# the cached run evaluated its test split through the cached features (prefix once, then the
# head); graft eval runs the whole network on the same weights: the same result to float rounding
"$G" eval base.yaml --weights run-cache-on/model.safetensors --json > eval-cache.json 2> eval-cache.err \
    || { cat eval-cache.err; bad "eval of the cached run"; }
$PY - <<'PY' || bad "test split through cached features differs from the full network"
import json
e, s = json.load(open("eval-cache.json")), json.load(open("run-cache-on/summary.json"))
assert s["feature_cache"] is True, s
# (read once, at the end: made a batch at a time then, not stored with the training features)
assert s["feature_cache_test_streamed"] is True, s
assert e["confusion"] == s["confusion"], (e["confusion"], s["confusion"])
assert abs(e["accuracy"] - s["test_accuracy"]) < 1e-12, (e["accuracy"], s["test_accuracy"])
assert abs(e["loss"] - s["test_loss"]) < 1e-5 * max(1.0, abs(e["loss"])), (e["loss"], s["test_loss"])
print("ok: test split through cached features equals the full network:", e["accuracy"], e["loss"], s["test_loss"])
PY

# 4. early stopping: min_delta too large to improve on, patience 1 -> stops after epoch 2,
#    restores epoch 1's weights
run early --set train.epochs=6 --set "train.early_stopping={monitor: val_loss, patience: 1, min_delta: 100}" \
    || { cat log-early.txt; bad "early stopping run"; }
[ "$(json run-early/summary.json stopped_early)" = True ] && [ "$(json run-early/summary.json epochs_run)" = 2 ] \
    && [ "$(json run-early/summary.json best_epoch)" = 1 ] && ok "stopped after epoch 2, best epoch 1" \
    || bad "early stopping: $(cat run-early/summary.json)"
"$G" eval base.yaml --weights run-early/model.safetensors --json > eval-early.json 2>/dev/null
$PY -c "
import json; e=json.load(open('eval-early.json')); s=json.load(open('run-early/summary.json'))
assert abs(e['accuracy']-s['test_accuracy'])<1e-6, (e, s)" && ok "test accuracy is the restored best model's" \
    || bad "summary was not computed with the best weights"
$CMP run-early/model.safetensors run-early/last.safetensors --expect-differ \
    && ok "model.safetensors (epoch 1) differs from last.safetensors (epoch 2)" || bad "best = last"

# 5. gradual unfreezing: frozen through flatten, everything from epoch 2
U="--set transfer.from=run-ref/model.safetensors --set transfer.freeze=flatten --set transfer.cache_features=off"
run unf2 $U --set train.epochs=2 --set "train.unfreeze=[{epoch: 2, freeze: none}]" || { cat log-unf2.txt; bad "unfreeze run"; }
run unf2b $U --set train.epochs=2 --set "train.unfreeze=[{epoch: 2, freeze: flatten}]" || { cat log-unf2b.txt; bad "unfreeze run b"; }
$CMP run-unf2b/last.safetensors run-ref/model.safetensors --only conv --tol 0 \
    && ok "without the step the convolutions stay frozen" || bad "convs changed without unfreeze"
$CMP run-unf2/last.safetensors run-ref/model.safetensors --only conv --tol 0 --expect-differ \
    && ok "after the unfreeze step the convolutions train" || bad "unfreeze did not unfreeze"
# the first epoch of the unfreezing run equals the frozen run's first epoch: resume across the step
run unf-a $U --set train.epochs=2 --set "train.unfreeze=[{epoch: 2, freeze: none}]" --set train.max_steps=1 \
    || { cat log-unf-a.txt; bad "max_steps run"; }
"$G" train base.yaml --quiet --resume run-unf-a $U --set train.epochs=2 \
    --set "train.unfreeze=[{epoch: 2, freeze: none}]" > log-unf-r.txt 2>&1 || { cat log-unf-r.txt; bad "resume across unfreeze"; }

# 6. bad data: a clear error, exit 1, and no run directory
$PY - <<'PY'
import numpy as np, shutil
x = np.load("data/x_train.npy"); y = np.load("data/y_train.npy")
np.save("data/y_short.npy", y[:-5])                      # count mismatch
np.save("data/x_small.npy", x[:, :, :20, :20])           # wrong image size
np.save("data/x_no1.npy", x[y != 1]); np.save("data/y_no1.npy", y[y != 1])  # class 1 absent
open("data/trunc.npy", "wb").write(open("data/x_train.npy", "rb").read()[:5000])  # truncated
PY
head -c 3000 /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz > data/trunc-idx.gz
check_bad() { # NAME MESSAGE-FRAGMENT ARGS...
    name=$1; msg=$2; shift 2
    "$G" train base.yaml --quiet --out "run-bad-$name" "$@" > "log-bad-$name.txt" 2>&1; rc=$?
    if [ $rc -ne 1 ] && [ $rc -ne 2 ]; then bad "bad data $name: exit $rc"; cat "log-bad-$name.txt"; return; fi
    grep -q -- "$msg" "log-bad-$name.txt" || { bad "bad data $name: message"; cat "log-bad-$name.txt"; return; }
    [ -e "run-bad-$name" ] && { bad "bad data $name left run-bad-$name"; return; }
    ok "bad data $name: $(head -1 log-bad-$name.txt)"
}
check_bad count "label" --set data.train.labels=data/y_short.npy
check_bad size "28" --set data.train.images=data/x_small.npy
check_bad truncated "trunc.npy" --set data.train.images=data/trunc.npy
check_bad idx "trunc-idx.gz" --set "data.train={format: idx, images: data/trunc-idx.gz, labels: /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz}"
check_bad class "class" --set "data.classes=[3, 42]"
check_bad shots "class 1" --set data.train.images=data/x_no1.npy --set data.train.labels=data/y_no1.npy \
    --set "data.classes=[0, 1]" --set data.shots=5
# the data loads while the device opens: a bad file is still the error reported before a bad device
check_bad data-before-device "trunc.npy" --set data.train.images=data/trunc.npy --device 99:99
exit $fail
