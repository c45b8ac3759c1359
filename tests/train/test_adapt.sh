#!/bin/sh
# test_adapt.sh — domain adaptation end to end on a small Fashion-M (tools/make_shift.py --limit):
# every method trains and reports both domains per epoch; a DANN run killed mid-training resumes
# bitwise exactly (the target stream's position and the discriminator are checkpoint state);
# AdaBN in the run equals `graft adapt` on the unadapted weights and changes only batchnorm
# statistics; graft plan shows the extra layers; a target folder of unreadable files and a target
# of another channel count fail with positioned errors and no run directory.
# usage: test_adapt.sh GRAFT SOURCE_DIR WORK_DIR
G=$(realpath "$1"); SRC=$(realpath "$2"); W=$3
PY=${GRAFT_TEST_PYTHON:-/usr/bin/python3}  # run_tests.py names the GPU machine's
$PY -c "import numpy, skimage" 2>/dev/null || { echo "SKIP: $PY lacks numpy or skimage"; exit 77; }
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || { echo "SKIP: no Fashion-MNIST"; exit 77; }
# Fashion-M's backgrounds: the photos Debian's python3-skimage ships (tools/make_shift.py)
[ -f /usr/lib/python3/dist-packages/skimage/data/astronaut.png ] ||
    { echo "SKIP: no python3-skimage photos in /usr/lib/python3/dist-packages/skimage/data"; exit 77; }
rm -rf "$W"; mkdir -p "$W"; cd "$W" || exit 1
$PY "$SRC/tools/make_shift.py" fm --limit 640 >/dev/null || { echo "FAIL: make_shift"; exit 1; }
CMP="$PY $SRC/tests/train/compare.py"
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
sed 's/input: \[1, 28, 28\]/input: [3, 28, 28]/' "$SRC/tests/train/tiny-cnn.yaml" > tiny-rgb.yaml
cat > base.yaml <<'Y'
name: adapt-test
model: {file: tiny-rgb.yaml}
data:
  train: {format: idx, images: fm/source-train-images.idx, labels: fm/source-train-labels.idx}
  test: {format: idx, images: fm/target-test-images.idx, labels: fm/target-test-labels.idx}
  val_split: 0
  normalize: {mean: [0.286, 0.286, 0.286], std: [0.353, 0.353, 0.353]}
adapt:
  method: none
  # 10 source batches per epoch and 6 target batches per target epoch: the streams drift apart
  target: {format: idx, images: fm/target-train-images.idx}
  source_test: {format: idx, images: fm/source-test-images.idx, labels: fm/source-test-labels.idx}
train: {epochs: 6, batch_size: 64, optimizer: adam, lr: 3.0e-3, seed: 4}
Y
# the target: 384 of the 640 images (6 batches of 64), so its epochs end apart from the source's
$PY - <<'PYX'
import struct
d = open("fm/target-train-images.idx", "rb").read()
n = 384
hdr = struct.pack(">HBB", 0, 8, 4) + struct.pack(">IIII", n, 3, 28, 28)
open("fm/target-384-images.idx", "wb").write(hdr + d[20:20 + n * 3 * 28 * 28])
PYX
T="--set adapt.target.images=fm/target-384-images.idx"
run() { # run NAME METHOD ARGS...
    name=$1; m=$2; shift 2
    "$G" train base.yaml --quiet --out "run-$name" --set "adapt.method=$m" $T "$@" > "log-$name.txt" 2>&1
}

# 1. every method: metrics carry both domains and the alignment loss each epoch
for m in none adabn coral mmd dann; do
    L=""; [ $m = coral ] || [ $m = mmd ] || [ $m = dann ] && L="--set adapt.layer=fc1"
    run $m $m $L || { cat log-$m.txt; bad "$m run"; continue; }
    $PY - run-$m $m <<'PYX' && ok "$m: $(tail -1 run-$m/metrics.jsonl | cut -c1-40)..., $(cat run-$m/acc.txt)" || bad "$m metrics/summary"
import json, sys
d, m = sys.argv[1], sys.argv[2]
lines = [json.loads(l) for l in open(d + "/metrics.jsonl")]
assert len(lines) == 6
for l in lines:
    assert 0 <= l["source_accuracy"] <= 1 and 0 <= l["target_accuracy"] <= 1, l
    if m in ("coral", "mmd", "dann"):
        assert l["align_loss"] is not None and l["align_loss"] == l["align_loss"], l
    else:
        assert l["align_loss"] is None, l
s = json.load(open(d + "/summary.json"))
a = s["adapt"]
assert a["target_test_accuracy"] == s["test_accuracy"]
if m in ("none", "adabn"):
    assert a["source_test_accuracy"] > 0.3, a  # it learned the source
