"""The plan of one run: everything a process needs to train and measure it, as one frozen object.

A RunPlan is what travels: the CLI builds it from its arguments, the store keeps it with the run
(`config`, `sweep` and `data_dir` columns, the evaluation in its own table), the worker's runner
reads it back and hands it to the pipeline. It round-trips through JSON exactly:
`RunPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gradloss.core.config import SweepConfig, TrainConfig
from gradloss.core.evaluation import EvaluationConfig
from gradloss.core.validation import as_config, build_from_dict, fail


@dataclass(frozen=True)
class RunPlan:
    """Train `train`, sweep Gaussian noise as `sweep` says, then evaluate `evaluation` (if any)."""

    train: TrainConfig
    sweep: SweepConfig = field(default_factory=SweepConfig)
    evaluation: EvaluationConfig | None = None  # corruptions and attacks after the sweep
    data_dir: str | None = None  # the data folder found at submission; None: the loader's default;
    #                             for a file dataset (train.dataset_hash), the file or folder read
    architecture_path: str | None = None  # a .keras architecture's file (train.architecture_hash)

    def __post_init__(self):
        owner = "RunPlan"
        for name, kind in (("train", TrainConfig), ("sweep", SweepConfig)):
            object.__setattr__(self, name, as_config(owner, name, getattr(self, name), kind))
        evaluation = self.evaluation
        if isinstance(evaluation, dict):
            evaluation = EvaluationConfig.from_dict(evaluation)
        if evaluation is not None and not isinstance(evaluation, EvaluationConfig):
            fail(owner, "evaluation", "None, an EvaluationConfig or a dict of its fields",
                 evaluation)
        object.__setattr__(self, "evaluation",
                           evaluation if evaluation is not None and evaluation.perturbations
                           else None)
        for name in ("data_dir", "architecture_path"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                fail(owner, name, "None or a non-empty str (a path)", value)

    @property
    def evaluates(self) -> bool:
        return self.evaluation is not None

    def to_dict(self) -> dict:
        return {"train": self.train.to_dict(), "sweep": self.sweep.to_dict(),
                "evaluation": None if self.evaluation is None else self.evaluation.to_dict(),
                "data_dir": self.data_dir, "architecture_path": self.architecture_path}

    @classmethod
    def from_dict(cls, data: dict) -> "RunPlan":
        return build_from_dict(cls, dict(data))
