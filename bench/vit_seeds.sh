#!/bin/sh
# vit_seeds.sh — the ViT transfer demo over several seeds, Graft and PyTorch side by side: for each
# seed, configs/recipes/vit-fmnist-pretrain.yaml and the four transfer recipes (scratch, linear
# probe, fine-tune, gradual unfreezing; each loading that seed's pretrained weights) in Graft with
# train.seed = SEED, then bench/vit_demo_torch.py --seed SEED. bench/vit_compare.py OUT then
# prints every row's mean and spread on both sides and the difference of the means.
#
# usage: bench/vit_seeds.sh TORCH_PYTHON [OUT] [SEEDS...]
#   defaults: OUT runs/vit-seeds, SEEDS 1 2 3; TORCH_THREADS (default 2) threads for PyTorch
set -e
cd "$(dirname "$0")/.."
TP=${1:?usage: vit_seeds.sh TORCH_PYTHON [OUT] [SEEDS...]}
OUT=${2:-runs/vit-seeds}
[ $# -gt 2 ] && shift 2 || set -- 1 2 3
G=${GRAFT:-build/graft}
mkdir -p "$OUT"
for s in "$@"; do
    d=$OUT/graft-$s
    mkdir -p "$d"
    for r in pretrain scratch linear-probe finetune gradual-unfreeze; do
        [ -f "$d/$r/summary.json" ] && continue
        echo "== graft seed $s $r ($(date +%T), load $(cut -d' ' -f1 /proc/loadavg))"
        from=""
        [ "$r" = pretrain ] || [ "$r" = scratch ] || \
            from="--set transfer.from=$(realpath "$d/pretrain/model.safetensors")"
        # shellcheck disable=SC2086
        "$G" train configs/recipes/vit-fmnist-$r.yaml --set train.seed=$s $from \
            --out "$d/$r" --quiet
    done
    if [ ! -f "$OUT/torch-$s.json" ]; then
        echo "== torch seed $s ($(date +%T), load $(cut -d' ' -f1 /proc/loadavg))"
        "$TP" bench/vit_demo_torch.py --seed "$s" --threads "${TORCH_THREADS:-2}" \
            --json "$OUT/torch-$s.json.tmp"
        mv "$OUT/torch-$s.json.tmp" "$OUT/torch-$s.json"
    fi
done
/usr/bin/python3 bench/vit_compare.py "$OUT"
