"""Run an EvaluationConfig on one model: corruptions on the whole test set, attacks on a subset,
the gradient-masking check, and the perturbed grid images the dashboard shows.

Results come back in one long shape, one row per (perturbation, level): columns EVALUATION_COLUMNS.
`on_table` receives each perturbation's rows as soon as they are measured (the runner stores
them as it goes); `on_progress(phase, done, total)` counts the steps of the current phase.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from gradloss.perturbations import attacks, certify, corruptions, masking
from gradloss.perturbations.images import image_to_bytes
from gradloss.core.evaluation import CERTIFIED, HEADLINE_EPS, PERTURBATIONS, EvaluationConfig

EVALUATION_COLUMNS = ["perturbation", "level", "accuracy", "accuracy_std", "n_images", "seed"]
OnProgress = Callable[[str, int, int], None]  # (phase, done, total)


def _labels(y) -> np.ndarray:
    return np.argmax(y, -1) if np.ndim(y) == 2 else np.asarray(y)


def _rows(name: str, levels, accuracy, n_images: int, seed: int) -> pd.DataFrame:
    return pd.DataFrame({"perturbation": name, "level": [float(v) for v in levels],
                         "accuracy": [float(a) for a in accuracy], "accuracy_std": 0.0,
                         "n_images": int(n_images), "seed": int(seed)}, columns=EVALUATION_COLUMNS)


def masking_eps(config: EvaluationConfig) -> float | None:
    """The eps of the masking check's strong PGD: the non-zero eps nearest HEADLINE_EPS."""
    nonzero = [e for e in config.epsilons if e > 0]
    return min(nonzero, key=lambda e: abs(e - HEADLINE_EPS)) if nonzero else None


def evaluate(model, x: np.ndarray, y: np.ndarray, config: EvaluationConfig, *,
             on_table: Callable[[pd.DataFrame], None] | None = None,
             on_progress: OnProgress | None = None) -> tuple[pd.DataFrame, list[str] | None]:
    """Accuracy under every perturbation of `config`; returns (rows, masking flags).

    The flags are masking.masking_flags' sentences ([] when nothing looks masked), or None when
    no attack ran. Corruptions use the whole test set, attacks `config.attack_images` of it.
    """
    report = on_progress or (lambda phase, done, total: None)
    names = config.perturbations
    tables, attack_tables = [], []
    for i, name in enumerate(names, start=1):
        phase = f"{PERTURBATIONS[name].label} ({i}/{len(names)})"
        progress = (lambda done, total, phase=phase: report(phase, done, total))
        if PERTURBATIONS[name].kind == "corruption":
            from gradloss.engines.compiled import predict

            curve = corruptions.corruption_accuracy(
                lambda b: predict(model, b), x, y, names=(name,), severities=config.severities,
                seed=config.seed, on_progress=progress)
            rows = _rows(name, curve.severity, curve.accuracy, len(x), config.seed)
        elif PERTURBATIONS[name].kind == "certified":
            rows = certified(model, x, y, config, progress)
        else:
            attack_config = config.attack_config()
            curve = attacks.accuracy_vs_epsilon(model, x, y, name, attack_config,
                                                on_progress=progress)
            attack_tables.append(curve)
            rows = _rows(name, curve.epsilon, curve.accuracy, min(len(x), config.attack_images),
                         config.seed)
        tables.append(rows)
        if on_table:
            on_table(rows)
    table = pd.concat(tables, ignore_index=True) if tables else \
        pd.DataFrame(columns=EVALUATION_COLUMNS)
    if not attack_tables:
        return table, None
    flags = masking.masking_flags(pd.concat(attack_tables, ignore_index=True))
    return table, flags + masking_check(model, x, y, config, report)


def certified(model, x, y, config: EvaluationConfig, on_progress=None) -> pd.DataFrame:
    """Randomized smoothing's certified accuracy at each of the config's radii, on a stratified
    subset of `certify_images` test images (the same for every model)."""
    from gradloss.engines.compiled import predict

    keep = attacks.attack_subset(_labels(y), config.certify_images, config.seed)
    predictions, radii = certify.certify(
        lambda b: predict(model, b), np.asarray(x)[keep],
        config.smoothing_sigma, selection=config.smoothing_selection,
        samples=config.smoothing_samples, alpha=config.smoothing_alpha, seed=config.seed,
        rows=keep, on_progress=on_progress)
    curve = certify.certified_accuracy(predictions, radii, _labels(y)[keep], config.radii)
    return _rows(CERTIFIED, curve.radius, curve.accuracy, len(keep), config.seed)


def masking_check(model, x, y, config: EvaluationConfig, report: OnProgress) -> list[str]:
    """Check (c): default against strong PGD on the same masking_images images at masking_eps.

    Only the strong check's flag comes back (a one-eps curve skips checks (a) and (b)); [] when
    it passes or is skipped."""
    eps = masking_eps(config)
    if "pgd" not in config.attacks or not config.masking_images or eps is None:
        return []
    phase = "masking check: strong PGD"
    small = config.attack_config(epsilons=(eps,), n_images=config.masking_images)
    report(phase, 0, 2)
    default = attacks.accuracy_vs_epsilon(model, x, y, "pgd", small)
    report(phase, 1, 2)
    strong = attacks.accuracy_vs_epsilon(model, x, y, "pgd", small.strong())
    report(phase, 2, 2)
    return masking.masking_flags(default, strong)


def grid_examples(model, x: np.ndarray, y: np.ndarray, indices, config: EvaluationConfig
                  ) -> pd.DataFrame:
    """Each model's prediction on the grid images under every perturbation and level.

    Columns perturbation, level, index, label, prediction, confidence, image: `image` is the
    adversarial image (float16 bytes, the images' H x W x C) for attacks, None for corruptions
    (the page rebuilds those with corruptions.corrupt). Attacks run on the grid images alone; an
    image's attack depends only on its row, so it is the one the accuracy counted (if it was
    attacked).
    """
    from gradloss.engines.compiled import predict

    indices = np.asarray(indices)
    labels = _labels(y)[indices]
    clean = np.asarray(x[indices], dtype=np.float32)
    frames = []
    for name in config.perturbations:
        if PERTURBATIONS[name].kind == "certified":
            continue  # a certificate has no perturbed image to show
        for level in config.levels(name):
            if PERTURBATIONS[name].kind == "corruption":
                images = np.stack([corruptions.corrupt(x[i:i + 1], name, int(level),
                                                       seed=config.seed, offset=int(i))[0]
                                   for i in indices])
                blobs = [None] * len(indices)
            else:
                images = attacks.adversarial_examples(model, clean, labels, name, level,
                                                      config.attack_config(), rows=indices)
                blobs = [image_to_bytes(image) for image in images]
            probs = predict(model, images)
            frames.append(pd.DataFrame({
                "perturbation": name, "level": float(level), "index": indices, "label": labels,
                "prediction": probs.argmax(-1), "confidence": probs.max(-1), "image": blobs}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["perturbation", "level", "index", "label", "prediction", "confidence", "image"])
