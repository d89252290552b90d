"""Experiment summaries as tables for people: each arm's accuracy and paired difference at one
level with their intervals, and every perturbation at its headline (the CLI prints them, the
dashboard colours them)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from gradloss.core.evaluation import PERTURBATIONS

ALPHA = 0.05  # a difference is called ahead or behind when its adjusted p-value is below this


def _interval(mean, low, high, signed=False) -> str:
    fmt = "{:+.1f}" if signed else "{:.1f}"
    return f"{fmt.format(100 * mean)} [{100 * low:.1f}, {100 * high:.1f}]"


def at_level_table(summary: pd.DataFrame, level) -> tuple[pd.DataFrame, pd.Series]:
    """Per arm at one level: accuracy (%) with its interval, the difference to the reference
    (points) with its interval, P(improve), the adjusted p-value and seeds; and per row the sign
    of the difference where the adjusted p-value settles it (1 or -1), else 0."""
    rows = summary[summary.level.astype(str) == str(level)]
    table = pd.DataFrame({
        "arm": rows.arm,
        "accuracy % [95 % CI]": [_interval(r["mean"], r.low, r.high) for _, r in rows.iterrows()],
        "difference, points [95 % CI]": ["reference" if np.isnan(r["diff"]) else
                                         _interval(r["diff"], r.diff_low, r.diff_high, signed=True)
                                         for _, r in rows.iterrows()],
        "P(improve)": ["" if np.isnan(p) else f"{p:.2f}" for p in rows.p_improve],
        "p (BH)": ["" if np.isnan(p) else f"{p:.3f}" if p >= 0.001 else "<0.001"
                   for p in rows.p_adjusted],
        "seeds": rows.n})
    settled = rows.p_adjusted.to_numpy(dtype=float) < ALPHA
    diff = rows["diff"].to_numpy(dtype=float)
    sign = np.where(settled & (diff > 0), 1, np.where(settled & (diff < 0), -1, 0))
    return table.reset_index(drop=True), pd.Series(sign)


def overview_table(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """at_level_table of every perturbation at its headline, one block per perturbation:
    `summary` is summary.summarize_per_seed of summary.headline_per_seed."""
    tables, signs = [], []
    for name, rows in summary.groupby("perturbation", sort=False):
        table, sign = at_level_table(rows, rows.level.iloc[0])
        tables.append(table.assign(perturbation=PERTURBATIONS[name].label, at=rows.level.iloc[0]))
        signs.append(sign)
    if not tables:
        return pd.DataFrame(), pd.Series(dtype=int)
    table = pd.concat(tables, ignore_index=True)
    first = ["perturbation", "at"]
    return table[first + [c for c in table.columns if c not in first]], \
        pd.concat(signs, ignore_index=True)
