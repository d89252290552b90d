"""Tests of the Streamlit pages with AppTest: empty store, finished runs, the form, the σ slider.

Every test points GRADLOSS_HOME at a fresh tmp_path store and sets GRADLOSS_NO_LOCAL_WORKER=1, so
no worker process starts; the store is filled through the real Store verbs.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from gradloss.core.progress import Progress
from gradloss.core.records import MetricRow, WorkerRecord, WorkerSettings
from gradloss.core.plan import RunPlan
from gradloss.service import client, tasks
from gradloss.core.config import TrainConfig
from gradloss.core.experiment import ExperimentConfig
from gradloss.ui.quick import QUICK_ARMS, QUICK_SEEDS
from gradloss.engines.backend import available_engines
from gradloss.service.store import Store

from _hostile_urls import hostile_urls, leaked
from services import free_port

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("dashboard.py", "app_pages/train.py", "app_pages/runs.py", "app_pages/loss_curves.py",
         "app_pages/robustness.py", "app_pages/frontier.py", "app_pages/run.py")  # dashboard.py: Home
SIGMAS = (0.0, 0.1, 0.2)
ACCURACY = {"gradient": (0.90, 0.86, 0.75), "baseline": (0.91, 0.81, 0.60),
            "noise_augmented": (0.90, 0.88, 0.80), "input_gradient": (0.89, 0.84, 0.70),
            "mse": (0.88, 0.82, 0.65)}
OBJECTIVES = tuple(ACCURACY)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty gradloss home; no local worker; Fashion-MNIST absent (an empty data folder)."""
    (tmp_path / "no-data").mkdir()
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    monkeypatch.setenv("GRADLOSS_NO_LOCAL_WORKER", "1")
    monkeypatch.setenv("GRADLOSS_DATA_DIR", str(tmp_path / "no-data"))
    return tmp_path  # (conftest restores __main__, which AppTest leaves set to the page)


def finished_run(store: Store, objective: str) -> str:
    """A done digits run with losses, accuracies, step times, a sweep and example predictions."""
    run_id = store.runs.create(RunPlan(TrainConfig(objective=objective, dataset="digits", epochs=2, train_size=200)))
    store.runs.start(run_id, "test-worker")
    scale = 1e-4 if objective == "gradient" else 1.0  # the two losses differ ~1000x
    rows = [MetricRow(s, 1 + (s > 4), "loss", scale / s) for s in range(1, 9)]
    for epoch, step in ((1, 4), (2, 8)):
        rows += [MetricRow(step, epoch, name, value) for name, value in
                 (("epoch_loss", scale / step), ("train_accuracy", 0.8 + epoch / 20),
                  ("test_accuracy", 0.8 + epoch / 25), ("step_ms", 20.0 if objective == "gradient" else 5.0),
                  ("input_grad_norm", 0.1 / epoch))]
    store.results.add_metrics(run_id, rows)
    acc = ACCURACY[objective]
    store.results.save_robustness(run_id, pd.DataFrame({"sigma": SIGMAS, "accuracy": acc, "accuracy_std": 0.01}),
                          draws=3, seed=0)
    store.results.save_examples(run_id, pd.DataFrame({
        "sigma": [s for s in SIGMAS for _ in range(3)], "index": [0, 1, 2] * 3, "label": [0, 1, 2] * 3,
        "prediction": [0, 1, 2, 0, 1, 2, 0, 7, 7] if objective == "gradient" else [0, 1, 2, 0, 5, 2, 3, 7, 7],
        "confidence": 0.9}))
    store.runs.finish(run_id, "done", model_path=None)
    return run_id


@pytest.fixture
def filled(home) -> dict:
    """The home fixture holding a finished gradient-loss run and a finished baseline."""
    store = Store.default()
    return {o: finished_run(store, o) for o in ("gradient", "baseline")}


@pytest.fixture
def every(home) -> dict:
    """The home fixture holding a finished run of every objective."""
    store = Store.default()
    return {o: finished_run(store, o) for o in OBJECTIVES}


def app(page: str = "dashboard.py") -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=30)
    if page != "dashboard.py":
        at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def comparison(at: AppTest):
    """The runs' comparison table of a page (summary.comparison_table: it has "clean accuracy")."""
    return next(d.value for d in at.dataframe if "clean accuracy" in d.value.columns)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_an_empty_store(home, page):
    """Check that each page says there is nothing yet, without an exception."""
    at = app(page)
    assert at.title[0].value
    assert at.info or at.get("caption"), "an empty page should say what to do"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_finished_runs(filled, page):
    """Check that each page draws the finished pair without an exception or error box."""
    at = app(page)
    assert not at.error, texts(at.error)


def test_home_compares_the_latest_pair(filled):
    at = app()
    table = comparison(at)
    assert list(table["clean accuracy"]) == [0.90, 0.91]
    assert list(table["accuracy at σ=0.1"]) == [0.86, 0.81]
    assert list(table["ms / 1000 images"]) == [20.0 / 100 * 1000, 5.0 / 32 * 1000]  # batches 100, 32
    assert "costs 1.3× the reference's time per training image" in "\n".join(m.value for m in at.markdown)


def test_home_offers_digits_when_fashion_mnist_is_missing(home):
    at = app()
    reproduce = next(b for b in at.button if b.label == "Reproduce the reference")
    assert reproduce.disabled
    assert "Fashion-MNIST" in texts(at.info)
    assert [m.value for m in at.metric][:1] == ["down"]


