"""gradloss's objectives for anyone's Keras 3 model, trained with the ordinary `model.fit`.

    import gradloss.keras
    model = gradloss.keras.GradientLoss(my_model)   # my_model: images -> softmax (B, K)
    model.compile(optimizer="adam", metrics=["accuracy"])
    model.fit(x, y, epochs=10, batch_size=100)     # y one-hot (N, K) or integer labels (N,)

`ObjectiveModel(my_model, objective, ...)` wraps a model; `GradientLoss`, `CrossEntropy`, `MSE`,
`NoiseAugmentation`, `InputGradientPenalty` and `MSEPenalty` name one objective each. Their `compute_loss`
calls the objective's one definition (`gradloss.objectives.losses`), so `fit` trains exactly what
gradloss's engines train. Keras runs `compute_loss` inside its own differentiation on every
backend (keras/src/backend/*/trainer.py): TensorFlow under the train step's GradientTape, JAX
under `jax.value_and_grad` with the variables mapped through a StatelessScope (so the inner
model, called inside the shim's `jax.grad` for the input gradient, reads the traced weights),
PyTorch before `loss.backward()` (the shim's `torch.autograd.grad(create_graph=True)`).

Noise augmentation draws its noise from (seed, training step) with `objectives.shim`, as the
engines do; the step count is a non-trainable variable of the wrapper (`steps`), because on JAX
the optimizer's own counter is not traced inside `compute_loss`.

The wrapper outputs probabilities (softmax; `from_logits=True` for a model that outputs logits),
predicts like the model it wraps, and saves and loads as any Keras model (registered
serialisable, no custom code beyond gradloss). Layers that couple the examples of a batch or
update state while training (BatchNormalization) change what the input-gradient objectives mean;
gradloss's own architectures have none.
"""
from __future__ import annotations

import keras
from keras import ops

from gradloss import objectives
from gradloss.core.validation import check_choice, check_float, check_int, fail
from gradloss.objectives import losses, shim

PACKAGE = "gradloss"


@keras.saving.register_keras_serializable(package=PACKAGE)
class ObjectiveModel(keras.Model):
    """`model` trained by `fit` with gradloss's `objective`: compile with an optimizer only.

    train_noise_sigma: noise_augmented's sigma; penalty_weight: input_gradient's lambda (None:
    the objective's reference value). from_logits: `model` outputs logits, softmax is applied.
    seed: the training noise's seed."""

    def __init__(self, model: keras.Model, objective: str = "gradient", *,
                 train_noise_sigma: float | None = None, penalty_weight: float | None = None,
                 from_logits: bool = False, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_choice(owner, "objective", objective, objectives.NAMES)
        if not isinstance(model, keras.Model):
            fail(owner, "model", "a keras.Model", type(model).__name__)
        if not isinstance(from_logits, bool):
            fail(owner, "from_logits", "a bool", from_logits)
        check_int(owner, "seed", seed, 0, 2**31 - 1)
        reference = objectives.get(objective).params
        given = {"train_noise_sigma": train_noise_sigma, "penalty_weight": penalty_weight}
        self.params = {}
        for name, ((low, high), _, _) in objectives.PARAMETERS.items():
            value = given[name]
            if name not in reference:
                if value is not None:
                    fail(owner, name, f"None for objective {objective!r}", value)
                continue
            value = reference[name] if value is None else value
            check_float(owner, name, value, low, high)
            self.params[name] = float(value)
        self.model, self.objective = model, objective
        self.from_logits, self.seed = from_logits, seed
        self._loss_of = losses.loss_function(objective, self.params)
        # training steps taken: the noise of step t is a function of (seed, t), as in the engines
        self.steps = self.add_weight(shape=(), dtype="int32", initializer="zeros",
                                     trainable=False, name="steps")

    def build(self, input_shape=None):
        if not self.model.built:
            self.model.build(input_shape)
        self.built = True

    def call(self, x, training=False):
        """Class probabilities (B, K) for images x."""
        out = self.model(x, training=training)
        return ops.softmax(out, axis=-1) if self.from_logits else out

    def compute_output_shape(self, input_shape):
        return self.model.compute_output_shape(input_shape)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The objective's loss on the batch (plus any losses the layers added)."""
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} does not take sample weights: gradloss's "
                             "objectives are means over the batch.")
        x = ops.convert_to_tensor(x)  # PyTorch's train_on_batch passes NumPy arrays through
        y = self._one_hot(ops.convert_to_tensor(y), y_pred)
        sigma = self.params.get("train_noise_sigma")
        noisy = sigma is not None and training
        if noisy:
            x = x + shim.training_noise(ops.shape(x), sigma, self.seed, self.steps.value)
        if self.objective in ("baseline", "mse") or (self.objective == "noise_augmented"
                                                     and not noisy):
            forward = lambda _x: (y_pred, None)  # noqa: E731  (the trainer's forward pass at x)
        else:
            forward = lambda x_: (self.call(x_, training=training), None)  # noqa: E731
        loss, _ = self._loss_of(forward, x, y)
        if training:
            self.steps.assign(self.steps + 1)
        for extra in self.losses:  # regularizers and add_loss, as Keras's own compute_loss
            loss = loss + ops.cast(extra, loss.dtype)
        return loss

    def _one_hot(self, y, y_pred):
        """y as one-hot float (B, K): integer labels (B,) or (B, 1) are encoded."""
        k = y_pred.shape[-1]
        if len(y.shape) == 1 or (len(y.shape) == 2 and y.shape[-1] == 1 and k != 1):
            return ops.one_hot(ops.reshape(ops.cast(y, "int32"), (-1,)), k, dtype=y_pred.dtype)
        return ops.cast(y, y_pred.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"model": keras.saving.serialize_keras_object(self.model),
                       "objective": self.objective, "from_logits": self.from_logits,
                       "seed": self.seed, **self.params})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


