"""Runs trained outside the worker (`gradloss train`, `experiment`, `reproduce` without
--submit) recorded in the store, so the dashboard lists, compares and cancels them like any.

`recorded(plans)` creates one running run per plan (an experiment's, under its record), beats
their heartbeats from a thread while this process trains, and hands back a `StoreSink` for the
CLI's Fanout: results go to the store as the worker's do. Ctrl-C ends the unfinished runs
cancelled, an error failed. Such a run has no queue task, so a worker that finds its heartbeat
stale fails it (its process stopped) instead of requeueing it (`heartbeat.LOCAL_PREFIX`). A store that cannot be used
leaves the runs unrecorded, with the reason said once; training goes on.
"""
from __future__ import annotations

import contextlib
import logging
import threading

from gradloss.core.experiment import ExperimentConfig
from gradloss.core.plan import RunPlan
from gradloss.service.heartbeat import beat_interval, host, local_worker_id
from gradloss.service.reporter import Reporter
from gradloss.service.sink import StoreSink
from gradloss.service.store import Store

log = logging.getLogger(__name__)


@contextlib.contextmanager
def recorded(plans: list[RunPlan], experiment: ExperimentConfig | None = None,
             arms: list[str] | None = None, warn=print):
    """Record `plans` as running runs of the store (of a new experiment `experiment`, plan i in
    arm arms[i]); yields (StoreSink, run ids), or (None, []) when the store cannot be used
    (`warn` says why)."""
    try:
        store = Store.default()
        experiment_id = None if experiment is None else store.experiments.create(experiment)
        run_ids = [store.runs.create(plan, experiment_id=experiment_id,
                                     arm=None if arms is None else arms[i])
                   for i, plan in enumerate(plans)]
        for run_id in run_ids:
            store.runs.start(run_id, local_worker_id(), host=host())
    except Exception as exc:  # noqa: BLE001 - training here needs no store
        warn(f"not recorded in the run store, so the dashboard will not list these runs: {exc}")
        yield None, []
        return
    reporter = Reporter(store)
    stop = threading.Event()
    beating = threading.Thread(target=_beat, args=(store, run_ids, stop), daemon=True)
    beating.start()
    try:
        yield StoreSink(store, reporter, run_ids), run_ids
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
        reason = "interrupted (Ctrl-C)" if status == "cancelled" else \
            f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
        for run_id in run_ids:
            reporter.send(store.runs.finish, run_id, status, reason)
        raise
    finally:
        stop.set()
        beating.join()
        reporter.close()


def _beat(store: Store, run_ids: list[str], stop: threading.Event) -> None:
    while not stop.wait(beat_interval()):
        for run_id in run_ids:
            try:
                store.runs.heartbeat(run_id)
            except Exception:  # noqa: BLE001 - the next beat tries again
                log.warning("could not beat run %s's heartbeat", run_id)
