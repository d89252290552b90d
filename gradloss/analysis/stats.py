"""Intervals over seeds: how sure a comparison of two objectives is, and how to report it.

An experiment trains each arm (objective) with a handful of seeds and sweeps noise levels.
Every number reported here is a mean with its interval and its seed count:

- Means and paired differences use the Student t interval. Seed counts are small (3 to 10),
  where t keeps its nominal coverage for roughly normal accuracies; a percentile bootstrap
  under-covers there (about 85 % instead of 95 % at 5 seeds; tests/test_stats.py measures both).
- Differences pair the arms by seed (same data order and initial weights), which removes the
  seed-to-seed variance both arms share.
- The probability of improvement is rliable's (Agarwal et al., "Deep Reinforcement Learning
  at the Edge of the Statistical Precipice", NeurIPS 2021; google-research/rliable
  ``metrics.probability_of_improvement``): P(X > Y) + 0.5 P(X = Y) over all pairs of runs,
  i.e. the Mann-Whitney U statistic divided by n * m.
- Every difference has a paired t-test p-value (the test that matches its interval), and claims
  are corrected for looking at many of them: `adjust` applies Benjamini–Hochberg
  (`scipy.stats.false_discovery_control`) over a family of comparisons, which controls the
  expected share of false "ahead"/"behind" claims among those made. An experiment's family is
  every paired difference it reports (each arm at each σ and the AUC, each corruption and attack
  level and headline): `analysis.experiments.corrected`.
- A difference is called "ahead" or "behind" only when its adjusted p-value is below
  1 - confidence; otherwise "not distinguishable", whatever its raw interval says.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from numbers import Real

import numpy as np
import pandas as pd
import scipy.integrate
import scipy.stats

from gradloss.core.errors import InvalidParameterError

SUMMARY_COLUMNS = ("arm", "level", "n", "mean", "low", "high",
                   "diff", "diff_low", "diff_high", "p_improve", "p_value", "p_adjusted", "family")
AUC_LEVEL = "auc"  # the 'level' of summarize_auc's rows
NEED_TWO = "an interval needs at least 2 seeds"


@dataclass(frozen=True)
class Interval:
    """A point estimate with its `confidence` interval, from `n` seeds."""
    mean: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        """Whether 0 lies outside [low, high], i.e. the sign of the estimate is settled."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Comparison:
    """A paired difference with its interval, its p-value and the p-value adjusted over the
    family of `family` comparisons it was looked at with (Benjamini–Hochberg)."""
    interval: Interval
    p_value: float
    p_adjusted: float
    family: int = 1

    @property
    def distinguishable(self) -> bool:
        """Whether the difference's sign is settled after the correction."""
        return self.p_adjusted < 1 - self.interval.confidence


def _fail(owner: str, name: str, allowed: str, got) -> None:
    raise InvalidParameterError(f"The {name!r} parameter of {owner} must be {allowed}. "
                                f"Got {got} instead.")


def _check_confidence(owner: str, confidence) -> None:
    if (isinstance(confidence, bool) or not isinstance(confidence, Real)
            or not 0 < confidence < 1):  # NaN fails the comparison too
        _fail(owner, "confidence", "a float in the range (0.0, 1.0)", repr(confidence))


