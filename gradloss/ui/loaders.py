"""What the pages read, assembled from the store and the analysis (no Streamlit): an
experiment's paired results and summary, the runs to compare, the test images of a grid.

The pages wrap these in `st.cache_data` (`widgets`) keyed by what can change them, and draw
them with `views`, `experiment_views` and `perturbation_views`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gradloss.analysis import experiments, summary as results
from gradloss.core.evaluation import PERTURBATIONS
from gradloss.core.records import StoredRun
from gradloss.perturbations import corruptions, gaussian
from gradloss.perturbations.images import image_from_bytes


@dataclass(frozen=True)
class ExperimentResults:
    """An experiment's complete pairs, and their summaries against its reference, corrected as
    one family (`analysis.experiments.summaries`)."""

    per_seed: pd.DataFrame     # arm, seed, sigma, accuracy of the seeds every arm finished
    perturbations: pd.DataFrame  # arm, seed, perturbation, level, accuracy of the same pairs
    summaries: experiments.Summaries | None  # None until two seeds are paired
    reference: str

    @property
    def summary(self) -> pd.DataFrame:
        """The summary under noise (every σ, then the AUC)."""
        return self.summaries.noise if self.summaries else pd.DataFrame()

    @property
    def n_seeds(self) -> int:
        return int(self.per_seed.seed.nunique())

    @property
    def sigmas(self) -> list[float]:
        return sorted(float(s) for s in self.per_seed.sigma.unique())


def experiment_results(store, experiment_id: str, reference: str) -> ExperimentResults:
    """The experiment's paired sweeps, corruptions and attacks and, once two seeds are paired,
    their summaries (every claim corrected over the whole experiment)."""
    runs = store.runs.of_experiment(experiment_id)
    ids = [r.run_id for r in runs]
    per_seed = experiments.per_seed_table(runs, store.results.robustness(ids))
    perturbations = experiments.evaluation_per_seed_table(runs, store.evaluations.rows(ids))
    found = (experiments.summaries(per_seed, perturbations, reference)
             if per_seed.seed.nunique() >= 2 else None)
    return ExperimentResults(per_seed, perturbations, found, reference)


def experiment_perturbations(store, experiment_id: str) -> pd.DataFrame:
    """Per-seed corruptions and attacks of the experiment's pairs (arm, seed, perturbation,
    level, accuracy)."""
    runs = store.runs.of_experiment(experiment_id)
    return experiments.evaluation_per_seed_table(runs, store.evaluations.rows(
        [r.run_id for r in runs]))


def sweeps(store, run_ids) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The runs' noise sweeps and their grid predictions under noise."""
    return store.results.robustness(list(run_ids)), {i: store.results.examples(i)
                                                     for i in run_ids}


def perturbation_results(store, run_ids, sweep: pd.DataFrame):
    """(every accuracy in summary.RESULT_COLUMNS, the evaluation rows, {run_id: plan},
    {run_id: grid predictions under perturbations}) of the runs."""
    rows = store.evaluations.rows(list(run_ids))
    return (results.results(sweep, rows), rows, store.evaluations.plans(list(run_ids)),
            {i: store.evaluations.examples(i) for i in run_ids})


def test_images(dataset: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """(x_test, class names) of a dataset (a built-in's name, or a file's "name@hash" label:
    read from the run store's copy), for the image grids."""
    from gradloss.data import load_dataset

    if "@" in dataset:
        from gradloss.service.store import Store
        from gradloss.service.uploads import local_file

        name, prefix = dataset.rsplit("@", 1)
        store = Store.default()
        info = store.files.info(prefix)
        if info is None:
            raise FileNotFoundError(f"the run store holds no dataset {dataset}")
        d = load_dataset(name, data_dir=local_file(store, info["sha256"], "dataset"),
                         sha256=info["sha256"])
        return d.x_test, d.class_names
    d = load_dataset(dataset)
    return d.x_test, d.class_names


def noisy_grid(x_test: np.ndarray, indices, sigma: float, seed: int) -> np.ndarray:
    """The grid images exactly as the sweep fed them to the models at `sigma`."""
    return gaussian.noisy_images(x_test, list(indices), sigma, seed=seed)


def perturbed_grid(x_test: np.ndarray, indices, perturbation: str, level: float, seed: int,
                   examples: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Per grid image: (the image as the model saw it, the attack's perturbation scaled to
    [0, 1] around grey 0.5, or None for a corruption)."""
    out = []
    if PERTURBATIONS[perturbation].kind == "corruption":
        for index in indices:
            image = corruptions.corrupt(x_test[index:index + 1], perturbation, int(level),
                                        seed=seed, offset=int(index))[0]
            out.append((image, None))
        return out
    rows = examples[(examples.perturbation == perturbation)
                    & np.isclose(examples.level, level)].set_index("index")
    for index in indices:
        if index in rows.index and rows.image[index] is not None:
            adversarial = image_from_bytes(rows.image[index], x_test.shape[1:])
            delta = adversarial - x_test[index]
            out.append((adversarial, 0.5 + delta / (2 * max(level, 1e-12))))
        else:
            out.append((x_test[index], None))
    return out


def finished_runs(runs: list[StoredRun]) -> list[StoredRun]:
    return [r for r in runs if r.status == "done"]
