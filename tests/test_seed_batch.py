"""Whole epochs on the device and seeds trained as one batch give the numbers of ordinary runs.

One JAX subprocess (the Keras backend is fixed per process) trains tiny digits runs every way
and writes their per-step losses, final weights and statuses to an .npz file that the tests
read. Gradient loss: seed 1 step by step, seed 1 in whole epochs, seeds 1-3 as one batch.
Cross-entropy (cheaper to compile): seeds 1-3 as one batch; the same with seed 2's cancel
asked for; the same crashing while it writes seed 2's first checkpoint (seed 1's is written),
then resumed by seed 1 alone with `train` and by the whole batch again.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradloss.core.experiment import ExperimentConfig
from gradloss.core.plan import RunPlan
from gradloss.core.config import TrainConfig, batchable
from gradloss.service.store import Store
from test_engines import _run_jax

# Float32 sums in another order (a step inside a compiled loop) change losses by ~1e-5
# relative over 20 steps. Adam turns such noise in a near-zero gradient into a full step of
# either sign, so single weights may differ by up to lr = 1e-3 (measured: 4e-4) while the
# mean difference stays ~1e-5; other seeds differ by ~5e-2 on average.
REPO = Path(__file__).resolve().parents[1]
LOSS_RTOL = 1e-4
WEIGHT_ATOL, WEIGHT_MEAN_ATOL = 1e-3, 1e-4
SEEDS = (1, 2, 3)
CONFIG = dict(dataset="digits", epochs=2, batch_size=20, train_size=200, engine="jax")

SCRIPT = """
import json, shutil, sys
from pathlib import Path
import jax
import numpy as np
from gradloss.training import checkpoint, seed_batch
from gradloss.core.config import TrainConfig
from gradloss.training.loop import load_model, train

folder, config = Path(sys.argv[1]), json.loads(sys.argv[2])
jax.config.update("jax_compilation_cache_dir", str(folder / "xla"))  # a program compiles once
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
out, statuses = {}, {}

def configs(objective):
    return [TrainConfig(**config, objective=objective, seed=s) for s in (1, 2, 3)]

def keep(name, result, rows):
    statuses[name] = [result.status, result.epochs_done]
    out[f"{name}_losses"] = np.array([r.value for r in rows if r.name == "loss"])
    out[f"{name}_steps"] = np.array([r.step for r in rows if r.name == "loss"])
    if result.model_path:
        for k, w in enumerate(load_model(result.model_path).trainable_weights):
            out[f"{name}_w{k}"] = np.asarray(w.value)

def batch(name, objective, **kw):
    rows = [[] for _ in range(3)]
    results = seed_batch.train_seeds(configs(objective),
                                     [folder / name / str(i) for i in range(3)],
                                     on_metrics=lambda i, r: rows[i].extend(r), **kw)
    for i, result in enumerate(results):
        keep(f"{name}{i}", result, rows[i])

for whole in (False, True):
    rows = []
    result = train(configs("gradient")[0], folder / f"alone{whole}", on_metrics=rows.extend,
                   whole_epochs=whole)
    keep(f"alone_{whole}", result, rows)
batch("batch", "gradient")
batch("ce", "baseline")
batch("cancel", "baseline", should_cancel=lambda i: i == 1)

save = checkpoint.save
def crash_at_second_seed(run_dir, model, optimizer, config, epoch, final):
    if config.seed == 2:
        raise RuntimeError("killed")
    save(run_dir, model, optimizer, config, epoch, final)
checkpoint.save = crash_at_second_seed
try:
    batch("crash", "baseline")
except RuntimeError:
    pass
checkpoint.save = save
shutil.copytree(folder / "crash" / "0", folder / "solo")
rows = []
result = train(configs("baseline")[0], folder / "solo", on_metrics=rows.extend, whole_epochs=False)
keep("solo", result, rows)
batch("crash", "baseline")
np.savez(folder / "out.npz", **out)
print(json.dumps(statuses))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seed_batch")
    output = _run_jax(SCRIPT, str(folder), json.dumps(CONFIG), timeout=1800)  # many compiles on CPU
    statuses = json.loads(output.strip().splitlines()[-1])
    with np.load(folder / "out.npz") as saved:
        return statuses, dict(saved)


