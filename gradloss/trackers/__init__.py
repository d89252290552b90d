"""Results out to the trackers researchers already use: MLflow and TensorBoard.

    mapping            a stored run or experiment as a tracker sees it: params, tags, metric
                       names and points, TensorBoard hparams (pure: no store, no tracker)
    gather             what the store holds of a run or an experiment, with the experiment's
                       summary over seeds (`gradloss.analysis`)
    mlflow_runs        runs and experiments as MLflow runs, found again by their gradloss id
                       (exporting twice updates, never duplicates); experiments as parents
    live               a worker's runs to MLflow while they train, from a background queue
    tensorboard_logs   one TensorBoard log folder per run, with the HParams table set up

MLflow is an optional extra (`pip install "gradloss[mlflow]"`), TensorBoard's hparams plugin
too (`gradloss[tensorboard]`); each is imported only where it is used. Entry points: `gradloss
export mlflow|tensorboard` (cli.export), the dashboard's export buttons (ui.panels.export), and
the worker's runner, which adds the live sink when GRADLOSS_MLFLOW_URI is set.
"""
