"""Single runs side by side: under Gaussian noise (the σ slider, curves, each run against the
reference run, the image grid) and under the other perturbations (corruptions, attacks), with a
form that queues an evaluation for them."""
from __future__ import annotations

import streamlit as st

from gradloss import objectives

from gradloss.analysis import summary as results
from gradloss.core.errors import GradlossError, InvalidParameterError
from gradloss.core.evaluation import (DEFAULT_EVALUATED, EVALUATED, GAUSSIAN, PERTURBATIONS,
                                      HEADLINE_RADIUS, SEVERITIES, EvaluationConfig)
from gradloss.service import client
from gradloss.ui.forms import EVALUATION_LABELS, form_message
from gradloss.ui import charts, comparison, images, loaders, perturbation_views, widgets
from gradloss.ui.labels import run_labels, short_id


def _runs(ids, by_id) -> dict:
    return {i: by_id[i] for i in ids}


def perturbation_picker(col, table, ids) -> str:
    options = perturbation_views.available(table, ids) or [GAUSSIAN]
    if st.session_state.get("perturbation") not in options:
        st.session_state.perturbation = GAUSSIAN if GAUSSIAN in options else options[0]
    return col.selectbox("Perturbation", options, key="perturbation",
                         format_func=perturbation_views.label,
                         help="Gaussian noise is the run's own sweep; corruptions and attacks "
                              "run after it (or when queued below).")


@st.cache_data(ttl=300, max_entries=16)
def _undertrained(sweeps, runs: dict) -> list[str]:
    return comparison.undertrained_warnings(sweeps, runs)


def noise(slider_col, runs_store, ids, by_id, reference, sweeps) -> float:
    """The σ slider, the accuracy-versus-σ chart, the table against the reference run (naming
    what of a run's protocol differs from the reference's) and its sentences."""
    sigma = widgets.pick_sigma(slider_col, comparison.swept_sigmas(sweeps, ids))
    runs = _runs(ids, by_id)
    labels = run_labels(runs.values())
    st.plotly_chart(charts.comparison_figure(sweeps, runs, labels, sigma), key="robustness_chart")
    metrics = widgets.finished_metrics(runs_store.url, tuple(ids))
    table = comparison.comparison_table(runs, metrics, sweeps, sigma, reference)
    widgets.comparison_dataframe(table, sigma)
    sentence = comparison.comparison_summary(table, sigma, short_id(reference))
    if sentence:
        st.markdown(sentence)
    for warning in _undertrained(sweeps, runs):
        st.warning(warning, icon=":material/warning:")
    widgets.run_links(runs.values())
    st.download_button("Download the table (CSV)", charts.robustness_csv(sweeps, runs, labels),
                       file_name="robustness.csv", mime="text/csv")
    return sigma


def noise_grid(ids, by_id, sweeps, examples, sigma) -> None:
    st.subheader(f"Test images at σ = {sigma:g}")
    first = by_id[ids[0]]
    seed = int(sweeps[sweeps.run_id == ids[0]].seed.iloc[0])  # the sweep's noise: what it saw
    shown = {f"{objectives.label(by_id[i].objective)} {short_id(i)}": examples[i] for i in ids
             if not examples[i].empty and by_id[i].dataset == first.dataset}
    if not shown:
        st.info("No example predictions stored for these runs.")
        return
    try:
        x_test, class_names = widgets.test_images(first.dataset)
    except Exception as e:  # noqa: BLE001
        st.warning(f"Could not load the {first.dataset} test images: {e}")
        return
    captions = images.example_captions(shown, sigma, class_names)
    noisy = widgets.noisy_grid(first.dataset, tuple(i for i, _ in captions), sigma, seed)
    widgets.image_grid([(index, [image], caption)
                        for (index, caption), image in zip(captions, noisy)])
    st.caption("Bold: the true class. ✓/✗: each model's prediction on this noisy image, with "
               "its confidence.")


