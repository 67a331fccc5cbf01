"""Evaluate one trained run on the test set (rule evaluate): its last epoch's model and the
model of its best validation epoch, each scored once."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "lib"))

from cnnopt import gpus, io, logs, runtime

logs.setup(snakemake.log[0])

# Evaluation declares no GPU: it runs on the CPU and leaves the GPUs to the trainings.
with gpus.claim(0):
    runtime.configure(snakemake.threads)

    from cnnopt.evaluate import evaluate  # noqa: E402

    evaluate(Path(snakemake.input.model), Path(snakemake.input.arrays),
             Path(snakemake.output[0]), json.loads(snakemake.params.spec),
             best_model_path=Path(snakemake.input.best_model),
             best_epoch=io.read_json(snakemake.input.metrics).get("best_epoch"))
