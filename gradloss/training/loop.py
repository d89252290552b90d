"""The one training loop, for one run or several seeds of one arm: seeded, resumable,
cancellable, reporting as it goes.

The loop is backend-neutral. Each epoch's order is drawn with NumPy from (seed, epoch), and a
`Stepper` (`training.steppers`) runs the steps of every run in the loop: one run's host batches
or device epochs, or several seeds as one program (`seed_batch.BatchedSeeds`). Each epoch ends with a checkpoint per
run (`training.checkpoint`) so a later call resumes from it; a run whose loss or metrics become
non-finite, or whose cancel was asked for, leaves the loop (the others go on).
"""
from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np

from gradloss.core.config import TrainConfig
from gradloss.core.errors import TrainingDiverged
from gradloss.core.progress import Progress
from gradloss.core.records import MetricRow
from gradloss.data import Dataset, load_dataset, train_rows
from gradloss.engines.device import enable_determinism
from gradloss.models import build_model
from gradloss.training import checkpoint
from gradloss.training.record import RunRecord, TrainResult
from gradloss.training.steppers import Stepper, check_engine, single

log = logging.getLogger(__name__)

# input_grad_norm each epoch: over the first test images, the same ones for every run
INPUT_GRAD_IMAGES = 500
INPUT_GRAD_BATCH = 100  # images per compiled call: memory stays that of one batch


def epoch_measures(model, ds: Dataset, accuracy: float | None = None) -> tuple[float, float]:
    """(test accuracy, input-gradient norm) at the model's weights. The norm is the mean over
    the first INPUT_GRAD_IMAGES test images of ||dCE_i/dx_i||_2 (the loss sensitivity); the
    forward pass it needs also classifies those images, so only the rest of the test set is
    predicted again for the accuracy. `accuracy`: measured already (on the device), kept.
    Compiled once per architecture (`engines.compiled`)."""
    from gradloss.engines.compiled import batched, on_model, predict
    from gradloss.objectives.losses import input_gradient_norms_and_hits

    first = min(INPUT_GRAD_IMAGES, len(ds.x_test))
    norms, hits = batched(on_model(model, input_gradient_norms_and_hits),     # (n,), (n,)
                          (ds.x_test[:first], ds.y_test[:first]), INPUT_GRAD_BATCH)
    if accuracy is None:
        right = int(np.sum(hits))
        if first < len(ds.x_test):
            right += int(np.sum(np.argmax(predict(model, ds.x_test[first:]), -1)
                                == np.argmax(ds.y_test[first:], -1)))
        accuracy = right / len(ds.x_test)
    return float(accuracy), float(np.mean(norms))


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled order of n training rows in `epoch` (1-based): a function of (seed, epoch),
    so a resumed run, and a seed trained in a batch, see the same batches."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def load_model(path: str | Path) -> keras.Model:
    """Load a model saved by `train`."""
    return keras.saving.load_model(path, compile=False)


class Run:
    """One run of the loop: its config, folder, Keras model and optimizer, rows and account."""

    def __init__(self, config: TrainConfig, run_dir: Path, ds: Dataset,
                 architecture_path: str | None = None):
        self.config, self.run_dir = config, run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        # seeded: same seed -> same initial weights (a .keras file's own, if the config says so)
        self.model = build_model(config, ds.x_train.shape[1:], ds.y_train.shape[1],
                                 architecture_path)
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
               on_checkpoint: Callable[[int, Path], None] | None = None,
               architecture_path: str | None = None) -> list[TrainResult]:
    """Train runs `configs` (alike but for their seeds) together, run i in run_dirs[i], resuming
    each from its checkpoint there; the callbacks take the run's index first.
    `architecture_path`: the .keras file of a config whose architecture is a file.

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
    runs = [Run(c, Path(d), ds, architecture_path) for c, d in zip(configs, run_dirs)]
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
        # (S,) when the stepper measures on the device; else None: `epoch_measures` does it
        accuracies = stepper.test_accuracy() if live else None
        for j, i in enumerate(active):
            if i not in live:
                continue
            run = runs[i]
            stepper.sync(j)
            try:
                _check_weights(run.model, epoch)
                run.final = run.record.end_epoch(epoch, *epoch_measures(
                    run.model, ds, None if accuracies is None else float(accuracies[j])))
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
          dataset: Dataset | None = None, whole_epochs: bool | None = None,
          architecture_path: str | None = None) -> TrainResult:
    """Train one model as `config` says; resume from run_dir/checkpoint when there is one.

    on_checkpoint(folder) is called after each epoch's checkpoint is written to `folder`.
    whole_epochs: run each epoch as one program on the device (jax engine only); None: when
    JAX runs on an accelerator. Same steps, losses and checkpoints either way. A diverged run
    raises TrainingDiverged (after reporting its last progress). A file dataset comes as
    `dataset`; a .keras architecture as `architecture_path`.
    """
    ds = dataset or load_dataset(config.dataset, train_size=config.train_size, seed=config.seed,
                                 sha256=config.dataset_hash)

    def unindexed(f):
        return f and (lambda _i, *args: f(*args))

    [result] = train_runs([config], [run_dir], ds, single(whole_epochs),
                          on_progress=unindexed(on_progress),
                          on_metrics=unindexed(on_metrics),
                          should_cancel=unindexed(should_cancel),
                          on_checkpoint=unindexed(on_checkpoint),
                          architecture_path=architecture_path)
    if result.status == "failed":
        raise TrainingDiverged(result.error)
    return result
