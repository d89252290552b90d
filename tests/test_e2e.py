"""End to end in a real headless Chromium: start the dashboard, train a tiny digits model of every
objective, read the results side by side; then a tiny experiment (2 arms x 3 seeds) and its sentence.

`streamlit run dashboard.py` runs on a free port with a temporary GRADLOSS_HOME and no Fashion-MNIST, so
the dashboard starts its own worker and the form defaults to digits. Screenshots of every page go to
test-artifacts/. Slow (a few minutes): it trains five real models.
"""
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from _worker_helpers import wait_for
from gradloss import objectives
from gradloss.service.store import Store
from gradloss.ui.labels import run_labels

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
TRAIN_TIMEOUT_S = 600  # five tiny runs, one after the other, on a shared CPU
EXPERIMENT_TIMEOUT_S = 900  # six tiny runs one after another, each starting TensorFlow

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def stop_group(pid: int, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM the process group led by pid (it was started in a new session), SIGKILL if it
    lingers. `proc`: the leader, when it is this process's child, reaped as it exits (a zombie
    leader would keep its group in existence until the SIGKILL's wait ran out)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.time() + wait
        while time.time() < deadline:
            if proc is not None:
                proc.poll()
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


@pytest.fixture
def dashboard(tmp_path):
    """A running dashboard on its own home; yields (url, home). Kills it and its worker afterwards."""
    home, no_data = tmp_path / "home", tmp_path / "no-data"
    home.mkdir()
    no_data.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("GRADLOSS_NO_LOCAL_WORKER", "KERAS_HOME")}
    env.update(GRADLOSS_HOME=str(home), GRADLOSS_DATA_DIR=str(no_data), KERAS_HOME=str(no_data),
               PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "e2e-streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(url) or proc.poll() is not None, 90, "streamlit to start")
        assert proc.poll() is None, (ARTIFACTS / "e2e-streamlit.log").read_text()[-3000:]
        yield url, home
    finally:
        stop_group(proc.pid, proc)
        log.close()
        with contextlib.suppress(OSError, ValueError):  # the worker the dashboard started, and its runner
            stop_group(int((home / "worker.pid").read_text()))
        with contextlib.suppress(OSError):
            (ARTIFACTS / "e2e-worker.log").write_bytes((home / "worker.log").read_bytes())


@pytest.fixture
def page():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.set_default_timeout(60_000)  # generous: CI machines are shared and slow
        yield page
        with contextlib.suppress(Exception):  # the last state, to read when the test failed
            page.screenshot(path=str(ARTIFACTS / "e2e-last-state.png"), full_page=True)
        browser.close()


def finished(store: Store):
    """All runs if none is queued or running any more, else None."""
    runs = store.runs.list()
    return runs if all(r.status in ("done", "failed", "cancelled") for r in runs) else None


def open_page(page, url: str, path: str, title: str) -> None:
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", name=title).first.wait_for()
    running = page.locator("[data-testid='stStatusWidget']")  # Streamlit's "running" indicator
    wait_for(lambda: not running.is_visible(), 60, "the page to render")


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def expected_summary(sweeps, runs, sigma: float, reference: str) -> list[str]:
    """The comparison sentence's parts at sigma, computed from the stored sweeps."""
    acc = sweeps[(sweeps.sigma - sigma).abs() < 1e-9].set_index("run_id").accuracy
    labels = run_labels(runs)
    parts = []
    for run in runs:
        if run.run_id != reference:
            gap = (acc[run.run_id] - acc[reference]) * 100
            parts.append(f"{labels[run.run_id]} {abs(gap):.1f} points "
                         f"{'above' if gap >= 0 else 'below'}")
    return parts


def test_train_every_objective_and_compare_them_in_the_browser(dashboard, page):
    url, home = dashboard
    open_page(page, url, "", "gradloss")
    page.get_by_text("No finished runs yet").wait_for()
    wait_for(lambda: (home / "worker.pid").exists(), 30, "the dashboard to start a worker")
    shot(page, "1-home-empty")
    page.get_by_text("alive", exact=True).wait_for()  # the page follows the worker coming up, by itself

    # Queue a tiny run of every objective with the Train page's form (digits is the default: no
    # Fashion-MNIST here).
    open_page(page, url, "train", "Train")
    set_objectives(page, [objectives.label(o) for o in objectives.NAMES])  # and closes the list
    page.get_by_role("spinbutton", name=re.compile(r"^Penalty weight λ \(")).first.wait_for()
    settle(page)
    form = page.locator("[data-testid='stForm']").first  # the run form; the experiment form follows
    form.get_by_role("spinbutton", name="Epochs").fill("1")  # no corruptions and attacks (off by
    form.get_by_role("spinbutton", name="Training-set size").fill("300")  # default); the last fill
    form.get_by_role("button", name="Queue", exact=True).click()  # is committed by the Queue click
    page.get_by_text("Queued gradient loss run").wait_for()
    store = Store(home / "runs.sqlite")
    assert sorted((r.objective, r.dataset, r.config.epochs) for r in store.runs.list()) == sorted(
        (o, "digits", 1) for o in objectives.NAMES)
    page.locator("[data-testid='stProgress']").first.wait_for()
    shot(page, "2-train-running")

    runs = wait_for(lambda: finished(store), TRAIN_TIMEOUT_S, "all runs to finish", interval=2)
    assert [r.status for r in runs] == ["done"] * len(objectives.NAMES), [(r.run_id, r.status, r.error) for r in runs]
    page.get_by_text("Nothing queued or running").wait_for()  # the live area caught up
    shot(page, "3-train-done")

    open_page(page, url, "loss_curves", "Loss curves")
    page.get_by_role("tab", name="Single runs").click()  # experiments come first
    wait_for(lambda: page.locator(".js-plotly-plot").count() >= 3, 30, "the loss and input-gradient charts")
    titles = page.locator(".js-plotly-plot").first.locator(".annotation-text")
    wait_for(lambda: titles.count() >= len(objectives.NAMES), 30, "a panel per objective")
    shown = {" ".join(t.text_content().replace("(", " (").split()) for t in titles.all()}
    # a long title wraps onto two lines (its text then has no space at the break)
    assert {objectives.label(o) for o in objectives.NAMES} <= shown, shown
    shot(page, "4-loss-curves")

    open_page(page, url, "robustness", "Robustness to input noise")
    page.get_by_text("No experiments yet").wait_for()
    page.get_by_role("tab", name="Single runs").click()
    wait_for(lambda: page.locator(".js-plotly-plot").count() >= 1, 30, "the robustness chart")
    page.get_by_text("Bold: the true class").wait_for()  # the image grid, last on the page
    shot(page, "5-robustness")
    runs = sorted(runs, key=lambda r: objectives.NAMES.index(r.objective))
    sweeps = store.results.robustness([r.run_id for r in runs])
    reference = next(r.run_id for r in runs if r.objective == "baseline")  # the default

    def summary_matches(sigma: float) -> bool:
        text = page.get_by_text("One seed each").first.inner_text()
        return all(part in text for part in expected_summary(sweeps, runs, sigma, reference))

    wait_for(lambda: summary_matches(0.1), 30, "the differences at σ = 0.1 (the default)")
    legend = page.locator(".js-plotly-plot").first.inner_text()
    assert all(objectives.label(r.objective) in legend for r in runs)  # one curve per run
    page.get_by_role("slider").first.focus()
    page.keyboard.press("End")  # the largest swept σ
    page.get_by_text(f"Test images at σ = {max(sweeps.sigma):g}").wait_for()
    wait_for(lambda: summary_matches(max(sweeps.sigma)), 30, "the differences at the largest σ")
    shot(page, "6-robustness-max-sigma")

    pick_a_perturbation(page, url, store, runs)

    open_page(page, url, "", "gradloss")
    page.get_by_text("Latest comparison").wait_for()
    page.locator("[data-testid='stDataFrame']").first.wait_for()
    page.get_by_text("Accuracy versus noise").wait_for()
    shot(page, "7-home-comparison")


def metric_values(page) -> list[str]:
    """The values of the st.metric elements on the page, as shown."""
    return page.locator("[data-testid='stMetricValue']").all_inner_texts()


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the Streamlit selectbox labelled `label`."""
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()


def pick_a_perturbation(page, url, store, runs) -> None:
    """Queue contrast and FGSM for the pair from the Robustness page's form, wait for the worker,
    then pick each next to the slider: the accuracies follow the picker and the slider."""
    page.get_by_role("tab", name="Single runs").click()  # a rerun may show the first tab again
    page.get_by_text("Evaluate these runs under corruptions and attacks").click()
    names = page.locator("[data-testid='stMultiSelect']").filter(has_text="Perturbations")
    names.locator("input").click()
    for _ in range(20):  # every perturbation is chosen by default: remove them all
        page.keyboard.press("Backspace")
    for option in ("contrast (corruption)", "FGSM (attack)"):
        page.keyboard.type(option.split(" (")[0])
        page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")
    page.get_by_label("Attack ε").fill("0, 0.1")
    page.get_by_role("button", name="Queue the evaluation").click()
    page.get_by_text("Queued the evaluation").wait_for()
    ids = [r.run_id for r in runs]
    wait_for(lambda: {p.status for p in store.evaluations.plans(ids).values()} <= {"done", "failed"}
             and len(store.evaluations.plans(ids)) == len(ids), 2 * TRAIN_TIMEOUT_S,
             "every evaluation", interval=2)
    plans = store.evaluations.plans(ids)
    assert {p.status for p in plans.values()} == {"done"}, [p.error for p in plans.values()]
    rows = store.evaluations.rows(ids)

    def shown_matches(perturbation: str, level: float) -> bool:
        at = rows[(rows.perturbation == perturbation) & ((rows.level - level).abs() < 1e-9)]
        expected = {f"{a:.2%}" for a in at.accuracy}
        return len(metric_values(page)) == len(ids) and expected == set(metric_values(page))

    open_page(page, url, "robustness", "Robustness to input noise")
    page.get_by_role("tab", name="Single runs").click()  # experiments come first
    choose(page, "Perturbation", "contrast (corruption)")
    wait_for(lambda: shown_matches("contrast", 3), 30, "the accuracies at severity 3")
    page.get_by_role("slider").first.focus()
    page.keyboard.press("End")  # severity 5
    wait_for(lambda: shown_matches("contrast", 5), 30, "the accuracies at severity 5")
    page.get_by_text("Test images, contrast, severity 5").wait_for()
    shot(page, "8-robustness-contrast")
    choose(page, "Perturbation", "FGSM (attack)")
    wait_for(lambda: shown_matches("fgsm", 0.1), 30, "the accuracies at eps 0.1")
    page.get_by_text("attacked test images").wait_for()
    page.get_by_text("All perturbations").wait_for()
    wait_for(lambda: page.locator("[data-testid='stImage']").count() >= 2, 30, "the adversarial images")
    shot(page, "9-robustness-fgsm")


def test_run_an_experiment_and_read_its_sentence_in_the_browser(dashboard, page):
    """Check that a 2 arms x 3 seeds digits experiment queued from the Train page ends with the
    sentence, the bands and the table at σ on the Robustness page."""
    url, home = dashboard
    open_page(page, url, "", "gradloss")  # as a user arrives: the session starts the worker
    wait_for(lambda: (home / "worker.pid").exists(), 30, "the dashboard to start a worker")
    open_page(page, url, "train", "Train")
    form = page.locator("[data-testid='stForm']").nth(1)  # the experiment form, after the run form
    form.get_by_role("spinbutton", name="Seeds").fill("3")
    form.get_by_role("spinbutton", name="Training-set size").fill("200")
    form.get_by_role("spinbutton", name="Epochs").fill("1")
    form.get_by_role("button", name="Queue the experiment").click()
    page.get_by_text("Queued experiment").wait_for()
    store = Store(home / "runs.sqlite")
    [experiment] = store.experiments.list()
    runs = store.runs.of_experiment(experiment.experiment_id)
    assert [(r.arm, r.config.seed) for r in runs][:2] == [("gradient", 0), ("baseline", 0)]
    page.get_by_text(f"of {len(runs)} runs done").first.wait_for()
    shot(page, "8-experiment-running")

    runs = wait_for(lambda: finished(store), EXPERIMENT_TIMEOUT_S, "the experiment's runs", interval=3)
    assert {r.status for r in runs} == {"done"}, [(r.run_id, r.status, r.error) for r in runs]
    open_page(page, url, "robustness", "Robustness to input noise")
    # the experiment's sentence (the Single runs tab, also in the page, has its own "At σ = 0.1, against …")
    page.get_by_text(re.compile(r"^At σ = 0\.1, the gradient loss")).first.wait_for()
    page.get_by_text("3 seeds)").first.wait_for()
    wait_for(lambda: page.locator(".js-plotly-plot").count() >= 1, 30, "the mean curves")
    page.locator("[data-testid='stDataFrame']").first.wait_for()  # the table at σ
    shot(page, "9-experiment-robustness")


def settle(page) -> None:
    """Wait for the rerun a widget change started to end (the form's fields are then the new
    ones: their keys follow the objectives picked). A change made while a rerun is still in
    flight can be undone by that rerun's answer, on a loaded machine: change, settle, change."""
    time.sleep(0.5)
    running = page.locator("[data-testid='stStatusWidget']")
    wait_for(lambda: not running.is_visible(), 60, "the page to render")


def set_objectives(page, labels: list[str], attempts: int = 4) -> None:
    """Make the Train page's objectives picker hold exactly `labels`, and check that it still
    does a moment later. Each pick or removal reruns the page; on a loaded machine the answer of
    a rerun still in flight can undo a change made meanwhile (`settle` waits for the running
    indicator, which may show late), so a change that did not stick is made again."""
    box = page.locator("[data-testid='stMultiSelect']").first
    every = [objectives.label(o) for o in objectives.NAMES]

    def picked() -> list[str]:
        return [label for label in every if box.get_by_text(label, exact=True).count()]

    for _ in range(attempts):
        now = picked()
        if sorted(now) == sorted(labels):
            time.sleep(1.5)  # a late answer would show by now
            settle(page)
            if sorted(picked()) == sorted(labels):
                page.keyboard.press("Escape")  # an open list hides the page from roles:
                page.locator("h1").first.click()  # close it by clicking away
                settle(page)
                return
            continue
        box.locator("input").click()
        if any(label not in labels for label in now):
            for _ in now:  # remove every pick, one rerun at a time, then add the wanted ones
                page.keyboard.press("Backspace")
                settle(page)
            now = []
        for label in labels:
            if label not in now:
                page.keyboard.type(label)  # filters the options to this one
                page.keyboard.press("Enter")
                settle(page)
        page.keyboard.press("Escape")
        settle(page)
    raise AssertionError(f"the objectives picker holds {picked()}, not {labels}")


def queue_from_the_form(page, url: str, objective_labels: list[str], epochs: int, size: int) -> None:
    """Queue one run per objective with the Train page's form (digits: no Fashion-MNIST here)."""
    open_page(page, url, "train", "Train")
    set_objectives(page, objective_labels)
    form = page.locator("[data-testid='stForm']").first
    form.get_by_role("spinbutton", name="Epochs").fill(str(epochs))
    form.get_by_role("spinbutton", name="Training-set size").fill(str(size))
    form.get_by_role("button", name="Queue", exact=True).click()
    page.get_by_text(f"Queued {objective_labels[0]} run").wait_for()


def comparison_text(page) -> str:
    return page.get_by_text("One seed each").first.inner_text()


def test_two_protocols_are_never_compared_silently_and_selections_stay(dashboard, page):
    """Check, in a real browser, with runs of two protocols (gradient loss and baseline: 1
    epoch; plain MSE: 2 epochs; 200 images each): Home compares within the newest protocol only
    and states no gap; Robustness, with all three picked, warns and names what differs in the
    sentence; then the reference run and σ the user set survive removing a run and a visit to
    another page. Screenshots of the run table, a run page and the comparison go to
    test-artifacts/."""
    url, home = dashboard
    open_page(page, url, "", "gradloss")
    wait_for(lambda: (home / "worker.pid").exists(), 30, "the dashboard to start a worker")
    queue_from_the_form(page, url, ["gradient loss", "baseline (cross-entropy)"], 1, 200)
    queue_from_the_form(page, url, ["plain MSE"], 2, 200)
    store = Store(home / "runs.sqlite")
    runs = wait_for(lambda: len(store.runs.list()) == 3 and finished(store), TRAIN_TIMEOUT_S,
                    "the three runs", interval=2)
    assert [r.status for r in runs] == ["done"] * 3, [(r.run_id, r.error) for r in runs]
    by_objective = {r.objective: r for r in runs}
    assert (by_objective["mse"].config.epochs, by_objective["gradient"].config.epochs) == (2, 1)

    open_page(page, url, "", "gradloss")  # Home: the newest protocol (plain MSE) alone
    page.get_by_text("Protocol: digits, 200 training images, 2 epochs").wait_for()
    page.get_by_text("nothing to compare against").wait_for()
    body = page.locator("body").inner_text()
    assert "points above" not in body and "points below" not in body
    shot(page, "10-home-two-protocols")

    open_page(page, url, "robustness", "Robustness to input noise")
    page.get_by_role("tab", name="Single runs").click()
    runs_picker = page.locator("[data-testid='stMultiSelect']").filter(has_text="Runs").first
    runs_picker.locator("input").click()
    page.keyboard.press("Backspace")  # the default: the newest protocol's plain MSE run
    for label in ("gradient loss", "baseline", "plain MSE"):
        page.keyboard.type(label)
        page.keyboard.press("Enter")
        settle(page)
    page.keyboard.press("Escape")
    page.get_by_text("not all trained the same way").wait_for()
    wait_for(lambda: "(another protocol: epochs 2 against 1)" in comparison_text(page), 30,
             "the sentence naming what differs")
    text = comparison_text(page)
    gradient, baseline, mse = (by_objective[o] for o in ("gradient", "baseline", "mse"))
    labels = run_labels([gradient, baseline, mse])
    assert f"against {labels[baseline.run_id]}:" in text  # the default reference: the baseline
    assert re.search(re.escape(labels[gradient.run_id]) + r" \d+\.\d points (above|below)(;|\.)",
                     text), text  # same protocol: no note
    assert re.search(re.escape(labels[mse.run_id]) + r" \d+\.\d points (above|below) \(another "
                     r"protocol: epochs 2 against 1\)", text), text
    page.get_by_text("differs from the reference").first.wait_for()  # the table's column
    shot(page, "11-robustness-comparison")

    choose(page, "Reference run", labels[gradient.run_id])
    page.get_by_role("slider").first.focus()
    page.keyboard.press("End")  # the largest σ
    top = max(store.results.robustness(gradient.run_id).sigma)
    wait_for(lambda: f"At σ = {top:g}, against {labels[gradient.run_id]}:" in comparison_text(page),
             30, "the sentence at the largest σ against the gradient run")
    runs_picker.locator("input").click()
    page.keyboard.press("Backspace")  # removes plain MSE, the last picked
    settle(page)
    page.keyboard.press("Escape")
    two = run_labels([gradient, baseline])
    wait_for(lambda: f"At σ = {top:g}, against {two[gradient.run_id]}:" in comparison_text(page),
             30, "the reference and σ to stay after removing a run")
    nav = page.locator("[data-testid='stSidebarNav']")  # another page and back, in this session
    nav.get_by_role("link", name="Runs").click()  # (an address typed anew is a new session)
    page.get_by_role("heading", name="Runs").first.wait_for()
    page.locator("[data-testid='stDataFrame']").first.wait_for()
    settle(page)
    shot(page, "12-runs-table")
    nav.get_by_role("link", name="Robustness").click()
    page.get_by_role("heading", name="Robustness to input noise").wait_for()
    settle(page)
    page.get_by_role("tab", name="Single runs").click()
    wait_for(lambda: f"At σ = {top:g}, against {two[gradient.run_id]}:" in comparison_text(page),
             30, "the picked runs, reference and σ to survive another page")
    assert page.locator("[data-testid='stSliderThumbValue']").first.inner_text() == f"{top:g}"

    page.goto(f"{url}/run?id={gradient.run_id}")
    page.get_by_text("Protocol").first.wait_for()
    wait_for(lambda: page.locator(".js-plotly-plot").count() >= 3, 30, "the run page's charts")
    shot(page, "13-run-page")


def test_a_frontier_queued_from_the_train_page_draws_the_stored_numbers(dashboard, page):
    """Check a frontier end to end: queued from the Train page's experiment form (the
    input-gradient penalty at its default strengths and the gradient loss, 2 seeds, tiny digits
    runs), trained by the dashboard's worker, drawn on the Frontier page in the browser; every
    point and interval bar of the chart equals an independent recomputation from the stored
    per-seed sweeps (mean over seeds, Student t 95 % interval, drawn within 0-100 %)."""
    import numpy as np
    import scipy.stats

    from gradloss.core.frontier import DEFAULT_GRIDS

    url, home = dashboard
    open_page(page, url, "", "gradloss")
    wait_for(lambda: (home / "worker.pid").exists(), 30, "the dashboard to start a worker")
    open_page(page, url, "train", "Train")
    form = page.locator("[data-testid='stForm']").nth(1)  # the experiment form
    form.locator("[data-testid='stMultiSelect'] input").click()
    for _ in range(4):  # the default arms (gradient loss, baseline) out
        page.keyboard.press("Backspace")
    for label in ("input-gradient penalty", "gradient loss"):
        page.keyboard.type(label)
        page.get_by_role("option", name=label, exact=True).click()
    page.keyboard.press("Escape")
    form.get_by_role("spinbutton", name="Seeds").fill("2")
    form.get_by_role("spinbutton", name="Training-set size").fill("100")
    form.get_by_role("spinbutton", name="Epochs").fill("1")
    form.get_by_text("Frontier: several strengths").click()
    form.get_by_role("button", name="Queue the experiment").click()
    page.get_by_text("Queued frontier").wait_for()
    store = Store(home / "runs.sqlite")
    [experiment] = store.experiments.list()
    grid = DEFAULT_GRIDS["input_gradient"]
    assert [a["name"] for a in experiment.spec.arms] == (
        [f"input_gradient λ={s:g}" for s in grid] + ["gradient"])
    runs = wait_for(lambda: finished(store), EXPERIMENT_TIMEOUT_S, "the frontier's runs",
                    interval=2)
    assert {r.status for r in runs} == {"done"}, [(r.run_id, r.status, r.error) for r in runs]

    open_page(page, url, "frontier", "Robustness–accuracy frontier")
    page.get_by_text("At equal clean accuracy, σ = 0.1").wait_for()
    wait_for(lambda: page.locator(".js-plotly-plot").count() >= 1, 30, "the frontier chart")
    shot(page, "14-frontier")
    drawn = {t["name"]: t for t in page.evaluate(
        "() => document.querySelector('.js-plotly-plot').data.map(t => ({name: t.name, "
        "x: Array.from(t.x), y: Array.from(t.y), ex: t.error_x ? Array.from(t.error_x.array) : null, "
        "ey: t.error_y ? Array.from(t.error_y.array) : null}))")}

    sweeps = store.results.robustness([r.run_id for r in runs])

    def expected(arm: str, sigma: float) -> tuple[float, float]:
        """The arm's mean accuracy at sigma over its seeds, and its interval bar above (%)."""
        ids = [r.run_id for r in runs if r.arm == arm]
        acc = np.array([sweeps[(sweeps.run_id == i) & np.isclose(sweeps.sigma, sigma)]
                        .accuracy.iloc[0] for i in ids])
        mean = acc.mean()
        half = scipy.stats.t.ppf(0.975, len(acc) - 1) * acc.std(ddof=1) / np.sqrt(len(acc))
        return 100 * mean, 100 * (min(mean + half, 1.0) - mean)

    line = drawn["input-gradient penalty"]  # weakest strength first
    arms = [f"input_gradient λ={s:g}" for s in grid]
    for axis, values, bars, sigma in (("x", line["x"], line["ex"], 0.0),
                                      ("y", line["y"], line["ey"], 0.1)):
        want = [expected(arm, sigma) for arm in arms]
        assert values == pytest.approx([w[0] for w in want], abs=1e-9), axis
        assert bars == pytest.approx([w[1] for w in want], abs=1e-9), axis
    single = drawn["gradient loss"]
    assert single["x"] == pytest.approx([expected("gradient", 0.0)[0]], abs=1e-9)
    assert single["y"] == pytest.approx([expected("gradient", 0.1)[0]], abs=1e-9)
