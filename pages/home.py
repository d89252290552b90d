"""Home: what gradloss is, the latest comparison, one-click runs, worker status."""
import time

import streamlit as st

from gradloss import data, objectives, views
from gradloss.config import REFERENCE_PROTOCOL, TRAIN_SET_SIZES, TrainConfig
from gradloss.perturbations.family import default_evaluation
from gradloss.service import client, consumer, store

QUICK_TRAIN_SIZE = 5000  # Fashion-MNIST subset of the quick comparison; digits uses all its 1437 images
QUICK_EPOCHS = 2
QUICK_OBJECTIVES = ("gradient", "baseline")  # the reference comparison; the Train page queues any

st.title("gradloss")
st.markdown(
    "gradloss trains a small image classifier with a **gradient loss** — the squared gradient of the "
    "error with respect to the inputs and labels — instead of cross-entropy, and compares it against a "
    "cross-entropy **baseline**. The question is robustness: how fast each model's test accuracy falls "
    "when Gaussian noise of growing σ is added to the images.")

def quick_configs(dataset: str) -> list[TrainConfig]:
    size = QUICK_TRAIN_SIZE if dataset == "fashion_mnist" else None
    return [TrainConfig(objective=o, dataset=dataset, epochs=QUICK_EPOCHS, train_size=size)
            for o in QUICK_OBJECTIVES]


def submit(configs: list[TrainConfig]) -> None:
    try:
        ids = [client.submit(cfg, evaluation=default_evaluation(cfg.dataset)) for cfg in configs]
    except Exception as e:  # noqa: BLE001
        st.error(f"Could not queue the runs: {e}")
        return
    st.success(f"Queued {', '.join(views.short_id(i) for i in ids)}. Follow them on the Train page.")
    st.page_link("pages/train.py", label="Open the Train page", icon=":material/model_training:")


# 1) Worker and data
status = None
try:
    status = consumer.worker_status()
except Exception as e:  # noqa: BLE001
    st.error(f"Could not read the worker status: {e}")
fashion = data.find_fashion_mnist()
quick_dataset = "fashion_mnist" if fashion else "digits"

cols = st.columns(3)
alive = bool(status and status.alive)
starting = not alive and time.time() - st.session_state.get("worker_started_at", 0) < 60  # no heartbeat yet
if status is not None:
    cols[0].metric("Worker", "alive" if alive else "starting…" if starting else "down")
    cols[1].metric("Device", status.device or "–")
    cols[2].metric("Queued runs", status.queue_length)
    if starting:
        st.info("Started a local worker; it reports in within a few seconds (its log: worker.log in "
                f"{store.home()}).")
    elif not alive:
        st.warning("No worker is running, so queued runs wait. Start one in a terminal with "
                   "`python -m gradloss worker`, or click below.")
        if st.button("Start a local worker"):
            try:
                if consumer.ensure_local_worker():
                    st.session_state.worker_started_at = time.time()
                    st.rerun()
                st.info("No worker started: GRADLOSS_NO_LOCAL_WORKER is set, or one is already starting.")
            except Exception as e:  # noqa: BLE001
                st.error(f"Could not start a local worker: {e}")
    if alive:
        worker = status.workers[0]
        settings = worker.get("settings")
        if settings:
            st.caption(f"Worker pid {worker['pid']} on {worker['host']}: data folder "
                       f"{settings['GRADLOSS_DATA_DIR'] or 'not set'} (GRADLOSS_DATA_DIR), code in "
                       f"{settings['code']}, engines {', '.join(settings['engines'])}.")
            differences = views.settings_differences(settings, consumer.worker_settings())
            if differences:
                st.warning("The worker was started with other settings than this dashboard: "
                           + "; ".join(differences) + ". Runs read the data folder found when they "
                           "were queued; restart the worker to apply the rest.")
        restartable = any(map(consumer.is_local, status.workers)) and consumer.local_worker_allowed()
        if restartable and st.button(
                "Restart worker", help="Stops this machine's worker (a training run goes back in the "
                                       "queue and resumes from its last epoch) and starts one with "
                                       "this dashboard's settings."):
            try:
                if consumer.restart_local_worker():
                    st.session_state.worker_started_at = time.time()
                st.rerun()
            except Exception as e:  # noqa: BLE001
                st.error(f"Could not restart the worker: {e}")
if "worker_error" in st.session_state:
    st.error(st.session_state.worker_error)
(st.caption if fashion else st.info)(data.data_status("fashion_mnist"))

