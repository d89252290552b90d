"""Datasets by name: float32 images (N, 28, 28, 1) in [0, 1] and one-hot labels (N, 10).

"fashion_mnist" is read from the four official IDX .gz files, looked for in this order: the
`data_dir` argument, $GRADLOSS_DATA_DIR, the Keras cache ($KERAS_HOME or ~/.keras, then
datasets/fashion-mnist/). A configured folder that lacks the files is an error; only with
nothing configured and nothing cached does Keras download them. "digits" is scikit-learn's
bundled 8x8 digits resized to 28x28, so it works offline. A chosen folder is checked cheaply
where a run is planned or submitted (`submission_data_dir`); `fashion_files` reads and checks
the files.

keras/tensorflow are imported only for that download: the dashboard imports this module.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradloss.core.config import DATASETS
from gradloss.core.validation import check_choice, check_int
from gradloss.core.errors import DataError, DataFolderError
from gradloss.data.fashion_files import (ENV_VAR, FASHION_FILES, OFFICIAL_URL, SIDE,
                                         check_fashion_folder, missing_files, read_pair,
                                         require_files)

logger = logging.getLogger(__name__)

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGITS_CLASSES = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class Dataset:
    """A train/test split ready for a model."""

    name: str
    x_train: np.ndarray  # (N, 28, 28, 1) float32 in [0, 1]
    y_train: np.ndarray  # (N, 10) float32 one-hot
    x_test: np.ndarray   # (M, 28, 28, 1) float32 in [0, 1]
    y_test: np.ndarray   # (M, 10) float32 one-hot
    class_names: tuple[str, ...]
    source: str          # for people: the folder read, or "scikit-learn digits ..."


def load_dataset(name: str, *, data_dir: str | os.PathLike | None = None,
                 train_size: int | None = None, seed: int = 0) -> Dataset:
    """Load a dataset by name ("fashion_mnist" or "digits").

    `data_dir` is a folder holding the four Fashion-MNIST files (ignored for digits).
    `train_size` keeps that many training images, drawn per class so the class proportions
    are kept (stratified); the draw follows `seed`, so the same seed gives the same subset.
    None (or the full size) keeps them all. The test set is always whole.
    Raises DataError when the files are missing or corrupt, InvalidParameterError on bad arguments.
    """
    check_choice("load_dataset", "name", name, DATASETS)
    check_int("load_dataset", "seed", seed, 0, 2**31 - 1)
    if name == "digits":
        (x_train, y_train), (x_test, y_test), source = _load_digits()
        classes = DIGITS_CLASSES
    else:
        (x_train, y_train), (x_test, y_test), source = _load_fashion(data_dir)
        classes = FASHION_CLASSES
    if train_size is not None:
        check_int("load_dataset", "train_size", train_size, 10, len(y_train))  # >= one per class
        keep = stratified_subset(y_train, train_size, seed)
        x_train, y_train = x_train[keep], y_train[keep]  # before the float copy: 4x smaller
    return Dataset(name, _as_images(x_train), _one_hot(y_train), _as_images(x_test),
                   _one_hot(y_test), classes, source)


def train_rows(ds: Dataset, train_size: int | None, seed: int) -> np.ndarray:
    """Rows of `ds`'s whole training set that load_dataset(train_size=, seed=) would keep."""
    if train_size is None:
        return np.arange(len(ds.y_train))
    check_int("train_rows", "train_size", train_size, 10, len(ds.y_train))
    return stratified_subset(ds.y_train.argmax(-1), train_size, seed)


