#!/usr/bin/python3
"""cache_check.py DIR — every entry of a Graft kernel cache is whole: magic, format, payload length
and payload SHA-256 as engine/runtime/cache.c writes them (the key hash cannot be checked without
the key; a wrong key is a miss anyway). Temporary files of killed writers (NAME.tmp.PID) are
counted, not entries. Exit 1 on any corrupt entry."""
import hashlib
import os
import struct
import sys

d = sys.argv[1]
entries = tmp = bad = 0
for f in sorted(os.listdir(d)):
    p = os.path.join(d, f)
    if ".tmp." in f:
        tmp += 1
        continue
    data = open(p, "rb").read()
    entries += 1
    ok = len(data) >= 88 and data[:8] == b"GRAFTCCH"
    if ok:
        (n,) = struct.unpack("<Q", data[48:56])
        ok = n == len(data) - 88 and hashlib.sha256(data[88:]).digest() == data[56:88]
    if not ok:
        bad += 1
        print("corrupt cache entry:", f)
print(f"{entries} cache entries, {bad} corrupt, {tmp} temporary files of killed writers")
sys.exit(1 if bad or not entries else 0)
