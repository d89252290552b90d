"""Streamlit pieces every page shares: the store (or why it cannot be read), cached reads of
finished results, selections that stay as the user set them, the experiment and run pickers,
the comparison table, links to run pages.

Selections (the picked runs, the reference run, σ) live in session-state keys of their own
(`remember`), not only in their widgets' keys: Streamlit forgets a widget's value when a run of
the page does not draw it (another page, or an early stop while nothing is picked), and a
selection must survive both. Only a choice the user made is remembered; until then a default
applies, recomputed as the runs change.

The figures and tables themselves are built without Streamlit (`charts`, `comparison`,
`run_table`, `experiment_views`, `perturbation_views`, `loaders`); panels compose them.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from gradloss.service.store import Store
from gradloss.service.urls import scrub_environment
from gradloss.ui import comparison, experiment_views, images, loaders, search_views
from gradloss.ui.labels import run_labels

MEMORY = "chosen:"  # session-state prefix of remembered selections
RUN_PAGE = "app_pages/run.py"


def error(message) -> None:
    """A red message; a password of the store's or the queue's URL in it (a driver's words
    quoted in an exception) is masked."""
    st.error(scrub_environment(message))


def store() -> Store | None:
    """The run store, or None after showing why it cannot be read."""
    try:
        return Store.default()
    except Exception as e:  # noqa: BLE001  (a message naming the setting, password masked)
        error(f"Could not read the run store: {e}")
        return None


@st.cache_data(ttl=300)
def experiment_results(url: str, experiment_id: str, reference: str, done: tuple[str, ...],
                       plans: tuple = ()):
    """loaders.experiment_results; the finished run ids and their evaluation plans' states key
    the cache."""
    return loaders.experiment_results(Store(url), experiment_id, reference)


@st.cache_data(ttl=300)
def sweeps(url: str, run_ids: tuple[str, ...]):
    """loaders.sweeps of finished runs (their sweeps no longer change)."""
    return loaders.sweeps(Store(url), run_ids)


@st.cache_data(ttl=300)
def finished_metrics(url: str, run_ids: tuple[str, ...]):
    """Metrics of finished runs (their curves no longer change)."""
    return Store(url).results.metrics(list(run_ids))


@st.cache_data(ttl=60)
def perturbation_results(url: str, run_ids: tuple[str, ...], plans: tuple):
    """loaders.perturbation_results of finished runs; their evaluation plans' states (`plans`)
    key the cache, so a new evaluation's rows show once stored."""
    store = Store(url)
    return loaders.perturbation_results(store, run_ids, loaders.sweeps(store, run_ids)[0])


@st.cache_resource(ttl=3600)
def test_images(dataset: str):
    """(x_test, class names) of a dataset, for the image grids: one copy shared by every
    session (read only), not a copy per read as st.cache_data would hand out."""
    return loaders.test_images(dataset)


@st.cache_data(ttl=3600, max_entries=64)
def noisy_grid(dataset: str, indices: tuple[int, ...], sigma: float, seed: int):
    """loaders.noisy_grid of a dataset's test images."""
    return loaders.noisy_grid(test_images(dataset)[0], list(indices), sigma, seed)


def remember(key: str) -> None:
    """A widget's on_change: keep the user's choice under MEMORY + key, beyond the widget."""
    st.session_state[MEMORY + key] = st.session_state[key]


def recall(key: str, default=None):
    """The user's remembered choice for `key`, or `default`."""
    return st.session_state.get(MEMORY + key, default)


def _restore(key: str, value) -> None:
    """Set the widget `key` (drawn next) to `value`: the remembered choice or the default."""
    st.session_state[key] = value


def _pick_record(label: str, key: str, load, id_of, label_of, what: str, empty: str):
    """The record picked in a selectbox among those load() lists (newest first), remembered
    under `key`; None after showing `empty` (none yet) or why they could not be read."""
    try:
        listed = {id_of(r): r for r in load()}
    except Exception as e:  # noqa: BLE001
        error(f"Could not read the {what}: {e}")
        return None
    if not listed:
        st.info(empty)
        return None
    _restore(key, recall(key) if recall(key) in listed else next(iter(listed)))
    chosen = st.selectbox(label, list(listed), key=key, on_change=remember, args=(key,),
                          format_func=lambda i: label_of(listed[i]))
    return listed[chosen]


def pick_experiment(runs_store: Store, key: str, empty: str):
    """The experiment picked in a selectbox (newest first), or None after showing `empty`."""
    return _pick_record("Experiment", key, lambda: runs_store.experiments.list(limit=100),
                        lambda e: e.experiment_id, experiment_views.experiment_label,
                        "experiments", empty)


