#!/usr/bin/env python3
"""pycheck.py — cross-checks Graft's io against numpy and PyTorch on this machine.

numpy writes .npy files (versions 1.0/2.0/3.0, every supported dtype) that Graft must read exactly;
Python writes a safetensors file by hand (F32/F16/BF16/F64/I64/I32/U8, metadata) that Graft must
convert exactly; Graft writes a safetensors file that a hand parser, torch.frombuffer and
nn.Module.load_state_dict accept. Debian has no `safetensors` module, so the format is parsed here
in a few lines. Usage: pycheck.py IO_TOOL. Exit 77 when numpy is missing.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not installed")
    sys.exit(77)
try:
    import torch
except ImportError:
    torch = None

TOOL = sys.argv[1]
checks = failures = 0


def check(cond, what):
    global checks, failures
    checks += 1
    if not cond:
        failures += 1
        print("CHECK failed:", what, file=sys.stderr)


def tool(*args, ok=True):
    r = subprocess.run([TOOL, *args], capture_output=True, text=True)
    check((r.returncode == 0) == ok, f"io_tool {' '.join(args)} -> {r.returncode}: {r.stderr}")
    return r


def same(a, b):
    """Bit-exact float32 equality, NaN == NaN."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def write_st(path, tensors, meta=None):
    """A safetensors file by hand: {name: (dtype string, shape, raw bytes)}."""
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, (dt, shape, raw) in tensors.items():
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_st(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8 : 8 + n]), data


def check_npy(d):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((3, 4, 5)) * 100
    arrays = {
        "f4": base.astype("<f4"),
        "f8": base.astype("<f8"),
        "u1": (np.abs(base) % 256).astype("u1"),
        "i1": (base % 100).astype("i1"),
        "i2": (base * 10).astype("<i2"),
        "i4": (base * 1000).astype("<i4"),
        "i8": (base * 1000).astype("<i8"),
        "u2": np.abs(base * 10).astype("<u2"),
        "u4": np.abs(base * 1000).astype("<u4"),
        "b1": base > 0,
        "vec": np.arange(7, dtype="<i8"),
        "scalar": np.array(3.5, dtype="<f4"),
        "empty": np.zeros((0, 3), dtype="<f4"),
    }
    for name, a in arrays.items():
        for version in [(1, 0), (2, 0), (3, 0)]:
            src = os.path.join(d, f"{name}-{version[0]}.npy")
            with open(src, "wb") as f:
                np.lib.format.write_array(f, a, version=version)
            out = os.path.join(d, "out.npy")
            r = tool("npy2npy", src, out)
            if r.returncode == 0:
                got = np.load(out)
                check(got.dtype == np.float32, f"{name}: dtype {got.dtype}")
                check(same(got, a.astype(np.float32)), f"{name} v{version}: values differ")
    # np.save's own default path, and refusals
    np.save(os.path.join(d, "plain.npy"), arrays["f4"])
    tool("npy2npy", os.path.join(d, "plain.npy"), os.path.join(d, "out.npy"))
    check(same(np.load(os.path.join(d, "out.npy")), arrays["f4"]), "np.save round trip")
    np.save(os.path.join(d, "fortran.npy"), np.asfortranarray(arrays["f4"]))
    r = tool("npy2npy", os.path.join(d, "fortran.npy"), os.path.join(d, "out.npy"), ok=False)
    check("fortran_order" in r.stderr, "fortran refusal: " + r.stderr)
    np.save(os.path.join(d, "be.npy"), arrays["f4"].astype(">f4"))
    r = tool("npy2npy", os.path.join(d, "be.npy"), os.path.join(d, "out.npy"), ok=False)
    check("big-endian" in r.stderr, "big-endian refusal: " + r.stderr)
    print(f"npy: {len(arrays)} dtypes x 3 versions read exactly")


