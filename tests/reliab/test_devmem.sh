#!/bin/sh
# test_devmem.sh — device memory (issue 20, part 3). PoCL's CPU device offers most of the host's
# memory, so GRAFT_DEVICE_MEM_LIMIT / GRAFT_DEVICE_MAX_ALLOC lower what Graft takes as the device's
# global memory and largest allocation. A recipe that cannot fit fails before training with the
# sizes and the largest batch that fits (and that batch does fit and train); an unfreeze phase that
# needs more is caught before epoch 1; an allocation refused at run time is the same clear error.
# usage: test_devmem.sh GRAFT SOURCE_DIR WORK_DIR
G=$(realpath "$1"); SRC=$(realpath "$2"); W=$3
. "$SRC/tests/reliab/common.sh"

# 1. global memory: the tiny CNN needs about 0.9 MiB at batch 32
GRAFT_DEVICE_MEM_LIMIT=100K "$G" train base.yaml --quiet --out small >small.out 2>small.err
rc=$?
cat small.err
[ $rc = 1 ] && one_error small.err && ok "exit 1, one error line" || bad "exit $rc"
grep -Eq 'needs [0-9.]+ [KM]i?B of device memory at train.batch_size 32 \(weights .*activations .*\) but .* has 100 KiB' small.err \
    && ok "says the sizes" || bad "sizes"
fit=$(sed -n 's/.*lower train.batch_size to \([0-9]*\) or less.*/\1/p' small.err)
[ -n "$fit" ] && ok "suggests train.batch_size $fit" || bad "no batch size suggested"
[ ! -e small ] && ok "nothing written" || bad "a run directory was written: $(ls small)"
GRAFT_DEVICE_MEM_LIMIT=100K "$G" train base.yaml --quiet --out fit --set train.batch_size="$fit" \
    --set train.max_steps=20 >fit.out 2>fit.err && ok "the suggested batch size fits and trains" \
    || { cat fit.err; bad "the suggested batch size does not fit"; }
GRAFT_DEVICE_MEM_LIMIT=100K "$G" train base.yaml --quiet --out fit1 --set train.batch_size=$((fit + 1)) \
    --set train.max_steps=20 >fit1.out 2>fit1.err
[ $? = 1 ] && ok "one more does not" || bad "batch $((fit + 1)) passed the check"

# graft plan says the same in advance (and still exits 0: the plan itself is fine)
GRAFT_DEVICE_MEM_LIMIT=100K "$G" plan base.yaml >plan.out 2>plan.err && grep -q "does not fit: the recipe needs" plan.out \
    && "$G" plan base.yaml | grep -q "^  fits " && ok "graft plan says whether it fits" || { cat plan.out plan.err; bad "graft plan fit"; }
GRAFT_DEVICE_MEM_LIMIT=100K "$G" plan base.yaml --json | $PY -c "import json, sys; assert json.load(sys.stdin)['memory']['device_fits'] is False" \
    && ok "graft plan --json: device_fits false" || bad "graft plan --json device_fits"

# 2. largest allocation
GRAFT_DEVICE_MAX_ALLOC=100K "$G" train base.yaml --quiet --out alloc >alloc.out 2>alloc.err
rc=$?
cat alloc.err
[ $rc = 1 ] && one_error alloc.err && grep -q 'largest device buffer at train.batch_size 32.* allocates at most 100 KiB at once; lower train.batch_size to' alloc.err \
    && [ ! -e alloc ] && ok "largest allocation checked, nothing written" || bad "largest allocation"

# 3. an unfreeze phase that trains more layers and needs more than the device has
"$G" train base.yaml --quiet --out pre --set train.epochs=1 >pre.out 2>pre.err || { cat pre.err; bad "pretrain"; }
GRAFT_DEVICE_MEM_LIMIT=750K "$G" train base.yaml --quiet --out unfreeze --set transfer.from=pre/model.safetensors \
    --set transfer.freeze=pool2 --set 'train.unfreeze=[{epoch: 2, freeze: none}]' >uf.out 2>uf.err
rc=$?
cat uf.err
[ $rc = 1 ] && grep -q 'from epoch 2 (train.unfreeze)' uf.err && [ ! -e unfreeze ] \
    && ok "the unfreeze phase is checked before epoch 1" || bad "unfreeze phase"

# 4. at run time (eval does not plan ahead): the driver-side refusal is a clear error, not a crash
GRAFT_DEVICE_MAX_ALLOC=10K "$G" eval base.yaml --weights pre/model.safetensors >ev.out 2>ev.err
rc=$?
cat ev.err
[ $rc = 1 ] && one_error ev.err && grep -q "largest allocation (10240 bytes); lower train.batch_size" ev.err \
    && ok "run-time refusal: clear error, exit 1" || bad "run-time refusal"

# 5. a bad limit is a usage error
GRAFT_DEVICE_MEM_LIMIT=lots "$G" train base.yaml --quiet --out badenv >be.out 2>be.err
[ $? = 2 ] && grep -q "GRAFT_DEVICE_MEM_LIMIT: expected a size" be.err && ok "bad GRAFT_DEVICE_MEM_LIMIT" \
    || { cat be.err; bad "bad GRAFT_DEVICE_MEM_LIMIT"; }

# 6. the float vector width (an AVX2 rehearsal on an AVX-512 host): shown, and checked
GRAFT_DEVICE_VECTOR_WIDTH=8 "$G" devices | grep -q "float 8 double" && ok "GRAFT_DEVICE_VECTOR_WIDTH shown" \
    || bad "GRAFT_DEVICE_VECTOR_WIDTH not shown by graft devices"
GRAFT_DEVICE_VECTOR_WIDTH=12 "$G" train base.yaml --quiet --out badvw >bv.out 2>bv.err
[ $? = 2 ] && grep -q "GRAFT_DEVICE_VECTOR_WIDTH: expected 1, 2, 4, 8 or 16, found '12'" bv.err && [ ! -e badvw ] \
    && ok "bad GRAFT_DEVICE_VECTOR_WIDTH" || { cat bv.err; bad "bad GRAFT_DEVICE_VECTOR_WIDTH"; }
exit $fail
