"""Cost of a training step of each built-in architecture (cnn, mlp, resnet), per engine.

    python bench/architecture_cost.py                        # every installed engine
    python bench/architecture_cost.py --engines tensorflow --shape 32,32,3 --batch 32 --steps 4

Each engine runs in its own subprocess. Inside it every architecture, sized for `--shape`
images and `--classes` classes, trains through the engine's `run_steps` (as training calls it)
for the gradient loss and the baseline, alternating in `--rounds` rounds after a compiling
warm-up; each figure is the median over rounds of ms per step, with the model's parameter count
and `gradient/baseline`. Inputs are random images: the cost does not depend on the pixels.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

OBJECTIVES = ("gradient", "baseline")


def measure(engine: str, shape: tuple, classes: int, batch: int, steps: int, rounds: int,
            seed: int) -> dict:
    """Time every (architecture, objective) step; runs in the engine's own process."""
    import keras
    import numpy as np

    from gradloss.core.config import ARCHITECTURES, TrainConfig
    from gradloss.models import build_model
    from gradloss.training.steppers import make_engine

    rng = np.random.default_rng(seed)
    x = rng.random((steps, batch, *shape), dtype=np.float32)                     # (k, B, H, W, C)
    y = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, (steps, batch))]  # (k, B, K)
    runners, params, device = {}, {}, "CPU"
    for name in ARCHITECTURES:
        for objective in OBJECTIVES:
            config = TrainConfig(objective=objective, architecture=name, batch_size=batch,
                                 engine=engine, seed=seed)
            model = build_model(config, shape, classes)
            optimizer = keras.optimizers.Adam()
            optimizer.build(model.trainable_variables)
            step = make_engine(model, optimizer, config)
            step.chunk_steps = steps
            runners[(name, objective)], params[name], device = (step.run_steps,
                                                                model.count_params(), step.device)
    for run in runners.values():
        run(x, y)  # compile and warm up
    ms = {key: [] for key in runners}
    for _ in range(rounds):
        for key, run in runners.items():
            t0 = time.perf_counter()
            run(x, y)
            ms[key].append(1000 * (time.perf_counter() - t0) / steps)
    cells = [{"architecture": name, "objective": objective, "parameters": params[name],
              "ms": statistics.median(v), "rounds_ms": v} for (name, objective), v in ms.items()]
    for c in cells:
        print(f"{engine} {c['architecture']} {c['objective']}: {c['ms']:.1f} ms", file=sys.stderr)
    return {"engine": engine, "device": device, "shape": list(shape), "batch": batch,
            "cells": cells}


def report(outcomes: list[dict]) -> list[list]:
    rows = []
    for out in outcomes:
        ms = {(c["architecture"], c["objective"]): c for c in out["cells"]}
        for name in dict.fromkeys(c["architecture"] for c in out["cells"]):
            grad, base = ms[(name, "gradient")], ms[(name, "baseline")]
            rows.append([out["engine"], out["device"], "x".join(map(str, out["shape"])),
                         out["batch"], name, grad["parameters"], grad["ms"], base["ms"],
                         grad["ms"] / base["ms"]])
    _common.print_table(["engine", "device", "images", "batch", "architecture", "parameters",
                         "gradient ms", "baseline ms", "gradient/baseline"], rows)
    return rows


def main(argv=None) -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--shape", default="32,32,3", help="H,W,C of the images")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    shape = tuple(int(d) for d in args.shape.split(","))
    if args.engine:
        _common.use_backend(args.engine)
        _common.emit_child_result(measure(args.engine, shape, args.classes, args.batch,
                                          args.steps, args.rounds, args.seed))
        return
    child_args = ["--shape", args.shape, "--classes", str(args.classes), "--batch",
                  str(args.batch), "--steps", str(args.steps), "--rounds", str(args.rounds),
                  "--seed", str(args.seed)]
    outcomes = _common.run_engines(__file__, args.engines, child_args, "timing")
    _common.conclude("architecture_cost", args, outcomes, report)


if __name__ == "__main__":
    main()
