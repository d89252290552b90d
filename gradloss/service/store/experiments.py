"""The run store's verbs for experiments (arms x seeds): record one, list them with the state of
their runs, and read their runs and per-seed results.

Mixed into `store.RunStore` (which owns the connection; the tables are in `schema`). An
experiment's runs are ordinary runs that name it (runs.experiment_id, runs.arm).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from gradloss.core.errors import ExperimentNotFound
from gradloss.analysis.experiments import (ExperimentConfig, evaluation_per_seed_table,
                                           per_seed_table)
from gradloss.service.store.schema import experiments, runs
from gradloss.service.settings import redact

if TYPE_CHECKING:
    from gradloss.service.store.runs import Run


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


class ExperimentVerbs:
    """Experiment verbs of RunStore; they use its url, connect, robustness and evaluations."""

    def _require_experiment(self, conn: sa.Connection, experiment_id: str) -> None:
        if conn.execute(sa.select(experiments.c.experiment_id).where(
                experiments.c.experiment_id == experiment_id)).first() is None:
            raise ExperimentNotFound(f"No experiment with id {experiment_id!r} in the run store "
                                     f"{redact(self.url)}.")

    def create_experiment(self, spec: ExperimentConfig | dict) -> str:
        """Record an experiment (its runs are created one by one with create_run)."""
        if not isinstance(spec, ExperimentConfig):
            spec = ExperimentConfig.from_dict(dict(spec))
        from gradloss.service.store.runs import new_id  # store imports this module
        experiment_id = "x" + new_id()
        with self.connect(write=True) as conn:
            conn.execute(experiments.insert().values(
                experiment_id=experiment_id, created_at=time.time(), spec=json.dumps(spec.to_dict())))
        return experiment_id

    def _experiments(self, *clauses) -> list[Experiment]:
        """The experiments `clauses` (where / order_by / limit) select, with their run counts."""
        query = experiments.select()
        for clause in clauses:
            query = clause(query)
        with self.connect() as conn:
            rows = conn.execute(query).all()
            counts: dict[str, dict] = {row.experiment_id: {} for row in rows}
            for experiment_id, status, n in conn.execute(
                    sa.select(runs.c.experiment_id, runs.c.status, sa.func.count())
                    .where(runs.c.experiment_id.in_(list(counts)))
                    .group_by(runs.c.experiment_id, runs.c.status)):
                counts[experiment_id][status] = n
        return [Experiment(row.experiment_id, row.created_at, json.loads(row.spec),
                           counts[row.experiment_id], experiment_status(counts[row.experiment_id]))
                for row in rows]

    def get_experiment(self, experiment_id: str) -> Experiment:
        found = self._experiments(lambda q: q.where(experiments.c.experiment_id == experiment_id))
        if not found:
            with self.connect() as conn:
                self._require_experiment(conn, experiment_id)
        return found[0]

    def list_experiments(self, limit: int | None = None) -> list[Experiment]:
        """Experiments newest first."""
        clauses = [lambda q: q.order_by(experiments.c.created_at.desc(),
                                        experiments.c.experiment_id.desc())]
        if limit is not None:
            clauses.append(lambda q: q.limit(int(limit)))
        return self._experiments(*clauses)

    def experiment_runs(self, experiment_id: str) -> list[Run]:
        """The experiment's runs in the order they were queued (seed-major)."""
        with self.connect() as conn:
            self._require_experiment(conn, experiment_id)
            # run ids start with their creation time and are unique: they break created_at ties
            from gradloss.service.store.runs import to_run  # store imports this module
            return [to_run(row) for row in conn.execute(
                runs.select().where(runs.c.experiment_id == experiment_id)
                .order_by(runs.c.created_at, runs.c.run_id))]

    def experiment_per_seed(self, experiment_id: str) -> pd.DataFrame:
        """experiments.per_seed_table of the experiment: arm, seed, sigma, accuracy of its pairs."""
        runs_ = self.experiment_runs(experiment_id)
        return per_seed_table(runs_, self.robustness([r.run_id for r in runs_]))

    def experiment_evaluations(self, experiment_id: str) -> pd.DataFrame:
        """experiments.evaluation_per_seed_table of the experiment: arm, seed, perturbation,
        level, accuracy of its pairs' corruptions and attacks."""
        runs_ = self.experiment_runs(experiment_id)
        return evaluation_per_seed_table(runs_, self.evaluations([r.run_id for r in runs_]))
