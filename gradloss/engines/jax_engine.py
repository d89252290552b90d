"""JAX engine: the same Keras 3 model and optimizer, trained by compiled pure steps.

Runs when Keras is on the JAX backend (`KERAS_BACKEND=jax`, `TrainConfig(engine="jax")`).
The model is called statelessly (`model.stateless_call`) so its weights are plain arrays that
JAX can differentiate twice. The losses are the objectives' one definition (`objectives.losses`,
whose input gradient is an inner `jax.grad`); `make_objective` differentiates them again with an
outer `jax.grad`. The gradient loss trains by a faster route to the same weight gradients,
forward-over-reverse (`_gradient_loss_hvp`; 2.5-8x faster on CPU, bench/README.md).
The optimizer is Keras Adam through `optimizer.stateless_apply`.

On a GPU a whole chunk of steps runs inside one jitted loop, so the host syncs once per chunk.
Chunks are padded to `chunk_steps` and the loop runs a traced number of steps, so the short
last chunk of an epoch reuses the one compiled program (no second compile, no wasted steps).
On CPU the same step is jitted alone and dispatched per batch (see `JaxEngine`). The engine
owns the state between calls; `sync_to_model` writes it back into the Keras variables.
Whole epochs on the device, and seeds trained together, build on `make_step` in
`gradloss.engines.jax_epochs`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import keras
import numpy as np

from gradloss.engines.device import device_name
from gradloss.objectives import losses, shim


def _sum_mse(y, p):
    """S: the per-example MSE over classes, summed over the batch."""
    return jnp.sum(jnp.mean(jnp.square(y - p), axis=-1))


def make_objective(model: keras.Model, objective: str, params: dict | None = None):
    """Return loss_fn(trainable, non_trainable, x, y) -> (loss, (p, non_trainable)): the
    objective's one definition (`objectives.losses`) on the model called statelessly, so its
    weights are plain arrays that JAX differentiates twice."""
    loss_of = losses.loss_function(objective, params)

    def loss_fn(trainable, non_trainable, x, y):
        return loss_of(lambda x_: model.stateless_call(trainable, non_trainable, x_, training=True),
                       x, y)
    return loss_fn


def _gradient_loss_hvp(model: keras.Model):
    """The gradient loss and its weight gradients by forward-over-reverse differentiation.

    Same values as `jax.value_and_grad` of the "gradient" objective, cheaper to run. With
    dx = dS/dx and mean((dS/dy)^2) = 4 S / (B K^2) (S sums B per-example means over K classes):

        dG/dtheta = 2/size(x) * d/dtheta <dS/dx, v>|v=dx + 4/(B K^2) * dS/dtheta,

    and the first term is a Hessian-vector product: the jvp of x -> dS/dtheta along dx. The
    jvp returns dS/dtheta as its primal, so one pass yields both terms. Nested reverse mode
    instead transposes the input-gradient convolution with respect to its kernel, which XLA on
    CPU runs through a slow generic kernel (the whole step 2.5-8x slower at batch 100).
    """
    def s_fn(trainable, non_trainable, x, y):
        p, nt = model.stateless_call(trainable, non_trainable, x, training=True)
        return _sum_mse(y, p), (p, nt)

    def loss_and_grads(trainable, non_trainable, x, y):
        dx, (p, nt) = jax.grad(s_fn, argnums=2, has_aux=True)(trainable, non_trainable, x, y)

        def ds_dtheta(x_):
            return jax.grad(s_fn, has_aux=True)(trainable, non_trainable, x_, y)[0]

        g, hv = jax.jvp(ds_dtheta, (x,), (dx,))           # dS/dtheta, d/dtheta <dS/dx, dx>
        batch, k = y.shape
        loss = jnp.mean(jnp.square(dx)) + 4.0 * jnp.mean(jnp.square(y - p)) / (k * k)
        grads = [2.0 / dx.size * h + 4.0 / (batch * k * k) * gi for gi, h in zip(g, hv)]
        return (loss, (p, nt)), grads
    return loss_and_grads


def make_loss_and_grads(model: keras.Model, objective: str, params: dict | None = None):
    """Return f(trainable, non_trainable, x, y) -> ((loss, (p, non_trainable)), grads).

    The shape of `jax.value_and_grad(..., has_aux=True)` of `make_objective`'s loss; the
    gradient loss goes through `_gradient_loss_hvp`.
    """
    if objective == "gradient":
        return _gradient_loss_hvp(model)
    return jax.value_and_grad(make_objective(model, objective, params), has_aux=True)


def make_value_and_grad(model: keras.Model, objective: str, *, nested: bool = False,
                        params: dict | None = None):
    """Return a jitted f(trainable, non_trainable, x, y) -> (loss, grads), as the engine trains.

    nested=True: plain `jax.value_and_grad` of the definition (`make_objective`) instead.
    """
    grad_fn = (jax.value_and_grad(make_objective(model, objective, params), has_aux=True) if nested
               else make_loss_and_grads(model, objective, params))

    @jax.jit
    def f(trainable, non_trainable, x, y):
        (loss, _), grads = grad_fn(trainable, non_trainable, x, y)
        return loss, grads
    return f


def make_step(model: keras.Model, optimizer: keras.optimizers.Optimizer, objective: str,
              *, nested: bool = False, params: dict | None = None, seed: int = 0):
    """Return the pure step(state, x, y) -> (state, loss, number correct).

    state = (trainable, non_trainable, optimizer_variables), each a list of arrays.
    nested=True: weight gradients by `jax.value_and_grad` of the definition (`make_objective`).
    "noise_augmented" adds noise drawn from (seed, the optimizer's iteration count) to x.
    """
    grad_fn = (jax.value_and_grad(make_objective(model, objective, params), has_aux=True) if nested
               else make_loss_and_grads(model, objective, params))
    sigma = (params or {}).get("train_noise_sigma") if objective == "noise_augmented" else None
    if sigma is not None:  # where the iteration count sits in the optimizer state
        iteration = [v is optimizer.iterations for v in optimizer.variables].index(True)

    def step(state, x, y):
        trainable, non_trainable, opt_vars = state
        if sigma is not None:
            x = x + shim.training_noise(x.shape, sigma, seed, opt_vars[iteration])
        (loss, (p, non_trainable)), grads = grad_fn(trainable, non_trainable, x, y)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        hits = jnp.sum(jnp.argmax(p, -1) == jnp.argmax(y, -1)).astype(jnp.int32)
        return (trainable, non_trainable, opt_vars), loss.astype(jnp.float32), hits
    return step


def make_chunk_runner(step):
    """Return a jitted run(state, xs, ys, n) that applies `step` to batches 0..n-1 of a chunk.

    xs (C, B, H, W, C'), ys (C, B, K) with C >= n: the chunk padded to a fixed length, and n
    traced, so every chunk length up to C runs one compiled program. Returns
    (state, losses (C,), correct (C,)); entries from n on are 0.
    """
    @jax.jit
    def run(state, xs, ys, n):
        def body(i, carry):
            state, losses, correct = carry
            state, loss, hits = step(state, xs[i], ys[i])         # (B, H, W, C'), (B, K)
            return state, losses.at[i].set(loss), correct.at[i].set(hits)

        capacity = xs.shape[0]
        init = (state, jnp.zeros(capacity, jnp.float32), jnp.zeros(capacity, jnp.int32))
        return jax.lax.fori_loop(0, n, body, init)
    return run


def read_state(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> tuple:
    """The (trainable, non_trainable, optimizer variables) state of `make_step`, copied from Keras."""
    optimizer.build(model.trainable_variables)  # no-op when already built (and restored)
    return tuple([jnp.array(v.value) for v in group] for group in (
        model.trainable_variables, model.non_trainable_variables, optimizer.variables))


def write_state(state: tuple, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
    """Write a `make_step` state back into the Keras variables of model and optimizer."""
    for variables, values in zip((model.trainable_variables, model.non_trainable_variables,
                                  optimizer.variables), state):
        for variable, value in zip(variables, values):
            variable.assign(jnp.copy(value))  # Keras may donate its buffers; keep ours


class JaxEngine:
    """Runs training steps of one objective on a Keras model with the JAX backend.

    `compiled_loop`: run each chunk as one compiled loop (`make_chunk_runner`), or step by
    step from Python (one jitted step, dispatched asynchronously; the host still syncs once
    per chunk). None picks the loop on GPUs/TPUs, where it saves a launch per step, and steps
    on CPU, where XLA runs loop bodies several times slower than the same step jitted alone
    (measured 4-9x for the reference CNN; see bench/README.md). `nested`: take the weight
    gradients of the gradient loss by nested reverse mode (the definition; `make_step`), the
    yardstick `bench/step_cost.py` times beside the engine's forward-over-reverse step.
    """

    chunk_steps = 50          # steps per call with a compiled loop; shorter chunks are padded
    stepwise_chunk_steps = 4  # steps per call step by step: keeps progress and cancel prompt

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, objective: str,
                 *, compiled_loop: bool | None = None, nested: bool = False,
                 params: dict | None = None, seed: int = 0):
        self._model, self._optimizer = model, optimizer
        self.device = device_name("jax")
        self.compiled_loop = self.device != "CPU" if compiled_loop is None else compiled_loop
        if not self.compiled_loop:  # steps of 0.1-1 s on CPU: 50 would delay cancel by a minute
            self.chunk_steps = self.stepwise_chunk_steps
        step = make_step(model, optimizer, objective, nested=nested, params=params, seed=seed)
        self._run = make_chunk_runner(step) if self.compiled_loop else None
        self._step = None if self.compiled_loop else jax.jit(step)
        self._state = read_state(model, optimizer)  # once: the model may hold restored weights

    def run_steps(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run len(x) steps; x: (k, B, H, W, C), y: (k, B, K). Returns losses (k,) and correct (k,)."""
        losses, correct = [], []
        for first in range(0, len(x), self.chunk_steps):
            xs, ys = x[first:first + self.chunk_steps], y[first:first + self.chunk_steps]
            chunk_losses, chunk_correct = (self._run_loop if self.compiled_loop
                                           else self._run_stepwise)(xs, ys)
            losses.append(np.asarray(chunk_losses, dtype=np.float64)[:len(xs)])  # host sync
            correct.append(np.asarray(chunk_correct, dtype=np.int64)[:len(xs)])
        return np.concatenate(losses), np.concatenate(correct)

    def _run_loop(self, xs: np.ndarray, ys: np.ndarray):
        n = len(xs)
        if n < self.chunk_steps:  # pad with copies of the last batch; those steps never run
            pad = self.chunk_steps - n
            xs = np.concatenate([xs, np.repeat(xs[-1:], pad, axis=0)])
            ys = np.concatenate([ys, np.repeat(ys[-1:], pad, axis=0)])
        self._state, losses, correct = self._run(
            self._state, jnp.asarray(xs, jnp.float32), jnp.asarray(ys, jnp.float32), jnp.int32(n))
        return losses, correct

    def _run_stepwise(self, xs: np.ndarray, ys: np.ndarray):
        losses, correct = [], []
        for x, y in zip(xs, ys):  # no sync inside: each step is queued behind the last
            self._state, loss, hits = self._step(self._state, x, y)
            losses.append(loss)
            correct.append(hits)
        return jnp.stack(losses), jnp.stack(correct)

    def sync_to_model(self) -> None:
        """Write weights and optimizer state back into the Keras variables."""
        write_state(self._state, self._model, self._optimizer)
