# common.sh — shared by the reliability tests (sourced): a work folder with the training tests'
# recipe (tests/train/base.yaml on tiny-cnn) and its Fashion-MNIST subset, and small checks.
# Needs G (graft), SRC (source root) and W (work folder) set by the caller.
PY=/usr/bin/python3
rm -rf "$W"; mkdir -p "$W"; cd "$W" || exit 1
W=$(pwd)
# as tests/meson.build's test_env: no first-run GEMM tuning (it changes kernels, hence bits)
export GRAFT_TUNE=${GRAFT_TUNE:-off}
cp "$SRC/tests/train/base.yaml" "$SRC/tests/train/tiny-cnn.yaml" .
$PY "$SRC/tests/train/make_data.py" data >/dev/null || { echo "cannot make data"; exit 1; }
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
# one_error FILE: the file (a failing command's stderr) is exactly one line 'graft: error: ...'
one_error() {
    [ "$(wc -l < "$1")" = 1 ] && grep -q '^graft: error: ' "$1"
}
# finite_st FILE: a safetensors file that loads and holds only finite values
finite_st() {
    $PY - "$1" <<'PYEOF'
import sys, os, numpy as np
sys.path.insert(0, os.path.join(os.environ["SRC"], "tests", "torch"))
from oracle import st_read
t = st_read(sys.argv[1])
assert t and all(np.isfinite(v).all() for v in t.values()), sys.argv[1]
PYEOF
}
export SRC
