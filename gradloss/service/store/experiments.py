"""Experiments (arms x seeds): the spec, and the state of their runs. An experiment's runs are
ordinary runs that name it (runs.experiment_id, runs.arm): `RunRepository.of_experiment`."""
from __future__ import annotations

import json
import time

from gradloss.core.errors import ExperimentNotFound
from gradloss.core.experiment import ExperimentConfig
from gradloss.core.records import ExperimentRecord
from gradloss.core.validation import check_int
from gradloss.service.urls import redact
from gradloss.service.store.database import Database
from gradloss.service.store.runs import _number, _parsed, new_id, status_counts
from gradloss.service.store.schema import experiments, runs


class ExperimentRepository:
    """Verbs on the experiments table of one store."""

    def __init__(self, db: Database):
        self._db = db

    def create(self, spec: ExperimentConfig) -> str:
        """Record an experiment (its runs are created one by one: RunRepository.create)."""
        experiment_id = "x" + new_id()
        with self._db.connect(write=True) as conn:
            conn.execute(experiments.insert().values(
                experiment_id=experiment_id, created_at=time.time(),
                spec=json.dumps(spec.to_dict())))
        return experiment_id

    def _select(self, *clauses) -> list[ExperimentRecord]:
        """The experiments `clauses` (where / order_by / limit) select, with their run counts."""
        query = experiments.select()
        for clause in clauses:
            query = clause(query)
        with self._db.connect() as conn:
            rows = conn.execute(query).all()
            counts = status_counts(conn, runs.c.experiment_id, [r.experiment_id for r in rows])
        records = []
        for row in rows:
            spec, bad = _parsed(row.spec, ExperimentConfig, "experiment spec")
            created = _number(row.created_at) or 0.0  # a damaged time: listed all the same
            records.append(ExperimentRecord(row.experiment_id, created, spec,
                                            counts[row.experiment_id], bad))
        return records

    def get(self, experiment_id: str) -> ExperimentRecord:
        """The experiment `experiment_id`; ExperimentNotFound names the id and the store."""
        found = self._select(lambda q: q.where(experiments.c.experiment_id == experiment_id))
        if not found:
            raise ExperimentNotFound(f"No experiment with id {experiment_id!r} in the run store "
                                     f"{redact(self._db.url)}.")
        return found[0]

    def list(self, limit: int | None = None) -> list[ExperimentRecord]:
        """Experiments newest first, at most `limit` (an int >= 1; None: all)."""
        clauses = [lambda q: q.order_by(experiments.c.created_at.desc(),
                                        experiments.c.experiment_id.desc())]
        if limit is not None:
            limit = check_int("ExperimentRepository.list", "limit", limit, 1)
            clauses.append(lambda q: q.limit(limit))
        return self._select(*clauses)
