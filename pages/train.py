"""Train: forms that queue a run or an experiment (objectives x seeds), and a live view of
experiments and runs, queued, running and finished."""
import time

import streamlit as st

from gradloss import data, objectives
from gradloss.ui import experiment_views, views
from gradloss.core.config import (DATASETS, MAX_EPOCHS, MAX_SEED, MIN_TRAIN_SIZE, OBJECTIVES,
                                  REFERENCE_PROTOCOL, TRAIN_SET_SIZES, InvalidParameterError,
                                  TrainConfig)
from gradloss.engines.backend import available_engines
from gradloss.analysis.experiments import (MAX_SEEDS, MIN_SEEDS_INTERVAL, QUICK_ARMS,
                                           ExperimentConfig)
from gradloss.perturbations.family import default_evaluation
from gradloss.service import client, consumer
from gradloss.service.store import runs as store

st.title("Train")
if "worker_error" in st.session_state:
    st.error(st.session_state.worker_error)

# 1) The form. Dataset and objectives sit outside it: they set the other fields' defaults.
fashion = data.find_fashion_mnist()
left, right = st.columns(2)
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "digits": "digits (8×8, offline)"}
dataset = left.selectbox("Dataset", DATASETS, index=0 if fashion else 1, key="dataset",
                         format_func=DATASET_NAMES.get)
chosen = right.multiselect("Objectives", OBJECTIVES, default=["gradient", "baseline"], key="objectives",
                          format_func=objectives.label,
                          help="One run per objective, with the settings below. "
                               + " ".join(f"**{objectives.label(o)}**: {objectives.get(o).description}."
                                          for o in OBJECTIVES))
if dataset == "fashion_mnist" and not fashion:
    st.warning(data.data_status("fashion_mnist"))

chosen = [o for o in OBJECTIVES if o in chosen]  # registry order
reference = {k: "/".join(str(REFERENCE_PROTOCOL[o][k]) for o in chosen) for k in ("epochs", "batch_size")}
with st.form("launch"):
    c = st.columns(3)
    # For several objectives the fields start empty: each run then gets its own reference value.
    single = REFERENCE_PROTOCOL[chosen[0]] if len(chosen) == 1 else {"epochs": None, "batch_size": None}
    key = "_".join(chosen)
    # Each input carries its allowed range; the size limits follow the dataset, hence their keys.
    available = TRAIN_SET_SIZES[dataset]
    epochs = c[0].number_input("Epochs", value=single["epochs"], step=1, key=f"epochs_{key}",
                               min_value=1, max_value=MAX_EPOCHS,
                               placeholder=f"reference ({reference['epochs'] or '–'})",
                               help=f"1 to {MAX_EPOCHS}. Empty: each objective's reference protocol.")
    batch_size = c[1].number_input("Batch size", value=single["batch_size"], step=1,
                                   key=f"batch_{key}_{dataset}", min_value=1, max_value=available,
                                   placeholder=f"reference ({reference['batch_size'] or '–'})",
                                   help="At most the training-set size. Empty: each objective's "
                                        "reference protocol.")
    learning_rate = c[2].number_input("Learning rate", value=1e-3, step=1e-4, format="%.5f",
                                      min_value=0.0, key="learning_rate",
                                      help="Adam's learning rate; greater than 0.")
    train_size = c[0].number_input("Training-set size", value=None, step=100, key=f"train_size_{dataset}",
                                   min_value=MIN_TRAIN_SIZE, max_value=available,
                                   placeholder=f"all {available}",
                                   help=f"{MIN_TRAIN_SIZE} to {available}. Empty: the whole training set; "
                                        "else a stratified subset.")
    seed = c[1].number_input("Seed", value=0, step=1, key="seed", min_value=0, max_value=MAX_SEED)
    engine = c[2].selectbox("Engine", available_engines(), key="engine",
                            help="The Keras backend that trains. TensorFlow is the fastest on CPU; "
                                 "JAX (optional install) runs on a GPU when jax has CUDA.")
    deterministic = c[2].checkbox(
        "Deterministic", key="deterministic",
        help="Deterministic GPU kernels: the run repeats bit for bit, at about 3x the time per GPU "
             "step. CPU runs repeat exactly either way.")
    # The objectives' own parameters, for the chosen objectives that take them.
    params = {}
    for name, ((low, high), label, text) in objectives.PARAMETERS.items():
        takers = [o for o in chosen if name in REFERENCE_PROTOCOL[o]]
        if takers:
            params[name] = c[len(params) % 2].number_input(
                f"{label} ({', '.join(objectives.label(o) for o in takers)})",
                value=float(REFERENCE_PROTOCOL[takers[0]][name]), min_value=low, max_value=high,
                step=0.01, format="%.4g", key=name, help=f"{text}; reference "
                f"{REFERENCE_PROTOCOL[takers[0]][name]:g}.")
    evaluate = c[0].checkbox(
        "Corruptions and attacks after training", value=True, key="evaluate",
        help="After the noise sweep: 10 corruptions x 5 severities on the whole test set, and "
             "FGSM, PGD and Square attacks with a gradient-masking check on a subset. Minutes "
             "of CPU per run (see bench/README.md); shown on the Robustness page.")
    submitted = st.form_submit_button("Queue", type="primary", disabled=not chosen)

