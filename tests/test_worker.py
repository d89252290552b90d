"""Tests for gradloss.worker and gradloss.runner: real SQLite, real consumers, tiny digits runs.

Each training child spends ~5 s importing TensorFlow, so the end-to-end checks share runs.
"""
import multiprocessing
import os
import signal
import time

import numpy as np
import pytest

from dataclasses import replace
from gradloss.core.plan import RunPlan
from gradloss.engines import backend
from gradloss.service import client, consumer, heartbeat, supervisor, tasks
from gradloss.core.config import TrainConfig
from gradloss.core.errors import InvalidParameterError
from gradloss.service.store import Store

from _worker_helpers import (TINY, kill_all, kill_pids, runner_pids, start_consumer,
                             submit_read_cancel, wait_for)

TIMEOUT = 180  # seconds for one tiny run on 2 shared cores, imports included


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    return tmp_path


@pytest.fixture
def consumers(home):
    """Start consumers with start(**env); every one still alive is killed at the end."""
    started = []

    def start(**env):
        proc = start_consumer(home, **env)
        started.append(proc)
        return proc

    yield start
    kill_all(started)


def _status(store, run_id):
    return store.runs.get(run_id).status


def test_invalid_configs_are_refused_at_submit_and_nothing_is_queued(home):
    """Check that a bad config raises the config check's message, and no run or task is created."""
    bad = [({"dataset": "digits", "epochs": 0}, "The 'epochs' parameter of TrainConfig must be an int"),
           ({"dataset": "imagenet"}, "The 'dataset' parameter of TrainConfig must be a str among"),
           ({"dataset": "digits", "batch_size": 5000}, "The 'batch_size' parameter of TrainConfig"),
           ({"dataset": "digits", "colour": "red"}, "Unknown TrainConfig parameter")]
    for config, message in bad:
        with pytest.raises(InvalidParameterError, match=message):
            client.submit(TrainConfig.from_dict(config))
    assert Store.default().runs.list() == []
    assert tasks.queue_for()[0].pending_count() == 0
    assert consumer.worker_status().queue_length == 0


def test_heartbeat_timeout_must_be_positive_seconds(monkeypatch):
    """Check that a bad GRADLOSS_HEARTBEAT_TIMEOUT is refused, naming the variable and the value."""
    for value in ("0", "-5", "soon", "nan"):
        monkeypatch.setenv("GRADLOSS_HEARTBEAT_TIMEOUT", value)
        with pytest.raises(ValueError, match=f"GRADLOSS_HEARTBEAT_TIMEOUT must be .* Got '{value}'"):
            heartbeat.heartbeat_timeout()
    monkeypatch.setenv("GRADLOSS_HEARTBEAT_TIMEOUT", "2.5")
    assert heartbeat.heartbeat_timeout() == 2.5


def test_lost_runs_are_requeued_then_failed_with_a_reason(home, monkeypatch):
    """Check crash recovery without a consumer: resume once, then fail naming the lost worker."""
    monkeypatch.setenv("GRADLOSS_HEARTBEAT_TIMEOUT", "0.3")
    store = Store.default()
    first, cancelling, fresh = (store.runs.create(RunPlan(TINY)) for _ in range(3))
    for run_id in (first, cancelling):
        store.runs.start(run_id, "gone:1")
    store.runs.request_cancel(cancelling)
    time.sleep(0.5)
    store.runs.start(fresh, "alive:2")  # heartbeat just now: left alone
    assert sorted(consumer.recover_lost_runs(store)) == sorted([first, cancelling])
    assert _status(store, first) == "queued" and tasks.queue_for()[0].pending_count() == 1
    assert _status(store, cancelling) == "cancelled" and _status(store, fresh) == "running"
    store.runs.start(first, "gone:3")  # the resume, which is lost too
    time.sleep(0.5)
    store.runs.heartbeat(fresh)
    assert consumer.recover_lost_runs(store) == [first]
    run = store.runs.get(first)
    assert run.status == "failed" and run.attempts == consumer.MAX_ATTEMPTS
    assert run.error.startswith("worker gone:3 lost (no heartbeat for")
    assert run.error.endswith("after 2 attempts")


