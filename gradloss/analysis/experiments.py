"""Experiment results: progress over the runs, the seeds every arm has finished (the pairs), and
their summaries (means and paired differences with intervals, `gradloss.analysis.stats`), the
sentences that say them and the exports a paper needs. Pure pandas over typed run records.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gradloss.analysis import stats

LEVEL_NAME = "σ"


# --- progress --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExperimentProgress:
    total: int
    counts: dict = field(default_factory=dict)  # status -> number of runs
    eta_s: float | None = None                  # None: not known until a run of each arm finished

    @property
    def finished(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("done", "failed", "cancelled"))

    def text(self) -> str:
        """"7 of 10 runs done", with failures, cancellations and the ETA when there are some."""
        words = [f"{self.counts.get('done', 0)} of {self.total} runs done"]
        words += [f"{self.counts[s]} {s}" for s in ("running", "failed", "cancelled")
                  if self.counts.get(s)]
        return ", ".join(words)


def _duration(run) -> float | None:
    if run.status == "done" and None not in (run.started_at, run.finished_at):
        return run.finished_at - run.started_at
    return None


def experiment_progress(runs, now: float | None = None) -> ExperimentProgress:
    """Counts and the whole experiment's ETA (one worker: the remaining runs one after another).

    A queued run is expected to last as long as the finished runs of its arm (their median);
    a running one, that minus its time so far, or its own training ETA when that is longer.
    """
    now = time.time() if now is None else now
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    typical = {}
    for arm in {r.arm for r in runs}:
        durations = sorted(d for r in runs if r.arm == arm and (d := _duration(r)) is not None)
        if durations:
            typical[arm] = durations[len(durations) // 2]
    eta = 0.0
    for run in runs:
        own_eta = run.progress.eta_s
        if run.status == "queued":
            if run.arm not in typical:
                return ExperimentProgress(len(runs), counts, None)
            eta += typical[run.arm]
        elif run.status == "running":
            left = [x for x in (own_eta,
                                typical.get(run.arm, 0) - (now - (now if run.started_at is None else run.started_at)))
                    if x is not None]
            if run.arm not in typical and own_eta is None:
                return ExperimentProgress(len(runs), counts, None)
            eta += max(0.0, *left)
    return ExperimentProgress(len(runs), counts, eta)


# --- results ---------------------------------------------------------------------------------

def paired_runs(runs) -> dict[str, tuple[str, int]]:
    """run_id -> (arm, seed) of the finished runs whose seed every arm has finished (the pairs).

    `runs` are the experiment's runs (with .arm, .config, .status)."""
    done = [r for r in runs if r.status == "done" and r.config is not None]  # unreadable: None
    arms = {r.arm for r in runs}
    seeds_by_arm = {a: {r.config.seed for r in done if r.arm == a} for a in arms}
    paired = set.intersection(*seeds_by_arm.values()) if seeds_by_arm else set()
    return {r.run_id: (r.arm, r.config.seed) for r in done if r.config.seed in paired}


def _paired_frame(runs, keep: dict, rows: pd.DataFrame, columns: list[str],
                  by: list[str]) -> pd.DataFrame:
    """`rows` (of the runs in `keep`) as arm, seed and `columns`, sorted by `by` with the arms
    in the experiment's order."""
    frame = pd.DataFrame({"arm": [keep[i][0] for i in rows.run_id],
                          "seed": [keep[i][1] for i in rows.run_id],
                          **{c: rows[c].to_numpy() for c in columns}})
    order = {a: k for k, a in enumerate(dict.fromkeys(r.arm for r in runs))}
    return frame.sort_values(by, key=lambda c: c.map(order) if c.name == "arm" else c,
                             kind="stable").reset_index(drop=True)


def per_seed_table(runs, robustness: pd.DataFrame) -> pd.DataFrame:
    """Columns arm, seed, sigma, accuracy of the seeds that every arm has finished (the pairs).

    `runs` are the experiment's runs (with .arm, .config, .status), `robustness` their sweeps."""
    keep = paired_runs(runs)
    rows = robustness[robustness.run_id.isin(list(keep))]
    return _paired_frame(runs, keep, rows, ["sigma", "accuracy"], ["arm", "seed", "sigma"])


def evaluation_per_seed_table(runs, evaluations: pd.DataFrame) -> pd.DataFrame:
    """Columns arm, seed, perturbation, level, accuracy of the pairs' corruptions and attacks.

    `evaluations` are the runs' evaluation rows (run_id, perturbation, level, accuracy, ...).
    Only the (perturbation, level) points that every paired run has are kept, so each point
    compares the same seeds (an evaluation still running, or failed, holds its level back)."""
    keep = paired_runs(runs)
    rows = evaluations[evaluations.run_id.isin(list(keep))]
    complete = rows.groupby(["perturbation", "level"]).run_id.transform("nunique") == len(keep)
    return _paired_frame(runs, keep, rows[complete], ["perturbation", "level", "accuracy"],
                         ["perturbation", "arm", "seed", "level"])


