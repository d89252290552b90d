"""Architectures by spec, described without Keras: a built-in name or a .keras file.

`describe_architecture(spec, dataset)` says what a run would train and refuses what cannot fit the
dataset, before anything is queued: a built-in needs only the image size (the reference CNN's two
valid 3x3 convolutions and poolings need at least MIN_SIDE["cnn"] pixels a side); a .keras file
is hashed here and loaded and checked in a child process (`python -m gradloss.models.user`, with
Keras's safe mode), so the CLI keeps its backend free and the dashboard never loads TensorFlow.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gradloss.core.config import ARCHITECTURES
from gradloss.core.errors import InputFileError

LABELS = {"cnn": "reference CNN", "mlp": "MLP (2 hidden layers)",
          "resnet": "small ResNet (for 32×32 colour)"}
MIN_SIDE = {"cnn": 10, "mlp": 1, "resnet": 1}
CHECK_TIMEOUT_S = 300  # loading Keras on a busy machine is slow; a model file is small


@dataclass(frozen=True)
class ArchitectureInfo:
    name: str                 # a built-in's name or the .keras file's name
    path: str | None          # the file (absolute); None for a built-in
    sha256: str | None        # the file's content hash; None for a built-in
    summary: dict             # a file's layers, parameters, input shape (empty for a built-in)

    def config_fields(self, initial_weights: bool = False, from_logits: bool = False) -> dict:
        if self.sha256 is None:
            return {"architecture": self.name}
        return {"architecture": self.name, "architecture_hash": self.sha256,
                "initial_weights": initial_weights, "from_logits": from_logits}


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _child_env() -> dict:
    """This process's environment for a TensorFlow child that imports this gradloss."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": path}


def describe_architecture(spec: str | os.PathLike, shape: tuple[int, ...], classes: int,
                          from_logits: bool = False) -> ArchitectureInfo:
    """The architecture `spec` for images `shape` (H, W, C) and `classes` classes, checked."""
    text = str(spec)
    if text in ARCHITECTURES:
        if min(shape[:2]) < MIN_SIDE[text]:
            raise InputFileError(
                f"The {LABELS[text]} needs images of at least {MIN_SIDE[text]}x{MIN_SIDE[text]} "
                f"pixels; the dataset's are {shape[0]}x{shape[1]}. Allowed: "
                f"{', '.join(a for a in ARCHITECTURES if min(shape[:2]) >= MIN_SIDE[a])}, or a "
                ".keras file of your own.")
        return ArchitectureInfo(text, None, None, {})
    path = Path(text).expanduser()
    if not path.is_file():
        raise InputFileError(f"No architecture {text!r}: give a built-in name "
                             f"({', '.join(ARCHITECTURES)}) or a .keras model file.")
    if path.suffix != ".keras":
        raise InputFileError(f"{path} is not a .keras file; allowed: a model saved with "
                             "model.save('name.keras'), or a built-in name "
                             f"({', '.join(ARCHITECTURES)}).")
    command = [sys.executable, "-m", "gradloss.models.user", str(path),
               *map(str, shape), str(classes), *(["--logits"] if from_logits else [])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S,
                          env=_child_env())
    if done.returncode == 2:
        raise InputFileError(done.stderr.strip().splitlines()[-1])
    if done.returncode != 0:
        raise InputFileError(f"{path} could not be checked: "
                             f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return ArchitectureInfo(path.name, str(path.resolve()), file_hash(path),
                            json.loads(done.stdout.strip().splitlines()[-1]))