def test_ensure_local_worker_starts_one_detached_worker(home, monkeypatch):
    """Check that ensure_local_worker starts one worker, honours the opt-out, replaces a dead one."""
    monkeypatch.setenv("GRADLOSS_NO_LOCAL_WORKER", "1")
    assert not consumer.ensure_local_worker() and not (home / "worker.pid").exists()
    monkeypatch.delenv("GRADLOSS_NO_LOCAL_WORKER")
    pids = []
    try:
        assert consumer.ensure_local_worker()
        pids.append(int((home / "worker.pid").read_text()))
        assert not consumer.ensure_local_worker()  # starting up: not heartbeating yet, but not twice
        status = wait_for(lambda: (s := consumer.worker_status()).alive and s, 60, "the local worker")
        assert status.pid == pids[0] and status.device == backend.visible_gpu()
        assert not consumer.ensure_local_worker()
        os.kill(pids[0], signal.SIGKILL)
        wait_for(lambda: not consumer.worker_status().alive, 10, "the killed worker to count as dead")
        assert consumer.ensure_local_worker()
        pids.append(int((home / "worker.pid").read_text()))
        assert pids[1] != pids[0]
        wait_for(lambda: consumer.worker_status().alive, 60, "the replacement worker")
    finally:
        kill_pids(pids)
    assert "huey consumer started" in (home / "worker.log").read_text().lower()


