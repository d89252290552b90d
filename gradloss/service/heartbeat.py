"""Liveness: how often runs and workers beat, when silence means lost, and who this worker is.

A training run's heartbeat is a column of its row; a worker's is a row of the workers table. Both
live in the run store, so workers on every machine see each other. Both count as lost after
GRADLOSS_HEARTBEAT_TIMEOUT seconds of silence.
"""
from __future__ import annotations

import math
import os
import socket
from pathlib import Path

from gradloss.core.errors import SettingsError

GPU_SETTING = "GRADLOSS_GPU"  # the GPU index a `worker --gpus` child is pinned to
TIMEOUT_SETTING = "GRADLOSS_HEARTBEAT_TIMEOUT"
# Below a second, beats (several per timeout) would hammer the store and one slow write would
# count a live worker as lost; above a day, a lost run would wait longer than any run takes.
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 1.0, 86_400.0


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a run or worker counts as lost:
    GRADLOSS_HEARTBEAT_TIMEOUT, default 60, from MIN_TIMEOUT_S to MAX_TIMEOUT_S."""
    value = os.environ.get(TIMEOUT_SETTING, "60")
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not MIN_TIMEOUT_S <= seconds <= MAX_TIMEOUT_S:  # NaN fails this too
        raise SettingsError(
            f"The environment variable {TIMEOUT_SETTING} must be a number of seconds in the range "
            f"[{MIN_TIMEOUT_S:g}, {MAX_TIMEOUT_S:g}]. Got {value!r} instead.")
    return seconds


def beat_interval() -> float:
    return min(5.0, heartbeat_timeout() / 4)  # several beats per timeout: one slow write is no loss


def host() -> str:
    return socket.gethostname()


def worker_id() -> str:
    return f"{host()}:{os.getpid()}"


def gpu_index() -> int | None:
    """The GPU index this worker was pinned to by `worker --gpus`, else None."""
    value = os.environ.get(GPU_SETTING)
    return int(value) if value not in (None, "") else None


def pid_alive(pid: int) -> bool:
    """True if process `pid` exists and is not a zombie (a dead child nobody reaped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust kill(0)


LOCAL_PREFIX = "cli@"  # the worker id of a run the CLI trains in its own process


def local_worker_id() -> str:
    """Who trains a run in the CLI's own process: 'cli@HOST:PID'."""
    return f"{LOCAL_PREFIX}{host()}:{os.getpid()}"


def trained_outside_the_queue(worker: str | None) -> bool:
    """True for a run the CLI trains in its own process (no queue task can resume it)."""
    return bool(worker) and worker.startswith(LOCAL_PREFIX)
