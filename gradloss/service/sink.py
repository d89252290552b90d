"""The store as a pipeline sink: every result of a run the worker trains or evaluates goes to the
run store, through a `Reporter` (in order, from a thread; a store outage delays the writes, never
the training)."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pandas as pd

from gradloss.core.config import SweepConfig
from gradloss.core.progress import Progress
from gradloss.core.records import MetricRow
from gradloss.pipeline.sinks import Outcome, Sink
from gradloss.service.checkpoints import pack
from gradloss.service.reporter import Reporter
from gradloss.service.store import Store
from gradloss.service.store.artifacts import CHECKPOINT, MODEL

log = logging.getLogger(__name__)

SWEEP_REPORT_EVERY_S = 0.5  # at most this often a sweep's or evaluation's progress is stored


class StoreSink(Sink):
    """Plan i's results go to run run_ids[i] of `store`.

    evaluating_only: the runs are already done (a queued evaluation): their own status and
    progress stay as they are; only their evaluation plans move."""

    def __init__(self, store: Store, reporter: Reporter, run_ids: list[str], *,
                 evaluating_only: bool = False):
        self._store, self._reporter, self._ids = store, reporter, list(run_ids)
        self._evaluating_only = evaluating_only
        self._last_report: dict[str, float] = {}

    def _throttled(self, key: str, done: bool) -> bool:
        """True when a report under `key` is too soon after the last (a final one never is)."""
        now = time.monotonic()
        if not done and now - self._last_report.get(key, 0.0) < SWEEP_REPORT_EVERY_S:
            return True
        self._last_report[key] = now
        return False

    def started(self, i: int, device: str) -> None:
        self._reporter.send(self._store.runs.set_device, self._ids[i], device)

    def progress(self, i: int, progress: Progress) -> None:
        run_id = self._ids[i]
        if progress.trained and self._throttled(
                f"sweep {run_id}", progress.sweep_done == progress.sweep_total):
            return  # training's own reports are paced by the loop; a sweep's are many
        self._reporter.send(self._store.runs.update_progress, run_id, progress,
                            latest=f"progress {run_id}")

    def metrics(self, i: int, rows: list[MetricRow]) -> None:
        self._reporter.send(self._store.results.add_metrics, self._ids[i], list(rows))

    def checkpoint(self, i: int, folder: Path) -> None:
        run_id = self._ids[i]
        self._reporter.send(self._store.artifacts.put, run_id, CHECKPOINT, pack(folder),
                            latest=f"checkpoint {run_id}")

    def should_cancel(self, i: int) -> bool:
        return self._reporter.should_cancel(self._ids[i])

    def sweep(self, i: int, table: pd.DataFrame, config: SweepConfig) -> None:
        self._reporter.send(self._store.results.save_robustness, self._ids[i], table,
                            config.draws, config.seed)

    def examples(self, i: int, table: pd.DataFrame) -> None:
        self._reporter.send(self._store.results.save_examples, self._ids[i], table)

    def model(self, i: int, path: Path) -> None:
        self._reporter.send(self._store.artifacts.put, self._ids[i], MODEL,
                            Path(path).read_bytes())

    def evaluation_started(self, i: int) -> None:
        self._reporter.send(self._store.evaluations.set_status, self._ids[i], "running", None,
                            Progress())

    def evaluation_progress(self, i: int, progress: Progress) -> None:
        run_id = self._ids[i]
        if self._throttled(f"evaluation {run_id}", progress.sweep_done == progress.sweep_total):
            return
        self._reporter.send(self._store.evaluations.update_progress, run_id, progress,
                            latest=f"evaluation progress {run_id}")
        if not self._evaluating_only:  # the run's bar says what it evaluates
            self._reporter.send(self._store.runs.update_progress, run_id, progress,
                                latest=f"progress {run_id}")

    def evaluation_rows(self, i: int, rows: pd.DataFrame) -> None:
        self._reporter.send(self._store.evaluations.save_rows, self._ids[i], rows)

    def masking_flags(self, i: int, flags: list[str] | None) -> None:
        self._reporter.send(self._store.evaluations.save_masking_flags, self._ids[i], flags)

    def evaluation_examples(self, i: int, table: pd.DataFrame) -> None:
        self._reporter.send(self._store.evaluations.save_examples, self._ids[i], table)

    def evaluation_finished(self, i: int, status: str, error: str | None) -> None:
        self._reporter.send(self._store.evaluations.set_status, self._ids[i], status, error)

    def finished(self, i: int, outcome: Outcome) -> None:
        if not self._evaluating_only:
            finish(self._store, self._reporter, self._ids[i], outcome.status,
                   error=outcome.error, model_path=outcome.model_path)


def finish(store: Store, reporter: Reporter, run_id: str, status: str, **fields) -> None:
    """Finish the run as this worker's (GRADLOSS_WORKER_ID), after every earlier report; a run
    another worker has taken over meanwhile is left to it."""
    worker = os.environ.get("GRADLOSS_WORKER_ID")

    def final() -> None:
        if not store.runs.finish(run_id, status, worker_id=worker, **fields):
            log.warning("run %s was already finished or taken over by another worker; not "
                        "marked %s", run_id, status)

    reporter.send(final)
    reporter.flush()
