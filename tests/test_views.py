"""Tests of the dashboard's view-models (gradloss.ui: labels, status, comparison, charts,
run_table, forms, images): tables, sentences and figures built from plain DataFrames."""
import subprocess
import sys

import numpy as np
import pandas as pd

from gradloss.analysis import summary
from gradloss.core.config import TrainConfig
from gradloss.core.progress import Progress
from gradloss.core.records import StoredRun
from gradloss.ui import charts, comparison, forms, images, labels, run_table, status
from gradloss.core.config import OBJECTIVES


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
    code = ("import sys, gradloss.ui.labels, gradloss.ui.status, gradloss.ui.comparison, "
            "gradloss.ui.charts, gradloss.ui.run_table, gradloss.ui.forms\n"
            "print(sorted({'streamlit', 'tensorflow', 'keras'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_format_duration_reads_naturally():
    assert labels.format_duration(None) == "–"
    assert labels.format_duration(4.6) == "5 s"
    assert labels.format_duration(185) == "3 min 05 s"
    assert labels.format_duration(3720) == "1 h 02 min"


def test_progress_text_shows_step_epoch_and_eta():
    run = make_run("r1", "gradient", "running", progress={"fraction": 0.5, "step": 30, "total_steps": 60,
                                                          "epoch": 1, "epochs": 2, "eta_s": 12, "loss": 0.01})
    assert status.progress_text(run) == "step 30/60 · epoch 1/2 · ETA 12 s · loss 0.01"
    assert status.progress_fraction(run) == 0.5
    assert status.progress_text(make_run("r2", "gradient", "queued")) == "queued: waiting for a worker"
    assert status.progress_bar(make_run("r2", "gradient", "queued"), ahead=2)[1] == \
        "queued behind 2 runs"
    assert status.progress_text(make_run("r6", "gradient", "running")) == "starting…"
    done = make_run("r3", "gradient", "running", progress={"fraction": 1.0, "epochs": 2})
    assert status.progress_text(done) == "trained 2 epochs · measuring accuracy under noise…"
    one = make_run("r5", "gradient", "running", progress={"fraction": 1.0, "epochs": 1})
    assert status.progress_text(one) == "trained 1 epoch · measuring accuracy under noise…"
    sweeping = make_run("r4", "gradient", "running",
                        progress={"fraction": 1.0, "epochs": 2, "sweep_done": 11, "sweep_total": 44})
    assert status.progress_text(sweeping) == "trained 2 epochs · measuring accuracy under noise · 25%"
    assert status.progress_fraction(sweeping) == 0.25  # the bar follows the sweep once trained
    evaluating = make_run("r5", "gradient", "running", progress={
        "fraction": 1.0, "epochs": 2, "phase": "PGD (12/13)", "sweep_done": 3, "sweep_total": 6})
    assert status.progress_text(evaluating) == "trained 2 epochs · evaluating: PGD (12/13) · 50%"
    assert status.progress_fraction(evaluating) == 0.5


def test_progress_text_and_bar_agree_at_every_point_of_a_run():
    """Check that what is written beside the bar is the bar's own fill, training or sweeping."""
    training = {"fraction": 0.9, "step": 9, "total_steps": 10, "epoch": 1, "epochs": 1}
    fraction, text = status.progress_bar(make_run("r", "gradient", "running", progress=training))
    assert fraction == 0.9 and text.startswith("step 9/10 · epoch 1/1")
    for done in (1, 12, 23):
        sweeping = {"fraction": 1.0, "epochs": 1, "sweep_done": done, "sweep_total": 24}
        fraction, text = status.progress_bar(make_run("r", "gradient", "running", progress=sweeping))
        assert fraction == done / 24 and text.endswith(f"noise · {fraction:.0%}"), (fraction, text)


def test_default_reference_is_the_newest_baseline_else_the_first_run():
    runs = [make_run("n", "noise_augmented"), make_run("b1", "baseline"), make_run("b0", "baseline")]
    assert comparison.default_reference(runs) == "b1"
    assert comparison.default_reference(runs[:1]) == "n"
    assert comparison.default_reference([]) is None


def test_run_styles_give_one_colour_per_objective_and_a_dash_per_repeat():
    runs = {"g1": make_run("g1", "gradient"), "b": make_run("b", "baseline"),
            "g2": make_run("g2", "gradient")}
    styles = charts.run_styles(runs)
    assert styles["g1"][0] == styles["g2"][0] != styles["b"][0]
    assert styles["g1"][1] != styles["g2"][1]
    assert len({charts.run_styles({o: make_run(o, o)})[o][0] for o in OBJECTIVES}) == len(OBJECTIVES)


def test_error_line_keeps_the_message_of_a_traceback():
    assert labels.error_line("Traceback...\n  File x\nValueError: bad\n") == "ValueError: bad"
    assert labels.error_line(None) == ""


def test_comparison_table_gives_each_run_its_gap_to_the_reference():
    """Check the table's accuracies, points against the reference run, input-gradient norm and step cost."""
    runs = {"g": make_run("g", "gradient"), "b": make_run("b", "baseline"),
            "n": make_run("n", "noise_augmented")}
    rob = pd.concat([sweep("g", [0.9, 0.85]), sweep("b", [0.91, 0.8]), sweep("n", [0.9, 0.78])])
    metrics = pd.DataFrame({"run_id": ["g", "g", "b", "g"], "step": [10, 20, 10, 20],
                            "epoch": [1, 2, 1, 2], "name": ["step_ms"] * 3 + ["input_grad_norm"],
                            "value": [50.0, 10.0, 3.0, 0.02]})
    table = comparison.comparison_table(runs, metrics, rob, 0.1, reference="b")
    assert list(table.objective) == ["gradient loss", "baseline (cross-entropy)", "noise augmentation"]
    assert list(table.run) == ["gradient loss · seed 0 · g", "baseline (cross-entropy) · seed 0 · b",
                               "noise augmentation · σ_train 0.1 · seed 0 · n"]
    assert list(table["clean accuracy"]) == [0.9, 0.91, 0.9]
    assert list(table["accuracy at σ=0.1"]) == [0.85, 0.8, 0.78]
    assert list(table["points vs reference"]) == [5.0, 0.0, -2.0]
    assert list(table[comparison.DIFFERS]) == ["", "", ""]  # one protocol
    assert table["‖∂CE/∂x‖"].iloc[0] == 0.02 and pd.isna(table["‖∂CE/∂x‖"].iloc[1])
    assert list(table["ms / 1000 images"].iloc[:2]) == [30.0 / 32 * 1000, 3.0 / 32 * 1000]
    summary = comparison.comparison_summary(table, 0.1, "b")
    assert summary.startswith(
        "At σ = 0.1, against baseline (cross-entropy) · seed 0 · b: gradient loss · seed 0 · g "
        "5.0 points above; noise augmentation · σ_train 0.1 · seed 0 · n 2.0 points below.")
    assert "another protocol" not in summary
    assert comparison.comparison_summary(table, 0.1, "missing") == ""


def test_a_difference_across_protocols_names_what_differs():
    """Check that a run trained otherwise than the reference carries, in its table row and its
    sentence, what of its protocol differs."""
    runs = {"g": make_run("g", "gradient", config={"epochs": 1, "train_size": 300}),
            "b": make_run("b", "baseline")}
    rob = pd.concat([sweep("g", [0.9, 0.85]), sweep("b", [0.91, 0.8])])
    table = comparison.comparison_table(runs, pd.DataFrame(columns=["run_id", "step", "name",
                                                                    "value"]), rob, 0.1, "b")
    assert table[comparison.DIFFERS].iloc[0] == "training images 300 against 1437"
    summary = comparison.comparison_summary(table, 0.1, "b")
    assert "5.0 points above (another protocol: training images 300 against 1437)" in summary
    assert "not the objective's alone" in summary


def test_undertrained_runs_are_named_with_how_they_were_trained():
    runs = {"u": make_run("u", "gradient", config={"epochs": 1, "train_size": 1000})}
    rob = sweep("u", [0.5485, 0.58, 0.6128])
    [warning] = comparison.undertrained_warnings(rob, runs)
    assert "0.5485 at σ = 0 to 0.6128 at σ = 0.2" in warning
    assert "(1 epoch on 1000 images)" in warning
    assert comparison.undertrained_warnings(sweep("u", [0.9, 0.8, 0.7]), runs) == []


def test_labels_tell_runs_apart_by_strength_seed_and_differing_protocol():
    """Check that labels carry the objective's strength and seed, the protocol fields in which
    the runs shown together differ, a name when given, and the status until done."""
    from dataclasses import replace

    runs = [make_run("20260101-000000-aaaaaa", "input_gradient", config={"penalty_weight": 0.5}),
            make_run("20260101-000000-bbbbbb", "input_gradient", config={"seed": 3, "epochs": 2}),
            replace(make_run("20260101-000000-cccccc", "baseline", "running"), name="long run")]
    got = labels.run_labels(runs)
    assert got["20260101-000000-aaaaaa"] == "input-gradient penalty · λ 0.5 · seed 0 · 1 epoch · aaaaaa"
    assert got["20260101-000000-bbbbbb"] == "input-gradient penalty · λ 0.1 · seed 3 · 2 epochs · bbbbbb"
    assert got["20260101-000000-cccccc"] == \
        "long run (baseline (cross-entropy)) · seed 0 · 1 epoch · cccccc (running)"
    assert len(set(got.values())) == 3 and not any("digits" in v for v in got.values())


def test_step_cost_is_compared_per_training_image_across_batch_sizes():
    """Check that a 20 ms step of 100 images against a 5 ms step of 32 reads as 1.3x per image, not 4x."""
    pair = {"g": make_run("g", "gradient", config={"batch_size": 100}),
            "b": make_run("b", "baseline", config={"batch_size": 32})}
    metrics = pd.DataFrame({"run_id": ["g", "b"], "step": [10, 10], "epoch": 1, "name": "step_ms",
                            "value": [20.0, 5.0]})
    table = comparison.comparison_table(pair, metrics, pd.concat([sweep("g", [0.9]), sweep("b", [0.9])]), 0.0,
                                        reference="b")
    assert list(table["ms / 1000 images"]) == [200.0, 156.25]
    summary = comparison.comparison_summary(table, 0.0, "b")
    assert "Training gradient loss · seed 0 · g costs 1.3× the reference's time per " \
        "training image" in summary  # the label as it is, not lower-cased


def test_runs_table_converts_to_arrow_with_a_whole_and_a_subset_run():
    """Check that the table st.dataframe shows has one type per column (no ArrowInvalid)."""
    import pyarrow as pa

    runs = [make_run("a", "gradient", config={"epochs": 1, "batch_size": 32, "train_size": None},
                     created_at=2.0),
            make_run("b", "baseline", config={"epochs": 1, "batch_size": 32, "train_size": 200},
                     created_at=1.0), make_run("c", "mse", "failed", created_at=0.5)]
    table = run_table.runs_table(runs, pd.concat([sweep("a", [0.9, 0.8])]), 0.1, {"b": 0.7})
    pa.Table.from_pandas(table)
    assert table["train size"].tolist() == [1437, 200, 1437]
    assert table["clean accuracy"].tolist()[:2] == [0.9, 0.7]  # the sweep's, else training's
    assert table["accuracy at σ"].iloc[0] == 0.8 and pd.isna(table["accuracy at σ"].iloc[1])
    assert table["open"].iloc[0] == "run?id=a"


def test_runs_table_lists_newest_first_with_the_reason_of_a_failure():
    """Check that failures sit in the table by age with a one-line reason."""
    runs = [make_run("old", "gradient", "failed", created_at=1.0, error="Traceback\nDataError: disk full"),
            make_run("new", "baseline", "done", created_at=2.0)]
    table = run_table.runs_table(runs)
    assert table["id"].tolist() == ["new", "old"]
    assert table["reason"].tolist() == ["", "DataError: disk full"]


def test_runs_table_filters_by_objective_status_and_text():
    from dataclasses import replace

    runs = [replace(make_run("a", "gradient"), tags=("paper",)), make_run("b", "baseline"),
            replace(make_run("c", "gradient", "failed"), note="diverged at lr 0.1")]
    table = run_table.runs_table(runs)
    assert sorted(run_table.filter_table(table, ["gradient loss"]).id) == ["a", "c"]
    assert run_table.filter_table(table, statuses=["failed"]).id.tolist() == ["c"]
    assert run_table.filter_table(table, text="PAPER").id.tolist() == ["a"]
    assert run_table.filter_table(table, text="diverged").id.tolist() == ["c"]
    assert len(run_table.filter_table(table)) == 3


def test_form_messages_name_the_field_in_words():
    """Check that a refused value is reported with the Train form's label, not the config class."""
    from gradloss.core.config import TrainConfig
    from gradloss.core.errors import InvalidParameterError

    for kwargs, message in (({"epochs": 0}, "Epochs must be a whole number from 1 to 500; got 0."),
                            ({"dataset": "digits", "train_size": 200, "batch_size": 300},
                             "Batch size must be a whole number from 1 to 200; got 300."),
                            ({"learning_rate": 0.0}, "Learning rate must be a number greater than 0; got 0.0."),
                            ({"seed": -1}, "Seed must be a whole number from 0 to 2147483647; got -1.")):
        try:
            TrainConfig(**kwargs)
        except InvalidParameterError as error:
            assert forms.form_message(error) == message
        else:
            raise AssertionError(f"{kwargs} was accepted")


def test_experiment_form_messages_use_the_experiment_forms_words():
    from gradloss.core.errors import InvalidParameterError
    from gradloss.core.experiment import ExperimentConfig

    for kwargs, message in (({"arms": ()}, "Objectives must be at least one objective; got none."),
                            ({"seeds": 1}, "Seeds must be a whole number from 2 to 20 (an interval "
                                           "needs at least 2 seeds); got 1.")):
        try:
            ExperimentConfig(dataset="digits", **kwargs)
        except InvalidParameterError as error:
            assert forms.form_message(error, forms.EXPERIMENT_LABELS) == message
        else:
            raise AssertionError(f"{kwargs} was accepted")


def test_log_loss_axes_label_only_powers_of_ten():
    """Check that a log axis puts labelled ticks at each decade only (no 2..9 minor labels)."""
    metrics = pd.DataFrame({"run_id": "g", "step": [1, 2, 3], "epoch": 1, "name": "loss",
                            "value": [1e-2, 3e-3, 1e-4]})
    fig = charts.loss_figure(metrics, {"g": make_run("g", "gradient")}, {"g": "g"})
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick == 1



def test_short_id_keeps_the_random_tail_of_a_run_id():
    assert labels.short_id("20260101-120000-3f2a1b") == "3f2a1b"
    assert labels.run_label(make_run("20260101-120000-3f2a1b", "gradient")).endswith("· 3f2a1b")


def test_swept_sigmas_are_those_common_to_all_runs():
    rob = pd.concat([sweep("g", [0.9, 0.8, 0.7]), sweep("b", [0.9, 0.8])])
    assert comparison.swept_sigmas(rob, ["g", "b"]) == [0.0, 0.1]
    assert comparison.swept_sigmas(rob, ["g", "missing"]) == []
    assert comparison.nearest([0.0, 0.1, 0.2], 0.12) == 0.1


def test_downsample_bounds_points_with_bucket_means():
    df = pd.DataFrame({"step": np.arange(1, 2501), "value": np.ones(2500)})
    small, k = charts.downsample(df, 1000)
    assert k == 3 and len(small) <= 1000 and small.value.eq(1.0).all()


def test_loss_figures_give_each_objective_a_panel_and_wide_ranges_a_log_axis():
    metrics = pd.DataFrame({"run_id": ["g", "g", "b", "b", "g", "b"], "step": [1, 2, 1, 2, 2, 2],
                            "epoch": 1, "name": ["loss", "loss", "loss", "loss", "epoch_loss", "epoch_loss"],
                            "value": [1e-2, 1e-4, 0.5, 0.4, 1e-4, 0.4]})
    runs = {"g": make_run("g", "gradient"), "b": make_run("b", "baseline"),
            "q": make_run("q", "baseline", "queued")}
    names = {"g": "g-label", "b": "b-label", "q": "queued"}
    fig = charts.loss_figure(metrics, runs, names)
    assert len(fig.data) == 2
    assert (fig.layout.yaxis.type, fig.layout.yaxis2.type) == ("log", "linear")
    assert fig.layout.yaxis2.rangemode == "tozero"  # a linear loss axis starts at 0
    assert fig.layout.yaxis.title.text == "loss (log scale)"
    assert fig.layout.legend.yref == "container" and fig.layout.legend.y == 0  # under the axis
    assert fig.layout.margin.b >= 70  # titles, never over them
    epochs = charts.epoch_figure(metrics, runs, names)
    assert len(epochs.data) == 2 and epochs.layout.yaxis.type == "log"


def test_step_curves_line_up_in_epochs_or_images_whatever_the_batch():
    """Check that batch 100 and batch 32 runs of one training set reach epoch 1 at the same x."""
    runs = {"g": make_run("g", "gradient", config={"batch_size": 100, "train_size": 200}),
            "b": make_run("b", "baseline", config={"batch_size": 50, "train_size": 200})}
    metrics = pd.DataFrame({"run_id": ["g", "g", "b", "b", "b", "b"], "step": [1, 2, 1, 2, 3, 4],
                            "epoch": 1, "name": "loss", "value": [0.1, 0.1, 1.0, 1.0, 1.0, 1.0]})
    fig = charts.loss_figure(metrics, runs, {"g": "g", "b": "b"})
    assert [max(t.x) for t in fig.data] == [1.0, 1.0]
    images = charts.loss_figure(metrics, runs, {"g": "g", "b": "b"}, x_axis="images")
    assert [max(t.x) for t in images.data] == [200, 200]
    assert images.layout.xaxis.title.text == "training images seen"
    smooth = charts.loss_figure(metrics.assign(value=[0.1, 0.3, 1, 3, 1, 3]), runs,
                                {"g": "g", "b": "b"}, window=2)
    assert list(smooth.data[0].y) == [0.1, 0.2]


def test_epoch_figure_tells_train_from_test_accuracy():
    metrics = pd.DataFrame({"run_id": "g", "step": [4, 4], "epoch": [1, 1],
                            "name": ["train_accuracy", "test_accuracy"], "value": [0.8, 0.7]})
    fig = charts.epoch_figure(metrics, {"g": make_run("g", "gradient")}, {"g": "g"})
    train, test = fig.data
    assert (train.line.dash, train.marker.symbol) == ("dash", "circle-open")
    assert (test.line.dash, test.marker.symbol) == ("solid", "circle")
    assert train.name == test.name == "g" and [train.showlegend, test.showlegend] == [True, False]
    assert "train" in train.hovertemplate and "test" in test.hovertemplate


def test_input_grad_figure_draws_one_line_per_run_with_a_log_axis_for_wide_ranges():
    metrics = pd.DataFrame({"run_id": ["g", "g", "b", "b"], "step": [5, 10, 5, 10], "epoch": [1, 2, 1, 2],
                            "name": "input_grad_norm", "value": [0.01, 0.005, 0.3, 0.5]})
    fig = charts.input_grad_figure(metrics, {"g": make_run("g", "gradient"),
                                             "b": make_run("b", "baseline")}, {"g": "g", "b": "b"})
    assert [list(t.y) for t in fig.data] == [[0.01, 0.005], [0.3, 0.5]]
    assert fig.layout.yaxis.type == "log"


def test_loss_figure_leaves_out_objectives_without_points():
    metrics = pd.DataFrame({"run_id": ["g"], "step": [1], "epoch": 1, "name": ["loss"], "value": [1e-3]})
    fig = charts.loss_figure(metrics, {"g": make_run("g", "gradient"), "b": make_run("b", "baseline")},
                             {"g": "g", "b": "b"})
    assert [a.text for a in fig.layout.annotations] == ["gradient loss"]
    assert fig.data[0].mode == "markers"  # one point: drawn, on an axis from 0


def test_comparison_figure_draws_each_run_in_its_objective_colour_and_marks_sigma():
    rob = pd.concat([sweep("g", [0.9, 0.85], [0.0, 0.01]), sweep("b", [0.91, 0.8]),
                     sweep("m", [0.88, 0.7])])
    runs = {"g": make_run("g", "gradient"), "b": make_run("b", "baseline"), "m": make_run("m", "mse")}
    names = {"g": "g-label", "b": "b-label", "m": "m-label"}
    fig = charts.comparison_figure(rob, runs, names, 0.1)
    [markers] = [t for t in fig.data if t.marker.symbol == "diamond"]  # one trace, a point per run
    assert list(markers.y) == [0.85, 0.8, 0.7] and list(markers.x) == [0.1] * 3
    assert list(markers.marker.color) == ["#1f77b4", "#ff7f0e", "#9467bd"]
    assert fig.layout.shapes[0].x0 == 0.1
    lines = {t.name: t.line.color for t in fig.data if t.name}
    assert lines == {"g-label": "#1f77b4", "b-label": "#ff7f0e", "m-label": "#9467bd"}
    assert summary.accuracy_at(rob, "g", 0.1) == (0.85, 0.01)
    assert "objective" in charts.robustness_csv(rob, runs, names).splitlines()[0]


def test_example_captions_mark_right_and_wrong():
    ex = pd.DataFrame({"sigma": [0.1, 0.1], "index": [3, 7], "label": [1, 2], "prediction": [1, 0],
                       "confidence": [0.9, 0.6]})
    captions = images.example_captions({"gradient": ex}, 0.1, ["a", "b", "c"])
    assert captions[0] == (3, "**b**  \n:green[✓ gradient: b] (90%)")
    assert ":red[✗ gradient: a]" in captions[1][1]
    assert images.upscale(np.full((2, 2, 1), 2.0), 3).shape == (6, 6)
