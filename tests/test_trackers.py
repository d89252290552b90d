"""Exports to MLflow and TensorBoard: a real experiment (digits, 2 objectives x 2 seeds, tiny)
trained into a store, exported with `gradloss export`, read back with MLflow's own client and
TensorBoard's EventAccumulator, and compared with the store value by value."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradloss.analysis.experiments import per_seed_table, summary_table
from gradloss.cli.main import main
from gradloss.core.config import SweepConfig, TrainConfig
from gradloss.core.evaluation import EvaluationConfig
from gradloss.core.experiment import ExperimentConfig
from gradloss.core.plan import RunPlan
from gradloss.core.records import StoredRun
from gradloss.service import evaluator
from gradloss.service.reporter import Reporter
from gradloss.service.runner import train_stored
from gradloss.service.settings import check_tracking_uri
from gradloss.service.store import Store
from gradloss.service.store.artifacts import MODEL
from gradloss.trackers import mapping

mlflow = pytest.importorskip("mlflow")
MlflowClient = mlflow.MlflowClient

SPEC = ExperimentConfig(arms=("gradient", "baseline"), seeds=2, dataset="digits", train_size=100,
                        epochs=1, sweep=SweepConfig(sigmas=(0.0, 0.1, 0.2), draws=1),
                        evaluation=EvaluationConfig(perturbations=("contrast",), severities=(1, 3)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A store holding SPEC trained by the worker's runner (pipeline + StoreSink): its URL and
    the experiment id."""
    root = tmp_path_factory.mktemp("trackers")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GRADLOSS_HOME", str(root / "home"))
        env.setenv("GRADLOSS_STORE_URL", f"sqlite:///{root / 'runs.sqlite'}")
        store = Store.default()
        experiment_id = store.experiments.create(SPEC)
        ids = [store.runs.create(plan, experiment_id=experiment_id, arm=arm)
               for arm, plan in SPEC.plans()]
        for run_id in ids:
            store.runs.start(run_id, "test")
        reporter = Reporter(store)
        train_stored(ids, store, reporter)
        reporter.close()
        # the worker's next task for each: the planned evaluation, queued apart from training
        assert [evaluator.evaluate_stored(i, store) for i in ids] == ["done"] * 4
    assert [store.runs.get(i).status for i in ids] == ["done"] * 4
    return store.url, experiment_id, root


