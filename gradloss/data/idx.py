"""Fashion-MNIST's IDX files: gzipped unsigned bytes behind a header of their shape, read and
checked against it (a corrupt or truncated file is a DataError naming it and the fix)."""
from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from gradloss.core.errors import DataError

ENV_VAR = "GRADLOSS_DATA_DIR"
OFFICIAL_URL = "https://github.com/zalandoresearch/fashion-mnist"
SIDE = 28  # images are SIDE x SIDE
IDX_UBYTE = 0x08  # IDX type code of unsigned bytes: magic is 0x0000 08 <number of dims>


def read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28) uint8 images and (N,) uint8 labels from one IDX pair, checked."""
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[1:] != (SIDE, SIDE):
        raise _corrupt(images_path, f"images are {images.shape[1]}x{images.shape[2]}, "
                                    f"expected {SIDE}x{SIDE}")
    if labels.size and labels.max() > 9:
        raise _corrupt(labels_path, f"label {labels.max()} is outside 0..9")
    if len(images) != len(labels):
        raise _corrupt(labels_path, f"it holds {len(labels)} labels but {images_path.name} "
                                    f"holds {len(images)} images")
    return images, labels


def read_idx(path: Path, ndim: int) -> np.ndarray:
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
