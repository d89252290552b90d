"""Tests for the Optuna strength search (core.search, service.search): its config refused at the
edge, its study in the store's own database (SQLite and PostgreSQL), its trials ordinary runs,
and a search that finishes when its worker is killed mid-trial.

The driver tests stand in for the worker by finishing trial runs themselves with a stored noise
sweep (nothing trains); the last test trains through real workers.
"""
import math
import signal
from dataclasses import replace

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from gradloss.core.config import SweepConfig, TrainConfig
from gradloss.core.errors import InvalidParameterError, SearchNotFound
from gradloss.core.search import SearchConfig
from gradloss.service import search
from gradloss.service.store import Store

from _worker_helpers import TINY, kill_all, start_consumer, wait_for
from test_pages import home  # noqa: F401  (fixture: an empty home, no worker)

SEARCH = SearchConfig(replace(TINY, objective="input_gradient"), trials=4, low=0.01, high=1.0,
                      sweep=SweepConfig(sigmas=(0.0, 0.1), draws=1))


@pytest.mark.parametrize("fields, words", [
    ({"train": TrainConfig(objective="gradient")}, "objective with a strength"),
    ({"sigma": 0.25}, "sweep's σ"),
    ({"low": 0.5, "high": 0.1}, "above low=0.5"),
    ({"low": 0.0}, "above 0 on a log scale"),
    ({"trials": 1}, "trials"),
    ({"parallel": 0}, "parallel"),
    ({"low": -1.0, "log": False}, "low"),
])
def test_a_bad_search_is_refused_naming_the_value_and_what_is_allowed(fields, words):
    with pytest.raises(InvalidParameterError, match=words):
        SearchConfig(**fields)


def test_a_search_config_round_trips_and_fills_its_defaults():
    spec = SearchConfig(TrainConfig(objective="noise_augmented", dataset="digits"))
    assert (spec.parameter, spec.low, spec.high, spec.log) == ("train_noise_sigma", 0.02, 0.6,
                                                               True)
    assert SearchConfig.from_dict(spec.to_dict()) == spec
    plan = spec.plan(0.25)
    assert plan.train.train_noise_sigma == 0.25 and plan.sweep == spec.sweep
    assert spec.trial_name(3, 0.123456) == "trial 3: noise_augmented σ_train=0.123"


def _finish(store, run_id, clean, robust, status="done"):
    """What a worker leaves behind: the run finished and, when done, its noise sweep stored."""
    store.runs.start(run_id, "test-worker")
    if status == "done":
        store.results.save_robustness(run_id, pd.DataFrame(
            {"sigma": [0.0, 0.1], "accuracy": [clean, robust], "accuracy_std": [0.0, 0.0]}),
            draws=1, seed=0)
    store.runs.finish(run_id, status, error=None if status == "done" else "it diverged")


def _trials(store, search_id):
    return search.study(store, search_id).get_trials()


def test_the_study_lives_in_the_store_and_its_trials_are_runs(backend):
    """Check, on SQLite and on PostgreSQL: the search's first trial is queued as a run that names
    it; finishing a run and advancing tells Optuna the run's stored values and asks the next
    trial; a failed run fails its trial but counts towards the budget; the search finishes after
    `trials` runs, and its study can be read back from the store's database by Optuna alone."""
    store = Store.default()
    search_id = search.submit_search(SEARCH, store)
    scores = iter([(0.9, 0.5), (0.8, 0.7), None, (0.85, 0.6)])
    for number in range(SEARCH.trials):
        runs = store.runs.of_search(search_id)
        assert len(runs) == number + 1 and runs[-1].status == "queued"  # one trial at a time
        run = runs[-1]
        strength = run.config.penalty_weight
        assert 0.01 <= strength <= 1.0 and run.arm.startswith(f"trial {number}: input_gradient λ=")
        assert run.config == replace(SEARCH.train, penalty_weight=strength)
        score = next(scores)
        _finish(store, run.run_id, *(score or (0, 0)), status="done" if score else "failed")
        assert store.searches.get(search_id).finished_at is None
        search.advance(store, search_id)
    record = store.searches.get(search_id)
    assert record.finished_at is not None and record.counts == {"done": 3, "failed": 1}
    assert search.advance(store, search_id) == {"told": 0, "asked": 0, "finished": True}

    study = optuna.load_study(study_name=search_id, storage=store.url.replace(
        "postgresql://", "postgresql+psycopg://"))
    trials = study.get_trials()
    runs = {r.run_id: r for r in store.runs.of_search(search_id)}
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL,
                                                                     TrialState.COMPLETE]
    for trial in trials:
        run = runs[trial.user_attrs["run_id"]]
        assert trial.params["penalty_weight"] == run.config.penalty_weight
        if trial.state == TrialState.COMPLETE:
            assert tuple(trial.values) == search.values(store, run.run_id, 0.1)
    # The front is the trials no other beats on both values: (0.8, 0.7) and (0.9, 0.5) and
    # (0.85, 0.6) all trade one for the other.
    assert {t.number for t in study.best_trials} == {0, 1, 3}


