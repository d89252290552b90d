"""The built-in datasets by name, and where their files are looked for.

"fashion_mnist", "mnist", "cifar10" and "cifar100" are read from their usual files, looked for
in this order: the `data_dir` argument, $GRADLOSS_DATA_DIR, the Keras cache ($KERAS_HOME or
~/.keras, then datasets/). In a data folder each keeps its usual names: Fashion-MNIST's four
IDX .gz files directly in it, mnist.npz, cifar-10-batches-py/ and cifar-100-python/ (the Keras
cache's cifar-*-target/ folders are found too). A configured folder that lacks the files is an
error; only with nothing configured and nothing cached does Keras download them. "digits" is
scikit-learn's bundled 8x8 digits resized to 28x28, so it works offline.

keras/tensorflow are imported only for that download: the dashboard imports this module.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gradloss.core.errors import DataError
from gradloss.data import readers
from gradloss.data.fashion_files import (ENV_VAR, FASHION_FILES, OFFICIAL_URL,
                                         check_fashion_folder,
                                         read_pair, require_files)

logger = logging.getLogger(__name__)

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGITS_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


@dataclass(frozen=True)
class Builtin:
    name: str
    label: str                      # for people
    shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    n_train: int
    n_test: int
    files: tuple[str, ...] = ()     # in the folder that holds them; () for the bundled digits
    in_data_dir: tuple[str, ...] = ("",)   # that folder under a data folder ("": itself)
    in_cache: tuple[str, ...] = ("",)      # that folder under the Keras cache's datasets/
    read: Callable = readers.read_digits   # folder -> ((x_train, y_train), (x_test, y_test))
    scaling: str = "uint8 0..255 divided by 255"


def _read_fashion(folder: Path, origin: str = ENV_VAR):
    paths = [folder / f for f in FASHION_FILES]
    return read_pair(*paths[:2], origin), read_pair(*paths[2:], origin)


def _cifar(dirname: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(in a data folder, in the Keras cache) for a CIFAR folder name."""
    return ((dirname, "", f"{dirname}-target/{dirname}"),
            (f"{dirname}-target/{dirname}", dirname))


BUILTINS = {b.name: b for b in (
    Builtin("fashion_mnist", "Fashion-MNIST", (28, 28, 1), FASHION_CLASSES, 60_000, 10_000,
            FASHION_FILES, in_cache=("fashion-mnist",), read=_read_fashion),
    Builtin("digits", "digits (8×8, offline)", (28, 28, 1), DIGITS_CLASSES, 1_437, 360,
            scaling="0..16 divided by 16, resized to 28x28"),
    Builtin("mnist", "MNIST", (28, 28, 1), DIGITS_CLASSES, 60_000, 10_000, ("mnist.npz",),
            read=readers.read_mnist),
    Builtin("cifar10", "CIFAR-10", (32, 32, 3), CIFAR10_CLASSES, 50_000, 10_000,
            readers.CIFAR10_BATCHES, *_cifar("cifar-10-batches-py"), read=readers.read_cifar10),
    Builtin("cifar100", "CIFAR-100", (32, 32, 3), tuple(str(i) for i in range(100)), 50_000,
            10_000, readers.CIFAR100_FILES, *_cifar("cifar-100-python"),
            read=readers.read_cifar100),
)}


def find(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder holding `name`'s files, or None (digits: always None).

    Looks under `data_dir`, else $GRADLOSS_DATA_DIR, else the Keras cache. A configured folder
    that lacks the files gives None: the cache is not a silent substitute for it."""
    b = BUILTINS[name]
    if not b.files:
        return None
    folder, _ = configured_dir(data_dir)
    if folder is not None:
        return _holding(b, folder, b.in_data_dir)
    return _holding(b, keras_cache(), b.in_cache)


def _holding(b: Builtin, root: Path, places: tuple[str, ...]) -> Path | None:
    for place in places:
        folder = root / place if place else root
        if not missing(b, folder):
            return folder
    return None


def missing(b: Builtin, folder: Path) -> list[str]:
    return [f for f in b.files if not (folder / f).is_file()]


def configured_dir(data_dir) -> tuple[Path | None, str]:
    """The folder the user chose (argument, then environment) and how it was chosen, for
    messages: a data_dir that is this process's GRADLOSS_DATA_DIR (a run's plan holds the
    folder resolved from it at submission) is named as the variable the user set."""
    env = os.environ.get(ENV_VAR)  # an empty value counts as unset
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if env and Path(env).expanduser().resolve() == folder.resolve():
            return folder, ENV_VAR
        if keras_cache().resolve() in (folder.resolve(), *folder.resolve().parents):
            return folder, "the Keras cache"
        return folder, ("the data_dir argument (for a run: the GRADLOSS_DATA_DIR or Keras cache "
                        "found where it was submitted)")
    if env:
        return Path(env).expanduser(), ENV_VAR
    return None, ""


def keras_cache() -> Path:
    """The Keras cache's datasets/ folder, where keras.datasets.*.load_data() keeps its files."""
    home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(home).expanduser() / "datasets"


