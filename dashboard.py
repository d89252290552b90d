"""gradloss dashboard: `streamlit run dashboard.py` (or `gradloss dashboard`).

Declares the app's pages once and starts a local background worker once per browser session.
Pages never import TensorFlow: they read gradloss.service.store, queue work through
gradloss.service.client and draw with the view-models in gradloss.ui. The page files live in
app_pages/, not pages/: Streamlit would otherwise also offer its legacy page list, named after
the files, to a browser that opens a page by its address.
"""
import time

import streamlit as st

from gradloss.service import consumer

st.set_page_config(page_title="gradloss", page_icon="📉", layout="wide")

if "worker_checked" not in st.session_state:  # once per browser session, whichever page opens first
    st.session_state.worker_checked = True
    try:
        if consumer.ensure_local_worker():
            st.session_state.worker_started_at = time.time()
    except Exception as e:  # noqa: BLE001 - the pages must still render
        st.session_state.worker_error = f"Could not start a local worker: {e}"

st.navigation([
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/table_rows:"),
    st.Page("app_pages/loss_curves.py", title="Loss curves", icon=":material/timeline:"),
    st.Page("app_pages/robustness.py", title="Robustness", icon=":material/show_chart:"),
    st.Page("app_pages/frontier.py", title="Frontier", icon=":material/scatter_plot:"),
    st.Page("app_pages/run.py", title="Run", icon=":material/description:", url_path="run",
            visibility="hidden"),
]).run()