def test_a_search_repeats_its_strengths_given_the_same_seed_and_results(tmp_path):
    """Check that the sampler is rebuilt from (seed, trials so far), so two searches told the
    same results ask the same strengths, and another seed asks others."""
    asked = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        store = Store(tmp_path / f"{name}.sqlite")
        spec = replace(SEARCH, train=replace(SEARCH.train, seed=seed), trials=5)
        search_id = search.submit_search(spec, store)
        for number in range(spec.trials):
            run = store.runs.of_search(search_id)[-1]
            weight = run.config.penalty_weight
            _finish(store, run.run_id, 1 - weight / 2, 0.5 + weight / 3)
            search.advance(store, search_id)
        asked[name] = [r.config.penalty_weight for r in store.runs.of_search(search_id)]
    assert asked["a"] == asked["b"] and asked["a"] != asked["c"]
    assert len(set(asked["a"])) == 5


def test_a_trial_whose_asker_died_is_found_by_its_run_and_a_held_search_is_left(tmp_path):
    """Check the seams a crash leaves: a trial asked and queued whose run id never reached the
    trial is matched to its run by name and told; a trial asked but never queued fails and
    does not count; a search another process holds is not advanced twice."""
    store = Store(tmp_path / "runs.sqlite")
    search_id = search.submit_search(replace(SEARCH, trials=2), store)
    study = search.study(store, search_id)
    orphan = study.ask()  # asked by a process that died before queueing its run
    first = store.runs.of_search(search_id)[0]
    _finish(store, first.run_id, 0.9, 0.5)
    until = store.searches.lease(search_id, 30)
    assert search.advance(store, search_id) is None  # held: nothing told, nothing asked
    store.searches.release(search_id, until)
    assert search.advance(store, search_id) == {"told": 2, "asked": 1, "finished": False}
    states = {t.number: t.state for t in _trials(store, search_id)}
    assert states == {0: TrialState.COMPLETE, orphan.number: TrialState.FAIL,
                      2: TrialState.RUNNING}
    # The third trial's asker "dies" after queueing: its run id never reaches the trial.
    second = store.runs.of_search(search_id)[1]
    assert second.arm.startswith("trial 2:")
    _finish(store, second.run_id, 0.8, 0.6)
    search.advance(store, search_id)
    trial = _trials(store, search_id)[2]
    assert trial.state == TrialState.COMPLETE and tuple(trial.values) == (0.8, 0.6)
    assert store.searches.get(search_id).finished_at is not None
    with pytest.raises(SearchNotFound, match="s-nope"):
        store.searches.get("s-nope")


def test_a_search_finishes_when_its_worker_is_killed_mid_trial(tmp_path, monkeypatch):
    """Check the whole loop through real workers: the first trial's worker is killed (SIGKILL)
    while it trains; the next worker resumes that run from its checkpoint, tells the trial and
    asks the next; the study ends with every trial complete, each an ordinary done run whose
    stored sweep gives the trial's values."""
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    env = {"GRADLOSS_HEARTBEAT_TIMEOUT": "3"}
    store = Store.default()
    spec = replace(SEARCH, trials=2, train=replace(SEARCH.train, epochs=12, train_size=100))
    search_id = search.submit_search(spec, store)
    first = store.runs.of_search(search_id)[0].run_id
    procs = [start_consumer(tmp_path, **env)]
    try:
        wait_for(lambda: len(store.results.metrics(first, name="epoch_loss")) >= 1, 180,
                 "the first trial's first epoch")
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        procs.append(start_consumer(tmp_path, **env))
        wait_for(lambda: store.searches.get(search_id).finished_at, 300, "the search to finish",
                 interval=0.5, explain=lambda: store.runs.of_search(search_id))
    finally:
        kill_all(procs)
    runs = store.runs.of_search(search_id)
    assert [r.status for r in runs] == ["done", "done"]
    assert runs[0].attempts == 2  # resumed after the kill
    trials = _trials(store, search_id)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for trial, run in zip(trials, runs):
        assert trial.user_attrs["run_id"] == run.run_id
        clean, robust = search.values(store, run.run_id, 0.1)
        assert tuple(trial.values) == (clean, robust) and 0 < robust <= 1
        assert math.isclose(trial.params["penalty_weight"], run.config.penalty_weight)


