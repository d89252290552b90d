"""Helpers for test_store.py and test_worker.py that must be importable by child processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gradloss.core.progress import Progress
from gradloss.core.records import MetricRow
from gradloss.core.config import TrainConfig
from gradloss.core.plan import RunPlan
from gradloss.service.store import Store

TINY = TrainConfig(dataset="digits", epochs=1, train_size=200, batch_size=50)
REPO = Path(__file__).resolve().parents[1]


def hammer_store(path: str, n_runs: int, barrier) -> list[str]:
    """Create runs and write/read metrics as fast as possible; return the run ids made."""
    store = Store(path)
    barrier.wait()  # start together so the writers really overlap
    made = []
    for i in range(n_runs):
        run_id = store.runs.create(RunPlan(TINY))
        made.append(run_id)
        store.runs.start(run_id, f"pid{os.getpid()}")
        store.results.add_metrics(run_id, [MetricRow(s, 1, "loss", 1.0 / s)
                                   for s in range(1, 21)])
        store.runs.update_progress(run_id, Progress(fraction=1.0, step=20))
        store.runs.list(limit=5)
        store.results.metrics(made, name="loss")
        store.runs.finish(run_id, "done")
    return made


def start_consumer(home: Path, **env) -> subprocess.Popen:
    """Start a real huey consumer process (`python -m gradloss worker`'s body) on GRADLOSS_HOME=home."""
    environ = dict(os.environ, GRADLOSS_HOME=str(home), PYTHONPATH=str(REPO), **env)
    log = open(home / f"consumer-{time.time_ns()}.log", "wb")
    command = [sys.executable, "-c", "from gradloss.service.consumer import run_consumer; run_consumer()"]
    return subprocess.Popen(command, env=environ, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def kill_all(procs: list[subprocess.Popen]) -> None:
    """Kill (SIGKILL) and reap every process of `procs` still alive: a fixture's clean-up."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def kill_pids(pids: list[int]) -> None:
    """SIGKILL every process of `pids` that still exists (workers started detached)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2, explain=None):
    """Poll predicate() until it returns something truthy; fail naming `what` after timeout,
    followed by what explain() returns (the state and logs that say why), if given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                         + ("" if explain is None else f"\n{explain()}"))


def submit_read_cancel(home: str, n_runs: int, barrier) -> list[str]:
    """Submit runs through the queue, read the store, cancel them while queued; return their ids."""
    from gradloss.service import client, consumer

    store = Store(Path(home) / "runs.sqlite")
    barrier.wait()
    made = []
    for _ in range(n_runs):
        made.append(client.submit(TINY, store=store))
        store.runs.list(limit=10)
        store.results.metrics(made)
        consumer.worker_status(store)
    for run_id in made:
        client.cancel(run_id, store=store)
    return made


def runner_pids(run_id: str) -> list[int]:
    """Pids of live `gradloss.service.runner RUN_ID` processes (to check that none outlives its
    worker). A training process started ahead names its runs once it gets them, in one string
    (setproctitle), so its command line is searched, not split into arguments."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"gradloss.service.runner" in text and run_id.encode() in text.split():
            pids.append(int(cmdline.parent.name))
    return pids


def submit_many(n_runs: int, barrier) -> list[str]:
    """Submit n_runs through the queue named by the environment, all at once with another process."""
    from gradloss.service import client

    barrier.wait()
    return [client.submit(TINY) for _ in range(n_runs)]


def submit_and_die() -> None:
    """Submit TINY as client.submit does, but die (SIGKILL, no clean-up) between writing the run
    and enqueueing its task: the fault of a submitter killed at the worst moment."""
    from gradloss.service import client

    client.enqueue = lambda run_id, task_id: os.kill(os.getpid(), signal.SIGKILL)
    client.submit(TINY)
