"""The robustness sweep: test accuracy of a model at each noise level, and example predictions.

The noise itself is defined in `gaussian` (the same for every model evaluated with one seed);
this module feeds it to a model block by block, so memory stays bounded.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from gradloss.core.config import SweepConfig
from gradloss.perturbations.gaussian import NOISE_BLOCK, blocks, noisy_images, standard_normal


def _predict_classes(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    from gradloss.engines.compiled import predict  # keeps keras out of the dashboard's imports
    return np.argmax(predict(model, x, batch_size), axis=-1)


def accuracy_vs_noise(model, x: np.ndarray, y: np.ndarray, sweep: SweepConfig = SweepConfig(), *,
                      on_progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Test accuracy at each of `sweep.sigmas`: mean and std over `sweep.draws` noise draws.

    y is one-hot (N, K) or integer labels (N,). Returns columns sigma, accuracy, accuracy_std.
    Predictions run NOISE_BLOCK rows at a time, in batches of `sweep.batch_size`. `on_progress(done,
    total)` is called after each block is predicted at one sigma: `done` of `total` such
    predictions (sigma 0 is predicted once, not once per draw).
    """
    labels = np.argmax(y, -1) if np.ndim(y) == 2 else np.asarray(y)
    if len(labels) != len(x) or len(x) == 0:
        raise ValueError(f"x and y must hold the same, non-zero number of rows. "
                         f"Got {len(x)} and {len(labels)} instead.")
    correct = np.zeros((len(sweep.sigmas), sweep.draws), dtype=np.int64)
    clean = None
    noisy = sum(1 for s in sweep.sigmas if s != 0)
    total, done = blocks(len(x)) * (noisy * sweep.draws + (len(sweep.sigmas) - noisy)), 0
    for draw in range(sweep.draws):
        for first in range(0, len(x), NOISE_BLOCK):
            xb, yb = x[first:first + NOISE_BLOCK], labels[first:first + NOISE_BLOCK]
            z = standard_normal(x.shape[1:], sweep.seed, draw, first // NOISE_BLOCK)[:len(xb)]
            for j, sigma in enumerate(sweep.sigmas):
                if sigma == 0 and clean is not None:
                    correct[j, draw] = clean  # noiseless: every draw is the same
                    continue
                pred = _predict_classes(model, (xb + sigma * z).astype(np.float32), sweep.batch_size)
                correct[j, draw] += int(np.sum(pred == yb))
                done += 1
                if on_progress:
                    on_progress(done, total)
        if 0.0 in sweep.sigmas and clean is None:
            clean = correct[sweep.sigmas.index(0.0), draw]
    acc = correct / len(x)
    return pd.DataFrame({"sigma": sweep.sigmas, "accuracy": acc.mean(axis=1),
                         "accuracy_std": acc.std(axis=1)})


def example_indices(y: np.ndarray, k: int = 12, seed: int = 0) -> np.ndarray:
    """k fixed test rows to show, spread over the classes (seeded)."""
    labels = np.argmax(y, -1) if np.ndim(y) == 2 else np.asarray(y)
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    picks = [pool[i // len(pools)] for i, pool in
             ((i, pools[i % len(pools)]) for i in range(k)) if i // len(pools) < len(pool)]
    return np.array(sorted(int(i) for i in picks))


def predict_examples(model, x: np.ndarray, y: np.ndarray, indices,
                     sweep: SweepConfig = SweepConfig()) -> pd.DataFrame:
    """Predictions on the noisy test rows `indices` (draw 0): sigma, index, label, prediction, confidence."""
    from gradloss.engines.compiled import predict

    labels = np.argmax(y, -1) if np.ndim(y) == 2 else np.asarray(y)
    frames = []
    for sigma in sweep.sigmas:
        probs = predict(model, noisy_images(x, indices, sigma, seed=sweep.seed))
        frames.append(pd.DataFrame({
            "sigma": sigma, "index": np.asarray(indices), "label": labels[np.asarray(indices)],
            "prediction": probs.argmax(-1), "confidence": probs.max(-1)}))
    return pd.concat(frames, ignore_index=True)
