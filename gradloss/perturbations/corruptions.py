"""Common corruptions at five severities, after MNIST-C and ImageNet-C, for any image shape.

Images are float32 (N, H, W, C) in [0, 1], any H x W, C = 1 (grey) or 3 (colour); every
corruption returns the same shape and dtype, clipped to [0, 1]. Colour images are corrupted
channel by channel with the same parameters (contrast about each channel's mean, as IN-C does;
brightness added to every channel, where IN-C adds it to the HSV value). The pixel parameters
were chosen for 28x28 and suit 32x32 CIFAR-like images as CIFAR-C's do.

References: Hendrycks & Dietterich 2019, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations" (ImageNet-C, constants in hendrycks/robustness ImageNet-C/imagenet_c/imagenet_c/corruptions.py, "IN-C" below, and
ImageNet-C/create_c/make_cifar_c.py for 32x32 CIFAR-10-C, "CIFAR-C"); Mu & Gilmer 2019,
"MNIST-C: A Robustness Benchmark for Computer Vision".

SEVERITY_TABLE holds every parameter: name -> (five values, what a value means, source).

    shot_noise     (60, 25, 12, 5, 3)          Poisson photon count per unit intensity   IN-C
    impulse_noise  (.03, .06, .09, .17, .27)   fraction of pixels set to 0 or 1 (half each) IN-C
    speckle_noise  (.15, .2, .35, .45, .6)     std of multiplicative noise x + x*c*z      IN-C
    gaussian_blur  (.5, .75, 1, 1.5, 2)        Gaussian sigma in pixels                   28x28
    motion_blur    (3, 5, 7, 9, 11)            length in pixels of a horizontal line kernel 28x28
    contrast       (.4, .3, .2, .1, .05)       factor on the deviation from the image mean IN-C
    brightness     (.1, .2, .3, .4, .5)        added to every pixel (HSV value = grey level) IN-C
    pixelate       (2, 3, 4, 5, 6)             side of the constant k x k blocks          28x28
    rotate         (10, 20, 30, 40, 50)        degrees, counter-clockwise about the centre 28x28
    shear          (.1, .2, .3, .4, .5)        horizontal shift per row, top to the right  28x28

Where ImageNet-C draws a random direction (motion blur's angle) the transform here is fixed, so
only the three noises are random. Their random numbers for test row i depend only on (seed,
corruption, row), not on the severity (common random numbers: a pixel hit at one severity is
hit at every higher one), and are drawn in fixed blocks of BLOCK rows from
`np.random.default_rng([seed, STREAM + index in CORRUPTIONS, block])`, as the Gaussian noise
is, so memory stays bounded and any row can be rebuilt alone with `offset`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from gradloss.core.evaluation import CORRUPTIONS, SEVERITIES
from gradloss.core.validation import check_choice, check_int


class Severities(NamedTuple):
    params: tuple  # the parameter at severity 1..5
    meaning: str   # what the parameter is
    source: str    # where the values come from


IN_C = "ImageNet-C corruptions.py"
CHOSEN = "chosen for 28x28"
SEVERITY_TABLE = {
    "shot_noise": Severities((60, 25, 12, 5, 3), "Poisson counts per unit intensity", IN_C),
    "impulse_noise": Severities((.03, .06, .09, .17, .27),
                                "fraction of pixels set to 0 or 1, half each", IN_C),
    "speckle_noise": Severities((.15, .2, .35, .45, .6), "std c of x + x * c * N(0, 1)", IN_C),
    "gaussian_blur": Severities(
        (.5, .75, 1.0, 1.5, 2.0), "Gaussian sigma in pixels",
        CHOSEN + ": CIFAR-C's (.4 .. 1) extended, as 2-3 pixel strokes survive sigma 1"),
    "motion_blur": Severities(
        (3, 5, 7, 9, 11), "length in pixels of a horizontal uniform line kernel",
        CHOSEN + ": CIFAR-C blurs along a random angle with sigma 1 .. 2.5 pixels"),
    "contrast": Severities((.4, .3, .2, .1, .05),
                           "c of (x - image mean) * c + image mean", IN_C),
    "brightness": Severities((.1, .2, .3, .4, .5),
                             "added to every pixel (IN-C adds it to the HSV value)", IN_C),
    "pixelate": Severities(
        (2, 3, 4, 5, 6), "side k of the k x k blocks replaced by their mean",
        CHOSEN + ": IN-C's size factors .6 .. .25 are blocks of 1.7 .. 4 pixels"),
    "rotate": Severities((10, 20, 30, 40, 50),
                         "degrees counter-clockwise about the centre, bilinear", CHOSEN),
    "shear": Severities((.1, .2, .3, .4, .5),
                        "pixels of horizontal shift per row from the centre, top to the right",
                        CHOSEN),
}
assert tuple(SEVERITY_TABLE) == CORRUPTIONS  # the index of a name seeds its noise
BLOCK = 1000     # rows per random block; part of the noise definition, do not change lightly
STREAM = 1000    # added to the corruption index, apart from the Gaussian noise's draws 0, 1, ...


class _Noise:
    """Random numbers for some rows of one block: always drawn for the whole block, then
    sliced, so a row's numbers do not depend on which other rows are corrupted with it."""

    def __init__(self, seed: int, name: str, block: int, rows: slice, row_shape: tuple):
        self._rng = np.random.default_rng([seed, STREAM + CORRUPTIONS.index(name), block])
        self._rows, self._shape = rows, (BLOCK, *row_shape)

    def uniform(self) -> np.ndarray:
        return self._rng.random(self._shape, dtype=np.float32)[self._rows]

    def normal(self) -> np.ndarray:
        return self._rng.standard_normal(self._shape, dtype=np.float32)[self._rows]


