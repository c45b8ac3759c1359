#!/bin/sh
# test_demo_adapt.sh — `graft demo --adapt` end to end on a small Fashion-M: the shipped recipes
# (copied with the model into a scratch configs/), tools/make_shift.py wrapped to build 256 images
# per split, one epoch; the table must list every method with both domains and a gain.
# usage: test_demo_adapt.sh GRAFT SOURCE_DIR WORK_DIR
G=$(realpath "$1"); SRC=$(realpath "$2"); W=$3
PY=${GRAFT_TEST_PYTHON:-/usr/bin/python3}  # run_tests.py names the GPU machine's
$PY -c "import numpy, skimage" 2>/dev/null || { echo "SKIP: $PY lacks numpy or skimage"; exit 77; }
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || { echo "SKIP: no Fashion-MNIST"; exit 77; }
# Fashion-M's backgrounds: the photos Debian's python3-skimage ships (tools/make_shift.py)
[ -f /usr/lib/python3/dist-packages/skimage/data/astronaut.png ] ||
    { echo "SKIP: no python3-skimage photos in /usr/lib/python3/dist-packages/skimage/data"; exit 77; }
rm -rf "$W"; mkdir -p "$W/configs/recipes" "$W/configs/models" "$W/tools"; cd "$W" || exit 1
cp "$SRC"/configs/recipes/fmnist-to-fmnistm-*.yaml configs/recipes/
cp "$SRC/configs/models/fmnist-cnn.yaml" configs/models/
cat > tools/make_shift.py <<PYX
import os, sys
os.execv("$PY", ["python3", "$SRC/tools/make_shift.py"] + sys.argv[1:] + ["--limit", "256"])
PYX
# a Python that is not there: a clear error naming it and GRAFT_PYTHON, exit 1, no table
GRAFT_PYTHON=/nonexistent/python3 "$G" demo --adapt --configs configs --out runs/bad --epochs 1 \
    --quiet > bad.txt 2> bad.err
rc=$?
{ [ $rc = 1 ] && grep -q "/nonexistent/python3" bad.err && grep -q GRAFT_PYTHON bad.err \
    && ! grep -q "^best: " bad.txt; } || { cat bad.txt bad.err; echo "FAIL: GRAFT_PYTHON missing: exit $rc"; exit 1; }
"$G" demo --adapt --configs configs --out runs/demo --epochs 1 --quiet > demo.txt 2> demo.err \
    || { cat demo.txt demo.err; echo "FAIL: graft demo --adapt"; exit 1; }
cat demo.txt
fail=0
for m in source-only adabn coral mmd dann; do
    grep -Eq "^$m +fmnist-to-fmnistm-$m +0\.[0-9]{4} +0\.[0-9]{4} " demo.txt || { echo "FAIL: no row for $m"; fail=1; }
done
grep -q "^best: " demo.txt || { echo "FAIL: no best line"; fail=1; }
[ -f runs/fashion-m/MANIFEST ] && [ -f runs/demo/fmnist-to-fmnistm-dann/summary.json ] \
    && [ -f runs/demo/fmnist-to-fmnistm-source-only/model-adabn.safetensors ] || { echo "FAIL: run files"; fail=1; }
[ $fail = 0 ] && echo "test_demo_adapt: ok"
exit $fail
