"""A tiny trained CNN shared by the attack and masking tests (digits, a few hundred images), and
ART (the Adversarial Robustness Toolbox), the reference gradloss's attacks are checked against."""
import warnings

import numpy as np
import pytest


@pytest.fixture(scope="module")
def trained():
    """(model, x_test, y_test): the reference CNN after 3 epochs on 500 digits images."""
    import keras

    from gradloss.data import load_dataset
    from gradloss.models import build_cnn

    keras.utils.set_random_seed(0)
    data = load_dataset("digits", train_size=500, seed=0)
    model = build_cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=3, batch_size=32, verbose=0)
    return model, data.x_test, data.y_test


def import_art():
    """ART's evasion attacks and estimators (it warns about PyTorch, which gradloss does not use)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import art.attacks.evasion
        import art.estimators.certification.randomized_smoothing
        import art.estimators.classification
    return art


def art_examples(model, x, y, attack: str, eps: float, config, numpy_seed: int) -> np.ndarray:
    """ART's adversarial images for `attack` at `eps` with `config`'s settings: the attack as
    gradloss ran it through ART before its own (categorical cross-entropy of the probabilities,
    clip values (0, 1)); NumPy's global generator seeded with numpy_seed, then restored."""
    import keras

    from gradloss.core.evaluation import PGD_STEP_FACTOR

    art = import_art()
    classifier = art.estimators.classification.TensorFlowV2Classifier(
        model, nb_classes=int(model.output_shape[-1]), input_shape=tuple(model.input_shape[1:]),
        loss_object=keras.losses.CategoricalCrossentropy(), clip_values=(0.0, 1.0))
    evasion = art.attacks.evasion
    if attack == "fgsm":
        method = evasion.FastGradientMethod(classifier, norm=np.inf, eps=eps, batch_size=500)
    elif attack == "pgd":
        method = evasion.ProjectedGradientDescent(
            classifier, norm=np.inf, eps=eps, eps_step=PGD_STEP_FACTOR * eps / config.steps,
            max_iter=config.steps, num_random_init=config.restarts, batch_size=500,
            verbose=False)
    else:
        method = evasion.SquareAttack(classifier, norm=np.inf, eps=eps,
                                      max_iter=config.square_queries,
                                      nb_restarts=config.restarts, batch_size=500, verbose=False)
    state = np.random.get_state()
    np.random.seed(numpy_seed)
    try:
        return method.generate(np.asarray(x, np.float32), y=np.asarray(y, np.float32))
    finally:
        np.random.set_state(state)
