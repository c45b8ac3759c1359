#!/bin/sh
# run.sh — the whole GPU check in one device run, on a build carried from the build machine
# (kernels are embedded in the binary). On the build machine: sh ../shared/gpu/prepare.sh, build,
# then a device run with carry [".gpu", "build"] and the command:
#     . .gpu/env.sh && sh tests/gpu/run.sh "$OUT"
# It runs the suite on NVIDIA's OpenCL device and on that machine's PoCL, the PyTorch CUDA
# cross-check, graft demo on the GPU, and the benchmarks, writing everything under OUT.
OUT=${1:-/tmp/graft-gpu}
mkdir -p "$OUT"
PY=$(command -v python3)
export GRAFT_CACHE_DIR="$OUT/cache"
{
    date; uname -a; nvidia-smi -L 2>&1; clinfo -l 2>&1
    build/graft devices --json
} > "$OUT/machine.txt" 2>&1
build/graft devices
for dev in nvidia pocl; do
    GRAFT_DEVICE=$dev $PY tests/gpu/run_tests.py build "$OUT/tests-$dev.json" --python "$PY" \
        --suite unit --suite ops --suite gemm --suite torch --suite train --suite io --suite recipe \
        --suite cli > "$OUT/tests-$dev.txt" 2>&1
    tail -1 "$OUT/tests-$dev.txt"
done
# PyTorch on CUDA as the oracle (TF32 off): logits, one SGD and one Adam step
for m in configs/models/fmnist-cnn.yaml configs/models/resnet-small.yaml; do
    GRAFT_DEVICE=nvidia $PY tests/torch/oracle.py build/graft "$m" --batch 64 --torch-device cuda \
        --workdir "$OUT/oracle-$(basename "$m" .yaml)" > "$OUT/oracle-$(basename "$m" .yaml).txt" 2>&1
    tail -1 "$OUT/oracle-$(basename "$m" .yaml).txt"
done
# the demo on the GPU (accuracy within a point of the PoCL run)
GRAFT_DEVICE=nvidia build/graft demo --out "$OUT/demo" > "$OUT/demo.txt" 2> "$OUT/demo.err"
tail -12 "$OUT/demo.txt"
# GEMM and the benchmarks
for dev in nvidia pocl; do
    build/graft bench gemm --size 4096 --device $dev --json > "$OUT/gemm-4096-$dev.json" 2>&1
done
[ -f bench/compare.py ] && $PY bench/compare.py --help > /dev/null 2>&1 && \
    $PY bench/compare.py --graft build/graft --cuda > "$OUT/compare.txt" 2>&1
build/graft bench configs/recipes/fmnist-scratch.yaml --devices all --json "$OUT/bench-all.json" \
    > "$OUT/bench-all.txt" 2>&1
ls -la "$OUT"
