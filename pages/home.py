"""Home: what gradloss is, the latest comparison, one-click runs, worker status."""
import time

import streamlit as st

from gradloss import data, objectives
from gradloss.ui import experiment_views, views, widgets
from gradloss.analysis import experiments
from gradloss.core.config import REFERENCE_PROTOCOL, TrainConfig
from gradloss.engines.backend import available_engines
from gradloss.analysis.experiments import QUICK_ARMS as QUICK_OBJECTIVES
from gradloss.perturbations.family import default_evaluation
from gradloss.service import client, consumer
from gradloss.service.store import runs as store

st.title("gradloss")
st.markdown(
    "gradloss trains a small image classifier with a **gradient loss** — the squared gradient of the "
    "error with respect to the inputs and labels — instead of cross-entropy, and compares it against a "
    "cross-entropy **baseline**. The question is robustness: how fast each model's test accuracy falls "
    "when Gaussian noise of growing σ is added to the images.")

def submit_quick(spec: experiments.ExperimentConfig) -> None:
    try:
        experiment_id = client.submit_experiment(spec)
    except Exception as e:  # noqa: BLE001
        st.error(f"Could not queue the quick compare: {e}")
        return
    st.success(f"Queued experiment {views.short_id(experiment_id)}: {spec.n_runs} runs, seed by seed. "
               "Its result appears below as the seeds finish.")


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
    live = sum(w["alive"] for w in status.workers)
    cols[1].metric("Device", status.device or "–", help=f"{live} live worker(s)")
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
    # This machine's live worker: its settings against the dashboard's (a worker on another
    # machine has its own folders, so only a local one is compared), and a restart button.
    local = [w for w in status.workers if w["alive"] and consumer.is_local(w)]
    if local:
        worker = local[0]
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
        if consumer.local_worker_allowed() and st.button(
                "Restart worker", help="Stops this machine's worker (a training run goes back in the "
                                       "queue and resumes from its last epoch) and starts one with "
                                       "this dashboard's settings."):
            try:
                if consumer.restart_local_worker():
                    st.session_state.worker_started_at = time.time()
                st.rerun()
            except Exception as e:  # noqa: BLE001
                st.error(f"Could not restart the worker: {e}")
if status is not None and status.workers:
    st.dataframe(views.workers_table(status.workers), hide_index=True, column_config={
        "heartbeat": st.column_config.NumberColumn(format="%.0f s ago")})
if "worker_error" in st.session_state:
    st.error(st.session_state.worker_error)
(st.caption if fashion else st.info)(data.data_status("fashion_mnist"))

# 2) One-click runs
left, right = st.columns(2)
gpu = bool(alive and status.device and status.device != "CPU")  # then: the full protocol
quick = experiments.quick_experiment(
    quick_dataset, gpu=gpu, engine="jax" if gpu and "jax" in available_engines() else "tensorflow")
if left.button("Quick compare", type="primary", help=experiment_views.quick_description(quick, gpu),
               width="stretch"):
    submit_quick(quick)
left.caption(experiment_views.quick_caveat(quick, gpu))
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

# 3) Latest experiment: the comparison with intervals
@st.cache_data(ttl=300)
def experiment_per_seed(db: str, experiment_id: str, done: tuple[str, ...]):
    """Per-seed sweeps of the complete pairs; `done` (finished run ids) keys the cache."""
    return store.RunStore(db).experiment_per_seed(experiment_id)


def latest_experiment() -> None:
    """The newest experiment: progress, and once two seeds are paired, the sentence and table."""
    try:
        runs_store = store.RunStore.default()
        [latest] = runs_store.list_experiments(limit=1) or [None]
        if latest is None:
            return
        runs = runs_store.experiment_runs(latest.experiment_id)
        per_seed = experiment_per_seed(runs_store.url, latest.experiment_id,
                                       tuple(r.run_id for r in runs if r.status == "done"))
    except Exception as e:  # noqa: BLE001
        st.error(f"Could not read the experiments: {e}")
        return
    st.subheader("Latest experiment")
    progress, text = experiment_views.progress_line(runs)
    st.markdown(f"{experiment_views.experiment_label(latest)}  \n{text}")
    if per_seed.seed.nunique() < 2:
        st.info("The comparison appears once every objective has finished two seeds.")
        return
    reference = latest.spec["reference"]
    summary = experiments.summary_table(per_seed, reference)
    sigmas = sorted(float(x) for x in per_seed.sigma.unique())
    sigma = views.nearest(sigmas, st.session_state.get("chosen_sigma", 0.1))
    for sentence in experiments.sentences(summary, reference, sigma,
                                          experiment_views.arm_labels(summary.arm.unique())):
        st.markdown(f"**{sentence}**")
    st.dataframe(experiment_views.styled_at_level(summary, sigma), hide_index=True)
    if latest.spec == quick.to_dict():
        st.caption(experiment_views.quick_caveat(quick, gpu))
    st.page_link("pages/robustness.py", label="Curves with intervals, every σ, exports",
                 icon=":material/show_chart:")


latest_experiment()

# 4) Latest comparison of single runs
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
widgets.comparison_dataframe(table, sigma)
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
