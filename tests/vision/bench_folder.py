#!/usr/bin/python3
"""bench_folder.py — images/s of the image-folder pipeline, Graft against PyTorch, in one run:
(1) decode + resize + centre crop alone: Graft's folder.c (tests/vision/folder_dump) against
torchvision ImageFolder + DataLoader with 2 workers (Resize, CenterCrop, ToTensor, Normalize);
(2) resnet18 feature-extraction training (configs/recipes/resnet18-feature-extract.yaml: frozen
backbone, new linear head, Adam) against the same in a plain PyTorch loop over that DataLoader.
The folder is Fashion-MNIST upscaled to RGB JPEGs of 320x256 (photo-like decode cost).

usage: bench_folder.py GRAFT FOLDER_DUMP WORKDIR [--images N] [--size S] [--epochs E]"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision
import torchvision.transforms as T
from PIL import Image

ap = argparse.ArgumentParser()
ap.add_argument("graft")
ap.add_argument("dump")
ap.add_argument("work")
ap.add_argument("--images", type=int, default=256)
ap.add_argument("--size", type=int, default=224)
ap.add_argument("--epochs", type=int, default=3)
a = ap.parse_args()
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
torch.set_num_threads(os.cpu_count() or 2)

shutil.rmtree(a.work, ignore_errors=True)
folder = os.path.join(a.work, "images")
with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
with gzip.open("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz") as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8)
for i in range(a.images):
    d = os.path.join(folder, f"class{y[i]}")
    os.makedirs(d, exist_ok=True)
    g = Image.fromarray(x[i]).resize((320, 256), Image.BILINEAR)
    rgb = Image.merge("RGB", (g, g.transpose(Image.FLIP_LEFT_RIGHT), g.transpose(Image.FLIP_TOP_BOTTOM)))
    rgb.save(os.path.join(d, f"{i:05d}.jpg"), quality=90)
nclasses = len(os.listdir(folder))
print(f"folder: {a.images} RGB JPEG 320x256 in {nclasses} classes; input {a.size}x{a.size}; "
      f"{os.cpu_count()} CPUs; torch {torch.__version__}")
results = {}

# (1) the pipeline alone
t = time.perf_counter()
subprocess.run([a.dump, folder, "3", str(a.size), str(a.size), "stop", os.path.join(a.work, "dump")],
               check=True, capture_output=True)
results["graft_pipeline_img_s"] = a.images / (time.perf_counter() - t)
tf = T.Compose([T.Resize(a.size), T.CenterCrop(a.size), T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
ds = torchvision.datasets.ImageFolder(folder, tf)
dl = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, num_workers=2)
t = time.perf_counter()
for xb, yb in dl:
    pass
results["torch_pipeline_img_s"] = a.images / (time.perf_counter() - t)

# (2) resnet18 feature extraction, whole run (data, features, epochs) timed from outside
w = os.path.join(a.work, "resnet18.safetensors")
subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "gen_torchvision.py"), "--export", "resnet18", w],
               check=True, capture_output=True)
t = time.perf_counter()
r = subprocess.run([a.graft, "train", os.path.join(ROOT, "configs", "recipes", "resnet18-feature-extract.yaml"),
                    "--quiet", "--out", os.path.join(a.work, "run"), "--set", f"data.root={folder}",
                    "--set", f"transfer.head.layers.0.units={nclasses}", "--set", f"transfer.from={w}",
                    "--set", f"model.input=[3, {a.size}, {a.size}]", "--set", f"train.epochs={a.epochs}",
                    "--set", "data.val_split=0"], capture_output=True, text=True)
wall = time.perf_counter() - t
if r.returncode:
    print(r.stdout, r.stderr)
    sys.exit(1)
summ = json.load(open(os.path.join(a.work, "run", "summary.json")))
results["graft_resnet18_fe_wall_s"] = wall
results["graft_resnet18_fe_img_s"] = a.images * a.epochs / wall
results["graft_feature_cache"] = summ.get("feature_cache")

net = torchvision.models.resnet18(weights=None)
net.fc = nn.Linear(512, nclasses)
for p in net.parameters():
    p.requires_grad = False
for p in net.fc.parameters():
    p.requires_grad = True
opt = torch.optim.Adam(net.fc.parameters(), lr=1e-3)
backbone = nn.Sequential(*list(net.children())[:-1])  # conv1 … avgpool
net.eval()
t = time.perf_counter()
for epoch in range(a.epochs):
    for xb, yb in dl:
        with torch.no_grad():
            feats = torch.flatten(backbone(xb), 1)
        loss = nn.functional.cross_entropy(net.fc(feats), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
wall = time.perf_counter() - t
results["torch_resnet18_fe_wall_s"] = wall
results["torch_resnet18_fe_img_s"] = a.images * a.epochs / wall
for k, v in results.items():
    print(f"  {k:32s} {v:10.1f}" if isinstance(v, float) else f"  {k:32s} {v}")
print(f"  pipeline: Graft/PyTorch {results['graft_pipeline_img_s'] / results['torch_pipeline_img_s']:.2f}x; "
      f"resnet18 feature extraction ({a.epochs} epochs, Graft caches the frozen features, PyTorch recomputes "
      f"them each epoch): {results['graft_resnet18_fe_img_s'] / results['torch_resnet18_fe_img_s']:.2f}x")
