"""What the dashboard shows, as pure functions: store rows and DataFrames in, tables and plotly figures out.

The Streamlit pages read widgets, call these and draw; keeping the logic here makes it unit-testable
without a browser. Nothing here imports Streamlit, TensorFlow or Keras, or touches the store.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gradloss import objectives
from gradloss.core.config import OBJECTIVES
from gradloss.core.records import ACTIVE, FINISHED, WorkerSettings, WorkerState  # noqa: F401

DASHES = ("solid", "dash", "dot", "dashdot", "longdash")  # runs of one objective: one dash each


def short_id(run_id: str) -> str:
    """The random tail of a store run id ("20260101-120000-3f2a1b" -> "3f2a1b")."""
    return str(run_id).rsplit("-", 1)[-1][:8]


def run_label(run) -> str:
    """One line naming a run in pickers and legends:
    objective · dataset · architecture · created · id (status)."""
    created = time.strftime("%b %d %H:%M", time.localtime(run.created_at))
    return (f"{objectives.label(run.objective)} · {run.dataset} · {architecture(run)} · "
            f"{created} · {short_id(run.run_id)} ({run.status})")


def architecture(run) -> str:
    """The run's architecture for people: a built-in's name or a .keras file's name@hash."""
    config = getattr(run, "config", None)
    return config.architecture_label if config is not None else "?"


def mixed_datasets_note(runs) -> str | None:
    """A warning when the runs were trained on different datasets (each a name and, for a
    file, its content hash), whose accuracies do not compare; None when they share one."""
    datasets = sorted({r.dataset for r in runs})
    if len(datasets) < 2:
        return None
    return (f"These runs were trained on {len(datasets)} different datasets "
            f"({', '.join(datasets)}): their accuracies do not compare. Pick runs of one dataset.")


def format_duration(seconds) -> str:
    """45 s, 3 min 05 s, 1 h 02 min; an en dash when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(max(seconds, 0)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def error_line(text) -> str:
    """The line of an error worth showing: its last non-empty one (a traceback ends with the
    message), or ''."""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def progress_bar(run) -> tuple[float, str]:
    """(fill in [0, 1], text) of a run's progress bar, from one reading so the two agree.

    Training: the fraction of steps, 'step 30/90 · epoch 1/2 · ETA 12 s · loss 0.01'. Once
    trained: the robustness sweep's fraction, 'trained 2 epochs · measuring accuracy under
    noise · 25%'. Queued or not started: 0 and what it waits for."""
    p = run.progress
    if run.status == "queued" or p.step == 0 and not p.trained:
        return 0.0, "waiting for the worker" if run.status == "queued" else "starting…"
    if p.trained:
        epochs = f"{p.epochs} epoch{'s' * (p.epochs != 1)}" if p.epochs else "? epochs"
        doing = f"evaluating: {p.phase}" if p.phase else "measuring accuracy under noise"
        text = f"trained {epochs} · {doing}"
        if not p.sweep_total:
            return 1.0, text + "…"
        fraction = _clip(p.sweep_done / p.sweep_total)
        return fraction, f"{text} · {fraction:.0%}"
    parts = [f"step {p.step}/{p.total_steps or '?'}", f"epoch {p.epoch}/{p.epochs or '?'}"]
    if p.eta_s is not None:
        parts.append(f"ETA {format_duration(p.eta_s)}")
    if p.loss is not None:
        parts.append(f"loss {p.loss:.4g}")
    return _clip(p.fraction), " · ".join(parts)


def progress_text(run) -> str:
    """The text of progress_bar(run)."""
    return progress_bar(run)[1]


def progress_fraction(run) -> float:
    """The fill of progress_bar(run): training's fraction of steps, then the sweep's."""
    return progress_bar(run)[0]


def _clip(fraction: float) -> float:
    return float(min(max(fraction, 0.0), 1.0))


SETTING_NAMES = {"data_dir": "GRADLOSS_DATA_DIR", "code": "code", "engines": "engines"}


def settings_differences(worker: WorkerSettings, mine: WorkerSettings) -> list[str]:
    """'GRADLOSS_DATA_DIR: worker not set, dashboard /data' for each setting that decides how
    runs train and differs between a worker's heartbeat record and this process."""
    def shown(value):
        if value in (None, "", (), []):
            return "not set"
        return ", ".join(value) if isinstance(value, (list, tuple)) else str(value)

    return [f"{name}: worker {shown(getattr(worker, key))}, dashboard {shown(getattr(mine, key))}"
            for key, name in SETTING_NAMES.items() if getattr(worker, key) != getattr(mine, key)]


