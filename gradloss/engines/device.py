"""The device a process trains on: its name, its set-up (GPU memory growth) and deterministic
kernels. Imports TensorFlow or JAX when called: only processes that train use it (the worker's
consumer uses `engines.backend`, which imports neither).

Determinism: on CPU both engines repeat a seeded run exactly. On a GPU some kernels round
differently from run to run; `TrainConfig(deterministic=True)` asks for deterministic kernels
instead (TensorFlow's op determinism; XLA's flag for JAX, which must be set before JAX starts,
see `backend.child_environment`). Measured costs are in bench/README.md.
"""
from __future__ import annotations

import os

from gradloss.core.errors import GradlossError
from gradloss.engines.backend import XLA_FLAG


def enable_determinism(engine: str) -> None:
    """Make this process train `engine` with deterministic kernels, or say why it cannot.

    Process-wide and for good: TensorFlow's op determinism cannot be turned off again, and
    XLA's flag holds for the life of the process (the worker trains each run in its own).
    """
    if engine == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
        return
    import jax
    if jax.devices()[0].platform == "cpu" or XLA_FLAG in os.environ.get("XLA_FLAGS", ""):
        return  # XLA on CPU is deterministic; on a GPU the flag was set before JAX started
    raise GradlossError(
        f"A deterministic JAX run on {jax.devices()[0].device_kind} needs XLA_FLAGS={XLA_FLAG} "
        "before JAX starts (the worker and the CLI set it); set it and start the process again.")


def prepare_device(engine: str) -> str:
    """Get this process's device ready to train `engine`; return its name (see `device_name`).

    TensorFlow is told to grow GPU memory as needed (the GPU may be shared); this must precede
    its first GPU op. JAX's equivalent is XLA_PYTHON_CLIENT_PREALLOCATE (`child_environment`).
    """
    if engine == "tensorflow":
        import tensorflow as tf
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    return device_name(engine)


def device_name(engine: str) -> str:
    """The accelerator `engine` computes on in this process (e.g. "NVIDIA H100 80GB HBM3"), or "CPU"."""
    if engine == "jax":
        import jax
        device = jax.devices()[0]
        return "CPU" if device.platform == "cpu" else device.device_kind
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
