"""Tests for gradloss.experiments and the experiment verbs of the store and client (no worker)."""
import re

import numpy as np
import pandas as pd
import pytest

from gradloss.core.plan import RunPlan
from gradloss.core.progress import Progress
from gradloss.analysis import stats
from gradloss.core.config import OBJECTIVES, REFERENCE_PROTOCOL
from gradloss.core.errors import ExperimentNotFound, InvalidParameterError
from gradloss.analysis.experiments import (experiment_progress, exports, per_seed_table, sentences,
                                           summary_table)
from gradloss.core.experiment import ExperimentConfig
from gradloss.service import client, tasks
from gradloss.service.store import Store
from gradloss.ui import loaders

TINY = {"dataset": "digits", "train_size": 200, "epochs": 1}
SIGMAS = (0.0, 0.1, 0.2)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def store(home):
    return Store.default()


@pytest.mark.parametrize("spec, message", [
    ({"seeds": 1}, r"'seeds' parameter of ExperimentConfig must be a count in the range \[2, 20\]"),
    ({"seeds": 21}, r"must be a count in the range \[2, 20\]"),
    ({"seeds": (3, 3)}, "distinct seed values"),
    ({"arms": ("gradient", "gradient")}, "arms with distinct names"),
    ({"arms": ("gradient", "nope")}, "'arms' parameter of ExperimentConfig must be a str among"),
    ({"arms": ("gradient",)}, "'reference' parameter of ExperimentConfig must be the name of one"),
    ({"arms": ({"objective": "gradient", "train_size": 50}, "baseline")},
     "without the protocol's shared fields"),
    ({"arms": ({"objective": "gradient", "epochs": 0}, "baseline")},
     "'epochs' parameter of TrainConfig"),
    ({"arms": ({"objective": "gradient", "name": "a\x00b"}, "baseline")}, "whose 'name' is a printable str"),
    ({"arms": ({"objective": "gradient", "name": "two\nlines"}, "baseline")}, "of 1 to 64 characters"),
    ({"arms": ({"objective": "gradient", "name": "x" * 5_000_000}, "baseline")},
     r"of 1 to 64 characters\. Got 'x{74}' instead"),
    ({"arms": ({"objective": "gradient", "name": "  "}, "baseline")}, "whose 'name' is a printable str"),
    ({"colour": "red"}, "Unknown ExperimentConfig parameter"),
    ({"evaluation": {"perturbations": ["fog"]}}, "'perturbations' parameter of EvaluationConfig"),
    ({"evaluation": "all"}, "'evaluation' parameter of ExperimentConfig must be None, an EvaluationConfig or a dict"),
])
def test_config_refuses_bad_specs_with_the_reason(spec, message):
    """Check that repeated/unknown arms, seed counts outside [2, 20] and bad settings are refused."""
    with pytest.raises(InvalidParameterError, match=message):
        ExperimentConfig.from_dict({**TINY, **spec})


def test_one_seed_is_allowed_only_without_intervals():
    """Check that a single seed passes when no interval is asked for."""
    assert ExperimentConfig(seeds=1, intervals=False, **TINY).seeds == (0,)


def test_configs_are_seed_major_with_paired_protocol():
    """Check that runs come seed by seed and each arm keeps its own reference settings."""
    spec = ExperimentConfig(arms=OBJECTIVES, seeds=(4, 9), dataset="digits", train_size=200)
    runs = spec.configs()
    assert [(arm, c.seed) for arm, c in runs] == [(o, s) for s in (4, 9) for o in OBJECTIVES]
    for arm, config in runs:
        assert config.epochs == REFERENCE_PROTOCOL[arm]["epochs"]
        assert (config.dataset, config.train_size) == ("digits", 200)
    assert ExperimentConfig.from_dict(spec.to_dict()) == spec


