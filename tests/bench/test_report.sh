#!/bin/sh
# test_report.sh GRAFT SRCDIR — `graft report` on two committed runs (one with two PoCL devices,
# one with one): merging, the same device from two runs told apart, baselines, Markdown, HTML,
# and the errors for an unknown baseline, a file that is not JSON and a newer schema; the cost-model
# table from a schema 2 run (run-costmodel.json) beside schema 1 runs.
set -u
GRAFT=$1
SRC=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }
A=$SRC/run-two-devices.json
B=$SRC/run-pthread.json
C=$SRC/run-costmodel.json

"$GRAFT" report "$A" "$B" >"$T/out.txt" 2>&1 || no "report exited $?"
cat "$T/out.txt"
grep -q '^Devices (baseline: basic-' "$T/out.txt" || no "default baseline is not the first device"
grep -q '^D3 .*pthread-.* @ ' "$T/out.txt" || no "the second pthread run is not told apart by host"
[ "$(grep -c '^D[123] ' "$T/out.txt")" = 3 ] || no "expected three device rows"
for l in conv1 bn1 relu1 pool1 conv2 relu2 pool2 flatten fc loss; do
    grep -q "^$l " "$T/out.txt" || no "no row for layer $l"
done
# flatten has no kernels: '-' rather than a fake 0
grep -q '^flatten .* - ' "$T/out.txt" || no "flatten's empty timings not shown as -"
# images/s ratio of D3 against D1, from the files
python3 - "$A" "$B" "$T/out.txt" <<'PY' || no "images/s ratio"
import json, sys
a = json.load(open(sys.argv[1]))["devices"][0]["images_per_second"]
b = json.load(open(sys.argv[2]))["devices"][0]["images_per_second"]
row = [r for r in open(sys.argv[3]) if r.startswith("D3 ")][0].split()
sys.exit(row[-1] != "%.2f" % (b / a))
PY
# achieved rate of conv2 on D2: (forward + backward flops) / (forward + backward time)
python3 - "$A" "$T/out.txt" <<'PY' || no "conv2 GFLOP/s in the rate table"
import json, sys
d = json.load(open(sys.argv[1]))["devices"][1]
l = [x for x in d["layers"] if x["name"] == "conv2"][0]
gf = (l["forward"]["flops"] + l["backward"]["flops"]) / ((l["forward"]["median_ms"] + l["backward"]["median_ms"]) / 1e3) / 1e9
pct = 100 * gf / d["peak"]["best_gflops"]
rows = [r.split() for r in open(sys.argv[2]) if r.startswith("conv2 ")]
rate = rows[-1]  # the last conv2 row is the rate table's
sys.exit(rate[4:6] != ["%.1f" % gf, "%.0f" % pct])
PY
grep -q "Achieved GFLOP/s (forward + backward) and % of each device's probed peak; kernel paths" "$T/out.txt" || no "no rate table"
# these committed runs predate layers[].kernel: '-' in each device's kernel column
grep -q '^conv2 .*  -  *-  *-$' "$T/out.txt" || no "no '-' kernel paths for runs without them"
grep -q '^pool1 ' "$T/out.txt" && [ "$(grep -c '^pool1 ' "$T/out.txt")" = 1 ] || no "pool1 in the rate table (no arithmetic layer)"
"$GRAFT" report "$A" "$B" --md --baseline 0:1 >"$T/md.txt" || no "--md exited $?"
grep -q '^|-----|' "$T/md.txt" || no "no Markdown separator row"
grep -q '^| D2  | pthread-.* (baseline) |' "$T/md.txt" || no "--baseline by spec 0:1"
"$GRAFT" report "$A" "$B" --html "$T/p.html" >/dev/null 2>&1 || no "--html exited $?"
python3 "$SRC/check_html.py" "$T/p.html" D1 D2 D3 conv2 "Time per layer" || no "HTML checks"

# schema 1 runs only: no cost model, said so; with the schema 2 run: its counts in D4's columns,
# '-' for the schema 1 devices, the estimate row labelled as one
grep -q '^No cost model: these runs predate bench schema 2.' "$T/out.txt" || no "schema 1: no cost-model note"
"$GRAFT" report "$A" "$B" "$C" >"$T/c.txt" 2>&1 || no "report with a schema 2 run exited $?"
sed -n '/^Cost model/,$p' "$T/c.txt"
python3 - "$C" "$T/c.txt" <<'PY' || no "cost-model table"
import json, sys
cm = json.load(open(sys.argv[1]))["devices"][0]["cost_model"]
lines = open(sys.argv[2]).read().split("\n")
i = [n for n, l in enumerate(lines) if l.startswith("Cost model of one training step")][0]
head = lines[i + 1].split("  ")
rows = {l.split()[0]: l.split() for l in lines[i + 2:] if l.strip()}
ok = "D4 launches" in lines[i + 1] and "D1 launches" in lines[i + 1]
t = rows["total"]
# family, then 5 columns per device: D1..D3 are schema 1 ('-'), D4 the counts
ok = ok and t[1:16] == ["-"] * 15 and t[16] == str(cm["total"]["launches"]) and t[17] == str(cm["total"]["syncs"])
ok = ok and t[18] == str(cm["total"]["h2d_bytes"]) and t[20] == "%.2f" % (cm["total"]["traffic_bytes"] / 1e6)
ok = ok and rows["gemm"][16] == str(cm["families"]["gemm"]["launches"])
est = [l for l in lines if l.startswith("ESTIMATE ms, img/s")]
ok = ok and len(est) == 1 and est[0].split()[-5] == "%.3f" % cm["estimate"]["step_ms"]
sys.exit(not ok)
PY
"$GRAFT" report "$C" --md --html "$T/c.html" >"$T/c.md" 2>/dev/null || no "report --md of a schema 2 run"
grep -q '^## Cost model of one training step per op family' "$T/c.md" && grep -q '^| total ' "$T/c.md" ||
    no "Markdown cost-model table"