def latest_per_objective(runs, statuses=("done",)) -> dict:
    """{objective: run}: the newest run in `statuses`, and the newest run of each other objective
    on the same dataset, in registry order. `runs` is newest first (as RunStore.list_runs gives)."""
    runs = [r for r in runs if r.status in statuses]
    if not runs:
        return {}
    latest = {}
    for run in runs:
        if run.objective not in latest and run.dataset == runs[0].dataset:
            latest[run.objective] = run
    return {o: latest[o] for o in OBJECTIVES if o in latest}


def default_reference(runs) -> str | None:
    """The run differences are taken against by default: the newest cross-entropy baseline among
    `runs` (newest first), else the first of them."""
    runs = list(runs)
    baselines = [r for r in runs if r.objective == "baseline"]
    return (baselines or runs)[0].run_id if runs else None


def run_styles(labels: dict) -> dict:
    """{run_id: (colour, dash)}: the objective's colour; a dash per run among its objective's."""
    seen: dict = {}
    styles = {}
    for run_id, (_, objective) in labels.items():
        k = seen[objective] = seen.get(objective, -1) + 1
        styles[run_id] = (objectives.color(objective), DASHES[k % len(DASHES)])
    return styles


def runs_table(runs) -> pd.DataFrame:
    """Runs, newest first, one row each, for st.dataframe; `reason` is a failure's (or an
    unreadable row's) one-line cause. Every column has one type ("train size" is empty for
    the whole training set), so the table converts to Arrow."""
    runs = sorted(runs, key=lambda r: (r.created_at, r.run_id), reverse=True)
    rows = [{"run": short_id(r.run_id), "objective": objectives.label(r.objective), "dataset": r.dataset,
             "architecture": architecture(r), "status": r.status, "epochs": _field(r, "epochs"), "batch": _field(r, "batch_size"),
             "train size": _field(r, "train_size"), "engine": r.engine, "device": r.device or "",
             "took": format_duration((r.finished_at or 0) - (r.started_at or 0)) if r.started_at else "–",
             "reason": f"unreadable: {r.unreadable}" if r.unreadable else error_line(r.error)}
            for r in runs]
    table = pd.DataFrame(rows, columns=["run", "objective", "dataset", "architecture", "status",
                                        "epochs", "batch", "train size", "engine", "device",
                                        "took", "reason"])
    return table.astype({"epochs": "Int64", "batch": "Int64", "train size": "Int64"})


FORM_LABELS = {"objective": "Objective", "dataset": "Dataset", "epochs": "Epochs",
               "batch_size": "Batch size", "learning_rate": "Learning rate",
               "train_size": "Training-set size", "seed": "Seed", "engine": "Engine",
               "deterministic": "Deterministic"}  # TrainConfig field -> the Train form's label


def form_message(error) -> str:
    """A refused TrainConfig value in the Train form's words: 'Epochs must be a whole number
    from 1 to 500; got 0.' Errors about no single field keep their own message."""
    label = FORM_LABELS.get(getattr(error, "parameter", None))
    if label is None:
        return str(error)
    return f"{label} must be {error.words}; got {error.value}."


def _field(run, name: str):
    """A field of the run's TrainConfig, or None when its config could not be read."""
    return None if run.config is None else getattr(run.config, name)


def workers_table(workers: list[WorkerState]) -> pd.DataFrame:
    """One row per worker (as consumer.worker_status lists them), live ones first."""
    rows = [{"host": w.record.host, "device": w.record.device or "-",
             "GPU": "-" if w.record.gpu is None else str(w.record.gpu),
             "state": "live" if w.alive else "lost",
             "training": short_id(w.record.run_id) if w.record.run_id else "idle",
             "heartbeat": w.age_s, "pid": w.record.pid}
            for w in sorted(workers, key=lambda w: (not w.alive, w.record.host, w.record.gpu or 0))]
    return pd.DataFrame(rows, columns=["host", "device", "GPU", "state", "training", "heartbeat", "pid"])


def final_metric(metrics: pd.DataFrame, run_id: str, name: str):
    """The value of metric `name` at the run's last step, or None."""
    rows = metrics[(metrics.run_id == run_id) & (metrics.name == name)]
    return None if rows.empty else float(rows.sort_values("step").value.iloc[-1])


def step_ms(metrics: pd.DataFrame, run_id: str):
    """Median per-epoch step time in ms (the median skips the first epoch's compile time)."""
    rows = metrics[(metrics.run_id == run_id) & (metrics.name == "step_ms")]
    return None if rows.empty else float(rows.value.median())


