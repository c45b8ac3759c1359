#!/bin/sh
# test_bench.sh GRAFT SRCDIR — `graft bench --devices all` on PoCL exposing two devices
# (POCL_DEVICES="pthread basic", set by meson.build): both run, from an empty cache for the cold
# start, the JSON holds what docs/bench-schema.md says with consistent numbers, the peak probe is
# kept in the cache, and `graft report` compares the two devices in text, Markdown and HTML.
set -u
GRAFT=$1
SRC=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }
LAYERS=conv1,bn1,relu1,pool1,conv2,relu2,pool2,flatten,fc

n=$(POCL_DEVICES="$POCL_DEVICES" "$GRAFT" devices --json 2>/dev/null |
    python3 -c 'import json,sys; print(sum(1 for d in json.load(sys.stdin) if "Portable" in d.get("platform","")))' 2>/dev/null)
if [ "${n:-0}" -lt 2 ]; then echo "SKIP: PoCL does not expose two devices here"; exit 77; fi

export GRAFT_CACHE_DIR="$T/cache" # the peak probe's cache; cold starts use their own temp dirs
"$GRAFT" bench "$SRC/tiny.yaml" --devices all --steps 3 --warmup 1 --no-tune \
    --model-launch-us 7 --model-bandwidth-gbs 3000 \
    --json "$T/run.json" >"$T/out.txt" 2>"$T/err.txt" || { no "bench --devices all exited $?"; cat "$T/err.txt"; }
cat "$T/out.txt"
# 784: floats of one 1x28x28 input, so the step uploads 16 * (784 + 1) * 4 bytes
python3 "$SRC/check_run.py" "$T/run.json" 2 "$LAYERS" 784 || no "run.json does not check out"
[ "$(grep -c '^cost model of one step' "$T/out.txt")" = 2 ] || no "no cost-model table per device"
# the conv paths on PoCL's CPU devices: conv1 (one input channel) on rows, conv2 (8 -> 16, 3x3)
# on wino4 (op_conv.c's default_path), in JSON and text; forced onto wino, conv2 trains with its
# F(2x2) forward and evaluates with F(4x4), which the kernel column says
kernels() { # kernels RUN.json CONV1 CONV2
    python3 - "$@" <<'PY'
import json, sys
for d in json.load(open(sys.argv[1]))["devices"]:
    k = {l["name"]: l["kernel"] for l in d["layers"]}
    if (k["conv1"], k["conv2"]) != (sys.argv[2], sys.argv[3]):
        print(d["spec"], k)
        sys.exit(1)
PY
}
kernels "$T/run.json" rows wino4 || no "conv kernels in run.json are not rows / wino4"
[ "$(grep -c '^conv2 .*  wino4$' "$T/out.txt")" = 2 ] || no "no kernel column in the tables"
GRAFT_CONV=wino "$GRAFT" bench "$SRC/tiny.yaml" --devices 0:0 --steps 1 --warmup 0 --no-tune \
    --json "$T/wino.json" >"$T/wino.txt" 2>&1 || { no "bench with GRAFT_CONV=wino exited $?"; cat "$T/wino.txt"; }
kernels "$T/wino.json" wino "wino (eval wino4)" || no "GRAFT_CONV=wino: conv2 is not 'wino (eval wino4)'"
grep -q '^conv2 .*  wino (eval wino4)$' "$T/wino.txt" || no "GRAFT_CONV=wino: no kernel column"
grep -q '^gemm  *[1-9]' "$T/out.txt" && grep -q '^transfer  *0  *[1-9][0-9]*  *50240 ' "$T/out.txt" ||
    no "cost-model rows for gemm and transfer"
grep -q '^ESTIMATE, not a measurement: on a device with 7 us launches, 3000 GB/s a step takes at least' "$T/out.txt" ||
    no "no labelled estimate line"
# one helper builds `graft devices --json` and the bench's identity: the same fields and values,
# but the name is "name" in one and "device" in the other
"$GRAFT" devices --json >"$T/devices.json" 2>/dev/null || no "devices --json exited $?"
python3 - "$T/run.json" "$T/devices.json" <<'PY' || no "bench identity differs from graft devices --json"
import json, sys
listed = {d["spec"]: d for d in json.load(open(sys.argv[2]))}
for d in json.load(open(sys.argv[1]))["devices"]:
    a, b = dict(d["identity"]), dict(listed[d["spec"]])
    a["name"] = a.pop("device")
    if a != b:
        print("identity", a, "\ndevices --json", b)
        sys.exit(1)
PY
for d in basic pthread; do
    grep -q "^$d-.* measured steps of batch 16 after 1 warm-up" "$T/out.txt" || no "no table for the $d device"
done
grep -q "device 0:0 (1 of 2)" "$T/err.txt" && grep -q "device 0:1 (2 of 2)" "$T/err.txt" ||
    no "--devices all did not iterate over two devices"
# the peak was measured (not cached) in the first run, and the second run takes it from the cache
python3 - "$T/run.json" <<'PY' || no "first run's peak came from the cache"
import json, sys
sys.exit(any(d["peak"]["from_cache"] for d in json.load(open(sys.argv[1]))["devices"]))
PY
# second run, with the GEMM tuner in the cold start (the default): the peak comes from the cache
"$GRAFT" bench "$SRC/tiny.yaml" --devices pthread --steps 2 --warmup 0 \
    --json "$T/again.json" >"$T/again.txt" 2>&1 || { no "second bench exited $?"; cat "$T/again.txt"; }