def test_runs_go_through_the_queue_to_done_failed_and_cancelled(home, consumers):
    """Check the whole path with one real consumer: a run trains to done with metrics, robustness,
    grid and a loadable model; a diverging run fails with the reason; a queued run is revoked and
    never starts; a running run stops as cancelled, keeping its metrics; two processes submit and
    read meanwhile without lock errors or lost runs."""
    store = Store.default()
    consumers()
    good = client.submit(replace(TINY, epochs=2))
    seen = [_status(store, good)]
    diverging = client.submit(replace(TINY, objective="baseline", learning_rate=1e8))
    never = client.submit(TINY)
    assert client.cancel(never) == "cancelled"

    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        barrier = manager.Barrier(2)
        pending = pool.starmap_async(submit_read_cancel, [(str(home), 4, barrier)] * 2)
        while _status(store, good) not in ("done", "failed"):  # record every status the run passes
            if seen[-1] != (status := _status(store, good)):
                seen.append(status)
            time.sleep(0.05)
        seen.append(_status(store, good))
        submitted = pending.get(timeout=TIMEOUT)
    assert seen == ["queued", "running", "done"], store.runs.get(good).error

    run = store.runs.get(good)
    assert run.device == "CPU" and run.worker_id and run.attempts == 1
    assert run.progress.fraction == 1.0 and run.progress.epochs == 2
    assert run.progress.sweep_done == run.progress.sweep_total > 0  # the sweep reported too
    metrics = store.results.metrics(good)
    steps = 2 * (200 // 50)
    assert metrics.query("name == 'loss'")["step"].tolist() == list(range(1, steps + 1))
    for name in ("epoch_loss", "train_accuracy", "test_accuracy", "step_ms"):
        assert metrics.query("name == @name")["epoch"].tolist() == [1, 2]
    sweep = store.results.robustness(good)
    assert len(sweep) == 8 and sweep["accuracy"].between(0, 1).all()
    assert not store.results.examples(good).empty

    from gradloss.data import load_dataset
    from gradloss.training.loop import load_model
    from gradloss.service.checkpoints import fetch_model
    copy = fetch_model(store, good, cache=home / "elsewhere")  # the store's copy, as any machine gets it
    assert copy.read_bytes() == (home / good / "model.keras").read_bytes()
    probabilities = load_model(copy).predict(load_dataset("digits").x_test[:5], verbose=0)
    assert probabilities.shape == (5, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)

    wait_for(lambda: _status(store, diverging) in ("done", "failed"), TIMEOUT, "the diverging run")
    assert store.runs.get(diverging).status == "failed"
    assert store.runs.get(diverging).error.startswith("The loss became nan")

    for run_id in [never] + submitted[0] + submitted[1]:  # queued then cancelled: never started
        run = store.runs.get(run_id)
        assert (run.status, run.started_at, run.attempts) == ("cancelled", None, 0)
    assert len(store.runs.list()) == 3 + 8

    slow = client.submit(replace(TINY, epochs=200))
    wait_for(lambda: len(store.results.metrics(slow, name="loss")) >= 4, TIMEOUT, "the slow run's first steps")
    assert client.cancel(slow) == "running"
    wait_for(lambda: _status(store, slow) == "cancelled", 60, "the running run to stop")
    run = store.runs.get(slow)
    assert run.model_path is None and run.finished_at and len(store.results.metrics(slow, name="loss")) >= 4
    assert tasks.queue_for()[0].pending_count() == 0


def test_stopped_or_killed_worker_run_resumes_on_the_next_worker(home, consumers):
    """Check that a run survives its worker: SIGTERM puts it back in the queue at once; kill -9 takes
    the training child down and the heartbeat timeout requeues it; each time the next worker resumes
    from the checkpoint, and the run ends done with every recorded metric kept."""
    store = Store.default()
    env = {"GRADLOSS_HEARTBEAT_TIMEOUT": "4"}
    epochs = 40
    run_id = client.submit(replace(TINY, epochs=epochs))

    def epochs_done():
        return len(store.results.metrics(run_id, name="epoch_loss"))

    first = consumers(**env)
    wait_for(lambda: epochs_done() >= 1, TIMEOUT, "a first epoch")
    first.send_signal(signal.SIGTERM)  # a deliberate stop: no crash, and not counted as an attempt
    assert first.wait(timeout=30) == 0
    assert _status(store, run_id) == "queued" and store.runs.get(run_id).attempts == 0
    wait_for(lambda: not runner_pids(run_id), 10, "the training child to stop with its worker")

    second = consumers(**env)
    reached = epochs_done()
    wait_for(lambda: epochs_done() >= reached + 2, TIMEOUT, "two more epochs on the second worker")
    second.kill()  # SIGKILL: no clean-up at all
    second.wait()
    wait_for(lambda: not runner_pids(run_id), 10, "the training child to die with its worker")
    assert _status(store, run_id) == "running"
    before = store.results.metrics(run_id)

    third = consumers(**env)
    wait_for(lambda: _status(store, run_id) in ("done", "failed"), TIMEOUT, "the resumed run")
    run = store.runs.get(run_id)
    assert run.status == "done", run.error
    assert run.attempts == 2 and run.worker_id.endswith(f":{third.pid}")
    after = store.results.metrics(run_id)
    assert after.query("name == 'loss'")["step"].tolist() == list(range(1, epochs * 4 + 1))
    assert after.query("name == 'epoch_loss'")["epoch"].tolist() == list(range(1, epochs + 1))
    kept = before.merge(after, on=["name", "step"], how="left")
    assert kept["value_y"].notna().all()  # nothing recorded before the kill was lost
    assert len(store.results.robustness(run_id)) == 8


def test_worker_device_reads_nvidia_smi_for_the_visible_gpu(tmp_path, monkeypatch):
    """Check that the worker names the GPU CUDA_VISIBLE_DEVICES gives it (index or UUID), else CPU."""
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\n"
                    "echo '0, GPU-aaa, NVIDIA H100 80GB HBM3'\n"
                    "echo '1, GPU-bbb, NVIDIA A100-SXM4-40GB'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    h100, a100 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"
    expected = {None: h100, "1": a100, "GPU-aaa": h100, "1,0": a100, "": "CPU", "-1": "CPU"}
    for visible, name in expected.items():
        if visible is None:
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        else:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        backend.visible_gpu.cache_clear()
        assert backend.visible_gpu() == name, visible
    backend.visible_gpu.cache_clear()


def test_an_unreadable_run_is_failed_with_the_reason_and_recovery_goes_on(home, monkeypatch):
    """Check that the worker's task fails a run whose stored config is malformed (naming why),
    and that lost-run recovery still handles the other runs beside a malformed one."""

    store = Store.default()
    queued, lost_bad, lost_good = (store.runs.create(RunPlan(TINY)) for _ in range(3))
    for run_id in (lost_bad, lost_good):
        store.runs.start(run_id, "gone:1")
    with store.connect(write=True) as conn:
        conn.exec_driver_sql("UPDATE runs SET config = '{oops' WHERE run_id IN (?, ?)", (queued, lost_bad))
    supervisor.train_run(queued)  # what the consumer runs for it; no training process is started
    run = store.runs.get(queued)
    assert run.status == "failed" and run.error.startswith("the run cannot be read: its stored config")
    monkeypatch.setenv("GRADLOSS_HEARTBEAT_TIMEOUT", "0.3")
    time.sleep(0.5)
    assert sorted(consumer.recover_lost_runs(store)) == sorted([lost_bad, lost_good])
    assert _status(store, lost_good) == "queued"
    assert _status(store, lost_bad) == "failed" and "cannot be read" in store.runs.get(lost_bad).error


def test_a_resume_task_that_overtakes_its_requeue_waits_for_the_store(home, monkeypatch):
    """Check that a train task dequeued before the store records the requeue that queued it
    (a lost run is requeued queue first, store second; Redis hands the task over at once)
    starts the run once the store does, rather than finding it running and leaving it queued
    with nothing in the queue; and that a task the store never names gives up."""
    import threading

    from gradloss.service import tasks

    store = Store.default()
    run_id = store.runs.create(RunPlan(TINY), task_id="first")
    store.runs.start(run_id, "gone:1")
    requeue = threading.Timer(0.5, store.runs.requeue, args=(run_id, "second"),
                              kwargs={"stale_before": float("inf")})
    requeue.start()
    assert supervisor._start(store, run_id, "w:2", "second")
    requeue.join()
    run = store.runs.get(run_id)
    assert (run.status, run.worker_id, run.attempts, run.task_id) == ("running", "w:2", 2, "second")
    monkeypatch.setattr(tasks, "REQUEUE_WAIT_S", 0.3)
    assert not supervisor._start(store, run_id, "w:3", "third")  # its requeue's store write failed
    assert store.runs.get(run_id).worker_id == "w:2"


def test_a_killed_training_process_resumes_from_its_checkpoint(home, consumers):
    """Check that when only the training process dies (the worker lives on), a run with a
    checkpoint goes back in the queue and resumes to done, every epoch recorded once."""
    store = Store.default()
    epochs = 40
    run_id = client.submit(replace(TINY, epochs=epochs))
    consumers()
    wait_for(lambda: (home / run_id / "checkpoint" / "state.json").exists(), TIMEOUT, "a checkpoint")
    [pid] = wait_for(lambda: runner_pids(run_id), 10, "the training process")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _status(store, run_id) in ("done", "failed"), TIMEOUT, "the resumed run")
    run = store.runs.get(run_id)
    assert run.status == "done", run.error
    assert run.attempts == 2
    assert store.results.metrics(run_id, name="epoch_loss")["epoch"].tolist() == list(range(1, epochs + 1))


