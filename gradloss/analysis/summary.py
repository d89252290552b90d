"""Summaries of accuracy under every perturbation: one number per run and perturbation.

Results are one long frame, RESULT_COLUMNS (`results` joins the run's Gaussian sweep, stored
apart, to its evaluations). Per perturbation:
- auc: accuracy integrated over its levels, divided by their range (stats.normalized_auc);
- headline: accuracy at sigma = 0.1 (noise), the mean over severities (corruptions), at
  eps = HEADLINE_EPS (attacks: robust accuracy, as RobustBench quotes it at one eps), or the
  certified accuracy at radius HEADLINE_RADIUS (randomized smoothing);
and per run the mCE of its corruptions relative to a reference run (corruptions.mean_corruption_error:
1.0 is as robust as the reference, lower is better). `per_seed` and `summarize_per_seed` give
experiments (arms x seeds) intervals through stats.summarize; `comparison_table` sets single runs
side by side (`labels`: {run_id: (label, name)}). Pure pandas: no store, no Keras.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gradloss.analysis import stats
from gradloss.core.evaluation import GAUSSIAN, HEADLINE_EPS, HEADLINE_RADIUS, PERTURBATIONS

RESULT_COLUMNS = ["run_id", "perturbation", "level", "accuracy", "accuracy_std"]
HEADLINE_SIGMA = 0.1
SUMMARY_COLUMNS = ["run_id", "perturbation", "kind", "auc", "headline", "headline_level"]


def results(robustness: pd.DataFrame, evaluations: pd.DataFrame) -> pd.DataFrame:
    """The store's sweep rows (run_id, sigma, accuracy, accuracy_std) as perturbation 'gaussian',
    followed by its evaluation rows: RESULT_COLUMNS."""
    noise = robustness.rename(columns={"sigma": "level"}).assign(perturbation=GAUSSIAN)
    frames = [f[RESULT_COLUMNS] for f in (noise, evaluations) if len(f)]
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def accuracy_at(robustness: pd.DataFrame, run_id: str, sigma: float) -> tuple[float, float] | None:
    """(accuracy, accuracy_std) of a run at sigma in the store's sweep rows, or None if that
    sigma was not swept."""
    rows = robustness[(robustness.run_id == run_id) & np.isclose(robustness.sigma, sigma)]
    if rows.empty:
        return None
    return float(rows.accuracy.iloc[0]), float(rows.accuracy_std.iloc[0])


def headline(perturbation: str, curve: pd.DataFrame) -> tuple[float, str]:
    """(accuracy, which level) that sums up one run's curve (columns level, accuracy)."""
    kind = PERTURBATIONS[perturbation].kind
    if kind == "corruption":
        return float(curve.accuracy.mean()), "mean over severities"
    target = {"noise": HEADLINE_SIGMA, "certified": HEADLINE_RADIUS}.get(kind, HEADLINE_EPS)
    at = curve[np.isclose(curve.level, target)]
    name = f"{PERTURBATIONS[perturbation].level_name}={target:g}"
    return (float(at.accuracy.iloc[0]) if len(at) else math.nan), name


