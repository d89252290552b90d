"""Train stored runs in this process: `python -m gradloss.service.runner RUN_ID [RUN_ID ...]`.

The worker's task starts this as a child, so TensorFlow (or JAX) lives and dies with one run
and the queue consumer stays light. The run's config comes from the store; progress, metrics,
each epoch's checkpoint, the robustness sweep, the grid predictions and the saved model go back
to it (through a Reporter: a store outage delays them, never the training), then the evaluations
of its plan (service.evaluator: corruptions, attacks), and the run ends done, failed (with a
one-line reason; the traceback goes to the log) or cancelled. A run another worker started
resumes from the checkpoint in the store: no folder is shared between machines. Several run ids that
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
from pathlib import Path

from gradloss.core.config import SweepConfig, TrainConfig, batchable
from gradloss.engines import backend
from gradloss.core.errors import TrainingDiverged
from gradloss.core.progress import Progress
from gradloss.service import artifacts
from gradloss.service.evaluator import evaluate_stored
from gradloss.service.reporter import Reporter
from gradloss.service.settings import home
from gradloss.service.store.runs import RunStore

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


def _local_dir(store: RunStore, run_id: str):
    """This machine's working folder for the run, holding the newest checkpoint (from the store
    if another worker got further)."""
    run_dir = home() / run_id
    resumed = artifacts.restore_checkpoint(store, run_id, run_dir)
    if resumed:
        log.info("run %s resumes after epoch %d", run_id, resumed)
    return run_dir


def _upload(store: RunStore, reporter: Reporter, run_id: str, folder: Path) -> None:
    """Send run `run_id`'s checkpoint folder to the store (the newest wins)."""
    reporter.send(store.put_artifact, run_id, artifacts.CHECKPOINT, artifacts.pack(folder),
                  latest=f"checkpoint {run_id}")


def run(run_id: str, store: RunStore, reporter: Reporter) -> str:
    """Train, sweep and save run `run_id` (already marked running); returns its final status."""
    stored = store.get_run(run_id)
    if stored.unreadable:
        raise ValueError(f"the run cannot be read: {stored.unreadable}")
    config = TrainConfig.from_dict(stored.config)
    planned = store.evaluation_plan(run_id) is not None  # read with the config, while reachable
    os.environ.update(backend.child_environment(config.engine, config.deterministic))  # before keras
    reporter.send(store.set_device, run_id, backend.prepare_device(config.engine))
    from gradloss.training import loop as training
    from gradloss.data import load_dataset

    run_dir = _local_dir(store, run_id)
    ds = load_dataset(config.dataset, data_dir=stored.data_dir, train_size=config.train_size,
                      seed=config.seed)
    progress = [Progress()]  # training's last report; the sweep's counts replace it once trained

    def on_train_progress(p: Progress) -> None:
        progress[0] = p
        reporter.send(store.update_progress, run_id, p.to_dict(), latest=f"progress {run_id}")

    result = training.train(
        config, run_dir, dataset=ds, on_progress=on_train_progress,
        on_metrics=lambda rows: reporter.send(store.add_metrics, run_id, rows),
        on_checkpoint=lambda folder: _upload(store, reporter, run_id, folder),
        should_cancel=lambda: reporter.should_cancel(run_id))
    return _finish(run_id, store, reporter, config, ds, result, progress[0], planned)


def run_batch(run_ids: list[str], store: RunStore, reporter: Reporter) -> list[str]:
    """Train the seed batch `run_ids` as one program, then sweep and save each; their statuses."""
    configs = [TrainConfig.from_dict(store.get_run(r).config) for r in run_ids]
    planned = [store.evaluation_plan(r) is not None for r in run_ids]
    os.environ.update(backend.child_environment(configs[0].engine, configs[0].deterministic))
    device = backend.prepare_device(configs[0].engine)
    for run_id in run_ids:
        reporter.send(store.set_device, run_id, device)
    from gradloss.training import seed_batch
    from gradloss.data import load_dataset

    run_dirs = [_local_dir(store, r) for r in run_ids]
    # the whole training set: each seed takes its rows
    ds = load_dataset(configs[0].dataset, data_dir=store.get_run(run_ids[0]).data_dir)
    progress = [Progress() for _ in run_ids]

    def on_train_progress(i: int, p: Progress) -> None:
        progress[i] = p
        reporter.send(store.update_progress, run_ids[i], p.to_dict(), latest=f"progress {run_ids[i]}")

    results = seed_batch.train_seeds(
        configs, run_dirs, dataset=ds, on_progress=on_train_progress,
        on_metrics=lambda i, rows: reporter.send(store.add_metrics, run_ids[i], rows),
        on_checkpoint=lambda i, folder: _upload(store, reporter, run_ids[i], folder),
        should_cancel=lambda i: reporter.should_cancel(run_ids[i]))
    return [_finish(run_id, store, reporter, config, ds, result, p, plan)
            for run_id, config, result, p, plan in zip(run_ids, configs, results, progress, planned)]


