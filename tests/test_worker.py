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
from gradloss.core.errors import InvalidParameterError, SettingsError
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


def test_a_config_of_numpy_numbers_is_submitted_as_the_same_config(home):
    """Check that a TrainConfig built from NumPy scalars is queued (submit raised a bare
    TypeError) and stored as the config it is, with Python numbers."""
    config = TrainConfig(dataset="digits", epochs=np.int64(1), train_size=np.int64(200),
                         batch_size=np.int32(50), learning_rate=np.float64(0.01))
    run = Store.default().runs.get(client.submit(config))
    assert run.status == "queued" and run.config == config and type(run.config.epochs) is int
    assert tasks.queue_for()[0].pending_count() == 1


def test_heartbeat_timeout_must_be_seconds_from_one_to_a_day(monkeypatch):
    """Check that a bad GRADLOSS_HEARTBEAT_TIMEOUT is refused, naming the variable, the range
    and the value: not a number, NaN, infinite, or outside [1, 86400]."""
    for value in ("0", "-5", "soon", "nan", "inf", "1e-9", "0.99", "86401"):
        monkeypatch.setenv("GRADLOSS_HEARTBEAT_TIMEOUT", value)
        with pytest.raises(ValueError, match=r"GRADLOSS_HEARTBEAT_TIMEOUT must be a number of "
                                             rf"seconds in the range \[1, 86400\]. Got '{value}'"):
            heartbeat.heartbeat_timeout()
    for value in ("1", "2.5", "86400"):
        monkeypatch.setenv("GRADLOSS_HEARTBEAT_TIMEOUT", value)
        assert heartbeat.heartbeat_timeout() == float(value)


def test_lost_runs_are_requeued_then_failed_with_a_reason(home, monkeypatch):
    """Check crash recovery without a consumer: resume once, then fail naming the lost worker."""
    monkeypatch.setenv("GRADLOSS_HEARTBEAT_TIMEOUT", "1")  # the shortest allowed
    store = Store.default()
    first, cancelling, fresh = (store.runs.create(RunPlan(TINY)) for _ in range(3))
    for run_id in (first, cancelling):
        store.runs.start(run_id, "gone:1")
    store.runs.request_cancel(cancelling)
    time.sleep(1.2)
    store.runs.start(fresh, "alive:2")  # heartbeat just now: left alone
    assert sorted(consumer.recover_lost_runs(store)) == sorted([first, cancelling])
    assert _status(store, first) == "queued" and tasks.queue_for()[0].pending_count() == 1
    assert _status(store, cancelling) == "cancelled" and _status(store, fresh) == "running"
    store.runs.start(first, "gone:3")  # the resume, which is lost too
    time.sleep(1.2)
    store.runs.heartbeat(fresh)
    assert consumer.recover_lost_runs(store) == [first]
    run = store.runs.get(first)
    assert run.status == "failed" and run.attempts == consumer.MAX_ATTEMPTS
    assert run.error.startswith("worker gone:3 lost (no heartbeat for")
    assert run.error.endswith("after 2 attempts")


def test_a_lost_run_whose_only_damage_is_its_progress_is_resumed_not_failed(home, monkeypatch):
    """Check recovery of lost runs whose progress JSON is damaged (malformed, wrong-typed): the
    progress says how far a run got, not what to train, so each goes back in the queue to resume
    from its checkpoint, like an undamaged one."""
    store = Store.default()
    damaged = [store.runs.create(RunPlan(TINY)) for _ in range(3)]
    for run_id, progress in zip(damaged, ('{oops', '{"fraction": "x"}', '[1, 2]')):
        store.runs.start(run_id, "gone:1")
        with store.connect(write=True) as conn:
            conn.exec_driver_sql("UPDATE runs SET progress = ? WHERE run_id = ?", (progress, run_id))
    monkeypatch.setenv("GRADLOSS_HEARTBEAT_TIMEOUT", "1")
    time.sleep(1.2)
    assert sorted(consumer.recover_lost_runs(store)) == sorted(damaged)
    for run_id in damaged:
        run = store.runs.get(run_id)
        assert (run.status, run.error, run.unreadable) == ("queued", None, None)
    assert tasks.queue_for()[0].pending_count() == 3


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


