"""Single runs side by side: each run's accuracy at σ against a reference run, as a table and as
sentences that never state a difference across protocols without naming what differs.

`runs` is {run_id: StoredRun}; `metrics` and `robustness` are the store's frames. A run whose
protocol (`analysis.protocols`) differs from the reference's gets, in the table's "differs
from the reference" column and in its sentence, the fields that differ; a run whose accuracy
rises with noise (`analysis.summary.rises_with_noise`) is said to be undertrained. No Streamlit.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gradloss import objectives
from gradloss.analysis import protocols
from gradloss.analysis.summary import rises_with_noise
from gradloss.ui.labels import run_labels, short_id

DIFFERS = "differs from the reference"


def final_metric(metrics: pd.DataFrame, run_id: str, name: str):
    """The value of metric `name` at the run's last step, or None."""
    rows = metrics[(metrics.run_id == run_id) & (metrics.name == name)]
    return None if rows.empty else float(rows.sort_values("step").value.iloc[-1])


def step_ms(metrics: pd.DataFrame, run_id: str):
    """Median per-epoch step time in ms (the median skips the first epoch's compile time)."""
    rows = metrics[(metrics.run_id == run_id) & (metrics.name == "step_ms")]
    return None if rows.empty else float(rows.value.median())


def swept_sigmas(robustness: pd.DataFrame, run_ids) -> list[float]:
    """The sigmas every one of the runs was swept at, ascending."""
    sets = [set(robustness[robustness.run_id == r].sigma.round(6)) for r in run_ids]
    return sorted(set.intersection(*sets)) if sets and all(sets) else []


def nearest(options, target: float) -> float:
    return min(options, key=lambda s: abs(s - target))


def default_reference(runs) -> str | None:
    """The run differences are taken against by default: the newest cross-entropy baseline among
    `runs` (newest first), else the first of them."""
    runs = list(runs)
    baselines = [r for r in runs if r.objective == "baseline"]
    return (baselines or runs)[0].run_id if runs else None


def _per_run(metrics: pd.DataFrame) -> tuple[dict, dict]:
    """({(run_id, name): the value at the run's last step}, {run_id: median step_ms}) in two
    grouped passes: what final_metric and step_ms give, for every run at once."""
    last = (metrics.sort_values("step").groupby(["run_id", "name"]).value.last().to_dict()
            if len(metrics) else {})
    timed = metrics[metrics.name == "step_ms"]
    return last, timed.groupby("run_id").value.median().to_dict() if len(timed) else {}


def _ms_per_1000_images(ms, run):
    batch = None if run.config is None else run.config.batch_size
    return None if ms is None or not batch else ms / batch * 1000


def mixed_datasets_note(runs) -> str | None:
    """A warning when the runs were trained on different datasets (each a name and, for a
    file, its content hash), whose accuracies do not compare; None when they share one."""
    datasets = sorted({r.dataset for r in runs})
    if len(datasets) < 2:
        return None
    return (f"These runs were trained on {len(datasets)} different datasets "
            f"({', '.join(datasets)}): their accuracies do not compare. Pick runs of one dataset.")


