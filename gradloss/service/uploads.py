"""A run's own dataset and .keras file through the store: uploaded once by content hash when the
run is submitted, fetched by hash by whichever worker trains or evaluates it.

Why the store (as for checkpoints, `gradloss.service.checkpoints`): it is already shared by every
machine, and a file kept by its content hash is the file the run was submitted with, whatever
happens to the user's copy. A dataset is kept as its canonical .npz (an image folder too, as
decoded and split at submission), so every worker reads the same arrays.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from gradloss.core.errors import DataError
from gradloss.core.plan import RunPlan
from gradloss.service.settings import home
from gradloss.service.store import Store

SUFFIX = {"dataset": ".npz", "architecture": ".keras"}


def upload(plan: RunPlan, store: Store) -> None:
    """Put the plan's file dataset and .keras architecture into the store (if not there yet)."""
    from gradloss.data import describe, upload_bytes

    config = plan.train
    if config.dataset_hash is not None and not store.files.has(config.dataset_hash):
        info = describe(_path(plan.data_dir, config.dataset_label))
        if info.sha256 != config.dataset_hash:
            raise DataError(f"The dataset {plan.data_dir} changed since the run was planned: its "
                            f"content hash is {info.sha256[:12]}, the plan's "
                            f"{config.dataset_hash[:12]}; plan the run again.")
        store.files.put(info.sha256, "dataset", info.name, upload_bytes(info), info.to_dict())
    if config.architecture_hash is not None and not store.files.has(config.architecture_hash):
        from gradloss.architectures import file_hash

        path = _path(plan.architecture_path, config.architecture_label)
        data = path.read_bytes()
        if file_hash(path) != config.architecture_hash:
            raise DataError(f"The model file {path} changed since the run was planned; plan "
                            "the run again.")
        store.files.put(config.architecture_hash, "architecture", path.name, data,
                        {"path": str(path)})


def _path(path: str | None, label: str) -> Path:
    if path is None:
        raise DataError(f"The run's {label} has no file to upload: give its path when planning it.")
    return Path(path)


def local_file(store: Store, sha256: str, kind: str, cache: Path | None = None) -> Path:
    """This machine's copy of the stored file `sha256` (downloaded once into `cache`, default
    home()/files); DataError when the store has none."""
    path = (cache or home() / "files") / f"{sha256}{SUFFIX[kind]}"
    if path.exists():
        return path
    data = store.files.get(sha256)
    if data is None:
        raise DataError(f"The run store has no {kind} file with content hash {sha256[:12]}; "
                        "submit the run again from where the file is.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def resolve(plan: RunPlan, store: Store) -> RunPlan:
    """The plan with its file dataset and .keras architecture as files on this machine."""
    config = plan.train
    if config.dataset_hash is not None:
        plan = replace(plan, data_dir=str(local_file(store, config.dataset_hash, "dataset")))
    if config.architecture_hash is not None:
        plan = replace(plan, architecture_path=str(
            local_file(store, config.architecture_hash, "architecture")))
    return plan
