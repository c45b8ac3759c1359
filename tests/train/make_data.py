#!/usr/bin/python3
"""Write a small Fashion-MNIST subset as .npy for the training tests: the first N training images
of classes 0-4 (for pretraining) and of 5-9, and the first M test images, as uint8 N×1×28×28 with
int64 labels. usage: make_data.py OUTDIR"""
import gzip
import os
import sys

import numpy as np

src = "/usr/share/datasets/fashion-mnist"
out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def idx(name):
    with gzip.open(os.path.join(src, name)) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


xtr, ytr = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
xte, yte = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
for name, x, y, n in (("train", xtr, ytr, 1200), ("test", xte, yte, 400)):
    x, y = x[:n], y[:n]
    np.save(os.path.join(out, f"x_{name}.npy"), x.reshape(-1, 1, 28, 28))
    np.save(os.path.join(out, f"y_{name}.npy"), y.astype(np.int64))
print("wrote", out)