def test_the_cli_queues_a_search_and_refuses_bad_values_naming_them(tmp_path, monkeypatch,
                                                                     capsys):
    """Check `gradloss search`: a bad value exits 2 naming it and records nothing; a good one
    queues the first trial as a run of the recorded search."""
    from gradloss.cli.main import main

    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    base = ["search", "--dataset", "digits", "--epochs", "1", "--train-size", "100"]
    for extra, words in ((["--sigma", "0.12"], "'sigma' parameter of SearchConfig"),
                         (["--low", "0"], "--linear"), (["--trials", "1"], "'trials'"),
                         (["--objective", "baseline"], "invalid choice: 'baseline'")):
        with pytest.raises(SystemExit) as exit_:
            main(base + extra)
        assert exit_.value.code == 2 and words in capsys.readouterr().err, extra
    store = Store.default()
    assert store.searches.list() == []
    assert main(base + ["--objective", "mse_penalty", "--low", "0", "--high", "0.3", "--linear",
                        "--trials", "3"]) == 0
    (record,) = store.searches.list()
    assert record.search_id in capsys.readouterr().out
    assert (record.spec.objective, record.spec.low, record.spec.log) == ("mse_penalty", 0.0, False)
    (run,) = store.runs.of_search(record.search_id)
    assert run.status == "queued" and 0 <= run.config.penalty_weight <= 0.3


def test_the_frontier_page_shows_a_search_trial_by_trial(home):
    """Check the Frontier page's strength-search view: each done trial a point at its run's
    stored clean and robust accuracy, the front ringed, a trial still queued listed as such;
    the σ slider moves the robust axis."""
    import json

    from streamlit.testing.v1 import AppTest

    from test_pages import ROOT

    store = Store.default()
    search_id = search.submit_search(replace(SEARCH, trials=3, sweep=SweepConfig(
        sigmas=(0.0, 0.1, 0.2), draws=1)), store)
    scores = {}
    for clean, robust in ((0.90, 0.50), (0.80, 0.45)):  # the second is beaten on both
        run = store.runs.of_search(search_id)[-1]
        store.runs.start(run.run_id, "test-worker")
        store.results.save_robustness(run.run_id, pd.DataFrame(
            {"sigma": [0.0, 0.1, 0.2], "accuracy": [clean, robust, robust - 0.2],
             "accuracy_std": 0.0}), draws=1, seed=0)
        store.runs.finish(run.run_id, "done")
        scores[run.run_id] = (clean, robust)
        search.advance(store, search_id)

    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=30)
    at.switch_page("app_pages/frontier.py").run()
    at.radio(key="frontier_source").set_value("Strength search").run()
    assert not at.exception, at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    traces = {t["name"]: t for t in spec["data"]}
    assert set(traces) == {"input-gradient penalty", "on the front"}
    runs = store.runs.of_search(search_id)
    weights = [r.config.penalty_weight for r in runs[:2]]
    order = sorted(range(2), key=lambda i: weights[i])  # the line runs weakest first
    line = traces["input-gradient penalty"]
    assert line["x"] == pytest.approx([100 * scores[runs[i].run_id][0] for i in order])
    assert line["y"] == pytest.approx([100 * scores[runs[i].run_id][1] for i in order])
    assert traces["on the front"]["x"] == pytest.approx([90.0])
    table = at.dataframe[0].value
    assert table.status.tolist() == ["done", "done", "queued"]
    assert table.front.tolist() == ["yes", "", ""]
    assert table["clean (%)"].tolist()[:2] == ["90.0", "80.0"]
    at.select_slider(key="search_sigma").set_value(0.2).run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["yaxis"]["title"]["text"] == "accuracy at σ = 0.2 (%)"
    assert sorted(spec["data"][0]["y"]) == pytest.approx([25.0, 30.0])


def test_the_train_page_starts_a_search_and_refuses_a_bad_value_in_its_words(home):
    """Check the Train page's search form: a bad value is refused naming the field, and nothing
    recorded; good values record the search with the page's dataset and queue its first trial."""
    from streamlit.testing.v1 import AppTest

    from test_pages import ROOT

    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=30)
    at.switch_page("app_pages/train.py").run()
    at.selectbox(key="search_objective").set_value("noise_augmented")
    at.number_input(key="search_trials").set_value(1)
    at.number_input(key="search_epochs").set_value(1)
    at.number_input(key="search_train_size").set_value(100)
    next(b for b in at.get("form_submit_button") if b.label == "Start the search").click().run()
    assert not at.exception, at.exception
    assert any("Not started" in e.value and "rials" in e.value for e in at.error), \
        [e.value for e in at.error]
    store = Store.default()
    assert store.searches.list() == []
    at.number_input(key="search_trials").set_value(3)
    next(b for b in at.get("form_submit_button") if b.label == "Start the search").click().run()
    assert not at.exception, at.exception
    assert any("Started strength search" in s.value for s in at.success), [e.value for e in at.error]
    (record,) = store.searches.list()
    assert (record.spec.objective, record.spec.trials, record.spec.train.dataset,
            record.spec.train.epochs, record.spec.train.train_size) == (
        "noise_augmented", 3, "digits", 1, 100)
    (run,) = store.runs.of_search(record.search_id)
    assert run.status == "queued" and 0.02 <= run.config.train_noise_sigma <= 0.6
