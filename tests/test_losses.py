"""Every objective's one definition (gradloss.objectives.losses), run on TensorFlow, against its
plain definition and numerical derivatives; the seed's double-tape form agrees with it."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from gradloss.engines.yardsticks import gradient_loss
from gradloss.objectives import losses, shim
from gradloss.objectives.losses import on_model, per_example_mse


def _on(loss):
    """The library loss as loss(model, x, y) -> (value, p)."""
    def apply(model, x, y, *args):
        value, (p, _) = loss(on_model(model), x, y, *args)
        return value, p
    return apply


def _softmax_model(d: int, k: int, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((d,), dtype="float64"), keras.layers.Dense(
        k, activation="softmax", dtype="float64",
        kernel_initializer=keras.initializers.RandomNormal(stddev=1.0),
        bias_initializer=keras.initializers.RandomNormal(stddev=0.5))])


def _batch(b: int, d: int, k: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (b, d))
    y = np.eye(k)[rng.integers(0, k, b)]
    return tf.constant(x), tf.constant(y)


def _closed_form(w: np.ndarray, bias: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """G for p = softmax(x W + b), S = sum_i mean_k (y - p)^2, derived by hand."""
    z = x @ w + bias
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    k = y.shape[1]
    ds_dp = -2 * (y - p) / k                                   # (B, K)
    ds_dz = p * ds_dp - p * np.sum(p * ds_dp, 1, keepdims=True)  # softmax Jacobian, row by row
    ds_dx = ds_dz @ w.T                                        # (B, D)
    ds_dy = 2 * (y - p) / k
    return float(np.mean(ds_dx ** 2) + np.mean(ds_dy ** 2))


def test_gradient_loss_matches_closed_form():
    """Check that the taped gradient loss equals the hand-derived one on a dense softmax layer."""
    model = _softmax_model(6, 4)
    x, y = _batch(5, 6, 4)
    taped = gradient_loss(lambda xy: per_example_mse(xy[1], model(xy[0])))([x, y])
    w, b = (v.numpy() for v in model.weights)
    np.testing.assert_allclose(float(taped), _closed_form(w, b, x.numpy(), y.numpy()),
                               rtol=1e-9, atol=1e-15)


def test_closed_y_form_equals_taped_form():
    """Check that writing dS/dy = 2(y - p)/K out gives the same value as taping y."""
    model = _softmax_model(6, 4, seed=3)
    x, y = _batch(7, 6, 4, seed=4)
    taped = gradient_loss(lambda xy: per_example_mse(xy[1], model(xy[0])))([x, y])
    closed, p = _on(losses.gradient_loss)(model, x, y)
    np.testing.assert_allclose(float(closed), float(taped), rtol=1e-12)
    np.testing.assert_allclose(p.numpy(), model(x).numpy())


def _hidden_model() -> keras.Model:
    keras.utils.set_random_seed(7)
    return keras.Sequential([
        keras.Input((4,), dtype="float64"),  # float64 end to end: differences need it
        keras.layers.Dense(5, activation="tanh", dtype="float64"),
        keras.layers.Dense(3, activation="softmax", dtype="float64")])


def test_outer_gradient_matches_central_differences():
    """Check that d(gradient loss)/d(weights) from the outer tape matches finite differences."""
    model = _hidden_model()
    x, y = _batch(6, 4, 3, seed=9)
    loss_of = gradient_loss(lambda xy: per_example_mse(xy[1], model(xy[0])))
    with tf.GradientTape() as outer:
        value = loss_of([x, y])
    grads = outer.gradient(value, model.trainable_variables)
    eps = 1e-6
    rng = np.random.default_rng(0)
    for var, grad in zip(model.trainable_variables, grads):
        flat = var.numpy().ravel()
        for i in rng.choice(flat.size, size=min(4, flat.size), replace=False):
            shifted = []
            for sign in (1, -1):
                trial = flat.copy()
                trial[i] += sign * eps
                var.assign(trial.reshape(var.shape))
                shifted.append(float(loss_of([x, y])))
            var.assign(flat.reshape(var.shape))
            numeric = (shifted[0] - shifted[1]) / (2 * eps)
            np.testing.assert_allclose(grad.numpy().ravel()[i], numeric, rtol=1e-5, atol=1e-10)


# --- the other objectives: plain NumPy definitions on a dense softmax layer ----------------

def _softmax(x, w, bias):
    z = x @ w + bias
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def _plain_cross_entropy(w, bias, x, y):
    return float(np.mean(-np.sum(y * np.log(_softmax(x, w, bias)), 1)))


def _plain_input_gradient(w, bias, x, y, weight):
    """CE + weight * mean_i ||dCE_i/dx_i||^2; for softmax(x W + b), dCE_i/dx_i = (p_i - y_i) W^T."""
    dx = (_softmax(x, w, bias) - y) @ w.T                     # (B, D)
    return _plain_cross_entropy(w, bias, x, y) + weight * float(np.mean(np.sum(dx ** 2, 1)))


def _plain_mse(w, bias, x, y):
    return float(np.mean(np.mean((y - _softmax(x, w, bias)) ** 2, 1)))


def _plain_mse_penalty(w, bias, x, y, weight):
    """MSE + weight * mean_b ||dS_b/dx_b||^2 for p = softmax(x W + b), derived by hand."""
    z = x @ w + bias
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    k = y.shape[1]
    ds_dp = -2 * (y - p) / k
    ds_dz = p * ds_dp - p * np.sum(p * ds_dp, 1, keepdims=True)
    ds_dx = ds_dz @ w.T
    return float(np.mean(np.mean((y - p) ** 2, 1)) + weight * np.mean(np.sum(ds_dx ** 2, 1)))


NOISE = np.random.default_rng(5).normal(0, 0.1, (5, 6))  # one fixed draw for noise_augmented
PLAIN = {  # objective -> (library loss(model, x, y), plain definition(w, b, x, y))
    "baseline": (_on(losses.cross_entropy), _plain_cross_entropy),
    "noise_augmented": (lambda m, x, y: _on(losses.cross_entropy)(m, x + NOISE, y),
                        lambda w, b, x, y: _plain_cross_entropy(w, b, x + NOISE, y)),
    "input_gradient": (lambda m, x, y: _on(losses.input_gradient_penalty)(m, x, y, 0.7),
                       lambda w, b, x, y: _plain_input_gradient(w, b, x, y, 0.7)),
    "mse": (_on(losses.mse), _plain_mse),
    "gradient": (_on(losses.gradient_loss), _closed_form),
    "mse_penalty": (lambda m, x, y: _on(losses.mse_input_gradient_penalty)(m, x, y, 0.7),
                    lambda w, b, x, y: _plain_mse_penalty(w, b, x, y, 0.7)),
}


@pytest.mark.parametrize("objective", list(PLAIN))
def test_objective_value_matches_its_plain_definition(objective):
    """Check that each objective's TensorFlow loss equals its definition written out in NumPy."""
    model = _softmax_model(6, 4, seed=11)
    x, y = _batch(5, 6, 4, seed=12)
    loss_of, plain = PLAIN[objective]
    value, p = loss_of(model, x, y)
    w, b = (v.numpy() for v in model.weights)
    np.testing.assert_allclose(float(value), plain(w, b, x.numpy(), y.numpy()), rtol=1e-9)
    assert p.shape == (5, 4)


