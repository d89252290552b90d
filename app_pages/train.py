"""Train: forms that queue a run, an experiment (objectives x seeds, or a frontier) or a strength
search, and a live view of experiments and runs, queued, running and finished."""
import streamlit as st

from gradloss import data, objectives
from gradloss.core.config import (MAX_EPOCHS, MAX_SEED, MIN_TRAIN_SIZE, OBJECTIVES,
                                  REFERENCE_PROTOCOL, TrainConfig)
from gradloss.core import frontier, search
from gradloss.core.errors import InvalidParameterError
from gradloss.core.evaluation import default_evaluation
from gradloss.core.experiment import MAX_SEEDS, MIN_SEEDS_INTERVAL, ExperimentConfig
from gradloss.engines.backend import available_engines
from gradloss.service import client
from gradloss.service import search as searches
from gradloss.ui import widgets
from gradloss.ui.estimates import EVALUATION_MINUTES
from gradloss.ui.forms import EXPERIMENT_LABELS, form_message
from gradloss.ui.labels import short_id
from gradloss.ui.panels import data_inputs, export, live
from gradloss.ui.quick import QUICK_ARMS

st.title("Train")
if "worker_error" in st.session_state:
    widgets.error(st.session_state.worker_error)

# 1) The form. Dataset, architecture and objectives sit outside it: they set the other fields'
# defaults. The dataset and architecture pickers (and uploads) are their own panel.
fashion = data.find_fashion_mnist()
runs_store = widgets.store()
picked = data_inputs.sources(runs_store, "fashion_mnist" if fashion else "digits") \
    if runs_store is not None else None
