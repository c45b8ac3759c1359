#!/bin/sh
# test_fusion.sh — fused epilogues change the kernels, not the arithmetic: a network with every
# kind of fusion trains to bitwise-equal weights with fusion on and off (GRAFT_FUSE=0), and
# `graft plan` names the fused groups (and none when fusion is off); a stem computed inside the
# next conv's forward changes no bit either. Also bitwise: the lean builtin
# declarations against clang's full header.
# usage: test_fusion.sh GRAFT SOURCE_DIR WORK_DIR
G=$(realpath "$1"); SRC=$2; W=$3
PY=${GRAFT_TEST_PYTHON:-/usr/bin/python3}  # run_tests.py names the GPU machine's
rm -rf "$W"; mkdir -p "$W"; cd "$W" || exit 1
cp "$SRC/tests/train/base.yaml" "$SRC/tests/train/fusion-cnn.yaml" .
$PY "$SRC/tests/train/make_data.py" data >/dev/null || { echo "cannot make data"; exit 1; }
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
S="--set model.file=fusion-cnn.yaml --set train.epochs=2"

"$G" plan base.yaml $S --json > plan-on.json 2> plan-on.err || { cat plan-on.err; bad "plan"; }
GRAFT_FUSE=0 "$G" plan base.yaml $S --json > plan-off.json 2> plan-off.err || bad "plan, fusion off"
groups=$($PY -c "import json,sys; print(' '.join('+'.join(g) for g in json.load(open(sys.argv[1]))['fused_groups']))" plan-on.json)
want="conv1+act1 bn2+act2 conv3+act3 conv4+conv4_relu fc1+act5 fc2+fc2_relu"
[ "$groups" = "$want" ] && ok "fused groups: $groups" || bad "fused groups '$groups', want '$want'"
off=$($PY -c "import json,sys; print(len(json.load(open(sys.argv[1]))['fused_groups']))" plan-off.json)
[ "$off" = 0 ] && ok "GRAFT_FUSE=0: nothing fused" || bad "GRAFT_FUSE=0 still fuses $off groups"
"$G" plan base.yaml $S | grep -q "^fused: 6 activations" && ok "plan table says 6 fused" \
    || bad "plan table"

"$G" train base.yaml $S --quiet --out run-on > log-on.txt 2>&1 || { cat log-on.txt; bad "train fused"; }
GRAFT_FUSE=0 "$G" train base.yaml $S --quiet --out run-off > log-off.txt 2>&1 \
    || { cat log-off.txt; bad "train unfused"; }
$PY "$SRC/tests/train/compare.py" run-on/last.safetensors run-off/last.safetensors --tol 0 \
    && ok "fused and unfused training: bitwise-equal weights" || bad "fused and unfused weights differ"
# the trained tensors in one buffer per kind, updated a run at a time (the default), or a buffer
# and an update launch per tensor (GRAFT_ARENA=0): the same arithmetic, bitwise
GRAFT_ARENA=0 "$G" train base.yaml $S --quiet --out run-noarena > log-noarena.txt 2>&1 \
    || { cat log-noarena.txt; bad "train, a buffer per tensor"; }
$PY "$SRC/tests/train/compare.py" run-on/last.safetensors run-noarena/last.safetensors --tol 0 \
    && ok "one update launch per run and one per tensor: bitwise-equal weights" \
    || bad "GRAFT_ARENA=0 weights differ"
# On PoCL every program is built with only the builtins cl/builtins_lean.cl declares in place of
# clang's opencl-c.h (GRAFT_LEAN_BUILTINS=0: the full header): the same overloads, so the same
# code, so bitwise-equal training (elsewhere the variable changes nothing)
GRAFT_LEAN_BUILTINS=0 "$G" train base.yaml $S --quiet --out run-fullhdr > log-fullhdr.txt 2>&1 \
    || { cat log-fullhdr.txt; bad "train, full builtin header"; }
