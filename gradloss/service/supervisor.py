"""What the queue's tasks do (`tasks` registers them): train one stored run, or evaluate a
trained one, in a child process, watched.

The consumer stays light: this never imports TensorFlow or JAX. Runs train in a child process
with the environment the run's engine needs (`Trainer`), and the run's heartbeat beats while it
trains. Starting TensorFlow and warming up takes a training process 5 to 30 s, so the worker
keeps one started ahead (`prestart`), waiting on a pipe for the ids of the next run, and hands
it run after run: start-up is paid once per process, not per run (bench/frontier_cost.py). After
GRADLOSS_TRAINER_RUNS hand-offs (default 20) a fresh process replaces it, so memory a long life
gathers is given back; a process that died is replaced at once. Cancel and crash recovery are
as with a process started for the run (GRADLOSS_PRESTART=off: a process is started for each
run, and nothing ahead). If the child dies without finishing the run
(killed, out of memory), the run goes back in the queue to resume from its last epoch
checkpoint while it has attempts left, and fails with the reason otherwise. A store outage does
not stop the child: beats resume when the store is back, and a run that another worker took over
meanwhile (this one was silent too long) is stopped here, so it is never trained to the end twice.
On a GPU worker, the other queued seeds of a run's experiment arm join it as one seed batch
(`claim_seed_batch`), each still its own run.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from gradloss.core.config import batchable
from gradloss.engines import backend
from gradloss.core.errors import ServiceUnavailable, SettingsError
from gradloss.service.heartbeat import beat_interval, gpu_index, host, worker_id
from gradloss.service.reporter import Reporter
from gradloss.service.settings import home
from gradloss.service.store import Store
from gradloss.service.store.artifacts import CHECKPOINT

log = logging.getLogger(__name__)

Requeue = Callable[[Store, str, float], bool]  # tasks.requeue: put a running run back in the queue

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # children import this gradloss, wherever they start
MAX_ATTEMPTS = 2  # starts of one run: the first, plus one resume after its worker or trainer was lost
SEED_BATCH_SETTING = "GRADLOSS_SEED_BATCH"  # auto (default: on a GPU worker), on or off
MAX_SEED_BATCH = 8  # seeds trained as one program at most (memory grows with each)
REQUEUE_WAIT_S = 10  # how long a task waits for the store to record the requeue that queued it
PRESTART_SETTING = "GRADLOSS_PRESTART"  # on (default) or off: a training process started ahead
TRAINER_RUNS_SETTING = "GRADLOSS_TRAINER_RUNS"  # hand-offs one training process takes
TRAINER_RUNS = 20      # then a fresh process: memory a long life might gather is given back
MAX_TRAINER_RUNS = 10_000


def child_env(**extra: str) -> dict:
    """This process's environment plus `extra`, with this gradloss importable from anywhere."""
    env = dict(os.environ, **extra)
    if PACKAGE_ROOT.name not in ("site-packages", "dist-packages"):  # a source checkout
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    return env


def prestart_wanted() -> bool:
    """GRADLOSS_PRESTART: on (the default) or off."""
    value = os.environ.get(PRESTART_SETTING, "on").strip().lower()
    if value not in ("on", "off"):
        raise SettingsError(f"The environment variable {PRESTART_SETTING} must be a str among "
                            f"('on', 'off'). Got {value!r} instead.")
    return value == "on"


def _runner_env(store: Store, engine: str, deterministic: bool) -> dict:
    """The environment of this worker's training processes for `engine`."""
    return backend.child_environment(engine, deterministic, child_env(
        GRADLOSS_HOME=str(home()), GRADLOSS_STORE_URL=store.url, GRADLOSS_WORKER_ID=worker_id(),
        GRADLOSS_PARENT_PID=str(os.getpid())))  # the runner dies with this process


def trainer_runs() -> int:
    """GRADLOSS_TRAINER_RUNS: how many hand-offs one training process takes before a fresh one
    replaces it (default 20; 1: a process per run, as before processes were reused)."""
    text = os.environ.get(TRAINER_RUNS_SETTING, str(TRAINER_RUNS)).strip()
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_TRAINER_RUNS:
        raise SettingsError(f"The environment variable {TRAINER_RUNS_SETTING} must be an int in "
                            f"the range [1, {MAX_TRAINER_RUNS}]. Got {text!r} instead.")
    return value


