#!/bin/sh
# test_conventions.sh GRAFT MANPAGE SRC — the program's conventions: --version names the library,
# OpenCL, CLBlast and libyaml versions; `graft help CMD` and graft(1) carry the same text as
# `CMD --help`; the man page documents exit codes and the environment; exit codes 2 (usage,
# recipe) and 1 (run-time); no terminal escapes in any of it.
set -u
G=$1; MAN=$2; SRC=$3
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }
"$G" --version > "$T/v" || no "--version exit $?"
cat "$T/v"
want=$(sed -n 's/^#define GRAFT_VERSION "\(.*\)"/\1/p' "$SRC/engine/include/graft.h")
[ "$(head -1 "$T/v")" = "graft $want" ] || no "--version first line"
grep -q '^OpenCL ICD loader: ' "$T/v" || no "--version: no ICD loader line"
grep -q '^OpenCL platform 0: ' "$T/v" || no "--version: no platform line"
if command -v pkg-config >/dev/null; then
    grep -qx "CLBlast $(pkg-config --modversion clblast)" "$T/v" || no "--version: CLBlast"
    grep -qx "libyaml $(pkg-config --modversion yaml-0.1)" "$T/v" || no "--version: libyaml"
fi
"$G" help --man > "$T/man" || no "help --man"
cmp -s "$T/man" "$MAN" || no "the built graft.1 differs from graft help --man"
cmds=$("$G" --help | sed -n 's/^  \([a-z]*\)  .*/\1/p')
[ "$(echo "$cmds" | wc -l)" -ge 10 ] || no "graft --help lists $(echo "$cmds" | wc -l) commands"
for c in $cmds; do
    "$G" help "$c" > "$T/h1" || no "graft help $c"
    "$G" "$c" --help > "$T/h2" || no "graft $c --help"
    cmp -s "$T/h1" "$T/h2" || no "graft help $c differs from graft $c --help"
    grep -q "^\.SS $c\$" "$T/man" || no "graft.1 has no section for $c"
    first=$(head -1 "$T/h1" | sed 's/\\/\\e/g; s/^\([.'"'"']\)/\\\&\1/')
    grep -qF -- "$first" "$T/man" || no "graft.1 lacks the usage line of $c"
done
for s in '^\.SH EXIT STATUS' '^\.B 2$' '^\.SH ENVIRONMENT' '^\.B NO_COLOR$' '^\.B GRAFT_DEVICE$' '^\.SH DIAGNOSTICS'; do
    grep -q "$s" "$T/man" || no "graft.1 lacks $s"
done
if command -v groff >/dev/null; then
    groff -man -ww -z "$MAN" 2> "$T/groff" ; [ ! -s "$T/groff" ] || { cat "$T/groff"; no "groff warnings"; }
fi
"$G" --help "$T" > "$T/all" 2>&1; "$G" help --man >> "$T/all"
if LC_ALL=C grep -q "$(printf '\033')" "$T/all"; then no "terminal escapes in help or man output"; fi
"$G" nosuch > /dev/null 2>&1; [ $? = 2 ] || no "unknown command: exit 2"
"$G" help nosuch > /dev/null 2>&1; [ $? = 2 ] || no "graft help nosuch: exit 2"
"$G" check "$T/missing.yaml" > /dev/null 2> "$T/e"; [ $? = 2 ] || no "missing recipe: exit 2"
/usr/bin/python3 -c "import numpy, sys; numpy.save(sys.argv[1], numpy.ones((1, 1, 8, 8), numpy.float32))" "$T/x.npy"
"$G" predict "$SRC/tests/bad/base/good.yaml" --weights "$T/none.safetensors" --input "$T/x.npy" \
    --output "$T/y.npy" > /dev/null 2> "$T/e"
[ $? = 1 ] && grep -q '^graft: error: .*none.safetensors' "$T/e" || { cat "$T/e"; no "missing weights: exit 1"; }
[ "$fail" = 0 ] && echo "test_conventions: ok"
exit $fail
