"""What the Robustness page shows about perturbations beyond Gaussian noise, as pure functions.

Results come in summary.RESULT_COLUMNS (the run's sweep as 'gaussian' plus its evaluations);
`runs` is {run_id: StoredRun}, `labels` {run_id: label} (labels.run_labels). Nothing here imports Streamlit or Keras.
"""
from __future__ import annotations


import numpy as np
import pandas as pd
import plotly.graph_objects as go

from gradloss.ui.charts import comparison_figure
from gradloss.ui.images import example_captions
from gradloss.ui.labels import format_duration
from gradloss.core.evaluation import PERTURBATIONS


def available(results: pd.DataFrame, run_ids) -> list[str]:
    """Perturbations measured for every one of the runs, in registry order (gaussian first)."""
    sets = [set(results[results.run_id == r].perturbation) for r in run_ids]
    shared = set.intersection(*sets) if sets else set()
    return [name for name in PERTURBATIONS if name in shared]


def label(name: str) -> str:
    p = PERTURBATIONS[name]
    return f"{p.label} ({p.kind})"


def levels(results: pd.DataFrame, run_ids, perturbation: str) -> list[float]:
    """The levels of `perturbation` every one of the runs was measured at, ascending."""
    rows = results[results.perturbation == perturbation]
    sets = [set(rows[rows.run_id == r].level.round(6)) for r in run_ids]
    return sorted(set.intersection(*sets)) if sets and all(sets) else []


def format_level(perturbation: str, level: float) -> str:
    """'σ = 0.1', 'severity 3', 'ε = 0.05'."""
    name = PERTURBATIONS[perturbation].level_name
    return f"severity {level:g}" if name == "severity" else f"{name} = {level:g}"


def accuracy_at(results: pd.DataFrame, run_id: str, perturbation: str, level: float):
    """(accuracy, accuracy_std) of a run under a perturbation at a level, or None."""
    rows = results[(results.run_id == run_id) & (results.perturbation == perturbation)
                   & np.isclose(results.level, level)]
    return None if rows.empty else (float(rows.accuracy.iloc[0]), float(rows.accuracy_std.iloc[0]))


def perturbation_figure(results: pd.DataFrame, runs: dict, labels: dict, perturbation: str,
                        level: float | None = None) -> go.Figure:
    """Accuracy versus the perturbation's level, one line per run, the chosen level marked."""
    p = PERTURBATIONS[perturbation]
    rows = results[results.perturbation == perturbation].rename(columns={"level": "sigma"})
    fig = comparison_figure(rows, runs, labels, level)  # the σ chart, with other axis titles
    fig.update_layout(xaxis_title=f"{p.label}: {p.level_name}", yaxis_title="test accuracy")
    if level is not None:
        fig.layout.annotations = ()
        fig.add_annotation(x=level, y=1, yref="paper", text=format_level(perturbation, level),
                           showarrow=False)
    return fig


def masking_warnings(flags_by_run: dict, labels: dict) -> list[str]:
    """One warning per flagged run: its label and the masking check's sentences."""
    return [f"Possible gradient masking in {labels[r]}: " + " ".join(flags)
            for r, flags in flags_by_run.items() if r in labels and flags]


def plan_text(plan) -> str:
    """'queued', 'running · PGD (12/13) · 40%', 'done', 'failed: reason' for a plan."""
    p = plan.progress
    if plan.status == "running" and p.phase:
        done = f" · {p.sweep_done / p.sweep_total:.0%}" if p.sweep_total else ""
        eta = f" · ETA {format_duration(p.eta_s)}" if p.eta_s is not None else ""
        return f"running · {p.phase}{done}{eta}"
    return f"failed: {plan.error}" if plan.status == "failed" else plan.status


def grid_captions(examples: dict, perturbation: str, level: float, class_names) -> list:
    """views.example_captions for stored evaluation examples ({objective: frame})."""
    frames = {o: df[df.perturbation == perturbation].rename(columns={"level": "sigma"})
              for o, df in examples.items()}
    return example_captions({o: f for o, f in frames.items() if not f.empty}, level,
                                  class_names)


def parse_floats(text: str, name: str = "epsilons") -> tuple:
    """'0, 0.1 0.2' -> (0.0, 0.1, 0.2); an unreadable entry raises the usual message shape."""
    from gradloss.core.validation import fail

    values = []
    for part in str(text).replace(",", " ").split():
        try:
            values.append(float(part))
        except ValueError:
            fail("EvaluationConfig", name, "floats separated by commas or spaces", part)
    return tuple(values)