@pytest.fixture
def store(trained, monkeypatch, tmp_path):
    url, _, _ = trained
    monkeypatch.setenv("GRADLOSS_STORE_URL", url)
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path / "home"))
    return Store(url)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """One MLflow SQLite store for the module (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _history(store, run_id: str) -> dict[str, list[tuple[int, float]]]:
    frame = store.results.metrics(run_id)
    return {name: list(zip(rows.step.tolist(), rows.value.tolist()))
            for name, rows in frame.groupby("name")}


def _runs(client, experiment_id: str, filter_string: str = "") -> list:
    return client.search_runs([experiment_id], filter_string=filter_string, max_results=100)


def test_an_experiment_exported_to_mlflow_reads_back_as_the_store_holds_it(
        store, trained, tracking_uri, capsys, tmp_path):
    """Check that each run is an MLflow run nested under its experiment's parent, whose params,
    tags, metric histories, sweep and perturbation points and model equal the store's, and that
    the parent's summary equals the interval analysis of the stored sweeps."""
    _, experiment_id, _ = trained
    runs = store.runs.of_experiment(experiment_id)
    assert main(["export", "mlflow", "--tracking-uri", tracking_uri, "--runs", runs[0].run_id]) == 0
    assert main(["export", "mlflow", "--tracking-uri", tracking_uri,
                 "--experiment", experiment_id]) == 0
    out = capsys.readouterr().out
    assert "3 created, 2 updated" in out and f"mlflow ui --backend-store-uri {tracking_uri}" in out

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("gradloss")
    [parent] = _runs(client, exp.experiment_id, f"tags.`gradloss.id` = '{experiment_id}'")
    assert parent.data.tags["gradloss.kind"] == "experiment"
    assert parent.data.params["arms"] == "gradient,baseline" and parent.data.params["seeds"] == "0,1"
    children = _runs(client, exp.experiment_id,
                     f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.data.tags["gradloss.id"] for c in children) == sorted(r.run_id for r in runs)
    for child in children:
        run: StoredRun = store.runs.get(child.data.tags["gradloss.id"])
        params, tags = child.data.params, child.data.tags
        assert (params["objective"], params["seed"], params["dataset"], params["engine"]) == \
            (run.objective, str(run.config.seed), "digits", "tensorflow")
        assert params["strength"] == "none" and params["protocol"] == "custom"
        assert params["train_size"] == "100" and params["arm"] == run.arm
        assert params["sweep.sigmas"] == "0,0.1,0.2" and params["evaluation.severities"] == "1,3"
        assert tags["gradloss.status"] == "done" and tags["gradloss.device"] == run.device
        assert tags["gradloss.version"] == mapping.gradloss_version()
        assert child.info.status == "FINISHED"
        for name, points in _history(store, run.run_id).items():
            got = sorted((m.step, m.value) for m in client.get_metric_history(child.info.run_id, name))
            assert got == points, name
        metrics = child.data.metrics
        for sigma, accuracy in store.results.robustness(run.run_id)[["sigma", "accuracy"]].values:
            assert metrics[f"accuracy/sigma_{sigma:g}"] == accuracy
        rows = store.evaluations.rows(run.run_id)
        assert len(rows) == 2
        for level, accuracy in rows[["level", "accuracy"]].values:
            assert metrics[f"accuracy/contrast/severity_{level:g}"] == accuracy
        model = client.download_artifacts(child.info.run_id, "model/model.keras", str(tmp_path))
        assert Path(model).read_bytes() == store.artifacts.get(run.run_id, MODEL)
        assert {Path(f.path).name for f in client.list_artifacts(child.info.run_id, "tables")} == \
            {"plan.json", "metrics.csv", "sweep.csv", "evaluation.csv"}

    per_seed = per_seed_table(runs, store.results.robustness([r.run_id for r in runs]))
    summary = summary_table(per_seed, "baseline")
    got = parent.data.metrics
    for row in summary.itertuples():
        where = "auc" if row.level == "auc" else f"sigma_{row.level:g}"
        for stat in ("mean", "low", "high", "n") + (("diff", "diff_low", "diff_high")
                                                     if row.arm == "gradient" else ()):
            assert got[f"summary/{row.arm}/{where}/{stat}"] == pytest.approx(getattr(row, stat),
                                                                             rel=1e-12)
    assert "summary/baseline/sigma_0.1/diff" not in got  # the reference has no difference
    assert "summary/gradient/contrast/severity_3/diff_high" in got
    tables = {Path(f.path).name for f in client.list_artifacts(parent.info.run_id, "tables")}
    assert {"summary.csv", "summary.md", "summary.tex", "per_seed.csv"} <= tables


def test_exporting_twice_gives_the_same_runs_and_no_duplicate_point(store, trained,
                                                                     tracking_uri, capsys):
    """Check that a second export of the whole store finds every run again: same MLflow runs,
    same metric histories, nothing logged twice."""
    _, experiment_id, _ = trained
    client = MlflowClient(tracking_uri)
    main(["export", "mlflow", "--tracking-uri", tracking_uri, "--experiment", experiment_id])
    exp = client.get_experiment_by_name("gradloss")
    before = {r.info.run_id: {k: len(client.get_metric_history(r.info.run_id, k))
                              for k in r.data.metrics} for r in _runs(client, exp.experiment_id)}
    capsys.readouterr()
    assert main(["export", "mlflow", "--tracking-uri", tracking_uri]) == 0
    assert "0 created, 5 updated" in capsys.readouterr().out
    after = {r.info.run_id: {k: len(client.get_metric_history(r.info.run_id, k))
                             for k in r.data.metrics} for r in _runs(client, exp.experiment_id)}
    assert after == before and len(after) == 5
    assert max(n for counts in after.values() for n in counts.values()) > 1  # per-step loss


