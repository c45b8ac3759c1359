#!/usr/bin/python3
"""make_shift.py — build Fashion-M, a domain shift for `adapt:` recipes, from Debian packages only.

Fashion-MNIST (dataset-fashion-mnist) is blended with random 28x28 crops of the colour photographs
that python3-skimage ships under skimage/data/, the way MNIST-M is built from MNIST: each output
pixel is |patch - image| per RGB channel. Everything is drawn from one fixed seed, so the files are
the same on every machine.

Usage: tools/make_shift.py OUT_DIR [--seed N] [--fmnist DIR] [--photos DIR] [--limit N]

Writes into OUT_DIR (IDX, uint8, images N x 3 x 28 x 28, labels N):
  source-train-{images,labels}.idx   Fashion-MNIST as RGB (gray replicated), half A of the training set
  target-train-{images,labels}.idx   Fashion-M from half B of the training set (labels for checks only;
                                     adaptation never reads them)
  source-test-{images,labels}.idx    the test set as RGB
  target-test-{images,labels}.idx    the test set as Fashion-M
  MANIFEST                           what was built, with the seed and the photographs used
The halves are a seeded random split of the 60,000 training images (30,000 each, disjoint).
--limit N keeps the first N images of each half and of the test set (small sets for tests; the
images kept are the same as in the full build).
An existing, complete OUT_DIR with the same manifest is left as it is (the demo and tests cache it).
"""
import argparse
import gzip
import os
import struct
import sys

import numpy as np

PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png",
          "motorcycle_right.png", "rocket.jpg", "hubble_deep_field.jpg", "ihc.png", "retina.jpg",
          "color.png"]
FORMAT = 1  # bump when the construction changes (the manifest then differs and files are rebuilt)


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"make_shift: {path}: not a uint8 IDX file")
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * rank).reshape(dims)


def write_idx(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, arr.ndim))
        f.write(struct.pack(">" + "I" * arr.ndim, *arr.shape))
        f.write(arr.tobytes())
    os.replace(tmp, path)


def load_photos(photo_dir):
    from skimage import io
    out = []
    for name in PHOTOS:
        img = io.imread(os.path.join(photo_dir, name))
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        img = img[..., :3]
        if img.dtype != np.uint8:  # 16-bit or float photographs: scale to 8 bits
            img = img.astype(np.float64)
            img = (255 * (img - img.min()) / max(img.max() - img.min(), 1e-9)).astype(np.uint8)
        out.append(np.ascontiguousarray(img))
    return out


def blend(gray, photos, rng):
    """MNIST-M's construction: a random 28x28 crop of a random photograph, |patch - image| per
    channel. gray: N x 28 x 28 uint8 -> N x 3 x 28 x 28 uint8."""
    n, h, w = gray.shape
    which = rng.integers(0, len(photos), size=n)
    out = np.empty((n, 3, h, w), np.uint8)
    g = gray.astype(np.int16)
    for i in range(n):
        p = photos[which[i]]
        y = rng.integers(0, p.shape[0] - h + 1)
        x = rng.integers(0, p.shape[1] - w + 1)
        patch = p[y:y + h, x:x + w, :].astype(np.int16).transpose(2, 0, 1)
        out[i] = np.abs(patch - g[i][None]).astype(np.uint8)
    return out


def rgb(gray):
    return np.repeat(gray[:, None], 3, axis=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=20150526)  # DANN's arXiv date: any fixed number
    ap.add_argument("--fmnist", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--photos", default="/usr/lib/python3/dist-packages/skimage/data")
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    manifest = (f"fashion-m format {FORMAT}\nseed {a.seed}\nfmnist {os.path.abspath(a.fmnist)}\n"
                f"photos {' '.join(PHOTOS)}\nlimit {a.limit}\n")
    mpath = os.path.join(a.out, "MANIFEST")
    names = [f"{d}-{s}-{k}.idx" for d in ("source", "target") for s in ("train", "test")
             for k in ("images", "labels")]
    if os.path.exists(mpath) and open(mpath).read() == manifest and \
            all(os.path.exists(os.path.join(a.out, n)) for n in names):
        print(f"make_shift: {a.out} is up to date")
        return
    os.makedirs(a.out, exist_ok=True)
    if os.path.exists(mpath):
        os.remove(mpath)
    tr_x = read_idx(os.path.join(a.fmnist, "train-images-idx3-ubyte.gz"))
    tr_y = read_idx(os.path.join(a.fmnist, "train-labels-idx1-ubyte.gz"))
    te_x = read_idx(os.path.join(a.fmnist, "t10k-images-idx3-ubyte.gz"))
    te_y = read_idx(os.path.join(a.fmnist, "t10k-labels-idx1-ubyte.gz"))
    photos = load_photos(a.photos)
    rng = np.random.default_rng(a.seed)
    perm = rng.permutation(len(tr_x))
    half = len(tr_x) // 2
    # each half keeps file order, so the split is a pure function of the seed
    src, tgt = np.sort(perm[:half]), np.sort(perm[half:])
    # every random draw is made for the full sets, so a --limit build holds the same images
    tgt_img, te_img = blend(tr_x[tgt], photos, rng), blend(te_x, photos, rng)
    k = a.limit if a.limit > 0 else None
    write_idx(os.path.join(a.out, "source-train-images.idx"), rgb(tr_x[src][:k]))
    write_idx(os.path.join(a.out, "source-train-labels.idx"), tr_y[src][:k])
    write_idx(os.path.join(a.out, "target-train-images.idx"), tgt_img[:k])
    write_idx(os.path.join(a.out, "target-train-labels.idx"), tr_y[tgt][:k])
    write_idx(os.path.join(a.out, "source-test-images.idx"), rgb(te_x)[:k])
    write_idx(os.path.join(a.out, "source-test-labels.idx"), te_y[:k])
    write_idx(os.path.join(a.out, "target-test-images.idx"), te_img[:k])
    write_idx(os.path.join(a.out, "target-test-labels.idx"), te_y[:k])
    with open(mpath + ".tmp", "w") as f:
        f.write(manifest)
    os.replace(mpath + ".tmp", mpath)
    n_tr, n_te = (min(k, half), min(k, len(te_x))) if k else (half, len(te_x))
    print(f"make_shift: wrote Fashion-M to {a.out} ({n_tr} source and {n_tr} target training "
          f"images, {n_te} test images each)")


if __name__ == "__main__":
    main()
