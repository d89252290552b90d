"""The four Fashion-MNIST IDX files: checked cheaply where a folder is chosen, read in full when
a run loads them, every problem a DataFolderError naming the file, how the folder was chosen
(`origin`: GRADLOSS_DATA_DIR, a run's data folder, the Keras cache) and the fix.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from gradloss.core.errors import DataFolderError

ENV_VAR = "GRADLOSS_DATA_DIR"
OFFICIAL_URL = "https://github.com/zalandoresearch/fashion-mnist"
# (images, labels) for train, then test: the names Zalando and Keras both use.
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
SIDE = 28  # images are SIDE x SIDE
IDX_UBYTE = 0x08  # IDX type code of unsigned bytes: magic is 0x0000 08 <number of dims>


def missing_files(folder: Path) -> list[str]:
    """The names of the four files that `folder` lacks."""
    return [f for f in FASHION_FILES if not (folder / f).is_file()]


def check_fashion_folder(folder: str | os.PathLike, origin: str = ENV_VAR) -> None:
    """Raise DataFolderError, naming `folder` and `origin` (how it was chosen), unless it holds
    the four Fashion-MNIST files, each a gzip whose IDX header has the right magic number and
    shape, whose gzip trailer records the size that shape implies (a cut or padded copy does
    not), with as many labels as images. Reads a few bytes of each file; loading reads them all."""
    folder = Path(folder)
    require_files(folder, origin)
    paths = [folder / f for f in FASHION_FILES]
    counts = [_header(path, ndim, origin, trailer=True)[0]
              for path, ndim in zip(paths, (3, 1, 3, 1))]
    for images, labels, n_images, n_labels in ((*paths[:2], *counts[:2]),
                                                (*paths[2:], *counts[2:])):
        if n_images != n_labels:
            raise _corrupt(labels, f"it holds {n_labels} labels but {images.name} holds "
                                   f"{n_images} images", origin)


def require_files(folder: Path, origin: str) -> None:
    """Raise DataFolderError unless `folder` is a folder holding the four files."""
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataFolderError(
            f"The Fashion-MNIST folder {folder} {what} (it was set by {origin}). Set {ENV_VAR} "
            f"to a folder holding {', '.join(FASHION_FILES)} (from {OFFICIAL_URL}), or use "
            "dataset 'digits'.")
    if missing := missing_files(folder):
        raise DataFolderError(
            f"Fashion-MNIST files missing in {folder} (set by {origin}): {', '.join(missing)}. "
            f"Download them from {OFFICIAL_URL} (folder data/fashion) into {folder}, set "
            f"{ENV_VAR} to a folder holding all four, or use dataset 'digits'.")


def read_pair(images_path: Path, labels_path: Path,
               origin: str = ENV_VAR) -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28) uint8 images and (N,) uint8 labels from one IDX pair, checked."""
    images = _read_idx(images_path, 3, origin)
    labels = _read_idx(labels_path, 1, origin)
    if labels.size and labels.max() > 9:
        raise _corrupt(labels_path, f"label {labels.max()} is outside 0..9", origin)
    if len(images) != len(labels):
        raise _corrupt(labels_path, f"it holds {len(labels)} labels but {images_path.name} "
                                    f"holds {len(images)} images", origin)
    return images, labels


def _header(path: Path, ndim: int, origin: str, raw: bytes | None = None,
            trailer: bool = False) -> tuple[int, ...]:
    """The shape an IDX file's header gives, checked: its magic number, and for images 28x28.
    `raw`: the whole unpacked file, if read; else only the header is read. `trailer`: also
    check the size the gzip trailer records (mod 2^32) against that shape."""
    header = 4 + 4 * ndim  # magic, then one big-endian uint32 per dimension
    try:
        if raw is None:
            with gzip.open(path, "rb") as f:
                raw = f.read(header)
        if trailer:
            with open(path, "rb") as f:
                f.seek(-4, os.SEEK_END)
                recorded = int.from_bytes(f.read(4), "little")
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, truncated, bad CRC, unreadable
        raise _corrupt(path, f"it cannot be read as gzip ({exc})", origin) from exc
    if len(raw) < header:
        raise _corrupt(path, f"it holds {len(raw)} bytes, less than its {header}-byte header",
                       origin)
    magic, expected_magic = int.from_bytes(raw[:4], "big"), IDX_UBYTE << 8 | ndim
    if magic != expected_magic:
        raise _corrupt(path, f"bad magic number 0x{magic:08x}, expected 0x{expected_magic:08x}",
                       origin)
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    if ndim == 3 and dims[1:] != (SIDE, SIDE):
        raise _corrupt(path, f"images are {dims[1]}x{dims[2]}, expected {SIDE}x{SIDE}", origin)
    if trailer and recorded != (header + math.prod(dims)) % 2**32:
        raise _corrupt(path, f"it is cut short or padded: its header gives shape {dims} "
                             f"({header + math.prod(dims)} bytes unpacked) but its gzip trailer "
                             f"records {recorded}", origin)
    return dims


def _read_idx(path: Path, ndim: int, origin: str = ENV_VAR) -> np.ndarray:
    """Parse one gzipped IDX file of unsigned bytes, checking its header against its data."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, truncated, bad CRC, unreadable
        raise _corrupt(path, f"it cannot be read as gzip ({exc})", origin) from exc
    dims = _header(path, ndim, origin, raw)
    header = 4 + 4 * ndim
    if len(raw) != header + math.prod(dims):
        raise _corrupt(path, f"its header gives shape {dims} ({math.prod(dims)} bytes of data) "
                             f"but it holds {len(raw) - header}", origin)
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _corrupt(path: Path, problem: str, origin: str = ENV_VAR) -> DataFolderError:
    return DataFolderError(
        f"Fashion-MNIST file {path} is corrupt: {problem} (its folder was set by {origin}). "
        f"Replace it with the official {path.name} from {OFFICIAL_URL} (folder data/fashion), "
        f"set {ENV_VAR} to a folder holding the four good files, or use dataset 'digits'.")
