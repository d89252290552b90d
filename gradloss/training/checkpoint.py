"""Checkpoints of a run: weights, optimizer state and the last epoch, in the run's folder.

run_dir/checkpoint/{model.weights.h5, optimizer.npz, state.json}, replaced atomically: written
to checkpoint.tmp, then swapped in, so a kill at any moment leaves one whole copy. A checkpoint
is refused by a run of another config, so a run folder never resumes someone else's run.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from gradloss.core.config import TrainConfig
from gradloss.core.errors import GradlossError
from gradloss.training.record import EpochMetrics

log = logging.getLogger(__name__)


def save(run_dir: Path, model: keras.Model, optimizer: keras.optimizers.Optimizer,
         config: TrainConfig, epoch: int, final: EpochMetrics) -> Path:
    """Write the checkpoint of `epoch` (whole epochs done) with that epoch's metrics; returns
    its folder."""
    tmp, ckpt, old = (run_dir / n for n in ("checkpoint.tmp", "checkpoint", "checkpoint.old"))
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save_weights(tmp / "model.weights.h5")
    np.savez(tmp / "optimizer.npz",
             *[keras.ops.convert_to_numpy(v) for v in optimizer.variables])
    (tmp / "state.json").write_text(json.dumps(
        {"epoch": epoch, "config": config.to_dict(), "final": final.to_dict()}))
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        os.replace(ckpt, old)
    os.replace(tmp, ckpt)
    shutil.rmtree(old, ignore_errors=True)
    return ckpt


def _same(saved: dict, config: TrainConfig) -> bool:
    """True when a checkpoint's config is `config`; a config saved before some fields existed
    reads with their defaults, so an upgrade does not orphan the checkpoints of running runs."""
    try:
        return TrainConfig.from_dict(saved) == config
    except (ValueError, TypeError):  # InvalidParameterError is both
        return False


def restore(run_dir: Path, model: keras.Model, optimizer: keras.optimizers.Optimizer,
            config: TrainConfig) -> tuple[int, EpochMetrics | None]:
    """Load the newest whole checkpoint into model and optimizer; return (epoch, last metrics).

    (0, None) when there is none. Raises GradlossError when it was written for another config.
    """
    for name in ("checkpoint", "checkpoint.old"):
        ckpt = run_dir / name
        if not (ckpt / "state.json").exists():
            continue
        state = json.loads((ckpt / "state.json").read_text())
        if not _same(state["config"], config):
            raise GradlossError(
                f"The checkpoint in {ckpt} was written for another config ({state['config']}); "
                f"use a new run folder or delete that checkpoint.")
        model.load_weights(ckpt / "model.weights.h5")
        with np.load(ckpt / "optimizer.npz") as saved:
            for i, var in enumerate(optimizer.variables):
                var.assign(saved[f"arr_{i}"])
        log.info("resuming %s from epoch %d", run_dir, state["epoch"])
        return state["epoch"], EpochMetrics.from_dict(state["final"])
    return 0, None
