"""Streamlit pieces several pages share: the experiment picker, the run picker, the comparison
table. The figures and tables themselves are built in views and experiment_views (no Streamlit).
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from gradloss.ui import experiment_views, views
from gradloss.service.store import runs as store


def pick_experiment(key: str, empty: str):
    """(the run store, the experiment picked in a selectbox, newest first), or None after
    showing why there is none: the store cannot be read, or `empty` when it holds none."""
    try:
        runs_store = store.RunStore.default()
        listed = {e.experiment_id: e for e in runs_store.list_experiments(limit=100)}
    except Exception as e:  # noqa: BLE001
        st.error(f"Could not read the run store: {e}")
        return None
    if not listed:
        st.info(empty)
        return None
    chosen = st.selectbox("Experiment", list(listed), key=key,
                          format_func=lambda i: experiment_views.experiment_label(listed[i]))
    return runs_store, listed[chosen]


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