def test_a_diverging_mse_run_through_the_worker_fails_with_the_reason_and_stores_no_infinity(home):
    """Check the fault pass's submitted run: mse at learning rate 1e6, trained by the worker's
    task (its training process, as the consumer starts it), ends failed naming the divergence,
    with no model, and every stored metric finite (the store kept input_grad_norm = Infinity)."""
    import math
    store = Store.default()
    run_id = client.submit(TrainConfig(objective="mse", dataset="digits", epochs=2, train_size=200,
                                       batch_size=20, learning_rate=1e6))
    supervisor.train_run(run_id)  # what the consumer runs for the queued task
    run = store.runs.get(run_id)
    assert run.status == "failed" and run.model_path is None, run
    assert ("diverged" in run.error or "became" in run.error) and "smaller learning rate" in run.error
    metrics = store.results.metrics(run_id)
    assert metrics.value.map(math.isfinite).all()
    assert store.results.robustness(run_id).empty
    with store.connect() as conn:  # the raw rows, not the reading that leaves damaged ones out
        values = [v for (v,) in conn.exec_driver_sql("SELECT value FROM metrics")]
    assert all(math.isfinite(float(v)) for v in values)


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
    monkeypatch.setenv("GRADLOSS_HEARTBEAT_TIMEOUT", "1")  # the shortest allowed
    time.sleep(1.2)
    assert sorted(consumer.recover_lost_runs(store)) == sorted([lost_bad, lost_good])
    assert _status(store, lost_good) == "queued"
    assert _status(store, lost_bad) == "failed" and "cannot be read" in store.runs.get(lost_bad).error


def test_a_stored_plan_with_an_unknown_key_fails_its_run_naming_the_cause(home):
    """Check that a queued run whose stored config (or evaluation plan) holds a key this gradloss
    does not know fails with that cause in its error, in the worker's task and in the training
    process alike (the task said only "exited with code 1 ... see the worker log")."""
    import json

    from gradloss.core.evaluation import EvaluationConfig
    from gradloss.service import runner
    from gradloss.service.reporter import Reporter

    store = Store.default()
    evaluated = RunPlan(TINY, evaluation=EvaluationConfig(perturbations=("contrast",)))
    bad_config, bad_plan, in_child = (store.runs.create(evaluated) for _ in range(3))
    with store.connect(write=True) as conn:
        conn.exec_driver_sql("UPDATE runs SET config = ? WHERE run_id IN (?, ?)",
                             (json.dumps({**TINY.to_dict(), "foo": 1}), bad_config, in_child))
        conn.exec_driver_sql("UPDATE evaluation_plans SET config = ? WHERE run_id = ?",
                             (json.dumps({**evaluated.evaluation.to_dict(), "bar": 2}), bad_plan))
    for run_id, cause in ((bad_config, "Unknown TrainConfig parameter(s) ['foo']"),
                          (bad_plan, "its evaluation plan: its stored evaluation config is not "
                                     "valid: Unknown "
                                     "EvaluationConfig parameter(s) ['bar']")):
        supervisor.train_run(run_id)  # what the consumer runs for its task
        run = store.runs.get(run_id)
        assert run.status == "failed" and run.error.startswith("the run cannot be read: "), run.error
        assert cause in run.error, run.error
    store.runs.start(in_child, "w:1")  # a training process handed a run that is damaged since
    reporter = Reporter(store)
    runner.train_stored([in_child], store, reporter)
    reporter.close()
    run = store.runs.get(in_child)
    assert run.status == "failed" and "Unknown TrainConfig parameter(s) ['foo']" in run.error


def test_a_resume_task_that_overtakes_its_requeue_waits_for_the_store(home, monkeypatch):
    """Check that a train task dequeued before the store records the requeue that queued it
    (a lost run is requeued queue first, store second; Redis hands the task over at once)
    starts the run once the store does, rather than finding it running and leaving it queued
    with nothing in the queue; and that a task the store never names gives up."""
    import threading


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
    monkeypatch.setattr(supervisor, "REQUEUE_WAIT_S", 0.3)  # the wait is the supervisor's
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


def test_a_lost_local_run_is_failed_not_requeued(home, monkeypatch):
    """Check that a run the CLI trained in its own process, silent past the timeout, is failed
    naming its process (no queue task could resume it), while a lost queued run is requeued."""
    monkeypatch.setenv("GRADLOSS_HEARTBEAT_TIMEOUT", "1")
    store = Store.default()
    local, queued = (store.runs.create(RunPlan(TINY)) for _ in range(2))
    store.runs.start(local, heartbeat.local_worker_id())
    store.runs.start(queued, "gone:1")
    time.sleep(1.2)
    assert sorted(consumer.recover_lost_runs(store)) == sorted([local, queued])
    run = store.runs.get(local)
    assert run.status == "failed" and run.error.startswith("the process that trained it (cli@")
    assert store.runs.get(queued).status == "queued"


def test_training_goes_before_queued_evaluations(home):
    """Check the queue's order: an evaluation queued before a training run is taken after it."""
    store = Store.default()
    trained = store.runs.create(RunPlan(TINY))
    tasks.enqueue_evaluation(trained)
    later = client.submit(TINY)
    huey = tasks.queue_for()[0]
    assert huey.dequeue().args == [later]
    assert huey.dequeue().args == [trained]


