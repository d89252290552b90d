"""Training: the one epoch loop (`loop`: `train`, `train_runs`), several seeds as one program
(`seed_batch`), a run's account and result (`record`) and its checkpoints (`checkpoint`).

Importing the package stays light; `loop` and `seed_batch` import Keras."""
