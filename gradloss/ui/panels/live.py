"""The Train page's live area: experiments and runs, queued, running and finished, refreshed only
while something is queued or running; cancel buttons."""
from __future__ import annotations

import time

import streamlit as st

from gradloss import objectives
from gradloss.service import client, consumer
from gradloss.ui import experiment_views, views, widgets


def _read(runs_store):
    try:
        return runs_store.runs.list(limit=100), consumer.worker_status(runs_store)
    except Exception as e:  # noqa: BLE001
        widgets.error(f"Could not read the run store: {e}")
        return [], None


def request_cancel(cancel, item_id: str, what: str) -> None:
    """A Cancel button's callback: cancel(item_id) (a run, or every run of an experiment), toasted."""
    name = f"{what}{views.short_id(item_id)}"
    try:
        cancel(item_id)
        st.toast(f"Cancel requested for {name}.")
    except Exception as e:  # noqa: BLE001
        st.toast(f"Could not cancel {name}: {e}")


def _experiments(runs_store) -> None:
    """Active experiments (and the newest finished ones): progress of the whole, cancel."""
    try:
        listed = runs_store.experiments.list(limit=20)
    except Exception as e:  # noqa: BLE001
        widgets.error(f"Could not read the experiments: {e}")
        return
    active = [e for e in listed if e.status in views.ACTIVE]
    shown = active + [e for e in listed if e.status not in views.ACTIVE][:3]
    if not shown:
        return
    st.subheader("Experiments")
    for experiment in shown:
        progress, text = experiment_views.progress_line(
            runs_store.runs.of_experiment(experiment.experiment_id))
        c = st.columns([3, 5, 1.4], vertical_alignment="center")
        c[0].markdown(experiment_views.experiment_label(experiment))
        c[1].progress(progress.finished / max(progress.total, 1), text=text)
        if experiment.status in views.ACTIVE:
            c[2].button("Cancel all", key=f"cancel_experiment_{experiment.experiment_id}",
                        on_click=request_cancel,
                        args=(client.cancel_experiment, experiment.experiment_id, "experiment "))


def runs_area(runs_store) -> None:
    """The live area: it polls every 2 s while a run is queued or running, else stays still."""
    runs, _ = _read(runs_store)
    polling = any(r.status in views.ACTIVE for r in runs)

    @st.fragment(run_every=2 if polling else None)
    def live() -> None:
        runs, status = _read(runs_store)
        active = [r for r in runs if r.status in views.ACTIVE]
        if bool(active) != polling:
            st.rerun()  # start or stop the timer
        _experiments(runs_store)
        st.subheader("Queued and running")
        if status is not None and not status.alive and active:
            st.warning("No worker is running: these runs wait. Start one with `python -m gradloss "
                       "worker` or open the home page, which starts a local worker.")
        if not active:
            st.info("Nothing queued or running. Queue a run with the form above.")
        for run in reversed(active):  # oldest first: the order the worker takes them
            c = st.columns([3, 5, 1], vertical_alignment="center")
            state = run.status + (" · cancelling…" if run.cancel_requested else "")
            c[0].markdown(f"**{objectives.label(run.objective)}** · {run.dataset} · "
                          f"`{views.short_id(run.run_id)}`  \n{state}")
            fraction, text = views.progress_bar(run)
            c[1].progress(fraction, text=text)
            c[2].button("Cancel", key=f"cancel_{run.run_id}", on_click=request_cancel,
                        args=(client.cancel, run.run_id, ""), disabled=run.cancel_requested)
        _finished([r for r in runs if r.status in views.FINISHED])
        st.caption(f"Updated {time.strftime('%H:%M:%S')}"
                   + (" · refreshing every 2 s" if polling else ""))

    live()


def _finished(finished) -> None:
    st.subheader("Finished")
    if not finished:
        st.caption("No finished runs yet.")
        return
    st.dataframe(views.runs_table(finished), hide_index=True, column_config={
        "train size": st.column_config.NumberColumn(help="Empty: the whole training set."),
        "reason": st.column_config.TextColumn(help="Why it failed, in one line; the whole message "
                                                   "is under “Why runs failed” below.")})
    failed = [r for r in finished if r.status == "failed" or r.unreadable]
    if failed:
        with st.expander(f"Why runs failed ({len(failed)})"):
            for run in failed:
                st.markdown(f"**{views.run_label(run)}**")
                st.code(run.error or (f"unreadable: {run.unreadable}" if run.unreadable else
                                      "no error message"), language=None)
