"""The runs table: a run's life from queued to done, failed or cancelled.

Each verb is one short transaction; a verb that changes a run only if it is still in some state is
one conditional UPDATE, so two workers on two machines never both act on the same run. Rows come
back as `StoredRun` records; a row whose config cannot be read comes back with `unreadable` set
(and no config), so one damaged row never takes a listing down.
"""
from __future__ import annotations

import json
import math
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
from gradloss.core.validation import check_int, fail
from gradloss.service.store.database import Database, _ids
from gradloss.service.urls import redact
from gradloss.service.store.schema import evaluation_plans, experiments, metadata, runs

RUN_TABLES = [t for t in metadata.sorted_tables  # a run's rows, beside its own (not a worker's)
              if "run_id" in t.c and t.name not in ("runs", "workers")]


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


def _number(value, kind=float):
    """A stored number as `kind`, or None where the row holds something else (SQLite keeps
    whatever was written; a damaged value must not take a listing down)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return kind(value)


def _text(value) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def to_run(row: sa.Row) -> StoredRun:
    """A StoredRun from a row; a config or sweep that cannot be read makes only this run
    unreadable, with the reason. A damaged progress is read as no progress, and a wrong-typed
    time, count or name as missing: they say how far the run got, not what to train, so the run
    is still listed and can still be resumed."""
    m = row._mapping
    config, bad_config = _parsed(m["config"], TrainConfig, "config")
    sweep, bad_sweep = (SweepConfig(), None) if m["sweep"] is None else \
        _parsed(m["sweep"], SweepConfig, "sweep")
    progress, _ = _json(m["progress"], "progress")
    texts = {name: _text(m[name]) for name in (
        "status", "objective", "dataset", "engine", "data_dir", "error", "worker_id", "device",
        "model_path", "task_id", "host", "experiment_id", "arm", "name", "note", "search_id")}
    times = {name: _number(m[name]) for name in (
        "started_at", "finished_at", "heartbeat_at")}
    return StoredRun(
        run_id=m["run_id"], created_at=_number(m["created_at"]) or 0.0, config=config,
        sweep=sweep or SweepConfig(), progress=Progress.from_dict(progress),
        cancel_requested=bool(m["cancel_requested"]), attempts=_number(m["attempts"], int) or 0,
        gpu=_number(m["gpu"], int), tags=_tags(m["tags"]), unreadable=bad_config or bad_sweep,
        **texts, **times)


def status_counts(conn: sa.Connection, owner: sa.Column, ids: list[str]) -> dict[str, dict]:
    """{id: {run status: number of runs}} of the runs whose `owner` column (runs.experiment_id,
    runs.search_id) is one of `ids`; every id is a key, {} for one without runs."""
    counts: dict[str, dict] = {i: {} for i in ids}
    for owner_id, status, n in conn.execute(
            sa.select(owner, runs.c.status, sa.func.count())
            .where(owner.in_(ids)).group_by(owner, runs.c.status)):
        counts[owner_id][status] = n
    return counts


def _tags(text) -> tuple[str, ...]:
    """The stored JSON list of tags; anything else reads as no tags (they name, never decide)."""
    try:
        value = json.loads(text) if text else []
    except (TypeError, ValueError):
        return ()
    return tuple(t for t in value if isinstance(t, str)) if isinstance(value, list) else ()


MAX_NAME = 80      # characters of a run's name: a label in tables and legends
MAX_TAG = 32       # characters of one tag
MAX_TAGS = 20
MAX_NOTE = 5000    # characters of a note


class RunRepository:
    """Verbs on the runs table of one store."""

    def __init__(self, db: Database):
        self._db = db

    def create(self, plan: RunPlan, task_id: str | None = None,
               experiment_id: str | None = None, arm: str | None = None,
               search_id: str | None = None) -> str:
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
                data_dir=plan.data_dir, experiment_id=experiment_id, arm=arm,
                search_id=search_id))
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
        """Runs newest first, optionally only those in `status` (one status or several), at most
        `limit` of them (an int >= 1; None: all)."""
        query = runs.select().order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
        if status is not None:
            query = query.where(runs.c.status.in_(_ids(status)))
        if limit is not None:
            check_int("RunRepository.list", "limit", limit, 1)  # SQLite reads -1 as all
            query = query.limit(int(limit))
        with self._db.connect() as conn:
            return [to_run(row) for row in conn.execute(query)]

    def of_search(self, search_id: str) -> list[StoredRun]:
        """A strength search's trial runs in the order they were asked."""
        with self._db.connect() as conn:
            return [to_run(row) for row in conn.execute(
                runs.select().where(runs.c.search_id == search_id)
                .order_by(runs.c.created_at, runs.c.run_id))]

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
        return self._db.update(runs, run_id, *conditions, status=status,
                               error=self._db.masked(error), model_path=model,
                               finished_at=time.time())

    def requeue(self, run_id: str, task_id: str, *, stale_before: float,
                count_attempt: bool = True) -> bool:
        """running -> queued under a new task id, if its heartbeat is older than stale_before.

        The condition makes this safe when several workers find the same lost run.
        count_attempt=False: the worker stopped on purpose, so that start does not count."""
        return self._db.update(
            runs, run_id, runs.c.status == "running", runs.c.heartbeat_at < stale_before,
            status="queued", task_id=task_id,
            attempts=runs.c.attempts - (0 if count_attempt else 1))

    def retask(self, run_id: str, task_id: str) -> bool:
        """Name `task_id` as queued run `run_id`'s task; False if it is no longer queued."""
        return self._db.update(runs, run_id, runs.c.status == "queued", task_id=task_id)

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

    def rename(self, run_id: str, name: str | None) -> None:
        """Give the run a name for people (None or blank: none), at most MAX_NAME characters."""
        name = (name or "").strip() or None
        if name is not None and (len(name) > MAX_NAME or not name.isprintable()):
            fail("RunRepository.rename", "name", f"a printable str of at most {MAX_NAME} "
                 "characters", name, f"at most {MAX_NAME} printable characters")
        self._db.update(runs, run_id, name=name)

    def tag(self, run_id: str, tags) -> tuple[str, ...]:
        """Replace the run's tags (blank ones and repeats dropped, order kept); returns them."""
        tags = tuple(dict.fromkeys(t.strip() for t in tags if isinstance(t, str) and t.strip()))
        bad = [t for t in tags if len(t) > MAX_TAG or "," in t or not t.isprintable()]
        if bad or len(tags) > MAX_TAGS:
            fail("RunRepository.tag", "tags", f"at most {MAX_TAGS} printable str of at most "
                 f"{MAX_TAG} characters without commas", bad or tags,
                 f"at most {MAX_TAGS} tags of at most {MAX_TAG} characters, without commas")
        self._db.update(runs, run_id, tags=json.dumps(list(tags)) if tags else None)
        return tags

    def annotate(self, run_id: str, note: str | None) -> None:
        """Replace the run's note (None or blank: none), at most MAX_NOTE characters."""
        note = (note or "").strip() or None
        if note is not None and len(note) > MAX_NOTE:
            fail("RunRepository.annotate", "note", f"a str of at most {MAX_NOTE} characters",
                 f"{note[:40]}... ({len(note)} characters)", f"at most {MAX_NOTE} characters")
        self._db.update(runs, run_id, note=note)

    def delete(self, run_id: str) -> bool:
        """Delete a finished run and every row of it (metrics, sweeps, evaluations, files in
        the store), in one transaction; False, with nothing deleted, if it is queued or running.

        Each table is emptied of the run by name: the tables' foreign keys are not enforced in
        every store (SQLite files created by the migration steps have none)."""
        with self._db.connect(write=True) as conn:
            gone = conn.execute(runs.delete().where(runs.c.run_id == run_id,
                                                    runs.c.status.in_(FINISHED))).rowcount > 0
            if not gone:
                self._db.require_run(conn, run_id)
                return False
            for table in RUN_TABLES:
                conn.execute(table.delete().where(table.c.run_id == run_id))
            return True
