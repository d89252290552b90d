"""Shared test set-up: Keras on TensorFlow, quiet logs, where the Fashion-MNIST files are."""
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

SHARED_FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"


def fashion_folder(environ=os.environ) -> Path:
    """Where tests read the real Fashion-MNIST: $GRADLOSS_DATA_DIR if set, else the shared copy
    beside the repository (../shared/data/fashion-mnist)."""
    configured = environ.get("GRADLOSS_DATA_DIR")
    return Path(configured).expanduser() if configured else SHARED_FASHION


FASHION_DIR = fashion_folder()  # read once, before any test changes the environment


@pytest.fixture
def fashion_dir() -> Path:
    """The official Fashion-MNIST files; skip where they are absent."""
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST files not found in {FASHION_DIR} (set GRADLOSS_DATA_DIR)")
    return FASHION_DIR
