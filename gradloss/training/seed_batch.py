"""Several seeds of one arm trained as one program on the device (JAX), each still its own run.

`train_seeds` is `training.train` for configs that differ only in their seed
(`config.batchable`):
each seed starts from its own initial weights (seeded exactly as a lone run), sees its own
batches (its shuffle, its stratified subset) and checkpoints into its own run folder every
epoch, so `train` can resume any seed alone. The seeds' states are stacked and trained by
`jax_epochs.DeviceEpochs(batched=True)`. The batch changes only at epoch boundaries: a seed
whose cancel was asked for, or whose loss diverged, leaves it (the others go on); a seed
resumed from an older checkpoint than the rest joins when the batch reaches its epoch.
"""
from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from gradloss.training import checkpoint
from gradloss.core.config import TrainConfig, batchable
from gradloss.data import Dataset, load_dataset, train_rows
from gradloss.engines.backend import enable_determinism
from gradloss.core.errors import GradlossError, TrainingDiverged
from gradloss.models import build_cnn
from gradloss.core.progress import Progress
from gradloss.training.loop import (RunRecord, TrainResult, check_engine, epoch_order,
                                    input_grad_norm)

log = logging.getLogger(__name__)


def train_seeds(configs: list[TrainConfig], run_dirs: list[str | Path], *,
                on_progress: Callable[[int, Progress], None] | None = None,
                on_metrics: Callable[[int, list[dict]], None] | None = None,
                should_cancel: Callable[[int], bool] | None = None,
                on_checkpoint: Callable[[int, Path], None] | None = None,
                dataset: Dataset | None = None) -> list[TrainResult]:
    """Train the seeds of `configs` together; run_dirs[i] holds seed i's checkpoint and model.

    The callbacks are `train`'s, with the seed's index first. `dataset`: the whole training
    set (each seed takes its train_size rows of it). Returns one TrainResult per config.
    """
    t_start = time.perf_counter()
    if len(run_dirs) != len(configs) or not batchable(configs):
        raise GradlossError(
            f"train_seeds needs one run folder per config and configs that differ only in "
            f"their seed, on the jax engine; got {len(configs)} config(s) "
            f"({[c.to_dict() for c in configs]}) and {len(run_dirs)} folder(s).")
    first = configs[0]
    check_engine(first)
    if first.deterministic:
        enable_determinism(first.engine)
    from gradloss.engines.jax_engine import read_state, write_state
    from gradloss.engines.jax_epochs import DeviceEpochs, stack, unstack

    run_dirs = [Path(d) for d in run_dirs]
    ds = dataset or load_dataset(first.dataset)
    rows = [train_rows(ds, c.train_size, c.seed) for c in configs]
    steps_per_epoch = len(rows[0]) // first.batch_size
    models, optimizers, starts, finals, records = [], [], [], [], []
    for i, (config, run_dir) in enumerate(zip(configs, run_dirs)):
        run_dir.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(config.seed)  # as `train` seeds it: same initial weights
        model = build_cnn(ds.x_train.shape[1:], ds.y_train.shape[1])
        optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
        optimizer.build(model.trainable_variables)
        start, final = checkpoint.restore(run_dir, model, optimizer, config)
        models.append(model), optimizers.append(optimizer), starts.append(start)
        finals.append(final)
        records.append(RunRecord(config, steps_per_epoch, start, t_start, *(
            f and functools.partial(f, i) for f in (on_progress, on_metrics, should_cancel))))
    device = DeviceEpochs(models[0], optimizers[0], first.objective, ds, first.batch_size,
                          batched=True, params=first.objective_params)  # batchable: no noise
    results: list[TrainResult | None] = [None] * len(configs)

    def end(i: int, status: str, epochs_done: int, error: str | None = None) -> None:
        log.info("seed %d (%s) %s after %d epoch(s)", configs[i].seed, run_dirs[i], status,
                 epochs_done)
        results[i] = TrainResult(status, None, epochs_done, time.perf_counter() - t_start,
                                 device.device, finals[i], error)

    active: list[int] = []  # seeds in the batch, in the order of the stacked state
    for epoch in range(min(starts) + 1, first.epochs + 1):
        keep = [i for i in active if results[i] is None]
        joining = [i for i, s in enumerate(starts) if s == epoch - 1]
        if not keep + joining:  # none in this epoch; one resumed further on may join later
            active = []
            continue
        if keep + joining != active:  # regroup: a new seed count compiles a new program
            device.load(stack([unstack(device.state, active.index(i)) for i in keep]
                              + [read_state(models[i], optimizers[i]) for i in joining]))
            active = keep + joining
        device.start_epoch(np.stack([rows[i][epoch_order(configs[i].seed, epoch, len(rows[i]))]
                                     for i in active]))                        # (S, n)
        live = set(active)  # seeds still recording this epoch
        step = 0
        while step < steps_per_epoch and live:
            t0 = time.perf_counter()
            losses, correct = device.run(step)                                 # (k, S)
            seconds = time.perf_counter() - t0
            step += len(losses)
            for j, i in enumerate(active):
                if i not in live:
                    continue
                try:
                    records[i].add(epoch, losses[:, j], correct[:, j], seconds)
                except TrainingDiverged as exc:
                    live.discard(i)
                    end(i, "failed", epoch - 1, str(exc))
                    continue
                if records[i].due() and records[i].report(epoch, float(losses[-1, j])):
                    live.discard(i)
                    end(i, "cancelled", epoch - 1)
        accuracies = device.test_accuracy() if live else None                  # (S,)
        for j, i in enumerate(active):
            if i not in live:
                continue
            write_state(unstack(device.state, j), models[i], optimizers[i])
            finals[i] = records[i].end_epoch(epoch, accuracies[j], input_grad_norm(models[i], ds))
            folder = checkpoint.save(run_dirs[i], models[i], optimizers[i], configs[i], epoch,
                                     finals[i])
            if on_checkpoint:
                on_checkpoint(i, folder)
            log.info("seed %d epoch %d/%d: %s", configs[i].seed, epoch, first.epochs, finals[i])
            if records[i].report(epoch, records[i].last_loss) and epoch < first.epochs:
                end(i, "cancelled", epoch)

    for i, result in enumerate(results):
        if result is None:  # trained to the end (in this call or an earlier one)
            model_path = run_dirs[i] / "model.keras"
            models[i].save(model_path)  # the models hold the last epoch's state
            results[i] = TrainResult("done", model_path, first.epochs,
                                     time.perf_counter() - t_start, device.device, finals[i])
    return results
