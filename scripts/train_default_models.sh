#!/usr/bin/env bash
# Trains the default model set `idc` (base ResNet-18, R-RAN, R-LRAN) side by side with one
# recipe, then copies each best-on-validation checkpoint into lran_core/weights/idc/.
#   scripts/train_default_models.sh [DATA] [RUNS] [extra train flags...]
# DATA defaults to ../shared/data/idc, RUNS to runs/idc. The shipped set was trained on one GPU
# with the defaults below (see MODEL_CARD.md); on a CPU add e.g. --epochs 6 --max-minutes 40.
set -euo pipefail
DATA=${1:-../shared/data/idc}
RUNS=${2:-runs/idc}
shift $(( $# > 2 ? 2 : $# ))
PY=${PYTHON:-python}
mkdir -p "$RUNS"
export CUBLAS_WORKSPACE_CONFIG=:4096:8
for model in resnet18 resnet18-ran resnet18-lran; do
  $PY -m lran_core.train --data "$DATA" --model "$model" --out "$RUNS/$model" \
    --input-size 128 --epochs 50 --batch-size 24 --folds 5 --fold 0 --seed 0 \
    --no-progress "$@" > "$RUNS-$model.log" 2>&1 &
done
wait
mkdir -p lran_core/weights/idc
for model in resnet18 resnet18-ran resnet18-lran; do
  cp "$RUNS/$model/best.safetensors" "lran_core/weights/idc/$model.safetensors"
done