class Trainer:
    """A training process. Started ahead (`runs` None: `python -m gradloss.service.runner
    --wait` imports its engine, warms up, says 'ready' on its stdout and trains the runs of each
    line of its stdin, saying 'finished' after each), or started for `runs` (it trains them and
    exits: GRADLOSS_PRESTART=off)."""

    def __init__(self, env: dict, runs: list[str] | None = None):
        self.env, self.started, self.serving = env, time.monotonic(), runs is None
        self.uses = 0 if runs is None else 1
        self.ready, self.finished = threading.Event(), threading.Event()
        # Own session: a Ctrl-C meant for the worker must not kill the training (see train_run);
        # it still dies with the worker (PR_SET_PDEATHSIG).
        command = [sys.executable, "-m", "gradloss.service.runner", *(runs or ["--wait"])]
        pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE) if self.serving else {}
        self.proc = subprocess.Popen(command, env=env, start_new_session=True, **pipes)
        if self.serving:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # 'ready' before each hand-off, 'finished' after it
            word = line.strip()
            if word == b"ready" and not self.ready.is_set():
                self.ready.set()
                log.info("training process %d ready (started %.1f s ago)", self.proc.pid,
                         time.monotonic() - self.started)
            elif word == b"finished":
                self.finished.set()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def take(self, run_ids: list[str]) -> "Trainer":
        """Hand it the runs to train; it trains them as a process started for them would."""
        self.finished.clear()
        self.uses += 1
        self.proc.stdin.write((" ".join(run_ids) + "\n").encode())
        self.proc.stdin.flush()
        return self

    def wait(self, timeout: float) -> int | None:
        """0 once the runs handed to it are trained (a serving process then waits for more),
        its exit code if it ended first, None while it trains (after `timeout` seconds)."""
        if not self.serving:
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
        if self.finished.wait(timeout):
            return 0
        code = self.proc.poll()
        if code is not None:  # it may have said 'finished' just before it ended
            return 0 if self.finished.wait(1.0) else code
        return None

    def reusable(self, env: dict) -> bool:
        """Whether it can take the next runs for `env`: serving, alive, and not yet at
        GRADLOSS_TRAINER_RUNS hand-offs."""
        return self.serving and self.alive() and self.env == env and self.uses < trainer_runs()

    def retire(self) -> None:
        """Let it end: a serving process exits when its stdin closes (one that ended already,
        or was started for its runs, is only reaped)."""
        if self.serving and self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        threading.Thread(target=self.proc.wait, daemon=True).start()  # reaped once it ends

    def stop(self) -> None:
        """End it now: between runs it holds nothing but its imports."""
        self.proc.kill()
        self.proc.wait()


_spare: Trainer | None = None  # this worker's training process waiting for runs, if any
_spare_lock = threading.Lock()


def prestart(engine: str = "tensorflow", deterministic: bool = False,
             store: Store | None = None) -> Trainer | None:
    """Have a training process for `engine` waiting for the next run (unless
    GRADLOSS_PRESTART=off); one for another engine is replaced. Returns it."""
    global _spare
    if not prestart_wanted():
        return None
    env = _runner_env(store or Store.default(), engine, deterministic)
    with _spare_lock:
        if _spare is not None and not _spare.reusable(env):
            _spare.stop()
            _spare = None
        if _spare is None:
            _spare = Trainer(env)
            log.info("started training process %d ahead, for the next %s run", _spare.proc.pid,
                     engine)
        return _spare


def stop_spare() -> None:
    """End the waiting training process, if any (the worker stops)."""
    global _spare
    with _spare_lock:
        if _spare is not None:
            _spare.stop()
            _spare = None


def _launch(run_ids: list[str], env: dict) -> Trainer:
    """A training process for `run_ids`: the waiting one when it can take them, else a new one
    started for them (GRADLOSS_PRESTART=off, or no process waiting)."""
    global _spare
    with _spare_lock:
        spare, _spare = _spare, None
    if spare is not None and spare.reusable(env):
        log.info("run(s) %s train in training process %d (its hand-off %d)", ", ".join(run_ids),
                 spare.proc.pid, spare.uses + 1)
        try:
            return spare.take(run_ids)
        except OSError:  # it died just now (a closed pipe): a new process takes the runs
            log.warning("training process %d ended before it took run(s) %s",
                        spare.proc.pid, ", ".join(run_ids))
    if spare is not None:
        spare.stop()
    return Trainer(env, run_ids)


