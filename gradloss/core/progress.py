"""How far a run is: the one definition that the training loop and runner write and every page reads.

The store keeps it as a JSON object (`Progress.to_dict`); readers rebuild it with
`Progress.from_dict`, which tolerates the missing fields of a run that has not got far yet.
"""
from __future__ import annotations

import math
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
        """Tolerant: fields that are missing, unknown or of the wrong type (a row written by
        another version, or damaged) keep their defaults, so a reader never fails on one."""
        data = data if isinstance(data, dict) else {}
        kept = {}
        for f in fields(cls):
            value = data.get(f.name)
            if value is None or isinstance(value, bool):
                continue
            if f.name == "phase":
                if isinstance(value, str):
                    kept[f.name] = value
            elif f.name in _FLOATS:
                if isinstance(value, (int, float)) and math.isfinite(value):
                    kept[f.name] = float(value)
            elif isinstance(value, int):
                kept[f.name] = value
        return cls(**kept)


_FLOATS = ("fraction", "eta_s", "loss")
