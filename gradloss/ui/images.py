"""The image grids' pieces: test images drawn large, and captions with each model's prediction.
No Streamlit."""
from __future__ import annotations

import numpy as np


def upscale(image: np.ndarray, factor: int = 4) -> np.ndarray:
    """(H, W[, 1]) in any range -> (H*f, W*f) clipped to [0, 1], pixels kept sharp."""
    image = np.clip(np.asarray(image, dtype=np.float32).squeeze(), 0.0, 1.0)
    return np.kron(image, np.ones((factor, factor), dtype=np.float32))


def example_captions(examples: dict, sigma: float, class_names) -> list[tuple[int, str]]:
    """[(test index, markdown caption)] at sigma: the label and each model's prediction,
    green ✓ if right, red ✗ if wrong. examples: {model name: store.examples() DataFrame}."""
    per_index: dict[int, list[str]] = {}
    labels: dict[int, int] = {}
    for objective, df in examples.items():
        rows = df[np.isclose(df.sigma, sigma)].sort_values("index")
        for row in rows.to_dict("records"):
            index, label, pred = int(row["index"]), int(row["label"]), int(row["prediction"])
            labels[index] = label
            ok = pred == label
            mark = f":green[✓ {objective}: {class_names[pred]}]" if ok else \
                f":red[✗ {objective}: {class_names[pred]}]"
            per_index.setdefault(index, []).append(f"{mark} ({row['confidence']:.0%})")
    return [(i, "  \n".join([f"**{class_names[labels[i]]}**"] + per_index[i])) for i in per_index]
