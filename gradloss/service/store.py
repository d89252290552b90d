"""Run store: every run's status, config, metrics, robustness table and evaluations, in one SQLite file.

The only module that writes SQL. Each verb is one short transaction on a fresh connection
(WAL mode, so readers never block the training worker, and writers wait on a busy timeout
instead of failing with "database is locked"). The schema is versioned with
PRAGMA user_version and upgraded by the ordered MIGRATIONS below.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd

from gradloss.config import TrainConfig
from gradloss.exceptions import ExperimentNotFound, GradlossError, RunNotFound, SettingsError
from gradloss.experiments import ExperimentConfig, per_seed_table
from gradloss.service.evaluation_store import EvaluationPlan, EvaluationVerbs  # noqa: F401

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
BUSY_TIMEOUT_S = 30.0  # a writer waits this long for another writer before giving up

# Migration i (1-based) moves a file from user_version i-1 to i. Append, never edit.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: runs, their metrics and robustness sweeps
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY, created_at REAL NOT NULL, started_at REAL, finished_at REAL,
            config TEXT NOT NULL, objective TEXT NOT NULL, dataset TEXT NOT NULL, engine TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
            error TEXT, worker_id TEXT, device TEXT, heartbeat_at REAL,
            progress TEXT NOT NULL DEFAULT '{}', model_path TEXT)""",
        "CREATE INDEX runs_by_created ON runs (created_at)",
        "CREATE INDEX runs_by_status ON runs (status)",
        """CREATE TABLE metrics (
            run_id TEXT NOT NULL REFERENCES runs ON DELETE CASCADE, name TEXT NOT NULL,
            step INTEGER NOT NULL, epoch INTEGER, value REAL,
            PRIMARY KEY (run_id, name, step)) WITHOUT ROWID""",
        """CREATE TABLE robustness (
            run_id TEXT NOT NULL REFERENCES runs ON DELETE CASCADE, sigma REAL NOT NULL,
            accuracy REAL, accuracy_std REAL, draws INTEGER, seed INTEGER,
            PRIMARY KEY (run_id, sigma))""",
    ),
    (  # 2: cancelling, crash recovery (task id, attempts), the dashboard's image grid
        "ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN task_id TEXT",
        """CREATE TABLE examples (
            run_id TEXT NOT NULL REFERENCES runs ON DELETE CASCADE, sigma REAL NOT NULL,
            idx INTEGER NOT NULL, label INTEGER, prediction INTEGER, confidence REAL,
            PRIMARY KEY (run_id, sigma, idx))""",
    ),
    (  # 3: where the run's data was found when it was submitted (None: not chosen then)
        "ALTER TABLE runs ADD COLUMN data_dir TEXT",
    ),
    (  # 4: perturbations beyond Gaussian noise (corruptions, attacks): results, grid, masking
        """CREATE TABLE evaluations (
            run_id TEXT NOT NULL REFERENCES runs ON DELETE CASCADE, perturbation TEXT NOT NULL,
            level REAL NOT NULL, accuracy REAL, accuracy_std REAL, n_images INTEGER,
            seed INTEGER, PRIMARY KEY (run_id, perturbation, level))""",
        """CREATE TABLE evaluation_examples (
            run_id TEXT NOT NULL REFERENCES runs ON DELETE CASCADE, perturbation TEXT NOT NULL,
            level REAL NOT NULL, idx INTEGER NOT NULL, label INTEGER, prediction INTEGER,
            confidence REAL, image BLOB, PRIMARY KEY (run_id, perturbation, level, idx))""",
        # one row per run with an evaluation: what to run, how far it is, the masking flags
        """CREATE TABLE evaluation_plans (
            run_id TEXT PRIMARY KEY REFERENCES runs ON DELETE CASCADE, config TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
            error TEXT, progress TEXT NOT NULL DEFAULT '{}', masking_flags TEXT,
            updated_at REAL)""",
    ),
    (  # 5: experiments (arms x seeds); their runs are ordinary runs that name them
        """CREATE TABLE experiments (
            experiment_id TEXT PRIMARY KEY, created_at REAL NOT NULL, spec TEXT NOT NULL)""",
        "ALTER TABLE runs ADD COLUMN experiment_id TEXT REFERENCES experiments ON DELETE CASCADE",
        "ALTER TABLE runs ADD COLUMN arm TEXT",
        "CREATE INDEX runs_by_experiment ON runs (experiment_id)",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)


