"""The one pipeline: plans through train -> sweep -> examples -> evaluation -> finish, reported to
sinks; and the regressions its copies had (data folder, JAX attacks, the submitted sweep, the
stored spec)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gradloss.core.config import SweepConfig, TrainConfig
from gradloss.core.evaluation import EvaluationConfig
from gradloss.core.experiment import ExperimentConfig
from gradloss.core.plan import RunPlan
from gradloss.pipeline.sinks import Fanout, FolderSink, Sink
from gradloss.service.store import Store

from test_data import write_fashion

ROOT = Path(__file__).resolve().parents[1]
TINY = TrainConfig(dataset="digits", epochs=1, train_size=100, batch_size=50)


class Recorder(Sink):
    """Every call the pipeline makes, in order: (method, plan index)."""

    def __init__(self):
        self.calls = []

    def __getattribute__(self, name):
        attribute = object.__getattribute__(self, name)
        if name.startswith("_") or name == "calls" or not callable(attribute):
            return attribute

        def record(*args):
            object.__getattribute__(self, "calls").append((name, args[0]))
            return attribute(*args)
        return record


def test_plans_round_trip_through_json_exactly():
    """Check that a RunPlan read back from its JSON equals it, evaluation and data folder too."""
    plan = RunPlan(TINY, SweepConfig(sigmas=(0.0, 0.3), draws=2, seed=4),
                   EvaluationConfig(perturbations=("rotate", "fgsm"), epsilons=(0.0, 0.1)), "/d")
    assert RunPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert RunPlan.from_dict(json.loads(json.dumps(RunPlan(TINY).to_dict()))) == RunPlan(TINY)


def test_a_stored_experiment_spec_reads_back_equal_with_its_evaluation(tmp_path):
    """Check that a spec with an evaluation and a sweep equals itself once stored: Home compares
    the newest experiment with the quick compare's spec (a dict compared with to_dict() was
    never equal once the JSON round trip had turned tuples into lists)."""
    spec = ExperimentConfig(seeds=2, dataset="digits", train_size=100, epochs=1,
                            evaluation=EvaluationConfig(perturbations=("contrast",)),
                            sweep=SweepConfig(draws=1))
    store = Store(tmp_path / "runs.sqlite")
    assert store.experiments.get(store.experiments.create(spec)).spec == spec


def test_a_plan_goes_through_every_step_to_its_sinks_in_order(tmp_path):
    """Check the pipeline's sequence for one plan: started, progress and metrics while training,
    then model, sweep, examples, the evaluation's steps and finished, each sink told alike."""
    from gradloss.pipeline.run import run

    plan = RunPlan(TINY, SweepConfig(sigmas=(0.0, 0.2), draws=1),
                   EvaluationConfig(perturbations=("contrast",), severities=(1,)))
    recorder = Recorder()
    [outcome] = run([plan], Fanout(recorder, FolderSink([tmp_path])), [tmp_path])
    assert outcome.status == "done" and outcome.evaluation_status == "done"
    order = [name for name, _ in recorder.calls if name not in ("progress", "metrics",
                                                                 "should_cancel", "checkpoint",
                                                                 "evaluation_progress")]
    assert order == ["started", "model", "sweep", "examples", "evaluation_started",
                     "evaluation_rows", "masking_flags", "evaluation_examples",
                     "evaluation_finished", "finished"]
    assert {"progress", "metrics", "checkpoint"} <= {name for name, _ in recorder.calls}
    assert list(outcome.sweep.sigma) == [0.0, 0.2]
    assert set(outcome.evaluation.perturbation) == {"contrast"}
    assert outcome.masking_flags is None  # no attack ran: nothing to check
    assert pd.read_csv(tmp_path / "sweep.csv").accuracy.tolist() == outcome.sweep.accuracy.tolist()
    assert json.loads((tmp_path / "outcome.json").read_text())["status"] == "done"


