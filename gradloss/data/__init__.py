"""Datasets: float32 images (N, H, W, C) in [0, 1], C = 1 or 3, and one-hot labels (N, K).

A dataset is named by a *spec*: a built-in name (`builtin.BUILTINS`: fashion_mnist, digits,
mnist, cifar10, cifar100), a .npz file or an image folder (`files`). `describe(spec)` reads what
a run needs to know when it is submitted (shape, classes, sizes, how pixels are scaled, and for
a file dataset its content hash, `arrays.content_hash`); `load_dataset` reads the arrays. A
file dataset is identified by its name *and* hash: a run records both (TrainConfig.dataset and
dataset_hash), so runs on two different "my.npz" files are never compared, and the worker that
trains it loads the same content (from the run store, by hash, on another machine).

Importing this package stays light (NumPy only): the dashboard imports it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gradloss.core.config import DATASETS
from gradloss.core.errors import DataError, DataFolderError, InputFileError
from gradloss.core.validation import check_choice, check_int
from gradloss.data import builtin, files
from gradloss.data.arrays import (Dataset, DatasetInfo, as_images, as_labels, content_hash,
                                  dataset_label, one_hot, scaling_of, stratified_subset, to_unit)
from gradloss.data.builtin import (BUILTINS, CIFAR10_CLASSES, DIGITS_CLASSES, FASHION_CLASSES,
                                   FASHION_FILES)
from gradloss.data.fashion_files import ENV_VAR, OFFICIAL_URL


def load_dataset(name: str, *, data_dir: str | os.PathLike | None = None,
                 train_size: int | None = None, seed: int = 0,
                 sha256: str | None = None) -> Dataset:
    """Load a dataset: a built-in by `name`, or (with `sha256`) the file dataset at `data_dir`.

    For a built-in, `data_dir` is a folder holding its files (see `builtin`). For a file
    dataset it is the .npz file or image folder, whose content must still hash to `sha256`.
    `train_size` keeps that many training images, drawn per class so the class proportions
    are kept (stratified); the draw follows `seed`, so the same seed gives the same subset.
    None (or the full size) keeps them all. The test set is always whole.
    Raises DataError when the files are missing, corrupt or changed, InvalidParameterError on
    bad arguments.
    """
    check_int("load_dataset", "seed", seed, 0, 2**31 - 1)
    if sha256 is None:
        check_choice("load_dataset", "name", name, DATASETS)
        (x_train, y_train), (x_test, y_test), source = builtin.read(name, data_dir)
        where = f"The {name} files ({source})"
        classes = BUILTINS[name].class_names
        if name == "cifar100":  # the fine label names, where the cache has them
            classes = builtin.readers.cifar100_names(builtin.find(name, data_dir))
        y_train = as_labels(y_train, len(x_train), where, "y_train")
        y_test = as_labels(y_test, len(x_test), where, "y_test")
        x_train, x_test = as_images(x_train, where, "x_train"), as_images(x_test, where, "x_test")
        scaling = BUILTINS[name].scaling
    else:
        if data_dir is None:
            raise DataError(f"The dataset {name!r} (content hash {sha256[:12]}) has no file "
                            "to read: give the .npz file or image folder it was made from.")
        x_train, y_train, x_test, y_test, classes = _read_file(Path(data_dir))
        found = content_hash(x_train, y_train, x_test, y_test, classes)
        if found != sha256:
            raise DataError(f"The dataset {data_dir} is not the one the run was planned with: its "
                            f"content hash is {found[:12]}, the run's {sha256[:12]} (the file "
                            "changed since); submit the run again to train on it as it is now.")
        source = f"{'image folder' if Path(data_dir).is_dir() else '.npz file'} {data_dir}"
        scaling = scaling_of(x_train, x_test, where=str(data_dir))[1]
    if train_size is not None:
        check_int("load_dataset", "train_size", train_size, min(10, len(y_train)), len(y_train))
        keep = stratified_subset(y_train, train_size, seed)
        x_train, y_train = x_train[keep], y_train[keep]  # before the float copy: 4x smaller
    divisor = scaling_of(x_train, x_test, where=source)[0]
    k = len(classes)
    return Dataset(name, to_unit(x_train, divisor), one_hot(y_train, k), to_unit(x_test, divisor),
                   one_hot(y_test, k), tuple(classes), source, scaling, sha256)


def _read_file(path: Path) -> tuple:
    if path.is_dir():
        return files.read_folder(path)
    if path.is_file():
        return files.read_npz(path)
    raise InputFileError(f"No dataset at {path}: give a built-in name ({', '.join(DATASETS)}), "
                         "a .npz file or an image folder (one sub-folder per class).")


def describe(spec: str | os.PathLike) -> DatasetInfo:
    """What the dataset `spec` is (a built-in name, a .npz file, an image folder), checked.

    A built-in is described from its registry entry without reading it; a file dataset is read
    whole and checked (so a bad file is refused at submission, nothing queued) and hashed."""
    text = str(spec)
    if text in DATASETS:
        b = BUILTINS[text]
        return DatasetInfo(text, "builtin", None, None, b.shape, b.class_names, b.n_train,
                           b.n_test, b.scaling)
    path = Path(text).expanduser()
    if not path.exists():
        raise InputFileError(f"No dataset {text!r}: give a built-in name "
                             f"({', '.join(DATASETS)}), a .npz file or an image folder (one "
                             "sub-folder per class).")
    if path.is_file() and path.suffix.lower() != ".npz":
        raise InputFileError(f"The dataset file {path} is not a .npz file; allowed: a .npz holding "
                        "x_train, y_train, x_test, y_test, or an image folder.")
    canonical = _read_file(path)
    x_train, y_train, x_test, y_test, names = canonical
    return DatasetInfo(path.name, "folder" if path.is_dir() else "npz", str(path.resolve()),
                       content_hash(*canonical), tuple(x_train.shape[1:]), names, len(x_train),
                       len(x_test), scaling_of(x_train, x_test, where=str(path))[1])


def upload_bytes(info: DatasetInfo) -> bytes:
    """The canonical .npz bytes of a file dataset, as the run store keeps it (by its hash)."""
    return files.to_npz_bytes(_read_file(Path(info.path)))


def train_rows(ds: Dataset, train_size: int | None, seed: int) -> np.ndarray:
    """Rows of `ds`'s whole training set that load_dataset(train_size=, seed=) would keep."""
    if train_size is None:
        return np.arange(len(ds.y_train))
    check_int("train_rows", "train_size", train_size, min(10, len(ds.y_train)), len(ds.y_train))
    return stratified_subset(ds.y_train.argmax(-1), train_size, seed)


