"""Where a pipeline's results go: the `Sink` interface and the sinks that need no service.

The pipeline (`gradloss.pipeline.run`) calls a sink at every step of every plan, with the plan's
index first. A sink keeps what it needs and ignores the rest; every method here does nothing,
so a sink overrides only its own. The store's sink lives with the store's writer
(`gradloss.service.sink`); the command line uses `FolderSink` and `TerminalSink`, benchmarks
read the returned `Outcome`s. `Fanout` sends to several.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gradloss.core.config import SweepConfig
from gradloss.core.plan import RunPlan
from gradloss.core.progress import Progress
from gradloss.core.records import MetricRow
from gradloss.training.record import EpochMetrics


@dataclass
class Outcome:
    """What became of one plan: its status and every result the pipeline measured."""

    plan: RunPlan | None                     # None: a saved model measured (pipeline.measure)
    status: str                              # "done", "failed" or "cancelled"
    error: str | None = None                 # why it failed
    epochs_done: int = 0
    seconds: float = 0.0                     # training's wall time (this call)
    device: str = ""
    final: EpochMetrics | None = None        # the last epoch's metrics
    model_path: Path | None = None
    sweep: pd.DataFrame | None = None        # sigma, accuracy, accuracy_std
    examples: pd.DataFrame | None = None     # the grid images' predictions under noise
    evaluation: pd.DataFrame | None = None   # suite.EVALUATION_COLUMNS
    evaluation_status: str | None = None     # None: none planned; "done" or "failed"
    evaluation_error: str | None = None
    masking_flags: list[str] | None = None   # None: no attack ran; []: nothing flagged
    scaling: str | None = None               # how the dataset's pixels were brought to [0, 1]


class Sink:
    """Receives a pipeline's results as they are measured; every method is optional."""

    def started(self, i: int, device: str) -> None:
        """Plan i's training process runs on `device`."""

    def progress(self, i: int, progress: Progress) -> None:
        """How far plan i is: training, then its sweep (`sweep_done`, `sweep_total`)."""

    def metrics(self, i: int, rows: list[MetricRow]) -> None:
        """Plan i's new metric rows (per step, and each epoch's summary)."""

    def checkpoint(self, i: int, folder: Path) -> None:
        """Plan i's checkpoint of its last epoch is in `folder`."""

    def should_cancel(self, i: int) -> bool:
        """True to stop plan i at its next step (or its evaluation after a perturbation)."""
        return False

    def sweep(self, i: int, table: pd.DataFrame, config: SweepConfig) -> None:
        """Plan i's noise sweep: columns sigma, accuracy, accuracy_std."""

    def examples(self, i: int, table: pd.DataFrame) -> None:
        """Plan i's predictions on the grid images under noise."""

    def model(self, i: int, path: Path) -> None:
        """Plan i's trained model is saved at `path`."""

    def evaluation_started(self, i: int) -> None:
        """Plan i's evaluation (corruptions and attacks) starts."""

    def evaluation_progress(self, i: int, progress: Progress) -> None:
        """How far plan i's evaluation is (`phase`, `sweep_done` of `sweep_total`)."""

    def evaluation_rows(self, i: int, rows: pd.DataFrame) -> None:
        """One perturbation's rows of plan i's evaluation, as soon as measured."""

    def masking_flags(self, i: int, flags: list[str] | None) -> None:
        """The gradient-masking check's sentences ([]: nothing flagged; None: no attack ran)."""

    def evaluation_examples(self, i: int, table: pd.DataFrame) -> None:
        """Plan i's predictions on the grid images under every perturbation."""

    def evaluation_finished(self, i: int, status: str, error: str | None) -> None:
        """Plan i's evaluation ended "done" or "failed" (error says why; "cancelled" too)."""

    def finished(self, i: int, outcome: Outcome) -> None:
        """Plan i ended: done (everything above was sent), failed or cancelled."""


class Fanout(Sink):
    """Every call goes to each sink in turn; cancel when any of them says so."""

    def __init__(self, *sinks: Sink):
        self.sinks = sinks

    def should_cancel(self, i: int) -> bool:
        return any(sink.should_cancel(i) for sink in self.sinks)


def _forward(name: str):
    def method(self, *args) -> None:
        for sink in self.sinks:
            getattr(sink, name)(*args)
    method.__name__ = name
    return method


for _name in ("started", "progress", "metrics", "checkpoint", "sweep", "examples", "model",
              "evaluation_started", "evaluation_progress", "evaluation_rows", "masking_flags", "evaluation_examples",
              "evaluation_finished", "finished"):
    setattr(Fanout, _name, _forward(_name))


