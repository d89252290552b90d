"""Train stored runs in this process: `python -m gradloss.service.runner RUN_ID [RUN_ID ...]`.

The worker's task starts this as a child, so TensorFlow (or JAX) lives and dies with one run and
the queue consumer stays light. Each run's plan comes from the store; the pipeline trains and
measures it and every result goes back to the store (`sink.StoreSink`). A run ends done, failed
(with a one-line reason; the traceback goes to the log) or cancelled. A run another worker
started resumes from the checkpoint in the store: no folder is shared between machines. Several
run ids that are seeds of one arm (`config.batchable`) train as one seed batch, each still its
own run in the store; others train one after another. The runs are already marked running, as
the worker marks the one it starts.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from gradloss.core.config import batchable
from gradloss.core.errors import DataError, TrainingDiverged
from gradloss.engines import backend
from gradloss.service.checkpoints import restore_checkpoint
from gradloss.service.reporter import Reporter
from gradloss.service.settings import home
from gradloss.service.sink import StoreSink, finish
from gradloss.service.store import Store
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


def train_stored(run_ids: list[str], store: Store, reporter: Reporter) -> None:
    """Train and measure the stored runs `run_ids` (a seed batch when they make one)."""
    from gradloss.pipeline import run as pipeline

    runs = [store.runs.get(r) for r in run_ids]
    plans = {}
    for run in runs:  # read with the config, before training: an outage later delays, never fails
        try:
            evaluation = store.evaluations.plan_of(run.run_id)
            plans[run.run_id] = resolve(run.plan(None if evaluation is None
                                                 else evaluation.config), store)
        except (ValueError, DataError) as exc:  # unreadable, or its files are gone
            finish(store, reporter, run.run_id, "failed", error=str(exc))
    runs = [r for r in runs if r.run_id in plans]
    if not runs:
        return
    first = runs[0].config
    os.environ.update(backend.child_environment(first.engine, first.deterministic))  # before keras
    batch = [r.run_id for r in runs]
    if len(batch) > 1 and batchable([r.config for r in runs]):
        log.info("training runs %s as one seed batch", ", ".join(batch))
        _guarded(batch, store, reporter, lambda: pipeline.run(
            [plans[r] for r in batch], StoreSink(store, reporter, batch),
            [_local_dir(store, r) for r in batch], seed_batch=True))
        return
    for run_id in batch:
        _guarded([run_id], store, reporter, lambda: pipeline.run(
            [plans[run_id]], StoreSink(store, reporter, [run_id]), [_local_dir(store, run_id)]))


def main(argv: list[str] | None = None) -> int:
    backend.die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s runner[%(process)d] %(name)s "
                                                   "%(levelname)s %(message)s")
    run_ids = sys.argv[1:] if argv is None else argv
    if not run_ids:
        raise SystemExit("usage: python -m gradloss.service.runner RUN_ID [RUN_ID ...]")
    store = Store.default()
    reporter = Reporter(store)
    train_stored(run_ids, store, reporter)
    reporter.close()
    for run_id in run_ids:
        log.info("run %s %s", run_id, store.runs.get(run_id).status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
