"""A run's checkpoint and model through the store, so any machine can resume it or show it.

Why the store and not a shared folder or object store: the files are small (the reference model
is about half a megabyte, a checkpoint about three times that, one per run, replaced each epoch),
the store is already shared by every machine with its access control and backups, and a file
written in the same database as the run's status can never disagree with it. The runner trains
in a local folder as before; after each epoch the checkpoint folder goes to the store as one tar
(`pack`), and a worker that takes the run over restores it (`restore_checkpoint`).
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

from gradloss.service.settings import home
from gradloss.service.store import Store
from gradloss.service.store.artifacts import CHECKPOINT, MODEL


def pack(folder: Path) -> bytes:
    """The files directly in `folder` as an uncompressed tar (weights do not compress)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(Path(folder).iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


def _epoch(checkpoint: Path) -> int:
    try:
        return json.loads((checkpoint / "state.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def restore_checkpoint(store: Store, run_id: str, run_dir: Path) -> int:
    """Put the store's checkpoint of the run in run_dir/checkpoint if it is newer than the local
    one (another worker trained it); returns the epoch it holds (0: start from scratch)."""
    data = store.artifacts.get(run_id, CHECKPOINT)
    local = _epoch(run_dir / "checkpoint")
    if data is None:
        return local
    tmp = run_dir / "checkpoint.download"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tmp, filter="data")  # plain files only, nothing outside tmp
    remote = _epoch(tmp)
    if remote <= local:
        shutil.rmtree(tmp)
        return local
    shutil.rmtree(run_dir / "checkpoint.old", ignore_errors=True)
    shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
    os.replace(tmp, run_dir / "checkpoint")
    return remote


def fetch_model(store: Store, run_id: str, cache: Path | None = None) -> Path | None:
    """A local copy of the run's saved model (downloaded once into `cache`, default home()/models);
    None if the store has none (the run is not done, or was done before models went to the store)."""
    path = (cache or home() / "models") / run_id / MODEL
    if path.exists():
        return path
    data = store.artifacts.get(run_id, MODEL)
    if data is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def model_file(store: Store, run) -> Path:
    """The run's saved model here: its own file if this machine trained it, else the store's
    copy; FileNotFoundError names both places when neither has it."""
    if run.model_path and Path(run.model_path).exists():
        return Path(run.model_path)
    path = fetch_model(store, run.run_id)
    if path is None:
        raise FileNotFoundError(f"run {run.run_id}'s model is neither at {run.model_path} on this "
                                "machine nor in the run store")
    return path
