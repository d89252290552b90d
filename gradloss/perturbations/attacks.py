"""Accuracy under adversarial attacks with an L-infinity budget eps, on images in [0, 1].

The attacks run compiled on the model (`engines.compiled`: tf.function on TensorFlow, jax.jit
on JAX), `config.batch_size` images per call, written once in keras.ops with the input gradient
from `objectives.shim.grad_with_aux`. Their loss is the categorical cross-entropy of the model's
softmax *probabilities* (as ART's TensorFlowV2Classifier with CategoricalCrossentropy computes
it), and images are clipped to [0, 1]: every adversarial image stays in [0, 1] and within eps of
the clean one.

- "fgsm": one signed-gradient step of size eps (Goodfellow et al. 2015).
- "pgd": `steps` signed-gradient steps of size 2.5 * eps / steps, each projected back into the
  eps-ball, from a uniform random start; `restarts` random starts, an image counts as broken
  if any start breaks it, and a broken image is not attacked again (Madry et al. 2018). Default
  10 steps, 1 start; the "strong" PGD of the gradient-masking check (STRONG_PGD) uses 40 steps
  and 5 starts.
- "square": the Square Attack (Andriushchenko et al. 2020, `perturbations.square`), a black-box
  random search on the output margin that never reads a gradient; `square_queries` iterations
  (one query per still-unbroken image each) and `restarts` restarts.

PGD's random start of an image comes from `np.random.default_rng([seed, PGD_STREAM, restart,
row])` with `row` its test row, as Square's draws: an image's attack does not depend on the
images attacked with it, so the grid's adversarial images are the sweep's. ART (the Adversarial
Robustness Toolbox) is the reference the tests agree with: FGSM gives ART's images, PGD and
Square accuracies within their random-start noise of ART's (tests/test_attacks.py). What each
attack costs, before and after it was compiled, is in bench/README.md. Keras is imported on
first use: the dashboard can import the config.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from gradloss.core.evaluation import ATTACKS, PGD_STEP_FACTOR, AttackConfig
from gradloss.core.validation import check_choice, check_float
from gradloss.perturbations.square import square_attack

PGD_STREAM = 3000  # apart from the sweep's draws, the corruptions (1000+), certify (2000), Square


def _signed_gradient(forward, x, y):
    """sign(dCE/dx) per example, CE of the probabilities against one-hot y."""
    import keras

    from gradloss.objectives.shim import grad_with_aux

    def ce_sum(x_):
        p, _ = forward(x_)
        return keras.ops.sum(keras.losses.categorical_crossentropy(y, p)), None

    dx, _ = grad_with_aux(ce_sum, x)
    return keras.ops.sign(dx)


def _fgsm(forward, x, y, eps):
    """x + eps sign(dCE/dx), in [0, 1]; eps (B,) per image."""
    import keras

    return keras.ops.clip(x + eps[:, None, None, None] * _signed_gradient(forward, x, y), 0, 1)


def _pgd_step(forward, x, x_adv, y, eps, size):
    """One PGD step: x_adv + size sign(dCE/dx), projected on the eps-ball around x and into
    [0, 1]; eps and size (B,) per image."""
    import keras

    e, moved = eps[:, None, None, None], size[:, None, None, None]
    moved = keras.ops.clip(x_adv + moved * _signed_gradient(forward, x_adv, y), 0, 1)
    return x + keras.ops.clip(moved - x, -e, e)


def _classes(forward, x):
    import keras

    return keras.ops.argmax(forward(x)[0], axis=-1)


def _probabilities(forward, x):
    return forward(x)[0]


def _one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


def _pgd_starts(x: np.ndarray, rows: np.ndarray, eps: float, seed: int, restart: int):
    """x plus each row's uniform start in [-eps, eps], clipped to [0, 1]."""
    u = np.stack([np.random.default_rng([seed, PGD_STREAM, restart, int(r)]).uniform(
        -1.0, 1.0, x.shape[1:]) for r in rows])
    return np.clip(x + np.float32(eps) * u.astype(np.float32), 0, 1)


