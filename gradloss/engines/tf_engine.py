"""TensorFlow engine: compiled training steps for every objective.

The losses are the objectives' one definition (`objectives.losses`); this is the one place that
knows TensorFlow's training mechanics (the outer tape, tf.function, graph loops over a chunk of
steps). The training loop only sees the `Engine` contract (`training.loop`).

Compiling a chunk of steps costs about a second, as much as ten steps of a small run. A process
that trains run after run (the worker's training process) therefore keeps each compiled chunk
as a `_Program`, with a model and optimizer of its own, for every later run of the same
architecture, optimizer and objective. The run's strength, noise seed and learning rate are
variables of the program, not constants of its graph. A run's weights and optimizer state are
copied in when its engine starts and back into its Keras model at each `sync_to_model`: the
same steps and numbers as a program compiled for the run alone.
"""
from __future__ import annotations

import json
import threading
import weakref

import keras
import numpy as np
import tensorflow as tf

from gradloss.engines.compiled import architecture_key
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
    params may hold variables and `seed` be one (a `_Program`'s), read at each step.
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


class _Program:
    """One compiled chunk of steps for an architecture, optimizer and objective, on a model and
    optimizer of its own (same architecture and config as the run's), reused run after run.

    Each of the objective's parameters is a variable, except a weight of 0, which selects the
    unpenalised loss (`losses.loss_function`) and so belongs to the program's key."""

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer,
                 objective: str, params: dict):
        self.model = keras.models.clone_model(model)
        self.optimizer = type(optimizer).from_config(optimizer.get_config())
        self.optimizer.build(self.model.trainable_variables)
        self.knobs = {name: tf.Variable(float(value), trainable=False, dtype=tf.float32)
                      for name, value in params.items() if value != 0}
        self.seed = tf.Variable(0, trainable=False, dtype=tf.int64)
        step_params = {name: self.knobs.get(name, 0.0) for name in params}
        self.step = make_step(self.model, self.optimizer, objective, step_params, self.seed,
                              compiled=False)
        self.chunks: dict[tuple, tf.types.experimental.GenericFunction] = {}

    def chunk(self, x_batch_shape: tuple, y_batch_shape: tuple):
        key = (tuple(x_batch_shape), tuple(y_batch_shape))
        if key not in self.chunks:
            self.chunks[key] = make_chunk(self.step, x_batch_shape, y_batch_shape)
        return self.chunks[key]

    def load(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, params: dict,
             seed: int) -> None:
        """Take on a run: its weights, optimizer state (learning rate and step count included),
        parameters and seed."""
        _copy(model.variables, self.model.variables)
        _copy(optimizer.variables, self.optimizer.variables)
        for name, knob in self.knobs.items():
            knob.assign(float(params[name]))
        self.seed.assign(int(seed))

    def store(self, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
        """Write the trained state back into the run's model and optimizer."""
        _copy(self.model.variables, model.variables)
        _copy(self.optimizer.variables, optimizer.variables)


def _copy(sources, targets) -> None:
    for source, target in zip(sources, targets, strict=True):
        target.assign(source.value)


_FREE: dict[tuple, list[_Program]] = {}  # programs not in use, by key: per process
_LOCK = threading.Lock()


def _program_key(model, optimizer, objective: str, params: dict) -> tuple | None:
    architecture = architecture_key(model)
    if architecture is None:
        return None
    config = {k: v for k, v in optimizer.get_config().items() if k not in ("name", "learning_rate")}
    zeros = tuple(sorted(name for name, value in params.items() if value == 0))
    return (architecture, type(optimizer).__name__, json.dumps(config, sort_keys=True, default=str),
            objective, tuple(sorted(params)), zeros)


def _acquire(model, optimizer, objective: str, params: dict) -> tuple[_Program | None, tuple | None]:
    """A free program for this run, or a new one; (None, None) for an architecture that cannot
    be cloned (a subclassed model): such a run compiles its own steps."""
    key = _program_key(model, optimizer, objective, params)
    if key is None:
        return None, None
    with _LOCK:
        free = _FREE.get(key)
        if free:
            return free.pop(), key
    try:
        return _Program(model, optimizer, objective, params), key
    except (TypeError, ValueError, NotImplementedError):  # clone_model refused the architecture
        return None, None


def _release(key: tuple, program: _Program) -> None:
    with _LOCK:
        _FREE.setdefault(key, []).append(program)


class TensorFlowEngine:
    """Runs training steps of one objective on a Keras model with the TensorFlow backend."""

    chunk_steps = 10  # steps run between host syncs (float() of the losses)

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, objective: str,
                 params: dict | None = None, seed: int = 0, reuse: bool = True):
        """reuse: train on a `_Program` shared with earlier and later runs of this process (its
        state copied in here and out at `sync_to_model`); False: compile steps on `model`."""
        optimizer.build(model.trainable_variables)  # create slots eagerly, outside tf.function
        self._model, self._optimizer = model, optimizer
        params = dict(params or {})
        program, key = _acquire(model, optimizer, objective, params) if reuse else (None, None)
        self._program = program
        if program is not None:
            program.load(model, optimizer, params, seed)
            weakref.finalize(self, _release, key, program)  # free again once this run is done
        else:
            self._step = make_step(model, optimizer, objective, params, seed, compiled=False)
            self._chunk = None  # compiled at the first call, when the batch shape is known
        self.device = device_name("tensorflow")

    def run_steps(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run len(x) steps; x: (k, B, H, W, C), y: (k, B, K). Returns losses (k,) and correct (k,)."""
        if self._program is not None:
            chunk = self._program.chunk(x.shape[1:], y.shape[1:])
        else:
            if self._chunk is None:
                self._chunk = make_chunk(self._step, x.shape[1:], y.shape[1:])
            chunk = self._chunk
        losses, correct = chunk(tf.convert_to_tensor(x), tf.convert_to_tensor(y))
        return losses.numpy().astype(np.float64), correct.numpy().astype(np.int64)

    def sync_to_model(self) -> None:
        """Copy the program's weights and optimizer state into the run's Keras variables (without
        a shared program they live there already)."""
        if self._program is not None:
            self._program.store(self._model, self._optimizer)
