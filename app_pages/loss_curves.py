"""Loss curves: per experiment, each arm's loss averaged over seeds with a band; per run, per-step
and per-epoch loss and accuracy, live while they train. Step curves are drawn against epochs or
images seen, smoothed on request."""
import streamlit as st

from gradloss.analysis import protocols
from gradloss.core.records import ACTIVE
from gradloss.ui import charts, comparison, experiment_views, widgets
from gradloss.ui.labels import error_line, run_labels, short_id

st.title("Loss curves")
runs_store = widgets.store()
if runs_store is None:
    st.stop()
left, right = st.columns(2)
window = left.slider("Smoothing: moving average over steps", 1, 200, 1, key="smoothing",
                     help="Each run's loss is averaged over this many consecutive steps (a plain "
                          "trailing moving average; 1: raw).")
x_axis = right.radio("x axis", list(charts.X_AXES), key="x_axis", horizontal=True,
                     format_func=charts.X_AXES.get,
                     help="Epochs or images seen, so runs with different batch sizes line up.")


def experiment_curves() -> None:
    """Pick an experiment; per arm the mean loss over seeds with its 95 % band, smoothed."""
    experiment = widgets.pick_experiment(
        runs_store, "curve_experiment",
        "No experiments yet: submit one on the Train page (or Quick compare on the home page).")
    if experiment is None:
        return
    chosen = experiment.experiment_id

    @st.fragment(run_every=3 if experiment.status in ACTIVE else None)
    def draw() -> None:
        try:
            runs = runs_store.runs.of_experiment(chosen)
            metrics = runs_store.results.metrics([r.run_id for r in runs], name="loss")
        except Exception as e:  # noqa: BLE001
            widgets.error(f"Could not read the metrics: {e}")
            return
        st.caption(experiment_views.progress_line(runs)[1])
        if metrics.empty:
            st.info("No losses yet: the first points appear a few steps after a run starts.")
            return
        st.plotly_chart(experiment_views.loss_band_figure(metrics, runs, window, x_axis=x_axis),
                        key="experiment_loss")
        st.caption("One panel per arm: the losses differ by orders of magnitude, and an axis "
                   "turns logarithmic when its values span a factor of 10. Band: 95 % interval "
                   "of the mean over the seeds that reached that step.")

    draw()


def run_curves() -> None:
    """Pick runs; their per-step loss, per-epoch loss and accuracy, and input-gradient size."""
    runs = runs_store.runs.list(limit=200)
    if not runs:
        st.info("No runs yet. Queue runs on the Train page (or click Quick compare on the home "
                "page); their curves appear here as they train.")
        return
    by_id = {r.run_id: r for r in runs}
    latest = protocols.latest_comparable(runs, statuses=ACTIVE + ("done",))
    selected = widgets.pick_runs(by_id, "curve_runs", [r.run_id for r in latest.values()],
                                 help="By default: the newest run that trains or trained, and "
                                      "the newest of each other objective trained the same way.")
    if not selected:
        st.info("Pick one or more runs above.")
        return
    if note := comparison.mixed_datasets_note([by_id[i] for i in selected]):
        st.warning(note)
    live = any(by_id[i].status in ACTIVE for i in selected)

    @st.fragment(run_every=2 if live else None)
    def curves() -> None:
        try:
            current = {i: runs_store.runs.get(i) for i in selected}
            still_live = any(r.status in ACTIVE for r in current.values())
            metrics = (runs_store.results.metrics(selected) if still_live
                       else widgets.finished_metrics(runs_store.url, tuple(selected)))
        except Exception as e:  # noqa: BLE001
            widgets.error(f"Could not read the metrics: {e}")
            return
        if any(r.status != by_id[i].status for i, r in current.items()):
            st.rerun()  # a run moved on: redraw the picker too (and stop polling once all finished)
        picked = {i: by_id[i] for i in selected}
        labels = run_labels(by_id.values())  # as the picker names them
        for run in current.values():
            if run.status == "failed":
                widgets.error(f"Run {short_id(run.run_id)} failed: {error_line(run.error)}. Its "
                              "curves stop where it failed; see the Train page.")
        if metrics.empty:
            waiting = any(r.status == "queued" for r in current.values())
            st.info("No metrics yet: the first points appear a few steps after a run starts"
                    + (" (it is still waiting for the worker)." if waiting else "."))
            return
        st.subheader("Training loss per step")
        st.caption("The objectives' losses differ by up to three orders of magnitude, so each "
                   "objective has its own panel; an axis turns logarithmic once its values span a "
                   "factor of 10.")
        st.plotly_chart(charts.loss_figure(metrics, picked, labels, x_axis, window), key="loss_chart")
        st.subheader("Per epoch")
        if metrics.name.isin(["epoch_loss", "train_accuracy", "test_accuracy"]).any():
            st.plotly_chart(charts.epoch_figure(metrics, picked, labels), key="epoch_chart")
        else:
            st.caption("Per-epoch loss and accuracy appear after the first epoch.")
        st.subheader("Input-gradient size")
        if metrics.name.eq("input_grad_norm").any():
            st.plotly_chart(charts.input_grad_figure(metrics, picked, labels), key="input_grad_chart")
            st.caption("Mean ‖∂CE/∂x‖₂ (cross-entropy's gradient with respect to the image) over "
                       "the first 500 test images, after each epoch, whatever the objective "
                       "trained: how sensitive the model's loss is to small changes of its input.")
        else:
            st.caption("The input-gradient size appears after the first epoch (runs trained by an "
                       "older version have none).")
        widgets.run_links(picked.values())
        if still_live:
            st.caption("Live: refreshing every 2 s while a run trains.")

    curves()


experiments_tab, single_tab = st.tabs(["Experiments", "Single runs"])
with experiments_tab:
    experiment_curves()
with single_tab:
    run_curves()
