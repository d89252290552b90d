"""A robustness–accuracy frontier as an experiment: objectives at several strengths, one protocol.

One strength per objective answers a narrow question: a stronger penalty buys robustness with
clean accuracy, so "A is more robust than B" may only say that A was set stronger. A frontier
trains each objective that takes a strength (`objectives.PARAMETERS`: the penalty weight λ, the
training noise σ) at every value of a grid, with the same seeds, epochs and batch size for every
arm, and compares objectives where their clean accuracies meet (`analysis.frontier`).

It is an ordinary `ExperimentConfig` (arms × seeds, paired seeds): it is stored, queued,
trained, exported and resumed as any experiment is. An arm is named after its objective and
strength, "input_gradient λ=0.1", "noise_augmented σ_train=0.1"; `arm_strengths` reads them back from any experiment.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from gradloss import objectives
from gradloss.core.experiment import ExperimentConfig
from gradloss.core.validation import check_float, fail

# The default grids, weakest first. mse_penalty: λ = 0 is plain MSE and λ* = K²/4D (28 × 28 × 1
# images, 10 classes) the gradient loss's own weight, with points either side; input_gradient
# around its reference 0.1; noise_augmented around its reference σ = 0.1.
DEFAULT_GRIDS = {
    "mse_penalty": (0.0, 0.01, round(objectives.LAMBDA_STAR_28x28x1_10, 4), 0.1, 0.3),
    "input_gradient": (0.01, 0.03, 0.1, 0.3, 1.0),
    "noise_augmented": (0.05, 0.1, 0.2, 0.3, 0.5),
}
DEFAULT_OBJECTIVES = ("gradient", "mse_penalty", "input_gradient", "noise_augmented")
# One protocol for every arm: the gradient loss's (batch 100, 10 epochs), so that arms differ in
# their loss and strength only.
DEFAULT_EPOCHS, DEFAULT_BATCH_SIZE = 10, 100
# One symbol per strength everywhere (arm names, charts, labels): σ_train, so that noise
# augmentation's strength is never read as the test noise's σ
SYMBOLS = {"penalty_weight": "λ", "train_noise_sigma": "σ_train"}
MAX_GRID = 12  # strengths per objective: each is `seeds` more runs


def strength_parameter(objective: str) -> str | None:
    """The parameter that sets `objective`'s strength (None: it has none, one point, or this
    version does not know the objective)."""
    known = objectives.REGISTRY.get(objective)
    return next(iter(known.params)) if known is not None and known.params else None


# The objectives that take a strength (a frontier sweeps it, a search looks for it)
STRENGTH_OBJECTIVES = tuple(o for o in objectives.NAMES if strength_parameter(o))


def strength_words(objective: str, strength: float | None, digits: int | None = None) -> str:
    """'λ=0.1' for the input-gradient penalty at 0.1; '' for an objective without a strength.
    `digits`: significant digits shown (None: as many as the value needs, as arm names do)."""
    parameter = strength_parameter(objective)
    if parameter is None or strength is None or strength != strength:  # None or NaN
        return ""
    shown = f"{strength:g}" if digits is None else f"{strength:.{digits}g}"
    return f"{SYMBOLS.get(parameter, parameter)}={shown}"


def arm_name(objective: str, strength: float | None) -> str:
    """'input_gradient λ=0.1'; an objective without a strength is named by itself."""
    words = strength_words(objective, strength)
    return f"{objective} {words}" if words else objective


def _grid(objective: str, grid) -> tuple[float, ...]:
    owner, name = "frontier_experiment", f"grids[{objective!r}]"
    parameter = strength_parameter(objective)
    if parameter is None:
        if grid is not None:
            fail(owner, name, f"None: {objective} takes no strength", grid)
        return ()
    grid = DEFAULT_GRIDS.get(objective) if grid is None else grid
    if isinstance(grid, (int, float)):
        grid = (grid,)
    if not isinstance(grid, (tuple, list)) or not 1 <= len(grid) <= MAX_GRID:
        fail(owner, name, f"a sequence of 1 to {MAX_GRID} strengths", grid)
    (low, high), _, _ = objectives.PARAMETERS[parameter]
    values = tuple(sorted(float(check_float(owner, name, v, low, high)) for v in grid))
    if len(set(values)) != len(values):
        fail(owner, name, "distinct strengths", list(grid))
    return values


def frontier_arms(objective_names: Sequence[str] = DEFAULT_OBJECTIVES,
                  grids: Mapping[str, Sequence[float] | None] | None = None) -> tuple[dict, ...]:
    """Every objective at every strength of its grid (`DEFAULT_GRIDS` where `grids` names none),
    weakest first; an objective without a strength is one arm."""
    grids = dict(grids or {})
    unknown = sorted(set(grids) - set(objective_names))
    if unknown:
        fail("frontier_experiment", "grids", f"grids of the chosen objectives {list(objective_names)}",
             unknown)
    arms = []
    for objective in objective_names:
        objectives.get(objective)  # an unknown name: its KeyError names the known ones
        parameter = strength_parameter(objective)
        values = _grid(objective, grids.get(objective))
        if not values:
            arms.append({"objective": objective})
        arms += [{"name": arm_name(objective, v), "objective": objective, parameter: v}
                 for v in values]
    return tuple(arms)


def frontier_experiment(objective_names: Sequence[str] = DEFAULT_OBJECTIVES,
                        grids: Mapping[str, Sequence[float] | None] | None = None, *,
                        epochs: int | None = DEFAULT_EPOCHS,
                        batch_size: int | None = DEFAULT_BATCH_SIZE, **fields) -> ExperimentConfig:
    """The frontier's experiment: `frontier_arms` under one protocol (`epochs` and `batch_size`
    for every arm; None would give each objective its reference, which a frontier should not).
    `fields`: any other ExperimentConfig field (seeds, dataset, train_size, sweep, ...); the
    reference arm is the first."""
    arms = frontier_arms(objective_names, grids)
    fields.setdefault("reference", arms[0].get("name", arms[0]["objective"]))
    return ExperimentConfig(arms=arms, epochs=epochs, batch_size=batch_size, **fields)


def arm_strengths(spec: ExperimentConfig) -> dict[str, tuple[str, float | None]]:
    """arm name -> (objective, strength) of any experiment, read from its first seed's configs
    (which hold the arm's strength, else the objective's reference); None for an objective
    without one."""
    found = {}
    for arm, config in spec.configs()[:len(spec.arms)]:
        parameter = strength_parameter(config.objective)
        found[arm] = (config.objective,
                      None if parameter is None else float(getattr(config, parameter)))
    return found
