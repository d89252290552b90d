"""The task queue's transport: Huey on SQLite (default) or Redis (GRADLOSS_QUEUE_URL), with JSON
payloads and task priorities (training before evaluations). Its tasks, and the verbs that put
work on it, are `tasks`.

`huey_for(url)` gives the URL's Huey, built once per URL: tests and deployments choose it
through the environment, so it cannot be fixed at import time. Payloads are JSON, never pickle: a
queue shared over the network must not be able to make a worker run arbitrary code.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import sqlite3
from functools import cache
from pathlib import Path

import redis
from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey
from huey.registry import Message
from huey.serializer import Serializer

from gradloss.core.errors import ServiceUnavailable, SettingsError
from gradloss.service.store.database import BUSY_TIMEOUT_S, CONNECT_TIMEOUT_S
from gradloss.service.settings import QUEUE_SCHEMES, create_private, writable_database
from gradloss.service.urls import QUEUE_SETTING, check_url, redact, scheme, scrub


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
    """Turn a failure to reach the queue into ServiceUnavailable naming the setting (once: one
    that already says so passes through as it is)."""
    try:
        yield
    except SettingsError:  # already names its setting (ServiceUnavailable included)
        raise
    except (redis.exceptions.RedisError, sqlite3.Error, OSError, ValueError) as exc:
        reason = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
        raise ServiceUnavailable(
            f"The queue at {QUEUE_SETTING}={redact(url)} cannot be used: {reason}") from None


def sqlite_file(url: str) -> Path:
    """The file of a sqlite:///PATH queue URL."""
    return Path(url.split(":///", 1)[1])


def check_writable(url: str) -> None:
    """Raise SettingsError naming the file unless a SQLite queue at `url` can be written now
    (a Redis queue is reached when used)."""
    if scheme(url) == "sqlite" and sqlite_file(url).exists():
        writable_database(sqlite_file(url), "queue", QUEUE_SETTING)


@cache
def huey_for(url: str) -> Huey:
    """The Huey queue at `url` (sqlite:/// or redis://), without tasks (`tasks.app` adds them)."""
    check_url(QUEUE_SETTING, url, QUEUE_SCHEMES)
    serializer = JSONSerializer()
    with reaching(url):
        if scheme(url) == "redis":
            pool = redis.ConnectionPool.from_url(  # health checks: reconnect after a restart
                url, socket_connect_timeout=CONNECT_TIMEOUT_S, health_check_interval=30)
            huey = PriorityRedisHuey("gradloss", connection_pool=pool, results=False,
                                     serializer=serializer)
            adopt_list_queue(huey.storage)
            return huey
        filename = sqlite_file(url)
        filename.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        create_private(filename)  # 0600, before SQLite creates it with the default mode
        writable_database(filename, "queue", QUEUE_SETTING)
        return SqliteHuey("gradloss", filename=str(filename), results=False,
                          timeout=BUSY_TIMEOUT_S, serializer=serializer)


def adopt_list_queue(storage) -> int:
    """Move tasks an older gradloss queued in Redis as a plain list (no priorities) into the
    priority queue's sorted set under the same key, oldest first; returns how many moved.

    The list is renamed away first (atomic), so two processes never both move it."""
    conn, key = storage.conn, storage.queue_key
    if conn.type(key) not in (b"list", "list"):
        return 0
    old = f"{key}.list"
    try:
        conn.rename(key, old)
    except redis.exceptions.ResponseError:  # another process moved it meanwhile
        return 0
    items = conn.lrange(old, 0, -1)  # newest first: LPUSH'd, popped from the tail
    for data in reversed(items):
        storage.enqueue(data)
    conn.delete(old)
    return len(items)
