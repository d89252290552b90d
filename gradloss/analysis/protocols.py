"""Protocols: what runs must share for their accuracies to be compared.

A run's protocol is how it was trained apart from its objective and that objective's strength
(λ, σ_train) and its seed: the dataset and how many of its training images, the epochs, the
batch size, the learning rate and the engine. Runs of one protocol differ only in what a
comparison is about; runs of two protocols differ in something else too, and a sentence that
compares them must say what (`differences`, `difference_words`).

Epochs and batch size also agree when every run is at its own objective's reference value:
the gradient loss trains 10 epochs at batch 100 and the baseline 20 at batch 32 by reference,
and these two runs share a protocol; so do a gradient-loss and a baseline run both at batch 32.
A run can so belong to two protocols (a baseline at 20 epochs, batch 32), and runs are
compared pairwise or as a set (`same_protocol`), not by a key alone.

Each field is one entry of PROTOCOL_FIELDS (a label for people and how to read it off a
TrainConfig); every function takes `fields` (default: all). A file dataset is its name and
content hash, a .keras architecture likewise, so two different "my.npz" never compare. Pure
Python over typed records: no pandas.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from gradloss import objectives
from gradloss.core.config import TrainConfig

@dataclass(frozen=True)
class Field:
    label: str                             # words for people: "training images"
    read: Callable[[TrainConfig], object]  # its value in a TrainConfig (hashable)
    by_reference: bool = False             # also agrees when every run is at its reference
    unsaid: object = None                  # a value `describe` leaves out (the usual one)


PROTOCOL_FIELDS: dict[str, Field] = {
    "dataset": Field("dataset", lambda c: c.dataset_label),  # a file's: name@content hash
    "n_train": Field("training images", lambda c: c.n_train),
    "epochs": Field("epochs", lambda c: c.epochs, by_reference=True),
    "batch_size": Field("batch size", lambda c: c.batch_size, by_reference=True),
    "learning_rate": Field("learning rate", lambda c: c.learning_rate),
    "engine": Field("engine", lambda c: c.engine),
    "architecture": Field("architecture", lambda c: c.architecture_label,  # a file's: name@hash
                          unsaid="cnn"),  # the reference network goes without saying
    "initial_weights": Field("initial weights", lambda c: "the file's" if c.initial_weights
                             else "seeded", unsaid="seeded"),
}


def _config(run_or_config) -> TrainConfig | None:
    return run_or_config if isinstance(run_or_config, TrainConfig) else run_or_config.config


def _at_reference(name: str, config: TrainConfig) -> bool:
    return getattr(config, name) == objectives.get(config.objective).protocol.get(name)


def protocol_key(run_or_config, fields=None) -> tuple | None:
    """The protocol's values of a run (or TrainConfig) as a hashable tuple, in the order of
    `fields` (default: every PROTOCOL_FIELDS entry); None for an unreadable run. Runs with
    one key share a protocol; runs with two keys may still (`same_protocol`)."""
    config = _config(run_or_config)
    if config is None:
        return None
    return tuple(PROTOCOL_FIELDS[name].read(config) for name in (fields or PROTOCOL_FIELDS))


def _agrees(name: str, configs: list[TrainConfig]) -> bool:
    spec = PROTOCOL_FIELDS[name]
    if len({spec.read(c) for c in configs}) <= 1:
        return True
    return spec.by_reference and all(_at_reference(name, c) for c in configs)


def _value(name: str, config: TrainConfig) -> tuple[str, str]:
    """A field's value in words, and ' (reference)' at the objective's reference, else ''."""
    value = PROTOCOL_FIELDS[name].read(config)
    text = f"{value:g}" if name == "learning_rate" else str(value)
    at = PROTOCOL_FIELDS[name].by_reference and _at_reference(name, config)
    return text, " (reference)" if at else ""


def _shown(name: str, config: TrainConfig) -> str:
    """A field's value in words: '20 (reference)' at the objective's reference, else the value."""
    return "".join(_value(name, config))


def differences(runs, fields=None) -> dict[str, list[str]]:
    """{field label: each run's value in words} for the fields in which the runs (in the given
    order) do not share a protocol; {} when they share one. Unreadable runs are left out."""
    configs = [c for c in map(_config, runs) if c is not None]
    return {PROTOCOL_FIELDS[name].label: [_shown(name, c) for c in configs]
            for name in fields or PROTOCOL_FIELDS if not _agrees(name, configs)}


def same_protocol(runs, fields=None) -> bool:
    """True when the runs (at least one, all readable) share a protocol."""
    runs = list(runs)
    return bool(runs) and all(_config(r) is not None for r in runs) and \
        not differences(runs, fields)


def difference_words(run, reference, fields=None) -> str:
    """What differs between the protocols of `run` and `reference`, in words: 'epochs 1 against
    20 (reference); training images 300 against 1437'; '' when they share one."""
    found = differences([run, reference], fields)
    return "; ".join(f"{label} {ours} against {theirs}" for label, (ours, theirs) in found.items())


def describe(run_or_config, fields=None) -> str:
    """A protocol for people: 'digits, 1437 training images, 10 epochs (reference), batch 100
    (reference), learning rate 0.001, tensorflow'. Given several runs that share a protocol,
    a field whose values differ (each at its objective's reference) reads 'each objective's
    reference epochs'."""
    if isinstance(run_or_config, (list, tuple)):
        configs = [c for c in map(_config, run_or_config) if c is not None]
        if not configs:
            return "unreadable"
        shared = {name for name in fields or PROTOCOL_FIELDS
                  if len({PROTOCOL_FIELDS[name].read(c) for c in configs}) > 1}
        if shared:
            text = describe(configs[0], fields)
            for name in shared:
                one = describe(configs[0], [name])
                text = text.replace(one, f"each objective's reference "
                                         f"{PROTOCOL_FIELDS[name].label}", 1)
            return text
        run_or_config = configs[0]
    config = _config(run_or_config)
    if config is None:
        return "unreadable"
    words = {"dataset": "{}{}", "engine": "{}{}", "n_train": "{} training images{}",
             "epochs": "{} epoch" + "s" * (config.epochs != 1) + "{}", "batch_size": "batch {}{}",
             "learning_rate": "learning rate {}{}", "architecture": "{} network{}",
             "initial_weights": "{} initial weights{}"}
    return ", ".join(words.get(name, PROTOCOL_FIELDS[name].label + " {}{}")
                     .format(*_value(name, config)) for name in fields or PROTOCOL_FIELDS
                     if fields or PROTOCOL_FIELDS[name].read(config)
                     != PROTOCOL_FIELDS[name].unsaid)


def latest_comparable(runs, statuses=("done",), fields=None) -> dict:
    """{objective: run}: the newest run in `statuses`, and the newest run of each other objective
    that shares a protocol with it and with those already taken, in registry order. `runs` is
    newest first (as RunRepository.list gives). Runs of other protocols are never mixed in, so
    a comparison of these is sound."""
    runs = [r for r in runs if r.status in statuses and r.config is not None]
    taken: dict = {}
    for run in runs:
        if run.objective not in taken and same_protocol([*taken.values(), run], fields):
            taken[run.objective] = run
    return {o: taken[o] for o in objectives.NAMES if o in taken}
