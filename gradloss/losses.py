"""The gradient loss: train the weights so that every data point is a stationary point of S.

For a base loss S(x, y, theta) the gradient loss is

    G(theta) = mean((dS/dx)^2) + mean((dS/dy)^2),

where S is the sum of the per-example base losses over the batch, so dS/dx_i only involves
example i. The base loss here is the mean squared error between the one-hot target y and the
softmax output p, averaged over the K classes. Minimising G needs second derivatives: an inner
tape for dS/d(x, y) recorded inside an outer tape for dG/dtheta.

`gradient_loss` is the generic, definition-following form (any list of inputs, every gradient
taped). `gradient_loss_closed_y` is the same value with dS/dy = 2 (y - p) / K written out, which
saves taping y; the TensorFlow engine trains with it and the tests check both agree.
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
