"""Robustness: experiments first (mean accuracy versus noise σ over seeds, with intervals and the
difference to the reference arm); then single runs side by side, under Gaussian noise and the
other perturbations (corruptions, attacks) picked next to the slider."""
import numpy as np
import streamlit as st

from gradloss import data
from gradloss.ui import experiment_views, perturbation_views, views, widgets
from gradloss.analysis import experiments
from gradloss.core.errors import GradlossError, InvalidParameterError
from gradloss.perturbations import corruptions, gaussian
from gradloss.analysis import summary as results_summary
from gradloss.perturbations.family import (EVALUATED, GAUSSIAN, HEADLINE_EPS, PERTURBATIONS,
                                           SEVERITIES, EvaluationConfig)
from gradloss.perturbations.suite import image_from_bytes
from gradloss.service import client
from gradloss.service.store import runs as store


st.title("Robustness to input noise")


@st.cache_data(ttl=300)
def experiment_per_seed(db: str, experiment_id: str, done: tuple[str, ...]):
    """Per-seed sweeps of the complete pairs; `done` (finished run ids) keys the cache."""
    return store.RunStore(db).experiment_per_seed(experiment_id)


@st.cache_data(ttl=300)
def experiment_evaluations(db: str, experiment_id: str, done: tuple[str, ...], plans: tuple):
    """Per-seed corruptions and attacks of the pairs; finished runs and plans key the cache."""
    return store.RunStore(db).experiment_evaluations(experiment_id)


def experiment_perturbations(runs_store, chosen: str, spec: dict, runs) -> None:
    """The experiment's corruptions and attacks: every perturbation's headline with its interval,
    then one perturbation's mean curves, sentence and table at a level."""
    done = tuple(r.run_id for r in runs if r.status == "done")
    plans = tuple(sorted((i, p.status) for i, p in runs_store.evaluation_plans(done).items()))
    if not plans:
        st.caption("This experiment measured Gaussian noise only. Tick *Corruptions and attacks* in "
                   "the experiment form on the Train page to measure them too, over the same seeds.")
        return
    st.subheader("Corruptions and attacks, over the same seeds")
    per_seed = experiment_evaluations(runs_store.url, chosen, done, plans)
    waiting = sum(status in ("queued", "running") for _, status in plans)
    if waiting:
        st.caption(f"{waiting} run(s) are still being evaluated; each point shows once every "
                   "paired run has it.")
    if per_seed.seed.nunique() < 2:
        st.info("The intervals appear once two seeds of every arm have been evaluated.")
        return
    reference = spec["reference"]
    labels = experiment_views.arm_labels(per_seed.arm.unique())
    headlines = results_summary.headline_summary(per_seed, reference)
    st.dataframe(experiment_views.styled_overview(headlines), hide_index=True)
    st.caption("Each perturbation at its headline: robust accuracy at ε = 0.1 for attacks, the "
               "mean over severities for corruptions; means over seeds with 95 % Student t "
               f"intervals, differences paired by seed against the {reference} arm.")
    names = [n for n in PERTURBATIONS if n in set(per_seed.perturbation)]
    name = st.selectbox("Perturbation", names, key="experiment_perturbation",
                        format_func=perturbation_views.label)
    rows = per_seed[per_seed.perturbation == name].drop(columns="perturbation")
    summary = experiments.summary_table(rows.rename(columns={"level": "sigma"}), reference)
    level_name = PERTURBATIONS[name].level_name
    levels = sorted(float(v) for v in rows.level.unique())
    level = st.select_slider(level_name, options=levels, key=f"experiment_level_{name}",
                             value=views.nearest(levels, HEADLINE_EPS if level_name == "ε" else 3),
                             format_func=lambda v: f"{v:g}")
    st.plotly_chart(experiment_views.curve_figure(
        rows, summary, level, level_col="level", level_name=level_name,
        x_title=f"{PERTURBATIONS[name].label}: {level_name}"), key="experiment_perturbation_chart")
    for sentence in experiments.sentences(summary, reference, level, labels, level_name):
        st.markdown(f"**{PERTURBATIONS[name].label}: {sentence}**")
    st.dataframe(experiment_views.styled_at_level(summary, level), hide_index=True)


