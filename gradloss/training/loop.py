"""One training loop for every objective: seeded, resumable, cancellable, reporting as it goes.

The loop is backend-neutral: each epoch's order is drawn with NumPy, and an `Epochs` runs
its steps: `HostBatches` gathers batches on the host for a step `Engine` (`engines.tf_engine`
or `engines.jax_engine`, chosen by the Keras backend this process runs), `jax_epochs.DeviceEpochs` runs
whole epochs on the device. Each epoch ends with a checkpoint (`gradloss.checkpoint`) so a
later call resumes from it. `RunRecord` keeps one run's account (metric rows, progress,
cancel polls); `gradloss.seed_batch` uses it too, once per seed.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import keras
import numpy as np

from gradloss.training import checkpoint
from gradloss.core.config import TrainConfig
from gradloss.data import Dataset, load_dataset
from gradloss.engines.backend import device_name, enable_determinism
from gradloss.core.errors import GradlossError, TrainingDiverged
from gradloss.models import build_cnn, predict
from gradloss.core.progress import Progress

log = logging.getLogger(__name__)

REPORT_EVERY_S = 1.0  # progress, metrics flush and cancel poll at most this often
# input_grad_norm each epoch: over the first test images, the same ones for every run
INPUT_GRAD_IMAGES = 500


@dataclass
class TrainResult:
    status: str                      # "done", "cancelled"; "failed" only in seed batches
    model_path: Path | None          # run_dir/model.keras once done
    epochs_done: int
    seconds: float                   # wall time of this call
    device: str                      # "CPU" or the GPU's name
    final: dict = field(default_factory=dict)  # last epoch's epoch_loss, accuracies, step_ms
    error: str | None = None         # why it failed (a seed of a batch that diverged)


class Engine(Protocol):
    """What a step engine (`tf_engine.TensorFlowEngine`, `jax_engine.JaxEngine`) offers."""

    device: str       # "CPU" or the accelerator's name
    chunk_steps: int  # steps per `run_steps` call, between host syncs

    def run_steps(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run len(x) steps; x (k, B, H, W, C), y (k, B, K); return losses (k,), correct (k,)."""

    def sync_to_model(self) -> None:
        """Write the engine's weights and optimizer state into the Keras variables."""


class Epochs(Protocol):
    """What the training loop runs an epoch with: `HostBatches` or `jax_epochs.DeviceEpochs`."""

    device: str

    def start_epoch(self, order: np.ndarray) -> None:
        """Take the epoch's shuffled training-set rows, (n,)."""

    def run(self, first: int) -> tuple[np.ndarray, np.ndarray]:
        """Run k >= 1 of the epoch's next batches from batch `first`; losses (k,), correct (k,)."""

    def test_accuracy(self) -> float:
        """Accuracy on the test set of the weights trained so far."""

    def sync_to_model(self) -> None:
        """Write the weights and optimizer state into the Keras model and optimizer."""


class HostBatches:
    """Epochs for a step engine: each chunk of batches is gathered on the host and sent."""

    def __init__(self, engine: Engine, model: keras.Model, ds: Dataset, batch_size: int):
        self._engine, self._model, self._ds, self._batch = engine, model, ds, batch_size
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

    def test_accuracy(self) -> float:
        self._engine.sync_to_model()
        return _accuracy(self._model, self._ds.x_test, self._ds.y_test)

    def sync_to_model(self) -> None:
        self._engine.sync_to_model()


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


def input_grad_norm(model, ds: Dataset) -> float:
    """Mean over the first INPUT_GRAD_IMAGES test images of ||dCE_i/dx_i||_2 (the loss
    sensitivity), at the model's weights."""
    if keras.backend.backend() == "jax":
        from gradloss.objectives.jax_losses import input_gradient_norms
    else:
        from gradloss.objectives.tf_losses import input_gradient_norms
    x, y = ds.x_test[:INPUT_GRAD_IMAGES], ds.y_test[:INPUT_GRAD_IMAGES]
    return float(np.mean(keras.ops.convert_to_numpy(input_gradient_norms(model, x, y))))


