"""Yardsticks: plain forms of the training steps that benchmarks and tests compare against.

Nothing here is used to train. `gradient_loss` is the gradient loss as the seed code defines it
(both x and y taped) and `make_plain_gradient_step` its double-tape step; the objectives' own
definition (`objectives.losses.gradient_loss`, dS/dy in closed form) agrees with it in the tests.
The JAX yardstick is `engines.jax_engine.make_step(..., nested=True)` (jax.grad of jax.grad).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from gradloss.objectives.losses import per_example_mse


def gradient_loss(loss_fn):
    """Return f(inputs) = sum over inputs of mean((dS/d input)^2), S = sum of loss_fn(inputs):
    the definition as the seed code writes it, every input taped (x and y alike).

    `loss_fn(inputs)` returns per-example losses (B,). The result stays differentiable with
    respect to any variables `loss_fn` reads (run f inside an outer GradientTape)."""
    def f(inputs):
        inputs = list(inputs)
        with tf.GradientTape() as inner:
            inner.watch(inputs)                  # x and y are tensors, not variables
            s = tf.reduce_sum(loss_fn(inputs))   # S: per-example losses summed
        grads = inner.gradient(s, inputs)        # [(B, H, W, C), (B, K)]
        return tf.add_n([tf.reduce_mean(tf.square(g)) for g in grads])
    return f


def make_plain_gradient_step(model: keras.Model, optimizer: keras.optimizers.Optimizer):
    """The definition-following double-tape step (both x and y taped); the benchmark's yardstick."""
    variables = model.trainable_variables
    loss_of = gradient_loss(lambda xy: per_example_mse(xy[1], model(xy[0], training=True)))

    @tf.function
    def step(x, y):
        with tf.GradientTape() as outer:
            loss = loss_of([x, y])
        grads = outer.gradient(loss, variables)
        optimizer.apply(grads, variables)
        return loss
    return step
