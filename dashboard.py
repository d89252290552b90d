"""gradloss dashboard: `streamlit run dashboard.py`.

The app's navigation: Home (pages/0_Home.py), Train, Loss curves and Robustness. Pages never
import TensorFlow: they read gradloss.store, queue work through gradloss.worker and draw with
gradloss.views.
"""
import streamlit as st

st.set_page_config(page_title="gradloss", page_icon="📉", layout="wide")
st.navigation([
    st.Page("pages/0_Home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/1_Train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/2_Loss_curves.py", title="Loss curves", icon=":material/timeline:"),
    st.Page("pages/3_Robustness.py", title="Robustness", icon=":material/show_chart:"),
]).run()