def test_home_lets_keras_download_fashion_mnist_when_no_folder_is_configured(home, monkeypatch):
    monkeypatch.delenv("GRADLOSS_DATA_DIR")
    monkeypatch.setenv("KERAS_HOME", str(home / "empty-keras-home"))  # an empty Keras cache
    at = app()
    reproduce = next(b for b in at.button if b.label == "Reproduce the reference")
    assert not reproduce.disabled
    assert "downloads it" in " ".join(c.value for c in at.caption)
    reproduce.click().run()
    assert {r.dataset for r in Store.default().runs.list()} == {"fashion_mnist"}


def test_quick_compare_queues_a_digits_experiment_and_says_what_it_cannot_show(home):
    at = app()
    assert "does not answer the Fashion-MNIST question" in texts(at.caption)
    next(b for b in at.button if b.label == "Quick compare").click().run()
    assert not at.exception
    [experiment] = Store.default().experiments.list()
    runs = Store.default().runs.of_experiment(experiment.experiment_id)
    assert [(r.objective, r.config.seed) for r in runs] == \
        [(o, s) for s in range(QUICK_SEEDS) for o in QUICK_ARMS]
    assert {r.dataset for r in runs} == {"digits"} and {r.status for r in runs} == {"queued"}
    assert tasks.queue_for()[0].pending_count() == len(runs)


def test_train_form_refuses_bad_values_naming_the_field(home):
    """Check that a refused value is reported with the form's label in words, and nothing is queued."""
    at = app("app_pages/train.py")
    at.selectbox(key="dataset").set_value("digits").run()
    at.multiselect(key="objectives").set_value(["gradient"]).run()
    at.number_input(key="train_size_digits").set_value(200)
    at.number_input(key="batch_gradient_digits").set_value(300)
    at.get("form_submit_button")[0].click().run()
    assert not at.exception
    assert texts(at.error) == "Batch size must be a whole number from 1 to 200; got 300."
    assert Store.default().runs.list() == []


def test_train_form_says_why_an_out_of_range_value_is_refused(home):
    """Check that Epochs 0 (which a min_value would only have turned red) is refused with the
    README's words, and that nothing is queued."""
    at = app("app_pages/train.py")
    at.selectbox(key="dataset").set_value("digits").run()
    at.multiselect(key="objectives").set_value(["gradient"]).run()
    assert at.number_input(key="epochs_gradient").min is None or \
        at.number_input(key="epochs_gradient").min < 1  # the form lets 0 through, to say why
    at.number_input(key="epochs_gradient").set_value(0)
    at.get("form_submit_button")[0].click().run()
    assert texts(at.error) == "Epochs must be a whole number from 1 to 500; got 0."
    at.number_input(key="epochs_gradient").set_value(1)
    at.number_input(key="seed").set_value(-3)
    at.get("form_submit_button")[0].click().run()
    assert texts(at.error) == "Seed must be a whole number from 0 to 2147483647; got -3."
    assert Store.default().runs.list() == []


def test_train_form_queues_a_run(home):
    at = app("app_pages/train.py")
    at.multiselect(key="objectives").set_value(["gradient"]).run()
    at.number_input(key="epochs_gradient").set_value(1)
    at.number_input(key="train_size_digits").set_value(300)
    at.get("form_submit_button")[0].click().run()
    assert not at.exception and not at.error, texts(at.error)
    [run] = Store.default().runs.list()
    assert (run.status, run.objective, run.config.epochs, run.config.train_size) == \
        ("queued", "gradient", 1, 300)
    assert tasks.queue_for()[0].pending_count() == 1
    assert at.get("progress"), "the queued run is listed with a progress bar"


def test_train_form_offers_the_installed_engines_and_records_the_choice(home):
    at = app("app_pages/train.py")
    assert at.selectbox(key="engine").options == list(available_engines())
    assert at.selectbox(key="engine").value == "tensorflow"  # the default: fastest on CPU
    if "jax" not in available_engines():
        pytest.skip("jax is not installed")
    at.multiselect(key="objectives").set_value(["baseline"]).run()
    at.selectbox(key="engine").set_value("jax")
    at.checkbox(key="deterministic").check()
    at.get("form_submit_button")[0].click().run()
    [run] = Store.default().runs.list()
    assert run.engine == "jax" and run.config.engine == "jax"
    assert run.config.deterministic is True


def test_train_pair_gets_reference_epochs_each(home):
    at = app("app_pages/train.py")
    at.selectbox(key="dataset").set_value("digits").run()
    at.number_input(key="train_size_digits").set_value(200)
    at.get("form_submit_button")[0].click().run()
    runs = {r.objective: r.config for r in Store.default().runs.list()}
    assert (runs["gradient"].epochs, runs["baseline"].epochs) == (10, 20)
    assert (runs["gradient"].batch_size, runs["baseline"].batch_size) == (100, 32)