class TerminalSink(Sink):
    """Progress bars on the terminal (tqdm) and a line per finished step, for the CLI."""

    def __init__(self, plans: list[RunPlan], labels: list[str] | None = None):
        self._plans = plans
        self._labels = labels or [_label(p) for p in plans]
        self._bars: dict[int, object] = {}

    def progress(self, i: int, progress: Progress) -> None:
        if progress.trained:
            return
        bar = self._bars.get(i)
        if bar is None:
            from tqdm import tqdm
            bar = self._bars[i] = tqdm(total=progress.total_steps, desc=self._labels[i],
                                       unit="step")
        bar.update(progress.step - bar.n)
        loss = "-" if progress.loss is None else f"{progress.loss:.4g}"
        bar.set_postfix(epoch=f"{progress.epoch}/{progress.epochs}", loss=loss)

    def _close(self, i: int) -> None:
        bar = self._bars.pop(i, None)
        if bar is not None:
            bar.close()

    def sweep(self, i: int, table: pd.DataFrame, config: SweepConfig) -> None:
        self._close(i)
        clean = table.loc[table.sigma == 0, "accuracy"]
        print(f"{self._labels[i]}: noise sweep done"
              + (f", clean accuracy {float(clean.iloc[0]):.4f}" if len(clean) else ""), flush=True)

    def evaluation_progress(self, i: int, progress: Progress) -> None:
        if progress.sweep_total and progress.sweep_done == progress.sweep_total:
            print(f"{self._labels[i]}: {progress.phase}: done", flush=True)

    def masking_flags(self, i: int, flags: list[str] | None) -> None:
        for flag in flags or []:
            print(f"{self._labels[i]}: possible gradient masking: {flag}", flush=True)

    def finished(self, i: int, outcome: Outcome) -> None:
        self._close(i)
        if outcome.status != "done":
            print(f"{self._labels[i]}: {outcome.status}"
                  + (f": {outcome.error}" if outcome.error else ""), flush=True)


class FolderSink(Sink):
    """Each plan's results as files in its folder: plan.json, metrics.csv, sweep.csv,
    evaluation.csv and outcome.json (what `gradloss train` and experiments write)."""

    def __init__(self, folders: list[Path]):
        self._folders = [Path(f) for f in folders]
        self._metrics: dict[int, list[MetricRow]] = {}

    def metrics(self, i: int, rows: list[MetricRow]) -> None:
        self._metrics.setdefault(i, []).extend(rows)

    def sweep(self, i: int, table: pd.DataFrame, config: SweepConfig) -> None:
        table.to_csv(self._folders[i] / "sweep.csv", index=False)

    def evaluation_rows(self, i: int, rows: pd.DataFrame) -> None:
        path = self._folders[i] / "evaluation.csv"
        rows.to_csv(path, index=False, mode="a", header=not path.exists())

    def finished(self, i: int, outcome: Outcome) -> None:
        folder = self._folders[i]
        if outcome.plan is not None:
            (folder / "plan.json").write_text(json.dumps(outcome.plan.to_dict(), indent=2))
        if self._metrics.get(i):
            pd.DataFrame(self._metrics.pop(i)).to_csv(folder / "metrics.csv", index=False)
        (folder / "outcome.json").write_text(json.dumps(outcome_summary(outcome), indent=2))


def outcome_summary(outcome: Outcome) -> dict:
    """The JSON-ready summary of an outcome: status, training's figures, the clean accuracy
    and the masking flags (never a NaN or infinity: JSON has none)."""
    final = {k: v for k, v in (outcome.final.to_dict() if outcome.final else {}).items()
             if math.isfinite(v)}
    return {"status": outcome.status, "error": outcome.error, "device": outcome.device,
            "epochs_done": outcome.epochs_done, "seconds": round(outcome.seconds, 3),
            "model": None if outcome.model_path is None else str(outcome.model_path), **final,
            **({} if outcome.plan is None else {
                "dataset": outcome.plan.train.dataset_label,
                "architecture": outcome.plan.train.architecture_label}),
            "pixel_scaling": outcome.scaling,
            "evaluation": outcome.evaluation_status, "masking_flags": outcome.masking_flags}


def _label(plan: RunPlan) -> str:
    c = plan.train
    return f"{c.objective} seed {c.seed} ({c.epochs} epochs, batch {c.batch_size})"
