"""Evaluate one trained run on the test set (rule evaluate)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "lib"))

from cnnopt import gpus, logs, runtime

logs.setup(snakemake.log[0])

# Evaluation declares no GPU: it runs on the CPU and leaves the GPUs to the trainings.
with gpus.claim(0):
    runtime.configure(snakemake.threads)

    from cnnopt.evaluate import evaluate  # noqa: E402

    evaluate(Path(snakemake.input.model), Path(snakemake.input.arrays),
             Path(snakemake.output[0]), json.loads(snakemake.params.spec))