$PY "$SRC/tests/train/compare.py" run-on/last.safetensors run-fullhdr/last.safetensors --tol 0 \
    && ok "lean and full builtin declarations: bitwise-equal weights" \
    || bad "GRAFT_LEAN_BUILTINS=0 weights differ"
GRAFT_FOLD_BN=0 "$G" eval base.yaml $S --weights run-on/last.safetensors --json > eval-on.json 2>&1 \
    || bad "eval fused"
GRAFT_FUSE=0 "$G" eval base.yaml $S --weights run-on/last.safetensors --json > eval-off.json 2>&1 \
    || bad "eval unfused"
cmp -s eval-on.json eval-off.json && ok "fused and unfused evaluation agree (batchnorm not folded)" \
    || { diff eval-on.json eval-off.json | head; bad "evaluation differs"; }

# Batchnorm in eval mode folded into the conv before it: evaluation and prediction (no backward
# anywhere) and a frozen prefix. Scaling the weights instead of the outputs changes rounding only:
# logits within 1e-5 of the unfolded pipeline's, the same predictions and accuracy.
$PY - <<'PY' || bad "make predict input"
import numpy as np
rng = np.random.default_rng(3)
np.save("x.npy", rng.random((37, 1, 28, 28), dtype=np.float32))
PY
"$G" predict base.yaml $S --weights run-on/last.safetensors --input x.npy --output y-fold.npy \
    > /dev/null 2>&1 || bad "predict folded"
GRAFT_FOLD_BN=0 "$G" predict base.yaml $S --weights run-on/last.safetensors --input x.npy \
    --output y-nofold.npy > /dev/null 2>&1 || bad "predict unfolded"
$PY - <<'PY' && ok "folded batchnorm: logits within 1e-5, same classes" || bad "folded batchnorm logits"
import numpy as np
a, b = np.load("y-fold.npy"), np.load("y-nofold.npy")
err = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
print(f"  folded vs unfolded logits: max rel. err {err:.2e}, bitwise equal: {bool((a == b).all())}")
assert err < 1e-5 and (a.argmax(1) == b.argmax(1)).all()
PY
# In evaluation conv3 (with relu6) writes its output straight into conv4's padded input, which
# then skips its own padding pass (GRAFT_XPAD=0: it pads): the same arithmetic, bitwise
GRAFT_XPAD=0 "$G" predict base.yaml $S --weights run-on/last.safetensors --input x.npy \
    --output y-noxpad.npy > /dev/null 2>&1 || bad "predict, every conv padding its own input"
$PY - <<'PY' && ok "padded by the producer or by the conv itself: bitwise-equal logits" \
    || bad "GRAFT_XPAD=0 logits differ"
import numpy as np
assert (np.load("y-fold.npy") == np.load("y-noxpad.npy")).all()
PY
"$G" eval base.yaml $S --weights run-on/last.safetensors --json > eval-fold.json 2>&1 || bad "eval folded"
$PY - eval-fold.json eval-on.json <<'PY' && ok "folded batchnorm: same accuracy, loss within 1e-5" \
    || bad "folded batchnorm evaluation"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
assert a["accuracy"] == b["accuracy"], (a["accuracy"], b["accuracy"])
assert abs(a["loss"] - b["loss"]) <= 1e-5 * abs(b["loss"]), (a["loss"], b["loss"])
PY

# A folded layer runs the program its training built: conv2 (rows kernels on CPUs) is built in
# training as it is with bn2 folded in (a bias and bn2's leaky_relu, run switched off), so an
# evaluation and a frozen-prefix transfer after the training build no convolution program of
# their own (GRAFT_BUILD_LOG=2 names each program built from source; the cache starts empty).
C="$W/cache-share"
GRAFT_CACHE_DIR=$C GRAFT_BUILD_LOG=2 "$G" train base.yaml $S --quiet --out run-share \
    > log-share.txt 2>&1 || { cat log-share.txt; bad "train, fresh cache"; }