assert (a["target_accuracy_before_adabn"] is not None) == (m == "adabn"), a
open(d + "/acc.txt", "w").write(f"source {a['source_test_accuracy']:.3f} target {a['target_test_accuracy']:.3f}")
PYX
done

# 1b. an aligning method runs every layer each step (source and target batches): graft bench of
#     such a recipe times no feature-cached step, and its training says why it caches nothing,
#     although the frozen prefix alone could be cached
"$G" bench base.yaml --set adapt.method=coral --set adapt.layer=fc1 $T --set transfer.freeze=flatten \
    --steps 2 --warmup 1 --json bench-coral.json > log-bench-coral.txt 2>&1 \
    || { cat log-bench-coral.txt; bad "graft bench of a coral recipe"; }
run coral-frozen coral --set adapt.layer=fc1 --set transfer.freeze=flatten --set train.epochs=1 \
    || { cat log-coral-frozen.txt; bad "coral run with a frozen prefix"; }
$PY - <<'PYX' && ok "coral with a frozen prefix: no feature cache in the bench or the run" || bad "coral: a feature cache where training has none"
import json
b, s = json.load(open("bench-coral.json")), json.load(open("run-coral-frozen/summary.json"))
assert all(d["feature_cache"] is None for d in b["devices"]), [d["feature_cache"] for d in b["devices"]]
assert s["feature_cache"] is False and "adapt" in s["feature_cache_reason"], s["feature_cache_reason"]
PYX

# 2. AdaBN: the run's adapted model equals graft adapt on its unadapted last weights; only the
#    batchnorm running statistics moved
if [ -f run-adabn/model.safetensors ]; then
    "$G" adapt base.yaml --set adapt.method=adabn $T --weights run-adabn/last.safetensors \
        --out adabn-cli.safetensors > log-adapt-cli.txt 2>&1 || { cat log-adapt-cli.txt; bad "graft adapt"; }
    grep -q "target test accuracy: .* before, .* after" log-adapt-cli.txt && ok "graft adapt: $(tail -1 log-adapt-cli.txt)" \
        || bad "graft adapt output: $(cat log-adapt-cli.txt)"
    $CMP adabn-cli.safetensors run-adabn/model.safetensors && ok "graft adapt = the run's AdaBN (bitwise)" \
        || bad "graft adapt differs from the run's AdaBN"
    $CMP run-adabn/model.safetensors run-adabn/last.safetensors --expect-differ --only bn1.running \
        && ok "AdaBN changed bn1's running statistics" || bad "AdaBN left bn1's statistics"
    for t in conv1.weight fc1.weight fc2.bias bn1.weight; do
        $CMP run-adabn/model.safetensors run-adabn/last.safetensors --only $t > /dev/null || bad "AdaBN changed $t"
    done
    "$G" adapt base.yaml --weights run-adabn/last.safetensors --out run-adabn/last.safetensors > log-same.txt 2>&1
    [ $? -eq 2 ] && ok "graft adapt refuses to overwrite its input" || bad "graft adapt --out = --weights: $(cat log-same.txt)"
fi

# 3. exact resume: a DANN run killed mid-training resumes to the same weights, discriminator and
#    Adam state included, because the target stream's position is checkpoint state
run ref dann --set adapt.layer=fc1 --set train.epochs=8 || { cat log-ref.txt; bad "reference DANN run"; }
"$G" train base.yaml --out run-kill --set adapt.method=dann --set adapt.layer=fc1 $T --set train.epochs=8 \
    --set train.checkpoint_seconds=0 > log-kill.txt 2>&1 &
pid=$!
i=0
while [ "$(cat run-kill/metrics.jsonl 2>/dev/null | wc -l)" -lt 2 ] && [ $i -lt 6000 ]; do
    sleep 0.02; i=$((i + 1))
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
done_epochs=$(cat run-kill/metrics.jsonl 2>/dev/null | wc -l)
if [ "$done_epochs" -ge 8 ]; then
    bad "the DANN run finished before it could be killed"
else
    ok "killed after $done_epochs epochs"
    "$G" train base.yaml --quiet --resume run-kill --set adapt.method=dann --set adapt.layer=fc1 $T \
        --set train.epochs=8 > log-resume.txt 2>&1 || { cat log-resume.txt; bad "resume"; }
    $CMP run-kill/last.safetensors run-ref/last.safetensors && ok "resumed weights (discriminator included) are bitwise equal" \
        || bad "resumed weights differ from the uninterrupted run"
    $CMP run-kill/state.safetensors run-ref/state.safetensors && ok "resumed optimizer state is bitwise equal" \
        || bad "resumed optimizer state differs"
    $PY - <<'PYX' && ok "resumed metrics match (target accuracy, alignment loss)" || bad "resumed metrics differ"
