#!/usr/bin/python3
"""test_configs.py GRAFT SRCDIR — the shipped configs through the CLI: every model and recipe passes
`graft check` (transfer recipes against a checkpoint this test writes), `graft plan --json` matches
hand-computed shapes and parameter counts (fmnist-cnn, resnet-small) and the transfer settings
(frozen, backward, load/init, lr_mult, feature cache), and usage errors exit 2."""
import glob, json, os, subprocess, sys, tempfile

graft, src = os.path.abspath(sys.argv[1]), sys.argv[2]
os.chdir(src)
sys.path.insert(0, os.path.join(src, "tests", "recipe"))
import write_checkpoint

fails = 0
def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print("FAIL:", what)
    return cond

def run(*args):
    p = subprocess.run([graft] + list(args), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr

tmp = tempfile.mkdtemp(prefix="graft-configs.")
ckpt = os.path.join(tmp, "pre.safetensors")
write_checkpoint.write(ckpt, write_checkpoint.fmnist_cnn())
FROM = "--set", "transfer.from=" + ckpt
# the ViT recipes start from vit-tiny-fmnist: its tensors by tools/gen_torchvision.py's rules
sys.path.insert(0, os.path.join(src, "tools"))
import gen_torchvision
vit_ckpt = os.path.join(tmp, "vit.safetensors")
write_checkpoint.write(vit_ckpt, {k: tuple(v) for k, v in gen_torchvision.graft_params(
    gen_torchvision.build("vit-tiny-fmnist"), [1, 28, 28]).items()})
VIT_FROM = "--set", "transfer.from=" + vit_ckpt

# -- every model and recipe passes check ------------------------------------------------------
for m in sorted(glob.glob("configs/models/*.yaml")):
    rc, out, err = run("check", m)
    check(rc == 0 and out.startswith("ok: "), f"check {m}: {rc} {out}{err}")
    print(m, out.strip())
expected = {  # recipe: ok line (hand-computed below)
    "fmnist-pretrain": "ok: 17 layers, 468010 parameters (468010 trainable)",
    "fmnist-scratch": "ok: 17 layers, 467365 parameters (467365 trainable)",
    "fmnist-feature-extract": "ok: 17 layers, 467365 parameters (402181 trainable)",
    "fmnist-linear-head": "ok: 17 layers, 467365 parameters (645 trainable)",
    "fmnist-finetune": "ok: 17 layers, 467365 parameters (467365 trainable)",
    "fmnist-gradual-unfreeze": "ok: 17 layers, 467365 parameters (402181 trainable)",
    "fmnist-l2sp": "ok: 17 layers, 467365 parameters (467365 trainable)",
    "fmnist-discriminative-lr": "ok: 17 layers, 467365 parameters (467365 trainable)",
    # vit-tiny-fmnist: patches 49*64+64, class token 64, positions 17*64, 4 blocks of
    # (2 layernorms 4*64, attention 4*64*64+4*64, MLP 64*128+128 + 128*64+64), encoder.ln 128,
    # head 64*10+10 (64*5+5 for the transfer recipes)
    "vit-fmnist-pretrain": "ok: 38 layers, 139018 parameters (139018 trainable)",
    "vit-fmnist-scratch": "ok: 38 layers, 138693 parameters (138693 trainable)",
    "vit-fmnist-linear-probe": "ok: 38 layers, 138693 parameters (325 trainable)",
    "vit-fmnist-finetune": "ok: 38 layers, 138693 parameters (138693 trainable)",
    "vit-fmnist-gradual-unfreeze": "ok: 38 layers, 138693 parameters (325 trainable)",
}
vit_block = 2 * 2 * 64 + (4 * 64 * 64 + 4 * 64) + (64 * 128 + 128 + 128 * 64 + 64)
assert 49 * 64 + 64 + 64 + 17 * 64 + 4 * vit_block + 128 + 64 * 10 + 10 == 139018
# fmnist-cnn by hand: conv 3x3 weights + bias, batchnorm weight + bias, two 2x2 pools: 28 -> 7
cnn = {"conv1": 32 * 1 * 9 + 32, "bn1": 2 * 32, "conv2": 32 * 32 * 9 + 32, "conv3": 64 * 32 * 9 + 64,
       "bn3": 2 * 64, "conv4": 64 * 64 * 9 + 64, "fc1": 64 * 7 * 7 * 128 + 128, "fc2": 128 * 10 + 10}
total = sum(cnn.values())
assert total == 468010
new5 = total - cnn["fc2"] + 128 * 5 + 5
assert new5 == 467365 and new5 - sum(cnn[k] for k in ("conv1", "bn1", "conv2", "conv3", "bn3", "conv4")) == 402181
for r in sorted(glob.glob("configs/recipes/*.yaml")):
    name = os.path.basename(r)[:-5]
    if name.startswith("fmnist-to-fmnistm-"):
        continue  # their data is built by tools/make_shift.py: checked below
    text = open(r).read()
    frm = VIT_FROM if name.startswith("vit-") else FROM
    args = ("check", r) + (frm if "from:" in text or "extends" in text else ())
    rc, out, err = run(*args)
    check(rc == 0, f"check {r}: exit {rc}: {err}")
    if name in expected:
        check(out.strip() == expected[name], f"{r}: '{out.strip()}' != '{expected[name]}'")
    print(r, out.strip())
check(set(expected) <= {os.path.basename(r)[:-5] for r in glob.glob("configs/recipes/*.yaml")},
      "a required recipe is missing")
# the domain adaptation recipes on a small Fashion-M (tools/make_shift.py --limit), in a copy of
# configs/ next to the runs/fashion-m they name; fmnist-cnn with 3 input channels
adapt = sorted(glob.glob("configs/recipes/fmnist-to-fmnistm-*.yaml"))
check(len(adapt) >= 4, "the fmnist-to-fmnistm recipes are missing")
# make_shift runs on Debian's python3 (numpy, python3-skimage)
have_shift = os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") and \
    subprocess.run(["/usr/bin/python3", "-c", "import numpy, skimage"], capture_output=True).returncode == 0
if have_shift:
    for d in ("configs/recipes", "configs/models"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    subprocess.run(["cp", "configs/models/fmnist-cnn.yaml", os.path.join(tmp, "configs/models")], check=True)
    subprocess.run(["cp"] + adapt + [os.path.join(tmp, "configs/recipes")], check=True)
    subprocess.run(["/usr/bin/python3", "tools/make_shift.py", os.path.join(tmp, "runs/fashion-m"),
                    "--limit", "32"], check=True, capture_output=True)
    for r in adapt:
        rc, out, err = run("check", os.path.join(tmp, "configs/recipes", os.path.basename(r)))
        check(rc == 0 and out.strip() == "ok: 17 layers, 468586 parameters (468586 trainable)",
              f"check {r}: exit {rc}: {out}{err}")
        print(r, out.strip())
else:
    print("(fmnist-to-fmnistm recipes not checked: no /usr/bin/python3 with numpy and skimage, or no Fashion-MNIST)")
# the pretrain and scratch recipes need no checkpoint
for r in ("fmnist-pretrain", "fmnist-scratch"):
    rc, out, err = run("check", f"configs/recipes/{r}.yaml")
    check(rc == 0, f"{r} without --set: {err}")
# before any training, a transfer recipe names the missing checkpoint at its line
rc, out, err = run("check", "configs/recipes/fmnist-feature-extract.yaml")
if not os.path.exists("runs/fmnist-pretrain/model.safetensors"):
    check(rc == 2 and "fmnist-feature-extract.yaml:8:9: error: transfer.from: runs/fmnist-pretrain"
          "/model.safetensors has not been made yet: train configs/recipes/fmnist-pretrain.yaml first"
          in err, f"missing checkpoint: {rc} {err}")

# -- plan --json: fmnist-cnn by hand ------------------------------------------------------------
def plan(*args):
    rc, out, err = run("plan", *args, "--json")
    if not check(rc == 0, f"plan {args}: {err}"):
        return None
    return json.loads(out)

p = plan("configs/models/fmnist-cnn.yaml")
want = [("conv1", "conv2d", [32, 28, 28]), ("bn1", "batchnorm", [32, 28, 28]), ("relu1", "relu", [32, 28, 28]),
        ("conv2", "conv2d", [32, 28, 28]), ("relu2", "relu", [32, 28, 28]), ("pool1", "maxpool", [32, 14, 14]),
        ("conv3", "conv2d", [64, 14, 14]), ("bn3", "batchnorm", [64, 14, 14]), ("relu3", "relu", [64, 14, 14]),
        ("conv4", "conv2d", [64, 14, 14]), ("relu4", "relu", [64, 14, 14]), ("pool2", "maxpool", [64, 7, 7]),
        ("flatten", "flatten", [3136]), ("fc1", "dense", [128]), ("relu5", "relu", [128]),
        ("dropout", "dropout", [128]), ("fc2", "dense", [10])]
if p:
    got = [(l["name"], l["type"], l["output_shape"]) for l in p["layers"]]
    check(got == want, f"fmnist-cnn layers: {got}")
    for l in p["layers"]:
        check(l["params"] == cnn.get(l["name"], 0), f"{l['name']}: {l['params']} params")
        check(not l["frozen"] and l["backward"] and l["lr_mult"] == 1.0 and l["load"] == [], l["name"])
    check(p["params_total"] == total and p["params_trainable"] == total, "fmnist-cnn totals")
    check(p["layers"][1]["init"] == ["bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"], "bn1 tensors")
    check(p["feature_cache"] == {"used": False, "reason": "no frozen prefix (the first layer trains)"},
          f"feature cache {p['feature_cache']}")
    check(p["input_shape"] == [1, 28, 28] and p["checkpoint"] is None, "input/checkpoint")

# --set through the CLI: a list index into the model file's layers
p = plan("configs/models/fmnist-cnn.yaml", "--set", "model.layers.13.units=64", "--set", "model.layers.16.units=5")
if p:
    check(p["layers"][13]["params"] == 3136 * 64 + 64 and p["layers"][16]["params"] == 64 * 5 + 5,
          "--set model.layers.N.units")

# -- resnet-small by hand -----------------------------------------------------------------------
p = plan("configs/models/resnet-small.yaml")
if p:
    L = {l["name"]: l for l in p["layers"]}
    conv = lambda o, i, k: o * i * k * k
    by_hand = (conv(16, 1, 3) + 32                                   # stem conv (no bias) + bn1
               + 2 * (2 * conv(16, 16, 3) + 2 * 32)                  # layer1: two blocks
               + conv(32, 16, 3) + conv(32, 32, 3) + 2 * 64 + conv(32, 16, 1) + 64   # layer2.0 + downsample
               + 2 * conv(32, 32, 3) + 2 * 64                        # layer2.1
               + conv(64, 32, 3) + conv(64, 64, 3) + 2 * 128 + conv(64, 32, 1) + 128
               + 2 * conv(64, 64, 3) + 2 * 128
               + 64 * 10 + 10)
    check(p["params_total"] == by_hand, f"resnet-small total {p['params_total']} != {by_hand}")
    check(L["layer1.0.conv1"]["output_shape"] == [16, 28, 28], "layer1 shape")
    check(L["layer2.0.conv1"]["output_shape"] == [32, 14, 14] and L["layer2.0.conv1"]["params"] == conv(32, 16, 3), "layer2.0.conv1")
    check(L["layer2.0.downsample.0"]["params"] == 512 and L["layer2.0.downsample.0"]["output_shape"] == [32, 14, 14], "downsample")
    check(L["layer3.1.add"]["inputs"] == ["layer3.1.bn2", "layer3.0.relu2"], f"add inputs {L['layer3.1.add']['inputs']}")
    check(L["layer3.0.add"]["inputs"] == ["layer3.0.bn2", "layer3.0.downsample.1"], "downsample add")
    check(L["avgpool"]["output_shape"] == [64, 1, 1] and L["flatten"]["output_shape"] == [64], "head shapes")
    check(L["layer1.0.bn1"]["init"] == ["layer1.0.bn1.weight", "layer1.0.bn1.bias",
                                         "layer1.0.bn1.running_mean", "layer1.0.bn1.running_var"], "dotted names")
    check(L["conv1"]["init"] == ["conv1.weight"], "bias: false")

# -- transfer views ------------------------------------------------------------------------------
p = plan("configs/recipes/fmnist-feature-extract.yaml", *FROM)
if p:
    names = [l["name"] for l in p["layers"]]
    k = names.index("flatten")
    for i, l in enumerate(p["layers"]):
        check(l["frozen"] == (i <= k), f"feature-extract {l['name']} frozen")
        check(l["backward"] == (i > k), f"feature-extract {l['name']} backward")
    L = {l["name"]: l for l in p["layers"]}
    check(L["conv1"]["load"] == ["conv1.weight", "conv1.bias"] and L["conv1"]["init"] == [], "conv1 loads")
    check(L["bn3"]["load"] == ["bn3.weight", "bn3.bias", "bn3.running_mean", "bn3.running_var"], "bn3 loads")
    check(L["fc1"]["load"] == [] and L["fc1"]["fresh"] and L["fc1"]["init"] == ["fc1.weight", "fc1.bias"], "fc1 fresh")
    check(L["fc2"]["output_shape"] == [5], "5-way head")
    check(p["feature_cache"]["used"] and "through 'flatten'" in p["feature_cache"]["reason"], f"{p['feature_cache']}")
    # where the cache lives: device memory within transfer.cache_device_fraction, else host memory
    check(p["feature_cache"]["bytes_per_sample"] == 3136 * 4 and "memory" in p["feature_cache"]["location"],
          f"{p['feature_cache']}")
    check(p["params_trainable"] == 402181 and p["frozen_prefix"] == k + 1, "trainable")

p = plan("configs/recipes/fmnist-discriminative-lr.yaml", *FROM)
if p:
    L = {l["name"]: l["lr_mult"] for l in p["layers"]}
    check(L["conv1"] == 0.1 and L["bn1"] == 0.1 and L["conv2"] == 0.1, f"lr_mult {L}")
    check(L["conv3"] == 0.3 and L["bn3"] == 0.3 and L["conv4"] == 0.3 and L["fc1"] == 0.5 and L["fc2"] == 1.0, f"lr_mult {L}")
    check(all(l["backward"] for l in p["layers"]), "finetune: every backward runs")

p = plan("configs/recipes/fmnist-gradual-unfreeze.yaml", *FROM)
if p:
    # the first phase's frozen prefix is cached; each unfreeze phase decides again
    check(p["feature_cache"]["used"] and "first train.unfreeze step" in p["feature_cache"]["reason"], f"{p['feature_cache']}")
p = plan("configs/recipes/fmnist-linear-head.yaml", *FROM)
if p:
    check(p["params_trainable"] == 645 and p["feature_cache"]["used"], "linear head")
    check([l["name"] for l in p["layers"] if l["backward"]] == ["fc2"], "only fc2 runs backward")
p = plan("configs/recipes/fmnist-feature-extract.yaml", *FROM, "--set", "transfer.cache_features=off")
if p:
    check(not p["feature_cache"]["used"] and "off" in p["feature_cache"]["reason"], "cache off")

# attention dropout makes a frozen prefix random in training: no feature cache
p = plan("configs/recipes/vit-fmnist-linear-probe.yaml", *VIT_FROM)
if p:
    check(p["feature_cache"]["used"], f"vit linear probe caches: {p['feature_cache']}")
p = plan("configs/recipes/vit-fmnist-linear-probe.yaml", *VIT_FROM, "--set", "model.layers.4.dropout=0.1")
if p:
    check(not p["feature_cache"]["used"] and "dropout 0.1" in p["feature_cache"]["reason"],
          f"attention dropout in the prefix: {p['feature_cache']}")

# the table form prints every layer and the totals
rc, out, err = run("plan", "configs/recipes/fmnist-feature-extract.yaml", *FROM)
check(rc == 0 and "parameters: 467365 total, 402181 trainable" in out and "feature cache: used" in out, out + err)
check(sum(1 for line in out.splitlines() if line[:3].strip().isdigit()) == 17, "17 table rows")

# -- usage -------------------------------------------------------------------------------------
for args, frag in ((["check"], "missing RECIPE"), (["check", "a.yaml", "b.yaml"], "unexpected argument"),
                   (["plan", "configs/models/mlp.yaml", "--bogus"], "unknown option --bogus"),
                   (["check", "configs/models/mlp.yaml", "--set"], "needs a value")):
    rc, out, err = run(*args)
    check(rc == 2 and frag in err, f"usage {args}: {rc} {err}")
rc, out, err = run("check", "no/such/recipe.yaml")
check(rc == 2 and err.startswith("no/such/recipe.yaml: error: cannot read"), f"missing recipe: {err}")
# vit_b_16: torchvision's parameter count, and which encoder blocks run backward when the
# embeddings and blocks 0-7 are frozen by regex (none of them: nothing before them trains)
rc, out, err = run("plan", "configs/models/vit_b_16.yaml", "--json", "--set",
                   r"transfer.freeze=/conv_proj|class_token|encoder\.pos_embedding|encoder\.layers\.encoder_layer_[0-7]\..*/")
if check(rc == 0, f"plan vit_b_16: {rc} {err}"):
    p = json.loads(out)
    check(p["params_total"] == 86567656, f"vit_b_16 parameters {p['params_total']}")
    block = 2 * 2 * 768 + (4 * 768 * 768 + 4 * 768) + (768 * 3072 + 3072 + 3072 * 768 + 768)
    embed = 768 * 3 * 16 * 16 + 768 + 768 + 197 * 768
    check(p["params_trainable"] == 86567656 - embed - 8 * block, f"vit_b_16 trainable {p['params_trainable']}")
    for L in p["layers"]:
        if ".encoder_layer_" in L["name"]:
            b = int(L["name"].split("encoder_layer_")[1].split(".")[0])
            check(L["backward"] == (b >= 8) and (L["params"] == 0 or L["frozen"] == (b < 8)),
                  f"vit_b_16 block {b} {L['name']}: backward {L['backward']} frozen {L['frozen']}")
    check(p["memory"]["total_bytes"] > p["memory"]["weights_bytes"] > 4 * 86567656 - 1,
          f"vit_b_16 memory plan {p['memory']}")
rc, out, err = run("check", "--help")
check(rc == 0 and "usage: graft check" in out, "check --help")

print("configs:", "FAILED" if fails else "ok", f"({fails} failures)")
sys.exit(1 if fails else 0)
