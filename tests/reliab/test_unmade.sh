#!/bin/sh
# test_unmade.sh — a shipped recipe whose transfer.from checkpoint has not been made yet says which
# recipe makes it (issue 20, part 7): every shipped recipe whose from: points into another shipped
# recipe's output: directory, checked in a copy of configs/ with no runs/ beside it.
# usage: test_unmade.sh GRAFT SOURCE_DIR WORK_DIR
G=$(realpath "$1"); SRC=$(realpath "$2"); W=$3
rm -rf "$W"; mkdir -p "$W"; cd "$W" || exit 1
cp -r "$SRC/configs" .
fail=0 n=0
for r in configs/recipes/fmnist-feature-extract.yaml configs/recipes/fmnist-finetune.yaml \
         configs/recipes/fmnist-linear-head.yaml; do
    "$G" check "$r" >out.txt 2>err.txt
    rc=$?
    if [ $rc = 2 ] && grep -q "^$r:[0-9]*:[0-9]*: error: transfer.from: .*runs/fmnist-pretrain/model.safetensors has not been made yet: train configs/recipes/fmnist-pretrain.yaml first$" err.txt; then
        echo "ok: $r: $(cat err.txt)"; n=$((n + 1))
    else
        echo "FAIL: $r (exit $rc):"; cat err.txt; fail=1
    fi
done
# a checkpoint no recipe makes keeps the plain message
"$G" check configs/recipes/fmnist-finetune.yaml --set transfer.from=elsewhere/model.safetensors >out.txt 2>err.txt
grep -q "cannot read elsewhere/model.safetensors: No such file or directory" err.txt \
    && echo "ok: an unknown checkpoint: $(cat err.txt)" || { cat err.txt; fail=1; }
exit $fail
