"""Accuracy under noise: same noise for every model, bounded batches, exact rebuild of images."""
import keras
import numpy as np
import pytest

from gradloss.core.config import InvalidParameterError
from gradloss.engines.compiled import predict
from gradloss.models import build_cnn
from gradloss.core.config import SweepConfig
from gradloss.perturbations.gaussian import NOISE_BLOCK, add_gaussian_noise, noisy_images
from gradloss.perturbations.sweep import accuracy_vs_noise, example_indices, predict_examples


class Spy:
    """A real Keras model and every block of images the sweep asked it to predict, with the
    batch size it asked for (`recording` records them)."""

    by_model: dict[int, "Spy"] = {}  # the spies of the running test, by id of their model

    def __init__(self, seed: int):
        keras.utils.set_random_seed(seed)
        self.model = build_cnn((28, 28, 1), 10)
        self.batches, self.batch_sizes = [], []
        Spy.by_model[id(self.model)] = self


@pytest.fixture(autouse=True)
def recording(monkeypatch):
    """Route the sweep's predictions through the real `compiled.predict`, recording each call
    on the Spy whose model it predicts with."""
    from gradloss.engines import compiled

    real = compiled.predict

    def predict(model, x, batch_size=None):
        spy = Spy.by_model.get(id(model))
        if spy is not None:
            spy.batches.append(np.array(x))
            spy.batch_sizes.append(batch_size)
        return real(model, x, batch_size)

    monkeypatch.setattr(compiled, "predict", predict)
    yield
    Spy.by_model.clear()


@pytest.fixture(scope="module")
def test_set():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2300, 28, 28, 1)).astype(np.float32)  # spans 3 noise blocks
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, len(x))]
    return x, y


def test_sigma_zero_equals_plain_accuracy(test_set):
    """Check that the sweep at sigma 0 is the plain test accuracy, with zero spread."""
    x, y = test_set
    spy = Spy(1)
    plain = np.mean(predict(spy.model, x).argmax(-1) == y.argmax(-1))
    table = accuracy_vs_noise(spy.model, x, y, SweepConfig(sigmas=(0.0, 0.3), draws=2))
    assert list(table.columns) == ["sigma", "accuracy", "accuracy_std"]
    row = table.set_index("sigma").loc[0.0]
    assert row.accuracy == pytest.approx(plain) and row.accuracy_std == 0.0


def test_two_models_see_identical_noise_with_the_same_seed(test_set):
    """Check that two different models get byte-identical noisy inputs, and another seed differs."""
    x, y = test_set
    a, b, c = Spy(1), Spy(2), Spy(1)
    accuracy_vs_noise(a.model, x, y, SweepConfig(sigmas=(0.1, 0.4), draws=2, seed=7))
    accuracy_vs_noise(b.model, x, y, SweepConfig(sigmas=(0.1, 0.4), draws=2, seed=7))
    accuracy_vs_noise(c.model, x, y, SweepConfig(sigmas=(0.1, 0.4), draws=2, seed=8))
    assert len(a.batches) == len(b.batches)
    assert all(np.array_equal(p, q) for p, q in zip(a.batches, b.batches))
    assert not np.array_equal(a.batches[0], c.batches[0])


def test_predict_runs_in_bounded_batches(test_set):
    """Check that the sweep predicts block by block in its batch size, whatever the test-set
    size, and that a prediction call sees at most that many rows at once."""
    from gradloss.engines import compiled

    x, y = test_set
    spy = Spy(1)
    accuracy_vs_noise(spy.model, x, y, SweepConfig(sigmas=(0.0, 0.2), draws=3, batch_size=256))
    sizes = [len(batch) for batch in spy.batches]
    assert max(sizes) <= NOISE_BLOCK and set(spy.batch_sizes) == {256}
    assert [len(rows[0]) for rows, _ in compiled.padded((x,), 256)] == [256] * 8 + [256]
    assert [real for _, real in compiled.padded((x,), 256)][-1] == len(x) - 8 * 256
    # sigma 0 is evaluated once; sigma 0.2 once per draw
    assert sum(sizes) == len(x) * (1 + 3)


def test_progress_counts_every_prediction_up_to_the_total(test_set):
    """Check that on_progress counts each (block, sigma) prediction once and ends at its total."""
    x, y = test_set
    calls = []
    spy = Spy(1)
    accuracy_vs_noise(spy.model, x, y, SweepConfig(sigmas=(0.0, 0.2, 0.4), draws=2),
                      on_progress=lambda done, total: calls.append((done, total)))
    blocks = 3  # 2300 rows in blocks of NOISE_BLOCK
    total = blocks * (1 + 2 * 2)  # sigma 0 once, the two noisy sigmas once per draw
    assert calls == [(i, total) for i in range(1, total + 1)]
    assert sum(len(b) for b in spy.batches) == len(x) * (1 + 2 * 2)  # and nothing predicted twice


def test_noise_is_gaussian_unclipped_and_rebuildable(test_set):
    """Check the noise's spread, that it is not clipped, and that rows can be rebuilt alone."""
    x, _ = test_set
    noisy = add_gaussian_noise(x, 0.3, seed=4, draw=1)
    z = (noisy - x) / 0.3
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert noisy.min() < 0 and noisy.max() > 1
    rows = [0, NOISE_BLOCK - 1, NOISE_BLOCK, 2 * NOISE_BLOCK + 5]
    np.testing.assert_array_equal(noisy_images(x, rows, 0.3, seed=4, draw=1), noisy[rows])
    np.testing.assert_array_equal(add_gaussian_noise(x[990:1010], 0.3, seed=4, draw=1, offset=990),
                                  noisy[990:1010])


def test_examples_use_the_sweeps_noise(test_set):
    """Check that predict_examples predicts exactly on the images the sweep used (draw 0)."""
    x, y = test_set
    spy = Spy(3)
    idx = example_indices(y, k=12, seed=0)
    assert len(idx) == 12 and len(set(y[idx].argmax(-1))) == 10  # spread over the classes
    table = predict_examples(spy.model, x, y, idx, SweepConfig(sigmas=(0.0, 0.5), seed=2))
    expected = predict(spy.model, noisy_images(x, idx, 0.5, seed=2)).argmax(-1)
    got = table[table.sigma == 0.5].prediction.to_numpy()
    np.testing.assert_array_equal(got, expected)
    assert (table.label.to_numpy()[:12] == y[idx].argmax(-1)).all()


def test_negative_sigma_is_refused(test_set):
    """Check that a negative sigma is refused with the parameter named."""
    x, y = test_set
    with pytest.raises(InvalidParameterError, match=r"'sigmas' parameter of SweepConfig .* Got -0.1"):
        accuracy_vs_noise(Spy(1).model, x, y, SweepConfig(sigmas=(0.1, -0.1)))
