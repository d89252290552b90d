"""The worker block of Home: is a worker alive, on what device, what is queued, with which
settings; start or restart this machine's worker."""
from __future__ import annotations

import time

import streamlit as st

from gradloss.service import consumer
from gradloss.service.settings import home
from gradloss.ui import status as run_status, widgets

STARTING_S = 60  # a worker started this long ago without a heartbeat yet shows as starting


def status_block():
    """Draw the worker's state; returns (status or None, alive, starting)."""
    status = None
    try:
        status = consumer.worker_status()
    except Exception as e:  # noqa: BLE001
        widgets.error(f"Could not read the worker status: {e}")
    alive = bool(status and status.alive)
    starting = not alive and time.time() - st.session_state.get("worker_started_at", 0) < STARTING_S
    if status is not None:
        cols = st.columns(3)
        cols[0].metric("Worker", "alive" if alive else "starting…" if starting else "down")
        live = sum(w.alive for w in status.workers)
        cols[1].metric("Device", status.device or "–", help=f"{live} live worker(s)")
        cols[2].metric("Queued runs", status.queue_length)
        if starting:
            st.info("Started a local worker; it reports in within a few seconds (its log: "
                    f"worker.log in {home()}).")
        elif not alive:
            st.warning("No worker is running, so queued runs wait. Start one in a terminal with "
                       "`python -m gradloss worker`, or click below.")
            if st.button("Start a local worker"):
                _start()
        _local_settings(status)
        if status.workers:
            st.dataframe(run_status.workers_table(status.workers), hide_index=True, column_config={
                "heartbeat": st.column_config.NumberColumn(format="%.0f s ago")})
    if "worker_error" in st.session_state:
        widgets.error(st.session_state.worker_error)
    return status, alive, starting


def _start() -> None:
    try:
        if consumer.ensure_local_worker():
            st.session_state.worker_started_at = time.time()
            st.rerun()
        st.info("No worker started: GRADLOSS_NO_LOCAL_WORKER is set, or one is already starting.")
    except Exception as e:  # noqa: BLE001
        widgets.error(f"Could not start a local worker: {e}")


def _local_settings(status) -> None:
    """This machine's live worker: its settings against the dashboard's (a worker on another
    machine has its own folders, so only a local one is compared), and a restart button."""
    local = [w for w in status.workers if w.alive and consumer.is_local(w)]
    if not local:
        return
    worker = local[0].record
    settings = worker.settings
    st.caption(f"Worker pid {worker.pid} on {worker.host}: data folder "
               f"{settings.data_dir or 'not set'} (GRADLOSS_DATA_DIR), code in {settings.code}, "
               f"engines {', '.join(settings.engines)}.")
    differences = run_status.settings_differences(settings, consumer.worker_settings())
    if differences:
        st.warning("The worker was started with other settings than this dashboard: "
                   + "; ".join(differences) + ". Runs read the data folder found when they "
                   "were queued; restart the worker to apply the rest.")
    if consumer.local_worker_allowed() and st.button(
            "Restart worker", help="Stops this machine's worker (a training run goes back in the "
                                   "queue and resumes from its last epoch) and starts one with "
                                   "this dashboard's settings."):
        try:
            if consumer.restart_local_worker():
                st.session_state.worker_started_at = time.time()
            st.rerun()
        except Exception as e:  # noqa: BLE001
            widgets.error(f"Could not restart the worker: {e}")
