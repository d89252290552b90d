"""Train stored runs in this process: `python -m gradloss.service.runner RUN_ID [RUN_ID ...]`, or
`--wait` for the runs the worker hands it, line by line (`serve`).

The worker's task runs this as a child, so TensorFlow (or JAX) lives outside the queue consumer,
which stays light; one such process trains a worker's runs one after another, up to
`supervisor.TRAINER_RUNS` of them, so its start-up is paid once, not per run. Each run's plan
comes from the store; the pipeline trains and measures it and every result goes back to the
store (`sink.StoreSink`). A run ends done, failed
(with a one-line reason; the traceback goes to the log) or cancelled. A run another worker
started resumes from the checkpoint in the store: no folder is shared between machines. Several
run ids that are seeds of one arm (`config.batchable`) train as one seed batch, each still its
own run in the store; others train one after another. The runs are already marked running, as
the worker marks the one it starts. With GRADLOSS_MLFLOW_URI set, each run also goes to MLflow as
it trains (`gradloss.trackers.live`: a sink beside the store's, which never holds training up).
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from gradloss.core.config import batchable
from gradloss.core.errors import DataError, TrainingDiverged
from gradloss.engines import backend
from gradloss.pipeline.sinks import Fanout, Sink
from gradloss.service.checkpoints import restore_checkpoint
from gradloss.service.reporter import Reporter
from gradloss.service.settings import home
from gradloss.service.sink import StoreSink, finish
from gradloss.service.store import Store
from gradloss.service.urls import scrub_output
from gradloss.service.uploads import resolve

log = logging.getLogger(__name__)


def _local_dir(store: Store, run_id: str) -> Path:
    """This machine's working folder for the run, holding the newest checkpoint (from the store
    if another worker got further)."""
    run_dir = home() / run_id
    resumed = restore_checkpoint(store, run_id, run_dir)
    if resumed:
        log.info("run %s resumes after epoch %d", run_id, resumed)
    return run_dir


def _guarded(run_ids: list[str], store: Store, reporter: Reporter, train) -> None:
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


def train_stored(run_ids: list[str], store: Store, reporter: Reporter, tracker=None) -> None:
    """Train and measure the stored runs `run_ids` (a seed batch when they make one); with a
    `tracker` (trackers.live.LiveTracker), its sink gets every result too."""
    from gradloss.pipeline import run as pipeline

    runs = [store.runs.get(r) for r in run_ids]
    plans = {}
    for run in runs:  # read before training: an outage later delays, never fails
        try:  # its evaluation, if planned, is queued apart once trained (tasks.queue_evaluations)
            plans[run.run_id] = resolve(run.plan(None), store)
        except (ValueError, DataError) as exc:  # unreadable, or its files are gone
            finish(store, reporter, run.run_id, "failed", error=str(exc))
    for run in runs:  # cancelled while it was starting: never trained, not even one epoch
        if run.run_id in plans and store.runs.cancel_requested(run.run_id):
            finish(store, reporter, run.run_id, "cancelled", error="cancelled before training")
            del plans[run.run_id]
        else:
            reporter.should_cancel(run.run_id)  # asks now: the answer is in before the first step
    runs = [r for r in runs if r.run_id in plans]
    if not runs:
        return
    first = runs[0].config
    os.environ.update(backend.child_environment(first.engine, first.deterministic))  # before keras
    batch = [r.run_id for r in runs]
    by_id = {r.run_id: r for r in runs}

    def sink(ids: list[str]) -> Sink:
        stored = StoreSink(store, reporter, ids)
        if tracker is None:
            return stored
        return Fanout(stored, tracker.sink([by_id[r] for r in ids], [plans[r] for r in ids]))

    if len(batch) > 1 and batchable([r.config for r in runs]):
        log.info("training runs %s as one seed batch", ", ".join(batch))
        _guarded(batch, store, reporter, lambda: pipeline.run(
            [plans[r] for r in batch], sink(batch), [_local_dir(store, r) for r in batch],
            seed_batch=True))
        return
    for run_id in batch:
        _guarded([run_id], store, reporter, lambda: pipeline.run(
            [plans[run_id]], sink([run_id]), [_local_dir(store, run_id)]))


def warm_up() -> None:
    """Import what training needs (the engine above all: 5 to 30 s for TensorFlow) and train a
    throwaway model two steps, so a run handed to this process starts at once: a process's
    first training spends 3 s more before its first step than the next (bench/first_point.py).
    Keras restores weights by structure, not layer names, so the throwaway model's names
    (conv2d, ...; the run's are conv2d_2, ...) never stop a checkpoint from loading."""
    import tempfile

    import keras

    from gradloss.core.config import TrainConfig
    from gradloss.pipeline import run  # noqa: F401
    from gradloss.perturbations import sweep  # noqa: F401
    from gradloss.training import loop

    log.info("warming up: a throwaway 2-step training on digits")
    with tempfile.TemporaryDirectory() as folder:
        loop.train(TrainConfig(dataset="digits", epochs=1, train_size=20, batch_size=10,
                               engine=keras.backend.backend()), folder)


def _name_process(run_ids: list[str]) -> None:
    """Name this process after the runs it trains (`ps`, and tests that look for a run's training
    process), or as waiting when it trains none."""
    from setproctitle import setproctitle
    setproctitle(f"{sys.executable} -m gradloss.service.runner "
                 f"{' '.join(run_ids) if run_ids else '--wait'}")


def _train(run_ids: list[str]) -> None:
    """Train and measure `run_ids` with every result in the store before it returns."""
    from gradloss.trackers import live

    store = Store.default()
    reporter = Reporter(store)
    tracker = live.from_settings()
    train_stored(run_ids, store, reporter, tracker)
    reporter.close()
    if tracker is not None:  # the store has every result now: final states, summaries, then wait
        tracker.settle(store, run_ids)
        tracker.close()
    for run_id in run_ids:
        log.info("run %s %s", run_id, store.runs.get(run_id).status)


def serve() -> None:
    """`--wait`: warm up, then train the runs of each line of stdin, one line after another:
    say 'ready' before reading a line and 'finished' once its runs are trained, every result
    stored. The worker hands this process its next runs instead of starting a new one, so
    start-up is paid once per process, not once per run (`supervisor.TRAINER_RUNS`); it stops
    when the worker closes stdin."""
    warm_up()
    while True:
        print("ready", flush=True)
        run_ids = sys.stdin.readline().split()
        if not run_ids:
            return
        _name_process(run_ids)
        _train(run_ids)
        _forget_models()
        _name_process([])
        print("finished", flush=True)


def _forget_models() -> None:
    """Free what the last runs left in Keras (models, traced functions, name counters), so the
    next run in this process starts as it would in a new one."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def main(argv: list[str] | None = None) -> int:
    backend.die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s runner[%(process)d] %(name)s "
                                                   "%(levelname)s %(message)s")
    scrub_output()
    run_ids = sys.argv[1:] if argv is None else argv
    if run_ids == ["--wait"]:
        serve()
        return 0
    if not run_ids:
        raise SystemExit("usage: python -m gradloss.service.runner [--wait | RUN_ID [RUN_ID ...]]")
    _train(run_ids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