def home() -> Path:
    """The folder holding the store, the queue, logs and run folders: $GRADLOSS_HOME or ./runs.

    Created readable by its owner only (0700): anyone who can write the queue or the store
    decides what the worker trains. A folder that cannot be created or written raises
    SettingsError naming it, the reason and the fix."""
    path = Path(os.environ.get("GRADLOSS_HOME") or "runs").resolve()  # absolute: child processes agree
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise _unusable(path, exc) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise _unusable(path, PermissionError(13, "Permission denied (not writable)", str(path)))
    return path


def _unusable(path: Path, exc: OSError) -> SettingsError:
    where = "" if exc.filename in (None, str(path)) else f" ({exc.filename})"
    return SettingsError(
        f"gradloss cannot use its folder {path} (GRADLOSS_HOME): {exc.strerror or exc}{where}. "
        "Set GRADLOSS_HOME to a folder you can write, or fix that folder's permissions.")


def create_private(path: Path) -> None:
    """Create the file `path` readable and writable by its owner only (0600), if it is missing.

    SQLite gives a database's -wal and -shm files the mode of the database file."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))


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
    model_path: str | None = None
    cancel_requested: bool = False
    attempts: int = 0            # how many times a worker started it (> 1: resumed after a crash)
    task_id: str | None = None   # huey task id, to revoke a queued run
    experiment_id: str | None = None  # the experiment this run belongs to, if any
    arm: str | None = None            # its arm's name in that experiment
    data_dir: str | None = None  # the data folder found at submission; None: the trainer's default
    unreadable: str | None = None  # not a column: why the row could not be read (config is {} then)


@dataclass
class Experiment:
    """One row of the experiments table, with the state of its runs."""

    experiment_id: str
    created_at: float
    spec: dict                   # ExperimentConfig.to_dict()
    counts: dict                 # run status -> number of runs
    status: str                  # derived from the runs: see experiment_status

    @property
    def n_runs(self) -> int:
        return sum(self.counts.values())


def experiment_status(counts: dict) -> str:
    """queued (no run started), running, then done (all done), cancelled or failed (some were)."""
    if counts.get("running") or (counts.get("queued") and len(counts) > 1):
        return "running"
    if counts.get("queued"):
        return "queued"
    if counts.get("cancelled"):
        return "cancelled"
    return "failed" if counts.get("failed") else "done"


def _to_run(row: sqlite3.Row) -> Run:
    """A Run from a row; a malformed JSON column makes only this run unreadable, with the reason."""
    data = {f.name: row[f.name] for f in fields(Run) if f.name in row.keys()}
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


def _new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]  # sortable, readable, unique


def _ids(run_ids: str | Iterable[str]) -> list[str]:
    return [run_ids] if isinstance(run_ids, str) else list(run_ids)


class RunStore(EvaluationVerbs):
    """The run store at `path` (a SQLite file); holds only the path, opens a connection per call."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:  # here, not as sqlite's "unable to open database file" without the path
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            create_private(self.path)
        except OSError as exc:
            raise SettingsError(
                f"gradloss cannot open its run store {self.path} in {self.path.parent} "
                f"(GRADLOSS_HOME): {exc.strerror or exc}. Set GRADLOSS_HOME to a folder you can "
                f"write, or move {self.path} out of the way.") from exc
        self._migrate()

    @classmethod
    def default(cls) -> "RunStore":
        return cls(home() / "runs.sqlite")

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    # -- connections and schema ------------------------------------------------------------
    @contextlib.contextmanager
    def connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction on a new connection; IMMEDIATE for writes so they queue, not deadlock."""
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL, and no fsync per step
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _migrate(self) -> None:
        with contextlib.closing(sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)) as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise GradlossError(
                    f"The run store {self.path} has schema version {version}, newer than this "
                    f"gradloss understands ({SCHEMA_VERSION}); upgrade gradloss or set "
                    "GRADLOSS_HOME to another folder.")
            self._enable_wal(conn)
        if version < SCHEMA_VERSION:
            with self.connect(write=True) as conn:
                # Read again under the write lock: another process may have migrated meanwhile.
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                for statements in MIGRATIONS[version:]:
                    for statement in statements:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @staticmethod
    def _enable_wal(conn: sqlite3.Connection) -> None:
        # WAL is a property of the file, set once; switching needs the file briefly to itself
        # and does not wait on the busy timeout, so retry while another process holds it.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _require(self, conn: sqlite3.Connection, run_id: str) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise RunNotFound(f"No run with id {run_id!r} in the run store {self.path}.")

    def _update(self, run_id: str, sql: str, params: tuple) -> bool:
        """Run one UPDATE ... WHERE run_id = ? [AND condition]; True if the row changed."""
        with self.connect(write=True) as conn:
            changed = conn.execute(sql, params).rowcount > 0
            if not changed:
                self._require(conn, run_id)
            return changed

    def _replace(self, table: str, run_id: str, rows: list[tuple]) -> None:
        """Swap all of a run's rows in `table` for `rows`, in one transaction."""
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            conn.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?)", rows)  # 6 columns each

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, config: TrainConfig | dict, task_id: str | None = None,
                   data_dir: str | None = None, experiment_id: str | None = None,
                   arm: str | None = None) -> str:
        """Record a queued run; config is validated (TrainConfig.from_dict) and stored whole.

        data_dir: where its data was found when it was submitted, so whichever worker trains it
        reads the same files."""
        if not isinstance(config, TrainConfig):
            config = TrainConfig.from_dict(dict(config))
        run_id = _new_id()
        with self.connect(write=True) as conn:
            if experiment_id is not None:
                self._require_experiment(conn, experiment_id)
            conn.execute(
                "INSERT INTO runs (run_id, created_at, config, objective, dataset, engine, status,"
                " task_id, data_dir, experiment_id, arm) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                (run_id, time.time(), json.dumps(config.to_dict()), config.objective, config.dataset,
                 config.engine, task_id, data_dir, experiment_id, arm))
        return run_id

    def get_run(self, run_id: str) -> Run:
        with self.connect() as conn:
            self._require(conn, run_id)
            return _to_run(conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone())

    def list_runs(self, status: str | Iterable[str] | None = None,
                  limit: int | None = None) -> list[Run]:
        """Runs newest first, optionally only those in `status` (one status or several)."""
        sql, params = "SELECT * FROM runs", []
        if status is not None:
            statuses = _ids(status)
            sql += f" WHERE status IN ({', '.join('?' * len(statuses))})"
            params += statuses
        sql += " ORDER BY created_at DESC, run_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self.connect() as conn:
            return [_to_run(row) for row in conn.execute(sql, params)]

    def start_run(self, run_id: str, worker_id: str) -> bool:
        """queued -> running; False if the run is no longer queued (cancelled meanwhile)."""
        now = time.time()
        return self._update(
            run_id,
            "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?),"
            " heartbeat_at = ?, worker_id = ?, attempts = attempts + 1, error = NULL"
            " WHERE run_id = ? AND status = 'queued'",
            (now, now, worker_id, run_id))

    def set_device(self, run_id: str, device: str) -> None:
        """Record what the run trains on (the training process names it once it has started)."""
        self._update(run_id, "UPDATE runs SET device = ? WHERE run_id = ?", (device, run_id))

    def heartbeat(self, run_id: str) -> None:
        self._update(run_id, "UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", (time.time(), run_id))

    def update_progress(self, run_id: str, progress: dict) -> None:
        """Store the latest Progress (as a dict); also a heartbeat."""
        self._update(run_id, "UPDATE runs SET progress = ?, heartbeat_at = ? WHERE run_id = ?",
                     (json.dumps(progress), time.time(), run_id))

    def finish_run(self, run_id: str, status: str, error: str | None = None,
                   model_path: str | os.PathLike | None = None, *,
                   stale_before: float | None = None) -> bool:
        """queued/running -> status; False if it had already finished (or, with stale_before,
        if its heartbeat is not older than that: someone is still working on it)."""
        if status not in FINISHED:
            raise ValueError(f"The 'status' parameter of finish_run must be a str among {FINISHED}. "
                             f"Got {status!r} instead.")
        sql = ("UPDATE runs SET status = ?, error = ?, model_path = COALESCE(?, model_path),"
               " finished_at = ? WHERE run_id = ? AND status IN ('queued', 'running')")
        model_path = None if model_path is None else str(model_path)
        params: tuple = (status, error, model_path, time.time(), run_id)
        if stale_before is not None:
            sql += " AND heartbeat_at < ?"
            params += (stale_before,)
        return self._update(run_id, sql, params)

    def requeue(self, run_id: str, task_id: str, *, stale_before: float,
                count_attempt: bool = True) -> bool:
        """running -> queued under a new task id, if its heartbeat is older than stale_before.

        The condition makes this safe when several workers find the same lost run.
        count_attempt=False: the worker stopped on purpose, so that start does not count."""
        return self._update(
            run_id,
            "UPDATE runs SET status = 'queued', task_id = ?, attempts = attempts - ?"
            " WHERE run_id = ? AND status = 'running' AND heartbeat_at < ?",
            (task_id, 0 if count_attempt else 1, run_id, stale_before))

    def request_cancel(self, run_id: str) -> str:
        """Cancel a queued run now, or ask a running one to stop; returns the status afterwards."""
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row["status"] == "queued":
                conn.execute("UPDATE runs SET status = 'cancelled', cancel_requested = 1,"
                             " finished_at = ? WHERE run_id = ?", (time.time(), run_id))
                return "cancelled"
            if row["status"] == "running":
                conn.execute("UPDATE runs SET cancel_requested = 1 WHERE run_id = ?", (run_id,))
            return row["status"]

    def cancel_requested(self, run_id: str) -> bool:
        return self.get_run(run_id).cancel_requested

    # -- experiments ---------------------------------------------------------------------------
    def _require_experiment(self, conn: sqlite3.Connection, experiment_id: str) -> None:
        if conn.execute("SELECT 1 FROM experiments WHERE experiment_id = ?",
                        (experiment_id,)).fetchone() is None:
            raise ExperimentNotFound(
                f"No experiment with id {experiment_id!r} in the run store {self.path}.")

    def create_experiment(self, spec: ExperimentConfig | dict) -> str:
        """Record an experiment (its runs are created one by one with create_run)."""
        if not isinstance(spec, ExperimentConfig):
            spec = ExperimentConfig.from_dict(dict(spec))
        experiment_id = "x" + _new_id()
        with self.connect(write=True) as conn:
            conn.execute("INSERT INTO experiments (experiment_id, created_at, spec) VALUES (?, ?, ?)",
                         (experiment_id, time.time(), json.dumps(spec.to_dict())))
        return experiment_id

    def _experiments(self, where: str, params: list) -> list[Experiment]:
        with self.connect() as conn:
            rows = conn.execute(f"SELECT * FROM experiments {where}", params).fetchall()
            counts: dict[str, dict] = {row["experiment_id"]: {} for row in rows}
            ids = list(counts)
            for count in conn.execute(
                    f"SELECT experiment_id, status, COUNT(*) AS n FROM runs WHERE experiment_id IN"
                    f" ({', '.join('?' * len(ids))}) GROUP BY experiment_id, status", ids):
                counts[count["experiment_id"]][count["status"]] = count["n"]
        return [Experiment(row["experiment_id"], row["created_at"], json.loads(row["spec"]),
                           counts[row["experiment_id"]],
                           experiment_status(counts[row["experiment_id"]])) for row in rows]

    def get_experiment(self, experiment_id: str) -> Experiment:
        found = self._experiments("WHERE experiment_id = ?", [experiment_id])
        if not found:
            with self.connect() as conn:
                self._require_experiment(conn, experiment_id)
        return found[0]

    def list_experiments(self, limit: int | None = None) -> list[Experiment]:
        """Experiments newest first."""
        sql, params = "ORDER BY created_at DESC, experiment_id DESC", []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._experiments(sql, params)

    def experiment_runs(self, experiment_id: str) -> list[Run]:
        """The experiment's runs in the order they were queued (seed-major)."""
        with self.connect() as conn:
            self._require_experiment(conn, experiment_id)
            return [_to_run(row) for row in conn.execute(
                "SELECT * FROM runs WHERE experiment_id = ? ORDER BY created_at, rowid",
                (experiment_id,))]

    def experiment_per_seed(self, experiment_id: str) -> pd.DataFrame:
        """experiments.per_seed_table of the experiment: arm, seed, sigma, accuracy of its pairs."""
        runs = self.experiment_runs(experiment_id)
        return per_seed_table(runs, self.robustness([r.run_id for r in runs]))

    # -- results -------------------------------------------------------------------------------
    def add_metrics(self, run_id: str, rows: Iterable[dict]) -> None:
        """Insert rows {step, epoch, name, value}; a resumed run re-emits steps, so upsert."""
        params = [(run_id, r["name"], int(r["step"]),
                   None if r.get("epoch") is None else int(r["epoch"]), float(r["value"]))
                  for r in rows]
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            conn.executemany(
                "INSERT INTO metrics (run_id, name, step, epoch, value) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, name, step)"
                " DO UPDATE SET epoch = excluded.epoch, value = excluded.value",
                params)

    def metrics(self, run_ids: str | Iterable[str], name: str | None = None) -> pd.DataFrame:
        """DataFrame[run_id, step, epoch, name, value] of these runs, by run, name and step."""
        ids = _ids(run_ids)
        sql = (f"SELECT run_id, step, epoch, name, value FROM metrics"
               f" WHERE run_id IN ({', '.join('?' * len(ids))})")
        if name is not None:
            sql += " AND name = ?"
            ids.append(name)
        return self._frame(sql + " ORDER BY run_id, name, step", ids,
                           ["run_id", "step", "epoch", "name", "value"])

    def save_robustness(self, run_id: str, table: pd.DataFrame, draws: int, seed: int) -> None:
        """Replace the run's sweep with table[sigma, accuracy, accuracy_std]."""
        rows = table[["sigma", "accuracy", "accuracy_std"]].itertuples(index=False, name=None)
        params = [(run_id, float(sigma), float(acc), float(std), int(draws), int(seed))
                  for sigma, acc, std in rows]
        self._replace("robustness", run_id, params)

    def robustness(self, run_ids: str | Iterable[str]) -> pd.DataFrame:
        """DataFrame[run_id, sigma, accuracy, accuracy_std, draws, seed] of these runs."""
        ids = _ids(run_ids)
        sql = (f"SELECT run_id, sigma, accuracy, accuracy_std, draws, seed FROM robustness"
               f" WHERE run_id IN ({', '.join('?' * len(ids))}) ORDER BY run_id, sigma")
        return self._frame(sql, ids, ["run_id", "sigma", "accuracy", "accuracy_std", "draws", "seed"])

    def save_examples(self, run_id: str, table: pd.DataFrame) -> None:
        """Replace the run's predictions on the grid images:
        table[sigma, index, label, prediction, confidence]."""
        columns = ["sigma", "index", "label", "prediction", "confidence"]
        params = [(run_id, float(sigma), int(index), int(label), int(prediction), float(confidence))
                  for sigma, index, label, prediction, confidence
                  in table[columns].itertuples(index=False, name=None)]
        self._replace("examples", run_id, params)

    def examples(self, run_id: str) -> pd.DataFrame:
        """DataFrame[sigma, index, label, prediction, confidence] of one run."""
        return self._frame(
            "SELECT sigma, idx, label, prediction, confidence FROM examples WHERE run_id = ?"
            " ORDER BY sigma, idx",
            [run_id], ["sigma", "index", "label", "prediction", "confidence"])

    def _frame(self, sql: str, params: list, columns: list[str]) -> pd.DataFrame:
        with self.connect() as conn:
            rows = [tuple(row) for row in conn.execute(sql, params)]
        return pd.DataFrame(rows, columns=columns)