def check_st_read(d):
    rng = np.random.default_rng(7)
    f32 = rng.standard_normal((2, 3)).astype("<f4")
    # halves: normal, subnormal, inf, nan, -0, max
    f16 = np.array([1.0, -2.5, 6e-8, 5.9e-5, np.inf, -np.inf, np.nan, -0.0, 65504.0], dtype="<f2")
    f64 = np.array([0.1, 1e-40, -1e39, 3.141592653589793, 2.0**-149], dtype="<f8")
    i64 = np.array([-(2**40), 5, 2**24 + 1], dtype="<i8")
    i32 = np.array([[-7, 100000]], dtype="<i4")
    u8 = np.array([0, 128, 255], dtype="u1")
    tensors = {
        "w32": ("F32", f32.shape, f32.tobytes()),
        "h16": ("F16", f16.shape, f16.tobytes()),
        "d64": ("F64", f64.shape, f64.tobytes()),
        "l64": ("I64", i64.shape, i64.tobytes()),
        "i32": ("I32", i32.shape, i32.tobytes()),
        "u8": ("U8", u8.shape, u8.tobytes()),
    }
    expect = {
        "w32": f32,
        "h16": f16.astype(np.float32),
        "d64": f64.astype(np.float32),  # 1e39 overflows to -inf, as a C cast does
        "l64": i64.astype(np.float32),
        "i32": i32.astype(np.float32),
        "u8": u8.astype(np.float32),
    }
    # bfloat16: numpy has none; take the top halves of float32 values (truncation), and when
    # torch is here let it round to bfloat16 and convert back for the expected values
    vals = np.array([1.0, -2.0, 3.14159, 1e-30, 3e38, -0.0], dtype="<f4")
    bf_bits = (vals.view("<u4") >> 16).astype("<u2")
    tensors["b16"] = ("BF16", bf_bits.shape, bf_bits.tobytes())
    expect["b16"] = (bf_bits.astype("<u4") << 16).view("<f4")
    if torch is not None:
        tb = torch.tensor(vals).to(torch.bfloat16)
        raw = tb.view(torch.int16).numpy().astype("<i2")
        tensors["tb16"] = ("BF16", raw.shape, raw.tobytes())
        expect["tb16"] = tb.to(torch.float32).numpy()
        th = torch.tensor(vals[:5]).to(torch.float16)
        tensors["th16"] = ("F16", th.shape, th.view(torch.int16).numpy().astype("<i2").tobytes())
        expect["th16"] = th.to(torch.float32).numpy()
    path = os.path.join(d, "py.safetensors")
    write_st(path, tensors, {"format": "pt", "note": "written by python"})
    outdir = os.path.join(d, "st")
    os.makedirs(outdir, exist_ok=True)
    r = tool("st2npy", path, outdir)
    check("meta format=pt" in r.stdout and "meta note=written by python" in r.stdout,
          "metadata: " + r.stdout)
    for name, want in expect.items():
        p = os.path.join(outdir, name + ".npy")
        check(os.path.exists(p), f"{name}: not written")
        if os.path.exists(p):
            check(same(np.load(p), want), f"{name}: {np.load(p)} != {want}")
    print(f"safetensors read: {len(expect)} tensors converted exactly"
          + ("" if torch else " (torch absent: bf16/f16 via torch skipped)"))


def check_st_write(d):
    rng = np.random.default_rng(9)
    arrays = {
        "conv.weight": rng.standard_normal((4, 3, 3, 3)).astype("<f4"),
        "conv.bias": rng.standard_normal(4).astype("<f4"),
        "fc.weight": rng.standard_normal((5, 36)).astype("<f4"),
        "fc.bias": rng.standard_normal(5).astype("<f4"),
        "bn.running_var": np.abs(rng.standard_normal(4)).astype("<f4"),
    }
    files = []
    for name, a in arrays.items():
        p = os.path.join(d, name + ".npy")
        np.save(p, a)
        files.append(p)
    out = os.path.join(d, "graft.safetensors")
    tool("npy2st", out, *files, "--", "epoch", "7", "recipe_hash", "abc123")
    n, header, data = read_st(out)
    check(n % 8 == 0, f"header length {n} is a multiple of 8")
    check(data[8 + n - 1 : 8 + n] in (b" ", b"}"), "header padded with spaces")
    check(header.get("__metadata__") == {"epoch": "7", "recipe_hash": "abc123"},
          f"metadata {header.get('__metadata__')}")
    names = sorted(k for k in header if k != "__metadata__")
    check(names == sorted(arrays), f"names {names}")
    off = 0
    for name in names:  # name order, contiguous
        ent = header[name]
        check(ent["dtype"] == "F32", f"{name} dtype")
        check(ent["data_offsets"][0] == off, f"{name} begins at {ent['data_offsets'][0]}, want {off}")
        off = ent["data_offsets"][1]
        b, e = ent["data_offsets"]
        got = np.frombuffer(data[8 + n + b : 8 + n + e], dtype="<f4").reshape(ent["shape"])
        check(same(got, arrays[name]), f"{name} values")
    check(8 + n + off == len(data), "file ends with the last tensor")
    if torch is None:
        print("safetensors write: numpy parse ok (torch absent)")
        return
    buf = bytearray(data)
    sd = {}
    for name in names:
        b, e = header[name]["data_offsets"]
        t = torch.frombuffer(buf, dtype=torch.float32, count=(e - b) // 4, offset=8 + n + b)
        sd[name] = t.reshape(header[name]["shape"]).clone()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.fc = torch.nn.Linear(36, 5)

    net = Net()
    sd.pop("bn.running_var")
    net.load_state_dict(sd, strict=True)
    check(torch.equal(net.conv.weight.data, torch.from_numpy(arrays["conv.weight"])),
          "torch conv.weight")
    check(torch.equal(net.fc.bias.data, torch.from_numpy(arrays["fc.bias"])), "torch fc.bias")
    print("safetensors write: parsed by hand, loaded by torch.frombuffer and load_state_dict")


def main():
    with tempfile.TemporaryDirectory(prefix="graft-pycheck-") as d, np.errstate(over="ignore"):
        check_npy(d)
        check_st_read(d)
        check_st_write(d)
    print(f"pycheck: {checks} checks, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
