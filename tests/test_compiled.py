"""Compiled measurements: one trace per architecture, each model measured at its own weights;
the per-epoch accuracy and input-gradient norm in one pass."""
import keras
import numpy as np
import pytest

from gradloss.data import load_dataset
from gradloss.engines import compiled
from gradloss.models import build_cnn, build_mlp


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.flat, self.out = keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")

    def call(self, x):
        return self.out(self.flat(x))


def test_one_compiled_prediction_serves_every_model_of_an_architecture(digits):
    """Check that two builds of one architecture share one key and one compiled function, yet
    each predicts with its own weights (as its own call gives); another architecture and a
    subclassed model get their own."""
    x = digits.x_test[:37]
    keras.utils.set_random_seed(1)
    a = build_cnn()
    keras.utils.set_random_seed(2)
    b = build_cnn()
    mlp = build_mlp((28, 28, 1), 10)
    sub = Subclassed()
    sub(x[:1])
    assert compiled.architecture_key(a) == compiled.architecture_key(b) is not None
    assert compiled.architecture_key(mlp) not in (None, compiled.architecture_key(a))
    assert compiled.architecture_key(build_cnn((28, 28, 1), 5)) != compiled.architecture_key(a)
    assert compiled.architecture_key(sub) is None
    for model in (a, b, mlp, sub):
        np.testing.assert_allclose(compiled.predict(model, x), model(x).numpy(), atol=1e-6)
    assert not np.allclose(compiled.predict(a, x), compiled.predict(b, x))
    shared = [k for k in compiled._SHARED if k[1] is compiled._probabilities]
    assert sum(k[0] == compiled.architecture_key(a) for k in shared) == 1


@pytest.mark.parametrize("first", [50, 500])
def test_epoch_measures_give_the_test_accuracy_and_the_input_gradient_norm(digits, monkeypatch,
                                                                           first):
    """Check the one-pass measurement against its definitions: accuracy over the whole test set
    (with the norm's images fewer than the test set, and all of it), the norm's mean over the
    first INPUT_GRAD_IMAGES; an accuracy measured on the device is kept."""
    from gradloss.objectives.losses import input_gradient_norms, on_model
    from gradloss.training import loop

    monkeypatch.setattr(loop, "INPUT_GRAD_IMAGES", first)
    keras.utils.set_random_seed(3)
    model = build_cnn()
    accuracy, norm = loop.epoch_measures(model, digits)
    expected = np.mean(np.argmax(model(digits.x_test).numpy(), -1)
                       == np.argmax(digits.y_test, -1))
    assert accuracy == pytest.approx(expected, abs=1e-12)
    n = min(first, len(digits.x_test))
    norms = input_gradient_norms(on_model(model, training=False),
                                 *(keras.ops.convert_to_tensor(a[:n])
                                   for a in (digits.x_test, digits.y_test))).numpy()
    assert norm == pytest.approx(float(np.mean(norms)), rel=1e-5)
    assert loop.epoch_measures(model, digits, accuracy=0.25)[0] == 0.25