def comparison_table(runs: dict, metrics: pd.DataFrame, robustness: pd.DataFrame, sigma: float,
                     reference: str | None = None) -> pd.DataFrame:
    """One row per run: its label, clean accuracy, accuracy at sigma and its difference in points
    from the reference run, what of its protocol differs from the reference's, final
    input-gradient norm, training cost per 1000 images (a step's time over its batch size).

    Clean accuracy is the sweep's sigma = 0 if swept, else the last test accuracy of training."""
    noisy_col = f"accuracy at σ={sigma:g}"
    labels = run_labels(runs.values())
    ref_run = runs.get(reference)
    last, ms = _per_run(metrics)
    swept = robustness[robustness.run_id.isin(list(runs))]
    clean = swept[np.isclose(swept.sigma, 0.0)].set_index("run_id").accuracy.to_dict()
    noisy = swept[np.isclose(swept.sigma, sigma)].set_index("run_id").accuracy.to_dict()
    rows = []
    for run_id, run in runs.items():
        rows.append({
            "run": labels[run_id], "objective": objectives.label(run.objective),
            "id": short_id(run_id),
            "clean accuracy": clean.get(run_id, last.get((run_id, "test_accuracy"))),
            noisy_col: noisy.get(run_id),
            DIFFERS: "" if ref_run is None or run is ref_run
            else protocols.difference_words(run, ref_run),
            "‖∂CE/∂x‖": last.get((run_id, "input_grad_norm")),
            "ms / 1000 images": _ms_per_1000_images(ms.get(run_id), run),
        })
    table = pd.DataFrame(rows, columns=["run", "objective", "id", "clean accuracy", noisy_col,
                                        DIFFERS, "‖∂CE/∂x‖", "ms / 1000 images"])
    ref = list(runs).index(reference) if reference in runs else None
    base = table[noisy_col].iloc[ref] if ref is not None else None
    table.insert(5, "points vs reference", [None if base is None or pd.isna(v) or pd.isna(base)
                                            else round((v - base) * 100, 2) for v in table[noisy_col]])
    return table


def comparison_formats(sigma: float) -> dict[str, str]:
    """Column -> printf-style format of comparison_table's number columns."""
    return {"clean accuracy": "%.4f", f"accuracy at σ={sigma:g}": "%.4f",
            "points vs reference": "%+.2f", "‖∂CE/∂x‖": "%.3g", "ms / 1000 images": "%.0f"}


def comparison_summary(table: pd.DataFrame, sigma: float, reference_id: str | None) -> str:
    """Sentences from comparison_table: each run's gap at sigma to the reference, in points
    (naming what of its protocol differs, where something does), and what training it costs
    per training image against the reference. `reference_id`: the reference's short id."""
    noisy = f"accuracy at σ={sigma:g}"
    records = table.to_dict("records")
    ref = next((r for r in records if r["id"] == reference_id), None)
    if ref is None or ref[noisy] is None or pd.isna(ref[noisy]):
        return ""
    parts = []
    for r in records:
        if r is ref or r[noisy] is None or pd.isna(r[noisy]):
            continue
        gap = (r[noisy] - ref[noisy]) * 100
        part = f"{r['run']} {abs(gap):.1f} points {'above' if gap >= 0 else 'below'}"
        if r[DIFFERS]:
            part += f" (another protocol: {r[DIFFERS]})"
        parts.append(part)
    if not parts:
        return ""
    cost = "ms / 1000 images"
    costs = [f"training {r['run']} costs {r[cost] / ref[cost]:.1f}× the reference's time per "
             "training image" for r in records
             if r is not ref and r.get(cost) and ref.get(cost) and not pd.isna(r[cost])
             and not pd.isna(ref[cost])]
    crossed = any(r[DIFFERS] for r in records)
    return (f"At σ = {sigma:g}, against {ref['run']}: " + "; ".join(parts) + ". One seed each: "
            "differences between two seeds of one objective can reach several points at "
            "σ = 0.2." + (" Runs of another protocol differ in more than the objective: their "
                          "gap is not the objective's alone." if crossed else "")
            + (" " + _sentence("; ".join(costs)) + "." if costs else ""))


def _sentence(text: str) -> str:
    """`text` with its first letter upper case (str.capitalize would lower the rest: labels)."""
    return text[:1].upper() + text[1:]


def undertrained_warnings(robustness: pd.DataFrame, runs: dict) -> list[str]:
    """One sentence per run whose accuracy rises with noise (an undertrained model)."""
    labels = run_labels(runs.values())
    out = []
    for run_id, (clean, best, sigma) in rises_with_noise(
            robustness[robustness.run_id.isin(list(runs))]).items():
        config = runs[run_id].config
        trained = ("" if config is None else
                   f" ({config.epochs} epoch{'s' * (config.epochs != 1)} on {config.n_train} images)")
        out.append(f"{labels[run_id]}: accuracy rises with noise, {clean:.4f} at σ = 0 to "
                   f"{best:.4f} at σ = {sigma:g}. An undertrained model{trained} does this; its "
                   "curve says little about robustness. Train it longer or on more images.")
    return out