def _park(trainer: Trainer, env: dict) -> None:
    """After its runs: keep the training process waiting for the next run if it can take one,
    else let it end (`prestart` then starts a fresh one)."""
    global _spare
    with _spare_lock:
        if _spare is None and trainer.reusable(env):
            _spare = trainer
            return
    trainer.retire()


def train_run(run_id: str, task_id: str | None = None,
              requeue: Requeue | None = None) -> list[str]:
    """Train run `run_id` in a child process unless it is no longer queued; returns the ids of
    the runs it trained (with seeds that joined it as a seed batch), [] if none. `task_id`: the
    queue task's id, to wait for a requeue of the run under it (see `_start`); `requeue`: how
    to put the run back in the queue if its child dies (`tasks.requeue`)."""
    store = Store.default()
    me = worker_id()
    if not _start(store, run_id, me, task_id):
        log.info("run %s is %s; not starting it", run_id, store.runs.get(run_id).status)
        return []
    run = store.runs.get(run_id)
    evaluation = store.evaluations.plan_of(run_id)
    unreadable = run.unreadable or (evaluation and evaluation.unreadable and
                                    f"its evaluation plan: {evaluation.unreadable}")
    if unreadable:  # nothing to train from: fail it with the cause, not in a child's log
        store.runs.finish(run_id, "failed", error=f"the run cannot be read: {unreadable}")
        log.error("run %s cannot be read: %s", run_id, unreadable)
        return []
    run_ids = [run_id] + claim_seed_batch(store, run, me)
    if len(run_ids) > 1:
        log.info("run %s trains with %d more seed(s) of its experiment arm as one seed batch: %s",
                 run_id, len(run_ids) - 1, ", ".join(run_ids[1:]))
    env = _runner_env(store, run.engine, run.config.deterministic)
    trainer = _launch(run_ids, env)
    while (code := trainer.wait(beat_interval())) is None:
        taken = [r for r in run_ids if _taken_over(store, r, me)]
        if taken:
            log.warning("run(s) %s were taken over by another worker while this one could not "
                        "reach the store; stopping this copy", ", ".join(taken))
            trainer.proc.kill()
    _park(trainer, env)
    reporter = Reporter()  # the store may be away right now: retry until it answers
    for one in run_ids:
        reporter.send(_fail_if_unfinished, store, one, me, code, requeue)
    reporter.close()
    _prestart_quietly(run.engine, run.config.deterministic, store)
    return run_ids


def _prestart_quietly(engine: str, deterministic: bool, store: Store) -> None:
    """prestart for the next run; a failure only costs that run its head start."""
    try:
        prestart(engine, deterministic, store)
    except Exception:  # noqa: BLE001
        log.exception("could not start a training process ahead")


def _start(store: Store, run_id: str, me: str, task_id: str | None) -> bool:
    """Mark the run running on worker `me`; False if it is no longer queued.

    A run is requeued queue first, store second (`requeue`), so this task can arrive while
    the store still says running under an older task. Wait up to REQUEUE_WAIT_S for the store to name this task: without it, the
    task would be spent and the run left queued with nothing in the queue to start it. If
    the store never does (the requeue's write failed), the next lost-run check tries again."""
    deadline = time.monotonic() + REQUEUE_WAIT_S
    while not store.runs.start(run_id, me, host=host(), gpu=gpu_index()):
        run = store.runs.get(run_id)
        if task_id is None or run.status != "running" or run.task_id == task_id \
                or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def seed_batches_wanted() -> bool:
    """GRADLOSS_SEED_BATCH: on, off, or auto (the default): on where this worker has a GPU.

    On a CPU a batch of N seeds costs about N runs' time and holds all N back until the last
    finishes, so one at a time is better there; on a GPU they cost far less together."""
    value = os.environ.get(SEED_BATCH_SETTING, "auto").strip().lower()
    if value not in ("auto", "on", "off"):
        raise SettingsError(f"The environment variable {SEED_BATCH_SETTING} must be a str among "
                            f"('auto', 'on', 'off'). Got {value!r} instead.")
    return value == "on" or (value == "auto" and backend.visible_gpu() != "CPU")