def experiments_section() -> None:
    """Pick an experiment; its mean curves with bands, the table at σ, the sentences, exports."""
    picked = widgets.pick_experiment(
        "experiment", "No experiments yet. An experiment trains each objective with several seeds, "
        "so a difference comes with its interval: submit one on the Train page, or click Quick "
        "compare on the home page.")
    if picked is None:
        return
    runs_store, experiment = picked
    chosen, spec = experiment.experiment_id, experiment.spec
    runs = runs_store.experiment_runs(chosen)
    progress, text = experiment_views.progress_line(runs)
    per_seed = experiment_per_seed(runs_store.url, chosen,
                                   tuple(r.run_id for r in runs if r.status == "done"))
    n_seeds = per_seed.seed.nunique()
    if progress.finished < progress.total:
        st.caption(f"{text}. Shown: the {n_seeds} seed(s) that every arm has finished.")
    if n_seeds < 2:
        st.info("The curves and intervals appear once every arm has finished two seeds "
                f"(seeds are paired). {text}.")
        return
    summary = experiments.summary_table(per_seed, spec["reference"])
    sigmas = sorted(float(s) for s in per_seed.sigma.unique())
    if st.session_state.get("experiment_sigma") not in sigmas:
        st.session_state.experiment_sigma = views.nearest(sigmas, 0.1)
    sigma = st.select_slider("Noise σ", options=sigmas, key="experiment_sigma",
                             format_func=lambda s: f"{s:g}",
                             help="Standard deviation of the Gaussian noise on each pixel.")
    show_seeds = st.checkbox("Show each seed's curve", key="show_seeds")
    st.plotly_chart(experiment_views.curve_figure(per_seed, summary, sigma, show_seeds),
                    key="experiment_chart")
    labels = experiment_views.arm_labels(summary.arm.unique())
    for sentence in experiments.sentences(summary, spec["reference"], sigma, labels):
        st.markdown(f"**{sentence}**")
    st.dataframe(experiment_views.styled_at_level(summary, sigma), hide_index=True)
    st.caption(f"Means over {n_seeds} seeds with 95 % Student t intervals; differences are paired by "
               f"seed, against the {spec['reference']} arm, and coloured only where the interval "
               "excludes 0. An interval that covers 0 means the data cannot tell the arms apart at "
               "this number of seeds; more seeds narrow it.")
    with st.expander("Over all σ: area under accuracy versus σ (normalised to [0, 1])"):
        st.dataframe(experiment_views.styled_at_level(summary, "auc"), hide_index=True)
    files = experiments.exports(per_seed, summary)
    cols = st.columns(len(files))
    for col, (name, text_) in zip(cols, files.items()):
        col.download_button(name, text_, file_name=f"{views.short_id(chosen)}-{name}",
                            mime="text/csv" if name.endswith(".csv") else "text/plain",
                            key=f"download_{name}")
    experiment_perturbations(runs_store, chosen, spec, runs)


@st.cache_data(ttl=300)
def sweep_tables(db: str, run_ids: tuple[str, ...]):
    runs = store.RunStore(db)  # finished runs: their sweeps no longer change
    return runs.robustness(list(run_ids)), {i: runs.examples(i) for i in run_ids}


@st.cache_data(ttl=3600)
def test_images(dataset: str):
    """(x_test, class names) of a dataset, for the image grid."""
    d = data.load_dataset(dataset, train_size=None)
    return d.x_test, d.class_names


# -- Perturbations beyond Gaussian noise: picker, curves, grid, summary, queueing -------------
def evaluation_tables(runs, ids, sweeps):
    """(results in summary.RESULT_COLUMNS, evaluation rows, {run_id: plan}, {run_id: grid
    examples}); not cached: an evaluation may still be storing rows."""
    evaluations = runs.evaluations(list(ids))
    return (results_summary.results(sweeps, evaluations), evaluations, runs.evaluation_plans(ids),
            {i: runs.evaluation_examples(i) for i in ids})


