"""The gradient loss against hand-derived and numerical derivatives."""
import keras
import numpy as np
import tensorflow as tf

from gradloss.objectives.tf_losses import gradient_loss, gradient_loss_closed_y, per_example_mse


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
    closed, p = gradient_loss_closed_y(model, x, y)
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
