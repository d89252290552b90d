"""The run store's verbs for evaluations beyond Gaussian noise (corruptions, attacks).

Mixed into `store.RunStore` (which owns the connection, the schema and its migration 3):
a run's evaluation plan (the EvaluationConfig, status, progress, masking flags), its accuracy
per perturbation and level, and the grid images' predictions under each.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

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


def _to_plan(row: sqlite3.Row) -> EvaluationPlan:
    flags = row["masking_flags"]
    return EvaluationPlan(row["run_id"], json.loads(row["config"]), row["status"], row["error"],
                          json.loads(row["progress"]), None if flags is None else json.loads(flags),
                          row["updated_at"])


class EvaluationVerbs:
    """Evaluation verbs of RunStore; they use its connect, _require, _update and _frame."""

    def plan_evaluation(self, run_id: str, config: dict) -> None:
        """Record (or replace) the EvaluationConfig (as a dict) a run is to be evaluated with."""
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            conn.execute("INSERT OR REPLACE INTO evaluation_plans (run_id, config, status,"
                         " updated_at) VALUES (?, ?, 'queued', ?)",
                         (run_id, json.dumps(config), time.time()))

    def evaluation_plan(self, run_id: str) -> EvaluationPlan | None:
        """The run's evaluation plan, or None if it has none."""
        with self.connect() as conn:
            self._require(conn, run_id)
            row = conn.execute("SELECT * FROM evaluation_plans WHERE run_id = ?",
                               (run_id,)).fetchone()
        return None if row is None else _to_plan(row)

    def evaluation_plans(self, run_ids: str | Iterable[str]) -> dict[str, EvaluationPlan]:
        """{run_id: plan} of those runs that have one."""
        ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        with self.connect() as conn:
            rows = conn.execute(f"SELECT * FROM evaluation_plans WHERE run_id IN"
                                f" ({', '.join('?' * len(ids))})", ids).fetchall()
        return {row["run_id"]: _to_plan(row) for row in rows}

    def set_evaluation_status(self, run_id: str, status: str, error: str | None = None,
                              progress: dict | None = None) -> None:
        """Move the run's evaluation to `status` (queued, running, done, failed)."""
        if status not in PLAN_STATUSES:
            raise ValueError(f"The 'status' parameter of set_evaluation_status must be a str "
                             f"among {PLAN_STATUSES}. Got {status!r} instead.")
        self._update(run_id, "UPDATE evaluation_plans SET status = ?, error = ?,"
                     " progress = COALESCE(?, progress), updated_at = ? WHERE run_id = ?",
                     (status, error, None if progress is None else json.dumps(progress),
                      time.time(), run_id))

    def update_evaluation_progress(self, run_id: str, progress: dict) -> None:
        """Store how far the evaluation is (a Progress dict); also a heartbeat of the run."""
        with self.connect(write=True) as conn:
            conn.execute("UPDATE evaluation_plans SET progress = ?, updated_at = ?"
                         " WHERE run_id = ?", (json.dumps(progress), time.time(), run_id))
            conn.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?",
                         (time.time(), run_id))

    def save_masking_flags(self, run_id: str, flags: list[str] | None) -> None:
        """The gradient-masking check's sentences ([]: nothing flagged; None: not checked)."""
        self._update(run_id, "UPDATE evaluation_plans SET masking_flags = ? WHERE run_id = ?",
                     (None if flags is None else json.dumps(list(flags)), run_id))

    def save_evaluation(self, run_id: str, table: pd.DataFrame) -> None:
        """Upsert rows [perturbation, level, accuracy, accuracy_std, n_images, seed] of a run."""
        columns = ["perturbation", "level", "accuracy", "accuracy_std", "n_images", "seed"]
        params = [(run_id, str(p), float(level), float(acc), float(std), int(n), int(seed))
                  for p, level, acc, std, n, seed in table[columns].itertuples(index=False)]
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            conn.executemany("INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?)",
                             params)

    def evaluations(self, run_ids: str | Iterable[str]) -> pd.DataFrame:
        """DataFrame[run_id, perturbation, level, accuracy, accuracy_std, n_images, seed]."""
        ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        columns = ["run_id", "perturbation", "level", "accuracy", "accuracy_std", "n_images",
                   "seed"]
        return self._frame(f"SELECT {', '.join(columns)} FROM evaluations WHERE run_id IN"
                           f" ({', '.join('?' * len(ids))}) ORDER BY run_id, perturbation, level",
                           ids, columns)

    def save_evaluation_examples(self, run_id: str, table: pd.DataFrame) -> None:
        """Replace the run's grid predictions under perturbations: table[perturbation, level,
        index, label, prediction, confidence, image] (image: bytes for attacks, else None)."""
        columns = ["perturbation", "level", "index", "label", "prediction", "confidence", "image"]
        params = [(run_id, str(p), float(level), int(i), int(label), int(pred), float(conf),
                   None if image is None else bytes(image))
                  for p, level, i, label, pred, conf, image
                  in table[columns].itertuples(index=False)]
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            conn.execute("DELETE FROM evaluation_examples WHERE run_id = ?", (run_id,))
            conn.executemany("INSERT INTO evaluation_examples VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             params)

    def evaluation_examples(self, run_id: str) -> pd.DataFrame:
        """DataFrame[perturbation, level, index, label, prediction, confidence, image] of a run."""
        return self._frame(
            "SELECT perturbation, level, idx, label, prediction, confidence, image"
            " FROM evaluation_examples WHERE run_id = ? ORDER BY perturbation, level, idx",
            [run_id], ["perturbation", "level", "index", "label", "prediction", "confidence",
                       "image"])

    def perturbation_results(self, run_ids: str | Iterable[str]) -> pd.DataFrame:
        """Every accuracy of these runs in one long frame: their Gaussian sweeps (perturbation
        'gaussian', level sigma) and evaluations; summary.RESULT_COLUMNS."""
        from gradloss.perturbations import summary

        return summary.results(self.robustness(run_ids), self.evaluations(run_ids))

    def per_seed_results(self, arms: dict[str, list[str]]) -> pd.DataFrame:
        """Per-seed rows (arm, seed, perturbation, level, accuracy) of experiments' runs:
        `arms` maps an arm to its run ids; each run's seed is its config's. Feed it to
        summary.summarize_per_seed (stats.summarize per perturbation) for intervals."""
        from gradloss.perturbations import summary

        ids = [run_id for runs in arms.values() for run_id in runs]
        seeds = {run_id: self.get_run(run_id).config.get("seed", 0) for run_id in ids}
        return summary.per_seed(self.perturbation_results(ids),
                                {arm: [(r, seeds[r]) for r in runs] for arm, runs in arms.items()})

