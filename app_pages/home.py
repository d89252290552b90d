"""Home: what gradloss is, the latest comparison, one-click runs, worker status."""
import streamlit as st

from gradloss import data, objectives
from gradloss.analysis import protocols
from gradloss.core.config import REFERENCE_PROTOCOL, TrainConfig
from gradloss.core.records import ACTIVE
from gradloss.engines.backend import available_engines
from gradloss.service import client, consumer
from gradloss.ui import comparison, widgets
from gradloss.ui import quick as quick_compare
from gradloss.ui.estimates import REFERENCE_MINUTES
from gradloss.ui.labels import short_id
from gradloss.ui.panels import experiments, reference, worker

st.title("gradloss")
st.markdown(
    "gradloss trains a small image classifier with a **gradient loss** — the squared gradient of the "
    "error with respect to the inputs and labels — instead of cross-entropy, and compares it against a "
    "cross-entropy **baseline**. The question is robustness: how fast each model's test accuracy falls "
    "when Gaussian noise of growing σ is added to the images.")


def submit_quick(spec) -> None:
    try:
        experiment_id = client.submit_experiment(spec)
    except Exception as e:  # noqa: BLE001
        widgets.error(f"Could not queue the quick compare: {e}")
        return
    st.success(f"Queued experiment {short_id(experiment_id)}: {spec.n_runs} runs, seed by "
               "seed. Its result appears below as the seeds finish.")


def submit(configs: list[TrainConfig]) -> None:
    try:
        ids = [client.submit(client.plan_for(cfg)) for cfg in configs]
    except Exception as e:  # noqa: BLE001
        widgets.error(f"Could not queue the runs: {e}")
        return
    st.success(f"Queued {', '.join(short_id(i) for i in ids)}. Follow them on the Train page.")
    st.page_link("app_pages/train.py", label="Open the Train page", icon=":material/model_training:")


# 1) Worker and data
status, alive, starting = worker.status_block()
fashion = data.find_fashion_mnist()
(st.caption if fashion else st.info)(data.data_status("fashion_mnist"))

# 2) One-click runs
left, right = st.columns(2)
gpu = bool(alive and status.device and status.device != "CPU")  # then: the full protocol
quick = quick_compare.quick_experiment(
    "fashion_mnist" if fashion else "digits", gpu=gpu,
    engine="jax" if gpu and "jax" in available_engines() else "tensorflow")
if left.button("Quick compare", type="primary", width="stretch",
               help=quick_compare.quick_description(quick, gpu)):
    submit_quick(quick)
left.caption(quick_compare.quick_caveat(quick, gpu))
reference.shipped()
download = not fashion and data.fashion_mnist_downloadable()  # Keras fetches it on first use
ref_help = ("The full reference protocol on all 60 000 Fashion-MNIST images: " + "; ".join(
            f"{objectives.label(o)} {REFERENCE_PROTOCOL[o]['epochs']} epochs, batch "
            f"{REFERENCE_PROTOCOL[o]['batch_size']}" for o in quick_compare.QUICK_ARMS)
            + f". {REFERENCE_MINUTES.capitalize()} minutes on 2 CPU cores (bench/reference.py)."
            if fashion or download else
            "Needs Fashion-MNIST, which was not found: " + data.data_status("fashion_mnist"))
if right.button("Reproduce the reference", help=ref_help, disabled=not (fashion or download),
                width="stretch"):
    submit([TrainConfig(objective=o, dataset="fashion_mnist") for o in quick_compare.QUICK_ARMS])
if download:
    right.caption("Fashion-MNIST is not on this machine: the first run downloads it (about 30 MB, "
                  "needs internet).")
elif not fashion:
    right.caption("Disabled: Fashion-MNIST was not found (see above).")

# 3) Latest experiment: the comparison with intervals
runs_store = widgets.store()
if runs_store is None:
    st.stop()
experiments.latest(runs_store, quick, gpu)

# 4) Latest comparison of single runs: the newest run's protocol only
st.subheader("Latest comparison")
recent = runs_store.runs.list(limit=200)
latest = {r.run_id: r for r in protocols.latest_comparable(recent).values()}
ids = list(latest)
active = [r for r in recent if r.status in ACTIVE]
seen = (len(active), alive)


@st.fragment(run_every=3 if active or starting else None)
def watch() -> None:
    """Invisible: rerun the page when a run finishes or the worker comes up; idle otherwise."""
    try:
        now = (len(runs_store.runs.list(status=ACTIVE)), consumer.worker_status().alive)
    except Exception:  # noqa: BLE001 - the next tick tries again
        return
    if now != seen:
        st.rerun()


watch()
if active:
    st.info(f"{len(active)} run{'s' * (len(active) > 1)} queued or training; the comparison below "
            "updates when they finish.")
    st.page_link("app_pages/train.py", label="Follow them on the Train page",
                 icon=":material/model_training:")
if not latest:
    if not active:
        st.info("No finished runs yet. Click **Quick compare** above, or launch runs on the Train page.")
    st.stop()
metrics = widgets.finished_metrics(runs_store.url, tuple(ids))
robustness = widgets.sweeps(runs_store.url, tuple(ids))[0]
sigmas = comparison.swept_sigmas(robustness, ids)
sigma = comparison.nearest(sigmas, widgets.recall("sigma", 0.1)) if sigmas else 0.1
reference = comparison.default_reference(latest.values())
table = comparison.comparison_table(latest, metrics, robustness, sigma, reference)
st.caption(f"Protocol: {protocols.describe(list(latest.values()))}. Runs of other protocols "
           "are left out: their accuracies differ in more than the objective.")
widgets.comparison_dataframe(table, sigma, key="latest_comparison")
if len(latest) < 2:
    st.info(f"Only {objectives.label(next(iter(latest.values())).objective)} has a finished run "
            "of this protocol yet: nothing to compare against. Train the other objectives with "
            "the same settings (Train page).")
summary = comparison.comparison_summary(table, sigma, short_id(reference))
if summary:
    st.markdown(summary)
for warning in comparison.undertrained_warnings(robustness, latest):
    st.warning(warning, icon=":material/warning:")
widgets.run_links(latest.values())
st.caption(f"The newest finished run, and the newest of each other objective trained the same "
           f"way. σ = {sigma:g}: choose another σ, other runs and the reference on the Robustness "
           "page. ‖∂CE/∂x‖ is the last epoch's mean input-gradient norm; ms / 1000 images: the "
           "median over epochs of one training step's time divided by its batch size, so "
           "objectives with different batch sizes compare.")
st.page_link("app_pages/robustness.py", label="Accuracy versus noise", icon=":material/show_chart:")
st.page_link("app_pages/loss_curves.py", label="Loss curves", icon=":material/timeline:")
