"""The worker process: a Huey consumer that trains one run at a time and recovers lost runs.

`run_consumer` is `python -m gradloss worker` (one per GPU with --gpus: see `fleet`). While it
runs, a thread beats this worker's row in the store's workers table and puts runs whose worker
stopped beating back in the queue, to resume from their last checkpoint in the store (or fails
them after MAX_ATTEMPTS), and queues again queued runs whose task never reached the queue.
Workers on every machine share the store, so any of them recovers any other's runs. `ensure_local_worker` starts a detached consumer for the dashboard, `restart_local_worker`
replaces it (say, after the dashboard's settings changed); `worker_status` lists every worker
and its settings.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace

from gradloss.engines.backend import available_engines, visible_gpu
from gradloss.core.errors import ServiceUnavailable
from gradloss.core.records import WorkerRecord, WorkerSettings, WorkerState
from gradloss.service import heartbeat, search, supervisor, tasks
from gradloss.service.tasks import check_queue, queue_for
from gradloss.service.settings import home, queue_url, tracking_uri
from gradloss.service.urls import redact, scrub_output
from gradloss.service.store import Store
from gradloss.service.supervisor import MAX_ATTEMPTS, PACKAGE_ROOT, child_env

log = logging.getLogger(__name__)

FORGET_AFTER_TIMEOUTS = 60  # a worker silent this many heartbeat timeouts leaves the list


@dataclass
class WorkerStatus:
    alive: bool
    device: str | None     # what the newest live worker can train on: GPU name or "CPU"
    queue_length: int      # runs waiting (status queued)
    pid: int | None
    workers: list[WorkerState] = field(default_factory=list)  # every recorded worker


def worker_status(store: Store | None = None) -> WorkerStatus:
    """Every worker in the store (alive: a fresh heartbeat and, on this host, a live process),
    and the number of queued runs."""
    store = store or Store.default()
    now, timeout, here = time.time(), heartbeat.heartbeat_timeout(), heartbeat.host()
    workers = [WorkerState(w, now - w.heartbeat_at < timeout
                           and (w.host != here or heartbeat.pid_alive(w.pid)),
                           now - w.heartbeat_at)
               for w in store.workers.list()]
    live = [w for w in workers if w.alive]
    queued = len(store.runs.list(status="queued"))
    if not live:
        return WorkerStatus(False, None, queued, None, workers)
    return WorkerStatus(True, live[0].record.device, queued, live[0].record.pid, workers)


def worker_settings() -> WorkerSettings:
    """What of this process's set-up decides how a worker here trains; a worker publishes it in
    its heartbeat record, so the dashboard can show it and tell when its own differs."""
    return WorkerSettings(data_dir=os.environ.get("GRADLOSS_DATA_DIR") or None,
                          code=str(PACKAGE_ROOT), engines=tuple(available_engines()))


def is_local(worker: WorkerState) -> bool:
    """True if the worker runs on this machine."""
    return worker.record.host == heartbeat.host()


def local_worker_allowed() -> bool:
    """False when GRADLOSS_NO_LOCAL_WORKER is set: workers run elsewhere, the dashboard starts none."""
    return os.environ.get("GRADLOSS_NO_LOCAL_WORKER", "").lower() not in ("1", "true", "yes")


def ensure_local_worker() -> bool:
    """Start a detached local worker unless one is alive (here or elsewhere); True if started.

    GRADLOSS_NO_LOCAL_WORKER=1 turns this off (workers run elsewhere)."""
    if not local_worker_allowed():
        return False
    folder = home()
    with open(folder / "worker.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two dashboard sessions must not both start one
        if worker_status().alive:
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
    pids = [w.record.pid for w in worker_status().workers if w.alive and is_local(w)]
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
    """Run the huey consumer: one training at a time, until interrupted.

    Raises SettingsError (ServiceUnavailable for the store or the queue, naming the setting) if
    GRADLOSS_HOME, GRADLOSS_HEARTBEAT_TIMEOUT, GRADLOSS_MLFLOW_URI, the store or the queue
    cannot be used at start; later outages are waited out."""
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    scrub_output()  # the worker log never shows the store's or the queue's password
    for name in ("gradloss", "huey"):  # a service's log says what it did, whatever the CLI's level
        logging.getLogger(name).setLevel(logging.INFO)
    heartbeat.heartbeat_timeout()  # a bad value would otherwise end the heartbeat thread later
    supervisor.seed_batches_wanted()  # likewise GRADLOSS_SEED_BATCH, checked by every task
    tracker = tracking_uri()  # and GRADLOSS_MLFLOW_URI, which each run's process reads
    supervisor.prestart_wanted()  # and GRADLOSS_PRESTART
    supervisor.trainer_runs()  # and GRADLOSS_TRAINER_RUNS
    store = Store.default()
    check_queue()  # reach the queue now: a wrong URL or password fails here, not in a thread
    huey, _ = queue_for()
    if search.after_training not in tasks.after_training:  # a search asks its next trial at once
        tasks.after_training.append(search.after_training)
    gpu = heartbeat.gpu_index()
    now = time.time()
    settings = replace(worker_settings(), store=redact(store.url), queue=redact(queue_url()),
                       cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
    record = WorkerRecord(heartbeat.worker_id(), heartbeat.host(), os.getpid(), visible_gpu(),
                          gpu, None, now, now, settings)
    # Until huey's consumer installs its own handlers, a SIGTERM must still end this worker
    # through the `finally` below, which takes its record out of the store.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    store.workers.beat(record)
    log.info("worker %s on %s%s, store %s, queue %s%s", record.worker_id, record.device,
             "" if gpu is None else f" (GPU {gpu})", redact(store.url), redact(queue_url()),
             "" if tracker is None else f", logging runs live to MLflow at {redact(tracker)}")
    stop = threading.Event()
    beating = threading.Thread(target=_keep_alive, args=(store, record, stop), daemon=True)
    beating.start()
    try:  # max_delay: an idle worker notices a new run within half a second (SQLite is polled)
        supervisor.prestart(store=store)  # the first run's training process, started ahead
        huey.create_consumer(workers=1, periodic=False, max_delay=0.5).run()
    finally:
        stop.set()
        beating.join(timeout=30)  # a beat under way would otherwise write the record back
        supervisor.stop_spare()
        try:
            _release_runs(store, record.worker_id)
            store.workers.remove(record.worker_id)
        except ServiceUnavailable as exc:  # its runs are recovered by the heartbeat timeout
            log.warning("%s; could not hand back this worker's runs", exc)


def _exit_on_sigterm(_signum, _frame) -> None:
    raise SystemExit(0)


def _keep_alive(store: Store, record: WorkerRecord, stop: threading.Event) -> None:
    """Every beat: say this worker is alive (and what it trains), recover lost runs, advance
    strength searches with room for a trial.

    A worker judges others lost only after it has itself reached the store for a whole timeout:
    after an outage every heartbeat is old, and the other workers need a beat to refresh theirs."""
    reachable_since = time.monotonic()
    while True:
        try:
            running = store.runs.list(status="running")
            mine = _runs_of(running, record.worker_id)
            store.workers.beat(replace(record, run_id=mine[0].run_id if mine else None))
            if time.monotonic() - reachable_since >= heartbeat.heartbeat_timeout():
                recover_lost_runs(store, running)
                recover_orphaned_runs(store)
                search.advance_open(store)
                store.workers.prune(time.time() - FORGET_AFTER_TIMEOUTS * heartbeat.heartbeat_timeout())
        except ServiceUnavailable as exc:
            log.warning("%s; retrying", exc)
            reachable_since = time.monotonic() + heartbeat.heartbeat_timeout()
        except Exception:  # a bug or a full disk must not end the heartbeat
            log.exception("worker heartbeat failed")
        if stop.wait(heartbeat.beat_interval()):
            return


def _runs_of(runs, worker: str) -> list:
    return [r for r in runs if r.worker_id == worker]


def recover_lost_runs(store: Store | None = None, running=None) -> list[str]:
    """Requeue (to resume) or fail running runs with a stale heartbeat; returns their ids.
    `running`: the store's running runs, if just read (every change is conditional anyway)."""
    store = store or Store.default()
    now = time.time()
    stale_before = now - heartbeat.heartbeat_timeout()
    recovered = []
    for run in store.runs.list(status="running") if running is None else running:
        if run.heartbeat_at is None or run.heartbeat_at >= stale_before:
            continue
        # Every change below is conditional on the heartbeat still being stale: when several
        # workers find the same lost run, one of them acts.
        lost = f"worker {run.worker_id} lost (no heartbeat for {now - run.heartbeat_at:.0f} s)"
        if run.unreadable:  # resuming it cannot help
            acted = store.runs.finish(run.run_id, "failed", error=f"the run cannot be read: "
                                      f"{run.unreadable}", stale_before=stale_before)
        elif run.cancel_requested:
            acted = store.runs.finish(run.run_id, "cancelled", error=f"{lost} while cancelling",
                                      stale_before=stale_before)
        elif heartbeat.trained_outside_the_queue(run.worker_id):  # the CLI: nothing resumes it
            acted = store.runs.finish(run.run_id, "failed", error=f"the process that trained it "
                                      f"({run.worker_id}) stopped: no heartbeat for "
                                      f"{now - run.heartbeat_at:.0f} s", stale_before=stale_before)
        elif run.attempts < MAX_ATTEMPTS:
            acted = tasks.requeue(store, run.run_id, stale_before)
        else:
            acted = store.runs.finish(run.run_id, "failed",
                                      error=f"{lost} after {run.attempts} attempts",
                                      stale_before=stale_before)
        if acted:
            log.warning("run %s: %s; now %s", run.run_id, lost, store.runs.get(run.run_id).status)
            recovered.append(run.run_id)
    return recovered


