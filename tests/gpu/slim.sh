#!/bin/sh
# slim.sh [BUILD] — make a built tree fit what a device run carries (64 MiB with the checkout and
# .gpu/): drop the debug sections of its executables and libraries, its object files and static
# library (nothing links there), and what the tests and dry runs wrote into it. The next ninja
# here rebuilds what this removed.
set -e
b=${1:-build}
find "$b" -type f \( -name '*.so*' -o -perm -u+x \) | while read -r f; do
    if head -c 4 "$f" | grep -q ELF; then objcopy --strip-debug "$f"; fi
done
find "$b" -name '*.o' -delete
rm -f "$b"/libgraft.a
rm -rf "$b"/tests/torch/oracle-* "$b"/tests/torch/hf-vit "$b"/tests/*/*work* "$b"/tests/python/work \
    "$b"/tests/graft-cache* "$b"/tests/vision/tv-* "$b"/meson-logs/*.txt
du -sh "$b"
