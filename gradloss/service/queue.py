"""The task queue: Huey on SQLite in a run-store folder, with its one task, `train_run(run_id)`.

`queue_for(folder)` gives the folder's Huey and task, built once per folder: tests and
deployments choose the folder through GRADLOSS_HOME, so it cannot be fixed at import time.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

from huey import SqliteHuey
from huey.api import TaskWrapper

from gradloss.service import tasks
from gradloss.service.store import BUSY_TIMEOUT_S, home


@cache
def _queue(folder: Path) -> tuple[SqliteHuey, TaskWrapper]:
    huey = SqliteHuey("gradloss", filename=str(folder / "queue.sqlite"), results=False,
                      timeout=BUSY_TIMEOUT_S)
    return huey, huey.task(name="train_run")(tasks.train_run)


def queue_for(folder: Path | None = None) -> tuple[SqliteHuey, TaskWrapper]:
    """The Huey queue in `folder` (default: home()) and its train_run task."""
    return _queue(Path(folder or home()).resolve())


def enqueue(folder: Path, run_id: str, task_id: str) -> None:
    """Queue run `run_id` under the known task id (so a queued run can be revoked)."""
    huey, task = queue_for(folder)
    huey.enqueue(task.s(run_id, id=task_id))
