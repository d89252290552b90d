"""The training loop: learning, seeding, resuming, cancelling, diverging, reporting."""
import dataclasses
import json

import numpy as np
import pytest

from gradloss.core.config import TrainConfig
from gradloss.data import load_dataset
from gradloss.core.errors import GradlossError, TrainingDiverged
from gradloss.engines.compiled import predict
from gradloss.training.loop import load_model, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _config(objective: str, **kw) -> TrainConfig:
    kw = {"dataset": "digits", "epochs": 2, "batch_size": 50, "seed": 3, **kw}
    return TrainConfig(objective=objective, **kw)


@pytest.mark.parametrize("objective", ["gradient", "baseline"])
def test_short_run_beats_chance_and_saves_a_loadable_model(objective, digits, tmp_path):
    """Check that two epochs on digits reach well above chance and the saved model predicts."""
    progress, rows = [], []
    result = train(_config(objective, epochs=3), tmp_path, dataset=digits,
                   on_progress=progress.append, on_metrics=rows.extend)
    assert result.status == "done" and result.epochs_done == 3
    assert result.final.test_accuracy > 0.6  # chance is 0.1
    model = load_model(result.model_path)
    acc = np.mean(predict(model, digits.x_test).argmax(-1) == digits.y_test.argmax(-1))
    assert acc == pytest.approx(result.final.test_accuracy)
    # progress only moves forward and ends complete
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    steps = [r.step for r in rows if r.name == "loss"]
    assert steps == list(range(1, 3 * (1437 // 50) + 1))
    per_epoch = {r.name for r in rows if r.name != "loss"}
    assert per_epoch == {"epoch_loss", "train_accuracy", "test_accuracy", "step_ms", "input_grad_norm"}
    assert 0 < result.final.input_grad_norm < 100


def test_same_seed_gives_the_same_run(digits, tmp_path):
    """Check that two runs of one config agree, and another seed differs."""
    runs = [train(_config("gradient", epochs=1, seed=s), tmp_path / f"r{i}", dataset=digits)
            for i, s in enumerate([5, 5, 6])]
    assert runs[0].final.epoch_loss == runs[1].final.epoch_loss
    assert runs[0].final.test_accuracy == runs[1].final.test_accuracy
    assert runs[0].final.epoch_loss != runs[2].final.epoch_loss


@pytest.mark.parametrize("objective", ["baseline", "noise_augmented"])
def test_cancelled_run_resumes_from_its_checkpoint_to_the_same_result(objective, digits, tmp_path):
    """Check that cancel stops the run, and a second call resumes to the uninterrupted result
    (for noise_augmented: with the training noise the uninterrupted run drew)."""
    config = _config(objective, epochs=3)
    whole = train(config, tmp_path / "whole", dataset=digits)

    epochs_seen = []
    in_epoch_2 = lambda: bool(epochs_seen) and epochs_seen[-1] >= 2  # noqa: E731
    cut = train(config, tmp_path / "cut", dataset=digits, should_cancel=in_epoch_2,
                on_progress=lambda p: epochs_seen.append(p.epoch))
    assert cut.status == "cancelled" and cut.model_path is None
    assert cut.epochs_done in (1, 2)  # stopped in epoch 2, or right after it

    rows = []
    resumed = train(config, tmp_path / "cut", dataset=digits, on_metrics=rows.extend)
    assert resumed.status == "done"
    assert min(r.epoch for r in rows) == cut.epochs_done + 1  # earlier epochs not re-run
    assert resumed.final.to_dict() == pytest.approx({**whole.final.to_dict(),
                                                     "step_ms": resumed.final.step_ms})


def test_an_epochs_metrics_are_handed_over_before_its_checkpoint(digits, tmp_path, monkeypatch):
    """Check that a crash right after an epoch's checkpoint loses none of that epoch's metrics:
    the resumed run starts after the checkpoint and would never record them again."""
    from gradloss.training import checkpoint

    save = checkpoint.save

    def save_then_crash(run_dir, model, optimizer, config, epoch, final):
        save(run_dir, model, optimizer, config, epoch, final)
        if epoch == 2:
            raise RuntimeError("killed just after the checkpoint")

    monkeypatch.setattr(checkpoint, "save", save_then_crash)
    rows = []
    with pytest.raises(RuntimeError, match="killed"):
        train(_config("baseline", epochs=3), tmp_path, dataset=digits, on_metrics=rows.extend)
    steps = [r.step for r in rows if r.name == "loss"]
    assert steps == list(range(1, 2 * (1437 // 50) + 1))
    assert [r.epoch for r in rows if r.name == "epoch_loss"] == [1, 2]


def test_checkpoint_of_another_config_is_refused(digits, tmp_path):
    """Check that a run folder is not resumed with a different config."""
    train(_config("baseline", epochs=1), tmp_path, dataset=digits)
    with pytest.raises(GradlossError, match="written for another config"):
        train(_config("baseline", epochs=1, seed=99), tmp_path, dataset=digits)


def test_nan_loss_raises_training_diverged(digits, tmp_path):
    """Check that a non-finite loss stops the run with a message naming the step."""
    x = digits.x_train.copy()
    x[:] = np.nan
    broken = dataclasses.replace(digits, x_train=x)
    rows = []
    with pytest.raises(TrainingDiverged, match=r"became nan at step \d+ \(epoch 1\); try a smaller"):
        train(_config("gradient"), tmp_path, dataset=broken, on_metrics=rows.extend)
    assert all(np.isfinite(r.value) for r in rows)  # what was recorded stays usable


def test_engine_must_match_the_keras_backend(digits, tmp_path):
    """Check that asking for the jax engine in a TensorFlow process names the fix."""
    with pytest.raises(GradlossError, match="KERAS_BACKEND=jax"):
        train(_config("gradient", engine="jax"), tmp_path, dataset=digits)


def test_a_config_of_numpy_numbers_trains_and_writes_its_checkpoint(digits, tmp_path):
    """Check that a TrainConfig built from NumPy scalars trains to done and checkpoints (its
    checkpoint's JSON raised a TypeError after the epoch, leaving only checkpoint.tmp)."""
    config = TrainConfig(dataset="digits", epochs=np.int64(1), batch_size=np.int64(50),
                         train_size=np.int64(200), seed=np.int64(3), learning_rate=np.float32(0.001))
    result = train(config, tmp_path, dataset=digits)
    assert result.status == "done" and result.model_path.exists()
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert TrainConfig.from_dict(state["config"]) == config
    assert not (tmp_path / "checkpoint.tmp").exists()
