"""The dashboard's export buttons (ui.exports, ui.panels.export): the Train page exports its
finished runs to MLflow and TensorBoard through a child process; a typed tracking URI never shows
its password."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gradloss.service.store import Store
from gradloss.ui import exports
from test_pages import finished_run

ROOT = Path(__file__).resolve().parents[1]
mlflow = pytest.importorskip("mlflow")


def test_command_names_the_experiment_or_the_runs_and_keeps_the_uri_off_it(tmp_path):
    """Check the child's command line: an experiment, else the runs; a TensorBoard folder."""
    argv = exports.command("mlflow", run_ids=("a", "b"))
    assert argv[-5:] == ["export", "mlflow", "--runs", "a", "b"]
    argv = exports.command("tensorboard", experiment_id="x1", folder=tmp_path)
    assert argv[-5:] == ["export", "tensorboard", str(tmp_path), "--experiment", "x1"]
    with pytest.raises(ValueError, match="The 'tracker' parameter of command must be"):
        exports.command("wandb")


def test_train_page_exports_its_finished_runs_to_mlflow_and_tensorboard(tmp_path, monkeypatch):
    """Check that the Train page's export buttons write both trackers, say how to open them,
    and mask the password of a tracking URI that cannot be reached."""
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    monkeypatch.setenv("GRADLOSS_NO_LOCAL_WORKER", "1")
    monkeypatch.delenv("GRADLOSS_MLFLOW_URI", raising=False)
    store = Store.default()
    ids = [finished_run(store, o) for o in ("gradient", "baseline")]
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=30)
    at.switch_page("app_pages/train.py").run()  # through the navigation: the page links to others
    assert not at.exception
    at.text_input(key="export_uri_runs").input("http://me:hunter2@127.0.0.1:9/")
    at.button(key="export_mlflow_runs").click().run(timeout=180)
    [error] = at.error
    assert "cannot be reached" in error.value and "hunter2" not in error.value
    assert "me:***@127.0.0.1" in error.value
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    at.text_input(key="export_uri_runs").input(uri)
    at.button(key="export_mlflow_runs").click().run(timeout=180)
    assert not at.error and "2 created, 0 updated" in at.success[0].value
    client = mlflow.MlflowClient(uri)
    found = client.search_runs([client.get_experiment_by_name("gradloss").experiment_id])
    assert sorted(r.data.tags["gradloss.id"] for r in found) == sorted(ids)
    at.text_input(key="export_folder_runs").input(str(tmp_path / "tb"))
    at.button(key="export_tensorboard_runs").click().run(timeout=180)
    assert not at.error and f"tensorboard --logdir {tmp_path / 'tb'}" in at.success[0].value
    assert len(list((tmp_path / "tb" / "runs").iterdir())) == 2
