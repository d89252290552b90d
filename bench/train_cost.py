"""A whole `gradloss train` process against the seed's loop: wall time and peak memory.

    python bench/train_cost.py                    # 6000 Fashion-MNIST images, 1 epoch, 3 rounds
    python bench/train_cost.py --rounds 5 --before 56f7947

Three whole processes per round, their order rotated from round to round so that load on the
machine hits them alike:

- `seed loop`: the yardstick, the seed code's way: import TensorFlow, load the same images,
  the plain double-tape step (`engines.yardsticks.make_plain_gradient_step`) over a shuffled
  `tf.data` pipeline at batch 100, after each epoch `model.predict` on the test set (its test
  accuracy), then one more `model.predict` (the sweep at sigma = 0 below);
- `before` and `after`: `gradloss train` (TensorFlow engine, gradient loss) as the CLI runs it,
  from the code of commit `--before` (extracted under bench/.trees/) and from the working tree,
  with the noise sweep cut to sigma = 0 and one draw (like with like: one clean pass, as the
  seed loop's last predict). gradloss records every per-epoch measurement on top: test
  accuracy, the input-gradient norm over 500 test images, a checkpoint, progress.

Per process: wall seconds and peak resident memory (the kernel's account of that child), min /
median over rounds; ratios are of medians. The recorded figures of `before` and `after` (test
accuracy, sigma-0 accuracy, epoch loss, input-gradient norm) are compared: the accuracies must
be bit-identical.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

BEFORE = "8e7bcb9"  # main before issue 26
TARGET = 1.05       # time and memory within 5 % of the seed loop's
# `gradloss train` with the sweep cut to one clean pass (the CLI always sweeps 8 sigmas)
GRADLOSS_TRAIN = ("import sys\n"
                  "from gradloss.cli import local\n"
                  "from gradloss.core.config import SweepConfig\n"
                  "local._sweep = lambda args: SweepConfig(sigmas=(0.0,), draws=1)\n"
                  "from gradloss.cli.main import main\n"
                  "sys.exit(main(sys.argv[1:]))\n")


def seed_loop(train_size: int, epochs: int, data_dir: str | None) -> dict:
    """The yardstick, in this process (KERAS_BACKEND=tensorflow)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from gradloss.data import load_dataset
    from gradloss.engines.yardsticks import make_plain_gradient_step
    from gradloss.models import build_cnn

    ds = load_dataset("fashion_mnist", data_dir=data_dir, train_size=train_size, seed=0)
    keras.utils.set_random_seed(0)
    model = build_cnn()
    step = make_plain_gradient_step(model, keras.optimizers.Adam())
    batches = tf.data.Dataset.from_tensor_slices((ds.x_train, ds.y_train))
    labels = ds.y_test.argmax(-1)
    accuracy = []
    for _ in range(epochs):
        for x, y in batches.shuffle(len(ds.x_train)).batch(100):
            step(x, y)
        accuracy.append(float(np.mean(model.predict(ds.x_test, verbose=0).argmax(-1) == labels)))
    clean = float(np.mean(model.predict(ds.x_test, verbose=0).argmax(-1) == labels))
    return {"test_accuracy": accuracy, "sigma0": clean}


def _summary(stdout: str) -> dict:
    """The JSON summary `gradloss train` prints last."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    return json.loads("\n".join(lines[start:]))


def measure(args) -> dict:
    data_dir = args.data_dir or os.environ.get("GRADLOSS_DATA_DIR") or str(
        _common.REPO.parent / "shared" / "data" / "fashion-mnist")
    trees = {"before": _common.checkout(args.before), "after": _common.REPO}
    home = tempfile.mkdtemp(prefix="train_cost-")
    env = dict(os.environ, GRADLOSS_DATA_DIR=data_dir, GRADLOSS_HOME=home,
               TF_CPP_MIN_LOG_LEVEL="3")
    train_args = ["train", "--dataset", "fashion_mnist", "--train-size", str(args.train_size),
                  "--epochs", str(args.epochs), "--objective", "gradient", "--engine",
                  "tensorflow", "--batch-size", "100"]
    commands = {
        "seed loop": ([sys.executable, __file__, "--seed-loop", "--train-size",
                       str(args.train_size), "--epochs", str(args.epochs), "--data-dir",
                       data_dir], _common.REPO, _common.child_environment("tensorflow", env=env)),
        **{name: ([sys.executable, "-c", GRADLOSS_TRAIN, *train_args, "--out",
                   str(Path(home) / f"{name}-{{round}}")], tree, env)
           for name, tree in trees.items()}}
    names = list(commands)
    runs = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            cmd, cwd, child_env = commands[name]
            cmd = [c.replace("{round}", str(r)) for c in cmd]
            load = os.getloadavg()[0]
            done = _common.run_process(cmd, cwd, child_env, timeout=1800)
            if done["returncode"] != 0:
                raise RuntimeError(f"{name} exited with {done['returncode']}")
            out = (json.loads(done["stdout"].strip().splitlines()[-1]) if name == "seed loop"
                   else _summary(done["stdout"]))
            runs[name].append({"wall_s": done["wall_s"], "peak_mib": done["peak_mib"],
                               "cpu_s": done["cpu_s"], "load_before": load, "out": out})
            print(f"  round {r + 1} {name}: {done['wall_s']:.1f} s, {done['peak_mib']:.0f} MiB "
                  f"(load {load:.1f})", file=sys.stderr, flush=True)
    return {"train_size": args.train_size, "epochs": args.epochs, "before": args.before,
            "runs": runs}


def report(outcome: dict) -> list[list]:
    runs = outcome["runs"]
    med = {name: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "peak_mib")}
           for name, rs in runs.items()}
    rows = []
    for name, rs in runs.items():
        rows.append([name, _common.min_median([r["wall_s"] for r in rs]),
                     f"{med[name]['wall_s'] / med['seed loop']['wall_s']:.3f}",
                     _common.min_median([r["peak_mib"] for r in rs]),
                     f"{med[name]['peak_mib'] / med['seed loop']['peak_mib']:.3f}",
                     _common.min_median([r["cpu_s"] for r in rs])])
    _common.print_table(["process", "wall s min / median", "/ seed loop", "peak MiB min / median",
                         "/ seed loop", "CPU s min / median"], rows)
    loads = [r["load_before"] for rs in runs.values() for r in rs]
    print(f"\n{outcome['train_size']} images, {outcome['epochs']} epoch(s), "
          f"{len(runs['seed loop'])} rounds; load average {min(loads):.1f}-{max(loads):.1f}")
    for what in ("wall_s", "peak_mib"):
        ratio = med["after"][what] / med["seed loop"][what]
        print(f"after / seed loop, {what}: {ratio:.3f} (target <= {TARGET}: "
              f"{'met' if ratio <= TARGET else 'missed'})")
    before, after = runs["before"][0]["out"], runs["after"][0]["out"]
    keys = ("test_accuracy", "accuracy_vs_sigma", "epoch_loss", "input_grad_norm")
    for key in keys:
        same = all(r["out"][key] == before[key] for r in runs["before"] + runs["after"])
        print(f"{key}: before {before[key]}, after {after[key]}: "
              f"{'identical in every round' if same else 'DIFFERENT'}")
    return rows


def main(argv=None) -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST files")
    parser.add_argument("--seed-loop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seed_loop:
        _common.emit_child_result(seed_loop(args.train_size, args.epochs, args.data_dir))
        return
    outcome = measure(args)
    _common.conclude("train_cost", args, [outcome], lambda outcomes: report(outcomes[0]))


if __name__ == "__main__":
    main()
