#!/bin/sh
# run_pytest.sh GRAFT LIBGRAFT SRC WORK JUNIT — the Python package as a user gets it: a fresh venv
# (Debian's python3 with its numpy and pytest visible), `pip install ./python` into it (offline:
# setuptools from the system, nothing downloaded), then pytest over python/tests against this
# build's libgraft.so. Skips (77) when no venv can be made. JUNIT is pytest's XML report, which
# tools/test.sh counts test by test.
set -u
G=$(realpath "$1"); LIB=$(realpath "$2"); SRC=$(realpath "$3"); W=$4; JUNIT=$5
PY=/usr/bin/python3
rm -rf "$W" "$JUNIT"; mkdir -p "$W"; W=$(realpath "$W")
$PY -c 'import pytest, numpy' 2>/dev/null || { echo "SKIP: $PY lacks pytest or numpy (python3-pytest, python3-numpy)"; exit 77; }
$PY -c 'import setuptools, wheel' 2>/dev/null || { echo "SKIP: $PY lacks setuptools or wheel for an offline pip install (python3-setuptools, python3-wheel)"; exit 77; }
if ! $PY -m venv --system-site-packages "$W/venv" > "$W/venv.log" 2>&1; then
    cat "$W/venv.log"; echo "SKIP: cannot create a venv with $PY -m venv (Debian: python3-venv)"; exit 77
fi
# a copy: building the package writes build/ and *.egg-info beside its sources
cp -r "$SRC/python" "$W/pkg"
"$W/venv/bin/pip" install --quiet --no-build-isolation --no-index "$W/pkg" > "$W/pip.log" 2>&1 ||
    { cat "$W/pip.log"; echo "FAIL: pip install ./python into a fresh venv"; exit 1; }
cd "$W" || exit 1
GRAFT_EXE=$G GRAFT_LIBRARY=$LIB GRAFT_SRC=$SRC "$W/venv/bin/python" -m pytest -p no:cacheprovider \
    -q -rs --basetemp="$W/tmp" --junitxml="$JUNIT" "$SRC/python/tests"