def recover_orphaned_runs(store: Store | None = None) -> list[str]:
    """Queue again the queued runs that have waited a heartbeat timeout with no task in the
    queue (their submitter died between writing the run and enqueueing it, or the queue lost
    it); returns their ids. Submission is write-then-enqueue: this makes it atomic in effect.

    A task dequeued but not yet started looks absent for a moment; the task this adds for it
    then finds the run started and does nothing, so a run never trains twice."""
    store = store or Store.default()
    before = time.time() - heartbeat.heartbeat_timeout()
    waiting = [r for r in store.runs.list(status="queued") if r.created_at < before]
    if not waiting:
        return []
    in_queue = tasks.waiting_run_ids()
    recovered = []
    for run in waiting:
        if run.run_id not in in_queue and tasks.enqueue_again(store, run.run_id):
            log.warning("run %s was queued with no task in the queue (its submitter stopped "
                        "before enqueueing it?); queued it again", run.run_id)
            recovered.append(run.run_id)
    return recovered


def _release_runs(store: Store, worker: str) -> None:
    """Put this stopping worker's runs back in the queue, to resume on the next worker at once."""
    for run in _runs_of(store.runs.list(status="running"), worker):
        if tasks.requeue(store, run.run_id, float("inf"), count_attempt=False):
            log.warning("run %s: this worker stops; requeued to resume", run.run_id)