def accuracy_at(robustness: pd.DataFrame, run_id: str, sigma: float):
    """(accuracy, accuracy_std) of a run at sigma, or None if that sigma was not swept."""
    rows = robustness[(robustness.run_id == run_id) & np.isclose(robustness.sigma, sigma)]
    if rows.empty:
        return None
    return float(rows.accuracy.iloc[0]), float(rows.accuracy_std.iloc[0])


def swept_sigmas(robustness: pd.DataFrame, run_ids) -> list[float]:
    """The sigmas every one of the runs was swept at, ascending."""
    sets = [set(robustness[robustness.run_id == r].sigma.round(6)) for r in run_ids]
    return sorted(set.intersection(*sets)) if sets and all(sets) else []


def nearest(options, target: float) -> float:
    return min(options, key=lambda s: abs(s - target))


def comparison_table(runs: dict, metrics: pd.DataFrame, robustness: pd.DataFrame, sigma: float,
                     reference: str | None = None) -> pd.DataFrame:
    """One row per run ({run_id: run}): clean accuracy, accuracy at sigma and its difference in
    points from the reference run, final input-gradient norm, training cost per 1000 images (a step's time over its
    batch size, so runs with different batch sizes compare).

    Clean accuracy is the sweep's sigma = 0 if swept, else the last test accuracy of training."""
    noisy_col = f"accuracy at σ={sigma:g}"
    rows = []
    for run_id, run in runs.items():
        clean = accuracy_at(robustness, run_id, 0.0)
        noisy = accuracy_at(robustness, run_id, sigma)
        rows.append({
            "objective": objectives.label(run.objective), "run": short_id(run_id),
            "dataset": run.dataset, "architecture": architecture(run),
            "clean accuracy": clean[0] if clean else final_metric(metrics, run_id, "test_accuracy"),
            noisy_col: noisy[0] if noisy else None,
            "‖∂CE/∂x‖": final_metric(metrics, run_id, "input_grad_norm"),
            "ms / 1000 images": _ms_per_1000_images(metrics, run), "batch size": _field(run, "batch_size"),
        })
    table = pd.DataFrame(rows, columns=["objective", "run", "dataset", "architecture",
                                        "clean accuracy", noisy_col, "‖∂CE/∂x‖",
                                        "ms / 1000 images", "batch size"])
    ref = list(runs).index(reference) if reference in runs else None
    base = table[noisy_col].iloc[ref] if ref is not None else None
    table.insert(6, "points vs reference", [None if base is None or pd.isna(v) or pd.isna(base)
                                            else round((v - base) * 100, 2) for v in table[noisy_col]])
    return table


def comparison_formats(sigma: float) -> dict[str, str]:
    """Column -> printf-style format of comparison_table's number columns."""
    return {"clean accuracy": "%.4f", f"accuracy at σ={sigma:g}": "%.4f",
            "points vs reference": "%+.2f", "‖∂CE/∂x‖": "%.3g", "ms / 1000 images": "%.0f"}


def _ms_per_1000_images(metrics: pd.DataFrame, run):
    ms, batch = step_ms(metrics, run.run_id), _field(run, "batch_size")
    return None if ms is None or not batch else ms / batch * 1000


def comparison_summary(table: pd.DataFrame, sigma: float, reference_run: str | None) -> str:
    """Sentences from comparison_table: each run's gap at sigma to the reference, in points, and
    what training it costs per training image against the reference."""
    noisy = f"accuracy at σ={sigma:g}"
    records = table.to_dict("records")
    ref = next((r for r in records if r["run"] == reference_run), None)
    if ref is None or ref[noisy] is None or pd.isna(ref[noisy]):
        return ""
    parts = []
    for r in records:
        if r is ref or r[noisy] is None or pd.isna(r[noisy]):
            continue
        gap = (r[noisy] - ref[noisy]) * 100
        parts.append(f"{r['objective']} ({r['run']}) {abs(gap):.1f} points "
                     f"{'above' if gap >= 0 else 'below'}")
    if not parts:
        return ""
    cost = "ms / 1000 images"
    costs = [f"training {r['objective']} ({r['run']}) costs {r[cost] / ref[cost]:.1f}× the "
             "reference's time per training image" for r in records
             if r is not ref and r.get(cost) and ref.get(cost) and not pd.isna(r[cost]) and not pd.isna(ref[cost])]
    return (f"At σ = {sigma:g}, against {ref['objective']} ({ref['run']}): " + "; ".join(parts)
            + ". One seed each: differences between two seeds of one objective can reach several "
              "points at σ = 0.2." + (" " + "; ".join(costs).capitalize() + "." if costs else ""))


