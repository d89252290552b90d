"""Strength searches with Optuna: its study lives in the store's own database, its trials are
ordinary runs on the worker(s), and nothing is lost when a worker dies.

A search (`core.search.SearchConfig`) asks Optuna for a strength, queues a run at it, and tells
Optuna the run's two values (clean accuracy, accuracy under noise at the search's σ, both
maximised, read back from the run's stored noise sweep) when it is done; Optuna's multi-objective
TPE then proposes the next strength, so the trials trace the objective's front.

All state is in the database: the study by Optuna's RDB storage (its own tables beside the
store's, on the same SQLite file or PostgreSQL database), the trials' runs in the store, each
trial's run id on the trial. `advance` reads that state and does what is due, so it can run
anywhere, any number of times:
- a trial whose run is done is told its values; one whose run failed or was cancelled is told
  it failed (it still counts towards the search's trials, so a strength that always diverges
  cannot loop);
- while fewer than `trials` runs were asked and fewer than `parallel` are in flight, a new trial
  is asked and its run queued.
The worker calls it as soon as it has trained a trial's run, and every beat for any search with
room for more trials (which also covers a worker that died between training a run and telling
Optuna). A worker killed mid-trial loses nothing: its run is requeued and resumes from its
checkpoint (`consumer.recover_lost_runs`), and the trial is told once it is done. A lease on the
search's row keeps two workers from asking for the same slot.

The sampler is rebuilt at every ask, seeded by (search seed, trials so far): the strengths a
search proposes depend on its seed and on the results it was told, not on which process asked.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from functools import cache

import optuna
from optuna.trial import TrialState

from gradloss.analysis.summary import accuracy_at
from gradloss.core.search import SearchConfig
from gradloss.data import submission_data_dir
from gradloss.service import client, tasks
from gradloss.service.store import Store
from gradloss.service.store.database import driver_url
from gradloss.service.uploads import upload

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)  # a trial per line is the worker log's noise

LEASE_S = 60.0        # how long one advance may hold a search (it takes well under a second)
RUN_ID = "run_id"     # the trial's user attribute naming its run
DIRECTIONS = ("maximize", "maximize")  # clean accuracy, accuracy under noise at the search's σ


@cache
def storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage on the store's database at `url` (one per URL and process). SQLite
    waits for a lock as the store does, instead of failing at once."""
    url = driver_url(url)
    kwargs = {"connect_args": {"timeout": 30}} if url.get_backend_name() == "sqlite" else {}
    return optuna.storages.RDBStorage(url.render_as_string(hide_password=False),
                                      engine_kwargs=kwargs)


