#!/usr/bin/env python3
"""hf_names.py — the tensor names a Python's `transformers` gives a small random ViT: its
state_dict() and what save_pretrained() writes. tests/torch/hf_check.py expects the Hub's layout
(vit.encoder.layer.N.attention.attention.query...); this records what another transformers
version (the GPU machine's) uses, so Graft's name table can follow it. Nothing is downloaded."""
import os
import sys
import tempfile

try:
    import transformers
    from safetensors import safe_open
except ImportError as err:  # a Python without them: nothing to record (run.sh reports SKIP)
    print(f"skip: {sys.executable} cannot import {err.name}")
    sys.exit(77)

cfg = transformers.ViTConfig(hidden_size=24, num_hidden_layers=1, num_attention_heads=3,
                             intermediate_size=40, image_size=[21, 14], patch_size=7,
                             num_channels=2, num_labels=5)
net = transformers.ViTForImageClassification(cfg)
print("transformers", transformers.__version__, "python", sys.version.split()[0])
print("== state_dict()")
for k, v in net.state_dict().items():
    print(f"  {k} {list(v.shape)}")
d = tempfile.mkdtemp()
net.save_pretrained(d)
for f in sorted(os.listdir(d)):
    if f.endswith(".safetensors"):
        print(f"== save_pretrained(): {f}")
        with safe_open(os.path.join(d, f), "pt") as s:
            for k in s.keys():
                print(f"  {k} {list(s.get_slice(k).get_shape())}")
