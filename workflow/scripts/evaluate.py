"""Evaluate one trained run on the test set (rule evaluate): its last epoch's model and the
model of its best validation epoch, each scored once."""

import json
from pathlib import Path

from cnnopt.common import files, gpus, logs, runtime, tracking

logs.setup(snakemake.log[0])

# Evaluation declares no GPU: it runs on the CPU and leaves the GPUs to the trainings
# (configure logs the device and keeps the frameworks' no-GPU notices out of the log).
with gpus.claim(0):
    runtime.configure(snakemake.threads)

    from cnnopt.evaluate.scoring import evaluate

    evaluation = evaluate(Path(snakemake.input.model), Path(snakemake.input.arrays),
                          Path(snakemake.output[0]), json.loads(snakemake.params.spec),
                          best_model_path=Path(snakemake.input.best_model),
                          best_epoch=files.read_json(snakemake.input.metrics).get("best_epoch"))
    # config tracking: the test metrics into the run's MLflow run (off: nothing imports mlflow)
    tracking.log_evaluation(snakemake.params.tracking, snakemake.input.trained_spec,
                            snakemake.input.history, evaluation)
