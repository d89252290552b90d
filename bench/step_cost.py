"""Cost of one training step: gradient loss vs cross-entropy baseline, per engine and batch size.

    python bench/step_cost.py                       # every installed engine, batches 32 100 256
    python bench/step_cost.py --engines tensorflow --batches 100 --steps 40

Each engine runs in its own subprocess (the Keras backend is fixed per process). Inside it the
steps being compared are timed in the same process, alternating in rounds after a warm-up, so
load on the machine hits them alike; a cell's figure is the median over its rounds of the mean
ms/step. For TensorFlow the plain double-tape step of the seed code (both x and y taped,
`engines.yardsticks.make_plain_gradient_step`) is timed alongside as the yardstick. Steps go through
the engines' `run_steps`, as in training, host sync (the losses as floats) included. For JAX
the yardstick is the gradient loss's definition differentiated by nested reverse mode
(`JaxEngine(nested=True)`: jax.grad of jax.grad), run through the same engine. Inputs are
random images: the cost of a step does not depend on the pixel values.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

RATIO_TARGET = 2.2  # gradient/baseline step ratio the issue asks for on every engine


def _runners(engine: str, batch: int, seed: int, chunk: int) -> tuple[str, dict]:
    """Fresh model + Adam per step kind; returns (device, {kind: run(x, y)})."""
    import keras

    from gradloss.models import build_cnn
    from gradloss.training.steppers import make_engine
    from gradloss.core.config import TrainConfig

    runners, device = {}, "CPU"
    for objective in ("gradient", "baseline"):
        keras.utils.set_random_seed(seed)
        model, optimizer = build_cnn(), keras.optimizers.Adam()
        optimizer.build(model.trainable_variables)
        eng = make_engine(model, optimizer, TrainConfig(objective=objective, batch_size=batch,
                                                        engine=engine))
        eng.chunk_steps = chunk  # a timed round is one call: one sync, one compiled loop (JAX)
        runners[objective], device = eng.run_steps, eng.device
    if engine == "tensorflow":
        runners["plain"] = _plain_runner(seed)
    else:  # JAX: the definition, jax.grad of jax.grad, through the same engine and loop
        from gradloss.engines.jax_engine import JaxEngine

        keras.utils.set_random_seed(seed)
        model, optimizer = build_cnn(), keras.optimizers.Adam()
        eng = JaxEngine(model, optimizer, "gradient", nested=True)
        eng.chunk_steps = chunk
        runners["plain"] = eng.run_steps
    return device, runners


def _plain_runner(seed: int):
    """The seed-style step, fed and synced like TensorFlowEngine.run_steps."""
    import keras
    import tensorflow as tf

    from gradloss.engines.yardsticks import make_plain_gradient_step
    from gradloss.models import build_cnn

    keras.utils.set_random_seed(seed)
    model, optimizer = build_cnn(), keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    step = make_plain_gradient_step(model, optimizer)

    def run(x, y):
        return [float(step(tf.convert_to_tensor(x[i]), tf.convert_to_tensor(y[i])))
                for i in range(len(x))]
    return run


def measure(engine: str, batches: list[int], steps: int, rounds: int, warmup: int,
            seed: int) -> dict:
    """Time every step kind of `engine` at each batch size; runs in the engine's own process."""
    import numpy as np

    per_round = max(1, steps // rounds)
    cells, device = [], None
    for batch in batches:
        rng = np.random.default_rng([seed, batch])
        x = rng.random((per_round, batch, 28, 28, 1), dtype=np.float32)    # (k, B, H, W, C)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, (per_round, batch))]  # (k, B, K)
        device, runners = _runners(engine, batch, seed, per_round)
        for run in runners.values():  # compile and warm up
            run(x[:max(1, min(warmup, per_round))], y[:max(1, min(warmup, per_round))])
        rounds_ms = {kind: [] for kind in runners}
        for _ in range(rounds):
            for kind, run in runners.items():
                t0 = time.perf_counter()
                run(x, y)
                rounds_ms[kind].append(1000 * (time.perf_counter() - t0) / per_round)
        cells += [{"engine": engine, "batch": batch, "step": kind,
                   "ms": statistics.median(ms), "rounds_ms": ms} for kind, ms in rounds_ms.items()]
        print(f"{engine} batch {batch}: " + ", ".join(
            f"{c['step']} {c['ms']:.1f} ms" for c in cells[-len(runners):]), file=sys.stderr)
    return {"engine": engine, "device": device, "steps_per_round": per_round, "cells": cells}


def report(outcomes: list[dict]) -> list[list]:
    """Print the table of ms/step and ratios; return its rows."""
    rows = []
    for out in outcomes:
        ms = {(c["batch"], c["step"]): c["ms"] for c in out["cells"]}
        for batch in sorted({c["batch"] for c in out["cells"]}):
            grad, base, plain = (ms.get((batch, k)) for k in ("gradient", "baseline", "plain"))
            rows.append([out["engine"], out["device"], batch, grad, base, grad / base,
                         plain, plain / grad if plain else None])
    _common.print_table(["engine", "device", "batch", "gradient ms", "baseline ms",
                         "gradient/baseline", "plain ms", "plain/gradient"], rows)
    worst = max(r[5] for r in rows)
    print(f"\nworst gradient/baseline ratio {worst:.2f} (target <= {RATIO_TARGET}: "
          f"{'met' if worst <= RATIO_TARGET else 'missed'})")
    if any(r[6] for r in rows):
        print("plain/gradient > 1: the engine's step is that many times faster than the plain "
              "one (TensorFlow: the seed-style double-tape step; JAX: nested jax.grad), timed in "
              "the same process.")
    return rows


def main(argv=None) -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--batches", default="32,100,256", help="comma-separated batch sizes")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per cell")
    parser.add_argument("--rounds", type=int, default=4, help="alternation rounds per cell")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compiles)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    if args.engine:
        _common.use_backend(args.engine)
        _common.emit_child_result(measure(args.engine, batches, args.steps, args.rounds,
                                          args.warmup, args.seed))
        return

    child_args = ["--batches", args.batches, "--steps", str(args.steps), "--rounds",
                  str(args.rounds), "--warmup", str(args.warmup), "--seed", str(args.seed)]
    outcomes = _common.run_engines(__file__, args.engines, child_args, "timing")
    _common.conclude("step_cost", args, outcomes, report)


if __name__ == "__main__":
    main()