def downsample(df: pd.DataFrame, max_points: int = 1000) -> tuple[pd.DataFrame, int]:
    """Bucket means of consecutive rows so a line has at most max_points; returns (df, bucket size)."""
    k = max(1, math.ceil(len(df) / max_points))
    if k == 1:
        return df, 1
    buckets = np.arange(len(df)) // k
    return df.groupby(buckets).agg({"step": "last", "value": "mean"}), k


def wide_range(values) -> bool:
    """True if positive values span more than a factor of 10: worth a log axis."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    return len(values) > 1 and values.max() > 10 * values.min()


def _loss_axis(fig: go.Figure, values, **where) -> None:
    log = wide_range(values)
    fig.update_yaxes(type="log" if log else "linear", title_text="loss (log scale)" if log else "loss",
                     exponentformat="power", dtick=1 if log else None, **where)  # log: a tick per decade


def loss_figure(metrics: pd.DataFrame, labels: dict) -> go.Figure:
    """Per-step training loss, one panel per objective (the losses differ up to ~1000x), each on a
    log axis once its values span more than a factor of 10. labels: {run_id: (label, objective)}."""
    loss = metrics[(metrics.name == "loss") & metrics.run_id.isin(list(labels))]
    has_data = {labels[r][1] for r in loss.run_id.unique()}
    panels = [o for o in OBJECTIVES if o in has_data]
    fig = make_subplots(rows=1, cols=max(len(panels), 1), horizontal_spacing=0.05,
                        subplot_titles=[objectives.label(o) for o in panels])
    styles = run_styles(labels)
    for run_id, (label, objective) in labels.items():
        rows = loss[loss.run_id == run_id].sort_values("step")
        if rows.empty:
            continue
        rows, k = downsample(rows)
        name = label if k == 1 else f"{label}, mean of {k} steps"
        color, dash = styles[run_id]
        fig.add_trace(go.Scatter(x=rows.step, y=rows.value, mode="lines", name=name,
                                 line={"color": color, "dash": dash}),
                      row=1, col=panels.index(objective) + 1)
    for col, objective in enumerate(panels, start=1):
        ids = [r for r, v in labels.items() if v[1] == objective]
        _loss_axis(fig, loss[loss.run_id.isin(ids)].value, row=1, col=col)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=380, margin={"t": 40, "b": 10}, legend={"orientation": "h", "y": -0.25})
    return fig


def epoch_figure(metrics: pd.DataFrame, labels: dict) -> go.Figure:
    """Per-epoch loss beside train (dashed) and test (solid) accuracy per epoch."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["loss per epoch", "accuracy per epoch"])
    styles = run_styles(labels)
    for run_id, (label, _) in labels.items():
        color = styles[run_id][0]
        run = metrics[metrics.run_id == run_id]
        for name, col, dash, text in (("epoch_loss", 1, "solid", "loss"),
                                      ("train_accuracy", 2, "dash", "train"),
                                      ("test_accuracy", 2, "solid", "test")):
            rows = run[run.name == name].sort_values("epoch")
            if not rows.empty:
                fig.add_trace(go.Scatter(x=rows.epoch, y=rows.value, mode="lines+markers",
                                         name=f"{label} {text}", legendgroup=run_id,
                                         line={"color": color, "dash": dash}), row=1, col=col)
    fig.update_xaxes(title_text="epoch", dtick=1)
    epoch_loss = metrics[(metrics.name == "epoch_loss") & metrics.run_id.isin(list(labels))].value
    _loss_axis(fig, epoch_loss, row=1, col=1)
    fig.update_yaxes(title_text="accuracy", row=1, col=2)
    fig.update_layout(height=380, margin={"t": 40, "b": 10}, legend={"orientation": "h", "y": -0.25})
    return fig


