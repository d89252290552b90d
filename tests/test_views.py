"""Tests of gradloss.views: the dashboard's tables and figures, built from plain DataFrames."""
import subprocess
import sys

import numpy as np
import pandas as pd

from gradloss.core.config import TrainConfig
from gradloss.core.progress import Progress
from gradloss.core.records import StoredRun
from gradloss.ui import views


def make_run(run_id, objective, status="done", dataset="digits", progress=None, config=None,
             **kw):
    """A StoredRun as the store would give it back."""
    settings = {"epochs": 1, "batch_size": 32, "train_size": None, **(config or {})}
    return StoredRun(run_id=run_id, created_at=kw.pop("created_at", 0.0), status=status,
                     objective=objective, dataset=dataset, engine="tensorflow",
                     config=TrainConfig(objective=objective, dataset=dataset, **settings),
                     progress=Progress(**(progress or {})), device="CPU", **kw)


def sweep(run_id, accs, stds=None):
    sigmas = [0.0, 0.1, 0.2][:len(accs)]
    return pd.DataFrame({"run_id": run_id, "sigma": sigmas, "accuracy": accs,
                         "accuracy_std": stds or [0.0] * len(accs), "draws": 3, "seed": 0})


def test_views_do_not_import_streamlit_or_tensorflow():
    """Check that the view helpers stay importable without the heavy libraries."""
    code = ("import sys, gradloss.ui.views\n"
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
    one = make_run("r5", "gradient", "running", progress={"fraction": 1.0, "epochs": 1})
    assert views.progress_text(one) == "trained 1 epoch · measuring accuracy under noise…"
    sweeping = make_run("r4", "gradient", "running",
                        progress={"fraction": 1.0, "epochs": 2, "sweep_done": 11, "sweep_total": 44})
    assert views.progress_text(sweeping) == "trained 2 epochs · measuring accuracy under noise · 25%"
    assert views.progress_fraction(sweeping) == 0.25  # the bar follows the sweep once trained
    evaluating = make_run("r5", "gradient", "running", progress={
        "fraction": 1.0, "epochs": 2, "phase": "PGD (12/13)", "sweep_done": 3, "sweep_total": 6})
    assert views.progress_text(evaluating) == "trained 2 epochs · evaluating: PGD (12/13) · 50%"
    assert views.progress_fraction(evaluating) == 0.5


def test_progress_text_and_bar_agree_at_every_point_of_a_run():
    """Check that what is written beside the bar is the bar's own fill, training or sweeping."""
    training = {"fraction": 0.9, "step": 9, "total_steps": 10, "epoch": 1, "epochs": 1}
    fraction, text = views.progress_bar(make_run("r", "gradient", "running", progress=training))
    assert fraction == 0.9 and text.startswith("step 9/10 · epoch 1/1")
    for done in (1, 12, 23):
        sweeping = {"fraction": 1.0, "epochs": 1, "sweep_done": done, "sweep_total": 24}
        fraction, text = views.progress_bar(make_run("r", "gradient", "running", progress=sweeping))
        assert fraction == done / 24 and text.endswith(f"noise · {fraction:.0%}"), (fraction, text)


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
    assert list(table["ms / 1000 images"].iloc[:2]) == [30.0 / 32 * 1000, 3.0 / 32 * 1000]
    assert views.comparison_summary(table, 0.1, "b").startswith(
        "At σ = 0.1, against baseline (cross-entropy) (b): gradient loss (g) 5.0 points above; "
        "noise augmentation (n) 2.0 points below.")
    assert views.comparison_summary(table, 0.1, "missing") == ""


def test_step_cost_is_compared_per_training_image_across_batch_sizes():
    """Check that a 20 ms step of 100 images against a 5 ms step of 32 reads as 1.3x per image, not 4x."""
    pair = {"g": make_run("g", "gradient", config={"batch_size": 100}),
            "b": make_run("b", "baseline", config={"batch_size": 32})}
    metrics = pd.DataFrame({"run_id": ["g", "b"], "step": [10, 10], "epoch": 1, "name": "step_ms",
                            "value": [20.0, 5.0]})
    table = views.comparison_table(pair, metrics, pd.concat([sweep("g", [0.9]), sweep("b", [0.9])]), 0.0,
                                   reference="b")
    assert list(table["ms / 1000 images"]) == [200.0, 156.25]
    assert "costs 1.3× the reference's time per training image" in views.comparison_summary(table, 0.0, "b")


def test_runs_table_converts_to_arrow_with_a_whole_and_a_subset_run():
    """Check that the table st.dataframe shows has one type per column (no ArrowInvalid)."""
    import pyarrow as pa

    runs = [make_run("a", "gradient", config={"epochs": 1, "batch_size": 32, "train_size": None},
                     created_at=2.0),
            make_run("b", "baseline", config={"epochs": 1, "batch_size": 32, "train_size": 200},
                     created_at=1.0)]
    table = views.runs_table(runs)
    pa.Table.from_pandas(table)
    assert table["train size"].isna().tolist() == [True, False]


def test_runs_table_lists_newest_first_with_the_reason_of_a_failure():
    """Check that failures sit in the table by age with a one-line reason."""
    runs = [make_run("old", "gradient", "failed", created_at=1.0, error="Traceback\nDataError: disk full"),
            make_run("new", "baseline", "done", created_at=2.0)]
    table = views.runs_table(runs)
    assert table["run"].tolist() == ["new", "old"]
    assert table["reason"].tolist() == ["", "DataError: disk full"]


def test_form_messages_name_the_field_in_words():
    """Check that a refused value is reported with the Train form's label, not the config class."""
    from gradloss.core.config import TrainConfig
    from gradloss.core.errors import InvalidParameterError

    for kwargs, message in (({"epochs": 0}, "Epochs must be a whole number from 1 to 500; got 0."),
                            ({"dataset": "digits", "train_size": 200, "batch_size": 300},
                             "Batch size must be a whole number from 1 to 200; got 300."),
                            ({"learning_rate": 0.0}, "Learning rate must be a number greater than 0; got 0.0.")):
        try:
            TrainConfig(**kwargs)
        except InvalidParameterError as error:
            assert views.form_message(error) == message
        else:
            raise AssertionError(f"{kwargs} was accepted")


def test_log_loss_axes_label_only_powers_of_ten():
    """Check that a log axis puts labelled ticks at each decade only (no 2..9 minor labels)."""
    metrics = pd.DataFrame({"run_id": "g", "step": [1, 2, 3], "epoch": 1, "name": "loss",
                            "value": [1e-2, 3e-3, 1e-4]})
    fig = views.loss_figure(metrics, {"g": ("g", "gradient")})
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick == 1



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