def test_train_page_shows_progress_cancel_and_failures(home):
    """Check the live area: the progress bar and its text, Cancel, and failures as rows of the
    runs table (newest first, one-line reason, the whole error on demand), not red alerts."""
    store = Store.default()
    running = store.runs.create(RunPlan(TrainConfig(objective="gradient", dataset="digits", train_size=200)))
    store.runs.start(running, "w")
    store.runs.update_progress(running, Progress(fraction=0.25, step=5, total_steps=20, epoch=1,
                                    epochs=10, eta_s=30.0, loss=0.001))
    failed = store.runs.create(RunPlan(TrainConfig(objective="baseline", dataset="digits")))
    store.runs.finish(failed, "failed", error="Traceback (most recent call last):\nDataError: disk full")
    newer = finished_run(store, "gradient")
    at = app("app_pages/train.py")
    assert at.get("progress")[0].value == 25
    assert "step 5/20 · epoch 1/10 · ETA 30 s" in at.get("progress")[0].proto.text
    assert not at.error, texts(at.error)
    table = at.dataframe[0].value
    assert table["id"].tolist()[:2] == [newer[-6:], failed[-6:]]
    assert table["reason"].tolist()[:2] == ["", "DataError: disk full"]
    assert "Traceback (most recent call last)" in texts(at.expander[0].code)
    at.button(key=f"cancel_{running}").click().run()
    assert not at.exception
    assert store.runs.get(running).cancel_requested


def test_train_form_queues_every_objective_with_its_own_parameters(home):
    """Check that picking all objectives shows their parameters and queues one run each."""
    at = app("app_pages/train.py")
    at.selectbox(key="dataset").set_value("digits")
    at.multiselect(key="objectives").set_value(list(OBJECTIVES)).run()
    assert at.number_input(key="train_noise_sigma").value == 0.1
    at.number_input(key="train_noise_sigma").set_value(0.2)
    at.number_input(key="penalty_weight").set_value(0.5)
    at.number_input(key="train_size_digits").set_value(200)
    at.get("form_submit_button")[0].click().run()
    assert not at.exception and not at.error, texts(at.error)
    runs = {r.objective: r.config for r in Store.default().runs.list()}
    assert sorted(runs) == sorted(OBJECTIVES)
    assert runs["noise_augmented"].train_noise_sigma == 0.2
    assert runs["input_gradient"].penalty_weight == 0.5
    assert runs["baseline"].train_noise_sigma is None and runs["mse"].penalty_weight is None
    assert (runs["mse"].epochs, runs["mse"].batch_size) == (10, 100)


def test_train_form_gives_each_penalty_its_own_reference_weight(home):
    """Check that the two penalties, whose reference λ differ (0.1 and the gradient loss's
    λ* = K²/4D), each get a field starting from their own and are queued with it."""
    from gradloss.objectives import LAMBDA_STAR_28x28x1_10

    at = app("app_pages/train.py")
    at.selectbox(key="dataset").set_value("digits")
    at.multiselect(key="objectives").set_value(["input_gradient", "mse_penalty"]).run()
    assert at.number_input(key="penalty_weight").value == 0.1
    assert at.number_input(key="penalty_weight_mse_penalty").value == \
        pytest.approx(LAMBDA_STAR_28x28x1_10)
    at.number_input(key="penalty_weight").set_value(0.3)
    at.number_input(key="train_size_digits").set_value(200)
    at.get("form_submit_button")[0].click().run()
    assert not at.exception and not at.error, texts(at.error)
    runs = {r.objective: r.config for r in Store.default().runs.list()}
    assert runs["input_gradient"].penalty_weight == 0.3
    assert runs["mse_penalty"].penalty_weight == pytest.approx(LAMBDA_STAR_28x28x1_10)


def test_train_form_hides_parameters_of_objectives_not_picked(home):
    at = app("app_pages/train.py")
    at.multiselect(key="objectives").set_value(["noise_augmented"]).run()
    assert [n.key for n in at.number_input if n.key in ("train_noise_sigma", "penalty_weight")] == \
        ["train_noise_sigma"]


def test_loss_curves_draw_both_objectives(filled):
    at = app("app_pages/loss_curves.py")
    assert at.multiselect(key="curve_runs").value == [filled["gradient"], filled["baseline"]]
    assert len(at.get("plotly_chart")) == 3  # per step, per epoch, input-gradient size


def test_robustness_slider_changes_the_accuracies(filled):
    at = app("app_pages/robustness.py")
    assert at.select_slider(key="sigma").value == 0.1
    table = at.dataframe[0].value
    assert list(table["accuracy at σ=0.1"]) == [0.86, 0.81]
    assert list(table["points vs reference"]) == [5.0, 0.0]  # against the baseline by default
    at.select_slider(key="sigma").set_value(0.2).run()
    assert not at.exception
    assert list(at.dataframe[0].value["points vs reference"]) == [15.0, 0.0]
    assert len(at.image) == 3 and "✗" in texts(at.caption)
    assert at.get("download_button")


def test_every_objective_side_by_side_on_home_robustness_and_loss_curves(every):
    """Check that a run of each of the five objectives shows on every page, one row or curve each."""
    labels = ["gradient loss", "baseline (cross-entropy)", "noise augmentation",
              "input-gradient penalty", "plain MSE"]
    home_table = comparison(app())
    assert [run.split(" · ")[0] for run in home_table.run] == labels
    assert list(home_table["points vs reference"]) == [5.0, 0.0, 7.0, 3.0, 1.0]
    at = app("app_pages/robustness.py")
    assert at.multiselect(key="compare_runs").value == [every[o] for o in OBJECTIVES]
    assert at.selectbox(key="reference_run").value == every["baseline"]
    curves = at.get("plotly_chart")[0].proto.spec
    for label in labels:
        assert label in curves
    at.selectbox(key="reference_run").set_value(every["noise_augmented"]).run()
    assert list(at.dataframe[0].value["points vs reference"]) == [-2.0, -7.0, 0.0, -4.0, -6.0]
    assert "against noise augmentation" in texts(at.markdown)
    assert len(at.image) == 3
    curves = app("app_pages/loss_curves.py")
    assert curves.multiselect(key="curve_runs").value == [every[o] for o in OBJECTIVES]
    assert len(curves.get("plotly_chart")) == 3


