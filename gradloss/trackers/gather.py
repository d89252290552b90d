"""What the store holds of a run or an experiment, gathered for a tracker: the run's record, plan,
metrics, sweep, evaluation rows and model file; the experiment's runs and its summary over seeds
(the pairs every arm finished, `gradloss.analysis.experiments`), as the Robustness page shows it.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from gradloss.analysis import experiments, summary as results
from gradloss.core.errors import GradlossError
from gradloss.core.records import EvaluationPlan, ExperimentRecord, StoredRun
from gradloss.service.store import Store
from gradloss.service.store.artifacts import MODEL


@dataclass(frozen=True)
class RunResults:
    """One stored run and everything measured of it."""

    run: StoredRun
    evaluation: EvaluationPlan | None
    metrics: pd.DataFrame     # run_id, step, epoch, name, value
    sweep: pd.DataFrame       # run_id, sigma, accuracy, accuracy_std, draws, seed
    rows: pd.DataFrame        # evaluation rows: run_id, perturbation, level, accuracy, ...
    model: bytes | None       # the saved model.keras, if the store has it


@dataclass(frozen=True)
class ExperimentResults:
    """One stored experiment, its runs and its summaries (empty until two seeds are paired)."""

    record: ExperimentRecord
    runs: list[StoredRun]
    per_seed: pd.DataFrame               # arm, seed, sigma, accuracy (the pairs)
    summary: pd.DataFrame                # experiments.summary_table: every σ, then "auc"
    perturbation_per_seed: pd.DataFrame  # arm, seed, perturbation, level, accuracy
    perturbation_summary: pd.DataFrame   # summary.summarize_per_seed: per perturbation and level

    @property
    def n_seeds(self) -> int:
        return int(self.per_seed.seed.nunique()) if len(self.per_seed) else 0

    def tables(self) -> dict[str, str]:
        """File name -> text: the per-seed and summary tables (CSV, Markdown, LaTeX)."""
        if self.summary.empty:
            return {}
        files = experiments.exports(self.per_seed, self.summary)
        if not self.perturbation_summary.empty:
            files["perturbations_per_seed.csv"] = self.perturbation_per_seed.to_csv(index=False)
            files["perturbations_summary.csv"] = self.perturbation_summary.to_csv(index=False)
        return files


def run_results(store: Store, run_id: str) -> RunResults:
    """Everything the store holds of run `run_id` (RunNotFound names an unknown id)."""
    run = store.runs.get(run_id)
    return RunResults(run, store.evaluations.plan_of(run_id), store.results.metrics(run_id),
                      store.results.robustness(run_id), store.evaluations.rows(run_id),
                      store.artifacts.get(run_id, MODEL))


def experiment_results(store: Store, experiment_id: str) -> ExperimentResults:
    """The experiment `experiment_id` (ExperimentNotFound names an unknown id) with its
    summaries against its reference arm."""
    record = store.experiments.get(experiment_id)
    runs = store.runs.of_experiment(experiment_id)
    ids = [r.run_id for r in runs]
    per_seed = experiments.per_seed_table(runs, store.results.robustness(ids))
    perturbations = experiments.evaluation_per_seed_table(runs, store.evaluations.rows(ids))
    paired = per_seed.seed.nunique() >= 2 and record.spec is not None
    summary = (experiments.summary_table(per_seed, record.spec.reference) if paired
               else pd.DataFrame())
    perturbation_summary = (results.summarize_per_seed(perturbations, record.spec.reference)
                            if paired and perturbations.seed.nunique() >= 2 else pd.DataFrame())
    return ExperimentResults(record, runs, per_seed, summary, perturbations, perturbation_summary)


def selection(store: Store, experiment_id: str | None = None,
              run_ids: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(experiment ids, run ids) to export: one experiment and its runs, the runs named, or
    (neither given) every experiment and every run that has started."""
    if experiment_id is not None:
        store.experiments.get(experiment_id)  # ExperimentNotFound names it
        return [experiment_id], [r.run_id for r in store.runs.of_experiment(experiment_id)]
    if run_ids:
        return [], [store.runs.get(r).run_id for r in dict.fromkeys(run_ids)]  # RunNotFound
    runs = [r for r in store.runs.list() if r.status != "queued"]
    experiment_ids = [e.experiment_id for e in store.experiments.list()]
    if not runs and not experiment_ids:
        raise GradlossError(f"Nothing to export: the run store {store!r} holds no run that has "
                            "started.")
    return experiment_ids, [r.run_id for r in reversed(runs)]  # oldest first
