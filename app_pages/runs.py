"""Runs: every run in one table (what trained it, how it ended, how accurate it is), sorted by
any column, filtered; rename, tag, annotate or delete the run picked in it."""
import streamlit as st

from gradloss import objectives
from gradloss.core.errors import GradlossError, InvalidParameterError
from gradloss.core.records import STATUSES
from gradloss.service import client
from gradloss.ui import experiment_views, run_table, widgets
from gradloss.ui.forms import form_message
from gradloss.ui.labels import run_label

st.title("Runs")
runs_store = widgets.store()
if runs_store is None:
    st.stop()
runs = runs_store.runs.list(limit=1000)
if not runs:
    st.info("No runs yet. Queue runs on the Train page, or train one with `gradloss train`: "
            "every run, queued or local, is listed here.")
    st.stop()

done = tuple(r.run_id for r in runs if r.status == "done")
sweeps = widgets.sweeps(runs_store.url, done)[0]
tested = widgets.finished_metrics(runs_store.url, done)
tested = tested[tested.name == "test_accuracy"].sort_values("step").groupby("run_id").value.last()
experiments = {e.experiment_id: experiment_views.experiment_label(e)
               for e in runs_store.experiments.list()}
sigma = widgets.recall("sigma", 0.1)
table = run_table.runs_table(runs, sweeps, sigma, tested.to_dict(), experiments)

c = st.columns([2, 2, 3])
shown_objectives = c[0].multiselect("Objectives", [objectives.label(o) for o in objectives.NAMES],
                                    key="runs_objectives", placeholder="all")
statuses = c[1].multiselect("Status", STATUSES, key="runs_statuses", placeholder="all")
text = c[2].text_input("Search", key="runs_search", placeholder="name, tag, note, id, experiment")
shown = run_table.filter_table(table, shown_objectives, statuses, text)
st.caption(f"{len(shown)} of {len(table)} runs. Click a column's header to sort by it; pick a "
           f"row to rename, tag, annotate or delete its run. Accuracy at σ = {sigma:g} (the σ "
           "chosen on the Robustness page); clean accuracy is the sweep's σ = 0, else the last "
           "epoch's test accuracy.")
picked = st.dataframe(
    shown, hide_index=True, key="runs_table", on_select="rerun", selection_mode="single-row",
    column_config={
        "open": st.column_config.LinkColumn("run page", display_text="open"),
        "clean accuracy": st.column_config.NumberColumn(format="%.4f"),
        "accuracy at σ": st.column_config.NumberColumn(f"accuracy at σ={sigma:g}", format="%.4f"),
        "learning rate": st.column_config.NumberColumn(format="%g"),
        "train size": st.column_config.NumberColumn("training images"),
        "created": st.column_config.DatetimeColumn(format="MMM D HH:mm"),
        "reason": st.column_config.TextColumn(help="Why it failed, in one line.")})
rows = picked.selection.rows if picked else []
if not rows:
    st.stop()

run = runs_store.runs.get(shown.iloc[rows[0]]["open"].split("id=", 1)[1])
st.subheader(run_label(run))
st.page_link(widgets.RUN_PAGE, label="Open its page: config, curves, sweep, evaluations",
             query_params={"id": run.run_id}, icon=":material/open_in_new:")
with st.form(f"describe_{run.run_id}"):
    name = st.text_input("Name", run.name or "", placeholder="a name for people (optional)")
    tags = st.text_input("Tags", ", ".join(run.tags), placeholder="comma-separated")
    note = st.text_area("Note", run.note or "")
    if st.form_submit_button("Save"):
        try:
            runs_store.runs.rename(run.run_id, name)
            runs_store.runs.tag(run.run_id, tags.split(","))
            runs_store.runs.annotate(run.run_id, note)
        except InvalidParameterError as e:
            widgets.error(form_message(e, {"name": "Name", "tags": "Tags", "note": "Note"}))
        else:
            st.rerun()
if run.status in ("queued", "running"):
    st.caption(f"This run is {run.status}: cancel it on the Train page before deleting it.")
elif st.checkbox("Delete this run: its results and its files, for good", key="delete_confirm"):
    if st.button("Delete", type="primary", key=f"delete_{run.run_id}"):
        try:
            client.delete(run.run_id, runs_store)
        except GradlossError as e:
            widgets.error(str(e))
        else:
            st.session_state.pop("delete_confirm", None)
            st.toast(f"Deleted {run_label(run, status=False)}.")
            st.rerun()
