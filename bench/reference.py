"""Wall time of the whole reference protocol, per engine: train both objectives, then sweep.

    python bench/reference.py                                  # full protocol: ~20 min per engine on 2 CPU cores
    python bench/reference.py --train-size 2000 --epochs 1     # a scaled-down rehearsal

Per engine (each in its own subprocess): train the gradient-loss model (10 epochs, batch 100)
and the baseline (20 epochs, batch 32) on Fashion-MNIST, then run the robustness sweep
(8 sigmas x 3 draws on the 10k test set) on each. Prints the time of every part, the
accuracies next to the reference experiment's, and the ratios between engines and objectives.
Run by hand; it is not part of the tests.

`--seed-style` adds the yardstick: the protocol trained the way the seed code did (the plain
double-tape step over a shuffled tf.data pipeline for the gradient loss, `model.fit` for the
baseline), in its own subprocess, so the TensorFlow engine's time can be read as a ratio of it.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def run_engine(config, ds, run_dir: str, data_dir: str | None):
    """Train and sweep with gradloss (the config's engine) through the pipeline; return
    (sweep table, train s, step ms, sweep s, device)."""
    from gradloss.core.config import REFERENCE_SIGMAS, SweepConfig
    from gradloss.core.plan import RunPlan

    plan = RunPlan(config, SweepConfig(REFERENCE_SIGMAS), data_dir=data_dir)
    [outcome], timings = _common.run_plans([plan], [run_dir], dataset=ds)
    return (outcome.sweep, outcome.seconds, outcome.final.step_ms, timings.sweep_s[0],
            outcome.device)


def run_seed_style(config, ds, run_dir: str, data_dir: str | None):
    """Train the seed code's way (the plain double-tape step over tf.data; model.fit for the
    baseline), then sweep its model through the pipeline's `measure`; as `run_engine`."""
    import keras
    import tensorflow as tf

    from gradloss.core.config import REFERENCE_SIGMAS, SweepConfig
    from gradloss.engines.yardsticks import make_plain_gradient_step
    from gradloss.models import build_cnn
    from gradloss.pipeline.run import measure

    keras.utils.set_random_seed(config.seed)
    model = build_cnn(ds.x_train.shape[1:], ds.y_train.shape[1])
    t0 = time.perf_counter()
    if config.objective == "gradient":
        step = make_plain_gradient_step(model, keras.optimizers.Adam())
        batches = tf.data.Dataset.from_tensor_slices((ds.x_train, ds.y_train))
        for _ in range(config.epochs):
            for x, y in batches.shuffle(len(ds.x_train)).batch(config.batch_size):
                step(x, y)
    else:
        model.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy")
        model.fit(ds.x_train, ds.y_train, batch_size=config.batch_size, epochs=config.epochs,
                  verbose=0)
    train_s = time.perf_counter() - t0
    steps = config.epochs * -(-len(ds.x_train) // config.batch_size)
    model.save(Path(run_dir) / "model.keras")
    timings = _common.Timings()
    t0 = time.perf_counter()
    outcome = measure(Path(run_dir) / "model.keras", config.dataset, timings, data_dir=data_dir,
                      sweep=SweepConfig(REFERENCE_SIGMAS), data=ds)
    return outcome.sweep, train_s, 1000 * train_s / steps, time.perf_counter() - t0, "CPU"


def measure(name: str, objectives: list[str], dataset: str, train_size: int | None,
            epochs: int | None, data_dir: str | None, seed: int) -> dict:
    """Train and sweep each objective in this process; `name` is an engine or "seed-style"."""
    from gradloss.core.config import TrainConfig
    from gradloss.data import load_dataset

    runner = run_seed_style if name == "seed-style" else run_engine
    t_all = time.perf_counter()
    ds = load_dataset(dataset, data_dir=data_dir, train_size=train_size, seed=seed)
    parts = []
    for objective in objectives:
        config = TrainConfig(objective=objective, dataset=dataset, epochs=epochs,
                             train_size=train_size, seed=seed,
                             engine="tensorflow" if name == "seed-style" else name)
        with tempfile.TemporaryDirectory() as run_dir:
            curve, train_s, step_ms, sweep_s, device = runner(config, ds, run_dir, data_dir)
        accuracy = dict(zip(curve["sigma"], curve["accuracy"]))
        parts.append({"engine": name, "device": device, "objective": objective,
                      "epochs": config.epochs, "batch_size": config.batch_size,
                      "train_images": len(ds.x_train), "train_s": train_s,
                      "step_ms": step_ms, "sweep_s": sweep_s,
                      "accuracy": {str(s): float(a) for s, a in accuracy.items()}})
        print(f"{name} {objective}: trained in {train_s:.0f} s, swept in {sweep_s:.0f} s, "
              f"accuracy {accuracy[0.0]:.4f}", file=sys.stderr, flush=True)
    return {"engine": name, "total_s": time.perf_counter() - t_all, "parts": parts}


def report(outcomes: list[dict]) -> list[list]:
    """Print times, accuracies beside the reference, and ratios; return the table rows."""
    from gradloss.core.config import REFERENCE_ACCURACY  # no keras: safe in the parent

    rows = []
    for out in outcomes:
        for p in out["parts"]:
            ref = REFERENCE_ACCURACY[p["objective"]]
            rows.append([p["engine"], p["device"], p["objective"], p["epochs"], p["batch_size"],
                         p["train_s"], p["step_ms"], p["sweep_s"],
                         *(f"{a:.4f}" for a in (p["accuracy"]["0.0"], ref[0.0],
                                                p["accuracy"]["0.1"], ref[0.1]))])
    _common.print_table(["engine", "device", "objective", "epochs", "batch", "train s", "step ms",
                         "sweep s", "acc s=0", "ref s=0", "acc s=0.1", "ref s=0.1"], rows)
    print()
    base = outcomes[0]
    train_s = {id(out): sum(p["train_s"] for p in out["parts"]) for out in outcomes}
    for out in outcomes:
        line = (f"{out['engine']}: whole protocol {out['total_s']:.0f} s, "
                f"training {train_s[id(out)]:.0f} s")
        if out is not base:
            line += (f" ({out['total_s'] / base['total_s']:.2f} x {base['engine']} whole, "
                     f"{train_s[id(out)] / train_s[id(base)]:.2f} x training)")
        by_obj = {p["objective"]: p for p in out["parts"]}
        if {"gradient", "baseline"} <= set(by_obj):
            g, b = by_obj["gradient"], by_obj["baseline"]
            line += (f"; training gradient/baseline {g['train_s'] / b['train_s']:.2f}, "
                     f"step ms gradient/baseline {g['step_ms'] / b['step_ms']:.2f} "
                     f"(batches {g['batch_size']} vs {b['batch_size']})")
        print(line)
    return rows


def main(argv=None) -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--objectives", default="gradient,baseline")
    parser.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist or digits")
    parser.add_argument("--train-size", type=int, help="training images (default: all)")
    parser.add_argument("--epochs", type=int, help="epochs for every objective "
                                                   "(default: the protocol's 10 and 20)")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seed-style", action="store_true",
                        help="also time the seed code's way of training, as the yardstick")
    args = parser.parse_args(argv)
    objectives = args.objectives.split(",")
    if args.engine:
        _common.use_backend(args.engine)
        name = "seed-style" if args.seed_style else args.engine
        _common.emit_child_result(measure(name, objectives, args.dataset, args.train_size,
                                          args.epochs, args.data_dir, args.seed))
        return

    child_args = ["--objectives", args.objectives, "--dataset", args.dataset,
                  "--seed", str(args.seed)]
    for flag, value in (("--train-size", args.train_size), ("--epochs", args.epochs),
                        ("--data-dir", args.data_dir and str(Path(args.data_dir).resolve()))):
        child_args += [flag, str(value)] if value is not None else []
    outcomes = []
    if args.seed_style:  # first: the other engines' times are printed as ratios of it
        print("running the protocol seed-style ...", flush=True)
        outcomes.append(_common.run_child(__file__, "tensorflow", child_args + ["--seed-style"]))
    outcomes += _common.run_engines(__file__, args.engines, child_args, "running the protocol")
    _common.conclude("reference", args, outcomes, report)


if __name__ == "__main__":
    main()