def test_a_run_reads_the_data_found_at_submission_whichever_worker_trains_it(home, monkeypatch,
                                                                             fashion_dir):
    """Check the stale-worker story with real processes: a local worker started without a data
    folder trains a Fashion-MNIST run submitted with GRADLOSS_DATA_DIR set; its heartbeat shows
    its settings; restarting it gives a worker with the new ones."""
    data = home / "fashion"
    data.mkdir()
    for f in fashion_dir.glob("*-ubyte.gz"):
        (data / f.name).symlink_to(f)
    monkeypatch.delenv("GRADLOSS_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(home / "empty-keras-home"))  # no cache; no download offline
    pids = []
    try:
        assert consumer.ensure_local_worker()  # the first dashboard: no data folder
        pids.append(int((home / "worker.pid").read_text()))
        old = wait_for(lambda: (s := consumer.worker_status()).alive and s, 60, "the local worker")
        assert old.workers[0].record.settings.data_dir is None

        monkeypatch.setenv("GRADLOSS_DATA_DIR", str(data))  # the dashboard, restarted with data
        run_id = client.submit(TrainConfig(dataset="fashion_mnist", train_size=200, epochs=1,
                                           batch_size=50))
        wait_for(lambda: _status(Store.default(), run_id) in ("done", "failed"), 3 * TIMEOUT,
                 "the Fashion-MNIST run")  # reads 70 000 images and sweeps all 10 000 test images
        run = Store.default().runs.get(run_id)
        assert run.status == "done", run.error
        assert run.data_dir == str(data) and run.worker_id.endswith(f":{pids[0]}")

        assert consumer.restart_local_worker()
        pids.append(int((home / "worker.pid").read_text()))
        new = wait_for(lambda: (s := consumer.worker_status()).alive and s.pid != pids[0] and s, 60,
                       "the restarted worker")
        assert new.pid == pids[1] and not heartbeat.pid_alive(pids[0])
        assert new.workers[0].record.settings.data_dir == str(data)
    finally:
        kill_pids(pids)


def test_a_worker_that_lost_its_run_to_another_stops_its_copy(home):
    """Check the task's heartbeat: it keeps the run while it is this worker's, reports 'taken over'
    once another worker has started it, and shrugs off a store it cannot reach."""
    store = Store.default()
    run_id = store.runs.create(RunPlan(TINY))
    store.runs.start(run_id, "h1:1")
    assert not supervisor._taken_over(store, run_id, "h1:1")
    store.runs.requeue(run_id, "t2", stale_before=float("inf"))
    assert not supervisor._taken_over(store, run_id, "h1:1")  # queued again, nobody has it yet
    store.runs.start(run_id, "h2:2")
    assert supervisor._taken_over(store, run_id, "h1:1") and not supervisor._taken_over(store, run_id, "h2:2")
    store.database.url = "postgresql://u:pw@127.0.0.1:1/x"  # the store goes away
    assert not supervisor._taken_over(store, run_id, "h1:1")