def _shot(x, c, noise):
    u = noise.uniform()
    counts = np.zeros_like(x)
    lit = x > 0  # Poisson(0) is 0: skip the slow inverse CDF on the black background
    counts[lit] = stats.poisson.ppf(u[lit], x[lit] * c)  # inverse CDF: same u, same row
    return counts / c


def _impulse(x, c, noise):
    hit, salt = noise.uniform() < c, noise.uniform() < 0.5
    return np.where(hit, salt.astype(np.float32), x)


def _speckle(x, c, noise):
    return x + x * c * noise.normal()


def _gaussian_blur(x, c, noise):
    return ndimage.gaussian_filter(x, sigma=(0, c, c, 0), mode="nearest")


def _motion_blur(x, c, noise):
    return ndimage.uniform_filter1d(x, size=c, axis=2, mode="nearest")  # along the width


def _contrast(x, c, noise):
    mean = x.mean(axis=(1, 2), keepdims=True)  # per image and channel
    return (x - mean) * c + mean


def _brightness(x, c, noise):
    return x + c


def _pixelate(x, c, noise):
    for axis in (1, 2):  # block means along rows then columns: the mean of each k x k block
        starts = np.arange(0, x.shape[axis], c)
        sizes = np.diff(np.append(starts, x.shape[axis]))  # the last block may be partial
        shape = [1] * x.ndim
        shape[axis] = -1
        means = np.add.reduceat(x, starts, axis=axis) / sizes.reshape(shape)
        x = np.repeat(means, sizes, axis=axis)
    return x


def _rotate(x, c, noise):
    return ndimage.rotate(x, c, axes=(1, 2), reshape=False, order=1, mode="constant")


def _shear(x, c, noise):
    matrix = np.eye(4)
    matrix[2, 1] = c  # input column = output column + c * (row - centre): top moves right
    offset = np.array([0, 0, -c * (x.shape[1] - 1) / 2, 0])
    return ndimage.affine_transform(x, matrix, offset, order=1, mode="constant")


