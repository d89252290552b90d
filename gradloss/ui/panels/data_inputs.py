"""The Train page's dataset and architecture pickers, with the uploads that add to them.

A built-in dataset or architecture is picked by name; a .npz, a zipped image folder or a .keras
file is uploaded once: checked (`gradloss.data.describe`; a .keras file in a TensorFlow child,
`gradloss.architectures`, so this process never loads TensorFlow), then stored in the run store
by its content hash, so the worker on any machine trains on it; every later visit offers it by
name. A refused upload shows why in red and stores nothing.
"""
from __future__ import annotations

import hashlib
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from gradloss.architectures import LABELS, describe_architecture
from gradloss.core.config import ARCHITECTURES, DATASETS, source_label
from gradloss.core.errors import DataError
from gradloss.data import BUILTINS, DatasetInfo, describe, upload_bytes
from gradloss.service.store import Store

UPLOAD = "upload"  # the pickers' last option: upload a file


@dataclass(frozen=True)
class Sources:
    """What the pickers chose: the dataset, and the TrainConfig fields of it and of the
    architecture."""

    data: DatasetInfo
    fields: dict

    @property
    def key(self) -> str:
        """The dataset's label: form fields whose limits follow the dataset are keyed by it."""
        return self.data.label


def _stored(store: Store, kind: str) -> dict[str, dict]:
    try:
        return {source_label(f["name"], f["sha256"]): f for f in store.files.list(kind)}
    except Exception as e:  # noqa: BLE001  (the page still offers the built-ins)
        st.error(f"Could not read the uploaded files: {e}")
        return {}


def _save_upload(name: str, data: bytes, folder: Path) -> Path:
    """The uploaded file in `folder`; a .zip is taken for an image folder and unpacked."""
    path = folder / Path(name).name
    path.write_bytes(data)
    if path.suffix.lower() != ".zip":
        return path
    target = folder / path.stem
    with zipfile.ZipFile(path) as archive:
        archive.extractall(target)  # zipfile drops absolute paths and ".." components
    entries = [p for p in target.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else target


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@st.cache_data(show_spinner=False, max_entries=16)
def _upload_dataset(url: str, name: str, sha: str, _data: bytes) -> tuple[dict | None, str | None]:
    """(its DatasetInfo as a dict, None) after storing the uploaded dataset, or (None, why not);
    once per content (`sha` of the upload keys the cache)."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            info = describe(_save_upload(name, _data, Path(folder)))
            Store(url).files.put(info.sha256, "dataset", info.name, upload_bytes(info),
                                 {**info.to_dict(), "path": None})
        except (DataError, zipfile.BadZipFile, OSError) as e:
            return None, str(e)
    return {**info.to_dict(), "path": None}, None


@st.cache_data(show_spinner=False, max_entries=64)
def _check_model(url: str, name: str, sha: str, shape: tuple, classes: int, logits: bool,
                 _data: bytes | None = None) -> tuple[dict | None, str | None]:
    """(the model's summary, None) once the .keras file `sha` (uploaded as `_data`, or already in
    the store) passed the check against `shape` and `classes` and is stored; else (None, why)."""
    store = Store(url)
    data = _data if _data is not None else store.files.get(sha)
    with tempfile.TemporaryDirectory() as folder:
        path = _save_upload(name, data, Path(folder))
        try:
            info = describe_architecture(path, shape, classes, logits)
        except DataError as e:
            return None, str(e)
        store.files.put(info.sha256, "architecture", info.name, data, info.summary)
    return info.summary, None


def dataset_picker(store: Store, default: str = "fashion_mnist", column=st) -> DatasetInfo | None:
    """A built-in or uploaded dataset (None while an upload is awaited or refused)."""
    uploaded = _stored(store, "dataset")
    options = [*DATASETS, *uploaded, UPLOAD]
    names = {name: BUILTINS[name].label for name in DATASETS}
    chosen = column.selectbox("Dataset", options, key="dataset", index=options.index(default),
                              format_func=lambda o: names.get(o) or (
                                  "Upload a .npz or a zipped image folder…" if o == UPLOAD else o),
                              help="A built-in, or your own: a .npz (x_train, y_train, x_test, "
                                   "y_test; integer or one-hot labels) or a zipped folder with "
                                   "one sub-folder of images per class (20 % of each class is "
                                   "the test set). Pixels are scaled to [0, 1].")
    if chosen in DATASETS:
        return describe(chosen)
    if chosen in uploaded:
        found = {k: v for k, v in uploaded[chosen].items() if k not in ("file_kind", "sha")}
    else:
        upload = column.file_uploader("Your dataset", type=["npz", "zip"], key="dataset_upload")
        if upload is None:
            return None
        data = upload.getvalue()
        with st.spinner(f"Reading {upload.name}…"):
            found, error = _upload_dataset(store.url, upload.name, _sha(data), data)
        if error is not None:
            column.error(f"Not usable: {error}")
            return None
    info = DatasetInfo.from_dict({**found, "path": None})
    column.caption(f"{info.label}: {info.n_train} training and {info.n_test} test images of "
                   f"{'×'.join(map(str, info.shape))}, {info.classes} classes; pixels "
                   f"{info.scaling}.")
    return info


def architecture_picker(store: Store, data: DatasetInfo, column=st) -> dict | None:
    """The TrainConfig fields of a built-in or uploaded architecture (None while awaited or
    refused); an uploaded .keras file is checked against `data`."""
    uploaded = _stored(store, "architecture")
    options = [*ARCHITECTURES, *uploaded, UPLOAD]
    chosen = column.selectbox("Architecture", options, key="architecture",
                              format_func=lambda o: LABELS.get(o) or (
                                  "Upload a .keras model…" if o == UPLOAD else o),
                              help="A built-in sized from the dataset, or your own .keras file "
                                   "(loaded in safe mode: a model needing custom code is "
                                   "refused). Each seed gives it fresh weights unless you start "
                                   "from the file's.")
    if chosen in ARCHITECTURES:
        try:
            describe_architecture(chosen, data.shape, data.classes)
        except DataError as e:
            column.error(f"Not usable: {e}")
            return None
        return {"architecture": chosen}
    logits = column.checkbox("The model outputs logits (append a softmax)", key="from_logits")
    start = column.checkbox("Start from the file's weights", key="initial_weights")
    if chosen in uploaded:
        name, sha, data_bytes = uploaded[chosen]["name"], uploaded[chosen]["sha256"], None
    else:
        upload = column.file_uploader("Your model", type=["keras"], key="architecture_upload")
        if upload is None:
            return None
        name, data_bytes = upload.name, upload.getvalue()
        sha = _sha(data_bytes)
    with st.spinner(f"Checking {name} against {data.label}…"):
        summary, error = _check_model(store.url, name, sha, tuple(data.shape), data.classes,
                                      logits, data_bytes)
    if error is not None:
        column.error(f"Not usable: {error}")
        return None
    column.caption(f"{name}: {summary.get('layers')} layers, {summary.get('parameters'):,} "
                   "parameters.")
    return {"architecture": name, "architecture_hash": sha, "initial_weights": start,
            "from_logits": logits}


def sources(store: Store, default: str = "fashion_mnist") -> Sources | None:
    """Both pickers side by side (the dataset starting at `default`); None until both have a
    usable choice."""
    left, right = st.columns(2)
    data = dataset_picker(store, default, left)
    if data is None:
        return None
    architecture = architecture_picker(store, data, right)
    if architecture is None:
        return None
    return Sources(data, {**data.config_fields(), **architecture})
