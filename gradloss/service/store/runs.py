"""The runs table: a run's life from queued to done, failed or cancelled.

Each verb is one short transaction; a verb that changes a run only if it is still in some state is
one conditional UPDATE, so two workers on two machines never both act on the same run. Rows come
back as `StoredRun` records; a row whose config cannot be read comes back with `unreadable` set
(and no config), so one damaged row never takes a listing down.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable

import sqlalchemy as sa

from gradloss.core.config import SweepConfig, TrainConfig
from gradloss.core.errors import ExperimentNotFound, InvalidParameterError
from gradloss.core.plan import RunPlan
from gradloss.core.progress import Progress
from gradloss.core.records import ACTIVE, FINISHED, StoredRun
from gradloss.service.store.database import Database, _ids
from gradloss.service.settings import redact
from gradloss.service.store.schema import evaluation_plans, experiments, runs


def new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]  # sortable, readable, unique


def _json(text, what: str) -> tuple[dict | None, str | None]:
    """(the JSON object in `text`, None), or (None, why it is not one)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        return None, f"its stored {what} is not a JSON object ({exc})"
    if not isinstance(value, dict):
        return None, f"its stored {what} is not a JSON object (it is {str(text)[:40]!r})"
    return value, None


def _parsed(text, kind, what: str):
    """(kind.from_dict of the JSON in `text`, None), or (None, why it cannot be read)."""
    data, why = _json(text, what)
    if why is not None:
        return None, why
    try:
        return kind.from_dict(data), None
    except (InvalidParameterError, TypeError, ValueError) as exc:
        return None, f"its stored {what} is not valid: {exc}"


def to_run(row: sa.Row) -> StoredRun:
    """A StoredRun from a row; a config or sweep that cannot be read makes only this run
    unreadable, with the reason. A damaged progress is read as no progress: it says how far the
    run got, not what to train, so the run can still be resumed."""
    m = row._mapping
    config, bad_config = _parsed(m["config"], TrainConfig, "config")
    sweep, bad_sweep = (SweepConfig(), None) if m["sweep"] is None else \
        _parsed(m["sweep"], SweepConfig, "sweep")
    progress, _ = _json(m["progress"], "progress")
    return StoredRun(
        run_id=m["run_id"], created_at=m["created_at"], status=m["status"],
        objective=m["objective"], dataset=m["dataset"], engine=m["engine"], config=config,
        sweep=sweep or SweepConfig(), data_dir=m["data_dir"], started_at=m["started_at"],
        finished_at=m["finished_at"], error=m["error"], worker_id=m["worker_id"],
        device=m["device"], heartbeat_at=m["heartbeat_at"], progress=Progress.from_dict(progress),
        model_path=m["model_path"], cancel_requested=bool(m["cancel_requested"]),
        attempts=int(m["attempts"] or 0), task_id=m["task_id"], host=m["host"], gpu=m["gpu"],
        experiment_id=m["experiment_id"], arm=m["arm"], unreadable=bad_config or bad_sweep)


