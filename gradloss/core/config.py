"""Run configuration: frozen dataclasses validated once, where they enter.

Every error names the parameter, what is allowed and the value received, in the
scikit-learn shape: "The 'epochs' parameter of TrainConfig must be an int in the
range [1, inf). Got 0 instead."
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from numbers import Integral, Real

from gradloss import objectives
from gradloss.core.errors import (InvalidParameterError)  # noqa: F401  (re-exported: callers import it from here)
from gradloss.core.validation import build_from_dict, check_choice, check_float, check_int, fail

# Built-in datasets by name (gradloss.data.builtin); a run may also train on a .npz file or an
# image folder, named by its file's name and identified by its content hash (dataset_hash).
DATASETS = ("fashion_mnist", "digits", "mnist", "cifar10", "cifar100")
# Built-in architectures by name (gradloss.models), each sized from the dataset; a run may also
# train a user's .keras file, named by its file's name and identified by architecture_hash.
ARCHITECTURES = ("cnn", "mlp", "resnet")
OBJECTIVES = objectives.NAMES  # gradient, baseline, noise_augmented, input_gradient, mse
ENGINES = ("tensorflow", "jax")
# Each objective's reference protocol (batch size, epochs, own parameters; Adam defaults for
# all), from the registry in gradloss/objectives.
REFERENCE_PROTOCOL = {name: o.protocol for name, o in objectives.REGISTRY.items()}
REFERENCE_SIGMAS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
# Accuracies reported by the reference experiment, by objective and sigma.
REFERENCE_ACCURACY = {
    "gradient": {0.0: 0.9033, 0.1: 0.8619},
    "baseline": {0.0: 0.907, 0.1: 0.8154},
}
# Training-set sizes, for checking batch_size and train_size before any data is read.
TRAIN_SET_SIZES = {"fashion_mnist": 60_000, "digits": 1_437,  # digits: 80 % of 1797
                   "mnist": 60_000, "cifar10": 50_000, "cifar100": 50_000}
# Documented maxima (README "Limits"); batch_size is at most the training-set size in use.
MAX_EPOCHS = 500              # 25x the reference protocol's longest (20); beyond is a typo
MAX_SEED = 2**31 - 1          # what every backend's seeding accepts
MIN_TRAIN_SIZE = 10           # the maximum is the training-set size (TrainConfig.available)
HASH_CHARS = 64               # a content hash: SHA-256 in hex


@dataclass(frozen=True)
class TrainConfig:
    """One training run: which objective, on which data, for how long."""

    objective: str = "gradient"     # one of OBJECTIVES (gradloss/objectives: what each trains)
    dataset: str = "fashion_mnist"  # a built-in (DATASETS; "digits" works offline) or a file's name
    epochs: int | None = None       # None: the objective's reference protocol (gradient 10, ...)
    batch_size: int | None = None   # None: the objective's reference (gradient 100, ...), capped
                                    # at the training-set size (a train_size of 10 trains in 10s)
    learning_rate: float = 1e-3     # Adam's default
    train_size: int | None = None   # None: the whole training set; else a stratified subset
    seed: int = 0                   # weights, shuffling and subset all follow from it
    engine: str = "tensorflow"      # Keras backend that trains: "tensorflow" or "jax"
    deterministic: bool = False     # GPU: deterministic kernels, bit-repeatable, ~3x slower steps
    # The objectives' own parameters. None: the reference value where the objective takes the
    # parameter, else absent; a value for an objective that does not take it is an error.
    train_noise_sigma: float | None = None  # noise_augmented: sigma of N(0, sigma^2) on x
    penalty_weight: float | None = None     # input_gradient, mse_penalty: lambda of the penalty
    # A file dataset (.npz or image folder; gradloss.data.describe fills these): its content
    # hash, so runs on two different "my.npz" never compare, and its training-set size.
    dataset_hash: str | None = None
    dataset_size: int | None = None
    architecture: str = "cnn"       # a built-in (ARCHITECTURES) or a .keras file's name
    architecture_hash: str | None = None  # a .keras file's content hash
    initial_weights: bool = False   # a .keras file: start from its weights (else fresh, seeded)
    from_logits: bool = False       # a .keras file that outputs logits: softmax is appended

    def __post_init__(self):
        owner = "TrainConfig"
        check_choice(owner, "objective", self.objective, OBJECTIVES)
        check_source(owner, "dataset", self.dataset, self.dataset_hash, DATASETS, "")
        check_source(owner, "architecture", self.architecture, self.architecture_hash,
                     ARCHITECTURES, ".keras")
        if self.dataset_hash is None and self.dataset_size is not None:
            fail(owner, "dataset_size", f"None for built-in dataset {self.dataset!r}",
                 self.dataset_size)
        if self.dataset_hash is not None:
            if self.dataset_size is None:
                fail(owner, "dataset_size", "the training-set size of file dataset "
                     f"{self.dataset!r} (gradloss.data.describe gives it)", None)
            check_int(owner, "dataset_size", self.dataset_size, 2)
        check_choice(owner, "engine", self.engine, ENGINES)
        for name in ("deterministic", "initial_weights", "from_logits"):
            if not isinstance(getattr(self, name), bool):
                fail(owner, name, "a bool", getattr(self, name))
        for name in ("initial_weights", "from_logits"):
            if getattr(self, name) and self.architecture_hash is None:
                fail(owner, name, f"False for built-in architecture {self.architecture!r} (it "
                     "applies to a .keras model file)", True)
        reference = REFERENCE_PROTOCOL[self.objective]
        batch_from_reference = self.batch_size is None
        for name in ("epochs", "batch_size", *objectives.PARAMETERS):
            if getattr(self, name) is None and name in reference:
                object.__setattr__(self, name, reference[name])
        for name, ((low, high), _, _) in objectives.PARAMETERS.items():
            value = getattr(self, name)
            if name not in reference and value is not None:
                takers = [o for o in OBJECTIVES if name in REFERENCE_PROTOCOL[o]]
                fail(owner, name, f"None for objective {self.objective!r} (it applies to "
                     f"{' and '.join(map(repr, takers))} only)", value)
            if value is not None:
                object.__setattr__(self, name, check_float(owner, name, value, low, high))
        checked = {"epochs": check_int(owner, "epochs", self.epochs, 1, MAX_EPOCHS),
                   "learning_rate": check_float(owner, "learning_rate", self.learning_rate, 0.0,
                                                low_open=True),
                   "seed": check_int(owner, "seed", self.seed, 0, MAX_SEED)}
        if self.train_size is not None:
            checked["train_size"] = check_int(owner, "train_size", self.train_size,
                                              MIN_TRAIN_SIZE, self.available)
        for name, value in checked.items():  # Python numbers, whatever was passed (NumPy's)
            object.__setattr__(self, name, value)
        if batch_from_reference:
            object.__setattr__(self, "batch_size", min(self.batch_size, self.n_train))
        if isinstance(self.batch_size, Integral) and self.batch_size > self.n_train:
            fail(owner, "batch_size", f"an int in the range [1, {self.n_train}] (at most the "
                 "training-set size: lower it, or raise train_size)", self.batch_size,
                 f"a whole number from 1 to {self.n_train}")
        object.__setattr__(self, "batch_size", check_int(owner, "batch_size", self.batch_size, 1,
                                                         self.n_train))

    @property
    def objective_params(self) -> dict:
        """The objective's own parameters and their values ({} for most objectives)."""
        return {name: getattr(self, name) for name in objectives.PARAMETERS
                if getattr(self, name) is not None}

    @property
    def available(self) -> int:
        """Number of images in the dataset's training set."""
        return self.dataset_size if self.dataset_hash is not None else TRAIN_SET_SIZES[self.dataset]

    @property
    def n_train(self) -> int:
        """Number of training images this run uses."""
        return self.train_size if self.train_size is not None else self.available

    @property
    def dataset_label(self) -> str:
        """The dataset for people and for comparing runs: "my.npz@1a2b3c4d5e6f" for a file."""
        return source_label(self.dataset, self.dataset_hash)

    @property
    def architecture_label(self) -> str:
        return source_label(self.architecture, self.architecture_hash)

    @property
    def steps_per_epoch(self) -> int:
        return self.n_train // self.batch_size  # fixed-size batches: the last partial one is dropped

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Build from a plain dict (a stored row, a form); unknown keys are refused."""
        return build_from_dict(cls, data)


def source_label(name: str, sha256: str | None) -> str:
    """A built-in's name, or a file's name with the start of its content hash."""
    return name if sha256 is None else f"{name}@{sha256[:12]}"


def check_source(owner: str, name: str, value, sha256, builtins: tuple[str, ...],
                 suffix: str) -> None:
    """A built-in name, or (with a content hash) a file's name: printable, no folder."""
    if sha256 is None:
        check_choice(owner, name, value, builtins)
        return
    if not (isinstance(sha256, str) and len(sha256) == HASH_CHARS
            and all(c in "0123456789abcdef" for c in sha256)):
        fail(owner, f"{name}_hash", f"a SHA-256 in {HASH_CHARS} lowercase hex digits", sha256)
    if not (isinstance(value, str) and value.strip() and value.isprintable()
            and "/" not in value and value.endswith(suffix)):
        fail(owner, name, f"a file's name{f' ending in {suffix}' if suffix else ''} (with a "
             f"{name}_hash), or one of {builtins}", value)


