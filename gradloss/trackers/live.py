"""A worker's runs to MLflow while they train (opt-in: GRADLOSS_MLFLOW_URI).

The worker's runner composes `LiveSink` with the store's sink (`pipeline.sinks.Fanout`). The sink
only queues: a Reporter's thread (`service.reporter`, the queue the store's writes go through)
creates the MLflow run, logs its params, metrics as they come, sweep and evaluation points, model
and tables, in order. While the tracker cannot be reached, the writes wait and are retried with
back-off, so a tracker that is down never fails or slows a training; once back, it gets every
point. At the end the runner waits at most DRAIN_S for a tracker still down, then says how to
send the rest (`gradloss export mlflow` adds only what is missing), so the worker never hangs.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from gradloss.core.config import SweepConfig
from gradloss.core.errors import SettingsError
from gradloss.core.plan import RunPlan
from gradloss.core.records import MetricRow, StoredRun
from gradloss.pipeline.sinks import Outcome, Sink
from gradloss.service.reporter import Reporter
from gradloss.service.settings import tracking_uri
from gradloss.trackers import gather, mapping
from gradloss.trackers.mlflow_runs import EXPERIMENT, MLflowRuns, fail_fast

log = logging.getLogger(__name__)

DRAIN_S = 120.0      # at the end of a runner, the longest wait for a tracker that is down
MAX_DELAY_S = 10.0   # the longest pause between two tries to reach it


def from_settings() -> "LiveTracker | None":
    """The live tracker GRADLOSS_MLFLOW_URI asks for, or None (unset, or unusable: then the
    runs train without it, and the log says why; the worker refused a bad value at start)."""
    try:
        uri = tracking_uri()
    except SettingsError as exc:
        log.error("%s; training without live logging", exc)
        return None
    if uri is None:
        return None
    fail_fast()
    return LiveTracker(uri)


class LiveTracker:
    """Sends runs to MLflow at `uri` from a background queue; `sink` gives a training's sink."""

    def __init__(self, uri: str, experiment: str = EXPERIMENT, max_delay_s: float = MAX_DELAY_S):
        self.runs = MLflowRuns(uri, experiment)
        self._reporter = Reporter(what=self.runs.where, max_delay_s=max_delay_s)
        self._names: list[str] = []  # the runs sent, for the message when some never arrive
        self._ensured: dict[str, str] = {}  # gradloss id -> MLflow run id, params all logged

    def sink(self, runs: list[StoredRun], plans: list[RunPlan]) -> "LiveSink":
        """A sink sending plan i's results as stored run runs[i]."""
        self._names += [r.run_id for r in runs]
        return LiveSink(self, runs, plans)

    def send(self, fn, *args) -> None:
        self._reporter.send(fn, *args)

    def settle(self, store, run_ids: list[str]) -> None:
        """Queue the runs' final status as the store has it (a run that failed outside the
        pipeline too), then each of their experiments' parent run with its summary over the
        seeds finished so far. Call once the store's own writes are in."""
        runs = [store.runs.get(r) for r in run_ids]
        for run in runs:
            self.send(self._settle, run)
        for experiment_id in dict.fromkeys(r.experiment_id for r in runs if r.experiment_id):
            self.send(self._summarize, store, experiment_id)

    def _settle(self, run: StoredRun) -> None:
        run_id = self.runs.find(run.run_id)
        if run_id is not None:
            self.runs.set_tags(run_id, mapping.run_tags(run))
            self.runs.set_status(run_id, run.status, run.finished_at)

    def _summarize(self, store, experiment_id: str) -> None:
        self.runs.export_experiment(gather.experiment_results(store, experiment_id))

    def close(self, timeout: float = DRAIN_S) -> bool:
        """Wait (at most `timeout` s) until everything queued reached the tracker; True if so."""
        if self._reporter.flush(timeout):
            self._reporter.close()
            return True
        log.warning("%s did not take %d report(s) within %.0f s; they are dropped. "
                    "`gradloss export mlflow --runs %s` sends what is missing.", self.runs.where,
                    self._reporter.pending, timeout, " ".join(dict.fromkeys(self._names)))
        return False

    # --- what the queue's thread does -----------------------------------------------------

    def mlflow_id(self, run: StoredRun, plan: RunPlan) -> str:
        """Run `run`'s MLflow run: found (a resumed run) or created, nested under its
        experiment's parent run, with the params it lacks logged. Until that has succeeded once
        in this process it is done again, so a tracker lost between creating the run and
        logging its params (the write is retried) still gets them."""
        if run.run_id in self._ensured:
            return self._ensured[run.run_id]
        parent = None
        if run.experiment_id and self.runs.find(run.run_id) is None:
            parent = self.runs.parent(run.experiment_id)
        run_id, _ = self.runs.ensure(run.run_id, mapping.run_tags(run),
                                     mapping.run_params(run, plan.evaluation),
                                     run.started_at or time.time(), parent)
        self._ensured[run.run_id] = run_id
        return run_id

    def start(self, run: StoredRun, plan: RunPlan, device: str) -> None:
        run_id = self.mlflow_id(run, plan)
        self.runs.set_tags(run_id, {"gradloss.device": device, "gradloss.status": "running"})
        self.runs.set_status(run_id, "running")

    def points(self, run: StoredRun, plan: RunPlan, points: list[mapping.Point],
               stamp: float) -> None:
        self.runs.log(self.mlflow_id(run, plan), points, stamp, dedupe=False)

    def tags(self, run: StoredRun, plan: RunPlan, tags: dict) -> None:
        self.runs.set_tags(self.mlflow_id(run, plan), tags)

    def files(self, run: StoredRun, plan: RunPlan, files: dict, folder: str) -> None:
        self.runs.put_files(self.mlflow_id(run, plan), files, folder)

    def finish(self, run: StoredRun, plan: RunPlan, status: str, error: str | None,
               end: float) -> None:
        run_id = self.mlflow_id(run, plan)
        self.runs.set_tags(run_id, {"gradloss.status": status,
                                    **({"gradloss.error": error} if error else {})})
        self.runs.set_status(run_id, status, end)