dataset = picked.key if picked else "digits"  # keys the fields whose limits follow the data
chosen = st.multiselect("Objectives", OBJECTIVES, default=["gradient", "baseline"], key="objectives",
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
    # No min/max on the inputs: a value out of range is refused by TrainConfig, in the form's
    # words (a min_value only turns the field red, silently). The sizes follow the dataset.
    available = picked.data.n_train if picked else MIN_TRAIN_SIZE
    epochs = c[0].number_input("Epochs", value=single["epochs"], step=1, key=f"epochs_{key}",
                               placeholder=f"reference ({reference['epochs'] or '–'})",
                               help=f"1 to {MAX_EPOCHS}. Empty: each objective's reference protocol.")
    batch_size = c[1].number_input("Batch size", value=single["batch_size"], step=1,
                                   key=f"batch_{key}_{dataset}",
                                   placeholder=f"reference ({reference['batch_size'] or '–'})",
                                   help="At most the training-set size. Empty: each objective's "
                                        "reference protocol.")
    learning_rate = c[2].number_input("Learning rate", value=1e-3, step=1e-4, format="%.5f",
                                      key="learning_rate", help="Adam's learning rate; greater than 0.")
    train_size = c[0].number_input("Training-set size", value=None, step=100, key=f"train_size_{dataset}",
                                   placeholder=f"all {available}",
                                   help=f"{MIN_TRAIN_SIZE} to {available}. Empty: the whole training set; "
                                        "else a stratified subset.")
    seed = c[1].number_input("Seed", value=0, step=1, key="seed", help=f"0 to {MAX_SEED}.")
    engine = c[2].selectbox("Engine", available_engines(), key="engine",
                            help="The Keras backend that trains. TensorFlow is the fastest on CPU; "
                                 "JAX (optional install) runs on a GPU when jax has CUDA.")
    deterministic = c[2].checkbox(
        "Deterministic", key="deterministic",
        help="Deterministic GPU kernels: the run repeats bit for bit, at about 3x the time per GPU "
             "step. CPU runs repeat exactly either way.")
    # The objectives' own parameters, for the chosen objectives that take them: one field per
    # reference value, so that objectives whose references differ (the two penalties' λ) each
    # start from their own.
    params: dict[str, dict] = {o: {} for o in chosen}  # objective -> {parameter: value}
    shown = 0
    for name, ((low, high), label, text) in objectives.PARAMETERS.items():
        groups: dict[float, list[str]] = {}
        for o in chosen:
            if name in REFERENCE_PROTOCOL[o]:
                groups.setdefault(float(REFERENCE_PROTOCOL[o][name]), []).append(o)
        for k, (reference, takers) in enumerate(groups.items()):
            value = c[shown % 2].number_input(
                f"{label} ({', '.join(objectives.label(o) for o in takers)})",
                value=reference, min_value=low, max_value=high, step=0.01, format="%.4g",
                key=name if k == 0 else f"{name}_{takers[0]}",
                help=f"{text}; reference {reference:g}.")
            shown += 1
            for o in takers:
                params[o][name] = value
    evaluate = c[0].checkbox(
        "Corruptions and attacks after training", value=False, key="evaluate",
        help="10 corruptions x 5 severities on the whole test set, and FGSM, PGD and Square "
             "attacks with a gradient-masking check on a subset, queued as work of their own "
             "once the run is trained: queued training always goes first. Measured (bench/"
             f"README.md): about {EVALUATION_MINUTES['digits']} min per digits run and "
             f"{EVALUATION_MINUTES['fashion_mnist']} min per Fashion-MNIST run on 2 CPU cores. "
             "Off, as `gradloss train` is without --perturbations.")
    submitted = st.form_submit_button("Queue", type="primary", disabled=not chosen or not picked)

if submitted:
    try:
        configs = [TrainConfig(objective=o, **picked.fields, epochs=epochs, batch_size=batch_size,
                               learning_rate=learning_rate, train_size=train_size, seed=seed,
                               engine=engine, deterministic=deterministic,
                               **params[o])
                   for o in chosen]
    except InvalidParameterError as e:
        widgets.error(form_message(e))
    else:
        try:
            evaluation = default_evaluation(picked.data.name) if evaluate else None
            ids = [client.submit(client.plan_for(cfg, evaluation)) for cfg in configs]
            st.success("Queued " + ", ".join(f"{objectives.label(cfg.objective)} run {short_id(i)}"
                                             for cfg, i in zip(configs, ids)) + ".")
        except Exception as e:  # noqa: BLE001
            widgets.error(f"Could not queue the run: {e}")


# 2) An experiment: the chosen objectives, each with several seeds, on the dataset above.
st.subheader("Experiment: objectives × seeds, with intervals")
with st.form("experiment"):
    c = st.columns([2, 1, 1, 1])  # the objectives need room: their labels are long
    arms = c[0].multiselect("Objectives", OBJECTIVES, default=list(QUICK_ARMS), key="exp_objectives",
                            format_func=objectives.label,
                            help="Each objective is trained with every seed; the others are "
                                 "compared with the baseline (cross-entropy).")
    seeds = c[1].number_input("Seeds", value=3, step=1, key="exp_seeds",
                              help=f"{MIN_SEEDS_INTERVAL} to {MAX_SEEDS}: an interval needs at least "
                                   "two; 5 or more give usefully narrow ones.")
    exp_size = c[2].number_input("Training-set size", value=None, step=100, key="exp_train_size",
                                 placeholder=f"all {available}",
                                 help="Empty: the whole training set; else the same stratified "
                                      "subset for every objective of a seed.")
    exp_epochs = c[3].number_input("Epochs", value=None, step=1, key="exp_epochs",
                                   placeholder="reference",
                                   help="Empty: each objective's reference protocol (gradient "
                                        "loss 10, baseline 20, ...).")
    exp_evaluate = c[0].checkbox(
        "Corruptions and attacks", value=False, key="exp_evaluate",
        help="The same suite as a single run's, queued for each run once it is trained, behind "
             "any queued training: the Robustness page then gives every corruption and attack "
             "an interval over the seeds.")
    exp_frontier = c[1].checkbox(
        "Frontier: several strengths", value=False, key="exp_frontier",
        help="Each chosen objective that takes a strength (noise augmentation's σ, the penalties' "
             "λ) at every strength of its default grid ("
             + "; ".join(f"{objectives.label(o)} {', '.join(f'{v:g}' for v in g)}"
                         for o, g in frontier.DEFAULT_GRIDS.items())
             + f"), all at batch {frontier.DEFAULT_BATCH_SIZE} and the same epochs (empty: "
             f"{frontier.DEFAULT_EPOCHS}): one run per strength and seed. The Frontier page "
             "compares the objectives at equal clean accuracy.")
    queue_experiment = st.form_submit_button("Queue the experiment", disabled=not picked)
if queue_experiment:
    try:
        shared = dict(seeds=seeds, **picked.fields, train_size=exp_size, engine=engine,
                      evaluation=default_evaluation(picked.data.name) if exp_evaluate else None)
        if exp_frontier:
            spec = frontier.frontier_experiment(
                tuple(arms), epochs=exp_epochs or frontier.DEFAULT_EPOCHS, **shared)
        else:
            spec = ExperimentConfig(arms=tuple(arms), epochs=exp_epochs, **shared)
    except InvalidParameterError as e:
        widgets.error(f"Not queued: {form_message(e, EXPERIMENT_LABELS)}")
    else:
        try:
            experiment_id = client.submit_experiment(spec)
            st.success(f"Queued {'frontier' if exp_frontier else 'experiment'} "
                       f"{short_id(experiment_id)}: {spec.n_runs} runs, seed by seed. Its "
                       f"results build up on the {'Frontier' if exp_frontier else 'Robustness'} "
                       "page.")
        except Exception as e:  # noqa: BLE001
            widgets.error(f"Could not queue the experiment: {e}")


# 3) A strength search: Optuna picks one objective's strengths trial by trial.
st.subheader("Strength search: Optuna traces one objective's front")
with st.form("search"):
    c = st.columns([2, 1, 1, 1])
    takers = frontier.STRENGTH_OBJECTIVES
    search_objective = c[0].selectbox(
        "Objective", takers, index=takers.index("input_gradient"), key="search_objective",
        format_func=objectives.label,
        help="Its strength (λ or σ_train) is searched on a log scale over "
             + "; ".join(f"{objectives.label(o)} {lo:g} to {hi:g}"
                         for o, (lo, hi) in search.DEFAULT_RANGES.items()) + ".")
    trials = c[1].number_input("Trials", value=search.DEFAULT_TRIALS, step=1, key="search_trials",
                               help=f"2 to {search.MAX_TRIALS} runs, one after another: each "
                                    "trial's strength is chosen from every result before it.")
    search_size = c[2].number_input("Training-set size", value=None, step=100,
                                    key="search_train_size", placeholder=f"all {available}",
                                    help="Empty: the whole training set.")
    search_epochs = c[3].number_input("Epochs", value=frontier.DEFAULT_EPOCHS, step=1,
                                      key="search_epochs", help=f"1 to {MAX_EPOCHS}, every trial's "
                                      f"(batch {frontier.DEFAULT_BATCH_SIZE}, seed 0).")
    queue_search = st.form_submit_button("Start the search", disabled=not picked)
if queue_search:
    try:
        spec = search.SearchConfig(TrainConfig(
            objective=search_objective, **picked.fields, train_size=search_size,
            epochs=search_epochs, batch_size=frontier.DEFAULT_BATCH_SIZE, engine=engine),
            trials=trials)
    except InvalidParameterError as e:
        widgets.error(f"Not started: {form_message(e)}")
    else:
        try:
            search_id = searches.submit_search(spec)  # uploads are in the store already
            st.success(f"Started strength search {short_id(search_id)}: {spec.trials} trials of "
                       f"{objectives.label(spec.objective)}. Each trial shows on the Frontier "
                       "page (Show: Strength search) as it finishes.")
        except Exception as e:  # noqa: BLE001
            widgets.error(f"Could not start the search: {e}")


# 4) The live area: only this part refreshes, and only while something is queued or running.
if runs_store is not None:
    live.runs_area(runs_store)
    export.finished_runs(runs_store)
