"""The Frontier page's strength-search section: pick a search, see its trials as points of clean
against robust accuracy as they finish, the front ringed, and the table of trials."""
from __future__ import annotations

import streamlit as st

from gradloss.ui import frontier_views, search_views, widgets
from gradloss.ui.labels import STRENGTH_NAMES


def search_section(runs_store) -> None:
    """The search picked: its trials on the chart at the σ picked, and its table."""
    record = widgets.pick_search(
        runs_store, "frontier_search", "No strength searches yet. Start one on the Train page "
        "(Strength search) or with `gradloss search --dataset digits --objective input_gradient "
        "--trials 12`: Optuna asks for strengths one trial at a time, and the worker trains "
        "each trial as an ordinary run.")
    if record is None:
        return
    spec = record.spec
    if spec is None:
        widgets.error(f"This search cannot be read: {record.unreadable}")
        return
    runs = runs_store.runs.of_search(record.search_id)
    done = [r.run_id for r in runs if r.status == "done"]
    sweeps = runs_store.results.robustness(done)
    sigmas = [s for s in spec.sweep.sigmas if s > 0]
    pick, _ = st.columns([1, 3])
    sigma = widgets.pick_sigma(pick, sigmas, key="search_sigma")
    points = search_views.trial_points(runs, sweeps, sigma)
    state = "finished" if record.finished_at else \
        f"searching: {record.in_flight} trial(s) training or queued"
    st.caption(f"{len(done)} of {spec.trials} trials done ({state}). Optuna's multi-objective "
               f"TPE picks each {STRENGTH_NAMES.get(spec.parameter, spec.parameter)} in "
               f"[{spec.low:g}, {spec.high:g}] "
               f"({'log' if spec.log else 'linear'} scale) from the trials before it, maximising "
               f"clean accuracy and accuracy at σ = {spec.sigma:g}; every trial trains seed "
               f"{spec.train.seed} under one protocol, so trials differ in their strength only. "
               "One seed per trial: no intervals; to compare objectives with intervals, run a "
               "frontier at the strengths found.")
    shown = points.dropna(subset=["clean", "robust"])
    if shown.empty:
        st.info("The chart appears once the first trial is done.")
    else:
        st.plotly_chart(frontier_views.frontier_figure(shown, f"σ = {sigma:g}"),
                        key="search_chart")
    st.dataframe(search_views.trials_table(points), hide_index=True)
