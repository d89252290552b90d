"""Train one stored run in this process: `python -m gradloss.service.runner RUN_ID`.

The worker's task starts this as a child, so TensorFlow (or JAX) lives and dies with one run
and the queue consumer stays light. The run's config comes from the store; progress, metrics,
the robustness sweep and the grid predictions go back to it, and the run ends done, failed
(with a one-line reason; the traceback goes to the log) or cancelled.
"""
from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import signal
import sys
import time

from gradloss.config import SweepConfig, TrainConfig
from gradloss.engines import backend
from gradloss.exceptions import TrainingDiverged
from gradloss.progress import Progress
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
    config = TrainConfig.from_dict(store.get_run(run_id).config)
    os.environ.update(backend.child_environment(config.engine, config.deterministic))  # before keras
    store.set_device(run_id, backend.prepare_device(config.engine))
    from gradloss import training
    from gradloss.data import load_dataset
    from gradloss.perturbations import sweep as noise_sweep

    ds = load_dataset(config.dataset, train_size=config.train_size, seed=config.seed)
    progress = Progress()  # training's last report; the sweep's counts replace it once trained

    def on_train_progress(p: Progress) -> None:
        nonlocal progress
        progress = p
        store.update_progress(run_id, p.to_dict())

    last_sweep_report = 0.0

    def on_sweep_progress(done: int, total: int) -> None:
        nonlocal last_sweep_report, progress
        if done == total or time.monotonic() - last_sweep_report >= SWEEP_REPORT_EVERY_S:
            # fraction 1: trained (also when a resumed run had no training left to report)
            progress = dataclasses.replace(progress, fraction=1.0, epochs=config.epochs,
                                           sweep_done=done, sweep_total=total)
            store.update_progress(run_id, progress.to_dict())
            last_sweep_report = time.monotonic()

    result = training.train(
        config, home() / run_id, dataset=ds, on_progress=on_train_progress,
        on_metrics=lambda rows: store.add_metrics(run_id, rows),
        should_cancel=lambda: store.cancel_requested(run_id))
    if result.status == "cancelled":
        store.finish_run(run_id, "cancelled")
        return "cancelled"
    model = training.load_model(result.model_path)
    sweep = SweepConfig()
    table = noise_sweep.accuracy_vs_noise(model, ds.x_test, ds.y_test, sweep,
                                          on_progress=on_sweep_progress)
    store.save_robustness(run_id, table, sweep.draws, sweep.seed)
    indices = noise_sweep.example_indices(ds.y_test, seed=sweep.seed)
    store.save_examples(run_id, noise_sweep.predict_examples(model, ds.x_test, ds.y_test, indices,
                                                             sweep))
    store.finish_run(run_id, "done", model_path=result.model_path)
    return "done"


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s runner[%(process)d] %(name)s "
                                                   "%(levelname)s %(message)s")
    [run_id] = sys.argv[1:] if argv is None else argv
    store = RunStore.default()
    try:
        status = run(run_id, store)
    except TrainingDiverged as exc:
        store.finish_run(run_id, "failed", error=str(exc))
        status = "failed"
    except Exception as exc:
        log.exception("run %s failed", run_id)
        reason = (str(exc).strip().splitlines() or [""])[0]
        store.finish_run(run_id, "failed", error=f"{type(exc).__name__}: {reason}")
        status = "failed"
    log.info("run %s %s", run_id, status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