def find_fashion_mnist(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder holding the four Fashion-MNIST files, or None.

    Looks at `data_dir`, else $GRADLOSS_DATA_DIR, else the Keras cache. A configured folder
    that lacks the files gives None: the cache is not a silent substitute for it.
    """
    folder, _ = _configured_dir(data_dir)
    folder = folder if folder is not None else _keras_cache()
    return None if missing_files(folder) else folder


def submission_data_dir(name: str) -> str | None:
    """The data folder a run of dataset `name` submitted now should read, as an absolute path:
    the configured folder ($GRADLOSS_DATA_DIR) or the Keras cache where it holds the files; None
    for digits, or when the files will be downloaded. Stored with the run, so the worker that
    trains it need not share this environment.

    The folder is checked now (`check_fashion_folder`: names, headers, sizes; a few bytes per
    file), so a bad one is refused at submission with DataFolderError naming the variable, not
    queued to fail later."""
    if name != "fashion_mnist":
        return None
    folder, origin = _configured_dir(None)
    if folder is None:
        folder, origin = find_fashion_mnist(), "the Keras cache"
    if folder is None:
        return None
    check_fashion_folder(folder, origin)
    return str(folder.resolve())


def fashion_mnist_downloadable(data_dir: str | os.PathLike | None = None) -> bool:
    """True when loading Fashion-MNIST would fall back to the Keras downloader (needs internet):
    no folder is configured and the Keras cache lacks the files."""
    folder, _ = _configured_dir(data_dir)
    return folder is None and bool(missing_files(_keras_cache()))


def data_status(name: str) -> str:
    """One line for people: where the dataset will be read from, or how to make it available."""
    check_choice("data_status", "name", name, DATASETS)
    if name == "digits":
        return "digits: bundled with scikit-learn, always available offline."
    folder, origin = _configured_dir(None)
    if folder is not None:
        missing = missing_files(folder)
        if missing:
            return (f"Fashion-MNIST: not found; {origin}={folder} lacks {', '.join(missing)}. "
                    f"Put the official files from {OFFICIAL_URL} there, or use digits.")
        try:
            check_fashion_folder(folder, origin)
        except DataFolderError as error:
            return f"Fashion-MNIST: cannot be used; {error}"
        return f"Fashion-MNIST: read from {folder} ({origin})."
    cache = _keras_cache()
    if not missing_files(cache):
        return f"Fashion-MNIST: read from {cache} (Keras cache)."
    return (f"Fashion-MNIST: not found locally; Keras will download it on first use (needs "
            f"internet). Or set {ENV_VAR}=/folder/with/the/4/files, or use digits.")


def _configured_dir(data_dir) -> tuple[Path | None, str]:
    """The folder the user chose (argument, then environment) and how it was chosen, for
    messages: a data_dir that is this process's GRADLOSS_DATA_DIR (a run's plan holds the
    folder resolved from it at submission) is named as the variable the user set."""
    env = os.environ.get(ENV_VAR)  # an empty value counts as unset
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if env and Path(env).expanduser().resolve() == folder.resolve():
            return folder, ENV_VAR
        if folder.resolve() == _keras_cache().resolve():
            return folder, "the Keras cache"
        return folder, ("the data_dir argument (for a run: the GRADLOSS_DATA_DIR or Keras cache "
                        "found where it was submitted)")
    if env:
        return Path(env).expanduser(), ENV_VAR
    return None, ""


def _keras_cache() -> Path:
    """Where keras.datasets.fashion_mnist.load_data() keeps the files."""
    home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(home).expanduser() / "datasets" / "fashion-mnist"


def _load_fashion(data_dir):
    folder, origin = _configured_dir(data_dir)
    if folder is None:
        folder = _keras_cache()
        if missing_files(folder):
            return _download_fashion(folder)
    else:
        require_files(folder, origin)
    paths = [folder / f for f in FASHION_FILES]
    train, test = read_pair(*paths[:2], origin), read_pair(*paths[2:], origin)
    logger.info("Fashion-MNIST read from %s", folder)
    return train, test, f"Fashion-MNIST IDX files in {folder}"


def _download_fashion(cache: Path):
    """Last resort, nothing configured or cached: Keras downloads the files (needs internet)."""
    logger.info("Fashion-MNIST not in %s; downloading it with Keras", cache)
    try:
        import keras  # heavy (loads the backend): only here

        train, test = keras.datasets.fashion_mnist.load_data()
    except Exception as exc:  # no internet, a half-written cache file, a broken install...
        raise DataError(
            f"Fashion-MNIST was not found ({ENV_VAR} is not set and {cache} lacks the files) "
            f"and downloading it with Keras failed: {exc}. Download {', '.join(FASHION_FILES)} "
            f"from {OFFICIAL_URL} into a folder and set {ENV_VAR} to it, "
            "or use dataset 'digits'.") from exc
    return train, test, "Fashion-MNIST downloaded by Keras (keras.datasets.fashion_mnist)"


def _load_digits():
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
    return (x_train, y_train), (x_test, y_test), "scikit-learn digits (8x8 resized to 28x28)"


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of `size` rows with the class proportions of `labels`; seeded."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * size / len(labels)
    take = np.floor(quota).astype(int)
    # Rows lost to rounding go to the classes with the largest remainders (never above count).
    short = size - int(take.sum())
    take[np.argsort(take - quota, kind="stable")[:short]] += 1
    picks = [rng.choice(np.flatnonzero(labels == c), k, replace=False)
             for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picks))  # file order; training shuffles anyway


def _as_images(x: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 0..255 or float 0..1 -> (N, 28, 28, 1) float32 in [0, 1]."""
    if x.dtype == np.uint8:
        return np.divide(x[..., None], 255, dtype=np.float32)  # one pass, no float64 copy
    return x[..., None].astype(np.float32)


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(10, dtype=np.float32)[labels]  # (N,) -> (N, 10)