def test_pages_never_import_tensorflow(filled):
    """Check that rendering every page leaves TensorFlow and Keras unimported (fast reruns)."""
    code = ("import sys\nfrom streamlit.testing.v1 import AppTest\n"
            f"for page in {PAGES!r}:\n"
            f"    at = AppTest.from_file({str(ROOT / 'dashboard.py')!r}, default_timeout=60)\n"
            "    at.switch_page(page) if page != 'dashboard.py' else None\n"
            "    assert not at.run().exception, page\n"
            "print(sorted({'tensorflow', 'keras', 'jax'} & set(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_loss_curves_wait_for_a_queued_run(home):
    """Check that a just-queued pair is selected and the page says its curves are coming."""
    client.submit(TrainConfig(objective="gradient", dataset="digits", train_size=100))
    at = app("app_pages/loss_curves.py")
    assert len(at.multiselect(key="curve_runs").value) == 1
    assert "still waiting for the worker" in texts(at.info)
    assert "Runs are queued or training" in texts(app("app_pages/robustness.py").info)


def test_home_points_to_runs_in_progress(home):
    """Check that queued runs are counted on the home page instead of 'no finished runs'."""
    for objective in ("gradient", "baseline"):
        client.submit(TrainConfig(objective=objective, dataset="digits", train_size=100))
    at = app()
    assert "2 runs queued or training" in texts(at.info)
    assert "No finished runs yet" not in texts(at.info)
    assert [m.value for m in at.metric][2] == "2"


@pytest.mark.parametrize("page", PAGES)
def test_page_shows_an_unusable_store_in_red_with_the_password_masked(home, monkeypatch, page):
    """Check that a store URL with an unreachable server is one red message naming the setting,
    never the password, on every page, instead of a traceback."""
    monkeypatch.setenv("GRADLOSS_STORE_URL", "postgresql://ann:s3cr3t-pw@127.0.0.1:1/gradloss")
    at = app(page)
    shown = texts(at.error)
    assert "GRADLOSS_STORE_URL=postgresql://ann:***@127.0.0.1:1/gradloss" in shown
    everything = "\n".join(texts(getattr(at, kind)) for kind in ("error", "info", "warning", "markdown",
                                                                 "caption"))
    assert "s3cr3t-pw" not in everything


HOSTILE = hostile_urls(free_port())


def _shown(at) -> str:
    return "\n".join(texts(getattr(at, kind)) for kind in ("error", "info", "warning", "markdown",
                                                          "caption", "exception"))


@pytest.mark.parametrize("url", HOSTILE)
def test_home_shows_a_hostile_store_url_in_red_without_its_password(home, monkeypatch, url):
    """Check every URL of the hostile corpus as GRADLOSS_STORE_URL on Home: one red message
    naming the setting, nothing of the password anywhere on the page."""
    monkeypatch.setenv("GRADLOSS_STORE_URL", url)
    at = app()
    assert "GRADLOSS_STORE_URL" in texts(at.error)
    assert not leaked(_shown(at)), _shown(at)


@pytest.mark.parametrize("page", PAGES[1:])
def test_pages_show_hostile_urls_and_queue_refusals_without_a_password(home, monkeypatch, page):
    """Check the other pages with hostile store URLs, and the Train form's queue refusal with a
    hostile GRADLOSS_QUEUE_URL: red messages, no secret."""
    for url in HOSTILE[::7]:
        monkeypatch.setenv("GRADLOSS_STORE_URL", url)
        at = app(page)
        assert at.error and not leaked(_shown(at)), _shown(at)
    monkeypatch.delenv("GRADLOSS_STORE_URL")
    if page != "app_pages/train.py":
        return
    for url in HOSTILE[::5]:
        monkeypatch.setenv("GRADLOSS_QUEUE_URL", url)
        at = app(page)
        at.multiselect(key="objectives").set_value(["gradient"]).run()
        at.get("form_submit_button")[0].click().run()
        assert "Could not queue the run: " in texts(at.error), texts(at.error)
        assert "GRADLOSS_QUEUE_URL" in texts(at.error) and not leaked(_shown(at)), _shown(at)
    assert Store.default().runs.list() == []


def test_home_lists_every_worker_with_host_device_run_and_heartbeat_age(home):
    """Check that the home page's worker table shows each worker in the store, alive or lost."""
    store = Store.default()
    run_id = store.runs.create(RunPlan(TrainConfig(dataset="digits", epochs=1)))
    now = __import__("time").time()
    store.workers.beat(WorkerRecord("gpu-box:11", "gpu-box", 11, "NVIDIA H100 80GB HBM3", 1, run_id,
                                    now, now))
    at = app()
    [table] = [d.value for d in at.dataframe if "host" in d.value.columns]
    row = table.iloc[0]
    assert (row["host"], row["device"], row["GPU"], row["state"]) == \
        ("gpu-box", "NVIDIA H100 80GB HBM3", "1", "live")
    assert row["training"] == run_id.rsplit("-", 1)[1] and 0 <= row["heartbeat"] < 60


def test_train_page_lists_an_unreadable_run_and_the_others(filled):
    """Check that one malformed row shows as unreadable in the runs table; every page still renders."""
    store = Store.default()
    broken = store.runs.create(RunPlan(TrainConfig(dataset="digits")))
    with store.connect(write=True) as conn:
        conn.exec_driver_sql("UPDATE runs SET config = '[]', status = 'failed' WHERE run_id = ?",
                             (broken,))
    for page in PAGES:
        at = app(page)
        assert "Could not read the run store" not in texts(at.error), page
    table = app("app_pages/train.py").dataframe[0].value
    row = table[table.id == broken[-6:]].iloc[0]
    assert row.reason.startswith("unreadable: its stored config is not a JSON object")
    assert set(table.id) == {broken[-6:], filled["gradient"][-6:], filled["baseline"][-6:]}


@pytest.mark.parametrize("page", PAGES)
def test_pages_name_an_unusable_home_and_the_fix(home, monkeypatch, page):
    """Check that a GRADLOSS_HOME holding a folder where the run store belongs is named, with the fix."""
    folder = home / "broken-home"
    (folder / "runs.sqlite").mkdir(parents=True)
    monkeypatch.setenv("GRADLOSS_HOME", str(folder))
    at = app(page)
    message = texts(at.error)
    assert str(folder) in message and "Set GRADLOSS_HOME to a folder you can write" in message
    assert "unable to open database file" not in message


def test_home_shows_the_worker_settings_and_restarts_it(home, monkeypatch):
    """Check that Home shows a live worker's data folder, warns when it differs from the
    dashboard's, and that Restart worker restarts it."""
    import os
    import socket
    import time

    from gradloss.service import consumer

    Store.default().workers.beat(WorkerRecord(
        f"{socket.gethostname()}:{os.getpid()}", socket.gethostname(), os.getpid(), "CPU", None,
        None, time.time(), time.time(),
        WorkerSettings(data_dir=None, code="/old/checkout", engines=("tensorflow",))))
    monkeypatch.delenv("GRADLOSS_NO_LOCAL_WORKER")  # the record above is the live local worker
    restarts = []
    monkeypatch.setattr(consumer, "restart_local_worker", lambda: restarts.append(1) or True)
    at = app()
    warning = texts(at.warning)
    assert "GRADLOSS_DATA_DIR" in warning and str(home / "no-data") in warning and "not set" in warning
    assert "/old/checkout" in warning
    next(b for b in at.button if b.label == "Restart worker").click().run()
    assert not at.exception and restarts == [1]


def test_loss_curve_legend_and_picker_show_the_same_status(filled, monkeypatch):
    """Check that a run finishing between the picker's read and the chart's, while another still
    trains, is labelled alike in both."""
    import dataclasses

    store = Store.default()
    running, other = (store.runs.create(RunPlan(TrainConfig(objective=o, dataset="digits", train_size=200)))
                      for o in ("gradient", "baseline"))
    for run_id in (running, other):
        store.runs.start(run_id, "w")
        store.results.add_metrics(run_id, [MetricRow(1, 1, "loss", 1e-3)])
    from gradloss.service.store.runs import RunRepository

    real_get = RunRepository.get
    reads = []

    def get_run(self, run_id):  # the first chart read sees the run already done
        run = real_get(self, run_id)
        reads.append(run_id)
        return dataclasses.replace(run, status="done") if reads.count(running) == 1 and run_id == running else run

    monkeypatch.setattr(RunRepository, "get", get_run)
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=30)
    at.switch_page("app_pages/loss_curves.py")
    at.session_state["curve_runs"] = [running, other]
    at.run()
    assert not at.exception, at.exception
    picker = at.multiselect(key="curve_runs")
    chosen = {o for o in picker.options if running[-6:] in o or other[-6:] in o}
    legend = {t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    assert legend == chosen


ARMS = ("gradient", "baseline")  # the fake experiment's arms (ExperimentConfig's default)


def fake_experiment(store: Store, gain: float, seeds: int = 3) -> str:
    """A finished digits experiment, sweeps and losses stored directly; gradient gains `gain`
    at sigma 0.1 and twice that at 0.2 on top of the seed's shared luck."""
    spec = ExperimentConfig(seeds=seeds, dataset="digits", train_size=200, epochs=1)
    experiment_id = store.experiments.create(spec)
    for arm, config in spec.configs():
        run_id = store.runs.create(RunPlan(config), experiment_id=experiment_id, arm=arm)
        store.runs.start(run_id, "w")
        luck = 0.01 * ((config.seed * 7) % 3 - 1)
        jitter = 0.003 * (config.seed - 1) * (1 if arm == "gradient" else -1)  # mean 0 over seeds
        acc = [0.9 + luck, 0.8 + luck + jitter, 0.6 + luck + jitter]
        if arm == "gradient":
            acc = [acc[0], acc[1] + gain, acc[2] + 2 * gain]
        store.results.save_robustness(run_id, pd.DataFrame({"sigma": SIGMAS, "accuracy": acc,
                                                    "accuracy_std": 0.0}), 3, 0)
        store.results.add_metrics(run_id, [MetricRow(s, 1, "loss", (1e-4 if arm == "gradient" else 1.0) / s)
                                   for s in range(1, 21)])
        store.runs.finish(run_id, "done")
    return experiment_id


def test_robustness_experiment_shows_bands_intervals_and_the_sentence(home):
    """Check the experiment tab: mean curves with bands, the coloured table and the sentence."""
    fake_experiment(Store.default(), gain=0.05)
    at = app("app_pages/robustness.py")
    assert at.select_slider(key="experiment_sigma").value == 0.1
    text = texts(at.markdown)
    assert re.search(r"At σ = 0\.1, the gradient loss is 5\.0 points more accurate than the "
                     r"baseline \(95 % CI \d\.\d to \d\.\d, 3 seeds; adjusted p = [\d.e-]+, "
                     r"Benjamini–Hochberg over \d+ comparisons\)", text), text
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sum(t.get("fill") == "toself" for t in spec["data"]) == len(ARMS)  # one band per arm
    table = at.dataframe[0].value
    assert list(table.arm) == ["baseline (cross-entropy)", "gradient loss"] and table["seeds"].tolist() == [3, 3]
    assert table["difference, points [95 % CI]"].iloc[0] == "reference"
    assert table["difference, points [95 % CI]"].iloc[1].startswith("+5.0 [")
    assert len(at.get("download_button")) >= 4
    at.checkbox(key="show_seeds").check().run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sum(bool(re.search(r" seed \d+$", t.get("name", ""))) for t in spec["data"]) == \
        3 * len(ARMS)
    at.select_slider(key="experiment_sigma").set_value(0.2).run()
    assert "At σ = 0.2, the gradient loss is 10.0 points more accurate" in texts(at.markdown)


def test_robustness_experiment_gives_corruptions_and_attacks_intervals(home):
    """Check that an experiment whose runs were evaluated shows every perturbation's headline
    with its interval, and one attack's curves, sentence and table at the chosen ε."""
    from gradloss.core.evaluation import EvaluationConfig

    store = Store.default()
    experiment_id = fake_experiment(store, gain=0.05)
    evaluation = EvaluationConfig(perturbations=("contrast", "fgsm"), epsilons=(0.0, 0.1, 0.2))
    for run in store.runs.of_experiment(experiment_id):
        seed, gradient = run.config.seed, run.arm == "gradient"
        jitter = 0.003 * (seed - 1) * (1 if gradient else -1)  # mean 0 over the seeds
        store.evaluations.plan(run.run_id, evaluation)
        store.evaluations.save_rows(run.run_id, pd.DataFrame({
            "perturbation": ["contrast"] * 5 + ["fgsm"] * 3,
            "level": [1, 2, 3, 4, 5, 0.0, 0.1, 0.2],
            "accuracy": [0.85 - 0.05 * s + jitter for s in range(1, 6)]
            + [0.9, 0.4 + jitter + 0.1 * gradient, 0.2 + jitter + 0.1 * gradient],
            "accuracy_std": 0.0, "n_images": 100, "seed": 0}))
        store.evaluations.set_status(run.run_id, "done")
    at = app("app_pages/robustness.py")
    assert not at.exception, at.exception
    overview = next(d.value for d in at.dataframe  # the Experiments tab's, before Single runs'
                    if {"perturbation", "at"} <= set(d.value.columns))
    fgsm = overview[(overview.perturbation == "FGSM") & (overview.arm == "gradient loss")].iloc[0]
    assert fgsm["at"] == "ε=0.1" and fgsm["difference, points [95 % CI]"].startswith("+10.0 [")
    contrast = overview[(overview.perturbation == "contrast") & (overview.arm == "gradient loss")].iloc[0]
    assert contrast["at"] == "mean over severities"
    assert contrast["difference, points [95 % CI]"].startswith(("+0.0 [", "-0.0 [", "−0.0 ["))
    at.selectbox(key="experiment_perturbation").set_value("fgsm").run()
    assert at.select_slider(key="experiment_level_fgsm").value == 0.1
    assert re.search(r"FGSM: At ε = 0\.1, the gradient loss is 10\.0 points more accurate than "
                     r"the baseline \(95 % CI \d+\.\d to \d+\.\d, 3 seeds; adjusted p", texts(at.markdown))
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert spec["layout"]["xaxis"]["title"]["text"] == "FGSM: ε"
    assert sum(t.get("fill") == "toself" for t in spec["data"]) == len(ARMS)


def test_robustness_experiment_without_evaluations_says_how_to_get_them(home):
    fake_experiment(Store.default(), gain=0.05)
    at = app("app_pages/robustness.py")
    assert "measured Gaussian noise only" in texts(at.caption)


def test_robustness_experiment_says_when_the_arms_are_not_distinguishable(home):
    """Check that a difference whose interval covers 0 is said so, and left uncoloured."""
    fake_experiment(Store.default(), gain=0.0)
    at = app("app_pages/robustness.py")
    assert "the gradient loss and the baseline are not distinguishable" in texts(at.markdown)


def test_loss_curves_average_an_experiment_with_smoothing(home):
    """Check one mean curve with a band per arm, and the moving-average control."""
    fake_experiment(Store.default(), gain=0.05)
    at = app("app_pages/loss_curves.py")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sum(t.get("fill") == "toself" for t in spec["data"]) == len(ARMS)
    raw = [t["y"] for t in spec["data"] if "mean of 3 seeds" in t.get("name", "")]
    at.slider(key="smoothing").set_value(5).run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    smooth = [t["y"] for t in spec["data"] if "mean of 3 seeds" in t.get("name", "")]
    assert len(raw) == len(smooth) == len(ARMS) and raw != smooth


def test_train_experiment_form_refuses_one_seed_then_queues_and_cancels(home):
    """Check the experiment form's message in words, a queued experiment, and cancel all."""
    at = app("app_pages/train.py")
    at.selectbox(key="dataset").set_value("digits").run()
    at.number_input(key="exp_seeds").set_value(1)
    next(b for b in at.get("form_submit_button") if b.label == "Queue the experiment").click().run()
    assert "an interval needs at least 2 seeds" in texts(at.error)
    assert Store.default().experiments.list() == []
    at.number_input(key="exp_seeds").set_value(2)
    at.number_input(key="exp_train_size").set_value(200)
    next(b for b in at.get("form_submit_button") if b.label == "Queue the experiment").click().run()
    [experiment] = Store.default().experiments.list()
    assert experiment.n_runs == 2 * len(ARMS)
    assert f"0 of {2 * len(ARMS)} runs done" in at.get("progress")[0].proto.text
    at.button(key=f"cancel_experiment_{experiment.experiment_id}").click().run()
    assert Store.default().experiments.get(experiment.experiment_id).status == "cancelled"


def test_train_experiment_form_queues_corruptions_and_attacks_for_every_run(home):
    """Check that ticking Corruptions and attacks plans the digits suite for each of its runs."""
    at = app("app_pages/train.py")
    at.selectbox(key="dataset").set_value("digits").run()
    at.number_input(key="exp_seeds").set_value(2)
    at.checkbox(key="exp_evaluate").check()
    next(b for b in at.get("form_submit_button") if b.label == "Queue the experiment").click().run()
    store = Store.default()
    [experiment] = store.experiments.list()
    runs = store.runs.of_experiment(experiment.experiment_id)
    plans = store.evaluations.plans([r.run_id for r in runs])
    assert len(plans) == len(runs) == 2 * len(ARMS)
    assert {p.status for p in plans.values()} == {"queued"}
    assert experiment.spec.evaluation.perturbations


def test_home_shows_the_latest_experiment_sentence(home):
    fake_experiment(Store.default(), gain=0.05)
    at = app()
    assert "the gradient loss is 5.0 points more accurate than the baseline" in texts(at.markdown)


def test_home_shows_the_shipped_reference_results_labelled_with_their_provenance(home):
    """Check that Home shows the reference results as such: commit, device and date in the
    label, each objective's interval and difference in the table."""
    at = app()
    [expander] = [e for e in at.expander if e.label.startswith("Reference results (shipped")]
    assert "commit b58b6fa" in expander.label and "NVIDIA H200" in expander.label
    table = next(d.value for d in at.dataframe if "Δ points at σ=0.1" in d.value.columns)
    gradient = table.set_index("objective").loc["gradient loss"]
    assert gradient["Δ points at σ=0.1"] == "+3.5 [+1.0, +6.1]"
    assert gradient["accuracy at σ=0.1"] == "0.865 [0.843, 0.887]"
def other_protocol_run(store: Store, objective: str, accuracy, epochs: int = 1, train_size=300) -> str:
    """A done digits run trained otherwise than finished_run's (1 epoch on 300 images)."""
    run_id = store.runs.create(RunPlan(TrainConfig(objective=objective, dataset="digits",
                                                   epochs=epochs, train_size=train_size)))
    store.runs.start(run_id, "w")
    store.results.add_metrics(run_id, [MetricRow(1, 1, "loss", 0.5), MetricRow(1, 1, "test_accuracy", accuracy[0])])
    store.results.save_robustness(run_id, pd.DataFrame({"sigma": SIGMAS, "accuracy": accuracy,
                                                        "accuracy_std": 0.0}), draws=3, seed=0)
    store.runs.finish(run_id, "done")
    return run_id


def test_home_compares_only_runs_of_one_protocol(filled):
    """Check that a newer run of another protocol makes Home compare within its protocol only,
    naming the protocol, instead of quoting a gap against the older pair."""
    store = Store.default()
    newest = other_protocol_run(store, "mse", (0.5, 0.45, 0.40))
    at = app()
    table = comparison(at)
    assert list(table.id) == [newest[-6:]]
    assert "Protocol: digits, 300 training images, 1 epoch" in texts(at.caption)
    assert "points above" not in texts(at.markdown) and "points below" not in texts(at.markdown)
    assert "nothing to compare against" in texts(at.info)


def test_robustness_names_what_differs_across_protocols(filled):
    """Check that runs of two protocols side by side get a warning, a column and sentences that
    name what differs."""
    store = Store.default()
    short = other_protocol_run(store, "gradient", (0.6, 0.62, 0.5))
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=30)
    at.switch_page("app_pages/robustness.py")
    at.session_state["chosen:compare_runs"] = [short, filled["baseline"]]
    at.run()
    assert not at.exception, at.exception
    assert "not all trained the same way" in texts(at.warning)
    table = at.dataframe[0].value
    assert table["differs from the reference"].iloc[0] == \
        "training images 300 against 200; epochs 1 against 2"
    summary = texts(at.markdown)
    assert "(another protocol: training images 300 against 200; epochs 1 against 2)" in summary
    assert "accuracy rises with noise, 0.6000 at σ = 0 to 0.6200 at σ = 0.1" in texts(at.warning)


