"""A run's evaluation beyond Gaussian noise (corruptions, attacks): its plan (what, status,
progress, masking flags), its accuracy per perturbation and level, and the grid images'
predictions under each."""
from __future__ import annotations

import json
import time
from collections.abc import Iterable

import pandas as pd
import sqlalchemy as sa

from gradloss.core.evaluation import EvaluationConfig
from gradloss.core.progress import Progress
from gradloss.core.records import PLAN_STATUSES, EvaluationPlan
from gradloss.service.store.database import Database, _ids
from gradloss.service.store.results import _finite, _numeric
from gradloss.service.store.runs import _json, _number, _parsed, _text
from gradloss.service.store.schema import evaluation_examples, evaluation_plans, evaluations, runs

ROW_COLUMNS = ["run_id", "perturbation", "level", "accuracy", "accuracy_std", "n_images", "seed"]
EXAMPLE_COLUMNS = ["perturbation", "level", "index", "label", "prediction", "confidence", "image"]


def _to_plan(row: sa.Row) -> EvaluationPlan:
    config, bad = _parsed(row.config, EvaluationConfig, "evaluation config")
    progress, _ = _json(row.progress, "progress")
    try:
        flags = None if row.masking_flags is None else tuple(
            str(f) for f in json.loads(row.masking_flags))
    except (TypeError, ValueError):
        flags = None
    return EvaluationPlan(row.run_id, config, _text(row.status), _text(row.error),
                          Progress.from_dict(progress), flags, _number(row.updated_at), bad)


class EvaluationRepository:
    """Verbs on the evaluation_plans, evaluations and evaluation_examples tables of one store."""

    def __init__(self, db: Database):
        self._db = db

    def plan(self, run_id: str, config: EvaluationConfig) -> None:
        """Record (or replace) the evaluation a run is to get, queued."""
        with self._db.connect(write=True) as conn:
            self._db.require_run(conn, run_id)
            self._db.upsert(conn, evaluation_plans, [{
                "run_id": run_id, "config": json.dumps(config.to_dict()), "status": "queued",
                "error": None, "progress": "{}", "masking_flags": None,
                "updated_at": time.time()}], ["run_id"])

    def plan_of(self, run_id: str) -> EvaluationPlan | None:
        """The run's evaluation plan, or None if it has none."""
        with self._db.connect() as conn:
            self._db.require_run(conn, run_id)
            row = conn.execute(evaluation_plans.select()
                               .where(evaluation_plans.c.run_id == run_id)).first()
        return None if row is None else _to_plan(row)

    def plans(self, run_ids: str | Iterable[str]) -> dict[str, EvaluationPlan]:
        """{run_id: plan} of those runs that have one."""
        with self._db.connect() as conn:
            rows = conn.execute(evaluation_plans.select()
                                .where(evaluation_plans.c.run_id.in_(_ids(run_ids)))).all()
        return {row.run_id: _to_plan(row) for row in rows}

    def set_status(self, run_id: str, status: str, error: str | None = None,
                   progress: Progress | None = None) -> None:
        """Move the run's evaluation to `status` (queued, running, done, failed)."""
        if status not in PLAN_STATUSES:
            raise ValueError(f"The 'status' parameter of set_status must be a str among "
                             f"{PLAN_STATUSES}. Got {status!r} instead.")
        values = {"status": status, "error": self._db.masked(error), "updated_at": time.time()}
        if progress is not None:
            values["progress"] = json.dumps(progress.to_dict())
        self._db.update(evaluation_plans, run_id, **values)

    def update_progress(self, run_id: str, progress: Progress) -> None:
        """Store how far the evaluation is; also a heartbeat of the run."""
        now = time.time()
        with self._db.connect(write=True) as conn:
            conn.execute(evaluation_plans.update().where(evaluation_plans.c.run_id == run_id)
                         .values(progress=json.dumps(progress.to_dict()), updated_at=now))
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(heartbeat_at=now))

    def save_masking_flags(self, run_id: str, flags: Iterable[str] | None) -> None:
        """The gradient-masking check's sentences ([]: nothing flagged; None: not checked)."""
        self._db.update(evaluation_plans, run_id,
                        masking_flags=None if flags is None else json.dumps(list(flags)))

    def save_rows(self, run_id: str, table: pd.DataFrame) -> None:
        """Upsert rows [perturbation, level, accuracy, accuracy_std, n_images, seed] of a run."""
        rows = [{"run_id": run_id, "perturbation": str(p), "level": float(level),
                 "accuracy": _finite(acc, f"the accuracy under {p}"),
                 "accuracy_std": _finite(std, f"the accuracy std under {p}"), "n_images": int(n),
                 "seed": int(seed)}
                for p, level, acc, std, n, seed in table[ROW_COLUMNS[1:]].itertuples(index=False)]
        with self._db.connect(write=True) as conn:
            self._db.require_run(conn, run_id)
            if rows:
                self._db.upsert(conn, evaluations, rows, ["run_id", "perturbation", "level"])

    def rows(self, run_ids: str | Iterable[str]) -> pd.DataFrame:
        """DataFrame[run_id, perturbation, level, accuracy, accuracy_std, n_images, seed];
        RunNotFound names a run that does not exist."""
        c = evaluations.c
        query = (sa.select(*(c[name] for name in ROW_COLUMNS)).where(c.run_id.in_(_ids(run_ids)))
                 .order_by(c.run_id, c.perturbation, c.level))
        return _numeric(self._db.frame(query, ROW_COLUMNS, run_ids),
                        ["level", "accuracy", "accuracy_std"])

    def save_examples(self, run_id: str, table: pd.DataFrame) -> None:
        """Replace the run's grid predictions under perturbations: table[perturbation, level,
        index, label, prediction, confidence, image] (image: bytes for attacks, else None)."""
        self._db.replace(evaluation_examples, run_id, [
            {"run_id": run_id, "perturbation": str(p), "level": float(level), "idx": int(i),
             "label": int(label), "prediction": int(pred), "confidence": float(conf),
             "image": None if image is None else bytes(image)}
            for p, level, i, label, pred, conf, image
            in table[EXAMPLE_COLUMNS].itertuples(index=False)])

    def examples(self, run_id: str) -> pd.DataFrame:
        """DataFrame[perturbation, level, index, label, prediction, confidence, image] of a run."""
        c = evaluation_examples.c
        query = (sa.select(c.perturbation, c.level, c.idx, c.label, c.prediction, c.confidence,
                           c.image)
                 .where(c.run_id == run_id).order_by(c.perturbation, c.level, c.idx))
        frame = self._db.frame(query, EXAMPLE_COLUMNS, run_id)
        frame["image"] = [None if image is None else bytes(image) for image in frame["image"]]
        return frame