def pick_search(runs_store: Store, key: str, empty: str):
    """The strength search picked in a selectbox (newest first), or None after showing `empty`."""
    return _pick_record("Strength search", key, runs_store.searches.list,
                        lambda s: s.search_id, search_views.search_label, "strength searches",
                        empty)


def pick_runs(by_id: dict, key: str, defaults, help: str) -> list[str]:
    """A multiselect of the runs in `by_id`: the user's last choice (its runs still in the
    store), else `defaults`."""
    chosen = recall(key)
    _restore(key, [i for i in chosen if i in by_id] if chosen is not None else list(defaults))
    labels = run_labels(by_id.values())
    return st.multiselect("Runs", list(by_id), key=key, on_change=remember, args=(key,),
                          format_func=labels.get, help=help)


def pick_reference(ids, by_id: dict, key: str = "reference_run") -> str:
    """The reference run among `ids`: the user's choice while it is picked, else the newest
    baseline among them (comparison.default_reference)."""
    chosen = recall(key)
    _restore(key, chosen if chosen in ids else
             comparison.default_reference([by_id[i] for i in ids]))
    labels = run_labels([by_id[i] for i in ids])
    return st.selectbox("Reference run", list(ids), key=key, on_change=remember, args=(key,),
                        format_func=labels.get,
                        help="Differences at σ are taken against this run (default: the newest "
                             "cross-entropy baseline among those picked). It stays as you set "
                             "it while you change the picked runs.")


def pick_sigma(container, sigmas: list[float], key: str = "sigma") -> float:
    """The σ slider over `sigmas`: the user's σ (the nearest swept one), else 0.1's nearest.
    The choice is shared by every page (Home shows its comparison at it)."""
    _restore(key, comparison.nearest(sigmas, recall("sigma", 0.1)))
    return container.select_slider(
        "Noise σ", options=sigmas, key=key, format_func=lambda s: f"{s:g}",
        on_change=lambda: st.session_state.__setitem__(MEMORY + "sigma", st.session_state[key]),
        help="Standard deviation of the Gaussian noise on each pixel (pixels in [0, 1]).")


def comparison_dataframe(table: pd.DataFrame, sigma: float, key: str | None = None) -> None:
    """comparison.comparison_table, each number column in its format; the protocol column only
    when some run differs."""
    hidden = [] if table[comparison.DIFFERS].astype(bool).any() else [comparison.DIFFERS]
    st.dataframe(table.drop(columns=hidden + ["objective"]), hide_index=True, key=key,
                 column_config={
                     **{column: st.column_config.NumberColumn(format=fmt)
                        for column, fmt in comparison.comparison_formats(sigma).items()},
                     comparison.DIFFERS: st.column_config.TextColumn(
                         help="What of this run's protocol (dataset and size, epochs, batch, "
                              "learning rate, engine) differs from the reference run's: its "
                              "difference is then not the objective's alone.")})


def run_links(runs, label: str = "Run pages") -> None:
    """A link to each run's page, in a row of small buttons."""
    runs = list(runs)
    if not runs:
        return
    labels = run_labels(runs, status=False)
    with st.expander(label):
        for run in runs:
            st.page_link(RUN_PAGE, label=labels[run.run_id], query_params={"id": run.run_id},
                         icon=":material/open_in_new:")


def image_grid(items: list[tuple[int, list, str]], columns: int = 6) -> None:
    """A grid of test images: (index, [images], caption) each, images drawn 4x up."""
    grid = st.columns(columns)
    for k, (index, pictures, caption) in enumerate(items):
        with grid[k % columns]:
            for image in pictures:
                st.image(images.upscale(image), width=112)
            st.caption(f"#{index} · {caption}")


SUMMARY_HELP = {
    "P(improve)": "Probability of improvement (as rliable reports it): how often a run of this "
                  "arm is more accurate than a run of the reference arm, over every pair of "
                  "their seeds; 0.5 means no better and no worse.",
    "difference, points [95 % CI]": "Mean difference to the reference arm in percentage "
                                    "points, paired by seed, with its 95 % Student t interval; "
                                    "coloured only where the interval excludes 0.",
}


def summary_dataframe(styled, key: str | None = None) -> None:
    """An experiment's table at one level (experiment_views.styled_at_level or
    styled_overview), its columns explained on hover."""
    st.dataframe(styled, hide_index=True, key=key, column_config={
        name: st.column_config.Column(help=text) for name, text in SUMMARY_HELP.items()})
