#!/usr/bin/python3
"""write_checkpoint.py OUT.safetensors [--conv1 N] — writes a float32 safetensors file by
hand (8-byte little-endian header length, JSON header, raw bytes) with the tensors of fmnist-cnn,
so transfer recipes can be checked before any training. --conv1 N changes conv1's filters to
produce a shape mismatch on purpose. Plain Python: no numpy needed."""
import array, json, random, struct, sys

def fmnist_cnn(conv1=32):
    t = {}
    def conv(n, o, i, k=3):
        t[n + ".weight"] = (o, i, k, k); t[n + ".bias"] = (o,)
    def bn(n, c):
        for s in ("weight", "bias", "running_mean", "running_var"): t[n + "." + s] = (c,)
    conv("conv1", conv1, 1); bn("bn1", conv1); conv("conv2", 32, conv1)
    conv("conv3", 64, 32); bn("bn3", 64); conv("conv4", 64, 64)
    t["fc1.weight"] = (128, 3136); t["fc1.bias"] = (128,)
    t["fc2.weight"] = (10, 128); t["fc2.bias"] = (10,)
    return t

def write(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    rng = random.Random(0)
    for name in sorted(tensors):
        n = 1
        for d in tensors[name]:
            n *= d
        v = array.array("f", (rng.gauss(0, 0.1) for _ in range(n)))
        if sys.byteorder != "little":
            v.byteswap()
        a = v.tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name]), "data_offsets": [off, off + len(a)]}
        blobs.append(a); off += len(a)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h); f.write(b"".join(blobs))

if __name__ == "__main__":
    conv1 = 32
    if len(sys.argv) > 3 and sys.argv[2] == "--conv1": conv1 = int(sys.argv[3])
    write(sys.argv[1], fmnist_cnn(conv1))
