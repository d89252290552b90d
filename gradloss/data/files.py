"""Your own data: a .npz file or an image folder, read and checked into canonical arrays.

A .npz holds x_train, y_train, x_test and y_test (labels as integers or one-hot rows) and may
hold class_names. It is read with `np.load(allow_pickle=False)`: a file holding pickled Python
objects is refused, never unpickled. An image folder holds one sub-folder per class (its name is
the class name, classes in sorted order), each with PNG, JPEG, BMP or GIF images of one size,
read with Pillow (a maintained reader that needs no Keras, so the dashboard can check an upload);
greyscale images stay one channel, any colour image makes all three. Its test split is
stratified and seeded: FOLDER_TEST_FRACTION of each class (at least one image of a class that
has two or more), drawn with FOLDER_SPLIT_SEED, so the same folder always splits alike.

Every problem is a InputFileError naming the file, what is wrong and what is allowed.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from gradloss.core.errors import InputFileError
from gradloss.data.arrays import KEYS, as_images, as_labels, check_classes, scaling_of

FOLDER_TEST_FRACTION = 0.2
FOLDER_SPLIT_SEED = 0
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
Canonical = tuple  # (x_train, y_train, x_test, y_test, class_names)


def read_npz(path: Path | str | io.BytesIO, where: str | None = None) -> Canonical:
    """The canonical arrays of a .npz dataset (file or bytes), checked."""
    where = where or f"The dataset file {path}"
    if not zipfile.is_zipfile(path):  # np.load would take it for a pickle
        raise InputFileError(f"{where} cannot be read as a .npz file (it is not a zip archive, "
                             f"as np.savez writes); save it with np.savez, keys {', '.join(KEYS)}.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            missing = [k for k in KEYS if k not in names]
            if missing:
                raise InputFileError(f"{where} lacks {', '.join(missing)}; a .npz dataset holds "
                                f"{', '.join(KEYS)} (and optionally class_names).")
            arrays = {k: npz[k] for k in KEYS}
            class_names = npz["class_names"] if "class_names" in names else None
    except InputFileError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickled" in str(exc):
            raise InputFileError(f"{where} holds pickled Python objects, which gradloss never "
                                 "loads (they can run code); save plain numeric arrays with "
                                 f"np.savez, keys {', '.join(KEYS)}.") from None
        raise InputFileError(f"{where} cannot be read as a .npz file ({exc}); save it with "
                             f"np.savez, keys {', '.join(KEYS)}.") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputFileError(f"{where} cannot be read as a .npz file ({exc}); save it with "
                             f"np.savez, keys {', '.join(KEYS)}.") from None
    return _checked(arrays, class_names, where)


def _checked(arrays: dict, class_names, where: str) -> Canonical:
    x_train = as_images(arrays["x_train"], where, "x_train")
    x_test = as_images(arrays["x_test"], where, "x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise InputFileError(f"{where}: x_train images are {x_train.shape[1:]} but x_test images "
                             f"are {x_test.shape[1:]}; allowed: one image shape for both.")
    y_train = as_labels(arrays["y_train"], len(x_train), where, "y_train")
    y_test = as_labels(arrays["y_test"], len(x_test), where, "y_test")
    if class_names is not None:
        class_names = [str(c) for c in np.asarray(class_names).ravel()]
    names = check_classes(y_train, y_test, class_names, where)
    scaling_of(x_train, x_test, where=where)  # refuse NaN and out-of-range pixels here
    return x_train, y_train, x_test, y_test, names


def read_folder(folder: Path | str) -> Canonical:
    """The canonical arrays of an image folder (one sub-folder per class), split as stated above."""
    folder = Path(folder)
    where = f"The image folder {folder}"
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise InputFileError(f"{where} holds {len(classes)} class sub-folder(s); allowed: one "
                        "sub-folder per class, at least 2, each holding its images.")
    from PIL import Image, UnidentifiedImageError  # Pillow: only when a folder is read

    images, labels, first = [], [], None
    for k, sub in enumerate(classes):
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputFileError(f"{where}: the class folder {sub.name!r} holds no image; allowed: "
                            f"{', '.join(IMAGE_SUFFIXES)} files, at least one per class.")
        for path in files:
            try:
                with Image.open(path) as image:
                    image.load()
                    mode = "L" if image.mode in ("1", "L", "I;16", "I", "F", "LA") else "RGB"
                    pixels = np.asarray(image.convert(mode), dtype=np.uint8)
            except (OSError, UnidentifiedImageError) as exc:
                raise InputFileError(f"{where}: {path.relative_to(folder)} cannot be read as an "
                                f"image ({exc}).") from None
            if first is None:
                first = (path, pixels.shape[:2])
            if pixels.shape[:2] != first[1]:
                raise InputFileError(
                    f"{where}: images of different shapes: {path.relative_to(folder)} is "
                    f"{pixels.shape[0]}x{pixels.shape[1]} but {first[0].relative_to(folder)} is "
                    f"{first[1][0]}x{first[1][1]}; allowed: one height x width for every image "
                    "(resize them first).")
            images.append(pixels)
            labels.append(k)
    colour = any(p.ndim == 3 for p in images)
    x = np.stack([_channels(p, colour) for p in images])      # (N, H, W, C) uint8
    y = np.asarray(labels, dtype=np.int64)
    test = _test_rows(y)
    train = np.setdiff1d(np.arange(len(y)), test)
    return _checked({"x_train": x[train], "y_train": y[train], "x_test": x[test],
                     "y_test": y[test]}, [p.name for p in classes], where)


def _channels(pixels: np.ndarray, colour: bool) -> np.ndarray:
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return np.repeat(pixels, 3, axis=-1) if colour and pixels.shape[-1] == 1 else pixels


def _test_rows(labels: np.ndarray) -> np.ndarray:
    """The test rows: FOLDER_TEST_FRACTION of each class, at least one of a class of two or more."""
    rng = np.random.default_rng(FOLDER_SPLIT_SEED)
    rows = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = 0 if len(members) < 2 else max(1, int(round(FOLDER_TEST_FRACTION * len(members))))
        rows.append(rng.permutation(members)[:n])
    test = np.sort(np.concatenate(rows))
    if len(test) == 0:
        raise InputFileError("The image folder has one image per class: no test image can be set "
                        "apart; allowed: at least 2 images in some class.")
    return test


def to_npz_bytes(canonical: Canonical) -> bytes:
    """The canonical arrays as .npz bytes (what the run store keeps); read back by read_npz."""
    x_train, y_train, x_test, y_test, names = canonical
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                        class_names=np.asarray(names, dtype=str))
    return buffer.getvalue()
