"""Certified accuracy by randomized smoothing (Cohen, Rosenfeld & Kolter 2019, "Certified
Adversarial Robustness via Randomized Smoothing", Algorithm CERTIFY).

The smoothed classifier g(x) predicts the class the model most often predicts on x + N(0, σ²I).
For one test image, CERTIFY draws `selection` noisy copies to pick the class A, then `samples`
fresh copies to count how often the model predicts A; p_A is the one-sided Clopper–Pearson lower
bound of that frequency at level 1 - alpha (SciPy's exact binomial interval). If p_A >= 1/2, g's
prediction A is certified within the L2 radius σ Φ⁻¹(p_A): no perturbation of that size can
change it, except with probability alpha over the noise. Otherwise the image abstains.

Certified accuracy at radius r: the share of images whose certified prediction is right with a
radius of at least r. The noise is not clipped (like the sweep's), and it is drawn per image from
`np.random.default_rng([seed, STREAM, row])`, so a row's certificate repeats and does not depend
on the other rows. The noisy copies go through the model `batch` at a time across images (ten
images' 100 selection draws in one call of 1000), so small counts
still fill a batch; NumPy and SciPy otherwise.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.stats

from gradloss.core.validation import check_float, check_int

STREAM = 2000  # apart from the Gaussian sweep's draws (0, 1, ...) and the corruptions' (1000+)
ABSTAIN = -1


def _counts(predict, x: np.ndarray, n: int, sigma: float, rngs: list, num_classes: int,
            batch: int, on_rows: Callable[[int], None] | None = None) -> np.ndarray:
    """(N, K): how often the model predicts each class on n noisy copies of each image of x.

    The N * n copies go through `predict` `batch` at a time, across images (image i's copies
    are drawn in order from rngs[i], so the chunking never changes them); on_rows(done)."""
    counts = np.zeros((len(x), num_classes), dtype=np.int64)
    total = len(x) * n
    for first in range(0, total, batch):
        last = min(first + batch, total)
        owners, parts = [], []
        for i in range(first // n, (last - 1) // n + 1):  # the images this chunk holds copies of
            k = min(last, (i + 1) * n) - max(first, i * n)
            parts.append(x[i][None] + sigma * rngs[i].standard_normal((k, *x.shape[1:]),
                                                                      dtype=np.float32))
            owners.append(np.full(k, i))
        classes = np.argmax(predict(np.concatenate(parts)), axis=-1)
        np.add.at(counts, (np.concatenate(owners), classes), 1)
        if on_rows:
            on_rows(last)
    return counts


def lower_bound(count: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper–Pearson lower bound of a binomial proportion count / n."""
    if count == 0:
        return 0.0
    interval = scipy.stats.binomtest(int(count), int(n)).proportion_ci(
        confidence_level=1 - 2 * alpha, method="exact")  # two-sided 1-2a: its low is one-sided 1-a
    return float(interval.low)


def certify(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, sigma: float, *,
            selection: int = 100, samples: int = 1000, alpha: float = 0.001, seed: int = 0,
            rows=None, batch: int = 1000,
            on_progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CERTIFY every image of x (N, H, W, C): (predicted class (N,), ABSTAIN where it abstains;
    certified L2 radius (N,), 0 where it abstains).

    `predict` maps images (B, H, W, C) to class probabilities (B, K). `rows`: each image's row
    in the test set (default 0..N-1), which seeds its noise. on_progress(copies predicted,
    N * (selection + samples))."""
    check_float("certify", "sigma", sigma, 0.0, low_open=True)
    check_int("certify", "selection", selection, 1)
    check_int("certify", "samples", samples, 1)
    check_float("certify", "alpha", alpha, 0.0, 0.5, low_open=True)
    x = np.asarray(x, dtype=np.float32)
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    num_classes = int(np.shape(predict(x[:1]))[-1])
    rngs = [np.random.default_rng([seed, STREAM, int(row)]) for row in rows]
    total = len(x) * (selection + samples)  # noisy copies predicted, for on_progress

    def progress(offset: int):
        return on_progress and (lambda done: on_progress(offset + done, total))

    chosen = np.argmax(_counts(predict, x, selection, sigma, rngs, num_classes, batch,
                               progress(0)), axis=-1)                                # (N,)
    count = _counts(predict, x, samples, sigma, rngs, num_classes, batch,
                    progress(len(x) * selection))[np.arange(len(x)), chosen]
    p_lower = np.array([lower_bound(c, samples, alpha) for c in count])
    certified = p_lower >= 0.5
    predictions = np.where(certified, chosen, ABSTAIN)
    radii = np.where(certified, sigma * scipy.stats.norm.ppf(np.where(certified, p_lower, 0.5)),
                     0.0)
    return predictions, radii


def certified_accuracy(predictions: np.ndarray, radii: np.ndarray, labels: np.ndarray,
                       at) -> pd.DataFrame:
    """Certified accuracy at each radius of `at`: columns radius, accuracy."""
    labels = np.argmax(labels, -1) if np.ndim(labels) == 2 else np.asarray(labels)
    right = (np.asarray(predictions) == labels)
    at = tuple(float(r) for r in at)
    return pd.DataFrame({"radius": at,
                         "accuracy": [float(np.mean(right & (np.asarray(radii) >= r)))
                                      for r in at]})
