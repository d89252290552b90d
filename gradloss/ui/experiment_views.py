"""What the pages show of an experiment: labels, progress, mean curves with interval bands,
the table at one σ (or severity, or ε), every perturbation's headline with its interval, and
loss curves averaged over seeds. Plotly and pandas only (no Streamlit).
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import scipy.stats
from plotly.subplots import make_subplots

from gradloss import objectives
from gradloss.ui.charts import LEGEND, smoothed, wide_range
from gradloss.ui.labels import format_duration, short_id
from gradloss.analysis import protocols
from gradloss.core.config import source_label
from gradloss.analysis.experiments import ExperimentProgress, experiment_progress
from gradloss.analysis.report import at_level_table, overview_table

BETTER, WORSE = "#1a7f37", "#cf222e"  # a difference whose interval excludes 0; others stay plain


def experiment_label(experiment) -> str:
    """'2 arms × 3 seeds · digits · Nov 27 07:00 · 3f2a1b (running)' for pickers."""
    spec = experiment.spec
    created = time.strftime("%b %d %H:%M", time.localtime(experiment.created_at))
    what = ("unreadable spec" if spec is None else
            f"{' vs '.join(map(arm_display, spec.arm_names))} × {len(spec.seeds)} seeds · "
            f"{source_label(spec.dataset, spec.dataset_hash)} · "
            f"{source_label(spec.architecture, spec.architecture_hash)}")
    return (f"{what} · {created} · {short_id(experiment.experiment_id)} "
            f"({experiment.status})")


def progress_line(runs) -> tuple[ExperimentProgress, str]:
    """The experiment's progress and '7 of 10 runs done · ETA 3 min 10 s' (ETA while active)."""
    progress = experiment_progress(runs)
    text = progress.text()
    if progress.finished < progress.total:
        text += (f" · ETA {format_duration(progress.eta_s)}" if progress.eta_s is not None
                 else " · ETA once a run of each arm has finished")
    return progress, text


def arm_display(arm: str) -> str:
    """An arm's name for tables and legends: its objective's label when named after one
    ('noise augmentation', not 'noise_augmented'), else the name it was given."""
    return objectives.label(arm) if arm in objectives.NAMES else arm


def arm_labels(arms) -> dict:
    """Arm name -> the words a sentence uses ('the gradient loss'); unknown arms keep their name."""
    return {a: "the " + objectives.label(a).split(" (")[0] if a in objectives.NAMES else a
            for a in arms}


OTHER_COLORS = ("#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")  # arms not named after an objective


def _color(arm: str, k: int) -> str:
    """The objective's colour for an arm named after it (as on the single-run pages), else another."""
    return objectives.color(arm) if arm in objectives.NAMES else OTHER_COLORS[k % len(OTHER_COLORS)]


def _band(fig, x, low, high, color, group) -> None:
    fig.add_trace(go.Scatter(x=list(x) + list(x)[::-1], y=list(high) + list(low)[::-1],
                             fill="toself", fillcolor=color, opacity=0.2, line={"width": 0},
                             hoverinfo="skip", showlegend=False, legendgroup=group))


NOISE_AXIS = "noise σ (Gaussian, on pixels in [0, 1])"


def seeds_words(n: int) -> str:
    """'mean of 3 seeds', or '1 seed' (a mean of one is no mean)."""
    return "1 seed" if n == 1 else f"mean of {n} seeds"


def curve_figure(per_seed: pd.DataFrame, summary: pd.DataFrame, sigma: float | None = None,
                 show_seeds: bool = False, level_col: str = "sigma", level_name: str = "σ",
                 x_title: str = NOISE_AXIS) -> go.Figure:
    """Mean accuracy versus σ (or another perturbation's `level_col`, named `level_name` and
    the x axis `x_title`) per arm with its 95 % interval band; each seed's curve on demand;
    a dotted line at level `sigma`."""
    fig = go.Figure()
    curves = summary[summary.level != "auc"].copy()
    curves["level"] = curves.level.astype(float)
    for k, arm in enumerate(dict.fromkeys(per_seed.arm)):  # the experiment's order: stable colours
        rows, color = curves[curves.arm == arm].sort_values("level"), _color(arm, k)
        _band(fig, rows.level, rows.low, rows.high, color, arm)
        fig.add_trace(go.Scatter(x=rows.level, y=rows["mean"], mode="lines+markers",
                                 name=f"{arm_display(arm)} ({seeds_words(int(rows.n.iloc[0]))})",
                                 legendgroup=arm,
                                 line={"color": color}, customdata=rows[["low", "high"]],
                                 hovertemplate=level_name + "=%{x}<br>mean %{y:.4f}"
                                               "<br>95 % CI %{customdata[0]:.4f} to %{customdata[1]:.4f}"))
        if show_seeds:
            for seed, own in per_seed[per_seed.arm == arm].groupby("seed"):
                fig.add_trace(go.Scatter(x=own[level_col], y=own.accuracy, mode="lines",
                                         line={"color": color, "width": 1, "dash": "dot"},
                                         name=f"{arm_display(arm)} seed {seed}", legendgroup=arm,
                                         showlegend=False, opacity=0.6))
    if sigma is not None:
        fig.add_vline(x=sigma, line_dash="dot", line_color="grey",
                      annotation_text=f"{level_name} = {sigma:g}")
    fig.update_layout(xaxis_title=x_title,
                      yaxis_title="test accuracy (mean over seeds, 95 % CI band)", height=420,
                      margin={"t": 30, "b": 50, "r": 10}, legend=LEGEND)
    return fig