@pytest.mark.parametrize("objective", list(PLAIN))
def test_objective_weight_gradients_match_differences_of_the_plain_definition(objective):
    """Check that the taped weight gradients equal central differences of the NumPy definition."""
    model = _softmax_model(6, 4, seed=13)
    x, y = _batch(5, 6, 4, seed=14)
    loss_of, plain = PLAIN[objective]
    with tf.GradientTape() as tape:
        value, _ = loss_of(model, x, y)
    grads = [g.numpy() for g in tape.gradient(value, model.trainable_variables)]
    params = [v.numpy() for v in model.weights]  # [W (6, 4), b (4,)]
    eps = 1e-6
    for which, grad in enumerate(grads):
        for i in range(params[which].size):
            shifted = []
            for sign in (1, -1):
                trial = [a.copy() for a in params]
                trial[which].flat[i] += sign * eps
                shifted.append(plain(*trial, x.numpy(), y.numpy()))
            numeric = (shifted[0] - shifted[1]) / (2 * eps)
            np.testing.assert_allclose(grad.flat[i], numeric, rtol=1e-5, atol=1e-9)


def test_input_gradient_norms_are_per_example_euclidean_norms():
    """Check that input_gradient_norms gives ||(p_i - y_i) W^T||_2 for each example."""
    model = _softmax_model(6, 4, seed=15)
    x, y = _batch(5, 6, 4, seed=16)
    w, b = (v.numpy() for v in model.weights)
    expected = np.linalg.norm((_softmax(x.numpy(), w, b) - y.numpy()) @ w.T, axis=1)
    np.testing.assert_allclose(losses.input_gradient_norms(on_model(model), x, y).numpy(), expected,
                               rtol=1e-9)


def test_training_noise_repeats_for_a_seed_and_step_and_changes_with_either():
    """Check that the training noise is a function of (seed, step) with the asked-for sigma."""
    draw = lambda seed, step: shim.training_noise((200, 28, 28, 1), 0.3, seed, step).numpy()  # noqa: E731
    first = draw(0, 5)
    np.testing.assert_array_equal(first, draw(0, 5))
    assert not np.allclose(first, draw(0, 6)) and not np.allclose(first, draw(1, 5))
    assert abs(first.mean()) < 0.01 and first.std() == pytest.approx(0.3, rel=0.02)


def test_the_gradient_loss_is_the_mse_family_member_at_lambda_star():
    """Check the identity G = (4/K^2) [MSE + lambda* mean_b ||dS_b/dx_b||^2], lambda* = K^2/(4D):
    at lambda*, the MSE family's weight gradients are exactly the gradient loss's times K^2/4
    (and so is its value)."""
    model = _hidden_model()
    x, y = _batch(9, 4, 3, seed=21)
    k, d = y.shape[1], x.shape[1]
    weight = losses.gradient_equivalent_weight(k, d)
    assert weight == k * k / (4 * d)
    values, grads = [], []
    for loss in (losses.gradient_loss,
                 lambda f, x_, y_: losses.mse_input_gradient_penalty(f, x_, y_, weight)):
        with tf.GradientTape() as tape:
            value, _ = loss(on_model(model), x, y)
        values.append(float(value))
        grads.append([g.numpy() for g in tape.gradient(value, model.trainable_variables)])
    np.testing.assert_allclose(values[1], k * k / 4 * values[0], rtol=1e-12)
    for family, gradient in zip(grads[1], grads[0]):
        np.testing.assert_allclose(family, k * k / 4 * gradient, rtol=1e-10, atol=1e-15)
