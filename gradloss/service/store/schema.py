"""The run store's schema, defined once for SQLite and PostgreSQL, and the steps that build it.

The Table objects below are the one definition every query uses. A database reaches the current
schema by applying MIGRATIONS in order, from whatever version it records (a new database starts
at 0), each step naming the columns it introduced: so a fresh PostgreSQL database, a fresh SQLite
file and a SQLite file written by an older gradloss (PRAGMA user_version 1 to 3, from before this
module) all end with the same tables. `database.migrate` runs the steps in one transaction.
Append steps, never edit them.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

metadata = sa.MetaData()


def _run_id() -> sa.Column:
    return sa.Column("run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
                     primary_key=True)


runs = sa.Table(
    "runs", metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),  # epoch seconds, like every *_at
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("config", sa.Text, nullable=False),       # TrainConfig.to_dict() as JSON
    sa.Column("objective", sa.Text, nullable=False),
    sa.Column("dataset", sa.Text, nullable=False),
    sa.Column("engine", sa.Text, nullable=False),
    sa.Column("status", sa.Text, sa.CheckConstraint(
        "status IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="runs_status"),
        nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("worker_id", sa.Text),
    sa.Column("device", sa.Text),
    sa.Column("heartbeat_at", sa.Float),
    sa.Column("progress", sa.Text, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("model_path", sa.Text),
    sa.Column("cancel_requested", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("task_id", sa.Text),
    sa.Column("host", sa.Text),      # the machine that trains (trained) it
    sa.Column("gpu", sa.Integer),    # its GPU index there; NULL on CPU
    sa.Column("data_dir", sa.Text),  # the data folder found at submission; NULL: the default
    sa.Column("experiment_id", sa.Text, sa.ForeignKey("experiments.experiment_id",
                                                      ondelete="CASCADE")),
    sa.Column("arm", sa.Text),       # its arm's name in that experiment
    sa.Column("sweep", sa.Text),     # SweepConfig.to_dict() as JSON; NULL: the default sweep
    sa.Column("name", sa.Text),      # what its researcher calls it; NULL: no name given
    sa.Column("tags", sa.Text),      # JSON list of str; NULL: none
    sa.Column("note", sa.Text),      # free text its researcher wrote about it
    sa.Column("search_id", sa.Text, sa.ForeignKey("searches.search_id", ondelete="CASCADE")),
)
sa.Index("runs_by_created", runs.c.created_at)
sa.Index("runs_by_status", runs.c.status)
sa.Index("runs_by_experiment", runs.c.experiment_id)
sa.Index("runs_by_search", runs.c.search_id)

experiments = sa.Table(  # arms x seeds; their runs are ordinary runs that name them
    "experiments", metadata,
    sa.Column("experiment_id", sa.Text, primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("spec", sa.Text, nullable=False))  # ExperimentConfig.to_dict() as JSON

searches = sa.Table(  # Optuna strength searches; their study is Optuna's, in this same database
    "searches", metadata,
    sa.Column("search_id", sa.Text, primary_key=True),  # also the Optuna study's name
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),          # SearchConfig.to_dict() as JSON
    sa.Column("lease_until", sa.Float),  # one process at a time tells and asks its trials
    sa.Column("finished_at", sa.Float))  # every trial asked and told: nothing left to advance

metrics = sa.Table(
    "metrics", metadata, _run_id(),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    sa.Column("epoch", sa.Integer),
    sa.Column("value", sa.Float),
    sqlite_with_rowid=False)

robustness = sa.Table(
    "robustness", metadata, _run_id(),
    sa.Column("sigma", sa.Float, primary_key=True),
    sa.Column("accuracy", sa.Float),
    sa.Column("accuracy_std", sa.Float),
    sa.Column("draws", sa.Integer),
    sa.Column("seed", sa.Integer))

examples = sa.Table(
    "examples", metadata, _run_id(),
    sa.Column("sigma", sa.Float, primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("label", sa.Integer),
    sa.Column("prediction", sa.Integer),
    sa.Column("confidence", sa.Float))

evaluations = sa.Table(  # perturbations beyond Gaussian noise: accuracy per perturbation and level
    "evaluations", metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("perturbation", sa.Text, primary_key=True),
    sa.Column("level", sa.Float, primary_key=True),
    sa.Column("accuracy", sa.Float),
    sa.Column("accuracy_std", sa.Float),
    sa.Column("n_images", sa.Integer),
    sa.Column("seed", sa.Integer))

evaluation_examples = sa.Table(  # the grid images' predictions under each perturbation
    "evaluation_examples", metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("perturbation", sa.Text, primary_key=True),
    sa.Column("level", sa.Float, primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("label", sa.Integer),
    sa.Column("prediction", sa.Integer),
    sa.Column("confidence", sa.Float),
    sa.Column("image", sa.LargeBinary))  # the attacked image (attacks only)

evaluation_plans = sa.Table(  # one row per run with an evaluation: what, how far, masking flags
    "evaluation_plans", metadata, _run_id(),
    sa.Column("config", sa.Text, nullable=False),  # EvaluationConfig.to_dict() as JSON
    sa.Column("status", sa.Text, sa.CheckConstraint(
        "status IN ('queued', 'running', 'done', 'failed')", name="evaluation_plans_status"),
        nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("progress", sa.Text, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("masking_flags", sa.Text),  # JSON list; NULL: not checked
    sa.Column("updated_at", sa.Float))

artifacts = sa.Table(  # files a run needs on any machine: its checkpoint, its saved model
    "artifacts", metadata, _run_id(),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False))

files = sa.Table(  # datasets and model files users gave, once each by content hash, for any machine
    "files", metadata,
    sa.Column("sha256", sa.Text, primary_key=True),  # a dataset's content hash; a .keras file's
    sa.Column("kind", sa.Text, sa.CheckConstraint("kind IN ('dataset', 'architecture')",
                                                  name="files_kind"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),      # the file's name, for people
    sa.Column("info", sa.Text, nullable=False),      # JSON: shape, classes, sizes, scaling, ...
    sa.Column("data", sa.LargeBinary, nullable=False),  # a dataset's canonical .npz; the .keras
    sa.Column("created_at", sa.Float, nullable=False))

workers = sa.Table(  # one row per live worker process, refreshed every beat
    "workers", metadata,
    sa.Column("worker_id", sa.Text, primary_key=True),  # host:pid
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("device", sa.Text),                        # GPU name or "CPU"
    sa.Column("gpu", sa.Integer),                        # GPU index on its host; NULL on CPU
    sa.Column("run_id", sa.Text),                        # the run it trains now
    sa.Column("heartbeat_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("settings", sa.Text, nullable=False, server_default=sa.text("'{}'")))  # JSON

schema_version = sa.Table(  # one row: the number of MIGRATIONS applied
    "schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))


@dataclass(frozen=True)
class Create:
    """Create `table` with only `columns` (the ones it had then) and the indexes on them."""
    table: str
    columns: tuple[str, ...]

    def apply(self, conn: sa.Connection) -> None:
        source = metadata.tables[self.table]
        table = sa.Table(self.table, sa.MetaData(),
                         *(source.c[name]._copy() for name in self.columns),
                         **source.dialect_kwargs)
        table.create(conn)
        for index in source.indexes:
            if {c.name for c in index.columns} <= set(self.columns):
                sa.Index(index.name, *(table.c[c.name] for c in index.columns)).create(conn)


@dataclass(frozen=True)
class AddColumns:
    """ALTER TABLE `table` ADD each of `columns`, as defined above."""
    table: str
    columns: tuple[str, ...]

    def apply(self, conn: sa.Connection) -> None:
        source = metadata.tables[self.table]
        for name in self.columns:
            ddl = str(sa.schema.CreateColumn(source.c[name]).compile(dialect=conn.dialect))
            for key in source.c[name].foreign_keys:  # CreateColumn leaves them to the table
                ddl += f" REFERENCES {key.column.table.name} ({key.column.name})"
                ddl += f" ON DELETE {key.ondelete}" if key.ondelete else ""
            conn.exec_driver_sql(f"ALTER TABLE {self.table} ADD COLUMN {ddl}")


@dataclass(frozen=True)
class CreateIndex:
    """CREATE INDEX `name`, as defined above (for an index on columns added by a later step)."""
    name: str

    def apply(self, conn: sa.Connection) -> None:
        index = next(i for table in metadata.tables.values() for i in table.indexes
                     if i.name == self.name)
        index.create(conn)


_RUNS_V1 = ("run_id", "created_at", "started_at", "finished_at", "config", "objective", "dataset",
            "engine", "status", "error", "worker_id", "device", "heartbeat_at", "progress",
            "model_path")

# Step i (1-based) moves a database from version i-1 to i.
MIGRATIONS: list[tuple] = [
    (  # 1: runs, their metrics and robustness sweeps
        Create("runs", _RUNS_V1),
        Create("metrics", ("run_id", "name", "step", "epoch", "value")),
        Create("robustness", ("run_id", "sigma", "accuracy", "accuracy_std", "draws", "seed")),
    ),
    (  # 2: cancelling, crash recovery (task id, attempts), the dashboard's image grid
        AddColumns("runs", ("cancel_requested", "attempts", "task_id")),
        Create("examples", ("run_id", "sigma", "idx", "label", "prediction", "confidence")),
    ),
    (  # 3: where the run's data was found when it was submitted
        AddColumns("runs", ("data_dir",)),
    ),
    (  # 4: perturbations beyond Gaussian noise (corruptions, attacks): results, grid, plans
        Create("evaluations", ("run_id", "perturbation", "level", "accuracy", "accuracy_std",
                               "n_images", "seed")),
        Create("evaluation_examples", ("run_id", "perturbation", "level", "idx", "label",
                                       "prediction", "confidence", "image")),
        Create("evaluation_plans", ("run_id", "config", "status", "error", "progress",
                                    "masking_flags", "updated_at")),
    ),
    (  # 5: experiments (arms x seeds); their runs are ordinary runs that name them
        Create("experiments", ("experiment_id", "created_at", "spec")),
        AddColumns("runs", ("experiment_id", "arm")),
        CreateIndex("runs_by_experiment"),
    ),
    (  # 6: several machines: where a run trains, workers in the store, artifacts in the store
        AddColumns("runs", ("host", "gpu")),
        Create("artifacts", ("run_id", "name", "data", "updated_at")),
        Create("workers", ("worker_id", "host", "pid", "device", "gpu", "run_id", "heartbeat_at",
                           "started_at", "settings")),
    ),
    (  # 7: the noise sweep a run was planned with (a submitted experiment's draws, say)
        AddColumns("runs", ("sweep",)),
    ),
    (  # 8: what researchers write about a run: its name, tags and a note
        AddColumns("runs", ("name", "tags", "note")),
    ),
    (  # 9: users' own datasets and .keras files, by content hash
        Create("files", ("sha256", "kind", "name", "info", "data", "created_at")),
    ),
    (  # 10: Optuna strength searches; each trial is a run that names its search
        Create("searches", ("search_id", "created_at", "spec", "lease_until", "finished_at")),
        AddColumns("runs", ("search_id",)),
        CreateIndex("runs_by_search"),
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)
