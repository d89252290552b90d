"""An experiment's spec: arms x seeds under one protocol, the unit in which objectives are compared.

An arm is an objective with its settings (any TrainConfig field but the protocol's shared ones);
every arm is trained with every seed. Seeds are paired: seed k of every arm starts from the same
initial weights and trains on the same subset, because TrainConfig derives both from the seed.
The runs of an experiment are ordinary runs, planned seed-major (seed 0 of every arm, then seed
1, ...) so that a partly finished experiment already holds complete pairs. Every run carries the
experiment's sweep and evaluation (`plans`), so a submitted experiment measures what a local
one does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gradloss.core.config import (ARCHITECTURES, DATASETS, ENGINES, OBJECTIVES, SweepConfig,
                                  TrainConfig, check_source)
from gradloss.core.evaluation import EvaluationConfig
from gradloss.core.plan import RunPlan
from gradloss.core.validation import (as_config, build_from_dict, check_choice, check_int,
                                      fail, plain)

MAX_SEEDS = 20       # an experiment trains arms x seeds runs; more seeds belong in several experiments
MIN_SEEDS_INTERVAL = 2  # a Student t interval needs two seeds
NEED_TWO = "an interval needs at least 2 seeds"
# The dataset and architecture a file names: shared by every arm, like the dataset itself.
SOURCE_FIELDS = {"dataset_hash": None, "dataset_size": None, "architecture": "cnn",
                 "architecture_hash": None, "initial_weights": False, "from_logits": False}
PROTOCOL_FIELDS = ("dataset", "train_size", "engine", "deterministic", "seed",
                   *SOURCE_FIELDS)  # shared by every arm
MAX_ARM_NAME = 64    # characters: a name is a label in tables and legends


def _arm(owner: str, arm) -> dict:
    """An arm as a dict with its 'name' and 'objective'; an objective's name alone is an arm."""
    if isinstance(arm, str):
        arm = {"objective": arm}
    if not isinstance(arm, dict) or "objective" not in arm:
        fail(owner, "arms", "a sequence of objective names or dicts with an 'objective' key", arm)
    check_choice(owner, "arms", arm["objective"], OBJECTIVES)
    shared = sorted(set(arm) & set(PROTOCOL_FIELDS))
    if shared:
        fail(owner, "arms", f"arms without the protocol's shared fields {list(PROTOCOL_FIELDS)} "
             "(seeds are paired on them)", arm)
    name = arm.get("name", arm["objective"])
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_ARM_NAME \
            or not name.isprintable():
        fail(owner, "arms", f"arms whose 'name' is a printable str of 1 to {MAX_ARM_NAME} "
             "characters", name if not isinstance(name, str) else name[:MAX_ARM_NAME + 10])
    return {"name": name, **{k: plain(v) for k, v in arm.items() if k != "name"}}


