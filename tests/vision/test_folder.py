#!/usr/bin/python3
"""test_folder.py — the ImageFolder source (format: folder) end to end. Writes Fashion-MNIST
images as PNG and JPEG class folders in every colour mode (gray, gray+alpha, palette, RGB, RGBA)
and several sizes; checks the decoded, converted, resized and cropped pixels against Pillow +
torchvision's Resize/CenterCrop (PNG exactly, JPEG within ±1); checks that broken, truncated,
empty and non-image files are reported file by file (data.on_bad_image: stop lists them, skip
leaves them out); then trains tiny-cnn from the folders with `graft train` (data.root given
with --set) and checks the test accuracy.

usage: test_folder.py GRAFT FOLDER_DUMP WORKDIR      exit 77 without numpy/PIL/torchvision"""
import gzip
import json
import os
import shutil
import subprocess
import sys

try:
    import numpy as np
    from PIL import Image
    import torchvision.transforms as T
except ImportError as exc:
    print(f"skip: {exc}")
    sys.exit(77)

graft, dump, work = sys.argv[1:4]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SRC = "/usr/share/datasets/fashion-mnist"
if not os.path.isdir(SRC):
    print("skip: no Fashion-MNIST (dataset-fashion-mnist)")
    sys.exit(77)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
failures = 0


def check(what, ok, detail=""):
    global failures
    failures += 0 if ok else 1
    print(f"  {'ok  ' if ok else 'FAIL'} {what} {detail}")


def idx(name):
    with gzip.open(os.path.join(SRC, name)) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


CLASSES = ["0-tshirt", "1-trouser", "2-pullover", "3-dress"]
# (mode, format, size): every decoder path and channel conversion, square and not, at 28 and larger
STYLES = [("L", "png", (28, 28)), ("L", "jpeg", (36, 36)), ("RGB", "png", (40, 32)),
          ("RGBA", "png", (28, 28)), ("RGB", "jpeg", (32, 44)), ("LA", "png", (30, 30)),
          ("P", "png", (33, 29)), ("L", "png", (28, 28))]


