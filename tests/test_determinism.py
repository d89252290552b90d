"""Deterministic runs: the config flag, the environment it needs, and what the worker passes on."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradloss.core.plan import RunPlan
from gradloss.engines import backend, device
from gradloss.service import supervisor
from gradloss.core.config import InvalidParameterError, TrainConfig
from gradloss.core.errors import GradlossError
from gradloss.service.store import Store

REPO = Path(__file__).resolve().parents[1]


def test_deterministic_must_be_a_bool():
    with pytest.raises(InvalidParameterError, match="The 'deterministic' parameter of TrainConfig "
                                                    "must be a bool. Got 'yes' instead."):
        TrainConfig(deterministic="yes")
    assert TrainConfig().deterministic is False


def test_environment_adds_the_xla_flag_for_jax_once_and_keeps_other_flags():
    env = backend.child_environment("jax", True, {"XLA_FLAGS": "--xla_dump_to=/tmp/x", "A": "1"})
    assert env["XLA_FLAGS"] == f"--xla_dump_to=/tmp/x {backend.XLA_FLAG}" and env["A"] == "1"
    assert backend.child_environment("jax", True, env) == env  # idempotent
    assert backend.child_environment("jax", True, {})["XLA_FLAGS"] == backend.XLA_FLAG
    assert "XLA_FLAGS" not in backend.child_environment("tensorflow", True, {})


def test_a_tensorflow_process_starts_with_onednn_unless_told_otherwise():
    """Check that a process that will train on TensorFlow gets its oneDNN kernels, that a "0"
    already in the environment is kept, and that JAX's processes are left alone."""
    assert backend.child_environment("tensorflow", False, {})[backend.ONEDNN] == "1"
    assert backend.child_environment("tensorflow", False, {backend.ONEDNN: "0"})[backend.ONEDNN] == "0"
    assert backend.ONEDNN not in backend.child_environment("jax", False, {})


def test_a_jax_gpu_process_started_without_the_flag_is_refused(monkeypatch):
    jax = pytest.importorskip("jax")

    class FakeGpu:
        platform, device_kind = "gpu", "Fake GPU"

    monkeypatch.setattr(jax, "devices", lambda: [FakeGpu()])
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with pytest.raises(GradlossError, match="Fake GPU needs XLA_FLAGS=--xla_gpu_deterministic_ops"):
        device.enable_determinism("jax")
    monkeypatch.setenv("XLA_FLAGS", backend.XLA_FLAG)
    device.enable_determinism("jax")  # set before JAX started: accepted


def test_worker_starts_a_deterministic_jax_run_with_the_flag(tmp_path, monkeypatch):
    """Check the env the worker gives the training child: the XLA flag only where asked for."""
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setenv("GRADLOSS_PRESTART", "off")  # one child per run, the one the fake records
    envs = []

    class FakeChild:  # records the env; "exits" at once, so the worker marks the run failed
        def __init__(self, args, env, **kw):
            envs.append(env)

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(supervisor.subprocess, "Popen", FakeChild)
    store = Store.default()
    for deterministic in (True, False):
        run_id = store.runs.create(RunPlan(TrainConfig(dataset="digits", engine="jax",
                                              deterministic=deterministic)))
        supervisor.train_run(run_id)
    assert backend.XLA_FLAG in envs[0]["XLA_FLAGS"]
    assert backend.XLA_FLAG not in envs[1].get("XLA_FLAGS", "")
    assert envs[0]["KERAS_BACKEND"] == "jax"


def _cli_train(tmp_path, *flags):
    out = subprocess.run([sys.executable, "-m", "gradloss", "train", "--dataset", "digits",
                          "--train-size", "200", "--epochs", "1", "--out", str(tmp_path), *flags],
                         cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout[out.stdout.index("{"):])


def test_deterministic_tensorflow_run_trains_and_matches_the_default_on_cpu(tmp_path):
    """Check that --deterministic trains (TensorFlow op determinism on) and, on CPU, where runs
    repeat anyway, gives the same numbers as the default."""
    fast = _cli_train(tmp_path / "a")
    exact = _cli_train(tmp_path / "b", "--deterministic")
    assert exact["status"] == "done"
    assert exact["epoch_loss"] == fast["epoch_loss"]
    assert exact["test_accuracy"] == fast["test_accuracy"]
