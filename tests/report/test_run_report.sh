#!/bin/sh
# test_run_report.sh GRAFT SRC WORK — every `graft train` run leaves report.html beside its other
# outputs, drawn from the run's own files (checked number by number by check_run_report.py);
# summary.json carries the confusion matrix, per-class accuracy, the layout per phase and timing;
# metrics.jsonl the learning rate at each epoch's start (checked against the cosine formula) and
# the trainable parameters (which grow at the unfreeze step); `graft report RUN_DIR...` puts two
# runs on the same axes; its errors. With Chromium present the page is also rendered (a blank or
# missing screenshot fails); CI has no browser and skips that part, saying so.
set -u
G=$(realpath "$1"); SRC=$(realpath "$2"); W=$3
PY=/usr/bin/python3
fail=0
no() { echo "FAIL: $*"; fail=1; }
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || { echo "SKIP: no Fashion-MNIST"; exit 77; }
rm -rf "$W"; mkdir -p "$W"; cd "$W" || exit 1
cp "$SRC/tests/train/base.yaml" "$SRC/tests/train/tiny-cnn.yaml" .
$PY "$SRC/tests/train/make_data.py" data >/dev/null || exit 1
"$G" train base.yaml --quiet --out runA --set train.epochs=4 --set transfer.freeze=pool1 \
    --set 'train.unfreeze=[{epoch: 3, freeze: none}]' --set train.schedule=cosine > a.txt 2>&1 ||
    { cat a.txt; no "train runA"; }
"$G" train base.yaml --quiet --out runB --set train.epochs=3 --set train.optimizer=sgd \
    --set train.lr=0.05 > b.txt 2>&1 || { cat b.txt; no "train runB"; }
for r in runA runB; do
    [ -s $r/report.html ] || no "$r has no report.html"
    [ -z "$(ls $r | grep -v -x -E 'model.safetensors|last.safetensors|state.safetensors|metrics.jsonl|summary.json|recipe.yaml|report.html')" ] ||
        no "$r holds other files (a temporary left behind?): $(ls $r)"
    $PY "$SRC/tests/report/check_run_report.py" $r/report.html $r || no "$r/report.html"
done
$PY - <<'PY' || no "summary.json / metrics.jsonl contents"
import json, math
m = [json.loads(x) for x in open("runA/metrics.jsonl")]
s = json.load(open("runA/summary.json"))
# the cosine schedule at each epoch's start: lr * (1 + cos(pi * e / epochs)) / 2
for e, row in enumerate(m):
    want = 2e-3 * 0.5 * (1 + math.cos(math.pi * e / 4))
    assert abs(row["lr_start"] - want) < 1e-9 * 2e-3 + 1e-12, (e, row["lr_start"], want)
t = [row["trainable_params"] for row in m]
assert t[0] == t[1] < t[2] == t[3] == s["params_total"], t
assert [p["from_epoch"] for p in s["phases"]] == [1, 3] and s["unfreeze_epochs"] == [3]
assert s["phases"][1]["trainable_params"] == s["params_total"]
frozen = [l["name"] for l, tr in zip(s["layers"], s["phases"][0]["trainable"]) if l["params"] and not tr]
assert frozen == ["conv1", "bn1"], frozen
cm = s["confusion"]
assert len(cm) == 10 and sum(map(sum, cm)) == 400, "400 test images"
assert abs(sum(cm[i][i] for i in range(10)) / 400 - s["test_accuracy"]) < 1e-12
for k in ("data_seconds", "compile_seconds", "train_seconds", "test_seconds", "wall_seconds"):
    assert s["timing"][k] >= 0, k
assert s["timing"]["wall_seconds"] >= s["timing"]["train_seconds"]
print("ok: summary.json and metrics.jsonl hold what the report shows")
PY
"$G" report runA runB --html both.html > both.txt 2> both.err || { cat both.err; no "graft report runA runB"; }
cat both.txt
grep -q '^train-test  runA ' both.txt && grep -q '^train-test  runB ' both.txt || no "graft report: one row per run"
$PY "$SRC/tests/report/check_run_report.py" both.html runA runB || no "both.html"
"$G" report runA runB --md > md.txt 2>/dev/null && grep -q '^| train-test | runA ' md.txt || no "graft report --md"
[ -s report.html ] || no "graft report without --html writes report.html"
mkdir empty
"$G" report empty > /dev/null 2> e1.txt; rc=$?
[ $rc = 1 ] && grep -q 'empty: not a training run directory (no readable metrics.jsonl)' e1.txt || { cat e1.txt; no "empty directory: exit $rc"; }
"$G" report runA "$SRC/tests/bench/run-pthread.json" > /dev/null 2> e2.txt; rc=$?
[ $rc = 2 ] && grep -q 'either RUN.json files or run directories, not both' e2.txt || no "mixed arguments: exit $rc"
"$G" report runA --baseline cpu > /dev/null 2> e3.txt; rc=$?
[ $rc = 2 ] || no "--baseline with run directories: exit $rc"
# progress output: plain lines when stderr is not a terminal or TERM=dumb, a redrawn bar on a
# terminal (script(1) gives the run a pseudo-terminal, whose line endings are \r\n)
"$G" train base.yaml --out runC --set train.epochs=2 > /dev/null 2> plain.txt || no "train runC"
for term in dumb xterm; do
    TERM=$term script -qec "'$G' train base.yaml --out runC --set train.epochs=2" /dev/null > tty-$term.txt 2>&1 ||
        no "train runC under script (TERM=$term)"
done
$PY - <<'PY' || no "progress output on and off a terminal"
import re
plain, dumb, xterm = (open(f, "rb").read() for f in ("plain.txt", "tty-dumb.txt", "tty-xterm.txt"))
assert b"\r" not in plain and b"\x1b" not in plain, "carriage returns or escapes in plain output"
assert len(re.findall(rb"^epoch [12]/2: loss ", plain, re.M)) == 2, plain
lone_cr = lambda b: len(re.findall(rb"\r(?!\n)", b))
assert lone_cr(dumb) == 0 and b"\x1b" not in dumb, "TERM=dumb redraws"
assert lone_cr(xterm) > 0 and b"\x1b" not in xterm, "no bar on a terminal (or escapes)"
print(f"ok: plain lines off a terminal and with TERM=dumb; {lone_cr(xterm)} redraws on a terminal; no escapes")
PY
BROWSER=$(command -v chromium || true)
if [ -n "$BROWSER" ]; then
    P=$(mktemp -d)
    timeout 120 "$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$P" \
        --proxy-server=127.0.0.1:9 --window-size=1360,2600 --screenshot="$W/runA.png" \
        "file://$W/runA/report.html" > /dev/null 2>&1
    rm -rf "$P"
    $PY - "$W/runA.png" <<'PY' || no "Chromium screenshot of runA/report.html"
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
colors = im.getcolors(1 << 20) or []
blue = sum(n for n, c in colors if c == (31, 119, 180))  # the curves' and bars' first colour
assert im.size == (1360, 2600) and len(colors) > 50 and blue > 2000, (im.size, len(colors), blue)
print(f"ok: Chromium rendered runA/report.html: {len(colors)} colours, {blue} pixels of the series colour")
PY
else
    echo "note: no Chromium here; the rendering check is skipped (apt-get install chromium)"
fi
[ "$fail" = 0 ] && echo "test_run_report: ok"
exit $fail
