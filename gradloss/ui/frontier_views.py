"""The Frontier page's view-model (no Streamlit): the chart of clean against robust accuracy with
interval bars on both axes, one line per objective in strength order, the front ringed; the
table of points in percent.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from gradloss import objectives
from gradloss.core.frontier import strength_words

FRONT_NAME = "on the front"


def _bars(points: pd.DataFrame, axis: str) -> dict:
    """A t interval's bar, drawn within the accuracies that can be (0 to 100 %): with few
    seeds it may reach past them."""
    mean = 100 * points[axis]
    low, high = (100 * points[c].clip(0, 1) for c in (f"{axis}_low", f"{axis}_high"))
    return dict(type="data", symmetric=False, array=(high - mean).fillna(0).tolist(),
                arrayminus=(mean - low).fillna(0).tolist(), thickness=1, width=3)


def frontier_figure(points: pd.DataFrame, where: str) -> go.Figure:
    """Clean accuracy (x) against accuracy under `where` ('σ = 0.1', 'PGD ε = 0.1') (y), in
    percent, with the points' t intervals as bars; each objective a line through its
    strengths, weakest first; the front ringed."""
    fig = go.Figure()
    for objective, part in points.groupby("objective", sort=False):
        part = part.sort_values("strength", na_position="first", kind="stable")
        fig.add_trace(go.Scatter(
            x=(100 * part.clean).tolist(), y=(100 * part.robust).tolist(), mode="lines+markers+text",
            name=objectives.label(objective), line=dict(color=objectives.color(objective)),
            marker=dict(size=9), error_x=_bars(part, "clean"), error_y=_bars(part, "robust"),
            text=[strength_words(objective, s, 3) for s in part.strength], textposition="top right",
            customdata=part[["arm", "n"]].to_numpy().tolist(),
            hovertemplate="%{customdata[0]}<br>clean %{x:.1f} %<br>" + where
                          + ": %{y:.1f} %<br>%{customdata[1]} seeds<extra></extra>"))
    front = points[points.on_front]
    if len(front):
        fig.add_trace(go.Scatter(
            x=(100 * front.clean).tolist(), y=(100 * front.robust).tolist(), mode="markers", name=FRONT_NAME,
            marker=dict(size=18, symbol="circle-open", color="black", line=dict(width=1.5)),
            hoverinfo="skip"))
    fig.update_layout(xaxis_title="clean accuracy (%)",
                      yaxis_title=f"accuracy at {where} (%)",
                      legend_title="objective", height=480, margin=dict(t=30))
    return fig


def points_table(points: pd.DataFrame) -> pd.DataFrame:
    """The points as people read them: arm, clean and robust accuracy with intervals in
    percent, seeds, front."""
    def cell(mean, low, high):
        return f"{100 * mean:.1f}" + ("" if pd.isna(low) else f" [{100 * low:.1f}, {100 * high:.1f}]")

    return pd.DataFrame({
        "arm": points.arm,
        "objective": [objectives.label(o) for o in points.objective],
        "strength": [strength_words(o, s, 3) for o, s in zip(points.objective, points.strength)],
        "clean (%)": [cell(*r) for r in points[["clean", "clean_low", "clean_high"]].to_numpy()],
        "under noise (%)": [cell(*r) for r in
                            points[["robust", "robust_low", "robust_high"]].to_numpy()],
        "seeds": points.n,
        "front": points.on_front.map({True: "yes", False: ""}),
    })
