"""The JAX engine's ways to train, timed on the reference protocol and on a seeds experiment.

    python bench/experiment.py --mode steps  --seeds 1     # the protocol, one seed, step by step
    python bench/experiment.py --mode epochs --seeds 1     # the same in whole epochs on the device
    python bench/experiment.py --mode batch  --seeds 5     # 2 objectives x 5 seeds, seed batches
    python bench/experiment.py --summary a.jsonl           # one table of the modes recorded there

One mode per process (KERAS_BACKEND=jax), so each pays its own compiles. Every objective is
trained for every seed, then each model is swept (SweepConfig(): 8 sigmas x 3 draws, the whole test
set). `steps`: one run after another through the engine's chunked step path
(`train(whole_epochs=False)`); `epochs`: the same runs in whole epochs on the device;
`batch`: each objective's seeds as one program (`pipeline.run(seed_batch=True)`). Prints wall time
(data loading, training, sweep), training and sweep time per arm, and the test accuracy at
sigma 0 / 0.1 / 0.2 per arm (mean over seeds); `--jsonl FILE` also appends the outcome there.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SIGMAS_SHOWN = (0.0, 0.1, 0.2)


def measure(mode: str, objectives: list[str], seeds: list[int], dataset: str,
            train_size: int | None, epochs: int | None, data_dir: str | None) -> dict:
    """Train and sweep every objective x seed the `mode` way (through the pipeline); return
    times and accuracies."""
    from gradloss.core.config import SweepConfig, TrainConfig
    from gradloss.core.plan import RunPlan
    from gradloss.data import load_dataset

    t_all = time.perf_counter()
    full = load_dataset(dataset, data_dir=data_dir)  # every run takes its rows of it
    arms = []
    with tempfile.TemporaryDirectory() as tmp:
        for objective in objectives:
            plans = [RunPlan(TrainConfig(objective=objective, dataset=dataset, epochs=epochs,
                                         train_size=train_size, seed=s, engine="jax"),
                             SweepConfig(), data_dir=data_dir) for s in seeds]
            dirs = [Path(tmp) / f"{objective}-{s}" for s in seeds]
            outcomes, timings = _common.run_plans(
                plans, dirs, dataset=full, seed_batch=mode == "batch",
                whole_epochs=None if mode == "batch" else mode == "epochs")
            train_s = (outcomes[0].seconds if mode == "batch"  # one program for every seed
                       else sum(o.seconds for o in outcomes))
            sweep_s = sum(timings.sweep_s.values())
            curves = [o.sweep for o in outcomes]
            accuracy = {str(s): float(sum(c.set_index("sigma").loc[s, "accuracy"]
                                          for c in curves) / len(curves)) for s in SIGMAS_SHOWN}
            arms.append({"objective": objective, "seeds": len(seeds),
                         "epochs": plans[0].train.epochs, "batch_size": plans[0].train.batch_size,
                         "train_s": train_s, "sweep_s": sweep_s, "device": outcomes[0].device,
                         "per_seed": {str(s): c.accuracy.tolist() for s, c in zip(seeds, curves)},
                         "sigmas": curves[0].sigma.tolist(),
                         "step_ms": sum(o.final.step_ms for o in outcomes) / len(outcomes),
                         "accuracy": accuracy})
            print(f"{mode} {objective} x {len(seeds)}: trained in {train_s:.1f} s, swept in "
                  f"{sweep_s:.1f} s, accuracy {accuracy['0.0']:.4f}", flush=True)
    return {"mode": mode, "wall_s": time.perf_counter() - t_all, "arms": arms}


def summary(outcomes: list[dict]) -> None:
    """Print one table: a row per mode and arm, then each mode's wall and training time."""
    header = ["mode", "device", "objective", "seeds", "epochs", "batch", "train s", "step ms",
              "sweep s", *(f"acc s={s}" for s in SIGMAS_SHOWN)]
    rows = [[o["mode"], a["device"], a["objective"], a["seeds"], a["epochs"], a["batch_size"],
             a["train_s"], a["step_ms"], a["sweep_s"],
             *(f"{a['accuracy'][str(s)]:.4f}" for s in SIGMAS_SHOWN)]
            for o in outcomes for a in o["arms"]]
    _common.print_table(header, rows)
    print()
    for o in outcomes:
        seeds = o["arms"][0]["seeds"]
        print(f"{o['mode']}: {len(o['arms'])} objective(s) x {seeds} seed(s): wall "
              f"{o['wall_s']:.1f} s, training {sum(a['train_s'] for a in o['arms']):.1f} s, "
              f"sweep {sum(a['sweep_s'] for a in o['arms']):.1f} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("steps", "epochs", "batch"), default="batch")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 of every objective")
    parser.add_argument("--objectives", default="gradient,baseline")
    parser.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist or digits")
    parser.add_argument("--train-size", type=int, help="training images (default: all)")
    parser.add_argument("--epochs", type=int, help="epochs for every objective "
                                                   "(default: the protocol's 10 and 20)")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST files")
    parser.add_argument("--jsonl", help="append the outcome to this file as one JSON line")
    parser.add_argument("--summary", nargs="+", metavar="JSONL",
                        help="print one table of the outcomes in these files, train nothing")
    args = parser.parse_args(argv)
    if args.summary:
        summary([json.loads(line) for name in args.summary if os.path.exists(name)
                 for line in Path(name).read_text().splitlines() if line.strip()])
        return
    from gradloss.engines.backend import use_backend
    use_backend("jax")  # before the first keras import
    outcome = measure(args.mode, args.objectives.split(","), list(range(args.seeds)),
                      args.dataset, args.train_size, args.epochs, args.data_dir)
    outcome["host"] = _common.host_info()
    summary([outcome])
    if args.jsonl:
        with open(args.jsonl, "a") as f:
            f.write(json.dumps(outcome) + "\n")


if __name__ == "__main__":
    main()
