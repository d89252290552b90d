"""A strength search: Optuna picks an objective's strength trial by trial, trading clean accuracy
against accuracy under noise, so the trials trace the objective's front without a fixed grid.

`SearchConfig` is what a user asks for: the objective (one that takes a strength,
`frontier.strength_parameter`), the range searched, how many trials, how many at once, and the
protocol every trial trains under (`train`: a TrainConfig whose strength each trial replaces; same
seed, epochs and batch for every trial, so trials differ in their strength only). Each trial is
an ordinary run; its two values are the run's clean accuracy and its accuracy at `sigma` from
its own noise sweep. `service.search` keeps the study in the store's database and drives it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from gradloss import objectives
from gradloss.core.config import SweepConfig, TrainConfig
from gradloss.core.frontier import STRENGTH_OBJECTIVES, arm_name, strength_parameter
from gradloss.core.plan import RunPlan
from gradloss.core.validation import (as_config, build_from_dict, check_float, check_int,
                                      fail)

MAX_TRIALS = 200   # trials of one search; each is a run
MAX_PARALLEL = 16  # trials in flight at once (one per worker that should take one)
# Where each objective's search looks by default: its frontier grid's span, widened a little.
# mse_penalty's grid starts at 0 (plain MSE), which a log scale cannot hold: 0.001 stands in.
DEFAULT_RANGES = {"mse_penalty": (0.001, 1.0), "input_gradient": (0.003, 3.0),
                  "noise_augmented": (0.02, 0.6)}
DEFAULT_TRIALS = 12


@dataclass(frozen=True)
class SearchConfig:
    """Search `train.objective`'s strength in [low, high] (None: DEFAULT_RANGES) over `trials`
    trials, `parallel` at a time; each trial trains `train` at its strength and is scored by
    clean accuracy and accuracy under N(0, sigma²) (`sigma` must be one of the sweep's)."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(objective="input_gradient",
                                                                   epochs=10, batch_size=100))
    low: float | None = None
    high: float | None = None
    log: bool = True        # sample the strength on a log scale (strengths span decades)
    trials: int = DEFAULT_TRIALS
    parallel: int = 1       # 1: each trial is asked with every earlier result known
    sigma: float = 0.1      # the robust objective: accuracy under noise of this σ
    sweep: SweepConfig = field(default_factory=SweepConfig)

    def __post_init__(self):
        owner = "SearchConfig"
        train = as_config(owner, "train", self.train, TrainConfig)
        sweep = as_config(owner, "sweep", self.sweep, SweepConfig)
        object.__setattr__(self, "train", train)
        object.__setattr__(self, "sweep", sweep)
        parameter = strength_parameter(train.objective)
        if parameter is None:
            fail(owner, "objective",
                 f"an objective with a strength among {list(STRENGTH_OBJECTIVES)}",
                 train.objective, "one of " + ", ".join(STRENGTH_OBJECTIVES))
        if not isinstance(self.log, bool):
            fail(owner, "log", "a bool", self.log)
        (lowest, highest), _, _ = objectives.PARAMETERS[parameter]
        default_low, default_high = DEFAULT_RANGES.get(train.objective, (lowest, highest))
        low = check_float(owner, "low", default_low if self.low is None else self.low,
                          lowest, highest)
        high = check_float(owner, "high", default_high if self.high is None else self.high,
                           lowest, highest)
        if self.log and low <= 0:
            fail(owner, "low", "a float above 0 on a log scale (to start at 0, sample on a "
                 "linear scale: log=False, --linear)", low)
        if not high > low:
            fail(owner, "high", f"a float above low={low:g}", high)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "trials", check_int(owner, "trials", self.trials, 2, MAX_TRIALS))
        object.__setattr__(self, "parallel",
                           check_int(owner, "parallel", self.parallel, 1, MAX_PARALLEL))
        sigma = check_float(owner, "sigma", self.sigma, 0.0, low_open=True)
        if not any(math.isclose(sigma, s) for s in sweep.sigmas):
            fail(owner, "sigma", f"one of the sweep's σ > 0 {[s for s in sweep.sigmas if s > 0]}",
                 sigma)
        object.__setattr__(self, "sigma", sigma)

    @property
    def objective(self) -> str:
        return self.train.objective

    @property
    def parameter(self) -> str:
        """The TrainConfig field a trial sets: 'penalty_weight' or 'train_noise_sigma'."""
        return strength_parameter(self.objective)

    def plan(self, strength: float, data_dir: str | None = None) -> RunPlan:
        """The RunPlan of a trial at `strength`: `train` with that strength, this sweep."""
        return RunPlan(replace(self.train, **{self.parameter: float(strength)}), self.sweep,
                       data_dir=data_dir)

    def trial_name(self, number: int, strength: float) -> str:
        """A trial run's arm: 'trial 3: input_gradient λ=0.12'."""
        return f"trial {number}: {arm_name(self.objective, float(f'{strength:.3g}'))}"

    def to_dict(self) -> dict:
        return {"train": self.train.to_dict(), "low": self.low, "high": self.high,
                "log": self.log, "trials": self.trials, "parallel": self.parallel,
                "sigma": self.sigma, "sweep": self.sweep.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "SearchConfig":
        return build_from_dict(cls, dict(data))