def styled(a, k):
    mode, fmt, size = STYLES[k % len(STYLES)]
    im = Image.fromarray(a, "L")
    if size != (28, 28):
        im = im.resize(size, Image.BICUBIC)
    if mode in ("RGB", "RGBA", "P"):
        rgb = np.stack([np.asarray(im), np.asarray(im)[::-1], 255 - np.asarray(im)], 2)
        im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
        if mode == "RGBA":
            im.putalpha(Image.fromarray(np.asarray(im)[:, :, 0] // 2))
        if mode == "P":
            im = im.quantize(64)
    elif mode == "LA":
        im = im.convert("LA")
    return im, fmt


def write_folder(root, x, y, per_class):
    counts = {c: 0 for c in range(len(CLASSES))}
    k = 0
    for a, label in zip(x, y):
        if label >= len(CLASSES) or counts[label] >= per_class:
            continue
        counts[label] += 1
        im, fmt = styled(a, k)
        d = os.path.join(root, CLASSES[label])
        os.makedirs(d, exist_ok=True)
        name = os.path.join(d, f"img{k:05d}.{'png' if fmt == 'png' else 'jpg'}")
        im.save(name, "PNG" if fmt == "png" else "JPEG", quality=90)
        k += 1
        if all(v >= per_class for v in counts.values()):
            break


xtr, ytr = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
xte, yte = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
train_root, test_root = os.path.join(work, "train"), os.path.join(work, "test")
write_folder(train_root, xtr, ytr, 120)
write_folder(test_root, xte, yte, 50)


def reference(path, c, h, w):
    im = Image.open(path)
    im = im.convert("L" if c == 1 else "RGB")
    if im.size != (w, h):
        im = T.CenterCrop((h, w))(T.Resize(max(h, w))(im))
    a = np.asarray(im, np.int16)
    return a[None] if c == 1 else a.transpose(2, 0, 1)


def run_dump(root, c, h, w, mode, out):
    return subprocess.run([dump, root, str(c), str(h), str(w), mode, out], capture_output=True, text=True)


# 1. pixels against Pillow + torchvision, gray and RGB inputs, at 28 (most files resized) and 24
for c, h, w in ((1, 28, 28), (3, 28, 28), (3, 24, 20)):
    out = os.path.join(work, f"dump-{c}-{h}-{w}")
    r = run_dump(train_root, c, h, w, "stop", out)
    if r.returncode != 0:
        check(f"folder_load {c}x{h}x{w}", False, r.stderr)
        continue
    pix = np.fromfile(out + ".pix", np.uint8).astype(np.int16).reshape(-1, c, h, w)
    lines = open(out + ".txt").read().splitlines()
    classes = [ln.split(" ", 2)[2] for ln in lines if ln.startswith("class ")]
    rows = [ln.split(" ", 1) for ln in lines if not ln.startswith("class ")]
    check(f"{c}x{h}x{w}: classes sorted", classes == sorted(CLASSES), str(classes))
    check(f"{c}x{h}x{w}: every file read", len(rows) == 4 * 120, f"({len(rows)})")
    worst = {"png": 0, "jpg": 0}
    wrong_label = 0
    for (label, path), got in zip(rows, pix):
        want = reference(path, c, h, w)
        kind = "png" if path.endswith(".png") else "jpg"
        worst[kind] = max(worst[kind], int(np.max(np.abs(got - want))))
        wrong_label += CLASSES[int(label)] != os.path.basename(os.path.dirname(path))
    check(f"{c}x{h}x{w}: PNG pixels equal Pillow's", worst["png"] == 0, f"(max |diff| {worst['png']})")
    check(f"{c}x{h}x{w}: JPEG pixels within 1 of Pillow's", worst["jpg"] <= 1, f"(max |diff| {worst['jpg']})")
    check(f"{c}x{h}x{w}: labels are the sub-folders", wrong_label == 0)

# 2. bad files, one by one
bad_root = os.path.join(work, "bad")
shutil.copytree(test_root, bad_root)
cls = os.path.join(bad_root, CLASSES[1])
good = sorted(os.listdir(cls))
png = open(os.path.join(cls, [g for g in good if g.endswith(".png")][0]), "rb").read()
jpg = open(os.path.join(cls, [g for g in good if g.endswith(".jpg")][0]), "rb").read()
bad = {"cut.png": png[:len(png) // 2], "cut.jpg": jpg[:len(jpg) // 2], "notes.txt": b"not an image\n",
       "empty.png": b"", "fake.jpg": b"\xff\xd8\xff\xe0garbage" * 3}
for name, data in bad.items():
    with open(os.path.join(cls, name), "wb") as f:
        f.write(data)
r = run_dump(bad_root, 1, 28, 28, "stop", os.path.join(work, "dump-bad"))
check("stop: the load fails", r.returncode == 1, f"(exit {r.returncode})")
listed = [n for n in bad if os.path.join(cls, n) in r.stderr]
check("stop: the message names every bad file", len(listed) == len(bad), f"({sorted(listed)})\n{r.stderr}")
check("stop: and says how many", f"{len(bad)} of {200 + len(bad)} files" in r.stderr)
r = run_dump(bad_root, 1, 28, 28, "skip", os.path.join(work, "dump-bad"))
check("skip: the load succeeds", r.returncode == 0, r.stderr)
if r.returncode == 0:
    rep = open(os.path.join(work, "dump-bad.report")).read().splitlines()
    check("skip: one report line per bad file", len(rep) == len(bad) and
          all(any(ln.startswith(os.path.join(cls, n) + ":") for ln in rep) for n in bad), "\n" + "\n".join(rep))
    check("skip: the good files are all kept", "200 images" in r.stdout, r.stdout.strip())
    print("    " + "\n    ".join(rep))

# 3. a test folder with some of the training classes keeps the training labels; an unknown one fails
part = os.path.join(work, "part")
for k in (1, 3):
    shutil.copytree(os.path.join(test_root, CLASSES[k]), os.path.join(part, CLASSES[k]))
r = subprocess.run([dump, part, "1", "28", "28", "stop", os.path.join(work, "dump-part"), *CLASSES],
                   capture_output=True, text=True)
labels = sorted({int(ln.split()[0]) for ln in open(os.path.join(work, "dump-part.txt")) if not ln.startswith("class")}) \
    if r.returncode == 0 else None
check("a partial test folder keeps the training labels", labels == [1, 3], f"({labels}) {r.stderr}")
os.makedirs(os.path.join(part, "9-boot"))
shutil.copy(os.path.join(part, CLASSES[1], sorted(os.listdir(os.path.join(part, CLASSES[1])))[0]),
            os.path.join(part, "9-boot"))
r = subprocess.run([dump, part, "1", "28", "28", "stop", os.path.join(work, "dump-part"), *CLASSES],
                   capture_output=True, text=True)
check("a class the training folder lacks is an error", r.returncode == 1 and "class '9-boot' is not one of" in r.stderr,
      r.stderr.strip())

# 4. graft train from the folders (the root given with --set), then with a bad file skipped
recipe = os.path.join(work, "recipe.yaml")
model = open(os.path.join(ROOT, "tests", "train", "tiny-cnn.yaml")).read()
with open(os.path.join(work, "tiny-cnn-4.yaml"), "w") as f:
    f.write(model.replace("{name: fc2, type: dense, units: 10}", "{name: fc2, type: dense, units: 4}"))
with open(recipe, "w") as f:
    f.write(f"""name: folder-test
model: {{file: tiny-cnn-4.yaml}}
data:
  format: folder
  root: {test_root}
  test: {{root: {test_root}}}
  normalize: {{mean: [0.2860], std: [0.3530]}}
  val_split: 0.1
  seed: 3
train: {{epochs: 6, batch_size: 32, optimizer: adam, lr: 3.0e-3, seed: 5}}
""")
run = os.path.join(work, "run")
r = subprocess.run([graft, "train", recipe, "--quiet", "--out", run, "--set", f"data.root={train_root}"], capture_output=True, text=True)
print(r.stdout[-600:], r.stderr[-600:])
check("graft train from a folder", r.returncode == 0, f"(exit {r.returncode})")
if r.returncode == 0:
    summ = json.load(open(os.path.join(run, "summary.json")))
    acc = summ.get("test_accuracy", 0)
    check("test accuracy on 4 classes well above chance", acc >= 0.7, f"({acc:.3f})")
    resolved = open(os.path.join(run, "recipe.yaml")).read()
    check("--set data.root reaches the run's recipe", train_root in resolved)
r = subprocess.run([graft, "train", recipe, "--quiet", "--out", run + "-bad", "--set", f"data.root={bad_root}",
                    "--set", "train.epochs=1"], capture_output=True, text=True)
check("graft train stops on a folder with bad files", r.returncode == 1 and "cut.jpg" in r.stderr,
      f"(exit {r.returncode}) {r.stderr.strip()[:300]}")
r = subprocess.run([graft, "train", recipe, "--quiet", "--out", run + "-skip", "--set", f"data.root={bad_root}",
                    "--set", "train.epochs=1",
                    "--set", "data.on_bad_image=skip"], capture_output=True, text=True)
check("graft train with data.on_bad_image: skip", r.returncode == 0, r.stderr.strip()[:300])
r = subprocess.run([graft, "check", recipe, "--set", "data.on_bad_image=maybe"], capture_output=True, text=True)
check("data.on_bad_image: a bad value is a recipe error", r.returncode == 2 and "on_bad_image" in r.stderr + r.stdout,
      (r.stdout + r.stderr).strip()[:300])
print(f"{'PASS' if failures == 0 else 'FAIL'}: {failures} check(s) failed")
sys.exit(1 if failures else 0)