def input_grad_figure(metrics: pd.DataFrame, labels: dict) -> go.Figure:
    """Mean ||dCE/dx||_2 over the first 500 test images, per epoch: one line per run, log axis
    once the values span a factor of 10 (the loss sensitivity the gradient loss drives down)."""
    fig = go.Figure()
    rows_all = metrics[(metrics.name == "input_grad_norm") & metrics.run_id.isin(list(labels))]
    for run_id, (label, _) in labels.items():
        rows = rows_all[rows_all.run_id == run_id].sort_values("epoch")
        if rows.empty:
            continue
        color, dash = run_styles(labels)[run_id]
        fig.add_trace(go.Scatter(x=rows.epoch, y=rows.value, mode="lines+markers", name=label,
                                 line={"color": color, "dash": dash}))
    log = wide_range(rows_all.value)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(type="log" if log else "linear", exponentformat="power",
                     title_text="mean ‖∂CE/∂x‖₂" + (" (log scale)" if log else ""))
    fig.update_layout(height=340, margin={"t": 30, "b": 10}, legend={"orientation": "h", "y": -0.3})
    return fig


def comparison_figure(robustness: pd.DataFrame, labels: dict, sigma: float | None = None) -> go.Figure:
    """Accuracy versus sigma of any runs ({run_id: (label, objective)}): one line each in its
    objective's colour, with a ± one std band over noise draws; a dotted line and markers at the
    chosen sigma."""
    fig = go.Figure()
    styles = run_styles(labels)
    for run_id, (label, _) in labels.items():
        rows = robustness[robustness.run_id == run_id].sort_values("sigma")
        if rows.empty:
            continue
        color, dash = styles[run_id]
        upper, lower = rows.accuracy + rows.accuracy_std, rows.accuracy - rows.accuracy_std
        fig.add_trace(go.Scatter(x=list(rows.sigma) + list(rows.sigma[::-1]),
                                 y=list(upper) + list(lower[::-1]), fill="toself", fillcolor=color,
                                 opacity=0.2, line={"width": 0}, hoverinfo="skip",
                                 showlegend=False, legendgroup=run_id))
        fig.add_trace(go.Scatter(x=rows.sigma, y=rows.accuracy, mode="lines+markers", name=label,
                                 legendgroup=run_id, line={"color": color, "dash": dash},
                                 customdata=rows.accuracy_std,
                                 hovertemplate="σ=%{x}<br>accuracy %{y:.4f} ± %{customdata:.4f}"))
        at = accuracy_at(robustness, run_id, sigma) if sigma is not None else None
        if at:
            fig.add_trace(go.Scatter(x=[sigma], y=[at[0]], mode="markers", showlegend=False,
                                     marker={"size": 14, "color": color, "symbol": "diamond",
                                             "line": {"width": 1, "color": "black"}}, hoverinfo="skip"))
    if sigma is not None:
        fig.add_vline(x=sigma, line_dash="dot", line_color="grey", annotation_text=f"σ = {sigma:g}")
    fig.update_layout(xaxis_title="noise σ (Gaussian, on pixels in [0, 1])",
                      yaxis_title="test accuracy (mean ± 1 std over draws)", height=420,
                      margin={"t": 30, "b": 10}, legend={"orientation": "h", "y": -0.2})
    return fig


def robustness_csv(robustness: pd.DataFrame, labels: dict) -> str:
    """The sweep rows of the given runs, with their objective, as CSV text."""
    table = robustness[robustness.run_id.isin(list(labels))].copy()
    table.insert(1, "objective", table.run_id.map(lambda r: labels[r][1]))
    return table.sort_values(["objective", "sigma"]).to_csv(index=False)


def upscale(image: np.ndarray, factor: int = 4) -> np.ndarray:
    """(H, W[, 1]) in any range -> (H*f, W*f) clipped to [0, 1], pixels kept sharp."""
    image = np.clip(np.asarray(image, dtype=np.float32).squeeze(), 0.0, 1.0)
    return np.kron(image, np.ones((factor, factor), dtype=np.float32))


def example_captions(examples: dict, sigma: float, class_names) -> list[tuple[int, str]]:
    """[(test index, markdown caption)] at sigma: the label and each model's prediction,
    green ✓ if right, red ✗ if wrong. examples: {model name: store.examples() DataFrame}."""
    per_index: dict[int, list[str]] = {}
    labels: dict[int, int] = {}
    for objective, df in examples.items():
        rows = df[np.isclose(df.sigma, sigma)].sort_values("index")
        for row in rows.to_dict("records"):
            index, label, pred = int(row["index"]), int(row["label"]), int(row["prediction"])
            labels[index] = label
            ok = pred == label
            mark = f":green[✓ {objective}: {class_names[pred]}]" if ok else \
                f":red[✗ {objective}: {class_names[pred]}]"
            per_index.setdefault(index, []).append(f"{mark} ({row['confidence']:.0%})")
    return [(i, "  \n".join([f"**{class_names[labels[i]]}**"] + per_index[i])) for i in per_index]
