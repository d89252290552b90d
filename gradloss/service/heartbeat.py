"""Liveness: how often runs and workers beat, when silence means lost, and the workers' beat files.

A worker writes home()/workers/<host>-<pid>.json every beat; a training run's heartbeat is a
column in the store. Both count as lost after GRADLOSS_HEARTBEAT_TIMEOUT seconds of silence.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from gradloss.exceptions import SettingsError


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a run or worker counts as lost."""
    value = os.environ.get("GRADLOSS_HEARTBEAT_TIMEOUT", "60")
    try:
        if float(value) > 0:  # NaN fails this too
            return float(value)
    except ValueError:
        pass
    raise SettingsError("The environment variable GRADLOSS_HEARTBEAT_TIMEOUT must be a number of "
                        f"seconds in the range (0, inf). Got {value!r} instead.")


def beat_interval() -> float:
    return min(5.0, heartbeat_timeout() / 4)  # several beats per timeout: one slow write is no loss


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_file(folder: Path, worker: str) -> Path:
    return folder / "workers" / f"{worker.replace(':', '-')}.json"


def write_beat(folder: Path, record: dict) -> None:
    """Say that the worker described by `record` is alive now (readers never see half a file)."""
    path = worker_file(folder, record["worker_id"])
    path.parent.mkdir(exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(dict(record, heartbeat_at=time.time())))
    os.replace(path.with_suffix(".tmp"), path)


def live_workers(folder: Path) -> list[dict]:
    """Records of workers with a fresh beat (and, on this host, a live process), newest first."""
    live = []
    for path in (folder / "workers").glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # removed or replaced while listing
        fresh = time.time() - record["heartbeat_at"] < heartbeat_timeout()
        if fresh and (record["host"] != socket.gethostname() or pid_alive(record["pid"])):
            live.append(record)
    return sorted(live, key=lambda w: w["heartbeat_at"], reverse=True)


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
