"""Gaussian input noise, the same noise for every model (NumPy only: the dashboard imports it).

Noise N(0, sigma^2) is added to the [0, 1] images and not clipped, as in the reference. For a
given seed and draw, test row i always gets the same standard-normal vector z_i, scaled by
sigma: every model evaluated with the same seed sees identical inputs, and the curves over
sigma use common random numbers. z is generated in fixed blocks of NOISE_BLOCK rows, each
from its own seeded generator, so memory stays bounded whatever the test-set size and any
row's noise can be rebuilt alone (`noisy_images`, for the dashboard's image grid).
"""
from __future__ import annotations

import math

import numpy as np

from gradloss.core.validation import check_float, check_int

NOISE_BLOCK = 1000  # rows per noise block; part of the noise definition, do not change lightly


def standard_normal(shape_row: tuple[int, ...], seed: int, draw: int, block: int) -> np.ndarray:
    """z for the NOISE_BLOCK rows of `block`: (NOISE_BLOCK, *shape_row) float32."""
    rng = np.random.default_rng([seed, draw, block])
    return rng.standard_normal((NOISE_BLOCK, *shape_row), dtype=np.float32)


def add_gaussian_noise(x: np.ndarray, sigma: float, *, seed: int, draw: int = 0,
                       offset: int = 0) -> np.ndarray:
    """x + sigma * z for test rows [offset, offset + len(x)); z fixed by (seed, draw, row)."""
    check_float("add_gaussian_noise", "sigma", sigma, 0.0)
    check_int("add_gaussian_noise", "seed", seed, 0, 2**31 - 1)
    out = np.array(x, dtype=np.float32, copy=True)
    if sigma == 0:
        return out
    row = offset
    while row < offset + len(x):
        block, start = divmod(row, NOISE_BLOCK)
        take = min(NOISE_BLOCK - start, offset + len(x) - row)
        z = standard_normal(x.shape[1:], seed, draw, block)[start:start + take]
        out[row - offset:row - offset + take] += sigma * z
        row += take
    return out


def noisy_images(x: np.ndarray, indices, sigma: float, *, seed: int, draw: int = 0) -> np.ndarray:
    """The noisy versions of x[indices] exactly as the sweep fed them to the models (each
    noise block drawn once, however many of the rows fall in it)."""
    check_float("noisy_images", "sigma", sigma, 0.0)
    check_int("noisy_images", "seed", seed, 0, 2**31 - 1)
    indices = np.asarray(indices, dtype=int)
    out = np.array(x[indices], dtype=np.float32, copy=True)
    if sigma == 0:
        return out
    for block in np.unique(indices // NOISE_BLOCK):
        rows = np.nonzero(indices // NOISE_BLOCK == block)[0]
        z = standard_normal(x.shape[1:], seed, draw, int(block))
        out[rows] += sigma * z[indices[rows] % NOISE_BLOCK]
    return out


def blocks(n_rows: int) -> int:
    """Number of noise blocks covering n_rows rows."""
    return math.ceil(n_rows / NOISE_BLOCK)
