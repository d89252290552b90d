"""JAX forms of the objectives other than the gradient loss (that one is in the JAX engine).

Same definitions as `tf_losses`, written for a Keras model called statelessly: each loss is
loss_fn(trainable, non_trainable, x, y) -> (loss, (p, non_trainable)), the shape
`jax.value_and_grad(..., has_aux=True)` takes. Training noise for "noise_augmented" is drawn
in the step from jax.random.fold_in(key(seed), step), so a run repeats exactly.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import keras


def _sum_over_pixels(a):
    return jnp.sum(a, axis=tuple(range(1, a.ndim)))  # (B, H, W, C) -> (B,)


def cross_entropy_loss(model: keras.Model):
    """Mean categorical cross-entropy ("baseline"; "noise_augmented" on noisy x)."""
    def loss_fn(trainable, non_trainable, x, y):
        p, nt = model.stateless_call(trainable, non_trainable, x, training=True)
        return jnp.mean(keras.losses.categorical_crossentropy(y, p)), (p, nt)
    return loss_fn


def mse_loss(model: keras.Model):
    """S alone as a batch mean: mean over examples of mean_k (y_k - p_k)^2 ("mse")."""
    def loss_fn(trainable, non_trainable, x, y):
        p, nt = model.stateless_call(trainable, non_trainable, x, training=True)
        return jnp.mean(jnp.square(y - p)), (p, nt)
    return loss_fn


def input_gradient_loss(model: keras.Model, weight: float):
    """Cross-entropy + weight * mean_i ||dCE_i/dx_i||_2^2, as `tf_losses.input_gradient_penalty`."""
    def loss_fn(trainable, non_trainable, x, y):
        def ce_sum(x_):
            p, nt = model.stateless_call(trainable, non_trainable, x_, training=True)
            ce = keras.losses.categorical_crossentropy(y, p)        # (B,)
            return jnp.sum(ce), (ce, p, nt)

        dx, (ce, p, nt) = jax.grad(ce_sum, has_aux=True)(x)         # row i: dCE_i/dx_i
        penalty = jnp.mean(_sum_over_pixels(jnp.square(dx)))
        return jnp.mean(ce) + weight * penalty, (p, nt)
    return loss_fn


def loss_function(model: keras.Model, objective: str, params: dict | None = None):
    """loss_fn of every objective but "gradient", which the engine defines itself."""
    if objective in ("baseline", "noise_augmented"):
        return cross_entropy_loss(model)
    if objective == "mse":
        return mse_loss(model)
    if objective == "input_gradient":
        return input_gradient_loss(model, float((params or {})["penalty_weight"]))
    raise ValueError(f"Unknown objective {objective!r}.")


def training_noise(shape, sigma: float, seed: int, step) -> jax.Array:
    """N(0, sigma^2) noise for training step `step` (0-based) of run `seed`."""
    key = jax.random.fold_in(jax.random.key(seed), step)
    return sigma * jax.random.normal(key, shape, jnp.float32)


def input_gradient_norms(model: keras.Model, x, y) -> jax.Array:
    """||dCE_i/dx_i||_2 per example (B,) at the model's current weights."""
    def ce_sum(x_):
        return jnp.sum(keras.losses.categorical_crossentropy(y, model(x_, training=False)))
    dx = jax.grad(ce_sum)(jnp.asarray(x))
    return jnp.sqrt(_sum_over_pixels(jnp.square(dx)))
