"""Experiment sections: the comparison over seeds (curves with bands, the table at σ, the
sentences, exports), its corruptions and attacks, and Home's latest experiment."""
from __future__ import annotations

import streamlit as st

from gradloss.analysis import experiments
from gradloss.core.evaluation import HEADLINE_EPS, HEADLINE_RADIUS, PERTURBATIONS
from gradloss.ui import experiment_views, perturbation_views, widgets
from gradloss.ui.comparison import nearest
from gradloss.ui.labels import short_id


def _finished(runs) -> tuple[str, ...]:
    return tuple(r.run_id for r in runs if r.status == "done")


def results(runs_store, experiment, runs):
    """The experiment's cached results, keyed by its finished runs and their evaluations."""
    done = _finished(runs)
    plans = tuple(sorted((i, p.status) for i, p in runs_store.evaluations.plans(done).items()))
    return widgets.experiment_results(runs_store.url, experiment.experiment_id,
                                      experiment.spec.reference, done, plans), plans


def comparison(runs_store, experiment) -> None:
    """The experiment's mean curves with bands, the table at σ, the sentences and exports."""
    chosen, spec = experiment.experiment_id, experiment.spec
    if spec is None:
        widgets.error(f"This experiment's spec cannot be read: {experiment.unreadable}")
        return
    runs = runs_store.runs.of_experiment(chosen)
    progress, text = experiment_views.progress_line(runs)
    found, plans = results(runs_store, experiment, runs)
    if progress.finished < progress.total:
        st.caption(f"{text}. Shown: the {found.n_seeds} seed(s) that every arm has finished.")
    if found.n_seeds < 2:
        st.info("The curves and intervals appear once every arm has finished two seeds "
                f"(seeds are paired). {text}.")
        return
    summary, sigmas = found.summary, found.sigmas
    sigma = widgets.pick_sigma(st, sigmas, key="experiment_sigma")
    show_seeds = st.checkbox("Show each seed's curve", key="show_seeds")
    st.plotly_chart(experiment_views.curve_figure(found.per_seed, summary, sigma, show_seeds),
                    key="experiment_chart")
    labels = experiment_views.arm_labels(summary.arm.unique())
    for sentence in experiments.sentences(summary, spec.reference, sigma, labels):
        st.markdown(f"**{sentence}**")
    for sentence in experiment_views.arm_protocol_differences(runs, spec.reference):
        st.warning(sentence, icon=":material/warning:")
    widgets.summary_dataframe(experiment_views.styled_at_level(summary, sigma))
    st.caption(f"Means over {found.n_seeds} seeds with 95 % Student t intervals; differences are "
               f"paired by seed, against the {spec.reference} arm. A difference is called ahead "
               "or behind, and coloured, only where its p-value adjusted for every comparison "
               f"this experiment reports ({found.summaries.family}, Benjamini–Hochberg) is below "
               "0.05; otherwise the data cannot tell the arms apart at this number of seeds.")
    with st.expander("Over all σ: area under accuracy versus σ (normalised to [0, 1])"):
        widgets.summary_dataframe(experiment_views.styled_at_level(summary, "auc"))
    files = experiments.exports(found.per_seed, summary)  # p and adjusted p in every table
    for col, (name, text_) in zip(st.columns(len(files)), files.items()):
        col.download_button(name, text_, file_name=f"{short_id(chosen)}-{name}",
                            mime="text/csv" if name.endswith(".csv") else "text/plain",
                            key=f"download_{name}")
    perturbations(found, plans)


def perturbations(found, plans) -> None:
    """The experiment's corruptions and attacks: every perturbation's headline with its interval,
    then one perturbation's mean curves, sentence and table at a level."""
    reference = found.reference
    if not plans:
        st.caption("This experiment measured Gaussian noise only. Tick *Corruptions and attacks* "
                   "in the experiment form on the Train page to measure them too, over the same "
                   "seeds.")
        return
    st.subheader("Corruptions and attacks, over the same seeds")
    per_seed = found.perturbations
    waiting = sum(status in ("queued", "running") for _, status in plans)
    if waiting:
        st.caption(f"{waiting} run(s) are still being evaluated; each point shows once every "
                   "paired run has it.")
    if per_seed.seed.nunique() < 2:
        st.info("The intervals appear once two seeds of every arm have been evaluated.")
        return
    labels = experiment_views.arm_labels(per_seed.arm.unique())
    widgets.summary_dataframe(experiment_views.styled_overview(found.summaries.headlines))
    st.caption("Each perturbation at its headline: robust accuracy at ε = 0.1 for attacks, the "
               "mean over severities for corruptions; means over seeds with 95 % Student t "
               f"intervals, differences paired by seed against the {reference} arm.")
    names = [n for n in PERTURBATIONS if n in set(per_seed.perturbation)]
    name = st.selectbox("Perturbation", names, key="experiment_perturbation",
                        format_func=perturbation_views.label)
    rows = per_seed[per_seed.perturbation == name].drop(columns="perturbation")
    summary = found.summaries.perturbations[name]
    level_name = PERTURBATIONS[name].level_name
    levels = sorted(float(v) for v in rows.level.unique())
    level = st.select_slider(level_name, options=levels, key=f"experiment_level_{name}",
                             value=nearest(levels, {"ε": HEADLINE_EPS, "radius": HEADLINE_RADIUS}
                                           .get(level_name, 3)),
                             format_func=lambda v: f"{v:g}")
    st.plotly_chart(experiment_views.curve_figure(
        rows, summary, level, level_col="level", level_name=level_name,
        x_title=f"{PERTURBATIONS[name].label}: {level_name}"), key="experiment_perturbation_chart")
    for sentence in experiments.sentences(summary, reference, level, labels, level_name):
        st.markdown(f"**{PERTURBATIONS[name].label}: {sentence}**")
    widgets.summary_dataframe(experiment_views.styled_at_level(summary, level))


def latest(runs_store, quick, gpu: bool) -> None:
    """Home: the newest experiment's progress, and once two seeds are paired, its sentence and
    table at the σ last chosen on the Robustness page."""
    try:
        [newest] = runs_store.experiments.list(limit=1) or [None]
        if newest is None or newest.spec is None:
            return
        runs = runs_store.runs.of_experiment(newest.experiment_id)
        found, _ = results(runs_store, newest, runs)
    except Exception as e:  # noqa: BLE001
        widgets.error(f"Could not read the experiments: {e}")
        return
    st.subheader("Latest experiment")
    _, text = experiment_views.progress_line(runs)
    st.markdown(f"{experiment_views.experiment_label(newest)}  \n{text}")
    if found.n_seeds < 2:
        st.info("The comparison appears once every objective has finished two seeds.")
        return
    sigma = nearest(found.sigmas, widgets.recall("sigma", 0.1))
    for sentence in experiments.sentences(found.summary, found.reference, sigma,
                                          experiment_views.arm_labels(found.summary.arm.unique())):
        st.markdown(f"**{sentence}**")
    for sentence in experiment_views.arm_protocol_differences(runs, found.reference):
        st.warning(sentence, icon=":material/warning:")
    widgets.summary_dataframe(experiment_views.styled_at_level(found.summary, sigma))
    if newest.spec == quick:
        from gradloss.ui.quick import quick_caveat
        st.caption(quick_caveat(quick, gpu))
    st.page_link("app_pages/robustness.py", label="Curves with intervals, every σ, exports",
                 icon=":material/show_chart:")
