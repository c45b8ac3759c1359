#!/bin/sh
# test_samples.sh — the sample programs (graft.h only) fine-tune, evaluate and predict for real.
# usage: test_samples.sh FINETUNE INFER SOURCE_DIR WORK_DIR
FT=$(realpath "$1"); INF=$(realpath "$2"); SRC=$3; W=$4
PY=${GRAFT_TEST_PYTHON:-/usr/bin/python3}  # run_tests.py names the GPU machine's
rm -rf "$W"; mkdir -p "$W"; cd "$W" || exit 1
cp "$SRC/tests/train/base.yaml" "$SRC/tests/train/tiny-cnn.yaml" .
$PY "$SRC/tests/train/make_data.py" data >/dev/null || exit 1
"$FT" base.yaml run train.epochs=2 > ft.txt 2>&1 || { cat ft.txt; echo "FAIL: finetune"; exit 1; }
cat ft.txt
grep -q "^test: loss" ft.txt || { echo "FAIL: no test line"; exit 1; }
"$FT" base.yaml run train.epochs=zero > bad.txt 2>&1; rc=$?
[ $rc = 2 ] && grep -q "base.yaml\|--set" bad.txt || { cat bad.txt; echo "FAIL: bad override exit $rc"; exit 1; }
"$INF" base.yaml run/model.safetensors data/x_test.npy logits.npy > inf.txt 2>&1 || { cat inf.txt; echo "FAIL: infer"; exit 1; }
cat inf.txt
$PY - <<'PY' || exit 1
import numpy as np, re
logits = np.load("logits.npy"); y = np.load("data/y_test.npy")
assert logits.shape == (400, 10) and logits.dtype == np.float32, logits.shape
acc = float((logits.argmax(1) == y).mean())
# finetune's own test accuracy on the same images must match the sample's predictions
line = [l for l in open("ft.txt") if l.startswith("test:")][0]
ref = float(re.search(r"accuracy ([0-9.]+)", line).group(1))
assert abs(acc - ref) < 1e-3, (acc, ref)
print(f"ok: infer's argmax accuracy {acc:.4f} equals finetune's evaluation {ref:.4f}")
PY
