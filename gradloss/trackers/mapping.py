"""A stored run or experiment as a tracker sees it: params, tags, metric names and points.

One mapping for MLflow and TensorBoard, so both show the same names:

- params: the run's whole plan (objective, its strength, dataset, epochs, batch size, learning
  rate, training-set size, seed, engine, the protocol, the sweep and the evaluation), as text;
- metrics: the store's own names and steps for training (`loss` per step; `epoch_loss`,
  `train_accuracy`, `test_accuracy`, `step_ms`, `input_grad_norm` per epoch), and one metric per
  measured point after training, at step 0: `accuracy/sigma_0.1` for the noise sweep,
  `accuracy/contrast/severity_3` or `accuracy/fgsm/eps_0.1` for the other perturbations (any
  perturbation in the registry, so a new kind comes out without a change here);
- an experiment's summary, per arm and level: `summary/<arm>/sigma_0.1/mean` and its `low`,
  `high`, `diff`, `diff_low`, `diff_high`, `p_improve`, `n` (the interval and the paired
  difference to the reference arm, `gradloss.analysis.stats.summarize`).

Pure: records and frames in, dicts and lists out; no store, no tracker.
"""
from __future__ import annotations

import functools
import importlib.metadata
import math
import re
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from gradloss import objectives
from gradloss.core.config import REFERENCE_PROTOCOL, TrainConfig
from gradloss.core.evaluation import GAUSSIAN, PERTURBATIONS, EvaluationConfig
from gradloss.core.experiment import ExperimentConfig
from gradloss.core.records import StoredRun

ID_TAG = "gradloss.id"        # the gradloss run or experiment id: how an export finds its run again
KIND_TAG = "gradloss.kind"    # "run" or "experiment"
LEVEL_KEYS = {"noise": "sigma", "corruption": "severity", "attack": "eps"}  # ASCII level names
SUMMARY_STATS = ("mean", "low", "high", "diff", "diff_low", "diff_high", "p_improve", "n")
# Columns a summary may gain later and that then go out too: the p-values of the paired
# difference, raw and adjusted over the family of comparisons (issue #23's corrected claims).
LATER_STATS = ("p_value", "p_adjusted")


class Point(NamedTuple):
    """One value of metric `key` at `step`."""

    key: str
    value: float
    step: int