def test_arm_with_settings_and_its_own_name():
    """Check that an arm may repeat an objective under another name with other settings."""
    spec = ExperimentConfig(arms=("baseline", {"objective": "baseline", "name": "slow",
                                               "learning_rate": 1e-4}), seeds=2, **TINY)
    rates = {arm: c.learning_rate for arm, c in spec.configs()}
    assert rates == {"baseline": 1e-3, "slow": 1e-4}


def test_paired_seeds_start_from_identical_weights_and_subset(monkeypatch, tmp_path):
    """Check that seed k of two arms trains from the same initial weights on the same images."""
    from gradloss import models
    from gradloss.training import loop as training
    from gradloss.training import record

    seen = []

    def recording_build(*args, **kwargs):
        model = models.build_model(*args, **kwargs)
        seen.append([w.copy() for w in model.get_weights()])
        return model

    monkeypatch.setattr(training, "build_model", recording_build)
    monkeypatch.setattr(record, "REPORT_EVERY_S", 0.0)
    subsets = []
    real_load = training.load_dataset
    monkeypatch.setattr(training, "load_dataset",
                        lambda *a, **k: subsets.append(real_load(*a, **k)) or subsets[-1])
    spec = ExperimentConfig(seeds=(3, 4), **TINY)
    for k, (arm, config) in enumerate(spec.configs()[:3]):  # seed 3 of both arms, seed 4 of one
        training.train(config, tmp_path / str(k), should_cancel=lambda: True)
    assert all(np.array_equal(a, b) for a, b in zip(seen[0], seen[1]))
    assert np.array_equal(subsets[0].x_train, subsets[1].x_train)
    assert not all(np.array_equal(a, b) for a, b in zip(seen[0], seen[2]))


def test_store_experiment_verbs(store):
    """Check create/get/list_experiments and experiment_runs, with status derived from the runs."""
    spec = ExperimentConfig(seeds=2, **TINY)
    first = store.experiments.create(spec)
    second = store.experiments.create(ExperimentConfig.from_dict(spec.to_dict()))
    ids = [store.runs.create(RunPlan(c), experiment_id=first, arm=arm) for arm, c in spec.configs()]
    experiment = store.experiments.get(first)
    assert experiment.spec == spec
    assert experiment.counts == {"queued": 4} and experiment.status == "queued"
    assert [r.run_id for r in store.runs.of_experiment(first)] == ids
    assert [r.arm for r in store.runs.of_experiment(first)] == ["gradient", "baseline"] * 2
    assert [e.experiment_id for e in store.experiments.list()] == [second, first]
    store.runs.start(ids[0], "w")
    assert store.experiments.get(first).status == "running"
    for run_id in ids:
        store.runs.finish(run_id, "done")
    assert store.experiments.get(first).status == "done"
    assert store.experiments.get(second).n_runs == 0
    with pytest.raises(ExperimentNotFound, match="No experiment with id 'nope'"):
        store.experiments.get("nope")
    with pytest.raises(ExperimentNotFound):
        store.runs.create(RunPlan(spec.configs()[0][1]), experiment_id="nope")


def test_submit_queues_runs_seed_major_and_cancel_stops_them_all(store):
    """Check that submit_experiment queues arms x seeds tasks in pairs, and cancel ends them all."""
    experiment_id = client.submit_experiment(ExperimentConfig(**TINY, seeds=3))
    runs = store.runs.of_experiment(experiment_id)
    arms = ExperimentConfig(**TINY).arm_names  # the default arms: gradient loss and baseline
    assert [(r.arm, r.config.seed) for r in runs] == [(a, s) for s in range(3) for a in arms]
    huey = tasks.queue_for()[0]
    assert huey.pending_count() == 6
    store.runs.start(runs[0].run_id, "w")
    assert client.cancel_experiment(experiment_id) == {"running": 1, "cancelled": 5}
    assert store.runs.get(runs[0].run_id).cancel_requested
    assert store.experiments.get(experiment_id).status == "running"  # until the runner stops
    store.runs.finish(runs[0].run_id, "cancelled")
    assert store.experiments.get(experiment_id).status == "cancelled"


