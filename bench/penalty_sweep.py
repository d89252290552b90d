"""Pick lambda for the input-gradient penalty: train with each weight, compare accuracy under noise.

    python bench/penalty_sweep.py [--weights 0,0.01,0.1,1,10] [--seeds 0,1] [--train-size 10000]
                                  [--epochs 20] [--out bench/penalty_sweep.jsonl]
    python bench/penalty_sweep.py --table-only      # the table of what --out holds so far

Fashion-MNIST, TensorFlow engine, the input_gradient objective's protocol (batch 32) with
`--epochs`; weight 0 is plain cross-entropy (the baseline). Results are grouped by (λ, epochs). Per weight: mean test accuracy at sigma 0, 0.1,
0.2 over the seeds (3 noise draws each), each seed's accuracy at 0.2, the mean input-gradient
norm over the first 500 test images after training, and training seconds.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import _objectives as common

HEADER = ["λ", "epochs", "seeds", "clean", "σ=0.1", "σ=0.2", "σ=0.2 per seed", "‖∂CE/∂x‖", "train s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="0,0.01,0.1,1,10")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--train-size", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--out", type=Path, default=Path("bench/penalty_sweep.jsonl"))
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    if not args.table_only:
        from gradloss.core.config import TrainConfig
        from gradloss.data import load_dataset
        for seed in map(int, args.seeds.split(",")):
            data = load_dataset("fashion_mnist", train_size=args.train_size, seed=seed)
            for weight in map(float, args.weights.split(",")):
                objective = "input_gradient" if weight > 0 else "baseline"
                config = TrainConfig(objective=objective, epochs=args.epochs, batch_size=32,
                                     train_size=args.train_size, seed=seed,
                                     penalty_weight=weight if weight > 0 else None)
                row = common.train_and_sweep(config, data, common.RUNS / f"lambda{weight:g}-{seed}")
                common.append(args.out, {"weight": weight, **row})
                print(f"λ={weight:g} seed {seed}: {row}", flush=True)
    rows = common.summarise(common.load(args.out), key=lambda r: (f"{r['weight']:g}",
                                                                 r["config"]["epochs"]))
    print(common.markdown(HEADER, rows))


if __name__ == "__main__":
    main()