GRAFT_CACHE_DIR=$C GRAFT_BUILD_LOG=2 "$G" eval base.yaml $S --weights run-share/last.safetensors \
    > log-share-eval.txt 2>&1 || { cat log-share-eval.txt; bad "eval after training"; }
GRAFT_CACHE_DIR=$C GRAFT_BUILD_LOG=2 "$G" train base.yaml $S --set transfer.freeze=pool1 \
    --set transfer.from=run-share/last.safetensors --quiet --out run-share-fe \
    > log-share-fe.txt 2>&1 || { cat log-share-fe.txt; bad "frozen-prefix transfer"; }
if grep -q "conv_rows.cl built" log-share.txt; then
    for f in log-share-eval.txt log-share-fe.txt; do
        if grep -E "cl/(conv_rows|loss|bias)\.cl built" $f; then
            bad "$f: built convolution, loss or bias programs of its own"
        else ok "$f: no convolution, loss or bias program beyond the training's"; fi
    done
    grep -q "feature cache on" log-share-fe.txt && ok "the transfer cached its frozen features" \
        || bad "the transfer did not cache its features"
else
    ok "no rows convolution on this device: nothing to share"
fi

# A 2x2 max-pool after a convolution (and its activation, if any) on an even output: the conv's
# forward writes the pool's output and indexes where it runs Winograd (CPUs), which must not
# change a bit of training or evaluation; conv4's 7x7 output keeps its pool separate.
P="--set model.file=pool-cnn.yaml --set train.epochs=1"
cp "$SRC/tests/train/pool-cnn.yaml" .
"$G" plan base.yaml $P --json > plan-pool.json 2>/dev/null || bad "plan pool-cnn"
pools=$($PY -c "import json,sys; print(' '.join('+'.join(g) for g in json.load(open(sys.argv[1]))['pool_groups']))" plan-pool.json)
[ "$pools" = "conv2+pool1 conv3+pool2" ] && ok "pool groups: $pools" \
    || bad "pool groups '$pools', want 'conv2+pool1 conv3+pool2'"
"$G" train base.yaml $P --quiet --out run-pool-on > log-pool-on.txt 2>&1 \
    || { cat log-pool-on.txt; bad "train pool-cnn fused"; }
GRAFT_FUSE=0 "$G" train base.yaml $P --quiet --out run-pool-off > log-pool-off.txt 2>&1 \
    || { cat log-pool-off.txt; bad "train pool-cnn unfused"; }
$PY "$SRC/tests/train/compare.py" run-pool-on/last.safetensors run-pool-off/last.safetensors \
    --tol 0 && ok "pools written by their conv or on their own: bitwise-equal weights" \
    || bad "pool-cnn fused and unfused weights differ"
"$G" eval base.yaml $P --weights run-pool-on/last.safetensors --json > eval-pool-on.json 2>&1 \
    || bad "eval pool-cnn"
GRAFT_FUSE=0 "$G" eval base.yaml $P --weights run-pool-on/last.safetensors --json \
    > eval-pool-off.json 2>&1 || bad "eval pool-cnn unfused"
cmp -s eval-pool-on.json eval-pool-off.json && ok "pool-cnn: fused and unfused evaluation agree" \
    || { diff eval-pool-on.json eval-pool-off.json | head; bad "pool-cnn evaluation differs"; }

# A stem: pool-cnn's conv1 (one channel in, 3x3, padding 1) computed inside conv2's Winograd
# F(4x4) forward where no backward runs (evaluation, prediction, a frozen prefix; CPUs) instead
# of written into conv2's padded input and read back: the same values to the bit (GRAFT_STEM=0:
# written and read), and named in the plan of a transfer that freezes both
"$G" plan base.yaml $P --set transfer.freeze=pool1 --json > plan-stem.json 2>/dev/null \
    || bad "plan pool-cnn frozen"
