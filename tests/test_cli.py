from gradloss.core.records import MetricRow
from gradloss.core.plan import RunPlan
"""The command line: validation exits with 2, reproduce writes its table and results."""
import json
import math
import os
import subprocess
import sys

import pandas as pd

from gradloss.core.evaluation import SMALL_DATASET_EVALUATION, EvaluationConfig
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "gradloss", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, message", [
    (["train", "--epochs", "0"], "The 'epochs' parameter of TrainConfig must be an int"),
    (["train", "--batch-size", "2000", "--dataset", "digits"], "Got 2000 instead"),
    (["reproduce", "--train-size", "5"], "The 'train_size' parameter"),
    (["train", "--learning-rate", "nan"], "The 'learning_rate' parameter"),
    (["train", "--dataset", "cifar"], "No dataset 'cifar': give a built-in name"),
    (["train", "--objective", "noise_augmented", "--train-noise-sigma", "1.5"],
     "The 'train_noise_sigma' parameter of TrainConfig must be a float in the range [0.0, 1.0]"),
    (["train", "--objective", "input_gradient", "--penalty-weight", "-1"],
     "The 'penalty_weight' parameter of TrainConfig must be a float in the range [0.0, 10000.0]"),
    (["train", "--objective", "baseline", "--penalty-weight", "0.1"],
     "The 'penalty_weight' parameter of TrainConfig must be None for objective 'baseline'"),
    (["train", "--objective", "gradient", "--train-noise-sigma", "0.1"],
     "must be None for objective 'gradient' (it applies to 'noise_augmented' only)"),
    (["experiment", "--objectives", "gradient,gradient"], "arms with distinct names"),
    (["experiment", "--objectives", "gradient,nope"], "Got 'nope' instead"),
    (["experiment", "--seeds", "1"], "an interval needs at least 2 seeds"),
    (["experiment", "--seeds", "21"], "The 'seeds' parameter of ExperimentConfig"),
    (["reproduce", "--seeds", "0"], "The 'seeds' parameter of ExperimentConfig"),
    (["train", "--out", ""], "argument --out: must name a folder; got an empty string"),
    (["reproduce", "--out", " "], "argument --out: must name a folder"),
    (["reproduce", "--dataset", "digits", "--train-size", "99", "--batch-size", "100"],
     "The 'batch_size' parameter of TrainConfig must be an int in the range [1, 99] (at most the "
     "training-set size: lower it, or raise train_size). Got 100 instead."),
    (["evaluate", "/missing.keras"], "No model file /missing.keras: give a saved .keras file"),
    (["runs", "--limit", "0"], "The 'limit' parameter of runs must be an int in the range [1, inf). "
                               "Got 0 instead."),
    (["runs", "--limit", "-1"], "Got -1 instead."),
])
def test_bad_arguments_exit_with_status_2_and_no_traceback(args, message):
    """Check that bad values print the validation message, exit 2 and show no traceback."""
    result = _cli(*args, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("objective, extra", [
    ("noise_augmented", ["--train-noise-sigma", "0.2"]), ("input_gradient", ["--penalty-weight", "0.5"]),
    ("mse", [])])
def test_train_runs_each_new_objective_with_its_parameters(objective, extra, tmp_path):
    """Check that `train --objective OBJ` trains, stores the parameter and records input_grad_norm."""
    result = _cli("train", "--objective", objective, "--dataset", "digits", "--epochs", "1",
                  "--train-size", "200", *extra, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout[result.stdout.index("{"):])
    assert out["status"] == "done" and out["input_grad_norm"] > 0
    config = json.loads((tmp_path / "checkpoint" / "state.json").read_text())["config"]
    assert config["objective"] == objective
    if extra:
        assert config[extra[0][2:].replace("-", "_")] == float(extra[1])
    from gradloss.service.store import Store  # recorded in the store, as the dashboard lists it
    [run] = Store.default().runs.list()
    assert (run.status, run.objective, run.worker_id.startswith("cli@")) == ("done", objective, True)
    assert len(Store.default().results.robustness(run.run_id)) == 8
    assert not Store.default().results.metrics(run.run_id, name="loss").empty
    assert f"recorded in the run store as {run.run_id}" in result.stderr


def _strict_json(text: str):
    """json.loads that refuses Infinity and NaN, which are not JSON."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_a_diverging_mse_run_fails_with_the_reason_and_prints_only_json(tmp_path):
    """Check the fault pass's command: mse at learning rate 1e6 ends failed with a reason (it was
    'done' with weights near 1e7 and input_grad_norm = Infinity), exit 1, its summary strict
    JSON, and no non-finite value in the files it writes."""
    result = _cli("train", "--objective", "mse", "--dataset", "digits", "--epochs", "2",
                  "--train-size", "200", "--batch-size", "20", "--learning-rate", "1e6",
                  "--out", str(tmp_path), env={"GRADLOSS_HOME": str(tmp_path / "home")})
    assert result.returncode == 1, result.stderr[-2000:]
    summary = _strict_json(result.stdout[result.stdout.index("{"):])
    assert summary["status"] == "failed" and summary["model"] is None
    assert "diverged" in summary["error"] or "became" in summary["error"], summary["error"]
    assert summary["error"].endswith("try a smaller learning rate.")
    _strict_json((tmp_path / "outcome.json").read_text())
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics.value.map(math.isfinite).all() and not (tmp_path / "model.keras").exists()


def test_missing_data_folder_is_a_clear_error(tmp_path):
    """Check that a data folder without the files gives one clear line, not a traceback, and
    exit status 2 (a setting to fix), before any training."""
    result = _cli("train", "--epochs", "1", "--train-size", "100",
                  env={"GRADLOSS_DATA_DIR": str(tmp_path)}, timeout=120)
    assert result.returncode == 2, result.stderr
    assert str(tmp_path) in result.stderr and "GRADLOSS_DATA_DIR" in result.stderr
    assert "Traceback" not in result.stderr


def _bad_data_folder(tmp_path, kind: str):
    """A GRADLOSS_DATA_DIR that is empty, holds a cut, mislabelled or mis-headed file, or is a file."""
    import gzip
    import shutil

    from conftest import SHARED_FASHION
    from gradloss.data import FASHION_FILES
    folder = tmp_path / "data"
    if kind == "a file":
        folder.write_text("not a folder")
        return folder
    folder.mkdir()
    if kind == "empty":
        return folder
    if not (SHARED_FASHION / FASHION_FILES[1]).is_file():
        pytest.skip(f"Fashion-MNIST files not found in {SHARED_FASHION}")
    for name in FASHION_FILES:
        shutil.copy(SHARED_FASHION / name, folder / name)
    labels = folder / FASHION_FILES[1]
    if kind == "truncated":
        raw = labels.read_bytes()
        labels.write_bytes(raw[:len(raw) // 2])
    elif kind == "wrong magic":
        with gzip.open(labels, "wb") as f:
            f.write((0x0803).to_bytes(4, "big") + (60000).to_bytes(4, "big") + bytes(60000))
    else:  # label count mismatch
        with gzip.open(labels, "wb") as f:
            f.write((0x0801).to_bytes(4, "big") + (59999).to_bytes(4, "big") + bytes(59999))
    return folder


@pytest.mark.parametrize("kind", ["empty", "truncated", "wrong magic", "label count mismatch",
                                  "a file"])
def test_a_bad_data_folder_is_refused_before_anything_is_queued_or_trained(tmp_path, monkeypatch,
                                                                         capsys, kind):
    """Check `train --dataset fashion_mnist` with --submit (it exited 0 and queued a run to fail
    later) and without (it exited 1 after loading): exit 2 naming GRADLOSS_DATA_DIR and the
    folder, nothing stored or queued."""
    from gradloss.cli.main import main
    from gradloss.service import tasks
    from gradloss.service.store import Store

    folder = _bad_data_folder(tmp_path, kind)
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GRADLOSS_DATA_DIR", str(folder))
    for extra in (["--submit"], ["--out", str(tmp_path / "out")]):
        assert main(["train", "--dataset", "fashion_mnist", "--epochs", "1", *extra]) == 2
        err = capsys.readouterr().err
        assert "GRADLOSS_DATA_DIR" in err and str(folder) in err, err
    monkeypatch.delenv("GRADLOSS_DATA_DIR")
    assert Store.default().runs.list() == [] and tasks.pending_count() == 0
    assert not (tmp_path / "out").exists()


def test_reproduce_writes_results_and_prints_the_side_by_side_table(tmp_path):
    """Check that a quick reproduce on digits prints both models per sigma and writes its files."""
    result = _cli("reproduce", "--dataset", "digits", "--epochs", "1", "--train-size", "400",
                  "--draws", "1", "--out", str(tmp_path), "--perturbations", "contrast", "fgsm")
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(tmp_path / "robustness.csv")
    assert list(table.sigma) == [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5]
    assert (table.difference == table.gradient - table.baseline).all()
    assert (table.baseline > 0.3).all()  # 1 epoch on 400 digits: far above chance (0.1)
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["runs"]) == {"gradient", "baseline"}
    assert results["runs"]["baseline"]["config"]["batch_size"] == 32
    assert results["runs"]["gradient"]["test_accuracy"] == table.gradient[0]
    assert "difference" in result.stdout and "0.5000" in result.stdout
    assert (tmp_path / "gradient" / "model.keras").exists()
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.perturbation) == ["Gaussian noise", "contrast", "FGSM", "mCE (corruptions)"]
    fgsm = summary.set_index("perturbation").loc["FGSM"]
    assert fgsm["gradient at headline"] < table.gradient[0]  # eps 0.1 costs accuracy
    assert fgsm["difference at headline"] == pytest.approx(
        fgsm["gradient at headline"] - fgsm["baseline at headline"])
    assert "mCE (corruptions)" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--perturbations", "blur"], "The 'perturbations' parameter of evaluate must be a str among"),
    (["--severities", "6"], "The 'severities' parameter of EvaluationConfig must be an int in the "
                            "range [1, 5]. Got 6 instead."),
    (["--epsilons", "-0.1"], "The 'epsilons' parameter of EvaluationConfig must be a float in "
                             "the range [0.0, 1.0]. Got -0.1 instead."),
    (["--epsilons", "inf"], "Got inf instead"),
    (["--steps", "0"], "The 'steps' parameter of EvaluationConfig must be an int in the range "
                       "[1, inf). Got 0 instead."),
])
def test_evaluate_refuses_bad_perturbation_arguments_with_status_2(tmp_path, args, message):
    """Check that `evaluate` names the bad parameter, exits 2 and stores nothing."""
    result = _cli("evaluate", "some-run", *args, env={"GRADLOSS_HOME": str(tmp_path)}, timeout=60)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs.sqlite").exists()


def test_evaluate_prints_the_summary_of_a_saved_model(tmp_path):
    """Check that `evaluate MODEL.keras` prints each perturbation's AUC and headline accuracy."""
    import keras

    from gradloss.models import build_cnn
    keras.utils.set_random_seed(0)
    build_cnn().save(tmp_path / "model.keras")  # untrained: the table's shape is what counts
    result = _cli("evaluate", str(tmp_path / "model.keras"), "--dataset", "digits",
                  "--perturbations", "gaussian", "rotate", "fgsm", "--epsilons", "0", "0.1",
                  "--attack-images", "30", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(summary.perturbation) == ["gaussian", "rotate", "fgsm"]
    assert summary.auc.between(0, 1).all()
    rows = pd.read_csv(tmp_path / "out" / "evaluations.csv")
    assert sorted(rows[rows.perturbation == "fgsm"].level) == [0.0, 0.1]
    assert "rotate" in result.stdout and "headline" in result.stdout


def test_evaluate_runs_the_workers_suite_by_default_and_certifies_when_asked():
    """Check that `evaluate` without --perturbations measures what the worker's suite does (every
    perturbation but certification, which costs about a training), at the dataset's settings."""
    from gradloss.cli.evaluate import evaluation_config
    from gradloss.cli.main import _parser
    from gradloss.core.evaluation import DEFAULT_EVALUATED, default_evaluation

    sweep, config = evaluation_config(_parser().parse_args(["evaluate", "m.keras"]), "digits")
    assert sweep and config == default_evaluation("digits")
    assert config.perturbations == DEFAULT_EVALUATED and "certified" not in config.perturbations
    args = _parser().parse_args(["evaluate", "m.keras", "--perturbations", "certified"])
    assert evaluation_config(args, "digits") == (False, EvaluationConfig(
        perturbations=("certified",), **SMALL_DATASET_EVALUATION["digits"]))


def test_runs_lists_status_accuracy_and_errors(tmp_path):
    """Check that `runs` shows each run's status, last test accuracy, engine, device and error."""
    from gradloss.core.config import TrainConfig
    from gradloss.service.store import Store

    store = Store(tmp_path / "runs.sqlite")
    ok = store.runs.create(RunPlan(TrainConfig(dataset="digits", epochs=1)))
    store.runs.start(ok, "w1")
    store.runs.set_device(ok, "CPU")
    store.results.add_metrics(ok, [MetricRow(28, 1, "test_accuracy", 0.8125)])
    store.runs.finish(ok, "done")
    bad = store.runs.create(RunPlan(TrainConfig(dataset="digits", epochs=1, objective="baseline", engine="jax")))
    store.runs.finish(bad, "failed", error="The loss became nan at step 3")
    result = _cli("runs", env={"GRADLOSS_HOME": str(tmp_path)}, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "done" in lines[ok] and "0.8125" in lines[ok] and "tensorflow CPU" in lines[ok]
    assert "failed" in lines[bad] and " jax " in lines[bad] and "error: The loss became nan at step 3" in lines[bad]


def _unusable_home(tmp_path, kind: str):
    """A GRADLOSS_HOME that cannot be created (its parent is a file) or holds a folder where the
    run store should be."""
    if kind == "uncreatable":
        (tmp_path / "file").write_text("")
        return tmp_path / "file" / "home"
    (tmp_path / "home" / "runs.sqlite").mkdir(parents=True)
    return tmp_path / "home"


@pytest.mark.parametrize("kind", ["uncreatable", "store is a folder"])
@pytest.mark.parametrize("args", [["train", "--dataset", "digits", "--submit"], ["runs"], ["worker"]])
def test_an_unusable_home_exits_2_naming_the_folder(tmp_path, args, kind):
    """Check that train --submit, runs and worker refuse an unusable GRADLOSS_HOME in one message."""
    folder = _unusable_home(tmp_path, kind)
    try:
        result = _cli(*args, env={"GRADLOSS_HOME": str(folder)}, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} kept running with GRADLOSS_HOME={folder}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert str(folder) in result.stderr and "Set GRADLOSS_HOME to a folder you can write" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_refuses_a_bad_heartbeat_timeout_at_start(tmp_path):
    """Check that `worker` exits 2 naming GRADLOSS_HEARTBEAT_TIMEOUT instead of starting."""
    try:
        result = _cli("worker", env={"GRADLOSS_HOME": str(tmp_path), "GRADLOSS_HEARTBEAT_TIMEOUT": "abc"},
                      timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker started with GRADLOSS_HEARTBEAT_TIMEOUT=abc")
    assert result.returncode == 2
    assert "GRADLOSS_HEARTBEAT_TIMEOUT must be a number of seconds" in result.stderr
    assert "Got 'abc' instead" in result.stderr and "Traceback" not in result.stderr


def test_reproduce_takes_a_batch_size_and_small_training_sets_train_with_the_reference_batch():
    """Check that `reproduce --batch-size` reaches every run's config, and that without it a
    training set smaller than a reference batch (train --train-size 10, the documented minimum;
    reproduce --train-size 99) trains in batches of the whole set instead of being refused."""
    from gradloss.cli.local import Sources, _train_config
    from gradloss.cli.main import _parser

    def config(*argv, objective="gradient"):
        args = _parser().parse_args([*argv, "--dataset", "digits"])
        return _train_config(args, objective, Sources(args))

    assert config("reproduce", "--train-size", "99", "--batch-size", "33").batch_size == 33
    assert config("reproduce", "--train-size", "99", "--batch-size", "33",
                  objective="baseline").batch_size == 33
    assert config("reproduce", "--train-size", "99").batch_size == 99
    assert config("reproduce", "--train-size", "99", objective="baseline").batch_size == 32
    assert config("train", "--train-size", "10").batch_size == 10


def test_local_runs_get_their_own_folder_under_gradloss_home(tmp_path, monkeypatch):
    """Check that two local runs started in the same second never share a folder."""
    from gradloss.cli import local as cli

    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    first, second = cli.run_folder(None), cli.run_folder(None)
    assert first != second and first.parent == second.parent == tmp_path
    assert first.is_dir() and first.name.startswith("cli-")


@pytest.mark.parametrize("where", ["an existing file", "below a file", "in /proc"])
def test_out_that_cannot_be_a_folder_exits_2_naming_it(tmp_path, where):
    """Check that --out naming a file or an unwritable place is refused before any training."""
    (tmp_path / "taken").write_text("")
    out = {"an existing file": tmp_path / "taken", "below a file": tmp_path / "taken" / "run",
           "in /proc": "/proc/gradloss-out"}[where]
    result = _cli("train", "--dataset", "digits", "--epochs", "1", "--train-size", "100",
                  "--out", str(out), env={"GRADLOSS_HOME": str(tmp_path)}, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"--out {out}" in result.stderr and "Traceback" not in result.stderr


def test_runs_lists_an_unreadable_run_beside_the_others(tmp_path):
    """Check that a run whose stored config is malformed is listed as unreadable, not a crash."""
    from gradloss.service.store import Store

    store = Store(tmp_path / "runs.sqlite")
    good, broken = store.runs.create(RunPlan({"dataset": "digits"})), store.runs.create(RunPlan({"dataset": "digits"}))
    with store.connect(write=True) as conn:
        conn.exec_driver_sql("UPDATE runs SET config = 'null' WHERE run_id = ?", (broken,))
    result = _cli("runs", env={"GRADLOSS_HOME": str(tmp_path)}, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert set(lines) == {good, broken}
    assert "unreadable: its stored config is not a JSON object" in lines[broken]


def test_runs_lists_rows_holding_wrong_typed_values(tmp_path, monkeypatch, capsys):
    """Check that `runs` lists every run when rows hold values of the wrong type (a metric
    'abc', progress {"fraction": "x"}, a count, a time and names that are not what they
    should be): no traceback, exit 0, the damaged values shown as missing."""
    from gradloss.cli.main import main
    from gradloss.core.config import TrainConfig
    from gradloss.service.store import Store

    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    store = Store.default()
    metric, progress, counts, names = (store.runs.create(RunPlan(TrainConfig(dataset="digits")))
                                       for _ in range(4))
    store.results.add_metrics(metric, [MetricRow(1, 1, "test_accuracy", 0.5)])
    with store.connect(write=True) as conn:
        conn.exec_driver_sql("UPDATE metrics SET value = 'abc'")
        conn.exec_driver_sql("""UPDATE runs SET progress = '{"fraction": "x", "step": []}'
                                WHERE run_id = ?""", (progress,))
        conn.exec_driver_sql("""UPDATE runs SET attempts = 'x', gpu = 'y', heartbeat_at = 'z',
                                created_at = 'soon', status = 'running' WHERE run_id = ?""",
                             (counts,))
        conn.exec_driver_sql("UPDATE runs SET objective = 5, engine = X'00', device = 7 "
                             "WHERE run_id = ?", (names,))
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == {metric, progress, counts, names}
    assert lines[metric].split()[5] == "-" and " 0% " in lines[progress]
    assert "running" in lines[counts] and " 5 " in lines[names]


def test_experiment_prints_the_summary_and_writes_its_tables(tmp_path):
    """Check that a tiny 2 arms x 3 seeds experiment on digits prints intervals and writes 4
    files, and each perturbation's headline over the seeds with its paired difference."""
    result = _cli("experiment", "--objectives", "gradient,baseline", "--seeds", "3",
                  "--dataset", "digits", "--train-size", "200", "--epochs", "1", "--draws", "1",
                  "--perturbations", "contrast", "fgsm", "--out", str(tmp_path), timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    per_seed = pd.read_csv(tmp_path / "per_seed.csv")
    assert len(per_seed) == 2 * 3 * 8 and set(per_seed.seed) == {0, 1, 2}
    summary = pd.read_csv(tmp_path / "summary.csv")
    gradient = summary[(summary.arm == "gradient") & (summary.level == "0.1")].iloc[0]
    pairs = per_seed[per_seed.sigma == 0.1].pivot(index="seed", columns="arm", values="accuracy")
    assert gradient["diff"] == pytest.approx((pairs.gradient - pairs.baseline).mean())
    assert gradient.diff_low < gradient["diff"] < gradient.diff_high and gradient.n == 3
    assert "| Arm | Level |" in result.stdout and "At σ = 0.1, " in result.stdout
    assert r"\begin{tabular}" in (tmp_path / "summary.tex").read_text()
    assert (tmp_path / "summary.md").read_text() in result.stdout
    rows = pd.read_csv(tmp_path / "perturbations_per_seed.csv")
    assert set(rows.perturbation) == {"contrast", "fgsm"} and set(rows.seed) == {0, 1, 2}
    headlines = pd.read_csv(tmp_path / "perturbations_summary.csv")
    fgsm = rows[(rows.perturbation == "fgsm") & (rows.level == 0.1)].pivot(
        index="seed", columns="arm", values="accuracy")
    row = headlines[(headlines.perturbation == "fgsm") & (headlines.arm == "gradient")].iloc[0]
    assert row.level == "ε=0.1" and row.n == 3
    assert row["diff"] == pytest.approx((fgsm.gradient - fgsm.baseline).mean())
    assert row.diff_low <= row["diff"] <= row.diff_high
    contrast = headlines[(headlines.perturbation == "contrast") & (headlines.arm == "baseline")]
    assert contrast.level.tolist() == ["mean over severities"]
    assert "mean over severities" in result.stdout and "FGSM" in result.stdout
