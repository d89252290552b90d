"""Evaluate one stored run beyond Gaussian noise: `python -m gradloss.service.evaluator RUN_ID`.

The run's evaluation plan (an EvaluationConfig, store.plan_evaluation) says what to run. The
runner calls `evaluate_stored` after training and the sweep, in its own process when the run
trained on TensorFlow; a JAX-trained run, or an already-trained run queued from the page
(tasks.evaluate_run), is evaluated by this module's main in a TensorFlow child, since ART
attacks Keras models on TensorFlow. Results are stored perturbation by perturbation, so a
stopped evaluation keeps what it measured; the run's own status is never changed here.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gradloss.core.progress import Progress
from gradloss.service.store.runs import RunStore

log = logging.getLogger(__name__)

REPORT_EVERY_S = 0.5  # at most this often progress goes to the store


class EvaluationStopped(Exception):
    """The run was asked to cancel while its evaluation ran."""


def evaluate_stored(run_id: str, store: RunStore, model=None, dataset=None,
                    on_progress: Callable[[Progress], None] | None = None) -> str:
    """Run the run's evaluation plan, storing as it goes; returns the plan's final status.

    `model` and `dataset` default to the run's saved model and its dataset (test set whole).
    Returns "none" when the run has no plan. A cancel request stops it between perturbations
    (status "failed", error "cancelled"); other errors propagate after marking it failed.
    """
    from gradloss.perturbations import suite
    from gradloss.perturbations.family import EvaluationConfig

    plan = store.evaluation_plan(run_id)
    if plan is None:
        return "none"
    config = EvaluationConfig.from_dict(plan.config)
    run = store.get_run(run_id)
    store.set_evaluation_status(run_id, "running", progress={})
    try:
        if model is None:
            model = _load_model(store, run)
        if dataset is None:
            from gradloss.data import load_dataset
            dataset = load_dataset(run.config["dataset"], train_size=run.config.get("train_size"),
                                   seed=run.config.get("seed", 0))
        last = 0.0
        base = Progress.from_dict(run.progress)

        def report(phase: str, done: int, total: int) -> None:
            nonlocal last
            if done == total or time.monotonic() - last >= REPORT_EVERY_S:
                p = Progress(fraction=1.0, epoch=base.epochs or 0, epochs=base.epochs, phase=phase,
                             sweep_done=done, sweep_total=total)
                store.update_evaluation_progress(run_id, p.to_dict())
                if on_progress:
                    on_progress(p)
                last = time.monotonic()

        def save(table) -> None:
            store.save_evaluation(run_id, table)
            if store.cancel_requested(run_id):
                raise EvaluationStopped

        table, flags = suite.evaluate(model, dataset.x_test, dataset.y_test, config,
                                      on_table=save, on_progress=report)
        store.save_masking_flags(run_id, flags)
        report("grid images", 0, 1)
        indices = sorted(set(store.examples(run_id)["index"])) or _grid_indices(dataset)
        store.save_evaluation_examples(run_id, suite.grid_examples(
            model, dataset.x_test, dataset.y_test, indices, config))
    except EvaluationStopped:
        store.set_evaluation_status(run_id, "failed", error="cancelled")
        return "failed"
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [""])[0]
        store.set_evaluation_status(run_id, "failed", error=f"{type(exc).__name__}: {reason}")
        raise
    store.set_evaluation_status(run_id, "done")
    return "done"


def _load_model(store: RunStore, run):
    """The run's saved model: its file here if this machine trained it, else the store's copy."""
    from gradloss.service import artifacts
    from gradloss.training.loop import load_model

    if run.model_path and Path(run.model_path).exists():
        return load_model(run.model_path)
    path = artifacts.fetch_model(store, run.run_id)
    if path is None:
        raise FileNotFoundError(f"run {run.run_id}'s model is neither at {run.model_path} on this "
                                "machine nor in the run store")
    return load_model(path)


def _grid_indices(dataset):
    from gradloss.core.config import SweepConfig
    from gradloss.perturbations.sweep import example_indices
    return [int(i) for i in example_indices(dataset.y_test, seed=SweepConfig().seed)]


def main(argv: list[str] | None = None) -> int:
    from gradloss.service.runner import die_with_parent

    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s evaluator[%(process)d] %(name)s "
                                                   "%(levelname)s %(message)s")
    [run_id] = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        status = evaluate_stored(run_id, RunStore.default())
    except Exception:
        log.exception("evaluation of run %s failed", run_id)
        status = "failed"
    log.info("evaluation of run %s %s", run_id, status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
