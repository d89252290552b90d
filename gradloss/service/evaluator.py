"""Evaluate one trained run beyond Gaussian noise: `python -m gradloss.service.evaluator RUN_ID`.

The run's evaluation plan (an EvaluationConfig, `store.evaluations.plan`) says what to run; the
worker's task (`tasks.evaluate_run`) starts this in a TensorFlow child for an evaluation queued
after training (from the Robustness page, or `gradloss evaluate RUN_ID`). The pipeline's
`measure` does the work on the run's saved model and its own data (its data folder as stored),
and the results go to the store perturbation by perturbation, so a stopped evaluation keeps
what it measured; the run's own status is never changed here.
"""
from __future__ import annotations

import logging
import os
import sys

from gradloss.engines.backend import die_with_parent
from gradloss.service.checkpoints import model_file
from gradloss.service.reporter import Reporter
from gradloss.service.sink import StoreSink
from gradloss.service.store import Store
from gradloss.service.urls import scrub_output
from gradloss.service.uploads import resolve

log = logging.getLogger(__name__)


def evaluate_stored(run_id: str, store: Store) -> str:
    """Run the run's evaluation plan, storing as it goes; returns the plan's final status
    ("none" when the run has none)."""
    from gradloss.pipeline.run import measure

    plan = store.evaluations.plan_of(run_id)
    if plan is None:
        return "none"
    if plan.config is None:
        store.evaluations.set_status(run_id, "failed", error=f"the evaluation plan cannot be "
                                                             f"read: {plan.unreadable}")
        return "failed"
    run = store.runs.get(run_id)
    reporter = Reporter(store)
    sink = StoreSink(store, reporter, [run_id], evaluating_only=True)
    try:
        data_dir = resolve(run.plan(), store).data_dir  # a file dataset: this machine's copy
        outcome = measure(model_file(store, run), run.config.dataset, sink, data_dir=data_dir,
                          evaluation=plan.config, grid_seed=run.sweep.seed,
                          sha256=run.config.dataset_hash)
    except Exception as exc:  # before the suite started: the model or the data
        reporter.close()
        reason = (str(exc).strip().splitlines() or [""])[0]
        store.evaluations.set_status(run_id, "failed", error=f"{type(exc).__name__}: {reason}")
        raise
    reporter.close()
    return outcome.evaluation_status


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s evaluator[%(process)d] %(name)s "
                                                   "%(levelname)s %(message)s")
    scrub_output()
    [run_id] = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        status = evaluate_stored(run_id, Store.default())
    except Exception:
        log.exception("evaluation of run %s failed", run_id)
        status = "failed"
    log.info("evaluation of run %s %s", run_id, status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
