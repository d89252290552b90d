"""Run store: every run's status, config, metrics, robustness table, evaluations and artifacts,
the experiments, and the live workers.

With its two mixins, `evaluation_store` and `experiment_store`, the only module that reads and
writes rows. It runs on SQLite (a file, the default) or PostgreSQL
(GRADLOSS_STORE_URL), through one schema (`schema`) and one connection layer (`database`). Each
verb is one short transaction; a verb that changes a run only if it is still in some state is one
conditional UPDATE, so two workers on two machines never both act on the same run.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gradloss.core.config import TrainConfig
from gradloss.core.errors import RunNotFound, SettingsError
from gradloss.service.store import database
from gradloss.service.store.evaluations import EvaluationPlan, EvaluationVerbs, _ids  # noqa: F401
from gradloss.service.store.experiments import Experiment, ExperimentVerbs  # noqa: F401
from gradloss.service.store.schema import (SCHEMA_VERSION, artifacts, examples,  # noqa: F401
                                           metrics, robustness, runs, workers)
from gradloss.service.settings import (create_private, home, redact,  # noqa: F401
                                       store_url)

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")


@dataclass
class Run:
    """One row of the runs table; times are epoch seconds."""

    run_id: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    config: dict
    objective: str
    dataset: str
    engine: str
    status: str
    error: str | None
    worker_id: str | None
    device: str | None           # what the run trained on, e.g. "NVIDIA H100" or "CPU"
    heartbeat_at: float | None
    progress: dict = field(default_factory=dict)  # Progress fields; {} before the first step
    model_path: str | None = None  # where its worker saved the model (a copy is artifact "model.keras")
    cancel_requested: bool = False
    attempts: int = 0            # how many times a worker started it (> 1: resumed after a crash)
    task_id: str | None = None   # queue task id, to revoke a queued run
    host: str | None = None      # the machine that trains (trained) it
    gpu: int | None = None       # its GPU index on that machine; None on CPU
    experiment_id: str | None = None  # the experiment this run belongs to, if any
    arm: str | None = None            # its arm's name in that experiment
    data_dir: str | None = None  # the data folder found at submission; None: the trainer's default
    unreadable: str | None = None  # not a column: why the row could not be read (config is {} then)


def to_run(row: sa.Row) -> Run:
    """A Run from a row; a malformed JSON column makes only this run unreadable, with the reason."""
    data = {f.name: row._mapping[f.name] for f in fields(Run) if f.name in row._mapping}
    data["config"], bad_config = _json_object(data["config"], "config")
    data["progress"], bad_progress = _json_object(data["progress"], "progress")
    data["cancel_requested"] = bool(data["cancel_requested"])
    return Run(**data, unreadable=bad_config or bad_progress)


def _json_object(text, what: str) -> tuple[dict, str | None]:
    """(the JSON object in `text`, None), or ({}, why it is not one)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        return {}, f"its stored {what} is not a JSON object ({exc})"
    if not isinstance(value, dict):
        return {}, f"its stored {what} is not a JSON object (it is {str(text)[:40]!r})"
    return value, None


def new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]  # sortable, readable, unique


