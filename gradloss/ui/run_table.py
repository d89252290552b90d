"""The runs table a researcher reads: one row per run with what trained it, how it ended and how
accurate it is, sortable (st.dataframe sorts any column) and filtered by `filter_table`. No
Streamlit, no store: runs and their sweeps in, a DataFrame out.
"""
from __future__ import annotations

import pandas as pd

from gradloss import objectives
from gradloss.analysis.summary import accuracy_at
from gradloss.ui.labels import error_line, format_duration, run_link, short_id, strength

COLUMNS = ["open", "name", "objective", "strength", "status", "clean accuracy", "accuracy at σ",
           "dataset", "architecture", "train size", "epochs", "batch", "seed", "learning rate", "engine",
           "duration", "experiment", "tags", "note", "reason", "id", "created"]  # what tells
# runs apart and how they did first: the table scrolls sideways for the rest
INTS = ["train size", "epochs", "batch", "seed"]


def _accuracy(sweeps: pd.DataFrame, run_id: str, sigma: float) -> float | None:
    found = accuracy_at(sweeps, run_id, sigma)
    return None if found is None else found[0]


def runs_table(runs, sweeps: pd.DataFrame | None = None, sigma: float = 0.1,
               test_accuracy: dict | None = None, experiments: dict | None = None) -> pd.DataFrame:
    """Runs, newest first, one row each. `sweeps`: their noise sweeps (clean accuracy at σ = 0,
    else `test_accuracy`'s last value; accuracy at `sigma`); `experiments`: {experiment_id:
    label}. Every column has one type (empty where unknown), so the table converts to Arrow;
    `reason` is a failure's (or an unreadable row's) one-line cause."""
    sweeps = sweeps if sweeps is not None else pd.DataFrame(
        columns=["run_id", "sigma", "accuracy", "accuracy_std"])
    test_accuracy, experiments = test_accuracy or {}, experiments or {}
    runs = sorted(runs, key=lambda r: (r.created_at, r.run_id), reverse=True)
    rows = []
    for r in runs:
        c = r.config
        clean = _accuracy(sweeps, r.run_id, 0.0)
        rows.append({
            "open": run_link(r.run_id), "name": r.name or "",
            "objective": objectives.label(r.objective), "strength": strength(c),
            "dataset": r.dataset, "architecture": None if c is None else c.architecture_label,
            "train size": None if c is None else c.n_train,
            "epochs": None if c is None else c.epochs, "batch": None if c is None else c.batch_size,
            "learning rate": None if c is None else c.learning_rate,
            "seed": None if c is None else c.seed, "engine": r.engine,
            "experiment": experiments.get(r.experiment_id, short_id(r.experiment_id))
            if r.experiment_id else "",
            "status": r.status,
            "duration": format_duration(r.duration_s) if r.duration_s is not None else "–",
            "clean accuracy": clean if clean is not None else test_accuracy.get(r.run_id),
            "accuracy at σ": _accuracy(sweeps, r.run_id, sigma),
            "tags": ", ".join(r.tags), "note": r.note or "",
            "reason": f"unreadable: {r.unreadable}" if r.unreadable else error_line(r.error),
            "id": short_id(r.run_id), "created": pd.Timestamp(r.created_at, unit="s"),
        })
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.astype({**{c: "Int64" for c in INTS}, "learning rate": "Float64",
                         "clean accuracy": "Float64", "accuracy at σ": "Float64"})


def filter_table(table: pd.DataFrame, objective_labels=(), statuses=(), text: str = "") -> pd.DataFrame:
    """The rows of runs_table among `objective_labels` and `statuses` (empty: all) whose name,
    tags, note, id or experiment contain `text` (any case)."""
    keep = pd.Series(True, index=table.index)
    if objective_labels:
        keep &= table.objective.isin(list(objective_labels))
    if statuses:
        keep &= table.status.isin(list(statuses))
    text = text.strip().lower()
    if text:
        searched = table[["name", "tags", "note", "id", "experiment", "objective"]].astype(str) \
            .agg(" ".join, axis=1).str.lower()
        keep &= searched.str.contains(text, regex=False)
    return table[keep]
