"""Accuracy under Gaussian input noise, the same noise for every model.

Noise N(0, sigma^2) is added to the [0, 1] images and not clipped, as in the reference. For a
given seed and draw, test row i always gets the same standard-normal vector z_i, scaled by
sigma: every model evaluated with the same seed sees identical inputs, and the curves over
sigma use common random numbers. z is generated in fixed blocks of NOISE_BLOCK rows, each
from its own seeded generator, so memory stays bounded whatever the test-set size and any
row's noise can be rebuilt alone (`noisy_images`, for the dashboard's image grid).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from gradloss.config import SweepConfig

NOISE_BLOCK = 1000  # rows per noise block; part of the noise definition, do not change lightly


def _standard_normal(shape_row: tuple[int, ...], seed: int, draw: int, block: int) -> np.ndarray:
    rng = np.random.default_rng([seed, draw, block])
    return rng.standard_normal((NOISE_BLOCK, *shape_row), dtype=np.float32)


def add_gaussian_noise(x: np.ndarray, sigma: float, *, seed: int, draw: int = 0,
                       offset: int = 0) -> np.ndarray:
    """x + sigma * z for test rows [offset, offset + len(x)); z fixed by (seed, draw, row)."""
    SweepConfig(sigmas=(sigma,), seed=seed)  # validates sigma and seed
    out = np.array(x, dtype=np.float32, copy=True)
    if sigma == 0:
        return out
    row = offset
    while row < offset + len(x):
        block, start = divmod(row, NOISE_BLOCK)
        take = min(NOISE_BLOCK - start, offset + len(x) - row)
        z = _standard_normal(x.shape[1:], seed, draw, block)[start:start + take]
        out[row - offset:row - offset + take] += sigma * z
        row += take
    return out


def noisy_images(x: np.ndarray, indices, sigma: float, *, seed: int, draw: int = 0) -> np.ndarray:
    """The noisy versions of x[indices] exactly as the sweep fed them to the models."""
    return np.stack([add_gaussian_noise(x[i:i + 1], sigma, seed=seed, draw=draw, offset=int(i))[0]
                     for i in np.asarray(indices)])


def _predict_classes(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    from gradloss.models import predict  # keeps keras out of the dashboard's imports
    return np.argmax(predict(model, x, batch_size), axis=-1)


def accuracy_vs_noise(model, x: np.ndarray, y: np.ndarray, sigmas=SweepConfig().sigmas,
                      draws: int = 3, seed: int = 0, batch_size: int = 500, *,
                      on_progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Test accuracy at each sigma: mean and std over `draws` noise draws.

    y is one-hot (N, K) or integer labels (N,). Returns columns sigma, accuracy, accuracy_std.
    Predictions run NOISE_BLOCK rows at a time, in batches of `batch_size`. `on_progress(done,
    total)` is called after each block is predicted at one sigma: `done` of `total` such
    predictions (sigma 0 is predicted once, not once per draw).
    """
    cfg = SweepConfig(sigmas=sigmas, draws=draws, seed=seed, batch_size=batch_size)
    labels = np.argmax(y, -1) if np.ndim(y) == 2 else np.asarray(y)
    if len(labels) != len(x) or len(x) == 0:
        raise ValueError(f"x and y must hold the same, non-zero number of rows. "
                         f"Got {len(x)} and {len(labels)} instead.")
    correct = np.zeros((len(cfg.sigmas), cfg.draws), dtype=np.int64)
    clean = None
    blocks = -(-len(x) // NOISE_BLOCK)
    noisy = sum(1 for s in cfg.sigmas if s != 0)
    total, done = blocks * (noisy * cfg.draws + (len(cfg.sigmas) - noisy)), 0
    for draw in range(cfg.draws):
        for first in range(0, len(x), NOISE_BLOCK):
            xb, yb = x[first:first + NOISE_BLOCK], labels[first:first + NOISE_BLOCK]
            z = _standard_normal(x.shape[1:], cfg.seed, draw, first // NOISE_BLOCK)[:len(xb)]
            for j, sigma in enumerate(cfg.sigmas):
                if sigma == 0 and clean is not None:
                    correct[j, draw] = clean  # noiseless: every draw is the same
                    continue
                pred = _predict_classes(model, (xb + sigma * z).astype(np.float32), cfg.batch_size)
                correct[j, draw] += int(np.sum(pred == yb))
                done += 1
                if on_progress:
                    on_progress(done, total)
        if 0.0 in cfg.sigmas and clean is None:
            clean = correct[cfg.sigmas.index(0.0), draw]
    acc = correct / len(x)
    return pd.DataFrame({"sigma": cfg.sigmas, "accuracy": acc.mean(axis=1),
                         "accuracy_std": acc.std(axis=1)})


def example_indices(y: np.ndarray, k: int = 12, seed: int = 0) -> np.ndarray:
    """k fixed test rows to show, spread over the classes (seeded)."""
    labels = np.argmax(y, -1) if np.ndim(y) == 2 else np.asarray(y)
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    picks = [pool[i // len(pools)] for i, pool in
             ((i, pools[i % len(pools)]) for i in range(k)) if i // len(pools) < len(pool)]
    return np.array(sorted(int(i) for i in picks))


def predict_examples(model, x: np.ndarray, y: np.ndarray, indices, sigmas=SweepConfig().sigmas,
                     seed: int = 0) -> pd.DataFrame:
    """Predictions on the noisy test rows `indices` (draw 0): sigma, index, label, prediction, confidence."""
    from gradloss.models import predict

    labels = np.argmax(y, -1) if np.ndim(y) == 2 else np.asarray(y)
    frames = []
    for sigma in SweepConfig(sigmas=sigmas, seed=seed).sigmas:
        probs = predict(model, noisy_images(x, indices, sigma, seed=seed))
        frames.append(pd.DataFrame({
            "sigma": sigma, "index": np.asarray(indices), "label": labels[np.asarray(indices)],
            "prediction": probs.argmax(-1), "confidence": probs.max(-1)}))
    return pd.concat(frames, ignore_index=True)