# 2) One-click runs
left, right = st.columns(2)
quick_help = (f"Trains {' and '.join(objectives.label(o) for o in QUICK_OBJECTIVES)}, "
              f"{QUICK_EPOCHS} epochs each, on "
              + (f"{QUICK_TRAIN_SIZE} Fashion-MNIST training images" if fashion else
                 f"all {TRAIN_SET_SIZES['digits']} digits training images (Fashion-MNIST not found)")
              + ", then measures their test accuracy under noise at each σ (most of the time goes there). "
              "About one to two minutes on a laptop CPU.")
if left.button("Quick compare", type="primary", help=quick_help, width="stretch"):
    submit(quick_configs(quick_dataset))
download = not fashion and data.fashion_mnist_downloadable()  # Keras fetches it on first use
ref_help = ("The full reference protocol on all 60 000 Fashion-MNIST images: " + "; ".join(
            f"{objectives.label(o)} {REFERENCE_PROTOCOL[o]['epochs']} epochs, batch "
            f"{REFERENCE_PROTOCOL[o]['batch_size']}" for o in QUICK_OBJECTIVES)
            + ". About 20 minutes on 2 CPU cores."
            if fashion or download else
            "Needs Fashion-MNIST, which was not found: " + data.data_status("fashion_mnist"))
if right.button("Reproduce the reference", help=ref_help, disabled=not (fashion or download),
                width="stretch"):
    submit([TrainConfig(objective=o, dataset="fashion_mnist") for o in QUICK_OBJECTIVES])
if download:
    right.caption("Fashion-MNIST is not on this machine: the first run downloads it (about 30 MB, "
                  "needs internet).")
elif not fashion:
    right.caption("Disabled: Fashion-MNIST was not found (see above).")

# 3) Latest comparison
st.subheader("Latest comparison")
try:
    runs = store.RunStore.default()
    recent = runs.list_runs(limit=200)
    latest = {r.run_id: r for r in views.latest_per_objective(recent).values()}
    ids = list(latest)
    metrics = runs.metrics(ids) if ids else None
    robustness = runs.robustness(ids) if ids else None
except Exception as e:  # noqa: BLE001
    st.error(f"Could not read the run store: {e}")
    st.stop()
active = [r for r in recent if r.status in views.ACTIVE]
seen = (len(active), alive)


@st.fragment(run_every=3 if active or starting else None)
def watch() -> None:
    """Invisible: rerun the page when a run finishes or the worker comes up; idle otherwise."""
    try:
        now = (len(store.RunStore.default().list_runs(status=views.ACTIVE)), consumer.worker_status().alive)
    except Exception:  # noqa: BLE001 - the next tick tries again
        return
    if now != seen:
        st.rerun()


watch()
if active:
    st.info(f"{len(active)} run{'s' * (len(active) > 1)} queued or training; the comparison below "
            "updates when they finish.")
    st.page_link("pages/train.py", label="Follow them on the Train page", icon=":material/model_training:")
if not latest and not active:
    st.info("No finished runs yet. Click **Quick compare** above, or launch runs on the Train page.")
if not latest:
    st.stop()
sigmas = views.swept_sigmas(robustness, ids)
sigma = views.nearest(sigmas, st.session_state.get("chosen_sigma", 0.1)) if sigmas else 0.1
reference = views.default_reference(latest.values())
table = views.comparison_table(latest, metrics, robustness, sigma, reference)
st.dataframe(table, hide_index=True, column_config={
    "clean accuracy": st.column_config.NumberColumn(format="%.4f"),
    f"accuracy at σ={sigma:g}": st.column_config.NumberColumn(format="%.4f"),
    "points vs reference": st.column_config.NumberColumn(format="%+.2f"),
    "‖∂CE/∂x‖": st.column_config.NumberColumn(format="%.3g"),
    "ms / 1000 images": st.column_config.NumberColumn(format="%.0f")})
if len(latest) < 2:
    st.info(f"Only {objectives.label(next(iter(latest.values())).objective)} has a finished run on "
            f"{table.dataset.iloc[0]} yet: nothing to compare against.")
summary = views.comparison_summary(table, sigma, views.short_id(reference))
if summary:
    st.markdown(summary)
st.caption(f"The newest finished run of each objective. σ = {sigma:g}: choose another σ, other runs "
           "and the reference on the Robustness page. ‖∂CE/∂x‖ is the last epoch's mean input-gradient "
           "norm; ms / 1000 images: the median over epochs of one training step's time divided by its"
           " batch size, so objectives with different batch sizes compare.")
st.page_link("pages/robustness.py", label="Accuracy versus noise", icon=":material/show_chart:")
st.page_link("pages/loss_curves.py", label="Loss curves", icon=":material/timeline:")
