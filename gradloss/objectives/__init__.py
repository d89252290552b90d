"""The training objectives: one registry entry each, and the one place their protocols live.

Each entry gives the name stored with a run, a label for people, a one-line description, a
colour (every chart draws an objective in its colour), its reference protocol (batch size,
epochs, Adam defaults) and the values of its own parameters. The losses themselves are written
once in `losses` (keras.ops, with the input gradient from `shim` on each backend); this module
imports neither, so config, pages and CLI read it without Keras.

Why these protocols (README, "Objectives"): the cross-entropy objectives train like the
baseline (Keras fit() defaults, batch 32, 20 epochs) and `mse` like the gradient loss (batch
100, 10 epochs), so each differs from its neighbour in the loss only. `penalty_weight` = 0.1
for `input_gradient` comes from a measured sweep (bench/README.md, "penalty_sweep").
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Objective:
    name: str
    label: str
    description: str
    color: str
    epochs: int
    batch_size: int
    params: dict = field(default_factory=dict)  # {parameter: reference value}

    @property
    def protocol(self) -> dict:
        """Batch size, epochs and own parameters of the reference protocol."""
        return {"epochs": self.epochs, "batch_size": self.batch_size, **self.params}


# Parameters some objectives take: ((low, high) allowed, label, help line for forms).
PARAMETERS = {
    "train_noise_sigma": ((0.0, 1.0), "Training noise σ",
                          "σ of the Gaussian noise added to each training batch (pixels in "
                          "[0, 1]), drawn fresh each step"),
    # 1e4: far above any useful weight (the sweep: bench/README.md), low enough to catch a typo
    "penalty_weight": ((0.0, 1e4), "Penalty weight λ",
                       "weight of the input-gradient penalty mean_i ‖∂L_i/∂x_i‖² (L: the "
                       "objective's per-example loss, CE or MSE)"),
}

# λ* = K² / (4 D) of the reference datasets (10 classes, 28 x 28 x 1 images): the member of the
# MSE family that is the gradient loss up to the factor K² / 4 (objectives.losses).
LAMBDA_STAR_28x28x1_10 = 10 ** 2 / (4 * 28 * 28)

REGISTRY = {o.name: o for o in (
    Objective("gradient", "gradient loss",
              "G = mean((∂S/∂x)²) + mean((∂S/∂y)²), S = MSE(one-hot y, softmax): the loss under study",
              "#1f77b4", epochs=10, batch_size=100),
    Objective("baseline", "baseline (cross-entropy)",
              "categorical cross-entropy on clean images, as Keras fit() trains by default",
              "#ff7f0e", epochs=20, batch_size=32),
    Objective("noise_augmented", "noise augmentation",
              "cross-entropy on x + N(0, σ²) noise drawn fresh each step (Bishop 1995; Ford et al. 2019)",
              "#2ca02c", epochs=20, batch_size=32, params={"train_noise_sigma": 0.1}),
    Objective("input_gradient", "input-gradient penalty",
              "cross-entropy + λ·mean‖∂CE/∂x‖², double backpropagation (Drucker & LeCun 1992)",
              "#d62728", epochs=20, batch_size=32, params={"penalty_weight": 0.1}),
    Objective("mse", "plain MSE",
              "S alone, MSE between one-hot y and softmax: the gradient loss without the gradient term",
              "#9467bd", epochs=10, batch_size=100),
    Objective("mse_penalty", "MSE + input-gradient penalty",
              "S + λ·mean‖∂S_b/∂x_b‖²: the family of the gradient loss (λ* = K²/4D) and plain MSE (λ = 0)",
              "#8c564b", epochs=10, batch_size=100,
              params={"penalty_weight": LAMBDA_STAR_28x28x1_10}),
)}
NAMES = tuple(REGISTRY)  # gradient and baseline first


def get(name: str) -> Objective:
    """The registry entry of `name`; an unknown name raises a KeyError naming the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"Unknown objective {name!r}; known: {NAMES}.") from None


def label(name: str) -> str:
    """The label for people, or the name itself for an objective this version does not know."""
    return REGISTRY[name].label if name in REGISTRY else name


def color(name: str) -> str:
    return REGISTRY[name].color if name in REGISTRY else "#7f7f7f"
