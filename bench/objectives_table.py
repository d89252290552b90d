"""Every objective on Fashion-MNIST: clean accuracy, accuracy at sigma 0.1 and 0.2, training time.

    python bench/objectives_table.py [--objectives gradient,baseline,...] [--seeds 0,1]
                                     [--train-size 10000] [--epoch-fraction 1.0]
                                     [--out bench/objectives_table.jsonl]
    python bench/objectives_table.py --table-only   # the table of what --out holds so far

Each objective trains with its reference protocol (batch size, own parameters) on the
TensorFlow engine; `--epoch-fraction` scales every protocol's epochs (0.5: gradient and mse 5,
the cross-entropy objectives 10) where the CPU cannot afford the whole protocol. Seeds run
outermost, so a stopped run still has whole seeds. Accuracy is the mean over 3 noise draws.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import _objectives as common

HEADER = ["objective", "epochs", "seeds", "clean", "σ=0.1", "σ=0.2", "σ=0.2 per seed",
          "‖∂CE/∂x‖", "train s"]


def main() -> None:
    from gradloss.core.config import OBJECTIVES, REFERENCE_PROTOCOL

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objectives", default=",".join(OBJECTIVES))
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--train-size", type=int, default=10_000)
    p.add_argument("--epoch-fraction", type=float, default=1.0)
    p.add_argument("--out", type=Path, default=Path("bench/objectives_table.jsonl"))
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    if not args.table_only:
        from gradloss.core.config import TrainConfig
        from gradloss.data import load_dataset
        for seed in map(int, args.seeds.split(",")):
            data = load_dataset("fashion_mnist", train_size=args.train_size, seed=seed)
            for objective in args.objectives.split(","):
                epochs = max(1, round(REFERENCE_PROTOCOL[objective]["epochs"] * args.epoch_fraction))
                config = TrainConfig(objective=objective, epochs=epochs, train_size=args.train_size,
                                     seed=seed)
                row = common.train_and_sweep(config, data, common.RUNS / f"{objective}-{seed}")
                common.append(args.out, row)
                print(f"{objective} seed {seed}: {row}", flush=True)
    rows = common.summarise(common.load(args.out), key=lambda r: (
        r["config"]["objective"], r["config"]["epochs"]))
    print(common.markdown(HEADER, rows))


if __name__ == "__main__":
    main()
