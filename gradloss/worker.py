"""Task queue and background worker: huey on SQLite beside the run store.

`submit` validates a config, records a queued run and enqueues `train_run(run_id)`. The consumer
(`python -m gradloss worker`, one training at a time) stays light: the task never imports
TensorFlow, it starts `python -m gradloss.runner RUN_ID` and heartbeats the run while that child
trains. A worker killed mid-run stops heartbeating; any live worker then puts the run back in the
queue to resume from its last epoch checkpoint (or fails it after MAX_ATTEMPTS).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from huey import SqliteHuey
from huey.api import TaskWrapper

from gradloss import determinism
from gradloss.config import TrainConfig
from gradloss.store import BUSY_TIMEOUT_S, RunStore, home

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # starts of one run: the first, plus one resume after a lost worker
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # children import this gradloss, wherever they start
_queues: dict[Path, tuple[SqliteHuey, TaskWrapper]] = {}
_lock = threading.Lock()


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a run or worker counts as lost."""
    value = os.environ.get("GRADLOSS_HEARTBEAT_TIMEOUT", "60")
    try:
        if float(value) > 0:  # NaN fails this too
            return float(value)
    except ValueError:
        pass
    raise ValueError("The environment variable GRADLOSS_HEARTBEAT_TIMEOUT must be a number of "
                     f"seconds in the range (0, inf). Got {value!r} instead.")


def _beat_interval() -> float:
    return min(5.0, heartbeat_timeout() / 4)  # several beats per timeout: one slow write is no loss


def _queue(folder: Path | None = None) -> tuple[SqliteHuey, TaskWrapper]:
    """The huey queue in `folder` (default home()) and its train_run task; one per folder."""
    folder = Path(folder or home())
    with _lock:
        if folder not in _queues:
            huey = SqliteHuey("gradloss", filename=str(folder / "queue.sqlite"), results=False,
                              timeout=BUSY_TIMEOUT_S)
            _queues[folder] = huey, huey.task(name="train_run")(_train_run)
        return _queues[folder]


