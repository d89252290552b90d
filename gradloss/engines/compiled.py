"""Functions of a model's inputs, written once in keras.ops, compiled once per architecture for
this process's backend and fed in fixed-size batches: what measures a model (its predictions,
the per-epoch input-gradient norm, the attacks) without eager overhead or a memory peak.

`on_model(model, fn)` compiles fn(forward, *arrays), forward(x) -> (p, None) being the model in
inference mode, called statelessly with the weights passed in at each call (tf.function or
jax.jit), so one compiled function serves a model whose weights change between calls, as the
training loop's after each epoch, and every model of the same architecture (`architecture_key`):
a worker's runs, one after another, trace it once. A model whose architecture has no key (a
subclassed model) gets its own, kept as long as the model.
`batched(f, arrays, batch)` runs it at most `batch` rows at a time, a short call padded (its last
row repeated) to one of a few sizes, so that a few traces serve every call and memory stays
that of one batch.
"""
from __future__ import annotations

import hashlib
import json
import threading
import weakref
from typing import Callable

import keras
import numpy as np

from gradloss.models import PREDICT_BATCH

_COMPILED: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()
_SHARED: dict[tuple[str, Callable], Callable] = {}  # (architecture, fn) -> compiled, per process
_LOCK = threading.Lock()


def architecture_key(model: keras.Model) -> str | None:
    """A fingerprint of a Sequential or functional model's architecture: its config with the
    layers' names (which Keras numbers afresh in each build) replaced by their order, and its
    variables' shapes and dtypes. Equal for two builds of one architecture, whatever their
    weights; None for a subclassed model, whose config need not describe it."""
    if not isinstance(model, keras.Sequential) and type(model).__name__ != "Functional":
        return None
    try:
        config = model.get_config()
    except (NotImplementedError, TypeError, ValueError):
        return None
    names: dict[str, str] = {}

    def collect(m) -> None:
        names.setdefault(m.name, f"#layer{len(names)}")
        # a Sequential's _layers holds its InputLayer too; a functional model's layers do
        for layer in getattr(m, "_layers", None) or getattr(m, "layers", ()):
            collect(layer)

    collect(model)

    def canonical(value):
        if isinstance(value, dict):
            return {k: canonical(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [canonical(v) for v in value]
        return names.get(value, value) if isinstance(value, str) else value

    shapes = [(tuple(v.shape), str(v.dtype), v.trainable) for v in model.variables]
    text = json.dumps([canonical(config), shapes], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def on_model(model: keras.Model, fn: Callable) -> Callable:
    """fn(forward, *arrays) compiled for this process's backend and `model`'s architecture, run
    at `model`'s current weights; arrays in, tensors out."""
    key = architecture_key(model)
    if key is None:
        per_model = _COMPILED.setdefault(model, {})
        if fn not in per_model:
            per_model[fn] = _compile(model, fn)
        compiled = per_model[fn]
    else:
        with _LOCK:
            if (key, fn) not in _SHARED:  # the first model of the architecture is the template
                _SHARED[key, fn] = _compile(model, fn)
            compiled = _SHARED[key, fn]
    return lambda *arrays: compiled([v.value for v in model.trainable_variables],
                                    [v.value for v in model.non_trainable_variables], *arrays)


def _compile(template: keras.Model, fn: Callable) -> Callable:
    """fn compiled on template's architecture: f(trainable, non_trainable, *arrays), the weights
    being any model's of that architecture, in its variables' order."""
    # stateless_call hands its keywords to call() as they are: `training` only where call takes it
    mode = {"training": False} if getattr(template, "_call_has_training_arg", True) else {}

    def pure(trainable, non_trainable, *arrays):
        def forward(x):
            p, _ = template.stateless_call(trainable, non_trainable, x, **mode)
            return p, None
        return fn(forward, *arrays)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        # reduce_retracing: after two batch sizes, one trace with a free batch axis serves all
        graph = tf.function(pure, reduce_retracing=True)
        # NumPy in, as tensors: a Python scalar would be traced as a constant, once per value
        return lambda trainable, non_trainable, *arrays: graph(
            trainable, non_trainable, *(tf.convert_to_tensor(a) for a in arrays))
    if backend == "jax":
        import jax

        return jax.jit(pure)
    raise NotImplementedError(f"gradloss compiles measurements on the tensorflow and jax "
                              f"backends; Keras runs on {backend!r}.")


def _probabilities(forward, x):
    return forward(x)[0]


def predict(model: keras.Model, x, batch_size: int | None = None) -> np.ndarray:
    """Class probabilities for `x`, (N, ...) -> (N, K), `batch_size` rows per compiled call
    (default `models.PREDICT_BATCH`): one trace serves every model of an architecture."""
    if len(x) == 0:
        raise ValueError("predict() got an empty array; nothing to predict.")
    return batched(on_model(model, _probabilities), (x,), batch_size or PREDICT_BATCH)[0]


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