def test_robustness_reference_and_sigma_stay_as_the_user_set_them(every):
    """Check the issue's path: Clear all, pick a gradient then a baseline run: the reference is
    the baseline (the default), not the first pick; a reference and σ the user chose survive
    changing the picked runs and a visit to another page."""
    at = app("app_pages/robustness.py")
    at.multiselect(key="compare_runs").set_value([]).run()
    assert "Pick one or more runs above" in texts(at.info)
    at.multiselect(key="compare_runs").set_value([every["gradient"]]).run()
    at.multiselect(key="compare_runs").set_value([every["gradient"], every["baseline"]]).run()
    assert at.selectbox(key="reference_run").value == every["baseline"]
    assert at.select_slider(key="sigma").value == 0.1
    at.selectbox(key="reference_run").set_value(every["gradient"]).run()
    at.select_slider(key="sigma").set_value(0.2).run()
    at.multiselect(key="compare_runs").set_value(
        [every["gradient"], every["baseline"], every["mse"]]).run()
    assert at.selectbox(key="reference_run").value == every["gradient"]
    assert at.select_slider(key="sigma").value == 0.2
    at.switch_page("app_pages/train.py").run()
    at.switch_page("app_pages/robustness.py").run()
    assert at.multiselect(key="compare_runs").value == [every["gradient"], every["baseline"],
                                                        every["mse"]]
    assert at.selectbox(key="reference_run").value == every["gradient"]
    assert at.select_slider(key="sigma").value == 0.2
    assert "At σ = 0.2, against gradient loss" in texts(at.markdown)


