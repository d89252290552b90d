"""A strength search's view-model (no Streamlit): its trials as frontier points, read from their
runs' stored noise sweeps (one seed each: no interval), the front ringed; labels and the table."""
from __future__ import annotations

import math
import time

import pandas as pd

from gradloss.analysis.frontier import POINT_COLUMNS, on_front
from gradloss.analysis.summary import accuracy_at
from gradloss.core.config import source_label
from gradloss.core.frontier import strength_words
from gradloss.ui.labels import short_id

TRIAL_COLUMNS = ["trial", "run_id", "status", *POINT_COLUMNS]


def search_label(record) -> str:
    """'input_gradient · 5 of 12 trials done · digits · Dec 05 10:42 · 3bb5b7' for pickers."""
    spec = record.spec
    created = time.strftime("%b %d %H:%M", time.localtime(record.created_at))
    what = "unreadable spec" if spec is None else (
        f"{spec.objective} · {record.counts.get('done', 0)} of {spec.trials} trials done · "
        f"{source_label(spec.train.dataset, spec.train.dataset_hash)}")
    state = "" if spec is None else (" (finished)" if record.finished_at else " (searching)")
    return f"{what} · {created} · {short_id(record.search_id)}{state}"


def trial_points(runs, sweeps: pd.DataFrame, sigma: float) -> pd.DataFrame:
    """One row per trial run (TRIAL_COLUMNS), in the order they were asked: the run's clean
    accuracy and its accuracy at `sigma` (NaN until it is done), its strength, and whether it is
    on the front of the done trials. `sweeps`: the runs' stored sweeps
    (`ResultRepository.robustness`)."""
    def at(run, level: float) -> float:
        found = accuracy_at(sweeps, run.run_id, level) if run.status == "done" else None
        return math.nan if found is None else found[0]

    rows = []
    for run in runs:
        params = run.config.objective_params if run.config is not None else {}
        strength = next(iter(params.values()), math.nan)
        trial = (run.arm or "").split(":", 1)[0].removeprefix("trial ")
        rows.append([int(trial) if trial.isdigit() else None, run.run_id, run.status,
                     run.arm or run.run_id, run.objective, strength, int(run.status == "done"),
                     at(run, 0.0), math.nan, math.nan, at(run, sigma), math.nan, math.nan, False])
    frame = pd.DataFrame(rows, columns=TRIAL_COLUMNS)
    done = frame.clean.notna() & frame.robust.notna()
    if done.any():
        frame.loc[done, "on_front"] = on_front(frame.clean[done].to_numpy(),
                                               frame.robust[done].to_numpy())
    return frame


def trials_table(points: pd.DataFrame) -> pd.DataFrame:
    """The trials as people read them, in percent; a trial still training says so."""
    def pct(value):
        return "" if pd.isna(value) else f"{100 * value:.1f}"

    return pd.DataFrame({
        "trial": points.trial,
        "strength": [strength_words(o, s, 3) for o, s in zip(points.objective, points.strength)],
        "status": points.status,
        "clean (%)": points.clean.map(pct),
        "under noise (%)": points.robust.map(pct),
        "front": points.on_front.map({True: "yes", False: ""}),
        "run": points.run_id.map(short_id),
    })