class LiveSink(Sink):
    """Plan i's results go to the MLflow run of runs[i], through the tracker's queue: every
    method only queues (and copies what it must keep), so training never waits on MLflow."""

    def __init__(self, tracker: LiveTracker, runs: list[StoredRun], plans: list[RunPlan]):
        self._tracker, self._runs, self._plans = tracker, list(runs), list(plans)
        self._tables: dict[int, dict[str, list[pd.DataFrame]]] = {}

    def _send(self, method, i: int, *args) -> None:
        self._tracker.send(method, self._runs[i], self._plans[i], *args)

    def _keep(self, i: int, name: str, frame: pd.DataFrame) -> None:
        self._tables.setdefault(i, {}).setdefault(name, []).append(frame)

    def started(self, i: int, device: str) -> None:
        self._send(self._tracker.start, i, device)

    def metrics(self, i: int, rows: list[MetricRow]) -> None:
        frame = pd.DataFrame(list(rows), columns=list(MetricRow._fields))
        self._keep(i, "metrics.csv", frame)
        self._send(self._tracker.points, i, mapping.training_points(frame), time.time())

    def sweep(self, i: int, table: pd.DataFrame, config: SweepConfig) -> None:
        self._keep(i, "sweep.csv", table)
        self._send(self._tracker.points, i, mapping.sweep_points(table), time.time())

    def model(self, i: int, path: Path) -> None:
        self._send(self._tracker.files, i, {"model.keras": Path(path).read_bytes()}, "model")

    def evaluation_started(self, i: int) -> None:
        self._send(self._tracker.tags, i, {"gradloss.evaluation": "running"})

    def evaluation_rows(self, i: int, rows: pd.DataFrame) -> None:
        self._keep(i, "evaluation.csv", rows)
        self._send(self._tracker.points, i, mapping.evaluation_points(rows), time.time())

    def masking_flags(self, i: int, flags: list[str] | None) -> None:
        if flags is not None:
            self._send(self._tracker.tags, i, {"gradloss.masking_flags": "; ".join(flags) or "none"})

    def evaluation_finished(self, i: int, status: str, error: str | None) -> None:
        self._send(self._tracker.tags, i, {"gradloss.evaluation": status})

    def finished(self, i: int, outcome: Outcome) -> None:
        files = {name: pd.concat(frames, ignore_index=True).to_csv(index=False)
                 for name, frames in self._tables.pop(i, {}).items()}
        if files:
            self._send(self._tracker.files, i, files, "tables")
        self._send(self._tracker.finish, i, outcome.status, outcome.error, time.time())
