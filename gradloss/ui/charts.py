"""The dashboard's charts of single runs, as plotly figures built from the store's frames.

Every chart draws a run in its objective's colour (runs of one objective get one dash each),
keeps its legend beside the plot, never over an axis title, and reads the same way whatever
the runs' batch sizes: step curves are drawn against epochs or images seen, not steps.
`runs` is {run_id: StoredRun}; `labels` {run_id: label} (labels.run_labels). No Streamlit.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gradloss import objectives
from gradloss.core.config import OBJECTIVES

DASHES = ("solid", "dash", "dot", "dashdot", "longdash")  # runs of one objective: one dash each
X_AXES = {"epochs": "epochs trained", "images": "training images seen"}
LEGEND = {"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top",
          "font": {"size": 11}}  # beside the plot: never over an axis title


def run_styles(runs: dict) -> dict:
    """{run_id: (colour, dash)}: the objective's colour; a dash per run among its objective's."""
    seen: dict = {}
    styles = {}
    for run_id, run in runs.items():
        k = seen[run.objective] = seen.get(run.objective, -1) + 1
        styles[run_id] = (objectives.color(run.objective), DASHES[k % len(DASHES)])
    return styles


def smoothed(values: pd.Series, window: int) -> pd.Series:
    """Trailing moving average over `window` points (1: unchanged); the first points average fewer."""
    return values.rolling(window, min_periods=1).mean() if window > 1 else values


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
    """A log axis (a tick per decade) when the values span a factor of 10, else a linear one
    from 0, so one point or a flat curve sits on a readable scale rather than −0.5 to 1."""
    log = wide_range(values)
    fig.update_yaxes(type="log" if log else "linear", title_text="loss (log scale)" if log else "loss",
                     exponentformat="power", dtick=1 if log else None,
                     rangemode="normal" if log else "tozero", **where)


def step_x(run, steps: pd.Series, x_axis: str) -> pd.Series:
    """Global steps as epochs trained (step / steps per epoch) or training images seen."""
    config = run.config
    if config is None:
        return steps
    if x_axis == "images":
        return steps * config.batch_size
    return steps / max(config.steps_per_epoch, 1)


def _layout(fig: go.Figure, height: int) -> None:
    fig.update_layout(height=height, margin={"t": 40, "b": 50, "r": 10}, legend=LEGEND)


def _legend_below(fig: go.Figure, height: int, entries: int) -> None:
    """A wide figure's legend under it, below the axis titles (never over them): anchored to
    the bottom of the whole figure, with a margin that holds its rows and the axis title."""
    rows = math.ceil(entries / 2)
    fig.update_layout(height=height + 22 * rows, margin={"t": 40, "b": 70 + 22 * rows, "r": 10},
                      legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom",
                              "x": 0, "xanchor": "left", "font": {"size": 11}})


def _title(text: str) -> str:
    """A panel title that fits a narrow panel: 'baseline<br>(cross-entropy)'."""
    return text.replace(" (", "<br>(")


def loss_figure(metrics: pd.DataFrame, runs: dict, labels: dict, x_axis: str = "epochs",
                window: int = 1) -> go.Figure:
    """Per-step training loss, one panel per objective (the losses differ up to ~1000x), each
    on a log axis once its values span more than a factor of 10; against epochs or images
    seen; each run's loss smoothed by a trailing moving average over `window` steps."""
    loss = metrics[(metrics.name == "loss") & metrics.run_id.isin(list(runs))]
    has_data = {runs[r].objective for r in loss.run_id.unique()}
    panels = [o for o in OBJECTIVES if o in has_data] + sorted(has_data - set(OBJECTIVES))
    cols = min(max(len(panels), 1), 3)  # at most 3 panels a row: each stays readable
    grid = math.ceil(max(len(panels), 1) / cols)
    fig = make_subplots(rows=grid, cols=cols, horizontal_spacing=0.08, vertical_spacing=0.22,
                        subplot_titles=[_title(objectives.label(o)) for o in panels])
    styles = run_styles(runs)
    for run_id, run in runs.items():
        rows = loss[loss.run_id == run_id].sort_values("step")
        if rows.empty:
            continue
        rows = rows.assign(value=smoothed(rows.value.reset_index(drop=True), window).values)
        rows, k = downsample(rows)
        name = labels[run_id] if k == 1 else f"{labels[run_id]}, mean of {k} steps"
        color, dash = styles[run_id]
        k = panels.index(run.objective)
        fig.add_trace(go.Scatter(x=step_x(run, rows.step, x_axis), y=rows.value,
                                 mode="lines" if len(rows) > 1 else "markers", name=name,
                                 line={"color": color, "dash": dash}, marker={"color": color}),
                      row=k // cols + 1, col=k % cols + 1)
    for k, objective in enumerate(panels):
        ids = [r for r, run in runs.items() if run.objective == objective]
        _loss_axis(fig, loss[loss.run_id.isin(ids)].value, row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(title_text=X_AXES[x_axis], rangemode="tozero")
    _legend_below(fig, 340 * grid, len(fig.data))
    return fig


def epoch_figure(metrics: pd.DataFrame, runs: dict, labels: dict) -> go.Figure:
    """Per-epoch loss beside accuracy per epoch: test solid with filled dots, train dashed with
    open dots, in the run's colour."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=[
        "loss per epoch", "accuracy per epoch: test ●, train ○ dashed"])
    styles = run_styles(runs)
    for run_id in runs:
        color = styles[run_id][0]
        run = metrics[metrics.run_id == run_id]
        first = True  # one legend entry per run; the panel's title tells train from test
        for name, col, dash, symbol, text in (
                ("epoch_loss", 1, "solid", "circle", "loss"),
                ("train_accuracy", 2, "dash", "circle-open", "train accuracy"),
                ("test_accuracy", 2, "solid", "circle", "test accuracy")):
            rows = run[run.name == name].sort_values("epoch")
            if not rows.empty:
                fig.add_trace(go.Scatter(x=rows.epoch, y=rows.value, mode="lines+markers",
                                         name=labels[run_id], legendgroup=run_id,
                                         showlegend=first, hovertemplate=f"{text}: %{{y:.4g}}",
                                         marker={"symbol": symbol, "size": 8, "color": color},
                                         line={"color": color, "dash": dash}), row=1, col=col)
                first = False
    fig.update_xaxes(title_text="epoch", dtick=1)
    epoch_loss = metrics[(metrics.name == "epoch_loss") & metrics.run_id.isin(list(runs))].value
    _loss_axis(fig, epoch_loss, row=1, col=1)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], row=1, col=2)  # accuracies compare
    _legend_below(fig, 340, len(runs))
    return fig


def input_grad_figure(metrics: pd.DataFrame, runs: dict, labels: dict) -> go.Figure:
    """Mean ||dCE/dx||_2 over the first 500 test images, per epoch: one line per run, log axis
    once the values span a factor of 10 (the loss sensitivity the gradient loss drives down)."""
    fig = go.Figure()
    rows_all = metrics[(metrics.name == "input_grad_norm") & metrics.run_id.isin(list(runs))]
    styles = run_styles(runs)
    for run_id in runs:
        rows = rows_all[rows_all.run_id == run_id].sort_values("epoch")
        if rows.empty:
            continue
        color, dash = styles[run_id]
        fig.add_trace(go.Scatter(x=rows.epoch, y=rows.value, mode="lines+markers",
                                 name=labels[run_id], line={"color": color, "dash": dash}))
    log = wide_range(rows_all.value)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(type="log" if log else "linear", exponentformat="power",
                     rangemode="normal" if log else "tozero",
                     title_text="mean ‖∂CE/∂x‖₂" + (" (log scale)" if log else ""))
    _layout(fig, 340)
    return fig


def sweep_figure(robustness: pd.DataFrame, runs: dict, labels: dict) -> go.Figure:
    """Accuracy versus sigma of any runs: one line each in its objective's colour, with a ± one
    std band over noise draws (what does not change with the chosen σ: worth caching)."""
    traces = []  # built as plain dicts and validated once by go.Figure: a slider move redraws it
    styles = run_styles(runs)
    for run_id, rows in robustness[robustness.run_id.isin(list(runs))].groupby("run_id", sort=False):
        rows = rows.sort_values("sigma")
        color, dash = styles[run_id]
        sigmas, upper, lower = (list(v) for v in (rows.sigma, rows.accuracy + rows.accuracy_std,
                                                  rows.accuracy - rows.accuracy_std))
        traces.append((list(runs).index(run_id), [
            {"type": "scatter", "x": sigmas + sigmas[::-1], "y": upper + lower[::-1],
             "fill": "toself", "fillcolor": color, "opacity": 0.2, "line": {"width": 0},
             "hoverinfo": "skip", "showlegend": False, "legendgroup": run_id},
            {"type": "scatter", "x": sigmas, "y": list(rows.accuracy), "mode": "lines+markers",
             "name": labels[run_id], "legendgroup": run_id, "line": {"color": color, "dash": dash},
             "customdata": list(rows.accuracy_std),
             "hovertemplate": "σ=%{x}<br>accuracy %{y:.4f} ± %{customdata:.4f}"}]))
    fig = go.Figure(data=[t for _, pair in sorted(traces, key=lambda p: p[0]) for t in pair])
    fig.update_layout(xaxis_title="noise σ (Gaussian, on pixels in [0, 1])",
                      yaxis_title="test accuracy (mean ± 1 std over draws)")
    _layout(fig, 420)
    return fig


def mark_sigma(fig: go.Figure, robustness: pd.DataFrame, runs: dict, sigma: float) -> go.Figure:
    """`fig` with a diamond on each run's curve at `sigma` (one trace) and a dotted line there."""
    at = robustness[robustness.run_id.isin(list(runs)) & np.isclose(robustness.sigma, sigma)]
    at = at.set_index("run_id").reindex([r for r in runs if r in set(at.run_id)])
    styles = run_styles(runs)
    fig.add_trace(go.Scatter(x=[sigma] * len(at), y=at.accuracy, mode="markers",
                             showlegend=False, hoverinfo="skip",
                             marker={"size": 14, "symbol": "diamond",
                                     "color": [styles[r][0] for r in at.index],
                                     "line": {"width": 1, "color": "black"}}))
    fig.update_layout(shapes=[{"type": "line", "xref": "x", "yref": "paper", "x0": sigma,
                               "x1": sigma, "y0": 0, "y1": 1,
                               "line": {"dash": "dot", "color": "grey"}}],
                      annotations=[{"x": sigma, "y": 1, "xref": "x", "yref": "paper",
                                    "text": f"σ = {sigma:g}", "showarrow": False,
                                    "yanchor": "bottom"}])
    return fig


def comparison_figure(robustness: pd.DataFrame, runs: dict, labels: dict,
                      sigma: float | None = None) -> go.Figure:
    """sweep_figure, marked at `sigma` when given (mark_sigma)."""
    fig = sweep_figure(robustness, runs, labels)
    return fig if sigma is None else mark_sigma(fig, robustness, runs, sigma)


def robustness_csv(robustness: pd.DataFrame, runs: dict, labels: dict) -> str:
    """The sweep rows of the given runs, with their objective and label, as CSV text."""
    table = robustness[robustness.run_id.isin(list(runs))].copy()
    table.insert(1, "objective", table.run_id.map(lambda r: runs[r].objective))
    table.insert(2, "label", table.run_id.map(labels))
    return table.sort_values(["objective", "sigma"]).to_csv(index=False)
