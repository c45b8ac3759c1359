#!/bin/sh
# test_predict_image.sh — `graft predict --image`: a small model trained on an image folder names
# the classes of images by their folder names, with probabilities that sum to one; a file that is
# not an image is a clear error.
# usage: test_predict_image.sh GRAFT SOURCE_DIR WORK_DIR
G=$(realpath "$1"); SRC=$2; W=$3
PY=${GRAFT_TEST_PYTHON:-/usr/bin/python3}  # run_tests.py names the GPU machine's
rm -rf "$W"; mkdir -p "$W"; cd "$W" || exit 1
cp "$SRC/tests/train/tiny-cnn.yaml" .
$PY "$SRC/tests/train/make_data.py" data >/dev/null || exit 1
$PY - <<'PY' || exit 1
import numpy as np, os
from PIL import Image
x, y = np.load("data/x_train.npy"), np.load("data/y_train.npy")
names = {0: "t-shirt", 1: "trouser", 7: "sneaker"}
for label, name in names.items():
    os.makedirs(f"imgs/{name}", exist_ok=True)
    for i, idx in enumerate(np.nonzero(y == label)[0][:60]):
        Image.fromarray(x[idx, 0]).save(f"imgs/{name}/{i}.png")
PY
cat > recipe.yaml <<'Y'
name: folder-predict
model: {file: tiny-cnn.yaml}
data: {format: folder, root: imgs, val_split: 0, normalize: {mean: [0.2860], std: [0.3530]}}
transfer: {head: {cut: fc2, layers: [{name: fc2, type: dense, units: 3}]}}
train: {epochs: 8, batch_size: 16, lr: 3.0e-3, seed: 1}
Y
"$G" train recipe.yaml --quiet --out run > train.txt 2>&1 || { cat train.txt; echo "FAIL: train"; exit 1; }
"$G" predict recipe.yaml --weights run/model.safetensors --top 3 \
    --image imgs/t-shirt/1.png --image imgs/trouser/2.png --image imgs/sneaker/3.png \
    --image imgs/trouser/4.png --image imgs/sneaker/5.png --image imgs/t-shirt/6.png > pred.txt 2>&1 \
    || { cat pred.txt; echo "FAIL: predict"; exit 1; }
cat pred.txt
$PY - <<'PY' || exit 1
lines = open("pred.txt").read().splitlines()
files = [l for l in lines if not l.startswith(" ")]
assert len(files) == 6, lines
right = 0
for i, f in enumerate(files):
    rows = lines[lines.index(f) + 1:lines.index(f) + 4]
    names = [r.split()[1] for r in rows]
    probs = [float(r.split()[-1]) for r in rows]
    assert sorted(names) == ["sneaker", "t-shirt", "trouser"], names
    assert abs(sum(probs) - 1) < 1e-3 and probs == sorted(probs, reverse=True), probs
    right += names[0] == f.split("/")[1]
assert right >= 5, f"only {right} of 6 named right"
print(f"ok: {right} of 6 images named by their folder, probabilities sum to 1")
PY
"$G" predict recipe.yaml --weights run/model.safetensors --image recipe.yaml > bad.txt 2>&1; rc=$?
[ $rc = 1 ] && grep -q "recipe.yaml: not a PNG or JPEG" bad.txt || { cat bad.txt; echo "FAIL: bad image exit $rc"; exit 1; }
echo "ok: a non-image is a clear error"