import json
a = [json.loads(l) for l in open("run-kill/metrics.jsonl")]
b = [json.loads(l) for l in open("run-ref/metrics.jsonl")]
assert len(a) == len(b) == 8
for x, y in zip(a, b):
    for k in ("target_accuracy", "source_accuracy", "align_loss", "train_loss"):
        assert x[k] == y[k], (k, x[k], y[k])
PYX
fi

# the target stream cycled on its own: 80 source batches (8 epochs of 10) took 80 target batches,
# 13 whole target epochs of 6 and 2 batches of the 14th
$PY - <<'PYX' && ok "the target stream's position is in state.safetensors (epoch 13, batch 2)" || bad "target stream position"
import json, struct
d = open("run-ref/state.safetensors", "rb").read()
(n,) = struct.unpack("<Q", d[:8])
m = json.loads(d[8:8 + n])["__metadata__"]
assert (m["target_epoch"], m["target_batch"]) == ("13", "2"), m
PYX

# 4. graft plan shows what adaptation adds
"$G" plan base.yaml --set adapt.method=dann --set adapt.layer=fc1 \
    --set 'adapt.discriminator={layers: [32, 16], dropout: 0.25}' > plan.txt 2>&1
grep -q "extra layer domain_disc.0" plan.txt && grep -q "gradient reversal after fc1" plan.txt \
    && grep -q "batch 128 (source + target)" plan.txt && grep -q "domain_disc.1 .*relu + dropout 0.25" plan.txt \
    && ! grep -q "domain_disc.2 .*dropout" plan.txt && ok "graft plan shows the discriminator, the reversal and the doubled batch" \
    || { cat plan.txt; bad "graft plan"; }

# 4b. the memory check before epoch 1 counts an aligning step's source and target batches and the
# adaptation's buffers: CORAL at batch 64 needs at least what no adaptation needs at 128
need() { # need NAME ARGS...: the bytes the check says the recipe needs (it fails at a 1 KiB device)
    name=$1; shift
    GRAFT_DEVICE_MEM_LIMIT=1K "$G" train base.yaml --quiet --out "run-mem-$name" $T "$@" \
        > "log-mem-$name.txt" 2>&1
    [ $? = 1 ] && [ ! -e "run-mem-$name" ] || { cat "log-mem-$name.txt" >&2; echo 0; return; }
    sed -n 's/.*needs \([0-9.]*\) \([KMG]\)iB of device memory.*/\1 \2/p' "log-mem-$name.txt" |
        awk '{ m = $2 == "K" ? 1024 : $2 == "M" ? 1048576 : 1073741824; printf "%.0f\n", $1 * m }'
}
nc=$(need coral --set adapt.method=coral --set adapt.layer=fc1)
nn=$(need none128 --set adapt.method=none --set train.batch_size=128)
[ "${nc:-0}" -gt 0 ] && [ "${nn:-0}" -gt 0 ] && [ "$nc" -ge "$nn" ] \
    && ok "memory check: CORAL at batch 64 needs $nc bytes, no adaptation at 128 $nn" \
    || bad "memory check of an aligning step: CORAL at 64 '$nc', none at 128 '$nn'"

# 5. bad targets: positioned errors, no run directory
mkdir -p junk/a junk/b
for i in 1 2 3; do echo "not an image" > junk/a/x$i.png; echo "neither" > junk/b/y$i.jpg; done
"$G" train base.yaml --quiet --out run-bad-folder --set "adapt.target={format: folder, root: junk}" > log-bad-folder.txt 2>&1
rc=$?
{ [ $rc -eq 1 ] || [ $rc -eq 2 ]; } && grep -q ":1:[0-9]*: error: adapt.target: junk: 6 of 6 files are not readable images" log-bad-folder.txt \
    && [ ! -e run-bad-folder ] && ok "unreadable target folder: $(head -c 160 log-bad-folder.txt)" \
    || { cat log-bad-folder.txt; bad "unreadable target folder (exit $rc)"; }
"$G" train base.yaml --quiet --out run-bad-gray --set "adapt.target.images=$SRC/tests/bad/base/target-ok.idx" > log-bad-gray.txt 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "error: adapt.target: .* holds 1x8x8 images" log-bad-gray.txt && [ ! -e run-bad-gray ] \
    && ok "a target of another shape: $(head -c 160 log-bad-gray.txt)" || { cat log-bad-gray.txt; bad "target of another shape (exit $rc)"; }

[ $fail = 0 ] && echo "test_adapt: all ok" || echo "test_adapt: FAILED"
exit $fail
