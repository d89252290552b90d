"""Live logging to MLflow from the worker's runner: a real `mlflow server` on a loopback port,
stopped while a run trains and started again after it finished: the training never waits for
it, and once it is back it gets every point the store has."""
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gradloss.core.config import SweepConfig, TrainConfig
from gradloss.core.plan import RunPlan
from gradloss.pipeline.sinks import Fanout, Sink
from gradloss.service.reporter import Reporter
from gradloss.service.runner import train_stored
from gradloss.service.store import Store
from gradloss.service.store.artifacts import MODEL
from gradloss.trackers.live import LiveTracker
from gradloss.trackers.mlflow_runs import fail_fast
from services import free_port

mlflow = pytest.importorskip("mlflow")
PASSWORD = "s3cret-pw"


class MLflowServer:
    """`mlflow server` on 127.0.0.1 with its SQLite store and artifacts in `folder`; stop() and
    start() take it away and bring it back with everything it had."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:  # a password the server ignores: it must never reach a log
        return f"http://gradloss:{PASSWORD}@127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> None:
        mlflow_cli = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
        log = open(self.folder / "server.log", "ab")
        self.proc = subprocess.Popen(
            [mlflow_cli, "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
             "--artifacts-destination", str(self.folder / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait()

    def wait(self, timeout: float = 180.0) -> None:
        """Until the server answers (it takes tens of seconds to start)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.folder / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"mlflow server did not answer in {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and its uvicorn workers
            self.proc.wait(timeout=60)


@pytest.fixture
def server(tmp_path):
    if shutil.which("mlflow") is None and not (Path(sys.executable).parent / "mlflow").exists():
        pytest.skip("the mlflow command is not installed")
    server = MLflowServer(tmp_path)
    server.start(wait=False)  # the test waits once TensorFlow is loaded
    yield server
    server.stop()


class StopOnFirstMetrics(Sink):
    """Takes the tracker away as soon as the run has its first metrics."""

    def __init__(self, server: MLflowServer):
        self.server, self.stopped_at = server, None

    def metrics(self, i, rows) -> None:
        if self.stopped_at is None:
            self.server.stop()
            self.stopped_at = time.time()


class Tracker:
    """The live tracker, with the server stopped from inside the training."""

    def __init__(self, tracker: LiveTracker, stopper: StopOnFirstMetrics):
        self.tracker, self.stopper = tracker, stopper

    def sink(self, runs, plans):
        return Fanout(self.stopper, self.tracker.sink(runs, plans))


def test_a_tracker_down_mid_run_delays_the_live_log_and_loses_nothing(server, tmp_path,
                                                                      monkeypatch, caplog, capfd):
    """Check that a run trains to the end while MLflow is down, that its reports wait, and that
    once the server is back its MLflow run holds every metric point, the sweep, the model and
    the final status the store has; the password never reaches the log nor the output."""
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path / "home"))
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT",
                 "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        monkeypatch.delenv(name, raising=False)
    fail_fast(timeout_s=5)
    caplog.set_level(logging.WARNING)
    store = Store(tmp_path / "runs.sqlite")
    plan = RunPlan(TrainConfig(objective="gradient", dataset="digits", train_size=200, epochs=2,
                               batch_size=20), SweepConfig(sigmas=(0.0, 0.1), draws=1))
    run_id = store.runs.create(plan)
    store.runs.start(run_id, "test")
    import gradloss.training.loop  # noqa: F401  (TensorFlow loads while the server starts)
    server.wait()
    tracker = LiveTracker(server.uri, max_delay_s=2.0)
    stopper = StopOnFirstMetrics(server)
    reporter = Reporter(store)
    train_stored([run_id], store, reporter, Tracker(tracker, stopper))
    reporter.close()
    run = store.runs.get(run_id)
    assert run.status == "done" and stopper.stopped_at is not None
    assert server.proc.poll() is not None  # trained to the end with the tracker away
    tracker.settle(store, [run_id])
    assert tracker._reporter.pending > 0   # the reports wait for it
    server.start()
    assert tracker.close(timeout=180)

    client = mlflow.MlflowClient(f"http://127.0.0.1:{server.port}")
    [found] = client.search_runs([client.get_experiment_by_name("gradloss").experiment_id],
                                 filter_string=f"tags.`gradloss.id` = '{run_id}'")
    assert found.info.status == "FINISHED" and found.data.tags["gradloss.status"] == "done"
    assert found.data.tags["gradloss.device"] == run.device
    assert found.data.params["objective"] == "gradient" and found.data.params["epochs"] == "2"
    stored = store.results.metrics(run_id)
    assert stored.name.nunique() >= 5 and (stored.name == "loss").sum() > 1
    for name, rows in stored.groupby("name"):
        got = sorted((m.step, m.value) for m in client.get_metric_history(found.info.run_id, name))
        assert got == list(zip(rows.step, rows.value)), name
    for sigma, accuracy in store.results.robustness(run_id)[["sigma", "accuracy"]].values:
        assert found.data.metrics[f"accuracy/sigma_{sigma:g}"] == accuracy
    model = client.download_artifacts(found.info.run_id, "model/model.keras", str(tmp_path))
    assert Path(model).read_bytes() == store.artifacts.get(run_id, MODEL)
    assert "cannot be reached" in caplog.text and "is reachable again" in caplog.text
    assert PASSWORD not in caplog.text and "gradloss:***@127.0.0.1" in caplog.text
    printed = capfd.readouterr()
    assert PASSWORD not in printed.out + printed.err
