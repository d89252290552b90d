"""Accuracy under adversarial attacks with an L-infinity budget eps, on images in [0, 1].

The attacks come from the Adversarial Robustness Toolbox (ART, `import art`), which runs on
Keras 3 with TensorFlow: the Keras model is wrapped in `TensorFlowV2Classifier` with a
categorical cross-entropy on its softmax *probabilities* (not logits) and clip values (0, 1),
so every adversarial image stays in [0, 1] and within eps of the clean one.

- "fgsm": one signed-gradient step of size eps (Goodfellow et al. 2015).
- "pgd": `steps` signed-gradient steps of size 2.5 * eps / steps, each projected back into the
  eps-ball, from a uniform random start; `restarts` random starts, an image counts as broken
  if any start breaks it (Madry et al. 2018). Default 10 steps, 1 start; the "strong" PGD of the
  gradient-masking check (STRONG_PGD) uses 40 steps and 5 starts.
- "square": Square Attack (Andriushchenko et al. 2020), a black-box random search on the
  model's output margin that never reads a gradient; `square_queries` iterations (one model
  query per still-unbroken image each) and `restarts` restarts.

Cost, measured on 1000 Fashion-MNIST test images, the 6 non-zero default eps, 2 shared CPU
cores (load average ~9, so ~0.4 core for this process): FGSM 9 s, PGD (10 steps) 171 s, Square
(50 queries) 190 s: 6 min wall but under 2.5 min of CPU time, so roughly 1.5 min on two idle
cores (an estimate from the CPU time). Square's cost grows with `square_queries` (100 queries:
325 s at load ~6); 50 keep the suite to a few minutes, at the price of a weaker black-box attack.

A model trained with the JAX engine is saved as a `.keras` file; load it in this (TensorFlow)
process with `keras.saving.load_model(path, compile=False)` before attacking it. ART draws its
random starts and squares from NumPy's global generator; each call seeds it from the config
and restores its previous state afterwards, so the same seed gives the same adversarial images.
ART (and through it TensorFlow) is imported on first use: the dashboard can import the config.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import pandas as pd

from gradloss.core.evaluation import ATTACKS, PGD_STEP_FACTOR, AttackConfig
from gradloss.core.validation import check_choice, check_float

@contextmanager
def _numpy_seed(seed: int):
    """Seed NumPy's global generator (ART's source of randomness) and restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _import_art():
    with warnings.catch_warnings():  # ART warns about PyTorch, which gradloss does not use
        warnings.simplefilter("ignore", UserWarning)
        import art.attacks.evasion
        import art.estimators.classification
    return art


def _classifier(model):
    """The ART view of a Keras model that outputs softmax probabilities (N, K)."""
    import keras

    return _import_art().estimators.classification.TensorFlowV2Classifier(
        model, nb_classes=int(model.output_shape[-1]), input_shape=tuple(model.input_shape[1:]),
        loss_object=keras.losses.CategoricalCrossentropy(),  # probabilities, not logits
        clip_values=(0.0, 1.0))


def _art_attack(classifier, attack: str, eps: float, config: AttackConfig):
    evasion = _import_art().attacks.evasion
    if attack == "fgsm":
        return evasion.FastGradientMethod(classifier, norm=np.inf, eps=eps,
                                          batch_size=config.batch_size)
    if attack == "pgd":
        return evasion.ProjectedGradientDescent(
            classifier, norm=np.inf, eps=eps, eps_step=PGD_STEP_FACTOR * eps / config.steps,
            max_iter=config.steps, num_random_init=config.restarts,
            batch_size=config.batch_size, verbose=False)
    return evasion.SquareAttack(classifier, norm=np.inf, eps=eps,
                                max_iter=config.square_queries, nb_restarts=config.restarts,
                                batch_size=config.batch_size, verbose=False)


def _one_hot(y: np.ndarray, num_classes: int) -> np.ndarray:
    if np.ndim(y) == 2:
        return np.asarray(y, dtype=np.float32)
    return np.eye(num_classes, dtype=np.float32)[np.asarray(y, dtype=int)]


def adversarial_examples(model, x: np.ndarray, y: np.ndarray, attack: str, eps: float,
                         config: AttackConfig = AttackConfig()) -> np.ndarray:
    """Adversarial versions of x (N, H, W, C) in [0, 1]: |x_adv - x| <= eps, x_adv in [0, 1].

    y is one-hot (N, K) or integer labels (N,): the attacks push away from the true label.
    eps = 0 returns a copy of x. Seeded by `config.seed`: the same seed gives the same images.
    """
    return _adversarial(model, _classifier(model), x, y, attack, eps, config)


def _adversarial(model, classifier, x, y, attack: str, eps: float, config: AttackConfig):
    check_choice("adversarial_examples", "attack", attack, ATTACKS)
    check_float("adversarial_examples", "eps", eps, 0.0, 1.0)
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"x and y must hold the same, non-zero number of rows. "
                         f"Got {len(x)} and {len(y)} instead.")
    if eps == 0:
        return x.copy()
    with _numpy_seed(config.seed):
        adv = _art_attack(classifier, attack, float(eps), config).generate(
            x, y=_one_hot(y, int(model.output_shape[-1])))
    return adv.astype(np.float32)


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
    from gradloss.models import predict

    labels = np.argmax(y, -1) if np.ndim(y) == 2 else np.asarray(y)
    if len(x) == 0 or len(x) != len(labels):
        raise ValueError(f"x and y must hold the same, non-zero number of rows. "
                         f"Got {len(x)} and {len(labels)} instead.")
    keep = attack_subset(labels, config.n_images, config.seed)
    x, labels = np.asarray(x, dtype=np.float32)[keep], labels[keep]
    classifier = _classifier(model)  # one per sweep: its compiled forward pass is reused
    accuracy = []
    for done, eps in enumerate(config.epsilons, start=1):
        x_adv = _adversarial(model, classifier, x, labels, attack, eps, config)
        pred = predict(model, x_adv, config.batch_size).argmax(-1)
        accuracy.append(float(np.mean(pred == labels)))
        if on_progress:
            on_progress(done, len(config.epsilons))
    return pd.DataFrame({"perturbation": attack, "epsilon": config.epsilons,
                         "accuracy": accuracy})
