#!/usr/bin/python3
"""gen_torchvision.py — writes configs/models/{resnet18,resnet34,resnet50,vgg11,vgg16,mobilenet_v2,
vit_b_16}.yaml from the torchvision architectures (and vit-tiny-fmnist.yaml, a small ViT for 28x28
Fashion-MNIST laid out like torchvision's VisionTransformer), with torchvision's module names, so a torchvision state_dict()
saved as safetensors loads as it is (BN running statistics included; num_batches_tracked is the
only key Graft has no use for). Layers with no parameters (ReLU, add) get names of their own,
since torchvision reuses one ReLU module several times in a block.

usage: tools/gen_torchvision.py [OUTDIR]   (default: configs/models next to this script)
       tools/gen_torchvision.py --check    compare every config with torchvision's state_dict
       tools/gen_torchvision.py --export NAME OUT.safetensors [--pretrained]
           write torchvision's NAME state_dict as safetensors for transfer.from: randomly
           initialised, or with --pretrained the ImageNet weights (torchvision downloads them)
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["resnet18", "resnet34", "resnet50", "vgg11", "vgg16", "mobilenet_v2", "vit_b_16"]
# models of torchvision's layout that torchvision does not ship: name -> (vit() arguments, input)
EXTRA = {"vit-tiny-fmnist": (dict(patch=7, dim=64, depth=4, heads=4, mlp=128, classes=10), [1, 28, 28]),
         "vit-base-patch16-224-hf": (dict(patch=16, dim=768, depth=12, heads=12, mlp=3072, classes=1000,
                                          hf=True), [3, 224, 224])}


def conv(name, filters, kernel, stride=1, padding=0, bias=False, groups=1, inputs=None):
    d = {"name": name, "type": "conv2d", "filters": filters, "kernel": kernel}
    if stride != 1:
        d["stride"] = stride
    if padding:
        d["padding"] = padding
    if groups != 1:
        d["groups"] = groups
    d["bias"] = bias
    if inputs:
        d["inputs"] = inputs
    return d


def bn(name):
    return {"name": name, "type": "batchnorm"}


def act(name, kind="relu"):
    return {"name": name, "type": kind}


# ---- ResNet (torchvision.models.resnet: BasicBlock / Bottleneck v1.5, stride on the 3x3) -------

def resnet(blocks, bottleneck):
    L = [conv("conv1", 64, 7, 2, 3), bn("bn1"), act("relu"),
         {"name": "maxpool", "type": "maxpool", "size": 3, "stride": 2, "padding": 1}]
    prev, inplanes = "maxpool", 64
    exp = 4 if bottleneck else 1
    for stage, (planes, n) in enumerate(zip([64, 128, 256, 512], blocks)):
        for b in range(n):
            p = f"layer{stage + 1}.{b}"
            stride = 2 if (b == 0 and stage > 0) else 1
            if bottleneck:
                L += [conv(p + ".conv1", planes, 1, inputs=[prev]), bn(p + ".bn1"), act(p + ".relu1"),
                      conv(p + ".conv2", planes, 3, stride, 1), bn(p + ".bn2"), act(p + ".relu2"),
                      conv(p + ".conv3", planes * exp, 1), bn(p + ".bn3")]
                last = p + ".bn3"
            else:
                L += [conv(p + ".conv1", planes, 3, stride, 1, inputs=[prev]), bn(p + ".bn1"),
                      act(p + ".relu1"), conv(p + ".conv2", planes, 3, 1, 1), bn(p + ".bn2")]
                last = p + ".bn2"
            short = prev
            if stride != 1 or inplanes != planes * exp:
                L += [conv(p + ".downsample.0", planes * exp, 1, stride, inputs=[prev]),
                      bn(p + ".downsample.1")]
                short = p + ".downsample.1"
            L += [{"name": p + ".add", "type": "add", "inputs": [last, short]},
                  act(p + (".relu3" if bottleneck else ".relu2"))]
            prev = L[-1]["name"]
            inplanes = planes * exp
    L += [{"name": "avgpool", "type": "global_avgpool"}, {"name": "flatten", "type": "flatten"},
          {"name": "fc", "type": "dense", "units": 1000}]
    return L


# ---- VGG (torchvision.models.vgg, no batchnorm) ---------------------------------------------------

VGG_CFG = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def vgg(cfg):
    L, i = [], 0
    for v in cfg:
        if v == "M":
            L.append({"name": f"features.{i}", "type": "maxpool", "size": 2, "stride": 2})
            i += 1
        else:
            L += [conv(f"features.{i}", v, 3, 1, 1, bias=True), act(f"features.{i + 1}")]
            i += 2
    # torchvision's AdaptiveAvgPool2d((7, 7)) is the identity at 224x224, where features end 7x7;
    # Graft has no adaptive pool, so these configs take 224x224 (or any size ending at 7x7).
    L += [{"name": "flatten", "type": "flatten"},
          {"name": "classifier.0", "type": "dense", "units": 4096}, act("classifier.1"),
          {"name": "classifier.2", "type": "dropout", "rate": 0.5},
          {"name": "classifier.3", "type": "dense", "units": 4096}, act("classifier.4"),
          {"name": "classifier.5", "type": "dropout", "rate": 0.5},
          {"name": "classifier.6", "type": "dense", "units": 1000}]
    return L


# ---- MobileNetV2 (torchvision.models.mobilenetv2, width 1.0) -----------------------------------

def mobilenet_v2():
    L = [conv("features.0.0", 32, 3, 2, 1), bn("features.0.1"), act("features.0.2", "relu6")]
    prev, inp, idx = "features.0.2", 32, 1
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        for b in range(n):
            stride = s if b == 0 else 1
            p = f"features.{idx}.conv"
            hidden = inp * t
            j, first = 0, True
            if t != 1:
                L += [conv(f"{p}.0.0", hidden, 1, inputs=[prev]), bn(f"{p}.0.1"),
                      act(f"{p}.0.2", "relu6")]
                j, first = 1, False
            dw = conv(f"{p}.{j}.0", hidden, 3, stride, 1, groups=hidden, inputs=[prev] if first else None)
            L += [dw, bn(f"{p}.{j}.1"), act(f"{p}.{j}.2", "relu6"),
                  conv(f"{p}.{j + 1}", c, 1), bn(f"{p}.{j + 2}")]
            out = f"{p}.{j + 2}"
            if stride == 1 and inp == c:
                L.append({"name": f"features.{idx}.add", "type": "add", "inputs": [out, prev]})
                out = f"features.{idx}.add"
            prev, inp, idx = out, c, idx + 1
    L += [conv("features.18.0", 1280, 1, inputs=[prev]), bn("features.18.1"),
          act("features.18.2", "relu6"),
          {"name": "avgpool", "type": "global_avgpool"}, {"name": "flatten", "type": "flatten"},
          {"name": "classifier.0", "type": "dropout", "rate": 0.2},
          {"name": "classifier.1", "type": "dense", "units": 1000}]
    return L


# ---- Vision Transformer (torchvision.models.vision_transformer.VisionTransformer) --------------
# conv_proj (patches), class_token, encoder.pos_embedding, encoder blocks of pre-norm attention and
# MLP with their residual adds, encoder.ln, token 0, heads.head. Layer norms have eps 1e-6;
# torchvision's dropouts have p = 0 and are left out (they would only stop the feature cache).

def vit(patch, dim, depth, heads, mlp, classes, hf=False, eps=None):
    if hf:
        return vit_hf(patch, dim, depth, heads, mlp, classes, 1e-12 if eps is None else eps)
    L = [{"name": "conv_proj", "type": "patch_embed", "dim": dim, "patch": patch},
         {"name": "class_token", "type": "class_token"},
         {"name": "encoder.pos_embedding", "type": "position_embedding"}]
    prev = "encoder.pos_embedding"
    for i in range(depth):
        p = f"encoder.layers.encoder_layer_{i}"
        L += [{"name": p + ".ln_1", "type": "layernorm", "eps": 1e-6, "inputs": [prev]},
              {"name": p + ".self_attention", "type": "attention", "heads": heads},
              {"name": p + ".add_1", "type": "add", "inputs": [prev, p + ".self_attention"]},
              {"name": p + ".ln_2", "type": "layernorm", "eps": 1e-6},
              {"name": p + ".mlp.0", "type": "dense", "units": mlp},
              act(p + ".mlp.1", "gelu"),
              {"name": p + ".mlp.3", "type": "dense", "units": dim},
              {"name": p + ".add_2", "type": "add", "inputs": [p + ".add_1", p + ".mlp.3"]}]
        prev = p + ".add_2"
    L += [{"name": "encoder.ln", "type": "layernorm", "eps": 1e-6},
          {"name": "class_select", "type": "token_select"},
          {"name": "heads.head", "type": "dense", "units": classes}]
    return L


# ---- the same network with Hugging Face's names (transformers' ViTForImageClassification) -------
# vit.embeddings.{patch_embeddings.projection, cls_token, position_embeddings}, per block
# layernorm_before, attention.attention.{query,key,value} + attention.output.dense, layernorm_after,
# intermediate.dense (GELU), output.dense; vit.layernorm and classifier. layer_norm_eps 1e-12.

def vit_hf(patch, dim, depth, heads, mlp, classes, eps):
    e = "vit.embeddings"
    L = [{"name": e + ".patch_embeddings.projection", "type": "patch_embed", "dim": dim, "patch": patch},
         {"name": e + ".cls_token", "type": "class_token"},
         {"name": e + ".position_embeddings", "type": "position_embedding"}]
    prev = e + ".position_embeddings"
    for i in range(depth):
        p = f"vit.encoder.layer.{i}"
        L += [{"name": p + ".layernorm_before", "type": "layernorm", "eps": eps, "inputs": [prev]},
              {"name": p + ".attention", "type": "attention", "heads": heads, "names": "hf"},
              {"name": p + ".add_1", "type": "add", "inputs": [prev, p + ".attention"]},
              {"name": p + ".layernorm_after", "type": "layernorm", "eps": eps},
              {"name": p + ".intermediate.dense", "type": "dense", "units": mlp},
              act(p + ".intermediate.gelu", "gelu"),
              {"name": p + ".output.dense", "type": "dense", "units": dim},
              {"name": p + ".add_2", "type": "add", "inputs": [p + ".add_1", p + ".output.dense"]}]
        prev = p + ".add_2"
    L += [{"name": "vit.layernorm", "type": "layernorm", "eps": eps},
          {"name": "class_select", "type": "token_select"},
          {"name": "classifier", "type": "dense", "units": classes}]
    return L


def build(name):
    if name in EXTRA:
        return vit(**EXTRA[name][0])
    if name == "vit_b_16":
        return vit(16, 768, 12, 12, 3072, 1000)
    if name.startswith("resnet"):
        blocks = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3], "resnet50": [3, 4, 6, 3]}[name]
        return resnet(blocks, name == "resnet50")
    if name.startswith("vgg"):
        return vgg(VGG_CFG[name])
    return mobilenet_v2()


ABOUT = {
    "resnet18": "ResNet-18 (He et al. 2015; torchvision.models.resnet18), BasicBlock [2, 2, 2, 2]",
    "resnet34": "ResNet-34 (torchvision.models.resnet34), BasicBlock [3, 4, 6, 3]",
    "resnet50": "ResNet-50 v1.5 (torchvision.models.resnet50), Bottleneck [3, 4, 6, 3], stride on the 3x3",
    "vgg11": "VGG-11 (Simonyan & Zisserman 2014; torchvision.models.vgg11), no batchnorm",
    "vgg16": "VGG-16 (torchvision.models.vgg16), no batchnorm",
    "mobilenet_v2": "MobileNetV2 (Sandler et al. 2018; torchvision.models.mobilenet_v2), width 1.0",
    "vit_b_16": "ViT-B/16 (Dosovitskiy et al. 2020; torchvision.models.vit_b_16), 12 blocks of dim 768",
    "vit-base-patch16-224-hf": "ViT-B/16 with Hugging Face's names (transformers' ViTForImageClassification, "
                               "google/vit-base-patch16-224's layout; layer norm eps 1e-12)",
    "vit-tiny-fmnist": "a small Vision Transformer for 28x28 Fashion-MNIST in torchvision's layout: "
                       "patches of 7 (16 tokens + the class token), dim 64, 4 blocks of 4 heads, MLP 128",
}


def flow(d):
    """One layer as a YAML flow mapping on one line, keys in a fixed order."""
    parts = []
    for k, v in d.items():
        if isinstance(v, list):
            v = "[" + ", ".join(str(x) for x in v) + "]"
        elif isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, float) and abs(v) < 1e-3:  # 1.0e-6: YAML 1.1 readers (PyYAML) need the dot to see a number
            m, _, x = f"{v:.6e}".partition("e")
            v = f"{m.rstrip('0')}0e{int(x)}" if m.rstrip("0").endswith(".") else f"{m.rstrip('0')}e{int(x)}"
        parts.append(f"{k}: {v}")
    return "{" + ", ".join(parts) + "}"


def write(name, outdir):
    shape = EXTRA[name][1] if name in EXTRA else [3, 224, 224]
    lines = ["# yaml-language-server: $schema=../../docs/recipe.schema.json"]
    lines += [f"# {name} — {ABOUT[name]}.",
              *(["# Generated by tools/gen_torchvision.py: layer names are torchvision's module names, so a",
                 "# torchvision state_dict() saved as safetensors loads as it is. Do not edit by hand."]
                if not name.endswith("-hf") else
                ["# Generated by tools/gen_torchvision.py: layer names are Hugging Face's, so a transformers",
                 "# state_dict() saved as safetensors loads as it is. Do not edit by hand."]),
              f"name: {name}", "model:", f"  input: [{', '.join(map(str, shape))}]", "  layers:"]
    lines += [f"    - {flow(d)}" for d in build(name)]
    path = os.path.join(outdir, name + ".yaml")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    return path


def graft_params(layers, input_shape):
    """Parameter names and shapes of a Graft layer list, by Graft's conventions (conv2d weight
    O×(C/groups)×K×K, dense weight O×I, batchnorm weight/bias/running_mean/running_var)."""
    shapes, out, prev = {}, {}, None
    for d in layers:
        ins = d.get("inputs", [prev])
        s = shapes[ins[0]] if ins[0] is not None else list(input_shape)
        t, n = d["type"], d["name"]
        if t == "conv2d":
            k, st, p, g = d["kernel"], d.get("stride", 1), d.get("padding", 0), d.get("groups", 1)
            out[n + ".weight"] = [d["filters"], s[0] // g, k, k]
            if d.get("bias", True):
                out[n + ".bias"] = [d["filters"]]
            s = [d["filters"], (s[1] + 2 * p - k) // st + 1, (s[2] + 2 * p - k) // st + 1]
        elif t == "maxpool":
            k, st, p = d["size"], d.get("stride", d["size"]), d.get("padding", 0)
            s = [s[0], (s[1] + 2 * p - k) // st + 1, (s[2] + 2 * p - k) // st + 1]
        elif t == "batchnorm":
            for k in ("weight", "bias", "running_mean", "running_var"):
                out[f"{n}.{k}"] = [s[0]]
        elif t == "global_avgpool":
            s = [s[0], 1, 1]
        elif t == "flatten":
            s = [s[0] * s[1] * s[2]]
        elif t == "dense":
            out[n + ".weight"] = [d["units"], s[-1]]
            if d.get("bias", True):
                out[n + ".bias"] = [d["units"]]
            s = s[:-1] + [d["units"]]
        elif t == "patch_embed":
            out[n + ".weight"] = [d["dim"], s[0], d["patch"], d["patch"]]
            out[n + ".bias"] = [d["dim"]]
            s = [(s[1] // d["patch"]) * (s[2] // d["patch"]), d["dim"]]
        elif t == "class_token":
            out[n] = [1, 1, s[1]]
            s = [s[0] + 1, s[1]]
        elif t == "position_embedding":
            out[n] = [1] + s
        elif t == "layernorm":
            out[n + ".weight"] = out[n + ".bias"] = [s[-1]]
        elif t == "attention" and d.get("names") == "hf":
            for k in ("attention.query", "attention.key", "attention.value", "output.dense"):
                out[f"{n}.{k}.weight"] = [s[1], s[1]]
                out[f"{n}.{k}.bias"] = [s[1]]
        elif t == "attention":
            out[n + ".in_proj_weight"] = [3 * s[1], s[1]]
            out[n + ".in_proj_bias"] = [3 * s[1]]
            out[n + ".out_proj.weight"] = [s[1], s[1]]
            out[n + ".out_proj.bias"] = [s[1]]
        elif t == "token_select":
            s = [s[1]]
        shapes[n] = s
        prev = n
    return out


def check():
    import torchvision
    bad = 0
    for name in MODELS:
        sd = getattr(torchvision.models, name)(weights=None).state_dict()
        want = {k: list(v.shape) for k, v in sd.items() if not k.endswith("num_batches_tracked")}
        got = graft_params(build(name), [3, 224, 224])
        miss = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
        ok = not (miss or extra or wrong)
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {len(want)} state_dict tensors, {len(got)} Graft parameters")
        for k in miss[:10]:
            print(f"     missing in Graft: {k} {want[k]}")
        for k in extra[:10]:
            print(f"     not in torchvision: {k} {got[k]}")
        for k in wrong[:10]:
            print(f"     shape of {k}: torchvision {want[k]}, Graft {got[k]}")
    return 1 if bad else 0


def export(name, out, pretrained):
    import json
    import struct
    import torchvision
    weights = "DEFAULT" if pretrained else None
    sd = getattr(torchvision.models, name)(weights=weights).state_dict()
    header, blobs, offset = {}, [], 0
    for k in sorted(sd):
        if k.endswith("num_batches_tracked"):
            continue
        b = sd[k].detach().float().contiguous().numpy().tobytes()
        header[k] = {"dtype": "F32", "shape": list(sd[k].shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = {"source": f"torchvision.models.{name}", "pretrained": str(pretrained)}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(out + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(out + ".tmp", out)
    print(f"wrote {out}: {len(header) - 1} tensors")


if __name__ == "__main__":
    if "--export" in sys.argv:
        i = sys.argv.index("--export")
        export(sys.argv[i + 1], sys.argv[i + 2], "--pretrained" in sys.argv)
        sys.exit(0)
    if "--check" in sys.argv:
        sys.exit(check())
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "configs", "models")
    for m in MODELS + list(EXTRA):
        print(write(m, outdir))
