#!/bin/sh
# test_diskfull.sh — disk full and read-only outputs (issue 20, part 4): a file-size limit
# (ulimit -f: write fails with EFBIG, SIGXFSZ is ignored) and, where this user may mount, a tiny
# tmpfs (ENOSPC) and a read-only one (EROFS). Each run fails with one clear line and exit 1, the
# previous checkpoint pair stays whole and loadable, no temporary file is left, and resuming with
# room again ends bit-identical to an uninterrupted run.
# usage: test_diskfull.sh GRAFT SOURCE_DIR WORK_DIR
G=$(realpath "$1"); SRC=$(realpath "$2"); W=$3
. "$SRC/tests/reliab/common.sh"
CMP="$PY $SRC/tests/train/compare.py"
T="--quiet --set train.epochs=3"
"$G" train base.yaml $T --out ref >ref.out 2>ref.err || { cat ref.err; bad "reference run"; }
leftovers() { ls "$1" | grep -E '\.tmp|\.next' ; }

# 1. ulimit -f: a state file (15 KiB) cannot be written under a 10 KiB limit. The kernels come
#    from Graft's cache of binaries (GRAFT_PROGRAM_CACHE=graft), which a warm run only reads: with
#    PoCL's own cache in charge (the default on PoCL) every build from source writes there first,
#    so the same limit stops the run at its first kernel (1b).
"$G" train base.yaml --quiet --set train.epochs=2 --out fsz >/dev/null 2>&1 || bad "2 epochs"
cp fsz/last.safetensors fsz-last; cp fsz/state.safetensors fsz-state
GRAFT_PROGRAM_CACHE=graft "$G" train base.yaml --quiet --set train.epochs=1 --out fsz-warm \
    >/dev/null 2>&1 || bad "1 epoch with Graft's cache of binaries"
(ulimit -f 10; GRAFT_PROGRAM_CACHE=graft exec "$G" train base.yaml $T --resume fsz) >fsz.out 2>fsz.err
rc=$?
cat fsz.err
[ $rc = 1 ] && one_error fsz.err && grep -q 'File too large' fsz.err \
    && grep -q 'checkpoint of epoch 3 was not saved (the previous one in fsz is intact)' fsz.err \
    && ok "ulimit -f: one clear error, exit 1" || bad "ulimit -f: exit $rc"
cmp -s fsz/last.safetensors fsz-last && cmp -s fsz/state.safetensors fsz-state \
    && ok "previous checkpoint pair intact" || bad "previous checkpoint changed"
[ -z "$(leftovers fsz)" ] && ok "no temporary files" || bad "left: $(leftovers fsz)"
"$G" eval base.yaml --weights fsz/last.safetensors >/dev/null 2>fsz-eval.err && ok "it loads" \
    || { cat fsz-eval.err; bad "it does not load"; }
"$G" train base.yaml $T --resume fsz >/dev/null 2>fsz2.err || { cat fsz2.err; bad "resume with room"; }
$CMP fsz/last.safetensors ref/last.safetensors && ok "resumed with room: bitwise equal to the uninterrupted run" \
    || bad "resumed weights differ"
# 1b. ... and with PoCL's cache in charge: one line that names its directory and the reason
if "$G" devices | grep -q "programs      built from source, the driver caches them"; then
    cp fsz-last fsz/last.safetensors; cp fsz-state fsz/state.safetensors
    (ulimit -f 10; exec "$G" train base.yaml $T --resume fsz) >fszd.out 2>fszd.err
    rc=$?
    cat fszd.err
    [ $rc = 1 ] && one_error fszd.err && grep -q 'PoCL cannot write its kernel cache .*(File too large)' fszd.err \
        && ok "ulimit -f, PoCL's cache: one clear error, exit 1" || bad "ulimit -f, PoCL's cache: exit $rc"
    cmp -s fsz/last.safetensors fsz-last && cmp -s fsz/state.safetensors fsz-state \
        && ok "previous checkpoint pair intact" || bad "previous checkpoint changed"
    [ -z "$(leftovers fsz)" ] && ok "no temporary files" || bad "left: $(leftovers fsz)"
else
    echo "skip: ulimit -f with the driver's cache (the default device does not use PoCL's cache)"
fi

# 2. a tiny tmpfs (ENOSPC) and a read-only one (EROFS), when mount works here (root)
M=$(pwd)/mnt; mkdir -p "$M"
if mount -t tmpfs -o size=48k tmpfs "$M" 2>/dev/null; then
    "$G" train base.yaml $T --out "$M/run" >full.out 2>full.err
    rc=$?
    cat full.err
    [ $rc = 1 ] && one_error full.err && grep -q 'No space left on device' full.err \
        && ok "tmpfs full: one clear error, exit 1" || bad "tmpfs full: exit $rc"
    [ -z "$(leftovers "$M/run")" ] && ok "no temporary files on the full disk" || bad "left: $(leftovers "$M/run")"
    if [ -f "$M/run/state.safetensors" ]; then
        cp -r "$M/run" full-copy
        "$G" train base.yaml $T --resume full-copy >/dev/null 2>full2.err || { cat full2.err; bad "resume the copy"; }
        $CMP full-copy/last.safetensors ref/last.safetensors \
            && ok "the checkpoint left on the full disk resumes to the uninterrupted run's weights" \
            || bad "resume from the full disk's checkpoint differs"
    else
        bad "no checkpoint fitted the 48 KiB disk: $(ls "$M/run")"
    fi
    umount "$M"
    mount -t tmpfs -o size=1m tmpfs "$M"
    "$G" train base.yaml --quiet --set train.epochs=1 --out "$M/ro" >/dev/null 2>&1 || bad "1 epoch"
    cp "$M/ro/last.safetensors" ro-last
    mount -o remount,ro "$M"
    "$G" train base.yaml $T --resume "$M/ro" >ro.out 2>ro.err
    rc=$?
    cat ro.err
    [ $rc = 1 ] && one_error ro.err && grep -q 'Read-only file system' ro.err \
        && cmp -s "$M/ro/last.safetensors" ro-last && ok "read-only run directory: clear error, checkpoint intact" \
        || bad "read-only: exit $rc"
    umount "$M"
else
    echo "skip: cannot mount a tmpfs here (not root): the ENOSPC and EROFS cases did not run"
fi
exit $fail