def __getattr__(name: str):
    if name == "huey":  # the queue of the current home(), which tests and deployments set
        return _queue()[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- client side: the dashboard and the CLI --------------------------------------------------

def submit(config: TrainConfig | dict, store: RunStore | None = None) -> str:
    """Validate `config`, record a queued run and enqueue it; returns the run id.

    An invalid config raises InvalidParameterError with the config check's message, and
    nothing is recorded or queued."""
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(dict(config))
    store = store or RunStore.default()
    huey, task = _queue(store.path.parent)
    task_id = str(uuid.uuid4())  # known before enqueueing, so cancel can revoke it
    run_id = store.create_run(config, task_id=task_id)
    try:
        huey.enqueue(task.s(run_id, id=task_id))
    except Exception as exc:
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
        _queue(store.path.parent)[0].revoke_by_id(run.task_id, revoke_once=True)
    return store.request_cancel(run_id)


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
    live = []
    for path in (store.path.parent / "workers").glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # removed or replaced while listing
        fresh = time.time() - record["heartbeat_at"] < heartbeat_timeout()
        if fresh and (record["host"] != socket.gethostname() or _pid_alive(record["pid"])):
            live.append(record)
    live.sort(key=lambda w: w["heartbeat_at"], reverse=True)
    queued = len(store.list_runs(status="queued"))
    if not live:
        return WorkerStatus(False, None, queued, None)
    return WorkerStatus(True, live[0]["device"], queued, live[0]["pid"], live)


def ensure_local_worker() -> bool:
    """Start a detached local worker unless one is alive; True if this call started one.

    GRADLOSS_NO_LOCAL_WORKER=1 turns this off (workers run elsewhere)."""
    if os.environ.get("GRADLOSS_NO_LOCAL_WORKER", "").lower() in ("1", "true", "yes"):
        return False
    folder = home()
    with open(folder / "worker.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two dashboard sessions must not both start one
        if worker_status(RunStore(folder / "runs.sqlite")).alive:
            return False
        pid_file = folder / "worker.pid"
        if pid_file.exists() and time.time() - pid_file.stat().st_mtime < heartbeat_timeout():
            if _pid_alive(int(pid_file.read_text() or 0)):
                return False  # started moments ago, not heartbeating yet
        with open(folder / "worker.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from gradloss import worker; worker.run_consumer()"],
                env=_child_env(GRADLOSS_HOME=str(folder)), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)  # outlives the dashboard
        pid_file.write_text(str(proc.pid))
        log.info("started a local worker, pid %d, log %s", proc.pid, folder / "worker.log")
        return True


# -- worker side: the consumer process --------------------------------------------------------

def run_consumer() -> None:
    """Run the huey consumer for home(): one training at a time, until interrupted."""
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for name in ("gradloss", "huey"):  # a service's log says what it did, whatever the CLI's level
        logging.getLogger(name).setLevel(logging.INFO)
    store = RunStore.default()
    huey, _ = _queue(store.path.parent)
    record = {"worker_id": _worker_id(), "host": socket.gethostname(), "pid": os.getpid(),
              "device": worker_device(), "started_at": time.time()}
    log.info("worker %s on %s, store %s", record["worker_id"], record["device"], store.path)
    stop = threading.Event()
    threading.Thread(target=_keep_alive, args=(store, record, stop), daemon=True).start()
    try:  # max_delay: an idle worker notices a new run within a second
        huey.create_consumer(workers=1, periodic=False, max_delay=1.0).run()
    finally:
        stop.set()
        _release_runs(store, record["worker_id"])
        _worker_file(store.path.parent, record["worker_id"]).unlink(missing_ok=True)


def _keep_alive(store: RunStore, record: dict, stop: threading.Event) -> None:
    """Every beat: say this worker is alive (a file in home()/workers), recover lost runs."""
    path = _worker_file(store.path.parent, record["worker_id"])
    path.parent.mkdir(exist_ok=True)
    while True:
        try:
            path.with_suffix(".tmp").write_text(json.dumps(dict(record, heartbeat_at=time.time())))
            os.replace(path.with_suffix(".tmp"), path)  # readers never see half a file
            recover_lost_runs(store)
        except Exception:  # a full disk or a locked file must not end the heartbeat
            log.exception("worker heartbeat failed")
        if stop.wait(_beat_interval()):
            return


def recover_lost_runs(store: RunStore | None = None) -> list[str]:
    """Requeue (to resume) or fail running runs with a stale heartbeat; returns their ids."""
    store = store or RunStore.default()
    now = time.time()
    stale_before = now - heartbeat_timeout()
    recovered = []
    for run in store.list_runs(status="running"):
        if run.heartbeat_at is None or run.heartbeat_at >= stale_before:
            continue
        # Every change below is conditional on the heartbeat still being stale: when several
        # workers find the same lost run, one of them acts.
        lost = f"worker {run.worker_id} lost (no heartbeat for {now - run.heartbeat_at:.0f} s)"
        if run.cancel_requested:
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
    huey, task = _queue(store.path.parent)
    task_id = str(uuid.uuid4())
    if not store.requeue(run_id, task_id, stale_before=stale_before, count_attempt=count_attempt):
        return False
    huey.enqueue(task.s(run_id, id=task_id))
    return True


def _release_runs(store: RunStore, worker_id: str) -> None:
    """Put this stopping worker's runs back in the queue, to resume on the next worker at once."""
    for run in store.list_runs(status="running"):
        if run.worker_id != worker_id:
            continue
        if _requeue(store, run.run_id, float("inf"), count_attempt=False):
            log.warning("run %s: this worker stops; requeued to resume", run.run_id)


def _train_run(run_id: str) -> None:
    """The huey task: train one run in a child process, heartbeating while it works."""
    store = RunStore.default()
    if not store.start_run(run_id, _worker_id(), worker_device()):
        log.info("run %s is %s; not starting it", run_id, store.get_run(run_id).status)
        return
    run = store.get_run(run_id)
    engine = run.engine
    env = _child_env(KERAS_BACKEND=engine, GRADLOSS_HOME=str(store.path.parent),
                     GRADLOSS_PARENT_PID=str(os.getpid()))  # the runner dies with this process
    if run.config.get("deterministic"):
        env = determinism.environment(engine, env)
    if engine == "jax":
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # JAX would take 75 % of a shared GPU
    # Own session: a Ctrl-C meant for the worker must not kill the training (the worker stops
    # gracefully, after this run); the runner still dies with the worker (PR_SET_PDEATHSIG).
    proc = subprocess.Popen([sys.executable, "-m", "gradloss.runner", run_id], env=env,
                            start_new_session=True)
    while True:
        try:
            code = proc.wait(timeout=_beat_interval())
            break
        except subprocess.TimeoutExpired:
            store.heartbeat(run_id)
    if store.get_run(run_id).status == "running":  # the child ended without finishing the run
        reason = f"signal {-code}" if code < 0 else f"code {code}"
        store.finish_run(run_id, "failed", error=f"the training process exited with {reason} "
                                                 "before finishing; see the worker log")


# -- small helpers -----------------------------------------------------------------------------

def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _child_env(**extra: str) -> dict:
    env = dict(os.environ, **extra)
    if PACKAGE_ROOT.name not in ("site-packages", "dist-packages"):  # a source checkout
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    return env


@cache
def worker_device() -> str:
    """The GPU this worker may use (honouring CUDA_VISIBLE_DEVICES), else "CPU".

    Asks nvidia-smi: the consumer never imports TensorFlow."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if shutil.which("nvidia-smi") is None or visible in ("", "-1"):
        return "CPU"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "CPU"
    gpus = [[part.strip() for part in line.split(",", 2)] for line in out.splitlines() if line.strip()]
    if visible is not None:
        wanted = visible.split(",")[0].strip()  # the worker trains on the first visible GPU
        gpus = [g for g in gpus if wanted in (g[0], g[1])]
    return gpus[0][2] if gpus else "CPU"


def _worker_file(folder: Path, worker_id: str) -> Path:
    return folder / "workers" / f"{worker_id.replace(':', '-')}.json"


def _pid_alive(pid: int) -> bool:
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
