"""The one training loop, for one run or several seeds of one arm: seeded, resumable,
cancellable, reporting as it goes.

The loop is backend-neutral. Each epoch's order is drawn with NumPy from (seed, epoch), and a
`Stepper` runs the steps of every run in the loop: `Single` wraps the `Epochs` of one run
(`HostBatches`, which gathers batches on the host for a step `Engine` of `engines.tf_engine` or
`engines.jax_engine`, or `jax_epochs.DeviceEpochs`, whole epochs on the device); several seeds
train as one program through `seed_batch.BatchedSeeds`. Each epoch ends with a checkpoint per
run (`training.checkpoint`) so a later call resumes from it; a run whose loss or metrics become
non-finite, or whose cancel was asked for, leaves the loop (the others go on).
"""
from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Callable, Protocol, Sequence

import keras
import numpy as np

from gradloss.core.config import TrainConfig
from gradloss.core.errors import GradlossError, TrainingDiverged
from gradloss.core.progress import Progress
from gradloss.core.records import MetricRow
from gradloss.data import Dataset, load_dataset, train_rows
from gradloss.engines.device import device_name, enable_determinism
from gradloss.models import build_cnn, predict
from gradloss.training import checkpoint
from gradloss.training.record import RunRecord, TrainResult

log = logging.getLogger(__name__)

# input_grad_norm each epoch: over the first test images, the same ones for every run
INPUT_GRAD_IMAGES = 500


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

    def test_accuracy(self) -> float:
        """Accuracy on the test set of the weights trained so far."""

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

    def test_accuracy(self) -> np.ndarray:
        """Test accuracy of each stepped run's current weights, (S,)."""

    def sync(self, j: int) -> None:
        """Write stepped run j's state into its Keras model and optimizer."""


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

    def test_accuracy(self) -> np.ndarray:
        return np.array([self._epochs.test_accuracy()])

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
        return HostBatches(make_engine(model, optimizer, config), model, ds, config.batch_size)
    if config.engine != "jax":
        raise GradlossError(f"Whole epochs on the device need the jax engine; the run asks for "
                            f"{config.engine!r}.")
    from gradloss.engines.jax_epochs import DeviceEpochs
    return DeviceEpochs(model, optimizer, config.objective, ds, config.batch_size,
                        params=config.objective_params, seed=config.seed).attach()


def input_grad_norm(model, ds: Dataset) -> float:
    """Mean over the first INPUT_GRAD_IMAGES test images of ||dCE_i/dx_i||_2 (the loss
    sensitivity), at the model's weights."""
    from gradloss.objectives.losses import input_gradient_norms, on_model

    x, y = (keras.ops.convert_to_tensor(a[:INPUT_GRAD_IMAGES]) for a in (ds.x_test, ds.y_test))
    norms = input_gradient_norms(on_model(model, training=False), x, y)
    return float(np.mean(keras.ops.convert_to_numpy(norms)))


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled order of n training rows in `epoch` (1-based): a function of (seed, epoch),
    so a resumed run, and a seed trained in a batch, see the same batches."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def load_model(path: str | Path) -> keras.Model:
    """Load a model saved by `train`."""
    return keras.saving.load_model(path, compile=False)


class Run:
    """One run of the loop: its config, folder, Keras model and optimizer, rows and account."""

    def __init__(self, config: TrainConfig, run_dir: Path, ds: Dataset):
        self.config, self.run_dir = config, run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(config.seed)  # same seed -> same initial weights
        self.model = build_cnn(ds.x_train.shape[1:], ds.y_train.shape[1])
        self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
        self.optimizer.build(self.model.trainable_variables)
        self.start, self.final = checkpoint.restore(run_dir, self.model, self.optimizer, config)
        # rows of ds this run trains on: its stratified subset, unless ds is that subset already
        self.rows = (np.arange(len(ds.x_train)) if len(ds.x_train) == config.n_train
                     else train_rows(ds, config.train_size, config.seed))
        self.record: RunRecord | None = None
        self.result: TrainResult | None = None


OnProgress = Callable[[int, Progress], None]
OnMetrics = Callable[[int, list[MetricRow]], None]


