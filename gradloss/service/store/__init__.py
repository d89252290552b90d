"""The run store: every run's plan, status and results, its files, the experiments and the live
workers, in one database (SQLite by default, PostgreSQL by GRADLOSS_STORE_URL).

`Store` composes one repository per job over one `Database`:

    store.runs         a run's life: create, start, progress, finish, requeue, cancel
    store.results      metrics, the noise sweep, the grid images' predictions
    store.artifacts    checkpoint and model files, for any machine
    store.evaluations  corruptions and attacks: plans, rows, grid images
    store.experiments  arms x seeds specs and the state of their runs
    store.searches     Optuna strength searches: specs, their trial runs, who advances them
    store.workers      who is alive, where, with which settings
    store.files        users' own datasets and .keras files, by content hash

It only persists: summaries are `gradloss.analysis`, settings are `gradloss.service.settings`.
Records come back typed (`gradloss.core.records`). The schema is `schema`, connections and
migrations `database`.
"""
from __future__ import annotations

import os
from pathlib import Path

from gradloss.core.errors import SettingsError
from gradloss.service.settings import STORE_SCHEMES, create_private, store_url, writable_database
from gradloss.service.urls import STORE_SETTING, check_url, redact
from gradloss.service.store import database
from gradloss.service.store.artifacts import ArtifactRepository
from gradloss.service.store.database import Database
from gradloss.service.store.evaluations import EvaluationRepository
from gradloss.service.store.experiments import ExperimentRepository
from gradloss.service.store.files import FileRepository
from gradloss.service.store.results import ResultRepository
from gradloss.service.store.runs import RunRepository
from gradloss.service.store.searches import SearchRepository
from gradloss.service.store.workers import WorkerRepository


class Store:
    """The run store at `location`: a SQLite file path, or a sqlite:/// or postgresql:// URL.

    Holds only the URL; every verb is a short transaction. Opening one brings its schema up to
    date; a store that cannot be reached raises ServiceUnavailable naming the setting."""

    def __init__(self, location: str | os.PathLike):
        text = str(location)
        self.url = check_url(STORE_SETTING, text, STORE_SCHEMES) if "://" in text else \
            f"sqlite:///{Path(text).resolve()}"
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
            writable_database(self.path, "run store", STORE_SETTING)  # before any write
        database.migrate(self.url)
        self.database = db = Database(self.url)
        self.runs = RunRepository(db)
        self.results = ResultRepository(db)
        self.artifacts = ArtifactRepository(db)
        self.evaluations = EvaluationRepository(db)
        self.experiments = ExperimentRepository(db)
        self.searches = SearchRepository(db)
        self.workers = WorkerRepository(db)
        self.files = FileRepository(db)

    @classmethod
    def default(cls) -> "Store":
        """The store GRADLOSS_STORE_URL names, else runs.sqlite in home()."""
        return cls(store_url())

    def __repr__(self) -> str:
        return f"Store({redact(self.url)!r})"

    def connect(self, write: bool = False):
        """One raw transaction on the store's database (for maintenance and tests; the
        repositories are the way to read and write)."""
        return self.database.connect(write)


__all__ = ["Store"]