python3 "$SRC/check_html.py" "$T/c.html" "Cost model of one training step" gemm transfer || no "HTML cost model"

# a run of 70,000 layers (past the 65,536 names a single file once had room for) and two devices
# whose layer lists differ: every name gets its row, in first-seen order, without a quadratic
# search (the test's timeout catches one)
python3 - "$B" "$T/many.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
dev = run["devices"][0]
proto = dev["layers"][0]
a = dict(dev, layers=[dict(proto, name="l%d" % i) for i in range(70000)])
b = dict(dev, spec="0:9", layers=[dict(proto, name="l%d" % i) for i in range(69990, 70010)])
run["devices"] = [a, b]
json.dump(run, open(sys.argv[2], "w"))
PY
"$GRAFT" report "$T/many.json" >"$T/many.txt" 2>&1 || no "report of 70,000 layers exited $?"
grep -q '^l69999 ' "$T/many.txt" && grep -q '^l70009 ' "$T/many.txt" ||
    no "report of 70,000 layers: rows missing"
[ "$(grep -n '^l7000[0-9] ' "$T/many.txt" | head -1 | cut -d: -f1)" -gt \
  "$(grep -n '^l69999 ' "$T/many.txt" | head -1 | cut -d: -f1)" ] || no "layers out of first-seen order"

# errors
"$GRAFT" report "$A" --baseline nvidia >/dev/null 2>"$T/e1.txt"
[ $? = 2 ] || no "unknown baseline: exit status"
grep -q 'graft report: --baseline nvidia matches no device; the runs have:' "$T/e1.txt" || no "unknown baseline message"
grep -q '  pthread-.* (spec 0:1, ' "$T/e1.txt" || no "unknown baseline does not list the devices"
printf '{"schema_version": 1, "devices": [\n  {oops}\n]}\n' >"$T/bad.json"
"$GRAFT" report "$T/bad.json" >/dev/null 2>"$T/e2.txt"
[ $? = 1 ] || no "malformed JSON: exit status"
grep -q "bad.json:2:7: error: string or '}' expected near 'oops'" "$T/e2.txt" || { no "malformed JSON: position"; cat "$T/e2.txt"; }
printf '{"schema_version": 99, "devices": []}\n' >"$T/new.json"
"$GRAFT" report "$T/new.json" >/dev/null 2>"$T/e3.txt"
[ $? = 1 ] || no "newer schema: exit status"
grep -q 'new.json: schema_version 99; this graft reads 1 to 2' "$T/e3.txt" || no "newer schema message"
"$GRAFT" report >/dev/null 2>"$T/e4.txt"
[ $? = 2 ] && grep -q 'expected one or more RUN.json' "$T/e4.txt" || no "no files: usage error"
"$GRAFT" bench "$SRC/tiny.yaml" --steps 0 >/dev/null 2>"$T/e5.txt"
[ $? = 2 ] && grep -q -- '--steps 0: expected 1 to 100000' "$T/e5.txt" || no "bench --steps 0"
"$GRAFT" bench "$SRC/tiny.yaml" --devices nosuchdevice >/dev/null 2>"$T/e6.txt"
[ $? != 0 ] && grep -qi 'nosuchdevice' "$T/e6.txt" || { no "bench unknown device"; cat "$T/e6.txt"; }
"$GRAFT" bench "$SRC/tiny.yaml" --model-launch-us 7 >/dev/null 2>"$T/e7.txt"
[ $? = 2 ] && grep -q 'the estimate needs both --model-launch-us and --model-bandwidth-gbs' "$T/e7.txt" ||
    no "bench --model-launch-us alone"
"$GRAFT" bench "$SRC/tiny.yaml" --model-launch-us 7 --model-bandwidth-gbs -3 >/dev/null 2>"$T/e8.txt"
[ $? = 2 ] && grep -q -- '--model-bandwidth-gbs -3: expected a positive number' "$T/e8.txt" ||
    no "bench --model-bandwidth-gbs -3"
[ "$fail" = 0 ] && echo "test_report: ok"
exit $fail