def test_loss_curves_open_on_good_runs_not_failed_ones(filled):
    """Check that two newer failed runs are not what Loss curves opens on."""
    store = Store.default()
    for objective in ("gradient", "baseline"):
        run_id = store.runs.create(RunPlan(TrainConfig(objective=objective, dataset="digits")))
        store.runs.finish(run_id, "failed", error="boom")
    at = app("app_pages/loss_curves.py")
    assert at.multiselect(key="curve_runs").value == [filled["gradient"], filled["baseline"]]
    assert not texts(at.info).startswith("No metrics yet")


def test_runs_page_lists_every_run_and_filters_them(filled):
    store = Store.default()
    store.runs.tag(filled["gradient"], ["paper"])
    at = app("app_pages/runs.py")
    table = at.dataframe[0].value
    assert set(table.id) == {filled["gradient"][-6:], filled["baseline"][-6:]}
    assert table.set_index("id").loc[filled["gradient"][-6:], "clean accuracy"] == 0.90
    at.text_input(key="runs_search").set_value("paper").run()
    assert list(at.dataframe[0].value.id) == [filled["gradient"][-6:]]


def test_run_page_shows_a_run_and_opens_on_the_newest_finished_one(filled):
    at = app("app_pages/run.py")
    assert at.selectbox[0].value == filled["baseline"]  # the newest finished run
    assert any("Protocol" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) == 3  # loss, per epoch, sweep
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=30)
    at.switch_page("app_pages/run.py")
    at.query_params["id"] = filled["gradient"]
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox[0].value == filled["gradient"]


