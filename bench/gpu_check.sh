#!/usr/bin/env bash
# The GPU check of the JAX engine: step cost at batches 32/100/256, then the whole reference
# protocol (train both objectives on Fashion-MNIST, sweep both), in one go on one GPU.
#
#   bench/gpu_check.sh OUT_DIR [DATA_DIR]
#
# Needs jax with CUDA, keras>=3.3 (with namex, optree) and Fashion-MNIST in DATA_DIR (default:
# $GRADLOSS_DATA_DIR, else the Keras cache). Each part runs under its own time limit and writes
# its output to OUT_DIR as it goes, so a part that overruns still leaves what came before.
# STEP_ARGS / REF_ARGS override the benchmarks' arguments (a short rehearsal on CPU, say).
set -u
out=${1:?usage: bench/gpu_check.sh OUT_DIR [DATA_DIR]}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
[ $# -ge 2 ] && export GRADLOSS_DATA_DIR=$(cd "$2" && pwd)

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  python3 -c 'import jax, keras, numpy; print("jax", jax.__version__, "keras", keras.__version__,
"numpy", numpy.__version__, jax.devices())'; } 2>&1 | tee "$out/env.txt"

t0=$SECONDS
timeout "${STEP_TIMEOUT:-240}" python3 bench/step_cost.py --engines jax \
  ${STEP_ARGS:---batches 32,100,256 --steps 400 --rounds 4 --warmup 2} 2>&1 | tee "$out/step_cost.txt"
echo "step_cost: $((SECONDS - t0)) s" | tee -a "$out/env.txt"

t0=$SECONDS
timeout "${REF_TIMEOUT:-300}" python3 bench/reference.py --engines jax ${REF_ARGS:-} 2>&1 \
  | tee "$out/reference.txt"
echo "reference: $((SECONDS - t0)) s" | tee -a "$out/env.txt"
cp bench/results.jsonl "$out/" 2>/dev/null
exit 0
