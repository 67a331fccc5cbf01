"""Copy a trained run under the name of a run with the same spec (rule share_run)."""

import json
from pathlib import Path

from cnnopt.common import logs
from cnnopt.train.share import share

logs.setup(snakemake.log[0])
files = ("model", "best_model", "history", "metrics", "spec")
share(
    {name: Path(snakemake.input[name]) for name in files},
    json.loads(snakemake.params.spec),
    {name: Path(snakemake.output[name]) for name in files},
    tensorboard=Path(snakemake.params.tensorboard),
)
