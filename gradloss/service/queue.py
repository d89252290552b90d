"""The task queue: Huey on SQLite in a run-store folder, with its tasks `train_run(run_id)` and
`evaluate_run(run_id)` (corruptions and attacks for an already-trained run).

`queue_for(folder)` gives the folder's Huey and task, built once per folder: tests and
deployments choose the folder through GRADLOSS_HOME, so it cannot be fixed at import time.
Messages are JSON, never pickle: a task carries only a run id, and unpickling whatever is in
the queue file would run the code of anyone who can write it.
"""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from huey import SqliteHuey
from huey.api import TaskWrapper
from huey.registry import Message
from huey.serializer import Serializer

from gradloss.service import tasks
from gradloss.service.store import BUSY_TIMEOUT_S, create_private, home


class JsonSerializer(Serializer):
    """Huey's messages (and its revoke flags) as JSON; anything else in the queue is refused
    with a ValueError, which the consumer logs and skips."""

    def _serialize(self, data) -> bytes:
        if isinstance(data, Message):  # a namedtuple: keep its field names
            data = {"message": data._asdict()}
        return json.dumps(data).encode()  # a datetime eta or a callback cannot be sent: TypeError

    def _deserialize(self, data: bytes):
        value = json.loads(data)  # bytes that are not UTF-8 JSON: ValueError
        if isinstance(value, dict) and "message" in value:
            return Message(**value["message"])
        return value


@cache
def _queue(folder: Path) -> tuple[SqliteHuey, TaskWrapper, TaskWrapper]:
    filename = folder / "queue.sqlite"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    create_private(filename)  # 0600, before SQLite creates it with the default mode
    huey = SqliteHuey("gradloss", filename=str(filename), results=False, timeout=BUSY_TIMEOUT_S,
                      serializer=JsonSerializer())
    return (huey, huey.task(name="train_run")(tasks.train_run),
            huey.task(name="evaluate_run")(tasks.evaluate_run))  # the consumer knows both


def queue_for(folder: Path | None = None) -> tuple[SqliteHuey, TaskWrapper]:
    """The Huey queue in `folder` (default: home()) and its train_run task."""
    return _queue(Path(folder or home()).resolve())[:2]


def enqueue_evaluation(folder: Path, run_id: str) -> None:
    """Queue the evaluation of trained run `run_id` (its plan is in the store)."""
    huey, _, task = _queue(Path(folder).resolve())
    huey.enqueue(task.s(run_id))


def enqueue(folder: Path, run_id: str, task_id: str) -> None:
    """Queue run `run_id` under the known task id (so a queued run can be revoked)."""
    huey, task = queue_for(folder)
    huey.enqueue(task.s(run_id, id=task_id))