_APPLY = {"shot_noise": _shot, "impulse_noise": _impulse, "speckle_noise": _speckle,
          "gaussian_blur": _gaussian_blur, "motion_blur": _motion_blur,
          "contrast": _contrast, "brightness": _brightness, "pixelate": _pixelate,
          "rotate": _rotate, "shear": _shear}


def corrupt(x: np.ndarray, name: str, severity: int, *, seed: int = 0,
            offset: int = 0) -> np.ndarray:
    """Test rows [offset, offset + len(x)) of images x (N, H, W, C) corrupted by `name`.

    The result is float32 in [0, 1], shaped like x; corrupt(x[i:i + 1], ..., offset=i) equals
    corrupt(x, ...)[i] whatever the corruption.
    """
    check_choice("corrupt", "name", name, CORRUPTIONS)
    check_int("corrupt", "severity", severity, 1, 5)
    check_int("corrupt", "seed", seed, 0, 2**31 - 1)
    check_int("corrupt", "offset", offset, 0)
    if np.ndim(x) != 4:
        raise ValueError(f"The 'x' parameter of corrupt must be an array of shape "
                         f"(N, H, W, C). Got shape {np.shape(x)} instead.")
    c, apply = SEVERITY_TABLE[name].params[severity - 1], _APPLY[name]
    out = np.empty(np.shape(x), dtype=np.float32)
    row = offset
    while row < offset + len(x):
        block, start = divmod(row, BLOCK)
        take = min(BLOCK - start, offset + len(x) - row)
        here = slice(row - offset, row - offset + take)
        noise = _Noise(seed, name, block, slice(start, start + take), out.shape[1:])
        out[here] = np.clip(apply(np.asarray(x[here], dtype=np.float32), c, noise), 0, 1)
        row += take
    return out


def corruption_accuracy(model_predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                        y: np.ndarray, names=CORRUPTIONS, severities=SEVERITIES, seed: int = 0,
                        batch_size: int = 1000, *,
                        on_progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Accuracy on x under each corruption and severity: columns perturbation, severity, accuracy.

    `model_predict` maps images (B, H, W, C) to class probabilities (B, K); it is called on at
    most `batch_size` rows. y is one-hot (N, K) or integer labels (N,). The test set is
    corrupted BLOCK rows at a time; `on_progress(done, total)` is called after each block is
    predicted under one (corruption, severity).
    """
    names, severities = tuple(names), tuple(severities)
    for name in names:
        check_choice("corruption_accuracy", "names", name, CORRUPTIONS)
    for severity in severities:
        check_int("corruption_accuracy", "severities", severity, 1, 5)
    check_int("corruption_accuracy", "batch_size", batch_size, 1)
    labels = np.argmax(y, -1) if np.ndim(y) == 2 else np.asarray(y)
    if len(labels) != len(x) or len(x) == 0:
        raise ValueError(f"x and y must hold the same, non-zero number of rows. "
                         f"Got {len(x)} and {len(labels)} instead.")
    correct = np.zeros((len(names), len(severities)), dtype=np.int64)
    total, done = -(-len(x) // BLOCK) * len(names) * len(severities), 0
    for first in range(0, len(x), BLOCK):
        xb, yb = x[first:first + BLOCK], labels[first:first + BLOCK]
        for i, name in enumerate(names):
            for j, severity in enumerate(severities):
                xc = corrupt(xb, name, severity, seed=seed, offset=first)
                pred = np.concatenate([np.argmax(model_predict(xc[k:k + batch_size]), axis=-1)
                                       for k in range(0, len(xc), batch_size)])
                correct[i, j] += int(np.sum(pred == yb))
                done += 1
                if on_progress:
                    on_progress(done, total)
    return pd.DataFrame({"perturbation": np.repeat(names, len(severities)),
                         "severity": np.tile(severities, len(names)),
                         "accuracy": (correct / len(x)).ravel()})