def test_tensorboard_logs_hold_the_store_values_and_the_hparams_table(store, trained, tmp_path,
                                                                      capsys):
    """Check that each run's log folder holds its scalars at the store's steps (as float32),
    its hparams for the HParams table, and that writing again replaces rather than appends."""
    pytest.importorskip("tensorboard")
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import (TENSORS,
                                                                         EventAccumulator)
    from tensorboard.plugins.hparams import metadata

    _, experiment_id, _ = trained
    logdir = tmp_path / "tb"
    for _ in range(2):
        assert main(["export", "tensorboard", str(logdir), "--experiment", experiment_id]) == 0
    assert f"tensorboard --logdir {logdir}" in capsys.readouterr().out
    runs = store.runs.of_experiment(experiment_id)
    for run in runs:
        [folder] = logdir.glob(f"{experiment_id}/*-{run.run_id}")
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1  # written afresh
        events = EventAccumulator(str(folder), size_guidance={TENSORS: 0})
        events.Reload()

        def series(tag):
            return [(e.step, tf.make_ndarray(e.tensor_proto).item()) for e in events.Tensors(tag)]

        for name, points in _history(store, run.run_id).items():
            assert series(name) == [(s, float(np.float32(v))) for s, v in points], name
        sweep = store.results.robustness(run.run_id)
        assert series("accuracy/sigma_0.1") == [
            (0, float(np.float32(sweep.accuracy[sweep.sigma == 0.1].iloc[0])))]
        rows = store.evaluations.rows(run.run_id)
        assert series("accuracy/contrast/severity_3") == [
            (0, float(np.float32(rows.accuracy[rows.level == 3].iloc[0])))]
        info = metadata.parse_session_start_info_plugin_data(
            events.PluginTagToContent("hparams")[metadata.SESSION_START_INFO_TAG])
        assert info.hparams["objective"].string_value == run.objective
        assert info.hparams["seed"].number_value == run.config.seed
        assert info.hparams["arm"].string_value == run.arm
    [config_file] = logdir.glob("events.out.tfevents.*.hparams")
    root = EventAccumulator(str(logdir))
    root.Reload()
    experiment = metadata.parse_experiment_plugin_data(
        root.PluginTagToContent("hparams")[metadata.EXPERIMENT_TAG])
    names = [h.name for h in experiment.hparam_infos]
    assert names[:2] == ["objective", "arm"] and "seed" in names
    assert {h.name for h in experiment.hparam_infos if h.differs} == {  # listed first by TensorBoard
        "objective", "arm", "seed", "batch_size"}
    assert set(experiment.hparam_infos[0].domain_discrete.values[i].string_value
               for i in range(2)) == {"gradient", "baseline"}
    metrics = [m.name.tag for m in experiment.metric_infos]
    assert "test_accuracy" in metrics and "accuracy/sigma_0.1" in metrics
    assert (logdir / experiment_id / "summary").is_dir()


def test_summary_points_carry_every_stat_and_the_adjusted_p_value_when_there_is_one():
    """Check the summary's metric names, the reference's missing difference, and the hook for
    an adjusted p-value column."""
    summary = pd.DataFrame({"arm": ["baseline", "gradient", "gradient"], "level": [0.1, 0.1, "auc"],
                            "n": 3, "mean": [0.8, 0.85, 0.7], "low": 0.7, "high": 0.9,
                            "diff": [np.nan, 0.05, 0.02], "diff_low": [np.nan, 0.01, -0.01],
                            "diff_high": [np.nan, 0.09, 0.05], "p_improve": [np.nan, 1.0, 0.6],
                            "p_adjusted": [np.nan, 0.03, 0.2]})
    points = {p.key: p.value for p in mapping.summary_points(summary)}
    assert points["summary/gradient/sigma_0.1/diff"] == 0.05
    assert points["summary/gradient/auc/p_adjusted"] == 0.2
    assert "summary/baseline/sigma_0.1/diff" not in points
    assert points["summary/baseline/sigma_0.1/n"] == 3
    fgsm = summary.assign(level=[0.1, 0.1, 0.2])
    keys = {p.key for p in mapping.summary_points(fgsm, "fgsm")}
    assert "summary/gradient/fgsm/eps_0.2/mean" in keys


def test_params_name_the_objective_its_strength_and_the_protocol():
    """Check strength and protocol for a reference-protocol run and a custom one."""
    noise = TrainConfig(objective="noise_augmented", dataset="digits")
    assert mapping.strength(noise) == 0.1 and mapping.protocol(noise) == "reference"
    run = StoredRun("r1", 0.0, "done", "noise_augmented", "digits", "tensorflow", noise)
    params = mapping.run_params(run)
    assert params["strength"] == "0.1" and params["train_noise_sigma"] == "0.1"
    assert "penalty_weight" not in params and params["train_size"] == "none"
    custom = TrainConfig(objective="gradient", dataset="digits", epochs=1)
    assert mapping.strength(custom) is None and mapping.protocol(custom) == "custom"
    assert mapping.safe("arm/with|odd") == "arm_with_odd"