def test_a_planned_evaluation_is_queued_once_its_run_is_done(home):
    """Check tasks.queue_evaluations: a done run's plan goes on the queue, a failed run's plan
    fails with the reason, a run still queued (to resume) keeps its plan."""
    from gradloss.core.evaluation import EvaluationConfig

    store = Store.default()
    evaluation = EvaluationConfig(perturbations=("contrast",))
    done, failed, resuming = (store.runs.create(RunPlan(TINY, evaluation=evaluation))
                              for _ in range(3))
    store.runs.finish(done, "done")
    store.runs.finish(failed, "failed", error="boom")
    assert tasks.queue_evaluations(store, [done, failed, resuming]) == [done]
    assert store.evaluations.plan_of(failed).status == "failed"
    assert store.evaluations.plan_of(failed).error == "the run ended failed"
    assert store.evaluations.plan_of(resuming).status == "queued"
    assert [t.args for t in [tasks.queue_for()[0].dequeue()]] == [[done]]


def test_a_training_process_started_ahead_trains_run_after_run_then_is_replaced(home,
                                                                                 monkeypatch):
    """Check the worker's training process started ahead: prestart starts one that reports
    ready; a run handed to it trains to done in that very process (its command line names the
    run while it trains); it then waits for the next run and trains it too, until
    GRADLOSS_TRAINER_RUNS hand-offs, when it ends and the next prestart starts a fresh one;
    GRADLOSS_PRESTART=off starts none."""
    monkeypatch.setenv("GRADLOSS_TRAINER_RUNS", "2")
    store = Store.default()
    spare = supervisor.prestart(store=store)
    try:
        assert spare is not None and spare.ready.wait(TIMEOUT)
        assert supervisor.prestart(store=store) is spare  # one at a time
        for hand_off in (1, 2):
            run_id = client.submit(TINY)
            tasks.queue_for()[0].dequeue()  # this test is the consumer
            assert supervisor.train_run(run_id) == [run_id]
            run = store.runs.get(run_id)
            assert run.status == "done", run.error
            assert spare.uses == hand_off and not runner_pids(run_id)  # no longer named after it
            if hand_off == 1:
                assert spare.alive() and supervisor.prestart(store=store) is spare
        assert spare.proc.wait(timeout=30) == 0  # two hand-offs: it ended, its stdin closed
        after = supervisor.prestart(store=store)
        assert after is not spare and after.alive()
    finally:
        supervisor.stop_spare()
    monkeypatch.setenv("GRADLOSS_TRAINER_RUNS", "0")
    with pytest.raises(SettingsError, match=r"GRADLOSS_TRAINER_RUNS must be an int in the range "
                                            r"\[1, 10000\]. Got '0'"):
        supervisor.trainer_runs()
    monkeypatch.setenv("GRADLOSS_PRESTART", "off")
    assert supervisor.prestart(store=store) is None


def test_delete_removes_a_finished_runs_rows_and_files_and_refuses_a_running_one(home):
    """Check client.delete: a running run is refused and kept; a finished one loses its rows
    and its folder and cached model under the home, never anything outside it."""
    from gradloss.core.errors import GradlossError

    store = Store.default()
    outside = home.parent / f"{home.name}-elsewhere"
    outside.mkdir()
    (outside / "model.keras").write_bytes(b"x")
    running, done = (store.runs.create(RunPlan(TINY)) for _ in range(2))
    store.runs.start(running, "w")
    with pytest.raises(GradlossError, match="only a finished run can be deleted"):
        client.delete(running)
    for folder in (home / done, home / "models" / done):
        folder.mkdir(parents=True)
        (folder / "model.keras").write_bytes(b"weights")
    store.runs.finish(done, "done", model_path=home / done / "model.keras")
    removed = client.delete(done)
    assert set(removed) == {home / done, home / "models" / done}
    assert not (home / done).exists() and store.runs.get(running).status == "running"
    assert [r.run_id for r in store.runs.list()] == [running]
    other = store.runs.create(RunPlan(TINY))
    store.runs.finish(other, "done", model_path=outside / "model.keras")  # a CLI run's --out
    client.delete(other)
    assert (outside / "model.keras").exists()


def test_a_run_cancelled_while_its_process_starts_never_trains(home):
    """Check that a run whose cancel came while its training process was starting ends
    cancelled with no step trained (it used to train a whole first epoch)."""
    from gradloss.service import runner
    from gradloss.service.reporter import Reporter

    store = Store.default()
    run_id = store.runs.create(RunPlan(TINY))
    store.runs.start(run_id, "w")
    assert client.cancel(run_id) == "running"
    reporter = Reporter(store)
    runner.train_stored([run_id], store, reporter)
    reporter.close()
    run = store.runs.get(run_id)
    assert (run.status, run.error) == ("cancelled", "cancelled before training")
    assert store.results.metrics(run_id).empty
