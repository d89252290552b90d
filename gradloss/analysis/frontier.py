"""The robustness–accuracy frontier of an experiment: each arm a point (clean accuracy, accuracy
under noise at σ) with t intervals on both axes over its seeds, the points no other point beats
on both axes (the front), and objectives compared at equal clean accuracy.

Why "at equal clean accuracy": a stronger penalty trades clean accuracy for robustness, so two
objectives at arbitrary strengths differ in both at once and a robustness gap says little. Each
objective's points, in strength order, form a curve; where two curves' clean accuracies overlap,
both are read at the same clean accuracy c* (the highest both reach: the smaller of their best
mean clean accuracies), seed by seed, and their robust accuracies compared as a paired
difference. Reading a curve at c*: on the first segment (weakest strength first) whose two
points' mean clean accuracies bracket c*, each seed's robust accuracy is interpolated with the
weight that puts the *means* at c* (the seeds are paired across every arm, so the same weight
applies to every seed and the pairing carries over). An objective with one strength is a single
point, read at its own clean accuracy when it lies within the other curve's range.

The comparisons of every pair of objectives at every σ are one family: their p-values are
adjusted together (Benjamini–Hochberg, `stats.adjust`). The robust axis is Gaussian noise at a
σ of the sweep, or any corruption or attack at a level (`axes`). Pure pandas over per-seed
tables: clean (arm, seed, accuracy) and robust (arm, seed, level, accuracy), as `axes` makes
them from `experiments.per_seed_table` and `experiments.evaluation_per_seed_table`.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gradloss import objectives
from gradloss.analysis import stats
from gradloss.core.evaluation import GAUSSIAN, PERTURBATIONS

POINT_COLUMNS = ["arm", "objective", "strength", "n", "clean", "clean_low", "clean_high",
                 "robust", "robust_low", "robust_high", "on_front"]
COMPARISON_COLUMNS = ["objective", "other", "level", "clean_level", "n", "mean", "low", "high",
                      "p_value", "p_adjusted"]


def _interval(values: np.ndarray, confidence: float) -> stats.Interval:
    if len(values) < 2:  # one seed: a point without an interval
        mean = float(values.mean()) if len(values) else math.nan
        return stats.Interval(mean, math.nan, math.nan, len(values), confidence)
    return stats.mean_interval(values, confidence)


def axes(per_seed: pd.DataFrame, perturbations: pd.DataFrame | None = None,
         perturbation: str = GAUSSIAN) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clean, robust) per-seed tables of an experiment: clean accuracy from the sweep at σ = 0;
    robust accuracy under `perturbation` at each of its levels: the sweep's σ > 0 for Gaussian
    noise, else the evaluation rows (arm, seed, perturbation, level, accuracy)."""
    clean = per_seed[per_seed.sigma == 0][["arm", "seed", "accuracy"]]
    if perturbation == GAUSSIAN:
        robust = per_seed[per_seed.sigma > 0].rename(columns={"sigma": "level"})
    else:
        rows = perturbations if perturbations is not None else pd.DataFrame(
            columns=["arm", "seed", "perturbation", "level", "accuracy"])
        robust = rows[rows.perturbation == perturbation]
    return (clean.reset_index(drop=True),
            robust[["arm", "seed", "level", "accuracy"]].reset_index(drop=True))


def level_words(perturbation: str, level: float) -> str:
    """'σ = 0.1', 'contrast severity 3', 'PGD ε = 0.1'."""
    p = PERTURBATIONS[perturbation]
    if perturbation == GAUSSIAN:
        return f"σ = {level:g}"
    if p.level_name == "severity":
        return f"{p.label} severity {level:g}"
    return f"{p.label} {p.level_name} = {level:g}"


def _wide(rows: pd.DataFrame, level: float | None = None) -> pd.DataFrame:
    """seed x arm accuracies (at `level`, for a robust table), the seeds every arm has."""
    if level is not None:
        rows = rows[np.isclose(rows.level.astype(float), level)]
    return rows.pivot_table(index="seed", columns="arm", values="accuracy").dropna()