def claim_seed_batch(store: Store, run, me: str) -> list[str]:
    """Other queued seeds of `run`'s experiment arm that can train with it as one seed batch
    (`config.batchable`: the jax engine, alike but for the seed), marked running on worker `me`;
    [] unless seed batches are wanted here. A run being resumed trains alone, as do runs
    resumed later: only first starts are batched. Their own queue tasks then find them
    running and skip them."""
    if run.experiment_id is None or run.attempts != 1 or not seed_batches_wanted():
        return []
    configs = [run.config]
    if not batchable(configs):
        return []
    claimed = []
    for other in store.runs.of_experiment(run.experiment_id):
        if len(claimed) + 1 >= MAX_SEED_BATCH:
            break
        if other.run_id == run.run_id or other.arm != run.arm or other.status != "queued" \
                or other.attempts or other.unreadable:  # an unreadable one: its task fails it
            continue
        if other.sweep == run.sweep and other.data_dir == run.data_dir \
                and batchable(configs + [other.config]) \
                and store.runs.start(other.run_id, me, host=host(), gpu=gpu_index()):
            configs.append(other.config)
            claimed.append(other.run_id)
    return claimed


def _taken_over(store: Store, run_id: str, me: str) -> bool:
    """Beat the run's heartbeat; True if it is running on another worker now."""
    try:
        if store.runs.heartbeat(run_id, worker_id=me):
            return False
        run = store.runs.get(run_id)
    except ServiceUnavailable as exc:
        log.warning("%s; run %s trains on and reports once it is back", exc, run_id)
        return False
    return run.status == "running" and run.worker_id != me


def _fail_if_unfinished(store: Store, run_id: str, me: str, code: int,
                        requeue: Requeue | None) -> None:
    """The child ended: if it left the run running (killed, out of memory), requeue it to resume
    from its checkpoint (here or in the store) while it has attempts left, else end it."""
    run = store.runs.get(run_id)
    if run.status != "running" or run.worker_id != me:
        return
    lost = f"the training process exited with {f'signal {-code}' if code < 0 else f'code {code}'} " \
           "before finishing"
    run_dir = home() / run_id  # checkpoint.old holds it while a new one is swapped in
    checkpoint = (any((run_dir / name).is_dir() for name in ("checkpoint", "checkpoint.old"))
                  or store.artifacts.get(run_id, CHECKPOINT) is not None)
    if run.cancel_requested:
        store.runs.finish(run_id, "cancelled", error=f"{lost} while cancelling", worker_id=me)
    elif run.attempts < MAX_ATTEMPTS and checkpoint and requeue is not None:
        if requeue(store, run_id, float("inf")):
            log.warning("run %s: %s; requeued to resume from its checkpoint", run_id, lost)
    else:
        tries = f" after {run.attempts} attempts" if run.attempts > 1 else ""
        store.runs.finish(run_id, "failed", error=f"{lost}{tries}; see the worker log", worker_id=me)


def evaluate_run(run_id: str) -> None:
    """Run trained run `run_id`'s queued evaluation plan in a TensorFlow child process (every
    run is measured on TensorFlow, `pipeline.evaluation`; the child loads the run's model from
    the store if it was trained elsewhere)."""
    store = Store.default()
    plan = store.evaluations.plan_of(run_id)
    if plan is None or plan.status != "queued":
        log.info("run %s has no queued evaluation; not starting one", run_id)
        return
    env = backend.child_environment("tensorflow", False, child_env(
        GRADLOSS_HOME=str(home()), GRADLOSS_STORE_URL=store.url,
        GRADLOSS_PARENT_PID=str(os.getpid())))
    code = subprocess.call([sys.executable, "-m", "gradloss.service.evaluator", run_id], env=env,
                           start_new_session=True)
    after = store.evaluations.plan_of(run_id)
    # Left running, or still the very plan it was given: the child died unfinished. A plan
    # queued anew meanwhile (the user asked for another evaluation) is the next task's.
    if after.status == "running" or (after.status == "queued"
                                      and after.updated_at == plan.updated_at):
        reason = f"signal {-code}" if code < 0 else f"code {code}"
        store.evaluations.set_status(run_id, "failed", error=f"the evaluation process exited "
                                                             f"with {reason}; see the worker log")
    _prestart_quietly("tensorflow", False, store)
