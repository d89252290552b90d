"""Worker contract tests on both backends (`backend` fixture): embedded (SQLite files) and network
(real PostgreSQL and Redis from services.py). Every worker has its own GRADLOSS_HOME: the store
and the queue are all they share, as on separate machines. Tiny digits runs (200 images, batch 50).
"""
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataclasses import replace
from gradloss.core.plan import RunPlan
from gradloss.service import client, consumer, tasks
from gradloss.service.checkpoints import fetch_model
from gradloss.service.store.artifacts import CHECKPOINT
from gradloss.service.store import Store

from _worker_helpers import (REPO, TINY, kill_all, runner_pids, start_consumer, submit_and_die,
                             submit_many, wait_for)

TIMEOUT = 240  # seconds for a tiny run on 2 shared cores, TensorFlow import included


@pytest.fixture
def worker(tmp_path, backend):
    """worker(name, **env): a consumer with its own home tmp_path/name; all killed at the end."""
    started = []

    def start(name: str, **env) -> subprocess.Popen:
        home = tmp_path / name
        home.mkdir(exist_ok=True)
        proc = start_consumer(home, **env)
        proc.home = home
        started.append(proc)
        return proc

    yield start
    kill_all(started)


def _logs(*workers) -> str:
    return "".join(p.read_text(errors="replace") for w in workers for p in w.home.glob("consumer-*.log"))


def _explain(store, run_ids, *workers) -> str:
    """The runs' rows and the workers' logs' ends: what a timed-out wait prints."""
    rows = "\n".join(repr(store.runs.get(r)) for r in run_ids)
    return f"{rows}\n--- worker logs (end) ---\n{_logs(*workers)[-4000:]}"


def _finished(store, run_id):
    return store.runs.get(run_id).status in ("done", "failed", "cancelled")


def test_two_workers_train_three_runs_once_each_and_cancel_queued_and_running(backend, worker, tmp_path):
    """Check submit -> done on two workers with separate homes: each of three runs trains exactly
    once, with its metrics, sweep and model in the store; a queued run cancelled never starts; a
    running run cancelled stops; the store lists both workers with host, device and current run."""
    store = Store.default()
    never = client.submit(TINY)
    assert client.cancel(never) == "cancelled"
    runs = [client.submit(replace(TINY, seed=seed)) for seed in range(3)]
    first, second = worker("w1"), worker("w2")
    slow = client.submit(replace(TINY, epochs=300))
    status = wait_for(lambda: (s := consumer.worker_status()).alive and len(s.workers) == 2 and s,
                      60, "both workers in the store")
    assert {w.record.pid for w in status.workers} == {first.pid, second.pid}
    assert all(w.record.host and w.record.device == "CPU" and w.alive for w in status.workers)
    wait_for(lambda: len(store.results.metrics(slow, name="loss")) >= 4, TIMEOUT, "the slow run's first steps")
    # the worker training it says so, at its next beat (a run handed to a warm training process
    # takes its first steps within a second, sooner than a beat)
    wait_for(lambda: slow in {w.record.run_id for w in consumer.worker_status().workers}, 30,
             "the slow run's worker to name it")
    assert client.cancel(slow) == "running"
    wait_for(lambda: all(_finished(store, r) for r in runs + [slow]), TIMEOUT, "the runs to finish",
             explain=lambda: _explain(store, runs + [slow], first, second))

    # each runner logs "run ID done" after the store says so: wait for the lines, then count
    def all_logged():
        text = _logs(first, second)
        return text if all(f"run {r} done" in text for r in runs) else None
    logs = wait_for(all_logged, 60, "the runners' last log lines")
    for run_id in runs:
        run = store.runs.get(run_id)
        assert (run.status, run.attempts, run.device) == ("done", 1, "CPU"), run.error
        assert run.worker_id in {f"{run.host}:{first.pid}", f"{run.host}:{second.pid}"}
        assert logs.count(f"run {run_id} done") == 1  # trained once, by one worker
        assert store.results.metrics(run_id, name="loss")["step"].tolist() == [1, 2, 3, 4]
        assert len(store.results.robustness(run_id)) == 8 and not store.results.examples(run_id).empty
        model = fetch_model(store, run_id, cache=tmp_path / "dashboard")  # a third machine's view
        assert model is not None and model.stat().st_size > 10_000
    assert store.runs.get(slow).status == "cancelled" and fetch_model(store, slow) is None
    run = store.runs.get(never)
    assert (run.status, run.started_at, run.attempts) == ("cancelled", None, 0)
    assert tasks.pending_count() == 0


