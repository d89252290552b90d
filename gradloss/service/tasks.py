"""The queue's tasks, `train_run(run_id)` and `evaluate_run(run_id)`, and the verbs that put work
on the queue: enqueue, enqueue an evaluation, requeue a lost run, queue again a run that never
reached the queue, revoke a queued one; and what the queue holds (`waiting_run_ids`).

`app(url)` registers the tasks on the URL's Huey (`queue.huey_for`), once per URL; what a task
does is `supervisor`. Task messages carry only the run id, and their names
(gradloss.service.tasks.train_run, ...) stay what earlier versions queued.
"""
from __future__ import annotations

import logging
import uuid
from functools import cache
from typing import Callable

from huey.api import Huey, TaskWrapper

from gradloss.service import supervisor
from gradloss.service.queue import check_writable, huey_for, reaching
from gradloss.service.settings import queue_url
from gradloss.service.store import Store

TASK_RETRIES = 3          # tries after the first, for a task that raised
TASK_RETRY_DELAY_S = 10   # seconds between them
TRAIN_PRIORITY = 10       # training is taken before any queued evaluation (priority 0)
log = logging.getLogger(__name__)
# What else runs once a task has trained its runs, each called with (store, run ids): the
# worker adds `search.after_training`, so a strength search asks its next trial at once.
after_training: list[Callable[[Store, list[str]], None]] = []


def queued_train_run(run_id: str, task=None) -> None:
    """The queue's train_run task: supervisor.train_run, told this task's id (huey's context)
    and how to requeue the run should its training process die; then the planned evaluations
    of the runs it trained are queued behind any queued training, and `after_training` runs."""
    trained = supervisor.train_run(run_id, task_id=None if task is None else task.id,
                                   requeue=requeue)
    if trained:
        store = Store.default()
        queue_evaluations(store, trained)
        for hook in after_training:
            try:
                hook(store, trained)
            except Exception:  # noqa: BLE001 - the run is trained; the hook's owner retries
                log.exception("after training %s", ", ".join(trained))


def queue_evaluations(store: Store, run_ids: list[str]) -> list[str]:
    """Queue the planned evaluation of each run that ended done, as work of its own behind any
    queued training; returns the runs queued. A run that ended failed or cancelled gets its
    plan failed with the reason; a run requeued to resume keeps its plan for then."""
    queued = []
    for run_id in run_ids:
        plan = store.evaluations.plan_of(run_id)
        if plan is None or plan.status != "queued":
            continue
        status = store.runs.get(run_id).status
        if status in ("failed", "cancelled"):
            store.evaluations.set_status(run_id, "failed", error=f"the run ended {status}")
        elif status == "done":
            try:
                enqueue_evaluation(run_id)
                queued.append(run_id)
            except Exception as exc:  # noqa: BLE001 - the run is trained; say why this is not
                store.evaluations.set_status(run_id, "failed", error=f"could not be queued: {exc}")
    return queued


def evaluate_run(run_id: str) -> None:
    """The queue's evaluate_run task: supervisor.evaluate_run."""
    supervisor.evaluate_run(run_id)


@cache
def app(url: str) -> tuple[Huey, TaskWrapper, TaskWrapper]:
    """The Huey at `url` with its train_run and evaluate_run tasks (the consumer knows both)."""
    huey = huey_for(url)
    # A task that fails before its child starts (the store away for a moment) is tried again;
    # start is conditional, so a retry never trains a run twice.
    retry = {"retries": TASK_RETRIES, "retry_delay": TASK_RETRY_DELAY_S}
    return (huey, huey.task(name="train_run", context=True, priority=TRAIN_PRIORITY,
                            **retry)(queued_train_run),
            huey.task(name="evaluate_run", **retry)(evaluate_run))


def queue_for(url: str | None = None) -> tuple[Huey, TaskWrapper]:
    """The Huey queue at `url` (default: GRADLOSS_QUEUE_URL, else queue.sqlite in home()) and
    its train_run task."""
    return app(url or queue_url())[:2]


def enqueue(run_id: str, task_id: str) -> None:
    """Queue run `run_id` under the known task id (so a queued run can be revoked)."""
    url = queue_url()
    huey, task = queue_for(url)
    with reaching(url):
        huey.enqueue(task.s(run_id, id=task_id))


def enqueue_evaluation(run_id: str) -> None:
    """Queue the evaluation of trained run `run_id` (its plan is in the store), behind every
    queued training run: a worker takes training first (TRAIN_PRIORITY)."""
    url = queue_url()
    huey, _, task = app(url)
    with reaching(url):
        huey.enqueue(task.s(run_id))


def revoke(task_id: str) -> None:
    """Spare the consumer from dequeuing task `task_id` (the store's status is what counts)."""
    url = queue_url()
    with reaching(url):
        queue_for(url)[0].revoke_by_id(task_id, revoke_once=True)


def check_queue() -> None:
    """Raise (SettingsError naming the setting or the file) unless the queue can be reached and,
    on SQLite, written: what every submission calls before it records anything, so a queue
    that would refuse the task never leaves a run recorded as "could not be queued"."""
    url = queue_url()
    check_writable(url)
    with reaching(url):
        queue_for(url)[0].pending_count()


def pending_count() -> int:
    """Tasks waiting in the queue."""
    url = queue_url()
    with reaching(url):
        return queue_for(url)[0].pending_count()


def waiting_run_ids() -> set[str]:
    """The run ids of the train_run tasks in the queue or in its schedule (a retry waiting out
    its delay). A payload that cannot be read (not ours, damaged) is passed over."""
    url = queue_url()
    huey = queue_for(url)[0]
    with reaching(url):
        payloads = [*huey.storage.enqueued_items(), *huey.storage.scheduled_items()]
    found = set()
    for payload in payloads:
        try:
            message = huey.serializer.deserialize(payload)
            if message.name.rsplit(".", 1)[-1] == "train_run" and message.args:
                found.add(str(message.args[0]))
        except Exception:  # noqa: BLE001 - whatever someone else put there
            continue
    return found


def enqueue_again(store: Store, run_id: str) -> bool:
    """Queue queued run `run_id` under a new task, its own having never reached the queue (its
    submitter died between writing the run and enqueueing it); True if the store still says
    queued and now names the new task (so cancel revokes it).

    Store first, queue second (unlike `requeue`): the run is already queued, so naming the new
    task changes nothing a worker acts on, and no worker can start the run under that task
    before the store names it. If the queue is away, the run stays queued with no task in the
    queue, and the next recovery tries again."""
    task_id = str(uuid.uuid4())
    if not store.runs.retask(run_id, task_id):
        return False
    enqueue(run_id, task_id)
    return True


def requeue(store: Store, run_id: str, stale_before: float, count_attempt: bool = True) -> bool:
    """Put running run `run_id` back in the queue under a new task, if its heartbeat is older
    than `stale_before`; True if this call did (store.requeue's conditions).

    Queue first, store second: if the queue is away, the store is untouched and the caller
    tries again later. The task may then reach a consumer before the store says queued;
    `_start` waits for that. If another worker requeues the run meanwhile, one of the two
    tasks finds it started and does nothing (start_run is conditional): it trains once."""
    task_id = str(uuid.uuid4())
    enqueue(run_id, task_id)
    return store.runs.requeue(run_id, task_id, stale_before=stale_before,
                             count_attempt=count_attempt)


