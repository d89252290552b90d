"""Reference results that ship with gradloss: what was measured at the full protocol, as data
with its provenance (commit, engine, device, date, seeds), so every machine's dashboard can show
it beside the user's own runs, labelled as such.

The data is `reference_results.json` beside this module. It holds summaries as measured (the
mean and 95 % interval per objective and σ, the paired difference to the baseline with its
interval); where the per-seed values were not kept, it says so in its provenance.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

FILE = Path(__file__).with_name("reference_results.json")


@dataclass(frozen=True)
class ReferenceResults:
    title: str
    provenance: dict
    reference: str          # the arm the differences are taken against
    table: pd.DataFrame     # arm, level, mean, low, high, diff, diff_low, diff_high

    def difference(self, arm: str, level: str) -> tuple[float, float, float] | None:
        """(mean, low, high) of arm - reference at level ("0.1", "auc", ...), or None."""
        rows = self.table[(self.table.arm == arm) & (self.table.level == level)]
        if rows.empty or pd.isna(rows["diff"].iloc[0]):
            return None
        r = rows.iloc[0]
        return float(r["diff"]), float(r.diff_low), float(r.diff_high)

    def label(self) -> str:
        """'Every objective, full reference protocol, 5 seeds (jax on NVIDIA H200, 2026-11-27,
        commit b58b6fa)'."""
        p = self.provenance
        return (f"{self.title} ({p['engine']} on {p['device']}, {p['date']}, commit "
                f"{p['commit']})")


@cache
def load() -> ReferenceResults:
    """The shipped reference results."""
    data = json.loads(FILE.read_text())
    rows = []
    for arm, levels in data["arms"].items():
        for level, (mean, low, high) in levels.items():
            diff = data["differences"].get(arm, {}).get(level, [None, None, None])
            rows.append({"arm": arm, "level": level, "mean": mean, "low": low, "high": high,
                         "diff": diff[0], "diff_low": diff[1], "diff_high": diff[2]})
    table = pd.DataFrame(rows).astype({c: float for c in ("mean", "low", "high", "diff",
                                                          "diff_low", "diff_high")})
    return ReferenceResults(data["title"], data["provenance"], data["reference"], table)
