#!/bin/sh
# test_ahead.sh — compile ahead (engine/runtime/ahead.c) on PoCL, cold caches.
#  1. The launch records of a short fmnist-pretrain run (GRAFT_COMPILE_AHEAD=save:FILE), replayed
#     by `graft __compile-ahead` into an empty PoCL cache, leave nothing for the run to compile:
#     PoCL reports no kernel code generation in a second run on that cache, against dozens on an
#     empty one. So the helper builds the very programs and work-group sizes the run looks up.
#     The records also show the paths: wino4 by default; on wino (forced), training on its F(2x2)
#     forward and the test evaluation on F(4x4).
#  2. With the helper on (the default), a cold run hands it launches, gives the same results to
#     every digit as a run without it, and leaves no helper process behind.
#  3. A warm run starts no helper. A run that builds no program from cold but launches kernels
#     no run on its cache launched (an evaluation, after runs without a test split) starts one
#     (Graft's kernel markers); the same run again does not.
#  4. Bad records: a batch that does not check out is dropped whole (exit 1), never a crash; a
#     bad value of GRAFT_COMPILE_AHEAD is a usage error (exit 2).
# usage: test_ahead.sh GRAFT ROOT
G=$1
R=$2
if ! "$G" devices 2>/dev/null | grep -q "Portable Computing Language"; then
    echo "SKIP: no PoCL device"
    exit 77