def _finish(run_id: str, store: RunStore, reporter: Reporter, config: TrainConfig, ds, result,
            progress: Progress, planned: bool) -> str:
    """End a trained run: cancelled or failed as training left it, else swept, saved, evaluated
    if `planned` (it has an evaluation plan) and done.

    Every write goes through `reporter`, the final status last, once the rest has been sent, and
    the plan was read before training: an outage after training delays the run, never fails it
    (an evaluation that cannot reach the store fails alone, on its plan)."""
    if result.status in ("cancelled", "failed"):
        finish(store, reporter, run_id, result.status, error=result.error)
        return result.status
    from gradloss.training import loop as training
    from gradloss.perturbations import sweep as noise_sweep

    last_sweep_report = 0.0

    def on_sweep_progress(done: int, total: int) -> None:
        nonlocal last_sweep_report, progress
        if done == total or time.monotonic() - last_sweep_report >= SWEEP_REPORT_EVERY_S:
            # fraction 1: trained (also when a resumed run had no training left to report)
            progress = dataclasses.replace(progress, fraction=1.0, epochs=config.epochs,
                                           sweep_done=done, sweep_total=total)
            reporter.send(store.update_progress, run_id, progress.to_dict(), latest=f"progress {run_id}")
            last_sweep_report = time.monotonic()

    model = training.load_model(result.model_path)
    sweep = SweepConfig()
    table = noise_sweep.accuracy_vs_noise(model, ds.x_test, ds.y_test, sweep,
                                          on_progress=on_sweep_progress)
    reporter.send(store.save_robustness, run_id, table, sweep.draws, sweep.seed)
    indices = noise_sweep.example_indices(ds.y_test, seed=sweep.seed)
    reporter.send(store.save_examples, run_id, noise_sweep.predict_examples(
        model, ds.x_test, ds.y_test, indices, sweep))
    reporter.send(store.put_artifact, run_id, artifacts.MODEL, result.model_path.read_bytes())
    evaluate_here = planned and config.engine == "tensorflow"
    if evaluate_here:
        reporter.flush()  # the evaluation's grid follows the sweep's, now in the store
        _evaluate(run_id, store, model, ds)
    finish(store, reporter, run_id, "done", model_path=result.model_path)
    if planned and not evaluate_here:  # ART needs TensorFlow: a TensorFlow child evaluates
        # the model this run saved
        env = backend.child_environment("tensorflow", False, dict(
            os.environ, GRADLOSS_PARENT_PID=str(os.getpid())))
        subprocess.run([sys.executable, "-m", "gradloss.service.evaluator", run_id], env=env)
    return "done"


def finish(store: RunStore, reporter: Reporter, run_id: str, status: str, **fields) -> None:
    """Finish the run as this worker's (GRADLOSS_WORKER_ID), after every earlier report; a run
    another worker has taken over meanwhile is left to it."""
    worker = os.environ.get("GRADLOSS_WORKER_ID")

    def final() -> None:
        if not store.finish_run(run_id, status, worker_id=worker, **fields):
            log.warning("run %s was already finished or taken over by another worker; not marked %s",
                        run_id, status)

    reporter.send(final)
    reporter.flush()


def _guarded(run_ids: list[str], store: RunStore, reporter: Reporter, train) -> None:
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
        finish(store, reporter, run_id, "failed", error=error)


def _evaluate(run_id: str, store: RunStore, model, ds) -> None:
    """Corruptions and attacks after the sweep, in this (TensorFlow) process; a failure there
    leaves the trained run done (its plan says failed, with the reason)."""
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
    reporter = Reporter(store)
    configs = [TrainConfig.from_dict(store.get_run(r).config) for r in run_ids]
    if len(run_ids) > 1 and batchable(configs):
        log.info("training runs %s as one seed batch", ", ".join(run_ids))
        _guarded(run_ids, store, reporter, lambda: run_batch(run_ids, store, reporter))
    else:
        for run_id in run_ids:
            _guarded([run_id], store, reporter, lambda: run(run_id, store, reporter))
    reporter.close()
    for run_id in run_ids:
        log.info("run %s %s", run_id, store.get_run(run_id).status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