def test_train_form_evaluates_only_when_asked_and_then_apart_from_training(home):
    """Check that the form, like `gradloss train`, queues no evaluation by default, and that a
    ticked one is planned (to be queued once the run is trained)."""
    at = app("app_pages/train.py")
    assert at.checkbox(key="evaluate").value is False
    at.multiselect(key="objectives").set_value(["gradient"]).run()
    at.number_input(key="train_size_digits").set_value(200)
    at.get("form_submit_button")[0].click().run()
    [run] = Store.default().runs.list()
    assert Store.default().evaluations.plan_of(run.run_id) is None
    at.checkbox(key="evaluate").check()
    at.get("form_submit_button")[0].click().run()
    newest = Store.default().runs.list()[0]
    assert Store.default().evaluations.plan_of(newest.run_id).status == "queued"


def test_runs_page_renames_tags_annotates_and_deletes_the_picked_run(filled):
    """Check the Runs page's actions on a picked row: Save stores name, tags and note (a refused
    name says why); Delete asks first, then removes the run."""
    store = Store.default()
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=30)
    at.switch_page("app_pages/runs.py")
    at.session_state["runs_table"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    at.run()  # newest first: row 1 is the gradient run
    assert not at.exception, at.exception
    at.text_input[1].set_value("x" * 81)
    at.button[0].click().run()
    assert texts(at.error) == "Name must be at most 80 printable characters; got " + "x" * 81 + "."
    at.text_input[1].set_value("first try")
    at.text_input[2].set_value("paper, fig-2")
    at.text_area[0].set_value("short run")
    at.button[0].click().run()
    run = store.runs.get(filled["gradient"])
    assert (run.name, run.tags, run.note) == ("first try", ("paper", "fig-2"), "short run")
    assert not [b for b in at.button if b.label == "Delete"]  # asks first
    at.checkbox(key="delete_confirm").check().run()
    next(b for b in at.button if b.label == "Delete").click().run()
    assert [r.run_id for r in store.runs.list()] == [filled["baseline"]]