def test_killed_worker_run_resumes_on_another_worker_with_its_own_home(backend, worker):
    """Check that after kill -9 of a worker mid-run, a worker with a separate GRADLOSS_HOME
    (nothing on disk in common) resumes the run from the checkpoint in the store, not from epoch
    1, and finishes it with every metric recorded before the kill kept."""
    store = Store.default()
    env = {"GRADLOSS_HEARTBEAT_TIMEOUT": "4"}
    epochs = 30
    run_id = client.submit(replace(TINY, epochs=epochs))
    first = worker("w1", **env)
    wait_for(lambda: len(store.results.metrics(run_id, name="epoch_loss")) >= 2
             and store.artifacts.get(run_id, CHECKPOINT), TIMEOUT, "two epochs and a checkpoint")
    first.kill()
    first.wait()
    wait_for(lambda: not runner_pids(run_id), 10, "the training child to die with its worker")
    before = store.results.metrics(run_id)
    second = worker("w2", **env)
    wait_for(lambda: _finished(store, run_id), TIMEOUT, "the resumed run",
             explain=lambda: _explain(store, [run_id], first, second))
    run = store.runs.get(run_id)
    assert run.status == "done", run.error
    assert run.attempts == 2 and run.worker_id.endswith(f":{second.pid}")
    assert "resumes after epoch" in _logs(second) and not (second.home / first.home.name).exists()
    after = store.results.metrics(run_id)
    assert after.query("name == 'loss'")["step"].tolist() == list(range(1, epochs * 4 + 1))
    kept = before.merge(after, on=["name", "step"], how="left")
    assert kept["value_y"].notna().all()


def test_a_run_trained_by_one_worker_is_attacked_by_another_from_the_stored_model(backend, worker):
    """Check that an evaluation queued for a run trained on another worker (whose files this one
    cannot see) loads the model the store keeps, and stores its corruption and attack rows."""
    import shutil

    from gradloss.core.evaluation import EvaluationConfig

    store = Store.default()
    run_id = client.submit(TINY)
    first = worker("w1")
    wait_for(lambda: _finished(store, run_id), TIMEOUT, "the run",
             explain=lambda: _explain(store, [run_id], first))
    assert store.runs.get(run_id).status == "done", store.runs.get(run_id).error
    first.kill()
    first.wait()
    shutil.rmtree(first.home)  # the trainer's machine is gone: only the store has its model
    second = worker("w2")
    client.evaluate(run_id, EvaluationConfig(perturbations=("contrast", "fgsm"), severities=(1,),
                                             epsilons=(0.1,), attack_images=20,
                                             masking_images=10))
    wait_for(lambda: store.evaluations.plan_of(run_id).status in ("done", "failed"), TIMEOUT,
             "the evaluation on the second worker")
    plan = store.evaluations.plan_of(run_id)
    assert plan.status == "done", (plan.error, _logs(second))
    rows = store.evaluations.rows(run_id)
    assert sorted(rows.perturbation) == ["contrast", "fgsm"] and rows.accuracy.notna().all()
    assert (second.home / "models" / run_id / "model.keras").exists()  # fetched from the store


