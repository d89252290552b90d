"""The Square Attack under an L-infinity budget eps, batched over images (Andriushchenko, Croce,
Flammarion & Hein 2020, "Square Attack: a query-efficient black-box adversarial attack via
random search").

A random search that never reads a gradient. Each image starts from vertical stripes of +-eps;
then every iteration proposes, for each image still classified right, a square window set to
x +- eps (one sign per channel) and keeps it when it lowers the margin p_label - (the second
largest probability). The window covers a fraction p of the pixels, on the schedule of the
paper, as ART's `SquareAttack` writes it (`_get_percentage_of_elements`): p_init = 0.8 at first,
halved at 0.1 %, 0.5 %, 2 %, 5 %, 10 %, 20 %, 40 %, 60 % and 80 % of the iterations; its side
is round(sqrt(p H W)) (at least 1, below H), its corner uniform in [0, H - side) x [0, W - side)
as in both implementations. A restart starts the images still unbroken again from the clean
image plus new stripes (ART's restarts).

As in the paper's implementation, and unlike ART (which draws one window for all images of an
iteration), every image draws its own window; and only the proposals are sent to the model:
the margin and class of an image's current version are kept from the query that produced it,
where ART queries the current images twice more per iteration. Random numbers come per test
row from `np.random.default_rng([seed, SQUARE_STREAM, restart, row])`, so an image's attack
does not depend on the images attacked with it. NumPy only; `probabilities` is the model.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import numpy as np

SQUARE_STREAM = 3001  # apart from the sweep's draws, the corruptions (1000+), certify (2000), PGD
P_INIT = 0.8          # ART's default, which gradloss has always used
FRACTIONS = (0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8)  # of the iterations: p halves


def window_side(iteration: int, iterations: int, height: int, width: int,
                p_init: float = P_INIT) -> int:
    """The side of the squares proposed in `iteration` (0-based) of `iterations`."""
    p = p_init / 2 ** bisect.bisect_left(FRACTIONS, iteration / iterations)
    return min(max(int(round(math.sqrt(p * height * width))), 1), height - 1)


def margins(p: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p_label - the second largest probability, per row of p (N, K): > 0 where it is right."""
    return p[np.arange(len(p)), labels] - np.partition(p, -2, axis=1)[:, -2]


def _draws(seed: int, restart: int, rows: np.ndarray, iterations: int, width: int,
           channels: int):
    """Each row's random numbers for one restart: stripe signs (N, 1, W, C), corner fractions
    (N, iterations, 2) and window signs (N, iterations, C)."""
    stripes, corners, signs = [], [], []
    for row in rows:
        rng = np.random.default_rng([seed, SQUARE_STREAM, restart, int(row)])
        stripes.append(rng.integers(0, 2, (1, width, channels)) * 2 - 1)
        corners.append(rng.random((iterations, 2)))
        signs.append(rng.integers(0, 2, (iterations, channels)) * 2 - 1)
    return np.stack(stripes), np.stack(corners), np.stack(signs)


def square_attack(probabilities: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                  labels: np.ndarray, eps: float, *, iterations: int, restarts: int = 1,
                  seed: int = 0, rows: np.ndarray | None = None,
                  p_init: float = P_INIT) -> np.ndarray:
    """Adversarial versions of x (N, H, W, C) in [0, 1], within eps of it.

    `probabilities` maps images (B, H, W, C) to class probabilities (B, K); `labels` (N,) are
    the true classes; `rows` each image's test row (default 0..N-1), which seeds its draws."""
    x = np.asarray(x, dtype=np.float32)
    n, height, width, channels = x.shape
    rows = np.arange(n) if rows is None else np.asarray(rows)
    eps = np.float32(eps)
    p = probabilities(x)
    clean_margin = margins(p, labels)
    right = p.argmax(-1) == labels                 # the current version is classified right
    margin = clean_margin.copy()                   # ... with this margin
    x_adv = x.copy()
    ar_h, ar_w = np.arange(height), np.arange(width)
    for restart in range(restarts):
        todo = np.flatnonzero(right)               # the images this restart attacks
        if not len(todo):
            break
        stripes, corners, signs = _draws(seed, restart, rows[todo], iterations, width, channels)
        candidate = np.clip(x[todo] + eps * stripes, 0, 1).astype(np.float32)
        p = probabilities(candidate)
        new = margins(p, labels[todo])
        better = new < clean_margin[todo]          # else start again from the clean image
        x_adv[todo] = np.where(better[:, None, None, None], candidate, x[todo])
        margin[todo] = np.where(better, new, clean_margin[todo])
        right[todo] = np.where(better, p.argmax(-1) == labels[todo], True)
        for it in range(iterations):
            live = np.flatnonzero(right[todo])     # positions in todo still unbroken
            if not len(live):
                break
            i = todo[live]
            side = window_side(it, iterations, height, width, p_init)
            top = np.floor(corners[live, it, 0] * (height - side)).astype(int)[:, None]
            left = np.floor(corners[live, it, 1] * (width - side)).astype(int)[:, None]
            window = (((ar_h >= top) & (ar_h < top + side))[:, :, None]
                      & ((ar_w >= left) & (ar_w < left + side))[:, None, :])      # (L, H, W)
            delta = 2 * eps * window[..., None] * signs[live, it][:, None, None, :]
            candidate = np.clip(np.clip(x_adv[i] + delta, x[i] - eps, x[i] + eps), 0, 1
                                ).astype(np.float32)
            p = probabilities(candidate)
            new = margins(p, labels[i])
            better = new < margin[i]
            kept = i[better]
            x_adv[kept], margin[kept] = candidate[better], new[better]
            right[kept] = p[better].argmax(-1) == labels[kept]
    return x_adv
