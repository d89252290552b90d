"""TensorFlow forms of the objectives' losses (the registry is `gradloss.objectives`).

The gradient loss trains the weights so that every data point is a stationary point of S. For a base loss S(x, y, theta) the gradient loss is

    G(theta) = mean((dS/dx)^2) + mean((dS/dy)^2),

where S is the sum of the per-example base losses over the batch, so dS/dx_i only involves
example i. The base loss here is the mean squared error between the one-hot target y and the
softmax output p, averaged over the K classes. Minimising G needs second derivatives: an inner
tape for dS/d(x, y) recorded inside an outer tape for dG/dtheta.

`gradient_loss` is the generic, definition-following form (any list of inputs, every gradient
taped). `gradient_loss_closed_y` is the same value with dS/dy = 2 (y - p) / K written out, which
saves taping y; the TensorFlow engine trains with it and the tests check both agree.

The other objectives: `cross_entropy` (baseline; noise_augmented on x plus `training_noise`),
`mse` (S alone) and `input_gradient_penalty` (cross-entropy plus lambda times the mean squared
norm of each example's input gradient). `input_gradient_norms` is what every run records.
"""
from __future__ import annotations

from typing import Callable, Sequence

import keras
import tensorflow as tf


def per_example_mse(y_true, y_pred):
    """Mean squared error per example, averaged over classes: (B, K) -> (B,)."""
    return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)


def gradient_loss(loss_fn: Callable[[Sequence[tf.Tensor]], tf.Tensor]):
    """Return f(inputs) = sum over inputs of mean((dS/d input)^2), S = sum of loss_fn(inputs).

    `loss_fn(inputs)` returns per-example losses (B,). The result stays differentiable with
    respect to any variables `loss_fn` reads (run f inside an outer GradientTape).
    """
    def f(inputs: Sequence[tf.Tensor]) -> tf.Tensor:
        inputs = list(inputs)
        with tf.GradientTape() as inner:
            inner.watch(inputs)                  # x and y are tensors, not variables
            s = tf.reduce_sum(loss_fn(inputs))   # S: per-example losses summed
        grads = inner.gradient(s, inputs)        # [(B, H, W, C), (B, K)]
        return tf.add_n([tf.reduce_mean(tf.square(g)) for g in grads])
    return f


def gradient_loss_closed_y(model: keras.Model, x: tf.Tensor, y: tf.Tensor, training: bool = True):
    """Gradient loss of MSE(y, model(x)) with dS/dy in closed form; returns (loss, p).

    dS/dy = 2 (y - p) / K, so mean((dS/dy)^2) = 4 mean((y - p)^2) / K^2; only x is taped.
    """
    with tf.GradientTape() as inner:
        inner.watch(x)
        p = model(x, training=training)                       # (B, K)
        s = tf.reduce_sum(per_example_mse(y, p))
    dx = inner.gradient(s, x)                                 # (B, H, W, C)
    k = tf.cast(tf.shape(y)[-1], y.dtype)
    dy_term = 4.0 * tf.reduce_mean(tf.square(y - p)) / (k * k)
    return tf.reduce_mean(tf.square(dx)) + dy_term, p


# --- the other objectives --------------------------------------------------------------------
# Each returns (loss, p): the batch's scalar loss and the softmax output (B, K) it came from.

def cross_entropy(model: keras.Model, x: tf.Tensor, y: tf.Tensor, training: bool = True):
    """Mean categorical cross-entropy over the batch ("baseline"; "noise_augmented" on noisy x)."""
    p = model(x, training=training)
    return tf.reduce_mean(keras.losses.categorical_crossentropy(y, p)), p


def mse(model: keras.Model, x: tf.Tensor, y: tf.Tensor, training: bool = True):
    """The base loss S alone, as a batch mean: mean over examples of mean_k (y_k - p_k)^2."""
    p = model(x, training=training)
    return tf.reduce_mean(per_example_mse(y, p)), p


def input_gradients(model: keras.Model, x: tf.Tensor, y: tf.Tensor, training: bool = False):
    """Per-example dCE_i/dx_i (B, H, W, C), and the per-example CE (B,) and p (B, K).

    The model treats examples independently (no batch statistics), so the gradient of the
    summed CE with respect to the batch holds each example's own gradient in its row.
    """
    with tf.GradientTape() as inner:
        inner.watch(x)
        p = model(x, training=training)
        ce = keras.losses.categorical_crossentropy(y, p)     # (B,)
        total = tf.reduce_sum(ce)
    return inner.gradient(total, x), ce, p


def input_gradient_penalty(model: keras.Model, x: tf.Tensor, y: tf.Tensor, weight: float,
                           training: bool = True):
    """Cross-entropy plus weight * mean_i ||dCE_i/dx_i||_2^2 (double backpropagation).

    CE_i is example i's cross-entropy; the squared Euclidean norm sums over all H*W*C pixels of
    example i, the mean is over the B examples. Run inside an outer tape for the weight gradients.
    """
    dx, ce, p = input_gradients(model, x, y, training=training)
    penalty = tf.reduce_mean(tf.reduce_sum(tf.square(dx), axis=tf.range(1, tf.rank(dx))))
    return tf.reduce_mean(ce) + weight * penalty, p


def input_gradient_norms(model: keras.Model, x, y) -> tf.Tensor:
    """||dCE_i/dx_i||_2 per example (B,): the loss sensitivity each epoch records."""
    dx, _, _ = input_gradients(model, tf.convert_to_tensor(x), tf.convert_to_tensor(y))
    return tf.sqrt(tf.reduce_sum(tf.square(dx), axis=tf.range(1, tf.rank(dx))))


def training_noise(shape, sigma: float, seed: int, step) -> tf.Tensor:
    """N(0, sigma^2) noise for training step `step` (the optimizer's iteration count) of run `seed`.

    Stateless: the draw depends on (seed, step) only, so a run repeats exactly and a resumed
    run draws what the uninterrupted one would have.
    """
    pair = tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])
    return sigma * tf.random.stateless_normal(shape, seed=pair)


def loss_function(objective: str, params: dict | None = None):
    """Return loss(model, x, y) -> (loss, p) of an objective that sees the batch as given.

    "noise_augmented" is `cross_entropy`: its step adds `training_noise` to x first.
    """
    params = params or {}
    if objective == "gradient":
        return gradient_loss_closed_y
    if objective in ("baseline", "noise_augmented"):
        return cross_entropy
    if objective == "mse":
        return mse
    if objective == "input_gradient":
        weight = float(params["penalty_weight"])
        return lambda model, x, y: input_gradient_penalty(model, x, y, weight)
    raise ValueError(f"Unknown objective {objective!r}.")
