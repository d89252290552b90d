"""The run store's verbs for evaluations beyond Gaussian noise (corruptions, attacks).

Mixed into `store.RunStore` (which owns the connection; the tables are in `schema`):
a run's evaluation plan (the EvaluationConfig, status, progress, masking flags), its accuracy
per perturbation and level, and the grid images' predictions under each.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from gradloss.service.store.schema import evaluation_examples, evaluation_plans, evaluations, runs

PLAN_STATUSES = ("queued", "running", "done", "failed")


@dataclass
class EvaluationPlan:
    """A run's evaluation beyond Gaussian noise: its config, status, progress and masking flags."""

    run_id: str
    config: dict                 # EvaluationConfig fields
    status: str                  # one of PLAN_STATUSES
    error: str | None
    progress: dict               # Progress fields of the evaluation
    masking_flags: list | None   # None: not checked (yet); []: nothing flagged
    updated_at: float | None


def _to_plan(row: sa.Row) -> EvaluationPlan:
    flags = row.masking_flags
    return EvaluationPlan(row.run_id, json.loads(row.config), row.status, row.error,
                          json.loads(row.progress), None if flags is None else json.loads(flags),
                          row.updated_at)


def _ids(run_ids: str | Iterable[str]) -> list[str]:  # also the store's
    return [run_ids] if isinstance(run_ids, str) else list(run_ids)


class EvaluationVerbs:
    """Evaluation verbs of RunStore; they use its connect, _require, _update, _upsert and _frame."""

    def plan_evaluation(self, run_id: str, config: dict) -> None:
        """Record (or replace) the EvaluationConfig (as a dict) a run is to be evaluated with."""
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            self._upsert(conn, evaluation_plans, [{
                "run_id": run_id, "config": json.dumps(config), "status": "queued", "error": None,
                "progress": "{}", "masking_flags": None, "updated_at": time.time()}], ["run_id"])

    def evaluation_plan(self, run_id: str) -> EvaluationPlan | None:
        """The run's evaluation plan, or None if it has none."""
        with self.connect() as conn:
            self._require(conn, run_id)
            row = conn.execute(evaluation_plans.select()
                               .where(evaluation_plans.c.run_id == run_id)).first()
        return None if row is None else _to_plan(row)

    def evaluation_plans(self, run_ids: str | Iterable[str]) -> dict[str, EvaluationPlan]:
        """{run_id: plan} of those runs that have one."""
        with self.connect() as conn:
            rows = conn.execute(evaluation_plans.select()
                                .where(evaluation_plans.c.run_id.in_(_ids(run_ids)))).all()
        return {row.run_id: _to_plan(row) for row in rows}

    def set_evaluation_status(self, run_id: str, status: str, error: str | None = None,
                              progress: dict | None = None) -> None:
        """Move the run's evaluation to `status` (queued, running, done, failed)."""
        if status not in PLAN_STATUSES:
            raise ValueError(f"The 'status' parameter of set_evaluation_status must be a str "
                             f"among {PLAN_STATUSES}. Got {status!r} instead.")
        values = {"status": status, "error": error, "updated_at": time.time()}
        if progress is not None:
            values["progress"] = json.dumps(progress)
        self._update(run_id, table=evaluation_plans, **values)

    def update_evaluation_progress(self, run_id: str, progress: dict) -> None:
        """Store how far the evaluation is (a Progress dict); also a heartbeat of the run."""
        now = time.time()
        with self.connect(write=True) as conn:
            conn.execute(evaluation_plans.update().where(evaluation_plans.c.run_id == run_id)
                         .values(progress=json.dumps(progress), updated_at=now))
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(heartbeat_at=now))

    def save_masking_flags(self, run_id: str, flags: list[str] | None) -> None:
        """The gradient-masking check's sentences ([]: nothing flagged; None: not checked)."""
        self._update(run_id, table=evaluation_plans,
                     masking_flags=None if flags is None else json.dumps(list(flags)))

    def save_evaluation(self, run_id: str, table: pd.DataFrame) -> None:
        """Upsert rows [perturbation, level, accuracy, accuracy_std, n_images, seed] of a run."""
        columns = ["perturbation", "level", "accuracy", "accuracy_std", "n_images", "seed"]
        rows = [{"run_id": run_id, "perturbation": str(p), "level": float(level),
                 "accuracy": float(acc), "accuracy_std": float(std), "n_images": int(n),
                 "seed": int(seed)}
                for p, level, acc, std, n, seed in table[columns].itertuples(index=False)]
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            if rows:
                self._upsert(conn, evaluations, rows, ["run_id", "perturbation", "level"])

    def evaluations(self, run_ids: str | Iterable[str]) -> pd.DataFrame:
        """DataFrame[run_id, perturbation, level, accuracy, accuracy_std, n_images, seed]."""
        columns = ["run_id", "perturbation", "level", "accuracy", "accuracy_std", "n_images",
                   "seed"]
        c = evaluations.c
        query = (sa.select(*(c[name] for name in columns)).where(c.run_id.in_(_ids(run_ids)))
                 .order_by(c.run_id, c.perturbation, c.level))
        return self._frame(query, columns)

    def save_evaluation_examples(self, run_id: str, table: pd.DataFrame) -> None:
        """Replace the run's grid predictions under perturbations: table[perturbation, level,
        index, label, prediction, confidence, image] (image: bytes for attacks, else None)."""
        columns = ["perturbation", "level", "index", "label", "prediction", "confidence", "image"]
        self._replace(evaluation_examples, run_id, [
            {"run_id": run_id, "perturbation": str(p), "level": float(level), "idx": int(i),
             "label": int(label), "prediction": int(pred), "confidence": float(conf),
             "image": None if image is None else bytes(image)}
            for p, level, i, label, pred, conf, image in table[columns].itertuples(index=False)])

    def evaluation_examples(self, run_id: str) -> pd.DataFrame:
        """DataFrame[perturbation, level, index, label, prediction, confidence, image] of a run."""
        c = evaluation_examples.c
        query = (sa.select(c.perturbation, c.level, c.idx, c.label, c.prediction, c.confidence,
                           c.image)
                 .where(c.run_id == run_id).order_by(c.perturbation, c.level, c.idx))
        frame = self._frame(query, ["perturbation", "level", "index", "label", "prediction",
                                    "confidence", "image"])
        frame["image"] = [None if image is None else bytes(image) for image in frame["image"]]
        return frame

    def perturbation_results(self, run_ids: str | Iterable[str]) -> pd.DataFrame:
        """Every accuracy of these runs in one long frame: their Gaussian sweeps (perturbation
        'gaussian', level sigma) and evaluations; summary.RESULT_COLUMNS."""
        from gradloss.analysis import summary

        return summary.results(self.robustness(run_ids), self.evaluations(run_ids))

    def per_seed_results(self, arms: dict[str, list[str]]) -> pd.DataFrame:
        """Per-seed rows (arm, seed, perturbation, level, accuracy) of experiments' runs:
        `arms` maps an arm to its run ids; each run's seed is its config's. Feed it to
        summary.summarize_per_seed (stats.summarize per perturbation) for intervals."""
        from gradloss.analysis import summary

        ids = [run_id for runs in arms.values() for run_id in runs]
        seeds = {run_id: self.get_run(run_id).config.get("seed", 0) for run_id in ids}
        return summary.per_seed(self.perturbation_results(ids),
                                {arm: [(r, seeds[r]) for r in runs] for arm, runs in arms.items()})

