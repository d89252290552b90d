"""The task queue: Huey on SQLite (default) or Redis (GRADLOSS_QUEUE_URL), with its tasks
`train_run(run_id)` and `evaluate_run(run_id)` (corruptions and attacks for a trained run), and
JSON task payloads.

`queue_for(url)` gives the URL's Huey and task, built once per URL: tests and deployments choose
it through the environment, so it cannot be fixed at import time. Payloads are JSON, never
pickle: a queue shared over the network must not be able to make a worker run arbitrary code.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import sqlite3
from functools import cache
from pathlib import Path

import redis
from huey import RedisHuey, SqliteHuey
from huey.api import Huey, TaskWrapper
from huey.registry import Message
from huey.serializer import Serializer

from gradloss.core.errors import ServiceUnavailable
from gradloss.service import tasks
from gradloss.service.store.database import BUSY_TIMEOUT_S, CONNECT_TIMEOUT_S
from gradloss.service.settings import (QUEUE_SETTING, create_private, queue_url, redact, scheme,
                                       scrub)


TASK_RETRIES = 3          # tries after the first, for a task that raised
TASK_RETRY_DELAY_S = 10   # seconds between them


class JSONSerializer(Serializer):
    """Huey's messages and revocations as JSON: lists, dicts, str, numbers, None and datetimes."""

    def _serialize(self, data) -> bytes:
        return json.dumps(_encode(data), separators=(",", ":")).encode()

    def _deserialize(self, data: bytes):
        return json.loads(data, object_hook=_decode)


def _encode(value):
    if isinstance(value, Message):
        return {"__message__": [_encode(v) for v in value]}
    if isinstance(value, datetime.datetime):
        return {"__datetime__": value.isoformat()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"A task payload must be JSON data; got a {type(value).__name__}.")


def _decode(obj: dict):
    if "__message__" in obj:
        return Message(*obj["__message__"])
    if "__datetime__" in obj:
        return datetime.datetime.fromisoformat(obj["__datetime__"])
    return obj


@contextlib.contextmanager
def reaching(url: str):
    """Turn a failure to reach the queue into ServiceUnavailable naming the setting."""
    try:
        yield
    except (redis.exceptions.RedisError, sqlite3.Error, OSError, ValueError) as exc:
        reason = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
        raise ServiceUnavailable(
            f"The queue at {QUEUE_SETTING}={redact(url)} cannot be used: {reason}") from None


@cache
def _queue(url: str) -> tuple[Huey, TaskWrapper, TaskWrapper]:
    serializer = JSONSerializer()
    with reaching(url):
        if scheme(url) == "redis":
            pool = redis.ConnectionPool.from_url(  # health checks: reconnect after a restart
                url, socket_connect_timeout=CONNECT_TIMEOUT_S, health_check_interval=30)
            huey = RedisHuey("gradloss", connection_pool=pool, results=False, serializer=serializer)
        else:
            filename = Path(url.split(":///", 1)[1])
            filename.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            create_private(filename)  # 0600, before SQLite creates it with the default mode
            huey = SqliteHuey("gradloss", filename=str(filename), results=False,
                              timeout=BUSY_TIMEOUT_S, serializer=serializer)
    # A task that fails before its child starts (the store away for a moment) is tried again;
    # start_run is conditional, so a retry never trains a run twice.
    retry = {"retries": TASK_RETRIES, "retry_delay": TASK_RETRY_DELAY_S}
    return (huey, huey.task(name="train_run", context=True, **retry)(tasks.queued_train_run),
            huey.task(name="evaluate_run", **retry)(tasks.evaluate_run))  # the consumer knows both


def queue_for(url: str | None = None) -> tuple[Huey, TaskWrapper]:
    """The Huey queue at `url` (default: GRADLOSS_QUEUE_URL, else queue.sqlite in home()) and
    its train_run task."""
    return _queue(url or queue_url())[:2]


def enqueue_evaluation(run_id: str) -> None:
    """Queue the evaluation of trained run `run_id` (its plan is in the store)."""
    url = queue_url()
    huey, _, task = _queue(url)
    with reaching(url):
        huey.enqueue(task.s(run_id))


def enqueue(run_id: str, task_id: str) -> None:
    """Queue run `run_id` under the known task id (so a queued run can be revoked)."""
    url = queue_url()
    huey, task = queue_for(url)
    with reaching(url):
        huey.enqueue(task.s(run_id, id=task_id))


def revoke(task_id: str) -> None:
    """Spare the consumer from dequeuing task `task_id` (the store's status is what counts)."""
    url = queue_url()
    with reaching(url):
        queue_for(url)[0].revoke_by_id(task_id, revoke_once=True)


def pending_count() -> int:
    """Tasks waiting in the queue."""
    url = queue_url()
    with reaching(url):
        return queue_for(url)[0].pending_count()
