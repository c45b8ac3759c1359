#!/bin/sh
# test_kernel_warnings.sh — the kernels recipes need build without a compiler warning on PoCL, cold.
# PoCL prints LLVM's warnings (a loop it was told to unroll and could not, say) on stderr when it
# compiles a kernel at its first launch, and clang's land in the build log (shown with
# GRAFT_BUILD_LOG=1); every other test runs on warm caches and never sees either. Each recipe runs
# one `graft bench` step with PoCL's kernel cache and Graft's cache empty, and stderr must hold no
# "warning". usage: test_kernel_warnings.sh GRAFT ROOT
G=$1
R=$2
if ! "$G" devices 2>/dev/null | grep -q "Portable Computing Language"; then
    echo "SKIP: no PoCL device"
    exit 77
fi
W=$(mktemp -d /tmp/graft-kernel-warnings.XXXXXX)
fail=0
# (compile ahead off: what its helper process compiled would print its warnings to /dev/null)
run() { # run NAME RECIPE [ENV=VALUE...]: one cold step of RECIPE
    name=$1 recipe=$2
    shift 2
    rm -rf "$W/pocl" "$W/graft"
    mkdir -p "$W/pocl"
    env POCL_CACHE_DIR="$W/pocl" GRAFT_CACHE_DIR="$W/graft" GRAFT_BUILD_LOG=1 GRAFT_TUNE=off \
        GRAFT_COMPILE_AHEAD=off \
        POCL_DEVICES=pthread GRAFT_DEVICE=pocl "$@" \
        "$G" bench "$R/configs/recipes/$recipe" --no-tune --steps 1 --warmup 0 \
        >"$W/out" 2>"$W/err"
    rc=$?
    if [ $rc != 0 ]; then
        echo "FAIL: $name: graft bench exited $rc"
        cat "$W/err"
        fail=1
    elif grep -qi "warning" "$W/err"; then
        echo "FAIL: $name: the kernels built with warnings:"
        cat "$W/err"
        fail=1
    else
        echo "ok: $name: no warnings ($(grep -c 'built with options' "$W/err") non-empty build logs)"
    fi
}
# the CPU convolution paths (wino on conv2-4 and rows on conv1, the defaults on CPUs; rows on all;
# wino4, the frozen layers' default;
# implicit GEMM; im2col + GEMM), batchnorm, pooling, dense, dropout, the loss and Adam
run "fmnist-pretrain (wino + rows)" fmnist-pretrain.yaml
run "fmnist-pretrain (rows)" fmnist-pretrain.yaml GRAFT_CONV=rows
run "fmnist-pretrain (wino4)" fmnist-pretrain.yaml GRAFT_CONV=wino4
run "fmnist-pretrain (igemm)" fmnist-pretrain.yaml GRAFT_CONV=igemm
run "fmnist-pretrain (im2col)" fmnist-pretrain.yaml GRAFT_CONV=im2col
# patch embedding, layernorm, attention, tokens, GELU
run "vit-fmnist-pretrain" vit-fmnist-pretrain.yaml
# The same kernels compiled for an AVX2 CPU (what PoCL does on a Zen 3), where float16 is not a
# register: clang warned at every float16 builtin call that it "changes the ABI" until every program
# began with CL_PRELUDE (context.c). Only where this CPU runs AVX2 code and PoCL has the kernel
# library for it; the vector width is the one such a device reports.
AVX2_LIB=$(ls /usr/share/pocl/kernel-*-avx2.bc /usr/lib/*/pocl/kernel-*-avx2.bc 2>/dev/null | head -n 1)
if [ -n "$AVX2_LIB" ] && grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
    CAP="POCL_LLVM_CPU_NAME=haswell POCL_KERNELLIB_NAME=avx2 GRAFT_DEVICE_VECTOR_WIDTH=8"
    # shellcheck disable=SC2086 # CAP is three words on purpose
    run "fmnist-pretrain (wino + rows, AVX2)" fmnist-pretrain.yaml $CAP
    # shellcheck disable=SC2086
    run "fmnist-pretrain (wino4, AVX2)" fmnist-pretrain.yaml $CAP GRAFT_CONV=wino4
    # shellcheck disable=SC2086
    run "vit-fmnist-pretrain (AVX2)" vit-fmnist-pretrain.yaml $CAP
else
    echo "note: no AVX2 run (PoCL's AVX2 kernel library or an AVX2 CPU missing)"
fi
rm -rf "$W"
exit $fail