def summarize_runs(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, perturbation) of a RESULT_COLUMNS frame: SUMMARY_COLUMNS."""
    rows = []
    order = {name: i for i, name in enumerate(PERTURBATIONS)}
    for (run_id, name), curve in table.groupby(["run_id", "perturbation"], sort=False):
        if name not in PERTURBATIONS:
            continue  # written by a newer gradloss; nothing to summarise it with
        value, level = headline(name, curve)
        rows.append({"run_id": run_id, "perturbation": name, "kind": PERTURBATIONS[name].kind,
                     "auc": stats.normalized_auc(curve.level, curve.accuracy),
                     "headline": value, "headline_level": level})
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return frame.sort_values(["run_id", "perturbation"], key=lambda c: c.map(order)
                             if c.name == "perturbation" else c, kind="stable",
                             ignore_index=True)


def corruption_error(table: pd.DataFrame, run_id: str, reference_run_id: str) -> float:
    """mCE of run_id's corruptions relative to reference_run_id's (NaN when either lacks them
    or the reference makes no error)."""
    def corruptions(run):
        kind = table.perturbation.map(lambda p: p in PERTURBATIONS and
                                      PERTURBATIONS[p].kind == "corruption")
        rows = table[(table.run_id == run) & kind]
        return rows.rename(columns={"level": "severity"})

    own, reference = corruptions(run_id), corruptions(reference_run_id)
    if own.empty or reference.empty:
        return math.nan
    shared = own.merge(reference[["perturbation", "severity"]], on=["perturbation", "severity"])
    if shared.empty:
        return math.nan
    try:
        return mean_corruption_error(shared, reference)
    except ValueError:  # the reference is perfect under some corruption: CE undefined
        return math.nan


def mean_corruption_error(table: pd.DataFrame, reference_table: pd.DataFrame) -> float:
    """ImageNet-C's mCE as a ratio: the mean over corruptions of CE = sum over severities of the
    model's error / the same sum for the reference (1.0: as robust as the reference).

    Both tables have columns perturbation, severity, accuracy (from `corruption_accuracy`);
    the reference must hold every (perturbation, severity) of `table`.
    """
    keys = ["perturbation", "severity"]
    if len(table) == 0:
        raise ValueError("The 'table' parameter of mean_corruption_error must hold at least "
                         "one row. Got an empty table instead.")
    both = table[keys + ["accuracy"]].merge(reference_table[keys + ["accuracy"]], on=keys,
                                            how="left", suffixes=("", "_ref"),
                                            validate="one_to_one")
    missing = both.loc[both.accuracy_ref.isna(), keys]
    if len(missing):
        raise ValueError(f"The 'reference_table' parameter of mean_corruption_error must hold "
                         f"every row of table. Got none for {missing.values.tolist()} instead.")
    errors = (1 - both[["accuracy", "accuracy_ref"]]).groupby(both.perturbation).sum()
    perfect = errors.index[errors.accuracy_ref == 0].tolist()
    if perfect:
        raise ValueError(f"The reference makes no error under {perfect}, so its CE is undefined.")
    return float((errors.accuracy / errors.accuracy_ref).mean())


def per_seed(table: pd.DataFrame, arms: dict[str, list[tuple[str, int]]]) -> pd.DataFrame:
    """Per-seed rows (arm, seed, perturbation, level, accuracy) for experiments.

    `table` is a RESULT_COLUMNS frame; `arms` maps an arm name to its (run_id, seed) pairs.
    """
    frames = [table[table.run_id == run_id].assign(arm=arm, seed=seed)
              for arm, runs in arms.items() for run_id, seed in runs]
    columns = ["arm", "seed", "perturbation", "level", "accuracy"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def summarize_per_seed(frame: pd.DataFrame, reference: str,
                       confidence: float = 0.95) -> pd.DataFrame:
    """stats.summarize per perturbation of a per_seed frame: its columns plus 'perturbation'."""
    parts = [stats.summarize(rows.drop(columns="perturbation"), reference, confidence,
                             level_col="level").assign(perturbation=name)
             for name, rows in frame.groupby("perturbation", sort=False)]
    if not parts:
        return pd.DataFrame(columns=["perturbation", *stats.SUMMARY_COLUMNS])
    out = pd.concat(parts, ignore_index=True)
    return out[["perturbation", *[c for c in out.columns if c != "perturbation"]]]


def headline_per_seed(frame: pd.DataFrame) -> pd.DataFrame:
    """A per_seed frame (arm, seed, perturbation, level, accuracy) with each curve replaced by
    its headline number; 'level' then names it (e.g. "ε=0.1", "mean over severities"). A
    perturbation whose headline level was not measured (an attack without ε = 0.1), or that
    this gradloss does not know (rows written by a newer one), is left out."""
    rows = []
    for (arm, seed, name), curve in frame.groupby(["arm", "seed", "perturbation"], sort=False):
        if name not in PERTURBATIONS:
            continue
        value, level = headline(name, curve)
        if not math.isnan(value):
            rows.append({"arm": arm, "seed": seed, "perturbation": name, "level": level,
                         "accuracy": value})
    return pd.DataFrame(rows, columns=["arm", "seed", "perturbation", "level", "accuracy"])


def headline_summary(frame: pd.DataFrame, reference: str) -> pd.DataFrame:
    """summarize_per_seed of headline_per_seed: each perturbation's headline over the seeds,
    with its interval and the paired difference to `reference`."""
    return summarize_per_seed(headline_per_seed(frame), reference)


def comparison_table(results: pd.DataFrame, labels: dict, reference: str | None = None
                     ) -> pd.DataFrame:
    """One row per perturbation: each run's headline accuracy and normalised AUC, the
    difference of the first two runs, then an mCE row relative to `reference` (a run id)."""
    runs = summarize_runs(results[results.run_id.isin(list(labels))])
    names = {r: labels[r][1] for r in labels}
    rows = []
    for name in [n for n in PERTURBATIONS if n in set(runs.perturbation)]:
        own = runs[runs.perturbation == name].set_index("run_id")
        row = {"perturbation": PERTURBATIONS[name].label, "kind": PERTURBATIONS[name].kind,
               "headline": own.headline_level.iloc[0]}
        for run_id in labels:
            row[f"{names[run_id]} at headline"] = own.headline.get(run_id, math.nan)
            row[f"{names[run_id]} AUC"] = own.auc.get(run_id, math.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    ids = list(labels)
    if len(ids) == 2 and len(table):
        first, second = (names[i] for i in ids)
        table["difference at headline"] = (table[f"{first} at headline"]
                                           - table[f"{second} at headline"])
    if reference is not None and len(table) and (table.kind == "corruption").any():
        mce = {"perturbation": "mCE (corruptions)", "kind": "corruption",
               "headline": f"relative to {names.get(reference, reference)}, lower is better"}
        for run_id in ids:
            mce[f"{names[run_id]} at headline"] = corruption_error(results, run_id, reference)
        table = pd.concat([table, pd.DataFrame([mce])], ignore_index=True)
    return table


# An accuracy under noise above the clean one by more than this (and more than its draws' std)
# is no chance: the model is undertrained, and noise pushes it off a poor decision boundary.
RISE_MARGIN = 0.01


def rises_with_noise(sweep: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
    """{run_id: (clean accuracy, highest accuracy under noise, its σ)} of the runs in a sweep
    frame (run_id, sigma, accuracy, accuracy_std) whose accuracy rises with noise by more than
    RISE_MARGIN and the draws' std: a sign of an undertrained model, whose curve says little
    about robustness."""
    found = {}
    for run_id, rows in sweep.groupby("run_id", sort=False):
        clean = rows[np.isclose(rows.sigma, 0.0)]
        noisy = rows[rows.sigma > 0]
        if clean.empty or noisy.empty:
            continue
        best = noisy.loc[noisy.accuracy.idxmax()]
        base = float(clean.accuracy.iloc[0])
        if best.accuracy - base > max(RISE_MARGIN, float(best.accuracy_std)):
            found[run_id] = (base, float(best.accuracy), float(best.sigma))
    return found
