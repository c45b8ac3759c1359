#!/bin/sh
# test_demo_vit.sh — `graft demo --vit` end to end with the shipped ViT recipes (copied with the
# model into a scratch configs/): the pretrain is a 20-step run put where the demo reuses it, the
# transfers run one epoch; the table must have its four rows with an accuracy each, the linear
# probe on cached features. usage: test_demo_vit.sh GRAFT SOURCE_DIR WORK_DIR
G=$(realpath "$1"); SRC=$(realpath "$2"); W=$3
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || { echo "SKIP: no Fashion-MNIST"; exit 77; }
rm -rf "$W"; mkdir -p "$W/configs/recipes" "$W/configs/models"; cd "$W" || exit 1
cp "$SRC"/configs/recipes/vit-fmnist-*.yaml configs/recipes/
cp "$SRC/configs/models/vit-tiny-fmnist.yaml" configs/models/
"$G" train configs/recipes/vit-fmnist-pretrain.yaml --out runs/demo/pretrain --quiet \
    --set train.max_steps=20 --set train.epochs=1 > pre.txt 2>&1 || { cat pre.txt; echo "FAIL: pretrain"; exit 1; }
"$G" demo --vit --configs configs --out runs/demo --epochs 1 --quiet > demo.txt 2> demo.err \
    || { cat demo.txt demo.err; echo "FAIL: graft demo --vit"; exit 1; }
cat demo.txt
fail=0
grep -q "vit-tiny-fmnist" demo.txt || { echo "FAIL: the table does not name the model"; fail=1; }
for r in scratch linear-probe finetune gradual-unfreeze; do
    grep -Eq " vit-fmnist-$r +[a-z_]+ +[0-9]+ +0\.[0-9]{4} " demo.txt || { echo "FAIL: no row for $r"; fail=1; }
done
grep -Eq "linear probe +vit-fmnist-linear-probe .* yes$" demo.txt || { echo "FAIL: the linear probe did not cache"; fail=1; }
[ -f runs/demo/vit-fmnist-finetune/summary.json ] || { echo "FAIL: run files"; fail=1; }
"$G" demo --vit --adapt > both.txt 2>&1; [ $? = 2 ] || { echo "FAIL: --vit with --adapt is not a usage error"; fail=1; }
[ $fail = 0 ] && echo "test_demo_vit: ok"
exit $fail