def _sampler(spec: SearchConfig, told: int) -> optuna.samplers.BaseSampler:
    """Multi-objective TPE, seeded by the search's seed and the number of trials so far; its
    first few trials are random (half the trials, at most five) to spread over the range."""
    return optuna.samplers.TPESampler(seed=spec.train.seed * 100_003 + told,
                                      n_startup_trials=max(2, min(5, spec.trials // 2)),
                                      constant_liar=spec.parallel > 1)


def study(store: Store, search_id: str) -> optuna.Study:
    """The search's Optuna study (for reading: `trials`, `best_trials`; `advance` sets the
    sampler before it asks)."""
    # Created if missing: its submitter may have stopped between recording the search and this
    return optuna.create_study(study_name=search_id, storage=storage(store.url),
                               directions=list(DIRECTIONS), load_if_exists=True)


def submit_search(spec: SearchConfig, store: Store | None = None, *,
                  data_dir: str | None = None, architecture_path: str | None = None) -> str:
    """Record the search, create its study and queue its first `parallel` trials; returns its
    id. `data_dir`: a file dataset's file or folder (built-ins: the folder found now);
    `architecture_path`: a .keras architecture's file. Both go into the store first, so every
    trial, whichever process asks it, trains on what was submitted."""
    store = store or Store.default()
    tasks.check_queue()  # an unreachable queue fails here, before anything is recorded
    data_dir = data_dir if data_dir is not None else submission_data_dir(spec.train.dataset)
    upload(replace(spec.plan(spec.low, data_dir), architecture_path=architecture_path), store)
    search_id = store.searches.create(spec)
    advance(store, search_id, data_dir=data_dir)  # creates the study, asks the first trials
    return search_id


def values(store: Store, run_id: str, sigma: float) -> tuple[float, float] | None:
    """(clean accuracy, accuracy at `sigma`) from the run's stored noise sweep; None if either
    is missing."""
    sweep = store.results.robustness(run_id)
    clean, noisy = (accuracy_at(sweep, run_id, level) for level in (0.0, sigma))
    if clean is None or noisy is None:
        return None
    return clean[0], noisy[0]


def _run_of(trial, runs: list) -> str | None:
    """The trial's run: the id on the trial, else a run named after it (its asker stopped
    between queueing the run and writing the id)."""
    if RUN_ID in trial.user_attrs:
        return trial.user_attrs[RUN_ID]
    prefix = f"trial {trial.number}:"
    return next((r.run_id for r in runs if (r.arm or "").startswith(prefix)), None)


def advance(store: Store, search_id: str, data_dir: str | None = None) -> dict | None:
    """Tell Optuna what finished and queue what is due (see the module's docstring); returns
    {'told': n, 'asked': n, 'finished': bool}, or None if another process holds the search."""
    record = store.searches.get(search_id)
    spec = record.spec
    if spec is None or record.finished_at is not None:
        return {"told": 0, "asked": 0, "finished": record.finished_at is not None}
    until = store.searches.lease(search_id, LEASE_S)
    if until is None:
        return None
    try:
        return _advance(store, search_id, spec, data_dir)
    finally:
        store.searches.release(search_id, until)


def _advance(store: Store, search_id: str, spec: SearchConfig, data_dir: str | None) -> dict:
    found = study(store, search_id)
    runs = store.runs.of_search(search_id)
    by_id = {r.run_id: r for r in runs}
    told = asked = 0
    for trial in found.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run_id = _run_of(trial, runs)
        run = by_id.get(run_id)
        if run is not None and run.status in ("queued", "running"):
            continue
        scores = values(store, run_id, spec.sigma) if run is not None and run.status == "done" \
            else None
        if scores is None:  # failed, cancelled, deleted, never queued, or no sweep stored
            found.tell(trial.number, state=TrialState.FAIL)
            log.warning("search %s: trial %d failed (its run %s is %s)", search_id, trial.number,
                        run_id, "missing" if run is None else run.status)
        else:
            found.tell(trial.number, list(scores))
            log.info("search %s: trial %d (%s) clean %.4f, at σ=%g %.4f", search_id,
                     trial.number, run.arm, scores[0], spec.sigma, scores[1])
        told += 1
    trials = found.get_trials(deepcopy=False)
    with_runs = sum(1 for t in trials if RUN_ID in t.user_attrs)
    in_flight = sum(1 for t in trials if t.state == TrialState.RUNNING)
    if data_dir is None:
        data_dir = runs[0].data_dir if runs else submission_data_dir(spec.train.dataset)
    while with_runs < spec.trials and in_flight < spec.parallel:
        found.sampler = _sampler(spec, len(trials) + asked)
        trial = found.ask()
        strength = trial.suggest_float(spec.parameter, spec.low, spec.high, log=spec.log)
        run_id = client.submit(spec.plan(strength, data_dir), store, search_id=search_id,
                               arm=spec.trial_name(trial.number, strength))
        trial.set_user_attr(RUN_ID, run_id)
        log.info("search %s: trial %d asks %s=%.4g (run %s)", search_id, trial.number,
                 spec.parameter, strength, run_id)
        with_runs, in_flight, asked = with_runs + 1, in_flight + 1, asked + 1
    finished = with_runs >= spec.trials and in_flight == 0
    if finished:
        store.searches.finish(search_id)
    return {"told": told, "asked": asked, "finished": finished}


def after_training(store: Store, run_ids: list[str]) -> None:
    """The worker trained `run_ids`: advance the searches they are trials of."""
    for search_id in dict.fromkeys(store.runs.get(r).search_id for r in run_ids):
        if search_id is not None:
            try:
                advance(store, search_id)
            except Exception:  # noqa: BLE001 - the beat's `advance_open` tries again
                log.exception("search %s could not be advanced", search_id)


def advance_open(store: Store) -> None:
    """Advance every unfinished search with room for a trial (the worker's beat: a trial whose
    worker died after training it, a search whose asker stopped)."""
    for record in store.searches.list(open_only=True):
        if record.spec is not None and record.in_flight < record.spec.parallel:
            try:
                advance(store, record.search_id)
            except Exception:  # noqa: BLE001 - one search's trouble must not stop the others'
                log.exception("search %s could not be advanced", record.search_id)
