"""How the dashboard names runs for people: labels that tell runs apart, short ids, durations,
the line of an error worth showing. No Streamlit, no store.

A label says what a researcher tells runs apart by: the run's name if it has one, its
objective and that objective's strength (λ, σ_train), its seed, and, among several runs, the
protocol fields in which they differ (`analysis.protocols`); the short id comes last, so two
runs alike in all of that still differ.
"""
from __future__ import annotations

import math

from gradloss import objectives
from gradloss.analysis import protocols
from gradloss.core.frontier import SYMBOLS

STRENGTH_NAMES = SYMBOLS  # λ, σ_train: the frontier's arm names use the same


def short_id(run_id: str) -> str:
    """The random tail of a store run id ("20260101-120000-3f2a1b" -> "3f2a1b")."""
    return str(run_id).rsplit("-", 1)[-1][:8]


def strength(config) -> str:
    """The objective's own parameters in words: 'λ 0.1', 'σ_train 0.1', or ''."""
    if config is None:
        return ""
    return ", ".join(f"{STRENGTH_NAMES.get(k, k)} {v:g}" for k, v in config.objective_params.items())


def _protocol_words(name: str, config) -> str:
    """One protocol field of a config in a label's few words: '1 epoch', '300 images'."""
    value = protocols.PROTOCOL_FIELDS[name].read(config)
    if name == "n_train":
        return f"{value} images"
    if name in ("epochs", "batch_size"):
        number = getattr(config, name)
        if name == "epochs":
            return f"{number} epoch{'s' * (number != 1)}"
        return f"batch {number}"
    if name == "learning_rate":
        return f"lr {value:g}"
    if name == "initial_weights":
        return f"{value} weights"
    return str(value)


def run_labels(runs, status: bool = True) -> dict[str, str]:
    """{run_id: label} for runs shown together: 'gradient loss · seed 0 · 1 epoch · 3f2a1b'.

    Protocol fields appear only where these runs differ in them; a run's name, if it has one,
    leads; status (unless done) trails, so a picker says what is still training."""
    runs = list(runs)
    differ = protocols.differences(runs)  # fields in which these runs do not share a protocol
    varying = [name for name, field in protocols.PROTOCOL_FIELDS.items() if field.label in differ]
    labels = {}
    for run in runs:
        what = objectives.label(run.objective)
        parts = [f"{run.name} ({what})" if run.name else what]
        if run.config is not None:
            parts += [p for p in (strength(run.config), f"seed {run.config.seed}") if p]
            parts += [_protocol_words(name, run.config) for name in varying]
        parts.append(short_id(run.run_id))
        label = " · ".join(parts)
        if status and run.status != "done":
            label += f" ({run.status})"
        labels[run.run_id] = label
    return labels


def run_label(run, status: bool = True) -> str:
    """The label of one run on its own (no protocol fields: nothing to tell it apart from)."""
    return run_labels([run], status)[run.run_id]


def format_duration(seconds) -> str:
    """45 s, 3 min 05 s, 1 h 02 min; an en dash when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(max(seconds, 0)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def error_line(text) -> str:
    """The line of an error worth showing: its last non-empty one (a traceback ends with the
    message), or ''."""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_link(run_id: str) -> str:
    """The run page's address for a run, relative to the dashboard (a table's link column)."""
    return f"run?id={run_id}"
