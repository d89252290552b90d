"""Intervals over seeds: right values, nominal coverage at small n, paired summaries, reports."""
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from gradloss.core.config import InvalidParameterError
from gradloss.analysis.stats import (Comparison, Interval, adjust, adjust_tables, difference_sentence,
                                     paired_p_value, mean_interval, normalized_auc,
                                     paired_difference, probability_of_improvement, summarize,
                                     summarize_auc, to_latex, to_markdown)

DRAWS = 4000  # samples per coverage check: the standard error of a 95 % coverage is 0.0034


def test_mean_interval_matches_scipy_one_sample_t_test():
    """Check that mean_interval gives the interval of scipy's one-sample t-test."""
    values = [0.81, 0.84, 0.79, 0.86, 0.83]
    for confidence in (0.9, 0.95, 0.99):
        expected = scipy.stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
        got = mean_interval(values, confidence)
        assert (got.low, got.high) == pytest.approx((expected.low, expected.high), rel=1e-12)
        assert got.mean == pytest.approx(np.mean(values)) and got.n == 5


def test_paired_difference_matches_scipy_related_t_test():
    """Check that paired_difference gives the interval of scipy's related-samples t-test."""
    a, b = [0.86, 0.88, 0.83, 0.90], [0.82, 0.86, 0.83, 0.85]
    expected = scipy.stats.ttest_rel(a, b).confidence_interval(0.95)
    got = paired_difference(a, b)
    assert (got.low, got.high) == pytest.approx((expected.low, expected.high), rel=1e-12)
    assert got.mean == pytest.approx(np.mean(np.subtract(a, b)))


