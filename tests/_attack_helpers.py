"""A tiny trained CNN shared by the attack and masking tests (digits, a few hundred images)."""
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
