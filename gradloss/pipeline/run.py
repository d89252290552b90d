"""The pipeline, written once: plans go load -> train (one seed, or a seed batch) -> noise sweep
-> grid examples -> corruptions and attacks -> finish, reporting every step to a sink.

Every caller goes through here: the worker's runner (sink: the store), the evaluator and
`gradloss evaluate` (`measure`: the same steps after training, for a saved model), the CLI's
train, experiment and reproduce (sinks: a results folder and the terminal) and the benchmarks
(the returned `Outcome`s). They differ in where results go, never in how a run is trained and
measured. The process's Keras backend must be the plans' engine (`engines.backend.use_backend`
or the worker's child environment); attacks need TensorFlow and run in a TensorFlow child
otherwise (`pipeline.evaluation`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from gradloss.core.config import SweepConfig, batchable
from gradloss.core.errors import GradlossError
from gradloss.core.evaluation import EvaluationConfig
from gradloss.core.plan import RunPlan
from gradloss.core.progress import Progress
from gradloss.data import Dataset, load_dataset
from gradloss.pipeline import evaluation as evaluation_step
from gradloss.pipeline.sinks import Outcome, Sink

log = logging.getLogger(__name__)


class Datasets:
    """Whole datasets by (name, content hash, data folder), each loaded once: every run takes
    its training rows of it (its stratified subset), every run is measured on its whole test
    set. With `subset` (a lone plan's train_size and seed) only those training rows are loaded:
    a run of 6000 images need not hold all 60 000 as floats (188 MB)."""

    def __init__(self, preloaded: Dataset | None = None,
                 subset: tuple[int | None, int] | None = None):
        self._loaded: dict[tuple, Dataset] = {}
        self._preloaded, self._subset = preloaded, subset

    def get(self, name: str, data_dir: str | None, sha256: str | None = None) -> Dataset:
        if self._preloaded is not None and (self._preloaded.name, self._preloaded.sha256) == (
                name, sha256):
            return self._preloaded
        key = (name, sha256, data_dir)
        if key not in self._loaded:
            train_size, seed = self._subset or (None, 0)
            self._loaded[key] = load_dataset(name, data_dir=data_dir, sha256=sha256,
                                             train_size=train_size, seed=seed)
        return self._loaded[key]


def run(plans: Sequence[RunPlan], sink: Sink, folders: Sequence[str | Path], *,
        seed_batch: bool = False, dataset: Dataset | None = None,
        whole_epochs: bool | None = None) -> list[Outcome]:
    """Train and measure `plans`, plan i in folders[i] (resuming from a checkpoint there);
    every result goes to `sink` as it is measured. Returns one Outcome per plan.

    seed_batch: train the plans as one program (`config.batchable`: jax, alike but for their
    seeds), then measure each; else one after another. `dataset`: use this dataset (whole, or
    a plan's own subset) instead of loading it. A diverged or cancelled run ends failed or
    cancelled; any other error propagates (the caller decides how to fail its runs)."""
    plans, folders = list(plans), [Path(f) for f in folders]
    if len(plans) != len(folders):
        raise GradlossError(f"run needs one folder per plan; got {len(plans)} plan(s) and "
                            f"{len(folders)} folder(s).")
    if seed_batch and not batchable([p.train for p in plans]):
        raise GradlossError("A seed batch needs plans alike but for their seeds, on the jax "
                            f"engine; got {[p.train.to_dict() for p in plans]}.")
    lone = plans[0].train if len(plans) == 1 else None
    data = Datasets(dataset, subset=lone and (lone.train_size, lone.seed))
    groups = [list(range(len(plans)))] if seed_batch else [[i] for i in range(len(plans))]
    outcomes: list[Outcome] = []
    for group in groups:
        outcomes += _run_group(plans, folders, group, sink, data, whole_epochs)
    return outcomes


def _run_group(plans, folders, group: list[int], sink: Sink, data: Datasets,
               whole_epochs) -> list[Outcome]:
    """Train the plans of `group` together (one, or a seed batch), then measure each."""
    from gradloss.engines.device import prepare_device
    from gradloss.training.loop import train_runs
    from gradloss.training.steppers import single
    from gradloss.training.seed_batch import BatchedSeeds

    first = plans[group[0]]
    device = prepare_device(first.train.engine)
    for i in group:
        sink.started(i, device)
    ds = data.get(first.train.dataset, first.data_dir, first.train.dataset_hash)
    last: dict[int, Progress] = {i: Progress() for i in group}

    def on_progress(j: int, p: Progress) -> None:
        last[group[j]] = p
        sink.progress(group[j], p)

    results = train_runs(
        [plans[i].train for i in group], [folders[i] for i in group], ds,
        BatchedSeeds if len(group) > 1 else single(whole_epochs), on_progress=on_progress,
        on_metrics=lambda j, rows: sink.metrics(group[j], rows),
        should_cancel=lambda j: sink.should_cancel(group[j]),
        on_checkpoint=lambda j, folder: sink.checkpoint(group[j], folder),
        architecture_path=first.architecture_path)
    outcomes = []
    for i, result in zip(group, results):
        plan = plans[i]
        outcome = Outcome(plan, result.status, result.error, result.epochs_done, result.seconds,
                          result.device, result.final, result.model_path, scaling=ds.scaling)
        if result.status == "done":
            sink.model(i, result.model_path)
            _measure(i, _spec(plan.train.dataset, plan.data_dir, plan.train.dataset_hash),
                     plan.sweep, plan.evaluation, result.model_path, ds, sink, outcome, last[i],
                     epochs=plan.train.epochs)
        sink.finished(i, outcome)
        outcomes.append(outcome)
    return outcomes


def measure(model_path: str | Path, dataset: str, sink: Sink, *, data_dir: str | None = None,
            sweep: SweepConfig | None = None, evaluation: EvaluationConfig | None = None,
            grid_seed: int = 0, i: int = 0, data: Dataset | None = None,
            sha256: str | None = None) -> Outcome:
    """The pipeline's steps after training, for a saved model: the noise sweep (if `sweep`),
    the grid examples, then `evaluation` (if any), reported to `sink` as plan `i`.

    The evaluator (a trained run's queued evaluation) and `gradloss evaluate` come here.
    `grid_seed`: the sweep seed that picked the run's grid images (its examples). A file
    dataset is named with its content hash `sha256` and read from `data_dir` (its path)."""
    model_path = Path(model_path)
    ds = data if data is not None else load_dataset(dataset, data_dir=data_dir, sha256=sha256)
    outcome = Outcome(None, "done", model_path=model_path, scaling=ds.scaling)
    _measure(i, _spec(dataset, data_dir, sha256), sweep, evaluation, model_path, ds, sink,
             outcome, Progress(), grid_seed=grid_seed)
    return outcome


def _spec(name: str, data_dir: str | None, sha256: str | None) -> dict:
    """What a TensorFlow child needs to load the same test set (`pipeline.evaluation`)."""
    return {"name": name, "data_dir": data_dir, "sha256": sha256}


def _measure(i: int, dataset_spec: dict, sweep: SweepConfig | None,
             evaluation: EvaluationConfig | None, model_path: Path, ds: Dataset, sink: Sink,
             outcome: Outcome, trained: Progress, epochs: int | None = None,
             grid_seed: int | None = None) -> None:
    """Sweep, examples, model and evaluation of one trained model, into `outcome` and `sink`."""
    from gradloss.perturbations import sweep as noise
    from gradloss.training.loop import load_model

    model = load_model(model_path)
    grid_seed = sweep.seed if sweep is not None else (grid_seed or 0)
    grid = [int(g) for g in noise.example_indices(ds.y_test, seed=grid_seed)]
    if sweep is not None:
        t0 = time.perf_counter()

        def on_sweep(done: int, total: int) -> None:
            eta = (time.perf_counter() - t0) / done * (total - done)
            sink.progress(i, replace(trained, fraction=1.0, epochs=epochs or trained.epochs,
                                     eta_s=eta, sweep_done=done, sweep_total=total))

        outcome.sweep = noise.accuracy_vs_noise(model, ds.x_test, ds.y_test, sweep,
                                                on_progress=on_sweep)
        sink.sweep(i, outcome.sweep, sweep)
        outcome.examples = noise.predict_examples(model, ds.x_test, ds.y_test, grid, sweep)
        sink.examples(i, outcome.examples)
    if evaluation is not None:
        status, error, rows, flags = evaluation_step.evaluate(
            model, model_path, ds.x_test, ds.y_test, dataset_spec, evaluation, grid, sink, i)
        outcome.evaluation_status, outcome.evaluation_error = status, error
        outcome.evaluation, outcome.masking_flags = rows, flags