class RunRepository:
    """Verbs on the runs table of one store."""

    def __init__(self, db: Database):
        self._db = db

    def create(self, plan: RunPlan, task_id: str | None = None,
               experiment_id: str | None = None, arm: str | None = None) -> str:
        """Record a queued run of `plan`, with its evaluation plan if it has one, in one
        transaction. The plan's data folder is stored with it, so whichever worker trains it
        reads the same files."""
        if not isinstance(plan, RunPlan):
            raise TypeError(f"The 'plan' parameter of RunRepository.create must be a RunPlan. "
                            f"Got {type(plan).__name__} instead.")
        config, run_id = plan.train, new_id()
        with self._db.connect(write=True) as conn:
            if experiment_id is not None and conn.execute(
                    sa.select(experiments.c.experiment_id)
                    .where(experiments.c.experiment_id == experiment_id)).first() is None:
                raise ExperimentNotFound(f"No experiment with id {experiment_id!r} in the run "
                                         f"store {redact(self._db.url)}.")
            conn.execute(runs.insert().values(
                run_id=run_id, created_at=time.time(), config=json.dumps(config.to_dict()),
                sweep=json.dumps(plan.sweep.to_dict()), objective=config.objective,
                dataset=config.dataset_label, engine=config.engine, status="queued",
                task_id=task_id,
                data_dir=plan.data_dir, experiment_id=experiment_id, arm=arm))
            if plan.evaluation is not None:
                conn.execute(evaluation_plans.insert().values(
                    run_id=run_id, config=json.dumps(plan.evaluation.to_dict()),
                    status="queued", progress="{}", updated_at=time.time()))
        return run_id

    def get(self, run_id: str) -> StoredRun:
        """The run `run_id`; RunNotFound names the id and the store."""
        with self._db.connect() as conn:
            row = conn.execute(runs.select().where(runs.c.run_id == run_id)).first()
            if row is None:
                self._db.require_run(conn, run_id)
            return to_run(row)

    def list(self, status: str | Iterable[str] | None = None,
             limit: int | None = None) -> list[StoredRun]:
        """Runs newest first, optionally only those in `status` (one status or several)."""
        query = runs.select().order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
        if status is not None:
            query = query.where(runs.c.status.in_(_ids(status)))
        if limit is not None:
            query = query.limit(int(limit))
        with self._db.connect() as conn:
            return [to_run(row) for row in conn.execute(query)]

    def of_experiment(self, experiment_id: str) -> list[StoredRun]:
        """An experiment's runs in the order they were queued (seed-major); run ids start with
        their creation time and are unique, so they break created_at ties."""
        with self._db.connect() as conn:
            return [to_run(row) for row in conn.execute(
                runs.select().where(runs.c.experiment_id == experiment_id)
                .order_by(runs.c.created_at, runs.c.run_id))]

    def start(self, run_id: str, worker_id: str, *, host: str | None = None,
              gpu: int | None = None) -> bool:
        """queued -> running on `worker_id` (at `host`, GPU `gpu`); False if no longer queued."""
        now = time.time()
        return self._db.update(
            runs, run_id, runs.c.status == "queued",
            status="running", started_at=sa.func.coalesce(runs.c.started_at, now), heartbeat_at=now,
            worker_id=worker_id, attempts=runs.c.attempts + 1, error=None, host=host, gpu=gpu)

    def set_device(self, run_id: str, device: str) -> None:
        """Record what the run trains on (the training process names it once it has started)."""
        self._db.update(runs, run_id, device=device)

    def heartbeat(self, run_id: str, worker_id: str | None = None) -> bool:
        """Say the run is being worked on; with worker_id, only while it is still that worker's."""
        held = () if worker_id is None else (runs.c.worker_id == worker_id,
                                             runs.c.status == "running")
        return self._db.update(runs, run_id, *held, heartbeat_at=time.time())

    def update_progress(self, run_id: str, progress: Progress) -> None:
        """Store the latest Progress; also a heartbeat."""
        self._db.update(runs, run_id, progress=json.dumps(progress.to_dict()),
                        heartbeat_at=time.time())

    def finish(self, run_id: str, status: str, error: str | None = None,
               model_path: str | os.PathLike | None = None, *,
               stale_before: float | None = None, worker_id: str | None = None) -> bool:
        """queued/running -> status; False if it had already finished (or, with stale_before,
        if its heartbeat is not older than that: someone is still working on it; or, with
        worker_id, if another worker has taken it over meanwhile)."""
        if status not in FINISHED:
            raise ValueError(f"The 'status' parameter of finish must be a str among {FINISHED}. "
                             f"Got {status!r} instead.")
        conditions = [runs.c.status.in_(ACTIVE)]
        if stale_before is not None:
            conditions.append(runs.c.heartbeat_at < stale_before)
        if worker_id is not None:
            conditions.append(runs.c.worker_id == worker_id)
        model = runs.c.model_path if model_path is None else str(model_path)
        return self._db.update(runs, run_id, *conditions, status=status, error=error,
                               model_path=model, finished_at=time.time())

    def requeue(self, run_id: str, task_id: str, *, stale_before: float,
                count_attempt: bool = True) -> bool:
        """running -> queued under a new task id, if its heartbeat is older than stale_before.

        The condition makes this safe when several workers find the same lost run.
        count_attempt=False: the worker stopped on purpose, so that start does not count."""
        return self._db.update(
            runs, run_id, runs.c.status == "running", runs.c.heartbeat_at < stale_before,
            status="queued", task_id=task_id,
            attempts=runs.c.attempts - (0 if count_attempt else 1))

    def request_cancel(self, run_id: str) -> str:
        """Cancel a queued run now, or ask a running one to stop; returns the status afterwards."""
        with self._db.connect(write=True) as conn:
            status = conn.execute(sa.select(runs.c.status).where(runs.c.run_id == run_id)
                                  .with_for_update()).scalar()
            if status is None:
                self._db.require_run(conn, run_id)
            this = runs.update().where(runs.c.run_id == run_id)
            if status == "queued":
                conn.execute(this.values(status="cancelled", cancel_requested=1,
                                         finished_at=time.time()))
                return "cancelled"
            if status == "running":
                conn.execute(this.values(cancel_requested=1))
            return status

    def cancel_requested(self, run_id: str) -> bool:
        with self._db.connect() as conn:
            value = conn.execute(sa.select(runs.c.cancel_requested)
                                 .where(runs.c.run_id == run_id)).scalar()
            if value is None:
                self._db.require_run(conn, run_id)
        return bool(value)
