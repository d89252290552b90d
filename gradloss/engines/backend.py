"""Process set-up for an engine, without importing it: which Keras backend a process runs, the
environment of a child that will train, the GPUs there are, a child that dies with its parent.

The CLI and benchmarks select a backend for their own process (`use_backend`), the worker builds
the environment of a child that will train (`child_environment`) and asks which GPUs there are
and which it may use (`list_gpus`, `visible_gpu`). Nothing here imports TensorFlow or JAX, so the
queue consumer and the dashboard can use it; the device itself is `engines.device`.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from functools import cache

from gradloss.core.config import ENGINES
from gradloss.core.errors import GradlossError

XLA_FLAG = "--xla_gpu_deterministic_ops=true"  # read once, when JAX starts its GPU backend
# TensorFlow's oneDNN kernels, read once, when TensorFlow is imported. Its x86 builds leave them
# off on CPUs without AVX-512, where on, every objective's step takes 0.69-0.71 of its time
# (bench/onednn_cost.py, bench/README.md); "0" in the environment keeps them off.
ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def available_engines() -> tuple[str, ...]:
    """The engines whose package is installed here, TensorFlow first (imports neither).

    Each engine is named after the Python package (and Keras backend) it needs."""
    return tuple(e for e in ENGINES if importlib.util.find_spec(e))


def child_environment(engine: str, deterministic: bool = False,
                      env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) plus what a process that will train `engine` needs at start."""
    env = dict(os.environ if env is None else env)
    env["KERAS_BACKEND"] = engine
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if engine == "tensorflow":
        env.setdefault(ONEDNN, "1")
    if engine == "jax":
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # JAX would take 75 % of a shared GPU
        if deterministic and XLA_FLAG not in env.get("XLA_FLAGS", ""):
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {XLA_FLAG}".strip()
    return env


def use_backend(engine: str, deterministic: bool = False) -> None:
    """Point this process's Keras at `engine`; must run before keras is first imported."""
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != engine:
        raise GradlossError(f"Keras is already imported with another backend; cannot use {engine!r}.")
    os.environ.update(child_environment(engine, deterministic))


def list_gpus() -> list[tuple[int, str, str]]:
    """(index, uuid, name) of every NVIDIA GPU on this machine, by nvidia-smi; [] if none.

    Indices are the machine's, whatever CUDA_VISIBLE_DEVICES says; no framework is imported."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [[part.strip() for part in line.split(",", 2)] for line in out.splitlines() if line.strip()]
    return [(int(index), uuid, name) for index, uuid, name in rows]


@cache
def visible_gpu() -> str:
    """The GPU a worker may use (the first of CUDA_VISIBLE_DEVICES), else "CPU"."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible in ("", "-1"):
        return "CPU"
    gpus = list_gpus()
    if visible is not None:
        wanted = visible.split(",")[0].strip()  # the worker trains on the first visible GPU
        gpus = [g for g in gpus if wanted in (str(g[0]), g[1])]
    return gpus[0][2] if gpus else "CPU"


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the process that started it (GRADLOSS_PARENT_PID:
    a worker, a runner) dies, even by kill -9.

    Set here rather than in a preexec_fn, which is unsafe in the threaded consumer; the parent
    pid check covers a worker that died before this line ran."""
    parent = os.environ.get("GRADLOSS_PARENT_PID")
    if parent is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):
        os._exit(1)
