"""Several seeds of one arm trained as one program on the device (JAX), each still its own run.

`train_seeds` is `loop.train` for configs that differ only in their seed (`config.batchable`):
each seed starts from its own initial weights (seeded exactly as a lone run), sees its own
batches (its shuffle, its stratified subset) and checkpoints into its own run folder every
epoch, so `train` can resume any seed alone. `BatchedSeeds` stacks the seeds' states and trains
them with `jax_epochs.DeviceEpochs(batched=True)`; the loop (`loop.train_runs`) changes the
batch only at epoch boundaries: a seed whose cancel was asked for, or whose loss diverged,
leaves it (the others go on); a seed resumed from an older checkpoint than the rest joins when
the batch reaches its epoch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from gradloss.core.config import TrainConfig, batchable
from gradloss.core.errors import GradlossError
from gradloss.core.progress import Progress
from gradloss.core.records import MetricRow
from gradloss.data import Dataset, load_dataset
from gradloss.training.loop import Run, train_runs
from gradloss.training.steppers import check_engine
from gradloss.training.record import TrainResult


class BatchedSeeds:
    """A Stepper of several seeds as one vmapped program on the device (jax engine)."""

    def __init__(self, runs: list[Run], ds: Dataset):
        from gradloss.engines.jax_epochs import DeviceEpochs

        first = runs[0]
        self._runs = runs
        self._device = DeviceEpochs(first.model, first.optimizer, first.config.objective, ds,
                                    first.config.batch_size, batched=True,
                                    params=first.config.objective_params)  # batchable: no noise
        self.device = self._device.device
        self._active: list[int] = []

    def regroup(self, keep: list[int], joining: list[int]) -> None:
        from gradloss.engines.jax_engine import read_state
        from gradloss.engines.jax_epochs import stack, unstack

        state = self._device.state
        self._device.load(stack([unstack(state, self._active.index(i)) for i in keep]
                                + [read_state(self._runs[i].model, self._runs[i].optimizer)
                                   for i in joining]))
        self._active = keep + joining

    def start_epoch(self, orders: list[np.ndarray]) -> None:
        self._device.start_epoch(np.stack(orders))                          # (S, n)

    def run(self, first: int) -> tuple[np.ndarray, np.ndarray]:
        return self._device.run(first)                                      # (k, S)

    def test_accuracy(self) -> np.ndarray:
        return self._device.test_accuracy()                                 # (S,)

    def sync(self, j: int) -> None:
        from gradloss.engines.jax_engine import write_state
        from gradloss.engines.jax_epochs import unstack

        run = self._runs[self._active[j]]
        write_state(unstack(self._device.state, j), run.model, run.optimizer)


def train_seeds(configs: list[TrainConfig], run_dirs: list[str | Path], *,
                on_progress: Callable[[int, Progress], None] | None = None,
                on_metrics: Callable[[int, list[MetricRow]], None] | None = None,
                should_cancel: Callable[[int], bool] | None = None,
                on_checkpoint: Callable[[int, Path], None] | None = None,
                dataset: Dataset | None = None) -> list[TrainResult]:
    """Train the seeds of `configs` together; run_dirs[i] holds seed i's checkpoint and model.

    The callbacks are `train`'s, with the seed's index first. `dataset`: the whole training
    set (each seed takes its train_size rows of it). Returns one TrainResult per config.
    """
    if len(run_dirs) != len(configs) or not batchable(configs):
        raise GradlossError(
            f"train_seeds needs one run folder per config and configs that differ only in "
            f"their seed, on the jax engine; got {len(configs)} config(s) "
            f"({[c.to_dict() for c in configs]}) and {len(run_dirs)} folder(s).")
    check_engine(configs[0])
    ds = dataset or load_dataset(configs[0].dataset, sha256=configs[0].dataset_hash)
    return train_runs(configs, run_dirs, ds, BatchedSeeds, on_progress=on_progress,
                      on_metrics=on_metrics, should_cancel=should_cancel,
                      on_checkpoint=on_checkpoint)