def styled_at_level(summary: pd.DataFrame, level):
    """at_level_table with the difference coloured only where its interval excludes 0, arms
    by their labels."""
    return _coloured(*_displayed(*at_level_table(summary, level)))


def styled_overview(summary: pd.DataFrame):
    """overview_table, coloured like styled_at_level."""
    return _coloured(*_displayed(*overview_table(summary)))


def _displayed(table: pd.DataFrame, sign: pd.Series):
    if "arm" in table:
        table = table.assign(arm=table.arm.map(arm_display))
    return table, sign


def _coloured(table: pd.DataFrame, sign: pd.Series):
    def colour(column):
        if column.name != "difference, points [95 % CI]":
            return [""] * len(column)
        return [f"color: {BETTER}; font-weight: bold" if s > 0 else
                f"color: {WORSE}; font-weight: bold" if s < 0 else "" for s in sign]

    return table.style.apply(colour)


def loss_band_figure(metrics: pd.DataFrame, runs, window: int = 1, name: str = "loss",
                     x_axis: str = "epochs") -> go.Figure:
    """Per arm, in a panel of its own (the losses differ up to ~1000x, and one log axis would
    flatten one arm under the other): the mean over seeds of each step's (smoothed) `name`,
    with a 95 % interval band, against epochs or images seen (batch 32 and 100 line up).

    Steps that only some seeds have reached are drawn from those seeds (the band says how many)."""
    arm_of = {r.run_id: r.arm for r in runs}
    config_of = {r.arm: r.config for r in runs if r.config is not None}
    rows = metrics[(metrics.name == name) & metrics.run_id.isin(list(arm_of))].copy()
    rows["value"] = rows.groupby("run_id", group_keys=False).value.apply(
        lambda v: smoothed(v, window))
    rows["arm"] = rows.run_id.map(arm_of)
    arms = [a for a in dict.fromkeys(r.arm for r in runs) if (rows.arm == a).any()]
    fig = make_subplots(rows=1, cols=max(len(arms), 1), horizontal_spacing=0.08,
                        subplot_titles=[arm_display(a) for a in arms])
    for k, arm in enumerate(arms):
        by_step = rows[rows.arm == arm].groupby("step").value.agg(["mean", "std", "count"])
        half = (scipy.stats.t.ppf(0.975, np.maximum(by_step["count"] - 1, 1))
                * by_step["std"].fillna(0) / np.sqrt(by_step["count"]))
        color, config = _color(arm, k), config_of.get(arm)
        x = by_step.index.to_series()
        if config is not None:
            x = x * config.batch_size if x_axis == "images" else x / max(config.steps_per_epoch, 1)
        panel = {"row": 1, "col": k + 1}
        fig.add_trace(go.Scatter(x=list(x) + list(x)[::-1],
                                 y=list(by_step["mean"] + half) + list(by_step["mean"] - half)[::-1],
                                 fill="toself", fillcolor=color, opacity=0.2, line={"width": 0},
                                 hoverinfo="skip", showlegend=False, legendgroup=arm), **panel)
        fig.add_trace(go.Scatter(x=x, y=by_step["mean"], mode="lines", legendgroup=arm,
                                 name=f"{arm_display(arm)} ({seeds_words(int(by_step['count'].max()))})",
                                 line={"color": color}), **panel)
        positive = rows.value[(rows.arm == arm) & (rows.value > 0)]
        log = bool(len(positive)) and wide_range(positive)
        fig.update_yaxes(type="log" if log else "linear", rangemode="normal" if log else "tozero",
                         exponentformat="power", dtick=1 if log else None,
                         title_text=f"{name} (log scale)" if log else name, **panel)
    fig.update_xaxes(title_text="epochs trained" if x_axis == "epochs" else "training images seen")
    fig.update_layout(height=420, margin={"t": 40, "b": 50, "r": 10}, legend=LEGEND)
    return fig


def arm_protocol_differences(runs, reference: str) -> list[str]:
    """One sentence per arm trained under another protocol than the reference arm (an arm may
    set its own epochs, batch size or learning rate): what differs, so its difference is not
    read as the objective's alone."""
    first = {}
    for run in runs:
        if run.config is not None:
            first.setdefault(run.arm, run)
    if reference not in first:
        return []
    return [f"The {arm} arm differs from the {reference} arm in more than its objective: "
            f"{words}." for arm, run in first.items()
            if arm != reference and (words := protocols.difference_words(run, first[reference]))]
