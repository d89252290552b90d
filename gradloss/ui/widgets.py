"""Streamlit pieces every page shares: the store (or why it cannot be read), cached reads of
finished results, the experiment and run pickers, the comparison table.

The figures and tables themselves are built without Streamlit (`views`, `experiment_views`,
`perturbation_views`, `loaders`); panels (`gradloss.ui.panels`) compose them into sections.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from gradloss.service.store import Store
from gradloss.service.urls import scrub_environment
from gradloss.ui import experiment_views, loaders, views


def error(message) -> None:
    """A red message; a password of the store's or the queue's URL in it (a driver's words
    quoted in an exception) is masked."""
    st.error(scrub_environment(message))


def store() -> Store | None:
    """The run store, or None after showing why it cannot be read."""
    try:
        return Store.default()
    except Exception as e:  # noqa: BLE001  (a message naming the setting, password masked)
        error(f"Could not read the run store: {e}")
        return None


@st.cache_data(ttl=300)
def experiment_results(url: str, experiment_id: str, reference: str, done: tuple[str, ...],
                       plans: tuple = ()):
    """loaders.experiment_results; the finished run ids and their evaluation plans' states key
    the cache."""
    return loaders.experiment_results(Store(url), experiment_id, reference)


@st.cache_data(ttl=300)
def sweeps(url: str, run_ids: tuple[str, ...]):
    """loaders.sweeps of finished runs (their sweeps no longer change)."""
    return loaders.sweeps(Store(url), run_ids)


@st.cache_data(ttl=300)
def finished_metrics(url: str, run_ids: tuple[str, ...]):
    """Metrics of finished runs (their curves no longer change)."""
    return Store(url).results.metrics(list(run_ids))


@st.cache_data(ttl=3600)
def test_images(dataset: str):
    """(x_test, class names) of a dataset, for the image grids."""
    return loaders.test_images(dataset)


def pick_experiment(runs_store: Store, key: str, empty: str):
    """The experiment picked in a selectbox (newest first), or None after showing `empty`."""
    try:
        listed = {e.experiment_id: e for e in runs_store.experiments.list(limit=100)}
    except Exception as e:  # noqa: BLE001
        error(f"Could not read the experiments: {e}")
        return None
    if not listed:
        st.info(empty)
        return None
    chosen = st.selectbox("Experiment", list(listed), key=key,
                          format_func=lambda i: experiment_views.experiment_label(listed[i]))
    return listed[chosen]


def pick_runs(by_id: dict, key: str, defaults, help: str) -> list[str]:
    """A multiselect of the runs in `by_id`, kept in st.session_state[key]; it starts at (and goes
    back to, when a picked run left the store) `defaults`."""
    if [i for i in st.session_state.get(key, []) if i not in by_id]:
        del st.session_state[key]  # a picked run was deleted from the store
    if key not in st.session_state:
        st.session_state[key] = list(defaults)
    return st.multiselect("Runs", list(by_id), key=key,
                          format_func=lambda i: views.run_label(by_id[i]), help=help)


def comparison_dataframe(table: pd.DataFrame, sigma: float) -> None:
    """views.comparison_table, each number column in its format."""
    st.dataframe(table, hide_index=True, column_config={
        column: st.column_config.NumberColumn(format=fmt)
        for column, fmt in views.comparison_formats(sigma).items()})


def image_grid(items: list[tuple[int, list, str]], columns: int = 6) -> None:
    """A grid of test images: (index, [images], caption) each, images drawn 4x up."""
    grid = st.columns(columns)
    for k, (index, images, caption) in enumerate(items):
        with grid[k % columns]:
            for image in images:
                st.image(views.upscale(image), width=112)
            st.caption(f"#{index} · {caption}")