def train_runs(configs: Sequence[TrainConfig], run_dirs: Sequence[str | Path], ds: Dataset,
               make_stepper: Callable[[list[Run], Dataset], "Stepper"], *,
               on_progress: OnProgress | None = None, on_metrics: OnMetrics | None = None,
               should_cancel: Callable[[int], bool] | None = None,
               on_checkpoint: Callable[[int, Path], None] | None = None) -> list[TrainResult]:
    """Train runs `configs` (alike but for their seeds) together, run i in run_dirs[i], resuming
    each from its checkpoint there; the callbacks take the run's index first.

    `ds` holds every run's training rows (each takes its stratified subset of it, unless it is
    that subset already) and the whole test set. A run joins when the loop reaches the epoch
    after its checkpoint and leaves it done, cancelled (between steps or after an epoch) or
    failed (a non-finite loss, weight or metric: TrainingDiverged's message is its error)."""
    t_start = time.perf_counter()
    first = configs[0]
    for config in configs:
        check_engine(config)
    if first.deterministic:
        enable_determinism(first.engine)
    runs = [Run(c, Path(d), ds) for c, d in zip(configs, run_dirs)]
    steps_per_epoch = len(runs[0].rows) // first.batch_size
    for i, run in enumerate(runs):
        run.record = RunRecord(run.config, steps_per_epoch, run.start, t_start, *(
            f and functools.partial(f, i) for f in (on_progress, on_metrics, should_cancel)))
    stepper = make_stepper(runs, ds)

    def end(i: int, status: str, epochs_done: int, error: str | None = None) -> None:
        log.info("run in %s (seed %d) %s after %d epoch(s)", runs[i].run_dir,
                 runs[i].config.seed, status, epochs_done)
        runs[i].result = TrainResult(status, None, epochs_done, time.perf_counter() - t_start,
                                     stepper.device, runs[i].final, error)

    active: list[int] = []  # runs in the stepper, in its order
    for epoch in range(min(r.start for r in runs) + 1, first.epochs + 1):
        keep = [i for i in active if runs[i].result is None]
        joining = [i for i, r in enumerate(runs) if r.start == epoch - 1]
        if not keep + joining:  # none in this epoch; one resumed further on may join later
            active = []
            continue
        if keep + joining != active:  # for a seed batch, a new seed count compiles a new program
            stepper.regroup(keep, joining)
            active = keep + joining
        stepper.start_epoch([runs[i].rows[epoch_order(runs[i].config.seed, epoch,
                                                      len(runs[i].rows))] for i in active])
        live = _train_epoch(stepper, runs, active, epoch, steps_per_epoch, end)
        accuracies = stepper.test_accuracy() if live else None                 # (S,)
        for j, i in enumerate(active):
            if i not in live:
                continue
            run = runs[i]
            stepper.sync(j)
            try:
                _check_weights(run.model, epoch)
                run.final = run.record.end_epoch(epoch, accuracies[j],
                                                 input_grad_norm(run.model, ds))
            except TrainingDiverged as exc:
                end(i, "failed", epoch - 1, str(exc))
                continue
            folder = checkpoint.save(run.run_dir, run.model, run.optimizer, run.config, epoch,
                                     run.final)
            if on_checkpoint:
                on_checkpoint(i, folder)
            log.info("run %d epoch %d/%d: %s", i, epoch, first.epochs, run.final)
            if run.record.report(epoch, run.record.last_loss) and epoch < first.epochs:
                end(i, "cancelled", epoch)

    for run in runs:
        if run.result is None:  # trained to the end (in this call or an earlier one)
            model_path = run.run_dir / "model.keras"
            run.model.save(model_path)  # the model holds the last epoch's state
            run.result = TrainResult("done", model_path, first.epochs,
                                     time.perf_counter() - t_start, stepper.device, run.final)
    return [run.result for run in runs]


def _train_epoch(stepper: Stepper, runs: list[Run], active: list[int], epoch: int,
                 steps_per_epoch: int, end) -> set[int]:
    """Run one epoch's steps of the `active` runs; returns those still training at its end."""
    live = set(active)
    step = 0
    while step < steps_per_epoch and live:
        t0 = time.perf_counter()
        losses, correct = stepper.run(step)                                    # (k, S)
        seconds = time.perf_counter() - t0
        step += len(losses)
        for j, i in enumerate(active):
            if i not in live:
                continue
            record = runs[i].record
            try:
                record.add(epoch, losses[:, j], correct[:, j], seconds)
            except TrainingDiverged as exc:
                live.discard(i)
                end(i, "failed", epoch - 1, str(exc))
                continue
            if record.due() and record.report(epoch, float(losses[-1, j])):
                live.discard(i)
                end(i, "cancelled", epoch - 1)
    return live


def _check_weights(model: keras.Model, epoch: int) -> None:
    """Raise TrainingDiverged if a weight became NaN or infinite."""
    for variable in model.trainable_variables:
        if not np.isfinite(keras.ops.convert_to_numpy(variable)).all():
            raise TrainingDiverged(f"The weights of {variable.path} became non-finite in epoch "
                                   f"{epoch}; try a smaller learning rate.")


def train(config: TrainConfig, run_dir: str | Path, *,
          on_progress: Callable[[Progress], None] | None = None,
          on_metrics: Callable[[list[MetricRow]], None] | None = None,
          should_cancel: Callable[[], bool] | None = None,
          on_checkpoint: Callable[[Path], None] | None = None,
          dataset: Dataset | None = None, whole_epochs: bool | None = None) -> TrainResult:
    """Train one model as `config` says; resume from run_dir/checkpoint when there is one.

    on_checkpoint(folder) is called after each epoch's checkpoint is written to `folder`.
    whole_epochs: run each epoch as one program on the device (jax engine only); None: when
    JAX runs on an accelerator. Same steps, losses and checkpoints either way. A diverged run
    raises TrainingDiverged (after reporting its last progress).
    """
    ds = dataset or load_dataset(config.dataset, train_size=config.train_size, seed=config.seed)

    def unindexed(f):
        return f and (lambda _i, *args: f(*args))

    [result] = train_runs([config], [run_dir], ds, single(whole_epochs),
                          on_progress=unindexed(on_progress),
                          on_metrics=unindexed(on_metrics),
                          should_cancel=unindexed(should_cancel),
                          on_checkpoint=unindexed(on_checkpoint))
    if result.status == "failed":
        raise TrainingDiverged(result.error)
    return result


def _accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(predict(model, x), -1) == np.argmax(y, -1)))


def single(whole_epochs: bool | None = None) -> Callable[[list[Run], Dataset], Stepper]:
    """The stepper factory `train_runs` takes for one run: `Single` over `make_epochs`."""
    def make(runs: list[Run], ds: Dataset) -> Stepper:
        run = runs[0]
        return Single(make_epochs(run.model, run.optimizer, run.config, ds, whole_epochs))
    return make
