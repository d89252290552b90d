"""Export buttons: the finished runs of the Train page's table, or one experiment, out to MLflow
(`gradloss export mlflow`) or TensorBoard (`gradloss export tensorboard`), through
`gradloss.ui.exports` (a child process; the dashboard never loads TensorFlow)."""
from __future__ import annotations

import streamlit as st

from gradloss.core.records import FINISHED
from gradloss.ui import exports, widgets


def finished_runs(runs_store) -> None:
    """An Export button for the finished runs the Train page lists."""
    try:
        runs = runs_store.runs.list(status=FINISHED, limit=100)
    except Exception:  # noqa: BLE001  (the live area above already says why)
        return
    if runs:
        _popover("runs", f"Export these {len(runs)} runs",
                 run_ids=tuple(r.run_id for r in runs))


def experiment(experiment_id: str) -> None:
    """An Export button for one experiment: a parent run with its summary, its runs nested."""
    _popover(f"experiment_{experiment_id}", "Export this experiment", experiment_id=experiment_id)


def _popover(key: str, label: str, **which) -> None:
    with st.popover(label, icon=":material/ios_share:"):
        st.markdown("**MLflow**: each run an MLflow run (params, metrics, model), experiments as "
                    "parent runs with their summary over seeds. Exporting again updates them.")
        uri = st.text_input("Tracking URI", key=f"export_uri_{key}",
                            placeholder=exports.default_uri(),
                            help="http://HOST:PORT of an MLflow server, sqlite:///FILE or a folder. "
                                 "Empty: GRADLOSS_MLFLOW_URI, else mlflow.db in GRADLOSS_HOME.")
        if st.button("Export to MLflow", key=f"export_mlflow_{key}"):
            _show(exports.run_export, "mlflow", uri=uri, **which)
        st.markdown("**TensorBoard**: one log folder per run; its HParams tab compares runs by "
                    "objective, strength and seed.")
        folder = st.text_input("Log folder", key=f"export_folder_{key}",
                               placeholder=str(exports.default_folder()))
        if st.button("Write TensorBoard logs", key=f"export_tensorboard_{key}"):
            _show(exports.run_export, "tensorboard", folder=folder or None, **which)


def _show(export, tracker: str, **kwargs) -> None:
    with st.spinner(f"Exporting to {'MLflow' if tracker == 'mlflow' else 'TensorBoard'}…"):
        result = export(tracker, **kwargs)
    (st.success if result.ok else widgets.error)(result.message)
    if result.log.strip():
        with st.expander("What the export printed"):
            st.code(result.log[-5000:], language=None)
