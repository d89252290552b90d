"""The SQLite schema as gradloss wrote it before the store moved to SQLAlchemy (PRAGMA user_version
1 to 5), copied verbatim, to make old files in the tests and check that they upgrade in place."""
import sqlite3
from pathlib import Path

# Migration i (1-based) moves a file from user_version i-1 to i. Append, never edit.
LEGACY_MIGRATIONS: list[tuple[str, ...]] = [
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


def legacy_file(path: Path, version: int) -> sqlite3.Connection:
    """A SQLite file at `path` as that old gradloss left it at `version`; an open connection."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for statements in LEGACY_MIGRATIONS[:version]:
        for statement in statements:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    return conn
