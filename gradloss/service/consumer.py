"""The worker process: a Huey consumer that trains one run at a time and recovers lost runs.

`run_consumer` is `python -m gradloss worker`. While it runs, a thread beats this worker's
heartbeat file and puts runs whose worker stopped beating back in the queue, to resume from
their last epoch checkpoint (or fails them after MAX_ATTEMPTS). `ensure_local_worker` starts a
detached consumer for the dashboard, `restart_local_worker` replaces it (say, after the
dashboard's settings changed); `worker_status` tells who is alive and with which settings.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

from gradloss.engines.backend import available_engines, visible_gpu
from gradloss.service import heartbeat
from gradloss.service.queue import enqueue, queue_for
from gradloss.service.store import RunStore, home
from gradloss.service.tasks import MAX_ATTEMPTS, PACKAGE_ROOT, child_env

log = logging.getLogger(__name__)

@dataclass
class WorkerStatus:
    alive: bool
    device: str | None     # what the newest live worker can train on: GPU name or "CPU"
    queue_length: int      # runs waiting (status queued)
    pid: int | None
    workers: list[dict] = field(default_factory=list)  # every live worker's heartbeat record


def worker_status(store: RunStore | None = None) -> WorkerStatus:
    """Live workers (fresh heartbeat file and, on this host, an existing process) and queue length."""
    store = store or RunStore.default()
    live = heartbeat.live_workers(store.path.parent)
    queued = len(store.list_runs(status="queued"))
    if not live:
        return WorkerStatus(False, None, queued, None)
    return WorkerStatus(True, live[0]["device"], queued, live[0]["pid"], live)


def worker_settings() -> dict:
    """What of this process's set-up decides how a worker here trains; a worker publishes it in
    its heartbeat record, so the dashboard can show it and tell when its own differs."""
    return {"GRADLOSS_DATA_DIR": os.environ.get("GRADLOSS_DATA_DIR") or None,
            "code": str(PACKAGE_ROOT), "engines": list(available_engines())}


def is_local(record: dict) -> bool:
    """True if the worker of this heartbeat record runs on this machine."""
    return record["host"] == socket.gethostname()


def local_worker_allowed() -> bool:
    """False when GRADLOSS_NO_LOCAL_WORKER is set: workers run elsewhere, the dashboard starts none."""
    return os.environ.get("GRADLOSS_NO_LOCAL_WORKER", "").lower() not in ("1", "true", "yes")


def ensure_local_worker() -> bool:
    """Start a detached local worker unless one is alive; True if this call started one.

    GRADLOSS_NO_LOCAL_WORKER=1 turns this off (workers run elsewhere)."""
    if not local_worker_allowed():
        return False
    folder = home()
    with open(folder / "worker.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two dashboard sessions must not both start one
        if worker_status(RunStore(folder / "runs.sqlite")).alive:
            return False
        pid_file = folder / "worker.pid"
        if pid_file.exists() and time.time() - pid_file.stat().st_mtime < heartbeat.heartbeat_timeout():
            if heartbeat.pid_alive(int(pid_file.read_text() or 0)):
                return False  # started moments ago, not heartbeating yet
        with open(folder / "worker.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gradloss", "worker"],
                env=child_env(GRADLOSS_HOME=str(folder)), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)  # outlives the dashboard
        pid_file.write_text(str(proc.pid))
        log.info("started a local worker, pid %d, log %s", proc.pid, folder / "worker.log")
        return True


def restart_local_worker(timeout: float = 30.0) -> bool:
    """Stop this host's workers on home() and start a fresh one with this process's settings.

    Each gets SIGTERM: it stops at once and its run goes back in the queue, to resume from its
    last epoch on the new worker. True if a new worker was started; with
    GRADLOSS_NO_LOCAL_WORKER set it does nothing and returns False."""
    if not local_worker_allowed():
        return False
    folder = home()
    pids = [w["pid"] for w in heartbeat.live_workers(folder) if is_local(w)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(heartbeat.pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    (folder / "worker.pid").unlink(missing_ok=True)
    return ensure_local_worker()


def run_consumer() -> None:
    """Run the huey consumer for home(): one training at a time, until interrupted.

    Refuses an unusable GRADLOSS_HOME or GRADLOSS_HEARTBEAT_TIMEOUT at once (SettingsError)."""
    heartbeat.heartbeat_timeout()  # a bad value would otherwise end the heartbeat thread later
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for name in ("gradloss", "huey"):  # a service's log says what it did, whatever the CLI's level
        logging.getLogger(name).setLevel(logging.INFO)
    store = RunStore.default()
    huey, _ = queue_for(store.path.parent)
    record = {"worker_id": heartbeat.worker_id(), "host": socket.gethostname(), "pid": os.getpid(),
              "device": visible_gpu(), "started_at": time.time(), "settings": worker_settings()}
    log.info("worker %s on %s, store %s", record["worker_id"], record["device"], store.path)
    stop = threading.Event()
    threading.Thread(target=_keep_alive, args=(store, record, stop), daemon=True).start()
    try:  # max_delay: an idle worker notices a new run within a second
        huey.create_consumer(workers=1, periodic=False, max_delay=1.0).run()
    finally:
        stop.set()
        _release_runs(store, record["worker_id"])
        heartbeat.worker_file(store.path.parent, record["worker_id"]).unlink(missing_ok=True)


def _keep_alive(store: RunStore, record: dict, stop: threading.Event) -> None:
    """Every beat: say this worker is alive (a file in home()/workers), recover lost runs."""
    while True:
        try:
            heartbeat.write_beat(store.path.parent, record)
            recover_lost_runs(store)
        except Exception:  # a full disk or a locked file must not end the heartbeat
            log.exception("worker heartbeat failed")
        if stop.wait(heartbeat.beat_interval()):
            return


def recover_lost_runs(store: RunStore | None = None) -> list[str]:
    """Requeue (to resume) or fail running runs with a stale heartbeat; returns their ids."""
    store = store or RunStore.default()
    now = time.time()
    stale_before = now - heartbeat.heartbeat_timeout()
    recovered = []
    for run in store.list_runs(status="running"):
        if run.heartbeat_at is None or run.heartbeat_at >= stale_before:
            continue
        # Every change below is conditional on the heartbeat still being stale: when several
        # workers find the same lost run, one of them acts.
        lost = f"worker {run.worker_id} lost (no heartbeat for {now - run.heartbeat_at:.0f} s)"
        if run.unreadable:  # resuming it cannot help
            acted = store.finish_run(run.run_id, "failed", error=f"the run cannot be read: "
                                     f"{run.unreadable}", stale_before=stale_before)
        elif run.cancel_requested:
            acted = store.finish_run(run.run_id, "cancelled", error=f"{lost} while cancelling",
                                     stale_before=stale_before)
        elif run.attempts < MAX_ATTEMPTS:
            acted = _requeue(store, run.run_id, stale_before)
        else:
            acted = store.finish_run(run.run_id, "failed",
                                     error=f"{lost} after {run.attempts} attempts",
                                     stale_before=stale_before)
        if acted:
            log.warning("run %s: %s; now %s", run.run_id, lost, store.get_run(run.run_id).status)
            recovered.append(run.run_id)
    return recovered


def _requeue(store: RunStore, run_id: str, stale_before: float, count_attempt: bool = True) -> bool:
    task_id = str(uuid.uuid4())
    if not store.requeue(run_id, task_id, stale_before=stale_before, count_attempt=count_attempt):
        return False
    enqueue(store.path.parent, run_id, task_id)
    return True


def _release_runs(store: RunStore, worker: str) -> None:
    """Put this stopping worker's runs back in the queue, to resume on the next worker at once."""
    for run in store.list_runs(status="running"):
        if run.worker_id != worker:
            continue
        if _requeue(store, run.run_id, float("inf"), count_attempt=False):
            log.warning("run %s: this worker stops; requeued to resume", run.run_id)
