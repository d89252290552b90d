"""The Train page's live area: experiments and runs, queued, running and finished, refreshed only
while something is queued or running; cancel buttons."""
from __future__ import annotations

import time

import streamlit as st

from gradloss.core.records import ACTIVE, FINISHED
from gradloss.service import client, consumer
from gradloss.ui import experiment_views, run_table, status as run_status, widgets
from gradloss.ui.labels import run_label, short_id


def _read(runs_store):
    try:
        return runs_store.runs.list(limit=100), consumer.worker_status(runs_store)
    except Exception as e:  # noqa: BLE001
        widgets.error(f"Could not read the run store: {e}")
        return [], None


NOTICE = "live_notice"  # what a Cancel button's callback has to say, shown by the live area


def request_cancel(cancel, item_id: str, what: str) -> None:
    """A Cancel button's callback: cancel(item_id) (a run, or every run of an experiment). It
    leaves its words to the live area: a callback in a fragment must not draw (Streamlit
    warns on every click, and the element would land at the top of the page)."""
    name = f"{what}{short_id(item_id)}"
    try:
        cancel(item_id)
        st.session_state[NOTICE] = f"Cancel requested for {name}."
    except Exception as e:  # noqa: BLE001
        st.session_state[NOTICE] = f"Could not cancel {name}: {e}"


def _experiments(runs_store) -> None:
    """Active experiments (and the newest finished ones): progress of the whole, cancel."""
    try:
        listed = runs_store.experiments.list(limit=20)
    except Exception as e:  # noqa: BLE001
        widgets.error(f"Could not read the experiments: {e}")
        return
    active = [e for e in listed if e.status in ACTIVE]
    shown = active + [e for e in listed if e.status not in ACTIVE][:3]
    if not shown:
        return
    st.subheader("Experiments")
    for experiment in shown:
        progress, text = experiment_views.progress_line(
            runs_store.runs.of_experiment(experiment.experiment_id))
        c = st.columns([3, 5, 1.4], vertical_alignment="center")
        c[0].markdown(experiment_views.experiment_label(experiment))
        c[1].progress(progress.finished / max(progress.total, 1), text=text)
        if experiment.status in ACTIVE:
            c[2].button("Cancel all", key=f"cancel_experiment_{experiment.experiment_id}",
                        on_click=request_cancel,
                        args=(client.cancel_experiment, experiment.experiment_id, "experiment "))


def runs_area(runs_store) -> None:
    """The live area: it polls every 2 s while a run is queued or running, else stays still."""
    runs, _ = _read(runs_store)
    polling = any(r.status in ACTIVE for r in runs)

    @st.fragment(run_every=2 if polling else None)
    def live() -> None:
        runs, status = _read(runs_store)
        if NOTICE in st.session_state:
            st.toast(st.session_state.pop(NOTICE))
        active = [r for r in runs if r.status in ACTIVE]
        if bool(active) != polling:
            st.rerun()  # start or stop the timer
        _experiments(runs_store)
        st.subheader("Queued and running")
        if status is not None and not status.alive and active:
            st.warning("No worker is running: these runs wait. Start one with `python -m gradloss "
                       "worker` or open the home page, which starts a local worker.")
        if not active:
            st.info("Nothing queued or running. Queue a run with the form above.")
        ordered = sorted(active, key=lambda r: (r.status != "running", r.created_at, r.run_id))
        for ahead, run in enumerate(ordered):  # running first, then the order the worker takes them
            c = st.columns([3, 5, 1], vertical_alignment="center")
            state = run.status + (" · cancelling…" if run.cancel_requested else "")
            c[0].markdown(f"**{run_label(run, status=False)}**  \n{run.dataset} · {state}")
            fraction, text = run_status.progress_bar(run, ahead=ahead)
            c[1].progress(fraction, text=text)
            c[2].button("Cancel", key=f"cancel_{run.run_id}", on_click=request_cancel,
                        args=(client.cancel, run.run_id, ""), disabled=run.cancel_requested)
        _finished([r for r in runs if r.status in FINISHED])
        st.caption(f"Updated {time.strftime('%H:%M:%S')}"
                   + (" · refreshing every 2 s" if polling else ""))

    live()


RECENT = 10  # finished runs listed here; the Runs page lists them all


def _finished(finished) -> None:
    st.subheader("Recently finished")
    if not finished:
        st.caption("No finished runs yet.")
        return
    table = run_table.runs_table(finished[:RECENT])
    st.dataframe(table[["open", "objective", "strength", "dataset", "train size", "epochs",
                        "batch", "seed", "status", "duration", "reason", "id"]],
                 hide_index=True, column_config={
                     "open": st.column_config.LinkColumn("run page", display_text="open"),
                     "reason": st.column_config.TextColumn(
                         help="Why it failed, in one line; the whole message is under “Why runs "
                              "failed” below.")})
    st.page_link("app_pages/runs.py", label=f"Every run ({len(finished)} finished): sort, "
                 "filter, rename, tag, delete", icon=":material/table_rows:")
    failed = [r for r in finished if r.status == "failed" or r.unreadable]
    if failed:
        with st.expander(f"Why runs failed ({len(failed)})"):
            for run in failed:
                st.markdown(f"**{run_label(run)}**")
                st.code(run.error or (f"unreadable: {run.unreadable}" if run.unreadable else
                                      "no error message"), language=None)
