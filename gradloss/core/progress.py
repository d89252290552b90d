"""How far a run is: the one definition that the training loop and runner write and every page reads.

The store keeps it as a JSON object (`Progress.to_dict`); readers rebuild it with
`Progress.from_dict`, which tolerates the missing fields of a run that has not got far yet.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Progress:
    fraction: float = 0.0           # of all training steps of the run, in [0, 1]
    step: int = 0                   # global step, 1-based
    total_steps: int | None = None
    epoch: int = 0                  # 1-based
    epochs: int | None = None
    eta_s: float | None = None      # seconds of training left, from this call's pace
    loss: float | None = None       # last step's loss
    sweep_done: int = 0             # evaluations done of the robustness sweep after training
    sweep_total: int = 0            # 0: the sweep has not started
    phase: str = ""                 # after the sweep: the evaluation step, e.g. "PGD (12/13)";
                                    # sweep_done/sweep_total then count that step's parts

    @property
    def trained(self) -> bool:
        return self.fraction >= 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Progress":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known and v is not None})