def test_zero_variance_collapses_the_interval_to_the_mean():
    """Check that identical seeds give low == high == mean, with no NaN."""
    for value, n in ((0.3, 3), (0.1, 5), (0.7, 10)):
        flat = mean_interval([value] * n)
        assert flat.low == flat.mean == flat.high == pytest.approx(value)
    same_gap = paired_difference([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert (same_gap.low, same_gap.mean, same_gap.high) == (0.0, 0.0, 0.0)
    assert not same_gap.excludes_zero


def test_excludes_zero_only_when_the_interval_misses_zero():
    """Check excludes_zero on intervals above, below and across 0."""
    assert Interval(0.03, 0.01, 0.05, 5).excludes_zero
    assert Interval(-0.03, -0.05, -0.01, 5).excludes_zero
    assert not Interval(0.01, -0.01, 0.03, 5).excludes_zero


def _coverage(intervals, truth) -> float:
    return float(np.mean([i.low <= truth <= i.high for i in intervals]))


@pytest.mark.parametrize("n", [3, 5, 10])
def test_t_intervals_keep_95_percent_coverage_at_small_seed_counts(n):
    """Check that mean_interval and paired_difference cover the true value 93-97 % of the time."""
    rng = np.random.default_rng(n)
    samples = rng.normal(0.85, 0.02, size=(DRAWS, n))
    assert 0.93 <= _coverage([mean_interval(s) for s in samples], 0.85) <= 0.97
    shared = rng.normal(0.0, 0.05, size=(DRAWS, n))  # seed effect common to both arms
    a = 0.88 + shared + rng.normal(0, 0.01, size=(DRAWS, n))
    b = 0.85 + shared + rng.normal(0, 0.01, size=(DRAWS, n))
    assert 0.93 <= _coverage([paired_difference(x, y) for x, y in zip(a, b)], 0.03) <= 0.97


def test_percentile_bootstrap_under_covers_at_five_seeds():
    """Check the reason for Student t: a 95 % percentile bootstrap covers < 90 % at 5 seeds."""
    rng = np.random.default_rng(5)
    samples = rng.normal(0.85, 0.02, size=(DRAWS, 5))
    covered = []
    for chunk in np.array_split(samples, 8):  # (500, 5) at a time keeps memory small
        picks = rng.integers(0, 5, size=(len(chunk), 1000, 5))  # 1000 resamples each
        means = np.take_along_axis(chunk[:, None, :], picks, axis=2).mean(axis=2)
        low, high = np.percentile(means, [2.5, 97.5], axis=1)
        covered.append((low <= 0.85) & (0.85 <= high))
    assert np.concatenate(covered).mean() < 0.90


def test_probability_of_improvement_on_hand_made_cases():
    """Check P(X > Y) + 0.5 P(X = Y): dominance, ties, a counted case and symmetry."""
    assert probability_of_improvement([0.9, 0.8], [0.7, 0.6, 0.5]) == 1.0
    assert probability_of_improvement([0.5, 0.6], [0.7, 0.8]) == 0.0
    assert probability_of_improvement([0.7, 0.7], [0.7, 0.7, 0.7]) == 0.5
    # pairs won by [1, 2, 3, 4] over [2, 5]: 1: 0; 2: a tie (0.5); 3: 1; 4: 1 -> 2.5 of 8
    assert probability_of_improvement([1, 2, 3, 4], [2, 5]) == 2.5 / 8
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=6), rng.normal(size=4)
    assert probability_of_improvement(a, b) + probability_of_improvement(b, a) == pytest.approx(1)


def test_normalized_auc_is_the_mean_height_of_the_curve():
    """Check a constant curve, a straight line, unsorted levels and a single level."""
    assert normalized_auc([0.0, 0.1, 0.3, 0.5], [0.8] * 4) == pytest.approx(0.8)
    assert normalized_auc([0.0, 0.5], [1.0, 0.0]) == pytest.approx(0.5)
    assert normalized_auc([0.5, 0.0, 0.1], [0.2, 0.9, 0.8]) == pytest.approx(
        normalized_auc([0.0, 0.1, 0.5], [0.9, 0.8, 0.2]))
    assert normalized_auc([0.1], [0.7]) == 0.7
    rng = np.random.default_rng(1)
    for _ in range(20):
        value = normalized_auc(np.sort(rng.uniform(0, 1, 5)), rng.uniform(0, 1, 5))
        assert 0.0 <= value <= 1.0


def _per_seed() -> pd.DataFrame:
    """Two arms, seeds 11/12/13, two sigmas; at 0.1 the gradient arm gains 1, 3, 5 points."""
    accuracy = {  # arm -> sigma -> accuracy of seeds 11, 12, 13
        "baseline": {0.0: (0.90, 0.91, 0.89), 0.1: (0.80, 0.84, 0.82)},
        "gradient": {0.0: (0.90, 0.90, 0.89), 0.1: (0.81, 0.87, 0.87)},
    }
    rows = [(arm, seed, sigma, acc) for arm, curves in accuracy.items()
            for sigma, accs in curves.items() for seed, acc in zip((11, 12, 13), accs)]
    frame = pd.DataFrame(rows, columns=["arm", "seed", "sigma", "accuracy"])
    return frame.sample(frac=1.0, random_state=0)  # pairing must follow 'seed', not row order


def _drop(**where) -> pd.DataFrame:
    """_per_seed() without the rows matching every column=value in `where`."""
    frame = _per_seed()
    return frame[~np.logical_and.reduce([frame[c] == v for c, v in where.items()])]


def test_summarize_pairs_arms_by_seed():
    """Check summarize's means, paired differences, p_improve and the reference's NaN columns."""
    summary = summarize(_per_seed(), reference="baseline")
    assert list(summary.columns) == ["arm", "level", "n", "mean", "low", "high", "diff",
                                     "diff_low", "diff_high", "p_improve", "p_value",
                                     "p_adjusted", "family"]
    assert list(zip(summary["arm"], summary["level"])) == [
        ("baseline", 0.0), ("baseline", 0.1), ("gradient", 0.0), ("gradient", 0.1)]
    ref = summary.iloc[1]
    assert ref["mean"] == pytest.approx(0.82) and ref["n"] == 3
    assert summary.loc[summary["arm"] == "baseline", ["diff", "diff_low", "diff_high",
                                                       "p_improve"]].isna().all().all()
    row = summary.iloc[3]
    expected = scipy.stats.ttest_rel([0.81, 0.87, 0.87], [0.80, 0.84, 0.82]).confidence_interval()
    assert row["diff"] == pytest.approx(0.03)
    assert (row["diff_low"], row["diff_high"]) == pytest.approx((expected.low, expected.high))
    assert row["p_improve"] == pytest.approx(probability_of_improvement([0.81, 0.87, 0.87],
                                                                        [0.80, 0.84, 0.82]))
    assert (row["low"], row["high"]) == pytest.approx(
        tuple(scipy.stats.ttest_1samp([0.81, 0.87, 0.87], 0).confidence_interval()))
    assert row["p_value"] == pytest.approx(
        scipy.stats.ttest_rel([0.81, 0.87, 0.87], [0.80, 0.84, 0.82]).pvalue)
    assert row["family"] == 2 and row["p_adjusted"] == pytest.approx(
        scipy.stats.false_discovery_control(summary.p_value.dropna(), method="bh")[1])


def test_the_p_value_agrees_with_the_interval_on_whether_0_is_covered():
    """Check that a difference's paired p-value is below 0.05 exactly when its 95 % interval
    excludes 0 (the same Student t test), over many random pairs of samples."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(2, 8))
        a, b = rng.normal(0.8, 0.02, n), rng.normal(0.8 + rng.normal(0, 0.02), 0.02, n)
        interval = paired_difference(a, b)
        assert (paired_p_value(a, b) < 0.05) == interval.excludes_zero


def test_adjusted_p_values_are_benjamini_hochberg_over_the_whole_family():
    """Check that adjust_tables treats several tables as one family: BH over every p-value,
    NaN (the reference arm) neither adjusted nor counted."""
    first = pd.DataFrame({"p_value": [np.nan, 0.01, 0.04]})
    second = pd.DataFrame({"p_value": [0.03, np.nan, 0.2]})
    a, b = adjust_tables(first, second)
    expected = scipy.stats.false_discovery_control([0.01, 0.04, 0.03, 0.2], method="bh")
    assert a.p_adjusted.tolist()[1:] == pytest.approx(list(expected[:2]))
    assert b.p_adjusted.tolist()[::2] == pytest.approx(list(expected[2:]))
    assert math.isnan(a.p_adjusted[0]) and math.isnan(b.p_adjusted[1])
    assert set(a.family) == set(b.family) == {4}
    np.testing.assert_array_equal(adjust([np.nan]), [np.nan])


def test_a_difference_settled_only_before_correction_is_not_called_ahead():
    """Check that the sentence says "not distinguishable" and names the correction when the raw
    interval excludes 0 but the adjusted p-value does not settle the sign."""
    raw = Interval(0.03, 0.001, 0.059, 5)
    assert raw.excludes_zero
    sentence = difference_sentence("the gradient loss", "the baseline", "σ", 0.1,
                                   Comparison(raw, p_value=0.045, p_adjusted=0.27, family=24))
    assert sentence.startswith("At σ = 0.1, the gradient loss and the baseline are not "
                               "distinguishable (difference +3.0 points")
    assert "adjusted p = 0.27, Benjamini–Hochberg over 24 comparisons" in sentence
    settled = difference_sentence("the gradient loss", "the baseline", "σ", 0.1,
                                  Comparison(raw, p_value=0.001, p_adjusted=0.012, family=24))
    assert "is 3.0 points more accurate than the baseline" in settled


def test_summarize_cuts_intervals_to_what_an_accuracy_can_be():
    """Check that two scattered seeds give a mean interval inside [0, 1] (not up to 109 %) and a
    difference interval inside [-1, 1]; the means, and scipy's bounds inside the cut, unchanged."""
    per_seed = pd.DataFrame({"arm": ["baseline", "baseline", "gradient", "gradient"],
                             "seed": [0, 1, 0, 1], "sigma": 0.1,
                             "accuracy": [0.99, 0.60, 0.05, 0.95]})
    summary = summarize(per_seed, reference="baseline")
    base, grad = summary.iloc[0], summary.iloc[1]
    raw = scipy.stats.ttest_1samp([0.99, 0.60], 0).confidence_interval()
    assert raw.high > 1 and (base["low"], base["high"]) == pytest.approx((max(0.0, raw.low), 1.0))
    assert base["mean"] == pytest.approx(0.795)
    raw_diff = scipy.stats.ttest_rel([0.05, 0.95], [0.99, 0.60]).confidence_interval()
    assert raw_diff.low < -1 and grad["diff_low"] == -1.0 and grad["diff_high"] == pytest.approx(
        min(1.0, raw_diff.high))
    assert grad["low"] == 0.0


def test_summarize_auc_compares_each_seeds_area():
    """Check that summarize_auc summarises one normalised AUC per seed, paired by seed."""
    per_seed = _per_seed()
    summary = summarize_auc(per_seed, reference="baseline")
    assert list(summary["arm"]) == ["baseline", "gradient"]
    assert list(summary["level"]) == ["auc", "auc"]
    auc = {(arm, seed): normalized_auc(c["sigma"], c["accuracy"])
           for (arm, seed), c in per_seed.groupby(["arm", "seed"])}
    gaps = [auc["gradient", s] - auc["baseline", s] for s in (11, 12, 13)]
    assert summary.iloc[1]["diff"] == pytest.approx(np.mean(gaps))
    baseline = [auc["baseline", s] for s in (11, 12, 13)]
    assert summary.iloc[0]["mean"] == pytest.approx(np.mean(baseline))


def test_difference_sentences_name_direction_interval_and_seeds():
    """Check the better, worse and not-distinguishable sentences."""
    assert difference_sentence("the gradient loss", "the baseline", "σ", 0.1,
                               Interval(0.031, 0.012, 0.050, 5)) == (
        "At σ = 0.1, the gradient loss is 3.1 points more accurate than the baseline "
        "(95 % CI 1.2 to 5.0, 5 seeds).")
    assert difference_sentence("the gradient loss", "the baseline", "σ", 0.1,
                               Interval(-0.020, -0.031, -0.009, 5)) == (
        "At σ = 0.1, the gradient loss is 2.0 points less accurate than the baseline "
        "(95 % CI 0.9 to 3.1, 5 seeds).")
    assert difference_sentence("the gradient loss", "the baseline", "σ", 0.1,
                               Interval(0.004, -0.012, 0.020, 3)) == (
        "At σ = 0.1, the gradient loss and the baseline are not distinguishable "
        "(difference +0.4 points, 95 % CI \N{MINUS SIGN}1.2 to 2.0, 3 seeds).")


def test_tables_carry_the_numbers_and_escape_latex():
    """Check that both tables show mean [low, high] in %, the difference, and escape _ and %."""
    summary = summarize(_per_seed().replace({"gradient": "grad_loss"}), reference="baseline")
    row = summary.iloc[3]
    accuracy = f"{100 * row['mean']:.1f} [{100 * row['low']:.1f}, {100 * row['high']:.1f}]"
    diff = f"+{100 * row['diff']:.1f} [{100 * row['diff_low']:.1f}, {100 * row['diff_high']:.1f}]"
    markdown, latex = to_markdown(summary), to_latex(summary)
    for table in (markdown, latex):
        assert accuracy in table and diff.replace("-", "$-$" if table is latex else "-") in table
    assert "| grad_loss | 0.1 |" in markdown and markdown.count("\n") == 2 + len(summary)
    assert r"grad\_loss & 0.1 &" in latex and r"Accuracy (\%)" in latex
    assert r"\toprule" in latex and r"\bottomrule" in latex and "grad_loss" not in latex


@pytest.mark.parametrize("call, message", [
    (lambda: mean_interval([0.9]),
     r"'values' parameter of mean_interval .* an interval needs at least 2 seeds\. Got 1 instead"),
    (lambda: mean_interval([0.9, math.nan]), r"'values' .* finite numbers .* Got \[0\.9, nan\]"),
    (lambda: mean_interval([0.9, 0.8], confidence=1.0),
     r"'confidence' parameter of mean_interval must be a float in the range \(0\.0, 1\.0\)\. "
     r"Got 1\.0"),
    (lambda: paired_difference([0.9, 0.8], [0.9, 0.8], confidence=0),
     r"'confidence' parameter of paired_difference .* Got 0 instead"),
    (lambda: paired_difference([0.9, 0.8], [0.9, 0.8, 0.7]),
     r"'b' parameter of paired_difference must be as long as 'a' .* Got 3 values instead"),
    (lambda: paired_difference([0.9], [0.8]), r"'a' .* at least 2 seeds\. Got 1 instead"),
    (lambda: probability_of_improvement([], [0.8]),
     r"'a' parameter of probability_of_improvement .* at least 1 value\(s\)\. Got 0"),
    (lambda: normalized_auc([0.0, 0.1], [0.9]), r"'accuracies' .* as long as 'levels'"),
    (lambda: normalized_auc([0.0, 0.0], [0.9, 0.8]), r"'levels' .* distinct numbers"),
    (lambda: normalized_auc([0.0, 0.1], [90.0, 80.0]), r"'accuracies' .* \[0\.0, 1\.0\]"),
    (lambda: summarize(_per_seed(), reference="cross_entropy"),
     r"'reference' parameter of summarize must be an arm .* Got 'cross_entropy' instead"),
    (lambda: summarize(_per_seed().drop(columns="seed"), "baseline"), r"missing \['seed'\]"),
    (lambda: summarize(_per_seed().assign(accuracy=math.nan), "baseline"), r"free of NaN"),
    (lambda: summarize(_per_seed(), "baseline", confidence=95), r"'confidence' .* Got 95"),
    (lambda: summarize(pd.concat([_per_seed(), _per_seed().iloc[:1]]), "baseline"),
     r"one row per arm x seed x sigma\. Got several rows for arm '\w+', seed \d+, sigma=0\.\d "),
    (lambda: summarize(_per_seed().query("seed == 11"), "baseline"), r"at least 2 seeds\. Got 1"),
    (lambda: summarize(_drop(arm="gradient", seed=13, sigma=0.1), "baseline"),
     r"same seeds for every arm .* Got arm 'gradient' at sigma=0\.1 lacking seeds \[13\] instead"),
    (lambda: summarize_auc(_drop(arm="baseline", seed=12), "baseline"),
     r"arm 'baseline' at sigma=0\.0 lacking seeds \[12\]; arm 'baseline' at sigma=0\.1"),
])
def test_bad_inputs_are_refused_with_the_parameter_named(call, message):
    """Check each validation error's class and sklearn-style message."""
    with pytest.raises(InvalidParameterError, match=message):
        call()
