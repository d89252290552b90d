"""Robustness: experiments first (mean accuracy versus noise σ over seeds, with intervals and the
difference to the reference arm); then single runs side by side, under Gaussian noise and the
other perturbations (corruptions, attacks) picked next to the slider."""
import streamlit as st

from gradloss.analysis import protocols
from gradloss.core.evaluation import GAUSSIAN
from gradloss.ui import comparison, widgets
from gradloss.ui.labels import short_id
from gradloss.ui.panels import experiments, export, single_runs

st.title("Robustness to input noise")
runs_store = widgets.store()
if runs_store is None:
    st.stop()

experiments_tab, single_tab = st.tabs(["Experiments", "Single runs"])
with experiments_tab:
    experiment = widgets.pick_experiment(
        runs_store, "experiment", "No experiments yet. An experiment trains each objective with "
        "several seeds, so a difference comes with its interval: submit one on the Train page, or "
        "click Quick compare on the home page.")
    if experiment is not None:
        experiments.comparison(runs_store, experiment)
        export.experiment(experiment.experiment_id)

with single_tab:
    done = runs_store.runs.list(status="done", limit=200)
    if not done:
        if runs_store.runs.list(status=("queued", "running"), limit=1):
            st.info("Runs are queued or training: their robustness sweep is stored when they "
                    "finish. Follow them on the Train page.")
        else:
            st.info("No finished runs yet. Train models of the objectives to compare (Train page, "
                    "or Quick compare on the home page); their accuracy-versus-noise curves "
                    "appear here.")
        st.stop()

    # 1) Which runs: any finished runs; by default the newest of each objective in one protocol.
    by_id = {r.run_id: r for r in done}
    ids = tuple(widgets.pick_runs(
        by_id, "compare_runs", [r.run_id for r in protocols.latest_comparable(done).values()],
        help="Any finished runs: one curve each, in its objective's colour. By default the "
             "newest run, and the newest run of each other objective trained the same way "
             "(dataset and size, epochs, batch, learning rate, engine)."))
    if not ids:
        st.info("Pick one or more runs above.")
        st.stop()
    reference = widgets.pick_reference(ids, by_id)
    sweeps, examples = widgets.sweeps(runs_store.url, ids)
    missing = [i for i in ids if sweeps[sweeps.run_id == i].empty]
    if missing:
        st.warning(f"Run{'s' * (len(missing) > 1)} {', '.join(short_id(i) for i in missing)} "
                   "have no robustness sweep stored (cancelled before the sweep, or trained by an "
                   "older version). Train again to get one.")
    ids = tuple(i for i in ids if i not in missing)
    if not ids or reference not in ids:
        st.stop()
    differ = protocols.differences([by_id[i] for i in ids])
    if differ:
        st.warning("These runs were not all trained the same way: they differ in "
                   + "; ".join(f"{label} ({', '.join(dict.fromkeys(values))})"
                               for label, values in differ.items())
                   + ". A gap between two of them is not their objectives' alone: the table's "
                   f"“{comparison.DIFFERS}” column and each sentence say what differs.",
                   icon=":material/warning:")

    # 2) The perturbation and its level, the chart and each run against the reference.
    plans = tuple(sorted((i, p.status) for i, p in runs_store.evaluations.plans(list(ids)).items()))
    table, rows, plan_of, grid_examples = widgets.perturbation_results(runs_store.url, ids, plans)
    pick_col, slider_col = st.columns([1, 3])
    name = single_runs.perturbation_picker(pick_col, table, ids)
    if name == GAUSSIAN:
        @st.fragment
        def at_sigma() -> None:
            """What the σ slider changes: a move reruns only this (the rest stays drawn)."""
            sigma = single_runs.noise(st, runs_store, ids, by_id, reference, sweeps)
            single_runs.noise_grid(ids, by_id, sweeps, examples, sigma)

        at_sigma()
        single_runs.summary(table, ids, by_id, reference, plan_of)
    else:
        single_runs.perturbation(slider_col, name, table, rows, ids, by_id, reference, plan_of,
                                 grid_examples)
        single_runs.summary(table, ids, by_id, reference, plan_of)
