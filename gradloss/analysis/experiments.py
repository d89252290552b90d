"""Experiments: arms x seeds under one protocol, the unit in which objectives are compared.

An arm is an objective with its settings (any TrainConfig field but the protocol's shared ones);
every arm is trained with every seed. Seeds are paired: seed k of every arm starts from the same
initial weights and trains on the same subset, because TrainConfig derives both from the seed.
The runs of an experiment are ordinary runs, listed seed-major (seed 0 of every arm, then seed
1, ...) so that a partly finished experiment already holds complete pairs. Results are the
runs' robustness sweeps, summarised by `gradloss.stats`.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from gradloss.analysis import stats
from gradloss.core.config import DATASETS, ENGINES, OBJECTIVES, TrainConfig
from gradloss.core.validation import build_from_dict, check_choice, check_int, fail

MAX_SEEDS = 20       # an experiment trains arms x seeds runs; more seeds belong in several experiments
MIN_SEEDS_INTERVAL = 2  # a Student t interval needs two seeds
PROTOCOL_FIELDS = ("dataset", "train_size", "engine", "deterministic", "seed")  # shared by every arm
LEVEL_NAME = "σ"


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
    if not isinstance(name, str) or not name:
        fail(owner, "arms", "arms whose 'name' is a non-empty str", arm)
    return {"name": name, **{k: v for k, v in arm.items() if k != "name"}}


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
    evaluation: dict | None = None         # EvaluationConfig fields: corruptions and attacks
                                           # after every run's sweep (None: none)

    def __post_init__(self):
        owner = "ExperimentConfig"
        arms = (self.arms,) if isinstance(self.arms, (str, dict)) else self.arms
        if not isinstance(arms, (tuple, list)) or not arms:
            fail(owner, "arms", "a non-empty sequence of arms", self.arms)
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
        why = f" ({stats.NEED_TWO})" if self.intervals else ""
        seeds = self.seeds
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            if not low <= seeds <= MAX_SEEDS:
                fail(owner, "seeds", f"a count in the range [{low}, {MAX_SEEDS}]{why}", seeds)
            seeds = tuple(range(seeds))
        if not isinstance(seeds, (tuple, list)):
            fail(owner, "seeds", "an int count or a sequence of seed values", seeds)
        for s in seeds:
            check_int(owner, "seeds", s, 0, 2**31 - 1)
        if len(set(seeds)) != len(seeds) or not low <= len(seeds) <= MAX_SEEDS:
            fail(owner, "seeds", f"between {low} and {MAX_SEEDS} distinct seed values{why}",
                 list(seeds))
        object.__setattr__(self, "seeds", tuple(seeds))
        check_choice(owner, "dataset", self.dataset, DATASETS)
        check_choice(owner, "engine", self.engine, ENGINES)
        if self.reference not in names:
            fail(owner, "reference", f"the name of one of the arms {names}", self.reference)
        if self.evaluation is not None:
            from gradloss.perturbations.family import EvaluationConfig
            if not isinstance(self.evaluation, (dict, EvaluationConfig)):
                fail(owner, "evaluation", "None, or a dict of EvaluationConfig fields",
                     self.evaluation)
            evaluation = self.evaluation if isinstance(self.evaluation, EvaluationConfig) else \
                EvaluationConfig.from_dict(dict(self.evaluation))  # its own message on bad fields
            object.__setattr__(self, "evaluation", evaluation.to_dict()
                               if evaluation.perturbations else None)
        self.configs()  # every run's TrainConfig checks the rest, with its own message

    @property
    def arm_names(self) -> list[str]:
        return [a["name"] for a in self.arms]

    def configs(self) -> list[tuple[str, TrainConfig]]:
        """(arm name, TrainConfig) of every run, seed-major: all arms of a seed come together."""
        shared = {"dataset": self.dataset, "train_size": self.train_size, "engine": self.engine,
                  "deterministic": self.deterministic, "epochs": self.epochs,
                  "batch_size": self.batch_size}
        return [(arm["name"], TrainConfig.from_dict(
                    {**shared, **{k: v for k, v in arm.items() if k != "name"}, "seed": seed}))
                for seed in self.seeds for arm in self.arms]

    @property
    def n_runs(self) -> int:
        return len(self.arms) * len(self.seeds)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["arms"], data["seeds"] = [dict(a) for a in self.arms], list(self.seeds)
        if self.evaluation is None:
            del data["evaluation"]  # as an experiment without one was stored before it existed
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ExperimentConfig":
        """Build from a plain dict (a stored spec, a form); unknown keys are refused."""
        data = dict(data)
        for key in ("arms", "seeds"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return build_from_dict(cls, data)


# --- Home's quick compare ------------------------------------------------------------------
# Chosen by measurement (bench/quick_compare.py; its table is in bench/README.md): the preset
# whose difference at sigma = 0.1 came closest to the full protocol's, with all its runs
# estimated within 10 minutes on 2 CPU cores and one worker. On a GPU: the full protocol.
QUICK_PRESETS = {  # dataset -> train_size (None: all), epochs (None: each objective's reference)
    "fashion_mnist": {"train_size": 5000, "epochs": None},
    "digits": {"train_size": None, "epochs": None},
}
QUICK_ARMS = ("gradient", "baseline")  # the reference comparison, as calibrated; Train queues any
QUICK_SEEDS = 3
# What the calibration found per preset (3 seeds): all runs' minutes on 2 unloaded CPU cores,
# estimated from CPU time (the machine was shared), and the difference gradient - baseline at
# sigma = 0.1 in points with its 95 % interval.
QUICK_MEASURED = {
    "fashion_mnist": {"minutes": (5, 10), "diff": (-0.3, -5.5, 5.0)},
    "digits": {"minutes": (1, 2), "diff": (-2.9, -4.1, -1.8)},
}
GPU_SEEDS = 5  # the full protocol, where the worker has a GPU


def quick_experiment(dataset: str, gpu: bool = False, engine: str = "tensorflow") -> ExperimentConfig:
    """Home's one-click comparison: QUICK_ARMS with the quick preset (or on a GPU, the full
    protocol), several seeds."""
    check_choice("quick_experiment", "dataset", dataset, DATASETS)
    preset = {"train_size": None, "epochs": None} if gpu else QUICK_PRESETS[dataset]
    return ExperimentConfig(arms=QUICK_ARMS, seeds=GPU_SEEDS if gpu else QUICK_SEEDS,
                            dataset=dataset, engine=engine, **preset)


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
        own_eta = (run.progress or {}).get("eta_s")
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
    done = [r for r in runs if r.status == "done" and "seed" in r.config]  # unreadable rows: {}
    arms = {r.arm for r in runs}
    seeds_by_arm = {a: {r.config["seed"] for r in done if r.arm == a} for a in arms}
    paired = set.intersection(*seeds_by_arm.values()) if seeds_by_arm else set()
    return {r.run_id: (r.arm, r.config["seed"]) for r in done if r.config["seed"] in paired}


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
    """stats.summarize per sigma, then the normalised area under each curve (level 'auc')."""
    return pd.concat([stats.summarize(per_seed, reference),
                      stats.summarize_auc(per_seed, reference)], ignore_index=True)


def difference(summary: pd.DataFrame, arm: str, level) -> stats.Interval | None:
    """The paired difference arm - reference at `level` as an Interval, or None (reference arm)."""
    row = summary[(summary.arm == arm) & (summary.level.astype(str) == str(level))]
    if row.empty or math.isnan(row["diff"].iloc[0]):
        return None
    r = row.iloc[0]
    return stats.Interval(float(r["diff"]), float(r.diff_low), float(r.diff_high), int(r.n))


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
