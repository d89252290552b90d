"""What every dataset ends as, whatever its source: checked arrays, pixels scaled to [0, 1], one-hot
labels, a content hash, and stratified subsets of its training rows. NumPy only.

A source (a built-in, a .npz file, an image folder) hands over its *canonical* arrays: images
(N, H, W, C) with C = 1 or 3 in their stored dtype, integer labels (N,) in 0..K-1 and the class
names. `content_hash` hashes exactly those, so a .npz and the same images uploaded from an image
folder, or a file and its copy fetched from the run store, hash alike. `to_unit` scales pixels to
[0, 1] so that a noise sigma means the same on every dataset, and says how it did.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from gradloss.core.config import source_label as dataset_label
from gradloss.core.errors import InputFileError

KEYS = ("x_train", "y_train", "x_test", "y_test")  # the arrays of a .npz dataset, in this order
CHANNELS = (1, 3)  # greyscale or RGB


@dataclass(frozen=True)
class Dataset:
    """A train/test split ready for a model."""

    name: str
    x_train: np.ndarray  # (N, H, W, C) float32 in [0, 1]
    y_train: np.ndarray  # (N, K) float32 one-hot
    x_test: np.ndarray   # (M, H, W, C) float32 in [0, 1]
    y_test: np.ndarray   # (M, K) float32 one-hot
    class_names: tuple[str, ...]
    source: str          # for people: the file or folder read, or "scikit-learn digits ..."
    scaling: str = "uint8 0..255 divided by 255"  # how the pixels were brought to [0, 1]
    sha256: str | None = None  # content hash of a file dataset; None: a built-in, by its name


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, read cheaply when a run is submitted (`gradloss.data.describe`)."""

    name: str            # a built-in's name, or the file's or folder's own name ("my.npz")
    kind: str            # "builtin", "npz" or "folder"
    path: str | None     # the file or folder read (absolute); None: a built-in's usual place
    sha256: str | None   # the content hash of a file dataset; None for a built-in
    shape: tuple[int, int, int]  # H, W, C of one image
    class_names: tuple[str, ...]
    n_train: int
    n_test: int
    scaling: str         # how its pixels are brought to [0, 1]

    @property
    def classes(self) -> int:
        return len(self.class_names)

    @property
    def label(self) -> str:
        """The name runs are listed and compared under: a file dataset's name with its hash."""
        return dataset_label(self.name, self.sha256)

    def config_fields(self) -> dict:
        """The TrainConfig fields that say which dataset a run trains on."""
        if self.sha256 is None:
            return {"dataset": self.name}
        return {"dataset": self.name, "dataset_hash": self.sha256, "dataset_size": self.n_train}

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "path": self.path, "sha256": self.sha256,
                "shape": list(self.shape), "class_names": list(self.class_names),
                "n_train": self.n_train, "n_test": self.n_test, "scaling": self.scaling}

    @classmethod
    def from_dict(cls, data: dict) -> "DatasetInfo":
        return cls(**{**data, "shape": tuple(data["shape"]),
                      "class_names": tuple(data["class_names"])})


def content_hash(x_train, y_train, x_test, y_test, class_names) -> str:
    """SHA-256 of the canonical arrays (dtype, shape and bytes of each) and the class names."""
    digest = hashlib.sha256()
    for key, array in zip(KEYS, (x_train, y_train, x_test, y_test)):
        array = np.ascontiguousarray(array)
        digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    digest.update("\0".join(class_names).encode())
    return digest.hexdigest()


