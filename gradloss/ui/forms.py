"""A refused value in the words of the form it was typed in: 'Epochs must be a whole number from
1 to 500; got 0.', never 'The 'epochs' parameter of TrainConfig ...'. No Streamlit.

The config classes validate (`core.validation`) and keep, on the error, the parameter, the
value and the rule in words; a form maps the parameter to its own field's label."""
from __future__ import annotations

TRAIN_LABELS = {"objective": "Objective", "dataset": "Dataset", "epochs": "Epochs",
                "batch_size": "Batch size", "learning_rate": "Learning rate",
                "train_size": "Training-set size", "seed": "Seed", "engine": "Engine",
                "deterministic": "Deterministic", "train_noise_sigma": "Training noise σ",
                "penalty_weight": "Penalty weight λ"}  # TrainConfig field -> the Train form's label
EXPERIMENT_LABELS = {**TRAIN_LABELS, "arms": "Objectives", "seeds": "Seeds"}
EVALUATION_LABELS = {"perturbations": "Perturbations", "severities": "Severities",
                     "epsilons": "Attack ε", "steps": "PGD steps"}


def _shown(value) -> str:
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value)) if value else "none"
    return str(value)


def form_message(error, labels: dict | None = None) -> str:
    """A refused config value in a form's words: 'Epochs must be a whole number from 1 to 500;
    got 0.' `labels`: parameter -> the form's label (default: the Train form's). An error about
    no field of the form keeps its own message."""
    label = (labels or TRAIN_LABELS).get(getattr(error, "parameter", None))
    if label is None:
        return str(error)
    return f"{label} must be {error.words}; got {_shown(error.value)}."
