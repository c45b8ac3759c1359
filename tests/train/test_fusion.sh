#!/bin/sh
# test_fusion.sh — fused epilogues change the kernels, not the arithmetic: a network with every
# kind of fusion trains to bitwise-equal weights with fusion on and off (GRAFT_FUSE=0), and
# `graft plan` names the fused groups (and none when fusion is off).
# usage: test_fusion.sh GRAFT SOURCE_DIR WORK_DIR
G=$(realpath "$1"); SRC=$2; W=$3
PY=/usr/bin/python3
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
"$G" eval base.yaml $S --weights run-on/last.safetensors --json > eval-on.json 2>&1 || bad "eval fused"
GRAFT_FUSE=0 "$G" eval base.yaml $S --weights run-on/last.safetensors --json > eval-off.json 2>&1 \
    || bad "eval unfused"
cmp -s eval-on.json eval-off.json && ok "fused and unfused evaluation agree" \
    || { diff eval-on.json eval-off.json | head; bad "evaluation differs"; }
exit $fail
