"""Copy a trained run under the name of a run with the same training (rules share_run and
adopt): cnnopt.train.share.share. For adopt, a tuned run takes its search's chosen rate first
(snakemake.input.choice) and the winner's search run is the training it shares."""

import json
from pathlib import Path

from cnnopt.common import logs
from cnnopt.train.share import share
from cnnopt.tuning.choice import apply_choice

logs.setup(snakemake.log[0])
files = ("model", "best_model", "history", "metrics", "spec")
spec = json.loads(snakemake.params.spec)
if snakemake.input.get("choice"):
    spec = apply_choice(spec, snakemake.input.choice)
share(
    {name: Path(snakemake.input[name]) for name in files},
    spec,
    {name: Path(snakemake.output[name]) for name in files},
    tensorboard=Path(snakemake.params.tensorboard),
)
