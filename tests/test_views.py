"""Tests of gradloss.views: the dashboard's tables and figures, built from plain DataFrames."""
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd

from gradloss import views


def make_run(run_id, objective, status="done", dataset="digits", progress=None, **kw):
    base = dict(run_id=run_id, objective=objective, dataset=dataset, status=status, progress=progress or {},
                config={"epochs": 1, "batch_size": 32, "train_size": None}, device="CPU", error=None,
                started_at=None, finished_at=None, created_at=0.0)
    return SimpleNamespace(**{**base, **kw})


def sweep(run_id, accs, stds=None):
    sigmas = [0.0, 0.1, 0.2][:len(accs)]
    return pd.DataFrame({"run_id": run_id, "sigma": sigmas, "accuracy": accs,
                         "accuracy_std": stds or [0.0] * len(accs), "draws": 3, "seed": 0})


def test_views_do_not_import_streamlit_or_tensorflow():
    """Check that the view helpers stay importable without the heavy libraries."""
    code = ("import sys, gradloss.views\n"
            "print(sorted({'streamlit', 'tensorflow', 'keras'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_format_duration_reads_naturally():
    assert views.format_duration(None) == "–"
    assert views.format_duration(4.6) == "5 s"
    assert views.format_duration(185) == "3 min 05 s"
    assert views.format_duration(3720) == "1 h 02 min"


def test_progress_text_shows_step_epoch_and_eta():
    run = make_run("r1", "gradient", "running", progress={"fraction": 0.5, "step": 30, "total_steps": 60,
                                                          "epoch": 1, "epochs": 2, "eta_s": 12, "loss": 0.01})
    assert views.progress_text(run) == "step 30/60 · epoch 1/2 · ETA 12 s · loss 0.01"
    assert views.progress_fraction(run) == 0.5
    assert views.progress_text(make_run("r2", "gradient", "queued")) == "waiting for the worker"
    done = make_run("r3", "gradient", "running", progress={"fraction": 1.0, "epochs": 2})
    assert views.progress_text(done) == "trained 2 epochs · measuring accuracy under noise…"
    sweeping = make_run("r4", "gradient", "running",
                        progress={"fraction": 1.0, "epochs": 2, "sweep_done": 11, "sweep_total": 44})
    assert views.progress_text(sweeping) == "trained 2 epochs · measuring accuracy under noise · 25%"
    assert views.progress_fraction(sweeping) == 0.25  # the bar follows the sweep once trained


def test_latest_per_objective_keeps_the_newest_run_of_each_on_the_newest_dataset():
    """Check that the default runs are the newest of each objective, on the newest run's dataset."""
    runs = [make_run("a", "mse"), make_run("b", "gradient", dataset="fashion_mnist"),
            make_run("c", "gradient"), make_run("d", "baseline", "failed"), make_run("e", "baseline"),
            make_run("f", "input_gradient"), make_run("g", "mse")]
    latest = views.latest_per_objective(runs)
    assert [(o, r.run_id) for o, r in latest.items()] == [
        ("gradient", "c"), ("baseline", "e"), ("input_gradient", "f"), ("mse", "a")]
    assert views.latest_per_objective([make_run("x", "gradient", "running")]) == {}


def test_default_reference_is_the_newest_baseline_else_the_first_run():
    runs = [make_run("n", "noise_augmented"), make_run("b1", "baseline"), make_run("b0", "baseline")]
    assert views.default_reference(runs) == "b1"
    assert views.default_reference(runs[:1]) == "n"
    assert views.default_reference([]) is None


def test_run_styles_give_one_colour_per_objective_and_a_dash_per_repeat():
    labels = {"g1": ("", "gradient"), "b": ("", "baseline"), "g2": ("", "gradient")}
    styles = views.run_styles(labels)
    assert styles["g1"][0] == styles["g2"][0] != styles["b"][0]
    assert styles["g1"][1] != styles["g2"][1]
    assert len({views.run_styles({o: ("", o)})[o][0] for o in views.OBJECTIVES}) == 5


def test_error_line_keeps_the_message_of_a_traceback():
    assert views.error_line("Traceback...\n  File x\nValueError: bad\n") == "ValueError: bad"
    assert views.error_line(None) == ""


def test_comparison_table_gives_each_run_its_gap_to_the_reference():
    """Check the table's accuracies, points against the reference run, input-gradient norm and step cost."""
    runs = {"g": make_run("g", "gradient"), "b": make_run("b", "baseline"),
            "n": make_run("n", "noise_augmented")}
    rob = pd.concat([sweep("g", [0.9, 0.85]), sweep("b", [0.91, 0.8]), sweep("n", [0.9, 0.78])])
    metrics = pd.DataFrame({"run_id": ["g", "g", "b", "g"], "step": [10, 20, 10, 20],
                            "epoch": [1, 2, 1, 2], "name": ["step_ms"] * 3 + ["input_grad_norm"],
                            "value": [50.0, 10.0, 3.0, 0.02]})
    table = views.comparison_table(runs, metrics, rob, 0.1, reference="b")
    assert list(table.objective) == ["gradient loss", "baseline (cross-entropy)", "noise augmentation"]
    assert list(table["clean accuracy"]) == [0.9, 0.91, 0.9]
    assert list(table["accuracy at σ=0.1"]) == [0.85, 0.8, 0.78]
    assert list(table["points vs reference"]) == [5.0, 0.0, -2.0]
    assert table["‖∂CE/∂x‖"].iloc[0] == 0.02 and pd.isna(table["‖∂CE/∂x‖"].iloc[1])
    assert list(table["ms / step"].iloc[:2]) == [30.0, 3.0]
    assert views.comparison_summary(table, 0.1, "b").startswith(
        "At σ = 0.1, against baseline (cross-entropy) (b): gradient loss (g) 5.0 points above; "
        "noise augmentation (n) 2.0 points below.")
    assert views.comparison_summary(table, 0.1, "missing") == ""


def test_short_id_keeps_the_random_tail_of_a_run_id():
    assert views.short_id("20260101-120000-3f2a1b") == "3f2a1b"
    assert "3f2a1b (done)" in views.run_label(make_run("20260101-120000-3f2a1b", "gradient"))


def test_swept_sigmas_are_those_common_to_all_runs():
    rob = pd.concat([sweep("g", [0.9, 0.8, 0.7]), sweep("b", [0.9, 0.8])])
    assert views.swept_sigmas(rob, ["g", "b"]) == [0.0, 0.1]
    assert views.swept_sigmas(rob, ["g", "missing"]) == []
    assert views.nearest([0.0, 0.1, 0.2], 0.12) == 0.1


def test_downsample_bounds_points_with_bucket_means():
    df = pd.DataFrame({"step": np.arange(1, 2501), "value": np.ones(2500)})
    small, k = views.downsample(df, 1000)
    assert k == 3 and len(small) <= 1000 and small.value.eq(1.0).all()


def test_loss_figures_give_each_objective_a_panel_and_wide_ranges_a_log_axis():
    metrics = pd.DataFrame({"run_id": ["g", "g", "b", "b", "g", "b"], "step": [1, 2, 1, 2, 2, 2],
                            "epoch": 1, "name": ["loss", "loss", "loss", "loss", "epoch_loss", "epoch_loss"],
                            "value": [1e-2, 1e-4, 0.5, 0.4, 1e-4, 0.4]})
    labels = {"g": ("g-label", "gradient"), "b": ("b-label", "baseline"), "q": ("queued", "baseline")}
    fig = views.loss_figure(metrics, labels)
    assert len(fig.data) == 2
    assert (fig.layout.yaxis.type, fig.layout.yaxis2.type) == ("log", "linear")
    assert fig.layout.yaxis.title.text == "loss (log scale)"
    epochs = views.epoch_figure(metrics, labels)
    assert len(epochs.data) == 2 and epochs.layout.yaxis.type == "log"


def test_input_grad_figure_draws_one_line_per_run_with_a_log_axis_for_wide_ranges():
    metrics = pd.DataFrame({"run_id": ["g", "g", "b", "b"], "step": [5, 10, 5, 10], "epoch": [1, 2, 1, 2],
                            "name": "input_grad_norm", "value": [0.01, 0.005, 0.3, 0.5]})
    fig = views.input_grad_figure(metrics, {"g": ("g", "gradient"), "b": ("b", "baseline")})
    assert [list(t.y) for t in fig.data] == [[0.01, 0.005], [0.3, 0.5]]
    assert fig.layout.yaxis.type == "log"


def test_loss_figure_leaves_out_objectives_without_points():
    metrics = pd.DataFrame({"run_id": ["g"], "step": [1], "epoch": 1, "name": ["loss"], "value": [1e-3]})
    fig = views.loss_figure(metrics, {"g": ("g", "gradient"), "b": ("b", "baseline")})
    assert [a.text for a in fig.layout.annotations] == ["gradient loss"]


def test_comparison_figure_draws_each_run_in_its_objective_colour_and_marks_sigma():
    rob = pd.concat([sweep("g", [0.9, 0.85], [0.0, 0.01]), sweep("b", [0.91, 0.8]),
                     sweep("m", [0.88, 0.7])])
    labels = {"g": ("g-label", "gradient"), "b": ("b-label", "baseline"), "m": ("m-label", "mse")}
    fig = views.comparison_figure(rob, labels, 0.1)
    markers = [t for t in fig.data if t.marker.symbol == "diamond"]
    assert [list(t.y) for t in markers] == [[0.85], [0.8], [0.7]]
    lines = {t.name: t.line.color for t in fig.data if t.name}
    assert lines == {"g-label": "#1f77b4", "b-label": "#ff7f0e", "m-label": "#9467bd"}
    assert views.accuracy_at(rob, "g", 0.1) == (0.85, 0.01)
    assert "objective" in views.robustness_csv(rob, labels).splitlines()[0]


def test_example_captions_mark_right_and_wrong():
    ex = pd.DataFrame({"sigma": [0.1, 0.1], "index": [3, 7], "label": [1, 2], "prediction": [1, 0],
                       "confidence": [0.9, 0.6]})
    captions = views.example_captions({"gradient": ex}, 0.1, ["a", "b", "c"])
    assert captions[0] == (3, "**b**  \n:green[✓ gradient: b] (90%)")
    assert ":red[✗ gradient: a]" in captions[1][1]
    assert views.upscale(np.full((2, 2, 1), 2.0), 3).shape == (6, 6)