fi
W=$(mktemp -d /tmp/graft-ahead.XXXXXX)
RECIPE="$R/configs/recipes/fmnist-pretrain.yaml"
SPEC=$(POCL_DEVICES=pthread "$G" devices --json | /usr/bin/python3 -c '
import json, sys
print(next("%d:%d" % (d["platform_index"], d["device_index"]) for d in json.load(sys.stdin)
           if "Portable" in d["platform"]))')
fail=0
EXTRA=""
no() {
    echo "FAIL: $*"
    fail=1
}
train() { # train NAME POCLDIR [ENV=VALUE...]: 3 steps of fmnist-pretrain into $W/NAME ($EXTRA:
          # more arguments of graft train)
    name=$1 pocl=$2
    shift 2
    mkdir -p "$pocl"
    env POCL_CACHE_DIR="$pocl" GRAFT_CACHE_DIR="$W/graft-$name" POCL_DEVICES=pthread \
        GRAFT_DEVICE="$SPEC" GRAFT_TUNE=off "$@" \
        "$G" train "$RECIPE" --out "$W/$name" --set train.max_steps=3 --set train.epochs=1 \
        --quiet $EXTRA >"$W/$name.out" 2>"$W/$name.err"
    rc=$?
    [ $rc = 0 ] || { no "$name: graft train exited $rc"; cat "$W/$name.err"; }
}
codegens() { grep -c "API: llvm_codegen" "$1"; }
summary() { # summary NAME KEY...: values from the run's summary.json
    name=$1
    shift
    /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = d
    for p in k.split("."):
        v = v[p]
    print(repr(v))' "$W/$name/summary.json" "$@"
}

# 1. record, replay into an empty cache, run on it
train record "$W/pocl-record" GRAFT_COMPILE_AHEAD="save:$W/launches.txt"
n=$(grep -c "^L " "$W/launches.txt" 2>/dev/null)
[ "${n:-0}" -ge 20 ] || no "save mode recorded ${n:-0} launches (expected the step's ~50)"
# the records name the kernels the run launched: fmnist-cnn's three 3x3 layers of 32-64 channels
# run on the wino4 path, the F(4x4) forward (training and test evaluation); the data gradient of
# the two with as many channels in as out (conv2, conv4) is that forward too, from the weights
# conv_wino4_wtd turns, and conv3's (32 -> 64) wino's F(2x2); wino's F(2x2) forward never runs
launched() { grep -c "^L [0-9]* $1 " "${2:-$W/launches.txt}"; }
for k in conv_wino4_fwd:3 conv_wino4_wtd:2 conv_wino_dgrad:1 conv_wino_fwd:0; do
    [ "$(launched ${k%:*})" = "${k#*:}" ] ||
        no "${k%:*} launched for $(launched ${k%:*}) layers, not ${k#*:}"
done
mkdir -p "$W/pocl-replay"
POCL_CACHE_DIR="$W/pocl-replay" POCL_DEVICES=pthread GRAFT_CACHE_DIR="$W/graft-replay" \
    "$G" __compile-ahead --device "$SPEC" "$W/launches.txt" >"$W/replay.out" 2>&1 ||
    { no "replay exited $?"; cat "$W/replay.out"; }
grep -q "ran $n launches, 0 unreadable lines or batches" "$W/replay.out" ||
    { no "the replay did not run every launch:"; cat "$W/replay.out"; }
train after "$W/pocl-replay" GRAFT_COMPILE_AHEAD=off POCL_DEBUG=timing
train control "$W/pocl-control" GRAFT_COMPILE_AHEAD=off POCL_DEBUG=timing
after=$(codegens "$W/after.err") control=$(codegens "$W/control.err")
# layers on the wino path (`graft tune` may choose it) train with its F(2x2) forward and evaluate
# with their program's F(4x4) one, which the pipeline asks for by marking an evaluation's
# convolutions fwd_only: forgotten, they would evaluate on wino, slower, with nothing else failing
train wino "$W/pocl-control" GRAFT_CONV=wino GRAFT_COMPILE_AHEAD="save:$W/wino.txt"
for k in conv_wino_fwd conv_wino4_fwd; do
    [ "$(launched $k "$W/wino.txt")" -ge 3 ] ||
        no "GRAFT_CONV=wino: $k launched for $(launched $k "$W/wino.txt") layers, not 3"
done
[ "$control" -ge 20 ] || no "an empty cache compiled only $control kernels (the check is blind)"
[ "$after" = 0 ] || no "after the replay the run still compiled $after kernels"
echo "ok: replay of $n launches; kernels compiled by the run: $after after it, $control without"

# 2. the helper, on a cold cache, against no helper: same results
train helper "$W/pocl-helper" GRAFT_COMPILE_AHEAD=auto
sent=$(summary helper timing.compile_ahead_launches)
[ "${sent:-0}" -ge 20 ] || no "a cold run handed the helper ${sent:-0} launches"
a=$(summary helper test_loss test_accuracy) b=$(summary control test_loss test_accuracy)
[ "$a" = "$b" ] || no "results differ with the helper: '$a' against '$b'"
if pgrep -f "__compile-ahead" >/dev/null 2>&1; then
    no "a helper outlived its run"
    pkill -f "__compile-ahead"
fi
echo "ok: cold run with the helper: $sent launches handed over, results identical"

# 3. warm: no helper
train warm "$W/pocl-helper" GRAFT_COMPILE_AHEAD=auto GRAFT_COMPILE_AHEAD_LOG=1
[ "$(summary warm timing.compile_ahead_launches)" = 0 ] || no "a warm run started the helper"
grep -q "compile-ahead" "$W/warm.err" && { no "a warm run logged compile ahead:"; cat "$W/warm.err"; }
echo "ok: warm run: no helper"
EXTRA="--set data.test=null"
train noeval "$W/pocl-eval" GRAFT_CACHE_DIR="$W/graft-eval"
EXTRA=""
train evalnew "$W/pocl-eval" GRAFT_CACHE_DIR="$W/graft-eval"
train evalwarm "$W/pocl-eval" GRAFT_CACHE_DIR="$W/graft-eval"
new=$(summary evalnew timing.compile_ahead_launches)
warm=$(summary evalwarm timing.compile_ahead_launches)
[ "${new:-0}" -ge 1 ] || no "a run with kernels new to its cache handed the helper ${new:-0} launches"
[ "$warm" = 0 ] || no "the same run again handed the helper $warm launches"
echo "ok: new kernels on warm programs: $new launches handed over, then none"

# 4. bad records: garbage, a batch whose checksum fails, the real records with bytes flipped
#    (seeded, so a failure repeats), and a file cut short; every batch that does not check out is
#    dropped whole, the rest run, and the helper exits 1 without crashing
helper_on() { # helper_on NAME FILE: replay FILE, expect exit 1
    POCL_DEVICES=pthread POCL_CACHE_DIR="$W/pocl-replay" "$G" __compile-ahead --device "$SPEC" \
        "$2" >"$W/$1.out" 2>&1
    rc=$?
    [ $rc = 1 ] || { no "$1: exit $rc (expected 1)"; cat "$W/$1.out"; }
}
printf 'P 0 nosuchsource -DX=1\nL 0 k 1 64 1 1 64 0 0 1\nA b 0\nE 0000000000000000\nB -1 5\nL x\n' \
    >"$W/bad.txt"
head -c 3000 /dev/urandom >>"$W/bad.txt"
helper_on garbage "$W/bad.txt"
grep -q "ran 0 launches" "$W/garbage.out" || { no "garbage ran something"; cat "$W/garbage.out"; }
/usr/bin/python3 - "$W/launches.txt" "$W/flipped.txt" "$W/cut.txt" <<'PY'
import random, sys
data = bytearray(open(sys.argv[1], "rb").read())
rng = random.Random(13)
flipped = bytearray(data)
for _ in range(40):
    i = rng.randrange(len(flipped))
    flipped[i] = rng.choice(b"0123456789 -abLPBAEn\n\x00\xff")
open(sys.argv[2], "wb").write(flipped)
open(sys.argv[3], "wb").write(data[: len(data) - 200])
PY
helper_on flipped "$W/flipped.txt"
helper_on cut "$W/cut.txt"
ran=$(sed -n 's/.*ran \([0-9]*\) launches.*/\1/p' "$W/cut.out")
[ "${ran:-0}" -ge 1 ] && [ "${ran:-0}" -lt "$n" ] ||
    { no "a file cut short ran ${ran:-0} of $n launches (expected its whole batches)"; cat "$W/cut.out"; }
"$G" __compile-ahead --device "$SPEC" "$W/missing.txt" >/dev/null 2>&1
[ $? = 1 ] || no "a missing file did not exit 1"
"$G" __compile-ahead >/dev/null 2>&1
[ $? = 2 ] || no "no arguments did not exit 2"
GRAFT_COMPILE_AHEAD=yes "$G" train "$RECIPE" --out "$W/badvalue" >/dev/null 2>"$W/badvalue.err"
rc=$?
[ $rc = 2 ] && grep -q "GRAFT_COMPILE_AHEAD: expected auto, on, off or save:FILE, found 'yes'" \
    "$W/badvalue.err" || { no "a bad GRAFT_COMPILE_AHEAD: exit $rc"; cat "$W/badvalue.err"; }
echo "ok: bad records and a bad GRAFT_COMPILE_AHEAD"
rm -rf "$W"
exit $fail
