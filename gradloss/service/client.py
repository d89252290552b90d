"""What the dashboard and the CLI do to runs: submit one to the queue, cancel one."""
from __future__ import annotations

import uuid

from gradloss.config import TrainConfig
from gradloss.data import submission_data_dir
from gradloss.service.queue import enqueue, pending_count, revoke
from gradloss.service.store import RunStore


def submit(config: TrainConfig | dict, store: RunStore | None = None) -> str:
    """Validate `config`, record a queued run and enqueue it; returns the run id.

    The data location is resolved here and stored with the run, so the worker reads the files
    this process would, whatever its own environment. An invalid config raises
    InvalidParameterError with the config check's message, and an unreachable store or queue
    ServiceUnavailable naming its setting; nothing is recorded or queued either way."""
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(dict(config))
    store = store or RunStore.default()
    pending_count()  # an unreachable queue fails here, before anything is recorded
    task_id = str(uuid.uuid4())  # known before enqueueing, so cancel can revoke it
    run_id = store.create_run(config, task_id=task_id, data_dir=submission_data_dir(config.dataset))
    try:
        enqueue(run_id, task_id)
    except Exception as exc:  # the queue's message names its setting, password masked
        store.finish_run(run_id, "failed", error=f"could not be queued: {exc}")
        raise
    return run_id


def cancel(run_id: str, store: RunStore | None = None) -> str:
    """Cancel a run: a queued one never starts, a running one stops at its next step.

    Returns the run's status afterwards ("cancelled", "running" until the runner stops, or
    the final status of a run that had already finished)."""
    store = store or RunStore.default()
    run = store.get_run(run_id)
    if run.status == "queued" and run.task_id:
        # The store's status is what counts (start_run refuses a cancelled run); revoking
        # also spares the consumer from dequeuing it.
        revoke(run.task_id)
    return store.request_cancel(run_id)