def test_invalid_experiment_is_refused_and_nothing_is_stored(store):
    """Check that a bad spec raises before any experiment or run is recorded."""
    with pytest.raises(InvalidParameterError, match="'seeds' parameter"):
        client.submit_experiment(ExperimentConfig(**TINY, seeds=1))
    assert store.experiments.list() == [] and store.runs.list() == []


def _fake_experiment(store, seeds=3, gain=0.05, finished=None):
    """An experiment whose runs are done with sweeps stored directly; gradient beats baseline."""
    spec = ExperimentConfig(seeds=seeds, **TINY)
    experiment_id = store.experiments.create(spec)
    rng = np.random.default_rng(0)
    for k, (arm, config) in enumerate(spec.configs()):
        run_id = store.runs.create(RunPlan(config), experiment_id=experiment_id, arm=arm)
        if finished is not None and k >= finished:
            continue
        store.runs.start(run_id, "w")
        shared = 0.02 * np.random.default_rng(config.seed).standard_normal()  # the seed's luck
        base = 0.9 - np.array(SIGMAS) + shared + 0.002 * rng.standard_normal()
        acc = base + (gain * np.array(SIGMAS) / 0.1 if arm == "gradient" else 0)
        store.results.save_robustness(run_id, pd.DataFrame({"sigma": SIGMAS, "accuracy": acc,
                                                    "accuracy_std": 0.0}), 3, 0)
        store.runs.finish(run_id, "done")
    return experiment_id


def test_summary_from_stored_sweeps_keeps_complete_pairs_only(store):
    """Check that only seeds every arm finished enter the table, and the difference is found."""
    experiment_id = _fake_experiment(store, seeds=4, finished=7)  # seed 3 has one arm done
    per_seed = per_seed_table(store.runs.of_experiment(experiment_id),
                              store.results.robustness([r.run_id for r in store.runs.of_experiment(experiment_id)]))
    assert sorted(per_seed.seed.unique()) == [0, 1, 2]
    assert len(per_seed) == 2 * 3 * len(SIGMAS)
    summary = summary_table(per_seed, "baseline")
    row = summary[(summary.arm == "gradient") & (summary.level == 0.1)].iloc[0]
    assert row["diff"] == pytest.approx(0.05, abs=0.005) and 0 < row.diff_low <= 0.05 <= row.diff_high
    assert stats.AUC_LEVEL in set(summary.level)
    [sentence] = sentences(summary, "baseline", 0.1, {"gradient": "the gradient loss",
                                                       "baseline": "the baseline"})
    assert re.fullmatch(r"At σ = 0\.1, the gradient loss is \d\.\d points more accurate than the "
                        r"baseline \(95 % CI \d\.\d to \d\.\d, 3 seeds; adjusted p = [\d.e-]+, "
                        r"Benjamini–Hochberg over 4 comparisons\)\.", sentence)
    files = exports(per_seed, summary)
    assert set(files) == {"per_seed.csv", "summary.csv", "summary.md", "summary.tex"}
    assert r"\begin{tabular}" in files["summary.tex"] and "| gradient |" in files["summary.md"]


def test_experiment_with_an_evaluation_plans_it_for_every_run(store):
    """Check that an experiment's evaluation is stored with its spec and planned for each run."""
    evaluation = {"perturbations": ["contrast", "fgsm"], "epsilons": [0.0, 0.1]}
    experiment_id = client.submit_experiment(ExperimentConfig(**TINY, seeds=2, evaluation=evaluation))
    spec = store.experiments.get(experiment_id).spec
    assert spec.evaluation.perturbations == ("contrast", "fgsm")
    runs = store.runs.of_experiment(experiment_id)
    plans = store.evaluations.plans([r.run_id for r in runs])
    assert len(plans) == len(runs) == 4
    assert {tuple(p.config.perturbations) for p in plans.values()} == {("contrast", "fgsm")}
    assert {tuple(p.config.epsilons) for p in plans.values()} == {(0.0, 0.1)}
    plain = client.submit_experiment(ExperimentConfig(**TINY, seeds=2))
    assert store.evaluations.plans([r.run_id for r in store.runs.of_experiment(plain)]) == {}


