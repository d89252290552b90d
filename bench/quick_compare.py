"""Calibrate Home's quick compare: which small preset comes closest to the full protocol in time?

    nice python bench/quick_compare.py                       # every candidate preset
    nice python bench/quick_compare.py --presets digits-ref  # one of them

A preset is a training-set size, epochs (None: each objective's reference epochs) and a seed
count. For each candidate this trains the gradient loss and the cross-entropy baseline with
every seed (TensorFlow, this process, one run after the other as one worker would), sweeps
each model over the reference sigmas (3 draws, the whole test set, as the worker does), and
reports the wall time of all runs, the CPU time (on a shared machine the wall time is inflated
by the load; CPU seconds / cores is the unloaded estimate) and the paired difference
gradient - baseline at sigma = 0.1 and 0.2 with its 95 % Student t interval
(`gradloss.stats`). The full protocol's difference at sigma = 0.1 is +4.65 points in the
reference experiment (independent re-runs: +2.2 to +6.0). Run by hand; not part of the tests.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

# name -> (dataset, train_size, epochs (None: reference), seeds)
PRESETS = {
    "digits-ref": ("digits", None, None, 3),
    "fashion-2000-ref": ("fashion_mnist", 2000, None, 3),
    "fashion-5000-e5": ("fashion_mnist", 5000, 5, 3),
    "fashion-5000-ref": ("fashion_mnist", 5000, None, 3),
}
OBJECTIVES = ("gradient", "baseline")
LEVELS = (0.1, 0.2)


def run_preset(name: str) -> dict:
    """Train and sweep every arm x seed of preset `name`; return times and differences."""
    import pandas as pd

    from gradloss.analysis import stats
    from gradloss.core.config import SweepConfig, TrainConfig
    from gradloss.core.plan import RunPlan

    dataset, train_size, epochs, seeds = PRESETS[name]
    rows, t0, c0 = [], time.perf_counter(), time.process_time()
    for seed in range(seeds):
        plans = [RunPlan(TrainConfig(objective=objective, dataset=dataset, epochs=epochs,
                                     train_size=train_size, seed=seed), SweepConfig())
                 for objective in OBJECTIVES]
        with tempfile.TemporaryDirectory() as tmp:
            outcomes, _ = _common.run_plans(plans, [Path(tmp) / o for o in OBJECTIVES])
        for objective, outcome in zip(OBJECTIVES, outcomes):
            curve = outcome.sweep
            rows += [{"arm": objective, "seed": seed, "sigma": s, "accuracy": a}
                     for s, a in zip(curve["sigma"], curve["accuracy"])]
            print(f"{name} seed {seed} {objective}: {time.perf_counter() - t0:.0f} s so far, "
                  f"clean {curve['accuracy'].iloc[0]:.4f}", file=sys.stderr, flush=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    summary = stats.summarize(pd.DataFrame(rows), reference="baseline")
    diffs = {}
    for level in (0.0, *LEVELS):
        row = summary[(summary["arm"] == "gradient") & (summary["level"] == level)].iloc[0]
        diffs[str(level)] = [100 * row["diff"], 100 * row["diff_low"], 100 * row["diff_high"]]
    return {"preset": name, "dataset": dataset, "train_size": train_size, "epochs": epochs,
            "seeds": seeds, "wall_s": wall, "cpu_s": cpu, "load_avg_1m": os.getloadavg()[0],
            "diff_points": diffs, "per_seed": rows}


def report(outcomes: list[dict]) -> list[list]:
    rows = []
    for out in outcomes:
        d = out["diff_points"]
        rows.append([out["preset"], out["seeds"], out["wall_s"] / 60, out["cpu_s"] / 60 / 2,
                     out["load_avg_1m"],
                     *(f"{d[k][0]:+.1f} [{d[k][1]:+.1f}, {d[k][2]:+.1f}]" for k in ("0.0", "0.1", "0.2"))])
    _common.print_table(["preset", "seeds", "wall min", "cpu min/2", "load", "diff s=0",
                         "diff s=0.1", "diff s=0.2"], rows)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(PRESETS),
                        help=f"comma-separated, among {list(PRESETS)}")
    args = parser.parse_args(argv)
    _common.use_backend("tensorflow")
    outcomes = []
    for name in args.presets.split(","):
        outcomes.append(run_preset(name))
        report(outcomes)  # as it goes: a long calibration shows each preset once done
    _common.conclude("quick_compare", args, outcomes, report)


if __name__ == "__main__":
    main()