def on_front(clean: np.ndarray, robust: np.ndarray) -> np.ndarray:
    """Whether each point is on the front: no other point is at least as good on both axes and
    better on one (by means)."""
    clean, robust = np.asarray(clean, float), np.asarray(robust, float)
    better_eq = (clean[None, :] >= clean[:, None]) & (robust[None, :] >= robust[:, None])
    strictly = (clean[None, :] > clean[:, None]) | (robust[None, :] > robust[:, None])
    return ~(better_eq & strictly).any(axis=1)


def points(clean_rows: pd.DataFrame, robust_rows: pd.DataFrame, strengths: dict, level: float,
           confidence: float = 0.95) -> pd.DataFrame:
    """One row per arm (POINT_COLUMNS): mean clean and robust accuracy at `level` with their t
    intervals over the seeds every arm has, and whether it is on the front. `strengths`: arm
    -> (objective, strength) (`core.frontier.arm_strengths`)."""
    clean, robust = _wide(clean_rows), _wide(robust_rows, level)
    seeds = clean.index.intersection(robust.index)
    rows = []
    for arm, (objective, strength) in strengths.items():
        if arm not in clean or arm not in robust:
            continue
        c = _interval(clean.loc[seeds, arm].to_numpy(), confidence)
        r = _interval(robust.loc[seeds, arm].to_numpy(), confidence)
        rows.append([arm, objective, strength, c.n, c.mean, c.low, c.high, r.mean, r.low, r.high,
                     False])
    frame = pd.DataFrame(rows, columns=POINT_COLUMNS)
    if len(frame):
        frame["on_front"] = on_front(frame.clean.to_numpy(), frame.robust.to_numpy())
    return frame


def read_at(clean_means: np.ndarray, target: float) -> tuple[int, int, float] | None:
    """Where a curve (mean clean accuracies in strength order) reaches `target`: (i, j, w) with
    the value (1 - w) * point_i + w * point_j, on the first bracketing segment; None if it does
    not reach it."""
    means = np.asarray(clean_means, float)
    for i, m in enumerate(means):
        if math.isclose(m, target, abs_tol=1e-12):
            return i, i, 0.0
    for i in range(len(means) - 1):
        a, b = means[i], means[i + 1]
        if min(a, b) <= target <= max(a, b) and a != b:
            return i, i + 1, (target - a) / (b - a)
    return None


def equal_clean_level(a: np.ndarray, b: np.ndarray) -> float | None:
    """The clean accuracy two curves are compared at: the highest both reach, None if their
    ranges do not overlap."""
    level = min(np.max(a), np.max(b))
    return float(level) if level >= max(np.min(a), np.min(b)) else None


def _read(clean_wide: pd.DataFrame, robust_wide: pd.DataFrame, arms: list[str], target: float):
    """Each seed's robust accuracy of a curve (its `arms` in strength order) read at clean
    accuracy `target`."""
    where = read_at(clean_wide[arms].mean().to_numpy(), target)
    if where is None:
        return None
    i, j, w = where
    return (1 - w) * robust_wide[arms[i]].to_numpy() + w * robust_wide[arms[j]].to_numpy()