if submitted:
    try:
        configs = [TrainConfig(objective=o, dataset=dataset, epochs=epochs, batch_size=batch_size,
                               learning_rate=learning_rate, train_size=train_size, seed=seed,
                               engine=engine, deterministic=deterministic,
                               **{k: v for k, v in params.items() if k in REFERENCE_PROTOCOL[o]})
                   for o in chosen]
    except InvalidParameterError as e:
        st.error(views.form_message(e))
    else:
        try:
            evaluation = default_evaluation(dataset) if evaluate else None
            ids = [client.submit(cfg, evaluation=evaluation) for cfg in configs]
            st.success("Queued " + ", ".join(f"{objectives.label(cfg.objective)} run {views.short_id(i)}"
                                             for cfg, i in zip(configs, ids)) + ".")
        except Exception as e:  # noqa: BLE001
            st.error(f"Could not queue the run: {e}")


# 2) An experiment: the chosen objectives, each with several seeds, on the dataset above.
st.subheader("Experiment: objectives × seeds, with intervals")
with st.form("experiment"):
    c = st.columns(4)
    arms = c[0].multiselect("Objectives", OBJECTIVES, default=list(QUICK_ARMS), key="exp_objectives",
                            format_func=objectives.label,
                            help="Each objective is trained with every seed; the others are "
                                 "compared with the baseline (cross-entropy).")
    seeds = c[1].number_input("Seeds", value=3, step=1, key="exp_seeds",
                              help=f"{MIN_SEEDS_INTERVAL} to {MAX_SEEDS}: an interval needs at least "
                                   "two; 5 or more give usefully narrow ones.")
    exp_size = c[2].number_input("Training-set size", value=None, step=100, key="exp_train_size",
                                 placeholder=f"all {TRAIN_SET_SIZES[dataset]}",
                                 help="Empty: the whole training set; else the same stratified "
                                      "subset for every objective of a seed.")
    exp_epochs = c[3].number_input("Epochs", value=None, step=1, key="exp_epochs",
                                   placeholder="reference (gradient 10, baseline 20)",
                                   help="Empty: each objective's reference protocol.")
    exp_evaluate = c[0].checkbox(
        "Corruptions and attacks", value=False, key="exp_evaluate",
        help="After each run's noise sweep, the same suite as a single run's (minutes of CPU per "
             "run): the Robustness page then gives every corruption and attack an interval over "
             "the seeds.")
    queue_experiment = st.form_submit_button("Queue the experiment")
if queue_experiment:
    try:
        spec = ExperimentConfig(arms=tuple(arms), seeds=int(seeds), dataset=dataset,
                                train_size=exp_size, epochs=exp_epochs, engine=engine,
                                evaluation=default_evaluation(dataset).to_dict()
                                if exp_evaluate else None)
    except InvalidParameterError as e:
        st.error(f"Not queued: {e}")
    else:
        try:
            experiment_id = client.submit_experiment(spec)
            st.success(f"Queued experiment {views.short_id(experiment_id)}: {spec.n_runs} runs, "
                       "seed by seed. Its results build up on the Robustness page.")
        except Exception as e:  # noqa: BLE001
            st.error(f"Could not queue the experiment: {e}")


# 3) The live area: only this part refreshes, and only while something is queued or running.
def read_runs():
    try:
        return store.RunStore.default().list_runs(limit=100), consumer.worker_status()
    except Exception as e:  # noqa: BLE001
        st.error(f"Could not read the run store: {e}")
        return [], None


def request_cancel(cancel, item_id: str, what: str) -> None:
    """A Cancel button's callback: cancel(item_id) (a run, or every run of an experiment), toasted."""
    name = f"{what}{views.short_id(item_id)}"
    try:
        cancel(item_id)
        st.toast(f"Cancel requested for {name}.")
    except Exception as e:  # noqa: BLE001
        st.toast(f"Could not cancel {name}: {e}")


def experiments_area() -> None:
    """Active experiments (and the newest finished ones): progress of the whole, cancel."""
    try:
        runs_store = store.RunStore.default()
        listed = runs_store.list_experiments(limit=20)
    except Exception as e:  # noqa: BLE001
        st.error(f"Could not read the experiments: {e}")
        return
    active = [e for e in listed if e.status in views.ACTIVE]
    shown = active + [e for e in listed if e.status not in views.ACTIVE][:3]
    if not shown:
        return
    st.subheader("Experiments")
    for experiment in shown:
        progress, text = experiment_views.progress_line(runs_store.experiment_runs(experiment.experiment_id))
        c = st.columns([3, 5, 1.4], vertical_alignment="center")
        c[0].markdown(experiment_views.experiment_label(experiment))
        c[1].progress(progress.finished / max(progress.total, 1), text=text)
        if experiment.status in views.ACTIVE:
            c[2].button("Cancel all", key=f"cancel_experiment_{experiment.experiment_id}",
                        on_click=request_cancel,
                        args=(client.cancel_experiment, experiment.experiment_id, "experiment "))


runs, _ = read_runs()
polling = any(r.status in views.ACTIVE for r in runs)


@st.fragment(run_every=2 if polling else None)
def live_runs() -> None:
    runs, status = read_runs()
    active = [r for r in runs if r.status in views.ACTIVE]
    if bool(active) != polling:
        st.rerun()  # start or stop the timer
    experiments_area()
    st.subheader("Queued and running")
    if status is not None and not status.alive and active:
        st.warning("No worker is running: these runs wait. Start one with `python -m gradloss worker` "
                   "or open the home page, which starts a local worker.")
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
    finished = [r for r in runs if r.status in views.FINISHED]
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
    st.caption(f"Updated {time.strftime('%H:%M:%S')}" + (" · refreshing every 2 s" if polling else ""))


live_runs()
