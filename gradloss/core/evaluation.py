"""What to perturb test images with, by name, and how hard: the registry and its configs.

`PERTURBATIONS` maps a name to its kind ("noise", "corruption", "attack"), its levels (sigma,
severities 1-5 or eps), a label and the name of its level, so that pages and the CLI iterate
one registry. Gaussian noise stays the default and the run's own sweep (`sweep.py`, stored in
the run's robustness table); the others run after it as an `EvaluationConfig` says.
Plain data: the dashboard, the store's records and the configs import this; the implementations
(`gradloss.perturbations`: corruptions, attacks, the suite) import their names from here.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from numbers import Real
from typing import NamedTuple

from gradloss.core.config import REFERENCE_SIGMAS
from gradloss.core.validation import build_from_dict, check_choice, check_float, check_int, fail

# Names only: the implementations (perturbations.corruptions, perturbations.attacks) import these.
# Append corruptions at the end: a corruption's index in CORRUPTIONS seeds its noise.
CORRUPTIONS = ("shot_noise", "impulse_noise", "speckle_noise", "gaussian_blur", "motion_blur",
               "contrast", "brightness", "pixelate", "rotate", "shear")
SEVERITIES = (1, 2, 3, 4, 5)
ATTACKS = ("fgsm", "pgd", "square")
PGD_STEP_FACTOR = 2.5  # step size = PGD_STEP_FACTOR * eps / steps (Madry et al.)
STRONG_PGD = {"steps": 40, "restarts": 5}  # the gradient-masking check's stronger PGD


@dataclass(frozen=True)
class AttackConfig:
    """An attack sweep: accuracy at each L-infinity budget eps."""

    epsilons: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)  # 0: clean accuracy
    steps: int = 10            # PGD iterations; step size 2.5 * eps / steps
    restarts: int = 1          # random starts of PGD, restarts of Square
    square_queries: int = 50   # Square Attack iterations (queries per image); see the docstring
    n_images: int = 1000       # attacked test images: a seeded, class-stratified subset
    seed: int = 0              # the subset, PGD's random starts and Square's squares
    batch_size: int = 100      # images per compiled call (the fastest on CPU, bench/README.md)

    def __post_init__(self):
        owner = "AttackConfig"
        epsilons = (self.epsilons,) if isinstance(self.epsilons, Real) else tuple(self.epsilons)
        if not epsilons:
            fail(owner, "epsilons", "a non-empty sequence of floats in the range [0.0, 1.0]",
                  epsilons)
        for eps in epsilons:
            check_float(owner, "epsilons", eps, 0.0, 1.0)  # images live in [0, 1]
        object.__setattr__(self, "epsilons", tuple(float(e) for e in epsilons))
        for name, low, high in (("steps", 1, None), ("restarts", 1, None),
                                ("square_queries", 1, None), ("n_images", 1, None),
                                ("seed", 0, 2**31 - 1), ("batch_size", 1, None)):
            object.__setattr__(self, name, check_int(owner, name, getattr(self, name), low, high))

    def strong(self) -> "AttackConfig":
        """The same sweep with the masking check's stronger PGD (40 steps, 5 random starts)."""
        return replace(self, **STRONG_PGD)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AttackConfig":
        return build_from_dict(cls, data)



KINDS = ("noise", "corruption", "attack", "certified")
GAUSSIAN = "gaussian"
CERTIFIED = "certified"  # randomized smoothing's certified accuracy against the L2 radius
HEADLINE_EPS = 0.1  # robust accuracy is quoted at this eps (RobustBench uses 0.3 on MNIST)
HEADLINE_RADIUS = 0.25  # certified accuracy is quoted at this L2 radius
RADII = (0.0, 0.25, 0.5, 0.75, 1.0)  # default radii of the certified-accuracy curve


class Perturbation(NamedTuple):
    name: str
    kind: str            # one of KINDS
    levels: tuple        # the default levels: sigmas, severities or eps
    label: str           # for pickers and tables
    level_name: str      # "σ", "severity", "ε" or "radius"


def _label(name: str) -> str:
    return name.replace("_", " ")


ATTACK_LABELS = {"fgsm": "FGSM", "pgd": "PGD", "square": "Square (black-box)"}
PERTURBATIONS: dict[str, Perturbation] = {
    GAUSSIAN: Perturbation(GAUSSIAN, "noise", REFERENCE_SIGMAS, "Gaussian noise", "σ"),
    **{n: Perturbation(n, "corruption", SEVERITIES, _label(n), "severity") for n in CORRUPTIONS},
    **{n: Perturbation(n, "attack", AttackConfig().epsilons, ATTACK_LABELS[n], "ε")
       for n in ATTACKS},
    CERTIFIED: Perturbation(CERTIFIED, "certified", RADII, "certified (randomized smoothing)",
                            "radius"),
}
EVALUATED = tuple(n for n, p in PERTURBATIONS.items() if p.kind != "noise")  # after the sweep
# What an evaluation runs unless asked otherwise: certification costs about a training, so it
# is asked for by name.
DEFAULT_EVALUATED = tuple(n for n in EVALUATED if n != CERTIFIED)


def of_kind(kind: str) -> tuple[str, ...]:
    """Names of the perturbations of one kind, in registry order."""
    check_choice("of_kind", "kind", kind, KINDS)
    return tuple(n for n, p in PERTURBATIONS.items() if p.kind == kind)