def _attack(model, x: np.ndarray, labels: np.ndarray, rows: np.ndarray, attack: str, eps: float,
            config: AttackConfig) -> np.ndarray:
    import keras

    from gradloss.engines.compiled import batched, on_model, padded

    num_classes = int(model.output_shape[-1])
    batch = config.batch_size
    if attack == "square":
        def probabilities(images):
            return batched(on_model(model, _probabilities), (images,), batch)[0]
        return square_attack(probabilities, x, labels, eps, iterations=config.square_queries,
                             restarts=config.restarts, seed=config.seed, rows=rows)
    y = _one_hot(labels, num_classes)
    eps_rows = np.full(len(x), eps, np.float32)
    if attack == "fgsm":
        return batched(on_model(model, _fgsm), (x, y, eps_rows), batch)[0]
    step, classes = on_model(model, _pgd_step), on_model(model, _classes)
    size_rows = np.full(len(x), PGD_STEP_FACTOR * eps / config.steps, np.float32)
    x_adv = x.copy()
    broken = np.zeros(len(x), bool)
    for restart in range(config.restarts):
        todo = np.flatnonzero(~broken)             # a broken image stays broken: not attacked again
        if not len(todo):
            break
        start = _pgd_starts(x[todo], rows[todo], eps, config.seed, restart)
        parts = []
        for (xb, found, yb, eb, sb), real in padded((x[todo], start, y[todo], eps_rows[todo],
                                                     size_rows[todo]), batch):
            for _ in range(config.steps):          # the batch stays on the device between steps
                found = step(xb, found, yb, eb, sb)
            parts.append(keras.ops.convert_to_numpy(found)[:real])
        found = np.concatenate(parts)
        wrong = batched(classes, (found,), batch)[0] != labels[todo]
        keep = todo if restart == 0 else todo[wrong]  # later starts replace only with a success
        x_adv[keep] = found[wrong] if restart else found
        broken[todo] = wrong
    return x_adv


def adversarial_examples(model, x: np.ndarray, y: np.ndarray, attack: str, eps: float,
                         config: AttackConfig = AttackConfig(), *, rows=None) -> np.ndarray:
    """Adversarial versions of x (N, H, W, C) in [0, 1]: |x_adv - x| <= eps, x_adv in [0, 1].

    y is one-hot (N, K) or integer labels (N,): the attacks push away from the true label.
    eps = 0 returns a copy of x. `rows`: each image's test row (default 0..N-1), which seeds its
    random start and squares: the same seed and row give the same image.
    """
    check_choice("adversarial_examples", "attack", attack, ATTACKS)
    check_float("adversarial_examples", "eps", eps, 0.0, 1.0)
    x = np.asarray(x, dtype=np.float32)
    labels = np.argmax(y, -1) if np.ndim(y) == 2 else np.asarray(y, dtype=int)
    if len(x) == 0 or len(x) != len(labels):
        raise ValueError(f"x and y must hold the same, non-zero number of rows. "
                         f"Got {len(x)} and {len(labels)} instead.")
    if eps == 0:
        return x.copy()
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    return _attack(model, x, labels, rows, attack, float(eps), config)


def attack_subset(y: np.ndarray, n_images: int, seed: int) -> np.ndarray:
    """Sorted indices of min(n_images, N) test rows, drawn per class (stratified), seeded."""
    from gradloss.data import stratified_subset

    labels = np.argmax(y, -1) if np.ndim(y) == 2 else np.asarray(y)
    if n_images >= len(labels):
        return np.arange(len(labels))
    return stratified_subset(labels, n_images, seed)


def accuracy_vs_epsilon(model, x: np.ndarray, y: np.ndarray, attack: str,
                        config: AttackConfig = AttackConfig(), *,
                        on_progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Accuracy under `attack` at each eps of the config: columns perturbation, epsilon, accuracy.

    Evaluated on `config.n_images` test images: a class-stratified subset of (x, y) drawn with
    `config.seed` (all of them when there are fewer), the same subset for every model and
    attack. eps = 0 is the clean accuracy. `on_progress(done, total)` is called after each eps.
    """
    check_choice("accuracy_vs_epsilon", "attack", attack, ATTACKS)
    from gradloss.engines.compiled import batched, on_model

    labels = np.argmax(y, -1) if np.ndim(y) == 2 else np.asarray(y)
    if len(x) == 0 or len(x) != len(labels):
        raise ValueError(f"x and y must hold the same, non-zero number of rows. "
                         f"Got {len(x)} and {len(labels)} instead.")
    keep = attack_subset(labels, config.n_images, config.seed)
    x, labels = np.asarray(x, dtype=np.float32)[keep], labels[keep]
    accuracy = []
    for done, eps in enumerate(config.epsilons, start=1):
        x_adv = x if eps == 0 else _attack(model, x, labels, keep, attack, eps, config)
        pred = batched(on_model(model, _classes), (x_adv,), config.batch_size)[0]
        accuracy.append(float(np.mean(pred == labels)))
        if on_progress:
            on_progress(done, len(config.epsilons))
    return pd.DataFrame({"perturbation": attack, "epsilon": config.epsilons,
                         "accuracy": accuracy})
