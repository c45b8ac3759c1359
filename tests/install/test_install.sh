#!/bin/sh
# test_install.sh BUILD SRC WORK — `meson install` into a staging directory, then the samples built
# the way a user builds them: `cc sample.c $(pkg-config --cflags --libs graft)` against the staged
# prefix (PKG_CONFIG_SYSROOT_DIR maps the prefix into it, as for any staged install), and run.
set -u
B=$(realpath "$1"); SRC=$(realpath "$2"); W=$3
fail=0
no() { echo "FAIL: $*"; fail=1; }
rm -rf "$W"; mkdir -p "$W"; W=$(realpath "$W"); cd "$W" || exit 1
command -v cc >/dev/null && command -v pkg-config >/dev/null || { echo "SKIP: no cc or pkg-config"; exit 77; }
meson install -C "$B" --destdir "$W/stage" --no-rebuild --quiet > install.log 2>&1 ||
    { cat install.log; echo "FAIL: meson install"; exit 1; }
PREFIX=$(meson introspect "$B" --buildoptions | /usr/bin/python3 -c \
    'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
SAN=$(meson introspect "$B" --buildoptions | /usr/bin/python3 -c \
    'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="b_sanitize"][0])')
[ "$SAN" = none ] || { echo "SKIP: a sanitizer build ($SAN): its libgraft.so needs the sanitizer runtime that cc does not link"; exit 77; }
LIBDIR=$(meson introspect "$B" --buildoptions | /usr/bin/python3 -c \
    'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="libdir"][0])')
case $LIBDIR in /*) ;; *) LIBDIR=$PREFIX/$LIBDIR ;; esac
S=$W/stage
for f in "$PREFIX/include/graft.h" "$PREFIX/bin/graft" "$LIBDIR/libgraft.a" "$LIBDIR/pkgconfig/graft.pc" \
         "$LIBDIR/libgraft.so" "$LIBDIR/libgraft.so.0"; do
    [ -e "$S$f" ] || no "not installed: $f"
done
[ -n "$(ls "$S$PREFIX"/share/man/man1/graft.1 2>/dev/null)" ] || no "not installed: share/man/man1/graft.1"
# the shipped recipes, with the schema their first line points at, under DATADIR/graft
R=$S$PREFIX/share/graft/configs/recipes/fmnist-pretrain.yaml
[ -f "$R" ] && [ -f "$S$PREFIX/share/graft/configs/models/fmnist-cnn.yaml" ] || no "not installed: share/graft/configs"
schema=$(sed -n '1s/^# yaml-language-server: \$schema=//p' "$R")
[ -n "$schema" ] && cmp -s "$(dirname "$R")/$schema" "$SRC/docs/recipe.schema.json" ||
    no "the installed recipe's \$schema ($schema) is not the installed docs/recipe.schema.json"
readelf -d "$S$LIBDIR/libgraft.so" | grep -q 'SONAME.*\[libgraft.so.0\]' || no "libgraft.so has no soname libgraft.so.0"
# only the graft_ API is exported
bad=$(nm -D --defined-only "$S$LIBDIR/libgraft.so" | awk '$2 ~ /[TDB]/ && $3 !~ /^graft_/ {print $3}' | head -5)
[ -z "$bad" ] || no "libgraft.so exports non-graft symbols: $bad"
export PKG_CONFIG_PATH="$S$LIBDIR/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$S"
[ "$(pkg-config --modversion graft)" = "$(sed -n 's/^#define GRAFT_VERSION "\(.*\)"/\1/p' "$SRC/engine/include/graft.h")" ] ||
    no "pkg-config --modversion graft"
for s in finetune infer; do
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Werror -o "$s" "$SRC/samples/$s.c" $(pkg-config --cflags --libs graft) ||
        no "cc $s.c \$(pkg-config --cflags --libs graft)"
done
# the header is C99 and C++ clean
printf '#include <graft.h>\nint main(void) { return graft_version()[0] == 0; }\n' > hdr.c
# shellcheck disable=SC2046
cc -std=c99 -pedantic -Wall -Wextra -Werror -c hdr.c $(pkg-config --cflags graft) || no "graft.h under -std=c99 -pedantic"
if command -v c++ >/dev/null; then
    # shellcheck disable=SC2046
    c++ -x c++ -pedantic -Wall -Wextra -Werror -c hdr.c -o hdr-cxx.o $(pkg-config --cflags graft) || no "graft.h in C++"
fi
[ "$fail" = 0 ] || exit 1
export LD_LIBRARY_PATH="$S$LIBDIR"
ldd ./infer | grep -q "libgraft.so.0 => $S$LIBDIR/libgraft.so.0" || { ldd ./infer; no "infer does not load the staged libgraft.so.0"; }
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || { echo "SKIP: no Fashion-MNIST"; exit 77; }
cp "$SRC/tests/train/base.yaml" "$SRC/tests/train/tiny-cnn.yaml" .
/usr/bin/python3 "$SRC/tests/train/make_data.py" data >/dev/null || exit 1
./finetune base.yaml run train.epochs=1 > ft.txt 2>&1 || { cat ft.txt; no "finetune (installed library)"; }
cat ft.txt
./infer base.yaml run/model.safetensors data/x_test.npy logits.npy > inf.txt 2>&1 || { cat inf.txt; no "infer (installed library)"; }
cat inf.txt
/usr/bin/python3 - <<'PY' || no "infer's logits"
import numpy as np, re
logits = np.load("logits.npy"); y = np.load("data/y_test.npy")
acc = float((logits.argmax(1) == y).mean())
ref = float(re.search(r"accuracy ([0-9.]+)", [l for l in open("ft.txt") if l.startswith("test:")][0]).group(1))
assert logits.shape == (400, 10) and abs(acc - ref) < 1e-3, (logits.shape, acc, ref)
print(f"ok: the installed samples agree: accuracy {acc:.4f} = {ref:.4f}")
PY
# the installed program runs and names its versions
"$S$PREFIX/bin/graft" --version > version.txt || no "installed graft --version"
grep -q "^graft " version.txt && grep -q "^CLBlast " version.txt && grep -q "^libyaml " version.txt ||
    { cat version.txt; no "graft --version lines"; }
[ "$fail" = 0 ] && echo "test_install: ok"
exit $fail
