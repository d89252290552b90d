"""One run's account while it trains: its metric rows, step count, progress and cancel polls,
and what training hands back (`TrainResult`, with the last epoch's `EpochMetrics`)."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from gradloss.core.config import TrainConfig
from gradloss.core.errors import TrainingDiverged
from gradloss.core.progress import Progress
from gradloss.core.records import MetricRow

REPORT_EVERY_S = 1.0  # progress, metrics flush and cancel poll at most this often


@dataclass(frozen=True)
class EpochMetrics:
    """What every run records after each epoch (also the MetricRow names of these values)."""

    epoch_loss: float        # mean training loss over the epoch's steps
    train_accuracy: float    # running accuracy over the epoch's batches, as Keras fit() reports
    test_accuracy: float
    step_ms: float           # mean time of a step this epoch (a call's first chunk, which
                             # compiles, left out unless it is the whole epoch)
    input_grad_norm: float   # mean ||dCE/dx||_2 over the first test images (training.INPUT_GRAD_IMAGES)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "EpochMetrics | None":
        """From a checkpoint's state; None for one written before any epoch."""
        if not data:
            return None
        return cls(**{f.name: float(data[f.name]) for f in fields(cls)})


@dataclass
class TrainResult:
    status: str                      # "done", "cancelled" or "failed" (diverged)
    model_path: Path | None          # run_dir/model.keras once done
    epochs_done: int
    seconds: float                   # wall time of this call
    device: str                      # "CPU" or the GPU's name
    final: EpochMetrics | None = None  # the last epoch's metrics (None before the first)
    error: str | None = None         # why it failed


class RunRecord:
    """One run's account while it trains: metric rows, step count, progress, cancel polls."""

    def __init__(self, config: TrainConfig, steps_per_epoch: int, start_epoch: int, t_start: float,
                 on_progress=None, on_metrics=None, should_cancel=None):
        self.config, self.steps_per_epoch, self.t_start = config, steps_per_epoch, t_start
        self.total = steps_per_epoch * config.epochs
        self.step = start_epoch * steps_per_epoch  # global, 1-based once a step ran
        self._on_progress, self._on_metrics, self._should_cancel = (
            on_progress, on_metrics, should_cancel)
        self.rows: list[MetricRow] = []
        self.steps_this_call = 0
        self.last_report = time.perf_counter()
        self._epoch_losses: list[float] = []
        self._epoch_correct = 0
        self._timed_s, self._timed_steps = 0.0, 0

    def add(self, epoch: int, losses: np.ndarray, correct: np.ndarray, seconds: float) -> None:
        """Record k steps that took `seconds`; raise TrainingDiverged on a non-finite loss."""
        k = len(losses)
        if self.step % self.steps_per_epoch == 0:  # the epoch's first steps: start its account
            self._epoch_losses, self._epoch_correct = [], 0
            self._timed_s, self._timed_steps = 0.0, 0
        # step_ms skips the first chunk of a call (it compiles), unless it is the whole epoch
        if self.steps_this_call > 0 or (self.step + k) % self.steps_per_epoch == 0:
            self._timed_s, self._timed_steps = self._timed_s + seconds, self._timed_steps + k
        first_step = self.step + 1
        for loss in losses:
            self.step += 1
            self.rows.append(MetricRow(self.step, epoch, "loss", float(loss)))
        self.steps_this_call += k
        self._epoch_losses.extend(losses.tolist())
        self._epoch_correct += int(correct.sum())
        bad = ~np.isfinite(losses)
        if bad.any():
            self.rows = [r for r in self.rows if math.isfinite(r.value)]
            self.report(epoch, None)
            raise TrainingDiverged(
                f"The loss became {losses[bad][0]} at step {first_step + int(np.argmax(bad))} "
                f"(epoch {epoch}); try a smaller learning rate.")

    def due(self) -> bool:
        return time.perf_counter() - self.last_report >= REPORT_EVERY_S

    def report(self, epoch: int, loss: float | None) -> bool:
        """Flush metrics and progress; return True when cancellation was asked for."""
        if self._on_metrics and self.rows:
            self._on_metrics(self.rows)
        self.rows = []
        elapsed = time.perf_counter() - self.t_start
        eta = elapsed / max(self.steps_this_call, 1) * (self.total - self.step)
        if self._on_progress:
            self._on_progress(Progress(self.step / self.total, self.step, self.total, epoch,
                                       self.config.epochs, eta, loss))
        self.last_report = time.perf_counter()
        return bool(self._should_cancel and self._should_cancel())

    @property
    def last_loss(self) -> float:
        return float(self._epoch_losses[-1])

    def end_epoch(self, epoch: int, test_accuracy: float, input_grad_norm: float) -> EpochMetrics:
        """The epoch's summary metrics, handed over with its step rows; returns them.

        A non-finite summary (the weights diverged although every loss was finite) raises
        TrainingDiverged: it is never recorded as a measurement."""
        final = EpochMetrics(
            epoch_loss=float(np.mean(self._epoch_losses)),
            train_accuracy=self._epoch_correct / (self.steps_per_epoch * self.config.batch_size),
            test_accuracy=float(test_accuracy), step_ms=1000 * self._timed_s / self._timed_steps,
            input_grad_norm=float(input_grad_norm))
        bad = {name: value for name, value in final.to_dict().items() if not math.isfinite(value)}
        if bad:
            self.report(epoch, None)
            raise TrainingDiverged(
                f"The model diverged in epoch {epoch}: {', '.join(f'{k} = {v}' for k, v in bad.items())}"
                "; try a smaller learning rate.")
        self.rows.extend(MetricRow(self.step, epoch, name, value)
                         for name, value in final.to_dict().items())
        if self._on_metrics:  # before the checkpoint: a run resumed from it never re-emits these
            self._on_metrics(self.rows)  # (a crash in between re-runs the epoch; rows upsert)
            self.rows = []
        return final