def summary_table(per_seed: pd.DataFrame, reference: str) -> pd.DataFrame:
    """stats.summarize per sigma, then the normalised area under each curve (level 'auc'); its
    p-values adjusted over this table (`corrected` widens the family)."""
    return stats.adjust_tables(pd.concat([stats.summarize(per_seed, reference),
                                          stats.summarize_auc(per_seed, reference)],
                                         ignore_index=True))[0]


def corrected(*summaries: pd.DataFrame) -> list[pd.DataFrame]:
    """An experiment's summaries with their p-values adjusted as one family (Benjamini–Hochberg):
    every paired difference the experiment reports, i.e. each non-reference arm at each σ and
    the AUC, and each corruption and attack level and headline (pass every table shown)."""
    return stats.adjust_tables(*summaries)


def difference(summary: pd.DataFrame, arm: str, level) -> stats.Comparison | None:
    """The paired difference arm - reference at `level` with its p-values, or None (the
    reference arm, or a level not summarised)."""
    row = summary[(summary.arm == arm) & (summary.level.astype(str) == str(level))]
    if row.empty or math.isnan(row["diff"].iloc[0]):
        return None
    r = row.iloc[0]
    return stats.Comparison(
        stats.Interval(float(r["diff"]), float(r.diff_low), float(r.diff_high), int(r.n)),
        float(r.p_value), float(r.p_adjusted), int(r.family))


def sentences(summary: pd.DataFrame, reference: str, level, labels: dict | None = None,
              level_name: str = LEVEL_NAME) -> list[str]:
    """One plain sentence per non-reference arm at level `level` (of noise σ by default)."""
    labels = labels or {}
    out = []
    for arm in dict.fromkeys(summary.arm):
        diff = difference(summary, arm, level)
        if diff is not None:
            out.append(stats.difference_sentence(labels.get(arm, arm), labels.get(reference, reference),
                                                 level_name, level, diff))
    return out


def exports(per_seed: pd.DataFrame, summary: pd.DataFrame) -> dict[str, str]:
    """File name -> text: per-seed and summary CSV, the summary as Markdown and LaTeX."""
    return {"per_seed.csv": per_seed.to_csv(index=False),
            "summary.csv": summary.to_csv(index=False),
            "summary.md": stats.to_markdown(summary),
            "summary.tex": stats.to_latex(summary)}


def write_exports(per_seed: pd.DataFrame, summary: pd.DataFrame, out: str | Path) -> list[Path]:
    """Write `exports` into folder `out`; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in exports(per_seed, summary).items():
        (out / name).write_text(text)
        paths.append(out / name)
    return paths


@dataclass(frozen=True)
class Summaries:
    """Every summary an experiment reports, its p-values adjusted as one family (`corrected`):
    under noise (each σ and the AUC), each perturbation's headline, and each perturbation per
    level. Whatever a page or the CLI shows of it, the claims are corrected alike."""

    noise: pd.DataFrame                      # summary_table of the noise sweeps
    headlines: pd.DataFrame                  # summary.headline_summary ('perturbation' column)
    perturbations: dict = field(default_factory=dict)  # name -> summary_table per level

    @property
    def family(self) -> int:
        return int(self.noise.family.iloc[0]) if len(self.noise) else 0


def summaries(per_seed: pd.DataFrame, per_seed_perturbations: pd.DataFrame | None,
              reference: str) -> Summaries:
    """The experiment's Summaries from its paired per-seed rows: `per_seed` (arm, seed, sigma,
    accuracy) and `per_seed_perturbations` (arm, seed, perturbation, level, accuracy; None or
    empty when it measured noise only); both need two seeds."""
    from gradloss.analysis import summary as results

    noise = summary_table(per_seed, reference)
    rows = per_seed_perturbations
    if rows is None or rows.empty or rows.seed.nunique() < 2:
        return Summaries(*corrected(noise), results.headline_summary(
            pd.DataFrame(columns=["arm", "seed", "perturbation", "level", "accuracy"]), reference))
    headlines = results.headline_summary(rows, reference)
    names = list(dict.fromkeys(rows.perturbation))
    per_level = [summary_table(rows[rows.perturbation == name].drop(columns="perturbation")
                               .rename(columns={"level": "sigma"}), reference) for name in names]
    noise, headlines, *per_level = corrected(noise, headlines, *per_level)
    return Summaries(noise, headlines, dict(zip(names, per_level)))
