"""Signs of gradient masking in attack results: robustness that only hides the gradient.

A model can look robust to gradient attacks because its input gradients are useless (zero,
saturated, shattered), not because it is. Three checks from Athalye, Carlini & Wagner (2018)
and Carlini et al., "On Evaluating Adversarial Robustness" (2019), read from accuracy tables
(columns perturbation, epsilon, accuracy, as `attacks.accuracy_vs_epsilon` returns):

(a) a black-box attack (Square, which never reads a gradient) beats PGD at the same eps;
(b) PGD accuracy does not fall as eps grows: at the largest eps it is not clearly below the
    clean accuracy, or it rises from one eps to the next;
(c) a stronger PGD (more steps and random starts) finds markedly more errors than the default.

`masking_flags` is pure pandas; `check_masking` runs the three attacks on a small subset.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gradloss.core.validation import fail

BLACK_BOX_TOLERANCE = 0.02  # (a): Square may beat PGD by this much (sampling noise) unflagged
RISE_TOLERANCE = 0.02       # (b): PGD accuracy may rise by this much, or stay this close to clean
STRONG_TOLERANCE = 0.05     # (c): strong PGD may lower accuracy by this much unflagged
MASKING_IMAGES = 200        # images `check_masking` attacks by default
COLUMNS = ("perturbation", "epsilon", "accuracy")


def _curve(table: pd.DataFrame, attack: str, name: str) -> pd.Series:
    """Accuracy by epsilon for one attack, sorted by epsilon (empty when the attack is absent)."""
    if not isinstance(table, pd.DataFrame) or not set(COLUMNS) <= set(table.columns):
        fail("masking_flags", name, f"a DataFrame with columns {list(COLUMNS)}",
              type(table).__name__ if not isinstance(table, pd.DataFrame) else list(table.columns))
    rows = table[table["perturbation"] == attack]
    return rows.groupby("epsilon")["accuracy"].mean().sort_index()


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _black_box_beats_pgd(pgd: pd.Series, square: pd.Series) -> str | None:
    gap = (pgd - square).dropna()
    gap = gap[(gap.index > 0) & (gap > BLACK_BOX_TOLERANCE)]
    if gap.empty:
        return None
    eps = gap.idxmax()
    return (f"Black-box Square beats PGD at eps={eps:g}: {_pct(square[eps])} accuracy against "
            f"PGD's {_pct(pgd[eps])} (more than {100 * BLACK_BOX_TOLERANCE:g} points lower at "
            f"{len(gap)} eps value(s)); the gradients PGD follows may be masked.")


def _accuracy_does_not_fall(pgd: pd.Series) -> str | None:
    rises = pgd.diff()[pgd.diff() > RISE_TOLERANCE]
    if not rises.empty:
        eps = rises.idxmax()
        before = pgd.index[pgd.index.get_loc(eps) - 1]
        return (f"PGD accuracy rises with eps: {_pct(pgd[before])} at eps={before:g} but "
                f"{_pct(pgd[eps])} at eps={eps:g}; a stronger attack can never do worse, "
                f"so the gradients may be masked.")
    largest = pgd.index.max()
    if 0.0 in pgd.index and largest > 0 and pgd[largest] > pgd[0.0] - RISE_TOLERANCE:
        return (f"PGD accuracy does not fall with eps: {_pct(pgd[largest])} at the largest "
                f"eps={largest:g} against {_pct(pgd[0.0])} clean; the gradients may be masked.")
    return None


def _strong_pgd_finds_more(pgd: pd.Series, strong: pd.Series) -> str | None:
    gap = (pgd - strong).dropna()
    gap = gap[gap > STRONG_TOLERANCE]
    if gap.empty:
        return None
    eps = gap.idxmax()
    return (f"Strong PGD finds markedly more errors at eps={eps:g}: {_pct(strong[eps])} "
            f"accuracy against the default PGD's {_pct(pgd[eps])} (more than "
            f"{100 * STRONG_TOLERANCE:g} points lower); the default attack is not converging, "
            f"as happens with masked gradients.")


def masking_flags(table: pd.DataFrame, strong_table: pd.DataFrame | None = None) -> list[str]:
    """Sentences naming each sign of gradient masking found; an empty list when none is.

    `table` holds PGD rows ("pgd") and, for check (a), Square rows ("square"); `strong_table`
    holds the strong PGD's rows ("pgd") for check (c). Checks whose rows are absent are skipped.
    """
    pgd = _curve(table, "pgd", "table")
    flags = [_black_box_beats_pgd(pgd, _curve(table, "square", "table")),
             _accuracy_does_not_fall(pgd) if len(pgd) > 1 else None]
    if strong_table is not None:
        flags.append(_strong_pgd_finds_more(pgd, _curve(strong_table, "pgd", "strong_table")))
    return [f for f in flags if f is not None]


def check_masking(model, x: np.ndarray, y: np.ndarray, config=None):
    """Run default PGD, strong PGD and Square on a small subset; return (flags, (table, strong)).

    `config` is an `AttackConfig`; None uses the default one on MASKING_IMAGES images. The
    strong PGD is `config.strong()` (40 steps, 5 random starts). `masking_flags(*tables)`
    gives the flags again.
    """
    from gradloss.perturbations.attacks import AttackConfig, accuracy_vs_epsilon

    config = AttackConfig(n_images=MASKING_IMAGES) if config is None else config
    table = pd.concat([accuracy_vs_epsilon(model, x, y, "pgd", config),
                       accuracy_vs_epsilon(model, x, y, "square", config)], ignore_index=True)
    strong = accuracy_vs_epsilon(model, x, y, "pgd", config.strong())
    return masking_flags(table, strong), (table, strong)