def test_forty_submits_from_two_processes_are_all_recorded_and_queued(backend):
    """Check that two processes submitting 20 runs each at once lose none, in store or queue."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        barrier = manager.Barrier(2)
        made = pool.starmap(submit_many, [(20, barrier)] * 2)
    ids = made[0] + made[1]
    runs = Store.default().runs.list()
    assert len(set(ids)) == 40 and sorted(r.run_id for r in runs) == sorted(ids)
    assert {r.status for r in runs} == {"queued"} and len({r.task_id for r in runs}) == 40
    assert tasks.pending_count() == 40


def test_a_run_survives_its_redis_and_postgresql_restarting_mid_run(
        worker, backend, redis_server, postgres_server):
    """Check that stopping the real Redis and PostgreSQL during a run and starting them again
    costs nothing: the worker trains on, reports what it kept once they are back, and the run
    finishes exactly once with every step recorded."""
    if "postgresql" not in backend["GRADLOSS_STORE_URL"]:
        pytest.skip("the embedded backend has no server to stop")
    store = Store.default()
    epochs = 40
    run_id = client.submit(replace(TINY, epochs=epochs))
    first = worker("w1")
    wait_for(lambda: len(store.results.metrics(run_id, name="epoch_loss")) >= 1, TIMEOUT, "a first epoch")
    redis_server.stop()
    postgres_server.stop()
    time.sleep(6)  # the run trains on meanwhile
    postgres_server.start()
    redis_server.start()
    wait_for(lambda: _finished(store, run_id), TIMEOUT, "the run after the outage",
             explain=lambda: _explain(store, [run_id], first))
    run = store.runs.get(run_id)
    assert (run.status, run.attempts) == ("done", 1), run.error
    # the runner logs "run ID done" after the store says so: wait for the line, then count
    logs = wait_for(lambda: text if f"run {run_id} done" in (text := _logs(first)) else None, 60,
                    "the runner's last log line")
    assert "cannot be used" in logs and logs.count(f"run {run_id} done") == 1
    assert postgres_server.password not in logs and redis_server.password not in logs
    metrics = store.results.metrics(run_id)
    assert metrics.query("name == 'loss'")["step"].tolist() == list(range(1, epochs * 4 + 1))
    assert metrics.query("name == 'epoch_loss'")["epoch"].tolist() == list(range(1, epochs + 1))
    assert first.poll() is None and consumer.worker_status().alive


def _orphan() -> str:
    """A run whose submitter was killed between writing it and enqueueing its task; its id."""
    child = multiprocessing.get_context("spawn").Process(target=submit_and_die)
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL
    [run] = Store.default().runs.list()
    assert run.status == "queued" and tasks.pending_count() == 0
    return run.run_id


def test_a_run_whose_submitter_died_before_enqueueing_is_queued_again(backend, monkeypatch):
    """Check the recovery that makes submission atomic in effect: a queued run with no task in
    the queue for a heartbeat timeout gets a new task, named in the store (so cancel revokes
    it); a run whose task waits in the queue or in the schedule (a retry's delay), or that
    is younger than the timeout, or was cancelled, is left alone; nothing is queued twice."""
    monkeypatch.setenv("GRADLOSS_HEARTBEAT_TIMEOUT", "1")
    store = Store.default()
    orphan = _orphan()
    assert consumer.recover_orphaned_runs(store) == []  # younger than the timeout: maybe enqueueing
    waiting = client.submit(TINY)
    huey, task = tasks.queue_for()
    scheduled = store.runs.create(RunPlan(TINY), task_id="retry")
    huey.add_schedule(task.s(scheduled, id="retry", delay=600))  # a retry waiting out its delay
    cancelled = store.runs.create(RunPlan(TINY))
    store.runs.request_cancel(cancelled)
    time.sleep(1.2)
    assert consumer.recover_orphaned_runs(store) == [orphan]
    assert consumer.recover_orphaned_runs(store) == []  # its task is in the queue now
    queued = [huey.dequeue() for _ in range(tasks.pending_count())]
    assert sorted(t.args[0] for t in queued) == sorted([waiting, orphan])
    [new] = [t for t in queued if t.args == [orphan]]
    assert store.runs.get(orphan).task_id == new.id and store.runs.get(orphan).status == "queued"
    assert store.runs.get(cancelled).status == "cancelled"


def test_an_orphan_taken_the_moment_it_is_queued_again_is_still_reported(backend, monkeypatch):
    """Check the race CI met: a warm worker dequeues the recovered run's task and starts the run
    before the recovery's own next step. The recovery still reports (and logs) the run, and
    the store names the task that started it."""
    monkeypatch.setenv("GRADLOSS_HEARTBEAT_TIMEOUT", "1")
    store = Store.default()
    orphan = _orphan()
    enqueue = tasks.enqueue

    def enqueue_and_start_at_once(run_id, task_id):  # what a worker polling the queue can do
        enqueue(run_id, task_id)
        assert store.runs.start(run_id, "a-warm-worker")

    monkeypatch.setattr(tasks, "enqueue", enqueue_and_start_at_once)
    time.sleep(1.2)
    assert consumer.recover_orphaned_runs(store) == [orphan]
    [task] = [tasks.queue_for()[0].dequeue() for _ in range(tasks.pending_count())]
    run = store.runs.get(orphan)
    assert (run.status, run.task_id) == ("running", task.id)


def test_a_worker_trains_a_run_whose_submitter_died_before_enqueueing(backend, worker):
    """Check the whole story with a real worker: the orphaned run is queued again by the worker's
    recovery and trains to done, once."""
    store = Store.default()
    run_id = _orphan()
    first = worker("w1", GRADLOSS_HEARTBEAT_TIMEOUT="1")
    wait_for(lambda: _finished(store, run_id), TIMEOUT, "the orphaned run",
             explain=lambda: _explain(store, [run_id], first))
    run = store.runs.get(run_id)
    assert (run.status, run.attempts) == ("done", 1), run.error
    assert "queued with no task in the queue" in _logs(first)
    assert tasks.pending_count() == 0


def test_worker_processes_runs_cpu_consumers_that_share_the_cores(tmp_path, monkeypatch):
    """Check `worker --processes 2`: two consumers, each (and so each training process it
    starts) limited to an equal share of the cores; SIGTERM stops both, each leaving the store."""
    from gradloss.service.fleet import cores

    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    env = dict(os.environ, PYTHONPATH=str(REPO), GRADLOSS_PRESTART="off")
    fleet = subprocess.Popen([sys.executable, "-m", "gradloss", "worker", "--processes", "2"],
                             env=env, cwd=REPO, start_new_session=True)  # its group: see finally
    try:
        status = wait_for(lambda: len((s := consumer.worker_status()).workers) == 2 and s, 60,
                          "two CPU workers")
        share = str(max(1, cores() // 2)).encode()
        for worker in status.workers:
            environ = dict(line.split(b"=", 1) for line in Path(
                f"/proc/{worker.record.pid}/environ").read_bytes().split(b"\0") if b"=" in line)
            assert environ[b"TF_NUM_INTRAOP_THREADS"] == share
            assert environ[b"OMP_NUM_THREADS"] == share
        fleet.send_signal(signal.SIGTERM)
        assert fleet.wait(timeout=30) == 0
        assert consumer.worker_status().workers == []
    finally:
        with contextlib.suppress(ProcessLookupError):  # the fleet and its workers, however it went
            os.killpg(fleet.pid, signal.SIGKILL)
        fleet.wait()


def test_worker_gpus_runs_one_consumer_pinned_to_each_gpu(backend, tmp_path):
    """Check `worker --gpus 0,1` with a stand-in nvidia-smi: one consumer per GPU, each pinned to
    its GPU's UUID and listed with its index and name; SIGTERM stops them all."""
    if "postgresql" in backend["GRADLOSS_STORE_URL"]:
        pytest.skip("process management only; the embedded backend covers it")
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho '0, GPU-aaa, NVIDIA H100 80GB HBM3'\n"
                    "echo '1, GPU-bbb, NVIDIA A100-SXM4-40GB'\n")
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO),
               GRADLOSS_HOME=str(tmp_path / "w"))
    fleet = subprocess.Popen([sys.executable, "-m", "gradloss", "worker", "--gpus", "0,1"],
                                           env=env, cwd=REPO)
    try:
        status = wait_for(lambda: len((s := consumer.worker_status()).workers) == 2 and s, 60,
                          "two GPU workers")
        by_gpu = {w.record.gpu: w.record for w in status.workers}
        assert by_gpu[0].device == "NVIDIA H100 80GB HBM3"
        assert by_gpu[1].device == "NVIDIA A100-SXM4-40GB"
        assert by_gpu[0].settings.cuda_visible_devices == "GPU-aaa"
        assert by_gpu[1].settings.cuda_visible_devices == "GPU-bbb"
        fleet.send_signal(signal.SIGTERM)
        assert fleet.wait(timeout=30) == 0
        assert consumer.worker_status().workers == []  # each left the store on its way out
    finally:
        if fleet.poll() is None:
            fleet.kill()