def test_evaluation_table_keeps_points_every_paired_run_has(store):
    """Check that a perturbation level missing on one paired run is left out for all, and
    that unpaired seeds never enter; the FGSM gain is found with its interval."""
    experiment_id = _fake_experiment(store, seeds=4, finished=7)  # seed 3 has one arm done
    runs = store.runs.of_experiment(experiment_id)
    for run in runs:
        if run.status != "done":
            continue
        luck = 0.01 * np.random.default_rng(run.config.seed).standard_normal()
        gain = 0.1 if run.arm == "gradient" else 0.0
        levels = [0.0, 0.1] if run.run_id != runs[0].run_id else [0.0, 0.1, 0.2]  # one has more
        store.evaluations.save_rows(run.run_id, pd.DataFrame({
            "perturbation": "fgsm", "level": levels,
            "accuracy": [0.9 + luck] + [0.4 + luck + gain] * (len(levels) - 1),
            "accuracy_std": 0.0, "n_images": 100, "seed": 0}))
    per_seed = loaders.experiment_perturbations(store, experiment_id)
    assert sorted(per_seed.seed.unique()) == [0, 1, 2] and sorted(per_seed.level.unique()) == [0.0, 0.1]
    summary = summary_table(per_seed.drop(columns="perturbation").rename(columns={"level": "sigma"}),
                            "baseline")
    [sentence] = sentences(summary, "baseline", 0.1, level_name="ε")
    assert sentence.startswith("At ε = 0.1, gradient is 10.0 points more accurate than baseline")


def test_progress_counts_and_eta_from_finished_runs():
    """Check '7 of 10 runs done' style counts and an ETA from the arm's finished runs."""
    from types import SimpleNamespace as Run

    def run(arm, status, started=None, finished=None, eta=None):
        return Run(arm=arm, status=status, started_at=started, finished_at=finished,
                   progress=Progress(eta_s=eta))

    runs = [run("g", "done", 0, 100), run("b", "done", 100, 150),
            run("g", "running", 150, eta=20), run("b", "queued"), run("g", "queued")]
    progress = experiment_progress(runs, now=180)
    assert progress.text() == "2 of 5 runs done, 1 running"
    assert progress.eta_s == pytest.approx(70 + 50 + 100)  # max(100 - 30, 20) + b + g
    assert experiment_progress(runs[2:], now=180).eta_s is None  # no finished run to go by


def test_the_shipped_reference_results_carry_their_provenance_and_read_back():
    """Check that the reference results load with commit, engine, device, date and seeds, and
    hold each objective's interval and paired difference as measured (the gradient loss +3.5
    [+1.0, +6.1] points at sigma 0.1); the quick compare's caveat quotes them."""
    from gradloss.analysis import reference
    from gradloss.ui.quick import quick_caveat, quick_experiment

    found = reference.load()
    assert {"commit", "engine", "device", "date", "seeds"} <= set(found.provenance)
    assert found.provenance["seeds"] == [0, 1, 2, 3, 4] and found.reference == "baseline"
    assert found.difference("gradient", "0.1") == pytest.approx((0.035, 0.010, 0.061))
    assert found.difference("baseline", "0.1") is None
    rows = found.table.dropna(subset=["low"])  # the AUCs were kept without their intervals
    assert len(rows) == 15
    assert (rows["low"] <= rows["mean"]).all() and (rows["mean"] <= rows["high"]).all()
    assert "+3.5 points (95 % CI +1.0 to +6.1" in quick_caveat(quick_experiment("fashion_mnist"),
                                                                gpu=False)
