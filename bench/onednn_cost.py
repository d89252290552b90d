"""TensorFlow's oneDNN kernels on and off: the training step of each frontier objective, side by
side, in two processes started one after the other.

    python bench/onednn_cost.py [--batch 100] [--steps 30] [--rounds 5]

TF_ENABLE_ONEDNN_OPTS is read once, when TensorFlow is imported, so each setting runs in a
process of its own (`--child`). In each, every objective trains the reference CNN on random
28x28 images through `TensorFlowEngine.run_steps` (as training calls it), after a warm-up, in
rounds of `--steps` steps; a figure is the median over rounds of the mean ms/step. gradloss
starts its TensorFlow processes with the kernels on (`engines.backend.child_environment`).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

OBJECTIVES = {"mse_penalty": {"penalty_weight": 0.0319}, "input_gradient": {"penalty_weight": 0.1},
              "noise_augmented": {"train_noise_sigma": 0.1}, "gradient": {}}


def child(args) -> None:
    import keras
    import numpy as np

    from gradloss.engines.tf_engine import TensorFlowEngine
    from gradloss.models import build_cnn

    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 1, (args.steps, args.batch, 28, 28, 1)).astype(np.float32)
    ys = np.eye(10, dtype=np.float32)[rng.integers(0, 10, (args.steps, args.batch))]
    out = {}
    for objective, params in OBJECTIVES.items():
        keras.utils.set_random_seed(0)
        model = build_cnn()
        engine = TensorFlowEngine(model, keras.optimizers.Adam(), objective, params)
        engine.chunk_steps = args.steps
        engine.run_steps(xs, ys)  # compile and warm up
        rounds = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            engine.run_steps(xs, ys)
            rounds.append((time.perf_counter() - t0) / args.steps * 1000)
        out[objective] = statistics.median(rounds)
    print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    figures = {}
    for setting in ("0", "1"):
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting, KERAS_BACKEND="tensorflow",
                   CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2",
                   PYTHONPATH=str(_common.REPO))
        done = subprocess.run([sys.executable, __file__, "--child", "--batch", str(args.batch),
                               "--steps", str(args.steps), "--rounds", str(args.rounds)],
                              env=env, capture_output=True, text=True, check=True)
        figures[setting] = json.loads(done.stdout.strip().splitlines()[-1])
    rows = [[objective, figures["0"][objective], figures["1"][objective],
             figures["1"][objective] / figures["0"][objective]] for objective in OBJECTIVES]
    header = ["objective", "off ms/step", "on ms/step", "on / off"]
    _common.print_table(header, rows)
    _common.append_result("onednn_cost", args, [figures], rows)


if __name__ == "__main__":
    main()