python3 - "$T/run.json" "$T/again.json" <<'PY' || no "the peak probe was not kept in the cache"
import json, sys
a = {d["identity"]["device"]: d["peak"] for d in json.load(open(sys.argv[1]))["devices"]}
b = json.load(open(sys.argv[2]))["devices"][0]
p = b["peak"]
sys.exit(not (p["from_cache"] and p["gflops"] == a[b["identity"]["device"]]["gflops"]))
PY
python3 - "$T/again.json" <<'PY' || no "the cold start did not tune, or the warm start rebuilt"
import json, sys
r = json.load(open(sys.argv[1]))
st = r["devices"][0]["start"]
print("tuned start:", st)
# tiny at batch 16: fc's three GEMMs (forward, backward data, weights), as the trainer tunes
# them; conv1 and conv2 (3x3, stride 1) run paths that issue none (wino or rows on a CPU)
ok = (r["settings"]["tune"] and st["tuned_shapes"] == 3 and st["cold_tune_seconds"] > 0
      and st["cold_seconds"] > st["cold_tune_seconds"] and st["programs_built_warm"] == 0
      and st["warm_seconds"] < st["cold_seconds"])
sys.exit(not ok)
PY
grep -q "tune [0-9.]* s, [0-9]* programs" "$T/again.txt" || no "no start line with the tuning time"

# report: both devices side by side; ratios are baseline time / device time
"$GRAFT" report "$T/run.json" --baseline pthread --md --html "$T/r.html" >"$T/r.md" 2>"$T/rerr.txt" ||
    no "report exited $?"
cat "$T/r.md"
grep -q '^| D2  | pthread-.* (baseline)' "$T/r.md" || no "pthread is not the baseline D2"
grep -q '^| D1  | basic-' "$T/r.md" || no "no basic device row"
grep -q '^| layer .*| D1 fwd .*| D2 bwd .*| D1 x D2 |' "$T/r.md" || no "layer table header"
grep -q '^| conv2 .*| wino4 *| wino4 *|$' "$T/r.md" ||
    no "the rate table does not show both devices' kernel path for conv2"
python3 - "$T/run.json" "$T/r.md" <<'PY' || no "a layer ratio is not baseline time / device time"
import json, sys
devs = json.load(open(sys.argv[1]))["devices"]
tot = lambda d, l: sum((x["layers"][[y["name"] for y in x["layers"]].index(l)][p] or {}).get("median_ms", 0)
                       for x in [d] for p in ("forward", "backward"))
want = "%.2f" % (tot(devs[1], "conv2") / tot(devs[0], "conv2"))
row = [r for r in open(sys.argv[2]) if r.startswith("| conv2 ")][0]
sys.exit(row.rstrip().rstrip("|").split("|")[-1].strip() != want)
PY
python3 "$SRC/check_html.py" "$T/r.html" conv1 conv2 fc basic- pthread- "Images per second" ||
    no "HTML page is not self-contained and well-formed"
grep -q 'feature cache' "$T/r.md" "$T/out.txt" && no "a feature-cache table or line without a frozen prefix"

# tiny frozen through flatten: graft train caches those 8 layers' features, so the bench times
# that step too (feature_cache: the prefix once a batch, then fc's steps on the stored rows, with
# that step's cost model and estimate)
"$GRAFT" bench "$SRC/tiny.yaml" --set transfer.freeze=flatten --devices pthread --steps 3 \
    --warmup 1 --no-tune --model-launch-us 7 --model-bandwidth-gbs 3000 \
    --json "$T/fe.json" >"$T/fe.txt" 2>&1 || { no "bench of a frozen prefix exited $?"; cat "$T/fe.txt"; }
cat "$T/fe.txt"
python3 "$SRC/check_run.py" "$T/fe.json" 1 "$LAYERS" 784 8 || no "fe.json does not check out"
grep -q "^as graft train runs it, with the feature cache: layers 1-8 (through 'flatten') once per sample, .* a batch => .* images/s; then a step of the layers after them on those features, in device memory: .* => .* images/s$" "$T/fe.txt" ||
    no "no feature-cache line in the text"
grep -q '^cost model of that step: [1-9][0-9]* launches, .* MFLOP$' "$T/fe.txt" &&
    grep -q '^ESTIMATE, not a measurement: there a step on cached features takes at least' "$T/fe.txt" ||
    no "no cost-model or estimate line for the cached step"
"$GRAFT" report "$T/fe.json" "$T/run.json" --baseline pthread >"$T/fe-r.txt" 2>&1 || no "report of fe.json exited $?"
grep -A2 '^As trained, with the feature cache' "$T/fe-r.txt" | grep -q '^D1 .*pthread-.* flatten (8 layers) ' ||
    { no "report: no feature-cache row for the frozen run's device"; cat "$T/fe-r.txt"; }
[ "$(grep -c '^D[0-9] .* flatten (8 layers) ' "$T/fe-r.txt")" = 1 ] || no "report: a feature-cache row for a run without one"
[ "$fail" = 0 ] && echo "test_bench: ok"
exit $fail
