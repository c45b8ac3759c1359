#!/bin/sh
# machine.sh BINARY PYTHON... — what tests/gpu/run.sh records about the machine it runs on: the
# GPU and its driver, the CPU, the OpenCL platforms, the libraries BINARY lacks, and each Python's
# torch (CUDA or not) and PyYAML. Every probe runs even when one fails.
bin=$1
shift
date -u
uname -a
git log -1 --format='commit %H %s' 2>/dev/null || echo "commit: (no .git here)"
# a device run carries the working tree, not its history: the commit above can be an older one
# (the H200 run of 2026-12-04 evening named a16eecd for a tree six commits later)
echo "tracked files differing from that commit: $(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)"
nvidia-smi -L
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
grep -m1 'model name' /proc/cpuinfo
echo "logical cores: $(nproc)"
clinfo -l
echo "libraries $bin lacks here:"
ldd "$bin" | grep 'not found' || echo "  none"
for p in "$@"; do
    "$p" -c 'import sys, numpy, torch; print(sys.executable, "torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.version.cuda)'
    "$p" -c 'import yaml; print("yaml", yaml.__version__)'
done
exit 0