@dataclass(frozen=True)
class ExperimentConfig:
    """Arms x seeds under one protocol; None epochs/batch_size: each objective's reference."""

    arms: tuple = ("gradient", "baseline")  # objective names, or dicts {objective, name?, settings}
    seeds: tuple[int, ...] | int = 3      # seed values, or a count n meaning 0 .. n-1
    dataset: str = "fashion_mnist"
    train_size: int | None = None          # None: the whole training set
    epochs: int | None = None              # for every arm that does not set its own
    batch_size: int | None = None          # likewise
    engine: str = "tensorflow"
    deterministic: bool = False
    reference: str = "baseline"            # the arm every other arm is compared with
    intervals: bool = True                 # False allows one seed (a single-run comparison)
    evaluation: EvaluationConfig | None = None  # corruptions and attacks after every run's sweep
    sweep: SweepConfig = field(default_factory=SweepConfig)  # every run's noise sweep
    dataset_hash: str | None = None        # a file dataset: see TrainConfig
    dataset_size: int | None = None
    architecture: str = "cnn"              # a built-in architecture or a .keras file's name
    architecture_hash: str | None = None
    initial_weights: bool = False
    from_logits: bool = False

    def __post_init__(self):
        owner = "ExperimentConfig"
        arms = (self.arms,) if isinstance(self.arms, (str, dict)) else self.arms
        if not isinstance(arms, (tuple, list)) or not arms:
            fail(owner, "arms", "a non-empty sequence of arms", self.arms, "at least one objective")
        arms = tuple(_arm(owner, a) for a in arms)
        names = [a["name"] for a in arms]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            fail(owner, "arms", "arms with distinct names (give a repeated objective a 'name')",
                 repeated)
        object.__setattr__(self, "arms", arms)
        if not isinstance(self.intervals, bool):
            fail(owner, "intervals", "a bool", self.intervals)
        low = MIN_SEEDS_INTERVAL if self.intervals else 1
        why = f" ({NEED_TWO})" if self.intervals else ""
        seeds = plain(self.seeds)
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            if not low <= seeds <= MAX_SEEDS:
                fail(owner, "seeds", f"a count in the range [{low}, {MAX_SEEDS}]{why}", seeds,
                     f"a whole number from {low} to {MAX_SEEDS}{why}")
            seeds = tuple(range(seeds))
        if not isinstance(seeds, (tuple, list)):
            fail(owner, "seeds", "an int count or a sequence of seed values", seeds)
        for s in seeds:
            check_int(owner, "seeds", s, 0, 2**31 - 1)
        if len(set(seeds)) != len(seeds) or not low <= len(seeds) <= MAX_SEEDS:
            fail(owner, "seeds", f"between {low} and {MAX_SEEDS} distinct seed values{why}",
                 list(seeds))
        object.__setattr__(self, "seeds", tuple(int(s) for s in seeds))
        for name in ("train_size", "epochs", "batch_size"):  # checked by every run's TrainConfig
            object.__setattr__(self, name, plain(getattr(self, name)))
        check_source(owner, "dataset", self.dataset, self.dataset_hash, DATASETS, "")
        check_source(owner, "architecture", self.architecture, self.architecture_hash,
                     ARCHITECTURES, ".keras")
        check_choice(owner, "engine", self.engine, ENGINES)
        if self.reference not in names:
            fail(owner, "reference", f"the name of one of the arms {names}", self.reference)
        evaluation = self.evaluation
        if isinstance(evaluation, dict):  # its own message on bad fields
            evaluation = EvaluationConfig.from_dict(dict(evaluation))
        if evaluation is not None and not isinstance(evaluation, EvaluationConfig):
            fail(owner, "evaluation", "None, an EvaluationConfig or a dict of its fields",
                 evaluation)
        object.__setattr__(self, "evaluation",
                           evaluation if evaluation is not None and evaluation.perturbations
                           else None)
        object.__setattr__(self, "sweep", as_config(owner, "sweep", self.sweep, SweepConfig))
        self.configs()  # every run's TrainConfig checks the rest, with its own message

    @property
    def arm_names(self) -> list[str]:
        return [a["name"] for a in self.arms]

    def configs(self) -> list[tuple[str, TrainConfig]]:
        """(arm name, TrainConfig) of every run, seed-major: all arms of a seed come together."""
        shared = {"dataset": self.dataset, "train_size": self.train_size, "engine": self.engine,
                  "deterministic": self.deterministic, "epochs": self.epochs,
                  "batch_size": self.batch_size,
                  **{name: getattr(self, name) for name in SOURCE_FIELDS}}
        return [(arm["name"], TrainConfig.from_dict(
                    {**shared, **{k: v for k, v in arm.items() if k != "name"}, "seed": seed}))
                for seed in self.seeds for arm in self.arms]

    def plans(self, data_dir: str | None = None,
              architecture_path: str | None = None) -> list[tuple[str, RunPlan]]:
        """(arm name, RunPlan) of every run, seed-major, each with this experiment's sweep and
        evaluation."""
        return [(arm, RunPlan(config, self.sweep, self.evaluation, data_dir, architecture_path))
                for arm, config in self.configs()]

    @property
    def n_runs(self) -> int:
        return len(self.arms) * len(self.seeds)

    def to_dict(self) -> dict:
        """JSON data; `from_dict` gives back an equal ExperimentConfig."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["arms"], data["seeds"] = [dict(a) for a in self.arms], list(self.seeds)
        data["sweep"] = self.sweep.to_dict()
        for name, default in SOURCE_FIELDS.items():  # stored as before they existed, if unused
            if data[name] == default:
                del data[name]
        if self.evaluation is None:
            del data["evaluation"]  # as an experiment without one was stored before it existed
        else:
            data["evaluation"] = self.evaluation.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ExperimentConfig":
        """Build from a plain dict (a stored spec, a form); unknown keys are refused."""
        data = dict(data)
        for key in ("arms", "seeds"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return build_from_dict(cls, data)