def batchable(configs: list[TrainConfig]) -> bool:
    """True when `configs` may train as one seed batch (`seed_batch.train_seeds`): all on the
    jax engine, alike but for their seeds, which are distinct, and drawing no training noise."""
    if not configs or any(c.engine != "jax" for c in configs):
        return False
    if configs[0].objective == "noise_augmented":  # its noise follows each run's own seed
        return False
    alike = {tuple(sorted({**c.to_dict(), "seed": 0}.items())) for c in configs}
    return len(alike) == 1 and len({c.seed for c in configs}) == len(configs)


@dataclass(frozen=True)
class SweepConfig:
    """A robustness sweep: test accuracy under Gaussian noise N(0, sigma^2)."""

    sigmas: tuple[float, ...] = REFERENCE_SIGMAS
    draws: int = 3        # independent noise draws per sigma; accuracy_std is over these
    seed: int = 0         # same seed -> the same noise for every model
    batch_size: int = 100  # prediction batch (models.PREDICT_BATCH, the fastest on CPU)

    def __post_init__(self):
        owner = "SweepConfig"
        sigmas = self.sigmas
        if isinstance(sigmas, Real):
            sigmas = (sigmas,)
        sigmas = tuple(sigmas)
        if not sigmas:
            fail(owner, "sigmas", "a non-empty sequence of floats in the range [0.0, inf)", sigmas)
        for s in sigmas:
            check_float(owner, "sigmas", s, 0.0)
        object.__setattr__(self, "sigmas", tuple(float(s) for s in sigmas))
        for name, low, high in (("draws", 1, None), ("seed", 0, 2**31 - 1),
                                ("batch_size", 1, None)):
            object.__setattr__(self, name, check_int(owner, name, getattr(self, name), low, high))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SweepConfig":
        return build_from_dict(cls, data)