def test_a_password_in_a_tracking_uri_is_never_printed(tmp_path):
    """Check that a refused URI and an unreachable server are reported with the password masked
    (the CLI exits 2 at once, not after MLflow's retries)."""
    with pytest.raises(Exception, match=re.escape("'ftp://me:***@host/x'")) as refused:
        check_tracking_uri("ftp://me:hunter2@host/x")
    assert "hunter2" not in str(refused.value)
    env = {**os.environ, "GRADLOSS_HOME": str(tmp_path),
           "GRADLOSS_STORE_URL": f"sqlite:///{tmp_path / 'runs.sqlite'}"}
    store = Store(env["GRADLOSS_STORE_URL"])
    run_id = store.runs.create(SPEC.plans()[0][1])
    store.runs.start(run_id, "test")
    for uri in ("http://me:hunter2@127.0.0.1:9/", "redis://me:hunter2@127.0.0.1:9/0"):
        done = subprocess.run([sys.executable, "-m", "gradloss", "export", "mlflow",
                               "--tracking-uri", uri], capture_output=True, text=True,
                              timeout=120, env={**env, "PYTHONPATH": str(Path(__file__).parents[1])})
        assert done.returncode == 2, done.stderr[-2000:]
        assert "hunter2" not in done.stdout + done.stderr and "me:***@127.0.0.1" in done.stderr


def test_a_bad_tracking_setting_stops_the_worker_at_start(tmp_path):
    """Check that GRADLOSS_MLFLOW_URI with a scheme MLflow does not know stops the worker with a
    message naming the setting, before it takes any run."""
    env = {**os.environ, "GRADLOSS_HOME": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).parents[1]),
           "GRADLOSS_MLFLOW_URI": "s3://me:hunter2@bucket/runs"}
    done = subprocess.run([sys.executable, "-m", "gradloss", "worker"], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 2
    assert "The GRADLOSS_MLFLOW_URI setting must be an MLflow tracking URI" in done.stderr
    assert "hunter2" not in done.stderr


def test_plan_json_of_an_exported_run_rebuilds_its_plan(store, trained, tracking_uri, tmp_path):
    """Check that the plan.json artifact is the stored plan, exactly."""
    _, experiment_id, _ = trained
    run = store.runs.of_experiment(experiment_id)[1]
    client = MlflowClient(tracking_uri)
    main(["export", "mlflow", "--tracking-uri", tracking_uri, "--runs", run.run_id])
    [child] = _runs(client, client.get_experiment_by_name("gradloss").experiment_id,
                    f"tags.`gradloss.id` = '{run.run_id}'")
    path = client.download_artifacts(child.info.run_id, "tables/plan.json", str(tmp_path))
    plan = RunPlan.from_dict(json.loads(Path(path).read_text()))
    assert plan == run.plan(store.evaluations.plan_of(run.run_id).config)


def test_a_run_whose_params_were_cut_off_gets_them_when_the_write_is_retried(store, trained,
                                                                           tracking_uri):
    """Check the live tracker's retry after the tracker went away between creating a run and
    logging its params: the retried write logs them, in the one MLflow run created."""
    from gradloss.core.errors import ServiceUnavailable
    from gradloss.trackers.live import LiveTracker

    _, experiment_id, _ = trained
    run = store.runs.of_experiment(experiment_id)[0]
    plan = run.plan(store.evaluations.plan_of(run.run_id).config)
    tracker = LiveTracker(tracking_uri, experiment="gradloss-retry")
    call, created, cut = tracker.runs._call, [], []

    def cut_once(method, *args, **kwargs):  # the server goes away once the run is created
        if method == "log_batch" and args[0] in created and not cut:
            cut.append(method)
            raise ServiceUnavailable("MLflow cannot be reached (log_batch)")
        done = call(method, *args, **kwargs)
        if method == "create_run" and kwargs["tags"][mapping.ID_TAG] == run.run_id:
            created.append(done.info.run_id)
        return done

    tracker.runs._call = cut_once
    with pytest.raises(ServiceUnavailable):
        tracker.start(run, plan, "cpu")
    tracker.start(run, plan, "cpu")  # what the Reporter does next
    client = MlflowClient(tracking_uri)
    [found] = _runs(client, client.get_experiment_by_name("gradloss-retry").experiment_id,
                    f"tags.`gradloss.id` = '{run.run_id}'")
    assert found.data.params == mapping.run_params(run, plan.evaluation)
    assert found.data.tags["gradloss.device"] == "cpu" and cut == ["log_batch"]
    tracker.close(timeout=10)