def comparisons(clean_rows: pd.DataFrame, robust_rows: pd.DataFrame, strengths: dict,
                levels=None, confidence: float = 0.95) -> pd.DataFrame:
    """Every pair of objectives at every level of the robust table (or `levels`), compared at
    equal clean accuracy (COMPARISON_COLUMNS): the mean paired difference objective - other in
    robust accuracy, its t interval, p-value and the p-value adjusted over all rows. A pair
    whose clean ranges do not overlap, or with fewer than 2 seeds, gets no row."""
    by_objective: dict[str, list[str]] = {}
    clean = _wide(clean_rows)
    for arm, (objective, strength) in sorted(
            strengths.items(), key=lambda kv: (kv[1][1] is not None, kv[1][1] or 0.0)):
        if arm in clean:
            by_objective.setdefault(objective, []).append(arm)
    if levels is None:
        levels = sorted(float(v) for v in robust_rows.level.unique())
    rows, apart = [], set()
    for level_ in levels:
        robust = _wide(robust_rows, level_)
        seeds = clean.index.intersection(robust.index)
        if len(seeds) < 2:
            continue
        c, r = clean.loc[seeds], robust.loc[seeds]
        for a, b in itertools.combinations(by_objective, 2):
            arms_a, arms_b = by_objective[a], by_objective[b]
            if not set(arms_a + arms_b) <= set(r.columns):
                continue
            level = equal_clean_level(c[arms_a].mean().to_numpy(), c[arms_b].mean().to_numpy())
            if level is None:
                apart.add((a, b))
                continue
            ra, rb = _read(c, r, arms_a, level), _read(c, r, arms_b, level)
            diff = stats.paired_difference(ra, rb, confidence)
            rows.append([a, b, float(level_), level, diff.n, diff.mean, diff.low, diff.high,
                         stats.paired_p_value(ra, rb), math.nan])
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    frame["p_adjusted"] = stats.adjust(frame.p_value.to_numpy()) if len(frame) else []
    frame.attrs["confidence"] = confidence
    frame.attrs["apart"] = sorted(apart)  # pairs whose clean accuracies do not overlap
    return frame


def sentences(table: pd.DataFrame, level: float, labels: dict | None = None,
              where: str | None = None) -> list[str]:
    """The comparisons at `level` in words, each with its interval, seeds and the correction.
    `where`: the level in words (`level_words`; default 'σ = level')."""
    confidence = table.attrs.get("confidence", 0.95)
    where = where or f"σ = {level:g}"
    family = len(table)

    def name(objective: str) -> str:
        return (labels or {}).get(objective) or objectives.label(objective)

    out = []
    for row in table[np.isclose(table.level, level)].itertuples():
        a, b = name(row.objective), name(row.other)
        comparison = stats.Comparison(
            stats.Interval(row.mean, row.low, row.high, row.n, confidence), row.p_value,
            row.p_adjusted, family)
        opening = f"At {where} and equal clean accuracy ({100 * row.clean_level:.1f} %)"
        out.append(stats.difference_sentence(a, b, "level", level, comparison, where=opening))
    for a, b in table.attrs.get("apart", []):
        out.append(f"{name(a)} and {name(b)} "
                   "reach no clean accuracy in common: they cannot be compared at equal clean "
                   "accuracy (train more strengths to widen their ranges).")
    return out


@dataclass(frozen=True)
class Frontier:
    """The frontier at one level of one perturbation: its points and the comparisons at equal
    clean accuracy (every level, one family)."""
    level: float
    points: pd.DataFrame
    comparisons: pd.DataFrame
    where: str = ""  # the level in words: 'σ = 0.1', 'PGD ε = 0.1'

    def sentences(self, labels: dict | None = None) -> list[str]:
        return sentences(self.comparisons, self.level, labels, self.where)

    @property
    def varied(self) -> bool:
        """Whether some objective has more than one strength: a frontier, not a single point each."""
        return bool(len(self.points)) and (self.points.groupby("objective").size() > 1).any()


def frontier(per_seed: pd.DataFrame, strengths: dict, level: float,
             perturbations: pd.DataFrame | None = None, perturbation: str = GAUSSIAN,
             confidence: float = 0.95) -> Frontier:
    """The points at `level` of `perturbation` (default: Gaussian noise, `level` a σ of the
    sweep) and the comparisons over every level of it. `per_seed`: the sweep's per-seed table
    (arm, seed, sigma, accuracy); `perturbations`: the evaluation's (`axes`)."""
    clean, robust = axes(per_seed, perturbations, perturbation)
    return Frontier(float(level), points(clean, robust, strengths, level, confidence),
                    comparisons(clean, robust, strengths, confidence=confidence),
                    level_words(perturbation, level))