def perturbation_picker(col, results, ids) -> str:
    options = perturbation_views.available(results, ids) or [GAUSSIAN]
    if st.session_state.get("perturbation") not in options:
        st.session_state.perturbation = GAUSSIAN if GAUSSIAN in options else options[0]
    return col.selectbox("Perturbation", options, key="perturbation",
                         format_func=perturbation_views.label,
                         help="Gaussian noise is the run's own sweep; corruptions and attacks "
                              "run after it (or when queued below).")


def show_perturbation(slider_col, name, results, evaluations, ids, by_id, reference, plans,
                      grid_examples) -> None:
    """The chosen perturbation's slider over its levels, curves, accuracies and image grid."""
    levels = perturbation_views.levels(results, ids, name)
    key = f"level_{name}"
    if st.session_state.get(key) not in levels:
        target = 3 if PERTURBATIONS[name].kind == "corruption" else 0.1
        st.session_state[key] = views.nearest(levels, target)
    title = {"severity": "Severity", "ε": "Attack budget ε (L∞)"}[PERTURBATIONS[name].level_name]
    level = slider_col.select_slider(title, levels, key=key,
                                     format_func=lambda v: f"{v:g}")
    labels = {i: (views.run_label(by_id[i]), by_id[i].objective) for i in ids}
    st.plotly_chart(perturbation_views.perturbation_figure(results, labels, name, level),
                    key="perturbation_chart")
    where = perturbation_views.format_level(name, level)
    ref = perturbation_views.accuracy_at(results, reference, name, level)
    cols = st.columns(min(len(ids), 4))
    for k, run_id in enumerate(ids):
        at = perturbation_views.accuracy_at(results, run_id, name, level)
        if at:
            delta = None if run_id == reference or not ref else \
                f"{(at[0] - ref[0]) * 100:+.2f} points vs reference"
            cols[k % len(cols)].metric(f"{by_id[run_id].objective} {views.short_id(run_id)}, "
                                       f"{where}", f"{at[0]:.2%}", delta)
    if PERTURBATIONS[name].kind == "attack":
        flags = {i: plans[i].masking_flags for i in ids if i in plans}
        for warning in perturbation_views.masking_warnings(flags, labels):
            st.warning(warning, icon=":material/warning:")
        rows = evaluations[(evaluations.perturbation == name) & evaluations.run_id.isin(ids)]
        st.caption(f"Accuracy on {int(rows.n_images.min())} attacked test images (a stratified "
                   "subset, the same for every run).")
    perturbation_grid(name, level, ids, by_id, evaluations, grid_examples)


def perturbation_grid(name, level, ids, by_id, evaluations, grid_examples) -> None:
    st.subheader(f"Test images, {PERTURBATIONS[name].label}, "
                 f"{perturbation_views.format_level(name, level)}")
    shown = [i for i in ids if not grid_examples[i].empty]
    if not shown:
        st.info("No example predictions stored for these runs under this perturbation.")
        return
    first_run, first = shown[0], grid_examples[shown[0]]
    examples = {f"{by_id[i].objective} {views.short_id(i)}": grid_examples[i] for i in shown
                if by_id[i].dataset == by_id[first_run].dataset}
    try:
        x_test, class_names = test_images(by_id[first_run].dataset)
    except Exception as e:  # noqa: BLE001
        st.warning(f"Could not load the {by_id[first_run].dataset} test images: {e}")
        return
    captions = perturbation_views.grid_captions(examples, name, level, class_names)
    rows = first[(first.perturbation == name) & np.isclose(first.level, level)].set_index("index")
    seed = int(evaluations[evaluations.run_id == first_run].seed.iloc[0])
    grid = st.columns(6)
    for k, (index, caption) in enumerate(captions):
        with grid[k % 6]:
            if PERTURBATIONS[name].kind == "corruption":
                st.image(views.upscale(corruptions.corrupt(
                    x_test[index:index + 1], name, int(level), seed=seed, offset=index)[0]),
                    width=112)
            elif index in rows.index and rows.image[index] is not None:
                adv = image_from_bytes(rows.image[index], x_test.shape[1:])
                delta = adv - x_test[index]
                st.image(views.upscale(adv), width=112)
                st.image(views.upscale(0.5 + delta / (2 * max(level, 1e-12))), width=112)
            st.caption(f"#{index} · {caption}")
    if PERTURBATIONS[name].kind == "attack":
        st.caption(f"Attacks: the adversarial image against the first model ({first_run[-6:]}), "
                   "then its perturbation (grey 0, white +ε, black −ε). Each model's prediction "
                   "is on the images attacked against it.")
    st.caption("Bold: the true class. ✓/✗: each model's prediction, with its confidence.")


