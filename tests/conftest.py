"""Shared test set-up: Keras on TensorFlow, quiet logs, paths to the shared data."""
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

SHARED_FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"


@pytest.fixture
def fashion_dir() -> Path:
    """The official Fashion-MNIST files beside the repository; skip where they are absent."""
    if not (SHARED_FASHION / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST files not found in {SHARED_FASHION}")
    return SHARED_FASHION