def perturbation(slider_col, name, table, rows, ids, by_id, reference, plans,
                 grid_examples) -> None:
    """The chosen perturbation's slider over its levels, curves, accuracies and image grid."""
    levels = perturbation_views.levels(table, ids, name)
    key = f"level_{name}"
    if st.session_state.get(key) not in levels:
        target = {"corruption": 3, "certified": HEADLINE_RADIUS}.get(PERTURBATIONS[name].kind, 0.1)
        st.session_state[key] = comparison.nearest(levels, target)
    title = {"severity": "Severity", "ε": "Attack budget ε (L∞)",
             "radius": "Certified radius (L2)"}[PERTURBATIONS[name].level_name]
    level = slider_col.select_slider(title, levels, key=key, format_func=lambda v: f"{v:g}")
    runs = _runs(ids, by_id)
    labels = run_labels(runs.values())
    st.plotly_chart(perturbation_views.perturbation_figure(table, runs, labels, name, level),
                    key="perturbation_chart")
    where = perturbation_views.format_level(name, level)
    ref = perturbation_views.accuracy_at(table, reference, name, level)
    cols = st.columns(min(len(ids), 4))
    for k, run_id in enumerate(ids):
        at = perturbation_views.accuracy_at(table, run_id, name, level)
        if at:
            delta = None if run_id == reference or not ref else \
                f"{(at[0] - ref[0]) * 100:+.2f} points vs reference"
            cols[k % len(cols)].metric(f"{labels[run_id]}, {where}", f"{at[0]:.2%}", delta)
    if PERTURBATIONS[name].kind == "certified":
        own = rows[(rows.perturbation == name) & rows.run_id.isin(ids)]
        st.caption(f"Certified accuracy: the share of {int(own.n_images.min())} test images (a "
                   "stratified subset) whose smoothed prediction is right and certified within "
                   "this L2 radius (randomized smoothing, Cohen et al. 2019).")
        return
    if PERTURBATIONS[name].kind == "attack":
        flags = {i: plans[i].masking_flags for i in ids if i in plans}
        for warning in perturbation_views.masking_warnings(flags, labels):
            st.warning(warning, icon=":material/warning:")
        own = rows[(rows.perturbation == name) & rows.run_id.isin(ids)]
        st.caption(f"Accuracy on {int(own.n_images.min())} attacked test images (a stratified "
                   "subset, the same for every run).")
    _perturbation_grid(name, level, ids, by_id, rows, grid_examples)


def _perturbation_grid(name, level, ids, by_id, rows, grid_examples) -> None:
    st.subheader(f"Test images, {PERTURBATIONS[name].label}, "
                 f"{perturbation_views.format_level(name, level)}")
    shown = [i for i in ids if not grid_examples[i].empty]
    if not shown:
        st.info("No example predictions stored for these runs under this perturbation.")
        return
    first_run = shown[0]
    examples = {f"{objectives.label(by_id[i].objective)} {short_id(i)}": grid_examples[i]
                for i in shown
                if by_id[i].dataset == by_id[first_run].dataset}
    try:
        x_test, class_names = widgets.test_images(by_id[first_run].dataset)
    except Exception as e:  # noqa: BLE001
        st.warning(f"Could not load the {by_id[first_run].dataset} test images: {e}")
        return
    captions = perturbation_views.grid_captions(examples, name, level, class_names)
    seed = int(rows[rows.run_id == first_run].seed.iloc[0])
    images = loaders.perturbed_grid(x_test, [i for i, _ in captions], name, level, seed,
                                    grid_examples[first_run])
    widgets.image_grid([(index, [img for img in pair if img is not None], caption)
                        for (index, caption), pair in zip(captions, images)])
    if PERTURBATIONS[name].kind == "attack":
        st.caption(f"Attacks: the adversarial image against the first model "
                   f"({short_id(first_run)}), then its perturbation (grey 0, white +ε, "
                   "black −ε). Each model's prediction is on the images attacked against it.")
    st.caption("Bold: the true class. ✓/✗: each model's prediction, with its confidence.")


@st.cache_data(ttl=300, max_entries=16)
def _summary_table(table, labels: dict, reference: str):
    """summary.comparison_table, cached: it does not change with σ, and a slider move redraws."""
    return results.comparison_table(table, labels, reference=reference)


def summary(table, ids, by_id, reference, plans) -> None:
    """All perturbations of the selected runs in one table, masking warnings, and a form that
    queues an evaluation for them."""
    st.subheader("All perturbations")
    names = run_labels([by_id[i] for i in ids])
    labels = {i: (names[i], f"{objectives.label(by_id[i].objective)} {short_id(i)}") for i in ids}
    st.dataframe(_summary_table(table, labels, reference), hide_index=True,
                 key="perturbation_summary")
    st.caption("Headline: accuracy at σ = 0.1 (noise), mean over severities 1–5 (corruptions), "
               "at ε = 0.1 (attacks: robust accuracy). AUC: accuracy averaged over the levels "
               "(normalised area under the curve). mCE: corruption error relative to the "
               "reference run, 1 = as robust, lower is better.")
    flags = {i: plans[i].masking_flags for i in ids if i in plans}
    for warning in perturbation_views.masking_warnings(flags, names):
        st.warning(warning, icon=":material/warning:")
    for run_id in ids:
        if run_id in plans:
            st.caption(f"{labels[run_id][1]} evaluation: "
                       f"{perturbation_views.plan_text(plans[run_id])}")
    with st.expander("Evaluate these runs under corruptions and attacks"):
        with st.form("evaluate"):
            names = st.multiselect("Perturbations", EVALUATED, default=DEFAULT_EVALUATED,
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
        widgets.error(form_message(e, EVALUATION_LABELS))  # nothing queued
        return
    queued = []
    for run_id in run_ids:
        try:
            client.evaluate(run_id, config)
            queued.append(short_id(run_id))
        except GradlossError as e:
            widgets.error(str(e))
    if queued:
        st.success(f"Queued the evaluation of {', '.join(queued)}; results appear here as the "
                   "worker stores them.")
