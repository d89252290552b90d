"""Yardsticks: plain forms of the training steps that benchmarks and tests compare against.

Nothing here is used to train. `make_plain_gradient_step` is the definition-following
double-tape step (both x and y taped, as in the seed code); the JAX yardstick is
`gradloss.engines.jax_engine.make_step(..., nested=True)` (jax.grad of jax.grad).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from gradloss.objectives.tf_losses import gradient_loss, per_example_mse


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
