"""One training loop for both objectives: seeded, resumable, cancellable, reporting as it goes.

The loop is backend-neutral: batches are drawn with NumPy, and an engine (`engines.tf_engine`
or `engines.jax_engine`, chosen by the Keras backend this process runs) executes the steps. Each epoch
ends with a checkpoint (weights, optimizer state, epoch) so a later call resumes from it.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from gradloss.config import TrainConfig
from gradloss.data import Dataset, load_dataset
from gradloss.engines.backend import enable_determinism
from gradloss.exceptions import GradlossError, TrainingDiverged
from gradloss.models import build_cnn, predict
from gradloss.progress import Progress

log = logging.getLogger(__name__)

REPORT_EVERY_S = 1.0  # progress, metrics flush and cancel poll at most this often


@dataclass
class TrainResult:
    status: str                      # "done" or "cancelled"
    model_path: Path | None          # run_dir/model.keras once done
    epochs_done: int
    seconds: float                   # wall time of this call
    device: str                      # "CPU" or the GPU's name
    final: dict = field(default_factory=dict)  # last epoch's epoch_loss, accuracies, step_ms


def make_engine(model, optimizer, config: TrainConfig):
    """The engine for the Keras backend of this process; it must be the one the config asks for."""
    backend = keras.backend.backend()
    if backend != config.engine:
        raise GradlossError(
            f"The run asks for engine {config.engine!r} but Keras runs on {backend!r} in this "
            f"process; start it with KERAS_BACKEND={config.engine} (the CLI and worker do this).")
    if backend == "jax":
        from gradloss.engines.jax_engine import JaxEngine
        return JaxEngine(model, optimizer, config.objective)
    from gradloss.engines.tf_engine import TensorFlowEngine
    return TensorFlowEngine(model, optimizer, config.objective)


def load_model(path: str | Path) -> keras.Model:
    """Load a model saved by `train`."""
    return keras.saving.load_model(path, compile=False)


def train(config: TrainConfig, run_dir: str | Path, *,
          on_progress: Callable[[Progress], None] | None = None,
          on_metrics: Callable[[list[dict]], None] | None = None,
          should_cancel: Callable[[], bool] | None = None,
          dataset: Dataset | None = None) -> TrainResult:
    """Train one model as `config` says; resume from run_dir/checkpoint when there is one."""
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
    start_epoch, final = _restore_checkpoint(run_dir, model, optimizer, config)
    engine = make_engine(model, optimizer, config)

    n, batch = len(ds.x_train), config.batch_size
    steps_per_epoch = n // batch  # fixed-size batches: no retrace for a short last batch
    total = steps_per_epoch * config.epochs
    step = start_epoch * steps_per_epoch
    rows: list[dict] = []
    last_report = time.perf_counter()
    steps_this_call = 0

    def report(epoch: int, loss: float) -> bool:
        """Flush metrics and progress; return True when cancellation was asked for."""
        nonlocal rows, last_report
        if on_metrics and rows:
            on_metrics(rows)
        rows = []
        elapsed = time.perf_counter() - t_start
        eta = elapsed / max(steps_this_call, 1) * (total - step)
        if on_progress:
            on_progress(Progress(step / total, step, total, epoch, config.epochs, eta, loss))
        last_report = time.perf_counter()
        return bool(should_cancel and should_cancel())

    for epoch in range(start_epoch + 1, config.epochs + 1):
        order = np.random.default_rng([config.seed, epoch]).permutation(n)  # resumable shuffle
        epoch_losses, epoch_correct = [], 0
        timed_s, timed_steps = 0.0, 0  # for step_ms: the first chunk of a call compiles; skip it
        for first in range(0, steps_per_epoch, engine.chunk_steps):
            t_chunk = time.perf_counter()
            k = min(engine.chunk_steps, steps_per_epoch - first)
            idx = order[first * batch:(first + k) * batch]
            xb = ds.x_train[idx].reshape(k, batch, *ds.x_train.shape[1:])  # (k, B, H, W, C)
            yb = ds.y_train[idx].reshape(k, batch, ds.y_train.shape[1])    # (k, B, K)
            losses, correct = engine.run_steps(xb, yb)
            if steps_this_call > 0 or first + k == steps_per_epoch:
                timed_s, timed_steps = timed_s + time.perf_counter() - t_chunk, timed_steps + k
            for loss in losses:
                step += 1
                rows.append({"step": step, "epoch": epoch, "name": "loss", "value": float(loss)})
            steps_this_call += k
            epoch_losses.extend(losses.tolist())
            epoch_correct += int(correct.sum())
            bad = ~np.isfinite(losses)
            if bad.any():
                rows = [r for r in rows if math.isfinite(r["value"])]
                report(epoch, float("nan"))
                raise TrainingDiverged(
                    f"The loss became {losses[bad][0]} at step {step - k + 1 + int(np.argmax(bad))} "
                    f"(epoch {epoch}); try a smaller learning rate.")
            if time.perf_counter() - last_report >= REPORT_EVERY_S:
                if report(epoch, float(losses[-1])):
                    return _cancelled(config, run_dir, epoch - 1, t_start, engine, final)
        step_ms = 1000 * timed_s / timed_steps

        engine.sync_to_model()
        test_acc = _accuracy(model, ds.x_test, ds.y_test)
        final = {"epoch_loss": float(np.mean(epoch_losses)),
                 # running accuracy over the epoch's batches, as Keras fit() reports it
                 "train_accuracy": epoch_correct / (steps_per_epoch * batch),
                 "test_accuracy": test_acc, "step_ms": step_ms}
        rows.extend({"step": step, "epoch": epoch, "name": name, "value": value}
                    for name, value in final.items())
        if on_metrics:  # before the checkpoint: a run resumed from it never re-emits these rows
            on_metrics(rows)  # (a crash in between re-runs the epoch; the store upserts its rows)
            rows = []
        _save_checkpoint(run_dir, model, optimizer, config, epoch, final)
        log.info("epoch %d/%d: %s", epoch, config.epochs, final)
        if report(epoch, float(epoch_losses[-1])) and epoch < config.epochs:
            return _cancelled(config, run_dir, epoch, t_start, engine, final)

    engine.sync_to_model()
    model_path = run_dir / "model.keras"
    model.save(model_path)
    return TrainResult("done", model_path, config.epochs, time.perf_counter() - t_start,
                       engine.device, final)


def _cancelled(config, run_dir, epochs_done, t_start, engine, final) -> TrainResult:
    log.info("run in %s cancelled after %d epoch(s)", run_dir, epochs_done)
    return TrainResult("cancelled", None, epochs_done, time.perf_counter() - t_start,
                       engine.device, final)


def _accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(predict(model, x), -1) == np.argmax(y, -1)))


# --- checkpoints -------------------------------------------------------------------------
# run_dir/checkpoint/{model.weights.h5, optimizer.npz, state.json}, replaced atomically:
# written to checkpoint.tmp, then swapped in, so a kill at any moment leaves one whole copy.

def _save_checkpoint(run_dir: Path, model, optimizer, config, epoch: int, final: dict) -> None:
    tmp, ckpt, old = (run_dir / n for n in ("checkpoint.tmp", "checkpoint", "checkpoint.old"))
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save_weights(tmp / "model.weights.h5")
    np.savez(tmp / "optimizer.npz",
             *[keras.ops.convert_to_numpy(v) for v in optimizer.variables])
    (tmp / "state.json").write_text(json.dumps(
        {"epoch": epoch, "config": config.to_dict(), "final": final}))
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        os.replace(ckpt, old)
    os.replace(tmp, ckpt)
    shutil.rmtree(old, ignore_errors=True)


def _restore_checkpoint(run_dir: Path, model, optimizer, config) -> tuple[int, dict]:
    """Load the newest whole checkpoint into model and optimizer; return (epoch, last metrics)."""
    for name in ("checkpoint", "checkpoint.old"):
        ckpt = run_dir / name
        if not (ckpt / "state.json").exists():
            continue
        state = json.loads((ckpt / "state.json").read_text())
        if state["config"] != config.to_dict():
            raise GradlossError(
                f"The checkpoint in {ckpt} was written for another config ({state['config']}); "
                f"use a new run folder or delete that checkpoint.")
        model.load_weights(ckpt / "model.weights.h5")
        with np.load(ckpt / "optimizer.npz") as saved:
            for i, var in enumerate(optimizer.variables):
                var.assign(saved[f"arr_{i}"])
        log.info("resuming %s from epoch %d", run_dir, state["epoch"])
        return state["epoch"], state["final"]
    return 0, {}
