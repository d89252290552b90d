"""The steppers the training loop runs: what steps the runs of one loop together.

`Single` wraps the `Epochs` of one run: `HostBatches`, which gathers batches on the host for a
step `Engine` (`engines.tf_engine` or `engines.jax_engine`, chosen by the Keras backend of this
process), or `jax_epochs.DeviceEpochs` (whole epochs on the device). Several seeds step together
through `seed_batch.BatchedSeeds`. All satisfy `Stepper`.
"""
from __future__ import annotations

from typing import Callable, Protocol

import keras
import numpy as np

from gradloss.core.config import TrainConfig
from gradloss.core.errors import GradlossError
from gradloss.data import Dataset
from gradloss.engines.device import device_name


class Engine(Protocol):
    """What a step engine (`tf_engine.TensorFlowEngine`, `jax_engine.JaxEngine`) offers."""

    device: str       # "CPU" or the accelerator's name
    chunk_steps: int  # steps per `run_steps` call, between host syncs

    def run_steps(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run len(x) steps; x (k, B, H, W, C), y (k, B, K); return losses (k,), correct (k,)."""

    def sync_to_model(self) -> None:
        """Write the engine's weights and optimizer state into the Keras variables."""


class Epochs(Protocol):
    """What one run's epochs run on: `HostBatches` or `jax_epochs.DeviceEpochs`."""

    device: str

    def start_epoch(self, order: np.ndarray) -> None:
        """Take the epoch's shuffled training-set rows, (n,)."""

    def run(self, first: int) -> tuple[np.ndarray, np.ndarray]:
        """Run k >= 1 of the epoch's next batches from batch `first`; losses (k,), correct (k,)."""

    def test_accuracy(self) -> float | None:
        """Accuracy on the test set of the weights trained so far; None where the weights are
        on the host: the loop measures them after `sync_to_model` (`loop.epoch_measures`)."""

    def sync_to_model(self) -> None:
        """Write the weights and optimizer state into the Keras model and optimizer."""


class Stepper(Protocol):
    """The runs of the loop stepping together: S >= 1 of them, in the order `regroup` gave."""

    device: str

    def regroup(self, keep: list[int], joining: list[int]) -> None:
        """From now on step runs keep + joining (indices into the loop's runs): `keep` carry
        on from their state here, `joining` start from their Keras model and optimizer."""

    def start_epoch(self, orders: list[np.ndarray]) -> None:
        """Each stepped run's training-set rows of this epoch, in its order."""

    def run(self, first: int) -> tuple[np.ndarray, np.ndarray]:
        """Run k >= 1 batches from batch `first`; losses (k, S), correct (k, S)."""

    def test_accuracy(self) -> np.ndarray | None:
        """Test accuracy of each stepped run's current weights, (S,); None: measured by the loop."""

    def sync(self, j: int) -> None:
        """Write stepped run j's state into its Keras model and optimizer."""


class HostBatches:
    """Epochs for a step engine: each chunk of batches is gathered on the host and sent."""

    def __init__(self, engine: Engine, ds: Dataset, batch_size: int):
        self._engine, self._ds, self._batch = engine, ds, batch_size
        self.device = engine.device
        self._order = None

    def start_epoch(self, order: np.ndarray) -> None:
        self._order = order

    def run(self, first: int) -> tuple[np.ndarray, np.ndarray]:
        x, y, batch = self._ds.x_train, self._ds.y_train, self._batch
        k = min(self._engine.chunk_steps, len(self._order) // batch - first)
        idx = self._order[first * batch:(first + k) * batch]
        return self._engine.run_steps(x[idx].reshape(k, batch, *x.shape[1:]),   # (k, B, H, W, C)
                                      y[idx].reshape(k, batch, y.shape[1]))     # (k, B, K)

    def test_accuracy(self) -> None:
        return None  # the loop measures the synced model, with the input-gradient norm

    def sync_to_model(self) -> None:
        self._engine.sync_to_model()


class Single:
    """A Stepper of one run over its `Epochs` (shapes gain a run axis of 1)."""

    def __init__(self, epochs: Epochs):
        self._epochs, self.device = epochs, epochs.device

    def regroup(self, keep: list[int], joining: list[int]) -> None:
        pass  # one run: its Epochs already hold its state

    def start_epoch(self, orders: list[np.ndarray]) -> None:
        self._epochs.start_epoch(orders[0])

    def run(self, first: int) -> tuple[np.ndarray, np.ndarray]:
        losses, correct = self._epochs.run(first)
        return losses[:, None], correct[:, None]

    def test_accuracy(self) -> np.ndarray | None:
        accuracy = self._epochs.test_accuracy()
        return None if accuracy is None else np.array([accuracy])

    def sync(self, j: int) -> None:
        self._epochs.sync_to_model()


def check_engine(config: TrainConfig) -> None:
    """Refuse a config whose engine is not the Keras backend of this process."""
    backend = keras.backend.backend()
    if backend != config.engine:
        raise GradlossError(
            f"The run asks for engine {config.engine!r} but Keras runs on {backend!r} in this "
            f"process; start it with KERAS_BACKEND={config.engine} (the CLI and worker do this).")


def make_engine(model, optimizer, config: TrainConfig) -> Engine:
    """The step engine for the Keras backend of this process; it must be the one the config asks for."""
    check_engine(config)
    params, seed = config.objective_params, config.seed
    if config.engine == "jax":
        from gradloss.engines.jax_engine import JaxEngine
        return JaxEngine(model, optimizer, config.objective, params=params, seed=seed)
    from gradloss.engines.tf_engine import TensorFlowEngine
    return TensorFlowEngine(model, optimizer, config.objective, params, seed)


def make_epochs(model, optimizer, config: TrainConfig, ds: Dataset,
                whole_epochs: bool | None = None) -> Epochs:
    """Whole epochs on the device (JAX; by default on an accelerator), else host batches."""
    check_engine(config)
    if whole_epochs is None:
        whole_epochs = config.engine == "jax" and device_name("jax") != "CPU"
    if not whole_epochs:
        return HostBatches(make_engine(model, optimizer, config), ds, config.batch_size)
    if config.engine != "jax":
        raise GradlossError(f"Whole epochs on the device need the jax engine; the run asks for "
                            f"{config.engine!r}.")
    from gradloss.engines.jax_epochs import DeviceEpochs
    return DeviceEpochs(model, optimizer, config.objective, ds, config.batch_size,
                        params=config.objective_params, seed=config.seed).attach()


def single(whole_epochs: bool | None = None) -> Callable[[list, Dataset], Stepper]:
    """The stepper factory `train_runs` takes for one run: `Single` over `make_epochs`."""
    def make(runs: list, ds: Dataset) -> Stepper:
        run = runs[0]
        return Single(make_epochs(run.model, run.optimizer, run.config, ds, whole_epochs))
    return make
