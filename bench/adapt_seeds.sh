#!/bin/sh
# adapt_seeds.sh — the domain adaptation comparison over several seeds, Graft and PyTorch side by
# side: for each seed, the four training recipes configs/recipes/fmnist-to-fmnistm-{source-only,
# coral,mmd,dann}.yaml in Graft (AdaBN = `graft adapt` on the source-only weights, which is what the
# adabn recipe computes after the same training), then bench/adapt_torch.py with the same seed and
# epochs. One seed's Graft and PyTorch runs follow each other. bench/adapt_compare.py --seeds-dir
# OUT then prints the mean and spread per method on both sides.
#
# PAIRED=1: both engines start every method of a seed from the same initial weights. PyTorch runs
# first and writes its initial state (the model and DANN's discriminator, Graft's names) to
# OUT/init-SEED.safetensors (--save-init; its methods all start there: the same seed builds the
# same network); Graft's runs load it (--set transfer.from=). What still differs per engine is the
# order of the batches and the dropout masks, so the per-seed difference measures the engines and
# not the random start. TORCH_THREADS sets PyTorch's threads (default 2; 1 when the machine is
# shared: its OpenMP threads stall under load, which moves the seconds, not the accuracies).
#
# usage: bench/adapt_seeds.sh TORCH_PYTHON [OUT] [EPOCHS] [SEEDS...]
#   defaults: OUT runs/adapt-seeds, EPOCHS 1, SEEDS 1 2 3; Fashion-M in runs/fashion-m
#   (/usr/bin/python3 tools/make_shift.py runs/fashion-m builds it).
set -e
cd "$(dirname "$0")/.."
TP=${1:?usage: adapt_seeds.sh TORCH_PYTHON [OUT] [EPOCHS] [SEEDS...]}
OUT=${2:-runs/adapt-seeds}
EPOCHS=${3:-1}
[ $# -gt 3 ] && shift 3 || set -- 1 2 3
G=${GRAFT:-build/graft}
mkdir -p "$OUT"
torch_run() {
    if [ ! -f "$OUT/torch-$1.json" ]; then
        echo "== torch seed $1 ($(date +%T), load $(cut -d' ' -f1 /proc/loadavg))"
        # shellcheck disable=SC2086
        "$TP" bench/adapt_torch.py runs/fashion-m --epochs "$EPOCHS" --seed "$1" \
            --json "$OUT/torch-$1.json" --threads "${TORCH_THREADS:-2}" $2
    fi
}
for s in "$@"; do
    d=$OUT/graft-$s
    mkdir -p "$d"
    from=""
    if [ "${PAIRED:-0}" = 1 ]; then
        torch_run "$s" "--save-init $OUT/init-$s.safetensors"
        case $OUT in /*) init=$OUT/init-$s.safetensors ;; *) init=$(pwd)/$OUT/init-$s.safetensors ;; esac
        from="--set transfer.from=$init"
    fi
    for m in source-only coral mmd dann; do
        [ -f "$d/fmnist-to-fmnistm-$m/summary.json" ] && continue
        echo "== graft seed $s $m ($(date +%T), load $(cut -d' ' -f1 /proc/loadavg))"
        # shellcheck disable=SC2086
        "$G" train configs/recipes/fmnist-to-fmnistm-$m.yaml --set train.seed=$s \
            --set train.epochs=$EPOCHS --out "$d/fmnist-to-fmnistm-$m" --quiet $from
    done
    if [ ! -f "$d/adabn.txt" ]; then
        "$G" adapt configs/recipes/fmnist-to-fmnistm-source-only.yaml \
            --weights "$d/fmnist-to-fmnistm-source-only/model.safetensors" \
            --out "$d/adabn.safetensors" > "$d/adabn.tmp" 2>&1
        mv "$d/adabn.tmp" "$d/adabn.txt"
    fi
    torch_run "$s" ""
done
/usr/bin/python3 bench/adapt_compare.py --seeds-dir "$OUT"
