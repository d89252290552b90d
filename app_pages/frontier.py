"""Frontier: clean against robust accuracy of an experiment's arms, with intervals on both axes;
objectives compared where their clean accuracies meet (`analysis.frontier`)."""
import streamlit as st

from gradloss.analysis import frontier as analysis
from gradloss.core.evaluation import GAUSSIAN, PERTURBATIONS
from gradloss.core.frontier import arm_strengths
from gradloss.ui import frontier_views, perturbation_views, widgets
from gradloss.ui.comparison import nearest
from gradloss.ui.panels import experiments, searches

st.title("Robustness–accuracy frontier")
st.caption("A stronger penalty or more training noise buys robustness with clean accuracy, so "
           "one strength per objective cannot say which objective is more robust. A frontier "
           "trains each objective at several strengths under one protocol: each arm is a point "
           "(mean over seeds, 95 % intervals as bars), and objectives are compared at the clean "
           "accuracy both reach. Start one with `gradloss frontier` or the Train page's "
           "experiment form.")
runs_store = widgets.store()
if runs_store is None:
    st.stop()
if st.radio("Show", ["Frontier experiment", "Strength search"], horizontal=True,
            key="frontier_source", help="A frontier experiment trains a grid of strengths over "
            "several seeds; a strength search lets Optuna pick the strengths, one seed "
            "each.") == "Strength search":
    searches.search_section(runs_store)
    st.stop()
experiment = widgets.pick_experiment(
    runs_store, "frontier_experiment", "No experiments yet. A frontier is an experiment whose "
    "arms are objectives at several strengths: `gradloss frontier --dataset digits` trains the "
    "default grids (add --submit to queue them for the worker).")
if experiment is None:
    st.stop()
if experiment.spec is None:
    st.error(f"This experiment cannot be read: {experiment.unreadable}")
    st.stop()

runs = runs_store.runs.of_experiment(experiment.experiment_id)
results, _ = experiments.results(runs_store, experiment, runs)  # cached with the Robustness page's
if results.n_seeds < 2:
    st.info("The frontier appears once every arm has two finished seeds (intervals need two). "
            f"{sum(r.status == 'done' for r in runs)} of {len(runs)} runs are done.")
    st.stop()
# The robust axis: Gaussian noise at a σ of the sweep, or a corruption or attack the runs were
# evaluated under, at one of its levels.
measured = [GAUSSIAN] + [n for n in PERTURBATIONS if n in set(results.perturbations.perturbation)]
pick, at = st.columns([1, 3])
perturbation = pick.selectbox("Robust axis", measured, key="frontier_perturbation",
                              format_func=perturbation_views.label,
                              help="Accuracy under this perturbation is the y axis. Corruptions "
                                   "and attacks appear here once the experiment's runs were "
                                   "evaluated under them.")
if perturbation == GAUSSIAN:
    level = widgets.pick_sigma(at, [s for s in results.sigmas if s > 0], key="frontier_sigma")
else:
    levels = sorted(float(v) for v in results.perturbations[
        results.perturbations.perturbation == perturbation].level.unique())
    level = at.select_slider(PERTURBATIONS[perturbation].level_name, options=levels,
                             value=nearest(levels, 0.1), key=f"frontier_level_{perturbation}",
                             format_func=lambda v: f"{v:g}")
found = analysis.frontier(results.per_seed, arm_strengths(experiment.spec), level,
                          results.perturbations, perturbation)
if not found.varied:
    st.info("Every objective of this experiment has one strength: its arms are single points, "
            "not curves. A frontier trains several strengths of an objective "
            "(`gradloss frontier`).")
st.plotly_chart(frontier_views.frontier_figure(found.points, found.where), key="frontier_chart")
st.subheader(f"At equal clean accuracy, {found.where}")
sentences = found.sentences()
for sentence in sentences:
    st.markdown(f"- {sentence}")
if not sentences:
    st.caption("No two objectives here to compare.")
st.caption(f"{results.n_seeds} paired seeds. Each objective's curve is read at the highest clean "
           "accuracy both reach, seed by seed, between its two strengths that bracket it; every "
           "pair at every level of this axis is one family, Benjamini–Hochberg corrected.")
st.dataframe(frontier_views.points_table(found.points), hide_index=True)
