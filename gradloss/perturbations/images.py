"""The grid images the store keeps (an attacked image per grid row): float16 bytes, (H, W, C).

NumPy only: the dashboard decodes them."""
from __future__ import annotations

import numpy as np


def image_to_bytes(image: np.ndarray) -> bytes:
    """An image (H, W, C) in [0, 1] as the float16 bytes the store keeps."""
    return np.asarray(image).astype(np.float16).tobytes()


def image_from_bytes(blob: bytes, shape=(28, 28, 1)) -> np.ndarray:
    """A stored grid image back as float32 (H, W, C): `shape` is the dataset's image shape (the
    readers take it from the test set; the default is the 28x28 greyscale of the built-ins)."""
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32).reshape(shape)