def make_epochs(model, optimizer, config: TrainConfig, ds: Dataset,
                whole_epochs: bool | None = None) -> Epochs:
    """Whole epochs on the device (JAX; by default on an accelerator), else host batches."""
    check_engine(config)
    if whole_epochs is None:
        whole_epochs = config.engine == "jax" and device_name("jax") != "CPU"
    if not whole_epochs:
        return HostBatches(make_engine(model, optimizer, config), model, ds, config.batch_size)
    if config.engine != "jax":
        raise GradlossError(f"Whole epochs on the device need the jax engine; the run asks for "
                            f"{config.engine!r}.")
    from gradloss.engines.jax_epochs import DeviceEpochs
    return DeviceEpochs(model, optimizer, config.objective, ds, config.batch_size,
                        params=config.objective_params, seed=config.seed).attach()


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled order of n training rows in `epoch` (1-based): a function of (seed, epoch),
    so a resumed run, and a seed trained in a batch, see the same batches."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class RunRecord:
    """One run's account while it trains: metric rows, step count, progress, cancel polls."""

    def __init__(self, config: TrainConfig, steps_per_epoch: int, start_epoch: int, t_start: float,
                 on_progress=None, on_metrics=None, should_cancel=None):
        self.config, self.steps_per_epoch, self.t_start = config, steps_per_epoch, t_start
        self.total = steps_per_epoch * config.epochs
        self.step = start_epoch * steps_per_epoch  # global, 1-based once a step ran
        self._on_progress, self._on_metrics, self._should_cancel = (
            on_progress, on_metrics, should_cancel)
        self.rows: list[dict] = []
        self.steps_this_call = 0
        self.last_report = time.perf_counter()
        self._epoch_losses: list[float] = []
        self._epoch_correct = 0
        self._timed_s, self._timed_steps = 0.0, 0

    def add(self, epoch: int, losses: np.ndarray, correct: np.ndarray, seconds: float) -> None:
        """Record k steps that took `seconds`; raise TrainingDiverged on a non-finite loss."""
        k = len(losses)
        if self.step % self.steps_per_epoch == 0:  # the epoch's first steps: start its account
            self._epoch_losses, self._epoch_correct = [], 0
            self._timed_s, self._timed_steps = 0.0, 0
        # step_ms skips the first chunk of a call (it compiles), unless it is the whole epoch
        if self.steps_this_call > 0 or (self.step + k) % self.steps_per_epoch == 0:
            self._timed_s, self._timed_steps = self._timed_s + seconds, self._timed_steps + k
        first_step = self.step + 1
        for loss in losses:
            self.step += 1
            self.rows.append({"step": self.step, "epoch": epoch, "name": "loss",
                              "value": float(loss)})
        self.steps_this_call += k
        self._epoch_losses.extend(losses.tolist())
        self._epoch_correct += int(correct.sum())
        bad = ~np.isfinite(losses)
        if bad.any():
            self.rows = [r for r in self.rows if math.isfinite(r["value"])]
            self.report(epoch, float("nan"))
            raise TrainingDiverged(
                f"The loss became {losses[bad][0]} at step {first_step + int(np.argmax(bad))} "
                f"(epoch {epoch}); try a smaller learning rate.")

    def due(self) -> bool:
        return time.perf_counter() - self.last_report >= REPORT_EVERY_S

    def report(self, epoch: int, loss: float) -> bool:
        """Flush metrics and progress; return True when cancellation was asked for."""
        if self._on_metrics and self.rows:
            self._on_metrics(self.rows)
        self.rows = []
        elapsed = time.perf_counter() - self.t_start
        eta = elapsed / max(self.steps_this_call, 1) * (self.total - self.step)
        if self._on_progress:
            self._on_progress(Progress(self.step / self.total, self.step, self.total, epoch,
                                       self.config.epochs, eta, loss))
        self.last_report = time.perf_counter()
        return bool(self._should_cancel and self._should_cancel())

    @property
    def last_loss(self) -> float:
        return float(self._epoch_losses[-1])

    def end_epoch(self, epoch: int, test_accuracy: float, input_grad_norm: float) -> dict:
        """The epoch's summary metrics, handed over with its step rows; returns them."""
        final = {"epoch_loss": float(np.mean(self._epoch_losses)),
                 # running accuracy over the epoch's batches, as Keras fit() reports it
                 "train_accuracy": self._epoch_correct / (self.steps_per_epoch
                                                          * self.config.batch_size),
                 "test_accuracy": float(test_accuracy),
                 "step_ms": 1000 * self._timed_s / self._timed_steps,
                 "input_grad_norm": float(input_grad_norm)}
        self.rows.extend({"step": self.step, "epoch": epoch, "name": name, "value": value}
                         for name, value in final.items())
        if self._on_metrics:  # before the checkpoint: a run resumed from it never re-emits these
            self._on_metrics(self.rows)  # (a crash in between re-runs the epoch; rows upsert)
            self.rows = []
        return final


