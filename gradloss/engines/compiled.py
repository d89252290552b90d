"""Functions of a model's inputs, written once in keras.ops, compiled once per model for this
process's backend and fed in fixed-size batches: what measures a model (the per-epoch
input-gradient norm, the attacks) without eager overhead or a memory peak.

`on_model(model, fn)` compiles fn(forward, *arrays), forward(x) -> (p, None) being the model in
inference mode, with tf.function (TensorFlow: the model's variables are read at each call) or
jax.jit (JAX: the model is called statelessly and its current weights are passed in at each
call), so one compiled function serves a model whose weights change between calls, as the
training loop's after each epoch. It is kept per model and function (and dropped with the model).
`batched(f, arrays, batch)` runs it at most `batch` rows at a time, a short call padded (its last
row repeated) to one of a few sizes, so that a few traces serve every call and memory stays
that of one batch.
"""
from __future__ import annotations

import weakref
from typing import Callable

import keras
import numpy as np

_COMPILED: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()


def on_model(model: keras.Model, fn: Callable) -> Callable:
    """fn(forward, *arrays) compiled on `model` for this process's backend; arrays in, tensors out."""
    per_model = _COMPILED.setdefault(model, {})
    if fn not in per_model:
        per_model[fn] = _compile(model, fn)
    return per_model[fn]


def _compile(model: keras.Model, fn: Callable) -> Callable:
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        def forward(x):
            return model(x, training=False), None

        # reduce_retracing: after two batch sizes, one trace with a free batch axis serves all
        graph = tf.function(lambda *arrays: fn(forward, *arrays), reduce_retracing=True)
        # NumPy in, as tensors: a Python scalar would be traced as a constant, once per value
        return lambda *arrays: graph(*(tf.convert_to_tensor(a) for a in arrays))
    if backend == "jax":
        import jax

        def pure(trainable, non_trainable, *arrays):
            def forward(x):
                p, _ = model.stateless_call(trainable, non_trainable, x, training=False)
                return p, None
            return fn(forward, *arrays)

        jitted = jax.jit(pure)
        return lambda *arrays: jitted([v.value for v in model.trainable_variables],
                                      [v.value for v in model.non_trainable_variables], *arrays)
    raise NotImplementedError(f"gradloss compiles measurements on the tensorflow and jax "
                              f"backends; Keras runs on {backend!r}.")


def bucket(n: int, batch: int) -> int:
    """The row count a call of n <= batch rows is padded to: the next power of two (at least 8),
    at most `batch`, so that a loop over shrinking sets (the attacks' unbroken images) compiles
    a handful of shapes, not one per count."""
    return min(batch, max(8, 1 << (n - 1).bit_length()))


def padded(arrays: tuple, batch: int):
    """Yield (rows of each of `arrays`, how many are real), at most `batch` rows at a time; a
    short batch is padded (its last row repeated) to `bucket`'s size."""
    for first in range(0, len(arrays[0]), batch):
        rows = [np.asarray(a[first:first + batch]) for a in arrays]
        real = len(rows[0])
        short = bucket(real, batch) - real
        if short:
            rows = [np.concatenate([r, np.repeat(r[-1:], short, axis=0)]) for r in rows]
        yield rows, real


def batched(f: Callable, arrays: tuple, batch: int, *scalars) -> tuple[np.ndarray, ...]:
    """f(*rows of each of `arrays`, *scalars) over all rows (`padded`): its outputs (a tensor or
    a tuple of them, each with a leading row axis) concatenated as NumPy, the padding dropped."""
    parts = []
    for rows, real in padded(arrays, batch):
        out = f(*rows, *scalars)
        out = out if isinstance(out, (tuple, list)) else (out,)
        parts.append([keras.ops.convert_to_numpy(o)[:real] for o in out])
    return tuple(np.concatenate(column) for column in zip(*parts))
