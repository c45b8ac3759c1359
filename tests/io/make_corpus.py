#!/usr/bin/env python3
"""make_corpus.py — writes the seed corpora for the io fuzzers (tests/fuzz/corpus/{safetensors,npy,
idx}): small valid files of each variant plus a few near misses. Run once; the files are committed.
Usage: make_corpus.py CORPUS_DIR"""
import gzip
import io
import json
import os
import struct
import sys

import numpy as np

root = sys.argv[1]


def put(fmt, name, data):
    os.makedirs(os.path.join(root, fmt), exist_ok=True)
    with open(os.path.join(root, fmt, name), "wb") as f:
        f.write(data)


def st(tensors, meta=None, pad=True):
    header, blobs, off = {}, [], 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, (dt, shape, raw) in tensors.items():
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


f32 = np.arange(6, dtype="<f4").reshape(2, 3)
put("safetensors", "f32", st({"w": ("F32", [2, 3], f32.tobytes())}, {"epoch": "1"}))
put("safetensors", "mixed", st({
    "a": ("F16", [2], np.array([1, -2], "<f2").tobytes()),
    "b": ("BF16", [1], b"\x80\x3f"),
    "c": ("F64", [1], np.array([0.5], "<f8").tobytes()),
    "d": ("I64", [1], np.array([3], "<i8").tobytes()),
    "e": ("I32", [], np.array([3], "<i4").tobytes()),
    "f": ("I16", [1], b"\x01\x00"),
    "g": ("I8", [1], b"\xff"),
    "h": ("U8", [2], b"\x00\xff"),
    "i": ("BOOL", [1], b"\x01"),
    "z": ("F32", [0, 4], b""),
}))
put("safetensors", "empty", st({}))
put("safetensors", "meta-only", st({}, {"k": "v", "recipe": "x"}))
put("safetensors", "overlap", st({"a": ("F32", [1], b"\0" * 4)})[:-4] + b"\0" * 4)
bad = st({"w": ("F32", [2, 3], f32.tobytes())})
put("safetensors", "truncated", bad[:-5])
put("safetensors", "unpadded", st({"w": ("F32", [2, 3], f32.tobytes())}, pad=False))

def npy(a, version=(1, 0)):
    b = io.BytesIO()
    np.lib.format.write_array(b, a, version=version)
    return b.getvalue()

put("npy", "f4-v1", npy(np.arange(12, dtype="<f4").reshape(3, 4)))
put("npy", "u1-v2", npy(np.arange(8, dtype="u1").reshape(2, 2, 2), (2, 0)))
put("npy", "i8-v3", npy(np.arange(5, dtype="<i8"), (3, 0)))
put("npy", "b1", npy(np.array([True, False])))
put("npy", "scalar", npy(np.array(1.5, dtype="<f8")))
put("npy", "empty", npy(np.zeros((0, 2), dtype="<i4")))
put("npy", "fortran", npy(np.asfortranarray(np.ones((2, 3), dtype="<f4"))))
hdr = b"{ 'shape' : ( 2 , ) , 'fortran_order':False,'descr':'<u2',}\n"
put("npy", "spaces", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr + b"\x01\x00\x02\x00")

def idx(type_, dims, data):
    return bytes([0, 0, type_, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data

img = idx(0x08, [2, 3, 3], bytes(range(18)))
put("idx", "u8-raw", img)
put("idx", "u8-gz", gzip.compress(img, mtime=0))
put("idx", "labels", idx(0x08, [4], bytes([0, 1, 2, 9])))
put("idx", "i16", idx(0x0B, [2], struct.pack(">hh", -3, 300)))
put("idx", "i32-gz", gzip.compress(idx(0x0C, [1, 2], struct.pack(">ii", -3, 70000)), mtime=0))
put("idx", "f32", idx(0x0D, [2], struct.pack(">ff", 1.5, -2)))
put("idx", "f64", idx(0x0E, [1, 1, 1, 1], struct.pack(">d", 0.1)))
put("idx", "truncated", img[:-3])
put("idx", "two-members", gzip.compress(img[:9], mtime=0) + gzip.compress(img[9:], mtime=0))