stems=$($PY -c "import json,sys; print(' '.join('+'.join(g) for g in json.load(open(sys.argv[1]))['stem_groups']))" plan-stem.json)
[ "$stems" = "conv1+conv2" ] && ok "stem groups: $stems" || bad "stem groups '$stems', want 'conv1+conv2'"
stems=$($PY -c "import json,sys; print(len(json.load(open(sys.argv[1]))['stem_groups']))" plan-pool.json)
[ "$stems" = 0 ] && ok "no stem where conv1 trains" || bad "a stem where conv1 trains"
GRAFT_BUILD_LOG=2 "$G" predict base.yaml $P --weights run-pool-on/last.safetensors --input x.npy \
    --output y-stem.npy > log-stem.txt 2>&1 || { cat log-stem.txt; bad "predict pool-cnn"; }
GRAFT_STEM=0 "$G" predict base.yaml $P --weights run-pool-on/last.safetensors --input x.npy \
    --output y-nostem.npy > /dev/null 2>&1 || bad "predict pool-cnn, GRAFT_STEM=0"
$PY - <<'PY' && ok "stem inside conv2 or its own pass: bitwise-equal logits" || bad "stem logits differ"
import numpy as np
assert (np.load("y-stem.npy") == np.load("y-nostem.npy")).all()
PY
GRAFT_STEM=0 "$G" eval base.yaml $P --weights run-pool-on/last.safetensors --json \
    > eval-pool-nostem.json 2>&1 || bad "eval pool-cnn, GRAFT_STEM=0"
cmp -s eval-pool-on.json eval-pool-nostem.json && ok "pool-cnn: evaluation with and without the stem agree" \
    || { diff eval-pool-on.json eval-pool-nostem.json | head; bad "stem evaluation differs"; }
if grep -q "W4STEM=1" log-stem.txt; then
    ok "conv2 ran with its stem"
    # and neither conv1 (one channel in) nor conv2 (28x28) built a program of its own
    if grep "conv_rows.cl" log-stem.txt | grep -e "-DCI=1 " -e "-DHI=28" | grep -qv "W4STEM=1"; then
        grep "conv_rows.cl" log-stem.txt; bad "a stem pair built programs it never runs"
    else
        ok "the stem pair built its stem program alone"
    fi
elif grep -q "WINO4=1" log-stem.txt; then bad "conv2 on F(4x4) without its stem"
else ok "no F(4x4) forward on this device: no stem"; fi

F="$S --set transfer.freeze=pool1"
"$G" plan base.yaml $F --json > plan-frozen.json 2>/dev/null || bad "plan frozen"
groups=$($PY -c "import json,sys; print(' '.join('+'.join(g) for g in json.load(open(sys.argv[1]))['fused_groups']))" plan-frozen.json)
want="conv1+act1 conv2+bn2+act2 conv3+act3 conv4+conv4_relu fc1+act5 fc2+fc2_relu"
[ "$groups" = "$want" ] && ok "frozen prefix: bn2 folded into conv2 ($groups)" \
    || bad "frozen fused groups '$groups', want '$want'"
"$G" plan base.yaml $F | grep -q "1 eval-mode batchnorm folded" && ok "plan table says 1 folded" \
    || bad "plan table, folded"
GRAFT_FOLD_BN=0 "$G" plan base.yaml $F --json > plan-nofold.json 2>/dev/null || bad "plan nofold"
groups=$($PY -c "import json,sys; print(' '.join('+'.join(g) for g in json.load(open(sys.argv[1]))['fused_groups']))" plan-nofold.json)
case " $groups " in
    *" conv2+act2 "*|*"bn2+act2"*) [ "${groups#*conv2+bn2}" = "$groups" ] && ok "GRAFT_FOLD_BN=0: not folded ($groups)" \
        || bad "GRAFT_FOLD_BN=0 still folds: $groups" ;;
    *) bad "GRAFT_FOLD_BN=0 groups '$groups'" ;;
esac
exit $fail