@functools.lru_cache(maxsize=1)
def gradloss_version() -> str:
    """The installed gradloss's version, or the checkout's (pyproject.toml) when not installed."""
    try:
        return importlib.metadata.version("gradloss")
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text())["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def strength(config: TrainConfig) -> float | None:
    """The objective's own parameter (noise augmentation's σ_train, the penalty's λ), or None for
    an objective without one."""
    values = [getattr(config, name) for name in objectives.PARAMETERS
              if getattr(config, name) is not None]
    return float(values[0]) if values else None


def protocol(config: TrainConfig) -> str:
    """"reference" when the run trains as its objective's reference protocol on the whole
    training set, else "custom"."""
    reference = REFERENCE_PROTOCOL[config.objective]
    same = all(getattr(config, name) == value for name, value in reference.items())
    return "reference" if same and config.train_size is None else "custom"


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _flat(prefix: str, config) -> dict[str, str]:
    return {f"{prefix}.{name}": _text(value) for name, value in asdict(config).items()}


def run_params(run: StoredRun, evaluation: EvaluationConfig | None = None) -> dict[str, str]:
    """The run's whole plan as tracker params (text)."""
    config = run.config
    params = {"objective": run.objective, "dataset": run.dataset, "engine": run.engine}
    if config is not None:
        params.update({name: _text(value) for name, value in config.to_dict().items()
                       if value is not None or name not in objectives.PARAMETERS})
        params["strength"] = _text(strength(config))
        params["protocol"] = protocol(config)
    params.update(_flat("sweep", run.sweep))
    if evaluation is not None:
        params.update(_flat("evaluation", evaluation))
    if run.experiment_id is not None:
        params.update({"experiment_id": run.experiment_id, "arm": run.arm or ""})
    return params


def run_name(run: StoredRun) -> str:
    """A short label: arm (or objective), seed and the run's id."""
    seed = f" seed {run.config.seed}" if run.config is not None else ""
    return f"{run.arm or run.objective}{seed} · {run.run_id}"


def run_tags(run: StoredRun) -> dict[str, str]:
    """What can change as a run goes on: status, device, where, why it failed; and its id."""
    tags = {ID_TAG: run.run_id, KIND_TAG: "run", "gradloss.status": run.status,
            "gradloss.version": gradloss_version(), "mlflow.runName": run_name(run)}
    for key, value in (("gradloss.device", run.device), ("gradloss.host", run.host),
                       ("gradloss.error", run.error), ("gradloss.experiment_id", run.experiment_id),
                       ("gradloss.data_dir", run.data_dir)):
        if value:
            tags[key] = str(value)
    return tags


def experiment_params(spec: ExperimentConfig) -> dict[str, str]:
    """An experiment's spec as tracker params: its arms (each with its settings), seeds and the
    shared protocol, sweep and evaluation."""
    params = {"arms": ",".join(spec.arm_names), "seeds": _text(spec.seeds),
              "reference": spec.reference}
    for name in ("dataset", "train_size", "epochs", "batch_size", "engine", "deterministic",
                 "intervals"):
        params[name] = _text(getattr(spec, name))
    for arm in spec.arms:
        params[f"arm.{arm['name']}"] = ",".join(f"{k}={_text(v)}" for k, v in arm.items()
                                                if k != "name")
    params.update(_flat("sweep", spec.sweep))
    if spec.evaluation is not None:
        params.update(_flat("evaluation", spec.evaluation))
    return params


def experiment_name(experiment_id: str, spec: ExperimentConfig | None) -> str:
    if spec is None:
        return f"experiment {experiment_id}"
    return f"experiment {' vs '.join(spec.arm_names)} × {len(spec.seeds)} seeds · {experiment_id}"


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def training_points(metrics: pd.DataFrame) -> list[Point]:
    """The store's metric rows (run_id, step, epoch, name, value) as points, names and steps kept."""
    return [Point(str(name), float(value), int(step)) for name, value, step
            in metrics[["name", "value", "step"]].itertuples(index=False) if _finite(value)]


def level_key(perturbation: str, level) -> str:
    """`sigma_0.1`, `severity_3`, `eps_0.1`: a level with its ASCII name."""
    known = PERTURBATIONS.get(perturbation)
    name = LEVEL_KEYS.get(known.kind, "level") if known is not None else "level"
    return f"{name}_{float(level):g}"


def _where(perturbation: str, level) -> str:
    """`sigma_0.1` for the noise sweep, `contrast/severity_3` for another perturbation; a level
    that is a name (a summary's "auc") keeps it."""
    where = safe(level) if isinstance(level, str) else level_key(perturbation, level)
    return where if perturbation == GAUSSIAN else f"{safe(perturbation)}/{where}"


def sweep_points(sweep: pd.DataFrame) -> list[Point]:
    """The noise sweep (sigma, accuracy, accuracy_std) as `accuracy/sigma_S` and
    `accuracy_std/sigma_S` at step 0."""
    return _curve_points(sweep.assign(perturbation=GAUSSIAN).rename(columns={"sigma": "level"}))


def evaluation_points(rows: pd.DataFrame) -> list[Point]:
    """Evaluation rows (perturbation, level, accuracy, accuracy_std) as
    `accuracy/<perturbation>/<level>` and `accuracy_std/...` at step 0."""
    return _curve_points(rows)


def _curve_points(rows: pd.DataFrame) -> list[Point]:
    points = []
    for perturbation, level, accuracy, std in rows[
            ["perturbation", "level", "accuracy", "accuracy_std"]].itertuples(index=False):
        key = _where(perturbation, level)
        points += [Point(f"{name}/{key}", float(value), 0) for name, value
                   in (("accuracy", accuracy), ("accuracy_std", std)) if _finite(value)]
    return points


def summary_points(summary: pd.DataFrame, perturbation: str = GAUSSIAN) -> list[Point]:
    """An experiment's summary (stats.summarize: arm, level, n, mean, low, high, diff, ...)
    as `summary/<arm>/<level>/<stat>` at step 0; the reference arm has no diff.

    Every stat of SUMMARY_STATS goes out, and each of LATER_STATS the summary has."""
    stats = [s for s in SUMMARY_STATS + LATER_STATS if s in summary.columns]
    points = []
    for row in summary.to_dict("records"):
        where = _where(perturbation, row["level"])
        points += [Point(f"summary/{safe(str(row['arm']))}/{where}/{stat}", float(row[stat]), 0)
                   for stat in stats if _finite(row[stat])]
    return points


def safe(text: str) -> str:
    """`text` as one part of a metric name (MLflow allows letters, digits, _ - . space : /;
    a slash would split the name, so it goes too)."""
    return re.sub(r"[^\w\-. :]", "_", text)


def hparams(run: StoredRun) -> dict[str, object]:
    """The run's hyperparameters for TensorBoard's HParams table, typed (numbers stay numbers);
    an objective without a strength has none."""
    config = run.config
    values: dict[str, object] = {"objective": run.objective, "dataset": run.dataset,
                                 "engine": run.engine}
    if config is not None:
        values.update(seed=config.seed, epochs=config.epochs, batch_size=config.batch_size,
                      learning_rate=config.learning_rate,
                      train_size=config.n_train, protocol=protocol(config))
        if strength(config) is not None:
            values["strength"] = strength(config)
    if run.arm is not None:
        values["arm"] = run.arm
    return values
