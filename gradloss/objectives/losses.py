"""The objectives' losses, each written once in `keras.ops` (the registry is
`gradloss.objectives`; the backend shim for the input gradient is `objectives.shim`).

Every loss takes `forward(x) -> (p, state)`: the model's softmax output (B, K) for inputs x, and
whatever state the call returns (None for a Keras model called as usual; the non-trainable
variables when JAX calls it statelessly). It returns (loss, (p, state)), the shape
`jax.value_and_grad(..., has_aux=True)` takes; an outer tape or grad over the model's weights
gives the training gradient.

The gradient loss trains the weights so that every data point is a stationary point of S:

    G(theta) = mean((dS/dx)^2) + mean((dS/dy)^2),

S the sum over the batch of the per-example MSE between the one-hot y and the softmax p, averaged
over the K classes, so dS/dx_i involves example i only. dS/dy = 2 (y - p) / K in closed form, so
mean((dS/dy)^2) = 4 mean((y - p)^2) / K^2 and only x needs an input gradient; the definition with
both inputs taped is `engines.yardsticks` (the seed notebook's form), which the tests agree with.

The others: `cross_entropy` (baseline; noise_augmented on x plus `shim.training_noise`), `mse`
(S alone, as a batch mean), `input_gradient_penalty` (cross-entropy plus lambda times the mean
over examples of ||dCE_i/dx_i||^2: double backpropagation) and `mse_input_gradient_penalty`
(the same penalty on the MSE: the family the gradient loss belongs to). `input_gradient_norms` is what every
run records after each epoch.
"""
from __future__ import annotations

import keras
from keras import ops

from gradloss.objectives.shim import grad_with_aux


def on_model(model: keras.Model, training: bool = True):
    """forward(x) -> (p, None) of a Keras model called as usual."""
    return lambda x: (model(x, training=training), None)


def per_example_mse(y_true, y_pred):
    """Mean squared error per example, averaged over classes: (B, K) -> (B,)."""
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def _sum_over_pixels(a):
    return ops.sum(a, axis=tuple(range(1, len(a.shape))))  # (B, H, W, C) -> (B,)


def gradient_loss(forward, x, y):
    """G = mean((dS/dx)^2) + 4 mean((y - p)^2) / K^2, with dS/dx from an inner input gradient."""
    def s_of(x_):
        p, state = forward(x_)
        return ops.sum(per_example_mse(y, p)), (p, state)

    dx, (p, state) = grad_with_aux(s_of, x)                    # (B, H, W, C)
    k = y.shape[-1]
    return ops.mean(ops.square(dx)) + 4.0 * ops.mean(ops.square(y - p)) / (k * k), (p, state)


def cross_entropy(forward, x, y):
    """Mean categorical cross-entropy over the batch ("baseline"; "noise_augmented" on noisy x)."""
    p, state = forward(x)
    return ops.mean(keras.losses.categorical_crossentropy(y, p)), (p, state)


def mse(forward, x, y):
    """The base loss S alone, as a batch mean: mean over examples of mean_k (y_k - p_k)^2."""
    p, state = forward(x)
    return ops.mean(per_example_mse(y, p)), (p, state)


def _input_gradients(forward, x, y):
    """Per-example dCE_i/dx_i (B, H, W, C), per-example CE (B,), p and state. The model treats
    examples independently, so the gradient of the summed CE holds each example's own row."""
    def ce_sum(x_):
        p, state = forward(x_)
        ce = keras.losses.categorical_crossentropy(y, p)         # (B,)
        return ops.sum(ce), (ce, p, state)

    dx, (ce, p, state) = grad_with_aux(ce_sum, x)
    return dx, ce, p, state


def input_gradient_penalty(forward, x, y, weight: float):
    """Cross-entropy plus weight * mean_i ||dCE_i/dx_i||_2^2 (double backpropagation): the
    squared norm sums over all H*W*C pixels of example i, the mean is over the B examples."""
    dx, ce, p, state = _input_gradients(forward, x, y)
    return ops.mean(ce) + weight * ops.mean(_sum_over_pixels(ops.square(dx))), (p, state)


def mse_input_gradient_penalty(forward, x, y, weight: float):
    """The MSE family: S's batch mean plus weight * mean_b ||dS_b/dx_b||_2^2, S_b the example's
    MSE over the K classes (double backpropagation on the MSE).

    The gradient loss is the member weight = K^2 / (4 D) (D values per image) times 4 / K^2:
    G = mean((dS/dx)^2) + mean((dS/dy)^2) = (1/D) mean_b ||dS_b/dx_b||^2 + (4/K^2) mean_b S_b
    (docs/objectives.md derives it); plain MSE is the member weight = 0."""
    def s_sum(x_):
        p, state = forward(x_)
        s = per_example_mse(y, p)                                 # (B,)
        return ops.sum(s), (s, p, state)

    dx, (s, p, state) = grad_with_aux(s_sum, x)                 # row b: dS_b/dx_b
    return ops.mean(s) + weight * ops.mean(_sum_over_pixels(ops.square(dx))), (p, state)


def gradient_equivalent_weight(num_classes: int, input_size: int) -> float:
    """lambda* = K^2 / (4 D): the MSE family's member whose weight gradients are the gradient
    loss's times K^2 / 4."""
    return num_classes ** 2 / (4 * input_size)


def _norms(dx):
    return ops.sqrt(_sum_over_pixels(ops.square(dx)))  # (B, H, W, C) -> (B,)


def input_gradient_norms(forward, x, y):
    """||dCE_i/dx_i||_2 per example (B,): the loss sensitivity each epoch records."""
    dx, _, _, _ = _input_gradients(forward, x, y)
    return _norms(dx)


def input_gradient_norms_and_hits(forward, x, y):
    """`input_gradient_norms` and whether each example is classified right, (B,) and (B,) bool,
    from the one forward pass the gradient needs: the per-epoch measurement in one pass."""
    dx, _, p, _ = _input_gradients(forward, x, y)
    return _norms(dx), ops.equal(ops.argmax(p, axis=-1), ops.argmax(y, axis=-1))


def loss_function(objective: str, params: dict | None = None):
    """loss(forward, x, y) -> (loss, (p, state)) of an objective that sees the batch as given.

    "noise_augmented" is `cross_entropy`: its step adds `shim.training_noise` to x first. A
    penalty's weight is a number or a backend variable (a compiled program reused across runs,
    `engines.tf_engine`); at weight 0 the penalty is the unpenalised loss itself (`mse`,
    `cross_entropy`): the same value and weight gradients (0 times the penalty's gradient adds
    nothing), without the double backpropagation, which costs more than the rest of the step."""
    params = params or {}
    if objective == "gradient":
        return gradient_loss
    if objective in ("baseline", "noise_augmented"):
        return cross_entropy
    if objective == "mse":
        return mse
    if objective in ("input_gradient", "mse_penalty"):
        weight = params["penalty_weight"]
        if isinstance(weight, (int, float)):
            weight = float(weight)
            if weight == 0.0:
                return cross_entropy if objective == "input_gradient" else mse
        penalised = input_gradient_penalty if objective == "input_gradient" \
            else mse_input_gradient_penalty
        return lambda forward, x, y: penalised(forward, x, y, weight)
    raise ValueError(f"Unknown objective {objective!r}.")
