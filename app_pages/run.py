"""One run: what trained it and where, its curves, its noise sweep and its evaluations. Opened
from a link (`run?id=RUN_ID`) in every table and beneath every chart; without one, the newest
finished run."""
import pandas as pd
import streamlit as st

from gradloss.analysis import protocols, summary
from gradloss.ui import charts, comparison, widgets
from gradloss.ui.labels import error_line, format_duration, run_label, run_labels

st.title("Run")
runs_store = widgets.store()
if runs_store is None:
    st.stop()
runs = runs_store.runs.list(limit=500)
if not runs:
    st.info("No runs yet: queue one on the Train page.")
    st.stop()
by_id = {r.run_id: r for r in runs}
wanted = st.query_params.get("id")
if wanted not in by_id:
    if wanted:
        st.warning(f"No run with id {wanted} in the store (deleted?).")
    wanted = next((r.run_id for r in runs if r.status == "done"), runs[0].run_id)
labels = run_labels(runs)
run_id = st.selectbox("Run", list(by_id), index=list(by_id).index(wanted), format_func=labels.get)
st.query_params["id"] = run_id
run = runs_store.runs.get(run_id)

st.header(run_label(run))
if run.status == "failed":
    widgets.error(f"Failed: {error_line(run.error)}")
if run.tags or run.note:
    st.markdown(" ".join(f":blue-badge[{t}]" for t in run.tags) + (f"  \n{run.note}" if run.note else ""))
c = st.columns(4)
c[0].metric("Status", run.status)
c[1].metric("Took", format_duration(run.duration_s))
c[2].metric("Device", run.device or "–")
c[3].metric("Attempts", run.attempts)
when = {"queued": run.created_at, "started": run.started_at, "finished": run.finished_at}
st.caption(" · ".join(f"{k} {pd.Timestamp(v, unit='s'):%Y-%m-%d %H:%M:%S} UTC"
                      for k, v in when.items() if v)
           + f" · host {run.host or '–'}{'' if run.gpu is None else f', GPU {run.gpu}'}"
           + f" · worker {run.worker_id or '–'} · id {run.run_id}"
           + (f" · experiment {run.experiment_id}, arm {run.arm}" if run.experiment_id else ""))
if run.config is None:
    widgets.error(f"Its stored config cannot be read: {run.unreadable}")
    st.stop()
st.markdown(f"**Protocol**: {protocols.describe(run)}.")
with st.expander("Full config"):
    st.json({"train": run.config.to_dict(), "sweep": run.sweep.to_dict(), "data_dir": run.data_dir})

one = {run_id: run}
metrics = (runs_store.results.metrics(run_id) if run.status in ("queued", "running")
           else widgets.finished_metrics(runs_store.url, (run_id,)))
if not metrics.empty:
    st.subheader("Curves")
    st.plotly_chart(charts.loss_figure(metrics, one, {run_id: "loss"}), key="run_loss")
    if metrics.name.isin(["epoch_loss", "test_accuracy"]).any():
        st.plotly_chart(charts.epoch_figure(metrics, one, {run_id: "this run"}), key="run_epochs")
sweep = widgets.sweeps(runs_store.url, (run_id,))[0] if run.status == "done" else pd.DataFrame()
if not sweep.empty:
    st.subheader("Accuracy under noise")
    st.plotly_chart(charts.comparison_figure(sweep, one, {run_id: "this run"}), key="run_sweep")
    st.dataframe(sweep[["sigma", "accuracy", "accuracy_std", "draws", "seed"]], hide_index=True,
                 column_config={"sigma": st.column_config.NumberColumn("σ", format="%g"),
                                "accuracy": st.column_config.NumberColumn(format="%.4f"),
                                "accuracy_std": st.column_config.NumberColumn(
                                    "± std over draws", format="%.4f")})
    for warning in comparison.undertrained_warnings(sweep, one):
        st.warning(warning, icon=":material/warning:")
plan = runs_store.evaluations.plan_of(run_id)
if plan is not None:
    st.subheader("Corruptions and attacks")
    st.caption(f"Evaluation {plan.status}" + (f": {plan.error}" if plan.error else ""))
    rows = runs_store.evaluations.rows([run_id])
    if len(rows):
        table = summary.summarize_runs(summary.results(sweep, rows))
        st.dataframe(table.drop(columns="run_id"), hide_index=True, column_config={
            "auc": st.column_config.NumberColumn("AUC", format="%.4f",
                                                 help="Accuracy averaged over the levels."),
            "headline": st.column_config.NumberColumn(format="%.4f")})
    if plan.masking_flags:
        st.warning("Possible gradient masking: " + " ".join(plan.masking_flags))
st.page_link("app_pages/runs.py", label="Every run", icon=":material/table_rows:")
