#!/bin/sh
# test_devices.sh — the CLI's contract for `graft devices` and the usage rules.
# usage: test_devices.sh GRAFT
G=$1
fail=0
check() { # check DESCRIPTION EXPECTED-EXIT COMMAND...
    desc=$1; want=$2; shift 2
    "$@" >/tmp/graft-cli.$$.out 2>/tmp/graft-cli.$$.err; got=$?
    if [ "$got" != "$want" ]; then
        echo "FAIL: $desc: exit $got, wanted $want"; cat /tmp/graft-cli.$$.err; fail=1
    else
        echo "ok: $desc"
    fi
}
has() { # has FILE TEXT
    if ! grep -q -- "$2" "$1"; then echo "FAIL: expected '$2' in:"; cat "$1"; fail=1; fi
}

check "--version" 0 "$G" --version; has /tmp/graft-cli.$$.out "graft 0"
check "no command" 2 "$G"; has /tmp/graft-cli.$$.err "usage: graft"
check "unknown command" 2 "$G" frobnicate; has /tmp/graft-cli.$$.err "unknown command 'frobnicate'"
check "devices --help" 0 "$G" devices --help; has /tmp/graft-cli.$$.out "usage: graft devices"
check "unknown option" 2 "$G" devices --jsn; has /tmp/graft-cli.$$.err "unknown option --jsn"
check "stray argument" 2 "$G" devices extra; has /tmp/graft-cli.$$.err "unexpected argument"
check "devices table" 0 "$G" devices; has /tmp/graft-cli.$$.out "compute units"
# who keeps the compiled programs: PoCL's own kernel cache by default, Graft's on request
has /tmp/graft-cli.$$.out "programs      built from source, the driver caches them (GRAFT_PROGRAM_CACHE=driver)"
check "devices, Graft's program cache" 0 env GRAFT_PROGRAM_CACHE=graft "$G" devices
has /tmp/graft-cli.$$.out "programs      binaries in Graft's cache (GRAFT_PROGRAM_CACHE=graft)"
check "devices, PoCL's kernel cache off" 0 env POCL_KERNEL_CACHE=0 "$G" devices
has /tmp/graft-cli.$$.out "binaries in Graft's cache"
check "devices, a bad GRAFT_PROGRAM_CACHE" 0 env GRAFT_PROGRAM_CACHE=pocl "$G" devices
has /tmp/graft-cli.$$.out "GRAFT_PROGRAM_CACHE: expected graft or driver, found 'pocl'"
check "devices --json" 0 "$G" devices --json
/usr/bin/python3 - /tmp/graft-cli.$$.out <<'PY' || fail=1
import json, sys
devs = json.load(open(sys.argv[1]))
assert isinstance(devs, list) and devs, "empty device list"
for d in devs:
    for k in ("name", "vendor", "type", "platform", "driver", "compute_units", "global_mem_bytes"):
        assert k in d, f"missing {k}"
    assert d["type"] in ("cpu", "gpu", "accelerator", "other")
    assert d["compute_units"] >= 1 and d["global_mem_bytes"] > 0
pocl = [d for d in devs if "Portable Computing Language" in d["platform"]]
assert pocl, "PoCL's CPU device is not listed"
assert pocl[0]["type"] == "cpu"
assert pocl[0]["program_cache"] == "driver", pocl[0].get("program_cache")
print("ok: json lists", len(devs), "devices; PoCL:", pocl[0]["name"])
PY
# No OpenCL platform at all: a clear message and exit 1.
empty=$(mktemp -d)
check "no platform" 1 env OCL_ICD_VENDORS="$empty" OPENCL_VENDOR_PATH="$empty" "$G" devices
has /tmp/graft-cli.$$.err "graft: error: no OpenCL platform"
rmdir "$empty"
rm -f /tmp/graft-cli.$$.out /tmp/graft-cli.$$.err
exit $fail
