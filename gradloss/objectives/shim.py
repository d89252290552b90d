"""The few lines each Keras backend needs that `keras.ops` does not offer: the input gradient of
a scalar function (reverse mode, kept differentiable for an outer gradient) and stateless
training noise drawn from (seed, step).

`grad_with_aux(f, x)` returns (df/dx, aux) for f(x) -> (scalar, aux), on the backend Keras runs:
TensorFlow records it on a GradientTape (an outer tape sees the inner one, so second derivatives
flow), JAX takes `jax.grad(..., has_aux=True)`, PyTorch `torch.autograd.grad(create_graph=True)`.
Each backend's noise comes from its own stateless generator: the same definition, different
random numbers per backend (a run repeats exactly on its engine).
"""
from __future__ import annotations

import keras


def grad_with_aux(f, x):
    """(df/dx, aux) of f(x) -> (scalar, aux), differentiable again."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)                # x is a tensor, not a variable
            value, aux = f(x)
        return tape.gradient(value, x), aux
    if backend == "jax":
        import jax

        return jax.grad(f, has_aux=True)(x)
    if backend == "torch":
        import torch

        with torch.enable_grad():  # also under Keras's no_grad evaluation
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            value, aux = f(x)
            (grad,) = torch.autograd.grad(value, x, create_graph=True)
        return grad, aux
    raise NotImplementedError(f"gradloss's objectives need the input gradient, which it takes on "
                              f"the tensorflow, jax and torch backends; Keras runs on {backend!r}.")


def training_noise(shape, sigma: float, seed: int, step):
    """N(0, sigma^2) noise for training step `step` (the optimizer's iteration count) of run
    `seed`: a function of (seed, step) only, so a run repeats exactly and a resumed run draws
    what the uninterrupted one would have."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        pair = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])  # seed: int or variable
        return sigma * tf.random.stateless_normal(shape, seed=pair)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        key = jax.random.fold_in(jax.random.key(seed), step)
        return sigma * jax.random.normal(key, shape, jnp.float32)
    if backend == "torch":
        import torch

        generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))
        noise = torch.randn(tuple(int(d) for d in shape), generator=generator,
                            dtype=getattr(torch, keras.config.floatx()))  # on the CPU generator
        return sigma * keras.ops.convert_to_tensor(noise)  # to Keras's device
    raise NotImplementedError(f"training noise is drawn on the tensorflow, jax and torch "
                              f"backends; Keras runs on {backend!r}.")
