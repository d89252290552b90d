"""Readers of the built-in datasets' files, in the formats Keras caches them, and the digits.

mnist: mnist.npz (NumPy, read without pickle). cifar10 and cifar100: the official Python
"pickle" batches; they are read through an unpickler that builds NumPy arrays, lists, dicts and
strings only (as Keras's own reader does), so a doctored cache file cannot run code. digits:
scikit-learn's bundled 8x8 digits resized to 28x28, so it works offline. Each returns
((x_train, y_train), (x_test, y_test)) with uint8 or [0, 1] float images.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from gradloss.core.errors import DataError

SIDE = 28
CIFAR10_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR100_FILES = ("train", "test")
_NUMPY_GLOBALS = {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
                  for name in ("_reconstruct", "scalar")}
_NUMPY_GLOBALS |= {("numpy", "ndarray"), ("numpy", "dtype")}


class _ArraysOnly(pickle.Unpickler):
    """Unpickles NumPy arrays and plain containers; any other class is refused."""

    def find_class(self, module, name):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only NumPy arrays")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = _ArraysOnly(f, encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as exc:
        raise DataError(f"The CIFAR file {path} cannot be read ({exc}); delete it so that it is "
                        "downloaded again, or replace it with the official file.") from None
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def _cifar_images(data) -> np.ndarray:
    return np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def read_mnist(folder: Path):
    """mnist.npz in `folder`."""
    path = folder / "mnist.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise DataError(f"The MNIST file {path} cannot be read ({exc}); delete it so that Keras "
                        "downloads it again, or replace it with the official mnist.npz.") from None


def read_cifar10(folder: Path):
    """The five training batches and the test batch of cifar-10-batches-py in `folder`."""
    parts = [_unpickle(folder / name) for name in CIFAR10_BATCHES]
    x = [_cifar_images(p["data"]) for p in parts]
    y = [np.asarray(p["labels"], dtype=np.uint8) for p in parts]
    return (np.concatenate(x[:-1]), np.concatenate(y[:-1])), (x[-1], y[-1])


def read_cifar100(folder: Path):
    """train and test of cifar-100-python in `folder`, with the 100 fine labels."""
    train, test = (_unpickle(folder / name) for name in CIFAR100_FILES)
    return ((_cifar_images(train["data"]), np.asarray(train["fine_labels"], np.uint8)),
            (_cifar_images(test["data"]), np.asarray(test["fine_labels"], np.uint8)))


def cifar100_names(folder: Path | None) -> tuple[str, ...]:
    """The fine label names from cifar-100-python/meta, or "0".."99" without it."""
    if folder is not None and (folder / "meta").is_file():
        names = _unpickle(folder / "meta").get("fine_label_names")
        if names and len(names) == 100:
            return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return tuple(str(i) for i in range(100))


def read_digits(_folder=None):
    """scikit-learn's 1797 8x8 digits, bilinearly resized to 28x28, split 80/20 (fixed seed)."""
    from scipy.ndimage import zoom  # scipy and sklearn are slow imports: only when asked for
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    small = digits.images / 16.0  # (1797, 8, 8); pixel values are 0..16
    images = np.clip(zoom(small, (1, SIDE / 8, SIDE / 8), order=1), 0.0, 1.0)  # (1797, 28, 28)
    x_train, x_test, y_train, y_test = train_test_split(
        images.astype(np.float32), digits.target, test_size=0.2, stratify=digits.target,
        random_state=0)  # fixed: every run sees the same 1437/360 split
    return (x_train, y_train), (x_test, y_test)
