"""Whole epochs on the device (JAX), for one run or for several seeds of one arm at once.

The training set goes to the accelerator once. An epoch arrives as an int32 array of row
indices (the shuffled order `training.epoch_order` draws on the host, so the steps are those
of step-by-step training) and runs as one compiled program: a `fori_loop` over its batches,
each gathered on the device, returning the per-step losses and correct counts. The program
takes the first batch and the number of batches as traced values, so an epoch split into a
few calls (to keep progress and cancel polls within about `TARGET_CALL_S`) reuses it. Test
accuracy is a compiled forward pass over the test set, also on the device.

Several seeds train as one program by `jax.vmap` over their stacked states (weights and
optimizer state, each seed its own) and their own orders (each seed's shuffle, and its
stratified subset when the run has a train_size: rows index the whole training set).
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import keras
import numpy as np

from gradloss.data import Dataset
from gradloss.engines.device import device_name
from gradloss.engines.jax_engine import make_step, read_state, write_state

TARGET_CALL_S = 1.0   # aim for device calls this long: progress and cancel stay prompt
FIRST_CALL_STEPS = 50  # steps per call until the pace is known (the first call compiles)
TEST_BLOCK = 500      # test images per forward pass of the on-device accuracy


def make_epoch_program(step, batch_size: int):
    """Return a jitted run(state, x, y, order, first, n) -> (state, losses, correct).

    x (N, H, W, C), y (N, K): the training set on the device. order (R,) or, for vmapped
    seeds, (S, R): rows of x in the epoch's order. Runs batches first .. first+n-1 of it;
    losses and correct are (R // B,) or (R // B, S), set at 0 .. n-1.
    """
    @jax.jit
    def run(state, x, y, order, first, n):
        def body(i, carry):
            state, losses, correct = carry
            rows = jax.lax.dynamic_slice_in_dim(order, (first + i) * batch_size, batch_size,
                                                axis=order.ndim - 1)   # (B,) or (S, B)
            state, loss, hits = step(state, x[rows], y[rows])     # x[rows]: (..., B, H, W, C)
            return state, losses.at[i].set(loss), correct.at[i].set(hits)

        shape = (order.shape[-1] // batch_size, *order.shape[:-1])
        init = (state, jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.int32))
        return jax.lax.fori_loop(0, n, body, init)
    return run


def make_correct_count(model: keras.Model):
    """Return f(trainable, non_trainable, blocks, labels) -> number of test images classified right.

    blocks (nb, TEST_BLOCK, H, W, C), labels (nb * TEST_BLOCK,) with -1 on the padding rows.
    """
    def count(trainable, non_trainable, blocks, labels):
        def predicted(xb):
            p, _ = model.stateless_call(trainable, non_trainable, xb, training=False)
            return jnp.argmax(p, -1)
        return jnp.sum(jax.lax.map(predicted, blocks).reshape(-1) == labels)
    return count


def stack(states: list) -> tuple:
    """One state with a leading seed axis from per-seed states."""
    return jax.tree.map(lambda *a: jnp.stack(a), *states)


def unstack(state: tuple, i: int) -> tuple:
    """Seed i's state from a stacked state."""
    return jax.tree.map(lambda a: a[i], state)


class DeviceEpochs:
    """Trains on the device: an epoch (or a few parts of one) per call, one run or several seeds.

    batched=False: `state` is one run's `make_step` state, orders are (R,); batched=True:
    `state` is `stack`ed over seeds, orders are (S, R), losses and accuracies gain a seed axis.
    Satisfies `training.Epochs` for one run (`attach` it to the model first).
    """

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, objective: str,
                 dataset: Dataset, batch_size: int, *, batched: bool = False,
                 params: dict | None = None, seed: int = 0):
        optimizer.build(model.trainable_variables)
        self._model, self._optimizer, self._batch = model, optimizer, batch_size
        self.device = device_name("jax")
        # params, seed: the objective's own parameters and the run's seed (`make_step`)
        step = make_step(model, optimizer, objective, params=params, seed=seed)
        self._run = make_epoch_program(jax.vmap(step) if batched else step, batch_size)
        count = make_correct_count(model)
        self._count = jax.jit(jax.vmap(count, in_axes=(0, 0, None, None)) if batched else count)
        self._x, self._y = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)  # once
        pad = -len(dataset.x_test) % TEST_BLOCK
        x_test = np.concatenate([dataset.x_test, np.zeros((pad, *dataset.x_test.shape[1:]),
                                                          dataset.x_test.dtype)])
        self._test = jnp.asarray(x_test.reshape(-1, TEST_BLOCK, *x_test.shape[1:]))
        self._labels = jnp.asarray(np.concatenate([dataset.y_test.argmax(-1), -np.ones(pad)])
                                   .astype(np.int32))
        self._n_test = len(dataset.x_test)
        self.state = None
        self._order, self._steps = None, 0
        self._compiled, self._s_per_step = False, None

    def attach(self) -> "DeviceEpochs":
        """Start from the weights and optimizer state in the Keras model (one run)."""
        self.load(read_state(self._model, self._optimizer))
        return self

    def load(self, state: tuple) -> None:
        """Start from `state`; the next call's time is not taken as the pace (it may compile)."""
        self.state, self._compiled = state, False

    def start_epoch(self, order: np.ndarray) -> None:
        """Send the epoch's row order, (R,) or (S, R), to the device."""
        self._order = jnp.asarray(order, jnp.int32)
        self._steps = order.shape[-1] // self._batch

    def run(self, first: int) -> tuple[np.ndarray, np.ndarray]:
        """Run the epoch's next batches from `first`; return losses and correct, (k,) or (k, S)."""
        k = FIRST_CALL_STEPS if self._s_per_step is None else int(TARGET_CALL_S / self._s_per_step)
        k = max(1, min(k, self._steps - first))
        t0 = time.perf_counter()
        self.state, losses, correct = self._run(self.state, self._x, self._y, self._order,
                                                jnp.int32(first), jnp.int32(k))
        losses = np.asarray(losses, dtype=np.float64)[:k]  # the one host sync of the call
        correct = np.asarray(correct, dtype=np.int64)[:k]
        if self._compiled:
            self._s_per_step = (time.perf_counter() - t0) / k
        self._compiled = True
        return losses, correct

    def test_accuracy(self):
        """Test accuracy of the current weights: a float, or (S,) for batched seeds."""
        trainable, non_trainable, _ = self.state
        hits = np.asarray(self._count(trainable, non_trainable, self._test, self._labels))
        return hits / self._n_test if hits.ndim else float(hits) / self._n_test

    def sync_to_model(self) -> None:
        """Write the state (one run's) back into the Keras model and optimizer."""
        write_state(self.state, self._model, self._optimizer)
