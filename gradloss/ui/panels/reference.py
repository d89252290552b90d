"""The reference results that ship with gradloss, labelled as such, beside the user's own runs."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from gradloss import objectives
from gradloss.analysis import reference


def reference_table(found: reference.ReferenceResults) -> pd.DataFrame:
    """One row per objective: accuracy at σ = 0, 0.1, 0.2 with intervals, and the difference to
    the reference arm in points with its interval (no Streamlit)."""
    def cell(mean, low, high, points=False, signed=False):
        scale, fmt = (100, "{:+.1f}") if points else (1, "{:.3f}")
        if pd.isna(mean):
            return ""
        text = fmt.format(scale * mean) if signed or not points else f"{scale * mean:.1f}"
        return text if pd.isna(low) else \
            f"{text} [{fmt.format(scale * low)}, {fmt.format(scale * high)}]"

    rows = []
    for arm, own in found.table.groupby("arm", sort=False):
        own = own.set_index("level")
        row = {"objective": objectives.label(arm)}
        for level in ("0.0", "0.1", "0.2"):
            r = own.loc[level]
            row[f"accuracy at σ={float(level):g}"] = cell(r["mean"], r.low, r.high)
            row[f"Δ points at σ={float(level):g}"] = cell(r["diff"], r.diff_low, r.diff_high,
                                                          points=True, signed=True)
        rows.append(row)
    return pd.DataFrame(rows)


def shipped() -> None:
    """An expander with the shipped reference results and their provenance."""
    found = reference.load()
    with st.expander(f"Reference results (shipped with gradloss): {found.label()}"):
        st.dataframe(reference_table(found), hide_index=True)
        p = found.provenance
        st.caption(f"{p['dataset']}; {p['protocol']}; {p['sweep']}; seeds "
                   f"{', '.join(map(str, p['seeds']))}. {p['statistics']}; Δ against the "
                   f"{found.reference}. {p['note']} Measured with `{p['command']}`.")