def as_images(x: np.ndarray, where: str, key: str) -> np.ndarray:
    """x as (N, H, W, C), C = 1 or 3: (N, H, W) gains a channel axis; anything else is refused."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in CHANNELS or 0 in x.shape:
        raise InputFileError(f"{where}: {key} has shape {x.shape}; allowed: (N, H, W) or "
                        f"(N, H, W, C) with C = 1 (grey) or 3 (RGB) and N, H, W >= 1.")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise InputFileError(f"{where}: {key} holds {x.dtype} values; allowed: integer or float "
                        "pixels.")
    return x


def as_labels(y: np.ndarray, n: int, where: str, key: str) -> np.ndarray:
    """Integer labels (n,) from integer labels (n,) or (n, 1), or one-hot rows (n, K)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2:  # one-hot: every row one 1, the rest 0
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise InputFileError(f"{where}: {key} has shape {y.shape} but its rows are not "
                                 "one-hot; allowed: integer labels (N,) or one-hot rows (N, K).")
        y = y.argmax(axis=1)
    if y.ndim != 1 or len(y) != n:
        raise InputFileError(f"{where}: {key} holds {len(y) if y.ndim else y.shape} labels but the "
                        f"images number {n}; allowed: one label per image, (N,) or (N, K).")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise InputFileError(f"{where}: {key} holds labels that are not whole numbers; "
                                 "allowed: integers 0..K-1 or one-hot rows.")
    elif not np.issubdtype(y.dtype, np.integer):
        raise InputFileError(f"{where}: {key} holds {y.dtype} values; allowed: integer labels "
                        "0..K-1 or one-hot rows.")
    return y.astype(np.int64)


def check_classes(y_train: np.ndarray, y_test: np.ndarray, class_names, where: str) -> tuple:
    """The class names, after checking the labels: K >= 2 classes, every label in 0..K-1 and
    every class in the training set. Names default to "0", "1", ..."""
    k = len(class_names) if class_names is not None else int(max(y_train.max(), y_test.max())) + 1
    labels = np.concatenate([y_train, y_test])
    if labels.min() < 0 or labels.max() >= k:
        bad = labels[(labels < 0) | (labels >= k)][0]
        named = " named in class_names" if class_names is not None else ""
        raise InputFileError(f"{where}: label {bad} is out of range; allowed: 0..{k - 1} "
                             f"({k} classes{named}).")
    present = np.unique(y_train)
    if len(present) < 2 or k < 2:
        raise InputFileError(f"{where}: the training labels hold one class only ({present[0]}); "
                        "allowed: at least 2 classes.")
    if len(present) < k:
        missing = sorted(set(range(k)) - set(present.tolist()))[:5]
        raise InputFileError(f"{where}: class(es) {missing} have no training image; every class "
                        f"0..{k - 1} needs at least one.")
    return tuple(str(c) for c in class_names) if class_names is not None else \
        tuple(str(i) for i in range(k))


def scaling_of(*images: np.ndarray, where: str) -> tuple[float, str]:
    """(divisor, words) that bring these pixels to [0, 1]: uint8 or 0..255 values / 255, values in
    [0, 1] as they are; NaN, infinities and other ranges are refused."""
    for x in images:
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            bad = int(np.size(x) - np.isfinite(x).sum())
            raise InputFileError(f"{where}: {bad} pixel(s) are NaN or infinite; allowed: finite "
                            "values in [0, 1] or [0, 255].")
    if all(x.dtype == np.uint8 for x in images):
        return 255.0, "uint8 0..255 divided by 255"
    low, high = min(float(x.min()) for x in images), max(float(x.max()) for x in images)
    if low >= 0 and high <= 1 and all(np.issubdtype(x.dtype, np.floating) for x in images):
        return 1.0, "values in [0, 1], kept as they are"
    if low >= 0 and high <= 255:
        return 255.0, f"{images[0].dtype} values in [0, 255] divided by 255"
    raise InputFileError(f"{where}: pixels range over [{low:g}, {high:g}]; allowed: uint8, or "
                         "values in [0, 1] or [0, 255] (scaled to [0, 1] so that a noise sigma "
                         "means the same on every dataset).")


def to_unit(x: np.ndarray, divisor: float) -> np.ndarray:
    """Pixels as float32 in [0, 1] (one pass, no float64 copy for uint8)."""
    return np.divide(x, divisor, dtype=np.float32) if divisor != 1.0 else x.astype(np.float32)


def one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[labels]  # (N,) -> (N, K)


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