def _same_run(out, a, b):
    np.testing.assert_allclose(out[f"{a}_losses"], out[f"{b}_losses"], rtol=LOSS_RTOL)
    for k in range(8):  # 4 layers with weights: kernel and bias each
        np.testing.assert_allclose(out[f"{a}_w{k}"], out[f"{b}_w{k}"], atol=WEIGHT_ATOL, rtol=0,
                                   err_msg=f"weight {k} of {a} and {b}")
        assert np.mean(np.abs(out[f"{a}_w{k}"] - out[f"{b}_w{k}"])) < WEIGHT_MEAN_ATOL


def test_whole_epochs_on_the_device_reproduce_step_by_step_training(runs):
    """Check that one compiled program per epoch gives the losses and weights of single steps."""
    statuses, out = runs
    assert statuses["alone_True"] == statuses["alone_False"] == ["done", 2]
    assert len(out["alone_True_losses"]) == 2 * 200 // 20
    _same_run(out, "alone_True", "alone_False")


def test_a_seed_trained_in_a_batch_matches_the_seed_trained_alone(runs):
    """Check that seed 1 inside a batch of 3 gives its lone run's losses and weights, and the
    other seeds train something else (their own weights and data order)."""
    statuses, out = runs
    assert [statuses[f"batch{i}"] for i in range(3)] == [["done", 2]] * 3
    assert [statuses[f"ce{i}"] for i in range(3)] == [["done", 2]] * 3
    _same_run(out, "batch0", "alone_False")
    assert not np.allclose(out["batch0_losses"], out["batch1_losses"])


def test_cancelling_one_seed_of_a_batch_leaves_the_others_done(runs):
    """Check that the cancelled seed stops with no model and the others end as in the full batch."""
    statuses, out = runs
    assert statuses["cancel1"][0] == "cancelled" and "cancel1_w0" not in out
    for i in (0, 2):
        assert statuses[f"cancel{i}"] == ["done", 2]
        _same_run(out, f"cancel{i}", f"ce{i}")


def test_a_crashed_batch_resumes_from_each_seeds_checkpoint(runs):
    """Check that after a crash between two seeds' checkpoints, the batch run again (seed 1
    from epoch 1, the others from scratch) and seed 1 resumed alone by `train` both end as
    the uninterrupted batch, re-running no epoch that was checkpointed."""
    statuses, out = runs
    assert [statuses[f"crash{i}"] for i in range(3)] == [["done", 2]] * 3
    steps_per_epoch = 200 // 20
    np.testing.assert_array_equal(out["crash0_steps"],
                                  np.arange(steps_per_epoch + 1, 2 * steps_per_epoch + 1))
    np.testing.assert_array_equal(out["crash1_steps"], np.arange(1, 2 * steps_per_epoch + 1))
    resumed = {**out, "ce0_losses": out["ce0_losses"][steps_per_epoch:]}  # seed 1: epoch 2 only
    for i in range(3):
        _same_run(resumed, f"crash{i}", f"ce{i}")
    np.testing.assert_array_equal(out["solo_steps"], out["crash0_steps"])
    _same_run(out, "solo", "crash0")


def test_batchable_wants_jax_configs_that_differ_only_in_seed():
    """Check which lists of configs may train as one batch."""
    jax = [TrainConfig(**CONFIG, seed=s) for s in SEEDS]
    assert batchable(jax)
    assert not batchable(jax + [TrainConfig(**{**CONFIG, "epochs": 3}, seed=4)])
    assert not batchable(jax + [TrainConfig(**CONFIG, seed=1)])  # the same seed twice
    assert not batchable([TrainConfig(**{**CONFIG, "engine": "tensorflow"}, seed=s)
                          for s in SEEDS])
    assert not batchable([])