def perturbation_summary(results, ids, by_id, reference, plans) -> None:
    """All perturbations of the selected runs in one table, masking warnings, and a form that
    queues an evaluation for them."""
    st.subheader("All perturbations")
    labels = {i: (views.run_label(by_id[i]), f"{by_id[i].objective} {views.short_id(i)}")
              for i in ids}
    table = perturbation_views.summary_table(results, labels, reference=reference)
    st.dataframe(table, hide_index=True, key="perturbation_summary")
    st.caption("Headline: accuracy at σ = 0.1 (noise), mean over severities 1–5 (corruptions), "
               "at ε = 0.1 (attacks: robust accuracy). AUC: accuracy averaged over the levels "
               "(normalised area under the curve). mCE: corruption error relative to the "
               "reference run, 1 = as robust, lower is better.")
    flags = {i: plans[i].masking_flags for i in ids if i in plans}
    for warning in perturbation_views.masking_warnings(flags, labels):
        st.warning(warning, icon=":material/warning:")
    for run_id in ids:
        if run_id in plans:
            st.caption(f"{labels[run_id][1]} evaluation: "
                       f"{perturbation_views.plan_text(plans[run_id])}")
    with st.expander("Evaluate these runs under corruptions and attacks"):
        with st.form("evaluate"):
            names = st.multiselect("Perturbations", EVALUATED, default=EVALUATED,
                                   key="evaluate_names", format_func=perturbation_views.label)
            c = st.columns(3)
            severities = c[0].multiselect("Severities", SEVERITIES, default=SEVERITIES,
                                          key="evaluate_severities")
            eps_text = c[1].text_input("Attack ε", "0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3",
                                       key="evaluate_eps")
            steps = c[2].number_input("PGD steps", value=10, step=1, key="evaluate_steps")
            go = st.form_submit_button("Queue the evaluation")
        if go:
            queue_evaluation(list(ids), names, severities, eps_text, steps)


def queue_evaluation(run_ids, names, severities, eps_text, steps) -> None:
    try:
        config = EvaluationConfig(perturbations=tuple(names), severities=tuple(severities),
                                  epsilons=perturbation_views.parse_floats(eps_text),
                                  steps=steps)
    except InvalidParameterError as e:
        st.error(str(e))  # nothing queued
        return
    queued = []
    for run_id in run_ids:
        try:
            client.evaluate(run_id, config)
            queued.append(views.short_id(run_id))
        except GradlossError as e:
            st.error(str(e))
    if queued:
        st.success(f"Queued the evaluation of {', '.join(queued)}; results appear here as the "
                   "worker stores them.")


experiments_tab, single_tab = st.tabs(["Experiments", "Single runs"])
with experiments_tab:
    experiments_section()
