#!/bin/bash
# Trains and evaluates runs of one scripts/experiments.py group at once on one GPU, one process
# per run, in bf16 as this project's CPU trains; each run logs to RUNS/GROUP/NAME/device.log.
# Folds 3 and 4 of the idc cross-validation were trained so (model card):
#   scripts/gpu_runs.sh cv ../shared/data runs fold3/resnet18 fold3/resnet18-ran ... fold4/resnet18-lran
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 GROUP DATA_ROOT RUNS NAME [NAME ...]" >&2
  exit 2
fi
group=$1 data=$2 runs=$3
shift 3
python=${PYTHON:-python3}
# Deterministic cuBLAS (training asks for deterministic algorithms).
export CUBLAS_WORKSPACE_CONFIG=:4096:8 PYTHONUNBUFFERED=1
pids=()
for name in "$@"; do
  mkdir -p "$runs/$group/$name"
  "$python" "$(dirname "$0")/experiments.py" "$group" --device cuda --precision bf16 --threads 2 \
    --only "$name" --data-root "$data" --runs "$runs" >"$runs/$group/$name/device.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "${*:i+1:1}: failed, see its device.log" >&2; status=1; }
done
exit $status
