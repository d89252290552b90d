"""Cost of a training step through `model.fit` (gradloss.keras) against the engine's step.

    python bench/keras_fit.py                          # every installed backend, batch 100
    python bench/keras_fit.py --engines tensorflow,jax,torch --batch 32 --steps 8 --rounds 2

Each backend runs in its own subprocess. Inside it, for the gradient loss and the baseline,
`fit` on the wrapped reference CNN (`gradloss.keras.ObjectiveModel`: Keras's own train step,
its data adapter and callbacks included, one `fit` call of `--steps` batches per round) and the
engine's `run_steps` (`training.steppers.make_engine`, as training calls it; TensorFlow and JAX
only) are timed alternately in `--rounds` rounds after a warm-up that compiles both; each figure
is the median over rounds of ms per step. `fit/engine` > 1: the engine is that many times faster.
Inputs are random images: the cost does not depend on the pixel values.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

ENGINES = ("tensorflow", "jax")  # backends with a gradloss engine; torch has fit only
OBJECTIVES = ("gradient", "baseline")


def _runners(engine: str, objective: str, batch: int, steps: int, seed: int) -> dict:
    """{kind: run(x, y)} of fresh models: "fit" and, where there is one, "engine"."""
    import keras

    import gradloss.keras as gk
    from gradloss.core.config import TrainConfig
    from gradloss.models import build_cnn

    keras.utils.set_random_seed(seed)
    wrapper = gk.ObjectiveModel(build_cnn(), objective)
    wrapper.compile(optimizer=keras.optimizers.Adam())

    def fit(x, y):  # (k, B, H, W, C) -> k steps of one fit call
        wrapper.fit(x.reshape(-1, *x.shape[2:]), y.reshape(-1, y.shape[-1]), batch_size=batch,
                    epochs=1, shuffle=False, verbose=0)
    runners = {"fit": fit}
    if engine in ENGINES:
        from gradloss.training.steppers import make_engine

        keras.utils.set_random_seed(seed)
        model, optimizer = build_cnn(), keras.optimizers.Adam()
        optimizer.build(model.trainable_variables)
        step = make_engine(model, optimizer, TrainConfig(objective=objective, batch_size=batch,
                                                         engine=engine))
        step.chunk_steps = steps  # one call per round, as fit's one call
        runners["engine"] = step.run_steps
    return runners


def measure(engine: str, batch: int, steps: int, rounds: int, seed: int) -> dict:
    """Time fit and the engine's step for each objective; runs in the backend's own process."""
    import numpy as np

    from gradloss.engines.device import device_name

    rng = np.random.default_rng(seed)
    x = rng.random((steps, batch, 28, 28, 1), dtype=np.float32)              # (k, B, H, W, C)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, (steps, batch))]   # (k, B, K)
    cells = []
    for objective in OBJECTIVES:
        runners = _runners(engine, objective, batch, steps, seed)
        for run in runners.values():  # compile and warm up
            run(x, y)
        ms = {kind: [] for kind in runners}
        for _ in range(rounds):
            for kind, run in runners.items():
                t0 = time.perf_counter()
                run(x, y)
                ms[kind].append(1000 * (time.perf_counter() - t0) / steps)
        cells += [{"objective": objective, "step": kind, "ms": statistics.median(v),
                   "rounds_ms": v} for kind, v in ms.items()]
        print(f"{engine} {objective}: " + ", ".join(
            f"{c['step']} {c['ms']:.1f} ms" for c in cells[-len(runners):]), file=sys.stderr)
    device = device_name(engine) if engine in ENGINES else "CPU"
    return {"engine": engine, "device": device, "batch": batch, "cells": cells}


def report(outcomes: list[dict]) -> list[list]:
    rows = []
    for out in outcomes:
        ms = {(c["objective"], c["step"]): c["ms"] for c in out["cells"]}
        for objective in OBJECTIVES:
            fit, engine = ms[(objective, "fit")], ms.get((objective, "engine"))
            rows.append([out["engine"], out["device"], out["batch"], objective, fit, engine,
                         fit / engine if engine else None])
    _common.print_table(["backend", "device", "batch", "objective", "fit ms", "engine ms",
                         "fit/engine"], rows)
    return rows


def main(argv=None) -> None:
    parser = _common.parser(__doc__)
    parser.set_defaults(engines=",".join(_common.installed_engines() + (
        ["torch"] if _common.importlib.util.find_spec("torch") else [])))
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.engine:
        if args.engine in ENGINES:
            _common.use_backend(args.engine)
        _common.emit_child_result(measure(args.engine, args.batch, args.steps, args.rounds,
                                          args.seed))
        return
    child_args = ["--batch", str(args.batch), "--steps", str(args.steps), "--rounds",
                  str(args.rounds), "--seed", str(args.seed)]
    outcomes = _common.run_engines(__file__, args.engines, child_args, "timing")
    _common.conclude("keras_fit", args, outcomes, report)


if __name__ == "__main__":
    main()
