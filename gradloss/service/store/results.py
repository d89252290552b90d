"""A run's measurements: its metrics per step and epoch, its noise sweep and the grid images'
predictions under noise. Frames in, frames out (columns as each verb says)."""
from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd
import sqlalchemy as sa

from gradloss.core.records import MetricRow
from gradloss.service.store.database import Database, _ids
from gradloss.service.store.schema import examples, metrics, robustness

METRIC_COLUMNS = ["run_id", "step", "epoch", "name", "value"]
SWEEP_COLUMNS = ["run_id", "sigma", "accuracy", "accuracy_std", "draws", "seed"]
EXAMPLE_COLUMNS = ["sigma", "index", "label", "prediction", "confidence"]


def _finite(value, what: str) -> float:
    """`value` as a float; a NaN or infinity is refused: it is no measurement."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"The store keeps measurements only; {what} is {value}.")
    return value


def _numeric(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`frame` with `columns` as numbers; rows where one is not a finite number (a damaged row)
    are left out, so one bad value never takes a table down."""
    for column in columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    finite = frame[columns].apply(lambda c: c.map(lambda v: v is not None and math.isfinite(v)))
    return frame[finite.all(axis=1)].reset_index(drop=True)


class ResultRepository:
    """Verbs on the metrics, robustness (noise sweep) and examples tables of one store."""

    def __init__(self, db: Database):
        self._db = db

    def add_metrics(self, run_id: str, rows: Iterable[MetricRow]) -> None:
        """Insert metric rows; a resumed run re-emits steps, so upsert. A non-finite value is
        refused (ValueError): divergence is a failure, not a measurement."""
        params = [{"run_id": run_id, "name": r.name, "step": int(r.step),
                   "epoch": None if r.epoch is None else int(r.epoch),
                   "value": _finite(r.value, f"{r.name} at step {r.step}")} for r in rows]
        with self._db.connect(write=True) as conn:
            self._db.require_run(conn, run_id)
            if params:
                self._db.upsert(conn, metrics, params, ["run_id", "name", "step"])

    def metrics(self, run_ids: str | Iterable[str], name: str | None = None) -> pd.DataFrame:
        """DataFrame[run_id, step, epoch, name, value] of these runs, by run, name and step;
        RunNotFound names a run that does not exist."""
        c = metrics.c
        query = (sa.select(c.run_id, c.step, c.epoch, c.name, c.value)
                 .where(c.run_id.in_(_ids(run_ids))).order_by(c.run_id, c.name, c.step))
        if name is not None:
            query = query.where(c.name == name)
        frame = _numeric(self._db.frame(query, METRIC_COLUMNS, run_ids), ["step", "value"])
        frame["epoch"] = pd.to_numeric(frame["epoch"], errors="coerce").astype("Int64")
        return frame.astype({"step": "int64", "value": "float64"})

    def save_robustness(self, run_id: str, table: pd.DataFrame, draws: int, seed: int) -> None:
        """Replace the run's sweep with table[sigma, accuracy, accuracy_std]."""
        rows = table[["sigma", "accuracy", "accuracy_std"]].itertuples(index=False, name=None)
        self._db.replace(robustness, run_id, [
            {"run_id": run_id, "sigma": float(sigma), "accuracy": _finite(acc, "an accuracy"),
             "accuracy_std": _finite(std, "an accuracy's std"), "draws": int(draws),
             "seed": int(seed)} for sigma, acc, std in rows])

    def robustness(self, run_ids: str | Iterable[str]) -> pd.DataFrame:
        """DataFrame[run_id, sigma, accuracy, accuracy_std, draws, seed] of these runs;
        RunNotFound names a run that does not exist."""
        c = robustness.c
        query = (sa.select(*(c[name] for name in SWEEP_COLUMNS))
                 .where(c.run_id.in_(_ids(run_ids))).order_by(c.run_id, c.sigma))
        return _numeric(self._db.frame(query, SWEEP_COLUMNS, run_ids),
                        ["sigma", "accuracy", "accuracy_std"])

    def save_examples(self, run_id: str, table: pd.DataFrame) -> None:
        """Replace the run's predictions on the grid images:
        table[sigma, index, label, prediction, confidence]."""
        self._db.replace(examples, run_id, [
            {"run_id": run_id, "sigma": float(sigma), "idx": int(index), "label": int(label),
             "prediction": int(prediction), "confidence": float(confidence)}
            for sigma, index, label, prediction, confidence
            in table[EXAMPLE_COLUMNS].itertuples(index=False, name=None)])

    def examples(self, run_id: str) -> pd.DataFrame:
        """DataFrame[sigma, index, label, prediction, confidence] of one run (RunNotFound if
        it does not exist)."""
        c = examples.c
        query = (sa.select(c.sigma, c.idx, c.label, c.prediction, c.confidence)
                 .where(c.run_id == run_id).order_by(c.sigma, c.idx))
        return self._db.frame(query, EXAMPLE_COLUMNS, run_id)