def _fixed(objective: str):
    """The __init__ of a subclass of ObjectiveModel fixed to `objective`."""
    def __init__(self, model, **kwargs):
        kwargs.pop("objective", None)  # get_config saves it; here it is fixed
        ObjectiveModel.__init__(self, model, objective, **kwargs)
    return __init__


@keras.saving.register_keras_serializable(package=PACKAGE)
class GradientLoss(ObjectiveModel):
    """The gradient loss G = mean((dS/dx)^2) + mean((dS/dy)^2), S = MSE(one-hot y, softmax)."""
    __init__ = _fixed("gradient")


@keras.saving.register_keras_serializable(package=PACKAGE)
class CrossEntropy(ObjectiveModel):
    """Categorical cross-entropy (gradloss's "baseline")."""
    __init__ = _fixed("baseline")


@keras.saving.register_keras_serializable(package=PACKAGE)
class MSE(ObjectiveModel):
    """Plain MSE between one-hot y and the softmax: the gradient loss without its gradient term."""
    __init__ = _fixed("mse")


@keras.saving.register_keras_serializable(package=PACKAGE)
class NoiseAugmentation(ObjectiveModel):
    """Cross-entropy on x + N(0, train_noise_sigma^2) noise drawn fresh each step."""
    __init__ = _fixed("noise_augmented")


@keras.saving.register_keras_serializable(package=PACKAGE)
class InputGradientPenalty(ObjectiveModel):
    """Cross-entropy + penalty_weight * mean_i ||dCE_i/dx_i||^2 (double backpropagation)."""
    __init__ = _fixed("input_gradient")


@keras.saving.register_keras_serializable(package=PACKAGE)
class MSEPenalty(ObjectiveModel):
    """MSE + penalty_weight * mean_i ||dS_i/dx_i||^2: the family the gradient loss belongs to (at
    its default, lambda* = K^2/(4D) for 28x28x1 images and 10 classes, the gradient loss's weight
    gradients up to the factor K^2/4; docs/objectives.md)."""
    __init__ = _fixed("mse_penalty")


__all__ = ["ObjectiveModel", "GradientLoss", "CrossEntropy", "MSE", "NoiseAugmentation",
           "InputGradientPenalty", "MSEPenalty"]
