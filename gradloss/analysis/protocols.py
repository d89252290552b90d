"""Protocols: what runs must share for their accuracies to be compared.

A run's protocol is how it was trained apart from its objective and that objective's strength
(λ, σ_train) and its seed: the dataset and how many of its training images, the epochs, the
batch size, the learning rate and the engine. Runs of one protocol differ only in what a
comparison is about; runs of two protocols differ in something else too, and a sentence that
compares them must say what (`differences`, `difference_words`).

Epochs and batch size are read against the objective's reference protocol: the gradient loss
trains 10 epochs at batch 100 and the baseline 20 at batch 32 by reference, and these two runs
share a protocol ("reference"), while a 1-epoch run of either does not share it.

Each field is one entry of PROTOCOL_FIELDS (a label for people and how to read it off a
TrainConfig); `protocol_key(config, fields)` takes any of them, so a later field (the data's
content hash, the architecture) is one more entry. Pure Python over typed records: no pandas.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from gradloss import objectives
from gradloss.core.config import TrainConfig

REFERENCE = "reference"


def _reference_or(name: str) -> Callable[[TrainConfig], object]:
    """The field's value, or REFERENCE when it is the objective's reference value."""
    def read(config: TrainConfig):
        value = getattr(config, name)
        return REFERENCE if value == objectives.get(config.objective).protocol.get(name) else value
    return read


@dataclass(frozen=True)
class Field:
    label: str                           # words for people: "training images"
    read: Callable[[TrainConfig], object]  # its value in a TrainConfig (hashable)


PROTOCOL_FIELDS: dict[str, Field] = {
    "dataset": Field("dataset", lambda c: c.dataset),
    "n_train": Field("training images", lambda c: c.n_train),
    "epochs": Field("epochs", _reference_or("epochs")),
    "batch_size": Field("batch size", _reference_or("batch_size")),
    "learning_rate": Field("learning rate", lambda c: c.learning_rate),
    "engine": Field("engine", lambda c: c.engine),
}


def _config(run_or_config) -> TrainConfig | None:
    return run_or_config if isinstance(run_or_config, TrainConfig) else run_or_config.config


def protocol_key(run_or_config, fields=None) -> tuple | None:
    """The protocol of a run (or TrainConfig) as a hashable tuple of its fields' values, in the
    order of `fields` (default: every PROTOCOL_FIELDS entry); None for an unreadable run."""
    config = _config(run_or_config)
    if config is None:
        return None
    return tuple(PROTOCOL_FIELDS[name].read(config) for name in (fields or PROTOCOL_FIELDS))


def same_protocol(runs, fields=None) -> bool:
    """True when every run (of at least one) has one readable protocol."""
    keys = {protocol_key(r, fields) for r in runs}
    return len(keys) == 1 and None not in keys


def group(runs, fields=None) -> dict[tuple, list]:
    """Runs by protocol, in the order of their first run (newest first if `runs` is); unreadable
    runs are left out."""
    groups: dict[tuple, list] = {}
    for run in runs:
        key = protocol_key(run, fields)
        if key is not None:
            groups.setdefault(key, []).append(run)
    return groups


def _shown(name: str, value, config: TrainConfig) -> str:
    """A field's value in words: 'reference (20)' for a reference value, else the value."""
    if value == REFERENCE:
        return f"{REFERENCE} ({getattr(config, name)})"
    if name == "learning_rate":
        return f"{value:g}"
    return str(value)


def differences(runs, fields=None) -> dict[str, list[str]]:
    """{field label: each run's value in words} for the fields whose value is not the same in
    every run (runs in the given order); {} when they share one protocol."""
    configs = [_config(r) for r in runs]
    configs = [c for c in configs if c is not None]
    out = {}
    for name in fields or PROTOCOL_FIELDS:
        spec = PROTOCOL_FIELDS[name]
        values = [spec.read(c) for c in configs]
        if len(set(values)) > 1:
            out[spec.label] = [_shown(name, v, c) for v, c in zip(values, configs)]
    return out


def difference_words(run, reference, fields=None) -> str:
    """What differs between the protocols of `run` and `reference`, in words: 'epochs 1 against
    reference (20); training images 300 against 1437'; '' when they share one."""
    found = differences([run, reference], fields)
    return "; ".join(f"{label} {ours} against {theirs}" for label, (ours, theirs) in found.items())


def describe(run_or_config, fields=None) -> str:
    """A protocol for people: 'digits, 1437 training images, reference epochs and batch size,
    learning rate 0.001, tensorflow'."""
    config = _config(run_or_config)
    if config is None:
        return "unreadable"
    names = list(fields or PROTOCOL_FIELDS)
    key = dict(zip(names, protocol_key(config, names)))
    words = []
    if "dataset" in key:
        words.append(str(key["dataset"]))
    if "n_train" in key:
        words.append(f"{key['n_train']} training images")
    reference = [PROTOCOL_FIELDS[n].label for n in ("epochs", "batch_size")
                 if key.get(n) == REFERENCE]
    if reference:
        words.append(f"the objective's reference {' and '.join(reference)}")
    for name in ("epochs", "batch_size"):
        if name in key and key[name] != REFERENCE:
            words.append(f"{key[name]} epoch{'s' * (key[name] != 1)}" if name == "epochs"
                         else f"batch {key[name]}")
    if "learning_rate" in key:
        words.append(f"learning rate {key['learning_rate']:g}")
    words += [str(key[n]) if n == "engine" else f"{PROTOCOL_FIELDS[n].label} {key[n]}"
              for n in names if n not in ("dataset", "n_train", "epochs", "batch_size",
                                          "learning_rate")]
    return ", ".join(words)


def latest_comparable(runs, statuses=("done",), fields=None) -> dict:
    """{objective: run}: the newest run in `statuses` and the newest run of each other objective
    of the same protocol, in registry order. `runs` is newest first (as RunRepository.list
    gives). Runs of other protocols are never mixed in, so a comparison of these is sound."""
    runs = [r for r in runs if r.status in statuses and r.config is not None]
    if not runs:
        return {}
    key = protocol_key(runs[0], fields)
    latest = {}
    for run in runs:
        if run.objective not in latest and protocol_key(run, fields) == key:
            latest[run.objective] = run
    return {o: latest[o] for o in objectives.NAMES if o in latest}