with single_tab:
    try:
        runs_store = store.RunStore.default()
        done = runs_store.list_runs(status="done", limit=200)
    except Exception as e:  # noqa: BLE001
        st.error(f"Could not read the run store: {e}")
        st.stop()
    if not done:
        if runs_store.list_runs(status=("queued", "running"), limit=1):
            st.info("Runs are queued or training: their robustness sweep is stored when they finish. "
                    "Follow them on the Train page.")
            st.stop()
        st.info("No finished runs yet. Train models of the objectives to compare (Train page, or Quick "
                "compare on the home page); their accuracy-versus-noise curves appear here.")
        st.stop()

    # 1) Which runs: any finished runs, several at once; the newest of each objective by default.
    by_id = {r.run_id: r for r in done}
    ids = tuple(widgets.pick_runs(
        by_id, "compare_runs", [r.run_id for r in views.latest_per_objective(done).values()],
        help="Any finished runs, of any objectives: one curve each, in its objective's colour. By "
             "default the newest run of each objective on the newest run's dataset."))
    if not ids:
        st.info("Pick one or more runs above.")
        st.stop()
    picked = {i: by_id[i] for i in ids}
    reference = st.selectbox("Reference run", ids, index=ids.index(views.default_reference(picked.values())),
                             format_func=lambda i: views.run_label(by_id[i]), key="reference_run",
                             help="Differences at σ are taken against this run (default: the newest "
                                  "cross-entropy baseline among those picked).")
    try:
        sweeps, examples = sweep_tables(runs_store.url, ids)
    except Exception as e:  # noqa: BLE001
        st.error(f"Could not read the robustness results: {e}")
        st.stop()
    missing = [i for i in ids if sweeps[sweeps.run_id == i].empty]
    if missing:
        st.warning(f"Run{'s' * (len(missing) > 1)} {', '.join(views.short_id(i) for i in missing)} "
                   "have no robustness sweep stored (cancelled before the sweep, or trained by an older "
                   "version). Train again to get one.")
    sigmas = views.swept_sigmas(sweeps, [i for i in ids if i not in missing])
    if not sigmas:
        st.stop()
    if len({r.dataset for r in picked.values()}) > 1:
        st.warning("These runs were trained on different datasets, so their accuracies are not comparable.")

    results, evaluations, plans, grid_examples = evaluation_tables(runs_store, ids, sweeps)
    pick_col, slider_col = st.columns([1, 3])
    perturbation = perturbation_picker(pick_col, results, ids)
    if perturbation != GAUSSIAN:
        show_perturbation(slider_col, perturbation, results, evaluations, ids, by_id, reference, plans,
                          grid_examples)
        perturbation_summary(results, ids, by_id, reference, plans)
        st.stop()

    # 2) The σ slider, the chart and each run's accuracy at σ against the reference.
    if st.session_state.get("sigma") not in sigmas:
        st.session_state.sigma = views.nearest(sigmas, st.session_state.get("chosen_sigma", 0.1))
    sigma = slider_col.select_slider("Noise σ", options=sigmas, key="sigma", format_func=lambda s: f"{s:g}",
                             help="Standard deviation of the Gaussian noise on each pixel (pixels in [0, 1]).")
    st.session_state.chosen_sigma = sigma  # the home page shows the comparison at this σ
    labels = {i: (views.run_label(r), r.objective) for i, r in picked.items()}
    st.plotly_chart(views.comparison_figure(sweeps, labels, sigma), key="robustness_chart")
    with st.spinner("Reading metrics…"):
        metrics = runs_store.metrics(list(ids))
    table = views.comparison_table(picked, metrics, sweeps, sigma, reference)
    widgets.comparison_dataframe(table, sigma)
    summary = views.comparison_summary(table, sigma, views.short_id(reference))
    if summary:
        st.markdown(summary)
    st.download_button("Download the table (CSV)", views.robustness_csv(sweeps, labels),
                       file_name="robustness.csv", mime="text/csv")
    perturbation_summary(results, ids, by_id, reference, plans)

    # 3) A few test images with this noise and each model's prediction.
    st.subheader(f"Test images at σ = {sigma:g}")
    shown = [i for i in ids if i not in missing]
    first = by_id[shown[0]]
    seed = int(sweeps[sweeps.run_id == shown[0]].seed.iloc[0])  # the sweep's noise seed: the same images it saw
    examples = {f"{r.objective} {views.short_id(i)}": examples[i] for i, r in picked.items()
                if not examples[i].empty and r.dataset == first.dataset}
    if not examples:
        st.info("No example predictions stored for these runs.")
        st.stop()
    try:
        x_test, class_names = test_images(first.dataset)
    except Exception as e:  # noqa: BLE001
        st.warning(f"Could not load the {first.dataset} test images: {e}")
        st.stop()
    captions = views.example_captions(examples, sigma, class_names)
    images = gaussian.noisy_images(x_test, [i for i, _ in captions], sigma, seed=seed)
    grid = st.columns(6)
    for k, ((index, caption), image) in enumerate(zip(captions, images)):
        with grid[k % 6]:
            st.image(views.upscale(image), width=112)
            st.caption(f"#{index} · {caption}")
    st.caption("Bold: the true class. ✓/✗: each model's prediction on this noisy image, with its confidence.")