@dataclass(frozen=True)
class EvaluationConfig:
    """What runs after a run's Gaussian sweep: corruptions and attacks, and how hard."""

    perturbations: tuple[str, ...] = DEFAULT_EVALUATED  # any of EVALUATED; () runs nothing
    severities: tuple[int, ...] = SEVERITIES    # of every corruption, in 1..5
    epsilons: tuple[float, ...] = AttackConfig().epsilons  # of every attack, in [0, 1]
    steps: int = 10                  # PGD iterations (step size 2.5 eps / steps)
    restarts: int = 1                # PGD random starts, Square restarts
    square_queries: int = 50         # Square Attack iterations; see attacks.py for the cost
    attack_images: int = 1000        # attacked test images (a stratified subset); corruptions: all
    masking_images: int = 200        # images of the masking check's strong PGD (0: skip it)
    seed: int = 0                    # corruption noise, attack subset and random starts
    # "certified": randomized smoothing's CERTIFY (Cohen, Rosenfeld & Kolter 2019)
    smoothing_sigma: float = 0.25    # sigma of the smoothing noise
    smoothing_selection: int = 100   # noise samples that pick each image's class (n0)
    smoothing_samples: int = 1000    # noise samples that estimate its probability (n)
    smoothing_alpha: float = 0.001   # the certificate fails with probability at most alpha
    radii: tuple[float, ...] = RADII  # L2 radii of the certified-accuracy curve
    certify_images: int = 500        # certified test images (a stratified subset)

    def __post_init__(self):
        owner = "EvaluationConfig"
        names = (self.perturbations,) if isinstance(self.perturbations, str) else \
            tuple(self.perturbations)
        for name in names:
            check_choice(owner, "perturbations", name, EVALUATED)
        object.__setattr__(self, "perturbations", tuple(dict.fromkeys(names)))
        severities = (self.severities,) if isinstance(self.severities, Real) else \
            tuple(self.severities)
        if not severities:
            fail(owner, "severities", "a non-empty sequence of ints in the range [1, 5]", severities)
        object.__setattr__(self, "severities", tuple(sorted({
            check_int(owner, "severities", severity, 1, 5) for severity in severities})))
        epsilons = (self.epsilons,) if isinstance(self.epsilons, Real) else tuple(self.epsilons)
        if not epsilons:
            fail(owner, "epsilons", "a non-empty sequence of floats in the range [0.0, 1.0]",
                 epsilons)
        for eps in epsilons:
            check_float(owner, "epsilons", eps, 0.0, 1.0)  # also refuses NaN and inf
        object.__setattr__(self, "epsilons", tuple(sorted({float(e) for e in epsilons})))
        for name, low, high in (("steps", 1, None), ("restarts", 1, None),
                                ("square_queries", 1, None), ("attack_images", 1, None),
                                ("masking_images", 0, None), ("seed", 0, 2**31 - 1),
                                ("smoothing_selection", 1, None), ("smoothing_samples", 1, None),
                                ("certify_images", 1, None)):
            object.__setattr__(self, name, check_int(owner, name, getattr(self, name), low, high))
        object.__setattr__(self, "smoothing_sigma", check_float(
            owner, "smoothing_sigma", self.smoothing_sigma, 0.0, low_open=True))
        object.__setattr__(self, "smoothing_alpha", check_float(
            owner, "smoothing_alpha", self.smoothing_alpha, 0.0, 0.5, low_open=True))
        radii = (self.radii,) if isinstance(self.radii, Real) else tuple(self.radii)
        if not radii:
            fail(owner, "radii", "a non-empty sequence of floats in the range [0.0, inf)", radii)
        object.__setattr__(self, "radii", tuple(sorted({check_float(owner, "radii", r, 0.0)
                                                        for r in radii})))

    @property
    def corruptions(self) -> tuple[str, ...]:
        return tuple(n for n in self.perturbations if PERTURBATIONS[n].kind == "corruption")

    @property
    def attacks(self) -> tuple[str, ...]:
        return tuple(n for n in self.perturbations if PERTURBATIONS[n].kind == "attack")

    def attack_config(self, **changes) -> AttackConfig:
        """The AttackConfig of this evaluation's attacks."""
        config = AttackConfig(epsilons=self.epsilons, steps=self.steps, restarts=self.restarts,
                              square_queries=self.square_queries, n_images=self.attack_images,
                              seed=self.seed)
        return replace(config, **changes)

    def levels(self, name: str) -> tuple:
        """The levels this evaluation runs `name` at."""
        kind = PERTURBATIONS[name].kind
        return {"corruption": self.severities, "certified": self.radii}.get(kind, self.epsilons)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EvaluationConfig":
        return build_from_dict(cls, data)


# Digits has 360 test images, all of them attacked by the default config: attack fewer, so
# that a tiny run's full suite takes a minute or two on CPU, not ten.
SMALL_DATASET_EVALUATION = {"digits": {"attack_images": 100, "masking_images": 50}}


def default_evaluation(dataset: str) -> EvaluationConfig:
    """The full suite the dashboard and CLI queue after training on `dataset`."""
    return EvaluationConfig(**SMALL_DATASET_EVALUATION.get(dataset, {}))
