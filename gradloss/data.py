"""Datasets by name: float32 images (N, 28, 28, 1) in [0, 1] and one-hot labels (N, 10).

"fashion_mnist" is read from the four official IDX .gz files, looked for in this order: the
`data_dir` argument, $GRADLOSS_DATA_DIR, the Keras cache ($KERAS_HOME or ~/.keras, then
datasets/fashion-mnist/). A configured folder that lacks the files is an error; only with
nothing configured and nothing cached does Keras download them. "digits" is scikit-learn's
bundled 8x8 digits resized to 28x28, so it works offline.

keras/tensorflow are imported only for that download: the dashboard imports this module.
"""
from __future__ import annotations

import gzip
import logging
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradloss.core.config import DATASETS
from gradloss.core.validation import check_choice, check_int
from gradloss.core.errors import DataError

logger = logging.getLogger(__name__)

ENV_VAR = "GRADLOSS_DATA_DIR"
OFFICIAL_URL = "https://github.com/zalandoresearch/fashion-mnist"
# (images, labels) for train, then test: the names Zalando and Keras both use.
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGITS_CLASSES = tuple(str(d) for d in range(10))
SIDE = 28  # images are SIDE x SIDE
IDX_UBYTE = 0x08  # IDX type code of unsigned bytes: magic is 0x0000 08 <number of dims>


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
    return None if _missing(folder) else folder


def submission_data_dir(name: str) -> str | None:
    """The data folder a run of dataset `name` submitted now should read, as an absolute path:
    the configured folder ($GRADLOSS_DATA_DIR; a run there fails naming it if it lacks the files)
    or the Keras cache where it holds the files; None for digits, or when the files will be
    downloaded. Stored with the run, so the worker that trains it need not share this environment."""
    if name != "fashion_mnist":
        return None
    folder, _ = _configured_dir(None)
    folder = folder if folder is not None else find_fashion_mnist()
    return None if folder is None else str(folder.resolve())


def fashion_mnist_downloadable(data_dir: str | os.PathLike | None = None) -> bool:
    """True when loading Fashion-MNIST would fall back to the Keras downloader (needs internet):
    no folder is configured and the Keras cache lacks the files."""
    folder, _ = _configured_dir(data_dir)
    return folder is None and bool(_missing(_keras_cache()))


def data_status(name: str) -> str:
    """One line for people: where the dataset will be read from, or how to make it available."""
    check_choice("data_status", "name", name, DATASETS)
    if name == "digits":
        return "digits: bundled with scikit-learn, always available offline."
    folder, origin = _configured_dir(None)
    if folder is not None:
        missing = _missing(folder)
        if missing:
            return (f"Fashion-MNIST: not found; {origin}={folder} lacks {', '.join(missing)}. "
                    f"Put the official files from {OFFICIAL_URL} there, or use digits.")
        return f"Fashion-MNIST: read from {folder} ({origin})."
    cache = _keras_cache()
    if not _missing(cache):
        return f"Fashion-MNIST: read from {cache} (Keras cache)."
    return (f"Fashion-MNIST: not found locally; Keras will download it on first use (needs "
            f"internet). Or set {ENV_VAR}=/folder/with/the/4/files, or use digits.")


def _configured_dir(data_dir) -> tuple[Path | None, str]:
    """The folder the user chose (argument, then environment) and how it was chosen."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "the data_dir argument"
    env = os.environ.get(ENV_VAR)
    if env:  # an empty value counts as unset
        return Path(env).expanduser(), ENV_VAR
    return None, ""


def _keras_cache() -> Path:
    """Where keras.datasets.fashion_mnist.load_data() keeps the files."""
    home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(home).expanduser() / "datasets" / "fashion-mnist"


def _missing(folder: Path) -> list[str]:
    return [f for f in FASHION_FILES if not (folder / f).is_file()]


def _load_fashion(data_dir):
    folder, origin = _configured_dir(data_dir)
    if folder is None:
        folder = _keras_cache()
        if _missing(folder):
            return _download_fashion(folder)
    elif missing := _missing(folder):
        raise DataError(
            f"Fashion-MNIST files missing in {folder} (set by {origin}): {', '.join(missing)}. "
            f"Download them from {OFFICIAL_URL} (folder data/fashion) into {folder}, point "
            f"{origin} at a folder holding all four, or use dataset 'digits'.")
    paths = [folder / f for f in FASHION_FILES]
    train, test = _read_pair(*paths[:2]), _read_pair(*paths[2:])
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


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28) uint8 images and (N,) uint8 labels from one IDX pair, checked."""
    images = _read_idx(images_path, ndim=3)
    labels = _read_idx(labels_path, ndim=1)
    if images.shape[1:] != (SIDE, SIDE):
        raise _corrupt(images_path, f"images are {images.shape[1]}x{images.shape[2]}, "
                                    f"expected {SIDE}x{SIDE}")
    if labels.size and labels.max() > 9:
        raise _corrupt(labels_path, f"label {labels.max()} is outside 0..9")
    if len(images) != len(labels):
        raise _corrupt(labels_path, f"it holds {len(labels)} labels but {images_path.name} "
                                    f"holds {len(images)} images")
    return images, labels


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse one gzipped IDX file of unsigned bytes, checking its header against its data."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, truncated, bad CRC, unreadable
        raise _corrupt(path, f"it cannot be read as gzip ({exc})") from exc
    header = 4 + 4 * ndim  # magic, then one big-endian uint32 per dimension
    if len(raw) < header:
        raise _corrupt(path, f"it holds {len(raw)} bytes, less than its {header}-byte header")
    magic, expected_magic = int.from_bytes(raw[:4], "big"), IDX_UBYTE << 8 | ndim
    if magic != expected_magic:
        raise _corrupt(path, f"bad magic number 0x{magic:08x}, expected 0x{expected_magic:08x}")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    if len(raw) != header + math.prod(dims):
        raise _corrupt(path, f"its header gives shape {dims} ({math.prod(dims)} bytes of data) "
                             f"but it holds {len(raw) - header}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _corrupt(path: Path, problem: str) -> DataError:
    return DataError(
        f"Fashion-MNIST file {path} is corrupt: {problem}. Replace it with the official "
        f"{path.name} from {OFFICIAL_URL} (folder data/fashion), point {ENV_VAR} at a folder "
        "holding the four good files, or use dataset 'digits'.")


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