def test_runner_trains_several_seed_runs_as_one_batch(tmp_path, monkeypatch):
    """Check that `python -m gradloss.service.runner ID1 ID2` trains two seeds of one arm and leaves
    each an ordinary done run: its own metrics, robustness table and model."""
    pytest.importorskip("jax")
    store = Store(tmp_path / "runs.sqlite")
    run_ids = [store.runs.create(RunPlan(TrainConfig(**{**CONFIG, "epochs": 1}, objective="baseline",
                                            seed=s))) for s in (4, 5)]
    for run_id in run_ids:
        store.runs.start(run_id, "test")
    env = {**os.environ, "GRADLOSS_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "gradloss.service.runner", *run_ids], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1500)  # JAX compiles loops slowly on a loaded CPU
    assert done.returncode == 0, done.stderr[-4000:]
    assert "seed batch" in done.stderr
    losses = store.results.metrics(run_ids, name="loss")
    for run_id in run_ids:
        run = store.runs.get(run_id)
        assert run.status == "done", run.error
        assert (tmp_path / run_id / "model.keras").exists()
        assert len(losses[losses.run_id == run_id]) == 200 // 20
        assert len(store.results.robustness(run_id)) > 0
    first, second = (losses[losses.run_id == r].value.to_numpy() for r in run_ids)
    assert not np.allclose(first, second)  # two seeds, two runs


def test_a_worker_claims_the_queued_seeds_of_an_arm_only_where_batches_are_wanted(tmp_path, monkeypatch):
    """Check that claim_seed_batch takes the other queued seeds of the lead run's experiment arm
    (not the other arm's, not a tensorflow experiment's), marks them running on this worker,
    and takes none when GRADLOSS_SEED_BATCH is off; a bad setting names the variable."""
    from gradloss.core.errors import SettingsError
    from gradloss.service import client, supervisor

    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    store = Store.default()
    spec = {**CONFIG, "epochs": 1, "seeds": 3}
    del spec["batch_size"]
    runs = store.runs.of_experiment(client.submit_experiment(ExperimentConfig(**spec)))
    gradient, baseline = ([r for r in runs if r.arm == arm] for arm in ("gradient", "baseline"))
    monkeypatch.setenv("GRADLOSS_SEED_BATCH", "on")
    assert store.runs.start(gradient[0].run_id, "me")
    claimed = supervisor.claim_seed_batch(store, store.runs.get(gradient[0].run_id), "me")
    assert claimed == [r.run_id for r in gradient[1:]]
    assert {(store.runs.get(r).status, store.runs.get(r).worker_id) for r in claimed} == {("running", "me")}
    supervisor.train_run(claimed[0])  # its own queue task: already running, so nothing starts
    assert store.runs.get(claimed[0]).attempts == 1
    monkeypatch.setenv("GRADLOSS_SEED_BATCH", "off")
    assert store.runs.start(baseline[0].run_id, "me")
    assert supervisor.claim_seed_batch(store, store.runs.get(baseline[0].run_id), "me") == []
    monkeypatch.setenv("GRADLOSS_SEED_BATCH", "on")
    tf_runs = store.runs.of_experiment(client.submit_experiment(ExperimentConfig(**{**spec, "engine": "tensorflow"})))
    assert store.runs.start(tf_runs[0].run_id, "me")
    assert supervisor.claim_seed_batch(store, store.runs.get(tf_runs[0].run_id), "me") == []
    monkeypatch.setenv("GRADLOSS_SEED_BATCH", "sometimes")
    with pytest.raises(SettingsError, match="GRADLOSS_SEED_BATCH must be a str among"):
        supervisor.seed_batches_wanted()


def test_worker_trains_an_experiment_arms_seeds_as_one_batch(tmp_path, monkeypatch):
    """Check that a real worker with seed batches on trains the two seeds of each arm of a jax
    experiment as one batch each, every seed ending an ordinary done run."""
    pytest.importorskip("jax")
    from _worker_helpers import kill_all, start_consumer, wait_for
    from gradloss.service import client

    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    store = Store.default()
    spec = {**CONFIG, "epochs": 1, "seeds": 2}
    del spec["batch_size"]
    experiment_id = client.submit_experiment(ExperimentConfig(**spec))

    def finished():
        runs = store.runs.of_experiment(experiment_id)
        return runs if all(r.status in ("done", "failed", "cancelled") for r in runs) else None

    worker = start_consumer(tmp_path, GRADLOSS_SEED_BATCH="on")
    try:
        runs = wait_for(finished, 1500, "the experiment's runs", interval=2)  # JAX compiles slowly
    finally:
        kill_all([worker])
    assert {r.status for r in runs} == {"done"}, [r.error for r in runs]
    log = "".join(p.read_text(errors="replace") for p in tmp_path.glob("consumer-*.log"))
    for arm in ("gradient", "baseline"):
        lead, mate = [r.run_id for r in runs if r.arm == arm]
        assert f"run {lead} trains with 1 more seed(s) of its experiment arm as one seed batch: {mate}" in log
        assert f"training runs {lead}, {mate} as one seed batch" in log
    assert {r.attempts for r in runs} == {1}
    assert all(len(store.results.robustness(r.run_id)) for r in runs)