def downloadable(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """True when loading `name` would fall back to the Keras downloader (needs internet): no
    folder is configured and the Keras cache lacks the files."""
    folder, _ = configured_dir(data_dir)
    return bool(BUILTINS[name].files) and folder is None and find(name) is None


def submission_dir(name: str) -> str | None:
    """The data folder a run of `name` submitted now should read, as an absolute path: the one
    holding its files under the configured folder (or that folder itself: a run there fails
    naming it) or in the Keras cache; None for digits, or when the files will be downloaded."""
    b = BUILTINS[name]
    if not b.files:
        return None
    folder, origin = configured_dir(None)
    found = find(name)
    chosen = found if found is not None else folder
    if chosen is None:
        return None
    if name == "fashion_mnist":  # names, headers, sizes: a few bytes per file
        check_fashion_folder(chosen, origin if folder is not None else "the Keras cache")
    return str(chosen.resolve())


def status(name: str) -> str:
    """One line for people: where the dataset will be read from, or how to make it available."""
    b = BUILTINS[name]
    if not b.files:
        return "digits: bundled with scikit-learn, always available offline."
    folder, origin = configured_dir(None)
    if folder is not None:
        found = find(name)
        if found is None:
            return (f"{b.label}: not found; {origin}={folder} lacks "
                    f"{', '.join(missing(b, folder))}. {_fix(b)}")
        if name == "fashion_mnist":
            try:
                check_fashion_folder(found, origin)
            except DataError as error:
                return f"{b.label}: cannot be used; {error}"
        return f"{b.label}: read from {found} ({origin})."
    found = find(name)
    if found is not None:
        return f"{b.label}: read from {found} (Keras cache)."
    return (f"{b.label}: not found locally; Keras will download it on first use (needs "
            f"internet). Or set {ENV_VAR}=/folder/with/the/files, or use digits.")


def _fix(b: Builtin) -> str:
    if b.name == "fashion_mnist":
        return f"Put the official files from {OFFICIAL_URL} there, or use digits."
    return f"Put {', '.join(b.files[:2])}{' ...' if len(b.files) > 2 else ''} there, or use digits."


def read(name: str, data_dir) -> tuple[tuple, tuple, str]:
    """(train, test, source) of built-in `name`: its files, or Keras's download as a last resort."""
    b = BUILTINS[name]
    if not b.files:
        train, test = b.read(None)
        return train, test, "scikit-learn digits (8x8 resized to 28x28)"
    folder, origin = configured_dir(data_dir)
    if folder is None:
        found = find(name)
        if found is None:
            return _download(b)
    else:
        found = _holding(b, folder, b.in_data_dir)
        if found is None:
            lacks = ", ".join(missing(b, folder))
            if b.name == "fashion_mnist":
                require_files(folder, origin)  # a DataFolderError naming the folder and the fix
            raise DataError(f"{b.label} files missing in {folder} (set by {origin}): {lacks}. "
                            f"Put them there (as Keras caches them), point {origin} at a folder "
                            "holding them, or use dataset 'digits'.")
    train, test = b.read(found, origin) if b.name == "fashion_mnist" else b.read(found)
    logger.info("%s read from %s", b.label, found)
    kind = "IDX files" if b.name == "fashion_mnist" else "files"
    return train, test, f"{b.label} {kind} in {found}"


def _download(b: Builtin):
    """Last resort, nothing configured or cached: Keras downloads the files (needs internet)."""
    cache = keras_cache() / b.in_cache[0]
    logger.info("%s not in %s; downloading it with Keras", b.label, cache)
    try:
        import keras  # heavy (loads the backend): only here

        train, test = getattr(keras.datasets, b.name).load_data()
    except Exception as exc:  # no internet, a half-written cache file, a broken install...
        files = ", ".join(b.files) if b.name == "fashion_mnist" else "its files"
        where = f" from {OFFICIAL_URL}" if b.name == "fashion_mnist" else ""
        raise DataError(
            f"{b.label} was not found ({ENV_VAR} is not set and {cache} lacks the files) "
            f"and downloading it with Keras failed: {exc}. Download {files}{where} into a "
            f"folder and set {ENV_VAR} to it, or use dataset 'digits'.") from exc
    return train, test, f"{b.label} downloaded by Keras (keras.datasets.{b.name})"