def test_a_cancel_between_perturbations_stops_the_evaluation_keeping_what_it_measured(tmp_path):
    """Check that a sink asking to cancel after the first perturbation ends the evaluation failed
    ('cancelled'), keeps that perturbation's rows, and leaves the trained run done."""
    from gradloss.pipeline.run import run

    class CancelAfterRows(Sink):
        def __init__(self):
            self.rows, self.ended = [], None

        def evaluation_rows(self, i, rows):
            self.rows.append(rows)

        def should_cancel(self, i):
            return bool(self.rows)

        def evaluation_finished(self, i, status, error):
            self.ended = (status, error)

    sink = CancelAfterRows()
    plan = RunPlan(TINY, SweepConfig(sigmas=(0.0,), draws=1),
                   EvaluationConfig(perturbations=("contrast", "rotate"), severities=(1,)))
    [outcome] = run([plan], sink, [tmp_path])
    assert outcome.status == "done" and sink.ended == ("failed", "cancelled")
    assert [set(r.perturbation) for r in sink.rows] == [{"contrast"}]


def test_evaluating_a_stored_run_reads_the_data_folder_stored_with_it(tmp_path, monkeypatch):
    """Check that an evaluation queued for a trained Fashion-MNIST run reads the run's own data
    folder (stored at submission), not whatever GRADLOSS_DATA_DIR the evaluating process has."""
    import keras

    from gradloss.models import build_cnn
    from gradloss.service import evaluator

    own = write_fashion(tmp_path / "own", n_train=40, n_test=30)
    monkeypatch.setenv("GRADLOSS_DATA_DIR", str(tmp_path / "elsewhere"))  # holds no files
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path / "home"))
    store = Store.default()
    config = TrainConfig(dataset="fashion_mnist", epochs=1, train_size=20, batch_size=10)
    run_id = store.runs.create(RunPlan(config, data_dir=str(own)))
    keras.utils.set_random_seed(0)
    model_path = tmp_path / "model.keras"
    build_cnn().save(model_path)
    store.runs.start(run_id, "w")
    store.runs.finish(run_id, "done", model_path=model_path)
    store.evaluations.plan(run_id, EvaluationConfig(perturbations=("contrast",), severities=(1,)))
    assert evaluator.evaluate_stored(run_id, store) == "done", \
        store.evaluations.plan_of(run_id).error
    rows = store.evaluations.rows(run_id)
    assert list(rows.perturbation) == ["contrast"] and rows.n_images.tolist() == [30]


def _cli(*args, env=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "gradloss", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_experiment_submitted_with_draws_plans_that_sweep_for_every_run(tmp_path):
    """Check that `experiment --draws 1 --submit` queues runs whose stored sweep has 1 draw (the
    sweep was built and then dropped; the worker used the default 3)."""
    result = _cli("experiment", "--objectives", "gradient,baseline", "--seeds", "2", "--dataset",
                  "digits", "--epochs", "1", "--draws", "1", "--submit",
                  env={"GRADLOSS_HOME": str(tmp_path)}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    store = Store(tmp_path / "runs.sqlite")
    runs = store.runs.list()
    assert len(runs) == 4 and {r.sweep.draws for r in runs} == {1}
    [experiment] = store.experiments.list()
    assert experiment.spec.sweep.draws == 1


def test_a_jax_reproduce_attacks_its_models_in_a_tensorflow_process(tmp_path):
    """Check that `reproduce --engine jax --perturbations fgsm` trains with JAX and still attacks
    (ART needs TensorFlow: the pipeline runs the attacks in a TensorFlow child)."""
    pytest.importorskip("jax")
    result = _cli("reproduce", "--engine", "jax", "--dataset", "digits", "--epochs", "1",
                  "--train-size", "100", "--draws", "1", "--perturbations", "fgsm",
                  "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "summary.csv").set_index("perturbation")
    assert "FGSM" in summary.index
    fgsm = pd.read_csv(tmp_path / "evaluations.csv").query("perturbation == 'fgsm'")
    assert set(fgsm.run_id) == {"gradient", "baseline"} and fgsm.accuracy.between(0, 1).all()
