"""Train stored runs in this process: `python -m gradloss.service.runner RUN_ID [RUN_ID ...]`.

The worker's task starts this as a child, so TensorFlow (or JAX) lives and dies with one run
and the queue consumer stays light. The run's config comes from the store; progress, metrics,
the robustness sweep and the grid predictions go back to it, then the evaluations of its plan
(service.evaluator: corruptions, attacks), and the run ends done, failed (with a one-line
reason; the traceback goes to the log) or cancelled. Several run ids that
are seeds of one arm (`config.batchable`) train as one seed batch (`seed_batch.train_seeds`),
each still its own run in the store; others train one after another. The runs are already
marked running, as the worker marks the one it starts.
"""
from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time

from gradloss.config import SweepConfig, TrainConfig, batchable
from gradloss.engines import backend
from gradloss.exceptions import TrainingDiverged
from gradloss.progress import Progress
from gradloss.service.evaluator import evaluate_stored
from gradloss.service.store import RunStore, home

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
SWEEP_REPORT_EVERY_S = 0.5  # at most this often the sweep's progress goes to the store


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the worker that started it dies (even by kill -9).

    Set here rather than in a preexec_fn, which is unsafe in the threaded consumer; the parent
    pid check covers a worker that died before this line ran."""
    parent = os.environ.get("GRADLOSS_PARENT_PID")
    if parent is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):
        os._exit(1)


def run(run_id: str, store: RunStore) -> str:
    """Train, sweep and save run `run_id` (already marked running); returns its final status."""
    stored = store.get_run(run_id)
    if stored.unreadable:
        raise ValueError(f"the run cannot be read: {stored.unreadable}")
    config = TrainConfig.from_dict(stored.config)
    os.environ.update(backend.child_environment(config.engine, config.deterministic))  # before keras
    store.set_device(run_id, backend.prepare_device(config.engine))
    from gradloss import training
    from gradloss.data import load_dataset

    # The data folder found at submission, not this process's environment (a worker started
    # before GRADLOSS_DATA_DIR was set would otherwise look elsewhere).
    ds = load_dataset(config.dataset, data_dir=stored.data_dir, train_size=config.train_size,
                      seed=config.seed)
    progress = [Progress()]  # training's last report; the sweep's counts replace it once trained

    def on_train_progress(p: Progress) -> None:
        progress[0] = p
        store.update_progress(run_id, p.to_dict())

    result = training.train(
        config, home() / run_id, dataset=ds, on_progress=on_train_progress,
        on_metrics=lambda rows: store.add_metrics(run_id, rows),
        should_cancel=lambda: store.cancel_requested(run_id))
    return _finish(run_id, store, config, ds, result, progress[0])


def run_batch(run_ids: list[str], store: RunStore) -> list[str]:
    """Train the seed batch `run_ids` as one program, then sweep and save each; their statuses."""
    configs = [TrainConfig.from_dict(store.get_run(r).config) for r in run_ids]
    os.environ.update(backend.child_environment(configs[0].engine, configs[0].deterministic))
    device = backend.prepare_device(configs[0].engine)
    for run_id in run_ids:
        store.set_device(run_id, device)
    from gradloss import seed_batch
    from gradloss.data import load_dataset

    # the whole training set (each seed takes its rows), from where it was found at submission
    ds = load_dataset(configs[0].dataset, data_dir=store.get_run(run_ids[0]).data_dir)
    progress = [Progress() for _ in run_ids]

    def on_train_progress(i: int, p: Progress) -> None:
        progress[i] = p
        store.update_progress(run_ids[i], p.to_dict())

    results = seed_batch.train_seeds(
        configs, [home() / r for r in run_ids], dataset=ds, on_progress=on_train_progress,
        on_metrics=lambda i, rows: store.add_metrics(run_ids[i], rows),
        should_cancel=lambda i: store.cancel_requested(run_ids[i]))
    return [_finish(run_id, store, config, ds, result, p)
            for run_id, config, result, p in zip(run_ids, configs, results, progress)]


def _finish(run_id: str, store: RunStore, config: TrainConfig, ds, result,
            progress: Progress) -> str:
    """End a trained run: cancelled or failed as training left it, else swept, saved and done."""
    if result.status in ("cancelled", "failed"):
        store.finish_run(run_id, result.status, error=result.error)
        return result.status
    from gradloss import training
    from gradloss.perturbations import sweep as noise_sweep

    last_sweep_report = 0.0

    def on_sweep_progress(done: int, total: int) -> None:
        nonlocal last_sweep_report, progress
        if done == total or time.monotonic() - last_sweep_report >= SWEEP_REPORT_EVERY_S:
            # fraction 1: trained (also when a resumed run had no training left to report)
            progress = dataclasses.replace(progress, fraction=1.0, epochs=config.epochs,
                                           sweep_done=done, sweep_total=total)
            store.update_progress(run_id, progress.to_dict())
            last_sweep_report = time.monotonic()

    model = training.load_model(result.model_path)
    sweep = SweepConfig()
    table = noise_sweep.accuracy_vs_noise(model, ds.x_test, ds.y_test, sweep,
                                          on_progress=on_sweep_progress)
    store.save_robustness(run_id, table, sweep.draws, sweep.seed)
    indices = noise_sweep.example_indices(ds.y_test, seed=sweep.seed)
    store.save_examples(run_id, noise_sweep.predict_examples(model, ds.x_test, ds.y_test, indices,
                                                             sweep))
    if store.evaluation_plan(run_id) is not None:
        _evaluate(run_id, store, config, model, ds, result.model_path)
    store.finish_run(run_id, "done", model_path=result.model_path)
    return "done"


def _guarded(run_ids: list[str], store: RunStore, train) -> None:
    """Call train(); if it raises, fail every unfinished run of `run_ids` with a one-line reason."""
    try:
        train()
        return
    except TrainingDiverged as exc:
        error = str(exc)
    except Exception as exc:
        log.exception("run(s) %s failed", ", ".join(run_ids))
        reason = (str(exc).strip().splitlines() or [""])[0]
        error = f"{type(exc).__name__}: {reason}"
    for run_id in run_ids:
        store.finish_run(run_id, "failed", error=error)


def _evaluate(run_id: str, store: RunStore, config: TrainConfig, model, ds, model_path) -> None:
    """Corruptions and attacks after the sweep; a failure there leaves the trained run done
    (its plan says failed, with the reason). ART needs TensorFlow: a JAX run is evaluated
    by a TensorFlow child, on the model it saved."""
    if config.engine != "tensorflow":
        store.finish_run(run_id, "done", model_path=model_path)  # the child loads it from here
        env = backend.child_environment("tensorflow", False, dict(
            os.environ, GRADLOSS_PARENT_PID=str(os.getpid())))
        subprocess.run([sys.executable, "-m", "gradloss.service.evaluator", run_id], env=env)
        return
    try:
        evaluate_stored(run_id, store, model, ds,
                        on_progress=lambda p: store.update_progress(run_id, p.to_dict()))
    except Exception:  # noqa: BLE001  (stored on the plan; the model and sweep stay)
        log.exception("evaluation of run %s failed", run_id)


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s runner[%(process)d] %(name)s "
                                                   "%(levelname)s %(message)s")
    run_ids = sys.argv[1:] if argv is None else argv
    if not run_ids:
        raise SystemExit("usage: python -m gradloss.service.runner RUN_ID [RUN_ID ...]")
    store = RunStore.default()
    configs = [TrainConfig.from_dict(store.get_run(r).config) for r in run_ids]
    if len(run_ids) > 1 and batchable(configs):
        log.info("training runs %s as one seed batch", ", ".join(run_ids))
        _guarded(run_ids, store, lambda: run_batch(run_ids, store))
    else:
        for run_id in run_ids:
            _guarded([run_id], store, lambda: run(run_id, store))
    for run_id in run_ids:
        log.info("run %s %s", run_id, store.get_run(run_id).status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