def find_fashion_mnist(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder holding the four Fashion-MNIST files, or None (see `builtin.find`)."""
    return builtin.find("fashion_mnist", data_dir)


def fashion_mnist_downloadable(data_dir: str | os.PathLike | None = None) -> bool:
    """True when loading Fashion-MNIST would fall back to the Keras downloader."""
    return builtin.downloadable("fashion_mnist", data_dir)


def submission_data_dir(name: str) -> str | None:
    """The data folder a run of built-in `name` submitted now should read
    (`builtin.submission_dir`), checked there, so a bad folder is refused at submission with a
    DataFolderError naming the variable, not queued to fail later; None for a name that is not a
    built-in (a file dataset travels by its path and hash)."""
    return builtin.submission_dir(name) if name in DATASETS else None


def data_status(name: str) -> str:
    """One line for people: where a built-in dataset will be read from, or how to get it."""
    check_choice("data_status", "name", name, DATASETS)
    return builtin.status(name)


__all__ = ["Dataset", "DatasetInfo", "load_dataset", "describe", "upload_bytes", "train_rows",
           "stratified_subset", "dataset_label", "DataFolderError", "find_fashion_mnist",
           "fashion_mnist_downloadable", "submission_data_dir", "data_status", "BUILTINS",
           "FASHION_FILES", "FASHION_CLASSES", "DIGITS_CLASSES", "CIFAR10_CLASSES", "ENV_VAR",
           "OFFICIAL_URL"]
