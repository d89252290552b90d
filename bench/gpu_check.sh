#!/usr/bin/env bash
# The GPU check of the JAX engine, in one go on one GPU (bench/experiment.py does the work):
#   (a) the reference protocol (both objectives, one seed, with the sweep), step by step (the
#       engine's chunked path), then in whole epochs on the device;
#   (b) an experiment: gradient loss + baseline x 5 seeds, each objective's seeds as one
#       program (seed batching), with the sweep;
#   then one table of all three (summary.txt). --step-cost adds bench/step_cost.py first.
#
#   bench/gpu_check.sh OUT_DIR [DATA_DIR] [--epochs N] [--train-size N] [--seeds N]
#                      [--dataset digits] [--step-cost]
#
# Needs jax with CUDA, keras>=3.3 (with namex, optree) and Fashion-MNIST in DATA_DIR (default:
# $GRADLOSS_DATA_DIR, else the Keras cache). Each part runs in its own process under its own
# time limit (STEPS_TIMEOUT, EPOCHS_TIMEOUT, BATCH_TIMEOUT, STEP_TIMEOUT seconds) and writes to
# OUT_DIR as it goes, so a part that overruns still leaves what came before. A rehearsal on
# CPU: bench/gpu_check.sh /tmp/check --epochs 1 --train-size 500 --seeds 2
set -u
out=${1:?usage: bench/gpu_check.sh OUT_DIR [DATA_DIR] [--epochs N] [--train-size N] [--seeds N] [--dataset NAME] [--step-cost]}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ $# -ge 1 ] && [ "${1#--}" = "$1" ]; then export GRADLOSS_DATA_DIR=$(cd "$1" && pwd); shift; fi
seeds=5 step_cost=0 args=()
while [ $# -gt 0 ]; do
  case $1 in
    --seeds) seeds=$2; shift 2 ;;
    --step-cost) step_cost=1; shift ;;
    --epochs|--train-size|--dataset) args+=("$1" "$2"); shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  python3 -c 'import jax, keras, numpy; print("jax", jax.__version__, "keras", keras.__version__,
"numpy", numpy.__version__, jax.devices())'; } 2>&1 | tee "$out/env.txt"

part() {  # part NAME TIMEOUT COMMAND...: run it under its limit, log to OUT_DIR/NAME.txt
  local name=$1 limit=$2 t0=$SECONDS
  shift 2
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
  echo "$name: $((SECONDS - t0)) s (exit ${PIPESTATUS[0]}, limit $limit s)" | tee -a "$out/env.txt"
}

if [ "$step_cost" = 1 ]; then
  part step_cost "${STEP_TIMEOUT:-240}" python3 bench/step_cost.py --engines jax \
    --batches 32,100,256 --steps 400 --rounds 4 --warmup 2
fi
jsonl="$out/experiment.jsonl"
part protocol_steps "${STEPS_TIMEOUT:-150}" python3 bench/experiment.py --mode steps --seeds 1 \
  ${args[@]+"${args[@]}"} --jsonl "$jsonl"
part protocol_epochs "${EPOCHS_TIMEOUT:-120}" python3 bench/experiment.py --mode epochs --seeds 1 \
  ${args[@]+"${args[@]}"} --jsonl "$jsonl"
part experiment_batch "${BATCH_TIMEOUT:-240}" python3 bench/experiment.py --mode batch \
  --seeds "$seeds" ${args[@]+"${args[@]}"} --jsonl "$jsonl"
python3 bench/experiment.py --summary "$jsonl" 2>&1 | tee "$out/summary.txt"
exit 0
