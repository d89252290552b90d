"""Shared part of penalty_sweep.py and objectives_table.py: one config through the pipeline, a JSON line.

Each finished run appends one JSON object to the output file at once, so a long benchmark that
is stopped still leaves every run it finished; `summarise` turns those lines into the
per-setting table (mean over seeds, and every seed's value).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import _common  # puts the repository on sys.path

_common.use_backend("tensorflow")  # before keras is imported: the TensorFlow engine
from gradloss.core.config import SweepConfig, TrainConfig  # noqa: E402

SIGMAS = (0.0, 0.1, 0.2)
RUNS = Path("runs/bench") / time.strftime("%Y%m%d-%H%M%S")  # a fresh folder: never resume old runs


def train_and_sweep(config: TrainConfig, dataset, run_dir: Path, draws: int = 3) -> dict:
    """Train `config` from scratch in run_dir, then test accuracy at SIGMAS (the pipeline);
    one result row."""
    from gradloss.core.plan import RunPlan

    plan = RunPlan(config, SweepConfig(sigmas=SIGMAS, draws=draws, seed=0))
    [outcome], _ = _common.run_plans([plan], [run_dir], dataset=dataset)
    table = outcome.sweep
    return {"config": config.to_dict(), "train_s": round(outcome.seconds, 1),
            "device": outcome.device, "input_grad_norm": outcome.final.input_grad_norm,
            **{f"acc_{s:g}": float(a) for s, a in zip(table.sigma, table.accuracy)}}


def append(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def summarise(rows: list[dict], key) -> list[list]:
    """One line per key(row): n seeds, mean of each figure, and the per-seed accuracies at 0.2."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    out = []
    for k, group in groups.items():
        mean = {f: sum(r[f] for r in group) / len(group)
                for f in ("acc_0", "acc_0.1", "acc_0.2", "train_s", "input_grad_norm")}
        out.append([*k, len(group), f"{mean['acc_0']:.4f}", f"{mean['acc_0.1']:.4f}",
                    f"{mean['acc_0.2']:.4f}", " / ".join(f"{r['acc_0.2']:.4f}" for r in group),
                    f"{mean['input_grad_norm']:.3f}", f"{mean['train_s']:.0f}"])
    return out


def markdown(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