def _sample(owner: str, name: str, values, minimum: int = 2) -> np.ndarray:
    """`values` as a 1-D float array of finite numbers, at least `minimum` of them."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        _fail(owner, name, "a 1-D sequence of numbers", repr(values))
    if array.ndim != 1:
        _fail(owner, name, "a 1-D sequence of numbers", f"shape {array.shape}")
    if not np.isfinite(array).all():
        _fail(owner, name, "a sequence of finite numbers (no NaN or inf)", array.tolist())
    if len(array) < minimum:
        why = f"; {NEED_TWO}" if minimum == 2 else ""
        _fail(owner, name, f"a sequence of at least {minimum} value(s){why}", len(array))
    return array


@functools.lru_cache(maxsize=256)
def _t_quantile(confidence: float, df: int) -> float:
    """The two-sided Student t critical value; cached as a sweep asks for the same few often."""
    return float(scipy.stats.t.ppf(0.5 + confidence / 2, df))


def _t_interval(values: np.ndarray, confidence: float) -> Interval:
    n, mean = len(values), float(values.mean())
    # identical seeds: exactly no spread (std would leave rounding noise around a mean like 0.1)
    spread = float(values.std(ddof=1)) if np.ptp(values) > 0 else 0.0
    half = _t_quantile(float(confidence), n - 1) * spread / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, confidence)


def mean_interval(values, confidence: float = 0.95) -> Interval:
    """The mean of `values` (one per seed) with its Student t interval."""
    _check_confidence("mean_interval", confidence)
    return _t_interval(_sample("mean_interval", "values", values), confidence)


def paired_difference(a, b, confidence: float = 0.95) -> Interval:
    """The mean of a_i - b_i (paired by seed) with the Student t interval of the differences."""
    _check_confidence("paired_difference", confidence)
    a = _sample("paired_difference", "a", a)
    b = _sample("paired_difference", "b", b)
    if len(a) != len(b):
        _fail("paired_difference", "b", f"as long as 'a' ({len(a)} values; pairs are seeds)",
              f"{len(b)} values")
    return _t_interval(a - b, confidence)


def paired_p_value(a, b) -> float:
    """Two-sided p-value of the paired t-test on a_i - b_i: the test whose interval
    `paired_difference` reports (0 covered exactly when p >= 1 - confidence). Differences all
    equal: 1 if they are 0, else 0 (no spread, the sign is certain)."""
    a = _sample("paired_p_value", "a", a)
    b = _sample("paired_p_value", "b", b)
    if len(a) != len(b):
        _fail("paired_p_value", "b", f"as long as 'a' ({len(a)} values; pairs are seeds)",
              f"{len(b)} values")
    d = a - b
    if np.ptp(d) == 0:
        return 1.0 if d[0] == 0 else 0.0
    t = float(d.mean()) / (float(d.std(ddof=1)) / math.sqrt(len(d)))  # as _t_interval's spread
    return float(2 * scipy.stats.t.sf(abs(t), len(d) - 1))


def adjust(p_values) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values of a family (NaN entries are not comparisons: they
    stay NaN and do not count)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    present = ~np.isnan(p)
    if present.any():
        out[present] = scipy.stats.false_discovery_control(p[present], method="bh")
    return out


def adjust_tables(*summaries: pd.DataFrame) -> list[pd.DataFrame]:
    """The summaries with `p_adjusted` recomputed over all their rows together, one family, and
    `family` its size (the number of comparisons: rows with a p-value)."""
    sizes = [len(s) for s in summaries]
    p = (np.concatenate([s["p_value"].to_numpy(dtype=float) for s in summaries]) if summaries
         else np.array([]))
    joint, family = adjust(p), int((~np.isnan(p)).sum())
    out, start = [], 0
    for summary, size in zip(summaries, sizes):
        out.append(summary.assign(p_adjusted=joint[start:start + size], family=family))
        start += size
    return out


def probability_of_improvement(a, b) -> float:
    """P(X > Y) + 0.5 P(X = Y) for X drawn from `a` and Y from `b` (rliable's definition)."""
    a = _sample("probability_of_improvement", "a", a, minimum=1)
    b = _sample("probability_of_improvement", "b", b, minimum=1)
    u = scipy.stats.mannwhitneyu(a, b).statistic  # pairs with a > b, ties counted half
    return float(u) / (len(a) * len(b))


def normalized_auc(levels, accuracies) -> float:
    """Trapezoid area under accuracy vs level, divided by the width of the levels' range.

    A curve at constant accuracy c scores c, so the result stays in [0, 1]; a single level
    scores its accuracy.
    """
    levels = _sample("normalized_auc", "levels", levels, minimum=1)
    accuracies = _sample("normalized_auc", "accuracies", accuracies, minimum=1)
    if len(levels) != len(accuracies):
        _fail("normalized_auc", "accuracies", f"as long as 'levels' ({len(levels)} values)",
              f"{len(accuracies)} values")
    if len(np.unique(levels)) != len(levels):
        _fail("normalized_auc", "levels", "a sequence of distinct numbers", levels.tolist())
    if ((accuracies < 0) | (accuracies > 1)).any():
        _fail("normalized_auc", "accuracies", "a sequence of fractions in the range [0.0, 1.0]",
              accuracies.tolist())
    order = np.argsort(levels)
    levels, accuracies = levels[order], accuracies[order]
    if len(levels) == 1:
        return float(accuracies[0])
    area = scipy.integrate.trapezoid(accuracies, levels)
    return float(area / (levels[-1] - levels[0]))


def _check_per_seed(owner: str, per_seed, reference: str, level_col: str) -> pd.DataFrame:
    """Refuse a frame that cannot be paired: missing columns, NaN, duplicates, unequal seeds."""
    if not isinstance(per_seed, pd.DataFrame):
        _fail(owner, "per_seed", "a pandas DataFrame", type(per_seed).__name__)
    needed = ["arm", "seed", level_col, "accuracy"]
    missing = [c for c in needed if c not in per_seed.columns]
    if missing:
        _fail(owner, "per_seed", f"a DataFrame with columns {needed}",
              f"columns {list(per_seed.columns)} (missing {missing})")
    frame = per_seed[needed]
    if frame.isna().any().any():
        _fail(owner, "per_seed", "a DataFrame free of NaN",
              f"NaN in column(s) {list(frame.columns[frame.isna().any()])}")
    accuracy = frame["accuracy"].to_numpy(dtype=float)
    if not ((accuracy >= 0) & (accuracy <= 1)).all():
        _fail(owner, "per_seed", "a DataFrame of accuracies in the range [0.0, 1.0]",
              f"{accuracy.min()} to {accuracy.max()}")
    arms = list(dict.fromkeys(frame["arm"]))
    if reference not in arms:
        _fail(owner, "reference", f"an arm of per_seed, among {arms}", repr(reference))
    duplicated = frame.duplicated(["arm", "seed", level_col])
    if duplicated.any():
        first = frame[duplicated].to_dict("records")[0]  # Python scalars: 3, not np.int64(3)
        arm, seed, level = first["arm"], first["seed"], first[level_col]
        _fail(owner, "per_seed", f"a DataFrame with one row per arm x seed x {level_col}",
              f"several rows for arm {arm!r}, seed {seed!r}, "
              f"{level_col}={level!r}")
    seeds = sorted(frame["seed"].unique().tolist())
    if len(seeds) < 2:
        _fail(owner, "per_seed", f"a DataFrame with at least 2 seeds; {NEED_TWO}", len(seeds))
    gaps = []
    for arm in arms:
        own = frame[frame["arm"] == arm]
        for level in sorted(frame[level_col].unique().tolist()):  # an arm may miss a level
            lacking = sorted(set(seeds) - set(own.loc[own[level_col] == level, "seed"].tolist()))
            if lacking:
                gaps.append(f"arm {arm!r} at {level_col}={level!r} lacking seeds {lacking}")
    if gaps:
        _fail(owner, "per_seed", f"a DataFrame with the same seeds for every arm at every "
              f"{level_col} (seeds are paired across arms)", "; ".join(gaps))
    return frame


def _compare(values: pd.DataFrame, reference: str, confidence: float) -> pd.DataFrame:
    """One summary row per (arm, level) of a checked frame with columns arm, seed, level, value.

    The values are accuracies (or normalised areas), in [0, 1]: a mean's interval is cut to
    [0, 1] and a difference's to [-1, 1]. The cut keeps the coverage (the true value always lies
    inside) and spares a reader "109.8 %" from two scattered seeds."""
    rows = []
    arms = [reference] + [a for a in dict.fromkeys(values["arm"]) if a != reference]
    table = values.pivot(index=["level", "seed"], columns="arm", values="value")
    for arm in arms:
        for level, by_seed in table.groupby(level=0, sort=True):  # rows sorted by seed
            own = _t_interval(by_seed[arm].to_numpy(), confidence)
            row = {"arm": arm, "level": level, "n": own.n,
                   "mean": own.mean, "low": max(0.0, own.low), "high": min(1.0, own.high),
                   "diff": math.nan, "diff_low": math.nan, "diff_high": math.nan,
                   "p_improve": math.nan, "p_value": math.nan, "p_adjusted": math.nan,
                   "family": 0}
            if arm != reference:
                ref = by_seed[reference].to_numpy()
                diff = _t_interval(by_seed[arm].to_numpy() - ref, confidence)
                row.update(diff=diff.mean, diff_low=max(-1.0, diff.low),
                           diff_high=min(1.0, diff.high),
                           p_improve=probability_of_improvement(by_seed[arm], ref),
                           p_value=paired_p_value(by_seed[arm].to_numpy(), ref))
            rows.append(row)
    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    return adjust_tables(frame)[0]  # this table alone as the family; see adjust_tables


def summarize(per_seed: pd.DataFrame, reference: str, confidence: float = 0.95,
              level_col: str = "sigma") -> pd.DataFrame:
    """Mean accuracy per (arm, level) with its interval, and the paired difference to `reference`.

    `per_seed` has columns arm, seed, `level_col`, accuracy (one row per arm x seed x level);
    seeds are paired across arms by their 'seed' value. Returns the columns of
    SUMMARY_COLUMNS, the reference arm first; its diff and p_improve columns are NaN.
    """
    _check_confidence("summarize", confidence)
    frame = _check_per_seed("summarize", per_seed, reference, level_col)
    values = frame.rename(columns={level_col: "level", "accuracy": "value"})
    return _compare(values, reference, confidence)


def summarize_auc(per_seed: pd.DataFrame, reference: str, confidence: float = 0.95,
                  level_col: str = "sigma") -> pd.DataFrame:
    """Like summarize, on each seed's normalised area under its accuracy curve (level 'auc')."""
    _check_confidence("summarize_auc", confidence)
    frame = _check_per_seed("summarize_auc", per_seed, reference, level_col)
    aucs = [{"arm": arm, "seed": seed, "level": AUC_LEVEL,
             "value": normalized_auc(curve[level_col], curve["accuracy"])}
            for (arm, seed), curve in frame.groupby(["arm", "seed"], sort=False)]
    return _compare(pd.DataFrame(aucs), reference, confidence)


def _percent(confidence: float) -> str:
    return f"{round(100 * confidence, 6):g} %"


def _number(value: float, minus: str = "-", signed: bool = False) -> str:
    """`value` with one decimal, its minus sign written as `minus` (a hyphen is not a minus)."""
    return (f"{value:+.1f}" if signed else f"{value:.1f}").replace("-", minus)


def _level(level, minus: str = "-") -> str:
    return f"{level:g}".replace("-", minus) if isinstance(level, Real) else str(level)


def difference_sentence(arm_label: str, reference_label: str, level_name: str, level,
                        diff: Interval | Comparison, where: str | None = None) -> str:
    """One sentence reporting a paired accuracy difference in points, its interval and seeds.

    Given a Comparison, "more/less accurate" is said only when its adjusted p-value settles the
    sign, and the sentence names the correction and its family. `where`: the sentence's opening
    in place of "At σ = 0.1"."""
    interval = diff.interval if isinstance(diff, Comparison) else diff
    ci = _percent(interval.confidence) + " CI"
    where = where or f"At {level_name} = {_level(level)}"
    mean, low, high = 100 * interval.mean, 100 * interval.low, 100 * interval.high
    settled = diff.distinguishable if isinstance(diff, Comparison) else interval.excludes_zero
    corrected = ""
    if isinstance(diff, Comparison) and diff.family > 1:
        corrected = (f"; adjusted p = {diff.p_adjusted:.3g}, Benjamini–Hochberg over "
                     f"{diff.family} comparisons")
    if not settled:
        minus = "\N{MINUS SIGN}"
        return (f"{where}, {arm_label} and {reference_label} are not distinguishable "
                f"(difference {_number(mean, minus, signed=True)} points, "
                f"{ci} {_number(low, minus)} to {_number(high, minus)}, {interval.n} seeds"
                f"{corrected}).")
    if mean > 0:
        return (f"{where}, {arm_label} is {mean:.1f} points more accurate than "
                f"{reference_label} ({ci} {low:.1f} to {high:.1f}, {interval.n} seeds"
                f"{corrected}).")
    # worse: report the size of the gap and its interval, both positive
    return (f"{where}, {arm_label} is {-mean:.1f} points less accurate than "
            f"{reference_label} ({ci} {-high:.1f} to {-low:.1f}, {interval.n} seeds"
            f"{corrected}).")


def _p(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3f}" if value >= 0.001 else "<0.001"


def _cells(summary: pd.DataFrame, escape, minus: str) -> list[list[str]]:
    """Per summary row: arm, level, accuracy "mean [low, high]" in %, difference, P(improve),
    p, adjusted p, n."""
    def interval(mean, low, high, signed=False):
        return (f"{_number(100 * mean, minus, signed)} "
                f"[{_number(100 * low, minus)}, {_number(100 * high, minus)}]")

    cells = []
    for row in summary.itertuples(index=False):
        if math.isnan(row.diff):
            diff, p_improve = "reference", ""
        else:
            diff = interval(row.diff, row.diff_low, row.diff_high, signed=True)
            p_improve = f"{row.p_improve:.2f}"
        cells.append([escape(str(row.arm)), escape(_level(row.level, minus)),
                      interval(row.mean, row.low, row.high), diff, p_improve,
                      escape(_p(row.p_value)), escape(_p(row.p_adjusted)), str(row.n)])
    return cells


HEADER = ["Arm", "Level", "Accuracy (%) [CI]", "Difference (points) [CI]", "P(improve)", "p",
          "p (BH)", "Seeds"]


def to_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table (accuracies in %, differences in points)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * 2 + "---:|" * 6]
    lines += ["| " + " | ".join(row) + " |"
              for row in _cells(summary, lambda text: text.replace("|", r"\|"), "-")]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(summary: pd.DataFrame) -> str:
    """The summary as a booktabs tabular (needs \\usepackage{booktabs}); minus signs as $-$."""
    lines = [r"\begin{tabular}{llrrrrrr}", r"\toprule",
             " & ".join(_latex_escape(h) for h in HEADER) + r" \\", r"\midrule"]
    lines += [" & ".join(row) + r" \\" for row in _cells(summary, _latex_escape, "$-$")]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
