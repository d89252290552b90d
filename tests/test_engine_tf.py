"""The TensorFlow engine's steps: the trained step gives the plain double-tape step's numbers."""
import keras
import numpy as np
import tensorflow as tf

from gradloss.engines.tf_engine import TensorFlowEngine, make_baseline_step, make_gradient_step
from gradloss.engines.yardsticks import make_plain_gradient_step
from gradloss.models import build_cnn


def _setup(seed=0):
    keras.utils.set_random_seed(seed)
    model = build_cnn()
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _batch(b=16, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (b, 28, 28, 1)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, b)]
    return tf.constant(x), tf.constant(y)


def test_gradient_step_equals_the_plain_double_tape_step():
    """Check that the engine's step gives the plain step's loss and updated weights."""
    (m1, o1), (m2, o2) = _setup(), _setup()
    fast, plain = make_gradient_step(m1, o1), make_plain_gradient_step(m2, o2)
    for i in range(3):
        x, y = _batch(seed=i)
        loss_fast, correct = fast(x, y)
        loss_plain = plain(x, y)
        np.testing.assert_allclose(float(loss_fast), float(loss_plain), rtol=1e-5)
        assert 0 <= int(correct) <= 16
    for a, b in zip(m1.weights, m2.weights):
        # Adam divides by sqrt(v): float32 round-off of the gradient shows at about 1e-5 here
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=2e-5)


def test_baseline_step_is_categorical_cross_entropy():
    """Check that the baseline step reports the cross-entropy of the pre-update model."""
    model, optimizer = _setup()
    x, y = _batch()
    expected = float(tf.reduce_mean(keras.losses.categorical_crossentropy(y, model(x))))
    loss, correct = make_baseline_step(model, optimizer)(x, y)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_engine_runs_a_chunk_of_steps_and_counts_correct_predictions():
    """Check that run_steps runs k steps and returns k losses and per-step correct counts."""
    model, optimizer = _setup()
    engine = TensorFlowEngine(model, optimizer, "gradient")
    x, y = _batch(b=24)
    xs, ys = np.stack([x.numpy()] * 3), np.stack([y.numpy()] * 3)
    before = [w.numpy().copy() for w in model.weights]
    losses, correct = engine.run_steps(xs, ys)
    assert losses.shape == (3,) and correct.shape == (3,)
    assert np.all(np.isfinite(losses)) and np.all((0 <= correct) & (correct <= 24))
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.weights))
    assert engine.device == "CPU"
