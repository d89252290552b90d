"""TensorFlow engine: compiled training steps for every objective.

The losses are the objectives' one definition (`objectives.losses`); this is the one place that
knows TensorFlow's training mechanics (the outer tape, tf.function, graph loops over a chunk of
steps). The training loop only sees the `Engine` contract (`training.loop`).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from gradloss.engines.device import device_name
from gradloss.objectives import losses, shim


def _correct(y, p):
    return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(y, -1), tf.argmax(p, -1)), tf.int32))


def make_step(model: keras.Model, optimizer: keras.optimizers.Optimizer, objective: str,
              params: dict | None = None, seed: int = 0, compiled: bool = True):
    """Return step(x, y) -> (loss, number correct) of `objective` that updates the weights.

    params: the objective's own parameters (`TrainConfig.objective_params`). "noise_augmented"
    adds N(0, train_noise_sigma^2) noise to x, drawn from (seed, optimizer iteration): the
    iteration count lives in the checkpoint, so a resumed run draws the same noise.
    """
    variables = model.trainable_variables
    loss_of = losses.loss_function(objective, params)
    forward = losses.on_model(model)
    sigma = (params or {}).get("train_noise_sigma") if objective == "noise_augmented" else None

    def step(x, y):
        if sigma is not None:
            x = x + shim.training_noise(tf.shape(x), sigma, seed, optimizer.iterations)
        with tf.GradientTape() as outer:  # for the gradient loss it records the inner tape too
            loss, (p, _) = loss_of(forward, x, y)
        grads = outer.gradient(loss, variables)
        optimizer.apply(grads, variables)
        return loss, _correct(y, p)
    return tf.function(step) if compiled else step


def make_chunk(step, x_batch_shape: tuple, y_batch_shape: tuple):
    """Compile k steps into one graph loop: chunk(xs, ys) with xs (k, B, ...) -> losses, correct (k,).

    One call per chunk instead of one per step saves Python dispatch (bench/README.md).
    """
    # k is left open, so the last, shorter chunk of an epoch does not retrace
    signature = [tf.TensorSpec((None, *x_batch_shape), tf.float32),
                 tf.TensorSpec((None, *y_batch_shape), tf.float32)]

    @tf.function(input_signature=signature)
    def chunk(xs, ys):
        n = tf.shape(xs)[0]
        losses = tf.TensorArray(tf.float32, size=n)
        correct = tf.TensorArray(tf.int32, size=n)
        for i in tf.range(n):  # autograph: a graph while-loop, steps strictly in order
            loss, c = step(xs[i], ys[i])
            losses, correct = losses.write(i, loss), correct.write(i, c)
        return losses.stack(), correct.stack()
    return chunk


class TensorFlowEngine:
    """Runs training steps of one objective on a Keras model with the TensorFlow backend."""

    chunk_steps = 10  # steps run between host syncs (float() of the losses)

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, objective: str,
                 params: dict | None = None, seed: int = 0):
        optimizer.build(model.trainable_variables)  # create slots eagerly, outside tf.function
        self._step = make_step(model, optimizer, objective, params, seed, compiled=False)
        self._chunk = None  # compiled at the first call, when the batch shape is known
        self.device = device_name("tensorflow")

    def run_steps(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run len(x) steps; x: (k, B, H, W, C), y: (k, B, K). Returns losses (k,) and correct (k,)."""
        if self._chunk is None:
            self._chunk = make_chunk(self._step, x.shape[1:], y.shape[1:])
        losses, correct = self._chunk(tf.convert_to_tensor(x), tf.convert_to_tensor(y))
        return losses.numpy().astype(np.float64), correct.numpy().astype(np.int64)

    def sync_to_model(self) -> None:
        """Weights already live in the model's variables; nothing to copy."""
