"""Tests of gradloss.analysis.protocols: what runs share, and the words for what they do not."""
from gradloss.analysis import protocols
from gradloss.core.config import TrainConfig
from gradloss.core.records import StoredRun


def run(run_id, objective="gradient", status="done", created_at=0.0, **config):
    settings = {"dataset": "digits", **config}
    return StoredRun(run_id=run_id, created_at=created_at, status=status, objective=objective,
                     dataset=settings["dataset"], engine="tensorflow",
                     config=TrainConfig(objective=objective, **settings))


def test_reference_protocols_of_two_objectives_are_one_protocol():
    """Check that the gradient loss (10 epochs, batch 100) and the baseline (20, batch 32) by
    reference share a protocol, while a 1-epoch run of either does not."""
    gradient, baseline = run("g"), run("b", "baseline")
    assert protocols.same_protocol([gradient, baseline])
    short = run("b1", "baseline", epochs=1)
    assert not protocols.same_protocol([gradient, short])
    assert protocols.difference_words(short, gradient) == "epochs 1 against 10 (reference)"


def test_equal_values_are_one_protocol_whether_or_not_they_are_a_reference():
    """Check that a gradient-loss and a baseline run both at batch 32 share a protocol (the
    baseline's reference batch is 32), and that a set mixing the two readings does not."""
    gradient32, baseline = run("g", batch_size=32), run("b", "baseline")
    assert protocols.same_protocol([gradient32, baseline])
    assert not protocols.same_protocol([gradient32, baseline, run("m", "mse")])  # mse at 100
    assert protocols.differences([gradient32, run("m", "mse")]) == \
        {"batch size": ["32", "100 (reference)"]}


def test_every_protocol_field_tells_runs_apart():
    """Check that size, epochs, batch, learning rate and dataset each make another protocol,
    and that seed, λ and σ_train do not."""
    base = run("a", "input_gradient")
    same = [run("s", "input_gradient", seed=3, penalty_weight=0.5),
            run("n", "noise_augmented", train_noise_sigma=0.3)]
    assert protocols.same_protocol([base, *same])
    other = {"training images": run("t", "input_gradient", train_size=300),
             "epochs": run("e", "input_gradient", epochs=2),
             "batch size": run("bs", "input_gradient", batch_size=50),
             "learning rate": run("lr", "input_gradient", learning_rate=0.01),
             "dataset": run("d", "input_gradient", dataset="fashion_mnist")}
    for label, changed in other.items():
        assert label in protocols.differences([base, changed]), label
    assert protocols.differences([base, other["training images"]]) == \
        {"training images": ["1437", "300"]}
    assert protocols.protocol_key(base) != protocols.protocol_key(other["epochs"])


def test_protocol_key_takes_the_fields_it_is_given():
    """Check that a key over chosen fields ignores the others (a later field is one more entry)."""
    a, b = run("a", epochs=1), run("b", epochs=2)
    assert protocols.protocol_key(a, ["dataset", "engine"]) == ("digits", "tensorflow")
    assert protocols.protocol_key(a, ["dataset", "engine"]) == protocols.protocol_key(b, ["dataset", "engine"])
    assert protocols.same_protocol([a, b], fields=["dataset", "engine"])
    assert not protocols.same_protocol([a, b])


def test_latest_comparable_never_mixes_protocols():
    """Check the default comparison: the newest run's protocol, the newest run per objective in
    it, even when another objective's newest run is of another protocol."""
    runs = [run("g-new", created_at=5, train_size=300, epochs=1),  # newest first
            run("b-other", "baseline", created_at=4),              # another protocol
            run("m-new", "mse", created_at=3, train_size=300, epochs=1),
            run("b-same", "baseline", created_at=2, train_size=300, epochs=1),
            run("g-old", created_at=1, train_size=300, epochs=1),
            run("q", "baseline", status="queued", created_at=6)]
    latest = protocols.latest_comparable(runs)
    assert {o: r.run_id for o, r in latest.items()} == \
        {"gradient": "g-new", "baseline": "b-same", "mse": "m-new"}
    assert list(latest) == ["gradient", "baseline", "mse"]  # registry order
    assert protocols.latest_comparable([]) == {}


def test_describe_names_the_protocol_in_words():
    assert protocols.describe(run("g")) == ("digits, 1437 training images, 10 epochs "
                                            "(reference), batch 100 (reference), learning rate "
                                            "0.001, tensorflow")
    assert protocols.describe(run("g", epochs=1, train_size=300, batch_size=50)) == \
        "digits, 300 training images, 1 epoch, batch 50, learning rate 0.001, tensorflow"
    assert protocols.describe(run("g", architecture="mlp")).endswith("tensorflow, mlp network")
    assert protocols.difference_words(run("g", architecture="mlp"), run("g")) == \
        "architecture mlp against cnn"


def test_unreadable_runs_have_no_protocol():
    broken = StoredRun("x", 0.0, "done", "gradient", "digits", "tensorflow", None,
                       unreadable="bad")
    assert protocols.protocol_key(broken) is None
    assert not protocols.same_protocol([broken])
    assert protocols.latest_comparable([broken, run("g")]) == {"gradient": run("g")}


def test_describe_a_group_says_each_objectives_reference_where_values_differ():
    group = [run("g", epochs=1), run("b", "baseline", epochs=1)]
    assert protocols.describe(group) == ("digits, 1437 training images, 1 epoch, each "
                                         "objective's reference batch size, learning rate "
                                         "0.001, tensorflow")