class RunStore(EvaluationVerbs, ExperimentVerbs):
    """The run store at `location`: a SQLite file path, or a sqlite:/// or postgresql:// URL.

    Holds only the URL; every verb opens a short transaction. Opening one brings its schema up
    to date; a store that cannot be reached raises ServiceUnavailable naming the setting."""

    def __init__(self, location: str | os.PathLike):
        text = str(location)
        self.url = text if "://" in text else f"sqlite:///{Path(text).resolve()}"
        backend = database.driver_url(self.url).get_backend_name()
        self.path = Path(self.url.split(":///", 1)[1]) if backend == "sqlite" else None
        if self.path is not None:
            try:  # here, not as sqlite's "unable to open database file" without the path
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                create_private(self.path)  # 0600 before SQLite creates it with the default mode
            except OSError as exc:
                raise SettingsError(
                    f"gradloss cannot open its run store {self.path} in {self.path.parent} "
                    f"(GRADLOSS_HOME): {exc.strerror or exc}. Set GRADLOSS_HOME to a folder you "
                    f"can write, or move {self.path} out of the way.") from exc
        database.migrate(self.url)

    @classmethod
    def default(cls) -> "RunStore":
        """The store GRADLOSS_STORE_URL names, else runs.sqlite in home()."""
        return cls(store_url())

    def __repr__(self) -> str:
        return f"RunStore({redact(self.url)!r})"

    def connect(self, write: bool = False):
        """One transaction (a context manager yielding a SQLAlchemy Connection)."""
        return database.transaction(self.url, write)

    def _require(self, conn: sa.Connection, run_id: str) -> None:
        if conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == run_id)).first() is None:
            raise RunNotFound(f"No run with id {run_id!r} in the run store {redact(self.url)}.")

    def _update(self, run_id: str, *conditions, table: sa.Table = runs, **values) -> bool:
        """UPDATE table (default: runs) SET values WHERE run_id = run_id AND conditions; True
        if a row changed (RunNotFound if none did because the run does not exist)."""
        with self.connect(write=True) as conn:
            changed = conn.execute(table.update().where(table.c.run_id == run_id, *conditions)
                                   .values(**values)).rowcount > 0
            if not changed:
                self._require(conn, run_id)
            return changed

    def _replace(self, table: sa.Table, run_id: str, rows: list[dict]) -> None:
        """Swap all of a run's rows in `table` for `rows`, in one transaction."""
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            conn.execute(table.delete().where(table.c.run_id == run_id))
            if rows:
                conn.execute(table.insert(), rows)

    def _upsert(self, conn: sa.Connection, table: sa.Table, rows: list[dict], keys: list[str]) -> None:
        """INSERT rows, or UPDATE the other columns of a row whose `keys` exist (both dialects)."""
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
        others = {c: insert.excluded[c] for c in rows[0] if c not in keys}
        conn.execute(insert.on_conflict_do_update(index_elements=keys, set_=others), rows)

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, config: TrainConfig | dict, task_id: str | None = None,
                   data_dir: str | None = None, experiment_id: str | None = None,
                   arm: str | None = None) -> str:
        """Record a queued run; config is validated (TrainConfig.from_dict) and stored whole.

        data_dir: where its data was found when it was submitted, so whichever worker trains it
        reads the same files."""
        if not isinstance(config, TrainConfig):
            config = TrainConfig.from_dict(dict(config))
        run_id = new_id()
        with self.connect(write=True) as conn:
            if experiment_id is not None:
                self._require_experiment(conn, experiment_id)
            conn.execute(runs.insert().values(
                run_id=run_id, created_at=time.time(), config=json.dumps(config.to_dict()),
                objective=config.objective, dataset=config.dataset, engine=config.engine,
                status="queued", task_id=task_id, data_dir=data_dir, experiment_id=experiment_id,
                arm=arm))
        return run_id

    def get_run(self, run_id: str) -> Run:
        with self.connect() as conn:
            row = conn.execute(runs.select().where(runs.c.run_id == run_id)).first()
            if row is None:
                self._require(conn, run_id)
            return to_run(row)

    def list_runs(self, status: str | Iterable[str] | None = None,
                  limit: int | None = None) -> list[Run]:
        """Runs newest first, optionally only those in `status` (one status or several)."""
        query = runs.select().order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
        if status is not None:
            query = query.where(runs.c.status.in_(_ids(status)))
        if limit is not None:
            query = query.limit(int(limit))
        with self.connect() as conn:
            return [to_run(row) for row in conn.execute(query)]

    def start_run(self, run_id: str, worker_id: str, *, host: str | None = None,
                  gpu: int | None = None) -> bool:
        """queued -> running on `worker_id` (at `host`, GPU `gpu`); False if no longer queued."""
        now = time.time()
        return self._update(
            run_id, runs.c.status == "queued",
            status="running", started_at=sa.func.coalesce(runs.c.started_at, now), heartbeat_at=now,
            worker_id=worker_id, attempts=runs.c.attempts + 1, error=None, host=host, gpu=gpu)

    def set_device(self, run_id: str, device: str) -> None:
        """Record what the run trains on (the training process names it once it has started)."""
        self._update(run_id, device=device)

    def heartbeat(self, run_id: str, worker_id: str | None = None) -> bool:
        """Say the run is being worked on; with worker_id, only while it is still that worker's."""
        held = () if worker_id is None else (runs.c.worker_id == worker_id, runs.c.status == "running")
        return self._update(run_id, *held, heartbeat_at=time.time())

    def update_progress(self, run_id: str, progress: dict) -> None:
        """Store the latest Progress (as a dict); also a heartbeat."""
        self._update(run_id, progress=json.dumps(progress), heartbeat_at=time.time())

    def finish_run(self, run_id: str, status: str, error: str | None = None,
                   model_path: str | os.PathLike | None = None, *,
                   stale_before: float | None = None, worker_id: str | None = None) -> bool:
        """queued/running -> status; False if it had already finished (or, with stale_before,
        if its heartbeat is not older than that: someone is still working on it; or, with
        worker_id, if another worker has taken it over meanwhile)."""
        if status not in FINISHED:
            raise ValueError(f"The 'status' parameter of finish_run must be a str among {FINISHED}. "
                             f"Got {status!r} instead.")
        conditions = [runs.c.status.in_(ACTIVE)]
        if stale_before is not None:
            conditions.append(runs.c.heartbeat_at < stale_before)
        if worker_id is not None:
            conditions.append(runs.c.worker_id == worker_id)
        model = runs.c.model_path if model_path is None else str(model_path)
        return self._update(run_id, *conditions, status=status, error=error, model_path=model,
                            finished_at=time.time())

    def requeue(self, run_id: str, task_id: str, *, stale_before: float,
                count_attempt: bool = True) -> bool:
        """running -> queued under a new task id, if its heartbeat is older than stale_before.

        The condition makes this safe when several workers find the same lost run.
        count_attempt=False: the worker stopped on purpose, so that start does not count."""
        return self._update(
            run_id, runs.c.status == "running", runs.c.heartbeat_at < stale_before,
            status="queued", task_id=task_id, attempts=runs.c.attempts - (0 if count_attempt else 1))

    def request_cancel(self, run_id: str) -> str:
        """Cancel a queued run now, or ask a running one to stop; returns the status afterwards."""
        with self.connect(write=True) as conn:
            status = conn.execute(sa.select(runs.c.status).where(runs.c.run_id == run_id)
                                  .with_for_update()).scalar()
            if status is None:
                self._require(conn, run_id)
            this = runs.update().where(runs.c.run_id == run_id)
            if status == "queued":
                conn.execute(this.values(status="cancelled", cancel_requested=1, finished_at=time.time()))
                return "cancelled"
            if status == "running":
                conn.execute(this.values(cancel_requested=1))
            return status

    def cancel_requested(self, run_id: str) -> bool:
        return self.get_run(run_id).cancel_requested

    # -- results -------------------------------------------------------------------------------
    def add_metrics(self, run_id: str, rows: Iterable[dict]) -> None:
        """Insert rows {step, epoch, name, value}; a resumed run re-emits steps, so upsert."""
        params = [{"run_id": run_id, "name": r["name"], "step": int(r["step"]),
                   "epoch": None if r.get("epoch") is None else int(r["epoch"]),
                   "value": float(r["value"])} for r in rows]
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            if params:
                self._upsert(conn, metrics, params, ["run_id", "name", "step"])

    def metrics(self, run_ids: str | Iterable[str], name: str | None = None) -> pd.DataFrame:
        """DataFrame[run_id, step, epoch, name, value] of these runs, by run, name and step."""
        c = metrics.c
        query = (sa.select(c.run_id, c.step, c.epoch, c.name, c.value)
                 .where(c.run_id.in_(_ids(run_ids))).order_by(c.run_id, c.name, c.step))
        if name is not None:
            query = query.where(c.name == name)
        return self._frame(query, ["run_id", "step", "epoch", "name", "value"])

    def save_robustness(self, run_id: str, table: pd.DataFrame, draws: int, seed: int) -> None:
        """Replace the run's sweep with table[sigma, accuracy, accuracy_std]."""
        rows = table[["sigma", "accuracy", "accuracy_std"]].itertuples(index=False, name=None)
        self._replace(robustness, run_id, [
            {"run_id": run_id, "sigma": float(sigma), "accuracy": float(acc),
             "accuracy_std": float(std), "draws": int(draws), "seed": int(seed)}
            for sigma, acc, std in rows])

    def robustness(self, run_ids: str | Iterable[str]) -> pd.DataFrame:
        """DataFrame[run_id, sigma, accuracy, accuracy_std, draws, seed] of these runs."""
        c = robustness.c
        query = (sa.select(c.run_id, c.sigma, c.accuracy, c.accuracy_std, c.draws, c.seed)
                 .where(c.run_id.in_(_ids(run_ids))).order_by(c.run_id, c.sigma))
        return self._frame(query, ["run_id", "sigma", "accuracy", "accuracy_std", "draws", "seed"])

    def save_examples(self, run_id: str, table: pd.DataFrame) -> None:
        """Replace the run's predictions on the grid images:
        table[sigma, index, label, prediction, confidence]."""
        columns = ["sigma", "index", "label", "prediction", "confidence"]
        self._replace(examples, run_id, [
            {"run_id": run_id, "sigma": float(sigma), "idx": int(index), "label": int(label),
             "prediction": int(prediction), "confidence": float(confidence)}
            for sigma, index, label, prediction, confidence
            in table[columns].itertuples(index=False, name=None)])

    def examples(self, run_id: str) -> pd.DataFrame:
        """DataFrame[sigma, index, label, prediction, confidence] of one run."""
        c = examples.c
        query = (sa.select(c.sigma, c.idx, c.label, c.prediction, c.confidence)
                 .where(c.run_id == run_id).order_by(c.sigma, c.idx))
        return self._frame(query, ["sigma", "index", "label", "prediction", "confidence"])

    def _frame(self, query, columns: list[str]) -> pd.DataFrame:
        with self.connect() as conn:
            rows = [tuple(row) for row in conn.execute(query)]
        return pd.DataFrame(rows, columns=columns)

    # -- artifacts: files every machine can reach ----------------------------------------------
    def put_artifact(self, run_id: str, name: str, data: bytes) -> None:
        """Store (or replace) the run's file `name`, e.g. "checkpoint.tar" or "model.keras"."""
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            self._upsert(conn, artifacts, [{"run_id": run_id, "name": name, "data": bytes(data),
                                            "updated_at": time.time()}], ["run_id", "name"])

    def get_artifact(self, run_id: str, name: str) -> bytes | None:
        """The run's file `name`, or None if it has none by that name."""
        with self.connect() as conn:
            self._require(conn, run_id)
            data = conn.execute(sa.select(artifacts.c.data).where(
                artifacts.c.run_id == run_id, artifacts.c.name == name)).scalar()
        return None if data is None else bytes(data)

    # -- workers: who is alive, anywhere ---------------------------------------------------------
    def beat_worker(self, record: dict) -> None:
        """Say the worker in `record` (the workers table's columns, settings a dict) is alive now."""
        row = dict(record, settings=json.dumps(record.get("settings", {})), heartbeat_at=time.time())
        with self.connect(write=True) as conn:
            self._upsert(conn, workers, [row], ["worker_id"])

    def remove_worker(self, worker_id: str) -> None:
        with self.connect(write=True) as conn:
            conn.execute(workers.delete().where(workers.c.worker_id == worker_id))

    def list_workers(self) -> list[dict]:
        """Every recorded worker, the most recent heartbeat first."""
        with self.connect() as conn:
            rows = conn.execute(workers.select().order_by(workers.c.heartbeat_at.desc())).all()
        return [dict(row._mapping, settings=json.loads(row.settings)) for row in rows]

    def prune_workers(self, silent_before: float) -> int:
        """Forget workers silent since before `silent_before`; returns how many."""
        with self.connect(write=True) as conn:
            return conn.execute(workers.delete().where(workers.c.heartbeat_at < silent_before)).rowcount
