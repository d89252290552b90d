"""The TensorFlow engine's steps: the plain double-tape step's numbers; seeded training noise."""
import keras
import numpy as np
import tensorflow as tf

from gradloss.engines.tf_engine import TensorFlowEngine, make_step
from gradloss.engines.yardsticks import make_plain_gradient_step
from gradloss.models import build_cnn


def _setup(seed=0):
    keras.utils.set_random_seed(seed)
    model = build_cnn()
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _batch(b=16, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (b, 28, 28, 1)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, b)]
    return tf.constant(x), tf.constant(y)


def test_gradient_step_equals_the_plain_double_tape_step():
    """Check that the engine's step gives the plain step's loss and updated weights."""
    (m1, o1), (m2, o2) = _setup(), _setup()
    fast, plain = make_step(m1, o1, "gradient"), make_plain_gradient_step(m2, o2)
    for i in range(3):
        x, y = _batch(seed=i)
        loss_fast, correct = fast(x, y)
        loss_plain = plain(x, y)
        np.testing.assert_allclose(float(loss_fast), float(loss_plain), rtol=1e-5)
        assert 0 <= int(correct) <= 16
    for a, b in zip(m1.weights, m2.weights):
        # Adam divides by sqrt(v): float32 round-off of the gradient shows at about 1e-5 here
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=2e-5)


def test_baseline_step_is_categorical_cross_entropy():
    """Check that the baseline step reports the cross-entropy of the pre-update model."""
    model, optimizer = _setup()
    x, y = _batch()
    expected = float(tf.reduce_mean(keras.losses.categorical_crossentropy(y, model(x))))
    loss, correct = make_step(model, optimizer, "baseline")(x, y)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_engine_runs_a_chunk_of_steps_and_counts_correct_predictions():
    """Check that run_steps runs k steps and returns k losses and per-step correct counts."""
    model, optimizer = _setup()
    engine = TensorFlowEngine(model, optimizer, "gradient")
    x, y = _batch(b=24)
    xs, ys = np.stack([x.numpy()] * 3), np.stack([y.numpy()] * 3)
    before = [w.numpy().copy() for w in model.weights]
    losses, correct = engine.run_steps(xs, ys)
    engine.sync_to_model()
    assert losses.shape == (3,) and correct.shape == (3,)
    assert np.all(np.isfinite(losses)) and np.all((0 <= correct) & (correct <= 24))
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.weights))
    assert engine.device == "CPU"


def _noise_run(sigma, seed=0, chunks=(3,)):
    """Losses and final weights of noise_augmented steps from fixed weights, in the given chunks."""
    model, optimizer = _setup()
    engine = TensorFlowEngine(model, optimizer, "noise_augmented", {"train_noise_sigma": sigma},
                              seed=seed)
    x, y = _batch(b=8)
    losses = [engine.run_steps(np.stack([x.numpy()] * k), np.stack([y.numpy()] * k))[0]
              for k in chunks]
    engine.sync_to_model()
    return np.concatenate(losses), [w.numpy() for w in model.weights]


def test_noise_augmented_steps_repeat_exactly_and_resume_with_the_same_noise():
    """Check that training noise follows (seed, step): reruns and split chunks give the same run."""
    losses, weights = _noise_run(0.3)
    again, again_weights = _noise_run(0.3, chunks=(1, 2))  # a resumed run continues the count
    np.testing.assert_array_equal(losses, again)
    for a, b in zip(weights, again_weights):
        np.testing.assert_array_equal(a, b)
    other_seed, _ = _noise_run(0.3, seed=1)
    assert not np.allclose(losses, other_seed)
    assert not np.allclose(losses, _noise_run(0.0)[0])


def test_noise_augmented_with_sigma_zero_is_the_baseline():
    """Check that with no noise the noise-augmented step is the cross-entropy step."""
    losses, weights = _noise_run(0.0)
    model, optimizer = _setup()
    x, y = _batch(b=8)
    base = TensorFlowEngine(model, optimizer, "baseline").run_steps(
        np.stack([x.numpy()] * 3), np.stack([y.numpy()] * 3))[0]
    np.testing.assert_allclose(losses, base, rtol=1e-6)


def _engine_run(objective, params, seed, reuse, steps=3):
    """Losses, final weights and optimizer state of `steps` steps from seed `seed`'s weights."""
    model, optimizer = _setup(seed)
    engine = TensorFlowEngine(model, optimizer, objective, params, seed=seed, reuse=reuse)
    x, y = _batch(b=8, seed=seed)
    losses, _ = engine.run_steps(np.stack([x.numpy()] * steps), np.stack([y.numpy()] * steps))
    engine.sync_to_model()
    program = engine._program
    del engine  # its program is free again for the next run
    return (losses, [w.numpy() for w in model.weights],
            [v.numpy() for v in optimizer.variables], program)


def test_runs_after_one_another_share_one_program_and_train_as_if_alone():
    """Check that a run reuses the previous run's compiled program, its strength, seed and
    learning rate being the program's inputs, and gets exactly the numbers of a program
    compiled for it alone; a zero weight (the unpenalised loss) gets a program of its own."""
    import gc

    for objective, name, values in (("input_gradient", "penalty_weight", (0.3, 0.01)),
                                    ("noise_augmented", "train_noise_sigma", (0.2, 0.5))):
        programs = []
        for seed, value in enumerate(values):
            shared = _engine_run(objective, {name: value}, seed, reuse=True)
            alone = _engine_run(objective, {name: value}, seed, reuse=False)
            gc.collect()
            for a, b in zip(shared[:3], alone[:3]):
                for u, v in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
                    np.testing.assert_array_equal(u, v)
            programs.append(shared[3])
        assert programs[0] is programs[1] and alone[3] is None
        first, second = (_engine_run(objective, {name: v}, 0, reuse=True)[0] for v in values)
        assert not np.allclose(first, second)  # the strength is an input, not the first one's
    zero = _engine_run("input_gradient", {"penalty_weight": 0.0}, 0, reuse=True)
    assert zero[3] is not programs[0] and zero[3] is not None


def test_a_zero_penalty_weight_is_the_unpenalised_loss():
    """Check that at weight 0 each penalty's loss is its base loss (no double backpropagation)
    with the value and weight gradients the penalised form gives at weight 0."""
    from gradloss.objectives import losses

    model, _ = _setup()
    x, y = _batch(b=8)
    for objective, penalised, base in (
            ("mse_penalty", losses.mse_input_gradient_penalty, losses.mse),
            ("input_gradient", losses.input_gradient_penalty, losses.cross_entropy)):
        assert losses.loss_function(objective, {"penalty_weight": 0}) is base
        values = []
        for loss in (base, lambda f, x_, y_: penalised(f, x_, y_, 0.0)):
            with tf.GradientTape() as tape:
                value, _ = loss(losses.on_model(model), x, y)
            values.append((float(value), tape.gradient(value, model.trainable_variables)))
        assert values[0][0] == values[1][0]
        for a, b in zip(values[0][1], values[1][1]):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-9)