def load_model(path: str | Path) -> keras.Model:
    """Load a model saved by `train`."""
    return keras.saving.load_model(path, compile=False)


def train(config: TrainConfig, run_dir: str | Path, *,
          on_progress: Callable[[Progress], None] | None = None,
          on_metrics: Callable[[list[dict]], None] | None = None,
          should_cancel: Callable[[], bool] | None = None,
          on_checkpoint: Callable[[Path], None] | None = None,
          dataset: Dataset | None = None, whole_epochs: bool | None = None) -> TrainResult:
    """Train one model as `config` says; resume from run_dir/checkpoint when there is one.

    on_checkpoint(folder) is called after each epoch's checkpoint is written to `folder`.
    whole_epochs: run each epoch as one program on the device (jax engine only); None: when
    JAX runs on an accelerator. Same steps, losses and checkpoints either way.
    """
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.deterministic:
        enable_determinism(config.engine)
    ds = dataset or load_dataset(config.dataset, train_size=config.train_size, seed=config.seed)
    keras.utils.set_random_seed(config.seed)  # same seed -> same initial weights
    model = build_cnn(ds.x_train.shape[1:], ds.y_train.shape[1])
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    optimizer.build(model.trainable_variables)
    start_epoch, final = checkpoint.restore(run_dir, model, optimizer, config)
    epochs = make_epochs(model, optimizer, config, ds, whole_epochs)
    n = len(ds.x_train)
    record = RunRecord(config, n // config.batch_size, start_epoch, t_start,
                       on_progress, on_metrics, should_cancel)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        if not train_epoch(epochs, record, epoch, epoch_order(config.seed, epoch, n)):
            return _result("cancelled", config, run_dir, epoch - 1, t_start, epochs.device, final)
        epochs.sync_to_model()
        final = record.end_epoch(epoch, epochs.test_accuracy(), input_grad_norm(model, ds))
        folder = checkpoint.save(run_dir, model, optimizer, config, epoch, final)
        if on_checkpoint:
            on_checkpoint(folder)
        log.info("epoch %d/%d: %s", epoch, config.epochs, final)
        if record.report(epoch, record.last_loss) and epoch < config.epochs:
            return _result("cancelled", config, run_dir, epoch, t_start, epochs.device, final)

    epochs.sync_to_model()
    model_path = run_dir / "model.keras"
    model.save(model_path)
    return TrainResult("done", model_path, config.epochs, time.perf_counter() - t_start,
                       epochs.device, final)


def train_epoch(epochs: Epochs, record: RunRecord, epoch: int, order: np.ndarray) -> bool:
    """Run one epoch's steps into `record`; False when cancelled part-way."""
    epochs.start_epoch(order)
    first = 0
    while first < record.steps_per_epoch:
        t0 = time.perf_counter()
        losses, correct = epochs.run(first)
        record.add(epoch, losses, correct, time.perf_counter() - t0)
        first += len(losses)
        if record.due() and record.report(epoch, float(losses[-1])):
            return False
    return True


def _result(status, config, run_dir, epochs_done, t_start, device, final) -> TrainResult:
    log.info("run in %s %s after %d epoch(s)", run_dir, status, epochs_done)
    return TrainResult(status, None, epochs_done, time.perf_counter() - t_start, device, final)


def _accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(predict(model, x), -1) == np.argmax(y, -1)))
