#!/usr/bin/python3
"""test_fmnist_folder.py — the end-to-end bar of issue 10: Fashion-MNIST (train and test subsets)
written as image folders at twice the size (56x56; PNG and JPEG alternating), and the same small
recipe (fmnist-cnn, 1x28x28) trained once from the .npy arrays of the original 28x28 pixels and once
from the folders (resized back to 28 by the loader): test accuracies must agree within
--tolerance points (default 1).

usage: test_fmnist_folder.py GRAFT WORKDIR [--train N] [--test N] [--tolerance P]"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys

try:
    import numpy as np
    from PIL import Image
except ImportError as exc:
    print(f"skip: {exc}")
    sys.exit(77)

ap = argparse.ArgumentParser()
ap.add_argument("graft")
ap.add_argument("work")
ap.add_argument("--train", type=int, default=12000)
ap.add_argument("--test", type=int, default=5000)
ap.add_argument("--tolerance", type=float, default=1.0)
a = ap.parse_args()
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SRC = "/usr/share/datasets/fashion-mnist"
if not os.path.isdir(SRC):
    print("skip: no Fashion-MNIST")
    sys.exit(77)
shutil.rmtree(a.work, ignore_errors=True)
os.makedirs(a.work)


def idx(name):
    with gzip.open(os.path.join(SRC, name)) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


NAMES = ["0-tshirt", "1-trouser", "2-pullover", "3-dress", "4-coat", "5-sandal", "6-shirt", "7-sneaker",
         "8-bag", "9-boot"]
for split, xf, yf, n in (("train", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", a.train),
                         ("test", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", a.test)):
    x, y = idx(xf)[:n], idx(yf)[:n]
    np.save(os.path.join(a.work, f"x_{split}.npy"), x.reshape(-1, 1, 28, 28))
    np.save(os.path.join(a.work, f"y_{split}.npy"), y.astype(np.int64))
    for i, (img, label) in enumerate(zip(x, y)):
        d = os.path.join(a.work, split, NAMES[label])
        os.makedirs(d, exist_ok=True)
        im = Image.fromarray(img).resize((56, 56), Image.BICUBIC)
        if i % 2:
            im.save(os.path.join(d, f"{i:05d}.jpg"), quality=95)
        else:
            im.save(os.path.join(d, f"{i:05d}.png"))

with open(os.path.join(a.work, "recipe.yaml"), "w") as f:
    f.write(f"""name: fmnist-folder-vs-arrays
model: {{file: {ROOT}/configs/models/fmnist-cnn.yaml}}
data:
  train: {{format: npy, images: x_train.npy, labels: y_train.npy}}
  test: {{format: npy, images: x_test.npy, labels: y_test.npy}}
  normalize: {{mean: [0.2860], std: [0.3530]}}
  val_split: 0
  seed: 3
train: {{epochs: 5, batch_size: 64, optimizer: adam, lr: 1.0e-3, seed: 5}}
""")
acc = {}
for source, sets in (("arrays", []),
                     ("folders", ["--set", f"data.train={{format: folder, root: {a.work}/train}}",
                                  "--set", f"data.test={{format: folder, root: {a.work}/test}}"])):
    run = os.path.join(a.work, "run-" + source)
    r = subprocess.run([a.graft, "train", os.path.join(a.work, "recipe.yaml"), "--quiet", "--out", run, *sets],
                       capture_output=True, text=True)
    print(r.stdout.strip(), r.stderr.strip())
    if r.returncode:
        print(f"FAIL: graft train from {source} exited {r.returncode}")
        sys.exit(1)
    acc[source] = json.load(open(os.path.join(run, "summary.json")))["test_accuracy"] * 100
diff = abs(acc["arrays"] - acc["folders"])
ok = diff <= a.tolerance
print(f"  {'ok  ' if ok else 'FAIL'} test accuracy from arrays {acc['arrays']:.2f}%, from 56x56 PNG/JPEG folders "
      f"{acc['folders']:.2f}% (|diff| {diff:.2f} points, tolerance {a.tolerance})")
sys.exit(0 if ok else 1)
