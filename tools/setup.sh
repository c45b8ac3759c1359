#!/bin/sh
# setup.sh — install everything Graft needs on Debian 12 (as root) and build it into build/.
# Idempotent: packages already present are left alone, and an existing build/ is reused.
set -e
cd "$(dirname "$0")/.."
pkgs="build-essential pkg-config meson ninja-build python3 ocl-icd-opencl-dev opencl-headers
      pocl-opencl-icd clinfo libclblast-dev libyaml-dev libjansson-dev zlib1g-dev
      libpng-dev libjpeg62-turbo-dev python3-pil python3-torchvision
      dataset-fashion-mnist python3-torch python3-numpy python3-yaml mesa-opencl-icd oclgrind
      clang libclang-rt-14-dev python3-pytest python3-jsonschema python3-venv python3-setuptools
      python3-wheel python3-skimage openmpi-bin libopenmpi-dev"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup.sh: need root to install:$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
[ -d build ] || meson setup build -Dwerror=true >/dev/null
ninja -C build >/dev/null
echo "setup.sh: built build/graft"
